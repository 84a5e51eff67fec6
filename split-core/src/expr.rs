//! The lua-resty-expr language of APISIX `vars` (route `vars`, traffic-split `match`).
//!
//! Forms: `[var, op, val]`, `[var, "!", op, val]`, `[var, val]` (`==`); a list of
//! expressions is ANDed unless it starts with `"AND"|"OR"|"!AND"|"!OR"`; lists nest.
//! Operators (case-insensitive): `== ~= > >= < <= ~~ ~* in has ipmatch`.
//! Edge semantics follow APISIX exactly (reference §1.3), e.g. `~=` on a missing var is
//! true, numeric comparisons on a missing var are false.
//!
//! Details kept from lua-resty-expr 1.3.2 (on purpose, so configs behave as in APISIX):
//! - The top level must be a list of expressions or start with a logic operator; an
//!   unwrapped `[var, op, val]` is rejected (`rule should be wrapped inside brackets`).
//!   `[]` is always true. A logic list needs at least two operands (`rule too short`).
//! - `[var, val]`: the value goes through the operator's `string.lower`, so
//!   `["http_x", "Foo"]` compares with `"foo"`. A 4-item form needs `"!"` second
//!   (`bad 'not' expression`); items after the third of a 3-item form are ignored.
//! - `==`/`~=` with a JSON number run `tonumber` on the variable; otherwise values compare
//!   with Lua `==` (a string never equals a number or a boolean). JSON `null` as the value
//!   means "the variable is absent".
//! - `has` needs a table on the left: a JSON array from a body (`post_arg.tags`, a
//!   JSONPath query such as `post_arg.messages[*].role`, or a repeated form field); on a
//!   plain string it is false, as in APISIX.
//! - `ipmatch` compiles its IP/CIDR (or list) once; the variable is normalised
//!   (IPv4-mapped IPv6 → IPv4) before matching.
//!
//! Stricter than APISIX (errors at config time instead of per request): regexes must
//! compile with the Rust `regex` crate (no look-around or back-references), a variable
//! name must be a string, and JSONPath in `post_arg.` must parse.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;
use serde_json::Value;

use crate::request::jsonpath::{is_jsonpath, JsonPath};
use crate::request::{normalize_ip, Request, VarError, VarName, VarValue};

mod lua;

/// A compiled expression (regexes and CIDRs compiled once, at config time).
#[derive(Debug, Clone)]
pub struct Expr {
    /// `None`: the empty list, always true.
    root: Option<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Logic { op: LogicOp, items: Vec<Node> },
    Leaf(Leaf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogicOp {
    And,
    Or,
    NotAnd,
    NotOr,
}

#[derive(Debug, Clone)]
struct Leaf {
    var: VarName,
    reverse: bool,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    /// `==` (`None` = JSON null / missing value = Lua `nil`).
    Eq(Option<Value>),
    /// `~=`.
    Ne(Option<Value>),
    /// `> >= < <=` with the right side already through `tonumber` (`None`: always false).
    Num(NumOp, Option<f64>),
    /// `~~` / `~*`.
    Regex(Regex),
    /// `in`: the right side's array items (empty if it is not an array).
    In(Vec<Value>),
    /// `has`.
    Has(Option<Value>),
    /// `ipmatch`.
    IpMatch(Vec<IpNet>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumOp {
    Gt,
    Ge,
    Lt,
    Le,
}

const OPERATORS: &[&str] = &[
    "==", "~=", ">", ">=", "<", "<=", "~~", "~*", "in", "has", "ipmatch",
];

impl Expr {
    /// Compiles a `vars` JSON array. Errors read like APISIX's
    /// (`invalid operator '123'`); the caller adds the field path.
    pub fn compile(value: &Value) -> Result<Expr, String> {
        let Value::Array(rule) = value else {
            return Err("invalid expression: vars must be an array".into());
        };
        if rule.is_empty() {
            return Ok(Expr { root: None });
        }
        if !rule[0].is_array() && logic_op(&rule[0]).is_none() {
            return Err("rule should be wrapped inside brackets".into());
        }
        Ok(Expr {
            root: Some(compile_node(rule)?),
        })
    }

    /// An expression that is always true (the empty list `[]`).
    pub fn always() -> Expr {
        Expr { root: None }
    }

    /// True for the empty expression `[]`.
    pub fn is_always_true(&self) -> bool {
        self.root.is_none()
    }

    /// Evaluates against a request. `Err(NeedBody)` if a body variable is needed and the
    /// request carries no body yet.
    ///
    /// Operands that do not need the body are evaluated first where the result allows it,
    /// so a body is requested only when it can change the answer.
    pub fn eval(&self, req: &Request<'_>) -> Result<bool, VarError> {
        match &self.root {
            None => Ok(true),
            Some(node) => eval_node(node, req),
        }
    }

    /// True if evaluation may read the request body (`post_arg_*`, `post_arg.*`).
    pub fn needs_body(&self) -> bool {
        self.root.as_ref().is_some_and(node_needs_body)
    }
}

fn logic_op(v: &Value) -> Option<LogicOp> {
    let s = v.as_str()?;
    match s.to_ascii_uppercase().as_str() {
        "AND" => Some(LogicOp::And),
        "OR" => Some(LogicOp::Or),
        "!AND" => Some(LogicOp::NotAnd),
        "!OR" => Some(LogicOp::NotOr),
        _ => None,
    }
}

/// lua-resty-expr `compile(rules)`.
fn compile_node(rules: &[Value]) -> Result<Node, String> {
    let first = rules.first().ok_or("rule too short")?;
    if first.is_array() {
        let items = rules
            .iter()
            .map(|r| match r {
                Value::Array(a) => compile_node(a),
                _ => Err("invalid expression".to_owned()),
            })
            .collect::<Result<_, _>>()?;
        return Ok(Node::Logic {
            op: LogicOp::And,
            items,
        });
    }
    if let Some(op) = logic_op(first) {
        if rules.len() <= 2 {
            return Err("rule too short".into());
        }
        let items = rules[1..]
            .iter()
            .map(|r| match r {
                Value::Array(a) => compile_node(a),
                _ => Err("invalid expression".to_owned()),
            })
            .collect::<Result<_, _>>()?;
        return Ok(Node::Logic { op, items });
    }
    compile_leaf(rules).map(Node::Leaf)
}

/// Lua `string.lower` of an operator slot (numbers are coerced to strings).
fn op_string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.to_lowercase()),
        Value::Number(n) => Ok(match n.as_f64() {
            Some(f) if n.is_f64() => lua::number_to_string(f),
            _ => n.to_string(),
        }),
        _ => Err("invalid expression".into()),
    }
}

/// lua-resty-expr `compile_expr(expr)`.
fn compile_leaf(expr: &[Value]) -> Result<Leaf, String> {
    let (l, op, r, reverse) = if expr.len() == 4 {
        if expr[1].as_str() != Some("!") {
            return Err("bad 'not' expression".into());
        }
        (expr.first(), expr.get(2), expr.get(3), true)
    } else {
        (expr.first(), expr.get(1), expr.get(2), false)
    };
    let mut op = op.map(op_string).transpose()?;
    // `r` is Lua nil only when absent: a JSON null is cjson.null, a value.
    let mut r: Option<Value> = r.cloned();
    if r.is_none() && !op.as_deref().is_some_and(|o| OPERATORS.contains(&o)) {
        // `[var, val]`: the (lower-cased) value compares with `==`.
        let val = op.take().ok_or("invalid expression")?;
        r = Some(Value::String(val));
        op = Some("==".into());
    }
    let (Some(l), Some(op)) = (l, op) else {
        return Err("invalid expression".into());
    };
    let Value::String(var) = l else {
        return Err("invalid expression".into());
    };
    if let Some(path) = var.strip_prefix("post_arg.") {
        if is_jsonpath(path) {
            JsonPath::parse(path)?;
        }
    }
    // compare_val turns cjson.null into nil.
    let r_nil = r.filter(|v| !v.is_null());
    let op = match op.as_str() {
        "==" => Op::Eq(r_nil),
        "~=" => Op::Ne(r_nil),
        ">" | ">=" | "<" | "<=" => {
            let n = match op.as_str() {
                ">" => NumOp::Gt,
                ">=" => NumOp::Ge,
                "<" => NumOp::Lt,
                _ => NumOp::Le,
            };
            Op::Num(n, r_nil.as_ref().and_then(lua::tonumber_json))
        }
        "~~" | "~*" => Op::Regex(compile_regex(r_nil.as_ref(), op == "~*")?),
        "in" => Op::In(match r_nil {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        }),
        "has" => Op::Has(r_nil),
        "ipmatch" => Op::IpMatch(compile_ips(r_nil.as_ref())?),
        other => return Err(format!("invalid operator '{other}'")),
    };
    Ok(Leaf {
        var: VarName::parse(var),
        reverse,
        op,
    })
}

fn compile_regex(r: Option<&Value>, case_insensitive: bool) -> Result<Regex, String> {
    let pattern = match r {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => return Err(format!("bad regex {other}: not a string")),
        None => return Err("bad regex: missing pattern".into()),
    };
    regex::RegexBuilder::new(&pattern)
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| {
            let why = e.to_string();
            let last = why
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("invalid");
            format!("bad regex '{pattern}': {}", last.trim())
        })
}

fn compile_ips(r: Option<&Value>) -> Result<Vec<IpNet>, String> {
    let items: Vec<&Value> = match r {
        None => return Err("invalid ip address".into()),
        Some(Value::String(s)) if s.is_empty() => return Err("invalid ip address".into()),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
    };
    if items.is_empty() {
        return Err("invalid ip address".into());
    }
    items
        .into_iter()
        .map(|v| {
            let s = match v {
                Value::String(s) => s.as_str(),
                other => return Err(format!("invalid ip address: {other}")),
            };
            parse_ip_or_cidr(s).ok_or_else(|| format!("invalid ip address: {s}"))
        })
        .collect()
}

/// `1.2.3.4`, `1.2.3.0/24`, `::1`, `[::1]`, `fe80::/10`.
pub(crate) fn parse_ip_or_cidr(s: &str) -> Option<IpNet> {
    match s.parse::<IpNet>() {
        Ok(net) => Some(net),
        Err(_) => parse_ip(s).map(IpNet::from),
    }
}

/// An address, IPv6 optionally in brackets (as ipmatcher accepts).
fn parse_ip(s: &str) -> Option<IpAddr> {
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse::<IpAddr>().ok()
}

fn node_needs_body(node: &Node) -> bool {
    match node {
        Node::Logic { items, .. } => items.iter().any(node_needs_body),
        Node::Leaf(leaf) => leaf.var.needs_body(),
    }
}

fn eval_node(node: &Node, req: &Request<'_>) -> Result<bool, VarError> {
    match node {
        Node::Leaf(leaf) => eval_leaf(leaf, req),
        Node::Logic { op, items } => {
            // AND stops at the first false, OR at the first true; a pending body read
            // only matters if nothing else decides.
            let decisive = matches!(op, LogicOp::Or | LogicOp::NotOr);
            let mut need_body = false;
            for item in items {
                match eval_node(item, req) {
                    Ok(v) if v == decisive => {
                        return Ok(v != matches!(op, LogicOp::NotAnd | LogicOp::NotOr));
                    }
                    Ok(_) => {}
                    Err(VarError::NeedBody) => need_body = true,
                }
            }
            if need_body {
                return Err(VarError::NeedBody);
            }
            Ok(!decisive != matches!(op, LogicOp::NotAnd | LogicOp::NotOr))
        }
    }
}

fn eval_leaf(leaf: &Leaf, req: &Request<'_>) -> Result<bool, VarError> {
    let l = req.value_of(&leaf.var)?;
    let l = l.as_ref();
    let hit = match &leaf.op {
        Op::Eq(r) => match r {
            Some(Value::Number(n)) => lua::tonumber(l).is_some_and(|x| Some(x) == n.as_f64()),
            _ => lua::eq(l, r.as_ref()),
        },
        Op::Ne(r) => match r {
            Some(Value::Number(n)) => lua::tonumber(l).is_none_or(|x| Some(x) != n.as_f64()),
            _ => !lua::eq(l, r.as_ref()),
        },
        Op::Num(op, r) => match (lua::tonumber(l), r) {
            (Some(a), Some(b)) => match op {
                NumOp::Gt => a > *b,
                NumOp::Ge => a >= *b,
                NumOp::Lt => a < *b,
                NumOp::Le => a <= *b,
            },
            _ => false,
        },
        Op::Regex(re) => match l {
            Some(VarValue::Str(s)) => re.is_match(s),
            Some(VarValue::Json(Value::Number(n))) => {
                re.is_match(&n.as_f64().map(lua::number_to_string).unwrap_or_default())
            }
            _ => false,
        },
        Op::In(list) => l.is_some() && list.iter().any(|v| lua::eq(l, Some(v))),
        Op::Has(r) => match (l, r) {
            (Some(VarValue::Json(Value::Array(items))), Some(r)) => {
                items.iter().any(|item| match item {
                    Value::String(s) => r.as_str() == Some(s.as_str()),
                    other => lua::json_scalar_eq(other, r),
                })
            }
            _ => false,
        },
        Op::IpMatch(nets) => match l.and_then(VarValue::as_str).and_then(parse_ip) {
            Some(ip) => nets.iter().any(|n| n.contains(&normalize_ip(ip))),
            None => false,
        },
    };
    Ok(hit != leaf.reverse)
}
