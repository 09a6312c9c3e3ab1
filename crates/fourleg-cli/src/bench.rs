//! `fourleg bench`: the benchmark of each target named (RFC 8693 exchange
//! throughput and latency of the two-hop chain, subtree revocation time),
//! written as `bench.json` and `bench.md`. The measuring is
//! `fourleg-bench`'s; this module connects the targets, prints progress on
//! stderr and writes the files.

use std::path::Path;

use anyhow::Context as _;
use fourleg_bench::{BenchDocument, Settings};
use fourleg_lab::LabConfig;

use crate::exit;

/// Progress lines on stderr.
struct Stderr;

impl fourleg_bench::Progress for Stderr {
    fn note(&self, line: &str) {
        eprintln!("bench: {line}");
    }
}

/// Benchmarks each target in turn (never side by side: they would share
/// the cores) and writes `out/bench.json` and `out/bench.md`.
pub async fn bench(
    config: &LabConfig,
    targets: &[String],
    out: &Path,
    settings: Settings,
    start_lab: bool,
) -> anyhow::Result<u8> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let machine = fourleg_bench::machine::Machine::detect();
    let load_before = fourleg_bench::machine::load_average();
    eprintln!(
        "bench: {} core(s), load average {}; {} connection count(s) × ({:.0} s warm-up + {:.0} s) per target",
        machine.cores,
        load_before.map_or_else(|| "unknown".to_owned(), |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}")),
        settings.connections.len(),
        settings.warmup_s,
        settings.duration_s
    );
    let mut doc = BenchDocument {
        schema_version: fourleg_bench::report::SCHEMA_VERSION,
        fourleg: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: fourleg_scenario::runner::rfc3339_now(),
        machine,
        load_average_before: load_before,
        settings,
        targets: Vec::new(),
    };
    let mut code = exit::OK;
    for name in targets {
        let t = match crate::run::connect(config, name, start_lab).await {
            Ok((target, _)) => {
                eprintln!(
                    "bench: {} ({} {})",
                    target.name(),
                    target.profile.product,
                    target.version.as_deref().unwrap_or("version unknown")
                );
                fourleg_bench::report::bench_target(&target, &doc.settings, &Stderr).await
            }
            Err(e) => fourleg_bench::TargetBench {
                target: name.clone(),
                product: String::new(),
                version: None,
                delegation: false,
                points: Vec::new(),
                revocation: None,
                error: Some(crate::chain(&e)),
            },
        };
        if let Some(e) = &t.error {
            eprintln!("bench: {}: not measured: {e}", t.target);
            code = exit::HARNESS;
        }
        doc.targets.push(t);
    }
    let json = out.join("bench.json");
    let md = out.join("bench.md");
    std::fs::write(&json, serde_json::to_string_pretty(&doc).context("serialising bench.json")? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(&md, doc.to_markdown()).with_context(|| format!("writing {}", md.display()))?;
    println!("{}", doc.to_markdown());
    eprintln!("bench: wrote {} and {}", json.display(), md.display());
    Ok(code)
}
