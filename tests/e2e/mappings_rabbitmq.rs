//! A RabbitMQ queue as an event source, with a real RabbitMQ node
//! (Debian's `rabbitmq-server`, which `cargo xtask bootstrap` installs)
//! started in a temporary directory on free loopback ports: the queue
//! drains into the function as Lambda's `rmqMessagesByQueue` events, and
//! messages are acknowledged only after success (a failing function leaves
//! them in the queue; pointed at a working one, they arrive).

use std::time::Duration;

use mayfly_testbed::rabbitmq::RabbitMq;
use serde_json::{json, Value};

use crate::support::fixtures::{b64decode, image_path};
use crate::support::recorder::{events, wait_for};
use crate::support::Server;

/// The `n`s the recorder `function` got from the queue `key`.
fn received(s: &Server, function: &str, key: &str) -> Vec<u64> {
    events(s, function)
        .iter()
        .flat_map(|e| {
            e["rmqMessagesByQueue"][key]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|m| {
            let body = b64decode(m["data"].as_str()?);
            serde_json::from_slice::<Value>(&body).ok()?["n"].as_u64()
        })
        .collect()
}

#[test]
fn a_queue_drains_into_the_function_and_is_acknowledged_only_after_success() {
    let broker = RabbitMq::start();
    let s = Server::start();
    s.create("rmq-failing", &image_path("misbehave.zip"), &[]);
    s.create("rmq-sink", &image_path("recorder.zip"), &[]);
    let messages: Vec<String> = (0..50).map(|n| json!({ "n": n }).to_string()).collect();
    broker.publish("jobs", &messages);
    let source = format!("amqp://guest@127.0.0.1:{}/%2f/jobs", broker.port);
    let access = json!([{"Type": "BASIC_AUTH", "URI": "guest"}]).to_string();
    // A function that always fails: nothing is acknowledged.
    let made = s
        .aws(&[
            "create-event-source-mapping",
            "--function-name",
            "rmq-failing",
            "--event-source-arn",
            &source,
            "--batch-size",
            "10",
            "--source-access-configurations",
            &access,
        ])
        .ok();
    let uuid = made["UUID"].as_str().unwrap().to_string();
    wait_for(
        Duration::from_secs(30),
        "the failing function tried",
        || !s.invocations("rmq-failing", 5).is_empty(),
    );
    let (ready, unacked) = broker.depth("jobs");
    assert_eq!(ready + unacked, 50, "nothing acknowledged while failing");
    // Pointed at a function that works, the queue drains into it.
    s.aws(&[
        "update-event-source-mapping",
        "--uuid",
        &uuid,
        "--function-name",
        "rmq-sink",
    ])
    .ok();
    wait_for(Duration::from_secs(60), "all 50 messages", || {
        let got = received(&s, "rmq-sink", "jobs::/");
        (0..50).all(|n| got.contains(&n))
    });
    let first = &events(&s, "rmq-sink")[0];
    assert_eq!(first["eventSource"], "aws:rmq");
    assert_eq!(first["eventSourceArn"], source.as_str());
    let message = &first["rmqMessagesByQueue"]["jobs::/"][0];
    assert_eq!(
        message["basicProperties"]["contentType"],
        "application/json"
    );
    wait_for(Duration::from_secs(30), "an empty queue", || {
        broker.depth("jobs") == (0, 0)
    });
}
