//! Browser APIs, compiled only for the browser builds (the page's `hydrate`, the SDK's
//! `sdk`): the Push API, service worker registration and notification permission,
//! through web-sys.
//!
//! Every function turns JavaScript exceptions into a [`BrowserError`] carrying the
//! exception's name and message, so the page can say what failed.

use crate::domain::{base64url, SubscriptionJson};
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
    from_js(subscription.to_json()?.into()).map_err(|e| BrowserError(format!("unexpected subscription JSON: {e}")))
}

/// A Rust value as the plain JavaScript value `JSON.parse` would give (objects, arrays,
/// `null` for `None`). The browser's own JSON does the text, so the WASM carries no JSON
/// parser or printer.
pub fn to_js<T: serde::Serialize + ?Sized>(value: &T) -> Result<JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| BrowserError(e.to_string()))
}

/// A plain JavaScript value (what `JSON.parse` or `Response.json()` gives) as a Rust value.
pub fn from_js<T: serde::de::DeserializeOwned>(value: JsValue) -> Result<T> {
    serde_wasm_bindgen::from_value(value).map_err(|e| BrowserError(e.to_string()))
}

/// `JSON.stringify(value, null, indent)`.
pub fn json_text<T: serde::Serialize + ?Sized>(value: &T, indent: u32) -> Result<String> {
    let text = js_sys::JSON::stringify_with_replacer_and_space(&to_js(value)?, &JsValue::NULL, &JsValue::from(indent))?;
    Ok(text.into())
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
