//! The receiving side of web push crypto, on RustCrypto (independent of the sender's
//! `ring` code, so each checks the other): aes128gcm decryption (RFC 8188/8291) and VAPID
//! header verification (RFC 8292).

use crate::protocol;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes128Gcm, Nonce};
use hkdf::Hkdf;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Decrypts an `aes128gcm` push body for the subscription holding `private` and `auth`.
pub fn decrypt(private: &p256::SecretKey, auth: &[u8; 16], body: &[u8]) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("body shorter than the aes128gcm header".into());
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes(body[16..20].try_into().expect("4 bytes")) as usize;
    let id_len = body[20] as usize;
    if id_len != 65 || body.len() < 21 + id_len {
        return Err(format!("key id must be a 65-byte P-256 point, got {id_len} bytes"));
    }
    if record_size < 18 {
        return Err(format!("record size {record_size} is too small"));
    }
    let as_public_bytes = &body[21..21 + id_len];
    let as_public = p256::PublicKey::from_sec1_bytes(as_public_bytes).map_err(|_| "sender key is not on P-256")?;
    let shared = p256::ecdh::diffie_hellman(private.to_nonzero_scalar(), as_public.as_affine());
    let ua_public = private.public_key().to_encoded_point(false);

    let mut ikm = [0u8; 32];
    let info = [b"WebPush: info\0".as_slice(), ua_public.as_bytes(), as_public_bytes].concat();
    Hkdf::<Sha256>::new(Some(auth), &shared.raw_secret_bytes()[..]).expand(&info, &mut ikm).map_err(|e| e.to_string())?;
    let prk = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut base_nonce = [0u8; 12];
    prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek).map_err(|e| e.to_string())?;
    prk.expand(b"Content-Encoding: nonce\0", &mut base_nonce).map_err(|e| e.to_string())?;
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|e| e.to_string())?;

    let records: Vec<&[u8]> = body[21 + id_len..].chunks(record_size).collect();
    if records.is_empty() {
        return Err("no records".into());
    }
    let mut plaintext = Vec::new();
    for (seq, record) in records.iter().enumerate() {
        let mut nonce = base_nonce;
        for (i, b) in (seq as u64).to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        let mut padded = cipher.decrypt(&Nonce::from(nonce), *record).map_err(|_| "decryption failed: wrong keys or a corrupted body")?;
        let last = seq + 1 == records.len();
        let delimiter_at = padded.iter().rposition(|&b| b != 0).ok_or("record has no padding delimiter")?;
        let expected = if last { 2 } else { 1 };
        if padded[delimiter_at] != expected {
            return Err(format!("record {seq} has delimiter {} instead of {expected}", padded[delimiter_at]));
        }
        padded.truncate(delimiter_at);
        plaintext.extend_from_slice(&padded);
    }
    Ok(plaintext)
}

/// The claims of a VAPID JWT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VapidClaims {
    pub aud: String,
    pub exp: u64,
    pub sub: String,
}

/// A verified `Authorization: vapid t=…, k=…` header.
#[derive(Debug, Clone)]
pub struct VerifiedVapid {
    pub claims: VapidClaims,
    pub public_key: [u8; 65],
}

/// Checks the VAPID header as a strict push service does: ES256 signature by `k`, `aud`
/// equal to this service's origin, `exp` in the future and at most 24 h ahead, and a
/// `mailto:` or `https:` subject.
pub fn verify_vapid(header: &str, origin: &str, now: u64) -> Result<VerifiedVapid, String> {
    let (scheme, params) = header.trim().split_once(' ').ok_or("Authorization is not `vapid t=…, k=…`")?;
    if !scheme.eq_ignore_ascii_case("vapid") {
        return Err(format!("Authorization scheme is {scheme:?}, expected vapid"));
    }
    let mut token = None;
    let mut key = None;
    for part in params.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => token = Some(v.trim()),
            Some(("k", v)) => key = Some(v.trim()),
            _ => {}
        }
    }
    let token = token.ok_or("Authorization has no t= (JWT)")?;
    let key_bytes = protocol::decode(key.ok_or("Authorization has no k= (public key)")?).map_err(|e| format!("k: {e}"))?;
    let public_key: [u8; 65] = key_bytes.as_slice().try_into().map_err(|_| "k must be a 65-byte uncompressed P-256 key")?;
    let verifying_key = VerifyingKey::from_sec1_bytes(&public_key).map_err(|_| "k is not a P-256 public key")?;

    let mut parts = token.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err("JWT must have three parts".into());
    };
    let jwt_header: serde_json::Value = serde_json::from_slice(&protocol::decode(header_b64).map_err(|e| format!("JWT header: {e}"))?)
        .map_err(|e| format!("JWT header: {e}"))?;
    if jwt_header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
        return Err("JWT alg must be ES256".into());
    }
    let signature_bytes = protocol::decode(signature_b64).map_err(|e| format!("JWT signature: {e}"))?;
    let signature = Signature::from_slice(&signature_bytes).map_err(|_| "JWT signature must be 64 bytes (r||s)")?;
    let signing_input = &token[..header_b64.len() + 1 + claims_b64.len()];
    verifying_key.verify(signing_input.as_bytes(), &signature).map_err(|_| "JWT signature does not verify with k")?;

    let claims: VapidClaims = serde_json::from_slice(&protocol::decode(claims_b64).map_err(|e| format!("JWT claims: {e}"))?)
        .map_err(|e| format!("JWT claims: {e}"))?;
    if claims.aud != origin {
        return Err(format!("JWT aud {:?} is not this push service's origin {origin:?}", claims.aud));
    }
    if claims.exp <= now {
        return Err("JWT has expired".into());
    }
    if claims.exp > now + 24 * 3600 {
        return Err("JWT exp is more than 24 hours ahead".into());
    }
    let sub = claims.sub.to_ascii_lowercase();
    if !(sub.starts_with("mailto:") || sub.starts_with("https:")) {
        return Err("JWT sub must be a mailto: or https: URL".into());
    }
    Ok(VerifiedVapid { claims, public_key })
}
