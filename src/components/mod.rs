//! UI components.

pub mod push_control;
