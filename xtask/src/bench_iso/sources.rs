//! Event sources, from the event to the function's start: for each kind of
//! source a real server (`mayfly-testbed`: Mosquitto, RabbitMQ,
//! PostgreSQL, Ceph RGW), the recorder mapped to it with batches of one,
//! and events sent one at a time, each timed from just before the client's
//! call (a fresh `mosquitto_pub -m`, a publish with confirmation on an
//! open AMQP connection, a `psql`, a signed PUT) to the `startedAt` of the invocation that got it (the
//! host's clock, to the millisecond). The VM's boot comes after the start.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use mayfly_sigv4::{sign, Credentials, SigningParams};
use mayfly_testbed::ceph::{self, Ceph};
use mayfly_testbed::mosquitto::Mosquitto;
use mayfly_testbed::postgres::{self, Postgres};
use mayfly_testbed::rabbitmq::RabbitMq;
use serde_json::{json, Value};

use super::api::{exchange, parse_response, Server};
use super::stats::{fmt_ms, Summary};

/// The section's title.
pub const TITLE: &str = "Event sources: from the source's event to the function's start";

/// How long a source gets to deliver its first event (RGW reads a new
/// topic's queue up to 30 s after it is made).
const FIRST_WITHIN: Duration = Duration::from_secs(90);
/// How long one event gets.
const EACH_WITHIN: Duration = Duration::from_secs(30);

/// One source's latencies.
#[derive(Debug, Clone)]
pub struct Row {
    /// The source, as the table names it.
    pub source: &'static str,
    /// Event to start, in ms.
    pub latency: Summary,
}

/// The section's rows.
#[derive(Debug, Clone)]
pub struct Sources {
    /// One per source.
    pub rows: Vec<Row>,
}

/// Milliseconds since the epoch, now.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// When the invocation of `function` whose log holds `marker` started (ms
/// since the epoch), waiting up to `within` for it.
fn started(server: &Server, function: &str, marker: &str, within: Duration) -> Result<f64> {
    let target = format!("/mayfly/2025-01-01/functions/{function}/invocations?Limit=100");
    let deadline = Instant::now() + within;
    loop {
        let r = server.request("GET", &target, &[], b"", true)?;
        r.expect(200, "ListInvocations")?;
        let body: Value = serde_json::from_slice(&r.body)?;
        let found = body["Invocations"].as_array().and_then(|all| {
            all.iter()
                .find(|i| i["log"].as_str().is_some_and(|log| log.contains(marker)))
        });
        if let Some(invocation) = found {
            let at = invocation["startedAt"].as_str().unwrap_or("");
            let ms = mayfly_proto::date::parse_utc_ms(at, "Z")
                .with_context(|| format!("startedAt {at:?}"))?;
            return Ok(ms as f64);
        }
        if Instant::now() > deadline {
            bail!("{function}: no invocation got {marker} within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends events with `send(n)` (each carrying `marker(n)`) until the first
/// arrives, then `runs` more one at a time: their latencies.
fn measure_one(
    server: &Server,
    function: &str,
    runs: usize,
    marker: impl Fn(usize) -> String,
    mut send: impl FnMut(usize) -> Result<()>,
) -> Result<Summary> {
    // The consumer may not be subscribed yet: a first event, sent again
    // every few seconds until one arrives.
    let deadline = Instant::now() + FIRST_WITHIN;
    let mut warm = 1_000_000;
    loop {
        send(warm)?;
        if started(server, function, &marker(warm), Duration::from_secs(5)).is_ok() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{function}: no first event within {FIRST_WITHIN:?}");
        }
        warm += 1;
    }
    let mut samples = Vec::with_capacity(runs);
    for n in 0..runs {
        let sent = now_ms();
        send(n)?;
        samples.push(started(server, function, &marker(n), EACH_WITHIN)? - sent);
    }
    Summary::of(&samples).context("no runs")
}

fn create_mapping(server: &Server, function: &str, mapping: Value) -> Result<()> {
    let mut body = json!({"FunctionName": function, "BatchSize": 1});
    for (k, v) in mapping.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    server
        .json("POST", "/2015-03-31/event-source-mappings", &body)?
        .expect(202, "CreateEventSourceMapping")
}

fn mqtt(server: &Server, zip: &Path, runs: usize) -> Result<Summary> {
    let broker = Mosquitto::start();
    server.create("src-mqtt", zip)?;
    let arn = format!("mqtt://127.0.0.1:{}/bench/#", broker.port);
    create_mapping(server, "src-mqtt", json!({"EventSourceArn": arn}))?;
    let marker = |n: usize| format!("\"m-{n}\"");
    measure_one(server, "src-mqtt", runs, marker, |n| {
        broker.publish(
            "bench/t",
            &[json!({ "bench": format!("m-{n}") }).to_string()],
        );
        Ok(())
    })
}

fn rabbitmq(server: &Server, zip: &Path, runs: usize) -> Result<Summary> {
    let broker = RabbitMq::start();
    server.create("src-rmq", zip)?;
    let message = |n: usize| json!({ "bench": format!("r-{n}") }).to_string();
    // Lambda's RabbitMQ records carry the body in base64.
    let marker = |n: usize| base64::engine::general_purpose::STANDARD.encode(message(n).as_bytes());
    let publisher = broker.publisher("bench");
    let arn = format!("amqp://guest@127.0.0.1:{}/%2f/bench", broker.port);
    create_mapping(
        server,
        "src-rmq",
        json!({"EventSourceArn": arn,
               "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": "guest"}]}),
    )?;
    measure_one(server, "src-rmq", runs, marker, |n| {
        publisher.send(&message(n));
        Ok(())
    })
}

fn postgresql(server: &Server, zip: &Path, runs: usize) -> Result<Summary> {
    let pg = Postgres::start();
    pg.psql("CREATE TABLE bench (id int PRIMARY KEY, tag text)");
    server.create("src-pg", zip)?;
    let arn = format!(
        "postgresql://{}@127.0.0.1:{}/postgres?table=bench",
        postgres::USER,
        pg.port
    );
    create_mapping(
        server,
        "src-pg",
        json!({"EventSourceArn": arn,
               "SourceAccessConfigurations": [{"Type": "BASIC_AUTH", "URI": postgres::PASSWORD}]}),
    )?;
    let marker = |n: usize| format!("\"p-{n}\"");
    measure_one(server, "src-pg", runs, marker, |n| {
        pg.psql(&format!("INSERT INTO bench VALUES ({n}, 'p-{n}')"));
        Ok(())
    })
}

/// A signed S3 PUT of `key` (its body: the key) into `bucket` on the
/// gateway at `addr`.
fn put_object(addr: SocketAddr, bucket: &str, key: &str) -> Result<()> {
    let target = format!("/{bucket}/{key}");
    let uri: http::Uri = format!("http://{addr}{target}").parse()?;
    let credentials = Credentials::new(ceph::ACCESS_KEY, ceph::SECRET_KEY);
    let mut params = SigningParams::new(&credentials, "default", "s3");
    params.content_sha256_header = true;
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::HOST, addr.to_string().parse()?);
    let added = sign(&http::Method::PUT, &uri, &headers, key.as_bytes(), &params)?;
    headers.extend(added);
    let mut head = format!("PUT {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {}\r\n", v.to_str()?));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        key.len()
    ));
    let r = parse_response(&exchange(addr, head, key.as_bytes())?)?;
    r.expect(200, "PutObject")
}

fn object_uploads(server: &Server, zip: &Path, runs: usize) -> Result<Summary> {
    let ceph = Ceph::start();
    server.create("src-s3", zip)?;
    let statement = json!({"StatementId": "s3", "Action": "lambda:InvokeFunction",
        "Principal": "s3.amazonaws.com", "SourceArn": "arn:aws:s3:::bench"});
    server
        .json("POST", "/2015-03-31/functions/src-s3/policy", &statement)?
        .expect(201, "AddPermission")?;
    let r = server.request(
        "GET",
        "/mayfly/2025-01-01/functions/src-s3/notification-endpoint",
        &[],
        b"",
        true,
    )?;
    r.expect(200, "the notification endpoint")?;
    let endpoint: Value = serde_json::from_slice(&r.body)?;
    let endpoint = endpoint["Endpoint"].as_str().unwrap_or("").to_string();
    ceph.boto3(&["bucket", "bench"]);
    ceph.boto3(&["notify", "bench", "bench", &endpoint, ""]);
    let addr = SocketAddr::from(([127, 0, 0, 1], ceph.rgw_port));
    let marker = |n: usize| format!("\"s-{n}\"");
    measure_one(server, "src-s3", runs, marker, |n| {
        put_object(addr, "bench", &format!("s-{n}"))
    })
}

/// Measures every source, `runs` events each, on `server`, with the
/// recorder from `zip`.
pub fn measure(server: &Server, zip: &Path, runs: usize) -> Result<Sources> {
    let mut rows = Vec::new();
    type Measure = fn(&Server, &Path, usize) -> Result<Summary>;
    let all: [(&'static str, Measure); 4] = [
        ("MQTT (Mosquitto 2.0, QoS 1)", mqtt),
        ("RabbitMQ 3.10 queue", rabbitmq),
        ("PostgreSQL table (logical replication)", postgresql),
        (
            "object upload (Ceph RGW 16.2, persistent topic)",
            object_uploads,
        ),
    ];
    for (source, run) in all {
        eprintln!("xtask: bench: {source}");
        rows.push(Row {
            source,
            latency: run(server, zip, runs)?,
        });
    }
    Ok(Sources { rows })
}

impl Sources {
    /// The section as a Markdown table and a note.
    pub fn markdown(&self) -> String {
        let mut out = String::from("| source | n | p50 | p90 |\n|---|---:|---:|---:|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.source,
                row.latency.n,
                fmt_ms(row.latency.p50),
                fmt_ms(row.latency.p90)
            ));
        }
        out.push_str(
            "\nFrom just before the client's call (a fresh `mosquitto_pub -m`, a confirmed \
             publish on an open AMQP connection, a `psql`, a signed PUT) to the invocation's `startedAt`; batches \
             of one; the VM's boot comes after. PostgreSQL's consumer reads an idle slot \
             every 250 ms; RGW reads an idle persistent queue every 100 ms.\n",
        );
        out
    }
}
