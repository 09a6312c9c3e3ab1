//! A scripted browser login: authorization code with PKCE S256 (RFC 6749
//! §4.1, RFC 7636) through the server's own HTML login form, as a person
//! would. No password grant needed.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::Secret;
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// Why a scripted login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("authorization endpoint answered {0}")]
    Authorize(u16),
    #[error("no login form in the authorization page (is the user already logged in, or is consent required?)")]
    NoForm,
    #[error("the login form answered {0} without a redirect (wrong username or password?)")]
    NoRedirect(u16),
    #[error("the redirect carries no code (error: {0})")]
    NoCode(String),
    #[error("the redirect carries another state: possible CSRF, or a misrouted redirect")]
    State,
    #[error("more than {MAX_REDIRECTS} redirects before the login form or the client's redirect URI")]
    TooManyRedirects,
    #[error("login transport: {0}")]
    Http(#[from] reqwest::Error),
    /// A login that failed every time it was tried.
    #[error("failed {attempts} times; the last: {last}")]
    Attempts { attempts: u32, last: Box<LoginError> },
    #[error("bad URL: {0}")]
    Url(#[from] url::ParseError),
}

impl LoginError {
    /// Whether trying again may succeed: the server answered oddly (a
    /// redirect or a server error where a page was due, no form yet, a
    /// dropped connection). A refused password (the form page again, or a
    /// client error), an error in the redirect, a wrong state or a bad URL
    /// are answers, and are not retried.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Authorize(status) | Self::NoRedirect(status) => *status >= 300 && !(400..500).contains(status),
            Self::NoForm | Self::TooManyRedirects | Self::Http(_) => true,
            Self::NoCode(_) | Self::State | Self::Url(_) | Self::Attempts { .. } => false,
        }
    }
}

/// Redirects followed per request before giving up, as browsers cap them.
pub const MAX_REDIRECTS: usize = 10;

/// The `Accept` a browser sends for a page. Some servers (Spring
/// Authorization Server) redirect to their login page only for HTML
/// requests and answer 401 to anything else.
pub const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Where a browser request ended.
enum Landing {
    /// A page of the server (not a redirect).
    Page(reqwest::Response),
    /// A redirect to the client's redirect URI, not followed.
    Callback(url::Url),
}

/// Follows the server's redirects as a browser does (GET, same cookie jar),
/// and stops at the first one that leads to the client's redirect URI.
async fn land(http: &reqwest::Client, mut resp: reqwest::Response, redirect_uri: &str) -> Result<Landing, LoginError> {
    for _ in 0..MAX_REDIRECTS {
        let to = match resp.headers().get(reqwest::header::LOCATION).and_then(|l| l.to_str().ok()) {
            Some(l) if resp.status().is_redirection() => resp.url().join(l)?,
            _ => return Ok(Landing::Page(resp)),
        };
        if to.as_str().starts_with(redirect_uri) {
            return Ok(Landing::Callback(to));
        }
        resp = http.get(to).header(reqwest::header::ACCEPT, BROWSER_ACCEPT).send().await?;
    }
    Err(LoginError::TooManyRedirects)
}

/// The result of the front-channel part: a code and its verifier.
#[derive(Debug)]
pub struct Code {
    pub code: Secret,
    pub verifier: Secret,
}

fn random(n: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// The PKCE S256 challenge of a verifier (RFC 7636 §4.2).
#[must_use]
pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Drives the login form and returns the authorization code.
///
/// Cookies: some servers (Keycloak) mark their login cookies `Secure` even
/// on plain-HTTP loopback; the session's cookie store must accept them.
pub async fn authorize(
    http: &reqwest::Client,
    authorization_endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    scope: &str,
    username: &str,
    password: &Secret,
) -> Result<Code, LoginError> {
    let verifier = random(64);
    let state = random(16);
    let auth = url::Url::parse_with_params(
        authorization_endpoint,
        &[
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", &state),
            ("code_challenge", &challenge(&verifier)),
            ("code_challenge_method", "S256"),
        ],
    )?;
    let first = http.get(auth).header(reqwest::header::ACCEPT, BROWSER_ACCEPT).send().await?;
    let page = match land(http, first, redirect_uri).await? {
        // Already logged in, or an error sent back to the client.
        Landing::Callback(to) => return code_from(&to, &state, verifier),
        Landing::Page(p) if p.status().is_success() => p,
        Landing::Page(p) => return Err(LoginError::Authorize(p.status().as_u16())),
    };
    let page_url = page.url().clone();
    let html = page.text().await?;
    // The action may be relative to the login page (RFC 3986 §5).
    let action = page_url.join(&form_action(&html).ok_or(LoginError::NoForm)?)?;
    // Hidden fields of the form (a CSRF token, a session reference) go back
    // with the credentials, as a browser sends them.
    let mut fields: Vec<(String, String)> = hidden_fields(&html);
    fields.push(("username".into(), username.into()));
    fields.push(("password".into(), password.expose().into()));
    if !fields.iter().any(|(k, _)| k == "credentialId") && html.contains("credentialId") {
        fields.push(("credentialId".into(), String::new()));
    }
    let resp = http.post(action).header(reqwest::header::ACCEPT, BROWSER_ACCEPT).form(&fields).send().await?;
    match land(http, resp, redirect_uri).await? {
        Landing::Callback(to) => code_from(&to, &state, verifier),
        Landing::Page(p) => Err(LoginError::NoRedirect(p.status().as_u16())),
    }
}

/// The code (and the state check) of the redirect to the client.
fn code_from(location: &url::Url, state: &str, verifier: String) -> Result<Code, LoginError> {
    let params: HashMap<_, _> = location.query_pairs().into_owned().collect();
    if let Some(code) = params.get("code") {
        if params.get("state").map(String::as_str) != Some(state) {
            return Err(LoginError::State);
        }
        return Ok(Code { code: Secret::new(code.clone()), verifier: Secret::new(verifier) });
    }
    Err(LoginError::NoCode(params.get("error").cloned().unwrap_or_default()))
}

/// The `action` of the page's first form, HTML entities decoded.
#[must_use]
pub fn form_action(html: &str) -> Option<String> {
    let form = html.find("<form")?;
    let rest = &html[form..];
    let tag_end = rest.find('>')?;
    let tag = &rest[..tag_end];
    let start = tag.find("action=\"")? + "action=\"".len();
    let end = tag[start..].find('"')?;
    Some(tag[start..start + end].replace("&amp;", "&").replace("&#x3D;", "=").replace("&#61;", "="))
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')?;
    Some(tag[start..start + end].replace("&amp;", "&").replace("&quot;", "\""))
}

/// `(name, value)` of the first form's hidden inputs.
#[must_use]
pub fn hidden_fields(html: &str) -> Vec<(String, String)> {
    let Some(form) = html.find("<form") else { return Vec::new() };
    let body = &html[form..html[form..].find("</form>").map_or(html.len(), |e| form + e)];
    body.split("<input")
        .skip(1)
        .filter_map(|rest| {
            let tag = &rest[..rest.find('>')?];
            (attr(tag, "type").as_deref() == Some("hidden"))
                .then(|| Some((attr(tag, "name")?, attr(tag, "value").unwrap_or_default())))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_action_is_found_and_decoded() {
        let html =
            r#"<html><form id="kc-form-login" onsubmit="x" action="http://x/login?a=1&amp;b=2" method="post"></form>"#;
        assert_eq!(form_action(html).unwrap(), "http://x/login?a=1&b=2");
        assert_eq!(form_action("<p>no form</p>"), None);
    }

    #[test]
    fn hidden_fields_go_back_with_the_form() {
        let html = r#"<form action="verify" method="post"><input type="hidden" name="token" value="a&amp;b"/>
            <input type="text" name="username"/><input type="hidden" name="x"></form><input type="hidden" name="outside" value="1">"#;
        assert_eq!(hidden_fields(html), vec![("token".to_owned(), "a&b".to_owned()), ("x".to_owned(), String::new())]);
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn only_odd_answers_are_retried_never_a_refused_password() {
        assert!(LoginError::NoRedirect(302).is_transient(), "a redirect where the callback was due");
        assert!(LoginError::NoRedirect(503).is_transient());
        assert!(!LoginError::NoRedirect(200).is_transient(), "the form again: a wrong password");
        assert!(!LoginError::NoRedirect(401).is_transient());
        assert!(LoginError::Authorize(500).is_transient());
        assert!(!LoginError::Authorize(400).is_transient());
        assert!(LoginError::NoForm.is_transient());
        assert!(!LoginError::NoCode("access_denied".into()).is_transient());
        assert!(!LoginError::State.is_transient());
        let after = LoginError::Attempts { attempts: 3, last: Box::new(LoginError::NoForm) };
        assert!(!after.is_transient());
        assert!(after.to_string().starts_with("failed 3 times; the last: no login form"), "{after}");
    }
}
