//! Input faults: one rule of the decision made to pass by altering what
//! [`crate::decide`] is told, never `decide` itself. The test bed's kill
//! table uses them, and so does the reference broker's (built with the
//! `faults` feature, reachable only through its library API, never through
//! its configuration), so the same faults are shown to fail the same
//! scenarios on both servers that call this crate.

use std::collections::BTreeSet;

use crate::{well_formed_resource, Catalog, Exchange, Limits, Party};

/// One rule of the decision broken by its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum InputFault {
    /// The requester is put in the subject token's `aud`.
    AudienceNotChecked,
    /// The audience rule is skipped when the subject token has no `aud`.
    AudienceSkippedWhenAbsent,
    /// The subject token's `may_act` is dropped.
    MayActIgnored,
    /// `may_act` is dropped when no actor token is presented.
    MayActOnlyWithActorToken,
    /// `may_act` is dropped when the actor token is the requester's own: a
    /// server that checks it only against a third-party actor.
    MayActSkippedForOwnActorToken,
    /// The acting party is removed from the subject's `act` chain.
    CircularDelegationAccepted,
    /// Malformed `resource` values are dropped instead of refused.
    ResourceNotValidated,
    /// Unknown `resource` values are dropped instead of refused.
    UnknownResourceIgnored,
    /// Every party holds what any of them holds: the union.
    UnionNotIntersection,
    /// From the second hop on, nobody's permissions narrow the request.
    IntersectionFirstHopOnly,
    /// From the second hop on, the requester's own baseline is not applied
    /// (the user's permissions and the presented token's scope still are).
    BaselineFirstHopOnly,
    /// Without an actor token, the subject's `act` history is dropped: a
    /// delegated token re-exchanged alone comes back as an impersonation.
    ActDroppedWithoutActor,
    /// Without an actor token, only the latest actor of the subject's `act`
    /// is kept (the prior ones are lost).
    ActLatestOnlyWithoutActor,
    /// Any known audience may be requested: the requester's own targets are
    /// not enforced.
    TargetsNotRestricted,
    /// The requester's targets are enforced on the first hop only.
    TargetsRestrictedFirstHopOnly,
    /// No delegation depth limit at all.
    DepthNotLimited,
    /// The depth limit counts the subject's `act` without the new actor: one
    /// actor more than the limit is issued.
    DepthLimitOffByOne,
    /// The limit is one actor lower than the profile declares: the chain at
    /// the declared limit is refused.
    DepthLimitBelowDeclared,
}

impl InputFault {
    /// Every fault.
    pub const ALL: [InputFault; 18] = [
        InputFault::AudienceNotChecked,
        InputFault::AudienceSkippedWhenAbsent,
        InputFault::MayActIgnored,
        InputFault::MayActOnlyWithActorToken,
        InputFault::MayActSkippedForOwnActorToken,
        InputFault::CircularDelegationAccepted,
        InputFault::ResourceNotValidated,
        InputFault::UnknownResourceIgnored,
        InputFault::UnionNotIntersection,
        InputFault::IntersectionFirstHopOnly,
        InputFault::BaselineFirstHopOnly,
        InputFault::ActDroppedWithoutActor,
        InputFault::ActLatestOnlyWithoutActor,
        InputFault::TargetsNotRestricted,
        InputFault::TargetsRestrictedFirstHopOnly,
        InputFault::DepthNotLimited,
        InputFault::DepthLimitOffByOne,
        InputFault::DepthLimitBelowDeclared,
    ];

    /// The kill table's id of the variant (kebab-case).
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            InputFault::AudienceNotChecked => "audience-not-checked",
            InputFault::AudienceSkippedWhenAbsent => "audience-skipped-when-absent",
            InputFault::MayActIgnored => "may-act-ignored",
            InputFault::MayActOnlyWithActorToken => "may-act-only-with-actor-token",
            InputFault::MayActSkippedForOwnActorToken => "may-act-skipped-for-own-actor-token",
            InputFault::CircularDelegationAccepted => "circular-delegation-accepted",
            InputFault::ResourceNotValidated => "resource-not-validated",
            InputFault::UnknownResourceIgnored => "unknown-resource-ignored",
            InputFault::UnionNotIntersection => "union-not-intersection",
            InputFault::IntersectionFirstHopOnly => "intersection-first-hop-only",
            InputFault::BaselineFirstHopOnly => "baseline-first-hop-only",
            InputFault::ActDroppedWithoutActor => "act-dropped-without-actor",
            InputFault::ActLatestOnlyWithoutActor => "act-latest-only-without-actor",
            InputFault::TargetsNotRestricted => "targets-not-restricted",
            InputFault::TargetsRestrictedFirstHopOnly => "targets-restricted-first-hop-only",
            InputFault::DepthNotLimited => "depth-not-limited",
            InputFault::DepthLimitOffByOne => "depth-limit-off-by-one",
            InputFault::DepthLimitBelowDeclared => "depth-limit-below-declared",
        }
    }

    /// The limits a server with this fault decides with.
    #[must_use]
    pub fn limits(self, limits: Limits) -> Limits {
        match self {
            InputFault::DepthNotLimited => Limits { max_depth: usize::MAX, ..limits },
            InputFault::DepthLimitOffByOne => Limits { max_depth: limits.max_depth + 1, ..limits },
            InputFault::DepthLimitBelowDeclared => Limits { max_depth: limits.max_depth - 1, ..limits },
            _ => limits,
        }
    }

    /// Alters `x` as a server with this fault would; `second_hop` is true
    /// when the subject token was exchanged already (not a login's).
    pub fn perturb(self, catalog: &Catalog, x: &mut Exchange, second_hop: bool) {
        let all: BTreeSet<String> = catalog.permissions.iter().cloned().collect();
        // The scope a broken server computes with is what was asked, or what the
        // subject token held: pinned before the parties' permissions are rewritten.
        let pin_wanted = |x: &mut Exchange| {
            if x.scope.is_none() {
                x.scope = Some(x.subject.scope.clone());
            }
        };
        match self {
            InputFault::AudienceNotChecked => x.subject.aud.push(x.requester.client_id.clone()),
            InputFault::AudienceSkippedWhenAbsent if x.subject.aud.is_empty() => {
                x.subject.aud.push(x.requester.client_id.clone());
            }
            InputFault::MayActIgnored => x.subject.may_act = None,
            InputFault::MayActOnlyWithActorToken if x.actor.is_none() => x.subject.may_act = None,
            InputFault::MayActSkippedForOwnActorToken
                if x.actor.as_ref().is_some_and(|a| a.client_id.as_deref() == Some(x.requester.client_id.as_str())) =>
            {
                x.subject.may_act = None;
            }
            InputFault::CircularDelegationAccepted => {
                if let Some(a) =
                    x.actor.as_ref().and_then(|a| a.client_id.as_deref().map(|c| Party::new(a.sub.clone(), Some(c))))
                {
                    x.subject.act.retain(|p| !p.same_as(&a));
                }
            }
            InputFault::ResourceNotValidated => x.resource.retain(|r| well_formed_resource(r)),
            InputFault::UnknownResourceIgnored => {
                x.resource.retain(|r| !well_formed_resource(r) || catalog.resources.contains_key(r));
            }
            InputFault::UnionNotIntersection => {
                pin_wanted(x);
                let union: BTreeSet<String> = x
                    .subject
                    .scope
                    .iter()
                    .cloned()
                    .chain(x.requester.baseline.iter().filter(|b| all.contains(*b)).cloned())
                    .collect();
                x.subject.scope = union.iter().cloned().collect();
                x.user_permissions = Some(union.clone());
                x.requester.baseline = union;
            }
            InputFault::IntersectionFirstHopOnly if second_hop => {
                pin_wanted(x);
                x.subject.scope = all.iter().cloned().collect();
                x.user_permissions = Some(all.clone());
                x.requester.baseline = all;
            }
            InputFault::BaselineFirstHopOnly if second_hop => x.requester.baseline = all,
            InputFault::ActDroppedWithoutActor if x.actor.is_none() => x.subject.act.clear(),
            InputFault::ActLatestOnlyWithoutActor if x.actor.is_none() => x.subject.act.truncate(1),
            InputFault::TargetsNotRestricted => x.requester.targets = catalog.audiences.iter().cloned().collect(),
            InputFault::TargetsRestrictedFirstHopOnly if second_hop => {
                x.requester.targets = catalog.audiences.iter().cloned().collect();
            }
            InputFault::AudienceSkippedWhenAbsent
            | InputFault::MayActOnlyWithActorToken
            | InputFault::MayActSkippedForOwnActorToken
            | InputFault::IntersectionFirstHopOnly
            | InputFault::BaselineFirstHopOnly
            | InputFault::ActDroppedWithoutActor
            | InputFault::ActLatestOnlyWithoutActor
            | InputFault::TargetsRestrictedFirstHopOnly
            | InputFault::DepthNotLimited
            | InputFault::DepthLimitOffByOne
            | InputFault::DepthLimitBelowDeclared => {}
        }
    }
}
