//! UI components.

#[cfg(any(feature = "ssr", feature = "hydrate"))]
pub mod admin;
pub mod push_control;
