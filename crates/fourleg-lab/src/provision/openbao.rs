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
    #[serde(with = "fourleg_core::secret::exposed")]
    pub unseal_key: Secret,
    #[serde(with = "fourleg_core::secret::exposed")]
    pub root_token: Secret,
}

/// The broker's AppRole credential, kept owner-only in `openbao/broker-approle.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BrokerAppRole {
    pub mount: String,
    pub role_id: String,
    #[serde(with = "fourleg_core::secret::exposed")]
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
    ///
    /// An answer that only says the node is not active yet (a raft node that
    /// has not finished electing itself, see [`is_not_active`]) is retried for
    /// up to [`NOT_ACTIVE_GRACE`]: it is a state the node leaves by itself, not
    /// an answer to the request.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let begin = std::time::Instant::now();
        loop {
            let (status, value) = self.call_once(method.clone(), path, body.clone()).await?;
            if is_not_active(status, &value) && begin.elapsed() < NOT_ACTIVE_GRACE {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                continue;
            }
            return Ok((status, value));
        }
    }

    async fn call_once(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
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

/// How long a request answered "not active" is retried.
const NOT_ACTIVE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether an answer only says that the node cannot serve requests yet: 429
/// (a standby node, per `sys/health`'s defaults), 503 (sealed or not ready),
/// or 500 with OpenBao's "local node not active" / "active cluster node not
/// found", which a single raft node answers between unseal and its election.
fn is_not_active(status: u16, value: &Value) -> bool {
    match status {
        429 | 503 => true,
        500 => {
            let errors = errors_of(value);
            errors.contains("node not active") || errors.contains("active cluster node not found")
        }
        _ => false,
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
    wait_active(base, ACTIVE_TIMEOUT).await?;
    Ok(init.root_token)
}

/// How long an unsealed node may take to become the active node.
const ACTIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Waits until the node is the active one and knows it: `sys/health` says
/// unsealed and not standby, and `sys/leader` names this node as leader.
/// Between unseal and the end of its raft election a single node answers
/// writes with 500 "local node not active"; provisioning starts only after.
pub async fn wait_active(base: &str, timeout: std::time::Duration) -> Result<()> {
    let bao = Bao::new(base);
    let begin = std::time::Instant::now();
    let mut last = BaoHealth::Down;
    while begin.elapsed() < timeout {
        last = health::openbao(base).await;
        if last == BaoHealth::Active {
            if let Ok((200, leader)) = bao.call_once(reqwest::Method::GET, "sys/leader", None).await {
                let is_leader = leader["ha_enabled"] == Value::Bool(false) || leader["is_self"] == Value::Bool(true);
                if is_leader {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Err(LabError::provision(
        Service::Openbao,
        format!("unsealed but not the active node after {}s (last health: {last:?})", timeout.as_secs()),
    ))
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

    /// A stand-in for a single raft node between unseal and its election:
    /// `sys/health` says standby and writes answer 500 "local node not
    /// active" for the first `standby_calls` health checks, then it is active.
    /// It only tests the harness's waiting: the real node is in the live tests.
    async fn electing_node(standby_calls: usize) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let health_calls = Arc::new(AtomicUsize::new(0));
        let active = {
            let h = health_calls.clone();
            move || h.load(Ordering::SeqCst) > standby_calls
        };
        let (a1, a2, a3) = (active.clone(), active.clone(), active);
        let h = health_calls.clone();
        let app = axum::Router::new()
            .route(
                "/v1/sys/health",
                axum::routing::get(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                    let standby = !a1();
                    async move { axum::Json(json!({"initialized": true, "sealed": false, "standby": standby})) }
                }),
            )
            .route(
                "/v1/sys/leader",
                axum::routing::get(move || {
                    let me = a2();
                    async move { axum::Json(json!({"ha_enabled": true, "is_self": me})) }
                }),
            )
            .route(
                "/v1/sys/mounts/fourleg",
                axum::routing::post(move || {
                    let ok = a3();
                    async move {
                        if ok {
                            (axum::http::StatusCode::NO_CONTENT, String::new())
                        } else {
                            let body = json!({"errors": ["local node not active but active cluster node not found"]});
                            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, body.to_string())
                        }
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), health_calls)
    }

    #[tokio::test]
    async fn a_standby_node_is_not_active() {
        let (base, _) = electing_node(usize::MAX).await;
        // `standbyok=true` makes a standby node answer 200: the body decides.
        assert_eq!(health::openbao(&base).await, BaoHealth::Standby);
        let err = wait_active(&base, std::time::Duration::from_millis(600)).await.unwrap_err().to_string();
        assert!(err.contains("not the active node"), "{err}");
    }

    #[tokio::test]
    async fn provisioning_waits_for_the_election() {
        let (base, calls) = electing_node(5).await;
        wait_active(&base, std::time::Duration::from_secs(10)).await.unwrap();
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 5);
        assert_eq!(health::openbao(&base).await, BaoHealth::Active);
    }

    #[tokio::test]
    async fn a_write_answered_not_active_is_retried() {
        let (base, _) = electing_node(3).await;
        let bao = Bao::new(&base);
        // The node turns active only as its health is polled: poll it in the
        // background while the write is retried.
        let poller = {
            let base = base.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    health::openbao(&base).await;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        };
        bao.ok(reqwest::Method::POST, "sys/mounts/fourleg", Some(json!({"type": "kv"}))).await.unwrap();
        poller.await.unwrap();
    }

    #[test]
    fn only_not_active_answers_are_retried() {
        let not_active = json!({"errors": ["local node not active but active cluster node not found"]});
        assert!(is_not_active(500, &not_active));
        assert!(is_not_active(503, &Value::Null));
        assert!(is_not_active(429, &Value::Null));
        assert!(!is_not_active(500, &json!({"errors": ["permission denied"]})));
        assert!(!is_not_active(400, &not_active));
        assert!(!is_not_active(404, &Value::Null));
    }
}
