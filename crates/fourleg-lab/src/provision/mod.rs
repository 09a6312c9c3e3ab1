//! Provisioning from `fixtures/`, the same for every runtime: everything goes
//! through the services' own APIs (Postgres SQL, OpenBao HTTP API, Keycloak
//! admin REST API), so a lab in containers and a native lab end up identical.
//!
//! Each step is idempotent: a second `up` finds the work done and changes
//! nothing.

pub mod keycloak;
pub mod openbao;
pub mod postgres;
