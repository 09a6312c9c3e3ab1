//! A scripted browser login: authorization code with PKCE S256 (RFC 6749
//! §4.1, RFC 7636) through the server's own HTML login form, as a person
//! would. No password grant needed.
//!
//! The login page is parsed with an HTML parser (`tl`): the form is the one
//! with a password field (or the field the profile names), its action is
//! resolved against the page's URL, and every named field goes back as a
//! browser sends it, with the username and password filled in.

use std::collections::{BTreeMap, HashMap};

use crate::profile::LoginForm;

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
    #[error("no login form in the authorization page: no form with a password field (is the user already logged in, or is consent required? `[users.<name>.form]` names the fields)")]
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

/// The authorization request of a scripted login.
#[derive(Debug, Clone, Copy)]
pub struct Authorize<'a> {
    pub authorization_endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    /// Extra parameters of the authorization request (a short-lived recipe's).
    pub params: &'a BTreeMap<String, String>,
    /// The login form's field names.
    pub form: &'a LoginForm,
}

/// Drives the login form and returns the authorization code.
///
/// Cookies: some servers (Keycloak) mark their login cookies `Secure` even
/// on plain-HTTP loopback; the session's cookie store must accept them.
pub async fn authorize(
    http: &reqwest::Client,
    request: &Authorize<'_>,
    username: &str,
    password: &Secret,
) -> Result<Code, LoginError> {
    let verifier = random(64);
    let state = random(16);
    let redirect_uri = request.redirect_uri;
    let challenge = challenge(&verifier);
    let mut query: Vec<(&str, &str)> = vec![
        ("client_id", request.client_id),
        ("response_type", "code"),
        ("redirect_uri", redirect_uri),
        ("scope", request.scope),
        ("state", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    query.extend(request.params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let auth = url::Url::parse_with_params(request.authorization_endpoint, &query)?;
    let first = http.get(auth).header(reqwest::header::ACCEPT, BROWSER_ACCEPT).send().await?;
    let page = match land(http, first, redirect_uri).await? {
        // Already logged in, or an error sent back to the client.
        Landing::Callback(to) => return code_from(&to, &state, verifier),
        Landing::Page(p) if p.status().is_success() => p,
        Landing::Page(p) => return Err(LoginError::Authorize(p.status().as_u16())),
    };
    let page_url = page.url().clone();
    let html = page.text().await?;
    let form = LoginPage::parse(&html, request.form).ok_or(LoginError::NoForm)?;
    // The action may be relative to the login page (RFC 3986 §5); none means the page itself.
    let action = page_url.join(form.action.as_deref().unwrap_or(""))?;
    let fields = form.filled(username, password.expose());
    let resp = if form.get {
        let mut to = action;
        to.query_pairs_mut().extend_pairs(&fields);
        http.get(to).header(reqwest::header::ACCEPT, BROWSER_ACCEPT).send().await?
    } else {
        http.post(action).header(reqwest::header::ACCEPT, BROWSER_ACCEPT).form(&fields).send().await?
    };
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

/// A login form as a browser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPage {
    /// The form's `action`, entities decoded; `None` submits to the page itself.
    pub action: Option<String>,
    /// `method="get"` (else POST).
    pub get: bool,
    /// Every named field a browser would send, with its value, in order.
    pub fields: Vec<(String, String)>,
    /// The field that takes the username.
    pub username: String,
    /// The field that takes the password.
    pub password: String,
}

impl LoginPage {
    /// The login form of a page: the first form with the password field the
    /// profile names (`password` by default) or, failing that, with any
    /// password field. Its username field is the one the profile names, else
    /// the first text or email field.
    #[must_use]
    pub fn parse(html: &str, names: &LoginForm) -> Option<Self> {
        let dom = tl::parse(html, tl::ParserOptions::default()).ok()?;
        let parser = dom.parser();
        // Tag and attribute names are ASCII case-insensitive (HTML §13.1.2).
        let named_tag = |t: &&tl::HTMLTag<'_>, name: &str| t.name().as_utf8_str().eq_ignore_ascii_case(name);
        let forms: Vec<&tl::HTMLTag<'_>> =
            dom.nodes().iter().filter_map(tl::Node::as_tag).filter(|t| named_tag(t, "form")).collect();
        let inputs = |form: &tl::HTMLTag<'_>| -> Vec<Field> {
            form.children()
                .all(parser)
                .iter()
                .filter_map(tl::Node::as_tag)
                .filter(|t| named_tag(t, "input"))
                .map(|t| Field {
                    name: attr(t, "name"),
                    kind: attr(t, "type").unwrap_or_else(|| "text".into()).to_ascii_lowercase(),
                    value: attr(t, "value").unwrap_or_default(),
                    checked: t.attributes().iter().any(|(k, _)| k.eq_ignore_ascii_case("checked")),
                })
                .collect()
        };
        let named = |fs: &[Field], name: &str| fs.iter().any(|f| f.name.as_deref() == Some(name));
        let (form, fields) =
            forms.iter().map(|f| (*f, inputs(f))).find(|(_, fs)| named(fs, &names.password)).or_else(|| {
                forms.iter().map(|f| (*f, inputs(f))).find(|(_, fs)| fs.iter().any(|x| x.kind == "password"))
            })?;
        let password = if named(&fields, &names.password) {
            names.password.clone()
        } else {
            fields.iter().find(|f| f.kind == "password").and_then(|f| f.name.clone())?
        };
        let username = if named(&fields, &names.username) {
            names.username.clone()
        } else {
            fields.iter().find(|f| matches!(f.kind.as_str(), "text" | "email")).and_then(|f| f.name.clone())?
        };
        let sent = fields
            .into_iter()
            .filter(|f| match f.kind.as_str() {
                // A browser sends the button clicked, not every button; and
                // unchecked boxes not at all.
                "submit" | "button" | "reset" | "image" | "file" => false,
                "checkbox" | "radio" => f.checked,
                _ => true,
            })
            .filter_map(|f| Some((f.name?, f.value)))
            .collect();
        Some(Self {
            action: attr(form, "action"),
            get: attr(form, "method").is_some_and(|m| m.eq_ignore_ascii_case("get")),
            fields: sent,
            username,
            password,
        })
    }

    /// The fields to send: the form's own, with the username and password set.
    #[must_use]
    pub fn filled(&self, username: &str, password: &str) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.fields.iter().filter(|(k, _)| *k != self.username && *k != self.password).cloned().collect();
        out.push((self.username.clone(), username.to_owned()));
        out.push((self.password.clone(), password.to_owned()));
        out
    }
}

struct Field {
    name: Option<String>,
    kind: String,
    value: String,
    checked: bool,
}

/// An attribute's value, character references decoded (HTML §13.1.4).
fn attr(tag: &tl::HTMLTag<'_>, name: &str) -> Option<String> {
    let (_, v) = tag.attributes().iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    Some(decode_entities(&v?))
}

/// Decodes the character references a server puts in attribute values:
/// numeric ones and the five of XML.
#[must_use]
pub fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        if let Some(c) = decoded {
            out.push(c);
            rest = &rest[end + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(html: &str) -> Option<LoginPage> {
        LoginPage::parse(html, &LoginForm::default())
    }

    #[test]
    fn the_form_action_is_found_and_decoded() {
        let html = r#"<html><form id="kc-form-login" onsubmit="x" action="http://x/login?a=1&amp;b=2&#x3D;3" method="post">
            <input name="username"><input type="password" name="password"></form>"#;
        let p = page(html).unwrap();
        assert_eq!(p.action.as_deref(), Some("http://x/login?a=1&b=2=3"));
        assert!(!p.get);
        assert_eq!(page("<p>no form</p>"), None);
        assert_eq!(page("<form action=x><input name=q></form>"), None, "a search form is no login form");
    }

    #[test]
    fn named_fields_go_back_with_the_form_and_buttons_do_not() {
        let html = r#"<form action="verify" method="post"><input type="hidden" name="token" value="a&amp;b"/>
            <input type="text" name="username"/><input type="hidden" name="credentialId">
            <input type="password" name="password"><input type="checkbox" name="remember">
            <input type="submit" name="login" value="Sign in"></form><input type="hidden" name="outside" value="1">"#;
        assert_eq!(
            page(html).unwrap().filled("alice", "pw"),
            [("token", "a&b"), ("credentialId", ""), ("username", "alice"), ("password", "pw")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
    }

    #[test]
    fn any_well_formed_login_form_works_and_the_profile_may_name_its_fields() {
        // A search form first, then a login form with its own field names and
        // single-quoted and unquoted attributes.
        let html = r#"<form action='/search'><input name=q></form>
            <form action="/session" method=post><input type=email name=login><input type=hidden name=csrf value=t0k>
            <input type=password name=pw></form>"#;
        let p = page(html).unwrap();
        assert_eq!(p.action.as_deref(), Some("/session"));
        assert_eq!((p.username.as_str(), p.password.as_str()), ("login", "pw"));
        assert_eq!(p.filled("alice", "x")[0], ("csrf".to_owned(), "t0k".to_owned()));
        let names = LoginForm { username: "user".into(), password: "secret".into() };
        let html = "<form><input name=nick><input name=user><input type=password name=secret></form>";
        let p = LoginPage::parse(html, &names).unwrap();
        assert_eq!((p.username.as_str(), p.password.as_str(), p.action), ("user", "secret", None));
    }

    #[test]
    fn character_references_decode() {
        assert_eq!(decode_entities("a&amp;b&#61;c&#x3D;d&quot;&lt;&unknown;&"), "a&b=c=d\"<&unknown;&");
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
