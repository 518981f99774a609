//! Concurrency: reserved concurrency and the account settings through the
//! AWS CLI, and throttles answered at once under load (boto3).

use serde_json::{json, Value};

use crate::support::aws::Cli;
use crate::support::http::metric_sum;
use crate::support::{image_path, payload_json, Options, Server};

/// Asserts conc-echo's reservation (`get-function-concurrency`).
fn assert_reserved(s: &Server, expected: Option<u64>) {
    let g = s
        .aws(&["get-function-concurrency", "--function-name", "conc-echo"])
        .ok();
    let reserved = g
        .get("ReservedConcurrentExecutions")
        .filter(|v| !v.is_null());
    assert_eq!(reserved, expected.map(Value::from).as_ref(), "{g}");
}

/// `put-function-concurrency` of `name`.
fn reserve(s: &Server, name: &str, n: &str) -> Cli {
    s.aws(&[
        "put-function-concurrency",
        "--function-name",
        name,
        "--reserved-concurrent-executions",
        n,
    ])
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
    assert_reserved(&s, None);

    let p = reserve(&s, "conc-echo", "1").ok();
    assert_eq!(p["ReservedConcurrentExecutions"], 1, "{p}");
    assert_reserved(&s, Some(1));
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
    reserve(&s, "conc-echo", "0").ok();
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
    reserve(&s, "conc-echo", &(limit + 1).to_string()).fails_with_any(&[
        "InvalidParameterValueException",
        "LimitExceededException",
        "ValidationException",
    ]);
    reserve(&s, "nope", "1").fails_with("ResourceNotFoundException");

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
    assert_reserved(&s, None);
    let a = s.aws(&["get-account-settings"]).ok();
    assert_eq!(
        a["AccountLimit"]["UnreservedConcurrentExecutions"], limit,
        "{a}"
    );
    let (_, out) = s.invoke("conc-echo", &["--payload", r#"{"two":2}"#]);
    assert_eq!(payload_json(&out), json!({"two": 2}));
}

#[test]
fn throttles_answer_429_at_once_and_accepted_invokes_return_their_payload() {
    let server = Server::start_with(Options::fast_retries(4));
    server.python("boto3_throttle.py", &[]);
}
