//! Latency samples and what is reported from them.
//!
//! Every latency is kept (microseconds as `u32`, 4 bytes each: 40 MB for ten
//! million requests) and sorted once after the run, so percentiles are exact
//! rather than bucketed, and nothing is computed while the clock runs.

use std::collections::BTreeMap;

use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u32,
    pub p90_us: u32,
    pub p95_us: u32,
    pub p99_us: u32,
    pub p999_us: u32,
    pub max_us: u32,
}

/// The nearest-rank percentile `p` (0 < p ≤ 100) of sorted samples: the
/// smallest value with at least `p` % of the samples at or below it.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    // The epsilon keeps float error (0.999 × 1000 = 999.0000000000001) from
    // moving the rank up by one.
    let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Percentiles {
    /// Sorts `samples` in place and summarises them.
    pub fn of(samples: &mut [u32]) -> Percentiles {
        samples.sort_unstable();
        let sum: u64 = samples.iter().map(|v| u64::from(*v)).sum();
        Percentiles {
            count: samples.len() as u64,
            mean_us: if samples.is_empty() {
                0.0
            } else {
                sum as f64 / samples.len() as f64
            },
            p50_us: percentile(samples, 50.0),
            p90_us: percentile(samples, 90.0),
            p95_us: percentile(samples, 95.0),
            p99_us: percentile(samples, 99.0),
            p999_us: percentile(samples, 99.9),
            max_us: samples.last().copied().unwrap_or(0),
        }
    }
}

/// A duration in microseconds, as a person reads it: `87 µs`, `4.31 ms`,
/// `1.20 s`.
pub fn human_us(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Why requests got no HTTP answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    /// No complete answer within `--timeout`: the connection was dropped.
    pub timeout: u64,
    /// The connection broke or closed before a complete answer.
    pub connection: u64,
    /// The answer could not be parsed as HTTP/1.1.
    pub protocol: u64,
}

impl Failures {
    pub fn total(&self) -> u64 {
        self.timeout + self.connection + self.protocol
    }

    pub fn add(&mut self, other: &Failures) {
        self.timeout += other.timeout;
        self.connection += other.connection;
        self.protocol += other.protocol;
    }
}

/// Counts by HTTP status, cheap to bump per request (an array, not a map).
#[derive(Debug, Clone)]
pub struct StatusCounts(Box<[u64; 600]>);

impl Default for StatusCounts {
    fn default() -> Self {
        StatusCounts(Box::new([0; 600]))
    }
}

impl StatusCounts {
    pub fn bump(&mut self, status: u16) {
        if let Some(n) = self.0.get_mut(usize::from(status)) {
            *n += 1;
        }
    }

    pub fn add(&mut self, other: &StatusCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += *b;
        }
    }

    pub fn get(&self, status: u16) -> u64 {
        self.0.get(usize::from(status)).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Non-zero counts, by status.
    pub fn to_map(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s.to_string(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 95.0), 95);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 99.9), 100);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&sorted, 0.001), 1);
        assert_eq!(percentile(&[7], 50.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        // 10 samples: p50 is the 5th, p95 and p99 the 10th.
        let ten: Vec<u32> = (1..=10).map(|v| v * 10).collect();
        assert_eq!(percentile(&ten, 50.0), 50);
        assert_eq!(percentile(&ten, 95.0), 100);
    }

    #[test]
    fn summary_sorts_and_summarises() {
        let mut samples: Vec<u32> = (1..=1000).rev().collect();
        let p = Percentiles::of(&mut samples);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50_us, 500);
        assert_eq!(p.p90_us, 900);
        assert_eq!(p.p99_us, 990);
        assert_eq!(p.p999_us, 999);
        assert_eq!(p.max_us, 1000);
        assert!((p.mean_us - 500.5).abs() < 1e-9);
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn formatting() {
        assert_eq!(human_us(87.0), "87 µs");
        assert_eq!(human_us(4_310.0), "4.31 ms");
        assert_eq!(human_us(1_200_000.0), "1.20 s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn status_counts() {
        let mut a = StatusCounts::default();
        a.bump(200);
        a.bump(200);
        a.bump(503);
        a.bump(999); // out of range: ignored
        let mut b = StatusCounts::default();
        b.bump(200);
        a.add(&b);
        assert_eq!(a.get(200), 3);
        assert_eq!(a.total(), 4);
        assert_eq!(
            a.to_map().into_iter().collect::<Vec<_>>(),
            vec![("200".to_string(), 3), ("503".to_string(), 1)]
        );
    }
}
