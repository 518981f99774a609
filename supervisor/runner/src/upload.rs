//! A package as a client uploads it: a zip checked as Lambda checks one
//! (sizes, readability), plus Mayfly's own rule that its `bootstrap` entry
//! is a native Mayfly image or a static x86_64 Linux program; a Linux
//! function's entries must also make a pack ([`crate::pack`]: clean
//! paths, no duplicates, no special files), since its VM sees them all.
//!
//! Sizes are counted on the bytes actually read, never on what the zip
//! declares: every entry is decompressed as a stream into nothing, the
//! whole stopping at [`MAX_UNZIPPED_BYTES`], so a zip whose directory
//! understates its sizes is refused having written nothing; only then is
//! `bootstrap` unpacked into a temporary file, never held in memory.

use std::path::Path;

use thiserror::Error;

use crate::elf::{classify_elf_reader, Bootstrap, PackageKind};
use crate::pack::{PackBuilder, PackWriteError, TASK_DIR};
use crate::package::{copy_capped, BootstrapError, ElfError};

/// Lambda's limit on a zipped package.
pub const MAX_ZIPPED_BYTES: u64 = mayfly_proto::limits::ZIPPED_PACKAGE_BYTES;
/// Lambda's limit on a package's unzipped contents.
pub const MAX_UNZIPPED_BYTES: u64 = mayfly_proto::limits::UNZIPPED_PACKAGE_BYTES;

/// Why an uploaded package is refused; the messages are Lambda's where
/// Lambda has one.
#[derive(Debug, Error)]
pub enum UploadError {
    /// Over [`MAX_ZIPPED_BYTES`].
    #[error("Zipped size {0} bytes exceeds the maximum of {MAX_ZIPPED_BYTES} bytes")]
    ZippedTooLarge(u64),
    /// Not a readable zip.
    #[error(
        "Could not unzip uploaded file. Please check your file, then try to upload again. ({0})"
    )]
    Unreadable(zip::result::ZipError),
    /// Its entries declare, or really unpack to, more than
    /// [`MAX_UNZIPPED_BYTES`].
    #[error(
        "Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes (this package unzips to more than {0})"
    )]
    UnzippedTooLarge(u64),
    /// No `bootstrap` entry.
    #[error("The package has no `bootstrap` entry: a Mayfly package is a zip whose `bootstrap` is the unikernel image")]
    NoBootstrap,
    /// An entry could not be decompressed.
    #[error("Could not unzip `{entry}`: {source}")]
    Entry {
        /// The entry's name.
        entry: String,
        /// Why.
        source: BootstrapError,
    },
    /// An entry unpacks to another size than it declares.
    #[error("Could not unzip `{entry}`: it unpacks to {real} bytes, not the {declared} its header declares")]
    SizeMismatch {
        /// The entry's name.
        entry: String,
        /// What it declares.
        declared: u64,
        /// What came out.
        real: u64,
    },
    /// `bootstrap` is neither a Mayfly image nor a static Linux program.
    #[error("The package's bootstrap cannot run: it is {0}")]
    NotBootable(ElfError),
    /// A Linux function's entries cannot be its VM's `/var/task`.
    #[error("The package's files cannot be laid out for /var/task: {0}")]
    Layout(PackWriteError),
    /// The temporary file could not be written: the host's fault (a full
    /// disk), not the package's.
    #[error("cannot unpack the package on the host: {0}")]
    Host(std::io::Error),
}

impl UploadError {
    /// Whether the refusal is for size alone (Lambda answers 413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, UploadError::ZippedTooLarge(_))
    }

    /// Whether the host's disk (or quota) is full (`ENOSPC`, `EDQUOT`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, UploadError::Host(e) if matches!(e.raw_os_error(), Some(28 | 122)))
    }

    /// Whether the host, not the package, is at fault.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, UploadError::Host(_))
    }
}

/// A package that passed: its `bootstrap`, unpacked into a temporary file
/// (deleted when dropped, unless persisted as the image).
#[derive(Debug)]
pub struct Checked {
    /// The unpacked, validated `bootstrap`.
    pub bootstrap: tempfile::NamedTempFile,
    /// What it is.
    pub kind: PackageKind,
    /// Bytes of all entries, unzipped.
    pub unzipped_bytes: u64,
}

/// Checks an uploaded zip, unpacking its `bootstrap` into a temporary file
/// in `dir` (on the same file system as the image cache, so that it can be
/// renamed into it); nothing else is written, and nothing at all when the
/// package is refused.
pub fn check(zip_bytes: &[u8], dir: &Path) -> Result<Checked, UploadError> {
    check_within(zip_bytes, dir, MAX_UNZIPPED_BYTES)
}

/// [`check`] with `max_unzipped` in place of Lambda's limit (tests use a
/// small one).
pub fn check_within(
    zip_bytes: &[u8],
    dir: &Path,
    max_unzipped: u64,
) -> Result<Checked, UploadError> {
    if zip_bytes.len() as u64 > MAX_ZIPPED_BYTES {
        return Err(UploadError::ZippedTooLarge(zip_bytes.len() as u64));
    }
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(UploadError::Unreadable)?;
    // What the entries declare is a quick refusal, never an acceptance.
    let mut declared: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(UploadError::Unreadable)?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > max_unzipped {
        return Err(UploadError::UnzippedTooLarge(max_unzipped));
    }
    // First every entry into nothing, counting what comes out, so that a
    // bomb is refused before a byte of it reaches the disk; then the
    // `bootstrap` again, into its file (decompressing it twice costs less
    // than writing 250 MB that are thrown away).
    let mut left = max_unzipped;
    let mut bootstrap_index = None;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(UploadError::Unreadable)?;
        let name = entry.name().to_string();
        if name == "bootstrap" && bootstrap_index.is_none() {
            bootstrap_index = Some(i);
        }
        let declared = entry.size();
        let copied = copy_capped(&mut entry, &mut std::io::sink(), left)
            .map_err(|source| UploadError::Entry {
                entry: name.clone(),
                source,
            })?
            .ok_or(UploadError::UnzippedTooLarge(max_unzipped))?;
        // A pack is laid out from the declared sizes: they must be true.
        if copied != declared {
            return Err(UploadError::SizeMismatch {
                entry: name,
                declared,
                real: copied,
            });
        }
        left -= copied;
    }
    let index = bootstrap_index.ok_or(UploadError::NoBootstrap)?;
    let mut entry = archive.by_index(index).map_err(UploadError::Unreadable)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)
        .map_err(UploadError::Host)?;
    let len = copy_capped(&mut entry, temp.as_file_mut(), max_unzipped)
        .map_err(|source| match source {
            BootstrapError::Write(e) => UploadError::Host(e),
            source => UploadError::Entry {
                entry: "bootstrap".into(),
                source,
            },
        })?
        .ok_or(UploadError::UnzippedTooLarge(max_unzipped))?;
    drop(entry);
    let bootstrap =
        classify_elf_reader(temp.as_file_mut(), len).map_err(UploadError::NotBootable)?;
    if let Bootstrap::Linux(_) = bootstrap {
        PackBuilder::new(max_unzipped)
            .add_zip(&mut archive, TASK_DIR)
            .map_err(UploadError::Layout)?;
    }
    Ok(Checked {
        bootstrap: temp,
        kind: bootstrap.kind(),
        unzipped_bytes: max_unzipped - left,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::testing::{linux_elf, pvh_elf, EXIT_OK};

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            out.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    fn files_in(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_package_with_a_bootable_bootstrap_passes() {
        let dir = tempfile::tempdir().unwrap();
        let elf = pvh_elf(EXIT_OK);
        let checked = check(&zip(&[("bootstrap", &elf), ("README", b"hi")]), dir.path()).unwrap();
        assert_eq!(checked.unzipped_bytes, elf.len() as u64 + 2);
        assert_eq!(std::fs::read(checked.bootstrap.path()).unwrap(), elf);
        drop(checked);
        assert_eq!(
            files_in(dir.path()),
            0,
            "the unpacked bootstrap outlived its check"
        );
    }

    #[test]
    fn static_linux_programs_are_linux_functions() {
        let dir = tempfile::tempdir().unwrap();
        let exec = linux_elf(2, 0x40_0000, None);
        let checked = check(&zip(&[("bootstrap", &exec), ("lib/x", b"1")]), dir.path()).unwrap();
        assert_eq!(checked.kind, PackageKind::Linux);
        drop(checked);
        let pie = linux_elf(3, 0, None);
        let checked = check(&zip(&[("bootstrap", &pie)]), dir.path()).unwrap();
        assert_eq!(checked.kind, PackageKind::Linux);
        let native = check(&zip(&[("bootstrap", &pvh_elf(EXIT_OK))]), dir.path()).unwrap();
        assert_eq!(native.kind, PackageKind::Native);
        drop((checked, native));
        // Refused: dynamic (with the advice), linked too low, and a Linux
        // package whose paths are not clean.
        let dynamic = linux_elf(3, 0, Some(b"/lib64/ld-linux-x86-64.so.2\0"));
        let err = check(&zip(&[("bootstrap", &dynamic)]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("musl-gcc -static"), "{err}");
        let low = linux_elf(2, 0x20_0000, None);
        let err = check(&zip(&[("bootstrap", &low)]), dir.path()).unwrap_err();
        assert!(err.to_string().contains("linked below 0x400000"), "{err}");
        let err = check(
            &zip(&[("bootstrap", &exec), ("../escape", b"x")]),
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(err, UploadError::Layout(_)), "{err}");
        assert!(err.to_string().contains("`../escape`"), "{err}");
        // The same unclean path beside a native image is ignored, as before.
        check(
            &zip(&[("bootstrap", &pvh_elf(EXIT_OK)), ("../escape", b"x")]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn refusals_say_why_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            check(&zip(&[("other", b"x")]), dir.path()),
            Err(UploadError::NoBootstrap)
        ));
        assert!(matches!(
            check(&zip(&[("bootstrap", b"#!/bin/sh\n")]), dir.path()),
            Err(UploadError::NotBootable(_))
        ));
        let unreadable = check(b"PK\x03\x04 not really", dir.path()).unwrap_err();
        assert!(unreadable
            .to_string()
            .starts_with("Could not unzip uploaded file"));
        assert!(!unreadable.is_too_large());
        let big = vec![0u8; MAX_ZIPPED_BYTES as usize + 1];
        assert!(check(&big, dir.path()).unwrap_err().is_too_large());
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn the_unzipped_limit_counts_every_entry_as_read() {
        let dir = tempfile::tempdir().unwrap();
        let elf = pvh_elf(EXIT_OK);
        let other = vec![1u8; 5000];
        let package = zip(&[("bootstrap", &elf), ("data", &other)]);
        let total = (elf.len() + other.len()) as u64;
        check_within(&package, dir.path(), total).unwrap();
        let refused = check_within(&package, dir.path(), total - 1).unwrap_err();
        assert!(
            matches!(refused, UploadError::UnzippedTooLarge(_)),
            "{refused}"
        );
        assert_eq!(files_in(dir.path()), 0);
    }

    #[test]
    fn a_lying_zip_bomb_is_refused_on_what_comes_out_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // Declares 1000 bytes, unpacks to 2 MB; the limit is 1 MB.
        let bomb = crate::bomb::lying_zip(2_000_000, 1000);
        let refused = check_within(&bomb, dir.path(), 1_000_000).unwrap_err();
        assert!(
            matches!(refused, UploadError::UnzippedTooLarge(1_000_000)),
            "{refused}"
        );
        assert!(refused
            .to_string()
            .starts_with("Unzipped size must be smaller than"));
        assert_eq!(files_in(dir.path()), 0, "the bomb left a file");
    }

    #[test]
    fn a_lying_zip_bomb_at_lambdas_limit() {
        let dir = tempfile::tempdir().unwrap();
        // 300 MB out of about 1.9 MB, declaring 4 KB, against Lambda's real
        // limit of 250 MiB.
        let bomb = crate::bomb::lying_zip(300_000_000, 4096);
        assert!(bomb.len() < 2_000_000, "{} bytes", bomb.len());
        let refused = check(&bomb, dir.path()).unwrap_err();
        assert!(
            matches!(refused, UploadError::UnzippedTooLarge(_)),
            "{refused}"
        );
        assert_eq!(files_in(dir.path()), 0, "the bomb left a file");
    }
}
