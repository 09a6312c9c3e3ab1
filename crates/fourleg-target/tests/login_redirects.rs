//! The scripted login against a server that, like Spring Authorization
//! Server, sends the browser to a separate login page and back: authorize →
//! 302 /login (only for `Accept: text/html`) → form with a CSRF field → 302
//! to the saved authorization request → 302 to the client with the code.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use fourleg_core::Secret;
use fourleg_target::login::{authorize, Authorize, LoginError};
use fourleg_target::profile::LoginForm;

const REDIRECT: &str = "http://127.0.0.1:8976/callback";

#[derive(Default)]
struct Bed {
    /// The saved authorization request per session cookie.
    saved: Mutex<HashMap<String, String>>,
    logged_in: Mutex<Vec<String>>,
}

fn session(h: &HeaderMap) -> Option<String> {
    h.get(header::COOKIE)?.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix("S=")).map(str::to_owned)
}

async fn authz(State(b): State<Arc<Bed>>, h: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let sid = session(&h);
    if let Some(sid) = &sid {
        if b.logged_in.lock().unwrap().contains(sid) {
            let saved = b.saved.lock().unwrap().get(sid).cloned().unwrap_or_default();
            let state: HashMap<String, String> = url::form_urlencoded::parse(saved.as_bytes()).into_owned().collect();
            return Redirect::to(&format!("{REDIRECT}?code=c0de&state={}", state["state"])).into_response();
        }
    }
    let html = h.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|a| a.contains("text/html"));
    if !html {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let sid = sid.unwrap_or_else(|| "s1".into());
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&q).finish();
    b.saved.lock().unwrap().insert(sid.clone(), query);
    ([(header::SET_COOKIE, format!("S={sid}; Path=/"))], Redirect::to("/login")).into_response()
}

async fn login_page() -> Html<&'static str> {
    Html(
        r#"<form method="post" action="/login"><input type="hidden" name="_csrf" value="t0k"/><input name="username"/><input type="password" name="password"/></form>"#,
    )
}

async fn login_post(State(b): State<Arc<Bed>>, h: HeaderMap, Form(f): Form<HashMap<String, String>>) -> Response {
    let ok = f.get("_csrf").map(String::as_str) == Some("t0k") && f.get("password").map(String::as_str) == Some("pw");
    match session(&h) {
        Some(sid) if ok => {
            b.logged_in.lock().unwrap().push(sid);
            Redirect::to("/authorize?continue").into_response()
        }
        _ => (StatusCode::OK, Html("<p>bad credentials</p>")).into_response(),
    }
}

async fn serve() -> String {
    let app = Router::new()
        .route("/authorize", get(authz))
        .route("/login", get(login_page).post(login_post))
        .with_state(Arc::new(Bed::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/authorize")
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn request<'a>(
    url: &'a str,
    params: &'a std::collections::BTreeMap<String, String>,
    form: &'a LoginForm,
) -> Authorize<'a> {
    Authorize {
        authorization_endpoint: url,
        client_id: "lab-web",
        redirect_uri: REDIRECT,
        scope: "openid",
        params,
        form,
    }
}

#[tokio::test]
async fn a_login_page_behind_redirects_yields_the_code() {
    let url = serve().await;
    let (params, form) = (std::collections::BTreeMap::new(), LoginForm::default());
    let code = authorize(&browser(), &request(&url, &params, &form), "alice", &Secret::new("pw")).await.unwrap();
    assert_eq!(code.code.expose(), "c0de");
}

#[tokio::test]
async fn a_wrong_password_is_reported_as_no_redirect() {
    let url = serve().await;
    let (params, form) = (std::collections::BTreeMap::new(), LoginForm::default());
    let err = authorize(&browser(), &request(&url, &params, &form), "alice", &Secret::new("nope")).await.unwrap_err();
    assert!(matches!(err, LoginError::NoRedirect(200)), "{err}");
}
