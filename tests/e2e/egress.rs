//! Egress through the host under a policy, with `mayfly exec --egress`: a
//! Linux program's TCP connection to the host's address on its private
//! network (`host.mayfly.internal`, 10.0.2.2) reaches a server the test
//! starts on the host's 127.0.0.1 when a rule names its port, and is
//! refused (ECONNREFUSED, and a line in the log) when none does.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use crate::linux::program;
use crate::support::aws::function_arn;
use crate::support::command::mayfly;
use crate::support::Server;

/// An HTTP server on 127.0.0.1 answering every request with `body`, in a
/// thread; its port.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = write!(
                stream,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `mayfly exec [--egress RULE]... fetch -- 10.0.2.2 PORT /`: status,
/// stdout, stderr.
fn fetch(rules: &[String], port: u16) -> (Option<i32>, String, String) {
    fetch_from(rules, "10.0.2.2", port)
}

/// `mayfly exec [--egress RULE]... fetch -- HOST PORT /`.
fn fetch_from(rules: &[String], host: &str, port: u16) -> (Option<i32>, String, String) {
    let mut command = mayfly();
    command.arg("exec");
    for rule in rules {
        command.args(["--egress", rule]);
    }
    let out = command
        .arg(program("fetch"))
        .args(["--", host, &port.to_string(), "/"])
        .output()
        .expect("run mayfly exec");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_rule_for_the_hosts_port_lets_a_program_fetch_from_a_loopback_server() {
    let port = http_server("hello from the host");
    let (code, stdout, stderr) = fetch(&[format!("host.mayfly.internal:{port}")], port);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("status: HTTP/1.0 200 OK"), "{stdout}");
    assert!(stdout.contains("body: hello from the host"), "{stdout}");
    assert!(!stderr.contains("refused"), "{stderr}");
}

#[test]
fn without_a_rule_or_with_another_port_the_connection_is_refused_and_logged() {
    let port = http_server("never seen");
    let other = if port == 65535 { 1 } else { port + 1 };
    for rules in [vec![], vec![format!("host.mayfly.internal:{other}")]] {
        let (code, stdout, stderr) = fetch(&rules, port);
        assert_eq!(code, Some(1), "{rules:?}: {stdout}\n{stderr}");
        assert!(stdout.contains("connect: Connection refused"), "{stdout}");
        assert!(
            stderr.contains(&format!(
                "mayfly: egress to 10.0.2.2:{port} refused by policy"
            )),
            "{rules:?}: {stderr}"
        );
        assert!(!stdout.contains("never seen"), "{stdout}");
    }
}

#[test]
fn a_bad_rule_is_refused_before_anything_runs() {
    let (code, _, stderr) = fetch(&["db.example.com:0".to_string()], 80);
    assert_eq!(code, Some(125), "{stderr}");
    assert!(stderr.contains("--egress"), "{stderr}");
    assert!(stderr.contains("is not a port"), "{stderr}");
}

/// A server started with `--egress` `rules`.
fn serve_with(rules: &[String]) -> Server {
    let mut extra_args = Vec::new();
    for rule in rules {
        extra_args.push("--egress".to_string());
        extra_args.push(rule.clone());
    }
    Server::start_with(crate::support::Options {
        extra_args,
        ..Default::default()
    })
}

/// Invokes `function` (a `runtime_loop`) to fetch from the loopback
/// server on `port`: its answer and its log.
fn invoke_fetch(s: &Server, function: &str, port: u16) -> (serde_json::Value, String) {
    let event = serde_json::json!({"mode": "fetch", "port": port}).to_string();
    let (meta, payload) = s.invoke(function, &["--payload", &event, "--log-type", "Tail"]);
    let log = String::from_utf8_lossy(&crate::support::fixtures::b64decode(
        meta["LogResult"].as_str().unwrap(),
    ))
    .into_owned();
    (crate::support::payload_json(&payload), log)
}

/// A Linux function (`runtime_loop`) deployed on a server started with
/// `--egress` `rules`, fetching from a loopback server: its answer and
/// its log.
fn fetch_through_serve(rules: &[String], port: u16) -> (serde_json::Value, String) {
    let s = serve_with(rules);
    let zip = crate::linux::function_zip(s.tmp(), &program("runtime_loop"));
    s.create("fetcher", &zip, &[]);
    let answer = invoke_fetch(&s, "fetcher", port);
    s.assert_no_qemu();
    answer
}

#[test]
fn egress_bytes_are_metered_in_the_invocation_record_and_metrics() {
    let port = http_server("twenty bytes of body");
    let s = Server::start_with(crate::support::Options {
        extra_args: vec!["--egress".into(), format!("host.mayfly.internal:{port}")],
        metrics: true,
        ..Default::default()
    });
    let zip = crate::linux::function_zip(s.tmp(), &program("runtime_loop"));
    s.create("metered", &zip, &[]);
    let (answer, _) = invoke_fetch(&s, "metered", port);
    assert_eq!(answer["fetched"], "twenty bytes of body", "{answer}");
    // The request the function wrote, and the whole response it read.
    let request = "GET / HTTP/1.0\r\nHost: host.mayfly.internal\r\n\r\n".len() as u64;
    let response = "HTTP/1.0 200 OK\r\nContent-Length: 20\r\n\r\ntwenty bytes of body".len() as u64;
    let record = s.wait_for_invocation("metered", std::time::Duration::from_secs(10), |r| {
        r["egressSentBytes"].as_u64().is_some()
    });
    assert_eq!(record["egressSentBytes"], request, "{record}");
    assert_eq!(record["egressReceivedBytes"], response, "{record}");
    let metrics = s.metrics();
    assert!(
        metrics.contains(&format!(
            "mayfly_egress_sent_bytes_total{{function=\"metered\"}} {request}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "mayfly_egress_received_bytes_total{{function=\"metered\"}} {response}"
        )),
        "{metrics}"
    );
    s.assert_no_qemu();
}

#[test]
fn a_function_fetches_through_serve_egress_and_is_refused_without_it() {
    let port = http_server("hello, function");
    let (answer, log) = fetch_through_serve(&[format!("host.mayfly.internal:{port}")], port);
    assert_eq!(answer["fetched"], "hello, function", "{answer}\n{log}");
    let (answer, log) = fetch_through_serve(&[], port);
    assert_eq!(
        answer["error"], "Connection refused (os error 111)",
        "{answer}\n{log}"
    );
    assert!(
        log.contains(&format!(
            "mayfly: egress to 10.0.2.2:{port} refused by policy"
        )),
        "{log}"
    );
}

#[test]
fn serve_never_opens_its_own_api_port_whatever_the_rules() {
    let s = crate::support::Server::start_with(crate::support::Options {
        extra_args: vec!["--egress".into(), "*".into()],
        ..Default::default()
    });
    let zip = crate::linux::function_zip(s.tmp(), &program("runtime_loop"));
    s.create("prober", &zip, &[]);
    let event = serde_json::json!({"mode": "fetch", "port": s.addr.port()}).to_string();
    let (meta, payload) = s.invoke("prober", &["--payload", &event, "--log-type", "Tail"]);
    let log = String::from_utf8_lossy(&crate::support::fixtures::b64decode(
        meta["LogResult"].as_str().unwrap(),
    ))
    .into_owned();
    let answer = crate::support::payload_json(&payload);
    assert_eq!(
        answer["error"], "Connection refused (os error 111)",
        "{answer}"
    );
    assert!(
        log.contains(&format!(
            "mayfly: egress to 10.0.2.2:{} refused: the host's own Mayfly port",
            s.addr.port()
        )),
        "{log}"
    );
}

#[test]
fn the_mayfly_egress_tag_narrows_the_hosts_rules_and_never_widens_them() {
    let port = http_server("hello, tagged");
    let other = http_server("other port");
    let s = serve_with(&[format!("host.mayfly.internal:{port}")]);
    let zip = crate::linux::function_zip(s.tmp(), &program("runtime_loop"));
    s.create(
        "tagged",
        &zip,
        &[
            "--tags",
            &format!("mayfly:egress=host.mayfly.internal:{other}"),
        ],
    );
    // The tag names a port the host does not open: neither is reachable.
    for p in [port, other] {
        let (answer, log) = invoke_fetch(&s, "tagged", p);
        assert_eq!(
            answer["error"], "Connection refused (os error 111)",
            "{p}: {answer}"
        );
        assert!(
            log.contains(&format!("egress to 10.0.2.2:{p} refused by policy")),
            "{log}"
        );
    }
    // A tag within the host's rules keeps what it names.
    let arn = function_arn("tagged");
    let tags = serde_json::json!({"mayfly:egress": format!("host.mayfly.internal:{port} 10.1.0.0/16:443")});
    s.aws(&[
        "tag-resource",
        "--resource",
        &arn,
        "--tags",
        &tags.to_string(),
    ])
    .ok();
    let (answer, _) = invoke_fetch(&s, "tagged", port);
    assert_eq!(answer["fetched"], "hello, tagged", "{answer}");
    // Untagged, the host's rules hold again.
    s.aws(&[
        "untag-resource",
        "--resource",
        &arn,
        "--tag-keys",
        "mayfly:egress",
    ])
    .ok();
    let (answer, _) = invoke_fetch(&s, "tagged", port);
    assert_eq!(answer["fetched"], "hello, tagged", "{answer}");
    // A tag that is not rules is refused, and nothing changes.
    let bad = serde_json::json!({"mayfly:egress": "host.mayfly.internal:0"});
    let message = s
        .aws(&[
            "tag-resource",
            "--resource",
            &arn,
            "--tags",
            &bad.to_string(),
        ])
        .fails_with("InvalidParameterValueException");
    assert!(message.contains("mayfly:egress"), "{message}");
    assert!(message.contains("is not a port"), "{message}");
    s.assert_no_qemu();
}

#[test]
fn a_guest_opening_hundreds_of_connections_gets_its_cap_and_the_host_stays_healthy() {
    // A server that accepts and holds every connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let out = mayfly()
        .args(["exec", "--egress", &format!("host.mayfly.internal:{port}")])
        .arg(program("connect_flood"))
        .args(["--", "10.0.2.2", &port.to_string(), "300"])
        .output()
        .expect("run mayfly exec");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    // 32 at once (mayfly_vm::egress::EgressLimits), the rest refused, and
    // the log says so a bounded number of times.
    assert!(stdout.contains("opened 32 refused 268"), "{stdout}");
    let lines = stderr.matches("connections open, its limit").count();
    assert!((1..=64).contains(&lines), "{lines} lines:\n{stderr}");
    assert!(
        stderr.contains("further egress refusals are not logged"),
        "{stderr}"
    );
    // The host side opened no more than the cap either.
    assert!(held.lock().unwrap().len() <= 32);
    // And it still serves: a fresh VM fetches from a loopback server.
    let port = http_server("still fine");
    let (code, stdout, stderr) = fetch(&[format!("host.mayfly.internal:{port}")], port);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("body: still fine"), "{stdout}");
}

#[test]
fn names_resolve_through_the_guests_hosts_file_and_the_hosts_dns_under_the_policy() {
    let port = http_server("hello by name");
    // /etc/hosts names the host's address.
    let rule = format!("host.mayfly.internal:{port}");
    let (code, stdout, stderr) = fetch_from(&[rule], "host.mayfly.internal", port);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("body: hello by name"), "{stdout}");
    // A name no rule names: the host's DNS (over UDP: glibc sends the A and
    // AAAA questions with one sendmmsg) answers NXDOMAIN; an unreachable
    // DNS would be a temporary failure.
    let (code, stdout, _) = fetch_from(&[], "db.example.com", 80);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("Name or service not known"), "{stdout}");
}

#[test]
fn a_native_function_reaches_the_host_with_the_sdks_tcp_client_under_the_policy() {
    let port = http_server("hello, native");
    let zip = crate::support::image_path("fetcher.zip");
    let event = serde_json::json!({ "port": port }).to_string();
    // Allowed: the body comes back.
    let s = serve_with(&[format!("host.mayfly.internal:{port}")]);
    s.create("native-fetcher", &zip, &[]);
    let (meta, payload) = s.invoke("native-fetcher", &["--payload", &event]);
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    let answer = crate::support::payload_json(&payload);
    assert_eq!(answer["status"], "HTTP/1.0 200 OK", "{answer}");
    assert_eq!(answer["body"], "hello, native", "{answer}");
    s.assert_no_qemu();
    // No rule: the connection is refused, the handler's error says so, and
    // the log names the refusal.
    let s = serve_with(&[]);
    s.create("native-fetcher", &zip, &[]);
    let (meta, payload) = s.invoke(
        "native-fetcher",
        &["--payload", &event, "--log-type", "Tail"],
    );
    assert_eq!(meta["FunctionError"], "Unhandled", "{meta}");
    let answer = crate::support::payload_json(&payload);
    assert_eq!(answer["errorType"], "Mayfly.TcpError", "{answer}");
    assert_eq!(
        answer["errorMessage"],
        format!("connection to 10.0.2.2:{port} refused"),
        "{answer}"
    );
    let log = String::from_utf8_lossy(&crate::support::fixtures::b64decode(
        meta["LogResult"].as_str().unwrap(),
    ))
    .into_owned();
    assert!(
        log.contains(&format!("egress to 10.0.2.2:{port} refused by policy")),
        "{log}"
    );
    s.assert_no_qemu();
}

#[test]
fn warm_vms_are_replaced_when_the_functions_egress_tag_changes() {
    let port = http_server("hello, warm");
    let s = serve_with(&[format!("host.mayfly.internal:{port}")]);
    let zip = crate::linux::function_zip(s.tmp(), &program("runtime_loop"));
    s.create("warm-fetcher", &zip, &[]);
    s.aws(&["publish-version", "--function-name", "warm-fetcher"])
        .ok();
    s.aws(&[
        "put-provisioned-concurrency-config",
        "--function-name",
        "warm-fetcher",
        "--qualifier",
        "1",
        "--provisioned-concurrent-executions",
        "1",
    ])
    .ok();
    let ready = || {
        let started = std::time::Instant::now();
        loop {
            let config = s
                .aws(&[
                    "get-provisioned-concurrency-config",
                    "--function-name",
                    "warm-fetcher",
                    "--qualifier",
                    "1",
                ])
                .ok();
            if config["Status"] == "READY"
                && config["AvailableProvisionedConcurrentExecutions"] == 1
            {
                return;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{config}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    ready();
    let qualified = "warm-fetcher:1";
    let (answer, log) = invoke_fetch(&s, qualified, port);
    assert_eq!(answer["fetched"], "hello, warm", "{answer}\n{log}");
    assert!(!log.contains("Init Duration"), "not a warm invoke:\n{log}");
    // The tag now leaves the port out: the warm VM booted under the old
    // policy is replaced, and the next invoke (warm again) is refused.
    let arn = function_arn("warm-fetcher");
    let tag = serde_json::json!({"mayfly:egress": format!("host.mayfly.internal:{}", port + 1)});
    s.aws(&[
        "tag-resource",
        "--resource",
        &arn,
        "--tags",
        &tag.to_string(),
    ])
    .ok();
    std::thread::sleep(std::time::Duration::from_secs(3));
    ready();
    let (answer, log) = invoke_fetch(&s, qualified, port);
    assert_eq!(
        answer["error"], "Connection refused (os error 111)",
        "{answer}\n{log}"
    );
    assert!(
        log.contains(&format!("egress to 10.0.2.2:{port} refused by policy")),
        "{log}"
    );
    s.aws(&[
        "delete-provisioned-concurrency-config",
        "--function-name",
        "warm-fetcher",
        "--qualifier",
        "1",
    ])
    .ok();
}
