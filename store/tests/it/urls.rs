use mayfly_store::{Kind, StoreError, LATEST};
use serde_json::json;

use crate::{assert_not_found, create, store};

const ID: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn a_url_is_made_found_by_id_changed_listed_and_deleted() {
    let (_dir, store) = store();
    create(&store, "f", b"code");
    let made = store
        .create_function_url("f", LATEST, ID, json!({"AuthType": "NONE"}))
        .unwrap();
    assert_eq!(
        (made.url_id.as_str(), made.qualifier.as_str()),
        (ID, LATEST)
    );
    let again = store.create_function_url("f", LATEST, "other", json!({}));
    assert!(matches!(
        again,
        Err(StoreError::AlreadyExists {
            kind: Kind::FunctionUrlConfig,
            ..
        })
    ));
    assert_eq!(
        store.function_url_by_id(ID).unwrap().unwrap().function_name,
        "f"
    );
    assert!(store.function_url_by_id("nope").unwrap().is_none());
    let changed = store
        .update_function_url("f", LATEST, |c| c["AuthType"] = json!("AWS_IAM"))
        .unwrap();
    assert_eq!(changed.config["AuthType"], "AWS_IAM");
    assert_eq!(
        store.get_function_url("f", LATEST).unwrap().config["AuthType"],
        "AWS_IAM"
    );
    let (listed, next) = store.list_function_urls("f", None, 10).unwrap();
    assert_eq!((listed.len(), next), (1, None));
    store.delete_function_url("f", LATEST).unwrap();
    assert_not_found(
        store.get_function_url("f", LATEST).unwrap_err(),
        Kind::FunctionUrlConfig,
    );
    assert!(store.function_url_by_id(ID).unwrap().is_none());
}

#[test]
fn a_url_is_for_latest_or_an_alias_and_goes_with_it() {
    let (_dir, store) = store();
    create(&store, "f", b"code");
    store.publish_version("f", None, None).unwrap();
    assert!(matches!(
        store.create_function_url("f", "1", ID, json!({})),
        Err(StoreError::InvalidArgument { .. })
    ));
    assert_not_found(
        store
            .create_function_url("f", "live", ID, json!({}))
            .unwrap_err(),
        Kind::Alias,
    );
    store.create_alias("f", "live", "1", "", None).unwrap();
    store
        .create_function_url("f", "live", ID, json!({}))
        .unwrap();
    store.delete_alias("f", "live").unwrap();
    assert!(store.function_url_by_id(ID).unwrap().is_none());
    store
        .create_function_url("f", LATEST, ID, json!({}))
        .unwrap();
    store.delete_function("f").unwrap();
    assert!(store.function_url_by_id(ID).unwrap().is_none());
}

#[test]
fn permissions_are_kept_in_order_with_unique_ids_and_renew_the_revision() {
    let (_dir, store) = store();
    create(&store, "f", b"code");
    let (none, first) = store.policy("f", None).unwrap();
    assert!(none.is_empty());
    let statement = |sid: &str| json!({"Sid": sid, "Effect": "Allow"});
    store
        .add_permission("f", None, "a", &statement("a"), Some(&first))
        .unwrap();
    let (statements, second) = store.policy("f", None).unwrap();
    assert_eq!(statements, [statement("a")]);
    assert_ne!(first, second, "a new revision");
    // A stale revision, or a taken id, changes nothing.
    assert!(matches!(
        store.add_permission("f", None, "b", &statement("b"), Some(&first)),
        Err(StoreError::RevisionMismatch { .. })
    ));
    assert!(matches!(
        store.add_permission("f", None, "a", &statement("a"), None),
        Err(StoreError::AlreadyExists { .. })
    ));
    store
        .add_permission("f", Some(LATEST), "b", &statement("b"), None)
        .unwrap();
    let (statements, _) = store.policy("f", None).unwrap();
    assert_eq!(statements, [statement("a"), statement("b")]);
    store.remove_permission("f", None, "a", None).unwrap();
    assert_not_found(
        store.remove_permission("f", None, "a", None).unwrap_err(),
        Kind::Permission,
    );
    assert_eq!(store.policy("f", None).unwrap().0, [statement("b")]);
}

#[test]
fn an_aliases_policy_is_its_own_and_goes_with_it() {
    let (_dir, store) = store();
    create(&store, "f", b"code");
    store.publish_version("f", None, None).unwrap();
    store.create_alias("f", "live", "1", "", None).unwrap();
    let s = json!({"Sid": "x"});
    store
        .add_permission("f", Some("live"), "x", &s, None)
        .unwrap();
    assert_eq!(
        store.policy("f", Some("live")).unwrap().0,
        std::slice::from_ref(&s)
    );
    assert!(store.policy("f", None).unwrap().0.is_empty());
    store.delete_alias("f", "live").unwrap();
    store.create_alias("f", "live", "1", "", None).unwrap();
    assert!(store.policy("f", Some("live")).unwrap().0.is_empty());
    assert_not_found(store.policy("g", None).unwrap_err(), Kind::Function);
}
