//! Helpers of the live tests: a scripted browser login (authorization code +
//! PKCE, RFC 7636) and a look at the process table.
//!
//! The tests themselves live in `tests/`; they start the real lab.

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::Secret;
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// Logs `username` in through the realm's login form as the public client
/// `client_id`, and returns the token response (RFC 6749 §4.1 with PKCE S256).
pub async fn login_with_pkce(
    issuer: &str,
    client_id: &str,
    scope: &str,
    username: &str,
    password: &Secret,
) -> anyhow::Result<serde_json::Value> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let verifier: String = rand::thread_rng().sample_iter(&Alphanumeric).take(64).map(char::from).collect();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let state: String = rand::thread_rng().sample_iter(&Alphanumeric).take(16).map(char::from).collect();
    let redirect_uri = "http://127.0.0.1:8976/callback";
    let auth = url::Url::parse_with_params(
        &format!("{issuer}/protocol/openid-connect/auth"),
        &[
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", redirect_uri),
            ("scope", scope),
            ("state", &state),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )?;
    let page = http.get(auth).send().await?;
    if !page.status().is_success() {
        bail!("authorization endpoint answered {}", page.status());
    }
    let html = page.text().await?;
    let action = form_action(&html).ok_or_else(|| anyhow!("no login form in the authorization page"))?;
    let resp = http
        .post(action)
        .form(&[("username", username), ("password", password.expose()), ("credentialId", "")])
        .send()
        .await?;
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("login answered {} without a redirect (wrong password?)", resp.status()))?;
    let location = url::Url::parse(location)?;
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    if params.get("state") != Some(&state) {
        bail!("the redirect carries another state");
    }
    let code = params
        .get("code")
        .ok_or_else(|| anyhow!("redirect without code: {:?}", params.get("error")))?;
    let token = http
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?;
    let status = token.status();
    let body: serde_json::Value = token.json().await.context("token response is not JSON")?;
    if !status.is_success() {
        bail!("token endpoint answered {status}: {}", body["error"]);
    }
    Ok(body)
}

/// The `action` of the HTML login form, entity-decoded.
#[must_use]
pub fn form_action(html: &str) -> Option<String> {
    let form = html.find("<form")?;
    let rest = &html[form..];
    let start = rest.find("action=\"")? + "action=\"".len();
    let end = rest[start..].find('"')?;
    Some(rest[start..start + end].replace("&amp;", "&"))
}

/// The claims of a JWT, decoded without checking the signature (tests only).
pub fn claims(jwt: &str) -> anyhow::Result<serde_json::Value> {
    let payload = jwt.split('.').nth(1).ok_or_else(|| anyhow!("not a JWT"))?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// Live processes (not zombies) whose pid, process group or parent is in `pids`.
#[must_use]
pub fn processes_of(pids: &HashSet<u32>) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let (state, ppid, pgrp) = (fields[0], fields[1].parse().unwrap_or(0), fields[2].parse().unwrap_or(0));
        if state == "Z" {
            continue;
        }
        if pids.contains(&pid) || pids.contains(&ppid) || pids.contains(&pgrp) {
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default().replace('\0', " ");
            found.push(format!("{pid} {cmd}"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_action_is_found_and_decoded() {
        let html = r#"<html><form id="kc-form-login" action="http://x/login?a=1&amp;b=2" method="post"></form>"#;
        assert_eq!(form_action(html).unwrap(), "http://x/login?a=1&b=2");
        assert_eq!(form_action("<p>no form</p>"), None);
    }
}
