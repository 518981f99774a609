//! Signals: a synchronous fault goes to the program's handler (on its
//! alternate stack), with Linux's signal frame, and rt_sigreturn resumes
//! it: Go's nil-dereference panic and Rust's stack-overflow report appear
//! as on Linux. Signals a program sends itself reach their handlers as on
//! Linux, so Go preempts a spinning goroutine.

use std::process::Command;

use crate::linux::program;
use crate::support::command::mayfly;
use crate::support::fixtures::{b64decode, write_zip};
use crate::support::{root, Server};

/// The Go module `linux_programs/<name>` built with `CGO_ENABLED=0`.
pub(crate) fn go_program(name: &str) -> std::path::PathBuf {
    let out = root().join("target/e2e-linux").join(name);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new(std::env::var("MAYFLY_GO").unwrap_or_else(|_| "go".into()))
        .current_dir(root().join("tests/e2e/linux_programs").join(name))
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
    let program = std::fs::read(go_program("go_nil")).unwrap();
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

/// `mayfly exec --memory MEMORY PROGRAM`'s stdout, once it exited 0.
pub(crate) fn exec_ok(memory: &str, program: &std::path::Path) -> String {
    let out = mayfly()
        .args(["exec", "--memory", memory, "--timeout", "60"])
        .arg(program)
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    stdout
}

/// The number in `line` between `prefix` and `suffix`.
fn number_in(text: &str, prefix: &str, suffix: &str) -> u64 {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in {text}"))
        + prefix.len();
    let rest = &text[start..];
    let end = rest
        .find(suffix)
        .unwrap_or_else(|| panic!("no {suffix:?} in {text}"));
    rest[..end]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number in {text}"))
}

#[test]
fn signals_sent_with_pthread_kill_reach_handlers_restart_reads_and_wait_while_blocked() {
    // 128 MB: one vCPU; 3,538 MB: two (each thread may run on either).
    for memory in ["128", "3538"] {
        let stdout = exec_ok(memory, &program("signals"));
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0], "self: 1 handler run before pthread_kill returned",
            "{stdout}"
        );
        assert!(
            lines[1].starts_with("spinner: handler ran on the spinner thread true after "),
            "{stdout}"
        );
        // Linux: under a millisecond; the next timer tick would be 4 ms.
        assert!(number_in(lines[1], "after ", " ms") < 100, "{stdout}");
        assert_eq!(
            lines[2], "blocked: 0 while blocked, 1 once unblocked",
            "{stdout}"
        );
        assert_eq!(lines[3], "restart: read returned 1 errno 0", "{stdout}");
        assert_eq!(lines[4], "no-restart: read returned -1 errno 4", "{stdout}");
        assert_eq!(
            lines[5], "ppoll: returned -1 errno 4 handler 1 early true mask restored true",
            "{stdout}"
        );
        assert_eq!(
            lines[6],
            "sigsuspend: pending shown true returned -1 errno 4 handler 1 mask restored true",
            "{stdout}"
        );
    }
}

#[test]
fn go_preempts_a_goroutine_that_spins_without_calls() {
    let stdout = exec_ok("128", &go_program("go_preempt"));
    // Linux: about 13 ms. Without asynchronous preemption main would wait
    // for the spinner's 4e9 iterations (seconds).
    let woke = number_in(&stdout, "main woke after", "ms");
    assert!(woke < 500, "{stdout}");
}
