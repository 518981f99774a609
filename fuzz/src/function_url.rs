//! Function URLs: what a function answers (guest-controlled bytes) becomes
//! a response whose status, header names and values can be written as they
//! are, or a 502; what a client sends becomes an event that is JSON with
//! its body intact; a request's host and path name a URL id of the right
//! shape or none.

use base64::Engine;
use mayfly_function_url::address::target;
use mayfly_function_url::config::is_url_id;
use mayfly_function_url::event::{event, Context, Request};
use mayfly_function_url::response::from_answer;

/// A guest's answer: a response that can be written, or the 502.
#[test]
fn answers_become_writable_responses() {
    bolero::check!().for_each(|answer: &[u8]| {
        let response = from_answer(answer);
        assert!((100..=599).contains(&response.status));
        for (name, value) in &response.headers {
            assert!(
                http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
                "{name}"
            );
            assert!(!value.contains(['\r', '\n']), "{value:?}");
        }
    });
}

/// A client's request: a JSON event whose body decodes back to the bytes
/// sent; the host and path name a well-formed id or nothing.
#[test]
fn requests_become_events_that_keep_their_body() {
    bolero::check!().for_each(|input: &[u8]| {
        let split = input.len() / 2;
        let (head, body) = input.split_at(split);
        let head = String::from_utf8_lossy(head);
        let mut parts = head.splitn(3, '\n');
        let (path, query, header) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let request = Request {
            method: "POST",
            path,
            query,
            headers: vec![
                ("content-type", header.as_bytes()),
                ("cookie", header.as_bytes()),
            ],
            body,
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        };
        let context = Context {
            url_id: "0123456789abcdef0123456789abcdef",
            domain_name: "d",
            account_id: "000000000000",
            request_id: "r",
            time_epoch_ms: u64::from(input.first().copied().unwrap_or(0)) << 40,
            iam: None,
        };
        let event = event(&request, &context);
        let text = serde_json::to_string(&event).unwrap();
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        if body.is_empty() {
            assert!(back.get("body").is_none());
        } else if back["isBase64Encoded"] == true {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(back["body"].as_str().unwrap())
                .unwrap();
            assert_eq!(decoded, body);
        } else {
            assert_eq!(back["body"].as_str().unwrap().as_bytes(), body);
        }
        if let Some(found) = target(Some(&head), path, "localhost") {
            assert!(is_url_id(found.url_id));
            assert!(found.path.starts_with('/') || found.path == path);
        }
    });
}
