//! The main job: build everything, then run every example function once in
//! its own fresh VM and show what it answered and how long it took.

use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{bootstrap, images, util};

/// One example invocation.
struct Example {
    image: &'static str,
    event: &'static str,
    env: &'static [&'static str],
}

const EXAMPLES: &[Example] = &[
    Example {
        image: "echo",
        event: r#"{"a":1}"#,
        env: &[],
    },
    Example {
        image: "hello",
        event: r#"{"name":"Ada"}"#,
        env: &["GREETING=Hi"],
    },
    Example {
        image: "wordcount",
        event: r#"{"text":"the quick brown fox jumps over the lazy dog; the dog sleeps, the fox runs"}"#,
        env: &[],
    },
    Example {
        image: "misbehave",
        event: r#"{"mode":"state"}"#,
        env: &[],
    },
    Example {
        image: "misbehave",
        event: r#"{"mode":"error"}"#,
        env: &[],
    },
];

/// Runs the demo.
pub fn run() -> Result<()> {
    bootstrap::ensure_qemu()?;
    images::build()?;
    let mayfly = util::build_mayfly()?;
    println!();
    for example in EXAMPLES {
        let package = util::images_dir().join(format!("{}.zip", example.image));
        let mut cmd = Command::new(&mayfly);
        cmd.arg("run")
            .arg(&package)
            .args(["--event", example.event]);
        for kv in example.env {
            cmd.args(["--env", kv]);
        }
        let started = Instant::now();
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", mayfly.display()))?;
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = stderr
            .lines()
            .find(|l| l.starts_with("REPORT"))
            .unwrap_or("(no REPORT line)");
        let env = if example.env.is_empty() {
            String::new()
        } else {
            format!(" {}", example.env.join(" "))
        };
        println!(
            "$ mayfly run {}.zip --event '{}'{env}",
            example.image, example.event
        );
        println!(
            "  -> {} (exit {})",
            stdout.trim_end(),
            out.status.code().unwrap_or(-1)
        );
        println!(
            "  {:.1} ms wall; {}",
            elapsed.as_secs_f64() * 1000.0,
            report.replace('\t', "  ")
        );
    }
    Ok(())
}
