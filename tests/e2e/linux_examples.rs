//! The example Linux functions of `examples/linux/`, as `cargo xtask images`
//! builds them (`target/images/{rust-echo,c-echo,c-probe,rust-probe}` and
//! their zips), deployed and invoked through the real API and run with
//! `mayfly exec`: programs written against Linux and Lambda's Runtime API,
//! not for Mayfly, on the generic `linux.elf` kernel.
//!
//! `linux.rs` covers deploy-time detection, Lambda's environment, exits and
//! faults of a Rust test program it compiles itself; this module covers what
//! the examples show: the official `lambda_runtime` echo and a C echo on
//! plain sockets answering the AWS CLI and boto3 (with a ~100 KB event),
//! ENOSYS reporting, faults and exits before the first event, fresh
//! randomness per VM, `/tmp` bounded by `EphemeralStorage`, running out of
//! memory, and `mayfly exec` of the bare binaries.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::command::mayfly;
use crate::support::fixtures::b64decode;
use crate::support::process::assert_no_qemu_for;
use crate::support::{payload_json, root, Server};

/// `target/images/<file>`, built by `cargo xtask images`; a missing one
/// fails the test (never skips it).
pub(crate) fn example(file: &str) -> PathBuf {
    let path = root().join("target").join("images").join(file);
    assert!(
        path.exists(),
        "{} is missing: run cargo xtask images (it builds the Linux examples)",
        path.display()
    );
    path
}

/// An event of about 100 KB (JSON, with nested values and non-ASCII text).
fn big_event() -> Value {
    let chunk: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let items: Vec<Value> = (0..100)
        .map(|i| json!({"i": i, "text": format!("{i}:{chunk}")}))
        .collect();
    let event = json!({"kind": "big", "é": "ünïcode ✓", "items": items});
    let len = event.to_string().len();
    assert!((100_000..120_000).contains(&len), "{len}");
    event
}

/// The decoded `LogResult` (`--log-type Tail`) of an invoke's answer.
fn log_tail(meta: &Value) -> String {
    let log = b64decode(
        meta["LogResult"]
            .as_str()
            .unwrap_or_else(|| panic!("no LogResult: {meta}")),
    );
    assert!(log.len() <= 4096, "LogResult is {} bytes", log.len());
    String::from_utf8_lossy(&log).into_owned()
}

/// Asserts that `log` has START, END and REPORT lines of one request id.
fn assert_framed(log: &str) {
    let start = log
        .lines()
        .find(|l| l.starts_with("START RequestId: "))
        .unwrap_or_else(|| panic!("no START line:\n{log}"));
    let id = start["START RequestId: ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with(&format!("END RequestId: {id}"))),
        "no END line for {id}:\n{log}"
    );
    let report = log
        .lines()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
        .unwrap_or_else(|| panic!("no REPORT line for {id}:\n{log}"));
    for field in [
        "Duration: ",
        "Billed Duration: ",
        "Memory Size: ",
        "Max Memory Used: ",
    ] {
        assert!(report.contains(field), "{field:?} missing in {report}");
    }
}

/// The boto3 side: optionally creates FUNCTION from ZIP, then invokes it
/// with each of KINDS (`small`: a few values, non-ASCII text; `big`: about
/// 100 KB), LogType Tail, and checks that the answer is the event and the
/// log is framed.
const BOTO3_ECHO: &str = r#"
import base64, json, os, sys
sys.path.insert(0, os.environ["MAYFLY_API_DIR"])
from mayfly_test import client, ROLE, RUNTIME

name, zip_path, create, kinds = sys.argv[1], sys.argv[2], sys.argv[3] == "create", sys.argv[4].split(",")
c = client()
if create:
    with open(zip_path, "rb") as f:
        code = f.read()
    made = c.create_function(FunctionName=name, Runtime=RUNTIME, Handler="bootstrap",
                             Role=ROLE, Code={"ZipFile": code}, MemorySize=128)
    assert made["Runtime"] == RUNTIME, made
    print("boto3 create_function", name, "ok")

chunk = "".join(chr(ord("a") + i % 26) for i in range(1000))
events = {
    "small": {"via": "boto3", "n": [1, 2.5, None, True], "nested": {"s": "é ✓"}},
    "big": {"kind": "big", "items": [{"i": i, "text": f"{i}:{chunk}"} for i in range(100)]},
}
events = [events[k] for k in kinds]
for event in events:
    body = json.dumps(event)
    r = c.invoke(FunctionName=name, Payload=body, LogType="Tail")
    assert r["StatusCode"] == 200, r
    assert "FunctionError" not in r, (r, r["Payload"].read())
    got = json.loads(r["Payload"].read())
    assert got == event, f"answer differs from the {len(body)}-byte event"
    log = base64.b64decode(r["LogResult"]).decode("utf-8", "replace")
    lines = log.splitlines()
    start = [l for l in lines if l.startswith("START RequestId: ")]
    assert start, log
    rid = start[0].split()[2]
    assert any(l.startswith("END RequestId: " + rid) for l in lines), log
    assert any(l.startswith("REPORT RequestId: " + rid) for l in lines), log
    print(f"boto3 invoke of {name} with a {len(body)}-byte event: ok")
"#;

/// Runs [`BOTO3_ECHO`] against `s` with the events `kinds` (`small,big`).
fn boto3_echo(s: &Server, name: &str, zip: &Path, create: bool, kinds: &str) {
    let script = s.tmp().join("linux_examples_boto3_echo.py");
    std::fs::write(&script, BOTO3_ECHO).unwrap();
    let out = s
        .python_command(script.to_str().unwrap())
        .env("MAYFLY_API_DIR", root().join("tests").join("api"))
        .args([
            name,
            zip.to_str().unwrap(),
            if create { "create" } else { "-" },
            kinds,
        ])
        .output()
        .expect("run python3.11");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boto3 echo check of {name} failed ({}):\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
        out.status
    );
}

#[test]
fn rust_echo_on_lambda_runtime_answers_the_aws_cli_and_boto3_with_the_event() {
    let zip = example("rust-echo.zip");
    let s = Server::start();
    let created = s.create("rust-echo", &zip, &[]);
    assert_eq!(created["Runtime"], "provided.al2023", "{created}");
    let event = json!({"hello": "lambda_runtime", "n": [1, 2, 3], "é": "✓"});
    let (meta, payload) = s.invoke(
        "rust-echo",
        &["--payload", &event.to_string(), "--log-type", "Tail"],
    );
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    assert_eq!(payload_json(&payload), event);
    assert_framed(&log_tail(&meta));
    boto3_echo(&s, "rust-echo", &zip, false, "small");
    s.assert_no_qemu();
}

/// An answer larger than 64 KiB: `lambda_runtime` (tokio, non-blocking
/// sockets, epoll) posts it in more than one write.
#[test]
fn rust_echo_on_lambda_runtime_answers_a_100_kb_event_through_the_aws_cli_and_boto3() {
    let zip = example("rust-echo.zip");
    let s = Server::start();
    s.create("rust-echo-big", &zip, &[]);
    // From a file: an argument that long is close to Linux's limit.
    let big = big_event();
    let file = s.tmp().join("big-event.json");
    std::fs::write(&file, big.to_string()).unwrap();
    let (meta, payload) = s.invoke(
        "rust-echo-big",
        &[
            "--payload",
            &format!("fileb://{}", file.display()),
            "--log-type",
            "Tail",
        ],
    );
    assert!(
        meta.get("FunctionError").is_none(),
        "{meta}\n{}\n{}",
        String::from_utf8_lossy(&payload),
        log_tail(&meta)
    );
    assert_eq!(payload_json(&payload), big, "the 100 KB answer differs");
    assert_framed(&log_tail(&meta));
    boto3_echo(&s, "rust-echo-big", &zip, false, "big");
    s.assert_no_qemu();
}

#[test]
fn c_echo_on_plain_sockets_deployed_and_invoked_with_boto3_answers_the_event() {
    let zip = example("c-echo.zip");
    let s = Server::start();
    boto3_echo(&s, "c-echo", &zip, true, "small,big");
    s.assert_no_qemu();
}

/// Creates `name` from `c-probe.zip` with the given environment variables
/// (`K=V,...`) and more `create-function` arguments.
fn create_probe(s: &Server, name: &str, env: &str, extra: &[&str]) {
    let variables = format!("Variables={{{env}}}");
    let mut args = vec!["--environment", &variables];
    args.extend_from_slice(extra);
    s.create(name, &example("c-probe.zip"), &args);
}

/// Invokes `name` with `{}` and Tail; returns the CLI's answer, the payload
/// and the log tail.
fn invoke_tail(s: &Server, name: &str) -> (Value, Value, String) {
    let (meta, payload) = s.invoke(name, &["--payload", "{}", "--log-type", "Tail"]);
    let log = log_tail(&meta);
    (meta, payload_json(&payload), log)
}

/// The `output` of c-probe's answer `{"mode":...,"output":...}`.
fn probe_output(mode: &str, meta: &Value, answer: &Value, log: &str) -> String {
    assert!(
        meta.get("FunctionError").is_none(),
        "{mode}: {meta}\n{answer}\n{log}"
    );
    assert_eq!(answer["mode"], mode, "{answer}");
    answer["output"]
        .as_str()
        .unwrap_or_else(|| panic!("no output: {answer}"))
        .to_string()
}

#[test]
fn c_probe_unsupported_syscall_is_named_once_in_the_log_and_the_program_goes_on() {
    let s = Server::start();
    create_probe(&s, "probe-enosys", "PROBE_MODE=enosys", &[]);
    let (meta, answer, log) = invoke_tail(&s, "probe-enosys");
    let output = probe_output("enosys", &meta, &answer, &log);
    assert_eq!(
        output,
        "io_uring_setup: -1 ENOSYS\nio_uring_setup again: -1 ENOSYS\nsyscall 500: -1 ENOSYS\nstill running\n",
        "{log}"
    );
    // Made twice, named once; the raw number without a name as `unknown`.
    assert_eq!(
        log.matches("mayfly: unsupported syscall io_uring_setup (425)")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("mayfly: unsupported syscall unknown (500)")
            .count(),
        1,
        "{log}"
    );
    assert_framed(&log);
    s.assert_no_qemu();
}

#[test]
fn c_probe_fault_illegal_instruction_and_exit_before_the_first_event_are_runtime_exit_errors() {
    let s = Server::start();
    let cases = [
        (
            "probe-segv",
            "PROBE_MODE=segv",
            "Runtime exited with error: signal: segmentation fault",
            "segv: writing through NULL",
        ),
        (
            "probe-ill",
            "PROBE_MODE=ill",
            "Runtime exited with error: signal: illegal instruction",
            "ill: executing ud2",
        ),
        (
            "probe-exit",
            "PROBE_MODE=exit,PROBE_STATUS=3",
            "Runtime exited with error: exit status 3",
            "exit: 3",
        ),
    ];
    for (name, env, message, printed) in cases {
        create_probe(&s, name, env, &[]);
        let (meta, error, log) = invoke_tail(&s, name);
        assert_eq!(meta["StatusCode"], 200, "{name}: {meta}");
        assert_eq!(meta["FunctionError"], "Unhandled", "{name}: {meta}\n{log}");
        assert_eq!(error["errorType"], "Runtime.ExitError", "{name}: {error}");
        assert_eq!(error["errorMessage"], message, "{name}: {error}\n{log}");
        // What it printed before it ended is in its log.
        assert!(log.contains(printed), "{name}: {log}");
    }
    s.assert_no_qemu();
}

/// The hex of `label HEX` in c-probe's random output.
fn random_field<'a>(output: &'a str, label: &str) -> &'a str {
    let hex = output
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label} line: {output}"));
    assert_eq!(hex.len(), 32, "{label}: {hex}");
    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()), "{label}: {hex}");
    assert_ne!(hex, "0".repeat(32), "{label} is all zero: {output}");
    hex
}

#[test]
fn c_probe_sees_fresh_randomness_in_every_vm() {
    let s = Server::start();
    create_probe(&s, "probe-random", "PROBE_MODE=random", &[]);
    let outputs: Vec<String> = (0..2)
        .map(|_| {
            let (meta, answer, log) = invoke_tail(&s, "probe-random");
            probe_output("random", &meta, &answer, &log)
        })
        .collect();
    for label in ["at_random", "getrandom", "urandom"] {
        let first = random_field(&outputs[0], label);
        let second = random_field(&outputs[1], label);
        assert_ne!(first, second, "{label} repeats across two VMs: {outputs:?}");
    }
    // Nor do the three sources repeat each other within one VM.
    for output in &outputs {
        let a = random_field(output, "at_random");
        let g = random_field(output, "getrandom");
        let u = random_field(output, "urandom");
        assert!(a != g && g != u && a != u, "{output}");
    }
    s.assert_no_qemu();
}

#[test]
fn tmp_holds_exactly_the_ephemeral_storage_then_enospc() {
    let s = Server::start();
    create_probe(
        &s,
        "probe-tmpfill",
        "PROBE_MODE=tmpfill",
        &[
            "--ephemeral-storage",
            "Size=512",
            "--memory-size",
            "1024",
            "--timeout",
            "60",
        ],
    );
    let started = std::time::Instant::now();
    let (meta, answer, log) = invoke_tail(&s, "probe-tmpfill");
    println!(
        "tmpfill of 512 MB /tmp in a 1024 MB function: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let output = probe_output("tmpfill", &meta, &answer, &log);
    assert_eq!(output, "wrote 536870912 ENOSPC\n", "{log}");
    s.assert_no_qemu();
}

#[test]
fn tmp_of_a_128_mb_function_runs_out_gracefully() {
    let s = Server::start();
    // /tmp may hold 512 MB, but the VM has 128 MB: writing runs out first.
    create_probe(
        &s,
        "probe-tmpfill-small",
        "PROBE_MODE=tmpfill",
        &["--memory-size", "128", "--timeout", "30"],
    );
    let (meta, answer, log) = invoke_tail(&s, "probe-tmpfill-small");
    let output = probe_output("tmpfill", &meta, &answer, &log);
    let (bytes, errno) = output
        .trim_end()
        .strip_prefix("wrote ")
        .and_then(|rest| rest.split_once(' '))
        .unwrap_or_else(|| panic!("{output}"));
    let bytes: u64 = bytes.parse().unwrap_or_else(|_| panic!("{output}"));
    assert!(errno == "ENOSPC" || errno == "ENOMEM", "{output}\n{log}");
    assert!(
        (16 << 20..128 << 20).contains(&bytes),
        "wrote {bytes} bytes in a 128 MB VM: {output}"
    );
    assert!(!log.contains("mayfly: out of memory"), "{log}");
    s.assert_no_qemu();
}

#[test]
fn a_linux_function_that_touches_more_than_its_memory_is_runtime_out_of_memory() {
    let s = Server::start();
    create_probe(
        &s,
        "probe-eatmem",
        "PROBE_MODE=eatmem",
        &["--memory-size", "128", "--timeout", "30"],
    );
    let (meta, error, log) = invoke_tail(&s, "probe-eatmem");
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}\n{log}");
    assert_eq!(error["errorType"], "Runtime.OutOfMemory", "{error}\n{log}");
    assert!(error["errorMessage"].as_str().is_some(), "{error}");
    assert!(log.contains("eatmem: 64 MiB"), "{log}");
    assert!(!log.contains("malloc failed"), "{log}");
    assert_framed(&log);
    // It touched at least 64 MiB, as the REPORT line says (Lambda's says
    // the whole 128 MB after an out-of-memory end).
    let used: u64 = log
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|rest| rest.split(" MB").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no Max Memory Used: {log}"));
    assert!(
        used >= 64,
        "Max Memory Used: {used} MB after touching 64 MiB:\n{log}"
    );
    s.assert_no_qemu();
}

/// FNV-1a, 64 bits, as rust-probe prints it.
fn fnv1a64(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[test]
fn mayfly_exec_of_rust_probe_lists_its_dir_writes_tmp_and_exits_with_its_status() {
    let program = example("rust-probe");
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<u8> = (0..70_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let files: [(&str, &[u8]); 3] = [
        ("a.txt", b"from the host\n"),
        ("data.bin", &big),
        ("sub/nested.txt", b"one level down\n"),
    ];
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let out = mayfly()
        .arg("exec")
        .arg("--dir")
        .arg(dir.path())
        .arg(&program)
        .args(["--", "--exit", "3"])
        .env("TMPDIR", dir.path())
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(r#"args: ["rust-probe", "--exit", "3"]"#),
        "{stdout}"
    );
    assert!(stdout.contains("cwd: /var/task\n"), "{stdout}");
    let listed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("file ")).collect();
    let expected: Vec<String> = files
        .iter()
        .map(|(name, bytes)| format!("file {name} {} fnv1a64={}", bytes.len(), fnv1a64(bytes)))
        .collect();
    assert_eq!(listed, expected, "{stdout}");
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    assert!(
        stdout.contains(&format!("files: 3, {total} bytes\n")),
        "{stdout}"
    );
    assert!(stdout.contains("tmp: ok ("), "{stdout}\n{stderr}");
    assert!(stdout.contains("exit: 3\n"), "{stdout}");
    assert!(!stderr.contains("rust-probe: "), "{stderr}");
    assert!(
        stderr.contains("mayfly: process exited with status 3"),
        "{stderr}"
    );
    assert_no_qemu_for(dir.path());
}

#[test]
fn mayfly_exec_of_c_probe_segv_exits_139() {
    let program = example("c-probe");
    let dir = tempfile::tempdir().unwrap();
    let out = mayfly()
        .arg("exec")
        .arg(&program)
        .arg("segv")
        .env("TMPDIR", dir.path())
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(139), "{stdout}\n{stderr}");
    assert!(stdout.contains("segv: writing through NULL"), "{stdout}");
    assert!(!stdout.contains("still alive"), "{stdout}");
    assert!(
        stderr.contains("mayfly: process killed by signal 11 (segmentation fault)"),
        "{stderr}"
    );
    assert_no_qemu_for(dir.path());
}
