//! Who still uses an object: the check before deleting an upstream, service or
//! plugin_config (skipped with `?force=true`). Messages match APISIX's.

use serde_json::Value;
use split_core::config::ResourceKind;

use crate::catalog::Catalog;

/// Whether `value` (an id field) refers to `id`; ids compare as strings (`1` = `"1"`).
fn refers(value: Option<&Value>, id: &str) -> bool {
    match value {
        Some(Value::String(s)) => s == id,
        Some(Value::Number(n)) => n.to_string() == id,
        _ => false,
    }
}

/// Whether a `plugins` object's traffic-split uses upstream `id`, in either the APISIX
/// form (`rules[].weighted_upstreams[].upstream_id`) or the guide's shorthand
/// (`rules[].upstream_id`).
fn plugins_use_upstream(plugins: Option<&Value>, id: &str) -> bool {
    let Some(rules) = plugins
        .and_then(|p| p.get("traffic-split"))
        .and_then(|t| t.get("rules"))
        .and_then(Value::as_array)
    else {
        return false;
    };
    rules.iter().any(|rule| {
        refers(rule.get("upstream_id"), id)
            || rule
                .get("weighted_upstreams")
                .and_then(Value::as_array)
                .is_some_and(|arms| arms.iter().any(|a| refers(a.get("upstream_id"), id)))
    })
}

/// The display id of a stored object: its `id`, else `username`, else the store key.
fn display_id<'a>(stored_id: &'a str, value: &'a Value) -> std::borrow::Cow<'a, str> {
    match value.get("id") {
        Some(Value::String(s)) => s.as_str().into(),
        Some(Value::Number(n)) => n.to_string().into(),
        _ => stored_id.into(),
    }
}

/// The APISIX 400 message if `kind/id` is still referenced, else `None`.
pub(crate) fn still_used(catalog: &Catalog, kind: ResourceKind, id: &str) -> Option<String> {
    match kind {
        ResourceKind::Upstreams => upstream_user(catalog, id),
        ResourceKind::Services => catalog
            .list(ResourceKind::Routes)
            .find(|(_, e)| refers(e.value.get("service_id"), id))
            .map(|(rid, e)| {
                format!(
                    "can not delete this service directly, route [{}] is still using it now",
                    display_id(rid, &e.value)
                )
            }),
        ResourceKind::PluginConfigs => catalog
            .list(ResourceKind::Routes)
            .find(|(_, e)| refers(e.value.get("plugin_config_id"), id))
            .map(|(rid, e)| {
                format!(
                    "can not delete this plugin config, route [{}] is still using it now",
                    display_id(rid, &e.value)
                )
            }),
        _ => None,
    }
}

fn upstream_user(catalog: &Catalog, id: &str) -> Option<String> {
    // (kind, name in the message, whether its own `upstream_id` counts), APISIX's order.
    let holders = [
        (ResourceKind::Routes, "route", true),
        (ResourceKind::Services, "service", true),
        (ResourceKind::PluginConfigs, "plugin_config", false),
        (ResourceKind::Consumers, "consumer", false),
        (ResourceKind::GlobalRules, "global_rules", false),
    ];
    for (kind, name, own) in holders {
        for (oid, entry) in catalog.list(kind) {
            let who = display_id(oid, &entry.value);
            if plugins_use_upstream(entry.value.get("plugins"), id) {
                return Some(format!(
                    "can not delete this upstream, plugin in {name} [{who}] is still using it now"
                ));
            }
            if own && refers(entry.value.get("upstream_id"), id) {
                return Some(format!(
                    "can not delete this upstream, {name} [{who}] is still using it now"
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Change;
    use serde_json::json;

    fn catalog(objects: &[(ResourceKind, &str, Value)]) -> Catalog {
        let changes: Vec<Change> = objects
            .iter()
            .map(|(kind, id, value)| Change::Put {
                kind: *kind,
                id: (*id).to_owned(),
                value: value.clone(),
            })
            .collect();
        Catalog::default().with(&changes, 1)
    }

    #[test]
    fn upstream_used_by_route_or_plugin() {
        let c = catalog(&[
            (
                ResourceKind::Routes,
                "1",
                json!({"id": "1", "upstream_id": 7}),
            ),
            (
                ResourceKind::Routes,
                "2",
                json!({"id": 2, "plugins": {"traffic-split": {"rules": [
                    {"weighted_upstreams": [{"upstream_id": "u2", "weight": 1}]}]}}}),
            ),
            (
                ResourceKind::GlobalRules,
                "g",
                json!({"id": "g", "plugins": {"traffic-split": {"rules": [{"upstream_id": "u3"}]}}}),
            ),
        ]);
        assert_eq!(
            still_used(&c, ResourceKind::Upstreams, "7").as_deref(),
            Some("can not delete this upstream, route [1] is still using it now")
        );
        assert_eq!(
            still_used(&c, ResourceKind::Upstreams, "u2").as_deref(),
            Some("can not delete this upstream, plugin in route [2] is still using it now")
        );
        assert_eq!(
            still_used(&c, ResourceKind::Upstreams, "u3").as_deref(),
            Some("can not delete this upstream, plugin in global_rules [g] is still using it now")
        );
        assert_eq!(still_used(&c, ResourceKind::Upstreams, "8"), None);
    }

    #[test]
    fn service_and_plugin_config_users() {
        let c = catalog(&[(
            ResourceKind::Routes,
            "r",
            json!({"id": "r", "service_id": "s", "plugin_config_id": 3}),
        )]);
        assert_eq!(
            still_used(&c, ResourceKind::Services, "s").as_deref(),
            Some("can not delete this service directly, route [r] is still using it now")
        );
        assert_eq!(
            still_used(&c, ResourceKind::PluginConfigs, "3").as_deref(),
            Some("can not delete this plugin config, route [r] is still using it now")
        );
        assert_eq!(still_used(&c, ResourceKind::Routes, "r"), None);
    }
}
