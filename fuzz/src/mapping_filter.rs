//! Event-source filter patterns (a client's `FilterCriteria`): any bytes
//! are refused or parse into patterns that match records without a panic.

use mayfly_host::mappings::filter::Filters;
use serde_json::{json, Value};

#[test]
fn filter_patterns_parse_or_are_refused_and_match_without_panicking() {
    bolero::check!().for_each(|input: &[u8]| {
        let text = String::from_utf8_lossy(input);
        let criteria = json!({"Filters": [{"Pattern": text}]});
        if let Ok(filters) = Filters::parse(&criteria) {
            for record in [
                json!({}),
                json!({"a": 1, "b": "x", "c": [1, "y", null], "d": {"e": true}}),
                serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            ] {
                let _ = filters.matches(&record);
            }
        }
    });
}
