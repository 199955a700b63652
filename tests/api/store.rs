//! The store's contract, one suite run against both backends: each case below runs once on
//! a fresh SQLite file and once on a fresh PostgreSQL database of the test cluster
//! (`CLARION_TEST_DATABASE_URL`), as `store::sqlite::<case>` and `store::postgres::<case>`.

use crate::helpers::*;
use clarion::domain::notification::Notification;
use clarion::domain::subscription::NewSubscription;
use clarion::domain::{FailureReason, NotificationRequest, SubscriptionJson, SubscriptionKeysJson};
use clarion_store::{
    ClickRecorded, DeploymentKey, KeyMismatch, LeaseStatus, OriginState, Progress, RangeFinished, RetryDue, Store, SubscriberFacts,
    Upserted,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A store on a fresh database, with what a case needs to reach it directly.
pub struct TestStore {
    store: Store,
    url: String,
    postgres: bool,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    async fn sqlite(lease: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("clarion.db").display());
        Self { store: Store::connect(&url, lease).await.unwrap(), url, postgres: false, _dir: Some(dir) }
    }

    async fn postgres(lease: Duration) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("store_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::SeqCst));
        let url = postgres_database(&name).await;
        Self { store: Store::connect(&url, lease).await.unwrap(), url, postgres: true, _dir: None }
    }

    /// Runs raw SQL on the same database.
    async fn execute(&self, sql: &str) {
        if self.postgres {
            let db = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&db).await.unwrap();
        } else {
            let db = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&db).await.unwrap();
        }
    }

    async fn queue(&self) -> i64 {
        let notification =
            Notification::build(NotificationRequest { title: "T".into(), ..Default::default() }, Default::default()).unwrap();
        self.store.create_broadcast(D, &notification, None, None).await.unwrap()
    }
}

/// Defines `sqlite::<case>` and `postgres::<case>` for each case, a fn taking the
/// [`TestStore`]; `lease` is the broadcast lease the store is opened with.
macro_rules! on_both_backends {
    ($($case:ident (lease $lease:expr)),* $(,)?) => {
        mod sqlite {
            use super::{Duration, MINUTE};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::TestStore::sqlite($lease).await).await
                }
            )*
        }
        mod postgres {
            use super::{Duration, MINUTE};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::TestStore::postgres($lease).await).await
                }
            )*
        }
    };
}

/// The site every store case works in.
const D: &str = "default";

const MINUTE: Duration = Duration::from_secs(60);

on_both_backends! {
    a_subscription_is_created_refreshed_never_rekeyed_and_counted(lease MINUTE),
    racing_upserts_of_one_new_endpoint_store_it_once(lease MINUTE),
    an_import_counts_each_endpoint_once(lease MINUTE),
    an_import_never_rekeys_a_known_endpoint_unless_told_to(lease MINUTE),
    a_stale_lease_holder_cannot_commit_over_the_worker_that_took_over(lease Duration::from_secs(1)),
    racing_workers_never_claim_the_same_broadcast_or_range(lease MINUTE),
    progress_adds_up_over_batches_and_retries_fall_due_in_order(lease MINUTE),
    sessions_live_until_they_expire_or_the_token_changes(lease MINUTE),
    instances_must_share_one_vapid_key_and_one_admin_token(lease MINUTE),
    reading_due_retries_costs_the_same_however_many_retry_rows_wait(lease MINUTE),
    a_deployment_salt_is_made_once_and_read_back_by_everyone(lease MINUTE),
}

/// A valid subscription at `fcm.googleapis.com` whose keys are chosen by `seed`.
fn subscription(endpoint: &str, seed: u8) -> NewSubscription {
    let mut json: SubscriptionJson = serde_json::from_value(subscription_with_endpoint(endpoint)).unwrap();
    if seed != 0 {
        let auth = clarion::domain::base64url::encode(&[seed; 16]);
        json.keys = SubscriptionKeysJson { auth, ..json.keys };
    }
    NewSubscription::parse(&json, &Default::default()).unwrap()
}

const FCM: &str = "https://fcm.googleapis.com/fcm/send/";

async fn a_subscription_is_created_refreshed_never_rekeyed_and_counted(db: TestStore) {
    let store = &db.store;
    let first = subscription(&format!("{FCM}a"), 0);
    let Upserted::Created(id) = store
        .upsert_subscription(
            D,
            &first,
            "key-1",
            &SubscriberFacts { user_agent: Some("UA"), client_hash: Some("client"), ..Default::default() },
        )
        .await
        .unwrap()
    else {
        panic!("a new endpoint is created")
    };
    assert_eq!(store.upsert_subscription(D, &first, "key-2", &SubscriberFacts::default()).await.unwrap(), Upserted::Refreshed(id));
    let rekeyed = subscription(&format!("{FCM}a"), 7);
    assert_eq!(store.upsert_subscription(D, &rekeyed, "key-2", &SubscriberFacts::default()).await.unwrap(), Upserted::KeysDiffer);
    let stored = store.find_subscription(D, &format!("{FCM}a")).await.unwrap().unwrap();
    assert_eq!(stored.auth, first.auth.as_bytes(), "the keys were not replaced");
    assert_eq!(stored.vapid_key_fingerprint, "key-2", "the refresh recorded the current key");
    assert_eq!(store.count_subscriptions(D).await.unwrap(), 1);
    assert_eq!(store.count_subscriptions_from(D, "client").await.unwrap(), 1);
    store.upsert_subscription(D, &subscription(&format!("{FCM}b"), 0), "key-2", &SubscriberFacts::default()).await.unwrap();
    assert_eq!(store.count_subscriptions(D).await.unwrap(), 2);
    assert!(store.delete_subscription_by_endpoint(D, &format!("{FCM}a")).await.unwrap());
    assert!(!store.delete_subscription_by_endpoint(D, &format!("{FCM}a")).await.unwrap());
    assert_eq!(store.count_subscriptions(D).await.unwrap(), 1);
    let listed = store.list_subscriptions(D, 10, 0).await.unwrap();
    assert_eq!(listed.iter().map(|s| s.endpoint.as_str()).collect::<Vec<_>>(), [format!("{FCM}b")]);
}

async fn racing_upserts_of_one_new_endpoint_store_it_once(db: TestStore) {
    let sub = subscription(&format!("{FCM}race"), 0);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, sub) = (db.store.clone(), sub.clone());
            tokio::spawn(async move { store.upsert_subscription(D, &sub, "k", &SubscriberFacts::default()).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let created = outcomes.iter().filter(|o| matches!(o, Upserted::Created(_))).count();
    let refreshed = outcomes.iter().filter(|o| matches!(o, Upserted::Refreshed(_))).count();
    assert_eq!((created, refreshed), (1, 7), "{outcomes:?}");
    assert_eq!(db.store.count_subscriptions(D).await.unwrap(), 1);
}

async fn an_import_counts_each_endpoint_once(db: TestStore) {
    let batch: Vec<_> = (0..50).map(|i| subscription(&format!("{FCM}import-{}", i % 30), (i % 3) as u8)).collect();
    db.store.import_subscriptions(D, &batch, "k", false).await.unwrap();
    db.store.import_subscriptions(D, &batch[..10], "k", false).await.unwrap();
    assert_eq!(db.store.count_subscriptions(D).await.unwrap(), 30);
    assert_eq!(db.store.list_subscriptions(D, 100, 0).await.unwrap().len(), 30);
}

async fn an_import_never_rekeys_a_known_endpoint_unless_told_to(db: TestStore) {
    use clarion_store::Imported;
    let store = &db.store;
    let endpoint = format!("{FCM}known");
    let auth_of = |seed: u8| subscription(&endpoint, seed).auth.as_bytes().to_vec();
    let outcomes = store.import_subscriptions(D, &[subscription(&endpoint, 1)], "k", false).await.unwrap();
    assert_eq!(outcomes, vec![Imported::Stored]);
    let again = store.import_subscriptions(D, &[subscription(&endpoint, 1), subscription(&endpoint, 2)], "k", false).await.unwrap();
    assert_eq!(again, vec![Imported::Stored, Imported::KeysDiffer], "the same keys refresh it; other keys are refused");
    assert_eq!(store.find_subscription(D, &endpoint).await.unwrap().unwrap().auth, auth_of(1), "the keys it was stored with stay");
    let replaced = store.import_subscriptions(D, &[subscription(&endpoint, 2)], "k", true).await.unwrap();
    assert_eq!(replaced, vec![Imported::KeysReplaced]);
    assert_eq!(store.find_subscription(D, &endpoint).await.unwrap().unwrap().auth, auth_of(2), "asked to, the import replaces them");
    assert_eq!(store.count_subscriptions(D).await.unwrap(), 1);
}

async fn a_stale_lease_holder_cannot_commit_over_the_worker_that_took_over(db: TestStore) {
    let store = &db.store;
    store.upsert_subscription(D, &subscription(&format!("{FCM}lease"), 0), "k", &SubscriberFacts::default()).await.unwrap();
    let id = db.queue().await;
    // Starting: a starter whose lease lapsed cannot start it over the one that took over.
    let slow = store.claim_broadcast("starter-a", None).await.unwrap().unwrap();
    assert!(store.claim_broadcast("starter-b", None).await.unwrap().is_none(), "the lease holds");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let start = store.claim_broadcast("starter-b", None).await.unwrap().expect("a lapsed lease is claimed again");
    assert_eq!(store.start_broadcast(&slow, "starter-a").await.unwrap(), LeaseStatus::Lost);
    assert_eq!(store.start_broadcast(&start, "starter-b").await.unwrap(), LeaseStatus::Held);
    assert!(store.claim_broadcast("starter-c", None).await.unwrap().is_none(), "a started broadcast is not started again");

    // Sending a range: the same, with the range's own lease.
    let first = store.claim_range("worker-a", None).await.unwrap().unwrap();
    assert_eq!((first.broadcast_id, first.range_no), (id, 0));
    assert!(store.claim_range("worker-b", None).await.unwrap().is_none(), "the lease holds");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second = store.claim_range("worker-b", None).await.unwrap().expect("a lapsed lease is claimed again");
    assert!(second.lease_epoch > first.lease_epoch);
    let progress = Progress::default();
    assert_eq!(store.record_progress(&first, "worker-a", &progress).await.unwrap(), LeaseStatus::Lost);
    assert_eq!(store.renew_lease(&first, "worker-a").await.unwrap(), LeaseStatus::Lost);
    assert_eq!(store.finish_range(&first, "worker-a").await.unwrap(), RangeFinished { lease: LeaseStatus::Lost, broadcast_done: false });
    // Even the same owner name is fenced by the epoch.
    let again = store.claim_range("worker-b", None).await.unwrap().unwrap();
    assert_eq!(store.record_progress(&second, "worker-b", &progress).await.unwrap(), LeaseStatus::Lost);
    assert_eq!(store.record_progress(&again, "worker-b", &progress).await.unwrap(), LeaseStatus::Held);
    assert_eq!(store.finish_range(&again, "worker-b").await.unwrap(), RangeFinished { lease: LeaseStatus::Held, broadcast_done: true });
    assert_eq!(store.broadcast(D, id).await.unwrap().unwrap().status, clarion::domain::BroadcastState::Done);
}

/// Stores `n` subscriptions in one statement (ids 1..=n on a fresh database).
async fn bulk_subscriptions(db: &TestStore, n: i64) {
    let bulk = if db.postgres {
        format!(
            "INSERT INTO subscriptions (endpoint, p256dh, auth, vapid_key_fingerprint, created_at, updated_at)
             SELECT 'https://fcm.googleapis.com/fcm/send/r' || i, decode(repeat('00', 65), 'hex'), decode(repeat('00', 16), 'hex'), 'k', '', ''
             FROM generate_series(1, {n}) AS i"
        )
    } else {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
             INSERT INTO subscriptions (endpoint, p256dh, auth, vapid_key_fingerprint, created_at, updated_at)
             SELECT 'https://fcm.googleapis.com/fcm/send/r' || i, zeroblob(65), zeroblob(16), 'k', '', '' FROM n"
        )
    };
    db.execute(&bulk).await;
}

async fn racing_workers_never_claim_the_same_broadcast_or_range(db: TestStore) {
    bulk_subscriptions(&db, 4_500).await;
    let mut queued: Vec<i64> = futures::future::join_all((0..6).map(|_| db.queue())).await;
    queued.sort();
    // 12 workers race to start the queued broadcasts.
    let mut started: Vec<i64> =
        race(&db.store, 12, |store, owner| async move { store.claim_broadcast(&owner, None).await.unwrap().map(|start| start.id) }).await;
    started.sort();
    assert_eq!(started, queued, "each broadcast claimed by exactly one of 12 racing workers");

    // Broadcast 1: 4,500 subscriptions in ranges of 1,000 ids, each claimed once.
    db.execute("UPDATE broadcasts SET lease_owner = NULL, lease_until = NULL").await;
    let start = db.store.claim_broadcast("starter", Some(queued[0])).await.unwrap().unwrap();
    assert_eq!(db.store.start_broadcast(&start, "starter").await.unwrap(), LeaseStatus::Held);
    let claimed =
        race(&db.store, 12, |store, owner| async move { store.claim_range(&owner, Some(1)).await.unwrap().map(|range| (owner, range)) })
            .await;
    let mut ranges: Vec<i64> = claimed.iter().map(|(_, range)| range.range_no).collect();
    ranges.sort();
    assert_eq!(ranges, [0, 1, 2, 3, 4], "each range claimed by exactly one of 12 racing workers");
    assert_eq!(claimed.iter().map(|(_, r)| r.last_id).max(), Some(4_500));
    // Finishing at once: exactly one is the last, and it marks the broadcast done.
    let finishing: Vec<_> = claimed
        .into_iter()
        .map(|(owner, range)| {
            let store = db.store.clone();
            tokio::spawn(async move { store.finish_range(&range, &owner).await.unwrap() })
        })
        .collect();
    let mut last = 0;
    for task in finishing {
        let RangeFinished { lease, broadcast_done } = task.await.unwrap();
        assert_eq!(lease, LeaseStatus::Held);
        last += usize::from(broadcast_done);
    }
    assert_eq!(last, 1, "one range finished the broadcast");
    assert_eq!(db.store.broadcast(D, queued[0]).await.unwrap().unwrap().status, clarion::domain::BroadcastState::Done);
}

/// Runs `claim` in `n` tasks at once, as workers `worker-0`.. on the same store; answers
/// what they claimed.
async fn race<T, F, Fut>(store: &Store, n: usize, claim: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Store, String) -> Fut,
    Fut: std::future::Future<Output = Option<T>> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|worker| tokio::spawn(claim(store.clone(), format!("worker-{worker}")))).collect();
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    claimed
}

fn dummy_range() -> clarion_store::RangeJob {
    clarion_store::RangeJob {
        broadcast_id: 0,
        range_no: 0,
        site: D.into(),
        last_id: 0,
        cursor: 0,
        lease_epoch: 0,
        payload: String::new(),
        ttl: 0,
        urgency: None,
        topic: None,
        target_endpoint: None,
        by_topics: false,
        by_users: false,
    }
}

async fn progress_adds_up_over_batches_and_retries_fall_due_in_order(db: TestStore) {
    let store = &db.store;
    for i in 0..5 {
        store.upsert_subscription(D, &subscription(&format!("{FCM}p{i}"), 0), "k", &SubscriberFacts::default()).await.unwrap();
    }
    let id = db.queue().await;
    let start = store.claim_broadcast("w", None).await.unwrap().unwrap();
    assert_eq!(store.start_broadcast(&start, "w").await.unwrap(), LeaseStatus::Held);
    let range = store.claim_range("w", None).await.unwrap().unwrap();
    let page = store.broadcast_page(&range, 0, 100).await.unwrap();
    let ids: Vec<i64> = page.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 5);
    let first = Progress {
        cursor: Some(ids[2]),
        delivered: vec![ids[0]],
        failed: vec![(ids[1], FailureReason::Rejected)],
        retry: vec![RetryDue { subscription_id: ids[2], attempts: 1, not_before_ms: 2_000 }],
        ..Default::default()
    };
    assert_eq!(store.record_progress(&range, "w", &first).await.unwrap(), LeaseStatus::Held);
    let later = chrono::Utc::now().timestamp_millis() + 60_000;
    let second = Progress {
        cursor: Some(ids[4]),
        failed: vec![(ids[3], FailureReason::Rejected)],
        removed: vec![ids[4]],
        retry: vec![RetryDue { subscription_id: ids[2], attempts: 2, not_before_ms: 1_000 }],
        retried: 1,
        stopped_origins: [("https://a.example".to_string(), "refused".to_string())].into(),
        holds: vec![("https://b.example".to_string(), later), ("https://c.example".to_string(), later)],
        ..Default::default()
    };
    assert_eq!(store.record_progress(&range, "w", &second).await.unwrap(), LeaseStatus::Held);
    let record = store.broadcast(D, id).await.unwrap().unwrap();
    assert_eq!((record.total, record.delivered, record.failed, record.removed, record.retried), (5, 1, 2, 1, 1));
    assert_eq!(record.failures.0.get("rejected"), Some(&2), "reasons add up across batches");
    assert_eq!(record.stopped_origins.0.get("https://a.example").map(String::as_str), Some("refused"));
    assert_eq!(store.count_subscriptions(D).await.unwrap(), 4, "the removed one is deleted");
    // A hold is shared, and the later of two wins.
    let earlier = Progress { holds: vec![("https://b.example".to_string(), later - 30_000)], ..Default::default() };
    assert_eq!(store.record_progress(&range, "w", &earlier).await.unwrap(), LeaseStatus::Held);
    // What a range of this broadcast on another instance learns before its pages.
    let OriginState { mut holds, stopped } = store.origin_state(id, later - 1).await.unwrap();
    holds.sort();
    assert_eq!(holds, [("https://b.example".to_string(), later), ("https://c.example".to_string(), later)]);
    assert!(store.origin_state(id, later).await.unwrap().holds.is_empty(), "a hold ends");
    assert_eq!(stopped.get("https://a.example").map(String::as_str), Some("refused"));
    assert_eq!(store.next_retry_at(&range).await.unwrap(), Some(1_000), "the retry was rescheduled, not duplicated");
    assert!(store.due_retries(&range, 999, 10).await.unwrap().is_empty());
    let due = store.due_retries(&range, 1_000, 10).await.unwrap();
    assert_eq!(due.iter().map(|(s, attempts)| (s.id, *attempts)).collect::<Vec<_>>(), [(ids[2], 2)]);
    assert_eq!(store.finish_range(&range, "w").await.unwrap(), RangeFinished { lease: LeaseStatus::Held, broadcast_done: true });
    assert_eq!(store.next_retry_at(&range).await.unwrap(), None, "finishing drops leftover retries");
    assert_eq!(store.record_click(D, id, ids[0]).await.unwrap(), ClickRecorded::Counted);
    assert_eq!(store.record_click(D, id, ids[0]).await.unwrap(), ClickRecorded::AlreadyCounted, "once per subscription");
    assert_eq!(store.record_click(D, id, ids[1]).await.unwrap(), ClickRecorded::Counted);
    assert_eq!(store.record_click(D, id + 1000, ids[0]).await.unwrap(), ClickRecorded::NoSuchBroadcast);
    assert_eq!(store.broadcast(D, id).await.unwrap().unwrap().clicks, 2);
}

async fn a_deployment_salt_is_made_once_and_read_back_by_everyone(db: TestStore) {
    let store = &db.store;
    let salt = store.deployment_salt("admin_token").await.unwrap();
    assert_eq!(salt.len(), 16);
    assert_eq!(store.deployment_salt("admin_token").await.unwrap(), salt, "read back, not made again");
    assert_ne!(store.deployment_salt("another").await.unwrap(), salt, "each name has its own");
    // Two instances asking at once get one salt.
    let (a, b) = tokio::join!(store.deployment_salt("raced"), store.deployment_salt("raced"));
    assert_eq!(a.unwrap(), b.unwrap());
}

async fn sessions_live_until_they_expire_or_the_token_changes(db: TestStore) {
    let store = &db.store;
    let later = chrono::Utc::now().timestamp() + 3600;
    store.create_session("s1", "tag-a", later).await.unwrap();
    store.create_session("s-past", "tag-a", chrono::Utc::now().timestamp() - 1).await.unwrap();
    assert!(store.session_is_live("s1", "tag-a").await.unwrap());
    assert!(!store.session_is_live("s1", "tag-b").await.unwrap(), "another token's tag");
    assert!(!store.session_is_live("s-past", "tag-a").await.unwrap(), "expired");
    // A session opened under a new token sweeps those of the old one.
    store.create_session("s2", "tag-b", later).await.unwrap();
    assert!(!store.session_is_live("s1", "tag-a").await.unwrap());
    assert!(store.session_is_live("s2", "tag-b").await.unwrap());
    store.delete_session("s2").await.unwrap();
    assert!(!store.session_is_live("s2", "tag-b").await.unwrap());
}

async fn instances_must_share_one_vapid_key_and_one_admin_token(db: TestStore) {
    let store = &db.store;
    store.agree_on_key(DeploymentKey::Vapid, "vapid-one").await.unwrap();
    store.agree_on_key(DeploymentKey::Vapid, "vapid-one").await.unwrap();
    store.agree_on_key(DeploymentKey::AdminToken, "token-one").await.unwrap();
    let other_key = store.agree_on_key(DeploymentKey::Vapid, "vapid-two").await;
    let other_token = store.agree_on_key(DeploymentKey::AdminToken, "token-two").await;
    if !db.postgres {
        // One SQLite process: changing the key is a rotation, not a split.
        assert!(other_key.is_ok() && other_token.is_ok());
        return;
    }
    let mismatch = other_key.unwrap_err();
    let message = mismatch.to_string();
    assert!(mismatch.downcast_ref::<KeyMismatch>().is_some());
    assert!(message.contains("vapid-two") && message.contains("vapid-one") && message.contains("CLARION_VAPID_PRIVATE_KEY"), "{message}");
    let message = other_token.unwrap_err().to_string();
    assert!(message.contains("CLARION_ADMIN_TOKEN"), "{message}");
    assert!(!message.contains("token-two") && !message.contains("token-one"), "the token's digests are never shown: {message}");
}

async fn reading_due_retries_costs_the_same_however_many_retry_rows_wait(db: TestStore) {
    let id = db.queue().await;
    // 100,000 subscriptions, each with a retry row that is due, written in bulk.
    bulk_subscriptions(&db, 100_000).await;
    db.execute(&format!(
        "INSERT INTO broadcast_retries (broadcast_id, subscription_id, attempts, not_before) SELECT {id}, id, 1, id FROM subscriptions"
    ))
    .await;
    if db.postgres {
        db.execute("ANALYZE").await;
    }
    assert_eq!(db.store.count_subscriptions(D).await.unwrap(), 100_000, "the kept count follows bulk inserts too");
    let range = clarion_store::RangeJob { broadcast_id: id, ..dummy_range() };
    // A retry pass reads a page of due retries per batch. Each read must cost about the
    // page, not the number of rows waiting: before, each read also swept all 100,000
    // (400 reads took 4.8 s on SQLite; now about 0.1 s).
    let started = Instant::now();
    for _ in 0..400 {
        let due = db.store.due_retries(&range, i64::MAX, 16).await.unwrap();
        assert_eq!(due.len(), 16);
        assert!(db.store.next_retry_at(&range).await.unwrap().is_some());
    }
    let took = started.elapsed();
    eprintln!("{}: 400 reads of 16 due retries among 100,000: {took:?}", db.store.backend());
    assert!(took < Duration::from_secs(1), "400 reads took {took:?}");
}
