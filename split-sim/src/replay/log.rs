//! One access-log line (design.md "Access log line"): `time, remote_addr, method, uri,
//! status, route_id, rule, arm, upstream_addr, upstream_uri, upstream_status,
//! request_time_ms, ttfb_ms, bytes_sent, consumer, model, prompt_tokens,
//! completion_tokens`. Only the fields replay needs are read; others are ignored.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::Value;

use super::Placement;

/// The fields of a log line that replay uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Client address (an IP, possibly with a port).
    pub remote_addr: String,
    /// Method.
    pub method: String,
    /// Request uri with query.
    pub uri: String,
    /// Route id, if a route matched.
    pub route_id: Option<String>,
    /// Rule index, if a rule matched.
    pub rule: Option<usize>,
    /// Arm label, if a rule matched.
    pub arm: Option<String>,
    /// Consumer.
    pub consumer: Option<String>,
    /// Model from the request body.
    pub model: Option<String>,
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses one JSON line; `None` when it is not an object with `method` and `uri`.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let v: Value = serde_json::from_str(line).ok()?;
    let o = v.as_object()?;
    Some(LogLine {
        remote_addr: text(o.get("remote_addr")).unwrap_or_default(),
        method: text(o.get("method"))?,
        uri: text(o.get("uri"))?,
        route_id: text(o.get("route_id")),
        rule: o.get("rule").and_then(|r| match r {
            Value::Number(n) => n.as_u64().map(|x| x as usize),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }),
        arm: text(o.get("arm")),
        consumer: text(o.get("consumer")),
        model: text(o.get("model")),
    })
}

impl LogLine {
    /// The client IP (`ip`, `ip:port` or `[v6]:port`); 127.0.0.1 when unparsable.
    pub fn remote_ip(&self) -> IpAddr {
        let s = self.remote_addr.trim();
        if let Ok(ip) = s.parse::<IpAddr>() {
            return split_core::request::normalize_ip(ip);
        }
        if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
            return split_core::request::normalize_ip(sa.ip());
        }
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }

    /// Where the log says the request went.
    pub fn placement(&self) -> Placement {
        Placement {
            route: self.route_id.clone().unwrap_or_default(),
            rule: self.rule,
            arm: self.rule.and(self.arm.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_fields() {
        let l = parse_line(
            r#"{"time":"2026-01-01T00:00:00Z","remote_addr":"10.0.0.1","method":"POST",
            "uri":"/chat/completions?a=1","status":200,"route_id":"aimlapi-split","rule":0,
            "arm":1,"upstream_addr":"1.2.3.4:443","consumer":null,"model":"gpt-4"}"#,
        )
        .unwrap();
        assert_eq!(l.method, "POST");
        assert_eq!(l.rule, Some(0));
        assert_eq!(l.arm.as_deref(), Some("1"));
        assert_eq!(l.consumer, None);
        assert_eq!(l.model.as_deref(), Some("gpt-4"));
        assert_eq!(l.remote_ip(), IpAddr::from([10, 0, 0, 1]));
        assert_eq!(l.placement().route, "aimlapi-split");
    }

    #[test]
    fn rejects_non_requests() {
        assert!(parse_line("not json").is_none());
        assert!(parse_line(r#"{"uri":"/x"}"#).is_none());
        let l =
            parse_line(r#"{"method":"GET","uri":"/","remote_addr":"[::ffff:1.2.3.4]:5"}"#).unwrap();
        assert_eq!(l.remote_ip(), IpAddr::from([1, 2, 3, 4]));
        assert_eq!(l.placement().rule, None);
    }
}
