//! Consumer objects, keyed by `username`.

use crate::config::plugins::Plugins;
use crate::ConfigError;

/// A validated consumer.
#[derive(Debug, Clone)]
pub struct Consumer {
    /// `username` (`[a-zA-Z0-9_-]+`).
    pub username: String,
    /// Description.
    pub desc: Option<String>,
    /// Plugins (e.g. `key-auth {key}`).
    pub plugins: Plugins,
}

impl Consumer {
    /// Parses a consumer JSON object.
    pub fn from_json(value: &serde_json::Value) -> Result<Consumer, ConfigError> {
        let _ = value;
        todo!("config::consumer::Consumer::from_json")
    }
}
