//! Timed child processes: the static program (bare and under bubblewrap),
//! the QEMU floor and the Linux microVM, spawned directly for timing; and
//! [`RssProbe`], which runs the same commands through a tiny static wrapper
//! to learn their peak RSS.
//!
//! Why a wrapper: `ru_maxrss` of a child reaped by this process is
//! polluted by this process, because the child's address space before
//! `exec` is ours (shared outright under `posix_spawn`'s vfork, copied under
//! fork) and the kernel keeps that high-water mark across `exec`. A child
//! of a 100 KB static wrapper starts from the wrapper's size instead.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mayfly_proto::boot::BootConfig;
use mayfly_proto::exit;
use mayfly_vm::accel::Accel;
use mayfly_vm::{net, qemu};

/// What one run of a child cost.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// Spawn to reaped.
    pub wall: Duration,
    /// The exit code, or `None` when a signal ended it.
    pub code: Option<i32>,
}

impl Run {
    /// Milliseconds of wall time.
    pub fn ms(&self) -> f64 {
        self.wall.as_secs_f64() * 1000.0
    }
}

/// Spawns `cmd` (stdin from /dev/null) and waits for it.
pub fn timed(cmd: &mut Command) -> Result<Run> {
    cmd.stdin(Stdio::null());
    let started = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
    Ok(Run {
        wall: started.elapsed(),
        code: status.code(),
    })
}

/// A tiny static program that exits 0: the no-isolation row's workload.
const NOOP_C: &str = "int main(void) { return 0; }\n";

/// The peak-RSS wrapper: runs `$BENCH_EXEC` (or the program it was
/// compiled for, where its environment is emptied, as Mayfly does for
/// QEMU) with its own arguments (so it
/// can stand in for any program, QEMU included via `MAYFLY_QEMU`, the NIC
/// descriptor passing through), appends `pid P` to `$BENCH_RSS_OUT` at
/// once and `rss P KIB` (from `wait4`) when the program exits, and passes
/// the exit status through. The program dies with the wrapper, as Mayfly's
/// QEMU does; when Mayfly SIGKILLs the wrapper (it kills QEMU as soon as
/// the guest has answered), the program becomes an orphan of the nearest
/// subreaper, this process, which reaps it for its `rusage`.
const RSSWRAP_C: &str = r#"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
static void note(const char *out, const char *fmt, long a, long b) {
    FILE *f = fopen(out, "a");
    if (f) { fprintf(f, fmt, a, b); fclose(f); }
}
#ifndef DEFAULT_EXEC
#define DEFAULT_EXEC 0
#define DEFAULT_OUT 0
#endif
int main(int argc, char **argv) {
    const char *prog = getenv("BENCH_EXEC");
    const char *out = getenv("BENCH_RSS_OUT");
    if (!prog) prog = DEFAULT_EXEC;
    if (!out) out = DEFAULT_OUT;
    if (!prog || !out) return 125;
    (void)argc;
    pid_t pid = fork();
    if (pid < 0) return 125;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        argv[0] = (char *)prog;
        execvp(prog, argv);
        _exit(127);
    }
    note(out, "pid %ld\n", (long)pid, 0);
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 125;
    note(out, "rss %ld %ld\n", (long)pid, ru.ru_maxrss);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
"#;

/// Compiles `source` with `cc -static -O2` into `dir/name` (once: kept when
/// the source has not changed).
fn compile(dir: &Path, name: &str, source: &str) -> Result<PathBuf> {
    let src = dir.join(format!("{name}.c"));
    let bin = dir.join(name);
    if bin.is_file() && std::fs::read_to_string(&src).ok().as_deref() == Some(source) {
        return Ok(bin);
    }
    std::fs::write(&src, source)?;
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .context("cannot run cc (install gcc)")?;
    if !out.status.success() {
        bail!(
            "cc -static failed for {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(bin)
}

/// The static no-op program.
pub fn build_noop(dir: &Path) -> Result<PathBuf> {
    compile(dir, "noop", NOOP_C)
}

/// Peak RSS of commands run through the wrapper.
pub struct RssProbe {
    dir: PathBuf,
    wrapper: PathBuf,
    out: PathBuf,
}

impl RssProbe {
    /// Builds the wrapper and makes this process a child subreaper (so that
    /// a program whose wrapper was killed is reaped here).
    pub fn new(dir: &Path) -> Result<RssProbe> {
        let wrapper = compile(dir, "rsswrap", RSSWRAP_C)?;
        crate::sys::become_subreaper().context("PR_SET_CHILD_SUBREAPER")?;
        let out = dir.join("rss.txt");
        let _ = std::fs::remove_file(&out);
        Ok(RssProbe {
            dir: dir.to_path_buf(),
            wrapper,
            out,
        })
    }

    /// A command that runs `program` through the wrapper.
    pub fn command(&self, program: &OsStr) -> Command {
        let mut cmd = Command::new(&self.wrapper);
        cmd.env("BENCH_EXEC", program)
            .env("BENCH_RSS_OUT", &self.out);
        cmd
    }

    /// Makes `mayfly` (`cmd`) run `qemu` through a wrapper compiled for it:
    /// Mayfly starts QEMU with an empty environment, so the wrapper cannot
    /// be told through its own.
    pub fn wrap_qemu(&self, cmd: &mut Command, qemu: &Path) -> Result<()> {
        let source = format!(
            "#define DEFAULT_EXEC {:?}\n#define DEFAULT_OUT {:?}\n{RSSWRAP_C}",
            qemu.to_str().context("QEMU's path is not UTF-8")?,
            self.out.to_str().context("the probe's path is not UTF-8")?,
        );
        let wrapper = compile(&self.dir, "rsswrap-qemu", &source)?;
        cmd.env(qemu::QEMU_ENV, wrapper);
        Ok(())
    }

    /// The peak RSS (KiB) of every program run since the last call.
    pub fn collect(&self) -> Vec<u64> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        parse_rss_log(&text)
            .into_iter()
            .filter_map(|(pid, rss)| rss.or_else(|| reap_orphan(pid)))
            .collect()
    }
}

/// `(pid, Some(KiB))` for programs the wrapper reaped, `(pid, None)` for
/// those it did not live to reap.
pub fn parse_rss_log(text: &str) -> Vec<(i32, Option<u64>)> {
    let mut out: Vec<(i32, Option<u64>)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["pid", p] => out.extend(p.parse().ok().map(|p| (p, None))),
            ["rss", p, k] => {
                if let (Ok(p), Ok(k)) = (p.parse::<i32>(), k.parse()) {
                    match out.iter_mut().find(|(q, r)| *q == p && r.is_none()) {
                        Some(slot) => slot.1 = Some(k),
                        None => out.push((p, Some(k))),
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Reaps an orphan handed to this subreaper and returns its peak RSS.
fn reap_orphan(pid: i32) -> Option<u64> {
    // Reparented to us, it is our child.
    crate::sys::reap_with_peak_rss(pid)
}

/// `program` directly, or through the probe.
fn base(program: &OsStr, probe: Option<&RssProbe>) -> Command {
    match probe {
        Some(p) => p.command(program),
        None => Command::new(program),
    }
}

/// One run of the static program, no isolation.
pub fn run_bare(prog: &Path, probe: Option<&RssProbe>) -> Result<Run> {
    let run = timed(base(prog.as_os_str(), probe).stdout(Stdio::null()))?;
    check_code(run, 0, "the static program")
}

/// `bwrap` with every namespace unshared, the root bound read-only.
pub fn bwrap_command(prog: &Path, probe: Option<&RssProbe>) -> Command {
    let mut cmd = base(OsStr::new("bwrap"), probe);
    cmd.args([
        "--unshare-all",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--",
    ])
    .arg(prog)
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    cmd
}

/// A Linux function's `bootstrap` as a plain process, its runtime API at
/// `127.0.0.1:port`, with the variables `lambda_runtime` needs.
pub fn function_process(bootstrap: &Path, port: u16, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bootstrap);
    function_env(&mut cmd, port, env);
    cmd
}

/// The same in bubblewrap: every namespace unshared but the network's
/// (`--share-net`), so that it reaches the runtime API on loopback.
pub fn function_bwrap(bootstrap: &Path, port: u16, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("bwrap");
    cmd.args([
        "--unshare-all",
        "--share-net",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--",
    ])
    .arg(bootstrap);
    function_env(&mut cmd, port, env);
    cmd
}

fn function_env(cmd: &mut Command, port: u16, env: &[(&str, &str)]) {
    cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
}

/// One run of the static program in a bubblewrap sandbox.
pub fn run_bwrap(prog: &Path, probe: Option<&RssProbe>) -> Result<Run> {
    let run = timed(bwrap_command(prog, probe).stderr(Stdio::null()))?;
    check_code(run, 0, "bwrap")
}

fn check_code(run: Run, want: i32, what: &str) -> Result<Run> {
    if run.code != Some(want) {
        bail!("{what} exited with {:?}, not {want}", run.code);
    }
    Ok(run)
}

/// Where QEMU and how: Mayfly's choice of binary and accelerator.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// The binary Mayfly would run.
    pub binary: PathBuf,
    /// The accelerator in use.
    pub accel: Accel,
}

impl Qemu {
    /// The binary Mayfly's own lookup picks for `accel`.
    pub fn new(accel: Accel) -> Qemu {
        let binary = qemu::find_binary(
            accel,
            std::env::var_os(qemu::QEMU_ENV),
            std::env::var_os("PATH").as_deref(),
        );
        Qemu { binary, accel }
    }

    /// Mayfly's exact QEMU arguments for `kernel` (128 MB).
    fn argv(&self, kernel: &Path) -> Vec<OsString> {
        let boot = BootConfig::new("bench", 128);
        qemu::argv(&qemu::VmConfig {
            accel: self.accel,
            memory_mb: 128,
            vcpus: 1,
            kernel,
            initrd: None,
            boot: &boot,
        })
    }

    /// QEMU with `args` and the VM's end of a NIC socket pair as descriptor
    /// `NET_FD`, as Mayfly hands it over. The host end is returned so that
    /// it stays open for the run.
    fn command(
        &self,
        args: Vec<OsString>,
        probe: Option<&RssProbe>,
    ) -> Result<(Command, OwnedFd, OwnedFd)> {
        let (host_end, guest_end) = net::socket_pair()?;
        // Moved above the stdio and NET_FD numbers, so that dup2 in the
        // child really copies it (and clears close-on-exec).
        let guest = mayfly_vm::sys::duplicate_at_or_above(guest_end.as_fd(), 10)
            .context("moving the NIC descriptor")?;
        drop(guest_end);
        let fd = guest.as_raw_fd();
        let mut cmd = base(self.binary.as_os_str(), probe);
        cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
        crate::sys::inherit_fd(&mut cmd, fd, qemu::NET_FD);
        Ok((cmd, host_end, guest))
    }

    /// One boot of the floor image (powers off at once: QEMU exit status
    /// [`exit::STATUS_OK`]).
    pub fn boot_floor(&self, floor: &Path, probe: Option<&RssProbe>) -> Result<Run> {
        let (mut cmd, _host, _guest) = self.command(self.argv(floor), probe)?;
        let run = timed(&mut cmd)?;
        check_code(run, exit::STATUS_OK, "QEMU on the floor image")
    }

    /// One boot of Linux (`vmlinux` through PVH) with `initrd` and
    /// `cmdline` instead of Mayfly's boot line; the console goes to
    /// `console`. Succeeds when QEMU exits with [`exit::STATUS_RESET`]
    /// (the guest's reboot, under `-no-reboot`) and the console shows
    /// `marker`.
    pub fn boot_linux(&self, lin: &LinuxBoot<'_>, probe: Option<&RssProbe>) -> Result<Run> {
        let (mut cmd, _host, _guest) = self.command(self.linux_args(lin)?, probe)?;
        cmd.stdout(std::fs::File::create(lin.console)?);
        let run = timed(&mut cmd)?;
        let console = std::fs::read_to_string(lin.console).unwrap_or_default();
        if run.code != Some(exit::STATUS_RESET) || !console.contains(lin.marker) {
            bail!(
                "Linux did not boot to its init (QEMU exit {:?}); console tail:\n{}",
                run.code,
                console_tail(lin.console)
            );
        }
        Ok(run)
    }

    /// Mayfly's QEMU arguments with Linux's kernel, command line and
    /// initramfs.
    fn linux_args(&self, lin: &LinuxBoot<'_>) -> Result<Vec<OsString>> {
        let mut args = self.argv(lin.vmlinux);
        let at = args
            .iter()
            .position(|a| a == "-append")
            .context("Mayfly's QEMU arguments have no -append")?;
        args[at + 1] = lin.cmdline.into();
        args.insert(at + 2, "-initrd".into());
        args.insert(at + 3, lin.initrd.as_os_str().to_owned());
        Ok(args)
    }

    /// Spawns Linux booting a function guest (see
    /// `linux::function_initrd`): Mayfly's flags but for two, both for the
    /// guest's network only: `acpi=on`, because Debian's kernel finds
    /// virtio-mmio devices through ACPI alone (no
    /// `VIRTIO_MMIO_CMDLINE_DEVICES`), and QEMU user networking (slirp) in
    /// place of Mayfly's socket pair, so that the guest reaches the host's
    /// loopback at 10.0.2.2. The caller kills it.
    pub fn spawn_linux_function(&self, lin: &LinuxBoot<'_>) -> Result<Child> {
        let args = function_guest_args(self.linux_args(lin)?)?;
        Command::new(&self.binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(lin.console)?)
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))
    }
}

/// `args` with ACPI on and the NIC on QEMU user networking.
pub fn function_guest_args(mut args: Vec<OsString>) -> Result<Vec<OsString>> {
    let value_of = |args: &[OsString], flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| i + 1)
            .filter(|&i| i < args.len())
            .with_context(|| format!("Mayfly's QEMU arguments have no {flag}"))
    };
    let m = value_of(&args, "-M")?;
    let machine = args[m].to_string_lossy().replace("acpi=off", "acpi=on");
    args[m] = machine.into();
    let n = value_of(&args, "-netdev")?;
    args[n] = "user,id=n0".into();
    Ok(args)
}

/// The last 600 characters of a console log.
pub fn console_tail(console: &Path) -> String {
    let console = std::fs::read_to_string(console).unwrap_or_default();
    let tail: Vec<char> = console.chars().rev().take(600).collect();
    tail.into_iter().rev().collect()
}

/// What a Linux boot needs.
pub struct LinuxBoot<'a> {
    /// The uncompressed kernel with its PVH note.
    pub vmlinux: &'a Path,
    /// The initramfs.
    pub initrd: &'a Path,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Where the console goes.
    pub console: &'a Path,
    /// What `/init` prints.
    pub marker: &'a str,
}

#[cfg(test)]
mod tests {
    use super::parse_rss_log;

    #[test]
    fn function_guest_turns_acpi_on_and_uses_user_networking() {
        let args: Vec<std::ffi::OsString> = [
            "-M",
            "microvm,x-option-roms=off,rtc=off,acpi=off",
            "-netdev",
            "dgram,id=n0,local.type=fd,local.str=3",
            "-device",
            "virtio-net-device,netdev=n0",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let out = super::function_guest_args(args).unwrap();
        assert_eq!(out[1], "microvm,x-option-roms=off,rtc=off,acpi=on");
        assert_eq!(out[3], "user,id=n0");
        assert_eq!(out[5], "virtio-net-device,netdev=n0");
        assert!(super::function_guest_args(vec!["-M".into()]).is_err());
    }

    #[test]
    fn rss_log_pairs_pids_with_their_rss() {
        let log = "pid 10\nrss 10 40000\npid 11\npid 12\nrss 12 500\ngarbage\n";
        assert_eq!(
            parse_rss_log(log),
            vec![(10, Some(40000)), (11, None), (12, Some(500))]
        );
    }
}
