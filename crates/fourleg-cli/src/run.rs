//! `fourleg run`: scenarios against one target, a live line per scenario,
//! a summary, and the run document as JSON.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use fourleg_lab::state::Credentials;
use fourleg_lab::{LabConfig, Service};
use fourleg_report::RunDocument;
use fourleg_scenario::runner::{self, Observer};
use fourleg_scenario::{Registry, Run, Scenario, ScenarioResult, Status};
use fourleg_target::{LabContext, Profile, Target};

use crate::exit;

/// Where the suites live: `FOURLEG_SUITES`, else `suites/` beside `fixtures/`.
pub fn suites_dir(config: &LabConfig, explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(|| config.fixtures_dir.join("../suites"), Path::to_owned)
}

/// Loads the registry and every scenario, filtered. Every target named is
/// checked against the whole suite first, whatever the filter: a profile
/// error ends the run before any scenario runs.
pub fn load_suites(
    config: &LabConfig,
    dir: &Path,
    filters: &[String],
    targets: &[String],
) -> anyhow::Result<(Registry, Vec<Scenario>)> {
    let registry = Registry::load(&dir.join("requirements.toml"))?;
    let all = fourleg_scenario::scenario::load_all(dir, &registry)?;
    for t in targets {
        check_profile(config, t, &all)?;
    }
    let picked: Vec<Scenario> = if filters.is_empty() {
        all
    } else {
        all.into_iter().filter(|s| filters.iter().any(|f| s.matches(f))).collect()
    };
    Ok((registry, picked))
}

/// A profile's `expected_failures` name scenarios that exist (an unknown id
/// would silently expect nothing). Names the field, and the nearest id.
pub fn check_profile(config: &LabConfig, target: &str, suite: &[Scenario]) -> anyhow::Result<()> {
    let path = fourleg_target::profile::resolve(target, &config.fixtures_dir.join("targets"))?;
    let profile = Profile::load(&path)?;
    for (i, x) in profile.expected_failures.iter().enumerate() {
        if suite.iter().any(|s| s.id == x.scenario) {
            continue;
        }
        let nearest = suite
            .iter()
            .map(|s| (edit_distance(&s.id, &x.scenario), &s.id))
            .min()
            .filter(|(d, _)| *d <= x.scenario.len() / 3 + 2)
            .map(|(_, id)| format!(" (did you mean `{id}`?)"))
            .unwrap_or_default();
        anyhow::bail!(
            "target profile {}: field `expected_failures[{i}].scenario`: no scenario `{}` in the suites{nearest}",
            path.display(),
            x.scenario
        );
    }
    for (i, area) in profile.areas.iter().enumerate() {
        if !suite.iter().any(|s| &s.area == area) {
            let mut known: Vec<&str> = suite.iter().map(|s| s.area.as_str()).collect();
            known.sort_unstable();
            known.dedup();
            anyhow::bail!(
                "target profile {}: field `areas[{i}]`: no area `{area}` in the suites (known: {})",
                path.display(),
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The lab as a bundled target needs it, starting it when it does not run.
pub async fn lab_context(config: &LabConfig, start: bool) -> anyhow::Result<LabContext> {
    let status = fourleg_lab::status(config).await?;
    if !status.all_healthy() {
        if !start {
            anyhow::bail!(
                "the lab in {} is not running; start it with `fourleg up` (or drop --no-start)",
                config.state_dir.display()
            );
        }
        eprintln!("the lab is not running: starting it (fourleg up)");
        let progress = crate::progress::Reporter::new();
        let (kind, why) = fourleg_lab::detect_runtime(config).await;
        eprintln!("runtime auto: {} ({why})", kind.name());
        let res = fourleg_lab::up(config, kind, &progress).await;
        progress.finish();
        res?;
    }
    context(config).await
}

/// What a lab target is given: the lab's generated secrets, and the URL and
/// version of every service and peer that runs and is healthy.
async fn context(config: &LabConfig) -> anyhow::Result<LabContext> {
    let status = fourleg_lab::status(config).await?;
    let creds = Credentials::load(config)?.context("the lab has no credentials; run `fourleg up`")?;
    let mut ctx = LabContext {
        client_secrets: creds.clients.clone(),
        user_passwords: creds.users.clone(),
        state_dir: Some(std::path::absolute(&config.state_dir).unwrap_or_else(|_| config.state_dir.clone())),
        ..LabContext::default()
    };
    for s in status.services.iter().filter(|s| s.running && s.healthy) {
        ctx.urls.insert(s.name.name().to_owned(), s.url.clone());
        ctx.versions.insert(s.name.name().to_owned(), s.version.clone());
    }
    for (p, ok) in fourleg_lab::peers::status(config).await? {
        if ok {
            ctx.urls.insert(p.name.clone(), p.url);
            ctx.versions.insert(p.name, p.version);
        }
    }
    Ok(ctx)
}

/// A peer target needs its peer and the lab's secrets, not the lab's
/// services: starts the peer (which makes the secrets) when it does not run.
async fn peer_context(config: &LabConfig, peer: &str, start: bool) -> anyhow::Result<LabContext> {
    let running = fourleg_lab::peers::status(config).await?.into_iter().any(|(p, ok)| ok && p.name == peer);
    if !running {
        if !start {
            anyhow::bail!("peer {peer} is not running; start it with `fourleg up --with {peer}` (or drop --no-start)");
        }
        start_peer(config, peer).await?;
    }
    context(config).await
}

/// Starts a peer (building or installing it first when needed), saying so
/// on stderr: for `up --with` and for a peer target's run.
pub async fn start_peer(config: &LabConfig, peer: &str) -> anyhow::Result<fourleg_lab::peers::PeerRecord> {
    if let Some(what) = fourleg_lab::peers::pending_install(config, peer)? {
        eprintln!("peer {peer}: {what}");
    }
    eprintln!("peer {peer}: starting");
    let p = fourleg_lab::peers::up(config, peer).await?;
    eprintln!("peer {peer}: ready in {:.1}s at {}", Duration::from_millis(p.startup_ms).as_secs_f64(), p.url);
    Ok(p)
}

/// The demo chains this process serves; they stop with it.
static DEMOS: std::sync::Mutex<Vec<fourleg_demo::Demo>> = std::sync::Mutex::new(Vec::new());

/// Serves the guided labs' demo chain (the MCP server on rmcp and the
/// records API) in this process, as the profile's `[resource]` names it
/// (`{lab.demo-mcp}`: in front of the lab's Keycloak as in Lab 1;
/// `{lab.demo-mcp-broker}`: in front of the reference broker), on free
/// ports, for as long as the process runs, and names its URLs in `ctx`.
async fn start_demo_resource(config: &LabConfig, ctx: &mut LabContext, url: &str) -> anyhow::Result<()> {
    for name in fourleg_demo::RESOURCE_LABS {
        if !url.contains(&format!("{{lab.{name}}}")) {
            continue;
        }
        let journal = config.state_path(format!("demo/{name}-journal.jsonl"));
        let Some(demo) = fourleg_demo::Demo::for_lab(
            name,
            &ctx.urls,
            fourleg_lab::provision::keycloak::REALM,
            &ctx.client_secrets,
            journal,
        )
        .await
        else {
            continue;
        };
        let demo = demo.with_context(|| format!("starting the demo MCP server `{name}` for `[resource]`"))?;
        for (key, url) in demo.resource_urls(name) {
            ctx.urls.insert(key, url);
        }
        ctx.versions.insert(name.into(), env!("CARGO_PKG_VERSION").into());
        DEMOS.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(demo);
    }
    Ok(())
}

/// Connects to a target by name or path, with the lab when it is a lab target.
pub async fn connect(config: &LabConfig, target: &str, start_lab: bool) -> anyhow::Result<(Arc<Target>, Vec<u8>)> {
    let path = fourleg_target::profile::resolve(target, &config.fixtures_dir.join("targets"))?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let profile = Profile::load(&path)?;
    let mut lab = match &profile.lab {
        Some(service) if fourleg_lab::peers::available(&config.fixtures_dir).contains(service) => {
            Some(peer_context(config, service, start_lab).await?)
        }
        Some(_) => Some(lab_context(config, start_lab).await?),
        None => None,
    };
    if let (Some(ctx), Some(r)) = (lab.as_mut(), &profile.resource) {
        start_demo_resource(config, ctx, &r.url).await?;
    }
    let target = Target::connect(profile, lab).await?;
    Ok((Arc::new(target), bytes))
}

/// A line per scenario on stderr.
#[derive(Debug)]
pub struct Lines {
    color: bool,
    /// Named on each line when several targets run at once.
    target: Option<String>,
}

impl Lines {
    pub fn new() -> Self {
        Self { color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(), target: None }
    }

    /// Lines that name `target`, for runs side by side.
    pub fn for_target(target: &str) -> Self {
        Self { target: Some(target.to_owned()), ..Self::new() }
    }

    fn paint(&self, status: Status, text: &str) -> String {
        if !self.color {
            return text.to_owned();
        }
        let code = match status {
            Status::Pass => "32",
            Status::Info | Status::NotApplicable => "36",
            Status::Warn => "33",
            Status::Fail | Status::Untestable => "31",
            Status::Error => "35",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// The status word of a result as printed, with expectations.
pub fn status_word(r: &ScenarioResult) -> String {
    let base = r.status.word().to_uppercase();
    if r.stale_expectation {
        format!("{base} (stale expectation)")
    } else if r.expected_failure.is_some() && r.status != Status::Pass {
        format!("{base} (expected)")
    } else {
        base
    }
}

/// How much `run` and `matrix` say per scenario on stderr (`--quiet`,
/// `--verbose`); the summary and the closing lines go to stdout either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// No line per scenario.
    Quiet,
    /// A line per scenario, with the checks that decided a finding (at most three).
    Normal,
    /// A line per scenario and every check of it, passing ones included.
    Verbose,
}

static VERBOSITY: std::sync::OnceLock<Verbosity> = std::sync::OnceLock::new();

/// Sets the verbosity once, from the command line.
pub fn set_verbosity(v: Verbosity) {
    let _ = VERBOSITY.set(v);
}

fn verbosity() -> Verbosity {
    VERBOSITY.get().copied().unwrap_or(Verbosity::Normal)
}

impl Observer for Lines {
    fn started(&self, _: &Scenario) {}

    fn finished(&self, r: &ScenarioResult) {
        let verbosity = verbosity();
        if verbosity == Verbosity::Quiet {
            return;
        }
        let word = self.paint(r.status, &format!("{:<24}", status_word(r)));
        let on = self.target.as_deref().map(|t| format!("[{t}] ")).unwrap_or_default();
        let mut line = format!("{word} {on}{}/{}  ({:.1}s)", r.area, r.id, r.duration_ms as f64 / 1000.0);
        let finding = matches!(r.status, Status::Fail | Status::Warn | Status::Untestable | Status::Error);
        // What the check lines said, so the reason is not said twice.
        let mut said: Vec<String> = Vec::new();
        if finding || verbosity == Verbosity::Verbose {
            let shown: Vec<_> = if verbosity == Verbosity::Verbose {
                r.checks.iter().collect()
            } else {
                r.checks.iter().filter(|c| c.status == r.status).collect()
            };
            let verbose = verbosity == Verbosity::Verbose;
            // Identical lines (one rule checked the same way on several
            // steps, untestable for one reason) are said once, counted.
            let mut lines: Vec<(String, usize)> = Vec::new();
            for c in &shown {
                let status = if verbose { format!("{} ", c.status.word()) } else { String::new() };
                let step = match c.step {
                    Some(i) if verbose => format!(" (step {i})"),
                    _ => String::new(),
                };
                let text = format!("{status}{} [{}]{step}: {}", c.rule, c.grade(), c.message);
                match lines.iter_mut().find(|(t, _)| *t == text) {
                    Some((_, n)) => *n += 1,
                    None => lines.push((text, 1)),
                }
            }
            // Under --verbose the controls show too: a check means what it
            // does only once they held.
            if verbose {
                for p in &r.preconditions {
                    let held = if p.held { "held" } else { "not held" };
                    lines.push((format!("precondition {held} (step {}): {}", p.step, p.message), 1));
                }
            }
            let shown = lines;
            let most = if verbose { usize::MAX } else { 3 };
            said = shown.iter().take(most).map(|(t, _)| t.clone()).collect();
            for (text, n) in shown.iter().take(most) {
                let times = if *n > 1 { format!(" (×{n})") } else { String::new() };
                let _ = write!(line, "\n    {text}{times}");
            }
            if shown.len() > most {
                let _ = write!(line, "\n    … and {} more (see --verbose or --json)", shown.len() - most);
            }
            if let Some(x) = r.expected_failure.as_ref().filter(|_| finding) {
                let _ = write!(line, "\n    expected: {x}");
            }
        }
        if let Some(reason) = r.reason.as_ref().filter(|why| !said.iter().any(|t| t.contains(why.as_str()))) {
            if matches!(r.status, Status::NotApplicable | Status::Error) || verbosity == Verbosity::Verbose {
                let _ = write!(line, "\n    {reason}");
            }
        }
        eprintln!("{line}");
    }
}

/// The summary printed after a run.
pub fn summary(run: &Run) -> String {
    let s = &run.summary;
    let counts: Vec<String> = s.by_status.iter().map(|(k, v)| format!("{v} {}", k.word())).collect();
    format!(
        "{} {} against {} {}: {}: {}; {} unexpected failures, {} expected, {} stale expectations ({:.1}s)",
        "fourleg",
        run.fourleg_version,
        run.target.name,
        run.target.version.as_deref().unwrap_or("(version unknown)"),
        plural(s.total, "scenario"),
        counts.join(", "),
        s.unexpected_failures,
        s.expected_failures,
        s.stale_expectations,
        run.duration_ms as f64 / 1000.0
    )
}

/// The exit code of a run: 2 on harness errors, 1 on unexpected failures or
/// stale expectations, 0 otherwise.
pub fn exit_code(run: &Run) -> u8 {
    if run.scenarios.iter().any(|r| r.status == Status::Error) {
        exit::HARNESS
    } else if run.summary.unexpected_failures > 0 || run.summary.stale_expectations > 0 {
        exit::FINDINGS
    } else {
        exit::OK
    }
}

/// Runs the suites against one target.
pub async fn run_target(
    config: &LabConfig,
    target: &str,
    scenarios: &[Scenario],
    registry: &Registry,
    concurrency: usize,
    start_lab: bool,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Run> {
    let (target, bytes) = connect(config, target, start_lab).await?;
    run_connected(target, &bytes, scenarios, registry, concurrency, observer).await
}

/// Runs the suites against a target already connected.
pub async fn run_connected(
    target: Arc<Target>,
    profile_bytes: &[u8],
    scenarios: &[Scenario],
    registry: &Registry,
    concurrency: usize,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<Run> {
    // A resource's column names the resource, then the server whose tokens it takes.
    let at = match &target.endpoints.resource {
        Some(r) => format!("{r} (tokens from {})", target.address()),
        None => target.address(),
    };
    if verbosity() != Verbosity::Quiet {
        eprintln!(
            "running {} against {} ({} {}) at {at}",
            plural(scenarios.len(), "scenario"),
            target.name(),
            target.profile.product,
            target.version.as_deref().unwrap_or("?"),
        );
    }
    if let Some(problem) = &target.discovery_problem {
        eprintln!(
            "warning: {problem}\n  the metadata scenarios grade it; what needs an endpoint only the document would give is untestable"
        );
    }
    let engine = Arc::new(fourleg_scenario::Engine::new(Arc::clone(&target), Arc::new(registry.clone())));
    runner::run(engine, scenarios, concurrency, profile_bytes, &registry.profile_version, observer)
        .await
        .map_err(|d| anyhow::anyhow!("{d}"))
}

/// `n thing` or `n things`.
pub fn plural(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

/// The exit code of a document, gated on a baseline when one is given.
pub fn document_exit(doc: &RunDocument, baseline: Option<&Path>) -> anyhow::Result<u8> {
    if let Some(b) = baseline {
        let base = RunDocument::load(b)?;
        let g = fourleg_report::diff::gate(&base, doc);
        eprint!("{}", g.text());
        return Ok(g.exit_code());
    }
    Ok(doc.runs.iter().map(exit_code).max().unwrap_or(exit::OK))
}

/// `fourleg run`.
#[expect(clippy::too_many_arguments, reason = "the command's flags, passed through once")]
pub async fn run(
    config: &LabConfig,
    target: &str,
    filters: &[String],
    json: Option<&Path>,
    baseline: Option<&Path>,
    concurrency: usize,
    suites: Option<&Path>,
    start_lab: bool,
) -> anyhow::Result<u8> {
    let (registry, scenarios) =
        load_suites(config, &suites_dir(config, suites), filters, std::slice::from_ref(&target.to_owned()))?;
    if scenarios.is_empty() {
        anyhow::bail!("no scenario matches the filter {filters:?}");
    }
    let run = run_target(config, target, &scenarios, &registry, concurrency, start_lab, Arc::new(Lines::new())).await?;
    println!("{}", summary(&run));
    let doc = RunDocument::new(vec![run], &registry.profile_version, runner::rfc3339_now());
    if let Some(path) = json {
        std::fs::write(path, doc.to_json()).with_context(|| format!("writing {}", path.display()))?;
        if verbosity() != Verbosity::Quiet {
            eprintln!("run document written to {}", path.display());
        }
    }
    document_exit(&doc, baseline)
}

/// `fourleg lab keycloak-client`: enable or disable a client of the lab's realm.
pub async fn keycloak_client(config: &LabConfig, client_id: &str, enabled: bool) -> anyhow::Result<u8> {
    let status = fourleg_lab::status(config).await?;
    let kc = status
        .services
        .iter()
        .find(|s| s.name == Service::Keycloak && s.healthy)
        .context("the lab's keycloak is not running; start it with `fourleg up`")?;
    let creds = Credentials::load(config)?.context("the lab has no credentials")?;
    fourleg_lab::provision::keycloak::set_client_enabled(&kc.url, &creds.keycloak_admin, client_id, enabled).await?;
    eprintln!("client {client_id} {}", if enabled { "enabled" } else { "disabled" });
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn an_unknown_expected_failure_ends_the_run_before_any_scenario_whatever_the_filter() {
        let mut config = LabConfig::new(std::env::temp_dir().join("fourleg-unused-state"));
        config.fixtures_dir = repo().join("fixtures");
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("vendor.toml");
        let text = std::fs::read_to_string(repo().join("fixtures/targets/idpyoidc.toml")).unwrap();
        let first = text.find("scenario = \"").unwrap() + "scenario = \"".len();
        std::fs::write(&profile, format!("{}typo-{}", &text[..first], &text[first..])).unwrap();
        let target = profile.display().to_string();
        for filter in [vec![], vec!["core/*".to_owned()], vec!["no-such-scenario".to_owned()]] {
            let err = load_suites(&config, &repo().join("suites"), &filter, std::slice::from_ref(&target))
                .unwrap_err()
                .to_string();
            assert!(err.contains("field `expected_failures[0].scenario`"), "{err}");
            assert!(err.contains("did you mean"), "{err}");
        }
        // The bundled profiles name only real scenarios.
        let bundled = crate::matrix::bundled_targets(&config).unwrap();
        assert!(load_suites(&config, &repo().join("suites"), &[], &bundled).is_ok());
    }

    #[test]
    fn an_unknown_feature_or_a_bad_policy_ends_the_run_before_any_scenario_whatever_the_filter() {
        let mut config = LabConfig::new(std::env::temp_dir().join("fourleg-unused-state"));
        config.fixtures_dir = repo().join("fixtures");
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(repo().join("fixtures/targets/keycloak.toml")).unwrap();
        let cases = [
            (text.replace("\nlogout = true", "\nlogot = true"), "field `features.logot`", "did you mean `logout`?"),
            (
                text.replace("[introspection]\nas = \"audience\"", "[introspection]\nas = \"audiense\""),
                "field `introspection.as`",
                "did you mean `audience`?",
            ),
            (
                text.replace("[revocation]\nas = \"issued-to\"", "[revocation]\nas = { client = \"nobody\" }"),
                "field `revocation.as`",
                "`nobody`",
            ),
        ];
        for (i, (broken, field, hint)) in cases.iter().enumerate() {
            assert_ne!(broken, &text, "case {i} changes the profile");
            let profile = dir.path().join(format!("vendor-{i}.toml"));
            std::fs::write(&profile, broken).unwrap();
            let target = profile.display().to_string();
            for filter in [vec![], vec!["no-such-scenario".to_owned()]] {
                let err =
                    load_suites(&config, &repo().join("suites"), &filter, std::slice::from_ref(&target)).unwrap_err();
                let err = format!("{err:#}");
                assert!(err.contains(field) && err.contains(hint), "case {i}: {err}");
            }
        }
    }

    #[test]
    fn the_bundled_profiles_still_load() {
        let mut config = LabConfig::new(std::env::temp_dir().join("fourleg-unused-state"));
        config.fixtures_dir = repo().join("fixtures");
        let bundled = crate::matrix::bundled_targets(&config).unwrap();
        assert!(load_suites(&config, &repo().join("suites"), &[], &bundled).is_ok());
    }
}
