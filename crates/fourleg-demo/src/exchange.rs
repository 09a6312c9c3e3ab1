//! The token exchange request the agent and the MCP server send (RFC 8693
//! §2.1), authenticated with `client_secret_basic` (RFC 6749 §2.3.1).

use fourleg_core::Secret;
use serde_json::Value;

use crate::ClientCreds;

/// RFC 8693 §3: the token type of an OAuth access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §2.1: the grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// A token obtained by an exchange: the token (secret) and its response's
/// other fields.
#[derive(Debug, Clone)]
pub struct Exchanged {
    pub access_token: Secret,
    pub issued_token_type: Option<String>,
    pub scope: Option<String>,
    pub expires_in: Option<u64>,
}

/// Why an exchange did not yield a token.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The server refused: its RFC 6749 §5.2 `error` and description.
    #[error("the token endpoint refused the exchange ({status}): {error}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Refused { status: u16, error: String, description: Option<String> },
    #[error("the token endpoint could not be reached: {0}")]
    Unreachable(String),
    #[error("the token endpoint answered {status} without a token")]
    Malformed { status: u16 },
}

impl ExchangeError {
    /// The HTTP status of a refusal, when the server answered.
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Refused { status, .. } | Self::Malformed { status } => Some(*status),
            Self::Unreachable(_) => None,
        }
    }
}

/// What to ask for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub subject_token: &'a Secret,
    /// RFC 8693 `audience`: the logical name of the next hop.
    pub audience: &'a str,
    /// Requested scope, space-separated (none: the server's default).
    pub scope: Option<&'a str>,
    /// An actor token (delegation, RFC 8693 §1.1), when the client presents one.
    pub actor_token: Option<&'a Secret>,
}

/// Exchanges `request.subject_token` at `endpoint` as `client`.
pub async fn exchange(
    http: &reqwest::Client,
    endpoint: &str,
    client: &ClientCreds,
    request: &Request<'_>,
) -> Result<Exchanged, ExchangeError> {
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", GRANT_TYPE),
        ("subject_token", request.subject_token.expose()),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("audience", request.audience),
    ];
    if let Some(s) = request.scope {
        form.push(("scope", s));
    }
    if let Some(a) = request.actor_token {
        form.push(("actor_token", a.expose()));
        form.push(("actor_token_type", ACCESS_TOKEN_TYPE));
    }
    let resp = http
        .post(endpoint)
        .basic_auth(form_encode(&client.client_id), Some(form_encode(client.secret.expose())))
        .form(&form)
        .send()
        .await
        .map_err(|e| ExchangeError::Unreachable(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let s = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    if (200..300).contains(&status) {
        let token = s("access_token").ok_or(ExchangeError::Malformed { status })?;
        return Ok(Exchanged {
            access_token: Secret::new(token),
            issued_token_type: s("issued_token_type"),
            scope: s("scope"),
            expires_in: body.get("expires_in").and_then(Value::as_u64),
        });
    }
    match s("error") {
        Some(error) => Err(ExchangeError::Refused { status, error, description: s("error_description") }),
        None => Err(ExchangeError::Malformed { status }),
    }
}

/// Client credentials for `client_secret_basic` are form-encoded before
/// base64 (RFC 6749 §2.3.1).
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A client_credentials token of `client` (its actor token, RFC 8693 §1.1).
pub async fn client_token(
    http: &reqwest::Client,
    endpoint: &str,
    client: &ClientCreds,
) -> Result<Secret, ExchangeError> {
    let resp = http
        .post(endpoint)
        .basic_auth(form_encode(&client.client_id), Some(form_encode(client.secret.expose())))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| ExchangeError::Unreachable(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match body.get("access_token").and_then(Value::as_str) {
        Some(t) if (200..300).contains(&status) => Ok(Secret::new(t)),
        _ => Err(ExchangeError::Refused {
            status,
            error: body.get("error").and_then(Value::as_str).unwrap_or("no token").to_owned(),
            description: body.get("error_description").and_then(Value::as_str).map(str::to_owned),
        }),
    }
}
