//! The engine without QEMU: a `Host` over a real store with a runner that
//! answers at once (or when told), to prove the one dispatch path's
//! choices (run, throttle, record) and that any `Source` reaches it. The
//! real VM layer is proven by the end-to-end tests.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mayfly_host::admission::Throttle;
use mayfly_host::dispatch::Dispatcher;
use mayfly_host::error::HostError;
use mayfly_host::job::{InvocationKind, Job};
use mayfly_host::source::{Source, SourceFuture};
use mayfly_host::Host;
use tokio::sync::Semaphore;

use support::{echo, host, invoke, EchoRunner};

#[tokio::test]
async fn a_sync_invocation_runs_once_and_is_recorded() {
    let runner = EchoRunner::open();
    let (_dir, host) = host(runner.clone(), 4);
    let answer = invoke(&host, "req-1", br#"{"a":1}"#).await.unwrap();
    assert_eq!(&answer[..], br#"{"a":1}"#);
    assert_eq!(runner.runs.load(Ordering::SeqCst), 1);
    let records = host.store().list_invocations("echo", 10).unwrap();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(
        (record.request_id.as_str(), record.status.as_str()),
        ("req-1", "success")
    );
    assert_eq!(record.invocation_type, "RequestResponse");
    assert_eq!(
        record.memory_size_mb, 256,
        "settings parsed from the config"
    );
    assert!(
        record.log.contains("hello from the runner"),
        "{}",
        record.log
    );
    assert!(
        record.log.contains("REPORT RequestId: req-1"),
        "{}",
        record.log
    );
}

#[tokio::test]
async fn over_the_limit_is_a_throttle_at_once_and_the_slot_comes_back() {
    let runner = EchoRunner::open();
    runner.gate.forget_permits(Semaphore::MAX_PERMITS);
    let (_dir, host) = host(runner.clone(), 1);
    let held = {
        let host = host.clone();
        tokio::spawn(async move { invoke(&host, "held", b"{}").await })
    };
    while runner.runs.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let refused = tokio::time::timeout(Duration::from_secs(2), invoke(&host, "refused", b"{}"))
        .await
        .expect("a throttle is answered at once, not queued")
        .unwrap_err();
    assert!(
        matches!(refused, HostError::Throttled(Throttle::Account)),
        "{refused:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a throttle waits"
    );
    assert_eq!(runner.runs.load(Ordering::SeqCst), 1, "nothing ran for it");
    runner.gate.add_permits(1);
    held.await.unwrap().unwrap();
    // The held invocation's slot is free again.
    runner.gate.add_permits(1);
    invoke(&host, "after", b"{}").await.unwrap();
    let statuses: Vec<String> = host
        .store()
        .list_invocations("echo", 10)
        .unwrap()
        .into_iter()
        .map(|r| format!("{}:{}", r.request_id, r.status))
        .collect();
    assert!(
        statuses.contains(&"refused:throttled".to_string()),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_dropped_caller_cancels_its_invocation() {
    let runner = EchoRunner::open();
    runner.gate.forget_permits(Semaphore::MAX_PERMITS);
    let (_dir, host) = host(runner.clone(), 1);
    let waiting = tokio::time::timeout(Duration::from_millis(200), invoke(&host, "gone", b"{}"));
    assert!(waiting.await.is_err(), "it should still be running");
    // The cancelled run gives its slot back and is recorded as cancelled.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = host.store().list_invocations("echo", 10).unwrap();
        if records.iter().any(|r| r.status == "cancelled") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cancelled record: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    runner.gate.add_permits(1);
    invoke(&host, "next", b"{}").await.unwrap();
}

/// A source of its own: one event, dispatched the way every source does.
#[derive(Debug)]
struct OneShot {
    host: Arc<Host>,
    done: tokio::sync::Notify,
}

impl Source for OneShot {
    fn name(&self) -> &'static str {
        "one-shot test source"
    }

    fn run(self: Arc<Self>, dispatcher: Arc<Dispatcher>) -> SourceFuture {
        Box::pin(async move {
            let version = self.host.resolve(&echo(), "us-east-1").unwrap().version;
            let job = Job::new(
                "from-a-source".into(),
                version,
                None,
                "arn:aws:lambda:us-east-1:000000000000:function:echo".into(),
                Bytes::from_static(br#"{"source":true}"#),
                InvocationKind::Async,
            );
            let completed = dispatcher.dispatch(job).await.unwrap();
            assert_eq!(&completed.payload()[..], br#"{"source":true}"#);
            self.done.notify_one();
        })
    }
}

#[tokio::test]
async fn sources_and_the_async_queue_go_through_the_same_dispatch() {
    let runner = EchoRunner::open();
    let (_dir, host) = host(runner.clone(), 4);
    host.start();
    let source = Arc::new(OneShot {
        host: host.clone(),
        done: tokio::sync::Notify::new(),
    });
    host.start_source(source.clone());
    tokio::time::timeout(Duration::from_secs(5), source.done.notified())
        .await
        .expect("the source's invocation ran");
    host.invoke_async(&echo(), "queued", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let records = host.store().list_invocations("echo", 10).unwrap();
        let ran: Vec<_> = records
            .iter()
            .map(|r| (r.request_id.as_str(), r.invocation_type.as_str()))
            .collect();
        if ran.contains(&("queued", "Event")) {
            assert!(ran.contains(&("from-a-source", "Event")), "{ran:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queued event never ran: {ran:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runner.runs.load(Ordering::SeqCst), 2);
}
