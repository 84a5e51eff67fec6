//! The HTTP(S) client used by `split-sim load` and by tests: hyper-util's pooled client
//! over rustls, trusting the webpki roots plus an optional extra PEM (e.g. the mock's
//! self-signed certificate).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs.
pub type Client = hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Builds a client. `extra_ca_pem` adds trust roots (PEM, one or more certificates).
pub fn build(extra_ca_pem: Option<&str>) -> io::Result<Client> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
            roots.add(cert?).map_err(io::Error::other)?;
            added += 1;
        }
        if added == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no certificate found in the CA PEM",
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector))
}
