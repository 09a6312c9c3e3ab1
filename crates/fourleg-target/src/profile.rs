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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// How to obtain a token whose `may_act` names a principal, by principal.
    #[serde(default)]
    pub may_act: BTreeMap<String, MayActRecipe>,
    /// How users get a token that expires within seconds (expired-token checks).
    #[serde(default)]
    pub short_lived: Option<ShortLived>,
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

/// Where the version of the target comes from.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoints {
    pub issuer: Option<String>,
    /// `openid` (`/.well-known/openid-configuration`) or `oauth` (RFC 8414).
    #[serde(default)]
    pub discovery: Discovery,
    pub token: Option<String>,
    pub introspection: Option<String>,
    pub revocation: Option<String>,
    pub jwks: Option<String>,
    pub authorization: Option<String>,
    pub end_session: Option<String>,
    /// Seconds one request may take before the target is reported too slow
    /// (a finding about the target, never a harness error). Default 30.
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// Seconds one request to a target may take, unless its profile says.
pub const DEFAULT_TIMEOUT_S: u64 = 30;

/// Which well-known document describes the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    pub method: AuthMethod,
}

/// RFC 7591 `token_endpoint_auth_method` values the harness speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

/// A client of the fixture contract.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientProfile {
    pub client_id: String,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
enum SecretTable {
    Env(String),
    File(PathBuf),
    Lab(String),
    Literal(String),
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    pub username: String,
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
}

/// How a user's first token is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoginMethod {
    /// Authorization code + PKCE S256 with a scripted form login (RFC 6749 §4.1, RFC 7636).
    AuthorizationCode,
    /// Resource owner password credentials (RFC 6749 §4.3).
    Password,
    /// An external command prints the token.
    Command,
}

/// How to get a token whose `may_act` names a principal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MayActRecipe {
    /// Extra scope values to request (at login for users, at exchange for clients).
    #[serde(default)]
    pub scope: Vec<String>,
}

/// Users log in through this client to get a short-lived token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShortLived {
    /// A client of the profile, like the users' login client but issuing
    /// access tokens that live a few seconds.
    pub client: String,
    /// Seconds past `exp` the target still accepts a token: the small leeway
    /// for clock skew that RFC 7519 §4.1.4 allows. Waits for expiry wait this
    /// much longer, so a declared leeway is never reported as a deviation.
    #[serde(default)]
    pub leeway_s: u64,
}

/// Who introspects a token (RFC 7662 §2.1 requires an authorized caller).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introspection {
    /// `audience`: a contract client in the token's `aud`; else a client name.
    #[serde(default = "default_introspect_as")]
    pub r#as: String,
}

fn default_introspect_as() -> String {
    "audience".into()
}

impl Default for Introspection {
    fn default() -> Self {
        Self { r#as: default_introspect_as() }
    }
}

/// Who revokes a token (RFC 7009 §2.1: the client it was issued to).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// `issued-to`: the client in the token's `azp`/`client_id`; else a client name.
    #[serde(default = "default_revoke_as")]
    pub r#as: String,
}

fn default_revoke_as() -> String {
    "issued-to".into()
}

impl Default for Revocation {
    fn default() -> Self {
        Self { r#as: default_revoke_as() }
    }
}

/// How a user's session is ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    pub method: LogoutMethod,
}

/// Ways of ending a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogoutMethod {
    /// RFC 7009 revocation of the login's refresh token.
    #[default]
    RevokeRefreshToken,
    /// OpenID Connect RP-initiated logout at `end_session_endpoint`, back-channel
    /// style (POST with `refresh_token` and `client_id`, as Keycloak accepts).
    EndSession,
    /// No way to log out.
    None,
}

/// Operations without a protocol endpoint, as a command to run or a URL to
/// POST to (an admin API). `{client_id}` is replaced in both; `{fourleg}` is
/// the running fourleg binary; `{lab.<service>}` the lab service's URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Features {
    /// RFC 8693 delegation: `actor_token` accepted and `act` issued.
    pub delegation: bool,
    /// `may_act` in subject tokens is enforced.
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
    #[serde(default = "yes")]
    pub access_token_revocation: bool,
    /// RFC 8707 `resource` in token exchange.
    pub resource: bool,
    /// Sessions can be ended (see `[logout]`).
    #[serde(default)]
    pub logout: bool,
    /// Clients can be disabled (see `[hooks]`).
    #[serde(default)]
    pub disable_client: bool,
    /// Confidential clients can obtain their own tokens by `client_credentials`
    /// (RFC 6749 §4.4) as often as asked: actor tokens, and a client's `sub`.
    /// When false, steps that need a client's own token are `untestable`
    /// with the note as the reason.
    #[serde(default = "yes")]
    pub client_credentials: bool,
    /// Why features are off, by feature name (shown with not-applicable results).
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Features {
    /// Whether the feature named as in scenario files is declared.
    #[must_use]
    pub fn has(&self, name: &str) -> Option<bool> {
        Some(match name {
            "delegation" => self.delegation,
            "may-act" => self.may_act,
            "introspection" => self.introspection,
            "revocation" => self.revocation,
            "access-token-revocation" => self.revocation && self.access_token_revocation,
            "resource" => self.resource,
            "logout" => self.logout,
            "disable-client" => self.disable_client,
            "client-credentials" => self.client_credentials,
            _ => return None,
        })
    }

    /// Every feature name scenarios may require.
    pub const NAMES: [&'static str; 9] = [
        "delegation",
        "may-act",
        "introspection",
        "revocation",
        "access-token-revocation",
        "resource",
        "logout",
        "disable-client",
        "client-credentials",
    ];
}

/// A scenario the target is known to fail.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
        if let Some(sl) = &self.short_lived {
            if !self.clients.contains_key(&sl.client) {
                return Err(bad(
                    "short_lived.client".into(),
                    format!("`{}` is not one of the profile's clients", sl.client),
                ));
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
            if self.features.has(name).is_none() {
                return Err(bad(
                    format!("features.notes.{name}"),
                    format!("unknown feature; expected one of {}", Features::NAMES.join(", ")),
                ));
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
        assert_eq!(p.introspection.r#as, "audience");
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
    fn the_bundled_profiles_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/targets");
        let all = bundled(&dir).unwrap();
        assert!(all.contains_key("keycloak"), "{all:?}");
        for path in all.values() {
            Profile::load(path).unwrap();
        }
    }
}
