//! The server's one wall clock (server builds only). Every timestamp Clarion stores or
//! compares (RFC 3339 texts, unix seconds and milliseconds) is read here, so a test or a
//! later change has one place to look; durations and deadlines use the monotonic clocks
//! of `std::time::Instant` and tokio instead.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now()
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
