//! The suite's own test bed: a small in-process authorization server that
//! implements RFC 8693 token exchange with the agent delegation profile
//! (impersonation and delegation, nested `act`, `may_act`, the intersection
//! rule, cascading revocation, RFC 7662 introspection, RFC 7009 revocation,
//! RFC 8414 metadata, JWKS), and [`Breakage`] switches that each break one
//! rule of it.
//!
//! It exists to prove that every scenario can fail: `tests/kill_table.rs`
//! runs the whole suite against the conformant server and against every
//! broken variant, and writes `reports/kill-table.md`. It is a test crate
//! (`publish = false`, no binary, not a dependency of `fourleg-cli`), so no
//! build a user runs contains the switches. It is not the reference broker:
//! no database, no secrets store, everything in memory. It shares the
//! broker's decision, though: exchanges are decided by
//! [`fourleg_policy::decide`], tokens signed through
//! [`fourleg_core::jose::Signer`] and verified by [`fourleg_core::jose::Jwks`],
//! and the switches that concern them are perturbations around those (inputs
//! or outputs altered), so the kill table proves them too.
//!
//! Its target profile is `testbed.toml` beside this crate's manifest; the
//! fixture contract it provisions is in [`fixture`].

mod breakage;
mod dpop;
mod exchange;
pub mod fixture;
pub mod hostile;
mod keys;
mod server;
mod store;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use fourleg_core::Secret;
use fourleg_target::LabContext;
use tokio::sync::oneshot;

pub use breakage::Breakage;
pub use exchange::MAX_DEPTH;
pub use store::SLOW_REVOCATION;

/// The test bed could not start.
#[derive(Debug, thiserror::Error)]
pub enum TestBedError {
    #[error("the test bed cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
}

/// A running test bed on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct TestBed {
    url: String,
    broken: Option<Breakage>,
    secrets: BTreeMap<String, String>,
    passwords: BTreeMap<String, String>,
    shutdown: Option<oneshot::Sender<()>>,
}

/// The lab service name the profile's `{lab.testbed}` placeholder refers to.
pub const SERVICE: &str = "testbed";

impl TestBed {
    /// Starts a server on `127.0.0.1:0`, conformant (`None`) or with one rule broken.
    /// Client secrets and user passwords are fresh random values.
    pub async fn start(broken: Option<Breakage>) -> Result<Self, TestBedError> {
        Self::serve(broken, false, fourleg_policy::Check::DOCUMENTED).await
    }

    /// Like [`TestBed::start`], with the exchange policy's groups of checks
    /// run in `order`: the evaluation-order variants of the kill table. The
    /// checks before the policy (client authentication, token validation)
    /// keep their order.
    pub async fn start_ordered(
        broken: Option<Breakage>,
        order: [fourleg_policy::Check; 4],
    ) -> Result<Self, TestBedError> {
        Self::serve(broken, false, order).await
    }

    /// Starts the conformant server behind the [`hostile`] layer: markup and
    /// echoed secrets in every error, a huge JWKS, oversized and non-UTF-8
    /// bodies.
    pub async fn start_hostile() -> Result<Self, TestBedError> {
        Self::serve(None, true, fourleg_policy::Check::DOCUMENTED).await
    }

    async fn serve(
        broken: Option<Breakage>,
        hostile: bool,
        order: [fourleg_policy::Check; 4],
    ) -> Result<Self, TestBedError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(TestBedError::Bind)?;
        let addr = listener.local_addr().map_err(TestBedError::Bind)?;
        let url = format!("http://{addr}");
        let secrets: BTreeMap<String, String> = fixture::CLIENTS
            .iter()
            .filter(|c| !c.is_public())
            .map(|c| (c.client_id.to_owned(), server::random_id(24)))
            .collect();
        let passwords: BTreeMap<String, String> =
            fixture::USERS.iter().map(|u| (u.username.to_owned(), server::random_id(16))).collect();
        let mut server = server::Server::new(url.clone(), keys::shared(), broken, secrets.clone(), passwords.clone());
        server.order = order;
        let state = Arc::new(server);
        let (tx, rx) = oneshot::channel::<()>();
        let app = server::router(state);
        let app = if hostile { app.layer(axum::middleware::from_fn(hostile::layer)) } else { app };
        tokio::spawn(async move {
            // Serving ends when the test bed is dropped; an I/O error ends it too,
            // and the scenarios then report the target as unreachable.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self { url, broken, secrets, passwords, shutdown: Some(tx) })
    }

    /// The base URL, which is also the issuer.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The switch this server runs with.
    #[must_use]
    pub fn broken(&self) -> Option<Breakage> {
        self.broken
    }

    /// What `Target::connect` needs: the URL as `{lab.testbed}`, the client
    /// secrets and the user passwords.
    #[must_use]
    pub fn lab_context(&self) -> LabContext {
        LabContext {
            urls: BTreeMap::from([(SERVICE.to_owned(), self.url.clone())]),
            versions: BTreeMap::from([(SERVICE.to_owned(), env!("CARGO_PKG_VERSION").to_owned())]),
            client_secrets: self.secrets.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect(),
            user_passwords: self.passwords.iter().map(|(k, v)| (k.clone(), Secret::new(v.clone()))).collect(),
            state_dir: None,
        }
    }

    /// The test bed's target profile.
    #[must_use]
    pub fn profile_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed.toml")
    }
}

impl Drop for TestBed {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
