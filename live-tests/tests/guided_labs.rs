//! The guided labs against the real lab (Keycloak, OpenBao, Postgres, the
//! broker): `fourleg lab 1 --auto` and `fourleg lab 2 --auto` pass every
//! check; each lab with a step left undone (Lab 1's replay, Lab 2's logout)
//! fails that step's checks with its hint; Lab 1 driven in
//! headless Chromium through Keycloak's real login page draws the decoded
//! chain (screenshot under `target/report-screenshots/`); the demo MCP
//! server refuses a request without a token and a token for another
//! audience, with `WWW-Authenticate` pointing at its RFC 9728 metadata.
//!
//! One lab for the whole file, started and purged here.

use std::time::{Duration, Instant};

use fourleg_demo::{ClientCreds, Demo, DemoConfig, Listen, Trust};
use fourleg_lab::state::Credentials;
use fourleg_lab::{RuntimeKind, Service, Silent};
use fourleg_live_tests::browser::Driver;
use fourleg_live_tests::{fourleg_binary, lab_config, login_with_pkce, repo, run_fourleg};

fn text(out: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guided_labs_against_the_real_lab() -> anyhow::Result<()> {
    let config = lab_config("guide");
    let _ = fourleg_lab::down(&config, true).await;
    let report = fourleg_lab::up(&config, RuntimeKind::Native, &Silent).await?;
    let keycloak = report.services.iter().find(|s| s.record.service == Service::Keycloak).unwrap().record.url.clone();
    let bin = fourleg_binary();
    let state = config.state_dir.clone();
    let result = async {
        // 1. `lab list` names Lab 1.
        let out = run_fourleg(&bin, &["lab", "list"], &state);
        assert!(out.status.success() && text(&out).contains("1  Token exchange on Keycloak"), "{}", text(&out));

        // 2. Lab 1, every step done and checked.
        let out = run_fourleg(&bin, &["lab", "1", "--auto"], &state);
        let t = text(&out);
        eprintln!("{t}");
        assert_eq!(out.status.code(), Some(0), "{t}");
        let lab = fourleg_guide::Lab::load(&repo().join("labs/1/lab.toml"))?;
        let checks: usize = lab.steps.iter().map(|s| s.checks.len()).sum();
        assert_eq!(t.matches("   ✓ ").count(), checks, "{t}");
        assert!(!t.contains('✗') && t.contains("Lab 1 complete"), "{t}");
        assert!(fourleg_core::jwt::find_signed_jwts(&t).is_empty(), "a usable token in the output");
        let journal = std::fs::read_to_string(state.join("demo/journal.jsonl"))?;
        assert!(fourleg_core::jwt::find_signed_jwts(&journal).is_empty(), "a usable token in the journal");

        // 3. The same lab with the replay left undone: its check fails with the hint.
        let labs = tempfile::tempdir()?;
        std::fs::create_dir_all(labs.path().join("1"))?;
        std::fs::write(labs.path().join("README.md"), "test labs")?;
        let toml = std::fs::read_to_string(repo().join("labs/1/lab.toml"))?;
        let skipped = toml.replace("auto = [{ action = \"replay\" }]", "auto = []");
        assert_ne!(skipped, toml);
        std::fs::write(labs.path().join("1/lab.toml"), skipped)?;
        let out = run_fourleg(&bin, &["lab", "1", "--auto", "--labs", labs.path().to_str().unwrap()], &state);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        assert!(t.contains("✗ the API refused (401) a token whose audience is the MCP server"), "{t}");
        assert!(t.contains("hint: Press the replay button"), "{t}");
        assert!(t.contains("failed their checks: wrong-audience"), "{t}");
        assert_eq!(t.matches('✗').count(), 1, "only the skipped step fails: {t}");

        // 4. Interactive: Enter checks (nothing done yet: ✗ and the hint), s
        // skips, q quits keeping the progress; the next run resumes there,
        // --reset starts over. No password is printed when stdout is no terminal.
        let interactive = |args: &[&str], input: &str| -> anyhow::Result<String> {
            use std::io::Write as _;
            let mut child = std::process::Command::new(&bin)
                .args(args)
                .args(["--port-base", "0", "--state-dir"])
                .arg(&state)
                .current_dir(repo())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()?;
            child.stdin.take().expect("piped").write_all(input.as_bytes())?;
            let out = child.wait_with_output()?;
            assert!(out.status.success(), "{}", text(&out));
            Ok(text(&out))
        };
        let t = interactive(&["lab", "1", "--reset"], "\ns\nq\n")?;
        assert!(t.contains("Step 1/4") && t.contains("✗ lab-web holds a token for alice"), "{t}");
        assert!(t.contains("hint: The check reads lab-web's journal"), "{t}");
        assert!(t.contains("skipped") && t.contains("Step 2/4"), "{t}");
        assert!(t.contains("progress saved: `fourleg lab 1` resumes at step 2"), "{t}");
        assert!(!t.contains(creds_password(&state, "alice")?.as_str()), "a password on a pipe");
        let t = interactive(&["lab", "1"], "q\n")?;
        assert!(t.contains("Step 2/4") && !t.contains("Step 1/4"), "resumes: {t}");
        let t = interactive(&["lab", "1", "--reset"], "q\n")?;
        assert!(t.contains("Step 1/4"), "--reset starts over: {t}");
        let t = interactive(&["lab", "1", "--step", "wrong-audience"], "q\n")?;
        assert!(t.contains("Step 3/4") && !t.contains("Step 2/4"), "--step jumps: {t}");

        // 5. Lab 2 on the broker: delegation, audit, cache, key rotation, and
        // a logout that kills the chain; then the same with no logout.
        let out = run_fourleg(&bin, &["lab", "2", "--auto"], &state);
        let t = text(&out);
        eprintln!("{t}");
        assert_eq!(out.status.code(), Some(0), "{t}");
        let lab = fourleg_guide::Lab::load(&repo().join("labs/2/lab.toml"))?;
        let checks: usize = lab.steps.iter().map(|s| s.checks.len()).sum();
        assert_eq!(t.matches("   ✓ ").count(), checks, "{t}");
        assert!(t.contains("the MCP server refused the agent's token after the logout"), "{t}");
        assert!(fourleg_core::jwt::find_signed_jwts(&t).is_empty(), "a usable token in the output");
        std::fs::create_dir_all(labs.path().join("2"))?;
        let toml = std::fs::read_to_string(repo().join("labs/2/lab.toml"))?;
        let skipped = toml.replace("auto = [{ action = \"logout-everywhere\" }]", "auto = []");
        assert_ne!(skipped, toml);
        std::fs::write(labs.path().join("2/lab.toml"), skipped)?;
        let out = run_fourleg(&bin, &["lab", "2", "--auto", "--labs", labs.path().to_str().unwrap()], &state);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{t}");
        for failed in [
            "✗ lab-web ended alice's session at Keycloak",
            "✗ the broker learned of the logout (back-channel) and marked the session",
            "✗ the broker revoked the chain derived from the session",
            "✗ the MCP server refused the agent's token after the logout",
        ] {
            assert!(t.contains(failed), "{failed}: {t}");
        }
        assert!(t.contains("hint: Press \"Log out everywhere\""), "{t}");
        assert!(t.contains("failed their checks: revoke"), "{t}");

        // 6. Lab 1 in a real browser, and the MCP server's refusals.
        browser_and_mcp(&config, &keycloak).await
    }
    .await;
    let _ = fourleg_lab::down(&config, true).await;
    result
}

fn creds_password(state: &std::path::Path, user: &str) -> anyhow::Result<String> {
    let creds: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state.join("credentials.json"))?)?;
    Ok(creds["users"][user].as_str().unwrap_or("no password").to_owned())
}

async fn browser_and_mcp(config: &fourleg_lab::LabConfig, keycloak: &str) -> anyhow::Result<()> {
    let creds = Credentials::load(config)?.expect("credentials written by up");
    let issuer = format!("{keycloak}/realms/fourleg");
    let client = |n: &str| ClientCreds { client_id: n.into(), secret: creds.clients[n].clone() };
    let dir = tempfile::tempdir()?;
    let demo = Demo::start(DemoConfig {
        login_issuer: issuer.clone(),
        web_client_id: "lab-web".into(),
        exchange_endpoint: format!("{issuer}/protocol/openid-connect/token"),
        trust: vec![Trust::jwks(issuer.clone(), format!("{issuer}/protocol/openid-connect/certs"))],
        agent: client("agent"),
        mcp_server: client("mcp-server"),
        api: None,
        mcp_audience: "mcp-server".into(),
        api_audience: "downstream-api".into(),
        listen: Listen::from_base(0),
        journal: dir.path().join("journal.jsonl"),
        delegate: false,
        cache_exchanges: false,
    })
    .await?;

    // The MCP server: no token, and alice's own token (meant for the agent).
    let http = reqwest::Client::new();
    let none = fourleg_demo::mcp::call_tool(
        &http,
        &demo.mcp_url,
        &fourleg_core::Secret::new(""),
        "read_records",
        serde_json::json!({}),
    )
    .await;
    let user = login_with_pkce(&issuer, "lab-web", "openid", "alice", &creds.users["alice"]).await?;
    let user_token = fourleg_core::Secret::new(user["access_token"].as_str().unwrap());
    let wrong =
        fourleg_demo::mcp::call_tool(&http, &demo.mcp_url, &user_token, "read_records", serde_json::json!({})).await;
    for (what, r) in [("no token", none), ("a token for the agent", wrong)] {
        match r {
            Err(fourleg_demo::mcp::McpCallError::Unauthorized { status, www_authenticate }) => {
                assert_eq!(status, 401, "{what}");
                let h = www_authenticate.unwrap_or_default();
                assert!(h.starts_with("Bearer") && h.contains("resource_metadata=\""), "{what}: {h}");
            }
            other => panic!("{what}: the MCP server did not refuse with 401: {other:?}"),
        }
    }

    // Chromium: log in on Keycloak's page, ask the agent, read the chain.
    let driver = Driver::start().await?;
    driver.open(&demo.web_url).await?;
    driver.js("document.getElementById('login').click()").await?;
    wait_for(&driver, "document.querySelector('input[name=password]') !== null").await?;
    let fill = format!(
        "document.querySelector('input[name=username]').value = 'alice';\
         document.querySelector('input[name=password]').value = {};\
         document.querySelector('input[name=password]').form.submit();",
        serde_json::Value::String(creds.users["alice"].expose().to_owned())
    );
    driver.js(&fill).await?;
    wait_for(&driver, "document.getElementById('ask-read') !== null").await?;
    driver.js("document.getElementById('ask-read').click()").await?;
    wait_for(&driver, "document.getElementById('chain') !== null && document.getElementById('message') !== null")
        .await?;
    let page = driver.js("return document.body.innerText").await?;
    let page = page.as_str().unwrap_or_default().to_owned();
    driver.screenshot("lab1-chain.png").await?;
    let html = driver.js("return document.documentElement.outerHTML").await?;
    driver.quit().await;
    for want in [
        "hop 1: agent exchanged it for the MCP server",
        "hop 2: the MCP server exchanged it for the API",
        "downstream-api",
        "alice",
        "read_records answered",
    ] {
        assert!(page.contains(want), "the page lacks {want:?}:\n{page}");
    }
    assert!(
        fourleg_core::jwt::find_signed_jwts(html.as_str().unwrap_or_default()).is_empty(),
        "a raw token on the page"
    );
    let api = demo.journal.read().into_iter().filter(|e| e.component == "api" && e.ok).count();
    assert!(api >= 1, "the API served nothing");
    demo.stop().await;
    Ok(())
}

async fn wait_for(driver: &Driver, condition: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if driver.js(&format!("return {condition}")).await?.as_bool() == Some(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let page = driver.js("return document.location.href + '\\n' + document.body.innerText").await?;
            anyhow::bail!("waited 30 s for {condition}; the page:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
