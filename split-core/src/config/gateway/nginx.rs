//! The `nginx_config` section. Three keys mean something to split:
//! - `error_log_level`: APISIX's error log level, mapped onto split's own diagnostic log;
//! - `worker_processes`: `auto` (one worker per core, the default) or a number of
//!   workers; `--workers` on the command line wins;
//! - `enable_cpu_affinity`: pin each worker to its own CPU, as APISIX does with nginx's
//!   `worker_cpu_affinity auto` (default `false`, as in APISIX 3.x).
//!
//! Every other key is nginx tuning split has no use for, so it is ignored with a warning.

use serde_json::{Map, Value};

use super::value::{as_bool, as_str, get};
use crate::ConfigError;

/// What split takes from `nginx_config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct NginxConfig {
    /// `error_log_level`, if set.
    pub(super) error_log_level: Option<ErrorLogLevel>,
    /// `enable_cpu_affinity` (false when unset).
    pub(super) enable_cpu_affinity: bool,
    /// `worker_processes` when a number (`auto` and unset: `None`).
    pub(super) worker_processes: Option<usize>,
}

/// Keys of `nginx_config` that split reads.
const KNOWN: [&str; 3] = ["error_log_level", "enable_cpu_affinity", "worker_processes"];

/// Most workers `worker_processes` may ask for (nginx has no limit; this catches typos
/// such as `20000` before they start as many threads).
pub const MAX_WORKERS: usize = 1024;

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

/// Reads the `nginx_config` section, with one warning per key split does not use.
pub(super) fn nginx_config(
    section: &Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<NginxConfig, ConfigError> {
    for key in section.keys() {
        if !KNOWN.contains(&key.as_str()) {
            warnings.push(format!(
                "nginx_config.{key} is not supported by split, ignored"
            ));
        }
    }
    let mut out = NginxConfig::default();
    if let Some(v) = get(section, "error_log_level") {
        let path = "nginx_config.error_log_level";
        let name = as_str(v, path)?;
        out.error_log_level = Some(ErrorLogLevel::parse(name).ok_or_else(|| {
            ConfigError::new(
                path,
                format!(
                    "unknown level '{name}' (expected debug, info, notice, warn, error, crit, alert or emerg)"
                ),
            )
        })?);
    }
    if let Some(v) = get(section, "enable_cpu_affinity") {
        out.enable_cpu_affinity = as_bool(v, "nginx_config.enable_cpu_affinity")?;
    }
    if let Some(v) = get(section, "worker_processes") {
        out.worker_processes = worker_processes(v)?;
    }
    Ok(out)
}

/// `auto` → `None`; a number from 1 to [`MAX_WORKERS`] (or its digits in a string) →
/// that many.
fn worker_processes(v: &Value) -> Result<Option<usize>, ConfigError> {
    let path = "nginx_config.worker_processes";
    if v.as_str() == Some("auto") {
        return Ok(None);
    }
    // A number, or a number in a string (nginx reads the directive as text).
    let n = v
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .or_else(|| v.as_str().and_then(|s| s.parse::<usize>().ok()));
    match n {
        Some(n @ 1..=MAX_WORKERS) => Ok(Some(n)),
        _ => Err(ConfigError::new(
            path,
            format!("must be auto or a number of workers from 1 to {MAX_WORKERS}, got {v}"),
        )),
    }
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
