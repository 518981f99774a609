//! `cargo xtask bench-run`: the cold-start cost of one `mayfly run` of the
//! echo image beside the QEMU floor (an ELF that powers off at once, booted
//! with the same flags), measured alternately in the same run so that both
//! see the same machine.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{bootstrap, images, util};

const DEFAULT_RUNS: usize = 20;

/// Runs the benchmark: `--runs N` changes the number of runs.
pub fn run(args: &[String]) -> Result<()> {
    let runs = match args {
        [] => DEFAULT_RUNS,
        [flag, n] if flag == "--runs" => n.parse().context("--runs takes a number")?,
        _ => bail!("usage: cargo xtask bench-run [--runs N]"),
    };
    bootstrap::ensure_qemu()?;
    let built = images::build()?;
    let mayfly = util::build_mayfly()?;
    let floor = util::images_dir().join("floor.elf");
    let echo = &built.iter().find(|i| i.name == "echo").expect("echo is built").elf;

    // One unmeasured run of each warms the page cache.
    time_once(&mayfly, &["boot"], &floor)?;
    time_once(&mayfly, &["run"], echo)?;
    let mut floor_ms = Vec::with_capacity(runs);
    let mut echo_ms = Vec::with_capacity(runs);
    for _ in 0..runs {
        floor_ms.push(time_once(&mayfly, &["boot"], &floor)?);
        echo_ms.push(time_once(&mayfly, &["run"], echo)?);
    }
    let (floor_p50, floor_p90) = util::median_p90(&mut floor_ms);
    let (echo_p50, echo_p90) = util::median_p90(&mut echo_ms);
    let accel = accel_in_use(&mayfly);
    println!("accelerator: {accel}; {runs} runs each, wall time of the whole command");
    println!("| what | median | p90 |");
    println!("|---|---|---|");
    println!("| QEMU floor (`mayfly boot floor.elf`) | {floor_p50:.1} ms | {floor_p90:.1} ms |");
    println!("| `mayfly run echo.elf` | {echo_p50:.1} ms | {echo_p90:.1} ms |");
    println!("echo / floor (median): {:.2}x (goal: at most 1.5x)", echo_p50 / floor_p50);
    for image in &built {
        let size = std::fs::metadata(&image.elf)?.len();
        println!("image {:<10} {size} bytes stripped", image.name);
    }
    Ok(())
}

/// Wall time of one command, in milliseconds; fails if the command does.
fn time_once(mayfly: &Path, args: &[&str], image: &Path) -> Result<f64> {
    let started = Instant::now();
    let out = Command::new(mayfly)
        .args(args)
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", mayfly.display()))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!(
            "`mayfly {} {}` failed: {}",
            args.join(" "),
            image.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(ms)
}

/// What `mayfly boot` reports as its accelerator choice.
fn accel_in_use(mayfly: &Path) -> String {
    Command::new(mayfly)
        .args(["accel"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
