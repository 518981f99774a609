//! The strict rules (`VerifyOptions::strict`) and the two-step
//! verification a server uses to authenticate before it reads a body.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, Uri};
use mayfly_sigv4::{
    canonical::UNSIGNED_PAYLOAD, check_headers, presign, sign, verify_with_options, Credentials,
    RequestParts, SigningParams, VerifyError, VerifyOptions,
};

const TARGET: &str = "/2015-03-31/functions/f/invocations";

fn creds() -> Credentials {
    Credentials::new(
        "AKIAEXAMPLE000000000",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    )
}

/// The headers of a request signed now, `signed_extra` among them.
fn signed(signed_extra: &[(&'static str, &'static str)], body: &[u8]) -> (HeaderMap, SystemTime) {
    let now = SystemTime::now();
    let creds = creds();
    let uri: Uri = format!("http://127.0.0.1:9000{TARGET}").parse().unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in signed_extra {
        headers.insert(*k, HeaderValue::from_static(v));
    }
    let params = SigningParams {
        time: now,
        ..SigningParams::new(&creds, "us-east-1", "lambda")
    };
    for (k, v) in &sign(&Method::POST, &uri, &headers, body, &params).unwrap() {
        headers.insert(k.clone(), v.clone());
    }
    (headers, now)
}

fn verify(
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
    options: &VerifyOptions,
) -> Result<mayfly_sigv4::VerifiedIdentity, VerifyError> {
    let target: Uri = TARGET.parse().unwrap();
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers,
    };
    verify_with_options(req, body, &creds(), now, options)
}

#[test]
fn every_x_amz_header_must_be_signed() {
    let strict = VerifyOptions::strict("lambda");
    let body = b"{}";
    let (headers, now) = signed(&[("x-amz-log-type", "Tail")], body);
    verify(&headers, body, now, &strict).unwrap();

    // Added to a captured request: the signature still matches (the
    // header is not in it), so only the rule stops it.
    for (name, value) in [
        ("x-amz-invocation-type", "Event"),
        ("x-amz-log-type", "None"),
        ("x-amz-client-context", "e30="),
    ] {
        let mut tampered = headers.clone();
        tampered.append(name, HeaderValue::from_static(value));
        if name != "x-amz-log-type" {
            verify(&tampered, body, now, &VerifyOptions::new("lambda"))
                .unwrap_or_else(|e| panic!("{name}: AWS's lenient rules: {e:?}"));
        }
        let err = verify(&tampered, body, now, &strict).unwrap_err();
        assert_eq!(err.aws_error_code(), "InvalidSignatureException", "{name}");
        match &err {
            VerifyError::HeadersNotSigned(names) if name != "x-amz-log-type" => {
                assert_eq!(names, name)
            }
            // A second value of a signed header changes what is signed.
            VerifyError::SignatureMismatch { .. } if name == "x-amz-log-type" => {}
            other => panic!("{name}: {other:?}"),
        }
        assert!(err.to_string().contains("not signed") || name == "x-amz-log-type");
    }
    // Other unsigned headers (user-agent, content-length...) are fine.
    let mut extra = headers.clone();
    extra.insert("user-agent", HeaderValue::from_static("curl/8"));
    extra.insert("x-amzn-trace-id", HeaderValue::from_static("Root=1"));
    verify(&extra, body, now, &strict).unwrap();
}

#[test]
fn unsigned_payload_and_presigned_urls_are_refused() {
    let strict = VerifyOptions::strict("lambda");
    let body = b"{}";
    let (headers, now) = signed(&[("x-amz-content-sha256", UNSIGNED_PAYLOAD)], body);
    verify(&headers, body, now, &VerifyOptions::new("lambda")).unwrap();
    let err = verify(&headers, body, now, &strict).unwrap_err();
    assert_eq!(
        err,
        VerifyError::UnsupportedPayloadHash(UNSIGNED_PAYLOAD.into())
    );
    assert!(err.to_string().contains("the body must be signed"), "{err}");

    let creds = creds();
    let uri: Uri = "http://127.0.0.1:9000/2015-03-31/functions"
        .parse()
        .unwrap();
    let params = SigningParams::new(&creds, "us-east-1", "lambda");
    let url = presign(&Method::GET, &uri, b"", &params, Duration::from_secs(600)).unwrap();
    let target: Uri = url.path_and_query().unwrap().as_str().parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    let req = RequestParts {
        method: &Method::GET,
        uri: &target,
        headers: &headers,
    };
    let lenient = verify_with_options(
        req,
        b"",
        &creds,
        SystemTime::now(),
        &VerifyOptions::new("lambda"),
    );
    assert!(lenient.unwrap().presigned);
    let err = verify_with_options(req, b"", &creds, SystemTime::now(), &strict).unwrap_err();
    assert_eq!(err, VerifyError::PresignedNotAccepted);
    // A lone X-Amz-Credential is enough to be refused as presigned.
    let target: Uri = "/2015-03-31/functions?X-Amz-Credential=x".parse().unwrap();
    let req = RequestParts {
        method: &Method::GET,
        uri: &target,
        headers: &headers,
    };
    assert_eq!(
        check_headers(req, &creds, SystemTime::now(), &strict).unwrap_err(),
        VerifyError::PresignedNotAccepted
    );
}

#[test]
fn headers_are_checked_without_the_body() {
    let strict = VerifyOptions::strict("lambda");
    let body = br#"{"a":1}"#;
    let (headers, now) = signed(&[("content-type", "application/json")], body);
    let target: Uri = TARGET.parse().unwrap();
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &headers,
    };
    // Everything but the body is known before it is read.
    let pending = check_headers(req, &creds(), now, &strict).unwrap();
    assert_eq!(pending.claimed_identity().region, "us-east-1");
    assert!(!format!("{pending:?}").contains("signing_key"));
    pending.clone().verify_body(body).unwrap();
    assert!(matches!(
        pending.verify_body(br#"{"a":2}"#),
        Err(VerifyError::SignatureMismatch { .. })
    ));

    // A wrong key, a stale date: refused before any body.
    let other = Credentials::new("AKIAOTHER00000000000", "x");
    assert!(matches!(
        check_headers(req, &other, now, &strict),
        Err(VerifyError::UnknownAccessKey { .. })
    ));
    assert!(matches!(
        check_headers(req, &creds(), now + Duration::from_secs(600), &strict),
        Err(VerifyError::SignatureExpired { .. })
    ));
    let bare = HeaderMap::new();
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &bare,
    };
    assert_eq!(
        check_headers(req, &creds(), now, &strict).unwrap_err(),
        VerifyError::MissingAuthentication
    );
}

/// The headers of a request signed now that declares its payload hash
/// (`x-amz-content-sha256`), as S3 clients do.
fn signed_with_payload_hash(body: &[u8]) -> (HeaderMap, SystemTime) {
    let creds = creds();
    let now = SystemTime::now();
    let uri: Uri = format!("http://127.0.0.1:9000{TARGET}").parse().unwrap();
    let params = SigningParams {
        time: now,
        content_sha256_header: true,
        ..SigningParams::new(&creds, "us-east-1", "lambda")
    };
    (
        sign(&Method::POST, &uri, &HeaderMap::new(), body, &params).unwrap(),
        now,
    )
}

#[test]
fn a_declared_payload_hash_is_checked_against_the_body() {
    let strict = VerifyOptions::strict("lambda");
    let body = b"{}";
    let (headers, now) = signed_with_payload_hash(body);
    verify(&headers, body, now, &strict).unwrap();
    assert_eq!(
        verify(&headers, b"[]", now, &strict),
        Err(VerifyError::ContentSha256Mismatch)
    );
}

#[test]
fn a_declared_payload_hash_lets_the_signature_be_checked_before_the_body() {
    let strict = VerifyOptions::strict("lambda");
    let (headers, now) = signed_with_payload_hash(b"{}");
    let target: Uri = TARGET.parse().unwrap();
    let forged = Credentials::new("AKIAEXAMPLE000000000", "not the secret");
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &headers,
    };
    // The right key id with a wrong secret: found out with no body at all.
    assert!(matches!(
        check_headers(req, &forged, now, &strict),
        Err(VerifyError::SignatureMismatch { .. })
    ));
    check_headers(req, &creds(), now, &strict).unwrap();
    // Without the header the forgery can only be found with the body.
    let (headers, _) = signed(&[], b"{}");
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &headers,
    };
    let pending = check_headers(req, &forged, now, &strict).unwrap();
    assert!(pending.verify_body(b"{}").is_err());
}
