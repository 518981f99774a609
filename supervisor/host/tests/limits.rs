//! The host's bounds without QEMU: memory admission, the event queue,
//! invocation records, concurrent uploads and the collection of packages
//! and images, over a real store with a runner that answers when told.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use mayfly_host::admission::Throttle;
use mayfly_host::error::HostError;
use mayfly_host::memory::MemoryLimits;
use mayfly_host::HostLimits;
use tokio::sync::Semaphore;

use support::{host_with, invoke, EchoRunner};

fn limits(budget_mb: u64) -> HostLimits {
    HostLimits {
        memory: MemoryLimits {
            budget_mb,
            host_limit_mb: 100_000,
            overhead_mb: 40,
        },
        ..HostLimits::for_this_host(None)
    }
}

/// Waits until `n` runs have started.
async fn until_running(runner: &EchoRunner, n: usize) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while runner.runs.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the runs started");
}

#[tokio::test]
async fn memory_admits_what_fits_and_throttles_the_rest_at_once() {
    let runner = EchoRunner::open();
    runner.gate.forget_permits(Semaphore::MAX_PERMITS);
    // `echo` has 256 MB: two fit in 512, though 16 VMs are allowed.
    let (_dir, host) = host_with(runner.clone(), 16, limits(512));
    let held: Vec<_> = (0..2)
        .map(|i| {
            let host = host.clone();
            tokio::spawn(async move { invoke(&host, &format!("held-{i}"), b"{}").await })
        })
        .collect();
    until_running(&runner, 2).await;
    assert_eq!(host.usage().guest_mb, 512);
    assert_eq!(host.usage().host_mb, 2 * (256 + 40));
    let refused = tokio::time::timeout(Duration::from_secs(1), invoke(&host, "over", b"{}"))
        .await
        .expect("a memory throttle is answered at once")
        .unwrap_err();
    assert!(
        matches!(
            refused,
            HostError::Throttled(Throttle::Memory {
                needed_mb: 256,
                in_use_mb: 512,
                limit_mb: 512,
                host: false
            })
        ),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("memory budget"), "{refused}");
    assert_eq!(runner.runs.load(Ordering::SeqCst), 2, "nothing ran for it");
    runner.gate.add_permits(2);
    for h in held {
        h.await.unwrap().unwrap();
    }
    assert_eq!(host.usage().guest_mb, 0, "the memory came back");
    runner.gate.add_permits(1);
    invoke(&host, "after", b"{}").await.unwrap();
}

#[tokio::test]
async fn provisioned_concurrency_must_fit_in_the_memory_budget() {
    let runner = EchoRunner::open();
    let (_dir, host) = host_with(runner, 16, limits(1024));
    host.store().publish_version("echo", None, None).unwrap();
    // 5 warm VMs of 256 MB need 1280 MB: refused, with the figures.
    let refused = host.put_provisioned("echo", "1", 5).await.unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("1280 MB") && message.contains("1024 MB"),
        "{message}"
    );
    assert!(host.store().get_provisioned_config("echo", "1").is_err());
    // 4 fit (the fake runner boots none, so nothing else holds memory).
    host.put_provisioned("echo", "1", 4).await.unwrap();
}

/// Every file under `dir`, recursively, with its size.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            found.extend(files_under(&entry.path()));
        } else {
            found.push((entry.path(), meta.len()));
        }
    }
    found
}

#[tokio::test]
async fn a_lying_zip_bomb_is_refused_and_writes_nothing() {
    let (dir, host) = host_with(EchoRunner::open(), 4, limits(1024));
    let before = files_under(dir.path());
    let bomb = mayfly_runner::bomb::lying_zip(300_000_000, 4096);
    let refused = host.store_package(&bomb).unwrap_err();
    assert!(
        matches!(
            refused,
            HostError::Package(mayfly_runner::upload::UploadError::UnzippedTooLarge(_))
        ),
        "{refused}"
    );
    assert_eq!(
        files_under(dir.path()),
        before,
        "the bomb left files behind"
    );
}

#[tokio::test]
async fn an_accepted_package_brings_its_image_and_uploads_are_bounded() {
    let (dir, host) = host_with(EchoRunner::open(), 4, limits(1024));
    let blob = host.store_package(&support::package()).unwrap();
    let image = dir
        .path()
        .join("images")
        .join(format!("{}.elf", blob.sha256_hex));
    assert_eq!(
        std::fs::read(&image).unwrap(),
        mayfly_runner::testing::pvh_elf(mayfly_runner::testing::EXIT_OK),
        "the checked bootstrap is the image"
    );
    let (_dir, none_at_once) = host_with(
        EchoRunner::open(),
        4,
        HostLimits {
            concurrent_uploads: 0,
            ..limits(1024)
        },
    );
    let refused = none_at_once.store_package(&support::package()).unwrap_err();
    assert!(matches!(refused, HostError::Overloaded(_)), "{refused}");
    assert!(refused.to_string().contains("package uploads"), "{refused}");
}

/// A bootable package that differs from [`support::package`] by a README.
fn other_package(text: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("bootstrap", options).unwrap();
    zip.write_all(&mayfly_runner::testing::pvh_elf(
        mayfly_runner::testing::SPIN,
    ))
    .unwrap();
    zip.start_file("README", options).unwrap();
    zip.write_all(text).unwrap();
    zip.finish().unwrap().into_inner()
}

#[tokio::test]
async fn unreferenced_packages_and_images_are_collected_once_unpinned() {
    let (dir, host) = host_with(EchoRunner::open(), 4, limits(1024));
    let images = dir.path().join("images");
    let image = |sha: &str| images.join(format!("{sha}.elf"));
    let store = host.store();
    let old = host
        .store_package(&other_package(b"one"))
        .unwrap()
        .sha256_hex
        .clone();
    store
        .create_function("f", serde_json::json!({}), &old, 1)
        .unwrap();
    let new = host
        .store_package(&other_package(b"two"))
        .unwrap()
        .sha256_hex
        .clone();
    store
        .update_latest("f", None, |v| v.code_sha256 = new.clone())
        .unwrap();
    // `old` is unreferenced now, but an invocation still uses it.
    let pin = host.images().pin(&old);
    let collected = host.collect_now().unwrap();
    assert_eq!(collected.spared, 1, "{collected:?}");
    assert!(image(&old).exists() && store.read_blob(&old).is_ok());
    drop(pin);
    let collected = host.collect_now().unwrap();
    assert_eq!(
        (collected.packages.removed, collected.images),
        (1, 1),
        "{collected:?}"
    );
    assert!(!image(&old).exists());
    assert!(image(&new).exists() && store.read_blob(&new).is_ok());
    // The echo function's package has no image (stored directly).
    let echo = store.get_version("echo", "$LATEST").unwrap().code_sha256;
    store.delete_function("f").unwrap();
    store.delete_function("echo").unwrap();
    let collected = host.collect_now().unwrap();
    assert_eq!(
        (collected.packages.removed, collected.images),
        (2, 1),
        "{collected:?}"
    );
    assert!(store.list_blobs().unwrap().is_empty());
    assert!(store.read_blob(&echo).is_err());
}

#[tokio::test]
async fn the_event_queue_is_bounded_per_function() {
    let (_dir, host) = host_with(
        EchoRunner::open(),
        4,
        HostLimits {
            queued_events_per_function: 2,
            ..limits(1024)
        },
    );
    // The host is not started: nothing drains the queue.
    for id in ["a", "b"] {
        host.invoke_async(&support::echo(), id, bytes::Bytes::from_static(b"{}"))
            .await
            .unwrap();
    }
    let refused = host
        .invoke_async(&support::echo(), "c", bytes::Bytes::from_static(b"{}"))
        .await
        .unwrap_err();
    assert!(matches!(refused, HostError::Overloaded(_)), "{refused:?}");
    assert!(refused.to_string().contains("event queue"), "{refused}");
    assert_eq!(host.store().queued_events("echo").unwrap(), 2);
}

#[tokio::test]
async fn records_are_kept_within_the_retention_bound() {
    let (_dir, host) = host_with(
        EchoRunner::open(),
        4,
        HostLimits {
            records_per_function: 2,
            ..limits(1024)
        },
    );
    for i in 0..4 {
        invoke(&host, &format!("r{i}"), b"{}").await.unwrap();
    }
    let ids: Vec<String> = host
        .store()
        .list_invocations("echo", 10)
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["r3", "r2"]);
}
