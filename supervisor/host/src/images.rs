//! The image cache: each stored package unpacked once per content into the
//! ELF that QEMU boots, and, for a Linux function, the pack (the whole
//! package under `/var/task`, see `mayfly_runner::pack`) that its VM gets
//! as its initrd, booting the generic Linux kernel image.
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

use mayfly_runner::elf::{classify_elf_reader, PackageKind};
use mayfly_runner::linux::KernelNotFound;
use mayfly_runner::pack::write_zip_pack;
use mayfly_runner::package::{extract_bootstrap, MAX_IMAGE_BYTES};
use mayfly_store::Store;

use crate::error::{HostError, HostResult};

/// Where unpacked images live: `<data-dir>/images/<sha256>.elf` (the
/// `bootstrap`) and, for a Linux function, `<sha256>.pack`.
#[derive(Debug, Clone)]
pub struct ImageCache {
    dir: PathBuf,
    store: Store,
    pins: Arc<Pins>,
    linux_kernel: Arc<Result<PathBuf, KernelNotFound>>,
}

/// A package ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// A native image: QEMU's `-kernel`.
    Native {
        /// The image.
        image: PathBuf,
    },
    /// A Linux function: the generic kernel image and the package's pack.
    Linux {
        /// The Linux kernel image, QEMU's `-kernel`.
        kernel: PathBuf,
        /// The pack, QEMU's `-initrd`.
        pack: PathBuf,
    },
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
            linux_kernel: Arc::new(Err(KernelNotFound { looked: Vec::new() })),
        })
    }

    /// The cache, booting Linux functions with `kernel` (or, when it was
    /// not found, refusing to run them with why).
    pub fn with_linux_kernel(mut self, kernel: Result<PathBuf, KernelNotFound>) -> ImageCache {
        self.linux_kernel = Arc::new(kernel);
        self
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

    /// The packages (SHA-256 hex) that have an image (or a pack) here.
    pub(crate) fn cached(&self) -> std::io::Result<Vec<String>> {
        let mut found = HashSet::new();
        for entry in std::fs::read_dir(&self.dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(sha) = name.strip_suffix(".elf").or(name.strip_suffix(".pack")) {
                found.insert(sha.to_string());
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Deletes the image and pack of package `sha256_hex`; their size if
    /// there were any.
    pub(crate) fn remove(&self, sha256_hex: &str) -> std::io::Result<u64> {
        let mut removed = 0;
        for path in [self.path_of(sha256_hex), self.pack_of(sha256_hex)] {
            let len = match std::fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            std::fs::remove_file(&path)?;
            removed += len;
        }
        Ok(removed)
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

    /// What the package `sha256_hex` boots as: its image, or (a Linux
    /// function) the Linux kernel and its pack, unpacked off the async
    /// workers the first time. A Linux function on a host without the
    /// kernel image is [`HostError::Unavailable`].
    pub async fn prepare(&self, sha256_hex: &str) -> HostResult<Prepared> {
        let (cache, sha) = (self.clone(), sha256_hex.to_string());
        tokio::task::spawn_blocking(move || cache.prepare_blocking(&sha))
            .await
            .map_err(|e| HostError::task("unpacking the package", e))?
    }

    fn prepare_blocking(&self, sha256_hex: &str) -> HostResult<Prepared> {
        let image = self.image_blocking(sha256_hex)?;
        let failed = |reason: String| HostError::Image {
            sha256: sha256_hex.to_string(),
            reason,
        };
        let kind = kind_of(&image).map_err(|e| failed(e.to_string()))?;
        if kind == PackageKind::Native {
            return Ok(Prepared::Native { image });
        }
        let kernel = match self.linux_kernel.as_ref() {
            Ok(kernel) => kernel.clone(),
            Err(e) => {
                return Err(HostError::Unavailable(format!(
                    "This host cannot run Linux functions: {e}"
                )))
            }
        };
        let pack = self.pack_of(sha256_hex);
        if !pack.exists() {
            let zip_bytes = self.store.read_blob(sha256_hex)?;
            self.adopt_pack(sha256_hex, &zip_bytes)
                .map_err(|e| failed(e.to_string()))?;
        }
        Ok(Prepared::Linux { kernel, pack })
    }

    /// Writes the pack of package `sha256_hex` (a Linux function's zip),
    /// streamed, durably; a pack already there is kept. Readable by
    /// everyone, as a jailed VM's uid reads it through a bind mount (the
    /// data directory itself is the server's alone).
    pub fn adopt_pack(
        &self,
        sha256_hex: &str,
        zip_bytes: &[u8],
    ) -> Result<(), mayfly_runner::pack::PackWriteError> {
        use mayfly_runner::pack::PackWriteError;
        let path = self.pack_of(sha256_hex);
        if path.exists() {
            return Ok(());
        }
        let mut archive =
            zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(PackWriteError::Zip)?;
        let pack = write_zip_pack(&mut archive, &self.dir, MAX_IMAGE_BYTES)?;
        use std::os::unix::fs::PermissionsExt;
        let write = PackWriteError::Write;
        pack.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o444))
            .map_err(write)?;
        pack.as_file().sync_all().map_err(write)?;
        pack.persist(&path).map_err(|e| write(e.error))?;
        tracing::debug!(sha256 = sha256_hex, "pack written");
        Ok(())
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

    /// Where the pack of package `sha256_hex` is (or would be).
    fn pack_of(&self, sha256_hex: &str) -> PathBuf {
        self.dir.join(format!("{sha256_hex}.pack"))
    }
}

/// What the unpacked `bootstrap` at `image` is (reading only its headers).
fn kind_of(image: &Path) -> Result<PackageKind, String> {
    let mut file = std::fs::File::open(image).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    classify_elf_reader(&mut file, len)
        .map(|b| b.kind())
        .map_err(|e| e.to_string())
}
