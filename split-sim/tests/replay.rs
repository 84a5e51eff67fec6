//! `split-sim replay` on generated access logs.

use serde_json::{json, Value};
use split_sim::replay::{replay, Baseline};
use split_sim::run::{compile, input};

fn route(weights: [u32; 2], balancer: Option<Value>) -> Value {
    let mut rule = json!({"weighted_upstreams": [
        {"name": "v1", "weight": weights[0], "upstream": {"nodes": {"v1:80": 1}}},
        {"name": "v2", "weight": weights[1], "upstream": {"nodes": {"v2:80": 1}}}
    ]});
    if let Some(b) = balancer {
        rule["balancer"] = b;
    }
    json!({"id": "split", "uri": "/chat/completions", "plugins": {"traffic-split": {"rules": [rule]}}})
}

fn snapshot(v: &Value) -> split_core::snapshot::Snapshot {
    compile(input::from_route_json(&v.to_string(), None, &[]).unwrap()).unwrap()
}

/// `n` log lines from `users` consumers, logged on arms v1/v2 alternately.
fn log(n: usize, users: usize) -> String {
    (0..n)
        .map(|i| {
            json!({
                "time": "2026-11-26T07:00:00Z", "remote_addr": format!("10.0.0.{}", i % 250),
                "method": "POST", "uri": "/chat/completions", "status": 200,
                "route_id": "split", "rule": 0, "arm": if i % 2 == 0 { "v1" } else { "v2" },
                "upstream_addr": "1.2.3.4:80", "upstream_uri": "/v1/chat/completions",
                "upstream_status": 200, "request_time_ms": 12, "ttfb_ms": 5, "bytes_sent": 500,
                "consumer": format!("user{}", i % users), "model": "gpt-4",
                "prompt_tokens": 1, "completion_tokens": 7
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn diff_of_a_chash_weight_change_moves_about_the_minimum_of_keys() {
    let chash = Some(json!({"algorithm": "chash", "hash_on": "consumer"}));
    let old = snapshot(&route([50, 50], chash.clone()));
    let new = snapshot(&route([80, 20], chash));
    let r = replay(&log(2000, 400), &Baseline::Config(&old), &new);
    assert_eq!(r.mode, "diff");
    assert_eq!(r.requests, 2000);
    assert_eq!(r.skipped, 0);
    assert_eq!(r.sticky.source, "chash key");
    assert_eq!(r.sticky.keys, 400);
    // Minimum share to move from 50/50 to 80/20 is 30%; 400 keys → sd ≈ 2.3%.
    assert!((r.sticky.moved_share - 0.3).abs() < 0.1, "{:?}", r.sticky);
    let v1 = r
        .placements
        .iter()
        .find(|p| p.at.arm.as_deref() == Some("v1"))
        .unwrap();
    assert!(v1.new > v1.old, "{v1:?}");
    assert!((v1.new as f64 / 2000.0 - 0.8).abs() < 0.1, "{v1:?}");
}

#[test]
fn identical_configs_move_nothing() {
    let s = snapshot(&route([1, 3], None));
    let same = snapshot(&route([1, 3], None));
    let r = replay(&log(400, 50), &Baseline::Config(&s), &same);
    assert_eq!(r.moved, 0);
    assert_eq!(r.sticky.moved, 0);
    assert_eq!(r.sticky.source, "consumer");
    let counts: Vec<(u64, u64)> = r.placements.iter().map(|p| (p.old, p.new)).collect();
    assert_eq!(counts, vec![(100, 100), (300, 300)]);
}

#[test]
fn log_mode_compares_with_the_logged_arms() {
    let new = snapshot(&route([80, 20], None));
    let mut text = log(100, 10);
    text.push_str("\nnot json\n\n");
    let r = replay(&text, &Baseline::Logged, &new);
    assert_eq!(r.mode, "log");
    assert_eq!(r.requests, 100);
    assert_eq!(r.skipped, 1);
    let v1 = r
        .placements
        .iter()
        .find(|p| p.at.arm.as_deref() == Some("v1"))
        .unwrap();
    let v2 = r
        .placements
        .iter()
        .find(|p| p.at.arm.as_deref() == Some("v2"))
        .unwrap();
    assert_eq!((v1.old, v1.new), (50, 80));
    assert_eq!((v2.old, v2.new), (50, 20));
    // At least the 30 requests that changed arm share moved.
    assert!(r.moved >= 30);
}

#[test]
fn cli_replay_and_diff() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    std::fs::write(&log_path, log(200, 20)).unwrap();
    let old = dir.path().join("old.json");
    let new = dir.path().join("new.json");
    std::fs::write(&old, route([50, 50], None).to_string()).unwrap();
    std::fs::write(&new, route([90, 10], None).to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_split-sim");
    let o = std::process::Command::new(bin)
        .arg("replay")
        .arg(&log_path)
        .arg("--diff")
        .args([&old, &new])
        .arg("--json")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["requests"], 200);
    assert_eq!(j["placements"][0]["new"], 180);
    let o = std::process::Command::new(bin)
        .arg("replay")
        .arg(&log_path)
        .arg("--config")
        .arg(&new)
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(text.contains("requests that would move"), "{text}");
    // Neither --config nor --diff: a usage error.
    let o = std::process::Command::new(bin)
        .arg("replay")
        .arg(&log_path)
        .output()
        .unwrap();
    assert!(!o.status.success());
}
