//! Process lifecycle: exit 64 on bad config before binding, the generated admin key,
//! `validate`, standalone reload under load, graceful drain on SIGTERM, malformed
//! requests.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::{run, start, try_start};
use common::{raw_request, wait_until, Client, Mock};
use serde_json::json;

fn route_doc(node: &str, uri: &str) -> String {
    json!({"routes": [{"id": "r", "uri": uri, "upstream": {"nodes": {node: 1}}}]}).to_string()
}

#[test]
fn bad_config_exits_64_before_binding() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    std::fs::write(
        &file,
        r#"{"routes":[{"id":"r","uri":"/x","upstream":{"nodes":{"127.0.0.1:1":-1}}}]}"#,
    )
    .unwrap();
    let (status, err) = try_start(dir.path(), &["--standalone", file.to_str().unwrap()])
        .err()
        .expect("must not start");
    assert_eq!(status.and_then(|s| s.code()), Some(64), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("split-proxy: "))
        .unwrap();
    assert!(line.contains("apisix.json: "), "{err}");
    assert!(line.contains("nodes"), "{err}");
    assert!(!err.contains("listening"), "{err}");

    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apisix:\n  admin_key:\n    - name: admin\n      key: YOUR_ADMIN_KEY_HERE\n      role: admin\n",
    )
    .unwrap();
    let (status, err) = try_start(dir.path(), &["-c", config.to_str().unwrap()])
        .err()
        .expect("placeholder key must be refused");
    assert_eq!(status.and_then(|s| s.code()), Some(64), "{err}");
    assert!(
        err.contains("config.yaml: ") && err.contains("YOUR_ADMIN_KEY_HERE"),
        "{err}"
    );

    let (code, _, err) = run(&["--connect-to", "nonsense", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--connect-to"), "{err}");
}

#[test]
fn validate_reports_field_paths() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("apisix.yaml");
    std::fs::write(
        &good,
        "routes:\n  - uri: /x\n    upstream:\n      nodes:\n        \"127.0.0.1:1\": 1\n#END\n",
    )
    .unwrap();
    let (code, out, err) = run(&["validate", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "routes:\n  - uri: /x\n    upstream:\n      nodes:\n        \"127.0.0.1:1\": 1\n      pass_host: rewrite\n#END\n").unwrap();
    let (code, _, err) = run(&["validate", bad.to_str().unwrap()]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.starts_with("split-proxy: ") && err.contains("bad.yaml: "),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "deployment:\n  admin:\n    allow_admin:\n      - 127.0.0.0/24\n",
    )
    .unwrap();
    let (code, out, err) = run(&["validate", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn admin_key_is_generated_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &[]);
    let key_file = dir.path().join("data/admin.key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(key.len(), 40);
    assert!(gw.stderr().contains(&key), "printed once on generation");
    assert!(
        gw.stderr().contains("admin auth: on (1 key)"),
        "{}",
        gw.stderr()
    );
    drop(gw);
    let gw = start(dir.path(), &[]);
    assert!(
        !gw.stderr().contains(&key),
        "never printed again: {}",
        gw.stderr()
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_reload_under_load_loses_no_request() {
    let a = Mock::http("a");
    let b = Mock::http("b");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.yaml");
    std::fs::write(&file, format!("{}\n#END\n", route_doc(&a.node(), "/load"))).unwrap();
    let gw = start(dir.path(), &["--standalone", file.to_str().unwrap()]);
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (url, stop, failures, total) = (
            gw.url("/load"),
            stop.clone(),
            failures.clone(),
            total.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let client = Client::new();
            // Bounded in time (30 s); the flag stops it much earlier.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match client.try_send(http::Method::GET, &url, &[], "").await {
                    Ok(r) if r.status == 200 => {}
                    _ => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
                total.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A half-written file (no #END) and an invalid one are ignored; the old config serves.
    std::fs::write(&file, route_doc(&b.node(), "/load")).unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    std::fs::write(
        &file,
        "routes:\n  - uri: /load\n    upstream: {nodes: {\"127.0.0.1:1\": -5}}\n#END\n",
    )
    .unwrap();
    let refused = wait_until(Duration::from_secs(5), || {
        gw.stderr().contains("standalone config refused")
    });
    assert!(refused, "{}", gw.stderr());
    assert_eq!(b.count("/load"), 0);
    // Now a valid new version: traffic moves to b.
    std::fs::write(&file, format!("{}\n#END\n", route_doc(&b.node(), "/load"))).unwrap();
    let moved = wait_until(Duration::from_secs(5), || b.count("/load") > 20);
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        moved,
        "traffic never reached the new upstream: {}",
        gw.stderr()
    );
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "of {}",
        total.load(Ordering::SeqCst)
    );
    assert!(a.count("/load") > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_exits_0() {
    let mock = Mock::http("slow");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("apisix.json");
    std::fs::write(&file, route_doc(&mock.node(), "/slow/*")).unwrap();
    let mut gw = start(
        dir.path(),
        &["--standalone", file.to_str().unwrap(), "--grace", "10s"],
    );
    let url = gw.url("/slow/1500");
    let in_flight = tokio::spawn(async move { Client::new().get(&url).await });
    let arrived = wait_until(Duration::from_secs(5), || mock.count("/slow/1500") == 1);
    assert!(arrived);
    gw.signal("TERM");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let status = tokio::task::spawn_blocking(move || {
        let s = gw.wait_exit(Duration::from_secs(10));
        (s, gw.stderr())
    })
    .await
    .unwrap();
    assert_eq!(status.0.and_then(|s| s.code()), Some(0), "{}", status.1);
    assert!(status.1.contains("draining"), "{}", status.1);
}

#[test]
fn malformed_requests_get_4xx_and_the_process_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &[]);
    let bad_header = raw_request(
        gw.proxy,
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01Header: 1\r\n\r\n",
    );
    assert_split_error(&bad_header, "400 Bad Request", "400 Bad Request:");
    let mut huge = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "a".repeat(200)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let too_big = raw_request(gw.proxy, &huge);
    assert_split_error(&too_big, "431 Request Header Fields Too Large", "431 ");
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let long_uri = raw_request(gw.proxy, long_uri.as_bytes());
    assert_split_error(&long_uri, "414 URI Too Long", "414 ");
    // A good request, then a bad one on the same connection: both answers are split's.
    let pipelined = raw_request(
        gw.proxy,
        b"GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nBad\x02: 1\r\n\r\n",
    );
    let second = pipelined.find("HTTP/1.1 400").expect(&pipelined);
    assert!(pipelined.starts_with("HTTP/1.1 404"), "{pipelined}");
    assert_split_error(&pipelined[second..], "400 Bad Request", "400 Bad Request:");
    let bad_chunked = raw_request(
        gw.proxy,
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert!(
        bad_chunked.is_empty() || bad_chunked.starts_with("HTTP/1.1 4"),
        "{bad_chunked}"
    );
    let bad_path = raw_request(
        gw.proxy,
        b"GET /a/../../etc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(bad_path.starts_with("HTTP/1.1 400"), "{bad_path}");
    let ok = raw_request(
        gw.proxy,
        b"GET /still-alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 404"), "{ok}");
}

/// `raw` is split's JSON answer with `status` (not hyper's bare one) and the
/// connection is closed after it.
fn assert_split_error(raw: &str, status: &str, msg_prefix: &str) {
    let (head, body) = raw.split_once("\r\n\r\n").expect(raw);
    assert!(
        head.starts_with(&format!("HTTP/1.1 {status}\r\n")),
        "{head}"
    );
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nserver: split/"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: close"), "{head}");
    let json: serde_json::Value = serde_json::from_str(body).expect(body);
    let msg = json["error_msg"].as_str().expect(body);
    assert!(msg.starts_with(msg_prefix), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_role_serves_apisix_yaml_next_to_config_without_admin_api() {
    let mock = Mock::http("m");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let key = "k".repeat(40);
    std::fs::write(
        &config,
        format!("deployment:\n  role: data_plane\n  role_data_plane:\n    config_provider: yaml\n  admin:\n    admin_key:\n      - name: admin\n        key: {key}\n        role: admin\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("apisix.yaml"),
        format!("{}\n#END\n", route_doc(&mock.node(), "/dp")),
    )
    .unwrap();
    let gw = start(dir.path(), &["-c", config.to_str().unwrap()]);
    assert!(gw.stderr().contains("standalone file"), "{}", gw.stderr());
    let client = Client::new();
    let r = client.get(&gw.url("/dp")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // As in APISIX, a data plane has no Admin API (even with --admin-listen given).
    assert_eq!(gw.admin, None, "{}", gw.stderr());
    assert!(
        gw.stderr().contains("admin API disabled"),
        "{}",
        gw.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served() {
    use http_body_util::{BodyExt, Full};
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &[]);
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<bytes::Bytes>>();
    let req = http::Request::get(gw.url("/nope"))
        .body(Full::default())
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 404);
    assert!(res.headers()["server"]
        .to_str()
        .unwrap()
        .starts_with("split/"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"error_msg":"404 Route Not Found"}"#);
}

const ONE_WORKER_KEY: &str = "one-worker-admin-key-0123456789abcdef";

/// `--workers 1` runs the data plane, the Admin API and the background tasks on the main
/// thread. Everything still works there: admin writes (the store's disk work moves off
/// that thread), an exact split under concurrent clients, SSE without buffering, and a
/// drain on SIGTERM that finishes the request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_worker_serves_admin_writes_an_exact_split_sse_and_drains() {
    let (a, b) = (Mock::http("a"), Mock::http("b"));
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::write_admin_config(dir.path(), ONE_WORKER_KEY);
    let mut gw = start(
        dir.path(),
        &["-c", &config, "--workers", "1", "--grace", "10s"],
    );
    assert!(gw.stderr().contains("(1 worker thread)"), "{}", gw.stderr());
    let admin = gw.admin.expect("admin listener");
    let route = json!({
        "uri": "/*",
        "upstream": {"type": "roundrobin", "nodes": {a.node(): 1, b.node(): 1}},
    });
    let r = Client::new()
        .send(
            http::Method::PUT,
            &format!("http://{admin}/apisix/admin/routes/r"),
            &[("x-api-key", ONE_WORKER_KEY)],
            route.to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // 8 clients × 25 requests at once: equal weights give exactly 50 each.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = gw.url("/load");
        tasks.push(tokio::spawn(async move {
            let client = Client::new();
            let mut ok = 0;
            for _ in 0..25 {
                if client.get(&url).await.status == 200 {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    assert_eq!(ok, 200);
    assert_eq!((a.count("/load"), b.count("/load")), (100, 100));

    // SSE: the first event arrives long before the last (four events 300 ms apart).
    let (status, _, chunks) = Client::new().chunks(&gw.url("/sse")).await;
    assert_eq!(status, 200);
    assert!(chunks.len() >= 4, "{chunks:?}");
    let spread = chunks.last().unwrap().0 - chunks[0].0;
    assert!(spread >= Duration::from_millis(600), "{spread:?}");

    // A slow request in flight when SIGTERM arrives still gets its answer.
    let url = gw.url("/slow/1500");
    let in_flight = tokio::spawn(async move { Client::new().get(&url).await });
    let arrived = wait_until(Duration::from_secs(5), || {
        a.count("/slow/1500") + b.count("/slow/1500") == 1
    });
    assert!(arrived);
    gw.signal("TERM");
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let s = gw.wait_exit(Duration::from_secs(10));
        (s, gw.stderr())
    })
    .await
    .unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{stderr}");
}

/// CPUs in a `Cpus_allowed_list` value (`0-1`, `0,2-3`), ascending.
fn cpu_list(text: &str) -> Vec<usize> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => cpus.push(part.parse().unwrap()),
        }
    }
    cpus
}

/// `Cpus_allowed_list` of `/proc/<pid>/task/<tid>/status` (or `/proc/self/status`).
fn allowed_cpus(status: &std::path::Path) -> Vec<usize> {
    let text = std::fs::read_to_string(status).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in status");
    cpu_list(line)
}

/// The allowed CPUs of each thread of `pid`, by thread name.
fn thread_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let name = std::fs::read_to_string(task.join("comm")).unwrap();
        threads.push((name.trim().to_owned(), allowed_cpus(&task.join("status"))));
    }
    threads.sort();
    threads
}

/// `--cpu-affinity` and `nginx_config.enable_cpu_affinity` pin worker i to the i-th CPU
/// the process may use; other threads (the blocking pool) keep every CPU, and so does
/// every thread without the option.
#[cfg(target_os = "linux")]
#[test]
fn workers_are_pinned_to_their_cpus_only_when_asked() {
    let all = allowed_cpus(std::path::Path::new("/proc/self/status"));
    let (cpu0, cpu1) = (all[0], all[1 % all.len()]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "nginx_config:\n  enable_cpu_affinity: true\n").unwrap();
    let config = config.to_str().unwrap();
    for args in [
        &["--workers", "2", "--cpu-affinity"][..],
        &["--workers", "2", "-c", config][..],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let gw = start(dir.path(), args);
        let line = format!("CPU affinity: worker 0 on CPU {cpu0}, worker 1 on CPU {cpu1}");
        assert!(gw.stderr().contains(&line), "{args:?}: {}", gw.stderr());
        let threads = thread_cpus(gw.pid());
        for (name, cpus) in &threads {
            let expected = match name.as_str() {
                "split-proxy" => vec![cpu0],
                "split-worker-1" => vec![cpu1],
                _ => all.clone(),
            };
            assert_eq!(cpus, &expected, "{args:?}: thread {name} in {threads:?}");
        }
        assert!(
            threads.iter().any(|(n, _)| n == "split-worker-1"),
            "{threads:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let gw = start(dir.path(), &["--workers", "2"]);
    assert!(!gw.stderr().contains("CPU affinity"), "{}", gw.stderr());
    for (name, cpus) in thread_cpus(gw.pid()) {
        assert_eq!(cpus, all, "thread {name} without --cpu-affinity");
    }
}

/// `nginx_config.worker_processes` sets the number of workers when `--workers` is not
/// given; `--workers` wins; `auto` is one per core.
#[cfg(target_os = "linux")]
#[test]
fn worker_processes_from_config_yaml_unless_the_flag_says_otherwise() {
    let workers_of = |gw: &common::gateway::Gateway| {
        let names = thread_cpus(gw.pid());
        1 + names
            .iter()
            .filter(|(n, _)| n.starts_with("split-worker-"))
            .count()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (value, args, expected) in [
        ("3", &[][..], 3),
        ("3", &["--workers", "1"][..], 1),
        ("auto", &[][..], cores),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        std::fs::write(
            &config,
            format!("nginx_config:\n  worker_processes: {value}\n"),
        )
        .unwrap();
        let mut all = vec!["-c", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let gw = common::gateway::start_with_own_workers(dir.path(), &all);
        let plural = if expected == 1 { "" } else { "s" };
        let summary = format!("({expected} worker thread{plural})");
        assert!(
            gw.stderr().contains(&summary),
            "{value} {args:?}: {}",
            gw.stderr()
        );
        assert_eq!(workers_of(&gw), expected, "{value} {args:?}");
        assert!(!gw.stderr().contains("worker_processes"), "{}", gw.stderr());
    }
}
