//! Postgres: lineage (`issued_tokens`), revocations, the audit log, signing
//! keys. A pool of connections (deadpool) and prepared statements cached per
//! connection (`prepare_cached`): no request pays for a connection or a parse.
//!
//! The two invariants live here, each as one SQL statement:
//! - an issued token's lineage row and its audit row are written together
//!   (one statement, so one transaction) before the token leaves the broker;
//! - a revocation marks the whole subtree below a token (a recursive CTE)
//!   and records the event, in one statement.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::config::Postgres;
use crate::error::BrokerError;

/// The lineage store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
}

/// A token of the lineage, as introspection and exchange need it.
#[derive(Debug, Clone)]
pub struct Lineage {
    pub client_id: String,
    pub audience: Vec<String>,
    pub root_subject: String,
    pub session_id: Option<String>,
    /// Not revoked, not expired, its client not disabled.
    pub active: bool,
    /// Actors above it (its `act` chain length).
    pub depth: usize,
}

/// A token about to be issued.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    pub jti: &'a str,
    pub parent_jti: Option<&'a str>,
    pub root_subject: &'a str,
    pub subject: &'a str,
    pub actors: Vec<String>,
    pub client_id: &'a str,
    pub audience: Vec<String>,
    pub scope: String,
    pub expires_at: i64,
    pub session_id: Option<&'a str>,
    pub kind: &'a str,
}

/// A decision for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Audit<'a> {
    pub client_id: &'a str,
    pub subject: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub audience: Option<Vec<String>>,
    pub requested_scope: Option<&'a str>,
    pub granted_scope: Option<&'a str>,
    pub outcome: &'a str,
    pub reason: &'a str,
    pub request_id: Option<&'a str>,
}

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub wrapped_key: String,
    pub public_jwk: Value,
    pub active: bool,
}

const ISSUE: &str = "WITH t AS (
    INSERT INTO issued_tokens (jti, parent_jti, root_subject, subject, actors, client_id, audience, scope,
                               expires_at, session_id, kind)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9), $10, $11)
    RETURNING jti)
  INSERT INTO audit_log (client_id, subject, actor, audience, requested_scope, granted_scope, outcome, reason, request_id)
  SELECT $6, $4, $12, $7, $13, $8, 'granted', $14, t.jti FROM t";

const AUDIT: &str = "INSERT INTO audit_log (client_id, subject, actor, audience, requested_scope, granted_scope,
                                           outcome, reason, request_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const LINEAGE: &str = "SELECT t.client_id, t.audience, t.root_subject, t.session_id,
        t.revoked_at IS NULL AND t.expires_at > now()
          AND NOT EXISTS (SELECT 1 FROM disabled_clients d WHERE d.client_id = t.client_id),
        cardinality(t.actors)
   FROM issued_tokens t WHERE t.jti = $1";

const UPSTREAM_REVOKED: &str = "SELECT EXISTS (SELECT 1 FROM upstream_revocations
     WHERE (kind = 'jti' AND value = $1) OR (kind = 'session' AND value = $2))";

const DISABLED: &str = "SELECT EXISTS (SELECT 1 FROM disabled_clients WHERE client_id = $1)";

/// The subtree below `$1` (itself included) revoked, and the event recorded.
const REVOKE_SUBTREE: &str = "WITH RECURSIVE sub(jti) AS (
      SELECT jti FROM issued_tokens WHERE jti = $1
      UNION
      SELECT t.jti FROM issued_tokens t JOIN sub ON t.parent_jti = sub.jti),
    upd AS (UPDATE issued_tokens SET revoked_at = now()
             WHERE jti IN (SELECT jti FROM sub) AND revoked_at IS NULL RETURNING jti)
  INSERT INTO revocations (jti, reason, requested_by, cascaded)
  SELECT $1, $2, $3, count(*) FROM upd RETURNING cascaded";

/// An upstream token or session refused from now on, and every token
/// derived from it revoked (they share its root or its session).
const REVOKE_UPSTREAM: &str = "WITH ins AS (
      INSERT INTO upstream_revocations (kind, value) VALUES ($1, $2) ON CONFLICT DO NOTHING),
    upd AS (UPDATE issued_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL
               AND (($1 = 'jti' AND root_subject = $2) OR ($1 = 'session' AND session_id = $2))
             RETURNING jti)
  INSERT INTO revocations (jti, reason, requested_by, cascaded)
  SELECT $1 || ':' || $2, $3, $4, count(*) FROM upd RETURNING cascaded";

/// A client disabled, and the subtree of every token it holds revoked.
const DISABLE_CLIENT: &str = "WITH RECURSIVE ins AS (
      INSERT INTO disabled_clients (client_id) VALUES ($1) ON CONFLICT DO NOTHING),
    sub(jti) AS (
      SELECT jti FROM issued_tokens WHERE client_id = $1
      UNION
      SELECT t.jti FROM issued_tokens t JOIN sub ON t.parent_jti = sub.jti),
    upd AS (UPDATE issued_tokens SET revoked_at = now()
             WHERE jti IN (SELECT jti FROM sub) AND revoked_at IS NULL RETURNING jti)
  INSERT INTO revocations (jti, reason, requested_by, cascaded)
  SELECT 'client:' || $1, 'client disabled', $2, count(*) FROM upd RETURNING cascaded";

impl Store {
    /// A pool to the configured database (connections are opened lazily).
    pub fn new(c: &Postgres) -> Result<Self, BrokerError> {
        let password = std::env::var(&c.password_env).map_err(|_| {
            BrokerError::Config(format!("the postgres password is read from ${}, which is not set", c.password_env))
        })?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&c.host)
            .port(c.port)
            .dbname(&c.dbname)
            .user(&c.user)
            .password(password)
            .application_name("fourleg-broker")
            .connect_timeout(Duration::from_secs(3));
        let mgr =
            Manager::from_config(pg, tokio_postgres::NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(mgr)
            .max_size(c.pool_size)
            .wait_timeout(Some(Duration::from_secs(3)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(3)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| BrokerError::Postgres(e.to_string()))?;
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, BrokerError> {
        Ok(self.pool.get().await?)
    }

    async fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<tokio_postgres::Row, BrokerError> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await?;
        Ok(c.query_one(&st, params).await?)
    }

    /// `SELECT 1`.
    pub async fn healthy(&self) -> bool {
        self.query_one("SELECT 1", &[]).await.is_ok()
    }

    /// The lineage of a token the broker issued.
    pub async fn lineage(&self, jti: &str) -> Result<Option<Lineage>, BrokerError> {
        let c = self.client().await?;
        let st = c.prepare_cached(LINEAGE).await?;
        let row = c.query_opt(&st, &[&jti]).await?;
        Ok(row.map(|r| Lineage {
            client_id: r.get(0),
            audience: r.get(1),
            root_subject: r.get(2),
            session_id: r.get(3),
            active: r.get(4),
            depth: usize::try_from(r.get::<_, i32>(5)).unwrap_or(0),
        }))
    }

    /// Whether an upstream token (by `jti`) or its session was revoked here.
    pub async fn upstream_revoked(&self, jti: &str, sid: &str) -> Result<bool, BrokerError> {
        Ok(self.query_one(UPSTREAM_REVOKED, &[&jti, &sid]).await?.get(0))
    }

    pub async fn client_disabled(&self, client_id: &str) -> Result<bool, BrokerError> {
        Ok(self.query_one(DISABLED, &[&client_id]).await?.get(0))
    }

    /// Writes the lineage row and its audit row in one statement.
    pub async fn issue(
        &self,
        t: &NewToken<'_>,
        actor: Option<&str>,
        requested: Option<&str>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let c = self.client().await?;
        let st = c.prepare_cached(ISSUE).await?;
        #[expect(clippy::cast_precision_loss, reason = "seconds since the epoch, far below 2^52")]
        let exp = t.expires_at as f64;
        let n = c
            .execute(
                &st,
                &[
                    &t.jti,
                    &t.parent_jti,
                    &t.root_subject,
                    &t.subject,
                    &t.actors,
                    &t.client_id,
                    &t.audience,
                    &t.scope,
                    &exp,
                    &t.session_id,
                    &t.kind,
                    &actor,
                    &requested,
                    &reason,
                ],
            )
            .await?;
        if n == 1 {
            Ok(())
        } else {
            Err(BrokerError::Postgres(format!("issuing {} wrote {n} audit rows", t.jti)))
        }
    }

    /// Records a decision that issued nothing.
    pub async fn audit(&self, a: &Audit<'_>) -> Result<(), BrokerError> {
        let c = self.client().await?;
        let st = c.prepare_cached(AUDIT).await?;
        c.execute(
            &st,
            &[
                &a.client_id,
                &a.subject,
                &a.actor,
                &a.audience,
                &a.requested_scope,
                &a.granted_scope,
                &a.outcome,
                &a.reason,
                &a.request_id,
            ],
        )
        .await?;
        Ok(())
    }

    /// Revokes the token and its whole subtree; returns how many rows changed.
    pub async fn revoke_subtree(&self, jti: &str, reason: &str, by: &str) -> Result<i32, BrokerError> {
        Ok(self.query_one(REVOKE_SUBTREE, &[&jti, &reason, &by]).await?.get::<_, i32>(0))
    }

    /// Refuses an upstream token (`kind` = `jti`) or session (`session`) and
    /// revokes everything derived from it.
    pub async fn revoke_upstream(&self, kind: &str, value: &str, reason: &str, by: &str) -> Result<i32, BrokerError> {
        Ok(self.query_one(REVOKE_UPSTREAM, &[&kind, &value, &reason, &by]).await?.get::<_, i32>(0))
    }

    /// Disables a client and revokes the subtrees of what it holds.
    pub async fn disable_client(&self, client_id: &str, by: &str) -> Result<i32, BrokerError> {
        Ok(self.query_one(DISABLE_CLIENT, &[&client_id, &by]).await?.get::<_, i32>(0))
    }

    /// Enables a client again (its revoked tokens stay revoked).
    pub async fn enable_client(&self, client_id: &str) -> Result<(), BrokerError> {
        let c = self.client().await?;
        c.execute("DELETE FROM disabled_clients WHERE client_id = $1", &[&client_id]).await?;
        Ok(())
    }

    /// Retires the active signing key (key rotation): the next
    /// [`Store::signing_keys`] creates a new one; the retired key stays
    /// published for a day, longer than any token it signed lives.
    pub async fn retire_active_keys(&self) -> Result<u64, BrokerError> {
        let c = self.client().await?;
        Ok(c.execute("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL", &[]).await?)
    }

    /// The signing keys, under an advisory lock so that replicas starting
    /// together create one key, not several: `create` makes the wrapped key
    /// when none is active.
    pub async fn signing_keys<F, Fut>(&self, create: F) -> Result<Vec<StoredKey>, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(String, String, Value), BrokerError>>,
    {
        let mut c = self.client().await?;
        let tx = c.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock(8693)", &[]).await?;
        let read = |rows: Vec<tokio_postgres::Row>| -> Vec<StoredKey> {
            rows.into_iter()
                .map(|r| StoredKey {
                    kid: r.get(0),
                    wrapped_key: r.get(1),
                    public_jwk: r.get(2),
                    active: r.get::<_, Option<std::time::SystemTime>>(3).is_none(),
                })
                .collect()
        };
        let sql = "SELECT kid, wrapped_key, public_jwk, retired_at FROM signing_keys
                    WHERE retired_at IS NULL OR retired_at > now() - interval '1 day' ORDER BY created_at DESC";
        let mut keys = read(tx.query(sql, &[]).await?);
        if !keys.iter().any(|k| k.active) {
            let (kid, wrapped, jwk) = create().await?;
            tx.execute(
                "INSERT INTO signing_keys (kid, alg, wrapped_key, public_jwk) VALUES ($1, 'ES256', $2, $3)",
                &[&kid, &wrapped, &jwk],
            )
            .await?;
            keys = read(tx.query(sql, &[]).await?);
        }
        tx.commit().await?;
        Ok(keys)
    }
}
