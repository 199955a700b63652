//! The server's one source of randomness (server builds only): the operating system's,
//! through ring. Keys, salts, session tokens, lease names and backoff jitter all come
//! from here.

use ring::rand::{SecureRandom, SystemRandom};
use std::sync::LazyLock;

static SOURCE: LazyLock<SystemRandom> = LazyLock::new(SystemRandom::new);

/// The source itself, for ring's APIs that take one (key generation, signing).
pub fn source() -> &'static SystemRandom {
    &SOURCE
}

/// Fills `bytes`; fails only when the operating system's source does.
pub fn fill(bytes: &mut [u8]) -> Result<(), RandomUnavailable> {
    SOURCE.fill(bytes).map_err(|_| RandomUnavailable)
}

/// `N` random bytes. Panics when the operating system has no randomness to give, which
/// nothing here could work without.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out).expect("the OS random source failed");
    out
}

/// The operating system's random source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the OS random source failed")]
pub struct RandomUnavailable;
