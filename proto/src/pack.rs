//! The package as a Linux function's VM receives it: a flat archive,
//! handed to QEMU as the initrd, that the guest reads in place.
//!
//! A zip is the wrong thing to hand a guest: inflating it under TCG costs
//! milliseconds per megabyte and the result must be copied again. The host
//! therefore unpacks a package once (when it is cached) into a pack: a
//! header, a table of entries, their names, and then every file's bytes,
//! each starting on a 4 KiB boundary, so the guest can serve `read` and
//! `mmap` straight from the initrd and could map a file's pages without
//! copying them.
//!
//! Layout (little-endian):
//!
//! | at | size | what |
//! |---|---|---|
//! | 0 | 8 | [`MAGIC`] |
//! | 8 | 4 | [`VERSION`] |
//! | 12 | 4 | number of entries |
//! | 16 | 8 | total length of the pack |
//! | 24 | 40 × n | entries: name offset u32, name length u32, kind u32, mode u32, data offset u64, size u64, reserved u64 |
//! | … | | names (UTF-8, relative paths without a leading `/`) |
//! | aligned to 4096 | | each file's (or symlink's target's) bytes |
//!
//! The host lays a pack out with [`plan`] and writes the data itself (it
//! streams large files); the guest checks one with [`Pack::parse`], which
//! validates every entry once so that reading afterwards cannot fail.
//!
//! ```
//! use mayfly_proto::pack::{self, EntryKind, EntrySpec, Pack};
//! let specs = [
//!     EntrySpec::file("bootstrap", 0o755, 5),
//!     EntrySpec::dir("data", 0o755),
//!     EntrySpec::file("data/a.txt", 0o644, 2),
//! ];
//! let plan = pack::plan(&specs).unwrap();
//! let mut bytes = plan.header.clone();
//! bytes.resize(plan.total_len as usize, 0);
//! let at = plan.data_offsets[0] as usize;
//! bytes[at..at + 5].copy_from_slice(b"\x7fELF!");
//! let at = plan.data_offsets[2] as usize;
//! bytes[at..at + 2].copy_from_slice(b"hi");
//!
//! let pack = Pack::parse(&bytes).unwrap();
//! let file = pack.find("data/a.txt").unwrap();
//! assert_eq!((file.kind, file.data), (EntryKind::File, &b"hi"[..]));
//! assert_eq!(pack.find("bootstrap").unwrap().mode, 0o755);
//! assert_eq!(pack.entries().count(), 3);
//! ```

use alloc::vec::Vec;
use core::fmt;

/// The first eight bytes of a pack.
pub const MAGIC: &[u8; 8] = b"MAYFLYPK";
/// The layout version written by [`plan`].
pub const VERSION: u32 = 1;
/// Every file's bytes start at a multiple of this.
pub const DATA_ALIGN: u64 = 4096;
/// The most entries a pack may hold (Lambda packages rarely hold a tenth).
pub const MAX_ENTRIES: usize = 65_536;
/// The longest path of an entry, as on Linux.
pub const MAX_PATH: usize = 4096;

const HEADER_LEN: usize = 24;
const ENTRY_LEN: usize = 40;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file; its data is its content.
    File,
    /// A directory; no data.
    Dir,
    /// A symbolic link; its data is the target.
    Symlink,
}

impl EntryKind {
    fn code(self) -> u32 {
        match self {
            EntryKind::File => 1,
            EntryKind::Dir => 2,
            EntryKind::Symlink => 3,
        }
    }

    fn from_code(code: u32) -> Option<EntryKind> {
        match code {
            1 => Some(EntryKind::File),
            2 => Some(EntryKind::Dir),
            3 => Some(EntryKind::Symlink),
            _ => None,
        }
    }
}

/// Why a pack cannot be laid out or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackError {
    /// Shorter than its header or its table says.
    Truncated,
    /// No [`MAGIC`].
    BadMagic,
    /// Written by a version this build does not read.
    UnsupportedVersion(u32),
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries(usize),
    /// Entry `index` is malformed (its name, kind or data lies outside the
    /// pack, or its name is not a clean relative path).
    BadEntry(usize),
    /// Two entries have the same path.
    Duplicate(usize),
}

impl fmt::Display for PackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PackError::Truncated => f.write_str("the pack is truncated"),
            PackError::BadMagic => f.write_str("not a Mayfly pack (bad magic)"),
            PackError::UnsupportedVersion(v) => {
                write!(f, "pack version {v} is not supported (expected {VERSION})")
            }
            PackError::TooManyEntries(n) => {
                write!(f, "{n} entries, over the limit of {MAX_ENTRIES}")
            }
            PackError::BadEntry(i) => write!(f, "pack entry {i} is malformed"),
            PackError::Duplicate(i) => write!(f, "pack entry {i} repeats an earlier path"),
        }
    }
}

/// One entry to lay out: its path, kind, permission bits and data length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec<'a> {
    /// Relative path, components separated by `/`.
    pub path: &'a str,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// Bytes of data (a file's length, a symlink target's length).
    pub size: u64,
}

impl<'a> EntrySpec<'a> {
    /// A regular file.
    pub fn file(path: &'a str, mode: u32, size: u64) -> Self {
        EntrySpec {
            path,
            kind: EntryKind::File,
            mode,
            size,
        }
    }

    /// A directory.
    pub fn dir(path: &'a str, mode: u32) -> Self {
        EntrySpec {
            path,
            kind: EntryKind::Dir,
            mode,
            size: 0,
        }
    }

    /// A symbolic link whose target is `target_len` bytes long.
    pub fn symlink(path: &'a str, target_len: u64) -> Self {
        EntrySpec {
            path,
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: target_len,
        }
    }
}

/// Where [`plan`] puts everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The header, table and names: the pack's first bytes.
    pub header: Vec<u8>,
    /// Where each entry's data goes, in the order given (0 for entries
    /// without data).
    pub data_offsets: Vec<u64>,
    /// The pack's whole length; the bytes between data are zero.
    pub total_len: u64,
}

/// Whether `path` is a clean relative path: non-empty components, none
/// `.` or `..`, no NUL, no leading or trailing `/`.
pub fn is_clean_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH
        && !path.contains('\0')
        && path
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

fn align_up(n: u64) -> u64 {
    n.div_ceil(DATA_ALIGN) * DATA_ALIGN
}

/// Lays out a pack holding `entries`.
pub fn plan(entries: &[EntrySpec<'_>]) -> Result<Plan, PackError> {
    if entries.len() > MAX_ENTRIES {
        return Err(PackError::TooManyEntries(entries.len()));
    }
    let table_end = HEADER_LEN + ENTRY_LEN * entries.len();
    let names_len: usize = entries.iter().map(|e| e.path.len()).sum();
    let mut header = Vec::with_capacity(table_end + names_len);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    header.extend_from_slice(&0u64.to_le_bytes());
    let mut data_offsets = Vec::with_capacity(entries.len());
    let mut name_at = table_end;
    let mut data_at = align_up((table_end + names_len) as u64);
    for (i, entry) in entries.iter().enumerate() {
        if !is_clean_path(entry.path) || (entry.kind == EntryKind::Dir && entry.size != 0) {
            return Err(PackError::BadEntry(i));
        }
        if entries[..i].iter().any(|e| e.path == entry.path) {
            return Err(PackError::Duplicate(i));
        }
        let offset = if entry.size == 0 { 0 } else { data_at };
        header.extend_from_slice(&(name_at as u32).to_le_bytes());
        header.extend_from_slice(&(entry.path.len() as u32).to_le_bytes());
        header.extend_from_slice(&entry.kind.code().to_le_bytes());
        header.extend_from_slice(&entry.mode.to_le_bytes());
        header.extend_from_slice(&offset.to_le_bytes());
        header.extend_from_slice(&entry.size.to_le_bytes());
        header.extend_from_slice(&0u64.to_le_bytes());
        data_offsets.push(offset);
        name_at += entry.path.len();
        if entry.size != 0 {
            data_at = align_up(data_at + entry.size);
        }
    }
    for entry in entries {
        header.extend_from_slice(entry.path.as_bytes());
    }
    let total_len = data_at.max(header.len() as u64);
    header[16..24].copy_from_slice(&total_len.to_le_bytes());
    Ok(Plan {
        header,
        data_offsets,
        total_len,
    })
}

/// One entry of a checked pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Relative path (clean: see [`is_clean_path`]).
    pub path: &'a str,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Its data: a file's content or a symlink's target.
    pub data: &'a [u8],
    /// Where `data` starts in the pack (a multiple of [`DATA_ALIGN`] when
    /// not empty).
    pub offset: u64,
}

/// A pack whose every entry has been checked.
#[derive(Debug, Clone, Copy)]
pub struct Pack<'a> {
    bytes: &'a [u8],
    count: usize,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

impl<'a> Pack<'a> {
    /// Checks `bytes` as a pack: header, and every entry's name, kind and
    /// data range. Paths must be clean and distinct; data must be aligned.
    pub fn parse(bytes: &'a [u8]) -> Result<Pack<'a>, PackError> {
        if bytes.len() < HEADER_LEN {
            return Err(PackError::Truncated);
        }
        if &bytes[..8] != MAGIC {
            return Err(PackError::BadMagic);
        }
        let version = u32_at(bytes, 8);
        if version != VERSION {
            return Err(PackError::UnsupportedVersion(version));
        }
        let count = u32_at(bytes, 12) as usize;
        if count > MAX_ENTRIES {
            return Err(PackError::TooManyEntries(count));
        }
        let total = u64_at(bytes, 16);
        if total > bytes.len() as u64 || (HEADER_LEN + count * ENTRY_LEN) as u64 > total {
            return Err(PackError::Truncated);
        }
        let pack = Pack {
            bytes: &bytes[..total as usize],
            count,
        };
        // Sorted paths find duplicates in n log n; a pack has at most
        // 65,536 entries, so the index fits in memory easily.
        let mut paths: Vec<(&str, usize)> = Vec::with_capacity(count);
        for i in 0..count {
            let entry = pack.read_entry(i).ok_or(PackError::BadEntry(i))?;
            paths.push((entry.path, i));
        }
        paths.sort_unstable();
        for pair in paths.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err(PackError::Duplicate(pair[0].1.max(pair[1].1)));
            }
        }
        Ok(pack)
    }

    fn read_entry(&self, i: usize) -> Option<Entry<'a>> {
        let bytes = self.bytes;
        let at = HEADER_LEN + i * ENTRY_LEN;
        let name_at = u32_at(bytes, at) as usize;
        let name_len = u32_at(bytes, at + 4) as usize;
        let kind = EntryKind::from_code(u32_at(bytes, at + 8))?;
        let mode = u32_at(bytes, at + 12);
        let offset = u64_at(bytes, at + 16);
        let size = u64_at(bytes, at + 24);
        let name = bytes.get(name_at..name_at.checked_add(name_len)?)?;
        let path = core::str::from_utf8(name).ok()?;
        if !is_clean_path(path) {
            return None;
        }
        let data: &'a [u8] = if size == 0 {
            &[]
        } else {
            if kind == EntryKind::Dir || offset & (DATA_ALIGN - 1) != 0 {
                return None;
            }
            let start = usize::try_from(offset).ok()?;
            let end = start.checked_add(usize::try_from(size).ok()?)?;
            bytes.get(start..end)?
        };
        Some(Entry {
            path,
            kind,
            mode,
            data,
            offset,
        })
    }

    /// Every entry, in the pack's order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'a>> + '_ {
        // Checked by `parse`: every entry reads.
        (0..self.count).filter_map(|i| self.read_entry(i))
    }

    /// The entry at `path`, if there is one.
    pub fn find(&self, path: &str) -> Option<Entry<'a>> {
        self.entries().find(|e| e.path == path)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the pack has no entries.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The whole pack.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn build(specs: &[EntrySpec<'_>], data: &[&[u8]]) -> Vec<u8> {
        let plan = plan(specs).unwrap();
        let mut bytes = plan.header.clone();
        bytes.resize(plan.total_len as usize, 0);
        for (offset, d) in plan.data_offsets.iter().zip(data) {
            let at = *offset as usize;
            bytes[at..at + d.len()].copy_from_slice(d);
        }
        bytes
    }

    #[test]
    fn data_is_aligned_and_read_back() {
        let big = vec![7u8; 5000];
        let bytes = build(
            &[
                EntrySpec::file("a", 0o644, 3),
                EntrySpec::file("b/c", 0o600, big.len() as u64),
                EntrySpec::symlink("link", 1),
                EntrySpec::file("empty", 0o644, 0),
            ],
            &[b"abc", &big, b"a", b""],
        );
        let pack = Pack::parse(&bytes).unwrap();
        let entries: Vec<_> = pack.entries().collect();
        assert_eq!(entries.len(), 4);
        for e in &entries {
            assert_eq!(e.offset % DATA_ALIGN, 0, "{}", e.path);
        }
        assert_eq!(entries[0].data, b"abc");
        assert_eq!(entries[1].data, &big[..]);
        assert_eq!(entries[1].mode, 0o600);
        assert_eq!(
            (entries[2].kind, entries[2].data),
            (EntryKind::Symlink, &b"a"[..])
        );
        assert!(entries[3].data.is_empty());
        assert_eq!(bytes.len() % 4096, 0);
    }

    #[test]
    fn unclean_or_repeated_paths_are_refused() {
        for bad in ["", "/abs", "a/../b", "./a", "a//b", "a/", "nul\0"] {
            assert_eq!(
                plan(&[EntrySpec::file(bad, 0o644, 0)]),
                Err(PackError::BadEntry(0)),
                "{bad:?}"
            );
        }
        assert_eq!(
            plan(&[EntrySpec::dir("d", 0o755), EntrySpec::file("d", 0o644, 1)]),
            Err(PackError::Duplicate(1))
        );
    }

    #[test]
    fn damaged_packs_are_refused_not_read() {
        let good = build(&[EntrySpec::file("bootstrap", 0o755, 4)], &[b"\x7fELF"]);
        assert!(Pack::parse(&good).is_ok());
        assert_eq!(Pack::parse(&good[..10]).unwrap_err(), PackError::Truncated);
        assert_eq!(
            Pack::parse(&good[..good.len() - 1]).unwrap_err(),
            PackError::Truncated
        );
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Pack::parse(&bad).unwrap_err(), PackError::BadMagic);
        let mut bad = good.clone();
        bad[8] = 9;
        assert_eq!(
            Pack::parse(&bad).unwrap_err(),
            PackError::UnsupportedVersion(9)
        );
        // Data offset out of range, misaligned, name out of range, bad kind.
        for (at, value) in [(40usize, 1u8 << 6), (40, 1), (24, 0xff), (32, 9)] {
            let mut bad = good.clone();
            bad[at] = value;
            bad[at + 1] = value;
            bad[at + 2] = value;
            assert_eq!(
                Pack::parse(&bad).unwrap_err(),
                PackError::BadEntry(0),
                "{at}"
            );
        }
        // Every prefix and every single-byte change either parses or is
        // refused: nothing panics.
        for len in 0..good.len().min(200) {
            let _ = Pack::parse(&good[..len]);
        }
        for at in 0..120 {
            for value in [0u8, 1, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[at] = value;
                if let Ok(pack) = Pack::parse(&bad) {
                    let _ = pack.entries().count();
                }
            }
        }
    }

    #[test]
    fn an_empty_pack_is_valid() {
        let bytes = build(&[], &[]);
        let pack = Pack::parse(&bytes).unwrap();
        assert!(pack.is_empty());
        assert!(pack.find("bootstrap").is_none());
    }
}
