//! The MCP server of the demo chain, on the official Rust SDK (`rmcp`, its
//! streamable HTTP transport mounted on axum at `/mcp`), and the small
//! client the agent calls it with.
//!
//! **Protected per the MCP authorization specification (2025-06-18).** Every
//! request to `/mcp` must carry a bearer token whose audience is this server
//! (the spec's "Token Audience Binding and Validation", RFC 8707 §2);
//! otherwise it is answered 401 with a `WWW-Authenticate` challenge whose
//! `resource_metadata` points at this server's protected resource metadata
//! (RFC 9728 §5.1), served at `/.well-known/oauth-protected-resource/mcp`
//! (RFC 9728 §3.1) and, for clients that only try the root, at
//! `/.well-known/oauth-protected-resource`.
//!
//! **No token passthrough.** The spec forbids an MCP server to forward the
//! token it received to an upstream API. Each tool exchanges the incoming
//! token at the token endpoint for one whose audience is the records API
//! (RFC 8693 §2.1) and calls the API with that one.
//!
//! The check runs as an axum middleware in front of rmcp's service; the
//! validated token reaches the tool through the request's extensions (rmcp
//! puts the HTTP request's `Parts` into the MCP request context).
//!
//! Journal: `mcp`/`request` for each refused HTTP request (in the
//! middleware) and for each accepted tool call (in the tool, once per call
//! rather than once per transport message), `mcp`/`exchange` for the
//! exchange, `mcp`/`call` for the API's answer.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fourleg_core::Secret;
use rmcp::handler::server::tool::Extension;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{self, Validator};
use crate::exchange::{self, Request as ExchangeRequest};
use crate::{ClientCreds, Entry, Journal, TokenView};

/// RFC 9728 §3: the well-known path of protected resource metadata.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";
/// The MCP protocol version the client offers (the authorization spec's).
pub const PROTOCOL_VERSION: &str = "2025-06-18";
/// The scopes the tools ask the exchange for, advertised in the metadata.
pub const SCOPES: [&str; 2] = [crate::api::READ_SCOPE, crate::api::WRITE_SCOPE];

/// What the MCP server needs to run.
#[derive(Debug, Clone)]
pub struct McpState {
    /// Accepts tokens whose `aud` is the MCP server's.
    pub validator: Validator,
    pub journal: Journal,
    pub http: reqwest::Client,
    /// Where the tools exchange the incoming token (RFC 8693 §2.1).
    pub exchange_endpoint: String,
    /// The MCP server's own client credentials at that endpoint.
    pub creds: ClientCreds,
    /// The records API's base URL.
    pub api_url: String,
    /// The audience the tools ask the exchange for.
    pub api_audience: String,
    /// This server's public URL, `…/mcp`: the `resource` of its metadata
    /// (RFC 9728 §2).
    pub resource_url: String,
    /// The authorization servers the metadata names (RFC 9728 §2).
    pub authorization_servers: Vec<String>,
    /// Present the MCP server's own client_credentials token as
    /// `actor_token` (delegation, RFC 8693 §1.1): the issued token's `act`
    /// then nests the MCP server over the agent (§4.1).
    pub delegate: bool,
}

/// The validated incoming token, put in the request's extensions by the
/// middleware for the tools.
#[derive(Debug, Clone)]
struct Caller {
    token: Secret,
    view: TokenView,
}

/// The MCP server's routes: `/mcp` (rmcp's streamable HTTP service behind
/// the bearer check) and the RFC 9728 metadata.
pub fn router(state: McpState) -> Router {
    // rmcp refuses Host headers it does not know (DNS rebinding): loopback
    // by default, plus the host of the public URL.
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(h) = url::Url::parse(&state.resource_url).ok().and_then(|u| u.host_str().map(str::to_owned)) {
        hosts.push(h);
    }
    let config = StreamableHttpServerConfig::default().with_allowed_hosts(hosts);
    let for_tools = state.clone();
    let service = StreamableHttpService::new(
        move || Ok(Tools { st: for_tools.clone() }),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let doc = Arc::new(metadata(&state));
    let serve_doc = move || {
        let doc = Arc::clone(&doc);
        async move { Json((*doc).clone()) }
    };
    Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(state, guard))
        .route(&format!("{WELL_KNOWN}/mcp"), get(serve_doc.clone()))
        .route(WELL_KNOWN, get(serve_doc))
}

/// RFC 9728 §2: the protected resource metadata of this server.
fn metadata(st: &McpState) -> Value {
    json!({
        "resource": st.resource_url,
        "authorization_servers": st.authorization_servers,
        "scopes_supported": SCOPES,
        "bearer_methods_supported": ["header"],
        "resource_name": "fourleg demo MCP server",
    })
}

/// RFC 9728 §3.1: the metadata URL of `resource`, the well-known path
/// inserted between its origin and its path
/// (`http://h:p/mcp` → `http://h:p/.well-known/oauth-protected-resource/mcp`).
#[must_use]
pub fn metadata_url(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(u) => {
            let path = u.path().trim_end_matches('/');
            format!("{}{WELL_KNOWN}{path}", u.origin().ascii_serialization())
        }
        Err(_) => format!("{}{WELL_KNOWN}", resource.trim_end_matches('/')),
    }
}

/// The bearer check in front of `/mcp` (MCP authorization spec, "Access
/// Token Usage"): a valid token for this server goes on to rmcp with its
/// claims in the request extensions; anything else is a 401 whose challenge
/// carries `resource_metadata` (RFC 9728 §5.1) and, when a token was
/// presented, `error="invalid_token"` (RFC 6750 §3.1).
async fn guard(State(st): State<McpState>, req: Request, next: Next) -> Response {
    match st.validator.validate(req.headers()).await {
        Ok((token, view)) => {
            // A tool's scope is checked here, before the tool acts (MCP
            // authorization 2025-11-25, Scope Challenge Handling): the API
            // behind the server never sees a call its caller may not make.
            let (parts, body) = req.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, MAX_MESSAGE_BYTES).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "the MCP message is too large").into_response();
            };
            if let Some((tool, needs)) = missing_tool_scope(&bytes, &view) {
                return insufficient_scope(&st, &view, &tool, needs);
            }
            let mut req = Request::from_parts(parts, axum::body::Body::from(bytes));
            req.extensions_mut().insert(Caller { token, view });
            next.run(req).await
        }
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::UNAUTHORIZED);
            st.journal.append(
                &Entry::new("mcp", "request", false)
                    .status(status.as_u16())
                    .reason(refusal.reason())
                    .token(auth::presented(req.headers()))
                    .detail(json!({"method": req.method().as_str(), "path": req.uri().path()})),
            );
            let resource_metadata = metadata_url(&st.resource_url);
            let params = refusal.challenge_params();
            let challenge = auth::bearer_challenge(
                std::iter::once(("resource_metadata", resource_metadata.as_str()))
                    .chain(params.iter().map(|(k, v)| (*k, v.as_str()))),
            );
            let body = Json(json!({
                "error": refusal.error_code().unwrap_or("unauthorized"),
                "error_description": refusal.reason(),
            }));
            let mut resp = (status, body).into_response();
            if status == StatusCode::UNAUTHORIZED {
                if let Ok(v) = HeaderValue::from_str(&challenge) {
                    resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
                }
            }
            resp
        }
    }
}

/// The largest MCP message the server reads.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The scope each tool needs of the caller's token.
pub const TOOL_SCOPES: [(&str, &str); 2] =
    [("read_records", crate::api::READ_SCOPE), ("write_record", crate::api::WRITE_SCOPE)];

/// The tool a `tools/call` message (or one of a batch) names, with the
/// scope it needs, when the caller's token lacks it.
fn missing_tool_scope(body: &[u8], caller: &TokenView) -> Option<(String, &'static str)> {
    let message: Value = serde_json::from_slice(body).ok()?;
    let messages = match message {
        Value::Array(list) => list,
        one => vec![one],
    };
    messages.iter().filter(|m| m["method"] == "tools/call").find_map(|m| {
        let name = m["params"]["name"].as_str()?;
        let (_, needs) = TOOL_SCOPES.iter().find(|(t, _)| *t == name)?;
        (!caller.has_scope(needs)).then(|| (name.to_owned(), *needs))
    })
}

/// RFC 6750 §3.1 and MCP authorization 2025-11-25 ("Runtime Insufficient
/// Scope Errors"): 403 with a Bearer challenge naming `insufficient_scope`,
/// the scopes the call needs (those the caller holds among the server's,
/// and the missing one) and the metadata URL.
fn insufficient_scope(st: &McpState, view: &TokenView, tool: &str, needs: &str) -> Response {
    let reason = format!(
        "the tool {tool} needs the scope {needs}, which the token's scope {:?} lacks",
        view.scope.as_deref().unwrap_or("")
    );
    st.journal.append(
        &Entry::new("mcp", "request", false)
            .status(403)
            .reason(reason.clone())
            .token(Some(view.clone()))
            .detail(json!({"tool": tool, "needs": needs})),
    );
    let mut scopes: Vec<&str> = SCOPES.iter().copied().filter(|s| view.has_scope(s)).collect();
    scopes.push(needs);
    let scope = scopes.join(" ");
    let resource_metadata = metadata_url(&st.resource_url);
    let challenge = auth::bearer_challenge([
        ("error", "insufficient_scope"),
        ("scope", scope.as_str()),
        ("resource_metadata", resource_metadata.as_str()),
        ("error_description", reason.as_str()),
    ]);
    let body = Json(json!({"error": "insufficient_scope", "error_description": reason, "scope": scope}));
    let mut resp = (StatusCode::FORBIDDEN, body).into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

/// The arguments of `write_record`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct WriteArgs {
    /// The record's text.
    pub text: String,
}

/// The MCP server's tools, one instance per session.
#[derive(Debug, Clone)]
struct Tools {
    st: McpState,
}

#[tool_router]
impl Tools {
    /// Reads the records API's records for the user.
    #[tool(description = "Read the records of the records API, on behalf of the user whose token reached this server.")]
    async fn read_records(&self, Extension(parts): Extension<Parts>) -> CallToolResult {
        self.act(&parts, "read_records", None).await
    }

    /// Writes a record as the user.
    #[tool(description = "Write a record to the records API, on behalf of the user whose token reached this server.")]
    async fn write_record(
        &self,
        Extension(parts): Extension<Parts>,
        Parameters(args): Parameters<WriteArgs>,
    ) -> CallToolResult {
        self.act(&parts, "write_record", Some(args.text)).await
    }
}

#[tool_handler(
    name = "fourleg-demo-mcp",
    instructions = "The fourleg lab's MCP server: read_records and write_record call the records API with a token obtained by RFC 8693 token exchange, never with yours."
)]
impl ServerHandler for Tools {}

fn tool_error(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

impl Tools {
    /// One tool call: exchange the incoming token for the API (RFC 8693
    /// §2.1), then call the API with the exchanged token. Refusals come
    /// back as tool errors (`isError`), so the agent can show them.
    async fn act(&self, parts: &Parts, tool: &str, write: Option<String>) -> CallToolResult {
        let st = &self.st;
        let Some(caller) = parts.extensions.get::<Caller>() else {
            return tool_error("internal error: the request reached the tool without a validated token");
        };
        let scope = if write.is_some() { crate::api::WRITE_SCOPE } else { crate::api::READ_SCOPE };
        st.journal.append(
            &Entry::new("mcp", "request", true)
                .status(200)
                .token(Some(caller.view.clone()))
                .detail(json!({"tool": tool, "acted_for": caller.view.sub, "actors": caller.view.actors()})),
        );

        // RFC 8693 §2.1: the incoming token is the subject_token; the API's
        // audience is asked for. The incoming token goes nowhere else.
        let actor = if st.delegate {
            match exchange::client_token(&st.http, &st.exchange_endpoint, &st.creds).await {
                Ok(t) => Some(t),
                Err(e) => {
                    let why = format!("the MCP server could not get its own actor token: {e}");
                    st.journal.append(&Entry::new("mcp", "exchange", false).reason(why.clone()));
                    return tool_error(why);
                }
            }
        } else {
            None
        };
        let request = ExchangeRequest {
            subject_token: &caller.token,
            audience: &st.api_audience,
            scope: Some(scope),
            actor_token: actor.as_ref(),
        };
        let detail = json!({"audience": st.api_audience, "scope": scope, "tool": tool});
        let exchanged = match exchange::exchange(&st.http, &st.exchange_endpoint, &st.creds, &request).await {
            Ok(t) => {
                st.journal.append(
                    &Entry::new("mcp", "exchange", true)
                        .status(200)
                        .token(TokenView::of(t.access_token.expose()))
                        .detail(detail),
                );
                t.access_token
            }
            Err(e) => {
                let mut entry = Entry::new("mcp", "exchange", false).reason(e.to_string()).detail(detail);
                if let Some(s) = e.status() {
                    entry = entry.status(s);
                }
                st.journal.append(&entry);
                return tool_error(format!(
                    "the MCP server could not get a token for the records API ({}): {e}",
                    st.api_audience
                ));
            }
        };

        let url = format!("{}/records", st.api_url.trim_end_matches('/'));
        let (method, call) = match &write {
            None => ("GET", st.http.get(&url)),
            Some(text) => ("POST", st.http.post(&url).json(&json!({"text": text}))),
        };
        let detail = json!({"method": method, "url": url, "audience": st.api_audience});
        let resp = match call.bearer_auth(exchanged.expose()).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = format!("the records API could not be reached: {}", e.without_url());
                st.journal.append(&Entry::new("mcp", "call", false).reason(why.clone()).detail(detail));
                return tool_error(why);
            }
        };
        let status = resp.status();
        let challenge = resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            st.journal.append(&Entry::new("mcp", "call", true).status(status.as_u16()).detail(detail));
            return CallToolResult::success(vec![ContentBlock::text(body)]);
        }
        let why = format!(
            "the records API refused the exchanged token ({}): {}",
            status.as_u16(),
            challenge.as_deref().unwrap_or(body.as_str())
        );
        st.journal.append(&Entry::new("mcp", "call", false).status(status.as_u16()).reason(why.clone()).detail(detail));
        tool_error(why)
    }
}

/// What a tool answered: its text content and whether it is a tool error
/// (`isError`, MCP "Tools": errors a model or a user should see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutcome {
    pub is_error: bool,
    pub text: String,
}

/// Why a tool call did not reach a tool result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpCallError {
    /// The server refused the token: 401 (RFC 6750 §3.1, with the
    /// `resource_metadata` of RFC 9728 §5.1) or 403 (`insufficient_scope`).
    #[error("the MCP server refused the token ({status}){}", www_authenticate.as_deref().map(|c| format!(": WWW-Authenticate: {c}")).unwrap_or_default())]
    Unauthorized { status: u16, www_authenticate: Option<String> },
    /// Anything else: unreachable, a protocol error, an unexpected answer.
    #[error("{0}")]
    Other(String),
}

/// Calls `tool` with `arguments` on the MCP server at `mcp_url` with
/// `bearer` (MCP streamable HTTP transport, 2025-06-18): `initialize`,
/// `notifications/initialized`, `tools/call`, then `DELETE` of the session.
/// Answers may be JSON or an SSE stream; the `Mcp-Session-Id` the server
/// hands out is sent back on every later request.
pub async fn call_tool(
    http: &reqwest::Client,
    mcp_url: &str,
    bearer: &Secret,
    tool: &str,
    arguments: Value,
) -> Result<ToolOutcome, McpCallError> {
    let mut s = Session { http, url: mcp_url, bearer, id: None, version: None };
    let init = s
        .request(
            1,
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "fourleg-demo-agent", "version": env!("CARGO_PKG_VERSION")},
            }),
        )
        .await?;
    s.version = Some(init.get("protocolVersion").and_then(Value::as_str).unwrap_or(PROTOCOL_VERSION).to_owned());
    let result = async {
        s.notify("notifications/initialized").await?;
        s.request(2, "tools/call", json!({"name": tool, "arguments": arguments})).await
    }
    .await;
    s.close().await;
    let result = result?;
    let text: Vec<&str> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|c| c.iter().filter(|b| b["type"] == "text").filter_map(|b| b["text"].as_str()).collect())
        .unwrap_or_default();
    let text = if text.is_empty() {
        result.get("structuredContent").map(Value::to_string).unwrap_or_default()
    } else {
        text.join("\n")
    };
    Ok(ToolOutcome { is_error: result.get("isError").and_then(Value::as_bool).unwrap_or(false), text })
}

/// A client session of the streamable HTTP transport.
struct Session<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    bearer: &'a Secret,
    /// `Mcp-Session-Id`, once the server has given one.
    id: Option<String>,
    /// The negotiated version, sent as `MCP-Protocol-Version` after
    /// initialization.
    version: Option<String>,
}

impl Session<'_> {
    async fn post(&self, message: &Value, what: &str) -> Result<reqwest::Response, McpCallError> {
        let mut r = self
            .http
            .post(self.url)
            .bearer_auth(self.bearer.expose())
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(message);
        if let Some(id) = &self.id {
            r = r.header("Mcp-Session-Id", id);
        }
        if let Some(v) = &self.version {
            r = r.header("MCP-Protocol-Version", v);
        }
        let resp = r.send().await.map_err(|e| {
            McpCallError::Other(format!("the MCP server at {} could not be reached: {}", self.url, e.without_url()))
        })?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            let www_authenticate =
                resp.headers().get(header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            return Err(McpCallError::Unauthorized { status, www_authenticate });
        }
        if !resp.status().is_success() {
            let body = resp.text().await.unwrap_or_default();
            let body: String = body.chars().take(300).collect();
            return Err(McpCallError::Other(format!("the MCP server answered {status} to {what}: {body}")));
        }
        Ok(resp)
    }

    /// A JSON-RPC request; its `result`.
    async fn request(&mut self, id: u64, method: &str, params: Value) -> Result<Value, McpCallError> {
        let resp = self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}), method).await?;
        if self.id.is_none() {
            self.id = resp.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        }
        let answer = read_answer(resp, id, method).await?;
        if let Some(e) = answer.get("error") {
            return Err(McpCallError::Other(format!(
                "the MCP server answered {method} with JSON-RPC error {}: {}",
                e["code"],
                e["message"].as_str().unwrap_or("")
            )));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| McpCallError::Other(format!("the MCP server's answer to {method} has no result")))
    }

    /// A JSON-RPC notification (answered 202 Accepted).
    async fn notify(&self, method: &str) -> Result<(), McpCallError> {
        self.post(&json!({"jsonrpc": "2.0", "method": method}), method).await.map(drop)
    }

    /// Ends the session (transport spec: clients SHOULD send DELETE); the
    /// answer does not matter.
    async fn close(&self) {
        if let Some(id) = &self.id {
            let _ =
                self.http.delete(self.url).bearer_auth(self.bearer.expose()).header("Mcp-Session-Id", id).send().await;
        }
    }
}

/// The JSON-RPC response with `id` in a POST's answer: a JSON body (one
/// message or a batch) or an SSE stream read until that response arrives.
async fn read_answer(mut resp: reqwest::Response, id: u64, method: &str) -> Result<Value, McpCallError> {
    let is_sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.trim_start().starts_with("text/event-stream"));
    let unreadable = |e: reqwest::Error| {
        McpCallError::Other(format!("the MCP server's answer to {method} could not be read: {}", e.without_url()))
    };
    if !is_sse {
        let body: Value = resp.json().await.map_err(unreadable)?;
        return answer_with_id(&body, id)
            .ok_or_else(|| McpCallError::Other(format!("the MCP server's answer to {method} is not its response")));
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        while let Some(data) = next_event(&mut buf) {
            if let Some(v) = serde_json::from_str::<Value>(&data).ok().and_then(|m| answer_with_id(&m, id)) {
                return Ok(v);
            }
        }
        match resp.chunk().await.map_err(unreadable)? {
            Some(chunk) => buf.extend(chunk.iter().filter(|b| **b != b'\r')),
            None => break,
        }
    }
    // A last event without its blank line.
    buf.extend_from_slice(b"\n\n");
    if let Some(v) = next_event(&mut buf).and_then(|d| serde_json::from_str::<Value>(&d).ok()) {
        if let Some(v) = answer_with_id(&v, id) {
            return Ok(v);
        }
    }
    Err(McpCallError::Other(format!("the MCP server's event stream ended without the response to {method}")))
}

/// The response with `id` in a message or a batch.
fn answer_with_id(message: &Value, id: u64) -> Option<Value> {
    let is_it = |m: &Value| m.get("id") == Some(&json!(id)) && (m.get("result").is_some() || m.get("error").is_some());
    match message {
        Value::Array(batch) => batch.iter().find(|m| is_it(m)).cloned(),
        m if is_it(m) => Some(m.clone()),
        _ => None,
    }
}

/// Takes the first complete SSE event (up to a blank line) off `buf` and
/// returns its `data` lines joined (HTML Living Standard, "Server-sent
/// events", §9.2.6). `buf` holds `\n` line ends only.
fn next_event(buf: &mut Vec<u8>) -> Option<String> {
    let end = buf.windows(2).position(|w| w == b"\n\n")?;
    let event: Vec<u8> = buf.drain(..end + 2).collect();
    let event = String::from_utf8_lossy(&event);
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data"))
        .filter_map(|rest| match rest.strip_prefix(':') {
            Some(v) => Some(v.strip_prefix(' ').unwrap_or(v)),
            None if rest.is_empty() => Some(""),
            None => None,
        })
        .collect();
    Some(data.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use axum::extract::Form;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use base64::Engine as _;
    use serde_json::json;

    use super::*;
    use crate::auth::testkit::{bind, http, serve, serve_at, sign, TestIssuer};

    /// What the fake token endpoint received: subject token and client.
    #[derive(Debug, Clone)]
    struct Seen {
        client_id: String,
        subject_token: String,
        audience: String,
    }

    struct Chain {
        iss: TestIssuer,
        mcp_url: String,
        origin: String,
        journal: Journal,
        seen: Arc<Mutex<Vec<Seen>>>,
        _dir: tempfile::TempDir,
    }

    impl Chain {
        fn entries(&self, component: &str, event: &str) -> Vec<Entry> {
            self.journal.read().into_iter().filter(|e| e.component == component && e.event == event).collect()
        }

        /// A token for the MCP server, as the agent would hold it.
        fn incoming(&self, scope: &str, extra: &Value) -> Secret {
            Secret::new(self.iss.token("mcp-server", scope, extra))
        }

        async fn call(&self, token: &Secret, tool: &str, args: Value) -> Result<ToolOutcome, McpCallError> {
            call_tool(&http(), &self.mcp_url, token, tool, args).await
        }
    }

    /// A fake RFC 8693 token endpoint: refuses the subject `mallory`, grants
    /// the requested scopes the subject token has, for the requested
    /// audience, with `act: {client_id}` of the calling client.
    fn token_endpoint(iss: &TestIssuer, seen: Arc<Mutex<Vec<Seen>>>) -> Router {
        let signer = Arc::clone(&iss.signer);
        let issuer = iss.issuer.clone();
        let handler = move |headers: HeaderMap, Form(form): Form<HashMap<String, String>>| {
            let (signer, issuer, seen) = (Arc::clone(&signer), issuer.clone(), Arc::clone(&seen));
            async move {
                let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(basic.trim_start_matches("Basic "))
                    .unwrap_or_default();
                let client_id = String::from_utf8_lossy(&decoded).split(':').next().unwrap_or("").to_owned();
                let subject_token = form.get("subject_token").cloned().unwrap_or_default();
                let audience = form.get("audience").cloned().unwrap_or_default();
                seen.lock().unwrap().push(Seen {
                    client_id: client_id.clone(),
                    subject_token: subject_token.clone(),
                    audience: audience.clone(),
                });
                let subject = TokenView::of(&subject_token).unwrap_or_default();
                if subject.sub.as_deref() == Some("mallory") {
                    return (
                        StatusCode::BAD_REQUEST,
                        Json(json!({"error": "invalid_grant", "error_description": "mallory may not be delegated"})),
                    );
                }
                let requested = form.get("scope").cloned().unwrap_or_default();
                let granted: Vec<&str> = requested.split(' ').filter(|s| subject.has_scope(s)).collect();
                let token = sign(
                    &signer,
                    &issuer,
                    &audience,
                    &granted.join(" "),
                    &json!({"sub": subject.sub, "jti": "exchanged", "act": {"client_id": client_id}}),
                );
                (
                    StatusCode::OK,
                    Json(json!({
                        "access_token": token,
                        "issued_token_type": exchange::ACCESS_TOKEN_TYPE,
                        "token_type": "Bearer",
                        "expires_in": 300,
                    })),
                )
            }
        };
        Router::new().route("/token", post(handler))
    }

    async fn chain() -> Chain {
        let iss = TestIssuer::start("k1").await;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path().join("journal.jsonl"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let token_url = format!("{}/token", serve(token_endpoint(&iss, Arc::clone(&seen))).await);
        let api_url = serve(crate::api::router(crate::api::ApiState {
            validator: Validator::new(http(), vec![iss.trust()], "records-api"),
            journal: journal.clone(),
        }))
        .await;
        let (listener, origin) = bind().await;
        let mcp_url = format!("{origin}/mcp");
        serve_at(
            listener,
            router(McpState {
                validator: Validator::new(http(), vec![iss.trust()], "mcp-server"),
                journal: journal.clone(),
                http: http(),
                exchange_endpoint: token_url,
                creds: ClientCreds { client_id: "mcp-server".into(), secret: Secret::new("mcp-secret") },
                api_url,
                api_audience: "records-api".into(),
                resource_url: mcp_url.clone(),
                authorization_servers: vec![iss.issuer.clone()],
                delegate: false,
            }),
        );
        Chain { iss, mcp_url, origin, journal, seen, _dir: dir }
    }

    #[tokio::test]
    async fn requests_without_a_token_for_this_server_get_401_pointing_at_the_metadata() {
        let c = chain().await;
        let expected_metadata = format!("{}/.well-known/oauth-protected-resource/mcp", c.origin);

        // No token: a challenge with resource_metadata and no error code.
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
        let resp = http()
            .post(&c.mcp_url)
            .header(header::ACCEPT, "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(
            crate::api::challenge_of(&resp).unwrap(),
            format!(r#"Bearer resource_metadata="{expected_metadata}""#)
        );

        // A token for the API, not for this server.
        let wrong = Secret::new(c.iss.token("records-api", "records:read", &json!({})));
        let err = c.call(&wrong, "read_records", json!({})).await.unwrap_err();
        let McpCallError::Unauthorized { status: 401, www_authenticate: Some(challenge) } = &err else {
            panic!("{err:?}");
        };
        assert!(
            challenge.starts_with(&format!(r#"Bearer resource_metadata="{expected_metadata}", error="invalid_token""#)),
            "{challenge}"
        );

        let refused = c.entries("mcp", "request");
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused.iter().all(|e| !e.ok && e.status == Some(401)));
        assert_eq!(refused[1].token.as_ref().unwrap().aud, vec!["records-api"]);
        assert!(c.seen.lock().unwrap().is_empty(), "nothing was exchanged");
        assert!(c.entries("api", "request").is_empty(), "nothing reached the API");
    }

    #[tokio::test]
    async fn the_protected_resource_metadata_names_this_server_and_its_issuers() {
        let c = chain().await;
        for path in [format!("{WELL_KNOWN}/mcp"), WELL_KNOWN.to_owned()] {
            let resp = http().get(format!("{}{path}", c.origin)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let doc: Value = resp.json().await.unwrap();
            assert_eq!(doc["resource"], json!(c.mcp_url), "{path}");
            assert_eq!(doc["authorization_servers"], json!([c.iss.issuer]), "{path}");
            assert_eq!(doc["scopes_supported"], json!(["records:read", "records:write"]), "{path}");
            assert_eq!(doc["bearer_methods_supported"], json!(["header"]), "{path}");
        }
        assert_eq!(metadata_url("http://h:1/mcp"), "http://h:1/.well-known/oauth-protected-resource/mcp");
        assert_eq!(metadata_url("http://h:1/"), "http://h:1/.well-known/oauth-protected-resource");
    }

    #[tokio::test]
    async fn a_tool_exchanges_the_incoming_token_and_the_api_sees_only_its_own_audience() {
        let c = chain().await;
        let incoming = c.incoming("openid records:read", &json!({"jti": "incoming"}));
        let out = c.call(&incoming, "read_records", json!({})).await.unwrap();
        assert!(!out.is_error, "{out:?}");
        let records: Value = serde_json::from_str(&out.text).unwrap();
        assert_eq!(records["records"].as_array().unwrap().len(), 3, "{}", out.text);

        // The token endpoint got the incoming token as subject_token, from
        // the MCP server's own client.
        let seen = c.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].subject_token, incoming.expose());
        assert_eq!((seen[0].client_id.as_str(), seen[0].audience.as_str()), ("mcp-server", "records-api"));

        // The API saw the exchanged token, never the incoming one.
        let api = c.entries("api", "request");
        assert_eq!(api.len(), 1);
        let t = api[0].token.as_ref().unwrap();
        assert!(api[0].ok);
        assert_eq!(t.aud, vec!["records-api"]);
        assert_eq!(t.jti.as_deref(), Some("exchanged"));
        assert_eq!(api[0].detail["actors"], json!(["mcp-server"]));
        assert_eq!(api[0].detail["acted_for"], "alice");

        let accepted = c.entries("mcp", "request");
        assert_eq!(accepted.len(), 1);
        assert!(accepted[0].ok);
        assert_eq!(accepted[0].token.as_ref().unwrap().jti.as_deref(), Some("incoming"));
        let ex = c.entries("mcp", "exchange");
        assert!(ex[0].ok);
        assert_eq!(ex[0].detail, json!({"audience": "records-api", "scope": "records:read", "tool": "read_records"}));
        assert_eq!(ex[0].token.as_ref().unwrap().aud, vec!["records-api"]);
        let call = c.entries("mcp", "call");
        assert_eq!((call[0].ok, call[0].status), (true, Some(200)));

        let text = std::fs::read_to_string(c.journal.path()).unwrap();
        assert!(fourleg_core::jwt::find_signed_jwts(&text).is_empty(), "no raw token in the journal: {text}");
    }

    #[tokio::test]
    async fn write_record_writes_with_the_scope_and_is_refused_403_without_it() {
        let c = chain().await;
        let writer = c.incoming("records:read records:write", &json!({}));
        let out = c.call(&writer, "write_record", json!({"text": "from the agent"})).await.unwrap();
        assert!(!out.is_error, "{out:?}");
        let body: Value = serde_json::from_str(&out.text).unwrap();
        assert_eq!(body["record"]["text"], "from the agent");
        assert_eq!(body["record"]["via"], json!(["mcp-server"]));

        // A reader's token lacks records:write: the MCP server refuses the
        // call itself, 403 insufficient_scope, before any exchange or call.
        let reader = c.incoming("records:read", &json!({}));
        let exchanges = c.entries("mcp", "exchange").len();
        let Err(McpCallError::Unauthorized { status, www_authenticate: Some(challenge) }) =
            c.call(&reader, "write_record", json!({"text": "sneaky"})).await
        else {
            panic!("a reader's write_record was not refused with a challenge");
        };
        assert_eq!(status, 403);
        assert!(challenge.contains(r#"error="insufficient_scope""#), "{challenge}");
        assert!(challenge.contains(r#"scope="records:read records:write""#), "{challenge}");
        assert!(challenge.contains("resource_metadata="), "{challenge}");
        assert_eq!(c.entries("mcp", "exchange").len(), exchanges, "the refused call exchanged nothing");
        assert_eq!(c.entries("mcp", "call").len(), 1, "the refused call reached no API");
        // The read tool still runs with that token.
        assert!(!c.call(&reader, "read_records", json!({})).await.unwrap().is_error);
    }

    #[tokio::test]
    async fn a_refused_exchange_is_a_tool_error_and_nothing_reaches_the_api() {
        let c = chain().await;
        let mallory = c.incoming("records:read", &json!({"sub": "mallory"}));
        let out = c.call(&mallory, "read_records", json!({})).await.unwrap();
        assert!(out.is_error, "{out:?}");
        assert!(out.text.contains("invalid_grant"), "{}", out.text);
        let ex = c.entries("mcp", "exchange");
        assert_eq!((ex[0].ok, ex[0].status), (false, Some(400)));
        assert!(c.entries("api", "request").is_empty());
    }

    #[tokio::test]
    async fn call_tool_reads_plain_json_answers_and_sends_the_negotiated_version() {
        // A server that answers JSON (a batch for the call) and gives no session.
        let versions = Arc::new(Mutex::new(Vec::new()));
        let v = Arc::clone(&versions);
        let handler = move |headers: HeaderMap, Json(m): Json<Value>| {
            let v = Arc::clone(&v);
            async move {
                let version = headers.get("mcp-protocol-version").and_then(|h| h.to_str().ok()).map(str::to_owned);
                v.lock().unwrap().push((m["method"].as_str().unwrap_or("").to_owned(), version));
                match m["method"].as_str() {
                    Some("initialize") => Json(json!({"jsonrpc": "2.0", "id": m["id"], "result": {
                        "protocolVersion": "2025-03-26", "capabilities": {"tools": {}},
                        "serverInfo": {"name": "fake", "version": "0"}}}))
                    .into_response(),
                    Some("tools/call") => Json(json!([{"jsonrpc": "2.0", "id": m["id"], "result": {
                        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "isError": true}}]))
                    .into_response(),
                    _ => StatusCode::ACCEPTED.into_response(),
                }
            }
        };
        let url = format!("{}/mcp", serve(Router::new().route("/mcp", post(handler))).await);
        let out = call_tool(&http(), &url, &Secret::new("t"), "read_records", json!({})).await.unwrap();
        assert_eq!(out, ToolOutcome { is_error: true, text: "a\nb".into() });
        let versions = versions.lock().unwrap().clone();
        let expected = [
            ("initialize".to_owned(), None),
            ("notifications/initialized".to_owned(), Some("2025-03-26".to_owned())),
            ("tools/call".to_owned(), Some("2025-03-26".to_owned())),
        ];
        assert_eq!(versions, expected);
    }

    #[test]
    fn sse_events_are_read_up_to_their_blank_line() {
        let mut buf = b"id: 0\nretry: 3000\ndata:\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\ndata: partial".to_vec();
        assert_eq!(next_event(&mut buf).as_deref(), Some(""));
        assert_eq!(next_event(&mut buf).as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(next_event(&mut buf), None);
        assert_eq!(buf, b"data: partial");
        let batch = json!([{"jsonrpc": "2.0", "method": "x"}, {"jsonrpc": "2.0", "id": 2, "result": {}}]);
        assert_eq!(answer_with_id(&batch, 2), Some(json!({"jsonrpc": "2.0", "id": 2, "result": {}})));
        assert_eq!(answer_with_id(&batch, 1), None);
    }
}
