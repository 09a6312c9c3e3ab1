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
//! - **Key rotation.** `fourleg lab broker-rotate-key`: a replica reloading
//!   every second signs with the new key; the lab's broker verifies the new
//!   key's tokens at once (an unknown `kid` reloads the keys) and the old
//!   key's tokens still introspect active.
//! - **Kill table.** Each of the policy crate's input faults (the test bed's
//!   kill-table variants that break the shared decision) in an in-process
//!   broker makes fail every scenario `reports/kill-table.md` lists for it;
//!   the same broker without a fault passes them all.
//!
//! Starts its own lab (native runtime) and purges it at the end.

use std::collections::BTreeSet;
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
    fourleg_lab::free_port().unwrap()
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

    /// POSTs `form` to `broker``path` as `client` (HTTP Basic): status and JSON body.
    async fn post(
        &self,
        broker: &str,
        path: &str,
        client: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{broker}{path}"))
            .basic_auth(client, Some(self.secret(client)))
            .form(form)
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    async fn exchange(
        &self,
        broker: &str,
        client: &str,
        subject: &str,
        audience: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let form = [
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN),
            ("audience", audience),
        ];
        self.post(broker, "/token", client, &form).await
    }

    async fn introspect(&self, broker: &str, client: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        self.post(broker, "/introspect", client, &[("token", token)]).await
    }

    async fn revoke(&self, broker: &str, client: &str, token: &str) -> anyhow::Result<u16> {
        Ok(self.post(broker, "/revoke", client, &[("token", token)]).await?.0)
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
    // The in-process brokers of the kill table read it as `fourleg broker` does.
    std::env::set_var(fourleg_lab::broker::PASSWORD_ENV, &password);
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

    // 3. The kill table of the shared policy, on the broker.
    kill_table(&config, &broker_toml).await?;

    // 4. Key rotation across replicas.
    key_rotation(&config, &lab, &a, &broker_toml, &password).await?;

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

/// Variant id → the scenario ids `reports/kill-table.md` says it makes fail
/// (its "Variant → scenarios" table).
fn kill_table_expectations() -> anyhow::Result<std::collections::BTreeMap<String, BTreeSet<String>>> {
    let text = std::fs::read_to_string(fourleg_live_tests::repo().join("reports/kill-table.md"))?;
    let mut out = std::collections::BTreeMap::new();
    for fault in fourleg_policy_faults() {
        let head = format!("| `{}` |", fault.id());
        let line = text
            .lines()
            .find(|l| l.starts_with(&head) && l.matches(" | ").count() >= 2)
            .with_context(|| format!("no row for {} in reports/kill-table.md", fault.id()))?;
        let last = line.trim_end_matches('|').rsplit(" | ").next().unwrap_or_default();
        let ids: BTreeSet<String> =
            last.split(',').map(|x| x.trim().trim_matches('`').to_owned()).filter(|x| !x.is_empty()).collect();
        ensure!(!ids.is_empty(), "no scenario listed for {}", fault.id());
        out.insert(fault.id().to_owned(), ids);
    }
    Ok(out)
}

fn fourleg_policy_faults() -> [fourleg_broker::InputFault; 18] {
    fourleg_broker::InputFault::ALL
}

/// Runs the scenarios `ids` against an in-process broker (`fault` or none)
/// and returns those that did not pass.
async fn failing_on(
    broker_toml: &std::path::Path,
    fault: Option<fourleg_broker::InputFault>,
    ctx: &fourleg_target::LabContext,
    ids: &BTreeSet<String>,
) -> anyhow::Result<BTreeSet<String>> {
    use fourleg_scenario::{Engine, Registry, Status};
    let repo = fourleg_live_tests::repo();
    let registry = Registry::load(&repo.join("suites/requirements.toml"))?;
    let scenarios = fourleg_scenario::scenario::load_all(&repo.join("suites"), &registry)?;
    let port = free_port();
    let mut config = fourleg_broker::Config::load(broker_toml)?;
    config.listen = format!("127.0.0.1:{port}");
    config.issuer = format!("http://127.0.0.1:{port}");
    let broker = match fault {
        Some(f) => fourleg_broker::Broker::start_with_fault(config, f).await?,
        None => fourleg_broker::Broker::start(config).await?,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fourleg_broker::serve(broker, listener, async {
        let _ = stopped.await;
    }));
    let mut ctx = ctx.clone();
    ctx.urls.insert("broker".into(), format!("http://127.0.0.1:{port}"));
    let profile = fourleg_target::Profile::load(&repo.join("fixtures/targets/broker.toml"))?;
    let target = fourleg_target::Target::connect(profile, Some(ctx)).await?;
    let engine = Engine::new(Arc::new(target), Arc::new(registry));
    let mut failing = BTreeSet::new();
    for s in scenarios.iter().filter(|s| ids.contains(&s.id)) {
        let r = engine.run(s).await.map_err(|d| anyhow::anyhow!("{d}"))?;
        if !matches!(r.status, Status::Pass | Status::NotApplicable) {
            failing.insert(s.id.clone());
        }
    }
    let _ = stop.send(());
    server.await??;
    Ok(failing)
}

async fn kill_table(config: &fourleg_lab::LabConfig, broker_toml: &std::path::Path) -> anyhow::Result<()> {
    let status = fourleg_lab::status(config).await?;
    let creds = Credentials::load(config)?.context("credentials")?;
    let mut ctx = fourleg_target::LabContext {
        client_secrets: creds.clients,
        user_passwords: creds.users,
        state_dir: Some(config.state_dir.clone()),
        ..fourleg_target::LabContext::default()
    };
    for s in status.services {
        ctx.urls.insert(s.name.name().to_owned(), s.url);
        ctx.versions.insert(s.name.name().to_owned(), s.version);
    }
    let expected = kill_table_expectations()?;
    let all: BTreeSet<String> = expected.values().flatten().cloned().collect();
    let control = failing_on(broker_toml, None, &ctx, &all).await?;
    assert!(control.is_empty(), "the broker without a fault fails {control:?}: the kill table would prove nothing");
    for fault in fourleg_policy_faults() {
        let want = &expected[fault.id()];
        let failing = failing_on(broker_toml, Some(fault), &ctx, want).await?;
        eprintln!("broker with {}: fails {failing:?}", fault.id());
        let survived: Vec<&String> = want.difference(&failing).collect();
        assert!(survived.is_empty(), "{} on the broker: scenarios that still pass: {survived:?}", fault.id());
    }
    Ok(())
}

/// The `kid` of a JWT's header.
fn kid(jwt: &str) -> anyhow::Result<String> {
    use base64::Engine as _;
    let head = jwt.split('.').next().context("not a JWT")?;
    let v: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head)?)?;
    Ok(v["kid"].as_str().context("no kid")?.to_owned())
}

async fn client_token(lab: &Lab, broker: &str) -> anyhow::Result<String> {
    let r = lab
        .http
        .post(format!("{broker}/token"))
        .basic_auth("agent", Some(lab.secret("agent")))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    ensure!(r.status() == 200, "client credentials at {broker}: {}", r.status());
    let body: Value = r.json().await?;
    Ok(body["access_token"].as_str().context("access_token")?.to_owned())
}

async fn key_rotation(
    config: &fourleg_lab::LabConfig,
    lab: &Lab,
    a: &str,
    broker_toml: &std::path::Path,
    password: &str,
) -> anyhow::Result<()> {
    let before = client_token(lab, a).await?;
    let old_kid = kid(&before)?;
    let text = std::fs::read_to_string(broker_toml)?;
    let d_toml = config.state_path("broker/broker-d.toml");
    std::fs::write(&d_toml, text.replacen("listen = ", "key_reload_s = 1\nlisten = ", 1))?;
    let (_d_proc, d) = replica(&d_toml, password, &config.state_path("logs/broker-d.log")).await?;
    let rotated = Command::new(fourleg_binary())
        .args(["lab", "broker-rotate-key", "--state-dir"])
        .arg(&config.state_dir)
        .output()?;
    ensure!(rotated.status.success(), "broker-rotate-key: {}", String::from_utf8_lossy(&rotated.stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let t = client_token(lab, &d).await?;
        if kid(&t)? != old_kid {
            break t;
        }
        ensure!(Instant::now() < deadline, "replica D still signs with {old_kid} 30 s after the rotation");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    // The lab's broker (30 s reload) meets the new kid first here: it reloads at once.
    let (_, new_at_a) = lab.introspect(a, "downstream-api", &after).await?;
    assert_eq!(new_at_a["active"], true, "the new key's token at the lab's broker: {new_at_a}");
    let (_, old_at_a) = lab.introspect(a, "downstream-api", &before).await?;
    assert_eq!(old_at_a["active"], true, "a token of the retired key: {old_at_a}");
    let jwks: Value = lab.http.get(format!("{a}/jwks")).send().await?.json().await?;
    let kids: Vec<&str> = jwks["keys"].as_array().context("keys")?.iter().filter_map(|k| k["kid"].as_str()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&kid(&after)?.as_str()), "JWKS {kids:?}");
    Ok(())
}
