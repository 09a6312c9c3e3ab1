//! A forged token is part of the evidence, decoded (what a vendor needs to
//! see what was sent), and never present as a token.

use std::path::Path;
use std::sync::Arc;

use fourleg_scenario::{Engine, Registry, Status};
use fourleg_target::{Profile, Target};
use fourleg_testbed::TestBed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_token_is_recorded_decoded_and_never_whole() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let registry = Registry::load(&repo.join("suites/requirements.toml"))?;
    let scenarios = fourleg_scenario::scenario::load_all(&repo.join("suites"), &registry)?;
    let s = scenarios.iter().find(|s| s.id == "alg-none-subject").expect("scenario exists");
    let bed = TestBed::start(None).await?;
    let target = Arc::new(Target::connect(Profile::load(&TestBed::profile_path())?, Some(bed.lab_context())).await?);
    let r = Engine::new(target, Arc::new(registry)).run(s).await?;
    assert_eq!(r.status, Status::Pass, "{r:#?}");

    let forged = r.steps.iter().find_map(|st| st.tokens.get("forged")).expect("the forge step keeps its evidence");
    assert_eq!(forged.header["alg"], "none");
    assert!(!forged.signed);
    assert!(forged.claims["sub"].is_string(), "{:?}", forged.claims);

    // No token in any form: not the forged one (base64url JSON starts `eyJ`),
    // not the real ones it was made from.
    let json = serde_json::to_string(&r)?;
    assert!(!json.contains("eyJ"), "a token leaked into the result: {json}");
    Ok(())
}
