//! Function packages: checked when they arrive, stored content-addressed,
//! and unpacked once per content into the ELF that QEMU boots.
//!
//! An unpacked image is named by its package's SHA-256 and never changes,
//! so an invocation that started on one package keeps its image while
//! `UpdateFunctionCode` points the function at another.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use mayfly_store::{BlobRef, Store};

use super::error::{ApiError, ApiResult};
use crate::package::validate_elf;

/// Lambda's limit on a zipped package.
pub const MAX_ZIPPED_BYTES: u64 = 52_428_800;
/// Lambda's limit on a package's unzipped contents.
pub const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

/// Checks a package as Lambda would, plus Mayfly's own rule: a `bootstrap`
/// entry that is a bootable x86_64 PVH ELF. Nothing is stored.
pub fn check_package(zip_bytes: &[u8]) -> ApiResult<()> {
    if zip_bytes.len() as u64 > MAX_ZIPPED_BYTES {
        return Err(ApiError::too_large(format!(
            "Zipped size {} bytes exceeds the maximum of {MAX_ZIPPED_BYTES} bytes",
            zip_bytes.len()
        )));
    }
    let unreadable = |e: zip::result::ZipError| {
        ApiError::invalid_parameter(format!(
            "Could not unzip uploaded file. Please check your file, then try to upload again. ({e})"
        ))
    };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(unreadable)?;
    let mut unzipped: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(unreadable)?;
        unzipped = unzipped.saturating_add(entry.size());
    }
    if unzipped > MAX_UNZIPPED_BYTES {
        return Err(ApiError::invalid_parameter(format!(
            "Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes (this package unzips to {unzipped})"
        )));
    }
    let bootstrap = read_bootstrap(&mut archive)?;
    validate_elf(&bootstrap).map_err(|e| {
        ApiError::invalid_parameter(format!(
            "The package's bootstrap is not a bootable Mayfly image: {e}"
        ))
    })?;
    Ok(())
}

fn read_bootstrap<R: Read + std::io::Seek>(archive: &mut zip::ZipArchive<R>) -> ApiResult<Vec<u8>> {
    let mut entry = match archive.by_name("bootstrap") {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(ApiError::invalid_parameter(
                "The package has no `bootstrap` entry: a Mayfly package is a zip whose `bootstrap` is the unikernel image",
            ))
        }
        Err(e) => {
            return Err(ApiError::invalid_parameter(format!("Could not unzip uploaded file: {e}")))
        }
    };
    let mut bytes = Vec::with_capacity(entry.size().min(MAX_UNZIPPED_BYTES) as usize);
    entry
        .by_ref()
        .take(MAX_UNZIPPED_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ApiError::invalid_parameter(format!("Could not unzip `bootstrap`: {e}")))?;
    Ok(bytes)
}

/// Where unpacked images live: `<data-dir>/images/<sha256>.elf`.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
}

impl ImageCache {
    /// The cache under the store's data directory.
    pub fn new(data_dir: &Path) -> std::io::Result<ImageCache> {
        let dir = data_dir.join("images");
        std::fs::create_dir_all(&dir)?;
        // Absolute, so that QEMU's `-kernel` names it fully (see `sweep`).
        Ok(ImageCache {
            dir: std::fs::canonicalize(dir)?,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ELF of the package `sha256_hex`, unpacking it the first time.
    /// Blocking: call from `spawn_blocking`.
    pub fn image(&self, store: &Store, sha256_hex: &str) -> ApiResult<PathBuf> {
        let path = self.dir.join(format!("{sha256_hex}.elf"));
        if path.exists() {
            return Ok(path);
        }
        let zip_bytes = store.read_blob(sha256_hex)?;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(|e| {
            ApiError::service(format!("stored package {sha256_hex} is unreadable: {e}"))
        })?;
        let elf = read_bootstrap(&mut archive)?;
        let write = || -> std::io::Result<()> {
            let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
            temp.write_all(&elf)?;
            temp.as_file().sync_all()?;
            temp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write()
            .map_err(|e| ApiError::service(format!("cannot unpack package {sha256_hex}: {e}")))?;
        Ok(path)
    }
}

/// Stores a checked package; returns its content reference.
pub fn store_package(store: &Store, zip_bytes: &[u8]) -> ApiResult<BlobRef> {
    check_package(zip_bytes)?;
    Ok(store.put_blob(zip_bytes)?)
}
