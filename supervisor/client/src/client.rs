//! A client of the Lambda REST API that `mayfly serve` speaks, signing every
//! request with AWS Signature Version 4 as botocore does.
//!
//! [`requests`] builds each operation's request (pure), [`Client::send`]
//! signs and sends it and turns an AWS error response into an [`ErrorResponse`]
//! that prints as the AWS CLI prints it, and the typed methods decode the
//! answers into [`types`].

pub mod requests;
pub mod types;

use std::error::Error as StdError;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use mayfly_sigv4::{sign_request, Credentials, SignError, SigningParams};
use thiserror::Error;

pub use requests::ApiRequest;
pub use types::{
    ConfigurationUpdate, CreateFunctionInput, EnvironmentResponse, FunctionConfiguration,
    GetFunctionOutput, InvocationRecord, InvokeInput, InvokeOutput, ListFunctionsOutput,
};

/// The endpoint when neither `--endpoint` nor `MAYFLY_ENDPOINT` says
/// otherwise (`mayfly serve`'s default listen address).
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:9000";
/// The environment variable naming the endpoint.
pub const ENDPOINT_ENV: &str = "MAYFLY_ENDPOINT";
/// The region of the signing scope.
pub const REGION: &str = "us-east-1";
/// The service of the signing scope.
pub const SERVICE: &str = "lambda";
/// The runtime every Mayfly function is created with.
pub const RUNTIME: &str = "provided.al2023";
/// The (unused but required) execution role.
pub const ROLE: &str = "arn:aws:iam::000000000000:role/mayfly";
/// The handler of a `provided` runtime: the `bootstrap` entry.
pub const HANDLER: &str = "bootstrap";
/// `ListFunctions` page size (the API's maximum).
const PAGE_SIZE: u32 = 50;
/// A guard against a server that never stops paginating.
const MAX_PAGES: usize = 100_000;

/// An error the API answered, as the AWS CLI reports it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("An error occurred ({code}) when calling the {operation} operation: {message}")]
pub struct ErrorResponse {
    /// The operation that failed (`GetFunction`, ...).
    pub operation: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The error code (`ResourceNotFoundException`, ...).
    pub code: String,
    /// The error message.
    pub message: String,
}

impl ErrorResponse {
    /// Whether the function (or version, alias) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.code == "ResourceNotFoundException"
    }
}

/// Why a call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The endpoint is not an `http://host[:port][/prefix]` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
    /// The request could not be signed (a key or region SigV4 cannot carry).
    #[error("cannot sign the {operation} request: {source}")]
    Sign {
        /// The operation.
        operation: &'static str,
        /// Why signing failed.
        source: SignError,
    },
    /// The request could not be sent or the answer not read.
    #[error("could not call {operation} at {url}: {detail}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The URL requested.
        url: String,
        /// What the HTTP client said, with its causes.
        detail: String,
    },
    /// The API answered with an error.
    #[error(transparent)]
    Api(#[from] ErrorResponse),
    /// The API answered success with something this client cannot read.
    #[error("unexpected answer to {operation} (HTTP {status}): {reason}")]
    InvalidResponse {
        /// The operation.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// The API error, if the API answered with one.
    pub fn api(&self) -> Option<&ErrorResponse> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }
}

/// An answer with a success status.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

/// The endpoint from `--endpoint`, else `MAYFLY_ENDPOINT` (`env`), else
/// [`DEFAULT_ENDPOINT`].
pub fn resolve_endpoint(flag: Option<&str>, env: Option<&str>) -> String {
    flag.or(env.filter(|e| !e.is_empty()))
        .unwrap_or(DEFAULT_ENDPOINT)
        .to_owned()
}

/// Checks an endpoint and returns it without a trailing slash.
fn normalize_endpoint(endpoint: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| invalid(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        // Built without TLS: a Mayfly host is reached on a trusted network or
        // through a TLS-terminating proxy the client talks plain HTTP to.
        Some("https") => return Err(invalid("https is not supported; use http://")),
        _ => return Err(invalid("expected http://HOST[:PORT]")),
    }
    if uri.host().unwrap_or_default().is_empty() {
        return Err(invalid("no host"));
    }
    if uri.query().is_some() {
        return Err(invalid("an endpoint cannot have a query"));
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

/// The error in `body`/`headers` of a failed call, read as botocore reads a
/// rest-json error: the code from `X-Amzn-ErrorType` (before any `:`),
/// else the body's `__type` or `code` (after any `#`), else the HTTP
/// status; the message from `message` or `Message`.
pub fn parse_error(
    operation: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
) -> ErrorResponse {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let code = headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(':').next().unwrap_or_default().trim().to_owned())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            field("__type")
                .or_else(|| field("code"))
                .map(|c| c.rsplit('#').next().unwrap_or_default().to_owned())
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| status.to_string());
    let message = field("message")
        .or_else(|| field("Message"))
        .or_else(|| {
            // A proxy's or a crashed server's plain-text answer says more
            // than "Unknown".
            let text = String::from_utf8_lossy(body).trim().to_owned();
            (json.is_null() && !text.is_empty() && text.len() <= 512).then_some(text)
        })
        .unwrap_or_else(|| "Unknown".to_owned());
    ErrorResponse {
        operation,
        status,
        code,
        message,
    }
}

/// Every cause of `error`, joined: reqwest's own message alone ("error
/// sending request") hides the useful part ("Connection refused").
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A signed client of one Mayfly host.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: String,
    credentials: Credentials,
}

impl Client {
    /// A client of `endpoint` (`http://HOST:PORT`, optionally with a path
    /// prefix) signing with `credentials`.
    pub fn new(endpoint: &str, credentials: Credentials) -> Result<Client, ClientError> {
        let endpoint = normalize_endpoint(endpoint)?;
        let http = reqwest::Client::builder()
            // The host is usually local; an HTTP(S)_PROXY meant for the
            // internet must not capture it.
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("mayfly/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Setup)?;
        Ok(Client {
            http,
            endpoint,
            credentials,
        })
    }

    /// The endpoint, without a trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Signs and sends `request`; a non-2xx answer becomes
    /// [`ClientError::Api`].
    pub async fn send(&self, request: &ApiRequest) -> Result<RawResponse, ClientError> {
        let operation = request.operation;
        let url = format!("{}{}", self.endpoint, request.path_and_query);
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(&url);
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let body = match &request.body {
            Some((body, content_type)) => {
                builder = builder.header(http::header::CONTENT_TYPE, *content_type);
                body.clone()
            }
            None => Vec::new(),
        };
        let invalid = |reason: String| ClientError::InvalidEndpoint {
            endpoint: self.endpoint.clone(),
            reason,
        };
        let mut signed = builder.body(body).map_err(|e| invalid(e.to_string()))?;
        let params = SigningParams::new(&self.credentials, REGION, SERVICE);
        sign_request(&mut signed, &params)
            .map_err(|source| ClientError::Sign { operation, source })?;
        let transport = |e: reqwest::Error| ClientError::Transport {
            operation,
            url: url.clone(),
            detail: error_chain(&e),
        };
        let outgoing = reqwest::Request::try_from(signed).map_err(transport)?;
        let response = self.http.execute(outgoing).await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        if !status.is_success() {
            return Err(parse_error(operation, status.as_u16(), &headers, &body).into());
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        request: &ApiRequest,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        serde_json::from_slice(&response.body).map_err(|e| ClientError::InvalidResponse {
            operation: request.operation,
            status: response.status.as_u16(),
            reason: format!("the body is not the expected JSON: {e}"),
        })
    }

    /// `GetFunction`.
    pub async fn get_function(&self, name: &str) -> Result<GetFunctionOutput, ClientError> {
        self.send_json(&requests::get_function(name)).await
    }

    /// `CreateFunction`.
    pub async fn create_function(
        &self,
        input: &CreateFunctionInput,
    ) -> Result<FunctionConfiguration, ClientError> {
        self.send_json(&requests::create_function(input)).await
    }

    /// `UpdateFunctionCode` with a zip package.
    pub async fn update_function_code(
        &self,
        name: &str,
        zip: &[u8],
    ) -> Result<FunctionConfiguration, ClientError> {
        self.send_json(&requests::update_function_code(name, zip))
            .await
    }

    /// `UpdateFunctionConfiguration`.
    pub async fn update_function_configuration(
        &self,
        name: &str,
        update: &ConfigurationUpdate,
    ) -> Result<FunctionConfiguration, ClientError> {
        self.send_json(&requests::update_function_configuration(name, update))
            .await
    }

    /// One page of `ListFunctions`.
    pub async fn list_functions_page(
        &self,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListFunctionsOutput, ClientError> {
        self.send_json(&requests::list_functions(marker, max_items))
            .await
    }

    /// Every function, following `NextMarker` through all pages.
    pub async fn list_functions(&self) -> Result<Vec<FunctionConfiguration>, ClientError> {
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .list_functions_page(marker.as_deref(), Some(PAGE_SIZE))
                .await?;
            all.extend(page.functions);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) if Some(&next) == marker.as_ref() => {
                    return Err(ClientError::InvalidResponse {
                        operation: "ListFunctions",
                        status: 200,
                        reason: format!("NextMarker {next:?} repeats the marker just sent"),
                    })
                }
                Some(next) => marker = Some(next),
                None => return Ok(all),
            }
        }
        Err(ClientError::InvalidResponse {
            operation: "ListFunctions",
            status: 200,
            reason: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// `DeleteFunction`.
    pub async fn delete_function(&self, name: &str) -> Result<(), ClientError> {
        self.send(&requests::delete_function(name)).await.map(drop)
    }

    /// `Invoke`, synchronously (`RequestResponse`).
    pub async fn invoke(&self, input: &InvokeInput) -> Result<InvokeOutput, ClientError> {
        let response = self.send(&requests::invoke(input)).await?;
        let header = |name: &str| {
            response
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let log_result = match header("x-amz-log-result") {
            Some(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| ClientError::InvalidResponse {
                        operation: "Invoke",
                        status: response.status.as_u16(),
                        reason: format!("X-Amz-Log-Result is not base64: {e}"),
                    })?;
                Some(String::from_utf8_lossy(&bytes).into_owned())
            }
            None => None,
        };
        Ok(InvokeOutput {
            status_code: response.status.as_u16(),
            function_error: header("x-amz-function-error"),
            log_result,
            executed_version: header("x-amz-executed-version"),
            payload: response.body,
        })
    }

    /// Mayfly's recent invocations of a function, newest first.
    pub async fn list_invocations(
        &self,
        name: &str,
        limit: Option<u32>,
    ) -> Result<Vec<InvocationRecord>, ClientError> {
        let out: types::ListInvocationsOutput = self
            .send_json(&requests::list_invocations(name, limit))
            .await?;
        Ok(out.invocations)
    }

    /// The URL a store pushes the S3 event notifications of `name` (at
    /// `qualifier`) to.
    pub async fn notification_endpoint(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<String, ClientError> {
        let out: types::NotificationEndpointOutput = self
            .send_json(&requests::notification_endpoint(name, qualifier))
            .await?;
        Ok(out.endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn errors_print_like_the_aws_cli() {
        let error = parse_error(
            "GetFunction",
            404,
            &headers(&[("x-amzn-errortype", "ResourceNotFoundException")]),
            br#"{"Type":"User","message":"Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"}"#,
        );
        assert!(error.is_not_found());
        assert_eq!(
            error.to_string(),
            "An error occurred (ResourceNotFoundException) when calling the GetFunction operation: \
             Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope"
        );
    }

    #[test]
    fn error_codes_and_messages_from_anywhere_botocore_looks() {
        // The header may carry a suffix after ':' (AWS adds the docs URL).
        let e = parse_error(
            "Invoke",
            429,
            &headers(&[("x-amzn-errortype", "TooManyRequestsException:http://internal")]),
            br#"{"Message":"Rate exceeded","Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("TooManyRequestsException", "Rate exceeded")
        );
        let e = parse_error(
            "ListFunctions",
            400,
            &HeaderMap::new(),
            br#"{"__type":"com.amazon#ValidationException","message":"bad"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("ValidationException", "bad")
        );
        let e = parse_error("Invoke", 502, &HeaderMap::new(), b"Bad Gateway\n");
        assert_eq!(
            (e.code.as_str(), e.message.as_str()),
            ("502", "Bad Gateway")
        );
        let e = parse_error("Invoke", 500, &HeaderMap::new(), b"");
        assert_eq!((e.code.as_str(), e.message.as_str()), ("500", "Unknown"));
        let e = parse_error(
            "Invoke",
            403,
            &headers(&[("x-amzn-errortype", "InvalidSignatureException")]),
            b"{}",
        );
        assert_eq!(e.message, "Unknown");
    }

    #[test]
    fn endpoints() {
        assert_eq!(resolve_endpoint(None, None), DEFAULT_ENDPOINT);
        assert_eq!(resolve_endpoint(None, Some("")), DEFAULT_ENDPOINT);
        assert_eq!(resolve_endpoint(None, Some("http://h:1")), "http://h:1");
        assert_eq!(
            resolve_endpoint(Some("http://f:2"), Some("http://h:1")),
            "http://f:2"
        );
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:9000/").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            normalize_endpoint("http://h/prefix/").unwrap(),
            "http://h/prefix"
        );
        for bad in [
            "127.0.0.1:9000",
            "https://h",
            "ftp://h",
            "http://h/?q=1",
            "not a url",
        ] {
            assert!(
                matches!(
                    normalize_endpoint(bad),
                    Err(ClientError::InvalidEndpoint { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn configurations_decode_with_missing_fields() {
        let config: FunctionConfiguration = serde_json::from_str(
            r#"{"FunctionName":"echo","CodeSize":12,"CodeSha256":"abc=","MemorySize":128,"Timeout":3,
                "Version":"$LATEST","Environment":{"Variables":{"A":"1"}},"Unknown":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!(config.function_name, "echo");
        assert_eq!(config.code_size, 12);
        assert_eq!(config.environment.unwrap().variables["A"], "1");
        let page: ListFunctionsOutput = serde_json::from_str(r#"{"Functions":[]}"#).unwrap();
        assert_eq!(page.next_marker, None);
    }
}
