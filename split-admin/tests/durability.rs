//! The redb store: persistence across reopen, concurrent writers, import/export, and the
//! read-only (standalone) mode.

mod common;

use std::sync::Arc;

use common::*;
use http::{Method, StatusCode};
use serde_json::json;
use split_admin::{Admin, AdminError, AdminOptions, Snapshot};
use split_core::config::ResourceKind;

fn reopen(dir: &std::path::Path) -> (Admin, split_admin::Live) {
    let live = live();
    let admin = Admin::open_embedded(
        dir,
        live.clone(),
        AdminOptions {
            auth: auth(),
            read_only: None,
        },
    )
    .expect("reopen");
    (admin, live)
}

#[tokio::test]
async fn state_and_revisions_survive_reopen() {
    let h = Harness::new();
    h.put("/apisix/admin/upstreams/u1", UPSTREAM).await;
    h.put("/apisix/admin/routes/aimlapi-split", GUIDE_SPLIT)
        .await;
    h.put("/apisix/admin/routes/test-v1", GUIDE_V1).await;
    h.call(Method::DELETE, "/apisix/admin/routes/test-v1", "")
        .await;
    let exported = h.admin.export();
    let rev = h.admin.revision();
    let split = h.get("/apisix/admin/routes/aimlapi-split").await.json;
    let Harness { admin, live, dir } = h;
    drop(admin);
    drop(live);

    let (admin, live) = reopen(dir.path());
    assert_eq!(admin.export(), exported);
    assert_eq!(admin.revision(), rev);
    assert_eq!(rev, 4);
    assert_eq!(live.load().routes.len(), 1, "published before open returns");
    let again = call(
        &admin,
        Method::GET,
        "/apisix/admin/routes/aimlapi-split",
        "",
        Some(ADMIN_KEY),
        local(),
    )
    .await;
    assert_eq!(again.json, split, "same value and indexes");
    // The next write continues the revision sequence.
    let r = call(
        &admin,
        Method::POST,
        "/apisix/admin/upstreams",
        UPSTREAM,
        Some(ADMIN_KEY),
        local(),
    )
    .await;
    assert_eq!(r.json["value"]["id"], "00000000000000000005");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_to_one_id_leave_one_consistent_winner() {
    let h = Arc::new(Harness::new());
    let mut tasks = Vec::new();
    for i in 0..8u32 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"uri": "/c", "desc": format!("writer-{i}"), "upstream": {"nodes": {"127.0.0.1:1": 1}}});
            h.put("/apisix/admin/routes/c", &body.to_string()).await.status
        }));
    }
    let mut created = 0;
    for t in tasks {
        let status = tokio::time::timeout(std::time::Duration::from_secs(60), t)
            .await
            .expect("writers finish")
            .expect("task ok");
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::OK => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, 1, "exactly one writer created the object");
    assert_eq!(h.admin.revision(), 8);
    let stored = h.get("/apisix/admin/routes/c").await.json;
    let desc = stored["value"]["desc"].as_str().expect("desc");
    assert!(desc.starts_with("writer-"));
    assert_eq!(stored["modifiedIndex"], 8);
    // The live snapshot shows the same winner as the store.
    let live = h.live.load();
    let source = live
        .source
        .objects
        .get(&ResourceKind::Routes)
        .and_then(|m| m.get("c"))
        .expect("live");
    assert_eq!(source["desc"], desc);
    // And so does a reopened store.
    let exported = h.admin.export();
    let h = Arc::into_inner(h).expect("tasks are done");
    let Harness { admin, dir, .. } = h;
    drop(admin);
    let (admin, _live) = reopen(dir.path());
    assert_eq!(admin.export(), exported);
}

#[tokio::test]
async fn import_replaces_everything_or_nothing() {
    let h = Harness::new();
    h.put("/apisix/admin/routes/old", GUIDE_V1).await;
    let mut set = split_core::snapshot::ConfigSet::default();
    set.objects
        .entry(ResourceKind::Upstreams)
        .or_default()
        .insert(
            "u1".into(),
            json!({"id": "u1", "nodes": {"127.0.0.1:1": 1}, "type": "roundrobin"}),
        );
    set.objects.entry(ResourceKind::Routes).or_default().insert(
        "new".into(),
        json!({"id": "new", "uri": "/new", "upstream_id": "u1"}),
    );
    h.admin.import(set.clone()).expect("valid set imports");
    assert_eq!(h.admin.export(), set);
    assert_eq!(h.admin.revision(), 2);
    assert_eq!(h.live.load().routes.len(), 1);
    assert_eq!(
        h.get("/apisix/admin/routes/old").await.status,
        StatusCode::NOT_FOUND
    );

    // A set with a dangling reference is refused whole.
    let mut bad = set.clone();
    bad.objects.entry(ResourceKind::Routes).or_default().insert(
        "bad".into(),
        json!({"id": "bad", "uri": "/bad", "upstream_id": "nope"}),
    );
    bad.objects.remove(&ResourceKind::Upstreams);
    let err = h.admin.import(bad).expect_err("dangling reference");
    assert!(matches!(err, AdminError::Invalid(_)), "{err}");
    assert_eq!(h.admin.export(), set);
    assert_eq!(h.admin.revision(), 2);
}

#[tokio::test]
async fn read_only_mode_serves_the_live_source_and_refuses_writes() {
    let mut set = split_core::snapshot::ConfigSet::default();
    set.objects.entry(ResourceKind::Routes).or_default().insert(
        "r1".into(),
        json!({"id": "r1", "uri": "/r1", "upstream": {"nodes": {"127.0.0.1:1": 1}}}),
    );
    let snapshot = Snapshot::compile(set.clone()).expect("valid set");
    let live = Arc::new(arc_swap::ArcSwap::from_pointee(snapshot));
    let msg = "standalone mode: edit apisix.yaml instead";
    let admin = Admin::read_only(
        live.clone(),
        AdminOptions {
            auth: auth(),
            read_only: Some(msg.into()),
        },
    );
    let r = call(
        &admin,
        Method::GET,
        "/apisix/admin/routes/r1",
        "",
        Some(ADMIN_KEY),
        local(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["value"]["uri"], "/r1");
    assert_eq!(r.json["createdIndex"], 0);
    let r = call(
        &admin,
        Method::GET,
        "/apisix/admin/routes",
        "",
        Some(ADMIN_KEY),
        local(),
    )
    .await;
    assert_eq!(r.json["total"], 1);
    for m in [Method::PUT, Method::POST, Method::PATCH, Method::DELETE] {
        let r = call(
            &admin,
            m.clone(),
            "/apisix/admin/routes/r1",
            GUIDE_V1,
            Some(ADMIN_KEY),
            local(),
        )
        .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(r.json, json!({"error_msg": msg}));
    }
    assert_eq!(admin.export(), set);
    assert_eq!(admin.revision(), 0);
    assert!(matches!(admin.import(set), Err(AdminError::ReadOnly(_))));
}

#[tokio::test]
async fn a_store_in_use_is_not_opened_twice() {
    let h = Harness::new();
    let second = Admin::open_embedded(
        h.dir.path(),
        live(),
        AdminOptions {
            auth: auth(),
            read_only: None,
        },
    );
    let err = second.expect_err("the database file is locked by the first Admin");
    assert!(matches!(err, AdminError::Store(_)), "{err}");
    // The first one keeps working.
    assert_eq!(
        h.put("/apisix/admin/upstreams/u", UPSTREAM).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn open_creates_the_data_dir_and_publishes_an_empty_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nested = dir.path().join("a/b");
    let live = live();
    let admin = Admin::open_embedded(
        &nested,
        live.clone(),
        AdminOptions {
            auth: auth(),
            read_only: None,
        },
    )
    .expect("open creates the directory");
    assert!(nested.join(split_admin::DB_FILE).exists());
    assert_eq!(admin.revision(), 0);
    assert!(live.load().routes.is_empty());
}
