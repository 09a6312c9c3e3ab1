//! The broker's ES256 signing keys: envelope-encrypted. Each private key
//! (PKCS#8) is stored in Postgres only wrapped by the OpenBao Transit key
//! `broker-keywrap` and unwrapped once, into this process's memory, at start.
//! Signing is then local: a Transit call per token would cap throughput at
//! OpenBao's, and make every exchange depend on it.
//!
//! Every replica uses the same active key (created once, under an advisory
//! lock); retired keys stay in the JWKS for a day, longer than any token
//! lives (`catalog.lifetime_s`).

use fourleg_core::jose::{Jwks, LocalSigner, Signer as _, Verified, VerifyError};
use p256::pkcs8::EncodePrivateKey as _;
use serde_json::{json, Value};

use crate::error::BrokerError;
use crate::store::Store;
use crate::vault::Vault;

/// The active signer and the published keys.
#[derive(Debug)]
pub struct Keys {
    signer: LocalSigner,
    jwks: Jwks,
    published: Value,
}

impl Keys {
    /// Loads the keys from Postgres (creating the first one, wrapped by
    /// Transit, when there is none) and unwraps the active one.
    pub async fn load(store: &Store, vault: &Vault) -> Result<Self, BrokerError> {
        let keys = store
            .signing_keys(|| async {
                let sk = p256::ecdsa::SigningKey::random(&mut rand::thread_rng());
                let der = sk.to_pkcs8_der().map_err(|e| BrokerError::Signing(e.to_string()))?;
                let kid = format!("broker-{}", crate::http::random_id(12));
                let public = LocalSigner::es256_from_pkcs8(&kid, der.as_bytes())
                    .map_err(|e| BrokerError::Signing(e.to_string()))?
                    .public_jwk();
                let wrapped = vault.wrap(der.as_bytes()).await?;
                Ok((kid, wrapped, public))
            })
            .await?;
        let active = keys.iter().find(|k| k.active).ok_or_else(|| BrokerError::Signing("no active key".into()))?;
        let der = vault.unwrap(&active.wrapped_key).await?;
        let signer =
            LocalSigner::es256_from_pkcs8(&active.kid, &der).map_err(|e| BrokerError::Signing(e.to_string()))?;
        let published = json!({"keys": keys.iter().map(|k| k.public_jwk.clone()).collect::<Vec<_>>()});
        let jwks = Jwks::from_value(&published).map_err(|e| BrokerError::Signing(e.to_string()))?;
        Ok(Self { signer, jwks, published })
    }

    /// Signs claims as a compact JWS.
    pub fn sign(&self, claims: &Value) -> Result<String, BrokerError> {
        self.signer.sign(claims).map_err(|e| BrokerError::Signing(e.to_string()))
    }

    /// Verifies a token the broker signed.
    pub fn verify(&self, token: &str) -> Result<Verified, VerifyError> {
        self.jwks.verify(token)
    }

    /// The JWKS document (RFC 7517 §5).
    #[must_use]
    pub fn published(&self) -> &Value {
        &self.published
    }
}
