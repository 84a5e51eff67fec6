//! `deployment.etcd.tls` → the client's TLS options (files read here, at startup).

use etcd_client::{Certificate, Identity, TlsOptions};
use split_core::config::gateway::EtcdTls;

use crate::AdminError;

fn read(path: &str, field: &str) -> Result<Vec<u8>, AdminError> {
    std::fs::read(path).map_err(|e| {
        AdminError::Invalid(format!(
            "deployment.etcd.tls.{field}: cannot read {path}: {e}"
        ))
    })
}

/// TLS options for `https://` endpoints: the webpki roots, plus `ca_file`, plus a client
/// identity from `cert` + `key`. `None` when no endpoint uses TLS.
pub(crate) fn options(
    tls: Option<&EtcdTls>,
    https: bool,
) -> Result<Option<TlsOptions>, AdminError> {
    if !https {
        if tls.is_some() {
            tracing::warn!(
                "deployment.etcd.tls is set but no etcd host is https://; it is not used"
            );
        }
        return Ok(None);
    }
    let mut options = TlsOptions::new().with_webpki_roots();
    let Some(tls) = tls else {
        return Ok(Some(options));
    };
    if let Some(ca) = &tls.ca_file {
        options = options.ca_certificate(Certificate::from_pem(read(ca, "ca_file")?));
    }
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        options = options.identity(Identity::from_pem(read(cert, "cert")?, read(key, "key")?));
    }
    if let Some(sni) = &tls.sni {
        options = options.domain_name(sni.clone());
    }
    Ok(Some(options))
}
