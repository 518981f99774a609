//! An MQTT event source with a real Mosquitto (Debian's, which `cargo
//! xtask bootstrap` installs), started in a temporary directory on a free
//! loopback port: QoS 1 messages reach the mapped function in batches,
//! including those published while the host was down (the persistent
//! session keeps them until acknowledged); a failing function's batch goes
//! to the on-failure destination after its retries; bad mappings get
//! Lambda's errors.

use std::time::Duration;

use mayfly_testbed::mosquitto::Mosquitto;

use serde_json::{json, Value};

use crate::support::aws::function_arn;
use crate::support::fixtures::image_path;
use crate::support::recorder::{events, records, wait_for};
use crate::support::Server;

/// `aws lambda create-event-source-mapping` of `source` into `function`.
fn map(s: &Server, function: &str, source: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "create-event-source-mapping",
        "--function-name",
        function,
        "--event-source-arn",
        source,
    ];
    args.extend_from_slice(extra);
    s.aws(&args).ok()
}

/// The `n`s of the messages `function` (the recorder) got.
fn received(s: &Server, function: &str) -> Vec<u64> {
    records(s, function)
        .iter()
        .filter_map(|r| r["payload"]["n"].as_u64())
        .collect()
}

fn messages(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| json!({ "n": n }).to_string()).collect()
}

#[test]
fn five_hundred_qos1_messages_arrive_in_batches_even_those_sent_while_the_host_was_down() {
    let broker = Mosquitto::start();
    let mut s = Server::start();
    s.create("mqtt-sink", &image_path("recorder.zip"), &[]);
    let source = format!("mqtt://127.0.0.1:{}/sensors/#", broker.port);
    let made = map(
        &s,
        "mqtt-sink",
        &source,
        &[
            "--batch-size",
            "10",
            "--maximum-batching-window-in-seconds",
            "1",
        ],
    );
    assert_eq!(made["State"], "Enabled");
    assert_eq!(made["BatchSize"], 10);
    assert_eq!(made["EventSourceArn"], source.as_str());
    let uuid = made["UUID"].as_str().unwrap().to_string();
    // The consumer's session exists once a first message came through.
    wait_for(Duration::from_secs(30), "the first message", || {
        broker.publish("sensors/warmup", &[json!({"n": 100_000}).to_string()]);
        std::thread::sleep(Duration::from_millis(500));
        received(&s, "mqtt-sink").contains(&100_000)
    });
    broker.publish("sensors/a", &messages(0..200));
    wait_for(Duration::from_secs(60), "the first 200 messages", || {
        received(&s, "mqtt-sink")
            .iter()
            .filter(|n| **n < 200)
            .count()
            >= 200
    });
    // Down: the broker keeps what comes meanwhile for the session.
    s.stop_cleanly();
    broker.publish("sensors/b", &messages(200..400));
    s.restart();
    broker.publish("sensors/a", &messages(400..500));
    wait_for(Duration::from_secs(90), "all 500 messages", || {
        let got = received(&s, "mqtt-sink");
        (0..500).all(|n| got.contains(&n))
    });
    // In batches of at most 10, each a record with its topic.
    let records = s.invocations("mqtt-sink", 1000);
    assert!(records.len() < 200, "{} invocations", records.len());
    let got = received(&s, "mqtt-sink");
    let duplicates = got.len() - {
        let mut unique = got.clone();
        unique.sort_unstable();
        unique.dedup();
        unique.len()
    };
    println!(
        "{} invocations for {} messages ({} delivered twice)",
        records.len(),
        got.len(),
        duplicates
    );
    let got_mapping = s.aws(&["get-event-source-mapping", "--uuid", &uuid]).ok();
    assert_eq!(got_mapping["FunctionArn"], function_arn("mqtt-sink"));
    let listed = s
        .aws(&["list-event-source-mappings", "--function-name", "mqtt-sink"])
        .ok();
    assert_eq!(listed["EventSourceMappings"][0]["UUID"], uuid.as_str());
}

#[test]
fn a_failing_batch_is_retried_then_sent_to_the_on_failure_destination() {
    let broker = Mosquitto::start();
    let s = Server::start();
    s.create("mqtt-failing", &image_path("misbehave.zip"), &[]);
    s.create("mqtt-dlq", &image_path("recorder.zip"), &[]);
    let source = format!("mqtt://127.0.0.1:{}/jobs", broker.port);
    let destination = json!({"OnFailure": {"Destination": function_arn("mqtt-dlq")}}).to_string();
    map(
        &s,
        "mqtt-failing",
        &source,
        &[
            "--batch-size",
            "5",
            "--maximum-batching-window-in-seconds",
            "1",
            "--maximum-retry-attempts",
            "1",
            "--destination-config",
            &destination,
        ],
    );
    // The session first: until the consumer subscribed, nothing is kept.
    wait_for(
        Duration::from_secs(30),
        "the destination's first record",
        || {
            broker.publish("jobs", &messages(0..3));
            std::thread::sleep(Duration::from_millis(1500));
            !s.invocations("mqtt-dlq", 10).is_empty()
        },
    );
    let event = events(&s, "mqtt-dlq").remove(0);
    assert_eq!(
        event["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(event["requestContext"]["approximateInvokeCount"], 2);
    assert_eq!(event["eventSourceArn"], source.as_str());
    assert!(
        event["payload"]["Records"][0]["payload"]["n"].is_u64(),
        "{event}"
    );
    // Each batch was tried twice: the first try and one retry.
    let tries = s.invocations("mqtt-failing", 100);
    assert!(tries.len() >= 2 && tries.iter().all(|r| r["status"] != "success"));
}

#[test]
fn bad_mappings_get_lambdas_errors() {
    let s = Server::start();
    s.create("mqtt-bad", &image_path("echo.zip"), &[]);
    let refused = |args: &[&str], code: &str| {
        let cli = s.aws(args);
        assert_ne!(cli.code, 0, "{args:?} succeeded");
        assert!(cli.stderr.contains(code), "{args:?}: {}", cli.stderr);
    };
    let create = |source: &'static str, extra: &'static [&'static str]| {
        let mut args = vec![
            "create-event-source-mapping",
            "--function-name",
            "mqtt-bad",
            "--event-source-arn",
            source,
        ];
        args.extend_from_slice(extra);
        args
    };
    refused(
        &create("kafka://127.0.0.1:9092/t", &[]),
        "InvalidParameterValueException",
    );
    // A bucket notifies instead; the error says how.
    refused(
        &create("arn:aws:s3:::photos", &[]),
        "mayfly notification-endpoint",
    );
    refused(
        &create("mqtt://127.0.0.1:1883/a/#/b", &[]),
        "InvalidParameterValueException",
    );
    refused(
        &create("mqtt://127.0.0.1:1883/t", &["--batch-size", "10001"]),
        "ValidationException",
    );
    refused(
        &create(
            "mqtt://127.0.0.1:1883/t",
            &[
                "--filter-criteria",
                r#"{"Filters":[{"Pattern":"{\"n\": 1}"}]}"#,
            ],
        ),
        "InvalidParameterValueException",
    );
    refused(
        &[
            "create-event-source-mapping",
            "--function-name",
            "nope",
            "--event-source-arn",
            "mqtt://127.0.0.1:1883/t",
        ],
        "ResourceNotFoundException",
    );
    refused(
        &[
            "get-event-source-mapping",
            "--uuid",
            "00000000-0000-4000-8000-000000000000",
        ],
        "ResourceNotFoundException",
    );
    // Disabled, updated and deleted.
    let made = s
        .aws(&[
            "create-event-source-mapping",
            "--function-name",
            "mqtt-bad",
            "--event-source-arn",
            "mqtt://127.0.0.1:1/t",
            "--no-enabled",
        ])
        .ok();
    assert_eq!(made["State"], "Disabled");
    let uuid = made["UUID"].as_str().unwrap();
    let updated = s
        .aws(&[
            "update-event-source-mapping",
            "--uuid",
            uuid,
            "--batch-size",
            "7",
        ])
        .ok();
    assert_eq!(updated["BatchSize"], 7);
    let deleted = s.aws(&["delete-event-source-mapping", "--uuid", uuid]).ok();
    assert_eq!(deleted["State"], "Deleting");
    refused(
        &["get-event-source-mapping", "--uuid", uuid],
        "ResourceNotFoundException",
    );
}

#[test]
fn filter_criteria_keep_only_matching_messages_and_the_rest_are_acknowledged() {
    let broker = Mosquitto::start();
    let s = Server::start();
    s.create("mqtt-filtered", &image_path("recorder.zip"), &[]);
    let source = format!("mqtt://127.0.0.1:{}/readings", broker.port);
    let criteria = json!({"Filters": [
        {"Pattern": json!({"payload": {"n": [{"numeric": [">=", 5]}]}}).to_string()},
        {"Pattern": json!({"payload": {"kind": ["alarm"]}}).to_string()},
    ]})
    .to_string();
    let made = map(
        &s,
        "mqtt-filtered",
        &source,
        &["--batch-size", "10", "--filter-criteria", &criteria],
    );
    assert!(
        made["FilterCriteria"]["Filters"][0]["Pattern"].is_string(),
        "{made}"
    );
    // Until the session exists, nothing is kept for it: publish until the
    // first alarm arrives.
    wait_for(Duration::from_secs(30), "the first alarm", || {
        broker.publish(
            "readings",
            &[json!({"kind": "alarm", "n": 100_000}).to_string()],
        );
        std::thread::sleep(Duration::from_millis(500));
        received(&s, "mqtt-filtered").contains(&100_000)
    });
    broker.publish("readings", &messages(0..10));
    broker.publish(
        "readings",
        &[json!({"kind": "alarm", "n": 200_000}).to_string()],
    );
    wait_for(Duration::from_secs(30), "the second alarm", || {
        received(&s, "mqtt-filtered").contains(&200_000)
    });
    let got: Vec<u64> = received(&s, "mqtt-filtered")
        .into_iter()
        .filter(|n| *n < 100)
        .collect();
    // 0 to 4 were left out (and acknowledged: what came after them arrived).
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, [5, 6, 7, 8, 9], "{got:?}");
}
