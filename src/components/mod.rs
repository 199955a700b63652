//! UI components.

pub mod admin;
pub mod push_control;
