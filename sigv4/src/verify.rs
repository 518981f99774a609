//! Verifying signed requests (the `mayfly serve` side).

use std::time::{Duration, SystemTime};

use http::header::{AUTHORIZATION, DATE, HOST};
use http::{HeaderMap, Method, Uri};
use percent_encoding::percent_decode_str;

use crate::canonical::{
    canonical_header_value, canonical_query_string, canonical_uri, credential_scope, signing_key,
    CanonicalRequest, ALGORITHM, UNSIGNED_PAYLOAD,
};
use crate::credentials::CredentialLookup;
use crate::date::{
    format_amz_date, from_unix_seconds, parse_amz_date, parse_http_date, unix_seconds,
};
use crate::error::VerifyError;
use crate::pending::PendingSignature;
use crate::sign::{X_AMZ_CONTENT_SHA256, X_AMZ_DATE};

/// The longest validity AWS allows for a presigned request (7 days).
pub const MAX_PRESIGNED_EXPIRES: Duration = Duration::from_secs(604_800);

/// The parts of a received request the verifier needs, borrowed.
///
/// Build it from hyper/axum's [`http::request::Parts`] or an
/// [`http::Request`] with `From`, or field by field. `uri` must be the
/// request target exactly as received (hyper keeps the path
/// percent-encoded; do not decode or rewrite it before verifying).
/// The `Host` header is used for the `host` signed header; for HTTP/2
/// requests, which carry `:authority` instead, the URI's authority is used.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The request method.
    pub method: &'a Method,
    /// The request target as received.
    pub uri: &'a Uri,
    /// All request headers.
    pub headers: &'a HeaderMap,
}

impl<'a> From<&'a http::request::Parts> for RequestParts<'a> {
    fn from(parts: &'a http::request::Parts) -> Self {
        RequestParts {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
        }
    }
}

impl<'a, B> From<&'a http::Request<B>> for RequestParts<'a> {
    fn from(request: &'a http::Request<B>) -> Self {
        RequestParts {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
        }
    }
}

/// How strict the verifier is. [`VerifyOptions::new`] gives AWS's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The only service the credential scope may name (`lambda`).
    pub service: String,
    /// How far the request time may be from `now`, either way (AWS: 5 min).
    pub max_skew: Duration,
    /// Accept `x-amz-content-sha256: UNSIGNED-PAYLOAD` (then the body is not
    /// covered by the signature; [`VerifiedIdentity::payload_signed`] is false).
    pub allow_unsigned_payload: bool,
    /// Accept presigned query-string authentication (`X-Amz-Signature` in the query).
    pub allow_presigned: bool,
    /// If set, the only regions the credential scope may name.
    pub allowed_regions: Option<Vec<String>>,
    /// Refuse a request that carries an `x-amz-*` header its signature does
    /// not cover, so that nobody can add `X-Amz-Invocation-Type: Event` or
    /// `X-Amz-Log-Type: Tail` to a captured request.
    pub require_signed_amz_headers: bool,
}

impl VerifyOptions {
    /// AWS's rules for `service`: 5 minutes of skew, `UNSIGNED-PAYLOAD` and
    /// presigned requests accepted, any region, unsigned `x-amz-*` headers
    /// tolerated.
    pub fn new(service: impl Into<String>) -> Self {
        VerifyOptions {
            service: service.into(),
            max_skew: Duration::from_secs(300),
            allow_unsigned_payload: true,
            allow_presigned: true,
            allowed_regions: None,
            require_signed_amz_headers: false,
        }
    }

    /// What `mayfly serve` requires: AWS's rules, but the body must be
    /// signed (no `UNSIGNED-PAYLOAD`), no presigned URLs (a leaked URL would
    /// stay valid for up to 7 days) and every `x-amz-*` header signed.
    /// botocore and the AWS CLI meet all three for Lambda.
    pub fn strict(service: impl Into<String>) -> Self {
        VerifyOptions {
            allow_unsigned_payload: false,
            allow_presigned: false,
            require_signed_amz_headers: true,
            ..VerifyOptions::new(service)
        }
    }
}

/// Who signed a request that verified, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The access key id that signed the request.
    pub access_key_id: String,
    /// The region of the credential scope (`us-east-1`, ...).
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// The request time from `X-Amz-Date` or `Date`.
    pub request_time: SystemTime,
    /// The names in `SignedHeaders`, as sent.
    pub signed_headers: Vec<String>,
    /// Whether the body is covered by the signature (false only for
    /// `UNSIGNED-PAYLOAD`).
    pub payload_signed: bool,
    /// Whether the request was presigned (query-string authentication).
    pub presigned: bool,
}

/// What an `Authorization` header or the presigned query parameters say.
struct AuthParams {
    algorithm: String,
    credential: String,
    signed_headers: String,
    signature: String,
    /// `X-Amz-Date` and `X-Amz-Expires` of a presigned request.
    presigned: Option<(String, String)>,
}

fn malformed(msg: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(msg.into())
}

fn parse_authorization(value: &str) -> Result<AuthParams, VerifyError> {
    let value = value.trim();
    let (algorithm, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(VerifyError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    let (mut credential, mut signed_headers, mut sig) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| malformed(format!("'{part}' is not a key=value pair")))?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut sig,
            other => {
                return Err(malformed(format!(
                    "unknown Authorization parameter '{other}'"
                )))
            }
        };
        if slot.replace(val.trim().to_owned()).is_some() {
            return Err(malformed(format!(
                "Authorization parameter '{key}' appears twice"
            )));
        }
    }
    let require = |v: Option<String>, name: &str| {
        v.ok_or_else(|| malformed(format!("Authorization header requires '{name}' parameter.")))
    };
    Ok(AuthParams {
        algorithm: algorithm.to_owned(),
        credential: require(credential, "Credential")?,
        signed_headers: require(signed_headers, "SignedHeaders")?,
        signature: require(sig, "Signature")?,
        presigned: None,
    })
}

fn query_params(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

fn parse_presigned(params: &[(String, String)]) -> Result<AuthParams, VerifyError> {
    let get = |name: &str| -> Result<String, VerifyError> {
        let mut found = params.iter().filter(|(k, _)| k == name);
        let first = found.next().ok_or_else(|| {
            malformed(format!(
                "presigned request requires the '{name}' query parameter"
            ))
        })?;
        if found.next().is_some() {
            return Err(malformed(format!("query parameter '{name}' appears twice")));
        }
        Ok(first.1.clone())
    };
    let algorithm = get("X-Amz-Algorithm")?;
    if algorithm != ALGORITHM {
        return Err(VerifyError::UnsupportedAlgorithm(algorithm));
    }
    Ok(AuthParams {
        algorithm,
        credential: get("X-Amz-Credential")?,
        signed_headers: get("X-Amz-SignedHeaders")?,
        signature: get("X-Amz-Signature")?,
        presigned: Some((get("X-Amz-Date")?, get("X-Amz-Expires")?)),
    })
}

/// The single value of a header, as text.
fn single_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed(format!(
            "the '{name}' header appears more than once"
        )));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| malformed(format!("the '{name}' header is not visible ASCII")))
}

/// Verifies a SigV4-signed request with AWS's rules for `service`
/// ([`VerifyOptions::new`]).
///
/// `body` is the complete request body. `now` is the server's clock. On
/// success returns who signed; on failure a [`VerifyError`] whose
/// [`aws_error_code`](VerifyError::aws_error_code) and `Display` text are
/// what the server answers (HTTP 403).
///
/// What is checked, in order: an `Authorization` header (or, if allowed,
/// presigned query parameters) is present and well formed with algorithm
/// `AWS4-HMAC-SHA256`; the credential scope is
/// `YYYYMMDD/region/service/aws4_request` for this service; `host` and the
/// date header are signed; the scope date is the request's day; the access
/// key id is known; the request time (`X-Amz-Date`, else `Date`) is within
/// the allowed skew of `now`; `x-amz-content-sha256`, if sent, is the body's
/// hash (or `UNSIGNED-PAYLOAD`); and finally the signature, recomputed from
/// the canonical request (path as received, encoded once more; sorted,
/// re-encoded query; signed headers trimmed; body hash) and compared in
/// constant time.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::{HeaderMap, Method, Uri};
/// use mayfly_sigv4::{sign, verify, Credentials, RequestParts, SigningParams, VerifyError};
///
/// let creds = Credentials::new("AKIAEXAMPLE000000000", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
/// let now = SystemTime::now();
/// let uri: Uri = "http://127.0.0.1:9000/2015-03-31/functions/echo/invocations".parse().unwrap();
/// let body = br#"{"hello":"world"}"#;
/// let mut headers = sign(&Method::POST, &uri, &HeaderMap::new(), body, &SigningParams {
///     time: now,
///     ..SigningParams::new(&creds, "us-east-1", "lambda")
/// }).unwrap();
///
/// // What the server receives: origin-form target, Host header.
/// let target: Uri = "/2015-03-31/functions/echo/invocations".parse().unwrap();
/// let req = RequestParts { method: &Method::POST, uri: &target, headers: &headers };
/// let who = verify(req, body, &creds, now, "lambda").unwrap();
/// assert_eq!((who.access_key_id.as_str(), who.region.as_str()), ("AKIAEXAMPLE000000000", "us-east-1"));
///
/// // A changed body fails; so does a clock 6 minutes ahead.
/// let err = verify(req, b"{}", &creds, now, "lambda").unwrap_err();
/// assert_eq!(err.aws_error_code(), "InvalidSignatureException");
/// let err = verify(req, body, &creds, now + Duration::from_secs(360), "lambda").unwrap_err();
/// assert!(err.to_string().starts_with("Signature expired: "));
///
/// headers.remove("authorization");
/// let req = RequestParts { method: &Method::POST, uri: &target, headers: &headers };
/// assert_eq!(verify(req, body, &creds, now, "lambda"), Err(VerifyError::MissingAuthentication));
/// ```
pub fn verify(
    request: RequestParts<'_>,
    body: &[u8],
    credentials: &dyn CredentialLookup,
    now: SystemTime,
    service: &str,
) -> Result<VerifiedIdentity, VerifyError> {
    verify_with_options(
        request,
        body,
        credentials,
        now,
        &VerifyOptions::new(service),
    )
}

/// [`verify`] with explicit [`VerifyOptions`].
pub fn verify_with_options(
    request: RequestParts<'_>,
    body: &[u8],
    credentials: &dyn CredentialLookup,
    now: SystemTime,
    options: &VerifyOptions,
) -> Result<VerifiedIdentity, VerifyError> {
    check_headers(request, credentials, now, options)?.verify_body(body)
}

/// The checks of [`verify_with_options`] that need no body, in its order:
/// authentication parameters, scope, signed headers, dates, key, skew and
/// the form of `x-amz-content-sha256`. When that header gives the body's
/// hash, the signature is checked here too, so a forged request is refused
/// before its body is read; botocore sends no such header for Lambda, and
/// then only the body proves the signature.
pub fn check_headers(
    request: RequestParts<'_>,
    credentials: &dyn CredentialLookup,
    now: SystemTime,
    options: &VerifyOptions,
) -> Result<PendingSignature, VerifyError> {
    let headers = request.headers;
    let query = query_params(request.uri);
    let has_query_auth = query
        .iter()
        .any(|(k, _)| k == "X-Amz-Algorithm" || k == "X-Amz-Signature" || k == "X-Amz-Credential");
    if has_query_auth && !options.allow_presigned {
        return Err(VerifyError::PresignedNotAccepted);
    }
    let auth = match (
        single_header(headers, AUTHORIZATION.as_str())?,
        has_query_auth,
    ) {
        (Some(_), true) => return Err(VerifyError::AmbiguousAuthentication),
        (Some(value), false) => parse_authorization(value)?,
        (None, true) => parse_presigned(&query)?,
        (None, false) => return Err(VerifyError::MissingAuthentication),
    };
    debug_assert_eq!(auth.algorithm, ALGORITHM);

    // Credential scope: AKID/YYYYMMDD/region/service/aws4_request.
    let scope_parts: Vec<&str> = auth.credential.split('/').collect();
    let [access_key_id, scope_date, region, scope_service, terminator] = scope_parts[..] else {
        return Err(malformed(format!(
            "Credential '{}' must have the form <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request",
            auth.credential
        )));
    };
    if access_key_id.is_empty() {
        return Err(malformed("the Credential has an empty access key id"));
    }
    if terminator != "aws4_request" {
        return Err(VerifyError::BadScope(terminator.to_owned()));
    }
    if scope_service != options.service {
        return Err(VerifyError::WrongService {
            expected: options.service.clone(),
            got: scope_service.to_owned(),
        });
    }
    let region_ok = match &options.allowed_regions {
        Some(allowed) => allowed.iter().any(|r| r == region),
        None => !region.is_empty(),
    };
    if !region_ok {
        return Err(VerifyError::WrongRegion(region.to_owned()));
    }

    // Signed headers: host, and the header that carries the date.
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if signed.iter().any(|n| n.is_empty()) {
        return Err(malformed(format!(
            "SignedHeaders '{}' has an empty header name",
            auth.signed_headers
        )));
    }
    if !signed.contains(&"host") {
        return Err(VerifyError::HeaderNotSigned("Host' or ':authority"));
    }
    if options.require_signed_amz_headers {
        let mut unsigned: Vec<&str> = headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("x-amz-") && !signed.contains(name))
            .collect();
        if !unsigned.is_empty() {
            unsigned.sort_unstable();
            unsigned.dedup();
            return Err(VerifyError::HeadersNotSigned(unsigned.join(", ")));
        }
    }
    let (request_time, expires) = match &auth.presigned {
        Some((date, expires)) => {
            let secs =
                parse_amz_date(date).ok_or_else(|| VerifyError::InvalidDate(date.clone()))?;
            let expires: u64 = expires
                .parse()
                .ok()
                .filter(|e| (1..=MAX_PRESIGNED_EXPIRES.as_secs()).contains(e))
                .ok_or_else(|| {
                    malformed(format!(
                        "X-Amz-Expires '{expires}' must be between 1 and 604800 seconds"
                    ))
                })?;
            (secs, Some(expires))
        }
        None => {
            let (value, name, parse): (_, _, fn(&str) -> Option<i64>) =
                if let Some(v) = single_header(headers, X_AMZ_DATE.as_str())? {
                    (v, "x-amz-date", parse_amz_date)
                } else if let Some(v) = single_header(headers, DATE.as_str())? {
                    (v, "date", parse_http_date)
                } else {
                    return Err(VerifyError::MissingDate);
                };
            if !signed.contains(&name) {
                return Err(VerifyError::HeaderNotSigned(if name == "date" {
                    "Date"
                } else {
                    "X-Amz-Date"
                }));
            }
            let secs = parse(value).ok_or_else(|| VerifyError::InvalidDate(value.to_owned()))?;
            (secs, None)
        }
    };
    let amz_date = format_amz_date(request_time);
    if scope_date != &amz_date[..8] {
        return Err(VerifyError::ScopeDateMismatch {
            scope_date: scope_date.to_owned(),
            request_date: amz_date[..8].to_owned(),
            request_time: amz_date,
        });
    }

    let secret = credentials
        .secret_access_key(access_key_id)
        .ok_or_else(|| VerifyError::UnknownAccessKey {
            access_key_id: access_key_id.to_owned(),
        })?;

    // Clock skew.
    let now_secs = unix_seconds(now).ok_or(VerifyError::ClockOutOfRange)?;
    let skew = i64::try_from(options.max_skew.as_secs()).unwrap_or(i64::MAX / 2);
    let minutes = options.max_skew.as_secs() / 60;
    if request_time > now_secs + skew {
        return Err(VerifyError::SignatureNotYetCurrent {
            request_time: amz_date,
            latest: format_amz_date(now_secs + skew),
            now: format_amz_date(now_secs),
            minutes,
        });
    }
    match expires {
        Some(expires) if now_secs > request_time + expires as i64 => {
            return Err(VerifyError::PresignedUrlExpired {
                expired_at: format_amz_date(request_time + expires as i64),
                now: format_amz_date(now_secs),
            });
        }
        None if request_time < now_secs - skew => {
            return Err(VerifyError::SignatureExpired {
                request_time: amz_date,
                earliest: format_amz_date(now_secs - skew),
                now: format_amz_date(now_secs),
                minutes,
            });
        }
        _ => {}
    }

    // Payload hash: its form now, its value once the body is read.
    let (declared_hash, payload_signed) =
        match single_header(headers, X_AMZ_CONTENT_SHA256.as_str())? {
            None => (None, true),
            Some(UNSIGNED_PAYLOAD) if options.allow_unsigned_payload => (None, false),
            Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (Some(v.to_owned()), true)
            }
            Some(v) => return Err(VerifyError::UnsupportedPayloadHash(v.to_owned())),
        };

    // Canonical request, in the SignedHeaders order as sent.
    let mut canonical_headers = Vec::with_capacity(signed.len());
    for &name in &signed {
        let values: Vec<String> = headers
            .get_all(name)
            .iter()
            .map(|v| canonical_header_value(v.as_bytes()))
            .collect();
        let value = if !values.is_empty() {
            values.join(",")
        } else if name == HOST.as_str() {
            match request.uri.authority() {
                Some(authority) => canonical_header_value(authority.as_str().as_bytes()),
                None => return Err(VerifyError::SignedHeaderMissing(name.to_owned())),
            }
        } else {
            return Err(VerifyError::SignedHeaderMissing(name.to_owned()));
        };
        canonical_headers.push((name.to_owned(), value));
    }
    let canonical = CanonicalRequest {
        method: request.method.as_str().to_ascii_uppercase(),
        uri: canonical_uri(request.uri.path()),
        query: canonical_query_string(request.uri.query().unwrap_or(""), auth.presigned.is_some()),
        headers: canonical_headers,
        payload_hash: String::new(),
    };
    let pending = PendingSignature {
        identity: VerifiedIdentity {
            access_key_id: access_key_id.to_owned(),
            region: region.to_owned(),
            service: scope_service.to_owned(),
            request_time: from_unix_seconds(request_time),
            signed_headers: signed.iter().map(|s| (*s).to_owned()).collect(),
            payload_signed,
            presigned: auth.presigned.is_some(),
        },
        canonical,
        declared_hash,
        scope: credential_scope(scope_date, region, scope_service),
        signing_key: signing_key(&secret, scope_date, region, scope_service),
        amz_date,
        signature: auth.signature,
    };
    if let Some(declared) = &pending.declared_hash {
        pending.check_signature(declared.clone())?;
    }
    Ok(pending)
}
