//! `up`, `status` and `down`: the orchestration shared by every runtime.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::config::{LabConfig, RuntimeKind};
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::health::{self, BaoHealth};
use crate::progress::Progress;
use crate::provision;
use crate::runtime::native::{process, NativeRuntime};
use crate::runtime::{KeycloakPlan, OpenbaoPlan, PostgresPlan, Runtime, Started};
use crate::service::Service;
use crate::state::{Credentials, Handle, LabState, ServiceRecord};
use crate::LOOPBACK;

/// The runtime for `kind` and `config`.
pub fn runtime_for(kind: RuntimeKind, config: &LabConfig) -> Result<Box<dyn Runtime>> {
    match kind {
        RuntimeKind::Native => Ok(Box::new(NativeRuntime::new(config.clone()))),
        #[cfg(feature = "containers")]
        RuntimeKind::Containers => Ok(Box::new(crate::runtime::containers::ContainersRuntime::new(config.clone()))),
        #[cfg(not(feature = "containers"))]
        RuntimeKind::Containers => Err(LabError::Config(
            "this fourleg was built without the containers runtime (cargo feature `containers`)".into(),
        )),
    }
}

/// Chooses the runtime when the user did not, and says why: containers when
/// a Docker engine answers and the lab's images are present or can be built
/// (or are to be pulled, `FOURLEG_IMAGES=pull`), native otherwise.
pub async fn detect_runtime(config: &LabConfig) -> (RuntimeKind, String) {
    #[cfg(feature = "containers")]
    {
        let rt = crate::runtime::containers::ContainersRuntime::new(config.clone());
        match rt.availability().await {
            Ok(()) => {
                (RuntimeKind::Containers, "a docker engine answers and the lab's images are there or buildable".into())
            }
            Err(why) => (RuntimeKind::Native, format!("not containers: {why}")),
        }
    }
    #[cfg(not(feature = "containers"))]
    {
        let _ = config;
        (RuntimeKind::Native, "this fourleg was built without the containers runtime".into())
    }
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How one service came up.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceUp {
    pub record: ServiceRecord,
    /// Time spent fetching or installing the service's software (zero when cached).
    #[serde(rename = "fetch_ms", serialize_with = "millis")]
    pub fetch: Duration,
    /// Time from the start of the service to ready and provisioned.
    #[serde(rename = "start_ms", serialize_with = "millis")]
    pub took: Duration,
    /// It was already running and healthy.
    pub reused: bool,
}

/// What `up` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    pub runtime: RuntimeKind,
    pub services: Vec<ServiceUp>,
    /// Time of the whole `up`, fetching included.
    #[serde(rename = "total_ms", serialize_with = "millis")]
    pub total: Duration,
}

/// The kernel's ephemeral port range, from which it picks the source port of
/// every outgoing connection (`net.ipv4.ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| parse_port_range(&s))
        .unwrap_or((32768, 60999))
}

fn parse_port_range(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Some((lo, hi)),
        _ => None,
    }
}

/// The ports a service may be given: above the privileged and well-known
/// ones, outside the ephemeral range.
fn listen_ranges() -> Vec<std::ops::RangeInclusive<u16>> {
    let (lo, hi) = ephemeral_range();
    let mut out = Vec::new();
    if lo > 10_000 {
        out.push(10_000..=lo - 1);
    }
    if hi < u16::MAX {
        out.push(hi.saturating_add(1).max(10_000)..=u16::MAX);
    }
    out
}

/// True when `port` lies in the kernel's ephemeral range.
fn is_ephemeral(port: u16) -> bool {
    let (lo, hi) = ephemeral_range();
    (lo..=hi).contains(&port)
}

/// A free port on 127.0.0.1, outside the ephemeral range.
///
/// A port the kernel hands out for `bind(0)` is an ephemeral one: between the
/// moment it is found free and the moment the service binds it, any outgoing
/// connection (Keycloak's own connections to Postgres among them) may be
/// given it as its source port, and the service fails with "address already
/// in use". Ports outside that range are only taken by listeners.
pub fn free_port() -> Result<u16> {
    use rand::Rng;
    let ranges = listen_ranges();
    let size: u32 = ranges.iter().map(|r| u32::from(r.end() - r.start()) + 1).sum();
    if size > 0 {
        let mut rng = rand::thread_rng();
        for _ in 0..256 {
            let mut k = rng.gen_range(0..size);
            for r in &ranges {
                let n = u32::from(r.end() - r.start()) + 1;
                if k < n {
                    let p = r.start() + u16::try_from(k).unwrap_or(0);
                    if port_free(p) {
                        return Ok(p);
                    }
                    break;
                }
                k -= n;
            }
        }
    }
    TcpListener::bind((LOOPBACK, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| LabError::io("finding a free port on 127.0.0.1", e))
}

fn port_free(port: u16) -> bool {
    TcpListener::bind((LOOPBACK, port)).is_ok()
}

/// Picks the ports: an override wins, then the port of the last `up` when it
/// is still free and not ephemeral (so URLs stay stable), else a fresh free
/// one.
fn choose_ports(
    config: &LabConfig,
    previous: &BTreeMap<String, u16>,
    running: &[Service],
) -> Result<BTreeMap<String, u16>> {
    let wanted: [(&str, Option<u16>, Service); 6] = [
        ("postgres", config.ports.postgres, Service::Postgres),
        ("openbao", config.ports.openbao, Service::Openbao),
        ("openbao-cluster", None, Service::Openbao),
        ("keycloak", config.ports.keycloak, Service::Keycloak),
        ("keycloak-management", None, Service::Keycloak),
        ("broker", config.ports.broker, Service::Broker),
    ];
    let mut out = BTreeMap::new();
    for (name, forced, service) in wanted {
        let port = if let (true, Some(p)) = (running.contains(&service), previous.get(name)) {
            *p
        } else if let Some(p) = forced {
            if !port_free(p) {
                return Err(LabError::Config(format!(
                    "port {p} asked for {name} is in use on {LOOPBACK}; free it or choose another"
                )));
            }
            p
        } else {
            match previous.get(name) {
                Some(p) if !is_ephemeral(*p) && port_free(*p) => *p,
                _ => loop {
                    let p = free_port()?;
                    if !out.values().any(|v| *v == p) {
                        break p;
                    }
                },
            }
        };
        out.insert(name.to_owned(), port);
    }
    Ok(out)
}

/// The lab's state shared by the tasks that start services in parallel.
struct Shared {
    config: LabConfig,
    state: Mutex<LabState>,
}

impl Shared {
    async fn record(&self, record: ServiceRecord) -> Result<()> {
        let mut st = self.state.lock().await;
        st.services.insert(record.service, record);
        st.save(&self.config.state_dir)
    }
}

/// Whether a recorded service runs and passes its health check.
async fn healthy(record: &ServiceRecord, creds: &Credentials) -> bool {
    match record.service {
        Service::Postgres => health::postgres(record.port, &creds.postgres_superuser).await,
        Service::Openbao => health::openbao(&record.url).await == BaoHealth::Active,
        Service::Keycloak => health::keycloak_realm(&record.url, provision::keycloak::REALM).await,
        Service::Broker => crate::broker::healthy(&record.url).await,
    }
}

/// Whether the service of `record` still runs. The broker is a host process
/// (native) or a container ([`crate::broker`]), told apart by its handle;
/// the others belong to the runtime.
fn is_running(runtime: &dyn Runtime, record: &ServiceRecord) -> bool {
    match (&record.service, &record.handle) {
        (Service::Broker, Handle::Process { .. }) => process::is_alive(&record.handle),
        _ => runtime.is_running(record),
    }
}

/// Stops the service of `record` (see [`is_running`]).
async fn stop(runtime: &dyn Runtime, record: &ServiceRecord) -> Result<()> {
    match (&record.service, &record.handle) {
        (Service::Broker, Handle::Process { .. }) => {
            process::stop(&record.handle, Signal::SIGTERM, true, Duration::from_secs(15)).await
        }
        _ => runtime.stop(record).await,
    }
}

/// Starts the lab (or finds it running) and provisions it from `fixtures/`.
///
/// Idempotent: services that run and are healthy are reused, the rest are
/// started. Every pid or container id is written to `lab.json` as soon as it
/// exists, so `down` can clean up after a crash.
pub async fn up(config: &LabConfig, kind: RuntimeKind, progress: &dyn Progress) -> Result<UpReport> {
    let begin = Instant::now();
    // Prerequisites first, before anything is written: a refused `up` leaves
    // no state, no credentials behind. A lab that already runs whole needs
    // nothing more from the machine.
    let previous = LabState::load(&config.state_dir)?;
    let runs_whole = previous.as_ref().is_some_and(|s| {
        s.runtime == kind
            && runtime_for(kind, config)
                .is_ok_and(|rt| Service::ALL.iter().all(|svc| s.services.get(svc).is_some_and(|r| is_running(&*rt, r))))
    });
    if !runs_whole {
        runtime_for(kind, config)?.check()?;
        crate::broker::check(config)?;
    }
    fsutil::private_dir(&config.state_dir)?;
    std::fs::create_dir_all(config.state_path("logs")).map_err(|e| LabError::io("creating the log directory", e))?;
    std::fs::create_dir_all(config.state_path("openbao")).map_err(|e| LabError::io("creating the openbao state", e))?;

    let mut state = previous.unwrap_or_else(|| LabState::new(kind));
    if state.runtime != kind {
        let rt = runtime_for(state.runtime, config)?;
        if state.services.values().any(|r| is_running(&*rt, r)) {
            return Err(LabError::Config(format!(
                "the lab in {} runs with the {} runtime; `fourleg down` it before starting it with {}",
                config.state_dir.display(),
                state.runtime.name(),
                kind.name()
            )));
        }
        state = LabState::new(kind);
    }
    let runtime = runtime_for(kind, config)?;

    let (_, clients, users) = provision::keycloak::read_realm(&config.fixtures_dir)?;
    provision::openbao::BaoFixture::load(&config.fixtures_dir)?;
    let creds = Credentials::load_or_generate(config, &clients, &users)?;

    // Which services already run healthy: those are reused untouched. One
    // that runs but does not answer yet (a loaded machine) is waited for,
    // never started a second time on the same data.
    let mut reusable = Vec::new();
    for record in state.services.values() {
        // The broker is judged after its dependencies (below): it cannot be
        // healthy while one of them is down, and recovers once they are back.
        if record.service == Service::Broker || !is_running(&*runtime, record) {
            continue;
        }
        let bound = match record.service {
            Service::Postgres => config.timeouts.postgres,
            Service::Openbao => config.timeouts.openbao,
            Service::Keycloak => config.timeouts.keycloak,
            Service::Broker => config.timeouts.broker,
        };
        let begin = Instant::now();
        loop {
            if healthy(record, &creds).await {
                reusable.push(record.service);
                break;
            }
            // It was stopping (a Postgres in its shutdown checkpoint): started afresh below.
            if !is_running(&*runtime, record) {
                progress.step(record.service, "stopped while waited for; starting it again");
                break;
            }
            if begin.elapsed() >= bound {
                return Err(LabError::NotReady {
                    service: record.service,
                    addr: format!("{}:{}", record.host, record.port),
                    waited: bound,
                    tail: fsutil::tail(&record.log, 25),
                    log: record.log.clone(),
                });
            }
            progress.step(record.service, "running but not answering yet; waiting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The runtime fetches for its own services; the broker is this binary.
    let runtime_needed = Service::ALL.iter().any(|s| *s != Service::Broker && !reusable.contains(s));
    let fetched = if runtime_needed { runtime.prepare(progress).await? } else { BTreeMap::new() };
    let ports = choose_ports(config, &state.ports, &reusable)?;
    state.ports.clone_from(&ports);
    state.save(&config.state_dir)?;
    let shared = Arc::new(Shared { config: config.clone(), state: Mutex::new(state) });

    let pg = async {
        let t = Instant::now();
        if reusable.contains(&Service::Postgres) {
            let rec = shared.state.lock().await.services[&Service::Postgres].clone();
            return Ok(ServiceUp { record: rec, fetch: Duration::ZERO, took: t.elapsed(), reused: true });
        }
        let plan = PostgresPlan {
            port: ports["postgres"],
            superuser_password: creds.postgres_superuser.clone(),
            log: config.log_path(Service::Postgres),
        };
        let started = runtime.start_postgres(&plan, progress).await?;
        let mut started = keep(&shared, started).await?;
        progress.step(Service::Postgres, "waiting for SELECT 1");
        let port = started.record.port;
        health::wait_ready(&mut started, config.timeouts.postgres, || {
            health::postgres(port, &creds.postgres_superuser)
        })
        .await?;
        progress.step(Service::Postgres, "creating databases, applying the broker's migrations");
        provision::postgres::provision(port, &creds, &config.fixtures_dir).await?;
        finish(&shared, started, t).await
    };
    let bao = async {
        let t = Instant::now();
        if reusable.contains(&Service::Openbao) {
            let rec = shared.state.lock().await.services[&Service::Openbao].clone();
            return Ok(ServiceUp { record: rec, fetch: Duration::ZERO, took: t.elapsed(), reused: true });
        }
        let plan = OpenbaoPlan {
            port: ports["openbao"],
            cluster_port: ports["openbao-cluster"],
            log: config.log_path(Service::Openbao),
        };
        let started = runtime.start_openbao(&plan, progress).await?;
        let mut started = keep(&shared, started).await?;
        progress.step(Service::Openbao, "waiting for sys/health");
        let url = started.record.url.clone();
        health::wait_ready(&mut started, config.timeouts.openbao, || async {
            health::openbao(&url).await != BaoHealth::Down
        })
        .await?;
        progress.step(Service::Openbao, "initialising and unsealing");
        let root = provision::openbao::init_and_unseal(config, &url).await?;
        progress.step(Service::Openbao, "provisioning KV, Transit, policies, the broker's AppRole");
        provision::openbao::provision(config, &url, root, &creds.clients).await?;
        finish(&shared, started, t).await
    };
    let (pg_res, bao_res) = tokio::join!(
        report(pg, progress, Service::Postgres, &shared, &*runtime),
        report(bao, progress, Service::Openbao, &shared, &*runtime)
    );
    let fetch_of = |s: Service| fetched.get(&s).copied().unwrap_or_default();
    let pg_up = ServiceUp { fetch: fetch_of(Service::Postgres), ..pg_res? };
    let bao_up = ServiceUp { fetch: fetch_of(Service::Openbao), ..bao_res? };

    let kc = async {
        let t = Instant::now();
        if reusable.contains(&Service::Keycloak) {
            let rec = shared.state.lock().await.services[&Service::Keycloak].clone();
            return Ok(ServiceUp { record: rec, fetch: Duration::ZERO, took: t.elapsed(), reused: true });
        }
        let plan = KeycloakPlan {
            port: ports["keycloak"],
            management_port: ports["keycloak-management"],
            admin_password: creds.keycloak_admin.clone(),
            db_port: pg_up.record.port,
            db_user: "keycloak".into(),
            db_password: creds.postgres_keycloak.clone(),
            db_name: "keycloak".into(),
            log: config.log_path(Service::Keycloak),
        };
        let started = runtime.start_keycloak(&plan, progress).await?;
        let mut started = keep(&shared, started).await?;
        progress.step(Service::Keycloak, "waiting for the master realm's discovery document");
        let url = started.record.url.clone();
        health::wait_ready(&mut started, config.timeouts.keycloak, || health::keycloak_realm(&url, "master")).await?;
        progress.step(Service::Keycloak, "importing realms fourleg and fourleg-foreign");
        provision::keycloak::provision(&url, &creds, &config.fixtures_dir).await?;
        health::wait_ready(&mut started, Duration::from_secs(30), || {
            health::keycloak_realm(&url, provision::keycloak::REALM)
        })
        .await?;
        finish(&shared, started, t).await
    };
    let kc_up = ServiceUp {
        fetch: fetch_of(Service::Keycloak),
        ..report(kc, progress, Service::Keycloak, &shared, &*runtime).await?
    };

    // Keycloak tells the broker when a user's session ends (OpenID Connect
    // Back-Channel Logout 1.0): set whenever either of them (re)starts, since
    // the broker's port may have changed while Keycloak kept running.
    let plan = crate::broker::BrokerPlan {
        port: ports["broker"],
        postgres_port: pg_up.record.port,
        openbao_url: bao_up.record.url.clone(),
        keycloak_url: kc_up.record.url.clone(),
        host_address: runtime.host_address().await?,
        log: config.log_path(Service::Broker),
    };
    let broker_running = state_has_running(&shared, &*runtime, Service::Broker).await;
    if !kc_up.reused || !broker_running {
        provision::keycloak::set_backchannel_logout(
            &kc_up.record.url,
            &creds.keycloak_admin,
            &crate::broker::backchannel_logout_url(&plan),
        )
        .await?;
    }

    let broker = async {
        let t = Instant::now();
        let running = shared.state.lock().await.services.get(&Service::Broker).cloned();
        if let Some(rec) = running.filter(|r| is_running(&*runtime, r)) {
            // A running broker recovers by itself once Postgres and OpenBao
            // answer again: it is waited for, and restarted only if it does not.
            let deadline = Instant::now() + config.timeouts.broker;
            while Instant::now() < deadline {
                if crate::broker::healthy(&rec.url).await {
                    return Ok(ServiceUp { record: rec, fetch: Duration::ZERO, took: t.elapsed(), reused: true });
                }
                progress.step(Service::Broker, "running but not healthy yet; waiting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            progress.step(Service::Broker, "still not healthy: restarting it");
            stop(&*runtime, &rec).await?;
        }
        let started = match kind {
            #[cfg(feature = "containers")]
            RuntimeKind::Containers => {
                Box::pin(crate::broker::start_container(config, &plan, &creds, progress)).await?
            }
            _ => crate::broker::start(config, &plan, &creds, progress)?,
        };
        let mut started = keep(&shared, started).await?;
        progress.step(Service::Broker, "waiting for /health (Postgres and OpenBao reached, signing key loaded)");
        let url = started.record.url.clone();
        health::wait_ready(&mut started, config.timeouts.broker, || crate::broker::healthy(&url)).await?;
        finish(&shared, started, t).await
    };
    let broker_up = report(broker, progress, Service::Broker, &shared, &*runtime).await?;

    Ok(UpReport { runtime: kind, services: vec![pg_up, bao_up, kc_up, broker_up], total: begin.elapsed() })
}

/// Whether `lab.json` records `service` and its process or container runs.
async fn state_has_running(shared: &Shared, runtime: &dyn Runtime, service: Service) -> bool {
    let rec = shared.state.lock().await.services.get(&service).cloned();
    rec.is_some_and(|r| is_running(runtime, &r))
}

/// Records a freshly started service in `lab.json` before waiting on it.
async fn keep(shared: &Shared, started: Started) -> Result<Started> {
    shared.record(started.record.clone()).await?;
    Ok(started)
}

async fn finish(shared: &Shared, mut started: Started, t: Instant) -> Result<ServiceUp> {
    let took = t.elapsed();
    started.record.startup_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    shared.record(started.record.clone()).await?;
    Ok(ServiceUp { record: started.record, fetch: Duration::ZERO, took, reused: false })
}

/// Reports the outcome of one service; a service that failed is stopped so
/// nothing half-started lingers (its log stays).
async fn report(
    fut: impl std::future::Future<Output = Result<ServiceUp>>,
    progress: &dyn Progress,
    service: Service,
    shared: &Shared,
    runtime: &dyn Runtime,
) -> Result<ServiceUp> {
    match fut.await {
        Ok(up) => {
            progress.ready(service, up.took, up.reused);
            Ok(up)
        }
        Err(e) => {
            progress.failed(service);
            let rec = shared.state.lock().await.services.get(&service).cloned();
            if let Some(rec) = rec {
                let _ = stop(runtime, &rec).await;
                let mut st = shared.state.lock().await;
                st.services.remove(&service);
                let _ = st.save(&shared.config.state_dir);
            }
            Err(e)
        }
    }
}

/// One service as `status` sees it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: Service,
    pub version: String,
    pub url: String,
    pub port: u16,
    pub pid: Option<u32>,
    pub container: Option<String>,
    pub running: bool,
    pub healthy: bool,
    pub log: std::path::PathBuf,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub state_dir: std::path::PathBuf,
    pub runtime: Option<RuntimeKind>,
    pub services: Vec<ServiceStatus>,
    /// What the runtime holds for the lab outside the state directory
    /// (containers: its containers, networks and volumes), one line each.
    pub resources: Vec<String>,
}

impl StatusReport {
    /// Every service runs and is healthy.
    #[must_use]
    pub fn all_healthy(&self) -> bool {
        self.services.len() == Service::ALL.len() && self.services.iter().all(|s| s.healthy)
    }
}

/// What runs where, and whether each service passes its health check.
pub async fn status(config: &LabConfig) -> Result<StatusReport> {
    let Some(state) = LabState::load(&config.state_dir)? else {
        return Ok(StatusReport {
            state_dir: config.state_dir.clone(),
            runtime: None,
            services: Vec::new(),
            resources: Vec::new(),
        });
    };
    let runtime = runtime_for(state.runtime, config)?;
    let creds = Credentials::load(config)?;
    let mut services = Vec::new();
    for record in state.services.values() {
        let running = is_running(&*runtime, record);
        let healthy = match (&creds, running) {
            (Some(c), true) => healthy(record, c).await,
            _ => false,
        };
        let (pid, container) = match &record.handle {
            crate::state::Handle::Process { pid, .. } => (Some(*pid), None),
            crate::state::Handle::Container { id } => (None, Some(id.clone())),
        };
        services.push(ServiceStatus {
            name: record.service,
            version: record.version.clone(),
            url: record.url.clone(),
            port: record.port,
            pid,
            container,
            running,
            healthy,
            log: record.log.clone(),
        });
    }
    let resources = runtime.resources().await;
    Ok(StatusReport { state_dir: config.state_dir.clone(), runtime: Some(state.runtime), services, resources })
}

/// What `down` did.
#[derive(Debug, Clone, Serialize)]
pub struct DownReport {
    pub stopped: Vec<Service>,
    /// Peers stopped (`fixtures/peers/`).
    pub peers: Vec<String>,
    pub purged: bool,
}

/// Stops every service `up` started (Keycloak first, Postgres last) and,
/// with `purge`, deletes the state directory and everything the runtime
/// keeps for this lab. Works from `lab.json` alone.
pub async fn down(config: &LabConfig, purge: bool) -> Result<DownReport> {
    let mut stopped = Vec::new();
    let peers_stopped = crate::peers::down(config).await?;
    let state = LabState::load(&config.state_dir)?;
    // An `up --runtime containers` killed before it wrote `lab.json` may have
    // made the lab's network (and `containers.json`, its id) already.
    let kind = state
        .as_ref()
        .map(|s| s.runtime)
        .or_else(|| config.state_path("containers.json").is_file().then_some(RuntimeKind::Containers));
    if let Some(kind) = kind {
        let runtime = runtime_for(kind, config)?;
        if let Some(mut state) = state {
            for service in Service::ALL.iter().rev() {
                if let Some(record) = state.services.get(service).cloned() {
                    if is_running(&*runtime, &record) {
                        stop(&*runtime, &record).await?;
                        stopped.push(*service);
                    }
                    state.services.remove(service);
                    state.save(&config.state_dir)?;
                }
            }
        }
        runtime.release().await?;
        if purge {
            runtime.purge().await?;
        }
    }
    if purge && config.state_dir.exists() {
        std::fs::remove_dir_all(&config.state_dir)
            .map_err(|e| LabError::io(format!("removing {}", config.state_dir.display()), e))?;
    }
    Ok(DownReport { stopped, peers: peers_stopped, purged: purge })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_reused_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig::new(dir.path());
        let first = choose_ports(&config, &BTreeMap::new(), &[]).unwrap();
        let mut seen: Vec<u16> = first.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 6);
        let second = choose_ports(&config, &first, &[]).unwrap();
        assert_eq!(first, second);
    }

    #[test]
    fn chosen_ports_avoid_the_ephemeral_range() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig::new(dir.path());
        for _ in 0..20 {
            for (name, p) in choose_ports(&config, &BTreeMap::new(), &[]).unwrap() {
                assert!(!is_ephemeral(p), "{name} got {p}, in the ephemeral range {:?}", ephemeral_range());
                assert!(p >= 10_000, "{name} got {p}");
            }
        }
    }

    #[test]
    fn a_previous_ephemeral_port_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig::new(dir.path());
        let (lo, hi) = ephemeral_range();
        // A free port inside the range, as an older fourleg may have recorded.
        let old = (lo..=hi).find(|p| port_free(*p)).unwrap();
        let previous = BTreeMap::from([("keycloak".to_owned(), old)]);
        let ports = choose_ports(&config, &previous, &[]).unwrap();
        assert_ne!(ports["keycloak"], old);
    }

    #[test]
    fn port_ranges_parse_or_fall_back() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("junk"), None);
    }

    #[test]
    fn a_busy_forced_port_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let held = TcpListener::bind((LOOPBACK, 0)).unwrap();
        let mut config = LabConfig::new(dir.path());
        config.ports.keycloak = Some(held.local_addr().unwrap().port());
        let err = choose_ports(&config, &BTreeMap::new(), &[]).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_prerequisite_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LabConfig::new(dir.path().join("lab"));
        config.bao_bin = Some(dir.path().join("no-such-bao"));
        let err = up(&config, RuntimeKind::Native, &crate::Silent).await.unwrap_err().to_string();
        assert!(err.contains("BAO_BIN"), "{err}");
        assert!(!config.state_dir.exists(), "a refused up created {}", config.state_dir.display());
    }

    #[tokio::test]
    async fn status_and_down_of_a_lab_that_never_ran_are_quiet() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig::new(dir.path().join("lab"));
        let st = status(&config).await.unwrap();
        assert!(st.services.is_empty());
        assert!(!st.all_healthy());
        let d = down(&config, true).await.unwrap();
        assert!(d.stopped.is_empty());
    }
}
