//! Load behaviour of `mayfly serve`: concurrency limits answer 429 at once,
//! async events are retried and delivered to destinations, and `kill -9`
//! of the server loses no accepted event and leaves no QEMU behind.

use crate::support as common;
use crate::support::server;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use server::{Options, Server};

fn fast_retries(max_concurrency: u32) -> Options {
    Options {
        max_concurrency: Some(max_concurrency),
        extra_args: vec!["--retry-base-delay-ms".into(), "300".into()],
        ..Options::default()
    }
}

/// A `python3.11 tests/api/<script>` with the server's environment, not
/// yet started.
fn python(server: &Server, script: &str) -> Command {
    let mut cmd = Command::new("python3.11");
    cmd.arg(common::root().join("tests").join("api").join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env("AWS_CONFIG_FILE", server.tmp().join("aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            server.tmp().join("aws-credentials"),
        )
        .env("MAYFLY_ENDPOINT", server.endpoint())
        .env("MAYFLY_ACCESS_KEY_ID", &server.access_key_id)
        .env("MAYFLY_SECRET_ACCESS_KEY", &server.secret_access_key)
        .env(
            "MAYFLY_IMAGES",
            common::root().join("target").join("images"),
        )
        .env("MAYFLY_TMP", server.tmp());
    cmd
}

#[test]
fn throttles_answer_429_at_once_and_accepted_invokes_return_their_payload() {
    let server = Server::start_with(fast_retries(4));
    server.python("boto3_throttle.py", &[]);
}

#[test]
fn async_events_are_retried_and_reach_their_destinations() {
    let server = Server::start_with(fast_retries(4));
    server.python("boto3_async.py", &[]);
}

#[test]
fn kill_9_loses_no_accepted_event() {
    const EVENTS: usize = 24;
    const KILL_AFTER: usize = 12;
    let mut server = Server::start_with(fast_retries(2));
    let mut enqueue = python(&server, "durability_enqueue.py")
        .arg(EVENTS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3.11");
    let mut accepted = Vec::new();
    let mut lines = BufReader::new(enqueue.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        accepted.push(line.unwrap());
        if accepted.len() == KILL_AFTER {
            server.kill_9();
            break;
        }
    }
    // Ids whose 202 had arrived before the kill are accepted too.
    accepted.extend(lines.map_while(Result::ok).filter(|l| !l.trim().is_empty()));
    let _ = enqueue.wait();
    assert!(
        accepted.len() >= KILL_AFTER,
        "only {} events were accepted",
        accepted.len()
    );
    // The killed server's VMs die with it.
    server.assert_no_qemu();

    server.restart();
    let mut check = python(&server, "durability_check.py")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3.11");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(accepted.join("\n").as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let report = format!(
        "{}{}\nserver log after restart:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    assert!(out.status.success(), "{report}");
    println!("{report}");
}
