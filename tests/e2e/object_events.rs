//! Object uploads as events, with a real Ceph RGW (Debian's `ceph-mon`,
//! `ceph-osd` and `radosgw`, which `cargo xtask bootstrap` installs),
//! started in a temporary directory on free loopback ports: a bucket's
//! notifications go to a persistent topic whose push endpoint is the
//! function's (`GET /mayfly/2025-01-01/functions/{name}/notification-endpoint`),
//! the function gets S3's `ObjectCreated:Put` records, once per PUT, those
//! made while the host was down included; the endpoint lets in only its
//! token and the buckets the function's policy names.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::command::mayfly;
use crate::support::fixtures::image_path;
use crate::support::http::http;
use crate::support::recorder::{records, wait_for};
use crate::support::{Options, Server};
use mayfly_testbed::ceph::Ceph;

fn with_urls() -> Server {
    Server::start_with(Options {
        urls: true,
        metrics: true,
        ..Options::default()
    })
}

/// `mayfly_object_events_total{outcome="OUTCOME"}`.
fn pushed(s: &Server, outcome: &str) -> f64 {
    let text = s.metrics();
    let line = format!("mayfly_object_events_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in:\n{text}"))
}

/// The function's push endpoint, as the API tells it.
fn push_endpoint(s: &Server, function: &str) -> String {
    let target = format!("/mayfly/2025-01-01/functions/{function}/notification-endpoint");
    let got = s.signed("GET", &target, &[], b"");
    assert_eq!(got.status, 200, "{}", got.text());
    let body = got.json();
    assert_eq!(body["Principal"], "s3.amazonaws.com");
    body["Endpoint"].as_str().unwrap().to_string()
}

/// Lets S3 invoke `function` for `bucket`, as AWS requires.
fn allow_bucket(s: &Server, function: &str, bucket: &str) {
    s.aws(&[
        "add-permission",
        "--function-name",
        function,
        "--statement-id",
        &format!("s3-{bucket}"),
        "--action",
        "lambda:InvokeFunction",
        "--principal",
        "s3.amazonaws.com",
        "--source-arn",
        &format!("arn:aws:s3:::{bucket}"),
    ])
    .ok();
}

/// The object keys of the S3 records `function` (the recorder) got.
fn keys(s: &Server, function: &str) -> Vec<String> {
    records(s, function)
        .iter()
        .filter_map(|r| r["s3"]["object"]["key"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn puts_into_a_ceph_bucket_invoke_the_function_once_each_even_while_the_host_was_down() {
    let mut ceph = Ceph::start();
    let mut s = with_urls();
    s.create("uploads", &image_path("recorder.zip"), &[]);
    allow_bucket(&s, "uploads", "photos");
    let endpoint = push_endpoint(&s, "uploads");
    // `mayfly notification-endpoint` tells the same.
    let out = mayfly()
        .args([
            "notification-endpoint",
            "uploads",
            "--endpoint",
            &s.endpoint(),
        ])
        .env("MAYFLY_ACCESS_KEY_ID", &s.access_key_id)
        .env("MAYFLY_SECRET_ACCESS_KEY", &s.secret_access_key)
        .output()
        .expect("run mayfly notification-endpoint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), endpoint);
    let urls = s.urls_addr.unwrap();
    assert!(
        endpoint.starts_with(&format!(
            "http://localhost:{}/s3-events/uploads/",
            urls.port()
        )),
        "{endpoint}"
    );
    ceph.boto3(&["bucket", "photos"]);
    ceph.boto3(&["notify", "photos", "uploads", &endpoint, "up/"]);
    // Keys under the filter's prefix only; S3 encodes them in records.
    ceph.boto3(&[
        "put",
        "photos",
        "up/a.jpg",
        "other/skip.jpg",
        "up/red flower.jpg",
    ]);
    wait_for(Duration::from_secs(60), "both uploads' records", || {
        keys(&s, "uploads").len() >= 2
    });
    let first = records(&s, "uploads");
    let record = first
        .iter()
        .find(|r| r["s3"]["object"]["key"] == "up/red+flower.jpg")
        .unwrap_or_else(|| panic!("no record of up/red flower.jpg: {first:?}"));
    assert_eq!(record["eventName"], "ObjectCreated:Put");
    assert_eq!(record["eventSource"], "aws:s3");
    assert_eq!(record["awsRegion"], "us-east-1");
    assert_eq!(record["s3"]["bucket"]["name"], "photos");
    assert_eq!(record["s3"]["bucket"]["arn"], "arn:aws:s3:::photos");
    assert_eq!(record["s3"]["object"]["size"], "up/red flower.jpg".len());
    assert_eq!(record["s3"]["configurationId"], "uploads-created");
    // Down: the gateway keeps what is put meanwhile in the topic's queue.
    s.kill_9();
    ceph.boto3(&[
        "put",
        "photos",
        "up/while-down-1.jpg",
        "up/while-down-2.jpg",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    s.restart();
    // Ceph 16.2's queue worker may have stalled on the failed pushes.
    ceph.restart_rgw();
    ceph.boto3(&["put", "photos", "up/after.jpg"]);
    let all = [
        "up/a.jpg",
        "up/red+flower.jpg",
        "up/while-down-1.jpg",
        "up/while-down-2.jpg",
        "up/after.jpg",
    ];
    wait_for(Duration::from_secs(90), "every upload's record", || {
        let got = keys(&s, "uploads");
        all.iter().all(|k| got.iter().any(|g| g == k))
    });
    // Once each: nothing more comes, and nothing came twice.
    std::thread::sleep(Duration::from_secs(3));
    let mut got = keys(&s, "uploads");
    got.sort();
    let mut want: Vec<String> = all.iter().map(|k| k.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "one record per PUT under up/");
    let invocations = s.invocations("uploads", 100);
    assert_eq!(invocations.len(), all.len(), "one invocation per record");
    assert!(invocations.iter().all(|i| i["invocationType"] == "Event"));
}

/// A record as Ceph RGW pushes it.
fn push_body(bucket: &str, key: &str, event_id: &str) -> Vec<u8> {
    json!({"Records": [{
        "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
        "eventTime": "2026-12-01T20:40:08.180693Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
               "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 1, "eTag": "e", "sequencer": "1"}},
        "eventId": event_id
    }]})
    .to_string()
    .into_bytes()
}

#[test]
fn the_push_endpoint_lets_in_its_token_and_the_buckets_the_policy_names_only() {
    let s = with_urls();
    let urls = s.urls_addr.unwrap();
    s.create("pushed", &image_path("recorder.zip"), &[]);
    s.create("other", &image_path("recorder.zip"), &[]);
    let endpoint = push_endpoint(&s, "pushed");
    let path = endpoint.split_once(&format!(":{}", urls.port())).unwrap().1;
    let token = path.rsplit('/').next().unwrap();
    let post = |path: &str, body: &[u8]| {
        http(
            urls,
            "POST",
            path,
            &[("content-type", "application/json")],
            body,
        )
    };
    let message = |got: &crate::support::http::HttpResponse| -> String {
        got.json()["Message"].as_str().unwrap_or("").to_string()
    };
    let body = push_body("photos", "a b.txt", "1");
    // No permission for S3 yet.
    let refused = post(path, &body);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(
        message(&refused).contains("--principal s3.amazonaws.com"),
        "{}",
        refused.text()
    );
    allow_bucket(&s, "pushed", "photos");
    allow_bucket(&s, "other", "photos");
    // A wrong token, or this token on another function.
    let wrong = format!("/s3-events/pushed/{}", "0".repeat(32));
    assert_eq!(post(&wrong, &body).status, 403);
    assert_eq!(
        post(&format!("/s3-events/other/{token}"), &body).status,
        403
    );
    // A bucket the policy does not name; a body without records.
    assert_eq!(post(path, &push_body("secrets", "k", "2")).status, 403);
    let bad = post(path, br#"{"Records": []}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert_eq!(http(urls, "GET", path, &[], b"").status, 405);
    // Let in, and the same push again (the answer was lost): queued once.
    let ok = post(path, &body);
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(post(path, &body).status, 200);
    wait_for(Duration::from_secs(30), "the pushed record", || {
        !keys(&s, "pushed").is_empty()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(keys(&s, "pushed"), ["a+b.txt"]);
    // Counted: one queued, one recognised, and the five refusals above.
    assert_eq!(pushed(&s, "queued"), 1.0);
    assert_eq!(pushed(&s, "duplicate"), 1.0);
    assert_eq!(pushed(&s, "refused"), 5.0);
    assert!(keys(&s, "other").is_empty());
    let got: Value = records(&s, "pushed")[0].clone();
    assert_eq!(got["eventSource"], "aws:s3");
    // A function that is gone: its old endpoint answers 404.
    let other = push_endpoint(&s, "other");
    let other_path = other
        .split_once(&format!(":{}", urls.port()))
        .unwrap()
        .1
        .to_string();
    s.aws(&["delete-function", "--function-name", "other"]).ok();
    assert_eq!(post(&other_path, &body).status, 404);
    // No endpoint for a function that does not exist.
    let missing = s.signed(
        "GET",
        "/mayfly/2025-01-01/functions/nope/notification-endpoint",
        &[],
        b"",
    );
    missing.assert_error(404, "ResourceNotFoundException");
}
