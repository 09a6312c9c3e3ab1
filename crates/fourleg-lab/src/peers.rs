//! Peers: other real implementations the lab can run beside Keycloak
//! (`fixtures/peers/<name>/peer.toml`), so the matrix has more columns.
//!
//! A peer is described as data, never as a special case in code: how to
//! install it into the cache, the command that runs it, and the URL path that
//! answers when it is ready. It gets every lab secret as
//! `FOURLEG_SECRET_<CLIENT>` and `FOURLEG_PASSWORD_<USER>`, runs on a free
//! port of 127.0.0.1 with its log in the state directory, and is stopped by
//! `fourleg down`. It runs as the lab does: a local process, or (containers
//! runtime) a container of an image built from its install
//! ([`crate::runtime::host_programs`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::LabConfig;
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::health;
use crate::runtime::native::process;
use crate::state::{Credentials, Handle};
use crate::LOOPBACK;

/// `fixtures/peers/<name>/peer.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSpec {
    /// The directory name under `fixtures/peers/`.
    pub name: String,
    /// Shorter names accepted by `--with` (`spring`).
    #[serde(default)]
    pub aliases: Vec<String>,
    pub summary: String,
    pub version: String,
    #[serde(default)]
    pub install: Install,
    pub run: Run,
    pub ready: Ready,
    /// The peer's directory (not part of the file).
    #[serde(skip)]
    pub dir: PathBuf,
}

/// What to install before the first start: one kind per peer, or none.
///
/// In `peer.toml` each kind is its own key of `[install]`
/// (`python_requirements = "…"`, `[install.maven]`, `[install.go]`); giving
/// two is an error.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "RawInstall")]
pub enum Install {
    /// Nothing to install: the command runs what the machine has.
    #[default]
    Nothing,
    /// A pip requirements file: installed into a virtualenv in the cache.
    /// The command may use `{python}`, the venv's interpreter.
    Python(PathBuf),
    /// A Maven project in the peer's directory, built in the cache.
    Maven(MavenBuild),
    /// A Go module in the peer's directory, built in the cache.
    Go(GoBuild),
}

/// `[install]` as written; [`Install`] is what it means.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstall {
    #[serde(default)]
    python_requirements: Option<PathBuf>,
    #[serde(default)]
    maven: Option<MavenBuild>,
    #[serde(default)]
    go: Option<GoBuild>,
}

impl TryFrom<RawInstall> for Install {
    type Error = String;

    fn try_from(raw: RawInstall) -> std::result::Result<Self, String> {
        match (raw.python_requirements, raw.maven, raw.go) {
            (None, None, None) => Ok(Self::Nothing),
            (Some(req), None, None) => Ok(Self::Python(req)),
            (None, Some(mvn), None) => Ok(Self::Maven(mvn)),
            (None, None, Some(go)) => Ok(Self::Go(go)),
            _ => Err("install: give only one of `python_requirements`, `maven` and `go`".into()),
        }
    }
}

/// `[install.maven]`: the project (`pom.xml` and `src/`) is copied into the
/// cache and built there with `mvn package`, so the checkout stays clean and
/// a changed source builds afresh. The command may use `{artifact}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MavenBuild {
    /// The built file, relative to the project (e.g. `target/app.jar`).
    pub artifact: PathBuf,
    /// Extra `mvn` arguments (default: `-B -q package -DskipTests`).
    #[serde(default = "default_maven_goals")]
    pub args: Vec<String>,
}

fn default_maven_goals() -> Vec<String> {
    ["-B", "-q", "package", "-DskipTests"].map(String::from).to_vec()
}

/// `[install.go]`: a Go module in the peer's directory (`go.mod`, `go.sum`
/// and its `.go` files) whose `go.mod` pins the product's module version. It
/// is copied into the cache and built there with the machine's Go toolchain
/// (`go build`), never another one (`GOTOOLCHAIN=local`). Modules and build
/// objects are cached under `<cache>/go/` (`GOPATH`, `GOMODCACHE`,
/// `GOCACHE`), so a CI can keep them between runs; a changed module builds
/// afresh. The command may use `{artifact}`, the built binary.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoBuild {
    /// The binary's file name in the build directory (e.g. `hydra`).
    pub binary: String,
    /// The package to build, relative to the module (default `.`).
    #[serde(default = "default_go_package")]
    pub package: String,
    /// Build tags (`go build -tags a,b`).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether the build needs cgo (`CGO_ENABLED=1`, and a C compiler).
    #[serde(default)]
    pub cgo: bool,
}

fn default_go_package() -> String {
    ".".into()
}

/// What an install produced, for the command's placeholders.
#[derive(Debug, Clone, Default)]
struct Installed {
    python: Option<PathBuf>,
    artifact: Option<PathBuf>,
}

/// The command that runs the peer. It runs in the peer's own directory of
/// the lab state (`{state}`), never in the source tree, so whatever it writes
/// relative to where it runs stays in the state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// `{python}`, `{artifact}`, `{port}`, `{state}` and `{dir}` (the
    /// peer's fixture directory, holding its `peer.toml`) are replaced, each
    /// by an absolute path.
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// When the peer is ready: `GET http://127.0.0.1:<port><path>` answers 200.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    pub path: String,
    #[serde(default = "default_ready_timeout")]
    pub timeout_s: u64,
}

fn default_ready_timeout() -> u64 {
    60
}

/// A running (or last known) peer, in `<state>/peers.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerRecord {
    pub name: String,
    pub version: String,
    pub url: String,
    pub port: u16,
    pub handle: Handle,
    pub log: PathBuf,
    pub startup_ms: u64,
}

fn peers_path(config: &LabConfig) -> PathBuf {
    config.state_path("peers.json")
}

/// The recorded peers.
pub fn load(config: &LabConfig) -> Result<BTreeMap<String, PeerRecord>> {
    Ok(fsutil::read_json(&peers_path(config))?.unwrap_or_default())
}

fn save(config: &LabConfig, peers: &BTreeMap<String, PeerRecord>) -> Result<()> {
    fsutil::write_json(&peers_path(config), peers)
}

/// The names of the peers in `fixtures/peers/` that have a `peer.toml`.
#[must_use]
pub fn available(fixtures: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(fixtures.join("peers"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("peer.toml").is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

impl PeerSpec {
    /// Reads `fixtures/peers/<name>/peer.toml`, `name` being the peer's name
    /// or one of its aliases.
    pub fn load(fixtures: &Path, name: &str) -> Result<Self> {
        let canonical = if fixtures.join("peers").join(name).join("peer.toml").is_file() {
            name.to_owned()
        } else {
            available(fixtures)
                .into_iter()
                .find(|n| {
                    std::fs::read_to_string(fixtures.join("peers").join(n).join("peer.toml"))
                        .ok()
                        .and_then(|t| toml::from_str::<PeerSpec>(&t).ok())
                        .is_some_and(|p| p.aliases.iter().any(|a| a == name))
                })
                .unwrap_or_else(|| name.to_owned())
        };
        let name = canonical.as_str();
        let dir = fixtures.join("peers").join(name);
        let path = dir.join("peer.toml");
        let text = std::fs::read_to_string(&path).map_err(|_| {
            LabError::Config(format!(
                "no peer `{name}` ({} missing); known peers: {}",
                path.display(),
                available(fixtures).join(", ")
            ))
        })?;
        let mut spec: PeerSpec = toml::from_str(&text)
            .map_err(|e: toml::de::Error| LabError::Fixture { path: path.clone(), message: e.to_string() })?;
        if spec.run.command.is_empty() {
            return Err(LabError::Fixture { path, message: "run.command is empty".into() });
        }
        if spec.name != name {
            return Err(LabError::Fixture {
                path,
                message: format!("name = {:?} must be the directory's name, {name:?}", spec.name),
            });
        }
        spec.dir = dir;
        Ok(spec)
    }
}

/// `FOURLEG_SECRET_MCP_SERVER` for client `mcp-server`.
#[must_use]
pub fn env_name(prefix: &str, id: &str) -> String {
    format!("{prefix}{}", id.to_ascii_uppercase().replace('-', "_"))
}

/// After a build command succeeded: its artifact must exist; the build
/// directory is then marked installed, so the next start reuses it.
fn built(spec: &PeerSpec, build: &Path, artifact: PathBuf, tool: &str, log: &Path) -> Result<PathBuf> {
    if !artifact.is_file() {
        return Err(LabError::Fetch {
            what: format!("peer {}", spec.name),
            message: format!("{tool} succeeded but {} was not built", artifact.display()),
            log: log.to_owned(),
        });
    }
    std::fs::write(build.join(".fourleg-installed"), b"").map_err(|e| LabError::io("marking the build", e))?;
    Ok(artifact)
}

/// Runs an install command, its output going to `log`.
fn run_logged(spec: &PeerSpec, cmd: &mut Command, what: &str, log: &Path) -> Result<()> {
    let out = cmd.output().map_err(|e| LabError::io(format!("running {what}"), e))?;
    let _ = std::fs::write(log, [out.stdout.as_slice(), out.stderr.as_slice()].concat());
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Fetch {
            what: format!("peer {}", spec.name),
            message: format!("{what}: {}\n{}", out.status, fsutil::tail(log, 15)),
            log: log.to_owned(),
        })
    }
}

/// What the first start of a peer will install, if anything: for progress
/// lines (`building with mvn (once, into …)`).
pub fn pending_install(config: &LabConfig, name: &str) -> Result<Option<String>> {
    let spec = PeerSpec::load(&config.fixtures_dir, name)?;
    let Some(dir) = install_dir(config, &spec)? else { return Ok(None) };
    if dir.join(".fourleg-installed").is_file() {
        return Ok(None);
    }
    let root = config.cache_dir.join("peers").join(&spec.name);
    Ok(Some(match spec.install {
        Install::Maven(_) => {
            format!("building with mvn (once, into {}; a few minutes when Maven's cache is cold)", root.display())
        }
        Install::Go(_) => format!(
            "building with go (once, into {}; several minutes when the Go caches under {} are cold)",
            root.display(),
            config.cache_dir.join("go").display()
        ),
        Install::Python(_) | Install::Nothing => format!("installing with pip (once, into {})", root.display()),
    }))
}

/// Where a peer's install lives in the cache, one directory per content of
/// what it installs from (the requirements file, or the Maven project), so an
/// edit installs afresh; `None` when the peer installs nothing.
fn install_dir(config: &LabConfig, spec: &PeerSpec) -> Result<Option<PathBuf>> {
    let content = match &spec.install {
        Install::Python(req) => {
            let path = spec.dir.join(req);
            std::fs::read(&path).map_err(|e| LabError::Fixture { path, message: e.to_string() })?
        }
        Install::Maven(_) => project_content(spec, &maven_sources(&spec.dir))?,
        Install::Go(go) => {
            // The build's options are part of what it is built from.
            let mut content = format!("{go:?}\0").into_bytes();
            content.extend(project_content(spec, &go_sources(&spec.dir))?);
            content
        }
        Install::Nothing => return Ok(None),
    };
    Ok(Some(config.cache_dir.join("peers").join(&spec.name).join(fourleg_core::hash::fnv1a_hex(&content))))
}

/// A project's files (a Maven peer's `pom.xml` and `src/`, a Go peer's
/// module) as bytes, paths included.
fn project_content(spec: &PeerSpec, files: &[PathBuf]) -> Result<Vec<u8>> {
    let mut content = Vec::new();
    for f in files {
        let bytes = std::fs::read(spec.dir.join(f))
            .map_err(|e| LabError::Fixture { path: spec.dir.join(f), message: e.to_string() })?;
        content.extend_from_slice(f.to_string_lossy().as_bytes());
        content.push(0);
        content.extend_from_slice(&bytes);
        content.push(0);
    }
    Ok(content)
}

/// Installs what the peer needs into the cache (once per content).
fn install(config: &LabConfig, spec: &PeerSpec, log: &Path) -> Result<Installed> {
    let Some(dir) = install_dir(config, spec)? else { return Ok(Installed::default()) };
    match &spec.install {
        Install::Python(req) => {
            install_python(&dir, spec, req, log).map(|python| Installed { python: Some(python), artifact: None })
        }
        Install::Maven(mvn) => build_maven(&dir, config, spec, mvn, log)
            .map(|artifact| Installed { python: None, artifact: Some(artifact) }),
        Install::Go(go) => {
            build_go(&dir, config, spec, go, log).map(|artifact| Installed { python: None, artifact: Some(artifact) })
        }
        Install::Nothing => Ok(Installed::default()),
    }
}

fn install_python(venv: &Path, spec: &PeerSpec, req: &Path, log: &Path) -> Result<PathBuf> {
    let req_path = spec.dir.join(req);
    let python = venv.join("bin/python");
    if venv.join(".fourleg-installed").is_file() {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(venv);
    run_logged(spec, Command::new("python3").args(["-m", "venv"]).arg(venv), "python3 -m venv", log)?;
    run_logged(
        spec,
        Command::new(venv.join("bin/pip"))
            .args(["install", "--disable-pip-version-check", "--no-input", "-r"])
            .arg(&req_path),
        "pip install",
        log,
    )?;
    std::fs::write(venv.join(".fourleg-installed"), b"").map_err(|e| LabError::io("marking the venv", e))?;
    Ok(python)
}

/// The Maven project's files (`pom.xml` and everything under `src/`),
/// relative to the peer's directory, sorted.
fn maven_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("pom.xml")];
    let mut stack = vec![PathBuf::from("src")];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else { continue };
        for e in entries.flatten() {
            let child = rel.join(e.file_name());
            if e.path().is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    out
}

fn build_maven(build: &Path, config: &LabConfig, spec: &PeerSpec, mvn: &MavenBuild, log: &Path) -> Result<PathBuf> {
    let files = maven_sources(&spec.dir);
    let artifact = build.join(&mvn.artifact);
    if build.join(".fourleg-installed").is_file() && artifact.is_file() {
        return Ok(artifact);
    }
    copy_project(spec, &files, build)?;
    run_logged(
        spec,
        Command::new("mvn")
            .args(&mvn.args)
            .arg(format!("-Dmaven.repo.local={}", config.cache_dir.join("maven").display()))
            .current_dir(build),
        "mvn package",
        log,
    )?;
    built(spec, build, artifact, "mvn", log)
}

/// Copies a project's files from the peer's directory into a fresh build
/// directory, so the checkout stays clean.
fn copy_project(spec: &PeerSpec, files: &[PathBuf], build: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(build);
    for f in files {
        let to = build.join(f);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| LabError::io("creating the build directory", e))?;
        }
        std::fs::copy(spec.dir.join(f), &to)
            .map_err(|e| LabError::io(format!("copying {} into the build directory", f.display()), e))?;
    }
    Ok(())
}

/// The Go module's files (`go.mod`, `go.sum` and every `.go` file, in
/// subdirectories too), relative to the peer's directory, sorted.
fn go_sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(dir.join(&rel)) else { continue };
        for e in entries.flatten() {
            let child = rel.join(e.file_name());
            if e.path().is_dir() {
                stack.push(child);
            } else if child.extension().is_some_and(|x| x == "go")
                || child == Path::new("go.mod")
                || child == Path::new("go.sum")
            {
                out.push(child);
            }
        }
    }
    out.sort();
    out
}

/// The environment of every `go` command: the caches under `<cache>/go/`,
/// the machine's toolchain only, and module files left writable so a cache
/// can be deleted with `rm -r`.
fn go_env(config: &LabConfig, go: &GoBuild) -> Vec<(&'static str, String)> {
    let root = config.cache_dir.join("go");
    vec![
        ("GOPATH", root.join("path").display().to_string()),
        ("GOMODCACHE", root.join("mod").display().to_string()),
        ("GOCACHE", root.join("build").display().to_string()),
        ("GOFLAGS", "-modcacherw".into()),
        ("GOTOOLCHAIN", "local".into()),
        ("CGO_ENABLED", if go.cgo { "1" } else { "0" }.into()),
    ]
}

fn build_go(build: &Path, config: &LabConfig, spec: &PeerSpec, go: &GoBuild, log: &Path) -> Result<PathBuf> {
    let artifact = build.join(&go.binary);
    if build.join(".fourleg-installed").is_file() && artifact.is_file() {
        return Ok(artifact);
    }
    let toolchain = crate::prereq::go_binary().ok_or_else(|| {
        LabError::MissingPrerequisites(vec![crate::prereq::missing_go(&format!("building the peer {}", spec.name))])
    })?;
    let files = go_sources(&spec.dir);
    if !files.iter().any(|f| f == Path::new("go.mod")) {
        return Err(LabError::Fixture {
            path: spec.dir.join("go.mod"),
            message: "[install.go] needs a Go module (go.mod) in the peer's directory".into(),
        });
    }
    copy_project(spec, &files, build)?;
    let mut cmd = Command::new(&toolchain);
    cmd.args(["build", "-trimpath", "-o"]).arg(&artifact);
    if !go.tags.is_empty() {
        cmd.arg(format!("-tags={}", go.tags.join(",")));
    }
    cmd.arg(&go.package).current_dir(build).envs(go_env(config, go));
    run_logged(spec, &mut cmd, "go build", log)?;
    built(spec, build, artifact, "go build", log)
}

async fn ready(url: &str) -> bool {
    health::http().get(url).send().await.is_ok_and(|r| r.status().is_success())
}

/// Starts a peer (or finds it running) and returns its record.
///
/// It runs as the lab runs: a container of an image built from its install
/// when the lab's state says `containers` (see
/// [`crate::runtime::host_programs`]), else a local process.
pub async fn up(config: &LabConfig, name: &str) -> Result<PeerRecord> {
    let spec = PeerSpec::load(&config.fixtures_dir, name)?;
    let name = spec.name.as_str();
    let mut peers = load(config)?;
    if let Some(rec) = peers.get(name) {
        if alive(config, &rec.handle).await && ready(&format!("{}{}", rec.url, spec.ready.path)).await {
            return Ok(rec.clone());
        }
        stop_one(config, rec).await?;
    }
    // A peer may run without the lab's services: the state may be new.
    fsutil::private_dir(&config.state_dir)?;
    let (_, clients, users) = crate::provision::keycloak::read_realm(&config.fixtures_dir)?;
    let creds = Credentials::load_or_generate(config, &clients, &users)?;
    let logs = config.state_path("logs");
    std::fs::create_dir_all(&logs).map_err(|e| LabError::io("creating the log directory", e))?;
    let begin = Instant::now();
    let install_log = logs.join(format!("peer-{name}-install.log"));
    let (cfg, sp, il) = (config.clone(), spec.clone(), install_log.clone());
    let installed = tokio::task::spawn_blocking(move || install(&cfg, &sp, &il))
        .await
        .map_err(|e| LabError::Config(e.to_string()))??;
    let port = crate::lab::free_port()?;
    let state = config.state_path("peers").join(name);
    fsutil::private_dir(&state)?;
    let mut env: Vec<(String, fourleg_core::Secret)> = Vec::new();
    for (client, secret) in &creds.clients {
        env.push((env_name("FOURLEG_SECRET_", client), secret.clone()));
    }
    for (user, password) in &creds.users {
        env.push((env_name("FOURLEG_PASSWORD_", user), password.clone()));
    }
    let log = logs.join(format!("peer-{name}.log"));
    let in_containers = matches!(
        crate::state::LabState::load(&config.state_dir)?.map(|s| s.runtime),
        Some(crate::config::RuntimeKind::Containers)
    ) && !matches!(spec.install, Install::Nothing);
    let (handle, mut child) = if in_containers {
        start_container(config, &spec, &installed, port, &state, env, &log).await?
    } else {
        let paths = Paths {
            port,
            state: state.display().to_string(),
            dir: crate::config::absolute(spec.dir.clone()).display().to_string(),
            python: installed.python.as_ref().map_or_else(|| "python3".into(), |p| p.display().to_string()),
            artifact: installed.artifact.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        };
        let argv: Vec<String> = spec.run.command.iter().map(|a| paths.fill(a)).collect();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).current_dir(&state);
        for (k, v) in &spec.run.env {
            cmd.env(k, paths.fill(v));
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v.expose())));
        let (child, handle) = process::spawn(&mut cmd, &log, None)?;
        (handle, Some(child))
    };
    let url = format!("http://{LOOPBACK}:{port}");
    let rec = PeerRecord {
        name: name.to_owned(),
        version: spec.version.clone(),
        url: url.clone(),
        port,
        handle,
        log: log.clone(),
        startup_ms: 0,
    };
    peers.insert(name.to_owned(), rec.clone());
    save(config, &peers)?;
    let probe = format!("{url}{}", spec.ready.path);
    let deadline = Instant::now() + Duration::from_secs(spec.ready.timeout_s);
    loop {
        if ready(&probe).await {
            break;
        }
        let exited = match child.as_mut() {
            Some(child) => child.try_wait().ok().flatten().map(|status| status.to_string()),
            None => (!alive(config, &rec.handle).await).then(|| "its container stopped".to_owned()),
        };
        if let Some(status) = exited {
            return Err(LabError::Config(format!(
                "peer {name} exited during start ({status}) (see {})\n--- last lines ---\n{}",
                log.display(),
                fsutil::tail(&log, 20)
            )));
        }
        if Instant::now() > deadline {
            let _ = stop_one(config, &rec).await;
            return Err(LabError::Config(format!(
                "peer {name} did not answer {probe} within {}s (see {})\n--- last lines ---\n{}",
                spec.ready.timeout_s,
                log.display(),
                fsutil::tail(&log, 20)
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rec = PeerRecord { startup_ms: u64::try_from(begin.elapsed().as_millis()).unwrap_or(u64::MAX), ..rec };
    peers.insert(name.to_owned(), rec.clone());
    save(config, &peers)?;
    Ok(rec)
}

/// What a peer's command and environment may name (`peer.toml`'s `[run]`).
struct Paths {
    port: u16,
    state: String,
    dir: String,
    python: String,
    artifact: String,
}

impl Paths {
    fn fill(&self, s: &str) -> String {
        s.replace("{port}", &self.port.to_string())
            .replace("{state}", &self.state)
            .replace("{dir}", &self.dir)
            .replace("{python}", &self.python)
            .replace("{artifact}", &self.artifact)
    }
}

/// Whether a peer's process or container runs.
async fn alive(config: &LabConfig, handle: &Handle) -> bool {
    match handle {
        Handle::Process { .. } => process::is_alive(handle),
        #[cfg(feature = "containers")]
        Handle::Container { id } => {
            crate::runtime::containers::ContainersRuntime::new(config.clone()).container_running(id).await
        }
        #[cfg(not(feature = "containers"))]
        Handle::Container { .. } => {
            let _ = config;
            false
        }
    }
}

/// Stops a peer's process or container, if it runs.
async fn stop_one(config: &LabConfig, rec: &PeerRecord) -> Result<()> {
    match &rec.handle {
        Handle::Process { .. } => {
            if process::is_alive(&rec.handle) {
                process::stop(&rec.handle, nix::sys::signal::Signal::SIGTERM, true, Duration::from_secs(15)).await?;
            }
            Ok(())
        }
        #[cfg(feature = "containers")]
        Handle::Container { id } => {
            crate::runtime::containers::ContainersRuntime::new(config.clone())
                .stop_program(id, &format!("peer {}", rec.name))
                .await
        }
        #[cfg(not(feature = "containers"))]
        Handle::Container { .. } => {
            let _ = config;
            Ok(())
        }
    }
}

/// The image kind (`docker/peer-<kind>/`) of a peer's install.
fn image_kind(install: &Install) -> Option<&'static str> {
    match install {
        Install::Maven(_) => Some("java"),
        Install::Python(_) => Some("python"),
        Install::Go(_) => Some("binary"),
        Install::Nothing => None,
    }
}

/// Starts a peer's container: its image built from its install (once per
/// content), its command with the image's paths, its state directory
/// mounted writable at the same path, on the host's network.
#[cfg(feature = "containers")]
async fn start_container(
    config: &LabConfig,
    spec: &PeerSpec,
    installed: &Installed,
    port: u16,
    state: &Path,
    env: Vec<(String, fourleg_core::Secret)>,
    log: &Path,
) -> Result<(Handle, Option<std::process::Child>)> {
    use crate::runtime::containers::{ContainersRuntime, EnvValue};
    use crate::runtime::host_programs::{absolute, current_user, Bind, ImageInput, ProgramSpec};

    let kind = image_kind(&spec.install).ok_or_else(|| {
        LabError::Config(format!("peer {} installs nothing, so it has no image; run the lab natively", spec.name))
    })?;
    let context = config.state_path("peers").join(format!("{}.image", spec.name));
    let (cfg, sp, inst, ctx) = (config.clone(), spec.clone(), installed.clone(), context.clone());
    tokio::task::spawn_blocking(move || image_context(&cfg, &sp, &inst, &ctx))
        .await
        .map_err(|e| LabError::Config(e.to_string()))??;
    let runtime = ContainersRuntime::new(config.clone());
    let image_log = config.state_path(format!("logs/peer-{}-image.log", spec.name));
    let image = runtime
        .program_image(
            ImageInput::Peer { kind, name: spec.name.clone(), version: spec.version.clone(), context: context.clone() },
            &image_log,
        )
        .await;
    let _ = std::fs::remove_dir_all(&context);
    let image = image?;
    let paths = Paths {
        port,
        state: absolute(state)?,
        dir: "/peer/fixture".into(),
        python: "/opt/venv/bin/python".into(),
        artifact: installed
            .artifact
            .as_ref()
            .and_then(|a| a.file_name())
            .map(|f| format!("/peer/artifact/{}", f.to_string_lossy()))
            .unwrap_or_default(),
    };
    let mut all_env: Vec<(String, EnvValue)> =
        spec.run.env.iter().map(|(k, v)| (k.clone(), EnvValue::Plain(paths.fill(v)))).collect();
    // Any user may run it: HOME must be somewhere it can write.
    all_env.push(("HOME".into(), EnvValue::Plain("/tmp".into())));
    all_env.extend(env.into_iter().map(|(k, v)| (k, EnvValue::Secret(v))));
    let (name, labels) = runtime.program_identity(&format!("peer-{}", spec.name))?;
    let program = ProgramSpec {
        name,
        image,
        cmd: spec.run.command.iter().map(|a| paths.fill(a)).collect(),
        env: all_env,
        binds: vec![Bind::writable(state)?],
        working_dir: Some(paths.state.clone()),
        user: current_user(),
        labels,
    };
    let id = runtime.start_program(&program, log).await?;
    Ok((Handle::Container { id }, None))
}

#[cfg(not(feature = "containers"))]
async fn start_container(
    _config: &LabConfig,
    spec: &PeerSpec,
    _installed: &Installed,
    _port: u16,
    _state: &Path,
    _env: Vec<(String, fourleg_core::Secret)>,
    _log: &Path,
) -> Result<(Handle, Option<std::process::Child>)> {
    Err(LabError::Config(format!(
        "peer {}: this fourleg was built without the containers runtime (cargo feature `containers`)",
        spec.name
    )))
}

/// Fills `context` with what a peer's image is built from (the build
/// script puts it at `peer/` of the build context): `fixture/` (the peer's
/// directory), and `artifact/<file>` (a jar, a binary) or
/// `requirements.txt` and `wheels/` (made once per install with the
/// install's own pip, so the image build needs no package index).
fn image_context(config: &LabConfig, spec: &PeerSpec, installed: &Installed, context: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(context);
    let peer = context;
    fsutil::copy_dir(&spec.dir, &peer.join("fixture"))?;
    if let Some(artifact) = &installed.artifact {
        let dir = peer.join("artifact");
        std::fs::create_dir_all(&dir).map_err(|e| LabError::io("creating the image context", e))?;
        let to = dir.join(artifact.file_name().unwrap_or_default());
        std::fs::copy(artifact, &to).map_err(|e| LabError::io(format!("copying {}", artifact.display()), e))?;
    }
    if let (Install::Python(req), Some(python)) = (&spec.install, &installed.python) {
        let req_path = spec.dir.join(req);
        std::fs::copy(&req_path, peer.join("requirements.txt"))
            .map_err(|e| LabError::io(format!("copying {}", req_path.display()), e))?;
        let venv = python.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
        let wheels = venv.join("wheels");
        if !wheels.join(".fourleg-complete").is_file() {
            let _ = std::fs::remove_dir_all(&wheels);
            let log = config.state_path(format!("logs/peer-{}-wheels.log", spec.name));
            run_logged(
                spec,
                Command::new(venv.join("bin/pip"))
                    .args(["wheel", "--disable-pip-version-check", "--no-input", "-w"])
                    .arg(&wheels)
                    .arg("-r")
                    .arg(&req_path),
                "pip wheel",
                &log,
            )?;
            std::fs::write(wheels.join(".fourleg-complete"), b"").map_err(|e| LabError::io("marking the wheels", e))?;
        }
        fsutil::copy_dir(&wheels, &peer.join("wheels"))?;
    }
    Ok(())
}

/// Running peers with whether they answer.
pub async fn status(config: &LabConfig) -> Result<Vec<(PeerRecord, bool)>> {
    let mut out = Vec::new();
    for rec in load(config)?.into_values() {
        let alive = alive(config, &rec.handle).await;
        let ok = alive
            && match PeerSpec::load(&config.fixtures_dir, &rec.name) {
                Ok(spec) => ready(&format!("{}{}", rec.url, spec.ready.path)).await,
                Err(_) => false,
            };
        if alive {
            out.push((rec, ok));
        }
    }
    Ok(out)
}

/// Stops every recorded peer; returns their names.
pub async fn down(config: &LabConfig) -> Result<Vec<String>> {
    let mut stopped = Vec::new();
    let peers = load(config)?;
    for rec in peers.values() {
        if alive(config, &rec.handle).await {
            stop_one(config, rec).await?;
            stopped.push(rec.name.clone());
        }
    }
    if !peers.is_empty() {
        save(config, &BTreeMap::new())?;
    }
    Ok(stopped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_follow_the_convention() {
        assert_eq!(env_name("FOURLEG_SECRET_", "mcp-server"), "FOURLEG_SECRET_MCP_SERVER");
    }

    #[test]
    fn the_committed_peers_parse() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let names = available(&fixtures);
        assert!(names.iter().any(|n| n == "idpyoidc"), "{names:?}");
        for n in names {
            PeerSpec::load(&fixtures, &n).unwrap();
        }
    }

    #[test]
    fn one_install_kind_per_peer() {
        let dir = tempfile::tempdir().unwrap();
        let peer = dir.path().join("peers/both");
        std::fs::create_dir_all(&peer).unwrap();
        std::fs::write(
            peer.join("peer.toml"),
            "name = \"both\"\nsummary = \"s\"\nversion = \"1\"\n[install]\npython_requirements = \"r.txt\"\n\
             [install.maven]\nartifact = \"target/a.jar\"\n[run]\ncommand = [\"java\"]\n[ready]\npath = \"/\"\n",
        )
        .unwrap();
        let err = PeerSpec::load(dir.path(), "both").unwrap_err().to_string();
        assert!(err.contains("only one of"), "{err}");
    }

    #[test]
    fn the_maven_build_hashes_the_pom_and_the_sources_only() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let spec = PeerSpec::load(&fixtures, "spring-authorization-server").unwrap();
        assert!(matches!(spec.install, Install::Maven(_)), "{:?}", spec.install);
        let files = maven_sources(&spec.dir);
        assert_eq!(files[0], PathBuf::from("pom.xml"));
        assert!(files.iter().any(|f| f.ends_with("application.yml")), "{files:?}");
        assert!(files.iter().all(|f| f == Path::new("pom.xml") || f.starts_with("src")), "{files:?}");
    }

    /// A Go peer in a temporary fixtures directory, and a lab configuration
    /// whose cache is there too.
    fn go_peer(main: &str) -> (tempfile::TempDir, LabConfig, PeerSpec) {
        let dir = tempfile::tempdir().unwrap();
        let peer = dir.path().join("fixtures/peers/gopeer");
        std::fs::create_dir_all(peer.join("internal")).unwrap();
        std::fs::write(
            peer.join("peer.toml"),
            "name = \"gopeer\"\nsummary = \"s\"\nversion = \"v1\"\n[install.go]\nbinary = \"srv\"\n\
             tags = [\"sqlite\"]\n[run]\ncommand = [\"{artifact}\"]\n[ready]\npath = \"/\"\n",
        )
        .unwrap();
        std::fs::write(peer.join("go.mod"), "module example.test/gopeer\n\ngo 1.22\n").unwrap();
        std::fs::write(peer.join("main.go"), main).unwrap();
        std::fs::write(peer.join("internal/x.go"), "package internal\n").unwrap();
        std::fs::write(peer.join("NOTES.md"), "not part of the build\n").unwrap();
        let mut config = LabConfig::new(dir.path().join("state"));
        config.fixtures_dir = dir.path().join("fixtures");
        config.cache_dir = dir.path().join("cache");
        let spec = PeerSpec::load(&config.fixtures_dir, "gopeer").unwrap();
        (dir, config, spec)
    }

    #[test]
    fn the_go_build_hashes_the_module_and_its_options_only() {
        let (_dir, config, spec) = go_peer("package main\nfunc main() {}\n");
        let Install::Go(go) = &spec.install else { panic!("{:?}", spec.install) };
        assert_eq!((go.binary.as_str(), go.package.as_str(), go.cgo), ("srv", ".", false));
        let files = go_sources(&spec.dir);
        assert_eq!(files, ["go.mod", "internal/x.go", "main.go"].map(PathBuf::from), "{files:?}");
        let before = install_dir(&config, &spec).unwrap().unwrap();
        assert!(before.starts_with(config.cache_dir.join("peers/gopeer")), "{before:?}");
        // Notes and the peer's configuration are not built: no new key.
        std::fs::write(spec.dir.join("NOTES.md"), "edited\n").unwrap();
        assert_eq!(install_dir(&config, &spec).unwrap().unwrap(), before);
        // A source edit is a new key, so a new build.
        std::fs::write(spec.dir.join("main.go"), "package main\nfunc main() { println() }\n").unwrap();
        assert_ne!(install_dir(&config, &spec).unwrap().unwrap(), before);
        // So is a changed build option.
        let mut tagged = spec.clone();
        let Install::Go(go) = &mut tagged.install else { unreachable!() };
        go.tags.clear();
        assert_ne!(install_dir(&config, &tagged).unwrap(), install_dir(&config, &spec).unwrap());
    }

    #[test]
    fn a_go_build_whose_key_is_unchanged_is_reused_without_a_toolchain() {
        let (_dir, config, spec) = go_peer("package main\nfunc main() {}\n");
        let build = install_dir(&config, &spec).unwrap().unwrap();
        std::fs::create_dir_all(&build).unwrap();
        std::fs::write(build.join("srv"), b"built before").unwrap();
        std::fs::write(build.join(".fourleg-installed"), b"").unwrap();
        assert!(pending_install(&config, "gopeer").unwrap().is_none());
        let log = config.cache_dir.join("install.log");
        let installed = install(&config, &spec, &log).unwrap();
        assert_eq!(installed.artifact, Some(build.join("srv")));
        assert_eq!(std::fs::read(build.join("srv")).unwrap(), b"built before");
    }

    #[test]
    fn go_builds_keep_their_caches_in_the_lab_cache_and_the_local_toolchain() {
        let (_dir, config, spec) = go_peer("package main\nfunc main() {}\n");
        let Install::Go(go) = &spec.install else { unreachable!() };
        let env: BTreeMap<_, _> = go_env(&config, go).into_iter().collect();
        for var in ["GOPATH", "GOMODCACHE", "GOCACHE"] {
            assert!(Path::new(&env[var]).starts_with(config.cache_dir.join("go")), "{var}={}", env[var]);
        }
        assert_eq!(env["GOTOOLCHAIN"], "local");
        assert_eq!(env["CGO_ENABLED"], "0");
        let pending = pending_install(&config, "gopeer").unwrap().unwrap();
        assert!(pending.contains("building with go"), "{pending}");
    }

    #[test]
    fn a_go_peer_builds_and_reuses_its_build() {
        if crate::prereq::go_binary().is_none() {
            eprintln!("skipped: no Go toolchain");
            return;
        }
        // Standard library only, no cgo; the Go caches are the test's own
        // (about 7 s on two busy cores, most of it compiling the runtime).
        let (dir, config, spec) = go_peer("package main\nfunc main() { println(\"ok\") }\n");
        let log = dir.path().join("install.log");
        let built = install(&config, &spec, &log).unwrap().artifact.unwrap();
        let out = Command::new(&built).output().unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains("ok"), "{out:?}");
        let modified = std::fs::metadata(&built).unwrap().modified().unwrap();
        assert_eq!(install(&config, &spec, &log).unwrap().artifact.unwrap(), built);
        assert_eq!(std::fs::metadata(&built).unwrap().modified().unwrap(), modified, "rebuilt");
    }

    #[test]
    fn a_peer_is_found_by_an_alias() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        assert_eq!(PeerSpec::load(&fixtures, "spring").unwrap().name, "spring-authorization-server");
    }

    #[test]
    fn an_unknown_peer_lists_the_known_ones() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let err = PeerSpec::load(&fixtures, "nope").unwrap_err().to_string();
        assert!(err.contains("idpyoidc"), "{err}");
    }
}
