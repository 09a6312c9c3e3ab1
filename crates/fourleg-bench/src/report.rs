//! The benchmark document (`bench.json`, the source of truth) and its
//! Markdown rendering (`bench.md`), plus [`bench_target`], which fills one
//! target's part of it.

use std::fmt::Write as _;
use std::time::Duration;

use fourleg_target::Target;
use serde::{Deserialize, Serialize};

use crate::load::{self, Point, PointSettings};
use crate::machine::Machine;
use crate::revoke::{self, Outcome, RevokeResult, RevokeSettings};
use crate::Progress;

/// The version of the document's shape; bumped on an incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What `fourleg bench` measured, for every target, in one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchDocument {
    pub schema_version: u32,
    /// The fourleg that measured.
    pub fourleg: String,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub machine: Machine,
    /// `/proc/loadavg` before the first target.
    pub load_average_before: Option<[f64; 3]>,
    pub settings: Settings,
    pub targets: Vec<TargetBench>,
}

/// How the load generator ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Connection counts, one load point each.
    pub connections: Vec<usize>,
    pub warmup_s: f64,
    pub duration_s: f64,
    /// `closed-loop`: each connection sends its next request when the
    /// previous one is answered.
    pub model: String,
    /// Where the generator ran relative to the target.
    pub network: String,
    /// The chain each connection runs.
    pub chain: String,
    /// Worker threads of the generator's async runtime.
    pub generator_threads: usize,
    /// How the generator was compiled (`debug` or `release`): a debug
    /// generator spends more of the shared cores on itself.
    pub generator_build: String,
    /// Subtree revocation: tokens in the tree (root included); `None` when
    /// not measured.
    pub revocation_tree_size: Option<usize>,
    pub revocation_timeout_s: f64,
    pub revocation_concurrency: usize,
}

impl Settings {
    /// The load points.
    #[must_use]
    pub fn points(&self) -> Vec<PointSettings> {
        self.connections
            .iter()
            .map(|&connections| PointSettings {
                connections,
                warmup: Duration::from_secs_f64(self.warmup_s),
                duration: Duration::from_secs_f64(self.duration_s),
            })
            .collect()
    }

    /// The revocation settings, when it is measured.
    #[must_use]
    pub fn revocation(&self) -> Option<RevokeSettings> {
        self.revocation_tree_size.map(|tree_size| RevokeSettings {
            tree_size,
            timeout: Duration::from_secs_f64(self.revocation_timeout_s),
            concurrency: self.revocation_concurrency,
        })
    }
}

/// The chain, in words.
pub const CHAIN: &str = "alice's token exchanged by agent for mcp-server, then by mcp-server for downstream-api (RFC 8693 §2.1; actor tokens when the target declares delegation)";

/// One target's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetBench {
    pub target: String,
    pub product: String,
    /// The product's version, when known.
    pub version: Option<String>,
    /// Whether the hops carried actor tokens.
    pub delegation: bool,
    pub points: Vec<Point>,
    pub revocation: Option<RevokeResult>,
    /// Why the target could not be measured (the harness side), if it could not.
    pub error: Option<String>,
}

/// Runs every load point and, when asked, the revocation measurement on
/// `target`. A harness failure ends this target's part with `error` set;
/// what the target answers is counted, never an error here.
pub async fn bench_target(target: &Target, settings: &Settings, progress: &dyn Progress) -> TargetBench {
    let mut out = TargetBench {
        target: target.name().to_owned(),
        product: target.profile.product.clone(),
        version: target.version.clone(),
        delegation: target.profile.features.delegation,
        points: Vec::new(),
        revocation: None,
        error: None,
    };
    for p in settings.points() {
        // Fresh tokens per point: a long run outlives short access tokens.
        let start = match crate::chain::Start::obtain(target).await {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        };
        out.delegation = start.delegation();
        match load::run_point(target, &start, p, progress).await {
            Ok(point) => out.points.push(point),
            Err(e) => {
                out.error = Some(e.to_string());
                return out;
            }
        }
    }
    if let Some(r) = settings.revocation() {
        match revoke::measure(target, r, progress).await {
            Ok(res) => out.revocation = Some(res),
            Err(e) => out.error = Some(e.to_string()),
        }
    }
    out
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "—".to_owned(), |v| format!("{v:.digits$}"))
}

fn load3(l: Option<[f64; 3]>) -> String {
    l.map_or_else(|| "unknown".to_owned(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"))
}

impl BenchDocument {
    /// `bench.md`: the machine, the settings, a table of load points and the
    /// revocation figure of each target.
    #[must_use]
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let s = &self.settings;
        let _ = writeln!(o, "# fourleg bench\n");
        let _ = writeln!(
            o,
            "fourleg {} on {} core(s){}{} ({}), started {}; load average before: {}.\n",
            self.fourleg,
            m.cores,
            m.cpus_online.filter(|&c| c != m.cores).map(|c| format!(" of {c}")).unwrap_or_default(),
            m.cpu_model.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
            m.os,
            self.started_at,
            load3(self.load_average_before),
        );
        let _ = writeln!(
            o,
            "Load: {}, {}, the generator on the same cores as the target ({} async worker thread(s), {} build). \
             Each connection runs the two-hop chain: {}. Per point: {:.0} s warm-up, then a {:.0} s measured window; \
             logins and client tokens are taken before the warm-up. A request counts when its answer arrives in the window; \
             latencies are of successful exchanges only (exact percentiles), and a refused or failed exchange is an error, never timed.\n",
            s.model, s.network, s.generator_threads, s.generator_build, s.chain, s.warmup_s, s.duration_s
        );
        let _ = writeln!(o, "## Token exchange\n");
        let _ = writeln!(
            o,
            "| target | version | conns | exchanges/s | chains/s | p50 ms | p90 ms | p99 ms | max ms | errors | load avg (1 min) |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for t in &self.targets {
            let version = t.version.as_deref().unwrap_or("unknown");
            for p in &t.points {
                let l = p.exchange_latency;
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    t.target,
                    version,
                    p.connections,
                    opt(p.exchanges_per_s, 1),
                    opt(p.chains_per_s, 1),
                    opt(l.map(|x| x.p50_ms), 1),
                    opt(l.map(|x| x.p90_ms), 1),
                    opt(l.map(|x| x.p99_ms), 1),
                    opt(l.map(|x| x.max_ms), 1),
                    p.errors,
                    opt(p.load_average.map(|a| a[0]), 2),
                );
            }
            if t.points.is_empty() {
                let _ = writeln!(o, "| {} | {} | — | — | — | — | — | — | — | — | — |", t.target, version);
            }
        }
        let errs: Vec<String> = self
            .targets
            .iter()
            .flat_map(|t| {
                t.points.iter().flat_map(move |p| {
                    p.error_kinds
                        .iter()
                        .map(move |(k, n)| format!("- {} at {} connection(s): {n} × {k}", t.target, p.connections))
                })
            })
            .collect();
        if !errs.is_empty() {
            let _ = writeln!(o, "\nErrors by kind:\n\n{}", errs.join("\n"));
        }
        let _ = writeln!(o, "\n## Subtree revocation\n");
        let _ = writeln!(
            o,
            "Time from sending the RFC 7009 revocation of the root of a tree of exchanged tokens until every descendant \
             introspects inactive (RFC 7662), polled over {} connection(s), at most {:.0} s; \
             it cannot be shorter than one introspection round over the tree (\"round\").\n",
            s.revocation_concurrency, s.revocation_timeout_s
        );
        let _ = writeln!(o, "| target | declares cascade | tree | result | revoke ms | round ms |");
        let _ = writeln!(o, "|---|---|---:|---|---:|---:|");
        let mut notes = Vec::new();
        for t in &self.targets {
            let Some(r) = &t.revocation else {
                let why = if t.error.is_some() { "not measured (see below)" } else { "not measured" };
                let _ = writeln!(o, "| {} | — | — | {why} | — | — |", t.target);
                continue;
            };
            let declared = if r.declared { "yes" } else { "no" };
            let (result, revoke_ms, round_ms) = match &r.outcome {
                Outcome::Reached { ms, revoke_ms, baseline_round_ms, rounds, root_inactive, .. } => (
                    format!(
                        "**{ms:.1} ms** for all {} descendants ({rounds} round(s){})",
                        r.tree_size - 1,
                        if *root_inactive { "" } else { "; the root itself still active!" }
                    ),
                    Some(*revoke_ms),
                    Some(*baseline_round_ms),
                ),
                Outcome::NotReached {
                    after_ms,
                    revoke_ms,
                    baseline_round_ms,
                    still_active,
                    descendants,
                    root_inactive,
                    evidence,
                    rounds,
                    ..
                } => {
                    notes.push(format!(
                        "- {}: one descendant still active at the bound introspected as `{}`",
                        t.target,
                        serde_json::to_string(evidence).unwrap_or_default()
                    ));
                    (
                        format!(
                            "**not reached**: {still_active} of {descendants} descendants still active after {:.1} s, each introspected up to {rounds} time(s) after the revocation (root {})",
                            after_ms / 1000.0,
                            if *root_inactive { "inactive" } else { "still active" }
                        ),
                        Some(*revoke_ms),
                        Some(*baseline_round_ms),
                    )
                }
                Outcome::Untestable { reason } => (format!("untestable: {reason}"), None, None),
            };
            let _ = writeln!(
                o,
                "| {} | {declared} | {} | {result} | {} | {} |",
                t.target,
                r.tree_size,
                opt(revoke_ms, 1),
                opt(round_ms, 0)
            );
        }
        if !notes.is_empty() {
            let _ = writeln!(o, "\n{}", notes.join("\n"));
        }
        let failed: Vec<String> =
            self.targets.iter().filter_map(|t| t.error.as_ref().map(|e| format!("- {}: {e}", t.target))).collect();
        if !failed.is_empty() {
            let _ = writeln!(o, "\n## Not measured\n\n{}", failed.join("\n"));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::stats::Summary;

    fn summary(count: u64, p50: f64, p99: f64) -> Summary {
        Summary {
            count,
            p50_ms: p50,
            p90_ms: f64::midpoint(p50, p99),
            p99_ms: p99,
            max_ms: p99 * 1.5,
            mean_ms: p50 + 0.5,
        }
    }

    fn point(connections: usize, exchanges: u64, p50: f64, p99: f64, errors: &[(&str, u64)]) -> Point {
        let rate = |n: u64| (n > 0).then(|| n as f64 / 10.0);
        Point {
            connections,
            window_s: 10.0,
            exchanges,
            exchanges_per_s: rate(exchanges),
            chains: exchanges / 2,
            chains_per_s: rate(exchanges / 2),
            exchange_latency: (exchanges > 0).then(|| summary(exchanges, p50, p99)),
            hop1_latency: (exchanges > 0).then(|| summary(exchanges / 2, p50, p99)),
            hop2_latency: (exchanges > 0).then(|| summary(exchanges / 2, p50, p99)),
            chain_latency: (exchanges > 0).then(|| summary(exchanges / 2, p50 * 2.0, p99 * 2.0)),
            errors: errors.iter().map(|(_, n)| n).sum(),
            error_kinds: errors.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect::<BTreeMap<_, _>>(),
            load_average: Some([2.5, 1.75, 0.9]),
        }
    }

    /// A fixed document: a target that does not cascade, one that does, one
    /// that refused every exchange, and one that could not be reached.
    fn fixed() -> BenchDocument {
        BenchDocument {
            schema_version: SCHEMA_VERSION,
            fourleg: "0.1.0".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            machine: Machine {
                cores: 2,
                cpus_online: Some(2),
                cpu_model: Some("Example CPU @ 2.0GHz".into()),
                os: "linux x86_64".into(),
            },
            load_average_before: Some([0.5, 0.25, 0.1]),
            settings: Settings {
                connections: vec![4, 16],
                warmup_s: 3.0,
                duration_s: 10.0,
                model: "closed-loop".into(),
                network: "loopback (127.0.0.1)".into(),
                chain: CHAIN.into(),
                generator_threads: 2,
                generator_build: "release".into(),
                revocation_tree_size: Some(1000),
                revocation_timeout_s: 10.0,
                revocation_concurrency: 16,
            },
            targets: vec![
                TargetBench {
                    target: "keycloak".into(),
                    product: "Keycloak".into(),
                    version: Some("26.7.3".into()),
                    delegation: false,
                    points: vec![
                        point(4, 2200, 15.25, 38.0, &[]),
                        point(
                            16,
                            3000,
                            50.0,
                            104.0,
                            &[("hop 2 (mcp-server → downstream-api): no answer (no answer within 30s)", 3)],
                        ),
                    ],
                    revocation: Some(RevokeResult {
                        declared: false,
                        tree_size: 1000,
                        concurrency: 16,
                        timeout_ms: 10_000,
                        outcome: Outcome::NotReached {
                            after_ms: 10_012.5,
                            revoke_ms: 9.75,
                            baseline_round_ms: 3100.0,
                            still_active: 999,
                            descendants: 999,
                            root_inactive: true,
                            rounds: 3,
                            evidence: serde_json::json!({"active": true, "sub": "alice-id", "client_id": "mcp-server", "aud": "downstream-api", "exp": 1_767_225_900}),
                            poll_errors: 0,
                        },
                    }),
                    error: None,
                },
                TargetBench {
                    target: "broker".into(),
                    product: "fourleg broker".into(),
                    version: Some("0.1.0".into()),
                    delegation: true,
                    points: vec![point(4, 60_000, 0.6, 2.5, &[]), point(16, 80_000, 1.9, 6.0, &[])],
                    revocation: Some(RevokeResult {
                        declared: true,
                        tree_size: 1000,
                        concurrency: 16,
                        timeout_ms: 10_000,
                        outcome: Outcome::Reached {
                            ms: 41.5,
                            revoke_ms: 3.25,
                            baseline_round_ms: 38.0,
                            rounds: 1,
                            root_inactive: true,
                            poll_errors: 0,
                        },
                    }),
                    error: None,
                },
                TargetBench {
                    target: "refuser".into(),
                    product: "Refuser".into(),
                    version: None,
                    delegation: false,
                    points: vec![point(4, 0, 0.0, 0.0, &[("hop 1 (agent → mcp-server): 401 invalid_client", 5120)])],
                    revocation: Some(RevokeResult {
                        declared: false,
                        tree_size: 1000,
                        concurrency: 16,
                        timeout_ms: 10_000,
                        outcome: Outcome::Untestable {
                            reason: "the root could not be obtained: hop 1 (agent → mcp-server): 401 invalid_client"
                                .into(),
                        },
                    }),
                    error: None,
                },
                TargetBench {
                    target: "gone".into(),
                    product: String::new(),
                    version: None,
                    delegation: false,
                    points: Vec::new(),
                    revocation: None,
                    error: Some("target `gone` is unreachable at http://127.0.0.1:9/token: connection refused".into()),
                },
            ],
        }
    }

    #[test]
    fn bench_md_renders_every_outcome() {
        insta::assert_snapshot!(fixed().to_markdown());
    }

    #[test]
    fn bench_json_round_trips_and_names_its_outcomes() {
        let doc = fixed();
        let text = serde_json::to_string_pretty(&doc).unwrap();
        let back: BenchDocument = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["machine"]["cores"], 2);
        assert_eq!(v["targets"][0]["revocation"]["outcome"], "not-reached");
        assert_eq!(v["targets"][1]["revocation"]["outcome"], "reached");
        assert_eq!(v["targets"][1]["revocation"]["ms"], 41.5);
        assert_eq!(v["targets"][2]["points"][0]["exchanges_per_s"], serde_json::Value::Null);
        assert_eq!(v["targets"][0]["points"][0]["exchange_latency"]["p99_ms"], 38.0);
    }
}
