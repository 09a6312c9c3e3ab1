//! Checks that data cannot express, as named functions. A scenario calls one
//! with `check = "name"` and `args`; the severity comes from the rule the
//! scenario attaches, never from here.
//!
//! Each function is pure: it gets the step's outcome, the claims of the token
//! under check and the identities of the principals, and returns a verdict
//! with a message saying what was expected and what was seen.

use std::collections::{BTreeMap, BTreeSet};

use fourleg_target::{Contract, Outcome};
use serde_json::Value;

pub use fourleg_target::Identity;

/// Result of a `wait` step.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOutcome {
    /// The condition held before the bound.
    pub held: bool,
    pub elapsed_ms: u64,
    pub timeout_ms: u64,
    /// What still did not hold at the end.
    pub pending: Vec<String>,
}

/// Result of an `accept` step (a stateless resource's judgement).
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptOutcome {
    pub accepted: bool,
    pub reason: String,
    /// Seconds until `exp` (negative when expired).
    pub remaining_s: i64,
}

/// Everything a check may look at.
#[derive(Debug)]
pub struct Input<'a> {
    pub outcome: Option<&'a Outcome>,
    /// Claims of the token under check (`token = …`, else the step's issued token).
    pub claims: Option<&'a Value>,
    /// Claims of the token named by `args.than`.
    pub than: Option<&'a Value>,
    pub identities: &'a BTreeMap<String, Identity>,
    /// The target's answers to the fixture contract's questions (pure).
    pub contract: Contract<'a>,
    pub args: &'a BTreeMap<String, toml::Value>,
    pub wait: Option<&'a WaitOutcome>,
    pub accept: Option<&'a AcceptOutcome>,
    /// On a revocation step: whether the revoked token is an access token.
    pub revoked_access_token: Option<bool>,
    /// On a metadata step: the issuer identifier the document's URL was
    /// made from (RFC 8414 §3.1).
    pub issuer: Option<&'a str>,
    /// On a protected-resource metadata step: the resource identifier the
    /// document must name (RFC 9728 §3.3).
    pub resource: Option<&'a str>,
    /// On a step whose request carried a DPoP proof: the JWK SHA-256
    /// thumbprint of the proof's key (RFC 9449 §6.1), which a token bound to
    /// it names in `cnf.jkt`.
    pub proof_key: Option<&'a str>,
    /// On a tool call: the claims of the newest token the API behind the
    /// resource received (`[resource] downstream`).
    pub downstream: Option<&'a Value>,
    /// On a scoped tool call: the claims of each token the API behind the
    /// resource received during the call (none without a view of it).
    pub called_api: Option<&'a [Value]>,
    /// On a registered client's exchange: what its registration said.
    pub registration: Option<&'a Registration>,
}

/// What a registration said about the client an `exchange` step of it
/// judges (RFC 7591 §3.2).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Registration {
    /// The `grant_types` the client information response lists (RFC 7591
    /// §3.2.1); `None` when it has none, which §2 reads as
    /// `authorization_code` only.
    pub grant_types: Option<Vec<String>>,
    /// What asked for the grants last was refused (the registration, RFC
    /// 7591 §3.2.2, or an update, RFC 7592 §2.2): how it was answered.
    pub refused: Option<String>,
    /// What asked for the grants last: `registration` or `update`.
    pub asked_by: String,
}

impl Registration {
    /// The grant types as a report shows them.
    fn listed(&self) -> String {
        match &self.grant_types {
            None => "no grant_types (RFC 7591 §2: authorization_code only)".into(),
            Some(g) => format!("grant_types {g:?}"),
        }
    }

    fn lists_exchange(&self) -> bool {
        self.grant_types.as_ref().is_some_and(|g| g.iter().any(|v| v == fourleg_target::TOKEN_EXCHANGE_GRANT))
    }
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass(String),
    Fail(String),
    /// The check could not be made (a prerequisite is missing).
    Untestable(String),
    /// The rule does not apply to what the target did (a conformant answer
    /// the rule does not cover, or a feature the target declares it lacks).
    NotApplicable(String),
}

/// A measured figure reported with a verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub value: f64,
    pub unit: &'static str,
    pub bound: Option<f64>,
}

/// A named check as the scenario format knows it: its name and the `args`
/// it reads. `args` outside that list are refused at load, naming the check
/// and the argument, so a misspelt argument cannot silently read as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSpec {
    pub name: &'static str,
    /// The arguments the check reads (`than`, `permission`, …), with their types.
    pub args: &'static [(&'static str, ArgType)],
    /// The arguments as `suites/README.md` shows them (Markdown).
    pub args_doc: &'static str,
    /// When the check passes, for `suites/README.md` (Markdown).
    pub passes: &'static str,
}

/// The type of a named check's argument, checked at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// A string (a principal, an abstract audience or permission).
    Text,
    /// A list of strings.
    Texts,
    /// A variable a previous step saved.
    Variable,
    Integer,
    Bool,
    /// A registered OAuth error code (`invalid_request`).
    ErrorCode,
}

impl ArgType {
    /// Why `v` is not of this type, if it is not.
    #[must_use]
    pub fn refuses(self, v: &toml::Value) -> Option<String> {
        let ok = match self {
            ArgType::Text | ArgType::Variable => v.is_str(),
            ArgType::Texts => v.as_array().is_some_and(|a| a.iter().all(toml::Value::is_str)),
            ArgType::Integer => v.is_integer(),
            ArgType::Bool => v.is_bool(),
            ArgType::ErrorCode => {
                let code = v.as_str().map(fourleg_core::oauth::ErrorCode::from);
                if let Some(fourleg_core::oauth::ErrorCode::Extension(c)) = &code {
                    return Some(format!("`{c}` is not a registered error code"));
                }
                code.is_some()
            }
        };
        (!ok).then(|| {
            let want = match self {
                ArgType::Text => "a string",
                ArgType::Texts => "a list of strings",
                ArgType::Variable => "a variable name (a string)",
                ArgType::Integer => "an integer",
                ArgType::Bool => "true or false",
                ArgType::ErrorCode => "an error code (a string)",
            };
            format!("expected {want}, found {v}")
        })
    }
}

/// Every named check, with the arguments it reads and its documentation;
/// the check table of `suites/README.md` is generated from it
/// ([`readme_table`]) and a test keeps the committed one current.
pub const TABLE: [CheckSpec; 64] = [
    CheckSpec {
        name: "act_chain",
        args: &[("actors", ArgType::Texts)],
        args_doc: r#"`actors = ["mcp-server", "agent"]`"#,
        passes: "`act` nests exactly these actors, outermost (current) first",
    },
    CheckSpec {
        name: "act_depth_at_limit",
        args: &[],
        args_doc: "",
        passes: "`act` nests exactly as many levels as the target's delegation depth limit (profile `[delegation] max_depth`, default 8)",
    },
    CheckSpec {
        name: "no_act",
        args: &[],
        args_doc: "",
        passes: "no `act` claim",
    },
    CheckSpec {
        name: "act_object",
        args: &[],
        args_doc: "",
        passes: "every `act` level is a non-empty JSON object (RFC 8693 §4.1: no member is required)",
    },
    CheckSpec {
        name: "act_shape",
        args: &[],
        args_doc: "",
        passes: "every `act` level is an object with `sub` or `client_id` (the agent profile's shape)",
    },
    CheckSpec {
        name: "act_no_nonidentity",
        args: &[],
        args_doc: "",
        passes: "no `exp`, `nbf`, `aud` inside any `act`",
    },
    CheckSpec {
        name: "sub_is",
        args: &[("principal", ArgType::Text)],
        args_doc: "`principal`",
        passes: "`sub` identifies that principal",
    },
    CheckSpec {
        name: "sub_same_as",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than` (variable)",
        passes: "same `sub` as that token",
    },
    CheckSpec {
        name: "aud_only",
        args: &[("audience", ArgType::Text)],
        args_doc: "`audience`",
        passes: "`aud` is exactly it",
    },
    CheckSpec {
        name: "aud_excludes",
        args: &[("audience", ArgType::Text)],
        args_doc: "`audience`",
        passes: "`aud` does not contain it",
    },
    CheckSpec {
        name: "aud_has",
        args: &[("audience", ArgType::Text)],
        args_doc: "`audience`",
        passes: "`aud` contains it (among others or alone)",
    },
    CheckSpec {
        name: "iss_differs",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than` (variable)",
        passes: "`iss` is present and differs from that token's `iss`",
    },
    CheckSpec {
        name: "has_permission",
        args: &[("permission", ArgType::Text)],
        args_doc: "`permission`",
        passes: "in the granted scope (untestable when refused)",
    },
    CheckSpec {
        name: "lacks_permission",
        args: &[("permission", ArgType::Text)],
        args_doc: "`permission`",
        passes: "not in the granted scope (untestable when refused)",
    },
    CheckSpec {
        name: "scope_within",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than`",
        passes: "granted permissions ⊆ that token's",
    },
    CheckSpec {
        name: "exp_not_after",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than`",
        passes: "`exp` ≤ that token's",
    },
    CheckSpec {
        name: "scope_is_string",
        args: &[],
        args_doc: "",
        passes: "the `scope` claim, if any, is a string",
    },
    CheckSpec {
        name: "refused_or_trimmed",
        args: &[("permission", ArgType::Text)],
        args_doc: "`permission`",
        passes: "refused, or granted without it and the response reports `scope`",
    },
    CheckSpec {
        name: "scope_reported_if_changed",
        args: &[("requested", ArgType::Texts)],
        args_doc: "`requested` (permissions)",
        passes: "granted = requested, or the response has `scope`",
    },
    CheckSpec {
        name: "inactive_only",
        args: &[],
        args_doc: "",
        passes: r#"introspection is exactly `{"active": false}`"#,
    },
    CheckSpec {
        name: "not_issued_for",
        args: &[("principal", ArgType::Text)],
        args_doc: "`principal`",
        passes: "refused, or the issued `sub` is not that principal",
    },
    CheckSpec {
        name: "refused_or_act_not_injected",
        args: &[("principal", ArgType::Text)],
        args_doc: "`principal` (the planted actor)",
        passes: "refused, or no level of the issued token's `act` names that principal (by any identity the target gives it)",
    },
    CheckSpec {
        name: "refused_or_act_names",
        args: &[("principal", ArgType::Text)],
        args_doc: "`principal`",
        passes: "refused, or the issued token's outermost `act` level identifies that principal",
    },
    CheckSpec {
        name: "refused_or_act_keeps",
        args: &[("actors", ArgType::Texts)],
        args_doc: "`actors` (the subject's `act`, outermost first)",
        passes: "refused, or the issued token's innermost `act` levels are exactly these actors in this order (a new actor may be added outside them)",
    },
    CheckSpec {
        name: "refused_or_no_refresh_token",
        args: &[],
        args_doc: "",
        passes: "refused, or a response with no `refresh_token` whose `issued_token_type` is not the refresh-token URI",
    },
    CheckSpec {
        name: "within_bound",
        args: &[("bound_ms", ArgType::Integer)],
        args_doc: "`bound_ms`",
        passes: "a `wait` held within the bound (the time is reported as a figure)",
    },
    CheckSpec {
        name: "accepted",
        args: &[("expected", ArgType::Bool)],
        args_doc: "`expected` (bool)",
        passes: "an `accept` step's verdict",
    },
    CheckSpec {
        name: "stateless_window",
        args: &[],
        args_doc: "",
        passes: "reports how long a stateless resource would still accept (figure, info)",
    },
    CheckSpec {
        name: "token_type_valid",
        args: &[],
        args_doc: "",
        passes: "`token_type` is present and not empty (any RFC 6749 §7.1 type, case-insensitive: Bearer, DPoP, N_A, …)",
    },
    CheckSpec {
        name: "issued_type_uri",
        args: &[],
        args_doc: "",
        passes: "`issued_token_type` is a URI",
    },
    CheckSpec {
        name: "error_shape",
        args: &[],
        args_doc: "",
        passes: "a JSON error with `error`, status 400, or 401 for `invalid_client` (RFC 6749 §5.2; the Authorization-header challenge is `basic_challenge`'s)",
    },
    CheckSpec {
        name: "basic_challenge",
        args: &[],
        args_doc: "",
        passes: "a client refused after authenticating with the Authorization header (HTTP Basic) gets 401 with `WWW-Authenticate` naming the Basic scheme (RFC 6749 §5.2); not-applicable when the client authenticated otherwise",
    },
    CheckSpec {
        name: "error_if_refused",
        args: &[("error", ArgType::ErrorCode)],
        args_doc: "`error`",
        passes: "refused with that error; not-applicable when the request succeeded (refusing was not required)",
    },
    CheckSpec {
        name: "revocation_ok",
        args: &[],
        args_doc: "",
        passes: "200 (RFC 7009 §2.2); an access token answered `unsupported_token_type` is not-applicable when the profile declares no access-token revocation (untestable when it declares it); a refused client is untestable here (see `revocation_client_accepted`)",
    },
    CheckSpec {
        name: "revocation_client_accepted",
        args: &[],
        args_doc: "",
        passes: "the revoking client (the one the token was issued to) was not refused: no 401, no `invalid_client` (RFC 7009 §2.1)",
    },
    CheckSpec {
        name: "refused_or_aud_has",
        args: &[("audience", ArgType::Text)],
        args_doc: "`audience` (literal)",
        passes: "refused (not-applicable: refusing is policy), or the issued token's `aud` contains it (RFC 8707 §2)",
    },
    CheckSpec {
        name: "resource_challenge",
        args: &[],
        args_doc: "",
        passes: "the protected resource answers a request without a token 401 with a Bearer challenge whose `resource_metadata` gives its RFC 9728 metadata URL (MCP authorization, RFC 9728 §5.1)",
    },
    CheckSpec {
        name: "bearer_challenge",
        args: &[],
        args_doc: "",
        passes: "a protected resource refusing a request for its token carries `WWW-Authenticate` with the Bearer scheme (RFC 6750 §3); not-applicable when it served the request",
    },
    CheckSpec {
        name: "resource_accepted",
        args: &[],
        args_doc: "",
        passes: "the protected resource served the request (2xx): a token issued for it is accepted",
    },
    CheckSpec {
        name: "resource_refused",
        args: &[],
        args_doc: "",
        passes: "the protected resource did not serve the request (4xx); untestable on 5xx",
    },
    CheckSpec {
        name: "resource_refused_401",
        args: &[],
        args_doc: "",
        passes: "a token the protected resource refuses gets 401 (MCP authorization: invalid tokens MUST receive 401); untestable when it was served",
    },
    CheckSpec {
        name: "prm_resource_identical",
        args: &[],
        args_doc: "",
        passes: "the protected resource metadata's `resource` is the resource's URL, character for character (RFC 9728 §3.3); untestable without a document",
    },
    CheckSpec {
        name: "prm_authorization_servers",
        args: &[],
        args_doc: "",
        passes: "the protected resource metadata lists at least one authorization server in `authorization_servers` (MCP authorization); untestable without a document",
    },
    CheckSpec {
        name: "metadata_served",
        args: &[],
        args_doc: "",
        passes: "the well-known metadata URL answers 200 with a JSON object (RFC 8414 §3, §3.2); the other metadata checks are untestable without one",
    },
    CheckSpec {
        name: "metadata_lists",
        args: &[("fields", ArgType::Texts)],
        args_doc: "`fields`",
        passes: "the metadata has these members",
    },
    CheckSpec {
        name: "metadata_jwks_uri",
        args: &[],
        args_doc: "",
        passes: "`jwks_uri` in an OpenID discovery document (OIDC Discovery §3); not-applicable for RFC 8414 metadata, where it is OPTIONAL",
    },
    CheckSpec {
        name: "metadata_issuer_identical",
        args: &[],
        args_doc: "",
        passes: "the metadata document's `issuer` is identical to the issuer identifier its URL was made from (RFC 8414 §3.3; no trailing slash, case or port added or dropped)",
    },
    CheckSpec {
        name: "jwks_public_only",
        args: &[],
        args_doc: "",
        passes: "the JWK Set's `keys` hold no private member (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`) and no symmetric key (`kty` `oct` or a `k`)",
    },
    CheckSpec {
        name: "grant_advertised",
        args: &[],
        args_doc: "",
        passes: "`grant_types_supported` lists token exchange",
    },
    CheckSpec {
        name: "refused_within_window",
        args: &[],
        args_doc: "",
        passes: "a `wait` until `refused` held: the protected resource refused the token within the window its profile declares (`[resource] revocation_window_s`)",
    },
    CheckSpec {
        name: "no_passthrough",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than` (the token the MCP server was called with)",
        passes: "the API behind the MCP server received a token other than the one the server was called with (another `jti`; with none, other claims); untestable without `[resource] downstream` or when the tool call failed",
    },
    CheckSpec {
        name: "downstream_audience",
        args: &[],
        args_doc: "",
        passes: "the newest token the API behind the MCP server received names the contract audience `downstream-api` in `aud`, and not the MCP server's (`mcp-server`); untestable without `[resource] downstream` or when the tool call failed",
    },
    CheckSpec {
        name: "downstream_act",
        args: &[("principal", ArgType::Text), ("than", ArgType::Variable)],
        args_doc: "`principal` (the MCP server), `than` (the token the server was called with)",
        passes: "the newest token the API behind the MCP server received keeps the subject of the token the server was called with (`sub`) and names `principal` as its current actor (`act`, RFC 8693 §4.1); untestable without `[resource] downstream` or when the tool call failed",
    },
    CheckSpec {
        name: "registered_201",
        args: &[],
        args_doc: "",
        passes: "a registration is answered 201 Created with a JSON object whose `client_id` is a non-empty string (RFC 7591 §3.2, §3.2.1)",
    },
    CheckSpec {
        name: "deleted_204",
        args: &[],
        args_doc: "",
        passes: "a registered client's deletion is answered 204 No Content (RFC 7592 §2.3)",
    },
    CheckSpec {
        name: "registered_grants_returned",
        args: &[],
        args_doc: "",
        passes: "a registered client's exchange was refused, or the `grant_types` its registration returned list token exchange (RFC 7591 §3.2.1: all registered metadata is returned); untestable when the registration or the client's own token was refused",
    },
    CheckSpec {
        name: "registered_exchange_per_policy",
        args: &[],
        args_doc: "",
        passes: "a registered client that asked for the token-exchange grant (at registration, or by an update) fares as `[registration] exchange` declares: `allowed`, its exchange of its own token succeeds; `refused`, the registration or update that asked, or the exchange, is refused; untestable without a declared policy, or when the server offers no update",
    },
    CheckSpec {
        name: "tool_ran",
        args: &[],
        args_doc: "",
        passes: "an MCP tool call got a tool result that is not an error (`isError`), a control before a refusal is graded",
    },
    CheckSpec {
        name: "tool_scope_refused",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than` (the token the tool was called with)",
        passes: "a call of `[resource.scoped_tool]` with a token lacking its scope (untestable when it carries it) is refused (4xx, a JSON-RPC error or a tool error) and the API behind the resource received nothing during it (read from `[resource] downstream`; without that view the refusal alone is graded)",
    },
    CheckSpec {
        name: "insufficient_scope_challenge",
        args: &[],
        args_doc: "",
        passes: "a tool call refused for want of scope gets 403 with a Bearer challenge carrying `error=\"insufficient_scope\"`, a `scope` that includes the tool's and `resource_metadata` (MCP authorization 2025-11-25, Scope Challenge Handling); untestable when the tool ran",
    },
    CheckSpec {
        name: "dpop_token_type",
        args: &[],
        args_doc: "",
        passes: "an issued access token bound to a key (`cnf.jkt`) comes with `token_type` DPoP (RFC 9449 §5); not-applicable when the token is not bound",
    },
    CheckSpec {
        name: "dpop_jkt",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than` (optional: the subject token, named when it was bound)",
        passes: "a token the response calls DPoP, or that carries `cnf.jkt`, is bound to the request's proof key: `cnf.jkt` is its RFC 7638 thumbprint (RFC 9449 §5, §6.1); not-applicable for a bearer token",
    },
    CheckSpec {
        name: "dpop_bound",
        args: &[],
        args_doc: "",
        passes: "a request with a valid DPoP proof gets a DPoP-bound token (`token_type` DPoP or `cnf.jkt`), not a bearer token, nor a refusal (scenarios make sure the same request succeeds without a proof)",
    },
    CheckSpec {
        name: "dpop_not_laundered",
        args: &[("than", ArgType::Variable)],
        args_doc: "`than` (the DPoP-bound subject token)",
        passes: "exchanging a DPoP-bound subject token does not yield a bearer token: refused, or the issued token is still bound; the message says which (refused, kept, rebound)",
    },
];

/// The DPoP binding of a token response (RFC 9449 §5, §6.1): its
/// `token_type`, and the `cnf.jkt` of its access token when it is a JWT.
struct Binding {
    token_type: String,
    dpop: bool,
    jkt: Option<String>,
}

impl Binding {
    fn of(o: &Outcome, claims: &Value) -> Self {
        let token_type = o.body.get("token_type").and_then(Value::as_str).unwrap_or("").to_owned();
        Binding {
            dpop: token_type.eq_ignore_ascii_case("dpop"),
            token_type,
            jkt: claims.pointer("/cnf/jkt").and_then(Value::as_str).map(str::to_owned),
        }
    }

    fn bound(&self) -> bool {
        self.dpop || self.jkt.is_some()
    }
}

/// The issued token's binding for a DPoP check, or why it cannot be read.
fn binding(x: &Input<'_>) -> Result<Binding, Verdict> {
    match (x.outcome, x.claims) {
        (None, _) => Err(Verdict::Untestable("no response".into())),
        (Some(o), _) if !o.is_success() || !o.body["access_token"].is_string() => {
            Err(Verdict::Untestable(format!("no token issued: {}", describe_error(o))))
        }
        (Some(_), None) => Err(Verdict::Untestable(
            "the access token is not a JWT: its binding cannot be read from it (RFC 9449 §6.1)".into(),
        )),
        (Some(o), Some(c)) => Ok(Binding::of(o, c)),
    }
}

/// The names of every named check, in table order.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|c| c.name)
}

/// RFC 6749 §5.2: the client authenticated with the `Authorization` header.
fn used_authorization_header(o: &Outcome) -> bool {
    o.evidence.auth.starts_with("client_secret_basic")
}

/// Whether a `WWW-Authenticate` value holds a challenge of the Basic scheme
/// (RFC 9110 §11.6.1: comma-separated challenges, scheme case-insensitive).
fn challenges_basic(header: &str) -> bool {
    header
        .split(',')
        .any(|part| part.split_whitespace().next().is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic")))
}

/// A header value shortened for a message (it came from the target).
fn scrub_header(h: &str) -> String {
    shown(h, 120)
}

/// Text the target chose, fit for a message: no token-shaped strings (a
/// hostile target may echo one), no control characters, at most `max`
/// characters.
fn shown(text: &str, max: usize) -> String {
    fourleg_target::evidence::scrub(text).chars().filter(|c| !c.is_control()).take(max).collect()
}

/// A refusal of the client itself (RFC 6749 §5.2 `invalid_client`, or 401).
fn client_refused(o: &Outcome) -> bool {
    o.status == 401 || o.error() == Some("invalid_client")
}

/// The check table of `suites/README.md`, in [`TABLE`]'s order.
#[must_use]
pub fn readme_table() -> String {
    use std::fmt::Write as _;
    let mut out = String::from("| check | args | passes when |\n|---|---|---|\n");
    for c in &TABLE {
        let args = if c.args_doc.is_empty() { String::new() } else { format!("{} ", c.args_doc) };
        let _ = writeln!(out, "| `{}` | {args}| {} |", c.name, c.passes);
    }
    out
}

/// The check of that name, if there is one.
#[must_use]
pub fn spec(name: &str) -> Option<&'static CheckSpec> {
    TABLE.iter().find(|c| c.name == name)
}

fn arg_str<'a>(args: &'a BTreeMap<String, toml::Value>, key: &str) -> Option<&'a str> {
    args.get(key).and_then(toml::Value::as_str)
}

fn arg_list(args: &BTreeMap<String, toml::Value>, key: &str) -> Vec<String> {
    args.get(key)
        .and_then(toml::Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// `aud` as a set (a string or an array, RFC 7519 §4.1.3).
#[must_use]
pub fn aud_set(claims: &Value) -> BTreeSet<String> {
    match &claims["aud"] {
        Value::String(s) => BTreeSet::from([s.clone()]),
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => BTreeSet::new(),
    }
}

/// Granted scope values: the token's `scope` (RFC 8693 §4.2) or `scp`, else
/// the response's `scope`. A `scope` claim written as a JSON array is read
/// too, so the rights are still compared; `scope_is_string` reports the
/// format on its own.
#[must_use]
pub fn scope_set(claims: Option<&Value>, outcome: Option<&Outcome>) -> Option<BTreeSet<String>> {
    let from_str = |s: &str| s.split_whitespace().map(str::to_owned).collect::<BTreeSet<_>>();
    if let Some(c) = claims {
        if let Some(s) = c["scope"].as_str() {
            return Some(from_str(s));
        }
        if let Some(a) = c["scope"].as_array().or_else(|| c["scp"].as_array()) {
            return Some(a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
        }
    }
    outcome.and_then(|o| o.body["scope"].as_str()).map(from_str)
}

/// The contract permissions present in a scope set.
#[must_use]
pub fn permissions(scope: &BTreeSet<String>, contract: Contract<'_>) -> BTreeSet<String> {
    contract.permissions_in(scope)
}

/// The `act` levels, outermost first (RFC 8693 §4.1).
#[must_use]
pub fn act_levels(claims: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut cur = claims.get("act");
    while let Some(a) = cur {
        out.push(a);
        cur = a.get("act");
    }
    out
}

/// `act A <- B` or `no act`, for a message.
fn act_said(claims: &Value) -> String {
    if act_levels(claims).is_empty() {
        "no act".into()
    } else {
        format!("act {}", shown(&describe_act(claims), 200))
    }
}

fn describe_act(claims: &Value) -> String {
    let levels = act_levels(claims);
    if levels.is_empty() {
        return "no act claim".into();
    }
    levels
        .iter()
        .map(|l| {
            l.get("client_id")
                .or_else(|| l.get("sub"))
                .map_or_else(|| l.to_string(), |v| v.as_str().unwrap_or_default().to_owned())
        })
        .collect::<Vec<_>>()
        .join(" <- ")
}

fn describe_error(o: &Outcome) -> String {
    match o.error() {
        Some(e) => format!("{} {e}", o.status),
        None => o.status.to_string(),
    }
}

fn is_refused(o: &Outcome) -> bool {
    (400..500).contains(&o.status)
}

/// Runs a named check.
#[must_use]
#[allow(clippy::too_many_lines)] // one match arm per check reads better than 24 tiny fns
pub fn run(name: &str, x: &Input<'_>) -> (Verdict, Option<Figure>) {
    use Verdict::{Fail, NotApplicable, Pass, Untestable};
    let need_claims = || {
        x.claims.ok_or_else(|| {
            Untestable(match x.outcome {
                Some(o) if !o.is_success() => {
                    format!("no token to check: the request was refused ({} {})", o.status, o.error().unwrap_or(""))
                }
                _ => "no decodable token to check (opaque or missing)".into(),
            })
        })
    };
    let ident = |p: &str| x.identities.get(p).cloned().unwrap_or_default();
    let verdict = match name {
        "act_chain" => {
            let want = arg_list(x.args, "actors");
            match need_claims() {
                Err(v) => v,
                Ok(c) => {
                    let levels = act_levels(c);
                    let ok = levels.len() == want.len() && levels.iter().zip(&want).all(|(l, p)| ident(p).matches(l));
                    let msg = format!(
                        "expected act chain {} (outermost first), found {}",
                        want.join(" <- "),
                        describe_act(c)
                    );
                    if ok {
                        Pass(msg)
                    } else {
                        Fail(msg)
                    }
                }
            }
        }
        "act_depth_at_limit" => match need_claims() {
            Err(v) => v,
            Ok(c) => {
                let (limit, declared) = x.contract.max_delegation_depth();
                let found = act_levels(c).len();
                let msg = format!(
                    "expected act {limit} levels deep ({}), found {found}: {}",
                    if declared { "the declared limit" } else { "the agent profile's default limit" },
                    describe_act(c)
                );
                if found == limit {
                    Pass(msg)
                } else {
                    Fail(msg)
                }
            }
        },
        "no_act" => match need_claims() {
            Err(v) => v,
            Ok(c) => {
                if c.get("act").is_none() {
                    Pass("no act claim".into())
                } else {
                    Fail(format!("an act claim was invented: {}", describe_act(c)))
                }
            }
        },
        "act_shape" => match need_claims() {
            Err(v) => v,
            Ok(c) => {
                let levels = act_levels(c);
                if levels.is_empty() {
                    Fail("no act claim".into())
                } else if let Some(bad) =
                    levels.iter().find(|l| !l.is_object() || !(l["sub"].is_string() || l["client_id"].is_string()))
                {
                    Fail(format!("act level is not an object identifying an actor: {bad}"))
                } else {
                    Pass(format!("act is a JSON object identifying the actor ({})", describe_act(c)))
                }
            }
        },
        // RFC 8693 §4.1: "The act claim value is a JSON object, and members in
        // the JSON object are claims that identify the actor." No member is
        // required (AGENT-CHAIN-act asks for sub or client_id: `act_shape`).
        "act_object" => match need_claims() {
            Err(v) => v,
            Ok(c) => {
                let levels = act_levels(c);
                if levels.is_empty() {
                    // §4.1 constrains an act claim that is there; its absence
                    // is the agent profile's finding (AGENT-CHAIN-act).
                    NotApplicable("no act claim: nothing for RFC 8693 §4.1 to constrain".into())
                } else if let Some(bad) = levels.iter().find(|l| l.as_object().is_none_or(serde_json::Map::is_empty)) {
                    Fail(format!("an act level is not a JSON object of claims: {bad}"))
                } else {
                    Pass(format!("every act level is a JSON object ({})", describe_act(c)))
                }
            }
        },
        "act_no_nonidentity" => match need_claims() {
            Err(v) => v,
            Ok(c) => {
                let found: Vec<String> = act_levels(c)
                    .iter()
                    .enumerate()
                    .flat_map(|(i, l)| {
                        ["exp", "nbf", "aud"]
                            .into_iter()
                            .filter(|k| l.get(*k).is_some())
                            .map(move |k| format!("{k} at act level {}", i + 1))
                    })
                    .collect();
                if found.is_empty() {
                    Pass("no exp, nbf or aud inside act".into())
                } else {
                    Fail(format!("non-identity claims inside act: {}", found.join(", ")))
                }
            }
        },
        "sub_is" => {
            let user = arg_str(x.args, "principal").unwrap_or_default();
            match need_claims() {
                Err(v) => v,
                Ok(c) => {
                    let msg = format!("expected sub of {user}, found {}", c["sub"]);
                    if ident(user).matches(&c["sub"]) {
                        Pass(msg)
                    } else {
                        Fail(msg)
                    }
                }
            }
        }
        "sub_same_as" => match (need_claims(), x.than) {
            (Err(v), _) => v,
            (_, None) => Untestable("the token to compare with is missing".into()),
            (Ok(c), Some(t)) => {
                let msg = format!("sub {} vs {}", c["sub"], t["sub"]);
                if c["sub"].is_string() && c["sub"] == t["sub"] {
                    Pass(msg)
                } else {
                    Fail(msg)
                }
            }
        },
        "iss_differs" => match (need_claims(), x.than) {
            (Err(v), _) => v,
            (_, None) => Untestable("the token to compare with is missing".into()),
            (Ok(c), Some(t)) => {
                let msg = format!("iss {} vs {}", c["iss"], t["iss"]);
                if c["iss"].is_string() && t["iss"].is_string() && c["iss"] != t["iss"] {
                    Pass(msg)
                } else {
                    Fail(msg)
                }
            }
        },
        "aud_only" | "aud_excludes" | "aud_has" => {
            let abstract_aud = arg_str(x.args, "audience").unwrap_or_default();
            let value = x.contract.aud_value(abstract_aud);
            match need_claims() {
                Err(v) => v,
                Ok(c) => {
                    let aud = aud_set(c);
                    let shown = aud.iter().cloned().collect::<Vec<_>>().join(", ");
                    if name == "aud_only" {
                        let msg = format!("expected aud exactly [{value}], found [{shown}]");
                        if aud.len() == 1 && aud.contains(&value) {
                            Pass(msg)
                        } else {
                            Fail(msg)
                        }
                    } else if name == "aud_has" {
                        let msg = format!("expected aud with {value}, found [{shown}]");
                        if aud.contains(&value) {
                            Pass(msg)
                        } else {
                            Fail(msg)
                        }
                    } else {
                        let msg = format!("expected aud without {value}, found [{shown}]");
                        if aud.contains(&value) {
                            Fail(msg)
                        } else {
                            Pass(msg)
                        }
                    }
                }
            }
        }
        "has_permission" | "lacks_permission" => {
            let p = arg_str(x.args, "permission").unwrap_or_default();
            match x.outcome {
                Some(o) if !o.is_success() => Untestable(format!(
                    "no token was issued ({} {}), so its permissions cannot be checked",
                    o.status,
                    o.error().unwrap_or("")
                )),
                _ => match scope_set(x.claims, x.outcome) {
                    None => Untestable("the token carries no scope and the response no scope".into()),
                    Some(s) => {
                        let has = permissions(&s, x.contract).contains(p);
                        let shown = s.iter().cloned().collect::<Vec<_>>().join(" ");
                        if name == "has_permission" {
                            if has {
                                Pass(format!("{p} granted (scope: {shown})"))
                            } else {
                                Fail(format!("{p} not granted (scope: {shown})"))
                            }
                        } else if has {
                            Fail(format!("{p} granted although it must not be (scope: {shown})"))
                        } else {
                            Pass(format!("{p} not granted (scope: {shown})"))
                        }
                    }
                },
            }
        }
        "scope_within" => match (scope_set(x.claims, x.outcome), x.than.map(|t| scope_set(Some(t), None))) {
            (_, None) => Untestable("the token to compare with is missing".into()),
            (None, _) => Untestable("the token carries no scope".into()),
            (Some(mine), Some(theirs)) => {
                let mine = permissions(&mine, x.contract);
                let theirs = permissions(&theirs.unwrap_or_default(), x.contract);
                let wider: Vec<&String> = mine.difference(&theirs).collect();
                if wider.is_empty() {
                    Pass(format!("permissions {mine:?} within the previous hop's {theirs:?}"))
                } else {
                    Fail(format!("scope widened along the chain: {wider:?} not in the previous hop's {theirs:?}"))
                }
            }
        },
        "exp_not_after" => match (need_claims(), x.than) {
            (Err(v), _) => v,
            (_, None) => Untestable("the token to compare with is missing".into()),
            (Ok(c), Some(t)) => {
                // The clock-skew leeway the profile declares (RFC 7519 §4.1.4) is
                // tolerated; anything past it is growth.
                let leeway = i64::try_from(x.contract.expiry_leeway_s()).unwrap_or(i64::MAX);
                let within = if leeway > 0 { format!(" (declared leeway {leeway}s)") } else { String::new() };
                match (c["exp"].as_i64(), t["exp"].as_i64()) {
                    (Some(a), Some(b)) if a <= b.saturating_add(leeway) => {
                        Pass(format!("exp {a} not after the previous hop's {b}{within}"))
                    }
                    (Some(a), Some(b)) => Fail(format!(
                        "exp grew along the chain: {a} is {}s after the previous hop's {b}{within}",
                        a - b
                    )),
                    _ => Untestable("exp missing".into()),
                }
            }
        },
        "scope_is_string" => match need_claims() {
            Err(v) => v,
            Ok(c) => match &c["scope"] {
                Value::Null => Pass("no scope claim".into()),
                Value::String(_) => Pass("scope is a space-separated string".into()),
                other => Fail(format!("scope is not a string: {other}")),
            },
        },
        "refused_or_trimmed" => {
            let p = arg_str(x.args, "permission").unwrap_or_default();
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if is_refused(o) => Pass(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
                Some(o) => match scope_set(x.claims, Some(o)) {
                    None => Untestable("granted, but neither token nor response carries scope".into()),
                    Some(s) if permissions(&s, x.contract).contains(p) => Fail(format!("{p} was granted")),
                    Some(_) if o.body["scope"].is_string() => {
                        Pass(format!("{p} trimmed and the granted scope reported"))
                    }
                    Some(_) => Fail(format!("{p} trimmed but the response does not report the granted scope")),
                },
            }
        }
        "scope_reported_if_changed" => {
            let requested: BTreeSet<String> = arg_list(x.args, "requested")
                .iter()
                .filter_map(|p| x.contract.scope_for(p).ok().map(str::to_owned))
                .collect();
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if !o.is_success() => Untestable(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
                Some(o) => match scope_set(x.claims, None) {
                    None => Untestable("the token carries no scope to compare".into()),
                    Some(granted) => {
                        let granted_perms: BTreeSet<String> =
                            granted.intersection(&x.contract.permission_scopes()).cloned().collect();
                        if granted_perms == requested || o.body["scope"].is_string() {
                            Pass(format!(
                                "granted {granted_perms:?}, requested {requested:?}, response scope {}",
                                o.body["scope"]
                            ))
                        } else {
                            Fail(format!("granted {granted_perms:?} differs from requested {requested:?} and the response has no scope"))
                        }
                    }
                },
            }
        }
        "inactive_only" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) => match o.body.as_object() {
                Some(m) if m.len() == 1 && m.get("active") == Some(&Value::Bool(false)) => {
                    Pass("{\"active\": false} and nothing more".into())
                }
                Some(m) if m.get("active") == Some(&Value::Bool(false)) => Fail(format!(
                    "inactive, but the response also carries {:?}",
                    m.keys().filter(|k| *k != "active").collect::<Vec<_>>()
                )),
                _ => Untestable(format!("the token is not inactive: {}", o.evidence.body)),
            },
        },
        "not_issued_for" => {
            let user = arg_str(x.args, "principal").unwrap_or_default();
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if !o.is_success() => Pass(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
                Some(_) => match x.claims {
                    Some(c) if ident(user).matches(&c["sub"]) => {
                        Fail(format!("a token with sub {} ({user}) was issued", c["sub"]))
                    }
                    Some(c) => Pass(format!("issued, but for sub {}, not {user}", c["sub"])),
                    None => Untestable("a token was issued but cannot be decoded".into()),
                },
            }
        }
        "refused_or_act_not_injected" => {
            // The planted actor, by contract name: matched against every
            // identity the target gives it (client_id, learned sub).
            let planted = arg_str(x.args, "principal").unwrap_or_default();
            let id = ident(planted);
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if !o.is_success() => Pass(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
                Some(_) => match x.claims {
                    Some(c) if act_levels(c).iter().any(|l| id.matches(l)) => Fail(format!(
                        "the planted actor `{planted}` was carried into the issued token's act: {}",
                        describe_act(c)
                    )),
                    Some(c) => Pass(format!("issued without the planted actor `{planted}` ({})", describe_act(c))),
                    None => Untestable("a token was issued but cannot be decoded".into()),
                },
            }
        }
        "refused_or_act_names" => {
            let who = arg_str(x.args, "principal").unwrap_or_default();
            let id = ident(who);
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if !o.is_success() => Pass(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
                Some(_) => match x.claims {
                    Some(c) => match act_levels(c).first() {
                        Some(outer) if id.matches(outer) => {
                            Pass(format!("issued with act naming `{who}` ({})", describe_act(c)))
                        }
                        Some(_) => Fail(format!("issued, but the current actor is not `{who}`: {}", describe_act(c))),
                        None => Fail(format!("issued without act: `{who}` acts, and the token does not say so")),
                    },
                    None => Untestable("a token was issued but cannot be decoded".into()),
                },
            }
        }
        "refused_or_act_keeps" => {
            // RFC 8693 §4.1: nested act claims represent prior actors. The
            // subject's chain must survive as the innermost levels, whatever
            // the server adds outside it (the requester as the current actor).
            let prior = arg_list(x.args, "actors");
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if !o.is_success() => Pass(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
                Some(_) => match x.claims {
                    Some(c) => {
                        let levels = act_levels(c);
                        let kept = levels.len() >= prior.len()
                            && levels[levels.len() - prior.len()..]
                                .iter()
                                .zip(&prior)
                                .all(|(l, p)| ident(p).matches(l));
                        if kept {
                            Pass(format!("issued with the history kept: {}", describe_act(c)))
                        } else if levels.is_empty() {
                            Fail(format!(
                                "issued without act: the subject's delegation history ({}) was dropped",
                                prior.join(" <- ")
                            ))
                        } else {
                            Fail(format!(
                                "issued with act {}, which no longer nests the subject's history {} innermost",
                                describe_act(c),
                                prior.join(" <- ")
                            ))
                        }
                    }
                    None => Untestable("a token was issued but cannot be decoded".into()),
                },
            }
        }
        // RFC 8693 §2.2.1: "A refresh token will typically not be issued when
        // the exchange is of one temporary credential (the subject_token)
        // for a different temporary credential (the issued token)".
        "refused_or_no_refresh_token" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if !o.is_success() => Pass(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
            Some(o) => {
                let issued = o.body["issued_token_type"].as_str().unwrap_or("(none)");
                let refresh = o.body.get("refresh_token").is_some_and(|v| !v.is_null());
                if issued.eq_ignore_ascii_case(fourleg_core::oauth::uri::REFRESH_TOKEN) {
                    Fail(format!("issued a refresh token (issued_token_type {issued})"))
                } else if refresh {
                    Fail(format!("the exchange response (issued_token_type {issued}) also carries a refresh_token"))
                } else {
                    Pass(format!("issued {issued}, no refresh token"))
                }
            }
        },
        "within_bound" => {
            let bound = x.args.get("bound_ms").and_then(toml::Value::as_integer).unwrap_or(0);
            match x.wait {
                None => Untestable("no wait outcome".into()),
                Some(w) if !w.held => Fail(format!(
                    "still not done after {} ms (bound {bound} ms): {}",
                    w.timeout_ms,
                    w.pending.join(", ")
                )),
                Some(w) => {
                    let msg = format!("took {} ms (bound {bound} ms)", w.elapsed_ms);
                    if i64::try_from(w.elapsed_ms).unwrap_or(i64::MAX) <= bound {
                        Pass(msg)
                    } else {
                        Fail(msg)
                    }
                }
            }
        }
        "accepted" => {
            let want = x.args.get("expected").and_then(toml::Value::as_bool).unwrap_or(true);
            match x.accept {
                None => Untestable("no accept outcome".into()),
                Some(a) => {
                    let msg = format!(
                        "a stateless resource would {} it: {}",
                        if a.accepted { "accept" } else { "refuse" },
                        a.reason
                    );
                    if a.accepted == want {
                        Pass(msg)
                    } else {
                        Fail(msg)
                    }
                }
            }
        }
        "stateless_window" => match x.accept {
            None => Untestable("no accept outcome".into()),
            Some(a) if a.accepted => {
                Pass(format!("a JWT-validating resource would still accept the chain for {} s", a.remaining_s))
            }
            Some(a) => Pass(format!("a JWT-validating resource already refuses the chain: {}", a.reason)),
        },
        // RFC 8693 §2.2.1: token_type REQUIRED, "a case-insensitive value
        // specifying the method of using the access token issued, as
        // specified in Section 7.1 of [RFC6749]": any access token type.
        "token_type_valid" => match x.outcome {
            Some(o) if o.is_success() => match o.body["token_type"].as_str() {
                Some(t) if !t.trim().is_empty() => {
                    let known = ["bearer", "n_a", "dpop"].iter().any(|k| t.eq_ignore_ascii_case(k));
                    Pass(if known {
                        format!("token_type {t}")
                    } else {
                        format!("token_type {t} (not a registered access token type; RFC 6749 §7.1 allows any)")
                    })
                }
                Some(_) => Fail("token_type is empty".into()),
                None => Fail("token_type missing".into()),
            },
            Some(o) => Untestable(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
            None => Untestable("no response".into()),
        },
        "issued_type_uri" => match x.outcome {
            Some(o) if o.is_success() => match o.body["issued_token_type"].as_str() {
                Some(t) if t.starts_with("urn:") || t.contains("://") => Pass(format!("issued_token_type {t}")),
                Some(t) => Fail(format!("issued_token_type {t} is not a URI")),
                None => Fail("issued_token_type missing".into()),
            },
            Some(o) => Untestable(format!("refused ({} {})", o.status, o.error().unwrap_or(""))),
            None => Untestable("no response".into()),
        },
        // RFC 6749 §5.2: 400 "(unless specified otherwise)"; invalid_client
        // MAY use 401, and MUST use 401 with WWW-Authenticate when the client
        // authenticated with the Authorization header.
        "error_shape" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.is_success() => Untestable("the request succeeded; no error to check".into()),
            Some(o) => {
                let json = o.headers.get("content-type").is_some_and(|c| c.contains("json"));
                let invalid_client = o.error() == Some("invalid_client");
                match (json, o.error(), o.status) {
                    (false, _, _) => Fail(format!("the {} error response is not JSON", o.status)),
                    (_, None, _) => Fail(format!("the {} error response has no `error` string", o.status)),
                    (true, Some(e), 400) => Pass(format!("400 with JSON error {e}")),
                    (true, Some(e), 401) if invalid_client => Pass(format!("401 with JSON error {e}")),
                    (true, Some(e), status) => Fail(format!(
                        "status {status} with error {e} (RFC 6749 §5.2 wants 400, or 401 for invalid_client)"
                    )),
                }
            }
        },
        // RFC 6749 §5.2: "If the client attempted to authenticate via the
        // Authorization request header field, the authorization server MUST
        // respond with an HTTP 401 (Unauthorized) status code and include the
        // WWW-Authenticate response header field matching the authentication
        // scheme used by the client."
        "basic_challenge" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if !used_authorization_header(o) => NotApplicable(format!(
                "the client authenticated without the Authorization header ({}): no challenge is due",
                o.evidence.auth
            )),
            Some(o) if o.is_success() => Untestable("the request succeeded; no refusal to check".into()),
            Some(o) if !client_refused(o) => Untestable(format!(
                "refused for another reason ({} {}), not the client's authentication",
                o.status,
                o.error().unwrap_or("")
            )),
            Some(o) if o.status != 401 => Fail(format!(
                "{} {}: the client authenticated with HTTP Basic, so RFC 6749 §5.2 wants 401",
                o.status,
                o.error().unwrap_or("")
            )),
            Some(o) => match o.headers.get("www-authenticate") {
                None => Fail("401 without WWW-Authenticate after HTTP Basic client authentication".into()),
                Some(h) if challenges_basic(h) => Pass(format!("401 with WWW-Authenticate: {}", scrub_header(h))),
                Some(h) => Fail(format!(
                    "401 with WWW-Authenticate: {}, which does not name the Basic scheme the client used",
                    scrub_header(h)
                )),
            },
        },
        // RFC 7009 §2.2: 200 for a revoked (or invalid) token. §2: access-token
        // revocation is a SHOULD, and a server without it answers
        // unsupported_token_type (§2.2.1), which is conformant. A refused
        // client is RFC 7009 §2.1's business (`revocation_client_accepted`).
        "revocation_ok" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.status == 200 => Pass("200".into()),
            Some(o) if o.error() == Some("unsupported_token_type") && x.revoked_access_token == Some(true) => {
                if x.contract.feature("access-token-revocation") == Some(true) {
                    Untestable(format!(
                        "{} unsupported_token_type for an access token: the target does not revoke access tokens (RFC 7009 §2: a SHOULD; conformant per §2.2.1), but its profile declares that it does: declare `access-token-revocation = false` under [features]",
                        o.status
                    ))
                } else {
                    NotApplicable(format!(
                        "{} unsupported_token_type: the target declares no access-token revocation (RFC 7009 §2: a SHOULD; §2.2.1 makes this answer conformant)",
                        o.status
                    ))
                }
            }
            Some(o) if client_refused(o) => Untestable(format!(
                "the revoking client itself was refused ({}); that is graded under RFC7009-2.1-client",
                describe_error(o)
            )),
            Some(o) => Fail(format!("expected 200, got {}", describe_error(o))),
        },
        // RFC 7009 §2.1: the server validates a confidential client's
        // credentials, then that the token was issued to the client; the
        // client the token was issued to (a public one by its client_id) is
        // not refused.
        "revocation_client_accepted" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if client_refused(o) => Fail(format!(
                "the client the token was issued to was refused at the revocation endpoint ({})",
                describe_error(o)
            )),
            Some(o) => Pass(format!("the client was accepted ({})", describe_error(o))),
        },
        // The error code of a refusal, where refusing is not required: a
        // request that succeeded is outside the rule.
        "error_if_refused" => {
            let want = arg_str(x.args, "error").unwrap_or_default();
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if o.is_success() => {
                    NotApplicable(format!("not refused ({}): no error code to check", o.status))
                }
                Some(o) if o.error() == Some(want) => Pass(format!("refused with {want}")),
                Some(o) => Fail(format!("refused, but with {} instead of {want}", describe_error(o))),
            }
        }
        // RFC 8707 §2: "The authorization server SHOULD audience-restrict
        // issued access tokens to the resource(s) indicated by the resource
        // parameter." Refusing the resource is policy: outside the rule.
        "refused_or_aud_has" => {
            let want = arg_str(x.args, "audience").unwrap_or_default();
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if !o.is_success() => NotApplicable(format!(
                    "refused ({}): no token to audience-check (refusing a resource is server policy)",
                    describe_error(o)
                )),
                Some(_) => match x.claims {
                    None => Untestable("a token was issued but cannot be decoded".into()),
                    Some(c) => {
                        let aud = aud_set(c);
                        let shown = aud.iter().cloned().collect::<Vec<_>>().join(", ");
                        if aud.contains(want) {
                            Pass(format!("issued with aud [{shown}], restricted to {want}"))
                        } else {
                            Fail(format!("issued for resource {want}, but its aud is [{shown}]"))
                        }
                    }
                },
            }
        }
        // OpenID Connect Discovery 1.0 §3: jwks_uri REQUIRED in an OpenID
        // discovery document; RFC 8414 §2 makes it OPTIONAL.
        "metadata_jwks_uri" => match x.outcome {
            _ if !x.contract.openid_discovery() => {
                NotApplicable("the profile reads RFC 8414 metadata, where jwks_uri is OPTIONAL (RFC 8414 §2)".into())
            }
            _ => match metadata_document(x.outcome) {
                Err(why) => Untestable(why),
                Ok(doc) if doc.get("jwks_uri").is_some_and(Value::is_string) => {
                    Pass("the OpenID discovery document lists jwks_uri".into())
                }
                Ok(_) => Fail(
                    "the OpenID discovery document lacks jwks_uri (OpenID Connect Discovery 1.0 §3: REQUIRED)".into(),
                ),
            },
        },
        // MCP authorization (2025-06-18, Authorization Server Location): a
        // 401 says where the metadata is, as RFC 9728 §5.1 describes.
        "resource_challenge" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.is_success() => Fail(format!(
                "answered {} to a request without a token: the resource is not protected (MCP authorization: 401, authorization required)",
                o.status
            )),
            Some(o) if o.status != 401 => Fail(format!(
                "answered {} to a request without a token; MCP authorization wants 401 with WWW-Authenticate",
                o.status
            )),
            Some(o) => match o.headers.get("www-authenticate") {
                None => Fail("401 without WWW-Authenticate".into()),
                Some(h) => match fourleg_core::oauth::challenge::param(h, "Bearer", "resource_metadata") {
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                        Pass(format!("401 with WWW-Authenticate: {}", scrub_header(h)))
                    }
                    Some(url) => Fail(format!("resource_metadata {url:?} is not an absolute URL")),
                    None => Fail(format!(
                        "401 with WWW-Authenticate: {}, without a Bearer resource_metadata parameter (RFC 9728 §5.1)",
                        scrub_header(h)
                    )),
                },
            },
        },
        // RFC 6750 §3: a request without (or with an unusable) token that is
        // refused carries WWW-Authenticate, with the Bearer scheme.
        "bearer_challenge" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.is_success() => NotApplicable(format!("served ({}): no refusal to check", o.status)),
            Some(o) if o.status >= 500 => Untestable(format!("answered {}: not a refusal", o.status)),
            Some(o) => match o.headers.get("www-authenticate") {
                Some(h) if fourleg_core::oauth::challenge::schemes(h).iter().any(|s| s == "bearer") => {
                    Pass(format!("{} with WWW-Authenticate: {}", o.status, scrub_header(h)))
                }
                Some(h) => Fail(format!("{} with WWW-Authenticate: {}, which names no Bearer challenge", o.status, scrub_header(h))),
                None => Fail(format!("refused with {} and no WWW-Authenticate", o.status)),
            },
        },
        "resource_accepted" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.is_success() => Pass(format!("served: {}", o.status)),
            Some(o) => Fail(format!("refused a token issued for it: {} {}", o.status, o.error().unwrap_or(""))),
        },
        "resource_refused" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.is_success() => Fail(format!("served the request ({}): the token was accepted", o.status)),
            Some(o) if o.status >= 500 => Untestable(format!("answered {}: neither served nor refused", o.status)),
            Some(o) => Pass(format!("refused: {}", o.status)),
        },
        // RFC 9449 §5: a bound token is announced as DPoP.
        "dpop_token_type" => match binding(x) {
            Err(v) => v,
            Ok(b) => match &b.jkt {
                None => NotApplicable(format!("the issued token is not bound (no cnf.jkt), token_type {:?}", b.token_type)),
                Some(j) if b.dpop => Pass(format!("bound (cnf.jkt {j}) and announced as token_type {}", b.token_type)),
                Some(j) => Fail(format!(
                    "the token is bound (cnf.jkt {j}) and the response says token_type {:?}: the client is told it holds a bearer token",
                    b.token_type
                )),
            },
        },
        // RFC 9449 §5: the token is bound to the proof's key; §6.1: a JWT
        // names it in cnf.jkt, its RFC 7638 thumbprint.
        "dpop_jkt" => match (x.proof_key, binding(x)) {
            (None, _) => Untestable("the request carried no DPoP proof".into()),
            (_, Err(v)) => v,
            (Some(_), Ok(b)) if !b.bound() => NotApplicable(format!(
                "not bound: a bearer token (token_type {:?}, no cnf.jkt), which RFC 9449 §5 allows",
                b.token_type
            )),
            (Some(want), Ok(b)) => match &b.jkt {
                Some(j) if j == want => {
                    let moved = x
                        .than
                        .and_then(|t| t.pointer("/cnf/jkt"))
                        .and_then(Value::as_str)
                        .is_some_and(|sj| sj != j);
                    Pass(format!(
                        "cnf.jkt {j} is the thumbprint of the proof's key{}",
                        if moved { " (rebound from the subject token's key)" } else { "" }
                    ))
                }
                None => Fail(format!(
                    "the response says token_type {}, and the token carries no cnf.jkt: the binding was dropped",
                    b.token_type
                )),
                Some(j) => {
                    let kept = x.than.and_then(|t| t.pointer("/cnf/jkt")).and_then(Value::as_str) == Some(j.as_str());
                    Fail(format!(
                        "cnf.jkt {j} is not the thumbprint of the proof's key ({want}){}",
                        if kept { ": it is the subject token's key, kept instead of the requester's" } else { "" }
                    ))
                }
            },
        },
        "dpop_bound" => match (x.proof_key, x.outcome) {
            (None, _) => Untestable("the request carried no DPoP proof".into()),
            (_, None) => Untestable("no response".into()),
            (Some(_), Some(o)) if is_refused(o) => {
                Fail(format!("the exchange with a valid DPoP proof was refused: {}", describe_error(o)))
            }
            (Some(_), Some(o)) if !o.is_success() || !o.body["access_token"].is_string() => {
                Untestable(format!("no token issued: {}", describe_error(o)))
            }
            (Some(_), Some(o)) => {
                let b = x.claims.map_or_else(
                    || Binding {
                        dpop: o.body["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("dpop")),
                        token_type: o.body["token_type"].as_str().unwrap_or("").to_owned(),
                        jkt: None,
                    },
                    |c| Binding::of(o, c),
                );
                if b.bound() {
                    Pass(format!(
                        "DPoP-bound: token_type {}{}",
                        b.token_type,
                        b.jkt.map(|j| format!(", cnf.jkt {j}")).unwrap_or_default()
                    ))
                } else {
                    Fail(format!(
                        "a bearer token (token_type {:?}, no cnf.jkt) for a request with a valid DPoP proof: the binding was stripped",
                        b.token_type
                    ))
                }
            }
        },
        // Agent profile: a bound subject token's constraint survives the
        // exchange; what became of it is said either way.
        "dpop_not_laundered" => {
            let subject_jkt = x.than.and_then(|t| t.pointer("/cnf/jkt")).and_then(Value::as_str);
            match (subject_jkt, x.outcome) {
                (None, _) => Untestable("the subject token is not DPoP-bound (no cnf.jkt)".into()),
                (_, None) => Untestable("no response".into()),
                (Some(_), Some(o)) if is_refused(o) => Pass(format!("refused: {}", describe_error(o))),
                (Some(sj), Some(o)) if o.is_success() && o.body["access_token"].is_string() => {
                    match x.claims.map(|c| Binding::of(o, c)) {
                        None if o.body["token_type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case("dpop")) => {
                            Pass("accepted; the issued token is opaque and announced as DPoP".into())
                        }
                        None => Fail(format!(
                            "accepted; the issued opaque token is announced as {:?}, not DPoP: the binding was stripped",
                            o.body["token_type"].as_str().unwrap_or("")
                        )),
                        Some(b) if !b.bound() => Fail(format!(
                            "the exchange of a token bound to {sj} was accepted and issued a bearer token (token_type {:?}, no cnf.jkt): the binding was stripped",
                            b.token_type
                        )),
                        Some(Binding { jkt: Some(j), .. }) if j == sj => {
                            Pass("accepted; the issued token stays bound to the subject token's key (kept)".into())
                        }
                        Some(Binding { jkt: Some(j), .. }) if Some(j.as_str()) == x.proof_key => {
                            Pass("accepted; the issued token is bound to the requester's proof key (rebound)".into())
                        }
                        Some(b) => Pass(format!("accepted; the issued token is DPoP-bound (cnf.jkt {:?})", b.jkt)),
                    }
                }
                (Some(_), Some(o)) => Untestable(format!("answered {}: neither a token nor a refusal", describe_error(o))),
            }
        }
        "refused_within_window" => {
            let window = x.contract.resource().and_then(|r| r.revocation_window_s).unwrap_or(0);
            match x.wait {
                None => Untestable("no wait outcome".into()),
                Some(w) if w.held => {
                    Pass(format!("refused {} ms after the revocation (declared window {window} s)", w.elapsed_ms))
                }
                Some(w) => Fail(format!(
                    "still accepted {} ms after the revocation, past the declared window of {window} s: {}",
                    w.elapsed_ms,
                    w.pending.join(", ")
                )),
            }
        }
        // MCP authorization: the server never forwards the token it was
        // called with; the API sees a token of its own.
        "no_passthrough" => match (x.outcome, x.downstream, x.than) {
            (None, _, _) => Untestable("no response".into()),
            (Some(o), _, _) if !o.is_success() || o.body.get("error").is_some() => {
                Untestable(format!("the tool call failed ({}): the API was not called", o.status))
            }
            (_, None, _) => Untestable("no view of what the API behind the resource received".into()),
            (_, _, None) => Untestable("the token the server was called with could not be decoded".into()),
            (Some(_), Some(got), Some(sent)) => {
                let jti = |c: &Value| c.get("jti").and_then(Value::as_str).map(str::to_owned);
                let same = match (jti(got), jti(sent)) {
                    (Some(a), Some(b)) => a == b,
                    _ => ["sub", "aud", "iat", "exp", "azp", "client_id"].iter().all(|k| got.get(k) == sent.get(k)),
                };
                let aud = shown(&aud_set(got).into_iter().collect::<Vec<_>>().join(" "), 200);
                if same {
                    Fail(format!("passed through: the API received the very token the MCP server was called with (aud {aud})"))
                } else {
                    Pass(format!("the API received a token of its own (aud {aud}; {})", act_said(got)))
                }
            }
        },
        // Agent profile: the API behind an MCP server gets a token for
        // itself, on the user's behalf, naming the MCP server as the actor.
        "downstream_audience" | "downstream_act" => match (x.outcome, x.downstream) {
            (None, _) => Untestable("no response".into()),
            (Some(o), _) if tool_refusal(o).is_some() => {
                Untestable(format!("the tool call failed ({}): the API was not called", o.status))
            }
            (_, None) => Untestable("no view of what the API behind the resource received".into()),
            (Some(_), Some(got)) if name == "downstream_audience" => {
                let aud = aud_set(got);
                let listed = shown(&aud.iter().cloned().collect::<Vec<_>>().join(" "), 200);
                let api = x.contract.aud_value("downstream-api");
                let server = x.contract.aud_value("mcp-server");
                if aud.contains(&server) {
                    Fail(format!("the API's token also names the MCP server ({server}) in aud: {listed}"))
                } else if !aud.contains(&api) {
                    let listed = if listed.is_empty() { "no aud".to_owned() } else { listed };
                    Fail(format!("the API's token does not name the API ({api}) in aud: {listed}"))
                } else {
                    Pass(format!("aud {listed}"))
                }
            }
            (Some(_), Some(got)) => {
                let who = arg_str(x.args, "principal").unwrap_or_default();
                let id = ident(who);
                let sub = |c: &Value| c.get("sub").and_then(Value::as_str).map(|s| shown(s, 80));
                match (x.than.map(sub), act_levels(got).first()) {
                    (None | Some(None), _) => Untestable("the token the server was called with has no readable sub".into()),
                    (Some(want), _) if sub(got) != want => Fail(format!(
                        "the API's token has sub {:?}, not the user the MCP server acted for ({:?}): the server called as itself",
                        sub(got).unwrap_or_default(),
                        want.unwrap_or_default()
                    )),
                    (_, Some(outer)) if id.matches(outer) => Pass(format!("on the user's behalf, {}", act_said(got))),
                    (_, Some(_)) => Fail(format!("the API's current actor is not `{who}`: {}", describe_act(got))),
                    (_, None) => Fail(format!(
                        "no act: the API's token does not say that `{who}` acts for the user (impersonation)"
                    )),
                }
            }
        },
        "registered_201" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) => match (o.status, o.body.get("client_id").and_then(Value::as_str)) {
                (201, Some(id)) if !id.is_empty() => Pass(format!("201 Created, client_id {id}")),
                (201, _) => Fail("201 Created without a client_id string (RFC 7591 §3.2.1: REQUIRED)".into()),
                (s, Some(id)) if (200..300).contains(&s) => {
                    Fail(format!("{s} with client_id {id}, where RFC 7591 §3.2 says 201 Created"))
                }
                _ => Untestable(format!("the registration was refused: {}", crate::engine::describe(o))),
            },
        },
        "deleted_204" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.status == 204 => Pass("204 No Content".into()),
            Some(o) => Fail(format!("the deletion answered {}, where RFC 7592 §2.3 says 204 No Content", crate::engine::describe(o))),
        },
        "registered_grants_returned" => registered_grants_returned(x),
        "registered_exchange_per_policy" => registered_exchange_per_policy(x),
        "tool_ran" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) => match tool_refusal(o) {
                None => Pass(format!("the tool ran ({})", o.status)),
                Some(how) => Fail(format!("the tool did not run: {how}")),
            },
        },
        // Agent profile: a tool's scope is the MCP server's own check, made
        // before it acts (the API behind it is not called).
        "tool_scope_refused" => {
            let needs = scoped_tool_scope(x);
            let carried = x.than.and_then(|c| c.get("scope")).and_then(Value::as_str).unwrap_or("");
            match x.outcome {
                _ if carried.split(' ').any(|v| v == needs) => {
                    Untestable(format!("the token the tool was called with carries {needs} (scope {carried:?})"))
                }
                None => Untestable("no response".into()),
                Some(o) if o.status >= 500 => Untestable(format!("the resource failed ({})", o.status)),
                Some(o) => match (tool_refusal(o), x.called_api) {
                    (None, _) => Fail(format!("the tool ran ({}) with a token lacking {needs}", o.status)),
                    (Some(how), Some(called)) if !called.is_empty() => {
                        let scopes: Vec<String> = called
                            .iter()
                            .map(|c| shown(c.get("scope").and_then(Value::as_str).unwrap_or("(none)"), 80))
                            .collect();
                        Fail(format!(
                            "refused ({how}) only after calling the API behind it, which received {} token(s) (scope {}): the server left the check of {needs} to others",
                            called.len(),
                            scopes.join(" | ")
                        ))
                    }
                    (Some(how), Some(_)) => Pass(format!("refused ({how}) before the API behind it was called")),
                    (Some(how), None) => Pass(format!("refused ({how}); no view of the API behind it, so the refusal alone is graded")),
                },
            }
        }
        // MCP authorization 2025-11-25, Runtime Insufficient Scope Errors.
        "insufficient_scope_challenge" => {
            let needs = scoped_tool_scope(x);
            match x.outcome {
                None => Untestable("no response".into()),
                Some(o) if tool_refusal(o).is_none() => Untestable(format!("the tool ran ({}): no refusal to check", o.status)),
                Some(o) if o.status != 403 => Fail(format!(
                    "refused as {}, not 403 insufficient_scope",
                    tool_refusal(o).unwrap_or_default()
                )),
                Some(o) => {
                    let challenge = o.headers.get("www-authenticate").map_or("", String::as_str);
                    let param = |n: &str| fourleg_core::oauth::challenge::param(challenge, "Bearer", n);
                    let scope = param("scope").unwrap_or_default();
                    if challenge.is_empty() {
                        Fail("403 without WWW-Authenticate".into())
                    } else if param("error").as_deref() != Some("insufficient_scope") {
                        Fail(format!("403 whose challenge has no error=\"insufficient_scope\": {}", scrub_header(challenge)))
                    } else if !scope.split(' ').any(|v| v == needs) {
                        Fail(format!(
                            "the challenge's scope {:?} does not name {needs}, the scope the tool needs",
                            shown(&scope, 200)
                        ))
                    } else if param("resource_metadata").is_none() {
                        Fail(format!("the challenge has no resource_metadata: {}", scrub_header(challenge)))
                    } else {
                        Pass(format!(
                            "403: error=\"insufficient_scope\", scope=\"{}\", resource_metadata",
                            shown(&scope, 200)
                        ))
                    }
                }
            }
        }
        "resource_refused_401" => match x.outcome {
            None => Untestable("no response".into()),
            Some(o) if o.is_success() => Untestable(format!("served ({}): no refusal to check", o.status)),
            Some(o) if o.status == 401 => Pass("401".into()),
            Some(o) => Fail(format!("refused with {}, where MCP authorization wants 401 for an invalid token", o.status)),
        },
        "prm_resource_identical" => match (metadata_document(x.outcome), x.resource) {
            (_, None) => Untestable("no resource URL the metadata was found from".into()),
            (Err(why), _) => Untestable(why),
            (Ok(doc), Some(want)) => match doc.get("resource").and_then(Value::as_str) {
                Some(got) if got == want => Pass(format!("resource {got} is the URL the client called")),
                Some(got) => Fail(format!("the document says resource {got:?}, and the client called {want:?}")),
                None => Fail("the document has no resource (RFC 9728 §2: REQUIRED)".into()),
            },
        },
        "prm_authorization_servers" => match metadata_document(x.outcome) {
            Err(why) => Untestable(why),
            Ok(doc) => match doc.get("authorization_servers").and_then(Value::as_array) {
                Some(list) if list.iter().any(Value::is_string) => Pass(format!(
                    "authorization_servers: {}",
                    list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
                )),
                Some(_) => Fail("authorization_servers names no authorization server".into()),
                None => Fail("the document has no authorization_servers".into()),
            },
        },
        // RFC 8414 §3 (OpenID Connect Discovery 1.0 §4): a document at the
        // well-known URL; §3.2: 200 and a JSON object.
        "metadata_served" => match x.outcome {
            None => Untestable("no metadata fetched".into()),
            Some(o) => match metadata_document(Some(o)) {
                Ok(doc) => Pass(format!("the metadata URL answers 200 with a JSON object of {} members", doc.len())),
                Err(why) => Fail(why),
            },
        },
        "metadata_lists" => {
            let fields = arg_list(x.args, "fields");
            match metadata_document(x.outcome) {
                Err(why) => Untestable(why),
                Ok(doc) => {
                    let missing: Vec<&String> = fields.iter().filter(|f| !doc.contains_key(f.as_str())).collect();
                    if missing.is_empty() {
                        Pass(format!("metadata lists {}", fields.join(", ")))
                    } else {
                        Fail(format!("metadata lacks {missing:?}"))
                    }
                }
            }
        }
        "metadata_issuer_identical" => match (metadata_document(x.outcome), x.issuer) {
            (_, None) => Untestable("the profile names no issuer the metadata URL was made from".into()),
            (Err(why), _) => Untestable(why),
            (Ok(doc), Some(want)) => match doc.get("issuer").and_then(Value::as_str) {
                Some(got) if got == want => {
                    Pass(format!("issuer {got} is the issuer identifier the metadata URL was made from"))
                }
                Some(got) => Fail(format!("the document says issuer {got:?}, and its URL was made from {want:?}")),
                None => Fail("the document has no issuer".into()),
            },
        },
        "jwks_public_only" => match x.outcome {
            Some(o) if o.is_success() => match o.body["keys"].as_array() {
                None => Untestable("the JWK Set has no keys array".into()),
                Some(keys) => {
                    let leaks: Vec<String> = keys
                        .iter()
                        .filter_map(|k| {
                            let kid = k["kid"].as_str().unwrap_or("(no kid)");
                            let private: Vec<&str> = fourleg_target::evidence::PRIVATE_JWK_MEMBERS
                                .iter()
                                .copied()
                                .filter(|m| k.get(*m).is_some())
                                .collect();
                            let symmetric = k["kty"] == "oct";
                            (symmetric || !private.is_empty()).then(|| {
                                format!("key {kid} ({}): {}", k["kty"].as_str().unwrap_or("?"), private.join(", "))
                            })
                        })
                        .collect();
                    if leaks.is_empty() {
                        Pass(format!("{} public key(s), no private or symmetric material", keys.len()))
                    } else {
                        Fail(format!(
                            "the published JWK Set carries private or symmetric key material: {}",
                            leaks.join("; ")
                        ))
                    }
                }
            },
            Some(o) => Untestable(format!("the JWK Set answered {}", o.status)),
            None => Untestable("no JWK Set fetched".into()),
        },
        "grant_advertised" => match metadata_document(x.outcome) {
            Err(why) => Untestable(why),
            Ok(doc) => {
                let grants = doc.get("grant_types_supported").and_then(Value::as_array);
                let has = grants.is_some_and(|g| g.iter().any(|v| v == fourleg_target::TOKEN_EXCHANGE_GRANT));
                match (grants, has) {
                    (_, true) => Pass("grant_types_supported lists token exchange".into()),
                    (None, _) => Fail("no grant_types_supported in the metadata".into()),
                    (Some(g), false) => {
                        Fail(format!("grant_types_supported lacks token exchange: {}", Value::Array(g.clone())))
                    }
                }
            }
        },
        other => Untestable(format!("unknown check {other}")),
    };
    let figure = match (name, x.wait, x.accept) {
        ("within_bound", Some(w), _) if w.held => Some(Figure {
            #[allow(clippy::cast_precision_loss)] // milliseconds stay far below 2^52
            value: w.elapsed_ms as f64,
            unit: "ms",
            #[allow(clippy::cast_precision_loss)]
            bound: x.args.get("bound_ms").and_then(toml::Value::as_integer).map(|b| b as f64),
        }),
        ("stateless_window", _, Some(a)) => Some(Figure {
            #[allow(clippy::cast_precision_loss)]
            value: a.remaining_s.max(0) as f64,
            unit: "s",
            bound: None,
        }),
        _ => None,
    };
    (verdict, figure)
}

/// The metadata document of a `metadata` step: a 200 answer whose body is a
/// JSON object (RFC 8414 §3.2); otherwise why there is none, which makes the
/// checks of its members untestable (`metadata_served` grades it).
/// The scope value `[resource.scoped_tool]` needs, as the token would carry it.
fn scoped_tool_scope(x: &Input<'_>) -> String {
    x.contract.resource().and_then(|r| r.scoped_tool.as_ref()).map_or_else(
        || "the tool's scope".into(),
        |t| x.contract.scope_for(&t.scope).map_or_else(|_| t.scope.clone(), str::to_owned),
    )
}

/// How a tool call was refused: a 4xx, a JSON-RPC error, or a tool result
/// with `isError` (MCP "Tools": errors a model should see); none when the
/// tool ran.
/// How a registered client's exchange ended: `Ok(true)` a token, `Ok(false)`
/// refused (4xx), `Err` neither (no response, a 5xx, a 2xx without a token).
fn registered_exchange_outcome(x: &Input) -> Result<bool, String> {
    match x.outcome {
        None => Err("no response".into()),
        Some(o) if o.is_success() && o.token("access_token").is_some() => Ok(true),
        Some(o) if (400..500).contains(&o.status) => Ok(false),
        Some(o) => Err(format!("the exchange answered {}", crate::engine::describe(o))),
    }
}

/// RFC 7591 §3.2.1: the response returns all registered metadata. A client
/// that exchanges although the `grant_types` returned for it do not list
/// token exchange holds a grant the server registered without saying so.
fn registered_grants_returned(x: &Input) -> Verdict {
    use Verdict::{Fail, Pass, Untestable};
    let Some(r) = x.registration else {
        return Untestable("not a registered client's exchange".into());
    };
    if let Some(how) = &r.refused {
        return Untestable(format!("the {} was refused: {how}", r.asked_by));
    }
    match registered_exchange_outcome(x) {
        Err(why) => Untestable(why),
        Ok(false) => Pass(format!(
            "the exchange was refused ({}); its registration returned {}",
            x.outcome.map(crate::engine::describe).unwrap_or_default(),
            r.listed()
        )),
        Ok(true) if r.lists_exchange() => Pass(format!("the exchange succeeded, and its registration's {} list it", r.listed())),
        Ok(true) => Fail(format!(
            "the client got a token by exchange, but its registration returned {}: the server registered a grant it did not return",
            r.listed()
        )),
    }
}

/// The profile's `[registration] exchange`, against what a client that
/// registered asking for the token-exchange grant met.
fn registered_exchange_per_policy(x: &Input) -> Verdict {
    use fourleg_target::profile::ExchangePolicy;
    use Verdict::{Fail, Pass, Untestable};
    let Some(policy) = x.contract.registration_policy() else {
        return Untestable(
            "the profile declares no policy for registered clients (`[registration] exchange = \"allowed\"` or `\"refused\"`)"
                .into(),
        );
    };
    let Some(r) = x.registration else {
        return Untestable("not a registered client's exchange".into());
    };
    let declared = match &policy.note {
        Some(note) => format!("declared `{}` ({note})", policy.exchange.as_str()),
        None => format!("declared `{}`", policy.exchange.as_str()),
    };
    if let Some(how) = &r.refused {
        return match policy.exchange {
            ExchangePolicy::Refused => {
                Pass(format!("{declared}: the {} asking for the grant was refused ({how})", r.asked_by))
            }
            ExchangePolicy::Allowed => Fail(format!(
                "{declared}, but the {} asking for the token-exchange grant was refused ({how})",
                r.asked_by
            )),
        };
    }
    let answered = x.outcome.map(crate::engine::describe).unwrap_or_default();
    match (registered_exchange_outcome(x), policy.exchange) {
        (Err(why), _) => Untestable(why),
        (Ok(true), ExchangePolicy::Allowed) => Pass(format!("{declared}: the registered client exchanged its own token")),
        (Ok(false), ExchangePolicy::Refused) => Pass(format!("{declared}: the exchange was refused ({answered})")),
        (Ok(true), ExchangePolicy::Refused) => {
            Fail(format!(
                "{declared}, yet the registered client got a token by exchange after its {} asked for the grant ({})",
                r.asked_by,
                r.listed()
            ))
        }
        (Ok(false), ExchangePolicy::Allowed) => Fail(format!(
            "{declared}, but the registered client's exchange of its own token was refused ({answered}; its {} returned {})",
            r.asked_by,
            r.listed()
        )),
    }
}

fn tool_refusal(o: &Outcome) -> Option<String> {
    if !o.is_success() {
        return Some(format!("HTTP {}", o.status));
    }
    if let Some(e) = o.body.get("error") {
        return Some(format!("JSON-RPC error {}", e.get("code").map(Value::to_string).unwrap_or_default()));
    }
    if o.body.pointer("/result/isError") == Some(&Value::Bool(true)) {
        return Some("a tool error (isError)".into());
    }
    None
}

fn metadata_document(outcome: Option<&Outcome>) -> Result<&serde_json::Map<String, Value>, String> {
    match outcome {
        None => Err("no metadata fetched".into()),
        Some(o) if o.status != 200 => Err(format!("no metadata document: its URL answered {}", o.status)),
        Some(o) => o.body.as_object().ok_or_else(|| {
            let kind = match &o.body {
                Value::Null => "an empty or non-JSON body",
                Value::String(_) => "a body that is not JSON",
                Value::Array(_) => "a JSON array",
                _ => "a JSON scalar",
            };
            format!("no metadata document: its URL answered 200 with {kind}, not a JSON object")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fourleg_target::profile::Profile;
    use serde_json::json;

    fn profile() -> Profile {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/targets/keycloak.toml");
        Profile::load(&path).unwrap()
    }

    fn ids() -> BTreeMap<String, Identity> {
        let mk = |cid: Option<&str>, names: &[&str]| Identity {
            client_id: cid.map(str::to_owned),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
        };
        BTreeMap::from([
            ("agent".to_owned(), mk(Some("agent"), &["agent", "sa-agent"])),
            ("mcp-server".to_owned(), mk(Some("mcp-server"), &["mcp-server", "sa-mcp"])),
            ("alice".to_owned(), mk(None, &["alice", "u-alice"])),
        ])
    }

    fn check(name: &str, claims: &Value, args: &BTreeMap<String, toml::Value>) -> Verdict {
        let p = profile();
        let ids = ids();
        run(
            name,
            &Input {
                outcome: None,
                claims: Some(claims),
                than: None,
                identities: &ids,
                contract: Contract::new(&p),
                args,
                wait: None,
                accept: None,
                revoked_access_token: None,
                issuer: None,
                resource: None,
                proof_key: None,
                downstream: None,
                called_api: None,
                registration: None,
            },
        )
        .0
    }

    fn args(pairs: &[(&str, toml::Value)]) -> BTreeMap<String, toml::Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    fn actors(list: &[&str]) -> BTreeMap<String, toml::Value> {
        args(&[("actors", toml::Value::Array(list.iter().map(|s| toml::Value::String((*s).into())).collect()))])
    }

    #[test]
    fn act_chain_passes_only_on_the_exact_nesting() {
        let good = json!({"sub": "u-alice", "act": {"sub": "sa-mcp", "act": {"client_id": "agent"}}});
        assert!(matches!(check("act_chain", &good, &actors(&["mcp-server", "agent"])), Verdict::Pass(_)));
        let reversed = json!({"act": {"sub": "sa-agent", "act": {"sub": "sa-mcp"}}});
        assert!(matches!(check("act_chain", &reversed, &actors(&["mcp-server", "agent"])), Verdict::Fail(_)));
        let replaced = json!({"act": {"sub": "sa-mcp"}});
        assert!(matches!(check("act_chain", &replaced, &actors(&["mcp-server", "agent"])), Verdict::Fail(_)));
        assert!(matches!(check("act_chain", &json!({}), &actors(&["agent"])), Verdict::Fail(_)));
    }

    #[test]
    fn act_depth_at_limit_counts_act_levels_against_the_declared_or_default_limit() {
        fn nested(n: usize) -> Value {
            let mut v = json!({"sub": "alice"});
            for i in (0..n).rev() {
                let inner = v.get("act").cloned();
                let mut level = json!({"sub": format!("relay-{i}")});
                if let Some(a) = inner {
                    level["act"] = a;
                }
                v["act"] = level;
            }
            v
        }
        let none = BTreeMap::new();
        // keycloak.toml declares no limit: the agent profile's default, 8.
        assert!(matches!(check("act_depth_at_limit", &nested(8), &none), Verdict::Pass(_)));
        assert!(matches!(check("act_depth_at_limit", &nested(7), &none), Verdict::Fail(_)));
        assert!(matches!(check("act_depth_at_limit", &nested(9), &none), Verdict::Fail(_)));
        let mut p = profile();
        p.delegation.max_depth = Some(3);
        let verdict = |claims: &Value| on_token("act_depth_at_limit", &p, None, Some(claims), None, None);
        assert!(matches!(verdict(&nested(3)), Verdict::Pass(m) if m.contains("declared limit")));
        assert!(matches!(verdict(&nested(8)), Verdict::Fail(_)));
        assert!(matches!(verdict(&json!({"sub": "alice"})), Verdict::Fail(_)));
    }

    #[test]
    fn no_act_and_act_shape_and_nonidentity() {
        let none = BTreeMap::new();
        assert!(matches!(check("no_act", &json!({"sub": "x"}), &none), Verdict::Pass(_)));
        assert!(matches!(check("no_act", &json!({"act": {"sub": "x"}}), &none), Verdict::Fail(_)));
        assert!(matches!(check("act_shape", &json!({"act": "agent"}), &none), Verdict::Fail(_)));
        assert!(matches!(check("act_shape", &json!({"act": {"sub": "a"}}), &none), Verdict::Pass(_)));
        assert!(matches!(
            check("act_no_nonidentity", &json!({"act": {"sub": "a", "exp": 1}}), &none),
            Verdict::Fail(_)
        ));
        assert!(matches!(check("act_no_nonidentity", &json!({"act": {"sub": "a"}}), &none), Verdict::Pass(_)));
    }

    #[test]
    fn audience_and_permissions() {
        let a = args(&[("audience", toml::Value::String("mcp-server".into()))]);
        assert!(matches!(check("aud_only", &json!({"aud": "mcp-server"}), &a), Verdict::Pass(_)));
        assert!(matches!(check("aud_only", &json!({"aud": ["mcp-server", "x"]}), &a), Verdict::Fail(_)));
        assert!(matches!(check("aud_excludes", &json!({"aud": ["mcp-server"]}), &a), Verdict::Fail(_)));
        assert!(matches!(check("aud_has", &json!({"aud": ["x", "mcp-server"]}), &a), Verdict::Pass(_)));
        assert!(matches!(check("aud_has", &json!({"aud": "x"}), &a), Verdict::Fail(_)));
        let p = args(&[("permission", toml::Value::String("records:delete".into()))]);
        assert!(matches!(check("lacks_permission", &json!({"scope": "records:read"}), &p), Verdict::Pass(_)));
        assert!(matches!(
            check("lacks_permission", &json!({"scope": "records:read records:delete"}), &p),
            Verdict::Fail(_)
        ));
        assert!(matches!(check("has_permission", &json!({"scope": "records:read"}), &p), Verdict::Fail(_)));
    }

    #[test]
    fn comparisons_with_the_previous_hop() {
        let p = profile();
        let ids = ids();
        let none = BTreeMap::new();
        let prev = json!({"exp": 100, "scope": "records:read", "iss": "https://idp/realms/lab"});
        let wider = json!({"exp": 90, "scope": "records:read records:write"});
        let later = json!({"exp": 110, "scope": "records:read"});
        let go = |name: &str, c: &Value| {
            run(
                name,
                &Input {
                    outcome: None,
                    claims: Some(c),
                    than: Some(&prev),
                    identities: &ids,
                    contract: Contract::new(&p),
                    args: &none,
                    wait: None,
                    accept: None,
                    revoked_access_token: None,
                    issuer: None,
                    resource: None,
                    proof_key: None,
                    downstream: None,
                    called_api: None,
                    registration: None,
                },
            )
            .0
        };
        assert!(matches!(go("scope_within", &wider), Verdict::Fail(_)));
        assert!(matches!(go("scope_within", &later), Verdict::Pass(_)));
        assert!(matches!(go("exp_not_after", &later), Verdict::Fail(_)));
        assert!(matches!(go("exp_not_after", &wider), Verdict::Pass(_)));
        assert!(matches!(go("iss_differs", &json!({"iss": "https://idp/realms/lab-foreign"})), Verdict::Pass(_)));
        assert!(matches!(go("iss_differs", &json!({"iss": "https://idp/realms/lab"})), Verdict::Fail(_)));
        assert!(matches!(go("iss_differs", &json!({"sub": "alice"})), Verdict::Fail(_)));
        // One second past is growth when no leeway is declared.
        assert!(matches!(go("exp_not_after", &json!({"exp": 101})), Verdict::Fail(_)));
    }

    /// The clock-skew leeway a profile declares (`[short_lived] leeway_s`)
    /// is tolerated, and not a second more.
    #[test]
    fn exp_growth_within_the_declared_leeway_is_tolerated() {
        let mut p = profile();
        p.short_lived.get_or_insert_with(|| toml::from_str("scope = [\"x\"]").unwrap()).leeway_s = 5;
        let prev = json!({"exp": 100});
        let go = |exp: i64| on_token("exp_not_after", &p, None, Some(&json!({ "exp": exp })), Some(&prev), None);
        assert!(matches!(go(105), Verdict::Pass(m) if m.contains("leeway 5s")));
        assert!(matches!(go(106), Verdict::Fail(_)));
    }

    fn outcome(status: u16, body: Value, headers: &[(&str, &str)], auth: &str) -> Outcome {
        let headers: BTreeMap<String, String> =
            headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Outcome {
            status,
            headers: headers.clone(),
            body: body.clone(),
            evidence: fourleg_target::HttpEvidence {
                label: "t".into(),
                method: "POST".into(),
                url: "http://127.0.0.1/".into(),
                auth: auth.into(),
                form: vec![],
                status,
                headers,
                body,
                tokens: BTreeMap::new(),
                dpop: None,
                elapsed_ms: 0,
            },
        }
    }

    fn on(name: &str, o: &Outcome, p: &Profile, revoked_access_token: Option<bool>) -> Verdict {
        on_args(name, o, p, revoked_access_token, &BTreeMap::new(), None)
    }

    fn on_args(
        name: &str,
        o: &Outcome,
        p: &Profile,
        revoked_access_token: Option<bool>,
        args: &BTreeMap<String, toml::Value>,
        claims: Option<&Value>,
    ) -> Verdict {
        let ids = ids();
        run(
            name,
            &Input {
                outcome: Some(o),
                claims,
                than: None,
                identities: &ids,
                contract: Contract::new(p),
                args,
                wait: None,
                accept: None,
                revoked_access_token,
                issuer: None,
                resource: None,
                proof_key: None,
                downstream: None,
                called_api: None,
                registration: None,
            },
        )
        .0
    }

    /// A check without arguments on a decoded token (`claims`, compared
    /// with `than`) or a response (`o`, fetched from `issuer`'s metadata URL).
    fn on_token(
        name: &str,
        p: &Profile,
        o: Option<&Outcome>,
        claims: Option<&Value>,
        than: Option<&Value>,
        issuer: Option<&str>,
    ) -> Verdict {
        let ids = ids();
        let none = BTreeMap::new();
        run(
            name,
            &Input {
                outcome: o,
                claims,
                than,
                identities: &ids,
                contract: Contract::new(p),
                args: &none,
                wait: None,
                accept: None,
                revoked_access_token: None,
                issuer,
                resource: issuer,
                proof_key: None,
                downstream: None,
                called_api: None,
                registration: None,
            },
        )
        .0
    }

    #[test]
    fn jwks_public_only_finds_private_and_symmetric_material() {
        let p = profile();
        let go = |doc: Value| on("jwks_public_only", &outcome(200, doc, &[], "none"), &p, None);
        let ec = json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": "x", "y": "y"});
        assert!(matches!(go(json!({"keys": [ec.clone()]})), Verdict::Pass(_)));
        let mut with_d = ec.clone();
        with_d["d"] = json!("s");
        assert!(matches!(go(json!({"keys": [ec.clone(), with_d]})), Verdict::Fail(m) if m.contains("key e (EC): d")));
        let rsa_p = json!({"kty": "RSA", "kid": "r", "n": "n", "e": "AQAB", "p": "s"});
        assert!(matches!(go(json!({"keys": [rsa_p]})), Verdict::Fail(_)));
        assert!(matches!(go(json!({"keys": [{"kty": "oct", "kid": "h", "k": "s"}]})), Verdict::Fail(_)));
        assert!(matches!(go(json!({"no": "keys"})), Verdict::Untestable(_)));
    }

    /// RFC 8414 §3.3: identical, character for character.
    #[test]
    fn metadata_issuer_identical_compares_exactly() {
        let p = profile();
        let verdict = |doc: Value, issuer: Option<&str>| {
            on_token("metadata_issuer_identical", &p, Some(&outcome(200, doc, &[], "none")), None, None, issuer)
        };
        let want = Some("http://127.0.0.1:8080/realms/fourleg");
        assert!(matches!(verdict(json!({"issuer": "http://127.0.0.1:8080/realms/fourleg"}), want), Verdict::Pass(_)));
        for near in [
            "http://127.0.0.1:8080/realms/fourleg/",
            "HTTP://127.0.0.1:8080/realms/fourleg",
            "http://localhost:8080/realms/fourleg",
            "http://127.0.0.1:8080/realms/Fourleg",
        ] {
            assert!(matches!(verdict(json!({"issuer": near}), want), Verdict::Fail(_)), "{near}");
        }
        assert!(matches!(verdict(json!({}), want), Verdict::Fail(_)));
        assert!(matches!(verdict(json!({"issuer": "x"}), None), Verdict::Untestable(_)));
    }

    /// RFC 8414 §3, §3.2: a document at the well-known URL, 200 and a JSON
    /// object; without one, the checks of its members are untestable, so
    /// one missing document fails one rule only.
    #[test]
    fn a_missing_metadata_document_fails_its_own_rule_only() {
        let p = profile();
        let verdict = |name: &str, o: &Outcome| on_token(name, &p, Some(o), None, None, Some("http://i"));
        let good = outcome(200, json!({"issuer": "http://i", "token_endpoint": "http://i/t"}), &[], "none");
        assert!(matches!(verdict("metadata_served", &good), Verdict::Pass(_)));
        for broken in [
            outcome(404, json!({}), &[], "none"),
            outcome(200, json!("<html>maintenance</html>"), &[], "none"),
            outcome(200, json!([1, 2]), &[], "none"),
            outcome(200, Value::Null, &[], "none"),
            outcome(302, json!({"issuer": "http://i"}), &[], "none"),
        ] {
            assert!(matches!(verdict("metadata_served", &broken), Verdict::Fail(_)), "{:?}", broken.body);
            for dependent in ["metadata_lists", "metadata_issuer_identical", "grant_advertised"] {
                assert!(
                    matches!(verdict(dependent, &broken), Verdict::Untestable(_)),
                    "{dependent} on {} {:?}",
                    broken.status,
                    broken.body
                );
            }
        }
    }

    /// The resource side: a challenge must name its metadata under the
    /// Bearer scheme, a refusal is any 4xx, and the 401 rule grades only
    /// refusals.
    #[test]
    fn resource_challenges_and_refusals() {
        let p = profile();
        let v = |name: &str, o: &Outcome| on_token(name, &p, Some(o), None, None, None);
        let good = r#"Bearer resource_metadata="http://r/.well-known/oauth-protected-resource/mcp""#;
        assert!(matches!(
            v("resource_challenge", &outcome(401, json!({}), &[("www-authenticate", good)], "none")),
            Verdict::Pass(_)
        ));
        for near in [
            outcome(401, json!({}), &[("www-authenticate", "Bearer")], "none"),
            outcome(401, json!({}), &[("www-authenticate", r#"Basic resource_metadata="http://r/m", Bearer"#)], "none"),
            outcome(401, json!({}), &[("www-authenticate", r#"Bearer resource_metadata="/relative""#)], "none"),
            outcome(403, json!({}), &[("www-authenticate", good)], "none"),
            outcome(401, json!({}), &[], "none"),
            outcome(200, json!({}), &[], "none"),
        ] {
            assert!(matches!(v("resource_challenge", &near), Verdict::Fail(_)), "{:?} {:?}", near.status, near.headers);
        }
        assert!(matches!(
            v("bearer_challenge", &outcome(403, json!({}), &[("www-authenticate", "Bearer")], "none")),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            v("bearer_challenge", &outcome(401, json!({}), &[("www-authenticate", "Basic")], "none")),
            Verdict::Fail(_)
        ));
        assert!(matches!(v("bearer_challenge", &outcome(200, json!({}), &[], "none")), Verdict::NotApplicable(_)));
        assert!(matches!(v("resource_refused", &outcome(200, json!({}), &[], "none")), Verdict::Fail(_)));
        assert!(matches!(v("resource_refused", &outcome(403, json!({}), &[], "none")), Verdict::Pass(_)));
        assert!(matches!(v("resource_refused", &outcome(502, json!({}), &[], "none")), Verdict::Untestable(_)));
        assert!(matches!(v("resource_refused_401", &outcome(403, json!({}), &[], "none")), Verdict::Fail(_)));
        assert!(matches!(v("resource_refused_401", &outcome(200, json!({}), &[], "none")), Verdict::Untestable(_)));
        let prm = |doc: Value| {
            on_token(
                "prm_resource_identical",
                &p,
                Some(&outcome(200, doc, &[], "none")),
                None,
                None,
                Some("http://r/mcp"),
            )
        };
        assert!(matches!(prm(json!({"resource": "http://r/mcp"})), Verdict::Pass(_)));
        for near in ["http://r/mcp/", "HTTP://r/mcp", "http://R/mcp", "http://r/"] {
            assert!(matches!(prm(json!({"resource": near})), Verdict::Fail(_)), "{near}");
        }
        let servers = |doc: Value| v("prm_authorization_servers", &outcome(200, doc, &[], "none"));
        assert!(matches!(servers(json!({"authorization_servers": ["http://as"]})), Verdict::Pass(_)));
        assert!(matches!(servers(json!({"authorization_servers": []})), Verdict::Fail(_)));
        assert!(matches!(servers(json!({})), Verdict::Fail(_)));
        assert!(matches!(
            v("prm_authorization_servers", &outcome(404, json!({}), &[], "none")),
            Verdict::Untestable(_)
        ));
    }

    /// RFC 8693 §4.1 asks only for a JSON object; sub/client_id is the
    /// agent profile's `act_shape`.
    #[test]
    fn act_object_needs_an_object_not_a_sub() {
        let none = BTreeMap::new();
        assert!(matches!(check("act_object", &json!({"act": {"iss": "x", "email": "a@b"}}), &none), Verdict::Pass(_)));
        assert!(matches!(check("act_shape", &json!({"act": {"iss": "x", "email": "a@b"}}), &none), Verdict::Fail(_)));
        assert!(matches!(check("act_object", &json!({"act": "agent"}), &none), Verdict::Fail(_)));
        assert!(matches!(check("act_object", &json!({"act": {"sub": "a", "act": 3}}), &none), Verdict::Fail(_)));
        assert!(matches!(check("act_object", &json!({"sub": "u"}), &none), Verdict::NotApplicable(_)));
    }

    /// RFC 8693 §2.2.1 and RFC 6749 §7.1: any token type, case-insensitive; only a missing one fails.
    #[test]
    fn token_type_accepts_any_type_case_insensitively_and_fails_only_when_missing() {
        let p = profile();
        for t in ["Bearer", "bearer", "N_A", "n_a", "DPoP", "PoP"] {
            let o = outcome(200, json!({"access_token": "x", "token_type": t}), &[], "none");
            assert!(matches!(on("token_type_valid", &o, &p, None), Verdict::Pass(_)), "{t}");
        }
        let o = outcome(200, json!({"access_token": "x"}), &[], "none");
        assert!(matches!(on("token_type_valid", &o, &p, None), Verdict::Fail(_)));
    }

    /// RFC 6749 §5.2: 400; 401 MAY for invalid_client, MUST with
    /// WWW-Authenticate when the client used the Authorization header.
    #[test]
    fn error_shape_follows_rfc_6749_section_5_2() {
        let p = profile();
        let json = [("content-type", "application/json")];
        let basic = "client_secret_basic as agent";
        let ok400 = outcome(400, json!({"error": "invalid_request"}), &json, basic);
        assert!(matches!(on("error_shape", &ok400, &p, None), Verdict::Pass(_)));
        let post401 = outcome(401, json!({"error": "invalid_client"}), &json, "client_secret_post as agent");
        assert!(matches!(on("error_shape", &post401, &p, None), Verdict::Pass(_)));
        // The Authorization-header challenge is another rule's (basic_challenge).
        let basic401_no_header = outcome(401, json!({"error": "invalid_client"}), &json, basic);
        assert!(matches!(on("error_shape", &basic401_no_header, &p, None), Verdict::Pass(_)));
        let basic401 =
            outcome(401, json!({"error": "invalid_client"}), &[json[0], ("www-authenticate", "Basic")], basic);
        assert!(matches!(on("error_shape", &basic401, &p, None), Verdict::Pass(_)));
        let basic400_client = outcome(400, json!({"error": "invalid_client"}), &json, basic);
        assert!(matches!(on("error_shape", &basic400_client, &p, None), Verdict::Pass(_)));
        let other401 = outcome(401, json!({"error": "unauthorized_client"}), &json, "none");
        assert!(matches!(on("error_shape", &other401, &p, None), Verdict::Fail(_)));
        let forbidden = outcome(403, json!({"error": "access_denied"}), &json, "none");
        assert!(matches!(on("error_shape", &forbidden, &p, None), Verdict::Fail(_)));
    }

    /// RFC 6749 §5.2: after HTTP Basic, 401 with a Basic challenge; near
    /// misses (no header, another scheme, 400) fail; other client
    /// authentication methods owe no challenge.
    #[test]
    fn basic_challenge_follows_rfc_6749_section_5_2() {
        let p = profile();
        let json = ("content-type", "application/json");
        let basic = "client_secret_basic as agent";
        let err = json!({"error": "invalid_client"});
        let v = |o: &Outcome| on("basic_challenge", o, &p, None);
        assert!(matches!(
            v(&outcome(401, err.clone(), &[json, ("www-authenticate", "Basic realm=\"x\"")], basic)),
            Verdict::Pass(_)
        ));
        assert!(matches!(
            v(&outcome(401, err.clone(), &[json, ("www-authenticate", "Bearer, basic realm=x")], basic)),
            Verdict::Pass(_)
        ));
        assert!(matches!(v(&outcome(401, err.clone(), &[json], basic)), Verdict::Fail(_)));
        assert!(matches!(
            v(&outcome(401, err.clone(), &[json, ("www-authenticate", "Bearer")], basic)),
            Verdict::Fail(_)
        ));
        assert!(matches!(v(&outcome(400, err.clone(), &[json], basic)), Verdict::Fail(_)));
        assert!(matches!(
            v(&outcome(401, err.clone(), &[json], "client_secret_post as agent")),
            Verdict::NotApplicable(_)
        ));
        assert!(matches!(v(&outcome(200, json!({"access_token": "x"}), &[json], basic)), Verdict::Untestable(_)));
        assert!(matches!(
            v(&outcome(400, json!({"error": "invalid_request"}), &[json], basic)),
            Verdict::Untestable(_)
        ));
    }

    /// RFC 7009 §2: access-token revocation is a SHOULD, and §2.2.1 makes
    /// unsupported_token_type conformant; a refused client is §2.1's business.
    #[test]
    fn revocation_ok_tells_access_token_revocation_and_client_refusal_apart() {
        let mut p = profile();
        let json = [("content-type", "application/json")];
        let unsupported = outcome(400, json!({"error": "unsupported_token_type"}), &json, "none");
        assert!(matches!(on("revocation_ok", &outcome(200, json!({}), &[], "none"), &p, Some(true)), Verdict::Pass(_)));
        // Declared: the answer is not-applicable, never a failure.
        p.features.access_token_revocation = false;
        assert!(matches!(on("revocation_ok", &unsupported, &p, Some(true)), Verdict::NotApplicable(_)));
        // Not declared: the profile is wrong, not the target.
        p.features.access_token_revocation = true;
        assert!(matches!(on("revocation_ok", &unsupported, &p, Some(true)), Verdict::Untestable(_)));
        // A refresh token must be revocable (RFC 7009 §2: MUST).
        assert!(matches!(on("revocation_ok", &unsupported, &p, Some(false)), Verdict::Fail(_)));
        let refused = outcome(401, json!({"error": "invalid_client"}), &json, "none");
        assert!(matches!(on("revocation_ok", &refused, &p, Some(true)), Verdict::Untestable(_)));
        assert!(matches!(on("revocation_client_accepted", &refused, &p, Some(true)), Verdict::Fail(_)));
        assert!(matches!(on("revocation_client_accepted", &unsupported, &p, Some(true)), Verdict::Pass(_)));
        let bad = outcome(400, json!({"error": "invalid_request"}), &json, "none");
        assert!(matches!(on("revocation_ok", &bad, &p, None), Verdict::Fail(_)));
    }

    /// Refusing an unknown resource is policy (RFC 8707 §2's SHOULD is the
    /// audience restriction); an error code is only checked on a refusal.
    #[test]
    fn policy_refusals_are_outside_the_rules_that_do_not_require_them() {
        let p = profile();
        let json = [("content-type", "application/json")];
        let res = "https://no-such-service.fourleg.invalid/api";
        let a = args(&[("audience", toml::Value::String(res.into()))]);
        let refused = outcome(400, json!({"error": "invalid_target"}), &json, "none");
        assert!(matches!(on_args("refused_or_aud_has", &refused, &p, None, &a, None), Verdict::NotApplicable(_)));
        let issued = outcome(200, json!({"access_token": "x"}), &json, "none");
        let bound = json!({"aud": [res]});
        let unbound = json!({"aud": ["agent"]});
        assert!(matches!(on_args("refused_or_aud_has", &issued, &p, None, &a, Some(&bound)), Verdict::Pass(_)));
        assert!(matches!(on_args("refused_or_aud_has", &issued, &p, None, &a, Some(&unbound)), Verdict::Fail(_)));
        let e = args(&[("error", toml::Value::String("invalid_request".into()))]);
        assert!(matches!(on_args("error_if_refused", &issued, &p, None, &e, None), Verdict::NotApplicable(_)));
        assert!(matches!(on_args("error_if_refused", &refused, &p, None, &e, None), Verdict::Fail(_)));
    }

    /// The subject's act history survives a re-exchange without actor token:
    /// dropped, truncated to the latest actor or reordered, it fails.
    #[test]
    fn refused_or_act_keeps_needs_the_whole_history_innermost() {
        let p = profile();
        let json = [("content-type", "application/json")];
        let issued = outcome(200, json!({"access_token": "x"}), &json, "none");
        let refused = outcome(400, json!({"error": "invalid_request"}), &json, "none");
        let two = actors(&["mcp-server", "agent"]);
        let verdict = |claims: &Value| on_args("refused_or_act_keeps", &issued, &p, None, &two, Some(claims));
        assert!(matches!(on_args("refused_or_act_keeps", &refused, &p, None, &two, None), Verdict::Pass(_)));
        let kept = json!({"act": {"sub": "sa-mcp", "act": {"client_id": "agent"}}});
        assert!(matches!(verdict(&kept), Verdict::Pass(_)));
        let added_outside = json!({"act": {"sub": "sa-agent2", "act": {"sub": "sa-mcp", "act": {"sub": "sa-agent"}}}});
        assert!(matches!(verdict(&added_outside), Verdict::Pass(_)));
        assert!(matches!(verdict(&json!({"sub": "u-alice"})), Verdict::Fail(_)));
        let latest_only = json!({"act": {"sub": "sa-mcp"}});
        assert!(matches!(verdict(&latest_only), Verdict::Fail(_)));
        let reordered = json!({"act": {"sub": "sa-agent", "act": {"sub": "sa-mcp"}}});
        assert!(matches!(verdict(&reordered), Verdict::Fail(_)));
        let wrapped_inside = json!({"act": {"sub": "sa-mcp", "act": {"sub": "sa-agent", "act": {"sub": "x"}}}});
        assert!(matches!(verdict(&wrapped_inside), Verdict::Fail(_)));
    }

    /// RFC 8693 §2.2.1: no refresh token from an exchange, asked for or not.
    #[test]
    fn refused_or_no_refresh_token_catches_both_ways_of_handing_one_out() {
        let p = profile();
        let json = [("content-type", "application/json")];
        let none = BTreeMap::new();
        let verdict = |o: &Outcome| on_args("refused_or_no_refresh_token", o, &p, None, &none, None);
        let refused = outcome(400, json!({"error": "invalid_request"}), &json, "none");
        assert!(matches!(verdict(&refused), Verdict::Pass(_)));
        let access = outcome(
            200,
            json!({"access_token": "x", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}),
            &json,
            "none",
        );
        assert!(matches!(verdict(&access), Verdict::Pass(_)));
        let typed = outcome(
            200,
            json!({"access_token": "x", "issued_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}),
            &json,
            "none",
        );
        assert!(matches!(verdict(&typed), Verdict::Fail(_)));
        let extra = outcome(
            200,
            json!({"access_token": "x", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "refresh_token": "r"}),
            &json,
            "none",
        );
        assert!(matches!(verdict(&extra), Verdict::Fail(_)));
    }

    /// jwks_uri is REQUIRED by OpenID Connect Discovery §3 only; RFC 8414 §2 makes it OPTIONAL.
    #[test]
    fn jwks_uri_is_required_only_in_an_openid_discovery_document() {
        let mut p = profile();
        let without = outcome(200, json!({"issuer": "i", "token_endpoint": "t"}), &[], "none");
        p.endpoints.discovery = fourleg_target::profile::Discovery::Openid;
        assert!(matches!(on("metadata_jwks_uri", &without, &p, None), Verdict::Fail(_)));
        p.endpoints.discovery = fourleg_target::profile::Discovery::Oauth;
        assert!(matches!(on("metadata_jwks_uri", &without, &p, None), Verdict::NotApplicable(_)));
    }

    /// `suites/README.md` documents every named check, and nothing else:
    /// its check table is the one [`readme_table`] generates from [`TABLE`].
    /// `FOURLEG_REGENERATE=1` rewrites it.
    #[test]
    fn the_suites_readme_check_table_is_generated_from_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let start = readme.find("| check | args | passes when |").expect("suites/README.md has a check table");
        let end = readme[start..].find("\n\n").map_or(readme.len(), |e| start + e + 1);
        let want = readme_table();
        if readme[start..end] == want {
            return;
        }
        if std::env::var_os("FOURLEG_REGENERATE").is_some() {
            std::fs::write(&path, format!("{}{want}{}", &readme[..start], &readme[end..])).unwrap();
        } else {
            panic!(
                "the check table of suites/README.md is not the one checks::TABLE generates; regenerate it: FOURLEG_REGENERATE=1 cargo test -p fourleg-scenario --lib readme\n\n{want}"
            );
        }
    }

    /// What the README says a check takes is what load-time validation accepts.
    #[test]
    fn each_checks_documented_args_are_the_args_it_accepts() {
        for c in &TABLE {
            for (a, _) in c.args {
                assert!(c.args_doc.contains(&format!("`{a}")), "{}: `{a}` is not documented", c.name);
            }
            assert_eq!(c.args.is_empty(), c.args_doc.is_empty(), "{}: documented args differ", c.name);
        }
    }

    #[test]
    fn bounds_and_windows() {
        let p = profile();
        let ids = ids();
        let a = args(&[("bound_ms", toml::Value::Integer(1000))]);
        let w = |held, elapsed_ms| WaitOutcome { held, elapsed_ms, timeout_ms: 5000, pending: vec!["hop1".into()] };
        let go = |w: &WaitOutcome| {
            run(
                "within_bound",
                &Input {
                    outcome: None,
                    claims: None,
                    than: None,
                    identities: &ids,
                    contract: Contract::new(&p),
                    args: &a,
                    wait: Some(w),
                    accept: None,
                    revoked_access_token: None,
                    issuer: None,
                    resource: None,
                    proof_key: None,
                    downstream: None,
                    called_api: None,
                    registration: None,
                },
            )
        };
        assert!(matches!(go(&w(true, 10)).0, Verdict::Pass(_)));
        assert!((go(&w(true, 10)).1.unwrap().value - 10.0).abs() < f64::EPSILON);
        assert!(matches!(go(&w(true, 2000)).0, Verdict::Fail(_)));
        assert!(matches!(go(&w(false, 5000)).0, Verdict::Fail(_)));
    }

    /// RFC 9449 §5, §6.1 and the agent profile's DPoP rules, on every way a
    /// server can bind, drop, keep or move a binding.
    #[test]
    fn dpop_checks_tell_bound_dropped_kept_and_moved_apart() {
        let p = profile();
        let ids = ids();
        let none = BTreeMap::new();
        let than_args: BTreeMap<String, toml::Value> = BTreeMap::from([("than".into(), toml::Value::from("user"))]);
        let proof = "PROOFKEY";
        let subject = json!({"sub": "alice", "cnf": {"jkt": "SUBJECTKEY"}});
        let run_on = |name: &str,
                      status: u16,
                      token_type: &str,
                      jkt: Option<&str>,
                      proof_key: Option<&str>,
                      than: Option<&Value>| {
            let body = if status == 200 {
                json!({"access_token": "a.b.c", "token_type": token_type})
            } else {
                json!({"error": "invalid_dpop_proof"})
            };
            let o = outcome(status, body, &[], "none");
            let claims = jkt.map_or_else(|| json!({"sub": "alice"}), |j| json!({"sub": "alice", "cnf": {"jkt": j}}));
            let claims = (status == 200).then_some(claims);
            run(
                name,
                &Input {
                    outcome: Some(&o),
                    claims: claims.as_ref(),
                    than,
                    identities: &ids,
                    contract: Contract::new(&p),
                    args: if than.is_some() { &than_args } else { &none },
                    wait: None,
                    accept: None,
                    revoked_access_token: None,
                    issuer: None,
                    resource: None,
                    proof_key,
                    downstream: None,
                    called_api: None,
                    registration: None,
                },
            )
            .0
        };
        let pk = Some(proof);
        // token_type: bound tokens are announced as DPoP, case-insensitively.
        assert!(matches!(run_on("dpop_token_type", 200, "DPoP", pk, pk, None), Verdict::Pass(_)));
        assert!(matches!(run_on("dpop_token_type", 200, "dpop", pk, pk, None), Verdict::Pass(_)));
        assert!(matches!(run_on("dpop_token_type", 200, "Bearer", pk, pk, None), Verdict::Fail(_)));
        assert!(matches!(run_on("dpop_token_type", 200, "Bearer", None, pk, None), Verdict::NotApplicable(_)));
        assert!(matches!(run_on("dpop_token_type", 400, "", None, pk, None), Verdict::Untestable(_)));
        // jkt: the proof's key, not dropped, not another.
        assert!(matches!(run_on("dpop_jkt", 200, "DPoP", pk, pk, None), Verdict::Pass(_)));
        assert!(matches!(run_on("dpop_jkt", 200, "DPoP", None, pk, None), Verdict::Fail(m) if m.contains("dropped")));
        assert!(matches!(run_on("dpop_jkt", 200, "DPoP", Some("OTHER"), pk, None), Verdict::Fail(_)));
        assert!(matches!(
            run_on("dpop_jkt", 200, "DPoP", Some("SUBJECTKEY"), pk, Some(&subject)),
            Verdict::Fail(m) if m.contains("kept")
        ));
        assert!(
            matches!(run_on("dpop_jkt", 200, "DPoP", pk, pk, Some(&subject)), Verdict::Pass(m) if m.contains("rebound"))
        );
        assert!(matches!(run_on("dpop_jkt", 200, "Bearer", None, pk, None), Verdict::NotApplicable(_)));
        assert!(matches!(run_on("dpop_jkt", 200, "DPoP", pk, None, None), Verdict::Untestable(_)));
        // bound (profile): a bearer token, or a refusal, for a valid proof fails.
        assert!(matches!(run_on("dpop_bound", 200, "DPoP", pk, pk, None), Verdict::Pass(_)));
        assert!(
            matches!(run_on("dpop_bound", 200, "Bearer", None, pk, None), Verdict::Fail(m) if m.contains("stripped"))
        );
        assert!(matches!(run_on("dpop_bound", 400, "", None, pk, None), Verdict::Fail(m) if m.contains("refused")));
        assert!(matches!(run_on("dpop_bound", 200, "DPoP", pk, None, None), Verdict::Untestable(_)));
        // not laundered: refused, kept and rebound pass; a bearer token fails.
        let nl = |status, tt, jkt, key| run_on("dpop_not_laundered", status, tt, jkt, key, Some(&subject));
        assert!(matches!(nl(400, "", None, None), Verdict::Pass(m) if m.contains("refused")));
        assert!(matches!(nl(200, "DPoP", Some("SUBJECTKEY"), None), Verdict::Pass(m) if m.contains("kept")));
        assert!(matches!(nl(200, "DPoP", pk, pk), Verdict::Pass(m) if m.contains("rebound")));
        assert!(matches!(nl(200, "Bearer", None, None), Verdict::Fail(m) if m.contains("stripped")));
        assert!(matches!(
            run_on("dpop_not_laundered", 200, "Bearer", None, None, Some(&json!({"sub": "alice"}))),
            Verdict::Untestable(_)
        ));
    }

    /// What a tool call gave, for the tool-call checks.
    struct ToolCall<'a> {
        outcome: &'a Outcome,
        sent: &'a Value,
        downstream: Option<&'a Value>,
        called_api: Option<&'a [Value]>,
    }

    /// Runs a tool-call check on `profile` with `args` (identities from [`ids`]).
    fn judge_tool_call(name: &str, profile: &Profile, args: &[(&str, &str)], call: &ToolCall<'_>) -> Verdict {
        let ids = ids();
        let args: BTreeMap<String, toml::Value> =
            args.iter().map(|(k, v)| ((*k).to_owned(), toml::Value::from(*v))).collect();
        run(
            name,
            &Input {
                outcome: Some(call.outcome),
                claims: None,
                than: Some(call.sent),
                identities: &ids,
                contract: Contract::new(profile),
                args: &args,
                wait: None,
                accept: None,
                revoked_access_token: None,
                issuer: None,
                resource: None,
                proof_key: None,
                downstream: call.downstream,
                called_api: call.called_api,
                registration: None,
            },
        )
        .0
    }

    /// MCP authorization: the API's token is the server's own, never the
    /// client's; without a view of it, or a tool call, nothing is judged.
    #[test]
    fn no_passthrough_tells_a_forwarded_token_from_an_exchanged_one() {
        let p = profile();
        let ok = outcome(200, json!({"jsonrpc": "2.0", "id": 2, "result": {"isError": false}}), &[], "Bearer");
        let judge = |o: &Outcome, sent: &Value, got: Option<&Value>| {
            let call = ToolCall { outcome: o, sent, downstream: got, called_api: None };
            judge_tool_call("no_passthrough", &p, &[("than", "for_mcp")], &call)
        };
        let sent = json!({"sub": "alice", "aud": "mcp-server", "jti": "j1", "iat": 1, "exp": 9});
        let own = json!({"sub": "alice", "aud": "downstream-api", "jti": "j2", "iat": 2, "exp": 9});
        assert!(matches!(judge(&ok, &sent, Some(&own)), Verdict::Pass(_)));
        assert!(matches!(judge(&ok, &sent, Some(&sent)), Verdict::Fail(m) if m.contains("passed through")));
        // Without jti, the claims that make a token that token.
        let no_jti = json!({"sub": "alice", "aud": "mcp-server", "iat": 1, "exp": 9});
        assert!(matches!(judge(&ok, &no_jti, Some(&no_jti)), Verdict::Fail(_)));
        assert!(matches!(judge(&ok, &sent, None), Verdict::Untestable(_)));
        let failed = outcome(401, json!({"error": "invalid_token"}), &[], "Bearer");
        assert!(matches!(judge(&failed, &sent, Some(&sent)), Verdict::Untestable(_)));
    }

    /// Agent profile: a tool's scope is the server's own check, before it
    /// acts; MCP 2025-11-25 asks for 403 insufficient_scope naming it.
    #[test]
    fn a_tool_scope_is_refused_before_the_api_and_challenged_403() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/targets/demo-mcp.toml");
        let p = Profile::load(&path).unwrap();
        let judge = |name: &str, o: &Outcome, sent: &Value, called: Option<&[Value]>| {
            let call = ToolCall { outcome: o, sent, downstream: None, called_api: called };
            judge_tool_call(name, &p, &[("than", "for_mcp")], &call)
        };
        let reader = json!({"scope": "records:read"});
        let good =
            r#"Bearer error="insufficient_scope", scope="records:read records:write", resource_metadata="http://r/m""#;
        let refused = outcome(403, json!({"error": "insufficient_scope"}), &[("www-authenticate", good)], "Bearer");
        let ran = outcome(200, json!({"jsonrpc": "2.0", "id": 2, "result": {"isError": false}}), &[], "Bearer");
        let tool_error = outcome(200, json!({"jsonrpc": "2.0", "id": 2, "result": {"isError": true}}), &[], "Bearer");
        let none: &[Value] = &[];
        let api_got = [json!({"aud": "records-api", "scope": "records:read"})];
        let v = |o: &Outcome, called: Option<&[Value]>| judge("tool_scope_refused", o, &reader, called);
        assert!(matches!(v(&refused, Some(none)), Verdict::Pass(_)));
        assert!(matches!(v(&tool_error, Some(none)), Verdict::Pass(_)));
        assert!(matches!(v(&refused, None), Verdict::Pass(m) if m.contains("no view")));
        assert!(matches!(v(&ran, Some(none)), Verdict::Fail(_)));
        // The near miss: refused, but only by the API the server called.
        assert!(matches!(v(&tool_error, Some(&api_got)), Verdict::Fail(m) if m.contains("only after calling the API")));
        // A token that carries the scope proves nothing.
        let writer = json!({"scope": "records:read records:write"});
        assert!(matches!(judge("tool_scope_refused", &refused, &writer, Some(none)), Verdict::Untestable(_)));
        assert!(matches!(judge("tool_ran", &ran, &reader, None), Verdict::Pass(_)));
        assert!(matches!(judge("tool_ran", &tool_error, &reader, None), Verdict::Fail(_)));

        let c = |o: &Outcome| judge("insufficient_scope_challenge", o, &reader, None);
        assert!(matches!(c(&refused), Verdict::Pass(_)));
        assert!(matches!(c(&ran), Verdict::Untestable(_)));
        assert!(matches!(c(&tool_error), Verdict::Fail(_)));
        for near in [
            r#"Bearer error="insufficient_scope", scope="records:read", resource_metadata="http://r/m""#,
            r#"Bearer error="insufficient_scope", scope="records:writer", resource_metadata="http://r/m""#,
            r#"Bearer error="invalid_token", scope="records:write", resource_metadata="http://r/m""#,
            r#"Bearer error="insufficient_scope", scope="records:write""#,
        ] {
            let o = outcome(403, json!({}), &[("www-authenticate", near)], "Bearer");
            assert!(matches!(c(&o), Verdict::Fail(_)), "{near}");
        }
        assert!(matches!(c(&outcome(403, json!({}), &[], "Bearer")), Verdict::Fail(_)));
        assert!(matches!(c(&outcome(401, json!({}), &[("www-authenticate", good)], "Bearer")), Verdict::Fail(_)));
    }

    /// Agent profile: the API's token is for the API, on the user's behalf,
    /// with the MCP server as the current actor.
    #[test]
    fn the_apis_token_is_for_the_api_and_names_the_mcp_server_as_actor() {
        let p = profile();
        let ok = outcome(200, json!({"jsonrpc": "2.0", "id": 2, "result": {"isError": false}}), &[], "Bearer");
        let sent = json!({"sub": "alice", "aud": "mcp-server", "jti": "j1"});
        let judge = |name: &str, o: &Outcome, got: Option<&Value>| {
            let call = ToolCall { outcome: o, sent: &sent, downstream: got, called_api: None };
            judge_tool_call(name, &p, &[("than", "for_mcp"), ("principal", "mcp-server")], &call)
        };
        let delegated =
            json!({"sub": "alice", "aud": "downstream-api", "act": {"sub": "sa-mcp", "client_id": "mcp-server"}});
        assert!(matches!(judge("downstream_audience", &ok, Some(&delegated)), Verdict::Pass(_)));
        assert!(matches!(judge("downstream_act", &ok, Some(&delegated)), Verdict::Pass(_)));
        let wide = json!({"sub": "alice", "aud": ["downstream-api", "mcp-server"]});
        assert!(matches!(judge("downstream_audience", &ok, Some(&wide)), Verdict::Fail(_)));
        let elsewhere = json!({"sub": "alice", "aud": "agent"});
        assert!(matches!(judge("downstream_audience", &ok, Some(&elsewhere)), Verdict::Fail(_)));
        let impersonated = json!({"sub": "alice", "aud": "downstream-api"});
        assert!(
            matches!(judge("downstream_act", &ok, Some(&impersonated)), Verdict::Fail(m) if m.contains("impersonation"))
        );
        let other_actor = json!({"sub": "alice", "aud": "downstream-api", "act": {"client_id": "agent"}});
        assert!(matches!(judge("downstream_act", &ok, Some(&other_actor)), Verdict::Fail(_)));
        // The server's own token: no passthrough, no user either.
        let own = json!({"sub": "sa-mcp", "aud": "downstream-api", "act": {"client_id": "mcp-server"}});
        assert!(matches!(judge("downstream_act", &ok, Some(&own)), Verdict::Fail(m) if m.contains("called as itself")));
        let failed = outcome(200, json!({"jsonrpc": "2.0", "id": 2, "result": {"isError": true}}), &[], "Bearer");
        for name in ["downstream_audience", "downstream_act"] {
            assert!(matches!(judge(name, &failed, Some(&delegated)), Verdict::Untestable(_)));
            assert!(matches!(judge(name, &ok, None), Verdict::Untestable(_)));
        }
    }

    /// RFC 7591 §3.2: 201 with a client_id; RFC 7592 §2.3: 204 on deletion.
    #[test]
    fn registration_and_deletion_answer_as_rfc_7591_and_7592_say() {
        let p = profile();
        let v = |name: &str, o: &Outcome| on_token(name, &p, Some(o), None, None, None);
        let created = outcome(201, json!({"client_id": "c1", "client_secret": "s"}), &[], "none");
        assert!(matches!(v("registered_201", &created), Verdict::Pass(_)));
        assert!(matches!(
            v("registered_201", &outcome(200, json!({"client_id": "c1"}), &[], "none")),
            Verdict::Fail(_)
        ));
        assert!(matches!(v("registered_201", &outcome(201, json!({"client_id": ""}), &[], "none")), Verdict::Fail(_)));
        assert!(matches!(v("registered_201", &outcome(201, json!({}), &[], "none")), Verdict::Fail(_)));
        let refused = outcome(403, json!({"error": "insufficient_scope"}), &[], "none");
        assert!(matches!(v("registered_201", &refused), Verdict::Untestable(_)));
        assert!(matches!(v("deleted_204", &outcome(204, Value::Null, &[], "Bearer")), Verdict::Pass(_)));
        assert!(matches!(v("deleted_204", &outcome(200, json!({}), &[], "Bearer")), Verdict::Fail(_)));
        assert!(matches!(v("deleted_204", &outcome(401, json!({}), &[], "Bearer")), Verdict::Fail(_)));
    }

    /// A registered client's exchange, judged with what its registration said.
    fn on_registered(name: &str, o: Option<&Outcome>, p: &Profile, r: &Registration) -> Verdict {
        let ids = ids();
        run(
            name,
            &Input {
                outcome: o,
                claims: None,
                than: None,
                identities: &ids,
                contract: Contract::new(p),
                args: &BTreeMap::new(),
                wait: None,
                accept: None,
                revoked_access_token: None,
                issuer: None,
                resource: None,
                proof_key: None,
                downstream: None,
                called_api: None,
                registration: Some(r),
            },
        )
        .0
    }

    #[test]
    fn a_registered_client_uses_the_grants_returned_and_fares_as_declared() {
        use fourleg_target::profile::{ExchangePolicy, RegistrationPolicy};
        let te = fourleg_target::TOKEN_EXCHANGE_GRANT;
        let issued = outcome(200, json!({"access_token": "x", "token_type": "Bearer"}), &[], "basic");
        let refused = outcome(400, json!({"error": "unauthorized_client"}), &[], "basic");
        let broke = outcome(500, json!({}), &[], "basic");
        let cc_only = Registration {
            grant_types: Some(vec!["client_credentials".into()]),
            refused: None,
            asked_by: "registration".into(),
        };
        let none_listed = Registration { grant_types: None, refused: None, asked_by: "registration".into() };
        let with_te = Registration {
            grant_types: Some(vec!["client_credentials".into(), te.into()]),
            refused: None,
            asked_by: "registration".into(),
        };
        let not_registered = Registration {
            grant_types: None,
            refused: Some("400 invalid_client_metadata".into()),
            asked_by: "registration".into(),
        };
        let p = profile();

        // RFC 7591 §3.2.1: a grant used that the registration did not return.
        let grants = |o: &Outcome, r: &Registration| on_registered("registered_grants_returned", Some(o), &p, r);
        assert!(matches!(grants(&issued, &cc_only), Verdict::Fail(_)));
        assert!(
            matches!(grants(&issued, &none_listed), Verdict::Fail(_)),
            "absent grant_types: authorization_code only"
        );
        assert!(matches!(grants(&issued, &with_te), Verdict::Pass(_)));
        assert!(matches!(grants(&refused, &cc_only), Verdict::Pass(_)));
        assert!(matches!(grants(&broke, &cc_only), Verdict::Untestable(_)));
        assert!(matches!(grants(&refused, &not_registered), Verdict::Untestable(_)));

        // The declared policy, both ways; a registration refused is the
        // refusal `refused` allows and `allowed` does not.
        let declaring = |exchange| {
            let mut p = profile();
            p.registration = Some(RegistrationPolicy { exchange, note: None });
            p
        };
        let (allowed, refusing) = (declaring(ExchangePolicy::Allowed), declaring(ExchangePolicy::Refused));
        let policy = |o: Option<&Outcome>, p: &Profile, r: &Registration| {
            on_registered("registered_exchange_per_policy", o, p, r)
        };
        assert!(matches!(policy(Some(&issued), &allowed, &with_te), Verdict::Pass(_)));
        assert!(matches!(policy(Some(&refused), &allowed, &with_te), Verdict::Fail(_)));
        assert!(matches!(policy(None, &allowed, &not_registered), Verdict::Fail(_)));
        assert!(matches!(policy(Some(&issued), &refusing, &with_te), Verdict::Fail(_)));
        assert!(matches!(policy(Some(&refused), &refusing, &with_te), Verdict::Pass(_)));
        assert!(matches!(policy(None, &refusing, &not_registered), Verdict::Pass(_)));
        assert!(matches!(policy(Some(&broke), &refusing, &with_te), Verdict::Untestable(_)));
        // An RFC 7592 update that asked for the grant is judged the same way.
        let update_refused = Registration {
            grant_types: Some(vec!["client_credentials".into()]),
            refused: Some("400 invalid_client_metadata".into()),
            asked_by: "update".into(),
        };
        let Verdict::Pass(said) = policy(None, &refusing, &update_refused) else {
            panic!("refused update, refused policy")
        };
        assert!(said.contains("the update asking"), "{said}");
        assert!(matches!(policy(None, &allowed, &update_refused), Verdict::Fail(_)));
        let mut undeclared = profile();
        undeclared.registration = None;
        let Verdict::Untestable(why) = policy(Some(&issued), &undeclared, &with_te) else {
            panic!("an undeclared policy cannot be judged")
        };
        assert!(why.contains("[registration] exchange"), "{why}");
    }
}
