//! Runs a set of scenarios against one target: independent ones concurrently
//! in a bounded pool, the ones that change shared state (hooks that disable a
//! client) alone afterwards, and the whole run stops when the target stops
//! answering.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Semaphore;

use crate::engine::{Engine, TargetDown};
use crate::result::{Run, ScenarioResult, Status, Summary, TargetInfo, SCHEMA_VERSION};
use crate::scenario::{Action, Scenario};

/// Receives results as they arrive (a live line per scenario).
pub trait Observer: Send + Sync {
    fn started(&self, scenario: &Scenario);
    fn finished(&self, result: &ScenarioResult);
}

/// An observer that says nothing.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {
    fn started(&self, _: &Scenario) {}
    fn finished(&self, _: &ScenarioResult) {}
}

/// Whether a scenario changes state other scenarios rely on (hooks that
/// disable a client), or reads state others change: a tool call reads what
/// the API behind the resource received, which another tool call would
/// add to.
#[must_use]
pub fn is_exclusive(s: &Scenario) -> bool {
    s.steps.iter().any(|st| match &st.action {
        Action::Hook(_) => true,
        Action::Resource(r) => r.tool || r.scoped_tool,
        _ => false,
    })
}

/// RFC 3339 UTC of now, to the second.
#[must_use]
pub fn rfc3339_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Runs `scenarios` with at most `concurrency` at once.
pub async fn run(
    engine: Arc<Engine>,
    scenarios: &[Scenario],
    concurrency: usize,
    profile_bytes: &[u8],
    profile_version: &str,
    observer: Arc<dyn Observer>,
) -> Result<Run, TargetDown> {
    let begin = Instant::now();
    let started_at = rfc3339_now();
    // Identities first, once, before any scenario's first step.
    let prelude = engine.prelude().await.clone();
    let pool = Arc::new(Semaphore::new(concurrency.max(1)));
    let (shared, exclusive): (Vec<&Scenario>, Vec<&Scenario>) = scenarios.iter().partition(|s| !is_exclusive(s));
    let mut handles = Vec::new();
    for s in shared {
        let (engine, pool, observer, s) = (Arc::clone(&engine), Arc::clone(&pool), Arc::clone(&observer), s.clone());
        let scenario = s.clone();
        handles.push((
            scenario,
            tokio::spawn(async move {
                let _permit = pool.acquire_owned().await.expect("the pool is never closed");
                observer.started(&s);
                let r = engine.run(&s).await;
                if let Ok(r) = &r {
                    observer.finished(r);
                }
                r
            }),
        ));
    }
    let mut results = Vec::new();
    let mut down = None;
    for (s, h) in handles {
        match h.await {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(d)) => {
                down.get_or_insert(d);
            }
            // A panic is a bug of the harness in this scenario, not the
            // target going away: this scenario errors, the others stand.
            Err(e) => {
                let r = harness_bug(&s, &e.to_string());
                observer.finished(&r);
                results.push(r);
            }
        }
    }
    if let Some(d) = down {
        return Err(d);
    }
    for s in exclusive {
        observer.started(s);
        let r = engine.run(s).await?;
        observer.finished(&r);
        results.push(r);
    }
    let order: Vec<&str> = scenarios.iter().map(|s| s.id.as_str()).collect();
    results.sort_by_key(|r| order.iter().position(|id| *id == r.id));
    let target = engine.target();
    Ok(Run {
        schema_version: SCHEMA_VERSION,
        fourleg_version: env!("CARGO_PKG_VERSION").into(),
        profile_version: profile_version.into(),
        started_at,
        duration_ms: u64::try_from(begin.elapsed().as_millis()).unwrap_or(u64::MAX),
        target: TargetInfo {
            name: target.name().into(),
            product: target.product().to_owned(),
            version: target.version.clone(),
            profile_hash: fourleg_core::hash::fnv1a_hex(profile_bytes),
            issuer: target.endpoints.issuer.clone(),
        },
        summary: Summary::of(&results),
        scenarios: results,
        prelude,
    })
}

/// The result of a scenario whose task panicked: `error`, with the panic.
fn harness_bug(s: &Scenario, panic: &str) -> ScenarioResult {
    ScenarioResult {
        id: s.id.clone(),
        area: s.area.clone(),
        title: s.title.clone(),
        status: Status::Error,
        checks: Vec::new(),
        preconditions: Vec::new(),
        steps: Vec::new(),
        measurements: Vec::new(),
        expected_failure: None,
        stale_expectation: false,
        reason: Some(format!("a bug in fourleg, not a finding about the target: {panic}")),
        duration_ms: 0,
    }
}

/// The run of a target that could not be reached at all (its lab or peer
/// did not start, its profile did not connect, it stopped answering): every
/// scenario is `error` with the reason, so a matrix keeps the other targets'
/// columns and still says plainly that this one was not tested.
#[must_use]
pub fn unreachable(
    target: TargetInfo,
    scenarios: &[Scenario],
    profile_version: &str,
    started_at: String,
    reason: &str,
) -> Run {
    let results: Vec<ScenarioResult> = scenarios
        .iter()
        .map(|s| ScenarioResult {
            id: s.id.clone(),
            area: s.area.clone(),
            title: s.title.clone(),
            status: Status::Error,
            checks: Vec::new(),
            steps: Vec::new(),
            measurements: Vec::new(),
            expected_failure: None,
            stale_expectation: false,
            reason: Some(format!("the target was not tested: {reason}")),
            preconditions: Vec::new(),
            duration_ms: 0,
        })
        .collect();
    Run {
        schema_version: SCHEMA_VERSION,
        fourleg_version: env!("CARGO_PKG_VERSION").into(),
        profile_version: profile_version.into(),
        started_at,
        duration_ms: 0,
        target,
        summary: Summary::of(&results),
        scenarios: results,
        prelude: crate::result::Prelude::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_target_is_a_column_of_errors_with_the_reason() {
        let registry = crate::Registry::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/requirements.toml"),
        )
        .unwrap();
        let scenarios = crate::scenario::load_all(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites"),
            &registry,
        )
        .unwrap();
        let info = TargetInfo {
            name: "x".into(),
            product: "X".into(),
            version: None,
            profile_hash: String::new(),
            issuer: None,
        };
        let run = unreachable(info, &scenarios, "1", rfc3339_now(), "peer x did not start");
        assert_eq!(run.scenarios.len(), scenarios.len());
        assert!(run.scenarios.iter().all(|r| r.status == Status::Error));
        assert!(run.scenarios[0].reason.as_deref().unwrap().contains("peer x did not start"));
        assert_eq!(run.summary.by_status.get(&Status::Error), Some(&scenarios.len()));
    }

    /// Scenarios that read what the API behind a resource received run
    /// one at a time, as hooks do; the rest share the pool.
    #[test]
    fn tool_calls_and_hooks_run_alone() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        let registry = crate::Registry::load(&root.join("requirements.toml")).unwrap();
        let scenarios = crate::scenario::load_all(&root, &registry).unwrap();
        let alone = |id: &str| is_exclusive(scenarios.iter().find(|s| s.id == id).unwrap());
        for id in ["no-token-passthrough", "downstream-token-delegated", "tool-scope-checked"] {
            assert!(alone(id), "{id}");
        }
        assert!(!alone("other-audience-refused"));
        assert!(!alone("expired-token-refused"));
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20);
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.starts_with("20"), "{t}");
    }
}
