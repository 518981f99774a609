use std::time::Duration;

use mayfly_store::{BlobRef, InvocationRecord, Kind, StoreError};

use crate::{assert_not_found, create, store};

#[test]
fn blobs_are_content_addressed_and_deduplicated() {
    let (d, s) = store();
    let a = s.put_blob(b"hello").unwrap();
    assert_eq!(
        a.sha256_hex,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(
        a.sha256_base64,
        "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="
    );
    assert_eq!(a.size, 5);
    assert_eq!(
        BlobRef::hex_to_base64(&a.sha256_hex).unwrap(),
        a.sha256_base64
    );
    let path = d.path().join("data/blobs/2c").join(&a.sha256_hex);
    assert!(path.is_file());
    assert_eq!(s.put_blob(b"hello").unwrap(), a);
    assert_eq!(s.read_blob(&a.sha256_hex).unwrap(), b"hello");
    let files: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
    assert_eq!(files.len(), 1);
    let tmp: Vec<_> = std::fs::read_dir(d.path().join("data/blobs/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty());

    let missing = "0".repeat(64);
    assert_not_found(s.read_blob(&missing).unwrap_err(), Kind::Blob);
    assert!(matches!(
        s.read_blob("../../etc/passwd"),
        Err(StoreError::InvalidArgument { .. })
    ));
    // a corrupted blob is detected
    std::fs::write(&path, b"jello").unwrap();
    assert!(matches!(
        s.read_blob(&a.sha256_hex),
        Err(StoreError::Corrupt(_))
    ));
    // empty blobs work
    let e = s.put_blob(b"").unwrap();
    assert_eq!(s.read_blob(&e.sha256_hex).unwrap(), b"");
}

#[test]
fn gc_removes_only_unreferenced_blobs() {
    let (_d, s) = store();
    let used = create(&s, "f", b"used").code_sha256;
    let published = s.put_blob(b"published").unwrap();
    s.update_latest("f", None, |v| {
        v.code_sha256 = published.sha256_hex.clone();
    })
    .unwrap();
    s.publish_version("f", None, None).unwrap();
    s.update_latest("f", None, |v| v.code_sha256 = used.clone())
        .unwrap();
    let orphan = s.put_blob(b"orphan").unwrap();
    // within the grace period nothing goes
    let r = s.gc_blobs(Duration::from_secs(3600)).unwrap();
    assert_eq!((r.removed, r.kept), (0, 3));
    let r = s.gc_blobs(Duration::ZERO).unwrap();
    assert_eq!((r.removed, r.bytes_freed, r.kept), (1, 6, 2));
    assert!(s.read_blob(&orphan.sha256_hex).unwrap_err().is_not_found());
    assert_eq!(s.read_blob(&used).unwrap(), b"used");
    assert_eq!(s.read_blob(&published.sha256_hex).unwrap(), b"published");
    s.delete_function("f").unwrap();
    assert_eq!(s.gc_blobs(Duration::ZERO).unwrap().removed, 2);
}

fn record(function: &str, i: u32) -> InvocationRecord {
    InvocationRecord {
        request_id: format!("req-{function}-{i}"),
        function_name: function.to_string(),
        version: "$LATEST".into(),
        invocation_type: "RequestResponse".into(),
        status: if i % 2 == 0 { "success" } else { "error" }.into(),
        error_type: (i % 2 == 1).then(|| "Unhandled".to_string()),
        started_at: 1_700_000_000_000 + u64::from(i),
        duration_ms: 12.5,
        billed_duration_ms: 13,
        init_duration_ms: (i == 0).then_some(40.25),
        memory_size_mb: 128,
        max_memory_used_mb: 20,
        log: format!("START RequestId: {i}\n"),
        egress_sent_bytes: u64::from(i) * 10,
        egress_received_bytes: u64::from(i) * 1000,
    }
}

#[test]
fn invocations_newest_first_with_retention() {
    let (_d, s) = store();
    // a function keeps its newest 1000 records
    for i in 0..1003 {
        s.insert_invocation(&record("f", i)).unwrap();
    }
    s.insert_invocation(&record("g", 0)).unwrap();
    let list = s.list_invocations("f", 2000).unwrap();
    assert_eq!(list.len(), 1000);
    let ids: Vec<_> = list.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids[..3], ["req-f-1002", "req-f-1001", "req-f-1000"]);
    assert_eq!(ids[999], "req-f-3");
    assert_eq!(list[1], record("f", 1001));
    assert_eq!(s.list_invocations("f", 2).unwrap().len(), 2);
    let g = s.list_invocations("g", 10).unwrap();
    assert_eq!(g, vec![record("g", 0)]);
    assert_eq!(g[0].init_duration_ms, Some(40.25));
    // deleting the function deletes its records (its space comes back)
    create(&s, "f", b"x");
    s.delete_function("f").unwrap();
    assert_eq!(s.list_invocations("f", 2000).unwrap().len(), 0);
    assert_eq!(s.list_invocations("g", 10).unwrap().len(), 1);
    // camelCase JSON as `mayfly logs --json` wants
    let json = serde_json::to_value(record("f", 0)).unwrap();
    assert_eq!(json["requestId"], "req-f-0");
    assert_eq!(json["initDurationMs"], 40.25);
    assert_eq!(json["maxMemoryUsedMb"], 20);
}
