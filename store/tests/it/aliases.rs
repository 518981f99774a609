use mayfly_store::{AliasUpdate, Kind, StoreError};
use serde_json::json;

use crate::{assert_not_found, create, store};

fn two_versions(s: &mayfly_store::Store) {
    create(s, "f", b"x");
    s.publish_version("f", None, None).unwrap();
    s.update_latest("f", None, |v| v.config["Timeout"] = json!(5))
        .unwrap();
    s.publish_version("f", None, None).unwrap();
}

#[test]
fn create_get_update_delete() {
    let (_d, s) = store();
    two_versions(&s);
    let a = s.create_alias("f", "live", "1", "prod", None).unwrap();
    assert_eq!(a.function_version, "1");
    assert_eq!(s.get_alias("f", "live").unwrap(), a);
    let err = s.create_alias("f", "live", "1", "", None).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists {
                kind: Kind::Alias,
                ..
            }
        ),
        "{err}"
    );

    let b = s
        .update_alias(
            "f",
            "live",
            Some(&a.revision_id),
            AliasUpdate {
                function_version: Some("2".into()),
                routing_config: Some(Some(json!({"AdditionalVersionWeights": {"1": 0.25}}))),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(b.function_version, "2");
    assert_eq!(b.description, "prod");
    assert_ne!(b.revision_id, a.revision_id);
    assert_eq!(s.get_alias("f", "live").unwrap(), b);
    let r = s.resolve("f", Some("live")).unwrap();
    assert_eq!(r.version.version, "2");
    assert_eq!(
        r.routing_config.unwrap()["AdditionalVersionWeights"]["1"],
        0.25
    );

    // stale revision
    let err = s
        .update_alias("f", "live", Some(&a.revision_id), AliasUpdate::default())
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::RevisionMismatch {
                kind: Kind::Alias,
                ..
            }
        ),
        "{err}"
    );
    // target must exist
    let err = s
        .update_alias(
            "f",
            "live",
            None,
            AliasUpdate {
                function_version: Some("9".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_not_found(err, Kind::Version);
    // removing the routing
    let c = s
        .update_alias(
            "f",
            "live",
            None,
            AliasUpdate {
                routing_config: Some(None),
                description: Some("d".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((c.routing_config, c.description.as_str()), (None, "d"));

    s.delete_alias("f", "live").unwrap();
    assert!(s.get_alias("f", "live").unwrap_err().is_not_found());
    assert!(s.delete_alias("f", "live").unwrap_err().is_not_found());
    assert_not_found(s.delete_alias("g", "live").unwrap_err(), Kind::Function);
}

#[test]
fn names_and_targets_are_checked() {
    let (_d, s) = store();
    two_versions(&s);
    for bad in ["12", "", "a/b", "$LATEST", &"x".repeat(129)] {
        let err = s.create_alias("f", bad, "1", "", None).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidArgument { .. }),
            "{bad}: {err}"
        );
    }
    assert!(s.create_alias("f", "v1-beta_2", "1", "", None).is_ok());
    assert!(s.create_alias("f", "latest", "$LATEST", "", None).is_ok());
    let err = s.create_alias("f", "x", "3", "", None).unwrap_err();
    assert_not_found(err, Kind::Version);
    let err = s
        .create_alias(
            "f",
            "x",
            "1",
            "",
            Some(json!({"AdditionalVersionWeights": {"7": 0.5}})),
        )
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = s.create_alias("g", "x", "1", "", None).unwrap_err();
    assert_not_found(err, Kind::Function);
}

#[test]
fn a_version_an_alias_uses_cannot_be_deleted() {
    let (_d, s) = store();
    two_versions(&s);
    s.create_alias("f", "live", "1", "", None).unwrap();
    s.create_alias(
        "f",
        "canary",
        "2",
        "",
        Some(json!({"AdditionalVersionWeights": {"1": 0.1}})),
    )
    .unwrap();
    let err = s.delete_version("f", "1").unwrap_err();
    match &err {
        StoreError::Conflict { kind, name, reason } => {
            assert_eq!((*kind, name.as_str()), (Kind::Version, "f:1"));
            assert!(
                reason.contains("canary") && reason.contains("live"),
                "{reason}"
            );
        }
        other => panic!("{other}"),
    }
    s.delete_alias("f", "live").unwrap();
    assert!(matches!(
        s.delete_version("f", "1"),
        Err(StoreError::Conflict { .. })
    ));
    s.update_alias(
        "f",
        "canary",
        None,
        AliasUpdate {
            routing_config: Some(None),
            ..Default::default()
        },
    )
    .unwrap();
    s.delete_version("f", "1").unwrap();
    assert!(matches!(
        s.delete_version("f", "2"),
        Err(StoreError::Conflict { .. })
    ));
}

#[test]
fn list_paginates_and_filters() {
    let (_d, s) = store();
    two_versions(&s);
    for i in 0..7 {
        let version = if i % 2 == 0 { "1" } else { "2" };
        s.create_alias("f", &format!("a{i}"), version, "", None)
            .unwrap();
    }
    let (p1, m1) = s.list_aliases("f", None, None, 3).unwrap();
    let (p2, m2) = s.list_aliases("f", None, m1.as_deref(), 3).unwrap();
    let (p3, m3) = s.list_aliases("f", None, m2.as_deref(), 3).unwrap();
    assert_eq!(m3, None);
    let names: Vec<_> = p1
        .iter()
        .chain(&p2)
        .chain(&p3)
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["a0", "a1", "a2", "a3", "a4", "a5", "a6"]);
    let (only1, next) = s.list_aliases("f", Some("1"), None, 50).unwrap();
    assert_eq!(next, None);
    let names: Vec<_> = only1.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["a0", "a2", "a4", "a6"]);
    assert!(s
        .list_aliases("g", None, None, 5)
        .unwrap_err()
        .is_not_found());
    // deleting the function takes its aliases
    s.delete_function("f").unwrap();
    create(&s, "f", b"x");
    assert!(s.list_aliases("f", None, None, 5).unwrap().0.is_empty());
}
