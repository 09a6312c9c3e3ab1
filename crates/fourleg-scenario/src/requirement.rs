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
    /// Where the rule comes from (`RFC 8693 §2.1`). Where an id's section
    /// number is wrong, the id stays (ids never change) and `section` says so.
    pub section: String,
    pub summary: String,
    /// The sentence of the source the rule rests on, verbatim, so a reader
    /// can check the rule against its source in seconds. Required for every
    /// rule whose id names an RFC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// How this suite grades the rule where that is its own choice (a level
    /// the source does not state, a precondition), never presented as the
    /// source's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the rule is no longer checked. A retired id is kept so old reports
    /// still resolve, but no scenario may declare it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
}

impl Rule {
    /// Whether the id names a published specification, an RFC (`RFC…`) or
    /// the MCP specification (`MCP-…`), and so must carry a `section` and a
    /// `quote`.
    #[must_use]
    pub fn is_rfc_sourced(id: &str) -> bool {
        id.starts_with("RFC") || id.starts_with("MCP-")
    }
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
            if Rule::is_rfc_sourced(id)
                && (rule.section.trim().is_empty() || rule.quote.as_deref().is_none_or(|q| q.trim().is_empty()))
            {
                return Err(RegistryError {
                    path: path.to_owned(),
                    message: format!(
                        "{id}: an RFC rule needs a `section` and a `quote` (the sentence of the RFC it rests on, verbatim)"
                    ),
                });
            }
            if agent && !names_the_profile(rule) {
                return Err(RegistryError {
                    path: path.to_owned(),
                    message: format!(
                        "{id}: an AGENT- rule's section must name the agent profile (\"agent profile v1\"), so no report presents it as an RFC requirement"
                    ),
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

/// Whether an AGENT- rule's text says it is a rule of the agent profile.
fn names_the_profile(rule: &Rule) -> bool {
    rule.section.contains("agent profile")
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

    /// RFC 8693 §2.1 leaves most of what agents need to policy: a rule that
    /// cites an RFC must say where and in which words; a profile rule must say
    /// it is one.
    #[test]
    fn every_rfc_rule_has_a_section_and_a_quote_and_every_agent_rule_names_the_profile() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../suites/requirements.toml");
        let reg = Registry::load(&path).unwrap();
        for (id, rule) in &reg.rules {
            if Rule::is_rfc_sourced(id) {
                let source = if id.starts_with("MCP-") { "MCP " } else { "RFC " };
                assert!(rule.section.starts_with(source), "{id}: section `{}` does not cite its source", rule.section);
                let quote = rule.quote.as_deref().unwrap_or_default();
                assert!(quote.split_whitespace().count() >= 5, "{id}: quote `{quote}` is not a sentence");
            } else {
                assert!(id.starts_with("AGENT-"), "{id}: an id names an RFC or the agent profile");
                assert!(
                    rule.section.contains("agent profile"),
                    "{id}: section `{}` does not name the agent profile",
                    rule.section
                );
                assert!(
                    rule.section.contains("agent profile v1")
                        || rule.note.as_deref().is_some_and(|n| n.contains("agent profile")),
                    "{id}: the profile version is missing"
                );
            }
        }
    }

    #[test]
    fn an_rfc_rule_without_a_quote_or_an_agent_rule_without_the_profile_is_refused() {
        let dir = std::env::temp_dir().join(format!("fourleg-registry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("requirements.toml");
        std::fs::write(
            &file,
            "profile_version = \"1\"\n[rules.\"RFC1-x\"]\nlevel = \"MUST\"\nsection = \"RFC 1 §1\"\nsummary = \"s\"\n",
        )
        .unwrap();
        let err = Registry::load(&file).unwrap_err().to_string();
        assert!(err.contains("RFC1-x") && err.contains("quote"), "{err}");
        std::fs::write(
            &file,
            "profile_version = \"1\"\n[rules.\"AGENT-x\"]\nlevel = \"profile\"\nsection = \"RFC 8693 §2.1\"\nsummary = \"s\"\n",
        )
        .unwrap();
        let err = Registry::load(&file).unwrap_err().to_string();
        assert!(err.contains("AGENT-x") && err.contains("agent profile"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
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
