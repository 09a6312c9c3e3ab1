//! `fourleg lab list` and `fourleg lab <n>`: the guided labs.
//!
//! Starts the lab (reusing a running one) and the demo chain, then walks the
//! lab's steps: shows what to do, waits for the learner (or, with `--auto`,
//! does it), and checks it against the real lab.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fourleg_demo::{ClientCreds, Demo, DemoConfig, Listen, Trust};
use fourleg_guide::def::ExchangeAt;
use fourleg_guide::{auto, Env, KeycloakAdmin, Lab, Progress, Since, Step};
use fourleg_lab::state::Credentials;
use fourleg_lab::LabConfig;
use tokio::io::AsyncBufReadExt as _;

use crate::exit;

/// The realm of the bundled lab.
const REALM: &str = "fourleg";

/// How `fourleg lab <n>` was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub auto: bool,
    pub reset: bool,
    pub step: Option<String>,
    /// First of the four demo ports (0: any free ones).
    pub port_base: u16,
    pub labs_dir: Option<PathBuf>,
}

fn labs_dir(explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(fourleg_guide::def::default_labs_dir, Path::to_path_buf)
}

/// `fourleg lab list`.
pub fn list(dir: Option<&Path>) -> anyhow::Result<u8> {
    let dir = labs_dir(dir);
    let labs = fourleg_guide::def::list(&dir)?;
    if labs.is_empty() {
        anyhow::bail!("no lab in {} (each lab is <n>/lab.toml)", dir.display());
    }
    for l in labs {
        println!("{}  {} (about {} min, {} steps)", l.id, l.title, l.minutes, l.steps.len());
    }
    println!("\nstart one with: fourleg lab <n>   (--auto does every step itself)");
    Ok(exit::OK)
}

/// Replaces `{web}`, `{agent}`, `{mcp}`, `{api}`, `{keycloak}` and
/// `{password:<user>}` in a step's text.
fn render(text: &str, demo: &Demo, keycloak: &str, creds: &Credentials, state: &Path, show_passwords: bool) -> String {
    let postgres = fourleg_lab::state::LabState::load(state)
        .ok()
        .flatten()
        .and_then(|st| {
            st.services
                .get(&fourleg_lab::Service::Postgres)
                .map(|r| format!("postgres://broker@{}:{}/broker", r.host, r.port))
        })
        .unwrap_or_else(|| "(Postgres does not run)".into());
    let mut out = text
        .replace("{postgres}", &postgres)
        .replace("{state}", &state.display().to_string())
        .replace("{web}", &demo.web_url)
        .replace("{agent}", &demo.agent_url)
        .replace("{mcp}", &demo.mcp_url)
        .replace("{api}", &demo.api_url)
        .replace("{keycloak}", keycloak);
    while let Some(start) = out.find("{password:") {
        let Some(len) = out[start..].find('}') else { break };
        let user = out[start + 10..start + len].to_owned();
        let shown = match creds.users.get(&user) {
            Some(p) if show_passwords => p.expose().to_owned(),
            Some(_) => format!("in {} under users.{user}", Credentials::path(&LabConfig::new(state)).display()),
            None => format!("(no user {user} in the lab)"),
        };
        out.replace_range(start..=start + len, &shown);
    }
    out.trim().to_owned()
}

/// Text reflowed to `width` columns after `by`: paragraphs (split at blank
/// lines) joined into lines, every line indented.
fn wrap(text: &str, by: &str, width: usize) -> String {
    let mut out = Vec::new();
    for para in text.trim().split("\n\n") {
        let mut line = String::new();
        for word in para.split_whitespace() {
            if !line.is_empty() && by.chars().count() + line.chars().count() + 1 + word.chars().count() > width {
                out.push(format!("{by}{line}"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push(format!("{by}{line}"));
        out.push(String::new());
    }
    out.pop();
    out.join("\n")
}

/// `fourleg lab <n>`.
pub async fn run(config: &LabConfig, id: &str, opts: &Options) -> anyhow::Result<u8> {
    let dir = labs_dir(opts.labs_dir.as_deref());
    let lab = fourleg_guide::def::find(&dir, id)?;
    let start_index = match &opts.step {
        Some(k) => Some(lab.step_index(k).with_context(|| {
            format!("lab {} has no step {k:?}: give 1 to {} or a step id ({})", lab.id, lab.steps.len(), ids(&lab))
        })?),
        None => None,
    };
    let ctx = crate::run::lab_context(config, true).await?;
    let creds = Credentials::load(config)?.context("the lab has no credentials; run `fourleg up`")?;
    let keycloak =
        ctx.urls.get("keycloak").cloned().context("the lab's Keycloak does not run; `fourleg status` says why")?;
    let issuer = format!("{keycloak}/realms/{REALM}");
    let client = |name: &str| -> anyhow::Result<ClientCreds> {
        let secret = creds
            .clients
            .get(name)
            .cloned()
            .with_context(|| format!("the lab has no secret for {name}; run `fourleg up`"))?;
        Ok(ClientCreds { client_id: name.to_owned(), secret })
    };
    let keycloak_trust = Trust::jwks(issuer.clone(), format!("{issuer}/protocol/openid-connect/certs"));
    let (exchange_endpoint, trust) = match lab.exchange_at {
        ExchangeAt::Keycloak => (format!("{issuer}/protocol/openid-connect/token"), vec![keycloak_trust]),
        ExchangeAt::Broker => {
            let broker =
                ctx.urls.get("broker").cloned().context("the lab's broker does not run; `fourleg status` says why")?;
            (
                format!("{broker}/token"),
                vec![
                    keycloak_trust,
                    // Every broker token is introspected: a revoked chain is
                    // refused at once, not when its tokens expire.
                    Trust {
                        issuer: broker.clone(),
                        jwks_uri: format!("{broker}/jwks"),
                        introspection_endpoint: Some(format!("{broker}/introspect")),
                    },
                ],
            )
        }
    };
    let postgres = fourleg_lab::state::LabState::load(&config.state_dir)?
        .and_then(|st| st.services.get(&fourleg_lab::Service::Postgres).map(|r| (r.host.clone(), r.port)));
    let journal = config.state_path("demo/journal.jsonl");
    let demo = Demo::start(DemoConfig {
        login_issuer: issuer.clone(),
        web_client_id: "lab-web".into(),
        exchange_endpoint,
        trust,
        agent: client("agent")?,
        mcp_server: client("mcp-server")?,
        api: Some(client("downstream-api")?),
        mcp_audience: "mcp-server".into(),
        api_audience: "downstream-api".into(),
        listen: Listen::from_base(opts.port_base),
        journal: journal.clone(),
        delegate: lab.exchange_at == ExchangeAt::Broker,
        cache_exchanges: lab.exchange_at == ExchangeAt::Broker,
    })
    .await?;

    let mut progress =
        if opts.reset || opts.auto { Progress::default() } else { Progress::load(&config.state_dir, lab.id) };
    if progress.lab_since_ms == 0 {
        progress.lab_since_ms = fourleg_guide::progress::now_ms();
    }
    let first = start_index.unwrap_or(if progress.since_ms == 0 { 0 } else { progress.current });
    if first >= lab.steps.len() {
        eprintln!("Lab {} is complete; `fourleg lab {} --reset` starts over.", lab.id, lab.id);
        demo.stop().await;
        return Ok(exit::OK);
    }
    let env = Env {
        journal,
        keycloak: Some(KeycloakAdmin {
            base: keycloak.clone(),
            realm: REALM.into(),
            admin_password: creds.keycloak_admin.clone(),
        }),
        database: postgres.as_ref().map(|(host, port)| fourleg_guide::check::Database {
            host: host.clone(),
            port: *port,
            dbname: "broker".into(),
            user: "broker".into(),
            password: creds.postgres_broker.clone(),
        }),
        http: reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(30)).build()?,
    };
    let show_passwords = !opts.auto && std::io::stdout().is_terminal();
    let browser = if opts.auto {
        let fourleg =
            std::env::current_exe().ok().map(|bin| auto::Fourleg { bin, state_dir: config.state_dir.clone() });
        Some(auto::Browser::new(&demo.web_url, creds.users.clone(), fourleg)?)
    } else {
        None
    };

    println!("Lab {} · {} (about {} min)", lab.id, lab.title, lab.minutes);
    println!("{}", wrap(&lab.summary, "  ", 80));
    println!(
        "\ndemo chain: lab-web {}  agent {}  MCP server {}  records API {}\njournal: {}\n",
        demo.web_url,
        demo.agent_url,
        demo.mcp_url,
        demo.api_url,
        env.journal.display()
    );
    let mut failed = Vec::new();
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    for (i, step) in lab.steps.iter().enumerate().skip(first) {
        progress.start(i);
        progress.save(&config.state_dir, lab.id).context("cannot save the lab's progress")?;
        println!("── Step {}/{} · {}", i + 1, lab.steps.len(), step.title);
        println!("{}", wrap(&step.concept, "   ", 80));
        if !step.references.is_empty() {
            println!("   ({})", step.references.join(", "));
        }
        println!(
            "\n   Do:\n{}",
            wrap(&render(&step.todo, &demo, &keycloak, &creds, &config.state_dir, show_passwords), "     ", 80)
        );
        let hint = wrap(&render(&step.hint, &demo, &keycloak, &creds, &config.state_dir, false), "         ", 80);
        let passed = if let Some(b) = &browser {
            auto_step(b, step, &env, &progress, &hint).await
        } else {
            let Some(p) = interactive_step(&mut stdin, step, &env, &progress, &hint).await? else {
                println!("\nprogress saved: `fourleg lab {}` resumes at step {}", lab.id, i + 1);
                demo.stop().await;
                return Ok(exit::OK);
            };
            p
        };
        if passed {
            if !progress.passed.contains(&step.id) {
                progress.passed.push(step.id.clone());
            }
        } else {
            failed.push(step.id.clone());
        }
        println!();
    }
    progress.current = lab.steps.len();
    progress.save(&config.state_dir, lab.id).context("cannot save the lab's progress")?;
    demo.stop().await;
    if failed.is_empty() {
        println!("Lab {} complete: every step checked against the running lab.", lab.id);
        Ok(exit::OK)
    } else {
        println!("Lab {}: {} step(s) failed their checks: {}", lab.id, failed.len(), failed.join(", "));
        Ok(exit::FINDINGS)
    }
}

fn ids(lab: &Lab) -> String {
    lab.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
}

fn since(p: &Progress) -> Since {
    Since { step: p.since_ms, lab: p.lab_since_ms }
}

/// Prints the outcomes; true when all passed.
fn show(outcomes: &[fourleg_guide::Outcome]) -> bool {
    for o in outcomes {
        let mark = if o.passed { "✓" } else { "✗" };
        println!("   {mark} {}\n       {}", o.says, o.detail);
    }
    outcomes.iter().all(|o| o.passed)
}

async fn auto_step(b: &auto::Browser, step: &Step, env: &Env, progress: &Progress, hint: &str) -> bool {
    for a in &step.auto {
        println!("   [auto] {}", describe(a));
        if let Err(e) = b.perform(a).await {
            println!("   [auto] could not be done: {e}");
        }
    }
    // What the chain did is journalled before it answers; Keycloak stores its
    // events as it answers. One short retry covers a slow store.
    let mut outcomes = fourleg_guide::check_step(step, env, since(progress)).await;
    if outcomes.iter().any(|o| !o.passed) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        outcomes = fourleg_guide::check_step(step, env, since(progress)).await;
    }
    let ok = show(&outcomes);
    if !ok {
        println!("   hint: {}", hint.trim_start());
    }
    ok
}

fn describe(a: &fourleg_guide::Action) -> String {
    match a {
        fourleg_guide::Action::Login { user } => format!("log in to lab-web as {user} (the real login page)"),
        fourleg_guide::Action::Ask { what } => format!("press \"Ask the agent to {what}\""),
        fourleg_guide::Action::Replay => "press \"Replay the MCP server's token at the API\"".into(),
        fourleg_guide::Action::LogoutEverywhere => "press \"Log out everywhere\"".into(),
        fourleg_guide::Action::Fourleg { args } => format!("run `fourleg {}`", args.join(" ")),
    }
}

/// Waits for the learner; `None` when they quit (or stdin ended).
async fn interactive_step(
    stdin: &mut tokio::io::Lines<tokio::io::BufReader<tokio::io::Stdin>>,
    step: &Step,
    env: &Env,
    progress: &Progress,
    hint: &str,
) -> anyhow::Result<Option<bool>> {
    loop {
        println!("\n   Press Enter to check · h: hint · s: skip this step · q: quit (progress is kept)");
        let Some(line) = stdin.next_line().await? else { return Ok(None) };
        match line.trim() {
            "q" | "quit" => return Ok(None),
            "s" | "skip" => {
                println!("   skipped");
                return Ok(Some(false));
            }
            "h" | "hint" => println!("   hint: {}", hint.trim_start()),
            _ => {
                let outcomes = fourleg_guide::check_step(step, env, since(progress)).await;
                if show(&outcomes) {
                    return Ok(Some(true));
                }
                println!("   hint: {}", hint.trim_start());
            }
        }
    }
}
