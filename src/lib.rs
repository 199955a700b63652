//! Clarion: self-hosted web push notifications. This is the app crate: the pages, the
//! console and the push control (Leptos), the server functions, the axum layer, the CLI
//! and `main`. Beneath it, each its own crate: `clarion-domain` (wire types, here as
//! [`domain`]), `clarion-push` (the sender), `clarion-store` (the database) and
//! `clarion-core` (the operations); docs/architecture.md draws them.
//!
//! Three builds of this crate:
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
/// The wire types and their validation, shared with the SDK and the server crates.
pub use clarion_domain as domain;

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
