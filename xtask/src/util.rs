//! Paths and process helpers shared by the tasks.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// `target/images`, where built images go.
pub fn images_dir() -> PathBuf {
    root().join("target").join("images")
}

/// The cargo that runs us, so that the toolchain stays the same.
pub fn cargo_command() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs cargo in the workspace root and fails if it does.
pub fn cargo(args: &[&str]) -> Result<()> {
    let status = cargo_command()
        .args(args)
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Builds the `mayfly` binary in release mode and returns its path.
pub fn build_mayfly() -> Result<PathBuf> {
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "--package",
        "mayfly",
        "--bin",
        "mayfly",
    ])?;
    Ok(root().join("target").join("release").join("mayfly"))
}

/// Median and 90th percentile of samples, in the samples' unit.
pub fn median_p90(samples: &mut [f64]) -> (f64, f64) {
    assert!(!samples.is_empty(), "no samples");
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.9))
}
