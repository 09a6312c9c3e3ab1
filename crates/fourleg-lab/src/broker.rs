//! The reference broker as the lab's fourth service (`fourleg broker`).
//!
//! It is this project's own binary, already built. The native runtime runs
//! it as a host process; the containers runtime as a container of an image
//! made from that binary ([`start_container`], on the host's network; see
//! [`crate::runtime::host_programs`]). Either way it reaches Postgres,
//! OpenBao and Keycloak on the loopback ports both runtimes publish, with
//! the same configuration file. Its configuration is written to
//! `<state>/broker/broker.toml` on every start; it holds no secret: the
//! Postgres password goes to the process by environment
//! ([`PASSWORD_ENV`]), OpenBao's AppRole credential stays in its owner-only
//! file, client secrets are read from OpenBao KV at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::LabConfig;
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::progress::Progress;
use crate::provision::openbao::BaoFixture;
use crate::runtime::native::{process, record};
use crate::runtime::Started;
use crate::service::Service;
use crate::state::Credentials;
use crate::LOOPBACK;

/// The variable holding the broker's Postgres password.
pub const PASSWORD_ENV: &str = "FOURLEG_BROKER_PG_PASSWORD";

/// Where `up` writes the broker's configuration.
#[must_use]
pub fn config_path(config: &LabConfig) -> PathBuf {
    config.state_path("broker/broker.toml")
}

/// What the broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerPlan {
    pub port: u16,
    pub postgres_port: u16,
    pub openbao_url: String,
    /// Keycloak's base URL (the lab realm's issuer is under it).
    pub keycloak_url: String,
    /// Where the services reach the host, when not on loopback (containers:
    /// the lab network's gateway): the broker listens there too.
    pub host_address: Option<String>,
    pub log: PathBuf,
}

/// The broker's `broker.toml` for `plan` (no secret in it).
#[must_use]
pub fn render_config(config: &LabConfig, plan: &BrokerPlan, fixture: &BaoFixture) -> String {
    let q = |p: &Path| toml_string(&p.display().to_string());
    format!(
        r#"# Written by `fourleg up` on every start of the broker; edits are lost.
# A replica: `fourleg broker --config {this} --listen 127.0.0.1:<port>`
# with ${env} set to the broker's Postgres password.
listen = "{LOOPBACK}:{port}"
also_listen = [{also}]
issuer = "http://{LOOPBACK}:{port}"
catalog = {catalog}

[upstream]
issuer = "{kc}/realms/{realm}"

[postgres]
host = "{LOOPBACK}"
port = {pg}
dbname = "broker"
user = "broker"
password_env = "{env}"

[openbao]
url = "{bao}"
approle_file = {approle}
kv_mount = "{kv}"
transit_mount = "{transit}"
wrap_key = "broker-keywrap"
"#,
        this = config_path(config).display(),
        also = plan.host_address.as_ref().map(|h| toml_string(&format!("{h}:{}", plan.port))).unwrap_or_default(),
        env = PASSWORD_ENV,
        port = plan.port,
        catalog = q(&config.fixtures_dir.join("broker/catalog.toml")),
        kc = plan.keycloak_url.trim_end_matches('/'),
        realm = crate::provision::keycloak::REALM,
        pg = plan.postgres_port,
        bao = plan.openbao_url.trim_end_matches('/'),
        approle = q(&config.state_path("openbao/broker-approle.json")),
        kv = fixture.kv.mount,
        transit = fixture.transit.mount,
    )
}

/// A TOML string (quoted and escaped).
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The `fourleg` binary that serves the broker: [`LabConfig::broker_bin`].
fn binary(config: &LabConfig) -> Result<PathBuf> {
    let bin = config.broker_bin.clone().ok_or_else(|| {
        LabError::Config(
            "the lab does not know which `fourleg` binary serves the broker; set FOURLEG_BIN to its path".into(),
        )
    })?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(LabError::Config(format!(
            "the broker's binary {} does not exist; set FOURLEG_BIN to a built `fourleg`",
            bin.display()
        )))
    }
}

/// Checks what starting the broker needs, writing nothing.
pub fn check(config: &LabConfig) -> Result<()> {
    binary(config).map(|_| ())
}

/// Writes `broker.toml` for `plan` (owner-only, in an owner-only
/// directory) and returns its path.
fn write_config(config: &LabConfig, plan: &BrokerPlan) -> Result<PathBuf> {
    let fixture = BaoFixture::load(&config.fixtures_dir)?;
    let path = config_path(config);
    if let Some(dir) = path.parent() {
        fsutil::private_dir(dir)?;
    }
    fsutil::write_private(&path, render_config(config, plan, &fixture).as_bytes())?;
    Ok(path)
}

/// Writes the configuration and starts `fourleg broker` detached.
pub fn start(config: &LabConfig, plan: &BrokerPlan, creds: &Credentials, progress: &dyn Progress) -> Result<Started> {
    let bin = binary(config)?;
    let path = write_config(config, plan)?;
    progress.step(Service::Broker, &format!("starting on {LOOPBACK}:{}", plan.port));
    let mut cmd = Command::new(&bin);
    cmd.arg("broker")
        .arg("--config")
        .arg(&path)
        // By environment, never on the command line (`ps` shows argv).
        .env(PASSWORD_ENV, creds.postgres_broker.expose());
    let (child, handle) = process::spawn(&mut cmd, &plan.log, None)?;
    let url = format!("http://{LOOPBACK}:{}", plan.port);
    let record = record(Service::Broker, env!("CARGO_PKG_VERSION").into(), plan.port, url, handle, &plan.log);
    Ok(Started { record, child: Some(child) })
}

/// Writes the configuration and starts the broker's container (the
/// containers runtime): an image of this very binary, built once per
/// binary, run on the host's network with its configuration, its AppRole
/// file and its catalog mounted read-only, and nothing else of the state
/// directory (which holds every lab secret).
#[cfg(feature = "containers")]
pub async fn start_container(
    config: &LabConfig,
    plan: &BrokerPlan,
    creds: &Credentials,
    progress: &dyn Progress,
) -> Result<Started> {
    use crate::runtime::containers::{ContainersRuntime, EnvValue};
    use crate::runtime::host_programs::{current_user, Bind, ImageInput, ProgramSpec};
    use crate::state::Handle;

    let bin = binary(config)?;
    let path = write_config(config, plan)?;
    let runtime = ContainersRuntime::new(config.clone());
    progress.step(Service::Broker, "building its image from this binary (once per binary)");
    let version = env!("CARGO_PKG_VERSION").to_owned();
    let image = runtime
        .program_image(
            ImageInput::Broker { binary: bin, version: version.clone() },
            &config.state_path("logs/broker-image.log"),
        )
        .await?;
    let (name, labels) = runtime.program_identity("broker")?;
    let config_dir = path.parent().map_or_else(|| path.clone(), Path::to_path_buf);
    let spec = ProgramSpec {
        name,
        image,
        cmd: vec!["broker".into(), "--config".into(), crate::runtime::host_programs::absolute(&path)?],
        // By environment, never on the command line (`docker inspect` shows it
        // to whoever may use the engine, as it shows Keycloak's).
        env: vec![(PASSWORD_ENV.into(), EnvValue::Secret(creds.postgres_broker.clone()))],
        binds: vec![
            Bind::read_only(&config_dir)?,
            Bind::read_only(&config.state_path("openbao/broker-approle.json"))?,
            Bind::read_only(&config.fixtures_dir.join("broker"))?,
        ],
        working_dir: None,
        user: current_user(),
        labels,
    };
    progress.step(
        Service::Broker,
        &format!("starting container {} ({}) on {LOOPBACK}:{}", spec.name, spec.image.reference(), plan.port),
    );
    let id = runtime.start_program(&spec, &plan.log).await?;
    let url = format!("http://{LOOPBACK}:{}", plan.port);
    let record = crate::state::ServiceRecord {
        service: Service::Broker,
        version,
        host: LOOPBACK.into(),
        port: plan.port,
        extra_ports: std::collections::BTreeMap::new(),
        url,
        handle: Handle::Container { id },
        log: plan.log.clone(),
        started_at: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        startup_ms: 0,
    };
    Ok(Started { record, child: None })
}

/// Where the services post back-channel logout tokens to the broker.
#[must_use]
pub fn backchannel_logout_url(plan: &BrokerPlan) -> String {
    format!("http://{}:{}/backchannel-logout", plan.host_address.as_deref().unwrap_or(LOOPBACK), plan.port)
}

/// Whether the broker answers `/health` with 200 (Postgres and OpenBao reachable).
pub async fn healthy(url: &str) -> bool {
    crate::health::http()
        .get(format!("{}/health", url.trim_end_matches('/')))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_written_configuration_holds_no_secret_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let config = LabConfig::new(dir.path().join("lab \"quoted\""));
        let fixture = BaoFixture::load(&config.fixtures_dir).unwrap();
        let plan = BrokerPlan {
            port: 9100,
            postgres_port: 5433,
            openbao_url: "http://127.0.0.1:8200/".into(),
            keycloak_url: "http://127.0.0.1:8080".into(),
            host_address: Some("172.18.0.1".into()),
            log: dir.path().join("broker.log"),
        };
        let text = render_config(&config, &plan, &fixture);
        let v: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(v["upstream"]["issuer"].as_str(), Some("http://127.0.0.1:8080/realms/fourleg"));
        assert_eq!(v["postgres"]["password_env"].as_str(), Some(PASSWORD_ENV));
        assert_eq!(v["also_listen"][0].as_str(), Some("172.18.0.1:9100"));
        assert_eq!(backchannel_logout_url(&plan), "http://172.18.0.1:9100/backchannel-logout");
        assert!(v["openbao"]["approle_file"].as_str().unwrap().contains("lab \"quoted\""));
        assert!(!text.contains("secret_id") && !text.contains("password ="), "{text}");
    }
}
