//! The encryption floor of the send benchmark (`bench/run.py`): Clarion's own per-message
//! work, [`encryption::encrypt`] (a fresh P-256 key pair, ECDH, HKDF and AES-128-GCM),
//! on one thread with nothing else around it. It is measured in the same run as the
//! senders, so a run on a slower or busier machine shows how much of each push's CPU time
//! is this floor and how much is the rest (database, HTTP, TLS, scheduling).
//!
//! ```text
//! encryption_floor [MESSAGES] [PAYLOAD_BYTES]
//! ```
//!
//! prints `{"messages", "us_per_message", "messages_per_cpu_s"}`, timed by the thread's
//! own CPU time (`/proc/thread-self/schedstat`). Built by `./setup.sh bench`.

use clarion::domain::subscription::{AuthSecret, P256dhKey};
use clarion_push::encryption;
use ring::agreement::{EphemeralPrivateKey, ECDH_P256};
use ring::rand::SystemRandom;

/// This thread's time on a CPU so far, from Linux's scheduler statistics.
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux's /proc/thread-self/schedstat");
    let nanos: u64 = stat.split_whitespace().next().and_then(|n| n.parse().ok()).expect("nanoseconds on a CPU");
    nanos as f64 / 1e9
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("a number"));
    let messages = args.next().unwrap_or(20_000);
    let payload = vec![b'x'; args.next().unwrap_or(150)];
    let rng = SystemRandom::new();
    // A subscriber as a browser makes one: a P-256 public key and a 16-byte secret.
    let subscriber = EphemeralPrivateKey::generate(&ECDH_P256, &rng).expect("key").compute_public_key().expect("public key");
    let p256dh = P256dhKey::from_bytes(subscriber.as_ref()).expect("a P-256 point");
    let auth = AuthSecret::from_bytes(&[7u8; 16]).expect("16 bytes");
    for _ in 0..500 {
        encryption::encrypt(&p256dh, &auth, &payload, &rng).expect("encrypts");
    }
    let started = thread_cpu_seconds();
    for _ in 0..messages {
        std::hint::black_box(encryption::encrypt(&p256dh, &auth, &payload, &rng).expect("encrypts"));
    }
    let seconds = thread_cpu_seconds() - started;
    println!(
        "{}",
        serde_json::json!({
            "messages": messages,
            "us_per_message": seconds * 1e6 / messages as f64,
            "messages_per_cpu_s": messages as f64 / seconds,
        })
    );
}
