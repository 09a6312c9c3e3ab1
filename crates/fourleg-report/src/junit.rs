//! The matrix as JUnit XML for CI systems: one testcase per scenario and
//! target; failures carry the rule id and the message. Expected failures are
//! `skipped` with their reason, so a CI does not turn red on a documented
//! deviation; stale expectations are failures.

use std::fmt::Write as _;

use fourleg_scenario::Status;

use crate::document::RunDocument;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// Renders the document.
#[must_use]
pub fn render(doc: &RunDocument) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let total: usize = doc.runs.iter().map(|r| r.scenarios.len()).sum();
    let _ = writeln!(out, "<testsuites name=\"fourleg\" tests=\"{total}\">");
    for run in &doc.runs {
        let failures = run
            .scenarios
            .iter()
            .filter(|s| (s.is_unexpected_failure() && s.status != Status::Error) || s.stale_expectation)
            .count();
        let errors = run.scenarios.iter().filter(|s| s.status == Status::Error).count();
        let skipped = run
            .scenarios
            .iter()
            .filter(|s| {
                s.status == Status::NotApplicable
                    || (s.expected_failure.is_some() && !s.stale_expectation && s.status != Status::Pass)
            })
            .count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">",
            esc(&run.target.name),
            run.scenarios.len(),
            run.duration_ms as f64 / 1000.0
        );
        for s in &run.scenarios {
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                esc(&run.target.name),
                esc(&s.area),
                esc(&s.id),
                s.duration_ms as f64 / 1000.0
            );
            let worst = s.checks.iter().filter(|c| c.status == s.status).collect::<Vec<_>>();
            let detail = worst
                .iter()
                .map(|c| {
                    let grade = c.grade();
                    format!("{} [{grade}]: {}", c.rule, c.message)
                })
                .collect::<Vec<_>>()
                .join("\n");
            let first = worst.first().map(|c| format!("{}: {}", c.rule, c.message)).unwrap_or_default();
            if s.stale_expectation {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"stale-expectation\" message=\"{}\"/>\n    </testcase>",
                    esc(&format!(
                        "expected to fail ({}) but {}",
                        s.expected_failure.clone().unwrap_or_default(),
                        s.status
                    ))
                );
            } else if s.status == Status::Error {
                let _ = writeln!(
                    out,
                    ">\n      <error message=\"{}\">{}</error>\n    </testcase>",
                    esc(&s.reason.clone().unwrap_or(first)),
                    esc(&detail)
                );
            } else if s.status == Status::NotApplicable {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    esc(&s.reason.clone().unwrap_or_default())
                );
            } else if let (Some(reason), true) = (&s.expected_failure, s.status != Status::Pass) {
                let _ = writeln!(
                    out,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    esc(&format!("expected {}: {reason} ({first})", s.status))
                );
            } else if matches!(s.status, Status::Fail | Status::Warn | Status::Untestable) {
                let _ = writeln!(
                    out,
                    ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
                    s.status,
                    esc(&first),
                    esc(&detail)
                );
            } else {
                let _ = writeln!(out, "/>");
            }
        }
        let _ = writeln!(out, "  </testsuite>");
    }
    out.push_str("</testsuites>\n");
    out
}
