//! The run document: one JSON file holding one or more runs (a run is one
//! target against the suites). It is the single source of truth; every other
//! format is rendered from it. Its JSON Schema is `reports/schema/run-document.schema.json`.

use std::collections::BTreeMap;
use std::path::Path;

use fourleg_scenario::result::{RuleKind, Run, ScenarioResult};
use fourleg_scenario::Status;
use serde::{Deserialize, Serialize};

/// Version of the document layout. Bump on any breaking change and
/// regenerate the schema.
pub const DOCUMENT_SCHEMA_VERSION: u32 = 1;

/// Where the document was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Host {
    pub os: String,
    pub arch: String,
}

impl Host {
    /// This machine.
    #[must_use]
    pub fn current() -> Self {
        Self { os: std::env::consts::OS.into(), arch: std::env::consts::ARCH.into() }
    }
}

/// The run document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunDocument {
    pub schema_version: u32,
    pub fourleg_version: String,
    /// Version of the agent delegation profile (the AGENT- rules).
    pub profile_version: String,
    /// RFC 3339 UTC.
    pub generated_at: String,
    pub host: Host,
    /// One run per target, in the order asked.
    pub runs: Vec<Run>,
}

/// The document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a fourleg run document: {message}")]
    Parse { path: String, message: String },
    #[error("{path} has schema_version {found}; this fourleg reads {DOCUMENT_SCHEMA_VERSION}")]
    Version { path: String, found: u32 },
}

impl RunDocument {
    /// A document of `runs` produced now.
    #[must_use]
    pub fn new(runs: Vec<Run>, profile_version: &str, generated_at: String) -> Self {
        Self {
            schema_version: DOCUMENT_SCHEMA_VERSION,
            fourleg_version: env!("CARGO_PKG_VERSION").into(),
            profile_version: profile_version.into(),
            generated_at,
            host: Host::current(),
            runs,
        }
    }

    /// Reads a document.
    pub fn load(path: &Path) -> Result<Self, DocumentError> {
        let shown = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| DocumentError::Read { path: shown.clone(), source })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DocumentError::Parse { path: shown.clone(), message: e.to_string() })?;
        let found = v["schema_version"].as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        if found != DOCUMENT_SCHEMA_VERSION {
            return Err(DocumentError::Version { path: shown, found });
        }
        serde_json::from_value(v).map_err(|e| DocumentError::Parse { path: shown, message: e.to_string() })
    }

    /// The JSON text (pretty, stable key order).
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the document serialises") + "\n"
    }

    /// Scenario ids in suite order (first appearance across runs), with their area and title.
    #[must_use]
    pub fn scenarios(&self) -> Vec<(String, String, String)> {
        let mut seen = Vec::<(String, String, String)>::new();
        for run in &self.runs {
            for s in &run.scenarios {
                if !seen.iter().any(|(id, _, _)| *id == s.id) {
                    seen.push((s.id.clone(), s.area.clone(), s.title.clone()));
                }
            }
        }
        seen
    }

    /// The result of `scenario` on `target`.
    #[must_use]
    pub fn cell(&self, target: &str, scenario: &str) -> Option<&ScenarioResult> {
        self.runs.iter().find(|r| r.target.name == target).and_then(|r| r.scenarios.iter().find(|s| s.id == scenario))
    }
}

/// A target whose run has `error` cells, and why: the harness could not test
/// those scenarios, which says nothing about the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Errored {
    pub target: String,
    /// How many scenarios errored, of how many.
    pub errors: usize,
    pub total: usize,
    /// The distinct reasons, in order of first appearance.
    pub reasons: Vec<String>,
}

impl RunDocument {
    /// Every target with `error` cells, in run order, with their distinct
    /// reasons: what `matrix` prints last and `matrix.md` shows first.
    #[must_use]
    pub fn errored(&self) -> Vec<Errored> {
        self.runs
            .iter()
            .filter_map(|run| {
                let errors: Vec<&ScenarioResult> = run.scenarios.iter().filter(|s| s.status == Status::Error).collect();
                if errors.is_empty() {
                    return None;
                }
                let mut reasons: Vec<String> = Vec::new();
                for s in &errors {
                    let reason = s.reason.clone().unwrap_or_else(|| format!("{}: no reason recorded", s.id));
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                }
                Some(Errored {
                    target: run.target.name.clone(),
                    errors: errors.len(),
                    total: run.scenarios.len(),
                    reasons,
                })
            })
            .collect()
    }
}

/// Pass rates of one run, RFC rules and profile rules apart.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PassRates {
    pub rfc_passed: usize,
    pub rfc_applicable: usize,
    pub profile_passed: usize,
    pub profile_applicable: usize,
}

impl PassRates {
    /// Counts checks (not-applicable, info and untestable checks excluded:
    /// a check that could not be made, a failed precondition's dependants
    /// among them, counts neither for nor against its rule).
    #[must_use]
    pub fn of(run: &Run) -> Self {
        let mut r = Self::default();
        for c in run.scenarios.iter().flat_map(|s| &s.checks) {
            if matches!(c.status, Status::NotApplicable | Status::Info | Status::Untestable) {
                continue;
            }
            let passed = c.status == Status::Pass;
            match c.kind {
                RuleKind::Rfc => {
                    r.rfc_applicable += 1;
                    r.rfc_passed += usize::from(passed);
                }
                RuleKind::Profile => {
                    r.profile_applicable += 1;
                    r.profile_passed += usize::from(passed);
                }
            }
        }
        r
    }

    /// `passed/applicable (pct%)`, or `n/a`.
    #[must_use]
    pub fn show(passed: usize, applicable: usize) -> String {
        if applicable == 0 {
            return "n/a".into();
        }
        let pct = passed * 100 / applicable;
        format!("{passed}/{applicable} ({pct}%)")
    }
}

/// Counts of scenario statuses of a run.
#[must_use]
pub fn status_counts(run: &Run) -> BTreeMap<Status, usize> {
    let mut m = BTreeMap::new();
    for s in &run.scenarios {
        *m.entry(s.status).or_default() += 1;
    }
    m
}

/// The JSON Schema of the run document.
#[must_use]
pub fn schema() -> String {
    let s = schemars::schema_for!(RunDocument);
    serde_json::to_string_pretty(&s).expect("the schema serialises") + "\n"
}
