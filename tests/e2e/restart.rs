//! The life of `mayfly serve` around its API: a restart on the same data
//! directory loses nothing acknowledged, nor does `kill -9` lose an
//! accepted event; stopping it or dropping a client mid-invocation leaves
//! no VM; generated credentials are private, printed once and reused.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::support::aws::function_names;
use crate::support::fixtures::code_sha256;
use crate::support::http::{as_refs, try_http};
use crate::support::process::{no_qemu_within, wait_for_qemu};
use crate::support::server::{read_credentials_file, ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use crate::support::{image_path, payload_json, Options, Server};

/// The functions of a `list-functions` answer, sorted.
fn sorted_names(list: &Value) -> Vec<String> {
    let mut names = function_names(list);
    names.sort();
    names
}

/// What a looping invoke sends.
const LOOP: &[u8] = br#"{"mode":"loop"}"#;

/// Creates `name`, a `misbehave` that times out after `timeout_s`, and
/// signs an invoke of it that loops, to send by hand: its target and
/// headers.
fn looping_function(s: &Server, name: &str, timeout_s: u64) -> (String, Vec<(String, String)>) {
    s.create(
        name,
        &image_path("misbehave.zip"),
        &["--timeout", &timeout_s.to_string()],
    );
    let target = format!("/2015-03-31/functions/{name}/invocations");
    let headers = s.sign(
        "POST",
        &target,
        &[("content-type", "application/json")],
        LOOP,
        SystemTime::now(),
        None,
    );
    (target, headers)
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
    assert_eq!(sorted_names(&list), ["rs-echo", "rs-hello"], "{list}");
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
    assert_eq!(
        sorted_names(&list),
        ["rs-echo", "rs-hello", "rs-third"],
        "{list}"
    );
    s.stop_cleanly();
}

#[test]
fn sigterm_during_an_invocation_leaves_no_vm_and_loses_nothing() {
    let mut s = Server::start();
    // Short: `mayfly serve` drains in-flight invocations on SIGTERM, so
    // the stop may wait for this timeout.
    let (target, headers) = looping_function(&s, "term-loop", 4);
    let addr = s.addr;
    let client = std::thread::spawn(move || {
        // Drained (the function's own timeout error) or cut off: either is
        // fine, as long as no VM outlives the server.
        match try_http(addr, "POST", &target, &as_refs(&headers), LOOP) {
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
    wait_for_qemu(&s.data_dir, Duration::from_secs(10));
    let t = Instant::now();
    s.stop_cleanly(); // exits by itself within 15 s, and no QEMU is left
    println!(
        "mayfly serve stopped {:?} after SIGTERM with a VM running",
        t.elapsed()
    );
    client.join().unwrap();

    s.restart();
    let list = s.aws(&["list-functions"]).ok();
    assert_eq!(sorted_names(&list), ["term-loop"], "{list}");
}

#[test]
fn a_killed_servers_jailed_vms_die_with_it() {
    // A VM looping for 30 s: it can only be gone at once if the kernel
    // killed it with its parent (a uid change after `PR_SET_PDEATHSIG`
    // cleared that signal once, and such VMs ran on to their timeout).
    let mut s = Server::start();
    let (target, headers) = looping_function(&s, "kill-loop", 30);
    let addr = s.addr;
    let client = std::thread::spawn(move || {
        let _ = try_http(addr, "POST", &target, &as_refs(&headers), LOOP);
    });
    wait_for_qemu(&s.data_dir, Duration::from_secs(10));
    assert!(
        s.log().contains("uid and gid of its own per VM"),
        "the jail gives VMs their own uid"
    );
    let t = Instant::now();
    s.kill_9();
    crate::support::process::assert_no_qemu_for(&s.data_dir);
    println!(
        "the VM was gone {:?} after kill -9 of its server",
        t.elapsed()
    );
    client.join().unwrap();
}

#[test]
fn a_client_that_hangs_up_leaves_no_vm() {
    let s = Server::start();
    let timeout_s = 8u64;
    let (target, headers) = looping_function(&s, "hangup-loop", timeout_s);
    let mut stream = TcpStream::connect(s.addr).unwrap();
    let mut head = format!(
        "POST {target} HTTP/1.1\r\ncontent-length: {}\r\n",
        LOOP.len()
    );
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(LOOP).unwrap();
    wait_for_qemu(&s.data_dir, Duration::from_secs(10));
    let hung_up = Instant::now();
    drop(stream);
    // At the latest when the function's timeout is over (Mayfly may stop it
    // sooner), and in any case no orphan.
    if let Err(left) = no_qemu_within(&s.data_dir, Duration::from_secs(timeout_s + 4)) {
        panic!(
            "the VM of a client that hung up still runs {:?} later (timeout {timeout_s} s): {left:?}; log:\n{}",
            hung_up.elapsed(),
            s.log()
        );
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
    s.aws_as(ACCESS_KEY_ID, SECRET_ACCESS_KEY, &["list-functions"])
        .fails_with("UnrecognizedClientException");

    // A restart reuses the file and does not print the secret again.
    s.restart();
    assert!(
        !s.log_of(2).contains(&secret),
        "the secret was printed again at the second start:\n{}",
        s.log_of(2)
    );
    assert_eq!(read_credentials_file(&file), (id, secret));
    assert_eq!(sorted_names(&profile_list(&s)), ["cred-echo"]);
    let (_, out) = s.invoke("cred-echo", &["--payload", r#"{"k":"v"}"#]);
    assert_eq!(payload_json(&out), json!({"k": "v"}));
    s.stop_cleanly();
}

#[test]
fn kill_9_loses_no_accepted_event() {
    const EVENTS: usize = 24;
    const KILL_AFTER: usize = 12;
    let mut server = Server::start_with(Options::fast_retries(2));
    let mut enqueue = server
        .python_command("durability_enqueue.py")
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
    let mut check = server
        .python_command("durability_check.py")
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
