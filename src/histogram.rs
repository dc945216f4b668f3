//! A lock-free histogram with power-of-two buckets, for the measurements the Prometheus
//! endpoint exports (`metrics-port`): fsync latency and group-commit batch sizes in the log,
//! per-command latency in `core::stats`.
//!
//! Why not `prometheus_client::metrics::histogram::Histogram`: its `observe` takes a write
//! lock shared by every thread that records into it, and command latency is recorded on
//! every command from every connection thread. Here a record is two relaxed `fetch_add`s
//! (its bucket and the sum), the bucket found from the value's leading zeros; the reader
//! (a scrape) adds the buckets up. The buckets are fixed — upper bounds 1, 2, 4, …,
//! 2^(BUCKETS-2) and +Inf, in the recorder's unit — which is coarse (a factor of two) but
//! enough to see a tail move, and costs nothing to configure. Leaf module: storage and core
//! both record into it, the server renders it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets, the last one unbounded: finite bounds go to 2^25 (in µs: 33 s).
pub const BUCKETS: usize = 27;

/// Counts of values by power-of-two bucket, plus their sum.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum: AtomicU64::new(0),
        }
    }
}

/// A histogram read at one moment: per-bucket (not cumulative) counts by upper bound, the
/// last bound `None` (+Inf).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    pub buckets: Vec<(Option<u64>, u64)>,
    pub sum: u64,
    pub count: u64,
}

/// The bucket `v` falls in: the first whose upper bound 2^i is at least `v`.
fn bucket_of(v: u64) -> usize {
    if v <= 1 {
        return 0;
    }
    // ceil(log2(v)) for v >= 2.
    let i = (64 - (v - 1).leading_zeros()) as usize;
    i.min(BUCKETS - 1)
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, v: u64) {
        self.buckets[bucket_of(v)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    /// The sum of the values recorded.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// The counts now (a concurrent record may be half seen: off by one at most per bucket).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets: Vec<(Option<u64>, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let bound = (i < BUCKETS - 1).then(|| 1u64 << i);
                (bound, c.load(Ordering::Relaxed))
            })
            .collect();
        let count = buckets.iter().map(|(_, c)| c).sum();
        HistogramSnapshot {
            buckets,
            sum: self.sum.load(Ordering::Relaxed),
            count,
        }
    }

    /// Back to zero (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for b in &self.buckets {
            b.store(0, Ordering::Relaxed);
        }
        self.sum.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        for v in [0, 1, 2, 3, 4, 5, 1 << 20, u64::MAX] {
            h.record(v.min(1 << 40));
        }
        let s = h.snapshot();
        let count_at = |bound: Option<u64>| s.buckets.iter().find(|b| b.0 == bound).map(|b| b.1);
        assert_eq!(count_at(Some(1)), Some(2)); // 0, 1
        assert_eq!(count_at(Some(2)), Some(1));
        assert_eq!(count_at(Some(4)), Some(2)); // 3, 4
        assert_eq!(count_at(Some(8)), Some(1));
        assert_eq!(count_at(Some(1 << 20)), Some(1));
        assert_eq!(count_at(None), Some(1));
        assert_eq!(s.count, 8);
    }
}
