//! The CPU-bound section: `rust-wordcount` (examples/linux/) at 1,769 MB,
//! where its VM has one vCPU, against 3,538 MB, where it has two, through
//! the API, interleaved in the same run. The function's own time (the
//! `REPORT` line's `Duration`: event delivered to response) is what is
//! compared; the round trip, which adds the boot, is shown beside it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use mayfly_vm::qemu;

use super::api::{self, Server};
use super::report::Goal;
use super::stats::{fmt_ms, Summary};

/// The section's title.
pub const TITLE: &str = "CPU-bound word count, 1,769 MB (1 vCPU) against 3,538 MB (2 vCPUs)";
/// The memory sizes compared: one vCPU's worth, and two.
pub const SIZES: [u32; 2] = [qemu::MB_PER_VCPU, 2 * qemu::MB_PER_VCPU];
/// Runs at each size (the goal is on their medians).
pub const RUNS: usize = 5;
/// The goal: the two-vCPU median at least this much faster.
pub const GOAL_SPEEDUP: f64 = 1.6;
/// Words in the event's text, and how many different ones.
const WORDS: u64 = 10_000;
const DISTINCT: u64 = 2_000;
/// How many times over the text is counted: about 1.5 s on one vCPU
/// under TCG here (1.69 s measured at 1,000), a few hundred ms with KVM.
const REPEAT: u64 = 900;

/// One memory size's runs.
#[derive(Debug, Clone)]
pub struct Size {
    /// The function's memory.
    pub memory_mb: u32,
    /// The vCPUs the host gives its VM.
    pub vcpus: u32,
    /// The runs, or why there are none.
    pub outcome: Result<Runs, String>,
}

/// What the runs at one size measured.
#[derive(Debug, Clone)]
pub struct Runs {
    /// The `REPORT` line's `Duration`, ms.
    pub duration: Summary,
    /// The invoke's round trip, ms.
    pub round_trip: Summary,
    /// The `threads` the function answered (the CPUs it saw).
    pub threads: u64,
}

/// The whole section.
#[derive(Debug, Clone)]
pub struct WordCount {
    /// Each size, in [`SIZES`]' order.
    pub sizes: Vec<Size>,
}

/// The function's name at `memory_mb`.
fn name(memory_mb: u32) -> String {
    format!("rust-wordcount-{memory_mb}")
}

/// The event: [`WORDS`] words, [`DISTINCT`] of them different, counted
/// [`REPEAT`] times over.
pub fn event() -> Vec<u8> {
    let words: Vec<String> = (0..WORDS)
        .map(|i| format!("w{}", i * 7919 % DISTINCT))
        .collect();
    serde_json::to_vec(&serde_json::json!({"text": words.join(" "), "repeat": REPEAT}))
        .expect("JSON")
}

/// Checks an answer; returns its `threads`.
fn check(body: &[u8]) -> Result<u64> {
    let answer: serde_json::Value = serde_json::from_slice(body).with_context(|| {
        format!(
            "rust-wordcount answered {:?}",
            String::from_utf8_lossy(body)
        )
    })?;
    if answer["words"] != WORDS * REPEAT || answer["distinct"] != DISTINCT {
        bail!("rust-wordcount counted wrong: {answer}");
    }
    answer["threads"]
        .as_u64()
        .with_context(|| format!("no threads in {answer}"))
}

/// One size's runs while they are taken.
struct Taking {
    memory_mb: u32,
    /// Set by the first failure (deploy or invoke): the size is not run
    /// again.
    failed: Option<String>,
    duration: Vec<f64>,
    round_trip: Vec<f64>,
    threads: u64,
}

impl Taking {
    /// One invoke: the function's Duration and the round trip (ms), and
    /// the threads it used.
    fn invoke(&self, server: &Server, event: &[u8]) -> Result<(f64, f64, u64)> {
        let (elapsed, body, log) = server.invoke_with(&name(self.memory_mb), None, event, true)?;
        let log = log.context("no log tail")?;
        let ms = api::report_duration_ms(&log)
            .with_context(|| format!("no REPORT Duration in the log tail:\n{log}"))?;
        Ok((ms, elapsed.as_secs_f64() * 1000.0, check(&body)?))
    }

    fn done(self) -> Size {
        let measured = || match (Summary::of(&self.duration), Summary::of(&self.round_trip)) {
            (Some(duration), Some(round_trip)) => Ok(Runs {
                duration,
                round_trip,
                threads: self.threads,
            }),
            _ => Err("no runs".to_string()),
        };
        Size {
            memory_mb: self.memory_mb,
            vcpus: qemu::vcpus_for(self.memory_mb, qemu::host_cpus()),
            outcome: match &self.failed {
                Some(why) => Err(why.clone()),
                None => measured(),
            },
        }
    }
}

/// Deploys rust-wordcount from `zip` at each of [`SIZES`] on `server`,
/// then invokes each [`RUNS`] times, interleaved, after one unmeasured
/// invoke each.
pub fn measure(server: &Server, zip: &Path) -> WordCount {
    let event = event();
    let mut sizes: Vec<Taking> = SIZES
        .iter()
        .map(|&memory_mb| Taking {
            memory_mb,
            failed: server
                .create_sized(&name(memory_mb), zip, memory_mb, 60)
                .err()
                .map(|e| format!("CreateFunction: {e:#}")),
            duration: Vec::new(),
            round_trip: Vec::new(),
            threads: 0,
        })
        .collect();
    for round in 0..=RUNS {
        for size in sizes.iter_mut().filter(|s| s.failed.is_none()) {
            match size.invoke(server, &event) {
                // Round 0 warms the page cache.
                Ok(_) if round == 0 => {}
                Ok((ms, round_trip, threads)) => {
                    size.duration.push(ms);
                    size.round_trip.push(round_trip);
                    size.threads = threads;
                }
                Err(e) => {
                    eprintln!(
                        "xtask: bench: word count at {} MB failed: {e:#}",
                        size.memory_mb
                    );
                    size.failed = Some(format!("{e:#}"));
                }
            }
        }
    }
    WordCount {
        sizes: sizes.into_iter().map(Taking::done).collect(),
    }
}

impl WordCount {
    /// The speedup of the second size over the first (medians of the
    /// function's own time), when both were measured.
    pub fn speedup(&self) -> Option<f64> {
        match self.sizes.as_slice() {
            [one, two] => match (&one.outcome, &two.outcome) {
                (Ok(a), Ok(b)) if b.duration.p50 > 0.0 => Some(a.duration.p50 / b.duration.p50),
                _ => None,
            },
            _ => None,
        }
    }

    /// The goal, as measured.
    pub fn goal(&self) -> Goal {
        let what = format!(
            "rust-wordcount at {} MB (2 vCPUs) ≥ {GOAL_SPEEDUP}× faster than at {} MB (median of {RUNS}, function Duration)",
            SIZES[1], SIZES[0]
        );
        match self.speedup() {
            Some(x) => Goal {
                what,
                measured: format!("{x:.2}×"),
                met: Some(x >= GOAL_SPEEDUP),
            },
            None => Goal {
                what,
                measured: "a size is missing".into(),
                met: None,
            },
        }
    }

    /// The section as Markdown: a table and the speedup.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "`rust-wordcount` through the API, cold, counting {WORDS} words ({DISTINCT} different) {REPEAT} times over; the sizes interleaved, {RUNS} runs each after one unmeasured. Duration is the REPORT line's (event delivered to response); the round trip adds the VM's boot.\n"
        );
        s.push_str(
            "| memory | vCPUs | threads it used | runs | Duration median | p90 | round trip median |\n",
        );
        s.push_str("|---|---|---|---|---|---|---|\n");
        for size in &self.sizes {
            match &size.outcome {
                Ok(r) => {
                    let _ = writeln!(
                        s,
                        "| {} MB | {} | {} | {} | {} | {} | {} |",
                        size.memory_mb,
                        size.vcpus,
                        r.threads,
                        r.duration.n,
                        fmt_ms(r.duration.p50),
                        fmt_ms(r.duration.p90),
                        fmt_ms(r.round_trip.p50)
                    );
                }
                Err(why) => {
                    let _ = writeln!(
                        s,
                        "| {} MB | {} | – | – | failed: {why} | – | – |",
                        size.memory_mb, size.vcpus
                    );
                }
            }
        }
        let goal = self.goal();
        let mark = match goal.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "\nSpeedup: {} (goal ≥ {GOAL_SPEEDUP}×: **{mark}**).",
            goal.measured
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(p50: f64, threads: u64) -> Result<Runs, String> {
        let s = |p50| Summary {
            n: 5,
            p50,
            p90: p50,
        };
        Ok(Runs {
            duration: s(p50),
            round_trip: s(p50 + 80.0),
            threads,
        })
    }

    #[test]
    fn the_event_is_what_the_check_expects() {
        let event: serde_json::Value = serde_json::from_slice(&event()).unwrap();
        let text = event["text"].as_str().unwrap();
        let words: Vec<&str> = text.split_whitespace().collect();
        assert_eq!(words.len() as u64, WORDS);
        let distinct: std::collections::HashSet<_> = words.iter().collect();
        assert_eq!(distinct.len() as u64, DISTINCT);
        assert_eq!(event["repeat"], REPEAT);
        let answer =
            serde_json::json!({"words": WORDS * REPEAT, "distinct": DISTINCT, "threads": 2});
        assert_eq!(check(answer.to_string().as_bytes()).unwrap(), 2);
        assert!(check(br#"{"words": 1, "distinct": 2000, "threads": 2}"#).is_err());
    }

    #[test]
    fn the_speedup_is_the_ratio_of_the_medians() {
        let wc = WordCount {
            sizes: vec![
                Size {
                    memory_mb: 1769,
                    vcpus: 1,
                    outcome: runs(1700.0, 1),
                },
                Size {
                    memory_mb: 3538,
                    vcpus: 2,
                    outcome: runs(900.0, 2),
                },
            ],
        };
        let x = wc.speedup().unwrap();
        assert!((x - 1700.0 / 900.0).abs() < 1e-9);
        assert_eq!(wc.goal().met, Some(true));
        let md = wc.markdown();
        assert!(
            md.contains("| 3538 MB | 2 | 2 | 5 | 900 ms | 900 ms | 980 ms |"),
            "{md}"
        );
        assert!(md.contains("Speedup: 1.89× (goal ≥ 1.6×: **met**)"), "{md}");

        let mut slow = wc.clone();
        slow.sizes[1].outcome = runs(1650.0, 1);
        assert_eq!(slow.goal().met, Some(false));
        slow.sizes[1].outcome = Err("boom".into());
        assert_eq!(slow.goal().met, None);
        assert!(slow
            .markdown()
            .contains("| 3538 MB | 2 | – | – | failed: boom |"));
    }
}
