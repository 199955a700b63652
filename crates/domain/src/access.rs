//! Who may do what, and where: the scopes an API key carries, the wire shapes of API
//! keys and of the audit log, and the rules on their names and on site names. The server checks them; the console
//! reads them to show only what a key may do.

use serde::{Deserialize, Serialize};

/// The site every deployment has; the `CLARION_*` settings configure it.
pub const DEFAULT_SITE: &str = "default";

/// The longest site name.
pub const MAX_SITE_NAME: usize = 40;

/// Whether `name` is a site's name: 1 to 40 of `a-z`, `0-9` and `-` (so it sits in a
/// path, a label and a file name as it is).
pub fn is_site_name(name: &str) -> bool {
    (1..=MAX_SITE_NAME).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// What an API key may do. `Admin` includes every other scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Listings, a send's status and events, stats, metrics.
    Read,
    /// Create and cancel sends.
    Send,
    /// Topics, users, forget-me, deleting a subscription.
    Audience,
    /// Sites, keys, the audit log, everything.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Send, Scope::Audience, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Send => "send",
            Scope::Audience => "audience",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == text)
    }

    /// Whether a holder of `scopes` may act under `self`.
    pub fn granted_by(self, scopes: &[Scope]) -> bool {
        scopes.iter().any(|&held| held == self || held == Scope::Admin)
    }
}

/// The prefix of every API key's secret, so a leaked one is recognisable (secret scanners,
/// logs) and never mistaken for the admin token.
pub const API_KEY_PREFIX: &str = "clk_";

/// `POST /api/v1/api-keys`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// The one site it applies to; `None`: every site.
    #[serde(default)]
    pub site: Option<String>,
    pub scopes: Vec<Scope>,
    /// RFC 3339; `None`: it never expires.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub name: String,
    pub site: Option<String>,
    pub scopes: Vec<Scope>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

/// The answer to a create: the key, and its secret, shown this once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedApiKey {
    pub id: i64,
    pub secret: String,
    pub name: String,
    pub site: Option<String>,
    pub scopes: Vec<Scope>,
    pub expires_at: Option<String>,
}

/// A name for a key: 1–64 printable characters, no control characters.
pub fn check_key_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 64 {
        return Err("a key's name is 1 to 64 characters".into());
    }
    if trimmed.chars().any(char::is_control) {
        return Err("a key's name has no control characters".into());
    }
    Ok(())
}

/// A site's name: 1–40 of `[a-z0-9-]`.
pub fn check_site_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.len() <= 40 && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a site name: 1 to 40 of a-z, 0-9 and -"))
    }
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// `None`: the admin token (or a console session opened with it).
    pub key_id: Option<i64>,
    pub key_name: String,
    pub site: String,
    /// `notification.create`, `api_key.revoke`, …
    pub action: String,
    pub target: String,
    /// The subscriptions a send was addressed to, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<i64>,
    pub client: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_grants_every_scope_and_the_others_only_themselves() {
        assert!(Scope::Send.granted_by(&[Scope::Admin]));
        assert!(Scope::Send.granted_by(&[Scope::Read, Scope::Send]));
        assert!(!Scope::Send.granted_by(&[Scope::Read, Scope::Audience]));
        assert!(!Scope::Admin.granted_by(&[Scope::Read, Scope::Send, Scope::Audience]));
        assert_eq!(serde_json::to_string(&Scope::Audience).unwrap(), "\"audience\"");
        assert_eq!(Scope::parse("send"), Some(Scope::Send));
        assert_eq!(Scope::parse("Send"), None);
    }

    #[test]
    fn site_names() {
        assert!(check_site_name("default").is_ok());
        assert!(check_site_name("shop-2").is_ok());
        assert!(check_site_name("Shop").is_err());
        assert!(check_site_name("").is_err());
        assert!(check_site_name(&"a".repeat(41)).is_err());
    }
}
