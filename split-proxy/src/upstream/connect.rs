//! Opening upstream connections: `--connect-to` mapping, DNS via the system resolver,
//! TCP, then TLS with SNI = the upstream host (not the mapped one).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A byte stream to an upstream (plain TCP or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// One `--connect-to HOST:PORT:HOST2:PORT2` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectTo {
    /// Host asked for (lower case).
    pub host: String,
    /// Port asked for.
    pub port: u16,
    /// Host actually connected to.
    pub to_host: String,
    /// Port actually connected to.
    pub to_port: u16,
}

impl ConnectTo {
    /// Parses `HOST:PORT:HOST2:PORT2`; IPv6 hosts go in brackets (`[::1]`).
    pub fn parse(text: &str) -> Result<ConnectTo, String> {
        let parts = split_fields(text)
            .ok_or_else(|| format!("--connect-to {text}: expected HOST:PORT:HOST2:PORT2"))?;
        let port = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| format!("--connect-to {text}: invalid port '{s}'"))
        };
        let [host, p1, to_host, p2] = parts;
        if host.is_empty() || to_host.is_empty() {
            return Err(format!("--connect-to {text}: empty host"));
        }
        Ok(ConnectTo {
            host: host.to_ascii_lowercase(),
            port: port(p1)?,
            to_host: to_host.to_owned(),
            to_port: port(p2)?,
        })
    }
}

/// Splits on `:` outside `[...]` into exactly four fields, brackets removed.
fn split_fields(text: &str) -> Option<[&str; 4]> {
    let mut fields = Vec::with_capacity(4);
    let mut rest = text;
    loop {
        let (field, tail) = if let Some(inner) = rest.strip_prefix('[') {
            let end = inner.find(']')?;
            let after = &inner[end + 1..];
            (&inner[..end], after)
        } else {
            match rest.find(':') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            }
        };
        fields.push(field);
        if tail.is_empty() {
            break;
        }
        rest = tail.strip_prefix(':')?;
        if fields.len() > 4 {
            return None;
        }
    }
    fields.try_into().ok()
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Name resolution failed.
    #[error("resolving {0}: {1}")]
    Dns(String, String),
    /// TCP connect failed on every resolved address.
    #[error("connecting to {0}: {1}")]
    Tcp(String, String),
    /// The connect timeout expired (TCP + TLS).
    #[error("connect timeout after {0:?} to {1}")]
    Timeout(Duration, String),
    /// TLS handshake or certificate verification failed.
    #[error("TLS handshake with {0}: {1}")]
    Tls(String, String),
}

impl ConnectError {
    /// Short kind for metrics (`dns`, `connect`, `timeout`, `tls`).
    pub fn kind(&self) -> &'static str {
        match self {
            ConnectError::Dns(..) => "dns",
            ConnectError::Tcp(..) => "connect",
            ConnectError::Timeout(..) => "timeout",
            ConnectError::Tls(..) => "tls",
        }
    }
}

/// An open connection.
pub struct Connection {
    /// The stream.
    pub io: Box<dyn Io>,
    /// Address actually connected to.
    pub peer: SocketAddr,
    /// True when ALPN chose h2.
    pub h2: bool,
}

/// Opens upstream connections.
#[derive(Clone)]
pub struct Connector {
    connect_to: Arc<Vec<ConnectTo>>,
    tls: tokio_rustls::TlsConnector,
}

impl Connector {
    /// A connector with the `--connect-to` mappings and TLS client config.
    pub fn new(connect_to: Vec<ConnectTo>, tls: Arc<rustls::ClientConfig>) -> Connector {
        Connector {
            connect_to: Arc::new(connect_to),
            tls: TlsConnector::from(tls),
        }
    }

    /// Where `host:port` really goes after `--connect-to`.
    pub fn target<'a>(&'a self, host: &'a str, port: u16) -> (&'a str, u16) {
        self.connect_to
            .iter()
            .find(|m| m.port == port && m.host.eq_ignore_ascii_case(host))
            .map_or((host, port), |m| (m.to_host.as_str(), m.to_port))
    }

    /// Connects to `host:port` (TLS when `tls`), all within `timeout`.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        tls: bool,
        timeout: Duration,
    ) -> Result<Connection, ConnectError> {
        let name = format!("{host}:{port}");
        match tokio::time::timeout(timeout, self.connect_inner(host, port, tls)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout(timeout, name)),
        }
    }

    async fn connect_inner(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Connection, ConnectError> {
        let (to_host, to_port) = self.target(host, port);
        let name = format!("{to_host}:{to_port}");
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((to_host, to_port))
            .await
            .map_err(|e| ConnectError::Dns(name.clone(), e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(ConnectError::Dns(name, "no addresses".into()));
        }
        let mut last_error = String::new();
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    stream = Some((s, addr));
                    break;
                }
                Err(e) => last_error = format!("{addr}: {e}"),
            }
        }
        let Some((tcp, peer)) = stream else {
            return Err(ConnectError::Tcp(name, last_error));
        };
        // Latency matters more than packet count for proxied request heads.
        let _ = tcp.set_nodelay(true);
        if !tls {
            return Ok(Connection {
                io: Box::new(tcp),
                peer,
                h2: false,
            });
        }
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| ConnectError::Tls(host.to_owned(), format!("invalid server name: {e}")))?;
        let stream = self
            .tls
            .connect(server_name, tcp)
            .await
            .map_err(|e| ConnectError::Tls(host.to_owned(), tls_reason(&e)))?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(Connection {
            io: Box::new(stream),
            peer,
            h2,
        })
    }
}

/// The most specific reason in a TLS error (e.g. the certificate verification failure).
fn tls_reason(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => inner.to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_to_parses_names_ipv6_and_rejects_garbage() {
        assert_eq!(
            ConnectTo::parse("API.aimlapi.com:443:127.0.0.1:8443"),
            Ok(ConnectTo {
                host: "api.aimlapi.com".into(),
                port: 443,
                to_host: "127.0.0.1".into(),
                to_port: 8443
            })
        );
        let v6 = ConnectTo::parse("[::1]:80:[fe80::2]:81").unwrap();
        assert_eq!((v6.host.as_str(), v6.to_host.as_str()), ("::1", "fe80::2"));
        for bad in [
            "",
            "a:1:b",
            "a:1:b:2:c",
            "a:x:b:2",
            ":1:b:2",
            "a:1:b:70000",
            "[::1:80:b:1",
        ] {
            assert!(ConnectTo::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn target_applies_mapping_case_insensitively() {
        let tls = super::super::tls::client_config(None).unwrap();
        let c = Connector::new(
            vec![ConnectTo::parse("a.example:443:127.0.0.1:9").unwrap()],
            tls,
        );
        assert_eq!(c.target("A.example", 443), ("127.0.0.1", 9));
        assert_eq!(c.target("a.example", 80), ("a.example", 80));
    }

    #[tokio::test]
    async fn refused_and_timeout_are_classified() {
        let tls = super::super::tls::client_config(None).unwrap();
        let c = Connector::new(vec![], tls);
        // Bind then drop a listener so the port is very likely closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = c
            .connect("127.0.0.1", port, false, Duration::from_secs(5))
            .await
            .err()
            .expect("closed port");
        assert_eq!(err.kind(), "connect", "{err}");
    }
}
