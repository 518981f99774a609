//! Writing a pack (see [`mayfly_proto::pack`]): the flat archive a Linux
//! function's VM gets as its initrd, from a function's zip (every entry
//! under `var/task/`) or from a host directory and a program (`mayfly
//! exec`).
//!
//! A pack is written as a stream: its entries are listed first (names,
//! kinds, modes and sizes, checked: clean relative paths, no duplicates,
//! no special files, within the unzipped limit), laid out with
//! [`mayfly_proto::pack::plan`], and then each file's bytes are copied to
//! its offset, 64 KiB at a time. Nothing is ever whole in memory, however
//! large the package; the gaps between files are holes in the file.
//!
//! Every directory above an entry is in the pack too (zips often leave
//! them out), with mode 0755 unless the zip names it with its own. A zip's
//! unix modes are kept; an entry without one is 0644 (a directory 0755),
//! and `bootstrap` is always executable (0755, or its own mode with
//! `r-x` for everyone added).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mayfly_proto::pack::{self, EntryKind, EntrySpec};
use thiserror::Error;

/// Where a function's package is in the guest: `/var/task`.
pub const TASK_DIR: &str = "var/task";
/// Where `mayfly exec` puts its program: `/var/runtime`.
pub const RUNTIME_DIR: &str = "var/runtime";
/// The longest symbolic link target kept (Linux's `PATH_MAX` less its NUL).
pub const MAX_SYMLINK_TARGET: usize = 4095;

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Why a pack cannot be made of a package or a directory.
#[derive(Debug, Error)]
pub enum PackWriteError {
    /// A name that is not a clean relative path (absolute, `..`, `.`, an
    /// empty component) or not UTF-8.
    #[error("`{0}` is not a clean relative path (no leading `/`, no `.` or `..` components, no empty components, UTF-8)")]
    UncleanPath(String),
    /// Two entries with the same path (a file and a directory, say).
    #[error("`{0}` appears twice")]
    Duplicate(String),
    /// A device, FIFO or socket.
    #[error("`{path}` is a {what}, which a package cannot hold (only files, directories and symbolic links)")]
    Special {
        /// The entry.
        path: String,
        /// What it is.
        what: &'static str,
    },
    /// A symbolic link whose target is too long.
    #[error("the symbolic link `{0}` has a target longer than {MAX_SYMLINK_TARGET} bytes")]
    SymlinkTooLong(String),
    /// More bytes than the limit.
    #[error("the files add up to more than {0} bytes")]
    TooLarge(u64),
    /// More entries than a pack holds.
    #[error("more than {} files and directories", pack::MAX_ENTRIES)]
    TooManyEntries,
    /// A file or entry gave a different number of bytes than it declared
    /// (a zip that lies, a file that changed while it was copied).
    #[error("`{path}` holds a different number of bytes than the {declared} it declares")]
    SizeMismatch {
        /// The entry.
        path: String,
        /// Its declared size.
        declared: u64,
    },
    /// The zip could not be read.
    #[error("cannot read the zip: {0}")]
    Zip(zip::result::ZipError),
    /// A source file or entry could not be read.
    #[error("cannot read `{path}`: {source}")]
    Read {
        /// The entry or file.
        path: String,
        /// The OS or decompression error.
        source: io::Error,
    },
    /// The pack could not be written (the host's fault: a full disk).
    #[error("cannot write the pack: {0}")]
    Write(io::Error),
    /// The layout was refused.
    #[error("cannot lay out the pack: {0}")]
    Layout(pack::PackError),
}

impl PackWriteError {
    /// Whether the host, not the package, is at fault.
    pub fn is_host_failure(&self) -> bool {
        matches!(self, PackWriteError::Write(_))
    }
}

/// Where an entry's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    None,
    /// Entry `n` of the zip.
    Zip(usize),
    /// A file on the host.
    File(PathBuf),
    /// A symbolic link's target.
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    kind: EntryKind,
    mode: u32,
    size: u64,
    data: Data,
}

/// The entries of a pack to be, checked as they are added.
#[derive(Debug, Clone)]
pub struct PackBuilder {
    entries: Vec<Entry>,
    index: HashMap<String, usize>,
    /// Directories added only because something is under them: a zip's
    /// own entry for one may still set its mode.
    implied: std::collections::HashSet<usize>,
    data_bytes: u64,
    cap: u64,
}

impl PackBuilder {
    /// An empty pack whose data may add up to `cap` bytes.
    pub fn new(cap: u64) -> PackBuilder {
        PackBuilder {
            entries: Vec::new(),
            index: HashMap::new(),
            implied: Default::default(),
            data_bytes: 0,
            cap,
        }
    }

    /// Number of entries so far (implied directories included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of data so far.
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// The path, kind and mode of every entry, in order (for tests and
    /// logs).
    pub fn listing(&self) -> Vec<(&str, EntryKind, u32)> {
        self.entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.mode))
            .collect()
    }

    fn push(&mut self, entry: Entry, implied: bool) -> Result<(), PackWriteError> {
        if !pack::is_clean_path(&entry.path) {
            return Err(PackWriteError::UncleanPath(entry.path));
        }
        if let Some(&at) = self.index.get(&entry.path) {
            // A directory named again (by the zip, after a file under it
            // implied it) takes the zip's mode.
            if entry.kind == EntryKind::Dir && self.entries[at].kind == EntryKind::Dir {
                if !implied && self.implied.remove(&at) {
                    self.entries[at].mode = entry.mode;
                    return Ok(());
                }
                if implied {
                    return Ok(());
                }
            }
            return Err(PackWriteError::Duplicate(entry.path));
        }
        if self.entries.len() >= pack::MAX_ENTRIES {
            return Err(PackWriteError::TooManyEntries);
        }
        self.data_bytes = self.data_bytes.saturating_add(entry.size);
        if self.data_bytes > self.cap {
            return Err(PackWriteError::TooLarge(self.cap));
        }
        let at = self.entries.len();
        self.index.insert(entry.path.clone(), at);
        if implied {
            self.implied.insert(at);
        }
        self.entries.push(entry);
        Ok(())
    }

    /// Adds every directory above `path`.
    fn parents(&mut self, path: &str) -> Result<(), PackWriteError> {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            let dir = &path[..end];
            self.push(
                Entry {
                    path: dir.to_string(),
                    kind: EntryKind::Dir,
                    mode: 0o755,
                    size: 0,
                    data: Data::None,
                },
                true,
            )?;
            end += 1;
        }
        Ok(())
    }

    fn add(&mut self, entry: Entry) -> Result<(), PackWriteError> {
        if !pack::is_clean_path(&entry.path) {
            return Err(PackWriteError::UncleanPath(entry.path));
        }
        self.parents(&entry.path)?;
        self.push(entry, false)
    }

    /// A directory (and those above it).
    pub fn add_dir(&mut self, path: &str, mode: u32) -> Result<(), PackWriteError> {
        self.add(Entry {
            path: path.to_string(),
            kind: EntryKind::Dir,
            mode: mode & 0o7777,
            size: 0,
            data: Data::None,
        })
    }

    /// A file of the host, `size` bytes long, as `path`.
    pub fn add_host_file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        source: &Path,
    ) -> Result<(), PackWriteError> {
        self.add(Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            mode: mode & 0o7777,
            size,
            data: Data::File(source.to_path_buf()),
        })
    }

    /// A regular file holding `bytes`.
    pub fn add_bytes(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<(), PackWriteError> {
        self.add(Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            mode: mode & 0o7777,
            size: bytes.len() as u64,
            data: Data::Bytes(bytes.to_vec()),
        })
    }

    /// The guest's name service: `/etc/resolv.conf` (the host's DNS on the
    /// private network, over UDP, and over TCP for a resolver that asks),
    /// `/etc/hosts`
    /// (`localhost`, and [`HOST_NAME`](mayfly_egress::HOST_NAME) at the
    /// host's address) and `/etc/nsswitch.conf` (files, then DNS). They
    /// are Mayfly's, so they do not count against the package's cap.
    pub fn add_name_service(&mut self) -> Result<(), PackWriteError> {
        let [a, b, c, d] = mayfly_proto::net::HOST_IP;
        let host = format!("{a}.{b}.{c}.{d}");
        let resolv = format!("nameserver {host}\n");
        let hosts = format!(
            "127.0.0.1 localhost\n::1 localhost\n{host} {}\n",
            mayfly_egress::HOST_NAME
        );
        let nsswitch = b"hosts: files dns\n";
        self.cap += (resolv.len() + hosts.len() + nsswitch.len()) as u64;
        self.add_bytes("etc/resolv.conf", 0o644, resolv.as_bytes())?;
        self.add_bytes("etc/hosts", 0o644, hosts.as_bytes())?;
        self.add_bytes("etc/nsswitch.conf", 0o644, nsswitch)
    }

    /// A symbolic link to `target`.
    pub fn add_symlink(&mut self, path: &str, target: &[u8]) -> Result<(), PackWriteError> {
        if target.len() > MAX_SYMLINK_TARGET {
            return Err(PackWriteError::SymlinkTooLong(path.to_string()));
        }
        self.add(Entry {
            path: path.to_string(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: target.len() as u64,
            data: Data::Bytes(target.to_vec()),
        })
    }

    /// Every entry of `archive`, under `prefix` (such as [`TASK_DIR`]),
    /// with the zip's unix modes (a file without one gets 0644, except
    /// `bootstrap`, 0755), its directories and its symbolic links (the
    /// target being the entry's content). Refuses unclean names and
    /// special files.
    pub fn add_zip<R: Read + Seek>(
        &mut self,
        archive: &mut zip::ZipArchive<R>,
        prefix: &str,
    ) -> Result<(), PackWriteError> {
        self.add_dir(prefix, 0o755)?;
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i).map_err(PackWriteError::Zip)?;
            let raw_name = entry.name().to_string();
            let (name, is_dir) = match raw_name.strip_suffix('/') {
                Some(dir) => (dir, true),
                None => (raw_name.as_str(), false),
            };
            if !pack::is_clean_path(name) {
                return Err(PackWriteError::UncleanPath(raw_name));
            }
            let path = format!("{prefix}/{name}");
            let mode = entry.unix_mode();
            let size = entry.size();
            drop(entry);
            match (mode.map(|m| m & S_IFMT), is_dir) {
                (_, true) | (Some(S_IFDIR), _) => {
                    self.add_dir(&path, mode.map_or(0o755, |m| m & 0o7777))?
                }
                (Some(S_IFLNK), _) => {
                    let target = read_symlink_target(archive, i, &raw_name, size)?;
                    self.add_symlink(&path, &target)?;
                }
                (None | Some(0 | S_IFREG), _) => {
                    let mode = match (mode, name == "bootstrap") {
                        // The program must be executable, whatever the
                        // zipping tool recorded (a zip made on Windows
                        // marks files 0664).
                        (m, true) => m.map_or(0o755, |m| m & 0o7777) | 0o555,
                        (m, false) => m.map_or(0o644, |m| m & 0o7777),
                    };
                    self.add(Entry {
                        path,
                        kind: EntryKind::File,
                        mode,
                        size,
                        data: Data::Zip(i),
                    })?;
                }
                (Some(kind), _) => {
                    return Err(PackWriteError::Special {
                        path: raw_name,
                        what: special_name(kind),
                    })
                }
            }
        }
        Ok(())
    }

    /// The tree under the host directory `root`, as `prefix/...`: files
    /// (with their modes), directories, and symbolic links as links (never
    /// followed). Refuses devices, FIFOs, sockets and names that are not
    /// UTF-8. Names are taken in sorted order, so the same tree gives the
    /// same pack.
    pub fn add_host_dir(&mut self, root: &Path, prefix: &str) -> Result<(), PackWriteError> {
        self.add_dir(prefix, 0o755)?;
        let read_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| PackWriteError::Read { path, source }
        };
        let mut stack = vec![(root.to_path_buf(), prefix.to_string())];
        while let Some((dir, inside)) = stack.pop() {
            let mut names: Vec<_> = std::fs::read_dir(&dir)
                .map_err(read_err(&dir))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()
                .map_err(read_err(&dir))?;
            names.sort();
            let mut subdirs = Vec::new();
            for name in names {
                let host = dir.join(&name);
                let name = name
                    .to_str()
                    .ok_or_else(|| PackWriteError::UncleanPath(host.display().to_string()))?;
                let path = format!("{inside}/{name}");
                let meta = std::fs::symlink_metadata(&host).map_err(read_err(&host))?;
                let kind = meta.file_type();
                let mode = meta.permissions().mode() & 0o7777;
                if kind.is_dir() {
                    self.add_dir(&path, mode)?;
                    subdirs.push((host, path));
                } else if kind.is_symlink() {
                    let target = std::fs::read_link(&host).map_err(read_err(&host))?;
                    self.add_symlink(&path, target.as_os_str().as_bytes())?;
                } else if kind.is_file() {
                    self.add_host_file(&path, mode, meta.len(), &host)?;
                } else {
                    let what = if kind.is_fifo() {
                        "FIFO"
                    } else if kind.is_socket() {
                        "socket"
                    } else {
                        "device"
                    };
                    return Err(PackWriteError::Special {
                        path: host.display().to_string(),
                        what,
                    });
                }
            }
            // Depth first, in name order.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    /// Writes the pack into `out` (from its start), the zip's entries read
    /// from `archive`; returns the pack's length.
    pub fn write<R: Read + Seek>(
        &self,
        out: &mut File,
        mut archive: Option<&mut zip::ZipArchive<R>>,
    ) -> Result<u64, PackWriteError> {
        let specs: Vec<EntrySpec<'_>> = self
            .entries
            .iter()
            .map(|e| EntrySpec {
                path: &e.path,
                kind: e.kind,
                mode: e.mode,
                size: e.size,
            })
            .collect();
        let plan = pack::plan(&specs).map_err(PackWriteError::Layout)?;
        let write = PackWriteError::Write;
        out.set_len(0).map_err(write)?;
        out.seek(SeekFrom::Start(0)).map_err(write)?;
        out.write_all(&plan.header).map_err(write)?;
        let mut buf = vec![0u8; 64 * 1024];
        for (entry, &offset) in self.entries.iter().zip(&plan.data_offsets) {
            if entry.size == 0 {
                continue;
            }
            out.seek(SeekFrom::Start(offset)).map_err(write)?;
            match &entry.data {
                Data::None => {}
                Data::Bytes(bytes) => out.write_all(bytes).map_err(write)?,
                Data::File(source) => {
                    let mut file = File::open(source).map_err(|source| PackWriteError::Read {
                        path: entry.path.clone(),
                        source,
                    })?;
                    copy_exact(&mut file, out, entry, &mut buf)?;
                }
                Data::Zip(index) => {
                    let archive = archive.as_deref_mut().ok_or_else(|| PackWriteError::Read {
                        path: entry.path.clone(),
                        source: io::Error::other("no zip to read it from"),
                    })?;
                    let mut file = archive.by_index(*index).map_err(PackWriteError::Zip)?;
                    copy_exact(&mut file, out, entry, &mut buf)?;
                }
            }
        }
        // The last file's tail, and an empty pack's, up to the length the
        // header states.
        out.set_len(plan.total_len).map_err(write)?;
        out.flush().map_err(write)?;
        Ok(plan.total_len)
    }
}

impl PackBuilder {
    /// [`write`](Self::write) for a pack of host files only (no zip).
    pub fn write_host(&self, out: &mut File) -> Result<u64, PackWriteError> {
        self.write(out, None::<&mut zip::ZipArchive<File>>)
    }
}

/// Copies exactly `entry.size` bytes of `from` into `to`: fewer, or more,
/// is [`PackWriteError::SizeMismatch`].
fn copy_exact(
    from: &mut impl Read,
    to: &mut File,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<(), PackWriteError> {
    let mismatch = || PackWriteError::SizeMismatch {
        path: entry.path.clone(),
        declared: entry.size,
    };
    let mut left = entry.size;
    loop {
        let want = buf
            .len()
            .min(usize::try_from(left).unwrap_or(usize::MAX).max(1));
        let n = match from.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(PackWriteError::Read {
                    path: entry.path.clone(),
                    source,
                })
            }
        };
        if n == 0 {
            return if left == 0 { Ok(()) } else { Err(mismatch()) };
        }
        if n as u64 > left {
            return Err(mismatch());
        }
        to.write_all(&buf[..n]).map_err(PackWriteError::Write)?;
        left -= n as u64;
    }
}

fn read_symlink_target<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
    name: &str,
    size: u64,
) -> Result<Vec<u8>, PackWriteError> {
    if size > MAX_SYMLINK_TARGET as u64 {
        return Err(PackWriteError::SymlinkTooLong(name.to_string()));
    }
    let mut entry = archive.by_index(index).map_err(PackWriteError::Zip)?;
    let mut target = Vec::new();
    (&mut entry)
        .take(MAX_SYMLINK_TARGET as u64 + 1)
        .read_to_end(&mut target)
        .map_err(|source| PackWriteError::Read {
            path: name.to_string(),
            source,
        })?;
    if target.len() > MAX_SYMLINK_TARGET {
        return Err(PackWriteError::SymlinkTooLong(name.to_string()));
    }
    Ok(target)
}

fn special_name(kind: u32) -> &'static str {
    match kind {
        0o010_000 => "FIFO",
        0o020_000 => "character device",
        0o060_000 => "block device",
        0o140_000 => "socket",
        _ => "file of an unknown type",
    }
}

/// Writes the pack of a function's zip (every entry under [`TASK_DIR`])
/// into a new temporary file in `dir`, data capped at `cap` bytes.
pub fn write_zip_pack<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    dir: &Path,
    cap: u64,
) -> Result<tempfile::NamedTempFile, PackWriteError> {
    let mut builder = PackBuilder::new(cap);
    builder.add_zip(archive, TASK_DIR)?;
    builder.add_name_service()?;
    let mut temp = tempfile::Builder::new()
        .prefix(".packing-")
        .tempfile_in(dir)
        .map_err(PackWriteError::Write)?;
    builder.write(temp.as_file_mut(), Some(archive))?;
    Ok(temp)
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
