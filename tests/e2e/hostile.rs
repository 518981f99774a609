//! The `hostile` image against a real `mayfly serve`: a guest that attacks
//! the runtime API instead of answering. Each attack must end its own
//! invocation with the right error, cost the host a bounded amount, and
//! leave the host serving others and no QEMU behind.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fixtures::b64decode;
use crate::support::http::HttpResponse;
use crate::support::process::assert_no_qemu_for;
use crate::support::{image_path, Server};

/// What a pipelining guest may add to the host's RSS over its whole timeout.
const MAX_RSS_GROWTH_KB: u64 = 16 * 1024;

fn invoke(server: &Server, name: &str, event: &str) -> HttpResponse {
    server.signed(
        "POST",
        &format!("/2015-03-31/functions/{name}/invocations"),
        &[("x-amz-log-type", "Tail")],
        event.as_bytes(),
    )
}

/// The `mayfly serve` process of `server`: the one whose command line
/// names its data directory.
fn server_pid(data_dir: &Path) -> u32 {
    let needle = data_dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(" serve ") && c.contains(&needle) && !c.contains("qemu")
            })
        })
        .unwrap_or_else(|| panic!("no mayfly serve process for {needle}"))
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// Asserts a function error of `error_type` whose message contains `says`.
fn assert_error(mode: &str, response: &HttpResponse, error_type: &str, says: &str) {
    assert_eq!(response.status, 200, "{mode}: {}", response.text());
    assert_eq!(
        response.header("x-amz-function-error"),
        Some("Unhandled"),
        "{mode}: {}",
        response.text()
    );
    let body: Value = response.json();
    assert_eq!(body["errorType"], error_type, "{mode}: {body}");
    let message = body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{mode}: {message:?} lacks {says:?}");
}

fn assert_echo_still_served(server: &Server) {
    let response = invoke(server, "echo", r#"{"still":"served"}"#);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.header("x-amz-function-error").is_none(),
        "{}",
        response.text()
    );
    assert_eq!(response.text(), r#"{"still":"served"}"#);
}

#[test]
fn a_guest_pipelining_without_reading_costs_the_host_little_memory() {
    let server = Server::start();
    server.create("hostile", &image_path("hostile.zip"), &["--timeout", "4"]);
    server.create("echo", &image_path("echo.zip"), &[]);
    // Warm the host's allocator and caches on an honest invocation first.
    assert_echo_still_served(&server);
    let pid = server_pid(&server.data_dir);
    let baseline = rss_kb(pid);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_kb(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let started = Instant::now();
    let response = invoke(&server, "hostile", r#"{"mode":"pipeline"}"#);
    done.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert_error("pipeline", &response, "Sandbox.Timedout", "4.00 seconds");
    assert!(started.elapsed() >= Duration::from_secs(4));
    let growth = peak.saturating_sub(baseline);
    eprintln!("pipeline: host RSS {baseline} kB before, {peak} kB at most (+{growth} kB) over 4 s");
    assert!(
        growth < MAX_RSS_GROWTH_KB,
        "the host grew by {growth} kB ({baseline} → {peak}) under a pipelining guest"
    );
    assert_no_qemu_for(&server.data_dir);
    assert_echo_still_served(&server);
}

#[test]
fn every_attack_ends_with_its_error_and_the_host_keeps_serving() {
    let server = Server::start();
    // The attacks that the host ends itself get far more time than they
    // need, so that only the host's own verdict can end them; the slow post
    // has nothing but its timeout.
    server.create("hostile", &image_path("hostile.zip"), &["--timeout", "15"]);
    server.create(
        "hostile-slow",
        &image_path("hostile.zip"),
        &["--timeout", "2"],
    );
    server.create("echo", &image_path("echo.zip"), &[]);
    const INVALID: &str = "Runtime.InvalidApiRequest";
    const LIMIT: &str = "Runtime.ApiLimitExceeded";
    const TOO_LARGE: &str = "Function.ResponseSizeTooLarge";
    let cases = [
        ("other-id", INVALID, "request id"),
        ("two-lengths", INVALID, "two Content-Length headers"),
        ("bad-chunked", INVALID, "invalid chunked request body"),
        ("header", LIMIT, "request head exceeds 65536 bytes"),
        ("connections", LIMIT, "connections to the runtime API"),
        ("frames", LIMIT, "network frames"),
        ("endless-chunked", TOO_LARGE, "6291456 bytes"),
        ("big-response", TOO_LARGE, "(7340034 bytes)"),
    ];
    for (mode, error_type, says) in cases {
        let started = Instant::now();
        let response = invoke(&server, "hostile", &format!(r#"{{"mode":"{mode}"}}"#));
        eprintln!("{mode}: {} after {:?}", response.text(), started.elapsed());
        assert_error(mode, &response, error_type, says);
    }
    let response = invoke(&server, "hostile-slow", r#"{"mode":"slow"}"#);
    assert_error(
        "slow",
        &response,
        "Sandbox.Timedout",
        "Task timed out after 2.00 seconds",
    );

    // A lie about memory is clamped to the VM's own.
    let response = invoke(&server, "hostile", r#"{"mode":"memory"}"#);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.header("x-amz-function-error").is_none(),
        "{}",
        response.text()
    );
    let log = b64decode(response.header("x-amz-log-result").expect("a log tail"));
    let log = String::from_utf8_lossy(&log).into_owned();
    let report = log
        .lines()
        .find(|l| l.starts_with("REPORT RequestId: "))
        .unwrap_or_else(|| panic!("no REPORT in {log}"));
    assert!(report.contains("Max Memory Used: 128 MB"), "{report}");

    // Chunked coding done right is accepted.
    let response = invoke(&server, "hostile", r#"{"mode":"chunked"}"#);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), r#"{"chunked":true}"#);

    assert_no_qemu_for(&server.data_dir);
    assert_echo_still_served(&server);
    let health = crate::support::http::http(server.addr, "GET", "/healthz", &[], b"");
    assert_eq!(health.status, 200);
}
