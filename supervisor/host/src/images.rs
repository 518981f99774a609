//! The image cache: each stored package unpacked once per content into the
//! ELF that QEMU boots.
//!
//! An unpacked image is named by its package's SHA-256 and never changes,
//! so an invocation that started on one package keeps its image while
//! `UpdateFunctionCode` points the function at another.

use std::path::{Path, PathBuf};

use mayfly_runner::package::{extract_bootstrap, MAX_IMAGE_BYTES};
use mayfly_store::Store;

use crate::error::{HostError, HostResult};

/// Where unpacked images live: `<data-dir>/images/<sha256>.elf`.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
    store: Store,
}

impl ImageCache {
    /// The cache under `data_dir`, over the packages of `store`.
    pub fn new(data_dir: &Path, store: Store) -> std::io::Result<ImageCache> {
        let dir = data_dir.join("images");
        std::fs::create_dir_all(&dir)?;
        // Temporary files of unpacking or uploads cut short by a crash.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // Absolute, so that QEMU's `-kernel` names it fully (see
        // the VM layer's sweep of orphaned VMs).
        Ok(ImageCache {
            dir: std::fs::canonicalize(dir)?,
            store,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The ELF of the package `sha256_hex`, unpacked off the async workers
    /// the first time.
    pub async fn image(&self, sha256_hex: &str) -> HostResult<PathBuf> {
        let (cache, sha) = (self.clone(), sha256_hex.to_string());
        tokio::task::spawn_blocking(move || cache.image_blocking(&sha))
            .await
            .map_err(|e| HostError::task("unpacking the image", e))?
    }

    fn image_blocking(&self, sha256_hex: &str) -> HostResult<PathBuf> {
        let path = self.path_of(sha256_hex);
        if path.exists() {
            return Ok(path);
        }
        let failed = |reason: String| HostError::Image {
            sha256: sha256_hex.to_string(),
            reason,
        };
        let zip_bytes = self.store.read_blob(sha256_hex)?;
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))
            .map_err(|e| failed(format!("the stored package is unreadable: {e}")))?;
        let (elf, _) = extract_bootstrap(&mut archive, &self.dir, MAX_IMAGE_BYTES)
            .map_err(|e| failed(e.to_string()))?;
        self.adopt(sha256_hex, elf)
            .map_err(|e| failed(e.to_string()))?;
        Ok(path)
    }

    /// Makes `elf` (unpacked in this directory) the image of package
    /// `sha256_hex`, durably; an image already there is kept.
    pub fn adopt(&self, sha256_hex: &str, elf: tempfile::NamedTempFile) -> std::io::Result<()> {
        let path = self.path_of(sha256_hex);
        if path.exists() {
            return Ok(());
        }
        elf.as_file().sync_all()?;
        elf.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Where the image of package `sha256_hex` is (or would be).
    fn path_of(&self, sha256_hex: &str) -> PathBuf {
        self.dir.join(format!("{sha256_hex}.elf"))
    }
}
