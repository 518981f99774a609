//! The load plan of a static x86_64 Linux executable: which bytes of the
//! file go where, with which protection, where execution starts, and what
//! the auxiliary vector says about the program headers.
//!
//! Accepted: ELF64, little-endian, `EM_X86_64`, and either `ET_EXEC` (loaded
//! where it says) or `ET_DYN` without `PT_INTERP` (a static-pie, loaded at
//! the `pie_base` given: its own start code relocates itself). Everything
//! in the file is treated as hostile: every offset, size and address is
//! checked before use and with checked arithmetic.
//!
//! Segments whose page-rounded ranges share a page are legal (real linkers
//! emit them: text ending and rodata starting in one page). Linux maps the
//! segments in order, each with `MAP_FIXED`, so the later one's mapping
//! overrides the shared page; the plan records the segments exactly as the
//! file gives them, sorted by address, and
//! [`crate::vma::AddressSpace::insert_image`] applies the same rule when
//! they are inserted in that order. Their byte ranges must not overlap.
//!
//! ```
//! use mayfly_linux::elf::{plan, ElfError};
//! assert_eq!(plan(b"#!/bin/sh\n", 0), Err(ElfError::NotElf));
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::vma::{
    page_aligned, page_down, page_up, Backing, PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE,
    USER_END, USER_START,
};

const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
/// The size of the ELF64 file header.
const EHDR_SIZE: usize = 64;
/// The size of one ELF64 program header, the only `e_phentsize` accepted
/// (as Linux accepts only its own).
pub const PHDR_SIZE: u16 = 56;
/// The largest program header table accepted, as Linux's loader limits it.
const MAX_PHDRS_BYTES: u64 = 65536;

/// One `PT_LOAD` segment, at its final (biased) address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Where the segment starts in memory (bias added); not necessarily
    /// page-aligned.
    pub vaddr: u64,
    /// Its size in memory; the bytes past `file_size` are zero (`.bss`).
    pub mem_size: u64,
    /// Where its bytes start in the file.
    pub file_offset: u64,
    /// How many bytes come from the file.
    pub file_size: u64,
    /// `PROT_*` bits.
    pub prot: u32,
}

impl Segment {
    /// The exclusive end in memory; it cannot overflow, [`plan`] checked.
    pub fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.mem_size)
    }

    /// The segment as a region's backing, the file being `source`: the
    /// file's byte `file_offset` lies at `vaddr`, and `file_size` bytes
    /// come from it.
    pub fn backing(&self, source: u32) -> Backing {
        Backing::File {
            source,
            start: self.vaddr,
            offset: self.file_offset,
            size: self.file_size,
        }
    }
}

/// How to load a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The entry point (bias added).
    pub entry: u64,
    /// The `PT_LOAD` segments with a size in memory, sorted by address.
    pub segments: Vec<Segment>,
    /// The address of the program headers in memory, for `AT_PHDR`: the
    /// `PT_PHDR`'s, else where the table falls inside a loaded segment,
    /// else 0 (no segment loads it; the program's libc then finds its
    /// headers another way, as under Linux).
    pub phdr: u64,
    /// The size of one program header, for `AT_PHENT`.
    pub phent: u16,
    /// The number of program headers, for `AT_PHNUM`.
    pub phnum: u16,
    /// What was added to every address: 0 for `ET_EXEC`, the `pie_base`
    /// given for `ET_DYN`.
    pub bias: u64,
    /// The page-aligned end of the highest segment: the initial break.
    pub end: u64,
}

/// Why a file cannot be loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Not an ELF file (no `\x7fELF`).
    NotElf,
    /// Not ELF64.
    WrongClass,
    /// Not x86_64: the `e_machine` found.
    WrongMachine(u16),
    /// Neither `ET_EXEC` nor `ET_DYN`: the `e_type` found.
    NotExecutable(u16),
    /// Dynamically linked: it names an interpreter (`PT_INTERP`).
    Dynamic,
    /// Inconsistent headers: what is wrong.
    Malformed(&'static str),
    /// A segment starts below [`USER_START`]: its (biased) address.
    BelowUserSpace(u64),
    /// A segment ends above user space, or its address overflows.
    OutsideUserSpace,
    /// No `PT_LOAD` segment with a size in memory.
    NoLoadSegments,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf => write!(f, "not an ELF file"),
            ElfError::WrongClass => write!(f, "not a 64-bit ELF file"),
            ElfError::WrongMachine(m) => write!(f, "not an x86_64 program (e_machine {m})"),
            ElfError::NotExecutable(t) => write!(f, "not an executable (e_type {t})"),
            ElfError::Dynamic => write!(
                f,
                "dynamically linked (it names an interpreter); link it statically"
            ),
            ElfError::Malformed(what) => write!(f, "malformed ELF: {what}"),
            ElfError::BelowUserSpace(addr) => {
                write!(
                    f,
                    "a segment at {addr:#x} lies below user space ({USER_START:#x})"
                )
            }
            ElfError::OutsideUserSpace => write!(f, "a segment lies outside user space"),
            ElfError::NoLoadSegments => write!(f, "no loadable segment"),
        }
    }
}

/// The little-endian field of `N` bytes at `at`, or `Malformed` if the
/// file is too short for it.
fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Malformed("truncated header"))
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, ElfError> {
    field(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, ElfError> {
    field(bytes, at).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, ElfError> {
    field(bytes, at).map(u64::from_le_bytes)
}

/// One program header, as the file gives it.
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
    align: u64,
}

/// Plans how to load `bytes`, a static executable; a static-pie is placed
/// at `pie_base`, which must be page-aligned.
pub fn plan(bytes: &[u8], pie_base: u64) -> Result<LoadPlan, ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(ElfError::NotElf);
    }
    if bytes.len() < EHDR_SIZE {
        return Err(ElfError::Malformed("truncated header"));
    }
    if bytes[4] != ELFCLASS64 {
        return Err(ElfError::WrongClass);
    }
    if bytes[5] != ELFDATA2LSB {
        return Err(ElfError::Malformed("not little-endian"));
    }
    let kind = u16_at(bytes, 16)?;
    let machine = u16_at(bytes, 18)?;
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let bias = match kind {
        ET_EXEC => 0,
        ET_DYN if page_aligned(pie_base) => pie_base,
        ET_DYN => return Err(ElfError::Malformed("unaligned load base")),
        other => return Err(ElfError::NotExecutable(other)),
    };
    let entry = u64_at(bytes, 24)?;
    let phoff = u64_at(bytes, 32)?;
    let phent = u16_at(bytes, 54)?;
    let phnum = u16_at(bytes, 56)?;
    if phent != PHDR_SIZE {
        return Err(ElfError::Malformed("program header size"));
    }
    let table = u64::from(phnum) * u64::from(phent);
    if phnum == 0 || table > MAX_PHDRS_BYTES {
        return Err(ElfError::Malformed("program header count"));
    }
    let table_end = phoff
        .checked_add(table)
        .filter(|&end| end <= bytes.len() as u64)
        .ok_or(ElfError::Malformed("program headers outside the file"))?;
    // Inside the file, so it fits a usize.
    let first = usize::try_from(phoff)
        .map_err(|_| ElfError::Malformed("program headers outside the file"))?;
    let phdrs = (0..usize::from(phnum))
        .map(|i| read_phdr(bytes, first + i * usize::from(PHDR_SIZE)))
        .collect::<Result<Vec<Phdr>, ElfError>>()?;
    // An interpreter is refused before anything else: it is the most
    // useful thing to tell about a dynamically linked program.
    if phdrs.iter().any(|p| p.kind == PT_INTERP) {
        return Err(ElfError::Dynamic);
    }

    let mut segments = Vec::new();
    for p in phdrs.iter().filter(|p| p.kind == PT_LOAD && p.mem_size > 0) {
        segments.push(segment(bytes, p, bias)?);
    }
    if segments.is_empty() {
        return Err(ElfError::NoLoadSegments);
    }
    // Stable: segments at one address keep the file's order.
    segments.sort_by_key(|s| s.vaddr);
    if segments.windows(2).any(|w| w[0].end() > w[1].vaddr) {
        return Err(ElfError::Malformed("overlapping segments"));
    }

    let entry = entry
        .checked_add(bias)
        .ok_or(ElfError::Malformed("entry point"))?;
    if !segments
        .iter()
        .any(|s| s.prot & PROT_EXEC != 0 && s.vaddr <= entry && entry < s.end())
    {
        return Err(ElfError::Malformed(
            "entry point outside an executable segment",
        ));
    }

    let phdr = match phdrs.iter().find(|p| p.kind == PT_PHDR) {
        Some(p) => p
            .vaddr
            .checked_add(bias)
            .ok_or(ElfError::OutsideUserSpace)?,
        None => phdrs
            .iter()
            .filter(|p| {
                p.kind == PT_LOAD
                    && p.offset <= phoff
                    && p.offset.saturating_add(p.file_size) >= table_end
            })
            .find_map(|p| (phoff - p.offset).checked_add(p.vaddr)?.checked_add(bias))
            .unwrap_or(0),
    };

    let end = segments
        .iter()
        .map(|s| page_up(s.end()).unwrap_or(USER_END))
        .max()
        .unwrap_or(USER_START);
    Ok(LoadPlan {
        entry,
        segments,
        phdr,
        phent,
        phnum,
        bias,
        end,
    })
}

fn read_phdr(bytes: &[u8], at: usize) -> Result<Phdr, ElfError> {
    Ok(Phdr {
        kind: u32_at(bytes, at)?,
        flags: u32_at(bytes, at + 4)?,
        offset: u64_at(bytes, at + 8)?,
        vaddr: u64_at(bytes, at + 16)?,
        file_size: u64_at(bytes, at + 32)?,
        mem_size: u64_at(bytes, at + 40)?,
        align: u64_at(bytes, at + 48)?,
    })
}

/// Checks one `PT_LOAD` and places it at its biased address.
fn segment(bytes: &[u8], p: &Phdr, bias: u64) -> Result<Segment, ElfError> {
    if p.file_size > p.mem_size {
        return Err(ElfError::Malformed(
            "segment's file size exceeds its memory size",
        ));
    }
    match p.offset.checked_add(p.file_size) {
        Some(end) if end <= bytes.len() as u64 => {}
        _ => return Err(ElfError::Malformed("segment outside the file")),
    }
    if p.align > 1 && p.vaddr % PAGE_SIZE != p.offset % PAGE_SIZE {
        return Err(ElfError::Malformed(
            "segment's address and offset disagree modulo the page size",
        ));
    }
    let vaddr = p
        .vaddr
        .checked_add(bias)
        .ok_or(ElfError::OutsideUserSpace)?;
    let end = vaddr
        .checked_add(p.mem_size)
        .and_then(page_up)
        .ok_or(ElfError::OutsideUserSpace)?;
    if page_down(vaddr) < USER_START {
        return Err(ElfError::BelowUserSpace(vaddr));
    }
    if end > USER_END {
        return Err(ElfError::OutsideUserSpace);
    }
    let mut prot = 0;
    if p.flags & PF_R != 0 {
        prot |= PROT_READ;
    }
    if p.flags & PF_W != 0 {
        prot |= PROT_WRITE;
    }
    if p.flags & PF_X != 0 {
        prot |= PROT_EXEC;
    }
    Ok(Segment {
        vaddr,
        mem_size: p.mem_size,
        file_offset: p.offset,
        file_size: p.file_size,
        prot,
    })
}

#[cfg(test)]
mod tests;
