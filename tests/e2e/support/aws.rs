//! The real AWS CLI (`aws lambda …`, v1) against a [`Server`], and what it
//! printed.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::server::{Server, ACCOUNT, REGION, ROLE};

/// `arn:aws:lambda:us-east-1:000000000000:function:NAME`.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
}

/// The `FunctionName`s of a `list-functions` answer, in its order.
pub fn function_names(list: &Value) -> Vec<String> {
    list["Functions"]
        .as_array()
        .unwrap_or_else(|| panic!("no Functions: {list}"))
        .iter()
        .map(|f| f["FunctionName"].as_str().unwrap().to_string())
        .collect()
}

/// Removes every `AWS_*` / `BOTO_*` variable of this machine from `cmd`,
/// and turns retries and the pager off.
pub fn clean_aws_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("AWS_") || k.starts_with("BOTO") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_PAGER", "")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_RETRY_MODE", "standard")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

impl Server {
    /// A clean AWS environment for an AWS client of this server: none of
    /// this machine's `AWS_*` settings, and empty config and credentials
    /// files of the server's own.
    pub fn aws_env(&self, cmd: &mut Command) {
        clean_aws_env(cmd);
        cmd.env("AWS_CONFIG_FILE", self.tmp().join("aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.tmp().join("aws-credentials"),
            );
    }

    /// Runs `aws lambda ARGS --endpoint-url … --region us-east-1 --output
    /// json` with the server's credentials.
    pub fn aws(&self, args: &[&str]) -> Cli {
        self.aws_as(&self.access_key_id, &self.secret_access_key, args)
    }

    /// The same with another key pair.
    pub fn aws_as(&self, key: &str, secret: &str, args: &[&str]) -> Cli {
        let mut cmd = self.aws_command();
        cmd.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
        cmd.args(args);
        Cli::run(cmd, args)
    }

    /// Runs `aws SERVICE ARGS --endpoint-url …` (`scheduler`: EventBridge
    /// Scheduler's operations, served on the same endpoint) with the
    /// server's credentials.
    pub fn aws_service(&self, service: &str, args: &[&str]) -> Cli {
        let mut cmd = self.aws_command_for(service);
        cmd.env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key);
        cmd.args(args);
        Cli::run(cmd, args)
    }

    /// A bare `aws lambda … --endpoint-url … --region … --output json`
    /// command with a clean AWS environment (no credentials set).
    pub fn aws_command(&self) -> Command {
        self.aws_command_for("lambda")
    }

    /// The same for another service.
    pub fn aws_command_for(&self, service: &str) -> Command {
        let mut cmd = Command::new("aws");
        self.aws_env(&mut cmd);
        cmd.arg(service)
            .arg("--endpoint-url")
            .arg(self.endpoint())
            .arg("--region")
            .arg(REGION)
            .arg("--output")
            .arg("json");
        cmd
    }

    /// `aws lambda create-function` of a zip (`provided.al2023`, handler
    /// `bootstrap`, the tests' role) with the given extra arguments, which
    /// may override those; asserts nothing.
    pub fn create_raw(&self, name: &str, zip: &Path, extra: &[&str]) -> Cli {
        let code = format!("fileb://{}", zip.display());
        let mut args = vec![
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "provided.al2023",
            "--handler",
            "bootstrap",
            "--role",
            ROLE,
            "--zip-file",
            &code,
        ];
        args.extend_from_slice(extra);
        self.aws(&args)
    }

    /// `aws lambda create-function` of `target/images/<image>.zip` (or any
    /// zip path) with the given extra arguments; asserts success.
    pub fn create(&self, name: &str, zip: &Path, extra: &[&str]) -> Value {
        self.create_raw(name, zip, extra).ok()
    }

    /// `aws lambda invoke` writing the payload to a file; asserts success
    /// and returns the CLI's JSON output and the payload.
    pub fn invoke(&self, name: &str, extra: &[&str]) -> (Value, Vec<u8>) {
        let (cli, payload) = self.invoke_raw(name, extra);
        (cli.ok(), payload)
    }

    /// `aws lambda invoke` without asserting success.
    pub fn invoke_raw(&self, name: &str, extra: &[&str]) -> (Cli, Vec<u8>) {
        self.invoke_raw_as(&self.access_key_id, &self.secret_access_key, name, extra)
    }

    /// The same with another key pair.
    pub fn invoke_raw_as(
        &self,
        key: &str,
        secret: &str,
        name: &str,
        extra: &[&str],
    ) -> (Cli, Vec<u8>) {
        let outfile = tempfile::NamedTempFile::new_in(self.tmp()).unwrap();
        let outpath = outfile.path().to_str().unwrap().to_string();
        let mut args = vec!["invoke", "--function-name", name];
        args.extend_from_slice(extra);
        args.push(&outpath);
        let cli = self.aws_as(key, secret, &args);
        let payload = std::fs::read(outfile.path()).unwrap_or_default();
        (cli, payload)
    }
}

/// What one `aws` command did.
#[derive(Debug)]
pub struct Cli {
    /// The arguments after `aws lambda …`.
    pub args: Vec<String>,
    /// Exit status code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Cli {
    fn run(mut cmd: Command, args: &[&str]) -> Cli {
        let out = cmd
            .output()
            .expect("run aws (the AWS CLI v1 must be installed)");
        Cli {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn describe(&self) -> String {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                if a.len() > 200 {
                    format!("{}…({} bytes)", &a[..60], a.len())
                } else {
                    a.clone()
                }
            })
            .collect();
        format!(
            "aws lambda {}\nexit {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    /// Asserts success and returns stdout as JSON (`Null` when empty).
    pub fn ok(&self) -> Value {
        assert_eq!(self.code, 0, "the AWS CLI failed:\n{}", self.describe());
        if self.stdout.trim().is_empty() {
            return Value::Null;
        }
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    /// Asserts failure with `An error occurred (CODE) when calling the …
    /// operation: …` and returns the message after the colon.
    pub fn fails_with(&self, code: &str) -> String {
        self.fails_with_any(&[code])
    }

    /// As [`Cli::fails_with`], accepting any of several error codes.
    pub fn fails_with_any(&self, codes: &[&str]) -> String {
        assert_ne!(
            self.code,
            0,
            "expected {codes:?}, but the AWS CLI succeeded:\n{}",
            self.describe()
        );
        let found = codes.iter().find(|c| {
            self.stderr
                .contains(&format!("An error occurred ({c}) when calling the "))
        });
        assert!(
            found.is_some(),
            "expected `An error occurred ({codes:?}) when calling the …`:\n{}",
            self.describe()
        );
        // `… when calling the Op operation[ (reached max retries: 0)]: message`
        let message = self
            .stderr
            .split_once(" when calling the ")
            .and_then(|(_, rest)| rest.split_once(" operation"))
            .map(|(_, rest)| match rest.strip_prefix(" (") {
                Some(r) => r.split_once(')').map_or("", |(_, r)| r),
                None => rest,
            })
            .and_then(|rest| rest.strip_prefix(": "))
            .map(|m| m.trim().to_string())
            .unwrap_or_default();
        assert!(
            !message.is_empty(),
            "the error has no message:\n{}",
            self.describe()
        );
        message
    }
}
