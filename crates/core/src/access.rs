//! Who is calling, and what they may do: the admin token (the root key: every scope,
//! every site) and API keys with scopes, each bound to one site or to all of them.
//!
//! A key's secret is `clk_` followed by 256 random bits, base64url; the database keeps
//! only its SHA-256, and the secret is shown once, in the answer that creates it. Each
//! request with a key reads the key afresh (an indexed lookup), so a revocation holds on
//! every instance from the next request.
//!
//! The order of the checks is the contract: an unknown, revoked or expired key is `401`;
//! a key bound to another site gets `404` for that site's resources (it learns nothing of
//! them); then a missing scope is `403`, naming it.

use crate::{Clarion, CoreError};
use clarion_domain::access::{check_key_name, check_site_name, API_KEY_PREFIX};
use clarion_domain::{base64url, clock, ApiKeyInfo, CreatedApiKey, NewApiKey, Scope};
use sha2::{Digest, Sha256};

/// The caller of an admin operation, once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The admin token, or a console session opened with it.
    Root,
    /// An API key.
    Key(ApiKeyInfo),
    /// The `clarion` command line, run by whoever holds the data dir or the database.
    CommandLine,
}

impl Caller {
    /// The key's id for the audit log; `None` for the admin token.
    pub fn key_id(&self) -> Option<i64> {
        match self {
            Caller::Root | Caller::CommandLine => None,
            Caller::Key(key) => Some(key.id),
        }
    }

    /// The name the audit log shows.
    pub fn key_name(&self) -> &str {
        match self {
            Caller::Root => "admin token",
            Caller::CommandLine => "command line",
            Caller::Key(key) => &key.name,
        }
    }

    /// The scopes it holds.
    pub fn scopes(&self) -> Vec<Scope> {
        match self {
            Caller::Root | Caller::CommandLine => vec![Scope::Admin],
            Caller::Key(key) => key.scopes.clone(),
        }
    }

    /// May this caller act under `scope` on `site` (`None`: a resource of no one site,
    /// such as the API keys themselves, which only a key for every site may manage)?
    pub fn require(&self, scope: Scope, site: Option<&str>) -> Result<(), CoreError> {
        let Caller::Key(key) = self else { return Ok(()) };
        match (&key.site, site) {
            (Some(bound), Some(site)) if bound != site => return Err(CoreError::NotFound(format!("no site named {site:?}"))),
            (Some(bound), None) => {
                return Err(CoreError::Forbidden(format!("this key is bound to site {bound:?}; this needs a key for every site")))
            }
            _ => {}
        }
        if scope.granted_by(&key.scopes) {
            Ok(())
        } else {
            Err(CoreError::Forbidden(format!("this key lacks the scope {:?}", scope.as_str())))
        }
    }
}

/// What the audit log shows as the site of a key for every site.
pub const ALL_SITES: &str = "*";

/// The audit log's site and target for a write to key `id` named `name`.
pub fn audit_subject(id: i64, name: &str, site: Option<&str>) -> (String, String) {
    (site.unwrap_or(ALL_SITES).to_string(), format!("{id} ({name})"))
}

/// The stored form of a secret: SHA-256, base64url.
fn secret_hash(secret: &str) -> String {
    base64url::encode(&Sha256::digest(secret.as_bytes()))
}

/// Whether `presented` has the shape of an API key (so it is not checked as the admin
/// token, and the admin token is never looked up in the keys).
pub fn looks_like_api_key(presented: &str) -> bool {
    presented.starts_with(API_KEY_PREFIX)
}

/// The key whose secret is `presented`, when it is live (not revoked, not expired).
/// Records its use (at most once a minute).
pub async fn authenticate(core: &Clarion, presented: &str) -> Result<Option<ApiKeyInfo>, CoreError> {
    if !looks_like_api_key(presented) {
        return Ok(None);
    }
    let Some(key) = core.store.api_key_by_hash(&secret_hash(presented)).await? else { return Ok(None) };
    if !live(&key) {
        return Ok(None);
    }
    core.store.touch_api_key(key.id).await?;
    Ok(Some(key))
}

/// Whether a key may still be used: not expired (revoked keys are never read).
fn live(key: &ApiKeyInfo) -> bool {
    !key.expires_at.as_deref().is_some_and(|expiry| expiry <= clock::rfc3339().as_str())
}

/// The tag a console session opened with a key carries (see [`session_key`]).
pub fn session_tag_of(key: &ApiKeyInfo) -> String {
    format!("key:{}", key.id)
}

/// The live key behind a console session's tag, when the session was opened with one.
pub async fn session_key(core: &Clarion, tag: &str) -> Result<Option<ApiKeyInfo>, CoreError> {
    let Some(id) = tag.strip_prefix("key:").and_then(|id| id.parse::<i64>().ok()) else { return Ok(None) };
    Ok(core.store.api_key_by_id(id).await?.filter(live))
}

/// Creates a key; answers it with its secret, which is never shown again.
pub async fn create_api_key(core: &Clarion, request: &NewApiKey, known_site: impl Fn(&str) -> bool) -> Result<CreatedApiKey, CoreError> {
    let invalid = |field, reason: String| CoreError::Invalid { field, reason };
    check_key_name(&request.name).map_err(|reason| invalid("name", reason))?;
    if request.scopes.is_empty() {
        return Err(invalid("scopes", format!("name at least one of {}", scope_names())));
    }
    if let Some(site) = &request.site {
        check_site_name(site).map_err(|reason| invalid("site", reason))?;
        if !known_site(site) {
            return Err(invalid("site", format!("no site named {site:?}")));
        }
    }
    let expires_at = match &request.expires_at {
        None => None,
        Some(text) => {
            let normalized =
                clock::normalize_rfc3339(text).ok_or_else(|| invalid("expires_at", format!("{text:?} is not an RFC 3339 time")))?;
            if normalized <= clock::rfc3339() {
                return Err(invalid("expires_at", "is in the past".into()));
            }
            Some(normalized)
        }
    };
    let secret = format!("{API_KEY_PREFIX}{}", base64url::encode(&clarion_domain::random::bytes::<32>()));
    let mut scopes = request.scopes.clone();
    scopes.sort();
    scopes.dedup();
    let key = core
        .store
        .create_api_key(request.name.trim(), request.site.as_deref(), &scopes, &secret_hash(&secret), expires_at.as_deref())
        .await?;
    tracing::info!(id = key.id, name = %key.name, "API key created");
    Ok(CreatedApiKey { id: key.id, secret, name: key.name, site: key.site, scopes: key.scopes, expires_at: key.expires_at })
}

fn scope_names() -> String {
    Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// The keys not revoked, oldest first; never a secret.
pub async fn list_api_keys(core: &Clarion) -> Result<Vec<ApiKeyInfo>, CoreError> {
    Ok(core.store.api_keys().await?)
}

/// Revokes key `id`: from the next request on, on every instance, it is refused.
pub async fn revoke_api_key(core: &Clarion, id: i64) -> Result<ApiKeyInfo, CoreError> {
    let revoked = core.store.revoke_api_key(id).await?.ok_or_else(|| CoreError::NotFound(format!("no API key {id}")))?;
    tracing::info!(id, name = %revoked.name, "API key revoked");
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(site: Option<&str>, scopes: &[Scope]) -> Caller {
        Caller::Key(ApiKeyInfo {
            id: 1,
            name: "k".into(),
            site: site.map(str::to_string),
            scopes: scopes.to_vec(),
            created_at: String::new(),
            last_used_at: None,
            expires_at: None,
        })
    }

    #[test]
    fn another_sites_resources_are_not_found_and_a_missing_scope_is_forbidden() {
        let shop_sender = key(Some("shop"), &[Scope::Send]);
        assert!(shop_sender.require(Scope::Send, Some("shop")).is_ok());
        assert!(matches!(shop_sender.require(Scope::Send, Some("blog")), Err(CoreError::NotFound(_))));
        // Site before scope: a key learns nothing of another site, not even what it lacks there.
        assert!(matches!(shop_sender.require(Scope::Admin, Some("blog")), Err(CoreError::NotFound(_))));
        match shop_sender.require(Scope::Read, Some("shop")) {
            Err(CoreError::Forbidden(message)) => assert!(message.contains("\"read\""), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(shop_sender.require(Scope::Admin, None), Err(CoreError::Forbidden(_))));
        let everywhere = key(None, &[Scope::Admin]);
        assert!(everywhere.require(Scope::Send, Some("blog")).is_ok());
        assert!(everywhere.require(Scope::Admin, None).is_ok());
        assert!(Caller::Root.require(Scope::Admin, Some("any")).is_ok());
    }

    #[test]
    fn only_prefixed_secrets_are_looked_up() {
        assert!(looks_like_api_key("clk_abc"));
        assert!(!looks_like_api_key("test-admin-token"));
        assert_ne!(secret_hash("clk_a"), secret_hash("clk_b"));
    }
}
