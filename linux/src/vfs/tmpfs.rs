//! `/tmp`: files and directories in memory, their bytes bounded.
//!
//! Nodes are reference-counted: a directory holds its children, and an
//! open file holds its node, so a file unlinked while open keeps working
//! and its bytes are freed (and given back to the limit) when the last
//! holder drops it. The accounting therefore lives in the node's `Drop`,
//! not in `unlink`.
//!
//! Memory is the VM's, so every growth is fallible: file bytes are
//! reserved with `try_reserve_exact` (never more capacity than the limit
//! leaves), directory slots and names with `try_reserve`. Only the node
//! itself (`Rc::new`, a few dozen bytes) cannot be, which is why the
//! number of nodes is bounded too ([`TMP_MAX_NODES`]).

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use crate::errno::{Errno, SysResult};

/// The most files and directories `/tmp` holds at once (`ENOSPC` past
/// it), so that names and nodes, which the byte limit does not count,
/// stay within a few tens of MiB.
pub const TMP_MAX_NODES: u64 = 65_536;

/// The first inode number of `/tmp`'s nodes (the root's).
pub(crate) const TMP_INO_BASE: u64 = 1 << 32;

/// What all of `/tmp`'s nodes share: the limit and what is used of it.
#[derive(Debug)]
pub(crate) struct Shared {
    limit: u64,
    used: Cell<u64>,
    nodes: Cell<u64>,
    next_ino: Cell<u64>,
}

/// A file or directory of `/tmp`.
#[derive(Debug)]
pub(crate) struct TmpNode {
    pub ino: u64,
    /// Permission bits only.
    pub mode: u32,
    pub mtime: Cell<u64>,
    pub body: Body,
    shared: Rc<Shared>,
}

/// A node's content.
#[derive(Debug)]
pub(crate) enum Body {
    File(RefCell<Vec<u8>>),
    Dir(TmpDir),
}

/// A directory: its entries sorted by name, so listings resume by name.
#[derive(Debug, Default)]
pub(crate) struct TmpDir {
    pub entries: RefCell<Vec<(Vec<u8>, Rc<TmpNode>)>>,
    pub parent_ino: Cell<u64>,
    /// Set by `rmdir`: lookups and listings in it fail from then on.
    pub removed: Cell<bool>,
}

impl Drop for TmpNode {
    fn drop(&mut self) {
        let s = &self.shared;
        if let Body::File(data) = &self.body {
            let len = data.borrow().len() as u64;
            s.used.set(s.used.get().saturating_sub(len));
        }
        s.nodes.set(s.nodes.get().saturating_sub(1));
    }
}

/// The tmpfs: its root and shared accounting.
#[derive(Debug)]
pub(crate) struct Tmpfs {
    pub root: Rc<TmpNode>,
    shared: Rc<Shared>,
}

impl Tmpfs {
    /// An empty `/tmp` (mode 0o777, like Lambda's) whose files hold at
    /// most `limit` bytes; `parent_ino` is the root's inode.
    pub fn new(limit: u64, parent_ino: u64) -> Self {
        let shared = Rc::new(Shared {
            limit,
            used: Cell::new(0),
            nodes: Cell::new(1),
            next_ino: Cell::new(TMP_INO_BASE + 1),
        });
        let dir = TmpDir::default();
        dir.parent_ino.set(parent_ino);
        let root = Rc::new(TmpNode {
            ino: TMP_INO_BASE,
            mode: 0o777,
            mtime: Cell::new(0),
            body: Body::Dir(dir),
            shared: shared.clone(),
        });
        Tmpfs { root, shared }
    }

    /// Bytes held by files (unlinked ones still open included).
    pub fn used(&self) -> u64 {
        self.shared.used.get()
    }

    /// A new file or directory (`ENOSPC` past [`TMP_MAX_NODES`]).
    pub fn new_node(&self, dir: bool, mode: u32, now_ns: u64) -> SysResult<Rc<TmpNode>> {
        let s = &self.shared;
        if s.nodes.get() >= TMP_MAX_NODES {
            return Err(Errno::ENOSPC);
        }
        let ino = s.next_ino.get();
        s.next_ino.set(ino.checked_add(1).ok_or(Errno::ENOSPC)?);
        s.nodes.set(s.nodes.get() + 1);
        let body = if dir {
            Body::Dir(TmpDir::default())
        } else {
            Body::File(RefCell::new(Vec::new()))
        };
        Ok(Rc::new(TmpNode {
            ino,
            mode: mode & 0o7777,
            mtime: Cell::new(now_ns),
            body,
            shared: s.clone(),
        }))
    }

    /// Takes every node out of the tree without recursing, so that a deep
    /// chain of directories cannot overflow the kernel's stack when the
    /// file system is dropped.
    pub fn dismantle(&self) {
        let mut pending: Vec<Rc<TmpNode>> = Vec::new();
        if let Some(dir) = self.root.dir() {
            pending.extend(dir.entries.take().into_iter().map(|(_, n)| n));
        }
        while let Some(node) = pending.pop() {
            if let Some(dir) = node.dir() {
                pending.extend(dir.entries.take().into_iter().map(|(_, n)| n));
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        self.dismantle();
    }
}

impl TmpNode {
    /// The directory, if this is one.
    pub fn dir(&self) -> Option<&TmpDir> {
        match &self.body {
            Body::Dir(d) => Some(d),
            Body::File(_) => None,
        }
    }

    /// The file's bytes, if this is a file.
    pub fn data(&self) -> Option<&RefCell<Vec<u8>>> {
        match &self.body {
            Body::File(d) => Some(d),
            Body::Dir(_) => None,
        }
    }

    /// The file's length (0 for a directory).
    pub fn len(&self) -> u64 {
        self.data().map_or(0, |d| d.borrow().len() as u64)
    }

    /// Reads from `pos` into `buf`; 0 at or past the end.
    pub fn read_at(&self, pos: u64, buf: &mut [u8]) -> usize {
        let Some(data) = self.data() else { return 0 };
        let data = data.borrow();
        let Some(src) = usize::try_from(pos).ok().and_then(|p| data.get(p..)) else {
            return 0;
        };
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        n
    }

    /// Writes `buf` at `pos` (at the end when `append`), zero-filling any
    /// gap, and returns how many bytes were written and where they ended.
    /// Like Linux, a write the limit cuts short writes what fits; one
    /// that fits nothing is `ENOSPC`.
    pub fn write_at(
        &self,
        pos: u64,
        append: bool,
        buf: &[u8],
        now_ns: u64,
    ) -> SysResult<(usize, u64)> {
        let data = self.data().ok_or(Errno::EISDIR)?;
        let mut data = data.borrow_mut();
        let len = data.len() as u64;
        let pos = if append { len } else { pos };
        if buf.is_empty() {
            return Ok((0, pos));
        }
        let s = &self.shared;
        let room = s.limit.saturating_sub(s.used.get());
        let cap = len.saturating_add(room).min(i64::MAX as u64);
        let end = pos.saturating_add(buf.len() as u64).min(cap);
        if end <= pos {
            return Err(if pos >= i64::MAX as u64 {
                Errno::EFBIG
            } else {
                Errno::ENOSPC
            });
        }
        let n = (end - pos) as usize;
        if end > len {
            grow(&mut data, end, cap)?;
            s.used.set(s.used.get() + (end - len));
        }
        let at = pos as usize;
        data[at..at + n].copy_from_slice(&buf[..n]);
        self.mtime.set(now_ns);
        Ok((n, end))
    }

    /// Sets the file's length, zero-filling growth (`ENOSPC` if it does
    /// not fit: a truncate is never partial).
    pub fn set_len(&self, new_len: u64, now_ns: u64) -> SysResult<()> {
        let data = self.data().ok_or(Errno::EISDIR)?;
        let mut data = data.borrow_mut();
        let len = data.len() as u64;
        let s = &self.shared;
        if new_len > len {
            let room = s.limit.saturating_sub(s.used.get());
            if new_len - len > room {
                return Err(Errno::ENOSPC);
            }
            grow(&mut data, new_len, new_len)?;
            s.used.set(s.used.get() + (new_len - len));
        } else if new_len < len {
            shrink(&mut data, new_len as usize);
            s.used.set(s.used.get().saturating_sub(len - new_len));
        }
        self.mtime.set(now_ns);
        Ok(())
    }
}

/// Extends `data` with zeros to `end` bytes; capacity grows by half again
/// (so appends stay linear) but never past `cap`, the most the limit lets
/// this file hold, so a file's capacity never outgrows what it may use.
fn grow(data: &mut Vec<u8>, end: u64, cap: u64) -> SysResult<()> {
    let end = usize::try_from(end).map_err(|_| Errno::EFBIG)?;
    if end > data.capacity() {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let want = data
            .capacity()
            .saturating_add(data.capacity() / 2)
            .min(cap)
            .max(end);
        data.try_reserve_exact(want - data.len())
            .or_else(|_| data.try_reserve_exact(end - data.len()))
            .map_err(|_| Errno::ENOSPC)?;
    }
    data.resize(end, 0);
    Ok(())
}

/// Cuts `data` to `len` bytes, giving memory back when most of it is no
/// longer used (a copy made fallibly: a failed one just keeps it).
fn shrink(data: &mut Vec<u8>, len: usize) {
    data.truncate(len);
    if len == 0 {
        *data = Vec::new();
    } else if len < data.capacity() / 4 {
        let mut small = Vec::new();
        if small.try_reserve_exact(len).is_ok() {
            small.extend_from_slice(data);
            *data = small;
        }
    }
}

impl TmpDir {
    /// The child `name`, if any (none once the directory is removed).
    pub fn lookup(&self, name: &[u8]) -> Option<Rc<TmpNode>> {
        if self.removed.get() {
            return None;
        }
        let entries = self.entries.borrow();
        let i = entries
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()?;
        entries.get(i).map(|(_, node)| node.clone())
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.borrow().is_empty()
    }

    /// Adds or replaces `name`, returning what it replaces; fails
    /// (`ENOMEM`) without changing anything when memory runs out, and
    /// cannot fail after [`reserve_one`](TmpDir::reserve_one).
    pub fn insert(&self, name: Vec<u8>, node: Rc<TmpNode>) -> SysResult<Option<Rc<TmpNode>>> {
        let mut entries = self.entries.borrow_mut();
        match entries.binary_search_by(|(n, _)| n.as_slice().cmp(&name)) {
            Ok(i) => Ok(entries
                .get_mut(i)
                .map(|e| core::mem::replace(&mut e.1, node))),
            Err(i) => {
                entries.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                entries.insert(i, (name, node));
                Ok(None)
            }
        }
    }

    /// Makes room for one more entry now, so that a later `insert` of a
    /// new name cannot fail for memory (rename checks before it changes
    /// anything).
    pub fn reserve_one(&self) -> SysResult<()> {
        self.entries
            .borrow_mut()
            .try_reserve(1)
            .map_err(|_| Errno::ENOMEM)
    }

    /// Removes `name`, returning its node.
    pub fn remove(&self, name: &[u8]) -> Option<Rc<TmpNode>> {
        let mut entries = self.entries.borrow_mut();
        let i = entries
            .binary_search_by(|(n, _)| n.as_slice().cmp(name))
            .ok()?;
        Some(entries.remove(i).1)
    }

    /// The first entry whose name sorts after `after` (the first of all
    /// when `None`): its name, inode and whether it is a directory.
    pub fn next_after(&self, after: Option<&[u8]>) -> SysResult<Option<(Vec<u8>, u64, bool)>> {
        let entries = self.entries.borrow();
        let i = match after {
            None => 0,
            Some(a) => entries.partition_point(|(n, _)| n.as_slice() <= a),
        };
        let Some((name, node)) = entries.get(i) else {
            return Ok(None);
        };
        let mut owned = Vec::new();
        owned
            .try_reserve_exact(name.len())
            .map_err(|_| Errno::ENOMEM)?;
        owned.extend_from_slice(name);
        Ok(Some((owned, node.ino, node.dir().is_some())))
    }

    /// Child directories, for `st_nlink`.
    pub fn subdirs(&self) -> u64 {
        self.entries
            .borrow()
            .iter()
            .filter(|(_, n)| n.dir().is_some())
            .count() as u64
    }
}
