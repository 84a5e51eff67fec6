//! `nginx_config.error_log_level`: APISIX's error log level, which split maps onto its
//! own diagnostic log. Every other `nginx_config` key is nginx tuning split has no use
//! for, so it is ignored with a warning.

use serde_json::{Map, Value};

use super::value::{as_str, get};
use crate::ConfigError;

/// nginx's error log levels, most verbose first (APISIX's default is `warn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorLogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `notice`.
    Notice,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
    /// `crit`.
    Crit,
    /// `alert`.
    Alert,
    /// `emerg`.
    Emerg,
}

impl ErrorLogLevel {
    const NAMES: [(&'static str, ErrorLogLevel); 8] = [
        ("debug", ErrorLogLevel::Debug),
        ("info", ErrorLogLevel::Info),
        ("notice", ErrorLogLevel::Notice),
        ("warn", ErrorLogLevel::Warn),
        ("error", ErrorLogLevel::Error),
        ("crit", ErrorLogLevel::Crit),
        ("alert", ErrorLogLevel::Alert),
        ("emerg", ErrorLogLevel::Emerg),
    ];

    /// Parses nginx's level name (lower case, as nginx requires).
    pub fn parse(name: &str) -> Option<ErrorLogLevel> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, level)| *level)
    }

    /// The closest `tracing` level name: `notice` logs as `info`; `crit`, `alert` and
    /// `emerg` as `error` (tracing has nothing above `error`).
    pub fn tracing_level(self) -> &'static str {
        match self {
            ErrorLogLevel::Debug => "debug",
            ErrorLogLevel::Info | ErrorLogLevel::Notice => "info",
            ErrorLogLevel::Warn => "warn",
            ErrorLogLevel::Error
            | ErrorLogLevel::Crit
            | ErrorLogLevel::Alert
            | ErrorLogLevel::Emerg => "error",
        }
    }
}

/// Reads the `nginx_config` section: the level, plus one warning per other key.
pub(super) fn nginx_config(
    section: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<Option<ErrorLogLevel>, ConfigError> {
    for key in section.keys() {
        if key != "error_log_level" {
            warnings.push(format!(
                "nginx_config.{key} is not supported by split, ignored"
            ));
        }
    }
    let Some(v) = get(section, "error_log_level") else {
        return Ok(None);
    };
    let path = "nginx_config.error_log_level";
    let name = as_str(v, path)?;
    ErrorLogLevel::parse(name).map(Some).ok_or_else(|| {
        ConfigError::new(
            path,
            format!(
                "unknown level '{name}' (expected debug, info, notice, warn, error, crit, alert or emerg)"
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_nginx_level_maps_to_a_tracing_level() {
        let expected = [
            ("debug", "debug"),
            ("info", "info"),
            ("notice", "info"),
            ("warn", "warn"),
            ("error", "error"),
            ("crit", "error"),
            ("alert", "error"),
            ("emerg", "error"),
        ];
        for (nginx, tracing) in expected {
            let level = ErrorLogLevel::parse(nginx).expect(nginx);
            assert_eq!(level.tracing_level(), tracing, "{nginx}");
        }
        assert_eq!(ErrorLogLevel::parse("WARN"), None);
        assert_eq!(ErrorLogLevel::parse("warning"), None);
    }
}
