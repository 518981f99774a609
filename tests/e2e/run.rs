//! `mayfly run` end to end: every image and every `misbehave` mode boots a
//! real VM and must end exactly as specified, leaving no QEMU behind.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::command::{run, Run};
use crate::support::image;

/// The value of the `REPORT` line's field `name` (`Duration`, `Max Memory
/// Used`…), which must end with ` unit`.
fn report_field<'a>(report: &'a str, name: &str, unit: &str) -> &'a str {
    let field = report
        .split('\t')
        .map(str::trim)
        .find_map(|f| f.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {name} in {report}"));
    field
        .strip_suffix(unit)
        .and_then(|v| v.strip_suffix(' '))
        .unwrap_or_else(|| panic!("{name} is not in {unit}: {report}"))
}

fn assert_report(report: &str, memory_mb: u32) {
    // REPORT RequestId: <id>\tDuration: x ms\tBilled Duration: n ms\t...
    let fields: Vec<&str> = report.split('\t').map(str::trim).collect();
    assert!(fields[0].starts_with("REPORT RequestId: "), "{report}");
    let names: Vec<&str> = fields[1..]
        .iter()
        .map(|f| f.split_once(": ").map_or(*f, |(name, _)| name))
        .collect();
    assert!(
        names.starts_with(&[
            "Duration",
            "Billed Duration",
            "Memory Size",
            "Max Memory Used",
            "Init Duration",
        ]),
        "{report}"
    );
    let duration: f64 = report_field(report, "Duration", "ms").parse().unwrap();
    let billed: u64 = report_field(report, "Billed Duration", "ms")
        .parse()
        .unwrap();
    assert_eq!(
        report_field(report, "Memory Size", "MB"),
        memory_mb.to_string(),
        "{report}"
    );
    let used: u32 = report_field(report, "Max Memory Used", "MB")
        .parse()
        .unwrap();
    assert!(used >= 1 && used <= memory_mb, "{report}");
    report_field(report, "Init Duration", "ms");
    assert_eq!(billed, (duration.ceil() as u64).max(1), "{report}");
}

#[test]
fn echo_package_returns_its_event_byte_for_byte() {
    let echo = image("echo.zip");
    let out = run(&echo, &["--event", r#"{"a":1}"#]);
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, "{\"a\":1}\n");
    assert_report(out.report(), 128);
    let id = out.report()["REPORT RequestId: ".len()..]
        .split('\t')
        .next()
        .unwrap()
        .to_string();
    assert!(
        out.stderr
            .contains(&format!("START RequestId: {id} Version: $LATEST")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("END RequestId: {id}")),
        "{}",
        out.stderr
    );

    let odd = r#"{ "z": [1, 2.50, "é"], "a": {} }"#;
    let out = run(&echo, &["--event", odd, "--memory", "256"]);
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout.trim_end(), odd);
    assert_report(out.report(), 256);
}

#[test]
fn echo_elf_runs_and_empty_event_is_an_empty_object() {
    let echo = image("echo.elf");
    let out = run(&echo, &[]);
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout.trim_end(), "{}");
}

#[test]
fn echo_event_file_of_a_megabyte() {
    let echo = image("echo.elf");
    let big = json!({ "blob": "x".repeat(1 << 20) }).to_string();
    let file = echo.dir().join("event.json");
    std::fs::write(&file, &big).unwrap();
    let out = run(&echo, &["--event-file", file.to_str().unwrap()]);
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout.trim_end(), big);
}

#[test]
fn hello_uses_the_greeting_from_the_environment() {
    let hello = image("hello.zip");
    let out = run(
        &hello,
        &["--event", r#"{"name":"Ada"}"#, "--env", "GREETING=Hi"],
    );
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(out.json(), json!({"message": "Hi, Ada!"}));
    let out = run(&hello, &["--event", r#"{"name":"Ada"}"#]);
    assert_eq!(out.json(), json!({"message": "Hello, Ada!"}));
}

#[test]
fn wordcount_counts_and_ranks() {
    let wordcount = image("wordcount.zip");
    let text = "The cat and the hat. The end; a cat? A CAT! b c d e f g h";
    let out = run(
        &wordcount,
        &["--event", &json!({ "text": text }).to_string()],
    );
    assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
    assert_eq!(
        out.json(),
        json!({
            "total": 18,
            "top": [
                {"word": "cat", "count": 3}, {"word": "the", "count": 3},
                {"word": "a", "count": 2},
                {"word": "and", "count": 1}, {"word": "b", "count": 1}, {"word": "c", "count": 1},
                {"word": "d", "count": 1}, {"word": "e", "count": 1}, {"word": "end", "count": 1},
                {"word": "f", "count": 1}
            ]
        })
    );
}

fn misbehave(mode: &str, extra: &[&str]) -> Run {
    let image = image("misbehave.zip");
    let event = json!({ "mode": mode }).to_string();
    let mut args = vec!["--event", event.as_str()];
    args.extend_from_slice(extra);
    run(&image, &args)
}

/// Asserts that `out` failed with the error `error_type`, and returns the
/// error.
fn failed_with(out: &Run, error_type: &str) -> Value {
    assert_ne!(out.code, 0, "stderr:\n{}", out.stderr);
    let error = out.json();
    assert_eq!(
        error["errorType"], error_type,
        "{error}\nstderr:\n{}",
        out.stderr
    );
    error
}

#[test]
fn misbehave_error_is_the_functions_own_error() {
    let out = misbehave("error", &[]);
    assert_eq!(
        failed_with(&out, "MisbehaveError"),
        json!({"errorType": "MisbehaveError", "errorMessage": "failing on purpose, as asked"})
    );
    out.report();
}

#[test]
fn misbehave_panic_is_runtime_panic_with_its_message() {
    let error = failed_with(&misbehave("panic", &[]), "Runtime.Panic");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("panicking on purpose, as asked"),
        "{error}"
    );
}

#[test]
fn misbehave_loop_times_out_on_time() {
    let out = misbehave("loop", &["--timeout", "2"]);
    assert_eq!(
        failed_with(&out, "Sandbox.Timedout"),
        json!({"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 2.00 seconds"})
    );
    assert!(
        out.elapsed < Duration::from_millis(3500),
        "took {:?}",
        out.elapsed
    );
    assert!(
        out.elapsed >= Duration::from_secs(2),
        "took {:?}",
        out.elapsed
    );
}

#[test]
fn misbehave_oom_is_runtime_out_of_memory() {
    let out = misbehave("oom", &["--memory", "128"]);
    failed_with(&out, "Runtime.OutOfMemory");
    // The whole VM's memory was used, and no more.
    let used = report_field(out.report(), "Max Memory Used", "MB");
    let mb: u32 = used.parse().unwrap();
    assert!((100..=128).contains(&mb), "Max Memory Used: {used} MB");
}

#[test]
fn misbehave_spam_still_answers_and_the_log_is_capped() {
    let out = misbehave("spam", &["--timeout", "30"]);
    assert_eq!(
        out.code,
        0,
        "stderr tail:\n{}",
        &out.stderr[out.stderr.len().saturating_sub(2000)..]
    );
    assert_eq!(out.json(), json!({"spammed_bytes": 20 * 1024 * 1024}));
    assert!(
        out.stderr.len() < 4 << 20,
        "stderr is {} bytes",
        out.stderr.len()
    );
    // Nothing is lost but what the cap drops, and the marker says how much:
    // the kept lines plus the dropped bytes are all 20 MB, the last line
    // included.
    let line = "x".repeat(1023);
    let full_lines = out.stderr.lines().filter(|l| *l == line).count();
    let dropped: usize = out
        .stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("[... ")?
                .strip_suffix(" bytes dropped ...]")?
                .parse()
                .ok()
        })
        .expect("a drop marker");
    assert_eq!(
        full_lines * 1024 + dropped,
        20 * 1024 * 1024,
        "lines kept: {full_lines}"
    );
    out.report();
}

#[test]
fn misbehave_state_shows_every_vm_is_fresh() {
    for _ in 0..3 {
        let out = misbehave("state", &[]);
        assert_eq!(out.code, 0, "stderr:\n{}", out.stderr);
        assert_eq!(out.json(), json!({"invocations_seen": 1}));
    }
}

#[test]
fn misbehave_overflow_is_reported_as_a_cpu_exception() {
    let out = misbehave("overflow", &[]);
    let error = failed_with(&out, "Runtime.ExitError");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(message.contains("CPU exception: page fault"), "{message}");
    assert!(message.contains("(stack overflow)"), "{message}");
    assert!(
        out.stderr.contains("mayfly: CPU exception"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_vm_that_dies_without_answering_is_an_exit_error() {
    // The floor image powers off as its first instruction.
    let floor = image("floor.elf");
    failed_with(&run(&floor, &[]), "Runtime.ExitError");
}

/// A relative image path (as the README writes `mayfly run
/// target/images/echo.elf`) boots in the jail like an absolute one.
#[test]
fn a_relative_image_path_runs() {
    let echo = image("echo.elf");
    let started = std::time::Instant::now();
    let output = crate::support::command::mayfly()
        .current_dir(echo.dir())
        .args(["run", "echo.elf", "--event", r#"{"a":1}"#])
        .output()
        .expect("run mayfly");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stderr:\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "{\"a\":1}\n");
    assert!(started.elapsed() < Duration::from_secs(30));
    crate::support::process::assert_no_qemu_for(echo.dir());
}
