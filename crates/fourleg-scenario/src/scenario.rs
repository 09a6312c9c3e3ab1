//! Scenarios as data: one TOML file per scenario under `suites/<area>/`,
//! named after its stable kebab-case id. See `suites/README.md` for the
//! format with examples.
//!
//! Unknown fields and steps are errors naming the file, the line and the key
//! (toml reports those); rules that toml cannot see (one action per step,
//! variables defined before use, known rule ids) are checked after parsing
//! and name the file, the step and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fourleg_core::oauth::ErrorCode;
use fourleg_target::ClientAuthMode;
use serde::{de, Deserialize, Deserializer, Serialize};

use crate::checks;
use crate::requirement::{Level, Registry};

/// A scenario file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {field}: {message}", path.display())]
    Invalid { path: PathBuf, field: String, message: String },
}

/// A scenario.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable kebab-case id; the file's name. Never changes once reported.
    pub id: String,
    pub title: String,
    /// The area; the directory's name (`core`, `may-act`, …).
    pub area: String,
    /// What it checks and why it matters, for a vendor.
    pub description: String,
    /// RFC sections and other references.
    #[serde(default)]
    pub references: Vec<String>,
    /// Target features it needs (`delegation`, `may-act`, `introspection`,
    /// `revocation`, `resource`, `logout`, `disable-client`).
    #[serde(default)]
    pub requires: Vec<String>,
    /// Target features whose declared absence it probes (a server that says
    /// it lacks `resource` should refuse the parameter, not ignore it): the
    /// scenario runs only where each is declared absent, and is
    /// not-applicable where one is declared (its own scenarios check it).
    #[serde(default)]
    pub probes_absent: Vec<String>,
    /// The rules it checks, with their levels (must match the registry).
    pub requirements: Vec<RequirementRef>,
    #[serde(deserialize_with = "deserialize_steps")]
    pub steps: Vec<Step>,
    /// Where the file was read from (not part of the format).
    #[serde(skip)]
    pub path: PathBuf,
}

/// A rule a scenario checks.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequirementRef {
    pub id: String,
    pub level: Level,
}

/// One step: exactly one action, an optional variable to save its outcome,
/// and the checks on that outcome.
///
/// In the TOML the action is a table named after its kind beside the common
/// fields (`[steps.exchange]`); [`Step`]'s hand-written `Deserialize` reads
/// that form and refuses a step with no action or with two, naming the step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Saves the step's outcome under this name for later steps.
    pub save: Option<String>,
    /// Why the step is there (shown in evidence).
    pub note: Option<String>,
    /// What the step does.
    #[serde(flatten)]
    pub action: Action,
    /// Preconditions on the step's outcome (`[[steps.require]]`): what must
    /// hold for the scenario's checks to mean anything ("a fresh token
    /// introspects active", "the setup exchange succeeds"). A precondition
    /// names no rule and never counts for or against one: when it does not
    /// hold, the checks that depend on it are `untestable` with its reason.
    /// Those are the checks of this step, and the checks of every later step
    /// of the same kind (introspection, exchange, …) that reads a token this
    /// step read or saved.
    pub require: Vec<Expect>,
    pub expect: Vec<Expect>,
}

/// The one action of a step, with its parameters.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Token(TokenStep),
    Exchange(Box<ExchangeStep>),
    Introspect(IntrospectStep),
    Revoke(RevokeStep),
    Logout(LogoutStep),
    Forge(ForgeStep),
    Hook(HookStep),
    Wait(WaitStep),
    Accept(AcceptStep),
    Metadata(MetadataStep),
    Sleep(SleepStep),
    Relay(RelayStep),
    Refresh(RefreshStep),
    Resource(ResourceStep),
    Register(RegisterStep),
    Registered(RegisteredStep),
}

/// The kind of a step's action without its parameters: the name of its
/// table in the TOML, a precondition's `guards`, the step records' `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StepKind {
    Token,
    Exchange,
    Introspect,
    Revoke,
    Logout,
    Forge,
    Hook,
    Wait,
    Accept,
    Metadata,
    Sleep,
    Relay,
    Refresh,
    Resource,
    Register,
    Registered,
}

impl StepKind {
    /// Every kind, in the order the format documents them.
    pub const ALL: [StepKind; 16] = [
        StepKind::Token,
        StepKind::Exchange,
        StepKind::Introspect,
        StepKind::Revoke,
        StepKind::Logout,
        StepKind::Forge,
        StepKind::Hook,
        StepKind::Wait,
        StepKind::Accept,
        StepKind::Metadata,
        StepKind::Sleep,
        StepKind::Relay,
        StepKind::Refresh,
        StepKind::Resource,
        StepKind::Register,
        StepKind::Registered,
    ];

    /// The name of the action's table in the TOML (`exchange`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Token => "token",
            StepKind::Exchange => "exchange",
            StepKind::Introspect => "introspect",
            StepKind::Revoke => "revoke",
            StepKind::Logout => "logout",
            StepKind::Forge => "forge",
            StepKind::Hook => "hook",
            StepKind::Wait => "wait",
            StepKind::Accept => "accept",
            StepKind::Metadata => "metadata",
            StepKind::Sleep => "sleep",
            StepKind::Relay => "relay",
            StepKind::Refresh => "refresh",
            StepKind::Resource => "resource",
            StepKind::Register => "register",
            StepKind::Registered => "registered",
        }
    }

    /// The kind whose table is called `name`.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// `token, exchange, …, sleep`, for messages.
    fn list() -> String {
        Self::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Action {
    /// The action's kind.
    #[must_use]
    pub fn kind(&self) -> StepKind {
        match self {
            Action::Token(_) => StepKind::Token,
            Action::Exchange(_) => StepKind::Exchange,
            Action::Introspect(_) => StepKind::Introspect,
            Action::Revoke(_) => StepKind::Revoke,
            Action::Logout(_) => StepKind::Logout,
            Action::Forge(_) => StepKind::Forge,
            Action::Hook(_) => StepKind::Hook,
            Action::Wait(_) => StepKind::Wait,
            Action::Accept(_) => StepKind::Accept,
            Action::Metadata(_) => StepKind::Metadata,
            Action::Sleep(_) => StepKind::Sleep,
            Action::Relay(_) => StepKind::Relay,
            Action::Refresh(_) => StepKind::Refresh,
            Action::Resource(_) => StepKind::Resource,
            Action::Register(_) => StepKind::Register,
            Action::Registered(_) => StepKind::Registered,
        }
    }

    /// Reads the action table of `kind` as the next value of `map`.
    fn next_value<'de, A: de::MapAccess<'de>>(kind: StepKind, map: &mut A) -> Result<Self, A::Error> {
        Ok(match kind {
            StepKind::Token => Action::Token(map.next_value()?),
            StepKind::Exchange => Action::Exchange(Box::new(map.next_value()?)),
            StepKind::Introspect => Action::Introspect(map.next_value()?),
            StepKind::Revoke => Action::Revoke(map.next_value()?),
            StepKind::Logout => Action::Logout(map.next_value()?),
            StepKind::Forge => Action::Forge(map.next_value()?),
            StepKind::Hook => Action::Hook(map.next_value()?),
            StepKind::Wait => Action::Wait(map.next_value()?),
            StepKind::Accept => Action::Accept(map.next_value()?),
            StepKind::Metadata => Action::Metadata(map.next_value()?),
            StepKind::Sleep => Action::Sleep(map.next_value()?),
            StepKind::Relay => Action::Relay(map.next_value()?),
            StepKind::Refresh => Action::Refresh(map.next_value()?),
            StepKind::Resource => Action::Resource(map.next_value()?),
            StepKind::Register => Action::Register(map.next_value()?),
            StepKind::Registered => Action::Registered(map.next_value()?),
        })
    }
}

/// Reads a step; `index` (its place in `steps`) names it in errors.
struct StepVisitor {
    index: Option<usize>,
}

impl StepVisitor {
    fn at(&self) -> String {
        self.index.map_or_else(|| "step".to_owned(), |i| format!("steps[{i}]"))
    }

    /// Types a `require` or `expect` list, naming the check in errors.
    fn expects<E: de::Error>(&self, list: &str, raw: Vec<RawExpect>) -> Result<Vec<Expect>, E> {
        raw.into_iter()
            .enumerate()
            .map(|(j, r)| r.into_expect().map_err(|m| E::custom(format!("{}.{list}[{j}]: {m}", self.at()))))
            .collect()
    }
}

impl<'de> de::Visitor<'de> for StepVisitor {
    type Value = Step;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a step: one action table ({}) beside save, note, require and expect", StepKind::list())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
        let (mut save, mut note, mut require, mut expect) = (None, None, Vec::new(), Vec::new());
        let mut actions: Vec<Action> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "save" => save = Some(map.next_value()?),
                "note" => note = Some(map.next_value()?),
                "require" => require = self.expects("require", map.next_value()?)?,
                "expect" => expect = self.expects("expect", map.next_value()?)?,
                other => match StepKind::from_name(other) {
                    Some(kind) => actions.push(Action::next_value(kind, &mut map)?),
                    None => {
                        return Err(de::Error::custom(format!(
                            "{}: unknown field `{other}`; expected an action ({}) or save, note, require, expect",
                            self.at(),
                            StepKind::list()
                        )))
                    }
                },
            }
        }
        if actions.len() != 1 {
            let found: Vec<&str> = actions.iter().map(|a| a.kind().as_str()).collect();
            let found = match found.split_last() {
                None => "none".to_owned(),
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            };
            return Err(de::Error::custom(format!(
                "{}: give exactly one action of {}; found {found}",
                self.at(),
                StepKind::list()
            )));
        }
        let action = actions.remove(0);
        Ok(Step { save, note, action, require, expect })
    }
}

const STEP_FIELDS: &[&str] = &[
    "save",
    "note",
    "require",
    "expect",
    "token",
    "exchange",
    "introspect",
    "revoke",
    "logout",
    "forge",
    "hook",
    "wait",
    "accept",
    "metadata",
    "sleep",
];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct("Step", STEP_FIELDS, StepVisitor { index: None })
    }
}

/// A step's schema: the common fields and one action table, exactly one
/// of which is required (what the hand-written `Deserialize` enforces).
impl schemars::JsonSchema for Step {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut properties = serde_json::Map::new();
        let mut field = |name: &str, schema: schemars::Schema, doc: &str| {
            let mut v = schema.to_value();
            if let Some(o) = v.as_object_mut() {
                o.insert("description".into(), doc.into());
            }
            properties.insert(name.into(), v);
        };
        field("save", generator.subschema_for::<String>(), "Saves the step's outcome under this name for later steps.");
        field("note", generator.subschema_for::<String>(), "Why the step is there (shown in evidence).");
        field(
            "require",
            generator.subschema_for::<Vec<RawExpect>>(),
            "Preconditions on the step's outcome: they name no rule; when one does not hold, what depends on it is untestable.",
        );
        field(
            "expect",
            generator.subschema_for::<Vec<RawExpect>>(),
            "Checks on the step's outcome, each naming a rule.",
        );
        for kind in StepKind::ALL {
            let schema = match kind {
                StepKind::Token => generator.subschema_for::<TokenStep>(),
                StepKind::Exchange => generator.subschema_for::<ExchangeStep>(),
                StepKind::Introspect => generator.subschema_for::<IntrospectStep>(),
                StepKind::Revoke => generator.subschema_for::<RevokeStep>(),
                StepKind::Logout => generator.subschema_for::<LogoutStep>(),
                StepKind::Forge => generator.subschema_for::<ForgeStep>(),
                StepKind::Hook => generator.subschema_for::<HookStep>(),
                StepKind::Wait => generator.subschema_for::<WaitStep>(),
                StepKind::Accept => generator.subschema_for::<AcceptStep>(),
                StepKind::Metadata => generator.subschema_for::<MetadataStep>(),
                StepKind::Sleep => generator.subschema_for::<SleepStep>(),
                StepKind::Relay => generator.subschema_for::<RelayStep>(),
                StepKind::Refresh => generator.subschema_for::<RefreshStep>(),
                StepKind::Resource => generator.subschema_for::<ResourceStep>(),
                StepKind::Register => generator.subschema_for::<RegisterStep>(),
                StepKind::Registered => generator.subschema_for::<RegisteredStep>(),
            };
            field(kind.as_str(), schema, &format!("The step's action: {kind} (exactly one action per step)."));
        }
        let one_of: Vec<serde_json::Value> =
            StepKind::ALL.iter().map(|k| serde_json::json!({ "required": [k.as_str()] })).collect();
        schemars::json_schema!({
            "description": "One step: exactly one action, an optional variable to save its outcome, and the checks on that outcome.",
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
            "oneOf": one_of,
        })
    }
}

impl schemars::JsonSchema for Guards {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Guards".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let values: Vec<&str> = std::iter::once("later")
            .chain(StepKind::ALL.iter().filter(|k| **k != StepKind::Sleep).map(|k| k.as_str()))
            .collect();
        schemars::json_schema!({
            "description": "What a failed precondition also makes untestable: `later` (every later step's checks) or a step kind (the later steps of that kind on its tokens).",
            "type": "string",
            "enum": values,
        })
    }
}

/// The JSON Schema of a scenario file (`suites/scenario.schema.json`), for
/// editors; a test keeps the committed one current.
#[must_use]
pub fn schema() -> String {
    let s = schemars::schema_for!(Scenario);
    serde_json::to_string_pretty(&s).expect("the schema serialises") + "\n"
}

/// Reads `steps`, so that a step's errors name its index.
fn deserialize_steps<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Step>, D::Error> {
    struct Indexed(usize);
    impl<'de> de::DeserializeSeed<'de> for Indexed {
        type Value = Step;
        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Step, D::Error> {
            deserializer.deserialize_struct("Step", STEP_FIELDS, StepVisitor { index: Some(self.0) })
        }
    }
    struct Steps;
    impl<'de> de::Visitor<'de> for Steps {
        type Value = Vec<Step>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of steps ([[steps]])")
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Step>, A::Error> {
            let mut out = Vec::new();
            while let Some(step) = seq.next_element_seed(Indexed(out.len()))? {
                out.push(step);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_seq(Steps)
}

/// Obtain a principal's first token: a user's login, or a client's own token
/// (client credentials).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenStep {
    /// A user (`alice`) or a client (`agent`) of the fixture contract.
    pub principal: String,
    /// Abstract permissions to request (`records:read`); mapped by the profile.
    #[serde(default)]
    pub scope: Vec<String>,
    /// Request a token whose `may_act` names this principal (profile recipe).
    #[serde(default)]
    pub may_act: Option<String>,
    /// A user token that expires within seconds (profile `[short_lived]`).
    #[serde(default)]
    pub short_lived: bool,
    /// A user token whose `aud` also names this principal (profile recipe
    /// `[audience_also.<principal>]`), so that an attack's requester passes
    /// the audience rule and only the rule under test can refuse it.
    #[serde(default)]
    pub audience_also: Option<String>,
    /// A well-signed token for this user from an issuer the target must not
    /// trust (profile `[foreign_issuer]`): the untrusted-issuer attack's
    /// subject token. `scope` is ignored: the profile says what to request.
    #[serde(default)]
    pub foreign: bool,
    /// A user's login token with no `aud` claim at all (profile recipe
    /// `[audience_none]`).
    #[serde(default)]
    pub no_audience: bool,
    /// The token request carries a DPoP proof of this key of the run (RFC
    /// 9449 §5), made at its first use: the token should come back bound.
    #[serde(default)]
    pub dpop: Option<String>,
}

/// The DPoP proof of a request (RFC 9449 §4): well made for it, broken in
/// one way, or the very proof an earlier step sent.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DpopProof {
    /// A key of this run, by name (`agent`, `thief`), made at its first use
    /// and the same for every later step of the scenario.
    pub key: String,
    /// The one check of RFC 9449 §4.3 the proof fails: `htm`,
    /// `htu-other-path`, `htu-origin-only`, `htu-longer`, `signature`, `typ`,
    /// `alg-none`, `private-key`, `no-jti`, `iat-past`, `iat-future`.
    #[serde(default)]
    pub flaw: Option<fourleg_core::oauth::dpop::Flaw>,
    /// Send again, unchanged, the proof that the step saving this variable
    /// sent (a replay, RFC 9449 §11.1); `key` must be that proof's key.
    #[serde(default)]
    pub replay: Option<String>,
}

/// An RFC 8693 token exchange request. Every parameter can be set, omitted or
/// malformed on purpose.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExchangeStep {
    /// The requesting client (contract name).
    pub client: String,
    /// How the client authenticates: `profile` (default), `none`,
    /// `client-id-only`, `wrong-secret`.
    #[serde(default)]
    pub auth: Option<ClientAuth>,
    /// Variable holding the subject token (its `access_token` unless
    /// `subject_field` says otherwise).
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub subject_field: Option<String>,
    /// A literal subject token (malformed-input scenarios).
    #[serde(default)]
    pub subject_literal: Option<String>,
    /// `access_token` (default), `refresh_token`, `id_token`, `jwt`, or a URI.
    #[serde(default)]
    pub subject_token_type: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub actor_field: Option<String>,
    #[serde(default)]
    pub actor_literal: Option<String>,
    /// Defaults to `access_token` when an actor token is sent.
    #[serde(default)]
    pub actor_token_type: Option<String>,
    /// Abstract audiences (`mcp-server`), mapped by the profile.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Audience values sent as they are.
    #[serde(default)]
    pub audience_literal: Vec<String>,
    /// `resource` values sent as they are (RFC 8707 URIs).
    #[serde(default)]
    pub resource: Vec<String>,
    /// Abstract permissions to request; omitted means no `scope` parameter.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    /// Scope values sent as they are, added to `scope`.
    #[serde(default)]
    pub scope_literal: Vec<String>,
    /// Ask for a token whose `may_act` names this principal (profile recipe).
    #[serde(default)]
    pub may_act: Option<String>,
    #[serde(default)]
    pub requested_token_type: Option<String>,
    /// Overrides the grant type (defaults to RFC 8693's).
    #[serde(default)]
    pub grant_type: Option<String>,
    /// Parameters to leave out: `subject_token`, `subject_token_type`,
    /// `actor_token_type`, `grant_type`.
    #[serde(default)]
    pub omit: Vec<Omit>,
    /// Extra parameters sent as they are.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// A DPoP proof in the request's `DPoP` header (RFC 9449 §5).
    #[serde(default)]
    pub dpop: Option<DpopProof>,
}

/// RFC 7662 introspection of a saved token.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectStep {
    pub token: String,
    #[serde(default)]
    pub field: Option<String>,
    /// The introspecting client; defaults to the profile's rule.
    #[serde(default)]
    pub client: Option<String>,
    /// `profile` (default) or `none` (unauthenticated call).
    #[serde(default)]
    pub auth: Option<IntrospectAuth>,
}

/// RFC 7009 revocation of a saved token.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeStep {
    pub token: String,
    /// `access_token` (default) or `refresh_token`.
    #[serde(default)]
    pub field: Option<String>,
    /// The revoking client; defaults to the profile's rule.
    #[serde(default)]
    pub client: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
    /// Revoke this literal value instead (an unknown token).
    #[serde(default)]
    pub literal: Option<String>,
}

/// Ends the session of a saved user login.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutStep {
    /// Variable holding a user's `token` step.
    pub login: String,
}

/// Builds a hostile token from a saved one.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgeStep {
    pub from: String,
    pub kind: ForgeKind,
    /// Claims to set (JSON values; strings `{principal.sub}` and
    /// `{principal.client_id}` name a principal's identity).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub set: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// Ways of forging a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ForgeKind {
    /// `alg: none`, no signature (RFC 8725 §2.1).
    AlgNone,
    /// HS256 keyed with the server's RSA public key (key confusion).
    Hs256PublicKey,
    /// Signed ES256 by a key the target never saw, `iss` of an untrusted issuer.
    ForeignIssuer,
    /// Claims edited, original signature kept (so it no longer verifies).
    Edit,
}

/// Runs a profile hook.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HookStep {
    /// `disable_client` or `enable_client`.
    pub run: Hook,
    pub client: String,
}

/// Waits until a condition holds, bounded; the time taken is recorded.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    pub until: WaitUntil,
    pub tokens: Vec<String>,
    pub timeout_ms: u64,
    #[serde(default = "default_interval")]
    pub interval_ms: u64,
}

fn default_interval() -> u64 {
    250
}

/// How an exchange's client authenticates (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// The profile's method with the client's real credentials.
    Profile,
    /// No client authentication and no `client_id`.
    None,
    /// `client_id` only, as a public client would send.
    ClientIdOnly,
    /// The profile's method with a wrong secret.
    WrongSecret,
}

impl ClientAuth {
    /// The target's mode for it.
    #[must_use]
    pub fn mode(self) -> ClientAuthMode {
        match self {
            ClientAuth::Profile => ClientAuthMode::Profile,
            ClientAuth::None => ClientAuthMode::None,
            ClientAuth::ClientIdOnly => ClientAuthMode::ClientIdOnly,
            ClientAuth::WrongSecret => ClientAuthMode::WrongSecret,
        }
    }
}

/// How an introspection call authenticates (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IntrospectAuth {
    /// As the profile says.
    Profile,
    /// Unauthenticated.
    None,
}

/// An exchange parameter a step may leave out (`omit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Omit {
    SubjectToken,
    SubjectTokenType,
    ActorTokenType,
    GrantType,
}

/// A profile hook a step runs (`run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    DisableClient,
    EnableClient,
}

impl Hook {
    /// The hook's name in the profile (`disable_client`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::DisableClient => "disable_client",
            Hook::EnableClient => "enable_client",
        }
    }

    /// Whether the hook restores what an earlier one changed: when it fails,
    /// the target is left changed, which is a finding of its own.
    #[must_use]
    pub fn is_cleanup(self) -> bool {
        matches!(self, Hook::EnableClient)
    }
}

/// What a `wait` waits for (`until`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WaitUntil {
    /// Every token introspects `active: false`.
    Inactive,
    /// Every token's `exp` has passed (with the profile's leeway).
    Expired,
    /// The profile's protected resource refuses every token, within the
    /// window the profile declares (`[resource] revocation_window_s`); the
    /// step's own timeout does not apply.
    Refused,
}

impl WaitUntil {
    /// The spelling in the TOML.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WaitUntil::Inactive => "inactive",
            WaitUntil::Expired => "expired",
            WaitUntil::Refused => "refused",
        }
    }
}

/// Judges a token as a stateless resource would: signature by the target's
/// JWKS, `exp`, and `aud` containing the resource's audience.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptStep {
    pub token: String,
    /// Abstract audience of the resource (`downstream-api`).
    pub resource: String,
}

/// Fetches the target's metadata document, or its JWK Set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetadataStep {
    /// Fetch the JWK Set at `jwks_uri` instead (RFC 7517 §5). Its private
    /// or symmetric key members are never shown in evidence.
    #[serde(default)]
    pub jwks: bool,
    /// Fetch the protected resource's metadata instead (RFC 9728): from the
    /// `resource_metadata` of its 401 challenge (§5.1), else from the
    /// well-known URL made from its resource identifier (§3.1).
    #[serde(default)]
    pub protected_resource: bool,
    /// Fetch the RFC 8414 metadata of the first authorization server the
    /// protected resource's metadata lists (`authorization_servers`), at the
    /// well-known URL made from it (§3.1): the walk an MCP client does.
    #[serde(default)]
    pub authorization_server: bool,
}

/// Calls the protected resource of the profile's `[resource]`, with a token
/// or without one.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceStep {
    /// The variable whose access token goes in `Authorization: Bearer`;
    /// none: the request carries no token.
    #[serde(default)]
    pub token: Option<String>,
    /// Call the profile's `[resource] tool` (an MCP `tools/call` that makes
    /// the server call the API behind it) instead of `initialize`, then read
    /// `[resource] downstream`: what that API received.
    #[serde(default)]
    pub tool: bool,
    /// Call `[resource.scoped_tool]` instead: the tool that needs a scope
    /// of its own. What the API behind the resource received during the
    /// call is read from `[resource] downstream`, before and after.
    #[serde(default)]
    pub scoped_tool: bool,
}

/// Registers a client (RFC 7591 §3.1): an anonymous POST of client
/// metadata to the registration endpoint, for a confidential client
/// (`client_secret_basic`) with `grant_types`. `save` keeps the registered
/// client (its `client_id`, secret and RFC 7592 management credentials) for
/// `registered` steps.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterStep {
    /// The grant types asked for (RFC 7591 §2). Default `["client_credentials"]`.
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<String>,
}

fn default_grant_types() -> Vec<String> {
    vec!["client_credentials".into()]
}

/// Acts as, or on, a client a `register` step saved.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisteredStep {
    /// The variable the `register` step saved.
    pub client: String,
    /// `token`: the client's own token by client credentials (RFC 6749
    /// §4.4), authenticating with its registered secret; `delete`: the
    /// client's deletion at its `registration_client_uri` with its
    /// registration access token (RFC 7592 §2.3); `exchange`: the client's
    /// own token, which it then exchanges itself (RFC 8693 §2.1) with no
    /// `audience`, `resource` or `scope`. A registration that was refused
    /// still reaches an `exchange` step, whose checks judge the refusal.
    /// `update`: the client's metadata replaced at its
    /// `registration_client_uri` (RFC 7592 §2.2) with `grant_types`; save
    /// it under the client's own name, so later steps use what the update
    /// returned (a rotated registration access token). A refused update
    /// leaves the client as it was, and reaches a later `exchange`.
    pub action: RegisteredAction,
    /// `update` only: the grant types the client asks for now.
    #[serde(default)]
    pub grant_types: Vec<String>,
}

/// What a `registered` step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RegisteredAction {
    Token,
    Delete,
    Exchange,
    Update,
}

/// Sleeps (bounded to 60 s).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepStep {
    pub ms: u64,
}

/// Delegation through the fixture contract's relay clients (contract §4):
/// the hop that issues a token whose `act` nests `d` actors is made by
/// `agent` when `d` is 1 and by `relay-<d-1>` after that, each with its own
/// actor token (RFC 8693 §2.1, §4.1), for the audience `relay-<d>` (or
/// `downstream-api` when the profile declares no `relay-<d>`). The step
/// exchanges from the depth `from` of its subject token until a token
/// `until` actors deep is issued; its outcome is that last exchange. A hop
/// before the last that is refused makes the step's checks untestable: the
/// chain the rule needs could not be built.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayStep {
    /// Variable holding the subject token of the first hop.
    pub subject: String,
    /// How many actors the subject token's `act` nests: `0` for a user's
    /// login token, or `"limit"` for a token the previous relay step took to
    /// the declared limit.
    pub from: Depth,
    /// How many actors the last issued token nests: a number, `"limit"` (the
    /// profile's `[delegation] max_depth`) or `"past-limit"` (one more).
    pub until: Depth,
    /// Abstract permissions asked for at every hop; omitted means no `scope`.
    #[serde(default)]
    pub scope: Option<Vec<String>>,
}

/// A refresh-token grant (RFC 6749 §6) by the client a refresh token was
/// issued to, with the `refresh_token` of the first of `tokens` whose
/// response carried one (a renewal that rotated the refresh token first, then
/// the response that issued it). None carrying one leaves the step unmade.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshStep {
    /// The client (contract name) the refresh token was issued to.
    pub client: String,
    /// Variables to take the `refresh_token` from, first that has one.
    pub tokens: Vec<String>,
}

/// A delegation depth: a count of actors, or one relative to the target's
/// declared limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Depth {
    Actors(usize),
    Named(DepthName),
}

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Depth;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a count of actors (0, 1, …), "limit" or "past-limit""#)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Depth, E> {
                usize::try_from(v).map(Depth::Actors).map_err(|_| E::custom(format!("{v} is not a count of actors")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Depth, E> {
                usize::try_from(v).map(Depth::Actors).map_err(|_| E::custom(format!("{v} is not a count of actors")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Depth, E> {
                match v {
                    "limit" => Ok(Depth::Named(DepthName::Limit)),
                    "past-limit" => Ok(Depth::Named(DepthName::PastLimit)),
                    other => Err(E::custom(format!(
                        r#"unknown depth `{other}`: a count of actors (0, 1, …), "limit" or "past-limit""#
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A depth named after the target's declared delegation limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DepthName {
    /// The profile's `[delegation] max_depth`.
    Limit,
    /// One actor past it.
    PastLimit,
}

impl Depth {
    /// The count of actors, given the target's declared limit.
    #[must_use]
    pub fn actors(self, limit: usize) -> usize {
        match self {
            Depth::Actors(n) => n,
            Depth::Named(DepthName::Limit) => limit,
            Depth::Named(DepthName::PastLimit) => limit + 1,
        }
    }
}

/// A check on a step's outcome, as the TOML spells it: exactly one
/// assertion (status, status_in, success, error, error_in, header, field,
/// claim, check) and, for header, field and claim, exactly one modifier.
/// Read, then typed as an [`Expect`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    /// The requirement id; empty (absent) in a precondition (`require`).
    #[serde(default)]
    pub rule: String,
    /// What a failure means, for the report (a default is generated).
    #[serde(default)]
    pub message: Option<String>,

    // Assertions: exactly one of the following.
    /// HTTP status equals.
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub status_in: Option<Vec<u16>>,
    /// `true`: a 2xx token response with `access_token`; `false`: refused (4xx).
    #[serde(default)]
    pub success: Option<bool>,
    /// The response's `error` equals. A registered code (RFC 6749 §5.2,
    /// RFC 8693 §2.2.2, RFC 7009 §2.2.1, …: `fourleg_core::oauth::ErrorCode`),
    /// or an extension code written `extension:<code>`; any other string is
    /// refused at load, so a typo cannot expect an error no server sends.
    #[serde(default, deserialize_with = "deserialize_error")]
    #[schemars(with = "Option<String>")]
    pub error: Option<ErrorCode>,
    /// The response's `error` is one of these (each as in `error`).
    #[serde(default, deserialize_with = "deserialize_error_in")]
    #[schemars(with = "Option<Vec<String>>")]
    pub error_in: Option<Vec<ErrorCode>>,
    /// A response header (with `contains`, `equals` or `present`).
    #[serde(default)]
    pub header: Option<String>,
    /// A JSON body field path (`issued_token_type`, `a.b`).
    #[serde(default)]
    pub field: Option<String>,
    /// A claim path of a token (`act.act.sub`): the step's issued token, or `token`.
    #[serde(default)]
    pub claim: Option<String>,
    /// A named check (Rust function) with `args`.
    #[serde(default)]
    pub check: Option<String>,

    // Modifiers of header / field / claim.
    #[serde(default)]
    pub present: Option<bool>,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub equals: Option<toml::Value>,
    #[serde(default)]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub one_of: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub contains: Option<String>,
    /// The claim identifies this principal (`sub` or `client_id`).
    #[serde(default)]
    pub principal: Option<String>,
    /// The variable whose token a `claim` or `check` looks at.
    #[serde(default)]
    pub token: Option<String>,
    /// Preconditions only: what depends on this one, when it is not this
    /// step's checks and the later steps of its kind on its tokens. A step
    /// kind (`exchange`, `introspect`, …): the later steps of that kind on
    /// this step's tokens; `later`: every later step's checks (a revocation
    /// that did not happen makes everything after it meaningless).
    #[serde(default)]
    pub guards: Option<Guards>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub args: BTreeMap<String, toml::Value>,
}

/// How an expected error code that is not registered is written.
const EXTENSION_PREFIX: &str = "extension:";

/// An expected error code: registered, or `extension:<code>`.
fn parse_error_code(s: &str) -> Result<ErrorCode, String> {
    if let Some(code) = s.strip_prefix(EXTENSION_PREFIX) {
        return match ErrorCode::from(code) {
            ErrorCode::Extension(c) if !c.is_empty() => Ok(ErrorCode::Extension(c)),
            ErrorCode::Extension(_) => Err(format!("`{s}` names no code")),
            _ => Err(format!("`{code}` is registered; write it without `{EXTENSION_PREFIX}`")),
        };
    }
    match ErrorCode::from(s) {
        ErrorCode::Extension(_) => Err(format!(
            "unknown error code `{s}`; registered: {}; write an extension code as `{EXTENSION_PREFIX}{s}`",
            ErrorCode::REGISTERED.iter().map(ErrorCode::as_str).collect::<Vec<_>>().join(", ")
        )),
        c => Ok(c),
    }
}

fn deserialize_error<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ErrorCode>, D::Error> {
    let s = String::deserialize(deserializer)?;
    parse_error_code(&s).map(Some).map_err(|m| de::Error::custom(format!("error: {m}")))
}

fn deserialize_error_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<ErrorCode>>, D::Error> {
    let v = Vec::<String>::deserialize(deserializer)?;
    v.iter()
        .map(|s| parse_error_code(s))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
        .map_err(|m| de::Error::custom(format!("error_in: {m}")))
}

/// What a failed precondition also makes untestable (`guards`), besides the
/// checks of its step and of the later steps of the step's own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guards {
    /// `later`: every later step's checks.
    Later,
    /// A step kind (`exchange`): the later steps of that kind on the
    /// precondition's tokens. A `sleep` reads no token, so it is refused.
    Kind(StepKind),
}

impl Guards {
    /// The spelling in the TOML.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Guards::Later => "later",
            Guards::Kind(k) => k.as_str(),
        }
    }
}

impl Serialize for Guards {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Guards {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        match (s.as_str(), StepKind::from_name(&s)) {
            ("later", _) => Ok(Guards::Later),
            (_, Some(k)) if k != StepKind::Sleep => Ok(Guards::Kind(k)),
            _ => Err(de::Error::custom(format!("guards: unknown `{s}`; expected later or a step kind"))),
        }
    }
}

impl Step {
    /// The kind of the step's action.
    #[must_use]
    pub fn kind(&self) -> StepKind {
        self.action.kind()
    }

    /// The kind of action a precondition of this step vouches for: a wait
    /// until inactive introspects, so it is an introspection.
    #[must_use]
    pub fn dependency_kind(&self) -> StepKind {
        match &self.action {
            Action::Wait(w) if w.until == WaitUntil::Inactive => StepKind::Introspect,
            a => a.kind(),
        }
    }

    /// The tokens the step's action is about (what a precondition vouches
    /// for): the variables its action reads, and the one it saves.
    #[must_use]
    pub fn action_tokens(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        match &self.action {
            Action::Exchange(x) => {
                v.extend(x.subject.as_deref());
                v.extend(x.actor.as_deref());
            }
            Action::Introspect(x) => v.push(&x.token),
            Action::Revoke(x) if x.literal.is_none() => v.push(&x.token),
            Action::Wait(x) => v.extend(x.tokens.iter().map(String::as_str)),
            Action::Relay(x) => v.push(&x.subject),
            Action::Refresh(x) => v.extend(x.tokens.iter().map(String::as_str)),
            Action::Resource(x) => v.extend(x.token.as_deref()),
            Action::Registered(x) => v.push(&x.client),
            _ => {}
        }
        v.extend(self.save.as_deref());
        v
    }

    /// The name of the DPoP key whose proof the step's request carries.
    #[must_use]
    pub fn proof_key(&self) -> Option<&str> {
        match &self.action {
            Action::Token(x) => x.dpop.as_deref(),
            Action::Exchange(x) => x.dpop.as_ref().map(|d| d.key.as_str()),
            _ => None,
        }
    }

    /// Variables this step reads.
    #[must_use]
    pub fn reads(&self) -> Vec<&str> {
        let mut v: Vec<&str> = Vec::new();
        match &self.action {
            Action::Exchange(x) => {
                v.extend(x.subject.as_deref());
                v.extend(x.actor.as_deref());
                v.extend(x.dpop.as_ref().and_then(|d| d.replay.as_deref()));
            }
            Action::Introspect(x) => v.push(&x.token),
            Action::Revoke(x) if x.literal.is_none() => v.push(&x.token),
            Action::Logout(x) => v.push(&x.login),
            Action::Forge(x) => v.push(&x.from),
            Action::Wait(x) => v.extend(x.tokens.iter().map(String::as_str)),
            Action::Accept(x) => v.push(&x.token),
            Action::Relay(x) => v.push(&x.subject),
            Action::Refresh(x) => v.extend(x.tokens.iter().map(String::as_str)),
            Action::Resource(x) => v.extend(x.token.as_deref()),
            Action::Registered(x) => v.push(&x.client),
            _ => {}
        }
        for e in self.require.iter().chain(&self.expect) {
            v.extend(e.token.as_deref());
            if let Some(toml::Value::String(s)) = e.check_args().and_then(|a| a.get("than")) {
                v.push(s);
            }
        }
        v
    }
}

/// A check on a step's outcome (`[[steps.expect]]`), graded by the level
/// of its rule, or a precondition (`[[steps.require]]`), which names none.
#[derive(Debug, Clone, Serialize)]
#[serde(into = "RawExpect")]
pub struct Expect {
    /// The requirement id; empty in a precondition.
    pub rule: String,
    /// What a failure means, for the report (a default is generated).
    pub message: Option<String>,
    /// What is asserted.
    pub assertion: Assertion,
    /// The variable whose token a `claim` or `check` looks at (default: the
    /// step's issued token).
    pub token: Option<String>,
    /// Preconditions only: what else depends on this one.
    pub guards: Option<Guards>,
}

/// The one assertion of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Assertion {
    /// HTTP status equals (`status`).
    Status(u16),
    /// HTTP status is one of (`status_in`).
    StatusIn(Vec<u16>),
    /// `true`: a 2xx token response with `access_token`; `false`: refused (4xx).
    Success(bool),
    /// The response's `error` equals (`error`).
    Error(ErrorCode),
    /// The response's `error` is one of (`error_in`).
    ErrorIn(Vec<ErrorCode>),
    /// A response header (`header`), judged by the modifier.
    Header { name: String, modifier: Modifier },
    /// A JSON body field path (`field = "a.b"`), judged by the modifier.
    Field { path: String, modifier: Modifier },
    /// A claim path of a token (`claim = "act.act.sub"`), judged by the modifier.
    Claim { path: String, modifier: Modifier },
    /// A named check (`check`) with its `args`.
    Check { name: String, args: BTreeMap<String, toml::Value> },
}

/// How a `header`, `field` or `claim` value is judged.
#[derive(Debug, Clone, PartialEq)]
pub enum Modifier {
    /// Present (and not null), or absent.
    Present(bool),
    Equals(toml::Value),
    OneOf(Vec<toml::Value>),
    /// Contains the text, case-insensitively.
    Contains(String),
    /// Identifies this principal (`sub` or `client_id`).
    Principal(String),
}

impl Assertion {
    /// The assertion's key in the TOML (`status_in`).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Assertion::Status(_) => "status",
            Assertion::StatusIn(_) => "status_in",
            Assertion::Success(_) => "success",
            Assertion::Error(_) => "error",
            Assertion::ErrorIn(_) => "error_in",
            Assertion::Header { .. } => "header",
            Assertion::Field { .. } => "field",
            Assertion::Claim { .. } => "claim",
            Assertion::Check { .. } => "check",
        }
    }
}

impl Expect {
    /// A named check's arguments (none for other assertions).
    #[must_use]
    pub fn check_args(&self) -> Option<&BTreeMap<String, toml::Value>> {
        match &self.assertion {
            Assertion::Check { args, .. } => Some(args),
            _ => None,
        }
    }
}

impl RawExpect {
    /// The typed check, or why the spelling is not one.
    fn into_expect(self) -> Result<Expect, String> {
        let set = [
            ("status", self.status.is_some()),
            ("status_in", self.status_in.is_some()),
            ("success", self.success.is_some()),
            ("error", self.error.is_some()),
            ("error_in", self.error_in.is_some()),
            ("header", self.header.is_some()),
            ("field", self.field.is_some()),
            ("claim", self.claim.is_some()),
            ("check", self.check.is_some()),
        ];
        let found: Vec<&str> = set.iter().filter_map(|(n, s)| s.then_some(*n)).collect();
        if found.len() != 1 {
            return Err(format!(
                "a check has exactly one assertion (status, status_in, success, error, error_in, header, field, claim, check); found {}",
                if found.is_empty() { "none".to_owned() } else { found.join(", ") }
            ));
        }
        let kind = found[0];
        if kind != "check" && !self.args.is_empty() {
            return Err(format!("`{kind}` takes no args; only a named check does"));
        }
        let mut modifiers: Vec<Modifier> = Vec::new();
        modifiers.extend(self.present.map(Modifier::Present));
        modifiers.extend(self.equals.map(Modifier::Equals));
        modifiers.extend(self.one_of.map(Modifier::OneOf));
        modifiers.extend(self.contains.map(Modifier::Contains));
        modifiers.extend(self.principal.map(Modifier::Principal));
        let one_modifier = |mut m: Vec<Modifier>| match (m.pop(), m.is_empty()) {
            (Some(m), true) => Ok(m),
            _ => Err(format!("`{kind}` needs exactly one of present, equals, one_of, contains, principal")),
        };
        let assertion = match (self.header, self.field, self.claim, self.check) {
            (Some(name), ..) => Assertion::Header { name, modifier: one_modifier(modifiers)? },
            (_, Some(path), ..) => Assertion::Field { path, modifier: one_modifier(modifiers)? },
            (_, _, Some(path), _) => Assertion::Claim { path, modifier: one_modifier(modifiers)? },
            (_, _, _, Some(name)) => {
                if !modifiers.is_empty() {
                    return Err("a named check takes `args`, not modifiers".into());
                }
                Assertion::Check { name, args: self.args }
            }
            (None, None, None, None) => {
                if !modifiers.is_empty() || self.token.is_some() {
                    return Err(format!("`{kind}` takes no present/equals/one_of/contains/principal/token"));
                }
                match (self.status, self.status_in, self.success, self.error, self.error_in) {
                    (Some(s), ..) => Assertion::Status(s),
                    (_, Some(s), ..) => Assertion::StatusIn(s),
                    (_, _, Some(s), ..) => Assertion::Success(s),
                    (_, _, _, Some(e), _) => Assertion::Error(e),
                    (_, _, _, _, Some(e)) => Assertion::ErrorIn(e),
                    (None, None, None, None, None) => unreachable!("exactly one assertion is set"),
                }
            }
        };
        Ok(Expect { rule: self.rule, message: self.message, assertion, token: self.token, guards: self.guards })
    }
}

impl From<Expect> for RawExpect {
    fn from(e: Expect) -> Self {
        let mut raw =
            RawExpect { rule: e.rule, message: e.message, token: e.token, guards: e.guards, ..RawExpect::default() };
        let modifier = |raw: &mut RawExpect, m: Modifier| match m {
            Modifier::Present(b) => raw.present = Some(b),
            Modifier::Equals(v) => raw.equals = Some(v),
            Modifier::OneOf(v) => raw.one_of = Some(v),
            Modifier::Contains(t) => raw.contains = Some(t),
            Modifier::Principal(p) => raw.principal = Some(p),
        };
        match e.assertion {
            Assertion::Status(s) => raw.status = Some(s),
            Assertion::StatusIn(s) => raw.status_in = Some(s),
            Assertion::Success(s) => raw.success = Some(s),
            Assertion::Error(c) => raw.error = Some(c),
            Assertion::ErrorIn(c) => raw.error_in = Some(c),
            Assertion::Header { name, modifier: m } => {
                raw.header = Some(name);
                modifier(&mut raw, m);
            }
            Assertion::Field { path, modifier: m } => {
                raw.field = Some(path);
                modifier(&mut raw, m);
            }
            Assertion::Claim { path, modifier: m } => {
                raw.claim = Some(path);
                modifier(&mut raw, m);
            }
            Assertion::Check { name, args } => {
                raw.check = Some(name);
                raw.args = args;
            }
        }
        raw
    }
}

fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

impl Scenario {
    /// Reads, parses and validates a scenario file against the registry.
    pub fn load(path: &Path, registry: &Registry) -> Result<Self, ScenarioError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path, registry)
    }

    /// Parses and validates scenario text; `path` gives the expected id and area.
    pub fn parse(text: &str, path: &Path, registry: &Registry) -> Result<Self, ScenarioError> {
        let mut s: Scenario = toml::from_str(text)
            .map_err(|e: toml::de::Error| ScenarioError::Parse { path: path.to_owned(), message: e.to_string() })?;
        path.clone_into(&mut s.path);
        s.validate(registry)?;
        Ok(s)
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid { path: self.path.clone(), field: field.into(), message: message.into() }
    }

    fn validate(&self, registry: &Registry) -> Result<(), ScenarioError> {
        if !is_kebab(&self.id) {
            return Err(self.invalid("id", format!("`{}` is not kebab-case", self.id)));
        }
        if let Some(stem) = self.path.file_stem().and_then(|s| s.to_str()) {
            if stem != self.id {
                return Err(self.invalid("id", format!("`{}` differs from the file name `{stem}.toml`", self.id)));
            }
        }
        if let Some(dir) = self.path.parent().and_then(|p| p.file_name()).and_then(|s| s.to_str()) {
            if dir != self.area {
                return Err(self.invalid("area", format!("`{}` differs from the directory `{dir}`", self.area)));
            }
        }
        if self.description.trim().len() < 40 {
            return Err(self.invalid("description", "say what it checks and why it matters (40 characters or more)"));
        }
        for f in &self.requires {
            if f != fourleg_target::contract::PROTECTED_RESOURCE
                && fourleg_target::profile::Features::NAMES.iter().all(|n| n != f)
            {
                return Err(self.invalid("requires", fourleg_target::profile::Features::unknown(f)));
            }
        }
        for f in &self.probes_absent {
            if fourleg_target::profile::Features::NAMES.iter().all(|n| n != f) {
                return Err(self.invalid("probes_absent", fourleg_target::profile::Features::unknown(f)));
            }
            if self.requires.contains(f) {
                return Err(
                    self.invalid("probes_absent", format!("`{f}` is also required: the scenario could never run"))
                );
            }
        }
        if self.requirements.is_empty() {
            return Err(self.invalid("requirements", "a scenario checks at least one rule"));
        }
        let mut declared = BTreeSet::new();
        for (i, r) in self.requirements.iter().enumerate() {
            let rule = registry
                .get(&r.id)
                .ok_or_else(|| self.invalid(format!("requirements[{i}].id"), format!("unknown rule `{}`", r.id)))?;
            if rule.level != r.level {
                return Err(self.invalid(
                    format!("requirements[{i}].level"),
                    format!("`{}` is {} in suites/requirements.toml, not {}", r.id, rule.level, r.level),
                ));
            }
            if let Some(why) = &rule.retired {
                return Err(self.invalid(
                    format!("requirements[{i}].id"),
                    format!("`{}` is retired in suites/requirements.toml: {why}", r.id),
                ));
            }
            declared.insert(r.id.as_str());
        }
        let mut defined: BTreeSet<&str> = BTreeSet::new();
        let mut checked: BTreeSet<&str> = BTreeSet::new();
        for (i, step) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            for var in step.reads() {
                if !defined.contains(var) {
                    return Err(self.invalid(at("…"), format!("variable `{var}` is used before a step saves it")));
                }
            }
            if let Action::Exchange(x) = &step.action {
                if x.subject.is_some() && x.subject_literal.is_some() {
                    return Err(self.invalid(at("exchange"), "`subject` and `subject_literal` exclude each other"));
                }
            }
            if let Action::Wait(w) = &step.action {
                if w.timeout_ms > 600_000 {
                    return Err(self.invalid(at("wait.timeout_ms"), "waits are bounded to 600000 ms"));
                }
            }
            if let Action::Sleep(sl) = &step.action {
                if sl.ms > 60_000 {
                    return Err(self.invalid(at("sleep.ms"), "sleeps are bounded to 60000 ms"));
                }
            }
            let checks = step.require.iter().map(|e| ("require", e)).chain(step.expect.iter().map(|e| ("expect", e)));
            let mut index: BTreeMap<&str, usize> = BTreeMap::new();
            for (list, e) in checks {
                let j = {
                    let n = index.entry(list).or_default();
                    *n += 1;
                    *n - 1
                };
                let f = |x: &str| format!("steps[{i}].{list}[{j}].{x}");
                if e.guards.is_some() && list != "require" {
                    return Err(self.invalid(f("guards"), "only a precondition ([[steps.require]]) guards later steps"));
                }
                if list == "require" {
                    if !e.rule.is_empty() {
                        return Err(self.invalid(
                            f("rule"),
                            "a precondition names no rule: it never counts for or against one (move the check to [[steps.expect]] if it grades a rule)",
                        ));
                    }
                } else if !declared.contains(e.rule.as_str()) {
                    return Err(
                        self.invalid(f("rule"), format!("`{}` is not in the scenario's [[requirements]]", e.rule))
                    );
                } else {
                    checked.insert(e.rule.as_str());
                }
                if let Assertion::Check { name, args } = &e.assertion {
                    let Some(spec) = checks::spec(name) else {
                        return Err(self.invalid(
                            f("check"),
                            format!(
                                "unknown check `{name}`; known: {}",
                                checks::names().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    };
                    for (key, value) in args {
                        let Some((_, ty)) = spec.args.iter().find(|(a, _)| a == key) else {
                            let takes = if spec.args.is_empty() {
                                "takes no argument".to_owned()
                            } else {
                                format!("takes {}", spec.args.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", "))
                            };
                            return Err(self.invalid(
                                f(&format!("args.{key}")),
                                format!("check `{name}` has no argument `{key}`; it {takes}"),
                            ));
                        };
                        if let Some(why) = ty.refuses(value) {
                            return Err(self.invalid(f(&format!("args.{key}")), format!("check `{name}`: {why}")));
                        }
                    }
                }
            }
            if let Some(v) = &step.save {
                if !is_kebab(v) && !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(self.invalid(at("save"), format!("`{v}` is not a simple name")));
                }
                defined.insert(v.as_str());
            }
        }
        for r in &declared {
            if !checked.contains(r) {
                return Err(self.invalid("requirements", format!("`{r}` is declared but no check names it")));
            }
        }
        Ok(())
    }
}

/// Every scenario under `suites/`, sorted by area then id; ids are unique.
pub fn load_all(suites: &Path, registry: &Registry) -> Result<Vec<Scenario>, ScenarioError> {
    let mut out = Vec::new();
    let mut areas: Vec<PathBuf> = std::fs::read_dir(suites)
        .map_err(|source| ScenarioError::Read { path: suites.to_owned(), source })?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    areas.sort();
    for area in areas {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&area)
            .map_err(|source| ScenarioError::Read { path: area.clone(), source })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for f in files {
            out.push(Scenario::load(&f, registry)?);
        }
    }
    let mut seen = BTreeMap::new();
    for s in &out {
        if let Some(prev) = seen.insert(s.id.clone(), s.path.clone()) {
            return Err(ScenarioError::Invalid {
                path: s.path.clone(),
                field: "id".into(),
                message: format!("`{}` is also the id of {}", s.id, prev.display()),
            });
        }
    }
    Ok(out)
}

/// Whether `id` matches a glob (`*` any run, `?` one character); a pattern
/// with `/` matches `area/id`.
#[must_use]
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

impl Scenario {
    /// Whether the scenario matches a `--filter` glob (on `id` or `area/id`).
    #[must_use]
    pub fn matches(&self, pattern: &str) -> bool {
        if pattern.contains('/') {
            glob_match(pattern, &format!("{}/{}", self.area, self.id))
        } else {
            glob_match(pattern, &self.id) || glob_match(pattern, &self.area)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/requirements.toml")).unwrap()
    }

    const OK: &str = r#"
id = "deny-rogue-actor"
title = "t"
area = "may-act"
description = "A subject token naming agent in may_act must not be usable by another actor."
requires = ["delegation"]

[[requirements]]
id = "AGENT-MAYACT-deny-actor"
level = "profile"

[[steps]]
save = "user"
[steps.token]
principal = "alice"
may_act = "agent"

[[steps]]
save = "rogue"
[steps.token]
principal = "rogue-agent"

[[steps]]
[steps.exchange]
client = "rogue-agent"
subject = "user"
actor = "rogue"
audience = ["mcp-server"]
[[steps.expect]]
rule = "AGENT-MAYACT-deny-actor"
success = false
"#;

    fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(text, Path::new("suites/may-act/deny-rogue-actor.toml"), &registry())
    }

    #[test]
    fn a_valid_scenario_parses() {
        let s = parse(OK).unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[2].kind(), StepKind::Exchange);
    }

    #[test]
    fn an_unknown_field_points_at_the_line() {
        let err =
            parse(&OK.replace("audience = [\"mcp-server\"]", "audiense = [\"mcp-server\"]")).unwrap_err().to_string();
        assert!(err.contains("audiense"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn a_step_with_two_actions_is_refused_naming_the_step_and_both() {
        let err = parse(&OK.replace("[[steps.expect]]", "[steps.introspect]\ntoken = \"user\"\n[[steps.expect]]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("steps[2]: give exactly one action of token, exchange,")
                && err.contains("found exchange and introspect"),
            "{err}"
        );
    }

    #[test]
    fn a_step_without_action_is_refused_naming_the_step() {
        let err = parse(&OK.replace("[steps.token]\nprincipal = \"rogue-agent\"\n", "note = \"nothing\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("steps[1]: give exactly one action of") && err.contains("found none"), "{err}");
    }

    #[test]
    fn an_unknown_guards_value_is_named() {
        let err = parse(&OK.replace(
            "[[steps.expect]]\nrule",
            "[[steps.require]]\nstatus = 400\nguards = \"sleep\"\n[[steps.expect]]\nrule",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("guards: unknown `sleep`"), "{err}");
    }

    #[test]
    fn an_unknown_check_argument_is_refused_naming_the_check_and_the_argument() {
        let with_check =
            |args: &str| OK.replace("success = false", &format!("check = \"not_issued_for\"\nargs = {{ {args} }}"));
        parse(&with_check("principal = \"rogue-agent\"")).unwrap();
        let err = parse(&with_check("principle = \"rogue-agent\"")).unwrap_err().to_string();
        assert!(err.contains("steps[2].expect[0].args.principle"), "{err}");
        assert!(err.contains("check `not_issued_for` has no argument `principle`; it takes principal"), "{err}");
        let err = parse(&OK.replace("success = false", "success = false\nargs = { than = \"user\" }"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("steps[2].expect[0]: `success` takes no args"), "{err}");
    }

    #[test]
    fn an_unknown_error_code_is_refused_unless_written_as_an_extension() {
        let with = |e: &str| OK.replace("success = false", e);
        let s = parse(&with("error = \"invalid_request\"")).unwrap();
        assert_eq!(s.steps[2].expect[0].assertion, Assertion::Error(ErrorCode::InvalidRequest));
        let err = parse(&with("error = \"invalid_requets\"")).unwrap_err().to_string();
        assert!(err.contains("error: unknown error code `invalid_requets`"), "{err}");
        assert!(err.contains("line"), "{err}");
        let err = parse(&with("error_in = [\"invalid_client\", \"invalid_grnat\"]")).unwrap_err().to_string();
        assert!(err.contains("error_in: unknown error code `invalid_grnat`"), "{err}");
        let s = parse(&with("error = \"extension:authorization_pending\"")).unwrap();
        assert_eq!(
            s.steps[2].expect[0].assertion,
            Assertion::Error(ErrorCode::Extension("authorization_pending".into()))
        );
        let err = parse(&with("error = \"extension:invalid_grant\"")).unwrap_err().to_string();
        assert!(err.contains("`invalid_grant` is registered"), "{err}");
    }

    #[test]
    fn a_relay_depth_is_a_count_or_named_after_the_limit() {
        let relay = |from: &str, until: &str| {
            OK.replace(
                "[[steps]]\n[steps.exchange]",
                &format!("[[steps]]\n[steps.relay]\nsubject = \"user\"\nfrom = {from}\nuntil = {until}\n\n[[steps]]\n[steps.exchange]"),
            )
        };
        let s = parse(&relay("0", "\"limit\"")).unwrap();
        let Action::Relay(r) = &s.steps[2].action else { panic!("not a relay step") };
        assert_eq!((r.from, r.until), (Depth::Actors(0), Depth::Named(DepthName::Limit)));
        assert_eq!((r.from.actors(8), r.until.actors(8)), (0, 8));
        assert_eq!(Depth::Named(DepthName::PastLimit).actors(3), 4);
        let err = parse(&relay("\"limit\"", "\"past-limt\"")).unwrap_err().to_string();
        assert!(err.contains("unknown depth `past-limt`") && err.contains("line"), "{err}");
        let err = parse(&relay("-1", "2")).unwrap_err().to_string();
        assert!(err.contains("-1 is not a count of actors"), "{err}");
    }

    #[test]
    fn an_unknown_auth_or_omitted_parameter_is_named_with_its_line() {
        let err = parse(&OK.replace("actor = \"rogue\"", "actor = \"rogue\"\nauth = \"wrong-sercet\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrong-sercet") && err.contains("client-id-only") && err.contains("line"), "{err}");
        let err =
            parse(&OK.replace("actor = \"rogue\"", "actor = \"rogue\"\nomit = [\"scope\"]")).unwrap_err().to_string();
        assert!(err.contains("`scope`") && err.contains("grant_type") && err.contains("line"), "{err}");
    }

    #[test]
    fn a_modifier_is_required_or_refused_naming_the_check() {
        let err = parse(&OK.replace("success = false", "claim = \"sub\"")).unwrap_err().to_string();
        assert!(err.contains("steps[2].expect[0]: `claim` needs exactly one of present"), "{err}");
        let err = parse(&OK.replace("success = false", "success = false\npresent = true")).unwrap_err().to_string();
        assert!(err.contains("steps[2].expect[0]: `success` takes no present"), "{err}");
        let s = parse(&OK.replace("success = false", "claim = \"sub\"\nprincipal = \"alice\"")).unwrap();
        assert_eq!(
            s.steps[2].expect[0].assertion,
            Assertion::Claim { path: "sub".into(), modifier: Modifier::Principal("alice".into()) }
        );
    }

    /// Serialising a scenario gives the TOML it was read from, in substance.
    #[test]
    fn a_scenario_serialises_back_to_the_format() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        for s in load_all(&dir, &registry()).unwrap() {
            let text = toml::to_string(&s).unwrap();
            let again = Scenario::parse(&text, &s.path, &registry()).unwrap();
            assert_eq!(format!("{:?}", again.steps), format!("{:?}", s.steps), "{}", s.id);
        }
    }

    #[test]
    fn a_check_argument_of_the_wrong_type_is_refused() {
        let with_check = |check: &str, args: &str| {
            OK.replace("success = false", &format!("check = \"{check}\"\nargs = {{ {args} }}"))
        };
        let err = parse(&with_check("within_bound", "bound_ms = \"5000\"")).unwrap_err().to_string();
        assert!(err.contains("steps[2].expect[0].args.bound_ms") && err.contains("an integer"), "{err}");
        let err = parse(&with_check("error_if_refused", "error = \"invalid_requets\"")).unwrap_err().to_string();
        assert!(err.contains("args.error") && err.contains("`invalid_requets` is not a registered"), "{err}");
        parse(&with_check("error_if_refused", "error = \"invalid_request\"")).unwrap();
    }

    /// `suites/scenario.schema.json` is what the types generate;
    /// `FOURLEG_REGENERATE=1` rewrites it.
    #[test]
    fn the_committed_scenario_schema_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/scenario.schema.json");
        let want = schema();
        if std::env::var_os("FOURLEG_REGENERATE").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "suites/scenario.schema.json is not what the types generate; regenerate it: FOURLEG_REGENERATE=1 cargo test -p fourleg-scenario --lib schema"
        );
    }

    #[test]
    fn an_unknown_step_kind_is_named() {
        let err = parse(&OK.replace("[steps.exchange]", "[steps.exchnage]")).unwrap_err().to_string();
        assert!(err.contains("steps[2]: unknown field `exchnage`"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn a_variable_used_before_it_is_saved_is_named() {
        let err = parse(&OK.replace("actor = \"rogue\"", "actor = \"nobody\"")).unwrap_err().to_string();
        assert!(err.contains("steps[2]") && err.contains("nobody"), "{err}");
    }

    #[test]
    fn a_wrong_level_or_unknown_rule_is_refused() {
        let err = parse(&OK.replace("level = \"profile\"", "level = \"MUST\"")).unwrap_err().to_string();
        assert!(err.contains("requirements[0].level"), "{err}");
        let err =
            parse(&OK.replace("id = \"AGENT-MAYACT-deny-actor\"", "id = \"AGENT-NOPE\"")).unwrap_err().to_string();
        assert!(err.contains("unknown rule"), "{err}");
    }

    #[test]
    fn id_must_match_the_file() {
        let err = Scenario::parse(OK, Path::new("suites/may-act/other.toml"), &registry()).unwrap_err().to_string();
        assert!(err.contains("file name"), "{err}");
    }

    #[test]
    fn a_check_with_two_assertions_is_refused() {
        let err = parse(&OK.replace("success = false", "success = false\nstatus = 400")).unwrap_err().to_string();
        assert!(err.contains("steps[2].expect[0]: a check has exactly one assertion"), "{err}");
    }

    #[test]
    fn every_committed_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        let all = load_all(&dir, &registry()).unwrap();
        assert!(!all.is_empty());
    }

    #[test]
    fn a_precondition_names_no_rule_and_a_retired_rule_cannot_be_declared() {
        let with_require = OK.replace(
            "[[steps.expect]]\nrule = \"AGENT-MAYACT-deny-actor\"\nsuccess = false",
            "[[steps.require]]\nstatus_in = [400, 401]\n[[steps.expect]]\nrule = \"AGENT-MAYACT-deny-actor\"\nsuccess = false",
        );
        let s = parse(&with_require).unwrap();
        assert_eq!(s.steps[2].require.len(), 1);
        let err = parse(
            &with_require.replace("[[steps.require]]\n", "[[steps.require]]\nrule = \"AGENT-MAYACT-deny-actor\"\n"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("steps[2].require[0].rule") && err.contains("names no rule"), "{err}");
        let retired = OK
            .replace(
                "id = \"AGENT-MAYACT-deny-actor\"\nlevel = \"profile\"",
                "id = \"RFC8693-4.4-may-act\"\nlevel = \"info\"",
            )
            .replace("rule = \"AGENT-MAYACT-deny-actor\"", "rule = \"RFC8693-4.4-may-act\"");
        let err = parse(&retired).unwrap_err().to_string();
        assert!(err.contains("retired"), "{err}");
    }

    /// A vendor reads titles and descriptions in the matrix: a scenario that
    /// grades an agent profile rule says so, so no one is told they broke an
    /// RFC when the RFC leaves the behaviour to policy.
    #[test]
    fn every_scenario_with_a_profile_rule_says_agent_profile() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        let all = load_all(&dir, &registry()).unwrap();
        let silent: Vec<&str> = all
            .iter()
            .filter(|s| s.requirements.iter().any(|r| r.id.starts_with("AGENT-")))
            .filter(|s| {
                !format!("{} {}", s.title, s.description).to_lowercase().replace('\n', " ").contains("agent profile")
            })
            .map(|s| s.id.as_str())
            .collect();
        assert!(silent.is_empty(), "scenarios grading AGENT- rules without saying \"agent profile\": {silent:?}");
    }

    /// Every rule of the registry that is not retired is checked by some
    /// scenario: a declared rule nothing checks is a promise the suite breaks.
    #[test]
    fn every_live_rule_is_checked_by_a_scenario() {
        let reg = registry();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites");
        let all = load_all(&dir, &reg).unwrap();
        let checked: BTreeSet<&str> =
            all.iter().flat_map(|s| s.steps.iter().flat_map(|st| st.expect.iter().map(|e| e.rule.as_str()))).collect();
        let unchecked: Vec<&String> = reg
            .rules
            .iter()
            .filter(|(id, r)| r.retired.is_none() && !checked.contains(id.as_str()))
            .map(|(id, _)| id)
            .collect();
        assert!(
            unchecked.is_empty(),
            "rules no scenario checks (check them, or retire them with a note): {unchecked:?}"
        );
    }

    #[test]
    fn globs_match_ids_and_areas() {
        assert!(glob_match("deny-*", "deny-rogue-actor"));
        assert!(!glob_match("deny-*", "allow-agent"));
        let s = parse(OK).unwrap();
        assert!(s.matches("may-act"));
        assert!(s.matches("may-act/*rogue*"));
        assert!(!s.matches("core/*"));
    }
}
