//! The `model` of a JSON request body, without building a `serde_json::Value` tree.
//!
//! The body must be valid JSON with an object at the top. The common case (a plain
//! `model` string, ASCII keys) is answered by [`crate::json_scan`] without serde; anything
//! else goes to serde_json, where every member except `model` is skipped with
//! `IgnoredAny`, so no map, vector or string is allocated for the messages. Same answer
//! as `Value::get("model")?.as_str()` on valid JSON: the last `model` member wins, a
//! non-string `model` gives `None`.

use std::fmt;

use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};

use crate::json_scan::{top_level_string, Unsure};

/// `model` of a JSON object body, if it is a string.
pub fn model_of(bytes: &[u8]) -> Option<String> {
    match top_level_string(bytes, "model") {
        Ok(model) => model.map(str::to_owned),
        Err(Unsure) => model_of_serde(bytes),
    }
}

/// [`model_of`] by serde_json alone: the answer the fast path must agree with.
pub(crate) fn model_of_serde(bytes: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let model = de.deserialize_map(ModelVisitor).ok()?;
    de.end().ok()?;
    model
}

struct ModelVisitor;

impl<'de> Visitor<'de> for ModelVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<String>, A::Error> {
        let mut model = None;
        while let Some(is_model) = map.next_key_seed(KeyIsModel)? {
            if is_model {
                model = map.next_value::<StringOrNone>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(model)
    }
}

/// Any JSON value: `Some` for a string (one allocation, no `Value` in between), `None`
/// for anything else, which is consumed (nested members skipped with `IgnoredAny`).
struct StringOrNone(Option<String>);

impl<'de> Deserialize<'de> for StringOrNone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StringOrNoneVisitor)
    }
}

struct StringOrNoneVisitor;

impl<'de> Visitor<'de> for StringOrNoneVisitor {
    type Value = StringOrNone;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StringOrNone, E> {
        Ok(StringOrNone(Some(v.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<StringOrNone, E> {
        Ok(StringOrNone(Some(v)))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<StringOrNone, E> {
        Ok(StringOrNone(None))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<StringOrNone, E> {
        Ok(StringOrNone(None))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<StringOrNone, E> {
        Ok(StringOrNone(None))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<StringOrNone, E> {
        Ok(StringOrNone(None))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<StringOrNone, E> {
        Ok(StringOrNone(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrNone, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(StringOrNone(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StringOrNone, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(StringOrNone(None))
    }
}

/// Deserializes an object key into "is it `model`?" (escapes already decoded).
struct KeyIsModel;

impl<'de> DeserializeSeed<'de> for KeyIsModel {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIsModel {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == "model")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: what the proxy did before, via `Value`.
    fn via_value(bytes: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        v.get("model")?.as_str().map(str::to_owned)
    }

    #[test]
    fn same_answers_as_a_value_parse() {
        let cases: &[&[u8]] = &[
            br#"{"model":"gpt-4","messages":[{"role":"user","content":"ping"}]}"#,
            br#"{"messages":[{"model":"inner"}],"model":"outer"}"#,
            br#"{"model":"a","model":"b"}"#,
            br#"{"mod\u0065l":"escaped-key"}"#,
            br#"{"model":"esc\"aped\u00e9"}"#,
            br#"{"model":42}"#,
            br#"{"model":null}"#,
            br#"{"model":{"name":"x"}}"#,
            br#"{"model":[1,{"a":"b"}],"model":"later"}"#,
            br#"{"model":"first","model":[1]}"#,
            br#"{"model":true}"#,
            br#"{"model":-1.5}"#,
            br#"{"model":1e400}"#,
            br#"{"model":{"a":[}}"#,
            br#"{"x":1}"#,
            br#"{}"#,
            br#"[{"model":"x"}]"#,
            br#""model""#,
            br#"{"model":"x"} trailing"#,
            br#"{"model":"x""#,
            br#"{"model":"x",}"#,
            b"  {\"model\" : \"spaced\" }  ",
            b"",
            b"model=gpt-4",
            &[0xff, 0xfe],
        ];
        for case in cases {
            assert_eq!(
                model_of(case),
                via_value(case),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        assert_eq!(
            model_of(br#"{"model":"gpt-4","stream":true}"#).as_deref(),
            Some("gpt-4")
        );
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::model_of_serde;
    use crate::json_scan::{arb, top_level_string};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whenever the scanner answers, serde_json gives the same answer.
        #[test]
        fn scanner_agrees_with_serde_json(doc in arb::document()) {
            if let Ok(model) = top_level_string(&doc, "model") {
                prop_assert_eq!(
                    model.map(str::to_owned),
                    model_of_serde(&doc),
                    "{}",
                    String::from_utf8_lossy(&doc)
                );
            }
        }
    }

    /// The properties above are not vacuous: the scanner answers a good share of the
    /// generated documents, including ones with a model.
    #[test]
    fn scanner_answers_most_valid_documents() {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::TestRunner;
        let mut runner = TestRunner::deterministic();
        let (mut valid, mut answered, mut models) = (0, 0, 0);
        for _ in 0..6000 {
            let doc = arb::document().new_tree(&mut runner).unwrap().current();
            if serde_json::from_slice::<serde_json::Value>(&doc).is_ok_and(|v| v.is_object()) {
                valid += 1;
                if let Ok(model) = top_level_string(&doc, "model") {
                    answered += 1;
                    models += usize::from(model.is_some());
                }
            }
        }
        assert!(valid > 300, "{valid} valid documents");
        assert!(answered * 2 > valid, "{answered} of {valid} answered");
        assert!(
            models > 10,
            "{models} with a model ({answered} of {valid} answered)"
        );
    }
}
