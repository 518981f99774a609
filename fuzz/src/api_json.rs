//! The API's JSON bodies: whatever a client sends as CreateFunction or
//! UpdateFunctionConfiguration either is refused or gives settings within
//! Lambda's limits.

use mayfly_api::model::{apply_update, settings_for_create, CreateFunction, UpdateConfiguration};
use mayfly_api::request::parse_json;
use mayfly_proto::limits::{ENV_MAX_BYTES, MEMORY_MB, TIMEOUT_S};
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
