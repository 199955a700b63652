//! Message encryption for web push (RFC 8291 over RFC 8188 `aes128gcm`), on `ring`.
//!
//! Per message: a fresh P-256 key pair and 16-byte salt, ECDH with the subscriber's
//! `p256dh`, HKDF-SHA256 keyed by the subscriber's `auth` secret, then one AES-128-GCM
//! record. The subscriber key was validated when it was stored, so the bytes go straight
//! to ECDH (ring still rejects off-curve points).

use clarion_domain::subscription::{AuthSecret, P256dhKey};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
use ring::hkdf::{KeyType, Prk, Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};

/// Header (16 salt + 4 record size + 1 key length + 65 key) plus the 16-byte tag and the
/// 1-byte padding delimiter.
pub const OVERHEAD: usize = 86 + 16 + 1;
/// The record size advertised in the header; one record holds the whole message.
const RECORD_SIZE: u32 = 4096;

/// Encryption can only fail on a broken subscriber key or RNG.
#[derive(Debug, thiserror::Error)]
pub enum EncryptError {
    #[error("the subscriber's p256dh key was refused by ECDH")]
    BadSubscriberKey,
    #[error("the system random source failed")]
    Random,
}

struct Len(usize);

impl KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

fn expand<const N: usize>(prk: &Prk, info: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    prk.expand(info, Len(N)).and_then(|okm| okm.fill(&mut out)).expect("HKDF output length is valid");
    out
}

/// Encrypts one push message body for a subscriber.
pub fn encrypt(p256dh: &P256dhKey, auth: &AuthSecret, plaintext: &[u8], rng: &SystemRandom) -> Result<Vec<u8>, EncryptError> {
    let ephemeral = EphemeralPrivateKey::generate(&ECDH_P256, rng).map_err(|_| EncryptError::Random)?;
    let as_public = ephemeral.compute_public_key().map_err(|_| EncryptError::Random)?;
    let mut salt = [0u8; 16];
    rng.fill(&mut salt).map_err(|_| EncryptError::Random)?;

    let ua_public = p256dh.as_bytes();
    let ikm: [u8; 32] = agreement::agree_ephemeral(ephemeral, &UnparsedPublicKey::new(&ECDH_P256, ua_public), |shared| {
        // IKM = HKDF(auth, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32)
        let prk = Salt::new(HKDF_SHA256, auth.as_bytes()).extract(shared);
        expand::<32>(&prk, &[b"WebPush: info\0", ua_public, as_public.as_ref()])
    })
    .map_err(|_| EncryptError::BadSubscriberKey)?;

    let prk = Salt::new(HKDF_SHA256, &salt).extract(&ikm);
    let cek: [u8; 16] = expand(&prk, &[b"Content-Encoding: aes128gcm\0"]);
    let nonce: [u8; 12] = expand(&prk, &[b"Content-Encoding: nonce\0"]);

    // One buffer, sealed in place: header, then the record, then its tag.
    let mut body = Vec::with_capacity(plaintext.len() + OVERHEAD);
    body.extend_from_slice(&salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_ref());
    let header_len = body.len();
    body.extend_from_slice(plaintext);
    body.push(0x02); // last-record delimiter, no padding
    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &cek).expect("16-byte AES key"));
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body[header_len..])
        .expect("AES-GCM sealing does not fail for small inputs");
    body.extend_from_slice(tag.as_ref());
    Ok(body)
}
