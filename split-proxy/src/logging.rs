//! Diagnostic logging (tracing) to stderr, with a level that SIGHUP can change.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Handle to change the log filter at run time.
pub type LevelHandle = reload::Handle<EnvFilter, Registry>;

/// Parses a level or filter (`info`, `split_proxy=debug`).
pub fn filter(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("--log-level {level}: {e}"))
}

/// Installs the subscriber: `level`, else `RUST_LOG`, else `info`.
pub fn init(level: Option<&str>) -> Result<LevelHandle, String> {
    let filter = match level {
        Some(level) => filter(level)?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (layer, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .try_init()
        .map_err(|e| format!("logging: {e}"))?;
    Ok(handle)
}
