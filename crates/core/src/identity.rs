//! Identity tokens: what ties a subscription to a signed-in user. A browser never names
//! its user: the site's backend signs an identity token (a JWT, HS256, `{"sub", "exp"}`,
//! optionally `aud`, `nbf`, `iat`) with its site's identity secret
//! (`CLARION_IDENTITY_SECRET` for `default`), and Clarion stores the `sub` only after
//! checking the signature, the expiry, `nbf`, `aud` and a lifetime of at most 24 hours.

use crate::error::CoreError;
use clarion_domain::audience;
use std::time::Duration;

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
