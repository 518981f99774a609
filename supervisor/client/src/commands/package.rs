//! What `mayfly deploy` uploads: a package.zip as it is, or a bare ELF (a
//! Mayfly image, or a static Linux program) checked and zipped in memory
//! as the `bootstrap` entry, mode 0755.

use std::fs::File;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use mayfly_runner::package::{classify_elf, ElfError, MAX_IMAGE_BYTES};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Why a file cannot be deployed.
#[derive(Debug, Error)]
pub enum PackageFileError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Neither ELF nor zip magic.
    #[error("{} is neither an ELF image nor a zip package", .0.display())]
    UnknownFormat(PathBuf),
    /// Larger than any package Lambda accepts.
    #[error("{} is larger than the limit of {MAX_IMAGE_BYTES} bytes", .0.display())]
    TooLarge(PathBuf),
    /// An ELF that cannot be a function's bootstrap.
    #[error("{} is not a bootable image (neither a Mayfly image nor a static Linux program): it is {source}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which check failed.
        source: ElfError,
    },
    /// Zipping the image failed.
    #[error("cannot zip {}: {source}", path.display())]
    Zip {
        /// The file.
        path: PathBuf,
        /// What the zip writer said.
        source: zip::result::ZipError,
    },
}

/// The zip to upload for `path`, decided by content, not by extension, as
/// `mayfly run` does: an ELF is validated and zipped as `bootstrap`; a zip
/// is sent as it is (the host validates it).
pub fn load_package(path: &Path) -> Result<Vec<u8>, PackageFileError> {
    let read_err = |source| PackageFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    // One byte over the limit is enough to know it is too large, without
    // reading a huge file whole.
    file.take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_IMAGE_BYTES {
        return Err(PackageFileError::TooLarge(path.to_path_buf()));
    }
    if bytes.starts_with(ZIP_MAGIC) {
        return Ok(bytes);
    }
    if !bytes.starts_with(ELF_MAGIC) {
        return Err(PackageFileError::UnknownFormat(path.to_path_buf()));
    }
    classify_elf(&bytes).map_err(|source| PackageFileError::Invalid {
        path: path.to_path_buf(),
        source,
    })?;
    zip_bootstrap(&bytes).map_err(|source| PackageFileError::Zip {
        path: path.to_path_buf(),
        source,
    })
}

/// A zip holding `elf` as its only entry, `bootstrap`, mode 0755.
///
/// The entry's timestamp is fixed (1980-01-01, the zip epoch) so that the
/// same image always makes the same zip, and so the same `CodeSha256`.
pub fn zip_bootstrap(elf: &[u8]) -> Result<Vec<u8>, zip::result::ZipError> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    writer.start_file("bootstrap", options)?;
    writer.write_all(elf)?;
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_the_image_as_an_executable_bootstrap() {
        let elf = b"\x7fELF pretend image".repeat(100);
        let zip = zip_bootstrap(&elf).unwrap();
        assert!(zip.starts_with(ZIP_MAGIC));
        assert!(zip.len() < elf.len(), "deflated");
        let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_name("bootstrap").unwrap();
        assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o755);
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert_eq!(back, elf);
        drop(entry);
        assert_eq!(zip_bootstrap(&elf).unwrap(), zip, "reproducible");
    }

    #[test]
    fn a_static_linux_program_is_zipped_as_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let program = mayfly_runner::testing::linux_elf(2, 0x40_0000, None);
        let path = dir.path().join("my-function");
        std::fs::write(&path, &program).unwrap();
        let zip = load_package(&path).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
        let mut entry = archive.by_name("bootstrap").unwrap();
        assert_eq!(entry.unix_mode().unwrap() & 0o777, 0o755);
        let mut back = Vec::new();
        entry.read_to_end(&mut back).unwrap();
        assert_eq!(back, program);
        // A dynamic one is refused before any upload, with the advice.
        let dynamic = mayfly_runner::testing::linux_elf(3, 0, Some(b"/lib/ld.so\0"));
        std::fs::write(&path, &dynamic).unwrap();
        let err = load_package(&path).unwrap_err();
        assert!(err.to_string().contains("crt-static"), "{err}");
    }

    #[test]
    fn loads_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let zip_path = dir.path().join("pkg.bin");
        std::fs::write(&zip_path, b"PK\x03\x04 anything").unwrap();
        assert_eq!(load_package(&zip_path).unwrap(), b"PK\x03\x04 anything");

        let bad_elf = dir.path().join("bad.zip");
        std::fs::write(&bad_elf, b"\x7fELF too short").unwrap();
        let err = load_package(&bad_elf).unwrap_err();
        assert!(
            matches!(
                err,
                PackageFileError::Invalid {
                    source: ElfError::NotElf,
                    ..
                }
            ),
            "{err}"
        );

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, b"hello").unwrap();
        assert!(matches!(
            load_package(&text),
            Err(PackageFileError::UnknownFormat(_))
        ));
        let missing = dir.path().join("missing.elf");
        let err = load_package(&missing).unwrap_err();
        assert!(err.to_string().starts_with("cannot read "), "{err}");
    }
}
