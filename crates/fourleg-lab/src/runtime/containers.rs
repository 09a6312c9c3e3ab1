//! The containers runtime (placeholder while it is written).
use async_trait::async_trait;

use super::{KeycloakPlan, OpenbaoPlan, PostgresPlan, Runtime, Started};
use crate::config::{LabConfig, RuntimeKind};
use crate::error::{LabError, Result};
use crate::progress::Progress;
use crate::state::ServiceRecord;

/// Official images through testcontainers.
#[derive(Debug, Clone)]
pub struct ContainersRuntime {
    #[allow(dead_code)]
    config: LabConfig,
}

impl ContainersRuntime {
    /// A containers runtime for `config`.
    #[must_use]
    pub fn new(config: LabConfig) -> Self {
        Self { config }
    }
}

#[async_trait]
impl Runtime for ContainersRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Containers
    }
    async fn prepare(&self, _: &dyn Progress) -> Result<std::collections::BTreeMap<crate::Service, std::time::Duration>> {
        Err(LabError::Containers("not yet implemented".into()))
    }
    async fn start_postgres(&self, _: &PostgresPlan, _: &dyn Progress) -> Result<Started> {
        Err(LabError::Containers("not yet implemented".into()))
    }
    async fn start_openbao(&self, _: &OpenbaoPlan, _: &dyn Progress) -> Result<Started> {
        Err(LabError::Containers("not yet implemented".into()))
    }
    async fn start_keycloak(&self, _: &KeycloakPlan, _: &dyn Progress) -> Result<Started> {
        Err(LabError::Containers("not yet implemented".into()))
    }
    fn is_running(&self, _: &ServiceRecord) -> bool {
        false
    }
    async fn stop(&self, _: &ServiceRecord) -> Result<()> {
        Ok(())
    }
}
