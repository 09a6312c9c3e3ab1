//! A guided lab as data: `labs/<n>/lab.toml`.
//!
//! A step says what the learner does, the concept it teaches with its RFC
//! section, how `--auto` performs it, and the checks that prove it happened,
//! each against real state (the demo chain's journal, Keycloak's events).
//! Adding a step that uses existing checks and actions needs no Rust.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A lab.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// The lab's number, as typed in `fourleg lab <n>`.
    pub id: u32,
    pub title: String,
    /// What a team will learn, in a paragraph.
    pub summary: String,
    /// About how long it takes, in minutes.
    pub minutes: u32,
    /// Where the agent and the MCP server exchange tokens.
    #[serde(default)]
    pub exchange_at: ExchangeAt,
    pub steps: Vec<Step>,
    /// The file it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

/// The token endpoint the demo chain exchanges at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExchangeAt {
    /// The lab's Keycloak realm (Lab 1).
    #[default]
    Keycloak,
    /// The lab's reference broker (Lab 2).
    Broker,
}

/// One step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Stable id (kebab-case), used in progress files.
    pub id: String,
    pub title: String,
    /// The concept taught, in a sentence or two.
    pub concept: String,
    /// The sections it rests on ("RFC 8693 §2.1").
    #[serde(default)]
    pub references: Vec<String>,
    /// What the learner does. `{web}`, `{agent}`, `{mcp}`, `{api}`,
    /// `{keycloak}` and `{password:<user>}` are replaced.
    #[serde(rename = "do")]
    pub todo: String,
    /// Shown when a check fails.
    pub hint: String,
    /// What `--auto` does (none: the step only reads what an earlier one did).
    #[serde(default)]
    pub auto: Vec<Action>,
    /// Every check must pass.
    #[serde(rename = "check")]
    pub checks: Vec<Check>,
}

/// What `--auto` performs, through the demo chain as a learner would.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Action {
    /// Log in to lab-web as `user` (authorization code + PKCE, the real
    /// login page).
    Login { user: String },
    /// Press "Ask the agent to read records" (`read`) or "… write a record"
    /// (`write`).
    Ask { what: String },
    /// Press "Replay the MCP server's token at the API".
    Replay,
    /// Press "Log out everywhere": the user's session ends at the login
    /// server, and the agent watches its token die.
    LogoutEverywhere,
    /// Run `fourleg <args>` on the lab, as the learner would.
    Fourleg { args: Vec<String> },
}

/// A check against the lab's state.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Check {
    /// An entry of the demo journal since the step began (or, with
    /// `absent = true`, none) matches.
    Journal(JournalCheck),
    /// The latest tokens of the listed journal events since the step began all
    /// have the same `sub`, and (with `distinct_aud`) pairwise different
    /// audiences.
    SameSubject {
        says: String,
        /// `component/event` pairs, e.g. `web/login`.
        of: Vec<String>,
        #[serde(default)]
        distinct_aud: bool,
        #[serde(default)]
        window: Window,
    },
    /// A query on the reference broker's database (Postgres) returns one
    /// row whose first column, a count, is within the bounds. `$1` is when
    /// the step began, in seconds since the epoch (`to_timestamp($1)`).
    Sql {
        says: String,
        query: String,
        #[serde(default)]
        at_least: Option<i64>,
        #[serde(default)]
        at_most: Option<i64>,
    },
    /// Keycloak recorded an event (its admin events API) since the step
    /// began.
    KeycloakEvent {
        says: String,
        /// Keycloak's event type: `LOGIN`, `CODE_TO_TOKEN`, `TOKEN_EXCHANGE`, …
        #[serde(rename = "type")]
        event_type: String,
        client: String,
        #[serde(default)]
        user: Option<String>,
    },
}

impl Check {
    /// What the check proves.
    #[must_use]
    pub fn says(&self) -> &str {
        match self {
            Self::Journal(JournalCheck { says, .. })
            | Self::SameSubject { says, .. }
            | Self::KeycloakEvent { says, .. }
            | Self::Sql { says, .. } => says,
        }
    }
}

/// How far back a check looks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Window {
    #[default]
    Step,
    Lab,
}

/// Conditions on one journal entry; every given one must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalCheck {
    /// What it proves, shown with ✓ or ✗.
    pub says: String,
    /// The check passes when no entry matches.
    #[serde(default)]
    pub absent: bool,
    /// Which entries to look at: since the step began (default) or since
    /// the lab began (a step that reads what an earlier one did).
    #[serde(default)]
    pub window: Window,
    pub component: String,
    pub event: String,
    #[serde(default)]
    pub ok: Option<bool>,
    #[serde(default)]
    pub status: Option<u16>,
    /// The token's `preferred_username` (or `sub`) is this lab user's.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub aud_has: Vec<String>,
    #[serde(default)]
    pub aud_lacks: Vec<String>,
    #[serde(default)]
    pub scope_has: Vec<String>,
    #[serde(default)]
    pub scope_lacks: Vec<String>,
    /// Clients in the token's `act` chain (RFC 8693 §4.1), outermost first.
    #[serde(default)]
    pub act_has: Vec<String>,
    /// Fields of the entry's `detail` with these values.
    #[serde(default)]
    pub detail: BTreeMap<String, toml::Value>,
}

/// Why a lab could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DefError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("no lab {id} in {dir} (fourleg lab list shows the labs)")]
    Unknown { id: String, dir: PathBuf },
}

impl Lab {
    /// Reads and checks a lab file. Errors name the field and line.
    pub fn load(path: &Path) -> Result<Self, DefError> {
        let text = std::fs::read_to_string(path).map_err(|source| DefError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses a lab from text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DefError> {
        let mut lab: Lab = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let line = inner.span().map(|sp| text[..sp.start.min(text.len())].lines().count().max(1));
            let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
            let named = if field == "." || field.is_empty() { String::new() } else { format!("field `{field}`: ") };
            DefError::Parse { path: path.to_owned(), message: format!("{at}{named}{}", inner.message()) }
        })?;
        path.clone_into(&mut lab.path);
        lab.validate()?;
        Ok(lab)
    }

    fn validate(&self) -> Result<(), DefError> {
        let bad = |message: String| DefError::Parse { path: self.path.clone(), message };
        if self.steps.is_empty() {
            return Err(bad("a lab needs at least one step".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.steps.iter().enumerate() {
            if !seen.insert(s.id.as_str()) {
                return Err(bad(format!("steps[{i}]: step id {:?} is used twice", s.id)));
            }
            if s.checks.is_empty() {
                return Err(bad(format!("steps[{i}] ({}): a step needs at least one check", s.id)));
            }
            for c in &s.checks {
                if let Check::SameSubject { of, .. } = c {
                    if let Some(bad_pair) = of.iter().find(|p| p.split_once('/').is_none()) {
                        return Err(bad(format!(
                            "steps[{i}] ({}): `of` entry {bad_pair:?} is not component/event",
                            s.id
                        )));
                    }
                }
            }
            for c in &s.checks {
                if let Check::Sql { at_least: None, at_most: None, .. } = c {
                    return Err(bad(format!("steps[{i}] ({}): a sql check needs at_least or at_most", s.id)));
                }
            }
            if let Some(a) = s.auto.iter().find_map(|a| match a {
                Action::Ask { what } if what != "read" && what != "write" => Some(what),
                _ => None,
            }) {
                return Err(bad(format!("steps[{i}] ({}): ask `what` is {a:?}; expected \"read\" or \"write\"", s.id)));
            }
        }
        Ok(())
    }

    /// The index of a step given as a 1-based number or an id.
    #[must_use]
    pub fn step_index(&self, k: &str) -> Option<usize> {
        if let Ok(n) = k.parse::<usize>() {
            return (1..=self.steps.len()).contains(&n).then(|| n - 1);
        }
        self.steps.iter().position(|s| s.id == k)
    }
}

/// Every lab under `dir` (`<dir>/<n>/lab.toml`), by id.
pub fn list(dir: &Path) -> Result<Vec<Lab>, DefError> {
    let mut labs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| DefError::Read { path: dir.to_owned(), source })?;
    for e in entries.flatten() {
        let file = e.path().join("lab.toml");
        if file.is_file() {
            labs.push(Lab::load(&file)?);
        }
    }
    labs.sort_by_key(|l| l.id);
    Ok(labs)
}

/// The lab numbered `id`.
pub fn find(dir: &Path, id: &str) -> Result<Lab, DefError> {
    list(dir)?
        .into_iter()
        .find(|l| l.id.to_string() == id)
        .ok_or_else(|| DefError::Unknown { id: id.to_owned(), dir: dir.to_owned() })
}

/// The nearest `labs/` (holding a `README.md`) from the current directory
/// upwards, else the one of the source tree this binary was built from.
#[must_use]
pub fn default_labs_dir() -> PathBuf {
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let candidate = dir.join("labs");
            if candidate.join("README.md").is_file() {
                return candidate;
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../labs")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
id = 9
title = "t"
summary = "s"
minutes = 5
[[steps]]
id = "login"
title = "Log in"
concept = "c"
do = "Open {web}"
hint = "h"
auto = [{ action = "login", user = "alice" }]
[[steps.check]]
kind = "journal"
says = "lab-web holds a token for alice"
component = "web"
event = "login"
ok = true
user = "alice"
"#;

    #[test]
    fn a_minimal_lab_parses() {
        let lab = Lab::parse(MINIMAL, Path::new("lab.toml")).unwrap();
        assert_eq!(lab.steps[0].auto, vec![Action::Login { user: "alice".into() }]);
        assert_eq!(lab.step_index("1"), Some(0));
        assert_eq!(lab.step_index("login"), Some(0));
        assert_eq!(lab.step_index("2"), None);
    }

    #[test]
    fn a_wrong_field_is_named_with_its_line() {
        let text =
            MINIMAL.replace("aud_has", "x").replace("user = \"alice\"\n\"#", "").replace("ok = true", "okay = true");
        let err = Lab::parse(&text, Path::new("lab.toml")).unwrap_err().to_string();
        assert!(err.contains("okay") && err.contains("line "), "{err}");
        let text = MINIMAL.replace("kind = \"journal\"", "kind = \"jounral\"");
        let err = Lab::parse(&text, Path::new("lab.toml")).unwrap_err().to_string();
        assert!(err.contains("jounral") && err.contains("steps"), "{err}");
        let text = MINIMAL.replace("kind = \"journal\"\nsays", "kind = \"sql\"\nquery = \"SELECT 1\"\nsays");
        let text = text[..text.find("component").unwrap()].to_owned();
        let err = Lab::parse(&text, Path::new("lab.toml")).unwrap_err().to_string();
        assert!(err.contains("at_least or at_most"), "{err}");
        let text = MINIMAL.replace("action = \"login\", user = \"alice\"", "action = \"ask\", what = \"delete\"");
        let err = Lab::parse(&text, Path::new("lab.toml")).unwrap_err().to_string();
        assert!(err.contains("\"delete\""), "{err}");
    }

    #[test]
    fn the_bundled_labs_parse() {
        let labs = list(&default_labs_dir()).unwrap();
        assert_eq!(labs.iter().map(|l| l.id).collect::<Vec<_>>(), vec![1, 2]);
    }
}
