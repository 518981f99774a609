//! Invocations through the AWS CLI: RequestResponse byte for byte, the
//! log tail, DryRun, Event, the function errors, bad requests, and the
//! invocation records Mayfly keeps.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fixtures::{b64decode, write_zip};
use crate::support::{image_path, payload_json, Server};

#[test]
fn cli_invokes_sync_tail_dryrun_event_and_reports_function_errors() {
    let s = Server::start();
    s.create("inv-echo", &image_path("echo.zip"), &[]);
    s.create(
        "inv-hello",
        &image_path("hello.zip"),
        &["--environment", "Variables={GREETING=Hi}"],
    );
    s.create("inv-bad", &image_path("misbehave.zip"), &["--timeout", "1"]);

    // RequestResponse: the event byte for byte.
    let odd = r#"{ "z": [1, 2.50, "é"], "a": {} }"#;
    let (meta, out) = s.invoke("inv-echo", &["--payload", odd]);
    assert_eq!(meta["StatusCode"], 200, "{meta}");
    assert_eq!(meta["ExecutedVersion"], "$LATEST", "{meta}");
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    assert_eq!(String::from_utf8_lossy(&out), odd);

    // No payload reaches the function as {}.
    let (meta, out) = s.invoke("inv-echo", &[]);
    assert_eq!(meta["StatusCode"], 200, "{meta}");
    assert_eq!(payload_json(&out), json!({}));

    // Environment.
    let (_, out) = s.invoke("inv-hello", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Hi, Ada!"}));

    // Tail: the last 4 KB of the log, base64, with Lambda's lines.
    let (meta, out) = s.invoke(
        "inv-echo",
        &["--payload", r#"{"t":1}"#, "--log-type", "Tail"],
    );
    assert_eq!(payload_json(&out), json!({"t": 1}));
    let log = b64decode(
        meta["LogResult"]
            .as_str()
            .unwrap_or_else(|| panic!("no LogResult: {meta}")),
    );
    assert!(log.len() <= 4096, "LogResult is {} bytes", log.len());
    let log = String::from_utf8_lossy(&log).into_owned();
    let start = log
        .lines()
        .find(|l| l.starts_with("START RequestId: "))
        .unwrap_or_else(|| panic!("{log}"));
    let id = start["START RequestId: ".len()..]
        .split_whitespace()
        .next()
        .unwrap();
    assert!(start.contains("Version: $LATEST"), "{log}");
    assert!(log.contains(&format!("END RequestId: {id}")), "{log}");
    let report = log
        .lines()
        .find(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
        .unwrap_or_else(|| panic!("{log}"));
    for field in [
        "Duration: ",
        "Billed Duration: ",
        "Memory Size: 128 MB",
        "Max Memory Used: ",
    ] {
        assert!(report.contains(field), "{field:?} missing in {report}");
    }

    // DryRun: 204, nothing runs.
    let before = s.invocations("inv-echo", 50).len();
    let (meta, out) = s.invoke(
        "inv-echo",
        &["--invocation-type", "DryRun", "--payload", r#"{"dry":1}"#],
    );
    assert_eq!(meta["StatusCode"], 204, "{meta}");
    assert!(out.is_empty(), "{out:?}");
    s.invoke_raw("inv-missing", &["--invocation-type", "DryRun"])
        .0
        .fails_with("ResourceNotFoundException");

    // Event: 202 at once, and the event runs in the background.
    let (meta, out) = s.invoke(
        "inv-echo",
        &["--invocation-type", "Event", "--payload", r#"{"bg":1}"#],
    );
    assert_eq!(meta["StatusCode"], 202, "{meta}");
    assert!(out.is_empty(), "{out:?}");
    let rec = s.wait_for_invocation("inv-echo", Duration::from_secs(15), |r| {
        r["invocationType"] == "Event" && r["status"] != "queued" && r["status"] != "running"
    });
    assert_eq!(rec["status"], "success", "{rec}");
    assert_eq!(
        s.invocations("inv-echo", 50).len(),
        before + 1,
        "DryRun is not an invocation"
    );

    // Function errors: 200 with FunctionError and the error JSON.
    let cases: &[(&str, &str)] = &[
        ("error", "MisbehaveError"),
        ("panic", "Runtime.Panic"),
        ("oom", "Runtime.OutOfMemory"),
        ("loop", "Sandbox.Timedout"),
    ];
    for (mode, error_type) in cases {
        let (meta, out) = s.invoke(
            "inv-bad",
            &["--payload", &format!(r#"{{"mode":"{mode}"}}"#)],
        );
        assert_eq!(meta["StatusCode"], 200, "{mode}: {meta}");
        assert_eq!(meta["FunctionError"], "Unhandled", "{mode}: {meta}");
        let err = payload_json(&out);
        assert_eq!(err["errorType"], *error_type, "{mode}: {err}");
        assert!(err["errorMessage"].as_str().is_some(), "{mode}: {err}");
        if *mode == "loop" {
            assert_eq!(
                err["errorMessage"], "Task timed out after 1.00 seconds",
                "{err}"
            );
        }
    }
    // Nothing survives from one invocation to the next.
    for _ in 0..2 {
        let (_, out) = s.invoke("inv-bad", &["--payload", r#"{"mode":"state"}"#]);
        assert_eq!(payload_json(&out), json!({"invocations_seen": 1}));
    }

    // A VM that powers off without answering.
    let floor_zip = s.tmp().join("floor.zip");
    write_zip(
        &floor_zip,
        &[(
            "bootstrap",
            &std::fs::read(image_path("floor.elf")).unwrap(),
        )],
    );
    s.create("inv-floor", &floor_zip, &[]);
    let (meta, out) = s.invoke("inv-floor", &[]);
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}");
    assert_eq!(payload_json(&out)["errorType"], "Runtime.ExitError");

    // Bad requests.
    let (cli, _) = s.invoke_raw("inv-echo", &["--payload", "this is not json"]);
    cli.fails_with("InvalidRequestContentException");
    let big = s.tmp().join("big.json");
    std::fs::write(
        &big,
        format!("{{\"x\":\"{}\"}}", "y".repeat(6 * 1024 * 1024 + 10)),
    )
    .unwrap();
    let (cli, _) = s.invoke_raw(
        "inv-echo",
        &["--payload", &format!("fileb://{}", big.display())],
    );
    cli.fails_with("RequestEntityTooLargeException");
    s.invoke_raw("inv-missing", &[])
        .0
        .fails_with("ResourceNotFoundException");
    s.invoke_raw("inv-echo", &["--qualifier", "7"])
        .0
        .fails_with("ResourceNotFoundException");

    // The invocation records.
    let records = s.invocations("inv-bad", 50);
    let timeout = records
        .iter()
        .find(|r| r["errorType"] == "Sandbox.Timedout")
        .unwrap_or_else(|| panic!("no timed-out record: {records:?}"));
    assert_eq!(timeout["status"], "timeout", "{timeout}");
    let records = s.invocations("inv-echo", 2);
    assert_eq!(records.len(), 2, "Limit=2: {records:?}");
    let newest = &records[0];
    assert!(
        not_older(&records[0]["startedAt"], &records[1]["startedAt"]),
        "newest first: {records:?}"
    );
    for field in [
        "requestId",
        "version",
        "invocationType",
        "status",
        "startedAt",
        "durationMs",
        "billedDurationMs",
        "memorySizeMb",
        "maxMemoryUsedMb",
        "log",
    ] {
        assert!(
            newest.get(field).is_some_and(|v| !v.is_null()),
            "{field} missing: {newest}"
        );
    }
    assert!(
        newest.get("initDurationMs").is_some(),
        "initDurationMs (may be null) missing: {newest}"
    );
    let sync = s
        .invocations("inv-echo", 50)
        .into_iter()
        .find(|r| r["invocationType"] == "RequestResponse")
        .unwrap();
    assert_eq!(sync["status"], "success", "{sync}");
    assert_eq!(sync["version"], "$LATEST", "{sync}");
    assert_eq!(sync["memorySizeMb"], 128, "{sync}");
    let d = sync["durationMs"].as_f64().unwrap();
    let b = sync["billedDurationMs"].as_f64().unwrap();
    assert_eq!(
        b,
        d.ceil().max(1.0),
        "billed = duration rounded up to 1 ms: {sync}"
    );
    s.assert_no_qemu();
}

/// `a` is not older than `b` (timestamps as RFC 3339 text or numbers).
fn not_older(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a >= b,
        (Value::Number(a), Value::Number(b)) => a.as_f64() >= b.as_f64(),
        _ => panic!("startedAt is neither text nor a number: {a} {b}"),
    }
}
