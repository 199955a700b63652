//! The protocol limits this push service enforces, written down here and nowhere else:
//! RFC 8030 (Topic, Urgency, TTL), RFC 8291 (the body size) and the base64url forms they
//! use. The sender has its own copies; the tests compare the two by their behaviour.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// RFC 8030 §5.4: a Topic is at most 32 characters of the base64url alphabet.
pub const MAX_TOPIC_CHARS: usize = 32;

/// RFC 8030 §5.3: the Urgency values, lowest first.
pub const URGENCIES: [&str; 4] = ["very-low", "low", "normal", "high"];

/// The largest push body push services accept (RFC 8291 §4: 4096 bytes of record).
pub const MAX_BODY_BYTES: usize = 4096;

/// Unpadded base64url, as push messages and keys travel.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url; trailing `=` padding is tolerated, the standard alphabet is not.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(text.trim().trim_end_matches('=')).map_err(|e| format!("not base64url: {e}"))
}

/// True when `text` is non-empty and only of the base64url alphabet, unpadded.
pub fn is_strict_base64url(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Now, as RFC 3339 with milliseconds, for the messages' `received_at`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_refuses_the_standard_alphabet() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
        assert_eq!(decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("+/8").is_err());
        assert!(is_strict_base64url("abc-_09") && !is_strict_base64url("a=") && !is_strict_base64url(""));
    }
}
