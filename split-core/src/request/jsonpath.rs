//! The JSONPath subset APISIX users write in `post_arg.<path>` when the path contains `[`,
//! `*` or `..` (APISIX then queries `$.<path>` and yields the list of matches).
//!
//! Supported: `.name`, `.*`, `..name`, `..*`, `[n]` (negative counts from the end), `[*]`,
//! `['name']`, `["name"]`, and unions of those inside one bracket (`[0,2]`). Filters and
//! slices are rejected at compile time with a clear error.

use serde_json::Value;

/// One step of a compiled path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Selector {
    Name(String),
    Index(i64),
    Wildcard,
    Union(Vec<Selector>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    /// `..`: apply the selector to the node and every descendant.
    descendant: bool,
    selector: Selector,
}

/// A compiled JSONPath query rooted at the body (`$.` is implied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

/// True when APISIX treats a `post_arg.` path as JSONPath rather than a dotted path.
pub fn is_jsonpath(path: &str) -> bool {
    path.contains(['[', '*']) || path.contains("..")
}

impl JsonPath {
    /// Compiles `path` as APISIX does (`"$." .. path`).
    pub fn parse(path: &str) -> Result<JsonPath, String> {
        // `$.` is implied; a path that already starts with `..` or `[` keeps its meaning.
        let full = if path.starts_with("..") || path.starts_with('[') {
            path.to_owned()
        } else {
            format!(".{path}")
        };
        let b = full.as_bytes();
        let mut i = 0;
        let mut steps = Vec::new();
        let err = |why: &str| Err(format!("invalid JSONPath '$.{path}': {why}"));
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let descendant = b.get(i + 1) == Some(&b'.');
                    i += if descendant { 2 } else { 1 };
                    if b.get(i) == Some(&b'[') && descendant {
                        let (sel, next) = match bracket(&full, i) {
                            Ok(x) => x,
                            Err(e) => return err(&e),
                        };
                        steps.push(Step {
                            descendant,
                            selector: sel,
                        });
                        i = next;
                        continue;
                    }
                    let start = i;
                    while i < b.len() && b[i] != b'.' && b[i] != b'[' {
                        i += 1;
                    }
                    let name = &full[start..i];
                    let selector = match name {
                        "" => return err("empty name"),
                        "*" => Selector::Wildcard,
                        _ => Selector::Name(name.to_owned()),
                    };
                    steps.push(Step {
                        descendant,
                        selector,
                    });
                }
                b'[' => {
                    let (selector, next) = match bracket(&full, i) {
                        Ok(x) => x,
                        Err(e) => return err(&e),
                    };
                    steps.push(Step {
                        descendant: false,
                        selector,
                    });
                    i = next;
                }
                _ => return err("expected '.' or '['"),
            }
        }
        Ok(JsonPath { steps })
    }

    /// All matches in document order.
    pub fn query<'v>(&self, root: &'v Value) -> Vec<&'v Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for node in current {
                if step.descendant {
                    let mut all = Vec::new();
                    collect_descendants(node, &mut all);
                    for n in all {
                        select(n, &step.selector, &mut next);
                    }
                } else {
                    select(node, &step.selector, &mut next);
                }
            }
            current = next;
        }
        current
    }
}

/// Parses `[...]` starting at `open` (the `[`); returns the selector and the index after `]`.
fn bracket(s: &str, open: usize) -> Result<(Selector, usize), String> {
    let rest = &s[open + 1..];
    let mut parts = Vec::new();
    let mut i = 0;
    let rb = rest.as_bytes();
    loop {
        while rb.get(i) == Some(&b' ') {
            i += 1;
        }
        match rb.get(i) {
            None => return Err("unclosed '['".into()),
            Some(&q @ (b'\'' | b'"')) => {
                let end = rest[i + 1..]
                    .find(char::from(q))
                    .ok_or_else(|| "unclosed quote".to_owned())?;
                parts.push(Selector::Name(rest[i + 1..i + 1 + end].to_owned()));
                i += end + 2;
            }
            Some(b'*') => {
                parts.push(Selector::Wildcard);
                i += 1;
            }
            Some(_) => {
                let end = rest[i..]
                    .find([',', ']'])
                    .ok_or_else(|| "unclosed '['".to_owned())?;
                let tok = rest[i..i + end].trim();
                let n: i64 = tok
                    .parse()
                    .map_err(|_| format!("unsupported selector '{tok}'"))?;
                parts.push(Selector::Index(n));
                i += end;
            }
        }
        while rb.get(i) == Some(&b' ') {
            i += 1;
        }
        match rb.get(i) {
            Some(b',') => i += 1,
            Some(b']') => {
                let sel = if parts.len() == 1 {
                    parts.pop().unwrap_or(Selector::Wildcard)
                } else {
                    Selector::Union(parts)
                };
                return Ok((sel, open + 1 + i + 1));
            }
            _ => return Err("expected ',' or ']'".into()),
        }
    }
}

fn select<'v>(node: &'v Value, sel: &Selector, out: &mut Vec<&'v Value>) {
    match (sel, node) {
        (Selector::Name(n), Value::Object(m)) => out.extend(m.get(n)),
        (Selector::Index(i), Value::Array(a)) => {
            let idx = if *i < 0 {
                i64::try_from(a.len())
                    .ok()
                    .and_then(|len| usize::try_from(len + i).ok())
            } else {
                usize::try_from(*i).ok()
            };
            out.extend(idx.and_then(|i| a.get(i)));
        }
        (Selector::Wildcard, Value::Array(a)) => out.extend(a.iter()),
        (Selector::Wildcard, Value::Object(m)) => out.extend(m.values()),
        (Selector::Union(parts), _) => {
            for p in parts {
                select(node, p, out);
            }
        }
        _ => {}
    }
}

/// The node itself and all its descendants, pre-order. Iterative: deep JSON never
/// overflows the stack (serde_json already caps parse depth at 128).
fn collect_descendants<'v>(root: &'v Value, out: &mut Vec<&'v Value>) {
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        out.push(n);
        match n {
            Value::Array(a) => stack.extend(a.iter().rev()),
            Value::Object(m) => {
                let children: Vec<&Value> = m.values().collect();
                stack.extend(children.into_iter().rev());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(path: &str, v: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .expect("valid path")
            .query(v)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn queries() {
        let v = json!({"messages": [
            {"role": "system", "content": "x"},
            {"role": "user", "content": [{"type": "text"}, {"type": "image_url"}]}
        ], "model": "m"});
        assert_eq!(
            q("messages[*].content[*].type", &v),
            vec![json!("text"), json!("image_url")]
        );
        assert_eq!(q("messages[0].role", &v), vec![json!("system")]);
        assert_eq!(q("messages[-1].role", &v), vec![json!("user")]);
        assert_eq!(q("messages[5].role", &v), Vec::<Value>::new());
        assert_eq!(q("..type", &v), vec![json!("text"), json!("image_url")]);
        assert_eq!(q("['model']", &v), vec![json!("m")]);
        assert_eq!(
            q("messages[0,1].role", &v),
            vec![json!("system"), json!("user")]
        );
        assert_eq!(q("*", &json!({"a": 1, "b": 2})), vec![json!(1), json!(2)]);
    }

    #[test]
    fn rejects() {
        for bad in [
            "messages[",
            "messages[?(@.a)]",
            "messages[1:2]",
            "a.",
            "['x",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
        assert!(is_jsonpath("a[0]") && is_jsonpath("a.*") && is_jsonpath("..a"));
        assert!(!is_jsonpath("a.b"));
    }
}
