//! `cargo xtask fuzz`: long, coverage-guided runs of the fuzz targets in
//! `fuzz/` (package `mayfly-fuzz`).
//!
//! The same targets run under `cargo test` as ordinary tests, replaying the
//! committed corpus and then random inputs for a second each. Here they run
//! under libFuzzer through `cargo-bolero`, which works on the stable
//! toolchain (coverage comes from `-C passes=sancov-module`; no sanitizer,
//! since those need a nightly). Each target starts from a copy of its
//! committed corpus in `target/fuzz/corpus/<target>`, so a long run never
//! floods the repository; a crash is kept in `target/fuzz/crashes/<target>`
//! and fails the task: fix it, then add the input to the committed corpus.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util;

/// The cargo-bolero release the task installs when it is missing.
const CARGO_BOLERO_VERSION: &str = "0.13.5";
/// The fuzz crate.
const PACKAGE: &str = "mayfly-fuzz";
/// The whole run, by default: the "10 minutes in all".
const DEFAULT_TOTAL: Duration = Duration::from_secs(600);

/// One target's result, from libFuzzer's final statistics.
#[derive(Debug, Default)]
struct TargetReport {
    name: String,
    executions: Option<u64>,
    coverage: Option<u64>,
    features: Option<u64>,
    corpus: usize,
    seconds: f64,
}

/// Runs every target (or the ones named) for `--seconds N` in all.
pub fn run(args: &[String]) -> Result<()> {
    let mut total = DEFAULT_TOTAL;
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().context("--seconds needs a number")?;
                total = Duration::from_secs(value.parse().context("--seconds needs a number")?);
            }
            name if !name.starts_with('-') => only.push(name.to_string()),
            other => bail!(
                "unknown argument `{other}` (usage: cargo xtask fuzz [--seconds N] [TARGET...])"
            ),
        }
    }
    let bolero = ensure_cargo_bolero()?;
    let mut targets = list_targets(&bolero)?;
    if !only.is_empty() {
        targets.retain(|t| only.iter().any(|o| t.contains(o.as_str())));
        if targets.is_empty() {
            bail!("no fuzz target matches {only:?}");
        }
    }
    let each = (total.as_secs() / targets.len() as u64).max(1);
    eprintln!(
        "xtask: fuzzing {} targets for {each} s each ({} s in all)",
        targets.len(),
        each * targets.len() as u64
    );
    let mut reports = Vec::new();
    let mut crashed = Vec::new();
    for target in &targets {
        let (report, ok) = run_target(&bolero, target, each)?;
        if !ok {
            crashed.push(target.clone());
        }
        reports.push(report);
    }
    print_summary(&reports);
    if !crashed.is_empty() {
        bail!(
            "{} target(s) crashed: {} (inputs in target/fuzz/crashes/)",
            crashed.len(),
            crashed.join(", ")
        );
    }
    Ok(())
}

/// The committed corpus of a target: where bolero's test mode replays it.
fn committed_corpus(target: &str) -> PathBuf {
    util::root()
        .join("fuzz/src/__fuzz__")
        .join(target.replace("::", "__"))
        .join("corpus")
}

fn run_target(bolero: &Path, target: &str, seconds: u64) -> Result<(TargetReport, bool)> {
    let work = util::root().join("target/fuzz");
    let dir_name = target.replace("::", "__");
    let corpus = work.join("corpus").join(&dir_name);
    let crashes = work.join("crashes").join(&dir_name);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    // Only this run's crashes count: an old one was fixed or is reported.
    let _ = std::fs::remove_dir_all(&crashes);
    std::fs::create_dir_all(&crashes)?;
    if let Ok(entries) = std::fs::read_dir(committed_corpus(target)) {
        for entry in entries.flatten() {
            let _ = std::fs::copy(entry.path(), corpus.join(entry.file_name()));
        }
    }
    eprintln!("xtask: fuzz {target} for {seconds} s");
    let started = Instant::now();
    let output = bolero_command(bolero)
        .args(["test", target, "--package", PACKAGE, "--sanitizer", "NONE"])
        .args(["-T", &format!("{seconds}s")])
        .arg("--corpus-dir")
        .arg(&corpus)
        .arg("--crashes-dir")
        .arg(&crashes)
        .arg("--engine-args=-print_final_stats=1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run cargo bolero")?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    let mut report = parse_stats(&log);
    report.name = target.to_string();
    report.seconds = started.elapsed().as_secs_f64();
    report.corpus = std::fs::read_dir(&corpus).map(|d| d.count()).unwrap_or(0);
    let found = std::fs::read_dir(&crashes).map(|d| d.count()).unwrap_or(0);
    if !output.status.success() {
        let tail: String = log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        eprintln!("{tail}");
        if found == 0 {
            bail!(
                "cargo bolero failed on {target} without a crash ({})",
                output.status
            );
        }
    }
    Ok((report, found == 0))
}

/// libFuzzer's `-print_final_stats` lines and its last status line.
fn parse_stats(log: &str) -> TargetReport {
    let mut report = TargetReport::default();
    for line in log.lines() {
        if let Some(v) = line.strip_prefix("stat::number_of_executed_units:") {
            report.executions = v.trim().parse().ok();
        }
        let mut words = line.split_whitespace();
        while let Some(word) = words.next() {
            match word {
                "cov:" => report.coverage = words.next().and_then(|v| v.parse().ok()),
                "ft:" => report.features = words.next().and_then(|v| v.parse().ok()),
                _ => {}
            }
        }
    }
    report
}

fn print_summary(reports: &[TargetReport]) {
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    println!(
        "{:<40} {:>8} {:>12} {:>8} {:>8} {:>8}",
        "target", "seconds", "executions", "cov", "features", "corpus"
    );
    for r in reports {
        println!(
            "{:<40} {:>8.0} {:>12} {:>8} {:>8} {:>8}",
            r.name,
            r.seconds,
            show(r.executions),
            show(r.coverage),
            show(r.features),
            r.corpus
        );
    }
}

/// `cargo-bolero`, installed into `target/tools` when it is not on PATH.
fn ensure_cargo_bolero() -> Result<PathBuf> {
    let on_path = Command::new("cargo-bolero")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return Ok(PathBuf::from("cargo-bolero"));
    }
    let root = util::root().join("target/tools");
    let installed = root.join("bin/cargo-bolero");
    if !installed.is_file() {
        eprintln!(
            "xtask: installing cargo-bolero {CARGO_BOLERO_VERSION} into {}",
            root.display()
        );
        util::cargo(&[
            "install",
            "cargo-bolero",
            "--version",
            CARGO_BOLERO_VERSION,
            "--locked",
            "--no-default-features",
            "--root",
            root.to_str().context("target/tools is not UTF-8")?,
        ])?;
    }
    Ok(installed)
}

/// `cargo bolero`, run directly: cargo would pass the subcommand's name
/// first, and a tool in `target/tools` is not on cargo's search path.
fn bolero_command(bolero: &Path) -> Command {
    let mut cmd = Command::new(bolero);
    cmd.arg("bolero").current_dir(util::root());
    cmd
}

/// Every target `cargo bolero list` finds in the fuzz crate.
fn list_targets(bolero: &Path) -> Result<Vec<String>> {
    let output = bolero_command(bolero)
        .args(["list", "--package", PACKAGE])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo bolero list")?;
    if !output.status.success() {
        bail!("cargo bolero list failed ({})", output.status);
    }
    let targets: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).ok()?;
            Some(value.get("test")?.as_str()?.to_string())
        })
        .collect();
    if targets.is_empty() {
        bail!("cargo bolero list found no fuzz targets in {PACKAGE}");
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_stats() {
        let log = "#4096\tpulse  cov: 310 ft: 702 corp: 40/1200b\n\
                   #9000\tDONE   cov: 321 ft: 740 corp: 44/1300b\n\
                   stat::number_of_executed_units: 9000\n";
        let r = parse_stats(log);
        assert_eq!(r.executions, Some(9000));
        assert_eq!(r.coverage, Some(321));
        assert_eq!(r.features, Some(740));
    }
}
