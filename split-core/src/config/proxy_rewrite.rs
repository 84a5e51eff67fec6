//! Rewrite configs: the `proxy-rewrite` plugin (`uri`, `regex_uri`, `host`, `headers`)
//! and a traffic-split arm's `rewrite` (the same plus `body`), both built into
//! [`Rewrite`].
//!
//! `headers` takes APISIX's `{set, add, remove}` form or the old flat map (= `set`, an
//! empty string value removes the header).
//! nginx variables (`$uri`, `${host}`) in `uri` and header values are rejected: split does
//! not interpolate them, and passing them on literally would be a silent surprise.
//! A header value may instead be a secret reference, `$env://NAME` or `Bearer
//! $env://NAME` ([`crate::secret`]), resolved by the proxy per request.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::fields;
use crate::rewrite::{HeaderEdits, RegexUri, Rewrite, SecretEdit, UriTarget};
use crate::secret::SecretValue;
use crate::ConfigError;

/// Longest accepted `uri` and `regex_uri` template (APISIX's limit).
const MAX_URI_LEN: usize = 4096;
/// Compiled size limit of a `regex_uri` pattern.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "ProxyRewrite")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProxyRewrite {
    uri: Option<String>,
    regex_uri: Option<Vec<String>>,
    host: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::HeaderEdits>")
    )]
    headers: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    method: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    scheme: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    use_real_request_uri_unsafe: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    regex_body: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "ArmRewrite")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArmRewrite {
    uri: Option<String>,
    regex_uri: Option<Vec<String>>,
    host: Option<String>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::HeaderEdits>")
    )]
    headers: Option<Value>,
    body: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "HeaderEditsObject")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHeaderEdits {
    set: Option<Map<String, Value>>,
    add: Option<Map<String, Value>>,
    remove: Option<Vec<String>>,
}

/// Parses the `proxy-rewrite` plugin config; paths are relative to it.
pub fn parse_proxy_rewrite(value: &Value) -> Result<Rewrite, ConfigError> {
    let raw: RawProxyRewrite = fields::from_value(value)?;
    fields::reject_present(
        &raw.method,
        "method",
        "rewriting the method is not supported yet",
    )?;
    fields::reject_present(
        &raw.scheme,
        "scheme",
        "is deprecated in APISIX; set the upstream's `scheme` instead",
    )?;
    fields::reject_present(&raw.regex_body, "regex_body", "is not supported yet")?;
    fields::reject_present(
        &raw.use_real_request_uri_unsafe,
        "use_real_request_uri_unsafe",
        "is not supported",
    )?;
    if raw.uri.is_none() && raw.regex_uri.is_none() && raw.host.is_none() && raw.headers.is_none() {
        return Err(ConfigError::new(
            "",
            "at least one of uri, regex_uri, host, headers is required",
        ));
    }
    build(raw.uri, raw.regex_uri, raw.host, raw.headers, None)
}

/// Parses a traffic-split arm's `rewrite {uri, regex_uri, host, headers, body}`; paths
/// are relative to it.
pub fn parse_arm_rewrite(value: &Value) -> Result<Rewrite, ConfigError> {
    let raw: RawArmRewrite = fields::from_value(value)?;
    if raw.uri.is_none()
        && raw.regex_uri.is_none()
        && raw.host.is_none()
        && raw.headers.is_none()
        && raw.body.is_none()
    {
        return Err(ConfigError::new(
            "",
            "at least one of uri, regex_uri, host, headers, body is required",
        ));
    }
    if let Some(body) = &raw.body {
        if body.is_empty() {
            return Err(ConfigError::new("body", "must set at least one field"));
        }
    }
    build(raw.uri, raw.regex_uri, raw.host, raw.headers, raw.body)
}

fn build(
    uri: Option<String>,
    regex_uri: Option<Vec<String>>,
    host: Option<String>,
    headers: Option<Value>,
    body: Option<Map<String, Value>>,
) -> Result<Rewrite, ConfigError> {
    if let Some(uri) = &uri {
        check_uri(uri)?;
    }
    let regex_uri = regex_uri.map(parse_regex_uri).transpose()?;
    if let Some(host) = &host {
        fields::check_upstream_host(host, "host")?;
    }
    let headers = match &headers {
        None => HeaderEdits::default(),
        Some(h) => parse_headers(h).map_err(|e| e.within("headers"))?,
    };
    Ok(Rewrite {
        uri: uri.map(UriTarget::new),
        regex_uri,
        host,
        headers,
        body,
    })
}

fn check_uri(uri: &str) -> Result<(), ConfigError> {
    if !uri.starts_with('/') {
        return Err(ConfigError::new("uri", "must start with `/`"));
    }
    if uri.len() > MAX_URI_LEN {
        return Err(ConfigError::new(
            "uri",
            format!("must be at most {MAX_URI_LEN} characters"),
        ));
    }
    if uri
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(ConfigError::new(
            "uri",
            "must not contain whitespace, control characters or `#`",
        ));
    }
    if fields::has_nginx_var(uri) {
        return Err(ConfigError::new(
            "uri",
            "nginx variables ($name) are not supported yet",
        ));
    }
    Ok(())
}

fn parse_regex_uri(pair: Vec<String>) -> Result<RegexUri, ConfigError> {
    let [pattern, template]: [String; 2] = pair.try_into().map_err(|_| {
        ConfigError::new(
            "regex_uri",
            "must be exactly [regex, template] (one pair is supported)",
        )
    })?;
    // The size limit bounds compile time and memory for hostile patterns.
    let regex = regex::RegexBuilder::new(&pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ConfigError::new("regex_uri[0]", format!("invalid regex: {e}")))?;
    if template.len() > MAX_URI_LEN {
        return Err(ConfigError::new(
            "regex_uri[1]",
            format!("must be at most {MAX_URI_LEN} characters"),
        ));
    }
    if !template.starts_with('/') && !template.starts_with('$') {
        return Err(ConfigError::new("regex_uri[1]", "must start with `/`"));
    }
    if let Some(name) = unknown_template_name(&template, &regex) {
        return Err(ConfigError::new(
            "regex_uri[1]",
            format!(
                "`${name}` is not a capture group of the regex (nginx variables are not \
                 supported yet; use $1 or ${{name}} captures)"
            ),
        ));
    }
    Ok(RegexUri { regex, template })
}

/// The first `$name` / `${name}` reference in a `regex_uri` template that is neither a
/// group number nor a named group of `regex` — tokenised exactly as the rewrite expands
/// it (`$$` is a literal `$`).
fn unknown_template_name<'t>(template: &'t str, regex: &regex::Regex) -> Option<&'t str> {
    let known = |name: &str| {
        name.bytes().all(|b| b.is_ascii_digit()) || regex.capture_names().any(|n| n == Some(name))
    };
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            rest = stripped;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}')?;
            let name = &braced[..end];
            if !name.is_empty() && !known(name) {
                return Some(name);
            }
            rest = &braced[end + 1..];
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
            let name = &after[..len];
            if len > 0 && !known(name) {
                return Some(name);
            }
            rest = &after[len..];
        }
    }
    None
}

/// `{set, add, remove}` if any of those keys is present (APISIX's rule), else the old
/// flat map, which means `set`.
fn parse_headers(value: &Value) -> Result<HeaderEdits, ConfigError> {
    let Value::Object(map) = value else {
        return Err(ConfigError::new(
            "",
            "expected an object ({set, add, remove} or a map of header → value)",
        ));
    };
    let structured = ["set", "add", "remove"]
        .iter()
        .any(|k| map.contains_key(*k));
    if !structured {
        // The old flat form: every entry is a `set`, except that an empty string
        // removes the header (APISIX proxy-rewrite).
        let (empty, set): (Map<String, Value>, Map<String, Value>) = map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(_, v)| v.as_str() == Some(""));
        let remove = empty
            .keys()
            .map(|name| header_name(name, name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut secrets = Vec::new();
        return Ok(HeaderEdits {
            set: header_pairs(&set, "", true, &mut secrets)?,
            add: Vec::new(),
            remove,
            secrets,
        });
    }
    let raw: RawHeaderEdits = fields::from_value(value)?;
    let mut secrets = Vec::new();
    let set = match &raw.set {
        Some(m) => header_pairs(m, "set", true, &mut secrets)?,
        None => Vec::new(),
    };
    let add = match &raw.add {
        Some(m) => header_pairs(m, "add", false, &mut secrets)?,
        None => Vec::new(),
    };
    let remove = raw
        .remove
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, name)| header_name(name, &format!("remove[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HeaderEdits {
        set,
        add,
        remove,
        secrets,
    })
}

/// Literal `name → value` pairs of a `set`/`add` map; values that are `$env://`
/// references go to `secrets` instead (`replace` = this is the `set` map).
fn header_pairs(
    map: &Map<String, Value>,
    path: &str,
    replace: bool,
    secrets: &mut Vec<SecretEdit>,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>, ConfigError> {
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        let field = fields_path(path, name);
        let name = header_name(name, &field)?;
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(ConfigError::new(&field, "expected a string or a number")),
        };
        match SecretValue::parse(&text) {
            Ok(Some(value)) => {
                secrets.push(SecretEdit {
                    replace,
                    name,
                    value,
                });
                continue;
            }
            Ok(None) => {}
            Err(why) => return Err(ConfigError::new(&field, why)),
        }
        if fields::has_nginx_var(&text) {
            return Err(ConfigError::new(
                &field,
                "nginx variables ($name) in header values are not supported yet",
            ));
        }
        let value = http::HeaderValue::from_str(&text)
            .map_err(|_| ConfigError::new(&field, "invalid header value"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn header_name(name: &str, path: &str) -> Result<http::HeaderName, ConfigError> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ConfigError::new(path, format!("invalid header name `{name}`")))
}

fn fields_path(parent: &str, name: &str) -> String {
    crate::error::join(parent, name)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn regex_uri_named_captures_are_accepted_and_expanded() {
        let r = parse_arm_rewrite(&json!({"regex_uri": ["^/api/(?P<rest>.*)", "/v2/${rest}"]}))
            .unwrap();
        assert_eq!(r.apply_uri("/api/chat", None).as_deref(), Some("/v2/chat"));
        let r = parse_arm_rewrite(&json!({"regex_uri": ["^/(?P<ver>v\\d)/(.*)", "/$ver/x/$2$$"]}))
            .unwrap();
        assert_eq!(
            r.apply_uri("/v1/chat", None).as_deref(),
            Some("/v1/x/chat$")
        );
    }

    #[test]
    fn regex_uri_unknown_names_are_rejected_with_the_name() {
        for (template, name) in [
            ("/v2/${rest}", "rest"),
            ("/v2/$uri", "uri"),
            ("/v2/$1/${host}", "host"),
        ] {
            let err =
                parse_arm_rewrite(&json!({"regex_uri": ["^/api/(.*)", template]})).unwrap_err();
            assert_eq!(err.path, "regex_uri[1]", "{template}");
            assert!(
                err.message.contains(&format!("`${name}`")),
                "{template}: {err}"
            );
        }
    }

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
    fn flat_empty_value_removes() {
        let r = parse_proxy_rewrite(&json!({"headers": {"X-Drop": "", "X-Keep": "1"}})).unwrap();
        assert_eq!(r.headers.remove.len(), 1);
        assert_eq!(r.headers.remove[0].as_str(), "x-drop");
        assert_eq!(r.headers.set.len(), 1);
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
            (json!({"uri": "v1"}), "uri", "must start with `/`"),
            (json!({"uri": "/a$uri"}), "uri", "not supported"),
            (
                json!({"regex_uri": ["^/a"]}),
                "regex_uri",
                "exactly [regex, template]",
            ),
            (
                json!({"regex_uri": ["(", "/x"]}),
                "regex_uri[0]",
                "invalid regex",
            ),
            (json!({"host": "a b"}), "host", "invalid host"),
            (json!({"method": "POST"}), "method", "not supported yet"),
            (
                json!({"headers": {"bad name": "x"}}),
                "headers.bad name",
                "invalid header name",
            ),
            (
                json!({"headers": {"x": "a\nb"}}),
                "headers.x",
                "invalid header value",
            ),
            (
                json!({"headers": {"x": true}}),
                "headers.x",
                "expected a string or a number",
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
                "invalid header name",
            ),
            (json!({"headers": []}), "headers", "expected an object"),
            (json!({"body": {"model": "x"}}), "body", "unknown field"),
            (json!({"uri": "/a#b"}), "uri", "`#`"),
            (json!({"regex_body": []}), "regex_body", "not supported yet"),
            (
                json!({"regex_uri": ["^/a", "/".repeat(4097)]}),
                "regex_uri[1]",
                "at most 4096",
            ),
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
    fn env_references_become_secret_edits() {
        let r = parse_arm_rewrite(&json!({"headers": {
            "set": {"Authorization": "Bearer $env://AIML_API_KEY", "X-A": "1"},
            "add": {"X-Key": "$env://OTHER"}
        }}))
        .unwrap();
        assert_eq!(r.headers.set.len(), 1);
        assert!(r.headers.add.is_empty());
        assert_eq!(r.headers.secrets.len(), 2);
        assert!(r.headers.secrets[0].replace);
        assert_eq!(r.headers.secrets[0].name, "authorization");
        assert_eq!(r.headers.secrets[0].value.var, "AIML_API_KEY");
        assert!(!r.headers.secrets[1].replace);
        let flat = parse_proxy_rewrite(&json!({"headers": {"Authorization": "$env://K"}})).unwrap();
        assert_eq!(flat.headers.secrets.len(), 1);
        let err = parse_proxy_rewrite(&json!({"headers": {"set": {"A": "$env://9"}}})).unwrap_err();
        assert_eq!(err.path, "headers.set.A");
        assert!(err.message.contains("variable name"), "{err}");
    }

    #[test]
    fn regex_uri_compiles() {
        let r = parse_arm_rewrite(&json!({"regex_uri": ["^/api/(.*)", "/v2/$1"]})).unwrap();
        let re = r.regex_uri.unwrap();
        assert!(re.regex.is_match("/api/x"));
        assert_eq!(re.template, "/v2/$1");
    }
}
