//! The token-exchange decision of RFC 8693 with the agent delegation profile,
//! as a pure function: [`decide`] takes what a server knows once it has
//! authenticated the requester and validated the presented tokens, and
//! returns the claims to issue or the reason to refuse, with its RFC error
//! code. No I/O, no clock, no HTTP: the caller reads the request, verifies
//! signatures (`fourleg_core::jose`), checks revocation, and turns the
//! [`Grant`] into a signed token.
//!
//! The test bed (`fourleg-testbed`) decides with it, its broken variants
//! being perturbations of the inputs or outputs, so the kill table that
//! proves the suite also proves this crate; the reference broker decides
//! with it too.
//!
//! The rules, in the order they are checked by default (the first that
//! fails decides the error; [`Limits::order`] changes the order of the
//! groups, [`Check`]):
//!
//! 1. The requester is an audience of the subject token (agent profile, no
//!    replay; RFC 8693 §2.1 "validated per its type").
//! 2. An actor token identifies a client that may act (RFC 8693 §2.1).
//! 3. `may_act` of the subject token, when present, names the acting party:
//!    the actor, or without actor token the requester (RFC 8693 §4.4).
//! 4. The actor is not already in the `act` chain (agent profile: no loops).
//!    Without an actor token, a subject whose `may_act` names the requester
//!    makes the requester the actor recorded in `act` (agent profile: a
//!    `may_act` subject is never silently impersonated).
//! 5. The chain, with the new actor outermost, is at most
//!    [`Limits::max_depth`] actors deep (RFC 8693 §4.1 nests; the profile bounds it).
//! 6. Each requested `audience` is known and allowed for the requester; each
//!    `resource` is an absolute URI without fragment, known, and allowed
//!    (RFC 8693 §2.1, RFC 8707 §2): `invalid_target` (RFC 8693 §2.2.2).
//!    Without either, the requester's own targets; never the previous hop's.
//! 7. Requested scope values are known (RFC 6749 §5.2 `invalid_scope`); the
//!    permissions granted are requested ∩ subject token's ∩ user's ∩
//!    requester's baseline (agent profile: the intersection, every hop).
//! 8. `exp` is never past the subject token's (agent profile: monotonic).
//! 9. `sub` stays the subject's; `act` nests the new actor outermost over the
//!    subject's chain (RFC 8693 §4.1); impersonation adds no `act` (§1.1).
//!    The subject's `may_act` is not carried into the issued token: it
//!    authorized this exchange, not the next one (agent profile).
//!
//! Every refusal is `invalid_request` (RFC 8693 §2.2.2: the subject or actor
//! token is invalid for this request) except audience and resource
//! (`invalid_target`) and unknown scope (`invalid_scope`).

#[cfg(feature = "faults")]
pub mod faults;

use std::collections::{BTreeMap, BTreeSet};

use fourleg_core::oauth::ErrorCode;
use serde_json::{json, Value};

/// The identity of a party in an `act` chain or a `may_act` claim
/// (RFC 8693 §4.1: `sub`, here with `client_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub sub: String,
    pub client_id: Option<String>,
}

impl Party {
    #[must_use]
    pub fn new(sub: impl Into<String>, client_id: Option<&str>) -> Self {
        Self { sub: sub.into(), client_id: client_id.map(str::to_owned) }
    }

    /// Whether both name the same party: the same `sub`, or the same
    /// `client_id` when both have one.
    #[must_use]
    pub fn same_as(&self, other: &Party) -> bool {
        self.sub == other.sub || (self.client_id.is_some() && self.client_id == other.client_id)
    }

    /// The `act` level (RFC 8693 §4.1): identity claims only.
    #[must_use]
    pub fn to_claim(&self) -> Value {
        match &self.client_id {
            Some(c) => json!({"sub": self.sub, "client_id": c}),
            None => json!({"sub": self.sub}),
        }
    }
}

/// A `may_act` claim (RFC 8693 §4.4): the members that identify who may act.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MayAct {
    pub sub: Option<String>,
    pub client_id: Option<String>,
}

impl MayAct {
    /// Whether it names `party`: it names someone, and every member it has
    /// matches exactly (a `client_id` alone does not stand for any `sub`).
    #[must_use]
    pub fn names(&self, party: &Party) -> bool {
        (self.sub.is_some() || self.client_id.is_some())
            && self.sub.as_ref().is_none_or(|s| *s == party.sub)
            && self.client_id.as_ref().is_none_or(|c| Some(c) == party.client_id.as_ref())
    }
}

/// The validated subject token (signature, issuer, expiry and revocation
/// already checked by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub sub: String,
    /// Its audience, as the issuer knows it (RFC 7519 §4.1.3).
    pub aud: Vec<String>,
    /// Its `scope` values (RFC 8693 §4.2).
    pub scope: Vec<String>,
    pub exp: i64,
    pub may_act: Option<MayAct>,
    /// Its `act` chain, outermost (latest) actor first.
    pub act: Vec<Party>,
}

/// The authenticated client making the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub client_id: String,
    /// The `sub` of its own tokens (its actor identity).
    pub sub: String,
    /// Scope values it may ever obtain.
    pub baseline: BTreeSet<String>,
    /// Audiences it may obtain tokens for; the default audience too.
    pub targets: Vec<String>,
    /// Lifetime of the tokens issued to it, in seconds.
    pub lifetime_s: i64,
}

impl Requester {
    /// The requester as a party of the chain.
    #[must_use]
    pub fn party(&self) -> Party {
        Party::new(self.sub.clone(), Some(&self.client_id))
    }
}

/// The validated actor token, resolved to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub sub: String,
    /// The client it identifies, if that client may act (`None`: the actor
    /// token names no such client and is refused).
    pub client_id: Option<String>,
}

/// What the server issues for: known audiences, resource indicators, scope values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    pub audiences: BTreeSet<String>,
    /// Resource indicators (RFC 8707) and the audience each stands for.
    pub resources: BTreeMap<String, String>,
    /// Scope values that carry permissions, in the order they are issued.
    pub permissions: Vec<String>,
    /// Other scope values the server knows, which this decision never grants
    /// (`openid`, scopes the caller handles itself).
    pub other_scopes: BTreeSet<String>,
}

/// Limits of the profile, and the order the refusals are checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The deepest `act` chain issued (agent profile: at least 5).
    pub max_depth: usize,
    /// The order of the groups of checks; the first that refuses decides the
    /// error. A conformant decision is the same in every order for a request
    /// that breaks one rule; the test bed runs the other orders to prove the
    /// suite's attacks are isolated (a scenario must catch its defect
    /// whatever order a server evaluates its rules in).
    pub order: [Check; 4],
}

/// The agent profile's default: 8 actors.
pub const MAX_DEPTH: usize = 8;

impl Default for Limits {
    fn default() -> Self {
        Self { max_depth: MAX_DEPTH, order: Check::DOCUMENTED }
    }
}

/// A group of the decision's refusals (see the crate documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// Rule 1: the requester is an audience of the subject token.
    Audience,
    /// Rules 2–5: the actor, `may_act`, no loops, the depth limit.
    Actor,
    /// Rule 6: audience and resource.
    Targets,
    /// Rule 7: known scope values.
    Scope,
}

impl Check {
    /// The order of the crate documentation.
    pub const DOCUMENTED: [Check; 4] = [Check::Audience, Check::Actor, Check::Targets, Check::Scope];
    /// The same checks, last first.
    pub const REVERSED: [Check; 4] = [Check::Scope, Check::Targets, Check::Actor, Check::Audience];
}

/// One token-exchange request, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub requester: Requester,
    pub subject: Subject,
    pub actor: Option<Actor>,
    /// `audience` parameters (RFC 8693 §2.1), empty ones left out.
    pub audience: Vec<String>,
    /// `resource` parameters (RFC 8693 §2.1, RFC 8707 §2), empty ones left out.
    pub resource: Vec<String>,
    /// `scope` values, `None` when the parameter is absent (then the subject
    /// token's scope is what is asked for).
    pub scope: Option<Vec<String>>,
    /// The user's permissions, when the subject is a user the server knows.
    pub user_permissions: Option<BTreeSet<String>>,
    /// Seconds since the epoch, read by the caller.
    pub now: i64,
}

/// What to issue. The caller adds `iss`, `iat`, `jti` and its own claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub sub: String,
    /// The next hop only (RFC 8707 §2).
    pub aud: Vec<String>,
    /// Granted permissions, in [`Catalog::permissions`] order.
    pub scope: Vec<String>,
    pub exp: i64,
    /// The chain, outermost (current) actor first; empty for impersonation.
    pub act: Vec<Party>,
}

impl Grant {
    /// The nested `act` claim (RFC 8693 §4.1), `None` without actors.
    #[must_use]
    pub fn act_claim(&self) -> Option<Value> {
        nest(&self.act)
    }

    /// `expires_in` (RFC 6749 §5.1) at `now`.
    #[must_use]
    pub fn expires_in(&self, now: i64) -> i64 {
        (self.exp - now).max(0)
    }
}

/// Nests actors listed outermost first into an `act` claim (RFC 8693 §4.1).
#[must_use]
pub fn nest(actors: &[Party]) -> Option<Value> {
    actors.iter().rev().fold(None, |inner, a| {
        let mut level = a.to_claim();
        if let Some(i) = inner {
            level["act"] = i;
        }
        Some(level)
    })
}

/// Why an exchange is refused; [`Refusal::code`] is the `error` to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{requester} is not an audience of the subject token")]
    NotAnAudience { requester: String },
    #[error("actor_token does not identify a client that may act")]
    ActorMayNotAct { sub: String },
    #[error("may_act of the subject token does not name {acting}")]
    MayActDoesNotName { acting: String },
    #[error("circular delegation: {actor} already acts in this chain")]
    Circular { actor: String },
    #[error("delegation chain deeper than {max} actors")]
    TooDeep { max: usize },
    #[error("unknown audience {0}")]
    UnknownAudience(String),
    #[error("{client} may not obtain tokens for {target}")]
    TargetNotAllowed { client: String, target: String },
    #[error("resource {0} is not an absolute URI without fragment")]
    MalformedResource(String),
    #[error("unknown resource {0}")]
    UnknownResource(String),
    #[error("unknown scope {0}")]
    UnknownScope(String),
}

impl Refusal {
    /// The `error` code (RFC 8693 §2.2.2, RFC 6749 §5.2).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::NotAnAudience { .. }
            | Refusal::ActorMayNotAct { .. }
            | Refusal::MayActDoesNotName { .. }
            | Refusal::Circular { .. }
            | Refusal::TooDeep { .. } => ErrorCode::InvalidRequest,
            Refusal::UnknownAudience(_)
            | Refusal::TargetNotAllowed { .. }
            | Refusal::MalformedResource(_)
            | Refusal::UnknownResource(_) => ErrorCode::InvalidTarget,
            Refusal::UnknownScope(_) => ErrorCode::InvalidScope,
        }
    }
}

/// Whether `r` is an absolute URI without fragment (RFC 8707 §2).
#[must_use]
pub fn well_formed_resource(r: &str) -> bool {
    url::Url::parse(r).is_ok_and(|u| u.fragment().is_none())
}

/// The decision. See the crate documentation for the rules; the groups of
/// refusals are checked in `limits.order` (a group left out is checked last).
pub fn decide(catalog: &Catalog, limits: Limits, x: &Exchange) -> Result<Grant, Refusal> {
    let (mut audience_checked, mut act, mut aud, mut scope) = (false, None, None, None);
    for check in limits.order {
        match check {
            Check::Audience => {
                requester_is_audience(x)?;
                audience_checked = true;
            }
            Check::Actor => act = Some(chain(limits, x)?),
            Check::Targets => aud = Some(targets(catalog, x)?),
            Check::Scope => scope = Some(granted_scope(catalog, x)?),
        }
    }
    if !audience_checked {
        requester_is_audience(x)?;
    }
    let act = match act {
        Some(a) => a,
        None => chain(limits, x)?,
    };
    let aud = match aud {
        Some(a) => a,
        None => targets(catalog, x)?,
    };
    let scope = match scope {
        Some(s) => s,
        None => granted_scope(catalog, x)?,
    };

    // 8. Lifetime: never past the subject token's.
    let exp = x.subject.exp.min(x.now.saturating_add(x.requester.lifetime_s));

    Ok(Grant { sub: x.subject.sub.clone(), aud, scope, exp, act })
}

/// 1. The requester is an audience of the subject token.
fn requester_is_audience(x: &Exchange) -> Result<(), Refusal> {
    if x.subject.aud.contains(&x.requester.client_id) {
        Ok(())
    } else {
        Err(Refusal::NotAnAudience { requester: x.requester.client_id.clone() })
    }
}

/// 2–5. The actor, `may_act`, no loops, bounded depth: the issued `act`
/// chain, outermost first.
fn chain(limits: Limits, x: &Exchange) -> Result<Vec<Party>, Refusal> {
    let requester = &x.requester;
    let subject = &x.subject;

    // 2. The actor is a client that may act.
    let actor = match &x.actor {
        None => None,
        Some(a) => match &a.client_id {
            Some(c) => Some(Party::new(a.sub.clone(), Some(c))),
            None => return Err(Refusal::ActorMayNotAct { sub: a.sub.clone() }),
        },
    };

    // 3. may_act names the acting party.
    let acting = actor.clone().unwrap_or_else(|| requester.party());
    if let Some(m) = &subject.may_act {
        if !m.names(&acting) {
            let name = acting.client_id.clone().unwrap_or_else(|| acting.sub.clone());
            return Err(Refusal::MayActDoesNotName { acting: name });
        }
    }

    // 4, 5. The chain: no loops, bounded depth. The party recorded as acting
    // is the actor token's; without one, when the subject's may_act named the
    // requester (checked above), the requester itself: may_act made it the
    // authorized actor (§4.4), and a token without act would hide that it
    // acts (agent profile: no silent impersonation of a may_act subject).
    let recorded = actor.or_else(|| subject.may_act.as_ref().map(|_| requester.party()));
    let mut act = subject.act.clone();
    if let Some(a) = &recorded {
        if act.iter().any(|p| p.same_as(a)) {
            return Err(Refusal::Circular { actor: a.client_id.clone().unwrap_or_else(|| a.sub.clone()) });
        }
        act.insert(0, a.clone());
    }
    if act.len() > limits.max_depth {
        return Err(Refusal::TooDeep { max: limits.max_depth });
    }
    Ok(act)
}

/// 6. Audience and resource: the next hop only.
fn targets(catalog: &Catalog, x: &Exchange) -> Result<Vec<String>, Refusal> {
    let requester = &x.requester;
    let allowed = |target: &str| requester.targets.iter().any(|t| t == target);
    let not_allowed =
        |target: &str| Refusal::TargetNotAllowed { client: requester.client_id.clone(), target: target.to_owned() };
    let mut aud: Vec<String> = Vec::new();
    for a in &x.audience {
        if !catalog.audiences.contains(a) {
            return Err(Refusal::UnknownAudience(a.clone()));
        }
        if !allowed(a) {
            return Err(not_allowed(a));
        }
        aud.push(a.clone());
    }
    for r in &x.resource {
        if !well_formed_resource(r) {
            return Err(Refusal::MalformedResource(r.clone()));
        }
        let a = catalog.resources.get(r).ok_or_else(|| Refusal::UnknownResource(r.clone()))?;
        if !allowed(a) {
            return Err(not_allowed(r));
        }
        aud.push(a.clone());
    }
    if aud.is_empty() {
        aud.clone_from(&requester.targets);
    }
    aud.dedup();
    Ok(aud)
}

/// 7. Scope: known values; requested ∩ subject's ∩ user's ∩ baseline.
fn granted_scope(catalog: &Catalog, x: &Exchange) -> Result<Vec<String>, Refusal> {
    if let Some(bad) = x
        .scope
        .iter()
        .flatten()
        .find(|v| !catalog.permissions.iter().any(|p| p == *v) && !catalog.other_scopes.contains(v.as_str()))
    {
        return Err(Refusal::UnknownScope(bad.clone()));
    }
    let subject = &x.subject;
    let held = |p: &String| subject.scope.contains(p);
    let wanted = |p: &String| x.scope.as_ref().map_or_else(|| held(p), |s| s.contains(p));
    let user = |p: &String| x.user_permissions.as_ref().map_or_else(|| held(p), |u| u.contains(p));
    Ok(catalog
        .permissions
        .iter()
        .filter(|p| wanted(p) && held(p) && user(p) && x.requester.baseline.contains(p.as_str()))
        .cloned()
        .collect())
}

#[cfg(test)]
mod tests;
