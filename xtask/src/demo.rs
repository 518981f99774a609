//! The main job: build everything, start `mayfly serve` with the example
//! functions deployed, invoke each once (a fresh VM every time) and show
//! what it answered and how long it took, then keep serving until Ctrl-C.
//! `--once` stops the host after the examples.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{bootstrap, images, util};

/// Where the demo host listens: the service's default address.
const LISTEN: &str = "127.0.0.1:9000";

/// One example function and the event it is invoked with.
struct Example {
    name: &'static str,
    image: &'static str,
    event: &'static str,
    env: &'static [&'static str],
    /// An example Linux function (examples/linux/): its package is a static
    /// Linux program, which a host without the Linux personality refuses
    /// at deploy. Such a failure, at deploy or at invoke, is shown and the
    /// demo goes on; for a native example it ends the demo.
    linux: bool,
}

const EXAMPLES: &[Example] = &[
    Example {
        name: "echo",
        image: "echo",
        event: r#"{"a":1}"#,
        env: &[],
        linux: false,
    },
    Example {
        name: "hello",
        image: "hello",
        event: r#"{"name":"Ada"}"#,
        env: &["GREETING=Hi"],
        linux: false,
    },
    Example {
        name: "wordcount",
        image: "wordcount",
        event: r#"{"text":"the quick brown fox jumps over the lazy dog; the dog sleeps, the fox runs"}"#,
        env: &[],
        linux: false,
    },
    Example {
        name: "misbehave",
        image: "misbehave",
        event: r#"{"mode":"state"}"#,
        env: &[],
        linux: false,
    },
    // The same echo as an unmodified static Linux program: the official
    // lambda_runtime crate's basic example, and a C loop on plain sockets.
    Example {
        name: "rust-echo",
        image: "rust-echo",
        event: r#"{"a":1}"#,
        env: &[],
        linux: true,
    },
    Example {
        name: "c-echo",
        image: "c-echo",
        event: r#"{"a":1}"#,
        env: &[],
        linux: true,
    },
];

/// The last line a failed command wrote to stderr (its error).
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
        .trim()
        .to_string()
}

/// Kills the host if the demo fails half-way.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        // Our own child, reaped just below.
        crate::sys::terminate(&self.0);
        let _ = self.0.wait();
    }
}

fn wait_until_healthy(host: &mut Host) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = host.0.try_wait()? {
            bail!("mayfly serve exited ({status}) before it was ready; is {LISTEN} in use?");
        }
        if let Ok(mut stream) = std::net::TcpStream::connect(LISTEN) {
            use std::io::{Read, Write};
            let _ = stream.write_all(b"GET /healthz HTTP/1.0\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("mayfly serve did not answer /healthz within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mayfly_cli(mayfly: &Path, data_dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new(mayfly)
        .args(args)
        .args(["--endpoint", &format!("http://{LISTEN}")])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .with_context(|| format!("cannot run {}", mayfly.display()))
}

/// Runs the demo; `--once` stops after the examples.
pub fn run(args: &[String]) -> Result<()> {
    let once = match args {
        [] => false,
        [flag] if flag == "--once" => true,
        _ => bail!("usage: cargo xtask demo [--once]"),
    };
    bootstrap::ensure_host_tools()?;
    images::build()?;
    let mayfly = util::build_mayfly()?;
    let data_dir = util::root().join(".mayfly");
    eprintln!(
        "xtask: starting mayfly serve on {LISTEN} (data in {})",
        data_dir.display()
    );
    let child = Command::new(&mayfly)
        .args(["serve", "--listen", LISTEN, "--data-dir"])
        .arg(&data_dir)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start mayfly serve")?;
    let mut host = Host(child);
    wait_until_healthy(&mut host)?;

    println!();
    for example in EXAMPLES {
        let package = util::images_dir().join(format!("{}.zip", example.image));
        let mut deploy = vec![
            "deploy",
            example.name,
            package.to_str().context("path is not UTF-8")?,
        ];
        for kv in example.env {
            deploy.extend(["--env", kv]);
        }
        let out = mayfly_cli(&mayfly, &data_dir, &deploy)?;
        if !out.status.success() && example.linux {
            println!("$ mayfly deploy {} {}", example.name, package.display());
            println!(
                "  -> not deployed (a Linux function; this host may not run them yet): {}",
                last_line(&out.stderr)
            );
            continue;
        }
        if !out.status.success() {
            bail!(
                "deploying {} failed: {}",
                example.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let started = Instant::now();
        let out = mayfly_cli(
            &mayfly,
            &data_dir,
            &["invoke", example.name, "--event", example.event, "--tail"],
        )?;
        let elapsed = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let report = stderr
            .lines()
            .find(|l| l.starts_with("REPORT"))
            .unwrap_or("(no REPORT line)");
        println!(
            "$ mayfly invoke {} --event '{}'",
            example.name, example.event
        );
        println!("  -> {}", String::from_utf8_lossy(&out.stdout).trim_end());
        if !out.status.success() {
            println!("  failed ({}): {}", out.status, last_line(&out.stderr));
        }
        println!(
            "  {:.1} ms round trip; {}",
            elapsed.as_secs_f64() * 1000.0,
            report.replace('\t', "  ")
        );
    }
    println!();
    println!("The host is serving the Lambda API on http://{LISTEN}; for example:");
    println!("  export AWS_SHARED_CREDENTIALS_FILE={}/credentials AWS_PROFILE=mayfly AWS_DEFAULT_REGION=us-east-1", data_dir.display());
    println!("  aws lambda list-functions --endpoint-url http://{LISTEN}");
    println!("  aws lambda invoke --endpoint-url http://{LISTEN} --function-name hello --payload '{{\"name\":\"Ada\"}}' out.json");
    println!(
        "  target/release/mayfly invoke wordcount --event '{{\"text\":\"a b a\"}}' --data-dir {}",
        data_dir.display()
    );
    if once {
        return Ok(());
    }
    println!("Ctrl-C stops it.");
    let status = host.0.wait()?;
    std::mem::forget(host);
    if !status.success() {
        bail!("mayfly serve ended with {status}");
    }
    Ok(())
}
