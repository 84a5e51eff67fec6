//! Rewrite configs: the `proxy-rewrite` plugin and a traffic-split arm's `rewrite`,
//! both parsed by [`Rewrite::from_json`] (uri, regex_uri, host, headers in the
//! `{set, add, remove}` or old flat form, and `body`), plus the rules that differ:
//!
//! - `proxy-rewrite` must not be empty (APISIX `minProperties: 1`) and has no `body`
//!   (the JSON body override is split's per-arm extension).
//! - An arm `rewrite` must not be empty, and its `body` must set at least one field.

use serde_json::Value;

use crate::rewrite::Rewrite;
use crate::ConfigError;

/// Parses the `proxy-rewrite` plugin config; paths are relative to it.
pub fn parse_proxy_rewrite(value: &Value) -> Result<Rewrite, ConfigError> {
    if let Some(obj) = value.as_object() {
        if obj.contains_key("body") {
            return Err(ConfigError::new(
                "body",
                "unknown field `body` (the body override is a traffic-split arm `rewrite` \
                 extension)",
            ));
        }
        if obj.is_empty() {
            return Err(ConfigError::new(
                "",
                "at least one of uri, regex_uri, host, headers is required",
            ));
        }
    }
    Rewrite::from_json(value)
}

/// Parses a traffic-split arm's `rewrite {uri, regex_uri, host, headers, body}`; paths
/// are relative to it.
pub fn parse_arm_rewrite(value: &Value) -> Result<Rewrite, ConfigError> {
    if let Some(obj) = value.as_object() {
        if obj.is_empty() {
            return Err(ConfigError::new(
                "",
                "at least one of uri, regex_uri, host, headers, body is required",
            ));
        }
        if obj
            .get("body")
            .and_then(Value::as_object)
            .is_some_and(|b| b.is_empty())
        {
            return Err(ConfigError::new("body", "must set at least one field"));
        }
    }
    Rewrite::from_json(value)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flat_headers_mean_set() {
        let r =
            parse_proxy_rewrite(&json!({"headers": {"X-Api-Version": "v2", "X-N": 3}})).unwrap();
        assert_eq!(r.headers.set.len(), 2);
        assert_eq!(r.headers.set[0].0.as_str(), "x-api-version");
        assert_eq!(r.headers.set[1].1, "3");
        assert!(r.headers.add.is_empty());
    }

    #[test]
    fn structured_headers() {
        let r = parse_proxy_rewrite(&json!({"headers": {
            "set": {"a": "1"}, "add": {"b": "2"}, "remove": ["c"]
        }}))
        .unwrap();
        assert_eq!(r.headers.set.len(), 1);
        assert_eq!(r.headers.add.len(), 1);
        assert_eq!(r.headers.remove[0].as_str(), "c");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "", "at least one of"),
            (json!({"uri": "v1"}), "uri", "must start with /"),
            (json!({"uri": "/a$uri"}), "uri", "not supported yet"),
            (
                json!({"regex_uri": ["^/a"]}),
                "regex_uri",
                "[regex, template]",
            ),
            (
                json!({"regex_uri": ["(", "/x"]}),
                "regex_uri[0]",
                "invalid regex",
            ),
            (json!({"host": "a b"}), "host", "not a host name"),
            (json!({"method": "POST"}), "method", "not supported yet"),
            (
                json!({"headers": {"bad name": "x"}}),
                "headers.bad name",
                "not a valid header name",
            ),
            (
                json!({"headers": {"x": "a\nb"}}),
                "headers.x",
                "not a valid header value",
            ),
            (
                json!({"headers": {"x": true}}),
                "headers.x",
                "must be a string or a number",
            ),
            (
                json!({"headers": {"x": "$remote_addr"}}),
                "headers.x",
                "not supported yet",
            ),
            (
                json!({"headers": {"set": {"a": "1"}, "foo": {}}}),
                "headers.foo",
                "unknown field",
            ),
            (
                json!({"headers": {"remove": ["ok", "b d"]}}),
                "headers.remove[1]",
                "not a valid header name",
            ),
            (json!({"headers": []}), "headers", "must be an object"),
            (
                json!({"body": {"model": "x"}}),
                "body",
                "unknown field `body`",
            ),
            (json!([]), "", "must be an object"),
        ];
        for (value, path, message) in cases {
            let err = parse_proxy_rewrite(&value).unwrap_err();
            assert_eq!(err.path, path, "{value}: {err}");
            assert!(err.message.contains(message), "{value}: {err}");
        }
    }

    #[test]
    fn arm_rewrite_body() {
        let r = parse_arm_rewrite(&json!({"uri": "/v2/chat", "body": {"model": "gpt-4o-mini"}}))
            .unwrap();
        assert_eq!(r.uri.as_deref(), Some("/v2/chat"));
        assert_eq!(r.body.unwrap()["model"], "gpt-4o-mini");
        let err = parse_arm_rewrite(&json!({"body": {}})).unwrap_err();
        assert_eq!(err.path, "body");
        let err = parse_arm_rewrite(&json!({"body": 5})).unwrap_err();
        assert_eq!(err.path, "body");
        let err = parse_arm_rewrite(&json!({})).unwrap_err();
        assert!(err.message.contains("at least one of"));
    }

    #[test]
    fn regex_uri_compiles() {
        let r = parse_arm_rewrite(&json!({"regex_uri": ["^/api/(.*)", "/v2/$1"]})).unwrap();
        let re = r.regex_uri.unwrap();
        assert!(re.regex.is_match("/api/x"));
        assert_eq!(re.template, "/v2/$1");
    }
}
