//! Upstream credentials on the request path:
//! - header rewrites whose values are `$env://NAME` references are resolved from the
//!   process environment per request (the core only holds the reference); a variable
//!   that is not set gives 502 `{"error_msg":"secret $env://NAME is not set"}` and one
//!   warning line naming the variable, never a value;
//! - `key-auth` with `hide_credentials: true` removes the client's key (the header, or
//!   the query argument, whichever carried it) before the request is forwarded.

use std::collections::HashSet;
use std::sync::Mutex;

use http::{HeaderMap, StatusCode, Uri};
use split_core::config::plugins::KeyAuthRoute;
use split_core::rewrite::Rewrite;
use split_core::secret::SecretError;

use crate::body::ProxyBody;
use crate::reply;

/// Variables already reported missing (one warning each, not one per request).
static REPORTED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Reads a variable of the process environment.
fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Applies the header edits of `rewrites` in order, resolving secret references; the
/// 502 response when a reference cannot be resolved.
pub fn apply_headers(
    rewrites: &[&Rewrite],
    headers: &mut HeaderMap,
) -> Result<(), Box<http::Response<ProxyBody>>> {
    for rewrite in rewrites {
        if !rewrite.has_secrets() {
            rewrite.apply_headers(headers);
            continue;
        }
        if let Err(e) = rewrite.apply_headers_with(headers, &env_lookup) {
            report(&e);
            return Err(Box::new(reply::error(
                StatusCode::BAD_GATEWAY,
                &e.to_string(),
            )));
        }
    }
    Ok(())
}

fn report(e: &SecretError) {
    let name = match e {
        SecretError::NotSet(n) | SecretError::InvalidValue(n) => n.clone(),
        _ => String::new(),
    };
    let mut seen = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
    let first = seen.get_or_insert_with(HashSet::new).insert(name.clone());
    if first {
        tracing::warn!(variable = %name, reason = %e, "upstream secret unavailable; requests using it get 502");
    } else {
        tracing::debug!(variable = %name, reason = %e, "upstream secret unavailable");
    }
}

/// `hide_credentials`: removes the key from `headers` (when the configured header is
/// present, as key-auth reads it first) or else from the query of `uri`. Returns the
/// URI to forward (unchanged when there is nothing to hide).
pub fn hide_credentials(conf: Option<&KeyAuthRoute>, headers: &mut HeaderMap, uri: &Uri) -> Uri {
    let Some(conf) = conf.filter(|c| c.hide_credentials) else {
        return uri.clone();
    };
    if headers.remove(&conf.header).is_some() {
        return uri.clone();
    }
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !arg_name_is(name, &conf.query)
        })
        .collect();
    let path = uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    // Dropping whole `&`-separated pairs of a valid query keeps it valid.
    rebuilt.parse().unwrap_or_else(|_| uri.clone())
}

/// True when a raw query argument name is `want` (percent-decoded, `+` as space).
fn arg_name_is(raw: &str, want: &str) -> bool {
    if raw == want {
        return true;
    }
    if !raw.contains(['%', '+']) {
        return false;
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    out == want.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(hide: bool) -> KeyAuthRoute {
        KeyAuthRoute {
            hide_credentials: hide,
            ..KeyAuthRoute::default()
        }
    }

    #[test]
    fn header_key_is_removed_and_query_kept() {
        let mut h = HeaderMap::new();
        h.insert("apikey", "k".parse().unwrap());
        h.insert("x-other", "1".parse().unwrap());
        let uri: Uri = "/chat?apikey=q&a=1".parse().unwrap();
        let out = hide_credentials(Some(&conf(true)), &mut h, &uri);
        assert!(h.get("apikey").is_none());
        assert!(h.get("x-other").is_some());
        assert_eq!(
            out, uri,
            "the header carried the key; the query is untouched"
        );
    }

    #[test]
    fn query_key_is_removed() {
        let mut h = HeaderMap::new();
        let uri: Uri = "/chat?a=1&apikey=k&b=2&ap%69key=x".parse().unwrap();
        let out = hide_credentials(Some(&conf(true)), &mut h, &uri);
        assert_eq!(out.to_string(), "/chat?a=1&b=2");
        let only: Uri = "/chat?apikey=k".parse().unwrap();
        assert_eq!(
            hide_credentials(Some(&conf(true)), &mut h, &only).to_string(),
            "/chat"
        );
    }

    #[test]
    fn nothing_changes_without_hide_credentials() {
        let mut h = HeaderMap::new();
        h.insert("apikey", "k".parse().unwrap());
        let uri: Uri = "/chat?apikey=q".parse().unwrap();
        assert_eq!(hide_credentials(Some(&conf(false)), &mut h, &uri), uri);
        assert_eq!(hide_credentials(None, &mut h, &uri), uri);
        assert!(h.get("apikey").is_some());
    }

    #[test]
    fn missing_secret_is_a_502_naming_the_reference() {
        let r = split_core::config::proxy_rewrite::parse_proxy_rewrite(&serde_json::json!({
            "headers": {"Authorization": "Bearer $env://SPLIT_TEST_SURELY_UNSET_VAR"}
        }))
        .unwrap();
        let mut h = HeaderMap::new();
        let err = apply_headers(&[&r], &mut h).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_GATEWAY);
        assert!(h.get("authorization").is_none());
    }
}
