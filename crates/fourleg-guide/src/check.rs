//! Running a step's checks against the lab's real state: the demo chain's
//! journal and Keycloak's admin events API.

use std::path::PathBuf;

use fourleg_core::Secret;
use fourleg_demo::journal::{self, Entry, TokenView};
use serde_json::Value;

use crate::def::{Check, JournalCheck, Window};

/// Keycloak's admin API, for its event store.
#[derive(Debug, Clone)]
pub struct KeycloakAdmin {
    /// Keycloak's base URL.
    pub base: String,
    pub realm: String,
    /// The master realm's bootstrap admin password.
    pub admin_password: Secret,
}

/// The broker's database, for `sql` checks.
#[derive(Debug, Clone)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub password: Secret,
}

/// Where the checks look.
#[derive(Debug, Clone)]
pub struct Env {
    pub journal: PathBuf,
    pub keycloak: Option<KeycloakAdmin>,
    pub database: Option<Database>,
    pub http: reqwest::Client,
}

/// A check's verdict, in words a learner reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub says: String,
    pub passed: bool,
    /// What was verified, or what is missing.
    pub detail: String,
}

/// When the step and the lab began (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since {
    pub step: u64,
    pub lab: u64,
}

impl Since {
    fn of(self, w: Window) -> u64 {
        match w {
            Window::Step => self.step,
            Window::Lab => self.lab,
        }
    }
}

/// Runs one check on what happened since the step (or the lab) began.
pub async fn run(check: &Check, env: &Env, since: Since) -> Outcome {
    let since_ms = since.step;
    let (passed, detail) = match check {
        Check::Journal(j) => journal_check(j, &recent(env, since.of(j.window))),
        Check::SameSubject { of, distinct_aud, window, .. } => {
            same_subject(of, *distinct_aud, &recent(env, since.of(*window)))
        }
        Check::Sql { query, at_least, at_most, .. } => match &env.database {
            Some(db) => sql(db, query, *at_least, *at_most, since_ms).await,
            None => (false, "this lab has no broker database to ask".into()),
        },
        Check::KeycloakEvent { event_type, client, user, .. } => match &env.keycloak {
            Some(kc) => keycloak_event(env, kc, event_type, client, user.as_deref(), since_ms).await,
            None => (false, "this lab has no Keycloak to ask".into()),
        },
    };
    Outcome { says: check.says().to_owned(), passed, detail }
}

fn recent(env: &Env, since_ms: u64) -> Vec<Entry> {
    journal::read(&env.journal).into_iter().filter(|e| e.at_ms >= since_ms).collect()
}

/// The `sub` of `user`, learned from lab-web's logins (tokens that carry no
/// `preferred_username` are matched by it).
fn user_sub(entries: &[Entry], user: &str) -> Option<String> {
    entries.iter().rev().find_map(|e| {
        let t = e.token.as_ref()?;
        (e.component == "web" && t.preferred_username.as_deref() == Some(user)).then(|| t.sub.clone()).flatten()
    })
}

fn is_user(t: &TokenView, user: &str, sub: Option<&str>) -> bool {
    t.preferred_username.as_deref() == Some(user) || (sub.is_some() && t.sub.as_deref() == sub)
}

/// Why an entry does not match, or `None` when it does.
fn mismatch(j: &JournalCheck, e: &Entry, sub: Option<&str>) -> Option<String> {
    if let Some(ok) = j.ok {
        if e.ok != ok {
            return Some(
                format!("it {}", if e.ok { "succeeded" } else { "failed" })
                    + &e.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default(),
            );
        }
    }
    if let Some(s) = j.status {
        if e.status != Some(s) {
            return Some(format!("its status was {}, not {s}", e.status.map_or("none".into(), |x| x.to_string())));
        }
    }
    for (k, want) in &j.detail {
        let got = e.detail.get(k);
        let equal = match (want, got) {
            (toml::Value::String(w), Some(Value::String(g))) => w == g,
            (toml::Value::Boolean(w), Some(Value::Bool(g))) => w == g,
            (toml::Value::Integer(w), Some(Value::Number(g))) => g.as_i64() == Some(*w),
            _ => false,
        };
        if !equal {
            return Some(format!("its {k} was {}, not {want}", got.map_or("absent".into(), Value::to_string)));
        }
    }
    let needs_token = j.user.is_some()
        || !j.aud_has.is_empty()
        || !j.aud_lacks.is_empty()
        || !j.scope_has.is_empty()
        || !j.scope_lacks.is_empty()
        || !j.act_has.is_empty();
    if !needs_token {
        return None;
    }
    let Some(t) = &e.token else { return Some("it holds no token".into()) };
    if let Some(u) = &j.user {
        if !is_user(t, u, sub) {
            return Some(format!("its token is not {u}'s (sub {})", t.sub.as_deref().unwrap_or("none")));
        }
    }
    if let Some(a) = j.aud_has.iter().find(|a| !t.aud.contains(a)) {
        return Some(format!("its token's aud [{}] lacks {a}", t.aud.join(" ")));
    }
    if let Some(a) = j.aud_lacks.iter().find(|a| t.aud.contains(a)) {
        return Some(format!("its token's aud [{}] contains {a}", t.aud.join(" ")));
    }
    if let Some(s) = j.scope_has.iter().find(|s| !t.has_scope(s)) {
        return Some(format!("its token's scope [{}] lacks {s}", t.scope.as_deref().unwrap_or("")));
    }
    if let Some(s) = j.scope_lacks.iter().find(|s| t.has_scope(s)) {
        return Some(format!("its token's scope [{}] has {s}", t.scope.as_deref().unwrap_or("")));
    }
    let actors = t.actors();
    if actors.len() < j.act_has.len() || actors[..j.act_has.len()] != j.act_has[..] {
        return Some(if actors.is_empty() {
            "its token has no act claim".to_owned()
        } else {
            format!("its token's act chain is {}, not {}", actors.join(" ← "), j.act_has.join(" ← "))
        });
    }
    None
}

/// A token in a sentence: whose, for which audience, with which scope.
#[must_use]
pub fn describe(t: &TokenView) -> String {
    let who = t.preferred_username.clone().or_else(|| t.sub.clone()).unwrap_or_else(|| "no sub".into());
    let mut s = format!("sub {who}, aud [{}], scope [{}]", t.aud.join(" "), t.scope.as_deref().unwrap_or(""));
    let actors = t.actors();
    if !actors.is_empty() {
        s.push_str(", act ");
        s.push_str(&actors.join(" ← "));
    }
    s
}

fn journal_check(j: &JournalCheck, entries: &[Entry]) -> (bool, String) {
    let what = format!("{}/{}", j.component, j.event);
    let sub = j.user.as_deref().and_then(|u| user_sub(entries, u));
    let candidates: Vec<&Entry> = entries.iter().filter(|e| e.component == j.component && e.event == j.event).collect();
    let matching = candidates.iter().rev().find(|e| mismatch(j, e, sub.as_deref()).is_none());
    match (matching, j.absent) {
        (Some(e), false) => (
            true,
            match &e.token {
                Some(t) => format!(
                    "{what}: {}{}",
                    describe(t),
                    e.detail
                        .get("latency_ms")
                        .and_then(Value::as_u64)
                        .map(|ms| format!("; after {ms} ms"))
                        .unwrap_or_default()
                ),
                None => format!(
                    "{what}{}{}",
                    e.status.map(|s| format!(": status {s}")).unwrap_or_default(),
                    e.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
                ),
            },
        ),
        (Some(e), true) => (
            false,
            format!(
                "{what} happened: {}",
                e.token.as_ref().map_or_else(|| e.reason.clone().unwrap_or_default(), describe)
            ),
        ),
        (None, true) => (true, format!("no {what} of that kind since the step began")),
        (None, false) => match candidates.last() {
            None => (false, format!("nothing of {what} since the step began")),
            Some(e) => (
                false,
                format!("the last {what} does not match: {}", mismatch(j, e, sub.as_deref()).unwrap_or_default()),
            ),
        },
    }
}

fn same_subject(of: &[String], distinct_aud: bool, entries: &[Entry]) -> (bool, String) {
    let mut seen: Vec<(&str, &TokenView)> = Vec::new();
    for pair in of {
        let (c, ev) = pair.split_once('/').unwrap_or((pair, ""));
        let found = entries.iter().rev().find(|e| e.component == c && e.event == ev && e.ok && e.token.is_some());
        match found.and_then(|e| e.token.as_ref()) {
            Some(t) => seen.push((pair, t)),
            None => return (false, format!("no successful {pair} with a token since the step began")),
        }
    }
    let first = seen[0].1.sub.clone();
    if let Some((pair, t)) = seen.iter().find(|(_, t)| t.sub != first) {
        return (
            false,
            format!(
                "{pair}'s token has sub {}, not {}",
                t.sub.as_deref().unwrap_or("none"),
                first.as_deref().unwrap_or("none")
            ),
        );
    }
    if distinct_aud {
        for (i, (p1, t1)) in seen.iter().enumerate() {
            if let Some((p2, _)) = seen[i + 1..].iter().find(|(_, t2)| t2.aud == t1.aud) {
                return (false, format!("{p1} and {p2} have the same aud [{}]", t1.aud.join(" ")));
            }
        }
    }
    let hops: Vec<String> = seen.iter().map(|(p, t)| format!("{p}: aud [{}]", t.aud.join(" "))).collect();
    (true, format!("sub {} throughout; {}", first.as_deref().unwrap_or("none"), hops.join(" → ")))
}

async fn keycloak_event(
    env: &Env,
    kc: &KeycloakAdmin,
    event_type: &str,
    client: &str,
    user: Option<&str>,
    since_ms: u64,
) -> (bool, String) {
    let admin = match admin_token(env, kc).await {
        Ok(t) => t,
        Err(e) => return (false, format!("cannot read Keycloak's events: {e}")),
    };
    let user_id = match user {
        Some(u) => match user_id(env, kc, &admin, u).await {
            Ok(id) => Some(id),
            Err(e) => return (false, format!("cannot look up {u} in Keycloak: {e}")),
        },
        None => None,
    };
    let url = format!("{}/admin/realms/{}/events", kc.base, kc.realm);
    let resp = env
        .http
        .get(&url)
        .bearer_auth(admin.expose())
        .query(&[("type", event_type), ("client", client), ("max", "200")])
        .send()
        .await;
    let events: Vec<Value> = match resp {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        Ok(r) => return (false, format!("Keycloak's events API answered {}", r.status().as_u16())),
        Err(e) => return (false, format!("Keycloak's events API could not be reached: {}", e.without_url())),
    };
    let found = events.iter().find(|e| {
        let time = e.get("time").and_then(Value::as_u64).unwrap_or(0);
        let uid = e.get("userId").and_then(Value::as_str);
        time >= since_ms && user_id.as_deref().is_none_or(|id| uid == Some(id))
    });
    let who = user.map(|u| format!(" for {u}")).unwrap_or_default();
    match found {
        Some(_) => (true, format!("Keycloak recorded {event_type} by client {client}{who}")),
        None => (false, format!("Keycloak recorded no {event_type} by client {client}{who} since the step began")),
    }
}

async fn admin_token(env: &Env, kc: &KeycloakAdmin) -> Result<Secret, String> {
    let r = env
        .http
        .post(format!("{}/realms/master/protocol/openid-connect/token", kc.base))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "admin-cli"),
            ("username", "admin"),
            ("password", kc.admin_password.expose()),
        ])
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v.get("access_token")
        .and_then(Value::as_str)
        .map(Secret::new)
        .ok_or_else(|| format!("the admin login answered {status}"))
}

async fn user_id(env: &Env, kc: &KeycloakAdmin, admin: &Secret, user: &str) -> Result<String, String> {
    let r = env
        .http
        .get(format!("{}/admin/realms/{}/users", kc.base, kc.realm))
        .bearer_auth(admin.expose())
        .query(&[("username", user), ("exact", "true")])
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v.get(0)
        .and_then(|u| u.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("no user {user}"))
}

async fn sql(db: &Database, query: &str, at_least: Option<i64>, at_most: Option<i64>, since_ms: u64) -> (bool, String) {
    let mut cfg = tokio_postgres::Config::new();
    cfg.host(&db.host).port(db.port).dbname(&db.dbname).user(&db.user).password(db.password.expose());
    cfg.connect_timeout(std::time::Duration::from_secs(10));
    let (client, conn) = match cfg.connect(tokio_postgres::NoTls).await {
        Ok(c) => c,
        Err(e) => return (false, format!("cannot reach the broker's database: {e}")),
    };
    let task = tokio::spawn(conn);
    #[allow(clippy::cast_precision_loss)]
    let since = since_ms as f64 / 1000.0;
    // `$1` only when the query uses it: Postgres wants as many parameters as
    // the statement has.
    let row = if query.contains("$1") {
        client.query_one(query, &[&since]).await
    } else {
        client.query_one(query, &[]).await
    };
    task.abort();
    let n: i64 = match row {
        Ok(r) => match r.try_get::<_, i64>(0).or_else(|_| r.try_get::<_, i32>(0).map(i64::from)) {
            Ok(n) => n,
            Err(e) => return (false, format!("the query's first column is not a count: {e}")),
        },
        Err(e) => return (false, format!("the query failed: {e}")),
    };
    let low = at_least.is_none_or(|l| n >= l);
    let high = at_most.is_none_or(|h| n <= h);
    let bounds = match (at_least, at_most) {
        (Some(l), Some(h)) => format!("between {l} and {h}"),
        (Some(l), None) => format!("at least {l}"),
        (None, Some(h)) => format!("at most {h}"),
        (None, None) => "any".into(),
    };
    (low && high, format!("the broker's database counts {n} (wanted {bounds})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::def::Check;
    use serde_json::json;

    fn view(sub: &str, user: Option<&str>, aud: &[&str], scope: &str) -> TokenView {
        TokenView::from_claims(&json!({"sub": sub, "preferred_username": user, "aud": aud, "scope": scope}))
    }

    fn entry(c: &str, ev: &str, ok: bool, t: Option<TokenView>) -> Entry {
        Entry::new(c, ev, ok).token(t)
    }

    fn check(text: &str) -> Check {
        #[derive(serde::Deserialize)]
        struct W {
            check: Check,
        }
        toml::from_str::<W>(text).unwrap().check
    }

    fn journal_of(c: &Check, entries: &[Entry]) -> (bool, String) {
        match c {
            Check::Journal(j) => journal_check(j, entries),
            Check::SameSubject { of, distinct_aud, .. } => same_subject(of, *distinct_aud, entries),
            Check::KeycloakEvent { .. } | Check::Sql { .. } => unreachable!(),
        }
    }

    #[test]
    fn a_journal_check_passes_on_a_matching_entry_and_says_what_is_missing_otherwise() {
        let c = check(
            "[check]\nkind = \"journal\"\nsays = \"x\"\ncomponent = \"agent\"\nevent = \"exchange\"\nok = true\nuser = \"alice\"\naud_has = [\"mcp-server\"]\nscope_lacks = [\"records:write\"]",
        );
        let login =
            entry("web", "login", true, Some(view("u1", Some("alice"), &["agent"], "records:read records:write")));
        let good = entry("agent", "exchange", true, Some(view("u1", None, &["mcp-server"], "records:read")));
        let (p, d) = journal_of(&c, &[login.clone(), good]);
        assert!(p, "{d}");
        assert!(d.contains("aud [mcp-server]"), "{d}");
        // Nothing at all.
        let (p, d) = journal_of(&c, std::slice::from_ref(&login));
        assert!(!p && d.contains("nothing of agent/exchange"), "{d}");
        // Wrong audience, too wide a scope, another user, a failure: each named.
        for (bad, why) in [
            (view("u1", None, &["agent"], "records:read"), "lacks mcp-server"),
            (view("u1", None, &["mcp-server"], "records:read records:write"), "has records:write"),
            (view("u2", None, &["mcp-server"], "records:read"), "not alice's"),
        ] {
            let (p, d) = journal_of(&c, &[login.clone(), entry("agent", "exchange", true, Some(bad))]);
            assert!(!p && d.contains(why), "{why}: {d}");
        }
        let (p, d) = journal_of(&c, &[login, Entry::new("agent", "exchange", false).reason("invalid_scope")]);
        assert!(!p && d.contains("invalid_scope"), "{d}");
    }

    #[test]
    fn act_has_wants_the_chain_outermost_first() {
        let c = check("[check]\nkind = \"journal\"\nsays = \"x\"\ncomponent = \"mcp\"\nevent = \"exchange\"\nact_has = [\"mcp-server\", \"agent\"]");
        let with = |act: serde_json::Value| {
            entry("mcp", "exchange", true, Some(TokenView::from_claims(&json!({"sub": "u1", "act": act}))))
        };
        let (p, d) = journal_of(&c, &[with(json!({"client_id": "mcp-server", "act": {"client_id": "agent"}}))]);
        assert!(p, "{d}");
        // Impersonation (no act), the order reversed, the inner actor missing.
        let (p, d) = journal_of(&c, &[entry("mcp", "exchange", true, Some(view("u1", None, &[], "")))]);
        assert!(!p && d.contains("no act claim"), "{d}");
        let (p, d) = journal_of(&c, &[with(json!({"client_id": "agent", "act": {"client_id": "mcp-server"}}))]);
        assert!(!p && d.contains("agent ← mcp-server"), "{d}");
        let (p, _) = journal_of(&c, &[with(json!({"client_id": "mcp-server"}))]);
        assert!(!p);
    }

    #[test]
    fn an_absent_check_fails_when_the_thing_happened() {
        let c = check("[check]\nkind = \"journal\"\nsays = \"x\"\ncomponent = \"api\"\nevent = \"request\"\nok = true\nabsent = true\nscope_has = [\"records:write\"]");
        let (p, _) = journal_of(&c, &[entry("api", "request", true, Some(view("u1", None, &["api"], "records:read")))]);
        assert!(p);
        let (p, d) =
            journal_of(&c, &[entry("api", "request", true, Some(view("u1", None, &["api"], "records:write")))]);
        assert!(!p && d.contains("happened"), "{d}");
    }

    #[test]
    fn same_subject_catches_a_changed_sub_and_an_unchanged_audience() {
        let c = check("[check]\nkind = \"same-subject\"\nsays = \"x\"\nof = [\"web/login\", \"agent/exchange\"]\ndistinct_aud = true");
        let login = entry("web", "login", true, Some(view("u1", Some("alice"), &["agent"], "")));
        let (p, d) = journal_of(
            &c,
            &[login.clone(), entry("agent", "exchange", true, Some(view("u1", None, &["mcp-server"], "")))],
        );
        assert!(p, "{d}");
        let (p, d) = journal_of(
            &c,
            &[login.clone(), entry("agent", "exchange", true, Some(view("agent-sa", None, &["mcp-server"], "")))],
        );
        assert!(!p && d.contains("agent-sa"), "{d}");
        let (p, d) =
            journal_of(&c, &[login.clone(), entry("agent", "exchange", true, Some(view("u1", None, &["agent"], "")))]);
        assert!(!p && d.contains("same aud"), "{d}");
        let (p, d) = journal_of(&c, &[login]);
        assert!(!p && d.contains("agent/exchange"), "{d}");
    }
}
