//! The QEMU process: its command line (pure) and its life (spawn, wait,
//! kill, reap).
//!
//! A VM must never outlive its invocation, whatever happens to the
//! supervisor: the child is killed when its [`Vm`] is dropped, gets SIGKILL
//! from the kernel if the supervisor dies (`PR_SET_PDEATHSIG`), and runs in
//! its own process group so a terminal's Ctrl-C reaches the supervisor
//! alone, which then tears the VM down in order.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};

use mayfly_proto::boot::BootConfig;
use mayfly_proto::exit;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStderr, Command};
use tokio::task::JoinHandle;

use crate::accel::Accel;
use crate::sys;

/// Environment variable naming the QEMU binary to use instead of the default.
pub const QEMU_ENV: &str = "MAYFLY_QEMU";
/// The full QEMU system emulator (TCG and KVM).
pub const QEMU_FULL: &str = "qemu-system-x86_64";
/// Debian's minimal microvm build: starts in ~3 ms instead of ~17 ms, but
/// has no TCG.
pub const QEMU_MICROVM: &str = "qemu-system-x86_64-microvm";
/// The descriptor number the NIC backend has in QEMU.
pub const NET_FD: RawFd = 3;
/// Console pipe size (Linux's default limit for unprivileged processes).
const CONSOLE_PIPE_BYTES: usize = 1024 * 1024;
/// Bytes of QEMU's own stderr kept for error messages.
const STDERR_KEPT: usize = 8 * 1024;

/// Which binary to run: `override_binary` (from [`QEMU_ENV`]) if given;
/// with KVM, [`QEMU_MICROVM`] when it is in `path`; else [`QEMU_FULL`].
pub fn find_binary(
    accel: Accel,
    override_binary: Option<OsString>,
    path: Option<&OsStr>,
) -> PathBuf {
    if let Some(binary) = override_binary.filter(|b| !b.is_empty()) {
        return PathBuf::from(binary);
    }
    if accel == Accel::Kvm {
        for dir in std::env::split_paths(path.unwrap_or_default()) {
            let candidate = dir.join(QEMU_MICROVM);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from(QEMU_FULL)
}

/// Everything the command line depends on.
#[derive(Debug, Clone)]
pub struct VmConfig<'a> {
    /// The accelerator.
    pub accel: Accel,
    /// RAM, in MB.
    pub memory_mb: u32,
    /// The unikernel ELF.
    pub kernel: &'a Path,
    /// What goes on the kernel command line.
    pub boot: &'a BootConfig,
}

/// QEMU's arguments (without the binary).
pub fn argv(config: &VmConfig<'_>) -> Vec<OsString> {
    let m = config.boot.guest_mac;
    let mac = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    // The microvm has no PCI, ACPI or option ROMs to probe: the fastest boot.
    push(&["-M", "microvm,x-option-roms=off,rtc=off,acpi=off"]);
    match config.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => push(&["-accel", "tcg"]),
    }
    push(&["-m", &format!("{}M", config.memory_mb), "-smp", "1"]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    // A reset (or triple fault) ends the VM instead of rebooting it.
    push(&["-no-reboot"]);
    args.push("-kernel".into());
    args.push(config.kernel.as_os_str().to_owned());
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-append", &config.boot.encode()]);
    // COM1 and the virtio console share stdout; signal=off keeps QEMU from
    // treating a ^C byte as a reason to quit.
    push(&["-chardev", "stdio,id=con,mux=on,signal=off"]);
    push(&["-serial", "chardev:con"]);
    push(&["-global", "virtio-mmio.force-legacy=false"]);
    push(&["-device", "virtio-serial-device"]);
    push(&["-device", "virtconsole,chardev=con"]);
    push(&[
        "-netdev",
        &format!("dgram,id=n0,local.type=fd,local.str={NET_FD}"),
    ]);
    push(&["-device", &format!("virtio-net-device,netdev=n0,mac={mac}")]);
    push(&["-device", mayfly_proto::exit::DEBUG_EXIT_DEVICE]);
    args
}

/// What QEMU's exit status says about the guest.
///
/// The guest writes `v` to port 0xf4 and QEMU exits with `v << 1 | 1`:
/// 0 = posted its result, 2 = kernel fatal error, 3 = a panic that could not
/// be posted, 4 = CPU exception. With `-no-reboot` a reset or triple fault
/// exits 0. QEMU's own errors exit 1, the same as `v = 0`.
pub fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (_, Some(signal)) => format!("QEMU was killed by signal {signal}"),
        (Some(exit::STATUS_RESET), _) => {
            "the VM reset or triple-faulted (QEMU exit status 0)".into()
        }
        (Some(exit::STATUS_OK), _) => {
            "QEMU exited with status 1 (a QEMU error, or the guest powered off as if it had posted its result)".into()
        }
        (Some(code), _) => match exit::guest_code(code) {
            Some(v) => {
                let what = exit::describe(v).map_or_else(
                    || format!("the guest powered off with value {v}"),
                    str::to_string,
                );
                format!("{what} (QEMU exit status {code})")
            }
            None => format!("QEMU exited with status {code}"),
        },
        (None, None) => "QEMU exited with an unknown status".into(),
    }
}

/// [`describe_exit`] for a real status.
pub fn describe_status(status: ExitStatus) -> String {
    describe_exit(status.code(), status.signal())
}

/// Why a VM could not be started.
#[derive(Debug, Error)]
pub enum SpawnError {
    /// The NIC's descriptor could not be prepared for the child.
    #[error("cannot prepare the VM's network descriptor: {0}")]
    NetFd(io::Error),
    /// The console pipe could not be made.
    #[error("cannot make the VM's console pipe: {0}")]
    Console(io::Error),
    /// The QEMU binary is not installed.
    #[error("{binary} not found: install QEMU (Debian: apt-get install qemu-system-x86; or run `cargo xtask bootstrap`)")]
    NotFound {
        /// The binary looked for.
        binary: PathBuf,
    },
    /// Starting the process failed for another reason.
    #[error("cannot start {binary}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A running (or exited but not yet reaped) QEMU.
#[derive(Debug)]
pub struct Vm {
    child: Option<Child>,
    console: Option<pipe::Receiver>,
    console_writer: Option<OwnedFd>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    exit: Option<ExitStatus>,
}

async fn keep_tail(mut stderr: ChildStderr) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_KEPT {
            kept.drain(..kept.len() - STDERR_KEPT);
        }
    }
    if kept.len() > STDERR_KEPT {
        kept.drain(..kept.len() - STDERR_KEPT);
    }
    kept
}

/// A pipe for the console, both ends close-on-exec.
fn console_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    sys::pipe()
}

/// Makes writes to the console pipe blocking again, for QEMU too.
///
/// QEMU opens its stdio chardev non-blocking, and its virtio console drops
/// whatever a full pipe does not take (it will not throttle a console).
/// Blocking writes instead make the guest wait while the supervisor,
/// which always drains the pipe, catches up: no log line is lost. The
/// flag belongs to the open file, which QEMU shares with `writer`, so this
/// must run after QEMU has set up its chardevs: when the guest first
/// speaks to the runtime API.
pub fn make_writes_blocking(writer: &OwnedFd) {
    if let Err(error) = sys::set_nonblocking(writer.as_fd(), false) {
        tracing::debug!(%error, "cannot make the console's writes blocking");
    }
}

/// Starts QEMU with `nic` (the VM's end of the frame socket pair) as its
/// NIC backend, descriptor [`NET_FD`].
pub fn spawn(binary: &Path, config: &VmConfig<'_>, nic: OwnedFd) -> Result<Vm, SpawnError> {
    // Move the descriptor to 10 or above: not 0..=2, which the child's
    // stdio replaces before it could be moved, and not NET_FD itself, as
    // dup2 onto itself would leave close-on-exec set.
    let guest_end = sys::duplicate_at_or_above(nic.as_fd(), 10).map_err(SpawnError::NetFd)?;
    drop(nic);
    let (console_read, console_write) = console_pipe().map_err(SpawnError::Console)?;
    // Kept so that the write side's flags can be changed once QEMU has
    // opened its chardevs (see `make_writes_blocking`).
    let console_writer = console_write.try_clone().map_err(SpawnError::Console)?;
    let mut command = Command::new(binary);
    command
        .args(argv(config))
        .stdin(Stdio::null())
        .stdout(Stdio::from(console_write))
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    sys::inherit_fd_and_die_with_parent(&mut command, guest_end.as_raw_fd(), NET_FD);
    let mut child = command.spawn().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            SpawnError::NotFound {
                binary: binary.to_path_buf(),
            }
        } else {
            SpawnError::Spawn {
                binary: binary.to_path_buf(),
                source,
            }
        }
    })?;
    drop(guest_end);
    tracing::debug!(pid = child.id(), binary = %binary.display(), "QEMU started");
    // The parent's copy of the write side goes with the command, so that
    // the pipe ends when QEMU does (and the console's reader sees it).
    drop(command);
    // A bigger pipe absorbs console bursts while the reader is busy, so
    // QEMU (and with it the guest) waits less often.
    // Failure (over the system's pipe-max-size) leaves it as it was.
    let _ = sys::set_pipe_size(console_read.as_fd(), CONSOLE_PIPE_BYTES);
    let console = pipe::Receiver::from_owned_fd(console_read).map_err(SpawnError::Console)?;
    let stderr = child.stderr.take().map(|s| tokio::spawn(keep_tail(s)));
    Ok(Vm {
        child: Some(child),
        console: Some(console),
        console_writer: Some(console_writer),
        stderr,
        exit: None,
    })
}

impl Vm {
    /// A `Vm` that stands for none: the placeholder left where a VM was
    /// moved out to be torn down elsewhere.
    pub fn gone() -> Vm {
        Vm {
            child: None,
            console: None,
            console_writer: None,
            stderr: None,
            exit: None,
        }
    }

    /// The process id, while the process exists.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// The console stream (QEMU's stdout). Whoever takes it must keep
    /// reading it, or the guest stalls when the pipe fills.
    pub fn take_console(&mut self) -> Option<pipe::Receiver> {
        self.console.take()
    }

    /// The supervisor's handle on the console pipe's write side (see
    /// [`make_writes_blocking`]); drop it, or the pipe never ends.
    pub fn take_console_writer(&mut self) -> Option<OwnedFd> {
        self.console_writer.take()
    }

    /// Waits for QEMU to exit and reaps it. Cancel-safe; once it has
    /// returned, later calls return the same status at once.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        let child = self.child.as_mut().expect("child present until reaped");
        let status = child.wait().await?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Kills QEMU (SIGKILL) unless it already exited, and reaps it.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        if self.exit.is_none() {
            let child = self.child.as_mut().expect("child present until reaped");
            if let Err(e) = child.start_kill() {
                // Already exited but not yet reaped: wait() below reaps it.
                tracing::debug!(error = %e, "QEMU kill failed");
            }
        }
        self.wait().await
    }

    /// The last lines QEMU wrote to its stderr. Complete once QEMU exited.
    pub async fn stderr_tail(&mut self) -> String {
        match self.stderr.take() {
            Some(task) => String::from_utf8_lossy(&task.await.unwrap_or_default()).into_owned(),
            None => String::new(),
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.exit.is_some() {
            return;
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = child.start_kill();
        // Reap it now rather than leave a zombie until tokio's background
        // orphan reaping runs. Outside a runtime, kill_on_drop and tokio's
        // orphan queue are the fallback.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = child.wait().await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn tcg_command_line() {
        let boot = BootConfig::new("echo", 256);
        let kernel = Path::new("/images/echo.elf");
        let args = argv(&VmConfig {
            accel: Accel::Tcg,
            memory_mb: 256,
            kernel,
            boot: &boot,
        });
        let encoded = boot.encode();
        let expected = vec![
            "-M",
            "microvm,x-option-roms=off,rtc=off,acpi=off",
            "-accel",
            "tcg",
            "-m",
            "256M",
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-kernel",
            "/images/echo.elf",
            "-append",
            &encoded,
            "-chardev",
            "stdio,id=con,mux=on,signal=off",
            "-serial",
            "chardev:con",
            "-global",
            "virtio-mmio.force-legacy=false",
            "-device",
            "virtio-serial-device",
            "-device",
            "virtconsole,chardev=con",
            "-netdev",
            "dgram,id=n0,local.type=fd,local.str=3",
            "-device",
            "virtio-net-device,netdev=n0,mac=02:4d:46:00:00:02",
            "-device",
            exit::DEBUG_EXIT_DEVICE,
        ];
        assert_eq!(strings(&args), expected);
    }

    #[test]
    fn kvm_adds_the_host_cpu() {
        let boot = BootConfig::new("echo", 128);
        let args = argv(&VmConfig {
            accel: Accel::Kvm,
            memory_mb: 128,
            kernel: Path::new("k"),
            boot: &boot,
        });
        let args = strings(&args);
        assert_eq!(&args[2..6], ["-accel", "kvm", "-cpu", "host"]);
        assert!(!args.contains(&"tcg"));
    }

    #[test]
    fn binary_choice() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(QEMU_MICROVM), b"").unwrap();
        let path = std::env::join_paths(["/nonexistent", dir.path().to_str().unwrap()]).unwrap();
        assert_eq!(
            find_binary(Accel::Kvm, None, Some(&path)),
            dir.path().join(QEMU_MICROVM)
        );
        // TCG needs the full binary even where the microvm one exists.
        assert_eq!(
            find_binary(Accel::Tcg, None, Some(&path)),
            PathBuf::from(QEMU_FULL)
        );
        assert_eq!(
            find_binary(Accel::Kvm, None, Some(OsStr::new("/nonexistent"))),
            PathBuf::from(QEMU_FULL)
        );
        assert_eq!(
            find_binary(Accel::Kvm, Some("/opt/q".into()), Some(&path)),
            PathBuf::from("/opt/q")
        );
    }

    #[test]
    fn exit_statuses() {
        assert!(describe_exit(Some(0), None).contains("triple-fault"));
        assert!(describe_exit(Some(1), None).contains("status 1"));
        assert_eq!(
            describe_exit(Some(5), None),
            "the guest kernel hit a fatal error (QEMU exit status 5)"
        );
        assert!(describe_exit(Some(7), None).contains("panicked"));
        assert!(describe_exit(Some(9), None).contains("CPU exception"));
        assert!(describe_exit(Some(11), None).contains("value 5"));
        assert_eq!(describe_exit(Some(2), None), "QEMU exited with status 2");
        assert_eq!(describe_exit(None, Some(9)), "QEMU was killed by signal 9");
    }
}
