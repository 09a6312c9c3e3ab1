//! Requests under load: one HTTP connection to a target, making the
//! requests a benchmark repeats (RFC 8693 exchange, RFC 7662 introspection,
//! RFC 7009 revocation) without recording evidence.
//!
//! [`Target`]'s own requests keep redacted evidence and teach the target's
//! redactor every token they see, so a later answer that echoes one is
//! scrubbed. That is right for a scenario (a few dozen tokens) and wrong for
//! a load generator: after ten thousand exchanges every request would search
//! its answer for ten thousand tokens, and the benchmark would measure the
//! harness. A [`Connection`] keeps nothing: it returns the status, the
//! RFC 6749 §5.2 error code and the issued token (a [`Secret`]), and never
//! prints a body. Authentication, endpoints and the names of the fixture
//! contract are the profile's, exactly as for [`Target`].

use std::time::Duration;

use fourleg_core::oauth::uri;
use fourleg_core::Secret;
use serde_json::Value;

use crate::profile::AuthMethod;
use crate::target::{Target, TargetError};

/// One connection's worth of requests to a target (its own HTTP/1.1
/// keep-alive connection, opened on first use), made by [`Target::connection`].
#[derive(Debug)]
pub struct Connection {
    http: reqwest::Client,
    target: String,
    timeout_s: u64,
    token: Option<String>,
    introspection: Option<String>,
    revocation: Option<String>,
    method: AuthMethod,
    /// Contract client name → (client_id, secret; `None` for a public client).
    clients: std::collections::BTreeMap<String, (String, Option<Secret>)>,
    audiences: std::collections::BTreeMap<String, String>,
    permissions: std::collections::BTreeMap<String, String>,
}

/// What the target answered, reduced to what a benchmark counts.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// The RFC 6749 §5.2 `error`, when the body has one.
    pub error: Option<String>,
    /// The body as JSON (`Value::Null` when it is not JSON). Never printed
    /// whole: a token response holds a usable token.
    body: Value,
}

impl Reply {
    /// 2xx.
    #[must_use]
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The issued `access_token` (RFC 6749 §5.1) of a successful answer.
    #[must_use]
    pub fn access_token(&self) -> Option<Secret> {
        if !self.is_success() {
            return None;
        }
        self.body.get("access_token").and_then(Value::as_str).map(Secret::new)
    }

    /// `active` of an introspection answer (RFC 7662 §2.2); `None` when absent
    /// or not a boolean.
    #[must_use]
    pub fn active(&self) -> Option<bool> {
        self.body.get("active").and_then(Value::as_bool)
    }

    /// A claim of an introspection answer (`exp`, `client_id`, `aud`, …):
    /// claims only, never a token.
    #[must_use]
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.body.get(name)
    }

    /// One line for a refusal: `400 invalid_grant`, `503`.
    #[must_use]
    pub fn describe(&self) -> String {
        match &self.error {
            Some(e) => format!("{} {e}", self.status),
            None => self.status.to_string(),
        }
    }
}

/// An RFC 8693 §2.1 request, in the fixture contract's names (the
/// connection maps them through the profile).
#[derive(Debug, Clone, Copy)]
pub struct ExchangeRequest<'a> {
    /// The contract client that asks (`agent`).
    pub client: &'a str,
    pub subject: &'a Secret,
    /// The requester's own token as `actor_token` (delegation).
    pub actor: Option<&'a Secret>,
    /// Contract audiences (`mcp-server`).
    pub audience: &'a [&'a str],
    /// Contract permissions (`records:read`).
    pub scope: &'a [&'a str],
}

impl Target {
    /// A new [`Connection`] to this target: a connection pool of its own
    /// holding at most one idle connection, so `n` connections made here and
    /// used one request at a time each are `n` TCP connections.
    #[must_use]
    pub fn connection(&self) -> Connection {
        let timeout_s = self.profile.endpoints.timeout_s.unwrap_or(crate::profile::DEFAULT_TIMEOUT_S);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(timeout_s))
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        let clients = self
            .profile
            .clients
            .iter()
            .map(|(name, c)| {
                let secret = if c.public { None } else { self.client_secret(name).cloned() };
                (name.clone(), (c.client_id.clone(), secret))
            })
            .collect();
        Connection {
            http,
            target: self.profile.name.clone(),
            timeout_s,
            token: self.endpoints.token.clone(),
            introspection: self.endpoints.introspection.clone(),
            revocation: self.endpoints.revocation.clone(),
            method: self.profile.client_auth.method,
            clients,
            audiences: self.profile.audiences.clone(),
            permissions: self.profile.permissions.clone(),
        }
    }
}

impl Connection {
    fn unknown(&self, kind: &'static str, name: &str) -> TargetError {
        TargetError::UnknownPrincipal { target: self.target.clone(), kind, name: name.to_owned() }
    }

    /// RFC 8693 §2.1 token exchange at the token endpoint.
    pub async fn exchange(&self, x: ExchangeRequest<'_>) -> Result<Reply, TargetError> {
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", uri::GRANT_TOKEN_EXCHANGE.to_owned()),
            ("subject_token", x.subject.expose().to_owned()),
            ("subject_token_type", uri::ACCESS_TOKEN.to_owned()),
        ];
        if let Some(actor) = x.actor {
            form.push(("actor_token", actor.expose().to_owned()));
            form.push(("actor_token_type", uri::ACCESS_TOKEN.to_owned()));
        }
        for a in x.audience {
            let v = self.audiences.get(*a).ok_or_else(|| self.unknown("audience", a))?;
            form.push(("audience", v.clone()));
        }
        if !x.scope.is_empty() {
            let values: Result<Vec<&str>, _> = x
                .scope
                .iter()
                .map(|p| self.permissions.get(*p).map(String::as_str).ok_or_else(|| self.unknown("permission", p)))
                .collect();
            form.push(("scope", values?.join(" ")));
        }
        let url =
            self.token.clone().ok_or_else(|| TargetError::NoEndpoint { target: self.target.clone(), what: "token" })?;
        self.post(&url, x.client, form).await
    }

    /// RFC 7662 §2.1 introspection of `token` as `client`.
    pub async fn introspect(&self, token: &Secret, client: &str) -> Result<Reply, TargetError> {
        let url = self
            .introspection
            .clone()
            .ok_or(TargetError::NoEndpoint { target: self.target.clone(), what: "introspection" })?;
        self.post(&url, client, vec![("token", token.expose().to_owned())]).await
    }

    /// RFC 7009 §2.1 revocation of an access token as `client`.
    pub async fn revoke(&self, token: &Secret, client: &str) -> Result<Reply, TargetError> {
        let url = self
            .revocation
            .clone()
            .ok_or(TargetError::NoEndpoint { target: self.target.clone(), what: "revocation" })?;
        self.post(&url, client, vec![("token", token.expose().to_owned()), ("token_type_hint", "access_token".into())])
            .await
    }

    /// POSTs a form authenticated as `client` by the profile's method
    /// (RFC 6749 §2.3.1), or with `client_id` alone for a public client.
    async fn post(&self, url: &str, client: &str, mut form: Vec<(&str, String)>) -> Result<Reply, TargetError> {
        let (client_id, secret) = self.clients.get(client).ok_or_else(|| self.unknown("client", client))?;
        let mut req = self.http.post(url);
        match (secret, self.method) {
            (None, _) => form.push(("client_id", client_id.clone())),
            (Some(s), AuthMethod::ClientSecretBasic) => req = crate::target::client_secret_basic(req, client_id, s),
            (Some(s), AuthMethod::ClientSecretPost) => {
                form.push(("client_id", client_id.clone()));
                form.push(("client_secret", s.expose().to_owned()));
            }
        }
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                TargetError::TooSlow { target: self.target.clone(), url: url.to_owned(), seconds: self.timeout_s }
            } else {
                TargetError::Unreachable { target: self.target.clone(), url: url.to_owned(), source }
            }
        };
        let resp = req.form(&form).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(transport)?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let error = body.get("error").and_then(Value::as_str).map(str::to_owned);
        Ok(Reply { status, error, body })
    }
}
