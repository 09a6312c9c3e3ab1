//! Keycloak: import the realm export `fixtures/keycloak/realm-fourleg.json`
//! through the admin REST API, with the lab's generated secrets in place of
//! its `{{secret:CLIENT}}` and `{{password:USER}}` placeholders; then the
//! second realm `fourleg-foreign`, an issuer no target may trust (the
//! untrusted-issuer attack's source of well-signed foreign tokens).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fourleg_core::oauth::GrantType;
use fourleg_core::Secret;
use serde_json::Value;

use crate::error::{LabError, Result};
use crate::health;
use crate::service::Service;
use crate::state::Credentials;

/// The lab's realm.
pub const REALM: &str = "fourleg";

/// The untrusted realm: its name extends the lab realm's, so an issuer
/// matched by prefix is caught too.
pub const FOREIGN_REALM: &str = "fourleg-foreign";

/// Path of the realm export.
#[must_use]
pub fn realm_file(fixtures: &Path) -> PathBuf {
    realm_file_of(fixtures, REALM)
}

fn realm_file_of(fixtures: &Path, realm: &str) -> PathBuf {
    fixtures.join("keycloak").join(format!("realm-{realm}.json"))
}

/// The placeholders of a realm export: `(client ids, usernames)`.
#[must_use]
pub fn placeholders(text: &str) -> (Vec<String>, Vec<String>) {
    let mut clients = BTreeSet::new();
    let mut users = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let inner = &after[..end];
        if let Some(c) = inner.strip_prefix("secret:") {
            clients.insert(c.to_owned());
        } else if let Some(u) = inner.strip_prefix("password:") {
            users.insert(u.to_owned());
        }
        rest = &after[end + 2..];
    }
    (clients.into_iter().collect(), users.into_iter().collect())
}

/// Reads the realm export and lists its placeholders.
pub fn read_realm(fixtures: &Path) -> Result<(String, Vec<String>, Vec<String>)> {
    read_realm_of(fixtures, REALM)
}

fn read_realm_of(fixtures: &Path, realm: &str) -> Result<(String, Vec<String>, Vec<String>)> {
    let path = realm_file_of(fixtures, realm);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LabError::Fixture { path: path.clone(), message: format!("cannot read the realm export: {e}") })?;
    serde_json::from_str::<Value>(&text)
        .map_err(|e| LabError::Fixture { path: path.clone(), message: format!("not JSON: {e}") })?;
    let (clients, users) = placeholders(&text);
    Ok((text, clients, users))
}

/// Replaces every placeholder; any placeholder left is an error naming it.
pub fn render_realm(text: &str, creds: &Credentials, path: &Path) -> Result<Value> {
    let mut out = text.to_owned();
    // Values are alphanumeric (see `Secret::generate`), so JSON-safe as is.
    for (client, secret) in &creds.clients {
        out = out.replace(&format!("{{{{secret:{client}}}}}"), secret.expose());
    }
    for (user, password) in &creds.users {
        out = out.replace(&format!("{{{{password:{user}}}}}"), password.expose());
    }
    if let Some(i) = out.find("{{") {
        let left: String = out[i..].chars().take(40).collect();
        return Err(LabError::Fixture {
            path: path.to_owned(),
            message: format!("unknown placeholder left after rendering: {left}"),
        });
    }
    serde_json::from_str(&out)
        .map_err(|e| LabError::Fixture { path: path.to_owned(), message: format!("not JSON after rendering: {e}") })
}

/// A token for the master realm's bootstrap admin.
pub async fn admin_token(base: &str, password: &Secret) -> Result<Secret> {
    let resp = health::http()
        .post(format!("{base}/realms/master/protocol/openid-connect/token"))
        .form(&[
            ("grant_type", GrantType::Password.as_str()),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", password.expose()),
        ])
        .send()
        .await
        .map_err(|e| LabError::http("keycloak admin login", e))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body["access_token"].as_str().map(Secret::new).ok_or_else(|| {
        LabError::provision(
            Service::Keycloak,
            format!(
                "admin login answered {status} {}; the bootstrap admin is created only on an empty database: \
                 `fourleg down --purge` starts over",
                body["error"].as_str().unwrap_or("")
            ),
        )
    })
}

/// Imports the lab realm and the untrusted realm, each unless it exists;
/// returns whether the lab realm was imported now. A lab provisioned before
/// the untrusted realm existed gains it at its next `up`.
pub async fn provision(base: &str, creds: &Credentials, fixtures: &Path) -> Result<bool> {
    let token = admin_token(base, &creds.keycloak_admin).await?;
    let imported = import(base, &token, creds, fixtures, REALM).await?;
    import(base, &token, creds, fixtures, FOREIGN_REALM).await?;
    Ok(imported)
}

async fn import(base: &str, token: &Secret, creds: &Credentials, fixtures: &Path, name: &str) -> Result<bool> {
    let (text, _, _) = read_realm_of(fixtures, name)?;
    let realm = render_realm(&text, creds, &realm_file_of(fixtures, name))?;
    let http = health::http();
    let exists = http
        .get(format!("{base}/admin/realms/{name}"))
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| LabError::http("keycloak: looking up the realm", e))?;
    if exists.status().is_success() {
        return Ok(false);
    }
    let resp = http
        .post(format!("{base}/admin/realms"))
        .bearer_auth(token.expose())
        .json(&realm)
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| LabError::http("keycloak: importing the realm", e))?;
    if !resp.status().is_success() {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        return Err(LabError::provision(
            Service::Keycloak,
            format!("importing realm {name} answered {status}: {}", body.chars().take(500).collect::<String>()),
        ));
    }
    Ok(true)
}

/// The realm's login clients, through which users log in for the broker too.
pub const LOGIN_CLIENTS: [&str; 3] = ["lab-web", "lab-web-short", "lab-web-noaud"];

/// Points the login clients' OpenID Connect Back-Channel Logout 1.0 at `url`
/// (the broker's `/backchannel-logout`), `sid` required (§2.2): when a user's
/// session ends, Keycloak posts a logout token there.
pub async fn set_backchannel_logout(base: &str, admin: &Secret, url: &str) -> Result<()> {
    let attributes = serde_json::json!({
        "backchannel.logout.url": url,
        "backchannel.logout.session.required": "true",
    });
    for client_id in LOGIN_CLIENTS {
        update_client(base, admin, client_id, serde_json::json!({"attributes": attributes})).await?;
    }
    Ok(())
}

/// Enables or disables a client of the lab's realm (the `disable_client` and
/// `enable_client` hooks of the bundled Keycloak targets).
pub async fn set_client_enabled(base: &str, admin: &Secret, client_id: &str, enabled: bool) -> Result<()> {
    update_client(base, admin, client_id, serde_json::json!({"enabled": enabled})).await
}

/// Updates the fields of `change` of a client (Keycloak merges: fields and
/// attributes not named keep their values).
async fn update_client(base: &str, admin: &Secret, client_id: &str, mut change: Value) -> Result<()> {
    change["clientId"] = Value::String(client_id.to_owned());
    let token = admin_token(base, admin).await?;
    let http = health::http();
    let found: Value = http
        .get(format!("{base}/admin/realms/{REALM}/clients"))
        .query(&[("clientId", client_id)])
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| LabError::http("keycloak: looking up the client", e))?
        .json()
        .await
        .map_err(|e| LabError::http("keycloak: reading the client", e))?;
    let id = found[0]["id"]
        .as_str()
        .ok_or_else(|| LabError::provision(Service::Keycloak, format!("no client `{client_id}` in realm {REALM}")))?;
    let resp = http
        .put(format!("{base}/admin/realms/{REALM}/clients/{id}"))
        .bearer_auth(token.expose())
        .json(&change)
        .send()
        .await
        .map_err(|e| LabError::http("keycloak: updating the client", e))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(LabError::provision(Service::Keycloak, format!("updating client `{client_id}` answered {}", resp.status())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn creds() -> Credentials {
        Credentials {
            keycloak_admin: Secret::new("a"),
            postgres_superuser: Secret::new("b"),
            postgres_keycloak: Secret::new("c"),
            postgres_broker: Secret::new("d"),
            clients: BTreeMap::from([("agent".to_owned(), Secret::new("S3cret"))]),
            users: BTreeMap::from([("alice".to_owned(), Secret::new("pw"))]),
        }
    }

    #[test]
    fn placeholders_are_found_and_deduplicated() {
        let (c, u) =
            placeholders(r#"{"a":"{{secret:agent}}","b":"{{secret:agent}}","c":"{{password:alice}}","d":"{{x}}"}"#);
        assert_eq!(c, ["agent"]);
        assert_eq!(u, ["alice"]);
    }

    #[test]
    fn rendering_fills_every_placeholder_or_names_the_one_left() {
        let v = render_realm(r#"{"s":"{{secret:agent}}","p":"{{password:alice}}"}"#, &creds(), Path::new("r.json"))
            .unwrap();
        assert_eq!(v["s"], "S3cret");
        assert_eq!(v["p"], "pw");
        let err = render_realm(r#"{"s":"{{secret:nobody}}"}"#, &creds(), Path::new("r.json")).unwrap_err().to_string();
        assert!(err.contains("{{secret:nobody}}"), "{err}");
    }

    #[test]
    fn the_untrusted_realm_extends_the_lab_realm_name_and_needs_only_lab_passwords() {
        assert!(FOREIGN_REALM.starts_with(REALM) && FOREIGN_REALM != REALM);
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let (_, foreign_clients, foreign_users) = read_realm_of(&fixtures, FOREIGN_REALM).unwrap();
        let (_, clients, users) = read_realm(&fixtures).unwrap();
        assert!(foreign_clients.iter().all(|c| clients.contains(c)), "{foreign_clients:?}");
        assert!(foreign_users.iter().all(|u| users.contains(u)), "{foreign_users:?}");
    }

    #[test]
    fn the_committed_realm_has_a_secret_per_confidential_client_and_no_literal_secret() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let (text, clients, users) = read_realm(&fixtures).unwrap();
        for c in ["agent", "mcp-server", "sub-agent", "rogue-agent"] {
            assert!(clients.iter().any(|x| x == c), "no {{{{secret:{c}}}}} in the realm");
        }
        for u in ["alice", "bob", "carol"] {
            assert!(users.iter().any(|x| x == u), "no {{{{password:{u}}}}} in the realm");
        }
        let realm: Value = serde_json::from_str(&text).unwrap();
        for client in realm["clients"].as_array().unwrap() {
            if let Some(secret) = client["secret"].as_str() {
                assert!(secret.starts_with("{{secret:"), "client {} has a literal secret", client["clientId"]);
            }
        }
    }
}
