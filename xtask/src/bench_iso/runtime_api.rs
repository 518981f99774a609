//! A tiny Lambda Runtime API in the benchmark's own process, so that the
//! very `bootstrap` a Linux function is deployed as can answer one event
//! outside Mayfly too: as a plain process, in bubblewrap and in the Linux
//! microVM's guest. Blocking std networking, one thread per connection.
//!
//! Each run arms one request id; the first `GET .../invocation/next` after
//! that gets the event, any later one is held unanswered (as Lambda holds it
//! between events) until the program is killed; `POST
//! .../invocation/<id>/response` ends the run. The time measured is from
//! spawning the program to that response's arrival.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use super::api::EVENT;

/// The variables `lambda_runtime` insists on, besides
/// `AWS_LAMBDA_RUNTIME_API`.
pub const LAMBDA_ENV: [(&str, &str); 5] = [
    ("AWS_LAMBDA_FUNCTION_NAME", "rust-echo"),
    ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
    ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
    ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
    ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/rust-echo"),
];

/// What the program told the API.
enum Reply {
    Response(String, Vec<u8>, Instant),
    Error(String, Vec<u8>),
}

struct State {
    /// The request id the next `GET /next` hands out, if any, and the
    /// run it belongs to: only a connection accepted during that run may
    /// take it (a killed program's last `GET /next` may still be in flight).
    pending: Mutex<Option<(u64, String)>>,
    /// The current run.
    generation: AtomicU64,
    tx: Mutex<mpsc::Sender<Reply>>,
}

/// The Runtime API server, listening on loopback until the process ends.
pub struct RuntimeApi {
    addr: SocketAddr,
    state: Arc<State>,
    rx: Mutex<mpsc::Receiver<Reply>>,
    next_id: AtomicU64,
}

impl RuntimeApi {
    /// Binds 127.0.0.1 on a free port and serves from a thread.
    pub fn start() -> Result<RuntimeApi> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the runtime API")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(State {
            pending: Mutex::new(None),
            generation: AtomicU64::new(0),
            tx: Mutex::new(tx),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                let generation = state.generation.load(Ordering::SeqCst);
                std::thread::spawn(move || {
                    let _ = serve(stream, &state, generation);
                });
            }
        });
        Ok(RuntimeApi {
            addr,
            state,
            rx: Mutex::new(rx),
            next_id: AtomicU64::new(1),
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// One event: arms a fresh request id, spawns the program, waits (up
    /// to `timeout`) for its response, then kills it. Returns the time from
    /// just before `spawn` to the response's arrival; `describe` says what
    /// went wrong when the program ends first (a console tail, say).
    pub fn one_event(
        &self,
        spawn: impl FnOnce() -> Result<Child>,
        timeout: Duration,
        describe: impl Fn() -> String,
    ) -> Result<Duration> {
        let id = format!("bench-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let rx = self.rx.lock().expect("runtime API receiver");
        while rx.try_recv().is_ok() {} // stale replies of an earlier run
        let generation = self.state.generation.fetch_add(1, Ordering::SeqCst) + 1;
        *self.state.pending.lock().expect("pending id") = Some((generation, id.clone()));
        let started = Instant::now();
        let mut child = spawn()?;
        let outcome = (|| loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(Reply::Response(got, body, at)) if got == id => {
                    if body != EVENT {
                        bail!("it answered {:?}", String::from_utf8_lossy(&body));
                    }
                    return Ok(at.duration_since(started));
                }
                Ok(Reply::Error(got, body)) if got == id || got.is_empty() => {
                    bail!("it reported an error: {}", String::from_utf8_lossy(&body))
                }
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the runtime API stopped"),
            }
            if let Some(status) = child.try_wait()? {
                bail!("it exited before answering ({status}){}", describe());
            }
            if started.elapsed() > timeout {
                bail!("no response within {timeout:?}{}", describe());
            }
        })();
        *self.state.pending.lock().expect("pending id") = None;
        // Our own child: killed and reaped whatever happened.
        let _ = child.kill();
        let _ = child.wait();
        outcome
    }
}

/// One connection: requests until it closes (keep-alive, as hyper does).
fn serve(mut stream: TcpStream, state: &State, generation: u64) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::new();
    loop {
        let Some((method, path, body)) = read_request(&mut stream, &mut buf)? else {
            return Ok(());
        };
        let tx = || state.tx.lock().expect("reply sender").clone();
        if method == "GET" && path == "/2018-06-01/runtime/invocation/next" {
            let mine = {
                let mut pending = state.pending.lock().expect("pending id");
                match pending.as_ref() {
                    Some((g, _)) if *g == generation => pending.take().map(|p| p.1),
                    _ => None,
                }
            };
            let Some(id) = mine else {
                // Between events: held until the program goes.
                let mut sink = [0u8; 256];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
                return Ok(());
            };
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                + 10_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                 lambda-runtime-aws-request-id: {id}\r\n\
                 lambda-runtime-deadline-ms: {deadline}\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:rust-echo\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\n\
                 content-length: {}\r\n\r\n",
                EVENT.len()
            );
            let mut wire = head.into_bytes();
            wire.extend_from_slice(EVENT);
            stream.write_all(&wire)?;
            continue;
        }
        let rest = path.strip_prefix("/2018-06-01/runtime/");
        let reply = match rest.and_then(|r| r.strip_prefix("invocation/")) {
            Some(r) if method == "POST" && r.ends_with("/response") => {
                let id = r.trim_end_matches("/response").to_owned();
                Some(Reply::Response(id, body, Instant::now()))
            }
            Some(r) if method == "POST" && r.ends_with("/error") => {
                Some(Reply::Error(r.trim_end_matches("/error").to_owned(), body))
            }
            _ if method == "POST" && rest == Some("init/error") => {
                Some(Reply::Error(String::new(), body))
            }
            _ => None,
        };
        let status = if reply.is_some() {
            "202 Accepted"
        } else {
            "404 Not Found"
        };
        let answer = br#"{"status":"OK"}"#;
        let mut wire = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        wire.extend_from_slice(answer);
        // The answer first, in one write, then the news.
        stream.write_all(&wire)?;
        if let Some(reply) = reply {
            let _ = tx().send(reply);
        }
    }
}

/// One request off `stream` (`buf` keeps what follows it): method, path,
/// body; `None` when the connection closed first.
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Option<(String, String, Vec<u8>)>> {
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let len: usize = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let body_at = end + 4;
    while buf.len() < body_at + len {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("connection closed in a request body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[body_at..body_at + len].to_vec();
    buf.drain(..body_at + len);
    Ok(Some((method, path, body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake runtime in a thread: next, then response, then next again.
    #[test]
    fn one_event_times_next_to_response() {
        let api = RuntimeApi::start().unwrap();
        let port = api.port();
        let spawn = || {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n")
                    .unwrap();
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let id = text
                    .lines()
                    .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
                    .unwrap()
                    .to_owned();
                assert!(text.ends_with(r#"{"bench":true}"#), "{text}");
                let post = format!(
                    "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\ncontent-length: {}\r\n\r\n",
                    EVENT.len()
                );
                s.write_all(&[post.as_bytes(), EVENT].concat()).unwrap();
                let _ = s.read(&mut buf).unwrap();
            });
            // A child to kill: a sleeping process.
            Ok(std::process::Command::new("sleep").arg("5").spawn()?)
        };
        let d = api
            .one_event(spawn, Duration::from_secs(5), String::new)
            .unwrap();
        assert!(d < Duration::from_secs(5));
    }
}
