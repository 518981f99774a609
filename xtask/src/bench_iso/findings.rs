//! What the run's numbers mean: the goals as ratios, memory per VM and how
//! many warm VMs fit, and the description of the machine.

use std::process::Command;

use mayfly_vm::accel;

use super::report::{Goal, Machine, Report, Row};
use super::stats::{fmt_kib, fmt_ms, Summary};
use super::{
    procs, COLD, COLD_GO, COLD_RUST, COLD_RUST_MT, FLOOR, FLOOR_JAILED, FN_LINUX, FN_LINUX_GO,
    FN_LINUX_MT, LINUX, LINUX_FUNCTIONS, WARM,
};

/// Host memory per VM, as sentences.
pub fn memory_lines(m: &Machine, echo: Option<Summary>, floor: Option<Summary>) -> Vec<String> {
    let mut lines = Vec::new();
    match echo {
        Some(e) => lines.push(format!("echo invocation (`mayfly run`, 128 MB guest): QEMU peak RSS median {}, p90 {} ({} runs).", fmt_kib(e.p50 as u64), fmt_kib(e.p90 as u64), e.n)),
        None => lines.push("echo's QEMU peak RSS not measured (see the notes)".into()),
    }
    if let Some(f) = floor {
        lines.push(format!(
            "QEMU floor: peak RSS median {}, p90 {}.",
            fmt_kib(f.p50 as u64),
            fmt_kib(f.p90 as u64)
        ));
    }
    if let Some(e) = echo {
        let total = m.mem_total_kib as f64;
        lines.push(format!(
            "Warm VMs this host holds: about {:.0} (MemTotal {} / echo's peak RSS). Assumes a warm VM waiting in `GET /next` has touched about what a whole echo invocation touches (guest RAM is allocated lazily, so far less than its 128 MB), nothing is kept back for the host or the supervisor, and no KSM or overcommit limit. If every guest touched all 128 MB: about {:.0}.",
            total / e.p50,
            fmt_kib(m.mem_total_kib),
            total / (128.0 * 1024.0 + floor.map_or(e.p50, |f| f.p50))
        ));
    }
    lines
}

/// The goals, as ratios of this run's numbers.
pub fn goals(r: &Report) -> Vec<Goal> {
    let p50 = |label: &str| {
        r.rows
            .iter()
            .find(|row| row.label == label)
            .and_then(Row::p50)
    };
    let mut goals = Vec::new();
    let (cold, floor, warm, linux) = (p50(COLD), p50(FLOOR), p50(WARM), p50(LINUX));
    goals.push(match (cold, floor) {
        (Some(c), Some(f)) => Goal {
            what: "API cold invoke p50 ≤ 1.5× the QEMU floor".into(),
            measured: format!("{:.2}× ({} vs {})", c / f, fmt_ms(c), fmt_ms(f)),
            met: Some(c / f <= 1.5),
        },
        _ => Goal {
            what: "API cold invoke p50 ≤ 1.5× the QEMU floor".into(),
            measured: "a row is missing".into(),
            met: None,
        },
    });
    goals.push(match (p50(FLOOR_JAILED), floor) {
        (Some(j), Some(f)) => Goal {
            what: "the jail adds < 5 ms to a cold start (jailed floor p50 − floor p50)".into(),
            measured: format!("{:+.1} ms ({} vs {})", j - f, fmt_ms(j), fmt_ms(f)),
            met: Some(j - f < 5.0),
        },
        _ => Goal {
            what: "the jail adds < 5 ms to a cold start (jailed floor p50 − floor p50)".into(),
            measured: "a row is missing".into(),
            met: None,
        },
    });
    goals.push(match warm {
        Some(w) => Goal {
            what: "warm invoke p50 ≤ 5 ms".into(),
            measured: fmt_ms(w),
            met: Some(w <= 5.0),
        },
        None => Goal {
            what: "warm invoke p50 ≤ 5 ms".into(),
            measured: "warm row not measured".into(),
            met: None,
        },
    });
    let levels: Vec<(usize, f64)> = r
        .throughput
        .iter()
        .filter_map(|t| match (&t.api, &t.floor) {
            (Ok(a), Ok(f)) => Some((t.clients, a.per_s / f.per_s)),
            _ => None,
        })
        .collect();
    goals.push(Goal {
        what: "cold throughput ≥ 0.8× the empty-VM boot rate at the same concurrency".into(),
        measured: if levels.is_empty() {
            "not measured".into()
        } else {
            levels
                .iter()
                .map(|(n, x)| format!("{n} client{}: {x:.2}×", if *n == 1 { "" } else { "s" }))
                .collect::<Vec<_>>()
                .join(", ")
        },
        met: (!levels.is_empty())
            .then(|| levels.iter().all(|(_, x)| *x >= 0.8) && levels.len() == r.throughput.len()),
    });
    goals.push(match (linux, cold) {
        (Some(l), Some(c)) => Goal {
            what: "Linux microVM ≥ 50× slower than Mayfly cold (API)".into(),
            measured: format!("{:.0}× ({} vs {})", l / c, fmt_ms(l), fmt_ms(c)),
            met: Some(l / c >= 50.0),
        },
        _ => Goal {
            what: "Linux microVM ≥ 50× slower than Mayfly cold (API)".into(),
            measured: "a row is missing".into(),
            met: None,
        },
    });
    for (name, label, _) in LINUX_FUNCTIONS {
        let what = format!("Linux-function cold invoke ({name}) p50 ≤ 2× the native echo's");
        goals.push(match (p50(label), cold) {
            (Some(l), Some(c)) => Goal {
                what,
                measured: format!("{:.2}× ({} vs {})", l / c, fmt_ms(l), fmt_ms(c)),
                met: Some(l / c <= 2.0),
            },
            _ => Goal {
                what,
                measured: "a row is missing".into(),
                met: None,
            },
        });
    }
    for (name, cold, linux) in [
        ("rust-echo", COLD_RUST, FN_LINUX),
        ("rust-echo-mt", COLD_RUST_MT, FN_LINUX_MT),
        ("go-echo", COLD_GO, FN_LINUX_GO),
    ] {
        let what = format!(
            "Linux-function cold invoke ({name}) ≥ 20× faster than the same binary in the Linux microVM"
        );
        goals.push(match (p50(cold), p50(linux)) {
            (Some(c), Some(l)) => Goal {
                what,
                measured: format!("{:.1}× ({} vs {})", l / c, fmt_ms(c), fmt_ms(l)),
                met: Some(l / c >= 20.0),
            },
            _ => Goal {
                what,
                measured: "a row is missing".into(),
                met: None,
            },
        });
    }
    if let Some(wc) = &r.word_count {
        goals.push(wc.goal());
    }
    goals
}

/// What the report says about this machine.
pub fn machine(qemu: &procs::Qemu, choice: &accel::Choice) -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu: cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into()),
        mem_total_kib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0),
        qemu: Command::new(&qemu.binary)
            .arg("-version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "QEMU version unknown".into()),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        accel: choice.accel.to_string(),
        accel_reason: choice.reason.clone(),
    }
}
