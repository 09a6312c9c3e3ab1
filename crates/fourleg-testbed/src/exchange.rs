//! Token exchange (RFC 8693): the request is read and its tokens validated
//! here; the decision (requester in `aud`, `may_act`, circular delegation,
//! depth, per-hop audience and resource, the intersection, `exp`, nested
//! `act`) is [`fourleg_policy::decide`], the same pure function the
//! reference broker uses.
//!
//! Each broken variant that concerns the decision is a perturbation around
//! it: the inputs altered before (a check made to pass: `may_act` dropped,
//! the requester added to `aud`, the union given as every party's
//! permissions), or the outputs altered after (`act` replaced, `exp`
//! extended, scope copied). The policy itself has no switch, so the kill
//! table that catches every variant also proves the policy.

use std::sync::OnceLock;

use axum::http::HeaderMap;
use fourleg_core::oauth::{ErrorCode as E, TokenType};
use fourleg_policy::{self as policy, Actor, Catalog, Exchange, Limits, MayAct, Party, Requester, Subject};
use serde_json::{json, Map, Value};

use crate::breakage::Breakage;
use crate::dpop;
use crate::fixture::{self, Client, Kind};
use crate::keys::Invalid;
use crate::server::{authenticate, now, random_id, scope_claim, scope_values, Caller, Form, OAuthError, Server};
use crate::store::Purpose;

/// The longest `act` chain the server issues (agent profile: at least 5).
pub const MAX_DEPTH: usize = policy::MAX_DEPTH;

fn invalid_request(d: impl Into<String>) -> OAuthError {
    OAuthError::new(E::InvalidRequest, d)
}

/// What the test bed issues for (contract §1, §4, §5), as the policy reads it.
fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| Catalog {
        audiences: fixture::AUDIENCES.iter().map(|a| (*a).to_owned()).collect(),
        resources: fixture::RESOURCES.iter().map(|(r, a)| ((*r).to_owned(), (*a).to_owned())).collect(),
        permissions: fixture::PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        other_scopes: [fixture::MAY_ACT_AGENT, fixture::MAY_ACT_SUB_AGENT, "openid"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    })
}

/// Handles a token-exchange request; the two error-code switches act on
/// the outcome, so they change the code and nothing else.
pub fn exchange(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    exchange_checked(s, headers, form).map_err(|mut e| {
        if e.error == E::InvalidRequest && s.is(Breakage::InvalidGrantInsteadOfInvalidRequest) {
            e.error = E::InvalidGrant;
        }
        if e.error == E::InvalidTarget && s.is(Breakage::InvalidRequestInsteadOfInvalidTarget) {
            e.error = E::InvalidRequest;
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

/// Only JWT access tokens are understood (RFC 8693 §3).
fn type_supported(t: &TokenType) -> bool {
    matches!(t, TokenType::AccessToken | TokenType::Jwt)
}

/// `aud` as a list (RFC 7519 §4.1.3).
pub(crate) fn aud_list(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// Permissions in a `scope` claim (a string, or an array from a broken server), in catalog order.
fn permissions_of(claims: &Value) -> Vec<String> {
    let values: Vec<String> = match &claims["scope"] {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    fixture::PERMISSIONS.iter().filter(|p| values.iter().any(|v| v == *p)).map(|p| (*p).to_owned()).collect()
}

/// An `act` level or `may_act` member as a string.
fn member(v: &Value, name: &str) -> Option<String> {
    v[name].as_str().map(str::to_owned)
}

/// The actors of an `act` chain, outermost (current) first (RFC 8693 §4.1).
/// A level that is a bare string (as the act-not-an-object variant issues)
/// is the client it names, so a loop through it is still seen.
fn chain_of(claims: &Value) -> Vec<Party> {
    let mut out = Vec::new();
    let mut cur = claims.get("act");
    while let Some(a) = cur {
        out.push(match a.as_str() {
            Some(name) => fixture::client(name)
                .or_else(|| fixture::client_by_sub(name))
                .map_or_else(|| Party::new(name, None), party_of),
            None => Party { sub: member(a, "sub").unwrap_or_default(), client_id: member(a, "client_id") },
        });
        cur = a.get("act");
    }
    out
}

/// `may_act` (RFC 8693 §4.4): a JSON object; anything else names nobody.
fn may_act_of(claims: &Value) -> Option<MayAct> {
    let m = claims.get("may_act").filter(|v| !v.is_null())?;
    Some(MayAct { sub: member(m, "sub"), client_id: member(m, "client_id") })
}

/// The `act` level identifying a client (RFC 8693 §4.1: `sub`, plus `client_id`).
fn party_of(c: &Client) -> Party {
    Party::new(c.sub.unwrap_or(c.client_id), Some(c.client_id))
}

fn requester_of(c: &Client) -> Requester {
    Requester {
        client_id: c.client_id.to_owned(),
        sub: c.sub.unwrap_or(c.client_id).to_owned(),
        baseline: c.baseline.iter().map(|b| (*b).to_owned()).collect(),
        targets: c.targets.iter().map(|t| (*t).to_owned()).collect(),
        lifetime_s: c.lifetime_s,
    }
}

#[expect(clippy::too_many_lines, reason = "one request, checked in the order RFC 8693 §2.1 lists its parameters")]
fn exchange_checked(s: &Server, headers: &HeaderMap, form: &Form) -> Result<Value, OAuthError> {
    // Client authentication (RFC 8693 §2.1 defers to RFC 6749 §3.2.1).
    let caller = authenticate(s, headers, form, s.is(Breakage::ClientSecretNotChecked))?;
    let requester = match caller {
        Caller::Public(c) if !s.is(Breakage::PublicClientMayExchange) => {
            return Err(OAuthError::new(
                E::UnauthorizedClient,
                format!("{} is a public client and may not exchange tokens", c.client_id),
            ))
        }
        c => c.client(),
    };
    if s.store().is_disabled(requester.client_id) && !s.is(Breakage::DisabledClientMayExchange) {
        return Err(OAuthError::new(E::InvalidClient, "client disabled"));
    }
    if requester.kind == Kind::Resource {
        return Err(OAuthError::new(E::UnauthorizedClient, "this client may not exchange tokens"));
    }
    // DPoP (RFC 9449 §5: proofs apply to every grant type).
    let proof_key = dpop::check(s, headers, &format!("{}/token", s.issuer), dpop::Grant::Exchange)?;

    // Parameters (RFC 8693 §2.1).
    let subject_token = form.get("subject_token").ok_or_else(|| invalid_request("subject_token is required"))?;
    let subject_type = match form.get("subject_token_type") {
        Some(t) => TokenType::from(t),
        None if s.is(Breakage::SubjectTokenTypeDefaulted) => TokenType::AccessToken,
        None => return Err(invalid_request("subject_token_type is required")),
    };
    let actor_token = form.get("actor_token");
    let actor_type = form.get("actor_token_type").map(TokenType::from);
    match (actor_token, &actor_type) {
        (Some(_), None) if !s.is(Breakage::ActorTokenTypeOptional) => {
            return Err(invalid_request("actor_token_type is required with actor_token"))
        }
        (None, Some(_)) if !s.is(Breakage::StrayActorTokenTypeAccepted) => {
            return Err(invalid_request("actor_token_type must not be sent without actor_token"))
        }
        _ => {}
    }
    // Token types (RFC 8693 §3): only JWT access tokens are understood.
    if !type_supported(&subject_type) && !s.is(Breakage::SubjectTokenTypeNotChecked) {
        return Err(invalid_request(format!("unsupported subject_token_type {subject_type}")));
    }
    if let Some(t) = actor_type.as_ref().filter(|_| actor_token.is_some()) {
        if !type_supported(t) {
            return Err(invalid_request(format!("unsupported actor_token_type {t}")));
        }
    }
    let issued_type = match form.get("requested_token_type").map(TokenType::from) {
        None => TokenType::AccessToken,
        Some(t) if type_supported(&t) => t,
        Some(_) if s.is(Breakage::RequestedTokenTypeReplaced) => TokenType::AccessToken,
        Some(TokenType::RefreshToken)
            if s.is(Breakage::RefreshTokenByExchange) || s.is(Breakage::ExchangedRefreshSurvivesRevocation) =>
        {
            TokenType::RefreshToken
        }
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

    // The policy's inputs. The subject's audience is the one the server recorded
    // for the tokens it exchanged, which the token itself may not carry.
    let sub = sub_of(&subject);
    let held = permissions_of(&subject.claims);
    let subject_exp = subject.claims["exp"].as_i64().unwrap_or(now);
    let prior = chain_of(&subject.claims);
    let actor_party = actor.as_ref().map(|a| Actor {
        sub: sub_of(a),
        client_id: fixture::client_by_sub(&sub_of(a))
            .filter(|c| c.kind == Kind::Exchanging)
            .map(|c| c.client_id.to_owned()),
    });
    let wide_for_resource = s.is(Breakage::ResourceDownstreamAudienceWide)
        && requester.client_id == "mcp-server"
        && form.all("audience").contains(&"mcp-server");
    let mut x = Exchange {
        requester: requester_of(requester),
        subject: Subject {
            sub: sub.clone(),
            aud: subject
                .jti
                .as_deref()
                .and_then(|j| s.store().audience(j).map(<[String]>::to_vec))
                .unwrap_or_else(|| aud_list(&subject.claims)),
            scope: held.clone(),
            exp: subject_exp,
            may_act: may_act_of(&subject.claims),
            act: prior.clone(),
        },
        actor: actor_party.clone(),
        audience: form
            .all("audience")
            .into_iter()
            .filter(|a| !a.is_empty())
            // The resource's near miss: it asks for itself too, which is
            // granted below, outside the policy.
            .filter(|a| !(wide_for_resource && *a == "mcp-server"))
            .map(str::to_owned)
            .collect(),
        resource: form.all("resource").into_iter().filter(|r| !r.is_empty()).map(str::to_owned).collect(),
        scope: form.has("scope").then(|| scope_values(form)),
        user_permissions: fixture::user_by_sub(&sub).map(|u| u.permissions.iter().map(|p| (*p).to_owned()).collect()),
        now,
    };
    // A client's own client-credentials token (issued to it by this server,
    // from no other token and no login, with no actor now): as Keycloak
    // does, it names its requester. An agent exchanges its own token this
    // way, the control of the registered-client scenario.
    let first_of_requester = subject
        .jti
        .as_deref()
        .and_then(|j| s.store().get(j).cloned())
        .is_some_and(|r| r.parent.is_none() && r.sid.is_none() && r.client_id == requester.client_id);
    let own = actor.is_none()
        && prior.is_empty()
        && first_of_requester
        && sub == requester.sub.unwrap_or(requester.client_id);
    if own && !x.subject.aud.iter().any(|a| a == requester.client_id) {
        x.subject.aud.push(requester.client_id.to_owned());
    }
    let hops = subject.jti.as_deref().and_then(|j| s.store().get(j).map(|r| r.depth)).unwrap_or(0) + 1;
    let second_hop =
        fixture::client(subject.claims["azp"].as_str().unwrap_or_default()).is_some_and(|c| c.kind != Kind::Login);
    perturb_inputs(s.broken, &mut x, second_hop);

    // The decision (RFC 8693 §2.1–§2.2.2, §4.1, §4.4; RFC 8707 §2; agent profile).
    let limits = Limits { order: s.order, ..Limits::default() };
    let limits = s.broken.and_then(Breakage::input_fault).map_or(limits, |f| f.limits(limits));
    let decided = policy::decide(catalog(), limits, &x);
    // The three-hop variant refuses where the policy would have gone on to audience and scope.
    if s.is(Breakage::ChainLimitedToThreeHops)
        && hops > 3
        && decided.as_ref().err().is_none_or(|r| r.code() != E::InvalidRequest)
    {
        return Err(invalid_request("a chain of more than three exchanges"));
    }
    let mut grant = decided.map_err(|r| OAuthError::new(r.code(), r.to_string()))?;

    // Output perturbations: the chain.
    if let Some(a) = x.actor.as_ref().and_then(|a| a.client_id.as_deref().map(|c| Party::new(a.sub.clone(), Some(c)))) {
        match s.broken {
            Some(Breakage::ActReplaced) => grant.act = vec![a],
            Some(Breakage::ActReversed) => grant.act = [prior.clone(), vec![a]].concat(),
            // The policy saw the chain without the actor's earlier levels; the token keeps them.
            Some(Breakage::CircularDelegationAccepted) => grant.act = [vec![a], prior.clone()].concat(),
            _ => {}
        }
    } else if s.is(Breakage::ActInvented) {
        grant.act.insert(0, party_of(requester));
    }
    if s.is(Breakage::ActHistoryTruncated) {
        grant.act.truncate(2);
    }
    // The requester the policy recorded as the actor of a may_act subject is dropped.
    if s.is(Breakage::MayActSubjectImpersonated)
        && x.actor.is_none()
        && x.subject.may_act.is_some()
        && !grant.act.is_empty()
    {
        grant.act.remove(0);
    }
    // Audience, scope, lifetime, subject.
    if s.is(Breakage::AudienceAccumulates) {
        for a in aud_list(&subject.claims).into_iter().rev() {
            if !grant.aud.contains(&a) {
                grant.aud.insert(0, a);
            }
        }
        grant.aud.dedup();
    }
    if wide_for_resource {
        grant.aud.push("mcp-server".to_owned());
    }
    match s.broken {
        Some(Breakage::SubjectScopeCopied) => grant.scope.clone_from(&held),
        Some(Breakage::GrantsNothing) => grant.scope.clear(),
        Some(Breakage::ExpExtended) => grant.exp = subject_exp + 600,
        Some(Breakage::ExpExtendedSlightly) => grant.exp = subject_exp + 2,
        Some(Breakage::SubjectReplacedByClient) => {
            requester.sub.unwrap_or(requester.client_id).clone_into(&mut grant.sub);
        }
        _ => {}
    }

    // The contract's delegation scope (§5): granted to a requester whose baseline has
    // it, and the token names the sub-agent in may_act. Outside the policy: it mints
    // a right, it does not narrow one.
    let mut granted = grant.scope.clone();
    let mut may_act = None;
    let asked = scope_values(form);
    if asked.iter().any(|r| r == fixture::MAY_ACT_SUB_AGENT) && requester.baseline.contains(&fixture::MAY_ACT_SUB_AGENT)
    {
        granted.push(fixture::MAY_ACT_SUB_AGENT.to_owned());
        may_act = fixture::client("sub-agent").map(|c| party_of(c).to_claim());
    }

    let jti = random_id(22);
    let sid = subject.claims["sid"].as_str().map(str::to_owned);
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(s.issuer));
    claims.insert("sub".into(), json!(grant.sub));
    if !s.is(Breakage::AudienceOnlyServerSide) {
        claims.insert("aud".into(), json!(grant.aud));
    }
    claims.insert("azp".into(), json!(requester.client_id));
    claims.insert("client_id".into(), json!(requester.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(grant.exp));
    claims.insert("jti".into(), json!(jti));
    if let Some(sid) = &sid {
        claims.insert("sid".into(), json!(sid));
    }
    if let Some(u) = subject.claims.get("preferred_username") {
        claims.insert("preferred_username".into(), u.clone());
    }
    claims.insert("scope".into(), scope_claim(s, &granted));
    let acting_client = actor_party.as_ref().and_then(|a| a.client_id.clone());
    if s.is(Breakage::ActNotAnObject) && acting_client.is_some() {
        claims.insert("act".into(), json!(acting_client));
    } else if let Some(mut act) = grant.act_claim() {
        if s.is(Breakage::ActWithNonIdentityClaims) && acting_client.is_some() {
            let a = actor.as_ref().map(|a| a.claims.clone()).unwrap_or_default();
            act["exp"] = a["exp"].clone();
            act["aud"] = a["aud"].clone();
        }
        claims.insert("act".into(), act);
    }
    if let Some(m) = may_act {
        claims.insert("may_act".into(), m);
    } else if let Some(m) = subject.claims.get("may_act").filter(|_| s.is(Breakage::MayActCopied)) {
        claims.insert("may_act".into(), m.clone());
    }
    let subject_key = subject.claims.pointer("/cnf/jkt").and_then(Value::as_str);
    let token_type = dpop::bind(s, &mut claims, proof_key.as_deref(), subject_key, dpop::Grant::Exchange);
    let claims = Value::Object(claims);
    s.store().record(&jti, subject.jti.clone(), sid.clone(), requester.client_id, grant.exp);
    s.store().set_audience(&jti, grant.aud.clone());
    if actor_token.is_some() {
        s.store().mark_delegated(&jti);
    }

    // The response (RFC 8693 §2.2.1).
    let mut body = json!({
        "access_token": s.keys.sign(&claims),
        "issued_token_type": issued_type,
        "token_type": if s.is(Breakage::NoTokenType) { Value::Null } else { Value::from(token_type) },
        "expires_in": grant.expires_in(now),
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
    if s.is(Breakage::RefreshTokenWithEveryExchange) {
        m.insert("refresh_token".into(), Value::from(random_id(32)));
    }
    // Refresh tokens by exchange (declared `exchange-refresh-tokens` in the
    // variants that issue them): a refresh token in the subject's session that
    // renews this access token (RFC 6749 §6).
    if issued_type == TokenType::RefreshToken {
        if let Some(sid) = &sid {
            let refresh = random_id(40);
            s.store().add_exchanged_refresh(&refresh, sid, requester.client_id, claims, subject.jti.clone());
            m.insert("refresh_token".into(), Value::from(refresh));
        }
    }
    Ok(body)
}

/// The broken variants that make one rule of the decision pass by altering
/// what the policy is told: the policy crate's input faults, shared with the
/// reference broker's kill table.
fn perturb_inputs(broken: Option<Breakage>, x: &mut Exchange, second_hop: bool) {
    if let Some(fault) = broken.and_then(Breakage::input_fault) {
        fault.perturb(catalog(), x, second_hop);
    }
    // A server without resource support that does not refuse the parameter.
    if broken == Some(Breakage::ResourceSilentlyIgnored) {
        x.resource.clear();
    }
}
