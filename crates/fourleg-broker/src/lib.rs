//! The reference broker: RFC 8693 token exchange in front of Keycloak, run as
//! `fourleg broker --config <file>` and started by `fourleg up` as the lab's
//! fourth service.
//!
//! - **Users log in at Keycloak**; their access tokens are the subject tokens
//!   of the first hop, verified against Keycloak's JWKS ([`upstream`]).
//!   Agents get their own tokens (actor tokens) here by client credentials;
//!   a Keycloak client-credentials token of the same client is accepted too,
//!   since both carry the client's service-account `sub`.
//! - **The decision** is [`fourleg_policy::decide`], the same pure function as
//!   the test bed's, so the suite's kill table proves the broker's policy.
//! - **Secrets in OpenBao** ([`vault`]): client secrets from KV v2 through the
//!   broker's AppRole, cached in memory with a TTL; the ES256 signing key is
//!   stored in Postgres wrapped by a Transit key and unwrapped in memory
//!   ([`keys`]).
//! - **Lineage and audit in Postgres** ([`store`]): every issued token has its
//!   lineage row, written in the same statement as its audit row before the
//!   token is returned; every refusal has its audit row; revocation marks a
//!   whole subtree in one recursive statement; Keycloak's back-channel
//!   logout revokes everything derived from the session.
//!
//! Postgres is reached with `tokio-postgres`, already in the tree for the
//! lab's provisioning, behind a `deadpool-postgres` pool, with statements
//! prepared once per connection (`prepare_cached`). sqlx was not chosen: its
//! compile-time checked queries need a database (or an offline cache) at
//! build time, and its macros cost more build time on a 2-core machine than
//! the dozen fixed statements here are worth.
//!
//! The broker keeps no state of its own that Postgres and OpenBao do not
//! hold: several replicas can serve side by side.

pub mod config;
pub mod error;
pub mod http;
pub mod keys;
pub mod store;
pub mod upstream;
pub mod vault;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::RwLock;

pub use crate::config::{Catalog, Config};
pub use crate::error::BrokerError;
#[cfg(feature = "faults")]
pub use fourleg_policy::faults::InputFault;

/// One running broker: its configuration and its connections.
#[derive(Debug)]
pub struct Broker {
    pub config: Config,
    pub catalog: Catalog,
    policy: fourleg_policy::Catalog,
    limits: fourleg_policy::Limits,
    pub store: store::Store,
    vault: vault::Vault,
    keys: RwLock<keys::Keys>,
    upstream: upstream::UpstreamKeys,
    /// For calls to Keycloak other than its JWKS (refresh-token revocation).
    http: reqwest::Client,
    /// OpenBao answered unsealed at the last look ([`OPENBAO_WATCH`]).
    openbao_up: AtomicBool,
    /// When the signing keys were last loaded.
    keys_loaded: tokio::sync::Mutex<Instant>,
    /// A policy input fault (kill table only).
    #[cfg(feature = "faults")]
    pub(crate) fault: Option<fourleg_policy::faults::InputFault>,
}

#[cfg(feature = "faults")]
type PolicyFault = fourleg_policy::faults::InputFault;
/// Without the `faults` feature no fault exists.
#[cfg(not(feature = "faults"))]
#[derive(Debug, Clone, Copy)]
enum PolicyFault {}

/// How often the broker asks OpenBao whether it is unsealed. Issuing needs
/// nothing from OpenBao per request (secrets are cached, the signing key is
/// in memory), yet a sealed OpenBao means its operator stopped the secrets:
/// the broker then issues nothing, within this bound.
pub const OPENBAO_WATCH: Duration = Duration::from_millis(500);

impl Broker {
    /// Connects to Postgres and OpenBao and loads the signing key. Fails
    /// when either is unreachable: the broker does not start half-way.
    pub async fn start(config: Config) -> Result<Arc<Self>, BrokerError> {
        Self::start_inner(config, None).await
    }

    /// [`Broker::start`] with one rule of the decision broken by its inputs,
    /// for the broker's kill table: the same faults as the test bed's.
    #[cfg(feature = "faults")]
    pub async fn start_with_fault(
        config: Config,
        fault: fourleg_policy::faults::InputFault,
    ) -> Result<Arc<Self>, BrokerError> {
        Self::start_inner(config, Some(fault)).await
    }

    #[cfg_attr(not(feature = "faults"), allow(unused_variables))]
    async fn start_inner(config: Config, fault: Option<PolicyFault>) -> Result<Arc<Self>, BrokerError> {
        let catalog = Catalog::load(&config.catalog)?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| BrokerError::Config(e.to_string()))?;
        let store = store::Store::new(&config.postgres)?;
        let vault = vault::Vault::new(&config.openbao, http.clone());
        let keys = keys::Keys::load(&store, &vault).await?;
        let upstream = upstream::UpstreamKeys::new(
            http.clone(),
            config.upstream_jwks(),
            Duration::from_secs(config.upstream.jwks_ttl_s),
            Duration::from_secs(config.upstream.jwks_min_refetch_s),
        );
        let policy = catalog.policy();
        let limits = fourleg_policy::Limits { max_depth: catalog.max_depth, ..fourleg_policy::Limits::default() };
        let broker = Arc::new(Self {
            config,
            catalog,
            policy,
            limits,
            store,
            vault,
            keys: RwLock::new(keys),
            upstream,
            http,
            openbao_up: AtomicBool::new(true),
            keys_loaded: tokio::sync::Mutex::new(Instant::now()),
            #[cfg(feature = "faults")]
            fault,
        });
        let weak = Arc::downgrade(&broker);
        tokio::spawn(watch_openbao(weak));
        Ok(broker)
    }

    /// Loads the signing keys again from Postgres (after a rotation).
    pub async fn reload_keys(&self) -> Result<(), BrokerError> {
        let keys = keys::Keys::load(&self.store, &self.vault).await?;
        *self.keys.write().await = keys;
        *self.keys_loaded.lock().await = Instant::now();
        Ok(())
    }

    /// Reloads the keys unless they were loaded within the last second (a
    /// stream of tokens with made-up `kid`s costs at most one load a second).
    pub(crate) async fn reload_keys_bounded(&self) -> Result<(), BrokerError> {
        if self.keys_loaded.lock().await.elapsed() < Duration::from_secs(1) {
            return Ok(());
        }
        self.reload_keys().await
    }

    /// `Err` while OpenBao is sealed or unreachable: nothing is issued then.
    pub(crate) fn openbao_available(&self) -> Result<(), BrokerError> {
        if self.openbao_up.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(BrokerError::Openbao("sealed or unreachable: the broker issues nothing until it is back".into()))
        }
    }

    /// Called after a revocation: other replicas learn of it from Postgres
    /// itself (every check reads the lineage); cached secrets are dropped.
    async fn notify_revoked(&self) {
        self.vault.forget_secrets().await;
    }
}

/// Polls OpenBao's health every [`OPENBAO_WATCH`] for as long as the broker lives.
async fn watch_openbao(broker: Weak<Broker>) {
    loop {
        tokio::time::sleep(OPENBAO_WATCH).await;
        let Some(b) = broker.upgrade() else { return };
        let reload = Duration::from_secs(b.config.key_reload_s.max(1));
        if b.keys_loaded.lock().await.elapsed() >= reload {
            if let Err(e) = b.reload_keys().await {
                // The keys in memory stay in use; the next round tries again.
                *b.keys_loaded.lock().await = Instant::now();
                eprintln!("fourleg broker: reloading the signing keys: {e}");
            }
        }
        let up = b.vault.healthy().await;
        if b.openbao_up.swap(up, Ordering::Relaxed) != up {
            eprintln!(
                "fourleg broker: openbao {}",
                if up { "is back: issuing again" } else { "sealed or unreachable: issuing nothing" }
            );
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    broker: Arc<Broker>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, http::router(broker)).with_graceful_shutdown(shutdown).await
}
