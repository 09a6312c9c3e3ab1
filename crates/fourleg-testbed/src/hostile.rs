//! A hostile target: the conformant test bed behind a layer that answers the
//! way a malicious or broken server might, to prove that the harness bounds
//! what it reads, keeps going, and never lets a target's text do harm in a
//! report. Every error answer carries script and markup in
//! `error_description` and echoes back the caller's client secret, password
//! and tokens; the JWKS holds thousands of junk keys beside the real ones;
//! revocation answers with bytes that are not UTF-8; logout answers with a
//! body of several megabytes.
//!
//! The markers below are what the tests look for in rendered reports.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{json, Value};

/// Script a report must never run: it sets `window.__fourleg_pwned`.
pub const SCRIPT: &str = "<script>window.__fourleg_pwned = 1</script>";
/// Markup with an event handler, the same.
pub const MARKUP: &str = "<img src=x onerror=\"window.__fourleg_pwned = 2\">";
/// Junk keys added to the JWKS.
pub const JUNK_KEYS: usize = 5000;
/// Size of the logout answer.
pub const HUGE_BODY: usize = 8 * 1024 * 1024;

/// Bodies are buffered to be rewritten; the test bed's own are small.
const BUFFER: usize = 64 * 1024 * 1024;

/// The layer (use with `axum::middleware::from_fn`).
pub async fn layer(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let authorization =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default();
    let (parts, body) = req.into_parts();
    let form = to_bytes(body, BUFFER).await.unwrap_or_default();
    let echoed = echo_of(&form, &authorization);
    let resp = next.run(Request::from_parts(parts, Body::from(form))).await;
    match path.as_str() {
        "/jwks" => with_junk_keys(resp).await,
        "/revoke" if resp.status().is_success() => raw(StatusCode::OK, vec![0xff, 0xfe, 0xfd, b'{', 0xc3, 0x28]),
        "/logout" if resp.status().is_success() => raw(StatusCode::OK, vec![b'A'; HUGE_BODY]),
        _ if resp.status().is_client_error() => hostile_error(resp, &echoed).await,
        _ => resp,
    }
}

/// Whatever the caller sent that a careless server would echo: form values
/// (secrets, tokens, passwords) and the Authorization header, decoded.
fn echo_of(form: &[u8], authorization: &str) -> String {
    let mut parts: Vec<String> = url::form_urlencoded::parse(form)
        .filter(|(k, _)| {
            matches!(&**k, "client_secret" | "password" | "subject_token" | "actor_token" | "token" | "refresh_token")
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if let Some(basic) = authorization.strip_prefix("Basic ") {
        use base64::Engine as _;
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(basic) {
            parts.push(format!("basic={}", String::from_utf8_lossy(&raw)));
        }
    }
    if let Some(bearer) = authorization.strip_prefix("Bearer ") {
        parts.push(format!("bearer={bearer}"));
    }
    parts.join(" ")
}

async fn hostile_error(resp: Response, echoed: &str) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, BUFFER).await.unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"error": "invalid_request"}));
    if let Value::Object(m) = &mut v {
        let said = m.get("error_description").and_then(Value::as_str).unwrap_or_default().to_owned();
        m.insert("error_description".into(), Value::String(format!("{SCRIPT}{MARKUP} {said} you sent: {echoed}.")));
        m.insert("error_uri".into(), Value::String(format!("javascript:alert(1)//{echoed}")));
    }
    if let Some(w) = parts.headers.get(header::WWW_AUTHENTICATE).and_then(|h| h.to_str().ok()) {
        let w = format!("{w}, error_description=\"{}\"", echoed.replace('"', "'"));
        if let Ok(h) = HeaderValue::from_str(&w) {
            parts.headers.insert(header::WWW_AUTHENTICATE, h);
        }
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(v.to_string()))
}

async fn with_junk_keys(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let bytes = to_bytes(body, BUFFER).await.unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({"keys": []}));
    if let Some(keys) = v["keys"].as_array_mut() {
        let n = "x".repeat(342);
        // Junk after the real keys, so a harness that reads them in order
        // must get past thousands of them, or bound its read.
        keys.extend((0..JUNK_KEYS).map(|i| json!({"kty": "RSA", "kid": format!("junk-{i}"), "n": n, "e": "AQAB"})));
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(v.to_string()))
}

fn raw(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
