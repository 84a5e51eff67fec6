//! Parsing of the human-friendly numbers the CLI takes: durations (`20ms`, `1.5s`) and
//! counts with `k`/`m` suffixes (`10m` = 10,000,000 requests).

use std::time::Duration;

/// A malformed duration or count, with the offending text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnitError {
    /// Not a duration such as `50ms`, `2s`, `1m`, `250us`.
    #[error("invalid duration {0:?}: expected a number with a unit (us, ms, s, m), e.g. 20ms")]
    Duration(String),
    /// Not a count such as `100`, `10k`, `2m`.
    #[error("invalid count {0:?}: expected an integer with an optional k or m suffix, e.g. 10m")]
    Count(String),
}

/// Parses `250us`, `20ms`, `1.5s`, `2m`, or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let t = text.trim();
    let err = || UnitError::Duration(text.to_owned());
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().map_err(|_| err())?;
    let secs = match unit {
        "" | "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "s" => value,
        "m" | "min" => value * 60.0,
        _ => return Err(err()),
    };
    if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses `100`, `10k` (10,000), `2m` (2,000,000), `1_000`; underscores and commas are
/// ignored.
pub fn parse_count(text: &str) -> Result<u64, UnitError> {
    let err = || UnitError::Count(text.to_owned());
    let t: String = text
        .trim()
        .chars()
        .filter(|c| *c != '_' && *c != ',')
        .collect();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1_000),
        Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
        Some('g' | 'G') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (t.as_str(), 1),
    };
    let n: u64 = num.parse().map_err(|_| err())?;
    n.checked_mul(mult).ok_or_else(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_millis(7)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("100"), Ok(100));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("10m"), Ok(10_000_000));
        assert_eq!(parse_count("1_000"), Ok(1000));
        assert!(parse_count("m").is_err());
        assert!(parse_count("99999999999999999999m").is_err());
        assert!(parse_count("1.5k").is_err());
    }
}
