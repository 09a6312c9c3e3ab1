//! Evidence of an HTTP exchange with a target, redacted at the source.
//!
//! What a report shows of a request or response is built here and nowhere
//! else: secret form values become labels (`<subject_token: user>`), tokens in
//! responses become `<access_token>` with their decoded claims kept beside,
//! and any remaining signed-JWT-shaped string is replaced, so no evidence can
//! hold a usable token or a client secret.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use fourleg_core::jwt;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Response headers worth keeping as evidence (lower-case).
pub const KEPT_HEADERS: [&str; 5] = ["cache-control", "pragma", "content-type", "www-authenticate", "location"];

/// Form fields whose values are secrets or tokens, always redacted.
pub const SECRET_FIELDS: [&str; 10] = [
    "subject_token",
    "actor_token",
    "token",
    "refresh_token",
    "client_secret",
    "password",
    "code",
    "code_verifier",
    "id_token_hint",
    "client_assertion",
];

/// Body fields of token responses that hold tokens.
pub const TOKEN_FIELDS: [&str; 6] = [
    "access_token",
    "refresh_token",
    "id_token",
    "issued_token",
    // RFC 7591 §3.2.1 and RFC 7592 §3: a registered client's credentials.
    "client_secret",
    "registration_access_token",
];

/// One request and its response, redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HttpEvidence {
    /// What the step did, e.g. "exchange as agent".
    pub label: String,
    pub method: String,
    pub url: String,
    /// How the client authenticated, e.g. "client_secret_basic as agent".
    pub auth: String,
    /// Form parameters in order (names may repeat), secrets replaced by labels.
    pub form: Vec<(String, String)>,
    pub status: u16,
    /// Kept response headers.
    pub headers: BTreeMap<String, String>,
    /// Response body, tokens replaced.
    pub body: Value,
    /// Decoded header and claims of each token in the response, by field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, jwt::Decoded>,
    /// The DPoP proof the request carried (RFC 9449 §4.1), decoded: its
    /// header and claims, never the proof itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop: Option<Value>,
    pub elapsed_ms: u64,
}

/// The most of a response body kept (and read): a hostile or broken target
/// may answer with megabytes; what is past this is not read at all.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The longest string kept from a body that is not JSON.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Values the harness knows to be secret (client secrets, user passwords,
/// and every token a target has issued to it, opaque ones included),
/// replaced wherever they appear in evidence: a target may echo a secret or
/// a token in an error description, a header or anywhere else.
#[derive(Debug, Default)]
pub struct Redactor {
    known: std::sync::RwLock<Vec<(fourleg_core::Secret, String)>>,
}

/// Secrets shorter than this are not searched for (a four-letter password
/// would redact ordinary words); the lab's generated secrets are far longer.
const MIN_SECRET_LEN: usize = 8;

impl Redactor {
    /// Remembers `secret`, shown as `<label>` wherever it appears.
    pub fn learn(&self, secret: &fourleg_core::Secret, label: &str) {
        if secret.expose().len() < MIN_SECRET_LEN {
            return;
        }
        let mut known = self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !known.iter().any(|(s, _)| s.expose() == secret.expose()) {
            known.push((secret.clone(), label.to_owned()));
        }
    }

    /// Remembers every token of a token response (RFC 6749 §5.1 fields).
    pub fn learn_tokens(&self, body: &Value) {
        for field in TOKEN_FIELDS {
            if let Some(t) = body.get(field).and_then(Value::as_str) {
                self.learn(&fourleg_core::Secret::new(t), &format!("{field} redacted"));
            }
        }
    }

    /// `s` with every known secret replaced by its label, and every
    /// remaining signed-JWT-shaped substring too.
    #[must_use]
    pub fn scrub(&self, s: &str) -> String {
        let known = self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = s.to_owned();
        // Longest first, so a secret that contains another goes whole.
        let mut order: Vec<&(fourleg_core::Secret, String)> = known.iter().collect();
        order.sort_by_key(|(s, _)| std::cmp::Reverse(s.expose().len()));
        for (secret, label) in order {
            if out.contains(secret.expose()) {
                out = out.replace(secret.expose(), &format!("<{label}>"));
            }
        }
        scrub(&out)
    }

    /// A copy of `v` with every string scrubbed (keys included).
    #[must_use]
    pub fn scrub_value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.scrub(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.scrub_value(x)).collect()),
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (self.scrub(k), self.scrub_value(v))).collect()),
            other => other.clone(),
        }
    }
}

/// A body as evidence keeps it: JSON when it parses, else its text cut to
/// [`MAX_TEXT_CHARS`] (bytes that are not UTF-8 shown as U+FFFD), saying so
/// when the read stopped at [`MAX_BODY_BYTES`].
#[must_use]
pub fn body_value(bytes: &[u8], truncated: bool) -> Value {
    let text = String::from_utf8_lossy(bytes);
    if text.trim().is_empty() && !truncated {
        return Value::Null;
    }
    if !truncated {
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            return v;
        }
    }
    let mut kept: String = text.chars().take(MAX_TEXT_CHARS).collect();
    if truncated {
        let _ = write!(kept, " … [body cut: longer than {MAX_BODY_BYTES} bytes]");
    } else if text.chars().count() > MAX_TEXT_CHARS {
        kept.push_str(" …");
    }
    Value::String(kept)
}

/// Replaces every signed-JWT-shaped substring of `s`, at the place it was
/// found, until none is left.
///
/// Replacing by value (`str::replace`) is not enough: a token found in one
/// word can also sit inside a longer token of another word, and cutting it
/// out there leaves a shorter token that still verifies-shaped. Each pass
/// removes at least two dots from the words, so the loop ends.
#[must_use]
pub fn scrub(s: &str) -> String {
    let mut out = s.to_owned();
    loop {
        let found = jwt::find_signed_jwts(&out);
        if found.is_empty() {
            return out;
        }
        let base = out.as_ptr() as usize;
        let mut next = String::with_capacity(out.len());
        let mut at = 0;
        for t in found {
            let start = t.as_ptr() as usize - base;
            next.push_str(&out[at..start]);
            next.push_str("<jwt redacted>");
            at = start + t.len();
        }
        next.push_str(&out[at..]);
        out = next;
    }
}

/// A redacted copy of a response body; decoded tokens are returned beside it.
#[must_use]
pub fn redact_body(body: &Value) -> (Value, BTreeMap<String, jwt::Decoded>) {
    let mut tokens = BTreeMap::new();
    let redacted = match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if TOKEN_FIELDS.contains(&k.as_str()) {
                        if let Some(s) = v.as_str() {
                            if let Ok(d) = jwt::decode(s) {
                                tokens.insert(k.clone(), d);
                            }
                            return (k.clone(), Value::String(format!("<{k}>")));
                        }
                    }
                    (k.clone(), scrub_value(v))
                })
                .collect(),
        ),
        other => scrub_value(other),
    };
    (redacted, tokens)
}

/// The members of a JWK that hold private or symmetric key material (RFC
/// 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2): never shown, wherever a target
/// publishes them.
pub const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn scrub_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(scrub(s)),
        Value::Array(a) => Value::Array(a.iter().map(scrub_value).collect()),
        Value::Object(m) => {
            let is_jwk = m.get("kty").is_some_and(Value::is_string);
            Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        if is_jwk && PRIVATE_JWK_MEMBERS.contains(&k.as_str()) {
                            (k.clone(), Value::String("<private key material, not shown>".into()))
                        } else {
                            (k.clone(), scrub_value(v))
                        }
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token() -> String {
        let input = jwt::encode_unsigned(&json!({"alg": "RS256"}), &json!({"sub": "alice"}));
        jwt::with_signature(&input, &[7u8; 64])
    }

    #[test]
    fn known_secrets_and_opaque_tokens_echoed_anywhere_are_redacted() {
        let r = Redactor::default();
        r.learn(&fourleg_core::Secret::new("client-secret-0123456789"), "secret of agent");
        r.learn(&fourleg_core::Secret::new("abc"), "too short to search");
        r.learn_tokens(&json!({"access_token": "opaque-token-9f8e7d6c5b4a", "token_type": "Bearer"}));
        let echoed = json!({
            "error": "invalid_client",
            "error_description": "secret client-secret-0123456789 is wrong for token opaque-token-9f8e7d6c5b4a",
            "client-secret-0123456789": ["nested opaque-token-9f8e7d6c5b4a"],
            "word": "abc stays",
        });
        let text = r.scrub_value(&echoed).to_string();
        assert!(!text.contains("client-secret-0123456789"), "{text}");
        assert!(!text.contains("opaque-token-9f8e7d6c5b4a"), "{text}");
        assert!(text.contains("<secret of agent>") && text.contains("<access_token redacted>"), "{text}");
        assert!(text.contains("abc stays"), "{text}");
    }

    #[test]
    fn bodies_are_bounded_and_any_bytes_are_kept_readable() {
        assert_eq!(body_value(b"", false), Value::Null);
        assert_eq!(body_value(br#"{"error":"invalid_request"}"#, false)["error"], "invalid_request");
        let v = body_value(&[0xff, 0xfe, b'h', b'i'], false);
        assert_eq!(v.as_str().unwrap(), "\u{fffd}\u{fffd}hi");
        let long = "x".repeat(MAX_TEXT_CHARS * 3);
        let v = body_value(long.as_bytes(), false);
        assert!(v.as_str().unwrap().chars().count() <= MAX_TEXT_CHARS + 2);
        let v = body_value(b"{\"partial\": ", true);
        assert!(v.as_str().unwrap().contains("body cut"), "{v}");
    }

    /// A token that is also the tail of a longer token elsewhere: cutting it
    /// out by value used to leave the longer one's shorter prefix, itself a
    /// signed-JWT shape (found by the `evidence_redactor` fuzz target).
    #[test]
    fn a_token_inside_a_longer_token_leaves_no_token_behind() {
        let inner = token();
        let header = jwt::encode_unsigned(&json!({"alg": "ES256"}), &json!({})).split('.').next().unwrap().to_owned();
        let outer = format!("{header}.e30.{}{inner}", "A".repeat(20));
        assert_eq!(jwt::find_signed_jwts(&outer).len(), 1, "{outer}");
        let text = format!("{inner} and {outer}");
        let out = scrub(&text);
        assert!(jwt::find_signed_jwts(&out).is_empty(), "{out}");
        assert_eq!(out.matches("<jwt redacted>").count(), 2, "{out}");
    }

    #[test]
    fn token_responses_keep_claims_and_lose_tokens() {
        let t = token();
        let body = json!({"access_token": t, "token_type": "Bearer", "note": format!("echo {t}")});
        let (red, tokens) = redact_body(&body);
        let text = red.to_string();
        assert!(jwt::find_signed_jwts(&text).is_empty(), "{text}");
        assert_eq!(red["access_token"], "<access_token>");
        assert_eq!(tokens["access_token"].claims["sub"], "alice");
        assert!(red["note"].as_str().unwrap().contains("<jwt redacted>"));
    }

    #[test]
    fn private_jwk_members_are_never_shown() {
        let body = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "x": "xx", "y": "yy", "d": "SECRET-D"},
            {"kty": "RSA", "n": "nn", "e": "AQAB", "p": "SECRET-P", "q": "SECRET-Q", "dp": "1", "dq": "2", "qi": "3"},
            {"kty": "oct", "k": "SECRET-K"},
        ], "d": "not a jwk member"});
        let (red, _) = redact_body(&body);
        let text = red.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        assert_eq!(red["keys"][0]["x"], "xx");
        assert_eq!(red["keys"][2]["kty"], "oct");
        assert_eq!(red["d"], "not a jwk member");
    }
}
