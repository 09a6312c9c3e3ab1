//! Programs the host built, run as containers: the reference broker (this
//! `fourleg` binary) and the peers of `fixtures/peers/` (a jar, a Go binary,
//! a Python server), when the lab runs with the containers runtime.
//!
//! # Images
//!
//! No registry has these images: they are always built here, by
//! `docker/build-images.sh broker …` and `… peer KIND …`, on the lab's own
//! base (the debootstrap one, or Debian 12's official image with
//! `FOURLEG_IMAGES=pull`), from what the host already built: the broker's
//! binary, a peer's jar or binary, a Python peer's wheels. Each image is
//! tagged `<version>-<hash of its inputs>`, so an unchanged artifact reuses
//! its image and a rebuilt one replaces it.
//!
//! # The host's network
//!
//! They run with the host's network: a peer's issuer is
//! `http://127.0.0.1:<port>` and the broker reaches Postgres, OpenBao and
//! Keycloak at the loopback ports the lab publishes, exactly as their host
//! processes do, so every URL in `lab.json`, `peers.json` and the tokens
//! they issue is the same in both runtimes and the suite's verdicts cannot
//! depend on the runtime through an address. Isolation is the container's
//! own: its file system is the image plus read-only mounts of what it needs
//! (and a peer's own state directory, writable); it runs as the user who
//! runs fourleg, so whatever it writes into the state directory stays that
//! user's to delete.
//!
//! # Clean-up
//!
//! Each container carries the lab's labels ([`LabScope::labels`]), so
//! `fourleg down` (the reaper) removes it whether or not it was recorded.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::query_parameters::StopContainerOptionsBuilder;
use testcontainers::core::{AccessMode, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerRequest, GenericImage, ImageExt, ReuseDirective};

use super::containers::{ContainersRuntime, EnvValue, ImageRef, LabScope, LABEL_SERVICE};
use crate::config::ImageSource;
use crate::error::{LabError, Result};
use crate::pins;

/// How long a program's container has to stop before the engine kills it.
const STOP_GRACE_SECS: i32 = 15;

/// One host-built program's container, as plain data (see the module docs).
#[derive(Debug, Clone)]
pub struct ProgramSpec {
    /// The container's name, `fourleg-<lab id>-<what>`.
    pub name: String,
    pub image: ImageRef,
    /// The command after the image's entrypoint. Never holds a secret.
    pub cmd: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    /// Host paths mounted at the same path inside.
    pub binds: Vec<Bind>,
    pub working_dir: Option<String>,
    /// `uid:gid` the program runs as.
    pub user: String,
    pub labels: BTreeMap<String, String>,
}

/// A host path mounted at the same path in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub path: String,
    pub writable: bool,
}

impl Bind {
    /// `path` (made absolute), read-only.
    pub fn read_only(path: &Path) -> Result<Self> {
        Ok(Self { path: absolute(path)?, writable: false })
    }

    /// `path` (made absolute), writable.
    pub fn writable(path: &Path) -> Result<Self> {
        Ok(Self { path: absolute(path)?, writable: true })
    }
}

/// `path` as an absolute path string.
pub fn absolute(path: &Path) -> Result<String> {
    std::path::absolute(path)
        .map(|p| p.display().to_string())
        .map_err(|e| LabError::io(format!("resolving {}", path.display()), e))
}

/// The user fourleg runs as, `uid:gid`.
#[must_use]
pub fn current_user() -> String {
    format!("{}:{}", nix::unistd::getuid(), nix::unistd::getgid())
}

/// What a program's image is built from.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// The broker: a `fourleg` binary and its version.
    Broker { binary: PathBuf, version: String },
    /// A peer: the image kind (`java`, `python`, `binary`: `docker/peer-<kind>/`),
    /// its name and version, and the build context fourleg prepared.
    Peer { kind: &'static str, name: String, version: String, context: PathBuf },
}

impl ImageInput {
    /// The build script's arguments.
    fn args(&self) -> Vec<OsString> {
        match self {
            Self::Broker { binary, version } => {
                vec!["broker".into(), binary.clone().into_os_string(), version.into()]
            }
            Self::Peer { kind, name, version, context } => {
                vec!["peer".into(), (*kind).into(), name.into(), version.into(), context.clone().into_os_string()]
            }
        }
    }

    /// The name the script prints the image under.
    fn label(&self) -> &str {
        match self {
            Self::Broker { .. } => "broker",
            Self::Peer { name, .. } => name,
        }
    }
}

/// The image line `label=<image:tag>` of the build script's output.
#[must_use]
pub fn parse_image(stdout: &str, label: &str) -> Option<ImageRef> {
    stdout.lines().find_map(|l| {
        let reference = l.trim().strip_prefix(label)?.strip_prefix('=')?;
        let (image, tag) = reference.rsplit_once(':')?;
        (!image.is_empty() && !tag.is_empty() && !tag.contains('/'))
            .then(|| ImageRef { image: image.to_owned(), tag: tag.to_owned() })
    })
}

/// The testcontainers request of `spec`: the host's network, the same paths
/// inside as outside, the caller's user. It holds the secrets in clear (its
/// `Debug` prints the environment): never log it.
pub fn request(spec: &ProgramSpec) -> ContainerRequest<GenericImage> {
    let mut req = GenericImage::new(&spec.image.image, &spec.image.tag)
        .with_container_name(&spec.name)
        .with_network("host")
        .with_labels(spec.labels.clone())
        .with_cmd(spec.cmd.clone())
        .with_user(&spec.user)
        .with_reuse(ReuseDirective::Always);
    if let Some(dir) = &spec.working_dir {
        req = req.with_working_dir(dir);
    }
    for (key, value) in &spec.env {
        req = req.with_env_var(key, value.expose());
    }
    for b in &spec.binds {
        let mode = if b.writable { AccessMode::ReadWrite } else { AccessMode::ReadOnly };
        req = req.with_mount(Mount::bind_mount(&b.path, &b.path).with_access_mode(mode));
    }
    req
}

impl ContainersRuntime {
    /// Builds (or finds) the image of a host-built program with
    /// `docker/build-images.sh`, its output going to `log`.
    pub async fn program_image(&self, input: ImageInput, log: &Path) -> Result<ImageRef> {
        let script = self.build_script();
        if !script.is_file() {
            return Err(LabError::Containers(format!(
                "{} is missing; run fourleg from its source tree, or use `--runtime native`",
                script.display()
            )));
        }
        let mut env = Vec::new();
        if matches!(self.config().images, ImageSource::Pull) {
            let (image, tag) = pins::images::DEBIAN;
            env.push(("FOURLEG_BASE_IMAGE", format!("{image}:{tag}").into()));
        }
        let what = format!("the image of {}", input.label());
        let stdout = self.run_build_script(input.args(), env, &what, log).await?;
        parse_image(&stdout, input.label()).ok_or_else(|| {
            LabError::Containers(format!(
                "docker/build-images.sh named no image for {}; see {}",
                input.label(),
                log.display()
            ))
        })
    }

    /// The lab's scope and labels for a program's container named `what`
    /// (`broker`, `peer-<name>`): its name and labels.
    pub fn program_identity(&self, what: &str) -> Result<(String, BTreeMap<String, String>)> {
        let scope: LabScope = self.lab_scope()?;
        let mut labels = scope.labels(crate::Service::Broker);
        labels.insert(LABEL_SERVICE.to_owned(), what.to_owned());
        Ok((format!("fourleg-{}-{what}", scope.id), labels))
    }

    /// Starts `spec`'s container, its output copied to `log` while this
    /// process runs; returns its id.
    pub async fn start_program(&self, spec: &ProgramSpec, log: &Path) -> Result<String> {
        let docker = self.engine_client().await?;
        self.route_engine(&docker)?;
        super::containers::remove_stale_named(&docker, &spec.name, &spec.labels).await?;
        let consumer = super::containers::log_copy(log, &spec.name)?;
        let container = match request(spec).with_log_consumer(consumer).start().await {
            Ok(c) => c,
            Err(e) => {
                let _ = super::containers::remove_container(&docker, &spec.name).await;
                return Err(LabError::Containers(format!(
                    "starting {} ({}) failed: {e} (see {})",
                    spec.name,
                    spec.image.reference(),
                    log.display()
                )));
            }
        };
        let id = container.id().to_owned();
        // Marked for reuse: dropping the handle leaves the container running.
        drop(container);
        Ok(id)
    }

    /// Whether the container `id` runs.
    pub async fn container_running(&self, id: &str) -> bool {
        let Ok(docker) = self.engine_client().await else { return false };
        let inspect = tokio::time::timeout(Duration::from_secs(10), docker.inspect_container(id, None)).await;
        matches!(inspect, Ok(Ok(c)) if c.state.as_ref().and_then(|s| s.running) == Some(true))
    }

    /// Stops and removes the container `id` (gone already is fine).
    pub async fn stop_program(&self, id: &str, what: &str) -> Result<()> {
        let docker = self.engine_client().await?;
        let opts = StopContainerOptionsBuilder::new().t(STOP_GRACE_SECS).build();
        match docker.stop_container(id, Some(opts)).await {
            Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) if super::containers::not_found(&e) => return Ok(()),
            Err(e) => {
                return Err(LabError::Containers(format!("stopping {what} (container {id}): {e}")));
            }
        }
        super::containers::remove_container(&docker, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LabConfig;

    #[test]
    fn image_lines_are_found_by_label_only() {
        let out = "broker=fourleg/broker:0.1.0-0123456789ab\nspring=fourleg/peer-spring:7.1.2-ba9876543210\n";
        assert_eq!(parse_image(out, "broker").unwrap().reference(), "fourleg/broker:0.1.0-0123456789ab");
        assert_eq!(parse_image(out, "spring").unwrap().reference(), "fourleg/peer-spring:7.1.2-ba9876543210");
        assert!(parse_image(out, "hydra").is_none());
        assert!(parse_image("broker=fourleg/broker\n", "broker").is_none(), "no tag");
    }

    #[test]
    fn a_program_runs_on_the_host_network_as_the_caller_with_same_path_mounts() {
        let spec = ProgramSpec {
            name: "fourleg-t3st-broker".into(),
            image: ImageRef { image: "fourleg/broker".into(), tag: "0.1.0-abc".into() },
            cmd: vec!["broker".into(), "--config".into(), "/s/broker/broker.toml".into()],
            env: vec![("FOURLEG_BROKER_PG_PASSWORD".into(), EnvValue::Secret(fourleg_core::Secret::new("pw")))],
            binds: vec![Bind { path: "/s".into(), writable: false }],
            working_dir: Some("/s".into()),
            user: "1000:1000".into(),
            labels: BTreeMap::from([("fourleg.lab".into(), "/s".into())]),
        };
        let req = request(&spec);
        assert_eq!(req.network().as_deref(), Some("host"));
        assert_eq!(req.user(), Some("1000:1000"));
        let mounts: Vec<_> = req.mounts().collect();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].source(), Some("/s"));
        assert_eq!(mounts[0].target(), Some("/s"));
        assert_eq!(mounts[0].access_mode(), AccessMode::ReadOnly);
        // The spec's Debug shows no secret; only the request holds it.
        assert!(!format!("{spec:?}").contains("pw\""), "{spec:?}");
    }

    /// What `down` (the reaper) finds a program's container by: the lab's
    /// labels, as on the services' containers, whether or not it was recorded.
    #[test]
    fn a_program_container_carries_the_labs_labels() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lab")).unwrap();
        let runtime = ContainersRuntime::new(LabConfig::new(dir.path().join("lab")));
        let (name, labels) = runtime.program_identity("peer-hydra").unwrap();
        let scope = runtime.lab_scope().unwrap();
        assert_eq!(name, format!("fourleg-{}-peer-hydra", scope.id));
        assert_eq!(labels.get(super::super::containers::LABEL_LAB), Some(&scope.dir));
        assert_eq!(labels.get(super::super::containers::LABEL_LAB_ID), Some(&scope.id));
        assert_eq!(labels.get(LABEL_SERVICE).map(String::as_str), Some("peer-hydra"));
        // The same lab, the same scope: a second identity shares the id.
        let (broker, _) = runtime.program_identity("broker").unwrap();
        assert_eq!(broker, format!("fourleg-{}-broker", scope.id));
    }

    #[test]
    fn images_of_programs_name_their_inputs() {
        let input = ImageInput::Peer {
            kind: "python",
            name: "idpyoidc".into(),
            version: "5.0.0".into(),
            context: PathBuf::from("/c"),
        };
        assert_eq!(input.args(), ["peer", "python", "idpyoidc", "5.0.0", "/c"].map(OsString::from));
        assert_eq!(input.label(), "idpyoidc");
    }
}
