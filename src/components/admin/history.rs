//! The history: past broadcasts, newest first, with status, counts, clicks and timing.
//! Each opens to its exact payload, delivery options and failures by reason.

use super::ConsoleContext;
use crate::api::admin::admin_history;
use crate::domain::ledger::{readable_duration, readable_time};
use crate::domain::BroadcastDetail;
use leptos::prelude::*;

/// Broadcasts fetched per page.
const PAGE: i64 = 20;

/// The notification's title (either shape) and the payload pretty-printed, from one
/// parse. (`serde_json` keeps member order, so the pretty payload reads as it was sent.)
pub(super) fn read_payload(payload: &str) -> (String, String) {
    let Ok(json) = serde_json::from_str::<serde_json::Value>(payload) else { return (String::new(), payload.to_string()) };
    let title = json.get("notification").and_then(|n| n.get("title")).or_else(|| json.get("title"));
    let title = title.and_then(|t| t.as_str()).unwrap_or_default().to_string();
    (title, serde_json::to_string_pretty(&json).unwrap_or_else(|_| payload.to_string()))
}

/// Who a broadcast went (or goes) to, in words.
pub(super) fn audience_text(s: &crate::domain::BroadcastStatus) -> String {
    if s.targeted {
        return "one subscriber".into();
    }
    let Some(audience) = &s.audience else { return "everyone".into() };
    let mut parts = Vec::new();
    if !audience.topics.is_empty() {
        parts.push(format!("topics {}", audience.topics.join(", ")));
    }
    if !audience.users.is_empty() {
        let shown: Vec<&str> = audience.users.iter().take(5).map(String::as_str).collect();
        let more = audience.users.len().saturating_sub(shown.len());
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        parts.push(format!("users {}{more}", shown.join(", ")));
    }
    parts.join(" and ")
}

#[component]
pub fn History() -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    // `before` pages back through older broadcasts; None is the newest page.
    let before = RwSignal::new(None::<i64>);
    let page = Resource::new(move || (context.history_changed.get(), before.get()), |(_, before)| admin_history(PAGE, before));
    view! {
        <section class="card history" aria-labelledby="history-heading" data-testid="history">
            <h2 id="history-heading">"History"</h2>
            <Transition fallback=|| view! { <p class="help">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Err(e) => view! { <p class="error">{e.error}</p> }.into_any(),
                        Ok(items) if items.is_empty() => view! { <p class="help" data-testid="history-empty">"Nothing sent yet."</p> }.into_any(),
                        Ok(items) => {
                            let oldest = items.last().map(|b| b.status.id);
                            let more = items.len() as i64 == PAGE;
                            view! {
                                <ol class="history-list">
                                    {items.into_iter().map(|b| view! { <HistoryItem broadcast=b /> }).collect_view()}
                                </ol>
                                <div class="pager">
                                    <Show when=move || before.get().is_some()>
                                        <button type="button" on:click=move |_| before.set(None)>"Newest"</button>
                                    </Show>
                                    <Show when=move || more>
                                        <button type="button" data-testid="history-older" on:click=move |_| before.set(oldest)>"Older"</button>
                                    </Show>
                                </div>
                            }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn HistoryItem(broadcast: BroadcastDetail) -> impl IntoView {
    let s = broadcast.status;
    let (title, payload) = read_payload(&broadcast.payload);
    let duration = s.duration_ms.map(readable_duration);
    let failures = s.failures.clone();
    let stopped = s.stopped_origins.clone();
    let scope = audience_text(&s);
    view! {
        <li class="history-item" data-testid="history-item" data-id=s.id data-status=s.status.as_str()>
            <details>
                <summary>
                    <span class="h-id">{format!("#{}", s.id)}</span>
                    <span class="h-title" data-testid="history-title">{title}</span>
                    <span class="state-badge" data-state=s.status.as_str()>{s.status.as_str()}</span>
                    <span class="h-counts" data-testid="history-counts">
                        {format!("{} of {} delivered · {} failed · ", s.delivered, s.total, s.failed)}
                        <span data-testid="history-clicks">{format!("{} clicks", s.clicks)}</span>
                    </span>
                    <span class="h-time">{readable_time(&s.created_at)}</span>
                </summary>
                <div class="h-detail">
                    <dl class="counts">
                        <div><dt>"Sent to"</dt><dd data-testid="history-audience">{scope}</dd></div>
                        {s.send_at.clone().map(|at| view! { <div><dt>"Scheduled for"</dt><dd>{readable_time(&at)}</dd></div> })}
                        <div><dt>"Removed (gone)"</dt><dd>{s.removed}</dd></div>
                        <div><dt>"Retried"</dt><dd>{s.retried}</dd></div>
                        <div><dt>"Took"</dt><dd>{duration.unwrap_or_else(|| "–".into())}</dd></div>
                        <div><dt>"TTL"</dt><dd>{format!("{} s", broadcast.ttl)}</dd></div>
                        <div><dt>"Urgency"</dt><dd>{broadcast.urgency.unwrap_or(crate::domain::Urgency::Normal).as_str()}</dd></div>
                        <div><dt>"Topic"</dt><dd>{broadcast.topic.unwrap_or_else(|| "–".into())}</dd></div>
                    </dl>
                    {(!failures.is_empty()).then(|| view! {
                        <h4>"Failures by reason"</h4>
                        <ul class="failures" data-testid="history-failures">
                            {failures.into_iter().map(|(reason, n)| view! { <li>{format!("{reason}: {n}")}</li> }).collect_view()}
                        </ul>
                    })}
                    {(!stopped.is_empty()).then(|| view! {
                        <h4>"Push services it stopped sending to"</h4>
                        <ul class="failures">
                            {stopped.into_iter().map(|(origin, why)| view! { <li>{format!("{origin}: {why}")}</li> }).collect_view()}
                        </ul>
                    })}
                    <h4>"Payload"</h4>
                    <pre data-testid="history-payload">{payload}</pre>
                </div>
            </details>
        </li>
    }
}
