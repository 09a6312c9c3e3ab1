//! A connected target: endpoints resolved (discovery), secrets loaded, and
//! the requests the scenarios make, each returning its redacted evidence.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fourleg_core::oauth::{dpop, uri, GrantType};
use fourleg_core::Secret;
use serde_json::Value;

use crate::contract::{Contract, Recipe};
use crate::evidence::{self, HttpEvidence};
use crate::login::{self, LoginError};
use crate::profile::{AuthMethod, Discovery, ForeignGrant, LoginMethod, LogoutMethod, Profile, SecretSource};

/// The harness could not talk to the target as its profile says. Never a
/// finding about the target.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("target `{target}` is unreachable at {url}: {source}")]
    Unreachable {
        target: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The target took longer than the profile's `endpoints.timeout_s`: a
    /// finding about the target, not a fault of the harness.
    #[error("target `{target}` did not answer {url} within {seconds}s (endpoints.timeout_s)")]
    TooSlow { target: String, url: String, seconds: u64 },
    #[error("target `{target}`: discovery document {url} answered {status}; set the endpoints explicitly in the profile or fix `endpoints.issuer`")]
    Discovery { target: String, url: String, status: u16 },
    /// The discovery document answered 200 with a body that is not a JSON
    /// object of at most [`evidence::MAX_BODY_BYTES`]: a finding about the
    /// target, named with what was wrong.
    #[error("target `{target}`: discovery document {url}: {message}; set the endpoints explicitly in the profile or fix the document")]
    DiscoveryBody { target: String, url: String, message: String },
    #[error("target `{target}`: no {what} endpoint (not in the profile's [endpoints] nor in discovery)")]
    NoEndpoint { target: String, what: &'static str },
    /// An endpoint the profile leaves to discovery, whose document is broken
    /// ([`Target::discovery_problem`]): what needs it is untestable, and the
    /// metadata scenarios grade the document.
    #[error("target `{target}`: no {what} endpoint: the profile leaves it to discovery, and {problem}")]
    BrokenDiscovery { target: String, what: &'static str, problem: String },
    #[error("target `{target}`: {field}: {message}")]
    Secret { target: String, field: String, message: String },
    #[error("target `{target}`: `{name}` is not a {kind} of the profile")]
    UnknownPrincipal { target: String, kind: &'static str, name: String },
    #[error("target `{target}`: `{placeholder}` needs the lab; start it with `fourleg up`")]
    NeedsLab { target: String, placeholder: String },
    #[error("target `{target}`: login of `{user}` failed: {source}")]
    Login {
        target: String,
        user: String,
        #[source]
        source: LoginError,
    },
    #[error("target `{target}`: hook `{hook}` failed: {message}")]
    Hook { target: String, hook: String, message: String },
}

/// What a bundled lab target needs from a running lab.
#[derive(Debug, Clone, Default)]
pub struct LabContext {
    /// Base URLs by service name (`keycloak` → `http://127.0.0.1:37875`).
    pub urls: BTreeMap<String, String>,
    /// Service versions by name.
    pub versions: BTreeMap<String, String>,
    /// The lab's client secrets by client id.
    pub client_secrets: BTreeMap<String, Secret>,
    /// The lab's user passwords by username.
    pub user_passwords: BTreeMap<String, Secret>,
    /// The lab's state directory (passed to hooks as `FOURLEG_STATE`).
    pub state_dir: Option<PathBuf>,
}

/// The endpoints in use.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ResolvedEndpoints {
    pub issuer: Option<String>,
    /// None only when the profile leaves it to a discovery document that is
    /// broken ([`Target::token_endpoint`] says so).
    pub token: Option<String>,
    pub introspection: Option<String>,
    pub revocation: Option<String>,
    /// RFC 7591 §3 client registration endpoint.
    pub registration: Option<String>,
    pub jwks: Option<String>,
    pub authorization: Option<String>,
    pub end_session: Option<String>,
    /// Where logins redeem their code: the `[upstream]` token endpoint, else `token`.
    pub login_token: Option<String>,
    /// The protected resource of `[resource]` (its URL, placeholders filled).
    pub resource: Option<String>,
    /// What the API behind the resource received (`[resource] downstream`).
    pub downstream: Option<String>,
}

/// `req` authenticated with `client_secret_basic`: RFC 6749 §2.3.1 has the
/// id and the secret form-urlencoded before they go into Basic.
pub(crate) fn client_secret_basic(
    req: reqwest::RequestBuilder,
    client_id: &str,
    secret: &Secret,
) -> reqwest::RequestBuilder {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    req.basic_auth(enc(client_id), Some(enc(secret.expose())))
}

/// A form value: plain, or a secret shown in evidence only by its label.
#[derive(Debug, Clone)]
pub enum FormValue {
    Plain(String),
    Secret { value: Secret, label: String },
}

impl FormValue {
    fn expose(&self) -> &str {
        match self {
            FormValue::Plain(s) => s,
            FormValue::Secret { value, .. } => value.expose(),
        }
    }

    fn shown(&self, field: &str) -> String {
        match self {
            FormValue::Secret { label, .. } => format!("<{label}>"),
            FormValue::Plain(s) if evidence::SECRET_FIELDS.contains(&field) => "[redacted]".into(),
            FormValue::Plain(s) => evidence::scrub(s),
        }
    }
}

/// How a request authenticates the client, overriding the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuthMode {
    /// The profile's method with the client's real credentials.
    #[default]
    Profile,
    /// No client authentication and no `client_id`.
    None,
    /// `client_id` only, as a public client would send.
    ClientIdOnly,
    /// The profile's method with a wrong secret.
    WrongSecret,
}

/// An HTTP response from the target, with its redacted evidence.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: u16,
    /// Every response header, names lower-cased.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (`Value::String` with the text when not JSON).
    pub body: Value,
    pub evidence: HttpEvidence,
}

impl Outcome {
    /// The body's `error` (RFC 6749 §5.2), if any.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        self.body.get("error").and_then(Value::as_str)
    }

    /// A token of the body (`access_token`, `refresh_token`, …) as a secret.
    #[must_use]
    pub fn token(&self, field: &str) -> Option<Secret> {
        self.body.get(field).and_then(Value::as_str).map(Secret::new)
    }

    /// 2xx.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Token type URIs of RFC 8693 §3; their one home is [`fourleg_core::oauth`].
pub mod token_type {
    pub use fourleg_core::oauth::uri::{ACCESS_TOKEN, ID_TOKEN, JWT, REFRESH_TOKEN, SAML1, SAML2};
    use fourleg_core::oauth::TokenType;

    /// The URI of a short name (`access_token` → the URN); other strings pass through.
    #[must_use]
    pub fn expand(short: &str) -> String {
        TokenType::from_short(short).as_str().to_owned()
    }
}

/// Tries of a scripted login that fails for a reason other than the
/// credentials.
const LOGIN_ATTEMPTS: u32 = 3;

/// The RFC 8693 grant type.
pub use fourleg_core::oauth::uri::GRANT_TOKEN_EXCHANGE as TOKEN_EXCHANGE_GRANT;

/// A target ready to be tested.
#[derive(Debug)]
pub struct Target {
    pub profile: Profile,
    pub endpoints: ResolvedEndpoints,
    /// The discovery document, when there is one.
    pub metadata: Option<Value>,
    /// The metadata URL used.
    pub metadata_url: Option<String>,
    /// What was wrong with the discovery document (its status, or a body
    /// that is not a JSON object of bounded size), when it was: a finding
    /// about the target, which the metadata scenarios grade from their own
    /// fetch, not a harness error. The endpoints then come from the profile
    /// alone.
    pub discovery_problem: Option<String>,
    pub version: Option<String>,
    http: reqwest::Client,
    client_secrets: BTreeMap<String, Secret>,
    user_passwords: BTreeMap<String, Secret>,
    /// The untrusted issuer's client secret and password (`[foreign_issuer]`).
    foreign_secrets: ForeignSecrets,
    lab: Option<LabContext>,
    /// Every secret and token this target was given or issued, scrubbed
    /// from whatever it answers.
    redactor: evidence::Redactor,
}

fn fill(template: &str, lab: Option<&LabContext>, target: &str) -> Result<String, TargetError> {
    let mut out = template.to_owned();
    while let Some(start) = out.find("{lab.") {
        let end = out[start..].find('}').map_or(out.len() - 1, |e| start + e);
        let key = &out[start + 5..end];
        let value = lab.and_then(|l| l.urls.get(key)).ok_or_else(|| TargetError::NeedsLab {
            target: target.to_owned(),
            placeholder: out[start..=end].to_owned(),
        })?;
        out = format!("{}{}{}", &out[..start], value, &out[end + 1..]);
    }
    Ok(out)
}

/// An endpoint: the profile's explicit one (placeholders filled), else the
/// discovery document's `key`.
fn pick_endpoint(
    explicit: Option<&String>,
    metadata: Option<&Value>,
    key: &str,
    lab: Option<&LabContext>,
    target: &str,
) -> Result<Option<String>, TargetError> {
    if let Some(e) = explicit {
        return fill(e, lab, target).map(Some);
    }
    Ok(metadata.and_then(|m| m[key].as_str()).map(str::to_owned))
}

/// What discovery found.
#[derive(Debug, Default)]
struct Discovered {
    doc: Option<Value>,
    url: Option<String>,
    /// The document was fetched and is broken (see [`Target::discovery_problem`]).
    problem: Option<String>,
}

/// The discovery document of `issuer` (OpenID Connect Discovery 1.0 or RFC
/// 8414 §3), and its URL; nothing without an issuer or with `discovery = "none"`.
/// A server that does not answer is an error; one that answers with anything
/// but a bounded JSON object (RFC 8414 §3.2) is a broken document, returned
/// as such.
async fn discover(
    http: &reqwest::Client,
    issuer: Option<&str>,
    discovery: Discovery,
    name: &str,
) -> Result<Discovered, TargetError> {
    let Some(iss) = issuer else { return Ok(Discovered::default()) };
    let url = match discovery {
        Discovery::None => return Ok(Discovered::default()),
        Discovery::Openid => format!("{}/.well-known/openid-configuration", iss.trim_end_matches('/')),
        Discovery::Oauth => {
            // RFC 8414 §3.1: the well-known segment goes before the issuer's path.
            let mut u = url::Url::parse(iss).map_err(|_| TargetError::Discovery {
                target: name.to_owned(),
                url: iss.to_owned(),
                status: 0,
            })?;
            let path = u.path().trim_end_matches('/').to_owned();
            u.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
            u.to_string()
        }
    };
    let broken = |problem: String| Discovered { doc: None, url: Some(url.clone()), problem: Some(problem) };
    let resp = http.get(&url).send().await.map_err(|source| TargetError::Unreachable {
        target: name.to_owned(),
        url: url.clone(),
        source,
    })?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Ok(broken(TargetError::Discovery { target: name.to_owned(), url: url.clone(), status }.to_string()));
    }
    // Read at most MAX_BODY_BYTES: a hostile or broken target may send megabytes.
    let bad = |message: String| {
        broken(TargetError::DiscoveryBody { target: name.to_owned(), url: url.clone(), message }.to_string())
    };
    let mut resp = resp;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|source| TargetError::Unreachable {
        target: name.to_owned(),
        url: url.clone(),
        source,
    })? {
        if bytes.len() + chunk.len() > evidence::MAX_BODY_BYTES {
            return Ok(bad(format!("longer than {} bytes", evidence::MAX_BODY_BYTES)));
        }
        bytes.extend_from_slice(&chunk);
    }
    let doc: Value = match serde_json::from_slice(&bytes) {
        Ok(doc) => doc,
        Err(e) => return Ok(bad(format!("not JSON ({e})"))),
    };
    if !doc.is_object() {
        return Ok(bad("not a JSON object (RFC 8414 §3.2)".into()));
    }
    Ok(Discovered { doc: Some(doc), url: Some(url), problem: None })
}

fn load_secret(
    source: &SecretSource,
    field: &str,
    target: &str,
    lab_values: Option<&BTreeMap<String, Secret>>,
) -> Result<Secret, TargetError> {
    let err = |message: String| TargetError::Secret { target: target.to_owned(), field: field.to_owned(), message };
    match source {
        SecretSource::Env(var) => {
            std::env::var(var).map(Secret::new).map_err(|_| err(format!("environment variable {var} is not set")))
        }
        SecretSource::File(path) => std::fs::read_to_string(path)
            .map(|s| Secret::new(s.trim_end_matches(['\n', '\r'])))
            .map_err(|e| err(format!("cannot read {}: {e}", path.display()))),
        SecretSource::Literal(s) => Ok(Secret::new(s.clone())),
        SecretSource::Lab(name) => lab_values
            .and_then(|m| m.get(name))
            .cloned()
            .ok_or_else(|| err(format!("the lab has no secret `{name}`; start the lab with `fourleg up`"))),
    }
}

/// The secrets of `[foreign_issuer]`, loaded at connect.
#[derive(Debug, Default)]
struct ForeignSecrets {
    client_secret: Option<Secret>,
    password: Option<Secret>,
}

impl Target {
    /// Resolves endpoints (discovery when configured) and loads every secret.
    pub async fn connect(profile: Profile, lab: Option<LabContext>) -> Result<Self, TargetError> {
        let name = profile.name.clone();
        let timeout = profile.endpoints.timeout_s.unwrap_or(crate::profile::DEFAULT_TIMEOUT_S);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(timeout))
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        let l = lab.as_ref();
        let ep = &profile.endpoints;
        let issuer = ep.issuer.as_deref().map(|i| fill(i, l, &name)).transpose()?;
        let Discovered { doc: metadata, url: metadata_url, mut problem } =
            discover(&http, issuer.as_deref(), ep.discovery, &name).await?;
        let pick =
            |explicit: &Option<String>, key: &str| pick_endpoint(explicit.as_ref(), metadata.as_ref(), key, l, &name);
        let token = pick(&ep.token, "token_endpoint")?;
        if token.is_none() && problem.is_none() {
            // A document without the member RFC 8414 §2 makes REQUIRED is as
            // broken as no document (core/metadata-advertises-exchange says so).
            match &metadata_url {
                Some(url) => {
                    problem = Some(format!(
                        "target `{name}`: discovery document {url} lists no token_endpoint (RFC 8414 §2: REQUIRED)"
                    ));
                }
                None => return Err(TargetError::NoEndpoint { target: name.clone(), what: "token" }),
            }
        }
        let discovery_problem = problem;
        let mut endpoints = ResolvedEndpoints {
            issuer: issuer.clone(),
            token,
            introspection: pick(&ep.introspection, "introspection_endpoint")?,
            revocation: pick(&ep.revocation, "revocation_endpoint")?,
            registration: pick(&ep.registration, "registration_endpoint")?,
            jwks: pick(&ep.jwks, "jwks_uri")?,
            authorization: pick(&ep.authorization, "authorization_endpoint")?,
            end_session: pick(&ep.end_session, "end_session_endpoint")?,
            login_token: None,
            resource: profile.resource.as_ref().map(|r| fill(&r.url, l, &name)).transpose()?,
            downstream: profile
                .resource
                .as_ref()
                .and_then(|r| r.downstream.as_deref())
                .map(|d| fill(d, l, &name))
                .transpose()?,
        };
        if let Some(up) = &profile.upstream {
            let up_issuer = up.issuer.as_deref().map(|i| fill(i, l, &name)).transpose()?;
            // The upstream serves logins only: its broken document is the
            // setup's fault, not the target's.
            let up_found = discover(&http, up_issuer.as_deref(), up.discovery, &name).await?;
            if let (Some(problem), Some(_)) = (&up_found.problem, &up_found.url) {
                return Err(TargetError::DiscoveryBody {
                    target: name.clone(),
                    url: up_found.url.clone().unwrap_or_default(),
                    message: format!("[upstream]: {problem}"),
                });
            }
            let up_meta = up_found.doc;
            let up_pick = |explicit: &Option<String>, key: &str| {
                pick_endpoint(explicit.as_ref(), up_meta.as_ref(), key, l, &name)
            };
            endpoints.login_token = Some(
                up_pick(&up.token, "token_endpoint")?
                    .ok_or(TargetError::NoEndpoint { target: name.clone(), what: "upstream token" })?,
            );
            if ep.authorization.is_none() {
                endpoints.authorization = up_pick(&up.authorization, "authorization_endpoint")?;
            }
            if ep.end_session.is_none() {
                endpoints.end_session = up_pick(&up.end_session, "end_session_endpoint")?;
            }
        }
        let mut client_secrets = BTreeMap::new();
        for (cname, c) in &profile.clients {
            if let Some(src) = &c.secret {
                let s = load_secret(src, &format!("clients.{cname}.secret"), &name, l.map(|x| &x.client_secrets))?;
                client_secrets.insert(cname.clone(), s);
            }
        }
        let mut user_passwords = BTreeMap::new();
        for (uname, u) in &profile.users {
            if let Some(src) = &u.password {
                let s = load_secret(src, &format!("users.{uname}.password"), &name, l.map(|x| &x.user_passwords))?;
                user_passwords.insert(uname.clone(), s);
            }
        }
        let mut foreign_secrets = ForeignSecrets::default();
        if let Some(f) = &profile.foreign_issuer {
            let lab_clients = l.map(|x| &x.client_secrets);
            let lab_users = l.map(|x| &x.user_passwords);
            if let Some(src) = &f.client_secret {
                foreign_secrets.client_secret =
                    Some(load_secret(src, "foreign_issuer.client_secret", &name, lab_clients)?);
            }
            if let Some(src) = &f.password {
                foreign_secrets.password = Some(load_secret(src, "foreign_issuer.password", &name, lab_users)?);
            }
        }
        let version = if let Some(v) = &profile.version.value {
            Some(v.clone())
        } else if let Some(cmd) = &profile.version.command {
            run_capture(cmd).ok()
        } else {
            profile.lab.as_ref().and_then(|svc| l.and_then(|x| x.versions.get(svc)).cloned())
        };
        let redactor = evidence::Redactor::default();
        for (c, secret) in &client_secrets {
            redactor.learn(secret, &format!("secret of {c}"));
        }
        for (u, password) in &user_passwords {
            redactor.learn(password, &format!("password of {u}"));
        }
        if let Some(secret) = &foreign_secrets.client_secret {
            redactor.learn(secret, "secret of the untrusted issuer's client");
        }
        if let Some(password) = &foreign_secrets.password {
            redactor.learn(password, "password at the untrusted issuer");
        }
        if let Some(lab) = &lab {
            for (c, secret) in &lab.client_secrets {
                redactor.learn(secret, &format!("secret of {c}"));
            }
            for (u, password) in &lab.user_passwords {
                redactor.learn(password, &format!("password of {u}"));
            }
        }
        Ok(Self {
            profile,
            endpoints,
            metadata,
            metadata_url,
            discovery_problem,
            version,
            http,
            client_secrets,
            user_passwords,
            foreign_secrets,
            lab,
            redactor,
        })
    }

    /// A transport error of a request to `url`: too slow when it timed out,
    /// else unreachable.
    fn transport(&self, url: &str, source: reqwest::Error) -> TargetError {
        if source.is_timeout() {
            TargetError::TooSlow {
                target: self.profile.name.clone(),
                url: url.to_owned(),
                seconds: self.profile.endpoints.timeout_s.unwrap_or(crate::profile::DEFAULT_TIMEOUT_S),
            }
        } else {
            TargetError::Unreachable { target: self.profile.name.clone(), url: url.to_owned(), source }
        }
    }

    /// The target's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.profile.name
    }

    /// The product, as the profile names it.
    #[must_use]
    pub fn product(&self) -> &str {
        &self.profile.product
    }

    /// The fixture contract's questions, answered by this target's profile.
    #[must_use]
    pub fn contract(&self) -> Contract<'_> {
        Contract::new(&self.profile)
    }

    /// A principal's first token, as the contract's recipe says.
    pub async fn obtain(&self, recipe: &Recipe) -> Result<Outcome, TargetError> {
        self.obtain_bound(recipe, None).await
    }

    /// [`Self::obtain`], its token request carrying a DPoP proof of `key`
    /// (RFC 9449 §5) when there is one. A token from the untrusted issuer, or
    /// from a command, is never bound: `key` is refused there.
    pub async fn obtain_bound(&self, recipe: &Recipe, key: Option<&dpop::ProofKey>) -> Result<Outcome, TargetError> {
        match recipe {
            Recipe::Login { user, client, scope, params } => self.login_bound(user, client, scope, params, key).await,
            Recipe::ClientCredentials { client, scope } => self.client_credentials_bound(client, scope, key).await,
            Recipe::Foreign { user } if key.is_none() => self.foreign_token(user).await,
            Recipe::Foreign { .. } => Err(TargetError::NoEndpoint {
                target: self.profile.name.clone(),
                what: "a DPoP-bound token from the untrusted issuer",
            }),
        }
    }

    /// A token for `user` from the issuer the target must not trust, as
    /// `[foreign_issuer]` says: a token request there, or a command.
    pub async fn foreign_token(&self, user: &str) -> Result<Outcome, TargetError> {
        let f = self.profile.foreign_issuer.as_ref().ok_or(TargetError::NoEndpoint {
            target: self.profile.name.clone(),
            what: "untrusted issuer ([foreign_issuer])",
        })?;
        if let Some(cmd) = &f.command {
            return self.token_from_command(
                cmd,
                &format!("token of {user} from the untrusted issuer (command)"),
                "foreign_issuer.command",
            );
        }
        let url = fill(f.token_endpoint.as_deref().unwrap_or_default(), self.lab.as_ref(), &self.profile.name)?;
        let grant = match f.grant {
            Some(ForeignGrant::ClientCredentials) => GrantType::ClientCredentials,
            _ => GrantType::Password,
        };
        let mut form = vec![("grant_type".to_owned(), FormValue::Plain(grant.as_str().into()))];
        if grant == GrantType::Password {
            form.push(("username".into(), FormValue::Plain(f.username.clone().unwrap_or_default())));
            let password = self.foreign_secrets.password.clone().unwrap_or_else(|| Secret::new(""));
            form.push((
                "password".into(),
                FormValue::Secret { value: password, label: "password at the untrusted issuer".into() },
            ));
        }
        if !f.scope.is_empty() {
            form.push(("scope".into(), FormValue::Plain(f.scope.join(" "))));
        }
        let client_id = f.client_id.clone().unwrap_or_default();
        form.push(("client_id".into(), FormValue::Plain(client_id.clone())));
        let mut auth = format!("client_id only as {client_id} at the untrusted issuer");
        if let Some(secret) = &self.foreign_secrets.client_secret {
            form.push((
                "client_secret".into(),
                FormValue::Secret { value: secret.clone(), label: "client_secret at the untrusted issuer".into() },
            ));
            auth = format!("client_secret_post as {client_id} at the untrusted issuer");
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        let shown: Vec<(String, String)> = form.iter().map(|(k, v)| (k.clone(), v.shown(k))).collect();
        let begin = Instant::now();
        let resp = self.http.post(&url).form(&pairs).send().await.map_err(|source| self.transport(&url, source))?;
        let label = format!("token of {user} from the untrusted issuer ({})", grant.as_str());
        self.finish(&label, "POST", &url, auth, shown, resp, begin).await
    }

    fn unknown(&self, kind: &'static str, name: &str) -> TargetError {
        TargetError::UnknownPrincipal { target: self.profile.name.clone(), kind, name: name.to_owned() }
    }

    /// The secret of a contract client, as loaded at connect.
    pub(crate) fn client_secret(&self, client: &str) -> Option<&Secret> {
        self.client_secrets.get(client)
    }

    /// The `client_id` of a contract client.
    pub fn client_id(&self, client: &str) -> Result<&str, TargetError> {
        self.profile.clients.get(client).map(|c| c.client_id.as_str()).ok_or_else(|| self.unknown("client", client))
    }

    /// The contract name of a `client_id` seen at the target.
    #[must_use]
    pub fn client_name(&self, client_id: &str) -> Option<&str> {
        self.profile.clients.iter().find(|(_, c)| c.client_id == client_id).map(|(n, _)| n.as_str())
    }

    /// POSTs a form to `url`, authenticating as `client` per `mode`.
    pub async fn post_form(
        &self,
        label: &str,
        url: &str,
        client: Option<&str>,
        mode: ClientAuthMode,
        form: Vec<(String, FormValue)>,
    ) -> Result<Outcome, TargetError> {
        self.post_form_dpop(label, url, client, mode, form, None).await
    }

    /// [`Self::post_form`] with a DPoP proof in the `DPoP` header (RFC 9449
    /// §4.1). Evidence shows the proof decoded, never the proof.
    pub async fn post_form_dpop(
        &self,
        label: &str,
        url: &str,
        client: Option<&str>,
        mode: ClientAuthMode,
        form: Vec<(String, FormValue)>,
        proof: Option<&dpop::Proof>,
    ) -> Result<Outcome, TargetError> {
        let mut form = form;
        let mut req = self.http.post(url);
        if let Some(p) = proof {
            self.redactor.learn(&p.value, "DPoP proof redacted");
            req = req.header(dpop::HEADER, p.value.expose());
        }
        let mut auth = "none".to_owned();
        if let Some(cname) = client {
            let c = self.profile.clients.get(cname).ok_or_else(|| self.unknown("client", cname))?;
            let secret = match mode {
                ClientAuthMode::WrongSecret => Some(Secret::new("wrong-secret-fourleg")),
                _ => self.client_secrets.get(cname).cloned(),
            };
            match (mode, c.public, secret) {
                (ClientAuthMode::None, _, _) => {}
                (ClientAuthMode::ClientIdOnly, _, _) | (_, true, _) | (_, _, None) => {
                    form.push(("client_id".into(), FormValue::Plain(c.client_id.clone())));
                    auth = format!("client_id only as {cname}");
                }
                (_, false, Some(secret)) => {
                    let wrong = if mode == ClientAuthMode::WrongSecret { " (wrong secret)" } else { "" };
                    match self.profile.client_auth.method {
                        AuthMethod::ClientSecretBasic => {
                            req = client_secret_basic(req, &c.client_id, &secret);
                            auth = format!("client_secret_basic as {cname}{wrong}");
                        }
                        AuthMethod::ClientSecretPost => {
                            form.push(("client_id".into(), FormValue::Plain(c.client_id.clone())));
                            form.push((
                                "client_secret".into(),
                                FormValue::Secret { value: secret, label: format!("client_secret of {cname}") },
                            ));
                            auth = format!("client_secret_post as {cname}{wrong}");
                        }
                    }
                }
            }
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        let shown: Vec<(String, String)> = form.iter().map(|(k, v)| (k.clone(), v.shown(k))).collect();
        let begin = Instant::now();
        let resp = req.form(&pairs).send().await.map_err(|source| self.transport(url, source))?;
        let mut outcome = self.finish(label, "POST", url, auth, shown, resp, begin).await?;
        outcome.evidence.dpop = proof.map(dpop::Proof::shown);
        Ok(outcome)
    }

    /// GETs `url` (metadata, JWKS).
    pub async fn get(&self, label: &str, url: &str) -> Result<Outcome, TargetError> {
        let begin = Instant::now();
        let resp = self.http.get(url).send().await.map_err(|source| self.transport(url, source))?;
        self.finish(label, "GET", url, "none".into(), Vec::new(), resp, begin).await
    }

    #[allow(clippy::too_many_arguments)] // one private funnel for every request's evidence
    async fn finish(
        &self,
        label: &str,
        method: &str,
        url: &str,
        auth: String,
        form: Vec<(String, String)>,
        resp: reqwest::Response,
        begin: Instant,
    ) -> Result<Outcome, TargetError> {
        let status = resp.status().as_u16();
        let headers: BTreeMap<String, String> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        // Read at most MAX_BODY_BYTES: a hostile target may send megabytes.
        let mut resp = resp;
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = resp.chunk().await.map_err(|source| self.transport(url, source))? {
            let room = evidence::MAX_BODY_BYTES - bytes.len();
            if chunk.len() > room {
                bytes.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            bytes.extend_from_slice(&chunk);
        }
        let elapsed_ms = u64::try_from(begin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let body = evidence::body_value(&bytes, truncated);
        self.redactor.learn_tokens(&body);
        let (red, tokens) = evidence::redact_body(&body);
        let red = self.redactor.scrub_value(&red);
        let kept = headers
            .iter()
            .filter(|(k, _)| evidence::KEPT_HEADERS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), self.redactor.scrub(v)))
            .collect();
        Ok(Outcome {
            status,
            evidence: HttpEvidence {
                label: label.to_owned(),
                method: method.to_owned(),
                url: url.to_owned(),
                auth,
                form,
                status,
                headers: kept,
                body: red,
                tokens,
                dpop: None,
                elapsed_ms,
            },
            headers,
            body,
        })
    }

    /// Registers a client at the registration endpoint (RFC 7591 §3.1): a
    /// JSON POST of client metadata, anonymous (no initial access token),
    /// for a confidential client authenticating with `client_secret_basic`.
    /// The answer's credentials are learnt by the redactor, never shown.
    pub async fn register_client(&self, client_name: &str, grant_types: &[String]) -> Result<Outcome, TargetError> {
        let url = self.endpoints.registration.clone().ok_or(TargetError::NoEndpoint {
            target: self.profile.name.clone(),
            what: "registration (RFC 7591: registration_endpoint)",
        })?;
        let metadata = serde_json::json!({
            "client_name": client_name,
            "grant_types": grant_types,
            "token_endpoint_auth_method": "client_secret_basic",
        });
        let begin = Instant::now();
        let resp = self.http.post(&url).json(&metadata).send().await.map_err(|source| self.transport(&url, source))?;
        let form = vec![("(JSON body)".to_owned(), metadata.to_string())];
        self.finish("client registration (RFC 7591)", "POST", &url, "none (anonymous)".into(), form, resp, begin).await
    }

    /// Deletes a registered client at its configuration endpoint with its
    /// registration access token (RFC 7592 §2.3).
    pub async fn delete_registration(&self, uri: &str, access_token: &Secret) -> Result<Outcome, TargetError> {
        let begin = Instant::now();
        let resp = self
            .http
            .delete(uri)
            .bearer_auth(access_token.expose())
            .send()
            .await
            .map_err(|source| self.transport(uri, source))?;
        let auth = "Bearer <registration_access_token>".to_owned();
        self.finish("client deletion (RFC 7592)", "DELETE", uri, auth, Vec::new(), resp, begin).await
    }

    /// Replaces a registered client's metadata at its configuration
    /// endpoint with its registration access token (RFC 7592 §2.2): the
    /// registration's metadata with these grant types, and its `client_id`.
    pub async fn update_registration(
        &self,
        uri: &str,
        access_token: &Secret,
        client_id: &str,
        client_name: &str,
        grant_types: &[String],
    ) -> Result<Outcome, TargetError> {
        let metadata = serde_json::json!({
            "client_id": client_id,
            "client_name": client_name,
            "grant_types": grant_types,
            "token_endpoint_auth_method": "client_secret_basic",
        });
        let begin = Instant::now();
        let resp = self
            .http
            .put(uri)
            .bearer_auth(access_token.expose())
            .json(&metadata)
            .send()
            .await
            .map_err(|source| self.transport(uri, source))?;
        let auth = "Bearer <registration_access_token>".to_owned();
        let form = vec![("(JSON body)".to_owned(), metadata.to_string())];
        self.finish("client update (RFC 7592)", "PUT", uri, auth, form, resp, begin).await
    }

    /// A registered client's own token by client credentials (RFC 6749
    /// §4.4), authenticating with `client_secret_basic` (RFC 6749 §2.3.1).
    pub async fn registered_client_credentials(
        &self,
        client_id: &str,
        secret: &Secret,
    ) -> Result<Outcome, TargetError> {
        let grant = GrantType::ClientCredentials.as_str();
        let sent = [("grant_type", grant, grant)];
        self.registered_token_request("client credentials of the registered client", client_id, secret, &sent).await
    }

    /// A registered client exchanges its own token (RFC 8693 §2.1), with
    /// no `audience`, `resource` or `scope`: the smallest exchange there is,
    /// authenticating with `client_secret_basic` as the registered client.
    pub async fn registered_exchange(
        &self,
        client_id: &str,
        secret: &Secret,
        subject: &Secret,
    ) -> Result<Outcome, TargetError> {
        let grant = GrantType::TokenExchange.as_str();
        let sent = [
            ("grant_type", grant, grant),
            ("subject_token", subject.expose(), "<the registered client's own access token>"),
            ("subject_token_type", uri::ACCESS_TOKEN, uri::ACCESS_TOKEN),
        ];
        self.registered_token_request("token exchange by the registered client", client_id, secret, &sent).await
    }

    /// A token request by a registered client with `client_secret_basic`:
    /// each parameter as sent, and as the evidence shows it.
    async fn registered_token_request(
        &self,
        label: &str,
        client_id: &str,
        secret: &Secret,
        params: &[(&str, &str, &str)],
    ) -> Result<Outcome, TargetError> {
        let url = self.token_endpoint()?.to_owned();
        let begin = Instant::now();
        let sent: Vec<(&str, &str)> = params.iter().map(|(k, v, _)| (*k, *v)).collect();
        let resp = client_secret_basic(self.http.post(&url), client_id, secret)
            .form(&sent)
            .send()
            .await
            .map_err(|source| self.transport(&url, source))?;
        let auth = format!("client_secret_basic as the registered client {client_id}");
        let form = params.iter().map(|(k, _, shown)| ((*k).to_owned(), (*shown).to_owned())).collect();
        self.finish(label, "POST", &url, auth, form, resp, begin).await
    }

    /// A client's own token by client credentials (RFC 6749 §4.4).
    pub async fn client_credentials(&self, client: &str, extra_scope: &[String]) -> Result<Outcome, TargetError> {
        self.client_credentials_bound(client, extra_scope, None).await
    }

    async fn client_credentials_bound(
        &self,
        client: &str,
        extra_scope: &[String],
        key: Option<&dpop::ProofKey>,
    ) -> Result<Outcome, TargetError> {
        let c = self.profile.clients.get(client).ok_or_else(|| self.unknown("client", client))?;
        let mut form = vec![("grant_type".to_owned(), FormValue::Plain(GrantType::ClientCredentials.as_str().into()))];
        let scope: Vec<String> = c.scope.iter().chain(extra_scope).cloned().collect();
        if !scope.is_empty() {
            form.push(("scope".into(), FormValue::Plain(scope.join(" "))));
        }
        let url = self.token_endpoint()?;
        let proof = key.map(|k| k.proof("POST", url, None));
        self.post_form_dpop(
            &format!("client credentials of {client}"),
            url,
            Some(client),
            ClientAuthMode::Profile,
            form,
            proof.as_ref(),
        )
        .await
    }

    /// A user's first token, by the profile's login method, with `scope`
    /// (target scope values) added to the user's base scope.
    pub async fn user_token(&self, user: &str, scope: &[String]) -> Result<Outcome, TargetError> {
        let client = self.profile.users.get(user).ok_or_else(|| self.unknown("user", user))?.client.clone();
        self.login(user, &client, scope, &BTreeMap::new()).await
    }

    /// A user's login through `client`, with `scope` added to the user's
    /// base scope and `params` added to the authorization request
    /// (authorization code) or the token request (password).
    pub async fn login(
        &self,
        user: &str,
        client: &str,
        scope: &[String],
        params: &BTreeMap<String, String>,
    ) -> Result<Outcome, TargetError> {
        self.login_bound(user, client, scope, params, None).await
    }

    /// [`Self::login`], its token request carrying a DPoP proof of `key`
    /// (RFC 9449 §5). A login by command cannot carry one.
    pub async fn login_bound(
        &self,
        user: &str,
        client: &str,
        scope: &[String],
        params: &BTreeMap<String, String>,
        key: Option<&dpop::ProofKey>,
    ) -> Result<Outcome, TargetError> {
        let mut u = self.profile.users.get(user).ok_or_else(|| self.unknown("user", user))?.clone();
        client.clone_into(&mut u.client);
        let scope_str = u.base_scope.iter().chain(scope).cloned().collect::<Vec<_>>().join(" ");
        let login_err =
            |source| TargetError::Login { target: self.profile.name.clone(), user: user.to_owned(), source };
        match u.login {
            LoginMethod::AuthorizationCode => {
                let authz = self
                    .endpoints
                    .authorization
                    .clone()
                    .ok_or(TargetError::NoEndpoint { target: self.profile.name.clone(), what: "authorization" })?;
                let client_id = self.client_id(&u.client)?.to_owned();
                let redirect = u.redirect_uri.clone().unwrap_or_default();
                let password = self.user_passwords.get(user).cloned().unwrap_or_else(|| Secret::new(""));
                // A scripted browser login is a conversation of several
                // requests; a server warming up can answer one of them oddly
                // (Spring once sent a 302 to the first request of the
                // authorization, and once to the code's token request). Such
                // a login is tried again, a bounded number of times, each with
                // a fresh cookie jar (a session of its own) and a fresh code;
                // a refused password is not, and a token endpoint's answer
                // other than a redirect (RFC 6749 §5.1, §5.2 know none) is
                // returned as it is.
                let mut attempt = 1;
                loop {
                    let code = match self
                        .authorize_once(&u, &authz, &client_id, &redirect, &scope_str, params, &password)
                        .await
                    {
                        Ok(code) => code,
                        Err(e) if e.is_transient() && attempt < LOGIN_ATTEMPTS => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                            continue;
                        }
                        Err(e) if attempt > 1 => {
                            return Err(login_err(login::LoginError::Attempts { attempts: attempt, last: Box::new(e) }))
                        }
                        Err(e) => return Err(login_err(e)),
                    };
                    let mut form = vec![
                        ("grant_type".to_owned(), FormValue::Plain(GrantType::AuthorizationCode.as_str().into())),
                        ("code".into(), FormValue::Secret { value: code.code, label: "authorization code".into() }),
                        ("redirect_uri".into(), FormValue::Plain(redirect.clone())),
                        (
                            "code_verifier".into(),
                            FormValue::Secret { value: code.verifier, label: "PKCE verifier".into() },
                        ),
                    ];
                    // RFC 8707 §2.2: the resource the access token is for.
                    if let Some(resource) = &u.resource {
                        form.push(("resource".into(), FormValue::Plain(resource.clone())));
                    }
                    let url = self.login_token_endpoint()?;
                    let proof = key.map(|k| k.proof("POST", url, None));
                    let outcome = self
                        .post_form_dpop(
                            &format!("login of {user} (authorization code + PKCE)"),
                            url,
                            Some(&u.client),
                            ClientAuthMode::Profile,
                            form,
                            proof.as_ref(),
                        )
                        .await?;
                    if (300..400).contains(&outcome.status) && attempt < LOGIN_ATTEMPTS {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                        continue;
                    }
                    return Ok(outcome);
                }
            }
            LoginMethod::Password => {
                let password = self.user_passwords.get(user).cloned().unwrap_or_else(|| Secret::new(""));
                let mut form = vec![
                    ("grant_type".to_owned(), FormValue::Plain(GrantType::Password.as_str().into())),
                    ("username".into(), FormValue::Plain(u.username.clone())),
                    ("password".into(), FormValue::Secret { value: password, label: format!("password of {user}") }),
                    ("scope".into(), FormValue::Plain(scope_str)),
                ];
                form.extend(params.iter().map(|(k, v)| (k.clone(), FormValue::Plain(v.clone()))));
                if let Some(resource) = &u.resource {
                    form.push(("resource".into(), FormValue::Plain(resource.clone())));
                }
                let url = self.login_token_endpoint()?;
                let proof = key.map(|k| k.proof("POST", url, None));
                self.post_form_dpop(
                    &format!("login of {user} (password grant)"),
                    url,
                    Some(&u.client),
                    ClientAuthMode::Profile,
                    form,
                    proof.as_ref(),
                )
                .await
            }
            LoginMethod::Command if key.is_some() => Err(TargetError::NoEndpoint {
                target: self.profile.name.clone(),
                what: "a DPoP-bound login (the user logs in by command)",
            }),
            LoginMethod::Command => {
                let cmd: Vec<String> = u
                    .command
                    .clone()
                    .unwrap_or_default()
                    .iter()
                    .map(|a| a.replace("{scope}", &scope_str).replace("{username}", &u.username))
                    .collect();
                self.token_from_command(&cmd, &format!("login of {user} (command)"), &format!("users.{user}.command"))
            }
        }
    }

    /// One scripted browser authorization (RFC 6749 §4.1 with PKCE), in a
    /// cookie jar of its own: the code and its verifier.
    #[expect(clippy::too_many_arguments, reason = "the parts of one authorization request")]
    async fn authorize_once(
        &self,
        u: &crate::profile::UserProfile,
        authz: &str,
        client_id: &str,
        redirect: &str,
        scope: &str,
        params: &BTreeMap<String, String>,
        password: &Secret,
    ) -> Result<login::Code, login::LoginError> {
        let browser = reqwest::Client::builder()
            .no_proxy()
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        let request = login::Authorize {
            authorization_endpoint: authz,
            client_id,
            redirect_uri: redirect,
            scope,
            params,
            form: &u.form,
        };
        login::authorize(&browser, &request, &u.username, password).await
    }

    /// Runs a command that prints a JSON token response or a bare token, and
    /// records it as evidence like a token response.
    fn token_from_command(&self, cmd: &[String], label: &str, field: &str) -> Result<Outcome, TargetError> {
        let begin = Instant::now();
        let out = run_capture(cmd).map_err(|message| TargetError::Hook {
            target: self.profile.name.clone(),
            hook: field.to_owned(),
            message,
        })?;
        let body = serde_json::from_str::<Value>(&out)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| serde_json::json!({"access_token": out.trim()}));
        self.redactor.learn_tokens(&body);
        let (red, tokens) = evidence::redact_body(&body);
        let red = self.redactor.scrub_value(&red);
        Ok(Outcome {
            status: 200,
            headers: BTreeMap::new(),
            evidence: HttpEvidence {
                label: label.to_owned(),
                method: "EXEC".into(),
                url: cmd.first().cloned().unwrap_or_default(),
                auth: "none".into(),
                form: Vec::new(),
                status: 200,
                headers: BTreeMap::new(),
                body: red,
                tokens,
                dpop: None,
                elapsed_ms: u64::try_from(begin.elapsed().as_millis()).unwrap_or(u64::MAX),
            },
            body,
        })
    }

    /// Introspects `token` as `client` (RFC 7662 §2.1).
    pub async fn introspect(
        &self,
        token: &Secret,
        label: &str,
        client: &str,
        mode: ClientAuthMode,
    ) -> Result<Outcome, TargetError> {
        let url = self
            .endpoints
            .introspection
            .clone()
            .ok_or(TargetError::NoEndpoint { target: self.profile.name.clone(), what: "introspection" })?;
        let form = vec![("token".to_owned(), FormValue::Secret { value: token.clone(), label: label.to_owned() })];
        self.post_form(&format!("introspect {label} as {client}"), &url, Some(client), mode, form).await
    }

    /// Revokes `token` as `client` (RFC 7009 §2.1).
    pub async fn revoke(
        &self,
        token: &Secret,
        label: &str,
        client: &str,
        hint: Option<&str>,
    ) -> Result<Outcome, TargetError> {
        let url = self
            .endpoints
            .revocation
            .clone()
            .ok_or(TargetError::NoEndpoint { target: self.profile.name.clone(), what: "revocation" })?;
        let mut form = vec![("token".to_owned(), FormValue::Secret { value: token.clone(), label: label.to_owned() })];
        if let Some(h) = hint {
            form.push(("token_type_hint".into(), FormValue::Plain(h.to_owned())));
        }
        self.post_form(&format!("revoke {label} as {client}"), &url, Some(client), ClientAuthMode::Profile, form).await
    }

    /// Ends the session of a user login, per `[logout]`. `token` is the
    /// login's token the method needs ([`crate::contract::LogoutRecipe`]):
    /// the refresh token, or the ID token for RP-initiated logout.
    pub async fn logout(&self, user: &str, token: &Secret, label: &str) -> Result<Outcome, TargetError> {
        let u = self.profile.users.get(user).ok_or_else(|| self.unknown("user", user))?;
        let end_session = || {
            self.endpoints
                .end_session
                .clone()
                .ok_or(TargetError::NoEndpoint { target: self.profile.name.clone(), what: "end_session" })
        };
        match self.profile.logout.method {
            LogoutMethod::RevokeRefreshToken | LogoutMethod::None => {
                self.revoke(token, label, &u.client.clone(), Some("refresh_token")).await
            }
            // Keycloak's back-channel form: the refresh token, client authenticated.
            LogoutMethod::EndSessionRefreshToken => {
                let url = end_session()?;
                let form = vec![(
                    "refresh_token".to_owned(),
                    FormValue::Secret { value: token.clone(), label: label.to_owned() },
                )];
                self.post_form(&format!("log out {user}"), &url, Some(&u.client), ClientAuthMode::Profile, form).await
            }
            // OpenID Connect RP-Initiated Logout 1.0 §2: id_token_hint and
            // client_id, by form POST; no redirect URI, so the OP ends the
            // session and shows its own page (a 2xx or a redirect).
            LogoutMethod::RpInitiated => {
                let url = end_session()?;
                let client_id = self.client_id(&u.client)?.to_owned();
                let form = vec![
                    ("id_token_hint".to_owned(), FormValue::Secret { value: token.clone(), label: label.to_owned() }),
                    ("client_id".to_owned(), FormValue::Plain(client_id)),
                ];
                self.post_form(&format!("log out {user} (RP-initiated)"), &url, None, ClientAuthMode::None, form).await
            }
        }
    }

    /// Runs a hook (`disable_client`, `enable_client`) for `client`: the
    /// profile's URL (POST) or command.
    pub async fn run_hook(&self, hook: &str, client: &str) -> Result<String, TargetError> {
        let err =
            |message: String| TargetError::Hook { target: self.profile.name.clone(), hook: hook.to_owned(), message };
        let h = &self.profile.hooks;
        let (cmd, url) = match hook {
            "disable_client" => (h.disable_client.clone(), h.disable_client_url.clone()),
            "enable_client" => (h.enable_client.clone(), h.enable_client_url.clone()),
            _ => (None, None),
        };
        let client_id = self.client_id(client)?.to_owned();
        if let Some(url) = url {
            let url = fill(&url, self.lab.as_ref(), &self.profile.name)?.replace("{client_id}", &client_id);
            let body = serde_json::json!({ "client_id": client_id, "enabled": hook == "enable_client" });
            let resp = self.http.post(&url).json(&body).send().await.map_err(|e| err(format!("POST {url}: {e}")))?;
            if !resp.status().is_success() {
                return Err(err(format!("POST {url} answered {}", resp.status())));
            }
            return Ok(resp.text().await.unwrap_or_default());
        }
        let cmd = cmd.ok_or_else(|| err("not configured in the profile's [hooks]".into()))?;
        let exe = std::env::current_exe().map_or_else(|_| "fourleg".into(), |p| p.display().to_string());
        let fourleg = std::env::var("FOURLEG_BIN").unwrap_or(exe);
        let argv: Vec<String> =
            cmd.iter().map(|a| a.replace("{client_id}", &client_id).replace("{fourleg}", &fourleg)).collect();
        let mut c = tokio::process::Command::new(&argv[0]);
        c.args(&argv[1..]);
        if let Some(dir) = self.lab.as_ref().and_then(|l| l.state_dir.as_ref()) {
            c.env("FOURLEG_STATE", dir);
        }
        let out = c.output().await.map_err(|e| err(format!("cannot run {}: {e}", argv[0])))?;
        if !out.status.success() {
            return Err(err(format!("{}: {}", out.status, evidence::scrub(&String::from_utf8_lossy(&out.stderr)))));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The JWKS document (RFC 7517 §5).
    pub async fn jwks(&self) -> Result<Value, TargetError> {
        let url = self
            .endpoints
            .jwks
            .clone()
            .ok_or(TargetError::NoEndpoint { target: self.profile.name.clone(), what: "jwks" })?;
        Ok(self.get("jwks", &url).await?.body)
    }

    /// A request to the protected resource of `[resource]` (RFC 6750 §2.1:
    /// the token in the `Authorization` header, never the URL), or without
    /// a token: `initialize` of MCP over streamable HTTP, or a GET. The
    /// evidence names the token by `label`, never shows it.
    pub async fn call_resource(&self, token: Option<(&Secret, &str)>) -> Result<Outcome, TargetError> {
        let r = self.profile.resource.as_ref().ok_or(TargetError::NoEndpoint {
            target: self.profile.name.clone(),
            what: "protected resource ([resource])",
        })?;
        let url = self.endpoints.resource.clone().unwrap_or_default();
        let begin = Instant::now();
        let mut req = match r.protocol {
            crate::profile::ResourceProtocol::Mcp => self
                .http
                .post(&url)
                // Streamable HTTP: the client accepts both (MCP basic/transports).
                .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
                .json(&serde_json::json!({
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {},
                        "clientInfo": {"name": "fourleg", "version": env!("CARGO_PKG_VERSION")}
                    }
                })),
            crate::profile::ResourceProtocol::Http => self.http.get(&url),
        };
        let auth = match token {
            Some((t, label)) => {
                req = req.bearer_auth(t.expose());
                format!("Bearer {label}")
            }
            None => "none".to_owned(),
        };
        let method = if r.protocol == crate::profile::ResourceProtocol::Mcp { "POST" } else { "GET" };
        let resp = req.send().await.map_err(|source| self.transport(&url, source))?;
        self.finish("protected resource", method, &url, auth, Vec::new(), resp, begin).await
    }

    /// A call of the `[resource] tool` of an MCP server with `token`, as an
    /// MCP client makes it over streamable HTTP (2025-06-18): `initialize`,
    /// `notifications/initialized`, then `tools/call`, with the
    /// `Mcp-Session-Id` the server hands out. The outcome is the first
    /// answer that is not a success, else the `tools/call` answer, its body
    /// the JSON-RPC message (read from an SSE stream when it comes as one).
    /// With `scoped`, the tool called is `[resource.scoped_tool]`, with its
    /// arguments.
    pub async fn call_resource_tool(&self, token: &Secret, label: &str, scoped: bool) -> Result<Outcome, TargetError> {
        let r = self.profile.resource.as_ref().ok_or(TargetError::NoEndpoint {
            target: self.profile.name.clone(),
            what: "protected resource ([resource])",
        })?;
        let mcp = r.protocol == crate::profile::ResourceProtocol::Mcp;
        let (tool, arguments) = match (scoped, &r.tool, &r.scoped_tool) {
            (false, Some(t), _) if mcp => (t.clone(), serde_json::Value::Object(serde_json::Map::new())),
            (true, _, Some(t)) if mcp => (t.name.clone(), serde_json::Value::Object(t.arguments.clone())),
            (false, ..) => {
                return Err(TargetError::NoEndpoint {
                    target: self.profile.name.clone(),
                    what: "an MCP tool that calls the API behind the resource ([resource] tool)",
                })
            }
            (true, ..) => {
                return Err(TargetError::NoEndpoint {
                    target: self.profile.name.clone(),
                    what: "an MCP tool that needs a scope of its own ([resource.scoped_tool])",
                })
            }
        };
        let url = self.endpoints.resource.clone().unwrap_or_default();
        let auth = format!("Bearer {label}");
        let mut session: Option<String> = None;
        let messages = [
            (
                "MCP initialize",
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "fourleg", "version": env!("CARGO_PKG_VERSION")}}}),
            ),
            (
                "MCP notifications/initialized",
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            ),
            (
                "MCP tools/call",
                serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments}}),
            ),
        ];
        let mut last = None;
        for (what, message) in messages {
            let begin = Instant::now();
            let mut req = self
                .http
                .post(&url)
                .bearer_auth(token.expose())
                .header(reqwest::header::ACCEPT, "application/json, text/event-stream")
                .json(&message);
            if let Some(id) = &session {
                req = req.header("Mcp-Session-Id", id).header("MCP-Protocol-Version", "2025-06-18");
            }
            let resp = req.send().await.map_err(|source| self.transport(&url, source))?;
            if let Some(id) = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()) {
                session = Some(id.to_owned());
            }
            let mut o = self
                .finish(
                    &format!("protected resource: {what} ({tool})"),
                    "POST",
                    &url,
                    auth.clone(),
                    Vec::new(),
                    resp,
                    begin,
                )
                .await?;
            o.body = sse_message(o.body);
            o.evidence.body = sse_message(o.evidence.body.clone());
            if !o.is_success() {
                return Ok(o);
            }
            last = Some(o);
        }
        Ok(last.expect("three messages were sent"))
    }

    /// What the API behind the resource received (`[resource] downstream`).
    pub async fn downstream(&self) -> Result<Outcome, TargetError> {
        let url = self.endpoints.downstream.clone().ok_or(TargetError::NoEndpoint {
            target: self.profile.name.clone(),
            what: "a view of what the API behind the resource received ([resource] downstream)",
        })?;
        self.get("what the API behind the resource received", &url).await
    }

    /// Whether the target still answers (its token endpoint takes connections).
    pub async fn answers(&self) -> bool {
        let Some(probe) = self.metadata_url.clone().or_else(|| self.endpoints.token.clone()) else {
            return false;
        };
        self.http.get(probe).send().await.is_ok()
    }

    /// The token endpoint; when the profile leaves it to a broken discovery
    /// document, an error saying so ([`TargetError::BrokenDiscovery`]).
    pub fn token_endpoint(&self) -> Result<&str, TargetError> {
        self.endpoints.token.as_deref().ok_or_else(|| TargetError::BrokenDiscovery {
            target: self.profile.name.clone(),
            what: "token",
            problem: self.discovery_problem.clone().unwrap_or_else(|| "discovery named none".into()),
        })
    }

    /// Where logins redeem their code: the `[upstream]` token endpoint, else
    /// [`Self::token_endpoint`].
    pub fn login_token_endpoint(&self) -> Result<&str, TargetError> {
        match &self.endpoints.login_token {
            Some(url) => Ok(url),
            None => self.token_endpoint(),
        }
    }

    /// What names the target in reports: its issuer, else its token or
    /// metadata URL.
    #[must_use]
    pub fn address(&self) -> String {
        self.endpoints
            .issuer
            .clone()
            .or_else(|| self.endpoints.token.clone())
            .or_else(|| self.metadata_url.clone())
            .unwrap_or_default()
    }
}

/// The JSON-RPC message of an answer that came as an SSE stream (MCP
/// streamable HTTP): the last `data:` line that parses, else the body as it
/// was.
fn sse_message(body: Value) -> Value {
    let Value::String(text) = &body else { return body };
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .next_back()
        .unwrap_or(body)
}

fn run_capture(cmd: &[String]) -> Result<String, String> {
    let (program, args) = cmd.split_first().ok_or("empty command")?;
    let out =
        std::process::Command::new(program).args(args).output().map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!("{program} {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_placeholders_fill_or_ask_for_the_lab() {
        let lab = LabContext {
            urls: BTreeMap::from([("keycloak".to_owned(), "http://127.0.0.1:1".to_owned())]),
            ..LabContext::default()
        };
        assert_eq!(fill("{lab.keycloak}/realms/x", Some(&lab), "t").unwrap(), "http://127.0.0.1:1/realms/x");
        let err = fill("{lab.keycloak}/realms/x", None, "t").unwrap_err().to_string();
        assert!(err.contains("fourleg up"), "{err}");
    }

    #[test]
    fn a_missing_env_secret_names_the_variable_and_field() {
        let err =
            load_secret(&SecretSource::Env("FOURLEG_SURELY_UNSET_VAR".into()), "clients.agent.secret", "vendor", None)
                .unwrap_err()
                .to_string();
        assert!(err.contains("FOURLEG_SURELY_UNSET_VAR"), "{err}");
        assert!(err.contains("clients.agent.secret"), "{err}");
    }

    #[test]
    fn secret_form_values_show_only_their_label() {
        let v = FormValue::Secret { value: Secret::new("eyJ.real.token"), label: "subject_token: user".into() };
        assert_eq!(v.shown("subject_token"), "<subject_token: user>");
        assert_eq!(FormValue::Plain("hunter2".into()).shown("client_secret"), "[redacted]");
        assert_eq!(FormValue::Plain("mcp-server".into()).shown("audience"), "mcp-server");
    }
}
