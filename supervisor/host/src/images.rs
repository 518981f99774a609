//! The image cache: each stored package unpacked once per content into the
//! ELF that QEMU boots.
//!
//! An unpacked image is named by its package's SHA-256 and never changes,
//! so an invocation that started on one package keeps its image while
//! `UpdateFunctionCode` points the function at another.

use std::io::Write;
use std::path::{Path, PathBuf};

use mayfly_runner::package::read_bootstrap;
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
        let path = self.dir.join(format!("{sha256_hex}.elf"));
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
        let elf = read_bootstrap(&mut archive).map_err(|e| failed(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
            temp.write_all(&elf)?;
            temp.as_file().sync_all()?;
            temp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| failed(e.to_string()))?;
        Ok(path)
    }
}
