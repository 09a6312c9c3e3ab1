//! The matrix as Markdown: short enough for a pull request or
//! `$GITHUB_STEP_SUMMARY`, grouped by area, with a legend and per-target pass
//! rates for RFC rules and profile rules apart.

use std::fmt::Write as _;

use fourleg_scenario::result::ScenarioResult;
use fourleg_scenario::Status;

use crate::document::{PassRates, RunDocument};

/// The mark of a status in tables.
#[must_use]
pub fn mark(status: Status) -> &'static str {
    match status {
        Status::Pass => "✅ pass",
        Status::Info => "ℹ️ info",
        Status::NotApplicable => "➖ n/a",
        Status::Warn => "⚠️ warn",
        Status::Fail => "❌ fail",
        Status::Untestable => "❓ untestable",
        Status::Error => "💥 error",
    }
}

/// A cell: the status, marked when the profile expects it or the expectation
/// is stale, and for a finding the rules that decided it.
#[must_use]
pub fn cell(r: Option<&ScenarioResult>) -> String {
    let Some(r) = r else { return "·".into() };
    let status = if r.stale_expectation {
        format!("{} (stale xfail)", mark(r.status))
    } else if r.expected_failure.is_some() && r.status != Status::Pass {
        format!("{} (expected)", mark(r.status))
    } else {
        mark(r.status).into()
    };
    let rules = r.deciding_rules();
    if rules.is_empty() {
        status
    } else {
        format!("{status}<br>{}", rules.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(" "))
    }
}

/// Renders the document.
#[must_use]
pub fn render(doc: &RunDocument) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# fourleg compatibility matrix\n");
    let _ = writeln!(
        out,
        "fourleg {} · agent delegation profile v{} · {}\n",
        doc.fourleg_version, doc.profile_version, doc.generated_at
    );
    let _ = writeln!(out, "| target | product | version | RFC rules passed | profile rules passed |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for run in &doc.runs {
        let p = PassRates::of(run);
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            run.target.name,
            run.target.product,
            run.target.version.as_deref().unwrap_or("?"),
            PassRates::show(p.rfc_passed, p.rfc_applicable),
            PassRates::show(p.profile_passed, p.profile_applicable),
        );
    }
    let errored = doc.errored();
    if !errored.is_empty() {
        let _ = writeln!(out, "\n## Not tested\n");
        let _ =
            writeln!(out, "The harness could not test these cells (`💥 error`); they say nothing about the target.\n");
        for e in &errored {
            let _ = writeln!(out, "- `{}`: {} of {} scenarios errored:", e.target, e.errors, e.total);
            for reason in e.reasons.iter().take(MAX_REASONS) {
                let _ = writeln!(out, "  - {}", escape(&one_line(reason)));
            }
            if e.reasons.len() > MAX_REASONS {
                let _ = writeln!(out, "  - … and {} more reasons (see matrix.json)", e.reasons.len() - MAX_REASONS);
            }
        }
    }
    let scenarios = doc.scenarios();
    let mut areas: Vec<&str> = Vec::new();
    for (_, area, _) in &scenarios {
        if !areas.contains(&area.as_str()) {
            areas.push(area);
        }
    }
    for area in areas {
        let _ = writeln!(out, "\n## {area}\n");
        let head: Vec<String> = doc.runs.iter().map(|r| format!("`{}`", r.target.name)).collect();
        let _ = writeln!(out, "| scenario | {} |", head.join(" | "));
        let _ = writeln!(out, "|---|{}", "---|".repeat(doc.runs.len()));
        for (id, a, title) in &scenarios {
            if a != area {
                continue;
            }
            let cells: Vec<String> = doc.runs.iter().map(|r| cell(doc.cell(&r.target.name, id))).collect();
            let _ = writeln!(out, "| `{id}` {} | {} |", escape(title), cells.join(" | "));
        }
    }
    let _ = writeln!(out, "\n## Legend\n");
    for (s, meaning) in LEGEND {
        let _ = writeln!(out, "- {}: {meaning}", mark(*s));
    }
    let _ = writeln!(
        out,
        "- (expected): the target's profile lists this failure, with a reason; (stale xfail): listed but no longer failing.\n\
         - RFC rules (and the MCP specification's, `MCP-…`, counted with them) are graded by their keyword (MUST → fail, SHOULD → warn, MAY → info); profile rules (`AGENT-…`) are the agent delegation profile, not RFC requirements."
    );
    out
}

/// What each status means, in spec terms.
pub const LEGEND: &[(Status, &str)] = &[
    (Status::Pass, "every check met its rule"),
    (Status::Info, "informational: a MAY not met, or a measured figure"),
    (Status::NotApplicable, "the target declares it lacks the feature the scenario needs, or its answer is one the rule does not cover (reason shown)"),
    (Status::Warn, "a SHOULD (RECOMMENDED) is not met"),
    (Status::Fail, "a MUST, or a rule of the agent delegation profile, is not met"),
    (Status::Untestable, "a prerequisite or precondition is missing (a login, a hook, a mapping, a baseline); the scenario counts it as a failure, the pass rates count it for no rule"),
    (Status::Error, "the harness broke; not a finding about the target"),
];

/// Distinct error reasons shown per target.
const MAX_REASONS: usize = 3;

/// A reason on one Markdown line, bounded (a target's own text can be long).
fn one_line(s: &str) -> String {
    let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 300 {
        format!("{}…", flat.chars().take(300).collect::<String>())
    } else {
        flat
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}
