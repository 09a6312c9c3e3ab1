//! The two-hop chain of the suites' `four-legged` scenarios
//! (`suites/four-legged/chain-keeps-user-sub.toml`, and with actor tokens
//! `chain-act-nested.toml`): alice's token, exchanged by `agent` for
//! `mcp-server` (hop 1), and that token by `mcp-server` for `downstream-api`
//! (hop 2), each asking for `records:read` (RFC 8693 §2.1).

use fourleg_core::Secret;
use fourleg_target::{Connection, ExchangeRequest, Reply, Target, TargetError};

use crate::BenchError;

/// The user whose token starts the chain (fixture contract).
pub const USER: &str = "alice";
/// The permission every hop asks for.
pub const PERMISSION: &str = "records:read";
/// Hop 1: who exchanges, for which audience.
pub const HOP1: (&str, &str) = ("agent", "mcp-server");
/// Hop 2.
pub const HOP2: (&str, &str) = ("mcp-server", "downstream-api");

/// What the chain starts from, obtained before any measurement: the user's
/// token and, when the target declares delegation, each hop's actor token
/// (its client-credentials token, RFC 6749 §4.4), as the scenarios do.
#[derive(Debug, Clone)]
pub struct Start {
    pub user: Secret,
    pub agent_actor: Option<Secret>,
    pub mcp_actor: Option<Secret>,
}

impl Start {
    /// Logs the user in and takes the actor tokens.
    pub async fn obtain(target: &Target) -> Result<Self, BenchError> {
        let name = target.name().to_owned();
        let scope =
            target.profile.permissions.get(PERMISSION).cloned().ok_or_else(|| BenchError::Profile {
                target: name.clone(),
                what: format!("permission `{PERMISSION}`"),
            })?;
        let login = target.user_token(USER, &[scope]).await?;
        let user = login.token("access_token").filter(|_| login.is_success()).ok_or_else(|| BenchError::Setup {
            target: name.clone(),
            what: format!("the login of {USER}"),
            detail: describe(login.status, login.error()),
        })?;
        let (agent_actor, mcp_actor) = if target.profile.features.delegation {
            (Some(client_token(target, HOP1.0).await?), Some(client_token(target, HOP2.0).await?))
        } else {
            (None, None)
        };
        Ok(Self { user, agent_actor, mcp_actor })
    }

    /// Whether the hops carry actor tokens.
    #[must_use]
    pub fn delegation(&self) -> bool {
        self.agent_actor.is_some()
    }
}

async fn client_token(target: &Target, client: &str) -> Result<Secret, BenchError> {
    let o = target.client_credentials(client, &[]).await?;
    o.token("access_token").filter(|_| o.is_success()).ok_or_else(|| BenchError::Setup {
        target: target.name().to_owned(),
        what: format!("the client-credentials token of {client} (its actor token)"),
        detail: describe(o.status, o.error()),
    })
}

fn describe(status: u16, error: Option<&str>) -> String {
    error.map_or_else(|| status.to_string(), |e| format!("{status} {e}"))
}

/// Which hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    One,
    Two,
}

impl Hop {
    /// `hop 1 (agent → mcp-server)`.
    #[must_use]
    pub fn label(self) -> String {
        let (c, a) = match self {
            Hop::One => HOP1,
            Hop::Two => HOP2,
        };
        let n = if self == Hop::One { 1 } else { 2 };
        format!("hop {n} ({c} → {a})")
    }
}

/// Why a hop did not yield a token.
#[derive(Debug, Clone)]
pub enum HopFailure {
    /// The target answered, without a token: `400 invalid_grant`,
    /// `200 without access_token`.
    Refused(String),
    /// No answer: unreachable, timed out.
    Transport(String),
}

impl HopFailure {
    /// The kind, as counted in the report (no token, no secret in it).
    #[must_use]
    pub fn kind(&self, hop: Hop) -> String {
        match self {
            HopFailure::Refused(what) => format!("{}: {what}", hop.label()),
            HopFailure::Transport(what) => format!("{}: no answer ({what})", hop.label()),
        }
    }
}

fn refusal(r: &Reply) -> HopFailure {
    if r.is_success() {
        HopFailure::Refused(format!("{} without access_token", r.status))
    } else {
        HopFailure::Refused(r.describe())
    }
}

/// A transport error, shortened to its kind: the counts group by it.
#[must_use]
pub fn transport_kind(e: &TargetError) -> String {
    match e {
        TargetError::TooSlow { seconds, .. } => format!("no answer within {seconds}s"),
        TargetError::Unreachable { source, .. } if source.is_connect() => "connection refused or reset".into(),
        TargetError::Unreachable { .. } => "transport error".into(),
        other => other.to_string(),
    }
}

/// One exchange of the chain on `conn`.
pub async fn hop(conn: &Connection, start: &Start, hop: Hop, subject: &Secret) -> Result<Secret, HopFailure> {
    let ((client, audience), actor) = match hop {
        Hop::One => (HOP1, start.agent_actor.as_ref()),
        Hop::Two => (HOP2, start.mcp_actor.as_ref()),
    };
    let req = ExchangeRequest { client, subject, actor, audience: &[audience], scope: &[PERMISSION] };
    match conn.exchange(req).await {
        Ok(r) => r.access_token().ok_or_else(|| refusal(&r)),
        Err(e) => Err(HopFailure::Transport(transport_kind(&e))),
    }
}
