//! Consumer objects, keyed by `username`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::config::fields;
use crate::config::plugins::{PluginScope, Plugins};
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

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "Consumer")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConsumer {
    username: String,
    id: Option<Value>,
    create_time: Option<Value>,
    update_time: Option<Value>,
    desc: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::ConsumerPlugins>")
    )]
    plugins: Option<Value>,
    #[cfg_attr(
        feature = "schema",
        schemars(with = "Option<crate::config::schema::Unsupported>")
    )]
    group_id: Option<Value>,
}

impl Consumer {
    /// Parses a consumer JSON object.
    pub fn from_json(value: &serde_json::Value) -> Result<Consumer, ConfigError> {
        let raw: RawConsumer = fields::from_value(value)?;
        // Stored objects may carry these; they are bookkeeping, not configuration.
        let _ = (&raw.id, &raw.create_time, &raw.update_time);
        fields::reject_present(
            &raw.group_id,
            "group_id",
            "consumer groups are not supported yet",
        )?;
        let valid = !raw.username.is_empty()
            && raw.username.len() <= 100
            && raw
                .username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(ConfigError::new(
                "username",
                "must be 1 to 100 characters of [a-zA-Z0-9_-]",
            ));
        }
        fields::check_desc(&raw.desc, "desc")?;
        fields::check_labels(&raw.labels, "labels")?;
        let plugins = match &raw.plugins {
            None => Plugins::default(),
            Some(p) => {
                Plugins::from_json_in(p, PluginScope::Consumer).map_err(|e| e.within("plugins"))?
            }
        };
        Ok(Consumer {
            username: raw.username,
            desc: raw.desc,
            plugins,
        })
    }
}
