//! The records API: the last hop of the demo chain, a resource server that
//! accepts only tokens for its own audience.
//!
//! `GET /records` needs the scope `records:read`, `POST /records` (a JSON
//! body `{"text": "..."}`) needs `records:write`. A request without a valid
//! token is answered 401 with a `Bearer` challenge (RFC 6750 §3), one whose
//! token lacks the scope 403 `insufficient_scope` (RFC 6750 §3.1). Every
//! request, allowed or not, leaves one `api`/`request` entry in the journal:
//! the token's claims (never the token), the user it acted for and the
//! actors of its `act` chain (RFC 8693 §4.1).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{self, Refusal, Validator};
use crate::{Entry, Journal, TokenView};

/// The realm of the API's challenges (RFC 6750 §3, RFC 9110 §11.5).
pub const REALM: &str = "records-api";
/// The scope `GET /records` needs.
pub const READ_SCOPE: &str = "records:read";
/// The scope `POST /records` needs.
pub const WRITE_SCOPE: &str = "records:write";

/// What the API needs to run.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Accepts tokens whose `aud` is the API's.
    pub validator: Validator,
    pub journal: Journal,
}

/// One record, with who wrote it and through whom.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub id: u64,
    pub text: String,
    /// The `sub` of the token that wrote it.
    pub author: String,
    /// The actors of that token's `act` chain, outermost first.
    pub via: Vec<String>,
}

#[derive(Debug, Clone)]
struct Shared {
    api: ApiState,
    records: Arc<Mutex<Vec<Record>>>,
}

/// The body of `POST /records`.
#[derive(Debug, Deserialize)]
struct NewRecord {
    text: String,
}

/// The API's routes, with a fresh in-memory list of seed records.
pub fn router(state: ApiState) -> Router {
    let seed = |id: u64, text: &str| Record { id, text: text.to_owned(), author: "seed".into(), via: Vec::new() };
    let records = vec![
        seed(1, "quarterly numbers are due on Friday"),
        seed(2, "the lab printer is on the second floor"),
        seed(3, "rotate the signing keys every 90 days"),
    ];
    let shared = Shared { api: state, records: Arc::new(Mutex::new(records)) };
    Router::new().route("/records", get(list).post(create)).route(RECEIVED_PATH, get(received)).with_state(shared)
}

/// Where the API shows what it received, for the suite's no-passthrough
/// scenario (`[resource] downstream` of the `demo-mcp` target).
pub const RECEIVED_PATH: &str = "/fourleg/received";

/// The decoded claims of every token the API was presented, newest last:
/// never a token, only what the journal already shows.
async fn received(State(sh): State<Shared>) -> Json<serde_json::Value> {
    let tokens: Vec<TokenView> =
        sh.api.journal.read().into_iter().filter(|e| e.component == "api").filter_map(|e| e.token).collect();
    Json(json!({ "received": tokens }))
}

/// A request the API is answering: what it journals.
struct Call<'a> {
    method: Method,
    path: &'a str,
    needs: &'static str,
}

impl Call<'_> {
    fn journal(&self, journal: &Journal, status: StatusCode, reason: Option<String>, view: Option<TokenView>) {
        let detail = json!({
            "method": self.method.as_str(),
            "path": self.path,
            "needs": self.needs,
            "acted_for": view.as_ref().and_then(|v| v.sub.clone()),
            "actors": view.as_ref().map(TokenView::actors).unwrap_or_default(),
        });
        let mut entry =
            Entry::new("api", "request", status.is_success()).status(status.as_u16()).token(view).detail(detail);
        if let Some(r) = reason {
            entry = entry.reason(r);
        }
        journal.append(&entry);
    }

    /// The token's claims when it is valid for the API and grants
    /// `self.needs`; otherwise the refusal, journaled and ready to send.
    async fn authorize(&self, api: &ApiState, headers: &HeaderMap) -> Result<TokenView, Response> {
        let view = match api.validator.validate(headers).await {
            Ok((_token, view)) => view,
            Err(refusal) => {
                self.journal(&api.journal, status_of(&refusal), Some(refusal.reason()), auth::presented(headers));
                return Err(unauthorized(&refusal));
            }
        };
        if view.has_scope(self.needs) {
            return Ok(view);
        }
        let reason = format!(
            "the token's scope {:?} does not include {} (RFC 6750 §3.1 insufficient_scope)",
            view.scope.as_deref().unwrap_or(""),
            self.needs
        );
        self.journal(&api.journal, StatusCode::FORBIDDEN, Some(reason.clone()), Some(view));
        Err(insufficient_scope(self.needs, &reason))
    }
}

fn status_of(refusal: &Refusal) -> StatusCode {
    StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED)
}

/// RFC 6750 §3: 401 with `WWW-Authenticate: Bearer realm="records-api"`,
/// plus `error="invalid_token"` and a description when a token was presented
/// (§3.1). A resource that could not fetch the keys answers 503 without a
/// challenge.
fn unauthorized(refusal: &Refusal) -> Response {
    let status = status_of(refusal);
    let params = refusal.challenge_params();
    let challenge =
        auth::bearer_challenge(std::iter::once(("realm", REALM)).chain(params.iter().map(|(k, v)| (*k, v.as_str()))));
    let body = Json(json!({
        "error": refusal.error_code().unwrap_or("unauthorized"),
        "error_description": refusal.reason(),
    }));
    let mut resp = (status, body).into_response();
    if status == StatusCode::UNAUTHORIZED {
        insert_challenge(&mut resp, &challenge);
    }
    resp
}

/// RFC 6750 §3.1: 403 `insufficient_scope`, with the `scope` needed.
fn insufficient_scope(needs: &str, reason: &str) -> Response {
    let challenge = auth::bearer_challenge([
        ("realm", REALM),
        ("error", "insufficient_scope"),
        ("error_description", reason),
        ("scope", needs),
    ]);
    let body = Json(json!({"error": "insufficient_scope", "error_description": reason, "scope": needs}));
    let mut resp = (StatusCode::FORBIDDEN, body).into_response();
    insert_challenge(&mut resp, &challenge);
    resp
}

fn insert_challenge(resp: &mut Response, challenge: &str) {
    // bearer_challenge keeps to printable ASCII, always a valid header value.
    if let Ok(v) = HeaderValue::from_str(challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
}

/// `GET /records` (scope `records:read`): every record.
async fn list(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let call = Call { method: Method::GET, path: "/records", needs: READ_SCOPE };
    let view = match call.authorize(&s.api, &headers).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    let records = s.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    call.journal(&s.api.journal, StatusCode::OK, None, Some(view));
    Json(json!({"records": records})).into_response()
}

/// `POST /records` (scope `records:write`): appends a record written by the
/// token's `sub` through its actors.
async fn create(State(s): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let call = Call { method: Method::POST, path: "/records", needs: WRITE_SCOPE };
    let view = match call.authorize(&s.api, &headers).await {
        Ok(v) => v,
        Err(resp) => return resp,
    };
    // The body is read after the token is checked: an anonymous caller
    // learns nothing about what the API expects.
    let text = match serde_json::from_slice::<NewRecord>(&body) {
        Ok(n) if !n.text.trim().is_empty() => n.text,
        _ => {
            let reason = r#"the body must be JSON {"text": "..."} with a non-empty text"#;
            call.journal(&s.api.journal, StatusCode::BAD_REQUEST, Some(reason.into()), Some(view));
            return (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_request", "error_description": reason})))
                .into_response();
        }
    };
    let record = {
        let mut records = s.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let id = records.iter().map(|r| r.id).max().unwrap_or(0) + 1;
        let record = Record { id, text, author: view.sub.clone().unwrap_or_else(|| "?".into()), via: view.actors() };
        records.push(record.clone());
        record
    };
    call.journal(&s.api.journal, StatusCode::CREATED, None, Some(view));
    (StatusCode::CREATED, Json(json!({"record": record}))).into_response()
}

/// What a test reads of an answer.
#[cfg(test)]
pub(crate) fn challenge_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use fourleg_core::jose::{JwsAlg, LocalSigner};
    use serde_json::{json, Value};

    use super::*;
    use crate::auth::testkit::{http, serve, sign, TestIssuer};

    struct Api {
        url: String,
        iss: TestIssuer,
        journal: Journal,
        _dir: tempfile::TempDir,
    }

    async fn api() -> Api {
        let iss = TestIssuer::start("k1").await;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("journal.jsonl"));
        let state =
            ApiState { validator: Validator::new(http(), vec![iss.trust()], "records-api"), journal: journal.clone() };
        let url = serve(router(state)).await;
        Api { url, iss, journal, _dir: dir }
    }

    impl Api {
        async fn get(&self, token: Option<&str>) -> reqwest::Response {
            let mut r = http().get(format!("{}/records", self.url));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap()
        }

        async fn post(&self, token: &str, body: &Value) -> reqwest::Response {
            http().post(format!("{}/records", self.url)).bearer_auth(token).json(body).send().await.unwrap()
        }

        fn last(&self) -> Entry {
            self.journal.read().pop().expect("the API journals every request")
        }
    }

    #[tokio::test]
    async fn a_token_for_the_api_reads_and_writes_and_the_journal_says_for_whom() {
        let a = api().await;
        let act = json!({"act": {"client_id": "mcp-server", "act": {"client_id": "agent"}}});
        let token = a.iss.token("records-api", "records:read records:write", &act);

        let resp = a.get(Some(&token)).await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["records"].as_array().unwrap().len(), 3, "{body}");

        let resp = a.post(&token, &json!({"text": "hello"})).await;
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["record"]["id"], 4);
        assert_eq!(body["record"]["author"], "alice");
        assert_eq!(body["record"]["via"], json!(["mcp-server", "agent"]));

        let e = a.last();
        assert_eq!((e.component.as_str(), e.event.as_str(), e.ok, e.status), ("api", "request", true, Some(201)));
        assert_eq!(e.detail["needs"], "records:write");
        assert_eq!(e.detail["acted_for"], "alice");
        assert_eq!(e.detail["actors"], json!(["mcp-server", "agent"]));
        assert_eq!(a.journal.read().len(), 2);
        let text = std::fs::read_to_string(a.journal.path()).unwrap();
        assert!(fourleg_core::jwt::find_signed_jwts(&text).is_empty(), "no raw token in the journal: {text}");
    }

    #[tokio::test]
    async fn no_token_is_a_challenge_without_an_error_code() {
        let a = api().await;
        let resp = a.get(None).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(challenge_of(&resp).as_deref(), Some(r#"Bearer realm="records-api""#));
        let e = a.last();
        assert!(!e.ok && e.token.is_none());
        assert_eq!(e.status, Some(401));
    }

    #[tokio::test]
    async fn a_token_for_another_audience_is_refused_and_journaled_with_its_aud() {
        let a = api().await;
        let token = a.iss.token("mcp-server", "records:read", &json!({}));
        let resp = a.get(Some(&token)).await;
        assert_eq!(resp.status(), 401);
        let c = challenge_of(&resp).unwrap();
        assert!(c.starts_with(r#"Bearer realm="records-api", error="invalid_token", error_description=""#), "{c}");
        assert!(c.contains("mcp-server"), "{c}");
        let e = a.last();
        assert_eq!((e.ok, e.status), (false, Some(401)));
        assert_eq!(e.token.unwrap().aud, vec!["mcp-server"]);
        assert!(e.reason.unwrap().contains("records-api"));
    }

    #[tokio::test]
    async fn a_token_without_the_scope_is_forbidden_with_insufficient_scope() {
        let a = api().await;
        let token = a.iss.token("records-api", "records:read", &json!({}));
        let resp = a.post(&token, &json!({"text": "sneaky"})).await;
        assert_eq!(resp.status(), 403);
        let c = challenge_of(&resp).unwrap();
        assert!(c.contains(r#"error="insufficient_scope""#) && c.ends_with(r#"scope="records:write""#), "{c}");
        let e = a.last();
        assert_eq!((e.ok, e.status), (false, Some(403)));
        assert_eq!(e.detail["needs"], "records:write");
        // Nothing was written.
        let list: Value = a.get(Some(&token)).await.json().await.unwrap();
        assert_eq!(list["records"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let a = api().await;
        let old = json!({"iat": 1_000_000, "exp": 1_000_300});
        let resp = a.get(Some(&a.iss.token("records-api", "records:read", &old))).await;
        assert_eq!(resp.status(), 401);
        let c = challenge_of(&resp).unwrap();
        assert!(c.contains(r#"error="invalid_token""#) && c.contains("expired"), "{c}");
    }

    #[tokio::test]
    async fn tokens_of_an_untrusted_issuer_or_key_are_refused() {
        let a = api().await;
        // An issuer the API does not trust.
        let other = TestIssuer::start("k1").await;
        let resp = a.get(Some(&other.token("records-api", "records:read", &json!({})))).await;
        assert_eq!(resp.status(), 401);
        assert!(challenge_of(&resp).unwrap().contains("is not one this resource trusts"));
        assert_eq!(a.last().token.unwrap().iss.as_deref(), Some(other.issuer.as_str()));

        // The trusted issuer's name, signed by a key that is not in its JWKS.
        let forger = LocalSigner::generate(JwsAlg::ES256, "k1").unwrap();
        let forged = sign(&forger, &a.iss.issuer, "records-api", "records:read", &json!({}));
        let resp = a.get(Some(&forged)).await;
        assert_eq!(resp.status(), 401);
        let c = challenge_of(&resp).unwrap();
        assert!(c.contains(r#"error="invalid_token""#) && c.contains("signature"), "{c}");
    }

    #[tokio::test]
    async fn a_bad_body_is_refused_after_the_token_is_checked() {
        let a = api().await;
        let token = a.iss.token("records-api", "records:write", &json!({}));
        let resp = a.post(&token, &json!({"txt": "typo"})).await;
        assert_eq!(resp.status(), 400);
        assert_eq!((a.last().ok, a.last().status), (false, Some(400)));
    }
}
