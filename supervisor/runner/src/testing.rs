//! Tiny hand-assembled guest images, for tests that need a real VM but not a
//! real unikernel: they prove the QEMU plumbing (flags, exit status, console,
//! timeouts) without depending on the guest build.
//!
//! Each image is one ELF64 with a PT_LOAD of the whole file at 1 MiB and a
//! Xen PVH note; the program runs in 32-bit protected mode, where QEMU's PVH
//! boot leaves the CPU.

/// Where the PVH note starts in an image from [`pvh_elf`].
pub const NOTE_OFFSET: usize = 64 + 2 * 56;
const LOAD_ADDRESS: u64 = 0x10_0000;

/// A program that powers off with isa-debug-exit value 0 ("posted its
/// result"), which QEMU turns into exit status 1.
pub const EXIT_OK: &[u8] = &[
    0x66, 0xBA, 0xF4, 0x00, // mov dx, 0xf4
    0xB8, 0x00, 0x00, 0x00, 0x00, // mov eax, 0
    0xEF, // out dx, eax
    0xF4, 0xEB, 0xFD, // 1: hlt; jmp 1b
];

/// A program that spins forever.
pub const SPIN: &[u8] = &[0xEB, 0xFE];

/// A program that writes `text` to COM1, then powers off with
/// isa-debug-exit value `exit` (QEMU's status becomes `exit << 1 | 1`).
pub fn print_then_exit(text: &[u8], exit: u32) -> Vec<u8> {
    let mut code = vec![0x66, 0xBA, 0xF8, 0x03]; // mov dx, 0x3f8
    for &b in text {
        code.extend([0xB0, b, 0xEE]); // mov al, b; out dx, al
    }
    code.extend([0x66, 0xBA, 0xF4, 0x00, 0xB8]); // mov dx, 0xf4; mov eax, ..
    code.extend(exit.to_le_bytes());
    code.extend([0xEF, 0xF4, 0xEB, 0xFD]); // out dx, eax; 1: hlt; jmp 1b
    code
}

/// Wraps 32-bit code into a PVH-bootable ELF64 image.
pub fn pvh_elf(code: &[u8]) -> Vec<u8> {
    let code_offset = NOTE_OFFSET + 20;
    let entry = LOAD_ADDRESS + code_offset as u64;
    let total = (code_offset + code.len()) as u64;
    let mut elf = Vec::new();
    elf.extend(b"\x7fELF");
    elf.extend([2, 1, 1, 0]); // ELF64, little-endian, version 1, SysV ABI
    elf.extend([0; 8]);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(62u16.to_le_bytes()); // EM_X86_64
    elf.extend(1u32.to_le_bytes());
    elf.extend(entry.to_le_bytes());
    elf.extend(64u64.to_le_bytes()); // e_phoff
    elf.extend(0u64.to_le_bytes()); // e_shoff
    elf.extend(0u32.to_le_bytes()); // e_flags
    for half in [64u16, 56, 2, 64, 0, 0] {
        elf.extend(half.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    let phdr = |elf: &mut Vec<u8>, kind: u32, flags: u32, offset: u64, size: u64, align: u64| {
        elf.extend(kind.to_le_bytes());
        elf.extend(flags.to_le_bytes());
        elf.extend(offset.to_le_bytes());
        elf.extend((LOAD_ADDRESS + offset).to_le_bytes()); // vaddr
        elf.extend((LOAD_ADDRESS + offset).to_le_bytes()); // paddr
        elf.extend(size.to_le_bytes());
        elf.extend(size.to_le_bytes());
        elf.extend(align.to_le_bytes());
    };
    phdr(&mut elf, 1, 5, 0, total, 0x1000); // PT_LOAD, R+X
    phdr(&mut elf, 4, 4, NOTE_OFFSET as u64, 20, 4); // PT_NOTE
    assert_eq!(elf.len(), NOTE_OFFSET);
    elf.extend(4u32.to_le_bytes()); // namesz
    elf.extend(4u32.to_le_bytes()); // descsz
    elf.extend(18u32.to_le_bytes()); // XEN_ELFNOTE_PHYS32_ENTRY
    elf.extend(b"Xen\0");
    elf.extend((entry as u32).to_le_bytes());
    elf.extend(code);
    elf
}

/// A minimal static x86_64 Linux ELF: `kind` (2 = ET_EXEC, 3 = ET_DYN),
/// one PT_LOAD of the whole file at `load_address` and, when
/// `interpreter` is given, a PT_INTERP naming it (a dynamic program). The
/// code is `exit_group(0)`, right after the program headers (the entry is
/// `load_address + 0x78` without an interpreter).
pub fn linux_elf(kind: u16, load_address: u64, interpreter: Option<&[u8]>) -> Vec<u8> {
    let phnum: u16 = if interpreter.is_some() { 2 } else { 1 };
    let code_offset = 64 + 56 * u64::from(phnum);
    // mov eax, 231; xor edi, edi; syscall
    let code: &[u8] = &[0xB8, 0xE7, 0x00, 0x00, 0x00, 0x31, 0xFF, 0x0F, 0x05];
    let interp = interpreter.unwrap_or_default();
    let interp_offset = code_offset + code.len() as u64;
    let total = interp_offset + interp.len() as u64;
    let mut elf = Vec::new();
    elf.extend(b"\x7fELF");
    elf.extend([2, 1, 1, 0]);
    elf.extend([0; 8]);
    elf.extend(kind.to_le_bytes());
    elf.extend(62u16.to_le_bytes());
    elf.extend(1u32.to_le_bytes());
    elf.extend((load_address + code_offset).to_le_bytes());
    elf.extend(64u64.to_le_bytes());
    elf.extend(0u64.to_le_bytes());
    elf.extend(0u32.to_le_bytes());
    for half in [64u16, 56, phnum, 64, 0, 0] {
        elf.extend(half.to_le_bytes());
    }
    let phdr = |elf: &mut Vec<u8>, kind: u32, flags: u32, offset: u64, size: u64, align: u64| {
        elf.extend(kind.to_le_bytes());
        elf.extend(flags.to_le_bytes());
        elf.extend(offset.to_le_bytes());
        elf.extend((load_address + offset).to_le_bytes());
        elf.extend((load_address + offset).to_le_bytes());
        elf.extend(size.to_le_bytes());
        elf.extend(size.to_le_bytes());
        elf.extend(align.to_le_bytes());
    };
    phdr(&mut elf, 1, 5, 0, total, 0x1000);
    if interpreter.is_some() {
        phdr(&mut elf, 3, 4, interp_offset, interp.len() as u64, 1);
    }
    elf.extend(code);
    elf.extend(interp);
    elf
}
