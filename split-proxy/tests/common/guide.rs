//! The guide's request bodies, copied byte for byte from
//! `load-balancing-ai-ml-api-with-apisix.md` (the text between `-d '` and `'`).

/// The `PUT /apisix/admin/routes/test-v1` body.
pub const PUT_TEST_V1: &str = r#"{
    "uri": "/test/v1",
    "upstream": {
      "type": "roundrobin",
      "nodes": {"api.aimlapi.com:443": 1},
      "scheme": "https",
      "pass_host": "node"
    }
  }"#;

/// The `PUT /apisix/admin/routes/test-v2` body.
pub const PUT_TEST_V2: &str = r#"{
    "uri": "/test/v2",
    "upstream": {
      "type": "roundrobin",
      "nodes": {"api.aimlapi.com:443": 1},
      "scheme": "https",
      "pass_host": "node"
    }
  }"#;

/// The `PUT /apisix/admin/routes/aimlapi-split` body.
pub const PUT_SPLIT: &str = r#"{
    "id": "aimlapi-split",
    "uri": "/chat/completions",
    "upstream": {
      "type": "roundrobin",
      "nodes": {"api.aimlapi.com:443": 1},
      "scheme": "https",
      "pass_host": "node"
    },
    "plugins": {
      "traffic-split": {
        "rules": [
          {
            "weight": 50,
            "upstream": {"type":"roundrobin","nodes":{"api.aimlapi.com:443":1},"scheme":"https","pass_host":"node"},
            "rewrite": {"uri":"/v1/chat/completions"}
          },
          {
            "weight": 50,
            "upstream": {"type":"roundrobin","nodes":{"api.aimlapi.com:443":1},"scheme":"https","pass_host":"node"},
            "rewrite": {"uri":"/v2/chat/completions"}
          }
        ]
      }
    }
  }"#;

/// The body of the verification POST and of the 100 load requests.
pub const CHAT_BODY: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;
