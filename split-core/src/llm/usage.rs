//! Token `usage` from an OpenAI-compatible response body, read as it streams.
//!
//! - JSON (`application/json`): the last [`TAIL`] bytes of the body are kept; at the end
//!   the last `"usage": {...}` object in them is parsed. Usage is the last field of a
//!   chat completion, so the tail holds it however large the reply is.
//! - Server-sent events (`text/event-stream`): lines are split as they arrive; only the
//!   current partial line and the current event's `data` are kept, each capped at
//!   [`MAX_EVENT`] bytes (a longer event is skipped, not buffered). The last event whose
//!   JSON has a non-null `usage` object wins (`stream_options.include_usage` sends it
//!   just before `data: [DONE]`).
//!
//! The result never depends on how the body was cut into frames.

/// Bytes of a JSON body's end kept to find `usage`.
pub const TAIL: usize = 8 * 1024;

/// Largest SSE line or event data kept; longer ones are skipped.
pub const MAX_EVENT: usize = 64 * 1024;

/// Token counts of one response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `usage.prompt_tokens`.
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens`.
    pub completion_tokens: Option<u64>,
    /// `usage.total_tokens`.
    pub total_tokens: Option<u64>,
}

impl Usage {
    /// `total_tokens`, or prompt + completion when the upstream sent no total.
    pub fn total(&self) -> Option<u64> {
        self.total_tokens
            .or_else(|| match (self.prompt_tokens, self.completion_tokens) {
                (None, None) => None,
                (p, c) => Some(p.unwrap_or(0).saturating_add(c.unwrap_or(0))),
            })
    }

    /// Reads the counts of a `usage` JSON object; `None` if it is not an object or has
    /// none of the three counts.
    pub fn from_value(value: &serde_json::Value) -> Option<Usage> {
        let obj = value.as_object()?;
        let count = |k: &str| obj.get(k).and_then(serde_json::Value::as_u64);
        let usage = Usage {
            prompt_tokens: count("prompt_tokens"),
            completion_tokens: count("completion_tokens"),
            total_tokens: count("total_tokens"),
        };
        (usage != Usage::default()).then_some(usage)
    }
}

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON document.
    Json,
    /// `text/event-stream`.
    EventStream,
}

impl BodyFormat {
    /// The format for a response `Content-Type`, if usage can be read from it.
    pub fn from_content_type(content_type: &str) -> Option<BodyFormat> {
        // The usual answer, before any splitting.
        if content_type.eq_ignore_ascii_case("application/json") {
            return Some(BodyFormat::Json);
        }
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let is = |name: &str| essence.eq_ignore_ascii_case(name);
        let (kind, subtype) = essence.split_once('/').unwrap_or((essence, ""));
        if is("text/event-stream") {
            Some(BodyFormat::EventStream)
        } else if is("application/json")
            || (kind.eq_ignore_ascii_case("application")
                && subtype.len() >= 5
                && subtype.as_bytes()[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
        {
            Some(BodyFormat::Json)
        } else {
            None
        }
    }
}

/// Scans a response body for token usage; feed every data frame, then call
/// [`UsageScanner::finish`].
#[derive(Debug, Clone)]
pub struct UsageScanner {
    format: BodyFormat,
    /// JSON: the body's tail. SSE: the current partial line.
    buf: Vec<u8>,
    /// SSE: the current line is longer than [`MAX_EVENT`]; skip to its end.
    line_overflow: bool,
    /// SSE: `data` of the current event (lines joined by `\n`).
    data: Vec<u8>,
    /// SSE: the current event's data was too long; it is skipped.
    data_overflow: bool,
    /// SSE: the current event has at least one `data` line.
    has_data: bool,
    /// SSE: data events seen so far (including `[DONE]`).
    events: u64,
    usage: Option<Usage>,
}

impl UsageScanner {
    /// A scanner for a body in `format`.
    pub fn new(format: BodyFormat) -> UsageScanner {
        UsageScanner {
            format,
            buf: Vec::new(),
            line_overflow: false,
            data: Vec::new(),
            data_overflow: false,
            has_data: false,
            events: 0,
            usage: None,
        }
    }

    /// The body format scanned.
    pub fn format(&self) -> BodyFormat {
        self.format
    }

    /// SSE events with data completed so far (0 for JSON): the proxy takes the moment
    /// this first becomes non-zero as the time to first token.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Feeds the next body bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        match self.format {
            BodyFormat::Json => {
                self.buf.extend_from_slice(bytes);
                // Trim lazily (amortised); `finish` only ever looks at the last TAIL
                // bytes, so the answer does not depend on where trimming happened.
                if self.buf.len() > 2 * TAIL {
                    let cut = self.buf.len() - TAIL;
                    self.buf.drain(..cut);
                }
            }
            BodyFormat::EventStream => self.feed_sse(bytes),
        }
    }

    fn feed_sse(&mut self, mut bytes: &[u8]) {
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n') {
            self.push_line_part(&bytes[..pos]);
            self.end_line();
            bytes = &bytes[pos + 1..];
        }
        self.push_line_part(bytes);
    }

    fn push_line_part(&mut self, part: &[u8]) {
        if self.line_overflow {
            return;
        }
        if self.buf.len() + part.len() > MAX_EVENT {
            self.buf.clear();
            self.line_overflow = true;
            return;
        }
        self.buf.extend_from_slice(part);
    }

    fn end_line(&mut self) {
        let overflow = std::mem::take(&mut self.line_overflow);
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if overflow {
            // An over-long line is only skipped; if it was data, so is its event.
            self.has_data = true;
            self.data_overflow = true;
        } else if line.is_empty() {
            self.dispatch();
        } else if let Some(value) = line.strip_prefix(b"data:") {
            let value = value.strip_prefix(b" ").unwrap_or(value);
            if self.has_data {
                self.data.push(b'\n');
            }
            self.has_data = true;
            if self.data.len() + value.len() > MAX_EVENT {
                self.data_overflow = true;
                self.data.clear();
            } else if !self.data_overflow {
                self.data.extend_from_slice(value);
            }
        }
        // Other fields (`event:`, `id:`, `retry:`) and comments carry no usage.
        line.clear();
        self.buf = line;
    }

    fn dispatch(&mut self) {
        if !self.has_data {
            return;
        }
        self.events += 1;
        if !self.data_overflow {
            if let Some(usage) = usage_in(&self.data) {
                self.usage = Some(usage);
            }
        }
        self.data.clear();
        self.has_data = false;
        self.data_overflow = false;
    }

    /// Ends the body with its last bytes: the same answer as [`UsageScanner::feed`]
    /// then [`UsageScanner::finish`], without copying `last` when a JSON body came in one
    /// piece (nothing buffered before it).
    pub fn finish_with(&mut self, last: &[u8]) -> Option<Usage> {
        if self.format == BodyFormat::Json && self.buf.is_empty() {
            return last_usage(&last[last.len().saturating_sub(TAIL)..]);
        }
        self.feed(last);
        self.finish()
    }

    /// Ends the body: returns the usage found, if any.
    pub fn finish(&mut self) -> Option<Usage> {
        match self.format {
            BodyFormat::Json => {
                let tail = &self.buf[self.buf.len().saturating_sub(TAIL)..];
                last_usage(tail)
            }
            BodyFormat::EventStream => {
                // A body that ends without its final blank line still ends its event.
                if !self.buf.is_empty() || self.line_overflow {
                    self.end_line();
                }
                self.dispatch();
                self.usage
            }
        }
    }
}

/// The usage of one SSE event's data, when it has a non-null `usage` object.
fn usage_in(data: &[u8]) -> Option<Usage> {
    // Most chunks have no usage, or `"usage":null`: skip them without parsing.
    let mut rest = data;
    let mut has_object = false;
    while let Some(pos) = find(rest, b"\"usage\"") {
        rest = &rest[pos + 7..];
        let after = skip_ws(rest);
        if let Some(after) = after.strip_prefix(b":") {
            if skip_ws(after).starts_with(b"{") {
                has_object = true;
                break;
            }
        }
    }
    if !has_object {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(data).ok()?;
    Usage::from_value(value.get("usage")?)
}

/// The last `"usage": {...}` object in `hay` (a JSON body's tail).
fn last_usage(hay: &[u8]) -> Option<Usage> {
    const KEY: &[u8] = b"\"usage\"";
    let mut end = hay.len();
    while let Some(pos) = rfind_quoted(&hay[..end], KEY) {
        end = pos;
        // `\"usage\"` inside a string is escaped text, not the key.
        if pos > 0 && hay[pos - 1] == b'\\' {
            continue;
        }
        let after = skip_ws(&hay[pos + KEY.len()..]);
        let Some(after) = after.strip_prefix(b":") else {
            continue;
        };
        let after = skip_ws(after);
        if !after.starts_with(b"{") {
            continue;
        }
        if let Some(usage) = usage_object(after) {
            if usage != Usage::default() {
                return Some(usage);
            }
        }
    }
    None
}

/// The counts of the `usage` object at the start of `bytes` (`None` if it is not one):
/// the allocation-free scanner when it can answer, serde_json otherwise.
fn usage_object(bytes: &[u8]) -> Option<Usage> {
    match usage_object_scanned(bytes) {
        Ok(usage) => Some(usage),
        Err(crate::json_scan::Unsure) => usage_object_serde(bytes),
    }
}

/// [`usage_object`] by the scanner alone: `Err` where serde_json has to answer.
pub(crate) fn usage_object_scanned(bytes: &[u8]) -> Result<Usage, crate::json_scan::Unsure> {
    const KEYS: [&str; 3] = ["prompt_tokens", "completion_tokens", "total_tokens"];
    let [prompt_tokens, completion_tokens, total_tokens] =
        crate::json_scan::object_counts(bytes, KEYS)?;
    Ok(Usage {
        prompt_tokens,
        completion_tokens,
        total_tokens,
    })
}

/// [`usage_object`] by serde_json alone: the answer the fast path must agree with.
pub(crate) fn usage_object_serde(bytes: &[u8]) -> Option<Usage> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<UsageObject>();
    match values.next() {
        Some(Ok(UsageObject(usage))) => Some(usage),
        _ => None,
    }
}

fn skip_ws(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// The last `needle` (which starts with `"`) in `hay`: steps back from quote to quote,
/// which costs less than setting up a substring searcher when, as in a JSON body's
/// tail, the key is a few strings from the end.
fn rfind_quoted(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut end = hay.len();
    while let Some(pos) = memchr::memrchr(b'"', &hay[..end]) {
        if hay[pos..].starts_with(needle) {
            return Some(pos);
        }
        end = pos;
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// A `usage` object read without building a `serde_json::Value` (no allocation): the
/// same counts as [`Usage::from_value`] — unsigned integers only, other values and
/// other keys ignored, the last of repeated keys wins.
struct UsageObject(Usage);

impl<'de> serde::Deserialize<'de> for UsageObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = UsageObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a usage object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UsageObject, A::Error> {
                let mut usage = Usage::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match key {
                        Key::Prompt => &mut usage.prompt_tokens,
                        Key::Completion => &mut usage.completion_tokens,
                        Key::Total => &mut usage.total_tokens,
                        Key::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<Count>()?.0;
                }
                Ok(UsageObject(usage))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A key of a `usage` object, compared without allocating (serde's `Cow<str>` would
/// allocate a `String` for every key).
enum Key {
    Prompt,
    Completion,
    Total,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "prompt_tokens" => Key::Prompt,
                    "completion_tokens" => Key::Completion,
                    "total_tokens" => Key::Total,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(Name)
    }
}

/// A JSON value that counts when it is an unsigned integer (`Value::as_u64`).
struct Count(Option<u64>);

impl<'de> serde::Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Count;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Count, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Count, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Count(None))
            }
        }
        d.deserialize_any(Any)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(format: BodyFormat, parts: &[&[u8]]) -> (Option<Usage>, u64) {
        let mut s = UsageScanner::new(format);
        for p in parts {
            s.feed(p);
        }
        let usage = s.finish();
        (usage, s.events())
    }

    fn usage(p: u64, c: u64, t: u64) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: Some(p),
            completion_tokens: Some(c),
            total_tokens: Some(t),
        })
    }

    const SSE: &str = concat!(
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"role\":\"assistant\"}}],\"usage\":null}\n\n",
        ": keep-alive comment\n\n",
        "data: {\"id\":\"c1\",\"choices\":[{\"delta\":{\"content\":\"say \\\"usage\\\": {}\"}}],\"usage\":null}\n\n",
        "event: message\r\ndata: {\"id\":\"c1\",\"choices\":[],\r\ndata: \"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,\"total_tokens\":14}}\r\n\r\n",
        "data: [DONE]\n\n",
    );

    #[test]
    fn json_usage_is_read_from_the_tail() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"\"usage\": {\"prompt_tokens\": 1}"}}],"usage":{"prompt_tokens": 12,"completion_tokens":7,"total_tokens":19}}"#;
        assert_eq!(scan(BodyFormat::Json, &[body]).0, usage(12, 7, 19));
        assert_eq!(scan(BodyFormat::Json, &[b"{\"usage\":null}"]).0, None);
        assert_eq!(
            scan(BodyFormat::Json, &[b"{\"usage\": {\"prompt_tokens\""]).0,
            None
        );
        assert_eq!(scan(BodyFormat::Json, &[b"not json"]).0, None);
        // A huge reply before the usage still works: only the tail is kept.
        let content = "a".repeat(100_000);
        let big = format!(
            r#"{{"choices":[{{"message":{{"content":"{content}"}}}}],"usage":{{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}}}"#
        );
        let chunks: Vec<&[u8]> = big.as_bytes().chunks(1000).collect();
        assert_eq!(scan(BodyFormat::Json, &chunks).0, usage(3, 4, 7));
    }

    #[test]
    fn sse_usage_is_the_final_chunks() {
        let (u, events) = scan(BodyFormat::EventStream, &[SSE.as_bytes()]);
        assert_eq!(u, usage(9, 5, 14));
        assert_eq!(events, 4, "comment-only block is not an event");
        // Without include_usage there is none.
        let plain = "data: {\"choices\":[],\"usage\":null}\n\ndata: [DONE]\n\n";
        assert_eq!(
            scan(BodyFormat::EventStream, &[plain.as_bytes()]),
            (None, 2)
        );
        // A stream cut before its final blank line still counts its last event.
        let cut = "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}";
        let (u, events) = scan(BodyFormat::EventStream, &[cut.as_bytes()]);
        assert_eq!(events, 1);
        assert_eq!(u.and_then(|u| u.total()), Some(3));
    }

    #[test]
    fn over_long_events_are_skipped_not_buffered() {
        let long = "x".repeat(MAX_EVENT + 10);
        let body = format!(
            "data: {{\"c\":\"{long}\",\"usage\":{{\"prompt_tokens\":99}}}}\n\ndata: {{\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":1,\"total_tokens\":2}}}}\n\n"
        );
        let mut s = UsageScanner::new(BodyFormat::EventStream);
        for c in body.as_bytes().chunks(4096) {
            s.feed(c);
            assert!(s.buf.len() <= MAX_EVENT && s.data.len() <= MAX_EVENT);
        }
        assert_eq!(s.finish(), usage(1, 1, 2));
        assert_eq!(s.events(), 2);
    }

    #[test]
    fn content_types() {
        assert_eq!(
            BodyFormat::from_content_type("text/event-stream; charset=utf-8"),
            Some(BodyFormat::EventStream)
        );
        assert_eq!(
            BodyFormat::from_content_type("Application/JSON"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("application/problem+json"),
            Some(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type("APPLICATION/Problem+JSON ; x=1"),
            Some(BodyFormat::Json)
        );
        assert_eq!(BodyFormat::from_content_type("text/plain"), None);
        assert_eq!(BodyFormat::from_content_type("application/+jso"), None);
        assert_eq!(BodyFormat::from_content_type("text/x+json"), None);
        assert_eq!(BodyFormat::from_content_type("é/é+json"), None);
        assert_eq!(BodyFormat::from_content_type("application/ééé"), None);
    }

    #[test]
    fn total_falls_back_to_the_sum() {
        let u = Usage {
            prompt_tokens: Some(2),
            completion_tokens: None,
            total_tokens: None,
        };
        assert_eq!(u.total(), Some(2));
        assert_eq!(Usage::default().total(), None);
    }

    fn split_at_points(body: &[u8], mut points: Vec<usize>) -> Vec<&[u8]> {
        points.iter_mut().for_each(|p| *p %= body.len() + 1);
        points.sort_unstable();
        let mut parts = Vec::new();
        let mut start = 0;
        for p in points {
            parts.push(&body[start..p]);
            start = p;
        }
        parts.push(&body[start..]);
        parts
    }

    proptest! {
        /// The quote-stepping search finds the same last key as a substring search.
        #[test]
        fn rfind_quoted_agrees_with_a_substring_search(
            hay in proptest::collection::vec(prop::sample::select(b"\"usage:{} a\\".to_vec()), 0..80),
        ) {
            let key: &[u8] = b"\"usage\"";
            prop_assert_eq!(rfind_quoted(&hay, key), memchr::memmem::rfind(&hay, key));
            let mut with_key = hay.clone();
            with_key.extend_from_slice(key);
            with_key.extend_from_slice(&hay);
            prop_assert_eq!(rfind_quoted(&with_key, key), memchr::memmem::rfind(&with_key, key));
        }
    }

    proptest! {
        #[test]
        fn split_points_do_not_change_the_result(
            points in proptest::collection::vec(any::<usize>(), 0..40),
            garbage in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            for format in [BodyFormat::EventStream, BodyFormat::Json] {
                let mut body = garbage.clone();
                body.extend_from_slice(SSE.as_bytes());
                let whole = scan(format, &[&body]);
                let parts = split_at_points(&body, points.clone());
                prop_assert_eq!(scan(format, &parts), whole);
            }
        }

        /// The allocation-free reader agrees with `Usage::from_value` on any object
        /// built from the three keys, other keys and values of every JSON type.
        #[test]
        fn usage_object_reads_like_from_value(
            entries in proptest::collection::vec((0usize..5, 0usize..8), 0..8),
        ) {
            let keys = ["prompt_tokens", "completion_tokens", "total_tokens", "other", "tokens"];
            let values = ["7", "0", "-3", "1.5", "\"9\"", "null", "[1,{\"a\":2}]", "{\"total_tokens\":4}"];
            let body: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("\"{}\":{}", keys[*k], values[*v]))
                .collect();
            let text = format!("{{{}}}", body.join(","));
            let fast = serde_json::from_str::<UsageObject>(&text).map(|u| u.0).ok();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let slow = Usage::from_value(&value).unwrap_or_default();
            prop_assert_eq!(fast, Some(slow), "{}", text);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            points in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            for format in [BodyFormat::EventStream, BodyFormat::Json] {
                let whole = scan(format, &[&body]);
                let parts = split_at_points(&body, points.clone());
                prop_assert_eq!(scan(format, &parts), whole);
            }
        }
    }
}

#[cfg(test)]
mod finish_with_props {
    use proptest::prelude::*;

    use super::{BodyFormat, UsageScanner, TAIL};

    /// A body with a usage object, and whether it is server-sent events.
    fn body() -> impl Strategy<Value = (Vec<u8>, bool)> {
        let filler = proptest::collection::vec(
            proptest::sample::select(b" ax\",:{}".to_vec()),
            0..(2 * TAIL + 64),
        );
        (filler, 0u64..100, 0u64..100, any::<bool>()).prop_map(|(mut f, p, c, sse)| {
            let usage = format!(r#""usage":{{"prompt_tokens":{p},"completion_tokens":{c}}}"#);
            if sse {
                let mut out = b"data: {\"x\":1}\n\n".to_vec();
                out.extend(format!("data: {{{usage}}}\n\ndata: [DONE]\n\n").bytes());
                (out, true)
            } else {
                f.retain(|b| *b != b'"');
                let mut out = b"{\"pad\":\"".to_vec();
                out.extend(f);
                out.extend(format!("\",{usage}}}").bytes());
                (out, false)
            }
        })
    }

    proptest! {
        /// Ending with the last piece gives what feeding it and finishing gives, however
        /// the body was cut.
        #[test]
        fn finish_with_is_feed_then_finish((body, sse) in body(), cut in any::<prop::sample::Index>()) {
            let format = if sse { BodyFormat::EventStream } else { BodyFormat::Json };
            prop_assert!(UsageScanner::new(format).finish_with(&body).is_some());
            let cut = cut.index(body.len() + 1);
            for format in [BodyFormat::Json, BodyFormat::EventStream] {
                let (head, last) = body.split_at(cut);
                let mut fed = UsageScanner::new(format);
                let mut ended = UsageScanner::new(format);
                if !head.is_empty() {
                    fed.feed(head);
                    ended.feed(head);
                }
                fed.feed(last);
                prop_assert_eq!(ended.finish_with(last), fed.finish());
            }
        }
    }
}

#[cfg(test)]
mod scan_props {
    use proptest::prelude::*;

    use super::{usage_object_scanned, usage_object_serde, Usage};
    use crate::json_scan::arb;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whenever the scanner answers, serde_json reads the same counts.
        #[test]
        fn scanner_agrees_with_serde_json(doc in arb::value()) {
            if let Ok(fast) = usage_object_scanned(&doc) {
                prop_assert_eq!(
                    Some(fast),
                    usage_object_serde(&doc),
                    "{}",
                    String::from_utf8_lossy(&doc)
                );
            }
        }
    }

    #[test]
    fn scanner_answers_usage_objects() {
        let body = br#"{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":null}}"#;
        let expected = Usage {
            prompt_tokens: Some(12),
            completion_tokens: Some(30),
            total_tokens: Some(42),
        };
        assert_eq!(usage_object_scanned(body), Ok(expected));
        assert_eq!(super::usage_object(body), Some(expected));
        // Left to serde_json, same reading.
        let float = br#"{"prompt_tokens":1.0,"total_tokens":3}"#;
        assert!(usage_object_scanned(float).is_err());
        assert_eq!(
            super::usage_object(float),
            Some(Usage {
                total_tokens: Some(3),
                ..Usage::default()
            })
        );
    }
}
