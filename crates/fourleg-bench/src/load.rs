//! The closed-loop load generator: `n` connections, each running the chain
//! one request at a time (a new request only when the previous one is
//! answered), for a warm-up and then a measured window bounded in time.
//!
//! What counts: a request *answered* inside the window. Its latency is the
//! time from sending to the answer, on the generator's clock. A request
//! still in flight when the window closes is neither timed nor counted, and
//! workers stop sending at the close, so the window is the bound. Successful
//! exchanges (a token in the answer) give the throughput and the latency
//! percentiles; everything else is an error, counted by kind. A hop-2
//! request is sent only with a token from hop 1, so a refused hop 1 ends
//! that chain.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fourleg_target::Target;
use serde::{Deserialize, Serialize};

use crate::chain::{self, Hop, HopFailure, Start};
use crate::stats::{round3, Samples, Summary};
use crate::{BenchError, Progress};

/// After a request that got no answer, a connection waits this long before
/// the next, so a target that is down is not hammered in a tight loop.
const BACKOFF_AFTER_TRANSPORT_ERROR: Duration = Duration::from_millis(20);

/// One load point: how many connections, for how long.
#[derive(Debug, Clone, Copy)]
pub struct PointSettings {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one load point measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub connections: usize,
    /// The measured window, in seconds (as configured; answers are counted by
    /// the time they arrive within it).
    pub window_s: f64,
    /// Successful exchanges answered in the window (both hops).
    pub exchanges: u64,
    /// Successful exchanges per second; `None` when none succeeded (no
    /// throughput is claimed for a target that refused everything).
    pub exchanges_per_s: Option<f64>,
    /// Complete chains (hop 2 answered with a token) in the window.
    pub chains: u64,
    pub chains_per_s: Option<f64>,
    /// Latency of each successful exchange, either hop.
    pub exchange_latency: Option<Summary>,
    pub hop1_latency: Option<Summary>,
    pub hop2_latency: Option<Summary>,
    /// Latency of a whole chain (hop 1 sent to hop 2 answered).
    pub chain_latency: Option<Summary>,
    /// Exchanges that yielded no token, answered (or failed) in the window.
    pub errors: u64,
    /// Those errors by kind (`hop 1 (agent → mcp-server): 400 invalid_grant`).
    pub error_kinds: BTreeMap<String, u64>,
    /// `/proc/loadavg` when the window closed.
    pub load_average: Option<[f64; 3]>,
}

/// What one connection saw in the window.
#[derive(Debug, Default)]
struct Tally {
    hop1: Samples,
    hop2: Samples,
    chain: Samples,
    errors: BTreeMap<String, u64>,
}

/// Runs one load point against `target` from `start`.
pub async fn run_point(
    target: &Target,
    start: &Start,
    settings: PointSettings,
    progress: &dyn Progress,
) -> Result<Point, BenchError> {
    let n = settings.connections.max(1);
    let start = Arc::new(start.clone());
    let begin = Instant::now();
    let opens = begin + settings.warmup;
    let closes = opens + settings.duration;
    progress.note(&format!(
        "{}: {n} connection(s): warm-up {:.0}s, then {:.0}s measured",
        target.name(),
        settings.warmup.as_secs_f64(),
        settings.duration.as_secs_f64()
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let conn = target.connection();
        let start = Arc::clone(&start);
        tasks.spawn(async move { worker(conn, start, opens, closes).await });
    }
    let mut all = Tally::default();
    while let Some(done) = tasks.join_next().await {
        let t = done.expect("a load worker panicked: a bug in fourleg bench");
        all.hop1.merge(t.hop1);
        all.hop2.merge(t.hop2);
        all.chain.merge(t.chain);
        for (k, v) in t.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    let load_average = crate::machine::load_average();
    let window = settings.duration.as_secs_f64();
    let exchanges = (all.hop1.len() + all.hop2.len()) as u64;
    let chains = all.chain.len() as u64;
    let rate = |count: u64| (count > 0 && window > 0.0).then(|| round3(count as f64 / window));
    let mut both = all.hop1.clone();
    both.merge(all.hop2.clone());
    let point = Point {
        connections: n,
        window_s: window,
        exchanges,
        exchanges_per_s: rate(exchanges),
        chains,
        chains_per_s: rate(chains),
        exchange_latency: both.summary(),
        hop1_latency: all.hop1.summary(),
        hop2_latency: all.hop2.summary(),
        chain_latency: all.chain.summary(),
        errors: all.errors.values().sum(),
        error_kinds: all.errors,
        load_average,
    };
    progress.note(&format!("{}: {n} connection(s): {}", target.name(), one_line(&point)));
    Ok(point)
}

/// `1234.5 exchanges/s, p50 3.1 ms, p99 9.8 ms, 0 errors`.
#[must_use]
pub fn one_line(p: &Point) -> String {
    let rate = p.exchanges_per_s.map_or_else(|| "no successful exchange".to_owned(), |r| format!("{r:.1} exchanges/s"));
    let lat =
        p.exchange_latency.map(|s| format!(", p50 {:.1} ms, p99 {:.1} ms", s.p50_ms, s.p99_ms)).unwrap_or_default();
    format!("{rate}{lat}, {} error(s)", p.errors)
}

async fn worker(conn: fourleg_target::Connection, start: Arc<Start>, opens: Instant, closes: Instant) -> Tally {
    let mut t = Tally::default();
    let in_window = |at: Instant| at >= opens && at <= closes;
    let fail = |t: &mut Tally, at: Instant, hop: Hop, f: &HopFailure| {
        if in_window(at) {
            *t.errors.entry(f.kind(hop)).or_default() += 1;
        }
    };
    loop {
        let sent = Instant::now();
        if sent >= closes {
            break;
        }
        let first = chain::hop(&conn, &start, Hop::One, &start.user).await;
        let answered1 = Instant::now();
        let token = match first {
            Ok(tok) => {
                if in_window(answered1) {
                    t.hop1.push(answered1 - sent);
                }
                tok
            }
            Err(f) => {
                fail(&mut t, answered1, Hop::One, &f);
                if matches!(f, HopFailure::Transport(_)) {
                    tokio::time::sleep(BACKOFF_AFTER_TRANSPORT_ERROR).await;
                }
                continue;
            }
        };
        if answered1 >= closes {
            break;
        }
        let second = chain::hop(&conn, &start, Hop::Two, &token).await;
        let answered2 = Instant::now();
        match second {
            Ok(_) => {
                if in_window(answered2) {
                    t.hop2.push(answered2 - answered1);
                    t.chain.push(answered2 - sent);
                }
            }
            Err(f) => {
                fail(&mut t, answered2, Hop::Two, &f);
                if matches!(f, HopFailure::Transport(_)) {
                    tokio::time::sleep(BACKOFF_AFTER_TRANSPORT_ERROR).await;
                }
            }
        }
    }
    t
}
