//! Latency summaries by an exact sort: every sample is kept (nanoseconds as
//! `u64`, 8 bytes each: a million samples is 8 MB), so percentiles are the
//! observed values themselves, not a histogram's bucket bounds.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Latency samples of successful requests.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<u64>);

impl Samples {
    /// Records one latency.
    pub fn push(&mut self, d: Duration) {
        self.0.push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Takes every sample of `other`.
    pub fn merge(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    /// How many samples.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No sample at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// p50/p90/p99/max/mean in milliseconds; `None` without samples (no
    /// latency is claimed for what never succeeded).
    #[must_use]
    pub fn summary(mut self) -> Option<Summary> {
        if self.0.is_empty() {
            return None;
        }
        self.0.sort_unstable();
        let v = &self.0;
        let ms = |ns: u64| round3(ns as f64 / 1e6);
        let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
        Some(Summary {
            count: v.len() as u64,
            p50_ms: ms(nearest_rank(v, 50.0)),
            p90_ms: ms(nearest_rank(v, 90.0)),
            p99_ms: ms(nearest_rank(v, 99.0)),
            max_ms: ms(*v.last().expect("not empty")),
            mean_ms: round3(sum as f64 / v.len() as f64 / 1e6),
        })
    }
}

/// The `p`th percentile of sorted, non-empty `v` by the nearest-rank method:
/// the smallest sample with at least `p`% of the samples at or below it.
fn nearest_rank(v: &[u64], p: f64) -> u64 {
    let n = v.len() as f64;
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a rank in 1..=len")]
    let rank = ((p / 100.0 * n).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Milliseconds to three decimals (microseconds): finer digits are noise.
#[must_use]
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(ms: &[u64]) -> Samples {
        let mut s = Samples::default();
        for &m in ms {
            s.push(Duration::from_millis(m));
        }
        s
    }

    #[test]
    fn percentiles_are_observed_values_by_nearest_rank() {
        // 1..=100 ms in any order: p50 is the 50th value, p99 the 99th.
        let mut v: Vec<u64> = (1..=100).rev().collect();
        v.swap(3, 70);
        let s = of(&v).summary().unwrap();
        assert_eq!((s.count, s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (100, 50.0, 90.0, 99.0, 100.0));
        assert!((s.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn one_slow_sample_in_ten_is_the_p99_and_the_max_not_the_median() {
        let s = of(&[2, 2, 2, 2, 2, 2, 2, 2, 2, 500]).summary().unwrap();
        assert_eq!((s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms), (2.0, 2.0, 500.0, 500.0));
    }

    #[test]
    fn no_samples_no_summary() {
        assert!(Samples::default().summary().is_none());
        let one = of(&[7]).summary().unwrap();
        assert_eq!((one.p50_ms, one.p99_ms, one.max_ms), (7.0, 7.0, 7.0));
    }
}
