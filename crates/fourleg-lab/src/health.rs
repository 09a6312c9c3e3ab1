//! Readiness checks, the same for every runtime: each asks the service a real
//! question, never "is the port open".

use std::time::{Duration, Instant};

use fourleg_core::Secret;
use serde_json::Value;

use crate::error::{LabError, Result};
use crate::fsutil;
use crate::runtime::Started;
use crate::service::Service;
use crate::LOOPBACK;

/// An HTTP client for lab services: short timeouts, never a proxy (loopback).
#[must_use]
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(3))
        .build()
        .expect("a TLS backend is compiled in")
}

/// Postgres answers `SELECT 1` as the superuser.
pub async fn postgres(port: u16, password: &Secret) -> bool {
    postgres_query(port, password).await.is_ok()
}

async fn postgres_query(port: u16, password: &Secret) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::Config::new()
        .host(LOOPBACK)
        .port(port)
        .user("fourleg")
        .password(password.expose())
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(3))
        .connect(tokio_postgres::NoTls)
        .await?;
    let task = tokio::spawn(conn);
    let row = client.query_one("SELECT 1", &[]).await;
    drop(client);
    let _ = task.await;
    row.map(|_| ())
}

/// OpenBao's `sys/health`, as the status of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaoHealth {
    /// Not answering.
    Down,
    /// Answering, not yet initialised.
    Uninitialized,
    /// Answering, sealed.
    Sealed,
    /// Unsealed, but not (yet) the active node: with raft storage a single
    /// node stays in standby until it has elected itself leader, and every
    /// write answers 500 "local node not active" meanwhile.
    Standby,
    /// Unsealed and active: writes succeed.
    Active,
}

/// Asks `sys/health` (OpenBao's documented health endpoint). Every state
/// answers 200 here so the body, not the status, tells them apart.
pub async fn openbao(base: &str) -> BaoHealth {
    let url = format!("{base}/v1/sys/health?uninitcode=200&sealedcode=200&standbyok=true");
    let Ok(resp) = http().get(url).send().await else { return BaoHealth::Down };
    let Ok(body) = resp.json::<Value>().await else { return BaoHealth::Down };
    if body["initialized"] == Value::Bool(false) {
        BaoHealth::Uninitialized
    } else if body["sealed"] == Value::Bool(true) {
        BaoHealth::Sealed
    } else if body["standby"] == Value::Bool(true) || body["performance_standby"] == Value::Bool(true) {
        BaoHealth::Standby
    } else {
        BaoHealth::Active
    }
}

/// A realm's OIDC discovery document answers with its issuer.
pub async fn keycloak_realm(base: &str, realm: &str) -> bool {
    let url = format!("{base}/realms/{realm}/.well-known/openid-configuration");
    match http().get(url).send().await {
        Ok(r) if r.status().is_success() => r
            .json::<Value>()
            .await
            .is_ok_and(|v| v["issuer"].as_str().is_some_and(|i| i.ends_with(&format!("/realms/{realm}")))),
        _ => false,
    }
}

/// Polls `probe` until it holds, the process exits, or `timeout` passes.
pub async fn wait_ready<F, Fut>(started: &mut Started, timeout: Duration, mut probe: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let service: Service = started.record.service;
    let begin = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        if probe().await {
            return Ok(());
        }
        if let Some(status) = started.exited() {
            return Err(LabError::ExitedEarly {
                service,
                status,
                tail: fsutil::tail(&started.record.log, 25),
                log: started.record.log.clone(),
            });
        }
        if begin.elapsed() >= timeout {
            return Err(LabError::NotReady {
                service,
                addr: format!("{}:{}", started.record.host, started.record.port),
                waited: timeout,
                tail: fsutil::tail(&started.record.log, 25),
                log: started.record.log.clone(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
