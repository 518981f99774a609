//! Functions through the AWS CLI: create, get, list (whole and in pages),
//! update the code and the configuration, delete.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::support::aws::{function_arn, function_names};
use crate::support::fixtures::code_sha256;
use crate::support::server::ROLE;
use crate::support::{image_path, payload_json, Server};

#[test]
fn cli_creates_lists_updates_and_deletes_functions() {
    let s = Server::start();
    let echo = image_path("echo.zip");
    let hello = image_path("hello.zip");
    let echo_bytes = std::fs::read(&echo).unwrap();
    let hello_bytes = std::fs::read(&hello).unwrap();

    // Create: the whole FunctionConfiguration, with Lambda's defaults.
    let c = s.create("crud-a", &echo, &[]);
    assert_eq!(c["FunctionName"], "crud-a", "{c}");
    assert_eq!(c["FunctionArn"], function_arn("crud-a"), "{c}");
    assert_eq!(c["Runtime"], "provided.al2023", "{c}");
    assert_eq!(c["Handler"], "bootstrap", "{c}");
    assert_eq!(c["Role"], ROLE, "{c}");
    assert_eq!(c["MemorySize"], 128, "{c}");
    assert_eq!(c["Timeout"], 3, "{c}");
    assert_eq!(c["CodeSha256"], code_sha256(&echo_bytes), "{c}");
    assert_eq!(c["CodeSize"], echo_bytes.len(), "{c}");
    assert_eq!(c["Version"], "$LATEST", "{c}");
    assert_eq!(c["State"], "Active", "{c}");
    assert!(
        c["RevisionId"].as_str().is_some_and(|r| !r.is_empty()),
        "{c}"
    );
    assert!(
        c["LastModified"].as_str().is_some_and(|r| !r.is_empty()),
        "{c}"
    );

    // Creating it again is a conflict, and changes nothing.
    s.create_raw("crud-a", &hello, &[])
        .fails_with("ResourceConflictException");

    // Get: Configuration and Code.
    let g = s.aws(&["get-function", "--function-name", "crud-a"]).ok();
    assert_eq!(g["Configuration"]["FunctionName"], "crud-a", "{g}");
    assert_eq!(
        g["Configuration"]["CodeSha256"],
        code_sha256(&echo_bytes),
        "{g}"
    );
    assert!(g["Code"].is_object(), "GetFunction has a Code object: {g}");
    let gc = s
        .aws(&["get-function-configuration", "--function-name", "crud-a"])
        .ok();
    assert_eq!(gc["FunctionArn"], function_arn("crud-a"), "{gc}");
    assert_eq!(gc["RevisionId"], c["RevisionId"], "{gc}");
    // By ARN too.
    let by_arn = s
        .aws(&[
            "get-function-configuration",
            "--function-name",
            &function_arn("crud-a"),
        ])
        .ok();
    assert_eq!(by_arn["FunctionName"], "crud-a", "{by_arn}");

    // Five functions in all, listed whole and in pages.
    for n in ["crud-b", "crud-c", "crud-d", "crud-e"] {
        s.create(n, &echo, &[]);
    }
    let expected: BTreeSet<String> = ["crud-a", "crud-b", "crud-c", "crud-d", "crud-e"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let all = s.aws(&["list-functions"]).ok();
    assert_eq!(
        function_names(&all).into_iter().collect::<BTreeSet<_>>(),
        expected,
        "{all}"
    );

    // Server-side pages of 2 (MaxItems=2, the CLI follows NextMarker).
    let paged = s.aws(&["list-functions", "--page-size", "2"]).ok();
    let paged_names = function_names(&paged);
    assert_eq!(paged_names.len(), 5, "each function exactly once: {paged}");
    assert_eq!(
        paged_names.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "{paged}"
    );

    // The CLI's own pagination: --max-items 2, then --starting-token.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    for round in 0.. {
        assert!(round < 5, "pagination does not end: {seen:?}");
        let mut args = vec!["list-functions", "--max-items", "2"];
        if let Some(t) = &token {
            args.push("--starting-token");
            args.push(t);
        }
        let page = s.aws(&args).ok();
        let got = function_names(&page);
        assert!(got.len() <= 2, "{page}");
        seen.extend(got);
        match page.get("NextToken").and_then(Value::as_str) {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);

    // The raw API: one page of 2 with a NextMarker, then the rest.
    let first = s
        .aws(&["list-functions", "--no-paginate", "--max-items", "2"])
        .ok();
    assert_eq!(function_names(&first).len(), 2, "{first}");
    let marker = first["NextMarker"]
        .as_str()
        .unwrap_or_else(|| panic!("no NextMarker: {first}"))
        .to_string();
    let rest = s
        .aws(&["list-functions", "--no-paginate", "--marker", &marker])
        .ok();
    assert_eq!(function_names(&rest).len(), 3, "{rest}");
    assert!(
        matches!(rest.get("NextMarker"), None | Some(Value::Null)),
        "last page has no NextMarker: {rest}"
    );

    // Update the code: a new CodeSha256, and the new code runs.
    let u = s
        .aws(&[
            "update-function-code",
            "--function-name",
            "crud-a",
            "--zip-file",
            &format!("fileb://{}", hello.display()),
        ])
        .ok();
    assert_eq!(u["CodeSha256"], code_sha256(&hello_bytes), "{u}");
    assert_eq!(u["CodeSize"], hello_bytes.len(), "{u}");
    assert_ne!(u["RevisionId"], c["RevisionId"], "{u}");
    let (_, out) = s.invoke("crud-a", &["--payload", r#"{"name":"Ada"}"#]);
    assert_eq!(payload_json(&out), json!({"message": "Hello, Ada!"}));

    // Update the configuration.
    let u = s
        .aws(&[
            "update-function-configuration",
            "--function-name",
            "crud-a",
            "--memory-size",
            "256",
            "--timeout",
            "5",
            "--environment",
            "Variables={GREETING=Yo}",
        ])
        .ok();
    assert_eq!(u["MemorySize"], 256, "{u}");
    assert_eq!(u["Timeout"], 5, "{u}");
    assert_eq!(u["Environment"]["Variables"]["GREETING"], "Yo", "{u}");
    let gc = s
        .aws(&["get-function-configuration", "--function-name", "crud-a"])
        .ok();
    assert_eq!(gc["MemorySize"], 256, "{gc}");
    assert_eq!(gc["Timeout"], 5, "{gc}");
    assert_eq!(gc["Environment"]["Variables"]["GREETING"], "Yo", "{gc}");
    assert_eq!(
        gc["CodeSha256"],
        code_sha256(&hello_bytes),
        "configuration update keeps the code: {gc}"
    );
    let (_, out) = s.invoke(
        "crud-a",
        &["--payload", r#"{"name":"Ada"}"#, "--log-type", "Tail"],
    );
    assert_eq!(payload_json(&out), json!({"message": "Yo, Ada!"}));

    // Delete: gone from get and list; deleting again is a 404.
    let d = s
        .aws(&["delete-function", "--function-name", "crud-b"])
        .ok();
    // Newer botocore models show DeleteFunction's status code.
    assert!(d.is_null() || d["StatusCode"] == 204, "{d}");
    s.aws(&["get-function", "--function-name", "crud-b"])
        .fails_with("ResourceNotFoundException");
    s.aws(&["get-function-configuration", "--function-name", "crud-b"])
        .fails_with("ResourceNotFoundException");
    s.aws(&["delete-function", "--function-name", "crud-b"])
        .fails_with("ResourceNotFoundException");
    s.invoke_raw("crud-b", &[])
        .0
        .fails_with("ResourceNotFoundException");
    let after = s.aws(&["list-functions"]).ok();
    assert!(
        !function_names(&after).contains(&"crud-b".to_string()),
        "{after}"
    );
    assert_eq!(function_names(&after).len(), 4, "{after}");

    // Updates of a missing function are 404s too.
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "nope",
        "--timeout",
        "4",
    ])
    .fails_with("ResourceNotFoundException");
    s.aws(&[
        "update-function-code",
        "--function-name",
        "nope",
        "--zip-file",
        &format!("fileb://{}", echo.display()),
    ])
    .fails_with("ResourceNotFoundException");
}
