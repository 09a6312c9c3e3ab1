//! What changed between two run documents, cell by cell, and the CI gate:
//! a regression (a cell that passed and does not now) or a stale expectation
//! fails the gate.

use std::fmt::Write as _;

use fourleg_scenario::Status;

use crate::document::RunDocument;

/// One cell (target × scenario) before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellChange {
    pub target: String,
    pub scenario: String,
    pub area: String,
    pub before: Option<Status>,
    pub after: Option<Status>,
}

/// A measured figure that moved beyond the tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureChange {
    pub target: String,
    pub scenario: String,
    pub rule: String,
    pub unit: String,
    pub before: f64,
    pub after: f64,
}

/// The differences between two documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Diff {
    /// Passed before, does not now.
    pub newly_failing: Vec<CellChange>,
    /// Did not pass before, passes now.
    pub newly_passing: Vec<CellChange>,
    /// Other status changes (fail → warn, n/a → fail, …).
    pub changed: Vec<CellChange>,
    /// Cells only in the new document.
    pub added: Vec<CellChange>,
    /// Cells only in the old document.
    pub removed: Vec<CellChange>,
    /// Figures that moved by more than `tolerance_pct`.
    pub figures: Vec<FigureChange>,
    pub tolerance_pct: f64,
}

fn passing(s: Status) -> bool {
    matches!(s, Status::Pass | Status::Info)
}

/// Compares two documents; figures moving by more than `tolerance_pct`
/// percent are reported.
#[must_use]
pub fn diff(old: &RunDocument, new: &RunDocument, tolerance_pct: f64) -> Diff {
    let mut d = Diff { tolerance_pct, ..Diff::default() };
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for doc in [old, new] {
        for run in &doc.runs {
            for s in &run.scenarios {
                let k = (run.target.name.clone(), s.id.clone(), s.area.clone());
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
    }
    for (target, scenario, area) in keys {
        let b = old.cell(&target, &scenario);
        let a = new.cell(&target, &scenario);
        let change = CellChange {
            target: target.clone(),
            scenario: scenario.clone(),
            area,
            before: b.map(|r| r.status),
            after: a.map(|r| r.status),
        };
        match (b, a) {
            (None, Some(_)) => d.added.push(change),
            (Some(_), None) => d.removed.push(change),
            (Some(b), Some(a)) => {
                if passing(b.status) && !passing(a.status) {
                    d.newly_failing.push(change);
                } else if !passing(b.status) && passing(a.status) {
                    d.newly_passing.push(change);
                } else if b.status != a.status {
                    d.changed.push(change);
                }
                for m in &a.measurements {
                    if let Some(p) = b.measurements.iter().find(|x| x.rule == m.rule && x.unit == m.unit) {
                        let base = p.value.abs().max(1.0);
                        if (m.value - p.value).abs() * 100.0 / base > tolerance_pct {
                            d.figures.push(FigureChange {
                                target: target.clone(),
                                scenario: scenario.clone(),
                                rule: m.rule.clone(),
                                unit: m.unit.clone(),
                                before: p.value,
                                after: m.value,
                            });
                        }
                    }
                }
            }
            (None, None) => {}
        }
    }
    d
}

fn word(s: Option<Status>) -> &'static str {
    s.map_or("absent", Status::word)
}

impl Diff {
    /// Nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.newly_failing.is_empty()
            && self.newly_passing.is_empty()
            && self.changed.is_empty()
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.figures.is_empty()
    }

    fn sections(&self) -> [(&'static str, &Vec<CellChange>); 5] {
        [
            ("newly failing", &self.newly_failing),
            ("newly passing", &self.newly_passing),
            ("changed", &self.changed),
            ("new", &self.added),
            ("removed", &self.removed),
        ]
    }

    /// Plain text.
    #[must_use]
    pub fn text(&self) -> String {
        if self.is_empty() {
            return "no change\n".into();
        }
        let mut out = String::new();
        for (title, list) in self.sections() {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title} ({}):", list.len());
            for c in list {
                let _ =
                    writeln!(out, "  {}  {}/{}  {} -> {}", c.target, c.area, c.scenario, word(c.before), word(c.after));
            }
        }
        if !self.figures.is_empty() {
            let _ = writeln!(out, "figures beyond ±{}% ({}):", self.tolerance_pct, self.figures.len());
            for f in &self.figures {
                let _ =
                    writeln!(out, "  {}  {}  {}: {} -> {} {}", f.target, f.scenario, f.rule, f.before, f.after, f.unit);
            }
        }
        out
    }

    /// Markdown.
    #[must_use]
    pub fn markdown(&self) -> String {
        if self.is_empty() {
            return "No change.\n".into();
        }
        let mut out = String::from("## fourleg diff\n");
        for (title, list) in self.sections() {
            if list.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                "\n### {title} ({})\n\n| target | scenario | before | after |\n|---|---|---|---|",
                list.len()
            );
            for c in list {
                let _ = writeln!(
                    out,
                    "| `{}` | `{}/{}` | {} | {} |",
                    c.target,
                    c.area,
                    c.scenario,
                    word(c.before),
                    word(c.after)
                );
            }
        }
        if !self.figures.is_empty() {
            let _ = writeln!(
                out,
                "\n### figures beyond ±{}%\n\n| target | scenario | rule | before | after |\n|---|---|---|---|---|",
                self.tolerance_pct
            );
            for f in &self.figures {
                let _ = writeln!(
                    out,
                    "| `{}` | `{}` | {} | {} {} | {} {} |",
                    f.target, f.scenario, f.rule, f.before, f.unit, f.after, f.unit
                );
            }
        }
        out
    }
}

/// The outcome of gating a run on a baseline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gate {
    /// Cells that passed in the baseline and do not now.
    pub regressions: Vec<CellChange>,
    /// (target, scenario, reason): expected failures that no longer fail.
    pub stale: Vec<(String, String, String)>,
    /// (target, scenario, reason): harness errors.
    pub errors: Vec<(String, String, String)>,
}

/// Gates `current` on `baseline`.
#[must_use]
pub fn gate(baseline: &RunDocument, current: &RunDocument) -> Gate {
    let d = diff(baseline, current, f64::INFINITY);
    let mut g = Gate { regressions: d.newly_failing, ..Gate::default() };
    for run in &current.runs {
        for s in &run.scenarios {
            if s.stale_expectation {
                g.stale.push((run.target.name.clone(), s.id.clone(), s.expected_failure.clone().unwrap_or_default()));
            }
            if s.status == Status::Error {
                g.errors.push((run.target.name.clone(), s.id.clone(), s.reason.clone().unwrap_or_default()));
            }
        }
    }
    g
}

impl Gate {
    /// 2 on harness errors, 1 on regressions or stale expectations, else 0.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        if self.errors.is_empty() {
            u8::from(!self.regressions.is_empty() || !self.stale.is_empty())
        } else {
            2
        }
    }

    /// What the gate found, as text.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.regressions {
            let _ = writeln!(
                out,
                "regression: {} {}/{}: {} -> {}",
                c.target,
                c.area,
                c.scenario,
                word(c.before),
                word(c.after)
            );
        }
        for (t, s, r) in &self.stale {
            let _ = writeln!(
                out,
                "stale expectation: {t} {s} is expected to fail ({r}) but no longer does; remove it from the profile"
            );
        }
        for (t, s, r) in &self.errors {
            let _ = writeln!(out, "harness error: {t} {s}: {r}");
        }
        if out.is_empty() {
            out.push_str("baseline gate: no regression, no stale expectation\n");
        }
        out
    }
}
