//! Signatures: the AWS CLI with a wrong key pair, and raw requests unsigned,
//! signed at the wrong time, signed for another request than the one sent,
//! or signed with an unknown key, are each refused with AWS's error.

use std::time::{Duration, SystemTime};

use crate::support::http::{as_refs, http};
use crate::support::server::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};
use crate::support::{image_path, Server};

const WRONG_SECRET: &str = "wrongwrongwrongwrongwrongwrongwrongwrong";
const UNKNOWN_KEY: &str = "AKIAUNKNOWNKEY000000";

#[test]
fn cli_and_raw_requests_need_a_valid_signature() {
    let s = Server::start();
    s.create("auth-echo", &image_path("echo.zip"), &[]);

    // Wrong secret, unknown key: the CLI names the exception.
    s.aws_as(ACCESS_KEY_ID, WRONG_SECRET, &["list-functions"])
        .fails_with("InvalidSignatureException");
    s.aws_as(UNKNOWN_KEY, SECRET_ACCESS_KEY, &["list-functions"])
        .fails_with("UnrecognizedClientException");
    let (cli, out) = s.invoke_raw_as(
        ACCESS_KEY_ID,
        WRONG_SECRET,
        "auth-echo",
        &["--payload", "{}"],
    );
    cli.fails_with("InvalidSignatureException");
    assert!(out.is_empty());

    // Unsigned: 403 MissingAuthenticationTokenException, on every route.
    for (method, target, body) in [
        ("GET", "/2015-03-31/functions", &b""[..]),
        ("GET", "/2015-03-31/functions/auth-echo", b""),
        ("POST", "/2015-03-31/functions/auth-echo/invocations", b"{}"),
        ("DELETE", "/2015-03-31/functions/auth-echo", b""),
        ("GET", "/2016-08-19/account-settings", b""),
        (
            "GET",
            "/mayfly/2025-01-01/functions/auth-echo/invocations",
            b"",
        ),
    ] {
        let r = http(s.addr, method, target, &[], body);
        r.assert_error(403, "MissingAuthenticationTokenException");
    }
    // /healthz needs nothing.
    assert_eq!(http(s.addr, "GET", "/healthz", &[], b"").status, 200);

    // Signed properly: fine.
    let ok = s.signed("GET", "/2015-03-31/functions/auth-echo", &[], b"");
    assert_eq!(ok.status, 200, "{}", ok.text());

    // ListFunctions signed at `time` with `credentials` (default: the
    // server's).
    let list_signed = |time: SystemTime, credentials: Option<(&str, &str)>| {
        let target = "/2015-03-31/functions";
        let h = s.sign("GET", target, &[], b"", time, credentials);
        http(s.addr, "GET", target, &as_refs(&h), b"")
    };
    // Signed 10 minutes off, either way.
    let now = SystemTime::now();
    for when in [
        now - Duration::from_secs(600),
        now + Duration::from_secs(600),
    ] {
        list_signed(when, None).assert_error(403, "InvalidSignatureException");
    }
    // 4 minutes off is still accepted.
    let r = list_signed(SystemTime::now() - Duration::from_secs(240), None);
    assert_eq!(r.status, 200, "{}", r.text());

    // Signed for one request, sent as another: a tampered body, query, path.
    let invoke = "/2015-03-31/functions/auth-echo/invocations";
    let json = [("content-type", "application/json")];
    for (tampered, method, headers, (signed_target, signed_body), (sent_target, sent_body)) in [
        (
            "body",
            "POST",
            &json[..],
            (invoke, &br#"{"amount":1}"#[..]),
            (invoke, &br#"{"amount":9}"#[..]),
        ),
        (
            "query",
            "GET",
            &[][..],
            ("/2015-03-31/functions?MaxItems=1", &b""[..]),
            ("/2015-03-31/functions?MaxItems=2", &b""[..]),
        ),
        (
            "path",
            "GET",
            &[][..],
            ("/2015-03-31/functions/auth-echo", &b""[..]),
            ("/2015-03-31/functions/auth-other", &b""[..]),
        ),
    ] {
        println!("a tampered {tampered}");
        let h = s.sign(
            method,
            signed_target,
            headers,
            signed_body,
            SystemTime::now(),
            None,
        );
        http(s.addr, method, sent_target, &as_refs(&h), sent_body)
            .assert_error(403, "InvalidSignatureException");
    }
    // The signed body still works.
    let r = s.signed("POST", invoke, &json, br#"{"amount":1}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, br#"{"amount":1}"#);
    assert_eq!(r.header("x-amz-executed-version"), Some("$LATEST"));
    // An unknown key, however well it signs.
    list_signed(SystemTime::now(), Some((UNKNOWN_KEY, "x")))
        .assert_error(403, "UnrecognizedClientException");
}
