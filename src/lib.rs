//! Clarion: self-hosted web push notifications.
//!
//! One crate, three builds:
//! - `ssr`: the `clarion` server binary (see [`server`]);
//! - `hydrate`: the page's WASM, and with `console` the console's: Leptos islands, so
//!   only the push control and the console hydrate (see [`hydrate`]);
//! - `sdk`: the push control alone, for the SDK that any site embeds (see `sdk/`). It
//!   has neither the console nor the server functions, which the compiler checks: they
//!   are not in this build at all.
//!
//! [`domain`] and the push control compile for all three; [`api`] for the server and the
//! page; `app` (the pages around the islands) for the server alone.
#![recursion_limit = "256"]

#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod api;
#[cfg(feature = "ssr")]
pub mod app;
pub mod components;
pub mod domain;

#[cfg(any(feature = "hydrate", feature = "sdk"))]
pub mod browser;

#[cfg(feature = "ssr")]
pub mod server;

/// The WASM entry point: hydrate the page's islands. Everything outside them is HTML the
/// server rendered, which needs no code; the islands this bundle was built with are its
/// exports, so the page's bundle cannot hydrate the console's island, nor carry its code.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
