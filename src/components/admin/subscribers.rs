//! Subscribers: how many, and a paginated list (push-service host, created, last success,
//! failures, user agent) with Delete and "Send to this one".

use super::composer::Target;
use super::ConsoleContext;
use crate::api::admin::admin_subscribers;
use crate::domain::ledger::readable_time;
use crate::domain::SubscriptionSummary;
use leptos::prelude::*;

/// Subscribers per page.
const PAGE: i64 = 20;

#[component]
pub fn Subscribers() -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    // Cursors of the pages before this one, for Previous; the last is this page's.
    let cursors = RwSignal::new(vec![None::<String>]);
    let after = move || cursors.with(|c| c.last().cloned().flatten());
    let page = Resource::new(move || (context.subscribers_changed.get(), after()), |(_, after)| admin_subscribers(PAGE, after));
    let notice = RwSignal::new(String::new());
    view! {
        <section class="card subscribers" aria-labelledby="subscribers-heading" data-testid="subscribers">
            <h2 id="subscribers-heading">"Subscribers"</h2>
            <Show when=move || !notice.get().is_empty()>
                <p class="notice" role="status" data-testid="subscribers-notice">{move || notice.get()}</p>
            </Show>
            <Transition fallback=|| view! { <p class="help">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Err(e) => view! { <p class="error">{e.error}</p> }.into_any(),
                        Ok(page) => {
                            let next = page.next.clone();
                            let first_page = cursors.with(|c| c.len() == 1);
                            view! {
                                <p>
                                    <strong data-testid="subscriber-count">{page.total}</strong>
                                    {if page.total == 1 { " subscription" } else { " subscriptions" }}
                                </p>
                                {if page.subscriptions.is_empty() {
                                    view! { <p class="help">"No one has subscribed yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <div class="table-wrap">
                                            <table>
                                                <thead>
                                                    <tr>
                                                        <th scope="col">"Push service"</th>
                                                        <th scope="col">"Created"</th>
                                                        <th scope="col">"Last success"</th>
                                                        <th scope="col">"Failures"</th>
                                                        <th scope="col">"User agent"</th>
                                                        <th scope="col"><span class="sr-only">"Actions"</span></th>
                                                    </tr>
                                                </thead>
                                                <tbody>
                                                    {page.subscriptions.into_iter().map(|s| view! { <SubscriberRow subscription=s notice /> }).collect_view()}
                                                </tbody>
                                            </table>
                                        </div>
                                    }.into_any()
                                }}
                                <div class="pager">
                                    <button type="button" data-testid="subscribers-prev" disabled=first_page
                                        on:click=move |_| cursors.update(|c| { c.pop(); })>"Previous"</button>
                                    <button type="button" data-testid="subscribers-next" disabled=next.is_none()
                                        on:click=move |_| { let next = next.clone(); cursors.update(|c| c.push(next)); }>"Next"</button>
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
fn SubscriberRow(subscription: SubscriptionSummary, notice: RwSignal<String>) -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    let host = subscription.push_host().to_string();
    let agent = subscription.user_agent.clone().unwrap_or_default();
    let endpoint = subscription.endpoint.clone();
    let label = format!("#{} at {host}", subscription.id);
    let pick = {
        let (endpoint, label) = (endpoint.clone(), label.clone());
        move |_| {
            context.target.set(Target::One { endpoint: endpoint.clone(), label: label.clone() });
            notice.set(format!("The composer now sends to {label} only."));
        }
    };
    let delete = move |_| {
        #[cfg(feature = "hydrate")]
        {
            if !crate::browser::confirm(&format!("Delete subscription {label}? That browser gets no more notifications.")) {
                return;
            }
            let (endpoint, label) = (endpoint.clone(), label.clone());
            leptos::task::spawn_local(async move {
                match crate::api::admin::admin_delete_subscriber(endpoint.clone()).await {
                    Ok(()) => {
                        if matches!(context.target.get_untracked(), Target::One { endpoint: ref e, .. } if *e == endpoint) {
                            context.target.set(Target::Everyone);
                        }
                        notice.set(format!("Deleted subscription {label}."));
                        context.refresh_subscribers();
                    }
                    Err(e) => notice.set(format!("Could not delete {label}: {}", e.error)),
                }
            });
        }
    };
    view! {
        <tr data-testid="subscriber-row" data-id=subscription.id>
            <td data-testid="subscriber-host">{host}</td>
            <td>{readable_time(&subscription.created_at)}</td>
            <td>{subscription.last_success_at.as_deref().map(readable_time).unwrap_or_else(|| "never".into())}</td>
            <td>{subscription.failure_count}</td>
            <td class="agent" title=agent.clone()>{agent.clone()}</td>
            <td class="row-actions">
                <button type="button" data-testid="target-subscriber" disabled=!context.can_send on:click=pick>"Send to this one"</button>
                <button type="button" class="danger" data-testid="delete-subscriber" disabled=!context.can_manage_audience on:click=delete>"Delete"</button>
            </td>
        </tr>
    }
}
