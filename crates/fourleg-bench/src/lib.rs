//! `fourleg bench`: what a token-exchange service costs under load, measured
//! the same way for every target a profile describes.
//!
//! Two measurements, both driven through [`fourleg_target`] (discovery,
//! client authentication and the fixture contract's names come from the
//! profile, so a new column is a new profile and nothing else):
//!
//! - [`load`]: a closed-loop load generator on loopback. `n` connections each
//!   run the suites' two-hop chain (the `four-legged` scenarios: the user's
//!   token exchanged by `agent` for `mcp-server`, then by `mcp-server` for
//!   `downstream-api`, RFC 8693 §2.1) one request at a time, for a warm-up and
//!   then a measured window bounded in time. Logins and client tokens are
//!   taken before the warm-up, outside the window. Throughput and exact
//!   latency percentiles ([`stats`]) count successful exchanges only; a
//!   refused or failed exchange is counted as an error by kind, never timed.
//! - [`revoke`]: the time from RFC 7009 revocation of the root of a tree of
//!   exchanged tokens until every descendant introspects inactive (RFC 7662),
//!   or, when that does not happen within the bound, how many are still
//!   active, with the evidence: never a made-up figure.
//!
//! [`report`] holds the document (`bench.json`) and its Markdown rendering
//! (`bench.md`). A benchmark reports; it never asserts a speed.

pub mod chain;
pub mod load;
pub mod machine;
pub mod report;
pub mod revoke;
pub mod stats;

pub use report::{BenchDocument, Settings, TargetBench};

use fourleg_target::TargetError;

/// The benchmark could not be carried out (the harness side). What a target
/// answers under load is never one of these: it is counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A step before the measured window failed: the chain cannot be run.
    #[error("target `{target}`: {what} failed ({detail}); the benchmark needs it before it can measure anything")]
    Setup { target: String, what: String, detail: String },
    /// The profile lacks what the chain needs.
    #[error("target `{target}`: the profile has no {what}; the benchmark's chain needs it (fixtures/CONTRACT.md)")]
    Profile { target: String, what: String },
}

/// Progress lines for a person watching (the CLI prints them on stderr).
pub trait Progress: Send + Sync {
    fn note(&self, line: &str);
}

/// No progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn note(&self, _: &str) {}
}
