//! Shared helpers for the in-process Admin API tests.
#![allow(dead_code)]

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use split_admin::{Admin, AdminOptions, Live, Snapshot};
use split_core::admin_auth::{AdminAuth, AdminKey, Role};

/// The admin-role key used by the tests.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdefghijkl";
/// The viewer-role key used by the tests.
pub const VIEWER_KEY: &str = "test-viewer-key-0123456789abcdefghijk";

/// A local client address inside the default allow list.
pub fn local() -> IpAddr {
    "127.0.0.1".parse().expect("literal address")
}

/// The auth policy: one admin and one viewer key, `allow_admin: [127.0.0.0/24]`.
pub fn auth() -> AdminAuth {
    AdminAuth {
        keys: vec![
            AdminKey {
                name: "admin".into(),
                key: ADMIN_KEY.into(),
                role: Role::Admin,
            },
            AdminKey {
                name: "viewer".into(),
                key: VIEWER_KEY.into(),
                role: Role::Viewer,
            },
        ],
        required: true,
        allow: vec!["127.0.0.0/24".parse().expect("literal CIDR")],
    }
}

/// A fresh live snapshot holder.
pub fn live() -> Live {
    Arc::new(ArcSwap::from_pointee(Snapshot::empty()))
}

/// An Admin over a fresh store in a temporary directory (kept alive by the returned guard).
pub struct Harness {
    pub admin: Admin,
    pub live: Live,
    pub dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let live = live();
        let admin = Admin::open_embedded(
            dir.path(),
            live.clone(),
            AdminOptions {
                auth: auth(),
                read_only: None,
            },
        )
        .expect("open store");
        Harness { admin, live, dir }
    }

    /// Sends a request with the admin key from 127.0.0.1.
    pub async fn call(&self, method: Method, path: &str, body: &str) -> Resp {
        call(&self.admin, method, path, body, Some(ADMIN_KEY), local()).await
    }

    /// GET with the admin key.
    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, "").await
    }

    /// PUT with the admin key.
    pub async fn put(&self, path: &str, body: &str) -> Resp {
        self.call(Method::PUT, path, body).await
    }
}

/// A decoded response.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub raw: Bytes,
    pub json: Value,
}

/// Sends one request through `Admin::handle`.
pub async fn call(
    admin: &Admin,
    method: Method,
    path: &str,
    body: &str,
    key: Option<&str>,
    remote: IpAddr,
) -> Resp {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("X-API-KEY", k);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid request");
    send(admin, req, remote).await
}

/// Sends a prepared request.
pub async fn send(admin: &Admin, req: Request<Full<Bytes>>, remote: IpAddr) -> Resp {
    let resp = admin.handle(req, remote).await;
    let status = resp.status();
    let headers = resp.headers().clone();
    let raw = resp
        .into_body()
        .collect()
        .await
        .expect("Full never fails")
        .to_bytes();
    let json = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).expect("every response body is JSON")
    };
    Resp {
        status,
        headers,
        raw,
        json,
    }
}

/// The guide's route for v1, byte-for-byte.
pub const GUIDE_V1: &str = include_str!("../../../testdata/guide/test-v1.json");

/// The guide's route for v2, byte-for-byte.
pub const GUIDE_V2: &str = include_str!("../../../testdata/guide/test-v2.json");

/// The guide's 50/50 split route, byte-for-byte.
pub const GUIDE_SPLIT: &str = include_str!("../../../testdata/guide/aimlapi-split.json");

/// A minimal valid upstream body.
pub const UPSTREAM: &str = r#"{"type":"roundrobin","nodes":{"127.0.0.1:1980":1}}"#;
