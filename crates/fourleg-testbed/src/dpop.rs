//! DPoP at the test bed's token endpoint (RFC 9449): the proof of a token
//! request checked as §4.3 lists, the issued access token bound to its key
//! (§5, §6.1), and the switches that skip one check or mishandle one binding.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::oauth::dpop::{origin, thumbprint, verify_es256, HEADER, PROOF_TYP};
use fourleg_core::oauth::ErrorCode as E;
use serde_json::{Map, Value};

use crate::breakage::Breakage;
use crate::server::{now, OAuthError, Server};

/// How long after its `iat` a proof is accepted, and how far ahead of the
/// clock (RFC 9449 §11.1: "seconds or minutes").
pub const WINDOW_S: i64 = 60;
pub const SKEW_S: i64 = 5;

/// The `jti`s of the proofs accepted so far (RFC 9449 §11.1).
#[derive(Debug, Default)]
pub struct Seen(Mutex<HashSet<String>>);

impl Seen {
    /// Records `jti`; false when it was seen before.
    fn first_use(&self, jti: &str) -> bool {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(jti.to_owned())
    }
}

/// Which grant the proof came with: the exchange grant has a switch that
/// skips every check (a server that validates proofs at login only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Login,
    Exchange,
}

fn invalid(s: &Server, why: &str) -> OAuthError {
    let code = if s.is(Breakage::DpopErrorInvalidRequest) { E::InvalidRequest } else { E::InvalidDpopProof };
    OAuthError::new(code, format!("DPoP proof: {why}"))
}

/// A thumbprint as the loose variant computes it: the right members, but in
/// the order JWKs are usually written (`kty` first), where RFC 7638 §3.3
/// wants them in lexicographic order.
fn loose_thumbprint(jwk: &Value) -> String {
    use sha2::Digest as _;
    let m = |k: &str| serde_json::json!(jwk.get(k).and_then(Value::as_str).unwrap_or(""));
    let text = format!(r#"{{"kty":{},"crv":{},"x":{},"y":{}}}"#, m("kty"), m("crv"), m("x"), m("y"));
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Checks the request's DPoP proof (RFC 9449 §4.3) against `url` and POST,
/// and returns the thumbprint of its key: what the issued token is bound to.
/// No `DPoP` header: `None`.
pub fn check(s: &Server, headers: &HeaderMap, url: &str, grant: Grant) -> Result<Option<String>, OAuthError> {
    let values: Vec<&str> = headers.get_all(HEADER).iter().filter_map(|v| v.to_str().ok()).collect();
    let proof = match values.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(invalid(s, "more than one DPoP header")),
    };
    let skip = grant == Grant::Exchange && s.is(Breakage::DpopExchangeUnchecked);
    let parts: Vec<&str> = proof.split('.').collect();
    let [h, c, sig] = parts.as_slice() else { return Err(invalid(s, "not a JWT")) };
    let part = |p: &str| -> Result<Map<String, Value>, OAuthError> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|_| invalid(s, "not base64url"))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(invalid(s, "not a JSON object")),
        }
    };
    let (header, claims) = (part(h)?, part(c)?);
    let jwk = header.get("jwk").cloned().unwrap_or(Value::Null);
    let key = if s.is(Breakage::DpopThumbprintLoose) { Some(loose_thumbprint(&jwk)) } else { thumbprint(&jwk) };
    let Some(key) = key else { return Err(invalid(s, "no usable jwk")) };
    if skip {
        return Ok(Some(key));
    }
    // §4.3 check 4.
    if header.get("typ").and_then(Value::as_str) != Some(PROOF_TYP) && !s.is(Breakage::DpopTypUnchecked) {
        return Err(invalid(s, "typ is not dpop+jwt"));
    }
    // §4.3 check 7.
    if jwk.get("d").is_some() && !s.is(Breakage::DpopPrivateKeyAccepted) {
        return Err(invalid(s, "jwk carries a private key"));
    }
    // §4.3 checks 5 and 6: ES256 only, verified with the header's own key.
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let signed = match alg {
        "none" => s.is(Breakage::DpopAlgNoneAccepted),
        "ES256" => s.is(Breakage::DpopSignatureUnchecked) || verify_es256(&jwk, &format!("{h}.{c}"), sig),
        _ => false,
    };
    if !signed {
        return Err(invalid(s, "the signature does not verify with the jwk"));
    }
    // §4.3 check 3 (§4.2: jti, htm, htu, iat).
    let jti = claims.get("jti").and_then(Value::as_str);
    if jti.is_none() && !s.is(Breakage::DpopJtiOptional) {
        return Err(invalid(s, "no jti"));
    }
    let (Some(htm), Some(htu), Some(iat)) = (
        claims.get("htm").and_then(Value::as_str),
        claims.get("htu").and_then(Value::as_str),
        claims.get("iat").and_then(Value::as_i64),
    ) else {
        return Err(invalid(s, "a required claim is missing"));
    };
    // §4.3 check 8.
    if htm != "POST" && !s.is(Breakage::DpopHtmUnchecked) {
        return Err(invalid(s, "htm is not the request's method"));
    }
    // §4.3 check 9, and the near misses of comparing it.
    let htu_ok = match s.broken {
        Some(Breakage::DpopHtuHostOnly) => origin(htu) == origin(url),
        Some(Breakage::DpopHtuPrefix) => url.starts_with(htu),
        Some(Breakage::DpopHtuExtends) => htu.starts_with(url),
        _ => htu == url,
    };
    if !htu_ok {
        return Err(invalid(s, "htu is not the request's URI"));
    }
    // §4.3 check 11, §11.1.
    let t = now();
    let fresh = match s.broken {
        Some(Breakage::DpopIatStaleOnly) => iat >= t - WINDOW_S,
        _ => iat >= t - WINDOW_S && iat <= t + SKEW_S,
    };
    if !fresh {
        return Err(invalid(s, "iat is outside the acceptable window"));
    }
    // §11.1: single use.
    if let Some(j) = jti {
        if !s.seen.first_use(j) && !s.is(Breakage::DpopJtiReusable) {
            return Err(invalid(s, "this proof was used before"));
        }
    }
    Ok(Some(key))
}

/// The binding of an issued access token (RFC 9449 §5, §6.1): the claims
/// get `cnf.jkt`, and the `token_type` to announce is returned.
///
/// `proof_key`: the key of the request's proof; `subject_key`: the key the
/// subject token is bound to, on an exchange. A conformant server binds to
/// the proof's key; with no proof, an exchange keeps the subject's binding.
pub fn bind(
    s: &Server,
    claims: &mut Map<String, Value>,
    proof_key: Option<&str>,
    subject_key: Option<&str>,
    grant: Grant,
) -> &'static str {
    let exchange = grant == Grant::Exchange;
    let key = match (proof_key, subject_key) {
        (Some(_), _) if exchange && s.is(Breakage::DpopStrippedOnExchange) => None,
        (Some(_), Some(sk)) if s.is(Breakage::DpopSubjectBindingKept) => Some(sk),
        (Some(pk), _) => Some(pk),
        (None, Some(_)) if s.is(Breakage::DpopSubjectLaundered) => None,
        (None, Some(sk)) => Some(sk),
        (None, None) => None,
    };
    let Some(key) = key else { return "Bearer" };
    if !s.is(Breakage::DpopBindingDropped) {
        claims.insert("cnf".into(), serde_json::json!({"jkt": key}));
    }
    if s.is(Breakage::DpopBearerAnnounced) {
        "Bearer"
    } else {
        "DPoP"
    }
}
