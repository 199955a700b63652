//! Clarion's web layer, by room: [`listener`] (connections: their cap, per-client share and
//! deadlines), [`rest`] (the REST API, `/healthz`, `/sw.js`), [`admin`] (the console's
//! sign-in), [`client_ip`] and [`origins`] (who is calling, from which site), [`security`]
//! (the extractors and the middleware that defend writes), [`site_scope`] (which site a
//! request is for), [`site`] and [`sdk`] (built files), [`metrics`] (`/metrics`).

pub mod admin;
pub mod client_ip;
pub mod listener;
pub mod metrics;
pub mod origins;
pub mod rest;
pub mod sdk;
pub mod security;
pub mod site;
pub mod site_scope;

pub use listener::{serve, ConnectionLimits};
