//! Settling a mapping's batches without QEMU: a `Host` over a real store
//! with a runner that echoes its event (so the test's event decides what
//! the "function" answers) or fails when the event says "explode".

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mayfly_host::mappings::{MappingSpec, Record};
use serde_json::{json, Value};

use support::{host, EchoRunner};

fn spec(max_retries: Option<u32>, bisect: bool, report_failures: bool) -> MappingSpec {
    MappingSpec {
        uuid: "11111111-2222-4333-8444-555555555555".into(),
        function: "echo".into(),
        qualifier: None,
        source: "mqtt://127.0.0.1:1883/t".into(),
        batch_size: 10,
        window: Duration::ZERO,
        max_retries,
        bisect,
        report_failures,
        on_failure: Some("arn:aws:lambda:us-east-1:000000000000:function:dlq".into()),
        password: None,
        filters: Default::default(),
    }
}

fn records(bodies: &[Value]) -> Vec<Record> {
    bodies
        .iter()
        .enumerate()
        .map(|(i, body)| Record {
            id: format!("r{i}"),
            body: body.clone(),
        })
        .collect()
}

/// The batch as its event; the echo answers it back, so records marked
/// `fail` come back as `batchItemFailures`.
fn wrap(records: &[Record]) -> Value {
    let failures: Vec<Value> = records
        .iter()
        .filter(|r| r.body["fail"] == true)
        .map(|r| json!({ "itemIdentifier": r.id }))
        .collect();
    json!({
        "Records": records.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
        "batchItemFailures": failures,
    })
}

/// What the on-failure destination was given: the records of each queued
/// event, in the order queued.
fn sent_to_destination(host: &mayfly_host::Host) -> Vec<Vec<Value>> {
    let events = host
        .store()
        .claim_due_events(u64::MAX / 2, 100, 60_000)
        .unwrap();
    events
        .iter()
        .filter(|e| e.function_name == "dlq")
        .map(|e| {
            let record: Value = serde_json::from_slice(&e.payload).unwrap();
            assert_eq!(
                record["requestContext"]["condition"],
                "RetryAttemptsExhausted"
            );
            record["payload"]["Records"].as_array().unwrap().clone()
        })
        .collect()
}

#[tokio::test]
async fn only_the_reported_failures_are_retried_then_sent_to_the_destination() {
    let runner = EchoRunner::open();
    let (_dir, host) = host(runner.clone(), 4);
    let delivery = host.delivery(spec(Some(1), false, true));
    let batch = records(&[
        json!({"n": 0}),
        json!({"n": 1, "fail": true}),
        json!({"n": 2}),
    ]);
    delivery.settle(batch, wrap).await.unwrap();
    // The batch, then the failed record alone once more.
    assert_eq!(runner.runs.load(Ordering::SeqCst), 2);
    let sent = sent_to_destination(&host);
    assert_eq!(sent, [vec![json!({"n": 1, "fail": true})]]);
}

#[tokio::test]
async fn a_failing_batch_is_halved_until_the_failing_record_is_alone() {
    let runner = EchoRunner::open();
    let (_dir, host) = host(runner.clone(), 4);
    let delivery = host.delivery(spec(Some(2), true, false));
    let batch = records(&[
        json!({"n": 0}),
        json!({"n": 1}),
        json!({"n": 2}),
        json!({"n": 3, "mode": "explode"}),
    ]);
    delivery.settle(batch, wrap).await.unwrap();
    // All four (fails), [0,1] (ok), [2,3] (fails), [2] (ok), [3] (fails:
    // its retries are spent).
    assert_eq!(runner.runs.load(Ordering::SeqCst), 5);
    assert_eq!(
        sent_to_destination(&host),
        [vec![json!({"n": 3, "mode": "explode"})]]
    );
}

#[tokio::test]
async fn a_succeeding_batch_runs_once_and_sends_nothing() {
    let runner = EchoRunner::open();
    let (_dir, host) = host(runner.clone(), 4);
    let delivery = host.delivery(spec(Some(0), false, true));
    delivery
        .settle(records(&[json!({"n": 0}), json!({"n": 1})]), wrap)
        .await
        .unwrap();
    assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
    assert!(sent_to_destination(&host).is_empty());
}
