//! A push's body, checked, and its records as Lambda's S3 trigger sends
//! them.
//!
//! Stores differ from S3 in small ways that break handlers written for
//! Lambda: Ceph RGW names itself `ceph:s3`, leaves `awsRegion` empty and
//! sends object keys as they are, where S3 sends `aws:s3`, its region and
//! keys URL-encoded (`red flower.jpg` as `red+flower.jpg`, which handlers
//! undo with `unquote_plus`). Each record is made into S3's form; whatever
//! else the store adds (RGW's `eventId`, `opaqueData`, object metadata and
//! tags) is kept.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The most records one push may carry (S3 sends one per event; RGW too).
pub const MAX_RECORDS: usize = 100;

/// Why a push's body is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON without a non-empty `Records` array of at most
    /// [`MAX_RECORDS`].
    #[error("the body must be an object with 1 to {MAX_RECORDS} Records")]
    NoRecords,
    /// A record without what every S3 event record has.
    #[error("record {index}: {missing} is missing or not a string")]
    Incomplete {
        /// The record's index in `Records`.
        index: usize,
        /// The field.
        missing: &'static str,
    },
}

/// One record of a push, in S3's form.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectEvent {
    /// The bucket's name.
    pub bucket: String,
    /// The event's name without `s3:` (`ObjectCreated:Put`).
    pub event_name: String,
    /// The record as Lambda's S3 trigger sends it.
    pub record: Value,
    /// Identifies this record among pushes: the same record pushed again
    /// (a store retrying after a lost answer) has the same receipt.
    pub receipt: String,
}

impl ObjectEvent {
    /// The bucket's ARN, as `AWS:SourceArn` conditions name it.
    pub fn source_arn(&self) -> String {
        format!("arn:aws:s3:::{}", self.bucket)
    }

    /// The event a function receives for this record alone, as S3 invokes
    /// a function once per event.
    pub fn payload(&self) -> Value {
        serde_json::json!({ "Records": [self.record] })
    }
}

/// The records of `body`, each in S3's form, with `region` where the store
/// gave none.
pub fn parse(body: &[u8], region: &str) -> Result<Vec<ObjectEvent>, RecordError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RecordError::NotJson(e.to_string()))?;
    let records = value["Records"]
        .as_array()
        .filter(|r| (1..=MAX_RECORDS).contains(&r.len()))
        .ok_or(RecordError::NoRecords)?;
    records
        .iter()
        .enumerate()
        .map(|(index, raw)| normalise(index, raw, region))
        .collect()
}

fn text<'a>(value: &'a Value, index: usize, missing: &'static str) -> Result<&'a str, RecordError> {
    value
        .as_str()
        .ok_or(RecordError::Incomplete { index, missing })
}

fn normalise(index: usize, raw: &Value, region: &str) -> Result<ObjectEvent, RecordError> {
    if !raw.is_object() {
        return Err(RecordError::Incomplete {
            index,
            missing: "the record",
        });
    }
    let name = text(&raw["eventName"], index, "eventName")?;
    let event_name = name.strip_prefix("s3:").unwrap_or(name).to_string();
    let bucket = text(&raw["s3"]["bucket"]["name"], index, "s3.bucket.name")?.to_string();
    if bucket.is_empty() {
        return Err(RecordError::Incomplete {
            index,
            missing: "s3.bucket.name",
        });
    }
    let key = text(&raw["s3"]["object"]["key"], index, "s3.object.key")?;
    let mut record = raw.clone();
    let encoded = encode_key(key);
    record["s3"]["object"]["key"] = Value::from(encoded);
    record["eventName"] = Value::from(event_name.as_str());
    record["eventSource"] = Value::from("aws:s3");
    if record["eventVersion"].as_str().is_none() {
        record["eventVersion"] = Value::from("2.1");
    }
    if record["awsRegion"].as_str().is_none_or(str::is_empty) {
        record["awsRegion"] = Value::from(region);
    }
    if record["s3"]["bucket"]["arn"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        record["s3"]["bucket"]["arn"] = Value::from(format!("arn:aws:s3:::{bucket}"));
    }
    Ok(ObjectEvent {
        receipt: hex::encode(Sha256::digest(raw.to_string().as_bytes())),
        bucket,
        event_name,
        record,
    })
}

/// An object key as S3 writes it in event records: form-encoded (a space
/// is `+`), with `/` and the unreserved characters as they are.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &b in key.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' | b'/' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A record as Ceph RGW 16.2 pushes it (trimmed).
    fn rgw(key: &str) -> Value {
        json!({
            "eventVersion": "2.2", "eventSource": "ceph:s3", "awsRegion": "",
            "eventTime": "2026-12-01T20:40:08.180693Z", "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "tester"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "n1",
                   "bucket": {"name": "photos", "arn": "arn:aws:s3:::photos"},
                   "object": {"key": key, "size": 5, "eTag": "5d41", "sequencer": "A830"}},
            "eventId": "1796157608.182325.5d41", "opaqueData": ""
        })
    }

    #[test]
    fn an_rgw_record_becomes_what_s3_sends() {
        let body = json!({ "Records": [rgw("up/red flower+1 (2).jpg")] }).to_string();
        let events = parse(body.as_bytes(), "eu-west-1").unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(
            (e.bucket.as_str(), e.event_name.as_str()),
            ("photos", "ObjectCreated:Put")
        );
        assert_eq!(e.source_arn(), "arn:aws:s3:::photos");
        assert_eq!(e.record["eventSource"], "aws:s3");
        assert_eq!(e.record["awsRegion"], "eu-west-1");
        assert_eq!(
            e.record["s3"]["object"]["key"],
            "up/red+flower%2B1+%282%29.jpg"
        );
        // What the store adds stays.
        assert_eq!(e.record["eventId"], "1796157608.182325.5d41");
        assert_eq!(e.record["s3"]["object"]["sequencer"], "A830");
        assert_eq!(e.payload()["Records"][0], e.record);
    }

    #[test]
    fn the_same_record_pushed_twice_has_the_same_receipt() {
        let a = json!({ "Records": [rgw("a.txt")] }).to_string();
        let b = json!({ "Records": [rgw("b.txt")] }).to_string();
        let first = &parse(a.as_bytes(), "r").unwrap()[0];
        let again = &parse(a.as_bytes(), "r").unwrap()[0];
        let other = &parse(b.as_bytes(), "r").unwrap()[0];
        assert_eq!(first.receipt, again.receipt);
        assert_ne!(first.receipt, other.receipt);
    }

    #[test]
    fn s3_prefixed_names_missing_fields_and_their_defaults() {
        let body = json!({ "Records": [{
            "eventName": "s3:ObjectRemoved:Delete",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}
        }]})
        .to_string();
        let e = &parse(body.as_bytes(), "us-east-1").unwrap()[0];
        assert_eq!(e.event_name, "ObjectRemoved:Delete");
        assert_eq!(e.record["eventName"], "ObjectRemoved:Delete");
        assert_eq!(e.record["eventVersion"], "2.1");
        assert_eq!(e.record["s3"]["bucket"]["arn"], "arn:aws:s3:::b");
    }

    #[test]
    fn bodies_without_usable_records_are_refused() {
        assert!(matches!(parse(b"nope", "r"), Err(RecordError::NotJson(_))));
        for body in [json!({}), json!({"Records": []}), json!({"Records": {}})] {
            let body = body.to_string();
            assert_eq!(parse(body.as_bytes(), "r"), Err(RecordError::NoRecords));
        }
        let many = json!({ "Records": vec![rgw("k"); MAX_RECORDS + 1] }).to_string();
        assert_eq!(parse(many.as_bytes(), "r"), Err(RecordError::NoRecords));
        let cases = [
            (json!(7), "the record"),
            (
                json!({"s3": {"bucket": {"name": "b"}, "object": {"key": "k"}}}),
                "eventName",
            ),
            (
                json!({"eventName": "x", "s3": {"object": {"key": "k"}}}),
                "s3.bucket.name",
            ),
            (
                json!({"eventName": "x", "s3": {"bucket": {"name": ""}, "object": {"key": "k"}}}),
                "s3.bucket.name",
            ),
            (
                json!({"eventName": "x", "s3": {"bucket": {"name": "b"}, "object": {"key": 1}}}),
                "s3.object.key",
            ),
        ];
        for (record, missing) in cases {
            let body = json!({ "Records": [rgw("ok"), record] }).to_string();
            assert_eq!(
                parse(body.as_bytes(), "r"),
                Err(RecordError::Incomplete { index: 1, missing })
            );
        }
    }

    #[test]
    fn keys_are_encoded_as_s3_encodes_them() {
        assert_eq!(encode_key("a/b-c_d.e~f*g"), "a/b-c_d.e~f*g");
        assert_eq!(encode_key("key=value&x"), "key%3Dvalue%26x");
        assert_eq!(encode_key("ü"), "%C3%BC");
    }
}
