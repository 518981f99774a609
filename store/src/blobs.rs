//! Package blobs, content-addressed by SHA-256:
//! `<dir>/blobs/<hex[0..2]>/<hex>`.
//!
//! A blob is written to `blobs/tmp/`, fsynced, renamed to its final name,
//! and its directory fsynced: a crash leaves at worst a stray temporary file
//! (removed at the next open), never a partial blob under its final name.
//! Identical packages are stored once.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{query_rows, Kind, Result, Store, StoreError};

const BLOBS: &str = "blobs";
const TMP: &str = "tmp";

/// A stored blob's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// SHA-256, lower-case hex: the blob's name in the store.
    pub sha256_hex: String,
    /// SHA-256, standard base64: what Lambda reports as `CodeSha256`.
    pub sha256_base64: String,
    /// Size in bytes (`CodeSize`).
    pub size: u64,
}

impl BlobRef {
    /// The identity `bytes` would have as a blob (nothing is stored).
    pub(crate) fn of(bytes: &[u8]) -> BlobRef {
        let digest = Sha256::digest(bytes);
        BlobRef {
            sha256_hex: hex::encode(digest),
            sha256_base64: base64::engine::general_purpose::STANDARD.encode(digest),
            size: bytes.len() as u64,
        }
    }

    /// The base64 form of a hex SHA-256 (for rendering `CodeSha256` from a
    /// version's `code_sha256`).
    pub fn hex_to_base64(sha256_hex: &str) -> Result<String> {
        let bytes = hex::decode(sha256_hex)
            .map_err(|e| StoreError::invalid("SHA-256", format!("{sha256_hex:?}: {e}")))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

/// What [`Store::gc_blobs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub removed: usize,
    /// Bytes they held.
    pub bytes_freed: u64,
    /// Blobs kept (referenced, or younger than the grace period).
    pub kept: usize,
}

/// Creates the blob directories and empties `blobs/tmp`.
pub(crate) fn prepare(dir: &Path) -> Result<()> {
    let tmp = dir.join(BLOBS).join(TMP);
    fs::create_dir_all(&tmp)
        .map_err(|e| StoreError::io(format!("creating {}", tmp.display()), e))?;
    let entries =
        fs::read_dir(&tmp).map_err(|e| StoreError::io(format!("listing {}", tmp.display()), e))?;
    for entry in entries.flatten() {
        let _ = fs::remove_file(entry.path());
    }
    Ok(())
}

fn check_hex(s: &str) -> Result<()> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "blob name",
            format!("{s:?} is not a lower-case hex SHA-256"),
        ))
    }
}

/// Fsyncs a directory so that the entries created or renamed in it are
/// durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(format!("syncing directory {}", dir.display()), e))
}

/// Writes `bytes` to `tmp` (mode 0644), fsyncs, renames it to `dest` and
/// fsyncs `dest`'s directory.
fn write_atomically(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(tmp)
            .map_err(|e| StoreError::io(format!("creating {}", tmp.display()), e))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| StoreError::io(format!("writing {}", tmp.display()), e))?;
        drop(file);
        fs::rename(tmp, dest).map_err(|e| {
            StoreError::io(
                format!("renaming {} to {}", tmp.display(), dest.display()),
                e,
            )
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result?;
    sync_dir(dest.parent().unwrap_or(Path::new(".")))
}

impl Store {
    fn blobs_dir(&self) -> PathBuf {
        self.dir().join(BLOBS)
    }

    fn blob_file(&self, sha256_hex: &str) -> PathBuf {
        self.blobs_dir().join(&sha256_hex[..2]).join(sha256_hex)
    }

    /// Stores a package (once: identical contents share one file) and
    /// returns its identity. Durable when it returns. Blocking file I/O:
    /// call from `spawn_blocking`.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef> {
        let blob = BlobRef::of(bytes);
        let dest = self.blob_file(&blob.sha256_hex);
        if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == blob.size) {
            return Ok(blob);
        }
        let shard = dest.parent().unwrap_or(Path::new("."));
        if !shard.is_dir() {
            fs::create_dir_all(shard)
                .map_err(|e| StoreError::io(format!("creating {}", shard.display()), e))?;
            sync_dir(&self.blobs_dir())?;
        }
        let tmp = self.blobs_dir().join(TMP).join(format!(
            "{}.{}",
            blob.sha256_hex,
            uuid::Uuid::new_v4().simple()
        ));
        write_atomically(&tmp, &dest, bytes)?;
        Ok(blob)
    }

    /// The file of a stored blob ([`StoreError::NotFound`] when there is
    /// none). The file is never modified once there.
    fn blob_path(&self, sha256_hex: &str) -> Result<PathBuf> {
        check_hex(sha256_hex)?;
        let path = self.blob_file(sha256_hex);
        if path.is_file() {
            Ok(path)
        } else {
            Err(StoreError::not_found(Kind::Blob, sha256_hex))
        }
    }

    /// Reads a stored blob and checks its hash ([`StoreError::Corrupt`] when
    /// the contents do not match the name).
    pub fn read_blob(&self, sha256_hex: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(sha256_hex)?;
        let bytes = fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::not_found(Kind::Blob, sha256_hex)
            } else {
                StoreError::io(format!("reading {}", path.display()), e)
            }
        })?;
        if hex::encode(Sha256::digest(&bytes)) != sha256_hex {
            return Err(StoreError::Corrupt(format!(
                "blob {} does not hash to its name",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// The SHA-256 (hex) of every package a version references.
    pub fn referenced_blobs(&self) -> Result<std::collections::HashSet<String>> {
        Ok(self
            .read("listing referenced blobs", |conn| {
                query_rows(conn, "SELECT DISTINCT code_sha256 FROM versions", [], |r| {
                    Ok(r.get(0)?)
                })
            })?
            .into_iter()
            .collect())
    }

    /// The SHA-256 (hex) of every blob stored.
    pub fn list_blobs(&self) -> Result<Vec<String>> {
        let root = self.blobs_dir();
        let mut found = Vec::new();
        let shards = fs::read_dir(&root)
            .map_err(|e| StoreError::io(format!("listing {}", root.display()), e))?;
        for shard in shards.flatten() {
            if shard.file_name() == TMP || !shard.path().is_dir() {
                continue;
            }
            let files = fs::read_dir(shard.path())
                .map_err(|e| StoreError::io(format!("listing {}", shard.path().display()), e))?;
            found.extend(
                files
                    .flatten()
                    .map(|f| f.file_name().to_string_lossy().into_owned()),
            );
        }
        Ok(found)
    }

    /// Deletes the blobs that no version references and that are older than
    /// `grace` (a blob just stored by [`Store::put_blob`] whose function is
    /// not created yet must survive: pass a grace of minutes in the server,
    /// `Duration::ZERO` only when nothing is being created, as the host
    /// makes sure before it collects).
    pub fn gc_blobs(&self, grace: Duration) -> Result<GcReport> {
        self.gc_blobs_keeping(grace, &std::collections::HashSet::new())
    }

    /// [`gc_blobs`](Self::gc_blobs), keeping also the blobs in `keep` (the
    /// packages running invocations use).
    pub fn gc_blobs_keeping(
        &self,
        grace: Duration,
        keep: &std::collections::HashSet<String>,
    ) -> Result<GcReport> {
        let referenced = self.referenced_blobs()?;
        let now = SystemTime::now();
        let mut report = GcReport::default();
        let root = self.blobs_dir();
        let shards = fs::read_dir(&root)
            .map_err(|e| StoreError::io(format!("listing {}", root.display()), e))?;
        for shard in shards.flatten() {
            let shard_path = shard.path();
            if shard.file_name() == TMP || !shard_path.is_dir() {
                continue;
            }
            let files = fs::read_dir(&shard_path)
                .map_err(|e| StoreError::io(format!("listing {}", shard_path.display()), e))?;
            for file in files.flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                let Ok(meta) = file.metadata() else { continue };
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or(Duration::ZERO);
                if referenced.contains(&name) || keep.contains(&name) || age < grace {
                    report.kept += 1;
                    continue;
                }
                let path = file.path();
                fs::remove_file(&path)
                    .map_err(|e| StoreError::io(format!("removing {}", path.display()), e))?;
                report.removed += 1;
                report.bytes_freed += meta.len();
            }
        }
        Ok(report)
    }
}
