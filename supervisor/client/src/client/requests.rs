//! Building the client's requests: method, path, query, headers and body,
//! exactly as botocore would send them for the same operation. Pure, so the
//! wire format is tested without a server.

use base64::Engine as _;
use http::Method;
use mayfly_sigv4::canonical::{encode_path_segment, uri_encode};
use serde_json::{json, Map, Value};

use super::types::{ConfigurationUpdate, CreateFunctionInput, InvokeInput};
use super::{HANDLER, ROLE, RUNTIME};

/// The Lambda API version prefix of every management and invoke path.
const LAMBDA: &str = "/2015-03-31/functions";
/// The prefix of Mayfly's own calls.
const MAYFLY: &str = "/mayfly/2025-01-01/functions";
/// The content type botocore sends with a rest-json body.
const JSON: &str = "application/json";

/// One API request, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// The operation's name, as the AWS CLI names it in errors
    /// (`GetFunction`, ...).
    pub operation: &'static str,
    /// The HTTP method.
    pub method: Method,
    /// The path, each parameter percent-encoded as botocore does, and the
    /// query (already encoded), if any.
    pub path_and_query: String,
    /// Extra headers to send and sign (`x-amz-invocation-type`, ...).
    pub headers: Vec<(&'static str, String)>,
    /// The body and its content type, if there is one.
    pub body: Option<(Vec<u8>, &'static str)>,
}

impl ApiRequest {
    fn new(operation: &'static str, method: Method, path_and_query: String) -> Self {
        ApiRequest {
            operation,
            method,
            path_and_query,
            headers: Vec::new(),
            body: None,
        }
    }

    fn json(mut self, body: &Value) -> Self {
        self.body = Some((body.to_string().into_bytes(), JSON));
        self
    }
}

/// `/2015-03-31/functions/{name}` with the name fully escaped (`:` → `%3A`,
/// `$` → `%24`), so that ARNs and qualified names survive the trip.
pub fn function_path(name: &str) -> String {
    format!("{LAMBDA}/{}", encode_path_segment(name))
}

/// `?key=value&...` for the pairs whose value is present, AWS-encoded.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| {
            let value = value.as_ref()?;
            Some(format!("{key}={}", uri_encode(value.as_bytes())))
        })
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

fn environment(vars: &[(String, String)]) -> Value {
    let vars: Map<String, Value> = vars
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({ "Variables": vars })
}

fn zip_file(zip: &[u8]) -> Value {
    Value::String(base64::engine::general_purpose::STANDARD.encode(zip))
}

/// `GetFunction`: `GET /2015-03-31/functions/{name}`.
pub fn get_function(name: &str) -> ApiRequest {
    ApiRequest::new("GetFunction", Method::GET, function_path(name))
}

/// `CreateFunction`: `POST /2015-03-31/functions` with the package inline.
pub fn create_function(input: &CreateFunctionInput) -> ApiRequest {
    let mut body = json!({
        "FunctionName": input.function_name,
        "Runtime": RUNTIME,
        "Role": ROLE,
        "Handler": HANDLER,
        "Code": { "ZipFile": zip_file(&input.zip_file) },
    });
    if let Some(memory) = input.memory_size {
        body["MemorySize"] = memory.into();
    }
    if let Some(timeout) = input.timeout {
        body["Timeout"] = timeout.into();
    }
    if let Some(vars) = &input.environment {
        body["Environment"] = environment(vars);
    }
    ApiRequest::new("CreateFunction", Method::POST, LAMBDA.to_owned()).json(&body)
}

/// `UpdateFunctionCode`: `PUT /2015-03-31/functions/{name}/code`.
pub fn update_function_code(name: &str, zip: &[u8]) -> ApiRequest {
    let body = json!({ "ZipFile": zip_file(zip) });
    ApiRequest::new(
        "UpdateFunctionCode",
        Method::PUT,
        format!("{}/code", function_path(name)),
    )
    .json(&body)
}

/// `UpdateFunctionConfiguration`: `PUT /2015-03-31/functions/{name}/configuration`
/// with only the settings that change.
pub fn update_function_configuration(name: &str, update: &ConfigurationUpdate) -> ApiRequest {
    let mut body = json!({});
    if let Some(memory) = update.memory_size {
        body["MemorySize"] = memory.into();
    }
    if let Some(timeout) = update.timeout {
        body["Timeout"] = timeout.into();
    }
    if let Some(vars) = &update.environment {
        body["Environment"] = environment(vars);
    }
    ApiRequest::new(
        "UpdateFunctionConfiguration",
        Method::PUT,
        format!("{}/configuration", function_path(name)),
    )
    .json(&body)
}

/// `ListFunctions`: `GET /2015-03-31/functions?Marker=&MaxItems=`.
pub fn list_functions(marker: Option<&str>, max_items: Option<u32>) -> ApiRequest {
    let q = query(&[
        ("Marker", marker.map(str::to_owned)),
        ("MaxItems", max_items.map(|n| n.to_string())),
    ]);
    ApiRequest::new("ListFunctions", Method::GET, format!("{LAMBDA}{q}"))
}

/// `DeleteFunction`: `DELETE /2015-03-31/functions/{name}`.
pub fn delete_function(name: &str) -> ApiRequest {
    ApiRequest::new("DeleteFunction", Method::DELETE, function_path(name))
}

/// `Invoke` (`RequestResponse`): `POST /2015-03-31/functions/{name}/invocations`.
pub fn invoke(input: &InvokeInput) -> ApiRequest {
    let q = query(&[("Qualifier", input.qualifier.clone())]);
    let mut request = ApiRequest::new(
        "Invoke",
        Method::POST,
        format!("{}/invocations{q}", function_path(&input.function_name)),
    );
    request
        .headers
        .push(("x-amz-invocation-type", "RequestResponse".to_owned()));
    if input.tail {
        request.headers.push(("x-amz-log-type", "Tail".to_owned()));
    }
    request.body = Some((input.payload.clone(), JSON));
    request
}

/// Mayfly's recent invocations of a function:
/// `GET /mayfly/2025-01-01/functions/{name}/invocations?Limit=N`.
pub fn list_invocations(name: &str, limit: Option<u32>) -> ApiRequest {
    let q = query(&[("Limit", limit.map(|n| n.to_string()))]);
    ApiRequest::new(
        "ListInvocations",
        Method::GET,
        format!("{MAYFLY}/{}/invocations{q}", encode_path_segment(name)),
    )
}

/// Where a store pushes a function's S3 event notifications:
/// `GET /mayfly/2025-01-01/functions/{name}/notification-endpoint`.
pub fn notification_endpoint(name: &str, qualifier: Option<&str>) -> ApiRequest {
    let q = query(&[("Qualifier", qualifier.map(str::to_string))]);
    ApiRequest::new(
        "GetNotificationEndpoint",
        Method::GET,
        format!(
            "{MAYFLY}/{}/notification-endpoint{q}",
            encode_path_segment(name)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(request: &ApiRequest) -> Value {
        let (body, content_type) = request.body.as_ref().unwrap();
        assert_eq!(*content_type, "application/json");
        serde_json::from_slice(body).unwrap()
    }

    #[test]
    fn paths_escape_names_as_botocore_does() {
        assert_eq!(
            get_function("echo").path_and_query,
            "/2015-03-31/functions/echo"
        );
        assert_eq!(
            get_function("arn:aws:lambda:us-east-1:000000000000:function:echo:$LATEST")
                .path_and_query,
            "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho%3A%24LATEST"
        );
        assert_eq!(
            delete_function("a b/c").path_and_query,
            "/2015-03-31/functions/a%20b%2Fc"
        );
        assert_eq!(delete_function("f").method, Method::DELETE);
        assert_eq!(
            list_invocations("f:1", Some(5)).path_and_query,
            "/mayfly/2025-01-01/functions/f%3A1/invocations?Limit=5"
        );
        assert_eq!(
            list_invocations("f", None).path_and_query,
            "/mayfly/2025-01-01/functions/f/invocations"
        );
    }

    #[test]
    fn create_function_body() {
        let request = create_function(&CreateFunctionInput {
            function_name: "echo".into(),
            zip_file: b"PK\x03\x04zip".to_vec(),
            memory_size: Some(256),
            timeout: None,
            environment: Some(vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]),
        });
        assert_eq!(
            (request.method.clone(), request.path_and_query.as_str()),
            (Method::POST, "/2015-03-31/functions")
        );
        assert_eq!(request.operation, "CreateFunction");
        assert_eq!(
            body_json(&request),
            json!({
                "FunctionName": "echo",
                "Runtime": "provided.al2023",
                "Role": "arn:aws:iam::000000000000:role/mayfly",
                "Handler": "bootstrap",
                "Code": { "ZipFile": "UEsDBHppcA==" },
                "MemorySize": 256,
                "Environment": { "Variables": { "A": "1", "B": "x=y" } },
            })
        );
    }

    #[test]
    fn update_bodies_carry_only_what_changes() {
        let request = update_function_code("echo", b"zip");
        assert_eq!(request.path_and_query, "/2015-03-31/functions/echo/code");
        assert_eq!(request.method, Method::PUT);
        assert_eq!(body_json(&request), json!({ "ZipFile": "emlw" }));
        let request = update_function_configuration(
            "echo",
            &ConfigurationUpdate {
                timeout: Some(10),
                ..Default::default()
            },
        );
        assert_eq!(
            request.path_and_query,
            "/2015-03-31/functions/echo/configuration"
        );
        assert_eq!(body_json(&request), json!({ "Timeout": 10 }));
        let request = update_function_configuration(
            "echo",
            &ConfigurationUpdate {
                memory_size: Some(512),
                environment: Some(vec![]),
                ..Default::default()
            },
        );
        assert_eq!(
            body_json(&request),
            json!({ "MemorySize": 512, "Environment": { "Variables": {} } })
        );
    }

    #[test]
    fn list_functions_query() {
        assert_eq!(
            list_functions(None, None).path_and_query,
            "/2015-03-31/functions"
        );
        assert_eq!(
            list_functions(Some("a b+c/="), Some(50)).path_and_query,
            "/2015-03-31/functions?Marker=a%20b%2Bc%2F%3D&MaxItems=50"
        );
    }

    #[test]
    fn invoke_headers_and_qualifier() {
        let mut input = InvokeInput {
            function_name: "echo".into(),
            qualifier: None,
            payload: br#"{"a":1}"#.to_vec(),
            tail: false,
        };
        let request = invoke(&input);
        assert_eq!(
            request.path_and_query,
            "/2015-03-31/functions/echo/invocations"
        );
        assert_eq!(
            request.headers,
            vec![("x-amz-invocation-type", "RequestResponse".to_owned())]
        );
        assert_eq!(request.body.as_ref().unwrap().0, br#"{"a":1}"#);
        input.tail = true;
        input.qualifier = Some("$LATEST".into());
        let request = invoke(&input);
        assert_eq!(
            request.path_and_query,
            "/2015-03-31/functions/echo/invocations?Qualifier=%24LATEST"
        );
        assert!(request
            .headers
            .contains(&("x-amz-log-type", "Tail".to_owned())));
    }
}
