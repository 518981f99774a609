//! Signing requests (the `mayfly` client side).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION, HOST};
use http::{HeaderMap, Method, Uri};

use crate::canonical::{
    canonical_header_value, canonical_query_string, canonical_uri, credential_scope, sha256_hex,
    signature, signing_key, string_to_sign, uri_encode, CanonicalRequest, ALGORITHM,
};
use crate::credentials::Credentials;
use crate::date::{format_amz_date, unix_seconds};
use crate::error::SignError;

/// Headers botocore never signs, because proxies and HTTP clients add, drop
/// or rewrite them. [`sign`] skips them too.
pub const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "expect",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "x-amzn-trace-id",
];

/// `x-amz-date`, the timestamp header.
pub const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
/// `x-amz-content-sha256`, the optional payload-hash header.
pub const X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// Who signs, for which region and service, and when.
#[derive(Debug, Clone)]
pub struct SigningParams<'a> {
    /// The key pair to sign with.
    pub credentials: &'a Credentials,
    /// The region of the credential scope, e.g. `us-east-1`.
    pub region: &'a str,
    /// The service of the credential scope; `lambda` for Mayfly.
    pub service: &'a str,
    /// The signing time (usually `SystemTime::now()`).
    pub time: SystemTime,
    /// Also send the payload hash as `x-amz-content-sha256` (botocore does
    /// not for Lambda; S3 requires it).
    pub content_sha256_header: bool,
}

impl<'a> SigningParams<'a> {
    /// Parameters for signing now, without `x-amz-content-sha256`.
    pub fn new(credentials: &'a Credentials, region: &'a str, service: &'a str) -> Self {
        SigningParams {
            credentials,
            region,
            service,
            time: SystemTime::now(),
            content_sha256_header: false,
        }
    }
}

fn check_scope_part(value: &str, what: &'static str) -> Result<(), SignError> {
    if value.is_empty() || value.contains('/') || value.contains(char::is_whitespace) {
        return Err(SignError::InvalidScopePart(what));
    }
    Ok(())
}

/// The value of the Host header an HTTP client sends for `uri`: the host,
/// with the port unless it is the scheme's default.
fn host_from_uri(uri: &Uri) -> Option<String> {
    let authority = uri.authority()?;
    let host = authority.host().to_ascii_lowercase();
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Some(match authority.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host,
    })
}

/// The signed headers (sorted, lowercase) with their canonical values.
fn headers_to_sign(headers: &HeaderMap, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str();
        if UNSIGNED_HEADERS.contains(&name) || extra.iter().any(|(n, _)| *n == name) {
            continue;
        }
        map.entry(name.to_owned())
            .or_default()
            .push(canonical_header_value(value.as_bytes()));
    }
    for (name, value) in extra {
        map.insert(
            (*name).to_owned(),
            vec![canonical_header_value(value.as_bytes())],
        );
    }
    map.into_iter().map(|(n, v)| (n, v.join(","))).collect()
}

fn header_value(value: &str, name: &'static str) -> Result<HeaderValue, SignError> {
    HeaderValue::from_str(value).map_err(|_| SignError::InvalidHeaderValue(name))
}

/// Signs a request with an `Authorization` header and returns the headers to
/// add to it: `x-amz-date`, `authorization`, `host` when `headers` has none
/// (derived from an absolute `uri`, default port dropped), and
/// `x-amz-content-sha256` when asked for.
///
/// `uri` is the request target **as it will be sent**: path segments already
/// percent-encoded (see [`encode_path_segment`](crate::canonical::encode_path_segment)),
/// query already encoded. Every header in `headers` is signed except the
/// hop-by-hop and client-managed ones in [`UNSIGNED_HEADERS`]; headers the
/// HTTP client adds later (such as `content-length` or `accept-encoding`)
/// are simply not signed, which is what botocore does too. Existing
/// `authorization` and `x-amz-date` headers are replaced by the returned
/// ones. An `x-amz-content-sha256` header in `headers` (such as
/// `UNSIGNED-PAYLOAD`) is used as the payload hash, as botocore does, unless
/// `content_sha256_header` is set, in which case it is replaced by the
/// body's hash.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use http::{HeaderMap, Method, Uri};
/// use mayfly_sigv4::{sign, Credentials, SigningParams};
///
/// let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
/// let params = SigningParams {
///     time: UNIX_EPOCH + Duration::from_secs(1_440_938_160), // 20150830T123600Z
///     ..SigningParams::new(&creds, "us-east-1", "service")
/// };
/// let uri: Uri = "https://example.amazonaws.com/".parse().unwrap();
/// let added = sign(&Method::GET, &uri, &HeaderMap::new(), b"", &params).unwrap();
/// assert_eq!(added["host"], "example.amazonaws.com");
/// assert_eq!(added["x-amz-date"], "20150830T123600Z");
/// // AWS's "get-vanilla" test vector.
/// assert_eq!(
///     added["authorization"],
///     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
///      SignedHeaders=host;x-amz-date, \
///      Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
/// );
/// ```
pub fn sign(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    params: &SigningParams<'_>,
) -> Result<HeaderMap, SignError> {
    let c = params.credentials;
    check_scope_part(&c.access_key_id, "access key id")?;
    check_scope_part(params.region, "region")?;
    check_scope_part(params.service, "service")?;
    let secs = unix_seconds(params.time).ok_or(SignError::TimeOutOfRange)?;
    let amz_date = format_amz_date(secs);
    // As botocore: a caller-supplied x-amz-content-sha256 (for example
    // UNSIGNED-PAYLOAD) is the payload hash, unless we are asked to set it.
    let payload_hash = match headers.get(X_AMZ_CONTENT_SHA256) {
        Some(v) if !params.content_sha256_header => canonical_header_value(v.as_bytes()),
        _ => sha256_hex(body),
    };

    let derived_host = if headers.contains_key(HOST) {
        None
    } else {
        Some(host_from_uri(uri).ok_or(SignError::MissingHost)?)
    };
    let mut extra: Vec<(&str, &str)> = vec![("x-amz-date", &amz_date)];
    if let Some(host) = &derived_host {
        extra.push(("host", host));
    }
    if params.content_sha256_header {
        extra.push(("x-amz-content-sha256", &payload_hash));
    }
    let canonical = CanonicalRequest {
        method: method.as_str().to_ascii_uppercase(),
        uri: canonical_uri(uri.path()),
        query: canonical_query_string(uri.query().unwrap_or(""), false),
        headers: headers_to_sign(headers, &extra),
        payload_hash: payload_hash.clone(),
    };
    let date = &amz_date[..8];
    let scope = credential_scope(date, params.region, params.service);
    let sts = string_to_sign(&amz_date, &scope, &canonical.render());
    let key = signing_key(&c.secret_access_key, date, params.region, params.service);
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={}, Signature={}",
        c.access_key_id,
        canonical.signed_headers(),
        signature(&key, &sts)
    );

    let mut out = HeaderMap::new();
    if let Some(host) = derived_host {
        out.insert(HOST, header_value(&host, "host")?);
    }
    out.insert(X_AMZ_DATE, header_value(&amz_date, "x-amz-date")?);
    if params.content_sha256_header {
        out.insert(
            X_AMZ_CONTENT_SHA256,
            header_value(&payload_hash, "x-amz-content-sha256")?,
        );
    }
    out.insert(
        AUTHORIZATION,
        header_value(&authorization, "authorization")?,
    );
    Ok(out)
}

/// Signs an [`http::Request`] in place: adds (or replaces) the headers
/// [`sign`] returns.
///
/// ```
/// use mayfly_sigv4::{sign_request, Credentials, SigningParams};
/// let creds = Credentials::new("AKIDEXAMPLE", "secret");
/// let mut req = http::Request::post("http://127.0.0.1:9000/2015-03-31/functions/echo/invocations")
///     .body(b"{}".to_vec())
///     .unwrap();
/// sign_request(&mut req, &SigningParams::new(&creds, "us-east-1", "lambda")).unwrap();
/// assert_eq!(req.headers()["host"], "127.0.0.1:9000");
/// assert!(req.headers()["authorization"].to_str().unwrap().starts_with("AWS4-HMAC-SHA256 "));
/// ```
pub fn sign_request<B: AsRef<[u8]>>(
    request: &mut http::Request<B>,
    params: &SigningParams<'_>,
) -> Result<(), SignError> {
    let added = sign(
        request.method(),
        request.uri(),
        request.headers(),
        request.body().as_ref(),
        params,
    )?;
    for (name, value) in &added {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(())
}

/// Presigns a request: returns `uri` with the `X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`
/// and `X-Amz-Signature` query parameters appended, as botocore's
/// `SigV4QueryAuth` does. Only `host` is signed; the payload hash is that of
/// `body` (for non-S3 services botocore signs the body of presigned requests
/// too, usually empty). `uri` must be absolute (it supplies the host).
pub fn presign(
    method: &Method,
    uri: &Uri,
    body: &[u8],
    params: &SigningParams<'_>,
    expires: Duration,
) -> Result<Uri, SignError> {
    let c = params.credentials;
    check_scope_part(&c.access_key_id, "access key id")?;
    check_scope_part(params.region, "region")?;
    check_scope_part(params.service, "service")?;
    let secs = unix_seconds(params.time).ok_or(SignError::TimeOutOfRange)?;
    let amz_date = format_amz_date(secs);
    let date = &amz_date[..8];
    let scope = credential_scope(date, params.region, params.service);
    let host = host_from_uri(uri).ok_or(SignError::MissingHost)?;

    let mut query = uri.query().unwrap_or("").to_owned();
    for (key, value) in [
        ("X-Amz-Algorithm", ALGORITHM.to_owned()),
        ("X-Amz-Credential", format!("{}/{scope}", c.access_key_id)),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", expires.as_secs().to_string()),
        ("X-Amz-SignedHeaders", "host".to_owned()),
    ] {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        query.push_str(&uri_encode(value.as_bytes()));
    }
    let canonical = CanonicalRequest {
        method: method.as_str().to_ascii_uppercase(),
        uri: canonical_uri(uri.path()),
        query: canonical_query_string(&query, true),
        headers: vec![("host".to_owned(), host)],
        payload_hash: sha256_hex(body),
    };
    let sts = string_to_sign(&amz_date, &scope, &canonical.render());
    let key = signing_key(&c.secret_access_key, date, params.region, params.service);
    query.push_str("&X-Amz-Signature=");
    query.push_str(&signature(&key, &sts));

    let path_and_query = format!("{}?{query}", uri.path());
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(
        path_and_query
            .parse()
            .map_err(|_| SignError::InvalidHeaderValue("uri"))?,
    );
    Uri::from_parts(parts).map_err(|_| SignError::InvalidHeaderValue("uri"))
}
