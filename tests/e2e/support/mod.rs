//! Helpers shared by the end-to-end tests: they run the real `mayfly`
//! binary on the real images, so QEMU boots a real VM every time.

#![allow(dead_code)] // each test file uses its own subset

pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A built image (`cargo xtask images`), copied into a directory unique to
/// the caller, which is also the `TMPDIR` of the `mayfly` under test (so a
/// package is unpacked there too). QEMU's command line names a file in it,
/// so the test can prove afterwards that no QEMU of its own is left, even
/// while other tests run.
pub struct Image {
    dir: tempfile::TempDir,
    /// The unique copy.
    pub path: PathBuf,
}

impl Image {
    /// The directory unique to this image.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Copies `target/images/<file>` to a fresh temporary directory.
pub fn image(file: &str) -> Image {
    let source = root().join("target").join("images").join(file);
    assert!(
        source.exists(),
        "{} is missing: run `cargo xtask images` first (`cargo xtask test` builds them and runs the tests)",
        source.display()
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(file);
    std::fs::copy(&source, &path).expect("copy image");
    Image { dir, path }
}

/// What one `mayfly run` did.
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

/// Process ids of live processes whose command line mentions `needle`.
pub fn processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc") {
        let entry = entry.unwrap();
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A zombie has an empty command line: reaping is checked by the
        // supervisor's own tests, a live VM here.
        if cmdline.contains("qemu-system") && cmdline.contains(&needle) {
            found.push(pid);
        }
    }
    found
}

/// Asserts that no QEMU process names a file under `dir`, allowing a
/// moment for a process already killed to disappear.
pub fn assert_no_qemu_for(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let left = processes_mentioning(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "QEMU processes left behind in {}: {left:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
