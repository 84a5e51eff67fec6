//! The guide's request bodies, copied byte for byte from
//! `load-balancing-ai-ml-api-with-apisix.md` (the text between `-d '` and `'`).

/// The `PUT /apisix/admin/routes/test-v1` body.
pub const PUT_TEST_V1: &str = include_str!("../../../testdata/guide/test-v1.json");

/// The `PUT /apisix/admin/routes/test-v2` body.
pub const PUT_TEST_V2: &str = include_str!("../../../testdata/guide/test-v2.json");

/// The `PUT /apisix/admin/routes/aimlapi-split` body.
pub const PUT_SPLIT: &str = include_str!("../../../testdata/guide/aimlapi-split.json");

/// The body of the verification POST and of the 100 load requests.
pub const CHAT_BODY: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
