//! The agent: a confidential client that acts for the user (the second leg).
//!
//! Given the user's token by lab-web, it exchanges it for the MCP server's
//! audience (RFC 8693 §2.1; in delegation mode with its own
//! client_credentials token as `actor_token`, §1.1) and calls the MCP
//! server's tool with the new token. It never forwards the user's token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::routing::post;
use axum::{Json, Router};
use fourleg_core::Secret;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::exchange::{self, Request};
use crate::journal::{Entry, Journal, TokenView};
use crate::ClientCreds;

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub exchange_endpoint: String,
    pub creds: ClientCreds,
    /// The MCP server's endpoint (`…/mcp`).
    pub mcp_url: String,
    pub mcp_audience: String,
    /// The records API's base URL (for the replay demonstration).
    pub api_url: String,
    /// Present the agent's own token as `actor_token` (delegation).
    pub delegate: bool,
    /// Reuse an exchanged token while it has more than
    /// [`CACHE_MARGIN_S`] left, instead of exchanging again.
    pub cache: bool,
}

/// A cached token is reused only while it has more than this many seconds
/// left.
pub const CACHE_MARGIN_S: i64 = 15;

#[derive(Debug, Clone)]
struct AgentState {
    config: Arc<AgentConfig>,
    journal: Journal,
    http: reqwest::Client,
    /// The agent's last token for the MCP server, kept for the replay demonstration.
    last_hop: Arc<Mutex<Option<Secret>>>,
    /// Exchanged tokens by (user token's `jti` or `sub`, scope).
    cache: Arc<Mutex<HashMap<(String, String), Secret>>>,
}

/// The agent's routes: `POST /ask` and `POST /replay`, each with the user's
/// token as a bearer token.
pub fn router(config: AgentConfig, journal: Journal, http: reqwest::Client) -> Router {
    let state = AgentState { config: Arc::new(config), journal, http, last_hop: Arc::default(), cache: Arc::default() };
    Router::new().route("/ask", post(ask)).route("/replay", post(replay)).route("/watch", post(watch)).with_state(state)
}

fn bearer(headers: &HeaderMap) -> Option<Secret> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| Secret::new(token.trim()))
}

fn answer(ok: bool, summary: impl Into<String>, extra: &Value) -> Json<Value> {
    Json(json!({"ok": ok, "summary": summary.into(), "detail": extra}))
}

#[derive(Debug, Deserialize)]
struct Ask {
    action: String,
}

/// Exchanges the user's token for the MCP server and keeps the result.
async fn hop(st: &AgentState, user: &Secret, scope: &str) -> Result<Secret, String> {
    let user_view = TokenView::of(user.expose()).unwrap_or_default();
    let key = (user_view.jti.clone().or(user_view.sub.clone()).unwrap_or_default(), scope.to_owned());
    if st.config.cache {
        let cached = st.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned();
        if let Some(t) = cached {
            let view = TokenView::of(t.expose());
            if view.as_ref().and_then(|v| v.exp).is_some_and(|exp| exp - now_s() > CACHE_MARGIN_S) {
                st.journal.append(
                    &Entry::new("agent", "exchange", true)
                        .token(view)
                        .detail(json!({"audience": st.config.mcp_audience, "scope": scope, "cached": true})),
                );
                *st.last_hop.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(t.clone());
                return Ok(t);
            }
        }
    }
    let actor = if st.config.delegate {
        match exchange::client_token(&st.http, &st.config.exchange_endpoint, &st.config.creds).await {
            Ok(t) => Some(t),
            Err(e) => {
                let why = format!("the agent could not get its own actor token: {e}");
                st.journal.append(&Entry::new("agent", "exchange", false).reason(why.clone()));
                return Err(why);
            }
        }
    } else {
        None
    };
    let request = Request {
        subject_token: user,
        audience: &st.config.mcp_audience,
        scope: Some(scope),
        actor_token: actor.as_ref(),
    };
    let detail =
        json!({"audience": st.config.mcp_audience, "scope": scope, "actor_token": actor.is_some(), "cached": false});
    match exchange::exchange(&st.http, &st.config.exchange_endpoint, &st.config.creds, &request).await {
        Ok(t) => {
            st.journal.append(
                &Entry::new("agent", "exchange", true)
                    .status(200)
                    .token(TokenView::of(t.access_token.expose()))
                    .detail(detail),
            );
            *st.last_hop.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(t.access_token.clone());
            if st.config.cache {
                st.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, t.access_token.clone());
            }
            Ok(t.access_token)
        }
        Err(e) => {
            let mut entry = Entry::new("agent", "exchange", false).reason(e.to_string()).detail(detail);
            if let Some(s) = e.status() {
                entry = entry.status(s);
            }
            st.journal.append(&entry);
            Err(e.to_string())
        }
    }
}

async fn ask(State(st): State<AgentState>, headers: HeaderMap, Json(a): Json<Ask>) -> Json<Value> {
    let Some(user) = bearer(&headers) else {
        return answer(false, "no user token: log in to lab-web first", &Value::Null);
    };
    let (tool, scope, args) = match a.action.as_str() {
        "read" => ("read_records", "records:read", json!({})),
        "write" => ("write_record", "records:write", json!({"text": "written by the agent"})),
        other => return answer(false, format!("unknown action {other:?} (read or write)"), &Value::Null),
    };
    let token = match hop(&st, &user, scope).await {
        Ok(t) => t,
        Err(why) => return answer(false, format!("the exchange for the MCP server was refused: {why}"), &Value::Null),
    };
    match crate::mcp::call_tool(&st.http, &st.config.mcp_url, &token, tool, args).await {
        Ok(out) => {
            st.journal
                .append(&Entry::new("agent", "call", !out.is_error).detail(json!({"tool": tool, "result": out.text})));
            let summary = if out.is_error {
                format!("the MCP tool {tool} failed: {}", out.text)
            } else {
                format!("the MCP tool {tool} answered: {}", out.text)
            };
            answer(!out.is_error, summary, &Value::Null)
        }
        Err(e) => {
            let why = format!("the MCP server refused the call: {e}");
            st.journal.append(&Entry::new("agent", "call", false).reason(why.clone()).detail(json!({"tool": tool})));
            answer(false, why, &Value::Null)
        }
    }
}

/// The wrong-audience demonstration: the agent sends its token for the MCP
/// server straight to the API, which must refuse it (its `aud` is not the
/// API's).
async fn replay(State(st): State<AgentState>, headers: HeaderMap) -> Json<Value> {
    let Some(user) = bearer(&headers) else {
        return answer(false, "no user token: log in to lab-web first", &Value::Null);
    };
    let held = st.last_hop.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let token = match held {
        Some(t) => t,
        None => match hop(&st, &user, "records:read").await {
            Ok(t) => t,
            Err(why) => return answer(false, format!("no token for the MCP server to replay: {why}"), &Value::Null),
        },
    };
    let resp = st.http.get(format!("{}/records", st.config.api_url)).bearer_auth(token.expose()).send().await;
    let (status, body) = match resp {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => return answer(false, format!("the API could not be reached: {}", e.without_url()), &Value::Null),
    };
    let refused = status == 401 || status == 403;
    st.journal.append(
        &Entry::new("agent", "replay", refused)
            .status(status)
            .token(TokenView::of(token.expose()))
            .detail(json!({"target": "api"})),
    );
    if refused {
        answer(
            true,
            format!("the API refused the MCP server's token ({status}), as it must: its audience is not the API"),
            &Value::Null,
        )
    } else {
        answer(false, format!("the API accepted a token for another audience ({status}): {body}"), &Value::Null)
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How long [`watch`] keeps trying.
pub const WATCH_FOR: Duration = Duration::from_secs(15);

#[derive(Debug, Deserialize)]
struct Watch {
    /// When the user's session was ended (ms since the epoch).
    since_ms: u64,
}

/// After the user's session ended: calls the MCP server with the agent's
/// token every 100 ms until it is refused, and reports how long that took
/// from the logout. A chain whose revocation reaches every hop dies within
/// moments; one checked by signature alone lives until its `exp`.
async fn watch(State(st): State<AgentState>, Json(w): Json<Watch>) -> Json<Value> {
    let held = st.last_hop.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let Some(token) = held else {
        return answer(
            false,
            "the agent holds no token for the MCP server: ask it to read records first",
            &Value::Null,
        );
    };
    let started = Instant::now();
    let mut polls = 0u32;
    loop {
        polls += 1;
        let r = crate::mcp::call_tool(&st.http, &st.config.mcp_url, &token, "read_records", json!({})).await;
        let now_ms = crate::journal::Entry::new("agent", "watch", true).at_ms;
        let latency_ms = now_ms.saturating_sub(w.since_ms);
        match r {
            Err(crate::mcp::McpCallError::Unauthorized { status, .. }) => {
                st.journal.append(
                    &Entry::new("agent", "watch", true)
                        .status(status)
                        .token(TokenView::of(token.expose()))
                        .detail(json!({"latency_ms": latency_ms, "polls": polls})),
                );
                return answer(
                    true,
                    format!(
                        "the MCP server refused the agent's token {latency_ms} ms after the logout ({polls} tries)"
                    ),
                    &Value::Null,
                );
            }
            _ if started.elapsed() >= WATCH_FOR => {
                let why = format!(
                    "the MCP server still accepted the agent's token {} s after the logout",
                    WATCH_FOR.as_secs()
                );
                st.journal.append(
                    &Entry::new("agent", "watch", false)
                        .reason(why.clone())
                        .token(TokenView::of(token.expose()))
                        .detail(json!({"latency_ms": latency_ms, "polls": polls})),
                );
                return answer(false, why, &Value::Null);
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
