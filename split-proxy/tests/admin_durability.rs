//! Durability of the Admin API in the real binary: `kill -9` in the middle of a burst of
//! writes loses no acknowledged write, and concurrent writers to one id are serialised.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::{run, start};
use common::{Client, Gateway};
use http::Method;
use serde_json::{json, Value};

const KEY: &str = "durability-admin-key-0123456789abcdefghij";
const CLIENTS: usize = 4;
const WRITES: usize = 500;
/// Ids each client cycles through (its own, so per-id order is the client's order).
const IDS_PER_CLIENT: usize = 8;

fn write_config(dir: &Path) -> String {
    common::gateway::write_admin_config(dir, KEY)
}

fn admin_url(gw: &Gateway, path: &str) -> String {
    let admin = gw.admin.expect("admin listener");
    format!("http://{admin}/apisix/admin/{path}")
}

async fn admin(
    client: &Client,
    gw_url: &str,
    method: Method,
    body: String,
) -> Result<(u16, Value), String> {
    let reply = client
        .try_send(method, gw_url, &[("X-API-KEY", KEY)], body)
        .await?;
    let json = if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    };
    Ok((reply.status, json))
}

/// One write of the burst.
#[derive(Debug, Clone)]
enum Op {
    Put { path: String, name: String },
    Delete { path: String },
}

impl Op {
    fn path(&self) -> &str {
        match self {
            Op::Put { path, .. } | Op::Delete { path } => path,
        }
    }
}

/// The write `n` of client `c`: routes (inline upstream) for even clients, upstreams for
/// odd ones; every fifth write deletes.
fn op(c: usize, n: usize) -> Op {
    let kind = if c.is_multiple_of(2) {
        "routes"
    } else {
        "upstreams"
    };
    let path = format!("{kind}/c{c}-{}", n % IDS_PER_CLIENT);
    if n % 5 == 4 {
        Op::Delete { path }
    } else {
        Op::Put {
            path,
            name: format!("c{c}-w{n}"),
        }
    }
}

fn body(op: &Op) -> String {
    let Op::Put { path, name } = op else {
        return String::new();
    };
    let upstream = json!({"type": "roundrobin", "nodes": {"127.0.0.1:1980": 1}});
    let value = if path.starts_with("routes/") {
        json!({"uri": format!("/{name}"), "name": name, "upstream": upstream})
    } else {
        let mut u = upstream;
        u["name"] = json!(name);
        u
    };
    value.to_string()
}

/// What a client saw: every acknowledged write in order, then the write that was in
/// flight when the gateway died (if any).
#[derive(Debug, Default)]
struct Seen {
    acked: Vec<(Op, Value)>,
    in_flight: Option<Op>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9_mid_burst() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let gw = start(dir.path(), &["-c", &config]);
    let acks = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let acks = Arc::clone(&acks);
        let base = admin_url(&gw, "");
        clients.push(tokio::spawn(async move {
            let client = Client::new();
            let mut seen = Seen::default();
            for n in 0..WRITES / CLIENTS {
                let op = op(c, n);
                let method = match op {
                    Op::Put { .. } => Method::PUT,
                    Op::Delete { .. } => Method::DELETE,
                };
                let url = format!("{base}{}", op.path());
                match admin(&client, &url, method, body(&op)).await {
                    Ok((status, reply)) if (200..300).contains(&status) => {
                        seen.acked.push((op, reply));
                        acks.fetch_add(1, Ordering::SeqCst);
                    }
                    // A DELETE of an id this client already deleted: nothing changes.
                    Ok((404, _)) if matches!(op, Op::Delete { .. }) => {}
                    Ok((status, reply)) => panic!("{url}: {status} {reply}"),
                    Err(_) => {
                        // The gateway died: this write may or may not have committed.
                        seen.in_flight = Some(op);
                        break;
                    }
                }
            }
            seen
        }));
    }
    // kill -9 once half of the burst is acknowledged (bounded wait).
    let killed = common::wait_until(Duration::from_secs(120), || {
        acks.load(Ordering::SeqCst) >= WRITES / 2
    });
    assert!(
        killed,
        "the burst stalled: {} acks",
        acks.load(Ordering::SeqCst)
    );
    gw.signal("KILL");
    let mut seen = Vec::new();
    for client in clients {
        seen.push(client.await.expect("client task"));
    }
    let total: usize = seen.iter().map(|s| s.acked.len()).sum();
    assert!(
        total < WRITES,
        "the kill landed after the burst ({total} acks)"
    );
    eprintln!("kill -9 after {total} acknowledged writes of {WRITES}");
    drop(gw);

    // Restart on the same data dir: every acknowledged write is there.
    let gw = start(dir.path(), &["-c", &config]);
    let client = Client::new();
    let mut max_modified = 0;
    for s in &seen {
        let mut last: BTreeMap<&str, &(Op, Value)> = BTreeMap::new();
        for entry in &s.acked {
            last.insert(entry.0.path(), entry);
        }
        for (path, (op, ack)) in last {
            let (status, now) = admin(&client, &admin_url(&gw, path), Method::GET, String::new())
                .await
                .expect("restarted gateway answers");
            let pending = s.in_flight.as_ref().filter(|p| p.path() == path);
            match (op, status) {
                // The stored value, timestamps included, is the acknowledged one.
                (Op::Put { .. }, 200) if now["value"] == ack["value"] => {}
                (Op::Delete { .. }, 404) => {}
                _ => match pending {
                    // The write in flight at the kill committed: its content, not the ack's.
                    Some(Op::Put { name, .. }) if status == 200 => {
                        assert_eq!(now["value"]["name"], json!(name), "{path}")
                    }
                    Some(Op::Delete { .. }) if status == 404 => {}
                    _ => panic!("{path}: acknowledged {op:?} ({ack}) but found {status} {now}"),
                },
            }
            if let Some(m) = now["modifiedIndex"].as_u64() {
                max_modified = max_modified.max(m);
            }
        }
    }
    // Revisions continue after the restart.
    let (status, reply) = admin(
        &client,
        &admin_url(&gw, "upstreams/after-restart"),
        Method::PUT,
        json!({"nodes": {"127.0.0.1:1980": 1}}).to_string(),
    )
    .await
    .expect("write after restart");
    assert_eq!(status, 201, "{reply}");
    let (_, after) = admin(
        &client,
        &admin_url(&gw, "upstreams/after-restart"),
        Method::GET,
        String::new(),
    )
    .await
    .expect("get after restart");
    let created = after["createdIndex"].as_u64().expect("createdIndex");
    assert!(created > max_modified, "{created} <= {max_modified}");
    assert_eq!(after["modifiedIndex"].as_u64(), Some(created));
    drop(gw);
    assert_store_consistent(dir.path());
}

/// `dump` of the data dir reads back and validates as a standalone file.
fn assert_store_consistent(dir: &Path) {
    let data = dir.join("data");
    let data = data.to_str().expect("utf-8 temp path");
    let (code, out, err) = run(&["--data-dir", data, "dump"]);
    assert_eq!(code, Some(0), "dump: {err}");
    assert!(out.trim_end().ends_with("#END"), "{out}");
    let file = dir.join("dump.yaml");
    std::fs::write(&file, &out).expect("write dump");
    let (code, vout, err) = run(&["validate", file.to_str().expect("utf-8 temp path")]);
    assert_eq!(code, Some(0), "validate: {vout}{err}\n{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_to_one_id_are_serialised() {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 5;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path());
    let gw = start(dir.path(), &["-c", &config]);
    let url = admin_url(&gw, "routes/shared");
    let done = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (url, done) = (url.clone(), Arc::clone(&done));
        writers.push(tokio::spawn(async move {
            let client = Client::new();
            let mut acks = Vec::new();
            for r in 0..ROUNDS {
                let name = format!("writer-{w}-{r}");
                let body = json!({
                    "uri": "/shared", "name": name,
                    "upstream": {"nodes": {"127.0.0.1:1980": 1}}
                });
                let (status, reply) = admin(&client, &url, Method::PUT, body.to_string())
                    .await
                    .expect("gateway answers");
                assert!(status == 200 || status == 201, "{status} {reply}");
                acks.push((name, status));
            }
            done.fetch_add(1, Ordering::SeqCst);
            acks
        }));
    }
    // A reader polls while the writers run: indexes never go backwards.
    let poller = {
        let (url, done) = (url.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let client = Client::new();
            let mut seen: Vec<(u64, u64)> = Vec::new();
            for _ in 0..10_000 {
                if done.load(Ordering::SeqCst) == WRITERS {
                    break;
                }
                let (status, now) = admin(&client, &url, Method::GET, String::new())
                    .await
                    .expect("get");
                if status == 200 {
                    let created = now["createdIndex"].as_u64().expect("createdIndex");
                    let modified = now["modifiedIndex"].as_u64().expect("modifiedIndex");
                    seen.push((created, modified));
                }
            }
            seen
        })
    };
    let mut acks = Vec::new();
    for w in writers {
        acks.extend(w.await.expect("writer task"));
    }
    let seen = poller.await.expect("poller task");
    assert_eq!(acks.len(), WRITERS * ROUNDS);
    // Exactly one write created the object.
    assert_eq!(acks.iter().filter(|(_, s)| *s == 201).count(), 1);
    assert!(
        seen.windows(2)
            .all(|p| p[0].0 == p[1].0 && p[0].1 <= p[1].1),
        "indexes went backwards: {seen:?}"
    );

    // The final state is one of the written bodies, with a newer index than any polled,
    // and it survives kill -9.
    let client = Client::new();
    let (_, now) = admin(&client, &url, Method::GET, String::new())
        .await
        .expect("get");
    let names: Vec<Value> = acks.iter().map(|(n, _)| json!(n)).collect();
    assert!(names.contains(&now["value"]["name"]), "{now}");
    let modified = now["modifiedIndex"].as_u64().expect("modifiedIndex");
    assert!(
        seen.iter().all(|(_, m)| *m <= modified),
        "{seen:?} vs {modified}"
    );
    // Every write got its own revision: the object was modified once per write.
    let created = now["createdIndex"].as_u64().expect("createdIndex");
    assert_eq!(modified - created, (WRITERS * ROUNDS - 1) as u64, "{now}");
    gw.signal("KILL");
    drop(gw);
    let gw = start(dir.path(), &["-c", &config]);
    let (_, again) = admin(
        &client,
        &admin_url(&gw, "routes/shared"),
        Method::GET,
        String::new(),
    )
    .await
    .expect("get after restart");
    assert_eq!(again, now);
    drop(gw);
    assert_store_consistent(dir.path());
}
