//! `fourleg matrix` and `fourleg diff`.

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;

use fourleg_lab::LabConfig;
use fourleg_report::RunDocument;
use fourleg_scenario::runner::{self, Observer};
use fourleg_scenario::{Scenario, ScenarioResult};
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
        let run = run_cmd::run_target(config, t, &scenarios, &registry, concurrency, true, observer.clone()).await?;
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

/// `fourleg diff`.
pub fn diff(old: &Path, new: &Path, markdown: bool, tolerance: f64) -> anyhow::Result<u8> {
    let a = RunDocument::load(old)?;
    let b = RunDocument::load(new)?;
    let d = fourleg_report::diff::diff(&a, &b, tolerance);
    print!("{}", if markdown { d.markdown() } else { d.text() });
    Ok(if d.newly_failing.is_empty() { crate::exit::OK } else { crate::exit::FINDINGS })
}
