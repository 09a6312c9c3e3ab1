//! The demo chain the guided labs run, served on loopback with nothing
//! fetched from outside (no CDN): user → **lab-web** → **agent** →
//! **MCP server** → **records API**.
//!
//! - [`web`]: the public client. Logs the user in with the authorization
//!   code grant and PKCE S256 (RFC 7636), shows each hop's token decoded
//!   (never the raw token) and the `act` chain.
//! - [`agent`]: a confidential client that exchanges the user's token for
//!   the MCP server (RFC 8693 §2.1) and calls the server's tool.
//! - [`mcp`]: an MCP server on the official Rust SDK (streamable HTTP), its
//!   one tool protected per the MCP authorization specification: a token
//!   whose audience is not the server's is refused with 401 and
//!   `WWW-Authenticate` pointing at its RFC 9728 metadata; the tool exchanges
//!   the incoming token for the API and never passes it through.
//! - [`api`]: the records API, accepting only tokens for its own audience and
//!   logging who acted for whom.
//!
//! Every component appends what it did to one [`Journal`] (JSON lines in the
//! lab's state directory), which the guided labs' checks read: decoded claims
//! only, never a usable token.

pub mod agent;
pub mod api;
pub mod auth;
pub mod exchange;
pub mod journal;
pub mod mcp;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;

use fourleg_core::Secret;

pub use journal::{Entry, Journal, TokenView};

/// A confidential client of the demo chain: its id and secret.
#[derive(Debug, Clone)]
pub struct ClientCreds {
    pub client_id: String,
    pub secret: Secret,
}

/// An issuer whose tokens a resource accepts: its `iss` and JWKS.
#[derive(Debug, Clone)]
pub struct Trust {
    pub issuer: String,
    pub jwks_uri: String,
    /// Its RFC 7662 introspection endpoint, asked about every token after
    /// the signature checks (a revoked token is refused at once, not at its
    /// `exp`); none: signature and claims only.
    pub introspection_endpoint: Option<String>,
}

impl Trust {
    /// An issuer checked by signature and claims only.
    #[must_use]
    pub fn jwks(issuer: impl Into<String>, jwks_uri: impl Into<String>) -> Self {
        Self { issuer: issuer.into(), jwks_uri: jwks_uri.into(), introspection_endpoint: None }
    }
}

/// Where the chain gets and checks its tokens.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The login server (Keycloak's realm): discovery gives the authorization
    /// and token endpoints of the login.
    pub login_issuer: String,
    /// The public client the web app logs in as.
    pub web_client_id: String,
    /// The token endpoint the agent and the MCP server exchange at (Keycloak
    /// in Lab 1, the reference broker in Lab 2).
    pub exchange_endpoint: String,
    /// The issuers the MCP server and the API trust (the login server's, and
    /// the broker's in Lab 2).
    pub trust: Vec<Trust>,
    pub agent: ClientCreds,
    pub mcp_server: ClientCreds,
    /// The records API's own credentials, for introspection (RFC 7662 §2.1
    /// wants the caller authenticated); needed when a trusted issuer has an
    /// introspection endpoint.
    pub api: Option<ClientCreds>,
    /// The audience the MCP server accepts and the agent asks for.
    pub mcp_audience: String,
    /// The audience the API accepts and the MCP server asks for.
    pub api_audience: String,
    /// Where each component listens; port 0 picks a free one.
    pub listen: Listen,
    /// The journal's file.
    pub journal: PathBuf,
    /// The agent presents its own client_credentials token as `actor_token`
    /// (delegation, RFC 8693 §1.1) instead of impersonating the user.
    pub delegate: bool,
    /// The agent reuses an exchanged token while it is fresh.
    pub cache_exchanges: bool,
}

/// The four listening addresses.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub web: SocketAddr,
    pub agent: SocketAddr,
    pub mcp: SocketAddr,
    pub api: SocketAddr,
}

impl Listen {
    /// Four consecutive loopback ports from `base` (0: any free ports).
    #[must_use]
    pub fn from_base(base: u16) -> Self {
        let at = |i: u16| SocketAddr::from(([127, 0, 0, 1], if base == 0 { 0 } else { base + i }));
        Self { web: at(0), agent: at(1), mcp: at(2), api: at(3) }
    }
}

/// Why the demo chain could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot listen on {addr} for the demo {component}: {source} (is another `fourleg lab` running? `--port-base` moves the four demo ports, 0 picks free ones)")]
    Bind { component: &'static str, addr: SocketAddr, source: std::io::Error },
    #[error("cannot read the login server's discovery document at {url}: {reason}")]
    Discovery { url: String, reason: String },
    #[error("no secret for the demo's client {0} (run `fourleg up`)")]
    Secret(String),
    #[error("cannot write the demo journal {path}: {source}")]
    Journal { path: PathBuf, source: std::io::Error },
}

/// The lab names under which a target profile's `[resource]` names a demo
/// chain the suite serves itself: in front of Keycloak, or of the reference
/// broker.
pub const RESOURCE_LABS: [&str; 2] = ["demo-mcp", "demo-mcp-broker"];

/// The running demo chain: its URLs, stopped on drop or by [`Demo::stop`].
#[derive(Debug)]
pub struct Demo {
    pub web_url: String,
    pub agent_url: String,
    /// The MCP server's endpoint (`…/mcp`).
    pub mcp_url: String,
    pub api_url: String,
    pub journal: Journal,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Demo {
    /// The chain as a protected resource for the suite (`[resource]` of the
    /// `demo-mcp` target): in front of a Keycloak realm as in Lab 1 (the
    /// agent impersonates, nothing cached), the MCP server and the API
    /// introspecting what they accept, every listener on a free port of
    /// 127.0.0.1, the clients' secrets taken from `secrets` by contract name
    /// (`agent`, `mcp-server`, `downstream-api`).
    pub async fn for_keycloak(
        keycloak: &str,
        realm: &str,
        secrets: &std::collections::BTreeMap<String, Secret>,
        journal: PathBuf,
    ) -> Result<Self, DemoError> {
        let issuer = format!("{}/realms/{realm}", keycloak.trim_end_matches('/'));
        let exchange = format!("{issuer}/protocol/openid-connect/token");
        // The MCP server and the API introspect every token they accept
        // (RFC 7662), with their own credentials: a revoked token is
        // refused at once (the suite's revoked-token scenario).
        let trust = Trust {
            introspection_endpoint: Some(format!("{issuer}/protocol/openid-connect/token/introspect")),
            ..Trust::jwks(issuer.clone(), format!("{issuer}/protocol/openid-connect/certs"))
        };
        // Standard token exchange V2 has no actor_token: the MCP server
        // impersonates.
        Self::for_suite(issuer, exchange, trust, secrets, journal, false).await
    }

    /// The same chain in front of the reference broker (`demo-mcp-broker`):
    /// users still log in at the Keycloak realm, the agent and the MCP
    /// server exchange at the broker, and the MCP server and the API accept
    /// (and introspect) the broker's tokens only.
    pub async fn for_broker(
        broker: &str,
        keycloak: &str,
        realm: &str,
        secrets: &std::collections::BTreeMap<String, Secret>,
        journal: PathBuf,
    ) -> Result<Self, DemoError> {
        let broker = broker.trim_end_matches('/');
        let login = format!("{}/realms/{realm}", keycloak.trim_end_matches('/'));
        let trust = Trust {
            introspection_endpoint: Some(format!("{broker}/introspect")),
            ..Trust::jwks(broker.to_owned(), format!("{broker}/jwks"))
        };
        // The broker delegates (RFC 8693 §1.1): the MCP server presents its
        // own token as actor_token, so the API's token names it in act.
        Self::for_suite(login, format!("{broker}/token"), trust, secrets, journal, true).await
    }

    /// The chain a target profile names as its protected resource by lab
    /// name ([`RESOURCE_LABS`]), from the lab's URLs (`keycloak`, `broker`):
    /// `None` for a name that is not a demo chain's.
    pub async fn for_lab(
        name: &str,
        urls: &std::collections::BTreeMap<String, String>,
        realm: &str,
        secrets: &std::collections::BTreeMap<String, Secret>,
        journal: PathBuf,
    ) -> Option<Result<Self, DemoError>> {
        let url = |service: &str| {
            urls.get(service).cloned().ok_or_else(|| DemoError::Secret(format!("the lab's {service} URL")))
        };
        let run = async {
            match name {
                "demo-mcp" => Self::for_keycloak(&url("keycloak")?, realm, secrets, journal).await,
                _ => Self::for_broker(&url("broker")?, &url("keycloak")?, realm, secrets, journal).await,
            }
        };
        if RESOURCE_LABS.contains(&name) {
            Some(run.await)
        } else {
            None
        }
    }

    async fn for_suite(
        login_issuer: String,
        exchange_endpoint: String,
        trust: Trust,
        secrets: &std::collections::BTreeMap<String, Secret>,
        journal: PathBuf,
        delegate: bool,
    ) -> Result<Self, DemoError> {
        let client = |name: &str| {
            secrets
                .get(name)
                .cloned()
                .map(|secret| ClientCreds { client_id: name.to_owned(), secret })
                .ok_or_else(|| DemoError::Secret(name.to_owned()))
        };
        Self::start(DemoConfig {
            login_issuer,
            web_client_id: "lab-web".into(),
            exchange_endpoint,
            trust: vec![trust],
            agent: client("agent")?,
            mcp_server: client("mcp-server")?,
            api: Some(client("downstream-api")?),
            mcp_audience: "mcp-server".into(),
            api_audience: "downstream-api".into(),
            listen: Listen::from_base(0),
            journal,
            delegate,
            cache_exchanges: false,
        })
        .await
    }

    /// Binds the four listeners, reads the login server's discovery document
    /// (OpenID Connect Discovery 1.0 §4) and serves the chain.
    pub async fn start(config: DemoConfig) -> Result<Self, DemoError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        let discovery = format!("{}/.well-known/openid-configuration", config.login_issuer.trim_end_matches('/'));
        let meta: serde_json::Value = async {
            let r = http.get(&discovery).send().await.map_err(|e| e.without_url().to_string())?;
            if !r.status().is_success() {
                return Err(format!("HTTP {}", r.status().as_u16()));
            }
            r.json().await.map_err(|e| e.without_url().to_string())
        }
        .await
        .map_err(|reason| DemoError::Discovery { url: discovery.clone(), reason })?;
        let endpoint = |k: &str| {
            meta.get(k)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| DemoError::Discovery { url: discovery.clone(), reason: format!("it has no {k}") })
        };
        let authorization_endpoint = endpoint("authorization_endpoint")?;
        let end_session_endpoint = endpoint("end_session_endpoint").ok();
        let login_token_endpoint = endpoint("token_endpoint")?;

        let bind = |component: &'static str, addr: SocketAddr| async move {
            tokio::net::TcpListener::bind(addr).await.map_err(|source| DemoError::Bind { component, addr, source })
        };
        let web_l = bind("web app", config.listen.web).await?;
        let agent_l = bind("agent", config.listen.agent).await?;
        let mcp_l = bind("MCP server", config.listen.mcp).await?;
        let api_l = bind("records API", config.listen.api).await?;
        let url = |l: &tokio::net::TcpListener| {
            let a = l.local_addr().expect("a bound listener has an address");
            format!("http://{a}")
        };
        let (web_url, agent_url, mcp_origin, api_url) = (url(&web_l), url(&agent_l), url(&mcp_l), url(&api_l));
        let mcp_url = format!("{mcp_origin}/mcp");
        let journal = Journal::new(&config.journal);

        let web = web::router(
            web::WebConfig {
                client_id: config.web_client_id.clone(),
                authorization_endpoint,
                token_endpoint: login_token_endpoint,
                origin: web_url.clone(),
                agent_url: agent_url.clone(),
                scope: "openid records:read records:write records:delete".into(),
                end_session_endpoint,
            },
            journal.clone(),
            http.clone(),
        );
        let agent = agent::router(
            agent::AgentConfig {
                exchange_endpoint: config.exchange_endpoint.clone(),
                creds: config.agent.clone(),
                mcp_url: mcp_url.clone(),
                mcp_audience: config.mcp_audience.clone(),
                api_url: api_url.clone(),
                delegate: config.delegate,
                cache: config.cache_exchanges,
            },
            journal.clone(),
            http.clone(),
        );
        let mcp = mcp::router(mcp::McpState {
            validator: auth::Validator::new(http.clone(), config.trust.clone(), config.mcp_audience.clone())
                .with_credentials(config.mcp_server.clone()),
            journal: journal.clone(),
            http: http.clone(),
            exchange_endpoint: config.exchange_endpoint.clone(),
            creds: config.mcp_server.clone(),
            api_url: api_url.clone(),
            api_audience: config.api_audience.clone(),
            resource_url: mcp_url.clone(),
            authorization_servers: config.trust.iter().map(|t| t.issuer.clone()).collect(),
            delegate: config.delegate,
        });
        let api = api::router(api::ApiState {
            validator: {
                let v = auth::Validator::new(http.clone(), config.trust.clone(), config.api_audience.clone());
                match &config.api {
                    Some(c) => v.with_credentials(c.clone()),
                    None => v,
                }
            },
            journal: journal.clone(),
        });

        let (stop, watch) = tokio::sync::watch::channel(false);
        let serve = |l: tokio::net::TcpListener, r: axum::Router| {
            let mut w = watch.clone();
            tokio::spawn(async move {
                let _ = axum::serve(l, r)
                    .with_graceful_shutdown(async move {
                        let _ = w.wait_for(|s| *s).await;
                    })
                    .await;
            })
        };
        let tasks = vec![serve(web_l, web), serve(agent_l, agent), serve(mcp_l, mcp), serve(api_l, api)];
        Ok(Self { web_url, agent_url, mcp_url, api_url, journal, stop: Some(stop), tasks })
    }

    /// The lab URLs that name this chain as a protected resource in a
    /// target profile, under `name` (`demo-mcp`, `demo-mcp-broker`):
    /// `{lab.<name>}` (the MCP endpoint) and `{lab.<name>-received}` (what
    /// the records API received).
    #[must_use]
    pub fn resource_urls(&self, name: &str) -> [(String, String); 2] {
        [
            (name.to_owned(), self.mcp_url.clone()),
            (format!("{name}-received"), format!("{}{}", self.api_url, api::RECEIVED_PATH)),
        ]
    }

    /// Stops serving and waits for the servers to finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
    }
}
