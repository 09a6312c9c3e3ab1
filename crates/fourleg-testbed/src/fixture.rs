//! The fixture contract (`fixtures/CONTRACT.md`) as the test bed provisions
//! it: the same users, clients, baselines, audiences and `may_act` scopes as
//! the bundled Keycloak realm (`fixtures/keycloak/realm-fourleg.json`),
//! including its fixed `sub` values.

/// The three permissions (contract §1), used as scope values as they are.
pub const PERMISSIONS: [&str; 3] = ["records:read", "records:write", "records:delete"];

/// Login scope whose token names `agent` in `may_act` (contract §5).
pub const MAY_ACT_AGENT: &str = "may-act-agent";
/// Exchange scope whose token names `sub-agent` in `may_act` (contract §5).
pub const MAY_ACT_SUB_AGENT: &str = "may-act-sub-agent";

/// A user (contract §2).
#[derive(Debug)]
pub struct User {
    pub username: &'static str,
    pub sub: &'static str,
    pub permissions: &'static [&'static str],
}

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A public login client: users log in through it (password grant here).
    Login,
    /// A confidential client with client credentials and token exchange.
    Exchanging,
    /// A resource server: it only introspects.
    Resource,
}

/// A client (contract §3).
#[derive(Debug)]
pub struct Client {
    pub client_id: &'static str,
    pub kind: Kind,
    /// The `sub` of its client-credentials token (its actor token).
    pub sub: Option<&'static str>,
    /// Scope values it may obtain: its permissions and `may_act` scopes.
    pub baseline: &'static [&'static str],
    /// Audiences its tokens may target (contract §4).
    pub targets: &'static [&'static str],
    /// Lifetime of the access tokens it obtains, in seconds.
    pub lifetime_s: i64,
}

impl Client {
    /// Public clients have no secret (RFC 6749 §2.1).
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.kind == Kind::Login
    }
}

/// Access tokens live 5 minutes (contract §6).
pub const LIFETIME_S: i64 = 300;
/// The short-lived login client's tokens live this long (contract §5):
/// long enough for a control call before expiry on a loaded machine.
pub const SHORT_LIFETIME_S: i64 = 5;

pub const USERS: [User; 3] = [
    User {
        username: "alice",
        sub: "f0000000-0000-4000-8000-000000000001",
        permissions: &["records:read", "records:write"],
    },
    User { username: "bob", sub: "f0000000-0000-4000-8000-000000000002", permissions: &["records:read"] },
    User {
        username: "carol",
        sub: "f0000000-0000-4000-8000-000000000003",
        permissions: &["records:read", "records:write", "records:delete"],
    },
];

const LOGIN_BASELINE: &[&str] = &["records:read", "records:write", "records:delete", MAY_ACT_AGENT];

pub const CLIENTS: [Client; 16] = [
    Client {
        client_id: "lab-web",
        kind: Kind::Login,
        sub: None,
        baseline: LOGIN_BASELINE,
        targets: &["agent"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "lab-web-short",
        kind: Kind::Login,
        sub: None,
        baseline: LOGIN_BASELINE,
        targets: &["agent"],
        lifetime_s: SHORT_LIFETIME_S,
    },
    // Like lab-web, with login tokens that carry no `aud` (contract §4).
    Client {
        client_id: "lab-web-noaud",
        kind: Kind::Login,
        sub: None,
        baseline: LOGIN_BASELINE,
        targets: &[],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "agent",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000101"),
        baseline: &["records:read", "records:delete", MAY_ACT_SUB_AGENT],
        targets: &["mcp-server", "sub-agent", "relay-1"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "mcp-server",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000102"),
        baseline: &["records:read", "records:write"],
        targets: &["downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "sub-agent",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000103"),
        baseline: &["records:read"],
        targets: &["mcp-server", "sub-agent"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "rogue-agent",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000104"),
        baseline: &["records:read", "records:write", "records:delete"],
        targets: &["mcp-server", "sub-agent"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-1",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000111"),
        baseline: &["records:read"],
        targets: &["relay-2", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-2",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000112"),
        baseline: &["records:read"],
        targets: &["relay-3", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-3",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000113"),
        baseline: &["records:read"],
        targets: &["relay-4", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-4",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000114"),
        baseline: &["records:read"],
        targets: &["relay-5", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-5",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000115"),
        baseline: &["records:read"],
        targets: &["relay-6", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-6",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000116"),
        baseline: &["records:read"],
        targets: &["relay-7", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-7",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000117"),
        baseline: &["records:read"],
        targets: &["relay-8", "downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "relay-8",
        kind: Kind::Exchanging,
        sub: Some("f0000000-0000-4000-8000-000000000118"),
        baseline: &["records:read"],
        targets: &["downstream-api"],
        lifetime_s: LIFETIME_S,
    },
    Client {
        client_id: "downstream-api",
        kind: Kind::Resource,
        sub: None,
        baseline: &[],
        targets: &[],
        lifetime_s: LIFETIME_S,
    },
];

/// A client by `client_id`.
#[must_use]
pub fn client(client_id: &str) -> Option<&'static Client> {
    CLIENTS.iter().find(|c| c.client_id == client_id)
}

/// The client whose actor token carries this `sub`.
#[must_use]
pub fn client_by_sub(sub: &str) -> Option<&'static Client> {
    CLIENTS.iter().find(|c| c.sub == Some(sub))
}

/// A user by username.
#[must_use]
pub fn user(username: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.username == username)
}

/// A user by `sub`.
#[must_use]
pub fn user_by_sub(sub: &str) -> Option<&'static User> {
    USERS.iter().find(|u| u.sub == sub)
}

/// Every audience value the server issues for (contract §4).
pub const AUDIENCES: [&str; 13] = [
    "agent",
    "mcp-server",
    "sub-agent",
    "rogue-agent",
    "downstream-api",
    "relay-1",
    "relay-2",
    "relay-3",
    "relay-4",
    "relay-5",
    "relay-6",
    "relay-7",
    "relay-8",
];

/// Resource indicators (RFC 8707) the server knows, and the audience each stands for.
pub const RESOURCES: [(&str, &str); 3] = [
    ("https://mcp-server.testbed.fourleg.test/", "mcp-server"),
    ("https://sub-agent.testbed.fourleg.test/", "sub-agent"),
    ("https://downstream-api.testbed.fourleg.test/", "downstream-api"),
];
