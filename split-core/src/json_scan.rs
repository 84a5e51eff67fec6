//! A fast, allocation-free path for the two JSON reads made on every LLM request: the
//! top-level `model` of a request body and the counts of a response's `usage` object.
//!
//! The scanner accepts a subset of what serde_json accepts and answers `Err(Unsure)` for
//! everything else: any syntax error, an escape or a non-ASCII byte in an object key, an
//! escape in the value asked for, nesting deeper than [`MAX_DEPTH`], a count that is not
//! a plain `u64`. The caller then parses the same bytes with serde_json, so the answer is
//! always serde_json's; the scanner only saves its cost (about four times the
//! instructions on a chat request) in the common case.
//!
//! Where serde_json only skips (members other than the one asked for), the scanner checks
//! the same things serde_json's `IgnoredAny` checks: string escapes (`\u` needs four hex
//! digits, surrogates are not paired), no control characters in strings, the number
//! grammar, exact literals; bytes of 0x80 and above inside skipped strings pass
//! unchecked, as in serde_json. `tests/json_scan.rs` compares both on generated inputs;
//! the `json_scan` fuzz target does the same on arbitrary bytes.

/// The scanner cannot answer these bytes; parse them with serde_json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsure;

/// Deepest nesting the scanner follows (serde_json's own limit is 128).
pub const MAX_DEPTH: usize = 100;

/// The string value of `key` in the JSON object `bytes` (the whole input: leading and
/// trailing whitespace only). The last `key` member wins; `true`, `false` or `null` as
/// the last value gives `Ok(None)`, any other non-string value is left to serde_json.
/// serde_json gives the same answer whenever this returns `Ok`.
pub fn top_level_string<'a>(bytes: &'a [u8], key: &str) -> Result<Option<&'a str>, Unsure> {
    let mut c = Cursor { b: bytes, i: 0 };
    c.ws();
    let mut found = None;
    c.object(|c, name| {
        if name == key.as_bytes() {
            found = match c.peek() {
                Some(b'"') => {
                    let raw = c.plain_string()?;
                    Some(std::str::from_utf8(raw).map_err(|_| Unsure)?)
                }
                Some(b't' | b'f' | b'n') => {
                    c.value(1)?;
                    None
                }
                // serde_json reads a number here (failing on one out of range) and the
                // keys of an object here as strings (failing on a lone surrogate): leave
                // those to it.
                _ => return Err(Unsure),
            };
            Ok(())
        } else {
            c.value(1)
        }
    })?;
    c.ws();
    if c.i == bytes.len() {
        Ok(found)
    } else {
        Err(Unsure)
    }
}

/// The unsigned integer values of `keys` in the JSON object at the start of `bytes`
/// (bytes after the object are not looked at). A key absent, or whose last value is
/// `true`, `false` or `null`, gives `None`; other members are skipped. Any other value
/// of a counted key (a negative, fractional or too large number, a string, an array, an
/// object) is left to serde_json.
pub fn object_counts<const N: usize>(
    bytes: &[u8],
    keys: [&str; N],
) -> Result<[Option<u64>; N], Unsure> {
    let mut c = Cursor { b: bytes, i: 0 };
    let mut counts = [None; N];
    c.object(
        |c, name| match keys.iter().position(|k| k.as_bytes() == name) {
            Some(slot) => {
                counts[slot] = match c.peek() {
                    Some(b'0'..=b'9') => Some(c.plain_u64()?),
                    Some(b't' | b'f' | b'n') => {
                        c.value(1)?;
                        None
                    }
                    _ => return Err(Unsure),
                };
                Ok(())
            }
            None => c.value(1),
        },
    )?;
    Ok(counts)
}

/// Bytes that end a run of plain string content: `"`, `\\` and control characters.
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Result<(), Unsure> {
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// An object at the cursor; `member` is called at each value with the member's key
    /// (a plain ASCII string) and must consume the value.
    fn object(
        &mut self,
        mut member: impl FnMut(&mut Cursor<'a>, &[u8]) -> Result<(), Unsure>,
    ) -> Result<(), Unsure> {
        self.eat(b'{')?;
        self.items(b'}', |c| {
            let key = c.plain_string()?;
            if !key.is_ascii() {
                return Err(Unsure);
            }
            c.ws();
            c.eat(b':')?;
            c.ws();
            member(c, key)
        })
    }

    /// The items of an array or object whose opening bracket is consumed, up to and
    /// including `close`: `item` consumes one item (an object's key, colon and value).
    fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Cursor<'a>) -> Result<(), Unsure>,
    ) -> Result<(), Unsure> {
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    self.ws();
                }
                Some(byte) if byte == close => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Unsure),
            }
        }
    }

    /// Moves past plain string content; returns the byte that stopped it. Eight bytes
    /// at a time while they last (the lowest flagged byte of a word is the first stop
    /// byte in it), then byte by byte.
    fn string_run(&mut self) -> Result<u8, Unsure> {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let b = self.b;
        let mut i = self.i;
        while let Some(word) = b.get(i..i + 8) {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            let x = u64::from_le_bytes(bytes);
            let quote = x ^ (ONES * u64::from(b'"'));
            let backslash = x ^ (ONES * u64::from(b'\\'));
            let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
            let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
            let stops = zero_in(quote) | zero_in(backslash) | control;
            if stops != 0 {
                // trailing_zeros() / 8 < 8: the index of the first stop byte in the word.
                i += (stops.trailing_zeros() / 8) as usize;
                self.i = i + 1;
                return Ok(b[i]);
            }
            i += 8;
        }
        while i < b.len() {
            let byte = b[i];
            if STRING_STOP[usize::from(byte)] {
                self.i = i + 1;
                return Ok(byte);
            }
            i += 1;
        }
        Err(Unsure)
    }

    /// A string without escapes or control characters at the cursor: its raw bytes.
    fn plain_string(&mut self) -> Result<&'a [u8], Unsure> {
        self.eat(b'"')?;
        let start = self.i;
        match self.string_run()? {
            b'"' => Ok(&self.b[start..self.i - 1]),
            _ => Err(Unsure),
        }
    }

    /// Skips a string at the cursor, checking its escapes.
    fn skip_string(&mut self) -> Result<(), Unsure> {
        self.eat(b'"')?;
        loop {
            match self.string_run()? {
                b'"' => return Ok(()),
                b'\\' => match self.peek() {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                    Some(b'u') => {
                        let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Unsure)?;
                        if !hex.iter().all(u8::is_ascii_hexdigit) {
                            return Err(Unsure);
                        }
                        self.i += 5;
                    }
                    _ => return Err(Unsure),
                },
                _ => return Err(Unsure),
            }
        }
    }

    /// A run of ASCII digits; returns how many.
    fn digits(&mut self) -> usize {
        let n = self.b[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        self.i += n;
        n
    }

    /// Skips a number (JSON's grammar: no leading zeros, digits after `.` and `e`).
    fn skip_number(&mut self) -> Result<(), Unsure> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return Err(Unsure);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Unsure),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Unsure);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Unsure);
            }
        }
        Ok(())
    }

    /// An unsigned integer that fits a `u64`, followed by neither `.`, `e` nor `E`.
    fn plain_u64(&mut self) -> Result<u64, Unsure> {
        let start = self.i;
        let mut value: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or(Unsure)?;
            self.i += 1;
        }
        let n = self.i - start;
        if n == 0 || (n > 1 && self.b[start] == b'0') {
            return Err(Unsure);
        }
        match self.peek() {
            Some(b'.' | b'e' | b'E') => Err(Unsure),
            _ => Ok(value),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Unsure> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// Skips any value at the cursor, `depth` levels deep.
    fn value(&mut self, depth: usize) -> Result<(), Unsure> {
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(open @ (b'{' | b'[')) => {
                if depth >= MAX_DEPTH {
                    return Err(Unsure);
                }
                self.i += 1;
                if open == b'[' {
                    return self.items(b']', |c| c.value(depth + 1));
                }
                self.items(b'}', |c| {
                    c.skip_string()?;
                    c.ws();
                    c.eat(b':')?;
                    c.ws();
                    c.value(depth + 1)
                })
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            _ => Err(Unsure),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_model_of_a_chat_request() {
        let body = br#"{"model":"gpt-4","messages":[{"role":"user","content":"a \"quoted\" \u00e9 line\n"}],"temperature":0.7,"stream":false,"stop":null}"#;
        assert_eq!(top_level_string(body, "model"), Ok(Some("gpt-4")));
        assert_eq!(top_level_string(body, "absent"), Ok(None));
        assert_eq!(
            top_level_string(br#" {"model":"a","model":"b"} "#, "model"),
            Ok(Some("b"))
        );
        assert_eq!(
            top_level_string(br#"{"model":"a","model":null}"#, "model"),
            Ok(None)
        );
    }

    #[test]
    fn leaves_what_it_does_not_cover_to_serde_json() {
        for case in [
            &br#"{"mod\u0065l":"x"}"#[..],
            br#"{"model":"esc\"aped"}"#,
            br#"{"model":1}"#,
            br#"{"model":{"\ud800":1},"model":"x"}"#,
            br#"{"model":"x"} trailing"#,
            br#"{"model":"x",}"#,
            br#"{"x":01}"#,
            br#"{"x":1.}"#,
            br#"{"x":"\u12"}"#,
            br#"{"x":"\q"}"#,
            br#"{"x":tru}"#,
            b"{\"x\":\"tab\there\"}",
            b"{\"k\xc3\xa9\":1}",
            br#"[{"model":"x"}]"#,
            b"",
        ] {
            assert_eq!(
                top_level_string(case, "model"),
                Err(Unsure),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        let deep = format!(
            "{{\"x\":{}{}}}",
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert_eq!(top_level_string(deep.as_bytes(), "model"), Err(Unsure));
        let shallow = format!(
            "{{\"x\":{}{},\"model\":\"m\"}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert_eq!(top_level_string(shallow.as_bytes(), "model"), Ok(Some("m")));
    }

    #[test]
    fn counts_plain_unsigned_integers_only() {
        const KEYS: [&str; 3] = ["prompt_tokens", "completion_tokens", "total_tokens"];
        assert_eq!(
            object_counts(
                br#"{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"details":{"cached":[0]}} ,"x"#,
                KEYS
            ),
            Ok([Some(9), Some(12), Some(21)])
        );
        assert_eq!(
            object_counts(br#"{"total_tokens":null,"prompt_tokens":0}"#, KEYS),
            Ok([Some(0), None, None])
        );
        assert_eq!(
            object_counts(br#"{"prompt_tokens":18446744073709551615}"#, KEYS),
            Ok([Some(u64::MAX), None, None])
        );
        for case in [
            &br#"{"prompt_tokens":18446744073709551616}"#[..],
            br#"{"prompt_tokens":-1}"#,
            br#"{"prompt_tokens":1.0}"#,
            br#"{"prompt_tokens":1e3}"#,
            br#"{"prompt_tokens":"9"}"#,
            br#"{"prompt_tokens":9"#,
        ] {
            assert_eq!(object_counts(case, KEYS), Err(Unsure));
        }
    }
}

/// Generated JSON-like documents for the properties comparing the scanner with
/// serde_json: valid JSON and near misses (bad escapes, leading zeros, out-of-range
/// numbers, invalid UTF-8, control characters, trailing commas, truncation).
#[cfg(test)]
pub(crate) mod arb {
    use proptest::prelude::*;

    fn piece(options: &'static [&'static [u8]]) -> impl Strategy<Value = Vec<u8>> {
        proptest::sample::select(options).prop_map(<[u8]>::to_vec)
    }

    fn ws() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => piece(&[b"", b"", b" ", b"\n", b"\t\r "]),
            1 => piece(&[b"\x0c"]),
        ]
    }

    fn string() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            2 => piece(&[b"\"gpt-4\"", b"\"\"", b"\"a b\"", b"\"caf\xc3\xa9\""]),
            2 => mixed_string(),
        ]
    }

    fn mixed_string() -> impl Strategy<Value = Vec<u8>> {
        let part = prop_oneof![
            6 => piece(&[
                b"a",
                b"gpt-4",
                b"model",
                b" ",
                b"\\n",
                b"\\\"",
                b"\\/",
                b"\\u00e9",
                b"\\ud800",
                b"\xc3\xa9",
            ]),
            1 => piece(&[b"\\u12", b"\\q", b"\xff", b"\t", b"\x01"]),
        ];
        proptest::collection::vec(part, 0..4).prop_map(|parts| {
            let mut s = b"\"".to_vec();
            s.extend(parts.concat());
            s.push(b'"');
            s
        })
    }

    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => piece(&[
                b"\"model\"",
                b"\"model\"",
                b"\"prompt_tokens\"",
                b"\"completion_tokens\"",
                b"\"total_tokens\"",
                b"\"x\"",
            ]),
            1 => piece(&[b"\"mod\\u0065l\"", b"\"k\xc3\xa9\"", b"\"\""]),
            1 => string(),
        ]
    }

    fn scalar() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => string(),
            3 => piece(&[
                b"0",
                b"7",
                b"42",
                b"-1",
                b"-0",
                b"1.5",
                b"1e3",
                b"1E+2",
                b"18446744073709551615",
                b"true",
                b"false",
                b"null",
            ]),
            1 => piece(&[
                b"01",
                b"1.",
                b"2e-",
                b"-",
                b"18446744073709551616",
                b"1e400",
                b"tru",
                b"nul",
            ]),
        ]
    }

    fn join(open: u8, items: Vec<(Vec<u8>, Vec<u8>)>, close: u8, comma: bool) -> Vec<u8> {
        let mut out = vec![open];
        for (i, (space, item)) in items.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend(space);
            out.extend(item);
        }
        if comma {
            out.push(b',');
        }
        out.push(close);
        out
    }

    /// Any value, nested a few levels.
    pub(crate) fn value() -> impl Strategy<Value = Vec<u8>> {
        scalar().prop_recursive(4, 32, 5, |inner| {
            let member = (key(), ws(), ws(), inner.clone()).prop_map(|(k, a, b, v)| {
                let mut m = k;
                m.extend(a);
                m.push(b':');
                m.extend(b);
                m.extend(v);
                m
            });
            prop_oneof![
                (
                    proptest::collection::vec((ws(), inner), 0..4),
                    proptest::bool::weighted(0.05)
                )
                    .prop_map(|(items, comma)| join(b'[', items, b']', comma)),
                (
                    proptest::collection::vec((ws(), member), 0..5),
                    proptest::bool::weighted(0.05)
                )
                    .prop_map(|(items, comma)| join(b'{', items, b'}', comma)),
            ]
        })
    }

    /// A document: mostly an object, with whitespace around, sometimes cut short or
    /// followed by garbage.
    pub(crate) fn document() -> impl Strategy<Value = Vec<u8>> {
        let top = prop_oneof![
            4 => (
                proptest::collection::vec((ws(), key(), ws(), prop_oneof![scalar(), value()]), 0..6),
                proptest::bool::weighted(0.05)
            )
                .prop_map(|(members, comma)| {
                    let items = members
                        .into_iter()
                        .map(|(a, k, b, v)| {
                            let mut m = k;
                            m.extend(b);
                            m.push(b':');
                            m.extend(v);
                            (a, m)
                        })
                        .collect();
                    join(b'{', items, b'}', comma)
                }),
            1 => value(),
        ];
        (
            ws(),
            top,
            ws(),
            piece(&[b"", b"", b"", b"x", b"}", b","]),
            any::<u8>(),
        )
            .prop_map(|(a, top, b, tail, cut)| {
                let mut doc = a;
                doc.extend(top);
                doc.extend(b);
                doc.extend(tail);
                if cut < 16 && !doc.is_empty() {
                    doc.truncate(usize::from(cut) * doc.len() / 16);
                }
                doc
            })
    }
}
