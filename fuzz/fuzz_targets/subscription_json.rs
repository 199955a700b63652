//! The body of `POST /api/v1/subscriptions`: JSON parsing, then every subscription check.
#![no_main]
use clarion::domain::subscription::{NewSubscription, PushHostPolicy};
use clarion::domain::SubscriptionJson;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let policy = PushHostPolicy::from_list("127.0.0.1:8090,*.example.com").unwrap();
    if let Ok(json) = serde_json::from_slice::<SubscriptionJson>(data) {
        if let Ok(subscription) = NewSubscription::parse(&json, &policy) {
            assert!(subscription.endpoint.as_str().len() <= 2048);
            assert_eq!(subscription.p256dh.as_bytes()[0], 4);
        }
    }
});
