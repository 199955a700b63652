//! Core operations on the audience: topics (define, delete, list, choose), identity tokens
//! that tie a subscription to a signed-in user, a user's subscriptions and "forget me",
//! and the removal of subscriptions nobody has seen for `CLARION_IDLE_EXPIRY_DAYS`.
//!
//! A browser never names its user: the site's backend signs an identity token (a JWT,
//! HS256, `{"sub", "exp"}`, optionally `aud`, `nbf`, `iat`) with `CLARION_IDENTITY_SECRET`,
//! and Clarion stores the `sub` only after checking the signature, the expiry, `nbf`,
//! `aud` and a lifetime of at most 24 hours.

use crate::error::CoreError;
use crate::ownership::OwnedSubscription;
use crate::Clarion;
use clarion_domain::audience::{self, MAX_TOPICS};
use clarion_domain::{SubscriptionSummary, Topic, TopicDefinition};
use clarion_store::TopicSaved;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Fails with a 422 naming the first topic of `topics` that is not defined.
pub async fn check_defined(core: &Clarion, field: &'static str, topics: &[String]) -> Result<(), CoreError> {
    if topics.is_empty() {
        return Ok(());
    }
    let defined = core.store.topics().await?;
    if let Some(unknown) = topics.iter().find(|t| !defined.iter().any(|d| &d.name == *t)) {
        return Err(CoreError::Invalid { field, reason: format!("unknown topic {unknown:?}; GET /api/v1/topics lists the defined ones") });
    }
    Ok(())
}

/// Defines a topic or changes a defined one.
pub async fn define_topic(core: &Clarion, name: &str, definition: &TopicDefinition) -> Result<TopicSaved, CoreError> {
    audience::check_topic_name("name", name).map_err(invalid)?;
    definition.check().map_err(invalid)?;
    let defined = core.store.topics().await?;
    if defined.len() >= MAX_TOPICS && !defined.iter().any(|t| t.name == name) {
        return Err(CoreError::Invalid { field: "name", reason: format!("at most {MAX_TOPICS} topics can be defined") });
    }
    let saved = core.store.save_topic(name, definition).await?;
    tracing::info!(topic = name, ?saved, "topic saved");
    Ok(saved)
}

/// Deletes a topic, and every subscription's choice of it.
pub async fn delete_topic(core: &Clarion, name: &str) -> Result<(), CoreError> {
    if core.store.delete_topic(name).await? {
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    } else {
        Err(CoreError::NotFound(format!("no topic named {name:?}")))
    }
}

pub async fn list_topics(core: &Clarion) -> Result<Vec<Topic>, CoreError> {
    Ok(core.store.topics().await?)
}

/// Checks a subscriber's choice of topics: well-formed names, all defined. Sorted, no repeats.
pub async fn checked_topics(core: &Clarion, topics: &[String]) -> Result<Vec<String>, CoreError> {
    let set = audience::topic_set("topics", topics).map_err(invalid)?;
    check_defined(core, "topics", &set).await?;
    Ok(set)
}

/// Replaces the topics of a subscription whose owner proved it; marks it seen.
pub async fn set_topics(core: &Clarion, owned: &OwnedSubscription, topics: &[String]) -> Result<Vec<String>, CoreError> {
    let set = checked_topics(core, topics).await?;
    Ok(core.store.replace_subscription_topics(owned.id(), &set).await?)
}

/// The subscriptions of one user, each with its topics.
pub async fn user_subscriptions(core: &Clarion, user_id: &str) -> Result<Vec<SubscriptionSummary>, CoreError> {
    audience::check_user_id("user_id", user_id).map_err(invalid)?;
    Ok(core.store.user_subscriptions(user_id).await?)
}

/// Deletes every subscription of a user: the "forget me" of a privacy request.
pub async fn forget_user(core: &Clarion, user_id: &str) -> Result<u64, CoreError> {
    audience::check_user_id("user_id", user_id).map_err(invalid)?;
    let removed = core.store.delete_user(user_id).await?;
    tracing::info!(removed, "a user's subscriptions were deleted");
    Ok(removed)
}

fn invalid(e: audience::AudienceError) -> CoreError {
    CoreError::Invalid { field: e.field, reason: e.reason }
}

/// The longest lifetime an identity token may have.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Clock difference tolerated between the site that signs and Clarion.
const CLOCK_LEEWAY_SECONDS: u64 = 5;

/// The shortest identity secret accepted: HS256 is as strong as its key, and a short one
/// falls to a dictionary.
pub const MIN_IDENTITY_SECRET_BYTES: usize = 32;
/// The audience an identity token may name when none is configured
/// (`CLARION_IDENTITY_AUDIENCE`).
pub const DEFAULT_IDENTITY_AUDIENCE: &str = "clarion";

/// `CLARION_IDENTITY_SECRET` and `CLARION_IDENTITY_AUDIENCE`: checks identity tokens.
/// The secret is never printed.
#[derive(Clone)]
pub struct IdentitySecret {
    key: jsonwebtoken::DecodingKey,
    /// The `aud` values accepted; a token without `aud` is accepted unless `audience_required`.
    audiences: Vec<String>,
    audience_required: bool,
}

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySecret").field("key", &"<redacted>").field("audiences", &self.audiences).finish()
    }
}

#[derive(serde::Deserialize)]
struct IdentityClaims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
}

/// Why an identity token was refused; each becomes a 422 on `user_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRefused {
    /// Well signed and well formed, but past its `exp`: the page kept an old token.
    Expired,
    Invalid(String),
}

impl From<TokenRefused> for CoreError {
    fn from(refused: TokenRefused) -> Self {
        let reason = match refused {
            TokenRefused::Expired => "the identity token has expired".into(),
            TokenRefused::Invalid(reason) => reason,
        };
        CoreError::Invalid { field: "user_token", reason }
    }
}

impl IdentitySecret {
    /// Refuses a secret shorter than [`MIN_IDENTITY_SECRET_BYTES`]. `audiences` are the
    /// accepted `aud` values; when empty, [`DEFAULT_IDENTITY_AUDIENCE`] is, and a token
    /// may also leave `aud` out. When configured, every token must name one of them.
    pub fn new(secret: &str, audiences: &[String]) -> Result<Self, String> {
        if secret.len() < MIN_IDENTITY_SECRET_BYTES {
            return Err(format!(
                "CLARION_IDENTITY_SECRET is {} bytes; it must be at least {MIN_IDENTITY_SECRET_BYTES} (e.g. `openssl rand -base64 32`)",
                secret.len()
            ));
        }
        let audience_required = !audiences.is_empty();
        let audiences = if audiences.is_empty() { vec![DEFAULT_IDENTITY_AUDIENCE.to_string()] } else { audiences.to_vec() };
        Ok(Self { key: jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()), audiences, audience_required })
    }

    /// The user id an identity token vouches for, or why it is refused: checks the
    /// signature (HS256 only), `exp` and `nbf`, `aud`, a lifetime of at most 24 hours,
    /// and refuses a `crit` header (no extension is understood here).
    pub fn verify(&self, token: &str) -> Result<String, TokenRefused> {
        let refuse = |reason: String| TokenRefused::Invalid(reason);
        if has_crit_header(token) {
            return Err(refuse("the identity token has a crit header; no JWT extension is understood here".into()));
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        let required: &[&str] = if self.audience_required { &["exp", "sub", "aud"] } else { &["exp", "sub"] };
        validation.set_required_spec_claims(required);
        validation.set_audience(&self.audiences);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_LEEWAY_SECONDS;
        let claims = jsonwebtoken::decode::<IdentityClaims>(token, &self.key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenRefused::Expired,
                    ErrorKind::ImmatureSignature => refuse("the identity token is not valid yet (nbf)".into()),
                    ErrorKind::InvalidAudience => {
                        refuse(format!("the identity token's aud is not this Clarion's (accepted: {})", self.audiences.join(", ")))
                    }
                    ErrorKind::InvalidSignature => refuse("the identity token's signature does not match CLARION_IDENTITY_SECRET".into()),
                    ErrorKind::InvalidAlgorithm => refuse("the identity token must be signed with HS256".into()),
                    ErrorKind::MissingRequiredClaim(claim) => refuse(format!("the identity token has no {claim:?} claim")),
                    _ => refuse(format!("the identity token is not a valid JWT: {e}")),
                }
            })?
            .claims;
        let now = jsonwebtoken::get_current_timestamp();
        let longest = MAX_TOKEN_LIFETIME.as_secs();
        let lifetime_from_iat = claims.iat.map(|iat| claims.exp.saturating_sub(iat));
        if claims.exp.saturating_sub(now) > longest + CLOCK_LEEWAY_SECONDS || lifetime_from_iat.is_some_and(|l| l > longest) {
            return Err(refuse("the identity token lives longer than 24 hours; mint short-lived tokens".into()));
        }
        audience::check_user_id("user_token", &claims.sub)
            .map_err(|_| refuse("the identity token's sub must be 1 to 128 characters".into()))?;
        Ok(claims.sub)
    }
}

/// Whether a JWT's header has a `crit` member (RFC 7515 §4.1.11: a receiver that does not
/// understand the listed extensions must refuse the token). An unreadable header is left
/// to the JWT check, which refuses it.
fn has_crit_header(token: &str) -> bool {
    let Some(header) = token.split('.').next() else { return false };
    let Ok(bytes) = clarion_domain::base64url::decode(header) else { return false };
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes).is_ok_and(|h| h.contains_key("crit"))
}

/// Subscriptions removed per transaction by the idle sweep, so a large sweep never holds
/// the write lock for long.
const IDLE_BATCH: i64 = 1_000;

/// Removes the subscriptions not seen for `days` days; answers how many went.
pub async fn remove_idle(core: &Clarion, days: u32) -> Result<u64, CoreError> {
    let cutoff = clarion_domain::clock::now() - chrono::Duration::days(i64::from(days));
    let cutoff = cutoff.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut removed = 0;
    loop {
        let batch = core.store.remove_idle(&cutoff, IDLE_BATCH).await?;
        removed += batch;
        core.metrics.idle_removed(batch);
        if batch < IDLE_BATCH as u64 {
            break;
        }
    }
    if removed > 0 {
        tracing::info!(removed, days, "removed subscriptions nobody has seen for the idle expiry");
    }
    Ok(removed)
}

/// Sweeps idle subscriptions at start and then every `every`, until `stop` fires.
pub async fn run_idle_expiry(core: Clarion, days: u32, every: Duration, stop: CancellationToken) {
    loop {
        if let Err(e) = remove_idle(&core, days).await {
            tracing::error!(error = ?e, "could not remove idle subscriptions; trying again later");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
