//! Reading JWTs without keeping them usable (RFC 7519 §7.2 decoding, no
//! validation).
//!
//! Evidence and reports show a token as its decoded header and claims; the
//! signature is dropped, so nothing a report holds can be replayed.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A JWT's header and claims, signature stripped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Decoded {
    pub header: Value,
    pub claims: Value,
    /// Whether the token carried a non-empty signature (it is never kept).
    pub signed: bool,
}

/// Why a string is not a decodable JWS compact serialization.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a JWT: expected 3 dot-separated parts, found {0}")]
    Parts(usize),
    #[error("not a JWT: the {0} is not base64url")]
    Base64(&'static str),
    #[error("not a JWT: the {0} is not a JSON object")]
    Json(&'static str),
}

fn part(b64: &str, what: &'static str) -> Result<Value, DecodeError> {
    let bytes = URL_SAFE_NO_PAD.decode(b64.trim_end_matches('=')).map_err(|_| DecodeError::Base64(what))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| DecodeError::Json(what))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(DecodeError::Json(what))
    }
}

/// Decodes a compact JWS without checking anything.
pub fn decode(token: &str) -> Result<Decoded, DecodeError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(DecodeError::Parts(parts.len()));
    }
    Ok(Decoded { header: part(parts[0], "header")?, claims: part(parts[1], "payload")?, signed: !parts[2].is_empty() })
}

/// Encodes header and claims as a compact JWS with the given signature bytes
/// (empty for `alg: none`). Used to build the malformed and forged tokens of
/// the attack scenarios.
#[must_use]
pub fn encode_unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

/// Appends a base64url signature to a signing input.
#[must_use]
pub fn with_signature(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Whether `s` looks like a signed compact JWS: three base64url parts, the
/// first decoding to a JSON header. Used by redaction and by the tests that
/// scan reports for usable tokens.
#[must_use]
pub fn looks_like_signed_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[2].len() >= 16
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        && part(parts[0], "header").is_ok()
}

/// Finds every signed-JWT-shaped substring of `text`, also where a token
/// touches a dot of the surrounding text ("invalid token eyJ….sig." at the
/// end of a sentence, "v1.eyJ…"): each run of base64url parts joined by dots
/// is searched for three consecutive parts that make a token.
#[must_use]
pub fn find_signed_jwts(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')) {
        // Byte ranges of the word's dot-separated parts.
        let mut parts = Vec::new();
        let mut start = 0;
        for (i, b) in word.bytes().enumerate() {
            if b == b'.' {
                parts.push((start, i));
                start = i + 1;
            }
        }
        parts.push((start, word.len()));
        let mut i = 0;
        while i + 3 <= parts.len() {
            let candidate = &word[parts[i].0..parts[i + 2].1];
            if looks_like_signed_jwt(candidate) {
                found.push(candidate);
                i += 3;
            } else {
                i += 1;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> String {
        let input =
            encode_unsigned(&json!({"alg": "RS256", "kid": "k1"}), &json!({"sub": "alice", "act": {"sub": "agent"}}));
        with_signature(&input, b"0123456789abcdef0123456789")
    }

    #[test]
    fn decoding_keeps_header_and_claims_and_drops_the_signature() {
        let d = decode(&sample()).unwrap();
        assert_eq!(d.header["kid"], "k1");
        assert_eq!(d.claims["act"]["sub"], "agent");
        assert!(d.signed);
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("MDEyMzQ1"), "signature leaked: {json}");
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(decode("abc").unwrap_err(), DecodeError::Parts(1));
        assert_eq!(decode("WzFd.b.c").unwrap_err(), DecodeError::Json("header"));
        assert_eq!(decode("a.b.c").unwrap_err(), DecodeError::Base64("header"));
        assert_eq!(decode("!!.b.c").unwrap_err(), DecodeError::Base64("header"));
    }

    #[test]
    fn signed_jwts_are_found_in_text() {
        let t = sample();
        let text = format!("Authorization: Bearer {t}\nbody=subject_token={t}&x=1");
        assert_eq!(find_signed_jwts(&text), vec![t.as_str(), t.as_str()]);
        let unsigned = format!("{}.", encode_unsigned(&json!({"alg": "none"}), &json!({})));
        assert!(find_signed_jwts(&unsigned).is_empty());
        assert!(find_signed_jwts("version 1.2.3 and a.b.c").is_empty());
    }

    #[test]
    fn a_token_touching_a_dot_is_still_found() {
        let t = sample();
        for text in [format!("invalid token {t}."), format!("v1.{t}"), format!("...{t}...{t}.")] {
            let found = find_signed_jwts(&text);
            assert!(!found.is_empty() && found.iter().all(|f| *f == t), "{text}: {found:?}");
        }
        assert_eq!(find_signed_jwts(&format!("...{t}...{t}.")).len(), 2);
    }
}
