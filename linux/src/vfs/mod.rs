//! The file system a Linux program sees, as on Lambda:
//!
//! - `/`: the package, read-only (a function's files are under
//!   `var/task/`), with the directories its paths imply; writing anywhere
//!   but `/tmp` is `EROFS`;
//! - `/tmp`: a writable tmpfs whose files hold at most `tmp_limit` bytes
//!   in all (`ENOSPC` beyond);
//! - `/dev`: `null`, `zero`, `full`, `random` and `urandom`;
//! - no `/proc` or `/sys` (`ENOENT`).
//!
//! Every file belongs to Lambda's user ([`UID`], [`GID`]), and permission
//! checks use the owner's bits. Paths are byte strings from the program:
//! they are checked, never trusted.
//!
//! ```
//! use mayfly_linux::abi::{O_CREAT, O_RDONLY, O_RDWR};
//! use mayfly_linux::errno::Errno;
//! use mayfly_linux::vfs::Vfs;
//! use mayfly_proto::pack::{self, EntrySpec, Pack};
//!
//! let plan = pack::plan(&[EntrySpec::file("var/task/hello.txt", 0o644, 2)]).unwrap();
//! let mut bytes = plan.header.clone();
//! bytes.resize(plan.total_len as usize, 0);
//! let at = plan.data_offsets[0] as usize;
//! bytes[at..at + 2].copy_from_slice(b"hi");
//!
//! let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1 << 20);
//! let mut file = vfs.open(b"/var/task", b"hello.txt", O_RDONLY, 0, 0).unwrap();
//! let mut buf = [0u8; 8];
//! assert_eq!(file.read(&vfs, &mut buf), Ok(2));
//! assert_eq!(&buf[..2], b"hi");
//!
//! assert_eq!(vfs.open(b"/", b"var/task/new", O_CREAT | O_RDWR, 0o644, 0).err(), Some(Errno::EROFS));
//! let mut tmp = vfs.open(b"/", b"/tmp/out", O_CREAT | O_RDWR, 0o644, 5).unwrap();
//! assert_eq!(tmp.write(&mut vfs, b"data", 6), Ok(4));
//! assert_eq!(vfs.tmp_used(), 4);
//! ```

mod file;
mod path;
mod tmpfs;
mod tree;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_chunks;
#[cfg(test)]
mod tests_flags;
#[cfg(test)]
mod tests_tmp;

use alloc::rc::Rc;
use alloc::vec::Vec;
use mayfly_proto::pack::Pack;

pub use file::OpenFile;
pub use path::{MAX_SYMLINKS, NAME_MAX, PATH_MAX};
pub use tmpfs::TMP_MAX_NODES;

use crate::abi::{self, makedev, F_OK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, W_OK};
use crate::errno::{Errno, SysResult};
use path::{last_component, Node};
use tmpfs::{TmpNode, Tmpfs, TMP_INO_BASE};
use tree::{PackKind, PackTree, ROOT};

/// The owner of every file: Lambda's `sbx_user1051`.
pub const UID: u32 = 993;
/// The group of every file.
pub const GID: u32 = 990;
/// The block size reported for every file.
pub const BLKSIZE: u64 = 4096;

/// The package's inode numbers start here (the root's).
const PACK_INO_BASE: u64 = 2;
/// `/dev`'s inode; its devices follow.
const DEV_INO_BASE: u64 = 1 << 48;
/// The first inode number the kernel should give its own objects (pipes,
/// sockets), so that [`device_of`] tells them apart from files.
pub const KERNEL_INO_BASE: u64 = 1 << 56;

/// The device number (`st_dev`) of the file system inode `ino` belongs
/// to: the package, `/tmp`, `/dev`, or the kernel's own objects. Inode
/// numbers are given out in disjoint ranges so that (`st_dev`, `st_ino`)
/// names one file, as programs comparing files assume.
pub fn device_of(ino: u64) -> u64 {
    if ino < TMP_INO_BASE {
        makedev(7, 0)
    } else if ino < DEV_INO_BASE {
        makedev(0, 0x2c)
    } else if ino < KERNEL_INO_BASE {
        makedev(0, 5)
    } else {
        makedev(0, 0x0c)
    }
}

/// A character device of `/dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// `/dev/null`: reads end at once, writes are swallowed.
    Null,
    /// `/dev/zero`: reads give zeros, writes are swallowed.
    Zero,
    /// `/dev/full`: reads give zeros, writes fail with `ENOSPC`.
    Full,
    /// `/dev/random` and `/dev/urandom`: the kernel fills reads itself
    /// (this crate has no entropy); writes are swallowed.
    Random,
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link (opened only with `O_PATH | O_NOFOLLOW`).
    Symlink,
    /// A character device.
    CharDevice(Device),
}

impl NodeKind {
    /// The `d_type` of a directory entry of this kind.
    pub fn d_type(self) -> u8 {
        match self {
            NodeKind::Regular => abi::DT_REG,
            NodeKind::Directory => abi::DT_DIR,
            NodeKind::Symlink => abi::DT_LNK,
            NodeKind::CharDevice(_) => abi::DT_CHR,
        }
    }
}

/// A node's metadata, as `stat` and `statx` report it (see
/// [`abi::stat_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    /// Inode number (unique within the whole file system).
    pub ino: u64,
    /// Type (`S_IF*`) and permission bits.
    pub mode: u32,
    /// Links: 1 for files, 2 plus subdirectories for directories.
    pub nlink: u64,
    /// Owner ([`UID`]).
    pub uid: u32,
    /// Group ([`GID`]).
    pub gid: u32,
    /// Length in bytes (a symlink's: its target's).
    pub size: u64,
    /// Preferred I/O size.
    pub blksize: u64,
    /// 512-byte blocks held.
    pub blocks: u64,
    /// The device a character device is ([`abi::makedev`]).
    pub rdev: u64,
    /// Last modification, ns since the epoch: 0 for the package's files;
    /// for `/tmp`'s, the time the caller gave when it last changed.
    pub mtime_ns: u64,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's inode number.
    pub ino: u64,
    /// What it is.
    pub kind: NodeKind,
    /// Its name (`.` and `..` included).
    pub name: Vec<u8>,
}

/// The devices of `/dev`, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DevName {
    Full,
    Null,
    Random,
    Urandom,
    Zero,
}

impl DevName {
    /// Sorted by name, as listings are.
    const ALL: [(&'static [u8], DevName); 5] = [
        (b"full", DevName::Full),
        (b"null", DevName::Null),
        (b"random", DevName::Random),
        (b"urandom", DevName::Urandom),
        (b"zero", DevName::Zero),
    ];

    fn from_name(name: &[u8]) -> Option<DevName> {
        DevName::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(_, d)| d)
    }

    fn device(self) -> Device {
        match self {
            DevName::Full => Device::Full,
            DevName::Null => Device::Null,
            DevName::Random | DevName::Urandom => Device::Random,
            DevName::Zero => Device::Zero,
        }
    }

    fn ino(self) -> u64 {
        DEV_INO_BASE + 1 + self as u64
    }

    /// Linux's numbers for them (`devices.txt`: major 1, "memory").
    fn rdev(self) -> u64 {
        let minor = match self {
            DevName::Null => 3,
            DevName::Zero => 5,
            DevName::Full => 7,
            DevName::Random => 8,
            DevName::Urandom => 9,
        };
        makedev(1, minor)
    }
}

/// The whole file system: the package's tree, `/tmp` and `/dev`.
#[derive(Debug)]
pub struct Vfs<'a> {
    tree: PackTree<'a>,
    tmp: Tmpfs,
}

fn owned(bytes: &[u8]) -> SysResult<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len())
        .map_err(|_| Errno::ENOMEM)?;
    v.extend_from_slice(bytes);
    Ok(v)
}

impl<'a> Vfs<'a> {
    /// The file system of a VM whose package is `pack` and whose `/tmp`
    /// holds at most `tmp_limit` bytes.
    pub fn new(pack: Pack<'a>, tmp_limit: u64) -> Vfs<'a> {
        Vfs {
            tree: PackTree::build(&pack),
            tmp: Tmpfs::new(tmp_limit, PACK_INO_BASE),
        }
    }

    /// Bytes held by `/tmp`'s files, including unlinked files still open.
    pub fn tmp_used(&self) -> u64 {
        self.tmp.used()
    }

    /// The metadata of `path`; a final symlink is followed when `follow`.
    pub fn stat(&self, cwd: &[u8], path: &[u8], follow: bool) -> SysResult<Stat> {
        let walked = self.find(cwd, path, follow)?;
        Ok(self.node_stat(&walked.node()))
    }

    /// A symlink's target (`EINVAL` if `path` is not a symlink).
    pub fn readlink(&self, cwd: &[u8], path: &[u8]) -> SysResult<Vec<u8>> {
        let walked = self.find(cwd, path, false)?;
        match walked.node() {
            Node::Pack(i) => match self.tree.get(i) {
                Some(n) if n.kind == PackKind::Symlink => owned(n.data),
                _ => Err(Errno::EINVAL),
            },
            _ => Err(Errno::EINVAL),
        }
    }

    /// Whether the program may do `mode` (`F_OK` or `R_OK | W_OK | X_OK`)
    /// to `path`, judged by the owner's bits: `EACCES` if not, `EROFS`
    /// for `W_OK` outside `/tmp` and `/dev`'s devices.
    pub fn access(&self, cwd: &[u8], path: &[u8], mode: u32) -> SysResult<()> {
        if mode & !7 != 0 {
            return Err(Errno::EINVAL);
        }
        let node = self.find(cwd, path, true)?.node();
        if mode == F_OK {
            return Ok(());
        }
        if mode & W_OK != 0 && self.read_only(&node) {
            return Err(Errno::EROFS);
        }
        let owner = (self.node_stat(&node).mode >> 6) & 7;
        if owner & mode != mode {
            return Err(Errno::EACCES);
        }
        Ok(())
    }

    /// Makes the directory `path` in `/tmp` with permission bits `mode`.
    pub fn mkdir(&mut self, cwd: &[u8], path: &[u8], mode: u32, now_ns: u64) -> SysResult<()> {
        let walked = self.walk(cwd, path, false)?;
        let Some(name) = walked.missing else {
            return Err(Errno::EEXIST);
        };
        let Node::Tmp(parent) = walked
            .stack
            .last()
            .map_or(Node::Pack(ROOT), |(_, n)| n.clone())
        else {
            return Err(Errno::EROFS);
        };
        let dir = parent.dir().ok_or(Errno::ENOTDIR)?;
        if dir.removed.get() {
            return Err(Errno::ENOENT);
        }
        let node = self.tmp.new_node(true, mode, now_ns)?;
        if let Some(d) = node.dir() {
            d.parent_ino.set(parent.ino);
        }
        dir.insert(name, node)?;
        parent.mtime.set(now_ns);
        Ok(())
    }

    /// Removes the file (not directory: `EISDIR`) `path` from `/tmp`; an
    /// open file lives on until it is closed.
    pub fn unlink(&mut self, cwd: &[u8], path: &[u8]) -> SysResult<()> {
        let walked = self.find(cwd, path, false)?;
        if self.is_dir(&walked.node()) {
            return Err(Errno::EISDIR);
        }
        let Node::Tmp(parent) = walked.parent() else {
            return Err(Errno::EROFS);
        };
        let dir = parent.dir().ok_or(Errno::ENOTDIR)?;
        dir.remove(walked.name()).ok_or(Errno::ENOENT)?;
        Ok(())
    }

    /// Removes the empty directory `path` from `/tmp` (`ENOTEMPTY`;
    /// `EBUSY` for `/tmp` itself and `/`).
    pub fn rmdir(&mut self, cwd: &[u8], path: &[u8]) -> SysResult<()> {
        match last_component(path) {
            b"." => return Err(Errno::EINVAL),
            b".." => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        let walked = self.find(cwd, path, false)?;
        let node = walked.node();
        if !self.is_dir(&node) {
            return Err(Errno::ENOTDIR);
        }
        let target = match &node {
            Node::Tmp(t) if !Rc::ptr_eq(t, &self.tmp.root) => t.clone(),
            Node::Tmp(_) | Node::Pack(ROOT) => return Err(Errno::EBUSY),
            _ => return Err(Errno::EROFS),
        };
        let dir = target.dir().ok_or(Errno::ENOTDIR)?;
        if !dir.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        let Node::Tmp(parent) = walked.parent() else {
            return Err(Errno::EROFS);
        };
        parent.dir().ok_or(Errno::ENOTDIR)?.remove(walked.name());
        dir.removed.set(true);
        Ok(())
    }

    /// Moves `from` to `to` within `/tmp`, replacing what `to` names
    /// (a file by a file, a directory by a directory if empty) in one
    /// step: nothing changes unless all of it does.
    pub fn rename(&mut self, cwd: &[u8], from: &[u8], to: &[u8]) -> SysResult<()> {
        for path in [from, to] {
            if matches!(last_component(path), b"." | b"..") {
                return Err(Errno::EBUSY);
            }
        }
        let src = self.find(cwd, from, false)?;
        let dst = self.walk(cwd, to, false)?;
        let src_node = src.node();
        let moving = match &src_node {
            Node::Tmp(t) if !Rc::ptr_eq(t, &self.tmp.root) => t.clone(),
            Node::Tmp(_) | Node::Pack(ROOT) => return Err(Errno::EBUSY),
            _ => return Err(Errno::EROFS),
        };
        let Node::Tmp(src_parent) = src.parent() else {
            return Err(Errno::EROFS);
        };
        let (dst_parent, dst_name, existing, ancestors) = match &dst.missing {
            Some(name) => (dst.node(), name.as_slice(), None, dst.stack.as_slice()),
            None => {
                let below = dst.stack.len().saturating_sub(1);
                let existing = dst.node();
                (
                    dst.parent(),
                    dst.name(),
                    Some(existing),
                    dst.stack.get(..below).unwrap_or(&[]),
                )
            }
        };
        if let Some(existing) = &existing {
            if existing.same(&src_node) {
                return Ok(());
            }
            if matches!(existing, Node::Pack(ROOT)) {
                return Err(Errno::EBUSY);
            }
            if let Node::Tmp(t) = existing {
                if Rc::ptr_eq(t, &self.tmp.root) {
                    return Err(Errno::EBUSY);
                }
            }
        }
        let Node::Tmp(dst_parent) = dst_parent else {
            return Err(Errno::EROFS);
        };
        let dst_dir = dst_parent.dir().ok_or(Errno::ENOTDIR)?;
        if dst_dir.removed.get() {
            return Err(Errno::ENOENT);
        }
        let is_dir = moving.dir().is_some();
        if is_dir && ancestors.iter().any(|(_, n)| n.same(&src_node)) {
            return Err(Errno::EINVAL);
        }
        if let Some(existing) = &existing {
            match (is_dir, self.is_dir(existing)) {
                (true, false) => return Err(Errno::ENOTDIR),
                (false, true) => return Err(Errno::EISDIR),
                (true, true) if !self.is_empty_dir(existing) => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        } else if dst.must_dir && !is_dir {
            return Err(Errno::ENOTDIR);
        }
        // Everything that can fail for memory happens before the move.
        let name = owned(dst_name)?;
        dst_dir.reserve_one()?;
        let src_dir = src_parent.dir().ok_or(Errno::ENOTDIR)?;
        src_dir.remove(src.name()).ok_or(Errno::ENOENT)?;
        if let Some(d) = moving.dir() {
            d.parent_ino.set(dst_parent.ino);
        }
        let replaced = dst_dir.insert(name, moving)?;
        if let Some(old) = replaced {
            if let Some(d) = old.dir() {
                d.removed.set(true);
            }
        }
        Ok(())
    }

    /// The absolute, symlink-free path of the directory `path`, for
    /// `chdir` and `getcwd` (`ENOTDIR` if it is not one).
    pub fn canonical_dir(&self, cwd: &[u8], path: &[u8]) -> SysResult<Vec<u8>> {
        let walked = self.find(cwd, path, true)?;
        if !self.is_dir(&walked.node()) {
            return Err(Errno::ENOTDIR);
        }
        walked.path()
    }

    /// The entries of the directory `path`, `.` and `..` first, then by
    /// name (what `getdents64` would give, as values).
    pub fn list(&self, cwd: &[u8], path: &[u8]) -> SysResult<Vec<DirEntry>> {
        let node = self.find(cwd, path, true)?.node();
        if !self.is_dir(&node) {
            return Err(Errno::ENOTDIR);
        }
        let mut out = Vec::new();
        let mut cursor = file::Cursor::Dot;
        while let Some((entry, next)) = self.entry_after(&node, &cursor)? {
            out.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
            out.push(entry);
            cursor = next;
        }
        Ok(out)
    }

    fn is_empty_dir(&self, node: &Node) -> bool {
        match node {
            Node::Tmp(t) => t.dir().is_some_and(|d| d.is_empty()),
            Node::Pack(i) => self.tree.get(*i).is_some_and(|n| n.children.is_empty()),
            _ => false,
        }
    }

    /// Whether writes to `node` are refused for the file system's sake.
    pub(crate) fn read_only(&self, node: &Node) -> bool {
        matches!(node, Node::Pack(_) | Node::DevDir)
    }

    pub(crate) fn node_ino(&self, node: &Node) -> u64 {
        match node {
            Node::Pack(i) => PACK_INO_BASE + *i as u64,
            Node::Tmp(t) => t.ino,
            Node::DevDir => DEV_INO_BASE,
            Node::Dev(d) => d.ino(),
        }
    }

    pub(crate) fn parent_ino(&self, node: &Node) -> u64 {
        match node {
            Node::Pack(i) => {
                let parent = self.tree.get(*i).map_or(ROOT, |n| n.parent);
                self.node_ino(&self.pack_node(parent))
            }
            Node::Tmp(t) => t.dir().map_or(PACK_INO_BASE, |d| d.parent_ino.get()),
            Node::DevDir | Node::Dev(_) => PACK_INO_BASE,
        }
    }

    pub(crate) fn node_kind(&self, node: &Node) -> NodeKind {
        match node {
            Node::Pack(i) => match self.tree.get(*i).map(|n| n.kind) {
                Some(PackKind::File) => NodeKind::Regular,
                Some(PackKind::Symlink) => NodeKind::Symlink,
                _ => NodeKind::Directory,
            },
            Node::Tmp(t) if t.dir().is_some() => NodeKind::Directory,
            Node::Tmp(_) => NodeKind::Regular,
            Node::DevDir => NodeKind::Directory,
            Node::Dev(d) => NodeKind::CharDevice(d.device()),
        }
    }

    pub(crate) fn node_stat(&self, node: &Node) -> Stat {
        let mut st = Stat {
            ino: self.node_ino(node),
            nlink: 1,
            uid: UID,
            gid: GID,
            blksize: BLKSIZE,
            ..Stat::default()
        };
        let dir_stat = |st: &mut Stat, mode: u32, subdirs: u64| {
            st.mode = S_IFDIR | mode;
            st.nlink = 2u64.saturating_add(subdirs);
            st.size = BLKSIZE;
        };
        match node {
            Node::Pack(i) => match self.tree.get(*i) {
                Some(n) if n.kind == PackKind::File => {
                    st.mode = S_IFREG | n.mode;
                    st.size = n.data.len() as u64;
                }
                Some(n) if n.kind == PackKind::Symlink => {
                    st.mode = S_IFLNK | 0o777;
                    st.size = n.data.len() as u64;
                }
                Some(n) => dir_stat(&mut st, n.mode, n.subdirs as u64),
                None => {}
            },
            Node::Tmp(t) => {
                st.mtime_ns = t.mtime.get();
                match t.dir() {
                    Some(d) => dir_stat(&mut st, t.mode, d.subdirs()),
                    None => {
                        st.mode = S_IFREG | t.mode;
                        st.size = t.len();
                    }
                }
            }
            Node::DevDir => dir_stat(&mut st, 0o755, 0),
            Node::Dev(d) => {
                st.mode = S_IFCHR | 0o666;
                st.rdev = d.rdev();
            }
        }
        st.blocks = st.size.div_ceil(BLKSIZE).saturating_mul(BLKSIZE / 512);
        st
    }

    /// Makes the file `name` in `parent` (`EROFS` outside `/tmp`).
    pub(crate) fn create_file(
        &self,
        parent: &Node,
        name: &[u8],
        mode: u32,
        now_ns: u64,
    ) -> SysResult<Rc<TmpNode>> {
        let Node::Tmp(p) = parent else {
            return Err(Errno::EROFS);
        };
        let dir = p.dir().ok_or(Errno::ENOTDIR)?;
        if dir.removed.get() {
            return Err(Errno::ENOENT);
        }
        let node = self.tmp.new_node(false, mode, now_ns)?;
        dir.insert(owned(name)?, node.clone())?;
        p.mtime.set(now_ns);
        Ok(node)
    }
}
