//! The API's JSON bodies: whatever a client sends as CreateFunction or
//! UpdateFunctionConfiguration either is refused or gives settings within
//! Lambda's limits; tags accepted are within Lambda's, and a tag
//! operation's resource is refused or names a function.

use mayfly_api::model::{apply_update, settings_for_create, CreateFunction, UpdateConfiguration};
use mayfly_api::request::parse_json;
use mayfly_api::tags::{check_tags, function_of, is_reserved_key, tag_keys};
use mayfly_proto::limits::{
    ENV_MAX_BYTES, MEMORY_MB, TAGS_PER_FUNCTION, TAG_KEY_CHARS, TAG_VALUE_CHARS, TIMEOUT_S,
};
use serde_json::{json, Value};

/// The settings a stored function may have: what the host boots a VM with.
fn assert_within_limits(settings: &Value) {
    let memory = settings["MemorySize"]
        .as_u64()
        .expect("MemorySize is a number");
    assert!(
        u32::try_from(memory).is_ok_and(|m| MEMORY_MB.contains(&m)),
        "{settings}"
    );
    let timeout = settings["Timeout"].as_u64().expect("Timeout is a number");
    assert!(
        u32::try_from(timeout).is_ok_and(|t| TIMEOUT_S.contains(&t)),
        "{settings}"
    );
    if let Some(vars) = settings["Environment"]["Variables"].as_object() {
        let bytes: usize = vars
            .iter()
            .map(|(k, v)| k.len() + v.as_str().expect("values are strings").len())
            .sum();
        assert!(
            bytes <= ENV_MAX_BYTES,
            "{bytes} bytes of environment accepted"
        );
    }
}

/// CreateFunction and UpdateFunctionConfiguration bodies: refused, or
/// settings a VM can be booted with.
#[test]
fn function_settings() {
    let stored = json!({
        "Runtime": "provided.al2023",
        "Role": "arn:aws:iam::000000000000:role/r",
        "Handler": "bootstrap",
        "Description": "",
        "MemorySize": 128,
        "Timeout": 3,
    });
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(request) = parse_json::<CreateFunction>(input) {
            if let Ok(settings) = settings_for_create(&request) {
                assert_within_limits(&settings);
            }
        }
        if let Ok(request) = parse_json::<UpdateConfiguration>(input) {
            if let Ok(settings) = apply_update(&stored, &request) {
                assert_within_limits(&settings);
            }
        }
    });
}

/// CreateFunction's `Tags`, a tag operation's resource ARN and
/// UntagResource's query, from the same bytes: what is accepted is within
/// Lambda's limits, and an accepted ARN names a function by a valid name.
#[test]
fn tags_and_resources() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(request) = parse_json::<CreateFunction>(input) {
            if let Some(tags) = request.tags.filter(|t| check_tags(t).is_ok()) {
                assert!(tags.len() <= TAGS_PER_FUNCTION, "{} tags", tags.len());
                for (key, value) in &tags {
                    assert!(TAG_KEY_CHARS.contains(&key.chars().count()), "{key:?}");
                    assert!(TAG_VALUE_CHARS.contains(&value.chars().count()));
                    assert!(!is_reserved_key(key), "{key:?}");
                }
            }
        }
        let Ok(text) = std::str::from_utf8(input) else {
            return;
        };
        if let Ok(name) = function_of(text) {
            assert!(!name.is_empty(), "{text:?}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{text:?}"
            );
            assert!(text.starts_with("arn:aws"), "{text:?}");
            assert!(text.ends_with(&format!(":function:{name}")), "{text:?}");
        }
        if let Ok(keys) = tag_keys(Some(text)) {
            assert!(!keys.is_empty());
        }
    });
}
