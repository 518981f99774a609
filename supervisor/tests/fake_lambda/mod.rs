//! A tiny fake Lambda server for the client tests: it checks every
//! request's SigV4 signature with mayfly-sigv4's strict rules, as `mayfly
//! serve` does (every x-amz-* header signed; answering 403
//! `InvalidSignatureException` as AWS does when it fails), records the
//! request, and answers from a canned handler.

use std::net::SocketAddr;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use mayfly_sigv4::{verify_with_options, Credentials, RequestParts, VerifyOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the fake server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub fn reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![],
        body: body.to_string().into_bytes(),
    }
}

pub fn aws_error(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status,
        headers: vec![("X-Amzn-ErrorType", code.to_owned())],
        body: json!({"Type": "User", "message": message})
            .to_string()
            .into_bytes(),
    }
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

pub struct FakeLambda {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    pub creds: Credentials,
}

impl FakeLambda {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FakeLambda {
        Self::start_with(
            Credentials::new("AKIATESTTESTTESTTEST", "test/secret+key"),
            handler,
        )
        .await
    }

    pub async fn start_with(
        creds: Credentials,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> FakeLambda {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let (log, server_creds) = (requests.clone(), creds.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (h, l, c) = (handler.clone(), log.clone(), server_creds.clone());
                tokio::spawn(serve_connection(stream, h, l, c));
            }
        });
        FakeLambda {
            addr,
            requests,
            creds,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn summary(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.target))
            .collect()
    }

    /// Runs `mayfly ARGS --endpoint <this server>` with the server's
    /// credentials in the environment.
    pub async fn mayfly(&self, args: &[&str]) -> Output {
        let endpoint = format!("http://{}", self.addr);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--endpoint", &endpoint]);
        let mut command = mayfly_command(&all);
        command
            .env("MAYFLY_ACCESS_KEY_ID", &self.creds.access_key_id)
            .env("MAYFLY_SECRET_ACCESS_KEY", &self.creds.secret_access_key);
        command.output().await.unwrap()
    }
}

pub fn mayfly_command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mayfly"));
    command
        .args(args)
        .env_remove("MAYFLY_ACCESS_KEY_ID")
        .env_remove("MAYFLY_SECRET_ACCESS_KEY")
        .env_remove("MAYFLY_ENDPOINT")
        .env("RUST_LOG", "warn");
    command
}

/// Reads requests off one keep-alive connection and answers each: 403
/// `InvalidSignatureException` (as AWS) when the signature does not verify.
async fn serve_connection(
    mut stream: TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Recorded>>>,
    creds: Credentials,
) {
    let mut buf = Vec::new();
    loop {
        let (head_len, method, target, headers) = loop {
            let mut raw = [httparse::EMPTY_HEADER; 64];
            let mut req = httparse::Request::new(&mut raw);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let mut map = http::HeaderMap::new();
                for h in req.headers.iter() {
                    map.append(
                        http::HeaderName::from_bytes(h.name.as_bytes()).unwrap(),
                        http::HeaderValue::from_bytes(h.value).unwrap(),
                    );
                }
                break (
                    n,
                    req.method.unwrap().to_owned(),
                    req.path.unwrap().to_owned(),
                    map,
                );
            }
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let length: usize = headers
            .get("content-length")
            .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
        while buf.len() < head_len + length {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_len..head_len + length].to_vec();
        buf.drain(..head_len + length);
        let recorded = Recorded {
            method,
            target,
            headers,
            body,
        };
        let (m, u): (http::Method, http::Uri) = (
            recorded.method.parse().unwrap(),
            recorded.target.parse().unwrap(),
        );
        let parts = RequestParts {
            method: &m,
            uri: &u,
            headers: &recorded.headers,
        };
        let strict = VerifyOptions::strict("lambda");
        let answer =
            match verify_with_options(parts, &recorded.body, &creds, SystemTime::now(), &strict) {
                Ok(who) => {
                    assert_eq!(who.region, "us-east-1");
                    assert!(who.signed_headers.iter().any(|h| h == "host"));
                    assert!(who.signed_headers.iter().any(|h| h == "x-amz-date"));
                    if !recorded.body.is_empty() {
                        assert!(
                            who.signed_headers.iter().any(|h| h == "content-type"),
                            "{:?}",
                            who.signed_headers
                        );
                    }
                    handler(&recorded)
                }
                Err(e) => aws_error(403, e.aws_error_code(), &e.to_string()),
            };
        log.lock().unwrap().push(recorded);
        let mut head = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            answer.status,
            answer.body.len()
        );
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&answer.body).await.is_err()
        {
            return;
        }
    }
}
