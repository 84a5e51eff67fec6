//! The fixed payloads: the guide's chat request and an OpenAI-shaped answer.

/// The guide's chat request body (`-d '...'` of its curl commands).
pub const CHAT_REQUEST: &str = r#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#;

/// The same request asking for a streamed answer.
pub const CHAT_STREAM_REQUEST: &str =
    r#"{"model":"gpt-4","stream":true,"messages":[{"role":"user","content":"ping"}]}"#;

/// The fixed non-streaming answer (small, with `usage` as a real API sends it).
pub const CHAT_RESPONSE: &str = concat!(
    r#"{"id":"chatcmpl-bench","object":"chat.completion","model":"gpt-4","#,
    r#""choices":[{"index":0,"message":{"role":"assistant","#,
    r#""content":"Pong! How can I assist you today?"},"finish_reason":"stop"}],"#,
    r#""usage":{"prompt_tokens":8,"completion_tokens":9,"total_tokens":17}}"#
);

/// First SSE event, sent as soon as the response starts.
pub const SSE_FIRST: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","#,
    r#""choices":[{"index":0,"delta":{"role":"assistant","content":"Pong!"}}]}"#,
    "\n\n"
);

/// The rest of the stream, sent after the gap.
pub const SSE_REST: &str = concat!(
    r#"data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","#,
    r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    "\n\ndata: [DONE]\n\n"
);

/// True when a request body asks for a streamed answer (`"stream":true`, any spacing).
pub fn wants_stream(body: &[u8]) -> bool {
    let compact: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    compact
        .windows(b"\"stream\":true".len())
        .any(|w| w == b"\"stream\":true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_flag_is_detected_only_when_true() {
        assert!(wants_stream(CHAT_STREAM_REQUEST.as_bytes()));
        assert!(wants_stream(br#"{"stream" : true}"#));
        assert!(!wants_stream(CHAT_REQUEST.as_bytes()));
        assert!(!wants_stream(br#"{"stream":false}"#));
        assert!(!wants_stream(b""));
    }

    #[test]
    fn payloads_are_valid_sse_and_json_shaped() {
        assert!(CHAT_RESPONSE.starts_with('{') && CHAT_RESPONSE.ends_with('}'));
        assert!(SSE_FIRST.starts_with("data: ") && SSE_FIRST.ends_with("\n\n"));
        assert!(SSE_REST.ends_with("data: [DONE]\n\n"));
    }
}
