//! vCPUs by memory, as Lambda allots them: a Linux function's VM of up to
//! 1,769 MB has one vCPU, one of 3,538 MB two (never more than the host
//! has), and threads run on all of them at once. Shown with rust-probe's
//! `--pingpong` (two threads handing a counter to each other, spinning:
//! on one CPU each handover waits for a preemption, on two they are
//! immediate) and `--tokio-threads` (which of tokio's workers ran tasks)
//! under `mayfly exec`, by Go's goroutines (`linux_programs/go_threads`),
//! and with the CPU-bound `rust-wordcount` function through the API.
//!
//! The tests at 3,538 MB need the guest kernel to bring up every vCPU it
//! is given and to report them in `sched_getaffinity`.

use std::collections::HashSet;

use serde_json::json;

use crate::linux_examples::example;
use crate::support::command::mayfly;
use crate::support::process::assert_no_qemu_for;
use crate::support::{payload_json, Server};

/// The vCPUs a VM of 3,538 MB gets here: two, unless the host has fewer.
fn two_vcpus() -> u32 {
    mayfly_vm::qemu::vcpus_for(3538, mayfly_vm::qemu::host_cpus())
}

/// `mayfly exec --memory MEMORY rust-probe -- ARGS...`: its stdout, after
/// checking that it exited 0 and left no QEMU.
fn probe(memory_mb: u32, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = mayfly()
        .arg("exec")
        .args(["--memory", &memory_mb.to_string(), "--timeout", "60"])
        .arg(example("rust-probe"))
        .arg("--")
        .args(args)
        .env("TMPDIR", dir.path())
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("exit: 0\n"), "{stdout}");
    assert!(!stderr.contains("unsupported syscall"), "{stderr}");
    assert_no_qemu_for(dir.path());
    stdout
}

/// The numbers after each of `labels` on the line of `stdout` that starts
/// with `prefix` (`pingpong rounds R cpus C`: `["rounds", "cpus"]`).
fn fields(stdout: &str, prefix: &str, labels: &[&str]) -> Vec<u64> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line: {stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    labels
        .iter()
        .map(|label| {
            let at = words
                .iter()
                .position(|w| w == label)
                .unwrap_or_else(|| panic!("no {label} in {line:?}"));
            words
                .get(at + 1)
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no number after {label} in {line:?}"))
        })
        .collect()
}

/// `--pingpong 300`: rounds and CPUs.
fn pingpong(memory_mb: u32) -> (u64, u64) {
    let stdout = probe(memory_mb, &["--pingpong", "300"]);
    let got = fields(&stdout, "pingpong ", &["rounds", "cpus"]);
    println!("{memory_mb} MB: pingpong rounds {} cpus {}", got[0], got[1]);
    (got[0], got[1])
}

#[test]
fn at_1769_mb_a_linux_program_has_one_cpu() {
    let (rounds, cpus) = pingpong(1769);
    assert_eq!(cpus, 1);
    // It ended by its deadline, having handed over at least once.
    assert!(rounds >= 1, "{rounds}");
}

#[test]
fn at_3538_mb_two_spinning_threads_run_at_once_on_two_vcpus() {
    let (rounds, cpus) = pingpong(3538);
    assert_eq!(cpus, u64::from(two_vcpus()));
    if cpus >= 2 {
        // On one CPU each handover waits for a preemption (4 ms): about
        // 75 in 300 ms. Running at once, they hand over continuously.
        assert!(rounds >= 500, "only {rounds} rounds on {cpus} CPUs");
    }
}

/// `--tokio-threads`: workers and the threads that ran tasks.
fn tokio_threads(memory_mb: u32) -> (u64, u64) {
    let stdout = probe(memory_mb, &["--tokio-threads"]);
    let got = fields(&stdout, "tokio ", &["workers", "threads-used"]);
    println!(
        "{memory_mb} MB: tokio workers {} threads-used {}",
        got[0], got[1]
    );
    (got[0], got[1])
}

#[test]
fn at_1769_mb_tokio_starts_one_worker() {
    assert_eq!(tokio_threads(1769), (1, 1));
}

#[test]
fn at_3538_mb_tokios_tasks_run_on_both_workers() {
    let (workers, used) = tokio_threads(3538);
    let want = u64::from(two_vcpus());
    assert_eq!(workers, want);
    assert!(used >= want.min(2), "{used} of {workers} workers ran tasks");
}

/// `linux_programs/go_threads` under `mayfly exec`: GOMAXPROCS and the
/// threads its busy goroutines ran on.
fn go_threads(memory_mb: u32) -> (u64, u64) {
    let program = crate::linux_signals::go_program("go_threads");
    let stdout = crate::linux_signals::exec_ok(&memory_mb.to_string(), &program);
    let got = fields(&stdout, "gomaxprocs ", &["gomaxprocs", "threads-used"]);
    (got[0], got[1])
}

#[test]
fn go_runs_its_goroutines_on_as_many_threads_as_the_vm_has_vcpus() {
    assert_eq!(go_threads(1769).0, 1);
    let want = u64::from(two_vcpus());
    let (procs, used) = go_threads(3538);
    assert_eq!(procs, want);
    assert!(
        used >= want,
        "goroutines ran on {used} threads with GOMAXPROCS {procs}"
    );
}

/// A known text: its words, and how many different ones.
fn known_text() -> (String, u64, u64) {
    let verse = "the quick brown fox jumps over the lazy dog; \
                 le cœur a ses raisons que la raison ne connaît point — ✓\n";
    let text: String = (0..400).map(|i| format!("{i} {verse}")).collect();
    let words = text.split_whitespace().count() as u64;
    let distinct = text.split_whitespace().collect::<HashSet<_>>().len() as u64;
    // 400 lines of a number and 22 words: 400 different numbers and 21
    // different words (`the` comes twice in each line).
    assert_eq!((words, distinct), (9200, 421));
    (text, words, distinct)
}

/// Deploys rust-wordcount with `memory_mb` and counts the known text 25
/// times over through the AWS CLI.
fn wordcount(memory_mb: u32) -> serde_json::Value {
    let s = Server::start();
    let name = format!("wordcount-{memory_mb}");
    s.create(
        &name,
        &example("rust-wordcount.zip"),
        &["--memory-size", &memory_mb.to_string(), "--timeout", "60"],
    );
    let (text, words, distinct) = known_text();
    let file = s.tmp().join("event.json");
    std::fs::write(&file, json!({"text": text, "repeat": 25}).to_string()).unwrap();
    let (meta, payload) = s.invoke(
        &name,
        &["--payload", &format!("fileb://{}", file.display())],
    );
    assert!(
        meta.get("FunctionError").is_none(),
        "{meta}\n{}",
        String::from_utf8_lossy(&payload)
    );
    let answer = payload_json(&payload);
    assert_eq!(answer["words"], words * 25, "{answer}");
    assert_eq!(answer["distinct"], distinct, "{answer}");
    s.assert_no_qemu();
    answer
}

#[test]
fn rust_wordcount_at_1769_mb_counts_on_one_thread() {
    assert_eq!(wordcount(1769)["threads"], 1);
}

#[test]
fn rust_wordcount_at_3538_mb_counts_on_two_threads() {
    assert_eq!(wordcount(3538)["threads"], two_vcpus());
}
