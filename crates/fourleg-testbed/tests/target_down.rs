//! A target that stops answering stops the run with one clear message,
//! instead of failing every scenario one by one.

use std::path::Path;
use std::sync::Arc;

use fourleg_scenario::runner::{self, Quiet};
use fourleg_scenario::{Engine, Registry};
use fourleg_target::{Profile, Target};
use fourleg_testbed::TestBed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_stops_answering_stops_the_run() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let registry = Registry::load(&repo.join("suites/requirements.toml"))?;
    let scenarios = fourleg_scenario::scenario::load_all(&repo.join("suites"), &registry)?;
    let bed = TestBed::start(None).await?;
    let profile = Profile::load(&TestBed::profile_path())?;
    let target = Arc::new(Target::connect(profile, Some(bed.lab_context())).await?);
    drop(bed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let engine = Arc::new(Engine::new(target, Arc::new(registry.clone())));
    let err = runner::run(engine, &scenarios, 4, b"", &registry.profile_version, Arc::new(Quiet))
        .await
        .expect_err("the run must stop");
    let text = err.to_string();
    assert!(text.contains("stopped answering"), "{text}");
    assert!(text.contains("testbed"), "{text}");
    Ok(())
}
