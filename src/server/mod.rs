//! Everything that runs only on the server (`ssr` feature): configuration, storage, VAPID,
//! encryption, sending, the REST API, the CLI and the local push service.
//!
//! The core operations live in [`subscriptions`], [`audience`] and [`broadcasts`]; the REST handlers,
//! the Leptos server functions and the CLI are thin callers of them.

pub mod admin;
pub mod audience;
pub mod broadcasts;
pub mod cli;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod encryption;
pub mod error;
pub mod http;
pub mod http2;
pub mod metrics;
pub mod resolver;
pub mod rest;
pub mod sdk;
pub mod secrets;
pub mod security;
pub mod sender;
pub mod site;
pub mod startup;
pub mod state;
pub mod store;
pub mod subscriptions;
pub mod telemetry;
pub mod vapid;
