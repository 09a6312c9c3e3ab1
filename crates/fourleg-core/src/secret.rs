//! Secrets as types.
//!
//! A client secret, a password, an unseal key or a token is wrapped in
//! [`Secret`] the moment it enters the program. Its `Debug` and `Display`
//! print `[redacted]`, so a secret cannot reach a log line, a report or an
//! error message by accident; reading it takes an explicit
//! [`Secret::expose`].

use std::fmt;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value that must never be printed: client secrets, passwords, keys, tokens.
///
/// Serialization writes the real value: it is meant for the owner-only
/// credential files of the lab, never for reports (reports serialise their
/// own redacted views).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh random secret of `len` alphanumeric characters (about 5.95 bits each).
    #[must_use]
    pub fn generate(len: usize) -> Self {
        let value: String = rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect();
        Self(value)
    }

    /// The secret's value. Every call site is a place a secret leaves its box:
    /// keep them few and never format the result into a message.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert!(!format!("{s:?} {s} {:#?}", Some(&s)).contains("hunter2"));
    }

    #[test]
    fn generated_secrets_are_long_and_distinct() {
        let a = Secret::generate(32);
        let b = Secret::generate(32);
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn serde_round_trips_the_real_value_for_credential_files() {
        let s = Secret::new("x1");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, "\"x1\"");
        let back: Secret = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }
}
