//! The per-arm `llm` option: `{"include_usage": true}` asks the upstream for token usage
//! in streamed replies by adding `stream_options.include_usage: true` to JSON request
//! bodies with `"stream": true` (OpenAI sends usage in streams only when asked).
//!
//! An arm `rewrite.body` cannot do this: it sets fields unconditionally, and OpenAI
//! rejects `stream_options` on a request that does not stream.

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::ConfigError;

/// Validated `llm` option of a traffic-split arm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArmLlm {
    /// Add `stream_options.include_usage: true` to streamed requests.
    pub include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArmLlm {
    include_usage: Option<bool>,
}

impl ArmLlm {
    /// Parses the `llm` object of an arm; paths are relative to it.
    pub fn from_json(value: &Value) -> Result<ArmLlm, ConfigError> {
        if !value.is_object() {
            return Err(ConfigError::new("", "expected an object"));
        }
        let raw: RawArmLlm = fields::from_value(value)?;
        Ok(ArmLlm {
            include_usage: raw.include_usage.unwrap_or(false),
        })
    }

    /// True when a request body may need editing for this arm.
    pub fn needs_body(&self) -> bool {
        self.include_usage
    }
}

/// `body` with `stream_options.include_usage: true` when it is a JSON object with
/// `"stream": true`; `None` when nothing changes (not JSON, not streaming, or already
/// asked). Other fields keep their order; a non-object `stream_options` is replaced.
pub fn request_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    if obj.get("stream") != Some(&Value::Bool(true)) {
        return None;
    }
    let options = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !options.is_object() {
        *options = Value::Object(serde_json::Map::new());
    }
    let options = options.as_object_mut()?;
    if options.get("include_usage") == Some(&Value::Bool(true)) {
        return None;
    }
    options.insert("include_usage".to_owned(), Value::Bool(true));
    serde_json::to_vec(&value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_streamed_json_requests_change() {
        let out = request_stream_usage(br#"{"model":"m","stream":true,"messages":[]}"#).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"model":"m","stream":true,"messages":[],"stream_options":{"include_usage":true}}"#
        );
        let out = request_stream_usage(
            br#"{"stream":true,"stream_options":{"x":1,"include_usage":false}}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"stream":true,"stream_options":{"x":1,"include_usage":true}}"#
        );
        assert_eq!(request_stream_usage(br#"{"stream":false}"#), None);
        assert_eq!(request_stream_usage(br#"{"model":"m"}"#), None);
        assert_eq!(request_stream_usage(br#"{"stream":"true"}"#), None);
        assert_eq!(
            request_stream_usage(br#"{"stream":true,"stream_options":{"include_usage":true}}"#),
            None
        );
        assert_eq!(request_stream_usage(b"[1]"), None);
        assert_eq!(request_stream_usage(b"not json"), None);
    }

    #[test]
    fn option_is_validated_with_paths() {
        assert_eq!(
            ArmLlm::from_json(&json!({"include_usage": true})),
            Ok(ArmLlm {
                include_usage: true
            })
        );
        assert_eq!(ArmLlm::from_json(&json!({})), Ok(ArmLlm::default()));
        let err = ArmLlm::from_json(&json!({"include_usage": "yes"})).unwrap_err();
        assert_eq!(err.path, "include_usage");
        let err = ArmLlm::from_json(&json!({"usage": true})).unwrap_err();
        assert_eq!(err.path, "usage");
        assert!(ArmLlm::from_json(&json!(1)).is_err());
    }
}
