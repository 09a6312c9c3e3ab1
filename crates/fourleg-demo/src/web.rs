//! lab-web: the public client a user logs in through (the first leg).
//!
//! Logs the user in with the authorization code grant (RFC 6749 §4.1) and
//! PKCE S256 (RFC 7636 §4), as a public client: no secret, `client_id` only
//! (RFC 6749 §2.1). It then shows the user's token decoded, asks the agent to
//! act, and draws the chain from the journal: each hop's audience, scope,
//! subject and `act` claim (RFC 8693 §4.1). It never shows a raw token.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::Secret;
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::journal::{Entry, Journal, TokenView};

const SESSION_COOKIE: &str = "lab_web_session";

/// The web app's settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub client_id: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    /// This app's own origin (`http://127.0.0.1:<port>`): the redirect URI is
    /// `<origin>/callback` (a loopback redirect, RFC 8252 §7.3).
    pub origin: String,
    /// The agent's origin.
    pub agent_url: String,
    /// Scope requested at login.
    pub scope: String,
    /// The login server's `end_session_endpoint` (OpenID Connect
    /// RP-Initiated Logout), where "Log out everywhere" ends the session.
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug)]
struct Pending {
    verifier: Secret,
}

#[derive(Debug, Default)]
struct Session {
    access_token: Option<Secret>,
    refresh_token: Option<Secret>,
    view: Option<TokenView>,
    /// What the last action answered, shown once.
    message: Option<(bool, String)>,
}

#[derive(Debug, Clone)]
struct WebState {
    config: Arc<WebConfig>,
    journal: Journal,
    http: reqwest::Client,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

/// The web app's routes.
pub fn router(config: WebConfig, journal: Journal, http: reqwest::Client) -> Router {
    let state = WebState { config: Arc::new(config), journal, http, pending: Arc::default(), sessions: Arc::default() };
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/ask", post(ask))
        .route("/replay", post(replay))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .with_state(state)
}

fn random(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    cookies.split(';').map(str::trim).find_map(|c| c.strip_prefix(&format!("{SESSION_COOKIE}=")).map(str::to_owned))
}

/// Starts the login: a fresh PKCE verifier and `state` (RFC 6749 §10.12).
async fn login(State(st): State<WebState>) -> Response {
    let verifier = random(64);
    let state = random(24);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    st.pending
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(state.clone(), Pending { verifier: Secret::new(verifier) });
    let redirect_uri = format!("{}/callback", st.config.origin);
    match url::Url::parse_with_params(
        &st.config.authorization_endpoint,
        &[
            ("client_id", st.config.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", &redirect_uri),
            ("scope", &st.config.scope),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    ) {
        Ok(to) => Redirect::to(to.as_str()).into_response(),
        Err(e) => page_error(&format!("the authorization endpoint is not a URL: {e}")),
    }
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The redirect back: the code is redeemed with the verifier (RFC 7636 §4.5).
async fn callback(State(st): State<WebState>, Query(q): Query<CallbackQuery>) -> Response {
    if let Some(error) = q.error {
        let why = format!("the login server answered {error}: {}", q.error_description.unwrap_or_default());
        st.journal.append(&Entry::new("web", "login", false).reason(why.clone()));
        return page_error(&why);
    }
    let pending =
        q.state.as_deref().and_then(|s| st.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(s));
    let (Some(code), Some(pending)) = (q.code, pending) else {
        let why = "the callback's state matches no login this app started (RFC 6749 §10.12)";
        st.journal.append(&Entry::new("web", "login", false).reason(why));
        return page_error(why);
    };
    let redirect_uri = format!("{}/callback", st.config.origin);
    let resp = st
        .http
        .post(&st.config.token_endpoint)
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri.as_str()),
            ("client_id", st.config.client_id.as_str()),
            ("code_verifier", pending.verifier.expose()),
        ])
        .send()
        .await;
    let body: Value = match resp {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(e) => return page_error(&format!("the token endpoint could not be reached: {}", e.without_url())),
    };
    let Some(token) = body.get("access_token").and_then(Value::as_str) else {
        let why = format!(
            "the token endpoint gave no token: {}",
            body.get("error").and_then(Value::as_str).unwrap_or("no error code")
        );
        st.journal.append(&Entry::new("web", "login", false).reason(why.clone()));
        return page_error(&why);
    };
    let view = TokenView::of(token);
    st.journal.append(
        &Entry::new("web", "login", true)
            .token(view.clone())
            .detail(serde_json::json!({"client": st.config.client_id})),
    );
    let id = random(32);
    st.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(
        id.clone(),
        Session {
            access_token: Some(Secret::new(token)),
            refresh_token: body.get("refresh_token").and_then(Value::as_str).map(Secret::new),
            view,
            message: None,
        },
    );
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = format!("{SESSION_COOKIE}={id}; HttpOnly; SameSite=Lax; Path=/").parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Debug, Deserialize)]
struct AskForm {
    action: String,
}

fn user_token(st: &WebState, headers: &HeaderMap) -> Option<(String, Secret)> {
    let id = session_id(headers)?;
    let sessions = st.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let token = sessions.get(&id)?.access_token.clone()?;
    Some((id, token))
}

fn set_message(st: &WebState, id: &str, ok: bool, text: String) {
    if let Some(s) = st.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_mut(id) {
        s.message = Some((ok, text));
    }
}

/// Asks the agent to act for the user: it sends the user's token to the
/// agent, which exchanges it (the second leg).
async fn ask(State(st): State<WebState>, headers: HeaderMap, Form(f): Form<AskForm>) -> Response {
    let Some((id, token)) = user_token(&st, &headers) else { return Redirect::to("/").into_response() };
    let (ok, text) = call_agent(&st, "/ask", &token, &serde_json::json!({"action": f.action})).await;
    set_message(&st, &id, ok, text);
    Redirect::to("/").into_response()
}

/// Asks the agent to replay its MCP-server token at the API directly.
async fn replay(State(st): State<WebState>, headers: HeaderMap) -> Response {
    let Some((id, token)) = user_token(&st, &headers) else { return Redirect::to("/").into_response() };
    let (ok, text) = call_agent(&st, "/replay", &token, &Value::Null).await;
    set_message(&st, &id, ok, text);
    Redirect::to("/").into_response()
}

async fn call_agent(st: &WebState, path: &str, token: &Secret, body: &Value) -> (bool, String) {
    let resp =
        st.http.post(format!("{}{path}", st.config.agent_url)).bearer_auth(token.expose()).json(body).send().await;
    match resp {
        Ok(r) => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            let ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
            (ok, v.get("summary").and_then(Value::as_str).unwrap_or("the agent gave no summary").to_owned())
        }
        Err(e) => (false, format!("the agent could not be reached: {}", e.without_url())),
    }
}

/// Ends the user's session at the login server (Keycloak's back-channel
/// form: the refresh token posted to `end_session_endpoint` by the client
/// that holds it), then asks the agent to watch its token die: with a broker
/// told of the logout (OpenID Connect Back-Channel Logout 1.0), every token
/// exchanged from the session is revoked.
async fn logout_everywhere(State(st): State<WebState>, headers: HeaderMap) -> Response {
    let Some(id) = session_id(&headers) else { return Redirect::to("/").into_response() };
    let refresh = st
        .sessions
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&id)
        .and_then(|s| s.refresh_token.clone());
    let (Some(refresh), Some(endpoint)) = (refresh, st.config.end_session_endpoint.clone()) else {
        let why = "this login has no refresh token or the login server no end_session_endpoint: nothing to end";
        st.journal.append(&Entry::new("web", "logout", false).reason(why));
        set_message(&st, &id, false, why.into());
        return Redirect::to("/").into_response();
    };
    let at = Entry::new("web", "logout", true).at_ms;
    let resp = st
        .http
        .post(&endpoint)
        .form(&[("client_id", st.config.client_id.as_str()), ("refresh_token", refresh.expose())])
        .send()
        .await;
    let status = match resp {
        Ok(r) => r.status().as_u16(),
        Err(e) => {
            let why = format!("the login server could not be reached: {}", e.without_url());
            st.journal.append(&Entry::new("web", "logout", false).reason(why.clone()));
            set_message(&st, &id, false, why);
            return Redirect::to("/").into_response();
        }
    };
    let ok = (200..300).contains(&status);
    let mut entry = Entry::new("web", "logout", ok).status(status);
    entry.at_ms = at;
    if !ok {
        entry = entry.reason(format!("the login server answered {status} to the logout"));
    }
    st.journal.append(&entry);
    if !ok {
        set_message(&st, &id, false, format!("the login server answered {status} to the logout"));
        return Redirect::to("/").into_response();
    }
    let (watched, text) = match st
        .http
        .post(format!("{}/watch", st.config.agent_url))
        .json(&serde_json::json!({"since_ms": at}))
        .send()
        .await
    {
        Ok(r) => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (
                v.get("ok").and_then(Value::as_bool).unwrap_or(false),
                v.get("summary").and_then(Value::as_str).unwrap_or("").to_owned(),
            )
        }
        Err(e) => (false, format!("the agent could not be reached: {}", e.without_url())),
    };
    set_message(&st, &id, watched, format!("Your session ended. {text}"));
    Redirect::to("/").into_response()
}

async fn logout(State(st): State<WebState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        st.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&id);
    }
    Redirect::to("/").into_response()
}

/// Escapes text for HTML (claims come from a server: never trusted markup).
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d232b}\
h1{font-size:1.4rem}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccd;padding:.25rem .6rem;text-align:left;vertical-align:top}\
.chain{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem;margin:.6rem 0}.node{border:2px solid #356;border-radius:.4rem;padding:.3rem .6rem;background:#eef4fa}\
.arrow{font-size:1.3rem}.ok{color:#176c2f}.no{color:#a3261b}form{display:inline}button{margin:.2rem;padding:.35rem .8rem}code{background:#f2f2f4;padding:0 .2rem}";

fn page(title: &str, body: &str) -> Response {
    Html(format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = esc(title)
    ))
    .into_response()
}

fn page_error(why: &str) -> Response {
    let mut r = page("lab-web: the login failed", &format!("<p class=no>{}</p><p><a href=/>Back</a></p>", esc(why)));
    *r.status_mut() = StatusCode::BAD_GATEWAY;
    r
}

/// A token's claims as a table.
fn claims_table(v: &TokenView) -> String {
    let mut rows = String::new();
    let mut row = |k: &str, val: String| {
        let _ = write!(rows, "<tr><th>{}</th><td><code>{}</code></td></tr>", esc(k), esc(&val));
    };
    if let Some(s) = &v.sub {
        row("sub", s.clone());
    }
    if let Some(u) = &v.preferred_username {
        row("preferred_username", u.clone());
    }
    row("aud", v.aud.join(" "));
    if let Some(s) = &v.scope {
        row("scope", s.clone());
    }
    if let Some(a) = v.azp.as_ref().or(v.client_id.as_ref()) {
        row("azp / client_id", a.clone());
    }
    if let Some(a) = &v.act {
        row("act", a.to_string());
    }
    if let Some(e) = v.exp {
        row("exp", e.to_string());
    }
    format!("<table data-token>{rows}</table>")
}

/// The chain of the latest action, drawn from the journal.
fn chain_html(journal: &Journal, since_ms: u64) -> String {
    let entries: Vec<Entry> = journal.read().into_iter().filter(|e| e.at_ms >= since_ms).collect();
    let last = |c: &str, ev: &str| entries.iter().rev().find(|e| e.component == c && e.event == ev);
    let mut hops = Vec::new();
    if let Some(e) = last("web", "login") {
        hops.push(("user token (lab-web login)", e));
    }
    if let Some(e) = last("agent", "exchange") {
        hops.push(("hop 1: agent exchanged it for the MCP server", e));
    }
    if let Some(e) = last("mcp", "exchange") {
        hops.push(("hop 2: the MCP server exchanged it for the API", e));
    }
    if let Some(e) = last("api", "request") {
        hops.push(("the API's decision", e));
    }
    if hops.is_empty() {
        return String::new();
    }
    let mut nodes = String::from("<div class=chain id=chain>");
    let mut tables = String::new();
    for (i, (title, e)) in hops.iter().enumerate() {
        if i > 0 {
            nodes.push_str("<span class=arrow>→</span>");
        }
        let who = e.token.as_ref().map(|t| {
            let mut parts = vec![t.preferred_username.clone().or_else(|| t.sub.clone()).unwrap_or_default()];
            parts.extend(t.actors().into_iter().rev());
            format!("aud {} · {}", t.aud.join(" "), parts.join(" ← "))
        });
        let class = if e.ok { "ok" } else { "no" };
        let _ = write!(
            nodes,
            "<span class=node><b>{}</b><br><span class={class}>{}</span></span>",
            esc(title),
            esc(&who.or_else(|| e.reason.clone()).unwrap_or_default())
        );
        let _ = write!(tables, "<h3>{}</h3>", esc(title));
        if let Some(r) = &e.reason {
            let _ = write!(tables, "<p class={class}>{}</p>", esc(r));
        }
        if let Some(t) = &e.token {
            tables.push_str(&claims_table(t));
        }
    }
    nodes.push_str("</div>");
    format!("<h2>The chain</h2>{nodes}{tables}")
}

async fn home(State(st): State<WebState>, headers: HeaderMap) -> Response {
    let id = session_id(&headers);
    let (view, message) = {
        let mut sessions = st.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match id.as_ref().and_then(|i| sessions.get_mut(i)) {
            Some(s) => (s.view.clone(), s.message.take()),
            None => (None, None),
        }
    };
    let Some(view) = view else {
        return page(
            "lab-web",
            "<p>The public client of the lab (the first leg). Log in as a lab user: the login server will send you back here with a code, which this app redeems with its PKCE verifier.</p>\
             <p><a id=login href=/login><button>Log in</button></a></p>",
        );
    };
    let mut body = String::new();
    if let Some((ok, text)) = message {
        let _ = write!(body, "<p id=message class={}>{}</p>", if ok { "ok" } else { "no" }, esc(&text));
    }
    let _ = write!(
        body,
        "<h2>Your token, decoded</h2><p>Issued to this app for you; the raw token never leaves the server.</p>{}\
         <p><form method=post action=/ask><input type=hidden name=action value=read><button id=ask-read>Ask the agent to read records</button></form>\
         <form method=post action=/ask><input type=hidden name=action value=write><button id=ask-write>Ask the agent to write a record</button></form>\
         <form method=post action=/replay><button id=replay>Replay the MCP server's token at the API</button></form>\
         <form method=post action=/logout-everywhere><button id=logout-everywhere>Log out everywhere (end the session)</button></form>\
         <form method=post action=/logout><button id=logout>Log out of lab-web</button></form></p>",
        claims_table(&view)
    );
    // The chain since this session's login.
    let since = st
        .journal
        .read()
        .iter()
        .rev()
        .find(|e| e.component == "web" && e.event == "login" && e.ok && e.token.as_ref() == Some(&view))
        .map_or(0, |e| e.at_ms);
    body.push_str(&chain_html(&st.journal, since));
    page("lab-web", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_claims_is_escaped() {
        let v = TokenView {
            sub: Some("<script>alert(1)</script>".into()),
            aud: vec!["a\"b".into()],
            ..TokenView::default()
        };
        let html = claims_table(&v);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;") && html.contains("a&quot;b"), "{html}");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; lab_web_session=abc; b=2".parse().unwrap());
        assert_eq!(session_id(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, "lab_web_sessionx=abc".parse().unwrap());
        assert_eq!(session_id(&h), None);
    }
}
