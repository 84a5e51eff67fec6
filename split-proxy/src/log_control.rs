//! Which diagnostic log level applies: `--log-level` on the command line wins; else
//! config.yaml's `nginx_config.error_log_level` (mapped onto tracing's levels), read at
//! start and again on SIGHUP; else `RUST_LOG`; else `info`.

use split_core::config::gateway::ErrorLogLevel;
use tracing_subscriber::EnvFilter;

use crate::logging::LevelHandle;

/// The log filter and the rule that picks it.
pub struct LogControl {
    handle: LevelHandle,
    /// `--log-level`, when given: never overridden.
    cli: Option<String>,
}

/// What [`LogControl::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// `--log-level` was given and stays.
    CommandLine(String),
    /// This filter is now in effect.
    Filter(String),
}

impl LogControl {
    /// Controls the subscriber behind `handle`; `cli` is `--log-level`.
    pub fn new(handle: LevelHandle, cli: Option<String>) -> LogControl {
        LogControl { handle, cli }
    }

    /// Applies config.yaml's level (`None`: the file sets none).
    pub fn apply(&self, level: Option<ErrorLogLevel>) -> Result<Applied, String> {
        if let Some(cli) = &self.cli {
            return Ok(Applied::CommandLine(cli.clone()));
        }
        let (filter, text) = choose(level, std::env::var("RUST_LOG").ok().as_deref());
        self.handle
            .reload(filter)
            .map_err(|e| format!("cannot change the log level: {e}"))?;
        Ok(Applied::Filter(text))
    }
}

/// The filter for config.yaml's `level`, else a valid `rust_log`, else `info`.
fn choose(level: Option<ErrorLogLevel>, rust_log: Option<&str>) -> (EnvFilter, String) {
    if let Some(level) = level {
        let name = level.tracing_level();
        return (EnvFilter::new(name), name.to_owned());
    }
    if let Some(env) = rust_log {
        if let Ok(filter) = EnvFilter::try_new(env) {
            return (filter, env.to_owned());
        }
    }
    (EnvFilter::new("info"), "info".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_level_then_rust_log_then_info() {
        let notice = ErrorLogLevel::parse("notice");
        assert_eq!(choose(notice, Some("debug")).1, "info");
        let crit = ErrorLogLevel::parse("crit");
        assert_eq!(choose(crit, None).1, "error");
        assert_eq!(
            choose(None, Some("split_proxy=debug")).1,
            "split_proxy=debug"
        );
        assert_eq!(choose(None, Some("not a [valid filter")).1, "info");
        assert_eq!(choose(None, None).1, "info");
    }
}
