//! The standalone declarative file (`apisix.yaml` ending in `#END`, or JSON): loaded
//! before any port is bound, then polled every second. A bad new version is logged and
//! refused; the previous snapshot keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use split_core::config::standalone::{parse, Format};
use split_core::snapshot::Snapshot;

use crate::live::Live;

/// Why a standalone file was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// A YAML file without the `#END` marker (probably still being written).
    Incomplete,
    /// Unreadable or invalid; the reason names the field path.
    Invalid(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Incomplete => f.write_str("missing #END marker at the end of the file"),
            LoadError::Invalid(reason) => f.write_str(reason),
        }
    }
}

/// The document format of `path`: JSON for `.json`, YAML otherwise.
pub fn format_of(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("json") => Format::Json,
        _ => Format::Yaml,
    }
}

/// Parses and compiles a standalone document.
pub fn compile(text: &str, format: Format) -> Result<Snapshot, LoadError> {
    if format == Format::Yaml && !ends_with_end_marker(text) {
        return Err(LoadError::Incomplete);
    }
    let set = parse(text, format).map_err(|e| LoadError::Invalid(e.to_string()))?;
    Snapshot::compile(set).map_err(|e| LoadError::Invalid(e.to_string()))
}

/// True when the last non-empty line is `#END`.
fn ends_with_end_marker(text: &str) -> bool {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .is_some_and(|l| l.trim() == "#END")
}

/// Reads and compiles `path`.
pub fn load(path: &Path) -> Result<(Snapshot, String), LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Invalid(e.to_string()))?;
    let snapshot = compile(&text, format_of(path))?;
    Ok((snapshot, text))
}

/// Polls `path` every `every` and publishes each new valid version into `live`.
/// `applied` is the text already published (so an unchanged file is not recompiled).
pub async fn watch(path: PathBuf, live: Live, applied: String, every: Duration) {
    let mut last_text = applied;
    let mut last_error: Option<String> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read_to_string(path)).await
        };
        let text = match read {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => {
                report(&mut last_error, &path, &e.to_string());
                continue;
            }
            Err(_) => continue,
        };
        if text == last_text {
            continue;
        }
        let format = format_of(&path);
        let compiled = {
            let text = text.clone();
            tokio::task::spawn_blocking(move || compile(&text, format)).await
        };
        match compiled {
            Ok(Ok(snapshot)) => {
                live.store(Arc::new(snapshot));
                tracing::info!(file = %path.display(), "standalone config applied");
                last_text = text;
                last_error = None;
            }
            Ok(Err(LoadError::Incomplete)) => {
                tracing::debug!(file = %path.display(), "waiting for #END");
            }
            Ok(Err(e)) => report(&mut last_error, &path, &e.to_string()),
            Err(_) => {}
        }
    }
}

/// Logs a refused version once (not every second).
fn report(last: &mut Option<String>, path: &Path, reason: &str) {
    if last.as_deref() != Some(reason) {
        tracing::error!(
            file = %path.display(),
            reason,
            "standalone config refused; the previous config keeps serving"
        );
        *last = Some(reason.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_marker_is_required_for_yaml_only() {
        assert!(ends_with_end_marker("routes: []\n#END\n"));
        assert!(ends_with_end_marker("routes: []\n#END"));
        assert!(ends_with_end_marker("routes: []\n  #END  \n\n"));
        assert!(!ends_with_end_marker("routes: []\n"));
        assert!(!ends_with_end_marker("#END\nroutes: []\n"));
        assert_eq!(
            compile("routes: []\n", Format::Yaml).err(),
            Some(LoadError::Incomplete)
        );
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(format_of(Path::new("a/apisix.json")), Format::Json);
        assert_eq!(format_of(Path::new("a/apisix.yaml")), Format::Yaml);
        assert_eq!(format_of(Path::new("apisix")), Format::Yaml);
    }
}
