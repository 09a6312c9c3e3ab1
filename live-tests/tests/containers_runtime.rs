//! The containers runtime for real, through the real binary, on a Docker
//! engine with the lab's images built here (`docker/build-images.sh`):
//! - `fourleg up --runtime containers` brings the three services up healthy,
//!   `docker ps` shows them, `fourleg run --target keycloak` gives the same
//!   verdicts as the same run on the native runtime (`fourleg diff`: no cell
//!   changed), and `down` then `down --purge` leave nothing behind;
//! - SIGKILL of the harness during `up --runtime containers`, then `down`:
//!   no container and no network of the lab is left, and `down --purge`
//!   removes its data volumes too.
//!
//! Skipped, saying so, when no engine answers (`DOCKER_HOST` or the usual
//! socket); CI starts one and sets `FOURLEG_REQUIRE_DOCKER=1`, which turns
//! the skip into a failure.

use std::path::{Path, PathBuf};

use fourleg_live_tests::{fourleg_binary as binary, repo, run_fourleg as run, spawn_fourleg as spawn};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One test of this file at a time (each starts real services on two cores).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Whether an engine answers; `false` (after saying why) skips the test,
/// unless CI asked for an engine.
fn engine_answers(test: &str) -> bool {
    let answers = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !answers {
        assert!(
            std::env::var_os("FOURLEG_REQUIRE_DOCKER").is_none(),
            "FOURLEG_REQUIRE_DOCKER is set but no docker engine answers (DOCKER_HOST={:?})",
            std::env::var("DOCKER_HOST").ok()
        );
        eprintln!("skipped {test}: no docker engine answers (start dockerd, or set DOCKER_HOST)");
    }
    answers
}

fn state(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fourleg-containers-{name}-{}", std::process::id()))
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the engine lists of the lab in `state` (label `fourleg.lab`):
/// `docker <kind> ls` names, `kind` one of container, network, volume.
fn lab_resources(kind: &str, state: &Path) -> Vec<String> {
    let label = format!("label=fourleg.lab={}", state.display());
    let args: Vec<&str> = if kind == "container" {
        vec![kind, "ls", "--all", "--filter", label.as_str(), "--format", "{{.Names}}"]
    } else {
        vec![kind, "ls", "--filter", label.as_str(), "--format", "{{.Name}}"]
    };
    let out = Command::new("docker").args(&args).output().expect("docker runs");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).filter(|l| !l.is_empty()).collect()
}

/// Stops and removes the lab in `state` whatever happened to the test.
struct Cleanup<'a>(&'a Path, &'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = run(self.0, &["down", "--purge"], self.1);
    }
}

#[test]
fn containers_lab_runs_the_keycloak_suite_with_the_native_verdicts() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !engine_answers("containers_lab_runs_the_keycloak_suite_with_the_native_verdicts") {
        return;
    }
    let bin = binary();
    let (st, native_st) = (state("suite"), state("native"));
    let runs = state("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let _clean = Cleanup(&bin, &st);
    let _clean_native = Cleanup(&bin, &native_st);

    let t = Instant::now();
    let up = run(&bin, &["up", "--runtime", "containers"], &st);
    ok(&up, "fourleg up --runtime containers");
    eprintln!("containers up: {:.1}s", t.elapsed().as_secs_f64());

    // The three services run in containers the engine shows.
    let ps = Command::new("docker")
        .args(["ps", "--filter", &format!("label=fourleg.lab={}", st.display()), "--format", "{{.Names}}"])
        .output()
        .unwrap();
    let running = String::from_utf8_lossy(&ps.stdout);
    for service in ["postgres", "openbao", "keycloak"] {
        assert!(running.lines().any(|n| n.ends_with(&format!("-{service}"))), "docker ps lacks {service}:\n{running}");
    }
    let status = run(&bin, &["status", "--json"], &st);
    ok(&status, "fourleg status");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(status["runtime"], "containers", "{status}");
    for s in status["services"].as_array().unwrap() {
        assert_eq!(s["healthy"], true, "{s}");
        assert!(s["container"].is_string(), "{s}");
    }

    let in_containers = runs.join("containers.json");
    let t = Instant::now();
    let out = run(&bin, &["run", "--target", "keycloak", "--json", in_containers.to_str().unwrap()], &st);
    ok(&out, "fourleg run --target keycloak (containers)");
    eprintln!("keycloak suite in containers: {:.1}s", t.elapsed().as_secs_f64());

    // The same suite on the native runtime.
    let t = Instant::now();
    ok(&run(&bin, &["up", "--runtime", "native"], &native_st), "fourleg up --runtime native");
    eprintln!("native up: {:.1}s", t.elapsed().as_secs_f64());
    let native = runs.join("native.json");
    let t = Instant::now();
    let out = run(&bin, &["run", "--target", "keycloak", "--json", native.to_str().unwrap()], &native_st);
    ok(&out, "fourleg run --target keycloak (native)");
    eprintln!("keycloak suite native: {:.1}s", t.elapsed().as_secs_f64());
    ok(&run(&bin, &["down", "--purge"], &native_st), "fourleg down --purge (native)");

    let diff = Command::new(&bin)
        .args(["diff", native.to_str().unwrap(), in_containers.to_str().unwrap()])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&diff.stdout);
    ok(&diff, "fourleg diff native containers");
    // Timing figures may move; no cell may change (the sections of `diff`).
    for section in ["newly failing (", "newly passing (", "changed (", "new (", "removed ("] {
        assert!(
            !text.lines().any(|l| l.starts_with(section)),
            "verdicts differ between native and containers:\n{text}"
        );
    }
    eprintln!("fourleg diff native containers:\n{text}");

    // `down` leaves no container and no network; the data volumes stay
    // until `down --purge`, as native data stays in the state directory.
    ok(&run(&bin, &["down"], &st), "fourleg down");
    assert_eq!(lab_resources("container", &st), Vec::<String>::new());
    assert_eq!(lab_resources("network", &st), Vec::<String>::new());
    assert_eq!(lab_resources("volume", &st).len(), 2, "postgres and openbao data");
    ok(&run(&bin, &["down", "--purge"], &st), "fourleg down --purge");
    assert_eq!(lab_resources("volume", &st), Vec::<String>::new());
    assert!(!st.exists());
    let _ = std::fs::remove_dir_all(&runs);
}

#[test]
fn sigkill_during_containers_up_then_down_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !engine_answers("sigkill_during_containers_up_then_down_leaves_nothing") {
        return;
    }
    let bin = binary();
    let st = state("sigkill");
    let _clean = Cleanup(&bin, &st);
    let mut child = spawn(&bin, &["up", "--runtime", "containers"], &st);
    // Kill the harness once the engine runs a container of this lab (the
    // middle of `up`: Keycloak comes last and takes the longest).
    let begin = Instant::now();
    while lab_resources("container", &st).is_empty() {
        assert!(begin.elapsed() < Duration::from_secs(300), "no container of the lab appeared within 300s");
        assert!(child.try_wait().unwrap().is_none(), "up ended before any container started");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("the signal is sent");
    let _ = child.wait();
    assert!(!lab_resources("container", &st).is_empty(), "containers outlive a killed harness until down");

    ok(&run(&bin, &["down"], &st), "fourleg down after SIGKILL");
    assert_eq!(lab_resources("container", &st), Vec::<String>::new(), "down left containers");
    assert_eq!(lab_resources("network", &st), Vec::<String>::new(), "down left a network");
    ok(&run(&bin, &["down", "--purge"], &st), "fourleg down --purge after SIGKILL");
    assert_eq!(lab_resources("volume", &st), Vec::<String>::new(), "down --purge left volumes");
}
