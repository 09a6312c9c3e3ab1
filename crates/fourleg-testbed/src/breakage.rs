//! The switches: each variant breaks exactly one rule of the conformant test
//! bed, chosen when the server starts. The kill table
//! (`tests/kill_table.rs`) proves that the scenarios checking that rule
//! fail against it, and that no other scenario does.

use std::fmt;

/// One broken rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Breakage {
    // --- RFC 8693 §2.1 request handling ---
    /// A missing `subject_token_type` is taken as an access token (RFC 8693 §2.1: REQUIRED).
    SubjectTokenTypeDefaulted,
    /// `actor_token` without `actor_token_type` is accepted (RFC 8693 §2.1).
    ActorTokenTypeOptional,
    /// `actor_token_type` without `actor_token` is accepted and ignored (RFC 8693 §2.1).
    StrayActorTokenTypeAccepted,
    /// A garbage actor token is ignored instead of refused: the exchange goes on as impersonation (RFC 8693 §2.1).
    InvalidActorTokenIgnored,
    /// An unsupported `subject_token_type` is not checked: any type is read as a JWT (RFC 8693 §3).
    SubjectTokenTypeNotChecked,
    /// An unsupported `requested_token_type` is silently replaced by an access token (RFC 8693 §3).
    RequestedTokenTypeReplaced,
    /// `resource` is not checked: relative URIs and fragments are accepted (RFC 8693 §2.1, RFC 8707 §2).
    ResourceNotValidated,
    // --- RFC 8693 §2.2 responses ---
    /// Token-exchange errors that should be `invalid_request` are `invalid_grant` (RFC 8693 §2.2.2).
    InvalidGrantInsteadOfInvalidRequest,
    /// An audience or resource the server will not issue for gets `invalid_request`, not `invalid_target` (RFC 8693 §2.2.2).
    InvalidRequestInsteadOfInvalidTarget,
    /// The exchange response has no `issued_token_type` (RFC 8693 §2.2.1).
    NoIssuedTokenType,
    /// The exchange response's `token_type` is `JWT` (RFC 8693 §2.2.1: Bearer or N_A).
    WrongTokenType,
    /// The exchange response has no `expires_in` (RFC 8693 §2.2.1, RECOMMENDED).
    NoExpiresIn,
    /// The response never reports `scope`, even when it differs from the request (RFC 8693 §2.2.1).
    ScopeNotReported,
    /// Token responses lack `Cache-Control: no-store` (RFC 6749 §5.1).
    NoCacheControl,
    /// Error responses are plain text with status 403 (RFC 6749 §5.2).
    ErrorsNotJson,
    /// The metadata does not list `jwks_uri` (RFC 8414 §2).
    MetadataWithoutJwksUri,
    /// `grant_types_supported` does not advertise token exchange (agent profile).
    GrantNotAdvertised,
    // --- client authentication ---
    /// A confidential client's secret is not checked at the token endpoint (RFC 6749 §3.2.1).
    ClientSecretNotChecked,
    /// A public client may exchange tokens (agent profile).
    PublicClientMayExchange,
    // --- claims (RFC 8693 §4) ---
    /// `act` is a string naming the actor, not an object (RFC 8693 §4.1).
    ActNotAnObject,
    /// `act` carries the actor token's `exp` and `aud` (RFC 8693 §4.1).
    ActWithNonIdentityClaims,
    /// The `scope` claim is a JSON array (RFC 8693 §4.2).
    ScopeClaimArray,
    // --- the chain (agent profile) ---
    /// Exchanged tokens carry the requesting client as `sub`, not the user.
    SubjectReplacedByClient,
    /// Each hop's `aud` keeps the previous hops' audiences.
    AudienceAccumulates,
    /// The second hop's `act` replaces the first one instead of nesting it.
    ActReplaced,
    /// The chain is nested the wrong way round: the current actor innermost.
    ActReversed,
    /// An exchange without actor token invents `act` naming the requester.
    ActInvented,
    /// An exchanged token's `exp` goes past its subject token's.
    ExpExtended,
    /// Chains deeper than three actors are refused.
    DepthLimitedToThree,
    /// A delegation that loops back to an actor already in the chain is accepted.
    CircularDelegationAccepted,
    // --- may_act (RFC 8693 §4.4, agent profile) ---
    /// `may_act` in the subject token is not enforced.
    MayActIgnored,
    /// `may_act` is enforced against the actor token only: without one, any requester passes.
    MayActOnlyWithActorToken,
    // --- intersection (agent profile) ---
    /// Granted permissions are the user's plus the requester's baseline (union), not their intersection.
    UnionNotIntersection,
    /// An exchanged token copies the subject token's scope instead of narrowing it.
    SubjectScopeCopied,
    /// Requests for permissions outside the intersection are granted at the second hop
    /// (the first hop is right).
    IntersectionFirstHopOnly,
    /// Every exchanged token has an empty scope (the intersection met by granting nothing).
    GrantsNothing,
    // --- revocation, introspection, sessions ---
    /// Revoking a token leaves the tokens exchanged from it active.
    RevocationNotCascading,
    /// Revoking a token revokes the tokens it was exchanged from too.
    RevocationCascadesUp,
    /// Revocations take effect 7 s late.
    RevocationSlow,
    /// Introspection says `active: true` for revoked tokens.
    IntrospectionIgnoresRevocation,
    /// A revoked subject token can still be exchanged.
    RevokedSubjectExchangeable,
    /// Logout ends the login token only, not the tokens derived from it.
    LogoutKeepsDerived,
    /// Disabling a client leaves its issued tokens active.
    DisabledClientTokensStayActive,
    /// A disabled client can still exchange.
    DisabledClientMayExchange,
    /// Introspection answers without client authentication (RFC 7662 §2.1).
    IntrospectionUnauthenticated,
    /// An inactive token's introspection also carries its claims (RFC 7662 §2.2).
    InactiveIntrospectionLeaksClaims,
    /// Revocation of an unknown token answers 400 (RFC 7009 §2.2).
    RevokeUnknownTokenError,
    /// Any authenticated client can revoke any token (RFC 7009 §2.1).
    RevokeByAnyClient,
    // --- attacks (agent profile, RFC 8725) ---
    /// A subject token with `alg: none` is accepted.
    AlgNoneAccepted,
    /// An HS256 token keyed with the server's public key is accepted.
    KeyConfusionAccepted,
    /// Tokens whose `iss` is another issuer are accepted without checking their signature.
    ForeignIssuerAccepted,
    /// An expired subject token is accepted (RFC 7519 §4.1.4).
    ExpiredAccepted,
    /// RS256 signatures are not verified: edited claims are accepted.
    SignatureNotVerified,
    /// The requester need not be in the subject token's `aud`.
    AudienceNotChecked,
    /// Subject and actor tokens are told apart by content: a client token as subject with a
    /// user token as actor is swapped back.
    SubjectActorSwapAccepted,
}

impl Breakage {
    /// Every switch, in declaration order.
    pub const ALL: [Breakage; 55] = [
        Breakage::SubjectTokenTypeDefaulted,
        Breakage::ActorTokenTypeOptional,
        Breakage::StrayActorTokenTypeAccepted,
        Breakage::InvalidActorTokenIgnored,
        Breakage::SubjectTokenTypeNotChecked,
        Breakage::RequestedTokenTypeReplaced,
        Breakage::ResourceNotValidated,
        Breakage::InvalidGrantInsteadOfInvalidRequest,
        Breakage::InvalidRequestInsteadOfInvalidTarget,
        Breakage::NoIssuedTokenType,
        Breakage::WrongTokenType,
        Breakage::NoExpiresIn,
        Breakage::ScopeNotReported,
        Breakage::NoCacheControl,
        Breakage::ErrorsNotJson,
        Breakage::MetadataWithoutJwksUri,
        Breakage::GrantNotAdvertised,
        Breakage::ClientSecretNotChecked,
        Breakage::PublicClientMayExchange,
        Breakage::ActNotAnObject,
        Breakage::ActWithNonIdentityClaims,
        Breakage::ScopeClaimArray,
        Breakage::SubjectReplacedByClient,
        Breakage::AudienceAccumulates,
        Breakage::ActReplaced,
        Breakage::ActReversed,
        Breakage::ActInvented,
        Breakage::ExpExtended,
        Breakage::DepthLimitedToThree,
        Breakage::CircularDelegationAccepted,
        Breakage::MayActIgnored,
        Breakage::MayActOnlyWithActorToken,
        Breakage::UnionNotIntersection,
        Breakage::SubjectScopeCopied,
        Breakage::IntersectionFirstHopOnly,
        Breakage::GrantsNothing,
        Breakage::RevocationNotCascading,
        Breakage::RevocationCascadesUp,
        Breakage::RevocationSlow,
        Breakage::IntrospectionIgnoresRevocation,
        Breakage::RevokedSubjectExchangeable,
        Breakage::LogoutKeepsDerived,
        Breakage::DisabledClientTokensStayActive,
        Breakage::DisabledClientMayExchange,
        Breakage::IntrospectionUnauthenticated,
        Breakage::InactiveIntrospectionLeaksClaims,
        Breakage::RevokeUnknownTokenError,
        Breakage::RevokeByAnyClient,
        Breakage::AlgNoneAccepted,
        Breakage::KeyConfusionAccepted,
        Breakage::ForeignIssuerAccepted,
        Breakage::ExpiredAccepted,
        Breakage::SignatureNotVerified,
        Breakage::AudienceNotChecked,
        Breakage::SubjectActorSwapAccepted,
    ];

    /// The kebab-case id used in the kill table (`may-act-ignored`).
    #[must_use]
    pub fn id(self) -> String {
        let name = format!("{self:?}");
        let mut out = String::new();
        for (i, c) in name.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl fmt::Display for Breakage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kebab_case_and_unique() {
        assert_eq!(Breakage::MayActIgnored.id(), "may-act-ignored");
        assert_eq!(Breakage::NoCacheControl.id(), "no-cache-control");
        let ids: std::collections::BTreeSet<String> = Breakage::ALL.iter().map(|b| b.id()).collect();
        assert_eq!(ids.len(), Breakage::ALL.len());
    }
}
