//! Tests of mayfly-store's public API, each on a fresh temporary directory.

mod aliases;
mod blobs;
mod concurrency;
mod durability;
mod events;
mod functions;

use mayfly_store::{BlobRef, FunctionVersion, Store};
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
