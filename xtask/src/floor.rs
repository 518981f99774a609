//! The QEMU floor: the smallest PVH image there is, which powers off
//! through `isa-debug-exit` as its first act. Booting it with Mayfly's own
//! QEMU flags measures what QEMU costs before any guest code runs.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mayfly_proto::exit;

/// Where the image is loaded, as for real guests.
const LOAD_ADDR: u64 = 0x10_0000;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// Xen's PVH entry-point note type.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// 32-bit code: `mov al, OK; out DEBUG_EXIT_PORT, al; 1: hlt; jmp 1b`
/// (`out imm8, al` takes the port as one byte).
const CODE: [u8; 7] = [
    0xb0,
    exit::OK,
    0xe6,
    exit::DEBUG_EXIT_PORT as u8,
    0xf4,
    0xeb,
    0xfd,
];
const _: () = assert!(
    exit::DEBUG_EXIT_PORT <= 0xff,
    "out imm8 needs a one-byte port"
);

/// Builds the floor ELF bytes.
pub fn image() -> Vec<u8> {
    let note_offset = EHDR_SIZE + 2 * PHDR_SIZE;
    let note_len = 12 + 4 + 8;
    let code_offset = note_offset + note_len;
    let total = code_offset + CODE.len();
    let entry = LOAD_ADDR + code_offset as u64;

    let mut elf = Vec::with_capacity(total);
    // ELF header.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&(EHDR_SIZE as u64).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes());
    elf.extend_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
    elf.extend_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // no section headers
                                    // PT_LOAD: the whole file at 1 MiB, read + execute.
    push_phdr(&mut elf, 1, 5, 0, LOAD_ADDR, total as u64, 0x1000);
    // PT_NOTE; QEMU steps through notes by the segment's alignment, so it
    // must be the notes' own 4.
    let note_addr = LOAD_ADDR + note_offset as u64;
    push_phdr(
        &mut elf,
        4,
        4,
        note_offset as u64,
        note_addr,
        note_len as u64,
        4,
    );
    // The note: name "Xen", descriptor = entry point.
    elf.extend_from_slice(&4u32.to_le_bytes());
    elf.extend_from_slice(&8u32.to_le_bytes());
    elf.extend_from_slice(&XEN_ELFNOTE_PHYS32_ENTRY.to_le_bytes());
    elf.extend_from_slice(b"Xen\0");
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&CODE);
    debug_assert_eq!(elf.len(), total);
    elf
}

fn push_phdr(
    elf: &mut Vec<u8>,
    kind: u32,
    flags: u32,
    offset: u64,
    addr: u64,
    size: u64,
    align: u64,
) {
    elf.extend_from_slice(&kind.to_le_bytes());
    elf.extend_from_slice(&flags.to_le_bytes());
    elf.extend_from_slice(&offset.to_le_bytes());
    elf.extend_from_slice(&addr.to_le_bytes());
    elf.extend_from_slice(&addr.to_le_bytes());
    elf.extend_from_slice(&size.to_le_bytes());
    elf.extend_from_slice(&size.to_le_bytes());
    elf.extend_from_slice(&align.to_le_bytes());
}

/// Writes the floor image into `dir` and returns its path.
pub fn write(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("floor.elf");
    fs::write(&path, image()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_an_elf64_with_a_pvh_note_pointing_at_the_code() {
        let elf = image();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert_eq!(elf[4], 2, "ELF64");
        assert_eq!(u16::from_le_bytes([elf[18], elf[19]]), 62, "x86_64");
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        let note = EHDR_SIZE + 2 * PHDR_SIZE;
        assert_eq!(&elf[note + 12..note + 16], b"Xen\0");
        let desc = u64::from_le_bytes(elf[note + 16..note + 24].try_into().unwrap());
        assert_eq!(desc, entry);
        let code = (entry - LOAD_ADDR) as usize;
        assert_eq!(&elf[code..], &CODE);
        assert_eq!(
            &CODE[..4],
            &[0xb0, 0x00, 0xe6, 0xf4],
            "mov al, 0; out 0xf4, al"
        );
    }
}
