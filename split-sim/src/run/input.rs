//! Where the simulated configuration comes from: a route JSON as sent to the Admin API,
//! or a standalone `apisix.yaml`/JSON document; and how a `--change` edits its weights.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::Value;
use split_core::config::standalone::{self, Format};
use split_core::config::ResourceKind;
use split_core::snapshot::{ConfigSet, Snapshot};

/// A configuration to simulate, and the route/rule whose weights `--change` edits.
#[derive(Debug, Clone)]
pub struct Input {
    /// The raw objects.
    pub set: ConfigSet,
    /// Target route id.
    pub route_id: String,
    /// Target rule index in that route's traffic-split.
    pub rule: usize,
}

/// Reads a route JSON file (the body of `PUT /apisix/admin/routes/{id}`). The id is
/// `id_override`, else the body's `id`, else `route`. `extra_upstreams` are upstream
/// JSON objects (with `id`) the route may reference.
pub fn from_route_json(
    text: &str,
    id_override: Option<&str>,
    extra_upstreams: &[Value],
) -> anyhow::Result<ConfigSet> {
    let mut route: Value = serde_json::from_str(text).context("route file is not valid JSON")?;
    let Some(obj) = route.as_object_mut() else {
        bail!("route file must hold a JSON object");
    };
    let id = match (id_override, obj.get("id")) {
        (Some(id), _) => id.to_owned(),
        (None, Some(Value::String(s))) => s.clone(),
        (None, Some(Value::Number(n))) => n.to_string(),
        (None, _) => "route".to_owned(),
    };
    obj.insert("id".into(), Value::String(id.clone()));
    let mut set = ConfigSet::default();
    set.objects
        .entry(ResourceKind::Routes)
        .or_default()
        .insert(id, route);
    for (i, u) in extra_upstreams.iter().enumerate() {
        let uid = match u.get("id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => bail!("upstream file #{}: needs an `id`", i + 1),
        };
        set.objects
            .entry(ResourceKind::Upstreams)
            .or_default()
            .insert(uid, u.clone());
    }
    Ok(set)
}

/// Reads a standalone document; YAML unless the file name ends in `.json`.
pub fn from_standalone(path: &Path, text: &str) -> anyhow::Result<ConfigSet> {
    let format = if path.extension().is_some_and(|e| e == "json") {
        Format::Json
    } else {
        Format::Yaml
    };
    standalone::parse(text, format).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Reads any configuration file: `.yaml`/`.yml` → standalone YAML; JSON with a
/// top-level `routes` or `upstreams` list → standalone JSON; other JSON → one route.
pub fn load_any(path: &Path) -> anyhow::Result<ConfigSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    if is_yaml {
        return from_standalone(path, &text);
    }
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is neither YAML (by name) nor JSON", path.display()))?;
    if value.get("routes").is_some() || value.get("upstreams").is_some() {
        standalone::parse(&text, Format::Json)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    } else {
        from_route_json(&text, None, &[])
    }
}

/// Picks the target route: `id` if given, else the first route (in id order) that has a
/// traffic-split rule.
pub fn target(
    snapshot: &Snapshot,
    id: Option<&str>,
    rule: usize,
) -> anyhow::Result<(String, usize)> {
    let route = match id {
        Some(id) => snapshot
            .route(id)
            .with_context(|| format!("no route with id {id:?} in the configuration"))?,
        None => {
            let first = snapshot
                .routes
                .iter()
                .filter(|r| !r.rules.is_empty())
                .min_by(|a, b| a.route.id.cmp(&b.route.id));
            match first {
                Some(r) => r,
                None => bail!("no route with a traffic-split rule in the configuration"),
            }
        }
    };
    if rule >= route.rules.len() && !route.rules.is_empty() {
        bail!(
            "route {:?} has {} traffic-split rule(s); --rule {rule} does not exist",
            route.route.id,
            route.rules.len()
        );
    }
    Ok((route.route.id.clone(), rule))
}

/// A copy of `set` in which rule `rule` of route `route_id` has `weights`.
pub fn with_weights(
    set: &ConfigSet,
    route_id: &str,
    rule: usize,
    weights: &[u32],
) -> anyhow::Result<ConfigSet> {
    let mut set = set.clone();
    let route = set
        .objects
        .get_mut(&ResourceKind::Routes)
        .and_then(|r| r.get_mut(route_id))
        .with_context(|| format!("route {route_id:?} not found"))?;
    let rules = route
        .pointer_mut("/plugins/traffic-split/rules")
        .and_then(Value::as_array_mut)
        .with_context(|| format!("route {route_id:?} has no plugins.traffic-split.rules"))?;
    let schema_form = rules.iter().any(|r| r.get("weighted_upstreams").is_some());
    let arms: Vec<&mut Value> = if schema_form {
        let r = rules
            .get_mut(rule)
            .with_context(|| format!("route {route_id:?} has no rule {rule}"))?;
        match r
            .get_mut("weighted_upstreams")
            .and_then(Value::as_array_mut)
        {
            Some(w) => w.iter_mut().collect(),
            None => bail!("rule {rule} of route {route_id:?} has no weighted_upstreams"),
        }
    } else {
        // The guide's shorthand: the rules are the arms of one split.
        if rule != 0 {
            bail!("route {route_id:?} uses the shorthand form: it has one split, rule 0");
        }
        rules.iter_mut().collect()
    };
    if arms.len() != weights.len() {
        bail!(
            "--change gives {} weights but rule {rule} of route {route_id:?} has {} arms",
            weights.len(),
            arms.len()
        );
    }
    for (arm, w) in arms.into_iter().zip(weights) {
        let Some(obj) = arm.as_object_mut() else {
            bail!("an arm of rule {rule} is not an object");
        };
        obj.insert("weight".into(), Value::from(*w));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn guide_like() -> ConfigSet {
        let route = json!({
            "uri": "/chat/completions",
            "plugins": {"traffic-split": {"rules": [
                {"weight": 50, "upstream": {"nodes": {"a:1": 1}}},
                {"weight": 50, "upstream": {"nodes": {"b:1": 1}}}
            ]}}
        });
        from_route_json(&route.to_string(), Some("split"), &[]).unwrap()
    }

    #[test]
    fn route_id_comes_from_flag_body_or_default() {
        let s = from_route_json(r#"{"id":"x","uri":"/"}"#, None, &[]).unwrap();
        assert!(s.objects[&ResourceKind::Routes].contains_key("x"));
        let s = from_route_json(r#"{"id":7,"uri":"/"}"#, None, &[]).unwrap();
        assert_eq!(s.objects[&ResourceKind::Routes]["7"]["id"], "7");
        let s = from_route_json(r#"{"uri":"/"}"#, None, &[]).unwrap();
        assert!(s.objects[&ResourceKind::Routes].contains_key("route"));
        assert!(from_route_json("[1]", None, &[]).is_err());
    }

    #[test]
    fn shorthand_weights_change() {
        let set = with_weights(&guide_like(), "split", 0, &[80, 20]).unwrap();
        let rules =
            &set.objects[&ResourceKind::Routes]["split"]["plugins"]["traffic-split"]["rules"];
        assert_eq!(rules[0]["weight"], 80);
        assert_eq!(rules[1]["weight"], 20);
        assert!(with_weights(&guide_like(), "split", 0, &[1]).is_err());
        assert!(with_weights(&guide_like(), "split", 1, &[1, 1]).is_err());
    }

    #[test]
    fn schema_weights_change() {
        let route = json!({
            "uri": "/x",
            "plugins": {"traffic-split": {"rules": [
                {"match": [], "weighted_upstreams": [{"weight": 1}]},
                {"weighted_upstreams": [{"upstream_id": "1", "weight": 3}, {"weight": 1}]}
            ]}}
        });
        let set = from_route_json(&route.to_string(), Some("r"), &[]).unwrap();
        let set = with_weights(&set, "r", 1, &[1, 9]).unwrap();
        let wu = &set.objects[&ResourceKind::Routes]["r"]["plugins"]["traffic-split"]["rules"][1]
            ["weighted_upstreams"];
        assert_eq!(wu[0]["weight"], 1);
        assert_eq!(wu[1]["weight"], 9);
    }
}
