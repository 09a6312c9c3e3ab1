//! The reference broker for real: two replicas over one Postgres and one
//! OpenBao, and each dependency taken away under load.
//!
//! - **Replicas.** A chain built across replica A and a second replica B
//!   (`fourleg broker --listen`); a revocation at B is seen at A by the very
//!   next introspection and exchange: the broker keeps no revocation state of
//!   its own, every decision reads the lineage in Postgres.
//! - **Fails closed.** While Postgres is stopped, OpenBao is sealed, or
//!   Keycloak's JWKS is unreachable past the cache, load keeps running; every
//!   answer is a token or a 503, and afterwards every token that was answered
//!   has its lineage row and its audit row. Each time the dependency comes
//!   back, the same broker process issues again (no restart).
//!
//! Starts its own lab (native runtime) and purges it at the end.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use fourleg_lab::state::{Credentials, Handle, LabState};
use fourleg_lab::{RuntimeKind, Service, Silent};
use fourleg_live_tests::{claims, fourleg_binary, lab_config, login_with_pkce};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

/// Starts `fourleg broker` on its own port with `config`, waits for `/health`.
async fn replica(config: &std::path::Path, password: &str, log: &std::path::Path) -> anyhow::Result<(Replica, String)> {
    let port = free_port();
    let out = std::fs::File::create(log)?;
    let child = Command::new(fourleg_binary())
        .args(["broker", "--config"])
        .arg(config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env(fourleg_lab::broker::PASSWORD_ENV, password)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    let r = Replica(child);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !fourleg_lab::broker::healthy(&url).await {
        ensure!(Instant::now() < deadline, "replica on {url} never healthy; see {}", log.display());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok((r, url))
}

struct Lab {
    http: reqwest::Client,
    creds: Credentials,
}

impl Lab {
    fn secret(&self, client: &str) -> String {
        self.creds.clients[client].expose().to_owned()
    }

    async fn exchange(
        &self,
        broker: &str,
        client: &str,
        subject: &str,
        audience: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{broker}/token"))
            .basic_auth(client, Some(self.secret(client)))
            .form(&[
                ("grant_type", EXCHANGE),
                ("subject_token", subject),
                ("subject_token_type", ACCESS_TOKEN),
                ("audience", audience),
            ])
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    async fn introspect(&self, broker: &str, client: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{broker}/introspect"))
            .basic_auth(client, Some(self.secret(client)))
            .form(&[("token", token)])
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    async fn revoke(&self, broker: &str, client: &str, token: &str) -> anyhow::Result<u16> {
        let r = self
            .http
            .post(format!("{broker}/revoke"))
            .basic_auth(client, Some(self.secret(client)))
            .form(&[("token", token)])
            .send()
            .await?;
        Ok(r.status().as_u16())
    }
}

/// What the load saw: the `jti` of every token answered, and the count of
/// each status.
#[derive(Default)]
struct Seen {
    jtis: BTreeSet<String>,
    statuses: std::collections::BTreeMap<u16, usize>,
}

/// Four connections exchanging alice's token at `broker` until `stop`.
fn load(
    lab: &Arc<Lab>,
    broker: &str,
    subject: &str,
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|_| {
            let (lab, broker, subject, stop, seen) =
                (Arc::clone(lab), broker.to_owned(), subject.to_owned(), Arc::clone(stop), Arc::clone(seen));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (status, body) = match lab.exchange(&broker, "agent", &subject, "mcp-server").await {
                        Ok(x) => x,
                        Err(_) => (0, Value::Null),
                    };
                    {
                        let mut s = seen.lock().unwrap();
                        *s.statuses.entry(status).or_default() += 1;
                        if status == 200 {
                            let jti = body["access_token"]
                                .as_str()
                                .and_then(|t| claims(t).ok())
                                .and_then(|c| c["jti"].as_str().map(str::to_owned));
                            s.jtis.insert(jti.unwrap_or_else(|| "<token without jti>".into()));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        })
        .collect()
}

fn counts(seen: &Mutex<Seen>) -> (usize, usize, usize) {
    let s = seen.lock().unwrap();
    let ok = s.statuses.get(&200).copied().unwrap_or(0);
    let unavailable = s.statuses.get(&503).copied().unwrap_or(0);
    let other = s.statuses.iter().filter(|(k, _)| **k != 200 && **k != 503).map(|(_, v)| v).sum();
    (ok, unavailable, other)
}

/// Waits until the load has seen `n` more answers of `status` than `from`.
async fn until(seen: &Mutex<Seen>, status: u16, more: usize, what: &str) -> anyhow::Result<()> {
    let from = seen.lock().unwrap().statuses.get(&status).copied().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = seen.lock().unwrap().statuses.get(&status).copied().unwrap_or(0);
        if now >= from + more {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: no {more} answers {status} within 90 s (statuses {:?})", seen.lock().unwrap().statuses);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn pid_of(config: &fourleg_lab::LabConfig, service: Service) -> anyhow::Result<i32> {
    let st = LabState::load(&config.state_dir)?.context("lab.json")?;
    match st.services.get(&service).map(|r| &r.handle) {
        Some(Handle::Process { pid, .. }) => Ok(i32::try_from(*pid)?),
        _ => bail!("{service} has no process"),
    }
}

async fn broker_db(config: &fourleg_lab::LabConfig, creds: &Credentials) -> anyhow::Result<tokio_postgres::Client> {
    let st = LabState::load(&config.state_dir)?.context("lab.json")?;
    let port = st.services[&Service::Postgres].port;
    let (client, conn) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("broker")
        .password(creds.postgres_broker.expose())
        .dbname("broker")
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(conn);
    Ok(client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_revocation_and_every_dependency_fails_closed() -> anyhow::Result<()> {
    let config = lab_config("broker");
    let _ = fourleg_lab::down(&config, true).await;
    let report = fourleg_lab::up(&config, RuntimeKind::Native, &Silent).await?;
    let url = |svc| report.services.iter().find(|s| s.record.service == svc).unwrap().record.url.clone();
    let creds = Credentials::load(&config)?.context("credentials")?;
    let password = creds.postgres_broker.expose().to_owned();
    let lab =
        Arc::new(Lab { http: reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build()?, creds });
    let a = url(Service::Broker);
    let broker_toml = fourleg_lab::broker::config_path(&config);
    let (_b_proc, b) = replica(&broker_toml, &password, &config.state_path("logs/broker-b.log")).await?;

    // 1. A chain across replicas, revoked at B, dead at A at once.
    let issuer = format!("{}/realms/fourleg", url(Service::Keycloak));
    let login = |user: &'static str| {
        let (issuer, pw) = (issuer.clone(), lab.creds.users[user].clone());
        async move { login_with_pkce(&issuer, "lab-web", "openid records:read", user, &pw).await }
    };
    let alice = login("alice").await?;
    let subject = alice["access_token"].as_str().context("alice's access token")?.to_owned();
    let (s1, hop1) = lab.exchange(&a, "agent", &subject, "mcp-server").await?;
    ensure!(s1 == 200, "hop 1 at A: {s1} {hop1}");
    let t1 = hop1["access_token"].as_str().unwrap().to_owned();
    let (s2, hop2) = lab.exchange(&b, "mcp-server", &t1, "downstream-api").await?;
    ensure!(s2 == 200, "hop 2 at B: {s2} {hop2}");
    let t2 = hop2["access_token"].as_str().unwrap().to_owned();
    let (_, before) = lab.introspect(&a, "downstream-api", &t2).await?;
    assert_eq!(before["active"], true, "hop 2 is active at A before the revocation: {before}");
    assert_eq!(lab.revoke(&b, "agent", &t1).await?, 200);
    // The very next requests at A, no waiting: no replica keeps a view of its own.
    let (_, after) = lab.introspect(&a, "downstream-api", &t2).await?;
    assert_eq!(after["active"], false, "hop 2 still active at A after hop 1 was revoked at B: {after}");
    let (again, body) = lab.exchange(&a, "mcp-server", &t1, "downstream-api").await?;
    assert!((400..500).contains(&again), "the revoked hop 1 was exchanged again at A: {again} {body}");

    // 2. Under load at A, each dependency taken away and given back.
    let fresh = login("alice").await?;
    let subject = fresh["access_token"].as_str().unwrap().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut tasks = load(&lab, &a, &subject, &stop, &seen);
    until(&seen, 200, 20, "before any fault").await?;

    // 2a. Postgres stopped (fast shutdown), then `fourleg up` starts it again.
    let broker_pid = pid_of(&config, Service::Broker)?;
    let pg = pid_of(&config, Service::Postgres)?;
    kill(Pid::from_raw(pg), Signal::SIGINT)?;
    until(&seen, 503, 20, "postgres stopped").await?;
    fourleg_lab::up(&config, RuntimeKind::Native, &Silent).await?;
    until(&seen, 200, 20, "postgres back").await?;

    // 2b. OpenBao sealed with its root token, then unsealed.
    let bao = url(Service::Openbao);
    let init: Value = serde_json::from_str(&std::fs::read_to_string(config.state_path("openbao/init.json"))?)?;
    let root = init["root_token"].as_str().context("root token")?;
    let sealed = lab.http.put(format!("{bao}/v1/sys/seal")).header("X-Vault-Token", root).send().await?;
    ensure!(sealed.status().is_success(), "sealing answered {}", sealed.status());
    until(&seen, 503, 20, "openbao sealed").await?;
    fourleg_lab::provision::openbao::init_and_unseal(&config, &bao).await?;
    until(&seen, 200, 20, "openbao unsealed").await?;

    stop.store(true, Ordering::Relaxed);
    for t in tasks.drain(..) {
        t.await?;
    }

    // 2c. Keycloak's JWKS unreachable past a 1 s cache: replica C, Keycloak frozen.
    let text = std::fs::read_to_string(&broker_toml)?;
    let short = text.replace("[upstream]\n", "[upstream]\njwks_ttl_s = 1\njwks_min_refetch_s = 1\n");
    let c_toml = config.state_path("broker/broker-c.toml");
    std::fs::write(&c_toml, short)?;
    let (_c_proc, c) = replica(&c_toml, &password, &config.state_path("logs/broker-c.log")).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = load(&lab, &c, &subject, &stop, &seen);
    until(&seen, 200, 10, "replica C").await?;
    let kc = pid_of(&config, Service::Keycloak)?;
    killpg(Pid::from_raw(kc), Signal::SIGSTOP)?;
    let frozen = until(&seen, 503, 8, "keycloak frozen").await;
    killpg(Pid::from_raw(kc), Signal::SIGCONT)?;
    frozen?;
    until(&seen, 200, 10, "keycloak back").await?;
    stop.store(true, Ordering::Relaxed);
    for t in tasks.drain(..) {
        t.await?;
    }

    // Nothing but tokens and 503s; every token answered has its lineage and audit rows.
    let (ok, unavailable, other) = counts(&seen);
    eprintln!("load answers: {ok} tokens, {unavailable} unavailable, {other} other");
    assert_eq!(other, 0, "answers other than 200 and 503: {:?}", seen.lock().unwrap().statuses);
    let jtis: Vec<String> = seen.lock().unwrap().jtis.iter().cloned().collect();
    let db = broker_db(&config, &lab.creds).await?;
    let lineage: i64 = db.query_one("SELECT count(*) FROM issued_tokens WHERE jti = ANY($1)", &[&jtis]).await?.get(0);
    let audited: i64 = db
        .query_one(
            "SELECT count(DISTINCT request_id) FROM audit_log WHERE outcome = 'granted' AND request_id = ANY($1)",
            &[&jtis],
        )
        .await?
        .get(0);
    assert_eq!(usize::try_from(lineage)?, jtis.len(), "tokens answered without their lineage row");
    assert_eq!(usize::try_from(audited)?, jtis.len(), "tokens answered without their audit row");
    // The lab's broker served throughout: never restarted.
    assert_eq!(pid_of(&config, Service::Broker)?, broker_pid);
    assert!(fourleg_lab::broker::healthy(&a).await);

    fourleg_lab::down(&config, true).await?;
    Ok(())
}
