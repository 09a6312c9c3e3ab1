//! The engine: runs one scenario's steps against a connected target, grades
//! each check by its rule's level, and keeps the evidence.
//!
//! Two families of trouble never mix: a target that answers wrongly is a
//! finding (a failed check); a harness that cannot do its job is `error`
//! (transport) or `untestable` (a prerequisite such as a login or a hook
//! failed, with its reason).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fourleg_core::oauth::{dpop, ErrorCode};
use fourleg_core::{jose, jwt, Secret};
use fourleg_target::{
    token_type, ClientAuthMode, Contract, FormValue, Gap, Outcome, Recipe, Target, TargetError, TokenFacts,
    TOKEN_EXCHANGE_GRANT,
};
use serde_json::Value;
use tokio::sync::{Mutex, OnceCell};

use crate::checks::{self, AcceptOutcome, Identity, Input, Verdict, WaitOutcome};
use crate::forge;
use crate::requirement::{Level, Registry};
use crate::result::{
    worst, CheckResult, IdentityRecord, IdentitySource, Measurement, PreconditionResult, Prelude, RuleKind,
    ScenarioResult, Status, StepRecord,
};
use crate::scenario::{
    AcceptStep, Action, Assertion, ClientAuth, ExchangeStep, Expect, ForgeKind, ForgeStep, Guards, HookStep,
    IntrospectAuth, IntrospectStep, LogoutStep, Modifier, Omit, RefreshStep, RegisterStep, RegisteredAction,
    RegisteredStep, RelayStep, ResourceStep, RevokeStep, Scenario, SleepStep, Step, StepKind, TokenStep, WaitStep,
    WaitUntil,
};

/// The pseudo-rule of a failed cleanup hook's result, a finding of its own
/// (`fail`): not a rule of the specs, but the target was left changed (a
/// client stays disabled), which every later run against it inherits.
pub const CLEANUP_RULE: &str = "FOURLEG-cleanup";

/// The run must stop: the target stopped answering.
#[derive(Debug, Clone, thiserror::Error)]
#[error("target `{target}` stopped answering ({detail}); the run stops here instead of failing every scenario")]
pub struct TargetDown {
    pub target: String,
    pub detail: String,
}

/// What a saved variable holds.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // a handful per scenario; boxing buys nothing
enum Var {
    /// An HTTP outcome (token response, introspection, …) and the contract
    /// client that obtained it.
    /// `audience`: the contract audiences an exchange asked for, so a token
    /// that does not name its audience can still be introspected by it.
    Http { outcome: Outcome, client: Option<String>, user: Option<String>, audience: Vec<String> },
    /// A forged token.
    Forged(Secret),
    /// A client registered by a `register` step (RFC 7591 §3.2.1), with its
    /// RFC 7592 management credentials when the server gave them.
    /// `grant_types`: those the client information response lists (absent:
    /// none listed).
    /// `name`: the `client_name` it registered with; `asked_by`: what
    /// last asked for its grants (`registration`, `update`); `update`: an
    /// RFC 7592 update that did not take effect, and why.
    Registered {
        client_id: String,
        name: String,
        secret: Secret,
        access_token: Option<Secret>,
        uri: Option<String>,
        grant_types: Option<Vec<String>>,
        asked_by: &'static str,
        update: Option<Unchanged>,
    },
    /// A registration the server refused (RFC 7591 §3.2.2): how it answered.
    /// Only an `exchange` of the client reads it, to judge the refusal.
    RegistrationRefused(String),
    /// The step did not produce anything; why.
    Missing(String),
}

/// Why an RFC 7592 update left a registered client as it was.
#[derive(Debug, Clone)]
enum Unchanged {
    /// The server refused it (4xx): a policy's answer, which checks judge.
    Refused(String),
    /// The server offers no update (404, 405, 501) or broke (5xx): what
    /// needed the update is untestable.
    Unsupported(String),
}

/// What a step produced, for its checks.
#[derive(Debug, Default)]
struct StepOut {
    outcome: Option<Outcome>,
    wait: Option<WaitOutcome>,
    accept: Option<AcceptOutcome>,
    http: Vec<fourleg_target::HttpEvidence>,
    /// Decoded tokens the step made itself (forged), by variable name.
    tokens: BTreeMap<String, jwt::Decoded>,
    /// A revocation step: whether the revoked token is an access token (RFC
    /// 7009 §2: revoking access tokens is a SHOULD).
    revoked_access_token: Option<bool>,
    summary: String,
    var: Option<Var>,
    /// A metadata step: the issuer identifier its URL was made from.
    issuer: Option<String>,
    /// A protected-resource metadata step: the resource identifier the
    /// document must name (RFC 9728 §3.3).
    resource: Option<String>,
    /// The step could not do what its checks need (a relay chain stopped
    /// short): every check and precondition is untestable, with this reason.
    unmade: Option<String>,
    /// The DPoP proof the step's request carried (RFC 9449 §4), and the
    /// thumbprint of the key it proves: what a bound token must name.
    proof: Option<dpop::Proof>,
    proof_key: Option<String>,
    /// A tool call: the claims of the newest token the API behind the
    /// resource received.
    downstream: Option<Value>,
    /// A scoped tool call: the claims of each token the API behind the
    /// resource received during the call (none without a view of it).
    called_api: Option<Vec<Value>>,
    /// A registered client's exchange: what its registration said.
    registration: Option<checks::Registration>,
}

/// The DPoP keys of one scenario run, by name, made at first use, and the
/// proofs its steps sent, by the variable the step saved (for replays).
#[derive(Debug, Default)]
struct ProofKeys {
    keys: std::sync::Mutex<HashMap<String, Arc<dpop::ProofKey>>>,
    sent: std::sync::Mutex<HashMap<String, (String, dpop::Proof)>>,
}

impl ProofKeys {
    fn key(&self, name: &str) -> Arc<dpop::ProofKey> {
        let mut keys = self.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(keys.entry(name.to_owned()).or_insert_with(|| Arc::new(dpop::ProofKey::generate())))
    }

    fn remember(&self, var: &str, key: &str, proof: dpop::Proof) {
        let mut sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        sent.insert(var.to_owned(), (key.to_owned(), proof));
    }

    fn sent_by(&self, var: &str) -> Option<(String, dpop::Proof)> {
        self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(var).cloned()
    }
}

impl StepOut {
    /// A step that could not do what its checks need, with the traffic it
    /// sent on the way: its checks are untestable, and what it saves is
    /// missing, with this reason.
    fn unmade(why: String, http: Vec<fourleg_target::HttpEvidence>) -> Self {
        StepOut {
            summary: why.clone(),
            http,
            unmade: Some(why.clone()),
            var: Some(Var::Missing(why)),
            ..StepOut::default()
        }
    }

    /// A token endpoint's answer to `client`: its outcome, saved as a
    /// variable (with the contract audiences it was asked for).
    fn token_response(summary: String, o: Outcome, client: &str, audience: Vec<String>) -> Self {
        StepOut {
            summary,
            http: vec![o.evidence.clone()],
            var: Some(Var::Http { outcome: o.clone(), client: Some(client.to_owned()), user: None, audience }),
            outcome: Some(o),
            ..StepOut::default()
        }
    }
}

/// Runs scenarios against one target. Cheap to share across tasks.
#[derive(Debug)]
pub struct Engine {
    target: Arc<Target>,
    registry: Arc<Registry>,
    /// Identities, resolved once before any scenario's first step.
    prelude: OnceCell<Prelude>,
    jwks: Mutex<Option<Value>>,
}

/// The longest revocation window a resource may declare that the suite
/// waits out (`[resource] revocation_window_s`).
const MAX_RESOURCE_WINDOW_S: u64 = 60;

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The claims of each token the API behind the resource received, oldest
/// first, from its `[resource] downstream` view (`{"received": [...]}`).
fn received(view: &Outcome) -> Vec<Value> {
    view.body.get("received").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The `grant_types` a client information response lists (RFC 7591
/// §3.2.1), `None` when it lists none.
fn listed_grants(o: &Outcome) -> Option<Vec<String>> {
    let list = o.body.get("grant_types")?.as_array()?;
    Some(list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) fn describe(o: &Outcome) -> String {
    match o.error() {
        Some(e) => format!("{} {e}", o.status),
        None => o.status.to_string(),
    }
}

impl Engine {
    /// An engine for `target`.
    #[must_use]
    pub fn new(target: Arc<Target>, registry: Arc<Registry>) -> Self {
        Self { target, registry, prelude: OnceCell::new(), jwks: Mutex::new(None) }
    }

    /// The target.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The identity prelude: every contract principal's identity, resolved
    /// the first time it is asked for and never again, before any
    /// scenario's first step. A declared `sub` is taken as is; otherwise a
    /// user logs in and a confidential client gets its own token, and the
    /// `sub` of that token is recorded with the request as evidence. A
    /// request that fails leaves the profile's names (username,
    /// `client_id`) and a note; it is never a finding.
    pub async fn prelude(&self) -> &Prelude {
        self.prelude.get_or_init(|| self.resolve_identities()).await
    }

    async fn resolve_identities(&self) -> Prelude {
        let contract = self.target.contract();
        let mut prelude = Prelude::default();
        for principal in contract.principals() {
            let Some((mut identity, declared)) = contract.declared_identity(&principal) else { continue };
            let mut source = if declared { IdentitySource::Declared } else { IdentitySource::Profile };
            let mut note = None;
            if let Some(recipe) = contract.identity_recipe(&principal) {
                match self.target.obtain(&recipe).await {
                    Ok(o) => {
                        let sub = o
                            .token("access_token")
                            .and_then(|t| jwt::decode(t.expose()).ok())
                            .and_then(|d| d.claims["sub"].as_str().map(str::to_owned));
                        match sub {
                            Some(sub) => {
                                identity.names.insert(sub);
                                source = match recipe {
                                    Recipe::Login { .. } | Recipe::Foreign { .. } => IdentitySource::Login,
                                    Recipe::ClientCredentials { .. } => IdentitySource::ClientCredentials,
                                };
                            }
                            None => note = Some(format!("no JWT with a sub in the answer ({})", describe(&o))),
                        }
                        prelude.http.push(o.evidence);
                    }
                    Err(e) => note = Some(e.to_string()),
                }
            }
            prelude.identities.insert(principal, IdentityRecord { identity, source, note });
        }
        prelude
    }

    /// Runs one scenario. `Err` only when the target stopped answering.
    pub async fn run(&self, s: &Scenario) -> Result<ScenarioResult, TargetDown> {
        let begin = Instant::now();
        let contract = self.target.contract();
        let mut result = ScenarioResult {
            id: s.id.clone(),
            area: s.area.clone(),
            title: s.title.clone(),
            status: Status::Pass,
            checks: Vec::new(),
            steps: Vec::new(),
            measurements: Vec::new(),
            expected_failure: contract.expected_failure(&s.id).map(str::to_owned),
            stale_expectation: false,
            reason: None,
            preconditions: Vec::new(),
            duration_ms: 0,
        };
        let declared = s.probes_absent.iter().find(|f| contract.feature(f) == Some(true));
        let judged = contract.judges_area(&s.area);
        let not_applicable = match (contract.missing_feature(&s.requires), declared) {
            _ if !judged => Some((
                format!("area `{}`", s.area),
                format!("the profile judges only the areas {:?} (`areas`)", contract.areas()),
            )),
            (Some((missing, why)), _) => Some((format!("requires `{missing}`"), why)),
            (None, Some(f)) => Some((
                format!("probes `{f}` declared absent"),
                format!("the target declares `{f}`, which its own scenarios check"),
            )),
            (None, None) => None,
        };
        if let Some((head, why)) = not_applicable {
            result.status = Status::NotApplicable;
            result.reason = Some(format!("{head}: {why}"));
            result.checks = s
                .requirements
                .iter()
                .map(|r| CheckResult {
                    rule: r.id.clone(),
                    level: r.level,
                    kind: RuleKind::of(&r.id),
                    status: Status::NotApplicable,
                    message: format!("not applicable: {why}"),
                    step: None,
                })
                .collect();
            result.duration_ms = ms(begin.elapsed());
            return Ok(result);
        }
        let grader = Grader { registry: &self.registry, contract, identities: &self.prelude().await.identities };

        let mut vars: HashMap<String, Var> = HashMap::new();
        let keys = ProofKeys::default();
        // A step that should change the target's state and did not run (a
        // hook that failed, a revocation or logout without its token) changes
        // what every later step means (a client that should be disabled is
        // not, a session that should be over is not): later steps are
        // untestable, except hooks, so a scenario always restores what it
        // changed.
        let mut change_failed: Option<String> = None;
        // Failed preconditions: (kind of action, token variable, reason). A
        // later step of that kind on that token depends on them.
        let mut unmet: Vec<(StepKind, String, String)> = Vec::new();
        // A failed precondition guarding every later step.
        let mut unmet_later: Option<String> = None;
        for (i, step) in s.steps.iter().enumerate() {
            let t = Instant::now();
            let missing = step.reads().into_iter().find_map(|v| match vars.get(v) {
                Some(Var::Missing(why)) => Some(format!("`{v}` is missing: {why}")),
                _ => None,
            });
            let missing = match (&change_failed, matches!(step.action, Action::Hook(_))) {
                (Some(why), false) => Some(why.clone()),
                _ => missing,
            };
            let out = match missing {
                Some(why) => Err(Skip::Untestable(why)),
                None => self.step(step, &vars, &keys).await,
            };
            match out {
                Ok(out) => {
                    result.steps.push(StepRecord {
                        index: i,
                        kind: step.kind().as_str().into(),
                        summary: out.summary.clone(),
                        http: out.http.clone(),
                        tokens: out.tokens.clone(),
                        elapsed_ms: ms(t.elapsed()),
                        skipped: None,
                    });
                    let mut failed_here: Option<String> = out.unmade.clone();
                    let depends_before = unmet_later.clone().or_else(|| Self::unmet_for(step, &unmet));
                    if let Some(why) = &out.unmade {
                        for v in step.action_tokens() {
                            unmet.push((step.dependency_kind(), v.to_owned(), why.clone()));
                        }
                        for _ in &step.require {
                            result.preconditions.push(PreconditionResult {
                                step: i,
                                held: false,
                                message: format!("not checked: {why}"),
                            });
                        }
                    }
                    for e in step.require.iter().filter(|_| out.unmade.is_none()) {
                        let (held, message) = grader.precondition(e, &out, &vars);
                        if !held {
                            let why = format!("precondition of step {i} not met: {message}");
                            match e.guards {
                                None => {
                                    failed_here.get_or_insert_with(|| why.clone());
                                    for v in step.action_tokens() {
                                        unmet.push((step.dependency_kind(), v.to_owned(), why.clone()));
                                    }
                                }
                                Some(Guards::Later) => {
                                    unmet_later.get_or_insert(why);
                                }
                                Some(Guards::Kind(kind)) => {
                                    for v in step.action_tokens() {
                                        unmet.push((kind, v.to_owned(), why.clone()));
                                    }
                                }
                            }
                        }
                        result.preconditions.push(PreconditionResult { step: i, held, message });
                    }
                    let depends = failed_here.or(depends_before);
                    for e in &step.expect {
                        if let Some(why) = &depends {
                            result.checks.push(self.graded(e, i, Status::Untestable, format!("not checked: {why}")));
                            continue;
                        }
                        let (check, figure) = grader.check(e, i, &out, &vars);
                        if let Some(f) = figure {
                            result.measurements.push(Measurement {
                                rule: e.rule.clone(),
                                value: f.value,
                                unit: f.unit.into(),
                                bound: f.bound,
                            });
                        }
                        result.checks.push(check);
                    }
                    if let Some(name) = &step.save {
                        vars.insert(
                            name.clone(),
                            out.var.unwrap_or_else(|| Var::Missing("the step saves nothing".into())),
                        );
                    }
                }
                Err(skip) => {
                    if let (Some(what), Skip::Untestable(w)) = (Self::state_change(&step.action), &skip) {
                        change_failed.get_or_insert_with(|| format!("step {i} ({what}) did not happen: {w}"));
                    }
                    let (status, why) = match skip {
                        Skip::Untestable(w) => (Status::Untestable, w),
                        Skip::Error(w) => (Status::Error, w),
                        Skip::Down(d) => return Err(d),
                    };
                    result.steps.push(StepRecord {
                        index: i,
                        kind: step.kind().as_str().into(),
                        summary: String::new(),
                        http: Vec::new(),
                        tokens: BTreeMap::new(),
                        elapsed_ms: ms(t.elapsed()),
                        skipped: Some(why.clone()),
                    });
                    for _ in &step.require {
                        result.preconditions.push(PreconditionResult {
                            step: i,
                            held: false,
                            message: format!("not checked: {why}"),
                        });
                    }
                    if !step.require.is_empty() {
                        for v in step.action_tokens() {
                            unmet.push((step.dependency_kind(), v.to_owned(), format!("step {i} did not run: {why}")));
                        }
                    }
                    for e in &step.expect {
                        result.checks.push(self.graded(e, i, status, format!("not checked: {why}")));
                    }
                    if let Some(name) = &step.save {
                        vars.insert(name.clone(), Var::Missing(format!("step {i} did not run: {why}")));
                    }
                    if let Action::Hook(h) = &step.action {
                        if h.run.is_cleanup() {
                            // Not a silent skip: the target is left changed
                            // (a client stays disabled), which every later
                            // run against it inherits.
                            let message = format!(
                                "cleanup hook {} for {} failed, so the target is left changed: {why}",
                                h.run.as_str(),
                                h.client
                            );
                            result.checks.push(CheckResult {
                                rule: CLEANUP_RULE.into(),
                                level: Level::Must,
                                kind: RuleKind::of(CLEANUP_RULE),
                                status: Status::Fail,
                                message,
                                step: Some(i),
                            });
                        }
                    }
                    if status == Status::Error && result.reason.is_none() {
                        result.reason = Some(why);
                    }
                }
            }
        }
        result.status = worst(result.checks.iter().map(|c| c.status));
        if result.expected_failure.is_some() && matches!(result.status, Status::Pass | Status::Info) {
            result.stale_expectation = true;
        }
        if result.reason.is_none() && result.status == Status::Untestable {
            result.reason = result.checks.iter().find(|c| c.status == Status::Untestable).map(|c| c.message.clone());
        }
        result.duration_ms = ms(begin.elapsed());
        Ok(result)
    }

    /// What a step changes at the target, if anything: the steps whose
    /// later observations mean nothing when they did not happen.
    fn state_change(action: &Action) -> Option<&'static str> {
        match action {
            Action::Hook(_) => Some("a hook"),
            Action::Revoke(_) => Some("a revocation"),
            Action::Logout(_) => Some("a logout"),
            Action::Wait(w) if w.until == WaitUntil::Expired => Some("the wait for expiry"),
            Action::Registered(r) if r.action == RegisteredAction::Delete => Some("a client's deletion"),
            _ => None,
        }
    }

    /// The reason a step's checks cannot mean anything: an earlier failed
    /// precondition about the same kind of action on a token this step acts on.
    fn unmet_for(step: &Step, unmet: &[(StepKind, String, String)]) -> Option<String> {
        let kind = step.dependency_kind();
        let reads = step.reads();
        unmet.iter().find(|(k, v, _)| *k == kind && reads.contains(&v.as_str())).map(|(_, _, why)| why.clone())
    }

    fn graded(&self, e: &Expect, step: usize, status: Status, message: String) -> CheckResult {
        let level = self.registry.get(&e.rule).map_or(Level::Must, |r| r.level);
        CheckResult { rule: e.rule.clone(), level, kind: RuleKind::of(&e.rule), status, message, step: Some(step) }
    }

    fn harness(e: TargetError) -> Skip {
        match e {
            TargetError::Unreachable { .. } => Skip::Error(e.to_string()),
            // Too slow is the target's doing: what needed the answer cannot
            // be judged, and the reason says why.
            other => Skip::Untestable(other.to_string()),
        }
    }

    async fn down_or_error(&self, e: TargetError) -> Skip {
        if matches!(e, TargetError::Unreachable { .. }) && !self.target.answers().await {
            return Skip::Down(TargetDown { target: self.target.name().to_owned(), detail: e.to_string() });
        }
        Self::harness(e)
    }

    fn token_of(vars: &HashMap<String, Var>, name: &str, field: Option<&str>) -> Result<Secret, Skip> {
        match vars.get(name) {
            Some(Var::Http { outcome, .. }) => {
                let f = field.unwrap_or("access_token");
                outcome.token(f).ok_or_else(|| {
                    Skip::Untestable(format!("`{name}` holds no {f} (its request answered {})", describe(outcome)))
                })
            }
            Some(Var::Forged(t)) => Ok(t.clone()),
            Some(Var::Registered { .. } | Var::RegistrationRefused(_)) => {
                Err(Skip::Error(format!("`{name}` is a registered client, not a token")))
            }
            Some(Var::Missing(why)) => Err(Skip::Untestable(format!("`{name}` is missing: {why}"))),
            None => Err(Skip::Error(format!("variable `{name}` is not defined"))),
        }
    }

    fn claims_of(vars: &HashMap<String, Var>, name: &str) -> Option<Value> {
        let t = Self::token_of(vars, name, None).ok()?;
        jwt::decode(t.expose()).ok().map(|d| d.claims)
    }

    /// The identity of a contract principal, as the prelude resolved it.
    /// Never a request: grading only reads what was recorded.
    async fn identity(&self, principal: &str) -> Identity {
        if let Some(r) = self.prelude().await.identities.get(principal) {
            return r.identity.clone();
        }
        self.target.contract().declared_identity(principal).map(|(i, _)| i).unwrap_or_default()
    }

    async fn jwks(&self) -> Result<Value, TargetError> {
        let mut cache = self.jwks.lock().await;
        if let Some(j) = cache.as_ref() {
            return Ok(j.clone());
        }
        let j = self.target.jwks().await?;
        *cache = Some(j.clone());
        Ok(j)
    }

    fn scope_values(&self, perms: &[String]) -> Result<Vec<String>, Skip> {
        let c = self.target.contract();
        perms.iter().map(|p| c.scope_for(p).map(str::to_owned).map_err(Skip::gap)).collect()
    }

    fn may_act_scope(&self, principal: &str) -> Result<Vec<String>, Skip> {
        self.target.contract().may_act_recipe(principal).map(|r| r.scope.clone()).map_err(Skip::gap)
    }

    /// Runs a step's action: one handler per kind of action.
    async fn step(&self, step: &Step, vars: &HashMap<String, Var>, keys: &ProofKeys) -> Result<StepOut, Skip> {
        let out = self.act(step, vars, keys).await?;
        if let (Some(save), Some(p), Some(key)) = (&step.save, &out.proof, step.proof_key()) {
            keys.remember(save, key, p.clone());
        }
        Ok(out)
    }

    async fn act(&self, step: &Step, vars: &HashMap<String, Var>, keys: &ProofKeys) -> Result<StepOut, Skip> {
        match &step.action {
            Action::Token(x) => self.token(x, keys).await,
            Action::Exchange(x) => self.exchange(x, vars, keys).await,
            Action::Introspect(x) => self.introspect(x, vars).await,
            Action::Revoke(x) => self.revoke(x, vars).await,
            Action::Logout(x) => self.logout(x, vars).await,
            Action::Forge(x) => self.forge(x, vars).await,
            Action::Hook(x) => self.hook(x).await,
            Action::Wait(x) => self.wait(x, vars).await,
            Action::Accept(x) => self.accept(x, vars).await,
            Action::Metadata(x) if x.jwks => self.jwks_document().await,
            Action::Metadata(x) if x.authorization_server => self.resource_authorization_server().await,
            Action::Metadata(x) if x.protected_resource => self.resource_metadata().await,
            Action::Metadata(_) => self.metadata().await,
            Action::Sleep(x) => self.sleep(x).await,
            Action::Relay(x) => self.relay(x, vars).await,
            Action::Refresh(x) => self.refresh(x, vars).await,
            Action::Resource(x) => self.resource(x, vars).await,
            Action::Register(x) => self.register(x).await,
            Action::Registered(x) => self.registered(x, vars).await,
        }
    }

    /// The `resource` action: the profile's protected resource called with
    /// a token, or without one.
    async fn resource(&self, x: &ResourceStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        if t.contract().resource().is_none() {
            return Err(Skip::Untestable("the profile describes no protected resource ([resource])".into()));
        }
        let token = match &x.token {
            Some(name) => Some((Self::token_of(vars, name, None)?, name.as_ref())),
            None => None,
        };
        if x.scoped_tool {
            return self.resource_scoped_tool(token).await;
        }
        if x.tool {
            return self.resource_tool(token).await;
        }
        let o = match t.call_resource(token.as_ref().map(|(tok, name)| (tok, *name))).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let with = x.token.as_deref().map_or_else(|| "no token".to_owned(), |n| format!("`{n}`"));
        Ok(StepOut {
            summary: format!("protected resource with {with}: {}", o.status),
            http: vec![o.evidence.clone()],
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `resource` action with `tool`: the MCP tool that calls the API
    /// behind the server, then what that API received (the newest entry).
    async fn resource_tool(&self, token: Option<(Secret, &str)>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let Some((tok, name)) = token else {
            return Err(Skip::Error("a tool call needs a token (`token`)".into()));
        };
        let o = match t.call_resource_tool(&tok, name, false).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let mut http = vec![o.evidence.clone()];
        let mut downstream = None;
        let mut seen = String::new();
        if o.is_success() {
            match t.downstream().await {
                Ok(d) => {
                    http.push(d.evidence.clone());
                    downstream = received(&d).pop();
                    seen = format!("; the API received {}", if downstream.is_some() { "a token" } else { "nothing" });
                }
                Err(fourleg_target::TargetError::NoEndpoint { what, .. }) => seen = format!("; no {what}"),
                Err(e) => return Err(self.down_or_error(e).await),
            }
        }
        let summary = format!("tool call with `{name}`: {}{seen}", o.status);
        Ok(StepOut { summary, http, outcome: Some(o), downstream, ..StepOut::default() })
    }

    /// The `resource` action with `scoped_tool`: the MCP tool that needs a
    /// scope of its own, with what the API behind the server received
    /// during the call (its view read before and after).
    async fn resource_scoped_tool(&self, token: Option<(Secret, &str)>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let Some((tok, name)) = token else {
            return Err(Skip::Error("a tool call needs a token (`token`)".into()));
        };
        let mut http = Vec::new();
        let before = match t.downstream().await {
            Ok(d) => {
                http.push(d.evidence.clone());
                Some(received(&d).len())
            }
            Err(fourleg_target::TargetError::NoEndpoint { .. }) => None,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let o = match t.call_resource_tool(&tok, name, true).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        http.push(o.evidence.clone());
        let mut called_api = None;
        if let Some(before) = before {
            match t.downstream().await {
                Ok(d) => {
                    http.push(d.evidence.clone());
                    called_api = Some(received(&d).into_iter().skip(before).collect::<Vec<_>>());
                }
                Err(e) => return Err(self.down_or_error(e).await),
            }
        }
        let seen = match &called_api {
            None => "; no view of the API behind it".to_owned(),
            Some(v) => format!("; the API received {} token(s) during the call", v.len()),
        };
        let summary = format!("scoped tool call with `{name}`: {}{seen}", o.status);
        Ok(StepOut { summary, http, outcome: Some(o), called_api, ..StepOut::default() })
    }

    /// The `register` action (RFC 7591 §3.1).
    async fn register(&self, x: &RegisterStep) -> Result<StepOut, Skip> {
        let t = &self.target;
        let name = format!("fourleg-{:08x}", rand::random::<u32>());
        let o = match t.register_client(&name, &x.grant_types).await {
            Ok(o) => o,
            Err(e @ fourleg_target::TargetError::NoEndpoint { .. }) => return Err(Skip::Untestable(e.to_string())),
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let text = |k: &str| o.body.get(k).and_then(Value::as_str).map(str::to_owned);
        let var = match (o.is_success(), text("client_id"), text("client_secret")) {
            (true, Some(client_id), Some(secret)) => Var::Registered {
                client_id,
                name: name.clone(),
                asked_by: "registration",
                update: None,
                secret: Secret::new(secret),
                access_token: text("registration_access_token").map(Secret::new),
                uri: text("registration_client_uri"),
                grant_types: listed_grants(&o),
            },
            (true, Some(_), None) => Var::Missing("the registration gave no client_secret to authenticate with".into()),
            _ if (400..500).contains(&o.status) => Var::RegistrationRefused(describe(&o)),
            _ => Var::Missing(format!("the registration did not succeed: {}", describe(&o))),
        };
        Ok(StepOut {
            summary: format!("registration of {name}: {}", describe(&o)),
            http: vec![o.evidence.clone()],
            outcome: Some(o),
            var: Some(var),
            ..StepOut::default()
        })
    }

    /// The `registered` action: a registered client's own token, or its
    /// deletion (RFC 7592 §2.3).
    async fn registered(&self, x: &RegisteredStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let Some(
            registered @ Var::Registered { client_id, secret, access_token, uri, grant_types, asked_by, update, .. },
        ) = vars.get(&x.client)
        else {
            return match vars.get(&x.client) {
                Some(Var::RegistrationRefused(how)) if x.action == RegisteredAction::Exchange => Ok(StepOut {
                    summary: format!("no exchange: the registration was refused ({how})"),
                    registration: Some(checks::Registration {
                        grant_types: None,
                        refused: Some(how.clone()),
                        asked_by: "registration".into(),
                    }),
                    ..StepOut::default()
                }),
                Some(Var::RegistrationRefused(how)) => {
                    Err(Skip::Untestable(format!("`{}` is missing: the registration did not succeed: {how}", x.client)))
                }
                Some(Var::Missing(why)) => Err(Skip::Untestable(format!("`{}` is missing: {why}", x.client))),
                _ => Err(Skip::Error(format!("`{}` is not a client a `register` step saved", x.client))),
            };
        };
        if x.action == RegisteredAction::Exchange {
            let facts = checks::Registration {
                grant_types: grant_types.clone(),
                refused: match update {
                    Some(Unchanged::Refused(how)) => Some(how.clone()),
                    _ => None,
                },
                asked_by: (*asked_by).into(),
            };
            return match update {
                Some(Unchanged::Unsupported(why)) => Ok(StepOut::unmade(why.clone(), Vec::new())),
                Some(Unchanged::Refused(how)) => Ok(StepOut {
                    summary: format!("no exchange: the update was refused ({how})"),
                    registration: Some(facts),
                    ..StepOut::default()
                }),
                None => self.registered_exchange(client_id, secret, facts).await,
            };
        }
        if x.action == RegisteredAction::Update {
            return self.registered_update(x, registered).await;
        }
        let o =
            match x.action {
                RegisteredAction::Exchange | RegisteredAction::Update => unreachable!("handled above"),
                RegisteredAction::Token => t.registered_client_credentials(client_id, secret).await,
                RegisteredAction::Delete => match (uri, access_token) {
                    (Some(u), Some(a)) => t.delete_registration(u, a).await,
                    _ => return Err(Skip::Untestable(
                        "the registration gave no registration_client_uri and registration_access_token (RFC 7592 §3)"
                            .into(),
                    )),
                },
            };
        let o = match o {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let what = if x.action == RegisteredAction::Token { "client credentials of" } else { "deletion of" };
        Ok(StepOut {
            summary: format!("{what} the registered client {client_id}: {}", describe(&o)),
            http: vec![o.evidence.clone()],
            var: Some(Var::Http { outcome: o.clone(), client: None, user: None, audience: Vec::new() }),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `registered` action `update` (RFC 7592 §2.2): the client as the
    /// update returned it, or as it was, with why the update did not take.
    async fn registered_update(&self, x: &RegisteredStep, var: &Var) -> Result<StepOut, Skip> {
        let Var::Registered { client_id, name, secret, access_token, uri, .. } = var else {
            return Err(Skip::Error(format!("`{}` is not a registered client", x.client)));
        };
        if x.grant_types.is_empty() {
            return Err(Skip::Error("an `update` step needs `grant_types`".into()));
        }
        let (Some(u), Some(a)) = (uri, access_token) else {
            return Err(Skip::Untestable(
                "the registration gave no registration_client_uri and registration_access_token (RFC 7592 §3)".into(),
            ));
        };
        let o = match self.target.update_registration(u, a, client_id, name, &x.grant_types).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let text = |k: &str| o.body.get(k).and_then(Value::as_str).map(str::to_owned);
        let unchanged = |why: Unchanged| {
            let mut kept = var.clone();
            if let Var::Registered { update, asked_by, .. } = &mut kept {
                *update = Some(why);
                *asked_by = "update";
            }
            kept
        };
        let var = match o.status {
            s if (200..300).contains(&s) => Var::Registered {
                client_id: client_id.clone(),
                name: name.clone(),
                // RFC 7592 §3: the response may carry a new secret and a new
                // registration access token; without them the old ones stand.
                secret: text("client_secret").map_or_else(|| secret.clone(), Secret::new),
                access_token: text("registration_access_token").map(Secret::new).or_else(|| access_token.clone()),
                uri: text("registration_client_uri").or_else(|| uri.clone()),
                grant_types: listed_grants(&o),
                asked_by: "update",
                update: None,
            },
            404 | 405 | 501 => {
                unchanged(Unchanged::Unsupported(format!("the server offers no RFC 7592 update: {}", describe(&o))))
            }
            s if (400..500).contains(&s) => unchanged(Unchanged::Refused(describe(&o))),
            _ => unchanged(Unchanged::Unsupported(format!("the update failed: {}", describe(&o)))),
        };
        Ok(StepOut {
            summary: format!("update of the registered client {client_id}: {}", describe(&o)),
            http: vec![o.evidence.clone()],
            outcome: Some(o),
            var: Some(var),
            ..StepOut::default()
        })
    }

    /// The `registered` action `exchange`: the client's own token by client
    /// credentials, then its exchange by the client itself (RFC 8693 §2.1).
    /// Without its own token, what needs the exchange is untestable.
    async fn registered_exchange(
        &self,
        client_id: &str,
        secret: &Secret,
        facts: checks::Registration,
    ) -> Result<StepOut, Skip> {
        let t = &self.target;
        let own = match t.registered_client_credentials(client_id, secret).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let Some(subject) = own.token("access_token") else {
            let why = format!("the registered client {client_id} got no token of its own: {}", describe(&own));
            return Ok(StepOut { registration: Some(facts), ..StepOut::unmade(why, vec![own.evidence]) });
        };
        let o = match t.registered_exchange(client_id, secret, &subject).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        Ok(StepOut {
            summary: format!("the registered client {client_id} exchanged its own token: {}", describe(&o)),
            http: vec![own.evidence, o.evidence.clone()],
            var: Some(Var::Http { outcome: o.clone(), client: None, user: None, audience: Vec::new() }),
            outcome: Some(o),
            registration: Some(facts),
            ..StepOut::default()
        })
    }

    /// The `metadata` action with `authorization_server`: the RFC 8414
    /// metadata of the first authorization server the protected resource's
    /// metadata lists, as an MCP client finds it (RFC 9728 §2, RFC 8414 §3.1).
    async fn resource_authorization_server(&self) -> Result<StepOut, Skip> {
        let prm = self.resource_metadata().await?;
        let listed = prm
            .outcome
            .as_ref()
            .filter(|o| o.status == 200)
            .and_then(|o| o.body.get("authorization_servers"))
            .and_then(Value::as_array)
            .and_then(|list| list.iter().find_map(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| {
                Skip::Untestable(
                    "the protected resource's metadata names no authorization server (resource/protected-resource-metadata grades it)"
                        .into(),
                )
            })?;
        let url =
            fourleg_core::oauth::challenge::well_known_url(listed.trim_end_matches('/'), "oauth-authorization-server")
                .ok_or_else(|| {
                    Skip::Untestable(format!("the listed authorization server {listed:?} is not an absolute URL"))
                })?;
        let o = match self.target.get("authorization server metadata", &url).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let mut http = prm.http;
        http.push(o.evidence.clone());
        Ok(StepOut {
            summary: format!("metadata of the listed authorization server {listed} at {url}: {}", o.status),
            http,
            issuer: Some(listed),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `metadata` action with `protected_resource`: the resource's RFC
    /// 9728 metadata, found as a client finds it: from the
    /// `resource_metadata` of the 401 challenge to a request without a token
    /// (§5.1), else at the well-known URL made from its identifier (§3.1).
    async fn resource_metadata(&self) -> Result<StepOut, Skip> {
        let t = &self.target;
        let Some(resource) = t.endpoints.resource.clone() else {
            return Err(Skip::Untestable("the profile describes no protected resource ([resource])".into()));
        };
        let challenge = match t.call_resource(None).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let linked = challenge
            .headers
            .get("www-authenticate")
            .and_then(|h| fourleg_core::oauth::challenge::param(h, "Bearer", "resource_metadata"));
        let url = match &linked {
            Some(u) => u.clone(),
            None => fourleg_core::oauth::challenge::well_known_url(&resource, "oauth-protected-resource")
                .ok_or_else(|| Skip::Untestable(format!("the resource URL {resource} is not an absolute URL")))?,
        };
        let o = match t.get("protected resource metadata", &url).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let how = if linked.is_some() { "from the 401 challenge" } else { "at the well-known URL" };
        Ok(StepOut {
            summary: format!("protected resource metadata {how} {url}: {}", o.status),
            http: vec![challenge.evidence.clone(), o.evidence.clone()],
            resource: Some(resource),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `refresh` action (RFC 6749 §6).
    async fn refresh(&self, x: &RefreshStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let found = x.tokens.iter().find_map(|v| match vars.get(v) {
            Some(Var::Http { outcome, .. }) => outcome.token("refresh_token").map(|tok| (v, tok)),
            _ => None,
        });
        let Some((from, token)) = found else {
            return Ok(StepOut::unmade(format!("no refresh token in {}", x.tokens.join(", ")), Vec::new()));
        };
        let form = vec![
            ("grant_type".to_owned(), FormValue::Plain("refresh_token".into())),
            ("refresh_token".to_owned(), FormValue::Secret { value: token, label: format!("refresh_token: {from}") }),
        ];
        let endpoint = t.token_endpoint().map_err(Self::harness)?;
        let o = match t
            .post_form(&format!("refresh as {}", x.client), endpoint, Some(&x.client), ClientAuthMode::Profile, form)
            .await
        {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let summary = format!("refresh by {} with {from}'s refresh token: {}", x.client, describe(&o));
        Ok(StepOut::token_response(summary, o, &x.client, Vec::new()))
    }

    /// The `relay` action: delegation hop after hop through the contract's
    /// relay clients (§4), each with its own actor token, from the subject's
    /// depth to `until` actors. Every hop's traffic is evidence; a hop before
    /// the last that is refused leaves the step unmade (its checks
    /// untestable: the chain the rule needs could not be built).
    async fn relay(&self, x: &RelayStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let contract = self.target.contract();
        let (limit, declared) = contract.max_delegation_depth();
        let limit_says = if declared {
            format!("the declared limit is {limit}")
        } else {
            format!("no limit declared: the agent profile's default, {limit}")
        };
        let (from, until) = (x.from.actors(limit), x.until.actors(limit));
        if until <= from {
            return Err(Skip::Error(format!("relay from {from} to {until} actors makes no hop")));
        }
        // Every hop's client must exist before the first is sent.
        let mut hops = Vec::new();
        for depth in from + 1..=until {
            hops.push((
                depth,
                contract.relay_client(depth).map_err(|g| Skip::Untestable(format!("{} ({limit_says})", g.0)))?,
            ));
        }
        // The subject must hold a token: name its variable if not.
        Self::token_of(vars, &x.subject, None)?;
        let mut http = Vec::new();
        let mut local: HashMap<String, Var> = HashMap::new();
        let subject =
            vars.get(&x.subject).cloned().ok_or_else(|| Skip::Error(format!("no variable `{}`", x.subject)))?;
        local.insert("subject".into(), subject);
        let mut last = None;
        for (depth, client) in hops {
            let actor_step = TokenStep {
                principal: client.clone(),
                scope: Vec::new(),
                may_act: None,
                short_lived: false,
                audience_also: None,
                foreign: false,
                no_audience: false,
                dpop: None,
            };
            let actor = self.token(&actor_step, &ProofKeys::default()).await?;
            http.extend(actor.http);
            let Some(var @ Var::Http { .. }) = actor.var else {
                let why = format!("the relay chain stopped before {depth} actors: no actor token for `{client}`");
                return Ok(StepOut::unmade(why, http));
            };
            local.insert("actor".into(), var);
            let hop = ExchangeStep {
                client: client.clone(),
                subject: Some("subject".into()),
                actor: Some("actor".into()),
                audience: vec![contract.relay_audience(depth)],
                scope: x.scope.clone(),
                ..ExchangeStep::default()
            };
            let out = self.exchange(&hop, &local, &ProofKeys::default()).await?;
            http.extend(out.http);
            let o = out.outcome.expect("an exchange has an outcome");
            if depth < until && !(o.is_success() && o.body["access_token"].is_string()) {
                let why = format!(
                    "the relay chain stopped before {until} actors ({limit_says}): `{client}`'s exchange for a token {depth} actors deep was refused: {}",
                    describe(&o)
                );
                return Ok(StepOut::unmade(why, http));
            }
            if let Some(v) = out.var {
                local.insert("subject".into(), v);
            }
            last = Some((depth, client, o));
        }
        let (depth, client, o) = last.expect("at least one hop");
        Ok(StepOut {
            summary: format!("relay to {depth} actors ({limit_says}); last hop by {client}: {}", describe(&o)),
            http,
            var: local.remove("subject"),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `token` action.
    async fn token(&self, x: &TokenStep, keys: &ProofKeys) -> Result<StepOut, Skip> {
        let t = &self.target;
        let mut scope = self.scope_values(&x.scope)?;
        if let Some(m) = &x.may_act {
            scope.extend(self.may_act_scope(m)?);
        }
        if let Some(p) = &x.audience_also {
            scope.extend(t.contract().audience_also_recipe(p).map(|r| r.scope.clone()).map_err(Skip::gap)?);
        }
        let contract = t.contract();
        let recipe = if x.foreign {
            contract.foreign_recipe(&x.principal)
        } else if x.no_audience {
            contract.audience_none_recipe(&x.principal, scope)
        } else {
            contract.token_recipe(&x.principal, scope, x.short_lived)
        }
        .map_err(Skip::gap)?;
        let key = x.dpop.as_deref().map(|k| keys.key(k));
        let o = match t.obtain_bound(&recipe, key.as_deref()).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let proof = o.evidence.dpop.as_ref().and(key.as_ref()).map(|k| k.thumbprint().to_owned());
        if !o.is_success() {
            // Keep the evidence of the refusal; what depends on this
            // token becomes untestable with the reason.
            let why = format!("could not obtain the first token of `{}`: {}", x.principal, describe(&o));
            return Ok(StepOut {
                summary: why.clone(),
                http: vec![o.evidence.clone()],
                var: Some(Var::Missing(why)),
                outcome: Some(o),
                proof_key: proof,
                ..StepOut::default()
            });
        }
        Ok(StepOut {
            proof_key: proof,
            summary: format!("first token of {} ({})", x.principal, describe(&o)),
            http: vec![o.evidence.clone()],
            var: Some(Var::Http {
                outcome: o.clone(),
                client: Some(contract.obtained_by(&recipe)),
                user: recipe.user().map(str::to_owned),
                audience: Vec::new(),
            }),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `exchange` action.
    async fn exchange(&self, x: &ExchangeStep, vars: &HashMap<String, Var>, keys: &ProofKeys) -> Result<StepOut, Skip> {
        let t = &self.target;
        let mut form: Vec<(String, FormValue)> = Vec::new();
        let omit = |p: Omit| x.omit.contains(&p);
        if !omit(Omit::GrantType) {
            form.push((
                "grant_type".into(),
                FormValue::Plain(x.grant_type.clone().unwrap_or_else(|| TOKEN_EXCHANGE_GRANT.into())),
            ));
        }
        if !omit(Omit::SubjectToken) {
            if let Some(lit) = &x.subject_literal {
                form.push((
                    "subject_token".into(),
                    FormValue::Secret { value: Secret::new(lit.clone()), label: "subject_token: literal".into() },
                ));
            } else if let Some(v) = &x.subject {
                let tok = Self::token_of(vars, v, x.subject_field.as_deref())?;
                form.push((
                    "subject_token".into(),
                    FormValue::Secret { value: tok, label: format!("subject_token: {v}") },
                ));
            }
        }
        if !omit(Omit::SubjectTokenType) {
            let ty = x.subject_token_type.clone().unwrap_or_else(|| "access_token".into());
            form.push(("subject_token_type".into(), FormValue::Plain(token_type::expand(&ty))));
        }
        let has_actor = x.actor.is_some() || x.actor_literal.is_some();
        if let Some(lit) = &x.actor_literal {
            form.push((
                "actor_token".into(),
                FormValue::Secret { value: Secret::new(lit.clone()), label: "actor_token: literal".into() },
            ));
        } else if let Some(v) = &x.actor {
            let tok = Self::token_of(vars, v, x.actor_field.as_deref())?;
            form.push(("actor_token".into(), FormValue::Secret { value: tok, label: format!("actor_token: {v}") }));
        }
        if !omit(Omit::ActorTokenType) && (has_actor || x.actor_token_type.is_some()) {
            let ty = x.actor_token_type.clone().unwrap_or_else(|| "access_token".into());
            form.push(("actor_token_type".into(), FormValue::Plain(token_type::expand(&ty))));
        }
        for a in &x.audience {
            for (param, v) in t.contract().target_params(a).map_err(Skip::gap)? {
                form.push((param.into(), FormValue::Plain(v)));
            }
        }
        for a in &x.audience_literal {
            form.push(("audience".into(), FormValue::Plain(a.clone())));
        }
        for r in &x.resource {
            form.push(("resource".into(), FormValue::Plain(r.clone())));
        }
        let mut scope: Vec<String> = Vec::new();
        if let Some(perms) = &x.scope {
            scope.extend(self.scope_values(perms)?);
        }
        scope.extend(x.scope_literal.iter().cloned());
        if let Some(m) = &x.may_act {
            scope.extend(self.may_act_scope(m)?);
        }
        if x.scope.is_some() || !scope.is_empty() {
            form.push(("scope".into(), FormValue::Plain(scope.join(" "))));
        }
        if let Some(r) = &x.requested_token_type {
            form.push(("requested_token_type".into(), FormValue::Plain(token_type::expand(r))));
        }
        for (k, v) in &x.params {
            form.push((k.clone(), FormValue::Plain(v.clone())));
        }
        let mode = x.auth.map_or(ClientAuthMode::Profile, ClientAuth::mode);
        let endpoint = t.token_endpoint().map_err(Self::harness)?;
        let proof = match &x.dpop {
            None => None,
            Some(d) => Some(match &d.replay {
                Some(var) => match keys.sent_by(var) {
                    Some((key, p)) if key == d.key => p,
                    Some((key, _)) => {
                        return Err(Skip::Error(format!("`{var}` sent a proof of key `{key}`, not of `{}`", d.key)))
                    }
                    None => return Err(Skip::Untestable(format!("`{var}` sent no DPoP proof to replay"))),
                },
                None => keys.key(&d.key).proof("POST", endpoint, d.flaw),
            }),
        };
        let label = match &x.dpop {
            Some(d) if d.replay.is_some() => format!("exchange as {} (DPoP proof replayed)", x.client),
            Some(d) => match d.flaw {
                Some(f) => format!("exchange as {} (DPoP proof: {})", x.client, f.describe()),
                None => format!("exchange as {} (DPoP proof of key {})", x.client, d.key),
            },
            None => format!("exchange as {}", x.client),
        };
        let o = t.post_form_dpop(&label, endpoint, Some(&x.client), mode, form, proof.as_ref()).await;
        let o = match o {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let summary = format!("token exchange by {}: {}", x.client, describe(&o));
        let mut out = StepOut::token_response(summary, o, &x.client, x.audience.clone());
        out.proof_key = x.dpop.as_ref().map(|d| keys.key(&d.key).thumbprint().to_owned());
        out.proof = proof;
        Ok(out)
    }

    /// The `introspect` action.
    async fn introspect(&self, x: &IntrospectStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let tok = Self::token_of(vars, &x.token, x.field.as_deref())?;
        let client = match &x.client {
            Some(c) => c.clone(),
            None => self.introspector(&tok, vars.get(&x.token))?,
        };
        let mode = match x.auth {
            Some(IntrospectAuth::None) => ClientAuthMode::None,
            Some(IntrospectAuth::Profile) | None => ClientAuthMode::Profile,
        };
        let o = match t.introspect(&tok, &x.token, &client, mode).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        Ok(StepOut {
            summary: format!("introspection of {} as {client}: active={}", x.token, o.body["active"]),
            http: vec![o.evidence.clone()],
            var: Some(Var::Http { outcome: o.clone(), client: Some(client), user: None, audience: Vec::new() }),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `revoke` action.
    async fn revoke(&self, x: &RevokeStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let (tok, label) = match &x.literal {
            Some(l) => (Secret::new(l.clone()), "a literal token".to_owned()),
            None => (Self::token_of(vars, &x.token, x.field.as_deref())?, x.token.clone()),
        };
        let client = match &x.client {
            Some(c) => c.clone(),
            None => self.revoker(&tok, vars.get(&x.token))?,
        };
        let o = match t.revoke(&tok, &label, &client, x.hint.as_deref()).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let access = x.literal.is_none() && x.field.as_deref().unwrap_or("access_token") == "access_token";
        Ok(StepOut {
            summary: format!("revocation of {label} by {client}: {}", describe(&o)),
            revoked_access_token: Some(access),
            http: vec![o.evidence.clone()],
            var: Some(Var::Http { outcome: o.clone(), client: Some(client), user: None, audience: Vec::new() }),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `logout` action.
    async fn logout(&self, x: &LogoutStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let Some(Var::Http { user: Some(user), .. }) = vars.get(&x.login) else {
            return Err(Skip::Error(format!("`{}` is not a user's login", x.login)));
        };
        let recipe = t.contract().logout_recipe().map_err(Skip::gap)?;
        let token = Self::token_of(vars, &x.login, Some(recipe.token_field))?;
        let o = match t.logout(user, &token, &format!("session of {}", x.login)).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        Ok(StepOut {
            summary: format!("logout of {user}: {}", describe(&o)),
            http: vec![o.evidence.clone()],
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `forge` action.
    async fn forge(&self, x: &ForgeStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let src = Self::token_of(vars, &x.from, None)?;
        let d = jwt::decode(src.expose()).map_err(|e| Skip::Untestable(format!("`{}` is not a JWT: {e}", x.from)))?;
        let mut claims = d.claims.clone();
        for (k, v) in &x.set {
            claims[k] = self.resolve_value(v).await;
        }
        for k in &x.remove {
            if let Some(o) = claims.as_object_mut() {
                o.remove(k);
            }
        }
        let forged = match x.kind {
            ForgeKind::AlgNone => forge::alg_none(&claims),
            ForgeKind::Edit => forge::edit(src.expose(), &claims).map_err(|e| Skip::Error(e.to_string()))?,
            ForgeKind::ForeignIssuer => forge::foreign_issuer(&claims),
            ForgeKind::Hs256PublicKey => {
                let jwks = match self.jwks().await {
                    Ok(j) => j,
                    Err(e) => return Err(self.down_or_error(e).await),
                };
                forge::hs256_with_public_key(&claims, &jwks).map_err(|e| Skip::Untestable(e.to_string()))?
            }
        };
        // The evidence: what was forged, decoded (the token itself is never kept).
        let tokens = jwt::decode(&forged).map(|d| BTreeMap::from([("forged".to_owned(), d)])).unwrap_or_default();
        Ok(StepOut {
            summary: format!("forged a {:?} token from {}", x.kind, x.from),
            var: Some(Var::Forged(Secret::new(forged))),
            tokens,
            ..StepOut::default()
        })
    }

    /// The `hook` action.
    async fn hook(&self, x: &HookStep) -> Result<StepOut, Skip> {
        self.target.run_hook(x.run.as_str(), &x.client).await.map_err(|e| Skip::Untestable(e.to_string()))?;
        Ok(StepOut { summary: format!("hook {} for {}", x.run.as_str(), x.client), ..StepOut::default() })
    }

    /// The `wait` action.
    async fn wait(&self, x: &WaitStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let begin = Instant::now();
        // Expiry means past `exp` and the target's declared leeway (RFC 7519 §4.1.4).
        let leeway_s = if x.until == WaitUntil::Expired { t.contract().expiry_leeway_s() } else { 0 };
        let timeout = match x.until {
            WaitUntil::Refused => {
                let window =
                    t.contract().resource().and_then(|r| r.revocation_window_s).ok_or_else(|| {
                        Skip::Untestable("the profile declares no [resource] revocation_window_s".into())
                    })?;
                if window > MAX_RESOURCE_WINDOW_S {
                    return Err(Skip::Untestable(format!(
                        "the declared revocation window ({window} s) is longer than the suite waits ({MAX_RESOURCE_WINDOW_S} s)"
                    )));
                }
                Duration::from_secs(window)
            }
            _ => Duration::from_millis(x.timeout_ms) + Duration::from_secs(leeway_s),
        };
        let leeway = i64::try_from(leeway_s).unwrap_or(i64::MAX);
        if x.until == WaitUntil::Expired {
            // A token that outlives the wait cannot expire in it: say so now
            // rather than after the whole timeout.
            let allowed = i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX);
            for name in &x.tokens {
                let tok = Self::token_of(vars, name, None)?;
                match jwt::decode(tok.expose()).ok().and_then(|d| d.claims["exp"].as_i64()) {
                    None => return Err(Skip::Untestable(format!("`{name}` carries no exp to wait for"))),
                    Some(e) if e.saturating_add(leeway).saturating_sub(now_s()) > allowed => {
                        return Err(Skip::Untestable(format!(
                            "`{name}` expires in {} s, past the {allowed} s this wait allows: the target issued no short-lived token here",
                            e.saturating_sub(now_s())
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        let mut last = Vec::new();
        let mut pending: Vec<String>;
        loop {
            pending = Vec::new();
            for name in &x.tokens {
                let tok = Self::token_of(vars, name, None)?;
                if x.until == WaitUntil::Expired {
                    let exp = jwt::decode(tok.expose()).ok().and_then(|d| d.claims["exp"].as_i64());
                    if exp.is_none_or(|e| e.saturating_add(leeway) >= now_s()) {
                        pending.push(name.clone());
                    }
                } else if x.until == WaitUntil::Refused {
                    let o = match t.call_resource(Some((&tok, name))).await {
                        Ok(o) => o,
                        Err(e) => return Err(self.down_or_error(e).await),
                    };
                    if o.is_success() {
                        pending.push(name.clone());
                    }
                    last.push(o.evidence);
                } else {
                    let client = self.introspector(&tok, vars.get(name))?;
                    let o = match t.introspect(&tok, name, &client, ClientAuthMode::Profile).await {
                        Ok(o) => o,
                        Err(e) => return Err(self.down_or_error(e).await),
                    };
                    if o.body["active"] != Value::Bool(false) {
                        pending.push(name.clone());
                    }
                    last.push(o.evidence);
                }
            }
            if pending.is_empty() || begin.elapsed() >= timeout {
                break;
            }
            last.clear();
            tokio::time::sleep(Duration::from_millis(x.interval_ms)).await;
        }
        let w = WaitOutcome {
            held: pending.is_empty(),
            elapsed_ms: ms(begin.elapsed()),
            timeout_ms: ms(timeout),
            pending: pending.clone(),
        };
        if x.until == WaitUntil::Expired && !w.held {
            return Err(Skip::Untestable(format!("{} did not expire within {} ms", pending.join(", "), w.timeout_ms)));
        }
        let until = if leeway > 0 {
            format!("{} (exp + {leeway} s leeway)", x.until.as_str())
        } else {
            x.until.as_str().to_owned()
        };
        Ok(StepOut {
            summary: if w.held {
                format!("{until} held after {} ms", w.elapsed_ms)
            } else {
                format!("{until} did not hold within {} ms for {}", ms(timeout), pending.join(", "))
            },
            http: last,
            wait: Some(w),
            ..StepOut::default()
        })
    }

    /// The `accept` action.
    async fn accept(&self, x: &AcceptStep, vars: &HashMap<String, Var>) -> Result<StepOut, Skip> {
        let t = &self.target;
        let tok = Self::token_of(vars, &x.token, None)?;
        let jwks = match self.jwks().await {
            Ok(j) => j,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        let aud = t.contract().aud_value(&x.resource);
        let a = match jwt::decode(tok.expose()) {
            Err(e) => AcceptOutcome { accepted: false, reason: format!("not a JWT: {e}"), remaining_s: 0 },
            Ok(d) => {
                let remaining = d.claims["exp"].as_i64().map_or(0, |e| e - now_s());
                // Any algorithm the issuer's keys admit (RFC 8725 §3.1), not only RS256/ES256.
                let sig = jose::Jwks::from_value(&jwks)
                    .map_err(|e| e.to_string())
                    .and_then(|keys| keys.verify(tok.expose()).map_err(|e| e.to_string()));
                let aud_ok = checks::aud_set(&d.claims).contains(&aud);
                let (accepted, reason) = match (sig, aud_ok, remaining > 0) {
                    (Err(e), _, _) => (false, format!("signature does not verify with the issuer's JWKS: {e}")),
                    (_, false, _) => (false, format!("aud does not contain {aud}")),
                    (_, _, false) => (false, "expired".to_owned()),
                    (Ok(_), true, true) => {
                        (true, format!("valid signature, aud contains {aud}, {remaining} s until exp"))
                    }
                };
                AcceptOutcome { accepted, reason, remaining_s: remaining }
            }
        };
        Ok(StepOut {
            summary: format!("stateless check of {} by {}: {}", x.token, x.resource, a.reason),
            accept: Some(a),
            ..StepOut::default()
        })
    }

    /// The `metadata` action.
    async fn metadata(&self) -> Result<StepOut, Skip> {
        let t = &self.target;
        let url = t.metadata_url.clone().ok_or_else(|| {
            Skip::Untestable("the profile configures no discovery (endpoints.issuer with discovery)".into())
        })?;
        let o = match t.get("metadata", &url).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        Ok(StepOut {
            summary: format!("metadata {}: {}", url, o.status),
            http: vec![o.evidence.clone()],
            issuer: t.endpoints.issuer.clone(),
            var: Some(Var::Http { outcome: o.clone(), client: None, user: None, audience: Vec::new() }),
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `metadata` action with `jwks`: the JWK Set at `jwks_uri`.
    async fn jwks_document(&self) -> Result<StepOut, Skip> {
        let t = &self.target;
        let url = t
            .endpoints
            .jwks
            .clone()
            .ok_or_else(|| Skip::Untestable("the target has no jwks_uri (metadata or profile)".into()))?;
        let o = match t.get("jwks", &url).await {
            Ok(o) => o,
            Err(e) => return Err(self.down_or_error(e).await),
        };
        Ok(StepOut {
            summary: format!("JWK Set {}: {}", url, o.status),
            http: vec![o.evidence.clone()],
            outcome: Some(o),
            ..StepOut::default()
        })
    }

    /// The `sleep` action.
    async fn sleep(&self, x: &SleepStep) -> Result<StepOut, Skip> {
        tokio::time::sleep(Duration::from_millis(x.ms)).await;
        Ok(StepOut { summary: format!("slept {} ms", x.ms), ..StepOut::default() })
    }

    /// `{agent.sub}`-style values resolve to a principal's identity.
    async fn resolve_value(&self, v: &toml::Value) -> Value {
        match v {
            toml::Value::String(s) if s.starts_with('{') && s.ends_with('}') && s.contains('.') => {
                let inner = &s[1..s.len() - 1];
                let (p, what) = inner.split_once('.').unwrap_or((inner, "sub"));
                let id = self.identity(p).await;
                let value = match what {
                    "client_id" => id.client_id.clone(),
                    _ => id.names.iter().find(|n| Some(*n) != id.client_id.as_ref()).cloned().or(id.client_id.clone()),
                };
                Value::String(value.unwrap_or_default())
            }
            toml::Value::Table(t) => {
                let mut m = serde_json::Map::new();
                for (k, v) in t {
                    m.insert(k.clone(), Box::pin(self.resolve_value(v)).await);
                }
                Value::Object(m)
            }
            other => serde_json::to_value(other).unwrap_or(Value::Null),
        }
    }

    /// Who introspects a token: the target's answer (`[introspection] as`).
    fn introspector(&self, tok: &Secret, var: Option<&Var>) -> Result<String, Skip> {
        let claims = jwt::decode(tok.expose()).ok().map(|d| d.claims);
        self.target.contract().introspector_for(Self::facts(claims.as_ref(), var)).map_err(Skip::gap)
    }

    /// Who revokes a token: the target's answer (`[revocation] as`).
    fn revoker(&self, tok: &Secret, var: Option<&Var>) -> Result<String, Skip> {
        let claims = jwt::decode(tok.expose()).ok().map(|d| d.claims);
        self.target.contract().revoker_for(Self::facts(claims.as_ref(), var)).map_err(Skip::gap)
    }

    fn facts<'a>(claims: Option<&'a Value>, var: Option<&'a Var>) -> TokenFacts<'a> {
        match var {
            Some(Var::Http { client, audience, .. }) => {
                TokenFacts { claims, obtained_by: client.as_deref(), asked_audience: audience }
            }
            _ => TokenFacts { claims, ..TokenFacts::default() },
        }
    }
}

/// Grading: what a check or a precondition found, a pure function of the
/// step's recorded outcome, the saved variables and the identities the
/// prelude resolved. It never makes a request of its own.
struct Grader<'a> {
    registry: &'a Registry,
    contract: Contract<'a>,
    identities: &'a BTreeMap<String, IdentityRecord>,
}

impl Grader<'_> {
    /// A principal's identity as the prelude recorded it (else what the
    /// profile says).
    fn identity(&self, principal: &str) -> Identity {
        self.identities.get(principal).map_or_else(
            || self.contract.declared_identity(principal).map(|(i, _)| i).unwrap_or_default(),
            |r| r.identity.clone(),
        )
    }

    fn graded(&self, e: &Expect, step: usize, status: Status, message: String) -> CheckResult {
        let level = self.registry.get(&e.rule).map_or(Level::Must, |r| r.level);
        CheckResult { rule: e.rule.clone(), level, kind: RuleKind::of(&e.rule), status, message, step: Some(step) }
    }

    /// Evaluates a precondition (`[[steps.require]]`): the same assertions as
    /// a check, but it names no rule and is never graded. Pure: it reads the
    /// step's recorded outcome only.
    fn precondition(&self, e: &Expect, out: &StepOut, vars: &HashMap<String, Var>) -> (bool, String) {
        let (status, message) = self.assess(e, out, vars).0;
        let message = match &e.message {
            Some(m) if status != Status::Pass => format!("{m} ({message})"),
            _ => message,
        };
        (status == Status::Pass, message)
    }

    fn check(
        &self,
        e: &Expect,
        step: usize,
        out: &StepOut,
        vars: &HashMap<String, Var>,
    ) -> (CheckResult, Option<checks::Figure>) {
        let ((ok_status, message), figure) = self.assess(e, out, vars);
        let level = self.registry.get(&e.rule).map_or(Level::Must, |r| r.level);
        let status = if ok_status == Status::Fail { level.on_failure() } else { ok_status };
        // The expectation's message describes the failure: it heads what was
        // not met, never a check that did not apply (that says why itself).
        let message = match (&e.message, status) {
            (Some(m), s) if s != Status::Pass && s != Status::NotApplicable => format!("{m} ({message})"),
            _ => message,
        };
        (self.graded(e, step, status, message), figure)
    }

    /// What an assertion found, before its rule's level grades it: `Fail`
    /// means "not met".
    fn assess(
        &self,
        e: &Expect,
        out: &StepOut,
        vars: &HashMap<String, Var>,
    ) -> ((Status, String), Option<checks::Figure>) {
        let o = out.outcome.as_ref();
        let pass = |m: String| (Status::Pass, m);
        let fail = |m: String| (Status::Fail, m);
        let token_claims: Option<Value> = match &e.token {
            Some(v) => Engine::claims_of(vars, v),
            None => {
                o.and_then(|o| o.token("access_token")).and_then(|t| jwt::decode(t.expose()).ok()).map(|d| d.claims)
            }
        };
        let mut figure = None;
        let verdict = match &e.assertion {
            &Assertion::Status(want) => match o {
                Some(o) if o.status == want => pass(format!("status {want}")),
                Some(o) => fail(format!("expected status {want}, got {}", describe(o))),
                None => (Status::Untestable, "no response".into()),
            },
            Assertion::StatusIn(want) => match o {
                Some(o) if want.contains(&o.status) => pass(format!("status {}", o.status)),
                Some(o) => fail(format!("expected status in {want:?}, got {}", describe(o))),
                None => (Status::Untestable, "no response".into()),
            },
            &Assertion::Success(want) => match o {
                Some(o) if want && o.is_success() && o.body["access_token"].is_string() => {
                    pass(format!("{}: a token was issued", o.status))
                }
                Some(o) if want => fail(format!("expected a token, got {}", describe(o))),
                Some(o) if (400..500).contains(&o.status) => pass(format!("refused: {}", describe(o))),
                Some(o) if o.is_success() && o.body["access_token"].is_string() => {
                    fail(format!("expected a refusal, but a token was issued ({})", o.status))
                }
                Some(o) if o.is_success() => {
                    fail(format!("expected a refusal, but the request succeeded ({})", o.status))
                }
                Some(o) => fail(format!("expected a refusal (4xx), got {}", describe(o))),
                None => (Status::Untestable, "no response".into()),
            },
            Assertion::Error(want) => match o {
                Some(o) if o.error() == Some(want.as_str()) => pass(format!("error {want}")),
                Some(o) if o.is_success() => {
                    fail(format!("expected error {want}, but the request succeeded ({})", o.status))
                }
                Some(o) => fail(format!("expected error {want}, got {}", describe(o))),
                None => (Status::Untestable, "no response".into()),
            },
            Assertion::ErrorIn(want) => {
                let want: Vec<&str> = want.iter().map(ErrorCode::as_str).collect();
                match o {
                    Some(o) if o.error().is_some_and(|x| want.contains(&x)) => {
                        pass(format!("error {}", o.error().unwrap_or("")))
                    }
                    Some(o) if o.is_success() => {
                        fail(format!("expected one of errors {want:?}, but the request succeeded ({})", o.status))
                    }
                    Some(o) => fail(format!("expected one of errors {want:?}, got {}", describe(o))),
                    None => (Status::Untestable, "no response".into()),
                }
            }
            Assertion::Header { name: h, modifier } => {
                let v = o.and_then(|o| o.headers.get(&h.to_ascii_lowercase()));
                self.modifier(modifier, &format!("header {h}"), v.map(|s| Value::String(s.clone())).as_ref())
            }
            Assertion::Field { path: f, modifier } => {
                let v = o.and_then(|o| path(&o.body, f));
                if o.is_none() {
                    (Status::Untestable, "no response".into())
                } else {
                    self.modifier(modifier, &format!("field {f}"), v.as_ref())
                }
            }
            Assertion::Claim { path: c, modifier } => match &token_claims {
                None => (
                    Status::Untestable,
                    match o {
                        Some(o) if !o.is_success() => format!("no token to check claim {c}: {}", describe(o)),
                        _ => format!("no decodable token to check claim {c}"),
                    },
                ),
                Some(claims) => self.modifier(modifier, &format!("claim {c}"), path(claims, c).as_ref()),
            },
            Assertion::Check { name, args } => {
                let mut ids = BTreeMap::new();
                for p in Self::principals_named(args) {
                    ids.insert(p.clone(), self.identity(&p));
                }
                let than = args.get("than").and_then(toml::Value::as_str).and_then(|v| Engine::claims_of(vars, v));
                let input = Input {
                    outcome: o,
                    claims: token_claims.as_ref(),
                    than: than.as_ref(),
                    identities: &ids,
                    contract: self.contract,
                    args,
                    wait: out.wait.as_ref(),
                    accept: out.accept.as_ref(),
                    revoked_access_token: out.revoked_access_token,
                    issuer: out.issuer.as_deref(),
                    resource: out.resource.as_deref(),
                    proof_key: out.proof_key.as_deref(),
                    downstream: out.downstream.as_ref(),
                    called_api: out.called_api.as_deref(),
                    registration: out.registration.as_ref(),
                };
                let (v, f) = checks::run(name, &input);
                figure = f;
                match v {
                    Verdict::Pass(m) => pass(m),
                    Verdict::Fail(m) => fail(m),
                    Verdict::Untestable(m) => (Status::Untestable, m),
                    Verdict::NotApplicable(m) => (Status::NotApplicable, m),
                }
            }
        };
        (verdict, figure)
    }

    /// The principals a named check's arguments name, whose identities it needs.
    fn principals_named(args: &BTreeMap<String, toml::Value>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for key in ["principal", "user"] {
            if let Some(s) = args.get(key).and_then(toml::Value::as_str) {
                out.push(s.to_owned());
            }
        }
        if let Some(a) = args.get("actors").and_then(toml::Value::as_array) {
            out.extend(a.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
        out
    }

    fn modifier(&self, m: &Modifier, what: &str, v: Option<&Value>) -> (Status, String) {
        let shown = v.map_or_else(|| "absent".to_owned(), evidence_value);
        match m {
            &Modifier::Present(want) => match (want, v.is_some_and(|v| !v.is_null())) {
                (true, true) => (Status::Pass, format!("{what} present ({shown})")),
                (true, false) => (Status::Fail, format!("{what} missing")),
                (false, false) => (Status::Pass, format!("{what} absent")),
                (false, true) => (Status::Fail, format!("{what} present but must not be ({shown})")),
            },
            Modifier::Equals(want) => {
                let want = serde_json::to_value(want).unwrap_or(Value::Null);
                if v == Some(&want) {
                    (Status::Pass, format!("{what} = {shown}"))
                } else {
                    (Status::Fail, format!("expected {what} = {want}, found {shown}"))
                }
            }
            Modifier::OneOf(list) => {
                let list: Vec<Value> = list.iter().filter_map(|x| serde_json::to_value(x).ok()).collect();
                if v.is_some_and(|v| list.contains(v)) {
                    (Status::Pass, format!("{what} = {shown}"))
                } else {
                    (Status::Fail, format!("expected {what} in {}, found {shown}", Value::Array(list)))
                }
            }
            Modifier::Contains(sub) => {
                let text = match v {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                if text.to_ascii_lowercase().contains(&sub.to_ascii_lowercase()) {
                    (Status::Pass, format!("{what} contains {sub} ({shown})"))
                } else {
                    (Status::Fail, format!("expected {what} to contain {sub}, found {shown}"))
                }
            }
            Modifier::Principal(p) => {
                let id = self.identity(p);
                if v.is_some_and(|v| id.matches(v)) {
                    (Status::Pass, format!("{what} identifies {p} ({shown})"))
                } else {
                    (Status::Fail, format!("expected {what} to identify {p}, found {shown}"))
                }
            }
        }
    }
}

/// Why a step did not run.
#[derive(Debug)]
enum Skip {
    Untestable(String),
    Error(String),
    Down(TargetDown),
}

impl Skip {
    /// A question the profile does not answer: what needed it is untestable.
    fn gap(g: Gap) -> Self {
        Skip::Untestable(g.0)
    }
}

/// A dot path into JSON (`act.act.sub`, `keys.0.kid`).
#[must_use]
pub fn path(v: &Value, p: &str) -> Option<Value> {
    let mut cur = v;
    for seg in p.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}

fn evidence_value(v: &Value) -> String {
    let s = v.to_string();
    let s = fourleg_target::evidence::scrub(&s);
    if s.len() > 200 {
        format!("{}…", &s[..s.char_indices().nth(200).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outcome(status: u16, body: Value) -> Outcome {
        Outcome {
            status,
            headers: BTreeMap::new(),
            body: body.clone(),
            evidence: fourleg_target::HttpEvidence {
                label: String::new(),
                method: "POST".into(),
                url: String::new(),
                auth: String::new(),
                form: Vec::new(),
                status,
                headers: BTreeMap::new(),
                body,
                tokens: BTreeMap::new(),
                dpop: None,
                elapsed_ms: 0,
            },
        }
    }

    /// The expectations of one step, written as a scenario would.
    fn expects(toml_text: &str) -> Vec<Expect> {
        let step: Step = toml::from_str(&format!("[metadata]\n{toml_text}")).unwrap();
        step.expect
    }

    /// Grading is a pure function of the recorded outcome and the prelude's
    /// identities: one table, no target.
    #[test]
    fn grading_is_a_pure_function_of_the_records() {
        let registry =
            Registry::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/requirements.toml"))
                .unwrap();
        let profile = fourleg_target::Profile::parse(
            r#"
name = "t"
product = "T"
summary = "s"
[endpoints]
issuer = "https://idp.example"
[clients.agent]
client_id = "agent"
secret = { env = "X" }
[users.alice]
username = "alice"
password = { env = "P" }
login = "password"
client = "agent"
[permissions]
"records:read" = "read"
[audiences]
agent = "agent"
[features]
delegation = true
may-act = true
introspection = true
revocation = true
resource = false
"#,
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let identities = BTreeMap::from([(
            "alice".to_owned(),
            IdentityRecord {
                identity: Identity { client_id: None, names: ["alice".to_owned(), "u-1".to_owned()].into() },
                source: IdentitySource::Login,
                note: None,
            },
        )]);
        let grader = Grader { registry: &registry, contract: Contract::new(&profile), identities: &identities };
        let vars = HashMap::new();
        let must = "rule = \"RFC7662-2.2-active\"";
        let should = "rule = \"RFC7662-2.2-inactive-only\"";
        let table: &[(&str, Option<Outcome>, Status)] = &[
            (
                &format!("[[expect]]\n{must}\nfield = \"active\"\nequals = false"),
                Some(outcome(200, json!({"active": false}))),
                Status::Pass,
            ),
            (
                &format!("[[expect]]\n{must}\nfield = \"active\"\nequals = false"),
                Some(outcome(200, json!({"active": true}))),
                Status::Fail,
            ),
            (
                &format!("[[expect]]\n{should}\nfield = \"active\"\nequals = false"),
                Some(outcome(200, json!({"active": true}))),
                Status::Warn,
            ),
            (&format!("[[expect]]\n{must}\nfield = \"active\"\nequals = false"), None, Status::Untestable),
            (
                &format!("[[expect]]\n{must}\nstatus = 400"),
                Some(outcome(400, json!({"error": "invalid_request"}))),
                Status::Pass,
            ),
            (
                &format!("[[expect]]\n{must}\nfield = \"sub\"\nprincipal = \"alice\""),
                Some(outcome(200, json!({"sub": "u-1"}))),
                Status::Pass,
            ),
            (
                &format!("[[expect]]\n{must}\nfield = \"sub\"\nprincipal = \"alice\""),
                Some(outcome(200, json!({"sub": "u-2"}))),
                Status::Fail,
            ),
        ];
        for (i, (text, o, want)) in table.iter().enumerate() {
            let e = &expects(text)[0];
            let out = StepOut { outcome: o.clone(), ..StepOut::default() };
            let (check, _) = grader.check(e, 0, &out, &vars);
            assert_eq!(check.status, *want, "row {i}: {}", check.message);
            let (held, _) = grader.precondition(e, &out, &vars);
            assert_eq!(held, *want == Status::Pass, "row {i}: a precondition holds exactly when the check passes");
        }
    }

    #[test]
    fn paths_walk_objects_and_arrays() {
        let v = json!({"act": {"act": {"sub": "agent"}}, "keys": [{"kid": "k1"}]});
        assert_eq!(path(&v, "act.act.sub"), Some(json!("agent")));
        assert_eq!(path(&v, "keys.0.kid"), Some(json!("k1")));
        assert_eq!(path(&v, "act.nope"), None);
    }
}
