//! The audit log: every write made with the admin token, an API key or the command line,
//! newest first on screen, for a session that may read it (the token, or an `admin` key
//! for every site).

use super::ConsoleContext;
use crate::api::admin::admin_audit;
use crate::domain::ledger::readable_time;
use leptos::prelude::*;

/// The newest entries shown.
const SHOWN: i64 = 200;

#[component]
pub fn AuditLog() -> impl IntoView {
    let context = expect_context::<ConsoleContext>();
    // A send or a cancel made here is in the log at once.
    let entries = Resource::new(move || (context.history_changed.get(), context.subscribers_changed.get()), |_| admin_audit(SHOWN));
    view! {
        <section class="card audit" aria-labelledby="audit-heading" data-testid="audit">
            <h2 id="audit-heading">"Audit log"</h2>
            <Transition fallback=|| view! { <p class="help">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match entries.await {
                        Err(e) => view! { <p class="error">{e.error}</p> }.into_any(),
                        Ok(list) if list.is_empty() => view! { <p class="help">"Nothing written yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <table class="audit-table">
                                <thead><tr><th>"When"</th><th>"Who"</th><th>"Site"</th><th>"Action"</th><th>"Target"</th><th>"Audience"</th><th>"From"</th></tr></thead>
                                <tbody>
                                    {list.into_iter().map(|entry| {
                                        let action = entry.action.clone();
                                        view! {
                                        <tr data-testid="audit-entry" data-action=action>
                                            <td>{readable_time(&entry.at)}</td>
                                            <td>{entry.key_name}</td>
                                            <td>{entry.site}</td>
                                            <td>{entry.action}</td>
                                            <td>{entry.target}</td>
                                            <td>{entry.audience.map(|n| n.to_string()).unwrap_or_default()}</td>
                                            <td>{entry.client}</td>
                                        </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
