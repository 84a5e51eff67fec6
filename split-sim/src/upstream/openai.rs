//! The OpenAI chat-completions wire format, as pure functions: request parsing, the
//! deterministic token counts, and the JSON of replies, stream chunks and errors.
//!
//! Token counts are whitespace-separated words: `prompt_tokens` counts the words of every
//! message's text content, `completion_tokens` the words of the reply actually sent.

use serde_json::{json, Map, Value};

/// What the mock needs from a chat-completions request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    /// `model`, echoed back (`split-mock` when absent).
    pub model: String,
    /// `stream: true` → SSE.
    pub stream: bool,
    /// `stream_options.include_usage: true` → a final usage chunk.
    pub include_usage: bool,
    /// Words in all message contents.
    pub prompt_tokens: u64,
}

/// The model name used when a request names none.
pub const DEFAULT_MODEL: &str = "split-mock";

/// Parses a chat-completions body. The error text is the OpenAI-style message of a 400.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "We could not parse the JSON body of your request. ({e}) \
             The OpenAI API expects a JSON payload."
        )
    })?;
    let obj = value
        .as_object()
        .ok_or_else(|| "the request body must be a JSON object".to_owned())?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => DEFAULT_MODEL.to_owned(),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err("'model': expected a string".to_owned()),
    };
    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| "'messages' is a required property (an array)".to_owned())?;
    let mut prompt_tokens = 0;
    for (i, m) in messages.iter().enumerate() {
        let content = m
            .get("content")
            .ok_or_else(|| format!("'messages[{i}].content' is a required property"))?;
        prompt_tokens += content_tokens(content);
    }
    let stream = match obj.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("'stream': expected a boolean".to_owned()),
    };
    let include_usage = obj
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        prompt_tokens,
    })
}

/// Words in a message content: a string, or an array of parts with `text`.
fn content_tokens(content: &Value) -> u64 {
    match content {
        Value::String(s) => count_tokens(s),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(count_tokens)
            .sum(),
        _ => 0,
    }
}

/// The mock's tokenizer: whitespace-separated words.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// `usage` object.
pub fn usage_json(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
}

/// A non-streaming `chat.completion` object. `echo` is the mock's own
/// `x_split_mock` field (name, path, ...), so tests can tell which upstream answered.
pub fn completion_json(
    id: &str,
    created: u64,
    req: &ChatRequest,
    content: &str,
    echo: &Value,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": req.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": null,
            "finish_reason": "stop",
        }],
        "usage": usage_json(req.prompt_tokens, count_tokens(content)),
        "system_fingerprint": "split-mock",
        "x_split_mock": echo,
    })
}

/// Splits the reply into `chunks` streamed pieces whose concatenation is the streamed
/// text. With fewer words than chunks, words repeat so every chunk carries one.
pub fn stream_pieces(reply: &str, chunks: u32) -> Vec<String> {
    let words: Vec<&str> = reply.split_whitespace().collect();
    let n = chunks.max(1) as usize;
    if words.is_empty() {
        return vec![String::new(); n];
    }
    let mut out = Vec::with_capacity(n);
    if words.len() >= n {
        for i in 0..n {
            let part = &words[i * words.len() / n..(i + 1) * words.len() / n];
            let text = part.join(" ");
            out.push(if i == 0 { text } else { format!(" {text}") });
        }
    } else {
        for i in 0..n {
            let w = words[i % words.len()];
            out.push(if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            });
        }
    }
    out
}

/// One `chat.completion.chunk` object.
pub fn chunk_json(
    id: &str,
    created: u64,
    model: &str,
    delta: Value,
    finish_reason: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "split-mock",
        "choices": [{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
    })
}

/// The final usage chunk sent with `stream_options.include_usage` (empty `choices`).
pub fn usage_chunk_json(id: &str, created: u64, model: &str, usage: Value) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "split-mock",
        "choices": [],
        "usage": usage,
    })
}

/// An SSE event carrying `value`: `data: <json>\n\n`.
pub fn sse_event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// The SSE terminator.
pub const SSE_DONE: &str = "data: [DONE]\n\n";

/// An OpenAI error body: `{"error":{"message","type","param","code"}}`.
pub fn error_json(message: &str, kind: &str, code: Option<&str>) -> Value {
    json!({
        "error": {
            "message": message,
            "type": kind,
            "param": null,
            "code": code,
        }
    })
}

/// The OpenAI error `type` and `code` for an injected status.
pub fn error_kind_for_status(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        400 => ("invalid_request_error", None),
        401 => ("invalid_request_error", Some("invalid_api_key")),
        404 => ("invalid_request_error", Some("unknown_url")),
        429 => ("requests", Some("rate_limit_exceeded")),
        503 => ("server_error", Some("service_unavailable")),
        _ => ("server_error", None),
    }
}

/// `GET /v1/models` body.
pub fn models_json(models: &[String]) -> Value {
    let data: Vec<Value> = models
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "split-mock"}))
        .collect();
    json!({"object": "list", "data": data})
}

/// Builds the `x_split_mock` echo object.
pub fn echo_json(
    name: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
) -> Value {
    let mut hs = Map::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        match hs.get_mut(k.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&v);
            }
            _ => {
                hs.insert(k.as_str().to_owned(), Value::String(v));
            }
        }
    }
    json!({
        "name": name,
        "method": method,
        "path": path,
        "query": query,
        "headers": hs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_guides_body() {
        let r = parse_chat_request(
            br#"{"model":"gpt-4","messages":[{"role":"user","content":"ping pong"}]}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            ChatRequest {
                model: "gpt-4".into(),
                stream: false,
                include_usage: false,
                prompt_tokens: 2
            }
        );
    }

    #[test]
    fn parses_parts_and_stream_options() {
        let r = parse_chat_request(
            br#"{"messages":[{"role":"system","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"a b c"}]}],
                "stream":true,"stream_options":{"include_usage":true}}"#,
        )
        .unwrap();
        assert_eq!(r.model, DEFAULT_MODEL);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.prompt_tokens, 5);
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(parse_chat_request(b"{nope")
            .unwrap_err()
            .contains("parse the JSON"));
        assert!(parse_chat_request(b"[]").unwrap_err().contains("object"));
        assert!(parse_chat_request(br#"{"model":"m"}"#)
            .unwrap_err()
            .contains("messages"));
        assert!(parse_chat_request(br#"{"messages":[],"stream":"yes"}"#)
            .unwrap_err()
            .contains("stream"));
    }

    #[test]
    fn pieces_concatenate_to_the_reply() {
        let p = stream_pieces("one two three four five", 2);
        assert_eq!(p, vec!["one two", " three four five"]);
        let p = stream_pieces("hi there", 3);
        assert_eq!(p, vec!["hi", " there", " hi"]);
        assert_eq!(stream_pieces("", 2), vec!["", ""]);
        assert_eq!(stream_pieces("x", 0).len(), 1);
    }

    #[test]
    fn usage_adds_up() {
        let u = usage_json(3, 4);
        assert_eq!(u["total_tokens"], 7);
    }
}
