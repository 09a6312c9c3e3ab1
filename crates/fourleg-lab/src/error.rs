//! Errors of the lab. All of them are "the harness could not do its job":
//! nothing here is a finding about a target.

use std::path::PathBuf;
use std::time::Duration;

use crate::prereq::Missing;
use crate::service::Service;

/// Why the lab could not be started, inspected or stopped.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Tools the native runtime needs are not installed.
    #[error("{}", Missing::render_all(.0))]
    MissingPrerequisites(Vec<Missing>),

    /// A service started but did not pass its readiness check in time.
    #[error(
        "{service} did not become ready on {addr} within {}s (see {})\n--- last lines of {} ---\n{tail}",
        waited.as_secs(), log.display(), log.display()
    )]
    NotReady { service: Service, addr: String, waited: Duration, log: PathBuf, tail: String },

    /// A service process exited while the lab waited for it.
    #[error(
        "{service} exited during start ({status}) (see {})\n--- last lines of {} ---\n{tail}",
        log.display(), log.display()
    )]
    ExitedEarly { service: Service, status: String, log: PathBuf, tail: String },

    /// Fetching or installing a component failed.
    #[error("could not fetch {what}: {message} (see {})", log.display())]
    Fetch { what: String, message: String, log: PathBuf },

    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// An HTTP call to a lab service failed at the transport level.
    #[error("{context}: {source}")]
    Http {
        context: String,
        #[source]
        source: reqwest::Error,
    },

    /// A lab service answered, but not as provisioning needs.
    #[error("provisioning {service} failed: {message}")]
    Provision { service: Service, message: String },

    /// A Postgres statement failed.
    #[error("{context}: {source}")]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The state directory holds something the lab cannot use.
    #[error("state file {}: {message}", path.display())]
    State { path: PathBuf, message: String },

    /// A fixture file is missing or malformed.
    #[error("fixture {}: {message}", path.display())]
    Fixture { path: PathBuf, message: String },

    /// The containers runtime could not talk to a Docker engine or start a container.
    #[error("containers runtime: {0}")]
    Containers(String),

    /// The lab is asked to do something its configuration forbids.
    #[error("{0}")]
    Config(String),
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io { context: context.into(), source }
    }

    pub(crate) fn http(context: impl Into<String>, source: reqwest::Error) -> Self {
        Self::Http { context: context.into(), source }
    }

    pub(crate) fn provision(service: Service, message: impl Into<String>) -> Self {
        Self::Provision { service, message: message.into() }
    }
}

/// Result alias of the lab.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
