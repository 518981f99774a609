//! QEMU's `fw_cfg` device, read over its I/O ports: how the host hands the
//! guest what must not be on the kernel command line (the function's
//! environment, see [`mayfly_proto::boot::ENV_FW_CFG_NAME`]).
//!
//! The port interface, not DMA: it needs no memory shared with the device,
//! and the few hundred bytes read cost well under a millisecond.

use alloc::vec::Vec;

use crate::arch;

/// Selector register (16 bits, little-endian).
const SELECTOR: u16 = 0x510;
/// Data register: one byte per read, advancing.
const DATA: u16 = 0x511;
/// Key of the signature, "QEMU" where the device exists.
const KEY_SIGNATURE: u16 = 0x0000;
/// Key of the file directory.
const KEY_FILE_DIR: u16 = 0x0019;
/// Length of a name in the file directory.
const NAME_LEN: usize = 56;
/// The largest file read: the environment, percent-encoded, with room.
const MAX_FILE: u32 = 64 * 1024;

fn select(key: u16) {
    // SAFETY: writing the fw_cfg selector only chooses the item that later
    // data reads return; it touches no guest memory.
    unsafe { arch::outw(SELECTOR, key) }
}

fn read_into(buf: &mut [u8]) {
    for byte in buf {
        // SAFETY: reading fw_cfg's data port returns the next byte of the
        // selected item; it touches no guest memory.
        *byte = unsafe { arch::inb(DATA) };
    }
}

fn read_be32() -> u32 {
    let mut b = [0u8; 4];
    read_into(&mut b);
    u32::from_be_bytes(b)
}

/// Whether the VM has a `fw_cfg` device (its signature reads "QEMU").
fn present() -> bool {
    select(KEY_SIGNATURE);
    let mut signature = [0u8; 4];
    read_into(&mut signature);
    &signature == b"QEMU"
}

/// The content of the `fw_cfg` file `name`, or `None` when there is no
/// `fw_cfg` device, no such file, or it is larger than 64 KiB.
pub fn read_file(name: &str) -> Option<Vec<u8>> {
    if !present() {
        return None;
    }
    select(KEY_FILE_DIR);
    let count = read_be32();
    let mut found = None;
    for _ in 0..count {
        let size = read_be32();
        let mut select_and_reserved = [0u8; 4];
        read_into(&mut select_and_reserved);
        let mut entry_name = [0u8; NAME_LEN];
        read_into(&mut entry_name);
        let len = entry_name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        if &entry_name[..len] == name.as_bytes() {
            let key = u16::from_be_bytes([select_and_reserved[0], select_and_reserved[1]]);
            found = Some((key, size));
            break;
        }
    }
    let (key, size) = found?;
    if size > MAX_FILE {
        return None;
    }
    select(key);
    let mut content = alloc::vec![0u8; size as usize];
    read_into(&mut content);
    Some(content)
}

/// Key of the number of CPUs the VM boots with (16 bits, little-endian).
const KEY_NB_CPUS: u16 = 0x0005;

/// The number of CPUs QEMU gave the VM (`-smp`), or `None` without a
/// `fw_cfg` device.
pub fn cpu_count() -> Option<u16> {
    if !present() {
        return None;
    }
    select(KEY_NB_CPUS);
    let mut count = [0u8; 2];
    read_into(&mut count);
    Some(u16::from_le_bytes(count))
}
