//! The signing key (RS256, RFC 7518 §3.3), the JWKS that publishes it
//! (RFC 7517 §5), and the validation of the tokens clients present
//! (RFC 8693 §2.1: "validated per its type"; RFC 8725 §3.1 for the algorithm).
//!
//! Signing goes through [`fourleg_core::jose::Signer`] and verification
//! through [`fourleg_core::jose::Jwks`], the same core the suite and the
//! reference broker use; the broken variants are perturbations around it
//! (a check skipped, or a confused verifier put in its place).

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::jose::{AlgError, Jwks, JwsAlg, LocalSigner, Signer, VerifyError};
use fourleg_core::jwt;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

use crate::breakage::Breakage;

/// Why a presented token is refused. The text goes into `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("unsigned token (alg none) refused")]
    AlgNone,
    /// The JOSE core refused it: an algorithm the key does not admit, an
    /// unknown key, a signature that does not verify.
    #[error("{0}")]
    Jose(VerifyError),
    #[error("issuer {0} is not trusted")]
    Issuer(String),
    #[error("token expired")]
    Expired,
}

impl From<VerifyError> for Invalid {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Malformed(d) => Invalid::Malformed(d.to_string()),
            VerifyError::Alg(AlgError::Unsigned(_)) => Invalid::AlgNone,
            e => Invalid::Jose(e),
        }
    }
}

/// The server's key and what is derived from it.
#[derive(Debug)]
pub struct Keys {
    signer: Box<dyn Signer>,
    /// The JWKS document as served, and as the verifier reads it.
    jwks: Value,
    verifier: Jwks,
    /// SPKI PEM of the public key: what a key-confused verifier uses as an HMAC secret.
    public_pem: String,
}

/// One key for every test bed in the process: generating RSA keys is the
/// slowest thing the test bed does, and no scenario needs two servers to
/// have different keys.
pub fn shared() -> Arc<Keys> {
    static KEYS: OnceLock<Arc<Keys>> = OnceLock::new();
    Arc::clone(KEYS.get_or_init(|| Arc::new(Keys::generate())))
}

/// The key of the untrusted second issuer the test bed also serves
/// (`{issuer}/foreign`): ES256, a `kid` of its own, never trusted by the
/// conformant server.
#[derive(Debug)]
pub struct ForeignKeys {
    signer: LocalSigner,
    jwks: Value,
    verifier: Jwks,
}

/// The untrusted issuer's key, shared by every test bed in the process.
pub fn foreign() -> &'static ForeignKeys {
    static KEYS: OnceLock<ForeignKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = LocalSigner::generate(JwsAlg::ES256, "foreign-es256").expect("a P-256 key generates");
        let jwks = json!({"keys": [signer.public_jwk()]});
        let verifier = Jwks::from_value(&jwks).expect("the foreign issuer's JWKS is readable");
        ForeignKeys { signer, jwks, verifier }
    })
}

impl ForeignKeys {
    /// The JWKS the untrusted issuer publishes.
    #[must_use]
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs claims as the untrusted issuer.
    #[must_use]
    pub fn sign(&self, claims: &Value) -> String {
        self.signer.sign(claims).expect("the foreign issuer's in-memory key signs")
    }
}

/// The untrusted issuer's URL for a test bed whose issuer is `issuer`. It
/// extends the trusted issuer, as a second realm's does on one server.
#[must_use]
pub fn foreign_issuer(issuer: &str) -> String {
    format!("{issuer}/foreign")
}

impl Keys {
    fn generate() -> Self {
        let sk = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("2048-bit RSA key generation works");
        let public_pem =
            sk.to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).expect("an RSA public key encodes as PEM");
        let signer = LocalSigner::rsa(JwsAlg::RS256, "testbed-rs256", &sk).expect("an RSA key signs RS256");
        let jwks = json!({"keys": [signer.public_jwk()]});
        let verifier = Jwks::from_value(&jwks).expect("the test bed's own JWKS is readable");
        Self { signer: Box::new(signer), jwks, verifier, public_pem }
    }

    /// The JWKS document (RFC 7517 §5).
    #[must_use]
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// The signing algorithm, as the metadata advertises it.
    #[must_use]
    pub fn alg(&self) -> JwsAlg {
        self.signer.alg()
    }

    /// Signs claims as a compact JWS (RFC 7515 §3.1).
    #[must_use]
    pub fn sign(&self, claims: &Value) -> String {
        self.signer.sign(claims).expect("the test bed's in-memory key signs")
    }

    /// Validates a presented JWT and returns its claims: signature by this
    /// server's key, `iss`, `exp` (RFC 7519 §4.1.4). Each broken variant that
    /// concerns validation skips exactly one of these.
    pub fn validate(&self, token: &str, issuer: &str, now: i64, broken: Option<Breakage>) -> Result<Value, Invalid> {
        let d = jwt::decode(token).map_err(|e| Invalid::Malformed(e.to_string()))?;
        let (input, sig) = token.trim().rsplit_once('.').ok_or_else(|| Invalid::Malformed("no signature".into()))?;
        if URL_SAFE_NO_PAD.decode(sig).is_err() {
            return Err(Invalid::Jose(VerifyError::Signature));
        }
        let iss = d.claims["iss"].as_str().unwrap_or_default().to_owned();
        let foreign = iss != issuer;
        // The near misses of issuer trust: a second issuer kept in the trust
        // store, or any `iss` that starts with the server's own, its keys
        // fetched from there. Both verify the signature, with the wrong keys.
        let wrongly_trusted = match broken {
            Some(Breakage::SecondIssuerTrusted) => iss == foreign_issuer(issuer),
            Some(Breakage::IssuerMatchedByPrefix) => foreign && iss.starts_with(issuer),
            _ => false,
        };
        if wrongly_trusted {
            self::foreign().verifier.verify(token)?;
            let exp = d.claims["exp"].as_i64().unwrap_or(0);
            if exp <= now {
                return Err(Invalid::Expired);
            }
            return Ok(d.claims);
        }
        let alg = d.header["alg"].as_str().unwrap_or_default();
        match alg {
            "RS256" if broken == Some(Breakage::SignatureNotVerified) => {}
            a if a.eq_ignore_ascii_case("none") && broken == Some(Breakage::AlgNoneAccepted) => {}
            "HS256" if broken == Some(Breakage::KeyConfusionAccepted) => {
                // The confused verifier: the public key's PEM taken as an HMAC secret.
                let secret = jsonwebtoken::DecodingKey::from_secret(self.public_pem.as_bytes());
                let ok = jsonwebtoken::crypto::verify(sig, input.as_bytes(), &secret, jsonwebtoken::Algorithm::HS256)
                    .unwrap_or(false);
                if !ok {
                    return Err(Invalid::Jose(VerifyError::Signature));
                }
            }
            // A server trusting any issuer would fetch that issuer's keys; the
            // broken variant skips the signature of tokens from elsewhere.
            _ if foreign && broken == Some(Breakage::ForeignIssuerAccepted) => {}
            _ => {
                self.verifier.verify(token)?;
            }
        }
        if foreign && broken != Some(Breakage::ForeignIssuerAccepted) {
            return Err(Invalid::Issuer(iss));
        }
        let exp = d.claims["exp"].as_i64().unwrap_or(0);
        if exp <= now && broken != Some(Breakage::ExpiredAccepted) {
            return Err(Invalid::Expired);
        }
        Ok(d.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "http://testbed";

    fn claims() -> Value {
        json!({"iss": ISS, "sub": "alice", "exp": 2_000})
    }

    #[test]
    fn own_tokens_validate_and_forgeries_do_not() {
        let k = shared();
        let good = k.sign(&claims());
        assert_eq!(k.validate(&good, ISS, 1_000, None).unwrap()["sub"], "alice");
        assert_eq!(k.validate(&good, ISS, 3_000, None), Err(Invalid::Expired));
        assert_eq!(k.validate(&good, "http://elsewhere", 1_000, None), Err(Invalid::Issuer(ISS.into())));
        let none = format!("{}.", jwt::encode_unsigned(&json!({"alg": "none"}), &claims()));
        assert_eq!(k.validate(&none, ISS, 1_000, None), Err(Invalid::AlgNone));
        assert!(k.validate(&none, ISS, 1_000, Some(Breakage::AlgNoneAccepted)).is_ok());
        let (header, sig) = (good.split('.').next().unwrap(), good.rsplit('.').next().unwrap());
        let mallory = URL_SAFE_NO_PAD.encode(json!({"iss": ISS, "sub": "mallory", "exp": 2_000}).to_string());
        let edited = format!("{header}.{mallory}.{sig}");
        assert_eq!(k.validate(&edited, ISS, 1_000, None), Err(Invalid::Jose(VerifyError::Signature)));
        assert!(k.validate(&edited, ISS, 1_000, Some(Breakage::SignatureNotVerified)).is_ok());
    }
}
