//! UI components.

#[cfg(any(feature = "ssr", feature = "console"))]
pub mod admin;
pub mod push_control;
