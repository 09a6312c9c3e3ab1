//! How a resource of the demo chain (the MCP server, the records API)
//! decides whether a bearer token is for it.
//!
//! The token comes from the `Authorization` header only (RFC 6750 §2.1).
//! It must be a JWS signed by a key of a trusted issuer, the issuer being
//! picked by the token's `iss` and its keys fetched from that issuer's JWKS
//! (RFC 7517 §5) and verified by the one JOSE core
//! ([`fourleg_core::jose`]); it must not have expired (RFC 7519 §4.1.4) and
//! its `aud` must name this resource (RFC 7519 §4.1.3, RFC 9068 §4). The
//! audience check is the lesson of the labs: a token the user's agent got
//! for the MCP server is refused by the API, so the MCP server has to
//! exchange it (RFC 8693) instead of passing it through.
//!
//! A refused token is still shown to the learner: [`presented`] decodes the
//! claims of whatever was presented, without trusting them, for the journal.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use fourleg_core::jose::{Jwks, VerifyError};
use fourleg_core::Secret;
use serde_json::Value;

use crate::{ClientCreds, TokenView, Trust};

/// Clock skew tolerated on `exp` and `nbf` (RFC 7519 §4.1.4: "some small
/// leeway, usually no more than a few minutes").
pub const LEEWAY_SECS: i64 = 30;

/// An issuer's JWKS is fetched again for an unknown `kid` (a rotated key) at
/// most this often, so a stream of tokens with made-up `kid`s cannot turn
/// the resource into a flood of requests to the issuer.
pub const REFETCH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a resource refuses a request's bearer token. Each is a `401` with
/// `error="invalid_token"` (RFC 6750 §3.1), except [`Refusal::Missing`] and
/// [`Refusal::OtherScheme`] (no error code: the client sent no bearer
/// credentials at all) and [`Refusal::Unverifiable`] (the resource could not
/// check the token: a `503`, not the client's fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no token: the request has no Authorization header (RFC 6750 §2.1 wants `Authorization: Bearer <token>`)")]
    Missing,
    #[error("no bearer token: the Authorization header uses the {0} scheme, not Bearer (RFC 6750 §2.1)")]
    OtherScheme(String),
    #[error("the bearer token is not a usable JWT: {0}")]
    Malformed(String),
    #[error("the token's issuer {0:?} is not one this resource trusts")]
    UntrustedIssuer(String),
    #[error("the token's signature does not verify against its issuer's keys: {0}")]
    Signature(String),
    #[error("the token has expired (exp {exp}, now {now}, leeway {LEEWAY_SECS} s)")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid yet (nbf {nbf}, now {now}, leeway {LEEWAY_SECS} s)")]
    NotYetValid { nbf: i64, now: i64 },
    #[error(
        "the token is for {} but this resource is {expected:?}: a token must name its audience (RFC 9068 §4)",
        audiences(aud)
    )]
    WrongAudience { aud: Vec<String>, expected: String },
    #[error("the issuer's keys could not be read from {jwks_uri}: {reason}")]
    Unverifiable { jwks_uri: String, reason: String },
    /// RFC 7662 §2.2: the issuer says the token is not active (revoked, or
    /// its chain or session ended).
    #[error("the issuer's introspection says the token is not active (revoked, or its session ended)")]
    Inactive,
    #[error("the issuer's introspection endpoint {endpoint} could not be asked: {reason}")]
    Uninspectable { endpoint: String, reason: String },
}

fn audiences(aud: &[String]) -> String {
    if aud.is_empty() {
        "no audience (no aud claim)".to_owned()
    } else {
        format!("audience {}", aud.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", "))
    }
}

impl Refusal {
    /// Why, in words a learner reads (the journal's `reason`, the
    /// `error_description`).
    #[must_use]
    pub fn reason(&self) -> String {
        self.to_string()
    }

    /// The RFC 6750 §3.1 error code: none when the request carried no bearer
    /// credentials (§3.1: the server "SHOULD NOT include an error code or
    /// other error information"), `invalid_token` otherwise.
    #[must_use]
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Self::Missing | Self::OtherScheme(_) | Self::Unverifiable { .. } | Self::Uninspectable { .. } => None,
            _ => Some("invalid_token"),
        }
    }

    /// The HTTP status to answer: 401 (RFC 6750 §3.1), or 503 when the
    /// resource could not fetch the keys to check the token.
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::Unverifiable { .. } | Self::Uninspectable { .. } => 503,
            _ => 401,
        }
    }

    /// The `error` and `error_description` auth-params of the challenge
    /// (RFC 6750 §3), empty when [`Refusal::error_code`] is none.
    #[must_use]
    pub fn challenge_params(&self) -> Vec<(&'static str, String)> {
        match self.error_code() {
            Some(code) => vec![("error", code.to_owned()), ("error_description", self.reason())],
            None => Vec::new(),
        }
    }
}

/// A `WWW-Authenticate` value with the `Bearer` scheme and `params` as
/// quoted strings (RFC 6750 §3). Characters RFC 6750 §3 does not allow in
/// these values (`"`, `\`, anything outside printable ASCII) become `'` or
/// `?`.
#[must_use]
pub fn bearer_challenge<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let quoted = |v: &str| -> String {
        v.chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                ' '..='~' => c,
                _ => '?',
            })
            .collect()
    };
    let params: Vec<String> = params.into_iter().map(|(k, v)| format!("{k}=\"{}\"", quoted(v))).collect();
    if params.is_empty() {
        "Bearer".to_owned()
    } else {
        format!("Bearer {}", params.join(", "))
    }
}

/// The bearer token of `headers` (RFC 6750 §2.1: `Authorization: Bearer
/// <token>`, the scheme case-insensitive per RFC 9110 §11.1).
pub fn bearer(headers: &HeaderMap) -> Result<&str, Refusal> {
    let value = headers.get(header::AUTHORIZATION).ok_or(Refusal::Missing)?;
    let value = value.to_str().map_err(|_| Refusal::Malformed("the Authorization header is not ASCII".into()))?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::OtherScheme(scheme.to_owned()));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(Refusal::Malformed("the Authorization header has the Bearer scheme but no token".into()));
    }
    Ok(token)
}

/// The claims of the bearer token `headers` carry, decoded without any
/// check: what the journal shows of a refused token (its `aud`, its `iss`).
#[must_use]
pub fn presented(headers: &HeaderMap) -> Option<TokenView> {
    bearer(headers).ok().and_then(TokenView::of)
}

/// Seconds since the Unix epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An issuer's keys as last fetched.
#[derive(Debug)]
struct CachedKeys {
    jwks: Arc<Jwks>,
    fetched: Instant,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    trust: Vec<Trust>,
    audience: String,
    /// This resource's own credentials, for introspection.
    credentials: Option<ClientCreds>,
    /// By issuer.
    keys: Mutex<HashMap<String, CachedKeys>>,
}

/// Checks the bearer tokens presented to one resource (cheap to clone: the
/// JWKS cache is shared).
#[derive(Debug, Clone)]
pub struct Validator {
    inner: Arc<Inner>,
}

impl Validator {
    /// A validator accepting tokens of the `trust`ed issuers whose `aud`
    /// names `audience`.
    #[must_use]
    pub fn new(http: reqwest::Client, trust: Vec<Trust>, audience: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                http,
                trust,
                audience: audience.into(),
                credentials: None,
                keys: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The same validator, introspecting with this resource's own client
    /// credentials (RFC 7662 §2.1) at the issuers that have an endpoint.
    #[must_use]
    pub fn with_credentials(self, creds: ClientCreds) -> Self {
        Self {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                trust: self.inner.trust.clone(),
                audience: self.inner.audience.clone(),
                credentials: Some(creds),
                keys: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// RFC 7662 §2.1: asks the issuer whether `token` is active, as this
    /// resource.
    async fn introspect(&self, endpoint: &str, token: &str) -> Result<(), Refusal> {
        let Some(creds) = &self.inner.credentials else { return Ok(()) };
        let fail = |reason: String| Refusal::Uninspectable { endpoint: endpoint.to_owned(), reason };
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let resp = self
            .inner
            .http
            .post(endpoint)
            .basic_auth(encode(&creds.client_id), Some(encode(creds.secret.expose())))
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| fail(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP {}", resp.status().as_u16())));
        }
        let body: Value = resp.json().await.map_err(|e| fail(e.without_url().to_string()))?;
        match body.get("active").and_then(Value::as_bool) {
            Some(true) => Ok(()),
            Some(false) => Err(Refusal::Inactive),
            None => Err(fail("the answer has no boolean `active` (RFC 7662 §2.2)".into())),
        }
    }

    /// The audience this validator accepts.
    #[must_use]
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// The bearer token of `headers` (RFC 6750 §2.1), verified: signed by a
    /// key in the JWKS of the trusted issuer its `iss` names (RFC 7515 §5.2),
    /// `exp` not passed and `nbf` reached (RFC 7519 §4.1.4, §4.1.5, with
    /// [`LEEWAY_SECS`]), `aud` containing this resource's audience
    /// (RFC 7519 §4.1.3). Returns the token and its claims.
    pub async fn validate(&self, headers: &HeaderMap) -> Result<(Secret, TokenView), Refusal> {
        let token = bearer(headers)?;
        let decoded = fourleg_core::jwt::decode(token).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let iss =
            decoded.claims.get("iss").and_then(Value::as_str).ok_or_else(|| {
                Refusal::Malformed("the token has no iss claim, so no issuer to check it against".into())
            })?;
        let trust = self
            .inner
            .trust
            .iter()
            .find(|t| t.issuer == iss)
            .ok_or_else(|| Refusal::UntrustedIssuer(iss.to_owned()))?;

        let mut jwks = self.keys(trust, false).await?;
        let verified = match jwks.verify(token) {
            // A kid the cached JWKS does not know: the issuer may have
            // rotated its keys since (RFC 7517 §5 consumers refetch).
            Err(VerifyError::UnknownKid(_)) => {
                jwks = self.keys(trust, true).await?;
                jwks.verify(token)
            }
            other => other,
        }
        .map_err(|e| Refusal::Signature(e.to_string()))?;

        let view = TokenView::from_claims(&verified.claims);
        let now = now();
        match view.exp {
            None => return Err(Refusal::Malformed("the token has no exp claim (RFC 9068 §2.2 requires one)".into())),
            Some(exp) if now > exp.saturating_add(LEEWAY_SECS) => return Err(Refusal::Expired { exp, now }),
            Some(_) => {}
        }
        if let Some(nbf) = verified.claims.get("nbf").and_then(Value::as_i64) {
            if now.saturating_add(LEEWAY_SECS) < nbf {
                return Err(Refusal::NotYetValid { nbf, now });
            }
        }
        if !view.aud.iter().any(|a| *a == self.inner.audience) {
            return Err(Refusal::WrongAudience { aud: view.aud, expected: self.inner.audience.clone() });
        }
        if let Some(endpoint) = &trust.introspection_endpoint {
            self.introspect(endpoint, token).await?;
        }
        Ok((Secret::new(token), view))
    }

    /// The keys of `trust`: cached, or fetched when there are none yet, or
    /// when `refresh` asks and the last fetch is older than
    /// [`REFETCH_INTERVAL`].
    async fn keys(&self, trust: &Trust, refresh: bool) -> Result<Arc<Jwks>, Refusal> {
        {
            let cache = self.inner.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(c) = cache.get(&trust.issuer) {
                if !refresh || c.fetched.elapsed() < REFETCH_INTERVAL {
                    return Ok(Arc::clone(&c.jwks));
                }
            }
        }
        let unverifiable = |reason: String| Refusal::Unverifiable { jwks_uri: trust.jwks_uri.clone(), reason };
        let resp =
            self.inner.http.get(&trust.jwks_uri).send().await.map_err(|e| unverifiable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unverifiable(format!("HTTP {}", resp.status().as_u16())));
        }
        let doc: Value = resp.json().await.map_err(|e| unverifiable(e.without_url().to_string()))?;
        let jwks = Arc::new(Jwks::from_value(&doc).map_err(|e| unverifiable(e.to_string()))?);
        let mut cache = self.inner.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.insert(trust.issuer.clone(), CachedKeys { jwks: Arc::clone(&jwks), fetched: Instant::now() });
        Ok(jwks)
    }
}

/// Fakes for the tests of the demo's resources: an issuer with a JWKS
/// endpoint on loopback, minting ES256 tokens.
#[cfg(test)]
pub(crate) mod testkit {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use axum::routing::get;
    use fourleg_core::jose::{JwsAlg, LocalSigner, Signer as _};
    use serde_json::{json, Value};

    use crate::Trust;

    /// A listener on a free loopback port and its origin (`http://ip:port`).
    pub(crate) async fn bind() -> (tokio::net::TcpListener, String) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", l.local_addr().unwrap());
        (l, origin)
    }

    pub(crate) fn serve_at(l: tokio::net::TcpListener, router: axum::Router) {
        tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    }

    /// Serves `router` on a free loopback port; its origin.
    pub(crate) async fn serve(router: axum::Router) -> String {
        let (l, origin) = bind().await;
        serve_at(l, router);
        origin
    }

    pub(crate) fn http() -> reqwest::Client {
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(10)).build().unwrap()
    }

    /// A token issuer: a signing key and a JWKS endpoint the tests can
    /// rotate, counting its fetches.
    pub(crate) struct TestIssuer {
        pub(crate) issuer: String,
        pub(crate) signer: Arc<LocalSigner>,
        pub(crate) jwks: Arc<Mutex<Value>>,
        pub(crate) fetches: Arc<AtomicUsize>,
    }

    impl TestIssuer {
        pub(crate) async fn start(kid: &str) -> Self {
            let signer = Arc::new(LocalSigner::generate(JwsAlg::ES256, kid).unwrap());
            let jwks = Arc::new(Mutex::new(json!({"keys": [signer.public_jwk()]})));
            let fetches = Arc::new(AtomicUsize::new(0));
            let (j, f) = (Arc::clone(&jwks), Arc::clone(&fetches));
            let router = axum::Router::new().route(
                "/jwks",
                get(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    let doc = j.lock().unwrap().clone();
                    async move { axum::Json(doc) }
                }),
            );
            let issuer = serve(router).await;
            Self { issuer, signer, jwks, fetches }
        }

        pub(crate) fn trust(&self) -> Trust {
            Trust::jwks(self.issuer.clone(), format!("{}/jwks", self.issuer))
        }

        pub(crate) fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }

        /// A token of this issuer for `aud` with `scope`, valid 5 minutes,
        /// with `extra` claims merged over the defaults.
        pub(crate) fn token(&self, aud: &str, scope: &str, extra: &Value) -> String {
            sign(&self.signer, &self.issuer, aud, scope, extra)
        }
    }

    /// Claims `{iss, sub: alice, aud, scope, iat, exp: +300, jti}` with
    /// `extra` merged over them, signed by `signer`.
    pub(crate) fn sign(signer: &LocalSigner, iss: &str, aud: &str, scope: &str, extra: &Value) -> String {
        let now = super::now();
        let mut claims = json!({
            "iss": iss, "sub": "alice", "aud": aud, "scope": scope,
            "iat": now, "exp": now + 300, "jti": format!("jti-{}", fourleg_core::Secret::generate(8).expose()),
        });
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        signer.sign(&claims).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use fourleg_core::jose::{JwsAlg, LocalSigner, Signer as _};
    use serde_json::json;

    use super::testkit::{http, sign, TestIssuer};
    use super::*;

    fn with_bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        h
    }

    #[test]
    fn the_bearer_token_comes_from_the_authorization_header_only() {
        assert_eq!(bearer(&HeaderMap::new()), Err(Refusal::Missing));
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YWxpY2U6cHc="));
        assert_eq!(bearer(&h), Err(Refusal::OtherScheme("Basic".into())));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc.def.ghi "));
        assert_eq!(bearer(&h), Ok("abc.def.ghi"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert!(matches!(bearer(&h), Err(Refusal::Malformed(_))));
        // RFC 6750 §3.1: no error code without credentials, invalid_token with.
        assert_eq!(Refusal::Missing.error_code(), None);
        assert_eq!(Refusal::Expired { exp: 1, now: 2 }.error_code(), Some("invalid_token"));
    }

    #[test]
    fn challenges_quote_and_clean_their_values() {
        assert_eq!(bearer_challenge([]), "Bearer");
        assert_eq!(
            bearer_challenge([("realm", "records-api"), ("error_description", "aud \"x\" \\ é")]),
            r#"Bearer realm="records-api", error_description="aud 'x' ' ?""#
        );
    }

    #[tokio::test]
    async fn a_token_of_a_trusted_issuer_for_this_audience_is_accepted() {
        let iss = TestIssuer::start("k1").await;
        let v = Validator::new(http(), vec![iss.trust()], "records-api");
        let token = iss.token("records-api", "records:read", &json!({"aud": ["other", "records-api"]}));
        let (secret, view) = v.validate(&with_bearer(&token)).await.unwrap();
        assert_eq!(secret.expose(), token);
        assert_eq!(view.sub.as_deref(), Some("alice"));
        assert!(view.has_scope("records:read"));
    }

    /// RFC 7662: with an introspection endpoint, a token that verifies but
    /// is no longer active is refused; the endpoint is asked as this
    /// resource, with its own credentials.
    #[tokio::test]
    async fn a_revoked_token_is_refused_when_the_issuer_introspects() {
        use axum::extract::State as S;
        type Shared = (Arc<Mutex<bool>>, Arc<Mutex<String>>);
        let iss = TestIssuer::start("k1").await;
        let active = Arc::new(Mutex::new(true));
        let seen_auth = Arc::new(Mutex::new(String::new()));
        let endpoint = super::testkit::serve(
            axum::Router::new()
                .route(
                    "/introspect",
                    axum::routing::post(|S((active, seen)): S<Shared>, h: HeaderMap| async move {
                        *seen.lock().unwrap() =
                            h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        axum::Json(json!({"active": *active.lock().unwrap()}))
                    }),
                )
                .with_state((Arc::clone(&active), Arc::clone(&seen_auth))),
        )
        .await;
        let trust = Trust { introspection_endpoint: Some(format!("{endpoint}/introspect")), ..iss.trust() };
        let creds = ClientCreds { client_id: "records-api".into(), secret: Secret::new("api-secret") };
        let v = Validator::new(http(), vec![trust.clone()], "records-api").with_credentials(creds);
        let token = iss.token("records-api", "records:read", &json!({}));
        assert!(v.validate(&with_bearer(&token)).await.is_ok());
        assert!(seen_auth.lock().unwrap().starts_with("Basic "), "introspection must be authenticated");
        *active.lock().unwrap() = false;
        let refused = v.validate(&with_bearer(&token)).await.unwrap_err();
        assert_eq!(refused, Refusal::Inactive);
        assert_eq!((refused.status(), refused.error_code()), (401, Some("invalid_token")));
        // Without credentials the validator does not introspect (Lab 1).
        let plain = Validator::new(http(), vec![trust], "records-api");
        assert!(plain.validate(&with_bearer(&token)).await.is_ok());
        // An endpoint that cannot be asked fails closed, as the resource's fault (503).
        let gone = Trust { introspection_endpoint: Some("http://127.0.0.1:9/introspect".into()), ..iss.trust() };
        let v = Validator::new(http(), vec![gone], "records-api")
            .with_credentials(ClientCreds { client_id: "records-api".into(), secret: Secret::new("x") });
        let err = v.validate(&with_bearer(&token)).await.unwrap_err();
        assert!(matches!(err, Refusal::Uninspectable { .. }) && err.status() == 503, "{err:?}");
    }

    #[tokio::test]
    async fn each_broken_rule_is_refused_with_its_own_reason() {
        let iss = TestIssuer::start("k1").await;
        let v = Validator::new(http(), vec![iss.trust()], "records-api");
        let check = |token: String| {
            let v = v.clone();
            async move { v.validate(&with_bearer(&token)).await.unwrap_err() }
        };

        let wrong = check(iss.token("mcp-server", "records:read", &json!({}))).await;
        assert_eq!(wrong, Refusal::WrongAudience { aud: vec!["mcp-server".into()], expected: "records-api".into() });
        assert!(wrong.reason().contains("\"mcp-server\""), "{}", wrong.reason());

        let now = now();
        let expired = check(iss.token("records-api", "", &json!({"exp": now - LEEWAY_SECS - 5}))).await;
        assert!(matches!(expired, Refusal::Expired { .. }), "{expired:?}");
        // Within the leeway it still passes.
        let fresh = iss.token("records-api", "", &json!({"exp": now - 5}));
        assert!(v.validate(&with_bearer(&fresh)).await.is_ok());

        let early = check(iss.token("records-api", "", &json!({"nbf": now + 600}))).await;
        assert!(matches!(early, Refusal::NotYetValid { .. }), "{early:?}");

        let no_exp = check(iss.token("records-api", "", &json!({"exp": null}))).await;
        assert!(matches!(no_exp, Refusal::Malformed(_)), "{no_exp:?}");

        let stranger = check(iss.token("records-api", "", &json!({"iss": "https://evil.example"}))).await;
        assert_eq!(stranger, Refusal::UntrustedIssuer("https://evil.example".into()));

        // The trusted issuer's name, but a key that is not in its JWKS.
        let forger = LocalSigner::generate(JwsAlg::ES256, "k1").unwrap();
        let forged = check(sign(&forger, &iss.issuer, "records-api", "", &json!({}))).await;
        assert!(matches!(forged, Refusal::Signature(_)), "{forged:?}");

        assert!(matches!(check("not-a-jwt".into()).await, Refusal::Malformed(_)));
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_jwks_at_most_once_a_second() {
        let iss = TestIssuer::start("k1").await;
        let v = Validator::new(http(), vec![iss.trust()], "records-api");
        v.validate(&with_bearer(&iss.token("records-api", "", &json!({})))).await.unwrap();
        v.validate(&with_bearer(&iss.token("records-api", "", &json!({})))).await.unwrap();
        assert_eq!(iss.fetches(), 1, "the JWKS is cached");

        // The issuer rotates to k2: the first token with kid k2 refetches.
        let k2 = LocalSigner::generate(JwsAlg::ES256, "k2").unwrap();
        iss.jwks.lock().unwrap()["keys"].as_array_mut().unwrap().push(k2.public_jwk());
        tokio::time::sleep(REFETCH_INTERVAL).await;
        let rotated = sign(&k2, &iss.issuer, "records-api", "", &json!({}));
        v.validate(&with_bearer(&rotated)).await.unwrap();
        assert_eq!(iss.fetches(), 2);

        // Made-up kids right after do not refetch again.
        let k3 = LocalSigner::generate(JwsAlg::ES256, "k3").unwrap();
        for _ in 0..3 {
            let unknown = sign(&k3, &iss.issuer, "records-api", "", &json!({}));
            assert!(matches!(v.validate(&with_bearer(&unknown)).await, Err(Refusal::Signature(_))));
        }
        assert_eq!(iss.fetches(), 2);
    }

    #[tokio::test]
    async fn an_unreachable_jwks_is_not_the_clients_fault() {
        let iss = TestIssuer::start("k1").await;
        let trust = Trust::jwks(iss.issuer.clone(), format!("{}/nowhere", iss.issuer));
        let v = Validator::new(http(), vec![trust], "records-api");
        let r = v.validate(&with_bearer(&iss.token("records-api", "", &json!({})))).await.unwrap_err();
        assert!(matches!(r, Refusal::Unverifiable { .. }), "{r:?}");
        assert_eq!((r.status(), r.error_code()), (503, None));
    }
}
