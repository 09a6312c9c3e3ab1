//! A token endpoint that answers the login's code exchange with a redirect
//! (Spring Authorization Server did once while warming up, in CI) makes the
//! scripted login start again with a fresh code, a bounded number of times;
//! a server that keeps redirecting has its last answer returned, and an
//! ordinary refusal is returned at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use fourleg_target::{Profile, Target};

const PROFILE: &str = r#"
name = "warming"
product = "Warming IdP"
summary = "redirects the first token requests"
[endpoints]
discovery = "none"
token = "{base}/token"
authorization = "{base}/authorize"
[clients.agent]
client_id = "agent"
secret = { env = "FOURLEG_WARMING_TEST_SECRET" }
[clients.web]
client_id = "web"
public = true
[users.alice]
username = "alice"
password = { env = "FOURLEG_WARMING_TEST_SECRET" }
login = "authorization-code"
client = "web"
redirect_uri = "http://127.0.0.1:8976/callback"
[permissions]
"records:read" = "read"
[audiences]
mcp-server = "mcp"
[features]
delegation = false
may_act = false
introspection = false
revocation = false
resource = false
"#;

struct Bed {
    /// How many token requests answer with a redirect before a token.
    redirects: u32,
    /// The answer after the redirects: 200 with a token, or 400.
    refuse: bool,
    authorizations: AtomicU32,
    token_requests: AtomicU32,
}

async fn authorize(State(b): State<Arc<Bed>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let n = b.authorizations.fetch_add(1, Ordering::SeqCst);
    Redirect::to(&format!("{}?code=code-{n}&state={}", q["redirect_uri"], q["state"])).into_response()
}

async fn token(State(b): State<Arc<Bed>>) -> Response {
    let n = b.token_requests.fetch_add(1, Ordering::SeqCst);
    if n < b.redirects {
        return Redirect::to("/login").into_response();
    }
    if b.refuse {
        return (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({"error": "invalid_grant"}))).into_response();
    }
    axum::Json(serde_json::json!({"access_token": "opaque-access-token", "token_type": "Bearer"})).into_response()
}

async fn login(redirects: u32, refuse: bool) -> (u16, Arc<Bed>) {
    let bed = Arc::new(Bed { redirects, refuse, authorizations: AtomicU32::new(0), token_requests: AtomicU32::new(0) });
    let app =
        Router::new().route("/authorize", get(authorize)).route("/token", post(token)).with_state(Arc::clone(&bed));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    std::env::set_var("FOURLEG_WARMING_TEST_SECRET", "warming-test-secret-value");
    let profile = Profile::parse(&PROFILE.replace("{base}", &base), Path::new("warming.toml")).unwrap();
    let target = Target::connect(profile, None).await.unwrap();
    let outcome = target.user_token("alice", &[]).await.unwrap();
    (outcome.status, bed)
}

#[tokio::test]
async fn a_redirected_code_exchange_is_tried_again_with_a_fresh_code() {
    let (status, bed) = login(1, false).await;
    assert_eq!(status, 200);
    assert_eq!(bed.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(bed.authorizations.load(Ordering::SeqCst), 2, "each attempt needs a code of its own");
}

#[tokio::test]
async fn a_server_that_keeps_redirecting_gets_its_last_answer_reported() {
    let (status, bed) = login(u32::MAX, false).await;
    assert_eq!(status, 303, "axum's Redirect::to answers 303");
    assert_eq!(bed.token_requests.load(Ordering::SeqCst), 3, "bounded attempts");
}

#[tokio::test]
async fn a_refusal_is_not_tried_again() {
    let (status, bed) = login(0, true).await;
    assert_eq!(status, 400);
    assert_eq!(bed.token_requests.load(Ordering::SeqCst), 1);
}
