//! The console: COM1 for early boot and last words, and a buffered virtio
//! console for everything the function logs.
//!
//! A 16550 UART costs QEMU one host `write` per byte, far too slow for a
//! function that logs megabytes; the virtio console moves a whole buffer
//! per notification. Both reach the same host stream, so the order of
//! lines is kept as long as the buffer is flushed before COM1 is used.

use core::fmt::{self, Write};

use mayfly_proto::console::{COM1_PORT, KERNEL_PREFIX};
use virtio_drivers::device::console::VirtIOConsole;
use virtio_drivers::transport::mmio::MmioTransport;

use crate::arch::outb;
use crate::clock;
use crate::global::Global;
use crate::virtio::KernelHal;

/// Bytes gathered before a write to the virtio console.
const BUFFER_BYTES: usize = 16 * 1024;
/// A line is written at once unless the previous write was this recent:
/// single lines appear promptly, floods go out in full buffers.
const BATCH_WINDOW_MICROS: u64 = 1_000;

struct Console {
    device: Option<VirtIOConsole<KernelHal, MmioTransport<'static>>>,
    buffer: [u8; BUFFER_BYTES],
    len: usize,
    last_flush_micros: u64,
}

static CONSOLE: Global<Console> = Global::new(Console {
    device: None,
    buffer: [0; BUFFER_BYTES],
    len: 0,
    last_flush_micros: 0,
});

impl Console {
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        match &mut self.device {
            Some(device) => {
                if device.send_bytes(&self.buffer[..self.len]).is_err() {
                    serial_write(&self.buffer[..self.len]);
                }
            }
            None => serial_write(&self.buffer[..self.len]),
        }
        self.len = 0;
        self.last_flush_micros = clock::micros();
    }

    fn write(&mut self, mut bytes: &[u8]) {
        let has_newline = bytes.contains(&b'\n');
        while !bytes.is_empty() {
            let room = BUFFER_BYTES - self.len;
            let take = room.min(bytes.len());
            self.buffer[self.len..self.len + take].copy_from_slice(&bytes[..take]);
            self.len += take;
            bytes = &bytes[take..];
            if self.len == BUFFER_BYTES {
                self.flush();
            }
        }
        if has_newline && clock::micros() - self.last_flush_micros >= BATCH_WINDOW_MICROS {
            self.flush();
        }
    }
}

fn serial_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: COM1's data register; QEMU's UART never drops a byte, so
        // there is no need to poll the line status.
        unsafe { outb(COM1_PORT, b) };
    }
}

/// Writes straight to COM1, bypassing the buffer: for boot failures.
pub fn early_write(text: &str) {
    serial_write(text.as_bytes());
}

/// Writes one line of the kernel's own straight to COM1, without
/// allocating: `message` after [`KERNEL_PREFIX`], which is how the host
/// tells the kernel's lines from the function's log.
pub(crate) fn kernel_line(message: fmt::Arguments) {
    struct Serial;
    impl Write for Serial {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            serial_write(s.as_bytes());
            Ok(())
        }
    }
    let _ = writeln!(Serial, "{KERNEL_PREFIX}{message}");
}

/// Attaches the virtio console; until then, output goes to COM1.
pub(crate) fn attach(device: VirtIOConsole<KernelHal, MmioTransport<'static>>) {
    CONSOLE.with(|console| console.device = Some(device));
}

/// Appends to the console. Never fails: if the console is busy (a panic in
/// the middle of a write), the text goes straight to COM1.
pub fn write_bytes(bytes: &[u8]) {
    if CONSOLE.with(|console| console.write(bytes)).is_none() {
        serial_write(bytes);
    }
}

/// Writes out whatever is buffered.
pub fn flush() {
    CONSOLE.with(|console| console.flush());
}

/// A `fmt::Write` over the console, for the logging macros.
pub struct ConsoleWriter;

impl Write for ConsoleWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _ = ConsoleWriter.write_fmt(args);
}

/// Writes a line to the function's log (the guest console), like
/// `println!`.
///
/// ```ignore
/// mayfly_kernel::log!("processing {} items", items.len());
/// ```
#[macro_export]
macro_rules! log {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => {{
        $crate::console::_print(format_args!($($arg)*));
        $crate::console::write_bytes(b"\n");
    }};
}
