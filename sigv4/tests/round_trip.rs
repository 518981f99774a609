//! Our signer against our verifier, and the verifier's error paths.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, Uri};
use mayfly_sigv4::{
    canonical::{encode_path_segment, UNSIGNED_PAYLOAD},
    generate_credentials, presign, sign, verify, verify_with_options, Credentials, RequestParts,
    SigningParams, VerifyError, VerifyOptions,
};

struct Signed {
    target: Uri,
    headers: HeaderMap,
    body: Vec<u8>,
    now: SystemTime,
    creds: Credentials,
}

impl Signed {
    fn new(
        method: &Method,
        path_and_query: &str,
        extra: &[(&'static str, &str)],
        body: &[u8],
    ) -> Self {
        let creds = generate_credentials().unwrap();
        let now = SystemTime::now();
        let uri: Uri = format!("http://localhost:9000{path_and_query}")
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        for (k, v) in extra {
            headers.append(*k, HeaderValue::from_str(v).unwrap());
        }
        let params = SigningParams {
            time: now,
            ..SigningParams::new(&creds, "eu-west-1", "lambda")
        };
        for (k, v) in &sign(method, &uri, &headers, body, &params).unwrap() {
            headers.insert(k.clone(), v.clone());
        }
        Signed {
            target: path_and_query.parse().unwrap(),
            headers,
            body: body.to_vec(),
            now,
            creds,
        }
    }
    fn verify(&self, method: &Method) -> Result<mayfly_sigv4::VerifiedIdentity, VerifyError> {
        let req = RequestParts {
            method,
            uri: &self.target,
            headers: &self.headers,
        };
        verify(req, &self.body, &self.creds, self.now, "lambda")
    }
    fn with_auth(&mut self, value: &str) -> &mut Self {
        self.headers
            .insert("authorization", HeaderValue::from_str(value).unwrap());
        self
    }
    fn auth(&self) -> String {
        self.headers["authorization"].to_str().unwrap().to_owned()
    }
}

#[test]
fn round_trips_lambda_shaped_requests() {
    let arn = encode_path_segment("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST");
    type Case<'a> = (Method, String, Vec<(&'static str, &'a str)>, &'a [u8]);
    let cases: Vec<Case> = vec![
        (
            Method::GET,
            "/2015-03-31/functions?MaxItems=2&Marker=x".into(),
            vec![],
            b"",
        ),
        (
            Method::POST,
            format!("/2015-03-31/functions/{arn}/invocations"),
            vec![
                ("x-amz-invocation-type", "Event"),
                ("content-type", "application/json"),
            ],
            br#"{"a": [1, 2]}"#,
        ),
        (
            Method::PUT,
            "/2017-10-31/functions/f/concurrency".into(),
            vec![],
            b"",
        ),
        (
            Method::GET,
            "/2015-03-31/functions/f?Qualifier=%24LATEST&a=&b=%20c".into(),
            vec![
                ("x-amz-meta", " x   y "),
                ("x-amz-meta", "z"),
                ("user-agent", "mayfly/0.1"),
            ],
            b"",
        ),
    ];
    for (method, path, extra, body) in cases {
        let s = Signed::new(&method, &path, &extra, body);
        let who = s
            .verify(&method)
            .unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(who.region, "eu-west-1");
        assert!(!who.signed_headers.contains(&"user-agent".to_owned()));
    }
}

#[test]
fn http2_authority_stands_in_for_host() {
    let mut s = Signed::new(&Method::GET, "/2015-03-31/functions", &[], b"");
    s.headers.remove("host");
    s.target = "http://localhost:9000/2015-03-31/functions"
        .parse()
        .unwrap();
    s.verify(&Method::GET).unwrap();
    s.target = "/2015-03-31/functions".parse().unwrap();
    assert_eq!(
        s.verify(&Method::GET),
        Err(VerifyError::SignedHeaderMissing("host".into()))
    );
}

#[test]
fn malformed_authorization_headers() {
    let mut s = Signed::new(&Method::GET, "/", &[], b"");
    let good = s.auth();
    let cases = [
        ("Bearer abc", "UnsupportedAlgorithm"),
        ("AWS4-HMAC-SHA1 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=00", "UnsupportedAlgorithm"),
        ("AWS4-HMAC-SHA256", "Malformed"),
        ("AWS4-HMAC-SHA256 Credential=x", "Malformed"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/lambda/aws4_request, Signature=00", "Malformed"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/lambda/aws4_request, SignedHeaders=host, Signature=00", "Malformed"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/lambda/aws4, SignedHeaders=host, Signature=00", "BadScope"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/s3/aws4_request, SignedHeaders=host, Signature=00", "WrongService"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101//lambda/aws4_request, SignedHeaders=host, Signature=00", "WrongRegion"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/lambda/aws4_request, SignedHeaders=x-amz-date, Signature=00", "HeaderNotSigned"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/lambda/aws4_request, SignedHeaders=host, Signature=00", "HeaderNotSigned"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=00", "ScopeDateMismatch"),
        ("AWS4-HMAC-SHA256 Credential=A/20240101/r/lambda/aws4_request, Foo=1, SignedHeaders=host;x-amz-date, Signature=00", "Malformed"),
    ];
    for (value, variant) in cases {
        let err = s.with_auth(value).verify(&Method::GET).unwrap_err();
        assert!(format!("{err:?}").starts_with(variant), "{value}: {err:?}");
        assert_eq!(err.aws_error_code(), "InvalidSignatureException");
    }
    // A signed header that is absent from the request.
    let extra = good.replace(
        "SignedHeaders=host;x-amz-date",
        "SignedHeaders=host;x-amz-date;x-amz-foo",
    );
    let err = s.with_auth(&extra).verify(&Method::GET).unwrap_err();
    assert_eq!(err, VerifyError::SignedHeaderMissing("x-amz-foo".into()));
    // No spaces after the commas is fine.
    s.with_auth(&good.replace(", ", ","))
        .verify(&Method::GET)
        .unwrap();
    // Uppercase hex is not what AWS computes.
    let (head, sig) = good.rsplit_once("Signature=").unwrap();
    let upper = format!("{head}Signature={}", sig.to_uppercase());
    let err = s.with_auth(&upper).verify(&Method::GET).unwrap_err();
    assert!(matches!(err, VerifyError::SignatureMismatch { .. }));
}

#[test]
fn date_problems() {
    let mut s = Signed::new(&Method::GET, "/", &[], b"");
    s.headers.remove("x-amz-date");
    assert_eq!(s.verify(&Method::GET), Err(VerifyError::MissingDate));
    s.headers.insert(
        "x-amz-date",
        HeaderValue::from_static("2024-01-01T00:00:00Z"),
    );
    assert!(matches!(
        s.verify(&Method::GET),
        Err(VerifyError::InvalidDate(_))
    ));
}

#[test]
fn payload_hash_header() {
    let body = br#"{"k":"v"}"#;
    let creds = generate_credentials().unwrap();
    let now = SystemTime::now();
    let uri: Uri = "http://localhost/2015-03-31/functions/f/invocations"
        .parse()
        .unwrap();
    let params = SigningParams {
        time: now,
        content_sha256_header: true,
        ..SigningParams::new(&creds, "us-east-1", "lambda")
    };
    let headers = sign(&Method::POST, &uri, &HeaderMap::new(), body, &params).unwrap();
    assert!(headers["authorization"]
        .to_str()
        .unwrap()
        .contains("x-amz-content-sha256"));
    let target: Uri = "/2015-03-31/functions/f/invocations".parse().unwrap();
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &headers,
    };
    verify(req, body, &creds, now, "lambda").unwrap();
    assert_eq!(
        verify(req, b"{}", &creds, now, "lambda"),
        Err(VerifyError::ContentSha256Mismatch)
    );

    // UNSIGNED-PAYLOAD: accepted by default (body not covered), refusable.
    let mut unsigned = HeaderMap::new();
    unsigned.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(UNSIGNED_PAYLOAD),
    );
    let params = SigningParams {
        time: now,
        ..SigningParams::new(&creds, "us-east-1", "lambda")
    };
    let mut headers = sign(&Method::POST, &uri, &unsigned, body, &params).unwrap();
    headers.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static(UNSIGNED_PAYLOAD),
    );
    let req = RequestParts {
        method: &Method::POST,
        uri: &target,
        headers: &headers,
    };
    let who = verify(req, b"anything", &creds, now, "lambda").unwrap();
    assert!(!who.payload_signed);
    let strict = VerifyOptions {
        allow_unsigned_payload: false,
        ..VerifyOptions::new("lambda")
    };
    assert!(matches!(
        verify_with_options(req, body, &creds, now, &strict),
        Err(VerifyError::UnsupportedPayloadHash(_))
    ));
}

#[test]
fn presigned_round_trip_and_ambiguity() {
    let creds = generate_credentials().unwrap();
    let now = SystemTime::now();
    let uri: Uri = "http://127.0.0.1:9000/2015-03-31/functions?MaxItems=2"
        .parse()
        .unwrap();
    let params = SigningParams {
        time: now,
        ..SigningParams::new(&creds, "us-east-1", "lambda")
    };
    let url = presign(&Method::GET, &uri, b"", &params, Duration::from_secs(60)).unwrap();
    let target: Uri = url.path_and_query().unwrap().as_str().parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:9000"));
    let req = RequestParts {
        method: &Method::GET,
        uri: &target,
        headers: &headers,
    };
    assert!(verify(req, b"", &creds, now, "lambda").unwrap().presigned);
    let later = now + Duration::from_secs(61);
    assert!(matches!(
        verify(req, b"", &creds, later, "lambda"),
        Err(VerifyError::PresignedUrlExpired { .. })
    ));
    headers.insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 x"),
    );
    let req = RequestParts {
        method: &Method::GET,
        uri: &target,
        headers: &headers,
    };
    assert_eq!(
        verify(req, b"", &creds, now, "lambda"),
        Err(VerifyError::AmbiguousAuthentication)
    );
}

#[test]
fn region_allow_list() {
    let s = Signed::new(&Method::GET, "/", &[], b"");
    let req = RequestParts {
        method: &Method::GET,
        uri: &s.target,
        headers: &s.headers,
    };
    let only = VerifyOptions {
        allowed_regions: Some(vec!["us-east-1".into()]),
        ..VerifyOptions::new("lambda")
    };
    assert_eq!(
        verify_with_options(req, b"", &s.creds, s.now, &only),
        Err(VerifyError::WrongRegion("eu-west-1".into()))
    );
}
