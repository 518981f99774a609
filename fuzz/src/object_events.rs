//! Object-store pushes: whatever a store (or anyone reaching the URL
//! front) posts is refused with a reason, or gives at most
//! `MAX_RECORDS` records each in S3's form (`aws:s3`, a bucket, an
//! encoded key that decodes back); push paths parse or are refused, and a
//! token is valid only for the function it was made for.

use mayfly_object_events::endpoint::{self, Target};
use mayfly_object_events::record::{self, MAX_RECORDS};

fn decode(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[test]
fn pushes_are_refused_or_become_s3_records() {
    bolero::check!().for_each(|input: &[u8]| {
        if let Ok(events) = record::parse(input, "us-east-1") {
            assert!((1..=MAX_RECORDS).contains(&events.len()));
            for e in events {
                assert!(!e.bucket.is_empty());
                assert_eq!(e.record["eventSource"], "aws:s3");
                assert_eq!(e.record["s3"]["bucket"]["name"], e.bucket.as_str());
                let key = e.record["s3"]["object"]["key"].as_str().unwrap();
                assert!(!key.contains(' '), "{key}");
                assert_eq!(
                    record::encode_key(&String::from_utf8(decode(key)).unwrap()),
                    key
                );
                assert_eq!(e.receipt.len(), 64);
            }
        }
    });
}

#[test]
fn push_paths_parse_or_are_refused_and_tokens_open_one_function() {
    bolero::check!().for_each(|input: &[u8]| {
        let path = String::from_utf8_lossy(input);
        if let Some(target) = Target::parse(&path) {
            assert!(!target.function.is_empty() && !target.token.is_empty());
            // Only the token the secret makes for this very function.
            let made = endpoint::token("secret", target.function, target.qualifier);
            assert_eq!(
                target.token_is_valid("secret"),
                target.token.eq_ignore_ascii_case(&made)
            );
        }
    });
}
