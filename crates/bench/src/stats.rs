//! Latency statistics: percentiles over recorded durations.

use std::time::Duration;

/// Sorted latency samples.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    sorted: Vec<Duration>,
}

impl Latencies {
    /// Takes ownership of the samples and sorts them.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The nearest-rank percentile `q` in `0.0..=1.0`; `None` when empty.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        if self.sorted.is_empty() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = (q * self.sorted.len() as f64).ceil() as usize;
        let idx = rank.saturating_sub(1).min(self.sorted.len() - 1);
        Some(self.sorted[idx])
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }

    /// A percentile in milliseconds, 0 when empty (for reports).
    pub fn ms(&self, q: f64) -> f64 {
        self.percentile(q).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    }
}
