//! Host settings (a small key-value table) and private files (mode 0600)
//! in the data directory, such as the generated secret key.

use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension};

use crate::blobs::write_atomically;
use crate::{Kind, Result, Store, StoreError};

/// Removes the temporary files of private-file writes that a crash
/// interrupted (`.<name>.<uuid>.tmp`).
pub(crate) fn remove_stray_temp_files(dir: &Path) -> Result<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| StoreError::io(format!("listing {}", dir.display()), e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

impl Store {
    /// Reads a setting.
    pub fn get_setting(&self, key: &str) -> Result<Option<String>> {
        self.read("reading a setting", |conn| {
            Ok(conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                    r.get(0)
                })
                .optional()?)
        })
    }

    /// Creates or replaces a setting.
    pub fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        self.write("writing a setting", |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)",
                params![key, value],
            )?;
            Ok(())
        })
    }

    /// Deletes a setting; returns whether it existed.
    pub fn delete_setting(&self, key: &str) -> Result<bool> {
        self.write("deleting a setting", |tx| {
            Ok(tx.execute("DELETE FROM settings WHERE key = ?1", [key])? > 0)
        })
    }

    fn private_path(&self, name: &str) -> Result<PathBuf> {
        let valid = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && !name.starts_with(crate::DB_FILE)
            && name != "blobs"
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            return Err(StoreError::invalid(
                "private file name",
                format!("{name:?} must be a plain file name (letters, digits, '-', '_', '.') that the store does not use"),
            ));
        }
        Ok(self.dir().join(name))
    }

    /// Writes `<dir>/<name>` readable by its owner only (mode 0600),
    /// atomically (temporary file, fsync, rename, directory fsync): a reader
    /// sees the old contents or the new, never a part.
    pub fn write_private_file(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        let dest = self.private_path(name)?;
        let tmp = self
            .dir()
            .join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
        write_atomically(&tmp, &dest, contents, 0o600)?;
        Ok(dest)
    }

    /// Reads `<dir>/<name>`; `None` when it does not exist.
    pub fn read_private_file(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.private_path(name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Deletes `<dir>/<name>`.
    pub fn delete_private_file(&self, name: &str) -> Result<()> {
        let path = self.private_path(name)?;
        fs::remove_file(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                StoreError::not_found(Kind::PrivateFile, name)
            } else {
                StoreError::io(format!("removing {}", path.display()), e)
            }
        })
    }
}
