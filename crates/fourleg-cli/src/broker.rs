//! `fourleg broker`: serves the reference broker ([`fourleg_broker`]), and
//! `fourleg lab broker-client`, the lab's hook that disables a client there.

use std::path::Path;

use anyhow::Context as _;
use fourleg_lab::LabConfig;

use crate::exit;

/// Serves until SIGTERM or Ctrl-C; a dependency missing at start is an error
/// (exit 2): the broker never starts half-way.
pub async fn serve(file: &Path, listen: Option<&str>) -> anyhow::Result<u8> {
    let mut config = fourleg_broker::Config::load(file)?;
    if let Some(l) = listen {
        l.clone_into(&mut config.listen);
    }
    let addrs: Vec<String> = std::iter::once(config.listen.clone()).chain(config.also_listen.clone()).collect();
    let broker = fourleg_broker::Broker::start(config)
        .await
        .with_context(|| format!("starting the broker from {}", file.display()))?;
    let mut listeners = Vec::new();
    for addr in &addrs {
        listeners.push(tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening on {addr}"))?);
    }
    eprintln!("fourleg broker: listening on http://{} (issuer {})", addrs.join(", http://"), broker.config.issuer);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut servers = tokio::task::JoinSet::new();
    for listener in listeners {
        let mut stopped = stopped.clone();
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        servers.spawn(fourleg_broker::serve(std::sync::Arc::clone(&broker), listener, shutdown));
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        // A listener that fails ends the broker (its error below).
        Some(done) = servers.join_next() => {
            done.context("a listener's task")?.context("serving")?;
        }
    }
    eprintln!("fourleg broker: stopping");
    let _ = stop.send(true);
    while let Some(done) = servers.join_next().await {
        done.context("a listener's task")?.context("serving")?;
    }
    Ok(exit::OK)
}

/// The lab broker's configuration, with its Postgres password set for this process.
fn lab_broker(lab: &LabConfig) -> anyhow::Result<fourleg_broker::Config> {
    let file = fourleg_lab::broker::config_path(lab);
    let config = fourleg_broker::Config::load(&file)
        .with_context(|| format!("the lab's broker is not configured ({}); run `fourleg up`", file.display()))?;
    let creds = fourleg_lab::state::Credentials::load(lab)?
        .with_context(|| format!("no lab credentials in {}; run `fourleg up`", lab.state_dir.display()))?;
    // The store reads its password from the variable the file names; this
    // process sets it for itself only.
    std::env::set_var(&config.postgres.password_env, creds.postgres_broker.expose());
    Ok(config)
}

/// Retires the active signing key and makes a new one (see `fourleg lab broker-rotate-key`).
pub async fn rotate_key(lab: &LabConfig) -> anyhow::Result<u8> {
    let config = lab_broker(lab)?;
    let store = fourleg_broker::store::Store::new(&config.postgres)?;
    let http = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(10)).build()?;
    let vault = fourleg_broker::vault::Vault::new(&config.openbao, http);
    let retired = store.retire_active_keys().await?;
    fourleg_broker::keys::Keys::load(&store, &vault).await?;
    eprintln!(
        "retired {retired} signing key(s) (still published for a day); a new key is active; brokers sign with it within {} s",
        config.key_reload_s
    );
    Ok(exit::OK)
}

/// Disables (revoking what the client holds, and what was exchanged from it)
/// or enables a client at the lab's broker, through its Postgres store.
pub async fn set_client_enabled(lab: &LabConfig, client_id: &str, enabled: bool) -> anyhow::Result<u8> {
    let config = lab_broker(lab)?;
    let store = fourleg_broker::store::Store::new(&config.postgres)?;
    if enabled {
        store.enable_client(client_id).await?;
        eprintln!("enabled {client_id} at the broker");
    } else {
        let revoked = store.disable_client(client_id, "fourleg lab broker-client").await?;
        eprintln!("disabled {client_id} at the broker; {revoked} tokens revoked");
    }
    Ok(exit::OK)
}
