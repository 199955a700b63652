//! Clarion: self-hosted web push notifications.
//!
//! One crate, two targets. The `ssr` build is the `clarion` server binary (see
//! [`server`]); the `hydrate` build is the WASM that makes the page interactive (see
//! `browser`). [`app`], [`components`], [`api`] and [`domain`] compile for both.
#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod components;
pub mod domain;

#[cfg(feature = "hydrate")]
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
