//! `Snapshot::compile`: validate every object, resolve references, build selectors and
//! the route table.
//!
//! Order: upstreams, services, plugin_configs, consumers, the minor kinds, then routes
//! (in id order). Dangling references fail with APISIX's wording, e.g.
//! `upstream_id: failed to fetch upstream info by upstream id [99], response code: 404`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::consumer::Consumer;
use crate::config::plugins::Plugins;
use crate::config::route::{Route, UpstreamRef};
use crate::config::service::Service;
use crate::config::traffic_split::{ArmBalancer, ArmTarget, TrafficSplit};
use crate::config::upstream::{Balancer, Upstream};
use crate::config::ResourceKind;
use crate::matcher::{MatchSpec, RouteTable};
use crate::select::{stable_hash, Rendezvous, Schedule, SeededRandom, Selector};
use crate::stats::route_metrics::RouteMetrics;
use crate::ConfigError;

use super::objects::{parse_global_rule, parse_plugin_config};
use super::{
    priority_groups, validate_object, CompileError, CompiledArm, CompiledRoute, CompiledRule,
    CompiledUpstream, ConfigSet, RuleKey, Snapshot, UpstreamKey,
};

type Upstreams = BTreeMap<String, Arc<CompiledUpstream>>;

/// A compiled service: its plugins, hosts and resolved upstream.
struct ServiceEntry {
    service: Arc<Service>,
    upstream: Option<Arc<CompiledUpstream>>,
}

pub(super) fn compile(set: ConfigSet) -> Result<Snapshot, CompileError> {
    let empty = BTreeMap::new();
    let objects = |kind: ResourceKind| set.objects.get(&kind).unwrap_or(&empty);
    let fail = |kind: ResourceKind, id: &str| {
        let id = id.to_owned();
        move |error: ConfigError| CompileError {
            kind,
            id: id.clone(),
            error,
        }
    };

    let mut upstreams: Upstreams = BTreeMap::new();
    for (id, value) in objects(ResourceKind::Upstreams) {
        let mut upstream = Upstream::from_json(value).map_err(fail(ResourceKind::Upstreams, id))?;
        upstream.id = Some(id.clone());
        let key = UpstreamKey(stable_hash(format!("upstreams/{id}").as_bytes()));
        upstreams.insert(id.clone(), compile_upstream(Arc::new(upstream), key));
    }

    let mut services: BTreeMap<String, ServiceEntry> = BTreeMap::new();
    for (id, value) in objects(ResourceKind::Services) {
        let fail = fail(ResourceKind::Services, id);
        let service = Service::from_json(id, value).map_err(&fail)?;
        let upstream = resolve_upstream(
            service.upstream.as_ref(),
            &upstreams,
            &format!("services/{id}"),
        )
        .map_err(&fail)?;
        check_split_ids(&service.plugins, &upstreams).map_err(&fail)?;
        services.insert(id.clone(), ServiceEntry { service, upstream });
    }

    let mut plugin_configs: BTreeMap<String, Plugins> = BTreeMap::new();
    for (id, value) in objects(ResourceKind::PluginConfigs) {
        let fail = fail(ResourceKind::PluginConfigs, id);
        let plugins = parse_plugin_config(value).map_err(&fail)?;
        check_split_ids(&plugins, &upstreams).map_err(&fail)?;
        plugin_configs.insert(id.clone(), plugins);
    }

    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut consumers = Vec::new();
    for (id, value) in objects(ResourceKind::Consumers) {
        let fail = fail(ResourceKind::Consumers, id);
        let consumer = Consumer::from_json(value).map_err(&fail)?;
        if consumer.username != *id {
            return Err(fail(ConfigError::new(
                "username",
                format!("`{}` does not match the id `{id}`", consumer.username),
            )));
        }
        if let Some(auth) = &consumer.plugins.key_auth {
            if let Some(other) = keys.insert(auth.key.clone(), id.clone()) {
                return Err(fail(ConfigError::new(
                    "plugins.key-auth.key",
                    format!("duplicate key: consumer `{other}` already uses it"),
                )));
            }
        }
        consumers.push(Arc::new(consumer));
    }
    let consumers = crate::key_auth::KeyAuthIndex::build(consumers);

    let mut global_prometheus = false;
    for (id, value) in objects(ResourceKind::GlobalRules) {
        let plugins = parse_global_rule(value).map_err(fail(ResourceKind::GlobalRules, id))?;
        global_prometheus |= plugins.prometheus.is_some();
    }
    for kind in [ResourceKind::Ssls, ResourceKind::PluginMetadata] {
        for (id, value) in objects(kind) {
            validate_object(kind, id, value).map_err(fail(kind, id))?;
        }
    }

    let mut routes = Vec::new();
    for (id, value) in objects(ResourceKind::Routes) {
        let fail = fail(ResourceKind::Routes, id);
        let route = Route::from_json(id, value).map_err(&fail)?;
        let mut route =
            compile_route(route, &upstreams, &services, &plugin_configs).map_err(&fail)?;
        route.metrics = RouteMetrics::new(&route.route, &route.plugins, global_prometheus);
        if let Some(name) = route
            .plugins
            .key_auth_route
            .as_ref()
            .and_then(|k| k.anonymous_consumer.as_ref())
        {
            if consumers.by_name(name).is_none() {
                return Err(fail(ConfigError::new(
                    "plugins.key-auth.anonymous_consumer",
                    format!("consumer `{name}` does not exist"),
                )));
            }
        }
        routes.push(route);
    }

    let mut specs = Vec::new();
    let mut table_routes = Vec::new();
    for (index, compiled) in routes.iter().enumerate() {
        let route = &compiled.route;
        if !route.enabled {
            continue;
        }
        let hosts = match (&route.service_id, route.hosts.is_empty()) {
            (Some(service_id), true) => services
                .get(service_id)
                .map(|s| s.service.hosts.clone())
                .unwrap_or_default(),
            _ => route.hosts.clone(),
        };
        specs.push(MatchSpec {
            uris: route.uris.clone(),
            methods: route.methods.clone(),
            hosts,
            remote_addrs: route.remote_addrs.clone(),
            vars: route.vars.clone(),
            priority: route.priority,
        });
        table_routes.push(index);
    }

    Ok(Snapshot {
        routes,
        upstreams,
        source: Arc::new(set),
        consumers: Arc::new(consumers),
        table: RouteTable::build(specs),
        table_routes,
    })
}

fn fetch_upstream_error(id: &str) -> String {
    format!("failed to fetch upstream info by upstream id [{id}], response code: 404")
}

/// Resolves an object's own upstream (`upstream_id` or inline); `scope` names the owner
/// for the inline upstream's state key.
fn resolve_upstream(
    upstream: Option<&UpstreamRef>,
    upstreams: &Upstreams,
    scope: &str,
) -> Result<Option<Arc<CompiledUpstream>>, ConfigError> {
    match upstream {
        None => Ok(None),
        Some(UpstreamRef::Id(id)) => match upstreams.get(id) {
            Some(u) => Ok(Some(Arc::clone(u))),
            None => Err(ConfigError::new("upstream_id", fetch_upstream_error(id))),
        },
        Some(UpstreamRef::Inline(upstream)) => {
            let key = UpstreamKey(stable_hash(format!("{scope}/upstream").as_bytes()));
            Ok(Some(compile_upstream(Arc::clone(upstream), key)))
        }
    }
}

/// Every traffic-split `upstream_id` of `plugins` must exist.
fn check_split_ids(plugins: &Plugins, upstreams: &Upstreams) -> Result<(), ConfigError> {
    let Some(split) = &plugins.traffic_split else {
        return Ok(());
    };
    for rule in &split.rules {
        for arm in &rule.arms {
            if let ArmTarget::UpstreamId(id) = &arm.target {
                if !upstreams.contains_key(id) {
                    return Err(ConfigError::new(
                        format!("plugins.traffic-split.{}.upstream_id", arm.path),
                        fetch_upstream_error(id),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn compile_route(
    route: Route,
    upstreams: &Upstreams,
    services: &BTreeMap<String, ServiceEntry>,
    plugin_configs: &BTreeMap<String, Plugins>,
) -> Result<CompiledRoute, ConfigError> {
    let service = match &route.service_id {
        None => None,
        Some(id) => Some(services.get(id).ok_or_else(|| {
            ConfigError::new(
                "service_id",
                format!("failed to fetch service info by service id [{id}], response code: 404"),
            )
        })?),
    };
    let plugin_config = match &route.plugin_config_id {
        None => None,
        Some(id) => Some(plugin_configs.get(id).ok_or_else(|| {
            ConfigError::new(
                "plugin_config_id",
                format!(
                    "failed to fetch plugin config info by plugin config id [{id}], response \
                     code: 404"
                ),
            )
        })?),
    };
    check_split_ids(&route.plugins, upstreams)?;
    let scope = format!("routes/{}", route.id);
    let upstream = match &route.upstream {
        Some(own) => resolve_upstream(Some(own), upstreams, &scope)?,
        None => service.and_then(|s| s.upstream.clone()),
    };
    let mut plugins = service
        .map(|s| s.service.plugins.clone())
        .unwrap_or_default();
    if let Some(pc) = plugin_config {
        plugins = plugins.merged_with(pc);
    }
    plugins = plugins.merged_with(&route.plugins);
    let rules = match &plugins.traffic_split {
        Some(split) => compile_rules(&route.id, split, upstream.as_ref(), upstreams, &scope)?,
        None => Vec::new(),
    };
    let metrics = RouteMetrics::new(&route, &plugins, false);
    Ok(CompiledRoute {
        route: Arc::new(route),
        plugins,
        upstream,
        rules,
        metrics,
    })
}

fn compile_rules(
    route_id: &str,
    split: &TrafficSplit,
    route_upstream: Option<&Arc<CompiledUpstream>>,
    upstreams: &Upstreams,
    scope: &str,
) -> Result<Vec<CompiledRule>, ConfigError> {
    let mut rules = Vec::with_capacity(split.rules.len());
    for (index, rule) in split.rules.iter().enumerate() {
        let mut arms = Vec::with_capacity(rule.arms.len());
        for (arm_index, arm) in rule.arms.iter().enumerate() {
            let upstream = match &arm.target {
                ArmTarget::RouteUpstream => route_upstream.cloned(),
                ArmTarget::UpstreamId(id) => {
                    Some(Arc::clone(upstreams.get(id).ok_or_else(|| {
                        ConfigError::new(
                            format!("plugins.traffic-split.{}.upstream_id", arm.path),
                            fetch_upstream_error(id),
                        )
                    })?))
                }
                ArmTarget::Inline(upstream) => {
                    let key = format!("{scope}/plugins/traffic-split/{}", arm.path);
                    Some(compile_upstream(
                        Arc::clone(upstream),
                        UpstreamKey(stable_hash(key.as_bytes())),
                    ))
                }
            };
            arms.push(CompiledArm {
                label: arm
                    .name
                    .as_deref()
                    .map_or_else(|| arm_index.to_string().into(), Arc::from),
                upstream,
                rewrite: arm.rewrite.clone(),
                llm: arm.llm,
            });
        }
        let weights: Vec<u32> = rule.arms.iter().map(|a| a.weight).collect();
        let ids: Vec<u64> = rule.arms.iter().map(|a| a.id).collect();
        let (selector, hash_on) = match &rule.balancer {
            ArmBalancer::RoundRobin => (Selector::RoundRobin(Schedule::new(&weights)), None),
            ArmBalancer::Random { seed } => {
                (Selector::Random(SeededRandom::new(&weights, *seed)), None)
            }
            ArmBalancer::Chash(hash_on) => (
                Selector::Chash(Rendezvous::new(&ids, &weights), Schedule::new(&weights)),
                Some(hash_on.clone()),
            ),
        };
        let key = format!("{route_id}\u{0}{index}\u{0}{:016x}", rule.fingerprint);
        rules.push(CompiledRule {
            key: RuleKey(stable_hash(key.as_bytes())),
            srm: crate::stats::srm::SrmKey::new(route_id, index, &weights),
            matches: rule.matches.clone(),
            selector,
            arms,
            weights,
            hash_on,
            guard: rule.guard.clone(),
        });
    }
    Ok(rules)
}

/// Builds the node selector over the highest-priority group of `upstream`.
pub(crate) fn compile_upstream(upstream: Arc<Upstream>, key: UpstreamKey) -> Arc<CompiledUpstream> {
    let groups = priority_groups(&upstream.nodes);
    let top: &[usize] = groups.first().map_or(&[], Vec::as_slice);
    let weights: Vec<u32> = top.iter().map(|&i| upstream.nodes[i].weight).collect();
    let selector = match &upstream.balancer {
        Balancer::RoundRobin => Selector::RoundRobin(Schedule::new(&weights)),
        Balancer::Random { seed } => Selector::Random(SeededRandom::new(&weights, *seed)),
        Balancer::Chash(_) => {
            let ids: Vec<u64> = top
                .iter()
                .map(|&i| {
                    let node = &upstream.nodes[i];
                    stable_hash(format!("{}:{}", node.host, node.port).as_bytes())
                })
                .collect();
            Selector::Chash(Rendezvous::new(&ids, &weights), Schedule::new(&weights))
        }
    };
    let node_hosts = upstream
        .nodes
        .iter()
        .map(|n| super::node_host_header(&n.host, n.port, upstream.scheme))
        .collect();
    let node_names = upstream
        .nodes
        .iter()
        .map(|n| Arc::from(n.host.as_str()))
        .collect();
    Arc::new(CompiledUpstream {
        upstream,
        key,
        selector,
        groups,
        node_hosts,
        node_names,
    })
}
