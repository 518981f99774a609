//! How a guest ends its VM, and what QEMU's exit status then says.
//!
//! The guest powers off by writing a one-byte exit code to QEMU's
//! `isa-debug-exit` device at [`DEBUG_EXIT_PORT`]; QEMU then exits with
//! status `code << 1 | 1` (see [`qemu_status`]), and the host reads the code
//! back with [`guest_code`]. Two statuses are not the guest's choice:
//! [`STATUS_RESET`] (a reset or triple fault under `-no-reboot`) and 1 for
//! QEMU's own errors, which reads the same as [`OK`].
//!
//! ```
//! use mayfly_proto::exit::{self, guest_code, qemu_status};
//! assert_eq!(qemu_status(exit::FATAL), 5);
//! assert_eq!(guest_code(5), Some(exit::FATAL));
//! assert_eq!(exit::describe(exit::FATAL), Some("the guest kernel hit a fatal error"));
//! ```

/// I/O port of the `isa-debug-exit` device.
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Width of the `isa-debug-exit` device's port, in bytes.
pub const DEBUG_EXIT_IOSIZE: u16 = 4;
/// QEMU's `-device` argument for the `isa-debug-exit` device at
/// [`DEBUG_EXIT_PORT`] with [`DEBUG_EXIT_IOSIZE`].
pub const DEBUG_EXIT_DEVICE: &str = "isa-debug-exit,iobase=0xf4,iosize=0x04";

/// Exit code: the result (or the function's error) was posted.
pub const OK: u8 = 0;
/// Exit code: the kernel could not run the function at all (bad boot
/// configuration, no network card, the runtime API unreachable).
pub const FATAL: u8 = 2;
/// Exit code: a panic could not be reported over the network.
pub const PANIC: u8 = 3;
/// Exit code: the CPU raised an exception (a stack overflow, a bad pointer).
pub const EXCEPTION: u8 = 4;
/// Exit code: a Linux program ended by itself (exit or exit_group); the
/// kernel's last console line says its status ([`ProcessEnd`]).
pub const PROCESS_EXITED: u8 = 5;
/// Exit code: a Linux program was ended by a signal (a fault with no
/// handler); the kernel's last console line names it ([`ProcessEnd`]).
pub const PROCESS_KILLED: u8 = 6;
/// Exit code: a Linux program touched more memory than the VM has.
pub const OUT_OF_MEMORY: u8 = 7;

/// QEMU's exit status when the VM reset or triple-faulted: with
/// `-no-reboot`, QEMU exits cleanly instead of rebooting.
pub const STATUS_RESET: i32 = 0;
/// QEMU's exit status after the guest wrote [`OK`]. QEMU's own errors exit
/// with this status too.
pub const STATUS_OK: i32 = qemu_status(OK);

/// The exit status of QEMU after the guest wrote `code` to
/// `isa-debug-exit`: `code << 1 | 1`, cut to the 8 bits a process exit
/// status keeps, so codes 128 and above read as `code - 128`.
///
/// ```
/// use mayfly_proto::exit::{qemu_status, OK, EXCEPTION};
/// assert_eq!(qemu_status(OK), 1);
/// assert_eq!(qemu_status(EXCEPTION), 9);
/// assert_eq!(qemu_status(127), 255);
/// assert_eq!(qemu_status(128), qemu_status(0));
/// ```
pub const fn qemu_status(code: u8) -> i32 {
    (((code as i32) << 1) | 1) & 0xff
}

/// The exit code the guest wrote, read back from QEMU's exit status: the
/// inverse of [`qemu_status`] for codes below 128. `None` for statuses the
/// guest cannot cause through `isa-debug-exit`: even ones (a reset, see
/// [`STATUS_RESET`]) and those outside 0..=255. Status 1 gives `Some(OK)`,
/// though it may also be a QEMU error.
///
/// ```
/// use mayfly_proto::exit::{guest_code, PANIC};
/// assert_eq!(guest_code(7), Some(PANIC));
/// assert_eq!(guest_code(0), None);
/// assert_eq!(guest_code(256 + 7), None);
/// ```
pub const fn guest_code(status: i32) -> Option<u8> {
    if matches!(status, 0..=0xff) && status & 1 == 1 {
        Some((status >> 1) as u8)
    } else {
        None
    }
}

/// What an exit code means, for a person; `None` for codes the kernel
/// does not write.
pub const fn describe(code: u8) -> Option<&'static str> {
    match code {
        OK => Some("the guest posted its result"),
        FATAL => Some("the guest kernel hit a fatal error"),
        PANIC => Some("the guest panicked and could not post the panic"),
        EXCEPTION => Some("the guest took a CPU exception"),
        PROCESS_EXITED => Some("the guest's Linux program exited"),
        PROCESS_KILLED => Some("the guest's Linux program was killed by a signal"),
        OUT_OF_MEMORY => Some("the guest ran out of memory"),
        _ => None,
    }
}

/// How a Linux program ended, as the kernel's last console line (after
/// [`KERNEL_PREFIX`](crate::console::KERNEL_PREFIX)) states it before the
/// VM powers off with [`PROCESS_EXITED`] or [`PROCESS_KILLED`].
///
/// ```
/// use mayfly_proto::exit::ProcessEnd;
/// let end = ProcessEnd::Killed(11);
/// assert_eq!(end.to_string(), "process killed by signal 11 (segmentation fault)");
/// assert_eq!(ProcessEnd::parse(&end.to_string()), Some(end));
/// assert_eq!(ProcessEnd::parse("process exited with status 3"), Some(ProcessEnd::Exited(3)));
/// // What Lambda says, and what a shell would report:
/// assert_eq!(end.lambda_message(), "Runtime exited with error: signal: segmentation fault");
/// assert_eq!(end.shell_status(), 139);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessEnd {
    /// exit or exit_group with this status (its low 8 bits, as on Linux).
    Exited(u8),
    /// Ended by this signal.
    Killed(u8),
}

impl ProcessEnd {
    /// Reads a kernel message written by `Display`.
    pub fn parse(message: &str) -> Option<ProcessEnd> {
        if let Some(status) = message.strip_prefix("process exited with status ") {
            return status.parse().ok().map(ProcessEnd::Exited);
        }
        let rest = message.strip_prefix("process killed by signal ")?;
        let number = rest.split(' ').next()?;
        number.parse().ok().map(ProcessEnd::Killed)
    }

    /// Lambda's wording for a runtime that ended before answering.
    pub fn lambda_message(&self) -> alloc::string::String {
        match self {
            ProcessEnd::Exited(status) => {
                alloc::format!("Runtime exited with error: exit status {status}")
            }
            ProcessEnd::Killed(signal) => alloc::format!(
                "Runtime exited with error: signal: {}",
                signal_name(*signal)
            ),
        }
    }

    /// The status a shell gives a program that ended so: the status, or
    /// 128 plus the signal.
    pub fn shell_status(&self) -> i32 {
        match self {
            ProcessEnd::Exited(status) => i32::from(*status),
            ProcessEnd::Killed(signal) => 128 + i32::from(*signal),
        }
    }
}

impl core::fmt::Display for ProcessEnd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProcessEnd::Exited(status) => write!(f, "process exited with status {status}"),
            ProcessEnd::Killed(signal) => write!(
                f,
                "process killed by signal {signal} ({})",
                signal_name(*signal)
            ),
        }
    }
}

/// Signal numbers (x86_64 Linux) the kernel raises by itself.
pub mod signal {
    /// Illegal instruction.
    pub const SIGILL: u8 = 4;
    /// Abort (a program's own `abort()` through tgkill).
    pub const SIGABRT: u8 = 6;
    /// Bus error: a misaligned or impossible access.
    pub const SIGBUS: u8 = 7;
    /// Arithmetic error: division by zero.
    pub const SIGFPE: u8 = 8;
    /// Killed.
    pub const SIGKILL: u8 = 9;
    /// Segmentation fault: an access to unmapped or protected memory.
    pub const SIGSEGV: u8 = 11;
    /// Trace/breakpoint trap (int3).
    pub const SIGTRAP: u8 = 5;
}

/// A signal's description as Go's `os/exec` (and so Lambda's error
/// message) words it.
pub fn signal_name(signal: u8) -> &'static str {
    match signal {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        signal::SIGILL => "illegal instruction",
        signal::SIGTRAP => "trace/breakpoint trap",
        signal::SIGABRT => "aborted",
        signal::SIGBUS => "bus error",
        signal::SIGFPE => "floating point exception",
        signal::SIGKILL => "killed",
        signal::SIGSEGV => "segmentation fault",
        10 => "user defined signal 1",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        16 => "stack fault",
        24 => "CPU time limit exceeded",
        25 => "file size limit exceeded",
        26 => "virtual timer expired",
        27 => "profiling timer expired",
        29 => "I/O possible",
        30 => "power failure",
        31 => "bad system call",
        _ => "unknown signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::ToString;

    const CODES: [u8; 7] = [
        OK,
        FATAL,
        PANIC,
        EXCEPTION,
        PROCESS_EXITED,
        PROCESS_KILLED,
        OUT_OF_MEMORY,
    ];

    #[test]
    fn process_ends_round_trip_through_their_line() {
        for end in [
            ProcessEnd::Exited(0),
            ProcessEnd::Exited(255),
            ProcessEnd::Killed(4),
            ProcessEnd::Killed(11),
            ProcessEnd::Killed(60),
        ] {
            assert_eq!(ProcessEnd::parse(&end.to_string()), Some(end));
        }
        assert_eq!(ProcessEnd::parse("process exited with status 256"), None);
        assert_eq!(ProcessEnd::parse("process exited with status"), None);
        assert_eq!(ProcessEnd::parse("a line of the program"), None);
        assert_eq!(ProcessEnd::Exited(2).shell_status(), 2);
        assert_eq!(ProcessEnd::Killed(4).shell_status(), 132);
        assert_eq!(
            ProcessEnd::Exited(2).lambda_message(),
            "Runtime exited with error: exit status 2"
        );
        assert_eq!(
            ProcessEnd::Killed(4).lambda_message(),
            "Runtime exited with error: signal: illegal instruction"
        );
    }

    #[test]
    fn status_is_code_shifted_with_the_low_bit_set() {
        assert_eq!(STATUS_OK, 1);
        assert_eq!(qemu_status(FATAL), 5);
        assert_eq!(qemu_status(PANIC), 7);
        assert_eq!(qemu_status(EXCEPTION), 9);
        for code in 0..=u8::MAX {
            let status = qemu_status(code);
            assert!((0..=0xff).contains(&status), "{code}");
            assert_eq!(status & 1, 1, "{code}");
        }
    }

    #[test]
    fn guest_code_inverts_qemu_status_below_128() {
        for code in 0..128u8 {
            assert_eq!(guest_code(qemu_status(code)), Some(code));
        }
        for code in 128..=u8::MAX {
            assert_eq!(guest_code(qemu_status(code)), Some(code - 128));
        }
        for status in (0..=0xff).step_by(2) {
            assert_eq!(guest_code(status), None, "{status}");
        }
        assert_eq!(guest_code(STATUS_RESET), None);
        assert_eq!(guest_code(-1), None);
        assert_eq!(guest_code(0x101), None);
    }

    #[test]
    fn every_code_the_kernel_writes_is_described() {
        for code in CODES {
            assert!(describe(code).is_some(), "{code}");
            assert_eq!(guest_code(qemu_status(code)), Some(code));
        }
        assert_eq!(describe(1), None);
        assert_eq!(describe(8), None);
    }

    #[test]
    fn device_argument_matches_the_port() {
        assert!(DEBUG_EXIT_DEVICE.starts_with("isa-debug-exit,"));
        assert!(DEBUG_EXIT_DEVICE.contains(&format!(",iobase={DEBUG_EXIT_PORT:#x},")));
        assert!(DEBUG_EXIT_DEVICE.ends_with(&format!(",iosize={DEBUG_EXIT_IOSIZE:#04x}")));
    }
}
