//! Per-resource rules of the Admin API: how a kind is keyed, which methods it refuses,
//! and the names APISIX uses for it in messages.

use http::Method;
use split_core::config::ResourceKind;

/// How an object's key (its id in the store) is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keying {
    /// `id` from the path or the body; POST generates one.
    Id,
    /// `username` from the body (PUT to the collection); no `id` is stored.
    Username,
    /// The plugin name from the path; the stored value gets `id` = that name and no
    /// timestamps.
    PluginName,
}

/// Static description of one resource kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resource {
    /// The kind.
    pub kind: ResourceKind,
    /// The name APISIX uses in messages (`route`, `plugin config`, `global rule`).
    pub label: &'static str,
    /// How the key is found.
    pub keying: Keying,
    /// Methods answered with 405 `not supported ...`.
    pub unsupported: &'static [Method],
}

impl Resource {
    /// The rules for `kind`.
    pub fn of(kind: ResourceKind) -> Resource {
        let (label, keying, unsupported): (&'static str, Keying, &'static [Method]) = match kind {
            ResourceKind::Routes => ("route", Keying::Id, &[]),
            ResourceKind::Upstreams => ("upstream", Keying::Id, &[]),
            ResourceKind::Services => ("service", Keying::Id, &[]),
            ResourceKind::Consumers => {
                ("consumer", Keying::Username, &[Method::POST, Method::PATCH])
            }
            ResourceKind::GlobalRules => ("global rule", Keying::Id, &[Method::POST]),
            ResourceKind::PluginConfigs => ("plugin config", Keying::Id, &[Method::POST]),
            ResourceKind::Ssls => ("ssl", Keying::Id, &[]),
            ResourceKind::PluginMetadata => (
                "plugin_metadata",
                Keying::PluginName,
                &[Method::POST, Method::PATCH],
            ),
        };
        Resource {
            kind,
            label,
            keying,
            unsupported,
        }
    }

    /// The etcd-style key APISIX reports: `/apisix/routes/1`.
    pub fn api_key(&self, id: &str) -> String {
        format!("/apisix/{}/{}", self.kind.as_str(), id)
    }

    /// Whether `method` gets 405 for this kind.
    pub fn refuses(&self, method: &Method) -> bool {
        self.unsupported.contains(method)
    }

    /// Whether stored values carry `create_time`/`update_time`.
    pub fn has_timestamps(&self) -> bool {
        self.keying != Keying::PluginName
    }
}

/// Whether `id` is a valid object id: 1-64 characters of `[a-zA-Z0-9-_.]` (APISIX's id
/// schema; also keeps store keys free of `/`).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The message for an id that fails [`valid_id`].
pub(crate) const INVALID_ID: &str =
    "id: must be 1-64 characters of [a-zA-Z0-9-_.] or an integer >= 1";

/// The id carried by a body `id` value (string or integer >= 1), as the store key.
pub(crate) fn id_of(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => n.as_u64().filter(|&n| n >= 1).map(|n| n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(valid_id("aimlapi-split"));
        assert!(valid_id("a.b_c-1"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(65)));
        assert_eq!(id_of(&serde_json::json!(1)), Some("1".into()));
        assert_eq!(id_of(&serde_json::json!(0)), None);
        assert_eq!(id_of(&serde_json::json!(-3)), None);
        assert_eq!(id_of(&serde_json::json!(1.5)), None);
        assert_eq!(id_of(&serde_json::json!("x")), Some("x".into()));
    }

    #[test]
    fn labels_match_apisix() {
        assert_eq!(
            Resource::of(ResourceKind::PluginConfigs).label,
            "plugin config"
        );
        assert_eq!(Resource::of(ResourceKind::GlobalRules).label, "global rule");
        assert!(Resource::of(ResourceKind::Consumers).refuses(&Method::PATCH));
        assert!(!Resource::of(ResourceKind::Routes).refuses(&Method::PATCH));
        assert_eq!(
            Resource::of(ResourceKind::Routes).api_key("1"),
            "/apisix/routes/1"
        );
    }
}
