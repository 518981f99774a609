//! Loading a function package: a bare `image.elf`, or a Lambda-style
//! `package.zip` whose `bootstrap` entry is that ELF.
//!
//! QEMU's own error for a kernel it cannot boot is terse ("could not load
//! kernel"), and a kernel without a PVH entry note may be loaded some other
//! way and fail in the guest. So the image is checked before any VM starts:
//! ELF64, x86_64, executable, with a Xen `PHYS32_ENTRY` note.

use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The largest image accepted (Lambda's own limit on an unzipped package).
pub const MAX_IMAGE_BYTES: u64 = mayfly_proto::limits::UNZIPPED_PACKAGE_BYTES;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
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
    /// ELF32 or another class.
    #[error("not a 64-bit ELF (class {0}, expected 2)")]
    WrongClass(u8),
    /// Big-endian.
    #[error("not a little-endian ELF (data encoding {0})")]
    WrongEndianness(u8),
    /// Not for x86_64.
    #[error("ELF is for machine {0}, not x86_64 (62)")]
    WrongMachine(u16),
    /// A relocatable object, shared object or core dump.
    #[error("ELF type is {0}, not an executable (2)")]
    NotExecutable(u16),
    /// The program headers lie outside the file or are malformed.
    #[error("ELF program headers are malformed: {0}")]
    Malformed(&'static str),
    /// No Xen `PHYS32_ENTRY` note: QEMU cannot boot it through PVH.
    #[error("ELF has no PVH entry note (Xen note type 18 in a PT_NOTE segment); is it a Mayfly unikernel image?")]
    NoPvhNote,
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

/// Checks that `elf` is an image QEMU can boot through PVH.
pub fn validate_elf(elf: &[u8]) -> Result<ElfInfo, ElfError> {
    if elf.len() < 64 || &elf[..4] != ELF_MAGIC {
        return Err(ElfError::NotElf);
    }
    if elf[4] != ELFCLASS64 {
        return Err(ElfError::WrongClass(elf[4]));
    }
    if elf[5] != ELFDATA2LSB {
        return Err(ElfError::WrongEndianness(elf[5]));
    }
    let machine = u16_at(elf, 18).ok_or(ElfError::NotElf)?;
    if machine != EM_X86_64 {
        return Err(ElfError::WrongMachine(machine));
    }
    let kind = u16_at(elf, 16).ok_or(ElfError::NotElf)?;
    if kind != ET_EXEC {
        return Err(ElfError::NotExecutable(kind));
    }
    let phoff = u64_at(elf, 32).ok_or(ElfError::NotElf)?;
    let phentsize = usize::from(u16_at(elf, 54).ok_or(ElfError::NotElf)?);
    let phnum = usize::from(u16_at(elf, 56).ok_or(ElfError::NotElf)?);
    if phnum > 0 && phentsize < 56 {
        return Err(ElfError::Malformed("program header entries are too small"));
    }
    for i in 0..phnum {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|off| off.checked_add(i * phentsize))
            .filter(|at| at.checked_add(56).is_some_and(|end| end <= elf.len()))
            .ok_or(ElfError::Malformed(
                "a program header lies outside the file",
            ))?;
        if u32_at(elf, at) != Some(PT_NOTE) {
            continue;
        }
        let offset = u64_at(elf, at + 8).unwrap_or(u64::MAX);
        let size = u64_at(elf, at + 32).unwrap_or(u64::MAX);
        let align = u64_at(elf, at + 48).unwrap_or(0);
        let notes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(size).ok())
            .and_then(|(o, s)| elf.get(o..o.checked_add(s)?))
            .ok_or(ElfError::Malformed(
                "a PT_NOTE segment lies outside the file",
            ))?;
        if let Some(entry) = find_pvh_note(notes, if align == 8 { 8 } else { 4 }) {
            return Ok(ElfInfo { pvh_entry: entry });
        }
    }
    Err(ElfError::NoPvhNote)
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

/// Why the `bootstrap` entry of a zip could not be read.
#[derive(Debug, Error)]
pub enum BootstrapError {
    /// There is none.
    #[error("the package has no `bootstrap` entry")]
    Missing,
    /// The archive could not be read.
    #[error("{0}")]
    Zip(zip::result::ZipError),
    /// Decompressing it failed.
    #[error("{0}")]
    Read(std::io::Error),
    /// It is larger than [`MAX_IMAGE_BYTES`] (declared or real).
    #[error("`bootstrap` is larger than {MAX_IMAGE_BYTES} bytes")]
    TooLarge,
}

/// Reads the `bootstrap` entry, never more than [`MAX_IMAGE_BYTES`]: the
/// declared size can lie, the cap holds regardless.
pub fn read_bootstrap<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
) -> Result<Vec<u8>, BootstrapError> {
    let mut entry = match archive.by_name("bootstrap") {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Err(BootstrapError::Missing),
        Err(e) => return Err(BootstrapError::Zip(e)),
    };
    if entry.size() > MAX_IMAGE_BYTES {
        return Err(BootstrapError::TooLarge);
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    (&mut entry)
        .take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(BootstrapError::Read)?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(BootstrapError::TooLarge);
    }
    Ok(bytes)
}

/// Why a package could not be loaded.
#[derive(Debug, Error)]
pub enum PackageError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The package path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Neither ELF nor zip magic.
    #[error("{0} is neither an ELF image nor a zip package")]
    UnknownFormat(PathBuf),
    /// The file or the `bootstrap` entry is larger than [`MAX_IMAGE_BYTES`].
    #[error("{0} is larger than the limit of {MAX_IMAGE_BYTES} bytes")]
    TooLarge(PathBuf),
    /// The zip archive is unreadable.
    #[error("{path} is not a readable zip archive: {source}")]
    Zip {
        /// The package path.
        path: PathBuf,
        /// What the zip reader said.
        source: zip::result::ZipError,
    },
    /// The zip has no `bootstrap` entry.
    #[error("{0} has no `bootstrap` entry (a package's bootstrap is its unikernel image)")]
    NoBootstrap(PathBuf),
    /// Extracting `bootstrap` to a temporary file failed.
    #[error("cannot extract the bootstrap of {path}: {source}")]
    Extract {
        /// The package path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The image is not bootable.
    #[error("{path} is not a bootable image: {source}")]
    Invalid {
        /// The ELF's path (for a zip: the package path with `:bootstrap`).
        path: PathBuf,
        /// Which check failed.
        source: ElfError,
    },
}

/// A validated image on disk, ready for `-kernel`. For a zip package the
/// image is an extracted temporary file, deleted when this is dropped.
#[derive(Debug)]
pub struct Image {
    path: PathBuf,
    info: ElfInfo,
    _temp: Option<tempfile::TempDir>,
}

impl Image {
    /// Where the ELF is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What validation found.
    pub fn info(&self) -> ElfInfo {
        self.info
    }
}

/// Loads and validates an `image.elf` or `package.zip` (decided by content,
/// not by extension).
pub fn load(path: &Path) -> Result<Image, PackageError> {
    let read_err = |source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|_| PackageError::UnknownFormat(path.to_path_buf()))?;
    if &magic == ELF_MAGIC {
        if len > MAX_IMAGE_BYTES {
            return Err(PackageError::TooLarge(path.to_path_buf()));
        }
        let bytes = fs::read(path).map_err(read_err)?;
        let info = validate_elf(&bytes).map_err(|source| PackageError::Invalid {
            path: path.to_path_buf(),
            source,
        })?;
        return Ok(Image {
            path: path.to_path_buf(),
            info,
            _temp: None,
        });
    }
    if &magic != ZIP_MAGIC {
        return Err(PackageError::UnknownFormat(path.to_path_buf()));
    }
    let zip_err = |source| PackageError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    let extract_err = |source| PackageError::Extract {
        path: path.to_path_buf(),
        source,
    };
    let bytes = read_bootstrap(&mut archive).map_err(|e| match e {
        BootstrapError::Missing => PackageError::NoBootstrap(path.to_path_buf()),
        BootstrapError::Zip(e) => zip_err(e),
        BootstrapError::Read(e) => extract_err(e),
        BootstrapError::TooLarge => PackageError::TooLarge(path.to_path_buf()),
    })?;
    let info = validate_elf(&bytes).map_err(|source| PackageError::Invalid {
        path: PathBuf::from(format!("{}:bootstrap", path.display())),
        source,
    })?;
    let temp = tempfile::Builder::new()
        .prefix("mayfly-package-")
        .tempdir()
        .map_err(extract_err)?;
    let image_path = temp.path().join("bootstrap");
    fs::write(&image_path, &bytes).map_err(extract_err)?;
    fs::set_permissions(&image_path, fs::Permissions::from_mode(0o500)).map_err(extract_err)?;
    Ok(Image {
        path: image_path,
        info,
        _temp: Some(temp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pvh_elf, EXIT_OK};
    use std::io::Write;

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
        assert_eq!(validate_elf(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        assert_eq!(validate_elf(&good[..40]), Err(ElfError::NotElf));
        assert_eq!(with(4, &[1]), Err(ElfError::WrongClass(1)));
        assert_eq!(with(5, &[2]), Err(ElfError::WrongEndianness(2)));
        assert_eq!(with(18, &[3, 0]), Err(ElfError::WrongMachine(3)));
        assert_eq!(with(16, &[3, 0]), Err(ElfError::NotExecutable(3)));
        assert!(matches!(with(32, &[0xff; 8]), Err(ElfError::Malformed(_))));
        // The note's type is no longer 18.
        let note = crate::testing::NOTE_OFFSET;
        assert_eq!(with(note + 8, &[17, 0, 0, 0]), Err(ElfError::NoPvhNote));
        // The note's name is no longer "Xen".
        assert_eq!(with(note + 12, b"Gen"), Err(ElfError::NoPvhNote));
        // The PT_NOTE header becomes a PT_NULL.
        assert_eq!(with(64 + 56, &[0, 0, 0, 0]), Err(ElfError::NoPvhNote));
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

    fn zip_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        {
            let mut zip = zip::ZipWriter::new(file.as_file_mut());
            for (name, data) in entries {
                zip.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(data).unwrap();
            }
            zip.finish().unwrap();
        }
        file
    }

    #[test]
    fn packages_load_by_content() {
        let elf = pvh_elf(EXIT_OK);
        let mut bare = tempfile::NamedTempFile::new().unwrap();
        bare.write_all(&elf).unwrap();
        let image = load(bare.path()).unwrap();
        assert_eq!(image.path(), bare.path());

        let zip = zip_with(&[("README", b"hi"), ("bootstrap", &elf)]);
        let image = load(zip.path()).unwrap();
        assert_eq!(fs::read(image.path()).unwrap(), elf);
        let mode = fs::metadata(image.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o500);
        let dir = image.path().parent().unwrap().to_path_buf();
        drop(image);
        assert!(!dir.exists(), "the extraction directory outlived the image");
    }

    #[test]
    fn package_errors() {
        let zip = zip_with(&[("main", b"x")]);
        assert!(matches!(
            load(zip.path()),
            Err(PackageError::NoBootstrap(_))
        ));
        let zip = zip_with(&[("bootstrap", b"#!/bin/sh\necho hi\n")]);
        let err = load(zip.path()).unwrap_err();
        assert!(matches!(
            err,
            PackageError::Invalid {
                source: ElfError::NotElf,
                ..
            }
        ));
        assert!(err
            .to_string()
            .ends_with(":bootstrap is not a bootable image: not an ELF file"));
        let mut text = tempfile::NamedTempFile::new().unwrap();
        text.write_all(b"hello").unwrap();
        assert!(matches!(
            load(text.path()),
            Err(PackageError::UnknownFormat(_))
        ));
        assert!(matches!(
            load(Path::new("/nonexistent/image.elf")),
            Err(PackageError::Read { .. })
        ));
    }
}
