//! The harness side of `fourleg bench`, against the test bed (a real
//! RFC 8693 server in-process): it counts, times and reports errors
//! correctly. No assertion here is on speed: the bounds checked are ones
//! any correct measurement obeys, whatever the machine.

use std::time::Duration;

use fourleg_bench::chain::Start;
use fourleg_bench::load::{self, Point, PointSettings};
use fourleg_bench::revoke::{self, Outcome, RevokeSettings};
use fourleg_bench::Quiet;
use fourleg_target::{Profile, Target};
use fourleg_testbed::{Breakage, TestBed};

async fn connect(bed: &TestBed) -> anyhow::Result<Target> {
    let profile = Profile::load(&TestBed::profile_path())?;
    Ok(Target::connect(profile, Some(bed.lab_context())).await?)
}

fn settings(connections: usize) -> PointSettings {
    PointSettings { connections, warmup: Duration::from_millis(200), duration: Duration::from_millis(1500) }
}

/// What every point must satisfy: the counts agree with each other.
fn consistent(p: &Point) {
    let ex = p.exchange_latency.map_or(0, |s| s.count);
    let h1 = p.hop1_latency.map_or(0, |s| s.count);
    let h2 = p.hop2_latency.map_or(0, |s| s.count);
    let ch = p.chain_latency.map_or(0, |s| s.count);
    assert_eq!(ex, p.exchanges, "every successful exchange is timed, and only those: {p:#?}");
    assert_eq!(h1 + h2, p.exchanges, "{p:#?}");
    assert_eq!(h2, p.chains, "a chain is complete when hop 2 succeeds: {p:#?}");
    assert_eq!(ch, p.chains, "{p:#?}");
    assert_eq!(p.errors, p.error_kinds.values().sum::<u64>(), "{p:#?}");
    match p.exchanges_per_s {
        Some(r) => assert!((r - p.exchanges as f64 / p.window_s).abs() < 0.01, "{p:#?}"),
        None => assert_eq!(p.exchanges, 0, "{p:#?}"),
    }
    for s in [p.exchange_latency, p.hop1_latency, p.hop2_latency, p.chain_latency].into_iter().flatten() {
        assert!(s.p50_ms <= s.p90_ms && s.p90_ms <= s.p99_ms && s.p99_ms <= s.max_ms, "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conformant_target_gives_throughput_latencies_and_no_error() -> anyhow::Result<()> {
    let bed = TestBed::start(None).await?;
    let target = connect(&bed).await?;
    let start = Start::obtain(&target).await?;
    assert!(start.delegation(), "the test bed declares delegation: the hops carry actor tokens");
    let s = settings(3);
    let p = load::run_point(&target, &start, s, &Quiet).await?;
    consistent(&p);
    assert_eq!(p.connections, 3);
    assert_eq!(p.errors, 0, "{:#?}", p.error_kinds);
    assert!(p.exchanges > 0 && p.chains > 0, "{p:#?}");
    assert!(p.exchanges_per_s.is_some() && p.chains_per_s.is_some());
    // Within one connection requests never overlap, and each counted one
    // ended inside the window: the time they account for cannot exceed the
    // window plus one request per connection.
    let lat = p.exchange_latency.unwrap();
    let busy_ms = lat.mean_ms * lat.count as f64;
    let bound_ms = 3.0 * (s.duration.as_secs_f64() * 1000.0 + lat.max_ms);
    assert!(busy_ms <= bound_ms + 1.0, "{busy_ms} ms of requests in a {bound_ms} ms budget: {p:#?}");
    // A chain's latency covers both of its hops.
    let (c, h1, h2) = (p.chain_latency.unwrap(), p.hop1_latency.unwrap(), p.hop2_latency.unwrap());
    assert!(c.max_ms >= h1.p50_ms.max(h2.p50_ms), "{p:#?}");
    assert!(c.mean_ms >= h2.mean_ms, "{p:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_every_exchange_gets_errors_and_no_throughput() -> anyhow::Result<()> {
    let bed = TestBed::start(None).await?;
    let target = connect(&bed).await?;
    let start = Start::obtain(&target).await?;
    // The agent is disabled after its tokens were taken: every hop 1 is
    // refused (invalid_client), so no chain ever starts.
    target.run_hook("disable_client", "agent").await?;
    let p = load::run_point(&target, &start, settings(2), &Quiet).await?;
    consistent(&p);
    assert_eq!((p.exchanges, p.chains), (0, 0), "{p:#?}");
    assert_eq!(p.exchanges_per_s, None, "no throughput is claimed for refusals");
    assert_eq!(p.chains_per_s, None);
    assert!(p.exchange_latency.is_none() && p.chain_latency.is_none(), "a refusal is never timed: {p:#?}");
    assert!(p.errors > 0, "{p:#?}");
    let kinds: Vec<&String> = p.error_kinds.keys().collect();
    assert_eq!(kinds.len(), 1, "{kinds:?}");
    assert!(kinds[0].starts_with("hop 1 (agent → mcp-server): 401 invalid_client"), "{kinds:?}");
    assert!(!kinds[0].contains("eyJ"), "no token in an error kind");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_hop_2_are_errors_while_hop_1_still_counts() -> anyhow::Result<()> {
    let bed = TestBed::start(None).await?;
    let target = connect(&bed).await?;
    let start = Start::obtain(&target).await?;
    target.run_hook("disable_client", "mcp-server").await?;
    let p = load::run_point(&target, &start, settings(2), &Quiet).await?;
    consistent(&p);
    assert!(p.exchanges > 0, "hop 1 still succeeds: {p:#?}");
    assert_eq!(p.chains, 0, "{p:#?}");
    assert_eq!(p.chains_per_s, None);
    assert!(p.hop2_latency.is_none() && p.chain_latency.is_none(), "{p:#?}");
    assert!(p.errors > 0, "{p:#?}");
    assert!(p.error_kinds.keys().all(|k| k.starts_with("hop 2 (mcp-server → downstream-api): 401")), "{p:#?}");
    // Every counted hop-1 success is followed by one hop-2 refusal (give or
    // take the request in flight at each edge of the window, per connection).
    assert!(p.exchanges.abs_diff(p.errors) <= 2 * 2, "{p:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_went_away_is_counted_as_errors_not_measured() -> anyhow::Result<()> {
    let bed = TestBed::start(None).await?;
    let target = connect(&bed).await?;
    let start = Start::obtain(&target).await?;
    drop(bed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let p = load::run_point(&target, &start, settings(2), &Quiet).await?;
    consistent(&p);
    assert_eq!(p.exchanges, 0);
    assert_eq!(p.exchanges_per_s, None);
    assert!(p.errors > 0 && p.error_kinds.keys().all(|k| k.contains("no answer")), "{p:#?}");
    Ok(())
}

fn small_tree() -> RevokeSettings {
    RevokeSettings { tree_size: 60, timeout: Duration::from_secs(3), concurrency: 4 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cascading_target_reaches_all_descendants_inactive() -> anyhow::Result<()> {
    let bed = TestBed::start(None).await?;
    let target = connect(&bed).await?;
    let r = revoke::measure(&target, small_tree(), &Quiet).await?;
    assert!(r.declared, "the test bed's profile declares revokes_subtree");
    assert_eq!(r.tree_size, 60);
    let Outcome::Reached { ms, revoke_ms, rounds, root_inactive, poll_errors, .. } = r.outcome else {
        panic!("{r:#?}")
    };
    assert!(root_inactive && poll_errors == 0, "{r:#?}");
    assert!(rounds >= 1 && ms >= revoke_ms && ms < 3000.0, "{r:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_does_not_cascade_is_not_reached_with_evidence() -> anyhow::Result<()> {
    let bed = TestBed::start(Some(Breakage::RevocationNotCascading)).await?;
    let mut profile = Profile::load(&TestBed::profile_path())?;
    profile.features.revokes_subtree = false;
    let target = Target::connect(profile, Some(bed.lab_context())).await?;
    let r = revoke::measure(&target, small_tree(), &Quiet).await?;
    assert!(!r.declared);
    let Outcome::NotReached { still_active, descendants, root_inactive, evidence, after_ms, rounds, .. } = &r.outcome
    else {
        panic!("{r:#?}")
    };
    assert!(*rounds >= 1, "{r:#?}");
    assert_eq!((*still_active, *descendants), (59, 59), "{r:#?}");
    assert!(*root_inactive, "the root itself is revoked: {r:#?}");
    assert!(*after_ms >= 3000.0, "polled until the bound: {r:#?}");
    assert_eq!(evidence["active"], true, "{evidence}");
    assert_eq!(evidence["client_id"], "mcp-server", "{evidence}");
    assert!(!evidence.to_string().contains("eyJ"), "claims only, no token: {evidence}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_cascade_is_timed_from_the_revocation() -> anyhow::Result<()> {
    let bed = TestBed::start(Some(Breakage::RevocationSlow)).await?;
    let target = connect(&bed).await?;
    let settings = RevokeSettings { timeout: Duration::from_secs(15), ..small_tree() };
    let r = revoke::measure(&target, settings, &Quiet).await?;
    let Outcome::Reached { ms, rounds, .. } = r.outcome else { panic!("{r:#?}") };
    let slow = fourleg_testbed::SLOW_REVOCATION.as_secs_f64() * 1000.0;
    assert!(ms >= slow, "the revocation takes effect after {slow} ms; measured {ms} ms");
    assert!(rounds > 1, "{r:#?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_the_revocation_is_untestable_not_a_figure() -> anyhow::Result<()> {
    let bed = TestBed::start(Some(Breakage::AccessTokenRevocationUnsupported)).await?;
    let target = connect(&bed).await?;
    let r = revoke::measure(&target, small_tree(), &Quiet).await?;
    let Outcome::Untestable { reason } = &r.outcome else { panic!("{r:#?}") };
    assert!(reason.contains("revocation of the root") && reason.contains("unsupported_token_type"), "{reason}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_shorter_than_one_round_still_asks_about_every_descendant() -> anyhow::Result<()> {
    let bed = TestBed::start(Some(Breakage::RevocationNotCascading)).await?;
    let target = connect(&bed).await?;
    // A 1 ms bound: far shorter than one round of 59 introspections on one
    // connection. "Still active" must still be what each one answered.
    let settings = RevokeSettings { tree_size: 60, timeout: Duration::from_millis(1), concurrency: 1 };
    let r = revoke::measure(&target, settings, &Quiet).await?;
    let Outcome::NotReached { still_active, descendants, rounds, .. } = r.outcome else { panic!("{r:#?}") };
    assert_eq!((still_active, descendants, rounds), (59, 59, 1), "{r:#?}");
    Ok(())
}
