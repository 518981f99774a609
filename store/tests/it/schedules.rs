use mayfly_store::{Event, FireTime, Kind, ScheduleRow, StoreError};
use serde_json::json;

use crate::{assert_not_found, store};

fn row(name: &str, due_ms: u64) -> ScheduleRow {
    ScheduleRow {
        group_name: "default".into(),
        name: name.into(),
        config: json!({"ScheduleExpression": "rate(1 minute)"}),
        created_ms: 1_000,
        modified_ms: 1_000,
        next: Some(FireTime {
            nominal_ms: due_ms,
            due_ms,
        }),
    }
}

#[test]
fn a_fire_queues_its_events_and_moves_on_in_one_step_and_only_once() {
    let (_dir, store) = store();
    store.create_schedule(&row("s", 60_000)).unwrap();
    assert!(store.due_schedules(59_999, 10).unwrap().is_empty());
    let due = store.due_schedules(60_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    let fired = due[0].next.unwrap();
    let next = FireTime {
        nominal_ms: 120_000,
        due_ms: 120_000,
    };
    let event = Event::new("e1", "f", "$LATEST", &b"{}"[..], 60_000);
    assert!(store
        .fire_schedule(
            "default",
            "s",
            fired,
            std::slice::from_ref(&event),
            Some(next),
            false,
        )
        .unwrap());
    assert_eq!(store.queued_events("f").unwrap(), 1);
    // The same fire again (a second host, a retried round): nothing.
    let again = Event::new("e2", "f", "$LATEST", &b"{}"[..], 60_000);
    assert!(!store
        .fire_schedule("default", "s", fired, &[again], Some(next), false)
        .unwrap());
    assert_eq!(store.queued_events("f").unwrap(), 1);
    assert_eq!(store.get_schedule("default", "s").unwrap().next, Some(next));
    assert_eq!(store.next_due_schedule().unwrap(), Some(120_000));
    // An event id already queued fails the whole fire.
    assert!(matches!(
        store.fire_schedule("default", "s", next, &[event], None, true),
        Err(StoreError::AlreadyExists { .. })
    ));
    assert!(store.get_schedule("default", "s").is_ok());
    // The last fire deletes it when asked.
    let last = Event::new("e3", "f", "$LATEST", &b"{}"[..], 120_000);
    assert!(store
        .fire_schedule("default", "s", next, &[last], None, true)
        .unwrap());
    assert_not_found(
        store.get_schedule("default", "s").unwrap_err(),
        Kind::Schedule,
    );
}

#[test]
fn schedules_are_unique_listed_by_prefix_in_pages_updated_and_deleted() {
    let (_dir, store) = store();
    for name in ["alpha", "alpine", "beta"] {
        store.create_schedule(&row(name, 60_000)).unwrap();
    }
    assert!(matches!(
        store.create_schedule(&row("beta", 1)),
        Err(StoreError::AlreadyExists { .. })
    ));
    let (page, next) = store.list_schedules("default", "al", None, 1).unwrap();
    assert_eq!(
        (page[0].name.as_str(), next.as_deref()),
        ("alpha", Some("alpha"))
    );
    let (page, next) = store
        .list_schedules("default", "al", Some("alpha"), 1)
        .unwrap();
    assert_eq!((page[0].name.as_str(), next), ("alpine", None));
    let updated = store
        .update_schedule("default", "beta", json!({"State": "DISABLED"}), 5_000, None)
        .unwrap();
    assert_eq!(
        (updated.created_ms, updated.modified_ms, updated.next),
        (1_000, 5_000, None)
    );
    assert_eq!(store.due_schedules(u64::MAX / 2, 10).unwrap().len(), 2);
    store.delete_schedule("default", "beta").unwrap();
    assert_not_found(
        store.delete_schedule("default", "beta").unwrap_err(),
        Kind::Schedule,
    );
}
