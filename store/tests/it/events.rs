use mayfly_store::{Event, StoreError};
use serde_json::json;

use crate::{queued_ids, store};

fn event(id: &str, now: u64) -> Event {
    Event::new(
        id,
        "f",
        "$LATEST",
        format!("{{\"id\":\"{id}\"}}").into_bytes(),
        now,
    )
}

#[test]
fn enqueue_claim_complete() {
    let (_d, s) = store();
    let mut e = event("r1", 1000);
    e.meta = json!({"clientContext": "abc"});
    s.enqueue_event(&e).unwrap();
    s.enqueue_event(&event("r2", 1001)).unwrap();
    let err = s.enqueue_event(&event("r1", 1002)).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err}");

    // nothing is due before its time
    assert!(s.claim_due_events(999, 10, 500).unwrap().is_empty());
    let claimed = s.claim_due_events(1000, 10, 500).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].request_id, "r1");
    assert_eq!(claimed[0].payload, e.payload);
    assert_eq!(claimed[0].meta, e.meta);
    assert_eq!(claimed[0].lease_until_ms, Some(1500));
    let claimed = s.claim_due_events(1100, 10, 500).unwrap();
    assert_eq!(claimed.len(), 1, "r1 is leased, r2 is due");
    assert_eq!(claimed[0].request_id, "r2");
    assert!(s.claim_due_events(1200, 10, 500).unwrap().is_empty());

    assert!(s.complete_event_and_enqueue("r1", &[]).unwrap());
    assert!(!s.complete_event_and_enqueue("r1", &[]).unwrap());
    assert_eq!(queued_ids(&s), ["r2"]);
}

#[test]
fn expired_lease_makes_event_due_again_with_same_id() {
    let (_d, s) = store();
    s.enqueue_event(&event("r1", 0)).unwrap();
    assert_eq!(s.claim_due_events(10, 10, 100).unwrap().len(), 1);
    assert!(s.claim_due_events(109, 10, 100).unwrap().is_empty());
    let again = s.claim_due_events(110, 10, 100).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].request_id, "r1");
}

#[test]
fn retry_reschedules_and_ends_lease() {
    let (_d, s) = store();
    s.enqueue_event(&event("r1", 0)).unwrap();
    s.claim_due_events(0, 1, 60_000).unwrap();
    s.retry_event("r1", 5_000, 1).unwrap();
    assert!(s.claim_due_events(4_999, 1, 100).unwrap().is_empty());
    // due at 5 s although its lease ran to 60 s: the retry ended the lease
    let c = s.claim_due_events(5_000, 1, 100).unwrap();
    assert_eq!((c[0].attempts, c[0].next_attempt_at_ms), (1, 5_000));
    assert!(s.retry_event("zz", 1, 1).unwrap_err().is_not_found());
}

#[test]
fn recover_after_restart_releases_every_lease() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = mayfly_store::Store::open(dir.path()).unwrap();
        for i in 0..5 {
            s.enqueue_event(&event(&format!("r{i}"), 0)).unwrap();
        }
        assert_eq!(s.claim_due_events(10, 3, 3_600_000).unwrap().len(), 3);
    }
    let s = mayfly_store::Store::open(dir.path()).unwrap();
    // the leases survived the close ...
    assert_eq!(s.claim_due_events(20, 10, 1000).unwrap().len(), 2);
    // ... until recovery, which makes them all due again
    assert_eq!(s.recover_after_restart().unwrap(), 5);
    let all = s.claim_due_events(20, 10, 1000).unwrap();
    let mut ids: Vec<_> = all.into_iter().map(|e| e.request_id).collect();
    ids.sort();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4"]);
}

#[test]
fn complete_and_enqueue_follow_ups_atomically() {
    let (_d, s) = store();
    s.enqueue_event(&event("r1", 0)).unwrap();
    s.enqueue_event(&event("dup", 0)).unwrap();
    s.claim_due_events(0, 10, 1000).unwrap();
    // a failing follow-up rolls the completion back
    let err = s
        .complete_event_and_enqueue("r1", &[event("d1", 0), event("dup", 0)])
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }));
    assert_eq!(queued_ids(&s), ["dup", "r1"]);
    assert!(s
        .complete_event_and_enqueue("r1", &[event("d1", 0)])
        .unwrap());
    assert_eq!(queued_ids(&s), ["d1", "dup"]);
}
