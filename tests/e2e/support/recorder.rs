//! What the `recorder` image (it logs each event it gets) was given, read
//! back from its invocation records, and waiting for it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Server;

/// The events `function` (the recorder) logged, oldest first.
pub fn events(s: &Server, function: &str) -> Vec<Value> {
    let mut invocations = s.invocations(function, 1000);
    invocations.reverse();
    invocations
        .iter()
        .flat_map(|invocation| {
            let log = invocation["log"].as_str().unwrap_or("").to_string();
            log.lines()
                .filter_map(|line| line.split_once("event: ").map(|(_, e)| e.to_string()))
                .filter_map(|event| serde_json::from_str::<Value>(&event).ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `Records` of those events, in order.
pub fn records(s: &Server, function: &str) -> Vec<Value> {
    events(s, function)
        .iter()
        .flat_map(|e| e["Records"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Waits up to `within` for `done`, checking every 200 ms.
pub fn wait_for(within: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
