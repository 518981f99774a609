//! A package as a client uploads it: a zip checked as Lambda checks one
//! (sizes, readability), plus Mayfly's own rule that its `bootstrap` entry
//! is a bootable image.

use thiserror::Error;

use crate::package::{read_bootstrap, validate_elf, BootstrapError, ElfError};

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
    /// Its entries add up to more than [`MAX_UNZIPPED_BYTES`].
    #[error(
        "Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes (this package unzips to {0})"
    )]
    UnzippedTooLarge(u64),
    /// No `bootstrap` entry.
    #[error("The package has no `bootstrap` entry: a Mayfly package is a zip whose `bootstrap` is the unikernel image")]
    NoBootstrap,
    /// `bootstrap` could not be read.
    #[error("Could not unzip `bootstrap`: {0}")]
    Bootstrap(BootstrapError),
    /// `bootstrap` is not a bootable image.
    #[error("The package's bootstrap is not a bootable Mayfly image: {0}")]
    NotBootable(ElfError),
}

impl UploadError {
    /// Whether the refusal is for size alone (Lambda answers 413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, UploadError::ZippedTooLarge(_))
    }
}

/// Checks an uploaded zip; nothing is written anywhere.
pub fn check(zip_bytes: &[u8]) -> Result<(), UploadError> {
    if zip_bytes.len() as u64 > MAX_ZIPPED_BYTES {
        return Err(UploadError::ZippedTooLarge(zip_bytes.len() as u64));
    }
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(UploadError::Unreadable)?;
    let mut unzipped: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(UploadError::Unreadable)?;
        unzipped = unzipped.saturating_add(entry.size());
    }
    if unzipped > MAX_UNZIPPED_BYTES {
        return Err(UploadError::UnzippedTooLarge(unzipped));
    }
    let bootstrap = read_bootstrap(&mut archive).map_err(|e| match e {
        BootstrapError::Missing => UploadError::NoBootstrap,
        other => UploadError::Bootstrap(other),
    })?;
    validate_elf(&bootstrap).map_err(UploadError::NotBootable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::testing::{pvh_elf, EXIT_OK};

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, bytes) in entries {
            out.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            out.write_all(bytes).unwrap();
        }
        out.finish().unwrap().into_inner()
    }

    #[test]
    fn a_package_with_a_bootable_bootstrap_passes() {
        check(&zip(&[("bootstrap", &pvh_elf(EXIT_OK)), ("README", b"hi")])).unwrap();
    }

    #[test]
    fn refusals_say_why() {
        assert!(matches!(
            check(&zip(&[("other", b"x")])),
            Err(UploadError::NoBootstrap)
        ));
        assert!(matches!(
            check(&zip(&[("bootstrap", b"#!/bin/sh\n")])),
            Err(UploadError::NotBootable(_))
        ));
        let unreadable = check(b"PK\x03\x04 not really").unwrap_err();
        assert!(unreadable
            .to_string()
            .starts_with("Could not unzip uploaded file"));
        assert!(!unreadable.is_too_large());
        let big = vec![0u8; MAX_ZIPPED_BYTES as usize + 1];
        assert!(check(&big).unwrap_err().is_too_large());
    }
}
