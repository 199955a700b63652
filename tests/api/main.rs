//! Integration tests: the real server on port 0 with a temp data dir, the real push
//! service, real HTTP on loopback. One binary for all of them (faster to link).

mod access;
mod audience;
mod connections;
mod console;
mod delivery;
mod helpers;
mod identity;
mod metrics;
mod notifications;
mod process;
mod push_service;
mod robustness;
mod rotation;
mod sdk;
mod security;
mod site;
mod sites;
mod store;
mod subscriptions;
