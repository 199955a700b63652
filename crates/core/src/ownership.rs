//! A subscription its owner proved: the caller presents the endpoint and the subscription's
//! `auth` secret, which only the browser and this server know. The test push, a change of
//! topics and a click report's "seen" take an [`OwnedSubscription`], so none of them can
//! run on a stranger's word.

use crate::error::CoreError;
use crate::sites::Site;
use crate::Clarion;
use clarion_domain::subscription::AuthSecret;
use clarion_store::StoredSubscription;
use subtle::ConstantTimeEq;

/// A stored subscription whose owner proved it (see [`prove_ownership`]).
#[derive(Debug)]
pub struct OwnedSubscription(StoredSubscription);

impl OwnedSubscription {
    pub fn id(&self) -> i64 {
        self.0.id
    }

    /// The stored row, for an operation on the subscription its owner proved.
    pub fn into_stored(self) -> StoredSubscription {
        self.0
    }
}

/// Checks that the caller owns a subscription of `site`: it presents the endpoint and the
/// subscription's `auth` secret (which only the browser and this server know), compared
/// in constant time. Another site's subscription is not found.
pub async fn prove_ownership(core: &Clarion, site: &Site, endpoint: &str, auth: &str) -> Result<OwnedSubscription, CoreError> {
    let presented = AuthSecret::parse(auth)?;
    let Some(stored) = core.store.find_subscription(&site.name, endpoint).await? else {
        return Err(CoreError::NotFound("this subscription is not stored; enable notifications again".into()));
    };
    if !bool::from(stored.auth.as_slice().ct_eq(presented.as_bytes())) {
        return Err(CoreError::Forbidden("the auth secret does not match this subscription".into()));
    }
    Ok(OwnedSubscription(stored))
}
