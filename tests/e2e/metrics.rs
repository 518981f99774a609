//! `/metrics` on its own port: what the invocations count.

use crate::support::http::{http, metric_sum};
use crate::support::{image_path, Options, Server};

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
