//! What a `bootstrap` is: a native Mayfly image (ELF64, x86_64,
//! executable, with a Xen `PHYS32_ENTRY` note that QEMU boots through PVH),
//! or a static x86_64 Linux program (ET_EXEC, or a static-pie ET_DYN,
//! without PT_INTERP) that the generic Linux kernel image runs
//! ([`classify_elf`]); anything else is refused with what it is and what to
//! do. QEMU's own error for a kernel it cannot boot is terse, and a kernel
//! without a PVH entry note may be loaded some other way and fail in the
//! guest, so nothing unchecked reaches it.

use std::io::{Read, Seek, SeekFrom};

use thiserror::Error;

/// The first four bytes of every ELF file.
pub const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const EM_X86_64: u16 = 62;
const PT_NOTE: u32 = 4;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit PVH entry point.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Why an ELF file is not a bootable Mayfly image.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ElfError {
    /// Too short, or no ELF magic.
    #[error("not an ELF file")]
    NotElf,
    /// A `#!` script.
    #[error("a script (`{0}`), not an executable: Mayfly runs no shell or interpreter; a function's bootstrap is a static x86_64 Linux executable or a Mayfly unikernel image")]
    Script(String),
    /// A Linux program that needs the dynamic loader.
    #[error("a dynamically linked x86_64 Linux executable (it asks for {0}): Mayfly loads no shared libraries, so link it statically (Rust: -C target-feature=+crt-static; C: musl-gcc -static; Go: CGO_ENABLED=0)")]
    DynamicLinux(String),
    /// ELF32 or another class.
    #[error("not a 64-bit ELF (class {0}, expected 2): build for x86_64")]
    WrongClass(u8),
    /// Big-endian.
    #[error("not a little-endian ELF (data encoding {0})")]
    WrongEndianness(u8),
    /// Not for x86_64.
    #[error("ELF is for {name} (machine {number}), not x86_64 (62): build for x86_64", name = machine_name(*.0), number = .0)]
    WrongMachine(u16),
    /// A relocatable object, shared object or core dump.
    #[error("ELF type is {0}, not an executable (2)")]
    NotExecutable(u16),
    /// The program headers lie outside the file or are malformed.
    #[error("ELF program headers are malformed: {0}")]
    Malformed(&'static str),
    /// No Xen `PHYS32_ENTRY` note where a native image was needed: QEMU
    /// cannot boot it through PVH.
    #[error("a static x86_64 executable without a PVH entry note (Xen note type 18 in a PT_NOTE segment), such as a Linux program, not a Mayfly unikernel image")]
    NoPvhNote,
    /// A static ET_EXEC with a segment where the guest kernel lives (and
    /// no PVH note, so not a Mayfly image either).
    #[error("a static x86_64 executable linked below {lowest:#x} (it loads at {0:#x}) without a PVH entry note: as a Linux program it is linked below 0x400000 (ld.lld's default 0x200000?): link at 0x400000 (-Wl,--image-base=0x400000, or -Wl,-Ttext-segment=0x400000 with GNU ld) or as static-pie; as a Mayfly unikernel image it lacks its PVH entry note (Xen note type 18)", lowest = LINUX_LOWEST_ADDRESS)]
    LinkedTooLow(u64),
    /// A static Linux program where a native image was needed, or the
    /// other way round (`mayfly exec` of a unikernel image).
    #[error("a Mayfly unikernel image, not a Linux program: run it with `mayfly run` or deploy it as a function")]
    NotLinux,
}

/// The lowest address an ET_EXEC Linux program may load at.
pub use mayfly_proto::limits::LINUX_LOWEST_ADDRESS;

/// Which kind of function a package is, by its `bootstrap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackageKind {
    /// A native Mayfly image, booted as QEMU's `-kernel`.
    Native,
    /// A static Linux program, run by the generic Linux kernel image from
    /// the package's pack (the initrd).
    Linux,
}

impl PackageKind {
    /// Lower-case name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageKind::Native => "native",
            PackageKind::Linux => "linux",
        }
    }
}

/// What a static Linux program is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxInfo {
    /// Position-independent (a static-pie ET_DYN, loaded at a base the
    /// guest chooses) rather than ET_EXEC at its own addresses.
    pub static_pie: bool,
    /// The entry point (relative to the base for a static-pie).
    pub entry: u64,
    /// The lowest address a PT_LOAD segment asks for.
    pub lowest_load: u64,
}

/// A `bootstrap` that can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// A native Mayfly image.
    Native(ElfInfo),
    /// A static x86_64 Linux program.
    Linux(LinuxInfo),
}

impl Bootstrap {
    /// Its kind.
    pub fn kind(&self) -> PackageKind {
        match self {
            Bootstrap::Native(_) => PackageKind::Native,
            Bootstrap::Linux(_) => PackageKind::Linux,
        }
    }
}

/// The usual name of an ELF machine number, for the refusal's message.
fn machine_name(machine: u16) -> &'static str {
    match machine {
        3 => "32-bit x86",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "64-bit PowerPC",
        22 => "s390",
        40 => "32-bit ARM",
        183 => "aarch64 (64-bit ARM)",
        243 => "RISC-V",
        _ => "another machine",
    }
}

/// What validation learned about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElfInfo {
    /// The 32-bit PVH entry address from the note.
    pub pvh_entry: u32,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Where an ELF's bytes come from: memory, or a file read piece by piece
/// so that a 250 MB image is never held whole.
trait Source {
    /// The file's length.
    fn len(&self) -> u64;
    /// `len` bytes at `offset`; `None` beyond the end or on a read error.
    fn bytes(&mut self, offset: u64, len: usize) -> Option<Vec<u8>>;
}

impl Source for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn bytes(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let at = usize::try_from(offset).ok()?;
        self.get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
    }
}

struct Reader<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek> Source for Reader<R> {
    fn len(&self) -> u64 {
        self.len
    }
    fn bytes(&mut self, offset: u64, len: usize) -> Option<Vec<u8>> {
        if offset.checked_add(len as u64)? > self.len {
            return None;
        }
        self.inner.seek(SeekFrom::Start(offset)).ok()?;
        let mut buf = vec![0; len];
        self.inner.read_exact(&mut buf).ok()?;
        Some(buf)
    }
}

/// The most bytes of program headers or of one note segment read: real
/// images have a few hundred; more is a malformed (or hostile) file.
const MAX_TABLE_BYTES: u64 = 1 << 20;

/// Checks that `elf` is an image QEMU can boot through PVH (a native
/// image; a Linux program is [`ElfError::NoPvhNote`]).
pub fn validate_elf(elf: &[u8]) -> Result<ElfInfo, ElfError> {
    native(classify(&mut { elf }))
}

/// [`validate_elf`] on a file of `len` bytes, reading only its headers and
/// notes.
pub fn validate_elf_reader<R: Read + Seek>(reader: R, len: u64) -> Result<ElfInfo, ElfError> {
    native(classify(&mut Reader { inner: reader, len }))
}

/// A native image, or why not: a Linux program (however linked) is not
/// one.
fn native(bootstrap: Result<Bootstrap, ElfError>) -> Result<ElfInfo, ElfError> {
    match bootstrap {
        Ok(Bootstrap::Native(info)) => Ok(info),
        Ok(Bootstrap::Linux(_)) | Err(ElfError::LinkedTooLow(_)) => Err(ElfError::NoPvhNote),
        Err(e) => Err(e),
    }
}

/// What `elf` is as a function's `bootstrap`: a native image or a static
/// Linux program; anything else is refused with what it is.
pub fn classify_elf(elf: &[u8]) -> Result<Bootstrap, ElfError> {
    classify(&mut { elf })
}

/// [`classify_elf`] on a file of `len` bytes, reading only its headers
/// and notes.
pub fn classify_elf_reader<R: Read + Seek>(reader: R, len: u64) -> Result<Bootstrap, ElfError> {
    classify(&mut Reader { inner: reader, len })
}

/// [`classify_elf_reader`] for a program `mayfly exec` runs: a static
/// Linux program only.
pub fn linux_program<R: Read + Seek>(reader: R, len: u64) -> Result<LinuxInfo, ElfError> {
    match classify_elf_reader(reader, len)? {
        Bootstrap::Linux(info) => Ok(info),
        Bootstrap::Native(_) => Err(ElfError::NotLinux),
    }
}

fn classify(elf: &mut impl Source) -> Result<Bootstrap, ElfError> {
    let start = elf
        .bytes(0, elf.len().min(128) as usize)
        .unwrap_or_default();
    if let Some(script) = start.strip_prefix(b"#!") {
        let line = script.split(|&b| b == b'\n').next().unwrap_or_default();
        return Err(ElfError::Script(format!(
            "#!{}",
            String::from_utf8_lossy(line).trim_end()
        )));
    }
    let header = elf.bytes(0, 64).ok_or(ElfError::NotElf)?;
    if &header[..4] != ELF_MAGIC {
        return Err(ElfError::NotElf);
    }
    if header[4] != ELFCLASS64 {
        return Err(ElfError::WrongClass(header[4]));
    }
    if header[5] != ELFDATA2LSB {
        return Err(ElfError::WrongEndianness(header[5]));
    }
    let machine = u16_at(&header, 18).ok_or(ElfError::NotElf)?;
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let kind = u16_at(&header, 16).ok_or(ElfError::NotElf)?;
    if kind != ET_EXEC && kind != ET_DYN {
        return Err(ElfError::NotExecutable(kind));
    }
    let entry = u64_at(&header, 24).ok_or(ElfError::NotElf)?;
    let phoff = u64_at(&header, 32).ok_or(ElfError::NotElf)?;
    let phentsize = usize::from(u16_at(&header, 54).ok_or(ElfError::NotElf)?);
    let phnum = usize::from(u16_at(&header, 56).ok_or(ElfError::NotElf)?);
    if phnum > 0 && phentsize < 56 {
        return Err(ElfError::Malformed("program header entries are too small"));
    }
    let outside = ElfError::Malformed("a program header lies outside the file");
    let table_len = phnum * phentsize;
    if table_len as u64 > MAX_TABLE_BYTES {
        return Err(outside);
    }
    let table = elf.bytes(phoff, table_len).ok_or(outside)?;
    let mut pvh_entry = None;
    let mut interpreter = None;
    let mut lowest_load: Option<u64> = None;
    for i in 0..phnum {
        let at = i * phentsize;
        if u32_at(&table, at) == Some(PT_LOAD) {
            let vaddr = u64_at(&table, at + 16).unwrap_or(0);
            lowest_load = Some(lowest_load.map_or(vaddr, |l| l.min(vaddr)));
            continue;
        }
        if u32_at(&table, at) == Some(PT_INTERP) {
            let offset = u64_at(&table, at + 8).unwrap_or(u64::MAX);
            let size = u64_at(&table, at + 32).unwrap_or(u64::MAX).min(256);
            let path = elf.bytes(offset, size as usize).unwrap_or_default();
            let path = path.split(|&b| b == 0).next().unwrap_or_default();
            interpreter = Some(String::from_utf8_lossy(path).into_owned());
            continue;
        }
        if u32_at(&table, at) != Some(PT_NOTE) || pvh_entry.is_some() {
            continue;
        }
        let offset = u64_at(&table, at + 8).unwrap_or(u64::MAX);
        let size = u64_at(&table, at + 32).unwrap_or(u64::MAX);
        let align = u64_at(&table, at + 48).unwrap_or(0);
        let outside = ElfError::Malformed("a PT_NOTE segment lies outside the file");
        if size > MAX_TABLE_BYTES.min(elf.len()) {
            return Err(outside);
        }
        let notes = elf.bytes(offset, size as usize).ok_or(outside)?;
        pvh_entry = find_pvh_note(&notes, if align == 8 { 8 } else { 4 });
    }
    match (pvh_entry, interpreter) {
        (Some(entry), _) if kind == ET_EXEC => Ok(Bootstrap::Native(ElfInfo { pvh_entry: entry })),
        (_, Some(interpreter)) => Err(ElfError::DynamicLinux(interpreter)),
        // A PVH image must be loaded at its addresses.
        (Some(_), None) => Err(ElfError::NotExecutable(kind)),
        // ET_EXEC, or a static-pie ET_DYN.
        (None, None) => {
            let lowest_load =
                lowest_load.ok_or(ElfError::Malformed("no loadable (PT_LOAD) segment"))?;
            if kind == ET_EXEC && lowest_load < LINUX_LOWEST_ADDRESS {
                return Err(ElfError::LinkedTooLow(lowest_load));
            }
            Ok(Bootstrap::Linux(LinuxInfo {
                static_pie: kind == ET_DYN,
                entry,
                lowest_load,
            }))
        }
    }
}

/// Walks one PT_NOTE segment looking for `Xen` note 18.
fn find_pvh_note(mut notes: &[u8], align: usize) -> Option<u32> {
    let pad = |n: usize| n.div_ceil(align) * align;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let kind = u32_at(notes, 8)?;
        let name = notes.get(12..12 + namesz)?;
        let desc_at = 12 + pad(namesz);
        let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && name == b"Xen\0" && desc.len() >= 4 {
            return u32_at(desc, 0);
        }
        notes = notes.get(desc_at + pad(descsz)..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{linux_elf, pvh_elf, EXIT_OK};

    #[test]
    fn a_pvh_image_is_accepted() {
        let elf = pvh_elf(EXIT_OK);
        let info = validate_elf(&elf).unwrap();
        assert!(info.pvh_entry >= 0x100000);
    }

    #[test]
    fn each_defect_has_its_error() {
        let good = pvh_elf(EXIT_OK);
        let with = |at: usize, bytes: &[u8]| {
            let mut elf = good.clone();
            elf[at..at + bytes.len()].copy_from_slice(bytes);
            validate_elf(&elf)
        };
        assert_eq!(
            validate_elf(b"#!/usr/bin/env python3\nprint(1)\n"),
            Err(ElfError::Script("#!/usr/bin/env python3".into()))
        );
        assert_eq!(validate_elf(b"\x7fELF"), Err(ElfError::NotElf));
        assert_eq!(validate_elf(&good[..40]), Err(ElfError::NotElf));
        assert_eq!(with(4, &[1]), Err(ElfError::WrongClass(1)));
        assert_eq!(with(5, &[2]), Err(ElfError::WrongEndianness(2)));
        assert_eq!(with(18, &[3, 0]), Err(ElfError::WrongMachine(3)));
        assert_eq!(with(16, &[3, 0]), Err(ElfError::NotExecutable(3)));
        assert_eq!(with(16, &[1, 0]), Err(ElfError::NotExecutable(1)));
        assert_eq!(with(18, &[183, 0]), Err(ElfError::WrongMachine(183)));
        assert!(ElfError::WrongMachine(183).to_string().contains("aarch64"));
        assert!(matches!(with(32, &[0xff; 8]), Err(ElfError::Malformed(_))));
        // The note's type is no longer 18.
        let note = crate::testing::NOTE_OFFSET;
        assert_eq!(with(note + 8, &[17, 0, 0, 0]), Err(ElfError::NoPvhNote));
        // The note's name is no longer "Xen".
        assert_eq!(with(note + 12, b"Gen"), Err(ElfError::NoPvhNote));
        // The PT_NOTE header becomes a PT_NULL.
        assert_eq!(with(64 + 56, &[0, 0, 0, 0]), Err(ElfError::NoPvhNote));
    }

    /// A Linux program is told apart from a unikernel image, and a
    /// dynamically linked one is told how to link statically.
    #[test]
    fn linux_programs_are_named_for_what_they_are() {
        let good = pvh_elf(EXIT_OK);
        // The PT_NOTE header (the second) becomes a PT_INTERP whose path
        // is the note's bytes up to their first NUL.
        let mut dynamic = good.clone();
        dynamic[64 + 56..64 + 60].copy_from_slice(&PT_INTERP.to_le_bytes());
        let err = validate_elf(&dynamic).unwrap_err();
        assert!(matches!(err, ElfError::DynamicLinux(_)), "{err:?}");
        assert!(err.to_string().contains("-C target-feature=+crt-static"));
        assert!(err.to_string().contains("musl-gcc -static"));
        assert!(err.to_string().contains("CGO_ENABLED=0"));
        // Static-pie: ET_DYN without PT_INTERP or PVH note.
        let mut static_pie = good.clone();
        static_pie[16] = 3;
        static_pie[64 + 56..64 + 60].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(validate_elf(&static_pie), Err(ElfError::NoPvhNote));
        // The system's own shell is a dynamically linked Linux program.
        if let Ok(sh) = std::fs::read("/bin/sh") {
            if sh.starts_with(ELF_MAGIC) {
                assert!(
                    matches!(validate_elf(&sh), Err(ElfError::DynamicLinux(ref i)) if i.contains("ld-linux")),
                    "{:?}",
                    validate_elf(&sh)
                );
            }
        }
    }

    /// Static Linux programs are accepted as Linux functions: ET_EXEC at
    /// or above 0x400000, and static-pie anywhere; below 0x400000 an
    /// ET_EXEC is refused with how to link it.
    #[test]
    fn static_linux_programs_are_classified() {
        let exec = linux_elf(ET_EXEC, 0x40_0000, None);
        assert_eq!(
            classify_elf(&exec),
            Ok(Bootstrap::Linux(LinuxInfo {
                static_pie: false,
                entry: 0x40_0000 + 0x78,
                lowest_load: 0x40_0000
            }))
        );
        assert_eq!(classify_elf(&exec).unwrap().kind(), PackageKind::Linux);
        // The same as a native image is not one.
        assert_eq!(validate_elf(&exec), Err(ElfError::NoPvhNote));
        let pie = linux_elf(ET_DYN, 0, None);
        assert!(matches!(
            classify_elf(&pie),
            Ok(Bootstrap::Linux(LinuxInfo {
                static_pie: true,
                lowest_load: 0,
                ..
            }))
        ));
        let low = linux_elf(ET_EXEC, 0x20_0000, None);
        let err = classify_elf(&low).unwrap_err();
        assert_eq!(err, ElfError::LinkedTooLow(0x20_0000));
        let message = err.to_string();
        assert!(message.contains("linked below 0x400000"), "{message}");
        assert!(message.contains("ld.lld's default 0x200000?"), "{message}");
        assert!(message.contains("static-pie"), "{message}");
        assert_eq!(validate_elf(&low), Err(ElfError::NoPvhNote));
        let dynamic = linux_elf(ET_DYN, 0, Some(b"/lib64/ld-linux-x86-64.so.2\0"));
        assert_eq!(
            classify_elf(&dynamic),
            Err(ElfError::DynamicLinux("/lib64/ld-linux-x86-64.so.2".into()))
        );
        // A native image stays one.
        let native = pvh_elf(EXIT_OK);
        assert!(matches!(classify_elf(&native), Ok(Bootstrap::Native(_))));
        let len = native.len() as u64;
        assert_eq!(
            linux_program(std::io::Cursor::new(&native), len),
            Err(ElfError::NotLinux)
        );
        let len = exec.len() as u64;
        assert!(linux_program(std::io::Cursor::new(&exec), len).is_ok());
        // The host's own programs are dynamically linked: refused.
        if let Ok(sh) = std::fs::read("/bin/sh") {
            assert!(matches!(
                classify_elf(&sh),
                Err(ElfError::DynamicLinux(_) | ElfError::Script(_))
            ));
        }
    }

    #[test]
    fn a_file_is_checked_as_its_bytes_are() {
        let elf = pvh_elf(EXIT_OK);
        let len = elf.len() as u64;
        let from_file = validate_elf_reader(std::io::Cursor::new(&elf), len).unwrap();
        assert_eq!(from_file, validate_elf(&elf).unwrap());
        let mut broken = elf.clone();
        broken[18] = 3;
        assert_eq!(
            validate_elf_reader(std::io::Cursor::new(&broken), len),
            Err(ElfError::WrongMachine(3))
        );
        // A file shorter than it says it is.
        assert!(matches!(
            validate_elf_reader(std::io::Cursor::new(&elf[..100]), len),
            Err(ElfError::Malformed(_))
        ));
    }

    #[test]
    fn notes_before_the_pvh_one_are_skipped() {
        let mut notes = Vec::new();
        for (name, kind, desc) in [
            (&b"GNU\0"[..], 3u32, &b"0123456"[..]),
            (&b"Xen\0"[..], 18, &0x1234u32.to_le_bytes()[..]),
        ] {
            notes.extend((name.len() as u32).to_le_bytes());
            notes.extend((desc.len() as u32).to_le_bytes());
            notes.extend(kind.to_le_bytes());
            notes.extend(name);
            notes.extend(desc);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
        }
        assert_eq!(find_pvh_note(&notes, 4), Some(0x1234));
        assert_eq!(find_pvh_note(&notes[..20], 4), None);
    }
}
