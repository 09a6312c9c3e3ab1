//! Keycloak's JWKS, cached: fetched on first use and again after its TTL, and
//! refetched when a token names an unknown `kid` (Keycloak rotated), at most
//! once per `jwks_min_refetch_s`, so forged `kid`s cannot turn the broker
//! into a load generator against Keycloak. Past the TTL, an unreachable
//! Keycloak means no upstream token verifies: the broker fails closed.

use std::time::{Duration, Instant};

use fourleg_core::jose::{Jwks, Verified, VerifyError};
use tokio::sync::{Mutex, RwLock};

use crate::error::BrokerError;

#[derive(Debug, Default)]
struct Cached {
    jwks: Option<Jwks>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
}

/// The upstream key set.
#[derive(Debug)]
pub struct UpstreamKeys {
    http: reqwest::Client,
    url: String,
    ttl: Duration,
    min_refetch: Duration,
    cached: RwLock<Cached>,
    fetching: Mutex<()>,
}

/// Why an upstream token was not verified.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The token does not verify: the client's fault.
    #[error("{0}")]
    Invalid(#[from] VerifyError),
    /// No key set to verify with: the broker's problem (503).
    #[error(transparent)]
    Unavailable(BrokerError),
}

impl UpstreamKeys {
    #[must_use]
    pub fn new(http: reqwest::Client, url: String, ttl: Duration, min_refetch: Duration) -> Self {
        Self { http, url, ttl, min_refetch, cached: RwLock::new(Cached::default()), fetching: Mutex::new(()) }
    }

    async fn fetch(&self) -> Result<Jwks, BrokerError> {
        let err = |e: &dyn std::fmt::Display| BrokerError::Upstream(format!("{}: {e}", self.url));
        let resp = self.http.get(&self.url).send().await.map_err(|e| err(&e))?;
        if !resp.status().is_success() {
            return Err(err(&resp.status()));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| err(&e))?;
        Jwks::from_value(&v).map_err(|e| err(&e))
    }

    /// The key set, fetched when missing or stale (`force`: a `kid` was unknown).
    async fn current(&self, force: bool) -> Result<Jwks, BrokerError> {
        {
            let c = self.cached.read().await;
            let fresh = c.fetched.is_some_and(|t| t.elapsed() < self.ttl);
            let may_refetch = c.attempted.is_none_or(|t| t.elapsed() >= self.min_refetch);
            if let Some(j) = &c.jwks {
                if fresh && (!force || !may_refetch) {
                    return Ok(j.clone());
                }
            }
            if !may_refetch {
                if let (Some(j), true) = (&c.jwks, fresh) {
                    return Ok(j.clone());
                }
                return Err(BrokerError::Upstream(format!("{}: unreachable, no fresh key set", self.url)));
            }
        }
        let _one = self.fetching.lock().await;
        // Another request may have fetched while this one waited.
        {
            let c = self.cached.read().await;
            if let (Some(j), Some(t)) = (&c.jwks, c.attempted) {
                if t.elapsed() < self.min_refetch && c.fetched.is_some_and(|f| f.elapsed() < self.ttl) {
                    return Ok(j.clone());
                }
            }
        }
        let got = self.fetch().await;
        let mut c = self.cached.write().await;
        c.attempted = Some(Instant::now());
        match got {
            Ok(j) => {
                c.jwks = Some(j.clone());
                c.fetched = Some(Instant::now());
                Ok(j)
            }
            Err(e) => Err(e),
        }
    }

    /// Verifies an upstream token's signature (claims are the caller's).
    pub async fn verify(&self, token: &str) -> Result<Verified, UpstreamError> {
        let jwks = self.current(false).await.map_err(UpstreamError::Unavailable)?;
        match jwks.verify(token) {
            Err(VerifyError::UnknownKid(_)) => {
                let again = self.current(true).await.map_err(UpstreamError::Unavailable)?;
                Ok(again.verify(token)?)
            }
            other => Ok(other?),
        }
    }
}
