//! The fourleg lab: real Keycloak, OpenBao and Postgres, started as local
//! processes ([`runtime::native`]) or containers (`runtime::containers`),
//! behind one [`runtime::Runtime`] trait, checked by real readiness probes
//! ([`health`]) and provisioned from `fixtures/` ([`provision`]).
//!
//! The entry points are [`up`], [`status`] and [`down`].

pub mod broker;
pub mod config;
pub mod error;
mod fsutil;
pub mod health;
mod lab;
pub mod peers;
pub mod pins;
pub mod prereq;
pub mod progress;
pub mod provision;
pub mod runtime;
pub mod service;
pub mod state;

pub use config::{LabConfig, Ports, RuntimeKind, Timeouts};
pub use error::{LabError, Result};
pub use lab::{
    detect_runtime, down, free_port, runtime_for, status, up, DownReport, ServiceStatus, ServiceUp, StatusReport,
    UpReport,
};
pub use progress::{Progress, Silent};
pub use service::Service;

/// Every lab service binds here and nowhere else.
pub const LOOPBACK: &str = "127.0.0.1";
