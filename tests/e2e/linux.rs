//! Linux functions: an unmodified static Linux executable as `bootstrap`,
//! deployed through the AWS CLI and boto3, and `mayfly exec` of plain
//! static programs. The test programs (`linux_programs/`) are built here
//! with the host's Rust toolchain as static-pie (`+crt-static`).
//!
//! Deploy-time checks need no kernel image; the tests that run a program
//! boot `target/images/linux.elf` (`cargo xtask images`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;

use crate::support::command::{mayfly, mayfly_with};
use crate::support::fixtures::write_zip;
use crate::support::{payload_json, root, Options, Server};

/// `linux_programs/<name>.rs` built static (static-pie, glibc) into
/// `target/e2e-linux/`, once per test binary run.
pub(crate) fn program(name: &str) -> PathBuf {
    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let built = built.get_or_insert_with(HashMap::new);
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let source = root()
        .join("tests/e2e/linux_programs")
        .join(format!("{name}.rs"));
    let out_dir = root().join("target").join("e2e-linux");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(name);
    let status = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
        .args(["--edition", "2021", "-C", "target-feature=+crt-static"])
        .args(["-C", "opt-level=1", "-C", "debuginfo=0", "-o"])
        .arg(&out)
        .arg(&source)
        .status()
        .expect("run rustc");
    assert!(status.success(), "cannot build {}", source.display());
    built.insert(name.to_string(), out.clone());
    out
}

/// A zip of `bootstrap` (the program) and `data.txt`, in `dir`.
pub(crate) fn function_zip(dir: &Path, program: &Path) -> PathBuf {
    let zip = dir.join("linux-function.zip");
    let bytes = std::fs::read(program).unwrap();
    write_zip(
        &zip,
        &[("bootstrap", &bytes), ("data.txt", b"packaged data\n")],
    );
    zip
}

#[test]
fn a_static_linux_program_is_accepted_as_a_function_and_a_dynamic_one_refused() {
    let s = Server::start();
    // A minimal static ET_EXEC at 0x400000, as musl-gcc and Go link.
    let exec = mayfly_runner::testing::linux_elf(2, 0x40_0000, None);
    let zip = s.tmp().join("static.zip");
    write_zip(&zip, &[("bootstrap", &exec)]);
    let created = s.create("static-linux", &zip, &["--ephemeral-storage", "Size=2048"]);
    // Lambda-shaped: the runtime is what the user gave.
    assert_eq!(created["Runtime"], "provided.al2023", "{created}");
    assert_eq!(created["EphemeralStorage"]["Size"], 2048, "{created}");
    let got = s
        .aws(&["get-function", "--function-name", "static-linux"])
        .ok();
    assert_eq!(
        got["Configuration"]["EphemeralStorage"]["Size"], 2048,
        "{got}"
    );
    // The pack is written at upload, once per package.
    let packs: Vec<_> = std::fs::read_dir(s.data_dir.join("images"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".pack"))
        .collect();
    assert_eq!(packs.len(), 1, "one pack for the one Linux package");

    // The host's own shell is dynamically linked: refused, with the advice.
    let dynamic = std::fs::read("/bin/sh").unwrap();
    let zip = s.tmp().join("dynamic.zip");
    write_zip(&zip, &[("bootstrap", &dynamic)]);
    let message = s
        .create_raw("dynamic-linux", &zip, &[])
        .fails_with("InvalidParameterValueException");
    for advice in [
        "dynamically linked",
        "crt-static",
        "musl-gcc -static",
        "CGO_ENABLED=0",
    ] {
        assert!(message.contains(advice), "{advice}: {message}");
    }
    // Linked where the guest kernel lives: refused, saying how to link.
    let low = mayfly_runner::testing::linux_elf(2, 0x20_0000, None);
    write_zip(&zip, &[("bootstrap", &low)]);
    let message = s
        .create_raw("low-linux", &zip, &[])
        .fails_with("InvalidParameterValueException");
    assert!(message.contains("linked below 0x400000"), "{message}");
    // A package whose paths would escape /var/task.
    write_zip(&zip, &[("bootstrap", &exec), ("../escape", b"x")]);
    s.create_raw("escaping-linux", &zip, &[])
        .fails_with("InvalidParameterValueException");
    // Reserved environment keys, as Lambda refuses them.
    let message = s
        .create_raw(
            "reserved-env",
            &s.tmp().join("static.zip"),
            &["--environment", "Variables={AWS_REGION=eu-west-1}"],
        )
        .fails_with("InvalidParameterValueException");
    assert!(
        message.contains("Reserved keys used in this request: AWS_REGION"),
        "{message}"
    );
    // EphemeralStorage beyond Lambda's maximum.
    s.create_raw(
        "too-much-tmp",
        &s.tmp().join("static.zip"),
        &["--ephemeral-storage", "Size=10241"],
    )
    .fails_with("ValidationException");
    let list = s.aws(&["list-functions"]).ok();
    assert_eq!(
        crate::support::aws::function_names(&list),
        ["static-linux"],
        "refused packages are not stored"
    );
}

/// The host's side of a Linux function without the Linux kernel: the
/// native echo image stands in for `linux.elf` (`--linux-kernel`), so QEMU
/// boots it with the package's pack as `-initrd` (bound into the jail) and
/// it answers the runtime API as the real kernel's program would.
#[test]
fn a_linux_package_boots_the_linux_kernel_with_its_pack_through_the_api_and_mayfly_run() {
    let stand_in = crate::support::image_path("echo.elf");
    let s = Server::start_with(Options {
        extra_args: vec!["--linux-kernel".into(), stand_in.display().to_string()],
        ..Options::default()
    });
    let exec = mayfly_runner::testing::linux_elf(2, 0x40_0000, None);
    let zip = s.tmp().join("static.zip");
    write_zip(&zip, &[("bootstrap", &exec), ("data.txt", b"x")]);
    s.create("linux-plumbing", &zip, &[]);
    let (out, payload) = s.invoke("linux-plumbing", &["--payload", r#"{"via":"initrd"}"#]);
    assert!(out.get("FunctionError").is_none(), "{out}");
    assert_eq!(payload_json(&payload), serde_json::json!({"via": "initrd"}));
    // The server said which kernel Linux functions boot.
    assert!(s.log().contains("Linux functions boot"), "{}", s.log());
    s.assert_no_qemu();

    let run = mayfly()
        .arg("run")
        .arg(&zip)
        .args(["--event", r#"{"b":2}"#, "--linux-kernel"])
        .arg(&stand_in)
        .output()
        .expect("run mayfly run");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), r#"{"b":2}"#);
}

#[test]
fn mayfly_exec_refuses_what_is_not_a_static_linux_program() {
    let run = mayfly_with(&["exec", "/bin/sh"]);
    assert_eq!(run.code, 125, "{}", run.stderr);
    assert!(run.stderr.contains("crt-static"), "{}", run.stderr);
    let run = mayfly_with(&["exec", "/nonexistent/program"]);
    assert_eq!(run.code, 125, "{}", run.stderr);
    let help = mayfly_with(&["exec", "--help"]);
    assert!(help.stdout.contains("--dir"), "{}", help.stdout);
}

#[test]
fn a_rust_std_runtime_loop_answers_through_the_aws_cli() {
    let s = Server::start();
    let zip = function_zip(s.tmp(), &program("runtime_loop"));
    s.create(
        "linux-echo",
        &zip,
        &[
            "--environment",
            "Variables={GREETING=Hi}",
            "--memory-size",
            "256",
        ],
    );
    let (out, payload) = s.invoke(
        "linux-echo",
        &["--payload", r#"{"hello":"linux"}"#, "--log-type", "Tail"],
    );
    assert_eq!(
        payload_json(&payload),
        serde_json::json!({"hello": "linux"}),
        "{out}"
    );
    assert!(out.get("FunctionError").is_none(), "{out}");
    // Lambda's environment, the function's own, the package's files.
    let (_, payload) = s.invoke("linux-echo", &["--payload", r#"{"mode":"env"}"#]);
    let env: Value = payload_json(&payload);
    assert_eq!(env["name"], "linux-echo", "{env}");
    assert_eq!(env["version"], "$LATEST", "{env}");
    assert_eq!(env["memory"], "256", "{env}");
    assert_eq!(env["root"], "/var/task", "{env}");
    assert_eq!(env["api"], "10.0.2.2:9001", "{env}");
    assert_eq!(env["handler"], "bootstrap", "{env}");
    assert_eq!(env["region"], "us-east-1", "{env}");
    assert_eq!(env["exec_env"], "AWS_Lambda_provided.al2023", "{env}");
    assert_eq!(env["greeting"], "Hi", "{env}");
    assert_eq!(env["data"], "packaged data", "{env}");
    assert_eq!(
        env["first"], "AWS_LAMBDA_RUNTIME_API,AWS_LAMBDA_FUNCTION_NAME,AWS_LAMBDA_FUNCTION_VERSION",
        "{env}"
    );
    s.assert_no_qemu();
}

#[test]
fn a_linux_function_that_exits_or_faults_is_a_runtime_exit_error() {
    let s = Server::start();
    let zip = function_zip(s.tmp(), &program("runtime_loop"));
    s.create("linux-ends", &zip, &[]);
    let (out, payload) = s.invoke("linux-ends", &["--payload", r#"{"mode":"exit"}"#]);
    assert_eq!(out["FunctionError"], "Unhandled", "{out}");
    let error = payload_json(&payload);
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    assert_eq!(
        error["errorMessage"], "Runtime exited with error: exit status 3",
        "{error}"
    );
    let (_, payload) = s.invoke("linux-ends", &["--payload", r#"{"mode":"segv"}"#]);
    let error = payload_json(&payload);
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    assert_eq!(
        error["errorMessage"], "Runtime exited with error: signal: segmentation fault",
        "{error}"
    );
    s.assert_no_qemu();
}

#[test]
fn a_linux_function_answers_boto3_and_a_bare_binary_deploys_with_mayfly_deploy() {
    let s = Server::start();
    let binary = program("runtime_loop");
    // `mayfly deploy NAME binary` zips it as `bootstrap`.
    let out = mayfly()
        .args(["deploy", "linux-deployed"])
        .arg(&binary)
        .args(["--endpoint", &s.endpoint(), "--data-dir"])
        .arg(&s.data_dir)
        .env("MAYFLY_ACCESS_KEY_ID", &s.access_key_id)
        .env("MAYFLY_SECRET_ACCESS_KEY", &s.secret_access_key)
        .output()
        .expect("run mayfly deploy");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = s.tmp().join("linux_boto3.py");
    std::fs::write(
        &script,
        r#"
import json, os, boto3
from botocore.config import Config
c = boto3.client("lambda", endpoint_url=os.environ["MAYFLY_ENDPOINT"], region_name="us-east-1",
    aws_access_key_id=os.environ["MAYFLY_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["MAYFLY_SECRET_ACCESS_KEY"],
    config=Config(retries={"max_attempts": 0}))
r = c.invoke(FunctionName="linux-deployed", Payload=json.dumps({"via": "boto3"}))
body = json.loads(r["Payload"].read())
assert body == {"via": "boto3"}, body
assert "FunctionError" not in r, r
print("boto3 invoke of a Linux function: ok")
"#,
    )
    .unwrap();
    let out = std::process::Command::new("python3.11")
        .arg(&script)
        .env("MAYFLY_ENDPOINT", s.endpoint())
        .env("MAYFLY_ACCESS_KEY_ID", &s.access_key_id)
        .env("MAYFLY_SECRET_ACCESS_KEY", &s.secret_access_key)
        .output()
        .expect("run python3.11");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.assert_no_qemu();
}

/// `mayfly exec <probe> ARGS` with `--dir` holding `input.txt`.
fn exec_probe(args: &[&str], extra: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), b"from the host\n").unwrap();
    mayfly()
        .arg("exec")
        .arg(program("exec_probe"))
        .args(args)
        .arg("--dir")
        .arg(dir.path())
        .args(extra)
        .env("TMPDIR", dir.path())
        .output()
        .expect("run mayfly exec")
}

#[test]
fn mayfly_exec_passes_output_and_the_exit_status_through() {
    let out = exec_probe(&["exit", "7"], &["--env", "PROBE=yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stdout}\n{stderr}");
    assert!(stdout.contains("args: exec_probe exit 7"), "{stdout}");
    assert!(stdout.contains("cwd: /var/task"), "{stdout}");
    assert!(stdout.contains("task root: /var/task"), "{stdout}");
    assert!(stdout.contains("probe: yes"), "{stdout}");
    assert!(stdout.contains("input: from the host"), "{stdout}");
    assert!(stdout.contains("tmp: written to /tmp"), "{stdout}");
    // The kernel's own lines are on stderr, not mixed into the output.
    assert!(!stdout.contains("mayfly: "), "{stdout}");
    assert!(
        stderr.contains("mayfly: process exited with status 7"),
        "{stderr}"
    );
}

#[test]
fn mayfly_exec_of_a_segfault_exits_139_and_a_timeout_124() {
    let out = exec_probe(&["segv"], &[]);
    assert_eq!(
        out.status.code(),
        Some(139),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = exec_probe(&["sleep"], &["--timeout", "2"]);
    assert_eq!(out.status.code(), Some(124));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 2 s"));
}
