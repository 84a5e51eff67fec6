//! The few Lua value rules lua-resty-expr relies on: `tonumber`, `==` between a variable
//! and a JSON constant, and number-to-string coercion.

use serde_json::Value;

use crate::request::VarValue;

/// LuaJIT `tonumber` on a string: optional surrounding whitespace, an optional sign,
/// decimal (with fraction/exponent) or `0x` hex integer. `inf`/`nan` are not numbers.
pub(crate) fn tonumber_str(s: &str) -> Option<f64> {
    let t = s.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, body) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let v = if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        hex.bytes().fold(0f64, |acc, b| {
            // is_ascii_hexdigit checked above, so to_digit succeeds.
            acc * 16.0 + f64::from(char::from(b).to_digit(16).unwrap_or(0))
        })
    } else {
        let first = *body.as_bytes().first()?;
        if !(first.is_ascii_digit() || first == b'.') {
            return None;
        }
        if !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        {
            return None;
        }
        body.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// `tonumber(l_v)` for a variable value: strings are parsed, JSON numbers kept, anything
/// else (and a missing variable) is `nil`.
pub(crate) fn tonumber(v: Option<&VarValue<'_>>) -> Option<f64> {
    match v? {
        VarValue::Str(s) => tonumber_str(s),
        VarValue::Json(Value::Number(n)) => n.as_f64(),
        VarValue::Json(_) => None,
    }
}

/// `tonumber` on a JSON constant of the rule.
pub(crate) fn tonumber_json(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => tonumber_str(s),
        _ => None,
    }
}

/// Lua `l_v == r_v` where `r_v` is a JSON constant (`None` = Lua `nil`). Strings equal
/// strings, numbers numbers, booleans booleans, `null` the JSON null of a body; tables
/// (arrays, objects) are never equal to anything but themselves.
pub(crate) fn eq(l: Option<&VarValue<'_>>, r: Option<&Value>) -> bool {
    match (l, r) {
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(VarValue::Str(a)), Some(Value::String(b))) => a == b,
        (Some(VarValue::Json(a)), Some(b)) => json_scalar_eq(a, b),
        (Some(VarValue::Str(_)), Some(_)) => false,
    }
}

/// Lua equality of two decoded JSON values: scalars by value, tables never.
pub(crate) fn json_scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        _ => false,
    }
}

/// Lua's `tostring` of a number (`%.14g`): integers without a fraction.
pub(crate) fn number_to_string(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonumber_like_luajit() {
        let cases: &[(&str, Option<f64>)] = &[
            ("16", Some(16.0)),
            (" 16 ", Some(16.0)),
            ("-1.5", Some(-1.5)),
            ("+2", Some(2.0)),
            ("1e3", Some(1000.0)),
            (".5", Some(0.5)),
            ("5.", Some(5.0)),
            ("0x1F", Some(31.0)),
            ("-0x10", Some(-16.0)),
            ("", None),
            ("abc", None),
            ("10abc", None),
            ("inf", None),
            ("nan", None),
            ("-+5", None),
            ("0x", None),
            ("1 2", None),
        ];
        for (s, want) in cases {
            assert_eq!(tonumber_str(s), *want, "{s:?}");
        }
    }

    #[test]
    fn number_strings() {
        assert_eq!(number_to_string(5.0), "5");
        assert_eq!(number_to_string(-1.5), "-1.5");
    }
}
