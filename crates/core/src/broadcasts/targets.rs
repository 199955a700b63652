//! A stored subscription as a send target, checked against today's push-host policy.

use clarion_domain::subscription::{AuthSecret, P256dhKey, PushHostPolicy};
use clarion_domain::FailureReason;
use clarion_push::PushTarget;
use clarion_store::StoredSubscription;

/// Why a stored subscription is not sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unsendable {
    /// The row does not hold a usable endpoint or keys.
    Invalid(String),
    /// Today's `CLARION_PUSH_HOSTS` policy no longer allows the endpoint.
    NotAllowed(String),
}

impl Unsendable {
    pub(crate) fn reason(&self) -> FailureReason {
        match self {
            Unsendable::Invalid(_) => FailureReason::InvalidSubscription,
            Unsendable::NotAllowed(_) => FailureReason::EndpointNotAllowed,
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Unsendable::Invalid(why) => format!("the stored subscription is unusable: {why}"),
            Unsendable::NotAllowed(why) => format!("the endpoint is not allowed by the current push-host policy: {why}"),
        }
    }
}

/// Rebuilds a send target from a stored row, checking its endpoint against today's
/// policy (a host removed from `CLARION_PUSH_HOSTS` is not sent to any more). Keys were
/// validated on the way in, so only their lengths are checked here (ring still refuses
/// an off-curve point).
pub(crate) fn push_target(row: &StoredSubscription, policy: &PushHostPolicy) -> Result<PushTarget, Unsendable> {
    let endpoint = url::Url::parse(&row.endpoint).map_err(|e| Unsendable::Invalid(format!("the endpoint is not a URL: {e}")))?;
    policy.check(&endpoint).map_err(Unsendable::NotAllowed)?;
    let p256dh = P256dhKey::from_stored(&row.p256dh).ok_or_else(|| Unsendable::Invalid("p256dh has the wrong length".into()))?;
    let auth = AuthSecret::from_bytes(&row.auth).map_err(|e| Unsendable::Invalid(e.to_string()))?;
    Ok(PushTarget::new(endpoint, p256dh, auth))
}
