//! Reading `split_arm_requests_total{route,rule,arm}` out of a Prometheus text exposition,
//! and diffing two scrapes.

use std::collections::BTreeMap;

/// The metric the gateway counts arm picks with.
pub const ARM_METRIC: &str = "split_arm_requests_total";

/// Identity of one arm counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArmKey {
    /// `route` label.
    pub route: String,
    /// `rule` label.
    pub rule: String,
    /// `arm` label (index or name).
    pub arm: String,
}

/// Arm counters of one scrape.
pub type ArmCounts = BTreeMap<ArmKey, f64>;

/// Extracts every `split_arm_requests_total` sample. Malformed lines are skipped (a
/// scrape is best effort; the report says when nothing was found).
pub fn parse_arm_counts(text: &str) -> ArmCounts {
    let mut out = ArmCounts::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix(ARM_METRIC) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('{') else {
            continue;
        };
        let Some((labels, after)) = split_labels(rest) else {
            continue;
        };
        let Some(value) = after
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        let get = |k: &str| {
            labels
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let key = ArmKey {
            route: get("route"),
            rule: get("rule"),
            arm: get("arm"),
        };
        *out.entry(key).or_default() += value;
    }
    out
}

/// Parses `a="x",b="y\"z"}` → labels and the text after `}`.
fn split_labels(s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = rest.find('=')?;
        let name = rest[..eq].trim().to_owned();
        rest = rest[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((name, value));
        rest = &rest[end + 1..];
    }
}

/// `after − before` per arm (arms absent before count from 0; zero diffs are dropped).
pub fn diff(before: &ArmCounts, after: &ArmCounts) -> ArmCounts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

/// Orders arm labels: numeric indexes numerically, names after them alphabetically.
pub fn arm_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP split_arm_requests_total Requests per traffic-split arm.
# TYPE split_arm_requests_total counter
split_arm_requests_total{route="aimlapi-split",rule="0",arm="0"} 50
split_arm_requests_total{arm="1",route="aimlapi-split",rule="0"} 49 1700000000000
split_arm_requests_total{route="we\"ird",rule="0",arm="canary"} 3.0
split_arm_requests_total_created{route="x",rule="0",arm="0"} 1.7e9
apisix_http_status{code="200",route="aimlapi-split"} 99
split_arm_requests_total{route="broken" 5
"#;

    fn key(route: &str, arm: &str) -> ArmKey {
        ArmKey {
            route: route.into(),
            rule: "0".into(),
            arm: arm.into(),
        }
    }

    #[test]
    fn parses_samples_in_any_label_order() {
        let c = parse_arm_counts(TEXT);
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[&key("aimlapi-split", "0")], 50.0);
        assert_eq!(c[&key("aimlapi-split", "1")], 49.0);
        assert_eq!(c[&key("we\"ird", "canary")], 3.0);
    }

    #[test]
    fn diff_subtracts_and_drops_unchanged() {
        let before = parse_arm_counts(TEXT);
        let mut after = before.clone();
        *after.get_mut(&key("aimlapi-split", "0")).unwrap() += 7.0;
        after.insert(key("new", "0"), 2.0);
        let d = diff(&before, &after);
        assert_eq!(d.len(), 2);
        assert_eq!(d[&key("aimlapi-split", "0")], 7.0);
        assert_eq!(d[&key("new", "0")], 2.0);
    }

    #[test]
    fn orders_numeric_arms_first() {
        let mut v = vec!["10", "canary", "2", "0"];
        v.sort_by(|a, b| arm_order(a, b));
        assert_eq!(v, vec!["0", "2", "10", "canary"]);
    }
}
