//! Prometheus metrics, rendered in the text exposition format.
//!
//! A handful of series, labelled by function, kept in memory: invocations,
//! errors, throttles, duration and init-duration histograms, billed
//! GB-seconds, and the number of running VMs.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

/// Histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, function: &str) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "{name}_bucket{{function=\"{function}\",le=\"{bound}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{function=\"{function}\",le=\"+Inf\"}} {}",
            self.count
        );
        let _ = writeln!(out, "{name}_sum{{function=\"{function}\"}} {}", self.sum);
        let _ = writeln!(
            out,
            "{name}_count{{function=\"{function}\"}} {}",
            self.count
        );
    }
}

#[derive(Debug, Default, Clone)]
struct FunctionSeries {
    invocations: u64,
    errors: u64,
    throttles: u64,
    duration: Histogram,
    init_duration: Histogram,
    billed_gb_seconds: f64,
    egress_sent_bytes: u64,
    egress_received_bytes: u64,
}

/// A metric's name, help text and how to read it from a function's series.
type Series<T> = (&'static str, &'static str, fn(&FunctionSeries) -> T);
/// The same for a histogram, borrowed from the series.
type HistogramSeries = (
    &'static str,
    &'static str,
    for<'a> fn(&'a FunctionSeries) -> &'a Histogram,
);

/// One finished invocation, as the metrics see it.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// Whether it failed (function error, timeout, VM death).
    pub error: bool,
    /// Its duration, in seconds.
    pub duration_s: f64,
    /// Its init duration, if a boot was waited for.
    pub init_duration_s: Option<f64>,
    /// Billed milliseconds.
    pub billed_ms: u64,
    /// Configured memory.
    pub memory_mb: u32,
    /// Bytes the function sent through egress.
    pub egress_sent_bytes: u64,
    /// Bytes the function received through egress.
    pub egress_received_bytes: u64,
}

/// What became of an event a store pushed to the host (object uploads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Committed to the async queue.
    Queued,
    /// Its receipt was seen: not queued again.
    Duplicate,
    /// The push was refused (token, policy, body, function, full queue).
    Refused,
}

impl Pushed {
    const ALL: [Pushed; 3] = [Pushed::Queued, Pushed::Duplicate, Pushed::Refused];

    fn label(self) -> &'static str {
        match self {
            Pushed::Queued => "queued",
            Pushed::Duplicate => "duplicate",
            Pushed::Refused => "refused",
        }
    }
}

/// The registry.
#[derive(Debug, Default)]
pub struct Metrics {
    functions: Mutex<BTreeMap<String, FunctionSeries>>,
    running_vms: AtomicI64,
    /// By [`Pushed`]; not by function, since a refused push may name
    /// anything.
    pushed: [AtomicU64; 3],
}

impl Metrics {
    fn with(&self, function: &str, f: impl FnOnce(&mut FunctionSeries)) {
        let mut map = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        f(map.entry(function.to_string()).or_default());
    }

    /// Records a finished invocation.
    pub fn observe(&self, function: &str, o: Observation) {
        self.with(function, |s| {
            s.invocations += 1;
            if o.error {
                s.errors += 1;
            }
            s.duration.observe(o.duration_s);
            if let Some(init) = o.init_duration_s {
                s.init_duration.observe(init);
            }
            s.billed_gb_seconds += o.billed_ms as f64 / 1000.0 * f64::from(o.memory_mb) / 1024.0;
            s.egress_sent_bytes += o.egress_sent_bytes;
            s.egress_received_bytes += o.egress_received_bytes;
        });
    }

    /// Records a throttled invocation.
    pub fn throttled(&self, function: &str) {
        self.with(function, |s| s.throttles += 1);
    }

    /// Counts one pushed record (or one refused push).
    pub fn pushed(&self, outcome: Pushed) {
        self.pushed[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A VM started (`+1`) or ended (`-1`).
    pub fn running_vms_add(&self, delta: i64) {
        self.running_vms.fetch_add(delta, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let map = self
            .functions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut out = String::new();
        let counters: [Series<String>; 6] = [
            (
                "mayfly_invocations_total",
                "Invocations that ran (any outcome).",
                |s| s.invocations.to_string(),
            ),
            (
                "mayfly_errors_total",
                "Invocations that ended in an error.",
                |s| s.errors.to_string(),
            ),
            (
                "mayfly_throttles_total",
                "Invocations refused with 429.",
                |s| s.throttles.to_string(),
            ),
            (
                "mayfly_billed_gb_seconds_total",
                "Billed duration times memory, in GB-seconds.",
                |s| s.billed_gb_seconds.to_string(),
            ),
            (
                "mayfly_egress_sent_bytes_total",
                "Bytes functions sent through egress.",
                |s| s.egress_sent_bytes.to_string(),
            ),
            (
                "mayfly_egress_received_bytes_total",
                "Bytes functions received through egress.",
                |s| s.egress_received_bytes.to_string(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (function, series) in &map {
                let _ = writeln!(out, "{name}{{function=\"{function}\"}} {}", value(series));
            }
        }
        let histograms: [HistogramSeries; 2] = [
            (
                "mayfly_invocation_duration_seconds",
                "Event delivery to result.",
                |s| &s.duration,
            ),
            (
                "mayfly_init_duration_seconds",
                "VM spawn to the guest's first request.",
                |s| &s.init_duration,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (function, series) in &map {
                histogram(series).render(&mut out, name, function);
            }
        }
        let _ = writeln!(
            out,
            "# HELP mayfly_object_events_total Records pushed by object stores, by outcome \
             (a refused push counts once).\n# TYPE mayfly_object_events_total counter"
        );
        for outcome in Pushed::ALL {
            let _ = writeln!(
                out,
                "mayfly_object_events_total{{outcome=\"{}\"}} {}",
                outcome.label(),
                self.pushed[outcome as usize].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP mayfly_running_vms VMs running now.\n# TYPE mayfly_running_vms gauge\nmayfly_running_vms {}",
            self.running_vms.load(Ordering::Relaxed)
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_observed() {
        let m = Metrics::default();
        m.observe(
            "echo",
            Observation {
                error: false,
                duration_s: 0.003,
                init_duration_s: Some(0.04),
                billed_ms: 3,
                memory_mb: 1024,
                egress_sent_bytes: 10,
                egress_received_bytes: 1000,
            },
        );
        m.observe(
            "echo",
            Observation {
                error: true,
                duration_s: 2.0,
                init_duration_s: None,
                billed_ms: 2000,
                memory_mb: 1024,
                egress_sent_bytes: 5,
                egress_received_bytes: 0,
            },
        );
        m.throttled("echo");
        m.running_vms_add(1);
        m.pushed(Pushed::Queued);
        m.pushed(Pushed::Queued);
        m.pushed(Pushed::Refused);
        let text = m.render();
        assert!(
            text.contains("mayfly_object_events_total{outcome=\"queued\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("mayfly_object_events_total{outcome=\"duplicate\"} 0\n"));
        assert!(text.contains("mayfly_object_events_total{outcome=\"refused\"} 1\n"));
        assert!(
            text.contains("mayfly_invocations_total{function=\"echo\"} 2"),
            "{text}"
        );
        assert!(text.contains("mayfly_errors_total{function=\"echo\"} 1"));
        assert!(text.contains("mayfly_throttles_total{function=\"echo\"} 1"));
        assert!(text.contains(
            "mayfly_invocation_duration_seconds_bucket{function=\"echo\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "mayfly_invocation_duration_seconds_bucket{function=\"echo\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("mayfly_init_duration_seconds_count{function=\"echo\"} 1"));
        assert!(text.contains("mayfly_billed_gb_seconds_total{function=\"echo\"} 2.003"));
        assert!(text.contains("mayfly_running_vms 1"));
        assert!(text.contains("mayfly_egress_sent_bytes_total{function=\"echo\"} 15"));
        assert!(text.contains("mayfly_egress_received_bytes_total{function=\"echo\"} 1000"));
    }
}
