//! Bodies read only when needed (post_arg matching, body rewrite, 413 over the limit),
//! the access log, SIGHUP reload of admin keys, and the store subcommands.

mod common;

use std::time::Duration;

use common::gateway::{run, start};
use common::{wait_until, Client, Mock};
use http::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_arg_routing_body_rewrite_413_and_access_log() {
    let mock = Mock::http("m");
    let node = mock.node();
    let up = json!({"nodes": {&node: 1}});
    let doc = json!({"routes": [
        {"id": "by-model", "uri": "/chat", "vars": [["post_arg.model", "==", "gpt-4o"]], "upstream": up,
         "plugins": {"traffic-split": {"rules": [{"weighted_upstreams": [
            {"upstream": up, "weight": 1, "name": "mini", "rewrite": {"uri": "/mini", "body": {"model": "gpt-4o-mini"}}}
         ]}]}}},
        {"id": "other", "uri": "/chat", "priority": -1, "upstream": up}
    ]});
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let log = dir.path().join("access.log");
    let gw = start(
        dir.path(),
        &[
            "--standalone",
            file.to_str().unwrap(),
            "--access-log",
            log.to_str().unwrap(),
            "--max-body-size",
            "1000",
        ],
    );
    let client = Client::new();
    let json_ct = [("content-type", "application/json")];

    let r = client
        .send(
            Method::POST,
            &gw.url("/chat?x=1"),
            &json_ct,
            r#"{"model":"gpt-4o","n":1}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let hit = mock.hits().pop().unwrap();
    // The client query is kept, as APISIX does for a rewrite without `?`.
    assert_eq!(hit.uri, "/mini?x=1");
    let sent: serde_json::Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(sent, json!({"model": "gpt-4o-mini", "n": 1}));
    assert_eq!(hit.headers["content-length"], hit.body.len().to_string());

    let r = client
        .send(
            Method::POST,
            &gw.url("/chat"),
            &json_ct,
            r#"{"model":"other"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(mock.hits().pop().unwrap().uri, "/chat");

    let big = format!(r#"{{"model":"gpt-4o","pad":"{}"}}"#, "x".repeat(2000));
    let r = client
        .send(Method::POST, &gw.url("/chat"), &json_ct, big)
        .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.json()["error_msg"].as_str().unwrap().contains("1000"));

    let complete = wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .map(|t| t.matches('\n').count() >= 3)
            .unwrap_or(false)
    });
    assert!(complete);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = &lines[0];
    assert_eq!(first["route_id"], "by-model");
    assert_eq!(first["rule"], 0);
    assert_eq!(first["arm"], "mini");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["uri"], "/chat?x=1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["upstream_status"], 200);
    assert_eq!(first["upstream_addr"], node);
    assert_eq!(first["upstream_uri"], "/mini?x=1");
    assert_eq!(first["model"], "gpt-4o");
    assert_eq!(first["prompt_tokens"], 5);
    assert_eq!(first["completion_tokens"], 7);
    assert_eq!(first["remote_addr"], "127.0.0.1");
    assert!(first["request_time_ms"].as_f64().unwrap() > 0.0);
    assert!(first["bytes_sent"].as_u64().unwrap() > 0);
    assert_eq!(lines[1]["route_id"], "other");
    assert_eq!(lines[1]["arm"], serde_json::Value::Null);
    assert_eq!(lines[2]["status"], 413);
}

fn config_with_key(key: &str) -> String {
    common::gateway::admin_yaml(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_admin_keys_and_refuses_a_bad_file() {
    let old_key = "a".repeat(20) + &"B".repeat(20);
    let new_key = "c".repeat(20) + &"D".repeat(20);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, config_with_key(&old_key)).unwrap();
    let gw = start(dir.path(), &["-c", config.to_str().unwrap()]);
    let client = Client::new();
    let list = format!("http://{}/apisix/admin/routes", gw.admin.unwrap());
    let status = |key: String| {
        let (client, list) = (client.clone(), list.clone());
        async move {
            client
                .send(Method::GET, &list, &[("x-api-key", &key)], "")
                .await
                .status
        }
    };
    assert_eq!(status(old_key.clone()).await, 200);
    assert_eq!(status(new_key.clone()).await, 401);

    // Keep a client connection open across the reload.
    std::fs::write(&config, config_with_key(&new_key)).unwrap();
    gw.signal("HUP");
    assert!(wait_until(Duration::from_secs(5), || gw
        .stderr()
        .contains("SIGHUP: config.yaml reloaded")));
    assert_eq!(status(new_key.clone()).await, 200);
    assert_eq!(status(old_key.clone()).await, 401);

    std::fs::write(&config, config_with_key("YOUR_ADMIN_KEY_HERE")).unwrap();
    gw.signal("HUP");
    assert!(wait_until(Duration::from_secs(5), || gw
        .stderr()
        .contains("SIGHUP: config.yaml refused")));
    assert_eq!(status(new_key).await, 200);
}

/// A config.yaml with one admin key and `nginx_config.error_log_level`.
fn config_with_level(key: &str, level: &str) -> String {
    config_with_key(key) + &format!("nginx_config:\n  error_log_level: {level}\n")
}

/// Sends requests to the dead route until stderr shows the warning (max ~5 s).
async fn warns_about_dead_node(gw: &common::gateway::Gateway, client: &Client) -> bool {
    for _ in 0..50 {
        let r = client.get(&gw.url("/dead")).await;
        assert_eq!(r.status, 502, "{}", r.text());
        if gw.stderr().contains("upstream connect failed") {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_log_level_applies_at_start_and_on_sighup_unless_the_flag_is_set() {
    let key_a = "a".repeat(20) + &"B".repeat(20);
    let key_b = "c".repeat(20) + &"D".repeat(20);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("apisix.json");
    let doc =
        json!({"routes": [{"id": "dead", "uri": "/dead", "upstream": {"nodes": {&dead: 1}}}]});
    std::fs::write(&routes, doc.to_string()).unwrap();
    let config = dir.path().join("config.yaml");
    let client = Client::new();

    // `error` from config.yaml: the connect failure (a warning) is not logged.
    std::fs::write(&config, config_with_level(&key_a, "error")).unwrap();
    let args = [
        "-c",
        config.to_str().unwrap(),
        "--standalone",
        routes.to_str().unwrap(),
    ];
    let gw = start(dir.path(), &args);
    let r = client.get(&gw.url("/dead")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !gw.stderr().contains("upstream connect failed"),
        "{}",
        gw.stderr()
    );
    // `warn` after SIGHUP: now it is.
    std::fs::write(&config, config_with_level(&key_a, "warn")).unwrap();
    gw.signal("HUP");
    assert!(warns_about_dead_node(&gw, &client).await, "{}", gw.stderr());
    drop(gw);

    // `--log-level error` wins over config.yaml, at start and after SIGHUP.
    std::fs::write(&config, config_with_level(&key_a, "warn")).unwrap();
    let mut flagged = args.to_vec();
    flagged.extend(["--log-level", "error"]);
    let gw = start(dir.path(), &flagged);
    let list = format!("http://{}/apisix/admin/routes", gw.admin.unwrap());
    let admin_status = |key: String| {
        let (client, list) = (client.clone(), list.clone());
        async move {
            client
                .send(Method::GET, &list, &[("x-api-key", &key)], "")
                .await
                .status
        }
    };
    assert_eq!(admin_status(key_a.clone()).await, 200);
    std::fs::write(&config, config_with_level(&key_b, "debug")).unwrap();
    gw.signal("HUP");
    // The reload's own log line is filtered out: the new admin key shows it happened.
    let mut reloaded = false;
    for _ in 0..50 {
        if admin_status(key_b.clone()).await == 200 {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reloaded, "{}", gw.stderr());
    let r = client.get(&gw.url("/dead")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !gw.stderr().contains("upstream connect failed"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_status_dump_then_serve_from_the_store() {
    let mock = Mock::http("m");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let file = dir.path().join("apisix.yaml");
    std::fs::write(
        &file,
        format!("routes:\n  - id: r1\n    uri: /hello\n    upstream:\n      nodes:\n        \"{}\": 1\n#END\n", mock.node()),
    )
    .unwrap();
    let (code, out, err) = run(&["--data-dir", data, "load", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    // A metrics port nothing listens on: `status` then reads the store offline.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics = free.local_addr().unwrap().to_string();
    drop(free);
    let (code, out, err) = run(&["--data-dir", data, "status", "--metrics-listen", &metrics]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("routes: 1"), "{out}");
    let (code, out, err) = run(&["--data-dir", data, "dump"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("/hello") && out.trim_end().ends_with("#END"),
        "{out}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "routes:\n  - id: r2\n    uri: /x\n    upstream_id: missing\n#END\n",
    )
    .unwrap();
    let (code, _, err) = run(&["--data-dir", data, "load", bad.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{err}");

    let gw = start(dir.path(), &[]);
    let r = Client::new().get(&gw.url("/hello")).await;
    assert_eq!(r.status, 200, "{}", r.text());
}
