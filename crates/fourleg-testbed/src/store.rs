//! What the server remembers about the tokens it issued: lineage (which token
//! each one was exchanged from), sessions, revocations and disabled clients.
//! A token is active (RFC 7662 §2.2) while it has not expired, was not
//! revoked, its session was not ended, and none of its ancestors was revoked:
//! revocation cascades down the chain by construction (RFC 7009 §2.1 allows
//! revoking related tokens; the agent profile requires it), never up.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::breakage::Breakage;

/// One issued access token.
#[derive(Debug, Clone)]
pub struct Record {
    /// The token it was exchanged from (the subject token).
    pub parent: Option<String>,
    /// The login session it descends from.
    pub sid: Option<String>,
    /// The client it was issued to (RFC 7009 §2.1).
    pub client_id: String,
    pub exp: i64,
    /// How many exchanges lie between it and a first token (login or client credentials): 0 for those.
    pub depth: usize,
    revoked_at: Option<Instant>,
}

/// A refresh token: the handle of a login session.
#[derive(Debug, Clone)]
pub struct Refresh {
    pub sid: String,
    pub client_id: String,
    /// For a refresh token issued by an exchange: the claims of the access
    /// token it renews (a new `jti`, `iat` and `exp` each time), and the
    /// token it was exchanged from.
    pub exchanged: Option<(serde_json::Value, Option<String>)>,
}

/// Why a check of activity is made: the switches that break introspection
/// and the ones that break exchange are separate rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Introspect,
    Exchange,
}

/// The server's memory.
#[derive(Debug, Default)]
pub struct Store {
    tokens: HashMap<String, Record>,
    sessions: HashMap<String, Instant>,
    refresh: HashMap<String, Refresh>,
    disabled: BTreeSet<String>,
    /// The audience of each exchanged token, as the server knows it (which
    /// the token's own `aud` may not say).
    audiences: HashMap<String, Vec<String>>,
    /// Tokens issued by an exchange with an actor token (delegation).
    delegated: BTreeSet<String>,
}

/// How long the slow-revocation variant takes to make a revocation effective.
pub const SLOW_REVOCATION: Duration = Duration::from_millis(7500);

impl Store {
    pub fn record(&mut self, jti: &str, parent: Option<String>, sid: Option<String>, client_id: &str, exp: i64) {
        let depth = parent.as_deref().and_then(|p| self.tokens.get(p)).map_or(0, |p| p.depth + 1);
        self.tokens.insert(
            jti.to_owned(),
            Record { parent, sid, client_id: client_id.to_owned(), exp, depth, revoked_at: None },
        );
    }

    /// Records that `jti` was issued by a delegated exchange (an actor token).
    pub fn mark_delegated(&mut self, jti: &str) {
        self.delegated.insert(jti.to_owned());
    }

    pub fn set_audience(&mut self, jti: &str, aud: Vec<String>) {
        self.audiences.insert(jti.to_owned(), aud);
    }

    /// The audience the server recorded for a token it exchanged.
    pub fn audience(&self, jti: &str) -> Option<&[String]> {
        self.audiences.get(jti).map(Vec::as_slice)
    }

    pub fn get(&self, jti: &str) -> Option<&Record> {
        self.tokens.get(jti)
    }

    pub fn add_refresh(&mut self, token: &str, sid: &str, client_id: &str) {
        self.refresh.insert(
            token.to_owned(),
            Refresh { sid: sid.to_owned(), client_id: client_id.to_owned(), exchanged: None },
        );
    }

    /// A refresh token issued by an exchange, in the subject's session.
    pub fn add_exchanged_refresh(
        &mut self,
        token: &str,
        sid: &str,
        client_id: &str,
        claims: serde_json::Value,
        parent: Option<String>,
    ) {
        self.refresh.insert(
            token.to_owned(),
            Refresh { sid: sid.to_owned(), client_id: client_id.to_owned(), exchanged: Some((claims, parent)) },
        );
    }

    pub fn refresh(&self, token: &str) -> Option<&Refresh> {
        self.refresh.get(token)
    }

    fn effective(at: Option<Instant>, broken: Option<Breakage>) -> bool {
        let delay = if broken == Some(Breakage::RevocationSlow) { SLOW_REVOCATION } else { Duration::ZERO };
        at.is_some_and(|t| t.elapsed() >= delay)
    }

    /// Whether a session was ended (logout, or its refresh token revoked).
    pub fn session_ended(&self, sid: &str, broken: Option<Breakage>) -> bool {
        Self::effective(self.sessions.get(sid).copied(), broken)
    }

    /// Whether an issued token is active. Unknown tokens are not active.
    pub fn is_active(&self, jti: &str, now: i64, purpose: Purpose, broken: Option<Breakage>) -> bool {
        let Some(r) = self.tokens.get(jti) else {
            return false;
        };
        let expiry_ignored = purpose == Purpose::Exchange && broken == Some(Breakage::ExpiredAccepted);
        if r.exp <= now && !expiry_ignored {
            return false;
        }
        let ignore_revocation = match purpose {
            Purpose::Introspect => broken == Some(Breakage::IntrospectionIgnoresRevocation),
            Purpose::Exchange => broken == Some(Breakage::RevokedSubjectExchangeable),
        };
        if ignore_revocation {
            return true;
        }
        if Self::effective(r.revoked_at, broken) {
            return false;
        }
        if let Some(sid) = &r.sid {
            // The broken variant ends the login token only, not what was derived from it.
            let applies = broken != Some(Breakage::LogoutKeepsDerived) || r.parent.is_none();
            if applies && self.session_ended(sid, broken) {
                return false;
            }
        }
        if broken == Some(Breakage::RevocationNotCascading) {
            return true;
        }
        let mut cur = r.parent.as_deref();
        while let Some(p) = cur {
            let Some(a) = self.tokens.get(p) else { break };
            if Self::effective(a.revoked_at, broken) {
                return false;
            }
            cur = a.parent.as_deref();
        }
        true
    }

    /// Revokes a token (RFC 7009 §2.1); descendants follow by lineage.
    pub fn revoke(&mut self, jti: &str, broken: Option<Breakage>) {
        let now = Instant::now();
        let mut cur = Some(jti.to_owned());
        while let Some(j) = cur {
            let Some(r) = self.tokens.get_mut(&j) else {
                break;
            };
            r.revoked_at.get_or_insert(now);
            // The broken variant walks up the chain and revokes the ancestors too.
            cur = if broken == Some(Breakage::RevocationCascadesUp) { r.parent.clone() } else { None };
        }
    }

    /// Ends a session: every token of it becomes inactive.
    pub fn end_session(&mut self, sid: &str) {
        self.sessions.entry(sid.to_owned()).or_insert_with(Instant::now);
    }

    /// Disables a client: it can no longer authenticate, and every token
    /// issued to it is revoked (so are the tokens derived from them).
    pub fn disable(&mut self, client_id: &str, broken: Option<Breakage>) {
        self.disabled.insert(client_id.to_owned());
        if broken == Some(Breakage::DisabledClientTokensStayActive) {
            return;
        }
        let now = Instant::now();
        let keep_delegated = broken == Some(Breakage::DisabledClientDelegatedTokensStayActive);
        for (jti, r) in self.tokens.iter_mut().filter(|(_, r)| r.client_id == client_id) {
            if keep_delegated && self.delegated.contains(jti) {
                continue;
            }
            r.revoked_at.get_or_insert(now);
        }
    }

    pub fn enable(&mut self, client_id: &str) {
        self.disabled.remove(client_id);
    }

    pub fn is_disabled(&self, client_id: &str) -> bool {
        self.disabled.contains(client_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000;

    /// user ← hop1 ← hop2, one session.
    fn chain() -> Store {
        let mut s = Store::default();
        s.record("user", None, Some("sid".into()), "lab-web", NOW + 300);
        s.record("hop1", Some("user".into()), Some("sid".into()), "agent", NOW + 300);
        s.record("hop2", Some("hop1".into()), Some("sid".into()), "mcp-server", NOW + 300);
        s
    }

    fn active(s: &Store, jti: &str, broken: Option<Breakage>) -> bool {
        s.is_active(jti, NOW, Purpose::Introspect, broken)
    }

    #[test]
    fn revocation_cascades_down_and_never_up() {
        let mut s = chain();
        s.revoke("hop1", None);
        assert!(active(&s, "user", None));
        assert!(!active(&s, "hop1", None));
        assert!(!active(&s, "hop2", None));
        assert_eq!(s.get("hop2").map(|r| r.depth), Some(2));
    }

    #[test]
    fn the_broken_variants_break_only_their_direction() {
        let mut s = chain();
        s.revoke("hop1", Some(Breakage::RevocationNotCascading));
        assert!(active(&s, "hop2", Some(Breakage::RevocationNotCascading)));
        let mut s = chain();
        s.revoke("hop1", Some(Breakage::RevocationCascadesUp));
        assert!(!active(&s, "user", Some(Breakage::RevocationCascadesUp)));
    }

    #[test]
    fn ending_a_session_ends_every_token_of_it() {
        let mut s = chain();
        s.end_session("sid");
        assert!(["user", "hop1", "hop2"].iter().all(|j| !active(&s, j, None)));
        let keeps = Some(Breakage::LogoutKeepsDerived);
        assert!(!active(&s, "user", keeps) && active(&s, "hop2", keeps));
    }

    #[test]
    fn disabling_a_client_revokes_its_tokens_and_their_descendants() {
        let mut s = chain();
        s.disable("agent", None);
        assert!(s.is_disabled("agent"));
        assert!(active(&s, "user", None) && !active(&s, "hop1", None) && !active(&s, "hop2", None));
    }

    #[test]
    fn expired_and_unknown_tokens_are_inactive() {
        let s = chain();
        assert!(!s.is_active("user", NOW + 300, Purpose::Introspect, None));
        assert!(!active(&s, "nope", None));
    }
}
