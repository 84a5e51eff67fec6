//! A self-signed certificate for the mock's HTTPS mode (rcgen), and the rustls server
//! config built from it. The certificate's PEM is handed to clients as their trust root.

use std::io;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A generated certificate and the server config that serves it.
#[derive(Clone)]
pub struct SelfSigned {
    /// The certificate, PEM encoded (write it to `--cert-out`, trust it in clients).
    pub cert_pem: String,
    /// The certificate, DER encoded.
    pub cert_der: CertificateDer<'static>,
    /// rustls server config offering h2 and http/1.1 via ALPN.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned").finish_non_exhaustive()
    }
}

/// Generates a self-signed certificate for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> io::Result<SelfSigned> {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(io::Error::other)?;
    let cert_der = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        cert_der,
        server_config: Arc::new(config),
    })
}
