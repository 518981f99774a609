//! The front door under attack, against the real `mayfly serve`: stalled
//! unauthenticated uploads cost no memory while signed clients are served,
//! slow and idle connections are closed at their timeouts, tampered,
//! unsigned-payload and presigned requests are refused, and every error
//! carries a request id and Lambda's shape.

use std::time::{Duration, Instant, SystemTime};

use crate::support::abuse::{assert_lambda_error, rss_kib, server_pid, Raw};
use crate::support::http::{as_refs, http};
use crate::support::server::{ACCESS_KEY_ID, REGION};
use crate::support::{image_path, Options, Server};

const CREATE: &str = "/2015-03-31/functions";
const SEVENTY_MB: usize = 70 << 20;

fn server_with(args: &[&str]) -> Server {
    Server::start_with(Options {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..Options::default()
    })
}

/// The head of a 70 MB CreateFunction and its first 4 KB of body.
fn upload_start(s: &Server, headers: &[(&str, &str)]) -> Vec<u8> {
    let length = SEVENTY_MB.to_string();
    let mut all = vec![
        ("content-type", "application/json"),
        ("content-length", length.as_str()),
    ];
    all.extend_from_slice(headers);
    let mut bytes = Raw::head(s.addr, "POST", CREATE, &all).into_bytes();
    bytes.extend_from_slice(br#"{"FunctionName":"big","Code":{"ZipFile":""#);
    bytes.resize(bytes.len() + 4096, b'A');
    bytes
}

#[test]
fn stalled_unauthenticated_uploads_cost_no_memory_and_signed_clients_are_served() {
    let s = server_with(&["--body-timeout-ms", "3000", "--max-large-requests", "4"]);
    let pid = server_pid(&s);
    let before = rss_kib(pid);

    // 100 clients without a signature, 10 with a forged one (the real key
    // id, a wrong secret): each sends the head of a 70 MB upload and 4 KB,
    // then stalls.
    let mut unsigned: Vec<Raw> = (0..100).map(|_| Raw::open(s.addr)).collect();
    for raw in &mut unsigned {
        raw.send(&upload_start(&s, &[]));
    }
    let forged_headers = s.sign(
        "POST",
        CREATE,
        &[],
        b"",
        SystemTime::now(),
        Some((ACCESS_KEY_ID, "not-the-secret-not-the-secret-not-the-se")),
    );
    let forged_refs: Vec<(&str, &str)> = as_refs(&forged_headers);
    let mut forged: Vec<Raw> = (0..10).map(|_| Raw::open(s.addr)).collect();
    for raw in &mut forged {
        raw.send(&upload_start(&s, &forged_refs));
    }

    // Meanwhile, signed clients are served, and the server stays small.
    let mut peak = rss_kib(pid);
    let started = Instant::now();
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let r = s.signed("GET", CREATE, &[], b"");
        assert_eq!(
            r.status,
            200,
            "a signed client was not served: {}",
            r.text()
        );
        served += 1;
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    s.aws(&["list-functions"]).ok();
    peak = peak.max(rss_kib(pid));
    println!(
        "RSS of mayfly serve: {} MiB before, at most {} MiB with 110 stalled 70 MB uploads; {served} signed requests served meanwhile",
        before / 1024,
        peak / 1024
    );
    assert!(peak < 200 * 1024, "RSS reached {} MiB", peak / 1024);

    // Unsigned: 403 at once, connection closed, body never read.
    for raw in &mut unsigned {
        let r = raw
            .response(Duration::from_secs(2))
            .expect("an answer to the stalled unsigned upload");
        assert_lambda_error(&r, 403, "MissingAuthenticationTokenException");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(raw
            .closed_within(Instant::now(), Duration::from_secs(2))
            .is_some());
    }
    // Forged: four get one of the four places for large bodies and are
    // cut off at the body timeout (408); the rest were refused 429 at once.
    let mut codes: Vec<u16> = forged
        .iter_mut()
        .map(|raw| {
            raw.response(Duration::from_secs(5))
                .expect("an answer")
                .status
        })
        .collect();
    codes.sort_unstable();
    assert_eq!(codes, [408, 408, 408, 408, 429, 429, 429, 429, 429, 429]);
    let after = rss_kib(pid);
    assert!(after < 200 * 1024, "RSS {} MiB after", after / 1024);
}

#[test]
fn slow_and_idle_connections_are_closed_at_their_timeouts() {
    let s = server_with(&[
        "--header-timeout-ms",
        "1000",
        "--idle-timeout-ms",
        "2500",
        "--body-timeout-ms",
        "5000",
    ]);
    // Slowloris: a head trickled one byte every 100 ms, never finished.
    let mut slow = Raw::open(s.addr);
    let mut writer = slow.try_clone();
    let trickle = std::thread::spawn(move || {
        let head = b"GET /2015-03-31/functions HTTP/1.1\r\nhost: x\r\nx-padding: ";
        for byte in head.iter().chain(std::iter::repeat(&b'a')).take(100) {
            if !writer.send(&[*byte]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let closed = slow
        .closed_within(slow.opened(), Duration::from_secs(6))
        .expect("the slowloris connection was never closed");
    println!("slowloris connection closed after {closed:?} (header timeout 1 s)");
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(closed < Duration::from_millis(2500), "{closed:?}");
    trickle.join().unwrap();

    // A connection that sends nothing: closed at the idle timeout, not the
    // header timeout.
    let mut idle = Raw::open(s.addr);
    let closed = idle
        .closed_within(idle.opened(), Duration::from_secs(6))
        .expect("the idle connection was never closed");
    println!("idle connection closed after {closed:?} (idle timeout 2.5 s)");
    assert!(
        closed >= Duration::from_millis(2300) && closed < Duration::from_secs(4),
        "{closed:?}"
    );

    // Keep-alive after a response: idle again, so the idle timeout counts
    // from the response.
    let mut kept = Raw::open(s.addr);
    kept.send(Raw::head(s.addr, "GET", "/healthz", &[]).as_bytes());
    let r = kept.response(Duration::from_secs(5)).expect("healthz");
    assert_eq!(r.status, 200);
    assert!(r.header("x-amzn-requestid").is_some());
    let answered = Instant::now();
    let closed = kept
        .closed_within(answered, Duration::from_secs(6))
        .expect("the kept-alive connection was never closed");
    assert!(
        closed >= Duration::from_millis(2300) && closed < Duration::from_secs(4),
        "{closed:?}"
    );

    // A client that pipelines requests and never reads the answers: once
    // the socket buffers are full the server cannot write, and closes the
    // connection at the idle timeout instead of holding it forever.
    let mut greedy = Raw::open(s.addr);
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let request = Raw::head(s.addr, "GET", CREATE, &[]).repeat(64);
    let pipeline = std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0usize;
        while greedy.send(request.as_bytes()) && started.elapsed() < Duration::from_secs(20) {
            sent += 64;
        }
        let _ = done_tx.send((started.elapsed(), sent));
    });
    let (closed, sent) = done_rx
        .recv_timeout(Duration::from_secs(12))
        .expect("a client that reads nothing kept its connection");
    println!(
        "a client that never reads was cut off after {closed:?} and {sent} pipelined requests"
    );
    assert!(closed < Duration::from_secs(10), "{closed:?}");
    pipeline.join().unwrap();

    // A head larger than the server buffers (64 KiB): refused and closed,
    // however fast it comes.
    let mut huge = Raw::open(s.addr);
    let padding = "a".repeat(100 << 10);
    huge.send(Raw::head(s.addr, "GET", CREATE, &[("x-padding", &padding)]).as_bytes());
    let r = huge
        .response(Duration::from_secs(3))
        .expect("an answer to a huge head");
    assert_eq!(r.status, 431, "{r:?}");
    assert!(huge
        .closed_within(Instant::now(), Duration::from_secs(3))
        .is_some());

    // A body that takes longer than the header timeout, but less than the
    // body timeout, is read: the request is answered (here: no such
    // function) after its signature was checked over the whole body.
    let target = "/2015-03-31/functions/abuse-none/invocations";
    let body = br#"{"slow":"body"}"#;
    let length = body.len().to_string();
    let signed = s.sign(
        "POST",
        target,
        &[("content-length", &length)],
        body,
        SystemTime::now(),
        None,
    );
    let mut raw = Raw::open(s.addr);
    raw.send(Raw::head(s.addr, "POST", target, &as_refs(&signed)).as_bytes());
    for chunk in body.chunks(4) {
        std::thread::sleep(Duration::from_millis(400));
        assert!(raw.send(chunk));
    }
    let r = raw.response(Duration::from_secs(5)).expect("an answer");
    assert_lambda_error(&r, 404, "ResourceNotFoundException");
}

#[test]
fn tampered_unsigned_payload_and_presigned_requests_are_refused() {
    let s = Server::start();
    s.create("abuse-echo", &image_path("echo.zip"), &[]);
    let target = "/2015-03-31/functions/abuse-echo/invocations";
    let body = br#"{"n":1}"#;

    // A validly signed invoke with an x-amz-* header added after signing.
    for (name, value) in [
        ("X-Amz-Invocation-Type", "Event"),
        ("X-Amz-Log-Type", "Tail"),
    ] {
        let mut headers = s.sign("POST", target, &[], body, SystemTime::now(), None);
        headers.push((name.to_string(), value.to_string()));
        let r = http(s.addr, "POST", target, &as_refs(&headers), body);
        let message = assert_lambda_error(&r, 403, "InvalidSignatureException");
        assert!(
            message.contains(&name.to_ascii_lowercase()) && message.contains("not signed"),
            "{message}"
        );
    }
    assert!(
        s.invocations("abuse-echo", 50).is_empty(),
        "a tampered request ran"
    );
    // Signed, the same headers are honoured.
    let r = s.signed("POST", target, &[("X-Amz-Log-Type", "Tail")], body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, body);
    assert!(r.header("x-amz-log-result").is_some());

    // UNSIGNED-PAYLOAD: the body would not be covered.
    let unsigned = [("x-amz-content-sha256", "UNSIGNED-PAYLOAD")];
    let r = s.signed("POST", target, &unsigned, br#"{"n":2}"#);
    let message = assert_lambda_error(&r, 403, "InvalidSignatureException");
    assert!(message.contains("UNSIGNED-PAYLOAD"), "{message}");

    // A presigned URL, valid for a week.
    let creds = mayfly_sigv4::Credentials::new(&s.access_key_id, &s.secret_access_key);
    let uri: ::http::Uri = format!("http://{}{CREATE}", s.addr).parse().unwrap();
    let params = mayfly_sigv4::SigningParams::new(&creds, REGION, "lambda");
    let url = mayfly_sigv4::presign(
        &::http::Method::GET,
        &uri,
        b"",
        &params,
        Duration::from_secs(604_800),
    )
    .unwrap();
    let r = http(
        s.addr,
        "GET",
        url.path_and_query().unwrap().as_str(),
        &[],
        b"",
    );
    let message = assert_lambda_error(&r, 403, "InvalidSignatureException");
    assert!(message.contains("Presigned"), "{message}");
    assert_eq!(s.invocations("abuse-echo", 50).len(), 1);
}

#[test]
fn every_error_carries_a_request_id_and_lambdas_shape() {
    let s = server_with(&[
        "--body-timeout-ms",
        "1500",
        "--max-large-requests",
        "1",
        "--max-connections",
        "8",
    ]);
    let ok = s.signed("GET", CREATE, &[], b"");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("x-amzn-requestid").map(str::len), Some(36));

    let unsigned = http(s.addr, "GET", CREATE, &[], b"");
    assert_lambda_error(&unsigned, 403, "MissingAuthenticationTokenException");
    for (method, target, code, status) in [
        ("GET", "/nowhere", "UnknownOperationException", 404),
        ("DELETE", CREATE, "UnknownOperationException", 404),
        (
            "GET",
            "/2015-03-31/functions/abuse-none",
            "ResourceNotFoundException",
            404,
        ),
        (
            "GET",
            "/2015-03-31/functions?MaxItems=many",
            "ValidationException",
            400,
        ),
        (
            "GET",
            "/2015-03-31/functions?MaxItems=-1",
            "ValidationException",
            400,
        ),
        (
            "GET",
            "/2015-03-31/functions/abuse-none?Qualifier=1&Qualifier=2",
            "ValidationException",
            400,
        ),
    ] {
        let r = s.signed(method, target, &[], b"");
        let message = assert_lambda_error(&r, status, code);
        println!("{method} {target}: {status} {code}: {message}");
    }

    // Bodies over their operation's cap.
    let invoke = "/2015-03-31/functions/abuse-none/invocations";
    let seven_mb = vec![b' '; 7 << 20];
    let r = s.signed("POST", invoke, &[], &seven_mb);
    assert_lambda_error(&r, 413, "RequestEntityTooLargeException");
    let event = [("X-Amz-Invocation-Type", "Event")];
    let r = s.signed("POST", invoke, &event, &seven_mb[..300 << 10]);
    assert_lambda_error(&r, 413, "RequestEntityTooLargeException");
    let r = s.signed(
        "PUT",
        "/2017-10-31/functions/abuse-none/concurrency",
        &[],
        &seven_mb[..300 << 10],
    );
    assert_lambda_error(&r, 413, "RequestEntityTooLargeException");

    // A body that stops coming: 408 at the body timeout. While it holds
    // the one place for a large body, another large one is refused.
    let big = vec![b' '; 2 << 20];
    let length = big.len().to_string();
    let headers = s.sign(
        "POST",
        CREATE,
        &[("content-length", &length)],
        &big,
        SystemTime::now(),
        None,
    );
    let mut stalled = Raw::open(s.addr);
    stalled.send(Raw::head(s.addr, "POST", CREATE, &as_refs(&headers)).as_bytes());
    stalled.send(&big[..1000]);
    std::thread::sleep(Duration::from_millis(200));
    let mut second = Raw::open(s.addr);
    second.send(Raw::head(s.addr, "POST", CREATE, &as_refs(&headers)).as_bytes());
    let r = second
        .response(Duration::from_secs(3))
        .expect("an answer at once");
    assert_lambda_error(&r, 429, "TooManyRequestsException");
    let r = stalled.response(Duration::from_secs(5)).expect("an answer");
    assert_lambda_error(&r, 408, "RequestTimeoutException");

    // One connection more than --max-connections: 429 at once.
    std::thread::sleep(Duration::from_millis(300));
    let held: Vec<Raw> = (0..8).map(|_| Raw::open(s.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = Raw::open(s.addr);
    let r = extra
        .response(Duration::from_secs(3))
        .expect("an answer to the connection over the cap");
    let message = assert_lambda_error(&r, 429, "TooManyRequestsException");
    assert!(message.contains("connections"), "{message}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let r = s.signed("GET", CREATE, &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
}
