//! The building blocks of a signature: AWS URI encoding, the canonical
//! request, the string to sign and the derived signing key.
//!
//! [`sign`](crate::sign()) and [`verify`](crate::verify()) are built from these
//! functions, so signer and verifier cannot disagree. They are public for
//! clients that build request paths the way botocore does
//! ([`encode_path_segment`]) and for debugging a signature mismatch.

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// The signing algorithm this crate implements, as it appears in the
/// `Authorization` header and in the string to sign.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The payload hash a client sends in `x-amz-content-sha256` when it chose
/// not to sign the body.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The hex SHA-256 of an empty body.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Everything except the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~`.
const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As [`URI_ENCODE`], but keeps `/` (for whole paths).
const URI_ENCODE_PATH: &AsciiSet = &URI_ENCODE.remove(b'/');

/// AWS URI encoding: keeps the RFC 3986 unreserved characters and writes every
/// other byte as `%XX` with uppercase hex (so `/` becomes `%2F` and a space
/// `%20`, never `+`).
///
/// ```
/// use mayfly_sigv4::canonical::uri_encode;
/// assert_eq!(uri_encode(b"a b/c~d$"), "a%20b%2Fc~d%24");
/// ```
pub fn uri_encode(bytes: &[u8]) -> String {
    percent_encode(bytes, URI_ENCODE).to_string()
}

/// Encodes one path segment as botocore does when it fills a Lambda URI
/// template such as `/2015-03-31/functions/{FunctionName}/invocations`:
/// everything but the unreserved characters is escaped, `/` and `:` included.
/// Use it to build request paths for the `mayfly` client.
///
/// ```
/// use mayfly_sigv4::canonical::encode_path_segment;
/// assert_eq!(
///     encode_path_segment("arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"),
///     "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Af%3A%24LATEST"
/// );
/// ```
pub fn encode_path_segment(segment: &str) -> String {
    uri_encode(segment.as_bytes())
}

/// Removes `.` and `..` segments (RFC 3986 §5.2.4) and empty segments
/// (consecutive slashes), keeping a leading and a trailing slash, exactly like
/// botocore's `remove_dot_segments`.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let first = if path.starts_with('/') { "/" } else { "" };
    let last = if path.ends_with('/') && !out.is_empty() {
        "/"
    } else {
        ""
    };
    format!("{first}{}{last}", out.join("/"))
}

/// The canonical URI of a request path, given the path **as it appears on the
/// wire** (still percent-encoded, as [`http::Uri::path`] returns it).
///
/// For every service except S3, SigV4 encodes the path a second time: the
/// path is normalised (dot segments and repeated slashes removed) and then
/// every byte other than the unreserved characters and `/` is escaped again,
/// so the `%` of an escape becomes `%25`. This is what botocore does for
/// Lambda and what AWS expects.
///
/// ```
/// use mayfly_sigv4::canonical::canonical_uri;
/// assert_eq!(canonical_uri(""), "/");
/// assert_eq!(canonical_uri("/2015-03-31/functions"), "/2015-03-31/functions");
/// assert_eq!(
///     canonical_uri("/2015-03-31/functions/my%20fn%3A%24LATEST/invocations"),
///     "/2015-03-31/functions/my%2520fn%253A%2524LATEST/invocations"
/// );
/// assert_eq!(canonical_uri("/a/./b/../c//d/"), "/a/c/d/");
/// ```
pub fn canonical_uri(raw_path: &str) -> String {
    percent_encode(normalize_path(raw_path).as_bytes(), URI_ENCODE_PATH).to_string()
}

/// The canonical query string of a raw query (without the `?`).
///
/// Each `key=value` pair is percent-decoded and re-encoded with
/// [`uri_encode`] (so `%2f` and `%2F` agree, and a literal `+` is `%2B`, not
/// a space); a key without `=` gets an empty value (`key=`); empty pairs are
/// dropped; pairs are sorted by encoded key, then encoded value. With
/// `for_presigned` the `X-Amz-Signature` parameter is left out, as the
/// presigned-URL form requires.
///
/// ```
/// use mayfly_sigv4::canonical::canonical_query_string;
/// assert_eq!(canonical_query_string("MaxItems=2&Marker=x", false), "Marker=x&MaxItems=2");
/// assert_eq!(canonical_query_string("b&a=2&a=1", false), "a=1&a=2&b=");
/// assert_eq!(canonical_query_string("Qualifier=$LATEST", false), "Qualifier=%24LATEST");
/// assert_eq!(canonical_query_string("k=a%2fb", false), "k=a%2Fb");
/// ```
pub fn canonical_query_string(raw_query: &str, for_presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key: Vec<u8> = percent_decode(key.as_bytes()).collect();
            let value: Vec<u8> = percent_decode(value.as_bytes()).collect();
            (uri_encode(&key), uri_encode(&value))
        })
        .filter(|(key, _)| !(for_presigned && key == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw_query.len() + 8);
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// The canonical form of one header value: leading and trailing whitespace
/// removed and every run of inner whitespace collapsed to one space (the
/// SigV4 "Trimall"). Bytes that are not UTF-8 are replaced by U+FFFD.
///
/// ```
/// use mayfly_sigv4::canonical::canonical_header_value;
/// assert_eq!(canonical_header_value(b"  a   b \t c  "), "a b c");
/// ```
pub fn canonical_header_value(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .split(|c: char| c.is_ascii_whitespace())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The lowercase hex SHA-256 of `data`.
///
/// ```
/// use mayfly_sigv4::canonical::{sha256_hex, EMPTY_PAYLOAD_SHA256};
/// assert_eq!(sha256_hex(b""), EMPTY_PAYLOAD_SHA256);
/// ```
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date),
/// region), service), "aws4_request")`, where `date` is `YYYYMMDD`.
///
/// ```
/// // AWS's documented example of a derived signing key.
/// use mayfly_sigv4::canonical::signing_key;
/// let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
/// assert_eq!(
///     hex::encode(key),
///     "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
/// );
/// ```
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(
        format!("AWS4{secret_access_key}").as_bytes(),
        date.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The credential scope `YYYYMMDD/region/service/aws4_request`.
pub fn credential_scope(date: &str, region: &str, service: &str) -> String {
    format!("{date}/{region}/{service}/aws4_request")
}

/// The string to sign: the algorithm, the `YYYYMMDDTHHMMSSZ` timestamp, the
/// credential scope and the hex SHA-256 of the canonical request, one a line.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The lowercase hex signature of a string to sign under a signing key.
pub fn signature(signing_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(signing_key, string_to_sign.as_bytes()))
}

/// The parts of a canonical request, joined by [`CanonicalRequest::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalRequest {
    /// The HTTP method, uppercase (`GET`).
    pub method: String,
    /// The canonical URI, see [`canonical_uri`].
    pub uri: String,
    /// The canonical query string, see [`canonical_query_string`].
    pub query: String,
    /// Lowercase header names with their canonical values, in signed order.
    pub headers: Vec<(String, String)>,
    /// The hex SHA-256 of the body or the `x-amz-content-sha256` value.
    pub payload_hash: String,
}

impl CanonicalRequest {
    /// The `SignedHeaders` list: the header names joined by `;`.
    pub fn signed_headers(&self) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.join(";")
    }

    /// The canonical request text that is hashed into the string to sign.
    ///
    /// ```
    /// use mayfly_sigv4::canonical::CanonicalRequest;
    /// let cr = CanonicalRequest {
    ///     method: "GET".into(),
    ///     uri: "/".into(),
    ///     query: String::new(),
    ///     headers: vec![
    ///         ("host".into(), "example.amazonaws.com".into()),
    ///         ("x-amz-date".into(), "20150830T123600Z".into()),
    ///     ],
    ///     payload_hash: mayfly_sigv4::canonical::EMPTY_PAYLOAD_SHA256.into(),
    /// };
    /// assert_eq!(
    ///     cr.render(),
    ///     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
    ///      host;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    /// );
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("{}\n{}\n{}\n", self.method, self.uri, self.query);
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push(':');
            out.push_str(value);
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.signed_headers());
        out.push('\n');
        out.push_str(&self.payload_hash);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths_like_botocore() {
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("//"), "/");
        assert_eq!(normalize_path("/a/b/"), "/a/b/");
        assert_eq!(normalize_path("/../a"), "/a");
        assert_eq!(normalize_path("/a/.."), "/");
        assert_eq!(normalize_path("/a/%2E%2E/b"), "/a/%2E%2E/b");
    }

    #[test]
    fn encodes_utf8_and_reserved_bytes() {
        assert_eq!(uri_encode("é+=&".as_bytes()), "%C3%A9%2B%3D%26");
        assert_eq!(canonical_uri("/ü"), "/%C3%BC");
        assert_eq!(
            canonical_query_string("a=b+c&a=b%20c", false),
            "a=b%20c&a=b%2Bc"
        );
        assert_eq!(canonical_query_string("&&", false), "");
        assert_eq!(
            canonical_query_string("X-Amz-Signature=ab&X-Amz-Date=1", true),
            "X-Amz-Date=1"
        );
    }

    #[test]
    fn sorts_by_encoded_key_then_value() {
        // Sorting is bytewise on the encoded form: '%' (0x25) < 'A' (0x41)
        // and uppercase before lowercase.
        assert_eq!(
            canonical_query_string("b=1&B=2&%21=3&a=2&a=10", false),
            "%21=3&B=2&a=10&a=2&b=1"
        );
    }
}
