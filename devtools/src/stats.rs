//! Summaries of measured samples: percentiles by rank on the sorted samples.

/// The median, the 99th percentile and the extremes of some samples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    /// How many samples.
    pub count: usize,
    /// The smallest.
    pub min: f64,
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
    /// The largest.
    pub max: f64,
}

impl Percentiles {
    /// Sorts `samples` and summarises them (all zero when there are none).
    pub fn of(samples: &mut [f64]) -> Self {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
            samples.get(rank).copied().unwrap_or(0.0)
        };
        Self {
            count: samples.len(),
            min: at(0.0),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_are_taken_on_the_sorted_samples() {
        let mut samples: Vec<f64> = (1..=101).rev().map(f64::from).collect();
        let summary = Percentiles::of(&mut samples);
        assert_eq!(summary.count, 101);
        assert_eq!(
            (summary.min, summary.p50, summary.p99, summary.max),
            (1.0, 51.0, 100.0, 101.0)
        );
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }
}
