//! The route-level `key-auth` plugin: where the API key is read and how a miss is answered.
//!
//! APISIX schema: `header` (`apikey`), `query` (`apikey`), `hide_credentials` (false),
//! `anonymous_consumer` (a consumer username), `realm` (`key`). The consumer side (the
//! key itself) is [`super::KeyAuth`].

use serde::Deserialize;

use crate::config::fields;
use crate::ConfigError;

/// A route's validated `key-auth` configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuthRoute {
    /// Header carrying the key (checked first), lower case.
    pub header: http::HeaderName,
    /// Query argument carrying the key (checked when the header is absent).
    pub query: String,
    /// Remove the key from the request before it is forwarded.
    pub hide_credentials: bool,
    /// Consumer to use when the request has no key or an unknown one.
    pub anonymous_consumer: Option<String>,
    /// Realm of the `WWW-Authenticate: apikey realm="…"` challenge.
    pub realm: String,
}

impl Default for KeyAuthRoute {
    fn default() -> Self {
        KeyAuthRoute {
            header: http::HeaderName::from_static("apikey"),
            query: "apikey".to_owned(),
            hide_credentials: false,
            anonymous_consumer: None,
            realm: "key".to_owned(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[cfg_attr(
    feature = "schema",
    derive(schemars::JsonSchema),
    schemars(rename = "KeyAuth")
)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawKeyAuthRoute {
    header: Option<String>,
    query: Option<String>,
    hide_credentials: Option<bool>,
    anonymous_consumer: Option<String>,
    realm: Option<String>,
}

impl KeyAuthRoute {
    /// Parses a route's `key-auth` object; paths are relative to it.
    pub fn from_json(value: &serde_json::Value) -> Result<KeyAuthRoute, ConfigError> {
        let raw: RawKeyAuthRoute = fields::from_value(value)?;
        let mut conf = KeyAuthRoute::default();
        if let Some(header) = raw.header {
            conf.header = http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| ConfigError::new("header", "must be a valid HTTP header name"))?;
        }
        if let Some(query) = raw.query {
            if query.is_empty() {
                return Err(ConfigError::new("query", "must not be empty"));
            }
            conf.query = query;
        }
        // The proxy removes the header or the query argument that carried the key.
        conf.hide_credentials = raw.hide_credentials.unwrap_or(false);
        if let Some(name) = raw.anonymous_consumer {
            let valid = !name.is_empty()
                && name.len() <= 100
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return Err(ConfigError::new(
                    "anonymous_consumer",
                    "must be a consumer username (1 to 100 characters of [a-zA-Z0-9_-])",
                ));
            }
            conf.anonymous_consumer = Some(name);
        }
        if let Some(realm) = raw.realm {
            // The realm is sent inside a quoted header parameter.
            let valid = !realm.is_empty()
                && realm
                    .bytes()
                    .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
            if !valid {
                return Err(ConfigError::new(
                    "realm",
                    "must be 1 or more printable ASCII characters without `\"` or `\\`",
                ));
            }
            conf.realm = realm;
        }
        Ok(conf)
    }

    /// The `WWW-Authenticate` value of a 401: `apikey realm="<realm>"`.
    pub fn challenge(&self) -> String {
        format!("apikey realm=\"{}\"", self.realm)
    }
}
