//! `mayfly serve` driven by the real AWS CLI (v1) with `--endpoint-url`:
//! every Lambda call the host supports, and the AWS error the CLI prints for
//! every bad request. Each test starts its own server on its own data
//! directory and, when it stops it, proves that no QEMU of it is left.
//!
//! Needs `aws` on PATH and the images (`cargo xtask images`).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::support::aws::{function_arn, function_names};
use crate::support::fixtures::{b64decode, code_sha256, floor_without_pvh, write_zip};
use crate::support::http::{as_refs, http, metric_sum};
use crate::support::server;
use crate::support::{image_path, payload_json, Options, Server};

#[test]
fn cli_creates_lists_updates_and_deletes_functions() {
    let s = Server::start();
    let echo = image_path("echo.zip");
    let hello = image_path("hello.zip");
    let echo_bytes = std::fs::read(&echo).unwrap();
    let hello_bytes = std::fs::read(&hello).unwrap();

    // Create: the whole FunctionConfiguration, with Lambda's defaults.
    let c = s.create("crud-a", &echo, &[]);
    assert_eq!(c["FunctionName"], "crud-a", "{c}");
    assert_eq!(c["FunctionArn"], function_arn("crud-a"), "{c}");
    assert_eq!(c["Runtime"], "provided.al2023", "{c}");
    assert_eq!(c["Handler"], "bootstrap", "{c}");
    assert_eq!(c["Role"], server::ROLE, "{c}");
    assert_eq!(c["MemorySize"], 128, "{c}");
    assert_eq!(c["Timeout"], 3, "{c}");
    assert_eq!(c["CodeSha256"], code_sha256(&echo_bytes), "{c}");
    assert_eq!(c["CodeSize"], echo_bytes.len(), "{c}");
    assert_eq!(c["Version"], "$LATEST", "{c}");
    assert_eq!(c["State"], "Active", "{c}");
    assert!(
        c["RevisionId"].as_str().is_some_and(|r| !r.is_empty()),
        "{c}"
    );
    assert!(
        c["LastModified"].as_str().is_some_and(|r| !r.is_empty()),
        "{c}"
    );

    // Creating it again is a conflict, and changes nothing.
    let again = s.aws(&[
        "create-function",
        "--function-name",
        "crud-a",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        server::ROLE,
        "--zip-file",
        &format!("fileb://{}", hello.display()),
    ]);
    again.fails_with("ResourceConflictException");

    // Get: Configuration and Code.
    let g = s.aws(&["get-function", "--function-name", "crud-a"]).ok();
    assert_eq!(g["Configuration"]["FunctionName"], "crud-a", "{g}");
    assert_eq!(
        g["Configuration"]["CodeSha256"],
        code_sha256(&echo_bytes),
        "{g}"
    );
    assert!(g["Code"].is_object(), "GetFunction has a Code object: {g}");
    let gc = s
        .aws(&["get-function-configuration", "--function-name", "crud-a"])
        .ok();
    assert_eq!(gc["FunctionArn"], function_arn("crud-a"), "{gc}");
    assert_eq!(gc["RevisionId"], c["RevisionId"], "{gc}");
    // By ARN too.
    let by_arn = s
        .aws(&[
            "get-function-configuration",
            "--function-name",
            &function_arn("crud-a"),
        ])
        .ok();
    assert_eq!(by_arn["FunctionName"], "crud-a", "{by_arn}");

    // Five functions in all, listed whole and in pages.
    for n in ["crud-b", "crud-c", "crud-d", "crud-e"] {
        s.create(n, &echo, &[]);
    }
    let expected: BTreeSet<String> = ["crud-a", "crud-b", "crud-c", "crud-d", "crud-e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let all = s.aws(&["list-functions"]).ok();
    assert_eq!(
        function_names(&all).into_iter().collect::<BTreeSet<_>>(),
        expected,
        "{all}"
    );

    // Server-side pages of 2 (MaxItems=2, the CLI follows NextMarker).
    let paged = s.aws(&["list-functions", "--page-size", "2"]).ok();
    let paged_names = function_names(&paged);
    assert_eq!(paged_names.len(), 5, "each function exactly once: {paged}");
    assert_eq!(
        paged_names.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{paged}"
    );

    // The CLI's own pagination: --max-items 2, then --starting-token.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for round in 0.. {
        assert!(round < 5, "pagination does not end: {seen:?}");
        let mut args = vec!["list-functions", "--max-items", "2"];
        if let Some(t) = &token {
            args.push("--starting-token");
            args.push(t);
        }
        let page = s.aws(&args).ok();
        let got = function_names(&page);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);

    // The raw API: one page of 2 with a NextMarker, then the rest.
    let first = s
        .aws(&["list-functions", "--no-paginate", "--max-items", "2"])
        .ok();
    assert_eq!(function_names(&first).len(), 2, "{first}");
    let marker = first["NextMarker"]
        .as_str()
        .unwrap_or_else(|| panic!("no NextMarker: {first}"))
        .to_string();
    let rest = s
        .aws(&["list-functions", "--no-paginate", "--marker", &marker])
        .ok();
    assert_eq!(function_names(&rest).len(), 3, "{rest}");
    assert!(
        matches!(rest.get("NextMarker"), None | Some(Value::Null)),
        "last page has no NextMarker: {rest}"
    );

    // Update the code: a new CodeSha256, and the new code runs.
    let u = s
        .aws(&[
            "update-function-code",
            "--function-name",
            "crud-a",
            "--zip-file",
            &format!("fileb://{}", hello.display()),
        ])
        .ok();
    assert_eq!(u["CodeSha256"], code_sha256(&hello_bytes), "{u}");
    assert_eq!(u["CodeSize"], hello_bytes.len(), "{u}");
    assert_ne!(u["RevisionId"], c["RevisionId"], "{u}");
    let (_, out) = s.invoke("crud-a", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Hello, Ada!"}));

    // Update the configuration.
    let u = s
        .aws(&[
            "update-function-configuration",
            "--function-name",
            "crud-a",
            "--memory-size",
            "256",
            "--timeout",
            "5",
            "--environment",
            "Variables={GREETING=Yo}",
        ])
        .ok();
    assert_eq!(u["MemorySize"], 256, "{u}");
    assert_eq!(u["Timeout"], 5, "{u}");
    assert_eq!(u["Environment"]["Variables"]["GREETING"], "Yo", "{u}");
    let gc = s
        .aws(&["get-function-configuration", "--function-name", "crud-a"])
        .ok();
    assert_eq!(gc["MemorySize"], 256, "{gc}");
    assert_eq!(gc["Timeout"], 5, "{gc}");
    assert_eq!(gc["Environment"]["Variables"]["GREETING"], "Yo", "{gc}");
    assert_eq!(
        gc["CodeSha256"],
        code_sha256(&hello_bytes),
        "configuration update keeps the code: {gc}"
    );
    let (_, out) = s.invoke(
        "crud-a",
        &["--payload", r#"{"name":"Ada"}"#, "--log-type", "Tail"],
    );
    assert_eq!(payload_json(&out), json!({"message": "Yo, Ada!"}));

    // Delete: gone from get and list; deleting again is a 404.
    let d = s
        .aws(&["delete-function", "--function-name", "crud-b"])
        .ok();
    // Newer botocore models show DeleteFunction's status code.
    assert!(d.is_null() || d["StatusCode"] == 204, "{d}");
    s.aws(&["get-function", "--function-name", "crud-b"])
        .fails_with("ResourceNotFoundException");
    s.aws(&["get-function-configuration", "--function-name", "crud-b"])
        .fails_with("ResourceNotFoundException");
    s.aws(&["delete-function", "--function-name", "crud-b"])
        .fails_with("ResourceNotFoundException");
    s.invoke_raw("crud-b", &[])
        .0
        .fails_with("ResourceNotFoundException");
    let after = s.aws(&["list-functions"]).ok();
    assert!(
        !function_names(&after).contains(&"crud-b".to_string()),
        "{after}"
    );
    assert_eq!(function_names(&after).len(), 4, "{after}");

    // Updates of a missing function are 404s too.
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "nope",
        "--timeout",
        "4",
    ])
    .fails_with("ResourceNotFoundException");
    s.aws(&[
        "update-function-code",
        "--function-name",
        "nope",
        "--zip-file",
        &format!("fileb://{}", echo.display()),
    ])
    .fails_with("ResourceNotFoundException");
}

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

#[test]
fn cli_publishes_versions_and_routes_aliases() {
    let s = Server::start();
    let hello = image_path("hello.zip");
    s.create(
        "ver-hello",
        &hello,
        &["--environment", "Variables={GREETING=Hi}"],
    );

    let v1 = s
        .aws(&[
            "publish-version",
            "--function-name",
            "ver-hello",
            "--description",
            "first",
        ])
        .ok();
    assert_eq!(v1["Version"], "1", "{v1}");
    assert_eq!(
        v1["FunctionArn"],
        format!("{}:1", function_arn("ver-hello")),
        "{v1}"
    );
    assert_eq!(v1["Environment"]["Variables"]["GREETING"], "Hi", "{v1}");
    // Nothing changed: the same version again.
    let again = s
        .aws(&["publish-version", "--function-name", "ver-hello"])
        .ok();
    assert_eq!(again["Version"], "1", "{again}");

    // $LATEST moves on; version 1 does not.
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "ver-hello",
        "--environment",
        "Variables={GREETING=Yo}",
    ])
    .ok();
    let (meta, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "1", "--payload", r#"{"name":"Ada"}"#],
    );
    assert_eq!(payload_json(&out), json!({"message": "Hi, Ada!"}));
    assert_eq!(meta["ExecutedVersion"], "1", "{meta}");
    let (meta, out) = s.invoke("ver-hello", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Yo, Ada!"}));
    assert_eq!(meta["ExecutedVersion"], "$LATEST", "{meta}");
    // A qualified name selects the version too.
    let (meta, out) = s.invoke("ver-hello:1", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Hi, Ada!"}));
    assert_eq!(meta["ExecutedVersion"], "1", "{meta}");

    let c1 = s
        .aws(&[
            "get-function-configuration",
            "--function-name",
            "ver-hello",
            "--qualifier",
            "1",
        ])
        .ok();
    assert_eq!(c1["Version"], "1", "{c1}");
    assert_eq!(c1["Environment"]["Variables"]["GREETING"], "Hi", "{c1}");

    let v2 = s
        .aws(&["publish-version", "--function-name", "ver-hello"])
        .ok();
    assert_eq!(v2["Version"], "2", "{v2}");
    let versions = s
        .aws(&["list-versions-by-function", "--function-name", "ver-hello"])
        .ok();
    let listed: Vec<&str> = versions["Versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{versions}"))
        .iter()
        .map(|v| v["Version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["$LATEST", "1", "2"], "{versions}");

    // Aliases.
    let a = s
        .aws(&[
            "create-alias",
            "--function-name",
            "ver-hello",
            "--name",
            "live",
            "--function-version",
            "1",
            "--description",
            "prod",
        ])
        .ok();
    assert_eq!(a["Name"], "live", "{a}");
    assert_eq!(a["FunctionVersion"], "1", "{a}");
    assert_eq!(
        a["AliasArn"],
        format!("{}:live", function_arn("ver-hello")),
        "{a}"
    );
    assert!(
        a["RevisionId"].as_str().is_some_and(|r| !r.is_empty()),
        "{a}"
    );
    let g = s
        .aws(&[
            "get-alias",
            "--function-name",
            "ver-hello",
            "--name",
            "live",
        ])
        .ok();
    assert_eq!(g["FunctionVersion"], "1", "{g}");
    s.aws(&[
        "create-alias",
        "--function-name",
        "ver-hello",
        "--name",
        "live",
        "--function-version",
        "2",
    ])
    .fails_with("ResourceConflictException");
    s.aws(&[
        "create-alias",
        "--function-name",
        "ver-hello",
        "--name",
        "ghost",
        "--function-version",
        "9",
    ])
    .fails_with("ResourceNotFoundException");
    s.aws(&[
        "get-alias",
        "--function-name",
        "ver-hello",
        "--name",
        "ghost",
    ])
    .fails_with("ResourceNotFoundException");

    let (meta, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "live", "--payload", r#"{"name":"Ada"}"#],
    );
    assert_eq!(payload_json(&out), json!({"message": "Hi, Ada!"}));
    assert_eq!(meta["ExecutedVersion"], "1", "{meta}");

    let u = s
        .aws(&[
            "update-alias",
            "--function-name",
            "ver-hello",
            "--name",
            "live",
            "--function-version",
            "2",
        ])
        .ok();
    assert_eq!(u["FunctionVersion"], "2", "{u}");
    let (meta, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "live", "--payload", r#"{"name":"Ada"}"#],
    );
    assert_eq!(payload_json(&out), json!({"message": "Yo, Ada!"}));
    assert_eq!(meta["ExecutedVersion"], "2", "{meta}");
    let (meta, _) = s.invoke(
        &format!("{}:live", function_arn("ver-hello")),
        &["--payload", r#"{"name":"Ada"}"#],
    );
    assert_eq!(meta["ExecutedVersion"], "2", "by alias ARN: {meta}");

    s.aws(&[
        "create-alias",
        "--function-name",
        "ver-hello",
        "--name",
        "canary",
        "--function-version",
        "$LATEST",
    ])
    .ok();
    let aliases = s
        .aws(&["list-aliases", "--function-name", "ver-hello"])
        .ok();
    let mut alias_names: Vec<&str> = aliases["Aliases"]
        .as_array()
        .unwrap_or_else(|| panic!("{aliases}"))
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    alias_names.sort();
    assert_eq!(alias_names, ["canary", "live"], "{aliases}");

    assert_eq!(
        s.aws(&[
            "delete-alias",
            "--function-name",
            "ver-hello",
            "--name",
            "canary"
        ])
        .ok(),
        Value::Null
    );
    s.aws(&[
        "get-alias",
        "--function-name",
        "ver-hello",
        "--name",
        "canary",
    ])
    .fails_with("ResourceNotFoundException");
    s.invoke_raw("ver-hello", &["--qualifier", "canary"])
        .0
        .fails_with("ResourceNotFoundException");

    // A code change makes a new version with the new code.
    let echo_bytes = std::fs::read(image_path("echo.zip")).unwrap();
    s.aws(&[
        "update-function-code",
        "--function-name",
        "ver-hello",
        "--zip-file",
        &format!("fileb://{}", image_path("echo.zip").display()),
    ])
    .ok();
    let v3 = s
        .aws(&["publish-version", "--function-name", "ver-hello"])
        .ok();
    assert_eq!(v3["Version"], "3", "{v3}");
    assert_eq!(v3["CodeSha256"], code_sha256(&echo_bytes), "{v3}");
    let (_, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "3", "--payload", r#"{"v":3}"#],
    );
    assert_eq!(payload_json(&out), json!({"v": 3}));
    // Version 1 still runs hello.
    let (_, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "1", "--payload", r#"{"name":"Bo"}"#],
    );
    assert_eq!(payload_json(&out), json!({"message": "Hi, Bo!"}));
    s.invoke_raw("ver-hello", &["--qualifier", "9"])
        .0
        .fails_with("ResourceNotFoundException");

    // Deleting the function takes its versions and aliases with it.
    s.aws(&["delete-function", "--function-name", "ver-hello"])
        .ok();
    s.aws(&[
        "get-alias",
        "--function-name",
        "ver-hello",
        "--name",
        "live",
    ])
    .fails_with("ResourceNotFoundException");
    s.aws(&["list-versions-by-function", "--function-name", "ver-hello"])
        .fails_with("ResourceNotFoundException");
}

#[test]
fn cli_reserved_concurrency_throttles_and_account_settings() {
    let s = Server::start_with(Options {
        metrics: true,
        ..Options::default()
    });
    let before = s.aws(&["get-account-settings"]).ok();
    let limit = before["AccountLimit"]["ConcurrentExecutions"]
        .as_u64()
        .unwrap_or_else(|| panic!("{before}"));
    assert!(limit >= 1, "{before}");
    assert_eq!(
        before["AccountLimit"]["UnreservedConcurrentExecutions"], limit,
        "{before}"
    );

    s.create("conc-echo", &image_path("echo.zip"), &[]);
    let none = s
        .aws(&["get-function-concurrency", "--function-name", "conc-echo"])
        .ok();
    assert!(
        matches!(
            none.get("ReservedConcurrentExecutions"),
            None | Some(Value::Null)
        ),
        "{none}"
    );

    let p = s
        .aws(&[
            "put-function-concurrency",
            "--function-name",
            "conc-echo",
            "--reserved-concurrent-executions",
            "1",
        ])
        .ok();
    assert_eq!(p["ReservedConcurrentExecutions"], 1, "{p}");
    let g = s
        .aws(&["get-function-concurrency", "--function-name", "conc-echo"])
        .ok();
    assert_eq!(g["ReservedConcurrentExecutions"], 1, "{g}");
    let a = s.aws(&["get-account-settings"]).ok();
    assert_eq!(
        a["AccountLimit"]["UnreservedConcurrentExecutions"],
        limit - 1,
        "{a}"
    );
    assert_eq!(a["AccountLimit"]["ConcurrentExecutions"], limit, "{a}");
    let (_, out) = s.invoke("conc-echo", &["--payload", r#"{"one":1}"#]);
    assert_eq!(payload_json(&out), json!({"one": 1}));

    // Reservation 0: every invoke is throttled.
    s.aws(&[
        "put-function-concurrency",
        "--function-name",
        "conc-echo",
        "--reserved-concurrent-executions",
        "0",
    ])
    .ok();
    let throttles_before = metric_sum(&s.metrics(), "mayfly_throttles_total").unwrap_or(0.0);
    let (cli, _) = s.invoke_raw("conc-echo", &["--payload", "{}"]);
    cli.fails_with("TooManyRequestsException");
    // The raw answer: 429, the header, and the Reason.
    let raw = s.signed(
        "POST",
        "/2015-03-31/functions/conc-echo/invocations",
        &[("content-type", "application/json")],
        b"{}",
    );
    let body = raw.assert_error(429, "TooManyRequestsException");
    assert_eq!(
        body["Reason"], "ReservedFunctionConcurrentInvocationLimitExceeded",
        "{body}"
    );
    let throttles_after = metric_sum(&s.metrics(), "mayfly_throttles_total").unwrap_or(0.0);
    assert!(
        throttles_after >= throttles_before + 2.0,
        "throttles {throttles_before} -> {throttles_after}"
    );

    // Reservations do not exceed the account.
    s.aws(&[
        "put-function-concurrency",
        "--function-name",
        "conc-echo",
        "--reserved-concurrent-executions",
        &(limit + 1).to_string(),
    ])
    .fails_with_any(&[
        "InvalidParameterValueException",
        "LimitExceededException",
        "ValidationException",
    ]);
    s.aws(&[
        "put-function-concurrency",
        "--function-name",
        "nope",
        "--reserved-concurrent-executions",
        "1",
    ])
    .fails_with("ResourceNotFoundException");

    // Delete: unlimited again.
    assert_eq!(
        s.aws(&[
            "delete-function-concurrency",
            "--function-name",
            "conc-echo"
        ])
        .ok(),
        Value::Null
    );
    let g = s
        .aws(&["get-function-concurrency", "--function-name", "conc-echo"])
        .ok();
    assert!(
        matches!(
            g.get("ReservedConcurrentExecutions"),
            None | Some(Value::Null)
        ),
        "{g}"
    );
    let a = s.aws(&["get-account-settings"]).ok();
    assert_eq!(
        a["AccountLimit"]["UnreservedConcurrentExecutions"], limit,
        "{a}"
    );
    let (_, out) = s.invoke("conc-echo", &["--payload", r#"{"two":2}"#]);
    assert_eq!(payload_json(&out), json!({"two": 2}));
}

#[test]
fn cli_rejects_bad_requests_with_aws_errors() {
    let s = Server::start();
    let echo = image_path("echo.zip");
    let code = format!("fileb://{}", echo.display());
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "provided.al2023",
            "--handler",
            "bootstrap",
            "--role",
            server::ROLE,
        ];
        args.extend_from_slice(extra);
        s.aws(&args)
    };
    let invalid = ["InvalidParameterValueException", "ValidationException"];
    let must_not_exist = |name: &str| {
        s.aws(&["get-function", "--function-name", name])
            .fails_with("ResourceNotFoundException");
        let list = s.aws(&["list-functions"]).ok();
        assert!(
            !function_names(&list).contains(&name.to_string()),
            "{name} was stored: {list}"
        );
    };

    create("bad-mem", &["--zip-file", &code, "--memory-size", "10241"]).fails_with_any(&invalid);
    create("bad-timeout", &["--zip-file", &code, "--timeout", "901"]).fails_with_any(&invalid);
    create(
        "bad-runtime",
        &["--zip-file", &code, "--runtime", "python3.12"],
    )
    .fails_with("InvalidParameterValueException");
    let big_env = format!(r#"{{"Variables":{{"BIG":"{}"}}}}"#, "x".repeat(4200));
    create("bad-env", &["--zip-file", &code, "--environment", &big_env])
        .fails_with("InvalidParameterValueException");
    create("bad name!", &["--zip-file", &code]).fails_with_any(&invalid);
    for n in ["bad-mem", "bad-timeout", "bad-runtime", "bad-env"] {
        must_not_exist(n);
    }

    // Packages.
    let no_bootstrap = s.tmp().join("no-bootstrap.zip");
    write_zip(
        &no_bootstrap,
        &[(
            "main",
            std::fs::read(image_path("echo.elf")).unwrap().as_slice(),
        )],
    );
    let msg = create(
        "pkg-nobootstrap",
        &["--zip-file", &format!("fileb://{}", no_bootstrap.display())],
    )
    .fails_with("InvalidParameterValueException");
    assert!(
        msg.contains("bootstrap"),
        "the message says what is wrong: {msg}"
    );
    must_not_exist("pkg-nobootstrap");

    let no_pvh = s.tmp().join("no-pvh.zip");
    write_zip(&no_pvh, &[("bootstrap", floor_without_pvh().as_slice())]);
    let msg = create(
        "pkg-nopvh",
        &["--zip-file", &format!("fileb://{}", no_pvh.display())],
    )
    .fails_with("InvalidParameterValueException");
    assert!(msg.contains("PVH"), "the message says what is wrong: {msg}");
    must_not_exist("pkg-nopvh");

    let text = s.tmp().join("text.zip");
    write_zip(
        &text,
        &[("bootstrap", b"#!/bin/sh\necho hello\n".as_slice())],
    );
    create(
        "pkg-text",
        &["--zip-file", &format!("fileb://{}", text.display())],
    )
    .fails_with("InvalidParameterValueException");
    must_not_exist("pkg-text");

    // (A file that is not a zip at all the CLI refuses itself: boto3_errors.py
    // sends one.)

    // Updates are validated the same way and leave the function as it was.
    let c = s.create("bad-update", &echo, &[]);
    s.aws(&[
        "update-function-code",
        "--function-name",
        "bad-update",
        "--zip-file",
        &format!("fileb://{}", no_pvh.display()),
    ])
    .fails_with("InvalidParameterValueException");
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "bad-update",
        "--memory-size",
        "10241",
    ])
    .fails_with_any(&invalid);
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "bad-update",
        "--timeout",
        "901",
    ])
    .fails_with_any(&invalid);
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "bad-update",
        "--environment",
        &big_env,
    ])
    .fails_with("InvalidParameterValueException");
    let after = s
        .aws(&[
            "get-function-configuration",
            "--function-name",
            "bad-update",
        ])
        .ok();
    assert_eq!(after["CodeSha256"], c["CodeSha256"], "{after}");
    assert_eq!(after["MemorySize"], 128, "{after}");
    assert_eq!(after["Timeout"], 3, "{after}");
    assert_eq!(after["RevisionId"], c["RevisionId"], "{after}");
    let (_, out) = s.invoke("bad-update", &["--payload", r#"{"still":"echo"}"#]);
    assert_eq!(payload_json(&out), json!({"still": "echo"}));
}

#[test]
fn cli_and_raw_requests_need_a_valid_signature() {
    let s = Server::start();
    s.create("auth-echo", &image_path("echo.zip"), &[]);

    // Wrong secret, unknown key: the CLI names the exception.
    s.aws_as(
        server::ACCESS_KEY_ID,
        "wrongwrongwrongwrongwrongwrongwrongwrong",
        &["list-functions"],
    )
    .fails_with("InvalidSignatureException");
    s.aws_as(
        "AKIAUNKNOWNKEY000000",
        server::SECRET_ACCESS_KEY,
        &["list-functions"],
    )
    .fails_with("UnrecognizedClientException");
    let (cli, out) = {
        let outfile = s.tmp().join("wrong.out");
        let cli = s.aws_as(
            server::ACCESS_KEY_ID,
            "wrongwrongwrongwrongwrongwrongwrongwrong",
            &[
                "invoke",
                "--function-name",
                "auth-echo",
                "--payload",
                "{}",
                outfile.to_str().unwrap(),
            ],
        );
        (cli, std::fs::read(&outfile).unwrap_or_default())
    };
    cli.fails_with("InvalidSignatureException");
    assert!(out.is_empty());

    // Unsigned: 403 MissingAuthenticationTokenException, on every route.
    for (method, target, body) in [
        ("GET", "/2015-03-31/functions", &b""[..]),
        ("GET", "/2015-03-31/functions/auth-echo", b""),
        ("POST", "/2015-03-31/functions/auth-echo/invocations", b"{}"),
        ("DELETE", "/2015-03-31/functions/auth-echo", b""),
        ("GET", "/2016-08-19/account-settings", b""),
        (
            "GET",
            "/mayfly/2025-01-01/functions/auth-echo/invocations",
            b"",
        ),
    ] {
        let r = http(s.addr, method, target, &[], body);
        r.assert_error(403, "MissingAuthenticationTokenException");
    }
    // /healthz needs nothing.
    assert_eq!(http(s.addr, "GET", "/healthz", &[], b"").status, 200);

    // Signed properly: fine.
    let ok = s.signed("GET", "/2015-03-31/functions/auth-echo", &[], b"");
    assert_eq!(ok.status, 200, "{}", ok.text());

    // Signed 10 minutes off, either way.
    for skew in [-600i64, 600] {
        let when = if skew < 0 {
            SystemTime::now() - Duration::from_secs(600)
        } else {
            SystemTime::now() + Duration::from_secs(600)
        };
        let h = s.sign("GET", "/2015-03-31/functions", &[], b"", when, None);
        let r = http(s.addr, "GET", "/2015-03-31/functions", &as_refs(&h), b"");
        r.assert_error(403, "InvalidSignatureException");
    }
    // 4 minutes off is still accepted.
    let h = s.sign(
        "GET",
        "/2015-03-31/functions",
        &[],
        b"",
        SystemTime::now() - Duration::from_secs(240),
        None,
    );
    let r = http(s.addr, "GET", "/2015-03-31/functions", &as_refs(&h), b"");
    assert_eq!(r.status, 200, "{}", r.text());

    // A tampered body: signed for one payload, sent with another.
    let target = "/2015-03-31/functions/auth-echo/invocations";
    let headers = [("content-type", "application/json")];
    let h = s.sign(
        "POST",
        target,
        &headers,
        br#"{"amount":1}"#,
        SystemTime::now(),
        None,
    );
    let r = http(s.addr, "POST", target, &as_refs(&h), br#"{"amount":9}"#);
    r.assert_error(403, "InvalidSignatureException");
    // A tampered query.
    let h = s.sign(
        "GET",
        "/2015-03-31/functions?MaxItems=1",
        &[],
        b"",
        SystemTime::now(),
        None,
    );
    let r = http(
        s.addr,
        "GET",
        "/2015-03-31/functions?MaxItems=2",
        &as_refs(&h),
        b"",
    );
    r.assert_error(403, "InvalidSignatureException");
    // A tampered path.
    let h = s.sign(
        "GET",
        "/2015-03-31/functions/auth-echo",
        &[],
        b"",
        SystemTime::now(),
        None,
    );
    let r = http(
        s.addr,
        "GET",
        "/2015-03-31/functions/auth-other",
        &as_refs(&h),
        b"",
    );
    r.assert_error(403, "InvalidSignatureException");
    // The signed body still works.
    let h = s.sign(
        "POST",
        target,
        &headers,
        br#"{"amount":1}"#,
        SystemTime::now(),
        None,
    );
    let r = http(s.addr, "POST", target, &as_refs(&h), br#"{"amount":1}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, br#"{"amount":1}"#);
    assert_eq!(r.header("x-amz-executed-version"), Some("$LATEST"));
    // An unknown key, however well it signs.
    let h = s.sign(
        "GET",
        "/2015-03-31/functions",
        &[],
        b"",
        SystemTime::now(),
        Some(("AKIAUNKNOWNKEY000000", "x")),
    );
    let r = http(s.addr, "GET", "/2015-03-31/functions", &as_refs(&h), b"");
    r.assert_error(403, "UnrecognizedClientException");
}

/// `a` is not older than `b` (timestamps as RFC 3339 text or numbers).
fn not_older(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) => a >= b,
        (Value::Number(a), Value::Number(b)) => a.as_f64() >= b.as_f64(),
        _ => panic!("startedAt is neither text nor a number: {a} {b}"),
    }
}

#[test]
fn metrics_count_invocations_errors_and_durations() {
    let s = Server::start_with(Options {
        metrics: true,
        ..Options::default()
    });
    let before = s.metrics();
    let metric_names = [
        "mayfly_invocations_total",
        "mayfly_errors_total",
        "mayfly_throttles_total",
        "mayfly_invocation_duration_seconds",
        "mayfly_init_duration_seconds",
        "mayfly_billed_gb_seconds_total",
        "mayfly_running_vms",
    ];
    // Metrics are not on the API port without a signature.
    assert_ne!(
        http(s.addr, "GET", "/metrics", &[], b"").status,
        200,
        "/metrics is on its own port"
    );

    s.create("met-echo", &image_path("echo.zip"), &[]);
    s.create(
        "met-bad",
        &image_path("misbehave.zip"),
        &["--memory-size", "256"],
    );
    for i in 0..2 {
        s.invoke("met-echo", &["--payload", &format!(r#"{{"i":{i}}}"#)]);
    }
    let (meta, _) = s.invoke("met-bad", &["--payload", r#"{"mode":"error"}"#]);
    assert_eq!(meta["FunctionError"], "Unhandled");

    let after = s.metrics();
    for name in metric_names {
        assert!(
            after.contains(&format!("# TYPE {name} ")),
            "no # TYPE line for {name}:\n{after}"
        );
    }
    let get = |text: &str, name: &str| metric_sum(text, name).unwrap_or(0.0);
    for name in [
        "mayfly_invocation_duration_seconds_bucket",
        "mayfly_init_duration_seconds_bucket",
        "mayfly_invocation_duration_seconds_count",
    ] {
        assert!(after.contains(name), "{name} missing:\n{after}");
    }
    assert!(
        get(&after, "mayfly_invocations_total") >= get(&before, "mayfly_invocations_total") + 3.0,
        "invocations did not go up by 3:\n{after}"
    );
    assert!(
        get(&after, "mayfly_errors_total") >= get(&before, "mayfly_errors_total") + 1.0,
        "errors did not go up:\n{after}"
    );
    assert!(
        get(&after, "mayfly_invocation_duration_seconds_count")
            >= get(&before, "mayfly_invocation_duration_seconds_count") + 3.0,
        "duration histogram count did not go up:\n{after}"
    );
    assert!(
        get(&after, "mayfly_init_duration_seconds_count")
            >= get(&before, "mayfly_init_duration_seconds_count") + 3.0,
        "init duration histogram count did not go up:\n{after}"
    );
    let billed = get(&after, "mayfly_billed_gb_seconds_total")
        - get(&before, "mayfly_billed_gb_seconds_total");
    assert!(billed > 0.0, "billed GB-seconds did not go up:\n{after}");
    // No VM runs now.
    assert_eq!(get(&after, "mayfly_running_vms"), 0.0, "{after}");
}
