//! Subtree revocation: how long after RFC 7009 revocation of one token
//! (the root) every token exchanged from it introspects inactive (RFC 7662
//! §2.2), the agent profile's "revoke tokens across the entire chain".
//!
//! The tree: alice's token exchanged by `agent` for `mcp-server` is the root
//! (hop 1 of the chain); `mcp-server` exchanges the root again and again for
//! `downstream-api` (hop 2), so a tree of `tree_size` tokens is the root and
//! `tree_size - 1` descendants. Before the revocation every descendant must
//! introspect active (else nothing after proves anything: untestable, with
//! the reason), and must not expire before the bound (an expired token
//! introspects inactive too, and would fake a cascade). Then the root is
//! revoked by the client it was issued to, and `concurrency` connections
//! introspect the descendants still active, round after round, until none
//! is or the bound passes. The figure runs from sending the revocation to
//! the answer that showed the last descendant inactive, so it cannot be
//! smaller than one round over the tree: `baseline_round_ms`, measured
//! before the revocation, says how small that is.
//!
//! A target that does not cascade (RFC 8693 §2.1 does not ask it to) is
//! reported as `not-reached`, with how many descendants were still active at
//! the bound and the claims of one of them: never a number.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fourleg_core::Secret;
use fourleg_target::profile::Caller;
use fourleg_target::{Connection, Target};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::{self, Hop, Start};
use crate::stats::round3;
use crate::{BenchError, Progress};

/// How the measurement is run.
#[derive(Debug, Clone, Copy)]
pub struct RevokeSettings {
    /// Tokens in the tree, the root included.
    pub tree_size: usize,
    /// How long after the revocation descendants are polled at most.
    pub timeout: Duration,
    /// Connections that build the tree and poll it.
    pub concurrency: usize,
}

impl Default for RevokeSettings {
    fn default() -> Self {
        Self { tree_size: 1000, timeout: Duration::from_secs(10), concurrency: 16 }
    }
}

/// What the measurement found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeResult {
    /// Whether the profile declares that revocation cascades
    /// (`features.revokes_subtree`).
    pub declared: bool,
    pub tree_size: usize,
    pub concurrency: usize,
    pub timeout_ms: u64,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The three ways it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every descendant introspected inactive within the bound.
    Reached {
        /// From sending the revocation to the last descendant seen inactive.
        ms: f64,
        /// The revocation request's own latency.
        revoke_ms: f64,
        /// One introspection round over every descendant before the
        /// revocation: the resolution of `ms`.
        baseline_round_ms: f64,
        /// The most introspections any descendant needed.
        rounds: u64,
        /// Whether the root itself introspected inactive afterwards.
        root_inactive: bool,
        /// Introspections that got no usable answer while polling.
        poll_errors: u64,
    },
    /// Some descendants were still active at the bound.
    NotReached {
        /// When polling stopped, from sending the revocation.
        after_ms: f64,
        revoke_ms: f64,
        baseline_round_ms: f64,
        /// Descendants that introspected active at their last poll after
        /// the revocation (each was polled at least once), of `descendants`.
        still_active: usize,
        descendants: usize,
        /// Whether the root itself introspected inactive.
        root_inactive: bool,
        /// The introspection claims of one descendant still active at the
        /// bound (RFC 7662 §2.2 members; no token).
        evidence: Value,
        /// The most introspections any descendant got after the revocation.
        rounds: u64,
        poll_errors: u64,
    },
    /// A prerequisite did not happen (the tree could not be built, a fresh
    /// token was not active, the revocation was refused): no figure.
    Untestable { reason: String },
}

/// Claims kept as evidence from an introspection answer.
const EVIDENCE_CLAIMS: [&str; 9] = ["active", "sub", "client_id", "azp", "aud", "scope", "exp", "iat", "act"];

/// The client that introspects a token of `audience` (the profile's
/// `[introspection] as`: `audience`, or a client name).
fn introspector(target: &Target, audience: &str) -> String {
    match &target.profile.introspection.r#as {
        Caller::Client(client) => client.clone(),
        Caller::Audience | Caller::IssuedTo => audience.to_owned(),
    }
}

/// The client that revokes a token issued to `issued_to` (`[revocation] as`).
fn revoker(target: &Target, issued_to: &str) -> String {
    match &target.profile.revocation.r#as {
        Caller::Client(client) => client.clone(),
        Caller::Audience | Caller::IssuedTo => issued_to.to_owned(),
    }
}

/// Measures subtree revocation on `target`.
pub async fn measure(
    target: &Target,
    settings: RevokeSettings,
    progress: &dyn Progress,
) -> Result<RevokeResult, BenchError> {
    let declared = target.profile.features.revokes_subtree;
    let result = |outcome| RevokeResult {
        declared,
        tree_size: settings.tree_size,
        concurrency: settings.concurrency,
        timeout_ms: u64::try_from(settings.timeout.as_millis()).unwrap_or(u64::MAX),
        outcome,
    };
    let untestable = |reason: String| Ok(result(Outcome::Untestable { reason }));
    let f = &target.profile.features;
    if !(f.revocation && f.access_token_revocation && f.introspection) {
        return untestable(
            "the profile declares no RFC 7009 access-token revocation or no RFC 7662 introspection".into(),
        );
    }
    let name = target.name().to_owned();
    let start = Start::obtain(target).await?;
    let conn = target.connection();
    let root = match chain::hop(&conn, &start, Hop::One, &start.user).await {
        Ok(t) => t,
        Err(f) => return untestable(format!("the root could not be obtained: {}", f.kind(Hop::One))),
    };
    let descendants = settings.tree_size.saturating_sub(1).max(1);
    progress.note(&format!("{name}: revocation: building a tree of {} tokens", descendants + 1));
    let tree = match build(target, &start, &root, descendants, settings.concurrency).await {
        Ok(t) => t,
        Err(why) => return untestable(why),
    };
    let (root_client, root_aud) = chain::HOP1;
    let leaf_introspector = introspector(target, chain::HOP2.1);
    let root_introspector = introspector(target, root_aud);

    // Baseline: every token active, none expiring within the bound.
    progress.note(&format!("{name}: revocation: checking that all {} descendants are active", tree.len()));
    let round = Instant::now();
    let baseline = introspect_all(target, &tree, &leaf_introspector, settings.concurrency).await;
    let baseline_round_ms = ms(round.elapsed());
    let inactive: Vec<_> = baseline.iter().filter(|b| b.active != Some(true)).collect();
    if let Some(first) = inactive.first() {
        return untestable(format!(
            "{} of {} fresh descendants did not introspect active for {leaf_introspector} before the revocation (first: {}), so their state afterwards proves nothing",
            inactive.len(),
            tree.len(),
            first.describe
        ));
    }
    let bound_ends = unix_now() + settings.timeout.as_secs() + 5;
    if let Some(exp) = baseline.iter().filter_map(|b| b.exp).min() {
        if exp <= bound_ends {
            return untestable(format!(
                "a descendant expires (exp {exp}) before the bound ends; an expired token introspects inactive too, so the figure would not be the cascade's"
            ));
        }
    }
    match conn.introspect(&root, &root_introspector).await {
        Ok(r) if r.active() == Some(true) => {}
        Ok(r) => {
            return untestable(format!(
                "the fresh root did not introspect active for {root_introspector} ({})",
                r.describe()
            ))
        }
        Err(e) => return untestable(format!("the root's introspection failed: {}", chain::transport_kind(&e))),
    }

    // The revocation, then rounds of introspection.
    progress.note(&format!("{name}: revocation: revoking the root, polling {} descendants", tree.len()));
    let revoker = revoker(target, root_client);
    let sent = Instant::now();
    let revoked = conn.revoke(&root, &revoker).await;
    let revoke_ms = ms(sent.elapsed());
    match revoked {
        Ok(r) if r.is_success() => {}
        Ok(r) => return untestable(format!("the revocation of the root by {revoker} was refused ({})", r.describe())),
        Err(e) => {
            return untestable(format!("the revocation of the root got no answer ({})", chain::transport_kind(&e)))
        }
    }
    let poll = poll(target, &tree, &leaf_introspector, settings.concurrency, sent + settings.timeout).await;
    let root_inactive = matches!(conn.introspect(&root, &root_introspector).await, Ok(r) if r.active() == Some(false));
    let outcome = if poll.still_active.is_empty() {
        Outcome::Reached {
            ms: ms(poll.last_inactive.unwrap_or(sent) - sent),
            revoke_ms,
            baseline_round_ms,
            rounds: poll.rounds,
            root_inactive,
            poll_errors: poll.errors,
        }
    } else {
        let evidence = match conn.introspect(&tree[poll.still_active[0]], &leaf_introspector).await {
            Ok(r) => claims(&r),
            Err(e) => Value::String(format!("introspection failed: {}", chain::transport_kind(&e))),
        };
        Outcome::NotReached {
            after_ms: ms(poll.stopped - sent),
            revoke_ms,
            baseline_round_ms,
            still_active: poll.still_active.len(),
            descendants: tree.len(),
            root_inactive,
            evidence,
            rounds: poll.rounds,
            poll_errors: poll.errors,
        }
    };
    let r = result(outcome);
    progress.note(&format!("{name}: revocation: {}", one_line(&r)));
    Ok(r)
}

/// `999 descendants inactive 12.3 ms after the revocation`.
#[must_use]
pub fn one_line(r: &RevokeResult) -> String {
    match &r.outcome {
        Outcome::Reached { ms, .. } => {
            format!("all {} descendants inactive {ms:.1} ms after the revocation", r.tree_size.saturating_sub(1))
        }
        Outcome::NotReached { after_ms, still_active, descendants, .. } => {
            format!("not reached: {still_active} of {descendants} descendants still active {after_ms:.0} ms after the revocation")
        }
        Outcome::Untestable { reason } => format!("untestable: {reason}"),
    }
}

fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The RFC 7662 §2.2 members worth showing.
fn claims(r: &fourleg_target::Reply) -> Value {
    let mut out = serde_json::Map::new();
    for c in EVIDENCE_CLAIMS {
        if let Some(v) = r.claim(c) {
            out.insert(c.to_owned(), v.clone());
        }
    }
    if out.is_empty() {
        out.insert("status".into(), Value::from(r.status));
    }
    Value::Object(out)
}

/// `count` descendants of `root`, exchanged by hop 2 over `concurrency`
/// connections. Any refusal ends the build: the tree must be whole.
async fn build(
    target: &Target,
    start: &Start,
    root: &Secret,
    count: usize,
    concurrency: usize,
) -> Result<Vec<Secret>, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (conn, start, root, next) = (target.connection(), start.clone(), root.clone(), Arc::clone(&next));
        tasks.spawn(async move {
            let mut got = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                match chain::hop(&conn, &start, Hop::Two, &root).await {
                    Ok(t) => got.push(t),
                    Err(f) => return Err(format!("the tree could not be built: {}", f.kind(Hop::Two))),
                }
            }
            Ok(got)
        });
    }
    let mut tree = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        tree.extend(done.expect("a tree builder panicked: a bug in fourleg bench")?);
    }
    Ok(tree)
}

/// One introspection's answer, reduced.
#[derive(Debug)]
struct Seen {
    active: Option<bool>,
    exp: Option<u64>,
    describe: String,
}

/// Introspects every token once.
async fn introspect_all(target: &Target, tokens: &[Secret], client: &str, concurrency: usize) -> Vec<Seen> {
    let tokens: Arc<Vec<Secret>> = Arc::new(tokens.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (conn, tokens, next, client) =
            (target.connection(), Arc::clone(&tokens), Arc::clone(&next), client.to_owned());
        tasks.spawn(async move {
            let mut seen = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tok) = tokens.get(i) else { break };
                let s = match conn.introspect(tok, &client).await {
                    Ok(r) => Seen {
                        active: r.active(),
                        exp: r.claim("exp").and_then(Value::as_u64),
                        describe: format!("{}, active {:?}", r.describe(), r.active()),
                    },
                    Err(e) => Seen { active: None, exp: None, describe: chain::transport_kind(&e) },
                };
                seen.push(s);
            }
            seen
        });
    }
    let mut all = Vec::with_capacity(tokens.len());
    while let Some(done) = tasks.join_next().await {
        all.extend(done.expect("an introspection task panicked: a bug in fourleg bench"));
    }
    all
}

/// What polling found.
#[derive(Debug)]
struct Polled {
    /// Indexes of the tokens not seen inactive.
    still_active: Vec<usize>,
    /// When the last token was seen inactive.
    last_inactive: Option<Instant>,
    stopped: Instant,
    rounds: u64,
    errors: u64,
}

/// Introspects the tokens not yet seen inactive, each again as soon as a
/// connection is free, until all are inactive or `deadline` (by which every
/// token is introspected at least once, however long that takes).
async fn poll(target: &Target, tokens: &[Secret], client: &str, concurrency: usize, deadline: Instant) -> Polled {
    let tokens: Arc<Vec<Secret>> = Arc::new(tokens.to_vec());
    let queue: Arc<Mutex<VecDeque<(usize, u64)>>> = Arc::new(Mutex::new((0..tokens.len()).map(|i| (i, 0)).collect()));
    let remaining = Arc::new(AtomicUsize::new(tokens.len()));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let conn: Connection = target.connection();
        let (tokens, queue, remaining, errors, client) =
            (Arc::clone(&tokens), Arc::clone(&queue), Arc::clone(&remaining), Arc::clone(&errors), client.to_owned());
        tasks.spawn(async move {
            let mut last: Option<Instant> = None;
            let mut rounds = 0;
            while remaining.load(Ordering::Acquire) > 0 {
                let item = queue.lock().expect("not poisoned").pop_front();
                let past = Instant::now() >= deadline;
                let Some((i, polls)) = item else {
                    if past {
                        break;
                    }
                    // The others hold the last ones in flight.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                // Past the bound only the first round is finished: every
                // descendant is seen at least once after the revocation, so
                // "still active" is an observation, never a token not asked
                // about. The queue is first in, first out, so once a token
                // polled before comes up, the first round has been handed out.
                if past && polls > 0 {
                    queue.lock().expect("not poisoned").push_front((i, polls));
                    break;
                }
                let answer = conn.introspect(&tokens[i], &client).await;
                let at = Instant::now();
                let polls = polls + 1;
                rounds = rounds.max(polls);
                match answer {
                    Ok(r) if r.active() == Some(false) => {
                        remaining.fetch_sub(1, Ordering::AcqRel);
                        last = Some(last.map_or(at, |l: Instant| l.max(at)));
                    }
                    other => {
                        if !matches!(other, Ok(ref r) if r.active() == Some(true)) {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        queue.lock().expect("not poisoned").push_back((i, polls));
                    }
                }
            }
            (last, rounds)
        });
    }
    let mut last_inactive: Option<Instant> = None;
    let mut rounds = 0;
    while let Some(done) = tasks.join_next().await {
        let (last, r) = done.expect("a polling task panicked: a bug in fourleg bench");
        rounds = rounds.max(r);
        if let Some(l) = last {
            last_inactive = Some(last_inactive.map_or(l, |x| x.max(l)));
        }
    }
    let stopped = Instant::now();
    let mut still_active: Vec<usize> = queue.lock().expect("not poisoned").iter().map(|(i, _)| *i).collect();
    still_active.sort_unstable();
    Polled { still_active, last_inactive, stopped, rounds, errors: errors.load(Ordering::Relaxed) }
}
