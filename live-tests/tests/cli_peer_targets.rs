//! `fourleg run --target spring-authorization-server`, `--target hydra`, `--target
//! toolhive` and `--target idpyoidc`, through the real binary, on a fresh state directory: each run
//! builds or installs its peer (into the shared cache), starts only that
//! peer, runs every scenario against the real server and exits 0, with no
//! `error` result. `down --purge` then leaves nothing running.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `fourleg <args>` through cargo, from the repository root.
fn fourleg(args: &[&str]) -> std::process::Output {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    Command::new(cargo)
        .args(["run", "--quiet", "--locked", "-p", "fourleg-cli", "--"])
        .args(args)
        .current_dir(repo())
        .output()
        .expect("cargo runs")
}

#[test]
fn the_peer_targets_run_from_the_cli_without_errors() {
    let state = std::env::temp_dir().join(format!("fourleg-cli-peers-{}", std::process::id()));
    let state_arg = state.display().to_string();
    let mut failures = Vec::new();
    for target in ["spring-authorization-server", "idpyoidc", "hydra", "toolhive"] {
        let doc = state.with_extension(format!("{target}.json"));
        let out =
            fourleg(&["run", "--state-dir", &state_arg, "--target", target, "--json", &doc.display().to_string()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.code() != Some(0) {
            failures.push(format!("{target}: exit {:?}\n{stderr}\n{}", out.status.code(), tail(&stdout)));
            continue;
        }
        // Failures are collected, not asserted here: `down` must run whatever happens.
        let json: serde_json::Value = match std::fs::read(&doc).map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(v)) => v,
            other => {
                failures.push(format!("{target}: no readable run document: {other:?}"));
                continue;
            }
        };
        let run = &json["runs"][0];
        let errors: Vec<&str> = run["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["status"] == "error")
            .filter_map(|s| s["id"].as_str())
            .collect();
        if run["target"]["name"] != target {
            failures.push(format!("{target}: the document names target {}", run["target"]["name"]));
        }
        if !errors.is_empty() {
            failures.push(format!("{target}: error results {errors:?}"));
        }
        if run["summary"]["total"] != scenario_count() {
            failures.push(format!("{target}: {} scenarios ran, not {}", run["summary"]["total"], scenario_count()));
        }
        // Only the peer started: no Keycloak, OpenBao or Postgres.
        if stderr.contains("starting it (fourleg up)") {
            failures.push(format!("{target} started the lab's services:\n{stderr}"));
        }
        let _ = std::fs::remove_file(&doc);
    }
    let down = fourleg(&["down", "--state-dir", &state_arg, "--purge"]);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(!state.exists(), "down --purge left {}", state.display());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The scenario files of `suites/<area>/`.
fn scenario_count() -> usize {
    std::fs::read_dir(repo().join("suites"))
        .unwrap()
        .flatten()
        .filter(|a| a.path().is_dir())
        .flat_map(|a| std::fs::read_dir(a.path()).unwrap().flatten())
        .filter(|f| f.path().extension().is_some_and(|e| e == "toml"))
        .count()
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
