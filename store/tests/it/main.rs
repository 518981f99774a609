//! Tests of mayfly-store's public API, each on a fresh temporary directory.

mod aliases;
mod blobs;
mod concurrency;
mod durability;
mod events;
mod functions;
mod mappings;
mod schedules;
mod space;
mod tags;
mod urls;

use mayfly_store::{BlobRef, Event, FunctionVersion, Kind, Store, StoreError};
use serde_json::json;

/// A fresh store in its own temporary directory (kept alive by the guard).
pub fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("data")).expect("open");
    (dir, store)
}

/// Stores a package and creates a function with it.
pub fn create(store: &Store, name: &str, code: &[u8]) -> FunctionVersion {
    let blob: BlobRef = store.put_blob(code).unwrap();
    store
        .create_function(
            name,
            json!({"FunctionName": name, "MemorySize": 128, "Timeout": 3, "Description": ""}),
            &blob.sha256_hex,
            blob.size,
        )
        .unwrap()
}

/// Asserts that `err` says that a `kind` was not found.
#[track_caller]
pub fn assert_not_found(err: StoreError, kind: Kind) {
    assert!(
        matches!(err, StoreError::NotFound { kind: k, .. } if k == kind),
        "expected a {kind} not found: {err}"
    );
}

/// A time after every event's next attempt and lease in these tests.
pub const FAR_FUTURE_MS: u64 = u64::MAX / 2;

/// Every queued event, in request-id order. They are claimed at
/// [`FAR_FUTURE_MS`] with a lease of 0 ms, so they stay claimable at that
/// time (call it again to see the queue again) but not before it.
pub fn queued(store: &Store) -> Vec<Event> {
    let mut events = store
        .claim_due_events(FAR_FUTURE_MS, usize::MAX, 0)
        .unwrap();
    events.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    events
}

/// The request ids of [`queued`].
pub fn queued_ids(store: &Store) -> Vec<String> {
    queued(store).into_iter().map(|e| e.request_id).collect()
}
