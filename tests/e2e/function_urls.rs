//! Function URLs, driven by the AWS CLI and called with curl as a user
//! would: AWS's own tutorial flow (create a function, add-permission,
//! create-function-url-config, curl the URL), `AWS_IAM` URLs with signed
//! (`curl --aws-sigv4`) and unsigned requests, CORS preflights, cookies,
//! binary bodies and function errors.

use std::process::Command;

use serde_json::Value;

use crate::linux::{function_zip, program};
use crate::support::fixtures::image_path;
use crate::support::{Options, Server};

/// A response as curl saw it.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// `curl -s -i ARGS... URL`.
fn curl(url: &str, args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--max-time", "60"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl (cargo xtask bootstrap installs it)");
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = out.stdout;
    let split = text
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8_lossy(&text[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: text[split + 4..].to_vec(),
    }
}

fn serve() -> Server {
    Server::start_with(Options {
        urls: true,
        ..Options::default()
    })
}

/// `aws lambda create-function-url-config`: the URL.
fn create_url(s: &Server, function: &str, extra: &[&str]) -> String {
    let mut args = vec!["create-function-url-config", "--function-name", function];
    args.extend_from_slice(extra);
    let made = s.aws(&args).ok();
    made["FunctionUrl"].as_str().unwrap().to_string()
}

/// The tutorial's statement: anyone may call the function's `NONE` URL.
pub(crate) fn allow_public(s: &Server, function: &str) -> Value {
    s.aws(&[
        "add-permission",
        "--function-name",
        function,
        "--statement-id",
        "FunctionURLAllowPublicAccess",
        "--action",
        "lambda:InvokeFunctionUrl",
        "--principal",
        "*",
        "--function-url-auth-type",
        "NONE",
    ])
    .ok()
}

#[test]
fn the_tutorial_flow_opens_a_none_url_only_with_its_policy_statement() {
    let s = serve();
    s.create("url-echo", &image_path("echo.zip"), &[]);
    let url = create_url(&s, "url-echo", &["--auth-type", "NONE"]);
    let port = s.urls_addr.unwrap().port();
    let id = url
        .strip_prefix("http://")
        .and_then(|u| u.split_once(".lambda-url.us-east-1.localhost:"))
        .map(|(id, _)| id.to_string())
        .unwrap_or_else(|| panic!("a URL of Lambda's form: {url}"));
    assert_eq!(
        url,
        format!("http://{id}.lambda-url.us-east-1.localhost:{port}/")
    );
    // No statement yet: nobody may call it.
    let refused = curl(&format!("{url}hello?x=1"), &[]);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["Message"], "Forbidden");

    let added = allow_public(&s, "url-echo");
    let statement: Value = serde_json::from_str(added["Statement"].as_str().unwrap()).unwrap();
    assert_eq!(
        statement["Condition"]["StringEquals"]["lambda:FunctionUrlAuthType"],
        "NONE"
    );
    let answer = curl(&format!("{url}hello?x=1&x=2"), &["-H", "X-Trace: abc"]);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert!(answer.header("x-amzn-requestid").is_some());
    // The echo answers with its event: payload format 2.0.
    let event = answer.json();
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["rawPath"], "/hello");
    assert_eq!(event["rawQueryString"], "x=1&x=2");
    assert_eq!(event["queryStringParameters"]["x"], "1,2");
    assert_eq!(event["headers"]["x-trace"], "abc");
    assert_eq!(event["requestContext"]["http"]["method"], "GET");
    assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(event["requestContext"]["apiId"], id.as_str());
    assert_eq!(
        event["requestContext"]["requestId"].as_str(),
        answer.header("x-amzn-requestid")
    );
    assert!(event["requestContext"]["http"]["userAgent"]
        .as_str()
        .unwrap()
        .starts_with("curl/"));
    // The path form reaches the same URL.
    let by_path = curl(
        &format!("http://127.0.0.1:{port}/lambda-url/{id}/by/path"),
        &[],
    );
    assert_eq!(by_path.status, 200);
    assert_eq!(by_path.json()["rawPath"], "/by/path");

    let policy = s.aws(&["get-policy", "--function-name", "url-echo"]).ok();
    let document: Value = serde_json::from_str(policy["Policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        document["Statement"][0]["Sid"],
        "FunctionURLAllowPublicAccess"
    );
    let got = s
        .aws(&["get-function-url-config", "--function-name", "url-echo"])
        .ok();
    assert_eq!(got["FunctionUrl"], url.as_str());
    assert_eq!(got["AuthType"], "NONE");
    let listed = s
        .aws(&["list-function-url-configs", "--function-name", "url-echo"])
        .ok();
    assert_eq!(listed["FunctionUrlConfigs"][0]["FunctionUrl"], url.as_str());

    // Without the statement it is closed again; with AWS_IAM, unsigned
    // calls are refused; deleted, it is gone.
    s.aws(&[
        "remove-permission",
        "--function-name",
        "url-echo",
        "--statement-id",
        "FunctionURLAllowPublicAccess",
    ])
    .ok();
    assert_eq!(curl(&url, &[]).status, 403);
    allow_public(&s, "url-echo");
    assert_eq!(curl(&url, &[]).status, 200);
    let updated = s
        .aws(&[
            "update-function-url-config",
            "--function-name",
            "url-echo",
            "--auth-type",
            "AWS_IAM",
        ])
        .ok();
    assert_eq!(updated["AuthType"], "AWS_IAM");
    assert_eq!(curl(&url, &[]).status, 403);
    s.aws(&["delete-function-url-config", "--function-name", "url-echo"])
        .ok();
    assert_eq!(curl(&url, &[]).status, 404);
}

#[test]
fn an_aws_iam_url_answers_403_unsigned_and_200_signed() {
    let s = serve();
    s.create("url-iam", &image_path("echo.zip"), &[]);
    let url = create_url(&s, "url-iam", &["--auth-type", "AWS_IAM"]);
    assert_eq!(curl(&url, &[]).status, 403);
    let user = format!("{}:{}", s.access_key_id, s.secret_access_key);
    let signed = curl(
        &format!("{url}signed?a=b"),
        &[
            "--aws-sigv4",
            "aws:amz:us-east-1:lambda",
            "--user",
            &user,
            "-H",
            "content-type: application/json",
            "--data-binary",
            r#"{"sent":true}"#,
        ],
    );
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    let event = signed.json();
    assert_eq!(event["requestContext"]["http"]["method"], "POST");
    assert_eq!(event["body"], r#"{"sent":true}"#);
    assert_eq!(event["isBase64Encoded"], false);
    assert_eq!(
        event["requestContext"]["authorizer"]["iam"]["accessKey"],
        s.access_key_id.as_str()
    );
    // Signed with another secret, or for another service: refused.
    let wrong = format!("{}:{}", s.access_key_id, "x".repeat(40));
    for (sigv4, user) in [
        ("aws:amz:us-east-1:lambda", &wrong),
        ("aws:amz:us-east-1:s3", &user),
    ] {
        let refused = curl(&url, &["--aws-sigv4", sigv4, "--user", user]);
        assert_eq!(refused.status, 403, "{sigv4}");
    }
}

#[test]
fn cors_preflights_are_answered_by_the_url_and_responses_carry_the_config() {
    let s = serve();
    s.create("url-cors", &image_path("echo.zip"), &[]);
    let cors = r#"{"AllowOrigins":["https://app.example.com"],"AllowMethods":["GET","POST"],"AllowHeaders":["content-type"],"ExposeHeaders":["x-amzn-requestid"],"MaxAge":300}"#;
    let url = create_url(&s, "url-cors", &["--auth-type", "NONE", "--cors", cors]);
    allow_public(&s, "url-cors");
    let preflight = |origin: &str, method: &str| {
        curl(
            &url,
            &[
                "-X",
                "OPTIONS",
                "-H",
                &format!("Origin: {origin}"),
                "-H",
                &format!("Access-Control-Request-Method: {method}"),
                "-H",
                "Access-Control-Request-Headers: content-type",
            ],
        )
    };
    let allowed = preflight("https://app.example.com", "POST");
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        allowed.header("access-control-allow-methods"),
        Some("GET,POST")
    );
    assert_eq!(
        allowed.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert_eq!(allowed.header("access-control-max-age"), Some("300"));
    assert!(
        allowed.body.is_empty(),
        "answered by the URL, not the function"
    );
    for (origin, method) in [
        ("https://evil.example.com", "POST"),
        ("https://app.example.com", "DELETE"),
    ] {
        let refused = preflight(origin, method);
        assert_eq!(refused.status, 200);
        assert_eq!(refused.header("access-control-allow-origin"), None);
    }
    // The preflights invoked nothing.
    assert!(s.invocations("url-cors", 10).is_empty());
    let get = curl(&url, &["-H", "Origin: https://app.example.com"]);
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        get.header("access-control-expose-headers"),
        Some("x-amzn-requestid")
    );
    let elsewhere = curl(&url, &["-H", "Origin: https://evil.example.com"]);
    assert_eq!(elsewhere.status, 200);
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);
}

#[test]
fn cookies_binary_bodies_and_function_errors_map_as_lambda_maps_them() {
    let s = serve();
    let zip = function_zip(s.tmp(), &program("runtime_loop"));
    s.create("url-app", &zip, &["--runtime", "provided.al2023"]);
    let url = create_url(&s, "url-app", &["--auth-type", "NONE"]);
    allow_public(&s, "url-app");
    // The function's statusCode, headers, cookies and body.
    let made = curl(&format!("{url}respond/cookies"), &[]);
    assert_eq!(made.status, 201, "{}", String::from_utf8_lossy(&made.body));
    assert_eq!(made.header("content-type"), Some("text/plain"));
    assert_eq!(made.header("x-app"), Some("yes"));
    assert_eq!(made.all("set-cookie"), ["a=1; Path=/", "b=2"]);
    assert_eq!(made.body, b"made");
    // The request's cookies reach the event as a list.
    let echoed = curl(&format!("{url}echo"), &["-H", "Cookie: a=1; b=2"]);
    assert_eq!(echoed.json()["cookies"], serde_json::json!(["a=1", "b=2"]));
    // A binary body goes in as base64 and comes back as the same bytes.
    let bytes: Vec<u8> = (0..=255u8).collect();
    let file = s.tmp().join("binary.bin");
    std::fs::write(&file, &bytes).unwrap();
    let binary = curl(
        &format!("{url}respond/binary"),
        &[
            "-H",
            "content-type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
        ],
    );
    assert_eq!(binary.status, 200);
    assert_eq!(binary.body, bytes);
    // A function that fails is a 502.
    let failed = curl(&format!("{url}fail"), &[]);
    assert_eq!(failed.status, 502);
    assert_eq!(failed.json()["Message"], "Internal Server Error");
}

#[test]
fn bad_url_configurations_and_permissions_get_lambdas_errors() {
    let s = serve();
    s.create("url-bad", &image_path("echo.zip"), &[]);
    let refused = |args: &[&str], code: &str| {
        let cli = s.aws(args);
        assert_ne!(cli.code, 0, "{args:?} succeeded");
        assert!(cli.stderr.contains(code), "{args:?}: {}", cli.stderr);
    };
    refused(
        &[
            "create-function-url-config",
            "--function-name",
            "url-bad",
            "--auth-type",
            "OPEN",
        ],
        "ValidationException",
    );
    refused(
        &[
            "create-function-url-config",
            "--function-name",
            "url-bad",
            "--auth-type",
            "NONE",
            "--cors",
            r#"{"MaxAge":100000}"#,
        ],
        "ValidationException",
    );
    refused(
        &[
            "create-function-url-config",
            "--function-name",
            "nope",
            "--auth-type",
            "NONE",
        ],
        "ResourceNotFoundException",
    );
    create_url(&s, "url-bad", &["--auth-type", "NONE"]);
    refused(
        &[
            "create-function-url-config",
            "--function-name",
            "url-bad",
            "--auth-type",
            "NONE",
        ],
        "ResourceConflictException",
    );
    refused(
        &["get-policy", "--function-name", "url-bad"],
        "ResourceNotFoundException",
    );
    allow_public(&s, "url-bad");
    refused(
        &[
            "add-permission",
            "--function-name",
            "url-bad",
            "--statement-id",
            "FunctionURLAllowPublicAccess",
            "--action",
            "lambda:InvokeFunctionUrl",
            "--principal",
            "*",
        ],
        "ResourceConflictException",
    );
    refused(
        &[
            "add-permission",
            "--function-name",
            "url-bad",
            "--statement-id",
            "x",
            "--action",
            "s3:GetObject",
            "--principal",
            "*",
        ],
        "ValidationException",
    );
    refused(
        &[
            "remove-permission",
            "--function-name",
            "url-bad",
            "--statement-id",
            "nope",
        ],
        "ResourceNotFoundException",
    );
    // An unknown URL id.
    let port = s.urls_addr.unwrap().port();
    let unknown = curl(
        &format!("http://0123456789abcdef0123456789abcdef.lambda-url.us-east-1.localhost:{port}/"),
        &[],
    );
    assert_eq!(unknown.status, 404);
}

#[test]
fn an_aliases_url_runs_the_aliased_version_under_the_aliases_own_policy() {
    let s = serve();
    s.create("url-alias", &image_path("echo.zip"), &[]);
    s.aws(&["publish-version", "--function-name", "url-alias"])
        .ok();
    s.aws(&[
        "create-alias",
        "--function-name",
        "url-alias",
        "--name",
        "live",
        "--function-version",
        "1",
    ])
    .ok();
    let made = s
        .aws(&[
            "create-function-url-config",
            "--function-name",
            "url-alias",
            "--qualifier",
            "live",
            "--auth-type",
            "NONE",
        ])
        .ok();
    assert!(
        made["FunctionArn"]
            .as_str()
            .unwrap()
            .ends_with(":url-alias:live"),
        "{made}"
    );
    let url = made["FunctionUrl"].as_str().unwrap().to_string();
    // The function's own statement does not open its alias's URL.
    allow_public(&s, "url-alias");
    assert_eq!(curl(&url, &[]).status, 403);
    s.aws(&[
        "add-permission",
        "--function-name",
        "url-alias",
        "--qualifier",
        "live",
        "--statement-id",
        "public-live",
        "--action",
        "lambda:InvokeFunctionUrl",
        "--principal",
        "*",
        "--function-url-auth-type",
        "NONE",
    ])
    .ok();
    let answer = curl(&url, &[]);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let records = s.invocations("url-alias", 5);
    assert_eq!(records[0]["version"], "1", "{records:?}");
    // A version cannot have a URL.
    let cli = s.aws(&[
        "create-function-url-config",
        "--function-name",
        "url-alias",
        "--qualifier",
        "1",
        "--auth-type",
        "NONE",
    ]);
    assert_ne!(cli.code, 0);
    assert!(cli.stderr.contains("ValidationException"), "{}", cli.stderr);
}
