//! A discovery document that is missing, too large, not JSON or not an
//! object is a finding about the target, not a harness error:
//! `Target::connect` succeeds, names the URL and what was wrong in
//! `discovery_problem` (after reading at most `MAX_BODY_BYTES`), and an
//! endpoint only the document would have given is refused with that reason
//! when asked for; one the profile names itself still works. A good
//! document connects with no problem.

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
    serve_with(200, body).await
}

async fn serve_with(status: u16, body: Vec<u8>) -> String {
    let app = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let body = body.clone();
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            async move { (status, [("content-type", "application/json")], body) }
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

/// A broken document: connected, the problem named, the token endpoint
/// refused with it.
fn assert_broken(target: &Target, wanted: &str) -> String {
    let problem = target.discovery_problem.clone().expect("the problem is recorded");
    assert!(problem.contains(wanted) && problem.contains("oauth-authorization-server"), "{problem}");
    assert!(target.metadata.is_none());
    assert!(target.metadata_url.as_deref().is_some_and(|u| u.ends_with("/.well-known/oauth-authorization-server")));
    let err = target.token_endpoint().unwrap_err();
    assert!(matches!(err, TargetError::BrokenDiscovery { what: "token", .. }), "{err:?}");
    assert!(err.to_string().contains(wanted), "{err}");
    problem
}
#[tokio::test]
async fn an_oversized_discovery_document_is_refused_without_reading_it_all() {
    // 16 MiB of a JSON string: far past the bound.
    let mut body = b"{\"issuer\": \"".to_vec();
    body.resize(16 * 1024 * 1024, b'a');
    body.extend_from_slice(b"\"}");
    let target = connect(body).await.expect("a broken document is a finding, not a harness error");
    assert_broken(&target, "longer than");
}

#[tokio::test]
async fn a_discovery_document_that_is_not_a_json_object_is_named() {
    let target = connect(b"<html>maintenance</html>".to_vec()).await.unwrap();
    assert_broken(&target, "not JSON");
    let target = connect(b"[1, 2]".to_vec()).await.unwrap();
    assert_broken(&target, "not a JSON object");
}

#[tokio::test]
async fn a_missing_discovery_document_is_named_and_explicit_endpoints_still_work() {
    std::env::set_var("FOURLEG_DISCOVERY_TEST_SECRET", "discovery-test-secret-value");
    let base = serve_with(404, b"{}".to_vec()).await;
    let profile = Profile::parse(&PROFILE.replace("{base}", &base), Path::new("discovery.toml")).unwrap();
    let target = Target::connect(profile, None).await.unwrap();
    assert_broken(&target, "answered 404");

    let explicit = PROFILE
        .replace("{base}", &base)
        .replace("discovery = \"oauth\"\n", &format!("discovery = \"oauth\"\ntoken = \"{base}/token\"\n"));
    let target = Target::connect(Profile::parse(&explicit, Path::new("discovery.toml")).unwrap(), None).await.unwrap();
    assert!(target.discovery_problem.as_deref().is_some_and(|p| p.contains("answered 404")));
    assert_eq!(target.token_endpoint().unwrap(), format!("{base}/token"));
}

#[tokio::test]
async fn a_good_discovery_document_connects() {
    let doc = serde_json::json!({"issuer": "x", "token_endpoint": "http://127.0.0.1:9/token"});
    let target = connect(serde_json::to_vec(&doc).unwrap()).await.unwrap();
    assert!(target.discovery_problem.is_none());
    assert_eq!(target.token_endpoint().unwrap(), "http://127.0.0.1:9/token");
}

#[tokio::test]
async fn a_document_without_a_token_endpoint_is_a_finding_too() {
    let doc = serde_json::json!({"issuer": "x"});
    let target = connect(serde_json::to_vec(&doc).unwrap()).await.unwrap();
    assert!(target.metadata.is_some(), "the document itself is kept for the metadata checks");
    let problem = target.discovery_problem.clone().unwrap();
    assert!(problem.contains("lists no token_endpoint"), "{problem}");
    let err = target.token_endpoint().unwrap_err().to_string();
    assert!(err.contains("lists no token_endpoint"), "{err}");
}
