//! `mayfly run` refuses bad input with a clear message and exit status 2,
//! before any VM is booted, and Ctrl-C never leaves a VM behind.

use std::time::{Duration, Instant};

use crate::support::command::{mayfly, mayfly_with};
use crate::support::fixtures::{floor_without_pvh, write_zip};
use crate::support::image;
use crate::support::process::{assert_no_qemu_for, wait_for_qemu};

fn assert_refused(args: &[&str], expected: &str) {
    let out = mayfly_with(args);
    assert_eq!(
        out.code, 2,
        "args {args:?}\nstdout: {}\nstderr: {}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(expected),
        "args {args:?}: stderr does not mention {expected:?}:\n{}",
        out.stderr
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let echo = image("echo.elf");
    let path = echo.path.to_str().unwrap();
    assert_refused(&["run", path, "--event", "{not json"], "JSON");
    assert_refused(&["run", path, "--memory", "64"], "128");
    assert_refused(&["run", path, "--memory", "10241"], "10240");
    assert_refused(&["run", path, "--timeout", "0"], "900");
    assert_refused(&["run", path, "--timeout", "901"], "900");
    assert_refused(&["run", path, "--env", "1BAD=x"], "1BAD");
    assert_refused(&["run", path, "--env", "NOEQUALS"], "KEY=VALUE");
    let big = format!("BIG={}", "x".repeat(4096));
    assert_refused(&["run", path, "--env", &big], "4096");
    assert_refused(
        &["run", path, "--event", "{}", "--event-file", "/nonexistent"],
        "",
    );
    assert_refused(
        &["run", path, "--event-file", "/nonexistent/event.json"],
        "/nonexistent/event.json",
    );
    assert_refused(&["run", path, "--accel", "warp"], "warp");
    assert_refused(&["run", "/nonexistent/image.elf"], "/nonexistent/image.elf");
}

#[test]
fn images_that_cannot_boot_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_elf = dir.path().join("text.elf");
    std::fs::write(&not_elf, "hello").unwrap();
    assert_refused(&["run", not_elf.to_str().unwrap()], "ELF");

    // A bootable x86_64 ELF but for its note, which is not the PVH entry.
    let no_pvh_path = dir.path().join("no-pvh.elf");
    std::fs::write(&no_pvh_path, floor_without_pvh()).unwrap();
    assert_refused(&["run", no_pvh_path.to_str().unwrap()], "PVH");

    let zip_path = dir.path().join("nobootstrap.zip");
    write_zip(&zip_path, &[("main", b"not a kernel")]);
    assert_refused(&["run", zip_path.to_str().unwrap()], "bootstrap");

    let garbage = dir.path().join("garbage.zip");
    std::fs::write(&garbage, b"PK\x03\x04 but not really").unwrap();
    assert_refused(&["run", garbage.to_str().unwrap()], "zip");
}

#[test]
fn ctrl_c_kills_and_reaps_the_vm() {
    let misbehave = image("misbehave.elf");
    let mut child = mayfly()
        .arg("run")
        .arg(&misbehave.path)
        .args(["--event", r#"{"mode":"loop"}"#, "--timeout", "60"])
        .env("TMPDIR", misbehave.dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the VM is up.
    wait_for_qemu(misbehave.dir(), Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Ctrl-C took {:?}",
        started.elapsed()
    );
    assert!(!status.success());
    assert_no_qemu_for(misbehave.dir());
}
