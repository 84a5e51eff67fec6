#![allow(dead_code)]
//! The guide's three admin bodies, byte-for-byte from
//! `load-balancing-ai-ml-api-with-apisix.md`, shared by every crate from `testdata/guide/`.

/// `PUT /apisix/admin/routes/test-v1`.
pub const TEST_V1: &str = include_str!("../../../testdata/guide/test-v1.json");

/// `PUT /apisix/admin/routes/test-v2`.
pub const TEST_V2: &str = include_str!("../../../testdata/guide/test-v2.json");

/// `PUT /apisix/admin/routes/aimlapi-split`.
pub const AIMLAPI_SPLIT: &str = include_str!("../../../testdata/guide/aimlapi-split.json");
