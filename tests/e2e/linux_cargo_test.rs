//! `cargo test` in fresh VMs: with `mayfly exec` as cargo's runner and
//! `+crt-static`, every test binary of an ordinary crate (and every doc
//! test) runs in a Mayfly VM of its own and reports as usual. Shown on this
//! repository's own `mayfly-sigv4`, whose tests use threads.

use std::process::Command;

use crate::support::root;

#[test]
fn cargo_test_of_mayfly_sigv4_passes_with_every_test_binary_in_its_own_vm() {
    let runner = format!(
        "{} exec --timeout 120 --memory 512 --dir . --",
        env!("CARGO_BIN_EXE_mayfly")
    );
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root())
        .args([
            "test",
            "-p",
            "mayfly-sigv4",
            "--target",
            "x86_64-unknown-linux-gnu",
        ])
        .arg("--target-dir")
        .arg(root().join("target").join("in-vm"))
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", runner)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env("RUSTDOCFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .expect("run cargo test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let passed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("test result: ok."))
        .collect();
    assert!(passed.len() >= 5, "{stdout}");
    assert!(!stdout.contains("FAILED"), "{stdout}");
    // Each test binary ran in a VM that ended by itself (the doc tests' VMs
    // say so too, but rustdoc keeps a passing test's output to itself).
    // Cargo runs the doc tests last: every result line but that one is a
    // test binary's.
    let binaries = stdout.matches("test result: ok.").count() - 1;
    let vms = stdout
        .matches("mayfly: process exited with status 0")
        .count()
        + stderr
            .matches("mayfly: process exited with status 0")
            .count();
    assert!(
        binaries >= 4 && vms >= binaries,
        "{vms} VMs for {binaries} test binaries\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("Doc-tests") || stdout.contains("Doc-tests"),
        "{stdout}"
    );
}
