//! The HTML shell and the pages, rendered on the server only (`ssr`): in islands mode the
//! browser gets this as HTML, and code only for the islands in it (the push control, and
//! on `/admin` the console).

use crate::components::admin::AdminPage;
use crate::components::push_control::PushControl;
use crate::server::http::site::{SiteAssets, PKG_DIR};
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, Link, Meta, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{SsrMode, StaticSegment};

/// The document around the app. It links the built stylesheet and loads the bundle of the
/// page asked for: the console's under `/admin`, the page's (the push control alone)
/// everywhere else.
pub fn shell(mut options: LeptosOptions, assets: &SiteAssets) -> impl IntoView {
    set_content_security_policy();
    let path = use_context::<axum::http::request::Parts>().map(|parts| parts.uri.path().to_string()).unwrap_or_default();
    // `HydrationScripts` loads `/<pkg>/<output_name>.js` and `.wasm`: the bundle's name
    // (already content-hashed, so not hashed again).
    options.output_name = assets.bundle_for(&path).into();
    options.site_pkg_dir = PKG_DIR.into();
    options.hash_files = false;
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" href=assets.stylesheet_href() />
                <AutoReload options=options.clone() />
                <HydrationScripts options islands=true />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="Clarion: web push from your own server" />
        <Meta name="description" content="Self-hosted web push notifications." />
        <Meta name="theme-color" content="#1f3a5f" />
        <Link rel="manifest" href="/manifest.webmanifest" />
        <Link rel="icon" href="/icon.svg" type_="image/svg+xml" />
        <Link rel="apple-touch-icon" href="/apple-touch-icon.png" />
        <Meta name="apple-mobile-web-app-capable" content="yes" />
        <Router>
            <Routes fallback=|| view! { <main class="page"><h1>"Page not found"</h1></main> }>
                <Route path=StaticSegment("") view=HomePage />
                // The console's resources resolve before its HTML is sent, so the island
                // hydrates over exactly what the browser will show (signed in or not).
                <Route path=StaticSegment("admin") view=AdminPage ssr=SsrMode::Async />
            </Routes>
        </Router>
    }
}

#[component]
fn HomePage() -> impl IntoView {
    view! {
        <main class="page">
            <header class="masthead">
                <img src="/icon.svg" alt="" width="48" height="48" />
                <div>
                    <h1>"Clarion"</h1>
                    <p class="tagline">"Web push notifications from your own server."</p>
                </div>
            </header>
            <PushControl />
            <section class="explainer" aria-labelledby="how-heading">
                <h2 id="how-heading">"How it works"</h2>
                <ol>
                    <li>"Enable asks your browser for permission and subscribes through its push service, with this server's VAPID public key."</li>
                    <li>"The subscription (an endpoint URL and two keys) is stored on this server, and nowhere else."</li>
                    <li>"To notify you, the server encrypts the message for your browser alone, signs a VAPID token, and hands it to the push service, which wakes this site's service worker to show it."</li>
                </ol>
                <p>"Other backends send through the REST API (" <code>"POST /api/v1/notifications"</code> ") or the " <code>"clarion send"</code> " command. Site owners compose and follow notifications in the " <a href="/admin">"console"</a> "."</p>
            </section>
        </main>
    }
}

/// The page's CSP: scripts only from this origin or carrying this response's nonce (the
/// inline hydration script), WASM compilation allowed, no framing, nothing else.
fn set_content_security_policy() {
    use leptos::nonce::{provide_nonce, use_nonce};
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else { return };
    let nonce = match use_nonce() {
        Some(nonce) => nonce,
        None => {
            provide_nonce();
            use_nonce().expect("a nonce was just provided")
        }
    };
    // `cargo leptos watch` live-reloads over a WebSocket on another port.
    let connect = if std::env::var("LEPTOS_WATCH").is_ok() { "'self' ws:" } else { "'self'" };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: https:; \
         connect-src {connect}; worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
    }
}
