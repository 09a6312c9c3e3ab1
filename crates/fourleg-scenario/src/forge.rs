//! Hostile tokens for the attack scenarios, and the stateless resource's
//! signature check (RFC 7515, RFC 7518 §3).

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

/// Why a forge or a verification could not be done (harness side).
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

/// Verifies a JWS against a JWKS (RS256 and ES256): what a stateless
/// resource server does before trusting a token.
pub fn verify(token: &str, jwks: &Value) -> Result<bool, ForgeError> {
    use rsa::signature::Verifier as _;
    let d = jwt::decode(token)?;
    let mut parts = token.rsplitn(2, '.');
    let sig = URL_SAFE_NO_PAD.decode(parts.next().unwrap_or_default()).map_err(|e| ForgeError::Key(e.to_string()))?;
    let input = parts.next().unwrap_or_default();
    let kid = d.header["kid"].as_str();
    let keys: Vec<&Value> =
        jwks["keys"].as_array().into_iter().flatten().filter(|k| kid.is_none() || k["kid"].as_str() == kid).collect();
    match d.header["alg"].as_str() {
        Some("RS256") => {
            for k in keys.iter().filter(|k| k["kty"] == "RSA") {
                let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(rsa_key(k)?);
                let Ok(s) = rsa::pkcs1v15::Signature::try_from(sig.as_slice()) else { return Ok(false) };
                if vk.verify(input.as_bytes(), &s).is_ok() {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Some("ES256") => {
            for k in keys.iter().filter(|k| k["kty"] == "EC" && k["crv"] == "P-256") {
                let mut sec1 = vec![4u8];
                sec1.extend(b64(&k["x"], "EC")?);
                sec1.extend(b64(&k["y"], "EC")?);
                let vk =
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|e| ForgeError::Key(e.to_string()))?;
                let Ok(s) = p256::ecdsa::Signature::from_slice(&sig) else { return Ok(false) };
                if vk.verify(input.as_bytes(), &s).is_ok() {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        // none, HS*, and anything else: a resource trusting only the
        // issuer's published keys rejects it.
        _ => Ok(false),
    }
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

    fn rs256(claims: &Value, sk: &rsa::RsaPrivateKey) -> String {
        use rsa::signature::{SignatureEncoding as _, Signer as _};
        let input = jwt::encode_unsigned(&json!({"alg": "RS256", "kid": "k1"}), claims);
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(sk.clone());
        jwt::with_signature(&input, &signer.sign(input.as_bytes()).to_vec())
    }

    #[test]
    fn genuine_tokens_verify_and_every_forgery_does_not() {
        let (jwks, sk) = jwks_and_signer();
        let claims = json!({"sub": "alice", "iss": "https://idp"});
        let good = rs256(&claims, &sk);
        assert!(verify(&good, &jwks).unwrap());
        assert!(!verify(&alg_none(&claims), &jwks).unwrap_or(false));
        assert!(!verify(&hs256_with_public_key(&claims, &jwks).unwrap(), &jwks).unwrap());
        assert!(!verify(&foreign_issuer(&claims), &jwks).unwrap());
        let edited = edit(&good, &json!({"sub": "mallory", "iss": "https://idp"})).unwrap();
        assert!(!verify(&edited, &jwks).unwrap());
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
