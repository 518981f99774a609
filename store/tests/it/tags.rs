use mayfly_proto::limits::TAGS_PER_FUNCTION;
use mayfly_store::{Kind, StoreError, Tags, LATEST};
use serde_json::json;

use crate::{assert_not_found, create, store};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `n` tags `k0`..`k{n-1}` (prefixed), each valued `v`.
fn many(prefix: &str, n: usize) -> Tags {
    (0..n)
        .map(|i| (format!("{prefix}{i}"), "v".into()))
        .collect()
}

#[test]
fn tag_merges_untag_removes_and_both_change_the_revision() {
    let (_d, s) = store();
    let f = create(&s, "f", b"x");
    assert!(s.get_tags("f").unwrap().is_empty());

    s.tag_function("f", &tags(&[("a", "1"), ("b", "2")]))
        .unwrap();
    let after_tag = s.get_version("f", LATEST).unwrap();
    assert_ne!(after_tag.revision_id, f.revision_id);
    // Only the revision id changes: not the configuration, nor LastModified.
    assert_eq!(
        (&after_tag.config, &after_tag.last_modified),
        (&f.config, &f.last_modified)
    );

    // Same keys are replaced, others kept, new ones added.
    s.tag_function("f", &tags(&[("b", "two"), ("c", "")]))
        .unwrap();
    assert_eq!(
        s.get_tags("f").unwrap(),
        tags(&[("a", "1"), ("b", "two"), ("c", "")])
    );

    // Keys it does not have are ignored.
    s.untag_function("f", &["a".into(), "nope".into()]).unwrap();
    assert_eq!(s.get_tags("f").unwrap(), tags(&[("b", "two"), ("c", "")]));
    let after_untag = s.get_version("f", LATEST).unwrap();
    assert_ne!(after_untag.revision_id, after_tag.revision_id);
    s.untag_function("f", &["b".into(), "c".into()]).unwrap();
    assert!(s.get_tags("f").unwrap().is_empty());

    // Keys are exact: case and spaces count.
    s.tag_function("f", &tags(&[("K", "1"), ("k", "2"), ("k ", "3")]))
        .unwrap();
    assert_eq!(s.get_tags("f").unwrap().len(), 3);
}

#[test]
fn tags_belong_to_the_function_not_its_versions() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    s.tag_function("f", &tags(&[("team", "a")])).unwrap();
    // Tags are not configuration: publishing $LATEST after a tag change
    // gives back the same version, as Lambda does.
    let v1 = s.publish_version("f", None, None).unwrap();
    s.tag_function("f", &tags(&[("team", "b")])).unwrap();
    assert_eq!(s.publish_version("f", None, None).unwrap(), v1);
    // Another function's tags are its own.
    create(&s, "g", b"x");
    assert!(s.get_tags("g").unwrap().is_empty());
    s.tag_function("g", &tags(&[("team", "g")])).unwrap();
    assert_eq!(s.get_tags("f").unwrap(), tags(&[("team", "b")]));
}

#[test]
fn at_most_fifty_tags_and_a_refused_tag_changes_nothing() {
    let (_d, s) = store();
    let f = create(&s, "f", b"x");
    s.tag_function("f", &many("k", TAGS_PER_FUNCTION - 1))
        .unwrap();
    let before = s.get_version("f", LATEST).unwrap();
    // One new and one existing key: 50 in all.
    s.tag_function("f", &tags(&[("k0", "new"), ("last", "v")]))
        .unwrap();
    assert_eq!(s.get_tags("f").unwrap().len(), TAGS_PER_FUNCTION);
    // Replacing values is fine at the limit.
    s.tag_function("f", &tags(&[("k1", "again")])).unwrap();
    let at_limit = s.get_version("f", LATEST).unwrap();
    assert_ne!(at_limit.revision_id, before.revision_id);

    let err = s.tag_function("f", &tags(&[("k0", "x"), ("one-more", "v")]));
    match err {
        Err(StoreError::TooManyTags { name, count, limit }) => {
            assert_eq!((name.as_str(), count, limit), ("f", 51, TAGS_PER_FUNCTION));
        }
        other => panic!("expected TooManyTags: {other:?}"),
    }
    let tags_now = s.get_tags("f").unwrap();
    assert_eq!(tags_now.len(), TAGS_PER_FUNCTION);
    assert_eq!(tags_now["k0"], "new", "a refused request writes nothing");
    assert_eq!(
        s.get_version("f", LATEST).unwrap().revision_id,
        at_limit.revision_id
    );
    assert_ne!(at_limit.revision_id, f.revision_id);
}

#[test]
fn create_with_tags_keeps_them_or_creates_nothing() {
    let (_d, s) = store();
    let blob = s.put_blob(b"x").unwrap();
    let config = || json!({"FunctionName": "f", "MemorySize": 128, "Timeout": 3});
    let err = s
        .create_function_with_tags(
            "f",
            config(),
            &blob.sha256_hex,
            blob.size,
            &many("k", TAGS_PER_FUNCTION + 1),
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::TooManyTags { count: 51, .. }),
        "{err}"
    );
    assert!(!s.function_exists("f").unwrap(), "nothing is created");

    s.create_function_with_tags(
        "f",
        config(),
        &blob.sha256_hex,
        blob.size,
        &many("k", TAGS_PER_FUNCTION),
    )
    .unwrap();
    assert_eq!(s.get_tags("f").unwrap(), many("k", TAGS_PER_FUNCTION));
    // A full function takes no more.
    assert!(matches!(
        s.tag_function("f", &tags(&[("x", "y")])),
        Err(StoreError::TooManyTags { .. })
    ));
}

#[test]
fn tags_go_with_their_function() {
    let (_d, s) = store();
    create(&s, "f", b"x");
    s.tag_function("f", &tags(&[("a", "1")])).unwrap();
    s.delete_function("f").unwrap();
    assert_not_found(s.get_tags("f").unwrap_err(), Kind::Function);
    // A function re-created under the name starts without them.
    create(&s, "f", b"x");
    assert!(s.get_tags("f").unwrap().is_empty());
}

#[test]
fn a_missing_function_has_no_tags() {
    let (_d, s) = store();
    assert_not_found(s.get_tags("nope").unwrap_err(), Kind::Function);
    assert_not_found(
        s.tag_function("nope", &tags(&[("a", "1")])).unwrap_err(),
        Kind::Function,
    );
    assert_not_found(
        s.untag_function("nope", &["a".into()]).unwrap_err(),
        Kind::Function,
    );
}
