//! The broker's configuration file (TOML), written by `fourleg up` into the
//! lab's state directory (`<state>/broker/broker.toml`), and the catalog it
//! names (`fixtures/broker/catalog.toml`).
//!
//! No secret is in either file: the Postgres password comes from an
//! environment variable, OpenBao's AppRole credential from its owner-only
//! file, client secrets from OpenBao KV at run time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::BrokerError;

/// `broker.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` to listen on.
    pub listen: String,
    /// Further `host:port`s to listen on: the lab's containers runtime adds
    /// its network's gateway, where Keycloak's container posts back-channel
    /// logout tokens.
    #[serde(default)]
    pub also_listen: Vec<String>,
    /// The broker's issuer identifier (RFC 8414 §2), its base URL.
    pub issuer: String,
    /// The catalog file (relative paths are relative to this file).
    pub catalog: PathBuf,
    /// Seconds between two reloads of the signing keys from Postgres, so a
    /// rotation (`fourleg lab broker-rotate-key`) reaches every replica; a
    /// token of its own with an unknown `kid` reloads at once.
    #[serde(default = "default_key_reload")]
    pub key_reload_s: u64,
    pub upstream: Upstream,
    pub postgres: Postgres,
    pub openbao: Openbao,
}

/// Keycloak, whose user tokens are the subject tokens of the first hop.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// Issuer of the lab realm (`iss` of its tokens).
    pub issuer: String,
    /// Its JWKS; default `<issuer>/protocol/openid-connect/certs` (Keycloak's).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Its RFC 7009 revocation endpoint, where a user's refresh token revoked
    /// at the broker is revoked too; default Keycloak's
    /// `<issuer>/protocol/openid-connect/revoke`.
    #[serde(default)]
    pub revocation_uri: Option<String>,
    /// Seconds a fetched JWKS is used before it is fetched again.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_ttl_s: u64,
    /// Fewest seconds between two fetches caused by an unknown `kid` (bounds
    /// what a stream of forged `kid`s can make the broker do).
    #[serde(default = "default_jwks_refetch")]
    pub jwks_min_refetch_s: u64,
}

fn default_key_reload() -> u64 {
    30
}

fn default_jwks_ttl() -> u64 {
    300
}
fn default_jwks_refetch() -> u64 {
    5
}

/// The lineage and audit store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// The environment variable holding the password.
    pub password_env: String,
    /// Pooled connections.
    #[serde(default = "default_pool")]
    pub pool_size: usize,
}

fn default_pool() -> usize {
    16
}

/// Client secrets (KV v2) and the key-wrapping key (Transit).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Openbao {
    pub url: String,
    /// `{"mount", "role_id", "secret_id"}`, owner-only, written by the lab.
    pub approle_file: PathBuf,
    pub kv_mount: String,
    pub transit_mount: String,
    /// The Transit key that wraps the signing keys.
    pub wrap_key: String,
    /// Seconds a client secret read from KV is trusted before it is read again.
    #[serde(default = "default_secret_ttl")]
    pub secret_ttl_s: u64,
}

fn default_secret_ttl() -> u64 {
    60
}

impl Config {
    /// Reads and checks the file; the catalog path is resolved against it.
    pub fn load(path: &Path) -> Result<Self, BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BrokerError::Config(format!("cannot read {}: {e}", path.display())))?;
        let mut c: Config =
            toml::from_str(&text).map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))?;
        if c.catalog.is_relative() {
            if let Some(dir) = path.parent() {
                c.catalog = dir.join(&c.catalog);
            }
        }
        c.issuer = c.issuer.trim_end_matches('/').to_owned();
        c.upstream.issuer = c.upstream.issuer.trim_end_matches('/').to_owned();
        Ok(c)
    }

    /// Keycloak's revocation endpoint.
    #[must_use]
    pub fn upstream_revocation(&self) -> String {
        self.upstream
            .revocation_uri
            .clone()
            .unwrap_or_else(|| format!("{}/protocol/openid-connect/revoke", self.upstream.issuer))
    }

    /// Keycloak's JWKS URL.
    #[must_use]
    pub fn upstream_jwks(&self) -> String {
        self.upstream
            .jwks_uri
            .clone()
            .unwrap_or_else(|| format!("{}/protocol/openid-connect/certs", self.upstream.issuer))
    }
}

/// What a client may do at the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A public client that logs users in at Keycloak; it never exchanges.
    Login,
    /// A confidential client: client credentials and token exchange.
    Exchanging,
    /// A confidential resource server: introspection only.
    Resource,
}

/// One client of the catalog.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    pub kind: Kind,
    /// The `sub` of its own tokens (its actor identity); Keycloak's
    /// service-account user id, so its Keycloak tokens identify it too.
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub baseline: BTreeSet<String>,
    #[serde(default)]
    pub targets: Vec<String>,
}

/// `catalog.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub permissions: Vec<String>,
    #[serde(default)]
    pub other_scopes: BTreeSet<String>,
    pub max_depth: usize,
    pub lifetime_s: i64,
    /// Audience → resource indicator (RFC 8707).
    pub audiences: BTreeMap<String, String>,
    /// Scope → the client its grant names in `may_act`.
    #[serde(default)]
    pub delegation_scopes: BTreeMap<String, String>,
    pub clients: BTreeMap<String, ClientSpec>,
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Self, BrokerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BrokerError::Config(format!("cannot read the catalog {}: {e}", path.display())))?;
        let c: Catalog = toml::from_str(&text).map_err(|e| BrokerError::Config(format!("{}: {e}", path.display())))?;
        for (id, spec) in &c.clients {
            for t in &spec.targets {
                if !c.audiences.contains_key(t) {
                    return Err(BrokerError::Config(format!("clients.{id}.targets names unknown audience {t}")));
                }
            }
            if spec.kind == Kind::Exchanging && spec.sub.is_none() {
                return Err(BrokerError::Config(format!("clients.{id}: an exchanging client needs its sub")));
            }
        }
        for (scope, client) in &c.delegation_scopes {
            if !c.clients.contains_key(client) {
                return Err(BrokerError::Config(format!("delegation_scopes.{scope} names unknown client {client}")));
            }
        }
        Ok(c)
    }

    /// The policy crate's view of it.
    #[must_use]
    pub fn policy(&self) -> fourleg_policy::Catalog {
        fourleg_policy::Catalog {
            audiences: self.audiences.keys().cloned().collect(),
            resources: self.audiences.iter().map(|(a, r)| (r.clone(), a.clone())).collect(),
            permissions: self.permissions.clone(),
            other_scopes: self.other_scopes.iter().chain(self.delegation_scopes.keys()).cloned().collect(),
        }
    }

    /// The client whose tokens carry `sub`.
    #[must_use]
    pub fn client_by_sub(&self, sub: &str) -> Option<(&str, &ClientSpec)> {
        self.clients.iter().find(|(_, c)| c.sub.as_deref() == Some(sub)).map(|(id, c)| (id.as_str(), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_catalog_loads_and_maps_resources_to_audiences() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/broker/catalog.toml");
        let c = Catalog::load(&path).unwrap();
        let p = c.policy();
        assert_eq!(p.resources["https://mcp-server.broker.fourleg.test/"], "mcp-server");
        assert!(p.other_scopes.contains("may-act-sub-agent"));
        assert_eq!(c.client_by_sub("f0000000-0000-4000-8000-000000000101").unwrap().0, "agent");
    }

    #[test]
    fn an_unknown_target_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "permissions=[]\nmax_depth=8\nlifetime_s=300\n[audiences]\n[clients.a]\nkind=\"exchanging\"\nsub=\"s\"\ntargets=[\"nowhere\"]\n",
        )
        .unwrap();
        let err = Catalog::load(&f).unwrap_err().to_string();
        assert!(err.contains("nowhere"), "{err}");
    }
}
