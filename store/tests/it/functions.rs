use mayfly_store::{Kind, StoreError, LATEST};
use serde_json::json;

use crate::{assert_not_found, create, store};

#[test]
fn create_get_and_already_exists() {
    let (_d, s) = store();
    let f = create(&s, "f1", b"code");
    assert_eq!(f.version, LATEST);
    assert_eq!(f.code_size, 4);
    assert_eq!(f.revision_id.len(), 36);
    assert!(f.last_modified.ends_with("+0000") && f.last_modified.len() == 28);
    assert_eq!(s.get_version("f1", LATEST).unwrap(), f);
    assert!(s.function_exists("f1").unwrap());
    let err = s
        .create_function("f1", json!({}), &f.code_sha256, 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::AlreadyExists {
                kind: Kind::Function,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        s.create_function("", json!({}), &f.code_sha256, 1),
        Err(StoreError::InvalidArgument { .. })
    ));
}

#[test]
fn not_found_names_function_or_version() {
    let (_d, s) = store();
    let err = s.get_version("nope", LATEST).unwrap_err();
    assert!(matches!(&err, StoreError::NotFound { kind: Kind::Function, name } if name == "nope"));
    assert_eq!(err.to_string(), "function not found: nope");
    create(&s, "f", b"x");
    let err = s.get_version("f", "7").unwrap_err();
    assert!(matches!(&err, StoreError::NotFound { kind: Kind::Version, name } if name == "f:7"));
    assert!(s.get_version("f", "01").unwrap_err().is_not_found());
    assert!(s.get_version("f", "abc").unwrap_err().is_not_found());
    assert!(s
        .update_latest("nope", None, |_| {})
        .unwrap_err()
        .is_not_found());
    assert!(s.delete_function("nope").unwrap_err().is_not_found());
    assert!(s
        .list_versions("nope", None, 10)
        .unwrap_err()
        .is_not_found());
    assert!(s
        .publish_version("nope", None, None)
        .unwrap_err()
        .is_not_found());
}

#[test]
fn list_functions_paginates_in_name_order() {
    let (_d, s) = store();
    for i in (0..23).rev() {
        create(&s, &format!("fn-{i:02}"), b"x");
    }
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let (page, next) = s.list_functions(marker.as_deref(), 10).unwrap();
        pages += 1;
        assert!(page.len() <= 10);
        assert!(page.iter().all(|f| f.version == LATEST));
        seen.extend(page.into_iter().map(|f| f.name));
        match next {
            Some(m) => marker = Some(m),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..23).map(|i| format!("fn-{i:02}")).collect();
    assert_eq!(seen, expected);
    // exactly a page: no next marker
    let (page, next) = s.list_functions(None, 23).unwrap();
    assert_eq!((page.len(), next), (23, None));
    // 0 items is treated as 1
    let (page, next) = s.list_functions(None, 0).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(next.as_deref(), Some("fn-00"));
    let (empty, next) = s.list_functions(Some("zzz"), 5).unwrap();
    assert!(empty.is_empty() && next.is_none());
}

#[test]
fn update_latest_bumps_revision_and_checks_expected() {
    let (_d, s) = store();
    let f = create(&s, "f", b"x");
    let u = s
        .update_latest("f", Some(&f.revision_id), |v| {
            v.config["MemorySize"] = json!(256);
            v.code_size = 99;
            v.name = "hijack".into();
            v.version = "5".into();
        })
        .unwrap();
    assert_ne!(u.revision_id, f.revision_id);
    assert_eq!(u.name, "f");
    assert_eq!(u.version, LATEST);
    assert_eq!(u.created, f.created);
    assert_eq!(u.config["MemorySize"], 256);
    assert_eq!(s.get_version("f", LATEST).unwrap(), u);
    let err = s
        .update_latest("f", Some(&f.revision_id), |v| v.code_size = 1)
        .unwrap_err();
    match err {
        StoreError::RevisionMismatch {
            kind,
            expected,
            actual,
            ..
        } => {
            assert_eq!(kind, Kind::Function);
            assert_eq!(expected, f.revision_id);
            assert_eq!(actual, u.revision_id);
        }
        other => panic!("{other}"),
    }
    assert_eq!(s.get_version("f", LATEST).unwrap().code_size, 99);
    s.update_latest("f", None, |v| v.code_size = 3).unwrap();
}

#[test]
fn publish_copies_latest_and_reuses_unchanged() {
    let (_d, s) = store();
    let f = create(&s, "f", b"x");
    let v1 = s
        .publish_version("f", Some(&f.revision_id), Some("first"))
        .unwrap();
    assert_eq!(v1.version, "1");
    assert_eq!(v1.config["Version"], "1");
    assert_eq!(v1.config["Description"], "first");
    assert_eq!(v1.code_sha256, f.code_sha256);
    // unchanged: the same version comes back
    let again = s.publish_version("f", None, Some("other")).unwrap();
    assert_eq!(again, v1);
    // a wrong revision is refused
    assert!(matches!(
        s.publish_version("f", Some("bogus"), None),
        Err(StoreError::RevisionMismatch { .. })
    ));
    // a change of configuration publishes version 2
    s.update_latest("f", None, |v| v.config["Timeout"] = json!(10))
        .unwrap();
    let v2 = s.publish_version("f", None, None).unwrap();
    assert_eq!(v2.version, "2");
    assert_eq!(v2.config["Timeout"], 10);
    // a change of code publishes version 3
    let blob = s.put_blob(b"new code").unwrap();
    s.update_latest("f", None, |v| {
        v.code_sha256 = blob.sha256_hex.clone();
        v.code_size = blob.size;
    })
    .unwrap();
    let v3 = s.publish_version("f", None, None).unwrap();
    assert_eq!(v3.version, "3");
    // versions are immutable copies
    assert_eq!(s.get_version("f", "1").unwrap().config["Timeout"], 3);
    // numbers are not reused after deleting a version
    s.delete_version("f", "3").unwrap();
    s.update_latest("f", None, |v| v.config["Timeout"] = json!(11))
        .unwrap();
    assert_eq!(s.publish_version("f", None, None).unwrap().version, "4");
    // ... but restart after the function is deleted and re-created (as Lambda)
    s.delete_function("f").unwrap();
    create(&s, "f", b"x");
    assert_eq!(s.publish_version("f", None, None).unwrap().version, "1");
}

#[test]
fn list_versions_latest_first_then_numeric() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    for t in 1..=11 {
        s.update_latest("f", None, |v| v.config["Timeout"] = json!(t))
            .unwrap();
        s.publish_version("f", None, None).unwrap();
    }
    let mut all = Vec::new();
    let mut marker = None;
    loop {
        let (page, next) = s.list_versions("f", marker.as_deref(), 5).unwrap();
        all.extend(page.into_iter().map(|v| v.version));
        marker = next;
        if marker.is_none() {
            break;
        }
    }
    let mut expected = vec![LATEST.to_string()];
    expected.extend((1..=11).map(|n| n.to_string()));
    assert_eq!(all, expected);
    assert!(matches!(
        s.list_versions("f", Some("garbage"), 5),
        Err(StoreError::InvalidArgument { .. })
    ));
}

#[test]
fn delete_version_and_function() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    s.publish_version("f", None, None).unwrap();
    assert!(matches!(
        s.delete_version("f", LATEST),
        Err(StoreError::InvalidArgument { .. })
    ));
    assert!(s.delete_version("f", "2").unwrap_err().is_not_found());
    s.delete_version("f", "1").unwrap();
    assert!(s.get_version("f", "1").unwrap_err().is_not_found());
    s.delete_function("f").unwrap();
    assert!(!s.function_exists("f").unwrap());
    assert!(s.get_version("f", LATEST).unwrap_err().is_not_found());
}

#[test]
fn resolve_latest_version_and_alias() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    s.update_latest("f", None, |v| v.config["Timeout"] = json!(9))
        .unwrap();
    let v1 = s.publish_version("f", None, None).unwrap();
    s.create_alias("f", "live", "1", "", None).unwrap();
    let r = s.resolve("f", None).unwrap();
    assert_eq!((r.version.version.as_str(), r.alias), (LATEST, None));
    assert_eq!(
        s.resolve("f", Some(LATEST)).unwrap().version.version,
        LATEST
    );
    assert_eq!(s.resolve("f", Some("1")).unwrap().version, v1);
    let r = s.resolve("f", Some("live")).unwrap();
    assert_eq!(r.version, v1);
    assert_eq!(r.alias.as_deref(), Some("live"));
    let err = s.resolve("f", Some("nope")).unwrap_err();
    assert_not_found(err, Kind::Alias);
    let err = s.resolve("f", Some("2")).unwrap_err();
    assert_not_found(err, Kind::Version);
    let err = s.resolve("g", Some("live")).unwrap_err();
    assert_not_found(err, Kind::Function);
}
