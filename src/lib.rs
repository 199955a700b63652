//! Clarion: self-hosted web push notifications.
//!
//! One crate, three builds:
//! - `ssr`: the `clarion` server binary (see [`server`]);
//! - `hydrate`: the WASM that makes Clarion's own page and console interactive;
//! - `sdk`: the push control alone, for the SDK that any site embeds (see `sdk/`). It
//!   has neither the console nor the server functions, which the compiler checks: they
//!   are not in this build at all.
//!
//! [`domain`] and the push control compile for all three; [`app`] and [`api`] for the
//! server and the page.
#![recursion_limit = "256"]

#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod api;
#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod app;
pub mod components;
pub mod domain;

#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub mod browser;

#[cfg(feature = "ssr")]
pub mod server;

/// The WASM entry point: hydrate the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
