//! The push control: the Enable / Disable / Send test notification card, and, once
//! subscribed, the topics the site offers as checkboxes (each change is saved at once).
//!
//! It runs in two places, from this one module:
//! - **Clarion's own page**: rendered on the server, hydrated, and talking to the page's
//!   server functions;
//! - **any other site, through the SDK** (`sdk/`): rendered in the browser into a shadow
//!   root, and talking to Clarion's public REST API at Clarion's origin.
//!
//! [`backend::Backend`] is the only difference between the two.
//!
//! Its state machine has four settled states (unsupported, blocked, ready, subscribed)
//! plus `Checking`, which is what the server renders: the page reads sensibly before the
//! WASM arrives, and the buttons stay disabled until it does. The browser work itself
//! (service worker, Push API, permission) is in [`controller`], in the browser builds only.

use crate::domain::{SubscriptionJson, Topic};
use leptos::prelude::*;

#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub mod backend;
#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub mod controller;

#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub use backend::Backend;
#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub use controller::ControlError;

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

/// The control's reactive state; `Copy`, so closures (and the SDK's client) share it
/// freely. The view reads the signals; the [`controller`] changes them.
#[derive(Clone, Copy)]
pub struct PushControlModel {
    state: RwSignal<PushState>,
    busy: RwSignal<bool>,
    notice: RwSignal<String>,
    subscription: RwSignal<Option<SubscriptionJson>>,
    /// The topics the site offers (none: the control shows no choices).
    topics: RwSignal<Vec<Topic>>,
    /// The topics this browser's subscription has, as the server stored them.
    chosen: RwSignal<Vec<String>>,
    /// How it reaches Clarion, where its service worker is, and who the user is.
    #[cfg(any(feature = "hydrate", feature = "sdk"))]
    link: StoredValue<controller::Link>,
    /// Cached after the first fetch.
    #[cfg(any(feature = "hydrate", feature = "sdk"))]
    vapid_key: RwSignal<Option<String>>,
}

impl PushControlModel {
    /// The model the server renders: `Checking`, nothing known yet.
    #[cfg(not(any(feature = "hydrate", feature = "sdk")))]
    pub fn server_rendered() -> Self {
        Self {
            state: RwSignal::new(PushState::Checking),
            busy: RwSignal::new(false),
            notice: RwSignal::new(String::new()),
            subscription: RwSignal::new(None),
            topics: RwSignal::new(Vec::new()),
            chosen: RwSignal::new(Vec::new()),
        }
    }

    /// Where the control stands now (not tracked).
    pub fn state(self) -> PushState {
        self.state.get_untracked()
    }

    /// Where the control stands, as a signal to watch.
    pub fn state_signal(self) -> Signal<PushState> {
        self.state.into()
    }

    /// This browser's subscription, once the server has it.
    pub fn subscription(self) -> Option<SubscriptionJson> {
        self.subscription.get_untracked()
    }

    /// The topics the site offers.
    pub fn offered_topics(self) -> Vec<Topic> {
        self.topics.get_untracked()
    }

    fn on_topic(self, name: String, on: bool) {
        #[cfg(any(feature = "hydrate", feature = "sdk"))]
        {
            let choosing = self.choose_topic(name, on);
            leptos::task::spawn_local(async move {
                let _ = choosing.await;
            });
        }
        #[cfg(not(any(feature = "hydrate", feature = "sdk")))]
        let _ = (name, on);
    }

    fn on_toggle(self) {
        #[cfg(any(feature = "hydrate", feature = "sdk"))]
        match self.state.get_untracked() {
            PushState::Ready => {
                // Ask from inside the click handler, so the browser sees the user gesture.
                let subscribing = self.subscribe(None, None);
                leptos::task::spawn_local(async move {
                    let _ = subscribing.await;
                });
            }
            PushState::Subscribed => {
                let unsubscribing = self.unsubscribe();
                leptos::task::spawn_local(async move {
                    let _ = unsubscribing.await;
                });
            }
            _ => {}
        }
    }

    fn on_send_test(self) {
        #[cfg(any(feature = "hydrate", feature = "sdk"))]
        {
            let sending = self.send_test();
            leptos::task::spawn_local(async move {
                let _ = sending.await;
            });
        }
    }
}

/// Clarion's own page's control: rendered on the server, then hydrated and connected to
/// the page's server functions and `/sw.js`.
#[cfg(any(feature = "ssr", feature = "hydrate"))]
#[component]
pub fn PushControl() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    let model = {
        let model = PushControlModel::new(Backend::ServerFunctions, controller::WorkerScript::clarion_page(), page_user_token());
        Effect::new(move |_| leptos::task::spawn_local(model.init()));
        model
    };
    #[cfg(not(feature = "hydrate"))]
    let model = PushControlModel::server_rendered();
    model.view()
}

/// The identity token in the page's `?user_token=`, if it is a plausible one.
#[cfg(feature = "hydrate")]
fn page_user_token() -> Option<String> {
    use crate::domain::audience::MAX_USER_ID_CHARS;
    crate::browser::query_parameter("user_token").filter(|t| !t.is_empty() && t.len() <= 16 * MAX_USER_ID_CHARS)
}

/// The subscription as the card shows it.
fn pretty_json(subscription: &SubscriptionJson) -> String {
    #[cfg(any(feature = "hydrate", feature = "sdk"))]
    return crate::browser::json_text(subscription, 2).unwrap_or_default();
    #[cfg(not(any(feature = "hydrate", feature = "sdk")))]
    serde_json::to_string_pretty(subscription).unwrap_or_default()
}

impl PushControlModel {
    /// The card, in whatever state the model is.
    pub fn view(self) -> impl IntoView {
        let model = self;
        let state = model.state;
        let busy = model.busy;
        let subscription_text = move || model.subscription.get().map(|s| pretty_json(&s)).unwrap_or_default();

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
                        <li>"Open this site from your Home Screen and tap Enable notifications there."</li>
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
                        // The site offers a few topics, changed rarely: rebuilding the list
                        // when they change costs less WASM than a keyed <For>.
                        {move || model.topics.get().into_iter().map(|topic| {
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
                        }).collect_view()}
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
}
