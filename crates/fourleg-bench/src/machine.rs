//! The machine a benchmark ran on, as the OS reports it: the figures mean
//! little without the cores they shared and how busy those were.

use serde::{Deserialize, Serialize};

/// Cores and load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPUs this process may run on (`sched_getaffinity`, through
    /// `std::thread::available_parallelism`).
    pub cores: usize,
    /// CPUs online per `/proc/cpuinfo` (Linux), when readable.
    pub cpus_online: Option<usize>,
    /// The CPU model per `/proc/cpuinfo`, when readable.
    pub cpu_model: Option<String>,
    /// `std::env::consts::OS` / `ARCH`.
    pub os: String,
}

impl Machine {
    /// This machine.
    #[must_use]
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok();
        let cpus_online = cpuinfo.as_deref().map(|c| c.lines().filter(|l| l.starts_with("processor")).count());
        let cpu_model = cpuinfo.as_deref().and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        });
        Self {
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpus_online,
            cpu_model,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// The 1-, 5- and 15-minute load averages of `/proc/loadavg` (Linux);
/// `None` elsewhere.
#[must_use]
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    parse_loadavg(&text)
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_parses_its_three_figures() {
        assert_eq!(parse_loadavg("2.47 1.21 0.49 3/412 9911\n"), Some([2.47, 1.21, 0.49]));
        assert_eq!(parse_loadavg("garbage"), None);
        assert!(Machine::detect().cores >= 1);
    }
}
