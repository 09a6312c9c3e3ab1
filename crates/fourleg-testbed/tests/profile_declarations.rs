//! What a profile declares changes what the engine does, both ways: a
//! declared limitation turns dependent steps `untestable` with the profile's
//! reason, and the same scenario passes when it is not declared.

use std::path::Path;
use std::sync::Arc;

use fourleg_scenario::{Engine, Registry, Scenario, ScenarioResult, Status};
use fourleg_target::{Profile, Target};
use fourleg_testbed::{Breakage, TestBed};

async fn run(profile_text: &str, scenario: &str) -> anyhow::Result<ScenarioResult> {
    run_on(None, profile_text, scenario).await
}

async fn run_on(broken: Option<Breakage>, profile_text: &str, scenario: &str) -> anyhow::Result<ScenarioResult> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let registry = Registry::load(&repo.join("suites/requirements.toml"))?;
    let scenarios: Vec<Scenario> = fourleg_scenario::scenario::load_all(&repo.join("suites"), &registry)?;
    let s = scenarios.into_iter().find(|s| s.id == scenario).expect("scenario exists");
    let bed = TestBed::start(broken).await?;
    let profile = Profile::parse(profile_text, &TestBed::profile_path())?;
    let target = Arc::new(Target::connect(profile, Some(bed.lab_context())).await?);
    let engine = Engine::new(target, Arc::new(registry));
    Ok(engine.run(&s).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_client_credentials_makes_a_clients_own_token_untestable_with_the_reason() -> anyhow::Result<()> {
    let base = std::fs::read_to_string(TestBed::profile_path())?;
    let kept = run(&base, "swapped-subject-actor").await?;
    assert_eq!(kept.status, Status::Pass, "{kept:#?}");

    let declared = base.replace("[features]\n", "[features]\nclient_credentials = false\n")
        + "\n[features.notes]\nclient-credentials = \"one token per client, then 400 (a product bug)\"\n";
    assert!(!base.contains("[features.notes]"), "the test bed profile grew notes; merge them here");
    let r = run(&declared, "swapped-subject-actor").await?;
    assert_eq!(r.status, Status::Untestable, "{r:#?}");
    let why = r.checks.iter().map(|c| c.message.as_str()).collect::<Vec<_>>().join("\n");
    assert!(why.contains("one token per client, then 400"), "{why}");
    assert!(why.contains("`agent`"), "{why}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_leeway_is_waited_out_before_expiry_is_judged() -> anyhow::Result<()> {
    let base = std::fs::read_to_string(TestBed::profile_path())?;
    assert!(base.contains("[short_lived]\n"), "the test bed profile declares a short-lived client");
    let declared = base.replace("[short_lived]\n", "[short_lived]\nleeway_s = 3\n");
    let r = run(&declared, "expired-subject-token").await?;
    assert_eq!(r.status, Status::Pass, "{r:#?}");
    let wait = r.steps.iter().find(|s| s.kind == "wait").expect("the scenario waits");
    assert!(wait.summary.contains("exp + 3 s leeway"), "{}", wait.summary);
    // Expiry cannot be reached before exp + leeway, whatever the token's lifetime.
    assert!(wait.elapsed_ms >= 3000, "waited only {} ms", wait.elapsed_ms);
    Ok(())
}

/// RFC 7009 §2: revoking access tokens is a SHOULD, and a server without it
/// answers unsupported_token_type (§2.2.1), which is conformant. Declared,
/// that answer is not-applicable and the scenarios that need it are too;
/// undeclared, it is untestable (the profile is wrong), and never a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_lack_of_access_token_revocation_is_not_applicable_never_a_failure() -> anyhow::Result<()> {
    let base = std::fs::read_to_string(TestBed::profile_path())?;
    let broken = Some(Breakage::AccessTokenRevocationUnsupported);
    let undeclared = run_on(broken, &base, "revoke-unknown-token-ok").await?;
    assert_eq!(undeclared.status, Status::Untestable, "{undeclared:#?}");
    assert!(undeclared.checks.iter().all(|c| c.status != Status::Fail), "{undeclared:#?}");

    let declared = base.replace("[features]\n", "[features]\naccess_token_revocation = false\n");
    let r = run_on(broken, &declared, "revoke-unknown-token-ok").await?;
    assert_eq!(r.status, Status::NotApplicable, "{r:#?}");
    let revoked: Vec<Status> = r.checks.iter().filter(|c| c.rule == "RFC7009-2.2-ok").map(|c| c.status).collect();
    // The unknown literal still gets 200; the two access-token revocations are not-applicable.
    assert_eq!(revoked, [Status::Pass, Status::NotApplicable, Status::NotApplicable], "{r:#?}");
    let chain = run_on(broken, &declared, "midchain-revoke-cascades-down-only").await?;
    assert_eq!(chain.status, Status::NotApplicable, "{chain:#?}");
    assert!(chain.reason.as_deref().is_some_and(|w| w.contains("access-token-revocation")), "{chain:#?}");
    Ok(())
}
