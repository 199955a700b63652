//! The admin console at `/admin`: sign in with the admin token or an API key, then
//! compose and send notifications (to everyone, topics or users, now or at a set time),
//! watch them go out, cancel scheduled ones, read the history, manage subscribers and
//! read the audit log. What it offers follows the session's scopes (a `read` key sees the
//! history; Send is not offered); the server refuses the rest anyway. A site switcher
//! picks the site the session works on (kept with the session on the server, so the
//! page the server renders and the one the browser hydrates agree): every list, count and
//! send is that site's.
//!
//! The server renders whichever view the session cookie allows, so a signed-in admin sees
//! the console at once. Buttons act only after hydration; server errors are shown in words.

mod audit;
mod composer;
mod history;
mod scheduled;
mod subscribers;

use crate::api::admin::{admin_session, ConsoleSettings};
use crate::domain::Scope;
use leptos::prelude::*;

pub use composer::Target;

/// What the console's parts share: the send target (the subscriber list can pick one),
/// and counters that make the history and subscriber list fetch again.
#[derive(Clone, Copy)]
pub struct ConsoleContext {
    pub target: RwSignal<Target>,
    pub history_changed: RwSignal<u32>,
    pub subscribers_changed: RwSignal<u32>,
    /// The session may create and cancel sends (scope `send`).
    pub can_send: bool,
    /// The session may delete subscribers (scope `audience`).
    pub can_manage_audience: bool,
}

impl ConsoleContext {
    fn new(settings: &ConsoleSettings) -> Self {
        Self {
            target: RwSignal::new(Target::Everyone),
            history_changed: RwSignal::new(0),
            subscribers_changed: RwSignal::new(0),
            can_send: settings.can(Scope::Send),
            can_manage_audience: settings.can(Scope::Audience),
        }
    }

    pub fn refresh_history(self) {
        self.history_changed.update(|n| *n += 1);
    }

    pub fn refresh_subscribers(self) {
        self.subscribers_changed.update(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use crate::api::ApiFailure;
    use leptos::server_fn::error::FromServerFnError;

    #[test]
    fn a_middleware_answer_reads_as_the_failure_it_describes() {
        // What the rate limit in front of the server functions answers: the REST body.
        let body = br#"{"error":"too many requests from this address; try again in 1 s"}"#;
        let failure = ApiFailure::de(body.to_vec().into());
        assert_eq!(failure, ApiFailure { error: "too many requests from this address; try again in 1 s".into(), field: None });
        let invalid = ApiFailure::de(br#"{"error":"title: is required","field":"title"}"#.to_vec().into());
        assert_eq!(invalid.field.as_deref(), Some("title"));
    }
}

/// The console, one island: only `/admin` loads its code (the console's bundle).
#[island]
pub fn AdminPage() -> impl IntoView {
    let session = Resource::new(|| (), |_| admin_session());
    let signed_in = move || session.refetch();
    // Effects run only in the browser: this marks the moment the buttons start working.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    provide_context(Live(hydrated));
    view! {
        <main class="page wide admin" data-testid="admin" data-hydrated=move || hydrated.get().to_string()>
            <header class="masthead">
                <img src="/icon.svg" alt="" width="40" height="40" />
                <div>
                    <h1>"Clarion console"</h1>
                    <p class="tagline">"Compose, send and follow your notifications."</p>
                </div>
                <a class="home-link" href="/">"Back to the site"</a>
            </header>
            <Suspense fallback=|| view! { <p class="help">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match session.await {
                        Ok(Some(settings)) => view! { <Console settings on_sign_out=signed_in /> }.into_any(),
                        Ok(None) => view! { <SignIn on_signed_in=signed_in /> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{format!("Could not reach the server: {e}")}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn SignIn(on_signed_in: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let token = RwSignal::new(String::new());
    let error = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let on_signed_in = on_signed_in.clone();
        busy.set(true);
        error.set(String::new());
        leptos::task::spawn_local(async move {
            match crate::api::admin::admin_sign_in(token.get_untracked()).await {
                Ok(()) => {
                    token.set(String::new());
                    on_signed_in();
                }
                Err(e) => {
                    let text = e.error;
                    let text = if text.contains("token") || text.contains("nauthori") {
                        "That is neither the admin token (in <data-dir>/admin_token, or CLARION_ADMIN_TOKEN) nor a live API key."
                            .to_string()
                    } else {
                        text
                    };
                    error.set(text);
                }
            }
            busy.set(false);
        });
    };
    view! {
        <section class="card sign-in" aria-labelledby="sign-in-heading">
            <h2 id="sign-in-heading">"Sign in"</h2>
            <form on:submit=submit data-testid="sign-in-form">
                <label for="admin-token">"Admin token or API key"</label>
                <input
                    id="admin-token"
                    type="password"
                    autocomplete="current-password"
                    required
                    data-testid="admin-token"
                    prop:value=move || token.get()
                    on:input=move |ev| token.set(event_target_value(&ev))
                />
                <button type="submit" class="primary" data-testid="sign-in" disabled=move || busy.get()>"Sign in"</button>
            </form>
            <Show when=move || !error.get().is_empty()>
                <p class="error" role="alert" data-testid="sign-in-error">{move || error.get()}</p>
            </Show>
            <p class="help">"The session lasts 12 hours on this browser; the cookie is HttpOnly and SameSite=Strict."</p>
        </section>
    }
}

/// The site switcher: every list, count and send below is the chosen site's. Shown when
/// the session may read more than one site.
#[component]
fn SiteSwitcher(site: String, sites: Vec<String>, on_switched: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let error = RwSignal::new(String::new());
    let switch = move |ev: leptos::ev::Event| {
        let (chosen, on_switched) = (event_target_value(&ev), on_switched.clone());
        leptos::task::spawn_local(async move {
            match crate::api::admin::admin_choose_site(chosen).await {
                Ok(()) => on_switched(),
                Err(e) => error.set(e.error),
            }
        });
    };
    let options = sites
        .into_iter()
        .map(|name| {
            let selected = name == site;
            view! { <option value=name.clone() selected=selected>{name.clone()}</option> }
        })
        .collect_view();
    view! {
        <label class="site-switcher">
            "Site "
            <select data-testid="site-switcher" on:change=switch>{options}</select>
        </label>
        <Show when=move || !error.get().is_empty()>
            <span class="error" role="alert">{move || error.get()}</span>
        </Show>
    }
}

#[component]
fn Console(settings: ConsoleSettings, on_sign_out: impl Fn() + Clone + Send + Sync + 'static) -> impl IntoView {
    let context = ConsoleContext::new(&settings);
    provide_context(context);
    let scopes = settings.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let who = if settings.signed_in_as == "admin" {
        "Signed in as admin".to_string()
    } else {
        format!("Signed in with the key {} ({scopes})", settings.signed_in_as)
    };
    let sees_audit = settings.sees_audit;
    let Live(live) = use_context::<Live>().expect("the console is inside AdminPage");
    let idle = match settings.idle_expiry_days {
        0 => format!("Idle expiry off · {} removed for being idle", settings.idle_removed),
        days => format!("Idle expiry after {days} days · {} removed for being idle", settings.idle_removed),
    };
    let switcher = (settings.sites.len() > 1).then(|| {
        let on_switched = on_sign_out.clone();
        view! { <SiteSwitcher site=settings.site.clone() sites=settings.sites.clone() on_switched /> }
    });
    let site_label = format!("Site {} · {} subscribers", settings.site, settings.subscriptions);
    let sign_out = move |_| {
        let on_sign_out = on_sign_out.clone();
        leptos::task::spawn_local(async move {
            let _ = crate::api::admin::admin_sign_out().await;
            on_sign_out();
        });
    };
    view! {
        <div class="console-bar">
            <span data-testid="signed-in">{who}</span>
            {switcher}
            <span data-testid="console-site">{site_label}</span>
            <span data-testid="idle-expiry">{idle}</span>
            <button type="button" data-testid="sign-out" on:click=sign_out>"Sign out"</button>
        </div>
        {if context.can_send {
            view! { <composer::Composer format=settings.payload_format topics=settings.topics /> }.into_any()
        } else {
            view! {
                <section class="card" data-testid="composer-unavailable">
                    <h2>"Send"</h2>
                    <p class="help">"This key cannot send: it lacks the scope send."</p>
                </section>
            }
            .into_any()
        }}
        // The lists load in the browser, once the island is live: resources created under
        // the session's Suspense are not carried into an island's hydration, so lists
        // rendered by the server would meet pending ones and fail to hydrate.
        <Show when=move || live.get() fallback=|| view! { <p class="help">"Loading…"</p> }>
            {view! { <scheduled::Scheduled /> }.into_any()}
            {view! { <history::History /> }.into_any()}
            {view! { <subscribers::Subscribers /> }.into_any()}
            {sees_audit.then(|| view! { <audit::AuditLog /> }.into_any())}
        </Show>
    }
}

/// Whether the console's island has hydrated (its effects have run): the browser's turn.
#[derive(Clone, Copy)]
struct Live(RwSignal<bool>);
