//! `cargo xtask <task>`: Mayfly's build, bootstrap, demo, test and
//! benchmark tasks, in Rust so that nothing beyond cargo is needed.

#![deny(unsafe_code)]

mod bench;
mod bench_iso;
mod bootstrap;
mod demo;
mod floor;
mod fuzz;
mod images;
#[allow(unsafe_code)]
mod sys;
mod util;

use anyhow::{bail, Result};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  bootstrap   install QEMU (qemu-system-x86), musl-gcc (musl-tools), Go
              (golang-go) and PostgreSQL (postgresql) if they are missing
  images      build every function image into target/images/<name>.{elf,zip},
              the kernel for Linux functions (linux.elf) and the example Linux
              functions (examples/linux/) into target/images/<name>{,.zip}
  lint-guest  cargo fmt --check and clippy -D warnings on the kernel and the
              images, with the guest's target and flags
  demo        build everything, start `mayfly serve` with the example functions,
              invoke each once, keep serving until Ctrl-C (`--once`: stop after)
  test        bootstrap (QEMU, musl-gcc, Go, PostgreSQL, and the AWS CLI and
              boto3 the tests drive), build the images, run every test
  bench-run   time `mayfly run` echo against the QEMU floor (20 runs each)
  bench       the isolation-overhead benchmark: every row, report in target/bench/
              (--quick: a reduced run; --only wordcount: the CPU-bound word count
              at 1,769 MB against 3,538 MB alone)
  fuzz        coverage-guided runs of every fuzz target in fuzz/ with libFuzzer
              (cargo-bolero, installed when missing); --seconds N in all
              (default 600), or name targets to run only those
";

fn main() {
    if let Err(e) = run() {
        eprintln!("xtask: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    match task.as_str() {
        "bootstrap" => bootstrap::ensure_host_tools(),
        "images" => images::build().map(|_| ()),
        "lint-guest" => images::lint(),
        "demo" => demo::run(rest),
        "test" => test(rest),
        "bench-run" => bench::run(rest),
        "bench" => bench_iso::run(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown task `{other}`\n\n{USAGE}"),
    }
}

/// Everything the test suite needs, then the suite itself: extra arguments
/// go to `cargo test`.
fn test(extra: &[String]) -> Result<()> {
    bootstrap::ensure_host_tools()?;
    bootstrap::ensure_aws_clients()?;
    images::build()?;
    let mut args = vec!["test", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    util::cargo(&args)
}
