//! `split-sim run` through the real split-core: determinism, hand-computed accuracy,
//! weight changes, chash key movement, SVG well-formedness, and the CLI.

use serde_json::{json, Value};
use split_sim::run::cli::{parse_change, GUIDE_ROUTE};
use split_sim::run::traffic::TrafficSpec;
use split_sim::run::{input, simulate, RunConfig, Simulation};

fn arm(host: &str, weight: u32) -> Value {
    json!({"weight": weight, "upstream": {"nodes": {format!("{host}:80"): 1}}})
}

fn split_route(arms: Vec<Value>, balancer: Option<Value>) -> Value {
    let mut rule = json!({"weighted_upstreams": arms});
    if let Some(b) = balancer {
        rule["balancer"] = b;
    }
    json!({
        "id": "r",
        "uri": "/chat/completions",
        "upstream": {"nodes": {"route:80": 1}},
        "plugins": {"traffic-split": {"rules": [rule]}}
    })
}

fn config(route: &Value, requests: u64) -> RunConfig {
    RunConfig {
        set: input::from_route_json(&route.to_string(), None, &[]).unwrap(),
        route_id: None,
        rule: 0,
        requests,
        threads: 1,
        traffic: TrafficSpec {
            seed: 7,
            ..TrafficSpec::default()
        },
        changes: Vec::new(),
        progress: false,
    }
}

fn run(cfg: &RunConfig) -> Simulation {
    simulate(cfg).unwrap_or_else(|e| panic!("simulate failed: {e:#}"))
}

fn hits(sim: &Simulation) -> Vec<u64> {
    let g = sim
        .report
        .groups
        .iter()
        .find(|g| g.rule == Some(0))
        .expect("target group");
    g.arms.iter().map(|a| a.hits).collect()
}

#[test]
fn three_to_one_over_eight_requests_is_exact() {
    let route = split_route(vec![arm("a", 3), arm("b", 1)], None);
    let sim = run(&config(&route, 8));
    assert_eq!(hits(&sim), vec![6, 2]);
    let g = &sim.report.groups[0];
    assert_eq!(g.rule, Some(0));
    assert_eq!(g.total, 8);
    assert_eq!(g.windows[0].window, 4);
    assert_eq!(g.worst_window_deviation, Some(0.0));
    assert_eq!(g.arms[0].expected, 6.0);
    assert_eq!(g.arms[1].expected_share, 0.25);
    let chi = g.chi_square.unwrap();
    assert_eq!(chi.statistic, 0.0);
    assert_eq!(chi.p_value, 1.0);
    assert_eq!(sim.report.selector, "roundrobin");
    assert_eq!(sim.report.not_found, 0);
}

#[test]
fn uneven_totals_round_to_a_neighbour_and_windows_stay_exact() {
    let route = split_route(vec![arm("a", 3), arm("b", 1)], None);
    let sim = run(&config(&route, 10));
    let h = hits(&sim);
    assert_eq!(h.iter().sum::<u64>(), 10);
    // 7.5 expected: 7 or 8.
    assert!(h[0] == 7 || h[0] == 8, "{h:?}");
    assert_eq!(sim.report.groups[0].worst_window_deviation, Some(0.0));
    // Weights 2:3:5 over 1,000 requests: exact.
    let route = split_route(vec![arm("a", 2), arm("b", 3), arm("c", 5)], None);
    let sim = run(&config(&route, 1000));
    assert_eq!(hits(&sim), vec![200, 300, 500]);
    assert_eq!(sim.report.groups[0].windows[0].window, 10);
    assert_eq!(sim.report.groups[0].worst_window_deviation, Some(0.0));
}

#[test]
fn json_is_byte_identical_for_the_same_seed_and_any_thread_count() {
    let route = split_route(
        vec![arm("a", 1), arm("b", 2), arm("c", 7)],
        Some(json!({"algorithm": "random", "seed": 3})),
    );
    let mut cfg = config(&route, 300_000);
    cfg.traffic.models = vec!["gpt-4".into(), "gpt-4o-mini".into()];
    cfg.changes = vec![parse_change("100k:5,3,2").unwrap()];
    let one = serde_json::to_string(&run(&cfg).report).unwrap();
    let again = serde_json::to_string(&run(&cfg).report).unwrap();
    assert_eq!(one, again);
    cfg.threads = 3;
    let threaded = serde_json::to_string(&run(&cfg).report).unwrap();
    assert_eq!(one, threaded, "threads must not change the result");

    // The same holds for round robin, where tickets carry across thread chunks.
    let route = split_route(vec![arm("a", 3), arm("b", 4)], None);
    let mut cfg = config(&route, 200_003);
    let seq = run(&cfg);
    cfg.threads = 2;
    let par = run(&cfg);
    assert_eq!(
        serde_json::to_string(&seq.report).unwrap(),
        serde_json::to_string(&par.report).unwrap()
    );
    assert_eq!(seq.report.groups[0].worst_window_deviation, Some(0.0));
}

#[test]
fn random_selector_chi_square_matches_the_formula() {
    let route = split_route(
        vec![arm("a", 1), arm("b", 1), arm("c", 2)],
        Some(json!({"algorithm": "random", "seed": 11})),
    );
    let sim = run(&config(&route, 4000));
    let g = &sim.report.groups[0];
    let h = hits(&sim);
    assert_eq!(h.iter().sum::<u64>(), 4000);
    let expected = [1000.0, 1000.0, 2000.0];
    let stat: f64 = h
        .iter()
        .zip(expected)
        .map(|(o, e)| (*o as f64 - e).powi(2) / e)
        .sum();
    let chi = g.chi_square.unwrap();
    assert!((chi.statistic - stat).abs() < 1e-9);
    assert_eq!(chi.dof, 2);
    // χ²(2) survival function is exp(−x/2).
    assert!((chi.p_value - (-stat / 2.0).exp()).abs() < 1e-9);
    // Seeded random is not exact, but it is not absurd either.
    assert!(chi.p_value > 1e-6, "{chi:?}");
    assert_eq!(sim.report.selector, "random");
}

#[test]
fn weight_change_rebuilds_the_snapshot() {
    let route: Value = serde_json::from_str(GUIDE_ROUTE).unwrap();
    let mut cfg = config(&route, 10_000);
    cfg.changes = vec![parse_change("5k:80,20").unwrap()];
    let sim = run(&cfg);
    // 5,000 at 50/50, then 5,000 at 80/20.
    assert_eq!(hits(&sim), vec![6500, 3500]);
    let g = &sim.report.groups[0];
    assert_eq!(g.arms[0].expected, 6500.0);
    assert_eq!(g.worst_window_deviation, Some(0.0));
    assert_eq!(g.windows.len(), 2);
    assert_eq!((g.windows[0].window, g.windows[0].picks), (2, 5000));
    assert_eq!((g.windows[1].window, g.windows[1].to), (5, 10_000));
    assert_eq!(sim.report.changes[0].at, 5000);
    assert_eq!(sim.report.weights, vec![50, 50]);
    // A change with the wrong number of weights is refused, naming the counts.
    cfg.changes = vec![parse_change("5k:1,2,3").unwrap()];
    let err = simulate(&cfg).unwrap_err().to_string();
    assert!(err.contains("3 weights") && err.contains("2 arms"), "{err}");
}

#[test]
fn chash_weight_change_moves_about_the_minimum_share_of_keys() {
    let route = split_route(
        vec![arm("a", 50), arm("b", 50)],
        Some(json!({"algorithm": "chash", "hash_on": "header", "key": "x-user-id"})),
    );
    let mut cfg = config(&route, 50_000);
    cfg.traffic.sticky_keys = 20_000;
    cfg.changes = vec![parse_change("25k:80,20").unwrap()];
    let sim = run(&cfg);
    assert_eq!(sim.report.selector, "chash");
    let m = &sim.report.key_moves[0];
    assert_eq!(m.keys, 20_000);
    assert!((m.minimum_share - 0.3).abs() < 1e-12);
    // Weighted rendezvous moves the minimum in expectation; 20k keys → ±2%.
    assert!((m.moved_share - 0.3).abs() < 0.02, "{m:?}");
    let h = hits(&sim);
    assert_eq!(h.iter().sum::<u64>(), 50_000);
    // 25k at ~50/50 + 25k at ~80/20 → ~32.5k on arm a.
    assert!((h[0] as f64 - 32_500.0).abs() < 1_500.0, "{h:?}");
}

#[test]
fn unmatched_paths_are_404s_and_unmatched_rules_use_the_route_upstream() {
    let route = split_route(vec![arm("a", 1)], None);
    let mut cfg = config(&route, 50);
    cfg.traffic.path = Some("/nope".into());
    let sim = run(&cfg);
    assert_eq!(sim.report.not_found, 50);
    assert!(sim.report.groups.is_empty());

    let mut route = split_route(vec![arm("a", 1), arm("b", 1)], None);
    route["plugins"]["traffic-split"]["rules"][0]["match"] =
        json!([{"vars": [["post_arg.model", "==", "gpt-4o"]]}]);
    let mut cfg = config(&route, 1000);
    cfg.traffic.models = vec!["gpt-4".into(), "gpt-4o".into()];
    let sim = run(&cfg);
    let split = sim
        .report
        .groups
        .iter()
        .find(|g| g.rule == Some(0))
        .unwrap();
    let plain = sim.report.groups.iter().find(|g| g.rule.is_none()).unwrap();
    assert_eq!(split.total + plain.total, 1000);
    assert!(split.total > 400 && split.total < 600, "{}", split.total);
    assert_eq!(split.worst_window_deviation, Some(0.0));
}

#[test]
fn svg_is_well_formed_with_one_path_per_arm() {
    let route = split_route(vec![arm("a", 1), arm("b", 2), arm("c", 3)], None);
    let mut cfg = config(&route, 6000);
    cfg.changes = vec![
        parse_change("2k:3,2,1").unwrap(),
        parse_change("4k:1,1,1").unwrap(),
    ];
    let svg = run(&cfg).svg();
    let mut reader = quick_xml::Reader::from_str(&svg);
    let mut paths = 0;
    let mut changes = 0;
    let mut depth = 0i32;
    let mut root_seen = false;
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Start(e) => {
                if e.name().as_ref() == b"svg" {
                    root_seen = true;
                }
                depth += 1;
            }
            quick_xml::events::Event::End(_) => depth -= 1,
            quick_xml::events::Event::Empty(e) => {
                if e.name().as_ref() == b"path" {
                    paths += 1;
                }
                let is_change = e
                    .attributes()
                    .any(|a| a.map(|a| a.value.as_ref() == b"change").unwrap_or(false));
                if is_change {
                    changes += 1;
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert!(root_seen);
    assert_eq!(depth, 0, "unbalanced tags");
    assert_eq!(paths, 3);
    assert_eq!(changes, 2);
}

#[test]
fn standalone_yaml_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apisix.yaml");
    std::fs::write(
        &path,
        "routes:\n  - id: canary\n    uri: /v1/*\n    upstream_id: stable\n    plugins:\n      traffic-split:\n        rules:\n          - weighted_upstreams:\n              - upstream_id: canary\n                weight: 1\n              - weight: 9\nupstreams:\n  - id: stable\n    nodes:\n      \"127.0.0.1:1980\": 1\n  - id: canary\n    nodes:\n      \"127.0.0.1:1981\": 1\n#END\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let set = input::from_standalone(&path, &text).unwrap();
    let mut cfg = config(&json!({}), 100);
    cfg.set = set;
    let sim = run(&cfg);
    assert_eq!(sim.report.route, "canary");
    assert_eq!(hits(&sim), vec![10, 90]);
}

#[test]
fn cli_json_is_deterministic_and_writes_svg() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plot.svg");
    let bin = env!("CARGO_BIN_EXE_split-sim");
    let out = |threads: &str| {
        let o = std::process::Command::new(bin)
            .args([
                "run",
                "-n",
                "20k",
                "--seed",
                "5",
                "--threads",
                threads,
                "--json",
            ])
            .args(["--change", "10k:80,20", "--model", "gpt-4,gpt-4o-mini"])
            .arg("--svg")
            .arg(&svg)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let a = out("1");
    let b = out("2");
    assert_eq!(a, b);
    let j: Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(j["route"], "aimlapi-split");
    assert_eq!(j["groups"][0]["arms"][0]["hits"], 13_000);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));

    let bad = std::process::Command::new(bin)
        .args(["run", "-n", "10", "--change", "5:1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("weights"));
}

#[test]
fn cli_compare_apisix_prints_three_rows() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_split-sim"))
        .args(["run", "--compare-apisix", "--workers", "2", "--trials", "2"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    for row in ["| 100 | 0 |", "| 1000 | 0 |", "| 1000000 | 0 |"] {
        assert!(text.contains(row), "{text}");
    }
}
