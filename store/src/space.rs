//! Disk space: what the store does so that deleting keeps working on a
//! full disk, and so that deleting gives the space back.
//!
//! - A **reserve** file (`<data-dir>/reserve`, [`RESERVE_BYTES`] of real,
//!   not sparse, blocks) is kept beside the database. In WAL mode even a
//!   `DELETE` appends pages to the log, so on a full disk it fails with
//!   `SQLITE_FULL`; a delete that fails so removes the reserve and tries
//!   once more. The reserve is made again by [`Store::compact`] once space
//!   was freed.
//! - The database uses `auto_vacuum = INCREMENTAL`, and [`Store::compact`]
//!   gives freed pages back to the file system and truncates the WAL.

use std::fs;
use std::io::Write;
use std::path::Path;

use rusqlite::Connection;

use crate::{Result, Store, StoreError};

/// The reserve file's name in the data directory.
pub const RESERVE_FILE: &str = "reserve";
/// The reserve's size: room for the log pages of many deletes.
pub const RESERVE_BYTES: usize = 2 * 1024 * 1024;

/// `ENOSPC` on Linux (and `EDQUOT`, a quota is as full as a disk).
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// Whether an I/O error says the disk (or quota) is full.
pub fn io_is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

impl StoreError {
    /// Whether this failed because the disk is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io { source, .. } => io_is_disk_full(source),
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DiskFull)
            ),
            _ => false,
        }
    }
}

/// Creates the reserve if it is missing; a full disk leaves it missing
/// (made again later), any other failure is an error.
pub(crate) fn ensure_reserve(dir: &Path) -> Result<()> {
    let path = dir.join(RESERVE_FILE);
    if fs::metadata(&path).is_ok_and(|m| m.len() == RESERVE_BYTES as u64) {
        return Ok(());
    }
    let tmp = dir.join(".reserve.tmp");
    let made = (|| {
        let mut file = fs::File::create(&tmp)?;
        // Written, not `set_len`: a sparse file reserves nothing.
        file.write_all(&vec![0u8; RESERVE_BYTES])?;
        file.sync_all()?;
        fs::rename(&tmp, &path)
    })();
    match made {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            if io_is_disk_full(&e) {
                tracing::warn!(dir = %dir.display(), "the disk is full: no reserve for deletes");
                Ok(())
            } else {
                Err(StoreError::io(format!("creating {}", path.display()), e))
            }
        }
    }
}

/// Switches a database to incremental auto-vacuum (with a `VACUUM`, which
/// takes milliseconds on a new database; an old one is compacted once).
pub(crate) fn use_incremental_vacuum(conn: &Connection) -> Result<()> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        return Ok(());
    }
    tracing::info!("compacting the database once to turn on incremental vacuum");
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; VACUUM;")?;
    Ok(())
}

impl Store {
    /// Gives the pages freed by deletes back to the file system, truncates
    /// the WAL, and makes the reserve again if it was used. Blocking.
    pub fn compact(&self) -> Result<()> {
        self.read("compacting the database", |conn| {
            // Stepped to its end: each step frees some pages.
            let mut vacuum = conn.prepare("PRAGMA incremental_vacuum")?;
            let mut steps = vacuum.query([])?;
            while steps.next()?.is_some() {}
            drop(steps);
            // Busy readers may keep part of the log: a partial checkpoint is
            // still a checkpoint, so its answer is not checked.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })?;
        ensure_reserve(self.dir())
    }
}

/// This process's effective uid, from `/proc/self/status` (the second
/// number of its `Uid:` line).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
}

/// Makes an existing data directory private (0700) when this process owns
/// it and group or others may use it; refuses one it does not own.
pub(crate) fn make_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta =
        fs::metadata(dir).map_err(|e| StoreError::io(format!("reading {}", dir.display()), e))?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let not_private = |reason: String| StoreError::NotPrivate {
        dir: dir.to_path_buf(),
        reason,
    };
    match effective_uid() {
        Some(uid) if uid == meta.uid() => {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| StoreError::io(format!("making {} private", dir.display()), e))?;
            tracing::warn!(dir = %dir.display(), was = format!("{mode:o}"),
                "the data directory was open to group or others: made it 0700");
            Ok(())
        }
        Some(uid) => Err(not_private(format!(
            "mode {mode:o} lets group or others in, and it belongs to uid {} rather than \
             this process's uid {uid}, so it is not changed; make it 0700 (chmod 700) or use \
             another directory",
            meta.uid()
        ))),
        None => Err(not_private(format!(
            "mode {mode:o} lets group or others in, and this process's uid is unknown; \
             make it 0700 (chmod 700)"
        ))),
    }
}
