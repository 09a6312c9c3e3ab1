//! Target profiles: `fixtures/targets/<name>.toml`.
//!
//! A profile is everything a vendor writes to run the suite against their
//! implementation: where it is, how its clients authenticate, how each
//! principal gets a first token, what the abstract names of the fixture
//! contract (`records:delete`, `mcp-server`) are called there, which features
//! it declares, and which scenarios it is expected to fail, each with a
//! reason. See `fixtures/targets/README.md` for the format with examples.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A profile could not be used. Always names the file and, where one is at
/// fault, the field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read target profile {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type or an unknown field (toml names line, column and key).
    #[error("target profile {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A field parses but breaks a rule of the format.
    #[error("target profile {}: field `{field}`: {message}", path.display())]
    Invalid { path: PathBuf, field: String, message: String },
    /// A path was given and there is no file there.
    #[error("no target profile at {} (a path, since it has a `/` or ends in .toml); bundled targets are named without one: {known}", path.display())]
    NoFile { path: PathBuf, known: String },
    /// No profile by that name among the bundled ones.
    #[error("no target named `{name}` in {} (known: {known}); pass a path to use your own profile", dir.display())]
    Unknown { name: String, dir: PathBuf, known: String },
}

/// A target profile.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Stable name, used in reports (`keycloak`).
    pub name: String,
    /// The product (`Keycloak`).
    pub product: String,
    /// One sentence on what this target is and how it is configured.
    pub summary: String,
    /// For bundled lab targets: the lab service it runs on. Enables `{lab.…}`
    /// placeholders and secrets from the lab's credentials.
    #[serde(default)]
    pub lab: Option<String>,
    /// How the target's version is found.
    #[serde(default)]
    pub version: VersionSource,
    pub endpoints: Endpoints,
    /// Where users log in when it is not the target: a token broker in front
    /// of an identity provider. Logins (authorization, the code's token
    /// request) and logout go there; exchanges, introspection, revocation and
    /// the JWKS stay the target's.
    #[serde(default)]
    pub upstream: Option<Upstream>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// Clients by their contract name (`agent`, `mcp-server`, …).
    pub clients: BTreeMap<String, ClientProfile>,
    /// Users by their contract name (`alice`, …).
    pub users: BTreeMap<String, UserProfile>,
    /// Abstract permission (`records:read`) → the scope value at the target.
    pub permissions: BTreeMap<String, String>,
    /// Abstract audience (`mcp-server`) → the `audience` value at the target.
    pub audiences: BTreeMap<String, String>,
    /// How an exchange names the party it wants a token for: the `audience`
    /// parameter (RFC 8693 §2.1), `resource` (RFC 8707, each client's
    /// `resource` URI) or both. Default `audience`.
    #[serde(default)]
    pub targeting: Targeting,
    /// How to obtain a token whose `may_act` names a principal, by principal.
    #[serde(default)]
    pub may_act: BTreeMap<String, MayActRecipe>,
    /// How to obtain a user's login token whose `aud` also names a principal
    /// (`lab-web`, `rogue-agent`), by principal: extra login scope values.
    /// Attacks use it so that only the rule under test can refuse them.
    #[serde(default)]
    pub audience_also: BTreeMap<String, MayActRecipe>,
    /// How users get a token that expires within seconds (expired-token checks).
    #[serde(default)]
    pub short_lived: Option<ShortLived>,
    /// How users get a login token with no `aud` claim at all (another login
    /// client, extra scope values, or both): the subject of the attack that
    /// checks the audience rule is not skipped when `aud` is absent. Without
    /// it that attack is untestable.
    #[serde(default)]
    pub audience_none: Option<AudienceNone>,
    /// How to get a well-signed token from an issuer this target must not
    /// trust (another tenant, realm or deployment): the subject token of the
    /// untrusted-issuer attack. Without it that attack is untestable.
    #[serde(default)]
    pub foreign_issuer: Option<ForeignIssuer>,
    /// Only the scenarios of these areas (`suites/<area>/`) apply; the others
    /// are not applicable. For a profile that judges something beside the
    /// authorization server through its tokens (`["resource"]`: the
    /// protected resource of `[resource]`), so a column of the matrix says
    /// nothing twice. Empty (the default): every area.
    #[serde(default)]
    pub areas: Vec<String>,
    /// A protected resource (an MCP server, an API) that accepts this
    /// target's tokens: the `resource` scenarios judge it from outside, as a
    /// client would meet it. Without it they are not applicable.
    #[serde(default)]
    pub resource: Option<ProtectedResource>,
    /// What a client registered through RFC 7591 may do, as the target's
    /// policy says: the `registration` scenarios check that it holds.
    #[serde(default)]
    pub registration: Option<RegistrationPolicy>,
    /// How deep the target nests delegation (RFC 8693 §4.1).
    #[serde(default)]
    pub delegation: Delegation,
    #[serde(default)]
    pub introspection: Introspection,
    #[serde(default)]
    pub revocation: Revocation,
    #[serde(default)]
    pub logout: Logout,
    /// Commands the harness runs for operations with no protocol endpoint.
    #[serde(default)]
    pub hooks: Hooks,
    pub features: Features,
    /// Scenarios this target is known to fail, each with a reason.
    #[serde(default)]
    pub expected_failures: Vec<ExpectedFailure>,
}

/// `[resource]`: a protected resource in front of the target, in the
/// contract's place of the MCP server: it accepts the tokens this target
/// issues for the audience `mcp-server` and must refuse the others (the
/// `downstream-api` token its own exchange yields, say).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResource {
    /// The resource's URL, which is also its resource identifier (RFC 9728
    /// §1.2; for an MCP server, its canonical URI: `https://host/mcp`).
    pub url: String,
    /// How to call it: `mcp` (POST of a JSON-RPC `initialize`, the first
    /// request of an MCP session over streamable HTTP) or `http` (GET).
    #[serde(default)]
    pub protocol: ResourceProtocol,
    /// An MCP tool of the server that calls the API behind it (`mcp` only):
    /// the no-passthrough scenario calls it, then reads `downstream`.
    #[serde(default)]
    pub tool: Option<String>,
    /// A URL answering GET with what the API behind the resource received,
    /// newest last: `{"received": [<claims of each token>, …]}` (decoded
    /// claims, never a token). Without it, what the API saw is untestable.
    #[serde(default)]
    pub downstream: Option<String>,
    /// How long after a token's revocation (RFC 7009) the resource may
    /// still accept it, in seconds: 0 or a few for one that introspects,
    /// the tokens' lifetime for one that checks signatures only. Without
    /// it, the revoked-token scenario is untestable.
    #[serde(default)]
    pub revocation_window_s: Option<u64>,
    /// A tool that needs a scope beyond the one `tool` needs (`mcp` only):
    /// the tool-scope scenario calls it with a token lacking that scope,
    /// which the resource must refuse before acting. Without it, that
    /// scenario is untestable.
    #[serde(default)]
    pub scoped_tool: Option<ScopedTool>,
}

/// `[registration]`: the target's policy for clients registered
/// anonymously through RFC 7591.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationPolicy {
    /// Whether such a client may use token exchange (RFC 8693): `allowed`
    /// (one registered with the token-exchange grant exchanges its own
    /// token) or `refused` (none gets a token by exchange, however it
    /// registered: the registration may refuse the grant, or the token
    /// endpoint the exchange). Without it, the scenario that checks the
    /// policy is untestable.
    pub exchange: ExchangePolicy,
    /// Where the policy comes from (a realm setting, a product default),
    /// shown with the check.
    #[serde(default)]
    pub note: Option<String>,
}

/// `[registration] exchange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExchangePolicy {
    Allowed,
    Refused,
}

impl ExchangePolicy {
    /// The word a profile uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangePolicy::Allowed => "allowed",
            ExchangePolicy::Refused => "refused",
        }
    }
}

/// `[resource.scoped_tool]`: an MCP tool and the scope it needs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopedTool {
    /// The tool's name (`tools/call` `params.name`).
    pub name: String,
    /// The scope value the tool needs, one the `tool` does not: a
    /// permission of the profile's `[permissions]` (its key).
    pub scope: String,
    /// The tool's arguments (`params.arguments`), default `{}`.
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
}

/// How the harness calls a protected resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceProtocol {
    /// MCP over streamable HTTP: a POST of `initialize`.
    #[default]
    Mcp,
    /// A plain GET.
    Http,
}

/// How a user's login token comes without `aud`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceNone {
    /// A login client of the profile whose tokens carry no `aud`.
    #[serde(default)]
    pub client: Option<String>,
    /// Scope values added to the login.
    #[serde(default)]
    pub scope: Vec<String>,
}

/// The target's delegation depth limit (agent profile, AGENT-CHAIN-limit).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// The most actors an issued token's `act` nests; a request that would
    /// nest one more is refused. Undeclared: the agent profile's default, 8.
    /// The contract's relay clients (`relay-1` … `relay-8`, §4) build a chain
    /// one past it, so a limit above 8 cannot be checked.
    #[serde(default)]
    pub max_depth: Option<usize>,
}

/// The agent profile's default delegation depth limit, in actors.
pub const DEFAULT_MAX_DEPTH: usize = 8;

/// Where the version of the target comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionSource {
    /// A fixed version string.
    #[serde(default)]
    pub value: Option<String>,
    /// A command that prints the version.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// The target's endpoints: an issuer with discovery, explicit endpoints, or both
/// (explicit ones win).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    pub issuer: Option<String>,
    /// `openid` (`/.well-known/openid-configuration`) or `oauth` (RFC 8414).
    #[serde(default)]
    pub discovery: Discovery,
    pub token: Option<String>,
    pub introspection: Option<String>,
    pub revocation: Option<String>,
    /// RFC 7591 §3 client registration endpoint (default: the metadata's
    /// `registration_endpoint`).
    pub registration: Option<String>,
    pub jwks: Option<String>,
    pub authorization: Option<String>,
    pub end_session: Option<String>,
    /// Seconds one request may take before the target is reported too slow
    /// (a finding about the target, never a harness error). Default 30.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// The identity provider users log in at, for a target that is a broker in
/// front of it: its issuer with discovery, explicit endpoints, or both
/// (explicit ones win, and `[endpoints]`' own `authorization` and
/// `end_session` win over both).
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub issuer: Option<String>,
    /// `openid` (`/.well-known/openid-configuration`) or `oauth` (RFC 8414).
    #[serde(default)]
    pub discovery: Discovery,
    /// The token endpoint logins redeem their code (or password) at.
    pub token: Option<String>,
    pub authorization: Option<String>,
    pub end_session: Option<String>,
}

/// Seconds one request to a target may take, unless its profile says.
pub const DEFAULT_TIMEOUT_S: u64 = 30;

/// Which well-known document describes the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Discovery {
    /// OpenID Connect Discovery 1.0.
    #[default]
    Openid,
    /// RFC 8414 `/.well-known/oauth-authorization-server`.
    Oauth,
    /// No discovery: every endpoint is explicit.
    None,
}

/// How confidential clients authenticate (RFC 6749 §2.3, RFC 7591 names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    pub method: AuthMethod,
}

/// RFC 7591 `token_endpoint_auth_method` values the harness speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

/// How a token exchange names the party the token is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Targeting {
    /// `audience` with the value of `[audiences]` (RFC 8693 §2.1).
    #[default]
    Audience,
    /// `resource` with the client's `resource` URI (RFC 8707 §2, RFC 8693 §2.1).
    Resource,
    /// Both parameters.
    Both,
}

impl Targeting {
    /// Whether exchanges send `audience`.
    #[must_use]
    pub fn audience(self) -> bool {
        matches!(self, Self::Audience | Self::Both)
    }

    /// Whether exchanges send `resource`.
    #[must_use]
    pub fn resource(self) -> bool {
        matches!(self, Self::Resource | Self::Both)
    }
}

/// A client of the fixture contract.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientProfile {
    pub client_id: String,
    /// The `sub` of the client's own tokens, when known: then the harness
    /// never asks the target for it (see the identity prelude).
    #[serde(default)]
    pub sub: Option<String>,
    /// The resource URI (RFC 8707) that stands for this client when the
    /// profile's `targeting` is `resource` or `both`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Public clients have no secret.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub secret: Option<SecretSource>,
    /// Extra scope values to request with client credentials.
    #[serde(default)]
    pub scope: Vec<String>,
}

/// Where a secret comes from. Never written into reports.
///
/// Read by hand: a bare string (`secret = "s3cret"`) would otherwise be
/// refused with serde's list of every variant, `literal` included, which is
/// the one thing a vendor's profile may not use.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file holding the secret (trailing newline trimmed).
    File(PathBuf),
    /// The lab's generated credentials (bundled lab targets only).
    Lab(String),
    /// A literal (bundled lab targets only).
    Literal(String),
}

/// The table forms of [`SecretSource`].
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum SecretTable {
    Env(String),
    File(PathBuf),
    Lab(String),
    Literal(String),
}

impl schemars::JsonSchema for SecretSource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretSource".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        SecretTable::json_schema(generator)
    }
}

impl<'de> Deserialize<'de> for SecretSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        if value.is_str() {
            return Err(serde::de::Error::custom(
                "a secret is never written in the profile: use `{ env = \"VAR\" }` or `{ file = \"path\" }`",
            ));
        }
        let table = SecretTable::deserialize(value).map_err(serde::de::Error::custom)?;
        Ok(match table {
            SecretTable::Env(v) => Self::Env(v),
            SecretTable::File(p) => Self::File(p),
            SecretTable::Lab(v) => Self::Lab(v),
            SecretTable::Literal(v) => Self::Literal(v),
        })
    }
}

/// How a user gets their first token.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    pub username: String,
    /// The `sub` of the user's tokens, when known: then the harness never
    /// logs the user in to learn it (see the identity prelude).
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub password: Option<SecretSource>,
    pub login: LoginMethod,
    /// The client the user logs in through (a public client for authorization code).
    pub client: String,
    /// Redirect URI registered for that client (authorization code).
    #[serde(default)]
    pub redirect_uri: Option<String>,
    /// Scope values always requested at login (`openid`).
    #[serde(default)]
    pub base_scope: Vec<String>,
    /// An RFC 8707 `resource` sent with the login's token request (§2.2),
    /// for servers that set the user token's audience only from it (ToolHive's
    /// embedded authorization server): an absolute URI, the `agent` audience.
    #[serde(default)]
    pub resource: Option<String>,
    /// For `login = "command"`: prints a JSON token response or a bare token.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// For `login = "authorization-code"`: the names of the login form's
    /// fields, when they are not `username` and `password`.
    #[serde(default)]
    pub form: LoginForm,
}

/// The field names of an HTML login form (any well-formed form with a text
/// and a password field works; these say which fields when there are several).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    /// The field that takes the username. Default `username`.
    #[serde(default = "default_username_field")]
    pub username: String,
    /// The field that takes the password. Default `password`.
    #[serde(default = "default_password_field")]
    pub password: String,
}

fn default_username_field() -> String {
    "username".into()
}

fn default_password_field() -> String {
    "password".into()
}

impl Default for LoginForm {
    fn default() -> Self {
        Self { username: default_username_field(), password: default_password_field() }
    }
}

/// How a user's first token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMethod {
    /// Authorization code + PKCE S256 with a scripted form login (RFC 6749 §4.1, RFC 7636).
    AuthorizationCode,
    /// Resource owner password credentials (RFC 6749 §4.3), for targets
    /// without a login page (the grant is deprecated by OAuth 2.1 but still
    /// the only way into many headless servers).
    Password,
    /// An external command prints the token.
    Command,
}

/// How to get a token whose `may_act` names a principal.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MayActRecipe {
    /// Extra scope values to request (at login for users, at exchange for clients).
    #[serde(default)]
    pub scope: Vec<String>,
}

/// How a user gets a token that expires within seconds: through another
/// login client, with extra scope values, with extra parameters, or any mix.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShortLived {
    /// A client of the profile, like the users' login client but issuing
    /// access tokens that live a few seconds.
    #[serde(default)]
    pub client: Option<String>,
    /// Scope values added to the login (a scope the target maps to a short
    /// lifetime).
    #[serde(default)]
    pub scope: Vec<String>,
    /// Parameters added to the login request (the authorization request for
    /// `authorization-code`, the token request for `password`), e.g. a
    /// vendor's `max_token_lifetime = "5"`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Seconds past `exp` the target still accepts a token: the small leeway
    /// for clock skew that RFC 7519 §4.1.4 allows. Waits for expiry wait this
    /// much longer, so a declared leeway is never reported as a deviation.
    #[serde(default)]
    pub leeway_s: u64,
}

/// A token from an issuer the target must not trust, obtained by an ordinary
/// token request there (RFC 6749 §4.3 or §4.4) or printed by a command.
///
/// The attack proves its rule only when the token would be acceptable but
/// for its issuer: the same user, an `aud` naming the requesting client, the
/// scope the genuine login gets. A second realm or tenant of the same product,
/// configured like the first, is the natural source.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForeignIssuer {
    /// The untrusted issuer's token endpoint (`{lab.…}` placeholders allowed).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// `password` or `client_credentials`.
    #[serde(default)]
    pub grant: Option<ForeignGrant>,
    /// The client at the untrusted issuer.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Its secret, sent as `client_secret` in the form; none for a public client.
    #[serde(default)]
    pub client_secret: Option<SecretSource>,
    /// For `grant = "password"`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretSource>,
    /// Scope values requested there.
    #[serde(default)]
    pub scope: Vec<String>,
    /// Instead of a token request: a command that prints a JSON token
    /// response or a bare token.
    #[serde(default)]
    pub command: Option<Vec<String>>,
}

/// The grant a [`ForeignIssuer`] token is requested with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForeignGrant {
    /// Resource owner password credentials (RFC 6749 §4.3).
    Password,
    /// Client credentials (RFC 6749 §4.4).
    ClientCredentials,
}

/// Which client makes a request about a token (introspection, revocation).
///
/// In the TOML: `"audience"`, `"issued-to"` or `{ client = "<name>" }`. A
/// bare client name (`as = "agent"`, the old spelling) still reads as
/// `{ client = "agent" }`; every client name is checked against the
/// profile's clients at load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Caller {
    /// A confidential contract client in the token's `aud` (else the audience
    /// its exchange asked for, else the client that obtained it).
    Audience,
    /// The client the token was issued to (`azp`/`client_id`, else the client
    /// that obtained it).
    IssuedTo,
    /// Always this contract client.
    Client(String),
}

impl<'de> Deserialize<'de> for Caller {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Named {
            client: String,
        }
        let value = toml::Value::deserialize(d)?;
        if let Some(s) = value.as_str() {
            return Ok(match s {
                "audience" => Self::Audience,
                "issued-to" => Self::IssuedTo,
                other => Self::Client(other.to_owned()),
            });
        }
        let named = Named::deserialize(value).map_err(|e| {
            serde::de::Error::custom(format!("expected \"audience\", \"issued-to\" or {{ client = \"<name>\" }}: {e}"))
        })?;
        Ok(Self::Client(named.client))
    }
}

/// Who introspects a token (RFC 7662 §2.1 requires an authorized caller).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    /// Default `audience`.
    #[serde(default = "default_introspect_as")]
    pub r#as: Caller,
}

fn default_introspect_as() -> Caller {
    Caller::Audience
}

impl Default for Introspection {
    fn default() -> Self {
        Self { r#as: default_introspect_as() }
    }
}

/// Who revokes a token (RFC 7009 §2.1: the client it was issued to).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Default `issued-to`.
    #[serde(default = "default_revoke_as")]
    pub r#as: Caller,
}

fn default_revoke_as() -> Caller {
    Caller::IssuedTo
}

impl Default for Revocation {
    fn default() -> Self {
        Self { r#as: default_revoke_as() }
    }
}

/// How a user's session is ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    pub method: LogoutMethod,
}

/// Ways of ending a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogoutMethod {
    /// RFC 7009 revocation of the login's refresh token (needs the
    /// `refresh-tokens` feature).
    #[default]
    RevokeRefreshToken,
    /// OpenID Connect RP-Initiated Logout 1.0 §2 at `end_session_endpoint`:
    /// a form POST with `id_token_hint` (the login's ID token) and
    /// `client_id`. Needs `openid` in the login's scope.
    RpInitiated,
    /// Keycloak's back-channel form at `end_session_endpoint`: a POST with
    /// the login's `refresh_token` and the client's authentication (needs
    /// the `refresh-tokens` feature). `end-session` is the old name.
    #[serde(alias = "end-session")]
    EndSessionRefreshToken,
    /// No way to log out.
    None,
}

impl LogoutMethod {
    /// The field of the login's token response the method sends.
    #[must_use]
    pub fn needs(self) -> Option<&'static str> {
        match self {
            Self::RevokeRefreshToken | Self::EndSessionRefreshToken => Some("refresh_token"),
            Self::RpInitiated => Some("id_token"),
            Self::None => None,
        }
    }
}

/// Operations without a protocol endpoint, as a command to run or a URL to
/// POST to (an admin API). `{client_id}` is replaced in both; `{fourleg}` is
/// the running fourleg binary; `{lab.<service>}` the lab service's URL.
///
/// A command runs with `FOURLEG_STATE` set to the lab's state directory (lab
/// targets) and succeeds when it exits 0. A URL is sent `POST` with
/// `Content-Type: application/json` and the body
/// `{"client_id": "<client_id>", "enabled": false}` (`true` to enable), and
/// succeeds on any 2xx.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    /// Command that disables a client.
    #[serde(default)]
    pub disable_client: Option<Vec<String>>,
    /// Command that enables it again.
    #[serde(default)]
    pub enable_client: Option<Vec<String>>,
    /// URL to POST to (no body) to disable a client, instead of a command.
    #[serde(default)]
    pub disable_client_url: Option<String>,
    /// URL to POST to to enable it again.
    #[serde(default)]
    pub enable_client_url: Option<String>,
}

/// Features a target declares. Scenarios needing an undeclared feature are
/// `not-applicable`, shown with the reason, never hidden.
///
/// One spelling everywhere: the kebab-case names of [`Features::NAMES`], as
/// keys of `[features]`, of `[features.notes]` and in a scenario's
/// `requires`. The snake_case keys of older profiles (`may_act`) still read.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Features {
    /// RFC 8693 delegation: `actor_token` accepted and `act` issued.
    pub delegation: bool,
    /// `may_act` in subject tokens is enforced.
    #[serde(alias = "may_act")]
    pub may_act: bool,
    /// RFC 7662 introspection.
    pub introspection: bool,
    /// RFC 7009 revocation.
    pub revocation: bool,
    /// RFC 7009 §2: revocation of access tokens ("SHOULD support"; refresh
    /// tokens are a MUST). A target without it answers an access token's
    /// revocation `unsupported_token_type` (§2.2.1), which is conformant:
    /// declared false, that answer is `not-applicable`, and scenarios that
    /// revoke an access token to test what follows are not-applicable.
    #[serde(default = "yes", alias = "access_token_revocation")]
    pub access_token_revocation: bool,
    /// Revoking a token (RFC 7009) also revokes every token exchanged from
    /// it, transitively: the agent profile's cascade, which RFC 8693 §2.1
    /// leaves to the implementation. Scenarios test it whatever is declared;
    /// `fourleg bench` reads it to say whether its subtree-revocation figure
    /// is one the target claims (undeclared, it is measured and reported all
    /// the same, as "not reached" when it is not).
    #[serde(default, alias = "revokes_subtree")]
    pub revokes_subtree: bool,
    /// RFC 8707 `resource` in token exchange.
    pub resource: bool,
    /// User logins get a refresh token (RFC 6749 §1.5, §5.1: issuing one is
    /// the server's choice). Scenarios that revoke a refresh token, and
    /// logout methods that send one, need it. Default true.
    #[serde(default = "yes", alias = "refresh_tokens")]
    pub refresh_tokens: bool,
    /// Sessions can be ended (see `[logout]`).
    #[serde(default)]
    pub logout: bool,
    /// Clients can be disabled (see `[hooks]`).
    #[serde(default, alias = "disable_client")]
    pub disable_client: bool,
    /// Confidential clients can obtain their own tokens by `client_credentials`
    /// (RFC 6749 §4.4) as often as asked: actor tokens, and a client's `sub`.
    /// When false, steps that need a client's own token are `untestable`
    /// with the note as the reason.
    #[serde(default = "yes", alias = "client_credentials")]
    pub client_credentials: bool,
    /// Token exchange issues refresh tokens when asked (`requested_token_type`
    /// refresh_token), which RFC 8693 §2.2.1 says is typically not done for
    /// one temporary credential exchanged for another. Default false: the
    /// agent profile then requires that no exchange yield one.
    #[serde(default, alias = "exchange_refresh_tokens")]
    pub exchange_refresh_tokens: bool,
    /// DPoP (RFC 9449) at the token endpoint: a token request's proof is
    /// checked (§4.3) and the access token bound to its key (§5, §6). The
    /// `dpop` scenarios need it: logins and exchanges carrying proofs.
    #[serde(default)]
    pub dpop: bool,
    /// Dynamic client registration (RFC 7591) open to anonymous clients, and
    /// its management (RFC 7592): the `registration` scenarios register a
    /// client, use it, then delete it.
    #[serde(default)]
    pub registration: bool,
    /// Why features are off, by feature name (shown with not-applicable results).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Features {
    /// Whether the feature named as in [`Features::NAMES`] is declared.
    #[must_use]
    pub fn has(&self, name: &str) -> Option<bool> {
        Some(match name {
            "delegation" => self.delegation,
            "may-act" => self.may_act,
            "introspection" => self.introspection,
            "revocation" => self.revocation,
            "access-token-revocation" => self.revocation && self.access_token_revocation,
            "resource" => self.resource,
            "refresh-tokens" => self.refresh_tokens,
            "logout" => self.logout,
            "disable-client" => self.disable_client,
            "client-credentials" => self.client_credentials,
            "revokes-subtree" => self.revokes_subtree,
            "exchange-refresh-tokens" => self.exchange_refresh_tokens,
            "dpop" => self.dpop,
            "registration" => self.registration,
            _ => return None,
        })
    }

    /// The note on a feature, by its name (an older snake_case key too).
    #[must_use]
    pub fn note(&self, name: &str) -> Option<&str> {
        self.notes.get(name).or_else(|| self.notes.get(&name.replace('-', "_"))).map(String::as_str)
    }

    /// Every feature name, as `[features]`, `[features.notes]` and scenarios spell it.
    pub const NAMES: [&'static str; 14] = [
        "delegation",
        "may-act",
        "introspection",
        "revocation",
        "access-token-revocation",
        "resource",
        "refresh-tokens",
        "logout",
        "disable-client",
        "client-credentials",
        "revokes-subtree",
        "exchange-refresh-tokens",
        "dpop",
        "registration",
    ];

    /// An unknown feature name: what to say, with the nearest known name.
    #[must_use]
    pub fn unknown(name: &str) -> String {
        let nearest =
            nearest(name, Self::NAMES.iter().copied()).map(|n| format!("did you mean `{n}`? ")).unwrap_or_default();
        format!("unknown feature `{name}`; {nearest}known features: {}", Self::NAMES.join(", "))
    }

    /// The kebab-case name of a key as written (`may_act` → `may-act`), if it
    /// names a feature.
    #[must_use]
    pub fn canonical(key: &str) -> Option<&'static str> {
        let kebab = key.replace('_', "-");
        Self::NAMES.iter().copied().find(|n| *n == kebab)
    }
}

/// The candidate nearest to `name` by edit distance, when near enough to be
/// a likely typo.
#[must_use]
pub fn nearest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(c, name), c))
        .min()
        .filter(|(d, _)| *d <= name.len() / 3 + 2)
        .map(|(_, c)| c)
}

/// Levenshtein distance, for "did you mean".
#[must_use]
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A scenario the target is known to fail.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectedFailure {
    pub scenario: String,
    pub reason: String,
}

impl Profile {
    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ProfileError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and validates profile text; `path` is for messages.
    ///
    /// A parse error names the line and the field, and never quotes the
    /// profile's text: the offending line may hold a secret.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ProfileError> {
        // Unknown feature names first, so the message can offer the nearest
        // one (serde's would list them all, and never the `-`/`_` slip).
        if let Ok(table) = text.parse::<toml::Table>() {
            if let Some(features) = table.get("features").and_then(toml::Value::as_table) {
                for key in features.keys().filter(|k| *k != "notes") {
                    if Features::canonical(key).is_none() {
                        return Err(ProfileError::Invalid {
                            path: path.to_owned(),
                            field: format!("features.{key}"),
                            message: Features::unknown(key),
                        });
                    }
                }
            }
        }
        let profile: Profile = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|sp| text[..sp.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            let named = if field == "." || field.is_empty() { String::new() } else { format!("field `{field}`: ") };
            let message = format!("{at}{named}{}", inner.message());
            ProfileError::Parse { path: path.to_owned(), message }
        })?;
        profile.validate(path)?;
        Ok(profile)
    }

    fn validate(&self, path: &Path) -> Result<(), ProfileError> {
        let bad = |field: String, message: String| ProfileError::Invalid { path: path.to_owned(), field, message };
        if self.endpoints.issuer.is_none() && self.endpoints.token.is_none() {
            return Err(bad("endpoints".into(), "expected `issuer` (with discovery) or at least `token`".into()));
        }
        if self.endpoints.discovery == Discovery::None && self.endpoints.token.is_none() {
            return Err(bad("endpoints.token".into(), "required when `discovery = \"none\"`".into()));
        }
        for (name, c) in &self.clients {
            match (&c.secret, c.public) {
                (None, false) => {
                    return Err(bad(
                        format!("clients.{name}.secret"),
                        "a confidential client needs `secret = { env = \"VAR\" }` or `{ file = \"path\" }` (or set `public = true`)"
                            .into(),
                    ))
                }
                (Some(_), true) => {
                    return Err(bad(format!("clients.{name}.secret"), "a public client has no secret".into()))
                }
                (Some(SecretSource::Literal(_) | SecretSource::Lab(_)), _) if self.lab.is_none() => {
                    return Err(bad(
                        format!("clients.{name}.secret"),
                        "literal and lab secrets are allowed only in bundled lab targets; use `{ env = \"VAR\" }` or `{ file = \"path\" }`"
                            .into(),
                    ))
                }
                _ => {}
            }
        }
        for (name, u) in &self.users {
            if !self.clients.contains_key(&u.client) {
                return Err(bad(
                    format!("users.{name}.client"),
                    format!("`{}` is not one of the profile's clients", u.client),
                ));
            }
            match u.login {
                LoginMethod::AuthorizationCode | LoginMethod::Password if u.password.is_none() => {
                    return Err(bad(format!("users.{name}.password"), "required for this login method".into()))
                }
                LoginMethod::AuthorizationCode if u.redirect_uri.is_none() => {
                    return Err(bad(
                        format!("users.{name}.redirect_uri"),
                        "required for `login = \"authorization-code\"`".into(),
                    ))
                }
                LoginMethod::Command if u.command.as_ref().is_none_or(Vec::is_empty) => {
                    return Err(bad(format!("users.{name}.command"), "required for `login = \"command\"`".into()))
                }
                LoginMethod::Command if u.resource.is_some() => {
                    return Err(bad(
                        format!("users.{name}.resource"),
                        "a login command makes its own token request; pass the resource to it".into(),
                    ))
                }
                _ => {}
            }
            // RFC 8707 §2: an absolute URI without a fragment.
            if let Some(r) = &u.resource {
                if url::Url::parse(r).map_or(true, |r| r.fragment().is_some()) {
                    return Err(bad(
                        format!("users.{name}.resource"),
                        format!("`{r}` is not an absolute URI without a fragment (RFC 8707 §2)"),
                    ));
                }
            }
            if let Some(SecretSource::Literal(_) | SecretSource::Lab(_)) = &u.password {
                if self.lab.is_none() {
                    return Err(bad(
                        format!("users.{name}.password"),
                        "literal and lab passwords are allowed only in bundled lab targets".into(),
                    ));
                }
            }
        }
        let client_names = || self.clients.keys().map(String::as_str);
        let unknown_client = |field: String, name: &str| {
            let nearest = nearest(name, client_names()).map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default();
            bad(field, format!("`{name}` is not one of the profile's clients{nearest}"))
        };
        if let Some(sl) = &self.short_lived {
            if let Some(c) = &sl.client {
                if !self.clients.contains_key(c) {
                    return Err(unknown_client("short_lived.client".into(), c));
                }
            }
            if sl.client.is_none() && sl.scope.is_empty() && sl.params.is_empty() {
                return Err(bad(
                    "short_lived".into(),
                    "say how a short-lived token is obtained: `client`, `scope` or `params` (or drop [short_lived])"
                        .into(),
                ));
            }
        }
        if self.delegation.max_depth == Some(0) {
            return Err(bad(
                "delegation.max_depth".into(),
                "a delegation depth limit counts the actors an issued token's act may nest: at least 1 (or drop [delegation] for the agent profile's default, 8)".into(),
            ));
        }
        if let Some(r) = &self.resource {
            if url::Url::parse(&r.url.replace("{lab.", "http://lab.").replace('}', "")).is_err() {
                return Err(bad("resource.url".into(), format!("`{}` is not an absolute URL", r.url)));
            }
            for needed in ["mcp-server", "downstream-api"] {
                if !self.audiences.contains_key(needed) {
                    return Err(bad(
                        "audiences".into(),
                        format!("[resource] needs the contract audience `{needed}` (the resource's, and one it must refuse)"),
                    ));
                }
            }
            if let Some(t) = &r.scoped_tool {
                if !self.permissions.contains_key(&t.scope) {
                    return Err(bad(
                        "resource.scoped_tool.scope".into(),
                        format!("`{}` is not a permission of [permissions] (the scope the tool needs)", t.scope),
                    ));
                }
                if r.protocol != ResourceProtocol::Mcp {
                    return Err(bad(
                        "resource.scoped_tool".into(),
                        "a tool is called over MCP: `protocol = \"mcp\"`".into(),
                    ));
                }
            }
        }
        if let Some(none) = &self.audience_none {
            if let Some(c) = &none.client {
                if !self.clients.contains_key(c) {
                    return Err(unknown_client("audience_none.client".into(), c));
                }
            }
            if none.client.is_none() && none.scope.is_empty() {
                return Err(bad(
                    "audience_none".into(),
                    "say how a token without aud is obtained: `client` or `scope` (or drop [audience_none])".into(),
                ));
            }
        }
        if let Some(f) = &self.foreign_issuer {
            if f.command.is_none() {
                let missing = [
                    ("token_endpoint", f.token_endpoint.is_none()),
                    ("grant", f.grant.is_none()),
                    ("client_id", f.client_id.is_none()),
                    ("username", f.grant == Some(ForeignGrant::Password) && f.username.is_none()),
                    ("password", f.grant == Some(ForeignGrant::Password) && f.password.is_none()),
                ];
                if let Some((field, _)) = missing.iter().find(|(_, m)| *m) {
                    return Err(bad(
                        format!("foreign_issuer.{field}"),
                        "missing: say how a token of the untrusted issuer is requested (`token_endpoint`, `grant`, `client_id`, and `username`/`password` for the password grant), or give a `command`".into(),
                    ));
                }
            }
            for (field, src) in [("client_secret", &f.client_secret), ("password", &f.password)] {
                if let Some(SecretSource::Literal(_) | SecretSource::Lab(_)) = src {
                    if self.lab.is_none() {
                        return Err(bad(
                            format!("foreign_issuer.{field}"),
                            "literal and lab secrets are allowed only in bundled lab targets".into(),
                        ));
                    }
                }
            }
        }
        for (field, caller, default) in [
            ("introspection.as", &self.introspection.r#as, "audience"),
            ("revocation.as", &self.revocation.r#as, "issued-to"),
        ] {
            if let Caller::Client(c) = caller {
                if !self.clients.contains_key(c) {
                    let nearest = nearest(c, ["audience", "issued-to"].into_iter().chain(client_names()))
                        .map(|n| format!("did you mean `{n}`? "))
                        .unwrap_or_default();
                    return Err(bad(
                        field.into(),
                        format!(
                            "`{c}` is neither `audience`, `issued-to` nor a client of the profile; {nearest}expected \"{default}\", \"audience\", \"issued-to\" or {{ client = \"<name>\" }} with one of: {}",
                            client_names().collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        if let Some(needs) = self.logout.method.needs() {
            if needs == "refresh_token" && self.features.logout && !self.features.refresh_tokens {
                return Err(bad(
                    "logout.method".into(),
                    "this method sends the login's refresh token, and the profile declares `refresh-tokens = false`; use `rp-initiated` (id_token_hint) or declare `logout = false`".into(),
                ));
            }
        }
        if self.targeting.resource() {
            for name in self.audiences.keys() {
                if self.clients.get(name).is_some_and(|c| c.resource.is_none()) {
                    return Err(bad(
                        format!("clients.{name}.resource"),
                        "`targeting` sends `resource`: give each client that is an audience its resource URI".into(),
                    ));
                }
            }
        }
        for (i, x) in self.expected_failures.iter().enumerate() {
            if x.reason.trim().is_empty() {
                return Err(bad(
                    format!("expected_failures[{i}].reason"),
                    format!("expected failure of `{}` has no reason; say why it fails", x.scenario),
                ));
            }
        }
        for name in self.features.notes.keys() {
            if Features::canonical(name).is_none() {
                return Err(bad(format!("features.notes.{name}"), Features::unknown(name)));
            }
        }
        Ok(())
    }

    /// The expected-failure reason of a scenario, if any.
    #[must_use]
    pub fn expected_failure(&self, scenario: &str) -> Option<&str> {
        self.expected_failures.iter().find(|x| x.scenario == scenario).map(|x| x.reason.as_str())
    }
}

/// The JSON Schema of a target profile (`fixtures/targets/profile.schema.json`),
/// for editors; a test keeps the committed one current.
#[must_use]
pub fn schema() -> String {
    let s = schemars::schema_for!(Profile);
    serde_json::to_string_pretty(&s).expect("the schema serialises") + "\n"
}

/// The bundled profiles in `dir` (`fixtures/targets`), by name.
pub fn bundled(dir: &Path) -> Result<BTreeMap<String, PathBuf>, ProfileError> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|source| ProfileError::Read { path: dir.to_owned(), source })?;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "toml") {
            if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                out.insert(stem.to_owned(), p.clone());
            }
        }
    }
    Ok(out)
}

/// Resolves `name_or_path`: an existing file, else a bundled profile name.
pub fn resolve(name_or_path: &str, dir: &Path) -> Result<PathBuf, ProfileError> {
    let p = Path::new(name_or_path);
    if p.is_file() {
        return Ok(p.to_owned());
    }
    let known = bundled(dir)?;
    if name_or_path.contains('/') || p.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        return Err(ProfileError::NoFile {
            path: p.to_owned(),
            known: known.keys().cloned().collect::<Vec<_>>().join(", "),
        });
    }
    known.get(name_or_path).cloned().ok_or_else(|| ProfileError::Unknown {
        name: name_or_path.to_owned(),
        dir: dir.to_owned(),
        known: known.keys().cloned().collect::<Vec<_>>().join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_string_secret_says_how_to_give_one() {
        let text = MINIMAL.replace("secret = { env = \"AGENT_SECRET\" }", "secret = \"s3cret\"");
        let err = Profile::parse(&text, Path::new("vendor.toml")).unwrap_err().to_string();
        assert!(err.contains("clients.agent.secret"), "{err}");
        assert!(err.contains("{ env = \"VAR\" }"), "{err}");
        assert!(!err.contains("literal"), "{err}");
        assert!(!err.contains("s3cret"), "the secret is not echoed: {err}");
    }

    #[test]
    fn a_path_that_is_not_there_is_not_called_a_name() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/targets");
        let err = resolve("./nosuch.toml", &dir).unwrap_err().to_string();
        assert!(err.starts_with("no target profile at ./nosuch.toml"), "{err}");
        assert!(err.contains("keycloak"), "{err}");
        let err = resolve("nosuch", &dir).unwrap_err().to_string();
        assert!(err.starts_with("no target named `nosuch`"), "{err}");
    }

    const MINIMAL: &str = r#"
name = "vendor"
product = "Vendor IdP"
summary = "a test"
[endpoints]
issuer = "https://idp.example"
[clients.agent]
client_id = "agent"
secret = { env = "AGENT_SECRET" }
[clients.web]
client_id = "web"
public = true
[users.alice]
username = "alice"
password = { env = "ALICE_PASSWORD" }
login = "password"
client = "web"
[permissions]
"records:read" = "read"
[audiences]
mcp-server = "mcp"
[features]
delegation = true
may_act = true
introspection = true
revocation = true
resource = false
"#;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("fixtures/targets/vendor.toml"))
    }

    #[test]
    fn a_minimal_vendor_profile_parses() {
        let p = parse(MINIMAL).unwrap();
        assert_eq!(p.client_auth.method, AuthMethod::ClientSecretBasic);
        assert_eq!(p.introspection.r#as, Caller::Audience);
        assert_eq!(p.revocation.r#as, Caller::IssuedTo);
        assert_eq!(p.features.has("may-act"), Some(true));
    }

    #[test]
    fn a_login_resource_must_be_an_absolute_uri() {
        let with = |r: &str| MINIMAL.replace("client = \"web\"", &format!("client = \"web\"\nresource = \"{r}\""));
        let p = parse(&with("https://agent.example")).unwrap();
        assert_eq!(p.users["alice"].resource.as_deref(), Some("https://agent.example"));
        for bad in ["agent", "https://agent.example/#frag"] {
            let err = parse(&with(bad)).unwrap_err().to_string();
            assert!(err.contains("users.alice.resource"), "{err}");
            assert!(err.contains("RFC 8707"), "{err}");
        }
    }

    #[test]
    fn an_unknown_field_names_file_line_and_field() {
        let text = MINIMAL.replace("summary = \"a test\"", "summary = \"a test\"\nsumary = \"typo\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("vendor.toml"), "{err}");
        assert!(err.contains("sumary"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn an_expected_failure_without_reason_is_refused() {
        let text = format!("{MINIMAL}\n[[expected_failures]]\nscenario = \"x\"\nreason = \" \"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("expected_failures[0].reason"), "{err}");
    }

    #[test]
    fn literal_secrets_are_for_lab_targets_only() {
        let text = MINIMAL.replace("secret = { env = \"AGENT_SECRET\" }", "secret = { literal = \"s3cret\" }");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("clients.agent.secret"), "{err}");
        let lab = format!("lab = \"keycloak\"\n{text}");
        assert!(parse(&lab).is_ok());
    }

    #[test]
    fn a_confidential_client_without_secret_is_named() {
        let text = MINIMAL.replace("secret = { env = \"AGENT_SECRET\" }\n", "");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("clients.agent.secret"), "{err}");
    }

    #[test]
    fn a_user_logging_in_through_an_unknown_client_is_named() {
        let text = MINIMAL.replace("client = \"web\"", "client = \"nope\"");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("users.alice.client"), "{err}");
    }

    #[test]
    fn an_unknown_feature_names_the_field_and_the_nearest_name() {
        let text = MINIMAL.replace("resource = false", "resource = false\nlogut = true");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("field `features.logut`"), "{err}");
        assert!(err.contains("did you mean `logout`?"), "{err}");
        let text = format!("{MINIMAL}\n[features.notes]\nmay-akt = \"x\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("features.notes.may-akt") && err.contains("`may-act`"), "{err}");
    }

    #[test]
    fn feature_names_have_one_spelling_and_the_old_one_still_reads() {
        let kebab = MINIMAL.replace("may_act = true", "may-act = true\nclient-credentials = false");
        let p = parse(&kebab).unwrap();
        assert_eq!((p.features.has("may-act"), p.features.has("client-credentials")), (Some(true), Some(false)));
        let p = parse(&format!("{MINIMAL}\n[features.notes]\nmay_act = \"old key\"\n")).unwrap();
        assert_eq!(p.features.note("may-act"), Some("old key"));
        assert_eq!(Features::NAMES.iter().filter(|n| n.contains('_')).count(), 0);
    }

    #[test]
    fn a_bad_introspection_or_revocation_caller_names_the_field() {
        let text = format!("{MINIMAL}\n[introspection]\nas = \"audiense\"\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("field `introspection.as`") && err.contains("did you mean `audience`?"), "{err}");
        let text = format!("{MINIMAL}\n[revocation]\nas = {{ client = \"agnet\" }}\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("field `revocation.as`") && err.contains("`agent`"), "{err}");
        let text = format!("{MINIMAL}\n[revocation]\nas = {{ client = \"agent\" }}\n[introspection]\nas = \"agent\"\n");
        let p = parse(&text).unwrap();
        assert_eq!(p.revocation.r#as, Caller::Client("agent".into()));
        assert_eq!(p.introspection.r#as, Caller::Client("agent".into()), "the old bare-name spelling");
        let text = format!("{MINIMAL}\n[revocation]\nas = 3\n");
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("revocation.as") && err.contains("issued-to"), "{err}");
    }

    #[test]
    fn a_logout_that_needs_a_refresh_token_needs_the_feature() {
        let text = MINIMAL.replace("resource = false", "resource = false\nlogout = true\nrefresh-tokens = false");
        let err = parse(&format!("{text}\n[logout]\nmethod = \"end-session\"\n")).unwrap_err().to_string();
        assert!(err.contains("logout.method") && err.contains("rp-initiated"), "{err}");
        assert!(parse(&format!("{text}\n[logout]\nmethod = \"rp-initiated\"\n")).is_ok());
    }

    #[test]
    fn a_foreign_issuer_names_what_is_missing() {
        let err = parse(&format!(
            "{MINIMAL}\n[foreign_issuer]\ntoken_endpoint = \"http://other/token\"\ngrant = \"password\"\nclient_id = \"web\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("field `foreign_issuer.username`"), "{err}");
        let ok = "[foreign_issuer]\ntoken_endpoint = \"http://other/token\"\ngrant = \"client_credentials\"\nclient_id = \"x\"\nclient_secret = { env = \"X\" }\n";
        assert!(parse(&format!("{MINIMAL}\n{ok}")).is_ok());
        assert!(parse(&format!("{MINIMAL}\n[foreign_issuer]\ncommand = [\"mint\"]\n")).is_ok());
        let err = parse(&format!("{MINIMAL}\n[foreign_issuer]\ngrant = \"implicit\"\n")).unwrap_err().to_string();
        assert!(err.contains("implicit"), "{err}");
    }

    #[test]
    fn a_delegation_depth_limit_is_at_least_one_actor() {
        let err = parse(&format!("{MINIMAL}\n[delegation]\nmax_depth = 0\n")).unwrap_err().to_string();
        assert!(err.contains("delegation.max_depth"), "{err}");
        let p = parse(&format!("{MINIMAL}\n[delegation]\nmax_depth = 5\n")).unwrap();
        assert_eq!(crate::Contract::new(&p).max_delegation_depth(), (5, true));
        let p = parse(MINIMAL).unwrap();
        assert_eq!(crate::Contract::new(&p).max_delegation_depth(), (DEFAULT_MAX_DEPTH, false));
    }

    #[test]
    fn a_token_without_aud_needs_a_recipe_with_a_known_client() {
        let err = parse(&format!("{MINIMAL}\n[audience_none]\n")).unwrap_err().to_string();
        assert!(err.contains("field `audience_none`"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[audience_none]\nclient = \"nobody\"\n")).unwrap_err().to_string();
        assert!(err.contains("audience_none.client"), "{err}");
        assert!(parse(&format!("{MINIMAL}\n[audience_none]\nscope = [\"no-aud\"]\n")).is_ok());
    }

    #[test]
    fn short_lived_tokens_need_a_recipe() {
        let err = parse(&format!("{MINIMAL}\n[short_lived]\nleeway_s = 1\n")).unwrap_err().to_string();
        assert!(err.contains("field `short_lived`"), "{err}");
        assert!(parse(&format!("{MINIMAL}\n[short_lived]\nscope = [\"short\"]\n")).is_ok());
    }

    #[test]
    fn the_committed_profile_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/targets/profile.schema.json");
        let generated = schema();
        if std::env::var_os("FOURLEG_REGENERATE").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "fixtures/targets/profile.schema.json is not what the types generate; regenerate it: FOURLEG_REGENERATE=1 cargo test -p fourleg-target --lib schema"
        );
    }

    #[test]
    fn the_bundled_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/targets");
        let all = bundled(&dir).unwrap();
        assert!(all.contains_key("keycloak"), "{all:?}");
        for path in all.values() {
            Profile::load(path).unwrap();
        }
    }
}
