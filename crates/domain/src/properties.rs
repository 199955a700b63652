//! Property tests for the domain parsers (server build): no input makes them panic, and
//! whatever they accept has the properties they promise.

use super::base64url;
use super::notification::{Notification, NotificationRequest, MAX_TOPIC_CHARS, MAX_TTL_SECONDS};
use super::subscription::{AuthSecret, P256dhKey, PushEndpoint, PushHostPolicy, KNOWN_PUSH_HOSTS, MAX_ENDPOINT_LEN};
use base64::Engine;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn base64url_round_trips_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(base64url::decode(&base64url::encode(&bytes)).unwrap(), bytes.clone());
        let padded_standard = base64::engine::general_purpose::STANDARD.encode(&bytes);
        prop_assert_eq!(base64url::decode(&padded_standard).unwrap(), bytes);
    }

    #[test]
    fn base64url_never_panics(text in ".{0,200}") {
        let _ = base64url::decode(&text);
    }

    #[test]
    fn accepted_endpoints_are_https_to_a_known_host(raw in "(https?|ftp)://[a-z0-9.@:\\[\\]-]{0,60}(/[a-z0-9/]{0,20})?") {
        let policy = PushHostPolicy::default();
        if let Ok(endpoint) = PushEndpoint::parse(&raw, &policy) {
            let url = endpoint.url();
            prop_assert_eq!(url.scheme(), "https");
            prop_assert!(url.port().is_none());
            prop_assert!(url.username().is_empty() && url.password().is_none());
            prop_assert!(endpoint.as_str().len() <= MAX_ENDPOINT_LEN);
            let host = url.host_str().unwrap();
            prop_assert!(KNOWN_PUSH_HOSTS.iter().any(|k| match k.strip_prefix("*.") {
                Some(suffix) => host.ends_with(&format!(".{suffix}")),
                None => host == *k,
            }), "{} is not a known push host", host);
        }
    }

    #[test]
    fn endpoint_parsing_never_panics(raw in "\\PC{0,300}") {
        let _ = PushEndpoint::parse(&raw, &PushHostPolicy::from_list("127.0.0.1:8090,*.example.com").unwrap());
    }

    #[test]
    fn p256dh_accepts_exactly_the_points_on_the_curve(tail in proptest::collection::vec(any::<u8>(), 64)) {
        let mut bytes = vec![4u8];
        bytes.extend_from_slice(&tail);
        let ours = P256dhKey::from_bytes(&bytes).is_ok();
        let reference = p256::PublicKey::from_sec1_bytes(&bytes).is_ok();
        prop_assert_eq!(ours, reference);
    }

    #[test]
    fn p256dh_refuses_every_other_length(bytes in proptest::collection::vec(any::<u8>(), 0..130)) {
        prop_assume!(bytes.len() != 65);
        prop_assert!(P256dhKey::from_bytes(&bytes).is_err());
    }

    #[test]
    fn auth_is_accepted_iff_16_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        prop_assert_eq!(AuthSecret::from_bytes(&bytes).is_ok(), bytes.len() == 16);
    }

    #[test]
    fn ttl_is_accepted_iff_at_most_28_days(ttl in any::<u32>()) {
        let request = NotificationRequest { title: "t".into(), body: String::new(), ttl: Some(ttl), ..Default::default() };
        prop_assert_eq!(Notification::try_from(request).is_ok(), ttl <= MAX_TTL_SECONDS);
    }

    #[test]
    fn topic_is_accepted_iff_short_strict_base64url(topic in "[A-Za-z0-9_=+/ -]{0,40}") {
        let request = NotificationRequest { title: "t".into(), body: String::new(), topic: Some(topic.clone()), ..Default::default() };
        let expected = !topic.is_empty() && topic.len() <= MAX_TOPIC_CHARS && topic.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(Notification::try_from(request).is_ok(), expected);
    }

    #[test]
    fn accepted_notifications_fit_one_push(title in "\\PC{1,250}", body in "\\PC{0,2100}") {
        let request = NotificationRequest { title, body, ..Default::default() };
        if let Ok(n) = Notification::try_from(request) {
            prop_assert!(n.payload(Some(i64::MAX)).len() <= super::notification::MAX_PAYLOAD_BYTES);
        }
    }
}
