//! Published AWS SigV4 examples (each also checked against botocore).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, Method, Uri};
use mayfly_sigv4::{sign, verify, Credentials, RequestParts, SigningParams, VerifyError};

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/// 20150830T123600Z
fn t() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_440_938_160)
}

fn params<'a>(creds: &'a Credentials, service: &'static str) -> SigningParams<'a> {
    SigningParams {
        time: t(),
        ..SigningParams::new(creds, "us-east-1", service)
    }
}

/// aws-sig-v4-test-suite "get-vanilla".
#[test]
fn get_vanilla_signs_and_verifies() {
    let creds = Credentials::new(AKID, SECRET);
    let uri: Uri = "https://example.amazonaws.com/".parse().unwrap();
    let added = sign(
        &Method::GET,
        &uri,
        &HeaderMap::new(),
        b"",
        &params(&creds, "service"),
    )
    .unwrap();
    let auth = added["authorization"].to_str().unwrap();
    assert_eq!(
        auth,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    );

    // The same request as the server sees it.
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    headers.insert("authorization", HeaderValue::from_str(auth).unwrap());
    let target: Uri = "/".parse().unwrap();
    let req = RequestParts {
        method: &Method::GET,
        uri: &target,
        headers: &headers,
    };
    let who = verify(req, b"", &creds, t(), "service").unwrap();
    assert_eq!(who.access_key_id, AKID);
    assert_eq!(who.region, "us-east-1");
    assert_eq!(who.signed_headers, ["host", "x-amz-date"]);
    // The vector is for service "service", not lambda.
    assert!(matches!(
        verify(req, b"", &creds, t(), "lambda"),
        Err(VerifyError::WrongService { .. })
    ));
}

/// The IAM ListUsers example of AWS's "Create a signed AWS API request" guide.
#[test]
fn iam_list_users_example() {
    let creds = Credentials::new(AKID, SECRET);
    let uri: Uri = "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08"
        .parse()
        .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
    );
    let added = sign(&Method::GET, &uri, &headers, b"", &params(&creds, "iam")).unwrap();
    assert_eq!(
        added["authorization"],
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}
