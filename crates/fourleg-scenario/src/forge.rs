//! Hostile tokens for the attack scenarios (RFC 8725 §2.1): the one place
//! where JOSE is made by hand, because these tokens must be malformed on
//! purpose. Verifying a token is `fourleg_core::jose`'s job.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::jwt;
use hmac::{Hmac, Mac};
use rsa::pkcs8::EncodePublicKey as _;
use rsa::{BigUint, RsaPublicKey};
use serde_json::{json, Value};
use sha2::Sha256;

/// The issuer of forged "foreign" tokens: a name no target can trust.
pub const FOREIGN_ISSUER: &str = "https://untrusted-issuer.fourleg.invalid";

/// Why a forge could not be done (harness side).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("the source token is not a JWT: {0}")]
    NotJwt(#[from] jwt::DecodeError),
    #[error("the target's JWKS has no usable {0} key")]
    NoKey(&'static str),
    #[error("key material: {0}")]
    Key(String),
}

/// `alg: none`, same claims, empty signature.
#[must_use]
pub fn alg_none(claims: &Value) -> String {
    format!("{}.", jwt::encode_unsigned(&json!({"alg": "none", "typ": "JWT"}), claims))
}

/// Claims edited, original header and signature kept (so it cannot verify).
pub fn edit(original: &str, claims: &Value) -> Result<String, ForgeError> {
    let d = jwt::decode(original)?;
    let sig = original.rsplit('.').next().unwrap_or_default();
    Ok(format!("{}.{sig}", jwt::encode_unsigned(&d.header, claims)))
}

/// The first RSA signing key of a JWKS, as SPKI PEM (what a confused
/// verifier would use as an HMAC secret).
pub fn rsa_public_pem(jwks: &Value) -> Result<(String, Option<String>), ForgeError> {
    let key = jwks["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["kty"] == "RSA" && k["use"].as_str().is_none_or(|u| u == "sig"))
        .ok_or(ForgeError::NoKey("RSA"))?;
    let pk = rsa_key(key)?;
    let pem = pk.to_public_key_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| ForgeError::Key(e.to_string()))?;
    Ok((pem, key["kid"].as_str().map(str::to_owned)))
}

fn b64(v: &Value, what: &'static str) -> Result<Vec<u8>, ForgeError> {
    URL_SAFE_NO_PAD.decode(v.as_str().ok_or(ForgeError::NoKey(what))?).map_err(|e| ForgeError::Key(e.to_string()))
}

fn rsa_key(jwk: &Value) -> Result<RsaPublicKey, ForgeError> {
    let n = BigUint::from_bytes_be(&b64(&jwk["n"], "RSA")?);
    let e = BigUint::from_bytes_be(&b64(&jwk["e"], "RSA")?);
    RsaPublicKey::new(n, e).map_err(|e| ForgeError::Key(e.to_string()))
}

/// HS256 keyed with the server's RSA public key PEM (key confusion, RFC 8725 §2.1).
pub fn hs256_with_public_key(claims: &Value, jwks: &Value) -> Result<String, ForgeError> {
    let (pem, kid) = rsa_public_pem(jwks)?;
    let mut header = json!({"alg": "HS256", "typ": "JWT"});
    if let Some(k) = kid {
        header["kid"] = Value::String(k);
    }
    let input = jwt::encode_unsigned(&header, claims);
    let mut mac = Hmac::<Sha256>::new_from_slice(pem.as_bytes()).map_err(|e| ForgeError::Key(e.to_string()))?;
    mac.update(input.as_bytes());
    Ok(jwt::with_signature(&input, &mac.finalize().into_bytes()))
}

/// ES256 by a fresh key the target never saw, with `iss` of an untrusted
/// issuer unless the claims set one.
#[must_use]
pub fn foreign_issuer(claims: &Value) -> String {
    use p256::ecdsa::signature::Signer as _;
    let key = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let mut claims = claims.clone();
    if claims.get("iss").is_none() {
        claims["iss"] = Value::String(FOREIGN_ISSUER.into());
    }
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": "fourleg-foreign"});
    let input = jwt::encode_unsigned(&header, &claims);
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    jwt::with_signature(&input, &sig.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwks_and_signer() -> (Value, rsa::RsaPrivateKey) {
        use rsa::traits::PublicKeyParts as _;
        let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
        let pk = sk.to_public_key();
        let jwks = json!({"keys": [{
            "kty": "RSA", "use": "sig", "kid": "k1", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(pk.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(pk.e().to_bytes_be()),
        }]});
        (jwks, sk)
    }

    /// A genuine token, signed through the JOSE core.
    fn rs256(claims: &Value, sk: &rsa::RsaPrivateKey) -> String {
        use fourleg_core::jose::{JwsAlg, LocalSigner, Signer as _};
        LocalSigner::rsa(JwsAlg::RS256, "k1", sk).unwrap().sign(claims).unwrap()
    }

    #[test]
    fn genuine_tokens_verify_and_every_forgery_does_not() {
        let (jwks, sk) = jwks_and_signer();
        let keys = fourleg_core::jose::Jwks::from_value(&jwks).unwrap();
        let claims = json!({"sub": "alice", "iss": "https://idp"});
        let good = rs256(&claims, &sk);
        assert!(keys.verify(&good).is_ok());
        assert!(keys.verify(&alg_none(&claims)).is_err());
        assert!(keys.verify(&hs256_with_public_key(&claims, &jwks).unwrap()).is_err());
        assert!(keys.verify(&foreign_issuer(&claims)).is_err());
        let edited = edit(&good, &json!({"sub": "mallory", "iss": "https://idp"})).unwrap();
        assert!(keys.verify(&edited).is_err());
    }

    #[test]
    fn forgeries_have_the_announced_shape() {
        let claims = json!({"sub": "alice"});
        let none = alg_none(&claims);
        assert!(none.ends_with('.'));
        assert_eq!(jwt::decode(&none).unwrap().header["alg"], "none");
        let foreign = jwt::decode(&foreign_issuer(&claims)).unwrap();
        assert_eq!(foreign.claims["iss"], FOREIGN_ISSUER);
        assert_eq!(foreign.header["alg"], "ES256");
    }
}
