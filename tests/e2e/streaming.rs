//! Response streaming: a Linux function that streams through the runtime
//! API's streaming mode reaches a `RESPONSE_STREAM` function URL's client
//! chunk by chunk as it writes (curl), and boto3's
//! InvokeWithResponseStream as `PayloadChunk` events and an
//! `InvokeComplete`; an error in its trailers is the stream's
//! `ErrorCode`; a buffered invoke gets the whole stream at once.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::linux::{function_zip, program};
use crate::support::{Options, Server};

/// A server with function URLs and the streaming function `name`.
fn serve_streamer(name: &str) -> Server {
    let s = Server::start_with(Options {
        urls: true,
        ..Options::default()
    });
    let zip = function_zip(s.tmp(), &program("stream_loop"));
    s.create(
        name,
        &zip,
        &["--runtime", "provided.al2023", "--timeout", "60"],
    );
    s
}

#[test]
fn a_streamed_url_response_reaches_the_client_chunk_by_chunk() {
    let s = serve_streamer("streamer");
    let made = s
        .aws(&[
            "create-function-url-config",
            "--function-name",
            "streamer",
            "--auth-type",
            "NONE",
            "--invoke-mode",
            "RESPONSE_STREAM",
        ])
        .ok();
    assert_eq!(made["InvokeMode"], "RESPONSE_STREAM");
    crate::function_urls::allow_public(&s, "streamer");
    let url = format!(
        "{}stream?count=10&gap_ms=1000",
        made["FunctionUrl"].as_str().unwrap()
    );
    let started = Instant::now();
    let mut curl = Command::new("curl")
        .args(["-s", "-N", "-i", "--max-time", "60", &url])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    let mut head = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            break;
        }
        head.push(line.to_ascii_lowercase());
    }
    let mut arrivals = Vec::new();
    for line in lines {
        let line = line.unwrap();
        arrivals.push((line, started.elapsed()));
    }
    assert!(curl.wait().unwrap().success());
    assert!(head[0].contains(" 200"), "{head:?}");
    assert!(
        head.iter().any(|h| h == "content-type: text/plain"),
        "{head:?}"
    );
    assert!(head.iter().any(|h| h == "x-streamed: yes"), "{head:?}");
    let texts: Vec<&str> = arrivals.iter().map(|(t, _)| t.as_str()).collect();
    let expected: Vec<String> = (0..10).map(|i| format!("chunk {i}")).collect();
    assert_eq!(texts, expected);
    // The first byte well before the function ends, and each chunk about a
    // second after the one before: streamed, not gathered.
    let first = arrivals[0].1;
    println!(
        "first chunk after {first:?}, last after {:?}",
        arrivals[9].1
    );
    assert!(
        first < Duration::from_millis(1500),
        "first chunk after {first:?}"
    );
    for pair in arrivals.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap > Duration::from_millis(600),
            "{} came {gap:?} after {}",
            pair[1].0,
            pair[0].0
        );
    }
}

#[test]
fn invoke_with_response_stream_gives_chunks_then_its_end_or_its_error() {
    let s = serve_streamer("streamer-api");
    let run = |payload: &str| -> Value {
        let out = s.python("streaming.py", &["streamer-api", payload]);
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap()).unwrap()
    };
    let ok = run(r#"{"count":3,"gap_ms":400}"#);
    assert_eq!(ok["status"], 200);
    let texts: Vec<&str> = ok["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["chunk 0\n", "chunk 1\n", "chunk 2\n"]);
    let at = |i: usize| ok["chunks"][i]["at"].as_f64().unwrap();
    assert!(at(2) - at(0) > 0.6, "{ok}");
    assert!(ok["complete"].get("ErrorCode").is_none(), "{ok}");
    let failed = run(r#"{"count":2,"gap_ms":10,"mode":"fail"}"#);
    assert_eq!(failed["chunks"].as_array().unwrap().len(), 2, "{failed}");
    assert_eq!(failed["complete"]["ErrorCode"], "Stream.Failed", "{failed}");
    assert!(failed["complete"]["ErrorDetails"]
        .as_str()
        .unwrap()
        .contains("failed midway"));
    // A buffered invoke of the same function gets the whole stream.
    let (meta, payload) = s.invoke("streamer-api", &["--payload", r#"{"count":3,"gap_ms":10}"#]);
    assert!(meta.get("FunctionError").is_none(), "{meta}");
    assert_eq!(payload, b"chunk 0\nchunk 1\nchunk 2\n");
}
