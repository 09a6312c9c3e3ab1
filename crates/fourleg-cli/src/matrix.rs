//! `fourleg matrix` and `fourleg diff`.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use fourleg_lab::LabConfig;
use fourleg_report::RunDocument;
use fourleg_scenario::result::TargetInfo;
use fourleg_scenario::runner::{self, Observer};
use fourleg_scenario::{Scenario, ScenarioResult};
use fourleg_target::Profile;
use indicatif::{ProgressBar, ProgressStyle};

use crate::run::{self as run_cmd, Lines};

/// A progress bar over scenarios × targets on a terminal, lines elsewhere.
struct Bar {
    bar: Option<ProgressBar>,
    lines: Lines,
}

impl Observer for Bar {
    fn started(&self, s: &Scenario) {
        if let Some(b) = &self.bar {
            b.set_message(format!("{}/{}", s.area, s.id));
        }
    }

    fn finished(&self, r: &ScenarioResult) {
        match &self.bar {
            Some(b) => b.inc(1),
            None => self.lines.finished(r),
        }
    }
}

/// The bundled targets, in name order.
pub fn bundled_targets(config: &LabConfig) -> anyhow::Result<Vec<String>> {
    Ok(fourleg_target::profile::bundled(&config.fixtures_dir.join("targets"))?.into_keys().collect())
}

/// `fourleg matrix`.
pub async fn matrix(
    config: &LabConfig,
    targets: &[String],
    out: &Path,
    baseline: Option<&Path>,
    concurrency: usize,
    suites: Option<&Path>,
) -> anyhow::Result<u8> {
    let (registry, scenarios) = run_cmd::load_suites(&run_cmd::suites_dir(config, suites), &[])?;
    let targets = if targets.is_empty() { bundled_targets(config)? } else { targets.to_vec() };
    let total = u64::try_from(scenarios.len() * targets.len()).unwrap_or(u64::MAX);
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} scenarios × targets ({elapsed}) {msg}")
                .expect("valid template"),
        );
        b
    });
    let observer = Arc::new(Bar { bar: bar.clone(), lines: Lines::new() });
    let mut runs = Vec::new();
    for t in &targets {
        if let Some(b) = &bar {
            b.println(format!("target {t}"));
        }
        let started = runner::rfc3339_now();
        let run = match run_cmd::run_target(config, t, &scenarios, &registry, concurrency, true, observer.clone()).await
        {
            Ok(run) => run,
            // A target that cannot be reached gets a column of errors; the
            // others still run (exit 2 at the end).
            Err(e) => {
                let reason = crate::chain(&e);
                let message = format!("target {t}: {reason}");
                match &bar {
                    Some(b) => b.println(format!("error: {message}")),
                    None => eprintln!("error: {message}"),
                }
                runner::unreachable(unreached(config, t), &scenarios, &registry.profile_version, started, &reason)
            }
        };
        let line = run_cmd::summary(&run);
        match &bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
        runs.push(run);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let doc = RunDocument::new(runs, &registry.profile_version, runner::rfc3339_now());
    for p in fourleg_report::write_all(&doc, out)? {
        eprintln!("wrote {}", p.display());
    }
    run_cmd::document_exit(&doc, baseline)
}

/// What is known of a target that could not be reached: its profile, when
/// it loads.
fn unreached(config: &LabConfig, target: &str) -> TargetInfo {
    let path = fourleg_target::profile::resolve(target, &config.fixtures_dir.join("targets")).ok();
    let bytes = path.as_ref().and_then(|p| std::fs::read(p).ok()).unwrap_or_default();
    let profile = path.as_ref().and_then(|p| Profile::load(p).ok());
    TargetInfo {
        name: profile.as_ref().map_or_else(|| target.to_owned(), |p| p.name.clone()),
        product: profile.as_ref().map_or_else(|| "?".to_owned(), |p| p.product.clone()),
        version: profile.as_ref().and_then(|p| p.version.value.clone()),
        profile_hash: fourleg_core::hash::fnv1a_hex(&bytes),
        issuer: None,
    }
}

/// `fourleg diff`.
pub fn diff(old: &Path, new: &Path, markdown: bool, tolerance: f64) -> anyhow::Result<u8> {
    let a = RunDocument::load(old)?;
    let b = RunDocument::load(new)?;
    let d = fourleg_report::diff::diff(&a, &b, tolerance);
    print!("{}", if markdown { d.markdown() } else { d.text() });
    Ok(if d.newly_failing.is_empty() { crate::exit::OK } else { crate::exit::FINDINGS })
}
