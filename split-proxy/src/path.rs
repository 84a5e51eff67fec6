//! The request path as APISIX matches it (`$uri`): percent-decoded, dot segments
//! resolved, repeated slashes merged. The client's raw path is still what goes upstream
//! unless a rewrite changes it.

use std::borrow::Cow;

/// Normalises a raw request path. `None` for paths that cannot be normalised (a `..`
/// above the root, invalid percent escapes, a decoded NUL or non-UTF-8): answer 400.
/// An already normal path comes back borrowed (no copy).
pub fn normalize(raw: &str) -> Option<Cow<'_, str>> {
    if is_normal(raw) {
        return Some(Cow::Borrowed(raw));
    }
    normalize_slow(raw).map(Cow::Owned)
}

/// [`normalize`] without the shortcut for already normal paths.
fn normalize_slow(raw: &str) -> Option<String> {
    let decoded = percent_decode(raw)?;
    if !decoded.starts_with('/') {
        return if decoded == "*" { Some(decoded) } else { None };
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            s => segments.push(s),
        }
    }
    let trailing = decoded.len() > 1
        && (decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/.."));
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    Some(out)
}

/// True when `raw` is already what [`normalize`] would make of it: absolute, nothing to
/// decode, no empty, `.` or `..` segment but a trailing empty one (the common case,
/// checked in one pass without allocating).
fn is_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    // One pass over the bytes: a segment ends at each `/` and at the end of the path.
    let mut start = 1;
    for i in 1..=bytes.len() {
        let at_end = i == bytes.len();
        match bytes.get(i) {
            Some(b'%') => return false,
            Some(b'/') | None => {
                match &bytes[start..i] {
                    b"." | b".." => return false,
                    b"" if !at_end => return false,
                    _ => {}
                }
                start = i + 1;
            }
            Some(_) => {}
        }
    }
    true
}

fn percent_decode(raw: &str) -> Option<String> {
    if !raw.contains('%') {
        return Some(raw.to_owned());
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte == 0 {
                return None;
            }
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::borrow::Cow;

    #[test]
    fn paths_normalise_like_nginx_uri() {
        let cases = [
            ("/", "/"),
            ("/chat/completions", "/chat/completions"),
            ("//chat///completions", "/chat/completions"),
            ("/a/./b/../c", "/a/c"),
            ("/a/b/", "/a/b/"),
            ("/a/b/..", "/a/"),
            ("/v1%2Fchat", "/v1/chat"),
            ("/caf%C3%A9", "/café"),
            ("/a/.b/..c/...", "/a/.b/..c/..."),
            ("/.", "/"),
            ("/a/.", "/a/"),
            ("/a//", "/a/"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize(raw).as_deref(), Some(want), "{raw}");
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_normalisation() {
        let parts = ["", "/", "a", ".", "..", "...", "%41", "b.c", "%2e", "//"];
        let mut checked = 0;
        for a in parts {
            for b in parts {
                for c in parts {
                    let raw = format!("/{a}/{b}{c}");
                    let slow = super::normalize_slow(&raw);
                    if super::is_normal(&raw) {
                        assert_eq!(slow.as_deref(), Some(raw.as_str()), "{raw}");
                        // No copy of a path that is already normal.
                        let fast = normalize(&raw);
                        assert!(matches!(fast, Some(Cow::Borrowed(_))), "{raw}");
                        checked += 1;
                    }
                    assert_eq!(normalize(&raw).as_deref(), slow.as_deref(), "{raw}");
                }
            }
        }
        assert!(checked > 50, "{checked}");
    }

    #[test]
    fn bad_paths_are_rejected_without_panicking() {
        for raw in [
            "/..",
            "/a/../../b",
            "/%zz",
            "/%4",
            "/%00",
            "/%ff",
            "relative",
            "",
        ] {
            assert_eq!(normalize(raw), None, "{raw}");
        }
    }
}
