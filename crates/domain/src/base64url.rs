//! base64url as web push uses it, decoded leniently.
//!
//! Browsers emit unpadded base64url (`PushSubscription.toJSON()`), but keys pasted from
//! tutorials, `openssl` or other libraries often come padded or in the standard alphabet.
//! Decoding accepts all of these; encoding always produces unpadded base64url.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Why a string is not base64url.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not valid base64url: {0}")]
pub struct Base64UrlError(String);

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url, tolerating `=` padding, surrounding white space and the standard
/// alphabet's `+` and `/`.
pub fn decode(text: &str) -> Result<Vec<u8>, Base64UrlError> {
    let trimmed = text.trim().trim_end_matches('=');
    if trimmed.contains('=') {
        return Err(Base64UrlError("padding in the middle".into()));
    }
    let normalized: String = trimmed
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(normalized.as_bytes()).map_err(|e| Base64UrlError(e.to_string()))
}

/// True when `text` is non-empty and uses only the base64url alphabet, without padding
/// (the form RFC 8030 requires of a `Topic`).
pub fn is_strict_alphabet(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_unpadded_base64url() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        assert_eq!(decode(&encode(&bytes)).unwrap(), bytes);
    }

    #[test]
    fn accepts_padding_and_the_standard_alphabet() {
        // 0xfb 0xff encodes to "+/8=" in standard base64 and "-_8" in base64url.
        assert_eq!(decode("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("  -_8\n").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn decodes_a_real_vapid_public_key_to_65_bytes() {
        let key = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U";
        let bytes = decode(key).unwrap();
        assert_eq!(bytes.len(), 65);
        assert_eq!(bytes[0], 0x04);
    }

    #[test]
    fn rejects_garbage_and_inner_padding() {
        assert!(decode("not base64!").is_err());
        assert!(decode("ab=cd").is_err());
        assert!(decode("a").is_err());
    }

    #[test]
    fn strict_alphabet_refuses_padding_and_symbols() {
        assert!(is_strict_alphabet("abc-_09"));
        assert!(!is_strict_alphabet("abc="));
        assert!(!is_strict_alphabet("a+b"));
        assert!(!is_strict_alphabet(""));
    }
}
