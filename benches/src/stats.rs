//! Samples of one message size turned into the reported figures: the mean over all timed
//! iterations (what OSU prints) and percentiles from an `hdrhistogram` of the individual
//! iterations.

use hdrhistogram::Histogram;

/// Figures of one row, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub size: usize,
    pub iters: usize,
    pub avg_us: f64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Per-iteration times in nanoseconds.
pub struct Samples {
    hist: Histogram<u64>,
    total_ns: u128,
    n: usize,
}

impl Samples {
    pub fn new() -> Samples {
        // 1 ns to 1 hour at 3 significant digits: every value the tool can meet, ~200 KiB.
        let hist =
            Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds");
        Samples {
            hist,
            total_ns: 0,
            n: 0,
        }
    }

    /// Records one iteration of `ns` nanoseconds.
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
        self.total_ns += u128::from(ns);
        self.n += 1;
    }

    /// Makes the average `total_ns / n` (the whole timed loop, as OSU's tools time it) instead of
    /// the average of the samples: those time one iteration in a few, and each sample's clock
    /// reads would otherwise be counted in every iteration.
    pub fn overall(&mut self, total_ns: u128, n: usize) {
        self.total_ns = total_ns;
        self.n = n;
    }

    /// The row for `size`, every figure divided by `per` (2 for a round trip reported one way).
    pub fn row(&self, size: usize, per: f64) -> Row {
        let us = |ns: f64| ns / 1000.0 / per;
        let avg = if self.n == 0 {
            0.0
        } else {
            self.total_ns as f64 / self.n as f64
        };
        Row {
            size,
            iters: self.n,
            avg_us: us(avg),
            min_us: us(self.hist.min() as f64),
            p50_us: us(self.hist.value_at_quantile(0.50) as f64),
            p99_us: us(self.hist.value_at_quantile(0.99) as f64),
            max_us: us(self.hist.max() as f64),
        }
    }
}

/// The rows of several pairs measured at once, as one: mean of the means, median of the p50s,
/// worst p99, extremes of min and max.
pub fn combine(rows: &[Row]) -> Row {
    let mut p50: Vec<f64> = rows.iter().map(|r| r.p50_us).collect();
    p50.sort_by(f64::total_cmp);
    let n = rows.len().max(1) as f64;
    Row {
        size: rows.first().map_or(0, |r| r.size),
        iters: rows.iter().map(|r| r.iters).sum(),
        avg_us: rows.iter().map(|r| r.avg_us).sum::<f64>() / n,
        min_us: rows.iter().map(|r| r.min_us).fold(f64::INFINITY, f64::min),
        p50_us: p50.get(p50.len() / 2).copied().unwrap_or(0.0),
        p99_us: rows.iter().map(|r| r.p99_us).fold(0.0, f64::max),
        max_us: rows.iter().map(|r| r.max_us).fold(0.0, f64::max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_mean() {
        let mut s = Samples::new();
        for i in 1..=100u64 {
            s.record(i * 1000);
        }
        let r = s.row(8, 2.0);
        assert_eq!(r.iters, 100);
        assert!((r.avg_us - 25.25).abs() < 1e-9, "{r:?}");
        assert!((r.p50_us - 25.0).abs() < 0.05, "{r:?}");
        assert!((r.p99_us - 49.5).abs() < 0.05, "{r:?}");
        assert!(
            (r.min_us - 0.5).abs() < 0.01 && (r.max_us - 50.0).abs() < 0.05,
            "{r:?}"
        );
    }
}
