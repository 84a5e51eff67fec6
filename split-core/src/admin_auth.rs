//! Admin API authentication: token from `api_key` query, `X-API-KEY` header or
//! `x_api_key` cookie (that order); constant-time compare; roles admin/viewer; CIDR
//! allow-list (IPv4-mapped IPv6 normalised first); key policy.
//!
//! The order of checks follows APISIX (reference §4): the allow-list is nginx's
//! `allow …; deny all`, so a miss is a 403 before any token is looked at; then the token
//! is required unless `admin_key_required: false` or no key is configured.

use std::borrow::Cow;
use std::net::IpAddr;

use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use crate::error::index;
use crate::request::args::{decode_component, first_arg};
use crate::request::normalize_ip;
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

impl Role {
    /// Parses `admin` | `viewer` (the config.yaml spelling).
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// The config.yaml spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
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

/// Validates keys against the key policy: no empty key, no placeholder, admin-role keys
/// at least [`MIN_ADMIN_KEY_LEN`] characters, no key listed twice.
///
/// Paths are relative to the key list (`[0].key`); the caller adds its prefix
/// (`deployment.admin.admin_key`). Messages name the key's `name`, never the secret.
pub fn validate_keys(keys: &[AdminKey]) -> Result<(), ConfigError> {
    for (i, k) in keys.iter().enumerate() {
        let path = format!("{}.key", index("", i));
        if k.key.is_empty() {
            return Err(ConfigError::new(
                path,
                format!("admin key \"{}\" is empty; set a key of at least {MIN_ADMIN_KEY_LEN} characters", k.name),
            ));
        }
        if k.key == PLACEHOLDER_KEY {
            return Err(ConfigError::new(
                path,
                format!(
                    "admin key \"{}\" is the guide's placeholder {PLACEHOLDER_KEY}; \
                     set a real random key of at least {MIN_ADMIN_KEY_LEN} characters",
                    k.name
                ),
            ));
        }
        let len = k.key.chars().count();
        if k.role == Role::Admin && len < MIN_ADMIN_KEY_LEN {
            return Err(ConfigError::new(
                path,
                format!(
                    "admin key \"{}\" is {len} characters long; admin-role keys need at least \
                     {MIN_ADMIN_KEY_LEN} characters",
                    k.name
                ),
            ));
        }
        if let Some(j) = keys[..i].iter().position(|other| other.key == k.key) {
            return Err(ConfigError::new(
                path,
                format!(
                    "admin key \"{}\" repeats the key of [{j}] (\"{}\"); every key must be unique",
                    k.name, keys[j].name
                ),
            ));
        }
    }
    Ok(())
}

/// Extracts the token: query `api_key` (percent-decoded, `+` is a space), then header
/// `X-API-KEY`, then cookie `x_api_key`. The first source that has the name wins, even
/// with an empty value (as in APISIX, where an empty string is a present token).
pub fn extract_token<'a>(
    query: Option<&'a str>,
    headers: &'a http::HeaderMap,
) -> Option<Cow<'a, str>> {
    if let Some(v) = query.and_then(|q| query_param(q, "api_key")) {
        return Some(v);
    }
    if let Some(v) = headers.get("x-api-key") {
        return Some(String::from_utf8_lossy(v.as_bytes()));
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .find_map(|v| cookie_value(v.as_bytes(), "x_api_key"))
}

/// The first value of query parameter `name`, percent-decoded (a bare `name` without `=`
/// is an empty, present token).
fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    first_arg(query, name).map(|arg| decode_component(arg.value.unwrap_or("")))
}

/// The value of cookie `name` (case-sensitive) in one `Cookie` header value.
fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<Cow<'a, str>> {
    header.split(|b| *b == b';').find_map(|part| {
        let part = part.trim_ascii();
        let eq = part.iter().position(|b| *b == b'=')?;
        let (k, v) = (&part[..eq], &part[eq + 1..]);
        (k.trim_ascii() == name.as_bytes()).then(|| String::from_utf8_lossy(v.trim_ascii()))
    })
}

/// Constant-time equality of two byte strings of possibly different lengths: both are
/// compared over the longer length (zero padded), and the lengths are compared too, so
/// the time depends only on the longer length, never on where the first difference is.
fn ct_eq_padded(a: &[u8], b: &[u8]) -> Choice {
    let n = a.len().max(b.len());
    let mut diff = 0u8;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= x ^ y;
    }
    diff.ct_eq(&0) & (a.len() as u64).ct_eq(&(b.len() as u64))
}

impl AdminAuth {
    /// Decides an admin request from `remote` with `token` and `method`.
    ///
    /// Order: allow-list (403), auth off (`required == false` or no keys), missing
    /// token, key compare (every key is compared, no early exit), viewer role (GET only).
    pub fn check(
        &self,
        remote: IpAddr,
        token: Option<&str>,
        method: &http::Method,
    ) -> AuthDecision {
        if !self.allows_addr(remote) {
            return AuthDecision::Forbidden;
        }
        if !self.required || self.keys.is_empty() {
            return AuthDecision::Allowed(None);
        }
        let Some(token) = token else {
            return AuthDecision::Unauthorized("missing apikey");
        };
        let mut found = Choice::from(0);
        // 0 = admin, 1 = viewer; selected without branching on the secret.
        let mut role_code = 0u8;
        for k in &self.keys {
            let eq = ct_eq_padded(token.as_bytes(), k.key.as_bytes());
            let code = match k.role {
                Role::Admin => 0u8,
                Role::Viewer => 1u8,
            };
            role_code = u8::conditional_select(&role_code, &code, eq);
            found |= eq;
        }
        if !bool::from(found) {
            return AuthDecision::Unauthorized("wrong apikey");
        }
        let role = if role_code == 1 {
            Role::Viewer
        } else {
            Role::Admin
        };
        if role == Role::Viewer && method != http::Method::GET {
            return AuthDecision::Unauthorized("invalid method for role viewer");
        }
        AuthDecision::Allowed(Some(role))
    }

    /// True if `remote` passes the allow-list (empty list = everyone). IPv4-mapped IPv6
    /// addresses are checked as IPv4; the raw address is also tried so an IPv6 entry
    /// written in mapped form still matches.
    pub fn allows_addr(&self, remote: IpAddr) -> bool {
        if self.allow.is_empty() {
            return true;
        }
        let normalized = normalize_ip(remote);
        self.allow
            .iter()
            .any(|net| net.contains(&normalized) || net.contains(&remote))
    }

    /// Allow-list entries that admit every address of their family (`0.0.0.0/0`,
    /// `::/0`): the caller warns loudly about each.
    pub fn allow_all_entries(&self) -> Vec<ipnet::IpNet> {
        self.allow
            .iter()
            .copied()
            .filter(|n| n.prefix_len() == 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_token_is_decoded_and_bare_name_is_empty() {
        assert_eq!(
            query_param("api_key=a%20b+c", "api_key").as_deref(),
            Some("a b c")
        );
        assert_eq!(
            query_param("x=1&api_key=%41%", "api_key").as_deref(),
            Some("A%")
        );
        assert_eq!(query_param("api_key", "api_key").as_deref(), Some(""));
        assert_eq!(query_param("api_keys=1", "api_key"), None);
    }

    #[test]
    fn ct_eq_padded_needs_equal_length() {
        assert!(bool::from(ct_eq_padded(b"abc", b"abc")));
        assert!(!bool::from(ct_eq_padded(b"abc", b"abc\0")));
        assert!(!bool::from(ct_eq_padded(b"", b"a")));
        assert!(bool::from(ct_eq_padded(b"", b"")));
        assert!(!bool::from(ct_eq_padded(b"abd", b"abc")));
    }
}
