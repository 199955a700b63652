//! The test push: a fixed notification to the caller's own subscription, which it proves
//! with the subscription's `auth` secret. Its outcome goes through the same delivery
//! policy as a broadcast's pushes, so both treat every answer alike.

use super::targets::push_target;
use crate::error::CoreError;
use crate::ownership::OwnedSubscription;
use crate::sites::Site;
use crate::Clarion;
use clarion_domain::notification::{Notification, NotificationRequest};
use clarion_domain::{TestPushResult, Urgency};
use clarion_push::{Decision, PushMessage};

/// Pushes a fixed test notification to the caller's own subscription.
#[tracing::instrument(skip_all, fields(id = owned.id()))]
pub async fn send_test(core: &Clarion, site: &Site, owned: OwnedSubscription) -> Result<TestPushResult, CoreError> {
    let stored = owned.into_stored();
    let test = NotificationRequest {
        title: "Clarion test notification".into(),
        body: "Push works: this came from your Clarion server.".into(),
        url: Some("/".into()),
        tag: Some("clarion-test".into()),
        ..Default::default()
    };
    let payload = Notification::build(test, core.payload_format)?.payload(None);
    let message = PushMessage { payload: payload.into_bytes(), ttl: 60, urgency: Some(Urgency::High), topic: None };
    let target = match push_target(&stored, &core.policy) {
        Ok(target) => target,
        Err(refusal) => return Ok(TestPushResult::Failed { reason: refusal.describe() }),
    };
    let Ok(signer) = site.keyring.signer(&core.store, &stored.vapid_key_fingerprint).await else {
        let reason = "this instance cannot sign for the subscription's VAPID key (the instances' CLARION_MASTER_KEY differ)".to_string();
        return Ok(TestPushResult::Failed { reason });
    };
    let outcome = core.sender.send(&signer.keys, &target, &message).await;
    // One send, never retried: a test's answer is wanted now, so it is judged as a
    // broadcast's last allowed attempt would be.
    Ok(match core.retry.decide(&outcome, core.retry.max_attempts, signer.own_key) {
        Decision::Delivered => {
            core.store.record_delivery(stored.id, true).await?;
            TestPushResult::Delivered
        }
        Decision::Remove => {
            core.store.delete_subscription(stored.id).await?;
            TestPushResult::Gone
        }
        Decision::Refused | Decision::Fail(_) | Decision::Retry(_) => {
            core.store.record_delivery(stored.id, false).await?;
            TestPushResult::Failed { reason: outcome.describe() }
        }
    })
}
