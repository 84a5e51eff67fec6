#![allow(dead_code)]
//! Helpers shared by the snapshot tests: build config sets and requests.

use std::net::IpAddr;

use serde_json::Value;
use split_core::config::ResourceKind;
use split_core::request::Request;
use split_core::snapshot::{CompileError, ConfigSet, Snapshot};

/// A config set from `(kind, id, object)` triples.
pub fn set(objects: Vec<(ResourceKind, &str, Value)>) -> ConfigSet {
    let mut set = ConfigSet::default();
    for (kind, id, value) in objects {
        set.objects
            .entry(kind)
            .or_default()
            .insert(id.to_owned(), value);
    }
    set
}

/// Compiles or panics with the error.
pub fn compile(objects: Vec<(ResourceKind, &str, Value)>) -> Snapshot {
    match Snapshot::compile(set(objects)) {
        Ok(s) => s,
        Err(e) => panic!("compile failed: {e}"),
    }
}

/// Compiles and expects an error.
pub fn compile_err(objects: Vec<(ResourceKind, &str, Value)>) -> CompileError {
    match Snapshot::compile(set(objects)) {
        Ok(_) => panic!("compile unexpectedly succeeded"),
        Err(e) => e,
    }
}

/// Owned parts of a request; `view()` borrows them as a [`Request`].
pub struct Req {
    pub method: http::Method,
    pub host: Option<String>,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub remote_addr: IpAddr,
    pub body: Option<Vec<u8>>,
    pub consumer: Option<String>,
}

impl Req {
    pub fn new(method: &str, path: &str) -> Req {
        Req {
            method: http::Method::from_bytes(method.as_bytes()).expect("valid method"),
            host: None,
            path: path.to_owned(),
            query: None,
            headers: http::HeaderMap::new(),
            remote_addr: IpAddr::from([127, 0, 0, 1]),
            body: None,
            consumer: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Req {
        self.headers.insert(
            name,
            http::HeaderValue::from_str(value).expect("valid value"),
        );
        self
    }

    pub fn host(mut self, host: &str) -> Req {
        self.host = Some(host.to_owned());
        self
    }

    pub fn view(&self) -> Request<'_> {
        Request {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            remote_addr: self.remote_addr,
            remote_port: 40000,
            body: self.body.as_deref(),
            consumer: self.consumer.as_deref(),
            route_id: None,
        }
    }
}
