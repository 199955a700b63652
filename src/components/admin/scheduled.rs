//! Scheduled sends: those waiting for their `send_at`, soonest last, each with Cancel.

use super::history::{audience_text, read_payload};
use super::ConsoleContext;
use crate::api::admin::{admin_cancel, admin_scheduled};
use crate::domain::ledger::readable_time;
use crate::domain::BroadcastDetail;
use leptos::prelude::*;

#[component]
pub fn Scheduled() -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    let list = Resource::new(move || context.history_changed.get(), |_| admin_scheduled());
    let error = RwSignal::new(String::new());
    view! {
        <section class="card scheduled" aria-labelledby="scheduled-heading" data-testid="scheduled">
            <h2 id="scheduled-heading">"Scheduled"</h2>
            <Show when=move || !error.get().is_empty()>
                <p class="error" role="alert" data-testid="scheduled-error">{move || error.get()}</p>
            </Show>
            <Transition fallback=|| view! { <p class="help">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match list.await {
                        Err(e) => view! { <p class="error">{e.error}</p> }.into_any(),
                        Ok(items) if items.is_empty() => {
                            view! { <p class="help" data-testid="scheduled-empty">"Nothing is scheduled."</p> }.into_any()
                        }
                        Ok(items) => view! {
                            <ul class="scheduled-list">
                                {items.into_iter().map(|b| view! { <ScheduledItem broadcast=b error /> }).collect_view()}
                            </ul>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn ScheduledItem(broadcast: BroadcastDetail, error: RwSignal<String>) -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    let s = broadcast.status;
    let (title, _) = read_payload(&broadcast.payload);
    let id = s.id;
    let busy = RwSignal::new(false);
    let cancel = move |_| {
        busy.set(true);
        error.set(String::new());
        leptos::task::spawn_local(async move {
            if let Err(e) = admin_cancel(id).await {
                error.set(format!("Could not cancel #{id}: {}", e.error));
            }
            busy.set(false);
            context.refresh_history();
        });
    };
    view! {
        <li class="scheduled-item" data-testid="scheduled-item" data-id=id>
            <span class="h-id">{format!("#{id}")}</span>
            <span class="h-title" data-testid="scheduled-title">{title}</span>
            <span data-testid="scheduled-at">{s.send_at.as_deref().map(readable_time).unwrap_or_default()}</span>
            <span class="help">{audience_text(&s)}</span>
            <button type="button" data-testid="scheduled-cancel" disabled=move || busy.get() || !context.can_send on:click=cancel>"Cancel"</button>
        </li>
    }
}
