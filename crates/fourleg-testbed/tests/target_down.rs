//! Faults read as faults: a target that stops answering (before or during
//! a run) stops the run with one clear message, instead of failing every
//! scenario one by one; a panic in a scenario is a harness error of that
//! scenario alone.

use std::path::Path;
use std::sync::Arc;

use fourleg_scenario::runner::{self, Quiet};
use fourleg_scenario::{Engine, Registry, Scenario};
use fourleg_target::{Profile, Target};
use fourleg_testbed::TestBed;

/// The registry, every scenario, a conformant test bed and an engine on it.
async fn setup() -> anyhow::Result<(Registry, Vec<Scenario>, TestBed, Arc<Engine>)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let registry = Registry::load(&repo.join("suites/requirements.toml"))?;
    let scenarios = fourleg_scenario::scenario::load_all(&repo.join("suites"), &registry)?;
    let bed = TestBed::start(None).await?;
    let profile = Profile::load(&TestBed::profile_path())?;
    let target = Arc::new(Target::connect(profile, Some(bed.lab_context())).await?);
    let engine = Arc::new(Engine::new(target, Arc::new(registry.clone())));
    Ok((registry, scenarios, bed, engine))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_answering_stops_the_run() -> anyhow::Result<()> {
    let (registry, scenarios, bed, engine) = setup().await?;
    drop(bed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let err = runner::run(engine, &scenarios, 4, b"", &registry.profile_version, Arc::new(Quiet))
        .await
        .expect_err("the run must stop");
    let text = err.to_string();
    assert!(text.contains("stopped answering"), "{text}");
    assert!(text.contains("testbed"), "{text}");
    Ok(())
}

/// Calls `on(id)` as each scenario starts, and counts results.
struct Hook<F: Fn(&str) + Send + Sync> {
    on_start: F,
    finished: std::sync::Mutex<Vec<fourleg_scenario::ScenarioResult>>,
}

impl<F: Fn(&str) + Send + Sync> runner::Observer for Hook<F> {
    fn started(&self, s: &fourleg_scenario::Scenario) {
        (self.on_start)(&s.id);
    }
    fn finished(&self, r: &fourleg_scenario::ScenarioResult) {
        self.finished.lock().unwrap().push(r.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_scenario_is_a_harness_error_of_that_scenario_alone() -> anyhow::Result<()> {
    let (registry, all, bed, engine) = setup().await?;
    let scenarios: Vec<_> = all.into_iter().filter(|s| s.area == "core").collect();
    assert!(scenarios.len() >= 3);
    let victim = scenarios[1].id.clone();
    let v = victim.clone();
    let hook = Arc::new(Hook {
        on_start: move |id: &str| assert!(id != v, "a bug in the harness"),
        finished: std::sync::Mutex::default(),
    });
    let run = runner::run(engine, &scenarios, 4, b"", &registry.profile_version, hook.clone())
        .await
        .expect("a panic is not the target stopping");
    let bad = run.scenarios.iter().find(|r| r.id == victim).unwrap();
    assert_eq!(bad.status, fourleg_scenario::Status::Error);
    let reason = bad.reason.as_deref().unwrap();
    assert!(reason.contains("a bug in fourleg") && reason.contains("a bug in the harness"), "{reason}");
    assert!(!reason.contains("stopped answering"), "{reason}");
    assert!(
        run.scenarios.iter().filter(|r| r.id != victim).all(|r| r.status != fourleg_scenario::Status::Error),
        "the other scenarios ran: {:#?}",
        run.scenarios.iter().map(|r| (&r.id, r.status)).collect::<Vec<_>>()
    );
    assert_eq!(run.scenarios.len(), scenarios.len());
    drop(bed);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_mid_run_stops_the_run_as_an_error() -> anyhow::Result<()> {
    let (registry, scenarios, bed, engine) = setup().await?;
    // The bed goes away once a few scenarios have started.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let started = std::sync::atomic::AtomicUsize::new(0);
    let tx = std::sync::Mutex::new(Some(tx));
    let hook = Arc::new(Hook {
        on_start: move |_: &str| {
            if started.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 6 {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            }
        },
        finished: std::sync::Mutex::default(),
    });
    let killer = tokio::task::spawn_blocking(move || {
        let _ = rx.recv();
        drop(bed);
    });
    let err = runner::run(engine, &scenarios, 4, b"", &registry.profile_version, hook.clone())
        .await
        .expect_err("the run must stop, not grade a target that is gone");
    killer.await?;
    let text = err.to_string();
    assert!(text.contains("stopped answering"), "{text}");
    // Whatever finished before the kill was graded on real answers.
    assert!(hook.finished.lock().unwrap().iter().all(|r| r.status != fourleg_scenario::Status::Error));
    Ok(())
}
