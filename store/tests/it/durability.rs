use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_store::{Event, InvocationRecord, Store, LATEST};
use serde_json::json;

use crate::{create, queued, queued_ids, FAR_FUTURE_MS};

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (blob, latest, v1, alias) = {
        let s = Store::open(dir.path()).unwrap();
        let latest = create(&s, "f", b"code");
        let v1 = s.publish_version("f", None, Some("one")).unwrap();
        let alias = s.create_alias("f", "live", "1", "d", None).unwrap();
        s.tag_function("f", &[("team".to_string(), "a".to_string())].into())
            .unwrap();
        s.put_reserved_concurrency("f", 3).unwrap();
        s.put_event_invoke_config("f", "live", json!({"MaximumRetryAttempts": 0}))
            .unwrap();
        s.put_provisioned_config("f", "1", 2).unwrap();
        s.enqueue_event(&Event::new("e1", "f", "live", b"{}".to_vec(), 5))
            .unwrap();
        s.insert_invocation(&InvocationRecord {
            request_id: "r".into(),
            function_name: "f".into(),
            version: "1".into(),
            invocation_type: "Event".into(),
            status: "success".into(),
            error_type: None,
            started_at: 1,
            duration_ms: 1.0,
            billed_duration_ms: 1,
            init_duration_ms: None,
            memory_size_mb: 128,
            max_memory_used_mb: 1,
            log: String::new(),
            egress_sent_bytes: 0,
            egress_received_bytes: 0,
        })
        .unwrap();
        let blob = s.put_blob(b"code").unwrap();
        (blob, latest, v1, alias)
    };
    let s = Store::open(dir.path()).unwrap();
    let latest_now = s.get_version("f", LATEST).unwrap();
    // Tagging gave $LATEST a new revision id, and nothing else.
    assert_ne!(latest_now.revision_id, latest.revision_id);
    assert_eq!(
        mayfly_store::FunctionVersion {
            revision_id: latest.revision_id.clone(),
            ..latest_now
        },
        latest
    );
    assert_eq!(s.get_tags("f").unwrap()["team"], "a");
    assert_eq!(s.get_version("f", "1").unwrap(), v1);
    assert_eq!(s.get_alias("f", "live").unwrap(), alias);
    assert_eq!(s.get_reserved_concurrency("f").unwrap(), Some(3));
    assert_eq!(
        s.get_event_invoke_config("f", "live").unwrap().config["MaximumRetryAttempts"],
        0
    );
    assert_eq!(s.get_provisioned_config("f", "1").unwrap().requested, 2);
    let events = queued(&s);
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0].request_id.as_str(), events[0].qualifier.as_str()),
        ("e1", "live")
    );
    assert_eq!(s.list_invocations("f", 10).unwrap().len(), 1);
    assert_eq!(s.read_blob(&blob.sha256_hex).unwrap(), b"code");
    // the next version number survives too
    s.update_latest("f", None, |v| v.config["Timeout"] = json!(8))
        .unwrap();
    assert_eq!(s.publish_version("f", None, None).unwrap().version, "2");
}

#[test]
fn stray_temporary_files_are_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    let stray = dir.path().join("blobs/tmp/abc.partial");
    std::fs::write(&stray, b"half").unwrap();
    let _s = Store::open(dir.path()).unwrap();
    assert!(!stray.exists());
}

#[test]
fn a_new_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let (d, _s) = crate::store();
    let mode = std::fs::metadata(d.path().join("data"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn concurrent_use_from_threads() {
    let (d, s) = crate::store();
    create(&s, "shared", b"x");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let name = format!("t{t}");
                create(&s, &name, format!("code{t}").as_bytes());
                for i in 0..20 {
                    s.update_latest(&name, None, |v| v.config["Timeout"] = json!(i))
                        .unwrap();
                    // everyone updates the shared function without a revision
                    s.update_latest("shared", None, |v| {
                        let n = v.config["n"].as_u64().unwrap_or(0);
                        v.config["n"] = json!(n + 1);
                    })
                    .unwrap();
                    s.enqueue_event(&Event::new(format!("{t}-{i}"), &name, LATEST, vec![], 0))
                        .unwrap();
                }
                s.publish_version(&name, None, None).unwrap();
                let mut done = 0;
                while done < 10 {
                    for e in s
                        .claim_due_events(1, (10 - done).min(3), 1_000_000)
                        .unwrap()
                    {
                        assert!(s.complete_event_and_enqueue(&e.request_id, &[]).unwrap());
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // the read-modify-writes were serialised: no update was lost
    assert_eq!(s.get_version("shared", LATEST).unwrap().config["n"], 160);
    assert_eq!(s.list_functions(None, 100).unwrap().0.len(), 9);
    assert_eq!(queued(&s).len(), 160 - 80);
    // two Stores (connections) on one directory also agree
    let other = Store::open(d.path().join("data")).unwrap();
    assert_eq!(queued(&other).len(), 80);
    let a = Arc::new(other);
    let b = s.clone();
    let h = std::thread::spawn(move || {
        for i in 0..50 {
            a.enqueue_event(&Event::new(format!("a{i}"), "shared", LATEST, vec![], 0))
                .unwrap();
        }
    });
    for i in 0..50 {
        b.enqueue_event(&Event::new(format!("b{i}"), "shared", LATEST, vec![], 0))
            .unwrap();
    }
    h.join().unwrap();
    assert_eq!(queued(&s).len(), 80 + 100);
}

const CHILD_DIR: &str = "MAYFLY_STORE_KILL_TEST_DIR";

/// The child: enqueues events as fast as it can, printing each request id
/// once `enqueue_event` has returned, until it is killed.
fn child(dir: &str) {
    let store = Store::open(dir).unwrap();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(60) {
        let id = format!("req-{i}");
        let event = Event::new(&id, "f", LATEST, vec![7; 100], i);
        store.enqueue_event(&event).unwrap();
        if i % 3 == 0 {
            // hold some in flight too
            store.claim_due_events(FAR_FUTURE_MS, 1, 1_000_000).unwrap();
        }
        writeln!(out, "ENQUEUED {id}").unwrap();
        out.flush().unwrap();
        i += 1;
    }
}

/// The request id of a child's `ENQUEUED <id>` line. The test harness may
/// have written `test <name> ... ` before it on the same line.
fn enqueued_id(line: &str) -> Option<String> {
    line.split_once("ENQUEUED ").map(|(_, id)| id.to_string())
}

#[test]
fn kill_9_loses_no_acknowledged_event() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::kill_9_loses_no_acknowledged_event",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acknowledged = Vec::new();
    while acknowledged.len() < 150 {
        let line = lines.next().expect("child ended early").unwrap();
        acknowledged.extend(enqueued_id(&line));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // whatever it printed before it died was acknowledged too
    for line in lines {
        acknowledged.extend(enqueued_id(&line.unwrap()));
    }
    let store = Store::open(dir.path()).unwrap();
    // the events the dead process held are due again after recovery
    store.recover_after_restart().unwrap();
    let due = queued_ids(&store);
    for id in &acknowledged {
        assert!(due.binary_search(id).is_ok(), "{id} was lost");
    }
    // at most the one enqueue in progress at the kill may also be there
    assert!(due.len() <= acknowledged.len() + 1, "{}", due.len());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    set_user_version_99(dir.path());
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, mayfly_store::StoreError::SchemaTooNew { found: 99, supported } if supported == mayfly_store::SCHEMA_VERSION),
        "{err}"
    );
}

/// Sets `user_version` to 99 by patching the database header (offset 60,
/// big-endian), so the test needs no SQLite of its own.
fn set_user_version_99(dir: &std::path::Path) {
    let db = dir.join(mayfly_store::DB_FILE);
    // dropping the last connection checkpointed the WAL into the main file
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&db, bytes).unwrap();
}
