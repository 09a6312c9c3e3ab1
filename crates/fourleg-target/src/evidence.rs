//! Evidence of an HTTP exchange with a target, redacted at the source.
//!
//! What a report shows of a request or response is built here and nowhere
//! else: secret form values become labels (`<subject_token: user>`), tokens in
//! responses become `<access_token>` with their decoded claims kept beside,
//! and any remaining signed-JWT-shaped string is replaced, so no evidence can
//! hold a usable token or a client secret.

use std::collections::BTreeMap;

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
pub const TOKEN_FIELDS: [&str; 4] = ["access_token", "refresh_token", "id_token", "issued_token"];

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
    pub elapsed_ms: u64,
}

/// Replaces every signed-JWT-shaped substring of `s`.
#[must_use]
pub fn scrub(s: &str) -> String {
    let mut out = s.to_owned();
    for t in jwt::find_signed_jwts(s) {
        out = out.replace(t, "<jwt redacted>");
    }
    out
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

fn scrub_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(scrub(s)),
        Value::Array(a) => Value::Array(a.iter().map(scrub_value).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), scrub_value(v))).collect()),
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
}
