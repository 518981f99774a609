//! Linux programs with threads: clone with thread-local storage, futex
//! waits and wakes (with timeouts), preemption of a thread that spins
//! without a syscall, and tokio's multi-thread runtime under the official
//! `lambda_runtime` echo (`examples/linux/rust-echo-mt`), and Go's runtime
//! (threads, a pipe and epoll) under a `net/http` loop
//! (`examples/linux/go-echo`).

use serde_json::json;

use crate::linux::program;
use crate::support::command::mayfly;
use crate::support::{payload_json, root, Server};

#[test]
fn threads_join_wait_on_futexes_and_a_spinning_thread_starves_nobody() {
    let out = mayfly()
        .arg("exec")
        .arg(program("threads"))
        .args(["--timeout", "20"])
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for i in 0..4u64 {
        let sum: u64 = (0..200_000u64).map(|k| k * i).sum();
        assert!(stdout.contains(&format!("thread {i}: {sum}")), "{stdout}");
    }
    assert!(stdout.contains("condvar: 100"), "{stdout}");
    assert!(stdout.contains("answer from the second thread"), "{stdout}");
    assert!(stdout.contains("spinner ran: true"), "{stdout}");
    let ms = |label: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no `{label}` line: {stdout}"));
        line.rsplit(' ').nth(1).unwrap().parse().unwrap()
    };
    // The waits hold: never shorter, and not stuck far past their end.
    let slept = ms("sleep 50ms took");
    assert!((50..1000).contains(&slept), "{stdout}");
    let waited = ms("wait_timeout 30ms took");
    assert!((30..1000).contains(&waited), "{stdout}");
    assert!(!stderr.contains("unsupported syscall"), "{stderr}");
}

/// Deploys `target/images/<name>.zip` and checks that it echoes a small
/// and a 150 KB event.
fn echoes_through_the_api(name: &str) {
    let zip = root().join(format!("target/images/{name}.zip"));
    assert!(
        zip.exists(),
        "{} is missing: run cargo xtask images",
        zip.display()
    );
    let s = Server::start();
    s.create(name, &zip, &[]);
    for event in [
        json!({"hello": "tokio multi-thread"}),
        json!({"big": "x".repeat(150_000)}),
    ] {
        let file = s.tmp().join("event.json");
        std::fs::write(&file, event.to_string()).unwrap();
        let (meta, payload) =
            s.invoke(name, &["--payload", &format!("fileb://{}", file.display())]);
        assert!(
            meta.get("FunctionError").is_none(),
            "{meta}\n{}",
            String::from_utf8_lossy(&payload)
        );
        assert_eq!(payload_json(&payload), event);
    }
    s.assert_no_qemu();
}

#[test]
fn the_lambda_runtime_echo_on_tokios_multi_thread_runtime_answers_through_the_api() {
    echoes_through_the_api("rust-echo-mt");
}

#[test]
fn a_go_net_http_runtime_loop_answers_through_the_api() {
    echoes_through_the_api("go-echo");
}
