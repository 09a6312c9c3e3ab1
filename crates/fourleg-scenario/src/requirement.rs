//! The rule registry: `suites/requirements.toml`, one entry per requirement
//! id with its level. A check's severity comes from here.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How binding a rule is, and so what a failed check becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum Level {
    /// RFC MUST / REQUIRED / SHALL: failure is `fail`.
    #[serde(rename = "MUST")]
    Must,
    /// RFC SHOULD / RECOMMENDED: failure is `warn`.
    #[serde(rename = "SHOULD")]
    Should,
    /// RFC MAY / OPTIONAL: failure is `info`.
    #[serde(rename = "MAY")]
    May,
    /// A rule of the agent delegation profile, not of an RFC: failure is
    /// `fail`, always reported as "profile".
    #[serde(rename = "profile")]
    Profile,
    /// A fact worth reporting (a measurement, a behaviour the RFC leaves
    /// open): never a failure.
    #[serde(rename = "info")]
    Info,
}

impl Level {
    /// The status a failed check of this level gets.
    #[must_use]
    pub fn on_failure(self) -> crate::result::Status {
        use crate::result::Status;
        match self {
            Level::Must | Level::Profile => Status::Fail,
            Level::Should => Status::Warn,
            Level::May | Level::Info => Status::Info,
        }
    }

    /// `true` for profile rules (reports must say "profile").
    #[must_use]
    pub fn is_profile(self) -> bool {
        self == Level::Profile
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
            Level::Profile => "profile",
            Level::Info => "info",
        })
    }
}

/// One rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub level: Level,
    /// Where the rule comes from (`RFC 8693 §2.1`).
    pub section: String,
    pub summary: String,
}

/// Every rule, by id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    /// Version of the agent delegation profile (the set of AGENT- rules).
    pub profile_version: String,
    pub rules: BTreeMap<String, Rule>,
}

/// The registry could not be read.
#[derive(Debug, thiserror::Error)]
#[error("requirement registry {}: {message}", path.display())]
pub struct RegistryError {
    pub path: PathBuf,
    pub message: String,
}

impl Registry {
    /// Reads `suites/requirements.toml`.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RegistryError { path: path.to_owned(), message: e.to_string() })?;
        let reg: Registry = toml::from_str(&text)
            .map_err(|e: toml::de::Error| RegistryError { path: path.to_owned(), message: e.to_string() })?;
        for (id, rule) in &reg.rules {
            let agent = id.starts_with("AGENT-");
            if agent && !matches!(rule.level, Level::Profile | Level::Info) {
                return Err(RegistryError {
                    path: path.to_owned(),
                    message: format!("{id}: AGENT- rules are profile rules (level \"profile\" or \"info\")"),
                });
            }
            if !agent && rule.level == Level::Profile {
                return Err(RegistryError {
                    path: path.to_owned(),
                    message: format!("{id}: only AGENT- rules may have level \"profile\""),
                });
            }
        }
        Ok(reg)
    }

    /// A rule by id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.get(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_registry_loads_and_keeps_rfc_and_profile_apart() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/requirements.toml");
        let reg = Registry::load(&path).unwrap();
        assert_eq!(reg.get("RFC8693-2.2.2-invalid-request").unwrap().level, Level::Must);
        assert_eq!(reg.get("RFC8693-2.2.2-invalid-target").unwrap().level, Level::Should);
        assert!(reg.get("AGENT-MAYACT-deny-actor").unwrap().level.is_profile());
        assert!(reg.rules.len() > 50);
    }

    #[test]
    fn levels_grade_failures() {
        use crate::result::Status;
        assert_eq!(Level::Must.on_failure(), Status::Fail);
        assert_eq!(Level::Should.on_failure(), Status::Warn);
        assert_eq!(Level::May.on_failure(), Status::Info);
        assert_eq!(Level::Profile.on_failure(), Status::Fail);
    }
}
