//! The audit log: every write made with the admin token or an API key, appended with
//! who made it (key id and name), on which site, what it did and to what, the audience
//! of a send, and the client's address. Never a secret, a token or a subscription's
//! keys: the callers pass only names and ids. Clarion offers no way to edit or delete an
//! entry; entries older than `CLARION_AUDIT_RETENTION_DAYS` are pruned.

use crate::access::Caller;
use crate::{Clarion, CoreError};
use clarion_domain::{clock, AuditEntry};
use clarion_store::AuditRecord;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an entry records: the action's name and its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    NotificationCreate,
    NotificationCancel,
    TopicPut,
    TopicDelete,
    UserForget,
    SubscriptionDelete,
    SubscriptionsImport,
    SiteCreate,
    SiteUpdate,
    SiteDelete,
    ApiKeyCreate,
    ApiKeyRevoke,
    VapidKeyRotate,
    VapidKeyImport,
    VapidKeyRetire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NotificationCreate => "notification.create",
            Action::NotificationCancel => "notification.cancel",
            Action::TopicPut => "topic.put",
            Action::TopicDelete => "topic.delete",
            Action::UserForget => "user.forget",
            Action::SubscriptionDelete => "subscription.delete",
            Action::SubscriptionsImport => "subscriptions.import",
            Action::SiteCreate => "site.create",
            Action::SiteUpdate => "site.update",
            Action::SiteDelete => "site.delete",
            Action::ApiKeyCreate => "api_key.create",
            Action::ApiKeyRevoke => "api_key.revoke",
            Action::VapidKeyRotate => "vapid_key.rotate",
            Action::VapidKeyImport => "vapid_key.import",
            Action::VapidKeyRetire => "vapid_key.retire",
        }
    }
}

/// One write to record.
#[derive(Debug, Clone)]
pub struct Written<'a> {
    pub caller: &'a Caller,
    pub site: &'a str,
    pub action: Action,
    /// What it acted on: a notification's id, a topic's or key's name, a user id's
    /// digest, never a secret.
    pub target: String,
    pub audience: Option<i64>,
    /// The client's address, or `cli` for the command line.
    pub client: String,
}

/// Appends `written` to the log. A write whose entry cannot be appended has still
/// happened, so the failure is logged at error level and returned.
pub async fn record(core: &Clarion, written: Written<'_>) -> Result<(), CoreError> {
    let entry = AuditRecord {
        key_id: written.caller.key_id(),
        key_name: written.caller.key_name(),
        site: written.site,
        action: written.action.as_str(),
        target: &written.target,
        audience: written.audience,
        client: &written.client,
    };
    core.store.append_audit(&entry).await.map_err(|e| {
        tracing::error!(action = written.action.as_str(), error = %format!("{e:#}"), "audit entry not appended");
        CoreError::Internal(e)
    })
}

/// What the log names for a subscription: its push service's host, never the endpoint
/// (which is a capability to push to it).
pub fn endpoint_host(endpoint: &str) -> String {
    url::Url::parse(endpoint).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
}

/// The most entries one page of the log holds.
pub const MAX_PAGE: i64 = 1000;

/// A page of the log: entries after id `after` (of `site`, when given), oldest first,
/// and the cursor of the next page when there may be one.
pub async fn list(core: &Clarion, site: Option<&str>, after: i64, limit: Option<i64>) -> Result<(Vec<AuditEntry>, Option<i64>), CoreError> {
    let limit = limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(CoreError::Invalid { field: "limit", reason: format!("between 1 and {MAX_PAGE}") });
    }
    let entries = core.store.audit_entries(site, after.max(0), limit).await?;
    let next = (entries.len() as i64 == limit).then(|| entries.last().map(|e| e.id)).flatten();
    Ok((entries, next))
}

/// The `limit` newest entries, newest first (the console's view).
pub async fn latest(core: &Clarion, limit: i64) -> Result<Vec<AuditEntry>, CoreError> {
    Ok(core.store.latest_audit(limit.clamp(1, MAX_PAGE)).await?)
}

/// Prunes entries older than `days` now and then every `every`, until `stop`.
pub async fn run_retention(core: Clarion, days: u32, every: Duration, stop: CancellationToken) {
    loop {
        let before = clock::rfc3339_at(clock::unix_seconds() - i64::from(days) * 86_400);
        match core.store.prune_audit(&before).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, days, "audit entries past their retention pruned"),
            Err(e) => tracing::error!(error = %format!("{e:#}"), "could not prune the audit log; trying again later"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}
