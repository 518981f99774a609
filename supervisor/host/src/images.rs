//! The image cache: each stored package unpacked once per content into the
//! ELF that QEMU boots.
//!
//! An unpacked image is named by its package's SHA-256 and never changes,
//! so an invocation that started on one package keeps its image while
//! `UpdateFunctionCode` points the function at another. An invocation (or
//! a warm boot) [pins](ImageCache::pin) its package for as long as it may
//! need it: the collector ([`crate::gc`]) deletes neither the package nor
//! its image while pinned, and runs again when the last pin of a package
//! it had to spare goes.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use mayfly_runner::package::{extract_bootstrap, MAX_IMAGE_BYTES};
use mayfly_store::Store;

use crate::error::{HostError, HostResult};

/// Where unpacked images live: `<data-dir>/images/<sha256>.elf`.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
    store: Store,
    pins: Arc<Pins>,
}

#[derive(Debug, Default)]
struct Pins {
    held: Mutex<PinState>,
    /// Wakes the collector.
    collect: Notify,
}

#[derive(Debug, Default)]
struct PinState {
    /// Pins per package.
    count: HashMap<String, usize>,
    /// Unreferenced packages the collector spared because they were pinned.
    spared: HashSet<String>,
}

impl Pins {
    fn lock(&self) -> MutexGuard<'_, PinState> {
        // A panic while holding the lock leaves plain counts behind.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Keeps a package and its image from the collector; released on drop.
#[derive(Debug)]
pub struct Pin {
    pins: Arc<Pins>,
    sha256_hex: String,
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut state = self.pins.lock();
        let last = match state.count.get_mut(&self.sha256_hex) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                state.count.remove(&self.sha256_hex);
                true
            }
        };
        if last && state.spared.remove(&self.sha256_hex) {
            self.pins.collect.notify_one();
        }
    }
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
            pins: Arc::default(),
        })
    }

    /// Keeps package `sha256_hex` and its image until the pin is dropped.
    pub fn pin(&self, sha256_hex: &str) -> Pin {
        *self
            .pins
            .lock()
            .count
            .entry(sha256_hex.to_string())
            .or_default() += 1;
        Pin {
            pins: self.pins.clone(),
            sha256_hex: sha256_hex.to_string(),
        }
    }

    /// The pinned packages among `unreferenced`, remembered so that the
    /// collector is woken when their last pin goes.
    pub(crate) fn spare_pinned(&self, unreferenced: &HashSet<String>) -> HashSet<String> {
        let mut state = self.pins.lock();
        let pinned: HashSet<String> = unreferenced
            .iter()
            .filter(|sha| state.count.contains_key(*sha))
            .cloned()
            .collect();
        state.spared.extend(pinned.iter().cloned());
        pinned
    }

    /// Completes when the collector should run (woken by
    /// [`wake_collector`](Self::wake_collector) or a last pin).
    pub(crate) async fn collector_woken(&self) {
        self.pins.collect.notified().await
    }

    /// Asks the collector to run soon.
    pub(crate) fn wake_collector(&self) {
        self.pins.collect.notify_one();
    }

    /// The packages (SHA-256 hex) that have an image here.
    pub(crate) fn cached(&self) -> std::io::Result<Vec<String>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(".elf") {
                found.push(sha.to_string());
            }
        }
        Ok(found)
    }

    /// Deletes the image of package `sha256_hex`; its size if there was one.
    pub(crate) fn remove(&self, sha256_hex: &str) -> std::io::Result<u64> {
        let path = self.path_of(sha256_hex);
        let len = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        std::fs::remove_file(&path)?;
        Ok(len)
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
