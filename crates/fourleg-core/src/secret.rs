//! Secrets as types.
//!
//! A client secret, a password, an unseal key or a token is wrapped in
//! [`Secret`] the moment it enters the program. Its `Debug` and `Display`
//! print `[redacted]`, so a secret cannot reach a log line, a report or an
//! error message by accident; reading it takes an explicit
//! [`Secret::expose`].
//!
//! It has no `Serialize` either: a struct holding a secret cannot be written
//! to a report, a log or a JSON answer by deriving `Serialize`. The lab's
//! owner-only credential files write theirs explicitly, field by field, with
//! `#[serde(with = "fourleg_core::secret::exposed")]` (or
//! [`exposed_map`] for a map of secrets); a search for `exposed` finds every
//! place a secret is written out.

use std::fmt;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Deserializer};

/// A value that must never be printed: client secrets, passwords, keys, tokens.
///
/// Deserialising reads the real value; serialising takes [`exposed`] (the
/// owner-only credential files of the lab, never reports: those serialise
/// their own redacted views).
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

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Writes a secret's real value, as a plain string: for a field of an
/// owner-only credential file, `#[serde(with = "fourleg_core::secret::exposed")]`.
pub mod exposed {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::Secret;

    pub fn serialize<S: Serializer>(secret: &Secret, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Secret, D::Error> {
        Secret::deserialize(deserializer)
    }
}

/// [`exposed`] for a map of secrets (client secrets by client id), written
/// as a JSON object of plain strings.
pub mod exposed_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::Secret;

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Secret>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(map.iter().map(|(k, v)| (k, v.expose())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Secret>, D::Error> {
        BTreeMap::deserialize(deserializer)
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

    /// `Implements::<T>::SERIALIZE` is true exactly when `T: Serialize`: the
    /// inherent constant exists only under that bound and wins over the
    /// trait's default when it does.
    struct Implements<T>(std::marker::PhantomData<T>);

    trait Fallback {
        const SERIALIZE: bool = false;
    }

    impl<T> Fallback for Implements<T> {}

    impl<T: serde::Serialize> Implements<T> {
        const SERIALIZE: bool = true;
    }

    /// Checked when the test compiles: a `Serialize` impl for `Secret` (or
    /// a derive that reaches it) fails the build of the tests.
    #[test]
    fn a_secret_cannot_be_serialised_by_default() {
        const {
            assert!(Implements::<String>::SERIALIZE, "the probe sees Serialize where it is");
            assert!(!Implements::<Secret>::SERIALIZE, "Secret must not implement Serialize");
            assert!(!Implements::<Option<Secret>>::SERIALIZE);
            assert!(!Implements::<std::collections::BTreeMap<String, Secret>>::SERIALIZE);
        }
    }

    #[derive(serde::Serialize, Deserialize, PartialEq, Debug)]
    struct CredentialFile {
        #[serde(with = "exposed")]
        token: Secret,
        #[serde(with = "exposed_map")]
        clients: std::collections::BTreeMap<String, Secret>,
    }

    #[test]
    fn credential_files_write_the_real_value_explicitly_and_read_it_back() {
        let file = CredentialFile {
            token: Secret::new("x1"),
            clients: [("agent".to_owned(), Secret::new("s3"))].into_iter().collect(),
        };
        let json = serde_json::to_string(&file).unwrap();
        assert_eq!(json, r#"{"token":"x1","clients":{"agent":"s3"}}"#);
        assert_eq!(serde_json::from_str::<CredentialFile>(&json).unwrap(), file);
        let bare: Secret = serde_json::from_str("\"x1\"").unwrap();
        assert_eq!(bare, Secret::new("x1"));
    }
}
