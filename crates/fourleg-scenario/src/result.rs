//! Results: per check, per scenario, per run. The run document is the single
//! source of truth every report renders.

use std::collections::BTreeMap;
use std::fmt;

use fourleg_target::{HttpEvidence, Identity};
use serde::{Deserialize, Serialize};

use crate::requirement::Level;

/// Version of the run document's layout.
pub const SCHEMA_VERSION: u32 = 1;

/// The outcome of a check, or the worst of a scenario's checks.
///
/// Ordered from best to worst; a scenario's status is the maximum. A rule
/// seen broken (`fail`) outranks one that could not be checked
/// (`untestable`): a finding is never hidden behind missing evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The rule is met.
    Pass,
    /// Informational: a MAY not met, a measurement, a fact.
    Info,
    /// The target declares it lacks the feature (shown, never hidden).
    NotApplicable,
    /// A SHOULD is not met.
    Warn,
    /// A prerequisite is missing; counts as a failure, with its reason.
    Untestable,
    /// A MUST or a profile rule is not met.
    Fail,
    /// The harness broke; not a finding about the target.
    Error,
}

impl Status {
    /// The word used in reports.
    #[must_use]
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Info => "info",
            Status::NotApplicable => "not-applicable",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Untestable => "untestable",
            Status::Error => "error",
        }
    }

    /// Counts as a failure of the target (fail, untestable).
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Fail | Status::Untestable)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.word())
    }
}

/// One check of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CheckResult {
    /// Requirement id (`RFC8693-2.2.2-invalid-request`).
    pub rule: String,
    pub level: Level,
    /// `rfc` or `profile`: a report must never present a profile rule as an RFC one.
    pub kind: RuleKind,
    pub status: Status,
    /// What was expected and what was seen.
    pub message: String,
    /// Index of the step whose outcome was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
}

/// Whether a rule comes from a published specification (an RFC, or the MCP
/// specification: `Rfc`) or from the agent delegation profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Rfc,
    Profile,
}

impl RuleKind {
    /// The kind of a rule id.
    #[must_use]
    pub fn of(rule: &str) -> Self {
        if rule.starts_with("AGENT-") {
            RuleKind::Profile
        } else {
            RuleKind::Rfc
        }
    }
}

impl CheckResult {
    /// How the rule is graded, for people: `profile`, or its source and
    /// keyword (`RFC MUST`, `MCP MUST` for the MCP specification's rules).
    #[must_use]
    pub fn grade(&self) -> String {
        match self.kind {
            RuleKind::Profile => "profile".to_owned(),
            RuleKind::Rfc if self.rule.starts_with("MCP-") => format!("MCP {}", self.level),
            RuleKind::Rfc => format!("RFC {}", self.level),
        }
    }
}

/// What a step did, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepRecord {
    pub index: usize,
    /// `token`, `exchange`, `introspect`, …
    pub kind: String,
    /// A one-line summary.
    pub summary: String,
    /// Redacted HTTP exchanges of the step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpEvidence>,
    /// Tokens the step made itself (a forged one), decoded: header and
    /// claims, never the token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, fourleg_core::jwt::Decoded>,
    pub elapsed_ms: u64,
    /// Why the step did not run, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A measured figure (`AGENT-REVOKE-latency`: 1234 ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Measurement {
    pub rule: String,
    pub value: f64,
    pub unit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound: Option<f64>,
}

/// A precondition of a step (`[[steps.require]]`): what had to hold for the
/// scenario's checks to mean anything. It names no rule and never counts for
/// or against one; when it does not hold, the checks that depend on it are
/// `untestable` with its message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreconditionResult {
    /// Index of the step whose outcome it looked at.
    pub step: usize,
    pub held: bool,
    /// What was expected and what was seen.
    pub message: String,
}

/// One scenario against one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScenarioResult {
    pub id: String,
    pub area: String,
    pub title: String,
    pub status: Status,
    pub checks: Vec<CheckResult>,
    pub steps: Vec<StepRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    /// The profile expects this scenario to fail, for this reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_failure: Option<String>,
    /// The profile expects a failure but the scenario did not fail: the
    /// expectation is stale.
    #[serde(default)]
    pub stale_expectation: bool,
    /// Why the whole scenario is not-applicable, untestable or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The preconditions checked, held or not (never graded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preconditions: Vec<PreconditionResult>,
    pub duration_ms: u64,
}

impl ScenarioResult {
    /// The rules whose checks gave the scenario its status, when that status
    /// is a finding (warn, fail, untestable, error), each once: what a cell
    /// says beside its status, so a wrong error code never reads like an
    /// accepted attack.
    #[must_use]
    pub fn deciding_rules(&self) -> Vec<&str> {
        if !(self.status.is_failure() || self.status == Status::Warn) {
            return Vec::new();
        }
        let mut out: Vec<&str> = Vec::new();
        for c in self.checks.iter().filter(|c| c.status == self.status) {
            if !out.contains(&c.rule.as_str()) {
                out.push(&c.rule);
            }
        }
        out
    }

    /// A failure the profile did not announce.
    #[must_use]
    pub fn is_unexpected_failure(&self) -> bool {
        (self.status.is_failure() || self.status == Status::Warn) && self.expected_failure.is_none()
    }
}

/// The worst status of a set (pass when empty).
#[must_use]
pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
    statuses.into_iter().max().unwrap_or(Status::Pass)
}

/// The target of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TargetInfo {
    pub name: String,
    pub product: String,
    /// Version detected (lab service version, profile value or command).
    pub version: Option<String>,
    /// FNV-1a of the profile file's bytes, to tell runs of edited profiles apart.
    pub profile_hash: String,
    pub issuer: Option<String>,
}

/// Counts per status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    pub total: usize,
    pub by_status: BTreeMap<Status, usize>,
    pub unexpected_failures: usize,
    pub expected_failures: usize,
    pub stale_expectations: usize,
}

impl Summary {
    /// Summarises results.
    #[must_use]
    pub fn of(results: &[ScenarioResult]) -> Self {
        let mut s = Summary { total: results.len(), ..Summary::default() };
        for r in results {
            *s.by_status.entry(r.status).or_default() += 1;
            if r.is_unexpected_failure() {
                s.unexpected_failures += 1;
            }
            if r.expected_failure.is_some() && r.status != Status::Pass {
                s.expected_failures += 1;
            }
            if r.stale_expectation {
                s.stale_expectations += 1;
            }
        }
        s
    }
}

/// One run of scenarios against one target: the run document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Run {
    pub schema_version: u32,
    pub fourleg_version: String,
    /// Version of the agent delegation profile the AGENT- rules belong to.
    pub profile_version: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub target: TargetInfo,
    pub scenarios: Vec<ScenarioResult>,
    pub summary: Summary,
    /// Who the contract's principals are at the target, resolved once before
    /// any scenario's first step, with the requests that learned it.
    #[serde(default, skip_serializing_if = "Prelude::is_empty")]
    pub prelude: Prelude,
}

/// The identity prelude of a run: every contract principal's identity,
/// resolved before step 0 and never during grading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Prelude {
    /// By contract name (`alice`, `agent`).
    pub identities: BTreeMap<String, IdentityRecord>,
    /// The requests made to learn them (logins, client credentials), redacted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpEvidence>,
}

impl Prelude {
    /// Nothing was resolved (a run that never reached the target).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty() && self.http.is_empty()
    }
}

/// One principal's identity and how it was learned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityRecord {
    #[serde(flatten)]
    pub identity: Identity,
    pub source: IdentitySource,
    /// Why a request to learn it gave nothing (the identity is then what
    /// the profile says).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Where an identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IdentitySource {
    /// The profile declares the `sub`.
    Declared,
    /// The `sub` of a login's access token.
    Login,
    /// The `sub` of a client-credentials token.
    ClientCredentials,
    /// Only the profile's names (username, `client_id`): nothing to learn.
    Profile,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deciding_rules_are_those_of_the_worst_checks_once_each() {
        let check = |rule: &str, status| CheckResult {
            rule: rule.into(),
            level: Level::Must,
            kind: RuleKind::of(rule),
            status,
            message: String::new(),
            step: None,
        };
        let mut r = ScenarioResult {
            id: "s".into(),
            area: "a".into(),
            title: "t".into(),
            status: Status::Fail,
            checks: vec![
                check("AGENT-ATTACK-alg-none", Status::Pass),
                check("RFC8693-2.2.2-invalid-request", Status::Fail),
                check("RFC6749-5.2-shape", Status::Untestable),
                check("RFC8693-2.2.2-invalid-request", Status::Fail),
            ],
            steps: vec![],
            measurements: vec![],
            expected_failure: None,
            stale_expectation: false,
            reason: None,
            preconditions: vec![],
            duration_ms: 0,
        };
        assert_eq!(r.deciding_rules(), ["RFC8693-2.2.2-invalid-request"]);
        r.status = Status::Pass;
        assert!(r.deciding_rules().is_empty());
    }

    #[test]
    fn worst_orders_statuses() {
        assert_eq!(worst([]), Status::Pass);
        assert_eq!(worst([Status::Pass, Status::Info]), Status::Info);
        assert_eq!(worst([Status::Warn, Status::Fail, Status::Pass]), Status::Fail);
        assert_eq!(worst([Status::Fail, Status::Untestable]), Status::Fail);
        assert_eq!(worst([Status::Untestable, Status::Warn]), Status::Untestable);
        assert_eq!(worst([Status::Fail, Status::Error]), Status::Error);
        assert!(Status::Untestable.is_failure());
    }

    #[test]
    fn statuses_serialise_as_kebab_words() {
        assert_eq!(serde_json::to_string(&Status::NotApplicable).unwrap(), "\"not-applicable\"");
        assert_eq!(RuleKind::of("AGENT-CHAIN-sub"), RuleKind::Profile);
        assert_eq!(RuleKind::of("RFC8693-2.1-grant"), RuleKind::Rfc);
    }
}
