//! The one JOSE core: verifying a target's signed tokens against its JWKS,
//! and signing the tokens fourleg issues itself (test bed, later the broker).
//!
//! Verification (RFC 7515 §5.2) is done by the `jsonwebtoken` crate, for every
//! JWS algorithm a target may use (RFC 7518 §3: RS256/384/512, PS256/384/512,
//! ES256, ES384; RFC 8037 §3.1: EdDSA). The algorithm is **bound to the key**
//! (RFC 8725 §3.1, §2.1): the header's `alg` never picks the key family. A key
//! of type `RSA` only verifies RS*/PS*, `EC` with `crv` P-256 only ES256,
//! P-384 only ES384, `OKP` Ed25519 only EdDSA, and a JWK that names its own
//! `alg` (RFC 7517 §4.4) only that one. `alg: none` and every HMAC algorithm
//! are refused outright: a JWKS of public keys is never an HMAC secret.
//!
//! Hand-made JOSE stays only where a token must be malformed on purpose (the
//! forgeries of the attack scenarios, `fourleg-scenario/src/forge.rs`).

use std::fmt;
use std::str::FromStr;
use std::sync::Once;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde_json::{json, Value};

use crate::jwt::{self, DecodeError, Decoded};

/// The asymmetric JWS algorithms fourleg verifies and signs with
/// (RFC 7518 §3.1, RFC 8037 §3.1). HMAC and `none` are deliberately absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    RS256,
    RS384,
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 (RFC 7518 §3.5).
    PS256,
    PS384,
    PS512,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
    ES256,
    /// ECDSA on P-384 with SHA-384 (RFC 7518 §3.4).
    ES384,
    /// Ed25519 (RFC 8037 §3.1).
    EdDSA,
}

impl JwsAlg {
    /// Every algorithm, in declaration order.
    pub const ALL: [JwsAlg; 9] = [
        JwsAlg::RS256,
        JwsAlg::RS384,
        JwsAlg::RS512,
        JwsAlg::PS256,
        JwsAlg::PS384,
        JwsAlg::PS512,
        JwsAlg::ES256,
        JwsAlg::ES384,
        JwsAlg::EdDSA,
    ];

    /// The `alg` header value (RFC 7518 §3.1).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JwsAlg::RS256 => "RS256",
            JwsAlg::RS384 => "RS384",
            JwsAlg::RS512 => "RS512",
            JwsAlg::PS256 => "PS256",
            JwsAlg::PS384 => "PS384",
            JwsAlg::PS512 => "PS512",
            JwsAlg::ES256 => "ES256",
            JwsAlg::ES384 => "ES384",
            JwsAlg::EdDSA => "EdDSA",
        }
    }

    /// The only key type that may verify this algorithm.
    #[must_use]
    pub fn key_type(self) -> KeyType {
        match self {
            JwsAlg::RS256 | JwsAlg::RS384 | JwsAlg::RS512 | JwsAlg::PS256 | JwsAlg::PS384 | JwsAlg::PS512 => {
                KeyType::Rsa
            }
            JwsAlg::ES256 => KeyType::EcP256,
            JwsAlg::ES384 => KeyType::EcP384,
            JwsAlg::EdDSA => KeyType::Ed25519,
        }
    }

    fn library(self) -> Algorithm {
        match self {
            JwsAlg::RS256 => Algorithm::RS256,
            JwsAlg::RS384 => Algorithm::RS384,
            JwsAlg::RS512 => Algorithm::RS512,
            JwsAlg::PS256 => Algorithm::PS256,
            JwsAlg::PS384 => Algorithm::PS384,
            JwsAlg::PS512 => Algorithm::PS512,
            JwsAlg::ES256 => Algorithm::ES256,
            JwsAlg::ES384 => Algorithm::ES384,
            JwsAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `alg` value fourleg does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgError {
    /// `alg: none` in any spelling (RFC 7518 §3.6; RFC 8725 §2.1).
    #[error("unsigned token (alg {0}) refused")]
    Unsigned(String),
    /// An HMAC algorithm (RFC 7518 §3.2): a public JWKS holds no shared secret,
    /// so an HS* token is a key-confusion attempt (RFC 8725 §2.1).
    #[error("symmetric algorithm {0} refused: the issuer's keys are public keys")]
    Symmetric(String),
    #[error("algorithm {0} is not supported")]
    Unsupported(String),
}

impl FromStr for JwsAlg {
    type Err = AlgError;

    fn from_str(s: &str) -> Result<Self, AlgError> {
        if s.eq_ignore_ascii_case("none") {
            return Err(AlgError::Unsigned(s.to_owned()));
        }
        if s.to_ascii_uppercase().starts_with("HS") {
            return Err(AlgError::Symmetric(s.to_owned()));
        }
        JwsAlg::ALL.into_iter().find(|a| a.as_str() == s).ok_or_else(|| AlgError::Unsupported(s.to_owned()))
    }
}

/// The key families a JWK can verify with, by `kty` and `crv`
/// (RFC 7518 §6.2, §6.3; RFC 8037 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyType {
    /// `kty: RSA`.
    Rsa,
    /// `kty: EC`, `crv: P-256`.
    EcP256,
    /// `kty: EC`, `crv: P-384`.
    EcP384,
    /// `kty: OKP`, `crv: Ed25519`.
    Ed25519,
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Rsa => "RSA",
            KeyType::EcP256 => "EC P-256",
            KeyType::EcP384 => "EC P-384",
            KeyType::Ed25519 => "OKP Ed25519",
        })
    }
}

/// Why a token does not verify. A finding about the token (or the target),
/// never a harness failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a JWS: {0}")]
    Malformed(#[from] DecodeError),
    #[error("the header has no alg")]
    NoAlg,
    /// `crit` names extensions that must be understood (RFC 7515 §4.1.11);
    /// this verifier understands none, so it must refuse.
    #[error("the header's crit lists extensions this verifier does not understand: {0}")]
    Critical(String),
    #[error(transparent)]
    Alg(#[from] AlgError),
    /// No key of the JWKS carries the header's `kid` (RFC 7515 §4.1.4).
    #[error("no key in the JWKS has kid {0}")]
    UnknownKid(String),
    /// The JWKS has keys, but none whose type (and own `alg`) admits the
    /// header's algorithm: e.g. a PS256 header over an EC key.
    #[error("no {alg} key in the JWKS{}", kid.as_ref().map(|k| format!(" with kid {k}")).unwrap_or_default())]
    NoKeyForAlg { alg: JwsAlg, kid: Option<String> },
    #[error("signature does not verify")]
    Signature,
}

/// Why a JWK that claims to be a signing key cannot be used (RFC 7517 §4, RFC 7518 §6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    #[error("{0} is missing or not a string")]
    Missing(&'static str),
    #[error("{member} is not usable: {reason}")]
    Malformed { member: &'static str, reason: String },
    /// The JWK's own `alg` (RFC 7517 §4.4) belongs to another key type.
    #[error("alg {alg} does not fit a key of type {key_type}")]
    AlgMismatch { alg: JwsAlg, key_type: KeyType },
}

/// Why a key or a JWKS cannot be used (bad key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the JWKS is not an object with a keys array")]
    NotAJwks,
    #[error("key {index} of the JWKS: {source}")]
    Jwk {
        index: usize,
        #[source]
        source: JwkError,
    },
    #[error("signing key: {0}")]
    Signing(String),
}

/// One public key of a JWKS, bound to the algorithms its type admits.
#[derive(Clone)]
pub struct PublicKey {
    kid: Option<String>,
    key_type: KeyType,
    /// The JWK's own `alg`, when it names one (RFC 7517 §4.4).
    alg: Option<JwsAlg>,
    key: DecodingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("key_type", &self.key_type)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn str_field<'a>(jwk: &'a Value, name: &'static str) -> Result<&'a str, JwkError> {
    jwk[name].as_str().ok_or(JwkError::Missing(name))
}

fn malformed(member: &'static str) -> impl FnOnce(jsonwebtoken::errors::Error) -> JwkError {
    move |e| JwkError::Malformed { member, reason: e.to_string() }
}

impl PublicKey {
    /// Reads a public JWK (RFC 7517 §4). `Ok(None)` for a key that can never
    /// verify a JWS: an encryption key (`use: enc` or a JWE `alg`), a
    /// symmetric key (`kty: oct`), a curve fourleg does not verify.
    pub fn from_jwk(jwk: &Value) -> Result<Option<Self>, JwkError> {
        if jwk["use"].as_str().is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        let alg = match jwk["alg"].as_str() {
            None => None,
            Some(a) => match a.parse::<JwsAlg>() {
                Ok(a) => Some(a),
                Err(_) => return Ok(None),
            },
        };
        let (key_type, key) = match (str_field(jwk, "kty")?, jwk["crv"].as_str()) {
            ("RSA", _) => {
                let k = DecodingKey::from_rsa_components(str_field(jwk, "n")?, str_field(jwk, "e")?)
                    .map_err(malformed("n/e"))?;
                (KeyType::Rsa, k)
            }
            ("EC", Some(crv @ ("P-256" | "P-384"))) => {
                let k = DecodingKey::from_ec_components(str_field(jwk, "x")?, str_field(jwk, "y")?)
                    .map_err(malformed("x/y"))?;
                (if crv == "P-256" { KeyType::EcP256 } else { KeyType::EcP384 }, k)
            }
            ("OKP", Some("Ed25519")) => {
                let k = DecodingKey::from_ed_components(str_field(jwk, "x")?).map_err(malformed("x"))?;
                (KeyType::Ed25519, k)
            }
            _ => return Ok(None),
        };
        if let Some(alg) = alg.filter(|a| a.key_type() != key_type) {
            return Err(JwkError::AlgMismatch { alg, key_type });
        }
        Ok(Some(Self { kid: jwk["kid"].as_str().map(str::to_owned), key_type, alg, key }))
    }

    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    #[must_use]
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Whether this key may verify `alg`: its type admits it, and its own
    /// `alg`, if any, is that one (RFC 8725 §3.1).
    #[must_use]
    pub fn admits(&self, alg: JwsAlg) -> bool {
        alg.key_type() == self.key_type && self.alg.is_none_or(|a| a == alg)
    }

    /// Whether `signature` (base64url) is `alg` over `input` by this key.
    fn signs(&self, alg: JwsAlg, input: &str, signature: &str) -> bool {
        provider();
        // A signature of the wrong length or encoding is an error of the
        // library: for us it simply does not verify.
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), &self.key, alg.library()).unwrap_or(false)
    }
}

/// A verified token: its header and claims (the signature is not kept), the
/// algorithm and the key that verified it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub header: Value,
    pub claims: Value,
    pub alg: JwsAlg,
    pub kid: Option<String>,
}

/// A JWKS (RFC 7517 §5), reduced to the keys that can verify a JWS.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    keys: Vec<PublicKey>,
}

impl Jwks {
    /// Reads a JWKS document. Keys that can never verify a JWS are left out
    /// (see [`PublicKey::from_jwk`]); a signing key that is broken is an error.
    pub fn from_value(jwks: &Value) -> Result<Self, KeyError> {
        let list = jwks["keys"].as_array().ok_or(KeyError::NotAJwks)?;
        let mut keys = Vec::new();
        for (index, jwk) in list.iter().enumerate() {
            if let Some(k) = PublicKey::from_jwk(jwk).map_err(|source| KeyError::Jwk { index, source })? {
                keys.push(k);
            }
        }
        Ok(Self { keys })
    }

    /// The usable keys.
    #[must_use]
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Verifies a compact JWS (RFC 7515 §5.2) with the key its header names
    /// (`kid`), or any key when it names none, among the keys whose type
    /// admits the header's `alg`. Claims (`iss`, `exp`, `aud`) are the
    /// caller's to check: their rules differ between a resource server, the
    /// test bed and the grading of a scenario.
    ///
    /// Keys come from this JWKS only: a key the header carries or points at
    /// (`jwk`, `jku`, `x5u`, `x5c`) is never used (RFC 8725 §3.10).
    pub fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        let d = jwt::decode(token)?;
        let alg: JwsAlg = d.header["alg"].as_str().ok_or(VerifyError::NoAlg)?.parse()?;
        if let Some(crit) = d.header.get("crit") {
            return Err(VerifyError::Critical(crit.to_string()));
        }
        let kid = d.header["kid"].as_str().map(str::to_owned);
        let named: Vec<&PublicKey> =
            self.keys.iter().filter(|k| kid.is_none() || k.kid.as_deref() == kid.as_deref()).collect();
        if let (true, Some(k)) = (named.is_empty(), &kid) {
            return Err(VerifyError::UnknownKid(k.clone()));
        }
        let admitted: Vec<&PublicKey> = named.into_iter().filter(|k| k.admits(alg)).collect();
        if admitted.is_empty() {
            return Err(VerifyError::NoKeyForAlg { alg, kid });
        }
        let token = token.trim();
        let (input, signature) = token.rsplit_once('.').ok_or(VerifyError::Signature)?;
        let key = admitted.into_iter().find(|k| k.signs(alg, input, signature)).ok_or(VerifyError::Signature)?;
        let Decoded { header, claims, .. } = d;
        Ok(Verified { header, claims, alg, kid: key.kid.clone() })
    }
}

/// Makes the pure-Rust backend the process's `jsonwebtoken` provider, so a
/// second backend enabled elsewhere in the graph can never leave it unset.
fn provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // An error means a provider is installed already; that one stays.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
#[error("signing with {kid} failed: {reason}")]
pub struct SignError {
    pub kid: String,
    pub reason: String,
}

/// Signs a JWS (RFC 7515 §5.1) with a key held somewhere: in memory now
/// ([`LocalSigner`]); for the broker, a data key unwrapped by OpenBao
/// Transit (DESIGN.md: no private key rests in plaintext), or Transit's own
/// `sign` endpoint behind a blocking call.
pub trait Signer: fmt::Debug + Send + Sync {
    /// The algorithm of every signature (RFC 7515 §4.1.1).
    fn alg(&self) -> JwsAlg;

    /// The key id published in the JWKS and put in each header (RFC 7515 §4.1.4).
    fn kid(&self) -> &str;

    /// The public JWK to publish (RFC 7517 §4), with `use`, `alg` and `kid`.
    fn public_jwk(&self) -> Value;

    /// The raw signature over a JWS signing input (RFC 7515 §5.1 step 5).
    fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, SignError>;

    /// `claims` as a compact JWS with header `{alg, typ: JWT, kid}` (RFC 7519 §7.1).
    fn sign(&self, claims: &Value) -> Result<String, SignError> {
        let input = jwt::encode_unsigned(&json!({"alg": self.alg().as_str(), "typ": "JWT", "kid": self.kid()}), claims);
        let signature = self.sign_input(input.as_bytes())?;
        Ok(jwt::with_signature(&input, &signature))
    }
}

/// A signing key in this process's memory.
pub struct LocalSigner {
    alg: JwsAlg,
    kid: String,
    key: EncodingKey,
    public: Value,
}

impl fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalSigner").field("alg", &self.alg).field("kid", &self.kid).finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl LocalSigner {
    /// A fresh key for `alg`: RSA 2048 bits, P-256, P-384 or Ed25519.
    pub fn generate(alg: JwsAlg, kid: impl Into<String>) -> Result<Self, KeyError> {
        let kid = kid.into();
        let mut rng = rand::thread_rng();
        let fail = |e: &dyn fmt::Display| KeyError::Signing(e.to_string());
        match alg.key_type() {
            KeyType::Rsa => {
                let sk = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| fail(&e))?;
                Self::rsa(alg, kid, &sk)
            }
            KeyType::EcP256 => {
                use p256::pkcs8::EncodePrivateKey as _;
                let sk = p256::ecdsa::SigningKey::random(&mut rng);
                let point = sk.verifying_key().to_encoded_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(KeyError::Signing("a P-256 public key has coordinates".into()));
                };
                let der = sk.to_pkcs8_der().map_err(|e| fail(&e))?;
                let public = json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)});
                Ok(Self::with(alg, kid, EncodingKey::from_ec_der(der.as_bytes()), public))
            }
            KeyType::EcP384 => {
                use p384::pkcs8::EncodePrivateKey as _;
                let sk = p384::ecdsa::SigningKey::random(&mut rng);
                let point = sk.verifying_key().to_encoded_point(false);
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(KeyError::Signing("a P-384 public key has coordinates".into()));
                };
                let der = sk.to_pkcs8_der().map_err(|e| fail(&e))?;
                let public = json!({"kty": "EC", "crv": "P-384", "x": b64(x), "y": b64(y)});
                Ok(Self::with(alg, kid, EncodingKey::from_ec_der(der.as_bytes()), public))
            }
            KeyType::Ed25519 => {
                use ed25519_dalek::pkcs8::EncodePrivateKey as _;
                let sk = ed25519_dalek::SigningKey::generate(&mut rng);
                let der = sk.to_pkcs8_der().map_err(|e| fail(&e))?;
                let public = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(sk.verifying_key().as_bytes())});
                Ok(Self::with(alg, kid, EncodingKey::from_ed_der(der.as_bytes()), public))
            }
        }
    }

    /// An ES256 key from its PKCS#8 DER (RFC 5915 inside RFC 5208), as the
    /// broker holds it once its wrapped copy is unwrapped.
    pub fn es256_from_pkcs8(kid: impl Into<String>, der: &[u8]) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePrivateKey as _;
        let sk = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| KeyError::Signing(e.to_string()))?;
        let point = sk.verifying_key().to_encoded_point(false);
        let (Some(x), Some(y)) = (point.x(), point.y()) else {
            return Err(KeyError::Signing("a P-256 public key has coordinates".into()));
        };
        let public = json!({"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y)});
        Ok(Self::with(JwsAlg::ES256, kid.into(), EncodingKey::from_ec_der(der), public))
    }

    /// An RSA key for RS*/PS*.
    pub fn rsa(alg: JwsAlg, kid: impl Into<String>, key: &rsa::RsaPrivateKey) -> Result<Self, KeyError> {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::traits::PublicKeyParts as _;
        if alg.key_type() != KeyType::Rsa {
            return Err(KeyError::Signing(format!("{alg} needs a key of type {}, not RSA", alg.key_type())));
        }
        let der = key.to_pkcs1_der().map_err(|e| KeyError::Signing(e.to_string()))?;
        let public = json!({"kty": "RSA", "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be())});
        Ok(Self::with(alg, kid.into(), EncodingKey::from_rsa_der(der.as_bytes()), public))
    }

    fn with(alg: JwsAlg, kid: String, key: EncodingKey, mut public: Value) -> Self {
        public["use"] = json!("sig");
        public["alg"] = json!(alg.as_str());
        public["kid"] = json!(kid);
        Self { alg, kid, key, public }
    }
}

impl Signer for LocalSigner {
    fn alg(&self) -> JwsAlg {
        self.alg
    }

    fn kid(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> Value {
        self.public.clone()
    }

    fn sign_input(&self, input: &[u8]) -> Result<Vec<u8>, SignError> {
        provider();
        let b64 = jsonwebtoken::crypto::sign(input, &self.key, self.alg.library())
            .map_err(|e| SignError { kid: self.kid.clone(), reason: e.to_string() })?;
        URL_SAFE_NO_PAD.decode(b64).map_err(|e| SignError { kid: self.kid.clone(), reason: e.to_string() })
    }
}

#[cfg(test)]
mod tests;
