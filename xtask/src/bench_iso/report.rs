//! The benchmark's results and their Markdown rendering (pure: the
//! measuring lives in `mod.rs`, so the layout is testable).

use std::fmt::Write as _;

use super::stats::{fmt_kib, fmt_ms, Summary};

/// The machine the run was on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Logical CPUs.
    pub cores: usize,
    /// The CPU model name.
    pub cpu: String,
    /// `MemTotal`, KiB.
    pub mem_total_kib: u64,
    /// QEMU's `-version` first line.
    pub qemu: String,
    /// The host kernel release.
    pub kernel: String,
    /// The accelerator in use.
    pub accel: String,
    /// Why that accelerator.
    pub accel_reason: String,
}

/// How one latency row came out.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Measured: latency in ms, and the host peak RSS in KiB where known.
    Measured {
        /// Wall time, ms.
        ms: Summary,
        /// Peak RSS of the isolating process, KiB.
        rss_kib: Option<Summary>,
        /// A remark shown after the row (e.g. how many were warm).
        remark: Option<String>,
    },
    /// Not run, and why.
    Skipped(String),
    /// Failed, and why.
    Failed(String),
}

/// One latency row.
#[derive(Debug, Clone)]
pub struct Row {
    /// A short label (the chart's).
    pub label: &'static str,
    /// What exactly is timed (the table's).
    pub what: &'static str,
    /// The result.
    pub outcome: Outcome,
}

impl Row {
    /// The median, when measured.
    pub fn p50(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured { ms, .. } => Some(ms.p50),
            _ => None,
        }
    }
}

/// Completed operations per second at one concurrency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Operations per second over the whole window.
    pub per_s: f64,
    /// How many completed.
    pub completed: usize,
    /// Latency of each operation under that load, ms.
    pub ms: Summary,
}

/// One concurrency level of the throughput table.
#[derive(Debug, Clone)]
pub struct Throughput {
    /// Concurrent clients.
    pub clients: usize,
    /// Cold invocations through the API.
    pub api: Result<Rate, String>,
    /// Empty-VM (floor) boots.
    pub floor: Result<Rate, String>,
}

/// A goal and whether this run met it (`None`: not measured).
#[derive(Debug, Clone)]
pub struct Goal {
    /// The goal.
    pub what: String,
    /// What was measured.
    pub measured: String,
    /// Met or not.
    pub met: Option<bool>,
}

/// Everything the report shows.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Where it ran.
    pub machine: Machine,
    /// Quick or full, and the runs per row.
    pub mode: String,
    /// Latency rows, in table order.
    pub rows: Vec<Row>,
    /// Throughput by concurrency.
    pub throughput: Vec<Throughput>,
    /// Host memory per VM, as sentences.
    pub memory: Vec<String>,
    /// The CPU-bound word count at one vCPU and two, when measured.
    pub word_count: Option<super::wordcount::WordCount>,
    /// The goals.
    pub goals: Vec<Goal>,
    /// The examples' sizes, as sentences.
    pub sizes: Vec<String>,
    /// Notes: skipped rows, assumptions.
    pub notes: Vec<String>,
}

impl Report {
    /// The floor row's median.
    pub fn floor_p50(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.label == super::FLOOR)
            .and_then(Row::p50)
    }

    /// The latency table alone (what the terminal shows first).
    pub fn table(&self) -> String {
        let floor = self.floor_p50();
        let mut s = String::new();
        s.push_str("| what | runs | median | p90 | median / floor | host peak RSS |\n");
        s.push_str("|---|---|---|---|---|---|\n");
        for row in &self.rows {
            match &row.outcome {
                Outcome::Measured {
                    ms,
                    rss_kib,
                    remark,
                } => {
                    let ratio = floor.map_or("–".into(), |f| format!("{:.2}x", ms.p50 / f));
                    let rss = rss_kib.map_or("–".into(), |r| fmt_kib(r.p50 as u64));
                    let remark = remark.as_ref().map_or(String::new(), |r| format!(" ({r})"));
                    let _ = writeln!(
                        s,
                        "| {}{remark} | {} | {} | {} | {ratio} | {rss} |",
                        row.what,
                        ms.n,
                        fmt_ms(ms.p50),
                        fmt_ms(ms.p90)
                    );
                }
                Outcome::Skipped(why) => {
                    let _ = writeln!(s, "| {} | – | skipped | – | – | – |", row.what);
                    let _ = why;
                }
                Outcome::Failed(_) => {
                    let _ = writeln!(s, "| {} | – | failed | – | – | – |", row.what);
                }
            }
        }
        s
    }

    /// The throughput table.
    pub fn throughput_table(&self) -> String {
        let mut s = String::new();
        s.push_str("| concurrent clients | API cold invokes/s | empty-VM boots/s | API / boots | API latency p50 / p90 | boot p50 / p90 |\n");
        s.push_str("|---|---|---|---|---|---|\n");
        let rate = |r: &Result<Rate, String>| match r {
            Ok(r) => format!("{:.1} ({} done)", r.per_s, r.completed),
            Err(_) => "failed".into(),
        };
        let lat = |r: &Result<Rate, String>| match r {
            Ok(r) => format!("{} / {}", fmt_ms(r.ms.p50), fmt_ms(r.ms.p90)),
            Err(_) => "–".into(),
        };
        for t in &self.throughput {
            let ratio = match (&t.api, &t.floor) {
                (Ok(a), Ok(f)) if f.per_s > 0.0 => format!("{:.2}", a.per_s / f.per_s),
                _ => "–".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {ratio} | {} | {} |",
                t.clients,
                rate(&t.api),
                rate(&t.floor),
                lat(&t.api),
                lat(&t.floor)
            );
        }
        s
    }

    /// The goals as a list.
    pub fn goals_list(&self) -> String {
        let mut s = String::new();
        for g in &self.goals {
            let mark = match g.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "not measured",
            };
            let _ = writeln!(s, "- **{mark}**: {} — {}", g.what, g.measured);
        }
        s
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let m = &self.machine;
        let mut s = String::from("# Mayfly isolation-overhead benchmark\n\n");
        let _ = writeln!(
            s,
            "Machine: {} logical CPUs ({}), {:.1} GiB memory; {}; host kernel {}.  ",
            m.cores,
            m.cpu,
            m.mem_total_kib as f64 / 1024.0 / 1024.0,
            m.qemu,
            m.kernel
        );
        let _ = writeln!(s, "Accelerator: **{}** ({}).  ", m.accel, m.accel_reason);
        let _ = writeln!(s, "Mode: {}. Every row measured in this one run; the latency rows interleaved (one run of each in turn).\n", self.mode);
        s.push_str("## Latency, start to exit (or request to response)\n\n");
        s.push_str(&self.table());
        s.push_str("\n## Throughput\n\nEach client loops for a fixed time; the rate is completions over the window.\n\n");
        s.push_str(&self.throughput_table());
        if let Some(wc) = &self.word_count {
            let _ = write!(s, "\n## {}\n\n{}", super::wordcount::TITLE, wc.markdown());
        }
        s.push_str("\n## Host memory per VM\n\n");
        for line in &self.memory {
            let _ = writeln!(s, "- {line}");
        }
        s.push_str("\n## Goals (ratios measured in this run)\n\n");
        s.push_str(&self.goals_list());
        if !self.sizes.is_empty() {
            s.push_str("\n## Example sizes\n\n");
            for line in &self.sizes {
                let _ = writeln!(s, "- {line}");
            }
        }
        s.push_str("\n## Notes\n\n");
        for row in &self.rows {
            match &row.outcome {
                Outcome::Skipped(why) => {
                    let _ = writeln!(s, "- {} skipped: {why}", row.label);
                }
                Outcome::Failed(why) => {
                    let _ = writeln!(s, "- {} failed: {why}", row.label);
                }
                Outcome::Measured { .. } => {}
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "- {n}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(label: &'static str, p50: f64) -> Row {
        Row {
            label,
            what: label,
            outcome: Outcome::Measured {
                ms: Summary {
                    n: 20,
                    p50,
                    p90: p50 * 1.1,
                },
                rss_kib: Some(Summary {
                    n: 20,
                    p50: 44_032.0,
                    p90: 45_000.0,
                }),
                remark: None,
            },
        }
    }

    #[test]
    fn table_has_ratios_to_the_floor_and_marks_skips() {
        let mut r = Report::default();
        r.rows.push(measured(crate::bench_iso::FLOOR, 40.0));
        r.rows.push(measured("api cold", 60.0));
        r.rows.push(Row {
            label: "warm",
            what: "warm",
            outcome: Outcome::Skipped("no pool".into()),
        });
        let t = r.table();
        assert!(
            t.contains("| api cold | 20 | 60.0 ms | 66.0 ms | 1.50x | 43.0 MB |"),
            "{t}"
        );
        assert!(t.contains("| warm | – | skipped |"), "{t}");
        let md = r.markdown();
        assert!(md.contains("- warm skipped: no pool"), "{md}");
    }

    #[test]
    fn throughput_ratio_and_goals() {
        let rate = |per_s| Rate {
            per_s,
            completed: 10,
            ms: Summary {
                n: 10,
                p50: 50.0,
                p90: 60.0,
            },
        };
        let mut r = Report::default();
        r.throughput.push(Throughput {
            clients: 2,
            api: Ok(rate(16.0)),
            floor: Ok(rate(20.0)),
        });
        r.throughput.push(Throughput {
            clients: 4,
            api: Err("x".into()),
            floor: Ok(rate(20.0)),
        });
        let t = r.throughput_table();
        assert!(
            t.contains("| 2 | 16.0 (10 done) | 20.0 (10 done) | 0.80 |"),
            "{t}"
        );
        assert!(t.contains("| 4 | failed | 20.0 (10 done) | – |"), "{t}");
        r.goals.push(Goal {
            what: "g".into(),
            measured: "1x".into(),
            met: Some(false),
        });
        assert!(r.goals_list().contains("**NOT met**: g — 1x"));
    }
}
