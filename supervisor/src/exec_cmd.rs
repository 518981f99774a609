//! `mayfly exec`: a plain static Linux program (not a function) in a
//! fresh VM, its output passed through as it arrives, its exit status
//! ours.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mayfly_client::commands::{check_memory, check_timeout, parse_env};
use mayfly_proto::console::KERNEL_PREFIX;
use mayfly_proto::limits;
use mayfly_runner::elf::linux_program;
use mayfly_runner::linux::{self, exec_env, LinuxBoot};
use mayfly_runner::pack::{PackBuilder, RUNTIME_DIR, TASK_DIR};
use mayfly_runner::{EgressPlan, RunError, VmTemplate};
use mayfly_vm::accel;
use mayfly_vm::run::{self, ExecEnd};

use crate::jail_arg::JailArg;
use crate::AccelArg;

/// Exit status when the program was still running at its timeout (as
/// `timeout(1)`).
const EXIT_TIMED_OUT: u8 = 124;
/// Exit status when Mayfly itself failed (bad input, no kernel image, the
/// VM failing), as `docker run` does.
const EXIT_MAYFLY: u8 = 125;
/// Exit status after Ctrl-C (128 + SIGINT).
const EXIT_INTERRUPTED: u8 = 130;
/// Exit status of a program that ran out of memory: 128 + SIGKILL, as
/// Linux's OOM killer leaves it.
const EXIT_OUT_OF_MEMORY: u8 = 137;

/// `mayfly exec`'s arguments.
#[derive(Debug, Args)]
#[command(after_help = "\
The program runs as /var/runtime/<its name>, with its name as argv[0], in \
/var/task (HOST_DIR's files, read-only, when --dir is given), with a \
writable /tmp. Its output (stdout and stderr: the VM has one console) goes \
to stdout as it arrives; the kernel's own `mayfly: ` lines go to stderr. \
The exit status is the program's (128 + the signal for a fault: 139 for a \
segmentation fault), 124 at the timeout, 137 out of memory, 125 when Mayfly \
itself failed. Put `--` before arguments that start with `-`.")]
pub struct ExecArgs {
    /// The program: a static x86_64 Linux executable.
    program: PathBuf,
    /// Its arguments.
    args: Vec<String>,
    /// Memory of the VM in MB (128 to 10240).
    #[arg(long, value_name = "MB", default_value_t = limits::DEFAULT_MEMORY_MB)]
    memory: u32,
    /// Timeout in seconds (1 to 900), from the VM's start.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u32,
    /// An environment variable for the program; repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// A host directory, the program's read-only working directory
    /// /var/task (copied into the VM's package; at most 250 MB).
    #[arg(long, value_name = "HOST_DIR")]
    dir: Option<PathBuf>,
    /// The Linux kernel image (default: target/images/linux.elf beside
    /// this binary, or $MAYFLY_LINUX_KERNEL).
    #[arg(long, value_name = "PATH")]
    linux_kernel: Option<PathBuf>,
    /// Accelerator.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// The jail around QEMU.
    #[arg(long, value_enum, default_value_t = JailArg::Auto)]
    jail: JailArg,
    /// A destination the program may connect to, relayed by the host:
    /// CIDR[:PORTS] or NAME[:PORTS], `host.mayfly.internal[:PORTS]` for
    /// the host's loopback (the program connects to 10.0.2.2); repeatable.
    /// Default: none.
    #[arg(long = "egress", value_name = "RULE")]
    egress: Vec<String>,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    say!("mayfly: error: {message}");
    ExitCode::from(EXIT_MAYFLY)
}

/// The program's name in the VM: its file name.
fn program_name(program: &Path) -> Result<String, String> {
    let name = program
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| mayfly_proto::pack::is_clean_path(n))
        .ok_or_else(|| format!("{}: the program needs a UTF-8 file name", program.display()))?;
    Ok(name.to_string())
}

/// The pack `mayfly exec` boots: the program at `var/runtime/<name>` and
/// `dir`'s tree (or nothing) at `var/task`, written to `out`.
fn write_pack(program: &Path, name: &str, dir: Option<&Path>, out: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(program).map_err(|e| format!("{}: {e}", program.display()))?;
    let mut builder = PackBuilder::new(limits::UNZIPPED_PACKAGE_BYTES);
    let packed = |e: mayfly_runner::pack::PackWriteError| e.to_string();
    builder
        .add_host_file(&format!("{RUNTIME_DIR}/{name}"), 0o755, meta.len(), program)
        .map_err(packed)?;
    match dir {
        Some(dir) => builder
            .add_host_dir(dir, TASK_DIR)
            .map_err(|e| format!("--dir {}: {e}", dir.display()))?,
        None => builder.add_dir(TASK_DIR, 0o755).map_err(packed)?,
    }
    builder.add_name_service().map_err(packed)?;
    let mut file =
        std::fs::File::create(out).map_err(|e| format!("cannot write the package: {e}"))?;
    builder.write_host(&mut file).map_err(packed)?;
    use std::os::unix::fs::PermissionsExt;
    // A jailed VM's uid reads it through a bind mount.
    std::fs::set_permissions(out, std::fs::Permissions::from_mode(0o444))
        .map_err(|e| format!("cannot write the package: {e}"))?;
    Ok(())
}

/// Runs `mayfly exec`.
pub async fn exec(args: ExecArgs) -> ExitCode {
    let memory_mb = match check_memory(args.memory) {
        Ok(mb) => mb,
        Err(e) => return fail(e),
    };
    let timeout_s = match check_timeout(args.timeout) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let env = match parse_env(&args.env) {
        Ok(env) => env,
        Err(e) => return fail(e),
    };
    let egress = match mayfly_egress::Rules::parse_each(args.egress.iter().map(String::as_str)) {
        Ok(rules) => Some(EgressPlan {
            host: rules,
            ..EgressPlan::none()
        }),
        Err(e) => return fail(format!("--egress: {e}")),
    };
    let checked = std::fs::File::open(&args.program).and_then(|mut file| {
        let len = file.metadata()?.len();
        Ok(linux_program(&mut file, len))
    });
    match checked {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return fail(format!("{} cannot run: it is {e}", args.program.display())),
        Err(e) => return fail(format!("cannot read {}: {e}", args.program.display())),
    }
    let name = match program_name(&args.program) {
        Ok(name) => name,
        Err(e) => return fail(e),
    };
    let kernel = match linux::find_kernel(args.linux_kernel.as_deref()) {
        Ok(kernel) => kernel,
        Err(e) => return fail(e),
    };
    let temp = match tempfile::Builder::new().prefix("mayfly-exec-").tempdir() {
        Ok(temp) => temp,
        Err(e) => return fail(format!("cannot make a temporary directory: {e}")),
    };
    let pack = temp.path().join("exec.pack");
    if let Err(e) = write_pack(&args.program, &name, args.dir.as_deref(), &pack) {
        return fail(e);
    }
    let choice = match accel::detect(args.accel.into()) {
        Ok(choice) => choice,
        Err(e) => return fail(e),
    };
    let jail = match crate::jail_arg::detect(args.jail, choice.accel) {
        Ok(jail) => jail,
        Err(e) => return fail(e),
    };
    let mut argv = vec![name.clone()];
    argv.extend(args.args.iter().cloned());
    let template = VmTemplate {
        image: kernel,
        linux: Some(LinuxBoot {
            pack,
            program: format!("/{RUNTIME_DIR}/{name}"),
            args: argv,
            tmp_mb: limits::DEFAULT_EPHEMERAL_MB,
            lambda: None,
        }),
        memory_mb,
        env: exec_env(&env),
        function_name: name,
        function_version: "$LATEST".into(),
        egress,
    };
    let (console_tx, mut console_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let printer = tokio::spawn(async move {
        let mut split = ConsoleSplit::default();
        while let Some(chunk) = console_rx.recv().await {
            write_out(split.push(&chunk));
        }
        write_out(split.finish());
    });
    let interrupted = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let timeout = Duration::from_secs(timeout_s.into());
    let result = run::exec_in(
        &template,
        choice.accel,
        &jail,
        timeout,
        console_tx,
        interrupted,
    )
    .await;
    // The console's sender is gone with the VM: the printer ends.
    let _ = printer.await;
    drop(temp);
    match result {
        Ok(outcome) => match outcome.end {
            ExecEnd::Process(Some(end)) => ExitCode::from(end.shell_status().clamp(0, 255) as u8),
            ExecEnd::Process(None) => fail("the program ended, but the kernel did not say how"),
            ExecEnd::OutOfMemory => {
                say!("mayfly: the program ran out of memory ({memory_mb} MB); the VM was killed");
                ExitCode::from(EXIT_OUT_OF_MEMORY)
            }
            ExecEnd::TimedOut(after) => {
                say!(
                    "mayfly: timed out after {} s; the VM was killed",
                    after.as_secs()
                );
                ExitCode::from(EXIT_TIMED_OUT)
            }
            ExecEnd::VmFailed(message) => fail(message),
        },
        Err(RunError::Cancelled) => {
            say!("mayfly: interrupted; the VM was killed");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(e) => fail(e),
    }
}

fn write_out(pieces: Vec<(Stream, Vec<u8>)>) {
    for (stream, bytes) in pieces {
        let _ = match stream {
            Stream::Out => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes).and_then(|()| out.flush())
            }
            Stream::Err => std::io::stderr().lock().write_all(&bytes),
        };
    }
}

/// Where a piece of the console goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    /// The program's output.
    Out,
    /// The kernel's own lines.
    Err,
}

/// Splits the console into the program's output (stdout) and the
/// kernel's `mayfly: ` lines (stderr), passing bytes on as soon as it is
/// known where they go: a line is held back only while its first bytes
/// could still be the kernel's prefix.
#[derive(Debug, Default)]
struct ConsoleSplit {
    /// The current line's stream, once known.
    line: Option<Stream>,
    /// The current line's first bytes, while that is not known.
    start: Vec<u8>,
}

impl ConsoleSplit {
    fn push(&mut self, mut data: &[u8]) -> Vec<(Stream, Vec<u8>)> {
        let mut out: Vec<(Stream, Vec<u8>)> = Vec::new();
        let mut emit = |stream: Stream, bytes: &[u8]| match out.last_mut() {
            Some((s, b)) if *s == stream => b.extend_from_slice(bytes),
            _ => out.push((stream, bytes.to_vec())),
        };
        while !data.is_empty() {
            match self.line {
                Some(stream) => {
                    let end = data.iter().position(|&b| b == b'\n').map(|n| n + 1);
                    let (now, rest) = data.split_at(end.unwrap_or(data.len()));
                    emit(stream, now);
                    if end.is_some() {
                        self.line = None;
                    }
                    data = rest;
                }
                None => {
                    let prefix = KERNEL_PREFIX.as_bytes();
                    let want = prefix.len() - self.start.len();
                    let take = data
                        .iter()
                        .take(want)
                        .position(|&b| b == b'\n')
                        .map_or(want.min(data.len()), |n| n + 1);
                    self.start.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    let stream = if self.start == prefix {
                        Stream::Err
                    } else if prefix.starts_with(&self.start) {
                        // Could still be the kernel's: wait for more.
                        continue;
                    } else {
                        Stream::Out
                    };
                    emit(stream, &self.start);
                    let ended = self.start.ends_with(b"\n");
                    self.start.clear();
                    self.line = (!ended).then_some(stream);
                }
            }
        }
        out
    }

    /// What is held back at the console's end.
    fn finish(&mut self) -> Vec<(Stream, Vec<u8>)> {
        if self.start.is_empty() {
            return Vec::new();
        }
        vec![(Stream::Out, std::mem::take(&mut self.start))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;

    fn split_all(chunks: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        let mut split = ConsoleSplit::default();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut pieces = Vec::new();
        for chunk in chunks {
            pieces.extend(split.push(chunk));
        }
        pieces.extend(split.finish());
        for (stream, bytes) in pieces {
            match stream {
                Stream::Out => out.extend(bytes),
                Stream::Err => err.extend(bytes),
            }
        }
        (out, err)
    }

    #[test]
    fn kernel_lines_go_to_stderr_and_the_rest_to_stdout() {
        let console = b"hello\nmayfly: unsupported syscall foo (1)\nmay I?\nmayfly: process exited with status 0\npartial";
        let (out, err) = split_all(&[console]);
        assert_eq!(out, b"hello\nmay I?\npartial");
        assert_eq!(
            err,
            b"mayfly: unsupported syscall foo (1)\nmayfly: process exited with status 0\n"
        );
        // The same, a byte at a time.
        let bytes: Vec<&[u8]> = console.chunks(1).collect();
        assert_eq!(split_all(&bytes), (out, err));
        // A short line that is a prefix of the kernel's is the program's.
        assert_eq!(split_all(&[b"may\n", b"m"]), (b"may\nm".to_vec(), vec![]));
    }

    #[test]
    fn output_is_passed_on_before_its_line_ends() {
        let mut split = ConsoleSplit::default();
        assert_eq!(
            split.push(b"Progress: 10%"),
            vec![(Stream::Out, b"Progress: 10%".to_vec())]
        );
        assert_eq!(split.push(b"mayf"), vec![(Stream::Out, b"mayf".to_vec())]);
        assert_eq!(split.push(b"\nmayf"), vec![(Stream::Out, b"\n".to_vec())]);
        assert_eq!(
            split.push(b"ly: x\n"),
            vec![(Stream::Err, b"mayfly: x\n".to_vec())]
        );
    }

    #[test]
    fn arguments() {
        let parsed = Cli::try_parse_from([
            "mayfly", "exec", "./prog", "a", "--memory", "256", "b", "--env", "K=V", "--", "--flag",
        ])
        .unwrap();
        let Command::Exec(args) = parsed.command else {
            panic!("not exec")
        };
        assert_eq!(args.program, PathBuf::from("./prog"));
        assert_eq!(args.args, ["a", "b", "--flag"]);
        assert_eq!((args.memory, args.timeout), (256, 60));
        assert_eq!(args.env, ["K=V"]);
        assert_eq!(program_name(Path::new("/x/my-test")).unwrap(), "my-test");
    }

    #[test]
    fn the_pack_holds_the_program_and_the_directory() {
        let root = tempfile::tempdir().unwrap();
        let program = root.path().join("t");
        std::fs::write(&program, b"\x7fELF").unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("in.txt"), b"input").unwrap();
        let out = root.path().join("p.pack");
        write_pack(&program, "t", Some(&dir), &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let pack = mayfly_proto::pack::Pack::parse(&bytes).unwrap();
        assert_eq!(pack.find("var/runtime/t").unwrap().mode, 0o755);
        assert_eq!(pack.find("var/task/in.txt").unwrap().data, b"input");
        let out2 = root.path().join("q.pack");
        write_pack(&program, "t", None, &out2).unwrap();
        let bytes = std::fs::read(&out2).unwrap();
        let pack = mayfly_proto::pack::Pack::parse(&bytes).unwrap();
        assert!(pack.find("var/task").is_some());
    }
}
