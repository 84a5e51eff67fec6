//! Request rewrites: `uri`, `regex_uri`, headers `set/add/remove`, JSON body field
//! overrides (e.g. `model`), and the upstream Host per `pass_host`. Pure functions.
//! The config side (`proxy-rewrite` and arm `rewrite` objects → [`Rewrite`]) lives in
//! [`crate::config::proxy_rewrite`].
//!
//! Semantics (and where they differ from APISIX's `proxy-rewrite`):
//! - `uri` wins over `regex_uri` when both are set (as in APISIX).
//! - `regex_uri`: the **first** match of the regex on the path is replaced by the
//!   template (`$1`, `${1}`, `${name}`, `$name`, `$$` for a literal `$`; a missing group
//!   is empty), like `ngx.re.sub`. No match → the path is unchanged.
//! - Query: if the rewritten target contains `?`, its query **replaces** the client's;
//!   otherwise the client's raw query is kept. (APISIX instead appends the client's
//!   query with `&`; split's rule keeps the upstream query fully under the config's
//!   control.)
//! - The rewritten path is made URI-safe: bytes that may not appear in a path (space,
//!   controls, non-ASCII, `"<>\^`{|}#`) are percent-encoded, as APISIX's
//!   `uri_safe_encode` does; `%` is kept only when it starts a valid `%XX` escape.
//! - A rewrite that would produce a path not starting with `/` (e.g. a template `$1`
//!   whose capture is empty) is not applied: the original target is used. A broken
//!   upstream request line is worse than an unrewritten one, and config validation
//!   already refuses a `uri` without a leading `/`.
//! - Headers: **add, then set, then remove** — the order of APISIX's `proxy-rewrite`
//!   code (`create_header_operation` + `rewrite`), which is what requests actually see
//!   (some APISIX docs list "add, remove, set"; the code is the reference here). A
//!   `set` with several values for one name replaces the header once, then appends.
//! - Body: top-level fields of a JSON object body are set (`null` removes); other fields
//!   keep their order. Numbers beyond `f64`/`u64` precision are re-serialised by
//!   serde_json and may change textually.

use crate::secret::{Lookup, SecretError, SecretValue};

/// A validated rewrite (per traffic-split arm, or the route's `proxy-rewrite`).
#[derive(Debug, Clone)]
pub struct Rewrite {
    /// Replacement path (may contain a `?query`, which then replaces the client's query).
    pub uri: Option<UriTarget>,
    /// Regex rewrite applied to the path when `uri` is not set.
    pub regex_uri: Option<RegexUri>,
    /// Host to send upstream (overrides `pass_host`).
    pub host: Option<String>,
    /// Header edits, applied in APISIX proxy-rewrite order.
    pub headers: HeaderEdits,
    /// Top-level JSON body fields to set (`{"model": "gpt-4o-mini"}`); `null` removes a field.
    pub body: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A `uri` rewrite target as configured, with its path and query made URI-safe once,
/// when the config is read, rather than on every request it rewrites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTarget {
    /// As configured.
    raw: String,
    /// The path (before any `?`), URI-safe.
    path: String,
    /// The query after `?`, URI-safe (`Some("")` for a bare `?`).
    query: Option<String>,
}

impl UriTarget {
    /// The target `raw` (a path, optionally with `?query`).
    pub fn new(raw: impl Into<String>) -> UriTarget {
        let raw = raw.into();
        let (path, query) = safe_target(&raw);
        UriTarget { raw, path, query }
    }

    /// The target as configured.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl std::ops::Deref for UriTarget {
    type Target = str;

    fn deref(&self) -> &str {
        &self.raw
    }
}

impl From<&str> for UriTarget {
    fn from(raw: &str) -> UriTarget {
        UriTarget::new(raw)
    }
}

/// `regex_uri: [regex, template]` with `$1`-style captures.
#[derive(Debug, Clone)]
pub struct RegexUri {
    /// Compiled pattern.
    pub regex: regex::Regex,
    /// Replacement template (`$1`, `${name}`).
    pub template: String,
}

/// Header edits: `set` replaces, `add` appends, `remove` deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Replace these headers.
    pub set: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Append these headers.
    pub add: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Remove these headers.
    pub remove: Vec<http::HeaderName>,
    /// `set`/`add` entries whose value is a `$env://` reference, resolved by the caller
    /// ([`Rewrite::apply_headers_with`]).
    pub secrets: Vec<SecretEdit>,
}

/// A `set` or `add` header edit whose value is a secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEdit {
    /// True for `set` (replace), false for `add` (append).
    pub replace: bool,
    /// Header name.
    pub name: http::HeaderName,
    /// The reference.
    pub value: SecretValue,
}

impl HeaderEdits {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
            && self.add.is_empty()
            && self.remove.is_empty()
            && self.secrets.is_empty()
    }
}

/// Errors while applying a rewrite to a request (not config errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// The body rewrite needs a JSON object body and got something else.
    #[error("request body is not a JSON object: {0}")]
    BodyNotJsonObject(String),
}

impl Rewrite {
    /// The upstream path-and-query for a client `path` and `query`
    /// (`None` = unchanged). Result always starts with `/`.
    pub fn apply_uri(&self, path: &str, query: Option<&str>) -> Option<String> {
        if let Some(target) = &self.uri {
            return joined(&target.path, target.query.as_deref(), query);
        }
        let re = self.regex_uri.as_ref()?;
        let caps = re.regex.captures(path)?;
        // `captures` matched, so group 0 exists.
        let whole = caps.get(0)?;
        let mut target = String::with_capacity(path.len() + re.template.len());
        target.push_str(&path[..whole.start()]);
        expand_template(&re.template, &caps, &re.regex, &mut target);
        target.push_str(&path[whole.end()..]);
        let (safe_path, own_query) = safe_target(&target);
        joined(&safe_path, own_query.as_deref(), query)
    }

    /// Applies the literal header edits in place: add, then set, then remove. Secret
    /// references are skipped; use [`Rewrite::apply_headers_with`] when there may be any.
    pub fn apply_headers(&self, headers: &mut http::HeaderMap) {
        // Without a lookup no reference resolves; literal edits apply all the same.
        let _ = self.apply_edits(headers, None);
    }

    /// True when a header value is a `$env://` reference.
    pub fn has_secrets(&self) -> bool {
        !self.headers.secrets.is_empty()
    }

    /// Applies every header edit, resolving `$env://` references through `lookup`: add
    /// (literals, then references), then set (literals, then references; a name already
    /// set by this rewrite appends), then remove. On an unresolvable reference the
    /// literal edits are applied and the first error is returned; the request should
    /// not be sent.
    pub fn apply_headers_with(
        &self,
        headers: &mut http::HeaderMap,
        lookup: &Lookup,
    ) -> Result<(), SecretError> {
        self.apply_edits(headers, Some(lookup))
    }

    fn apply_edits(
        &self,
        headers: &mut http::HeaderMap,
        lookup: Option<&Lookup>,
    ) -> Result<(), SecretError> {
        let mut failed = None;
        let mut resolve = |edit: &SecretEdit| -> Option<http::HeaderValue> {
            let lookup = lookup?;
            match edit.value.resolve(lookup) {
                Ok(v) => Some(v),
                Err(e) => {
                    failed.get_or_insert(e);
                    None
                }
            }
        };
        for (name, value) in &self.headers.add {
            headers.append(name.clone(), value.clone());
        }
        for edit in self.headers.secrets.iter().filter(|e| !e.replace) {
            if let Some(value) = resolve(edit) {
                headers.append(edit.name.clone(), value);
            }
        }
        let mut set_names: Vec<&http::HeaderName> = Vec::new();
        for (name, value) in &self.headers.set {
            // The first value of a name replaces, later values of the same name append.
            if set_names.contains(&name) {
                headers.append(name.clone(), value.clone());
            } else {
                headers.insert(name.clone(), value.clone());
                set_names.push(name);
            }
        }
        for edit in self.headers.secrets.iter().filter(|e| e.replace) {
            let Some(value) = resolve(edit) else {
                continue;
            };
            if set_names.contains(&&edit.name) {
                headers.append(edit.name.clone(), value);
            } else {
                headers.insert(edit.name.clone(), value);
                set_names.push(&edit.name);
            }
        }
        for name in &self.headers.remove {
            headers.remove(name);
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Applies JSON body overrides; `Ok(None)` when there is no body rewrite.
    pub fn apply_body(&self, body: &[u8]) -> Result<Option<Vec<u8>>, RewriteError> {
        let Some(fields) = &self.body else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| RewriteError::BodyNotJsonObject(format!("invalid JSON: {e}")))?;
        let serde_json::Value::Object(mut map) = value else {
            return Err(RewriteError::BodyNotJsonObject(format!(
                "got {}",
                json_kind(&value)
            )));
        };
        for (k, v) in fields {
            if v.is_null() {
                map.shift_remove(k);
            } else {
                map.insert(k.clone(), v.clone());
            }
        }
        // Serialising a `Value` built from parsed JSON cannot fail (string keys only).
        let out =
            serde_json::to_vec(&map).map_err(|e| RewriteError::BodyNotJsonObject(e.to_string()))?;
        Ok(Some(out))
    }

    /// True if this rewrite needs the request body in memory.
    pub fn needs_body(&self) -> bool {
        self.body.is_some()
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Expands an ngx.re.sub-style template: `$N`, `${N}`, `${name}`, `$name`, `$$`.
fn expand_template(
    template: &str,
    caps: &regex::Captures<'_>,
    regex: &regex::Regex,
    out: &mut String,
) {
    let group = |key: &str| -> Option<usize> {
        if key.bytes().all(|b| b.is_ascii_digit()) {
            key.parse::<usize>().ok()
        } else {
            regex.capture_names().position(|n| n == Some(key))
        }
    };
    let push_group = |out: &mut String, key: &str| {
        if let Some(m) = group(key).and_then(|i| caps.get(i)) {
            out.push_str(m.as_str());
        }
    };
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => {
                    push_group(out, &braced[..end]);
                    rest = &braced[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let len = if digits > 0 {
                digits
            } else {
                after
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                    .count()
            };
            if len == 0 {
                out.push('$');
            } else {
                push_group(out, &after[..len]);
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
}

/// A rewrite's `target` split at its first `?` into path and query (`Some("")` for a bare
/// `?`), each made URI-safe.
fn safe_target(target: &str) -> (String, Option<String>) {
    let safe = |part: &str| {
        let mut out = String::with_capacity(part.len());
        safe_encode_into(part, &mut out);
        out
    };
    match target.split_once('?') {
        Some((path, query)) => (safe(path), Some(safe(query))),
        None => (safe(target), None),
    }
}

/// The upstream target from a URI-safe `path` and query `own` (both from a rewrite) and
/// the client's raw `query`; `None` when `path` does not start with `/`.
fn joined(path: &str, own: Option<&str>, query: Option<&str>) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let query = match (own, query) {
        // The rewrite's query replaces the client's.
        (Some(q), _) => q,
        // The client's query is forwarded raw, exactly as received.
        (None, Some(q)) => q,
        (None, None) => "",
    };
    let mut out = String::with_capacity(path.len() + query.len() + 1);
    out.push_str(path);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

/// Appends `s` with every byte that may not appear raw in a URI path or query
/// percent-encoded; an existing valid `%XX` escape is kept.
fn safe_encode_into(s: &str, out: &mut String) {
    let bytes = s.as_bytes();
    // Runs of bytes kept as they are go in whole (a rewrite target usually is one run).
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let keep = match b {
            b'%' => {
                bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => true,
            b'-' | b'.' | b'_' | b'~' | b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+'
            | b',' | b';' | b'=' | b':' | b'@' | b'/' | b'?' | b'[' | b']' => true,
            _ => false,
        };
        if !keep {
            // Kept bytes are ASCII, so `run..i` lies on char boundaries.
            out.push_str(s.get(run..i).unwrap_or_default());
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
            run = i + 1;
        }
    }
    out.push_str(s.get(run..).unwrap_or_default());
}
