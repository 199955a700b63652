//! Logging setup: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Colour only on a terminal: a log written to a file, a pipe or journald carries no ANSI
//! escape codes (and `NO_COLOR` turns colour off on a terminal too).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour_on_stderr()).try_init();
}

/// True when stderr is a terminal and `NO_COLOR` is unset or empty.
fn colour_on_stderr() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}
