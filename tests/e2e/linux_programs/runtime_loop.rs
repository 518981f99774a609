//! A Lambda custom runtime on plain std sockets, built static for the
//! Linux-function tests: `GET next`, answer, repeat. The event chooses:
//! `{"mode":"env"}` answers with what the environment and /var/task say,
//! `{"mode":"exit"}` exits 3 before answering, `{"mode":"segv"}` faults,
//! `{"mode":"fetch","port":P}` answers with what an HTTP GET of
//! 10.0.2.2:P (the host, through egress) returned; as a function URL's
//! function, the path `/respond/cookies` answers a 201 with headers,
//! cookies and a body, `/respond/binary` answers the request's (base64)
//! body back as binary, `/fail` exits 3 before answering; anything else
//! is echoed.
#[path = "runtime_next.rs"]
mod runtime_next;
use std::io::{Read, Write};
use std::net::TcpStream;

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// `{"fetched":"BODY"}` from `GET /` at 10.0.2.2:`port`, or
/// `{"error":"WHY"}`.
fn fetch(port: &str) -> String {
    let result = TcpStream::connect(format!("10.0.2.2:{port}")).and_then(|mut stream| {
        write!(stream, "GET / HTTP/1.0\r\nHost: host.mayfly.internal\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    });
    match result {
        Ok(response) => {
            let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            format!("{{\"fetched\":\"{}\"}}", body.trim())
        }
        Err(e) => format!("{{\"error\":\"{e}\"}}"),
    }
}

fn main() {
    let api = var("AWS_LAMBDA_RUNTIME_API");
    loop {
        let (id, event) = runtime_next::next(&api);
        let text = String::from_utf8_lossy(&event).to_string();
        let body = if text.contains("\"env\"") {
            let data = std::fs::read_to_string("/var/task/data.txt").unwrap_or_default();
            let order: Vec<String> = std::env::vars().map(|(k, _)| k).take(3).collect();
            format!(
                "{{\"name\":\"{}\",\"version\":\"{}\",\"memory\":\"{}\",\"root\":\"{}\",\"api\":\"{}\",\"handler\":\"{}\",\"region\":\"{}\",\"exec_env\":\"{}\",\"greeting\":\"{}\",\"data\":\"{}\",\"first\":\"{}\",\"cwd\":\"{}\"}}",
                var("AWS_LAMBDA_FUNCTION_NAME"), var("AWS_LAMBDA_FUNCTION_VERSION"),
                var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"), var("LAMBDA_TASK_ROOT"), api,
                var("_HANDLER"), var("AWS_REGION"), var("AWS_EXECUTION_ENV"), var("GREETING"),
                data.trim(), order.join(","),
                std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default()
            )
        } else if text.contains("\"fetch\"") {
            let port: String = text
                .split("\"port\":")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            fetch(&port)
        } else if text.contains("\"rawPath\":\"/respond/cookies\"") {
            r#"{"statusCode":201,"headers":{"content-type":"text/plain","x-app":"yes"},"cookies":["a=1; Path=/","b=2"],"body":"made"}"#.to_string()
        } else if text.contains("\"rawPath\":\"/respond/binary\"") {
            let body = text
                .split("\"body\":\"")
                .nth(1)
                .and_then(|b| b.split('"').next())
                .unwrap_or("");
            format!(r#"{{"statusCode":200,"headers":{{"content-type":"application/octet-stream"}},"body":"{body}","isBase64Encoded":true}}"#)
        } else if text.contains("\"rawPath\":\"/fail\"") {
            println!("failing on purpose");
            std::process::exit(3);
        } else if text.contains("\"exit\"") {
            println!("exiting early");
            std::process::exit(3);
        } else if text.contains("\"segv\"") {
            // SAFETY: none; the fault is the point.
            unsafe { std::ptr::write_volatile(8 as *mut u8, 1) };
            unreachable!()
        } else {
            text
        };
        println!("answering {id}");
        let mut post = TcpStream::connect(&api).unwrap();
        write!(
            post,
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = [0u8; 512];
        let _ = post.read(&mut answer);
    }
}
