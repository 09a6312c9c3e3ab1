//! The HTML matrix in a real headless Chromium (Debian `chromium` and
//! `chromium-driver`), driven over WebDriver: it loads with no console
//! errors, the filters change what is shown, and a Keycloak cell's evidence
//! opens with its decoded claims. Also loads a 100 scenarios × 6 targets
//! matrix. Screenshots go to `target/report-screenshots/` (not committed).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use fourleg_live_tests::browser::Driver;
use fourleg_report::RunDocument;
use serde_json::json;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A document scaled to `scenarios` × `targets` by copying real results.
fn scaled(doc: &RunDocument, scenarios: usize, targets: usize) -> RunDocument {
    let mut out = doc.clone();
    let base = doc.runs[0].clone();
    out.runs = (0..targets)
        .map(|t| {
            let mut run = base.clone();
            run.target.name = format!("{}-{t}", base.target.name);
            run.scenarios = (0..scenarios)
                .map(|i| {
                    let mut s = base.scenarios[i % base.scenarios.len()].clone();
                    s.id = format!("{}-{i}", s.id);
                    s
                })
                .collect();
            run
        })
        .collect();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_matrix_works_in_chromium() -> anyhow::Result<()> {
    let committed = repo().join("reports/matrix.json");
    let doc = RunDocument::load(&committed).with_context(|| {
        format!("{} is the reference matrix; produce it with `cargo run -- matrix --out reports`", committed.display())
    })?;
    let dir = tempfile_dir()?;
    let page = dir.join("index.html");
    std::fs::write(&page, fourleg_report::html::render(&doc))?;
    let driver = Driver::start().await?;
    driver.cmd(reqwest::Method::POST, "url", json!({"url": format!("file://{}", page.display())})).await?;

    let cells = driver.js("return document.querySelectorAll('button.cell').length").await?;
    let expected: usize = doc.runs.iter().map(|r| r.scenarios.len()).sum();
    assert_eq!(cells.as_u64(), Some(expected as u64), "one button per cell");

    // Filters change what is shown.
    let rows_all = driver.js("return document.querySelectorAll('#matrix tr[data-scenario]').length").await?;
    let rows_pass = driver
        .js("const s = document.getElementById('f-status'); s.value = 'pass'; s.dispatchEvent(new Event('change')); \
             return document.querySelectorAll('#matrix tr[data-scenario]').length")
        .await?;
    assert!(rows_pass.as_u64() < rows_all.as_u64(), "the status filter hides rows ({rows_pass} of {rows_all})");
    let rows_area = driver
        .js("document.getElementById('f-status').value = ''; const a = document.getElementById('f-area'); a.value = 'may-act'; \
             a.dispatchEvent(new Event('change')); return [...document.querySelectorAll('#matrix tr.area')].map(r => r.textContent)")
        .await?;
    assert_eq!(rows_area, json!(["may-act"]), "the area filter shows one area");
    driver
        .js("const a = document.getElementById('f-area'); a.value = ''; a.dispatchEvent(new Event('change')); return 0")
        .await?;

    // A Keycloak cell's evidence opens, with decoded claims.
    let opened = driver
        .js("const b = document.querySelector('button.cell[data-target=\"keycloak\"][data-scenario=\"exchange-grant-accepted\"]'); b.click(); \
             return document.getElementById('evidence').textContent")
        .await?;
    let text = opened.as_str().unwrap_or_default();
    assert!(text.contains("exchange-grant-accepted") && text.contains("checks"), "{text}");
    assert!(text.contains("decoded (signature removed)"), "claims are shown: {text}");
    assert!(text.contains("RFC8693-2.1-grant"));
    driver.screenshot("keycloak-evidence.png").await?;
    let severe = driver.severe_logs().await?;
    assert!(severe.is_empty(), "console errors: {severe:?}");

    // 100 scenarios × 6 targets still loads and draws every cell.
    let big = dir.join("big.html");
    std::fs::write(&big, fourleg_report::html::render(&scaled(&doc, 100, 6)))?;
    let t = Instant::now();
    driver.cmd(reqwest::Method::POST, "url", json!({"url": format!("file://{}", big.display())})).await?;
    let cells = driver.js("return document.querySelectorAll('button.cell').length").await?;
    eprintln!("100 × 6 matrix loaded and drawn in {} ms", t.elapsed().as_millis());
    assert_eq!(cells.as_u64(), Some(600));
    driver.screenshot("matrix-100x6.png").await?;
    assert!(driver.severe_logs().await?.is_empty());
    driver.quit().await;
    // The pages were written for this test alone.
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("fourleg-browser-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
