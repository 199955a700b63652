//! The composer: every field of a notification, a live preview, a payload-size meter that
//! measures the exact bytes the server will encrypt (the same builder runs here in WASM),
//! the target and audience (topics, users), an optional time to send at, and Send with
//! live progress from the server's event stream.

use super::ConsoleContext;
use crate::domain::notification::{Notification, NotificationAction, NotificationRequest, PayloadFormat, Urgency};
use crate::domain::notification::{MAX_PAYLOAD_BYTES, PAYLOAD_WARN_BYTES};
use crate::domain::{BroadcastStatus, Topic};
use leptos::prelude::*;

/// Who a notification goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Everyone,
    /// One stored subscription, picked from the subscriber list.
    One {
        endpoint: String,
        label: String,
    },
    /// The admin's own browser (its current push subscription).
    ThisBrowser,
}

/// The form's fields, as typed.
#[derive(Clone, Copy)]
struct Form {
    title: RwSignal<String>,
    body: RwSignal<String>,
    url: RwSignal<String>,
    icon: RwSignal<String>,
    badge: RwSignal<String>,
    image: RwSignal<String>,
    actions: [(RwSignal<String>, RwSignal<String>); 2],
    tag: RwSignal<String>,
    renotify: RwSignal<bool>,
    require_interaction: RwSignal<bool>,
    silent: RwSignal<bool>,
    app_badge: RwSignal<String>,
    ttl: RwSignal<String>,
    urgency: RwSignal<String>,
    topic: RwSignal<String>,
    /// The topics ticked in "Audience" (empty: not by topic).
    audience_topics: RwSignal<Vec<String>>,
    /// User ids, separated by commas or new lines (empty: not by user).
    users: RwSignal<String>,
    /// A `datetime-local` value, in the browser's time zone (empty: send now).
    send_at: RwSignal<String>,
}

fn text(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_string())
}

/// A `datetime-local` value (local time, no zone) as an RFC 3339 time in UTC. The browser
/// knows its time zone; a value it cannot read is passed on for the server to refuse.
fn local_time_to_rfc3339(value: &str) -> Option<String> {
    let value = text(value)?;
    #[cfg(feature = "hydrate")]
    {
        let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&value));
        if !date.get_time().is_nan() {
            return Some(String::from(date.to_iso_string()));
        }
    }
    Some(value)
}

/// User ids as typed: split at commas and new lines.
fn user_list(value: &str) -> Option<Vec<String>> {
    let users: Vec<String> = value.split([',', '\n']).filter_map(text).collect();
    (!users.is_empty()).then_some(users)
}

impl Form {
    fn new() -> Self {
        let s = |v: &str| RwSignal::new(v.to_string());
        Form {
            title: s(""),
            body: s(""),
            url: s("/"),
            icon: s("/icon-192.png"),
            badge: s("/badge-96.png"),
            image: s(""),
            actions: [(s(""), s("")), (s(""), s(""))],
            tag: s(""),
            renotify: RwSignal::new(false),
            require_interaction: RwSignal::new(false),
            silent: RwSignal::new(false),
            app_badge: s(""),
            ttl: s("86400"),
            urgency: s("normal"),
            topic: s(""),
            audience_topics: RwSignal::new(Vec::new()),
            users: s(""),
            send_at: s(""),
        }
    }

    /// The request the form describes (tracked: a memo over it follows every keystroke).
    /// Numbers that do not parse are named like the server would name them.
    fn request(&self) -> Result<NotificationRequest, (&'static str, String)> {
        let number = |field: &'static str, value: String| -> Result<Option<u32>, (&'static str, String)> {
            match text(&value) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| (field, "must be a whole number".to_string())),
            }
        };
        let actions = self
            .actions
            .iter()
            .filter_map(|(label, url)| {
                let (label, url) = (label.get(), url.get());
                (text(&label).is_some() || text(&url).is_some())
                    .then(|| NotificationAction { title: label.trim().into(), url: text(&url).unwrap_or_default() })
            })
            .collect();
        Ok(NotificationRequest {
            title: self.title.get(),
            body: self.body.get(),
            url: text(&self.url.get()),
            icon: text(&self.icon.get()),
            badge: text(&self.badge.get()),
            image: text(&self.image.get()),
            tag: text(&self.tag.get()),
            actions,
            renotify: self.renotify.get().then_some(true),
            require_interaction: self.require_interaction.get().then_some(true),
            silent: self.silent.get().then_some(true),
            app_badge: number("app_badge", self.app_badge.get())?,
            ttl: number("ttl", self.ttl.get())?,
            urgency: Urgency::parse(&self.urgency.get()),
            topic: text(&self.topic.get()),
            endpoint: None,
            topics: Some(self.audience_topics.get()).filter(|t| !t.is_empty()),
            users: user_list(&self.users.get()),
            send_at: local_time_to_rfc3339(&self.send_at.get()),
        })
    }
}

/// The live send: the latest status, or why it could not be followed.
#[derive(Clone, Copy)]
struct Sending {
    status: RwSignal<Option<BroadcastStatus>>,
    error: RwSignal<String>,
    warning: RwSignal<String>,
    busy: RwSignal<bool>,
}

#[component]
pub fn Composer(format: PayloadFormat, topics: Vec<Topic>) -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    let form = Form::new();
    let sending = Sending {
        status: RwSignal::new(None),
        error: RwSignal::new(String::new()),
        warning: RwSignal::new(String::new()),
        busy: RwSignal::new(false),
    };
    // The notification as the server will build it, or the first problem with it.
    let built =
        Memo::new(move |_| form.request().and_then(|request| Notification::build(request, format).map_err(|e| (e.field, e.reason))));
    let size = move || built.with(|b| b.as_ref().map(|n| n.max_payload_len()).unwrap_or(0));
    let problem = move || built.with(|b| b.as_ref().err().map(|(field, reason)| format!("{field} {reason}")));
    let target = context.target;

    let send = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        #[cfg(feature = "hydrate")]
        {
            let Ok(request) = form.request() else { return };
            leptos::task::spawn_local(send_and_follow(request, target.get_untracked(), sending, context));
        }
    };

    let input = move |id: &'static str, label: &'static str, signal: RwSignal<String>, kind: &'static str, hint: &'static str| {
        view! {
            <div class="field">
                <label for=id>{label}</label>
                <input
                    id=id
                    type=kind
                    data-testid=id
                    placeholder=hint
                    prop:value=move || signal.get()
                    on:input=move |ev| signal.set(event_target_value(&ev))
                />
            </div>
        }
    };
    let check = move |id: &'static str, label: &'static str, signal: RwSignal<bool>| {
        view! {
            <label class="check" for=id>
                <input id=id type="checkbox" data-testid=id prop:checked=move || signal.get() on:change=move |ev| signal.set(event_target_checked(&ev)) />
                {label}
            </label>
        }
    };

    view! {
        <section class="card composer" aria-labelledby="compose-heading" data-testid="composer">
            <h2 id="compose-heading">"New notification"</h2>
            <div class="compose-grid">
                <form class="compose-form" on:submit=send novalidate>
                    {view! {
                    <fieldset>
                        <legend>"Content"</legend>
                        {input("compose-title", "Title", form.title, "text", "Required")}
                        <div class="field">
                            <label for="compose-body">"Body"</label>
                            <textarea
                                id="compose-body"
                                rows="3"
                                data-testid="compose-body"
                                prop:value=move || form.body.get()
                                on:input=move |ev| form.body.set(event_target_value(&ev))
                            ></textarea>
                        </div>
                        {input("compose-url", "Click URL", form.url, "text", "/ or https://…")}
                        {input("compose-icon", "Icon URL", form.icon, "text", "/icon-192.png")}
                        {input("compose-badge", "Badge URL (monochrome, Android)", form.badge, "text", "/badge-96.png")}
                        {input("compose-image", "Image URL", form.image, "text", "Large image (Chrome, Edge)")}
                    </fieldset>
                    }.into_any()}
                    {view! {
                    <fieldset>
                        <legend>"Actions (up to two buttons)"</legend>
                        {form.actions.iter().enumerate().map(|(i, (label, url))| {
                            let (label, url) = (*label, *url);
                            view! {
                                <div class="action-row">
                                    <input
                                        type="text"
                                        aria-label=format!("Action {} label", i + 1)
                                        data-testid=format!("compose-action{}-label", i + 1)
                                        placeholder=format!("Button {} label", i + 1)
                                        prop:value=move || label.get()
                                        on:input=move |ev| label.set(event_target_value(&ev))
                                    />
                                    <input
                                        type="text"
                                        aria-label=format!("Action {} URL", i + 1)
                                        data-testid=format!("compose-action{}-url", i + 1)
                                        placeholder="URL"
                                        prop:value=move || url.get()
                                        on:input=move |ev| url.set(event_target_value(&ev))
                                    />
                                </div>
                            }
                        }).collect_view()}
                    </fieldset>
                    }.into_any()}
                    {view! {
                    <fieldset>
                        <legend>"Behaviour"</legend>
                        {input("compose-tag", "Tag (replaces an earlier notification with the same tag)", form.tag, "text", "")}
                        <div class="checks">
                            {check("compose-renotify", "Alert again when replacing", form.renotify)}
                            {check("compose-require-interaction", "Stay until dismissed", form.require_interaction)}
                            {check("compose-silent", "Silent", form.silent)}
                        </div>
                        {input("compose-app-badge", "App badge number (installed app icon; 0 clears)", form.app_badge, "number", "")}
                    </fieldset>
                    }.into_any()}
                    {view! {
                    <fieldset>
                        <legend>"Delivery"</legend>
                        <div class="row3">
                            {input("compose-ttl", "TTL (seconds)", form.ttl, "number", "86400")}
                            <div class="field">
                                <label for="compose-urgency">"Urgency"</label>
                                <select
                                    id="compose-urgency"
                                    data-testid="compose-urgency"
                                    prop:value=move || form.urgency.get()
                                    on:change=move |ev| form.urgency.set(event_target_value(&ev))
                                >
                                    <option value="very-low">"Very low"</option>
                                    <option value="low">"Low"</option>
                                    <option value="normal">"Normal"</option>
                                    <option value="high">"High"</option>
                                </select>
                            </div>
                            {input("compose-topic", "Topic", form.topic, "text", "replaces queued")}
                        </div>
                    </fieldset>
                    }.into_any()}
                    {view! {
                    <fieldset class="audience" data-testid="compose-audience">
                        <legend>"Audience (when sending to everyone)"</legend>
                        {(!topics.is_empty()).then(|| view! {
                            <div class="checks" role="group" aria-label="Topics">
                                {topics.into_iter().map(|topic| {
                                    let name = topic.name.clone();
                                    let id = format!("compose-topic-{}", topic.name);
                                    let label_for = id.clone();
                                    let ticked = name.clone();
                                    view! {
                                        <label class="check" for=label_for>
                                            <input id=id type="checkbox" data-testid="compose-audience-topic" value=topic.name.clone()
                                                prop:checked=move || form.audience_topics.with(|t| t.contains(&ticked))
                                                on:change=move |ev| {
                                                    let on = event_target_checked(&ev);
                                                    let name = name.clone();
                                                    form.audience_topics.update(|t| {
                                                        t.retain(|n| *n != name);
                                                        if on { t.push(name); }
                                                    });
                                                } />
                                            {topic.label}
                                        </label>
                                    }
                                }).collect_view()}
                            </div>
                        })}
                        <div class="field">
                            <label for="compose-users">"User ids (comma or line separated)"</label>
                            <textarea id="compose-users" rows="2" data-testid="compose-users"
                                prop:value=move || form.users.get()
                                on:input=move |ev| form.users.set(event_target_value(&ev))></textarea>
                        </div>
                        {input("compose-send-at", "Send at (your time zone; empty sends now)", form.send_at, "datetime-local", "")}
                    </fieldset>
                    }.into_any()}
                    {view! {
                    <fieldset class="target">
                        <legend>"Send to"</legend>
                        <label class="check">
                            <input type="radio" name="target" data-testid="target-everyone"
                                prop:checked=move || target.get() == Target::Everyone
                                on:change=move |_| target.set(Target::Everyone) />
                            "Everyone"
                        </label>
                        <label class="check">
                            <input type="radio" name="target" data-testid="target-self"
                                prop:checked=move || target.get() == Target::ThisBrowser
                                on:change=move |_| target.set(Target::ThisBrowser) />
                            "A test to this browser only"
                        </label>
                        <label class="check">
                            <input type="radio" name="target" data-testid="target-one"
                                disabled=move || !matches!(target.get(), Target::One { .. })
                                prop:checked=move || matches!(target.get(), Target::One { .. })
                                on:change=move |_| {} />
                            {move || match target.get() {
                                Target::One { label, .. } => format!("One subscriber: {label}"),
                                _ => "One subscriber (pick one with Send to this one, below)".to_string(),
                            }}
                        </label>
                    </fieldset>
                    }.into_any()}
                    <div class="actions">
                        <button type="submit" class="primary" data-testid="send"
                            disabled=move || sending.busy.get() || built.with(|b| b.is_err())>
                            {move || match target.get() {
                                _ if !form.send_at.with(String::is_empty) => "Schedule",
                                Target::Everyone if !form.audience_topics.with(Vec::is_empty) || !form.users.with(String::is_empty) => "Send to audience",
                                Target::Everyone => "Send to everyone",
                                Target::ThisBrowser => "Send test to this browser",
                                Target::One { .. } => "Send to this subscriber",
                            }}
                        </button>
                    </div>
                    <Show when=move || !sending.error.get().is_empty()>
                        <p class="error" role="alert" data-testid="send-error">{move || sending.error.get()}</p>
                    </Show>
                </form>
                {view! {
                <aside class="preview-pane" aria-label="Preview">
                    <h3>"Preview"</h3>
                    <Preview form />
                    <SizeMeter size=Signal::derive(size) />
                    <Show when=move || problem().is_some()>
                        <p class="error" data-testid="compose-problem">{move || problem().unwrap_or_default()}</p>
                    </Show>
                    <details class="payload">
                        <summary>"Payload JSON"</summary>
                        <pre data-testid="payload-json">{move || built.with(|b| b.as_ref().map(|n| n.payload(None)).unwrap_or_default())}</pre>
                    </details>
                </aside>
                }.into_any()}
            </div>
            {view! { <Progress sending /> }.into_any()}
        </section>
    }
}

/// Roughly how a desktop browser shows the notification.
#[component]
fn Preview(form: Form) -> impl IntoView {
    let title = move || text(&form.title.get()).unwrap_or_else(|| "Title".into());
    let icon = move || text(&form.icon.get()).unwrap_or_else(|| "/icon.svg".into());
    let host = move || {
        #[cfg(feature = "hydrate")]
        {
            web_sys::window().and_then(|w| w.location().host().ok()).unwrap_or_default()
        }
        #[cfg(not(feature = "hydrate"))]
        {
            String::new()
        }
    };
    view! {
        <div class="notification-preview" data-testid="preview" data-silent=move || form.silent.get().to_string()>
            <div class="np-head">
                <img class="np-icon" src=icon alt="" width="40" height="40" />
                <div class="np-text">
                    <div class="np-source">{move || format!("Clarion · {}", host())}</div>
                    <div class="np-title" data-testid="preview-title">{title}</div>
                    <div class="np-body" data-testid="preview-body">{move || form.body.get()}</div>
                </div>
            </div>
            <Show when=move || text(&form.image.get()).is_some()>
                <img class="np-image" data-testid="preview-image" src=move || form.image.get() alt="" />
            </Show>
            <div class="np-actions">
                {form.actions.iter().map(|(label, _)| {
                    let label = *label;
                    view! {
                        <Show when=move || text(&label.get()).is_some()>
                            <span class="np-action" data-testid="preview-action">{move || label.get()}</span>
                        </Show>
                    }
                }).collect_view()}
            </div>
            <div class="np-flags">
                <Show when=move || form.require_interaction.get()><span>"Stays until dismissed"</span></Show>
                <Show when=move || text(&form.app_badge.get()).is_some()><span>{move || format!("Badge {}", form.app_badge.get())}</span></Show>
            </div>
        </div>
    }
}

/// Bytes of the payload against the one-message limit; warns from 3 KB.
#[component]
fn SizeMeter(size: Signal<usize>) -> impl IntoView {
    let level = move || match size.get() {
        n if n > MAX_PAYLOAD_BYTES => "over",
        n if n > PAYLOAD_WARN_BYTES => "warn",
        _ => "ok",
    };
    view! {
        <div class="size-meter" data-testid="size-meter" data-level=level>
            <meter min="0" max=MAX_PAYLOAD_BYTES.to_string() low=PAYLOAD_WARN_BYTES.to_string() high=PAYLOAD_WARN_BYTES.to_string()
                optimum="0" value=move || size.get().to_string()></meter>
            <span data-testid="payload-size">{move || format!("{} of {} bytes", size.get(), MAX_PAYLOAD_BYTES)}</span>
            <Show when=move || level() == "warn">
                <p class="warning" data-testid="size-warning">"Over 3 KB: some mobile push relays drop messages this large."</p>
            </Show>
        </div>
    }
}

/// The send's live counts, failures by reason, then the summary.
#[component]
fn Progress(sending: Sending) -> impl IntoView {
    view! {
        <Show when=move || sending.status.with(|s| s.is_some())>
            {move || sending.status.get().map(|s| {
                let done = s.is_done();
                let failures = s.failures.clone();
                let summary_text = summary(&s);
                let (id, status) = (s.id, s.status.as_str());
                view! {
                    <div class="progress" role="status" aria-live="polite" data-testid="progress" data-status=status data-id=id>
                        <h3>{if done { format!("Notification #{} sent", s.id) } else { format!("Sending notification #{}…", s.id) }}</h3>
                        <progress max=s.total.max(1) value=if s.total == 0 && done { 1 } else { s.settled() }></progress>
                        <dl class="counts">
                            <div><dt>"Total"</dt><dd data-testid="progress-total">{s.total}</dd></div>
                            <div><dt>"Delivered"</dt><dd data-testid="progress-delivered">{s.delivered}</dd></div>
                            <div><dt>"Failed"</dt><dd data-testid="progress-failed">{s.failed}</dd></div>
                            <div><dt>"Removed (gone)"</dt><dd data-testid="progress-removed">{s.removed}</dd></div>
                            <div><dt>"Retried"</dt><dd>{s.retried}</dd></div>
                        </dl>
                        {(!failures.is_empty()).then(|| view! {
                            <ul class="failures" data-testid="progress-failures">
                                {failures.into_iter().map(|(reason, n)| view! { <li>{format!("{reason}: {n}")}</li> }).collect_view()}
                            </ul>
                        })}
                        {done.then(|| view! { <p class="summary" data-testid="progress-summary">{summary_text}</p> })}
                    </div>
                }
            })}
        </Show>
        <Show when=move || !sending.warning.get().is_empty()>
            <p class="warning" data-testid="send-warning">{move || sending.warning.get()}</p>
        </Show>
    }
}

fn summary(s: &BroadcastStatus) -> String {
    let time = s.duration_ms.map(|ms| format!(" in {}", crate::domain::ledger::readable_duration(ms))).unwrap_or_default();
    let mut text = format!("Done: {} of {} delivered{time}.", s.delivered, s.total);
    if s.failed > 0 {
        text.push_str(&format!(" {} failed.", s.failed));
    }
    if s.removed > 0 {
        text.push_str(&format!(" {} subscriptions were gone and have been removed.", s.removed));
    }
    text
}

/// Queues the notification, then follows the server's event stream until it is done.
#[cfg(feature = "hydrate")]
async fn send_and_follow(mut request: NotificationRequest, target: Target, sending: Sending, context: ConsoleContext) {
    use futures::StreamExt;
    use gloo_net::eventsource::futures::EventSource;

    sending.error.set(String::new());
    sending.warning.set(String::new());
    if target != Target::Everyone {
        // The audience applies to "everyone"; one subscriber is one subscriber.
        request.topics = None;
        request.users = None;
    }
    request.endpoint = match target {
        Target::Everyone => None,
        Target::One { endpoint, .. } => Some(endpoint),
        Target::ThisBrowser => match crate::browser::own_endpoint().await {
            Ok(Some(endpoint)) => Some(endpoint),
            Ok(None) => {
                sending.error.set("This browser has no push subscription. Enable notifications on the home page first.".into());
                return;
            }
            Err(e) => return sending.error.set(format!("Could not read this browser's subscription: {e}")),
        },
    };
    sending.busy.set(true);
    let request_scheduled = request.send_at.is_some();
    let queued = match crate::api::admin::admin_send(request).await {
        Ok(queued) => queued,
        Err(e) => {
            sending.error.set(e.error);
            sending.busy.set(false);
            return;
        }
    };
    sending.warning.set(queued.warning.unwrap_or_default());
    context.refresh_history();
    if request_scheduled {
        sending.warning.set(format!("Notification #{} is scheduled; it is listed under Scheduled until it starts.", queued.id));
        sending.busy.set(false);
        return;
    }
    let follow = async {
        let mut source = EventSource::new(&format!("/api/v1/notifications/{}/events", queued.id)).map_err(|e| e.to_string())?;
        let progress = source.subscribe("progress").map_err(|e| e.to_string())?;
        let done = source.subscribe("done").map_err(|e| e.to_string())?;
        let mut events = futures::stream::select(progress, done);
        let mut errors = 0;
        while let Some(event) = events.next().await {
            match event {
                Ok((_, message)) => {
                    let Some(data) = message.data().as_string() else { continue };
                    let Ok(status) = serde_json::from_str::<BroadcastStatus>(&data) else { continue };
                    let finished = status.is_done();
                    sending.status.set(Some(status));
                    if finished {
                        break;
                    }
                }
                // The browser reconnects by itself; give up only if it keeps failing.
                Err(_) if errors < 5 => errors += 1,
                Err(e) => return Err(format!("lost the live progress ({e}); the history below has the outcome")),
            }
        }
        source.close();
        Ok::<(), String>(())
    };
    if let Err(e) = follow.await {
        sending.error.set(e);
    }
    sending.busy.set(false);
    context.refresh_history();
    context.refresh_subscribers();
}
