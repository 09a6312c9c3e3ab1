//! The containers runtime for real, through the real binary, on a Docker
//! engine with the lab's images built here (`docker/build-images.sh`):
//! - `fourleg up --runtime containers` brings the three services and the
//!   reference broker up healthy, `docker ps` shows them, `fourleg run
//!   --target keycloak` gives the same verdicts as the same run on the native
//!   runtime (`fourleg diff`: no cell changed);
//! - the four peers start as containers too (`up --with`), and the matrix of
//!   all nine bundled targets run on this lab has the committed reference
//!   matrix's verdicts (made on the native runtime): no cell changed;
//! - `down` leaves no container, network or volume behind;
//! - SIGKILL of the harness during `up --runtime containers`, then `down`:
//!   no container, network or volume of the lab is left.
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

    // The three services and the broker run in containers the engine shows.
    let running = running_containers(&st);
    for service in ["postgres", "openbao", "keycloak", "broker"] {
        assert!(running.iter().any(|n| n.ends_with(&format!("-{service}"))), "docker ps lacks {service}:\n{running:?}");
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
    // The peers as containers, then every bundled target, the broker
    // included (its logout scenarios too: Keycloak's container posts the
    // back-channel logout token to the broker at the lab network's gateway):
    // the reference matrix's verdicts, made on the native runtime.
    let t = Instant::now();
    let peers = ["spring-authorization-server", "idpyoidc", "hydra", "toolhive"];
    ok(
        &run(&bin, &["up", "--runtime", "containers", "--with", &peers.join(",")], &st),
        "fourleg up --with (containers)",
    );
    eprintln!("peers in containers: {:.1}s", t.elapsed().as_secs_f64());
    let running = running_containers(&st);
    for peer in peers {
        assert!(running.iter().any(|n| n.ends_with(&format!("-peer-{peer}"))), "docker ps lacks {peer}:\n{running:?}");
    }
    let matrix_dir = runs.join("matrix");
    let t = Instant::now();
    let targets = "broker,demo-mcp,demo-mcp-broker,hydra,idpyoidc,keycloak,keycloak-delegation,spring-authorization-server,toolhive";
    ok(
        &run(&bin, &["matrix", "--targets", targets, "--out", matrix_dir.to_str().unwrap()], &st),
        "fourleg matrix (containers)",
    );
    eprintln!("matrix of 9 targets in containers: {:.1}s", t.elapsed().as_secs_f64());
    let reference = repo().join("reports/matrix.json");
    let in_containers_matrix = matrix_dir.join("matrix.json");
    assert_same_verdicts(&bin, &reference, &in_containers_matrix, "the reference matrix and the containers matrix");

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

    assert_same_verdicts(&bin, &native, &in_containers, "native and containers");

    // The lab's data lives in two volumes while it runs; `down` leaves no
    // container, network or volume, and `down --purge` the state directory.
    assert_eq!(lab_resources("volume", &st).len(), 2, "postgres and openbao data");
    ok(&run(&bin, &["down"], &st), "fourleg down");
    assert_eq!(lab_resources("container", &st), Vec::<String>::new());
    assert_eq!(lab_resources("network", &st), Vec::<String>::new());
    assert_eq!(lab_resources("volume", &st), Vec::<String>::new());
    assert!(!st.join("openbao/init.json").exists(), "the unseal key of deleted data stays behind");
    ok(&run(&bin, &["down", "--purge"], &st), "fourleg down --purge");
    assert!(!st.exists());
    let _ = std::fs::remove_dir_all(&runs);
}

/// The names of the running containers of the lab in `state`.
fn running_containers(state: &Path) -> Vec<String> {
    let ps = Command::new("docker")
        .args(["ps", "--filter", &format!("label=fourleg.lab={}", state.display()), "--format", "{{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&ps.stdout).lines().map(str::to_owned).collect()
}

/// `fourleg diff before after` shows no changed cell (timing figures may
/// move; the sections of `diff` that name a cell must be absent).
fn assert_same_verdicts(bin: &Path, before: &Path, after: &Path, what: &str) {
    let diff = Command::new(bin)
        .args(["diff", before.to_str().unwrap(), after.to_str().unwrap()])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&diff.stdout);
    ok(&diff, &format!("fourleg diff ({what})"));
    for section in ["newly failing (", "newly passing (", "changed (", "new (", "removed ("] {
        assert!(!text.lines().any(|l| l.starts_with(section)), "verdicts differ between {what}:\n{text}");
    }
    eprintln!("fourleg diff ({what}):\n{text}");
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
    assert_eq!(lab_resources("volume", &st), Vec::<String>::new(), "down left volumes");
    ok(&run(&bin, &["down", "--purge"], &st), "fourleg down --purge after SIGKILL");
}

/// `docker compose -p <project>` for `docker/compose.yaml` with the built
/// images' env file.
fn compose(project: &str, env_file: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let file = repo().join("docker/compose.yaml");
    Command::new("docker-compose")
        .args(["--env-file", env_file.to_str().unwrap(), "-p", project, "-f", file.to_str().unwrap()])
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("docker-compose runs")
}

/// Removes the Compose project whatever happened to the test.
struct ComposeDown<'a>(&'a str, &'a Path, &'a [(&'a str, String)]);

impl Drop for ComposeDown<'_> {
    fn drop(&mut self) {
        let _ = compose(self.0, self.1, self.2, &["down", "-v", "--remove-orphans"]);
    }
}

fn free_port() -> u16 {
    fourleg_lab::free_port().unwrap()
}

/// `docker/compose.yaml` serves the lab by hand, as its header tells, with
/// Debian's docker-compose on the images built here: Postgres healthy,
/// OpenBao answering (sealed and uninitialised, as it should), Keycloak
/// ready once its database exists; `down -v` leaves nothing.
#[test]
fn compose_file_serves_the_lab_on_the_built_images() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !engine_answers("compose_file_serves_the_lab_on_the_built_images") {
        return;
    }
    let has_compose = Command::new("docker-compose").arg("version").output().is_ok_and(|o| o.status.success());
    if !has_compose {
        assert!(
            std::env::var_os("FOURLEG_REQUIRE_DOCKER").is_none(),
            "FOURLEG_REQUIRE_DOCKER is set but docker-compose is missing (apt-get install docker-compose)"
        );
        eprintln!("skipped: docker-compose is not installed (apt-get install docker-compose)");
        return;
    }
    // Built once and reused: a warm run only hashes and asks the engine.
    let build = Command::new("bash").arg(repo().join("docker/build-images.sh")).output().unwrap();
    ok(&build, "docker/build-images.sh");
    let cache = std::env::var_os("FOURLEG_CACHE")
        .map_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/fourleg"), PathBuf::from);
    let env_file = cache.join("images/compose.env");
    assert!(std::fs::read_to_string(&env_file).unwrap().contains("FOURLEG_KEYCLOAK_IMAGE="), "{}", env_file.display());

    let project = format!("fourleg-compose-{}", std::process::id());
    let (pg, bao, kc, mgmt) = (free_port(), free_port(), free_port(), free_port());
    let env: Vec<(&str, String)> = vec![
        ("FOURLEG_POSTGRES_PASSWORD", "compose-test-superuser".into()),
        ("FOURLEG_KEYCLOAK_DB_PASSWORD", "compose-test-keycloak".into()),
        ("FOURLEG_KEYCLOAK_ADMIN_PASSWORD", "compose-test-admin".into()),
        ("FOURLEG_POSTGRES_PORT", pg.to_string()),
        ("FOURLEG_OPENBAO_PORT", bao.to_string()),
        ("FOURLEG_KEYCLOAK_PORT", kc.to_string()),
        ("FOURLEG_KEYCLOAK_MANAGEMENT_PORT", mgmt.to_string()),
    ];
    let _down = ComposeDown(&project, &env_file, &env);
    let t = Instant::now();
    ok(&compose(&project, &env_file, &env, &["up", "-d", "postgres", "openbao"]), "compose up postgres openbao");
    let until = |what: &str, secs: u64, mut done: Box<dyn FnMut() -> bool + '_>| {
        let begin = Instant::now();
        while !done() {
            assert!(begin.elapsed() < Duration::from_secs(secs), "{what} within {secs}s");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    until(
        "postgres ready",
        90,
        Box::new(|| {
            compose(
                &project,
                &env_file,
                &env,
                &["exec", "-T", "postgres", "pg_isready", "-U", "fourleg", "-d", "postgres"],
            )
            .status
            .success()
        }),
    );
    // Step 2 of the file's header.
    let sql =
        ["CREATE ROLE keycloak LOGIN PASSWORD 'compose-test-keycloak'", "CREATE DATABASE keycloak OWNER keycloak"];
    let mut args = vec![
        "exec",
        "-T",
        "-e",
        "PGPASSWORD=compose-test-superuser",
        "postgres",
        "psql",
        "-v",
        "ON_ERROR_STOP=1",
        "-U",
        "fourleg",
        "-d",
        "postgres",
    ];
    for s in &sql {
        args.extend(["-c", s]);
    }
    ok(&compose(&project, &env_file, &env, &args), "creating keycloak's database");
    ok(&compose(&project, &env_file, &env, &["up", "-d", "keycloak"]), "compose up keycloak");

    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let status = |url: String| http.get(url).send().map_or(0, |r| r.status().as_u16());
    // OpenBao in server mode, uninitialised: sys/health answers 501.
    until("openbao answering", 60, Box::new(|| status(format!("http://127.0.0.1:{bao}/v1/sys/health")) == 501));
    until("keycloak ready", 240, Box::new(|| status(format!("http://127.0.0.1:{mgmt}/health/ready")) == 200));
    let issuer = http
        .get(format!("http://127.0.0.1:{kc}/realms/master/.well-known/openid-configuration"))
        .send()
        .unwrap()
        .json::<serde_json::Value>()
        .unwrap()["issuer"]
        .clone();
    assert_eq!(issuer, format!("http://127.0.0.1:{kc}/realms/master"));
    eprintln!("compose lab serving: {:.1}s", t.elapsed().as_secs_f64());

    ok(&compose(&project, &env_file, &env, &["down", "-v"]), "compose down -v");
    let left = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&left.stdout).trim().is_empty(), "compose down left containers");
    let volumes = Command::new("docker")
        .args(["volume", "ls", "--filter", &format!("label=com.docker.compose.project={project}"), "-q"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&volumes.stdout).trim().is_empty(), "compose down -v left volumes");
}
