//! The four services of the lab.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One of the lab's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Postgres: Keycloak's database and the broker's lineage, revocation and audit store.
    Postgres,
    /// OpenBao: client secrets (KV v2) and the broker's keys (Transit).
    Openbao,
    /// Keycloak: the identity provider under test.
    Keycloak,
    /// The reference token broker (`fourleg broker`) in front of Keycloak.
    Broker,
}

impl Service {
    /// Every service, in start order.
    pub const ALL: [Service; 4] = [Service::Postgres, Service::Openbao, Service::Keycloak, Service::Broker];

    /// The service's name as printed and as used for file names.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Openbao => "openbao",
            Service::Keycloak => "keycloak",
            Service::Broker => "broker",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}
