//! Tags through the AWS CLI, as Lambda has them: `create-function --tags`,
//! `tag-resource`, `untag-resource`, `list-tags` and the `Tags` of
//! `get-function`, on a function's ARN (never a version's or an alias's),
//! within Lambda's limits; they survive a restart (SIGTERM or `kill -9`)
//! and go with their function.

use serde_json::{json, Map, Value};

use crate::support::aws::{function_arn, Cli};
use crate::support::{image_path, Server};

/// `list-tags --resource ARN`, asserting success: its `Tags`.
fn list_tags(s: &Server, arn: &str) -> Value {
    let out = s.aws(&["list-tags", "--resource", arn]).ok();
    assert!(out["Tags"].is_object(), "{out}");
    out["Tags"].clone()
}

/// `tag-resource --resource ARN --tags JSON`, asserting nothing.
fn tag(s: &Server, arn: &str, tags: &Value) -> Cli {
    s.aws(&[
        "tag-resource",
        "--resource",
        arn,
        "--tags",
        &tags.to_string(),
    ])
}

/// `untag-resource --resource ARN --tag-keys KEYS...`, asserting nothing.
fn untag(s: &Server, arn: &str, keys: &[&str]) -> Cli {
    let mut args = vec!["untag-resource", "--resource", arn, "--tag-keys"];
    args.extend_from_slice(keys);
    s.aws(&args)
}

/// `get-function`, asserting success.
fn get_function(s: &Server, name: &str) -> Value {
    s.aws(&["get-function", "--function-name", name]).ok()
}

/// `n` tags `{prefix}0`..: `{prefix}{n-1}`, each valued `v`.
fn many(prefix: &str, n: usize) -> Value {
    let tags: Map<String, Value> = (0..n)
        .map(|i| (format!("{prefix}{i}"), json!("v")))
        .collect();
    Value::Object(tags)
}

const QUALIFIED: &str =
    "Tags on function aliases and versions are not supported. Please specify a function ARN.";
const TOO_MANY: &str = "Number of tags exceeds resource tag limit.";

#[test]
fn cli_tags_untags_and_lists_tags_of_a_function() {
    let s = Server::start();
    let echo = image_path("echo.zip");
    let arn = function_arn("tg-a");

    // Tags given at creation are the function's; the configuration has none.
    let c = s.create("tg-a", &echo, &["--tags", "team=core,env=dev"]);
    assert!(c.get("Tags").is_none(), "{c}");
    assert_eq!(list_tags(&s, &arn), json!({"team": "core", "env": "dev"}));
    let g = get_function(&s, "tg-a");
    assert_eq!(g["Tags"], json!({"team": "core", "env": "dev"}), "{g}");
    assert_eq!(g["Configuration"]["RevisionId"], c["RevisionId"], "{g}");
    // GetFunction of a version shows the function's tags too.
    s.aws(&["publish-version", "--function-name", "tg-a"]).ok();
    let g1 = s
        .aws(&[
            "get-function",
            "--function-name",
            "tg-a",
            "--qualifier",
            "1",
        ])
        .ok();
    assert_eq!(g1["Tags"], g["Tags"], "{g1}");

    // TagResource: 204 (no output), new keys added, same keys replaced,
    // and a new RevisionId, as Lambda gives.
    let out = tag(&s, &arn, &json!({"env": "prod", "owner": "Ada Lovelace"})).ok();
    assert!(
        out.is_null(),
        "TagResource answers 204 without a body: {out}"
    );
    assert_eq!(
        list_tags(&s, &arn),
        json!({"team": "core", "env": "prod", "owner": "Ada Lovelace"})
    );
    let after_tag = get_function(&s, "tg-a");
    assert_eq!(after_tag["Tags"], list_tags(&s, &arn), "{after_tag}");
    let revision = &after_tag["Configuration"]["RevisionId"];
    assert_ne!(*revision, c["RevisionId"], "{after_tag}");
    // ... and nothing else of the configuration changes.
    assert_eq!(
        after_tag["Configuration"]["CodeSha256"], c["CodeSha256"],
        "{after_tag}"
    );
    // The revision it got is the one to update against.
    s.aws(&[
        "update-function-configuration",
        "--function-name",
        "tg-a",
        "--timeout",
        "4",
        "--revision-id",
        c["RevisionId"].as_str().unwrap(),
    ])
    .fails_with("PreconditionFailedException");

    // The ARN may be written with any region of the aws partition.
    let eu = arn.replace("us-east-1", "eu-west-1");
    assert_eq!(list_tags(&s, &eu)["owner"], "Ada Lovelace");

    // UntagResource: 204; keys the function does not have are ignored.
    let out = untag(&s, &arn, &["team", "nope"]).ok();
    assert!(out.is_null(), "{out}");
    assert_eq!(
        list_tags(&s, &arn),
        json!({"env": "prod", "owner": "Ada Lovelace"})
    );
    let after_untag = get_function(&s, "tg-a");
    assert_ne!(after_untag["Configuration"]["RevisionId"], *revision);
    untag(&s, &arn, &["env", "owner"]).ok();
    assert_eq!(list_tags(&s, &arn), json!({}));
    // No tags: no `Tags` in GetFunction, as Lambda answers.
    let g = get_function(&s, "tg-a");
    assert!(g.get("Tags").is_none(), "{g}");

    // A function created without tags has none.
    s.create("tg-b", &echo, &[]);
    assert_eq!(list_tags(&s, &function_arn("tg-b")), json!({}));
    assert!(get_function(&s, "tg-b").get("Tags").is_none());

    // At the limit: 50 tags, values up to 256 characters, keys up to 128
    // (Unicode characters, not bytes).
    let mut full = many("k", 48);
    full["é".repeat(128)] = json!("ü".repeat(256));
    full["empty"] = json!("");
    tag(&s, &function_arn("tg-b"), &full).ok();
    let listed = list_tags(&s, &function_arn("tg-b"));
    assert_eq!(listed, full);
    assert_eq!(get_function(&s, "tg-b")["Tags"], full);
    // Replacing a value is fine at the limit.
    tag(&s, &function_arn("tg-b"), &json!({"k0": "new"})).ok();
    assert_eq!(list_tags(&s, &function_arn("tg-b"))["k0"], "new");

    // Deleting the function deletes its tags: a new function of the name
    // starts with none.
    s.aws(&["delete-function", "--function-name", "tg-a"]).ok();
    let m = s
        .aws(&["list-tags", "--resource", &arn])
        .fails_with("ResourceNotFoundException");
    assert_eq!(m, format!("Function not found: {arn}"));
    s.create("tg-a", &echo, &[]);
    assert_eq!(list_tags(&s, &arn), json!({}));
}

#[test]
fn cli_tag_errors_are_lambdas() {
    let s = Server::start();
    let echo = image_path("echo.zip");
    let arn = function_arn("tge");
    s.create("tge", &echo, &["--tags", "keep=me"]);
    s.aws(&["publish-version", "--function-name", "tge"]).ok();
    s.aws(&[
        "create-alias",
        "--function-name",
        "tge",
        "--name",
        "live",
        "--function-version",
        "1",
    ])
    .ok();
    let unchanged = |why: &str| {
        assert_eq!(list_tags(&s, &arn), json!({"keep": "me"}), "{why}");
    };

    // A missing function: 404 naming its ARN, for all three operations.
    let missing = function_arn("tge-missing");
    let message = tag(&s, &missing, &json!({"a": "b"})).fails_with("ResourceNotFoundException");
    assert_eq!(message, format!("Function not found: {missing}"));
    untag(&s, &missing, &["a"]).fails_with("ResourceNotFoundException");
    s.aws(&["list-tags", "--resource", &missing])
        .fails_with("ResourceNotFoundException");
    // So is a function of another account.
    let other = "arn:aws:lambda:us-east-1:123456789012:function:tge";
    tag(&s, other, &json!({"a": "b"})).fails_with("ResourceNotFoundException");

    // Versions and aliases cannot be tagged, listed or untagged, whether
    // they exist or not.
    for q in ["1", "$LATEST", "live", "nope"] {
        let qualified = format!("{arn}:{q}");
        let m =
            tag(&s, &qualified, &json!({"a": "b"})).fails_with("InvalidParameterValueException");
        assert_eq!(m, QUALIFIED, "{qualified}");
        let m = s
            .aws(&["list-tags", "--resource", &qualified])
            .fails_with("InvalidParameterValueException");
        assert_eq!(m, QUALIFIED, "{qualified}");
        untag(&s, &qualified, &["keep"]).fails_with("InvalidParameterValueException");
    }
    unchanged("after qualified ARNs");

    // Not a function ARN at all.
    for bad in [
        "tge",
        "arn:aws:something",
        "arn:aws:lambda:us-east-1:000000000000:foobar:tge",
    ] {
        let m = tag(&s, bad, &json!({"a": "b"})).fails_with("ValidationException");
        assert!(
            m.starts_with(&format!(
                "1 validation error detected: Value '{bad}' at 'resource' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: arn:"
            )),
            "{m}"
        );
        s.aws(&["list-tags", "--resource", bad])
            .fails_with("ValidationException");
    }

    // More than 50 tags, in one request or with those it has.
    let m = tag(&s, &arn, &many("k", 51)).fails_with("InvalidParameterValueException");
    assert_eq!(m, TOO_MANY);
    unchanged("after 51 tags");
    let m = tag(&s, &arn, &many("k", 50)).fails_with("InvalidParameterValueException");
    assert_eq!(m, TOO_MANY, "50 new ones beside the one it has");
    unchanged("after 50 more");
    tag(&s, &arn, &many("k", 49)).ok();
    let m = tag(&s, &arn, &json!({"one-more": "v"})).fails_with("InvalidParameterValueException");
    assert_eq!(m, TOO_MANY);
    assert_eq!(list_tags(&s, &arn).as_object().map(Map::len), Some(50));
    let mut keys: Vec<String> = (0..49).map(|i| format!("k{i}")).collect();
    keys.push("nope".into());
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    untag(&s, &arn, &refs).ok();
    unchanged("after untagging the 49");

    // Keys AWS reserves, in any case.
    for reserved in ["aws:owner", "AWS:owner", "Aws:cloudformation:stack-name"] {
        let m = tag(&s, &arn, &json!({"ok": "v", reserved: "v"}))
            .fails_with("InvalidParameterValueException");
        assert!(m.contains(reserved), "{m}");
    }
    unchanged("after reserved keys");

    // Lengths: keys 1 to 128 characters, values at most 256.
    let m = tag(&s, &arn, &json!({("k".repeat(129)): "v"})).fails_with("ValidationException");
    assert!(m.contains("Map keys must satisfy constraint"), "{m}");
    let m = tag(&s, &arn, &json!({"": "v"})).fails_with("ValidationException");
    assert!(
        m.contains("Member must have length greater than or equal to 1"),
        "{m}"
    );
    let m = tag(&s, &arn, &json!({"k": "v".repeat(257)})).fails_with("ValidationException");
    assert!(m.contains("Map value must satisfy constraint"), "{m}");
    unchanged("after bad lengths");

    // CreateFunction checks its tags the same way, and then stores nothing.
    for (name, tags, code) in [
        ("tge-51", many("k", 51), "InvalidParameterValueException"),
        (
            "tge-aws",
            json!({"aws:x": "y"}),
            "InvalidParameterValueException",
        ),
        (
            "tge-long",
            json!({"k": "v".repeat(257)}),
            "ValidationException",
        ),
    ] {
        s.create_raw(name, &echo, &["--tags", &tags.to_string()])
            .fails_with(code);
        s.aws(&["get-function", "--function-name", name])
            .fails_with("ResourceNotFoundException");
    }
    let m = s
        .create_raw("tge-51", &echo, &["--tags", &many("k", 51).to_string()])
        .fails_with("InvalidParameterValueException");
    assert_eq!(m, TOO_MANY);
    // Exactly 50 is fine.
    s.create("tge-50", &echo, &["--tags", &many("k", 50).to_string()]);
    assert_eq!(
        list_tags(&s, &function_arn("tge-50"))
            .as_object()
            .map(Map::len),
        Some(50)
    );
}

#[test]
fn tags_survive_restarts_and_go_with_their_function() {
    let mut s = Server::start();
    let echo = image_path("echo.zip");
    let arn = function_arn("tg-rs");
    s.create("tg-rs", &echo, &["--tags", "team=core,env=dev"]);
    tag(&s, &arn, &json!({"owner": "ada", "env": "prod"})).ok();
    untag(&s, &arn, &["team"]).ok();
    let expected = json!({"owner": "ada", "env": "prod"});
    let before = get_function(&s, "tg-rs");

    s.restart();
    assert_eq!(list_tags(&s, &arn), expected);
    let after = get_function(&s, "tg-rs");
    assert_eq!(after["Tags"], expected, "{after}");
    assert_eq!(
        after["Configuration"]["RevisionId"], before["Configuration"]["RevisionId"],
        "{after}"
    );

    // An acknowledged tag survives `kill -9` too.
    tag(&s, &arn, &json!({"after": "restart"})).ok();
    s.kill_9();
    s.restart();
    assert_eq!(
        list_tags(&s, &arn),
        json!({"owner": "ada", "env": "prod", "after": "restart"})
    );

    // Deleted with the function, and still gone after a restart.
    s.aws(&["delete-function", "--function-name", "tg-rs"]).ok();
    s.restart();
    s.aws(&["list-tags", "--resource", &arn])
        .fails_with("ResourceNotFoundException");
    s.create("tg-rs", &echo, &[]);
    assert_eq!(list_tags(&s, &arn), json!({}));
    s.stop_cleanly();
}
