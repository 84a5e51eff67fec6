//! Admin API authentication: token from `api_key` query, `X-API-KEY` header or
//! `x_api_key` cookie (that order); constant-time compare; roles admin/viewer; CIDR
//! allow-list (IPv4-mapped IPv6 normalised first); key policy.

use std::net::IpAddr;

use crate::ConfigError;

/// The guide's placeholder key, refused at startup.
pub const PLACEHOLDER_KEY: &str = "YOUR_ADMIN_KEY_HERE";
/// Minimum length of an admin-role key.
pub const MIN_ADMIN_KEY_LEN: usize = 32;

/// Admin key role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Full access.
    Admin,
    /// GET only; writes get 401 `invalid method for role viewer`.
    Viewer,
}

/// One configured key. `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminKey {
    /// Key name.
    pub name: String,
    /// Secret.
    pub key: String,
    /// Role.
    pub role: Role,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey")
            .field("name", &self.name)
            .field("key", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Outcome of an admin request check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Allowed with this role (`None` when auth is off).
    Allowed(Option<Role>),
    /// Client address not in `allow_admin` → 403 (checked before the token).
    Forbidden,
    /// 401 `failed to check token` with this description
    /// (`missing apikey` | `wrong apikey` | `invalid method for role viewer`).
    Unauthorized(&'static str),
}

/// Validated admin auth policy.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    /// Keys.
    pub keys: Vec<AdminKey>,
    /// `admin_key_required`.
    pub required: bool,
    /// Allow-list; empty = allow all.
    pub allow: Vec<ipnet::IpNet>,
}

/// Validates keys against the key policy (placeholder, short admin keys, duplicates).
pub fn validate_keys(keys: &[AdminKey]) -> Result<(), ConfigError> {
    let _ = keys;
    todo!("admin_auth::validate_keys")
}

/// Extracts the token: query `api_key`, then header `X-API-KEY`, then cookie `x_api_key`.
pub fn extract_token<'a>(
    query: Option<&'a str>,
    headers: &'a http::HeaderMap,
) -> Option<std::borrow::Cow<'a, str>> {
    let _ = (query, headers);
    todo!("admin_auth::extract_token")
}

impl AdminAuth {
    /// Decides an admin request from `remote` with `token` and `method`.
    pub fn check(
        &self,
        remote: IpAddr,
        token: Option<&str>,
        method: &http::Method,
    ) -> AuthDecision {
        let _ = (remote, token, method);
        todo!("admin_auth::AdminAuth::check")
    }
}
