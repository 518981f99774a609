//! Requests signed by botocore and sent by the real AWS CLI (see
//! `fixtures/gen_botocore_fixtures.py`) verify; tampered versions fail with
//! the right AWS error; and our signer reproduces botocore's signatures.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use mayfly_sigv4::{
    parse_amz_date, sign, verify, verify_with_options, Credentials, RequestParts, SigningParams,
    VerifyError, VerifyOptions,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixtures {
    service: String,
    cases: Vec<Case>,
}

#[derive(Deserialize, Clone)]
struct Case {
    name: String,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
    now: String,
    access_key_id: String,
    secret_access_key: String,
    region: String,
    #[serde(default)]
    presigned: bool,
}

impl Case {
    fn method(&self) -> Method {
        self.method.parse().unwrap()
    }
    fn uri(&self) -> Uri {
        if self.query.is_empty() {
            self.path.parse().unwrap()
        } else {
            format!("{}?{}", self.path, self.query).parse().unwrap()
        }
    }
    fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in &self.headers {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }
    fn now(&self) -> SystemTime {
        parse_amz_date(&self.now).unwrap()
    }
    fn creds(&self) -> Credentials {
        Credentials::new(&self.access_key_id, &self.secret_access_key)
    }
    fn check(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        creds: &Credentials,
        now: SystemTime,
    ) -> Result<mayfly_sigv4::VerifiedIdentity, VerifyError> {
        let method = self.method();
        let req = RequestParts {
            method: &method,
            uri,
            headers,
        };
        verify(req, body, creds, now, "lambda")
    }
}

fn fixtures() -> Vec<Case> {
    let f: Fixtures =
        serde_json::from_str(include_str!("fixtures/botocore_fixtures.json")).unwrap();
    assert_eq!(f.service, "lambda");
    assert!(f.cases.len() >= 15, "fixtures look truncated");
    for source in ["client-", "sigv4-", "aws-cli-"] {
        assert!(
            f.cases.iter().any(|c| c.name.starts_with(source)),
            "no {source} cases"
        );
    }
    f.cases
}

fn expect_err(
    case: &Case,
    what: &str,
    r: Result<mayfly_sigv4::VerifiedIdentity, VerifyError>,
    code: &str,
) -> VerifyError {
    let err = r.expect_err(&format!("{}: {what} verified", case.name));
    assert_eq!(err.aws_error_code(), code, "{}: {what}: {err:?}", case.name);
    err
}

#[test]
fn botocore_requests_verify() {
    for case in fixtures() {
        let who = case
            .check(
                &case.uri(),
                &case.header_map(),
                case.body.as_bytes(),
                &case.creds(),
                case.now(),
            )
            .unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        assert_eq!(who.access_key_id, case.access_key_id, "{}", case.name);
        assert_eq!(who.region, case.region);
        assert_eq!(who.service, "lambda");
        assert_eq!(who.presigned, case.presigned, "{}", case.name);
        assert!(who.payload_signed);
        assert!(who.signed_headers.iter().any(|h| h == "host"));
    }
}

#[test]
fn wrong_secret_is_invalid_signature() {
    for case in fixtures() {
        let creds = Credentials::new(&case.access_key_id, "not-the-secret");
        let r = case.check(
            &case.uri(),
            &case.header_map(),
            case.body.as_bytes(),
            &creds,
            case.now(),
        );
        let err = expect_err(&case, "wrong secret", r, "InvalidSignatureException");
        assert!(
            matches!(err, VerifyError::SignatureMismatch { .. }),
            "{}",
            case.name
        );
        assert_eq!(
            err.to_string(),
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        );
    }
}

#[test]
fn unknown_key_is_unrecognized_client() {
    for case in fixtures() {
        let creds = Credentials::new("AKIAOTHERKEY00000000", &case.secret_access_key);
        let r = case.check(
            &case.uri(),
            &case.header_map(),
            case.body.as_bytes(),
            &creds,
            case.now(),
        );
        let err = expect_err(&case, "unknown key", r, "UnrecognizedClientException");
        assert_eq!(
            err.to_string(),
            "The security token included in the request is invalid."
        );
    }
}

#[test]
fn changed_body_is_invalid_signature() {
    for case in fixtures() {
        let mut body = case.body.clone().into_bytes();
        body.push(b' ');
        let r = case.check(
            &case.uri(),
            &case.header_map(),
            &body,
            &case.creds(),
            case.now(),
        );
        expect_err(&case, "changed body", r, "InvalidSignatureException");
    }
}

#[test]
fn changed_path_query_or_method_is_invalid_signature() {
    for case in fixtures() {
        let (h, b, c, n) = (
            case.header_map(),
            case.body.as_bytes(),
            case.creds(),
            case.now(),
        );
        // The path decoded once ('%3A' -> ':') is a different canonical URI.
        let other_path: Uri = match case.query.as_str() {
            "" => format!("{}x", case.path),
            q => format!("{}x?{q}", case.path),
        }
        .parse()
        .unwrap();
        expect_err(
            &case,
            "changed path",
            case.check(&other_path, &h, b, &c, n),
            "InvalidSignatureException",
        );
        let other_query: Uri = match case.query.as_str() {
            "" => format!("{}?extra=1", case.path),
            q => format!("{}?{q}&extra=1", case.path),
        }
        .parse()
        .unwrap();
        expect_err(
            &case,
            "added query",
            case.check(&other_query, &h, b, &c, n),
            "InvalidSignatureException",
        );
        let method = if case.method == "GET" {
            Method::HEAD
        } else {
            Method::GET
        };
        let r = verify(
            RequestParts {
                method: &method,
                uri: &case.uri(),
                headers: &h,
            },
            b,
            &c,
            n,
            "lambda",
        );
        expect_err(&case, "changed method", r, "InvalidSignatureException");
        if case.path.contains('%') {
            let decoded = percent_encoding::percent_decode_str(&case.path)
                .decode_utf8()
                .unwrap();
            if let Ok(uri) = decoded.replace(' ', "%20").parse::<Uri>() {
                let r = case.check(&uri, &h, b, &c, n);
                expect_err(&case, "decoded path", r, "InvalidSignatureException");
            }
        }
    }
}

#[test]
fn changed_signed_header_is_invalid_signature() {
    for case in fixtures().into_iter().filter(|c| !c.presigned) {
        let mut h = case.header_map();
        h.insert("host", HeaderValue::from_static("evil.example:9000"));
        let r = case.check(
            &case.uri(),
            &h,
            case.body.as_bytes(),
            &case.creds(),
            case.now(),
        );
        expect_err(&case, "changed host", r, "InvalidSignatureException");
    }
}

#[test]
fn skewed_clock_is_signature_expired() {
    let six = Duration::from_secs(360);
    for case in fixtures() {
        let (u, h, b, c) = (
            case.uri(),
            case.header_map(),
            case.body.as_bytes(),
            case.creds(),
        );
        // Exactly 5 minutes either way is still accepted.
        case.check(&u, &h, b, &c, case.now() + Duration::from_secs(300))
            .unwrap();
        case.check(&u, &h, b, &c, case.now() - Duration::from_secs(300))
            .unwrap();
        let late = case.check(&u, &h, b, &c, case.now() + six);
        if case.presigned {
            // Presigned requests live for X-Amz-Expires (900 s) instead.
            late.unwrap();
            let r = case.check(&u, &h, b, &c, case.now() + Duration::from_secs(901));
            let err = expect_err(&case, "expired presign", r, "InvalidSignatureException");
            assert!(matches!(err, VerifyError::PresignedUrlExpired { .. }));
        } else {
            let err = expect_err(&case, "6 min late", late, "InvalidSignatureException");
            let now = mayfly_sigv4::format_amz_date(case.now() + six).unwrap();
            let earliest =
                mayfly_sigv4::format_amz_date(case.now() + Duration::from_secs(60)).unwrap();
            assert_eq!(
                err.to_string(),
                format!(
                    "Signature expired: {} is now earlier than {earliest} ({now} - 5 min.)",
                    case.now
                )
            );
        }
        let r = case.check(&u, &h, b, &c, case.now() - six);
        let err = expect_err(&case, "6 min early", r, "InvalidSignatureException");
        assert!(
            err.to_string().starts_with("Signature not yet current: "),
            "{err}"
        );
    }
}

#[test]
fn missing_auth_is_missing_authentication_token() {
    for case in fixtures() {
        let mut h = case.header_map();
        h.remove("authorization");
        let uri: Uri = if case.presigned {
            let q: Vec<&str> = case
                .query
                .split('&')
                .filter(|p| !p.starts_with("X-Amz-"))
                .collect();
            format!("{}?{}", case.path, q.join("&")).parse().unwrap()
        } else {
            case.uri()
        };
        let r = case.check(&uri, &h, case.body.as_bytes(), &case.creds(), case.now());
        let err = expect_err(&case, "no auth", r, "MissingAuthenticationTokenException");
        assert_eq!(err, VerifyError::MissingAuthentication);
    }
}

#[test]
fn presigned_can_be_refused() {
    let case = fixtures().into_iter().find(|c| c.presigned).unwrap();
    let options = VerifyOptions {
        allow_presigned: false,
        ..VerifyOptions::new("lambda")
    };
    let (m, u, h) = (case.method(), case.uri(), case.header_map());
    let req = RequestParts {
        method: &m,
        uri: &u,
        headers: &h,
    };
    let r = verify_with_options(req, b"", &case.creds(), case.now(), &options);
    assert_eq!(r, Err(VerifyError::PresignedNotAccepted));
}

/// Our signer, given the headers botocore signed, produces botocore's
/// Authorization header byte for byte.
#[test]
fn signer_reproduces_botocore() {
    let mut compared = 0;
    for case in fixtures() {
        let h = case.header_map();
        let Some(auth) = h
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned())
        else {
            continue;
        };
        if h.contains_key("date") && !h.contains_key("x-amz-date") {
            continue; // botocore signed with Date; our signer always uses X-Amz-Date.
        }
        let signed = auth
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let mut to_sign = HeaderMap::new();
        for name in signed.split(';').filter(|n| *n != "x-amz-date") {
            for v in h.get_all(name) {
                to_sign.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), v.clone());
            }
        }
        let creds = case.creds();
        let params = SigningParams {
            time: case.now(),
            ..SigningParams::new(&creds, &case.region, "lambda")
        };
        let added = sign(
            &case.method(),
            &case.uri(),
            &to_sign,
            case.body.as_bytes(),
            &params,
        )
        .unwrap();
        assert_eq!(added["authorization"], auth.as_str(), "{}", case.name);
        assert_eq!(added["x-amz-date"], h["x-amz-date"], "{}", case.name);
        compared += 1;
    }
    assert!(compared >= 15);
}

/// What botocore and the AWS CLI send meets the strict rules `mayfly
/// serve` applies: every x-amz-* header signed, the body signed; the one
/// presigned fixture is refused as such.
#[test]
fn botocore_requests_meet_the_strict_rules() {
    let strict = VerifyOptions::strict("lambda");
    for case in fixtures() {
        let (m, u, h) = (case.method(), case.uri(), case.header_map());
        let req = RequestParts {
            method: &m,
            uri: &u,
            headers: &h,
        };
        let r = verify_with_options(
            req,
            case.body.as_bytes(),
            &case.creds(),
            case.now(),
            &strict,
        );
        if case.presigned {
            assert_eq!(r, Err(VerifyError::PresignedNotAccepted), "{}", case.name);
        } else {
            r.unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        }
    }
}
