//! The headline test: replay the guide "Load Balancing AI/ML API with Apache APISIX"
//! against split-proxy, with a local TLS mock standing in for api.aimlapi.com.

mod common;

use common::gateway::{sample, start};
use common::guide::{CHAT_BODY, PUT_SPLIT, PUT_TEST_V1, PUT_TEST_V2};
use common::{raw_request, Client, Mock, TestCa};
use http::Method;

/// A 40-character alphanumeric key from the std hasher's random seed.
fn random_key() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..40)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            char::from(ALPHABET[(h.finish() % 62) as usize])
        })
        .collect()
}

/// The guide's config.yaml with `key` in place of `YOUR_ADMIN_KEY_HERE`.
fn guide_config(key: &str) -> String {
    format!(
        "apisix:
  enable_admin: true            # Enable Admin API
  admin_key_required: true      # Reject unauthenticated Admin requests
  admin_key:
    - name: admin
      key: {key}  # Generated admin key - you can replace this with a secure key as you wish
      role: admin

admin:
  allow_admin:
    - 127.0.0.0/24   # Localhost & host network
    - 0.0.0.0/0      # Allow all (temporary/testing only)
"
    )
}

#[test]
fn guide_bodies_match_the_seed_document() {
    let seed = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/seed/load-balancing-ai-ml-api-with-apisix.md");
    let Ok(text) = std::fs::read_to_string(&seed) else {
        eprintln!(
            "note: {} not present; bodies checked against the embedded copy only",
            seed.display()
        );
        return;
    };
    for body in [PUT_TEST_V1, PUT_TEST_V2, PUT_SPLIT, CHAT_BODY] {
        assert!(text.contains(&format!("-d '{body}'")), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_guide_works_verbatim_and_splits_exactly_50_50() {
    let ca = TestCa::new();
    let aimlapi = Mock::https(
        "aimlapi",
        ca.server_config(&["api.aimlapi.com"], &[b"http/1.1"]),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    ca.write_pem(&ca_file);
    let key = random_key();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, guide_config(&key)).unwrap();
    let connect_to = format!("api.aimlapi.com:443:127.0.0.1:{}", aimlapi.addr.port());
    let access_log = dir.path().join("access.log");
    let gw = start(
        dir.path(),
        &[
            "-c",
            config.to_str().unwrap(),
            "--connect-to",
            &connect_to,
            "--ca-file",
            ca_file.to_str().unwrap(),
            "--access-log",
            access_log.to_str().unwrap(),
        ],
    );
    let stderr = gw.stderr();
    assert!(
        stderr.contains("allow_admin contains 0.0.0.0/0"),
        "loud warning expected:\n{stderr}"
    );
    assert!(
        !stderr.contains(&key),
        "the configured key is never printed:\n{stderr}"
    );
    let admin = gw.admin.expect("admin listener");
    let client = Client::new();

    // `curl -I http://127.0.0.1:9080 | grep Server`
    let head = raw_request(gw.proxy, b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1:9080\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\nConnection: close\r\n\r\n");
    let server_line = head
        .lines()
        .find(|l| l.contains("Server"))
        .unwrap_or_default();
    assert!(server_line.starts_with("Server: split/"), "{head}");

    // Without the key the Admin API refuses.
    let url = |id: &str| format!("http://{admin}/apisix/admin/routes/{id}");
    let r = client
        .send(Method::PUT, &url("test-v1"), &[], PUT_TEST_V1)
        .await;
    assert_eq!(r.status, 401, "{}", r.text());

    // The guide's three PUTs, byte for byte, as curl -d sends them.
    let form = ("content-type", "application/x-www-form-urlencoded");
    for (id, body) in [
        ("test-v1", PUT_TEST_V1),
        ("test-v2", PUT_TEST_V2),
        ("aimlapi-split", PUT_SPLIT),
    ] {
        let r = client
            .send(Method::PUT, &url(id), &[("x-api-key", &key), form], body)
            .await;
        assert_eq!(r.status, 201, "{id}: {}", r.text());
        assert!(r.headers["server"].to_str().unwrap().starts_with("split/"));
    }

    // The basic routes work on their own.
    for v in ["v1", "v2"] {
        let r = client.get(&gw.url(&format!("/test/{v}"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["path"], format!("/test/{v}"));
        assert_eq!(r.json()["host"], "api.aimlapi.com");
    }

    // "Verify Split Endpoint Functionality"
    let chat = gw.url("/chat/completions");
    let headers = [
        ("authorization", "Bearer sk-test-aimlapi"),
        ("content-type", "application/json"),
    ];
    let r = client.send(Method::POST, &chat, &headers, CHAT_BODY).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let first = aimlapi.hits().last().cloned().unwrap();
    assert_eq!(first.headers["authorization"], "Bearer sk-test-aimlapi");
    assert_eq!(first.headers["host"], "api.aimlapi.com");
    assert_eq!(&first.body[..], CHAT_BODY.as_bytes());

    // "Load Test & Distribution Validation": 100 requests, one after the other.
    let before = gw.metrics_text().await;
    let (v1_before, v2_before) = (
        aimlapi.count("/v1/chat/completions"),
        aimlapi.count("/v2/chat/completions"),
    );
    for _ in 0..100 {
        let r = client.send(Method::POST, &chat, &headers, CHAT_BODY).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(aimlapi.count("/v1/chat/completions") - v1_before, 50);
    assert_eq!(aimlapi.count("/v2/chat/completions") - v2_before, 50);
    let after = gw.metrics_text().await;
    for arm in ["0", "1"] {
        let name =
            format!(r#"split_arm_requests_total{{route="aimlapi-split",rule="0",arm="{arm}"}}"#);
        let delta = sample(&after, &name).unwrap_or(0.0) - sample(&before, &name).unwrap_or(0.0);
        assert_eq!(delta, 50.0, "{name}\n{after}");
    }
    let total: f64 = ["0", "1"]
        .iter()
        .map(|a| {
            sample(
                &after,
                &format!(r#"split_arm_requests_total{{route="aimlapi-split",rule="0",arm="{a}"}}"#),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(total, 101.0);
    // The mock reports usage {prompt 5, completion 7} on every answer.
    let tokens: f64 = ["0", "1"]
        .iter()
        .filter_map(|a| {
            sample(
                &after,
                &format!(r#"split_llm_tokens_total{{type="completion",route="aimlapi-split",arm="{a}",consumer="",model="gpt-4"}}"#),
            )
        })
        .sum();
    assert_eq!(tokens, 101.0 * 7.0, "{after}");

    // "Check logs for upstream hits": the access log says which arm served each request.
    let logged = common::wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(&access_log)
            .is_ok_and(|t| t.matches("aimlapi-split").count() == 101 && t.ends_with('\n'))
    });
    assert!(logged);
    let text = std::fs::read_to_string(&access_log).unwrap();
    let split: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["route_id"] == "aimlapi-split")
        .collect();
    let v1 = split
        .iter()
        .filter(|v| v["upstream_uri"] == "/v1/chat/completions")
        .count();
    let v2 = split
        .iter()
        .filter(|v| v["upstream_uri"] == "/v2/chat/completions")
        .count();
    assert_eq!(v1 + v2, 101);
    assert!(v1.abs_diff(v2) == 1, "{v1} / {v2}");
    for v in &split {
        assert_eq!(v["model"], "gpt-4");
        assert_eq!(v["status"], 200);
        assert_eq!(
            v["upstream_addr"],
            format!("127.0.0.1:{}", aimlapi.addr.port())
        );
    }
}
