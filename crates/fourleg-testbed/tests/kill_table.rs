//! The kill table: proof that every scenario can fail.
//!
//! Runs the whole suite (`suites/`) against the conformant test bed, where
//! every scenario must pass (or be not-applicable, or be listed in
//! [`CONFORMANT_EXCEPTIONS`] with a reason), and against every broken
//! variant, where exactly the (scenario, rule) pairs declared in
//! [`expected`] must fail: each variant is caught by the scenarios that
//! check the rule it breaks, with that rule's id, and by no scenario that
//! should not care. The conformant server and every fault of the exchange
//! policy's inputs run a second time with the policy's checks in reverse
//! order (the evaluation-order variants), against the same expectations. It
//! then renders `reports/kill-table.md` and fails when
//! the committed file differs, when a scenario has no variant that makes it
//! fail, or when a variant is caught by nothing (unless the pair is one of
//! the [`KNOWN_GAPS`], each a scenario defect with its reason).
//!
//! Regenerate the table: `FOURLEG_REGENERATE=1 cargo test -p fourleg-testbed --test kill_table`.
//! Debug one variant: `FOURLEG_KILL_ONLY=may-act-ignored,conformant cargo test -p fourleg-testbed --test kill_table -- --nocapture`
//! (runs only those, prints their failures, checks nothing else).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use fourleg_policy::Check;
use fourleg_scenario::runner::{self, Quiet};
use fourleg_scenario::{Engine, Registry, Run, Scenario, Status};
use fourleg_target::{Profile, Target};
use fourleg_testbed::{Breakage, TestBed};

/// Scenarios the conformant test bed does not pass, each with the reason.
/// An entry here is a defect to fix (in the scenario or the fixture), not a
/// state to keep.
const CONFORMANT_EXCEPTIONS: &[(&str, &str)] = &[];

/// Scenarios that no variant can make fail, and variants that no scenario
/// catches, each with the reason. Every entry is a defect to fix in the
/// scenario (or the fixture contract), not a state to keep: the test fails
/// when an entry goes stale.
const KNOWN_GAPS: &[(&str, Breakage, &str)] = &[];

/// What a variant must make fail, exactly: the (scenario, rule) pairs where
/// at least one check of the rule fails (or becomes untestable, or warns).
#[derive(Debug, Clone, Copy)]
struct Expect {
    /// Rules failing in every scenario that declares them (so a new scenario
    /// checking one of these rules is expected to fail too).
    rules: &'static [&'static str],
    /// Further (scenario id, rule id) pairs.
    pairs: &'static [(&'static str, &'static str)],
    /// Where the variant only fails preconditions: `Some(rules)` requires
    /// every failed check to be `untestable` except those of these rules. A
    /// precondition that did not hold makes what depends on it untestable,
    /// never `fail`.
    untestable_except: Option<&'static [&'static str]>,
}

const fn rules(rules: &'static [&'static str]) -> Expect {
    Expect { rules, pairs: &[], untestable_except: None }
}

const fn pairs(pairs: &'static [(&'static str, &'static str)]) -> Expect {
    Expect { rules: &[], pairs, untestable_except: None }
}

/// What each variant must make fail. Side effects are listed too: a server
/// without `jwks_uri` also breaks every check that needs its keys.
#[expect(clippy::too_many_lines, reason = "one table, read top to bottom")]
fn expected(b: Breakage) -> Expect {
    use Breakage as B;
    match b {
        B::SubjectTokenTypeDefaulted => pairs(&[
            ("missing-subject-token-type", "RFC6749-5.2-shape"),
            ("missing-subject-token-type", "RFC8693-2.1-subject-required"),
        ]),
        B::ActorTokenTypeOptional => pairs(&[
            ("actor-token-without-type", "RFC8693-2.1-actor-type-pairing"),
            ("actor-token-without-type", "RFC8693-2.2.2-invalid-request"),
        ]),
        B::StrayActorTokenTypeAccepted => pairs(&[
            ("actor-token-type-without-token", "RFC8693-2.1-actor-type-pairing"),
            ("actor-token-type-without-token", "RFC8693-2.2.2-invalid-request"),
        ]),
        B::InvalidActorTokenIgnored => pairs(&[
            ("invalid-actor-token", "RFC8693-2.1-validate"),
            ("invalid-actor-token", "RFC8693-2.2.2-invalid-request"),
        ]),
        B::SubjectTokenTypeNotChecked => pairs(&[
            ("subject-token-type-mismatch", "RFC8693-2.1-validate"),
            ("subject-token-type-mismatch", "RFC8693-2.2.2-invalid-request"),
        ]),
        // Refusing is this suite's SHOULD (a warn); RFC 8693 §3 does not
        // require it, and the error code is not checked when nothing is refused.
        B::RequestedTokenTypeReplaced => pairs(&[("unsupported-requested-token-type", "RFC8693-3-token-types")]),
        B::ResourceNotValidated => rules(&["RFC8693-2.1-resource"]),
        B::UnknownResourceIgnored => Expect {
            untestable_except: None,
            rules: &["RFC8707-2-audience"],
            pairs: &[("unknown-resource-invalid-target", "RFC8693-2.2.2-invalid-target")],
        },
        B::InvalidGrantInsteadOfInvalidRequest => {
            rules(&["RFC8693-2.1-subject-required", "RFC8693-2.2.2-invalid-request"])
        }
        B::InvalidRequestInsteadOfInvalidTarget => rules(&["RFC8693-2.2.2-invalid-target"]),
        B::NoIssuedTokenType => rules(&["RFC8693-2.2.1-issued-type"]),
        // A bound token's response without token_type does not announce DPoP either.
        B::NoTokenType => rules(&["RFC8693-2.2.1-token-type", "RFC9449-5-token-type"]),
        B::NoExpiresIn => rules(&["RFC8693-2.2.1-expires"]),
        B::ScopeNotReported => Expect {
            untestable_except: None,
            rules: &[
                "AGENT-INTERSECT-agent-lacks",
                "AGENT-INTERSECT-escalate",
                "AGENT-INTERSECT-hops",
                "AGENT-INTERSECT-own-baseline",
                "AGENT-INTERSECT-user-lacks",
                "RFC8693-2.2.1-scope",
            ],
            pairs: &[("chain-scope-never-widens", "AGENT-CHAIN-monotonic")],
        },
        B::NoCacheControl => rules(&["RFC6749-5.1-no-store"]),
        B::NoBasicChallenge | B::BasicChallengeWrongScheme | B::BasicRefusedAsBadRequest => {
            rules(&["RFC6749-5.2-basic-challenge"])
        }
        B::ErrorsNotJson => rules(&[
            "RFC6749-5.2-basic-challenge",
            "RFC6749-5.2-invalid-client",
            "RFC6749-5.2-shape",
            "RFC6749-5.2-unauthorized-client",
            "RFC8693-2.1-subject-required",
            "RFC8693-2.2.2-invalid-request",
            "RFC8693-2.2.2-invalid-target",
            "RFC9449-5-invalid-proof-error",
        ]),
        B::MetadataWithoutJwksUri => Expect {
            untestable_except: None,
            // No jwks_uri: the JWK Set cannot be fetched, so its check is untestable.
            rules: &[
                "AGENT-ATTACK-key-confusion",
                "AGENT-JWKS-public-only",
                "AGENT-REVOKE-stateless-window",
                "RFC8414-3-metadata",
            ],
            pairs: &[
                ("chain-aud-next-hop-only", "AGENT-CHAIN-aud"),
                ("chain-depth-impersonation", "AGENT-CHAIN-depth"),
                ("hs256-key-confusion", "RFC8693-2.1-validate"),
                ("hs256-key-confusion", "RFC8693-2.2.2-invalid-request"),
            ],
        },
        B::GrantNotAdvertised => rules(&["AGENT-METADATA-grant"]),
        B::ClientSecretNotChecked => Expect {
            untestable_except: None,
            rules: &["RFC6749-3.2.1-client-auth", "RFC6749-5.2-invalid-client"],
            pairs: &[
                ("client-authentication-required", "RFC6749-5.2-shape"),
                // The wrong secret is accepted: no refusal whose challenge to check.
                ("client-authentication-required", "RFC6749-5.2-basic-challenge"),
            ],
        },
        // Still refused on the audience, but no longer with unauthorized_client.
        // Caught on its own rule only by the isolated attempt (lab-web in aud).
        B::PublicClientMayExchange => rules(&["AGENT-ATTACK-public-client", "RFC6749-5.2-unauthorized-client"]),
        B::ActWithNonIdentityClaims => rules(&["RFC8693-4.1-act-no-nonidentity"]),
        // Only the format rule: the rights in an array are still read, so
        // the chain and intersection checks judge the scopes themselves.
        // The resource reads scope as a string: its tools fail, and what
        // needs a tool call is untestable.
        B::ScopeClaimArray => Expect {
            untestable_except: None,
            rules: &["RFC8693-4.2-scope"],
            pairs: &[
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-act"),
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-audience"),
                ("tool-scope-checked", "AGENT-RESOURCE-tool-scope"),
                ("tool-scope-checked", "MCP-AUTHZ-insufficient-scope"),
            ],
        },
        // The API's token names the MCP server as sub, not alice.
        B::SubjectReplacedByClient => Expect {
            untestable_except: None,
            rules: &["AGENT-CHAIN-depth", "AGENT-CHAIN-sub", "AGENT-MAYACT-allow"],
            pairs: &[("downstream-token-delegated", "AGENT-RESOURCE-downstream-act")],
        },
        // Not the revocation scenarios: the engine introspects an aud-less
        // token as the audience its exchange asked for, so their positive
        // controls still hold (the fallback this variant exists to prove).
        B::AudienceOnlyServerSide => Expect {
            untestable_except: None,
            rules: &["AGENT-CHAIN-aud"],
            pairs: &[
                ("chain-depth-impersonation", "AGENT-CHAIN-depth"),
                ("stateless-window-after-logout", "AGENT-REVOKE-stateless-window"),
                // Untestable: the token for the MCP server carries no aud, so
                // the resource refuses it and the control does not hold.
                ("other-audience-refused", "MCP-AUTHZ-audience"),
                ("other-audience-refused", "MCP-AUTHZ-invalid-401"),
                ("no-token-passthrough", "MCP-AUTHZ-no-passthrough"),
                ("revoked-token-refused", "AGENT-RESOURCE-revoked"),
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-act"),
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-audience"),
                ("expired-token-refused", "MCP-AUTHZ-expired"),
                ("expired-token-refused", "MCP-AUTHZ-invalid-401"),
                ("tool-scope-checked", "AGENT-RESOURCE-tool-scope"),
                ("tool-scope-checked", "MCP-AUTHZ-insufficient-scope"),
            ],
        },
        // Exchanged tokens keep earlier audiences; a login token without aud
        // has none to keep, so subject-without-aud still passes.
        B::AudienceAccumulates => Expect {
            untestable_except: None,
            rules: &["AGENT-CHAIN-aud"],
            pairs: &[
                ("chain-depth-impersonation", "AGENT-CHAIN-depth"),
                ("replay-other-audience", "AGENT-ATTACK-replay-aud"),
                ("replay-other-audience", "RFC6749-5.2-shape"),
                // The API's token keeps the MCP server's audience.
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-audience"),
                // Untestable: the API's token also names the MCP server, so
                // the resource would be right to accept it.
                ("other-audience-refused", "MCP-AUTHZ-audience"),
                ("other-audience-refused", "MCP-AUTHZ-invalid-401"),
            ],
        },
        // chain-act-kept-without-actor: untestable, its two-actor attempt
        // needs hop 2 nested right (the precondition this variant breaks).
        B::ActNotAnObject => Expect {
            untestable_except: None,
            rules: &["AGENT-CHAIN-act", "RFC8693-4.1-act-shape"],
            // The relay chain does not nest every actor: the limit is untestable.
            pairs: &[
                ("chain-act-kept-without-actor", "AGENT-CHAIN-act-kept"),
                ("chain-depth-delegation", "AGENT-CHAIN-depth"),
                ("chain-depth-limit", "AGENT-CHAIN-limit"),
            ],
        },
        B::ActReplaced => Expect {
            untestable_except: None,
            rules: &["AGENT-CHAIN-act"],
            // The relay chain does not nest every actor: the limit is untestable.
            pairs: &[
                ("chain-act-kept-without-actor", "AGENT-CHAIN-act-kept"),
                ("chain-depth-delegation", "AGENT-CHAIN-depth"),
                ("chain-depth-limit", "AGENT-CHAIN-limit"),
            ],
        },
        B::ActReversed => Expect {
            untestable_except: None,
            rules: &["AGENT-CHAIN-act", "AGENT-MAYACT-subagent"],
            pairs: &[
                ("chain-act-kept-without-actor", "AGENT-CHAIN-act-kept"),
                ("chain-depth-delegation", "AGENT-CHAIN-depth"),
            ],
        },
        B::ActInvented => rules(&["AGENT-CHAIN-impersonation"]),
        B::ExpExtendedSlightly => pairs(&[("chain-exp-never-grows", "AGENT-CHAIN-monotonic")]),
        // The token for the MCP server outlives the wait: untestable.
        B::ExpExtended => pairs(&[
            ("chain-exp-never-grows", "AGENT-CHAIN-monotonic"),
            ("expired-token-refused", "MCP-AUTHZ-expired"),
            ("expired-token-refused", "MCP-AUTHZ-invalid-401"),
        ]),
        // A chain cut short or not nested cannot reach the limit: untestable.
        B::ChainLimitedToThreeHops => {
            pairs(&[("chain-depth-impersonation", "AGENT-CHAIN-depth"), ("chain-depth-limit", "AGENT-CHAIN-limit")])
        }
        B::ActHistoryTruncated => {
            pairs(&[("chain-depth-delegation", "AGENT-CHAIN-depth"), ("chain-depth-limit", "AGENT-CHAIN-limit")])
        }
        B::ActDroppedWithoutActor | B::ActLatestOnlyWithoutActor => rules(&["AGENT-CHAIN-act-kept"]),
        B::TargetsNotRestricted | B::TargetsRestrictedFirstHopOnly => rules(&["AGENT-ATTACK-skip-hop"]),
        B::RefreshTokenByExchange | B::RefreshTokenWithEveryExchange => rules(&["AGENT-ATTACK-refresh-escalation"]),
        B::MetadataIssuerTrailingSlash => rules(&["RFC8414-3.3-issuer"]),
        B::JwksLeaksPrivateKey | B::JwksPublishesSymmetricKey => rules(&["AGENT-JWKS-public-only"]),
        B::ResourceChallengeBare => rules(&["MCP-AUTHZ-challenge"]),
        B::ResourceRefusesWithoutChallenge => rules(&["MCP-AUTHZ-challenge", "RFC6750-3-challenge"]),
        // Served, the wrong-audience (or audience-less) token has no refusal
        // for the 401 rule to grade.
        // DPoP (RFC 9449): each skipped §4.3 check is caught by its own rule
        // in proof-checked-on-exchange, where the refusal's error code is
        // not-applicable once the proof is accepted.
        B::DpopHtmUnchecked => rules(&["RFC9449-4.3-htm"]),
        B::DpopHtuHostOnly | B::DpopHtuPrefix | B::DpopHtuExtends => rules(&["RFC9449-4.3-htu"]),
        B::DpopSignatureUnchecked | B::DpopAlgNoneAccepted => rules(&["RFC9449-4.3-signature"]),
        B::DpopTypUnchecked => rules(&["RFC9449-4.3-typ"]),
        B::DpopPrivateKeyAccepted => rules(&["RFC9449-4.3-private-key"]),
        B::DpopJtiOptional => rules(&["RFC9449-4.3-claims"]),
        B::DpopIatStaleOnly => rules(&["RFC9449-4.3-iat"]),
        B::DpopJtiReusable => rules(&["AGENT-DPOP-jti-once"]),
        B::DpopErrorInvalidRequest => rules(&["RFC9449-5-invalid-proof-error"]),
        // Checked at login only: every check of the exchange's proof is gone,
        // its single use too.
        B::DpopExchangeUnchecked => rules(&[
            "RFC9449-4.3-htm",
            "RFC9449-4.3-htu",
            "RFC9449-4.3-signature",
            "RFC9449-4.3-typ",
            "RFC9449-4.3-private-key",
            "RFC9449-4.3-claims",
            "RFC9449-4.3-iat",
            "AGENT-DPOP-jti-once",
        ]),
        B::DpopBearerAnnounced => rules(&["RFC9449-5-token-type"]),
        // The login's binding is wrong too: bound-subject-not-laundered's
        // precondition fails and what follows is untestable.
        B::DpopBindingDropped | B::DpopThumbprintLoose => Expect {
            rules: &[],
            pairs: &[("exchange-bound-to-proof-key", "RFC9449-6.1-jkt")],
            untestable_except: Some(&["RFC9449-6.1-jkt"]),
        },
        // Allowed by RFC 9449 §5 (Bearer, unbound), refused by the profile:
        // the exchange with a proof, and the next hop's exchange of a bound token.
        B::DpopStrippedOnExchange => Expect {
            rules: &["AGENT-DPOP-bound"],
            pairs: &[("bound-subject-not-laundered", "AGENT-DPOP-not-laundered")],
            untestable_except: None,
        },
        B::DpopSubjectBindingKept => pairs(&[("bound-subject-not-laundered", "RFC9449-6.1-jkt")]),
        B::DpopSubjectLaundered => pairs(&[("bound-subject-not-laundered", "AGENT-DPOP-not-laundered")]),
        // The client's token names the MCP server in aud and carries no act.
        B::ResourcePassesTokenThrough => {
            rules(&["MCP-AUTHZ-no-passthrough", "AGENT-RESOURCE-downstream-audience", "AGENT-RESOURCE-downstream-act"])
        }
        B::ResourceIgnoresRevocation => rules(&["AGENT-RESOURCE-revoked"]),
        // Served, so the 401 beside it has nothing to grade.
        B::ResourceExpiryLeeway => {
            Expect { rules: &["MCP-AUTHZ-expired"], pairs: &[], untestable_except: Some(&["MCP-AUTHZ-expired"]) }
        }
        // The API refuses what the server let through, as a tool error: the
        // form of the refusal fails too.
        B::ResourceLeavesToolScopeToApi | B::ResourceToolScopeByPrefix => {
            rules(&["AGENT-RESOURCE-tool-scope", "MCP-AUTHZ-insufficient-scope"])
        }
        B::ResourceToolScopeAsToolError => rules(&["MCP-AUTHZ-insufficient-scope"]),
        B::ResourceImpersonatesDownstream | B::ResourceCallsApiAsItself => rules(&["AGENT-RESOURCE-downstream-act"]),
        B::ResourceDownstreamAudienceWide => rules(&["AGENT-RESOURCE-downstream-audience"]),
        B::RegistrationAnswers200 => rules(&["RFC7591-3.2-created"]),
        B::DeletionAnswers200 => rules(&["RFC7592-2.3-delete"]),
        B::DeletedClientStillAuthenticates => rules(&["RFC7592-2.3-invalidated"]),
        B::RegisteredGrantIgnored => rules(&["RFC7591-3.2.1-grant-types"]),
        // Each breaks the declared policy only; the last two under a
        // profile declaring `refused` (see `profile_for`).
        B::RegisteredClientCannotExchange
        | B::RegistrationRefusesExchange
        | B::RegisteredExchangeDespitePolicy
        | B::RegistrationPolicyAtCreateOnly => rules(&["AGENT-REGISTRATION-exchange-policy"]),
        B::ResourceAcceptsAnyAudience | B::ResourceAcceptsNoAudience => {
            Expect { rules: &["MCP-AUTHZ-audience"], pairs: &[], untestable_except: Some(&["MCP-AUTHZ-audience"]) }
        }
        B::ResourceRefusesTokens403 => rules(&["MCP-AUTHZ-invalid-401"]),
        B::ResourceMetadataTrailingSlash => rules(&["RFC9728-3.3-resource"]),
        B::ResourceMetadataWithoutAuthorizationServers => Expect {
            rules: &["MCP-AUTHZ-prm"],
            // No authorization server listed: the walk to its metadata cannot start.
            pairs: &[
                ("authorization-server-discoverable", "MCP-AUTHZ-as-metadata"),
                ("authorization-server-discoverable", "RFC8414-3.3-issuer"),
                ("authorization-server-discoverable", "AGENT-METADATA-grant"),
            ],
            untestable_except: Some(&["MCP-AUTHZ-prm"]),
        },
        B::ResourceMetadataAuthorizationServerSlash => {
            pairs(&[("authorization-server-discoverable", "RFC8414-3.3-issuer")])
        }
        B::AuthorizationServerMetadataOpenidOnly => Expect {
            rules: &["MCP-AUTHZ-as-metadata"],
            pairs: &[],
            untestable_except: Some(&["MCP-AUTHZ-as-metadata"]),
        },
        // No document: the rule that asks for one fails; the checks of its
        // members (and, with discovery the only source of endpoints,
        // everything else) are untestable, never failed a second time.
        // The server has no metadata at all: the RFC rule fails, and so does
        // the MCP one, which the resource's walk to it grades.
        B::MetadataDocumentMissing | B::MetadataDocumentHtml => Expect {
            rules: &["RFC8414-3-well-known", "MCP-AUTHZ-as-metadata"],
            pairs: &[],
            untestable_except: Some(&["RFC8414-3-well-known", "MCP-AUTHZ-as-metadata"]),
        },
        // Declared (its profile says exchange-refresh-tokens, see `profile_for`).
        B::ExchangedRefreshSurvivesRevocation => rules(&["AGENT-REVOKE-exchanged-refresh"]),
        B::DepthNotLimited | B::DepthLimitOffByOne | B::DepthLimitBelowDeclared => rules(&["AGENT-CHAIN-limit"]),
        B::CircularDelegationAccepted => rules(&["AGENT-ATTACK-circular"]),
        // Without may_act in its inputs, the policy cannot know the requester
        // of a may_act subject acts: a clean impersonation too.
        B::MayActIgnored => rules(&[
            "AGENT-MAYACT-deny-actor",
            "AGENT-MAYACT-deny-noactor",
            "AGENT-MAYACT-no-impersonation",
            "AGENT-MAYACT-subagent",
        ]),
        B::MayActOnlyWithActorToken => rules(&["AGENT-MAYACT-deny-noactor", "AGENT-MAYACT-no-impersonation"]),
        // deny-rogue-actor's isolated attempt (rogue-agent in aud, its own
        // actor token) and subagent-only (the MCP server with its own).
        B::MayActSkippedForOwnActorToken => {
            pairs(&[("deny-rogue-actor", "AGENT-MAYACT-deny-actor"), ("subagent-only", "AGENT-MAYACT-subagent")])
        }
        B::MayActSubjectImpersonated => rules(&["AGENT-MAYACT-no-impersonation"]),
        // Run with a profile that declares `resource = false` (see
        // `profile_for`): the resource scenarios are not applicable there.
        B::ResourceSilentlyIgnored => pairs(&[("resource-not-silently-ignored", "RFC8693-2.2.2-invalid-target")]),
        B::MayActCopied => rules(&["AGENT-MAYACT-not-copied"]),
        B::UnionNotIntersection => Expect {
            untestable_except: None,
            rules: &[
                "AGENT-INTERSECT-agent-lacks",
                "AGENT-INTERSECT-escalate",
                "AGENT-INTERSECT-hops",
                "AGENT-INTERSECT-own-baseline",
                "AGENT-INTERSECT-user-lacks",
            ],
            pairs: &[("chain-scope-never-widens", "AGENT-CHAIN-monotonic")],
        },
        B::SubjectScopeCopied => {
            rules(&["AGENT-INTERSECT-agent-lacks", "AGENT-INTERSECT-hops", "AGENT-INTERSECT-own-baseline"])
        }
        B::IntersectionFirstHopOnly => Expect {
            untestable_except: None,
            rules: &["AGENT-INTERSECT-escalate", "AGENT-INTERSECT-hops", "AGENT-INTERSECT-own-baseline"],
            pairs: &[("chain-scope-never-widens", "AGENT-CHAIN-monotonic")],
        },
        // hops and own-baseline: untestable, their precondition (a hop carrying the permission) fails.
        B::BaselineFirstHopOnly => rules(&["AGENT-INTERSECT-own-baseline"]),
        // The resource's tools get no scope: the API refuses, and what
        // needs a tool call is untestable.
        B::GrantsNothing => Expect {
            untestable_except: None,
            rules: &["AGENT-INTERSECT-both", "AGENT-INTERSECT-hops", "AGENT-INTERSECT-own-baseline"],
            pairs: &[
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-act"),
                ("downstream-token-delegated", "AGENT-RESOURCE-downstream-audience"),
                ("tool-scope-checked", "AGENT-RESOURCE-tool-scope"),
                ("tool-scope-checked", "MCP-AUTHZ-insufficient-scope"),
            ],
        },
        B::RevocationNotCascading => Expect {
            untestable_except: None,
            rules: &["AGENT-REVOKE-client", "AGENT-REVOKE-midchain"],
            pairs: &[
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-subject"),
            ],
        },
        B::RevocationCascadesUp => rules(&["AGENT-REVOKE-midchain"]),
        B::RevocationSlow => Expect {
            untestable_except: None,
            rules: &[
                "AGENT-REVOKE-client",
                "AGENT-REVOKE-latency",
                "AGENT-REVOKE-midchain",
                "AGENT-REVOKE-no-reexchange",
                // The resource asks the server, which learns of it 7.5 s late:
                // past the resource's declared 2 s window.
                "AGENT-RESOURCE-revoked",
            ],
            pairs: &[
                ("midchain-revoke-cascades-down-only", "RFC7662-2.2-active"),
                ("revoked-token-not-reexchangeable", "RFC8693-2.2.2-invalid-request"),
            ],
        },
        B::IntrospectionIgnoresRevocation => Expect {
            untestable_except: None,
            rules: &[
                "AGENT-REVOKE-client",
                "AGENT-REVOKE-latency",
                "AGENT-REVOKE-midchain",
                "AGENT-REVOKE-subject",
                "RFC7009-2.1-refresh-cascade",
                "RFC7662-2.2-inactive-only",
                // The test bed's resource asks the same introspection.
                "AGENT-RESOURCE-revoked",
            ],
            pairs: &[
                ("midchain-revoke-cascades-down-only", "RFC7662-2.2-active"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-active"),
            ],
        },
        B::RevokedSubjectExchangeable => Expect {
            untestable_except: None,
            rules: &["AGENT-REVOKE-no-reexchange"],
            pairs: &[("revoked-token-not-reexchangeable", "RFC8693-2.2.2-invalid-request")],
        },
        B::LogoutKeepsDerived => pairs(&[
            ("logout-revokes-chain", "AGENT-REVOKE-latency"),
            ("logout-revokes-chain", "AGENT-REVOKE-subject"),
            ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-latency"),
            ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-subject"),
        ]),
        B::DisabledClientTokensStayActive => rules(&["AGENT-REVOKE-client"]),
        // With actor tokens the disabled agent's actor token is revoked, so
        // its delegated exchange is refused for that: only the plain one shows it.
        B::DisabledClientMayExchange => pairs(&[("disabled-agent-loses-chain", "AGENT-REVOKE-client")]),
        B::DisabledClientDelegatedTokensStayActive => {
            pairs(&[("disabled-actor-loses-delegated-chain", "AGENT-REVOKE-client")])
        }
        // A failed cleanup is a result of its own, not a silent skip.
        // The exclusive scenarios run one after the other in file order: the
        // first one's failed cleanup leaves the agent disabled for the next,
        // whose exchange is then refused from the start.
        B::EnableClientFails => pairs(&[
            ("disabled-actor-loses-delegated-chain", fourleg_scenario::engine::CLEANUP_RULE),
            ("disabled-agent-loses-chain", fourleg_scenario::engine::CLEANUP_RULE),
            ("disabled-agent-loses-chain", "AGENT-REVOKE-client"),
        ]),
        B::IntrospectionUnauthenticated => rules(&["RFC7662-2.1-auth"]),
        B::InactiveIntrospectionLeaksClaims => rules(&["RFC7662-2.2-inactive-only"]),
        B::RevokeUnknownTokenError => pairs(&[("revoke-unknown-token-ok", "RFC7009-2.2-ok")]),
        B::RevokeByAnyClient => pairs(&[("revoke-other-clients-token-refused", "RFC7009-2.1-client")]),
        // The revocation's precondition (200) fails: what the resource does
        // after it is untestable.
        B::RevokeAnswersNoContent => Expect {
            untestable_except: None,
            rules: &["RFC7009-2.2-ok"],
            pairs: &[("revoked-token-refused", "AGENT-RESOURCE-revoked")],
        },
        B::AlgNoneAccepted => Expect {
            untestable_except: None,
            rules: &["AGENT-ATTACK-alg-none"],
            pairs: &[
                ("alg-none-subject", "RFC8693-2.1-validate"),
                ("alg-none-subject", "RFC8693-2.2.2-invalid-request"),
            ],
        },
        B::KeyConfusionAccepted => Expect {
            untestable_except: None,
            rules: &["AGENT-ATTACK-key-confusion"],
            pairs: &[
                ("hs256-key-confusion", "RFC8693-2.1-validate"),
                ("hs256-key-confusion", "RFC8693-2.2.2-invalid-request"),
            ],
        },
        B::ForeignIssuerAccepted => Expect {
            untestable_except: None,
            rules: &["AGENT-ATTACK-act-injection", "AGENT-ATTACK-foreign-issuer"],
            pairs: &[
                ("foreign-issuer-subject", "RFC8693-2.1-validate"),
                ("foreign-issuer-subject", "RFC8693-2.2.2-invalid-request"),
                ("untrusted-issuer-subject", "RFC8693-2.1-validate"),
                ("untrusted-issuer-subject", "RFC8693-2.2.2-invalid-request"),
            ],
        },
        // The harness's own forgeries (foreign-issuer-subject) are refused
        // for their signature; only a real second issuer catches these.
        B::SecondIssuerTrusted | B::IssuerMatchedByPrefix => pairs(&[
            ("untrusted-issuer-subject", "AGENT-ATTACK-foreign-issuer"),
            ("untrusted-issuer-subject", "RFC8693-2.1-validate"),
            ("untrusted-issuer-subject", "RFC8693-2.2.2-invalid-request"),
        ]),
        B::ExpiredAccepted => Expect {
            untestable_except: None,
            rules: &["AGENT-ATTACK-expired"],
            pairs: &[
                ("expired-subject-token", "RFC8693-2.1-validate"),
                ("expired-subject-token", "RFC8693-2.2.2-invalid-request"),
            ],
        },
        B::UndecodableSubjectAccepted => pairs(&[
            ("garbage-subject-token", "RFC6749-5.2-shape"),
            ("garbage-subject-token", "RFC8693-2.1-validate"),
            ("garbage-subject-token", "RFC8693-2.2.2-invalid-request"),
        ]),
        B::SignatureNotVerified => Expect {
            untestable_except: None,
            rules: &["AGENT-ATTACK-act-injection", "AGENT-MAYACT-forged"],
            pairs: &[("forged-may-act", "RFC8693-2.1-validate"), ("forged-may-act", "RFC8693-2.2.2-invalid-request")],
        },
        B::AudienceNotChecked => Expect {
            untestable_except: None,
            rules: &["AGENT-ATTACK-replay-aud"],
            pairs: &[
                ("chain-api-token-not-reexchanged", "AGENT-CHAIN-aud"),
                ("replay-other-audience", "RFC6749-5.2-shape"),
            ],
        },
        B::AudienceSkippedWhenAbsent => pairs(&[("subject-without-aud", "AGENT-ATTACK-replay-aud")]),
        B::SubjectActorSwapAccepted => rules(&["AGENT-ATTACK-swap"]),
        // RFC 7009 §2.1 is broken; what needed the revocation is untestable.
        B::PublicClientRevocationRefused => Expect {
            rules: &[],
            pairs: &[
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-subject"),
                ("revoke-user-access-token-revokes-chain", "RFC7009-2.1-client"),
                ("revoke-user-access-token-revokes-chain", "RFC7009-2.2-ok"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-active"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-inactive-only"),
                ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-subject"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.1-client"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.1-refresh-cascade"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.2-ok"),
                ("revoked-token-not-reexchangeable", "AGENT-REVOKE-no-reexchange"),
                ("revoked-token-not-reexchangeable", "RFC7009-2.1-client"),
                ("revoked-token-not-reexchangeable", "RFC7009-2.2-ok"),
                ("revoked-token-not-reexchangeable", "RFC8693-2.2.2-invalid-request"),
            ],
            untestable_except: Some(&["RFC7009-2.1-client"]),
        },
        // Conformant (RFC 7009 §2.2.1), but the profile declares access-token
        // revocation: untestable everywhere, never fail.
        B::AccessTokenRevocationUnsupported => Expect {
            rules: &[],
            pairs: &[
                ("midchain-revoke-cascades-down-only", "AGENT-REVOKE-midchain"),
                ("midchain-revoke-cascades-down-only", "RFC7009-2.2-ok"),
                ("midchain-revoke-cascades-down-only", "RFC7662-2.2-active"),
                ("revoke-unknown-token-ok", "RFC7009-2.2-ok"),
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-subject"),
                ("revoke-user-access-token-revokes-chain", "RFC7009-2.2-ok"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-active"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-inactive-only"),
                ("revoked-token-not-reexchangeable", "AGENT-REVOKE-no-reexchange"),
                ("revoked-token-not-reexchangeable", "RFC7009-2.2-ok"),
                ("revoked-token-not-reexchangeable", "RFC8693-2.2.2-invalid-request"),
            ],
            untestable_except: Some(&[]),
        },
        // Conformant (RFC 6749 §5.1), but the profile declares refresh
        // tokens: the revocation and the logouts that need one do not happen,
        // so what they should have changed is untestable, never fail.
        B::NoRefreshToken => Expect {
            rules: &[],
            pairs: &[
                ("logout-revokes-chain", "AGENT-REVOKE-latency"),
                ("logout-revokes-chain", "AGENT-REVOKE-subject"),
                ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-subject"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.1-client"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.1-refresh-cascade"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.2-ok"),
                ("stateless-window-after-logout", "AGENT-REVOKE-stateless-window"),
            ],
            untestable_except: Some(&[]),
        },
        // Conformant (RFC 7662 §2.2): the baselines on the user's token are
        // failed preconditions, so what depends on them is untestable, and
        // nothing fails (idpyoidc's case in the reference matrix).
        B::PublicClientTokensNotIntrospectable => Expect {
            rules: &[],
            pairs: &[
                ("logout-revokes-chain", "AGENT-REVOKE-latency"),
                ("logout-revokes-chain", "AGENT-REVOKE-subject"),
                ("midchain-revoke-cascades-down-only", "AGENT-REVOKE-midchain"),
                ("revoke-user-access-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-active"),
                ("revoke-user-access-token-revokes-chain", "RFC7662-2.2-inactive-only"),
                ("revoke-user-refresh-token-revokes-chain", "AGENT-REVOKE-latency"),
                ("revoke-user-refresh-token-revokes-chain", "RFC7009-2.1-refresh-cascade"),
            ],
            untestable_except: Some(&[]),
        },
    }
}

/// How many variants run at once (each runs its scenarios concurrently too).
const VARIANTS_AT_ONCE: usize = 12;
/// Scenarios of one variant run at once.
const SCENARIOS_AT_ONCE: usize = 16;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What one run made fail: scenario id → rule id → worst status of its checks.
type Kills = BTreeMap<String, BTreeMap<String, Status>>;

fn kills(run: &Run) -> Kills {
    let mut out: Kills = BTreeMap::new();
    for s in &run.scenarios {
        for c in &s.checks {
            if !matches!(c.status, Status::Pass | Status::NotApplicable) {
                let e = out.entry(s.id.clone()).or_default().entry(c.rule.clone()).or_insert(c.status);
                *e = (*e).max(c.status);
            }
        }
    }
    out
}

/// The failing checks of a run, for messages.
fn failures(run: &Run) -> String {
    let mut out = String::new();
    for s in &run.scenarios {
        for c in s.checks.iter().filter(|c| !matches!(c.status, Status::Pass | Status::NotApplicable)) {
            let _ = writeln!(out, "    {} / {}: {} ({})", s.id, c.rule, c.status, c.message);
        }
        if let Some(r) = s.reason.as_ref().filter(|_| s.status == Status::Error) {
            let _ = writeln!(out, "    {}: error: {r}", s.id);
        }
    }
    out
}

async fn run_one(
    broken: Option<Breakage>,
    order: Order,
    scenarios: Arc<Vec<Scenario>>,
    registry: Arc<Registry>,
    profile_text: Arc<String>,
) -> anyhow::Result<Run> {
    let bed = TestBed::start_ordered(broken, order).await?;
    let profile = Profile::parse(&profile_text, &TestBed::profile_path())?;
    let target = Target::connect(profile, Some(bed.lab_context())).await?;
    let engine = Arc::new(Engine::new(Arc::new(target), Arc::clone(&registry)));
    let run = runner::run(
        engine,
        &scenarios,
        SCENARIOS_AT_ONCE,
        profile_text.as_bytes(),
        &registry.profile_version,
        Arc::new(Quiet),
    )
    .await?;
    drop(bed);
    Ok(run)
}

/// The test bed's profile as a variant is run with: the one committed,
/// except for a variant that breaks a rule only a server declaring a feature
/// absent can break (`probes_absent` scenarios).
fn profile_for(b: Option<Breakage>, committed: &Arc<String>, without_resource: &Arc<String>) -> Arc<String> {
    match b {
        Some(Breakage::ResourceSilentlyIgnored) => Arc::clone(without_resource),
        Some(Breakage::ExchangedRefreshSurvivesRevocation) => Arc::new(with_exchange_refresh_tokens(committed)),
        Some(Breakage::MetadataDocumentMissing) => Arc::new(with_explicit_endpoints(committed)),
        Some(Breakage::RegisteredExchangeDespitePolicy | Breakage::RegistrationPolicyAtCreateOnly) => {
            Arc::new(with_registered_exchange_refused(committed))
        }
        _ => Arc::clone(committed),
    }
}

/// The committed test-bed profile naming every endpoint itself, beside
/// discovery: a missing metadata document then takes nothing else down.
fn with_explicit_endpoints(text: &str) -> String {
    let endpoints = [
        ("token", "token"),
        ("introspection", "introspect"),
        ("revocation", "revoke"),
        ("jwks", "jwks"),
        ("authorization", "authorize"),
        ("end_session", "logout"),
    ]
    .iter()
    .map(|(key, path)| format!("{key} = \"{{lab.testbed}}/{path}\"\n"))
    .collect::<Vec<_>>()
    .concat();
    let out = text.replacen("discovery = \"openid\"\n", &format!("discovery = \"openid\"\n{endpoints}"), 1);
    assert_ne!(out, text, "testbed.toml no longer declares `discovery = \"openid\"` in [endpoints]");
    out
}

/// The committed test-bed profile declaring refresh tokens by exchange.
fn with_exchange_refresh_tokens(text: &str) -> String {
    let out = text.replacen("\n[features]\n", "\n[features]\nexchange-refresh-tokens = true\n", 1);
    assert_ne!(out, text, "testbed.toml has no [features] table");
    out
}

/// The committed test-bed profile declaring that registered clients may not
/// exchange.
fn with_registered_exchange_refused(text: &str) -> String {
    let out = text.replacen("[registration]\nexchange = \"allowed\"\n", "[registration]\nexchange = \"refused\"\n", 1);
    assert_ne!(out, text, "testbed.toml no longer declares `exchange = \"allowed\"` in [registration]");
    out
}

/// The committed test-bed profile with `resource` declared absent.
fn without_resource(text: &str) -> String {
    let out = text.replacen("\nresource = true", "\nresource = false", 1);
    assert_ne!(out, text, "testbed.toml no longer declares `resource = true` in [features]");
    out
}

/// Runs `scenarios` against the test bed `b` under `profile`, which must
/// pass them all; says which did not ("does not pass …"), if any.
fn positive_control(
    rt: &tokio::runtime::Runtime,
    b: Option<Breakage>,
    scenarios: Vec<Scenario>,
    registry: &Arc<Registry>,
    profile: Arc<String>,
) -> anyhow::Result<Option<String>> {
    if scenarios.is_empty() {
        return Ok(None);
    }
    let control = rt.block_on(run_one(b, Check::DOCUMENTED, Arc::new(scenarios), Arc::clone(registry), profile))?;
    let not_passed: Vec<String> = control
        .scenarios
        .iter()
        .filter(|s| s.status != Status::Pass)
        .map(|s| format!("{} ({})", s.id, s.status))
        .collect();
    Ok((!not_passed.is_empty()).then(|| format!("does not pass {not_passed:?}:\n{}", failures(&control))))
}

fn name(b: Option<Breakage>) -> String {
    b.map_or_else(|| "conformant".to_owned(), Breakage::id)
}

/// The order of the exchange policy's groups of checks a variant runs with.
type Order = [Check; 4];

/// A variant as the messages name it: with its order when not the documented one.
fn label(b: Option<Breakage>, order: Order) -> String {
    if order == Check::DOCUMENTED {
        name(b)
    } else {
        format!("{} (policy checks reversed)", name(b))
    }
}

/// The evaluation-order variants: the conformant server and every fault of
/// the exchange policy's inputs run again with its checks in the reverse
/// order. An isolated attack is caught whatever order a server evaluates
/// its rules in, and a conformant server passes in every order.
fn reordered(b: Option<Breakage>) -> bool {
    b.is_none_or(|b| b.input_fault().is_some())
}

#[test]
#[expect(clippy::too_many_lines, reason = "run, compare, render: one story read top to bottom")]
fn every_scenario_fails_against_a_variant_that_breaks_its_rule() -> anyhow::Result<()> {
    let begin = Instant::now();
    let suites = root().join("suites");
    let registry = Arc::new(Registry::load(&suites.join("requirements.toml"))?);
    let scenarios = Arc::new(fourleg_scenario::scenario::load_all(&suites, &registry)?);
    let profile_text = Arc::new(std::fs::read_to_string(TestBed::profile_path())?);
    let no_resource_text = Arc::new(without_resource(&profile_text));
    let only: Option<BTreeSet<String>> =
        std::env::var("FOURLEG_KILL_ONLY").ok().map(|v| v.split(',').map(|s| s.trim().to_owned()).collect());
    let variants: Vec<(Option<Breakage>, Order)> = std::iter::once(None)
        .chain(Breakage::ALL.iter().copied().map(Some))
        .filter(|b| only.as_ref().is_none_or(|o| o.contains(&name(*b))))
        .flat_map(|b| std::iter::once((b, Check::DOCUMENTED)).chain(reordered(b).then_some((b, Check::REVERSED))))
        .collect();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let runs: Vec<(Option<Breakage>, Order, Run)> = rt.block_on(async {
        let pool = Arc::new(tokio::sync::Semaphore::new(VARIANTS_AT_ONCE));
        let mut tasks = Vec::new();
        for (b, order) in &variants {
            let (b, order, scenarios, registry, text, pool) = (
                *b,
                *order,
                Arc::clone(&scenarios),
                Arc::clone(&registry),
                profile_for(*b, &profile_text, &no_resource_text),
                Arc::clone(&pool),
            );
            tasks.push(tokio::spawn(async move {
                let _permit = pool.acquire_owned().await?;
                let run = run_one(b, order, scenarios, registry, text)
                    .await
                    .with_context(|| format!("variant {}", label(b, order)))?;
                anyhow::Ok((b, order, run))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await??);
        }
        anyhow::Ok(out)
    })?;
    eprintln!(
        "kill table: {} runs of {} scenarios in {:.1} s",
        runs.len(),
        scenarios.len(),
        begin.elapsed().as_secs_f64()
    );

    let mut problems: Vec<String> = Vec::new();
    // The positive control of the `probes_absent` scenarios: the conformant
    // test bed declaring `resource` absent (it refuses every resource it
    // cannot honour) passes them; with the committed profile they are not
    // applicable.
    let probing: Vec<Scenario> = scenarios.iter().filter(|s| !s.probes_absent.is_empty()).cloned().collect();
    let control = positive_control(&rt, None, probing, &registry, Arc::clone(&no_resource_text))?;
    problems.extend(control.map(|c| format!("the conformant test bed declaring `resource` absent {c}")));
    // The positive control of the scenarios that need refresh tokens by
    // exchange: a test bed that issues them (as refresh-token-by-exchange
    // does) and declares it passes them; with the committed profile they are
    // not applicable.
    let declaring: Vec<Scenario> =
        scenarios.iter().filter(|s| s.requires.iter().any(|f| f == "exchange-refresh-tokens")).cloned().collect();
    let with_refresh = Arc::new(with_exchange_refresh_tokens(&profile_text));
    let control = positive_control(&rt, Some(Breakage::RefreshTokenByExchange), declaring, &registry, with_refresh)?;
    problems.extend(control.map(|c| format!("the test bed issuing and declaring refresh tokens by exchange {c}")));
    // The positive control of the `refused` registration policy: a test bed
    // that refuses the token-exchange grant to registered clients (as
    // registration-refuses-exchange does) and declares it passes the
    // registration scenarios.
    let registering: Vec<Scenario> = scenarios.iter().filter(|s| s.area == "registration").cloned().collect();
    let refusing = Arc::new(with_registered_exchange_refused(&profile_text));
    let control = positive_control(&rt, Some(Breakage::RegistrationRefusesExchange), registering, &registry, refusing)?;
    problems
        .extend(control.map(|c| format!("the test bed refusing registered clients' exchanges and declaring it {c}")));
    let exceptions: BTreeMap<&str, &str> = CONFORMANT_EXCEPTIONS.iter().copied().collect();
    let mut table: BTreeMap<Breakage, Kills> = BTreeMap::new();
    let mut table_reversed: BTreeMap<Breakage, Kills> = BTreeMap::new();
    for (b, order, run) in &runs {
        let found = kills(run);
        let errors: Vec<&str> =
            run.scenarios.iter().filter(|s| s.status == Status::Error).map(|s| s.id.as_str()).collect();
        let which = label(*b, *order);
        if !errors.is_empty() {
            problems.push(format!("{which}: the harness broke in {errors:?}:\n{}", failures(run)));
        }
        let Some(b) = b else {
            let unexpected: Vec<&String> = found.keys().filter(|id| !exceptions.contains_key(id.as_str())).collect();
            if !unexpected.is_empty() {
                problems.push(format!("the {which} test bed fails {unexpected:?}:\n{}", failures(run)));
            }
            for (id, _) in exceptions.iter().filter(|(id, _)| !found.contains_key(**id)) {
                problems.push(format!("conformant exception `{id}` is stale: it passes now ({which}); remove it"));
            }
            continue;
        };
        if only.is_some() {
            eprintln!("{which}:\n{}", failures(run));
        }
        let e = expected(*b);
        // A scenario not applicable under this variant's profile cannot fail
        // (the `probes_absent` ones, under the committed profile).
        let applicable: BTreeSet<&str> =
            run.scenarios.iter().filter(|s| s.status != Status::NotApplicable).map(|s| s.id.as_str()).collect();
        let want: BTreeSet<(&str, &str)> = scenarios
            .iter()
            .filter(|s| applicable.contains(s.id.as_str()))
            .flat_map(|s| s.requirements.iter().map(move |r| (s.id.as_str(), r.id.as_str())))
            .filter(|(_, r)| e.rules.contains(r))
            .chain(e.pairs.iter().copied())
            .filter(|(id, _)| !exceptions.contains_key(id))
            .collect();
        let got: BTreeSet<(&str, &str)> = found
            .iter()
            .filter(|(id, _)| !exceptions.contains_key(id.as_str()))
            .flat_map(|(id, rules)| rules.keys().map(move |r| (id.as_str(), r.as_str())))
            .collect();
        if let Some(allowed) = e.untestable_except {
            let graded: Vec<String> = found
                .iter()
                .flat_map(|(id, rules)| rules.iter().map(move |(r, st)| (id, r, st)))
                .filter(|(_, r, st)| **st != Status::Untestable && !allowed.contains(&r.as_str()))
                .map(|(id, r, st)| format!("{id} / {r}: {st}"))
                .collect();
            if !graded.is_empty() {
                problems.push(format!(
                    "{which}: a failed precondition must make what depends on it untestable, never graded: {graded:?}"
                ));
            }
        }
        let missing: Vec<_> = want.difference(&got).collect();
        // Where the variant only breaks a precondition, what it makes
        // untestable need not be listed (the check above holds it to that).
        let untestable = |(id, r): &&(&str, &str)| {
            e.untestable_except.is_some() && found.get(*id).and_then(|rules| rules.get(*r)) == Some(&Status::Untestable)
        };
        let extra: Vec<_> = got.difference(&want).filter(|p| !untestable(p)).collect();
        if !missing.is_empty() || !extra.is_empty() {
            problems.push(format!(
                "{which}: expected to fail but passed: {missing:?}; failed but not expected: {extra:?}\n{}",
                failures(run)
            ));
        }
        // What such a variant leaves untestable is not a kill: kept in the
        // table, it would hide a scenario no variant makes fail.
        let mut found = found.clone();
        if e.untestable_except.is_some() {
            for (id, rules) in &mut found {
                rules.retain(|r, st| *st != Status::Untestable || want.contains(&(id.as_str(), r.as_str())));
            }
            found.retain(|_, rules| !rules.is_empty());
        }
        if *order == Check::DOCUMENTED {
            table.insert(*b, found);
        } else {
            table_reversed.insert(*b, found);
        }
    }
    if only.is_some() {
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        return Ok(());
    }

    let gap_scenarios: BTreeSet<&str> = KNOWN_GAPS.iter().map(|(id, _, _)| *id).collect();
    let gap_variants: BTreeSet<Breakage> = KNOWN_GAPS.iter().map(|(_, b, _)| *b).collect();
    let unkilled: Vec<&str> = scenarios
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| !table.values().any(|k| k.contains_key(*id)) && !gap_scenarios.contains(id))
        .collect();
    if !unkilled.is_empty() {
        problems.push(format!(
            "no variant makes these scenarios fail (add a switch to fourleg-testbed that breaks their rule, or fix the scenario): {unkilled:?}"
        ));
    }
    let uncaught: Vec<String> =
        table.iter().filter(|(b, k)| k.is_empty() && !gap_variants.contains(b)).map(|(b, _)| b.id()).collect();
    if !uncaught.is_empty() {
        problems.push(format!("no scenario catches these variants: {uncaught:?}"));
    }
    for (id, b, _) in KNOWN_GAPS {
        if table.values().any(|k| k.contains_key(*id)) || table.get(b).is_some_and(|k| !k.is_empty()) {
            problems.push(format!("known gap ({id}, {b}) is stale: a variant makes the scenario fail, or the variant is caught; remove it"));
        }
    }

    let doc = render(&scenarios, &table, &table_reversed);
    let path = root().join("reports/kill-table.md");
    if std::env::var_os("FOURLEG_REGENERATE").is_some() {
        std::fs::write(&path, &doc).with_context(|| format!("writing {}", path.display()))?;
    } else if std::fs::read_to_string(&path).ok().as_deref() != Some(doc.as_str()) {
        problems.push(format!(
            "{} is not what the suite produces; regenerate it: FOURLEG_REGENERATE=1 cargo test -p fourleg-testbed --test kill_table",
            path.display()
        ));
    }
    eprintln!("kill table: done in {:.1} s", begin.elapsed().as_secs_f64());
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    Ok(())
}

/// `reports/kill-table.md`: deterministic (sorted, no timings, no statuses
/// that depend on timing).
fn render(scenarios: &[Scenario], table: &BTreeMap<Breakage, Kills>, reversed: &BTreeMap<Breakage, Kills>) -> String {
    let mut d = String::new();
    let _ = writeln!(
        d,
        "<!-- Generated by crates/fourleg-testbed/tests/kill_table.rs; do not edit.\n     \
         Regenerate: FOURLEG_REGENERATE=1 cargo test -p fourleg-testbed --test kill_table -->\n"
    );
    let _ = writeln!(d, "# Kill table\n");
    let _ = writeln!(
        d,
        "Every scenario of `suites/` runs against the test bed (`crates/fourleg-testbed`), an in-process \
         RFC 8693 server with the agent delegation profile: once conformant, where every scenario passes, \
         and once per broken variant, each breaking one rule. A cell lists the rules with at least one \
         failing check (fail, warn, info or untestable). A scenario that no variant makes fail proves \
         nothing and fails the build, unless it is a known gap below: a defect of that scenario to fix.\n"
    );
    let _ = writeln!(d, "{} scenarios, {} variants.\n", scenarios.len(), table.len());
    let _ = writeln!(d, "## Scenario → variants that make it fail\n");
    let _ = writeln!(d, "| scenario | variants (failed rules) |");
    let _ = writeln!(d, "|---|---|");
    for s in scenarios {
        let cells: Vec<String> = table
            .iter()
            .filter_map(|(b, k)| {
                k.get(&s.id).map(|rules| format!("`{b}` ({})", rules.keys().cloned().collect::<Vec<_>>().join(", ")))
            })
            .collect();
        let cell = if cells.is_empty() { "**none** (known gap)".to_owned() } else { cells.join("<br>") };
        let _ = writeln!(d, "| `{}/{}` | {cell} |", s.area, s.id);
    }
    let _ = writeln!(d, "\n## Variant → scenarios that catch it\n");
    let _ = writeln!(d, "| variant | what it breaks | caught by |");
    let _ = writeln!(d, "|---|---|---|");
    for (b, k) in table {
        let caught: Vec<String> = k.keys().map(|id| format!("`{id}`")).collect();
        let cell = if caught.is_empty() { "**nothing** (known gap)".to_owned() } else { caught.join(", ") };
        let _ = writeln!(d, "| `{b}` | {} | {cell} |", b.what());
    }
    let _ = writeln!(d, "\n## Evaluation order\n");
    let _ = writeln!(
        d,
        "A server may check its rules in any order, and a request that breaks two rules is refused by \
         whichever it checks first. An attack proves its rule only when every other rule would have \
         allowed the request. So the variants that break an input of the exchange policy \
         (`fourleg-policy`: audience, actor, targets, scope) run a second time with the policy's groups \
         of checks reversed (scope, targets, actor, audience), and must be caught by the same \
         (scenario, rule) pairs; the conformant test bed passes in both orders.\n"
    );
    let _ = writeln!(d, "| variant | caught with the checks reversed |");
    let _ = writeln!(d, "|---|---|");
    for (b, k) in reversed {
        let caught: Vec<String> = k.keys().map(|id| format!("`{id}`")).collect();
        let cell = if caught.is_empty() { "**nothing**".to_owned() } else { caught.join(", ") };
        let _ = writeln!(d, "| `{b}` | {cell} |");
    }
    let _ = writeln!(d, "\n## Known gaps\n");
    if KNOWN_GAPS.is_empty() {
        let _ = writeln!(d, "None.");
    }
    for (id, b, why) in KNOWN_GAPS {
        let _ = writeln!(d, "- `{id}` / `{b}`: {why}.");
    }
    let _ = writeln!(d, "\n## Rule checks no variant makes fail\n");
    let _ = writeln!(
        d,
        "Pairs (scenario, rule) whose checks pass against every variant: mostly controls (a token that \
         must still work), which a variant fails only by breaking everything. Not a failure of the build.\n"
    );
    let mut any = false;
    for s in scenarios {
        for r in &s.requirements {
            if !table.values().any(|k| k.get(&s.id).is_some_and(|rules| rules.contains_key(&r.id))) {
                let _ = writeln!(d, "- `{}`: `{}`", s.id, r.id);
                any = true;
            }
        }
    }
    if !any {
        let _ = writeln!(d, "None.");
    }
    d
}
