//! The signing key (RS256, RFC 7518 §3.3), the JWKS that publishes it
//! (RFC 7517 §5), and the validation of the tokens clients present
//! (RFC 8693 §2.1: "validated per its type"; RFC 8725 §3.1 for the algorithm).

use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::jwt;
use hmac::{Hmac, Mac as _};
use rsa::pkcs8::EncodePublicKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::breakage::Breakage;

/// Why a presented token is refused. The text goes into `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not a JWT: {0}")]
    Malformed(String),
    #[error("unsigned token (alg none) refused")]
    AlgNone,
    #[error("algorithm {0} is not accepted (RS256 only)")]
    Alg(String),
    #[error("signature does not verify")]
    Signature,
    #[error("issuer {0} is not trusted")]
    Issuer(String),
    #[error("token expired")]
    Expired,
}

/// The server's RSA key and what is derived from it.
#[derive(Debug)]
pub struct Keys {
    signing: rsa::pkcs1v15::SigningKey<Sha256>,
    verifying: rsa::pkcs1v15::VerifyingKey<Sha256>,
    kid: String,
    jwks: Value,
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

impl Keys {
    fn generate() -> Self {
        let sk = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("2048-bit RSA key generation works");
        let pk = RsaPublicKey::from(&sk);
        let kid = "testbed-rs256".to_owned();
        let jwks = json!({"keys": [{
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(pk.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(pk.e().to_bytes_be()),
        }]});
        let public_pem = pk.to_public_key_pem(rsa::pkcs8::LineEnding::LF).expect("an RSA public key encodes as PEM");
        Self {
            signing: rsa::pkcs1v15::SigningKey::new(sk),
            verifying: rsa::pkcs1v15::VerifyingKey::new(pk),
            kid,
            jwks,
            public_pem,
        }
    }

    /// The JWKS document (RFC 7517 §5).
    #[must_use]
    pub fn jwks(&self) -> &Value {
        &self.jwks
    }

    /// Signs claims as a compact JWS, RS256 (RFC 7515 §3.1).
    #[must_use]
    pub fn sign(&self, claims: &Value) -> String {
        let input = jwt::encode_unsigned(&json!({"alg": "RS256", "typ": "JWT", "kid": self.kid}), claims);
        let sig = self.signing.sign(input.as_bytes());
        jwt::with_signature(&input, &sig.to_vec())
    }

    /// Validates a presented JWT and returns its claims: signature by this
    /// server's key, `iss`, `exp` (RFC 7519 §4.1.4). Each broken variant that
    /// concerns validation skips exactly one of these.
    pub fn validate(&self, token: &str, issuer: &str, now: i64, broken: Option<Breakage>) -> Result<Value, Invalid> {
        let d = jwt::decode(token).map_err(|e| Invalid::Malformed(e.to_string()))?;
        let (input, sig) = token.trim().rsplit_once('.').ok_or_else(|| Invalid::Malformed("no signature".into()))?;
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Invalid::Signature)?;
        let iss = d.claims["iss"].as_str().unwrap_or_default().to_owned();
        let foreign = iss != issuer;
        match d.header["alg"].as_str().unwrap_or_default() {
            "RS256" if broken == Some(Breakage::SignatureNotVerified) => {}
            "RS256" => {
                let s = rsa::pkcs1v15::Signature::try_from(sig.as_slice()).map_err(|_| Invalid::Signature)?;
                if !foreign || broken != Some(Breakage::ForeignIssuerAccepted) {
                    self.verifying.verify(input.as_bytes(), &s).map_err(|_| Invalid::Signature)?;
                }
            }
            "none" | "None" | "NONE" if broken == Some(Breakage::AlgNoneAccepted) => {}
            "none" | "None" | "NONE" => return Err(Invalid::AlgNone),
            "HS256" if broken == Some(Breakage::KeyConfusionAccepted) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(self.public_pem.as_bytes()).map_err(|_| Invalid::Signature)?;
                mac.update(input.as_bytes());
                mac.verify_slice(&sig).map_err(|_| Invalid::Signature)?;
            }
            // A server trusting any issuer would fetch that issuer's keys; the
            // broken variant skips the signature of tokens from elsewhere.
            _ if foreign && broken == Some(Breakage::ForeignIssuerAccepted) => {}
            other => return Err(Invalid::Alg(other.to_owned())),
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
