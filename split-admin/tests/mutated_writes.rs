//! Hostile bodies at the Admin API: seeded byte mutations of the guide's route and
//! upstream bodies, sent as PUT, POST and PATCH (whole and sub-path). A write that is
//! refused answers 4xx with a JSON `error_msg` and leaves the store byte-for-byte as it
//! was (the raw listings and the revision); an accepted one leaves a store that compiles
//! and that the live snapshot mirrors. Nothing answers 5xx.

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use split_admin::{Admin, AdminOptions, Snapshot};
use split_core::fuzzing::mutate::mutate;

/// Mutated writes sent, one store for all (accepted writes build on each other).
const CASES: u64 = 1_500;

/// What a refused write must leave unchanged: the raw answers of the listings.
async fn stored(h: &Harness) -> (u64, Bytes, Bytes) {
    let routes = h.get("/apisix/admin/routes").await;
    let upstreams = h.get("/apisix/admin/upstreams").await;
    assert_eq!(routes.status, StatusCode::OK);
    assert_eq!(upstreams.status, StatusCode::OK);
    (h.admin.revision(), routes.raw, upstreams.raw)
}

/// The writes and the bodies they are mutated from.
fn writes() -> Vec<(Method, &'static str, &'static str)> {
    vec![
        (Method::PUT, "/apisix/admin/routes/test-v1", GUIDE_V1),
        (Method::PUT, "/apisix/admin/routes/test-v2", GUIDE_V2),
        (
            Method::PUT,
            "/apisix/admin/routes/aimlapi-split",
            GUIDE_SPLIT,
        ),
        (Method::POST, "/apisix/admin/routes", GUIDE_V1),
        (Method::PUT, "/apisix/admin/upstreams/1", UPSTREAM),
        (
            Method::PATCH,
            "/apisix/admin/routes/aimlapi-split",
            r#"{"desc":"canary","plugins":{"traffic-split":{"rules":[{"weight":95,"upstream_id":"1"},{"weight":5,"upstream_id":"1"}]}}}"#,
        ),
        (
            Method::PATCH,
            "/apisix/admin/routes/test-v1/uri",
            r#""/v1/chat/completions""#,
        ),
        (
            Method::PATCH,
            "/apisix/admin/upstreams/1/nodes",
            r#"{"127.0.0.1:1980":1,"127.0.0.1:1981":0}"#,
        ),
    ]
}

#[tokio::test]
async fn mutated_writes_are_refused_cleanly_or_leave_a_valid_store() {
    let h = Harness::new();
    let writes = writes();
    // The PUTs of the guide's objects first, so PATCH and references have targets.
    for (method, path, body) in &writes {
        if *method == Method::PUT {
            let r = h.call(method.clone(), path, body).await;
            assert!(r.status.is_success(), "{path}: {} {}", r.status, r.json);
        }
    }
    let bodies: Vec<&[u8]> = writes.iter().map(|(_, _, b)| b.as_bytes()).collect();
    let (mut accepted, mut refused) = (0u32, 0u32);
    for case in 0..CASES {
        let mut rng = ChaCha8Rng::seed_from_u64(case);
        let (method, path, body) = &writes[(rng.next_u64() % writes.len() as u64) as usize];
        let body = mutate(body.as_bytes(), &bodies, &mut |n| {
            (rng.next_u64() % n as u64) as usize
        });
        let shown = String::from_utf8_lossy(&body).into_owned();
        let before = stored(&h).await;
        let request = Request::builder()
            .method(method.clone())
            .uri(*path)
            .header("X-API-KEY", ADMIN_KEY)
            .body(Full::new(Bytes::from(body)))
            .expect("valid request");
        let r = send(&h.admin, request, local()).await;
        let context = format!(
            "case {case}: {method} {path} {shown:?} -> {} {}",
            r.status, r.json
        );
        assert!(
            r.status.is_success() || r.status.is_client_error(),
            "{context}"
        );
        if r.status.is_client_error() {
            refused += 1;
            assert!(
                r.json["error_msg"].as_str().is_some_and(|m| !m.is_empty()),
                "{context}"
            );
            assert_eq!(
                stored(&h).await,
                before,
                "a refused write changed the store: {context}"
            );
        } else {
            accepted += 1;
            assert_eq!(h.admin.revision(), before.0 + 1, "{context}");
            let set = h.admin.export();
            assert!(Snapshot::compile(set.clone()).is_ok(), "{context}");
            assert_eq!(&*h.live.load().source, &set, "{context}");
        }
    }
    eprintln!("{CASES} mutated writes: {accepted} accepted, {refused} refused");
    // What was answered is what was stored: the store reopened from disk lists the same.
    let last = stored(&h).await;
    let Harness { admin, dir, .. } = h;
    drop(admin);
    let reopened = Harness {
        admin: Admin::open_embedded(
            dir.path(),
            live(),
            AdminOptions {
                auth: auth(),
                read_only: None,
            },
        )
        .expect("reopen the store"),
        live: live(),
        dir,
    };
    assert_eq!(stored(&reopened).await, last);
    // Both outcomes must be common, or the test says little.
    assert!(
        accepted > 100 && refused > 500,
        "{accepted} accepted, {refused} refused"
    );
}
