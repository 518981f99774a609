//! The host's bounds through the real server: admission by memory, the
//! event queue per function, and a lying zip bomb.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::json;

use crate::support::http::HttpResponse;
use crate::support::server::ROLE;
use crate::support::{image_path, Options, Server};

/// `(path, size)` of every file under `dir`.
pub fn files_under(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            found.extend(files_under(&entry.path()));
        } else {
            found.insert(entry.path(), meta.len());
        }
    }
    found
}

/// A signed `Invoke` of `name` with `payload`.
fn invoke(s: &Server, name: &str, payload: &str) -> HttpResponse {
    s.signed(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[("content-type", "application/json")],
        payload.as_bytes(),
    )
}

#[test]
fn four_512_mb_invocations_in_a_1024_mb_budget_run_two_and_throttle_two() {
    let s = Server::start_with(Options {
        max_concurrency: Some(8),
        extra_args: vec!["--memory-budget-mb".into(), "1024".into()],
        ..Options::default()
    });
    // The AWS CLI still reads the settings; the raw answer has the budget.
    let settings = s.aws(&["get-account-settings"]).ok();
    assert_eq!(
        settings["AccountLimit"]["ConcurrentExecutions"], 8,
        "{settings}"
    );
    let raw = s
        .signed("GET", "/2016-08-19/account-settings", &[], b"")
        .json();
    assert_eq!(raw["AccountLimit"]["MayflyMemoryBudgetMB"], 1024, "{raw}");
    assert_eq!(raw["AccountUsage"]["MayflyMemoryInUseMB"], 0, "{raw}");

    s.create(
        "mem-loop",
        &image_path("misbehave.zip"),
        &["--memory-size", "512", "--timeout", "2"],
    );
    // Each admitted one spins until its 2 s timeout: the four overlap.
    let answers: Vec<HttpResponse> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| invoke(&s, "mem-loop", r#"{"mode":"loop"}"#)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    let ran = answers.iter().filter(|a| a.status == 200).count();
    let throttled: Vec<&HttpResponse> = answers.iter().filter(|a| a.status == 429).collect();
    assert_eq!((ran, throttled.len()), (2, 2), "statuses {statuses:?}");
    for t in throttled {
        let body = t.assert_error(429, "TooManyRequestsException");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("memory budget"), "{body}");
    }
    for a in answers.iter().filter(|a| a.status == 200) {
        // It ran to its timeout: a function error, not a throttle.
        assert_eq!(a.header("x-amz-function-error"), Some("Unhandled"), "{a:?}");
    }
    // The memory came back: one more fits.
    let after = invoke(&s, "mem-loop", r#"{"mode":"error"}"#);
    assert_eq!(after.status, 200, "{}", after.text());
    s.assert_no_qemu();
}

#[test]
fn event_invokes_beyond_the_queue_bound_are_throttled() {
    let s = Server::start_with(Options {
        extra_args: vec!["--max-queued-events".into(), "2".into()],
        ..Options::default()
    });
    s.create("queue-echo", &image_path("echo.zip"), &[]);
    // Reserved concurrency 0: queued events wait, throttled, and never run.
    s.aws(&[
        "put-function-concurrency",
        "--function-name",
        "queue-echo",
        "--reserved-concurrent-executions",
        "0",
    ])
    .ok();
    let event = |n: u32| {
        s.signed(
            "POST",
            "/2015-03-31/functions/queue-echo/invocations",
            &[
                ("content-type", "application/json"),
                ("x-amz-invocation-type", "Event"),
            ],
            format!("{{\"n\":{n}}}").as_bytes(),
        )
    };
    assert_eq!(event(1).status, 202);
    assert_eq!(event(2).status, 202);
    let full = event(3);
    let body = full.assert_error(429, "TooManyRequestsException");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("event queue"),
        "{body}"
    );
    // Another function has its own bound.
    s.create("queue-other", &image_path("echo.zip"), &[]);
    let other = s.signed(
        "POST",
        "/2015-03-31/functions/queue-other/invocations",
        &[
            ("content-type", "application/json"),
            ("x-amz-invocation-type", "Event"),
        ],
        b"{}",
    );
    assert_eq!(other.status, 202, "{}", other.text());
}

#[test]
fn a_lying_zip_bomb_is_refused_with_400_and_writes_nothing() {
    let s = Server::start();
    // Let the collector's first run (at start) settle the database files.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = files_under(&s.data_dir);
    // 300 MB of zeros out of about 1.9 MB, declaring 4 KB.
    let bomb = mayfly_runner::bomb::lying_zip(300_000_000, 4096);
    let body = json!({
        "FunctionName": "bomb",
        "Runtime": "provided.al2023",
        "Handler": "bootstrap",
        "Role": ROLE,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(&bomb) },
    });
    let started = std::time::Instant::now();
    let answer = s.signed(
        "POST",
        "/2015-03-31/functions",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    let refused = answer.assert_error(400, "InvalidParameterValueException");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Unzipped size must be smaller than"),
        "{refused}"
    );
    eprintln!("the bomb was refused in {:?}", started.elapsed());
    assert_eq!(
        files_under(&s.data_dir),
        before,
        "the bomb left something behind"
    );
    s.aws(&["get-function", "--function-name", "bomb"])
        .fails_with("ResourceNotFoundException");
}
