//! A mapping's `FilterCriteria`: EventBridge patterns, as Lambda's event
//! filtering has them. A record is kept when it matches any of the
//! patterns (or there are none); the others are acknowledged to the source
//! without invoking the function.
//!
//! A pattern is a JSON object mirroring the record: a key whose value is an
//! object matches the record's object there; a key whose value is a list
//! matches when the record's value there (or any element, for a list)
//! matches one of its matchers: a literal (string, number, boolean, null),
//! `{"prefix": "..."}`, `{"suffix": "..."}`, `{"anything-but": value or
//! list}`, `{"numeric": [">", 1, "<=", 5]}` or `{"exists": true|false}`.

use serde_json::{Map, Value};

/// Lambda's limit on patterns per mapping.
pub const MAX_FILTERS: usize = 5;
/// Lambda's limit on one pattern's size.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// The parsed patterns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters(Vec<Map<String, Value>>);

impl Filters {
    /// Reads `FilterCriteria` (`{"Filters": [{"Pattern": "<JSON>"}]}`).
    pub fn parse(criteria: &Value) -> Result<Filters, String> {
        if criteria.is_null() {
            return Ok(Filters::default());
        }
        let list = criteria["Filters"]
            .as_array()
            .ok_or("FilterCriteria needs a list of Filters")?;
        if list.len() > MAX_FILTERS {
            return Err(format!("at most {MAX_FILTERS} filters"));
        }
        let patterns = list
            .iter()
            .map(|f| {
                let text = f["Pattern"]
                    .as_str()
                    .ok_or("each filter needs a Pattern, a JSON string")?;
                if text.len() > MAX_PATTERN_BYTES {
                    return Err(format!("a pattern is at most {MAX_PATTERN_BYTES} bytes"));
                }
                let value: Value = serde_json::from_str(text)
                    .map_err(|e| format!("the pattern {text} is not JSON: {e}"))?;
                let Value::Object(pattern) = value else {
                    return Err(format!("the pattern {text} is not a JSON object"));
                };
                check(&pattern)?;
                Ok(pattern)
            })
            .collect::<Result<_, String>>()?;
        Ok(Filters(patterns))
    }

    /// Whether `record` passes.
    pub fn matches(&self, record: &Value) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| object_matches(p, record))
    }
}

fn check(pattern: &Map<String, Value>) -> Result<(), String> {
    for (key, value) in pattern {
        match value {
            Value::Object(inner) => check(inner)?,
            Value::Array(matchers) => {
                if matchers.is_empty() {
                    return Err(format!("the pattern's list at {key} is empty"));
                }
                for m in matchers {
                    check_matcher(key, m)?;
                }
            }
            _ => {
                return Err(format!(
                    "the pattern's value at {key} must be a list of matchers or an object"
                ))
            }
        }
    }
    Ok(())
}

fn check_matcher(key: &str, m: &Value) -> Result<(), String> {
    let Value::Object(op) = m else {
        return Ok(());
    };
    let ok = match op.iter().next() {
        Some((name, v)) if op.len() == 1 => match name.as_str() {
            "prefix" | "suffix" => v.is_string(),
            "exists" => v.is_boolean(),
            "anything-but" => !v.is_object(),
            "numeric" => numeric_terms(v).is_some(),
            _ => false,
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("an unknown or malformed matcher at {key}: {m}"))
    }
}

fn numeric_terms(v: &Value) -> Option<Vec<(&str, f64)>> {
    let list = v.as_array()?;
    if list.is_empty() || list.len() % 2 != 0 || list.len() > 4 {
        return None;
    }
    list.chunks(2)
        .map(|pair| {
            let op = pair[0].as_str()?;
            let n = pair[1].as_f64()?;
            ["<", "<=", "=", ">=", ">"].contains(&op).then_some((op, n))
        })
        .collect()
}

fn object_matches(pattern: &Map<String, Value>, record: &Value) -> bool {
    pattern.iter().all(|(key, want)| {
        let got = record.get(key);
        match want {
            Value::Object(inner) => got.is_some_and(|g| object_matches(inner, g)),
            Value::Array(matchers) => matchers.iter().any(|m| matcher_matches(m, got)),
            _ => false,
        }
    })
}

fn matcher_matches(matcher: &Value, got: Option<&Value>) -> bool {
    if let Value::Object(op) = matcher {
        if let Some(want) = op.get("exists").and_then(Value::as_bool) {
            return got.is_some() == want;
        }
    }
    let Some(got) = got else { return false };
    if let Value::Array(items) = got {
        return items.iter().any(|item| value_matches(matcher, item));
    }
    value_matches(matcher, got)
}

fn value_matches(matcher: &Value, got: &Value) -> bool {
    match matcher {
        Value::Object(op) => {
            if let Some(prefix) = op.get("prefix").and_then(Value::as_str) {
                return got.as_str().is_some_and(|s| s.starts_with(prefix));
            }
            if let Some(suffix) = op.get("suffix").and_then(Value::as_str) {
                return got.as_str().is_some_and(|s| s.ends_with(suffix));
            }
            if let Some(but) = op.get("anything-but") {
                return match but {
                    Value::Array(list) => !list.iter().any(|v| v == got),
                    v => v != got,
                };
            }
            if let Some(terms) = op.get("numeric").and_then(numeric_terms) {
                let Some(n) = got.as_f64() else { return false };
                return terms.iter().all(|(op, bound)| match *op {
                    "<" => n < *bound,
                    "<=" => n <= *bound,
                    "=" => n == *bound,
                    ">=" => n >= *bound,
                    _ => n > *bound,
                });
            }
            false
        }
        literal => literal == got,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filters(patterns: &[Value]) -> Filters {
        let list: Vec<Value> = patterns
            .iter()
            .map(|p| json!({ "Pattern": p.to_string() }))
            .collect();
        Filters::parse(&json!({ "Filters": list })).unwrap()
    }

    #[test]
    fn literals_prefixes_numbers_and_existence() {
        let f = filters(&[json!({
            "payload": {"kind": ["reading"], "value": [{"numeric": [">=", 10, "<", 20]}]},
            "topic": [{"prefix": "sensors/"}],
        })]);
        let record = |topic: &str, kind: &str, value: f64| json!({"topic": topic, "payload": {"kind": kind, "value": value}});
        assert!(f.matches(&record("sensors/a", "reading", 12.5)));
        assert!(!f.matches(&record("sensors/a", "reading", 20.0)));
        assert!(!f.matches(&record("other/a", "reading", 12.0)));
        assert!(!f.matches(&record("sensors/a", "alarm", 12.0)));
        let exists = filters(&[json!({"payload": {"alarm": [{"exists": true}]}})]);
        assert!(exists.matches(&json!({"payload": {"alarm": 1}})));
        assert!(!exists.matches(&json!({"payload": {}})));
        let absent = filters(&[json!({"payload": {"alarm": [{"exists": false}]}})]);
        assert!(absent.matches(&json!({"payload": {}})));
    }

    #[test]
    fn any_pattern_keeps_a_record_and_lists_match_any_element() {
        let f = filters(&[
            json!({"eventName": ["INSERT"]}),
            json!({"eventName": [{"anything-but": ["INSERT", "REMOVE"]}], "tags": ["red"]}),
        ]);
        assert!(f.matches(&json!({"eventName": "INSERT"})));
        assert!(f.matches(&json!({"eventName": "MODIFY", "tags": ["blue", "red"]})));
        assert!(!f.matches(&json!({"eventName": "MODIFY", "tags": ["blue"]})));
        assert!(!f.matches(&json!({"eventName": "REMOVE", "tags": ["red"]})));
        assert!(Filters::default().matches(&json!({})));
        let suffix = filters(&[json!({"key": [{"suffix": ".png"}]})]);
        assert!(suffix.matches(&json!({"key": "a/b.png"})));
    }

    #[test]
    fn malformed_criteria_are_refused() {
        for bad in [
            json!({"Filters": "x"}),
            json!({"Filters": [{"Pattern": "not json"}]}),
            json!({"Filters": [{"Pattern": "[1]"}]}),
            json!({"Filters": [{"Pattern": "{\"a\": 1}"}]}),
            json!({"Filters": [{"Pattern": "{\"a\": []}"}]}),
            json!({"Filters": [{"Pattern": "{\"a\": [{\"regex\": \"x\"}]}"}]}),
            json!({"Filters": [{"Pattern": "{\"a\": [{\"numeric\": [\">\"]}]}"}]}),
            json!({"Filters": [{"Pattern": "{}"}, {"Pattern": "{}"}, {"Pattern": "{}"},
                               {"Pattern": "{}"}, {"Pattern": "{}"}, {"Pattern": "{}"}]}),
        ] {
            assert!(Filters::parse(&bad).is_err(), "{bad}");
        }
    }
}
