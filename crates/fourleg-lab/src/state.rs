//! What the lab remembers between commands: `lab.json` (what runs where) and
//! the owner-only credential files.
//!
//! `down` works from these files alone, so it can stop a lab whose `up`
//! crashed half-way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fourleg_core::Secret;
use serde::{Deserialize, Serialize};

use crate::config::{LabConfig, RuntimeKind};
use crate::error::Result;
use crate::fsutil;
use crate::service::Service;

/// Version of the `lab.json` layout.
pub const STATE_SCHEMA: u32 = 1;

/// How a running service is held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Handle {
    /// A local process (leader of its own process group).
    Process {
        pid: u32,
        /// Kernel start time of the process (Linux `/proc/<pid>/stat` field
        /// 22), so a recycled pid is never mistaken for the service.
        start_ticks: Option<u64>,
    },
    /// A container.
    Container { id: String },
}

/// One running (or last known) service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub service: Service,
    pub version: String,
    pub host: String,
    pub port: u16,
    /// Further ports by purpose (e.g. Keycloak's `management`, OpenBao's `cluster`).
    #[serde(default)]
    pub extra_ports: BTreeMap<String, u16>,
    /// Base URL for HTTP services, a `postgres://` URL without password for Postgres.
    pub url: String,
    pub handle: Handle,
    pub log: PathBuf,
    /// Unix time (seconds) of the start.
    pub started_at: u64,
    /// How long the start took until ready, in milliseconds.
    pub startup_ms: u64,
}

/// `lab.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub schema: u32,
    pub runtime: RuntimeKind,
    pub services: BTreeMap<Service, ServiceRecord>,
    /// Where the Postgres cluster lives (inside the state directory unless the
    /// `postgres` user cannot reach it; see the native runtime).
    #[serde(default)]
    pub postgres_data: Option<PathBuf>,
    /// Ports chosen on the first `up`, reused by later ones so URLs stay stable.
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
}

impl LabState {
    /// An empty state for `runtime`.
    #[must_use]
    pub fn new(runtime: RuntimeKind) -> Self {
        Self { schema: STATE_SCHEMA, runtime, services: BTreeMap::new(), postgres_data: None, ports: BTreeMap::new() }
    }

    /// Path of `lab.json` under `state_dir`.
    #[must_use]
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("lab.json")
    }

    /// Loads `lab.json`, `None` when the lab never ran here.
    pub fn load(state_dir: &Path) -> Result<Option<Self>> {
        fsutil::read_json(&Self::path(state_dir))
    }

    /// Saves `lab.json` (owner-only).
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        fsutil::write_json(&Self::path(state_dir), self)
    }
}

/// Every password and secret of the lab, generated on the first `up` and kept
/// owner-only in `credentials.json`. Client secrets are also stored in
/// OpenBao's KV, where the broker reads them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Keycloak's bootstrap admin (user `admin` of the master realm).
    #[serde(with = "fourleg_core::secret::exposed")]
    pub keycloak_admin: Secret,
    /// The Postgres superuser `fourleg`.
    #[serde(with = "fourleg_core::secret::exposed")]
    pub postgres_superuser: Secret,
    /// Postgres role `keycloak` (owner of database `keycloak`).
    #[serde(with = "fourleg_core::secret::exposed")]
    pub postgres_keycloak: Secret,
    /// Postgres role `broker` (owner of database `broker`).
    #[serde(with = "fourleg_core::secret::exposed")]
    pub postgres_broker: Secret,
    /// Client secrets by client id, one per `{{secret:ID}}` placeholder of the realm.
    #[serde(with = "fourleg_core::secret::exposed_map")]
    pub clients: BTreeMap<String, Secret>,
    /// User passwords by username, one per `{{password:NAME}}` placeholder.
    #[serde(with = "fourleg_core::secret::exposed_map")]
    pub users: BTreeMap<String, Secret>,
}

impl Credentials {
    /// Path of `credentials.json`.
    #[must_use]
    pub fn path(config: &LabConfig) -> PathBuf {
        config.state_path("credentials.json")
    }

    /// Loads the credentials, generating what is missing (new clients or users
    /// added to the realm fixture get a secret; existing ones are kept).
    pub fn load_or_generate(config: &LabConfig, clients: &[String], users: &[String]) -> Result<Self> {
        let path = Self::path(config);
        let mut creds = fsutil::read_json::<Self>(&path)?.unwrap_or_else(|| Self {
            keycloak_admin: Secret::generate(24),
            postgres_superuser: Secret::generate(24),
            postgres_keycloak: Secret::generate(24),
            postgres_broker: Secret::generate(24),
            clients: BTreeMap::new(),
            users: BTreeMap::new(),
        });
        for c in clients {
            creds.clients.entry(c.clone()).or_insert_with(|| Secret::generate(32));
        }
        for u in users {
            creds.users.entry(u.clone()).or_insert_with(|| Secret::generate(16));
        }
        fsutil::write_json(&path, &creds)?;
        Ok(creds)
    }

    /// Loads existing credentials without generating anything.
    pub fn load(config: &LabConfig) -> Result<Option<Self>> {
        fsutil::read_json(&Self::path(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_generated_once_and_extended_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig::new(dir.path());
        let first = Credentials::load_or_generate(&config, &["agent".into()], &["alice".into()]).unwrap();
        let second =
            Credentials::load_or_generate(&config, &["agent".into(), "mcp-server".into()], &["alice".into()]).unwrap();
        assert_eq!(first.clients["agent"], second.clients["agent"]);
        assert_eq!(first.users["alice"], second.users["alice"]);
        assert_eq!(first.keycloak_admin, second.keycloak_admin);
        assert!(second.clients.contains_key("mcp-server"));
        // Debug output of the whole struct leaks nothing.
        let dbg = format!("{second:?}");
        assert!(!dbg.contains(second.clients["agent"].expose()));
        // The file keeps its format: plain strings, written explicitly (`exposed`).
        let raw: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(Credentials::path(&config)).unwrap()).unwrap();
        assert_eq!(raw["keycloak_admin"], second.keycloak_admin.expose());
        assert_eq!(raw["postgres_broker"], second.postgres_broker.expose());
        assert_eq!(raw["clients"]["mcp-server"], second.clients["mcp-server"].expose());
        assert_eq!(raw["users"]["alice"], second.users["alice"].expose());
    }

    #[test]
    fn lab_state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = LabState::new(RuntimeKind::Native);
        st.services.insert(
            Service::Postgres,
            ServiceRecord {
                service: Service::Postgres,
                version: "15".into(),
                host: "127.0.0.1".into(),
                port: 5432,
                extra_ports: BTreeMap::new(),
                url: "postgres://127.0.0.1:5432".into(),
                handle: Handle::Process { pid: 42, start_ticks: Some(7) },
                log: dir.path().join("logs/postgres.log"),
                started_at: 0,
                startup_ms: 1,
            },
        );
        st.save(dir.path()).unwrap();
        let back = LabState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back.services[&Service::Postgres].handle, st.services[&Service::Postgres].handle);
    }
}
