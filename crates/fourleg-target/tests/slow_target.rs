//! A target that answers past the profile's `endpoints.timeout_s` is reported
//! too slow (a finding about the target: the scenario's check is
//! untestable with that reason), never "unreachable" or a harness error;
//! one that answers in time is not.

use std::path::Path;
use std::time::Duration;

use axum::routing::post;
use axum::Router;
use fourleg_target::{Profile, Target, TargetError};

const PROFILE: &str = r#"
name = "slow"
product = "Slow IdP"
summary = "answers its token endpoint after a delay"
[endpoints]
discovery = "none"
token = "{base}/token"
timeout_s = 1
[clients.agent]
client_id = "agent"
secret = { env = "FOURLEG_SLOW_TEST_SECRET" }
[clients.web]
client_id = "web"
public = true
[users.alice]
username = "alice"
password = { env = "FOURLEG_SLOW_TEST_SECRET" }
login = "password"
client = "web"
[permissions]
"records:read" = "read"
[audiences]
mcp-server = "mcp"
[features]
delegation = true
may_act = true
introspection = false
revocation = false
resource = false
"#;

async fn serve(delay: Duration) -> String {
    let app = Router::new().route(
        "/token",
        post(move || async move {
            tokio::time::sleep(delay).await;
            axum::Json(serde_json::json!({"access_token": "opaque-access-token", "token_type": "Bearer"}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn target(base: &str) -> Target {
    std::env::set_var("FOURLEG_SLOW_TEST_SECRET", "slow-test-secret-value");
    let profile = Profile::parse(&PROFILE.replace("{base}", base), Path::new("slow.toml")).unwrap();
    Target::connect(profile, None).await.unwrap()
}

#[tokio::test]
async fn an_answer_past_the_timeout_is_too_slow_not_unreachable() {
    let base = serve(Duration::from_secs(3)).await;
    let err = target(&base).await.client_credentials("agent", &[]).await.unwrap_err();
    assert!(matches!(err, TargetError::TooSlow { seconds: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("did not answer") && err.to_string().contains("within 1s"), "{err}");
}

#[tokio::test]
async fn an_answer_in_time_is_an_answer() {
    let base = serve(Duration::from_millis(100)).await;
    let out = target(&base).await.client_credentials("agent", &[]).await.unwrap();
    assert_eq!(out.status, 200);
    // The opaque token it issued is redacted in the evidence.
    assert!(!serde_json::to_string(&out.evidence).unwrap().contains("opaque-access-token"));
}
