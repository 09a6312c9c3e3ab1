//! OpenBao, through the broker's AppRole: client secrets from KV v2 (cached
//! in memory with a TTL, never written anywhere, never logged) and the
//! Transit key that wraps the signing keys.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fourleg_core::Secret;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::RwLock;

use crate::config::Openbao;
use crate::error::BrokerError;

/// The AppRole credential file the lab writes (`openbao/broker-approle.json`).
#[derive(Deserialize)]
struct AppRole {
    mount: String,
    role_id: String,
    secret_id: Secret,
}

/// An OpenBao client logged in with the broker's AppRole.
#[derive(Debug)]
pub struct Vault {
    http: reqwest::Client,
    base: String,
    approle_file: PathBuf,
    kv_mount: String,
    transit_mount: String,
    wrap_key: String,
    secret_ttl: Duration,
    token: RwLock<Option<Secret>>,
    /// Client secrets by client id, with the time they were read.
    secrets: RwLock<HashMap<String, (Option<Secret>, Instant)>>,
}

fn bao_err(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Openbao(format!("{what}: {e}"))
}

impl Vault {
    #[must_use]
    pub fn new(c: &Openbao, http: reqwest::Client) -> Self {
        Self {
            http,
            base: c.url.trim_end_matches('/').to_owned(),
            approle_file: c.approle_file.clone(),
            kv_mount: c.kv_mount.clone(),
            transit_mount: c.transit_mount.clone(),
            wrap_key: c.wrap_key.clone(),
            secret_ttl: Duration::from_secs(c.secret_ttl_s),
            token: RwLock::new(None),
            secrets: RwLock::new(HashMap::new()),
        }
    }

    async fn login(&self) -> Result<Secret, BrokerError> {
        let text = std::fs::read_to_string(&self.approle_file)
            .map_err(|e| bao_err(&format!("reading {}", self.approle_file.display()), e))?;
        let ar: AppRole = serde_json::from_str(&text).map_err(|e| bao_err("the approle file", e))?;
        let url = format!("{}/v1/auth/{}/login", self.base, ar.mount);
        let resp = self
            .http
            .post(&url)
            .json(&json!({"role_id": ar.role_id, "secret_id": ar.secret_id.expose()}))
            .send()
            .await
            .map_err(|e| bao_err("approle login", e))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(BrokerError::Openbao(format!("approle login answered {status}")));
        }
        let token = body["auth"]["client_token"]
            .as_str()
            .ok_or_else(|| BrokerError::Openbao("approle login returned no token".into()))?;
        let token = Secret::new(token);
        *self.token.write().await = Some(token.clone());
        Ok(token)
    }

    /// One API call; a 403 (expired token) logs in again once.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<(u16, Value), BrokerError> {
        for attempt in 0..2 {
            // The read guard is dropped here, before `login` takes the write
            // lock (a guard in the `match` scrutinee lives through its arms).
            let cached = self.token.read().await.clone();
            let token = match cached {
                Some(t) if attempt == 0 => t,
                _ => self.login().await?,
            };
            let mut req = self.http.request(method.clone(), format!("{}/v1/{path}", self.base));
            req = req.header("X-Vault-Token", token.expose());
            if let Some(b) = &body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| bao_err(path, e))?;
            let status = resp.status().as_u16();
            let value: Value = resp.json().await.unwrap_or(Value::Null);
            match status {
                403 if attempt == 0 => {}
                503 => return Err(BrokerError::Openbao(format!("{path}: sealed or unavailable (503)"))),
                500..=599 => return Err(BrokerError::Openbao(format!("{path} answered {status}"))),
                _ => return Ok((status, value)),
            }
        }
        Err(BrokerError::Openbao(format!("{path}: permission denied after a fresh login")))
    }

    /// A client's secret (`<kv>/clients/<id>`, field `client_secret`), from
    /// the cache while it is fresh; `None` when the client has none.
    pub async fn client_secret(&self, client_id: &str) -> Result<Option<Secret>, BrokerError> {
        if let Some((s, at)) = self.secrets.read().await.get(client_id) {
            if at.elapsed() < self.secret_ttl {
                return Ok(s.clone());
            }
        }
        let (status, v) = self.call(Method::GET, &format!("{}/data/clients/{client_id}", self.kv_mount), None).await?;
        let secret = match status {
            200 => v["data"]["data"]["client_secret"].as_str().map(Secret::new),
            404 => None,
            s => return Err(BrokerError::Openbao(format!("reading the secret of {client_id} answered {s}"))),
        };
        self.secrets.write().await.insert(client_id.to_owned(), (secret.clone(), Instant::now()));
        Ok(secret)
    }

    /// Forgets every cached secret (a client was disabled or rotated).
    pub async fn forget_secrets(&self) {
        self.secrets.write().await.clear();
    }

    /// Wraps `plaintext` with the Transit key (a `vault:v1:` ciphertext).
    pub async fn wrap(&self, plaintext: &[u8]) -> Result<String, BrokerError> {
        let path = format!("{}/encrypt/{}", self.transit_mount, self.wrap_key);
        let (status, v) =
            self.call(Method::POST, &path, Some(json!({"plaintext": STANDARD.encode(plaintext)}))).await?;
        if status != 200 {
            return Err(BrokerError::Openbao(format!("{path} answered {status}")));
        }
        v["data"]["ciphertext"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BrokerError::Openbao(format!("{path} returned no ciphertext")))
    }

    /// Unwraps a ciphertext of [`Vault::wrap`].
    pub async fn unwrap(&self, ciphertext: &str) -> Result<Vec<u8>, BrokerError> {
        let path = format!("{}/decrypt/{}", self.transit_mount, self.wrap_key);
        let (status, v) = self.call(Method::POST, &path, Some(json!({"ciphertext": ciphertext}))).await?;
        if status != 200 {
            return Err(BrokerError::Openbao(format!("{path} answered {status}")));
        }
        let b64 = v["data"]["plaintext"]
            .as_str()
            .ok_or_else(|| BrokerError::Openbao(format!("{path} returned no plaintext")))?;
        STANDARD.decode(b64).map_err(|e| bao_err(&path, e))
    }

    /// Whether OpenBao answers unsealed (`sys/health` 200).
    pub async fn healthy(&self) -> bool {
        matches!(
            self.http.get(format!("{}/v1/sys/health", self.base)).send().await.map(|r| r.status().as_u16()),
            Ok(200)
        )
    }
}
