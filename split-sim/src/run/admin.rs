//! `--from-admin URL --key K`: reads the live configuration of a running gateway through
//! its Admin API (`GET /apisix/admin/<kind>` for every resource kind).

use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use split_core::config::ResourceKind;
use split_core::snapshot::ConfigSet;

/// Fetches every resource kind from the Admin API at `base` (e.g.
/// `http://127.0.0.1:9180`). Kinds the server does not know (404) are skipped.
pub async fn fetch(base: &str, key: Option<&str>) -> anyhow::Result<ConfigSet> {
    let client = crate::client::build(None)?;
    let base = base.trim_end_matches('/');
    let mut set = ConfigSet::default();
    for kind in ResourceKind::ALL {
        let url = format!("{base}/apisix/admin/{}", kind.as_str());
        let mut req = http::Request::get(&url);
        if let Some(k) = key {
            req = req.header("X-API-KEY", k);
        }
        let req = req.body(Full::new(Bytes::new()))?;
        let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
            .await
            .with_context(|| format!("GET {url}: timed out"))?
            .with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status == http::StatusCode::NOT_FOUND {
            continue;
        }
        if !status.is_success() {
            bail!(
                "GET {url}: {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        let doc: Value =
            serde_json::from_slice(&body).with_context(|| format!("GET {url}: not JSON"))?;
        for item in doc
            .get("list")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(value) = item.get("value") else {
                continue;
            };
            let id = match (value.get("id"), value.get("username")) {
                (Some(Value::String(s)), _) | (None, Some(Value::String(s))) => s.clone(),
                (Some(Value::Number(n)), _) => n.to_string(),
                _ => match item.get("key").and_then(Value::as_str) {
                    Some(k) => k.rsplit('/').next().unwrap_or(k).to_owned(),
                    None => continue,
                },
            };
            set.objects
                .entry(kind)
                .or_default()
                .insert(id, value.clone());
        }
    }
    Ok(set)
}
