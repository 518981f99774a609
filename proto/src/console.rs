//! The guest's console as the host reads it: the function's log and the
//! kernel's own lines share one stream (COM1 and the virtio console), and
//! the kernel marks its own with [`KERNEL_PREFIX`].
//!
//! ```
//! use mayfly_proto::console::{kernel_message, KERNEL_PREFIX};
//! let line = format!("{KERNEL_PREFIX}fatal: no virtio-net device");
//! assert_eq!(kernel_message(&line), Some("fatal: no virtio-net device"));
//! assert_eq!(kernel_message("a line the function logged"), None);
//! ```

/// I/O port of the first 16550 UART (COM1), where the kernel writes early
/// and last words; QEMU's `-serial` is attached to it.
pub const COM1_PORT: u16 = 0x3f8;

/// How every line the kernel itself writes to the console begins (boot
/// failures, fatal errors, CPU exceptions); the host quotes the last such
/// line when a VM ends without answering.
pub const KERNEL_PREFIX: &str = "mayfly: ";

/// The message of a kernel line (the text after [`KERNEL_PREFIX`]), or
/// `None` if `line` is not one, for example a line the function logged.
pub fn kernel_message(line: &str) -> Option<&str> {
    line.strip_prefix(KERNEL_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_only() {
        assert_eq!(kernel_message("mayfly: x"), Some("x"));
        assert_eq!(kernel_message("mayfly: "), Some(""));
        assert_eq!(kernel_message("mayfly:x"), None);
        assert_eq!(kernel_message(" mayfly: x"), None);
        assert_eq!(kernel_message(""), None);
    }
}
