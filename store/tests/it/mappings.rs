use mayfly_store::{Kind, Mapping, StoreError};
use serde_json::json;

use crate::{assert_not_found, create, store};

fn mapping(uuid: &str, function: &str) -> Mapping {
    Mapping {
        uuid: uuid.into(),
        function_name: function.into(),
        config: json!({"EventSourceArn": "mqtt://h/t", "BatchSize": 10}),
        modified_ms: 1,
    }
}

#[test]
fn mappings_are_made_changed_listed_and_go_with_their_function() {
    let (_dir, store) = store();
    create(&store, "f", b"code");
    create(&store, "g", b"code");
    assert_not_found(
        store.create_mapping(&mapping("m0", "nope")).unwrap_err(),
        Kind::Function,
    );
    store.create_mapping(&mapping("m1", "f")).unwrap();
    store.create_mapping(&mapping("m2", "g")).unwrap();
    assert_eq!(store.list_mappings(None).unwrap().len(), 2);
    assert_eq!(store.list_mappings(Some("g")).unwrap()[0].uuid, "m2");
    // A refused change changes nothing.
    let refused: Result<Result<Mapping, &str>, StoreError> =
        store.update_mapping("m1", 5, |_| Err("no"));
    assert_eq!(refused.unwrap().unwrap_err(), "no");
    assert_eq!(store.get_mapping("m1").unwrap().modified_ms, 1);
    let changed = store
        .update_mapping("m1", 5, |m| {
            m.config["BatchSize"] = json!(7);
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        (changed.modified_ms, &changed.config["BatchSize"]),
        (5, &json!(7))
    );
    store.delete_mapping("m1").unwrap();
    assert_not_found(
        store.get_mapping("m1").unwrap_err(),
        Kind::EventSourceMapping,
    );
    store.delete_function("g").unwrap();
    assert!(store.list_mappings(None).unwrap().is_empty());
}
