//! The upstream request derived from the client's: path and query after rewrites, the
//! rewritten body, the client host without port, the `model` for the access log.

use bytes::Bytes;
use split_core::rewrite::Rewrite;

/// The path and query sent upstream: the client's raw one unless a rewrite changes it.
pub fn upstream_path(rewrites: &[&Rewrite], path: &str, uri: &http::Uri) -> String {
    // The rewritten `path?query` so far; the next rewrite sees it split at the first `?`.
    let mut current: Option<String> = None;
    for rewrite in rewrites {
        let rewritten = match &current {
            Some(pq) => match pq.split_once('?') {
                Some((p, q)) => rewrite.apply_uri(p, Some(q)),
                None => rewrite.apply_uri(pq, None),
            },
            None => rewrite.apply_uri(path, uri.query()),
        };
        if rewritten.is_some() {
            current = rewritten;
        }
    }
    current.unwrap_or_else(|| {
        uri.path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned())
    })
}

pub fn rewrite_body(rewrites: &[&Rewrite], bytes: Bytes) -> Result<Bytes, String> {
    let mut current = bytes;
    for rewrite in rewrites {
        match rewrite.apply_body(&current) {
            Ok(Some(new)) => current = Bytes::from(new),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(current)
}

/// `model` of a JSON request body, if any.
pub fn model_of(bytes: &[u8]) -> Option<String> {
    if bytes.first() != Some(&b'{') && !bytes.starts_with(b" ") {
        return None;
    }
    split_core::llm::model_of(bytes)
}

/// `host[:port]` → `host`; `[v6]:port` → `v6`.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    // A byte search: `rsplit_once(':')` goes through the generic char searcher, about
    // 160 instructions on every proxied request.
    match host.bytes().rposition(|b| b == b':') {
        // `:` is ASCII, so `at` and `at + 1` are character boundaries.
        Some(at) if host.as_bytes()[at + 1..].iter().all(u8::is_ascii_digit) => &host[..at],
        _ => host,
    }
}

/// Whether the client declared a JSON body (`Content-Type: application/json…`): only then
/// does the upload watcher look for the request's `model`.
pub fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("example.com:9080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(strip_port("a:b:80"), "a:b");
        assert_eq!(strip_port("host:8o"), "host:8o");
        assert_eq!(strip_port("host:"), "host");
        assert_eq!(strip_port("bücher.example:80"), "bücher.example");
        assert_eq!(strip_port(""), "");
    }

    #[test]
    fn model_is_read_from_json_bodies_only() {
        assert_eq!(
            model_of(br#"{"model":"gpt-4","x":1}"#).as_deref(),
            Some("gpt-4")
        );
        assert_eq!(model_of(b"model=gpt-4"), None);
        assert_eq!(model_of(b"{broken"), None);
    }

    #[test]
    fn upstream_path_without_rewrites_is_the_raw_one() {
        let uri: http::Uri = "/a//b?x=%20".parse().unwrap();
        assert_eq!(upstream_path(&[], "/a/b", &uri), "/a//b?x=%20");
        let uri: http::Uri = "http://h/".parse().unwrap();
        assert_eq!(upstream_path(&[], "/", &uri), "/");
    }
}
