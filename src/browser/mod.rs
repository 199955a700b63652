//! Browser APIs, compiled only for the browser builds (the page's `hydrate`, the SDK's
//! `sdk`): the Push API, service worker registration and notification permission,
//! through web-sys.
//!
//! Every function turns JavaScript exceptions into a [`BrowserError`] carrying the
//! exception's name and message, so the page can say what failed.

use crate::domain::{base64url, SubscriptionJson, SubscriptionKeysJson};
use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Notification, NotificationPermission, PushSubscription, PushSubscriptionOptionsInit, RegistrationOptions, ServiceWorkerRegistration,
    ServiceWorkerState,
};

/// A failed browser call, in words.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserError(pub String);

impl std::fmt::Display for BrowserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<JsValue> for BrowserError {
    fn from(value: JsValue) -> Self {
        if let Some(error) = value.dyn_ref::<js_sys::Error>() {
            return BrowserError(format!("{}: {}", String::from(error.name()), String::from(error.message())));
        }
        BrowserError(value.as_string().unwrap_or_else(|| format!("{value:?}")))
    }
}

type Result<T> = std::result::Result<T, BrowserError>;

fn window() -> Result<web_sys::Window> {
    web_sys::window().ok_or_else(|| BrowserError("no window".into()))
}

/// The value of `name` in the page's query string, if present.
pub fn query_parameter(name: &str) -> Option<String> {
    let search = window().ok()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search).ok()?.get(name)
}

/// True when this browser has service workers, the Push API and notifications.
pub fn push_supported() -> bool {
    let Ok(window) = window() else { return false };
    let has = |target: &JsValue, name: &str| Reflect::has(target, &JsValue::from_str(name)).unwrap_or(false);
    has(window.navigator().as_ref(), "serviceWorker") && has(window.as_ref(), "PushManager") && has(window.as_ref(), "Notification")
}

/// The notification permission as the page sees it now.
pub fn permission() -> NotificationPermission {
    Notification::permission()
}

/// Starts the permission prompt. Call it synchronously from a click handler, so the
/// browser sees the user gesture, and await the promise afterwards.
pub fn request_permission() -> Result<Promise> {
    Ok(Notification::request_permission()?)
}

/// Awaits the prompt started by [`request_permission`].
pub async fn permission_answer(prompt: Promise) -> Result<NotificationPermission> {
    let answer = JsFuture::from(prompt).await?;
    Ok(match answer.as_string().as_deref() {
        Some("granted") => NotificationPermission::Granted,
        Some("denied") => NotificationPermission::Denied,
        _ => NotificationPermission::Default,
    })
}

/// Registers the service worker at `script` (with `scope`, or the browser's default: the
/// script's folder) and waits until it is active. Registering a worker that already is
/// registered is a no-op, so every caller may do it.
///
/// It waits on the registration itself rather than `navigator.serviceWorker.ready`, which
/// only settles for a worker whose scope covers this page.
pub async fn register_service_worker(script: &str, scope: Option<&str>) -> Result<ServiceWorkerRegistration> {
    let container = window()?.navigator().service_worker();
    let options = RegistrationOptions::new();
    if let Some(scope) = scope {
        options.set_scope(scope);
    }
    let registration: ServiceWorkerRegistration = JsFuture::from(container.register_with_options(script, &options)).await?.unchecked_into();
    while registration.active().is_none() {
        let Some(worker) = registration.installing().or_else(|| registration.waiting()) else {
            return Err(BrowserError(format!("the service worker {script} did not install")));
        };
        let changed = Promise::new(&mut |resolve, _| {
            let _ = worker.add_event_listener_with_callback("statechange", &resolve);
        });
        JsFuture::from(changed).await?;
        if worker.state() == ServiceWorkerState::Redundant && registration.active().is_none() {
            return Err(BrowserError(format!("the service worker {script} failed to install; the browser's console says why")));
        }
    }
    Ok(registration)
}

/// The browser's current push subscription, if any.
pub async fn current_subscription(registration: &ServiceWorkerRegistration) -> Result<Option<PushSubscription>> {
    let value = JsFuture::from(registration.push_manager()?.get_subscription()?).await?;
    Ok(if value.is_null() || value.is_undefined() { None } else { Some(value.unchecked_into()) })
}

/// The VAPID key, base64url as the server gives it, as the bytes `applicationServerKey` takes.
pub fn application_server_key(vapid_public_key: &str) -> Result<Uint8Array> {
    let bytes = base64url::decode(vapid_public_key).map_err(|e| BrowserError(format!("VAPID key: {e}")))?;
    Ok(Uint8Array::from(bytes.as_slice()))
}

/// Subscribes with `userVisibleOnly` and the server's key.
pub async fn subscribe(registration: &ServiceWorkerRegistration, vapid_public_key: &str) -> Result<PushSubscription> {
    let options = PushSubscriptionOptionsInit::new();
    options.set_user_visible_only(true);
    options.set_application_server_key(&application_server_key(vapid_public_key)?.into());
    let value = JsFuture::from(registration.push_manager()?.subscribe_with_options(&options)?).await?;
    Ok(value.unchecked_into())
}

/// The `applicationServerKey` a subscription was made with, if the browser reports it.
pub fn subscription_server_key(subscription: &PushSubscription) -> Option<Vec<u8>> {
    let buffer = subscription.options().application_server_key().ok()??;
    Some(Uint8Array::new(&buffer).to_vec())
}

/// `subscription.toJSON()` as the shared wire type.
pub fn subscription_json(subscription: &PushSubscription) -> Result<SubscriptionJson> {
    let json: JsValue = subscription.to_json()?.into();
    let keys = member(&json, "keys");
    Ok(SubscriptionJson {
        endpoint: subscription.endpoint(),
        expiration_time: member(&json, "expirationTime").as_f64(),
        keys: SubscriptionKeysJson { p256dh: string_member(&keys, "p256dh")?, auth: string_member(&keys, "auth")? },
    })
}

// Plain JavaScript values (what `JSON.parse` gives), read and built member by member: the
// browser's own `JSON` does the text, so the SDK's WASM carries no JSON or serde code.

/// `value[name]`, or `undefined`.
pub fn member(value: &JsValue, name: &str) -> JsValue {
    Reflect::get(value, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// `value[name]`, which must be a string.
pub fn string_member(value: &JsValue, name: &str) -> Result<String> {
    member(value, name).as_string().ok_or_else(|| BrowserError(format!("{name} is missing")))
}

/// `value[name]` as a list of strings (none: empty).
pub fn strings_member(value: &JsValue, name: &str) -> Vec<String> {
    let list = member(value, name);
    if !js_sys::Array::is_array(&list) {
        return Vec::new();
    }
    js_sys::Array::from(&list).iter().filter_map(|item| item.as_string()).collect()
}

/// A plain object with these members.
pub fn object(members: &[(&str, JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    for (name, value) in members {
        let _ = Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object.into()
}

/// A list of strings as an array.
pub fn string_array(items: &[String]) -> JsValue {
    items.iter().map(|item| JsValue::from_str(item)).collect::<js_sys::Array>().into()
}

/// `JSON.stringify(value, null, indent)`.
pub fn json_text(value: &JsValue, indent: u32) -> Result<String> {
    Ok(js_sys::JSON::stringify_with_replacer_and_space(value, &JsValue::NULL, &JsValue::from(indent))?.into())
}

/// Unsubscribes in the browser.
pub async fn unsubscribe(subscription: &PushSubscription) -> Result<bool> {
    Ok(JsFuture::from(subscription.unsubscribe()?).await?.as_bool().unwrap_or(false))
}

/// True on iPhone, iPad and iPod, including iPadOS, which reports itself as a Mac with a
/// touch screen.
pub fn is_ios() -> bool {
    let Ok(window) = window() else { return false };
    let navigator = window.navigator();
    let agent = navigator.user_agent().unwrap_or_default();
    let ipad_as_mac = agent.contains("Macintosh") && navigator.max_touch_points() > 1;
    agent.contains("iPhone") || agent.contains("iPad") || agent.contains("iPod") || ipad_as_mac
}

/// True when the page runs as an installed app (opened from the Home Screen).
pub fn is_standalone() -> bool {
    let Ok(window) = window() else { return false };
    let media = window.match_media("(display-mode: standalone)").ok().flatten().is_some_and(|m| m.matches());
    let legacy =
        Reflect::get(window.navigator().as_ref(), &JsValue::from_str("standalone")).ok().and_then(|v| v.as_bool()).unwrap_or(false);
    media || legacy
}

/// Asks the user to confirm, with the browser's own dialog.
pub fn confirm(message: &str) -> bool {
    window().ok().and_then(|w| w.confirm_with_message(message).ok()).unwrap_or(false)
}

/// The endpoint of this browser's push subscription, if it has one.
pub async fn own_endpoint() -> Result<Option<String>> {
    if !push_supported() {
        return Ok(None);
    }
    let container = window()?.navigator().service_worker();
    let Some(registration) = JsFuture::from(container.get_registration()).await.ok().filter(|r| !r.is_undefined()) else {
        return Ok(None);
    };
    let registration: ServiceWorkerRegistration = registration.unchecked_into();
    Ok(current_subscription(&registration).await?.map(|s| s.endpoint()))
}
