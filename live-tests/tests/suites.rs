//! The suites against the real lab, one libtest trial per scenario and
//! bundled lab target (`keycloak::may-act::deny-rogue-actor`).
//!
//! A trial fails on a harness error, on a failure the target's profile does
//! not expect, and on an expected failure that now passes (stale
//! expectation): so this is also the regression gate of the bundled targets.
//! Scenarios that change shared state (hooks) run alone.
//!
//! Starts its own lab (native runtime) in a temporary state directory, and
//! the peers (Spring Authorization Server, idpyoidc) whose trials are
//! selected, and purges it all at the end; `FOURLEG_LIVE_STATE=<dir>` reuses
//! a running lab (peers not running are started).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use fourleg_lab::state::Credentials;
use fourleg_lab::{LabConfig, RuntimeKind, Silent};
use fourleg_scenario::runner::is_exclusive;
use fourleg_scenario::{Engine, Registry, Scenario, Status};
use fourleg_target::{LabContext, Profile, Target};
use libtest_mimic::{Arguments, Failed, Trial};

/// Every bundled target of `fixtures/targets/`: each is a lab service, a
/// peer, or (`demo-mcp`, `demo-mcp-broker`) a demo MCP server this test
/// serves itself.
const LAB_TARGETS: [&str; 9] = [
    "keycloak",
    "keycloak-delegation",
    "broker",
    "spring-authorization-server",
    "idpyoidc",
    "hydra",
    "toolhive",
    "demo-mcp",
    "demo-mcp-broker",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

async fn lab_context(config: &LabConfig) -> anyhow::Result<LabContext> {
    let status = fourleg_lab::status(config).await?;
    let creds = Credentials::load(config)?.ok_or_else(|| anyhow::anyhow!("the lab has no credentials"))?;
    let mut ctx = LabContext {
        client_secrets: creds.clients,
        user_passwords: creds.users,
        state_dir: Some(config.state_dir.clone()),
        ..LabContext::default()
    };
    for s in status.services {
        ctx.urls.insert(s.name.name().to_owned(), s.url);
        ctx.versions.insert(s.name.name().to_owned(), s.version);
    }
    Ok(ctx)
}

fn verdict(r: &fourleg_scenario::ScenarioResult) -> Result<(), Failed> {
    let first = |st: Status| {
        r.checks
            .iter()
            .find(|c| c.status == st)
            .map(|c| format!("{} [{}]: {}", c.rule, c.level, c.message))
            .unwrap_or_default()
    };
    if r.status == Status::Error {
        return Err(format!("harness error: {}", r.reason.clone().unwrap_or_else(|| first(Status::Error))).into());
    }
    if r.stale_expectation {
        return Err(format!(
            "stale expectation: the profile expects a failure ({}) but the scenario is {}",
            r.expected_failure.clone().unwrap_or_default(),
            r.status
        )
        .into());
    }
    if r.is_unexpected_failure() {
        return Err(format!("unexpected {}: {}", r.status, first(r.status)).into());
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Arguments::from_args();
    let registry = Registry::load(&repo().join("suites/requirements.toml"))?;
    let scenarios = fourleg_scenario::scenario::load_all(&repo().join("suites"), &registry)?;
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?);

    let reuse = std::env::var_os("FOURLEG_LIVE_STATE").map(PathBuf::from);
    let state =
        reuse.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("fourleg-suites-{}", std::process::id())));
    let mut config = LabConfig::new(state);
    config.fixtures_dir = repo().join("fixtures");
    if !args.list {
        // The lab serves its broker with `fourleg broker`, and the bundled
        // targets' hooks run `{fourleg}`: both need fourleg, not this binary.
        let bin = fourleg_live_tests::fourleg_binary();
        std::env::set_var("FOURLEG_BIN", &bin);
        config.broker_bin = Some(bin);
    }

    let names: Vec<String> =
        LAB_TARGETS.iter().flat_map(|t| scenarios.iter().map(move |s| format!("{t}::{}::{}", s.area, s.id))).collect();
    let wanted = |name: &str| {
        args.filter.as_ref().is_none_or(|f| if args.exact { name == f } else { name.contains(f.as_str()) })
            && !args.skip.iter().any(|s| name.contains(s.as_str()))
    };
    let needs_lab = !args.list && names.iter().any(|n| wanted(n));

    let mut engines = Vec::new();
    // The demo MCP servers of the `demo-mcp*` targets, served for the whole run.
    let mut demos: Vec<fourleg_demo::Demo> = Vec::new();
    if needs_lab {
        if reuse.is_none() {
            eprintln!("starting the lab in {}", config.state_dir.display());
            let up = rt.block_on(fourleg_lab::up(&config, RuntimeKind::Native, &Silent))?;
            for s in &up.services {
                eprintln!("  {} {} ready in {:.1}s", s.record.service, s.record.version, s.took.as_secs_f64());
            }
        }
        let mut ctx = rt.block_on(lab_context(&config))?;
        let peers = fourleg_lab::peers::available(&config.fixtures_dir);
        for t in LAB_TARGETS {
            let profile = Profile::load(&repo().join(format!("fixtures/targets/{t}.toml")))?;
            let selected = scenarios.iter().any(|s| wanted(&format!("{t}::{}::{}", s.area, s.id)));
            if !selected {
                engines.push(None);
                continue;
            }
            if let Some(peer) = profile.lab.clone().filter(|l| peers.contains(l) && !ctx.urls.contains_key(l)) {
                eprintln!("starting peer {peer} (built or installed into the cache on first use)");
                let rec = rt.block_on(fourleg_lab::peers::up(&config, &peer))?;
                eprintln!(
                    "  {peer} {} ready in {:.1}s",
                    rec.version,
                    std::time::Duration::from_millis(rec.startup_ms).as_secs_f64()
                );
                ctx.urls.insert(peer.clone(), rec.url);
                ctx.versions.insert(peer, rec.version);
            }
            // A demo chain the profile names as its resource, served for the
            // whole run.
            let resource_url = profile.resource.as_ref().map(|r| r.url.clone()).unwrap_or_default();
            for name in fourleg_demo::RESOURCE_LABS {
                if !resource_url.contains(&format!("{{lab.{name}}}")) || ctx.urls.contains_key(name) {
                    continue;
                }
                let journal = config.state_path(format!("demo/{name}-journal.jsonl"));
                let realm = fourleg_lab::provision::keycloak::REALM;
                if let Some(d) =
                    rt.block_on(fourleg_demo::Demo::for_lab(name, &ctx.urls, realm, &ctx.client_secrets, journal))
                {
                    let d = d?;
                    for (key, url) in d.resource_urls(name) {
                        ctx.urls.insert(key, url);
                    }
                    ctx.versions.insert(name.into(), env!("CARGO_PKG_VERSION").into());
                    demos.push(d);
                }
            }
            let target = rt.block_on(Target::connect(profile, Some(ctx.clone())))?;
            engines.push(Some(Arc::new(Engine::new(Arc::new(target), Arc::new(registry.clone())))));
        }
    }

    // Readers run together; a scenario with hooks takes the lock alone.
    let exclusive = Arc::new(RwLock::new(()));
    let mut trials = Vec::new();
    for (ti, t) in LAB_TARGETS.iter().enumerate() {
        for s in &scenarios {
            let name = format!("{t}::{}::{}", s.area, s.id);
            let (engine, rt, lock, s): (Option<Arc<Engine>>, _, _, Scenario) =
                (engines.get(ti).cloned().flatten(), Arc::clone(&rt), Arc::clone(&exclusive), s.clone());
            trials.push(Trial::test(name, move || {
                let engine = engine.ok_or("the lab or the target's peer did not start")?;
                let run = || rt.block_on(engine.run(&s)).map_err(|d| Failed::from(d.to_string()));
                let result = if is_exclusive(&s) {
                    let _alone = lock.write().map_err(|_| "lock poisoned")?;
                    run()?
                } else {
                    let _shared = lock.read().map_err(|_| "lock poisoned")?;
                    run()?
                };
                verdict(&result)
            }));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    if needs_lab && reuse.is_none() {
        rt.block_on(fourleg_lab::down(&config, true))?;
    }
    conclusion.exit()
}
