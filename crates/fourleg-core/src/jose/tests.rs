//! The JOSE core against tokens signed independently of it (RustCrypto
//! directly), and the near misses that must not verify.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;

fn claims() -> Value {
    json!({"iss": "https://idp.example", "sub": "alice", "aud": "agent", "exp": 4_000_000_000_i64})
}

/// One RSA key for every test of this module: generating it is the slow part.
fn rsa_key() -> &'static rsa::RsaPrivateKey {
    static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap())
}

fn rsa_jwk(kid: &str, alg: Option<&str>) -> Value {
    use rsa::traits::PublicKeyParts as _;
    let pk = rsa_key().to_public_key();
    let mut jwk = json!({"kty": "RSA", "kid": kid, "use": "sig",
        "n": URL_SAFE_NO_PAD.encode(pk.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(pk.e().to_bytes_be())});
    if let Some(a) = alg {
        jwk["alg"] = json!(a);
    }
    jwk
}

fn signed(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = jwt::encode_unsigned(header, claims);
    let sig = sign(input.as_bytes());
    jwt::with_signature(&input, &sig)
}

fn ps256(kid: &str, claims: &Value) -> String {
    use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _};
    let key = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new(rsa_key().clone());
    signed(&json!({"alg": "PS256", "kid": kid}), claims, |m| key.sign_with_rng(&mut rand::thread_rng(), m).to_vec())
}

fn p384_pair() -> (p384::ecdsa::SigningKey, Value) {
    let sk = p384::ecdsa::SigningKey::random(&mut rand::thread_rng());
    let p = sk.verifying_key().to_encoded_point(false);
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": "ec384",
        "x": URL_SAFE_NO_PAD.encode(p.x().unwrap()), "y": URL_SAFE_NO_PAD.encode(p.y().unwrap())});
    (sk, jwk)
}

fn es384(sk: &p384::ecdsa::SigningKey, kid: &str, claims: &Value) -> String {
    use p384::ecdsa::signature::Signer as _;
    signed(&json!({"alg": "ES384", "kid": kid}), claims, |m| {
        let s: p384::ecdsa::Signature = sk.sign(m);
        s.to_bytes().to_vec()
    })
}

fn ed25519_pair() -> (ed25519_dalek::SigningKey, Value) {
    let sk = ed25519_dalek::SigningKey::generate(&mut rand::thread_rng());
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": URL_SAFE_NO_PAD.encode(sk.verifying_key().as_bytes())});
    (sk, jwk)
}

fn eddsa(sk: &ed25519_dalek::SigningKey, kid: &str, claims: &Value) -> String {
    use ed25519_dalek::Signer as _;
    signed(&json!({"alg": "EdDSA", "kid": kid}), claims, |m| sk.sign(m).to_bytes().to_vec())
}

/// The JWKS of a target signing with PS256, ES384 and EdDSA, plus keys that
/// verify nothing (an encryption key, a symmetric key, an unknown curve).
fn mixed() -> (Jwks, p384::ecdsa::SigningKey, ed25519_dalek::SigningKey) {
    let (ec, ec_jwk) = p384_pair();
    let (ed, ed_jwk) = ed25519_pair();
    let mut enc = rsa_jwk("enc", Some("RSA-OAEP"));
    enc["use"] = json!("enc");
    let doc = json!({"keys": [
        enc,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "OKP", "crv": "X25519", "kid": "x", "x": "AAAA"},
        rsa_jwk("rsa", None),
        ec_jwk,
        ed_jwk,
    ]});
    (Jwks::from_value(&doc).unwrap(), ec, ed)
}

#[test]
fn ps256_es384_and_eddsa_tokens_verify_from_a_jwks() {
    let (jwks, ec, ed) = mixed();
    assert_eq!(jwks.keys().len(), 3, "only the three signing keys are kept: {jwks:?}");
    for (token, alg, kid) in [
        (ps256("rsa", &claims()), JwsAlg::PS256, "rsa"),
        (es384(&ec, "ec384", &claims()), JwsAlg::ES384, "ec384"),
        (eddsa(&ed, "ed", &claims()), JwsAlg::EdDSA, "ed"),
    ] {
        let v = jwks.verify(&token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!((v.alg, v.kid.as_deref(), &v.claims), (alg, Some(kid), &claims()));
    }
}

#[test]
fn a_token_without_kid_is_tried_against_every_key_of_its_type() {
    let (jwks, ec, _) = mixed();
    let token = signed(&json!({"alg": "ES384"}), &claims(), |m| {
        use p384::ecdsa::signature::Signer as _;
        let s: p384::ecdsa::Signature = ec.sign(m);
        s.to_bytes().to_vec()
    });
    assert_eq!(jwks.verify(&token).unwrap().kid.as_deref(), Some("ec384"));
}

#[test]
fn every_algorithm_round_trips_through_the_local_signer() {
    for alg in JwsAlg::ALL {
        let signer = match alg.key_type() {
            KeyType::Rsa => LocalSigner::rsa(alg, format!("k-{alg}"), rsa_key()).unwrap(),
            _ => LocalSigner::generate(alg, format!("k-{alg}")).unwrap(),
        };
        let jwks = Jwks::from_value(&json!({"keys": [signer.public_jwk()]})).unwrap();
        let token = signer.sign(&claims()).unwrap();
        let v = jwks.verify(&token).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!((v.alg, v.header["typ"].as_str()), (alg, Some("JWT")));
    }
}

/// Each near miss, and the error it must give.
#[test]
fn near_misses_do_not_verify() {
    let (jwks, ec, ed) = mixed();
    let good = ps256("rsa", &claims());
    let (input, sig) = good.rsplit_once('.').unwrap();

    // Another key under the same kid.
    let (other_ec, _) = p384_pair();
    let wrong_key = es384(&other_ec, "ec384", &claims());
    // A PS256 header over the EC key, with a genuine PSS signature by the RSA key.
    let pss_over_ec = ps256("ec384", &claims());
    // ES256 over the P-384 key: the curve binds the algorithm too.
    let es256_over_p384 = {
        let header = jwt::encode_unsigned(&json!({"alg": "ES256", "kid": "ec384"}), &claims());
        let sig = es384(&ec, "ec384", &claims()).rsplit_once('.').unwrap().1.to_owned();
        format!("{header}.{sig}")
    };
    // EdDSA claimed for the RSA key.
    let eddsa_over_rsa = eddsa(&ed, "rsa", &claims());
    // alg none, in two spellings; with and without a signature part.
    let none = format!("{}.", jwt::encode_unsigned(&json!({"alg": "none"}), &claims()));
    let none_upper = format!("{}.{sig}", jwt::encode_unsigned(&json!({"alg": "NONE", "kid": "rsa"}), &claims()));
    // HS256 keyed with the RSA public key (its SPKI PEM, as a confused verifier would read it).
    let hs256 = {
        use rsa::pkcs8::EncodePublicKey as _;
        let pem = rsa_key().to_public_key().to_public_key_pem(rsa::pkcs8::LineEnding::LF).unwrap();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("rsa".into());
        provider();
        jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(pem.as_bytes())).unwrap()
    };
    // The payload changed, header and signature kept.
    let tampered = {
        let mut c = claims();
        c["sub"] = json!("mallory");
        let header = input.split('.').next().unwrap();
        format!("{header}.{}.{sig}", URL_SAFE_NO_PAD.encode(c.to_string()))
    };
    let unknown_kid = ps256("rotated-away", &claims());
    let no_signature = format!("{input}.");

    let cases: [(&str, &str, VerifyError); 11] = [
        ("wrong key", &wrong_key, VerifyError::Signature),
        (
            "PS256 over an EC key",
            &pss_over_ec,
            VerifyError::NoKeyForAlg { alg: JwsAlg::PS256, kid: Some("ec384".into()) },
        ),
        (
            "ES256 over P-384",
            &es256_over_p384,
            VerifyError::NoKeyForAlg { alg: JwsAlg::ES256, kid: Some("ec384".into()) },
        ),
        ("EdDSA over RSA", &eddsa_over_rsa, VerifyError::NoKeyForAlg { alg: JwsAlg::EdDSA, kid: Some("rsa".into()) }),
        ("alg none", &none, VerifyError::Alg(AlgError::Unsigned("none".into()))),
        ("alg NONE with a signature", &none_upper, VerifyError::Alg(AlgError::Unsigned("NONE".into()))),
        ("HS256 keyed with the public key", &hs256, VerifyError::Alg(AlgError::Symmetric("HS256".into()))),
        ("tampered payload", &tampered, VerifyError::Signature),
        ("unknown kid", &unknown_kid, VerifyError::UnknownKid("rotated-away".into())),
        ("no signature", &no_signature, VerifyError::Signature),
        ("not a JWS", "abc", VerifyError::Malformed(DecodeError::Parts(1))),
    ];
    for (what, token, expected) in cases {
        assert_eq!(jwks.verify(token).unwrap_err(), expected, "{what}");
    }
    assert!(jwks.verify(&good).is_ok(), "the untouched token still verifies");
}

#[test]
fn keys_in_the_header_are_never_trusted_and_crit_is_refused() {
    let (jwks, _, _) = mixed();
    // The attacker signs with their own Ed25519 key and embeds it (RFC 8725 §3.10).
    let (attacker, attacker_jwk) = ed25519_pair();
    let embedded = |kid: Option<&str>| {
        let mut header = json!({"alg": "EdDSA", "jwk": attacker_jwk, "jku": "https://attacker.example/jwks"});
        if let Some(k) = kid {
            header["kid"] = json!(k);
        }
        signed(&header, &claims(), |m| {
            use ed25519_dalek::Signer as _;
            attacker.sign(m).to_bytes().to_vec()
        })
    };
    assert_eq!(jwks.verify(&embedded(Some("ed"))).unwrap_err(), VerifyError::Signature);
    assert_eq!(jwks.verify(&embedded(None)).unwrap_err(), VerifyError::Signature);
    // A genuine signature whose header lists a critical extension (RFC 7515 §4.1.11).
    let signer = LocalSigner::generate(JwsAlg::ES256, "p256").unwrap();
    let keys = Jwks::from_value(&json!({"keys": [signer.public_jwk()]})).unwrap();
    let input = jwt::encode_unsigned(&json!({"alg": "ES256", "kid": "p256", "crit": ["b64"], "b64": false}), &claims());
    let crit = jwt::with_signature(&input, &signer.sign_input(input.as_bytes()).unwrap());
    assert_eq!(keys.verify(&crit).unwrap_err(), VerifyError::Critical("[\"b64\"]".into()));
}

#[test]
fn a_jwk_that_names_its_alg_verifies_only_that_one() {
    // A genuine PSS signature by a key published for RS256 only (RFC 7517 §4.4).
    let jwks = Jwks::from_value(&json!({"keys": [rsa_jwk("rsa", Some("RS256"))]})).unwrap();
    assert_eq!(
        jwks.verify(&ps256("rsa", &claims())).unwrap_err(),
        VerifyError::NoKeyForAlg { alg: JwsAlg::PS256, kid: Some("rsa".into()) }
    );
    let signer = LocalSigner::rsa(JwsAlg::RS256, "rsa", rsa_key()).unwrap();
    assert!(jwks.verify(&signer.sign(&claims()).unwrap()).is_ok());
}

#[test]
fn broken_key_material_is_a_key_error_and_misfits_are_refused() {
    assert_eq!(Jwks::from_value(&json!({"nokeys": []})).unwrap_err(), KeyError::NotAJwks);
    let bad = json!({"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]});
    assert!(matches!(
        Jwks::from_value(&bad),
        Err(KeyError::Jwk { index: 0, source: JwkError::Malformed { member: "n/e", .. } })
    ));
    let no_x = json!({"keys": [{"kty": "EC", "crv": "P-256", "y": "AAAA"}]});
    assert_eq!(Jwks::from_value(&no_x).unwrap_err(), KeyError::Jwk { index: 0, source: JwkError::Missing("x") });
    let misfit = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "alg": "ES256"}]});
    assert_eq!(
        Jwks::from_value(&misfit).unwrap_err(),
        KeyError::Jwk { index: 0, source: JwkError::AlgMismatch { alg: JwsAlg::ES256, key_type: KeyType::Ed25519 } }
    );
    assert_eq!(
        Jwks::from_value(&misfit).unwrap_err().to_string(),
        "key 0 of the JWKS: alg ES256 does not fit a key of type OKP Ed25519"
    );
    assert!(LocalSigner::rsa(JwsAlg::ES256, "k", rsa_key()).is_err());
}

#[test]
fn algorithm_names_parse_strictly() {
    for alg in JwsAlg::ALL {
        assert_eq!(alg.as_str().parse::<JwsAlg>(), Ok(alg));
    }
    assert_eq!("None".parse::<JwsAlg>(), Err(AlgError::Unsigned("None".into())));
    assert_eq!("hs512".parse::<JwsAlg>(), Err(AlgError::Symmetric("hs512".into())));
    assert_eq!("ES512".parse::<JwsAlg>(), Err(AlgError::Unsupported("ES512".into())));
    assert_eq!("rs256".parse::<JwsAlg>(), Err(AlgError::Unsupported("rs256".into())));
}
