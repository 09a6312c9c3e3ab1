//! Faults read as faults, through the real binary:
//! - Ctrl-C during `up` exits 130 and says what still runs and how to stop it;
//! - SIGKILL of `fourleg run` mid-run, then `down`: nothing is left running;
//! - `matrix` on a fresh state directory: every bundled target tested (no
//!   `error` cell), exit 0, and no file of the source tree changed;
//! - Keycloak killed mid-matrix: its column is `error` cells that say why,
//!   the other target still runs, exit 2, and the last lines name the cause.
//!
//! The three run one after another (each starts real services on two cores).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fourleg_live_tests::{fourleg_binary as binary, processes_of, repo, run_fourleg as run, spawn_fourleg as spawn};

/// One test of this file at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn state(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fourleg-faults-{name}-{}", std::process::id()))
}

/// Every pid recorded in the state: services (`lab.json`) and peers (`peers.json`).
fn recorded_pids(state: &Path) -> HashSet<u32> {
    let mut pids = HashSet::new();
    for file in ["lab.json", "peers.json"] {
        let Ok(text) = std::fs::read_to_string(state.join(file)) else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        collect_pids(&v, &mut pids);
    }
    pids
}

fn collect_pids(v: &serde_json::Value, out: &mut HashSet<u32>) {
    match v {
        serde_json::Value::Object(m) => {
            if let Some(pid) = m.get("pid").and_then(serde_json::Value::as_u64) {
                out.insert(u32::try_from(pid).unwrap_or(0));
            }
            m.values().for_each(|x| collect_pids(x, out));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_pids(x, out)),
        _ => {}
    }
}

/// Waits until the JSON `file` in the state has a value at `pointer`
/// (`/services/keycloak`: a service started, not merely a port chosen).
fn wait_for(state: &Path, file: &str, pointer: &str, bound: Duration) -> bool {
    let begin = Instant::now();
    while begin.elapsed() < bound {
        let found = std::fs::read_to_string(state.join(file))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| v.pointer(pointer).is_some());
        if found {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("a pid fits"));
    nix::sys::signal::kill(pid, sig).expect("the signal is sent");
}

#[test]
fn ctrl_c_during_up_says_what_still_runs() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let bin = binary();
    let st = state("interrupt");
    let child = spawn(&bin, &["up", "--runtime", "native"], &st);
    // Interrupt once Keycloak is starting (Postgres and OpenBao run by then).
    assert!(wait_for(&st, "lab.json", "/services/keycloak", Duration::from_secs(300)), "keycloak never started");
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let pids = recorded_pids(&st);
    let down = run(&bin, &["down", "--purge"], &st);
    let left = processes_of(&pids);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted; still running:"), "{stderr}");
    assert!(stderr.contains("postgres") && stderr.contains("openbao"), "{stderr}");
    assert!(stderr.contains("fourleg down"), "{stderr}");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    assert!(left.is_empty(), "processes left after down: {left:#?}");
}

#[test]
fn sigkill_mid_run_then_down_leaves_nothing_running() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let bin = binary();
    let st = state("sigkill");
    let mut child = spawn(&bin, &["run", "--target", "idpyoidc"], &st);
    assert!(wait_for(&st, "peers.json", "/idpyoidc", Duration::from_secs(300)), "the peer never started");
    // Let some scenarios run, then kill the harness outright.
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let pids = recorded_pids(&st);
    assert!(!pids.is_empty(), "the peer is recorded");
    assert!(!processes_of(&pids).is_empty(), "the peer outlives a killed harness until down");
    let down = run(&bin, &["down", "--purge"], &st);
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
    let left = processes_of(&pids);
    assert!(left.is_empty(), "processes left after down: {left:#?}");
}

/// The lines of a run's progress that report an unexpected result (and the
/// check lines under each), so a failed matrix says which cell broke.
fn unexpected_lines(stderr: &str) -> String {
    let mut out = Vec::new();
    let mut keep = false;
    for line in stderr.lines() {
        if !line.starts_with(' ') {
            keep = !line.contains("(expected)")
                && ["FAIL", "UNTESTABLE", "ERROR", "STALE"].iter().any(|w| line.starts_with(w));
        }
        if keep {
            out.push(line);
        }
    }
    out.join("\n")
}

/// `git status --porcelain` of the repository (tracked changes and untracked
/// files that are not ignored).
fn tree_status() -> Option<String> {
    let out = Command::new("git").args(["status", "--porcelain"]).current_dir(repo()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn matrix_on_a_fresh_state_tests_every_target_and_leaves_the_tree_alone() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let bin = binary();
    let st = state("matrix");
    let out_dir = st.with_extension("reports");
    let before = tree_status();
    let out = run(&bin, &["matrix", "--out", &out_dir.display().to_string()], &st);
    let after = tree_status();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let doc = std::fs::read(out_dir.join("matrix.json"));
    let tail: String =
        stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    // What follows needs the lab this matrix started: a failure here is
    // said with its own output, and the lab is stopped either way.
    if out.status.code() != Some(0) {
        let down = run(&bin, &["down", "--purge"], &st);
        let _ = std::fs::remove_dir_all(&out_dir);
        panic!(
            "matrix exit {:?}; last lines:\n{tail}\nsummary:\n{stdout}\nunexpected:\n{}\ndown: {}",
            out.status.code(),
            unexpected_lines(&stderr),
            String::from_utf8_lossy(&down.stderr)
        );
    }
    // Keycloak dies mid-matrix: its columns are errors that say so, the
    // other target still runs, exit 2, and the closing lines name the cause.
    let killed_dir = st.with_extension("killed");
    let child =
        spawn(&bin, &["matrix", "--targets", "keycloak,idpyoidc", "--out", &killed_dir.display().to_string()], &st);
    std::thread::sleep(Duration::from_secs(6));
    let lab_json = std::fs::read_to_string(st.join("lab.json"));
    let keycloak_pid = lab_json
        .as_ref()
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
        .and_then(|v| v["services"]["keycloak"]["handle"]["pid"].as_i64());
    if let Some(pid) = keycloak_pid {
        // Its process group: kc.sh and the JVM.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0)),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let killed = child.wait_with_output().unwrap();
    let killed_doc = std::fs::read(killed_dir.join("matrix.json"));
    let down = run(&bin, &["down", "--purge"], &st);
    let _ = std::fs::remove_dir_all(&out_dir);
    let _ = std::fs::remove_dir_all(&killed_dir);
    assert!(
        keycloak_pid.is_some(),
        "lab.json records keycloak's pid: {lab_json:?}\nthe first matrix exited {:?}; last lines:\n{tail}\nsummary:\n{stdout}",
        out.status.code()
    );
    let killed_out = String::from_utf8_lossy(&killed.stdout);
    assert_eq!(killed.status.code(), Some(2), "{killed_out}\n{}", String::from_utf8_lossy(&killed.stderr));
    assert!(killed_out.contains("not tested (exit 2)") && killed_out.contains("keycloak:"), "{killed_out}");
    let killed_doc: serde_json::Value = serde_json::from_slice(&killed_doc.expect("matrix.json written")).unwrap();
    for r in killed_doc["runs"].as_array().unwrap() {
        let statuses: Vec<&str> =
            r["scenarios"].as_array().unwrap().iter().filter_map(|s| s["status"].as_str()).collect();
        if r["target"]["name"] == "keycloak" {
            assert!(statuses.iter().all(|s| *s == "error"), "keycloak: {statuses:?}");
        } else {
            assert!(!statuses.contains(&"error"), "{}: {statuses:?}", r["target"]["name"]);
        }
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "matrix exit; last lines:\n{tail}\nsummary:\n{stdout}\nunexpected:\n{}",
        unexpected_lines(&stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&doc.expect("matrix.json written")).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert!(runs.len() >= 4, "every bundled target ran");
    for r in runs {
        let errors: Vec<&str> = r["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "error")
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert!(errors.is_empty(), "{}: error cells {errors:?}", r["target"]["name"]);
    }
    assert!(stdout.contains("matrix of") && stdout.contains("wall"), "per-target wall times on stdout:\n{stdout}");
    assert_eq!(before, after, "matrix changed the source tree");
    assert!(down.status.success(), "{}", String::from_utf8_lossy(&down.stderr));
}
