//! The client commands (`mayfly deploy`, `invoke`, `ls`, `rm`, `logs`)
//! against a tiny fake Lambda server (see `fake_lambda`) that verifies
//! every signature. The real server's end-to-end tests live with it.

mod fake_lambda;

use std::io::Read;
use std::process::Output;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use fake_lambda::{aws_error, mayfly_command, reply, FakeLambda, Reply};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
fn config(name: &str, memory: u32, timeout: u32) -> Value {
    json!({
        "FunctionName": name,
        "FunctionArn": format!("arn:aws:lambda:us-east-1:000000000000:function:{name}"),
        "Runtime": "provided.al2023", "Handler": "bootstrap", "Version": "$LATEST",
        "MemorySize": memory, "Timeout": timeout,
        "CodeSize": 1234, "CodeSha256": "c2hhMjU2LW9mLXRoZS16aXA=",
        "LastModified": "2025-01-01T00:00:00.000+0000", "State": "Active",
    })
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}
fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The `bootstrap` inside a base64 zip.
fn unzip_bootstrap(b64: &str) -> Vec<u8> {
    let zip = B64.decode(b64).unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut entry = archive.by_name("bootstrap").unwrap();
    let mut elf = Vec::new();
    entry.read_to_end(&mut elf).unwrap();
    elf
}

#[tokio::test]
async fn deploy_creates_then_updates() {
    let exists = Arc::new(Mutex::new(false));
    let state = exists.clone();
    let server = FakeLambda::start(move |r| {
        let mut exists = state.lock().unwrap();
        match (r.method.as_str(), r.target.as_str()) {
            ("GET", "/2015-03-31/functions/echo") if *exists => {
                reply(200, json!({"Configuration": config("echo", 256, 3)}))
            }
            ("GET", "/2015-03-31/functions/echo") => {
                aws_error(404, "ResourceNotFoundException", "Function not found")
            }
            ("POST", "/2015-03-31/functions") => {
                *exists = true;
                reply(201, config("echo", 256, 3))
            }
            ("PUT", "/2015-03-31/functions/echo/code") => reply(200, config("echo", 256, 3)),
            ("PUT", "/2015-03-31/functions/echo/configuration") => {
                reply(200, config("echo", 256, 30))
            }
            _ => aws_error(400, "ValidationException", "unexpected"),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let elf = mayfly_runner::testing::pvh_elf(mayfly_runner::testing::EXIT_OK);
    let elf_path = dir.path().join("echo.elf");
    std::fs::write(&elf_path, &elf).unwrap();
    let elf_arg = elf_path.to_str().unwrap();

    let out = server
        .mayfly(&[
            "deploy",
            "echo",
            elf_arg,
            "--memory",
            "256",
            "--env",
            "GREETING=Hi",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Function:   echo (created)"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("CodeSha256: c2hhMjU2LW9mLXRoZS16aXA=\n"));
    assert!(stdout(&out).contains("Memory:     256 MB\n"));
    let requests = server.requests();
    assert_eq!(
        server.summary(),
        [
            "GET /2015-03-31/functions/echo",
            "POST /2015-03-31/functions"
        ]
    );
    let create = requests[1].json();
    assert_eq!(requests[1].header("content-type"), Some("application/json"));
    assert_eq!(create["FunctionName"], "echo");
    assert_eq!(create["Runtime"], "provided.al2023");
    assert_eq!(create["Role"], "arn:aws:iam::000000000000:role/mayfly");
    assert_eq!(create["Handler"], "bootstrap");
    assert_eq!(create["MemorySize"], 256);
    assert_eq!(create.get("Timeout"), None);
    assert_eq!(
        create["Environment"],
        json!({"Variables": {"GREETING": "Hi"}})
    );
    assert_eq!(
        unzip_bootstrap(create["Code"]["ZipFile"].as_str().unwrap()),
        elf
    );

    // Again, as a zip: code first, then only the setting given.
    let zip_path = dir.path().join("echo.zip");
    std::fs::write(
        &zip_path,
        B64.decode(create["Code"]["ZipFile"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let out = server
        .mayfly(&[
            "deploy",
            "echo",
            zip_path.to_str().unwrap(),
            "--timeout",
            "30",
        ])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Function:   echo (updated)"));
    assert!(stdout(&out).contains("Timeout:    30 s\n"));
    let requests = server.requests();
    assert_eq!(
        server.summary()[2..],
        [
            "GET /2015-03-31/functions/echo",
            "PUT /2015-03-31/functions/echo/code",
            "PUT /2015-03-31/functions/echo/configuration"
        ]
    );
    assert_eq!(requests[3].json()["ZipFile"], create["Code"]["ZipFile"]);
    assert_eq!(requests[4].json(), json!({"Timeout": 30}));

    // No settings given: no configuration call.
    server.mayfly(&["deploy", "echo", elf_arg]).await;
    assert_eq!(server.requests().len(), 7);

    // Bad input is refused before any call.
    for bad in [
        vec!["deploy", "echo", elf_arg, "--memory", "64"],
        vec!["deploy", "echo", elf_arg, "--timeout", "901"],
        vec!["deploy", "echo", elf_arg, "--env", "1BAD=x"],
        vec!["deploy", "echo", "/nonexistent/echo.elf"],
    ] {
        let out = server.mayfly(&bad).await;
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            stderr(&out).starts_with("mayfly: error: "),
            "{}",
            stderr(&out)
        );
    }
    let not_pvh = dir.path().join("plain.elf");
    let mut broken = elf.clone();
    broken[18] = 3; // e_machine: i386
    std::fs::write(&not_pvh, broken).unwrap();
    let out = server
        .mayfly(&["deploy", "echo", not_pvh.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a bootable image"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests().len(), 7);
}

#[tokio::test]
async fn invoke_prints_payload_tail_and_function_errors() {
    let server = FakeLambda::start(|r| {
        if r.target.contains("fail") {
            return Reply {
                status: 200,
                headers: vec![
                    ("X-Amz-Function-Error", "Unhandled".into()),
                    ("X-Amz-Executed-Version", "$LATEST".into()),
                ],
                body: br#"{"errorType":"Runtime.Panic","errorMessage":"boom"}"#.to_vec(),
            };
        }
        let log = B64.encode("START RequestId: r1 Version: $LATEST\nhello\nEND RequestId: r1\n");
        Reply {
            status: 200,
            headers: vec![
                ("X-Amz-Log-Result", log),
                ("X-Amz-Executed-Version", "$LATEST".into()),
            ],
            body: r.body.clone(),
        }
    })
    .await;
    let out = server
        .mayfly(&["invoke", "echo", "--event", r#"{"a":1}"#, "--tail"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"a\":1}\n");
    assert_eq!(
        stderr(&out),
        "START RequestId: r1 Version: $LATEST\nhello\nEND RequestId: r1\n"
    );
    let request = &server.requests()[0];
    assert_eq!(
        (request.method.as_str(), request.target.as_str()),
        ("POST", "/2015-03-31/functions/echo/invocations")
    );
    assert_eq!(
        request.header("x-amz-invocation-type"),
        Some("RequestResponse")
    );
    assert_eq!(request.header("x-amz-log-type"), Some("Tail"));

    // No event: `{}`; no tail asked, none printed; a qualified ARN is escaped.
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:echo";
    let out = server
        .mayfly(&["invoke", arn, "--qualifier", "$LATEST"])
        .await;
    assert_eq!(
        (out.status.code(), stdout(&out), stderr(&out)),
        (Some(0), "{}\n".into(), "".into())
    );
    let request = &server.requests()[1];
    assert_eq!(
        request.target,
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/invocations?Qualifier=%24LATEST"
    );
    assert_eq!(request.header("x-amz-log-type"), None);

    let out = server.mayfly(&["invoke", "fail"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "{\"errorType\":\"Runtime.Panic\",\"errorMessage\":\"boom\"}\n"
    );

    let out = server
        .mayfly(&["invoke", "echo", "--event", "{not json"])
        .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the event is not valid JSON"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn ls_follows_every_page() {
    let server = FakeLambda::start(|r| {
        let marker = r
            .target
            .split("Marker=")
            .nth(1)
            .map(|m| m.split('&').next().unwrap().to_owned());
        let (names, next) = match marker.as_deref() {
            None => (vec!["alpha", "beta"], Some("page 2")),
            Some("page%202") => (vec!["gamma"], Some("page/3")),
            Some("page%2F3") => (vec!["delta"], None),
            Some(other) => panic!("marker {other}"),
        };
        let functions: Vec<Value> = names.iter().map(|n| config(n, 128, 3)).collect();
        reply(200, json!({"Functions": functions, "NextMarker": next}))
    })
    .await;
    let out = server.mayfly(&["ls"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        server.summary(),
        [
            "GET /2015-03-31/functions?MaxItems=50",
            "GET /2015-03-31/functions?Marker=page%202&MaxItems=50",
            "GET /2015-03-31/functions?Marker=page%2F3&MaxItems=50",
        ]
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "NAME   MEMORY  TIMEOUT  CODE SIZE  LAST MODIFIED");
    assert_eq!(
        lines[1],
        "alpha  128 MB  3 s      1.2 KiB    2025-01-01T00:00:00.000+0000"
    );
    let names: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma", "delta"]);
}

#[tokio::test]
async fn rm_and_api_errors_as_the_aws_cli_prints_them() {
    let server = FakeLambda::start(|r| match r.target.as_str() {
        "/2015-03-31/functions/echo" => Reply {
            status: 204,
            headers: vec![],
            body: vec![],
        },
        _ => aws_error(
            404,
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
        ),
    })
    .await;
    let out = server.mayfly(&["rm", "echo"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Deleted function echo\n");
    let out = server.mayfly(&["rm", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "An error occurred (ResourceNotFoundException) when calling the DeleteFunction operation: \
         Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope\n"
    );
    assert_eq!(
        server.summary(),
        [
            "DELETE /2015-03-31/functions/echo",
            "DELETE /2015-03-31/functions/nope"
        ]
    );
}

fn invocation(id: &str, log: &str, init: Value) -> Value {
    json!({
        "requestId": id, "version": "$LATEST", "invocationType": "RequestResponse",
        "status": "success", "errorType": null, "startedAt": "2025-01-01T00:00:00Z",
        "durationMs": 12.5, "billedDurationMs": 13, "initDurationMs": init,
        "memorySizeMb": 128, "maxMemoryUsedMb": 4, "log": log,
    })
}

#[tokio::test]
async fn logs_as_text_and_json() {
    let server = FakeLambda::start(|_| {
        reply(200, json!({"Invocations": [invocation("new", "second\n", Value::Null), invocation("old", "first\n", json!(40.0))]}))
    })
    .await;
    let out = server.mayfly(&["logs", "echo", "--limit", "2"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "START RequestId: old Version: $LATEST\nfirst\nEND RequestId: old\n\
         REPORT RequestId: old\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 4 MB\tInit Duration: 40.00 ms\n\
         START RequestId: new Version: $LATEST\nsecond\nEND RequestId: new\n\
         REPORT RequestId: new\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 4 MB\n"
    );
    let out = server.mayfly(&["logs", "echo", "--json"]).await;
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            invocation("new", "second\n", Value::Null),
            invocation("old", "first\n", json!(40.0))
        ]
    );
    assert_eq!(
        server.summary(),
        [
            "GET /mayfly/2025-01-01/functions/echo/invocations?Limit=2",
            "GET /mayfly/2025-01-01/functions/echo/invocations"
        ]
    );
    let out = server.mayfly(&["logs", "echo", "--limit", "0"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn credentials_come_from_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, _) = mayfly_client::credentials::load_or_create(dir.path()).unwrap();
    let server = FakeLambda::start_with(creds, |_| reply(200, json!({"Functions": []}))).await;
    let endpoint = format!("http://{}", server.addr);
    let data_dir = dir.path().to_str().unwrap();
    let out = mayfly_command(&["ls", "--endpoint", &endpoint, "--data-dir", data_dir])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // MAYFLY_ENDPOINT stands in for --endpoint.
    let out = mayfly_command(&["ls", "--data-dir", data_dir])
        .env("MAYFLY_ENDPOINT", &endpoint)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 2);

    // The wrong secret is refused by the server, and said so.
    let out = mayfly_command(&["ls", "--endpoint", &endpoint])
        .env("MAYFLY_ACCESS_KEY_ID", &server.creds.access_key_id)
        .env("MAYFLY_SECRET_ACCESS_KEY", "wrong")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("An error occurred (InvalidSignatureException) when calling the ListFunctions operation: The request signature"),
        "{}",
        stderr(&out)
    );

    // No credentials at all: say how to get them, call nothing.
    let empty = tempfile::tempdir().unwrap();
    let out = mayfly_command(&[
        "ls",
        "--endpoint",
        &endpoint,
        "--data-dir",
        empty.path().to_str().unwrap(),
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("mayfly serve"), "{}", stderr(&out));
    assert_eq!(server.requests().len(), 3);

    // Nothing listening: a clear transport error.
    drop(server);
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = mayfly_command(&["ls", "--endpoint", &dead, "--data-dir", data_dir])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("could not call ListFunctions at"),
        "{}",
        stderr(&out)
    );
}
