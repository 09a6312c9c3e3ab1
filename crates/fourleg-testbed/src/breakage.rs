//! The switches: each variant breaks exactly one rule of the conformant test
//! bed, chosen when the server starts. The kill table
//! (`tests/kill_table.rs`) proves that the scenarios checking that rule
//! fail against it, and that no other scenario does.
//!
//! A switch of the exchange decision never edits `fourleg_policy`: it alters
//! what the policy is given (`exchange::perturb_inputs`) or what it returns
//! (after `decide` in `exchange.rs`).

use std::fmt;

/// One broken rule; [`Breakage::what`] says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Breakage {
    // --- RFC 8693 §2.1 request handling ---
    SubjectTokenTypeDefaulted,
    ActorTokenTypeOptional,
    StrayActorTokenTypeAccepted,
    InvalidActorTokenIgnored,
    SubjectTokenTypeNotChecked,
    RequestedTokenTypeReplaced,
    ResourceNotValidated,
    UnknownResourceIgnored,
    ResourceSilentlyIgnored,
    // --- RFC 8693 §2.2 responses ---
    InvalidGrantInsteadOfInvalidRequest,
    InvalidRequestInsteadOfInvalidTarget,
    NoIssuedTokenType,
    NoTokenType,
    NoExpiresIn,
    ScopeNotReported,
    NoCacheControl,
    ErrorsNotJson,
    NoBasicChallenge,
    BasicChallengeWrongScheme,
    BasicRefusedAsBadRequest,
    MetadataWithoutJwksUri,
    GrantNotAdvertised,
    // --- client authentication ---
    ClientSecretNotChecked,
    PublicClientMayExchange,
    // --- claims (RFC 8693 §4) ---
    ActNotAnObject,
    ActWithNonIdentityClaims,
    ScopeClaimArray,
    // --- the chain (agent profile) ---
    SubjectReplacedByClient,
    AudienceAccumulates,
    AudienceOnlyServerSide,
    ActReplaced,
    ActReversed,
    ActInvented,
    ExpExtended,
    ChainLimitedToThreeHops,
    ActHistoryTruncated,
    ActDroppedWithoutActor,
    ActLatestOnlyWithoutActor,
    CircularDelegationAccepted,
    // --- may_act (RFC 8693 §4.4, agent profile) ---
    MayActIgnored,
    MayActOnlyWithActorToken,
    MayActSkippedForOwnActorToken,
    MayActSubjectImpersonated,
    MayActCopied,
    // --- intersection (agent profile) ---
    UnionNotIntersection,
    SubjectScopeCopied,
    IntersectionFirstHopOnly,
    BaselineFirstHopOnly,
    GrantsNothing,
    // --- revocation, introspection, sessions ---
    RevocationNotCascading,
    RevocationCascadesUp,
    RevocationSlow,
    IntrospectionIgnoresRevocation,
    RevokedSubjectExchangeable,
    LogoutKeepsDerived,
    DisabledClientTokensStayActive,
    DisabledClientMayExchange,
    EnableClientFails,
    NoRefreshToken,
    IntrospectionUnauthenticated,
    InactiveIntrospectionLeaksClaims,
    RevokeUnknownTokenError,
    RevokeByAnyClient,
    RevokeAnswersNoContent,
    PublicClientRevocationRefused,
    AccessTokenRevocationUnsupported,
    PublicClientTokensNotIntrospectable,
    // --- attacks (agent profile, RFC 8725) ---
    AlgNoneAccepted,
    KeyConfusionAccepted,
    ForeignIssuerAccepted,
    SecondIssuerTrusted,
    IssuerMatchedByPrefix,
    ExpiredAccepted,
    UndecodableSubjectAccepted,
    SignatureNotVerified,
    AudienceNotChecked,
    SubjectActorSwapAccepted,
    TargetsNotRestricted,
    TargetsRestrictedFirstHopOnly,
    RefreshTokenByExchange,
    RefreshTokenWithEveryExchange,
    DepthNotLimited,
    DepthLimitOffByOne,
    DepthLimitBelowDeclared,
    AudienceSkippedWhenAbsent,
    DisabledClientDelegatedTokensStayActive,
    ExchangedRefreshSurvivesRevocation,
    MetadataIssuerTrailingSlash,
    ExpExtendedSlightly,
    JwksLeaksPrivateKey,
    JwksPublishesSymmetricKey,
    MetadataDocumentMissing,
    MetadataDocumentHtml,
    ResourceChallengeBare,
    ResourceRefusesWithoutChallenge,
    ResourceAcceptsAnyAudience,
    ResourceRefusesTokens403,
    ResourceMetadataTrailingSlash,
    ResourceMetadataWithoutAuthorizationServers,
    ResourceMetadataAuthorizationServerSlash,
    AuthorizationServerMetadataOpenidOnly,
    ResourceAcceptsNoAudience,
}

impl Breakage {
    /// The policy crate's input fault this variant is, if it is one.
    #[must_use]
    pub fn input_fault(self) -> Option<fourleg_policy::faults::InputFault> {
        use fourleg_policy::faults::InputFault as F;
        Some(match self {
            Breakage::AudienceNotChecked => F::AudienceNotChecked,
            Breakage::MayActIgnored => F::MayActIgnored,
            Breakage::MayActOnlyWithActorToken => F::MayActOnlyWithActorToken,
            Breakage::MayActSkippedForOwnActorToken => F::MayActSkippedForOwnActorToken,
            Breakage::CircularDelegationAccepted => F::CircularDelegationAccepted,
            Breakage::ResourceNotValidated => F::ResourceNotValidated,
            Breakage::UnknownResourceIgnored => F::UnknownResourceIgnored,
            Breakage::UnionNotIntersection => F::UnionNotIntersection,
            Breakage::IntersectionFirstHopOnly => F::IntersectionFirstHopOnly,
            Breakage::BaselineFirstHopOnly => F::BaselineFirstHopOnly,
            Breakage::ActDroppedWithoutActor => F::ActDroppedWithoutActor,
            Breakage::ActLatestOnlyWithoutActor => F::ActLatestOnlyWithoutActor,
            Breakage::TargetsNotRestricted => F::TargetsNotRestricted,
            Breakage::TargetsRestrictedFirstHopOnly => F::TargetsRestrictedFirstHopOnly,
            Breakage::DepthNotLimited => F::DepthNotLimited,
            Breakage::DepthLimitOffByOne => F::DepthLimitOffByOne,
            Breakage::DepthLimitBelowDeclared => F::DepthLimitBelowDeclared,
            Breakage::AudienceSkippedWhenAbsent => F::AudienceSkippedWhenAbsent,
            _ => return None,
        })
    }

    /// Every switch, in declaration order.
    pub const ALL: [Breakage; 102] = [
        Breakage::SubjectTokenTypeDefaulted,
        Breakage::ActorTokenTypeOptional,
        Breakage::StrayActorTokenTypeAccepted,
        Breakage::InvalidActorTokenIgnored,
        Breakage::SubjectTokenTypeNotChecked,
        Breakage::RequestedTokenTypeReplaced,
        Breakage::ResourceNotValidated,
        Breakage::UnknownResourceIgnored,
        Breakage::ResourceSilentlyIgnored,
        Breakage::InvalidGrantInsteadOfInvalidRequest,
        Breakage::InvalidRequestInsteadOfInvalidTarget,
        Breakage::NoIssuedTokenType,
        Breakage::NoTokenType,
        Breakage::NoExpiresIn,
        Breakage::ScopeNotReported,
        Breakage::NoCacheControl,
        Breakage::ErrorsNotJson,
        Breakage::NoBasicChallenge,
        Breakage::BasicChallengeWrongScheme,
        Breakage::BasicRefusedAsBadRequest,
        Breakage::MetadataWithoutJwksUri,
        Breakage::GrantNotAdvertised,
        Breakage::ClientSecretNotChecked,
        Breakage::PublicClientMayExchange,
        Breakage::ActNotAnObject,
        Breakage::ActWithNonIdentityClaims,
        Breakage::ScopeClaimArray,
        Breakage::SubjectReplacedByClient,
        Breakage::AudienceAccumulates,
        Breakage::AudienceOnlyServerSide,
        Breakage::ActReplaced,
        Breakage::ActReversed,
        Breakage::ActInvented,
        Breakage::ExpExtended,
        Breakage::ChainLimitedToThreeHops,
        Breakage::ActHistoryTruncated,
        Breakage::ActDroppedWithoutActor,
        Breakage::ActLatestOnlyWithoutActor,
        Breakage::CircularDelegationAccepted,
        Breakage::MayActIgnored,
        Breakage::MayActOnlyWithActorToken,
        Breakage::MayActSkippedForOwnActorToken,
        Breakage::MayActSubjectImpersonated,
        Breakage::MayActCopied,
        Breakage::UnionNotIntersection,
        Breakage::SubjectScopeCopied,
        Breakage::IntersectionFirstHopOnly,
        Breakage::BaselineFirstHopOnly,
        Breakage::GrantsNothing,
        Breakage::RevocationNotCascading,
        Breakage::RevocationCascadesUp,
        Breakage::RevocationSlow,
        Breakage::IntrospectionIgnoresRevocation,
        Breakage::RevokedSubjectExchangeable,
        Breakage::LogoutKeepsDerived,
        Breakage::DisabledClientTokensStayActive,
        Breakage::DisabledClientMayExchange,
        Breakage::EnableClientFails,
        Breakage::NoRefreshToken,
        Breakage::IntrospectionUnauthenticated,
        Breakage::InactiveIntrospectionLeaksClaims,
        Breakage::RevokeUnknownTokenError,
        Breakage::RevokeByAnyClient,
        Breakage::RevokeAnswersNoContent,
        Breakage::PublicClientRevocationRefused,
        Breakage::AccessTokenRevocationUnsupported,
        Breakage::PublicClientTokensNotIntrospectable,
        Breakage::AlgNoneAccepted,
        Breakage::KeyConfusionAccepted,
        Breakage::ForeignIssuerAccepted,
        Breakage::SecondIssuerTrusted,
        Breakage::IssuerMatchedByPrefix,
        Breakage::ExpiredAccepted,
        Breakage::UndecodableSubjectAccepted,
        Breakage::SignatureNotVerified,
        Breakage::AudienceNotChecked,
        Breakage::SubjectActorSwapAccepted,
        Breakage::TargetsNotRestricted,
        Breakage::TargetsRestrictedFirstHopOnly,
        Breakage::RefreshTokenByExchange,
        Breakage::RefreshTokenWithEveryExchange,
        Breakage::DepthNotLimited,
        Breakage::DepthLimitOffByOne,
        Breakage::DepthLimitBelowDeclared,
        Breakage::AudienceSkippedWhenAbsent,
        Breakage::DisabledClientDelegatedTokensStayActive,
        Breakage::ExchangedRefreshSurvivesRevocation,
        Breakage::MetadataIssuerTrailingSlash,
        Breakage::ExpExtendedSlightly,
        Breakage::JwksLeaksPrivateKey,
        Breakage::JwksPublishesSymmetricKey,
        Breakage::MetadataDocumentMissing,
        Breakage::MetadataDocumentHtml,
        Breakage::ResourceChallengeBare,
        Breakage::ResourceRefusesWithoutChallenge,
        Breakage::ResourceAcceptsAnyAudience,
        Breakage::ResourceRefusesTokens403,
        Breakage::ResourceMetadataTrailingSlash,
        Breakage::ResourceMetadataWithoutAuthorizationServers,
        Breakage::ResourceMetadataAuthorizationServerSlash,
        Breakage::AuthorizationServerMetadataOpenidOnly,
        Breakage::ResourceAcceptsNoAudience,
    ];

    /// What the variant breaks, one sentence citing the rule's source.
    #[must_use]
    pub fn what(self) -> &'static str {
        match self {
            Breakage::SubjectTokenTypeDefaulted => "A missing `subject_token_type` is taken as an access token (RFC 8693 §2.1: REQUIRED).",
            Breakage::ActorTokenTypeOptional => "`actor_token` without `actor_token_type` is accepted (RFC 8693 §2.1).",
            Breakage::StrayActorTokenTypeAccepted => "`actor_token_type` without `actor_token` is accepted and ignored (RFC 8693 §2.1).",
            Breakage::InvalidActorTokenIgnored => "A garbage actor token is ignored instead of refused: the exchange goes on as impersonation (RFC 8693 §2.1).",
            Breakage::SubjectTokenTypeNotChecked => "An unsupported `subject_token_type` is not checked: any type is read as a JWT (RFC 8693 §3).",
            Breakage::RequestedTokenTypeReplaced => "An unsupported `requested_token_type` is silently replaced by an access token (RFC 8693 §3).",
            Breakage::ResourceNotValidated => "`resource` is not checked: relative URIs and fragments are accepted (RFC 8693 §2.1, RFC 8707 §2).",
            Breakage::UnknownResourceIgnored => "A `resource` naming no known service is ignored instead of refused (RFC 8707 §2).",
            Breakage::ResourceSilentlyIgnored => "The server declares no `resource` support (its profile says `resource = false`) and ignores the parameter instead of refusing it with invalid_target (RFC 8693 §2.2.2).",
            Breakage::InvalidGrantInsteadOfInvalidRequest => "Token-exchange errors that should be `invalid_request` are `invalid_grant` (RFC 8693 §2.2.2).",
            Breakage::InvalidRequestInsteadOfInvalidTarget => "An audience or resource the server will not issue for gets `invalid_request`, not `invalid_target` (RFC 8693 §2.2.2).",
            Breakage::NoIssuedTokenType => "The exchange response has no `issued_token_type` (RFC 8693 §2.2.1).",
            Breakage::NoTokenType => "The exchange response has no `token_type` (RFC 8693 §2.2.1: REQUIRED; any RFC 6749 §7.1 type would do).",
            Breakage::NoExpiresIn => "The exchange response has no `expires_in` (RFC 8693 §2.2.1, RECOMMENDED).",
            Breakage::ScopeNotReported => "The response never reports `scope`, even when it differs from the request (RFC 8693 §2.2.1).",
            Breakage::NoCacheControl => "Token responses lack `Cache-Control: no-store` (RFC 6749 §5.1).",
            Breakage::ErrorsNotJson => "Error responses are plain text with status 403 (RFC 6749 §5.2).",
            Breakage::NoBasicChallenge => "A failed HTTP Basic client authentication gets 401 invalid_client without `WWW-Authenticate` (RFC 6749 §5.2).",
            Breakage::BasicChallengeWrongScheme => "A failed HTTP Basic client authentication gets 401 with `WWW-Authenticate: Bearer`, not the scheme the client used (RFC 6749 §5.2).",
            Breakage::BasicRefusedAsBadRequest => "A failed HTTP Basic client authentication gets 400 invalid_client, not 401 (RFC 6749 §5.2).",
            Breakage::MetadataWithoutJwksUri => "The metadata does not list `jwks_uri` (RFC 8414 §2).",
            Breakage::GrantNotAdvertised => "`grant_types_supported` does not advertise token exchange (agent profile).",
            Breakage::ClientSecretNotChecked => "A confidential client's secret is not checked at the token endpoint (RFC 6749 §3.2.1).",
            Breakage::PublicClientMayExchange => "A public client may exchange tokens (agent profile).",
            Breakage::ActNotAnObject => "`act` is a string naming the actor, not an object (RFC 8693 §4.1).",
            Breakage::ActWithNonIdentityClaims => "`act` carries the actor token's `exp` and `aud` (RFC 8693 §4.1).",
            Breakage::ScopeClaimArray => "The `scope` claim is a JSON array (RFC 8693 §4.2).",
            Breakage::AudienceOnlyServerSide => "Exchanged tokens carry no `aud`: the server keeps the audience to itself, enforces it, and introspects a token active only for its audience (as idpyoidc 5.0.0 does; agent profile: AGENT-CHAIN-aud).",
            Breakage::SubjectReplacedByClient => "Exchanged tokens carry the requesting client as `sub`, not the user (agent profile: AGENT-CHAIN-sub).",
            Breakage::AudienceAccumulates => "Each hop's `aud` keeps the previous hops' audiences (agent profile: AGENT-CHAIN-aud).",
            Breakage::ActReplaced => "The second hop's `act` replaces the first one instead of nesting it (RFC 8693 §4.1, agent profile: AGENT-CHAIN-act).",
            Breakage::ActReversed => "The chain is nested the wrong way round: the current actor innermost (RFC 8693 §4.1, agent profile: AGENT-CHAIN-act).",
            Breakage::ActInvented => "An exchange without actor token invents `act` naming the requester (RFC 8693 §1.1, agent profile: AGENT-CHAIN-impersonation).",
            Breakage::ExpExtended => "An exchanged token's `exp` goes past its subject token's (agent profile: AGENT-CHAIN-monotonic).",
            Breakage::ChainLimitedToThreeHops => "Chains of more than three exchanges are refused (agent profile: five hops must work).",
            Breakage::ActHistoryTruncated => "`act` keeps the current and the previous actor only; older ones are dropped (agent profile: the whole history).",
            Breakage::ActDroppedWithoutActor => "A delegated token exchanged without an actor token comes back without `act`: the delegation is laundered into an impersonation (agent profile: AGENT-CHAIN-act-kept).",
            Breakage::ActLatestOnlyWithoutActor => "A delegated token exchanged without an actor token keeps only its latest actor in `act`; the prior ones are dropped (agent profile: AGENT-CHAIN-act-kept).",
            Breakage::CircularDelegationAccepted => "A delegation that loops back to an actor already in the chain is accepted (agent profile: AGENT-ATTACK-circular).",
            Breakage::MayActIgnored => "`may_act` in the subject token is not enforced (RFC 8693 §4.4, agent profile).",
            Breakage::MayActOnlyWithActorToken => "`may_act` is enforced against the actor token only: without one, any requester passes (RFC 8693 §4.4, agent profile).",
            Breakage::MayActSkippedForOwnActorToken => "`may_act` is checked only against a third party's actor token: a client in `aud` acting with its own token passes (RFC 8693 §4.4, agent profile).",
            Breakage::MayActSubjectImpersonated => "A subject token whose `may_act` names the requester, exchanged without actor token, yields a token without `act`: a clean impersonation (agent profile: AGENT-MAYACT-no-impersonation).",
            Breakage::MayActCopied => "The issued token carries the subject token's `may_act` over to the next hop (agent profile: AGENT-MAYACT-not-copied).",
            Breakage::UnionNotIntersection => "Granted permissions are the user's plus the requester's baseline (union), not their intersection (agent profile: AGENT-INTERSECT).",
            Breakage::SubjectScopeCopied => "An exchanged token copies the subject token's scope instead of narrowing it (agent profile: AGENT-INTERSECT).",
            Breakage::BaselineFirstHopOnly => "From the second hop on, the requesting client's own baseline is not applied; the user and the presented token still narrow the grant (agent profile: AGENT-INTERSECT-own-baseline).",
            Breakage::IntersectionFirstHopOnly => "Requests for permissions outside the intersection are granted at the second hop (the first hop is right) (agent profile: AGENT-INTERSECT-hops).",
            Breakage::GrantsNothing => "Every exchanged token has an empty scope (the intersection met by granting nothing) (agent profile: AGENT-INTERSECT-both).",
            Breakage::RevocationNotCascading => "Revoking a token leaves the tokens exchanged from it active (RFC 7009 §2.1, agent profile).",
            Breakage::RevocationCascadesUp => "Revoking a token revokes the tokens it was exchanged from too (agent profile: AGENT-REVOKE-midchain).",
            Breakage::RevocationSlow => "Revocations take effect 7.5 s late (between the suite's 5 s latency bound and its 10 s waits).",
            Breakage::IntrospectionIgnoresRevocation => "Introspection says `active: true` for revoked tokens (RFC 7662 §2.2).",
            Breakage::RevokedSubjectExchangeable => "A revoked subject token can still be exchanged (agent profile: AGENT-REVOKE-no-reexchange).",
            Breakage::LogoutKeepsDerived => "Logout ends the login token only, not the tokens derived from it (agent profile: AGENT-REVOKE-subject).",
            Breakage::DisabledClientTokensStayActive => "Disabling a client leaves its issued tokens active (agent profile: AGENT-REVOKE-client).",
            Breakage::DisabledClientDelegatedTokensStayActive => "Disabling a client revokes the tokens issued to it, except those it obtained with an actor token (delegation), and so what was derived from them (agent profile: AGENT-REVOKE-client).",
            Breakage::DisabledClientMayExchange => "A disabled client can still exchange (agent profile: AGENT-REVOKE-client).",
            Breakage::NoRefreshToken => "Logins get no refresh token (conformant: RFC 6749 §5.1 makes it OPTIONAL) while the profile declares refresh-tokens: the revocation or logout that needs one does not happen, so what it should have changed is untestable, never fail.",
            Breakage::EnableClientFails => "The admin API refuses to enable a client again (500): a scenario's cleanup hook fails and leaves the client disabled, which is reported as a finding of its own, never skipped silently.",
            Breakage::IntrospectionUnauthenticated => "Introspection answers without client authentication (RFC 7662 §2.1).",
            Breakage::InactiveIntrospectionLeaksClaims => "An inactive token's introspection also carries its claims (RFC 7662 §2.2).",
            Breakage::RevokeUnknownTokenError => "Revocation of an unknown token answers 400 (RFC 7009 §2.2).",
            Breakage::RevokeByAnyClient => "Any authenticated client can revoke any token (RFC 7009 §2.1).",
            Breakage::RevokeAnswersNoContent => "A successful revocation answers 204, not 200 (RFC 7009 §2.2).",
            Breakage::PublicClientRevocationRefused => "A public client is refused (401 invalid_client) at the revocation endpoint, even for its own tokens (RFC 7009 §2.1).",
            Breakage::AccessTokenRevocationUnsupported => "Access tokens cannot be revoked: 400 unsupported_token_type (conformant per RFC 7009 §2.2.1, a SHOULD not met per §2), while the profile declares access-token revocation: untestable, never fail.",
            Breakage::PublicClientTokensNotIntrospectable => "Tokens issued to a public client introspect active: false for every caller (conformant: RFC 7662 §2.2 lets a server refuse a caller not allowed to introspect a token): baselines on them are failed preconditions, so what depends on them is untestable, never fail.",
            Breakage::AlgNoneAccepted => "A subject token with `alg: none` is accepted (RFC 8725 §2.1).",
            Breakage::KeyConfusionAccepted => "An HS256 token keyed with the server's public key is accepted (RFC 8725 §2.1).",
            Breakage::ForeignIssuerAccepted => "Tokens whose `iss` is another issuer are accepted without checking their signature (agent profile: AGENT-ATTACK-foreign-issuer).",
            Breakage::SecondIssuerTrusted => "A second issuer (`{issuer}/foreign`) is kept in the trust store: its well-signed tokens are exchanged as the server's own (agent profile: AGENT-ATTACK-foreign-issuer).",
            Breakage::IssuerMatchedByPrefix => "An `iss` that merely starts with the server's issuer is trusted, its signature checked with keys from that issuer (agent profile: AGENT-ATTACK-foreign-issuer).",
            Breakage::ExpiredAccepted => "An expired subject token is accepted (RFC 7519 §4.1.4).",
            Breakage::UndecodableSubjectAccepted => "A subject token that is not a JWT is taken as an opaque token of an anonymous user (RFC 8693 §2.1: validate it).",
            Breakage::SignatureNotVerified => "RS256 signatures are not verified: edited claims are accepted (RFC 7515 §5.2).",
            Breakage::AudienceNotChecked => "The requester need not be in the subject token's `aud` (agent profile: AGENT-ATTACK-replay-aud).",
            Breakage::RefreshTokenByExchange => "An exchange asking `requested_token_type` refresh_token gets a refresh token (agent profile: AGENT-ATTACK-refresh-escalation).",
            Breakage::JwksLeaksPrivateKey => "The published JWK Set carries each signing key's private member `d` (agent profile: AGENT-JWKS-public-only).",
            Breakage::JwksPublishesSymmetricKey => "The published JWK Set also carries a symmetric `oct` key with its `k` (agent profile: AGENT-JWKS-public-only).",
            Breakage::MetadataDocumentMissing => "The well-known metadata URL answers 404; the profile names the token endpoint itself, so everything else can run (RFC 8414 §3: the document MUST be there).",
            Breakage::ResourceChallengeBare => "The protected resource answers a request without a token 401 with a bare `Bearer` challenge: no `resource_metadata` (MCP authorization, RFC 9728 §5.1).",
            Breakage::ResourceRefusesWithoutChallenge => "The protected resource refuses a request without a token with 403 and no `WWW-Authenticate` (RFC 6750 §3; MCP authorization: 401 with the metadata URL).",
            Breakage::ResourceAcceptsAnyAudience => "The protected resource checks signature, issuer and expiry but not `aud`: any token of its authorization server is accepted (MCP authorization, RFC 8707 §2).",
            Breakage::ResourceRefusesTokens403 => "The protected resource refuses an invalid token with 403 instead of 401 (MCP authorization: invalid tokens get 401).",
            Breakage::ResourceMetadataTrailingSlash => "The protected resource metadata's `resource` has a trailing slash the resource's URL lacks (RFC 9728 §3.3: identical).",
            Breakage::ResourceMetadataWithoutAuthorizationServers => "The protected resource metadata's `authorization_servers` is empty (MCP authorization: at least one).",
            Breakage::ResourceMetadataAuthorizationServerSlash => "The protected resource metadata lists its authorization server with a trailing slash the server's issuer lacks (RFC 8414 §3.3: the issuer a client finds must be identical).",
            Breakage::AuthorizationServerMetadataOpenidOnly => "The authorization server serves OpenID discovery only: no RFC 8414 document at /.well-known/oauth-authorization-server (MCP authorization: authorization servers MUST provide RFC 8414 metadata).",
            Breakage::ResourceAcceptsNoAudience => "The protected resource checks `aud` only when the token carries one: a token with no audience is accepted (MCP authorization, RFC 8707 §2).",
            Breakage::MetadataDocumentHtml => "The well-known metadata URL answers 200 with an HTML page, and the profile names no endpoint: discovery is all a client has (RFC 8414 §3, §3.2: 200 and a JSON object).",
            Breakage::ExpExtendedSlightly => "An exchanged token's `exp` goes 2 s past its subject token's, a rounding a server may call harmless; the profile declares no leeway (agent profile: AGENT-CHAIN-monotonic).",
            Breakage::MetadataIssuerTrailingSlash => "The metadata document's `issuer` has a trailing slash its issuer identifier lacks (RFC 8414 §3.3: identical).",
            Breakage::ExchangedRefreshSurvivesRevocation => "Refresh tokens by exchange are declared (`exchange-refresh-tokens`), but one keeps renewing its access token after the user's session is revoked (agent profile: AGENT-REVOKE-exchanged-refresh).",
            Breakage::RefreshTokenWithEveryExchange => "The explicit request for a refresh token is refused, but every exchange response carries a `refresh_token` (agent profile: AGENT-ATTACK-refresh-escalation).",
            Breakage::TargetsNotRestricted => "Any audience the server knows may be requested: a client's own next hops are not enforced (agent profile: AGENT-ATTACK-skip-hop).",
            Breakage::TargetsRestrictedFirstHopOnly => "A client's own next hops are enforced on the first hop only; from the second hop on, any known audience may be requested (agent profile: AGENT-ATTACK-skip-hop).",
            Breakage::DepthNotLimited => "Delegation is not bounded: a token nesting any number of actors is issued (agent profile: AGENT-CHAIN-limit).",
            Breakage::DepthLimitOffByOne => "The depth limit counts the subject's `act` before the new actor is added: one actor past the limit is issued, two are refused (agent profile: AGENT-CHAIN-limit).",
            Breakage::DepthLimitBelowDeclared => "The depth limit is one actor lower than the profile declares: the chain at the declared limit is refused (agent profile: AGENT-CHAIN-limit).",
            Breakage::AudienceSkippedWhenAbsent => "The requester must be in the subject token's `aud` only when the token has one: a token with no `aud` is exchangeable by any client (agent profile: AGENT-ATTACK-replay-aud).",
            Breakage::SubjectActorSwapAccepted => "Subject and actor tokens are told apart by content: a client token as subject with a user token as actor is swapped back (agent profile: AGENT-ATTACK-swap).",
        }
    }

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
