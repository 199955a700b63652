//! The body of `POST /api/v1/notifications`: JSON parsing, then validation into a payload.
#![no_main]
use clarion::domain::notification::{Notification, MAX_PAYLOAD_BYTES};
use clarion::domain::NotificationRequest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<NotificationRequest>(data) {
        if let Ok(notification) = Notification::try_from(request) {
            assert!(notification.payload(Some(i64::MAX)).len() <= MAX_PAYLOAD_BYTES);
        }
    }
});
