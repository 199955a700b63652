//! The push control: the Enable / Disable / Send test notification card, and, once
//! subscribed, the topics the site offers as checkboxes (each change is saved at once).
//!
//! One control, in two places:
//! - **Clarion's own page**: the Leptos view below, rendered on the server and hydrated,
//!   reaching Clarion through the page's server functions;
//! - **any other site, through the SDK** (`sdk/`): a card drawn with web-sys into a
//!   shadow root (a Leptos runtime would not fit the SDK's size budget), reaching
//!   Clarion's public REST API at Clarion's origin.
//!
//! Both draw the same [`CardState`] with the same words, and both drive the same
//! [`controller::Control`]; [`backend::Backend`] is the only difference in what they do.
//!
//! The state machine has four settled states (unsupported, blocked, ready, subscribed)
//! plus `Checking`, which is what the server renders: the page reads sensibly before the
//! WASM arrives, and the buttons stay disabled until it does.

use crate::domain::{SubscriptionJson, Topic};
#[cfg(any(feature = "ssr", feature = "hydrate"))]
use leptos::prelude::*;

#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub mod backend;
#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub mod controller;

#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub use backend::Backend;
#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub use controller::{Control, ControlError};

/// Where this browser stands with push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushState {
    /// Server-rendered, before the page has looked at the browser.
    #[default]
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

    /// How to get out of this state, when the card says more than its description.
    pub fn help(self) -> Option<&'static str> {
        match self {
            PushState::Blocked => Some("To allow them, open this site's settings (the icon to the left of the address), set Notifications to Allow, then reload the page."),
            PushState::Unsupported => Some(
                "Web push needs service workers and the Push API. Current Chrome, Edge, Firefox and Safari have both. On iPhone and iPad, first add this site to your Home Screen (Share, then Add to Home Screen) and open it from there.",
            ),
            _ => None,
        }
    }
}

/// The steps the card lists on iPhone and iPad in a tab ([`PushState::InstallFirst`]).
pub const INSTALL_STEPS: [&str; 3] = [
    "Tap the Share button in Safari's toolbar.",
    "Choose Add to Home Screen, then Add.",
    "Open this site from your Home Screen and tap Enable notifications there.",
];

/// The card's fixed words, for both renderings of it.
pub mod words {
    pub const HEADING: &str = "Notifications on this device";
    pub const SEND_TEST: &str = "Send test notification";
    pub const TOPICS: &str = "Notify me about";
    pub const SUBSCRIPTION: &str = "This browser's subscription";
}

/// Everything the card shows. The [`controller`] changes it; the page's Leptos view and
/// the SDK's card render it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CardState {
    pub state: PushState,
    /// An operation is running: the buttons wait.
    pub busy: bool,
    /// How the last operation went, in words (empty: nothing to say).
    pub notice: String,
    /// This browser's subscription, once Clarion has it.
    pub subscription: Option<SubscriptionJson>,
    /// The subscription as the card shows it (`JSON.stringify(subscription, null, 2)`).
    pub subscription_text: String,
    /// The topics the site offers (none: the card shows no choices).
    pub topics: Vec<Topic>,
    /// The topics this browser's subscription has, as Clarion stored them.
    pub chosen: Vec<String>,
}

impl CardState {
    /// Whether the topic choices show.
    pub fn offers_topics(&self) -> bool {
        self.state == PushState::Subscribed && !self.topics.is_empty()
    }

    /// Whether the main button does anything now.
    pub fn toggle_enabled(&self) -> bool {
        !self.busy && self.state.toggle_enabled()
    }

    /// Whether "Send test notification" does anything now.
    pub fn send_test_enabled(&self) -> bool {
        !self.busy && self.state == PushState::Subscribed
    }
}

/// Clarion's own page's control: rendered on the server (`Checking`), then hydrated and
/// connected to the page's server functions and `/sw.js`. It is an island: the page's
/// bundle holds this and nothing else of the page.
#[cfg(any(feature = "ssr", feature = "hydrate"))]
#[island]
pub fn PushControl() -> impl IntoView {
    let card = RwSignal::new(CardState::default());
    #[cfg(feature = "hydrate")]
    let actions = {
        let control = Control::new(Backend::ServerFunctions, controller::WorkerScript::clarion_page(), page_user_token());
        control.watch(move |now| card.set(now.clone()));
        let control = StoredValue::new_local(control);
        // After hydration: the server rendered `Checking`, and so must the first frame.
        Effect::new(move |_| control.with_value(Control::start));
        Actions(control)
    };
    #[cfg(not(feature = "hydrate"))]
    let actions = Actions();
    card_view(card, actions)
}

/// What the page's buttons do: the controller's operations in the browser, nothing on
/// the server.
#[cfg(any(feature = "ssr", feature = "hydrate"))]
#[derive(Clone, Copy)]
struct Actions(#[cfg(feature = "hydrate")] StoredValue<Control, LocalStorage>);

#[cfg(any(feature = "ssr", feature = "hydrate"))]
impl Actions {
    fn toggle(self) {
        #[cfg(feature = "hydrate")]
        self.0.with_value(Control::toggle);
    }

    fn send_test(self) {
        #[cfg(feature = "hydrate")]
        self.0.with_value(|control| control.run(control.send_test()));
    }

    fn choose_topic(self, name: String, on: bool) {
        #[cfg(feature = "hydrate")]
        self.0.with_value(|control| control.run(control.choose_topic(name, on)));
        #[cfg(not(feature = "hydrate"))]
        let _ = (name, on);
    }
}

/// The identity token in the page's `?user_token=`, if it is a plausible one.
#[cfg(feature = "hydrate")]
fn page_user_token() -> Option<String> {
    use crate::domain::audience::MAX_USER_ID_CHARS;
    crate::browser::query_parameter("user_token").filter(|t| !t.is_empty() && t.len() <= 16 * MAX_USER_ID_CHARS)
}

/// The card, as Clarion's page renders it.
#[cfg(any(feature = "ssr", feature = "hydrate"))]
fn card_view(card: RwSignal<CardState>, actions: Actions) -> impl IntoView {
    let state = move || card.with(|c| c.state);
    view! {
        <section class="push-card" aria-labelledby="push-heading" data-testid="push-control" data-state=move || state().key()>
            <h2 id="push-heading">{words::HEADING}</h2>
            <div class="status" role="status" aria-live="polite" aria-atomic="true" data-testid="push-status">
                <span class="state-badge" data-state=move || state().key()>{move || state().label()}</span>
                <span class="state-text">{move || state().description()}</span>
                <Show when=move || card.with(|c| !c.notice.is_empty())>
                    <p class="notice" data-testid="push-notice">{move || card.with(|c| c.notice.clone())}</p>
                </Show>
            </div>
            <Show when=move || state() == PushState::Blocked>
                <p class="help" data-testid="blocked-help">{PushState::Blocked.help()}</p>
            </Show>
            <Show when=move || state() == PushState::InstallFirst>
                <ol class="help install-steps" data-testid="install-help">
                    {INSTALL_STEPS.map(|step| view! { <li>{step}</li> })}
                </ol>
            </Show>
            <Show when=move || state() == PushState::Unsupported>
                <p class="help" data-testid="unsupported-help">{PushState::Unsupported.help()}</p>
            </Show>
            <noscript>
                <p class="help">"Turning notifications on needs JavaScript."</p>
            </noscript>
            <div class="actions">
                <button
                    type="button"
                    class="primary"
                    data-testid="push-toggle"
                    aria-busy=move || card.with(|c| c.busy).to_string()
                    disabled=move || card.with(|c| !c.toggle_enabled())
                    on:click=move |_| actions.toggle()
                >
                    {move || state().toggle_label()}
                </button>
                <button
                    type="button"
                    data-testid="send-test"
                    disabled=move || card.with(|c| !c.send_test_enabled())
                    on:click=move |_| actions.send_test()
                >
                    {words::SEND_TEST}
                </button>
            </div>
            <Show when=move || card.with(CardState::offers_topics)>
                <fieldset class="topics" data-testid="topic-choices">
                    <legend>{words::TOPICS}</legend>
                    <For each=move || card.with(|c| c.topics.clone()) key=|topic| topic.name.clone() let:topic>
                        {
                            let id = format!("topic-{}", topic.name);
                            let label_for = id.clone();
                            let (name, ticked) = (topic.name.clone(), topic.name.clone());
                            view! {
                                <label class="check" for=label_for>
                                    <input id=id type="checkbox" data-testid="topic-choice" value=topic.name.clone()
                                        disabled=move || card.with(|c| c.busy)
                                        prop:checked=move || card.with(|c| c.chosen.contains(&ticked))
                                        on:change=move |ev| actions.choose_topic(name.clone(), event_target_checked(&ev)) />
                                    <span>{topic.label.clone()}</span>
                                    {(!topic.description.is_empty()).then(|| view! { <small class="help">{topic.description.clone()}</small> })}
                                </label>
                            }
                        }
                    </For>
                </fieldset>
            </Show>
            <Show when=move || card.with(|c| c.subscription.is_some())>
                <details class="subscription" open>
                    <summary>{words::SUBSCRIPTION}</summary>
                    <pre data-testid="subscription-json">{move || card.with(|c| c.subscription_text.clone())}</pre>
                </details>
            </Show>
        </section>
    }
}
