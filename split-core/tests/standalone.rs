//! Standalone documents: `#END` marker, layout, ids, errors, JSON form, and the
//! render → parse round trip.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use split_core::config::standalone::{parse, render_yaml, Format};
use split_core::config::ResourceKind;
use split_core::snapshot::ConfigSet;

/// The guide's three routes (v1, v2, and the 50/50 split) in APISIX's standalone layout.
const GUIDE_YAML: &str = r#"routes:
  - id: test-v1
    uri: /test/v1
    upstream:
      type: roundrobin
      nodes:
        "api.aimlapi.com:443": 1
      scheme: https
      pass_host: node
  - id: test-v2
    uri: /test/v2
    upstream:
      type: roundrobin
      nodes:
        "api.aimlapi.com:443": 1
      scheme: https
      pass_host: node
  - id: aimlapi-split
    uri: /chat/completions
    upstream:
      type: roundrobin
      nodes:
        "api.aimlapi.com:443": 1
      scheme: https
      pass_host: node
    plugins:
      traffic-split:
        rules:
          - weight: 50
            upstream: {"type":"roundrobin","nodes":{"api.aimlapi.com:443":1},"scheme":"https","pass_host":"node"}
            rewrite: {"uri":"/v1/chat/completions"}
          - weight: 50
            upstream: {"type":"roundrobin","nodes":{"api.aimlapi.com:443":1},"scheme":"https","pass_host":"node"}
            rewrite: {"uri":"/v2/chat/completions"}
#END
"#;

fn yaml(text: &str) -> ConfigSet {
    parse(text, Format::Yaml).expect("valid standalone yaml")
}

fn ids(set: &ConfigSet, kind: ResourceKind) -> Vec<String> {
    set.objects
        .get(&kind)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn guide_routes_parse() {
    let set = yaml(GUIDE_YAML);
    assert_eq!(
        ids(&set, ResourceKind::Routes),
        ["aimlapi-split", "test-v1", "test-v2"]
    );
    assert_eq!(set.objects.len(), 1);
    let split = &set.objects[&ResourceKind::Routes]["aimlapi-split"];
    assert_eq!(
        split["plugins"]["traffic-split"]["rules"][1]["rewrite"]["uri"],
        "/v2/chat/completions"
    );
    assert_eq!(split["upstream"]["nodes"]["api.aimlapi.com:443"], 1);
}

#[test]
fn end_marker_is_required() {
    let without = GUIDE_YAML.replace("#END\n", "");
    let e = parse(&without, Format::Yaml).unwrap_err();
    assert_eq!(
        e.to_string(),
        "missing #END marker: file not applied (may be partially written)"
    );
    // A truncated file (marker not last) is refused too.
    let truncated = "#END\nroutes:\n  - uri: /a\n";
    assert!(parse(truncated, Format::Yaml).is_err());
    // Trailing whitespace, CRLF and surrounding spaces are fine.
    yaml("routes: []\n#END   \r\n\n");
    yaml("routes: []\r\n  #END");
    // A marker glued to other text is not the marker.
    assert!(parse("routes: [] #END\n", Format::Yaml).is_err());
    assert_eq!(yaml("#END\n"), ConfigSet::default());
}

#[test]
fn ids_from_id_username_or_index() {
    let set = yaml(
        "upstreams:\n  - id: 1\n    nodes: {\"127.0.0.1:1980\": 1}\n  - nodes: {\"127.0.0.1:1981\": 1}\n\
         consumers:\n  - username: jack\n    plugins: {key-auth: {key: k}}\n\
         routes:\n  - uri: /a\n    upstream_id: 1\n  - id: r2\n    uri: /b\n  - uri: /c\n#END\n",
    );
    assert_eq!(ids(&set, ResourceKind::Upstreams), ["1", "arr_1"]);
    assert_eq!(ids(&set, ResourceKind::Consumers), ["jack"]);
    assert_eq!(ids(&set, ResourceKind::Routes), ["arr_0", "arr_2", "r2"]);
    // The integer id keeps its JSON type; a generated id is written into the object.
    assert_eq!(set.objects[&ResourceKind::Upstreams]["1"]["id"], json!(1));
    assert_eq!(
        set.objects[&ResourceKind::Routes]["arr_2"]["id"],
        json!("arr_2")
    );
    assert!(set.objects[&ResourceKind::Consumers]["jack"]
        .get("id")
        .is_none());
}

#[test]
fn duplicate_ids_are_refused_with_the_path() {
    let e = parse(
        "routes:\n  - {id: a, uri: /a}\n  - {id: b, uri: /b}\n  - {id: c, uri: /c}\n  - {id: b, uri: /d}\n#END\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(e.path, "routes[3].id");
    // 1 and "1" are the same id.
    let e = parse(
        "upstreams:\n  - {id: 1}\n  - {id: \"1\"}\n#END\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(e.path, "upstreams[1].id");
    // A generated id collides with an explicit one.
    let e = parse(
        "routes:\n  - {id: arr_1, uri: /a}\n  - {uri: /b}\n#END\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(e.path, "routes[1].id");
    let e = parse(
        "consumers:\n  - {username: a}\n  - {username: a}\n#END\n",
        Format::Yaml,
    )
    .unwrap_err();
    assert_eq!(e.path, "consumers[1].username");
}

#[test]
fn layout_errors() {
    let cases = [
        ("protos: []\n#END\n", "protos", "not supported yet"),
        (
            "stream_routes: []\n#END\n",
            "stream_routes",
            "not supported yet",
        ),
        ("secrets: []\n#END\n", "secrets", "not supported yet"),
        ("plugins: []\n#END\n", "plugins", "not supported yet"),
        (
            "consumer_groups: []\n#END\n",
            "consumer_groups",
            "not supported yet",
        ),
        ("route: []\n#END\n", "route", "unknown top-level key"),
        ("routes: {uri: /a}\n#END\n", "routes", "must be a list"),
        ("routes: [5]\n#END\n", "routes[0]", "must be an object"),
        ("routes: [{id: 1.5}]\n#END\n", "routes[0].id", "integer"),
        ("routes: [{id: \"\"}]\n#END\n", "routes[0].id", "non-empty"),
        (
            "consumers: [{plugins: {}}]\n#END\n",
            "consumers[0].username",
            "required",
        ),
        ("- routes\n#END\n", "", "mapping"),
    ];
    for (text, path, msg) in cases {
        let e = parse(text, Format::Yaml).unwrap_err();
        assert_eq!(e.path, path, "{text:?}: {e}");
        assert!(e.message.contains(msg), "{text:?}: {e}");
    }
    let e = parse("routes:\n  - uri: /a\n   bad: 1\n#END\n", Format::Yaml).unwrap_err();
    assert!(e.message.contains("line"), "{e}");
}

#[test]
fn conf_versions_and_nulls_are_accepted() {
    let set =
        yaml("routes_conf_version: 3\nroutes:\n  - {id: a, uri: /a}\nupstreams:\nssls: []\n#END\n");
    assert_eq!(ids(&set, ResourceKind::Routes), ["a"]);
    // Empty kinds are not present, so equal documents give equal sets.
    assert_eq!(set.objects.len(), 1);
    assert!(parse("nope_conf_version: 3\n#END\n", Format::Yaml).is_err());
}

#[test]
fn json_form_needs_no_marker() {
    let set = parse(
        r#"{"routes":[{"id":"r","uri":"/x","upstream_id":"u"}],"upstreams":[{"id":"u","nodes":{"127.0.0.1:1980":1}}]}"#,
        Format::Json,
    )
    .expect("json standalone");
    assert_eq!(ids(&set, ResourceKind::Routes), ["r"]);
    assert_eq!(ids(&set, ResourceKind::Upstreams), ["u"]);
    let e = parse("{\"routes\": [", Format::Json).unwrap_err();
    assert!(e.message.contains("line 1"), "{e}");
}

#[test]
fn render_is_deterministic_and_round_trips() {
    let set = yaml(GUIDE_YAML);
    let text = render_yaml(&set);
    assert!(text.ends_with("\n#END\n"), "{text}");
    assert_eq!(render_yaml(&set), text);
    assert_eq!(
        parse(&text, Format::Yaml).expect("rendered yaml parses"),
        set
    );
    assert_eq!(render_yaml(&ConfigSet::default()), "#END\n");
    // Kinds in dependency order: upstreams before routes.
    let mixed = yaml(
        "routes:\n  - {id: r, uri: /r, upstream_id: u}\nupstreams:\n  - {id: u, nodes: {}}\n#END\n",
    );
    let text = render_yaml(&mixed);
    let up = text.find("upstreams:").expect("upstreams rendered");
    let rt = text.find("routes:").expect("routes rendered");
    assert!(up < rt, "{text}");
}

#[test]
fn render_writes_missing_identity() {
    let mut set = ConfigSet::default();
    set.objects.insert(
        ResourceKind::Routes,
        BTreeMap::from([("7".to_owned(), json!({"uri": "/x"}))]),
    );
    set.objects.insert(
        ResourceKind::Consumers,
        BTreeMap::from([("jack".to_owned(), json!({"plugins": {}}))]),
    );
    let back = parse(&render_yaml(&set), Format::Yaml).expect("round trip");
    assert_eq!(ids(&back, ResourceKind::Routes), ["7"]);
    assert_eq!(back.objects[&ResourceKind::Routes]["7"]["id"], json!("7"));
    assert_eq!(
        back.objects[&ResourceKind::Consumers]["jack"]["username"],
        json!("jack")
    );
}

fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(vec![
            "001", "true", "null", "~", "1e3", "#END", "- x", "a: b", "'q'", "0x1F"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
        Just(Value::Null),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_-]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9_.-]{1,10}",
        "[0-9]{1,5}",
        Just("001".to_owned()),
        Just("true".to_owned())
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parse_render_round_trip(
        routes in prop::collection::btree_map(arb_id(), prop::collection::btree_map("[a-z_]{1,8}", arb_value(), 0..4), 0..5),
        consumers in prop::collection::btree_map("[a-z0-9_-]{1,8}", arb_value(), 0..3),
    ) {
        let mut set = ConfigSet::default();
        let r: BTreeMap<String, Value> = routes
            .into_iter()
            .map(|(id, fields)| {
                let mut obj: serde_json::Map<String, Value> = fields.into_iter().collect();
                obj.insert("id".into(), Value::String(id.clone()));
                (id, Value::Object(obj))
            })
            .collect();
        if !r.is_empty() {
            set.objects.insert(ResourceKind::Routes, r);
        }
        let c: BTreeMap<String, Value> = consumers
            .into_iter()
            .map(|(u, extra)| (u.clone(), json!({"username": u, "desc": extra})))
            .collect();
        if !c.is_empty() {
            set.objects.insert(ResourceKind::Consumers, c);
        }
        let text = render_yaml(&set);
        let back = parse(&text, Format::Yaml).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, set, "{}", text);
    }
}

#[test]
fn parsed_documents_compile() {
    let snapshot =
        split_core::snapshot::Snapshot::compile(yaml(GUIDE_YAML)).expect("guide compiles");
    assert_eq!(snapshot.routes.len(), 3);
    let split = snapshot
        .routes
        .iter()
        .find(|r| r.route.id == "aimlapi-split")
        .expect("split route");
    // The guide's shorthand is one rule with two arms, each with its own rewrite.
    assert_eq!(split.rules.len(), 1);
    assert_eq!(split.rules[0].weights, vec![50, 50]);
    // APISIX's docs example: a generated route id and an integer upstream id reference.
    let docs = yaml(
        "routes:\n  -\n    uri: /hello\n    upstream_id: 1\nupstreams:\n  -\n    id: 1\n    nodes:\n      \"127.0.0.1:1980\": 1\n    type: roundrobin\n#END\n",
    );
    assert_eq!(ids(&docs, ResourceKind::Routes), ["arr_0"]);
    let snapshot = split_core::snapshot::Snapshot::compile(docs).expect("docs example compiles");
    assert_eq!(snapshot.upstreams.keys().collect::<Vec<_>>(), ["1"]);
}
