//! APISIX's etcd key layout: `<prefix>/<kind>/<id>` with the object's JSON as the value,
//! and how etcd key-values become catalog entries (`createdIndex` = the key's create
//! revision, `modifiedIndex` = its mod revision, as APISIX shows them).

use split_core::config::ResourceKind;

use crate::catalog::{store_key, Entry};

/// The key of `kind/id` under `prefix`: `/apisix/routes/1`.
pub(crate) fn etcd_key(prefix: &str, kind: ResourceKind, id: &str) -> String {
    format!("{prefix}{}", store_key(kind, id))
}

/// The range every object lives in: `prefix/` (so `/apisix` never matches `/apisix2`).
pub(crate) fn range_prefix(prefix: &str) -> String {
    format!("{prefix}/")
}

/// What one etcd key under the prefix is to split.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Key<'a> {
    /// An object of a kind split serves.
    Object(ResourceKind, &'a str),
    /// A directory marker (`/apisix/routes`, `/apisix/routes/`) APISIX may create: no
    /// object, nothing to report.
    Marker,
    /// Something split does not serve (the reason is logged once per key).
    Unsupported(String),
}

/// Classifies `key` (which starts with `prefix/`).
pub(crate) fn classify<'a>(prefix: &str, key: &'a str) -> Key<'a> {
    let Some(rest) = key.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) else {
        return Key::Unsupported("outside the prefix".into());
    };
    let (kind_text, id) = match rest.split_once('/') {
        Some(split) => split,
        None => (rest, ""),
    };
    let Some(kind) = ResourceKind::parse(kind_text) else {
        return Key::Unsupported(format!(
            "resource type {kind_text:?} is not supported by split"
        ));
    };
    if id.is_empty() {
        return Key::Marker;
    }
    if id.contains('/') {
        return Key::Unsupported(format!(
            "nested key {id:?} under {kind_text} (e.g. consumer credentials) is not supported by split"
        ));
    }
    Key::Object(kind, id)
}

/// The entry for a value read from etcd, or why it cannot be one.
pub(crate) fn entry(
    value: &[u8],
    create_revision: i64,
    mod_revision: i64,
) -> Result<Entry, String> {
    let value: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("value is not JSON: {e}"))?;
    if !value.is_object() {
        return Err("value is not a JSON object".into());
    }
    Ok(Entry {
        value,
        created: u64::try_from(create_revision).unwrap_or(0),
        modified: u64::try_from(mod_revision).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_apisix_layout() {
        assert_eq!(
            etcd_key("/apisix", ResourceKind::Routes, "1"),
            "/apisix/routes/1"
        );
        assert_eq!(
            classify("/apisix", "/apisix/routes/1"),
            Key::Object(ResourceKind::Routes, "1")
        );
        assert_eq!(
            classify("/apisix", "/apisix/plugin_metadata/prometheus"),
            Key::Object(ResourceKind::PluginMetadata, "prometheus")
        );
        assert_eq!(classify("/apisix", "/apisix/routes/"), Key::Marker);
        assert_eq!(classify("/apisix", "/apisix/upstreams"), Key::Marker);
        assert!(matches!(
            classify("/apisix", "/apisix/stream_routes/1"),
            Key::Unsupported(r) if r.contains("stream_routes")
        ));
        assert!(matches!(
            classify("/apisix", "/apisix/consumers/jack/credentials/a"),
            Key::Unsupported(r) if r.contains("credentials")
        ));
        assert!(matches!(
            classify("/apisix", "/apisix2/routes/1"),
            Key::Unsupported(_)
        ));
    }

    #[test]
    fn entries_take_etcd_revisions() {
        let e = entry(br#"{"uri":"/x"}"#, 5, 9).expect("entry");
        assert_eq!((e.created, e.modified), (5, 9));
        assert!(entry(b"init_dir", 1, 1).is_err());
        assert!(entry(b"[1]", 1, 1).is_err());
    }
}
