//! What the demo chain did, as JSON lines: the guided labs' checks read it.
//!
//! An entry keeps a token's decoded claims (a [`TokenView`]), never the
//! token itself: the journal is read by people and sits on disk.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The claims of a token that a learner reads: who, for whom, for what.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenView {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The `aud` claim, always as a list (RFC 7519 §4.1.3 allows a string).
    #[serde(default)]
    pub aud: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// The `act` claim (RFC 8693 §4.1), nested as issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may_act: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

impl TokenView {
    /// The view of a JWT's claims (decoded without verification: callers
    /// that trust it have verified it first). `None` for a token that is not
    /// a JWT.
    #[must_use]
    pub fn of(token: &str) -> Option<Self> {
        let d = fourleg_core::jwt::decode(token).ok()?;
        Some(Self::from_claims(&d.claims))
    }

    /// The view of a claims object.
    #[must_use]
    pub fn from_claims(c: &Value) -> Self {
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_owned);
        let aud = match c.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Self {
            iss: s("iss"),
            sub: s("sub"),
            aud,
            azp: s("azp"),
            client_id: s("client_id"),
            scope: s("scope"),
            preferred_username: s("preferred_username"),
            act: c.get("act").cloned(),
            may_act: c.get("may_act").cloned(),
            iat: c.get("iat").and_then(Value::as_i64),
            exp: c.get("exp").and_then(Value::as_i64),
            jti: s("jti"),
        }
    }

    /// Whether the token grants `scope` (space-separated `scope` claim).
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.as_deref().is_some_and(|s| s.split(' ').any(|x| x == scope))
    }

    /// The actors of the `act` chain, outermost (current) first.
    #[must_use]
    pub fn actors(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut at = self.act.as_ref();
        while let Some(a) = at {
            let who = a.get("client_id").or_else(|| a.get("sub")).and_then(Value::as_str).unwrap_or("?");
            out.push(who.to_owned());
            at = a.get("act");
        }
        out
    }
}

/// One thing a component did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `web`, `agent`, `mcp` or `api`.
    pub component: String,
    /// What happened: `login`, `exchange`, `call`, `request`, …
    pub event: String,
    /// Whether it was allowed (a resource's decision, an exchange's success).
    pub ok: bool,
    /// The HTTP status answered or received, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it was refused or failed, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The token presented or obtained, decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenView>,
    /// Anything else worth showing (the audience asked for, the tool called).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

impl Entry {
    /// A new entry stamped now.
    #[must_use]
    pub fn new(component: &str, event: &str, ok: bool) -> Self {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            at_ms,
            component: component.to_owned(),
            event: event.to_owned(),
            ok,
            status: None,
            reason: None,
            token: None,
            detail: Value::Null,
        }
    }

    #[must_use]
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    #[must_use]
    pub fn token(mut self, token: Option<TokenView>) -> Self {
        self.token = token;
        self
    }

    #[must_use]
    pub fn detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The append-only journal, shared by the components (cheap to clone).
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    lock: Arc<Mutex<()>>,
}

impl Journal {
    /// A journal appending to `path` (created with its directory on the first
    /// entry).
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into(), lock: Arc::new(Mutex::new(())) }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry. A journal that cannot be written is reported on
    /// stderr and otherwise ignored: the demo keeps serving.
    pub fn append(&self, entry: &Entry) {
        let _guard = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = match serde_json::to_string(entry) {
            Ok(l) => l,
            Err(e) => return eprintln!("fourleg demo: journal entry not serialisable: {e}"),
        };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
            writeln!(f, "{line}")
        };
        if let Err(e) = write() {
            eprintln!("fourleg demo: cannot write the journal {}: {e}", self.path.display());
        }
    }

    /// Every entry so far (lines that do not parse are skipped).
    #[must_use]
    pub fn read(&self) -> Vec<Entry> {
        read(&self.path)
    }
}

/// Every entry of the journal at `path` (none when it does not exist).
#[must_use]
pub fn read(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_round_trip_and_keep_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path().join("demo/journal.jsonl"));
        let token = fourleg_core::jwt::with_signature(
            &fourleg_core::jwt::encode_unsigned(
                &json!({"alg": "RS256"}),
                &json!({"sub": "u1", "aud": "mcp-server", "scope": "records:read", "act": {"sub": "a", "client_id": "agent", "act": {"client_id": "lab-web"}}}),
            ),
            &[9u8; 64],
        );
        j.append(
            &Entry::new("api", "request", false).status(401).reason("wrong audience").token(TokenView::of(&token)),
        );
        let read = j.read();
        assert_eq!(read.len(), 1);
        let t = read[0].token.as_ref().unwrap();
        assert_eq!(t.aud, vec!["mcp-server"]);
        assert!(t.has_scope("records:read") && !t.has_scope("records"));
        assert_eq!(t.actors(), vec!["agent", "lab-web"]);
        let text = std::fs::read_to_string(j.path()).unwrap();
        assert!(fourleg_core::jwt::find_signed_jwts(&text).is_empty(), "{text}");
    }
}
