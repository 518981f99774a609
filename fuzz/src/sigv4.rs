//! SigV4 verification under the strict rules `mayfly serve` uses: a
//! request signed here, then changed as an attacker would change a
//! captured one. The verifier must accept exactly the untouched requests
//! (within the clock skew) and never panic on what it parses.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use mayfly_sigv4::{
    sign, verify_with_options, Credentials, RequestParts, SigningParams, VerifyOptions,
};

const TARGET: &str = "/2015-03-31/functions/f/invocations";
/// AWS's (and Mayfly's) allowed clock skew.
const MAX_SKEW_S: i64 = 300;
/// Headers an attacker adds to a captured request.
const ADDED: [&str; 6] = [
    "x-amz-invocation-type",
    "x-amz-log-type",
    "x-amz-client-context",
    "x-amz-content-sha256",
    "user-agent",
    "x-forwarded-for",
];

fn creds() -> Credentials {
    Credentials::new(
        "AKIAEXAMPLE000000000",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )
}

/// The header names the signature covers, from `Authorization`.
fn signed_names(headers: &HeaderMap) -> Vec<String> {
    let auth = headers["authorization"].to_str().expect("ASCII");
    let list = auth
        .split("SignedHeaders=")
        .nth(1)
        .expect("SignedHeaders")
        .split(',')
        .next()
        .unwrap();
    list.split(';').map(str::to_string).collect()
}

/// What an `Authorization` value says, whatever its commas and spaces:
/// the scheme and its sorted `key=value` fields. Two values with the same
/// fields carry the same signature, so accepting either is right.
fn auth_fields(value: Option<&HeaderValue>) -> Option<(String, Vec<String>)> {
    let text = value?.to_str().ok()?;
    let (scheme, rest) = text.split_once(' ')?;
    let mut fields: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    fields.sort();
    Some((scheme.to_string(), fields))
}

/// The input: `[options, mutation...]`, each mutation `[op, arg, len,
/// bytes...]`; see the match below for what each `op` changes.
#[test]
fn sigv4_tampering() {
    let signed_at = UNIX_EPOCH + Duration::from_secs(1_764_000_000);
    let strict = VerifyOptions::strict("lambda");
    bolero::check!().for_each(|input: &[u8]| {
        let Some((&options, mut rest)) = input.split_first() else {
            return;
        };
        let creds = creds();
        let uri: Uri = format!("http://127.0.0.1:9000{TARGET}").parse().unwrap();
        let mut body = b"{\"key\":\"value\"}".to_vec();
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if options & 1 == 1 {
            headers.insert("x-amz-log-type", HeaderValue::from_static("Tail"));
        }
        let params = SigningParams {
            time: signed_at,
            content_sha256_header: options & 2 == 2,
            ..SigningParams::new(&creds, "us-east-1", "lambda")
        };
        for (k, v) in &sign(&Method::POST, &uri, &headers, &body, &params).expect("sign") {
            headers.insert(k.clone(), v.clone());
        }
        let signed = signed_names(&headers);
        let original_auth = auth_fields(headers.get("authorization"));
        let original_body = body.clone();
        let mut method = Method::POST;
        let mut target = TARGET.to_string();
        let mut skew_s: i64 = 0;
        let mut tampered = false;
        while let [op, arg, len, tail @ ..] = rest {
            let len = usize::from(*len).min(tail.len());
            let (data, after) = tail.split_at(len);
            rest = after;
            match op % 7 {
                // One more character on a header's value.
                0 => {
                    let names: Vec<HeaderName> = headers.keys().cloned().collect();
                    let name = &names[usize::from(*arg) % names.len()];
                    let mut value = headers[name].as_bytes().to_vec();
                    value.push(0x21 + arg % 94);
                    if let Ok(value) = HeaderValue::from_bytes(&value) {
                        headers.insert(name.clone(), value);
                        // Authorization is compared at the end.
                        tampered |= signed.iter().any(|s| s == name.as_str());
                    }
                }
                // A header added (a second value if present).
                1 => {
                    let name = ADDED[usize::from(*arg) % ADDED.len()];
                    if let Ok(value) = HeaderValue::from_bytes(data) {
                        tampered |= name.starts_with("x-amz-") || signed.iter().any(|s| s == name);
                        headers.append(name, value);
                    }
                }
                // Another body.
                2 => body = data.to_vec(),
                // The server's clock elsewhere.
                3 => skew_s = i64::from(*arg as i8) * 10,
                // Another Authorization.
                4 => {
                    if let Ok(value) = HeaderValue::from_bytes(data) {
                        headers.insert("authorization", value);
                    }
                }
                // Another method.
                5 => {
                    method = [Method::GET, Method::PUT, Method::POST][usize::from(*arg) % 3].clone()
                }
                // A query string (presigned parameters among them).
                _ => {
                    let text = String::from_utf8_lossy(data);
                    let query = if arg % 2 == 0 {
                        format!("X-Amz-Signature={text}")
                    } else {
                        text.into_owned()
                    };
                    let candidate = format!("{TARGET}?{query}");
                    if candidate.parse::<Uri>().is_ok() {
                        target = candidate;
                    }
                }
            }
        }
        let Ok(uri) = target.parse::<Uri>() else {
            return;
        };
        let now = if skew_s >= 0 {
            signed_at + Duration::from_secs(skew_s as u64)
        } else {
            signed_at - Duration::from_secs(skew_s.unsigned_abs())
        };
        let request = RequestParts {
            method: &method,
            uri: &uri,
            headers: &headers,
        };
        let result = verify_with_options(request, &body, &creds, now, &strict);
        // What a later step can undo is compared as it ends up; a query
        // with no parameter (`path?`, `path?&&`) is the same canonical
        // request as none.
        tampered |= method != Method::POST
            || body != original_body
            || uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| !p.is_empty()))
            || auth_fields(headers.get("authorization")) != original_auth;
        let expected = !tampered && skew_s.abs() <= MAX_SKEW_S;
        assert_eq!(
            result.is_ok(),
            expected,
            "tampered {tampered}, skew {skew_s} s, {method} {uri}, {headers:?}: {result:?}"
        );
    });
}

/// Sanity for the oracle above: nothing changed verifies.
#[test]
fn an_untouched_request_verifies() {
    let creds = creds();
    let uri: Uri = format!("http://127.0.0.1:9000{TARGET}").parse().unwrap();
    let now = SystemTime::now();
    let params = SigningParams {
        time: now,
        ..SigningParams::new(&creds, "us-east-1", "lambda")
    };
    let mut headers = HeaderMap::new();
    for (k, v) in &sign(&Method::POST, &uri, &headers, b"{}", &params).unwrap() {
        headers.insert(k.clone(), v.clone());
    }
    let target: Uri = TARGET.parse().unwrap();
    let request = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &headers,
    };
    verify_with_options(
        request,
        b"{}",
        &creds,
        now,
        &VerifyOptions::strict("lambda"),
    )
    .unwrap();
}
