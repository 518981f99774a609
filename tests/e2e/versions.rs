//! Versions and aliases through the AWS CLI: publishing, qualifiers,
//! routing by alias (and alias ARN), and deleting with the function.

use serde_json::{json, Value};

use crate::support::aws::{function_arn, Cli};
use crate::support::fixtures::code_sha256;
use crate::support::{image_path, payload_json, Server};

/// `aws lambda OP --function-name ver-hello --name ALIAS EXTRA…`.
fn alias(s: &Server, op: &str, alias: &str, extra: &[&str]) -> Cli {
    let mut args = vec![op, "--function-name", "ver-hello", "--name", alias];
    args.extend_from_slice(extra);
    s.aws(&args)
}

/// Invokes hello's `function` (a name, `NAME:QUALIFIER` or an ARN) for Ada
/// with `extra` arguments; asserts the greeting and the version that ran.
fn assert_greets(s: &Server, function: &str, extra: &[&str], greeting: &str, version: &str) {
    let mut args = extra.to_vec();
    args.extend(["--payload", r#"{"name":"Ada"}"#]);
    let (meta, out) = s.invoke(function, &args);
    assert_eq!(
        payload_json(&out),
        json!({"message": format!("{greeting}, Ada!")}),
        "{function} {extra:?}: {meta}"
    );
    assert_eq!(
        meta["ExecutedVersion"], version,
        "{function} {extra:?}: {meta}"
    );
}

#[test]
fn cli_publishes_versions_and_routes_aliases() {
    let s = Server::start();
    let hello = image_path("hello.zip");
    s.create(
        "ver-hello",
        &hello,
        &["--environment", "Variables={GREETING=Hi}"],
    );

    let v1 = s
        .aws(&[
            "publish-version",
            "--function-name",
            "ver-hello",
            "--description",
            "first",
        ])
        .ok();
    assert_eq!(v1["Version"], "1", "{v1}");
    assert_eq!(
        v1["FunctionArn"],
        format!("{}:1", function_arn("ver-hello")),
        "{v1}"
    );
    assert_eq!(v1["Environment"]["Variables"]["GREETING"], "Hi", "{v1}");
    // Nothing changed: the same version again.
    let again = s
        .aws(&["publish-version", "--function-name", "ver-hello"])
        .ok();
    assert_eq!(again["Version"], "1", "{again}");

    // $LATEST moves on; version 1 does not.
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "ver-hello",
        "--environment",
        "Variables={GREETING=Yo}",
    ])
    .ok();
    assert_greets(&s, "ver-hello", &["--qualifier", "1"], "Hi", "1");
    assert_greets(&s, "ver-hello", &[], "Yo", "$LATEST");
    // A qualified name selects the version too.
    assert_greets(&s, "ver-hello:1", &[], "Hi", "1");

    let c1 = s
        .aws(&[
            "get-function-configuration",
            "--function-name",
            "ver-hello",
            "--qualifier",
            "1",
        ])
        .ok();
    assert_eq!(c1["Version"], "1", "{c1}");
    assert_eq!(c1["Environment"]["Variables"]["GREETING"], "Hi", "{c1}");

    let v2 = s
        .aws(&["publish-version", "--function-name", "ver-hello"])
        .ok();
    assert_eq!(v2["Version"], "2", "{v2}");
    let versions = s
        .aws(&["list-versions-by-function", "--function-name", "ver-hello"])
        .ok();
    let listed: Vec<&str> = versions["Versions"]
        .as_array()
        .unwrap_or_else(|| panic!("{versions}"))
        .iter()
        .map(|v| v["Version"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["$LATEST", "1", "2"], "{versions}");

    // Aliases.
    let a = alias(
        &s,
        "create-alias",
        "live",
        &["--function-version", "1", "--description", "prod"],
    )
    .ok();
    assert_eq!(a["Name"], "live", "{a}");
    assert_eq!(a["FunctionVersion"], "1", "{a}");
    assert_eq!(
        a["AliasArn"],
        format!("{}:live", function_arn("ver-hello")),
        "{a}"
    );
    assert!(
        a["RevisionId"].as_str().is_some_and(|r| !r.is_empty()),
        "{a}"
    );
    let g = alias(&s, "get-alias", "live", &[]).ok();
    assert_eq!(g["FunctionVersion"], "1", "{g}");
    alias(&s, "create-alias", "live", &["--function-version", "2"])
        .fails_with("ResourceConflictException");
    alias(&s, "create-alias", "ghost", &["--function-version", "9"])
        .fails_with("ResourceNotFoundException");
    alias(&s, "get-alias", "ghost", &[]).fails_with("ResourceNotFoundException");

    assert_greets(&s, "ver-hello", &["--qualifier", "live"], "Hi", "1");

    let u = alias(&s, "update-alias", "live", &["--function-version", "2"]).ok();
    assert_eq!(u["FunctionVersion"], "2", "{u}");
    assert_greets(&s, "ver-hello", &["--qualifier", "live"], "Yo", "2");
    // By alias ARN.
    let alias_arn = format!("{}:live", function_arn("ver-hello"));
    assert_greets(&s, &alias_arn, &[], "Yo", "2");

    alias(
        &s,
        "create-alias",
        "canary",
        &["--function-version", "$LATEST"],
    )
    .ok();
    let aliases = s
        .aws(&["list-aliases", "--function-name", "ver-hello"])
        .ok();
    let mut alias_names: Vec<&str> = aliases["Aliases"]
        .as_array()
        .unwrap_or_else(|| panic!("{aliases}"))
        .iter()
        .map(|a| a["Name"].as_str().unwrap())
        .collect();
    alias_names.sort();
    assert_eq!(alias_names, ["canary", "live"], "{aliases}");

    assert_eq!(alias(&s, "delete-alias", "canary", &[]).ok(), Value::Null);
    alias(&s, "get-alias", "canary", &[]).fails_with("ResourceNotFoundException");
    s.invoke_raw("ver-hello", &["--qualifier", "canary"])
        .0
        .fails_with("ResourceNotFoundException");

    // A code change makes a new version with the new code.
    let echo_bytes = std::fs::read(image_path("echo.zip")).unwrap();
    s.aws(&[
        "update-function-code",
        "--function-name",
        "ver-hello",
        "--zip-file",
        &format!("fileb://{}", image_path("echo.zip").display()),
    ])
    .ok();
    let v3 = s
        .aws(&["publish-version", "--function-name", "ver-hello"])
        .ok();
    assert_eq!(v3["Version"], "3", "{v3}");
    assert_eq!(v3["CodeSha256"], code_sha256(&echo_bytes), "{v3}");
    let (_, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "3", "--payload", r#"{"v":3}"#],
    );
    assert_eq!(payload_json(&out), json!({"v": 3}));
    // Version 1 still runs hello.
    let (_, out) = s.invoke(
        "ver-hello",
        &["--qualifier", "1", "--payload", r#"{"name":"Bo"}"#],
    );
    assert_eq!(payload_json(&out), json!({"message": "Hi, Bo!"}));
    s.invoke_raw("ver-hello", &["--qualifier", "9"])
        .0
        .fails_with("ResourceNotFoundException");

    // Deleting the function takes its versions and aliases with it.
    s.aws(&["delete-function", "--function-name", "ver-hello"])
        .ok();
    alias(&s, "get-alias", "live", &[]).fails_with("ResourceNotFoundException");
    s.aws(&["list-versions-by-function", "--function-name", "ver-hello"])
        .fails_with("ResourceNotFoundException");
}
