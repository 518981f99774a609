//! `mayfly serve` behind a real load balancer: Debian's nginx
//! (`mayfly-testbed`, configured as the README's section on load balancers
//! says) in front of it, and boto3 pointed at nginx: create, large
//! payloads and packages, async events, versions and aliases, and a
//! streamed response arriving chunk by chunk, all through the proxy.

use mayfly_testbed::nginx::Nginx;
use serde_json::Value;

use crate::linux::{function_zip, program};
use crate::support::Server;

#[test]
fn the_api_and_streamed_responses_work_through_nginx() {
    let s = Server::start();
    let nginx = Nginx::start(&[s.addr]);
    let out = s
        .python_command("behind_proxy.py")
        .env("MAYFLY_ENDPOINT", nginx.endpoint())
        .output()
        .expect("run python3.11");
    assert!(
        out.status.success(),
        "behind_proxy.py failed:\n{}\n{}\nnginx: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        nginx.error_log()
    );
    // Streamed: the chunks are not held back by the proxy.
    let zip = function_zip(s.tmp(), &program("stream_loop"));
    s.create(
        "px-streamer",
        &zip,
        &["--runtime", "provided.al2023", "--timeout", "60"],
    );
    let out = s
        .python_command("streaming.py")
        .args(["px-streamer", r#"{"count":3,"gap_ms":400}"#])
        .env("MAYFLY_ENDPOINT", nginx.endpoint())
        .output()
        .expect("run python3.11");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let streamed: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let at = |i: usize| streamed["chunks"][i]["at"].as_f64().unwrap();
    assert_eq!(
        streamed["chunks"].as_array().map(Vec::len),
        Some(3),
        "{streamed}"
    );
    assert!(at(2) - at(0) > 0.6, "the chunks came together: {streamed}");
    // Every request went through nginx.
    assert!(
        nginx.access_log().lines().count() >= 10,
        "{}",
        nginx.access_log()
    );
}
