//! Who references an object: the Admin API refuses to delete an upstream, service or
//! plugin_config that is still in use (APISIX: `can not delete this upstream, route [1]
//! is still using it now`, or `plugin in route [1] is still using it now` for a
//! traffic-split `upstream_id`).

use crate::config::plugins::Plugins;
use crate::config::route::{Route, UpstreamRef};
use crate::config::service::Service;
use crate::config::traffic_split::ArmTarget;
use crate::config::ResourceKind;

use super::objects::parse_plugin_config;
use super::ConfigSet;

/// One object that references another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// Kind of the referencing object (`routes`, `services`, `plugin_configs`).
    pub kind: ResourceKind,
    /// Its id.
    pub id: String,
    /// True when the reference is a traffic-split `upstream_id` (APISIX words the
    /// delete error `plugin in route [1] ...`).
    pub via_plugin: bool,
}

impl Referrer {
    /// APISIX's delete refusal for `target_kind` (e.g. `can not delete this upstream,
    /// route [1] is still using it now`).
    pub fn delete_error(&self, target_kind: ResourceKind) -> String {
        let plugin = if self.via_plugin { "plugin in " } else { "" };
        format!(
            "can not delete this {}, {plugin}{} [{}] is still using it now",
            target_kind.singular(),
            self.kind.singular(),
            self.id
        )
    }
}

/// Objects of `set` that reference `(kind, id)`, in kind then id order. Objects that do
/// not parse are skipped (a stored set is valid; this is a best-effort scan).
///
/// References: `upstreams` by route/service `upstream_id` and by traffic-split
/// `upstream_id` in routes, services and plugin_configs; `services` by route
/// `service_id`; `plugin_configs` by route `plugin_config_id`. Other kinds are never
/// referenced.
pub fn referrers(set: &ConfigSet, kind: ResourceKind, id: &str) -> Vec<Referrer> {
    let mut out = Vec::new();
    let objects = |k: ResourceKind| set.objects.get(&k).into_iter().flatten();
    let mut push = |kind: ResourceKind, owner: &str, via_plugin: bool| {
        out.push(Referrer {
            kind,
            id: owner.to_owned(),
            via_plugin,
        });
    };
    match kind {
        ResourceKind::Upstreams => {
            for (owner, value) in objects(ResourceKind::Routes) {
                if let Ok(route) = Route::from_json(owner, value) {
                    if matches!(&route.upstream, Some(UpstreamRef::Id(u)) if u == id) {
                        push(ResourceKind::Routes, owner, false);
                    } else if split_uses(&route.plugins, id) {
                        push(ResourceKind::Routes, owner, true);
                    }
                }
            }
            for (owner, value) in objects(ResourceKind::Services) {
                if let Ok(service) = Service::from_json(owner, value) {
                    if matches!(&service.upstream, Some(UpstreamRef::Id(u)) if u == id) {
                        push(ResourceKind::Services, owner, false);
                    } else if split_uses(&service.plugins, id) {
                        push(ResourceKind::Services, owner, true);
                    }
                }
            }
            for (owner, value) in objects(ResourceKind::PluginConfigs) {
                if let Ok(plugins) = parse_plugin_config(value) {
                    if split_uses(&plugins, id) {
                        push(ResourceKind::PluginConfigs, owner, true);
                    }
                }
            }
        }
        ResourceKind::Services | ResourceKind::PluginConfigs => {
            for (owner, value) in objects(ResourceKind::Routes) {
                if let Ok(route) = Route::from_json(owner, value) {
                    let reference = if kind == ResourceKind::Services {
                        &route.service_id
                    } else {
                        &route.plugin_config_id
                    };
                    if reference.as_deref() == Some(id) {
                        push(ResourceKind::Routes, owner, false);
                    }
                }
            }
        }
        _ => {}
    }
    out
}

fn split_uses(plugins: &Plugins, upstream_id: &str) -> bool {
    plugins.traffic_split.iter().any(|split| {
        split.rules.iter().any(|rule| {
            rule.arms
                .iter()
                .any(|arm| matches!(&arm.target, ArmTarget::UpstreamId(u) if u == upstream_id))
        })
    })
}
