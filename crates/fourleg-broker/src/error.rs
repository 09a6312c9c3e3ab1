//! The broker's errors: what it cannot do (a dependency down, a bad
//! configuration), never what a client did wrong (those are OAuth errors,
//! [`crate::http::OAuthError`]).

/// Why the broker cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("configuration: {0}")]
    Config(String),
    /// Postgres failed or is unreachable: the broker issues nothing.
    #[error("postgres: {0}")]
    Postgres(String),
    /// OpenBao failed, is sealed or unreachable.
    #[error("openbao: {0}")]
    Openbao(String),
    /// Keycloak's JWKS could not be fetched and the cache has no usable key.
    #[error("upstream jwks: {0}")]
    Upstream(String),
    #[error("signing: {0}")]
    Signing(String),
}

impl From<tokio_postgres::Error> for BrokerError {
    fn from(e: tokio_postgres::Error) -> Self {
        BrokerError::Postgres(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for BrokerError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        BrokerError::Postgres(e.to_string())
    }
}
