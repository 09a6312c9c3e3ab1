//! Token exchange (RFC 8693) with the agent delegation profile: impersonation
//! and delegation, nested `act`, `may_act` enforcement, the intersection
//! rule, per-hop audience, and `exp`/scope that never grow along the chain.

use std::collections::BTreeSet;

use axum::http::HeaderMap;
use serde_json::{json, Map, Value};

use crate::breakage::Breakage;
use crate::fixture::{self, Client, Kind};
use crate::keys::Invalid;
use crate::server::{authenticate, now, random_id, scope_claim, scope_values, Caller, Form, OAuthError, Server};
use crate::store::Purpose;

/// The grant type (RFC 8693 §2.1).
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Token type identifiers the server accepts and issues (RFC 8693 §3).
pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The longest `act` chain the server issues (agent profile: at least 5).
pub const MAX_DEPTH: usize = 8;

fn invalid_request(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_request", d)
}

fn invalid_target(d: impl Into<String>) -> OAuthError {
    OAuthError::new("invalid_target", d)
}

/// Handles a token-exchange request; the two error-code switches act on
/// the outcome, so they change the code and nothing else.
pub fn exchange(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    exchange_checked(s, headers, form).map_err(|mut e| {
        if e.error == "invalid_request" && s.is(Breakage::InvalidGrantInsteadOfInvalidRequest) {
            e.error = "invalid_grant";
        }
        if e.error == "invalid_target" && s.is(Breakage::InvalidRequestInsteadOfInvalidTarget) {
            e.error = "invalid_request";
        }
        e
    })
}

/// A validated presented token.
struct Presented {
    claims: Value,
    jti: Option<String>,
}

/// Validates a subject or actor token (RFC 8693 §2.1) and checks it is still active.
fn presented(s: &Server, token: &str, what: &str, now: i64) -> Result<Presented, OAuthError> {
    let claims = match s.keys.validate(token, &s.issuer, now, s.broken) {
        Ok(c) => c,
        Err(Invalid::Malformed(_)) if what == "subject_token" && s.is(Breakage::UndecodableSubjectAccepted) => {
            json!({"sub": "anonymous", "exp": now + fixture::LIFETIME_S, "aud": fixture::AUDIENCES})
        }
        Err(e) => return Err(invalid_request(format!("{what}: {e}"))),
    };
    let jti = claims["jti"].as_str().map(str::to_owned);
    if let Some(j) = &jti {
        let st = s.store();
        if st.get(j).is_some() && !st.is_active(j, now, Purpose::Exchange, s.broken) {
            return Err(invalid_request(format!("{what}: revoked, or its session ended")));
        }
    }
    Ok(Presented { claims, jti })
}

fn type_supported(t: &str) -> bool {
    t == ACCESS_TOKEN || t == JWT
}

/// `aud` as a list (RFC 7519 §4.1.3).
pub(crate) fn aud_list(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Permissions in a `scope` claim (a string, or an array from a broken server).
fn permissions_of(claims: &Value) -> BTreeSet<&'static str> {
    let values: Vec<String> = match &claims["scope"] {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    fixture::PERMISSIONS.iter().copied().filter(|p| values.iter().any(|v| v == p)).collect()
}

/// The client an `act` level or a `may_act` names (by `client_id` or `sub`).
fn named_client(v: &Value) -> Option<&'static Client> {
    v["client_id"]
        .as_str()
        .and_then(fixture::client)
        .or_else(|| v["sub"].as_str().and_then(fixture::client_by_sub))
        .or_else(|| v.as_str().and_then(|s| fixture::client(s).or_else(|| fixture::client_by_sub(s))))
}

/// The actors of an `act` chain, outermost (current) first (RFC 8693 §4.1).
fn chain_of(claims: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur = claims.get("act");
    while let Some(a) = cur {
        let mut level = a.clone();
        if let Some(m) = level.as_object_mut() {
            m.remove("act");
        }
        out.push(level);
        cur = a.get("act");
    }
    out
}

/// Builds the nested `act` claim from actors listed outermost first.
fn nest(actors: &[Value]) -> Option<Value> {
    let mut inner: Option<Value> = None;
    for a in actors.iter().rev() {
        let mut level = a.clone();
        if let (Some(m), Some(i)) = (level.as_object_mut(), inner.take()) {
            m.insert("act".into(), i);
        }
        inner = Some(level);
    }
    inner
}

/// The `act` level identifying a client (RFC 8693 §4.1: `sub`, plus `client_id`).
fn actor_level(c: &Client) -> Value {
    json!({"sub": c.sub.unwrap_or(c.client_id), "client_id": c.client_id})
}

#[expect(clippy::too_many_lines, reason = "one request, checked in the order RFC 8693 §2.1 lists its parameters")]
fn exchange_checked(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    // Client authentication (RFC 8693 §2.1 defers to RFC 6749 §3.2.1).
    let caller = authenticate(s, headers, form, s.is(Breakage::ClientSecretNotChecked))?;
    let requester = match caller {
        Caller::Public(c) if !s.is(Breakage::PublicClientMayExchange) => {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!("{} is a public client and may not exchange tokens", c.client_id),
            ))
        }
        c => c.client(),
    };
    if s.store().is_disabled(requester.client_id) && !s.is(Breakage::DisabledClientMayExchange) {
        return Err(OAuthError::new("invalid_client", "client disabled"));
    }
    if requester.kind == Kind::Resource {
        return Err(OAuthError::new("unauthorized_client", "this client may not exchange tokens"));
    }

    // Parameters (RFC 8693 §2.1).
    let subject_token = form.get("subject_token").ok_or_else(|| invalid_request("subject_token is required"))?;
    let subject_type = match form.get("subject_token_type") {
        Some(t) => t,
        None if s.is(Breakage::SubjectTokenTypeDefaulted) => ACCESS_TOKEN,
        None => return Err(invalid_request("subject_token_type is required")),
    };
    let actor_token = form.get("actor_token");
    let actor_type = form.get("actor_token_type");
    match (actor_token, actor_type) {
        (Some(_), None) if !s.is(Breakage::ActorTokenTypeOptional) => {
            return Err(invalid_request("actor_token_type is required with actor_token"))
        }
        (None, Some(_)) if !s.is(Breakage::StrayActorTokenTypeAccepted) => {
            return Err(invalid_request("actor_token_type must not be sent without actor_token"))
        }
        _ => {}
    }
    // Token types (RFC 8693 §3): only JWT access tokens are understood.
    if !type_supported(subject_type) && !s.is(Breakage::SubjectTokenTypeNotChecked) {
        return Err(invalid_request(format!("unsupported subject_token_type {subject_type}")));
    }
    if let Some(t) = actor_type.filter(|_| actor_token.is_some()) {
        if !type_supported(t) {
            return Err(invalid_request(format!("unsupported actor_token_type {t}")));
        }
    }
    let issued_type = match form.get("requested_token_type") {
        None => ACCESS_TOKEN,
        Some(t) if type_supported(t) => t,
        Some(_) if s.is(Breakage::RequestedTokenTypeReplaced) => ACCESS_TOKEN,
        Some(t) => return Err(invalid_request(format!("unsupported requested_token_type {t}"))),
    };

    // The subject and actor tokens (RFC 8693 §2.1: validated per their type).
    let now = now();
    let mut subject = presented(s, subject_token, "subject_token", now)?;
    let mut actor = match actor_token {
        None => None,
        Some(t) => match presented(s, t, "actor_token", now) {
            Ok(p) => Some(p),
            Err(_) if s.is(Breakage::InvalidActorTokenIgnored) => None,
            Err(e) => return Err(e),
        },
    };
    let sub_of = |p: &Presented| p.claims["sub"].as_str().unwrap_or_default().to_owned();
    // The broken variant tells the two tokens apart by content: a client's token as
    // subject with a user's as actor is "corrected" into the user's as subject.
    if let Some(a) = actor.as_mut().filter(|_| s.is(Breakage::SubjectActorSwapAccepted)) {
        if fixture::client_by_sub(&sub_of(&subject)).is_some() && fixture::user_by_sub(&sub_of(a)).is_some() {
            std::mem::swap(&mut subject, a);
        }
    }
    // The requester must be an audience of the subject token (agent profile: no replay),
    // as the server recorded it for the tokens it exchanged.
    let subject_aud = subject
        .jti
        .as_deref()
        .and_then(|j| s.store().audience(j).map(<[String]>::to_vec))
        .unwrap_or_else(|| aud_list(&subject.claims));
    if !subject_aud.iter().any(|a| a == requester.client_id) && !s.is(Breakage::AudienceNotChecked) {
        return Err(invalid_request(format!("{} is not an audience of the subject token", requester.client_id)));
    }
    let actor_client = match &actor {
        None => None,
        Some(a) => Some(
            fixture::client_by_sub(&sub_of(a))
                .filter(|c| c.kind == Kind::Exchanging)
                .ok_or_else(|| invalid_request("actor_token does not identify a client that may act"))?,
        ),
    };

    // may_act (RFC 8693 §4.4): the actor, or without actor token the requester, must be named.
    if let Some(may_act) = subject.claims.get("may_act").filter(|v| !v.is_null()) {
        let acting = actor_client.unwrap_or(requester);
        let enforce =
            !(s.is(Breakage::MayActIgnored) || (s.is(Breakage::MayActOnlyWithActorToken) && actor_client.is_none()));
        if enforce && named_client(may_act).is_none_or(|c| c.client_id != acting.client_id) {
            return Err(invalid_request(format!("may_act of the subject token does not name {}", acting.client_id)));
        }
    }

    // The act chain (RFC 8693 §4.1): the current actor outermost.
    let prior = chain_of(&subject.claims);
    let mut actors: Vec<Value> = prior.clone();
    if let Some(c) = actor_client {
        if prior.iter().filter_map(named_client).any(|p| p.client_id == c.client_id)
            && !s.is(Breakage::CircularDelegationAccepted)
        {
            return Err(invalid_request(format!("circular delegation: {} already acts in this chain", c.client_id)));
        }
        let mut level = actor_level(c);
        if s.is(Breakage::ActWithNonIdentityClaims) {
            let a = actor.as_ref().map(|a| a.claims.clone()).unwrap_or_default();
            level["exp"] = a["exp"].clone();
            level["aud"] = a["aud"].clone();
        }
        if s.is(Breakage::ActReplaced) {
            actors = vec![level];
        } else if s.is(Breakage::ActReversed) {
            actors.push(level);
        } else {
            actors.insert(0, level);
        }
    } else if s.is(Breakage::ActInvented) {
        actors.insert(0, actor_level(requester));
    }
    if actors.len() > MAX_DEPTH {
        return Err(invalid_request(format!("delegation chain deeper than {MAX_DEPTH} actors")));
    }
    if s.is(Breakage::ActHistoryTruncated) {
        actors.truncate(2);
    }
    let hops = subject.jti.as_deref().and_then(|j| s.store().get(j).map(|r| r.depth)).unwrap_or(0) + 1;
    if s.is(Breakage::ChainLimitedToThreeHops) && hops > 3 {
        return Err(invalid_request("a chain of more than three exchanges"));
    }

    // Audience and resource (RFC 8693 §2.1, RFC 8707 §2): the next hop only.
    let mut aud: Vec<String> = Vec::new();
    for a in form.all("audience").into_iter().filter(|a| !a.is_empty()) {
        if !fixture::AUDIENCES.contains(&a) {
            return Err(invalid_target(format!("unknown audience {a}")));
        }
        if !requester.targets.contains(&a) {
            return Err(invalid_target(format!("{} may not obtain tokens for {a}", requester.client_id)));
        }
        aud.push(a.to_owned());
    }
    for r in form.all("resource").into_iter().filter(|r| !r.is_empty()) {
        let well_formed = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
        if !well_formed {
            if s.is(Breakage::ResourceNotValidated) {
                continue;
            }
            return Err(invalid_target(format!("resource {r} is not an absolute URI without fragment")));
        }
        let Some((_, a)) = fixture::RESOURCES.iter().find(|(uri, _)| *uri == r) else {
            if s.is(Breakage::UnknownResourceIgnored) {
                continue;
            }
            return Err(invalid_target(format!("unknown resource {r}")));
        };
        if !requester.targets.contains(a) {
            return Err(invalid_target(format!("{} may not obtain tokens for {r}", requester.client_id)));
        }
        aud.push((*a).to_owned());
    }
    if aud.is_empty() {
        aud = requester.targets.iter().map(|t| (*t).to_owned()).collect();
    }
    if s.is(Breakage::AudienceAccumulates) {
        for a in aud_list(&subject.claims).into_iter().rev() {
            if !aud.contains(&a) {
                aud.insert(0, a);
            }
        }
    }
    aud.dedup();

    // Scope (agent profile): asked ∩ subject token's ∩ user's ∩ requester's baseline.
    let asked = scope_values(form);
    if let Some(bad) = asked.iter().find(|v| {
        !fixture::PERMISSIONS.contains(&v.as_str())
            && ![fixture::MAY_ACT_AGENT, fixture::MAY_ACT_SUB_AGENT, "openid"].contains(&v.as_str())
    }) {
        return Err(OAuthError::new("invalid_scope", format!("unknown scope {bad}")));
    }
    let sub = sub_of(&subject);
    let held = permissions_of(&subject.claims);
    let user: BTreeSet<&str> = match fixture::user_by_sub(&sub) {
        Some(u) => u.permissions.iter().copied().collect(),
        None => held.clone(),
    };
    let baseline: BTreeSet<&str> = requester.baseline.iter().copied().collect();
    let wanted: BTreeSet<&str> = if form.has("scope") {
        fixture::PERMISSIONS.iter().copied().filter(|p| asked.iter().any(|r| r == p)).collect()
    } else {
        held.clone()
    };
    let second_hop =
        fixture::client(subject.claims["azp"].as_str().unwrap_or_default()).is_some_and(|c| c.kind != Kind::Login);
    let perms: BTreeSet<&str> = match s.broken {
        Some(Breakage::UnionNotIntersection) => {
            wanted.iter().copied().filter(|p| held.contains(p) || baseline.contains(p)).collect()
        }
        Some(Breakage::SubjectScopeCopied) => held.clone(),
        Some(Breakage::GrantsNothing) => BTreeSet::new(),
        Some(Breakage::IntersectionFirstHopOnly) if second_hop => wanted.clone(),
        _ => wanted.iter().copied().filter(|p| held.contains(p) && user.contains(p) && baseline.contains(p)).collect(),
    };
    let mut granted: Vec<String> =
        fixture::PERMISSIONS.iter().filter(|p| perms.contains(*p)).map(|p| (*p).to_owned()).collect();
    let mut may_act = None;
    if asked.iter().any(|r| r == fixture::MAY_ACT_SUB_AGENT) && baseline.contains(fixture::MAY_ACT_SUB_AGENT) {
        granted.push(fixture::MAY_ACT_SUB_AGENT.to_owned());
        may_act = fixture::client("sub-agent").map(actor_level);
    }

    // Lifetime: never past the subject token's (agent profile, monotonic chain).
    let subject_exp = subject.claims["exp"].as_i64().unwrap_or(now);
    let exp = if s.is(Breakage::ExpExtended) { subject_exp + 600 } else { subject_exp.min(now + requester.lifetime_s) };

    let jti = random_id(22);
    let sid = subject.claims["sid"].as_str().map(str::to_owned);
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(s.issuer));
    let token_sub = if s.is(Breakage::SubjectReplacedByClient) {
        requester.sub.unwrap_or(requester.client_id).to_owned()
    } else {
        sub
    };
    claims.insert("sub".into(), json!(token_sub));
    if !s.is(Breakage::AudienceOnlyServerSide) {
        claims.insert("aud".into(), json!(aud));
    }
    claims.insert("azp".into(), json!(requester.client_id));
    claims.insert("client_id".into(), json!(requester.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(exp));
    claims.insert("jti".into(), json!(jti));
    if let Some(sid) = &sid {
        claims.insert("sid".into(), json!(sid));
    }
    if let Some(u) = subject.claims.get("preferred_username") {
        claims.insert("preferred_username".into(), u.clone());
    }
    claims.insert("scope".into(), scope_claim(s, &granted));
    if s.is(Breakage::ActNotAnObject) && actor_client.is_some() {
        claims.insert("act".into(), json!(actor_client.map(|c| c.client_id)));
    } else if let Some(act) = nest(&actors) {
        claims.insert("act".into(), act);
    }
    if let Some(m) = may_act {
        claims.insert("may_act".into(), m);
    }
    let claims = Value::Object(claims);
    s.store().record(&jti, subject.jti.clone(), sid, requester.client_id, exp);
    s.store().set_audience(&jti, aud);

    // The response (RFC 8693 §2.2.1).
    let mut body = json!({
        "access_token": s.keys.sign(&claims),
        "issued_token_type": issued_type,
        "token_type": if s.is(Breakage::NoTokenType) { Value::Null } else { Value::from("Bearer") },
        "expires_in": (exp - now).max(0),
        "scope": granted.join(" "),
    });
    let m = body.as_object_mut().expect("a JSON object");
    if s.is(Breakage::NoIssuedTokenType) {
        m.remove("issued_token_type");
    }
    if s.is(Breakage::NoExpiresIn) {
        m.remove("expires_in");
    }
    if s.is(Breakage::ScopeNotReported) {
        m.remove("scope");
    }
    Ok(body)
}
