//! OpenBao: initialise and unseal, then apply `fixtures/openbao/provision.toml`:
//! a KV v2 mount with the lab's client secrets, a Transit engine with the
//! broker's keys, ACL policies, and an AppRole credential for the broker
//! (never the root token).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fourleg_core::Secret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::LabConfig;
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::health::{self, BaoHealth};
use crate::service::Service;

/// `fixtures/openbao/provision.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaoFixture {
    pub kv: KvFixture,
    pub transit: TransitFixture,
    #[serde(default)]
    pub policies: Vec<PolicyFixture>,
    pub approle: AppRoleFixture,
}

/// The KV v2 mount holding client secrets at `clients/<client_id>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvFixture {
    pub mount: String,
}

/// The Transit mount and its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitFixture {
    pub mount: String,
    pub keys: Vec<TransitKey>,
}

/// A Transit key (`type` as OpenBao names it, e.g. `aes256-gcm96`, `ecdsa-p256`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitKey {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: String,
}

/// An ACL policy read from an HCL file next to the fixture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFixture {
    pub name: String,
    pub file: PathBuf,
}

/// The broker's AppRole.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleFixture {
    pub mount: String,
    pub role: String,
    pub policies: Vec<String>,
    pub token_ttl: String,
}

impl BaoFixture {
    /// Reads and checks the fixture; errors name the file and the field.
    pub fn load(fixtures: &Path) -> Result<Self> {
        let path = fixtures.join("openbao/provision.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| LabError::Fixture { path: path.clone(), message: e.to_string() })?;
        // toml's errors carry the line, the column and the offending key.
        toml::from_str(&text).map_err(|e: toml::de::Error| LabError::Fixture { path, message: e.to_string() })
    }
}

/// The unseal key and root token, kept owner-only in `openbao/init.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BaoInit {
    pub unseal_key: Secret,
    pub root_token: Secret,
}

/// The broker's AppRole credential, kept owner-only in `openbao/broker-approle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerAppRole {
    pub mount: String,
    pub role_id: String,
    pub secret_id: Secret,
}

impl BrokerAppRole {
    /// Path of the credential file.
    #[must_use]
    pub fn path(config: &LabConfig) -> PathBuf {
        config.state_path("openbao/broker-approle.json")
    }

    /// Loads the broker's credential, if provisioned.
    pub fn load(config: &LabConfig) -> Result<Option<Self>> {
        fsutil::read_json(&Self::path(config))
    }
}

/// A small OpenBao API client.
#[derive(Debug, Clone)]
pub struct Bao {
    base: String,
    token: Option<Secret>,
    http: reqwest::Client,
}

impl Bao {
    /// A client for `base` (`http://127.0.0.1:port`), unauthenticated.
    #[must_use]
    pub fn new(base: &str) -> Self {
        Self { base: base.trim_end_matches('/').to_owned(), token: None, http: health::http() }
    }

    /// The same client with a token.
    #[must_use]
    pub fn with_token(&self, token: Secret) -> Self {
        Self { token: Some(token), ..self.clone() }
    }

    /// Calls `method /v1/<path>`; returns status and JSON body (`Null` when empty).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let url = format!("{}/v1/{}", self.base, path.trim_start_matches('/'));
        let mut req = self.http.request(method.clone(), &url);
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t.expose());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| LabError::http(format!("openbao {method} /v1/{path}"), e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// Like [`Bao::call`] but a non-2xx answer is a provisioning error.
    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(LabError::provision(
                Service::Openbao,
                format!("{method} /v1/{path} answered {status}: {}", errors_of(&value)),
            ))
        }
    }
}

fn errors_of(v: &Value) -> String {
    v["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| v.to_string())
}

/// Initialises (first start) and unseals OpenBao; returns the root token.
pub async fn init_and_unseal(config: &LabConfig, base: &str) -> Result<Secret> {
    let bao = Bao::new(base);
    let init_path = config.state_path("openbao/init.json");
    let mut init: Option<BaoInit> = fsutil::read_json(&init_path)?;
    if health::openbao(base).await == BaoHealth::Uninitialized {
        let v =
            bao.ok(reqwest::Method::PUT, "sys/init", Some(json!({"secret_shares": 1, "secret_threshold": 1}))).await?;
        let unseal = v["keys_base64"][0]
            .as_str()
            .or_else(|| v["keys"][0].as_str())
            .ok_or_else(|| LabError::provision(Service::Openbao, "sys/init returned no unseal key"))?;
        let root = v["root_token"]
            .as_str()
            .ok_or_else(|| LabError::provision(Service::Openbao, "sys/init returned no root token"))?;
        let fresh = BaoInit { unseal_key: Secret::new(unseal), root_token: Secret::new(root) };
        fsutil::write_json(&init_path, &fresh)?;
        init = Some(fresh);
    }
    let init = init.ok_or_else(|| LabError::State {
        path: init_path.clone(),
        message: "openbao is initialised but its unseal key is missing; run `fourleg down --purge` and `up` again"
            .into(),
    })?;
    if health::openbao(base).await == BaoHealth::Sealed {
        bao.ok(reqwest::Method::PUT, "sys/unseal", Some(json!({"key": init.unseal_key.expose()}))).await?;
    }
    // Raft elects itself leader shortly after unseal.
    for _ in 0..100 {
        if health::openbao(base).await == BaoHealth::Active {
            return Ok(init.root_token);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(LabError::provision(Service::Openbao, "unsealed but not active after 20s"))
}

/// Applies the fixture with the root token; writes the client secrets to KV
/// and the broker's AppRole credential to the state directory.
pub async fn provision(
    config: &LabConfig,
    base: &str,
    root: Secret,
    clients: &BTreeMap<String, Secret>,
) -> Result<BrokerAppRole> {
    use reqwest::Method;
    let fixture = BaoFixture::load(&config.fixtures_dir)?;
    let bao = Bao::new(base).with_token(root);

    let mounts = bao.ok(Method::GET, "sys/mounts", None).await?;
    let mounted = |m: &str| mounts["data"].get(format!("{m}/")).is_some() || mounts.get(format!("{m}/")).is_some();
    if !mounted(&fixture.kv.mount) {
        bao.ok(
            Method::POST,
            &format!("sys/mounts/{}", fixture.kv.mount),
            Some(json!({"type": "kv", "options": {"version": "2"}, "description": "fourleg lab client secrets"})),
        )
        .await?;
    }
    if !mounted(&fixture.transit.mount) {
        bao.ok(
            Method::POST,
            &format!("sys/mounts/{}", fixture.transit.mount),
            Some(json!({"type": "transit", "description": "fourleg broker keys"})),
        )
        .await?;
    }
    for key in &fixture.transit.keys {
        let path = format!("{}/keys/{}", fixture.transit.mount, key.name);
        let (status, _) = bao.call(Method::GET, &path, None).await?;
        if status == 404 {
            bao.ok(Method::POST, &path, Some(json!({"type": key.key_type}))).await?;
        }
    }
    for p in &fixture.policies {
        let file = config.fixtures_dir.join("openbao").join(&p.file);
        let hcl = std::fs::read_to_string(&file)
            .map_err(|e| LabError::Fixture { path: file.clone(), message: e.to_string() })?;
        let hcl = hcl.replace("{{kv_mount}}", &fixture.kv.mount).replace("{{transit_mount}}", &fixture.transit.mount);
        bao.ok(Method::PUT, &format!("sys/policies/acl/{}", p.name), Some(json!({"policy": hcl}))).await?;
    }
    // KV v2: client secrets at clients/<id>, rewritten each up (same values).
    for (client, secret) in clients {
        bao.ok(
            Method::POST,
            &format!("{}/data/clients/{client}", fixture.kv.mount),
            Some(json!({"data": {"client_id": client, "client_secret": secret.expose()}})),
        )
        .await?;
    }

    let ar = &fixture.approle;
    let auths = bao.ok(Method::GET, "sys/auth", None).await?;
    let enabled =
        auths["data"].get(format!("{}/", ar.mount)).is_some() || auths.get(format!("{}/", ar.mount)).is_some();
    if !enabled {
        bao.ok(Method::POST, &format!("sys/auth/{}", ar.mount), Some(json!({"type": "approle"}))).await?;
    }
    let role_path = format!("auth/{}/role/{}", ar.mount, ar.role);
    bao.ok(
        Method::POST,
        &role_path,
        Some(json!({"token_policies": ar.policies, "token_ttl": ar.token_ttl, "token_max_ttl": ar.token_ttl})),
    )
    .await?;
    let role_id = bao.ok(Method::GET, &format!("{role_path}/role-id"), None).await?["data"]["role_id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| LabError::provision(Service::Openbao, "no role_id for the broker's approle"))?;
    if let Some(existing) = BrokerAppRole::load(config)? {
        if existing.role_id == role_id && existing.mount == ar.mount {
            return Ok(existing);
        }
    }
    let secret_id = bao.ok(Method::POST, &format!("{role_path}/secret-id"), None).await?["data"]["secret_id"]
        .as_str()
        .map(Secret::new)
        .ok_or_else(|| LabError::provision(Service::Openbao, "no secret_id for the broker's approle"))?;
    let cred = BrokerAppRole { mount: ar.mount.clone(), role_id, secret_id };
    fsutil::write_json(&BrokerAppRole::path(config), &cred)?;
    Ok(cred)
}

/// Logs in with the broker's AppRole and returns its token.
pub async fn broker_login(base: &str, cred: &BrokerAppRole) -> Result<Secret> {
    let v = Bao::new(base)
        .ok(
            reqwest::Method::POST,
            &format!("auth/{}/login", cred.mount),
            Some(json!({"role_id": cred.role_id, "secret_id": cred.secret_id.expose()})),
        )
        .await?;
    v["auth"]["client_token"]
        .as_str()
        .map(Secret::new)
        .ok_or_else(|| LabError::provision(Service::Openbao, "approle login returned no token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_fixture_parses() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let f = BaoFixture::load(&fixtures).unwrap();
        assert!(!f.transit.keys.is_empty());
        for p in &f.policies {
            assert!(fixtures.join("openbao").join(&p.file).is_file(), "{}", p.file.display());
        }
    }

    #[test]
    fn an_unknown_field_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("openbao")).unwrap();
        std::fs::write(dir.path().join("openbao/provision.toml"), "[kv]\nmount = \"x\"\nmonut = \"y\"\n").unwrap();
        let err = BaoFixture::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("provision.toml"), "{err}");
        assert!(err.contains("monut"), "{err}");
    }
}
