//! `/tmp`: files and directories in memory, their bytes bounded.
//!
//! Nodes are reference-counted: a directory holds its children, and an
//! open file holds its node, so a file unlinked while open keeps working
//! and its bytes are freed (and given back to the limit) when the last
//! holder drops it. The accounting therefore lives in the node's `Drop`,
//! not in `unlink`.
//!
//! Memory is the VM's, so every growth is fallible: file bytes live in
//! chunks ([`FileData`]) each allocated with `try_reserve_exact`, so a
//! file grows without copying and up to all the memory there is;
//! directory slots and names are reserved with `try_reserve`. Only the node
//! itself (`Rc::new`, a few dozen bytes) cannot be, which is why the
//! number of nodes is bounded too ([`TMP_MAX_NODES`]).

use alloc::boxed::Box;
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
    File(RefCell<FileData>),
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
            Body::File(RefCell::new(FileData::default()))
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
    pub fn data(&self) -> Option<&RefCell<FileData>> {
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
        match usize::try_from(pos) {
            Ok(pos) => data.borrow().read(pos, buf),
            Err(_) => 0,
        }
    }

    /// Writes `buf` at `pos` (at the end when `append`), zero-filling any
    /// gap, and returns how many bytes were written and where they ended.
    /// Like Linux, a write the limit (or memory) cuts short writes what
    /// fits; one that fits nothing is `ENOSPC`.
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
        let cap = len
            .saturating_add(room)
            .min(i64::MAX as u64)
            .min(usize::MAX as u64);
        let mut end = pos.saturating_add(buf.len() as u64).min(cap);
        if end > pos && end > len {
            // Memory may run out first: then what it gave is what fits.
            end = data.reserve(end as usize, cap as usize) as u64;
        }
        if end <= pos {
            data.release();
            return Err(if pos >= i64::MAX as u64 {
                Errno::EFBIG
            } else {
                Errno::ENOSPC
            });
        }
        let n = (end - pos) as usize;
        if end > len {
            data.len = end as usize;
            s.used.set(s.used.get() + (end - len));
        }
        data.write(pos as usize, &buf[..n]);
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
            let want = usize::try_from(new_len).map_err(|_| Errno::EFBIG)?;
            if new_len - len > room {
                return Err(Errno::ENOSPC);
            }
            if data.reserve(want, want) < want {
                data.release();
                return Err(Errno::ENOSPC);
            }
            data.len = want;
            s.used.set(s.used.get() + (new_len - len));
        } else if new_len < len {
            data.truncate(new_len as usize);
            s.used.set(s.used.get().saturating_sub(len - new_len));
        }
        self.mtime.set(now_ns);
        Ok(())
    }
}

/// The size of a file's chunks (but the first, which starts small).
pub(crate) const CHUNK: usize = 64 * 1024;

/// The smallest first chunk: tiny files do not each take a whole chunk.
const MIN_FIRST: usize = 64;

/// A file's bytes, in chunks of [`CHUNK`] bytes so that growing a file
/// never copies it nor needs more than one new chunk at a time (a single
/// buffer grown by reallocation needs the old and the new at once, so a
/// file could reach well under half of memory).
///
/// Chunk `i` holds the bytes from `i * CHUNK`; every chunk but the last is
/// at least `CHUNK` long, and only the first is ever shorter. Chunks cover
/// exactly the first `len` bytes, rounded up to a chunk, and every byte
/// of them past `len` is zero, so growth within a chunk reads zeros.
#[derive(Debug, Default)]
pub(crate) struct FileData {
    chunks: Vec<Box<[u8]>>,
    len: usize,
}

impl FileData {
    /// The file's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Copies bytes from `pos` into `buf`; how many (0 at or past the end).
    fn read(&self, pos: usize, buf: &mut [u8]) -> usize {
        let end = pos.saturating_add(buf.len()).min(self.len);
        let mut at = pos;
        while at < end {
            let (i, off) = (at / CHUNK, at % CHUNK);
            let take = (CHUNK - off).min(end - at);
            let (Some(src), Some(dst)) = (
                self.chunks.get(i).and_then(|c| c.get(off..off + take)),
                buf.get_mut(at - pos..at - pos + take),
            ) else {
                break;
            };
            dst.copy_from_slice(src);
            at += take;
        }
        at.saturating_sub(pos)
    }

    /// Copies `buf` in at `pos`, within the chunks [`reserve`] made.
    ///
    /// [`reserve`]: FileData::reserve
    fn write(&mut self, pos: usize, buf: &[u8]) {
        let mut done = 0;
        while done < buf.len() {
            let at = pos + done;
            let (i, off) = (at / CHUNK, at % CHUNK);
            let take = (CHUNK - off).min(buf.len() - done);
            let (Some(dst), Some(src)) = (
                self.chunks
                    .get_mut(i)
                    .and_then(|c| c.get_mut(off..off + take)),
                buf.get(done..done + take),
            ) else {
                break;
            };
            dst.copy_from_slice(src);
            done += take;
        }
    }

    /// Makes the chunks cover `end` bytes (zeros past `len`), never
    /// sizing the short first chunk past `cap`, the most the limit lets
    /// the file hold; returns how many bytes they cover (at most `end`),
    /// less than `end` where memory ran out but never less than `len`.
    fn reserve(&mut self, end: usize, cap: usize) -> usize {
        let want = end.div_ceil(CHUNK);
        if self.chunks.len() < want && self.chunks.try_reserve(want - self.chunks.len()).is_err() {
            return self.covered().min(end);
        }
        // The last chunk may be the short first one: grow it in place
        // first (to a whole chunk if others follow it).
        if let Some(last) = self.chunks.len().checked_sub(1) {
            let need = if want > last + 1 {
                CHUNK
            } else {
                end - last * CHUNK
            };
            if !self.grow_chunk(last, need, cap) {
                return self.covered().min(end);
            }
        }
        while self.chunks.len() < want {
            let i = self.chunks.len();
            let need = (end - i * CHUNK).min(CHUNK);
            let size = if i == 0 {
                first_size(0, need, cap)
            } else {
                CHUNK
            };
            match zeroed(size) {
                Some(chunk) => self.chunks.push(chunk),
                None => break,
            }
        }
        self.covered().min(end)
    }

    /// Makes chunk `i` at least `need` bytes long, copying it into a new
    /// one if it is shorter (only the first chunk ever is); false when
    /// memory runs out.
    fn grow_chunk(&mut self, i: usize, need: usize, cap: usize) -> bool {
        let Some(old) = self.chunks.get_mut(i) else {
            return false;
        };
        if old.len() >= need {
            return true;
        }
        let Some(mut new) = zeroed(first_size(old.len(), need, cap)) else {
            return false;
        };
        if let Some(dst) = new.get_mut(..old.len()) {
            dst.copy_from_slice(old);
        }
        *old = new;
        true
    }

    /// How many bytes the chunks hold, counting each as at most `CHUNK`.
    fn covered(&self) -> usize {
        match self.chunks.last() {
            None => 0,
            Some(last) => (self.chunks.len() - 1) * CHUNK + last.len().min(CHUNK),
        }
    }

    /// Drops chunks that `reserve` made but that hold none of the file's
    /// bytes (after a write or truncate it made them for failed).
    fn release(&mut self) {
        self.chunks.truncate(self.len.div_ceil(CHUNK));
    }

    /// Cuts the file to `len` bytes (less than now), freeing whole chunks
    /// and zeroing the rest of the last one.
    fn truncate(&mut self, len: usize) {
        self.len = len;
        let keep = len.div_ceil(CHUNK);
        self.chunks.truncate(keep);
        if keep == 0 {
            self.chunks = Vec::new();
        } else if keep < self.chunks.capacity() / 4 {
            // Give the list's memory back too (fallibly: a failed copy
            // just keeps it).
            let mut small = Vec::new();
            if small.try_reserve_exact(keep).is_ok() {
                small.append(&mut self.chunks);
                self.chunks = small;
            }
        }
        if let Some(last) = self.chunks.last_mut() {
            if let Some(tail) = last.get_mut(len - (keep - 1) * CHUNK..) {
                tail.fill(0);
            }
        }
    }
}

/// The size of a new first chunk that must hold `need` bytes and held
/// `old`: doubling (so appends stay linear), at most a whole chunk, and no
/// more than `cap` lets the file use.
fn first_size(old: usize, need: usize, cap: usize) -> usize {
    old.saturating_mul(2)
        .max(MIN_FIRST)
        .min(cap)
        .min(CHUNK)
        .max(need)
}

/// A chunk of `size` zeros, or `None` when memory runs out.
fn zeroed(size: usize) -> Option<Box<[u8]>> {
    let mut v: Vec<u8> = Vec::new();
    v.try_reserve_exact(size).ok()?;
    // Filled to its capacity so that boxing it never reallocates (an
    // allocation may be larger than asked for).
    v.resize(v.capacity(), 0);
    Some(v.into_boxed_slice())
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
