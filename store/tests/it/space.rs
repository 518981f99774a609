//! Space: retention of records, the bounded queue, and deleting that gives
//! the space back.

use std::path::Path;
use std::time::Duration;

use mayfly_store::{Enqueued, Event, InvocationRecord, Store, RESERVE_BYTES, RESERVE_FILE};

use crate::{create, store};

fn record(function: &str, i: u32, log_bytes: usize) -> InvocationRecord {
    InvocationRecord {
        request_id: format!("req-{function}-{i}"),
        function_name: function.to_string(),
        version: "$LATEST".into(),
        invocation_type: "RequestResponse".into(),
        status: "success".into(),
        error_type: None,
        started_at: 1_700_000_000_000 + u64::from(i),
        duration_ms: 1.0,
        billed_duration_ms: 1,
        init_duration_ms: None,
        memory_size_mb: 128,
        max_memory_used_mb: 20,
        log: "x".repeat(log_bytes),
        egress_sent_bytes: 0,
        egress_received_bytes: 0,
    }
}

fn event(function: &str, id: &str) -> Event {
    Event::new(id, function, "$LATEST", b"{}".to_vec(), 1)
}

/// Bytes of every file under `dir`.
fn size_of(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                size_of(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[test]
fn records_are_kept_within_the_retention_set() {
    let (_d, s) = store();
    s.set_records_per_function(3);
    for i in 0..5 {
        s.insert_invocation(&record("f", i, 10)).unwrap();
    }
    let ids: Vec<_> = s
        .list_invocations("f", 10)
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    assert_eq!(ids, ["req-f-4", "req-f-3", "req-f-2"]);
}

#[test]
fn the_queue_is_bounded_per_function() {
    let (_d, s) = store();
    assert!(s.enqueue_event_within(&event("f", "a"), 2).unwrap());
    assert!(s.enqueue_event_within(&event("f", "b"), 2).unwrap());
    assert!(!s.enqueue_event_within(&event("f", "c"), 2).unwrap());
    // Another function has its own bound.
    assert!(s.enqueue_event_within(&event("g", "d"), 2).unwrap());
    assert_eq!(s.queued_events("f").unwrap(), 2);
    assert_eq!(s.queued_events("g").unwrap(), 1);
}

#[test]
fn a_pushed_event_is_queued_once_per_receipt_while_its_receipt_is_kept() {
    let (_d, s) = store();
    let at = |id: &str, ms: u64| Event::new(id, "f", "$LATEST", b"{}".to_vec(), ms);
    let keep = 1_000;
    assert_eq!(
        s.enqueue_event_once(&at("a", 10), "r1", 2, keep).unwrap(),
        Enqueued::Queued
    );
    // The same receipt again, under another request id: not queued.
    assert_eq!(
        s.enqueue_event_once(&at("b", 20), "r1", 2, keep).unwrap(),
        Enqueued::Duplicate
    );
    assert_eq!(s.queued_events("f").unwrap(), 1);
    // Still a duplicate after the event ran and left the queue.
    s.complete_event_and_enqueue("a", &[]).unwrap();
    assert_eq!(
        s.enqueue_event_once(&at("c", 30), "r1", 2, keep).unwrap(),
        Enqueued::Duplicate
    );
    assert_eq!(
        s.enqueue_event_once(&at("d", 40), "r2", 2, keep).unwrap(),
        Enqueued::Queued
    );
    assert_eq!(
        s.enqueue_event_once(&at("e", 50), "r3", 2, keep).unwrap(),
        Enqueued::Queued
    );
    // The bound holds, and a refused event leaves no receipt behind.
    assert_eq!(
        s.enqueue_event_once(&at("f", 60), "r4", 2, keep).unwrap(),
        Enqueued::Full
    );
    s.complete_event_and_enqueue("d", &[]).unwrap();
    assert_eq!(
        s.enqueue_event_once(&at("g", 70), "r4", 2, keep).unwrap(),
        Enqueued::Queued
    );
    // Past `keep`, a receipt is forgotten.
    s.complete_event_and_enqueue("e", &[]).unwrap();
    assert_eq!(
        s.enqueue_event_once(&at("h", 1_011), "r1", 2, keep)
            .unwrap(),
        Enqueued::Queued
    );
}

#[test]
fn deleting_every_function_gives_the_space_back() {
    let (dir, s) = store();
    let data = dir.path().join("data");
    let reserve = std::fs::metadata(data.join(RESERVE_FILE)).unwrap();
    assert_eq!(reserve.len(), RESERVE_BYTES as u64, "a reserve for deletes");
    s.compact().unwrap();
    let empty = size_of(&data);
    for f in 0..5 {
        let name = format!("f{f}");
        create(&s, &name, format!("package {f}").repeat(10_000).as_bytes());
        s.publish_version(&name, None, None).unwrap();
        s.enqueue_event(&event(&name, &format!("e{f}"))).unwrap();
        for i in 0..50 {
            s.insert_invocation(&record(&name, i, 20_000)).unwrap();
        }
    }
    let full = size_of(&data);
    assert!(full > empty + 5_000_000, "{empty} -> {full}");
    for f in 0..5 {
        s.delete_function(&format!("f{f}")).unwrap();
    }
    let report = s.gc_blobs(Duration::ZERO).unwrap();
    assert_eq!(report.removed, 5);
    s.compact().unwrap();
    let after = size_of(&data);
    assert!(
        after <= empty + 8 * 1024,
        "{empty} bytes empty, {full} full, {after} after deleting everything"
    );
}

#[test]
fn an_old_database_is_switched_to_incremental_vacuum() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("mayfly.db")).unwrap();
        conn.execute_batch("PRAGMA auto_vacuum = NONE; CREATE TABLE t (x);")
            .unwrap();
    }
    drop(Store::open(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("mayfly.db")).unwrap();
    let mode: i64 = conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, 2, "INCREMENTAL");
}

#[test]
fn a_data_directory_open_to_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    Store::open(&data).unwrap();
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_data_directory_of_another_user_open_to_others_is_refused() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Only root can give a directory away; elsewhere this case cannot be made.
    if chown(&data, Some(65534), None).is_err() {
        return;
    }
    let refused = Store::open(&data).unwrap_err();
    assert!(
        matches!(refused, mayfly_store::StoreError::NotPrivate { .. }),
        "{refused}"
    );
    assert!(refused.to_string().contains("chmod 700"), "{refused}");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o777, "not ours: left as it was");
}
