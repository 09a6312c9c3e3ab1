//! Helpers of the live tests: a scripted browser login (authorization code +
//! PKCE, RFC 7636) and a look at the process table.
//!
//! The tests themselves live in `tests/`; they start the real lab.

pub mod browser;

use std::collections::HashSet;

use anyhow::{anyhow, bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fourleg_core::Secret;

/// Logs `username` in through the realm's login form as the public client
/// `client_id`, and returns the token response (RFC 6749 §4.1 with PKCE S256),
/// using the same scripted browser as the targets.
pub async fn login_with_pkce(
    issuer: &str,
    client_id: &str,
    scope: &str,
    username: &str,
    password: &Secret,
) -> anyhow::Result<serde_json::Value> {
    let http =
        reqwest::Client::builder().no_proxy().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build()?;
    let redirect_uri = "http://127.0.0.1:8976/callback";
    let authorization_endpoint = format!("{issuer}/protocol/openid-connect/auth");
    let (params, form) = (std::collections::BTreeMap::new(), fourleg_target::profile::LoginForm::default());
    let request = fourleg_target::login::Authorize {
        authorization_endpoint: &authorization_endpoint,
        client_id,
        redirect_uri,
        scope,
        params: &params,
        form: &form,
    };
    let code = fourleg_target::login::authorize(&http, &request, username, password).await?;
    let token = http
        .post(format!("{issuer}/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.code.expose()),
            ("redirect_uri", redirect_uri),
            ("client_id", client_id),
            ("code_verifier", code.verifier.expose()),
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

/// The claims of a JWT, decoded without checking the signature (tests only).
pub fn claims(jwt: &str) -> anyhow::Result<serde_json::Value> {
    let payload = jwt.split('.').nth(1).ok_or_else(|| anyhow!("not a JWT"))?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// The repository's root.
#[must_use]
pub fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `fourleg` binary, built first: tests that send it signals run it
/// directly, never through `cargo run` (the signal must reach fourleg).
#[must_use]
pub fn fourleg_binary() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(cargo)
        .args(["build", "--quiet", "--locked", "-p", "fourleg-cli"])
        .current_dir(repo())
        .status()
        .expect("cargo runs");
    assert!(built.success(), "building fourleg failed");
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), std::path::PathBuf::from);
    target.join("debug/fourleg")
}

/// Starts `bin args --state-dir state` from the repository root, its output
/// captured.
#[must_use]
pub fn spawn_fourleg(bin: &std::path::Path, args: &[&str], state: &std::path::Path) -> std::process::Child {
    std::process::Command::new(bin)
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .current_dir(repo())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("fourleg starts")
}

/// Runs `bin args --state-dir state` to its end.
#[must_use]
pub fn run_fourleg(bin: &std::path::Path, args: &[&str], state: &std::path::Path) -> std::process::Output {
    spawn_fourleg(bin, args, state).wait_with_output().expect("fourleg runs")
}

/// A lab configuration with a state directory of its own, named
/// `fourleg-<name>-<pid>` under the system temp directory (reachable by the
/// postgres user when the tests run as root: /tmp is world-searchable), and
/// the repository's fixtures.
#[must_use]
pub fn lab_config(name: &str) -> fourleg_lab::LabConfig {
    let state = std::env::temp_dir().join(format!("fourleg-{name}-{}", std::process::id()));
    let mut c = fourleg_lab::LabConfig::new(state);
    c.fixtures_dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    // The lab serves its broker with `fourleg broker`: this test's own
    // binary is not fourleg.
    c.broker_bin = Some(fourleg_binary());
    c
}

/// The pids of the lab's services as `lab.json` records them.
#[must_use]
pub fn service_pids(config: &fourleg_lab::LabConfig) -> HashSet<u32> {
    use fourleg_lab::state::{Handle, LabState};
    LabState::load(&config.state_dir)
        .ok()
        .flatten()
        .map(|s| {
            s.services
                .values()
                .filter_map(|r| match r.handle {
                    Handle::Process { pid, .. } => Some(pid),
                    Handle::Container { .. } => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes (not zombies) whose pid, process group or parent is in `pids`.
#[must_use]
pub fn processes_of<S: std::hash::BuildHasher>(pids: &HashSet<u32, S>) -> Vec<String> {
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
