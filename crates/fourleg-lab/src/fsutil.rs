//! Small file-system helpers: owner-only files, atomic writes, log tails.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{LabError, Result};

/// Creates `dir` (and parents) with mode 0700; an existing directory loses
/// any group/other read and write bits but keeps its search bits (the state
/// directory is 0711 while the postgres user runs a cluster inside it).
pub fn private_dir(dir: &Path) -> Result<()> {
    let existed = dir.is_dir();
    fs::create_dir_all(dir).map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    let mode = if existed {
        let m =
            fs::metadata(dir).map_err(|e| LabError::io(format!("reading {}", dir.display()), e))?.permissions().mode();
        (m & 0o7711) | 0o700
    } else {
        0o700
    };
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(format!("restricting {}", dir.display()), e))
}

/// Writes `bytes` to `path` atomically with mode 0600 (owner-only): the
/// credential files of the lab.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let ctx = || format!("writing {}", path.display());
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| LabError::io(ctx(), e))?;
        f.write_all(bytes).map_err(|e| LabError::io(ctx(), e))?;
        f.sync_all().map_err(|e| LabError::io(ctx(), e))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(|e| LabError::io(ctx(), e))?;
    fs::rename(&tmp, path).map_err(|e| LabError::io(ctx(), e))
}

/// Reads a JSON file, `None` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| LabError::State {
            path: path.to_owned(),
            message: format!("unreadable ({e}); move it away or run `fourleg down --purge`"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LabError::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes a JSON file owner-only.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| LabError::State { path: path.to_owned(), message: e.to_string() })?;
    write_private(path, &bytes)
}

/// Copies the directory `from` into `to`, recursively (files and
/// directories only; permissions kept, times not).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| LabError::io(format!("creating {}", to.display()), e))?;
    let entries = std::fs::read_dir(from).map_err(|e| LabError::io(format!("reading {}", from.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LabError::io(format!("reading {}", from.display()), e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| LabError::io(format!("copying {}", src.display()), e))?;
        }
    }
    Ok(())
}

/// The last `lines` lines of a log file (at most the last 64 KiB are read).
#[must_use]
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(64 * 1024);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_owner_only_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds.json");
        write_private(&p, b"{}").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!p.with_extension("tmp").exists());
    }

    #[test]
    fn private_dirs_keep_search_bits_but_lose_read_and_write() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("state");
        private_dir(&d).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        // A running cluster owned by another user still reaches its files.
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o711);
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&p, 2), "c\nd");
        assert!(tail(&dir.path().join("none.log"), 2).contains("no log"));
    }

    #[test]
    fn a_corrupt_state_file_names_its_path_and_a_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lab.json");
        fs::write(&p, "{not json").unwrap();
        let err = read_json::<serde_json::Value>(&p).unwrap_err().to_string();
        assert!(err.contains("lab.json"), "{err}");
        assert!(err.contains("--purge"), "{err}");
    }
}
