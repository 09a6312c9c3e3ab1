//! The lab against real Keycloak, OpenBao and Postgres: `up` brings all three
//! up healthy and provisioned, a second `up` reuses them, `down` leaves no
//! process behind, and `down` also cleans up after an `up` that died half-way.
//!
//! Slow (a Keycloak start is a minute on two cores) and needs the native
//! runtime's prerequisites; see the README's "Tests" section.

use std::time::Duration;

use fourleg_lab::provision::{openbao, postgres};
use fourleg_lab::state::{Credentials, LabState};
use fourleg_lab::{RuntimeKind, Service, Silent};
use fourleg_live_tests::{claims, lab_config, login_with_pkce, processes_of, service_pids};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_lab_lifecycle() -> anyhow::Result<()> {
    let config = lab_config("live");
    let _ = fourleg_lab::down(&config, true).await;

    // 1. up: every service healthy and provisioned.
    let report = fourleg_lab::up(&config, RuntimeKind::Native, &Silent).await?;
    for s in &report.services {
        eprintln!("{:<9} {:<8} {:>6.1}s  {}", s.record.service, s.record.version, s.took.as_secs_f64(), s.record.url);
        assert!(!s.reused);
    }
    let status = fourleg_lab::status(&config).await?;
    assert!(status.all_healthy(), "{status:#?}");
    let started = service_pids(&config);
    assert_eq!(started.len(), 4, "postgres, openbao, keycloak and the broker");

    let creds = Credentials::load(&config)?.expect("credentials written by up");
    let url = |svc| report.services.iter().find(|s| s.record.service == svc).unwrap().record.clone();

    // Keycloak: alice logs in through the real login form (code + PKCE).
    let kc = url(Service::Keycloak);
    let issuer = format!("{}/realms/fourleg", kc.url);
    let tokens = login_with_pkce(&issuer, "lab-web", "openid", "alice", &creds.users["alice"]).await?;
    let access = claims(tokens["access_token"].as_str().unwrap())?;
    assert_eq!(access["preferred_username"], "alice", "{access:#}");
    assert_eq!(access["iss"], issuer);
    // A wrong password is refused (the check can fail).
    let wrong = fourleg_core::Secret::new("not-the-password");
    assert!(login_with_pkce(&issuer, "lab-web", "openid", "alice", &wrong).await.is_err());

    // OpenBao: the broker's AppRole (not root) reads its client secret.
    let bao = url(Service::Openbao);
    let cred = openbao::BrokerAppRole::load(&config)?.expect("approle written by up");
    let token = openbao::broker_login(&bao.url, &cred).await?;
    let client = openbao::Bao::new(&bao.url).with_token(token);
    let secret = client.ok(reqwest::Method::GET, "fourleg/data/clients/agent", None).await?;
    assert_eq!(secret["data"]["data"]["client_secret"], creds.clients["agent"].expose());
    // ... and nothing its policy does not grant.
    let (denied, _) = client.call(reqwest::Method::GET, "sys/mounts", None).await?;
    assert_eq!(denied, 403);
    let (sealed_ok, _) = client
        .call(reqwest::Method::POST, "transit/encrypt/broker-cache", Some(serde_json::json!({"plaintext": "aGk="})))
        .await?;
    assert_eq!(sealed_ok, 200);

    // Postgres: the broker's schema is there.
    let pg = url(Service::Postgres);
    let tables = postgres::broker_tables(pg.port, &creds).await?;
    for t in ["audit_log", "fourleg_migrations", "issued_tokens", "revocations"] {
        assert!(tables.iter().any(|x| x == t), "missing table {t} in {tables:?}");
    }

    // The broker: RFC 8414 metadata naming itself, and a client-credentials
    // token for the agent, whose secret it read from OpenBao; a wrong secret
    // is refused (the check can fail).
    let broker = url(Service::Broker);
    let http = reqwest::Client::builder().no_proxy().build()?;
    let meta: serde_json::Value =
        http.get(format!("{}/.well-known/oauth-authorization-server", broker.url)).send().await?.json().await?;
    assert_eq!(meta["issuer"], broker.url.as_str(), "{meta:#}");
    let grant = |secret: String| {
        http.post(format!("{}/token", broker.url))
            .basic_auth("agent", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let ok = grant(creds.clients["agent"].expose().to_owned()).await?;
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await?;
    assert_eq!(claims(body["access_token"].as_str().unwrap())?["client_id"], "agent", "{body:#}");
    assert_eq!(grant("wrong".into()).await?.status(), 401);

    // 2. A second up reuses everything, same processes.
    let again = fourleg_lab::up(&config, RuntimeKind::Native, &Silent).await?;
    assert!(again.services.iter().all(|s| s.reused), "{again:#?}");
    assert_eq!(service_pids(&config), started);
    // ... and leaves them working: a second `up` once closed the state
    // directory to the postgres user under its running cluster.
    let after = fourleg_lab::status(&config).await?;
    assert!(after.all_healthy(), "{after:#?}");
    assert!(postgres::broker_tables(pg.port, &creds).await.is_ok(), "new connections to postgres still work");

    // 3. down leaves no process behind.
    let down = fourleg_lab::down(&config, false).await?;
    assert_eq!(down.stopped.len(), 4);
    let left = processes_of(&started);
    assert!(left.is_empty(), "processes left after down: {left:#?}");
    assert!(!fourleg_lab::status(&config).await?.all_healthy());

    // 4. An up that dies half-way (while Keycloak starts): down still cleans up.
    let crashing = {
        let config = config.clone();
        tokio::spawn(async move { fourleg_lab::up(&config, RuntimeKind::Native, &Silent).await })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let st = LabState::load(&config.state_dir)?;
        if st.is_some_and(|s| s.services.contains_key(&Service::Keycloak)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "keycloak never started");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    crashing.abort();
    let _ = crashing.await;
    let orphans = service_pids(&config);
    assert_eq!(orphans.len(), 3, "lab.json records every started process");
    assert!(!processes_of(&orphans).is_empty());
    fourleg_lab::down(&config, true).await?;
    let left = processes_of(&orphans);
    assert!(left.is_empty(), "processes left after down of a crashed up: {left:#?}");
    assert!(!config.state_dir.exists(), "--purge removes the state directory");
    Ok(())
}
