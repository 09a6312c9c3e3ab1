//! The containers runtime: the lab's services as containers, started through
//! testcontainers-rs on a Docker engine (or anything that speaks its API,
//! such as Podman's socket).
//!
//! # Images
//!
//! `FOURLEG_IMAGES` ([`ImageSource`]) chooses them. `build`, the default,
//! runs `docker/build-images.sh`, which builds them here from a debootstrap
//! base, Debian's archive and the native runtime's pinned artifacts (fetched
//! first, into the same cache), tags each `<version>-<hash of its inputs>`,
//! and only checks when they exist; no registry is needed. `pull` uses the
//! official images at the tags of [`pins::images`]. Both kinds of image take
//! the same environment, command and volumes, so the specs do not depend on
//! the source.
//!
//! # Old engines
//!
//! testcontainers' client speaks API 1.53 and never negotiates; Debian 12's
//! engine speaks 1.41 at most. This runtime's own client negotiates, and
//! testcontainers is pointed at the relay of [`super::api_shim`] when the
//! engine is older than its client.
//!
//! # No reaper container
//!
//! testcontainers-rs runs no reaper (ryuk) container, so there is none to
//! disable: `fourleg down` is the reaper. It removes every container, network
//! and volume labelled with the lab's state directory, recorded in `lab.json`
//! or not (an `up` killed between creating a container and recording it).
//!
//! Only *starting* differs from the native runtime. Readiness, provisioning
//! and `lab.json` stay with the orchestrator, which reaches every service on
//! `127.0.0.1` at the ports it chose, exactly as it reaches native processes:
//!
//! - every container port is published on `127.0.0.1` only, at the plan's
//!   port, so the URLs in `lab.json` stay valid;
//! - Keycloak reaches Postgres by the Postgres container's name on the lab's
//!   own network (`fourleg-<id>`), port 5432; the plan's `db_port` is a host
//!   port, which a container cannot use;
//! - data lives in named volumes (`fourleg-<id>-postgres-data`,
//!   `fourleg-<id>-openbao-data`) while the lab runs; `down` removes them with
//!   the containers and the network, so the engine keeps nothing of a lab
//!   that is down (the native runtime, which leaves no engine resource,
//!   keeps its data in the state directory until `down --purge`);
//! - containers, volumes and the network carry the labels
//!   `fourleg.lab=<absolute state directory>`, `fourleg.lab-id=<id>` and
//!   (containers, volumes) `fourleg.service=<service>`; the id is random per
//!   state directory (`containers.json`), so a state directory deleted by hand
//!   never hands its successor a database with other passwords.
//!
//! # Keeping containers after `fourleg up` exits
//!
//! testcontainers removes a container when its handle drops, which would end
//! the lab with the `up` process. Every request here is marked
//! [`ReuseDirective::Always`] (cargo feature `reusable-containers`), the
//! crate's declared way to exempt a container from remove-on-drop. It was
//! chosen over `std::mem::forget` of the handle (which keeps the container
//! only by never running code, and leaks the client) and over
//! `TESTCONTAINERS_COMMAND=keep` (a process-wide environment variable). Its
//! other effect, adopting an existing container with the same name and
//! labels, never applies: a start first removes any container of that name.
//! The network is created here, with labels, before any container, so
//! testcontainers never owns (nor removes) it either.
//!
//! Stopping, `is_running` and `purge` work from the container id in
//! `lab.json` and the labels alone, through the Docker API client that
//! testcontainers re-exports (`bollard`), talking to the engine testcontainers
//! uses (`DOCKER_HOST`, else the usual sockets).
//!
//! # Logs
//!
//! While `fourleg up` runs, each container's output is copied to
//! `<state>/logs/<service>.log`, so readiness errors show its last lines as
//! for native services. After `up` exits the file stops growing; its first
//! line names the container, whose complete log is `docker logs <name>`.
//!
//! # Readiness
//!
//! testcontainers waits for nothing but the container running: the container
//! id must reach `lab.json` at once (so `down` can clean up after a crash),
//! and readiness is the orchestrator's real probe, the same for both
//! runtimes.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fourleg_core::Secret;
use serde::{Deserialize, Serialize};
use testcontainers::bollard::errors::Error as DockerError;
use testcontainers::bollard::models::{HostConfig, NetworkCreateRequest, PortBinding, VolumeCreateRequest};
use testcontainers::bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use testcontainers::bollard::{Docker, API_DEFAULT_VERSION};
use testcontainers::core::logs::LogFrame;
use testcontainers::core::{ContainerPort, Mount};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerRequest, GenericImage, ImageExt, ReuseDirective};

use super::{KeycloakPlan, OpenbaoPlan, PostgresPlan, Runtime, Started};
use crate::config::{ImageSource, LabConfig, RuntimeKind};
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::service::Service;
use crate::state::{Handle, ServiceRecord};
use crate::{pins, LOOPBACK};

/// Label holding the absolute state directory of the lab a resource belongs to.
pub const LABEL_LAB: &str = "fourleg.lab";
/// Label holding the random id of the lab (see [`LabScope`]).
pub const LABEL_LAB_ID: &str = "fourleg.lab-id";
/// State files that describe the data in the lab's volumes, removed with
/// them by `down`.
const DATA_BOUND_STATE: [&str; 2] = ["openbao/init.json", "openbao/broker-approle.json"];

/// Label holding the service a container or volume belongs to.
pub const LABEL_SERVICE: &str = "fourleg.service";

/// Postgres's port inside its container and on the lab network.
const POSTGRES_PORT: u16 = 5432;
/// The `bao` API port inside its container.
const OPENBAO_PORT: u16 = 8200;
/// The `bao` cluster (raft) port inside its container; never published.
const OPENBAO_CLUSTER_PORT: u16 = 8201;
/// Keycloak's HTTP port inside its container.
const KEYCLOAK_PORT: u16 = 8080;
/// Keycloak's management port (health, metrics) inside its container.
const KEYCLOAK_MANAGEMENT_PORT: u16 = 9000;
/// Where the Postgres image keeps its cluster (`PGDATA` of the 15.x image).
const POSTGRES_DATA: &str = "/var/lib/postgresql/data";
/// Where raft storage lives: the `openbao` image's `/openbao/file`, a
/// directory owned by the `openbao` user, which a fresh named volume inherits.
const OPENBAO_DATA: &str = "/openbao/file";

/// How long an engine has to answer a ping or a status question.
const ENGINE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a container has to stop before the engine kills it.
const STOP_GRACE_SECS: i32 = 30;

/// Official images through testcontainers; see the module docs.
#[derive(Debug, Clone)]
pub struct ContainersRuntime {
    config: LabConfig,
    /// The engine to use instead of the one [`docker_host`] finds (tests).
    docker_host: Option<String>,
    /// The lab's scope, once read or made (services start concurrently and
    /// must agree on one id).
    scope: Arc<StdMutex<Option<LabScope>>>,
    /// Held while the lab network is looked up and created, so concurrent
    /// starts never create two networks of one name.
    network: Arc<tokio::sync::Mutex<()>>,
    /// The images to start, once `prepare` has built or pulled them.
    images: Arc<StdMutex<Option<LabImages>>>,
}

impl ContainersRuntime {
    /// A containers runtime for `config`.
    #[must_use]
    pub fn new(config: LabConfig) -> Self {
        Self { config, docker_host: None, scope: Arc::default(), network: Arc::default(), images: Arc::default() }
    }

    /// The engine address this runtime talks to.
    fn engine(&self) -> String {
        self.docker_host.clone().unwrap_or_else(real_engine)
    }

    /// A client of the engine (connecting is lazy: no request is made).
    fn docker(&self) -> Result<Docker> {
        let host = self.engine();
        Docker::connect_with_host(&host).map_err(|e| no_engine(&host, &e))
    }

    /// A client of an engine that answered, speaking the engine's API
    /// version (older engines refuse a newer client's requests).
    async fn docker_answering(&self) -> Result<Docker> {
        let host = self.engine();
        let docker = self.docker()?;
        match tokio::time::timeout(ENGINE_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(docker)) => Ok(docker),
            Ok(Err(e)) => Err(no_engine(&host, &e)),
            Err(_) => Err(no_engine(&host, &format!("no answer within {}s", ENGINE_TIMEOUT.as_secs()))),
        }
    }

    /// Points testcontainers at the engine: through the API relay (see
    /// [`super::api_shim`]) when the engine is older than testcontainers'
    /// client, started once per process (testcontainers makes its client
    /// once), on a socket in the state directory of the first lab this
    /// process starts: a process that starts labs in several state
    /// directories must not purge the first while it starts the others.
    fn route_testcontainers(&self, docker: &Docker) -> Result<()> {
        static RELAY: OnceLock<std::result::Result<String, String>> = OnceLock::new();
        if docker.client_version() >= *API_DEFAULT_VERSION {
            return Ok(());
        }
        let host = self.engine();
        let routed = RELAY.get_or_init(|| {
            let upstream = super::api_shim::Upstream::parse(&host)
                .ok_or_else(|| format!("the engine at {host} speaks API {} and is not a unix:// or tcp:// address that the relay can reach", docker.client_version()))?;
            let socket = self.config.state_path("docker-api.sock");
            super::api_shim::start(&socket, upstream).map_err(|e| e.to_string())?;
            let relay = format!("unix://{}", socket.display());
            // testcontainers reads DOCKER_HOST when it makes its client, on its
            // first request, which comes after this; nothing else in this
            // process reads the environment concurrently at this point.
            std::env::set_var("DOCKER_HOST", &relay);
            Ok(relay)
        });
        routed.as_ref().map(|_| ()).map_err(|e| LabError::Containers(e.clone()))
    }

    /// The images to start: those `prepare` settled on.
    fn images(&self) -> Result<LabImages> {
        self.images
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| LabError::Containers("the lab's images are not known yet (prepare did not run)".into()))
    }

    /// Builds the lab's images with `docker/build-images.sh` (a warm run only
    /// hashes the inputs and finds the images), fetching the pinned artifacts
    /// as the native runtime does first.
    async fn build_images(&self, progress: &dyn Progress) -> Result<LabImages> {
        let script = self.build_script();
        if !script.is_file() {
            return Err(LabError::Containers(format!(
                "{} is missing; run fourleg from its source tree, or set FOURLEG_IMAGES=pull to use the official images",
                script.display()
            )));
        }
        let cache = self.config.cache_dir.clone();
        let log = self.config.state_path("logs/images.log");
        progress.step(Service::Keycloak, "fetching the pinned keycloak distribution and bao binary (cached)");
        let (tarball, bao) = {
            let (cache, log) = (cache.clone(), log.clone());
            tokio::task::spawn_blocking(move || -> Result<(PathBuf, PathBuf)> {
                let tarball = super::native::fetch::fetch_keycloak_tarball(&cache, &log)?;
                let bao = super::native::fetch::install_openbao(&cache, &log)?;
                Ok((tarball, bao))
            })
            .await
            .map_err(|e| LabError::Containers(format!("fetching the image artifacts: {e}")))??
        };
        progress.step(Service::Keycloak, &format!("building the lab images, once ({})", script.display()));
        let env = vec![("KEYCLOAK_DIST_TARBALL", tarball.into_os_string()), ("BAO_BINARY", bao.into_os_string())];
        let stdout = self.run_build_script(Vec::new(), env, "the lab images", &log).await?;
        LabImages::parse(&stdout).ok_or_else(|| {
            LabError::Containers(format!(
                "docker/build-images.sh named no image for every service; see {}",
                log.display()
            ))
        })
    }

    /// Runs `docker/build-images.sh` with `args` and `env` (besides the
    /// cache and the engine), its progress (stderr) going to `log`; returns
    /// its stdout, the `name=<image:tag>` lines. `what` names the images in
    /// errors.
    pub(crate) async fn run_build_script(
        &self,
        args: Vec<std::ffi::OsString>,
        env: Vec<(&'static str, std::ffi::OsString)>,
        what: &str,
        log: &Path,
    ) -> Result<String> {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(self.build_script())
            .args(args)
            .envs(env)
            .env("FOURLEG_CACHE", &self.config.cache_dir)
            .env("DOCKER_HOST", self.engine())
            .stdin(std::process::Stdio::null());
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| LabError::Containers(format!("building {what}: {e}")))?
            .map_err(|e| LabError::io("running docker/build-images.sh", e))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(log, stderr.as_bytes());
        if !out.status.success() {
            return Err(LabError::Containers(format!(
                "building {what} failed ({}):\n{}",
                out.status,
                stderr.trim_end()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The lab's configuration.
    pub(crate) fn config(&self) -> &LabConfig {
        &self.config
    }

    /// A client of an engine that answered (see `docker_answering`).
    pub(crate) async fn engine_client(&self) -> Result<Docker> {
        self.docker_answering().await
    }

    /// Points testcontainers at the engine (see `route_testcontainers`).
    pub(crate) fn route_engine(&self, docker: &Docker) -> Result<()> {
        self.route_testcontainers(docker)
    }

    /// The lab's names and labels (see [`LabScope`]).
    pub(crate) fn lab_scope(&self) -> Result<LabScope> {
        self.scope()
    }

    /// `docker/build-images.sh` of the source tree the fixtures come from.
    pub(crate) fn build_script(&self) -> PathBuf {
        self.config.fixtures_dir.join("../docker/build-images.sh")
    }

    /// Whether this runtime can start the lab here, and if not, why: the
    /// engine answers, and the images are present or can be built (or are
    /// to be pulled, with `FOURLEG_IMAGES=pull`). For `--runtime auto`.
    pub async fn availability(&self) -> std::result::Result<(), String> {
        let docker = self.docker_answering().await.map_err(|e| e.to_string())?;
        match &self.config.images {
            ImageSource::Pull => Ok(()),
            ImageSource::Invalid(v) => Err(format!("FOURLEG_IMAGES={v} is neither build nor pull")),
            ImageSource::Build => {
                let listed = std::fs::read_to_string(self.config.cache_dir.join("images/lab-images.env")).ok();
                if let Some(images) = listed.as_deref().and_then(LabImages::parse) {
                    let mut present = true;
                    for r in images.all() {
                        present &= docker.inspect_image(&r.reference()).await.is_ok();
                    }
                    if present {
                        return Ok(());
                    }
                }
                if !self.build_script().is_file() {
                    return Err(format!("the images are not built and {} is missing", self.build_script().display()));
                }
                let base_cached =
                    std::fs::read_dir(self.config.cache_dir.join("images")).into_iter().flatten().flatten().any(|e| {
                        e.file_name().to_string_lossy().starts_with("debian-")
                            && e.file_name().to_string_lossy().ends_with(".tar.gz")
                    });
                // The script runs debootstrap as root, through sudo when not root.
                let on_path = |tool: &str| {
                    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
                        || Path::new("/usr/sbin").join(tool).is_file()
                };
                let can_debootstrap =
                    on_path("debootstrap") && (nix::unistd::Uid::effective().is_root() || on_path("sudo"));
                if base_cached || can_debootstrap {
                    Ok(())
                } else {
                    Err("the images are not built, and building their base needs debootstrap, as root or \
                         through sudo (apt-get install debootstrap), or FOURLEG_IMAGES=pull where a registry answers"
                        .into())
                }
            }
        }
    }

    /// Removes every container, network and volume labelled with this lab,
    /// whether `lab.json` knows them or not (an `up` killed between creating
    /// a container and recording it): `down` is the reaper, and leaves no
    /// resource in the engine. The data went with the volumes, so the state
    /// that only made sense with it goes too (OpenBao's unseal key and root
    /// token, the broker's AppRole): the next `up` initialises and provisions
    /// afresh with the same generated passwords.
    async fn reap(&self, docker: &Docker) -> Result<()> {
        let dir = self.absolute_state_dir()?;
        let found = LabResources::list(docker, &dir).await?;
        for (id, _) in &found.containers {
            remove(docker, id).await?;
        }
        for (name, _) in &found.networks {
            remove_network(docker, name).await?;
        }
        for (name, _) in &found.volumes {
            remove_volume(docker, name).await?;
        }
        for bound in DATA_BOUND_STATE {
            let path = self.config.state_path(bound);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(LabError::io(format!("removing {}", path.display()), e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn absolute_state_dir(&self) -> Result<String> {
        Ok(std::path::absolute(&self.config.state_dir)
            .map_err(|e| LabError::io(format!("resolving {}", self.config.state_dir.display()), e))?
            .display()
            .to_string())
    }

    /// The names and labels of this lab's resources, creating its id on first use.
    fn scope(&self) -> Result<LabScope> {
        let mut cached = self.scope.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(scope) = cached.as_ref() {
            return Ok(scope.clone());
        }
        let path = self.config.state_path("containers.json");
        let dir = std::path::absolute(&self.config.state_dir)
            .map_err(|e| LabError::io(format!("resolving {}", self.config.state_dir.display()), e))?;
        let id = if let Some(file) = fsutil::read_json::<ScopeFile>(&path)? {
            file.lab_id
        } else {
            let id = Secret::generate(10).expose().to_ascii_lowercase();
            fsutil::write_json(&path, &ScopeFile { lab_id: id.clone() })?;
            id
        };
        let scope = LabScope { id, dir: dir.display().to_string() };
        *cached = Some(scope.clone());
        Ok(scope)
    }

    /// The lab network's gateway: the host as the containers reach it.
    async fn network_gateway(&self) -> Result<Option<String>> {
        let docker = self.docker_answering().await?;
        let scope = self.scope()?;
        self.ensure_network(&docker, &scope).await?;
        let net = docker
            .inspect_network(&scope.network(), None::<testcontainers::bollard::query_parameters::InspectNetworkOptions>)
            .await
            .map_err(|e| engine_error("inspecting the lab network", &e))?;
        Ok(net
            .ipam
            .and_then(|i| i.config)
            .and_then(|c| c.into_iter().find_map(|c| c.gateway))
            .filter(|g| g.parse::<std::net::Ipv4Addr>().is_ok()))
    }

    /// Creates the lab network unless it exists.
    async fn ensure_network(&self, docker: &Docker, scope: &LabScope) -> Result<()> {
        let _held = self.network.lock().await;
        let name = scope.network();
        let filters = HashMap::from([("name".to_owned(), vec![name.clone()])]);
        let existing = docker
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|e| engine_error("listing networks", &e))?;
        // The name filter matches substrings.
        if existing.iter().any(|n| n.name.as_deref() == Some(name.as_str())) {
            return Ok(());
        }
        let labels =
            HashMap::from([(LABEL_LAB.to_owned(), scope.dir.clone()), (LABEL_LAB_ID.to_owned(), scope.id.clone())]);
        let created = docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                labels: Some(labels),
                ..Default::default()
            })
            .await;
        match created {
            // 409: made meanwhile by someone else (another `fourleg up`).
            Ok(_) | Err(DockerError::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(engine_error(&format!("creating network {name}"), &e)),
        }
    }

    /// Starts the container of `spec` and returns its record.
    async fn run(&self, scope: &LabScope, spec: ContainerSpec, log: &Path, progress: &dyn Progress) -> Result<Started> {
        let docker = self.docker_answering().await?;
        self.ensure_network(&docker, scope).await?;
        for volume in &spec.volumes {
            ensure_volume(&docker, &volume.name, &spec.labels).await?;
        }
        remove_stale(&docker, &spec).await?;
        let consumer = LogCopy::open(log, &spec.name)?;
        let (image, tag) = (spec.image.clone(), spec.tag.clone());
        let published = spec.ports.iter().map(|p| format!("{}:{}", p.host_ip, p.host)).collect::<Vec<_>>().join(", ");
        progress.step(spec.service, &format!("starting container {} ({image}:{tag}) on {published}", spec.name));
        let container = match request(&spec).with_log_consumer(consumer).start().await {
            Ok(c) => c,
            Err(e) => {
                // A container created but not started would keep its name.
                let _ = remove(&docker, &spec.name).await;
                return Err(LabError::Containers(format!(
                    "starting {} ({image}:{tag}) failed: {e} (see {})",
                    spec.name,
                    log.display()
                )));
            }
        };
        let id = container.id().to_owned();
        // Marked for reuse: dropping the handle leaves the container running.
        drop(container);
        let main = spec.ports.first().map_or(0, |p| p.host);
        let url = match spec.service {
            Service::Postgres => format!("postgres://{LOOPBACK}:{main}"),
            Service::Openbao | Service::Keycloak | Service::Broker => format!("http://{LOOPBACK}:{main}"),
        };
        let extra_ports = spec.ports.iter().skip(1).map(|p| (p.purpose.to_owned(), p.host)).collect();
        Ok(Started {
            record: ServiceRecord {
                service: spec.service,
                // A built image's tag is `<version>-<hash of its inputs>`.
                version: tag.split('-').next().unwrap_or(&tag).to_owned(),
                host: LOOPBACK.into(),
                port: main,
                extra_ports,
                url,
                handle: Handle::Container { id },
                log: log.to_owned(),
                started_at: now_unix(),
                startup_ms: 0,
            },
            child: None,
        })
    }

    /// Removes what is left of earlier labs in the same state directory
    /// (whose `containers.json` was deleted): nothing can reach them any more.
    async fn remove_orphans(&self, docker: &Docker, scope: &LabScope, progress: &dyn Progress) -> Result<()> {
        let orphan = |(_, labels): &&(String, HashMap<String, String>)| {
            labels.get(LABEL_LAB_ID).is_some_and(|id| *id != scope.id)
        };
        let found = LabResources::list(docker, &scope.dir).await?;
        let containers: Vec<_> = found.containers.iter().filter(orphan).collect();
        let volumes: Vec<_> = found.volumes.iter().filter(orphan).collect();
        let networks: Vec<_> = found.networks.iter().filter(orphan).collect();
        if containers.is_empty() && volumes.is_empty() && networks.is_empty() {
            return Ok(());
        }
        progress.step(
            Service::Postgres,
            &format!(
                "removing {} containers, {} volumes and {} networks of an earlier lab in {}",
                containers.len(),
                volumes.len(),
                networks.len(),
                scope.dir
            ),
        );
        for (id, _) in containers {
            remove(docker, id).await?;
        }
        for (name, _) in networks {
            remove_network(docker, name).await?;
        }
        for (name, _) in volumes {
            remove_volume(docker, name).await?;
        }
        Ok(())
    }
}

/// One image by name and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub image: String,
    pub tag: String,
}

impl ImageRef {
    fn new((image, tag): (&str, &str)) -> Self {
        Self { image: image.to_owned(), tag: tag.to_owned() }
    }

    /// `image:tag`.
    #[must_use]
    pub fn reference(&self) -> String {
        format!("{}:{}", self.image, self.tag)
    }
}

/// The image of each service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabImages {
    pub postgres: ImageRef,
    pub openbao: ImageRef,
    pub keycloak: ImageRef,
}

impl LabImages {
    /// The official images at the tags of [`pins::images`] (`FOURLEG_IMAGES=pull`).
    #[must_use]
    pub fn official() -> Self {
        Self {
            postgres: ImageRef::new(pins::images::POSTGRES),
            openbao: ImageRef::new(pins::images::OPENBAO),
            keycloak: ImageRef::new(pins::images::KEYCLOAK),
        }
    }

    /// The images `docker/build-images.sh` printed (`postgres=<image:tag>`
    /// per line); `None` unless every service has one.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let find = |service: &str| {
            text.lines().find_map(|l| {
                let reference = l.trim().strip_prefix(service)?.strip_prefix('=')?;
                let (image, tag) = reference.rsplit_once(':')?;
                (!image.is_empty() && !tag.is_empty() && !tag.contains('/'))
                    .then(|| ImageRef { image: image.to_owned(), tag: tag.to_owned() })
            })
        };
        Some(Self { postgres: find("postgres")?, openbao: find("openbao")?, keycloak: find("keycloak")? })
    }

    fn all(&self) -> [&ImageRef; 3] {
        [&self.postgres, &self.openbao, &self.keycloak]
    }
}

/// The engine's address as testcontainers would find it, read before the
/// API relay (if any) replaces `DOCKER_HOST` in this process.
fn real_engine() -> String {
    static REAL: OnceLock<String> = OnceLock::new();
    REAL.get_or_init(|| {
        docker_host(|k| std::env::var(k).ok(), |p| Path::new(p).exists(), std::env::var_os("HOME").map(PathBuf::from))
    })
    .clone()
}

/// `containers.json` in the state directory.
#[derive(Debug, Serialize, Deserialize)]
struct ScopeFile {
    lab_id: String,
}

/// Where a lab's resources are named from: the absolute state directory
/// (label `fourleg.lab`) and a random id per state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabScope {
    pub id: String,
    pub dir: String,
}

impl LabScope {
    /// The lab's network.
    #[must_use]
    pub fn network(&self) -> String {
        format!("fourleg-{}", self.id)
    }

    /// The container of `service`, also its DNS name on the lab network.
    #[must_use]
    pub fn container(&self, service: Service) -> String {
        format!("fourleg-{}-{service}", self.id)
    }

    /// The data volume of `service`.
    #[must_use]
    pub fn volume(&self, service: Service) -> String {
        format!("fourleg-{}-{service}-data", self.id)
    }

    /// The labels of every resource of `service`.
    #[must_use]
    pub fn labels(&self, service: Service) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_LAB.to_owned(), self.dir.clone()),
            (LABEL_LAB_ID.to_owned(), self.id.clone()),
            (LABEL_SERVICE.to_owned(), service.name().to_owned()),
        ])
    }
}

/// An environment variable's value; secrets stay in their box until the
/// request is built, so a spec's `Debug` (and its snapshot) shows none.
#[derive(Clone)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl std::fmt::Debug for EnvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvValue::Plain(s) => write!(f, "{s:?}"),
            EnvValue::Secret(_) => f.write_str("[redacted]"),
        }
    }
}

impl EnvValue {
    pub(crate) fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(s) => s,
            EnvValue::Secret(s) => s.expose(),
        }
    }
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    /// What the port is for; the first port of a spec is the service's own,
    /// the others go to the record's `extra_ports` under this name.
    pub purpose: &'static str,
    pub host_ip: &'static str,
    pub host: u16,
    pub container: u16,
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSpec {
    pub name: String,
    pub target: &'static str,
}

/// Everything that defines one service's container, as plain data: built by
/// pure functions from a plan, checked by unit tests, turned into a
/// testcontainers request by [`request`].
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub service: Service,
    pub image: String,
    pub tag: String,
    /// Container name, which is also its DNS name on [`Self::network`].
    pub name: String,
    pub network: String,
    pub env: Vec<(&'static str, EnvValue)>,
    /// The command after the image's entrypoint. Never holds a secret
    /// (`docker inspect` and `ps` in the container show it).
    pub cmd: Vec<String>,
    pub ports: Vec<PublishedPort>,
    pub volumes: Vec<VolumeSpec>,
    pub labels: BTreeMap<String, String>,
}

fn plain(s: impl Into<String>) -> EnvValue {
    EnvValue::Plain(s.into())
}

/// Postgres: superuser `fourleg`, the cluster in a named volume, the same
/// settings as the native cluster. The orchestrator creates the `keycloak`
/// and `broker` roles and databases over SQL.
#[must_use]
pub fn postgres_spec(scope: &LabScope, images: &LabImages, plan: &PostgresPlan) -> ContainerSpec {
    let ImageRef { image, tag } = images.postgres.clone();
    ContainerSpec {
        service: Service::Postgres,
        image,
        tag,
        name: scope.container(Service::Postgres),
        network: scope.network(),
        env: vec![
            ("POSTGRES_USER", plain("fourleg")),
            ("POSTGRES_PASSWORD", EnvValue::Secret(plan.superuser_password.clone())),
            ("POSTGRES_DB", plain("postgres")),
            // As the native `initdb`: UTF-8 without a locale.
            ("POSTGRES_INITDB_ARGS", plain("--encoding=UTF8 --no-locale")),
        ],
        cmd: ["postgres", "-c", "max_connections=200"].map(str::to_owned).to_vec(),
        ports: vec![PublishedPort {
            purpose: "postgres",
            host_ip: LOOPBACK,
            host: plan.port,
            container: POSTGRES_PORT,
        }],
        volumes: vec![VolumeSpec { name: scope.volume(Service::Postgres), target: POSTGRES_DATA }],
        labels: scope.labels(Service::Postgres),
    }
}

/// The `bao server` configuration (JSON, as `BAO_LOCAL_CONFIG` wants it):
/// server mode with single-node raft storage, plain HTTP inside the
/// container, and the API address as the host sees it.
#[must_use]
pub fn openbao_config(scope: &LabScope, plan: &OpenbaoPlan) -> serde_json::Value {
    serde_json::json!({
        "storage": {
            "raft": { "path": OPENBAO_DATA, "node_id": "fourleg-lab" }
        },
        "listener": [{
            "tcp": {
                "address": format!("0.0.0.0:{OPENBAO_PORT}"),
                "cluster_address": format!("0.0.0.0:{OPENBAO_CLUSTER_PORT}"),
                "tls_disable": true
            }
        }],
        "api_addr": format!("http://{LOOPBACK}:{}", plan.port),
        "cluster_addr": format!("http://{}:{OPENBAO_CLUSTER_PORT}", scope.container(Service::Openbao)),
        "disable_mlock": true,
        "ui": false
    })
}

/// The `openbao` image in server mode (never `-dev`): sealed and uninitialised on its
/// first start; the orchestrator initialises and unseals it over HTTP.
#[must_use]
pub fn openbao_spec(scope: &LabScope, images: &LabImages, plan: &OpenbaoPlan) -> ContainerSpec {
    let ImageRef { image, tag } = images.openbao.clone();
    ContainerSpec {
        service: Service::Openbao,
        image,
        tag,
        name: scope.container(Service::Openbao),
        network: scope.network(),
        env: vec![
            // The image's entrypoint writes this to /openbao/config/local.json.
            ("BAO_LOCAL_CONFIG", plain(openbao_config(scope, plan).to_string())),
            // mlock is disabled, so the entrypoint need not grant IPC_LOCK
            // (which fails without `--cap-add IPC_LOCK`).
            ("SKIP_SETCAP", plain("true")),
            // For `docker exec <name> bao status`.
            ("BAO_ADDR", plain(format!("http://127.0.0.1:{OPENBAO_PORT}"))),
        ],
        // The entrypoint turns `server` into `bao server -config=/openbao/config`.
        cmd: vec!["server".to_owned()],
        ports: vec![PublishedPort { purpose: "openbao", host_ip: LOOPBACK, host: plan.port, container: OPENBAO_PORT }],
        volumes: vec![VolumeSpec { name: scope.volume(Service::Openbao), target: OPENBAO_DATA }],
        labels: scope.labels(Service::Openbao),
    }
}

/// Keycloak `start` (production mode, re-augmented on each new container)
/// against the lab's Postgres through the lab network. The issuer follows
/// the request (hostname v2, not strict), so it is `http://127.0.0.1:<port>`
/// as the host sees it.
#[must_use]
pub fn keycloak_spec(scope: &LabScope, images: &LabImages, plan: &KeycloakPlan) -> ContainerSpec {
    let ImageRef { image, tag } = images.keycloak.clone();
    let db_url = format!("jdbc:postgresql://{}:{POSTGRES_PORT}/{}", scope.container(Service::Postgres), plan.db_name);
    ContainerSpec {
        service: Service::Keycloak,
        image,
        tag,
        name: scope.container(Service::Keycloak),
        network: scope.network(),
        // Credentials by environment, never on the command line.
        env: vec![
            ("KC_DB_URL", plain(db_url)),
            ("KC_DB_USERNAME", plain(plan.db_user.clone())),
            ("KC_DB_PASSWORD", EnvValue::Secret(plan.db_password.clone())),
            ("KC_BOOTSTRAP_ADMIN_USERNAME", plain("admin")),
            ("KC_BOOTSTRAP_ADMIN_PASSWORD", EnvValue::Secret(plan.admin_password.clone())),
        ],
        cmd: vec![
            "start".to_owned(),
            "--http-enabled=true".to_owned(),
            "--hostname-strict=false".to_owned(),
            "--health-enabled=true".to_owned(),
            "--cache=local".to_owned(),
            "--db=postgres".to_owned(),
            format!("--features={}", pins::KEYCLOAK_FEATURES),
        ],
        ports: vec![
            PublishedPort { purpose: "keycloak", host_ip: LOOPBACK, host: plan.port, container: KEYCLOAK_PORT },
            PublishedPort {
                purpose: "management",
                host_ip: LOOPBACK,
                host: plan.management_port,
                container: KEYCLOAK_MANAGEMENT_PORT,
            },
        ],
        volumes: Vec::new(),
        labels: scope.labels(Service::Keycloak),
    }
}

/// The `HostConfig.PortBindings` of `ports`: each on its host address only.
fn port_bindings(ports: &[PublishedPort]) -> HashMap<String, Option<Vec<PortBinding>>> {
    ports
        .iter()
        .map(|p| {
            (
                format!("{}/tcp", p.container),
                Some(vec![PortBinding { host_ip: Some(p.host_ip.to_owned()), host_port: Some(p.host.to_string()) }]),
            )
        })
        .collect()
}

/// The testcontainers request of `spec`. testcontainers publishes mapped
/// ports on every host address; the host-config modifier rebinds them to
/// the spec's (loopback) address. The request holds the secrets in clear
/// (its `Debug` prints the environment): never log it.
pub fn request(spec: &ContainerSpec) -> ContainerRequest<GenericImage> {
    let mut req = GenericImage::new(&spec.image, &spec.tag)
        .with_container_name(&spec.name)
        .with_network(&spec.network)
        .with_labels(spec.labels.clone())
        .with_cmd(spec.cmd.clone())
        .with_reuse(ReuseDirective::Always);
    for (key, value) in &spec.env {
        req = req.with_env_var(*key, value.expose());
    }
    for v in &spec.volumes {
        req = req.with_mount(Mount::volume_mount(&v.name, v.target));
    }
    for p in &spec.ports {
        req = req.with_mapped_port(p.host, ContainerPort::Tcp(p.container));
    }
    let bindings = port_bindings(&spec.ports);
    req.with_host_config_modifier(move |hc: &mut HostConfig| {
        hc.port_bindings = Some(bindings.clone());
    })
}

/// Copies a container's output to its log file while this process runs.
struct LogCopy(StdMutex<std::fs::File>);

impl LogCopy {
    fn open(log: &Path, container: &str) -> Result<impl Fn(&LogFrame) + Send + Sync> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
        writeln!(
            file,
            "--- fourleg: container {container}, copied while `fourleg up` runs; full log: docker logs {container} ---"
        )
        .map_err(|e| LabError::io(format!("writing {}", log.display()), e))?;
        let copy = LogCopy(StdMutex::new(file));
        Ok(move |frame: &LogFrame| {
            if let Ok(mut f) = copy.0.lock() {
                // Best effort: a full disk must not stop the lab.
                let _ = f.write_all(frame.bytes());
            }
        })
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The engine address, found as testcontainers finds it (without its
/// properties file): `DOCKER_HOST`, else the first socket that exists of
/// `/var/run/docker.sock`, `$XDG_RUNTIME_DIR/.docker/run/docker.sock`,
/// `~/.docker/run/docker.sock`, `~/.docker/desktop/docker.sock`, else the first.
fn docker_host(env: impl Fn(&str) -> Option<String>, exists: impl Fn(&str) -> bool, home: Option<PathBuf>) -> String {
    if let Some(h) = env("DOCKER_HOST").filter(|h| !h.trim().is_empty()) {
        return h;
    }
    let mut candidates = vec!["/var/run/docker.sock".to_owned()];
    if let Some(rt) = env("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        candidates.push(format!("{rt}/.docker/run/docker.sock"));
    }
    if let Some(home) = home {
        candidates.push(format!("{}/.docker/run/docker.sock", home.display()));
        candidates.push(format!("{}/.docker/desktop/docker.sock", home.display()));
    }
    let found = candidates.iter().find(|c| exists(c)).unwrap_or(&candidates[0]);
    format!("unix://{found}")
}

fn no_engine(host: &str, cause: &dyn std::fmt::Display) -> LabError {
    LabError::Containers(format!(
        "no docker engine answers at {host} ({cause}); start docker (or point DOCKER_HOST at a running engine), \
         or use `--runtime native`"
    ))
}

fn engine_error(what: &str, e: &DockerError) -> LabError {
    LabError::Containers(format!("{what}: {e}"))
}

fn is_not_found(e: &DockerError) -> bool {
    matches!(e, DockerError::DockerResponseServerError { status_code: 404, .. })
}

fn label_filter(key: &str, value: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{key}={value}")])])
}

async fn ensure_volume(docker: &Docker, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    // Creating an existing volume returns it unchanged.
    docker
        .create_volume(VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        })
        .await
        .map_err(|e| engine_error(&format!("creating volume {name}"), &e))?;
    Ok(())
}

/// Removes a container of the spec's name left by an earlier start (stopped,
/// or running but unhealthy): its name and ports are needed. One of another
/// lab is never touched.
async fn remove_stale(docker: &Docker, spec: &ContainerSpec) -> Result<()> {
    remove_stale_named(docker, &spec.name, &spec.labels).await
}

/// Removes the container `name` when it is this lab's (`labels`); refuses
/// when a container of that name belongs to something else.
pub(crate) async fn remove_stale_named(docker: &Docker, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
    let found = match docker.inspect_container(name, None).await {
        Ok(found) => found,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(engine_error(&format!("inspecting container {name}"), &e)),
    };
    let owner = found.config.and_then(|c| c.labels).and_then(|l| l.get(LABEL_LAB).cloned());
    if owner.as_deref() != labels.get(LABEL_LAB).map(String::as_str) {
        return Err(LabError::Containers(format!(
            "a container named {name} exists and is not this lab's; remove it (`docker rm -f {name}`)"
        )));
    }
    remove(docker, name).await
}

/// Force-removes a container (see `remove`).
pub(crate) async fn remove_container(docker: &Docker, id: &str) -> Result<()> {
    remove(docker, id).await
}

/// Whether the engine said "no such container".
pub(crate) fn not_found(e: &DockerError) -> bool {
    is_not_found(e)
}

/// A log consumer copying a container's output to `log` (see `LogCopy`).
pub(crate) fn log_copy(log: &Path, container: &str) -> Result<impl Fn(&LogFrame) + Send + Sync> {
    LogCopy::open(log, container)
}

/// Force-removes a container and its anonymous volumes; gone already is fine.
async fn remove(docker: &Docker, id: &str) -> Result<()> {
    let opts = RemoveContainerOptionsBuilder::new().force(true).v(true).build();
    match docker.remove_container(id, Some(opts)).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine_error(&format!("removing container {id}"), &e)),
    }
}

async fn remove_network(docker: &Docker, name: &str) -> Result<()> {
    match docker.remove_network(name).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine_error(&format!("removing network {name}"), &e)),
    }
}

async fn remove_volume(docker: &Docker, name: &str) -> Result<()> {
    match docker.remove_volume(name, Some(RemoveVolumeOptionsBuilder::new().force(true).build())).await {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(engine_error(&format!("removing volume {name}"), &e)),
    }
}

/// Every container, network and volume labelled with one lab's state
/// directory: `(id or name, labels)`.
#[derive(Debug, Default)]
struct LabResources {
    containers: Vec<(String, HashMap<String, String>)>,
    networks: Vec<(String, HashMap<String, String>)>,
    volumes: Vec<(String, HashMap<String, String>)>,
}

impl LabResources {
    async fn list(docker: &Docker, dir: &str) -> Result<Self> {
        let filters = label_filter(LABEL_LAB, dir);
        let containers = docker
            .list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build()))
            .await
            .map_err(|e| engine_error("listing the lab's containers", &e))?
            .into_iter()
            .filter_map(|c| Some((c.id?, c.labels.unwrap_or_default())))
            .collect();
        let networks = docker
            .list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|e| engine_error("listing the lab's networks", &e))?
            .into_iter()
            .filter_map(|n| Some((n.name?, n.labels.unwrap_or_default())))
            .collect();
        let volumes = docker
            .list_volumes(Some(ListVolumesOptionsBuilder::new().filters(&filters).build()))
            .await
            .map_err(|e| engine_error("listing the lab's volumes", &e))?
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.name, v.labels))
            .collect();
        Ok(Self { containers, networks, volumes })
    }
}

/// Runs `fut` to completion from synchronous code that may itself be inside
/// a Tokio runtime (`is_running` is called from async code): on a scoped
/// thread with its own small runtime. `None` when that runtime cannot start.
fn block_on<F>(fut: F) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            Some(rt.block_on(fut))
        })
        .join()
        .ok()
        .flatten()
    })
}

/// Pulls `image:tag` unless the engine has it; the time spent, if any.
async fn pull(
    docker: &Docker,
    service: Service,
    image: &ImageRef,
    progress: &dyn Progress,
) -> Result<Option<Duration>> {
    let reference = image.reference();
    if docker.inspect_image(&reference).await.is_ok() {
        return Ok(None);
    }
    progress.step(service, &format!("pulling {reference} (once)"));
    let t = Instant::now();
    // The request it hands back is not needed: containers are started from specs.
    let _request = GenericImage::new(&image.image, &image.tag).pull_image().await.map_err(|e| {
        LabError::Containers(format!(
            "pulling {reference} failed: {e}; check the engine reaches its registry (`docker pull {reference}`), \
             or build the images here (FOURLEG_IMAGES=build), or use `--runtime native`"
        ))
    })?;
    Ok(Some(t.elapsed()))
}

#[async_trait]
impl Runtime for ContainersRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Containers
    }

    async fn host_address(&self) -> Result<Option<String>> {
        self.network_gateway().await
    }

    fn check(&self) -> Result<()> {
        match &self.config.images {
            ImageSource::Invalid(v) => {
                Err(LabError::Config(format!("FOURLEG_IMAGES={v} is neither `build` (the default) nor `pull`")))
            }
            ImageSource::Build | ImageSource::Pull => Ok(()),
        }
    }

    async fn prepare(&self, progress: &dyn Progress) -> Result<BTreeMap<Service, Duration>> {
        let docker = self.docker_answering().await?;
        self.route_testcontainers(&docker)?;
        let scope = self.scope()?;
        self.remove_orphans(&docker, &scope, progress).await?;
        let mut took = BTreeMap::new();
        let images = match &self.config.images {
            ImageSource::Invalid(_) => return Err(self.check().unwrap_err()),
            ImageSource::Build => {
                let t = Instant::now();
                let images = self.build_images(progress).await?;
                took.insert(Service::Keycloak, t.elapsed());
                images
            }
            ImageSource::Pull => {
                let images = LabImages::official();
                let (pg, bao, kc) = tokio::join!(
                    pull(&docker, Service::Postgres, &images.postgres, progress),
                    pull(&docker, Service::Openbao, &images.openbao, progress),
                    pull(&docker, Service::Keycloak, &images.keycloak, progress),
                );
                for (service, pulled) in [(Service::Postgres, pg?), (Service::Openbao, bao?), (Service::Keycloak, kc?)]
                {
                    if let Some(d) = pulled {
                        took.insert(service, d);
                    }
                }
                images
            }
        };
        *self.images.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(images);
        Ok(took)
    }

    async fn start_postgres(&self, plan: &PostgresPlan, progress: &dyn Progress) -> Result<Started> {
        let scope = self.scope()?;
        self.run(&scope, postgres_spec(&scope, &self.images()?, plan), &plan.log, progress).await
    }

    async fn start_openbao(&self, plan: &OpenbaoPlan, progress: &dyn Progress) -> Result<Started> {
        let scope = self.scope()?;
        let spec = openbao_spec(&scope, &self.images()?, plan);
        if !self.config.state_path("openbao/init.json").exists() {
            // Without its unseal key an initialised OpenBao is useless; start
            // from an empty volume, which the orchestrator initialises.
            let docker = self.docker_answering().await?;
            remove_stale(&docker, &spec).await?;
            for v in &spec.volumes {
                remove_volume(&docker, &v.name).await?;
            }
        }
        self.run(&scope, spec, &plan.log, progress).await
    }

    async fn start_keycloak(&self, plan: &KeycloakPlan, progress: &dyn Progress) -> Result<Started> {
        // `plan.db_port` is Postgres's host port; the container uses the
        // lab network instead (see `keycloak_spec`).
        let scope = self.scope()?;
        self.run(&scope, keycloak_spec(&scope, &self.images()?, plan), &plan.log, progress).await
    }

    fn is_running(&self, record: &ServiceRecord) -> bool {
        let Handle::Container { id } = &record.handle else { return false };
        block_on(async move {
            let Ok(docker) = self.docker_answering().await else { return false };
            let inspect = tokio::time::timeout(ENGINE_TIMEOUT, docker.inspect_container(id, None)).await;
            matches!(inspect, Ok(Ok(c)) if c.state.as_ref().and_then(|s| s.running) == Some(true))
        })
        .unwrap_or(false)
    }

    async fn stop(&self, record: &ServiceRecord) -> Result<()> {
        let Handle::Container { id } = &record.handle else {
            return Err(LabError::Config(format!(
                "{} was started as a process, not a container; stop it with the native runtime",
                record.service
            )));
        };
        let docker = self.docker_answering().await?;
        // Postgres's image stops on SIGINT (fast shutdown), the others on SIGTERM.
        let opts = StopContainerOptionsBuilder::new().t(STOP_GRACE_SECS).build();
        match docker.stop_container(id, Some(opts)).await {
            // 304: already stopped.
            Ok(()) | Err(DockerError::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(engine_error(&format!("stopping {} (container {id})", record.service), &e)),
        }
        // Data is in named volumes; the container itself is not reused.
        remove(&docker, id).await
    }

    async fn resources(&self) -> Vec<String> {
        let (Ok(docker), Ok(dir)) = (self.docker_answering().await, self.absolute_state_dir()) else {
            return Vec::new();
        };
        let filters = label_filter(LABEL_LAB, &dir);
        let mut out = Vec::new();
        if let Ok(list) =
            docker.list_containers(Some(ListContainersOptionsBuilder::new().all(true).filters(&filters).build())).await
        {
            for c in list {
                let name = c.names.and_then(|n| n.first().cloned()).unwrap_or_default();
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                out.push(format!("container {} ({state})", name.trim_start_matches('/')));
            }
        }
        if let Ok(LabResources { networks, volumes, .. }) = LabResources::list(&docker, &dir).await {
            out.extend(networks.into_iter().map(|(n, _)| format!("network {n}")));
            out.extend(volumes.into_iter().map(|(v, _)| format!("volume {v}")));
        }
        out
    }

    async fn release(&self) -> Result<()> {
        let docker = self.docker_answering().await.map_err(|e| {
            LabError::Containers(format!(
                "{e}\nthe lab's containers and network stay until `fourleg down` runs with the engine up"
            ))
        })?;
        self.reap(&docker).await
    }

    async fn purge(&self) -> Result<()> {
        let docker = self.docker_answering().await.map_err(|e| {
            LabError::Containers(format!(
                "{e}\nthe lab's containers, volumes and network stay until `fourleg down --purge` runs with the engine up"
            ))
        })?;
        self.reap(&docker).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Silent;
    use std::collections::BTreeSet;

    fn official() -> LabImages {
        LabImages::official()
    }

    #[test]
    fn built_images_are_read_from_the_build_script_output() {
        let out = "postgres=fourleg/postgres:15-0123456789ab\nopenbao=fourleg/openbao:2.7.2-aa\n\
                   keycloak=fourleg/keycloak:26.7.3-bb\n";
        let images = LabImages::parse(out).unwrap();
        assert_eq!(images.postgres, ImageRef { image: "fourleg/postgres".into(), tag: "15-0123456789ab".into() });
        assert_eq!(images.keycloak.reference(), "fourleg/keycloak:26.7.3-bb");
        assert!(LabImages::parse("postgres=fourleg/postgres:15-x\nopenbao=fourleg/openbao:2").is_none());
        // A registry with a port is not a tag.
        assert!(LabImages::parse("postgres=host:5000/pg\nopenbao=a:b\nkeycloak=c:d").is_none());
    }

    fn scope() -> LabScope {
        LabScope { id: "t3st1d0000".into(), dir: "/home/dev/fourleg/.lab".into() }
    }

    const PG_SUPER: &str = "pg-superuser-secret-value";
    const KC_DB: &str = "kc-db-secret-value";
    const KC_ADMIN: &str = "kc-admin-secret-value";

    fn pg_plan() -> PostgresPlan {
        PostgresPlan {
            port: 41001,
            superuser_password: Secret::new(PG_SUPER),
            log: "/home/dev/fourleg/.lab/logs/postgres.log".into(),
        }
    }

    fn bao_plan() -> OpenbaoPlan {
        OpenbaoPlan { port: 41002, cluster_port: 41003, log: "/home/dev/fourleg/.lab/logs/openbao.log".into() }
    }

    fn kc_plan() -> KeycloakPlan {
        KeycloakPlan {
            port: 41004,
            management_port: 41005,
            admin_password: Secret::new(KC_ADMIN),
            db_port: 41001,
            db_user: "keycloak".into(),
            db_password: Secret::new(KC_DB),
            db_name: "keycloak".into(),
            log: "/home/dev/fourleg/.lab/logs/keycloak.log".into(),
        }
    }

    fn specs() -> [ContainerSpec; 3] {
        let s = scope();
        [
            postgres_spec(&s, &official(), &pg_plan()),
            openbao_spec(&s, &official(), &bao_plan()),
            keycloak_spec(&s, &official(), &kc_plan()),
        ]
    }

    fn env<'a>(spec: &'a ContainerSpec, key: &str) -> &'a EnvValue {
        &spec.env.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("{key} not set")).1
    }

    #[test]
    fn postgres_spec_snapshot() {
        insta::assert_debug_snapshot!(postgres_spec(&scope(), &official(), &pg_plan()));
    }

    #[test]
    fn openbao_spec_snapshot() {
        insta::assert_debug_snapshot!(openbao_spec(&scope(), &official(), &bao_plan()));
    }

    #[test]
    fn openbao_config_snapshot() {
        insta::assert_json_snapshot!(openbao_config(&scope(), &bao_plan()));
    }

    #[test]
    fn keycloak_spec_snapshot() {
        insta::assert_debug_snapshot!(keycloak_spec(&scope(), &official(), &kc_plan()));
    }

    #[test]
    fn images_and_tags_are_the_pinned_ones() {
        let [pg, bao, kc] = specs();
        assert_eq!((pg.image.as_str(), pg.tag.as_str()), pins::images::POSTGRES);
        assert_eq!((bao.image.as_str(), bao.tag.as_str()), pins::images::OPENBAO);
        assert_eq!((kc.image.as_str(), kc.tag.as_str()), pins::images::KEYCLOAK);
        assert_eq!(kc.tag, pins::KEYCLOAK_VERSION);
        assert_eq!(bao.tag, pins::OPENBAO_VERSION);
    }

    #[test]
    fn every_port_is_published_on_loopback_at_the_plan_port() {
        let [pg, bao, kc] = specs();
        let pairs = |s: &ContainerSpec| s.ports.iter().map(|p| (p.host, p.container)).collect::<Vec<_>>();
        assert_eq!(pairs(&pg), [(41001, 5432)]);
        assert_eq!(pairs(&bao), [(41002, 8200)]);
        assert_eq!(pairs(&kc), [(41004, 8080), (41005, 9000)]);
        for spec in [&pg, &bao, &kc] {
            assert!(spec.ports.iter().all(|p| p.host_ip == "127.0.0.1"), "{spec:?}");
            let bindings = port_bindings(&spec.ports);
            for p in &spec.ports {
                let b = &bindings[&format!("{}/tcp", p.container)].as_ref().unwrap()[0];
                assert_eq!(b.host_ip.as_deref(), Some("127.0.0.1"));
                assert_eq!(b.host_port.as_deref(), Some(p.host.to_string().as_str()));
            }
        }
        // Keycloak's management port is recorded like the native runtime's.
        assert_eq!(kc.ports[1].purpose, "management");
    }

    #[test]
    fn secrets_travel_only_as_secret_environment_values() {
        let [pg, _, kc] = specs();
        assert_eq!(env(&pg, "POSTGRES_PASSWORD").expose(), PG_SUPER);
        assert_eq!(env(&kc, "KC_DB_PASSWORD").expose(), KC_DB);
        assert_eq!(env(&kc, "KC_BOOTSTRAP_ADMIN_PASSWORD").expose(), KC_ADMIN);
        for spec in specs() {
            let dbg = format!("{spec:?}");
            for secret in [PG_SUPER, KC_DB, KC_ADMIN] {
                assert!(!dbg.contains(secret), "Debug of {} leaks a secret", spec.name);
                assert!(!spec.cmd.iter().any(|a| a.contains(secret)), "cmd of {} holds a secret", spec.name);
                assert!(!spec.labels.values().any(|v| v.contains(secret)));
                for (key, value) in &spec.env {
                    if let EnvValue::Plain(v) = value {
                        assert!(!v.contains(secret), "{key} of {} holds a secret in plain", spec.name);
                    }
                }
            }
        }
    }

    #[test]
    fn postgres_has_the_superuser_and_database_the_orchestrator_expects() {
        let [pg, _, _] = specs();
        assert_eq!(env(&pg, "POSTGRES_USER").expose(), "fourleg");
        assert_eq!(env(&pg, "POSTGRES_DB").expose(), "postgres");
        assert_eq!(pg.volumes, [VolumeSpec { name: "fourleg-t3st1d0000-postgres-data".into(), target: POSTGRES_DATA }]);
    }

    #[test]
    fn keycloak_reaches_postgres_by_its_name_on_the_lab_network() {
        let [pg, _, kc] = specs();
        assert_eq!(kc.network, pg.network);
        assert_eq!(env(&kc, "KC_DB_URL").expose(), format!("jdbc:postgresql://{}:5432/keycloak", pg.name));
        // The host port of the plan is not used inside the network.
        assert!(!env(&kc, "KC_DB_URL").expose().contains("41001"));
        assert_eq!(env(&kc, "KC_DB_USERNAME").expose(), "keycloak");
        assert_eq!(env(&kc, "KC_BOOTSTRAP_ADMIN_USERNAME").expose(), "admin");
    }

    #[test]
    fn keycloak_starts_in_production_mode_with_the_lab_features() {
        let [_, _, kc] = specs();
        assert_eq!(kc.cmd[0], "start");
        for flag in [
            "--http-enabled=true",
            "--hostname-strict=false",
            "--health-enabled=true",
            "--cache=local",
            "--db=postgres",
        ] {
            assert!(kc.cmd.iter().any(|a| a == flag), "missing {flag}");
        }
        assert!(kc.cmd.contains(&format!("--features={}", pins::KEYCLOAK_FEATURES)));
        // No fixed hostname: the issuer follows the host's 127.0.0.1:<port>.
        assert!(!kc.cmd.iter().any(|a| a.starts_with("--hostname=")));
        assert!(!kc.env.iter().any(|(k, _)| *k == "KC_HOSTNAME"));
    }

    #[test]
    fn openbao_is_a_raft_server_not_a_dev_server() {
        let [_, bao, _] = specs();
        assert_eq!(bao.cmd, ["server"]);
        assert!(!bao.cmd.iter().any(|a| a.contains("dev")));
        let config: serde_json::Value = serde_json::from_str(env(&bao, "BAO_LOCAL_CONFIG").expose()).unwrap();
        assert_eq!(config["storage"]["raft"]["path"], OPENBAO_DATA);
        assert!(config["storage"].get("inmem").is_none() && config["storage"].get("file").is_none());
        let tcp = &config["listener"][0]["tcp"];
        assert_eq!(tcp["address"], "0.0.0.0:8200");
        assert_eq!(tcp["tls_disable"], true);
        assert_eq!(config["disable_mlock"], true);
        assert_eq!(config["api_addr"], "http://127.0.0.1:41002");
        assert_eq!(config["cluster_addr"], format!("http://{}:8201", bao.name));
        assert_eq!(env(&bao, "SKIP_SETCAP").expose(), "true");
        // Raft data is on the named volume.
        assert_eq!(bao.volumes[0].target, OPENBAO_DATA);
        assert_eq!(bao.volumes[0].name, "fourleg-t3st1d0000-openbao-data");
    }

    #[test]
    fn every_resource_is_labelled_with_the_lab_and_its_service() {
        for spec in specs() {
            assert_eq!(spec.labels[LABEL_LAB], "/home/dev/fourleg/.lab");
            assert_eq!(spec.labels[LABEL_LAB_ID], "t3st1d0000");
            assert_eq!(spec.labels[LABEL_SERVICE], spec.service.name());
            assert_eq!(spec.name, format!("fourleg-t3st1d0000-{}", spec.service));
            assert_eq!(spec.network, "fourleg-t3st1d0000");
        }
    }

    #[test]
    fn the_request_carries_the_spec() {
        for spec in specs() {
            let req = request(&spec);
            assert_eq!(req.descriptor(), format!("{}:{}", spec.image, spec.tag));
            assert_eq!(req.container_name().as_deref(), Some(spec.name.as_str()));
            assert_eq!(req.network().as_deref(), Some(spec.network.as_str()));
            assert_eq!(req.labels(), &spec.labels);
            assert_eq!(req.cmd().collect::<Vec<_>>(), spec.cmd);
            let env: BTreeMap<String, String> = req.env_vars().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            assert_eq!(env.len(), spec.env.len());
            for (key, value) in &spec.env {
                assert_eq!(env[*key], value.expose());
            }
            let mounts: Vec<_> = req.mounts().map(|m| (m.source().unwrap(), m.target().unwrap())).collect();
            let want: Vec<_> = spec.volumes.iter().map(|v| (v.name.as_str(), v.target)).collect();
            assert_eq!(mounts, want);
            let mapped: Vec<_> = req.ports().unwrap().iter().map(|p| (p.host_port(), p.container_port())).collect();
            let want: Vec<_> = spec.ports.iter().map(|p| (p.host, ContainerPort::Tcp(p.container))).collect();
            assert_eq!(mapped, want);
            // What the engine is asked: bindings on loopback only.
            let mut hc = HostConfig::default();
            (req.host_config_modifier().expect("a host-config modifier"))(&mut hc);
            assert_eq!(hc.port_bindings, Some(port_bindings(&spec.ports)));
            // Kept after the handle drops.
            assert_eq!(req.reuse(), ReuseDirective::Always);
            // Readiness is the orchestrator's: testcontainers only waits for "running".
            assert!(req.ready_conditions().is_empty());
        }
    }

    #[test]
    fn the_engine_is_found_as_testcontainers_finds_it() {
        let home = Some(PathBuf::from("/home/dev"));
        let none = |_: &str| None;
        let env_host = |k: &str| (k == "DOCKER_HOST").then(|| "tcp://10.0.0.2:2375".to_owned());
        assert_eq!(docker_host(env_host, |_| true, home.clone()), "tcp://10.0.0.2:2375");
        assert_eq!(docker_host(none, |_| false, home.clone()), "unix:///var/run/docker.sock");
        let desktop = |p: &str| p == "/home/dev/.docker/desktop/docker.sock";
        assert_eq!(docker_host(none, desktop, home.clone()), "unix:///home/dev/.docker/desktop/docker.sock");
        let rt = |k: &str| (k == "XDG_RUNTIME_DIR").then(|| "/run/user/1000".to_owned());
        let rootless = |p: &str| p.starts_with("/run/user/1000");
        assert_eq!(docker_host(rt, rootless, home), "unix:///run/user/1000/.docker/run/docker.sock");
    }

    fn offline_runtime(dir: &Path) -> ContainersRuntime {
        let mut rt = ContainersRuntime::new(LabConfig::new(dir));
        rt.docker_host = Some(format!("unix://{}/no-such-docker.sock", dir.display()));
        rt
    }

    #[tokio::test]
    async fn auto_says_why_it_does_not_pick_containers() {
        let dir = tempfile::tempdir().unwrap();
        let why = offline_runtime(dir.path()).availability().await.unwrap_err();
        assert!(why.contains("no docker engine answers"), "{why}");
    }

    #[test]
    fn an_unknown_image_source_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut rt = offline_runtime(dir.path());
        rt.config.images = ImageSource::Invalid("registry".into());
        let err = rt.check().unwrap_err().to_string();
        assert!(err.contains("FOURLEG_IMAGES=registry"), "{err}");
    }

    #[tokio::test]
    async fn prepare_without_an_engine_says_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let err = offline_runtime(dir.path()).prepare(&Silent).await.unwrap_err();
        assert!(matches!(err, LabError::Containers(_)));
        let msg = err.to_string();
        assert!(msg.contains("no docker engine answers"), "{msg}");
        assert!(msg.contains("start docker"), "{msg}");
        assert!(msg.contains("--runtime native"), "{msg}");
    }

    #[tokio::test]
    async fn without_an_engine_nothing_runs_and_stop_fails_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let rt = offline_runtime(dir.path());
        let record = ServiceRecord {
            service: Service::Keycloak,
            version: pins::KEYCLOAK_VERSION.into(),
            host: LOOPBACK.into(),
            port: 41004,
            extra_ports: BTreeMap::new(),
            url: "http://127.0.0.1:41004".into(),
            handle: Handle::Container { id: "0123abcd".into() },
            log: dir.path().join("logs/keycloak.log"),
            started_at: 0,
            startup_ms: 0,
        };
        // From async code, as the orchestrator calls it.
        assert!(!rt.is_running(&record));
        assert!(rt.stop(&record).await.unwrap_err().to_string().contains("--runtime native"));
        let process = ServiceRecord { handle: Handle::Process { pid: 1, start_ticks: None }, ..record };
        assert!(!rt.is_running(&process));
    }

    #[test]
    fn the_lab_id_is_made_once_per_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        let rt = offline_runtime(dir.path());
        let first = rt.scope().unwrap();
        assert_eq!(first, rt.scope().unwrap());
        // A later command (a new runtime) reads the same id back.
        assert_eq!(first, offline_runtime(dir.path()).scope().unwrap());
        assert!(first.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert!(Path::new(&first.dir).is_absolute());
        let other = offline_runtime(tempfile::tempdir().unwrap().path()).scope().unwrap();
        assert_ne!(first.id, other.id);
    }

    /// `docker/compose.yaml` runs this runtime's containers: the same images
    /// (the official ones by default, the built ones through the env file of
    /// `docker/build-images.sh`), commands, environment, loopback ports and
    /// volumes, with every secret from a required variable; and it keeps to
    /// what Debian's docker-compose 1.29 reads (no `configs:`, no `name:`).
    #[test]
    fn the_compose_file_matches_the_runtime() {
        use yaml_rust2::{Yaml, YamlLoader};
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docker/compose.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        // The plans' ports stand for the file's port variables.
        for (var, port) in [
            ("FOURLEG_POSTGRES_PORT:-5432", 41001),
            ("FOURLEG_OPENBAO_PORT:-8200", 41002),
            ("FOURLEG_KEYCLOAK_PORT:-8080", 41004),
            ("FOURLEG_KEYCLOAK_MANAGEMENT_PORT:-9000", 41005),
        ] {
            assert!(text.contains(&format!("${{{var}}}")), "compose.yaml lacks ${{{var}}}");
            text = text.replace(&format!("${{{var}}}"), &port.to_string());
        }
        let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
        assert!(doc["configs"].is_badvalue() && doc["name"].is_badvalue(), "docker-compose 1.29 reads neither");
        assert_eq!(doc["services"].as_hash().map(yaml_rust2::yaml::Hash::len), Some(3));
        let str_of = |y: &Yaml| y.as_str().map_or_else(|| format!("{y:?}"), str::to_owned);
        // Containers are `fourleg-<id>-<service>` here, `<service>` there.
        let local = |v: &str| v.replace(&format!("fourleg-{}-", scope().id), "");
        for spec in specs() {
            let name = spec.service.name();
            let svc = &doc["services"][name];
            assert!(!svc.is_badvalue(), "compose.yaml lacks {name}");
            let variable = format!("FOURLEG_{}_IMAGE", name.to_uppercase());
            assert_eq!(str_of(&svc["image"]), format!("${{{variable}:-{}:{}}}", spec.image, spec.tag), "{name}");
            let cmd: Vec<String> = svc["command"].as_vec().unwrap().iter().map(str_of).collect();
            assert_eq!(cmd, spec.cmd, "{name}: command");

            let env = svc["environment"].as_hash().unwrap();
            let keys: BTreeSet<String> = env.keys().map(str_of).collect();
            assert_eq!(keys, spec.env.iter().map(|(k, _)| (*k).to_owned()).collect(), "{name}: environment");
            for (key, value) in &spec.env {
                let got = str_of(&env[&Yaml::String((*key).to_owned())]);
                match value {
                    EnvValue::Secret(_) => assert!(
                        got.starts_with("${FOURLEG_") && got.contains(":?"),
                        "{name} {key}: a secret comes from a required variable, not {got}"
                    ),
                    EnvValue::Plain(v) if *key == "BAO_LOCAL_CONFIG" => assert_eq!(
                        serde_json::from_str::<serde_json::Value>(&got).unwrap(),
                        serde_json::from_str::<serde_json::Value>(&local(v)).unwrap(),
                        "{name} {key}"
                    ),
                    EnvValue::Plain(v) => assert_eq!(got, local(v), "{name} {key}"),
                }
            }

            let ports: Vec<String> = svc["ports"].as_vec().unwrap().iter().map(str_of).collect();
            let want: Vec<String> =
                spec.ports.iter().map(|p| format!("{}:{}:{}", p.host_ip, p.host, p.container)).collect();
            assert_eq!(ports, want, "{name}: ports");
            let volumes: Vec<String> =
                svc["volumes"].as_vec().map_or_else(Vec::new, |v| v.iter().map(str_of).collect());
            let want: Vec<String> = spec.volumes.iter().map(|v| format!("{name}-data:{}", v.target)).collect();
            assert_eq!(volumes, want, "{name}: volumes");
        }
    }
}
