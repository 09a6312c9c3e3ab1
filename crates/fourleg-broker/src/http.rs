//! The endpoints: RFC 8693 token exchange and RFC 6749 §4.4 client
//! credentials at the token endpoint, RFC 7662 introspection, RFC 7009
//! revocation, OpenID Connect Back-Channel Logout 1.0 from Keycloak, RFC 8414
//! metadata, the JWKS, and `/health`.
//!
//! A dependency that fails (Postgres, OpenBao, Keycloak's JWKS past its
//! cache) answers 503 `temporarily_unavailable`: the broker fails closed and
//! never returns a token whose lineage row is not written.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fourleg_core::jose::VerifyError;
use fourleg_core::jwt;
use fourleg_core::oauth::{ErrorCode, ErrorCode as E, GrantType, TokenType};
use fourleg_core::Secret;
use fourleg_policy::{self as policy, Actor, Exchange, MayAct, Party, Requester, Subject};
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use serde_json::{json, Map, Value};

use crate::config::{ClientSpec, Kind};
use crate::error::BrokerError;
use crate::store::{Audit, NewToken};
use crate::upstream::UpstreamError;
use crate::Broker;

/// Seconds since the epoch.
#[must_use]
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A random token-safe string (`jti`, `kid`).
#[must_use]
pub fn random_id(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// An error answer: an OAuth error (RFC 6749 §5.2) or the broker unable to serve.
#[derive(Debug)]
pub enum Failure {
    OAuth { error: ErrorCode, description: String },
    Unavailable(BrokerError),
}

impl Failure {
    fn oauth(error: ErrorCode, description: impl Into<String>) -> Self {
        Failure::OAuth { error, description: description.into() }
    }

    fn invalid_request(d: impl Into<String>) -> Self {
        Self::oauth(E::InvalidRequest, d)
    }
}

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Self {
        Failure::Unavailable(e)
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::OAuth { error, description } => {
                let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
                let mut r = (status, Json(json!({"error": error, "error_description": description}))).into_response();
                no_store(r.headers_mut());
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"fourleg-broker\""));
                }
                r
            }
            Failure::Unavailable(e) => {
                eprintln!("fourleg-broker: unavailable: {e}");
                let mut r = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({"error": "temporarily_unavailable", "error_description": e.to_string()})),
                )
                    .into_response();
                no_store(r.headers_mut());
                r
            }
        }
    }
}

/// A decoded `application/x-www-form-urlencoded` body; names may repeat.
#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }
    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }
    fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0.iter().filter(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.clone()).collect()
    }
    /// Scope values (RFC 6749 §3.3), de-duplicated in request order.
    fn scope(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for v in self.get("scope").unwrap_or_default().split_whitespace() {
            if !out.iter().any(|o| o == v) {
                out.push(v.to_owned());
            }
        }
        out
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
struct Caller<'a> {
    client_id: String,
    spec: &'a ClientSpec,
    /// It authenticated with a secret (a confidential client).
    confidential: bool,
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1, form-
/// urlencoded id and secret) or the body.
fn credentials(headers: &HeaderMap, form: &Form) -> Option<(String, Option<Secret>)> {
    if let Some(basic) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    {
        let raw = STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        let dec =
            |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        return Some((dec(id)?, dec(secret).filter(|s| !s.is_empty()).map(Secret::new)));
    }
    let id = form.get("client_id")?.to_owned();
    Some((id, form.get("client_secret").map(Secret::new)))
}

/// Equal in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Broker {
    /// Authenticates the caller (RFC 6749 §2.3.1; public clients by
    /// `client_id` alone, §2.1). The secret is compared with the one read
    /// from OpenBao; a disabled client does not authenticate.
    async fn authenticate(&self, headers: &HeaderMap, form: &Form) -> Result<Caller<'_>, Failure> {
        let bad = || Failure::oauth(E::InvalidClient, "client authentication failed");
        let (id, secret) = credentials(headers, form).ok_or_else(bad)?;
        let Some((cid, spec)) = self.catalog.clients.get_key_value(&id) else {
            self.audit_denied(&id, "client authentication failed: unknown client").await?;
            return Err(bad());
        };
        let caller = match (spec.kind, &secret) {
            (Kind::Login, None) => Caller { client_id: cid.clone(), spec, confidential: false },
            (Kind::Login, Some(_)) => {
                self.audit_denied(cid, "client authentication failed: a public client sent a secret").await?;
                return Err(bad());
            }
            (_, Some(s)) => {
                let stored = self.vault.client_secret(cid).await?;
                if !stored.is_some_and(|st| same(st.expose().as_bytes(), s.expose().as_bytes())) {
                    self.audit_denied(cid, "client authentication failed: wrong secret").await?;
                    return Err(bad());
                }
                Caller { client_id: cid.clone(), spec, confidential: true }
            }
            (_, None) => {
                self.audit_denied(cid, "client authentication failed: no secret").await?;
                return Err(bad());
            }
        };
        if self.store.client_disabled(cid).await? {
            self.audit_denied(cid, "client disabled").await?;
            return Err(Failure::oauth(E::InvalidClient, "client disabled"));
        }
        Ok(caller)
    }

    async fn audit_denied(&self, client_id: &str, reason: &str) -> Result<(), BrokerError> {
        self.store.audit(&Audit { client_id, outcome: "denied", reason, ..Audit::default() }).await
    }
}

/// A presented token, verified, with where it came from.
#[derive(Debug)]
struct Presented {
    claims: Value,
    /// Issued by the broker: its lineage; issued by Keycloak: `None`.
    lineage: Option<crate::store::Lineage>,
    jti: Option<String>,
}

fn aud_list(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

fn str_claim(claims: &Value, name: &str) -> Option<String> {
    claims[name].as_str().map(str::to_owned)
}

/// The actors of an `act` chain, outermost first (RFC 8693 §4.1).
fn chain_of(claims: &Value) -> Vec<Party> {
    let mut out = Vec::new();
    let mut cur = claims.get("act");
    while let Some(a) = cur {
        out.push(Party { sub: str_claim(a, "sub").unwrap_or_default(), client_id: str_claim(a, "client_id") });
        cur = a.get("act");
    }
    out
}

fn may_act_of(claims: &Value) -> Option<MayAct> {
    let m = claims.get("may_act").filter(|v| !v.is_null())?;
    Some(MayAct { sub: str_claim(m, "sub"), client_id: str_claim(m, "client_id") })
}

impl Broker {
    /// Verifies a presented token (RFC 8693 §2.1 "validated per its type"):
    /// one the broker issued (signature, then its lineage row decides
    /// whether it is active) or one of Keycloak's (signature with its JWKS,
    /// `exp`, and not revoked here nor its session ended).
    async fn presented(&self, token: &str, what: &str, now: i64, for_exchange: bool) -> Result<Presented, Failure> {
        let invalid = |why: String| Failure::invalid_request(format!("{what}: {why}"));
        let unverified = jwt::decode(token).map_err(|e| invalid(e.to_string()))?;
        let iss = unverified.claims["iss"].as_str().unwrap_or_default().to_owned();
        if iss == self.config.issuer {
            let first = self.keys.read().await.verify(token);
            let v = match first {
                // Signed by a key another replica rotated in: load the keys again.
                Err(VerifyError::UnknownKid(_)) => {
                    self.reload_keys_bounded().await?;
                    self.keys.read().await.verify(token)
                }
                other => other,
            }
            .map_err(|e| invalid(e.to_string()))?;
            let jti = str_claim(&v.claims, "jti").ok_or_else(|| invalid("no jti".into()))?;
            let lineage = self.store.lineage(&jti).await?.ok_or_else(|| invalid("not issued here".into()))?;
            if for_exchange && !lineage.active {
                return Err(invalid("revoked, expired, or its client disabled".into()));
            }
            return Ok(Presented { claims: v.claims, lineage: Some(lineage), jti: Some(jti) });
        }
        if iss != self.config.upstream.issuer {
            return Err(invalid(format!("unknown issuer {iss:?}")));
        }
        let v = self.upstream.verify(token).await.map_err(|e| match e {
            UpstreamError::Invalid(e) => invalid(e.to_string()),
            UpstreamError::Unavailable(e) => Failure::Unavailable(e),
        })?;
        if for_exchange && v.claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return Err(invalid("expired".into()));
        }
        if v.claims["typ"].as_str().is_some_and(|t| t != "Bearer") {
            return Err(invalid(format!("a Keycloak {} token is not an access token", v.claims["typ"])));
        }
        let jti = str_claim(&v.claims, "jti");
        let sid = str_claim(&v.claims, "sid").unwrap_or_default();
        if self.store.upstream_revoked(jti.as_deref().unwrap_or_default(), &sid).await? {
            return Err(invalid("revoked, or its session ended".into()));
        }
        Ok(Presented { claims: v.claims, lineage: None, jti })
    }
}

/// Only JWT access tokens are understood (RFC 8693 §3).
fn type_supported(t: &TokenType) -> bool {
    matches!(t, TokenType::AccessToken | TokenType::Jwt)
}

/// The routes of one broker.
pub fn router(b: Arc<Broker>) -> Router {
    Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/token", post(token))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/backchannel-logout", post(backchannel_logout))
        .route("/jwks", get(jwks))
        .route("/health", get(health))
        .with_state(b)
}

/// RFC 8414 §2. Users log in at Keycloak; the broker has no authorization endpoint.
async fn metadata(State(b): State<Arc<Broker>>) -> Response {
    let i = &b.config.issuer;
    let mut scopes: Vec<&String> = b.catalog.permissions.iter().collect();
    scopes.extend(b.catalog.delegation_scopes.keys());
    Json(json!({
        "issuer": i,
        "token_endpoint": format!("{i}/token"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "jwks_uri": format!("{i}/jwks"),
        "grant_types_supported": [GrantType::ClientCredentials, GrantType::TokenExchange],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": scopes,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    }))
    .into_response()
}

async fn jwks(State(b): State<Arc<Broker>>) -> Response {
    Json(b.keys.read().await.published().clone()).into_response()
}

/// Readiness: Postgres answers, OpenBao is unsealed, a signing key is loaded.
async fn health(State(b): State<Arc<Broker>>) -> Response {
    let (pg, bao) = tokio::join!(b.store.healthy(), b.vault.healthy());
    let body = json!({"status": if pg && bao { "ok" } else { "unavailable" }, "postgres": pg, "openbao": bao});
    let status = if pg && bao { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// The token endpoint (RFC 6749 §3.2).
async fn token(State(b): State<Arc<Broker>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let res = match form.get("grant_type").map(GrantType::from) {
        Some(GrantType::ClientCredentials) => client_credentials(&b, &headers, &form).await,
        Some(GrantType::TokenExchange) => exchange(&b, &headers, &form).await,
        Some(_) => Err(Failure::oauth(
            E::UnsupportedGrantType,
            "this broker issues by client_credentials and token exchange; users log in at Keycloak",
        )),
        None => Err(Failure::invalid_request("grant_type is required")),
    };
    match res {
        Ok(body) => {
            let mut r = (StatusCode::OK, Json(body)).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Client credentials (RFC 6749 §4.4): a client's own token, its actor token.
async fn client_credentials(b: &Broker, headers: &HeaderMap, form: &Form) -> Result<Value, Failure> {
    let caller = b.authenticate(headers, form).await?;
    if !caller.confidential || caller.spec.kind != Kind::Exchanging {
        b.audit_denied(&caller.client_id, "client_credentials: not an exchanging confidential client").await?;
        return Err(Failure::oauth(E::UnauthorizedClient, "this client has no client credentials grant"));
    }
    let sub = caller.spec.sub.clone().unwrap_or_else(|| caller.client_id.clone());
    let now = now();
    let asked = form.scope();
    if let Some(bad) = asked.iter().find(|v| !b.catalog.permissions.contains(v) && !b.policy.other_scopes.contains(*v))
    {
        b.audit_denied(&caller.client_id, &format!("client_credentials: unknown scope {bad}")).await?;
        return Err(Failure::oauth(E::InvalidScope, format!("unknown scope {bad}")));
    }
    let granted: Vec<String> = b
        .catalog
        .permissions
        .iter()
        .filter(|p| asked.contains(p) && caller.spec.baseline.contains(*p))
        .cloned()
        .collect();
    let jti = random_id(22);
    let exp = now + b.catalog.lifetime_s;
    let scope = granted.join(" ");
    let claims = json!({
        "iss": b.config.issuer, "sub": sub, "aud": caller.spec.targets, "azp": caller.client_id,
        "client_id": caller.client_id, "iat": now, "exp": exp, "jti": jti, "scope": scope,
    });
    let root = format!("client:{}", caller.client_id);
    let row = NewToken {
        jti: &jti,
        parent_jti: None,
        root_subject: &root,
        subject: &sub,
        actors: Vec::new(),
        client_id: &caller.client_id,
        audience: caller.spec.targets.clone(),
        scope: scope.clone(),
        expires_at: exp,
        session_id: None,
        kind: "client",
    };
    b.openbao_available()?;
    b.store.issue(&row, None, form.get("scope"), "client_credentials").await?;
    let token = b.keys.read().await.sign(&claims)?;
    Ok(json!({"access_token": token, "token_type": "Bearer", "expires_in": exp - now, "scope": scope}))
}

/// What an exchange refusal records.
struct Refused<'a> {
    subject: Option<&'a str>,
    actor: Option<&'a str>,
    audience: Option<Vec<String>>,
}

async fn refuse(b: &Broker, client_id: &str, form: &Form, r: &Refused<'_>, f: Failure) -> Failure {
    let reason = match &f {
        Failure::OAuth { error, description } => format!("{error}: {description}"),
        Failure::Unavailable(e) => e.to_string(),
    };
    let outcome = if matches!(f, Failure::OAuth { .. }) { "denied" } else { "error" };
    let audit = Audit {
        client_id,
        subject: r.subject,
        actor: r.actor,
        audience: r.audience.clone(),
        requested_scope: form.get("scope"),
        granted_scope: None,
        outcome,
        reason: &reason,
        request_id: None,
    };
    match b.store.audit(&audit).await {
        Ok(()) => f,
        // No refusal leaves without its audit row either.
        Err(e) => Failure::Unavailable(e),
    }
}

/// Token exchange (RFC 8693 §2). The decision is [`fourleg_policy::decide`].
async fn exchange(b: &Broker, headers: &HeaderMap, form: &Form) -> Result<Value, Failure> {
    let caller = b.authenticate(headers, form).await?;
    let cid = caller.client_id.clone();
    let nobody = Refused { subject: None, actor: None, audience: None };
    match (caller.confidential, caller.spec.kind) {
        (true, Kind::Exchanging) => {}
        (false, _) => {
            let f =
                Failure::oauth(E::UnauthorizedClient, format!("{cid} is a public client and may not exchange tokens"));
            return Err(refuse(b, &cid, form, &nobody, f).await);
        }
        _ => {
            let f = Failure::oauth(E::UnauthorizedClient, "this client may not exchange tokens");
            return Err(refuse(b, &cid, form, &nobody, f).await);
        }
    }
    match parse_and_decide(b, &caller, form).await {
        Ok(v) => Ok(v),
        Err((f, subject, actor)) => {
            let r =
                Refused { subject: subject.as_deref(), actor: actor.as_deref(), audience: Some(form.all("audience")) };
            Err(refuse(b, &cid, form, &r, f).await)
        }
    }
}

type Refusal = (Failure, Option<String>, Option<String>);

#[expect(clippy::too_many_lines, reason = "one request, checked in the order RFC 8693 §2.1 lists its parameters")]
async fn parse_and_decide(b: &Broker, caller: &Caller<'_>, form: &Form) -> Result<Value, Refusal> {
    let plain = |f: Failure| (f, None, None);
    // Parameters (RFC 8693 §2.1).
    let subject_token =
        form.get("subject_token").ok_or_else(|| plain(Failure::invalid_request("subject_token is required")))?;
    let subject_type = form
        .get("subject_token_type")
        .map(TokenType::from)
        .ok_or_else(|| plain(Failure::invalid_request("subject_token_type is required")))?;
    let actor_token = form.get("actor_token");
    let actor_type = form.get("actor_token_type").map(TokenType::from);
    match (actor_token, &actor_type) {
        (Some(_), None) => {
            return Err(plain(Failure::invalid_request("actor_token_type is required with actor_token")))
        }
        (None, Some(_)) => {
            return Err(plain(Failure::invalid_request("actor_token_type must not be sent without actor_token")))
        }
        _ => {}
    }
    if !type_supported(&subject_type) {
        return Err(plain(Failure::invalid_request(format!("unsupported subject_token_type {subject_type}"))));
    }
    if let Some(t) = actor_type.as_ref().filter(|t| !type_supported(t)) {
        return Err(plain(Failure::invalid_request(format!("unsupported actor_token_type {t}"))));
    }
    let issued_type = match form.get("requested_token_type").map(TokenType::from) {
        None => TokenType::AccessToken,
        Some(t) if type_supported(&t) => t,
        Some(t) => return Err(plain(Failure::invalid_request(format!("unsupported requested_token_type {t}")))),
    };

    // The tokens.
    let now = now();
    let subject = b.presented(subject_token, "subject_token", now, true).await.map_err(plain)?;
    let sub = str_claim(&subject.claims, "sub").unwrap_or_default();
    let actor = match actor_token {
        None => None,
        Some(t) => Some(b.presented(t, "actor_token", now, true).await.map_err(|f| (f, Some(sub.clone()), None))?),
    };
    let actor_sub = actor.as_ref().map(|a| str_claim(&a.claims, "sub").unwrap_or_default());
    let with_parties = |f: Failure| (f, Some(sub.clone()), actor_sub.clone());

    // The policy's inputs. A broker-issued subject's audience is its lineage's.
    let permissions = |claims: &Value| -> Vec<String> {
        let values: Vec<&str> = claims["scope"].as_str().unwrap_or_default().split_whitespace().collect();
        b.catalog.permissions.iter().filter(|p| values.contains(&p.as_str())).cloned().collect()
    };
    let held = permissions(&subject.claims);
    let user_permissions: Option<BTreeSet<String>> = if subject.lineage.is_none() {
        subject.claims["realm_access"]["roles"].as_array().map(|roles| {
            roles
                .iter()
                .filter_map(Value::as_str)
                .filter(|r| b.catalog.permissions.iter().any(|p| p == r))
                .map(str::to_owned)
                .collect()
        })
    } else {
        None
    };
    let actor_party = actor.as_ref().map(|a| {
        let asub = str_claim(&a.claims, "sub").unwrap_or_default();
        let client_id =
            b.catalog.client_by_sub(&asub).filter(|(_, c)| c.kind == Kind::Exchanging).map(|(id, _)| id.to_owned());
        Actor { sub: asub, client_id }
    });
    #[cfg_attr(not(feature = "faults"), allow(unused_mut))]
    let mut x = Exchange {
        requester: Requester {
            client_id: caller.client_id.clone(),
            sub: caller.spec.sub.clone().unwrap_or_else(|| caller.client_id.clone()),
            baseline: caller.spec.baseline.clone(),
            targets: caller.spec.targets.clone(),
            lifetime_s: b.catalog.lifetime_s,
        },
        subject: Subject {
            sub: sub.clone(),
            aud: subject.lineage.as_ref().map_or_else(|| aud_list(&subject.claims), |l| l.audience.clone()),
            scope: held,
            exp: subject.claims["exp"].as_i64().unwrap_or(now),
            may_act: may_act_of(&subject.claims),
            act: chain_of(&subject.claims),
        },
        actor: actor_party.clone(),
        audience: form.all("audience"),
        resource: form.all("resource"),
        scope: form.has("scope").then(|| form.scope()),
        user_permissions,
        now,
    };

    #[cfg(feature = "faults")]
    if let Some(fault) = b.fault {
        // A subject token of the broker's own was exchanged already.
        fault.perturb(&b.policy, &mut x, subject.lineage.is_some());
    }

    #[cfg(feature = "faults")]
    let limits = b.fault.map_or(b.limits, |f| f.limits(b.limits));
    #[cfg(not(feature = "faults"))]
    let limits = b.limits;

    // The decision (RFC 8693 §2.1–§2.2.2, §4.1, §4.4; RFC 8707 §2; agent profile).
    let grant =
        policy::decide(&b.policy, limits, &x).map_err(|r| with_parties(Failure::oauth(r.code(), r.to_string())))?;

    // A delegation scope (contract §5) mints a may_act naming its client.
    let mut granted = grant.scope.clone();
    let mut may_act = None;
    for (scope, client) in &b.catalog.delegation_scopes {
        if form.scope().contains(scope) && caller.spec.baseline.contains(scope) {
            granted.push(scope.clone());
            let named = &b.catalog.clients[client];
            may_act = Some(Party::new(named.sub.clone().unwrap_or_else(|| client.clone()), Some(client)).to_claim());
        }
    }

    let jti = random_id(22);
    let sid = subject.lineage.as_ref().map_or_else(|| str_claim(&subject.claims, "sid"), |l| l.session_id.clone());
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(b.config.issuer));
    claims.insert("sub".into(), json!(grant.sub));
    claims.insert("aud".into(), json!(grant.aud));
    claims.insert("azp".into(), json!(caller.client_id));
    claims.insert("client_id".into(), json!(caller.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(grant.exp));
    claims.insert("jti".into(), json!(jti));
    if let Some(s) = &sid {
        claims.insert("sid".into(), json!(s));
    }
    if let Some(u) = subject.claims.get("preferred_username") {
        claims.insert("preferred_username".into(), u.clone());
    }
    let scope = granted.join(" ");
    claims.insert("scope".into(), json!(scope));
    if let Some(act) = grant.act_claim() {
        claims.insert("act".into(), act);
    }
    if let Some(m) = may_act {
        claims.insert("may_act".into(), m);
    }
    let claims = Value::Object(claims);

    // Lineage and audit, together, before the token exists outside.
    let root = subject.lineage.as_ref().map_or_else(
        || subject.jti.clone().unwrap_or_else(|| format!("upstream-sub:{sub}")),
        |l| l.root_subject.clone(),
    );
    let actors: Vec<String> = grant.act.iter().map(|p| p.client_id.clone().unwrap_or_else(|| p.sub.clone())).collect();
    let row = NewToken {
        jti: &jti,
        parent_jti: subject.lineage.as_ref().and(subject.jti.as_deref()),
        root_subject: &root,
        subject: &grant.sub,
        actors,
        client_id: &caller.client_id,
        audience: grant.aud.clone(),
        scope: scope.clone(),
        expires_at: grant.exp,
        session_id: sid.as_deref(),
        kind: "exchange",
    };
    let actor_client = actor_party.as_ref().and_then(|a| a.client_id.clone());
    b.openbao_available().map_err(|e| with_parties(Failure::Unavailable(e)))?;
    b.store
        .issue(&row, actor_client.as_deref(), form.get("scope"), "token exchange granted")
        .await
        .map_err(|e| with_parties(Failure::Unavailable(e)))?;
    let token = b.keys.read().await.sign(&claims).map_err(|e| with_parties(Failure::Unavailable(e)))?;

    // The response (RFC 8693 §2.2.1).
    Ok(json!({
        "access_token": token,
        "issued_token_type": issued_type,
        "token_type": "Bearer",
        "expires_in": grant.expires_in(now),
        "scope": scope,
    }))
}

/// Introspection (RFC 7662 §2): confidential clients only; a token is active
/// when its lineage row says so (broker tokens) or when Keycloak signed it,
/// it has not expired and was not revoked here nor its session ended.
async fn introspect(State(b): State<Arc<Broker>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let caller = match b.authenticate(&headers, &form).await {
        Ok(c) if c.confidential => c,
        Ok(_) => return Failure::oauth(E::InvalidClient, "introspection is for confidential clients").into_response(),
        Err(e) => return e.into_response(),
    };
    let _ = caller;
    let Some(token) = form.get("token") else {
        return Failure::invalid_request("token is required").into_response();
    };
    let now = now();
    let inactive = || Json(json!({"active": false})).into_response();
    let p = match b.presented(token, "token", now, false).await {
        Ok(p) => p,
        Err(Failure::Unavailable(e)) => return Failure::Unavailable(e).into_response(),
        Err(_) => return inactive(),
    };
    let active = match &p.lineage {
        Some(l) => l.active,
        None => p.claims["exp"].as_i64().is_some_and(|e| e > now),
    };
    if !active {
        return inactive();
    }
    let mut doc = p.claims;
    doc["active"] = json!(true);
    doc["token_type"] = json!("Bearer");
    Json(doc).into_response()
}

/// Revocation (RFC 7009 §2): the client the token was issued to revokes it,
/// and with it every token exchanged from it (one statement). A Keycloak
/// token revoked here is refused from then on, with everything derived from
/// it. Unknown tokens get 200 (§2.2).
async fn revoke(State(b): State<Arc<Broker>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let caller = match b.authenticate(&headers, &form).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(token) = form.get("token") else {
        return Failure::invalid_request("token is required").into_response();
    };
    let p = match b.presented(token, "token", now(), false).await {
        Ok(p) => p,
        Err(Failure::Unavailable(e)) => return Failure::Unavailable(e).into_response(),
        Err(_) => return revoke_upstream_refresh(&b, &caller.client_id, token).await,
    };
    let not_yours = || Failure::oauth(E::UnauthorizedClient, "the token was not issued to this client").into_response();
    let by = format!("revocation by {}", caller.client_id);
    let done = match (&p.lineage, &p.jti) {
        (Some(l), Some(jti)) => {
            if l.client_id != caller.client_id {
                return not_yours();
            }
            b.store.revoke_subtree(jti, "rfc7009", &by).await
        }
        (None, Some(jti)) => {
            let azp = str_claim(&p.claims, "azp").or_else(|| str_claim(&p.claims, "client_id"));
            if azp.as_deref() != Some(caller.client_id.as_str()) {
                return not_yours();
            }
            b.store.revoke_upstream("jti", jti, "rfc7009 (upstream token)", &by).await
        }
        _ => return StatusCode::OK.into_response(),
    };
    match done {
        Ok(_) => {
            b.notify_revoked().await;
            StatusCode::OK.into_response()
        }
        Err(e) => Failure::Unavailable(e).into_response(),
    }
}

/// A user's Keycloak refresh token revoked at the broker (RFC 7009 §2.1, by
/// the login client it was issued to): the broker cannot verify it (Keycloak
/// signs refresh tokens with a realm secret, HS512), so it revokes it where
/// it can be checked, at Keycloak, and only once Keycloak accepted the
/// revocation does it refuse the session (`sid`) and revoke every token
/// derived from it. Keycloak ends that client session without a back-channel
/// logout, so nothing else would tell the broker.
///
/// What this trusts: Keycloak answers 200 to a token it does not know (RFC
/// 7009 §2.2), so a forged refresh token naming another user's `sid` would
/// revoke that session's chain here. Forging one needs the `sid`, which only
/// that user's own tokens carry; the harm is a revocation, never a grant.
async fn revoke_upstream_refresh(b: &Broker, caller: &str, token: &str) -> Response {
    let ok = || {
        let mut r = StatusCode::OK.into_response();
        no_store(r.headers_mut());
        r
    };
    let Ok(d) = jwt::decode(token) else { return ok() };
    let c = &d.claims;
    let is_login_client = b.catalog.clients.get(caller).is_some_and(|s| s.kind == Kind::Login);
    if c["iss"].as_str() != Some(b.config.upstream.issuer.as_str())
        || c["typ"].as_str() != Some("Refresh")
        || str_claim(c, "azp").as_deref() != Some(caller)
        || !is_login_client
    {
        return ok();
    }
    let Some(sid) = str_claim(c, "sid") else { return ok() };
    let forwarded = b
        .http
        .post(b.config.upstream_revocation())
        .form(&[("token", token), ("token_type_hint", "refresh_token"), ("client_id", caller)])
        .send()
        .await;
    let refused = match forwarded {
        Ok(r) if r.status().is_success() => None,
        Ok(r) => Some(format!("answered {}", r.status())),
        Err(e) => Some(e.to_string()),
    };
    if let Some(why) = refused {
        let e = BrokerError::Upstream(format!("revoking the refresh token at Keycloak: {why}"));
        return Failure::Unavailable(e).into_response();
    }
    match b.store.revoke_upstream("session", &sid, "rfc7009 (upstream refresh token)", caller).await {
        Ok(_) => {
            b.notify_revoked().await;
            ok()
        }
        Err(e) => Failure::Unavailable(e).into_response(),
    }
}

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// OpenID Connect Back-Channel Logout 1.0 §2.5–§2.8: Keycloak posts a
/// `logout_token` when a user's session ends; every token derived from that
/// session is revoked and the session is refused from then on.
async fn backchannel_logout(State(b): State<Arc<Broker>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let bad = |why: &str| {
        let mut r = (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request", "error_description": why})))
            .into_response();
        no_store(r.headers_mut());
        r
    };
    let Some(lt) = form.get("logout_token") else { return bad("logout_token is required") };
    let v = match b.upstream.verify(lt).await {
        Ok(v) => v,
        Err(UpstreamError::Unavailable(e)) => return Failure::Unavailable(e).into_response(),
        Err(UpstreamError::Invalid(e)) => return bad(&format!("logout_token: {e}")),
    };
    let c = &v.claims;
    // §2.6: iss, aud (a login client of ours), iat, events, no nonce, sid or sub.
    let aud_ok = aud_list(c).iter().any(|a| b.catalog.clients.get(a).is_some_and(|s| s.kind == Kind::Login));
    if c["iss"].as_str() != Some(b.config.upstream.issuer.as_str())
        || !aud_ok
        || c["iat"].as_i64().is_none()
        || c["events"].get(BACKCHANNEL_EVENT).is_none()
        || c.get("nonce").is_some()
    {
        return bad("logout_token: not a valid logout token (OIDC Back-Channel Logout §2.6)");
    }
    let Some(sid) = str_claim(c, "sid") else { return bad("logout_token: no sid (session required)") };
    match b.store.revoke_upstream("session", &sid, "back-channel logout", "keycloak").await {
        Ok(_) => {
            b.notify_revoked().await;
            let mut r = StatusCode::OK.into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => Failure::Unavailable(e).into_response(),
    }
}
