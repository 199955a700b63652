//! Clarion's SDK: the push control of Clarion's page, for any website.
//!
//! `GET /sdk.js` on Clarion is a few lines of loader around this crate's wasm-bindgen
//! output (see `scripts/build-sdk.sh`). A site calls
//! `connect({ server?, site?, serviceWorker, userToken? })` and gets a [`Client`]: the push
//! control of Clarion's page ([`Control`]), with its operations as promises and its card
//! as [`Client::mount`] ([`card`]). What the control does is in the `clarion` crate,
//! built with its `sdk` feature; this crate translates between JavaScript and Rust, and
//! draws the card.
//!
//! It loads on every page of a site, so it is built small: no Leptos runtime and no JSON
//! or serde code (the browser's own `JSON` does that), which the size budget in the README
//! needs.
#![cfg(target_arch = "wasm32")]

mod card;

use clarion::browser;
use clarion::components::push_control::controller::WorkerScript;
use clarion::components::push_control::{Backend, Control, ControlError, PushState};
use clarion::domain::access::{is_site_name, DEFAULT_SITE};
use clarion::domain::TestPushResult;
use js_sys::{Array, Function, Promise, Reflect};
use std::cell::{Cell, RefCell};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::Element;

/// Connects to Clarion, registers the site's worker, and reconciles this browser's
/// subscription with Clarion (the same rules as Clarion's page). Resolves to a
/// [`Client`] once it knows where this browser stands.
#[wasm_bindgen]
pub async fn connect(options: JsValue) -> Result<Client, JsValue> {
    let options = ConnectOptions::read(&options)?;
    let control = Control::new(Backend::Rest { api: options.api }, WorkerScript { url: options.worker, scope: None }, options.user_token);
    control.init().await;
    Ok(Client { control, cards: RefCell::new(Vec::new()) })
}

/// What `connect` was given, checked.
struct ConnectOptions {
    /// The site's REST API at Clarion's origin: `…/api/v1`, or `…/api/v1/sites/{site}`.
    api: String,
    /// The site's worker, with Clarion's origin in its `clarion` parameter and the site in
    /// its `clarion_site` one: that is how the imported `sw.js` learns where to send its
    /// reports.
    worker: String,
    user_token: Option<String>,
}

impl ConnectOptions {
    fn read(options: &JsValue) -> Result<Self, JsValue> {
        let server = string_member(options, "server")?.ok_or_else(|| type_error("connect: options.server is missing"))?;
        let server = web_sys::Url::new(&server).map_err(|_| type_error(&format!("connect: options.server is not a URL: {server}")))?;
        if !matches!(server.protocol().as_str(), "https:" | "http:") {
            return Err(type_error("connect: options.server must be an https: (or http:) origin"));
        }
        let origin = server.origin();
        let worker = string_member(options, "serviceWorker")?.ok_or_else(|| {
            type_error(
                "connect: options.serviceWorker is missing: the path of this site's worker file, the one line that imports Clarion's sw.js",
            )
        })?;
        let page = web_sys::window().ok_or_else(|| type_error("connect: there is no window"))?.location();
        let page_url = page.href()?;
        let worker_url = web_sys::Url::new_with_base(&worker, &page_url)
            .map_err(|_| type_error(&format!("connect: options.serviceWorker is not a path: {worker}")))?;
        if worker_url.origin() != page.origin()? {
            return Err(type_error(
                "connect: options.serviceWorker must be a file on this site (browsers only run workers from the page's own origin)",
            ));
        }
        let site = string_member(options, "site")?.unwrap_or_else(|| DEFAULT_SITE.to_string());
        if !is_site_name(&site) {
            return Err(type_error(&format!("connect: options.site is not a site's name (1 to 40 of a-z, 0-9 and '-'): {site}")));
        }
        worker_url.search_params().set("clarion", &origin);
        // `default`'s paths are the unprefixed ones, which every Clarion answers.
        let api = if site == DEFAULT_SITE {
            format!("{origin}/api/v1")
        } else {
            worker_url.search_params().set("clarion_site", &site);
            format!("{origin}/api/v1/sites/{site}")
        };
        Ok(Self { api, worker: worker_url.href(), user_token: string_member(options, "userToken")? })
    }
}

/// A connected push control: its state and subscription, its operations, and its card.
#[wasm_bindgen]
pub struct Client {
    control: Control,
    /// The cards mounted, by host element.
    cards: RefCell<Vec<(Element, card::Card)>>,
}

#[wasm_bindgen]
impl Client {
    /// `"unsupported" | "blocked" | "ready" | "subscribed"`.
    pub fn state(&self) -> String {
        sdk_state(self.control.state()).to_string()
    }

    /// This browser's `PushSubscription.toJSON()`, or `null` when it is not subscribed.
    pub fn subscription(&self) -> JsValue {
        subscription_of(&self.control)
    }

    /// The topics the site offers: `[{ name, label, description, default }]`.
    pub fn topics(&self) -> Array {
        self.control
            .card()
            .topics
            .iter()
            .map(|topic| {
                browser::object(&[
                    ("name", topic.name.as_str().into()),
                    ("label", topic.label.as_str().into()),
                    ("description", topic.description.as_str().into()),
                    ("default", topic.default.into()),
                ])
            })
            .collect()
    }

    /// Asks for permission, subscribes with Clarion's VAPID key and stores the
    /// subscription on Clarion, with `topics` and `userToken` when given. Resolves to the
    /// subscription JSON. Call it from a click handler: browsers only prompt then.
    pub fn subscribe(&self, options: JsValue) -> Promise {
        let (topics, user_token) = match (topics_member(&options), string_member(&options, "userToken")) {
            (Ok(topics), Ok(user_token)) => (topics, user_token),
            (Err(e), _) | (_, Err(e)) => return Promise::reject(&e),
        };
        let subscribing = self.control.subscribe(topics, user_token);
        let control = self.control.clone();
        future_to_promise(async move {
            subscribing.await.map_err(js_error)?;
            Ok(subscription_of(&control))
        })
    }

    /// Unsubscribes in the browser and deletes the subscription on Clarion.
    pub fn unsubscribe(&self) -> Promise {
        let unsubscribing = self.control.unsubscribe();
        future_to_promise(async move { unsubscribing.await.map(|()| JsValue::UNDEFINED).map_err(js_error) })
    }

    /// Saves a new topic set for this subscription; resolves to the set Clarion stored.
    #[wasm_bindgen(js_name = setTopics)]
    pub fn set_topics(&self, topics: JsValue) -> Promise {
        let topics = match string_array(&topics, "setTopics: topics") {
            Ok(topics) => topics,
            Err(e) => return Promise::reject(&e),
        };
        let saving = self.control.set_topics(topics);
        future_to_promise(async move { saving.await.map(|t| browser::string_array(&t)).map_err(js_error) })
    }

    /// Unbinds this browser from the signed-in user (call it when the user signs out of
    /// your site): the subscription stays, with its topics, but sends to that user no
    /// longer reach it. Resolves once Clarion has unbound it.
    #[wasm_bindgen(js_name = signOut)]
    pub fn sign_out(&self) -> Promise {
        let signing_out = self.control.sign_out();
        future_to_promise(async move { signing_out.await.map(|()| JsValue::UNDEFINED).map_err(js_error) })
    }

    /// Pushes a test notification to this browser; resolves to
    /// `{ outcome: "delivered" | "gone" | "failed", reason? }`.
    #[wasm_bindgen(js_name = sendTest)]
    pub fn send_test(&self) -> Promise {
        let sending = self.control.send_test();
        future_to_promise(async move {
            Ok(match sending.await.map_err(js_error)? {
                TestPushResult::Delivered => browser::object(&[("outcome", "delivered".into())]),
                TestPushResult::Gone => browser::object(&[("outcome", "gone".into())]),
                TestPushResult::Failed { reason } => browser::object(&[("outcome", "failed".into()), ("reason", reason.into())]),
            })
        })
    }

    /// Renders Clarion's push control into `element`, inside a shadow root of its own.
    /// Mounting into the same element again replaces the card.
    pub fn mount(&self, element: Element) -> Result<(), JsValue> {
        self.cards.borrow_mut().retain(|(host, _)| *host != element);
        let card = card::mount(&self.control, &element)?;
        self.cards.borrow_mut().push((element, card));
        Ok(())
    }

    /// Calls `callback(state)` on every change of state. Returns a function that stops it.
    #[wasm_bindgen(js_name = onChange)]
    pub fn on_change(&self, callback: Function) -> Function {
        let last = Cell::new(self.control.state());
        let watch = self.control.watch(move |card| {
            if last.replace(card.state) != card.state {
                let _ = callback.call1(&JsValue::NULL, &JsValue::from_str(sdk_state(card.state)));
            }
        });
        let control = self.control.clone();
        Closure::once_into_js(move || control.unwatch(watch)).unchecked_into()
    }
}

/// The control's subscription as `PushSubscription.toJSON()` gave it, or `null`.
fn subscription_of(control: &Control) -> JsValue {
    let card = control.card();
    match card.subscription {
        Some(_) => js_sys::JSON::parse(&card.subscription_text).unwrap_or(JsValue::NULL),
        None => JsValue::NULL,
    }
}

/// The SDK's names for the control's states.
fn sdk_state(state: PushState) -> &'static str {
    match state {
        // iOS in a tab: no push until the site is on the Home Screen.
        PushState::Unsupported | PushState::InstallFirst => "unsupported",
        PushState::Blocked => "blocked",
        // `Checking` ends before `connect` resolves.
        PushState::Ready | PushState::Checking => "ready",
        PushState::Subscribed => "subscribed",
    }
}

/// A rejection scripts can tell apart: an `Error` named `ClarionError`, with a `code`.
fn js_error(e: ControlError) -> JsValue {
    let error = js_sys::Error::new(&e.to_string());
    error.set_name("ClarionError");
    let _ = Reflect::set(&error, &JsValue::from_str("code"), &JsValue::from_str(e.code()));
    error.into()
}

fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

/// `options[name]` as a string; absent, `undefined` and `null` are `None`.
fn string_member(options: &JsValue, name: &str) -> Result<Option<String>, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    let value = Reflect::get(options, &JsValue::from_str(name))?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value.as_string().map(Some).ok_or_else(|| type_error(&format!("{name} must be a string")))
}

/// `options.topics` as a list of names, when given.
fn topics_member(options: &JsValue) -> Result<Option<Vec<String>>, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    let value = Reflect::get(options, &JsValue::from_str("topics"))?;
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    string_array(&value, "subscribe: topics").map(Some)
}

fn string_array(value: &JsValue, what: &str) -> Result<Vec<String>, JsValue> {
    if !Array::is_array(value) {
        return Err(type_error(&format!("{what} must be an array of topic names")));
    }
    Array::from(value)
        .iter()
        .map(|name| name.as_string().ok_or_else(|| type_error(&format!("{what} must be an array of topic names"))))
        .collect()
}
