//! A learner's progress through a lab, kept in the state directory
//! (`<state>/guide/lab-<n>.json`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where a learner is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Ids of the steps passed.
    pub passed: Vec<String>,
    /// The step shown now (index) and when it began (ms since the epoch):
    /// its checks look at what happened since then.
    pub current: usize,
    pub since_ms: u64,
    /// When the lab began (a fresh start or `--reset`).
    #[serde(default)]
    pub lab_since_ms: u64,
}

impl Progress {
    #[must_use]
    pub fn path(state_dir: &Path, lab: u32) -> PathBuf {
        state_dir.join("guide").join(format!("lab-{lab}.json"))
    }

    /// The saved progress, or a fresh start.
    #[must_use]
    pub fn load(state_dir: &Path, lab: u32) -> Self {
        std::fs::read_to_string(Self::path(state_dir, lab))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path, lab: u32) -> std::io::Result<()> {
        let path = Self::path(state_dir, lab);
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(tmp, path)
    }

    /// Starts step `index` now.
    pub fn start(&mut self, index: usize) {
        self.current = index;
        self.since_ms = now_ms();
    }
}

/// Milliseconds since the Unix epoch.
#[must_use]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_a_missing_file_is_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Progress::load(dir.path(), 1), Progress::default());
        let mut p = Progress { passed: vec!["login".into()], ..Progress::default() };
        p.start(1);
        p.save(dir.path(), 1).unwrap();
        assert_eq!(Progress::load(dir.path(), 1), p);
        assert!(Progress::path(dir.path(), 1).ends_with("guide/lab-1.json"));
    }
}
