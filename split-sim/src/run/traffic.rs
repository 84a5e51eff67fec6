//! The synthetic traffic of `split-sim run`: request `i` is a pure function of the seed
//! and `i` (no sequential RNG state), so any range of requests can be produced by any
//! thread and a run is reproducible regardless of threading.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::bail;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use split_core::config::upstream::HashOn;
use split_core::request::Request;
use split_core::select::mix64;
use split_core::snapshot::CompiledRoute;

/// Salts that decorrelate the per-request draws.
const MODEL_SALT: u64 = 0x6d6f_6465_6c00_0001;
const KEY_SALT: u64 = 0x6b65_7900_0000_0002;

/// Where a sticky key is put in the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyTarget {
    /// A header.
    Header(HeaderName),
    /// A cookie.
    Cookie(String),
    /// A query argument.
    Query(String),
    /// The consumer name.
    Consumer,
    /// The client address (10.0.0.0 + key).
    RemoteAddr,
}

/// What the user asked the traffic to look like.
#[derive(Debug, Clone, Default)]
pub struct TrafficSpec {
    /// Method (default: the route's first method, else POST).
    pub method: Option<Method>,
    /// Path (default: the route's first uri without a trailing `*`).
    pub path: Option<String>,
    /// Host (default: the route's first host).
    pub host: Option<String>,
    /// Extra headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Models drawn uniformly for the JSON body (default: `gpt-4`).
    pub models: Vec<String>,
    /// Distinct sticky keys (0 = none).
    pub sticky_keys: u64,
    /// Where the key goes (default: what the rule's chash reads, else `x-user-id`).
    pub sticky: Option<StickyTarget>,
    /// Seed.
    pub seed: u64,
}

/// A ready-to-use traffic model.
#[derive(Debug, Clone)]
pub struct Traffic {
    method: Method,
    path: String,
    query: Option<String>,
    host: Option<String>,
    headers: HeaderMap,
    bodies: Vec<Vec<u8>>,
    sticky: Option<(StickyTarget, u64)>,
    seed: u64,
}

impl Traffic {
    /// Builds the model for requests aimed at `route` (rule `rule` decides the default
    /// sticky target).
    pub fn new(spec: &TrafficSpec, route: &CompiledRoute, rule: usize) -> anyhow::Result<Traffic> {
        let r = &route.route;
        let method = spec
            .method
            .clone()
            .or_else(|| r.methods.first().cloned())
            .unwrap_or(Method::POST);
        let raw_path = match &spec.path {
            Some(p) => p.clone(),
            None => {
                let uri = r.uris.first().map(String::as_str).unwrap_or("/");
                let p = uri.strip_suffix('*').unwrap_or(uri);
                if p.is_empty() {
                    "/".to_owned()
                } else {
                    p.to_owned()
                }
            }
        };
        let (path, query) = match raw_path.split_once('?') {
            Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
            None => (raw_path, None),
        };
        let host = spec.host.clone().or_else(|| {
            r.hosts.first().map(|h| match h.strip_prefix("*.") {
                Some(rest) => format!("www.{rest}"),
                None => h.clone(),
            })
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (k, v) in &spec.headers {
            headers.append(k.clone(), v.clone());
        }
        let models: Vec<String> = if spec.models.is_empty() {
            vec!["gpt-4".to_owned()]
        } else {
            spec.models.clone()
        };
        let bodies = models
            .iter()
            .map(|m| {
                serde_json::json!({
                    "model": m,
                    "messages": [{"role": "user", "content": "ping"}],
                })
                .to_string()
                .into_bytes()
            })
            .collect();
        let sticky = if spec.sticky_keys == 0 {
            None
        } else {
            let target = match &spec.sticky {
                Some(t) => t.clone(),
                None => default_target(route.rules.get(rule).and_then(|r| r.hash_on.as_ref()))?,
            };
            Some((target, spec.sticky_keys))
        };
        Ok(Traffic {
            method,
            path,
            query,
            host,
            headers,
            bodies,
            sticky,
            seed: spec.seed,
        })
    }

    /// The sticky key index of request `i`, if the model has sticky keys.
    pub fn key_of(&self, i: u64) -> Option<u64> {
        self.sticky
            .as_ref()
            .map(|(_, n)| mix64(mix64(self.seed ^ KEY_SALT) ^ i) % n)
    }

    /// Number of distinct sticky keys (0 = none).
    pub fn sticky_keys(&self) -> u64 {
        self.sticky.as_ref().map_or(0, |(_, n)| *n)
    }

    /// Calls `f` with request `i`.
    pub fn with_request<R>(&self, i: u64, f: impl FnOnce(&Request<'_>) -> R) -> R {
        self.with_parts(i, self.key_of(i), f)
    }

    /// Calls `f` with request `i` carrying sticky key `key`.
    pub fn with_key<R>(&self, i: u64, key: u64, f: impl FnOnce(&Request<'_>) -> R) -> R {
        self.with_parts(i, Some(key), f)
    }

    fn with_parts<R>(&self, i: u64, key: Option<u64>, f: impl FnOnce(&Request<'_>) -> R) -> R {
        let n = self.bodies.len() as u64;
        let model = if n > 1 {
            mix64(mix64(self.seed ^ MODEL_SALT) ^ i) % n
        } else {
            0
        };
        // n ≥ 1 and model < n.
        let body = &self.bodies[model as usize];
        let mut req = Request {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            remote_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            remote_port: 40000,
            body: Some(body),
            consumer: None,
            route_id: None,
        };
        let (Some((target, _)), Some(k)) = (&self.sticky, key) else {
            return f(&req);
        };
        let value = format!("user-{k}");
        match target {
            StickyTarget::Header(name) => {
                let mut headers = self.headers.clone();
                // "user-<digits>" is always a valid header value.
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(name.clone(), v);
                }
                req.headers = &headers;
                f(&req)
            }
            StickyTarget::Cookie(name) => {
                let mut headers = self.headers.clone();
                if let Ok(v) = HeaderValue::from_str(&format!("{name}={value}")) {
                    headers.append(http::header::COOKIE, v);
                }
                req.headers = &headers;
                f(&req)
            }
            StickyTarget::Query(name) => {
                let q = match &self.query {
                    Some(q) => format!("{q}&{name}={value}"),
                    None => format!("{name}={value}"),
                };
                req.query = Some(&q);
                f(&req)
            }
            StickyTarget::Consumer => {
                req.consumer = Some(&value);
                f(&req)
            }
            StickyTarget::RemoteAddr => {
                let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
                req.remote_addr = IpAddr::V4(Ipv4Addr::from(base.wrapping_add(k as u32)));
                f(&req)
            }
        }
    }
}

/// The sticky target a chash rule reads; `x-user-id` for other rules.
fn default_target(hash_on: Option<&HashOn>) -> anyhow::Result<StickyTarget> {
    let header = |h: &str| -> anyhow::Result<StickyTarget> {
        Ok(StickyTarget::Header(HeaderName::from_bytes(h.as_bytes())?))
    };
    match hash_on {
        None => header("x-user-id"),
        Some(HashOn::Header(h)) => header(h),
        Some(HashOn::Cookie(c)) => Ok(StickyTarget::Cookie(c.clone())),
        Some(HashOn::Consumer) => Ok(StickyTarget::Consumer),
        Some(HashOn::Vars(v)) => {
            if let Some(a) = v.strip_prefix("arg_") {
                Ok(StickyTarget::Query(a.to_owned()))
            } else if let Some(h) = v.strip_prefix("http_") {
                header(&h.replace('_', "-"))
            } else if let Some(c) = v.strip_prefix("cookie_") {
                Ok(StickyTarget::Cookie(c.to_owned()))
            } else if v == "remote_addr" {
                Ok(StickyTarget::RemoteAddr)
            } else if v == "consumer_name" {
                Ok(StickyTarget::Consumer)
            } else {
                bail!("the rule hashes on var {v:?}, which sticky keys cannot vary; use --sticky-header")
            }
        }
        Some(HashOn::VarsCombinations(t)) => {
            bail!("the rule hashes on {t:?}; name where keys go with --sticky-header")
        }
    }
}
