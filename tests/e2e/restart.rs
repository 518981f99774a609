//! The life of `mayfly serve` around its API: a restart on the same data
//! directory loses nothing acknowledged; stopping it or dropping a client
//! mid-invocation leaves no VM; generated credentials are private, printed
//! once and reused.

use crate::support::server;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use server::{code_sha256, image_path, Options, Server};

fn payload_json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {:?}",
            String::from_utf8_lossy(payload)
        )
    })
}

fn names(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["Functions"]
        .as_array()
        .unwrap_or_else(|| panic!("no Functions: {list}"))
        .iter()
        .map(|f| f["FunctionName"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// Waits until the server runs at least one QEMU.
fn wait_for_a_vm(s: &Server, within: Duration) {
    let deadline = Instant::now() + within;
    while s.qemus().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no VM started within {within:?}; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn restart_keeps_functions_versions_aliases_and_records() {
    let mut s = Server::start();
    let echo_sha = code_sha256(&std::fs::read(image_path("echo.zip")).unwrap());
    s.create("rs-echo", &image_path("echo.zip"), &[]);
    s.create(
        "rs-hello",
        &image_path("hello.zip"),
        &[
            "--memory-size",
            "256",
            "--environment",
            "Variables={GREETING=Hi}",
        ],
    );
    s.aws(&["publish-version", "--function-name", "rs-hello"])
        .ok();
    s.aws(&[
        "create-alias",
        "--function-name",
        "rs-hello",
        "--name",
        "live",
        "--function-version",
        "1",
    ])
    .ok();
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "rs-hello",
        "--environment",
        "Variables={GREETING=Yo}",
    ])
    .ok();
    s.aws(&[
        "put-function-concurrency",
        "--function-name",
        "rs-echo",
        "--reserved-concurrent-executions",
        "5",
    ])
    .ok();
    let (_, out) = s.invoke("rs-echo", &["--payload", r#"{"before":"restart"}"#]);
    assert_eq!(payload_json(&out), json!({"before": "restart"}));
    let before = s.invocations("rs-echo", 10);
    assert_eq!(before.len(), 1, "{before:?}");

    let port = s.addr.port();
    s.restart();
    assert_eq!(s.addr.port(), port);

    let list = s.aws(&["list-functions"]).ok();
    assert_eq!(names(&list), ["rs-echo", "rs-hello"], "{list}");
    let c = s
        .aws(&["get-function-configuration", "--function-name", "rs-echo"])
        .ok();
    assert_eq!(c["CodeSha256"], echo_sha, "{c}");
    let h = s
        .aws(&["get-function-configuration", "--function-name", "rs-hello"])
        .ok();
    assert_eq!(h["MemorySize"], 256, "{h}");
    assert_eq!(h["Environment"]["Variables"]["GREETING"], "Yo", "{h}");
    let versions = s
        .aws(&["list-versions-by-function", "--function-name", "rs-hello"])
        .ok();
    assert_eq!(
        versions["Versions"].as_array().map(Vec::len),
        Some(2),
        "{versions}"
    );
    let alias = s
        .aws(&["get-alias", "--function-name", "rs-hello", "--name", "live"])
        .ok();
    assert_eq!(alias["FunctionVersion"], "1", "{alias}");
    let conc = s
        .aws(&["get-function-concurrency", "--function-name", "rs-echo"])
        .ok();
    assert_eq!(conc["ReservedConcurrentExecutions"], 5, "{conc}");

    // And they run.
    let (meta, out) = s.invoke("rs-echo", &["--payload", r#"{"after":"restart"}"#]);
    assert_eq!(meta["StatusCode"], 200);
    assert_eq!(payload_json(&out), json!({"after": "restart"}));
    let (meta, out) = s.invoke(
        "rs-hello",
        &["--qualifier", "live", "--payload", r#"{"name":"Ada"}"#],
    );
    assert_eq!(payload_json(&out), json!({"message": "Hi, Ada!"}));
    assert_eq!(meta["ExecutedVersion"], "1");
    let (_, out) = s.invoke("rs-hello", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Yo, Ada!"}));

    // The record made before the restart is still there, behind the new one.
    let after = s.invocations("rs-echo", 10);
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(after[1]["requestId"], before[0]["requestId"], "{after:?}");

    // A function created after the restart lives beside the old ones.
    s.create("rs-third", &image_path("echo.zip"), &[]);
    s.restart();
    let list = s.aws(&["list-functions"]).ok();
    assert_eq!(names(&list), ["rs-echo", "rs-hello", "rs-third"], "{list}");
    s.stop_cleanly();
}

#[test]
fn sigterm_during_an_invocation_leaves_no_vm_and_loses_nothing() {
    let mut s = Server::start();
    s.create(
        "term-loop",
        &image_path("misbehave.zip"),
        // Short: `mayfly serve` drains in-flight invocations on SIGTERM,
        // so the stop may wait for this timeout.
        &["--timeout", "4"],
    );
    let target = "/2015-03-31/functions/term-loop/invocations";
    let body = br#"{"mode":"loop"}"#;
    let headers = s.sign(
        "POST",
        target,
        &[("content-type", "application/json")],
        body,
        SystemTime::now(),
        None,
    );
    let addr = s.addr;
    let client = std::thread::spawn(move || {
        let refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // Drained (the function's own timeout error) or cut off: either is
        // fine, as long as no VM outlives the server.
        match server::try_http(addr, "POST", target, &refs, body) {
            Ok(r) => {
                println!("the in-flight invoke got {} {}", r.status, r.text());
                if r.status == 200 {
                    assert_eq!(r.header("x-amz-function-error"), Some("Unhandled"));
                    assert!(r.text().contains("Sandbox.Timedout"), "{}", r.text());
                }
            }
            Err(e) => println!("the in-flight invoke was cut off: {e}"),
        }
    });
    wait_for_a_vm(&s, Duration::from_secs(10));
    let t = Instant::now();
    s.stop_cleanly(); // exits by itself within 15 s, and no QEMU is left
    println!(
        "mayfly serve stopped {:?} after SIGTERM with a VM running",
        t.elapsed()
    );
    client.join().unwrap();

    s.restart();
    let list = s.aws(&["list-functions"]).ok();
    assert_eq!(names(&list), ["term-loop"], "{list}");
}

#[test]
fn a_client_that_hangs_up_leaves_no_vm() {
    let s = Server::start();
    let timeout_s = 8u64;
    s.create(
        "hangup-loop",
        &image_path("misbehave.zip"),
        &["--timeout", &timeout_s.to_string()],
    );
    let target = "/2015-03-31/functions/hangup-loop/invocations";
    let body = br#"{"mode":"loop"}"#;
    let headers = s.sign(
        "POST",
        target,
        &[("content-type", "application/json")],
        body,
        SystemTime::now(),
        None,
    );
    let mut stream = TcpStream::connect(s.addr).unwrap();
    let mut head = format!(
        "POST {target} HTTP/1.1\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    wait_for_a_vm(&s, Duration::from_secs(10));
    let hung_up = Instant::now();
    drop(stream);
    // At the latest when the function's timeout is over (Mayfly may stop it
    // sooner), and in any case no orphan.
    let deadline = hung_up + Duration::from_secs(timeout_s + 4);
    while !s.qemus().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the VM of a client that hung up still runs {:?} later (timeout {timeout_s} s); log:\n{}",
            hung_up.elapsed(),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "VM gone {:?} after the client hung up (function timeout {timeout_s} s)",
        hung_up.elapsed()
    );
    // The server is fine afterwards.
    s.create("hangup-echo", &image_path("echo.zip"), &[]);
    let (_, out) = s.invoke("hangup-echo", &["--payload", r#"{"ok":true}"#]);
    assert_eq!(payload_json(&out), json!({"ok": true}));
}

#[test]
fn generated_credentials_are_private_printed_once_and_reused() {
    let mut s = Server::start_with(Options {
        env_credentials: false,
        ..Options::default()
    });
    let file = s.data_dir.join("credentials");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[mayfly]"), "{text}");
    let (id, secret) = (s.access_key_id.clone(), s.secret_access_key.clone());
    assert_eq!(id.len(), 20, "an AWS-shaped access key id: {id}");
    assert_eq!(secret.len(), 40, "an AWS-shaped secret: {}", secret.len());
    assert!(
        s.log_of(1).contains(&secret),
        "the generated secret is printed once at first start:\n{}",
        s.log_of(1)
    );

    // The AWS CLI uses the file directly, by profile.
    let profile_list = |s: &Server| {
        let out = s
            .aws_command()
            .env("AWS_SHARED_CREDENTIALS_FILE", &file)
            .args(["--profile", "mayfly", "list-functions"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws --profile mayfly list-functions: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(profile_list(&s)["Functions"], json!([]));
    s.create("cred-echo", &image_path("echo.zip"), &[]);
    // Someone else's key pair is refused.
    s.aws_as(
        server::ACCESS_KEY_ID,
        server::SECRET_ACCESS_KEY,
        &["list-functions"],
    )
    .fails_with("UnrecognizedClientException");

    // A restart reuses the file and does not print the secret again.
    s.restart();
    assert!(
        !s.log_of(2).contains(&secret),
        "the secret was printed again at the second start:\n{}",
        s.log_of(2)
    );
    assert_eq!(server::read_credentials_file(&file), (id, secret));
    assert_eq!(names(&profile_list(&s)), ["cred-echo"]);
    let (_, out) = s.invoke("cred-echo", &["--payload", r#"{"k":"v"}"#]);
    assert_eq!(payload_json(&out), json!({"k": "v"}));
    s.stop_cleanly();
}
