//! The `mayfly` binary under test, run directly: `mayfly run <image>` and
//! whatever arguments a test wants refused.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::fixtures::Image;
use super::process::assert_no_qemu_for;

/// What one `mayfly` command did.
pub struct Run {
    /// Exit status code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Wall time of the whole command.
    pub elapsed: Duration,
}

impl Run {
    /// Standard output parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    /// The `REPORT` line.
    pub fn report(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.starts_with("REPORT RequestId: "))
            .unwrap_or_else(|| panic!("no REPORT line in stderr:\n{}", self.stderr))
    }
}

/// The `mayfly` binary under test.
pub fn mayfly() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mayfly"))
}

fn finish(output: Output, started: Instant) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Runs `mayfly run <image> <args...>` and checks that it left no QEMU.
pub fn run(image: &Image, args: &[&str]) -> Run {
    let started = Instant::now();
    let output = mayfly()
        .arg("run")
        .arg(&image.path)
        .args(args)
        .env("TMPDIR", image.dir())
        .output()
        .expect("run mayfly");
    let run = finish(output, started);
    assert_no_qemu_for(image.dir());
    run
}

/// Runs `mayfly` with arbitrary arguments.
pub fn mayfly_with(args: &[&str]) -> Run {
    let started = Instant::now();
    finish(mayfly().args(args).output().expect("run mayfly"), started)
}
