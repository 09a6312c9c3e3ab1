//! `fourleg matrix` and `fourleg diff`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use fourleg_lab::LabConfig;
use fourleg_report::RunDocument;
use fourleg_scenario::result::{Run, TargetInfo};
use fourleg_scenario::runner::{self, Observer};
use fourleg_scenario::{Scenario, ScenarioResult, Status};
use fourleg_target::{Profile, Target};
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

/// A target ready to run, or why it cannot.
enum Prepared {
    Connected { target: Arc<Target>, bytes: Vec<u8> },
    Unreachable { reason: String, info: TargetInfo },
}

/// What a target shares with others: the lab service or peer it runs on,
/// else its issuer. Targets that share it run one after another (their
/// scenarios disable clients and end sessions on the same server); targets
/// that share nothing run side by side.
fn shared_by(target: &Target) -> String {
    target.profile.lab.clone().unwrap_or_else(|| target.address())
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
    let begin = Instant::now();
    let targets = if targets.is_empty() { bundled_targets(config)? } else { targets.to_vec() };
    let (registry, scenarios) = run_cmd::load_suites(config, &run_cmd::suites_dir(config, suites), &[], &targets)?;

    // 1. Connect each target in turn: this starts the lab or the peer it
    //    needs, which must not happen twice at once (one lab, one peers.json).
    let mut prepared = Vec::new();
    for t in &targets {
        let started = runner::rfc3339_now();
        let p = match run_cmd::connect(config, t, true).await {
            Ok((target, bytes)) => Prepared::Connected { target, bytes },
            Err(e) => {
                let reason = crate::chain(&e);
                eprintln!("error: target {t}: {reason}");
                Prepared::Unreachable { reason, info: unreached(config, t) }
            }
        };
        prepared.push((t.clone(), started, p));
    }

    // 2. Run: targets that share a server in turn, the groups side by side.
    let total = u64::try_from(scenarios.len() * targets.len()).unwrap_or(u64::MAX);
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(total);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} scenarios × targets ({elapsed}) {msg}")
                .expect("valid template"),
        );
        b
    });
    let side_by_side = prepared.len() > 1;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (name, _, p)) in prepared.iter().enumerate() {
        let key = match p {
            Prepared::Connected { target, .. } => shared_by(target),
            Prepared::Unreachable { .. } => format!("unreachable:{name}"),
        };
        groups.entry(key).or_default().push(i);
    }
    let scenarios = Arc::new(scenarios);
    let registry = Arc::new(registry);
    let prepared = Arc::new(prepared);
    let mut tasks = tokio::task::JoinSet::new();
    for indices in groups.into_values() {
        let (scenarios, registry, prepared, bar) =
            (Arc::clone(&scenarios), Arc::clone(&registry), Arc::clone(&prepared), bar.clone());
        tasks.spawn(async move {
            let mut runs = Vec::new();
            for i in indices {
                let (name, started, p) = &prepared[i];
                let run = match p {
                    Prepared::Connected { target, bytes } => {
                        let lines = if side_by_side { Lines::for_target(name) } else { Lines::new() };
                        let observer = Arc::new(Bar { bar: bar.clone(), lines });
                        match run_cmd::run_connected(
                            Arc::clone(target),
                            bytes,
                            &scenarios,
                            &registry,
                            concurrency,
                            observer,
                        )
                        .await
                        {
                            Ok(run) => run,
                            Err(e) => {
                                let reason = crate::chain(&e);
                                say(bar.as_ref(), &format!("error: target {name}: {reason}"));
                                runner::unreachable(
                                    info_of(target, bytes),
                                    &scenarios,
                                    &registry.profile_version,
                                    started.clone(),
                                    &reason,
                                )
                            }
                        }
                    }
                    Prepared::Unreachable { reason, info } => runner::unreachable(
                        info.clone(),
                        &scenarios,
                        &registry.profile_version,
                        started.clone(),
                        reason,
                    ),
                };
                say(bar.as_ref(), &run_cmd::summary(&run));
                runs.push((i, run));
            }
            runs
        });
    }
    let mut runs: Vec<(usize, Run)> = Vec::new();
    while let Some(done) = tasks.join_next().await {
        runs.extend(done.map_err(|e| anyhow::anyhow!("a target's run panicked (a bug in fourleg): {e}"))?);
    }
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    // The order asked, whatever order they finished in.
    runs.sort_by_key(|(i, _)| *i);
    let runs: Vec<Run> = runs.into_iter().map(|(_, r)| r).collect();
    let doc = RunDocument::new(runs, &registry.profile_version, runner::rfc3339_now());
    let written = fourleg_report::write_all(&doc, out)?;
    let code = run_cmd::document_exit(&doc, baseline)?;
    print!("{}", closing(&doc, &written, begin.elapsed()));
    Ok(code)
}

/// What `matrix` prints last: each target's wall time and verdict, where
/// the reports went, and, when some target errored, which and why, so the
/// cause of an exit 2 is the last thing on the screen.
fn closing(doc: &RunDocument, written: &[std::path::PathBuf], took: std::time::Duration) -> String {
    let mut out = String::from("\ntarget                         wall   result\n");
    for run in &doc.runs {
        let s = &run.summary;
        let verdict = if s.by_status.get(&Status::Error).copied().unwrap_or(0) > 0 {
            "ERROR (not tested)".to_owned()
        } else if s.unexpected_failures > 0 || s.stale_expectations > 0 {
            format!("{} unexpected, {} stale", s.unexpected_failures, s.stale_expectations)
        } else {
            "as expected".to_owned()
        };
        let _ = writeln!(out, "{:<28} {:>6.1}s   {verdict}", run.target.name, run.duration_ms as f64 / 1000.0);
    }
    let _ = writeln!(out, "matrix of {} in {:.1}s", run_cmd::plural(doc.runs.len(), "target"), took.as_secs_f64());
    if let Some(dir) = written.first().and_then(|p| p.parent()) {
        let names: Vec<String> =
            written.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        let _ = writeln!(out, "wrote {} in {}", names.join(", "), dir.display());
    }
    let errored = doc.errored();
    if !errored.is_empty() {
        let _ = writeln!(out, "\nnot tested (exit 2): the harness could not test these targets:");
        for e in &errored {
            let _ = writeln!(out, "  {}: {} of {} scenarios errored", e.target, e.errors, e.total);
            for r in e.reasons.iter().take(3) {
                let _ = writeln!(out, "    {r}");
            }
        }
    }
    out
}

/// A line above the bar, or on stderr.
fn say(bar: Option<&ProgressBar>, line: &str) {
    match bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    }
}

/// What is known of a connected target.
fn info_of(target: &Target, bytes: &[u8]) -> TargetInfo {
    TargetInfo {
        name: target.name().to_owned(),
        product: target.profile.product.clone(),
        version: target.version.clone(),
        profile_hash: fourleg_core::hash::fnv1a_hex(bytes),
        issuer: target.endpoints.issuer.clone(),
    }
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
