//! The push control: the page's Enable / Disable / Send test notification card, and, once
//! subscribed, the topics the site offers as checkboxes (each change is saved at once).
//!
//! Its state machine has four settled states (unsupported, blocked, ready, subscribed)
//! plus `Checking`, which is what the server renders: the page reads sensibly before the
//! WASM arrives, and the buttons stay disabled until it does. The browser work itself
//! (service worker, Push API, permission) runs only in the hydrate build.

use crate::domain::{SubscriptionJson, Topic};
use leptos::prelude::*;

/// Where this browser stands with push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushState {
    /// Server-rendered, before the page has looked at the browser.
    Checking,
    /// No service worker, PushManager or Notification API.
    Unsupported,
    /// iOS Safari in a tab: push works only once the site is added to the Home Screen.
    InstallFirst,
    /// The user denied notification permission.
    Blocked,
    /// Supported and allowed (or not yet asked), not subscribed.
    Ready,
    /// Subscribed, and the server has the subscription.
    Subscribed,
}

impl PushState {
    /// Stable name for `data-state` (tests and styles use it).
    pub fn key(self) -> &'static str {
        match self {
            PushState::Checking => "checking",
            PushState::Unsupported => "unsupported",
            PushState::InstallFirst => "install",
            PushState::Blocked => "blocked",
            PushState::Ready => "ready",
            PushState::Subscribed => "subscribed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            PushState::Checking => "Checking…",
            PushState::Unsupported => "Not supported",
            PushState::InstallFirst => "Add to Home Screen",
            PushState::Blocked => "Blocked",
            PushState::Ready => "Off",
            PushState::Subscribed => "On",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PushState::Checking => "Checking whether this browser can receive push notifications…",
            PushState::Unsupported => "This browser cannot receive web push notifications.",
            PushState::InstallFirst => "On iPhone and iPad, notifications work once this site is on your Home Screen.",
            PushState::Blocked => "Notifications are blocked for this site.",
            PushState::Ready => "Notifications are off for this browser.",
            PushState::Subscribed => "Notifications are on for this browser.",
        }
    }

    /// Text of the main button.
    pub fn toggle_label(self) -> &'static str {
        match self {
            PushState::Subscribed => "Disable notifications",
            _ => "Enable notifications",
        }
    }

    /// Whether the main button does anything in this state.
    pub fn toggle_enabled(self) -> bool {
        matches!(self, PushState::Ready | PushState::Subscribed)
    }
}

/// The component's reactive state; `Copy`, so closures can share it freely.
#[derive(Clone, Copy)]
struct PushControlModel {
    state: RwSignal<PushState>,
    busy: RwSignal<bool>,
    notice: RwSignal<String>,
    subscription: RwSignal<Option<SubscriptionJson>>,
    /// The topics the site offers (none: the page shows no choices).
    topics: RwSignal<Vec<Topic>>,
    /// The topics this browser's subscription has, as the server stored them.
    chosen: RwSignal<Vec<String>>,
    /// Cached after the first fetch; only the browser build reads it.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    vapid_key: RwSignal<Option<String>>,
}

impl PushControlModel {
    fn new() -> Self {
        Self {
            state: RwSignal::new(PushState::Checking),
            busy: RwSignal::new(false),
            notice: RwSignal::new(String::new()),
            subscription: RwSignal::new(None),
            topics: RwSignal::new(Vec::new()),
            chosen: RwSignal::new(Vec::new()),
            vapid_key: RwSignal::new(None),
        }
    }

    fn on_topic(self, name: String, on: bool) {
        #[cfg(feature = "hydrate")]
        self.choose_topic(name, on);
        #[cfg(not(feature = "hydrate"))]
        let _ = (name, on);
    }

    fn on_toggle(self) {
        #[cfg(feature = "hydrate")]
        match self.state.get_untracked() {
            PushState::Ready => self.enable(),
            PushState::Subscribed => self.disable(),
            _ => {}
        }
    }

    fn on_send_test(self) {
        #[cfg(feature = "hydrate")]
        self.send_test();
    }
}

#[component]
pub fn PushControl() -> impl IntoView {
    let model = PushControlModel::new();
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(model.init());
    });

    let state = model.state;
    let busy = model.busy;
    let subscription_text =
        move || model.subscription.get().map(|s| serde_json::to_string_pretty(&s).unwrap_or_default()).unwrap_or_default();

    view! {
        <section class="push-card" aria-labelledby="push-heading" data-testid="push-control" data-state=move || state.get().key()>
            <h2 id="push-heading">"Notifications on this device"</h2>
            <div class="status" role="status" aria-live="polite" aria-atomic="true" data-testid="push-status">
                <span class="state-badge" data-state=move || state.get().key()>{move || state.get().label()}</span>
                <span class="state-text">{move || state.get().description()}</span>
                <Show when=move || !model.notice.get().is_empty()>
                    <p class="notice" data-testid="push-notice">{move || model.notice.get()}</p>
                </Show>
            </div>
            <Show when=move || state.get() == PushState::Blocked>
                <p class="help" data-testid="blocked-help">
                    "To allow them, open this site's settings (the icon to the left of the address), set Notifications to Allow, then reload the page."
                </p>
            </Show>
            <Show when=move || state.get() == PushState::InstallFirst>
                <ol class="help install-steps" data-testid="install-help">
                    <li>"Tap the Share button in Safari's toolbar."</li>
                    <li>"Choose " <strong>"Add to Home Screen"</strong> ", then Add."</li>
                    <li>"Open Clarion from your Home Screen and tap Enable notifications there."</li>
                </ol>
            </Show>
            <Show when=move || state.get() == PushState::Unsupported>
                <p class="help" data-testid="unsupported-help">
                    "Web push needs service workers and the Push API. Current Chrome, Edge, Firefox and Safari have both. On iPhone and iPad, first add this site to your Home Screen (Share, then Add to Home Screen) and open it from there."
                </p>
            </Show>
            <noscript>
                <p class="help">"Turning notifications on needs JavaScript."</p>
            </noscript>
            <div class="actions">
                <button
                    type="button"
                    class="primary"
                    data-testid="push-toggle"
                    aria-busy=move || busy.get().to_string()
                    disabled=move || busy.get() || !state.get().toggle_enabled()
                    on:click=move |_| model.on_toggle()
                >
                    {move || state.get().toggle_label()}
                </button>
                <button
                    type="button"
                    data-testid="send-test"
                    disabled=move || busy.get() || state.get() != PushState::Subscribed
                    on:click=move |_| model.on_send_test()
                >
                    "Send test notification"
                </button>
            </div>
            <Show when=move || state.get() == PushState::Subscribed && !model.topics.with(Vec::is_empty)>
                <fieldset class="topics" data-testid="topic-choices">
                    <legend>"Notify me about"</legend>
                    <For each=move || model.topics.get() key=|topic| topic.name.clone() let:topic>
                        {
                            let id = format!("topic-{}", topic.name);
                            let label_for = id.clone();
                            let (name, ticked) = (topic.name.clone(), topic.name.clone());
                            view! {
                                <label class="check" for=label_for>
                                    <input id=id type="checkbox" data-testid="topic-choice" value=topic.name.clone()
                                        disabled=move || busy.get()
                                        prop:checked=move || model.chosen.with(|c| c.contains(&ticked))
                                        on:change=move |ev| model.on_topic(name.clone(), event_target_checked(&ev)) />
                                    <span>{topic.label.clone()}</span>
                                    {(!topic.description.is_empty()).then(|| view! { <small class="help">{topic.description.clone()}</small> })}
                                </label>
                            }
                        }
                    </For>
                </fieldset>
            </Show>
            <Show when=move || model.subscription.get().is_some()>
                <details class="subscription" open>
                    <summary>"This browser's subscription"</summary>
                    <pre data-testid="subscription-json">{subscription_text}</pre>
                </details>
            </Show>
        </section>
    }
}

#[cfg(feature = "hydrate")]
mod controller {
    //! The browser side of the control: what each button does.

    use super::{PushControlModel, PushState};
    use crate::api;
    use crate::browser::{self, BrowserError};
    use crate::domain::audience::MAX_USER_ID_CHARS;
    use crate::domain::{base64url, TestPushResult};
    use leptos::prelude::*;
    use leptos::server_fn::error::ServerFnError;
    use leptos::task::spawn_local;
    use web_sys::{NotificationPermission, PushSubscription};

    fn server_message(e: ServerFnError) -> String {
        match e {
            ServerFnError::ServerError(message) => message,
            other => other.to_string(),
        }
    }

    impl From<ServerFnError> for BrowserError {
        fn from(e: ServerFnError) -> Self {
            BrowserError(server_message(e))
        }
    }

    impl PushControlModel {
        fn settle(self, state: PushState, notice: impl Into<String>) {
            self.state.set(state);
            self.notice.set(notice.into());
            if state != PushState::Subscribed {
                self.subscription.set(None);
            }
        }

        async fn vapid_key(self) -> Result<String, BrowserError> {
            if let Some(key) = self.vapid_key.get_untracked() {
                return Ok(key);
            }
            let key = api::vapid_public_key().await?;
            self.vapid_key.set(Some(key.clone()));
            Ok(key)
        }

        /// Sends the subscription to the server (with the page's identity token, if it
        /// was given one) and shows it and its topics.
        async fn save(self, subscription: &PushSubscription) -> Result<(), BrowserError> {
            let json = browser::subscription_json(subscription)?;
            let token = browser::query_parameter("user_token").filter(|t| !t.is_empty() && t.len() <= 16 * MAX_USER_ID_CHARS);
            let saved = api::save_subscription(json.clone(), None, token).await?;
            self.chosen.set(saved.topics);
            self.subscription.set(Some(json));
            self.state.set(PushState::Subscribed);
            Ok(())
        }

        /// Ticks or unticks one topic and saves the whole set at once.
        pub(super) fn choose_topic(self, name: String, on: bool) {
            let Some(subscription) = self.subscription.get_untracked() else { return };
            let mut topics = self.chosen.get_untracked();
            topics.retain(|t| *t != name);
            if on {
                topics.push(name);
            }
            self.busy.set(true);
            spawn_local(async move {
                match api::save_topics(subscription.endpoint, subscription.keys.auth, topics).await {
                    Ok(stored) => {
                        self.chosen.set(stored);
                        self.notice.set("Your topics are saved.".into());
                    }
                    Err(e) => {
                        // Show what the server has, not what was clicked.
                        self.chosen.update(|_| {});
                        self.notice.set(format!("Could not save your topics: {}", server_message(e)));
                    }
                }
                self.busy.set(false);
            });
        }

        /// On load: register the worker, then reconcile the browser's subscription with
        /// the server's key and records.
        pub(super) async fn init(self) {
            // iOS offers push only to Home Screen apps; a button here could never work.
            if browser::is_ios() && !browser::is_standalone() {
                self.settle(PushState::InstallFirst, "");
                return;
            }
            if !browser::push_supported() {
                self.settle(PushState::Unsupported, "");
                return;
            }
            if let Ok(topics) = api::topics().await {
                self.topics.set(topics);
            }
            if let Err(e) = self.sync().await {
                self.settle(PushState::Ready, format!("Could not check this browser's subscription: {e}"));
            }
        }

        async fn sync(self) -> Result<(), BrowserError> {
            let registration = browser::register_service_worker().await?;
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
                return self.save(&existing).await;
            }
            // The server's VAPID key changed: the old subscription can never be pushed to.
            let old_endpoint = existing.endpoint();
            browser::unsubscribe(&existing).await?;
            let _ = api::delete_subscription(old_endpoint).await;
            if permission != NotificationPermission::Granted {
                self.settle(PushState::Ready, "The server's key changed; enable notifications again.");
                return Ok(());
            }
            let renewed = browser::subscribe(&registration, &key).await?;
            self.save(&renewed).await?;
            self.notice.set("The server's key changed, so this browser subscribed again.".into());
            Ok(())
        }

        pub(super) fn enable(self) {
            // Ask from inside the click handler, so the browser sees the user gesture.
            let prompt = match browser::request_permission() {
                Ok(prompt) => prompt,
                Err(e) => return self.notice.set(format!("Could not ask for permission: {e}")),
            };
            self.busy.set(true);
            spawn_local(async move {
                match self.subscribe_after(prompt).await {
                    Ok(()) => {}
                    Err(e) => self.notice.set(format!("Could not enable notifications: {e}")),
                }
                self.busy.set(false);
            });
        }

        async fn subscribe_after(self, prompt: js_sys::Promise) -> Result<(), BrowserError> {
            match browser::permission_answer(prompt).await? {
                NotificationPermission::Granted => {}
                NotificationPermission::Denied => {
                    self.settle(PushState::Blocked, "You blocked notifications for this site.");
                    return Ok(());
                }
                _ => {
                    self.settle(PushState::Ready, "Permission was not given. Click Enable notifications to be asked again.");
                    return Ok(());
                }
            }
            let registration = browser::registration().await?;
            let key = self.vapid_key().await?;
            let subscription = browser::subscribe(&registration, &key).await?;
            self.save(&subscription).await?;
            self.notice.set("Notifications are on. Try Send test notification.".into());
            Ok(())
        }

        pub(super) fn disable(self) {
            self.busy.set(true);
            spawn_local(async move {
                let known_endpoint = self.subscription.get_untracked().map(|s| s.endpoint);
                let in_browser = match browser::registration().await {
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
                    Some(endpoint) => api::delete_subscription(endpoint).await.map(|_| ()).map_err(BrowserError::from),
                    None => Ok(()),
                };
                match (browser_result, server_result) {
                    (Ok(()), Ok(())) => self.settle(PushState::Ready, "Notifications are off. The server has forgotten this browser."),
                    (Err(b), Ok(())) => {
                        self.settle(PushState::Ready, format!("The server forgot this browser, but the browser could not unsubscribe: {b}"))
                    }
                    (Ok(()), Err(s)) => self.settle(
                        PushState::Ready,
                        format!("This browser unsubscribed, but the server could not delete the subscription: {s}"),
                    ),
                    (Err(b), Err(s)) => self.notice.set(format!("Could not disable notifications. Browser: {b}. Server: {s}")),
                }
                self.busy.set(false);
            });
        }

        pub(super) fn send_test(self) {
            let Some(subscription) = self.subscription.get_untracked() else { return };
            self.busy.set(true);
            self.notice.set("Sending a test notification…".into());
            spawn_local(async move {
                match api::send_test_notification(subscription.endpoint.clone(), subscription.keys.auth.clone()).await {
                    Ok(TestPushResult::Delivered) => self.notice.set("Test notification sent. It should appear in a moment.".into()),
                    Ok(TestPushResult::Gone) => {
                        if let Ok(registration) = browser::registration().await {
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
                    Err(e) => self.notice.set(format!("Could not send the test: {}", server_message(e))),
                }
                self.busy.set(false);
            });
        }
    }
}
