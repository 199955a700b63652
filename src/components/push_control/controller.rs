//! The browser side of the push control: what each operation does, for the page's
//! buttons and the SDK's methods alike.
//!
//! A [`Control`] holds the [`CardState`] and tells its watchers of every change (the
//! page's Leptos view, the SDK's card, a site's `onChange`). Each operation marks the
//! card busy while it runs, leaves a notice saying how it went, and returns the outcome:
//! a button ignores it, and the SDK resolves or rejects with it. So a card shows what a
//! script did, and the other way round.

use super::backend::Backend;
use super::{CardState, PushState};
use crate::browser::{self, BrowserError};
use crate::domain::{base64url, SubscriptionJson, TestPushResult};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
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
            ControlError::Failed(e) => f.write_str(&e.0),
        }
    }
}

impl From<BrowserError> for ControlError {
    fn from(e: BrowserError) -> Self {
        ControlError::Failed(e)
    }
}

/// Names a watcher, to stop it.
pub type WatchId = u32;

/// Something that follows the card: the page's view, the SDK's card, a site's callback.
type Watcher = Rc<dyn Fn(&CardState)>;

/// The push control: its card, its link to Clarion, and its operations. Cloning it
/// shares it.
#[derive(Clone)]
pub struct Control(Rc<Shared>);

struct Shared {
    backend: Backend,
    worker: WorkerScript,
    /// The identity token subscriptions are saved with: the site's signed-in user.
    user_token: RefCell<Option<String>>,
    /// Clarion's VAPID key, after the first fetch.
    vapid_key: RefCell<Option<String>>,
    card: RefCell<CardState>,
    watchers: RefCell<Vec<(WatchId, Watcher)>>,
    next_watcher: Cell<WatchId>,
}

impl Control {
    /// A control that reaches Clarion through `backend`, with its service worker at
    /// `worker`, saving subscriptions with `user_token`. It says `Checking` until
    /// [`Self::init`] has run.
    pub fn new(backend: Backend, worker: WorkerScript, user_token: Option<String>) -> Self {
        Self(Rc::new(Shared {
            backend,
            worker,
            user_token: RefCell::new(user_token),
            vapid_key: RefCell::new(None),
            card: RefCell::new(CardState::default()),
            watchers: RefCell::new(Vec::new()),
            next_watcher: Cell::new(0),
        }))
    }

    /// The card as it is now.
    pub fn card(&self) -> CardState {
        self.0.card.borrow().clone()
    }

    pub fn state(&self) -> PushState {
        self.0.card.borrow().state
    }

    /// Calls `watcher` with the card after every change.
    pub fn watch(&self, watcher: impl Fn(&CardState) + 'static) -> WatchId {
        let id = self.0.next_watcher.get();
        self.0.next_watcher.set(id + 1);
        self.0.watchers.borrow_mut().push((id, Rc::new(watcher)));
        id
    }

    pub fn unwatch(&self, id: WatchId) {
        self.0.watchers.borrow_mut().retain(|(watcher, _)| *watcher != id);
    }

    fn update(&self, change: impl FnOnce(&mut CardState)) {
        let now = {
            let mut card = self.0.card.borrow_mut();
            let before = card.clone();
            change(&mut card);
            if *card == before {
                return;
            }
            card.clone()
        };
        // Watchers may read the control, so none of its cells is borrowed while they run.
        let watchers: Vec<Watcher> = self.0.watchers.borrow().iter().map(|(_, watcher)| watcher.clone()).collect();
        for watcher in watchers {
            watcher(&now);
        }
    }

    fn settle(&self, state: PushState, notice: impl Into<String>) {
        let notice = notice.into();
        self.update(|card| {
            card.state = state;
            card.notice = notice;
            if state != PushState::Subscribed {
                card.subscription = None;
                card.subscription_text.clear();
            }
        });
    }

    fn say(&self, notice: impl Into<String>) {
        let notice = notice.into();
        self.update(|card| card.notice = notice);
    }

    fn set_busy(&self, busy: bool) {
        self.update(|card| card.busy = busy);
    }

    /// Runs an operation for a button, which has nothing to do with its outcome.
    pub fn run<T: 'static>(&self, operation: Operation<T>) {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = operation.await;
        });
    }

    /// Starts [`Self::init`] without waiting for it.
    pub fn start(&self) {
        wasm_bindgen_futures::spawn_local(self.init());
    }

    /// The main button: Enable when ready, Disable when subscribed. Call it from the
    /// click handler itself, so the permission prompt sees the user gesture.
    pub fn toggle(&self) {
        match self.state() {
            PushState::Ready => self.run(self.subscribe(None, None)),
            PushState::Subscribed => self.run(self.unsubscribe()),
            _ => {}
        }
    }

    /// Registers the worker (a no-op when it already is) and waits until it is active.
    async fn registration(&self) -> Result<ServiceWorkerRegistration, BrowserError> {
        browser::register_service_worker(&self.0.worker.url, self.0.worker.scope.as_deref()).await
    }

    async fn vapid_key(&self) -> Result<String, BrowserError> {
        if let Some(key) = self.0.vapid_key.borrow().clone() {
            return Ok(key);
        }
        let key = self.0.backend.vapid_public_key().await?;
        *self.0.vapid_key.borrow_mut() = Some(key.clone());
        Ok(key)
    }

    /// Sends the subscription to Clarion (with the topics chosen, when given, and the
    /// identity token) and shows it and its topics.
    async fn save(&self, subscription: &PushSubscription, topics: Option<Vec<String>>) -> Result<SubscriptionJson, BrowserError> {
        let json = browser::subscription_json(subscription)?;
        let user_token = self.0.user_token.borrow().clone();
        let chosen = self.0.backend.save(subscription, &json, topics, user_token).await?;
        self.show_subscribed(subscription, json.clone(), chosen)?;
        Ok(json)
    }

    /// The card of a subscription Clarion stored, with the topics it has.
    fn show_subscribed(&self, subscription: &PushSubscription, json: SubscriptionJson, chosen: Vec<String>) -> Result<(), BrowserError> {
        let text = browser::json_text(&subscription.to_json()?.into(), 2)?;
        self.update(|card| {
            card.chosen = chosen;
            card.subscription = Some(json);
            card.subscription_text = text;
            card.state = PushState::Subscribed;
        });
        Ok(())
    }

    /// On load: register the worker, then reconcile the browser's subscription with
    /// Clarion's key and records. It settles in a state whatever happens.
    pub fn init(&self) -> Pin<Box<dyn Future<Output = ()>>> {
        let this = self.clone();
        Box::pin(async move { this.reconcile().await })
    }

    async fn reconcile(&self) {
        // iOS offers push only to Home Screen apps; a button here could never work.
        if browser::is_ios() && !browser::is_standalone() {
            return self.settle(PushState::InstallFirst, "");
        }
        if !browser::push_supported() {
            return self.settle(PushState::Unsupported, "");
        }
        if let Ok(topics) = self.0.backend.topics().await {
            self.update(|card| card.topics = topics);
        }
        if let Err(e) = self.sync().await {
            self.settle(PushState::Ready, format!("Could not check this browser's subscription: {e}"));
        }
    }

    /// The same rules wherever the control runs: a subscription Clarion does not know is
    /// saved again, and one made with another VAPID key is replaced.
    async fn sync(&self) -> Result<(), BrowserError> {
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
        // The site rotated its VAPID key: move to the current one. The old subscription
        // keeps receiving until then (signed with its own key), and the new one takes over
        // its topics and user. Read the proof before unsubscribing: an unsubscribed
        // subscription may drop its keys; and a browser subscribes under another key only
        // once the old subscription is gone.
        let old = browser::subscription_json(&existing).ok();
        browser::unsubscribe(&existing).await?;
        if permission != NotificationPermission::Granted {
            if let Some(old) = old {
                let _ = self.0.backend.delete(old.endpoint, old.keys.auth).await;
            }
            self.settle(PushState::Ready, "The server's key changed; enable notifications again.");
            return Ok(());
        }
        let renewed = browser::subscribe(&registration, &key).await?;
        let json = browser::subscription_json(&renewed)?;
        let moved = match old {
            Some(old) => self.0.backend.renew(old.endpoint, old.keys.auth, &renewed, &json).await?,
            None => None,
        };
        match moved {
            Some(chosen) => self.show_subscribed(&renewed, json, chosen)?,
            None => {
                self.save(&renewed, None).await?;
            }
        }
        self.say("The server's key changed, so this browser subscribed again.");
        Ok(())
    }

    /// Asks for permission, subscribes with Clarion's key and stores the subscription
    /// (with `topics`, when given, and `user_token`, which later saves keep using).
    ///
    /// The permission prompt starts before this returns, so call it straight from a
    /// click handler: browsers only prompt during a user gesture.
    pub fn subscribe(&self, topics: Option<Vec<String>>, user_token: Option<String>) -> Operation<SubscriptionJson> {
        let prompt = match self.state() {
            PushState::Unsupported | PushState::InstallFirst => Err(ControlError::Unsupported),
            _ => browser::request_permission().map_err(ControlError::from),
        };
        if let Some(token) = user_token {
            *self.0.user_token.borrow_mut() = Some(token);
        }
        let this = self.clone();
        Box::pin(async move {
            this.set_busy(true);
            let result = match prompt {
                Ok(prompt) => this.subscribe_after(prompt, topics).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(_) => this.say("Notifications are on. Try Send test notification."),
                Err(ControlError::Failed(e)) => this.say(format!("Could not enable notifications: {e}")),
                // `subscribe_after` settled in the state that says why.
                Err(_) => {}
            }
            this.set_busy(false);
            result
        })
    }

    async fn subscribe_after(&self, prompt: js_sys::Promise, topics: Option<Vec<String>>) -> Result<SubscriptionJson, ControlError> {
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
    pub fn unsubscribe(&self) -> Operation<()> {
        let this = self.clone();
        Box::pin(async move {
            this.set_busy(true);
            let result = this.unsubscribe_here_and_there().await;
            this.set_busy(false);
            result
        })
    }

    async fn unsubscribe_here_and_there(&self) -> Result<(), ControlError> {
        // The endpoint and its `auth` secret, which proves to Clarion that it is ours.
        let known = self.0.card.borrow().subscription.as_ref().map(|s| (s.endpoint.clone(), s.keys.auth.clone()));
        let in_browser = match self.registration().await {
            Ok(registration) => browser::current_subscription(&registration).await,
            Err(e) => Err(e),
        };
        let (browser_result, proof) = match in_browser {
            Ok(Some(subscription)) => {
                // Read before unsubscribing: an unsubscribed subscription may drop its keys.
                let proof = browser::subscription_json(&subscription).ok().map(|json| (json.endpoint, json.keys.auth)).or(known);
                (browser::unsubscribe(&subscription).await.map(|_| ()), proof)
            }
            Ok(None) => (Ok(()), known),
            Err(e) => (Err(e), known),
        };
        let server_result = match proof {
            Some((endpoint, auth)) => self.0.backend.delete(endpoint, auth).await,
            None => Ok(()),
        };
        match (browser_result, server_result) {
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
                self.say(both.clone());
                Err(BrowserError(both).into())
            }
        }
    }

    /// Ticks or unticks one topic and saves the whole set at once.
    pub fn choose_topic(&self, name: String, on: bool) -> Operation<Vec<String>> {
        let mut topics = self.0.card.borrow().chosen.clone();
        topics.retain(|t| *t != name);
        if on {
            topics.push(name);
        }
        self.set_topics(topics)
    }

    /// Replaces this browser's topics; resolves to the set Clarion stored.
    pub fn set_topics(&self, topics: Vec<String>) -> Operation<Vec<String>> {
        let this = self.clone();
        Box::pin(async move {
            let Some(subscription) = this.0.card.borrow().subscription.clone() else { return Err(ControlError::NotSubscribed) };
            // While saving, the boxes show what was asked for: showing the old set meanwhile
            // unticked a box the visitor had just ticked, until the answer came.
            let before = this.0.card.borrow().chosen.clone();
            this.update(|card| {
                card.chosen = topics.clone();
                card.busy = true;
            });
            let result = match this.0.backend.save_topics(subscription.endpoint, subscription.keys.auth, topics).await {
                Ok(stored) => {
                    let saved = stored.clone();
                    this.update(|card| {
                        card.chosen = saved;
                        card.notice = "Your topics are saved.".into();
                    });
                    Ok(stored)
                }
                Err(e) => {
                    // The card goes back to what Clarion has, not what was clicked.
                    this.update(|card| card.chosen = before);
                    this.say(format!("Could not save your topics: {e}"));
                    Err(e.into())
                }
            };
            this.set_busy(false);
            result
        })
    }

    /// Unbinds this browser's subscription from the signed-in user (the site's sign-out):
    /// it stays subscribed, with its topics, but sends to that user no longer reach it.
    pub fn sign_out(&self) -> Operation<()> {
        let this = self.clone();
        Box::pin(async move {
            let Some(subscription) = this.0.card.borrow().subscription.clone() else { return Err(ControlError::NotSubscribed) };
            this.0.backend.sign_out(subscription.endpoint, subscription.keys.auth).await?;
            Ok(())
        })
    }

    /// Pushes a test notification to this browser's own subscription.
    pub fn send_test(&self) -> Operation<TestPushResult> {
        let this = self.clone();
        Box::pin(async move {
            let Some(subscription) = this.0.card.borrow().subscription.clone() else { return Err(ControlError::NotSubscribed) };
            this.set_busy(true);
            this.say("Sending a test notification…");
            let result = this.0.backend.send_test(subscription.endpoint, subscription.keys.auth).await;
            match &result {
                Ok(TestPushResult::Delivered) => this.say("Test notification sent. It should appear in a moment."),
                Ok(TestPushResult::Gone) => {
                    if let Ok(registration) = this.registration().await {
                        if let Ok(Some(stale)) = browser::current_subscription(&registration).await {
                            let _ = browser::unsubscribe(&stale).await;
                        }
                    }
                    this.settle(
                        PushState::Ready,
                        "The push service no longer knows this subscription, so it was removed. Enable notifications to subscribe again.",
                    );
                }
                Ok(TestPushResult::Failed { reason }) => this.say(format!("The test was not delivered: {reason}")),
                Err(e) => this.say(format!("Could not send the test: {e}")),
            }
            this.set_busy(false);
            Ok(result?)
        })
    }
}
