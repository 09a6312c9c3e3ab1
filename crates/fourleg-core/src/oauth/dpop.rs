//! DPoP (RFC 9449): the proofs the harness sends with token requests (§4),
//! each one well made or broken in exactly one way, and the JWK SHA-256
//! thumbprint (RFC 7638) that names the key a token is bound to (§6.1,
//! `cnf.jkt`).
//!
//! A proof is a credential for one request within the server's window
//! (§11.1): it is kept in a [`Secret`], and reports show its decoded header
//! and claims only.

use std::fmt;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use p256::ecdsa::signature::Signer as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::jwt;
use crate::secret::Secret;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";

/// The HTTP header that carries a proof (RFC 9449 §4.1).
pub const HEADER: &str = "DPoP";

/// The one thing wrong with a proof that is otherwise valid for its
/// request: each breaks one of RFC 9449 §4.3's checks, so a server that
/// accepts it skipped that check and no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Flaw {
    /// §4.3 check 8: `htm` is `GET` on a `POST`.
    Htm,
    /// §4.3 check 9: `htu` names another path of the same origin.
    HtuOtherPath,
    /// §4.3 check 9: `htu` is only the origin (`scheme://host:port/`), a
    /// prefix of the real URI: a server that accepts any URI starting with
    /// the claim takes it.
    HtuOriginOnly,
    /// §4.3 check 9: `htu` is the real URI with a path segment added: a
    /// server that accepts any claim starting with the real URI takes it.
    HtuLonger,
    /// §4.3 check 6: signed by another key than the `jwk` in the header.
    Signature,
    /// §4.3 check 4: `typ` is `JWT`.
    Typ,
    /// §4.3 check 5: `alg` is `none`, with no signature.
    AlgNone,
    /// §4.3 check 7: the `jwk` carries the private key (`d`).
    PrivateKey,
    /// §4.3 check 3: no `jti` (§4.2: REQUIRED).
    NoJti,
    /// §4.3 check 11, §11.1: created an hour ago.
    IatPast,
    /// §4.3 check 11: created an hour from now.
    IatFuture,
}

impl Flaw {
    pub const ALL: [Flaw; 11] = [
        Flaw::Htm,
        Flaw::HtuOtherPath,
        Flaw::HtuOriginOnly,
        Flaw::HtuLonger,
        Flaw::Signature,
        Flaw::Typ,
        Flaw::AlgNone,
        Flaw::PrivateKey,
        Flaw::NoJti,
        Flaw::IatPast,
        Flaw::IatFuture,
    ];

    /// What is wrong, for evidence.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Flaw::Htm => "htm GET on a POST",
            Flaw::HtuOtherPath => "htu: another path of the same origin",
            Flaw::HtuOriginOnly => "htu: the origin alone, a prefix of the URI",
            Flaw::HtuLonger => "htu: the URI with a path segment added",
            Flaw::Signature => "signed by a key other than its jwk",
            Flaw::Typ => "typ JWT instead of dpop+jwt",
            Flaw::AlgNone => "alg none, unsigned",
            Flaw::PrivateKey => "jwk carries the private key",
            Flaw::NoJti => "no jti",
            Flaw::IatPast => "iat an hour ago",
            Flaw::IatFuture => "iat an hour from now",
        }
    }
}

/// How far from now a stale or future proof's `iat` is, in seconds.
pub const IAT_SKEW_S: i64 = 3600;

/// A P-256 key the harness proves possession of (ES256 proofs).
pub struct ProofKey {
    key: p256::ecdsa::SigningKey,
    /// The public JWK with RFC 7638's required members only.
    jwk: Value,
    thumbprint: String,
}

impl fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProofKey").field("jkt", &self.thumbprint).finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWK SHA-256 thumbprint of a public key (RFC 7638 §3): the base64url
/// SHA-256 of its required members (§3.2; RFC 8037 §2 for OKP), in
/// lexicographic order, without whitespace. `None` for a JWK that lacks one.
#[must_use]
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let members: &[&str] = match jwk.get("kty")?.as_str()? {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        _ => return None,
    };
    let mut canonical = String::from("{");
    for (i, m) in members.iter().enumerate() {
        let v = jwk.get(*m)?.as_str()?;
        if i > 0 {
            canonical.push(',');
        }
        // serde_json writes a string with RFC 8259's escapes, as §3.3 asks.
        let _ = write!(canonical, "{}:{}", json!(m), json!(v));
    }
    canonical.push('}');
    Some(b64(&Sha256::digest(canonical.as_bytes())))
}

/// A proof made for one request, with its decoded parts for evidence.
#[derive(Debug, Clone)]
pub struct Proof {
    pub value: Secret,
    pub header: Value,
    pub claims: Value,
}

impl Proof {
    /// The decoded header and claims, as reports show a proof. A private
    /// key member of its `jwk` (the `private-key` flaw's `d`, RFC 7518 §6) is
    /// replaced by a label: reports never carry key material.
    #[must_use]
    pub fn shown(&self) -> Value {
        let mut header = self.header.clone();
        if let Some(jwk) = header.get_mut("jwk").and_then(Value::as_object_mut) {
            for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                if let Some(v) = jwk.get_mut(member) {
                    *v = json!("<private key redacted>");
                }
            }
        }
        json!({"header": header, "claims": self.claims})
    }

    /// A proof as it was received, decoded for evidence; `None` for one
    /// that is not a JWT.
    #[must_use]
    pub fn from_sent(value: Secret) -> Option<Self> {
        let d = jwt::decode(value.expose()).ok()?;
        Some(Self { header: d.header, claims: d.claims, value })
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The origin of a URL (`scheme://authority`), without a path.
#[must_use]
pub fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    url[after_scheme..].find('/').map_or(url, |i| &url[..after_scheme + i])
}

/// Whether `signature` (base64url, r‖s) is an ES256 signature of `input` by
/// the P-256 public key `jwk` (RFC 9449 §4.3 check 6: the proof verifies
/// with the key in its own header). Any other key type is `false`.
#[must_use]
pub fn verify_es256(jwk: &Value, input: &str, signature: &str) -> bool {
    use p256::ecdsa::signature::Verifier as _;
    if jwk.get("kty").and_then(Value::as_str) != Some("EC") || jwk.get("crv").and_then(Value::as_str) != Some("P-256") {
        return false;
    }
    let coord = |m: &str| URL_SAFE_NO_PAD.decode(jwk.get(m).and_then(Value::as_str).unwrap_or("")).unwrap_or_default();
    let (x, y) = (coord("x"), coord("y"));
    if x.len() != 32 || y.len() != 32 {
        return false;
    }
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    let Ok(key) = p256::ecdsa::VerifyingKey::from_encoded_point(&point) else { return false };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(signature) else { return false };
    let Ok(sig) = p256::ecdsa::Signature::from_slice(&sig) else { return false };
    key.verify(input.as_bytes(), &sig).is_ok()
}

impl ProofKey {
    /// A fresh P-256 key.
    #[must_use]
    pub fn generate() -> Self {
        Self::from_key(p256::ecdsa::SigningKey::random(&mut rand::thread_rng()))
    }

    fn from_key(key: p256::ecdsa::SigningKey) -> Self {
        let point = key.verifying_key().to_encoded_point(false);
        let coordinate = |c: Option<&p256::FieldBytes>| c.map_or_else(String::new, |c| b64(c));
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": coordinate(point.x()), "y": coordinate(point.y())});
        let thumbprint = thumbprint(&jwk).unwrap_or_default();
        Self { key, jwk, thumbprint }
    }

    /// The key's JWK SHA-256 thumbprint: the `cnf.jkt` of a token bound to it.
    #[must_use]
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The public JWK (RFC 7638's members only).
    #[must_use]
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// A proof for a request of `htm` to `htu` (RFC 9449 §4.2), well made, or
    /// broken by `flaw` and nothing else.
    #[must_use]
    pub fn proof(&self, htm: &str, htu: &str, flaw: Option<Flaw>) -> Proof {
        let mut jwk = self.jwk.clone();
        if flaw == Some(Flaw::PrivateKey) {
            jwk["d"] = json!(b64(&self.key.to_bytes()));
        }
        let alg = if flaw == Some(Flaw::AlgNone) { "none" } else { "ES256" };
        let typ = if flaw == Some(Flaw::Typ) { "JWT" } else { PROOF_TYP };
        let header = json!({"typ": typ, "alg": alg, "jwk": jwk});
        let htm = if flaw == Some(Flaw::Htm) { "GET".to_owned() } else { htm.to_owned() };
        let htu = match flaw {
            Some(Flaw::HtuOtherPath) => format!("{}/fourleg-not-this-endpoint", origin(htu)),
            Some(Flaw::HtuOriginOnly) => format!("{}/", origin(htu)),
            Some(Flaw::HtuLonger) => format!("{}/fourleg", htu.trim_end_matches('/')),
            _ => htu.to_owned(),
        };
        let iat = match flaw {
            Some(Flaw::IatPast) => now() - IAT_SKEW_S,
            Some(Flaw::IatFuture) => now() + IAT_SKEW_S,
            _ => now(),
        };
        let mut claims = json!({"jti": b64(&rand::random::<[u8; 16]>()), "htm": htm, "htu": htu, "iat": iat});
        if flaw == Some(Flaw::NoJti) {
            claims.as_object_mut().map(|c| c.remove("jti"));
        }
        let input = jwt::encode_unsigned(&header, &claims);
        let value = match flaw {
            Some(Flaw::AlgNone) => format!("{input}."),
            Some(Flaw::Signature) => {
                let other = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
                let sig: p256::ecdsa::Signature = other.sign(input.as_bytes());
                jwt::with_signature(&input, &sig.to_bytes())
            }
            _ => {
                let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
                jwt::with_signature(&input, &sig.to_bytes())
            }
        };
        Proof { value: Secret::new(value), header, claims }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9449 §4.2 Figure 4's key has the `jkt` of §6.1 Figure 9.
    #[test]
    fn thumbprint_of_the_rfc_example_key() {
        let jwk = json!({
            "kty": "EC",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
            "crv": "P-256"
        });
        assert_eq!(thumbprint(&jwk).as_deref(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
        // Members outside §3.2's list do not change it; a missing one is None.
        let mut extra = jwk.clone();
        extra["alg"] = json!("ES256");
        extra["kid"] = json!("k");
        assert_eq!(thumbprint(&extra), thumbprint(&jwk));
        assert_eq!(thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": "a"})), None);
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "a"})), None);
    }

    /// RFC 7638 §3.1's RSA example.
    #[test]
    fn thumbprint_of_the_rfc7638_example() {
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(thumbprint(&jwk).as_deref(), Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"));
    }

    /// Whether the proof's signature verifies with the key in its own `jwk`
    /// (RFC 9449 §4.3 check 6), as a server would check it.
    fn verifies(p: &Proof) -> bool {
        let token = p.value.expose();
        let Some((input, sig)) = token.rsplit_once('.') else { return false };
        p.header["alg"] == "ES256" && verify_es256(&p.header["jwk"], input, sig)
    }

    #[test]
    fn a_good_proof_verifies_with_its_own_jwk_and_names_the_request() {
        let k = ProofKey::generate();
        let p = k.proof("POST", "http://127.0.0.1:8080/realms/r/token", None);
        assert_eq!(p.header["typ"], "dpop+jwt");
        assert_eq!(p.header["alg"], "ES256");
        assert_eq!(thumbprint(&p.header["jwk"]).as_deref(), Some(k.thumbprint()));
        assert_eq!(p.claims["htm"], "POST");
        assert_eq!(p.claims["htu"], "http://127.0.0.1:8080/realms/r/token");
        assert!(p.claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        assert!((p.claims["iat"].as_i64().unwrap_or(0) - now()).abs() <= 2);
        assert!(p.header.get("d").is_none() && p.header["jwk"].get("d").is_none());
        assert!(verifies(&p));
        let again = k.proof("POST", "http://127.0.0.1:8080/realms/r/token", None);
        assert_ne!(again.claims["jti"], p.claims["jti"], "each proof has its own jti");
    }

    /// Each flaw breaks one thing: the rest of the proof stays valid.
    #[test]
    fn each_flaw_breaks_exactly_its_check() {
        let k = ProofKey::generate();
        let url = "http://127.0.0.1:8080/realms/r/protocol/openid-connect/token";
        let good = k.proof("POST", url, None);
        for flaw in Flaw::ALL {
            let p = k.proof("POST", url, Some(flaw));
            let differs = |path: &str, v: &Value| -> bool {
                let (part, name) = path.split_once('.').unwrap_or(("claims", path));
                let got = if part == "header" { &p.header[name] } else { &p.claims[name] };
                got != v
            };
            let changed: Vec<&str> =
                ["header.typ", "header.alg", "header.jwk", "claims.htm", "claims.htu", "claims.iat", "claims.jti"]
                    .into_iter()
                    .filter(|f| {
                        let (part, name) = f.split_once('.').unwrap_or_default();
                        let want = if part == "header" { &good.header[name] } else { &good.claims[name] };
                        // jti differs on every proof; only its absence counts.
                        if name == "jti" {
                            p.claims.get("jti").is_none()
                        } else if name == "iat" {
                            (p.claims["iat"].as_i64().unwrap_or(0) - want.as_i64().unwrap_or(0)).abs() > 5
                        } else {
                            differs(f, want)
                        }
                    })
                    .collect();
            let expected: &[&str] = match flaw {
                Flaw::Htm => &["claims.htm"],
                Flaw::HtuOtherPath | Flaw::HtuOriginOnly | Flaw::HtuLonger => &["claims.htu"],
                Flaw::Signature => &[],
                Flaw::Typ => &["header.typ"],
                Flaw::AlgNone => &["header.alg"],
                Flaw::PrivateKey => &["header.jwk"],
                Flaw::NoJti => &["claims.jti"],
                Flaw::IatPast | Flaw::IatFuture => &["claims.iat"],
            };
            assert_eq!(changed, expected, "{flaw:?}");
            assert_eq!(verifies(&p), !matches!(flaw, Flaw::Signature | Flaw::AlgNone), "{flaw:?}");
        }
        let htu = |f| k.proof("POST", url, Some(f)).claims["htu"].as_str().unwrap_or_default().to_owned();
        assert_eq!(htu(Flaw::HtuOriginOnly), "http://127.0.0.1:8080/");
        assert!(url.starts_with(&htu(Flaw::HtuOriginOnly)));
        assert_eq!(htu(Flaw::HtuLonger), format!("{url}/fourleg"));
        assert_eq!(htu(Flaw::HtuOtherPath), "http://127.0.0.1:8080/fourleg-not-this-endpoint");
        // The private key the flaw shows is the key's own: its public part is unchanged.
        let p = k.proof("POST", url, Some(Flaw::PrivateKey));
        assert!(p.header["jwk"]["d"].is_string());
        assert_eq!(thumbprint(&p.header["jwk"]).as_deref(), Some(k.thumbprint()));
    }

    #[test]
    fn a_proof_is_secret_and_its_evidence_is_decoded() {
        let k = ProofKey::generate();
        let p = k.proof("POST", "http://a/token", None);
        assert!(!format!("{p:?}").contains(p.value.expose()));
        let again = Proof::from_sent(p.value.clone()).map(|q| q.shown());
        assert_eq!(again, Some(p.shown()));
        assert!(!p.shown().to_string().contains(p.value.expose()));
        // The private-key flaw's `d` is sent, never shown.
        let leaky = k.proof("POST", "http://a/token", Some(Flaw::PrivateKey));
        let d = leaky.header["jwk"]["d"].as_str().unwrap_or_default().to_owned();
        assert!(!d.is_empty() && !leaky.shown().to_string().contains(&d));
    }
}
