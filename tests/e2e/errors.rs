//! Bad requests through the AWS CLI: each is refused with the AWS error the
//! CLI names, and a refused create or update stores nothing.

use serde_json::json;

use crate::support::aws::function_names;
use crate::support::fixtures::{floor_without_pvh, write_zip};
use crate::support::{image_path, payload_json, Server};

#[test]
fn cli_rejects_bad_requests_with_aws_errors() {
    let s = Server::start();
    let echo = image_path("echo.zip");
    let invalid = ["InvalidParameterValueException", "ValidationException"];
    let must_not_exist = |name: &str| {
        s.aws(&["get-function", "--function-name", name])
            .fails_with("ResourceNotFoundException");
        let list = s.aws(&["list-functions"]).ok();
        assert!(
            !function_names(&list).contains(&name.to_string()),
            "{name} was stored: {list}"
        );
    };

    s.create_raw("bad-mem", &echo, &["--memory-size", "10241"])
        .fails_with_any(&invalid);
    s.create_raw("bad-timeout", &echo, &["--timeout", "901"])
        .fails_with_any(&invalid);
    s.create_raw("bad-runtime", &echo, &["--runtime", "python3.12"])
        .fails_with("InvalidParameterValueException");
    let big_env = format!(r#"{{"Variables":{{"BIG":"{}"}}}}"#, "x".repeat(4200));
    s.create_raw("bad-env", &echo, &["--environment", &big_env])
        .fails_with("InvalidParameterValueException");
    s.create_raw("bad name!", &echo, &[])
        .fails_with_any(&invalid);
    for n in ["bad-mem", "bad-timeout", "bad-runtime", "bad-env"] {
        must_not_exist(n);
    }

    // Packages: the message says what is wrong.
    let no_bootstrap = s.tmp().join("no-bootstrap.zip");
    let echo_elf = std::fs::read(image_path("echo.elf")).unwrap();
    write_zip(&no_bootstrap, &[("main", echo_elf.as_slice())]);
    let no_pvh = s.tmp().join("no-pvh.zip");
    write_zip(&no_pvh, &[("bootstrap", floor_without_pvh().as_slice())]);
    let text = s.tmp().join("text.zip");
    write_zip(
        &text,
        &[("bootstrap", b"#!/bin/sh\necho hello\n".as_slice())],
    );
    // A dynamically linked Linux program: the system's own shell.
    let dynamic = s.tmp().join("dynamic.zip");
    let shell = std::fs::read("/bin/sh").expect("/bin/sh");
    write_zip(&dynamic, &[("bootstrap", shell.as_slice())]);
    for (name, zip, says) in [
        ("pkg-nobootstrap", &no_bootstrap, "bootstrap"),
        ("pkg-nopvh", &no_pvh, "PVH"),
        ("pkg-text", &text, "a script (`#!/bin/sh`)"),
        ("pkg-dynamic", &dynamic, "-C target-feature=+crt-static"),
    ] {
        let msg = s
            .create_raw(name, zip, &[])
            .fails_with("InvalidParameterValueException");
        assert!(
            msg.contains(says),
            "{name}: the message says what is wrong: {msg}"
        );
        must_not_exist(name);
    }

    // (A file that is not a zip at all the CLI refuses itself: boto3_errors.py
    // sends one.)

    // Updates are validated the same way and leave the function as it was.
    let c = s.create("bad-update", &echo, &[]);
    s.aws(&[
        "update-function-code",
        "--function-name",
        "bad-update",
        "--zip-file",
        &format!("fileb://{}", no_pvh.display()),
    ])
    .fails_with("InvalidParameterValueException");
    for (option, value, codes) in [
        ("--memory-size", "10241", &invalid[..]),
        ("--timeout", "901", &invalid[..]),
        (
            "--environment",
            &big_env,
            &["InvalidParameterValueException"][..],
        ),
    ] {
        s.aws(&[
            "update-function-configuration",
            "--function-name",
            "bad-update",
            option,
            value,
        ])
        .fails_with_any(codes);
    }
    let after = s
        .aws(&[
            "get-function-configuration",
            "--function-name",
            "bad-update",
        ])
        .ok();
    assert_eq!(after["CodeSha256"], c["CodeSha256"], "{after}");
    assert_eq!(after["MemorySize"], 128, "{after}");
    assert_eq!(after["Timeout"], 3, "{after}");
    assert_eq!(after["RevisionId"], c["RevisionId"], "{after}");
    let (_, out) = s.invoke("bad-update", &["--payload", r#"{"still":"echo"}"#]);
    assert_eq!(payload_json(&out), json!({"still": "echo"}));
}
