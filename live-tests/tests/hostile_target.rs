//! Evidence comes from targets nobody trusts. The whole suite runs against
//! the test bed behind its hostile layer (script and markup in every
//! `error_description`, the caller's secrets and tokens echoed back in
//! errors, thousands of junk JWKS keys, a body of megabytes, bytes that are
//! not UTF-8), then:
//! - the run completes (no `error` from the harness, no crash), each body read
//!   is bounded;
//! - no rendered report (JSON, Markdown, HTML, JUnit) holds a client secret,
//!   a user password or a usable token;
//! - the HTML report escapes everything: no hostile markup survives as markup,
//!   and in a real headless Chromium no script of the target's runs.
//!
//! Not a live-lab test (the test bed is in-process), but it needs Chromium,
//! which is why it lives here beside the other browser test.

use std::path::Path;
use std::sync::Arc;

use fourleg_live_tests::browser::Driver;
use fourleg_report::RunDocument;
use fourleg_scenario::runner::{self, Quiet};
use fourleg_scenario::{Engine, Registry, Status};
use fourleg_target::{Profile, Target};
use fourleg_testbed::{hostile, TestBed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_target_cannot_leak_or_inject_through_the_reports() -> anyhow::Result<()> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let registry = Registry::load(&repo.join("suites/requirements.toml"))?;
    let scenarios = fourleg_scenario::scenario::load_all(&repo.join("suites"), &registry)?;
    let bed = TestBed::start_hostile().await?;
    let ctx = bed.lab_context();
    let secrets: Vec<String> =
        ctx.client_secrets.values().chain(ctx.user_passwords.values()).map(|s| s.expose().to_owned()).collect();
    assert!(!secrets.is_empty());
    let profile = Profile::load(&TestBed::profile_path())?;
    let target = Arc::new(Target::connect(profile, Some(ctx)).await?);
    let engine = Arc::new(Engine::new(target, Arc::new(registry.clone())));
    let run = runner::run(engine, &scenarios, 4, b"", &registry.profile_version, Arc::new(Quiet))
        .await
        .map_err(|d| anyhow::anyhow!("the hostile target was taken for a dead one: {d}"))?;
    drop(bed);

    // The harness kept going: every scenario has a verdict of its own.
    let errors: Vec<_> =
        run.scenarios.iter().filter(|s| s.status == Status::Error).map(|s| (&s.id, &s.reason)).collect();
    assert!(errors.is_empty(), "harness errors: {errors:#?}");
    assert_eq!(run.scenarios.len(), scenarios.len());
    // The hostile text did reach the evidence (else this test proves nothing).
    let json = serde_json::to_string(&run)?;
    assert!(json.contains("__fourleg_pwned"), "no hostile error was recorded");
    assert!(json.contains("you sent:"), "no echo was recorded");

    let doc = RunDocument::new(vec![run], &registry.profile_version, runner::rfc3339_now());
    let dir = std::env::temp_dir().join(format!("fourleg-hostile-{}", std::process::id()));
    let files = fourleg_report::write_all(&doc, &dir)?;
    for f in &files {
        let text = std::fs::read_to_string(f)?;
        for s in &secrets {
            assert!(!text.contains(s.as_str()), "{} holds a secret or password", f.display());
        }
        let jwts = fourleg_core::jwt::find_signed_jwts(&text);
        assert!(jwts.is_empty(), "{} holds {} signed tokens", f.display(), jwts.len());
        assert!(text.len() < 16 * 1024 * 1024, "{} is {} bytes: a body was not bounded", f.display(), text.len());
    }
    let page = dir.join("index.html");
    let html = std::fs::read_to_string(&page)?;
    for raw in [hostile::SCRIPT, hostile::MARKUP, "<script>window.__fourleg", "<img src=x"] {
        assert!(!html.contains(raw), "the HTML report holds the target's markup unescaped: {raw}");
    }

    // In a real browser: open every cell's evidence; nothing of the target runs.
    let driver = Driver::start().await?;
    driver.open(&format!("file://{}", page.display())).await?;
    let opened = driver
        .js("let n = 0; for (const b of document.querySelectorAll('button.cell')) { b.click(); n++; } \
             return [n, document.getElementById('evidence').textContent.includes('__fourleg_pwned')]")
        .await?;
    assert_eq!(opened[0].as_u64(), Some(scenarios.len() as u64), "every cell opened");
    let pwned = driver.js("return typeof window.__fourleg_pwned").await?;
    assert_eq!(pwned, "undefined", "a target's script ran in the report");
    // The hostile text is shown, as text.
    let shown = driver
        .js("const b = [...document.querySelectorAll('button.cell')].find(b => { b.click(); \
             return document.getElementById('evidence').textContent.includes('__fourleg_pwned'); }); return !!b")
        .await?;
    assert_eq!(shown, true, "the evidence shows what the target said");
    assert_eq!(driver.js("return typeof window.__fourleg_pwned").await?, "undefined");
    driver.quit().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
