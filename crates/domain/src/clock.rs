//! The server's one wall clock (server builds only). Every timestamp Clarion stores or
//! compares (RFC 3339 texts, unix seconds and milliseconds) is read here, so a test or a
//! later change has one place to look; durations and deadlines use the monotonic clocks
//! of `std::time::Instant` and tokio instead.

//!
//! `CLARION_CLOCK_OFFSET_SECONDS` shifts this clock for one process: a test aid, for
//! showing that instances whose clocks disagree still share leases and schedules
//! correctly (those are judged by the database's clock). Never set it in production.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use std::sync::OnceLock;

/// The variable that shifts this process's clock (tests only).
pub const OFFSET_VARIABLE: &str = "CLARION_CLOCK_OFFSET_SECONDS";

fn offset() -> TimeDelta {
    static OFFSET: OnceLock<TimeDelta> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let seconds = std::env::var(OFFSET_VARIABLE).ok().and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0);
        TimeDelta::try_seconds(seconds).unwrap_or_default()
    })
}

/// How far `CLARION_CLOCK_OFFSET_SECONDS` shifts this process's clock (0 unless a test set it).
pub fn offset_seconds() -> i64 {
    offset().num_seconds()
}

/// Now, in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now() + offset()
}

/// Now, as unix seconds.
pub fn unix_seconds() -> i64 {
    now().timestamp()
}

/// Now, as unix milliseconds.
pub fn unix_millis() -> i64 {
    now().timestamp_millis()
}

/// Now, as stored: RFC 3339 in UTC with milliseconds (`2026-12-05T12:00:00.000Z`), so
/// the texts sort as the times do.
pub fn rfc3339() -> String {
    now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `unix` seconds in the stored form of [`rfc3339`].
pub fn rfc3339_at(unix: i64) -> String {
    DateTime::<Utc>::from_timestamp(unix, 0).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 text from outside (any offset), in the stored form, or `None` when it is
/// not RFC 3339.
pub fn normalize_rfc3339(text: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(text.trim()).ok().map(|t| t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Millis, true))
}
