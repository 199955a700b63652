//! The browser side of the push control: what each operation does, for the page's
//! buttons and the SDK's methods alike.
//!
//! Each operation marks the control busy while it runs, leaves a notice saying how it
//! went, and returns the outcome: a button ignores it, and the SDK resolves or rejects
//! with it. So a control mounted by the SDK shows what a script did, and the other way
//! round.

use super::backend::Backend;
use super::{PushControlModel, PushState};
use crate::browser::{self, BrowserError};
use crate::domain::{base64url, SubscriptionJson, TestPushResult};
use leptos::prelude::*;
use std::future::Future;
use std::pin::Pin;
use web_sys::{NotificationPermission, PushSubscription, ServiceWorkerRegistration};

/// The service worker the control registers: its script and, optionally, its scope
/// (without one, the browser's default: the script's folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerScript {
    pub url: String,
    pub scope: Option<String>,
}

impl WorkerScript {
    /// Clarion's own `/sw.js`, for its whole site.
    pub fn clarion_page() -> Self {
        Self { url: "/sw.js".into(), scope: Some("/".into()) }
    }
}

/// How the control reaches Clarion, and what it stores subscriptions with.
#[derive(Debug, Clone)]
pub(super) struct Link {
    backend: Backend,
    worker: WorkerScript,
    /// The identity token subscriptions are saved with: the site's signed-in user.
    user_token: Option<String>,
}

/// An operation in progress. Boxed, so the page's buttons and the SDK's promises share
/// one copy of each operation's code instead of each inlining its own.
pub type Operation<T> = Pin<Box<dyn Future<Output = Result<T, ControlError>>>>;

/// Why an operation did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlError {
    /// This browser has no web push (on iPhone and iPad: not outside a Home Screen app).
    Unsupported,
    /// The user blocked notifications for this site.
    Blocked,
    /// The user closed the permission prompt without allowing.
    Dismissed,
    /// The operation needs a subscription, and this browser has none.
    NotSubscribed,
    /// A browser call or Clarion failed; the words say which and why.
    Failed(BrowserError),
}

impl ControlError {
    /// A stable name for scripts (the SDK's `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Unsupported => "unsupported",
            ControlError::Blocked => "blocked",
            ControlError::Dismissed => "dismissed",
            ControlError::NotSubscribed => "not-subscribed",
            ControlError::Failed(_) => "failed",
        }
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Unsupported => f.write_str("this browser cannot receive web push notifications"),
            ControlError::Blocked => f.write_str("notifications are blocked for this site"),
            ControlError::Dismissed => f.write_str("notification permission was not given"),
            ControlError::NotSubscribed => f.write_str("this browser is not subscribed"),
            ControlError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl From<BrowserError> for ControlError {
    fn from(e: BrowserError) -> Self {
        ControlError::Failed(e)
    }
}

impl PushControlModel {
    /// A control that reaches Clarion through `backend`, with its service worker at
    /// `worker`, saving subscriptions with `user_token`. Call [`Self::init`] next.
    pub fn new(backend: Backend, worker: WorkerScript, user_token: Option<String>) -> Self {
        Self {
            state: RwSignal::new(PushState::Checking),
            busy: RwSignal::new(false),
            notice: RwSignal::new(String::new()),
            subscription: RwSignal::new(None),
            topics: RwSignal::new(Vec::new()),
            chosen: RwSignal::new(Vec::new()),
            link: StoredValue::new(Link { backend, worker, user_token }),
            vapid_key: RwSignal::new(None),
        }
    }

    fn backend(self) -> Backend {
        self.link.with_value(|link| link.backend.clone())
    }

    fn settle(self, state: PushState, notice: impl Into<String>) {
        self.state.set(state);
        self.notice.set(notice.into());
        if state != PushState::Subscribed {
            self.subscription.set(None);
        }
    }

    /// Registers the worker (a no-op when it already is) and waits until it is active.
    async fn registration(self) -> Result<ServiceWorkerRegistration, BrowserError> {
        let worker = self.link.with_value(|link| link.worker.clone());
        browser::register_service_worker(&worker.url, worker.scope.as_deref()).await
    }

    async fn vapid_key(self) -> Result<String, BrowserError> {
        if let Some(key) = self.vapid_key.get_untracked() {
            return Ok(key);
        }
        let key = self.backend().vapid_public_key().await?;
        self.vapid_key.set(Some(key.clone()));
        Ok(key)
    }

    /// Sends the subscription to Clarion (with the topics chosen, when given, and the
    /// identity token) and shows it and its topics.
    async fn save(self, subscription: &PushSubscription, topics: Option<Vec<String>>) -> Result<SubscriptionJson, BrowserError> {
        let json = browser::subscription_json(subscription)?;
        let user_token = self.link.with_value(|link| link.user_token.clone());
        let saved = self.backend().save(json.clone(), topics, user_token).await?;
        self.chosen.set(saved.topics);
        self.subscription.set(Some(json.clone()));
        self.state.set(PushState::Subscribed);
        Ok(json)
    }

    /// On load: register the worker, then reconcile the browser's subscription with
    /// Clarion's key and records. It settles in a state whatever happens.
    pub fn init(self) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(self.reconcile())
    }

    async fn reconcile(self) {
        // iOS offers push only to Home Screen apps; a button here could never work.
        if browser::is_ios() && !browser::is_standalone() {
            self.settle(PushState::InstallFirst, "");
            return;
        }
        if !browser::push_supported() {
            self.settle(PushState::Unsupported, "");
            return;
        }
        if let Ok(topics) = self.backend().topics().await {
            self.topics.set(topics);
        }
        if let Err(e) = self.sync().await {
            self.settle(PushState::Ready, format!("Could not check this browser's subscription: {e}"));
        }
    }

    /// The same rules wherever the control runs: a subscription Clarion does not know is
    /// saved again, and one made with another VAPID key is replaced.
    async fn sync(self) -> Result<(), BrowserError> {
        let registration = self.registration().await?;
        let key = self.vapid_key().await?;
        let permission = browser::permission();
        if permission == NotificationPermission::Denied {
            self.settle(PushState::Blocked, "");
            return Ok(());
        }
        let Some(existing) = browser::current_subscription(&registration).await? else {
            self.settle(PushState::Ready, "");
            return Ok(());
        };
        let expected = base64url::decode(&key).map_err(|e| BrowserError(e.to_string()))?;
        let made_with_other_key = browser::subscription_server_key(&existing).is_some_and(|k| k != expected);
        if !made_with_other_key {
            // Saving is an upsert: it restores a subscription the server lost.
            return self.save(&existing, None).await.map(|_| ());
        }
        // The server's VAPID key changed: the old subscription can never be pushed to.
        let old_endpoint = existing.endpoint();
        browser::unsubscribe(&existing).await?;
        let _ = self.backend().delete(old_endpoint).await;
        if permission != NotificationPermission::Granted {
            self.settle(PushState::Ready, "The server's key changed; enable notifications again.");
            return Ok(());
        }
        let renewed = browser::subscribe(&registration, &key).await?;
        self.save(&renewed, None).await?;
        self.notice.set("The server's key changed, so this browser subscribed again.".into());
        Ok(())
    }

    /// Asks for permission, subscribes with Clarion's key and stores the subscription
    /// (with `topics`, when given, and `user_token`, which later saves keep using).
    ///
    /// The permission prompt starts before this returns, so call it straight from a
    /// click handler: browsers only prompt during a user gesture.
    pub fn subscribe(self, topics: Option<Vec<String>>, user_token: Option<String>) -> Operation<SubscriptionJson> {
        let prompt = match self.state.get_untracked() {
            PushState::Unsupported | PushState::InstallFirst => Err(ControlError::Unsupported),
            _ => browser::request_permission().map_err(ControlError::from),
        };
        if let Some(token) = user_token {
            self.link.update_value(|link| link.user_token = Some(token));
        }
        Box::pin(async move {
            self.busy.set(true);
            let result = match prompt {
                Ok(prompt) => self.subscribe_after(prompt, topics).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(_) => self.notice.set("Notifications are on. Try Send test notification.".into()),
                Err(ControlError::Failed(e)) => self.notice.set(format!("Could not enable notifications: {e}")),
                // `subscribe_after` settled in the state that says why.
                Err(_) => {}
            }
            self.busy.set(false);
            result
        })
    }

    async fn subscribe_after(self, prompt: js_sys::Promise, topics: Option<Vec<String>>) -> Result<SubscriptionJson, ControlError> {
        match browser::permission_answer(prompt).await? {
            NotificationPermission::Granted => {}
            NotificationPermission::Denied => {
                self.settle(PushState::Blocked, "You blocked notifications for this site.");
                return Err(ControlError::Blocked);
            }
            _ => {
                self.settle(PushState::Ready, "Permission was not given. Click Enable notifications to be asked again.");
                return Err(ControlError::Dismissed);
            }
        }
        let registration = self.registration().await?;
        let key = self.vapid_key().await?;
        let subscription = browser::subscribe(&registration, &key).await?;
        Ok(self.save(&subscription, topics).await?)
    }

    /// Unsubscribes in the browser and deletes the subscription on Clarion. Not being
    /// subscribed is not an error: the goal holds either way.
    pub fn unsubscribe(self) -> Operation<()> {
        Box::pin(self.unsubscribe_here_and_there())
    }

    async fn unsubscribe_here_and_there(self) -> Result<(), ControlError> {
        self.busy.set(true);
        let known_endpoint = self.subscription.get_untracked().map(|s| s.endpoint);
        let in_browser = match self.registration().await {
            Ok(registration) => browser::current_subscription(&registration).await,
            Err(e) => Err(e),
        };
        let (browser_result, endpoint) = match in_browser {
            Ok(Some(subscription)) => {
                let endpoint = subscription.endpoint();
                (browser::unsubscribe(&subscription).await.map(|_| ()), Some(endpoint))
            }
            Ok(None) => (Ok(()), known_endpoint),
            Err(e) => (Err(e), known_endpoint),
        };
        let server_result = match endpoint {
            Some(endpoint) => self.backend().delete(endpoint).await,
            None => Ok(()),
        };
        let result = match (browser_result, server_result) {
            (Ok(()), Ok(())) => {
                self.settle(PushState::Ready, "Notifications are off. The server has forgotten this browser.");
                Ok(())
            }
            (Err(b), Ok(())) => {
                self.settle(PushState::Ready, format!("The server forgot this browser, but the browser could not unsubscribe: {b}"));
                Err(b.into())
            }
            (Ok(()), Err(s)) => {
                self.settle(PushState::Ready, format!("This browser unsubscribed, but the server could not delete the subscription: {s}"));
                Err(s.into())
            }
            (Err(b), Err(s)) => {
                let both = format!("Could not disable notifications. Browser: {b}. Server: {s}");
                self.notice.set(both.clone());
                Err(BrowserError(both).into())
            }
        };
        self.busy.set(false);
        result
    }

    /// Ticks or unticks one topic and saves the whole set at once.
    pub(super) fn choose_topic(self, name: String, on: bool) -> Operation<Vec<String>> {
        let mut topics = self.chosen.get_untracked();
        topics.retain(|t| *t != name);
        if on {
            topics.push(name);
        }
        self.set_topics(topics)
    }

    /// Replaces this browser's topics; resolves to the set Clarion stored.
    pub fn set_topics(self, topics: Vec<String>) -> Operation<Vec<String>> {
        Box::pin(self.save_topics(topics))
    }

    async fn save_topics(self, topics: Vec<String>) -> Result<Vec<String>, ControlError> {
        let Some(subscription) = self.subscription.get_untracked() else { return Err(ControlError::NotSubscribed) };
        self.busy.set(true);
        let result = self.backend().save_topics(subscription.endpoint, subscription.keys.auth, topics).await;
        let result = match result {
            Ok(stored) => {
                self.chosen.set(stored.clone());
                self.notice.set("Your topics are saved.".into());
                Ok(stored)
            }
            Err(e) => {
                // Show what the server has, not what was clicked.
                self.chosen.update(|_| {});
                self.notice.set(format!("Could not save your topics: {e}"));
                Err(e.into())
            }
        };
        self.busy.set(false);
        result
    }

    /// Pushes a test notification to this browser's own subscription.
    pub fn send_test(self) -> Operation<TestPushResult> {
        Box::pin(self.push_test())
    }

    async fn push_test(self) -> Result<TestPushResult, ControlError> {
        let Some(subscription) = self.subscription.get_untracked() else { return Err(ControlError::NotSubscribed) };
        self.busy.set(true);
        self.notice.set("Sending a test notification…".into());
        let result = self.backend().send_test(subscription.endpoint, subscription.keys.auth).await;
        match &result {
            Ok(TestPushResult::Delivered) => self.notice.set("Test notification sent. It should appear in a moment.".into()),
            Ok(TestPushResult::Gone) => {
                if let Ok(registration) = self.registration().await {
                    if let Ok(Some(stale)) = browser::current_subscription(&registration).await {
                        let _ = browser::unsubscribe(&stale).await;
                    }
                }
                self.settle(
                    PushState::Ready,
                    "The push service no longer knows this subscription, so it was removed. Enable notifications to subscribe again.",
                );
            }
            Ok(TestPushResult::Failed { reason }) => self.notice.set(format!("The test was not delivered: {reason}")),
            Err(e) => self.notice.set(format!("Could not send the test: {e}")),
        }
        self.busy.set(false);
        Ok(result?)
    }
}
