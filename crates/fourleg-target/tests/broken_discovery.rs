//! A discovery document that is too large, not JSON or not an object ends
//! `Target::connect` with an error naming the URL and what was wrong, after
//! reading at most `MAX_BODY_BYTES` of it; a good one connects.

use std::path::Path;

use axum::routing::get;
use axum::Router;
use fourleg_target::{Profile, Target, TargetError};

const PROFILE: &str = r#"
name = "discovery"
product = "Discovery IdP"
summary = "serves a discovery document of the test's choice"
[endpoints]
issuer = "{base}"
discovery = "oauth"
[clients.agent]
client_id = "agent"
secret = { env = "FOURLEG_DISCOVERY_TEST_SECRET" }
[clients.web]
client_id = "web"
public = true
[users.alice]
username = "alice"
password = { env = "FOURLEG_DISCOVERY_TEST_SECRET" }
login = "password"
client = "web"
[permissions]
"records:read" = "read"
[audiences]
mcp-server = "mcp"
[features]
delegation = false
may_act = false
introspection = false
revocation = false
resource = false
"#;

async fn serve(body: Vec<u8>) -> String {
    let app = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn connect(body: Vec<u8>) -> Result<Target, TargetError> {
    std::env::set_var("FOURLEG_DISCOVERY_TEST_SECRET", "discovery-test-secret-value");
    let base = serve(body).await;
    let profile = Profile::parse(&PROFILE.replace("{base}", &base), Path::new("discovery.toml")).unwrap();
    Target::connect(profile, None).await
}

#[tokio::test]
async fn an_oversized_discovery_document_is_refused_without_reading_it_all() {
    // 16 MiB of a JSON string: far past the bound.
    let mut body = b"{\"issuer\": \"".to_vec();
    body.resize(16 * 1024 * 1024, b'a');
    body.extend_from_slice(b"\"}");
    let err = connect(body).await.unwrap_err();
    assert!(matches!(err, TargetError::DiscoveryBody { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("longer than") && msg.contains("oauth-authorization-server"), "{msg}");
}

#[tokio::test]
async fn a_discovery_document_that_is_not_a_json_object_is_named() {
    let err = connect(b"<html>maintenance</html>".to_vec()).await.unwrap_err().to_string();
    assert!(err.contains("not JSON"), "{err}");
    let err = connect(b"[1, 2]".to_vec()).await.unwrap_err().to_string();
    assert!(err.contains("not a JSON object"), "{err}");
}

#[tokio::test]
async fn a_good_discovery_document_connects() {
    let doc = serde_json::json!({"issuer": "x", "token_endpoint": "http://127.0.0.1:9/token"});
    let target = connect(serde_json::to_vec(&doc).unwrap()).await;
    assert!(target.is_ok(), "{:?}", target.err());
}
