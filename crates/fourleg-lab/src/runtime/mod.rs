//! Runtimes start and stop the lab's services; everything else (readiness,
//! provisioning, state) is shared, so scenarios never know which ran.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use fourleg_core::Secret;

use crate::config::RuntimeKind;
use crate::error::Result;
use crate::progress::Progress;
use crate::state::ServiceRecord;

#[cfg(feature = "containers")]
pub mod api_shim;
#[cfg(feature = "containers")]
pub mod containers;
#[cfg(feature = "containers")]
pub mod host_programs;
pub mod native;

/// Ports chosen for the lab, by purpose (`postgres`, `openbao`,
/// `openbao-cluster`, `keycloak`, `keycloak-management`).
pub type PortMap = BTreeMap<String, u16>;

/// What Postgres needs to start.
#[derive(Debug, Clone)]
pub struct PostgresPlan {
    pub port: u16,
    /// Password of the superuser `fourleg`.
    pub superuser_password: Secret,
    pub log: PathBuf,
}

/// What OpenBao needs to start.
#[derive(Debug, Clone)]
pub struct OpenbaoPlan {
    pub port: u16,
    pub cluster_port: u16,
    pub log: PathBuf,
}

/// What Keycloak needs to start.
#[derive(Debug, Clone)]
pub struct KeycloakPlan {
    pub port: u16,
    pub management_port: u16,
    /// Bootstrap admin password (user `admin`).
    pub admin_password: Secret,
    /// Postgres as Keycloak reaches it: the host port for native, the
    /// container network alias for containers.
    pub db_port: u16,
    pub db_user: String,
    pub db_password: Secret,
    pub db_name: String,
    pub log: PathBuf,
}

/// A service whose process or container exists, not yet known to be ready.
#[derive(Debug)]
pub struct Started {
    pub record: ServiceRecord,
    /// The child process, for native services, to notice an early exit.
    pub child: Option<std::process::Child>,
}

impl Started {
    /// `Some(status)` when the service's process already exited.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }
}

/// Starts and stops the lab's services. One implementation per way of running
/// them; see [`native::NativeRuntime`] and `containers::ContainersRuntime`.
#[async_trait]
pub trait Runtime: Send + Sync + fmt::Debug {
    /// Which runtime this is.
    fn kind(&self) -> RuntimeKind;

    /// Checks what the runtime needs from the machine (binaries, overrides),
    /// writing nothing: `up` calls it before it creates any state, so a
    /// missing prerequisite leaves nothing behind.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Checks prerequisites and fetches or builds what is missing, before any
    /// service starts. Returns the time spent fetching, per service.
    async fn prepare(&self, progress: &dyn Progress) -> Result<BTreeMap<crate::Service, std::time::Duration>>;

    /// Starts Postgres.
    async fn start_postgres(&self, plan: &PostgresPlan, progress: &dyn Progress) -> Result<Started>;

    /// Starts OpenBao (sealed and uninitialised on its first start).
    async fn start_openbao(&self, plan: &OpenbaoPlan, progress: &dyn Progress) -> Result<Started>;

    /// Starts Keycloak against the lab's Postgres.
    async fn start_keycloak(&self, plan: &KeycloakPlan, progress: &dyn Progress) -> Result<Started>;

    /// The address at which the services reach a process on the host (the
    /// reference broker, for Keycloak's back-channel logout), when it is not
    /// loopback: for containers, the lab network's gateway. `None` (native):
    /// the services share the host's loopback.
    async fn host_address(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether the service of `record` still runs.
    fn is_running(&self, record: &ServiceRecord) -> bool;

    /// Stops the service of `record` and returns once it is gone.
    async fn stop(&self, record: &ServiceRecord) -> Result<()>;

    /// Releases what the runtime holds for the lab beyond its services, once
    /// they are stopped (`down`): for containers, every container and network
    /// of the lab, recorded or not, and its volumes (the data goes with them).
    async fn release(&self) -> Result<()> {
        Ok(())
    }

    /// What the runtime holds for the lab outside the state directory, one
    /// line each (`status`): for containers, its containers (with their
    /// state), networks and volumes, recorded or not. Empty when it holds
    /// nothing or cannot tell.
    async fn resources(&self) -> Vec<String> {
        Vec::new()
    }

    /// Removes what the runtime keeps outside the state directory (`down --purge`).
    async fn purge(&self) -> Result<()> {
        Ok(())
    }
}
