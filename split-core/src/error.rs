//! Validation errors that name the offending field.

use std::fmt;

/// A configuration error with the path of the offending field, e.g.
/// `plugins.traffic-split.rules[0].weighted_upstreams[1].weight: must be >= 0`.
///
/// `Display` prints `path: message`, or only `message` when the path is empty
/// (an error about the whole object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted field path with `[i]` indexes; empty for the document root.
    pub path: String,
    /// Human-readable reason.
    pub message: String,
}

impl ConfigError {
    /// An error at `path` with `message`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Prefixes the path with `parent` (used when a nested validator reports upward).
    #[must_use]
    pub fn within(mut self, parent: &str) -> Self {
        if parent.is_empty() {
            return self;
        }
        self.path = if self.path.is_empty() {
            parent.to_owned()
        } else if self.path.starts_with('[') {
            format!("{parent}{}", self.path)
        } else {
            format!("{parent}.{}", self.path)
        };
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Builds child paths: `join("rules[0]", "weight")` → `rules[0].weight`.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// Builds an indexed path: `index("rules", 2)` → `rules[2]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_includes_path() {
        let e = ConfigError::new("weight", "must be >= 0").within("rules[0]");
        assert_eq!(e.to_string(), "rules[0].weight: must be >= 0");
        let e = ConfigError::new("", "bad").within("upstream");
        assert_eq!(e.to_string(), "upstream: bad");
        let e = ConfigError::new("[1].weight", "x").within("arms");
        assert_eq!(e.path, "arms[1].weight");
    }
}
