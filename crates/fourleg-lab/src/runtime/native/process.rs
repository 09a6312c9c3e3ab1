//! Detached service processes: spawned as leaders of their own process group
//! with output to a log file, found again by pid and start time, stopped by
//! signalling the whole group.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::error::{LabError, Result};
use crate::state::Handle;

/// A user to run a service as (Postgres refuses to run as root).
#[derive(Debug, Clone, Copy)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// Spawns `cmd` detached: its own process group, stdin closed, stdout and
/// stderr appended to `log`.
pub fn spawn(cmd: &mut Command, log: &Path, run_as: Option<RunAs>) -> Result<(Child, Handle)> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LabError::io(format!("creating {}", dir.display()), e))?;
    }
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| LabError::io(format!("opening {}", log.display()), e))?;
    let err = out.try_clone().map_err(|e| LabError::io("duplicating log handle", e))?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    if let Some(r) = run_as {
        cmd.uid(r.uid).gid(r.gid);
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd.spawn().map_err(|e| LabError::io(format!("starting {program}"), e))?;
    let pid = child.id();
    Ok((child, Handle::Process { pid, start_ticks: start_ticks(pid) }))
}

/// Kernel start time of `pid` in clock ticks (Linux), `None` elsewhere or
/// when the process is gone.
#[must_use]
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 2 (comm) is parenthesised and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    // `rest` starts at field 3 (state); start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.get(s.rfind(')')? + 2..).map(|r| r.starts_with('Z')))
        .unwrap_or(false)
}

/// Whether the process of `handle` still runs (and is the same process).
#[must_use]
pub fn is_alive(handle: &Handle) -> bool {
    let Handle::Process { pid, start_ticks: ticks } = handle else {
        return false;
    };
    let Ok(raw) = i32::try_from(*pid) else { return false };
    if kill(Pid::from_raw(raw), None).is_err() {
        return false;
    }
    if is_zombie(*pid) {
        reap(*pid);
        return false;
    }
    match (ticks, start_ticks(*pid)) {
        (Some(expected), Some(actual)) => *expected == actual,
        // No /proc (macOS): trust the pid.
        _ => true,
    }
}

/// Whether any process of the group `pgid` remains.
fn group_alive(pgid: u32) -> bool {
    let Ok(raw) = i32::try_from(pgid) else { return false };
    killpg(Pid::from_raw(raw), None).is_ok() && !only_zombies_in_group(pgid)
}

fn only_zombies_in_group(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    let mut any = false;
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // fields[0] = state (field 3), fields[2] = pgrp (field 5).
        if fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid) {
            if fields[0] != "Z" {
                return false;
            }
            any = true;
            reap(pid);
        }
    }
    any
}

fn reap(pid: u32) {
    if let Ok(raw) = i32::try_from(pid) {
        // Succeeds only for our own children; harmless otherwise.
        let _ = waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG));
    }
}

/// Stops the process group led by `handle`: `first` to the leader (e.g.
/// SIGINT for Postgres's fast shutdown) or the group, then SIGKILL to the
/// group after `grace`. Returns once no process of the group remains.
pub async fn stop(handle: &Handle, first: Signal, to_group: bool, grace: Duration) -> Result<()> {
    let Handle::Process { pid, .. } = handle else {
        return Ok(());
    };
    if !is_alive(handle) && !group_alive(*pid) {
        return Ok(());
    }
    let raw = Pid::from_raw(i32::try_from(*pid).map_err(|_| LabError::Config(format!("bad pid {pid}")))?);
    let _ = if to_group { killpg(raw, first) } else { kill(raw, first) };
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(*pid);
        if !group_alive(*pid) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = killpg(raw, Signal::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        reap(*pid);
        if !group_alive(*pid) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(LabError::Config(format!("process group {pid} survived SIGKILL; check `ps -g {pid}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawned_groups_are_stopped_with_their_children() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        // A parent that ignores SIGTERM and has a child: the group kill must
        // still leave nothing behind.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 300 & echo started; wait"]);
        let (_child, handle) = spawn(&mut cmd, &log, None).unwrap();
        assert!(is_alive(&handle));
        stop(&handle, Signal::SIGTERM, true, Duration::from_millis(500)).await.unwrap();
        assert!(!is_alive(&handle));
        let Handle::Process { pid, .. } = handle else { unreachable!() };
        assert!(!group_alive(pid));
    }

    #[test]
    fn a_recycled_pid_is_not_the_service() {
        let me = std::process::id();
        let real = start_ticks(me);
        assert!(is_alive(&Handle::Process { pid: me, start_ticks: real }));
        if let Some(t) = real {
            assert!(!is_alive(&Handle::Process { pid: me, start_ticks: Some(t + 1) }));
        }
    }
}
