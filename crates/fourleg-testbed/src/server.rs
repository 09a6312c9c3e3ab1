//! The HTTP side: routes, client authentication (RFC 6749 §2.3.1), error
//! responses (RFC 6749 §5.2) and the endpoints other than token exchange.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use serde_json::{json, Value};

use fourleg_core::oauth::{uri, ErrorCode, ErrorCode as E, GrantType};

use crate::breakage::Breakage;
use crate::dpop;
use crate::exchange;
use crate::fixture::{self, Client, Kind};
use crate::keys::{self, Keys};
use crate::store::{Purpose, Refresh, Store};

/// Shared state of one server.
#[derive(Debug)]
pub struct Server {
    pub issuer: String,
    pub keys: Arc<Keys>,
    pub broken: Option<Breakage>,
    /// Client secrets by `client_id`; user passwords by username.
    pub secrets: std::collections::BTreeMap<String, String>,
    pub passwords: std::collections::BTreeMap<String, String>,
    /// The order of the exchange policy's groups of checks
    /// ([`fourleg_policy::Limits::order`]).
    pub order: [fourleg_policy::Check; 4],
    /// The `jti`s of the DPoP proofs accepted (RFC 9449 §11.1).
    pub seen: dpop::Seen,
    /// The claims of every token the protected resource's upstream API
    /// received, newest last (`/resource/received`).
    pub received: Mutex<Vec<Value>>,
    /// Clients registered at `/register` (RFC 7591), by `client_id`.
    pub registered: Mutex<std::collections::HashMap<String, Registered>>,
    store: Mutex<Store>,
}

impl Server {
    pub fn new(
        issuer: String,
        keys: Arc<Keys>,
        broken: Option<Breakage>,
        secrets: std::collections::BTreeMap<String, String>,
        passwords: std::collections::BTreeMap<String, String>,
    ) -> Self {
        Self {
            issuer,
            keys,
            broken,
            secrets,
            passwords,
            order: fourleg_policy::Check::DOCUMENTED,
            seen: dpop::Seen::default(),
            received: Mutex::new(Vec::new()),
            registered: Mutex::new(std::collections::HashMap::new()),
            store: Mutex::new(Store::default()),
        }
    }

    /// Whether this server runs with that switch.
    #[must_use]
    pub fn is(&self, b: Breakage) -> bool {
        self.broken == Some(b)
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock would be a bug of the test bed; the
        // data is still the best there is.
        self.store.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Seconds since the epoch.
#[must_use]
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// A random token-safe string (`jti`, `sid`, refresh tokens).
#[must_use]
pub fn random_id(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        Self { status, error, description: description.into() }
    }

    fn into_response(self, broken: Option<Breakage>) -> Response {
        if broken == Some(Breakage::ErrorsNotJson) {
            return (StatusCode::FORBIDDEN, format!("{}: {}", self.error, self.description)).into_response();
        }
        let status = if broken == Some(Breakage::BasicRefusedAsBadRequest) && self.error == ErrorCode::InvalidClient {
            StatusCode::BAD_REQUEST
        } else {
            self.status
        };
        let mut r = (status, Json(json!({"error": self.error, "error_description": self.description}))).into_response();
        no_store(r.headers_mut(), broken);
        if status == StatusCode::UNAUTHORIZED {
            match broken {
                Some(Breakage::NoBasicChallenge) => {}
                Some(Breakage::BasicChallengeWrongScheme) => {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"testbed\""));
                }
                _ => {
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"testbed\""));
                }
            }
        }
        r
    }
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).
fn no_store(h: &mut HeaderMap, broken: Option<Breakage>) {
    if broken != Some(Breakage::NoCacheControl) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
}

fn token_response(body: Value, broken: Option<Breakage>) -> Response {
    let mut r = (StatusCode::OK, Json(body)).into_response();
    no_store(r.headers_mut(), broken);
    r
}

/// A decoded `application/x-www-form-urlencoded` body; names may repeat.
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of a parameter; an empty value counts as absent.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    /// Whether the parameter is present at all.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    /// Every value of a repeatable parameter (`audience`, `resource`).
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }
}

/// Who is calling (RFC 6749 §2.3.1: Basic or form credentials; §2.1 public clients send `client_id`).
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    /// A confidential client with its secret.
    Confidential(&'static Client),
    /// A public client identified by `client_id`.
    Public(&'static Client),
}

impl Caller {
    #[must_use]
    pub fn client(self) -> &'static Client {
        match self {
            Caller::Confidential(c) | Caller::Public(c) => c,
        }
    }
}

fn credentials(headers: &HeaderMap, form: &Form) -> Option<(String, Option<String>)> {
    if let Some(basic) =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    {
        let raw = STANDARD.decode(basic.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        let dec =
            |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        return Some((dec(id)?, dec(secret)));
    }
    let id = form.get("client_id")?.to_owned();
    Some((id, form.get("client_secret").map(str::to_owned)))
}

/// Authenticates the caller. `lenient` is the broken variant that does not check secrets.
pub fn authenticate(s: &Server, headers: &HeaderMap, form: &Form, lenient: bool) -> Result<Caller, OAuthError> {
    let bad = || OAuthError::new(E::InvalidClient, "client authentication failed");
    let (id, secret) = credentials(headers, form).ok_or_else(bad)?;
    let client = fixture::client(&id).ok_or_else(bad)?;
    if client.is_public() {
        return if secret.is_none() { Ok(Caller::Public(client)) } else { Err(bad()) };
    }
    let expected = s.secrets.get(client.client_id);
    if lenient || (secret.is_some() && secret.as_ref() == expected) {
        Ok(Caller::Confidential(client))
    } else {
        Err(bad())
    }
}

/// The routes of one test bed.
pub fn router(s: Arc<Server>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(metadata))
        .route("/.well-known/oauth-authorization-server", get(oauth_metadata))
        .route("/token", post(token))
        .route("/register", post(register))
        .route("/register/{id}", axum::routing::delete(deregister).put(update_registration))
        .route("/introspect", post(introspect))
        .route("/revoke", post(revoke))
        .route("/logout", post(logout))
        .route("/jwks", get(jwks))
        .route("/resource/mcp", post(resource).get(resource))
        .route("/resource/received", get(resource_received))
        .route("/.well-known/oauth-protected-resource/resource/mcp", get(resource_metadata))
        .route("/authorize", get(authorize))
        .route("/admin/clients/{client_id}/{action}", post(admin))
        .route("/foreign/.well-known/openid-configuration", get(foreign_metadata))
        .route("/foreign/token", post(foreign_token))
        .route("/foreign/jwks", get(foreign_jwks))
        .with_state(s)
}

/// RFC 8414 §3 metadata: the same document as OpenID discovery's, unless
/// the variant serves OpenID discovery only.
async fn oauth_metadata(state: State<Arc<Server>>) -> Response {
    if state.is(Breakage::AuthorizationServerMetadataOpenidOnly) {
        return (StatusCode::NOT_FOUND, "no such document").into_response();
    }
    metadata(state).await
}

/// Discovery (RFC 8414 §2, OpenID Connect Discovery 1.0 §3).
async fn metadata(State(s): State<Arc<Server>>) -> Response {
    if s.is(Breakage::MetadataDocumentMissing) {
        return (StatusCode::NOT_FOUND, "no such document").into_response();
    }
    if s.is(Breakage::MetadataDocumentHtml) {
        // A maintenance page, as a proxy in front of a server may answer.
        let page = "<html><body><h1>Down for maintenance</h1></body></html>";
        return ([(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    let i = &s.issuer;
    let mut doc = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "introspection_endpoint": format!("{i}/introspect"),
        "revocation_endpoint": format!("{i}/revoke"),
        "registration_endpoint": format!("{i}/register"),
        "end_session_endpoint": format!("{i}/logout"),
        "jwks_uri": format!("{i}/jwks"),
        "grant_types_supported": [GrantType::Password, GrantType::ClientCredentials, GrantType::TokenExchange],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [s.keys.alg().as_str()],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": fixture::PERMISSIONS.iter().chain(&[fixture::MAY_ACT_AGENT, fixture::MAY_ACT_SUB_AGENT]).collect::<Vec<_>>(),
    });
    if s.is(Breakage::MetadataIssuerTrailingSlash) {
        doc["issuer"] = json!(format!("{i}/"));
    }
    if s.is(Breakage::MetadataWithoutJwksUri) {
        doc.as_object_mut().map(|m| m.remove("jwks_uri"));
    }
    if s.is(Breakage::GrantNotAdvertised) {
        doc["grant_types_supported"] = json!([GrantType::Password, GrantType::ClientCredentials]);
    }
    Json(doc).into_response()
}

/// The test bed's protected resource, in the contract's place of the MCP
/// server: it accepts this issuer's tokens for the audience `mcp-server`
/// (signature, `iss`, `exp`, `aud`; RFC 8707 §2, MCP authorization) and
/// answers an MCP `initialize` (or a GET) with a small JSON-RPC result.
async fn resource(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let metadata = format!("{}/.well-known/oauth-protected-resource/resource/mcp", s.issuer);
    let challenge = |error: Option<&str>| {
        let mut params: Vec<String> = Vec::new();
        if let Some(e) = error {
            params.push(format!("error=\"{e}\""));
        }
        if !s.is(Breakage::ResourceChallengeBare) {
            params.push(format!("resource_metadata=\"{metadata}\""));
        }
        if params.is_empty() {
            "Bearer".to_owned()
        } else {
            format!("Bearer {}", params.join(", "))
        }
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(token) = token else {
        if s.is(Breakage::ResourceRefusesWithoutChallenge) {
            return (StatusCode::FORBIDDEN, Json(json!({"error": "forbidden"}))).into_response();
        }
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge(None))]).into_response();
    };
    let refuse = |why: &str| {
        let status =
            if s.is(Breakage::ResourceRefusesTokens403) { StatusCode::FORBIDDEN } else { StatusCode::UNAUTHORIZED };
        (
            status,
            [(header::WWW_AUTHENTICATE, challenge(Some("invalid_token")))],
            Json(json!({"error": "invalid_token", "error_description": why})),
        )
            .into_response()
    };
    // The near miss of expiry: a leeway far past any clock skew.
    let clock = if s.is(Breakage::ResourceExpiryLeeway) { now() - 300 } else { now() };
    let claims = match s.keys.validate(token, &s.issuer, clock, None) {
        Ok(c) => c,
        Err(e) => return refuse(&format!("{e:?}")),
    };
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == "mcp-server",
        Value::Array(list) => list.iter().any(|a| a == "mcp-server"),
        // The near miss: `aud` checked only when the token carries one.
        Value::Null => s.is(Breakage::ResourceAcceptsNoAudience),
        _ => false,
    };
    if !aud_ok && !s.is(Breakage::ResourceAcceptsAnyAudience) {
        return refuse("the token was not issued for this resource (aud)");
    }
    // The resource asks its authorization server (in-process introspection,
    // RFC 7662 §2.2), so a revoked token is refused at once.
    let jti = claims["jti"].as_str().unwrap_or_default();
    if !s.is(Breakage::ResourceIgnoresRevocation) && !s.store().is_active(jti, clock, Purpose::Introspect, s.broken) {
        return refuse("the token is not active (revoked, or its session ended)");
    }
    let message: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match message["method"].as_str() {
        Some("notifications/initialized") => return StatusCode::ACCEPTED.into_response(),
        Some("tools/call") if message["params"]["name"] == "write_record" => {
            return write_record(&s, token, &claims, &message, &metadata)
        }
        Some("tools/call") => {
            return Json(call_upstream(&s, token, &message, Some("records:read"), "records:read")).into_response()
        }
        _ => {}
    }
    Json(json!({
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "serverInfo": {"name": "fourleg-testbed", "version": env!("CARGO_PKG_VERSION")}
        }
    }))
    .into_response()
}

/// The protected resource's metadata (RFC 9728 §2, §3).
async fn resource_metadata(State(s): State<Arc<Server>>) -> Response {
    let mut resource = format!("{}/resource/mcp", s.issuer);
    if s.is(Breakage::ResourceMetadataTrailingSlash) {
        resource.push('/');
    }
    let servers = if s.is(Breakage::ResourceMetadataWithoutAuthorizationServers) {
        json!([])
    } else if s.is(Breakage::ResourceMetadataAuthorizationServerSlash) {
        json!([format!("{}/", s.issuer)])
    } else {
        json!([s.issuer])
    };
    Json(json!({
        "resource": resource,
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "scopes_supported": fixture::PERMISSIONS,
    }))
    .into_response()
}

async fn jwks(State(s): State<Arc<Server>>) -> Response {
    let mut set = s.keys.jwks().clone();
    if let Some(keys) = set["keys"].as_array_mut() {
        if s.is(Breakage::JwksLeaksPrivateKey) {
            // A private member beside the public ones (as a key exported whole).
            for k in keys.iter_mut() {
                k["d"] = json!(random_id(43));
            }
        }
        if s.is(Breakage::JwksPublishesSymmetricKey) {
            keys.push(json!({"kty": "oct", "kid": "hs-shared", "alg": "HS256", "k": random_id(43)}));
        }
    }
    Json(set).into_response()
}

/// The untrusted second issuer's discovery: a real issuer with keys of its
/// own, which the conformant server never trusts.
async fn foreign_metadata(State(s): State<Arc<Server>>) -> Response {
    let i = keys::foreign_issuer(&s.issuer);
    Json(json!({
        "issuer": i,
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "grant_types_supported": [GrantType::Password],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
    .into_response()
}

async fn foreign_jwks() -> Response {
    Json(keys::foreign().jwks().clone()).into_response()
}

/// The untrusted issuer's password grant: Alice's token there is the genuine
/// login's twin (same `sub`, `aud`, `azp` and scope rules) but for its
/// `iss` and its signing key.
async fn foreign_token(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let refuse = |e: ErrorCode, d: &str| OAuthError::new(e, d).into_response(None);
    if form.get("grant_type").map(GrantType::from) != Some(GrantType::Password) {
        return refuse(E::UnsupportedGrantType, "the untrusted issuer has the password grant only");
    }
    let Some(client) = form.get("client_id").and_then(fixture::client).filter(|c| c.kind == Kind::Login) else {
        return refuse(E::InvalidClient, "unknown login client");
    };
    let Some(user) = form
        .get("username")
        .and_then(fixture::user)
        .filter(|u| s.passwords.get(u.username).map(String::as_str) == form.get("password"))
    else {
        return refuse(E::InvalidGrant, "wrong username or password");
    };
    let granted: Vec<&str> = scope_values(&form)
        .iter()
        .filter_map(|v| fixture::PERMISSIONS.iter().find(|p| **p == v && user.permissions.contains(p)).copied())
        .collect();
    let now = now();
    let claims = json!({
        "iss": keys::foreign_issuer(&s.issuer), "sub": user.sub, "aud": client.targets, "azp": client.client_id,
        "client_id": client.client_id, "preferred_username": user.username,
        "iat": now, "exp": now + client.lifetime_s, "jti": random_id(22), "scope": granted.join(" "),
    });
    token_response(
        json!({"access_token": keys::foreign().sign(&claims), "token_type": "Bearer", "expires_in": client.lifetime_s}),
        None,
    )
}

/// The resource's one tool: it calls the upstream API on the caller's
/// behalf with a token of its own, exchanged as the `mcp-server` client for
/// the `downstream-api` audience (RFC 8693 §2.1), or, broken, with the
/// caller's token itself. The API records what it received.
/// The resource's `write_record`: it needs `records:write` of the caller's
/// token, checked here before anything is called (403 `insufficient_scope`
/// with the scopes needed and the metadata URL, MCP authorization
/// 2025-11-25); then the API is called as for `read_records`.
fn write_record(s: &Server, token: &str, claims: &Value, message: &Value, metadata: &str) -> Response {
    const NEEDS: &str = "records:write";
    let scope = claims["scope"].as_str().unwrap_or_default();
    let holds = if s.is(Breakage::ResourceToolScopeByPrefix) {
        scope.split(' ').any(|v| v.starts_with("records:"))
    } else {
        scope.split(' ').any(|v| v == NEEDS)
    };
    if !holds && !s.is(Breakage::ResourceLeavesToolScopeToApi) {
        let why = format!("write_record needs {NEEDS}, which the token's scope {scope:?} lacks");
        if s.is(Breakage::ResourceToolScopeAsToolError) {
            let id = message.get("id").cloned().unwrap_or(Value::Null);
            return Json(json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": why}], "isError": true}}))
            .into_response();
        }
        let challenge =
            format!("Bearer error=\"insufficient_scope\", scope=\"{scope} {NEEDS}\", resource_metadata=\"{metadata}\"");
        return (
            StatusCode::FORBIDDEN,
            [(header::WWW_AUTHENTICATE, challenge)],
            Json(json!({"error": "insufficient_scope", "error_description": why})),
        )
            .into_response();
    }
    // The API behind the resource: it records what it received, and
    // refuses a token without the scope as a tool error.
    Json(call_upstream(s, token, message, None, NEEDS)).into_response()
}

/// A tool's call of the API behind the resource: the incoming token is
/// exchanged for `downstream-api` (with `scope`, else the subject's), and
/// the API records the claims of what it received, then refuses a token
/// that lacks `needs` (as a tool error).
fn call_upstream(s: &Server, incoming: &str, message: &Value, scope: Option<&str>, needs: &str) -> Value {
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let secret = s.secrets.get("mcp-server").cloned().unwrap_or_default();
    let mut headers = HeaderMap::new();
    let basic = format!("Basic {}", STANDARD.encode(format!("mcp-server:{secret}")));
    if let Ok(v) = HeaderValue::from_str(&basic) {
        headers.insert(header::AUTHORIZATION, v);
    }
    let token_of = |r: Result<Value, OAuthError>| {
        r.map_err(|e| e.description)
            .and_then(|body| body["access_token"].as_str().map(str::to_owned).ok_or_else(|| "no access_token".into()))
    };
    // The MCP server's own token: its actor token (RFC 8693 §2.1).
    let own = || {
        let form = Form(vec![("grant_type".into(), "client_credentials".into()), ("scope".into(), needs.into())]);
        token_of(client_credentials(s, &headers, &form))
    };
    let upstream = if s.is(Breakage::ResourcePassesTokenThrough) {
        Ok(incoming.to_owned())
    } else if s.is(Breakage::ResourceCallsApiAsItself) {
        own()
    } else {
        let mut form = Form(vec![
            ("grant_type".into(), GrantType::TokenExchange.as_str().into()),
            ("subject_token".into(), incoming.to_owned()),
            ("subject_token_type".into(), fourleg_core::oauth::uri::ACCESS_TOKEN.into()),
            ("audience".into(), "downstream-api".into()),
        ]);
        if s.is(Breakage::ResourceDownstreamAudienceWide) {
            form.0.push(("audience".into(), "mcp-server".into()));
        }
        if let Some(scope) = scope {
            form.0.push(("scope".into(), scope.into()));
        }
        // Delegation (RFC 8693 §1.1): the API's token names the MCP server in act.
        let actor = if s.is(Breakage::ResourceImpersonatesDownstream) { Ok(None) } else { own().map(Some) };
        actor.and_then(|actor| {
            if let Some(a) = actor {
                form.0.push(("actor_token".into(), a));
                form.0.push(("actor_token_type".into(), fourleg_core::oauth::uri::ACCESS_TOKEN.into()));
            }
            token_of(exchange::exchange(s, &headers, &form))
        })
    };
    match upstream {
        Ok(token) => {
            let claims = fourleg_core::jwt::decode(&token).map_or(Value::Null, |d| d.claims);
            let granted = claims["scope"].as_str().unwrap_or_default().split(' ').any(|v| v == needs);
            s.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(claims);
            if granted {
                json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "3 records"}], "isError": false}})
            } else {
                json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": format!("the API refused: 403 insufficient_scope ({needs})")}], "isError": true}})
            }
        }
        Err(why) => json!({"jsonrpc": "2.0", "id": id, "result": {
            "content": [{"type": "text", "text": format!("the exchange for the API failed: {why}")}], "isError": true}}),
    }
}

/// What the resource's upstream API received: the claims of each token,
/// newest last.
async fn resource_received(State(s): State<Arc<Server>>) -> Json<Value> {
    let received = s.received.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    Json(json!({ "received": received }))
}

/// A client registered at `/register`.
#[derive(Debug, Clone)]
pub struct Registered {
    pub secret: String,
    /// Its RFC 7592 registration access token.
    pub access_token: String,
    /// The grant types it may use at the token endpoint (RFC 7591 §2), as
    /// its registration returned them.
    pub grant_types: Vec<String>,
}

/// RFC 7591 §3: anonymous registration of a confidential client, answered
/// 201 with its credentials and its RFC 7592 management URI and token. The
/// test bed's policy lets a registered client exchange its own token when
/// it registered the token-exchange grant.
async fn register(State(s): State<Arc<Server>>, body: Bytes) -> Response {
    let Ok(metadata) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_client_metadata"}))).into_response();
    };
    let grant_types = match granted(&s, &metadata, false) {
        Ok(g) => g,
        Err(refusal) => return refusal,
    };
    let client_id = format!("dyn-{}", random_id(16));
    let (secret, rat) = (random_id(32), random_id(32));
    let entry = Registered { secret: secret.clone(), access_token: rat.clone(), grant_types: grant_types.clone() };
    s.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(client_id.clone(), entry);
    let status = if s.is(Breakage::RegistrationAnswers200) { StatusCode::OK } else { StatusCode::CREATED };
    let info = json!({
        "client_id": client_id, "client_secret": secret, "client_secret_expires_at": 0,
        "registration_access_token": rat,
        "registration_client_uri": format!("{}/register/{client_id}", s.issuer),
        "client_name": metadata["client_name"], "grant_types": grant_types,
        "token_endpoint_auth_method": "client_secret_basic",
    });
    (status, Json(info)).into_response()
}

/// The grant types a registration or an update (`update`) asks for, as
/// the test bed's policy registers them, or its refusal (RFC 7591 §3.2.2).
#[expect(clippy::result_large_err, reason = "the refusal is the response itself")]
fn granted(s: &Server, metadata: &Value, update: bool) -> Result<Vec<String>, Response> {
    // RFC 7591 §2: grant_types absent means authorization_code only.
    let mut grant_types: Vec<String> = match metadata["grant_types"].as_array() {
        Some(list) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        None => vec!["authorization_code".to_owned()],
    };
    let asks_exchange = grant_types.iter().any(|g| g == uri::GRANT_TOKEN_EXCHANGE);
    // The near miss: the policy is kept when a client registers, not when
    // it updates its registration.
    let refuses =
        s.is(Breakage::RegistrationRefusesExchange) || (s.is(Breakage::RegistrationPolicyAtCreateOnly) && !update);
    if asks_exchange && refuses {
        let e = json!({"error": "invalid_client_metadata", "error_description": "the token-exchange grant is not offered to registered clients"});
        return Err((StatusCode::BAD_REQUEST, Json(e)).into_response());
    }
    if s.is(Breakage::RegisteredClientCannotExchange) {
        // RFC 7591 §3.2.1 lets the server replace what was asked: the grant
        // is dropped, and the response says so.
        grant_types.retain(|g| g != uri::GRANT_TOKEN_EXCHANGE);
    }
    Ok(grant_types)
}

/// RFC 7592 §2.2: an update with the registration access token replaces
/// the client's metadata, answered 200 with its client information and a
/// new registration access token (§3).
async fn update_registration(
    State(s): State<Arc<Server>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let presented = registration_token(&headers);
    let Some(current) = s.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id).cloned() else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token"}))).into_response();
    };
    if Some(current.access_token.as_str()) != presented {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token"}))).into_response();
    }
    let Ok(metadata) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_client_metadata"}))).into_response();
    };
    if metadata["client_id"].as_str() != Some(id.as_str()) {
        let e = json!({"error": "invalid_client_metadata", "error_description": "client_id must be the client's own (RFC 7592 §2.2)"});
        return (StatusCode::BAD_REQUEST, Json(e)).into_response();
    }
    let grant_types = match granted(&s, &metadata, true) {
        Ok(g) => g,
        Err(refusal) => return refusal,
    };
    let rat = random_id(32);
    let entry =
        Registered { secret: current.secret.clone(), access_token: rat.clone(), grant_types: grant_types.clone() };
    s.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone(), entry);
    let info = json!({
        "client_id": id, "client_secret": current.secret, "client_secret_expires_at": 0,
        "registration_access_token": rat,
        "registration_client_uri": format!("{}/register/{id}", s.issuer),
        "client_name": metadata["client_name"], "grant_types": grant_types,
        "token_endpoint_auth_method": "client_secret_basic",
    });
    (StatusCode::OK, Json(info)).into_response()
}

/// The registration access token a management request presents (RFC 7592 §2).
fn registration_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// RFC 7592 §2.3: deletion with the registration access token, 204.
async fn deregister(State(s): State<Arc<Server>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let presented = registration_token(&headers);
    let mut registered = s.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match registered.get(&id) {
        Some(r) if Some(r.access_token.as_str()) == presented => {}
        _ => return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token"}))).into_response(),
    }
    // The near miss: the registration is said to be gone, and its
    // credentials still work.
    if !s.is(Breakage::DeletedClientStillAuthenticates) {
        registered.remove(&id);
    }
    if s.is(Breakage::DeletionAnswers200) {
        return (StatusCode::OK, Json(json!({"deleted": id}))).into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Client credentials of a client registered at `/register`: its own
/// token, no audience, no scope. None when the caller is not one.
fn registered_client_credentials(s: &Server, headers: &HeaderMap, form: &Form) -> Option<Result<Value, OAuthError>> {
    let (id, known) = registered_caller(s, headers, form)?;
    if let Err(e) = known {
        return Some(Err(e));
    }
    let now = now();
    let jti = random_id(22);
    let claims = json!({
        "iss": s.issuer, "sub": id, "azp": id, "client_id": id, "iat": now, "exp": now + fixture::LIFETIME_S, "jti": jti,
    });
    Some(Ok(json!({"access_token": s.keys.sign(&claims), "token_type": "Bearer", "expires_in": fixture::LIFETIME_S})))
}

/// The registered client a request authenticates as (`client_secret_basic`
/// or in the form), if it names one: `Err` when its secret is wrong.
fn registered_caller(s: &Server, headers: &HeaderMap, form: &Form) -> Option<(String, Result<Registered, OAuthError>)> {
    let (id, secret) = credentials(headers, form)?;
    let registered = s.registered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let known = registered.get(&id)?.clone();
    if secret.as_deref() != Some(known.secret.as_str()) {
        return Some((id, Err(OAuthError::new(E::InvalidClient, "client authentication failed"))));
    }
    Some((id, Ok(known)))
}

/// A token exchange by a client registered at `/register` (RFC 8693 §2.1),
/// if the caller is one: it may exchange its own token when its
/// registration lists the token-exchange grant (RFC 7591 §2). None when
/// the caller is not a registered client.
fn registered_exchange(s: &Server, headers: &HeaderMap, form: &Form) -> Option<Result<Value, OAuthError>> {
    let (id, known) = registered_caller(s, headers, form)?;
    let known = match known {
        Ok(k) => k,
        Err(e) => return Some(Err(e)),
    };
    Some((|| {
        let may = known.grant_types.iter().any(|g| g == uri::GRANT_TOKEN_EXCHANGE);
        if !may && !s.is(Breakage::RegisteredGrantIgnored) {
            return Err(OAuthError::new(
                E::UnauthorizedClient,
                "this client did not register the token-exchange grant",
            ));
        }
        let subject =
            form.get("subject_token").ok_or_else(|| OAuthError::new(E::InvalidRequest, "subject_token is required"))?;
        if form.get("subject_token_type") != Some(uri::ACCESS_TOKEN) {
            return Err(OAuthError::new(E::InvalidRequest, "subject_token_type must be an access token"));
        }
        let now = now();
        let claims = s
            .keys
            .validate(subject, &s.issuer, now, s.broken)
            .map_err(|e| OAuthError::new(E::InvalidRequest, format!("subject_token: {e}")))?;
        // No token names a client registered seconds before: a registered
        // client exchanges only a token issued to it, for itself.
        if claims["azp"].as_str() != Some(id.as_str()) || claims["sub"].as_str() != Some(id.as_str()) {
            return Err(OAuthError::new(E::InvalidRequest, "a registered client exchanges only its own token"));
        }
        let exp = claims["exp"].as_i64().unwrap_or(now).min(now + fixture::LIFETIME_S);
        let issued = json!({
            "iss": s.issuer, "sub": id, "azp": id, "client_id": id, "iat": now, "exp": exp, "jti": random_id(22),
        });
        Ok(json!({
            "access_token": s.keys.sign(&issued), "token_type": "Bearer", "expires_in": exp - now,
            "issued_token_type": uri::ACCESS_TOKEN,
        }))
    })())
}

/// The test bed logs users in with the password grant only.
async fn authorize(State(s): State<Arc<Server>>) -> Response {
    OAuthError::new(E::UnsupportedResponseType, "the test bed logs users in with the password grant (RFC 6749 §4.3)")
        .into_response(s.broken)
}

/// The token endpoint (RFC 6749 §3.2): password, client credentials, token exchange.
async fn token(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let res = match form.get("grant_type").map(GrantType::from) {
        Some(GrantType::Password) => password(&s, &headers, &form),
        Some(GrantType::ClientCredentials) => client_credentials(&s, &headers, &form),
        Some(GrantType::TokenExchange) => {
            registered_exchange(&s, &headers, &form).unwrap_or_else(|| exchange::exchange(&s, &headers, &form))
        }
        Some(GrantType::RefreshToken) => refresh(&s, &headers, &form),
        Some(_) => Err(OAuthError::new(E::UnsupportedGrantType, "unsupported grant_type")),
        None => Err(OAuthError::new(E::InvalidRequest, "grant_type is required")),
    };
    match res {
        Ok(body) => token_response(body, s.broken),
        Err(e) => e.into_response(s.broken),
    }
}

/// Requested scope values (RFC 6749 §3.3), de-duplicated in request order.
#[must_use]
pub fn scope_values(form: &Form) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in form.get("scope").unwrap_or_default().split_whitespace() {
        if !out.iter().any(|o| o == v) {
            out.push(v.to_owned());
        }
    }
    out
}

/// The `scope` claim: a space-separated string (RFC 8693 §4.2), or an array in the broken variant.
#[must_use]
pub fn scope_claim(s: &Server, granted: &[String]) -> Value {
    if s.is(Breakage::ScopeClaimArray) {
        json!(granted)
    } else {
        Value::String(granted.join(" "))
    }
}

/// Resource owner password credentials (RFC 6749 §4.3): the test bed's user login.
fn password(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    let caller = authenticate(s, headers, form, false)?;
    let client = caller.client();
    if client.kind != Kind::Login {
        return Err(OAuthError::new(E::UnauthorizedClient, "this client does not log users in"));
    }
    let user = form
        .get("username")
        .and_then(fixture::user)
        .filter(|u| s.passwords.get(u.username).map(String::as_str) == form.get("password"))
        .ok_or_else(|| OAuthError::new(E::InvalidGrant, "wrong username or password"))?;
    let proof_key = dpop::check(s, headers, &format!("{}/token", s.issuer), dpop::Grant::Login)?;
    let now = now();
    let mut granted: Vec<String> = Vec::new();
    let mut aud: Vec<&str> = client.targets.to_vec();
    for v in scope_values(form) {
        // `aud-<client>` (contract §4, attack isolation): that client is
        // added to the login token's audience, as Keycloak's audience scopes do.
        if let Some(extra) = v.strip_prefix("aud-").and_then(fixture::client) {
            if !aud.contains(&extra.client_id) {
                aud.push(extra.client_id);
            }
            continue;
        }
        let permitted = fixture::PERMISSIONS.contains(&v.as_str()) && user.permissions.contains(&v.as_str());
        let may_act = v == fixture::MAY_ACT_AGENT;
        if (permitted || may_act) && client.baseline.contains(&v.as_str()) {
            granted.push(v);
        } else if v != "openid" && !fixture::PERMISSIONS.contains(&v.as_str()) {
            return Err(OAuthError::new(E::InvalidScope, format!("unknown scope {v}")));
        }
    }
    let sid = random_id(16);
    let jti = random_id(22);
    let exp = now + client.lifetime_s;
    let mut claims = json!({
        "iss": s.issuer, "sub": user.sub, "aud": aud, "azp": client.client_id,
        "client_id": client.client_id, "preferred_username": user.username,
        "iat": now, "exp": exp, "jti": jti, "sid": sid, "scope": scope_claim(s, &granted),
    });
    if aud.is_empty() {
        // A login client with no audience (contract §4): no `aud` claim at all.
        claims.as_object_mut().map(|o| o.remove("aud"));
    }
    if granted.iter().any(|g| g == fixture::MAY_ACT_AGENT) {
        let agent = fixture::client("agent").and_then(|c| c.sub).unwrap_or_default();
        claims["may_act"] = json!({"sub": agent, "client_id": "agent"});
    }
    let token_type = match claims.as_object_mut() {
        Some(m) => dpop::bind(s, m, proof_key.as_deref(), None, dpop::Grant::Login),
        None => "Bearer",
    };
    let refresh = random_id(40);
    {
        let mut st = s.store();
        st.record(&jti, None, Some(sid.clone()), client.client_id, exp);
        st.add_refresh(&refresh, &sid, client.client_id);
    }
    let mut body = json!({
        "access_token": s.keys.sign(&claims), "token_type": token_type, "expires_in": client.lifetime_s,
        "refresh_token": refresh, "scope": granted.join(" "),
    });
    if s.is(Breakage::NoRefreshToken) {
        body.as_object_mut().map(|o| o.remove("refresh_token"));
    }
    Ok(body)
}

/// Refresh (RFC 6749 §6) of a refresh token issued by an exchange: a new
/// access token with the same claims, while the subject's session lasts.
fn refresh(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    let caller = authenticate(s, headers, form, false)?;
    let client = caller.client();
    let token =
        form.get("refresh_token").ok_or_else(|| OAuthError::new(E::InvalidRequest, "refresh_token is required"))?;
    let found = s.store().refresh(token).cloned().filter(|r| r.client_id == client.client_id);
    let Some(Refresh { sid, exchanged: Some((claims, parent)), .. }) = found else {
        return Err(OAuthError::new(E::InvalidGrant, "not a refresh token of this client issued by an exchange"));
    };
    let survives = s.is(Breakage::ExchangedRefreshSurvivesRevocation);
    if s.store().session_ended(&sid, s.broken) && !survives {
        return Err(OAuthError::new(E::InvalidGrant, "the session of this refresh token has ended"));
    }
    let now = now();
    let jti = random_id(22);
    let exp = now + client.lifetime_s;
    let mut claims = claims;
    claims["jti"] = json!(jti);
    claims["iat"] = json!(now);
    claims["exp"] = json!(exp);
    s.store().record(&jti, parent, Some(sid), client.client_id, exp);
    Ok(json!({
        "access_token": s.keys.sign(&claims), "token_type": "Bearer", "expires_in": client.lifetime_s,
        "refresh_token": token, "scope": claims["scope"].clone(),
    }))
}

/// Client credentials (RFC 6749 §4.4): a client's own token, its actor token.
fn client_credentials(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    if let Some(token) = registered_client_credentials(s, headers, form) {
        return token;
    }
    let caller = authenticate(s, headers, form, false)?;
    let Caller::Confidential(client) = caller else {
        return Err(OAuthError::new(E::UnauthorizedClient, "public clients have no client credentials"));
    };
    if s.store().is_disabled(client.client_id) {
        return Err(OAuthError::new(E::InvalidClient, "client disabled"));
    }
    let Some(sub) = client.sub else {
        return Err(OAuthError::new(E::UnauthorizedClient, "this client has no client credentials grant"));
    };
    let now = now();
    let granted: Vec<String> = scope_values(form)
        .into_iter()
        .filter(|v| client.baseline.contains(&v.as_str()) && fixture::PERMISSIONS.contains(&v.as_str()))
        .collect();
    let jti = random_id(22);
    let exp = now + client.lifetime_s;
    let claims = json!({
        "iss": s.issuer, "sub": sub, "aud": client.targets, "azp": client.client_id, "client_id": client.client_id,
        "iat": now, "exp": exp, "jti": jti, "scope": scope_claim(s, &granted),
    });
    s.store().record(&jti, None, None, client.client_id, exp);
    Ok(json!({
        "access_token": s.keys.sign(&claims), "token_type": "Bearer", "expires_in": client.lifetime_s,
        "scope": granted.join(" "),
    }))
}

/// Token introspection (RFC 7662 §2): authenticated callers only; an
/// inactive token gets `{"active": false}` and nothing more.
async fn introspect(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let mut caller = None;
    if !s.is(Breakage::IntrospectionUnauthenticated) {
        match authenticate(&s, &headers, &form, false) {
            Ok(Caller::Confidential(c)) => caller = Some(c.client_id),
            Ok(Caller::Public(_)) => {
                return OAuthError::new(E::InvalidClient, "introspection is for confidential clients")
                    .into_response(s.broken)
            }
            Err(e) => return e.into_response(s.broken),
        }
    }
    let Some(token) = form.get("token") else {
        return OAuthError::new(E::InvalidRequest, "token is required").into_response(s.broken);
    };
    let now = now();
    let refresh = s.store().refresh(token).cloned();
    if let Some(r) = refresh {
        let active = !s.store().session_ended(&r.sid, s.broken);
        return Json(if active {
            json!({"active": true, "client_id": r.client_id, "token_type": "refresh_token"})
        } else {
            json!({"active": false})
        })
        .into_response();
    }
    // Signature and issuer, not expiry: an expired token is simply inactive.
    let claims = s.keys.validate(token, &s.issuer, i64::MIN, None).ok();
    let active = claims
        .as_ref()
        .and_then(|c| c["jti"].as_str())
        .is_some_and(|jti| s.store().is_active(jti, now, Purpose::Introspect, s.broken));
    // Tokens of a public client: no caller may introspect them (RFC 7662 §2.2).
    let active = active
        && !(s.is(Breakage::PublicClientTokensNotIntrospectable)
            && claims
                .as_ref()
                .and_then(|c| c["client_id"].as_str())
                .and_then(fixture::client)
                .is_some_and(Client::is_public));
    // The server-side-audience variant answers active only to the token's audience.
    let active = active
        && (!s.is(Breakage::AudienceOnlyServerSide)
            || claims.as_ref().is_some_and(|c| {
                let recorded = c["jti"].as_str().and_then(|j| s.store().audience(j).map(<[String]>::to_vec));
                let aud = recorded.unwrap_or_else(|| crate::exchange::aud_list(c));
                caller.is_some_and(|me| aud.iter().any(|a| a == me))
            }));
    let doc = match (active, claims) {
        (true, Some(mut c)) => {
            c["active"] = Value::Bool(true);
            c["token_type"] = Value::String("Bearer".into());
            c
        }
        (false, Some(mut c)) if s.is(Breakage::InactiveIntrospectionLeaksClaims) => {
            c["active"] = Value::Bool(false);
            c
        }
        _ => json!({"active": false}),
    };
    Json(doc).into_response()
}

/// Token revocation (RFC 7009 §2): the client the token was issued to
/// revokes it; unknown tokens get 200; a refresh token ends its session.
async fn revoke(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let caller = match authenticate(&s, &headers, &form, false) {
        Ok(Caller::Public(_)) if s.is(Breakage::PublicClientRevocationRefused) => {
            return OAuthError::new(E::InvalidClient, "client authentication required").into_response(s.broken)
        }
        Ok(c) => c.client(),
        Err(e) => return e.into_response(s.broken),
    };
    let Some(token) = form.get("token") else {
        return OAuthError::new(E::InvalidRequest, "token is required").into_response(s.broken);
    };
    let not_yours =
        || OAuthError::new(E::UnauthorizedClient, "the token was not issued to this client").into_response(s.broken);
    let any_client = s.is(Breakage::RevokeByAnyClient);
    let refresh = s.store().refresh(token).cloned();
    if let Some(r) = refresh {
        if r.client_id != caller.client_id && !any_client {
            return not_yours();
        }
        s.store().end_session(&r.sid);
        return revoked(&s);
    }
    let jti = s.keys.validate(token, &s.issuer, i64::MIN, None).ok().and_then(|c| c["jti"].as_str().map(str::to_owned));
    let mut st = s.store();
    match jti.as_deref().and_then(|j| st.get(j).map(|r| (j, r.client_id.clone()))) {
        Some(_) if s.is(Breakage::AccessTokenRevocationUnsupported) => {
            drop(st);
            OAuthError::new(E::UnsupportedTokenType, "access tokens cannot be revoked here").into_response(s.broken)
        }
        Some((jti, owner)) => {
            if owner != caller.client_id && !any_client {
                drop(st);
                return not_yours();
            }
            st.revoke(jti, s.broken);
            drop(st);
            revoked(&s)
        }
        None if s.is(Breakage::RevokeUnknownTokenError) => {
            drop(st);
            OAuthError::new(E::InvalidRequest, "unknown token").into_response(s.broken)
        }
        None => StatusCode::OK.into_response(),
    }
}

/// The answer to a successful revocation: 200 (RFC 7009 §2.2).
fn revoked(s: &Server) -> Response {
    if s.is(Breakage::RevokeAnswersNoContent) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

/// Back-channel logout: POST `refresh_token` (as Keycloak's
/// `end_session_endpoint` accepts it) ends the session.
async fn logout(State(s): State<Arc<Server>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = Form::parse(&body);
    let caller = match authenticate(&s, &headers, &form, false) {
        Ok(c) => c.client(),
        Err(e) => return e.into_response(s.broken),
    };
    let r = form.get("refresh_token").and_then(|t| s.store().refresh(t).cloned());
    match r {
        Some(r) if r.client_id == caller.client_id => {
            s.store().end_session(&r.sid);
            StatusCode::NO_CONTENT.into_response()
        }
        _ => OAuthError::new(E::InvalidGrant, "unknown refresh token").into_response(s.broken),
    }
}

/// `POST /admin/clients/{client_id}/disable|enable`: the profile's hooks.
async fn admin(State(s): State<Arc<Server>>, Path((client_id, action)): Path<(String, String)>) -> Response {
    if fixture::client(&client_id).is_none() {
        return (StatusCode::NOT_FOUND, "no such client").into_response();
    }
    match action.as_str() {
        "disable" => s.store().disable(&client_id, s.broken),
        "enable" if s.is(Breakage::EnableClientFails) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "enabling is broken").into_response()
        }
        "enable" => s.store().enable(&client_id),
        _ => return (StatusCode::NOT_FOUND, "expected disable or enable").into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}
