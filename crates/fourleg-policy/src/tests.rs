//! Table tests of [`decide`]: every rule, its error code, and the near misses
//! a plausible server gets wrong (a rule kept on the first hop only, a
//! `may_act` compared loosely, a depth limit off by one).

use super::*;

const NOW: i64 = 1_000_000;
const ALICE: &str = "sub-alice";
const AGENT: &str = "sub-agent-client";
const MCP: &str = "sub-mcp";
const SUB_AGENT: &str = "sub-sub-agent";
const ROGUE: &str = "sub-rogue";

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn list(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn catalog() -> Catalog {
    Catalog {
        audiences: set(&["agent", "mcp-server", "sub-agent", "rogue-agent", "downstream-api"]),
        resources: [
            ("https://mcp.example/", "mcp-server"),
            ("https://api.example/", "downstream-api"),
            ("https://sub-agent.example/", "sub-agent"),
        ]
        .into_iter()
        .map(|(r, a)| (r.to_owned(), a.to_owned()))
        .collect(),
        permissions: list(&["records:read", "records:write", "records:delete"]),
        other_scopes: set(&["openid", "may-act-sub-agent"]),
    }
}

fn requester(client_id: &str) -> Requester {
    let (sub, baseline, targets): (&str, &[&str], &[&str]) = match client_id {
        "agent" => (AGENT, &["records:read", "records:delete"], &["mcp-server", "sub-agent"]),
        "mcp-server" => (MCP, &["records:read", "records:write"], &["downstream-api"]),
        "sub-agent" => (SUB_AGENT, &["records:read"], &["mcp-server", "sub-agent"]),
        "rogue-agent" => (ROGUE, &["records:read", "records:write", "records:delete"], &["mcp-server", "sub-agent"]),
        other => panic!("no requester {other}"),
    };
    Requester {
        client_id: client_id.to_owned(),
        sub: sub.to_owned(),
        baseline: set(baseline),
        targets: list(targets),
        lifetime_s: 300,
    }
}

fn party(sub: &str, client_id: &str) -> Party {
    Party::new(sub, Some(client_id))
}

/// An actor token's identity, resolved to a client that may act.
#[expect(clippy::unnecessary_wraps, reason = "it is assigned to `Exchange::actor`, an Option")]
fn actor(sub: &str, client_id: &str) -> Option<Actor> {
    Some(Actor { sub: sub.to_owned(), client_id: Some(client_id.to_owned()) })
}

/// Hop 1: the agent exchanges alice's login token (aud agent, read+write),
/// impersonation, no parameters.
fn hop1() -> Exchange {
    Exchange {
        requester: requester("agent"),
        subject: Subject {
            sub: ALICE.into(),
            aud: list(&["agent"]),
            scope: list(&["records:read", "records:write"]),
            exp: NOW + 300,
            may_act: None,
            act: Vec::new(),
        },
        actor: None,
        audience: Vec::new(),
        resource: Vec::new(),
        scope: None,
        user_permissions: Some(set(&["records:read", "records:write"])),
        now: NOW,
    }
}

/// Hop 2: mcp-server exchanges the token the agent obtained by delegation
/// (aud mcp-server, read only, act agent), with its own actor token.
fn hop2() -> Exchange {
    Exchange {
        requester: requester("mcp-server"),
        subject: Subject {
            sub: ALICE.into(),
            aud: list(&["mcp-server"]),
            scope: list(&["records:read"]),
            exp: NOW + 200,
            may_act: None,
            act: vec![party(AGENT, "agent")],
        },
        actor: actor(MCP, "mcp-server"),
        ..hop1()
    }
}

fn decide_default(x: &Exchange) -> Result<Grant, Refusal> {
    decide(&catalog(), Limits::default(), x)
}

/// A chain of `n` distinct prior actors.
fn chain(n: usize) -> Vec<Party> {
    (0..n).map(|i| party(&format!("sub-hop-{i}"), &format!("hop-{i}"))).collect()
}

type Mutate = fn(&mut Exchange);

#[test]
fn refusals_carry_their_rule_and_code() {
    let cases: Vec<(&str, Exchange, Mutate, Refusal, ErrorCode)> = vec![
        // 1. requester in aud, on every hop.
        (
            "requester not in aud",
            hop1(),
            |x| x.subject.aud = list(&["mcp-server"]),
            Refusal::NotAnAudience { requester: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "empty aud",
            hop1(),
            |x| x.subject.aud.clear(),
            Refusal::NotAnAudience { requester: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "aud with a prefix of the requester (loose comparison)",
            hop1(),
            |x| x.subject.aud = list(&["agent-2", "agen"]),
            Refusal::NotAnAudience { requester: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "aud kept on the first hop only: hop 2 replays a token for another audience",
            hop2(),
            |x| x.subject.aud = list(&["sub-agent"]),
            Refusal::NotAnAudience { requester: "mcp-server".into() },
            ErrorCode::InvalidRequest,
        ),
        // 2. the actor is a client that may act.
        (
            "actor token names no client that may act",
            hop1(),
            |x| x.actor = Some(Actor { sub: ALICE.into(), client_id: None }),
            Refusal::ActorMayNotAct { sub: ALICE.into() },
            ErrorCode::InvalidRequest,
        ),
        // 3. may_act, strictly.
        (
            "may_act names another actor",
            hop1(),
            |x| {
                x.subject.may_act = Some(MayAct { sub: Some(AGENT.into()), client_id: Some("agent".into()) });
                x.actor = actor(ROGUE, "rogue-agent");
            },
            Refusal::MayActDoesNotName { acting: "rogue-agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "may_act names the requester, but the actor token is another client's",
            hop1(),
            |x| {
                x.subject.may_act = Some(MayAct { sub: Some(AGENT.into()), client_id: None });
                x.actor = actor(ROGUE, "rogue-agent");
            },
            Refusal::MayActDoesNotName { acting: "rogue-agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "may_act without actor token names someone else than the requester",
            hop1(),
            |x| x.subject.may_act = Some(MayAct { sub: Some(SUB_AGENT.into()), client_id: Some("sub-agent".into()) }),
            Refusal::MayActDoesNotName { acting: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "may_act compared loosely: same client_id, another sub",
            hop1(),
            |x| x.subject.may_act = Some(MayAct { sub: Some(ROGUE.into()), client_id: Some("agent".into()) }),
            Refusal::MayActDoesNotName { acting: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "may_act compared loosely: case differs",
            hop1(),
            |x| x.subject.may_act = Some(MayAct { sub: None, client_id: Some("Agent".into()) }),
            Refusal::MayActDoesNotName { acting: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "may_act compared loosely: a prefix",
            hop1(),
            |x| x.subject.may_act = Some(MayAct { sub: Some("sub-agent-client-2".into()), client_id: None }),
            Refusal::MayActDoesNotName { acting: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "an empty may_act names nobody",
            hop1(),
            |x| x.subject.may_act = Some(MayAct::default()),
            Refusal::MayActDoesNotName { acting: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "may_act kept on the first hop only: hop 2's subject names another actor",
            hop2(),
            |x| x.subject.may_act = Some(MayAct { sub: Some(SUB_AGENT.into()), client_id: Some("sub-agent".into()) }),
            Refusal::MayActDoesNotName { acting: "mcp-server".into() },
            ErrorCode::InvalidRequest,
        ),
        // 4. circular delegation.
        (
            "the actor already acts in the chain",
            hop2(),
            |x| x.actor = actor(AGENT, "agent"),
            Refusal::Circular { actor: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "the actor acts deeper in the chain, under another client_id spelling of the same sub",
            hop2(),
            |x| {
                x.subject.act = vec![party(SUB_AGENT, "sub-agent"), party(MCP, "mcp-server-old")];
                x.subject.aud = list(&["mcp-server"]);
            },
            Refusal::Circular { actor: "mcp-server".into() },
            ErrorCode::InvalidRequest,
        ),
        // 5. depth, off by one.
        (
            "one actor too many",
            hop2(),
            |x| x.subject.act = chain(MAX_DEPTH),
            Refusal::TooDeep { max: MAX_DEPTH },
            ErrorCode::InvalidRequest,
        ),
        // 6. audience and resource.
        (
            "unknown audience",
            hop1(),
            |x| x.audience = list(&["nobody"]),
            Refusal::UnknownAudience("nobody".into()),
            ErrorCode::InvalidTarget,
        ),
        (
            "an audience the requester may not target",
            hop1(),
            |x| x.audience = list(&["downstream-api"]),
            Refusal::TargetNotAllowed { client: "agent".into(), target: "downstream-api".into() },
            ErrorCode::InvalidTarget,
        ),
        (
            "one allowed and one unknown audience",
            hop1(),
            |x| x.audience = list(&["mcp-server", "nobody"]),
            Refusal::UnknownAudience("nobody".into()),
            ErrorCode::InvalidTarget,
        ),
        (
            "a relative resource",
            hop1(),
            |x| x.resource = list(&["/records"]),
            Refusal::MalformedResource("/records".into()),
            ErrorCode::InvalidTarget,
        ),
        (
            "a resource with a fragment",
            hop1(),
            |x| x.resource = list(&["https://mcp.example/#frag"]),
            Refusal::MalformedResource("https://mcp.example/#frag".into()),
            ErrorCode::InvalidTarget,
        ),
        (
            "an unknown resource",
            hop1(),
            |x| x.resource = list(&["https://elsewhere.example/"]),
            Refusal::UnknownResource("https://elsewhere.example/".into()),
            ErrorCode::InvalidTarget,
        ),
        (
            "a resource the requester may not target",
            hop1(),
            |x| x.resource = list(&["https://api.example/"]),
            Refusal::TargetNotAllowed { client: "agent".into(), target: "https://api.example/".into() },
            ErrorCode::InvalidTarget,
        ),
        (
            "a per-hop audience kept on the first hop only: hop 2 asks for the previous hop",
            hop2(),
            |x| x.audience = list(&["sub-agent"]),
            Refusal::TargetNotAllowed { client: "mcp-server".into(), target: "sub-agent".into() },
            ErrorCode::InvalidTarget,
        ),
        // 7. unknown scope.
        (
            "unknown scope value",
            hop1(),
            |x| x.scope = Some(list(&["records:read", "admin"])),
            Refusal::UnknownScope("admin".into()),
            ErrorCode::InvalidScope,
        ),
        (
            "scope values are case-sensitive",
            hop1(),
            |x| x.scope = Some(list(&["Records:Read"])),
            Refusal::UnknownScope("Records:Read".into()),
            ErrorCode::InvalidScope,
        ),
        // Order: the first rule that fails decides.
        (
            "aud is checked before may_act",
            hop1(),
            |x| {
                x.subject.aud.clear();
                x.subject.may_act = Some(MayAct::default());
            },
            Refusal::NotAnAudience { requester: "agent".into() },
            ErrorCode::InvalidRequest,
        ),
        (
            "audience is checked before scope",
            hop1(),
            |x| {
                x.audience = list(&["nobody"]);
                x.scope = Some(list(&["admin"]));
            },
            Refusal::UnknownAudience("nobody".into()),
            ErrorCode::InvalidTarget,
        ),
    ];
    let n = cases.len();
    for (what, mut x, mutate, refusal, code) in cases {
        mutate(&mut x);
        let got = decide_default(&x);
        assert_eq!(got.as_ref().err(), Some(&refusal), "{what}: {got:?}");
        assert_eq!(refusal.code(), code, "{what}");
        assert!(!refusal.to_string().is_empty());
    }
    assert!(n >= 28, "the table shrank to {n} cases");
}

/// What a grant must be: `None` fields are not checked.
#[derive(Default)]
struct Want {
    aud: Option<&'static [&'static str]>,
    scope: Option<&'static [&'static str]>,
    exp: Option<i64>,
    act: Option<Vec<Party>>,
}

#[test]
fn grants_are_the_intersection_the_next_hop_and_the_nested_chain() {
    let cases: Vec<(&str, Exchange, Mutate, Want)> = vec![
        (
            "impersonation: default audience, subject's scope ∩ baseline, no act",
            hop1(),
            |_| {},
            Want {
                aud: Some(&["mcp-server", "sub-agent"]),
                scope: Some(&["records:read"]),
                exp: Some(NOW + 300),
                act: Some(Vec::new()),
            },
        ),
        (
            "an explicit audience replaces the default",
            hop1(),
            |x| x.audience = list(&["sub-agent"]),
            Want { aud: Some(&["sub-agent"]), ..Want::default() },
        ),
        (
            "a resource stands for its audience",
            hop1(),
            |x| x.resource = list(&["https://mcp.example/"]),
            Want { aud: Some(&["mcp-server"]), ..Want::default() },
        ),
        (
            "audience and resource naming the same hop give it once",
            hop1(),
            |x| {
                x.audience = list(&["mcp-server"]);
                x.resource = list(&["https://mcp.example/"]);
            },
            Want { aud: Some(&["mcp-server"]), ..Want::default() },
        ),
        (
            "the user lacks the permission: not granted although requester and token have it",
            hop1(),
            |x| {
                x.subject.scope = list(&["records:read", "records:delete"]);
                x.scope = Some(list(&["records:read", "records:delete"]));
            },
            Want { scope: Some(&["records:read"]), ..Want::default() },
        ),
        (
            "the requester lacks the permission: not granted although the user has it (no union)",
            hop1(),
            |x| x.scope = Some(list(&["records:read", "records:write"])),
            Want { scope: Some(&["records:read"]), ..Want::default() },
        ),
        (
            "the subject token lacks the permission: not granted although user and requester have it",
            hop1(),
            |x| {
                x.subject.scope = list(&["records:read"]);
                x.user_permissions = Some(set(&["records:read", "records:delete"]));
                x.scope = Some(list(&["records:read", "records:delete"]));
            },
            Want { scope: Some(&["records:read"]), ..Want::default() },
        ),
        (
            "an empty scope parameter grants nothing",
            hop1(),
            |x| x.scope = Some(Vec::new()),
            Want { scope: Some(&[]), ..Want::default() },
        ),
        (
            "known scopes outside the permissions are never granted here",
            hop1(),
            |x| x.scope = Some(list(&["openid", "may-act-sub-agent", "records:read"])),
            Want { scope: Some(&["records:read"]), ..Want::default() },
        ),
        (
            "without a known user, the subject token's scope stands for the user's",
            hop1(),
            |x| {
                x.user_permissions = None;
                x.subject.scope = list(&["records:read", "records:delete"]);
            },
            Want { scope: Some(&["records:read", "records:delete"]), ..Want::default() },
        ),
        (
            "granted scope follows the catalog's order, not the request's",
            hop1(),
            |x| {
                x.requester = requester("rogue-agent");
                x.subject.aud = list(&["rogue-agent"]);
                x.scope = Some(list(&["records:write", "records:read"]));
            },
            Want { scope: Some(&["records:read", "records:write"]), ..Want::default() },
        ),
        (
            "intersection kept on the first hop only: hop 2 asks for write, which the subject token lost",
            hop2(),
            |x| x.scope = Some(list(&["records:read", "records:write"])),
            Want { scope: Some(&["records:read"]), ..Want::default() },
        ),
        (
            "exp is the subject's when it ends first",
            hop2(),
            |_| {},
            Want { exp: Some(NOW + 200), aud: Some(&["downstream-api"]), ..Want::default() },
        ),
        (
            "exp is the requester's lifetime when that ends first",
            hop1(),
            |x| x.subject.exp = NOW + 10_000,
            Want { exp: Some(NOW + 300), ..Want::default() },
        ),
        (
            "an already expired subject (the caller's check skipped) never yields a later exp",
            hop1(),
            |x| x.subject.exp = NOW - 5,
            Want { exp: Some(NOW - 5), ..Want::default() },
        ),
        (
            "delegation hop 1: the actor is the chain",
            hop1(),
            |x| {
                x.subject.may_act = Some(MayAct { sub: Some(AGENT.into()), client_id: Some("agent".into()) });
                x.actor = actor(AGENT, "agent");
            },
            Want { act: Some(vec![party(AGENT, "agent")]), ..Want::default() },
        ),
        (
            "delegation hop 2: the new actor outermost, the history kept",
            hop2(),
            |_| {},
            Want { act: Some(vec![party(MCP, "mcp-server"), party(AGENT, "agent")]), ..Want::default() },
        ),
        (
            "impersonation of a delegated token keeps its chain and adds nobody",
            hop2(),
            |x| x.actor = None,
            Want { act: Some(vec![party(AGENT, "agent")]), ..Want::default() },
        ),
        (
            "may_act naming the requester by sub alone, no actor token: the requester is recorded as the actor",
            hop1(),
            |x| x.subject.may_act = Some(MayAct { sub: Some(AGENT.into()), client_id: None }),
            Want { act: Some(vec![party(AGENT, "agent")]), ..Want::default() },
        ),
        (
            "may_act naming the requester by client_id alone, no actor token: the requester is recorded as the actor",
            hop1(),
            |x| x.subject.may_act = Some(MayAct { sub: None, client_id: Some("agent".into()) }),
            Want { act: Some(vec![party(AGENT, "agent")]), ..Want::default() },
        ),
        (
            "no may_act, no actor token: impersonation, no act",
            hop1(),
            |x| x.subject.may_act = None,
            Want { act: Some(Vec::new()), ..Want::default() },
        ),
        (
            "depth: exactly the limit is issued",
            hop2(),
            |x| x.subject.act = chain(MAX_DEPTH - 1),
            Want { act: Some([vec![party(MCP, "mcp-server")], chain(MAX_DEPTH - 1)].concat()), ..Want::default() },
        ),
        (
            "depth: impersonation over a full chain adds nothing and passes",
            hop2(),
            |x| {
                x.subject.act = chain(MAX_DEPTH);
                x.actor = None;
            },
            Want { act: Some(chain(MAX_DEPTH)), ..Want::default() },
        ),
        (
            "a different actor with a similar name is not circular",
            hop2(),
            |x| x.subject.act = vec![party("sub-mcp-2", "mcp-server-2")],
            Want { act: Some(vec![party(MCP, "mcp-server"), party("sub-mcp-2", "mcp-server-2")]), ..Want::default() },
        ),
    ];
    let n = cases.len();
    for (what, mut x, mutate, want) in cases {
        mutate(&mut x);
        let g = decide_default(&x).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
        assert_eq!(g.sub, x.subject.sub, "{what}: sub is the subject's");
        assert!(g.exp <= x.subject.exp, "{what}: exp grew");
        if let Some(aud) = want.aud {
            assert_eq!(g.aud, list(aud), "{what}: aud");
        }
        if let Some(scope) = want.scope {
            assert_eq!(g.scope, list(scope), "{what}: scope");
        }
        if let Some(exp) = want.exp {
            assert_eq!(g.exp, exp, "{what}: exp");
        }
        if let Some(act) = want.act {
            assert_eq!(g.act, act, "{what}: act");
        }
    }
    assert!(n >= 23, "the table shrank to {n} cases");
}

#[test]
fn a_smaller_depth_limit_is_honoured_off_by_one() {
    let limits = Limits { max_depth: 3, ..Limits::default() };
    let mut x = hop2();
    x.subject.act = chain(2);
    assert_eq!(decide(&catalog(), limits, &x).map(|g| g.act.len()), Ok(3));
    x.subject.act = chain(3);
    assert_eq!(decide(&catalog(), limits, &x), Err(Refusal::TooDeep { max: 3 }));
}

#[test]
fn the_act_claim_nests_outermost_first_with_identity_claims_only() {
    let g = decide_default(&hop2()).unwrap();
    assert_eq!(
        g.act_claim(),
        Some(json!({"sub": MCP, "client_id": "mcp-server", "act": {"sub": AGENT, "client_id": "agent"}}))
    );
    assert_eq!(decide_default(&hop1()).unwrap().act_claim(), None);
    assert_eq!(nest(&[Party::new("x", None)]), Some(json!({"sub": "x"})));
    assert_eq!(g.expires_in(NOW), 200);
    assert_eq!(g.expires_in(NOW + 1_000), 0);
}

#[test]
fn the_decision_is_a_function_of_its_inputs() {
    let x = hop2();
    assert_eq!(decide_default(&x), decide_default(&x.clone()));
    let mut later = x.clone();
    later.now += 50;
    // Only exp can depend on now, and only when the requester's lifetime ends first.
    let (a, b) = (decide_default(&x).unwrap(), decide_default(&later).unwrap());
    assert_eq!((a.aud, a.scope, a.act), (b.aud, b.scope, b.act));
}

#[test]
fn party_and_may_act_matching_is_exact() {
    let agent = party(AGENT, "agent");
    assert!(agent.same_as(&Party::new(AGENT, None)));
    assert!(agent.same_as(&Party::new("other", Some("agent"))));
    assert!(!agent.same_as(&Party::new("other", None)));
    assert!(!Party::new("a", None).same_as(&Party::new("b", None)));
    let m = MayAct { sub: Some(AGENT.into()), client_id: Some("agent".into()) };
    assert!(m.names(&agent));
    assert!(!m.names(&Party::new(AGENT, None)), "a client_id in may_act must be matched, not skipped");
    assert!(!MayAct::default().names(&agent));
    assert!(well_formed_resource("https://a.example/x?y=1"));
    assert!(!well_formed_resource("a.example/x") && !well_formed_resource("https://a.example/#f"));
}

/// Every order of the four groups of checks.
fn orders() -> Vec<[Check; 4]> {
    let all = Check::DOCUMENTED;
    let mut out = Vec::new();
    for a in 0..4 {
        for b in (0..4).filter(|b| *b != a) {
            for c in (0..4).filter(|c| *c != a && *c != b) {
                let d = 6 - a - b - c;
                out.push([all[a], all[b], all[c], all[d]]);
            }
        }
    }
    out
}

#[test]
fn a_request_that_breaks_one_rule_is_decided_alike_in_every_order() {
    let cases: Vec<(&str, Exchange, Mutate)> = vec![
        ("hop 1 granted", hop1(), |_| {}),
        ("hop 2 granted", hop2(), |_| {}),
        ("requester not in aud", hop1(), |x| x.subject.aud = list(&["mcp-server"])),
        ("may_act names another actor", hop1(), |x| {
            x.subject.may_act = Some(MayAct { sub: Some(AGENT.into()), client_id: Some("agent".into()) });
            x.actor = actor(ROGUE, "rogue-agent");
        }),
        ("circular", hop2(), |x| x.actor = actor(AGENT, "agent")),
        ("too deep", hop2(), |x| x.subject.act = chain(MAX_DEPTH)),
        ("unknown audience", hop1(), |x| x.audience = list(&["nobody"])),
        ("malformed resource", hop1(), |x| x.resource = list(&["/records"])),
        ("unknown scope", hop1(), |x| x.scope = Some(list(&["admin"]))),
    ];
    let orders = orders();
    assert_eq!(orders.len(), 24);
    for (what, mut x, mutate) in cases {
        mutate(&mut x);
        let documented = decide_default(&x);
        for order in &orders {
            let limits = Limits { order: *order, ..Limits::default() };
            assert_eq!(decide(&catalog(), limits, &x), documented, "{what} in the order {order:?}");
        }
    }
}

#[test]
fn a_request_that_breaks_two_rules_is_refused_by_the_first_group_checked() {
    let mut x = hop1();
    x.audience = list(&["nobody"]);
    x.scope = Some(list(&["admin"]));
    assert_eq!(decide_default(&x), Err(Refusal::UnknownAudience("nobody".into())));
    let reversed = Limits { order: Check::REVERSED, ..Limits::default() };
    assert_eq!(decide(&catalog(), reversed, &x), Err(Refusal::UnknownScope("admin".into())));
    // A group left out of the order is still checked, last.
    let partial = Limits { order: [Check::Scope; 4], ..Limits::default() };
    x.scope = None;
    assert_eq!(decide(&catalog(), partial, &x), Err(Refusal::UnknownAudience("nobody".into())));
}

#[cfg(feature = "faults")]
#[test]
fn depth_faults_move_the_limit_and_no_other_fault_does() {
    use crate::faults::InputFault as F;
    let limits = Limits { max_depth: 3, ..Limits::default() };
    let issued_at = |f: F, n: usize| {
        let mut x = hop2();
        x.subject.act = chain(n - 1);
        decide(&catalog(), f.limits(limits), &x).is_ok()
    };
    // Conformant at 3 and refused at 4; each fault breaks it its own way.
    assert!(issued_at(F::DepthNotLimited, 4) && issued_at(F::DepthNotLimited, 7));
    assert!(issued_at(F::DepthLimitOffByOne, 4) && !issued_at(F::DepthLimitOffByOne, 5));
    assert!(!issued_at(F::DepthLimitBelowDeclared, 3) && issued_at(F::DepthLimitBelowDeclared, 2));
    for f in F::ALL
        .into_iter()
        .filter(|f| !matches!(f, F::DepthNotLimited | F::DepthLimitOffByOne | F::DepthLimitBelowDeclared))
    {
        assert_eq!(f.limits(limits), limits, "{f:?}");
    }
}
