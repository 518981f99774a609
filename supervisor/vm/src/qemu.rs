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
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use mayfly_proto::boot::{BootConfig, ENV_FW_CFG_NAME};
use mayfly_proto::exit;
use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use crate::accel::Accel;
use crate::jail::{Jail, JailError, UidLease, VmCgroup, VmNeeds};
use crate::sys::{self, child};

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
/// The memory that buys a Linux function's VM one vCPU, as Lambda
/// allots CPU: one vCPU up to 1,769 MB, one more for each further
/// 1,769 MB.
pub const MB_PER_VCPU: u32 = 1769;
/// The most vCPUs a VM gets (Lambda's six, at 10,240 MB).
pub const MAX_VCPUS: u32 = 6;

/// The vCPUs of a Linux function's VM with `memory_mb` of RAM on a host
/// that lets this process run on `host_cpus` CPUs: `ceil(memory_mb /
/// 1769)`, 1 to [`MAX_VCPUS`], and never more than the host has (a vCPU
/// is a host thread; more of them than cores would only take turns). A
/// native image always gets one: it has a single thread of control.
pub fn vcpus_for(memory_mb: u32, host_cpus: usize) -> u32 {
    let host = u32::try_from(host_cpus).unwrap_or(u32::MAX).max(1);
    memory_mb
        .div_ceil(MB_PER_VCPU)
        .clamp(1, MAX_VCPUS)
        .min(host)
}

/// The CPUs this process may run on (`available_parallelism`: its
/// affinity and its cgroup's CPU quota), read once; 1 when unknown.
pub fn host_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

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
    /// Virtual CPUs (`-smp`; 0 counts as 1): see [`vcpus_for`].
    pub vcpus: u32,
    /// The unikernel ELF.
    pub kernel: &'a Path,
    /// The initrd (a Linux program's pack), if any.
    pub initrd: Option<&'a Path>,
    /// What goes on the kernel command line.
    pub boot: &'a BootConfig,
}

/// What the jail adds to the command line.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// `-sandbox` (see [`crate::jail::SANDBOX`]).
    pub sandbox: bool,
    /// Where QEMU reads the environment file for `fw_cfg`, if there is one.
    pub env_file: Option<&'static str>,
}

/// QEMU's arguments (without the binary), unjailed and without an
/// environment file.
pub fn argv(config: &VmConfig<'_>) -> Vec<OsString> {
    argv_with(config, &Extras::default())
}

/// QEMU's arguments (without the binary). The function's environment is
/// never among them: the guest reads it from the `fw_cfg` file
/// [`ENV_FW_CFG_NAME`], whose content QEMU reads from `extras.env_file`.
pub fn argv_with(config: &VmConfig<'_>, extras: &Extras) -> Vec<OsString> {
    let m = config.boot.guest_mac;
    let mac = format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    );
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    // The microvm has no PCI, ACPI or option ROMs to probe: the fastest boot.
    push(&["-M", "microvm,x-option-roms=off,rtc=off,acpi=off"]);
    let vcpus = config.vcpus.max(1);
    match config.accel {
        Accel::Kvm => push(&["-accel", "kvm", "-cpu", "host"]),
        // Multi-threaded TCG: a host thread per vCPU, so that they run in
        // parallel (one thread would take turns among them).
        Accel::Tcg if vcpus > 1 => push(&["-accel", "tcg,thread=multi"]),
        Accel::Tcg => push(&["-accel", "tcg"]),
    }
    push(&["-m", &format!("{}M", config.memory_mb)]);
    push(&["-smp", &vcpus.to_string()]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    // A reset (or triple fault) ends the VM instead of rebooting it.
    push(&["-no-reboot"]);
    args.push("-kernel".into());
    args.push(config.kernel.as_os_str().to_owned());
    if let Some(initrd) = config.initrd {
        args.push("-initrd".into());
        args.push(initrd.as_os_str().to_owned());
    }
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-append", &config.boot.command_line()]);
    if let Some(file) = extras.env_file {
        push(&["-fw_cfg", &format!("name={ENV_FW_CFG_NAME},file={file}")]);
    }
    if extras.sandbox {
        push(&["-sandbox", crate::jail::SANDBOX]);
    }
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
/// be posted, 4 = CPU exception, 5 = a Linux program exited, 6 = it was
/// killed by a signal, 7 = it ran out of memory (see
/// [`mayfly_proto::exit`]). With `-no-reboot` a reset or triple fault
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
    /// The console or stderr pipe could not be made.
    #[error("cannot make the VM's console pipe: {0}")]
    Console(io::Error),
    /// The QEMU binary is not installed.
    #[error("{binary} not found: install QEMU (Debian: apt-get install qemu-system-x86; or run `cargo xtask bootstrap`)")]
    NotFound {
        /// The binary looked for.
        binary: PathBuf,
    },
    /// The VM's jail could not be prepared.
    #[error(transparent)]
    Jail(#[from] JailError),
    /// Starting the process failed for another reason.
    #[error("cannot start {binary}: the child could not {step}: {source}")]
    Spawn {
        /// The binary.
        binary: PathBuf,
        /// What the child was doing.
        step: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

/// What a VM holds from its jail until QEMU is reaped.
#[derive(Debug, Default)]
struct Held {
    cgroup: Option<VmCgroup>,
    uid: Option<UidLease>,
}

impl Held {
    /// QEMU is reaped: its cgroup can go, and its uid be given again.
    fn release(&mut self) {
        if let Some(cgroup) = self.cgroup.take() {
            cgroup.remove();
        }
        self.uid = None;
    }
}

/// QEMU's process: our child, watched through a pidfd.
#[derive(Debug)]
struct Process {
    pid: libc::pid_t,
    pidfd: AsyncFd<OwnedFd>,
    held: Held,
}

impl Process {
    /// Reaps the child once it exited. Cancel-safe.
    async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(raw) = child::try_reap(self.pid)? {
                self.held.release();
                return Ok(ExitStatus::from_raw(raw));
            }
            let mut ready = self.pidfd.readable().await?;
            ready.clear_ready();
        }
    }
}

/// A running (or exited but not yet reaped) QEMU.
#[derive(Debug)]
pub struct Vm {
    process: Option<Process>,
    console: Option<pipe::Receiver>,
    console_writer: Option<OwnedFd>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    exit: Option<ExitStatus>,
}

async fn keep_tail(mut stderr: pipe::Receiver) -> Vec<u8> {
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

/// `binary` as an absolute path: as given when it names a directory,
/// else found in `PATH` (the child executes it without a search).
pub fn resolve_binary(binary: &Path, path: Option<&OsStr>) -> Result<PathBuf, SpawnError> {
    if binary.components().count() > 1 {
        return Ok(std::path::absolute(binary).unwrap_or_else(|_| binary.to_path_buf()));
    }
    std::env::split_paths(path.unwrap_or_default())
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .and_then(|found| std::path::absolute(found).ok())
        .ok_or_else(|| SpawnError::NotFound {
            binary: binary.to_path_buf(),
        })
}

/// Starts QEMU in `jail` with `nic` (the VM's end of the frame socket
/// pair) as its NIC backend, descriptor [`NET_FD`].
pub fn spawn(
    binary: &Path,
    config: &VmConfig<'_>,
    nic: OwnedFd,
    jail: &Jail,
) -> Result<Vm, SpawnError> {
    let binary = resolve_binary(binary, std::env::var_os("PATH").as_deref())?;
    let (console_read, console_write) = sys::pipe().map_err(SpawnError::Console)?;
    let (stderr_read, stderr_write) = sys::pipe().map_err(SpawnError::Console)?;
    // Kept so that the write side's flags can be changed once QEMU has
    // opened its chardevs (see `make_writes_blocking`).
    let console_writer = console_write.try_clone().map_err(SpawnError::Console)?;
    let env = Some(config.boot.env_file()).filter(|e| !e.is_empty());
    let extras = Extras {
        sandbox: jail.seccomp(),
        env_file: env.as_ref().map(|_| jail.env_path()),
    };
    let args = argv_with(config, &extras);
    let prepared = jail.prepare(&VmNeeds {
        binary: &binary,
        args: &args,
        image: config.kernel,
        initrd: config.initrd,
        memory_mb: config.memory_mb,
        vcpus: config.vcpus.max(1),
        kvm: config.accel == Accel::Kvm,
        env: env.as_ref().map(|e| e.as_bytes()),
    })?;
    let mut fds = vec![console_write.as_fd(), stderr_write.as_fd(), nic.as_fd()];
    fds.extend(prepared.fds.iter().map(|fd| fd.as_fd()));
    let spawned = prepared.stub.go(&prepared.late, &fds).map_err(|failure| {
        if failure.step == "execute QEMU" && failure.error.kind() == io::ErrorKind::NotFound {
            SpawnError::NotFound {
                binary: binary.clone(),
            }
        } else {
            SpawnError::Spawn {
                binary: binary.clone(),
                step: failure.step,
                source: failure.error,
            }
        }
    })?;
    // The parent's copies of QEMU's descriptors go, so that the pipes end
    // when QEMU does (and their readers see it).
    drop(fds);
    drop(prepared.fds);
    drop((nic, console_write, stderr_write));
    let pidfd = sys::register(spawned.pidfd, tokio::io::Interest::READABLE)
        .map_err(|e| SpawnError::Console(e.into_parts().1))?;
    tracing::debug!(
        pid = spawned.pid,
        vcpus = config.vcpus.max(1),
        memory_mb = config.memory_mb,
        binary = %binary.display(),
        "QEMU started"
    );
    let process = Process {
        pid: spawned.pid,
        pidfd,
        held: Held {
            cgroup: prepared.cgroup,
            uid: prepared.uid,
        },
    };
    // A bigger pipe absorbs console bursts while the reader is busy, so
    // QEMU (and with it the guest) waits less often.
    // Failure (over the system's pipe-max-size) leaves it as it was.
    let _ = sys::set_pipe_size(console_read.as_fd(), CONSOLE_PIPE_BYTES);
    let console = pipe::Receiver::from_owned_fd(console_read).map_err(SpawnError::Console)?;
    let stderr = pipe::Receiver::from_owned_fd(stderr_read).map_err(SpawnError::Console)?;
    Ok(Vm {
        process: Some(process),
        console: Some(console),
        console_writer: Some(console_writer),
        stderr: Some(tokio::spawn(keep_tail(stderr))),
        exit: None,
    })
}

impl Vm {
    /// A `Vm` that stands for none: the placeholder left where a VM was
    /// moved out to be torn down elsewhere.
    pub fn gone() -> Vm {
        Vm {
            process: None,
            console: None,
            console_writer: None,
            stderr: None,
            exit: None,
        }
    }

    /// The process id, while the process is not reaped (so the pid is
    /// still ours).
    pub fn pid(&self) -> Option<u32> {
        match self.exit {
            Some(_) => None,
            None => self.process.as_ref().map(|p| p.pid as u32),
        }
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
        let process = self.process.as_mut().expect("process present until reaped");
        let status = process.wait().await?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Kills QEMU (SIGKILL) unless it already exited, and reaps it.
    pub async fn kill(&mut self) -> io::Result<ExitStatus> {
        if self.exit.is_none() {
            let process = self.process.as_ref().expect("process present until reaped");
            if let Err(e) = sys::kill(process.pid, sys::Signal::Kill) {
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
        let Some(mut process) = self.process.take() else {
            return;
        };
        let _ = sys::kill(process.pid, sys::Signal::Kill);
        // Reap it now rather than leave a zombie (and its cgroup); outside
        // a runtime, by blocking: SIGKILLed, it exits within milliseconds.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let _ = process.wait().await;
                });
            }
            Err(_) => {
                let _ = child::reap_blocking(process.pid);
                process.held.release();
            }
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
            vcpus: 1,
            kernel,
            initrd: None,
            boot: &boot,
        });
        let encoded = boot.command_line();
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
            vcpus: 1,
            kernel: Path::new("k"),
            initrd: None,
            boot: &boot,
        });
        let args = strings(&args);
        assert_eq!(&args[2..6], ["-accel", "kvm", "-cpu", "host"]);
        assert!(!args.contains(&"tcg"));
    }

    #[test]
    fn an_initrd_follows_the_kernel() {
        let boot = BootConfig::new("f", 128);
        let args = argv(&VmConfig {
            accel: Accel::Tcg,
            memory_mb: 128,
            vcpus: 1,
            kernel: Path::new("/k/linux.elf"),
            initrd: Some(Path::new("/data/images/x.pack")),
            boot: &boot,
        });
        let args = strings(&args);
        let at = args.iter().position(|a| *a == "-kernel").unwrap();
        assert_eq!(
            &args[at..at + 4],
            ["-kernel", "/k/linux.elf", "-initrd", "/data/images/x.pack"]
        );
    }

    #[test]
    fn vcpus_follow_memory_as_lambdas_do() {
        let many = 64;
        for (mb, vcpus) in [
            (128, 1),
            (1769, 1),
            (1770, 2),
            (3538, 2),
            (3539, 3),
            (5307, 3),
            (5308, 4),
            (8845, 5),
            (8846, 6),
            (10240, 6),
            (u32::MAX, 6),
            (0, 1),
        ] {
            assert_eq!(vcpus_for(mb, many), vcpus, "{mb} MB");
        }
        // Never more than the host has, never fewer than one.
        assert_eq!(vcpus_for(10240, 2), 2);
        assert_eq!(vcpus_for(3538, 1), 1);
        assert_eq!(vcpus_for(3539, 2), 2);
        assert_eq!(vcpus_for(1770, 0), 1);
        assert_eq!(vcpus_for(128, 0), 1);
        assert!(host_cpus() >= 1);
    }

    #[test]
    fn several_vcpus_under_tcg_are_multi_threaded() {
        let boot = BootConfig::new("f", 3538);
        let config = |accel, vcpus| VmConfig {
            accel,
            memory_mb: 3538,
            vcpus,
            kernel: Path::new("/k/linux.elf"),
            initrd: Some(Path::new("/data/images/x.pack")),
            boot: &boot,
        };
        let args = argv(&config(Accel::Tcg, 2));
        let args = strings(&args);
        assert_eq!(
            &args[2..8],
            ["-accel", "tcg,thread=multi", "-m", "3538M", "-smp", "2"]
        );
        let args = argv(&config(Accel::Tcg, 6));
        let args = strings(&args);
        assert_eq!(
            &args[2..8],
            ["-accel", "tcg,thread=multi", "-m", "3538M", "-smp", "6"]
        );
        // One vCPU (or 0, read as one) keeps TCG's default, single thread.
        for vcpus in [0, 1] {
            let args = argv(&config(Accel::Tcg, vcpus));
            let args = strings(&args);
            assert_eq!(&args[2..8], ["-accel", "tcg", "-m", "3538M", "-smp", "1"]);
        }
        let args = argv(&config(Accel::Kvm, 3));
        let args = strings(&args);
        assert_eq!(
            &args[2..10],
            ["-accel", "kvm", "-cpu", "host", "-m", "3538M", "-smp", "3"]
        );
        assert_eq!(args.iter().filter(|a| **a == "-smp").count(), 1);
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
        assert!(describe_exit(Some(11), None).contains("Linux program exited"));
        assert!(describe_exit(Some(13), None).contains("killed by a signal"));
        assert!(describe_exit(Some(15), None).contains("out of memory"));
        assert!(describe_exit(Some(17), None).contains("value 8"));
        assert_eq!(describe_exit(Some(2), None), "QEMU exited with status 2");
        assert_eq!(describe_exit(None, Some(9)), "QEMU was killed by signal 9");
    }
}
