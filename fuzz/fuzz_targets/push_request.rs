//! What `clarion push-service` parses from a push: the VAPID `Authorization` header and
//! the aes128gcm body.
#![no_main]
use clarion_push_service::{decrypt, verify_vapid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len().saturating_sub(1));
    let (header, body) = data.split_at(split.min(data.len()));
    if let Ok(text) = std::str::from_utf8(header) {
        let _ = verify_vapid(text, "http://127.0.0.1:8090", 1_900_000_000);
    }
    let secret = p256_secret();
    let _ = decrypt(&secret, &[7u8; 16], body);
});

fn p256_secret() -> p256::SecretKey {
    p256::SecretKey::from_slice(&[1u8; 32]).expect("a valid scalar")
}
