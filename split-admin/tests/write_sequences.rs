//! Property: no sequence of PUT/PATCH/DELETE (valid or not, over a small id space) leaves
//! a stored state that fails `Snapshot::compile`, and the live snapshot always mirrors
//! the store.

mod common;

use common::*;
use http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use split_admin::Snapshot;

#[derive(Debug, Clone)]
enum Op {
    Put { path: String, body: String },
    Patch { path: String, body: String },
    Delete { path: String },
}

fn id() -> impl Strategy<Value = u8> {
    1u8..=3
}

fn upstream_body() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(UPSTREAM.to_owned()),
        Just(r#"{"nodes":{"127.0.0.1:2":0,"127.0.0.1:3":5},"type":"roundrobin"}"#.to_owned()),
        Just(r#"{"nodes":"not-a-map"}"#.to_owned()),
        Just(r#"{"nodes":{"127.0.0.1:1":1},"bogus":true}"#.to_owned()),
    ]
}

fn route_body() -> impl Strategy<Value = String> {
    prop_oneof![
        id().prop_map(|u| format!(r#"{{"uri":"/a","upstream_id":"{u}"}}"#)),
        Just(GUIDE_V1.to_owned()),
        Just(GUIDE_SPLIT.replace("\"id\": \"aimlapi-split\",", "")),
        (id(), id()).prop_map(|(a, b)| format!(
            r#"{{"uri":"/s","upstream_id":"{a}","plugins":{{"traffic-split":{{"rules":[{{"weighted_upstreams":[{{"upstream_id":"{b}","weight":3}},{{"weight":1}}]}}]}}}}}}"#
        )),
        Just(r#"{"uri":5,"upstream_id":"1"}"#.to_owned()),
        Just("{not json".to_owned()),
    ]
}

fn patch_body() -> impl Strategy<Value = String> {
    prop_oneof![
        id().prop_map(|u| format!(r#"{{"upstream_id":"{u}"}}"#)),
        Just(r#"{"uri":null}"#.to_owned()),
        Just(r#"{"desc":"patched"}"#.to_owned()),
        Just(r#"{"upstream":null}"#.to_owned()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (id(), upstream_body()).prop_map(|(i, body)| Op::Put {
            path: format!("/apisix/admin/upstreams/{i}"),
            body
        }),
        (id(), route_body()).prop_map(|(i, body)| Op::Put {
            path: format!("/apisix/admin/routes/{i}"),
            body
        }),
        (id(), patch_body()).prop_map(|(i, body)| Op::Patch {
            path: format!("/apisix/admin/routes/{i}"),
            body
        }),
        id().prop_map(|i| Op::Delete {
            path: format!("/apisix/admin/upstreams/{i}")
        }),
        id().prop_map(|i| Op::Delete {
            path: format!("/apisix/admin/routes/{i}")
        }),
    ]
}

#[test]
fn random_write_sequences_keep_the_store_compilable() {
    let config = Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let accepted_total = std::cell::Cell::new(0u64);
    let rejected_total = std::cell::Cell::new(0u64);
    runner
        .run(&proptest::collection::vec(op(), 1..24), |ops| {
            rt.block_on(async {
                let h = Harness::new();
                let mut accepted = 0u64;
                for op in &ops {
                    let r = match op {
                        Op::Put { path, body } => h.put(path, body).await,
                        Op::Patch { path, body } => h.call(Method::PATCH, path, body).await,
                        Op::Delete { path } => h.call(Method::DELETE, path, "").await,
                    };
                    let ok = matches!(r.status, StatusCode::OK | StatusCode::CREATED);
                    prop_assert!(
                        ok || matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND),
                        "{op:?} -> {} {}",
                        r.status,
                        r.json
                    );
                    accepted += u64::from(ok);
                    if ok {
                        accepted_total.set(accepted_total.get() + 1);
                    } else {
                        rejected_total.set(rejected_total.get() + 1);
                    }
                    let stored = h.admin.export();
                    prop_assert!(
                        Snapshot::compile(stored.clone()).is_ok(),
                        "{op:?} left an invalid store"
                    );
                    prop_assert_eq!(&*h.live.load().source, &stored);
                    prop_assert_eq!(h.admin.revision(), accepted);
                }
                Ok(())
            })
        })
        .expect("property holds");
    // The generator must exercise both outcomes, or the property says nothing.
    assert!(
        accepted_total.get() > 20,
        "accepted {}",
        accepted_total.get()
    );
    assert!(
        rejected_total.get() > 20,
        "rejected {}",
        rejected_total.get()
    );
}
