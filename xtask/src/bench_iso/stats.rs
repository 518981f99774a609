//! Summaries of timing samples: what every latency row of the report shows.

/// Median and 90th percentile (nearest rank on the sorted samples, the same
/// rule as `util::median_p90`), plus the count, of one row's samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples.
    pub n: usize,
    /// The median.
    pub p50: f64,
    /// The 90th percentile.
    pub p90: f64,
}

impl Summary {
    /// Summarises `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Some(Summary {
            n: sorted.len(),
            p50: at(0.5),
            p90: at(0.9),
        })
    }
}

/// Formats milliseconds with a precision that suits their size: a 0.4 ms
/// process spawn and a 2.5 s Linux boot both stay readable.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Formats kibibytes as megabytes (the unit of the design's table).
pub fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(Summary::of(&[]), None);
    }

    #[test]
    fn median_and_p90_by_nearest_rank() {
        let samples: Vec<f64> = (1..=10).rev().map(f64::from).collect();
        let s = Summary::of(&samples).unwrap();
        assert_eq!(s.n, 10);
        // index round(9 * 0.5) = 5 (0-based) of 1..=10 is 6; round(8.1) = 8 is 9.
        assert_eq!(s.p50, 6.0);
        assert_eq!(s.p90, 9.0);
        let one = Summary::of(&[3.5]).unwrap();
        assert_eq!((one.p50, one.p90), (3.5, 3.5));
    }

    #[test]
    fn formats_by_magnitude() {
        assert_eq!(fmt_ms(0.456), "0.46 ms");
        assert_eq!(fmt_ms(38.44), "38.4 ms");
        assert_eq!(fmt_ms(127.6), "128 ms");
        assert_eq!(fmt_ms(2345.0), "2.35 s");
        assert_eq!(fmt_kib(44_032), "43.0 MB");
    }
}
