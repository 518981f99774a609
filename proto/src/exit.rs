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
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const CODES: [u8; 4] = [OK, FATAL, PANIC, EXCEPTION];

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
        assert_eq!(describe(5), None);
    }

    #[test]
    fn device_argument_matches_the_port() {
        assert!(DEBUG_EXIT_DEVICE.starts_with("isa-debug-exit,"));
        assert!(DEBUG_EXIT_DEVICE.contains(&format!(",iobase={DEBUG_EXIT_PORT:#x},")));
        assert!(DEBUG_EXIT_DEVICE.ends_with(&format!(",iosize={DEBUG_EXIT_IOSIZE:#04x}")));
    }
}
