//! The fixture contract as a target answers it: which scope value stands for
//! a permission, which `audience` or `resource` for a client, which client
//! introspects or revokes a token, how a principal gets a first token.
//!
//! The scenario engine asks these questions and never reads a profile's
//! fields: how a target works is the target's to say (`fixtures/CONTRACT.md`
//! lists the questions; `fixtures/targets/README.md` the fields that answer
//! them). Every answer here is pure, from the profile alone; a question the
//! profile cannot answer is a [`Gap`], which makes what needed it
//! `untestable` with the gap as the reason, never a finding.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::profile::{Caller, Discovery, LoginMethod, LogoutMethod, MayActRecipe, Profile};

/// What a scenario `requires` to judge a protected resource: a `[resource]`
/// section, declared by describing one rather than by a `[features]` flag.
pub const PROTECTED_RESOURCE: &str = "protected-resource";
/// A question of the contract the profile does not answer. Its text is the
/// reason shown with what it made untestable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Gap(pub String);

/// Who a principal is at the target: the names its tokens may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Identity {
    /// The `client_id` of a client principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Every value that identifies it in `sub`/`client_id` (its `sub`s, its
    /// `client_id`, a user's username).
    pub names: BTreeSet<String>,
}

impl Identity {
    /// Whether a claim value (a string, or an object with `sub`/`client_id`)
    /// identifies this principal.
    #[must_use]
    pub fn matches(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.names.contains(s),
            Value::Object(o) => {
                o.get("sub").and_then(Value::as_str).is_some_and(|s| self.names.contains(s))
                    || o.get("client_id").and_then(Value::as_str).is_some_and(|c| self.client_id.as_deref() == Some(c))
            }
            _ => false,
        }
    }

    /// The principal's `sub`: a name other than its `client_id`, else the `client_id`.
    #[must_use]
    pub fn sub(&self) -> Option<&str> {
        self.names.iter().find(|n| Some(*n) != self.client_id.as_ref()).or(self.client_id.as_ref()).map(String::as_str)
    }
}

/// What is known of a token when a client must be picked to ask about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenFacts<'a> {
    /// Its claims, when it is a JWT.
    pub claims: Option<&'a Value>,
    /// The contract client whose request obtained it.
    pub obtained_by: Option<&'a str>,
    /// The contract audiences its exchange asked for.
    pub asked_audience: &'a [String],
}

/// How a principal's first token is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipe {
    /// A user's login through `client`, with scope values added to the
    /// user's base scope and extra request parameters.
    Login { user: String, client: String, scope: Vec<String>, params: BTreeMap<String, String> },
    /// A confidential client's own token (RFC 6749 §4.4), with extra scope values.
    ClientCredentials { client: String, scope: Vec<String> },
    /// A token for `user` from the issuer the target must not trust
    /// (`[foreign_issuer]`).
    Foreign { user: String },
}

impl Recipe {
    /// The user, for a login.
    #[must_use]
    pub fn user(&self) -> Option<&str> {
        match self {
            Recipe::Login { user, .. } | Recipe::Foreign { user } => Some(user),
            Recipe::ClientCredentials { .. } => None,
        }
    }
}

/// How a user's session is ended, and with which token of the login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogoutRecipe {
    pub method: LogoutMethod,
    /// The field of the login's token response it sends.
    pub token_field: &'static str,
}

/// The contract's questions, answered from a profile.
#[derive(Debug, Clone, Copy)]
pub struct Contract<'a> {
    profile: &'a Profile,
}

impl<'a> Contract<'a> {
    /// The answers of `profile`.
    #[must_use]
    pub fn new(profile: &'a Profile) -> Self {
        Self { profile }
    }

    /// The scope value that stands for an abstract permission (`records:read`).
    pub fn scope_for(self, permission: &str) -> Result<&'a str, Gap> {
        self.profile
            .permissions
            .get(permission)
            .map(String::as_str)
            .ok_or_else(|| Gap(format!("the profile maps no scope for permission `{permission}` ([permissions])")))
    }

    /// The abstract permissions a set of scope values grants.
    #[must_use]
    pub fn permissions_in(self, scope: &BTreeSet<String>) -> BTreeSet<String> {
        self.profile.permissions.iter().filter(|(_, v)| scope.contains(*v)).map(|(k, _)| k.clone()).collect()
    }

    /// Every scope value that stands for a permission.
    #[must_use]
    pub fn permission_scopes(self) -> BTreeSet<String> {
        self.profile.permissions.values().cloned().collect()
    }

    /// The `audience` value that names a contract party (`mcp-server`).
    pub fn audience_for(self, name: &str) -> Result<&'a str, Gap> {
        self.profile
            .audiences
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| Gap(format!("the profile maps no audience for `{name}` ([audiences])")))
    }

    /// The value that stands for a contract party in a token's `aud`: its
    /// `audience` value, else the name itself.
    #[must_use]
    pub fn aud_value(self, name: &str) -> String {
        self.profile.audiences.get(name).cloned().unwrap_or_else(|| name.to_owned())
    }

    /// The RFC 8707 resource URI of a contract client.
    pub fn resource_for(self, client: &str) -> Result<&'a str, Gap> {
        self.profile.clients.get(client).and_then(|c| c.resource.as_deref()).ok_or_else(|| {
            Gap(format!("the profile gives no resource URI for `{client}` ([clients.{client}] resource)"))
        })
    }

    /// The `(parameter, value)` pairs an exchange sends to ask for a token
    /// for `name`: `audience`, `resource` or both, as the profile's
    /// `targeting` says (RFC 8693 §2.1, RFC 8707 §2).
    pub fn target_params(self, name: &str) -> Result<Vec<(&'static str, String)>, Gap> {
        let mut out = Vec::new();
        if self.profile.targeting.audience() {
            out.push(("audience", self.audience_for(name)?.to_owned()));
        }
        if self.profile.targeting.resource() {
            out.push(("resource", self.resource_for(name)?.to_owned()));
        }
        Ok(out)
    }

    /// The client that introspects a token (RFC 7662 §2.1), as `[introspection] as` says.
    pub fn introspector_for(self, token: TokenFacts<'_>) -> Result<String, Gap> {
        self.caller(&self.profile.introspection.r#as, token, "introspect")
    }

    /// The client that revokes a token (RFC 7009 §2.1), as `[revocation] as` says.
    pub fn revoker_for(self, token: TokenFacts<'_>) -> Result<String, Gap> {
        self.caller(&self.profile.revocation.r#as, token, "revoke")
    }

    fn confidential(self, name: &str) -> bool {
        self.profile.clients.get(name).is_some_and(|c| !c.public)
    }

    fn caller(self, caller: &Caller, token: TokenFacts<'_>, what: &str) -> Result<String, Gap> {
        match caller {
            Caller::Client(c) => Ok(c.clone()),
            Caller::IssuedTo => {
                let azp = token.claims.and_then(|c| c["azp"].as_str().or_else(|| c["client_id"].as_str()));
                if let Some(name) = azp.and_then(|a| self.client_name(a)) {
                    return Ok(name.to_owned());
                }
                token
                    .obtained_by
                    .map(str::to_owned)
                    .ok_or_else(|| Gap(format!("cannot tell which client the token was issued to, to {what} it")))
            }
            Caller::Audience => {
                let aud = token.claims.map(aud_set).unwrap_or_default();
                let by_id = self.profile.clients.iter().find(|(_, c)| !c.public && aud.contains(&c.client_id));
                if let Some((name, _)) = by_id {
                    return Ok(name.clone());
                }
                // A token that names no audience (opaque, or a JWT without
                // `aud`): the audience its exchange asked for.
                if aud.is_empty() {
                    if let Some(a) = token.asked_audience.iter().find(|a| self.confidential(a)) {
                        return Ok(a.clone());
                    }
                }
                match token.obtained_by {
                    Some(c) if !self.profile.clients.get(c).is_some_and(|x| x.public) => Ok(c.to_owned()),
                    _ => self
                        .profile
                        .clients
                        .iter()
                        .find(|(_, c)| !c.public)
                        .map(|(n, _)| n.clone())
                        .ok_or_else(|| Gap(format!("no confidential client to {what} with"))),
                }
            }
        }
    }

    /// How to obtain a login token whose `aud` also names `principal`.
    pub fn audience_also_recipe(self, principal: &str) -> Result<&'a MayActRecipe, Gap> {
        self.profile.audience_also.get(principal).ok_or_else(|| {
            Gap(format!(
                "the profile has no way to obtain a user token whose aud also names `{principal}` ([audience_also.{principal}])"
            ))
        })
    }

    /// How to obtain a token whose `may_act` names `principal`.
    pub fn may_act_recipe(self, principal: &str) -> Result<&'a MayActRecipe, Gap> {
        self.profile.may_act.get(principal).ok_or_else(|| {
            Gap(format!(
                "the profile has no way to obtain a token whose may_act names `{principal}` ([may_act.{principal}])"
            ))
        })
    }

    /// Seconds past `exp` the target still accepts a token (RFC 7519 §4.1.4 leeway).
    #[must_use]
    pub fn expiry_leeway_s(self) -> u64 {
        self.profile.short_lived.as_ref().map_or(0, |s| s.leeway_s)
    }

    /// The target's delegation depth limit in actors, and whether the
    /// profile declares it (else the agent profile's default).
    #[must_use]
    pub fn max_delegation_depth(self) -> (usize, bool) {
        match self.profile.delegation.max_depth {
            Some(n) => (n, true),
            None => (crate::profile::DEFAULT_MAX_DEPTH, false),
        }
    }

    /// The client that issues a token `depth` actors deep in a relay chain
    /// (contract §4): `agent` for the first actor, `relay-<depth-1>` after.
    ///
    /// # Errors
    /// The profile declares no such client.
    pub fn relay_client(self, depth: usize) -> Result<String, Gap> {
        let name = if depth <= 1 { "agent".to_owned() } else { format!("relay-{}", depth - 1) };
        if self.profile.clients.contains_key(&name) {
            Ok(name)
        } else {
            let declared = self.profile.clients.keys().filter(|c| c.starts_with("relay-")).count();
            Err(Gap(format!(
                "a chain {depth} actors deep needs the contract's relay client `{name}` (§4), and the profile declares {declared} relay client(s)"
            )))
        }
    }

    /// The audience the relay hop issuing a token `depth` actors deep asks
    /// for: the next relay, or `downstream-api` past the declared relays.
    #[must_use]
    pub fn relay_audience(self, depth: usize) -> String {
        let next = format!("relay-{depth}");
        if self.profile.clients.contains_key(&next) {
            next
        } else {
            "downstream-api".to_owned()
        }
    }

    /// Whether a feature (named as in [`crate::profile::Features::NAMES`]) is declared;
    /// `None` for an unknown name.
    #[must_use]
    pub fn feature(self, name: &str) -> Option<bool> {
        if name == PROTECTED_RESOURCE {
            return Some(self.profile.resource.is_some());
        }
        self.profile.features.has(name)
    }

    /// Why a feature is off, as the profile notes it.
    #[must_use]
    pub fn feature_note(self, name: &str) -> Option<&'a str> {
        if name == PROTECTED_RESOURCE {
            return Some("the profile describes no protected resource ([resource])");
        }
        self.profile.features.note(name)
    }

    /// Whether the profile judges the scenarios of `area` (`areas`; every
    /// area when it names none).
    #[must_use]
    pub fn judges_area(self, area: &str) -> bool {
        self.profile.areas.is_empty() || self.profile.areas.iter().any(|a| a == area)
    }

    /// The areas the profile judges (`areas`), none meaning all.
    #[must_use]
    pub fn areas(self) -> &'a [String] {
        &self.profile.areas
    }

    /// The protected resource of `[resource]`, if any.
    #[must_use]
    pub fn resource(self) -> Option<&'a crate::profile::ProtectedResource> {
        self.profile.resource.as_ref()
    }

    /// The policy of `[registration]` for registered clients, if declared.
    #[must_use]
    pub fn registration_policy(self) -> Option<&'a crate::profile::RegistrationPolicy> {
        self.profile.registration.as_ref()
    }

    /// The first feature of `names` the target does not declare, with the
    /// reason to show.
    #[must_use]
    pub fn missing_feature(self, names: &[String]) -> Option<(&str, String)> {
        let missing = names.iter().find(|f| self.feature(f) == Some(false))?;
        let why = self
            .feature_note(missing)
            .map_or_else(|| format!("the target declares no `{missing}` feature"), str::to_owned);
        Some((missing, why))
    }

    /// Whether the metadata comes from OpenID Connect Discovery (where
    /// `jwks_uri` is REQUIRED), not RFC 8414.
    #[must_use]
    pub fn openid_discovery(self) -> bool {
        self.profile.endpoints.discovery == Discovery::Openid
    }

    /// Whether `principal` is a user of the contract.
    #[must_use]
    pub fn is_user(self, principal: &str) -> bool {
        self.profile.users.contains_key(principal)
    }

    /// The contract name of a `client_id` seen at the target.
    #[must_use]
    pub fn client_name(self, client_id: &str) -> Option<&'a str> {
        self.profile.clients.iter().find(|(_, c)| c.client_id == client_id).map(|(n, _)| n.as_str())
    }

    /// How a principal gets a first token: a user logs in (through the
    /// short-lived recipe when asked), a client uses client credentials.
    /// `scope` are target scope values added to the request.
    pub fn token_recipe(self, principal: &str, scope: Vec<String>, short_lived: bool) -> Result<Recipe, Gap> {
        if let Some(u) = self.profile.users.get(principal) {
            let mut recipe =
                Recipe::Login { user: principal.to_owned(), client: u.client.clone(), scope, params: BTreeMap::new() };
            if short_lived {
                let sl = self.profile.short_lived.as_ref().ok_or_else(|| {
                    Gap("the profile has no way to obtain a short-lived user token ([short_lived])".into())
                })?;
                if let Recipe::Login { client, scope, params, .. } = &mut recipe {
                    if let Some(c) = &sl.client {
                        c.clone_into(client);
                    }
                    scope.extend(sl.scope.iter().cloned());
                    params.extend(sl.params.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
            return Ok(recipe);
        }
        if !self.profile.clients.contains_key(principal) {
            return Err(Gap(format!("`{principal}` is neither a user nor a client of the profile")));
        }
        if short_lived {
            return Err(Gap(format!("short-lived tokens are users' logins; `{principal}` is a client")));
        }
        if !self.profile.features.client_credentials {
            return Err(Gap(format!(
                "a token of `{principal}` is needed, and the target declares no repeatable client_credentials grant: {}",
                self.feature_note("client-credentials").unwrap_or("(no note)")
            )));
        }
        Ok(Recipe::ClientCredentials { client: principal.to_owned(), scope })
    }

    /// How `user` logs in for a token with no `aud` claim
    /// (`[audience_none]`).
    ///
    /// # Errors
    /// The profile has no such recipe, or `user` is not a user.
    pub fn audience_none_recipe(self, user: &str, scope: Vec<String>) -> Result<Recipe, Gap> {
        let u = self.profile.users.get(user).ok_or_else(|| Gap(format!("`{user}` is not a user of the profile")))?;
        let none =
            self.profile.audience_none.as_ref().ok_or_else(|| {
                Gap("the profile has no way to obtain a user token without aud ([audience_none])".into())
            })?;
        let mut scope = scope;
        scope.extend(none.scope.iter().cloned());
        Ok(Recipe::Login {
            user: user.to_owned(),
            client: none.client.clone().unwrap_or_else(|| u.client.clone()),
            scope,
            params: BTreeMap::new(),
        })
    }

    /// How to get a token for `user` from an issuer the target must not
    /// trust.
    pub fn foreign_recipe(self, user: &str) -> Result<Recipe, Gap> {
        if !self.is_user(user) {
            return Err(Gap(format!("`{user}` is not a user of the profile")));
        }
        if self.profile.foreign_issuer.is_none() {
            return Err(Gap(
                "the profile has no way to obtain a token from an issuer the target must not trust ([foreign_issuer])"
                    .into(),
            ));
        }
        Ok(Recipe::Foreign { user: user.to_owned() })
    }

    /// The client a token obtained by `recipe` counts as obtained by: the
    /// user's own login client (also for the untrusted issuer's token, which
    /// stands in for it), or the client itself.
    #[must_use]
    pub fn obtained_by(self, recipe: &Recipe) -> String {
        match recipe {
            Recipe::Login { user, .. } | Recipe::Foreign { user } => self.profile.users[user].client.clone(),
            Recipe::ClientCredentials { client, .. } => client.clone(),
        }
    }

    /// How a user's session is ended, and which token of the login it needs.
    pub fn logout_recipe(self) -> Result<LogoutRecipe, Gap> {
        let method = self.profile.logout.method;
        let token_field = method
            .needs()
            .ok_or_else(|| Gap("the profile declares no way to end a session ([logout] method = \"none\")".into()))?;
        Ok(LogoutRecipe { method, token_field })
    }

    /// What the profile says of a principal's identity without asking the
    /// target: its `client_id`, its username, a declared `sub`. `None`
    /// when the principal is unknown.
    #[must_use]
    pub fn declared_identity(self, principal: &str) -> Option<(Identity, bool)> {
        let mut id = Identity::default();
        if let Some(c) = self.profile.clients.get(principal) {
            id.client_id = Some(c.client_id.clone());
            id.names.insert(c.client_id.clone());
            if let Some(sub) = &c.sub {
                id.names.insert(sub.clone());
            }
            return Some((id, c.sub.is_some()));
        }
        let u = self.profile.users.get(principal)?;
        id.names.insert(u.username.clone());
        if let Some(sub) = &u.sub {
            id.names.insert(sub.clone());
        }
        Some((id, u.sub.is_some()))
    }

    /// How the prelude learns a principal's `sub` when the profile does not
    /// declare it: `None` when there is no way (a public client, a client
    /// without client credentials, a user whose login is a command that
    /// might be costly is still asked).
    #[must_use]
    pub fn identity_recipe(self, principal: &str) -> Option<Recipe> {
        if let Some(c) = self.profile.clients.get(principal) {
            if c.public || c.sub.is_some() || !self.profile.features.client_credentials {
                return None;
            }
            return Some(Recipe::ClientCredentials { client: principal.to_owned(), scope: Vec::new() });
        }
        let u = self.profile.users.get(principal)?;
        if u.sub.is_some() {
            return None;
        }
        Some(Recipe::Login {
            user: principal.to_owned(),
            client: u.client.clone(),
            scope: Vec::new(),
            params: BTreeMap::new(),
        })
    }

    /// Every principal of the contract: users, then clients.
    #[must_use]
    pub fn principals(self) -> Vec<String> {
        self.profile.users.keys().chain(self.profile.clients.keys()).cloned().collect()
    }

    /// The reason a scenario is expected to fail at this target, if it is.
    #[must_use]
    pub fn expected_failure(self, scenario: &str) -> Option<&'a str> {
        self.profile.expected_failure(scenario)
    }

    /// The login method of a user.
    #[must_use]
    pub fn login_method(self, user: &str) -> Option<LoginMethod> {
        self.profile.users.get(user).map(|u| u.login)
    }
}

/// The `aud` claim as a set (a string or an array of strings, RFC 7519 §4.1.3).
#[must_use]
pub fn aud_set(claims: &Value) -> BTreeSet<String> {
    match &claims["aud"] {
        Value::String(s) => [s.clone()].into(),
        Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    const PROFILE: &str = r#"
name = "t"
product = "T"
summary = "s"
[endpoints]
issuer = "https://idp.example"
[clients.web]
client_id = "web"
public = true
[clients.agent]
client_id = "agent-id"
secret = { env = "X" }
resource = "https://agent.example/"
[clients.mcp-server]
client_id = "mcp"
secret = { env = "X" }
sub = "svc-mcp"
[users.alice]
username = "alice"
password = { env = "P" }
login = "password"
client = "web"
[permissions]
"records:read" = "read"
[audiences]
mcp-server = "mcp"
[short_lived]
scope = ["short"]
params = { max_age = "5" }
leeway_s = 2
[features]
delegation = true
may-act = true
introspection = true
revocation = true
resource = false
client_credentials = false
[features.notes]
client_credentials = "one token per client"
"#;

    fn profile(text: &str) -> Profile {
        Profile::parse(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn answers_come_from_the_profile_and_gaps_say_which_field() {
        let p = profile(PROFILE);
        let c = Contract::new(&p);
        assert_eq!(c.scope_for("records:read").unwrap(), "read");
        assert!(c.scope_for("records:write").unwrap_err().0.contains("[permissions]"));
        assert_eq!(c.audience_for("mcp-server").unwrap(), "mcp");
        assert_eq!(c.resource_for("agent").unwrap(), "https://agent.example/");
        assert!(c.resource_for("mcp-server").unwrap_err().0.contains("resource"));
        assert_eq!(c.target_params("mcp-server").unwrap(), vec![("audience", "mcp".to_owned())]);
        assert_eq!(c.expiry_leeway_s(), 2);
        assert_eq!(c.feature("client-credentials"), Some(false));
        assert_eq!(c.feature_note("client-credentials"), Some("one token per client"), "an old snake_case note key");
        assert_eq!(c.feature("nope"), None);
    }

    #[test]
    fn introspector_and_revoker_follow_the_declared_policy() {
        let p = profile(PROFILE);
        let c = Contract::new(&p);
        let claims = json!({"aud": ["web", "mcp"], "azp": "agent-id"});
        let facts = TokenFacts { claims: Some(&claims), obtained_by: Some("agent"), asked_audience: &[] };
        assert_eq!(c.introspector_for(facts).unwrap(), "mcp-server", "the confidential client in aud");
        assert_eq!(c.revoker_for(facts).unwrap(), "agent", "the client in azp");
        let opaque = TokenFacts { claims: None, obtained_by: None, asked_audience: &["mcp-server".to_owned()] };
        assert_eq!(c.introspector_for(opaque).unwrap(), "mcp-server", "the audience the exchange asked for");
        assert!(c.revoker_for(opaque).is_err());
        let mut fixed = profile(PROFILE);
        fixed.introspection.r#as = Caller::Client("agent".into());
        fixed.revocation.r#as = Caller::Audience;
        let c = Contract::new(&fixed);
        assert_eq!(c.introspector_for(facts).unwrap(), "agent");
        assert_eq!(c.revoker_for(facts).unwrap(), "mcp-server");
    }

    #[test]
    fn short_lived_tokens_may_come_from_a_scope_or_a_parameter() {
        let p = profile(PROFILE);
        let c = Contract::new(&p);
        let r = c.token_recipe("alice", vec!["read".into()], true).unwrap();
        assert_eq!(
            r,
            Recipe::Login {
                user: "alice".into(),
                client: "web".into(),
                scope: vec!["read".into(), "short".into()],
                params: BTreeMap::from([("max_age".to_owned(), "5".to_owned())]),
            }
        );
        assert!(c.token_recipe("agent", Vec::new(), false).unwrap_err().0.contains("one token per client"));
        assert!(c.token_recipe("nobody", Vec::new(), false).is_err());
    }

    #[test]
    fn declared_subs_spare_the_prelude_a_request() {
        let p = profile(PROFILE);
        let c = Contract::new(&p);
        let (id, declared) = c.declared_identity("mcp-server").unwrap();
        assert!(declared);
        assert_eq!(id.sub(), Some("svc-mcp"));
        assert_eq!(c.identity_recipe("mcp-server"), None);
        assert_eq!(c.identity_recipe("web"), None, "a public client has no token of its own");
        assert!(matches!(c.identity_recipe("alice"), Some(Recipe::Login { .. })));
    }
}
