//! Open file descriptions: what `open` returns and `read`, `write`,
//! `lseek`, `fstat`, `ftruncate` and `getdents64` act on.

use alloc::vec::Vec;

use super::path::Node;
use super::{owned, DevName, Device, DirEntry, NodeKind, Stat, Vfs};
use crate::abi::{
    write_dirent64, O_ACCMODE, O_APPEND, O_CREAT, O_DIRECTORY, O_EXCL, O_NOCTTY, O_NOFOLLOW,
    O_NONBLOCK, O_PATH, O_RDWR, O_TRUNC, O_WRONLY, SEEK_CUR, SEEK_END, SEEK_SET,
};
use crate::errno::{Errno, SysResult};

/// The bit that makes `O_TMPFILE` (which also sets `O_DIRECTORY`).
const TMPFILE_BIT: u32 = 0o20000000;
/// Offsets and lengths past this are not representable in `off_t`.
const OFF_MAX: u64 = i64::MAX as u64;

/// Where a directory listing resumes: by name, so that entries added or
/// removed meanwhile never make it repeat or skip one that stayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    Dot,
    DotDot,
    /// After this name (from the first name when `None`).
    Names(Option<Vec<u8>>),
}

/// An open file description: the node, the offset and the flags. The
/// kernel shares one between descriptors (`dup`, `fork`) by wrapping it.
#[derive(Debug)]
pub struct OpenFile<'a> {
    node: Node,
    kind: NodeKind,
    pack: Option<(&'a [u8], u64)>,
    flags: u32,
    offset: u64,
    cursor: Cursor,
    path: Vec<u8>,
}

impl<'a> Vfs<'a> {
    /// Opens (or with `O_CREAT`, creates in `/tmp` with permission bits
    /// `mode`, as given: the umask is the caller's) the file `path`:
    ///
    /// - `O_RDONLY`, `O_WRONLY`, `O_RDWR` (both bits: `EINVAL`); writing
    ///   or `O_TRUNC` outside `/tmp` and `/dev`: `EROFS`; a directory for
    ///   writing (or with `O_CREAT`): `EISDIR`; the owner's bits decide
    ///   the rest (`EACCES`);
    /// - `O_CREAT` (`EROFS` outside `/tmp`; `O_CREAT | O_DIRECTORY`:
    ///   `EINVAL`, as Linux 6.4+), `O_EXCL` (`EEXIST`, a final symlink not
    ///   followed), `O_TRUNC`, `O_APPEND`;
    /// - `O_DIRECTORY` (`ENOTDIR`), `O_NOFOLLOW` (`ELOOP` on a final
    ///   symlink, which `O_PATH | O_NOFOLLOW` opens itself);
    /// - `O_PATH`: a handle for `fstat` and paths only (reads, writes,
    ///   seeks and listings are `EBADF`); other flags but `O_DIRECTORY`,
    ///   `O_NOFOLLOW` and `O_CLOEXEC` are ignored with it;
    /// - `O_TMPFILE`: `EOPNOTSUPP`;
    /// - the rest (`O_CLOEXEC`, `O_NONBLOCK`, `O_LARGEFILE`, `O_NOCTTY`,
    ///   `O_NOATIME`, `O_DSYNC`, `O_SYNC`, `O_DIRECT`) are accepted;
    ///   `O_CLOEXEC` is kept in [`OpenFile::flags`] for the descriptor
    ///   table.
    pub fn open(
        &mut self,
        cwd: &[u8],
        path: &[u8],
        flags: u32,
        mode: u32,
        now_ns: u64,
    ) -> SysResult<OpenFile<'a>> {
        if flags & TMPFILE_BIT != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let path_only = flags & O_PATH != 0;
        let acc = flags & O_ACCMODE;
        if acc == O_ACCMODE && !path_only {
            return Err(Errno::EINVAL);
        }
        let creat = !path_only && flags & O_CREAT != 0;
        let excl = creat && flags & O_EXCL != 0;
        if creat && flags & O_DIRECTORY != 0 {
            return Err(Errno::EINVAL);
        }
        let reading = !path_only && acc != O_WRONLY;
        let writing = !path_only && (acc == O_WRONLY || acc == O_RDWR);
        let trunc = !path_only && flags & O_TRUNC != 0;
        let follow = flags & O_NOFOLLOW == 0 && !excl;
        let walked = self.walk(cwd, path, follow)?;
        let mut file_path = walked.path()?;
        let (node, created) = match &walked.missing {
            Some(name) => {
                if !creat {
                    return Err(Errno::ENOENT);
                }
                if walked.must_dir {
                    return Err(Errno::EISDIR);
                }
                let node = self.create_file(&walked.node(), name, mode, now_ns)?;
                if file_path != b"/" {
                    file_path.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                    file_path.push(b'/');
                }
                file_path
                    .try_reserve(name.len())
                    .map_err(|_| Errno::ENOMEM)?;
                file_path.extend_from_slice(name);
                (Node::Tmp(node), true)
            }
            None if excl => return Err(Errno::EEXIST),
            None => (walked.node(), false),
        };
        let kind = self.node_kind(&node);
        match kind {
            NodeKind::Symlink if !path_only => return Err(Errno::ELOOP),
            NodeKind::Directory if writing || trunc || creat => return Err(Errno::EISDIR),
            _ if flags & O_DIRECTORY != 0 && kind != NodeKind::Directory => {
                return Err(Errno::ENOTDIR)
            }
            _ => {}
        }
        if !path_only && !created {
            let device = matches!(kind, NodeKind::CharDevice(_));
            if (writing || (trunc && !device)) && self.read_only(&node) {
                return Err(Errno::EROFS);
            }
            let owner = (self.node_stat(&node).mode >> 6) & 7;
            if (reading && owner & 4 == 0) || ((writing || trunc) && owner & 2 == 0) {
                return Err(Errno::EACCES);
            }
            if let (true, Node::Tmp(t)) = (trunc, &node) {
                if t.data().is_some() {
                    t.set_len(0, now_ns)?;
                }
            }
        }
        let pack = match &node {
            Node::Pack(i) if kind == NodeKind::Regular => {
                self.tree.get(*i).map(|n| (n.data, n.offset))
            }
            _ => None,
        };
        Ok(OpenFile {
            node,
            kind,
            pack,
            flags: flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC),
            offset: 0,
            cursor: Cursor::Dot,
            path: file_path,
        })
    }

    /// The entry of directory `node` after `cursor`, and the cursor past it.
    pub(crate) fn entry_after(
        &self,
        node: &Node,
        cursor: &Cursor,
    ) -> SysResult<Option<(DirEntry, Cursor)>> {
        let dot = |name: &[u8], ino, next| -> SysResult<Option<(DirEntry, Cursor)>> {
            let entry = DirEntry {
                ino,
                kind: NodeKind::Directory,
                name: owned(name)?,
            };
            Ok(Some((entry, next)))
        };
        let after = match cursor {
            Cursor::Dot => return dot(b".", self.node_ino(node), Cursor::DotDot),
            Cursor::DotDot => return dot(b"..", self.parent_ino(node), Cursor::Names(None)),
            Cursor::Names(after) => after.as_deref(),
        };
        let next: Option<(Vec<u8>, u64, NodeKind)> = match node {
            Node::Pack(i) => {
                let Some(dir) = self.tree.get(*i) else {
                    return Ok(None);
                };
                let mut range = match after {
                    None => dir.children.range::<[u8], _>(..),
                    Some(a) => dir.children.range::<[u8], _>((
                        core::ops::Bound::Excluded(a),
                        core::ops::Bound::Unbounded,
                    )),
                };
                match range.next() {
                    Some((name, &child)) => {
                        let child = self.pack_node(child);
                        Some((owned(name)?, self.node_ino(&child), self.node_kind(&child)))
                    }
                    None => None,
                }
            }
            Node::Tmp(t) => match t.dir() {
                Some(d) => d.next_after(after)?.map(|(name, ino, is_dir)| {
                    (
                        name,
                        ino,
                        if is_dir {
                            NodeKind::Directory
                        } else {
                            NodeKind::Regular
                        },
                    )
                }),
                None => None,
            },
            Node::DevDir => match DevName::ALL
                .iter()
                .find(|(n, _)| !matches!(after, Some(a) if *n <= a))
            {
                Some(&(name, d)) => Some((owned(name)?, d.ino(), NodeKind::CharDevice(d.device()))),
                None => None,
            },
            Node::Dev(_) => None,
        };
        match next {
            Some((name, ino, kind)) => {
                let resume = owned(&name)?;
                Ok(Some((
                    DirEntry { ino, kind, name },
                    Cursor::Names(Some(resume)),
                )))
            }
            None => Ok(None),
        }
    }
}

impl<'a> OpenFile<'a> {
    /// What the file is: the kernel serves `Random` reads itself.
    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// The flags it was opened with, less the creation flags (`O_CREAT`,
    /// `O_EXCL`, `O_NOCTTY`, `O_TRUNC`); `O_CLOEXEC` is kept, for the
    /// caller to give the descriptor table.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// What `F_GETFL` reports: [`flags`](Self::flags) less `O_CLOEXEC`,
    /// which belongs to the descriptor, not the open file.
    pub fn status_flags(&self) -> u32 {
        self.flags & !crate::abi::O_CLOEXEC
    }

    /// `F_SETFL`: only `O_APPEND` and `O_NONBLOCK` change.
    pub fn set_status_flags(&mut self, flags: u32) {
        let changeable = O_APPEND | O_NONBLOCK;
        self.flags = (self.flags & !changeable) | (flags & changeable);
    }

    /// The absolute path it was opened by (symlinks resolved).
    pub fn path(&self) -> &[u8] {
        &self.path
    }

    /// The offset: bytes for a file, entries returned for a directory.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// For a file of the package: its whole content and where it starts
    /// in the pack, so the kernel can map it without copying.
    pub fn pack_bytes(&self) -> Option<(&'a [u8], u64)> {
        self.pack
    }

    fn readable(&self) -> bool {
        self.flags & O_PATH == 0 && self.flags & O_ACCMODE != O_WRONLY
    }

    fn writable(&self) -> bool {
        self.flags & O_PATH == 0 && matches!(self.flags & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    fn read_at(&self, pos: u64, buf: &mut [u8]) -> SysResult<usize> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        match self.kind {
            NodeKind::Directory => Err(Errno::EISDIR),
            NodeKind::Symlink => Err(Errno::EBADF),
            NodeKind::CharDevice(Device::Null) => Ok(0),
            NodeKind::CharDevice(Device::Zero | Device::Full) => {
                buf.fill(0);
                Ok(buf.len())
            }
            // The kernel has the entropy; it must not reach here.
            NodeKind::CharDevice(Device::Random) => Err(Errno::EIO),
            NodeKind::Regular => match (&self.node, self.pack) {
                (Node::Tmp(t), _) => Ok(t.read_at(pos, buf)),
                (_, Some((data, _))) => {
                    let src = usize::try_from(pos)
                        .ok()
                        .and_then(|p| data.get(p..))
                        .unwrap_or(&[]);
                    let n = src.len().min(buf.len());
                    buf[..n].copy_from_slice(&src[..n]);
                    Ok(n)
                }
                _ => Ok(0),
            },
        }
    }

    fn write_at(&self, pos: u64, buf: &[u8], now_ns: u64) -> SysResult<(usize, u64)> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        match (self.kind, &self.node) {
            (NodeKind::CharDevice(Device::Full), _) => Err(Errno::ENOSPC),
            (NodeKind::CharDevice(_), _) => Ok((buf.len(), pos)),
            (NodeKind::Directory, _) => Err(Errno::EISDIR),
            (NodeKind::Regular, Node::Tmp(t)) => {
                t.write_at(pos, self.flags & O_APPEND != 0, buf, now_ns)
            }
            _ => Err(Errno::EBADF),
        }
    }

    /// `read`: from the offset, which advances. `/dev/zero` and
    /// `/dev/full` give zeros, `/dev/null` nothing; on `Random` it is
    /// `EIO`, since the kernel serves those reads itself (check
    /// [`kind`](Self::kind) first).
    pub fn read(&mut self, vfs: &Vfs<'a>, buf: &mut [u8]) -> SysResult<usize> {
        let _ = vfs;
        let n = self.read_at(self.offset, buf)?;
        if self.kind == NodeKind::Regular {
            self.offset = self.offset.saturating_add(n as u64);
        }
        Ok(n)
    }

    /// `write`: at the offset (at the end with `O_APPEND`), which
    /// advances; a `/tmp` file's write the limit cuts short writes what
    /// fits, and one that fits nothing is `ENOSPC`. Devices swallow all,
    /// `/dev/full` is `ENOSPC`; `EBADF` unless open for writing.
    pub fn write(&mut self, vfs: &mut Vfs<'a>, buf: &[u8], now_ns: u64) -> SysResult<usize> {
        let _ = vfs;
        let (n, end) = self.write_at(self.offset, buf, now_ns)?;
        if self.kind == NodeKind::Regular {
            self.offset = end;
        }
        Ok(n)
    }

    /// `pread64`: like [`read`](Self::read) at `offset`, which does not
    /// change (`EINVAL` past `i64::MAX`).
    pub fn pread(&self, vfs: &Vfs<'a>, buf: &mut [u8], offset: u64) -> SysResult<usize> {
        let _ = vfs;
        if offset > OFF_MAX {
            return Err(Errno::EINVAL);
        }
        self.read_at(offset, buf)
    }

    /// `pwrite64`: like [`write`](Self::write) at `offset`, which does not
    /// change; with `O_APPEND` it writes at the end, as Linux does.
    pub fn pwrite(
        &mut self,
        vfs: &mut Vfs<'a>,
        buf: &[u8],
        offset: u64,
        now_ns: u64,
    ) -> SysResult<usize> {
        let _ = vfs;
        if offset > OFF_MAX {
            return Err(Errno::EINVAL);
        }
        self.write_at(offset, buf, now_ns).map(|(n, _)| n)
    }

    /// `lseek`. A file's offset may go past its end; a negative one is
    /// `EINVAL`, as are `SEEK_DATA` and `SEEK_HOLE`. A device's offset is
    /// always 0. A directory seeks to an entry index (`SEEK_SET`) or
    /// reports its own (`SEEK_CUR` 0), for `rewinddir` and `telldir`.
    pub fn seek(&mut self, vfs: &Vfs<'a>, offset: i64, whence: u32) -> SysResult<u64> {
        if self.flags & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        match self.kind {
            NodeKind::CharDevice(_) => Ok(0),
            NodeKind::Directory => match (whence, u64::try_from(offset)) {
                (SEEK_SET, Ok(index)) => {
                    self.cursor = Cursor::Dot;
                    self.offset = 0;
                    while self.offset < index {
                        match vfs.entry_after(&self.node, &self.cursor)? {
                            Some((_, next)) => self.cursor = next,
                            None => break,
                        }
                        self.offset += 1;
                    }
                    Ok(self.offset)
                }
                (SEEK_CUR, Ok(0)) => Ok(self.offset),
                _ => Err(Errno::EINVAL),
            },
            _ => {
                let base = match whence {
                    SEEK_SET => 0,
                    SEEK_CUR => self.offset,
                    SEEK_END => self.stat(vfs).size,
                    _ => return Err(Errno::EINVAL),
                };
                let target = i128::from(base) + i128::from(offset);
                if !(0..=i128::from(OFF_MAX)).contains(&target) {
                    return Err(Errno::EINVAL);
                }
                self.offset = target as u64;
                Ok(self.offset)
            }
        }
    }

    /// `fstat`.
    pub fn stat(&self, vfs: &Vfs<'a>) -> Stat {
        vfs.node_stat(&self.node)
    }

    /// `ftruncate`: a `/tmp` file open for writing only (`EINVAL`
    /// otherwise, as Linux says for a descriptor it cannot truncate);
    /// growth past the limit is `ENOSPC`.
    pub fn truncate(&mut self, vfs: &mut Vfs<'a>, len: u64, now_ns: u64) -> SysResult<()> {
        let _ = vfs;
        if self.flags & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        match &self.node {
            Node::Tmp(t) if self.writable() && t.data().is_some() && len <= OFF_MAX => {
                t.set_len(len, now_ns)
            }
            _ => Err(Errno::EINVAL),
        }
    }

    /// `getdents64`: as many `linux_dirent64` records as fit in `buf`,
    /// `.` and `..` first, then by name, resuming where the last call
    /// stopped; 0 at the end, `EINVAL` if the next record does not fit.
    pub fn getdents64(&mut self, vfs: &Vfs<'a>, buf: &mut [u8]) -> SysResult<usize> {
        if self.flags & O_PATH != 0 {
            return Err(Errno::EBADF);
        }
        if self.kind != NodeKind::Directory {
            return Err(Errno::ENOTDIR);
        }
        if let Node::Tmp(t) = &self.node {
            if t.dir().is_some_and(|d| d.removed.get()) {
                return Err(Errno::ENOENT);
            }
        }
        let mut written = 0;
        while let Some((entry, next)) = vfs.entry_after(&self.node, &self.cursor)? {
            let off = self.offset.saturating_add(1);
            let rest = buf.get_mut(written..).unwrap_or(&mut []);
            let d_off = i64::try_from(off).unwrap_or(i64::MAX);
            match write_dirent64(rest, entry.ino, d_off, entry.kind.d_type(), &entry.name) {
                Some(n) => {
                    written += n;
                    self.cursor = next;
                    self.offset = off;
                }
                None if written == 0 => return Err(Errno::EINVAL),
                None => break,
            }
        }
        Ok(written)
    }
}
