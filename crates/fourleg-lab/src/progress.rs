//! How the lab tells a person what it is doing.
//!
//! The lab reports steps; the front end decides how to draw them (spinners
//! on a terminal, plain lines in CI).

use std::time::Duration;

use crate::service::Service;

/// Receives the lab's progress. Implementations must be cheap and never fail.
pub trait Progress: Send + Sync {
    /// `service` is now doing `step` (e.g. "downloading keycloak 26.7.3").
    fn step(&self, service: Service, step: &str);
    /// `service` is ready; `reused` when it was already running.
    fn ready(&self, service: Service, took: Duration, reused: bool);
    /// `service` failed; the error follows separately.
    fn failed(&self, service: Service);
}

/// A [`Progress`] that drops everything (tests, library use).
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _: Service, _: &str) {}
    fn ready(&self, _: Service, _: Duration, _: bool) {}
    fn failed(&self, _: Service) {}
}
