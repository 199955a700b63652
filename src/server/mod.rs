//! The server half of the app (`ssr` feature): configuration, the axum layer ([`http`]:
//! REST, the console's sign-in, static files, CORS, the client's address, `/metrics`),
//! the CLI, and the start-up that wires them to the core.
//!
//! The operations themselves live in `clarion_core` (over `clarion_push` and
//! `clarion_store`); the REST handlers, the Leptos server functions and the CLI are thin
//! callers of them.

pub mod cli;
pub mod config;
pub mod http;
pub mod startup;
pub mod state;
pub mod telemetry;
