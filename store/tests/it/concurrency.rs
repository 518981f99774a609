use mayfly_store::{Kind, ProvisionedStatus, StoreError, LATEST};
use serde_json::json;

use crate::{assert_not_found, create, store};

#[test]
fn reserved_concurrency() {
    let (_d, s) = store();
    create(&s, "a", b"x");
    create(&s, "b", b"x");
    assert_eq!(s.get_reserved_concurrency("a").unwrap(), None);
    s.put_reserved_concurrency("a", 10).unwrap();
    s.put_reserved_concurrency("b", 0).unwrap();
    assert_eq!(s.get_reserved_concurrency("a").unwrap(), Some(10));
    assert_eq!(s.get_reserved_concurrency("b").unwrap(), Some(0));
    s.put_reserved_concurrency("b", 5).unwrap();
    assert_eq!(s.total_reserved_concurrency(None).unwrap(), 15);
    assert_eq!(s.total_reserved_concurrency(Some("a")).unwrap(), 5);
    assert_eq!(s.total_reserved_concurrency(Some("zzz")).unwrap(), 15);
    s.delete_reserved_concurrency("a").unwrap();
    s.delete_reserved_concurrency("a").unwrap();
    assert_eq!(s.get_reserved_concurrency("a").unwrap(), None);
    assert_eq!(s.total_reserved_concurrency(None).unwrap(), 5);
    for err in [
        s.put_reserved_concurrency("nope", 1).unwrap_err(),
        s.get_reserved_concurrency("nope").unwrap_err(),
        s.delete_reserved_concurrency("nope").unwrap_err(),
    ] {
        assert_not_found(err, Kind::Function);
    }
    s.delete_function("b").unwrap();
    assert_eq!(s.total_reserved_concurrency(None).unwrap(), 0);
}

#[test]
fn provisioned_configs() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    s.publish_version("f", None, None).unwrap();
    s.create_alias("f", "live", "1", "", None).unwrap();
    assert!(matches!(
        s.put_provisioned_config("f", LATEST, 2),
        Err(StoreError::InvalidArgument { .. })
    ));
    assert!(s
        .put_provisioned_config("f", "5", 2)
        .unwrap_err()
        .is_not_found());
    assert!(s
        .put_provisioned_config("f", "nope", 2)
        .unwrap_err()
        .is_not_found());
    let c = s.put_provisioned_config("f", "live", 2).unwrap();
    assert_eq!(
        (c.requested, c.allocated, c.status),
        (2, 0, ProvisionedStatus::InProgress)
    );
    s.put_provisioned_config("f", "1", 1).unwrap();
    s.update_provisioned_status("f", "live", ProvisionedStatus::Ready, 2, None)
        .unwrap();
    let c = s.get_provisioned_config("f", "live").unwrap();
    assert_eq!((c.allocated, c.status), (2, ProvisionedStatus::Ready));
    assert_eq!(c.status.to_string(), "READY");
    s.update_provisioned_status("f", "1", ProvisionedStatus::Failed, 0, Some("boot failed"))
        .unwrap();
    assert_eq!(
        s.get_provisioned_config("f", "1")
            .unwrap()
            .status_reason
            .as_deref(),
        Some("boot failed")
    );
    let (p1, m) = s.list_provisioned_configs("f", None, 1).unwrap();
    let (p2, m2) = s.list_provisioned_configs("f", m.as_deref(), 1).unwrap();
    assert_eq!(
        (p1[0].qualifier.as_str(), p2[0].qualifier.as_str(), m2),
        ("1", "live", None)
    );
    assert_eq!(s.list_all_provisioned_configs().unwrap().len(), 2);
    // replacing resets the status
    let c = s.put_provisioned_config("f", "live", 3).unwrap();
    assert_eq!((c.requested, c.status), (3, ProvisionedStatus::InProgress));
    s.delete_provisioned_config("f", "1").unwrap();
    let err = s.get_provisioned_config("f", "1").unwrap_err();
    assert_not_found(err, Kind::ProvisionedConcurrencyConfig);
    assert!(s
        .delete_provisioned_config("f", "1")
        .unwrap_err()
        .is_not_found());
    assert!(s
        .update_provisioned_status("f", "1", ProvisionedStatus::Ready, 1, None)
        .unwrap_err()
        .is_not_found());
    // deleting the alias deletes its config
    s.delete_alias("f", "live").unwrap();
    assert!(s.list_all_provisioned_configs().unwrap().is_empty());
    s.put_provisioned_config("f", "1", 1).unwrap();
    s.delete_function("f").unwrap();
    assert!(s.list_all_provisioned_configs().unwrap().is_empty());
}

#[test]
fn event_invoke_configs() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    s.publish_version("f", None, None).unwrap();
    let c = s
        .put_event_invoke_config("f", LATEST, json!({"MaximumRetryAttempts": 1}))
        .unwrap();
    assert_eq!(c.config["MaximumRetryAttempts"], 1);
    s.put_event_invoke_config("f", "1", json!({"MaximumEventAgeInSeconds": 60}))
        .unwrap();
    assert!(s
        .put_event_invoke_config("f", "2", json!({}))
        .unwrap_err()
        .is_not_found());
    assert!(s
        .put_event_invoke_config("g", LATEST, json!({}))
        .unwrap_err()
        .is_not_found());
    let u = s
        .update_event_invoke_config("f", LATEST, |v| {
            v["DestinationConfig"] = json!({"OnSuccess": {"Destination": "arn:x"}})
        })
        .unwrap();
    assert_eq!(u.config["MaximumRetryAttempts"], 1);
    assert_eq!(s.get_event_invoke_config("f", LATEST).unwrap(), u);
    let err = s
        .update_event_invoke_config("f", "live", |_| {})
        .unwrap_err();
    assert_not_found(err, Kind::EventInvokeConfig);
    // put replaces wholesale
    let c = s.put_event_invoke_config("f", LATEST, json!({})).unwrap();
    assert_eq!(c.config, json!({}));
    let (page, next) = s.list_event_invoke_configs("f", None, 1).unwrap();
    assert_eq!(page[0].qualifier, "$LATEST");
    let (page, next) = s
        .list_event_invoke_configs("f", next.as_deref(), 1)
        .unwrap();
    assert_eq!((page[0].qualifier.as_str(), next), ("1", None));
    // deleting the version deletes its config
    s.delete_version("f", "1").unwrap();
    assert_eq!(
        s.list_event_invoke_configs("f", None, 10).unwrap().0.len(),
        1
    );
    s.delete_event_invoke_config("f", LATEST).unwrap();
    assert!(s
        .get_event_invoke_config("f", LATEST)
        .unwrap_err()
        .is_not_found());
    assert!(s
        .delete_event_invoke_config("f", LATEST)
        .unwrap_err()
        .is_not_found());
}
