//! `application/x-www-form-urlencoded` parsing (query strings and form bodies) and the
//! `Cookie` header, as OpenResty's `ngx.req.get_uri_args` / `get_post_args` and
//! `resty.cookie` see them.

use std::borrow::Cow;

/// One `key[=value]` pair of a query string or form body, still encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawArg<'a> {
    pub key: &'a str,
    /// `None` for a bare `key` without `=` (OpenResty yields boolean `true`).
    pub value: Option<&'a str>,
}

/// Splits `a=1&b&c=3` into pairs; empty segments and empty keys are skipped.
pub(crate) fn raw_args(s: &str) -> impl Iterator<Item = RawArg<'_>> {
    s.split('&').filter_map(|seg| {
        let (key, value) = match seg.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (seg, None),
        };
        (!key.is_empty()).then_some(RawArg { key, value })
    })
}

/// The first pair whose decoded key is exactly `name`.
pub(crate) fn first_arg<'a>(s: &'a str, name: &str) -> Option<RawArg<'a>> {
    raw_args(s).find(|a| a.key == name || decode_component(a.key) == name)
}

/// Percent-decodes a form component: `+` is a space, `%XY` a byte; malformed escapes stay
/// as they are (nginx's `ngx_unescape_uri`). Invalid UTF-8 is replaced, never a panic.
pub(crate) fn decode_component(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let h = bytes.get(i + 1).copied().and_then(hex);
                let l = bytes.get(i + 2).copied().and_then(hex);
                match (h, l) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The value of cookie `name` (case-sensitive) in one `Cookie` header value, raw.
pub(crate) fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode_component("a+b%20c"), "a b c");
        assert_eq!(decode_component("100%"), "100%");
        assert_eq!(decode_component("%zz%4"), "%zz%4");
        assert_eq!(decode_component("%E2%9C%93"), "\u{2713}");
        assert_eq!(decode_component("%ff"), "\u{fffd}");
        assert!(matches!(decode_component("plain"), Cow::Borrowed(_)));
    }

    #[test]
    fn splits_args() {
        let v: Vec<_> = raw_args("a=1&&b&=x&c=").collect();
        assert_eq!(
            v,
            vec![
                RawArg {
                    key: "a",
                    value: Some("1")
                },
                RawArg {
                    key: "b",
                    value: None
                },
                RawArg {
                    key: "c",
                    value: Some("")
                },
            ]
        );
        assert_eq!(
            first_arg("x=1&x=2&a%20b=3", "a b").and_then(|a| a.value),
            Some("3")
        );
        assert_eq!(first_arg("x=1&x=2", "x").and_then(|a| a.value), Some("1"));
    }

    #[test]
    fn cookies() {
        assert_eq!(cookie("a=1; B=2;c = 3", "B"), Some("2"));
        assert_eq!(cookie("a=1; B=2", "b"), None);
        assert_eq!(cookie("a=1; c = 3", "c"), Some("3"));
        assert_eq!(cookie("junk; a=x=y", "a"), Some("x=y"));
    }
}
