//! The application server's VAPID identity (RFC 8292): the P-256 key (generated, or read
//! from base64url or PEM; where it is kept is the caller's business), and signing the
//! `Authorization: vapid t=…, k=…` header.
//!
//! A JWT is signed once per push-service origin and reused until an hour before it
//! expires; signing per message is the largest avoidable cost in popular senders.
//! `aud` is the endpoint's full origin, port included (`http://127.0.0.1:8090`).

use anyhow::{bail, Context};
use clarion_domain::{base64url, clock, random};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use reqwest::header::HeaderValue;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// How long a signed JWT is valid.
pub const JWT_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// A cached JWT is replaced this long before it expires.
pub const JWT_REFRESH_MARGIN: Duration = Duration::from_secs(3600);

/// The VAPID key pair and subject, plus the per-origin JWT cache.
pub struct VapidKeys {
    key_pair: EcdsaKeyPair,
    public_key: [u8; 65],
    public_key_b64: String,
    fingerprint: String,
    subject: String,
    /// By audience origin, at most [`crate::connections::MAX_TRACKED_ORIGINS`].
    cache: Mutex<lru::LruCache<String, CachedHeader>>,
}

#[derive(Clone)]
struct CachedHeader {
    /// Shared, not copied: a clone of a `HeaderValue` is a reference count.
    header: HeaderValue,
    expires_at: u64,
}

impl std::fmt::Debug for VapidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeys")
            .field("public_key", &self.public_key_b64)
            .field("subject", &self.subject)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// A private scalar and its public point, in the forms the rest of the code needs.
pub struct VapidKeyMaterial {
    secret: p256::SecretKey,
}

impl VapidKeyMaterial {
    /// A fresh random key.
    pub fn generate() -> Self {
        loop {
            let scalar: [u8; 32] = random::bytes();
            // Out-of-range scalars (probability ~2^-32) are simply drawn again.
            if let Ok(secret) = p256::SecretKey::from_slice(&scalar) {
                return Self { secret };
            }
        }
    }

    /// Parses base64url of the raw 32-byte scalar (the format of `web-push generate-vapid-keys`
    /// and the seed tutorial's `private_key.txt`).
    pub fn from_raw_base64url(text: &str) -> anyhow::Result<Self> {
        let bytes = base64url::decode(text).context("VAPID private key is not base64url")?;
        if bytes.len() != 32 {
            bail!("VAPID private key must be 32 bytes, got {}", bytes.len());
        }
        let secret = p256::SecretKey::from_slice(&bytes).context("VAPID private key is not a valid P-256 scalar")?;
        Ok(Self { secret })
    }

    /// Parses PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1 (`BEGIN EC PRIVATE KEY`, as
    /// `openssl ecparam -genkey` writes it, with or without its `EC PARAMETERS` block).
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        if let Some(block) = pem_block(pem, "PRIVATE KEY") {
            let secret = p256::SecretKey::from_pkcs8_pem(&block).context("PKCS#8 PEM is not a P-256 private key")?;
            return Ok(Self { secret });
        }
        if let Some(block) = pem_block(pem, "EC PRIVATE KEY") {
            let secret = p256::SecretKey::from_sec1_pem(&block).context("SEC1 PEM is not a P-256 private key")?;
            return Ok(Self { secret });
        }
        bail!("no PRIVATE KEY or EC PRIVATE KEY block in the PEM")
    }

    /// `CLARION_VAPID_PRIVATE_KEY`: a PEM text, a path to a PEM file, or raw base64url.
    pub fn from_setting(value: &str) -> anyhow::Result<Self> {
        let value = value.trim();
        if value.contains("-----BEGIN") {
            return Self::from_pem(value);
        }
        let path = Path::new(value);
        if path.is_file() {
            let pem = std::fs::read_to_string(path).with_context(|| format!("Failed to read VAPID key file {}", path.display()))?;
            return Self::from_pem(&pem);
        }
        Self::from_raw_base64url(value)
    }

    pub fn private_raw_base64url(&self) -> String {
        base64url::encode(&self.secret.to_bytes())
    }

    pub fn public_key(&self) -> [u8; 65] {
        let point = self.secret.public_key().to_sec1_bytes();
        point.as_ref().try_into().expect("an uncompressed P-256 point is 65 bytes")
    }

    pub fn to_pkcs8_pem(&self) -> String {
        self.secret.to_pkcs8_pem(LineEnding::LF).expect("a P-256 key encodes as PKCS#8").to_string()
    }
}

/// The text of the first `-----BEGIN {label}-----` block, markers included.
fn pem_block(pem: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)?;
    let stop = pem[start..].find(&end)? + start + end.len();
    Some(pem[start..stop].to_string())
}

impl VapidKeys {
    pub fn new(material: &VapidKeyMaterial, subject: &str) -> anyhow::Result<Self> {
        let public_key = material.public_key();
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &material.secret.to_bytes(),
            &public_key,
            random::source(),
        )
        .map_err(|e| anyhow::anyhow!("VAPID key rejected by ring: {e}"))?;
        Ok(Self {
            key_pair,
            public_key,
            public_key_b64: base64url::encode(&public_key),
            fingerprint: base64url::encode(&Sha256::digest(public_key)[..12]),
            subject: subject.to_string(),
            cache: Mutex::new(lru::LruCache::new(crate::connections::MAX_TRACKED_ORIGINS)),
        })
    }

    /// The 65-byte public key, base64url: the page's `applicationServerKey`.
    pub fn public_key_b64(&self) -> &str {
        &self.public_key_b64
    }

    pub fn public_key(&self) -> &[u8; 65] {
        &self.public_key
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Short identifier of the public key, stored with each subscription so a key change
    /// can be told apart from other failures.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The `Authorization` header for a push-service origin, from the cache when fresh.
    pub fn authorization(&self, origin: &str) -> HeaderValue {
        let now = unix_now();
        let mut cache = self.cache.lock().expect("JWT cache lock");
        if let Some(hit) = cache.get(origin) {
            if hit.expires_at > now + JWT_REFRESH_MARGIN.as_secs() {
                return hit.header.clone();
            }
        }
        let expires_at = now + JWT_LIFETIME.as_secs();
        let header = format!("vapid t={}, k={}", self.sign_jwt(origin, expires_at), self.public_key_b64);
        let header = HeaderValue::try_from(header).expect("base64url and ASCII are a valid header value");
        cache.put(origin.to_string(), CachedHeader { header: header.clone(), expires_at });
        header
    }

    /// Signs an ES256 JWT with `aud`, `exp` and `sub`.
    pub fn sign_jwt(&self, audience: &str, expires_at: u64) -> String {
        let header = base64url::encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": expires_at, "sub": self.subject });
        let signing_input = format!("{header}.{}", base64url::encode(claims.to_string().as_bytes()));
        let signature = self.key_pair.sign(random::source(), signing_input.as_bytes()).expect("ECDSA signing does not fail");
        format!("{signing_input}.{}", base64url::encode(signature.as_ref()))
    }
}

fn unix_now() -> u64 {
    clock::unix_seconds().max(0) as u64
}

/// Warns about subjects push services reject or that reach nobody.
pub fn subject_warning(subject: &str) -> Option<String> {
    let lower = subject.to_ascii_lowercase();
    if !(lower.starts_with("mailto:") || lower.starts_with("https:")) {
        return Some(format!("CLARION_VAPID_SUBJECT {subject:?} is not a mailto: or https: URL; push services may reject it"));
    }
    let localish = ["localhost", "127.0.0.1", "[::1]", ".local", ".invalid", ".test", "example.com"];
    localish
        .iter()
        .any(|l| lower.contains(l))
        .then(|| format!("CLARION_VAPID_SUBJECT {subject:?} looks like a placeholder; Apple rejects localhost subjects and push services use it to contact you"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_base64url_and_pem_give_the_same_key() {
        let material = VapidKeyMaterial::generate();
        let raw = VapidKeyMaterial::from_raw_base64url(&material.private_raw_base64url()).unwrap();
        let pem = VapidKeyMaterial::from_pem(&material.to_pkcs8_pem()).unwrap();
        assert_eq!(raw.public_key(), material.public_key());
        assert_eq!(pem.public_key(), material.public_key());
        assert_eq!(material.public_key()[0], 0x04);
    }

    #[test]
    fn reads_openssl_sec1_pem_with_its_parameters_block() {
        let material = VapidKeyMaterial::generate();
        let sec1 = p256::elliptic_curve::SecretKey::to_sec1_pem(&material.secret, LineEnding::LF).unwrap();
        let openssl_style = format!("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}", sec1.as_str());
        assert_eq!(VapidKeyMaterial::from_setting(&openssl_style).unwrap().public_key(), material.public_key());
    }

    #[test]
    fn refuses_short_or_garbage_keys() {
        assert!(VapidKeyMaterial::from_raw_base64url("AAAA").is_err());
        assert!(VapidKeyMaterial::from_setting("not a key at all").is_err());
        // The zero scalar is not a valid private key.
        assert!(VapidKeyMaterial::from_raw_base64url(&base64url::encode(&[0u8; 32])).is_err());
    }

    #[test]
    fn jwt_is_cached_per_origin() {
        let keys = VapidKeys::new(&VapidKeyMaterial::generate(), "mailto:ops@clarion.dev").unwrap();
        let a1 = keys.authorization("https://fcm.googleapis.com");
        let a2 = keys.authorization("https://fcm.googleapis.com");
        let b = keys.authorization("http://127.0.0.1:8090");
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        let a1 = a1.to_str().unwrap();
        assert!(a1.starts_with("vapid t=") && a1.ends_with(&format!(", k={}", keys.public_key_b64())));
    }

    #[test]
    fn the_jwt_cache_holds_a_bounded_number_of_origins() {
        let keys = VapidKeys::new(&VapidKeyMaterial::generate(), "mailto:ops@clarion.dev").unwrap();
        let fcm = keys.authorization("https://fcm.googleapis.com");
        for i in 0..3_000 {
            keys.authorization(&format!("https://made-up-{i}.notify.windows.com"));
            // The origin in use stays cached: the least recently used ones go.
            assert_eq!(keys.authorization("https://fcm.googleapis.com"), fcm);
        }
        assert_eq!(keys.cache.lock().unwrap().len(), crate::connections::MAX_TRACKED_ORIGINS.get());
    }

    #[test]
    fn warns_about_placeholder_subjects() {
        assert!(subject_warning("mailto:me@localhost").is_some());
        assert!(subject_warning("ops@clarion.dev").is_some());
        assert!(subject_warning("mailto:ops@clarion.dev").is_none());
    }
}
