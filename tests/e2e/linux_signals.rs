//! Signals: a synchronous fault goes to the program's handler (on its
//! alternate stack), with Linux's signal frame, and rt_sigreturn resumes
//! it: Go's nil-dereference panic and Rust's stack-overflow report appear
//! as on Linux.

use std::process::Command;

use crate::linux::program;
use crate::support::command::mayfly;
use crate::support::fixtures::{b64decode, write_zip};
use crate::support::{root, Server};

/// `linux_programs/go_nil` built with `CGO_ENABLED=0`.
fn go_nil() -> std::path::PathBuf {
    let out = root().join("target/e2e-linux/go_nil");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new(std::env::var("MAYFLY_GO").unwrap_or_else(|_| "go".into()))
        .current_dir(root().join("tests/e2e/linux_programs/go_nil"))
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .env("CGO_ENABLED", "0")
        .env("GOCACHE", root().join("target/e2e-linux/go-cache"))
        .env("GOFLAGS", "-mod=mod")
        .status()
        .expect("run go (cargo xtask bootstrap installs golang-go)");
    assert!(status.success(), "go build failed");
    out
}

#[test]
fn a_go_nil_dereference_is_gos_panic_in_the_log_and_a_runtime_exit_error() {
    let s = Server::start();
    let zip = s.tmp().join("go-nil.zip");
    let program = std::fs::read(go_nil()).unwrap();
    write_zip(&zip, &[("bootstrap", &program[..])]);
    s.create("go-nil", &zip, &[]);
    let (meta, payload) = s.invoke("go-nil", &["--log-type", "Tail"]);
    let log = String::from_utf8_lossy(&b64decode(meta["LogResult"].as_str().unwrap())).into_owned();
    let answer = String::from_utf8_lossy(&payload).into_owned();
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}");
    assert!(answer.contains("Runtime.ExitError"), "{answer}");
    assert!(answer.contains("exit status 2"), "{answer}");
    assert!(
        log.contains("panic: runtime error: invalid memory address or nil pointer dereference"),
        "{log}"
    );
    assert!(
        log.contains("[signal SIGSEGV: segmentation violation code=0x1 addr=0x0"),
        "{log}"
    );
    s.assert_no_qemu();
}

#[test]
fn a_rust_stack_overflow_reports_rusts_message_and_aborts() {
    let out = mayfly()
        .arg("exec")
        .arg(program("overflow"))
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("has overflowed its stack"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("fatal runtime error: stack overflow"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(128 + 6), "{stdout}\n{stderr}");
}
