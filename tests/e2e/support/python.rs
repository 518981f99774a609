//! The boto3 scripts of `tests/api/` against a [`Server`]: each asserts,
//! prints what it checks and exits non-zero on the first failure
//! (`tests/api/mayfly_test.py` describes the environment they get).

use std::process::{Command, Output};
use std::time::Instant;

use super::root;
use super::server::Server;

impl Server {
    /// `python3.11 tests/api/<script>` with the endpoint, credentials,
    /// images and directories of this server in a clean AWS environment;
    /// not yet started.
    pub fn python_command(&self, script: &str) -> Command {
        let mut cmd = Command::new("python3.11");
        self.aws_env(&mut cmd);
        cmd.arg(root().join("tests").join("api").join(script))
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            .env("MAYFLY_ENDPOINT", self.endpoint())
            .env("MAYFLY_ACCESS_KEY_ID", &self.access_key_id)
            .env("MAYFLY_SECRET_ACCESS_KEY", &self.secret_access_key)
            .env("MAYFLY_IMAGES", root().join("target").join("images"))
            .env("MAYFLY_TMP", self.tmp())
            .env("MAYFLY_DATA_DIR", &self.data_dir);
        if let Some(m) = self.metrics_addr {
            cmd.env("MAYFLY_METRICS", format!("http://{m}"));
        }
        cmd
    }

    /// Runs `python3.11 tests/api/<script> ARGS` (see
    /// [`Server::python_command`]); asserts that it exits 0, printing its
    /// output either way.
    pub fn python(&self, script: &str, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = self
            .python_command(script)
            .args(args)
            .output()
            .expect("run python3.11");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!(
            "--- {script} ({:.1} s) stdout:\n{stdout}\n--- stderr:\n{stderr}",
            started.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success(),
            "{script} failed ({}):\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}",
            out.status,
        );
        out
    }
}
