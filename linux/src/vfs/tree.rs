//! The package as a read-only directory tree, built once at boot.
//!
//! A pack lists paths, not directories: `var/task/lib/a.so` implies
//! `var`, `var/task` and `var/task/lib` whether or not they have entries
//! of their own. The tree makes every implied directory a node (mode
//! 0o755) so that lookups and listings are a map access per component
//! instead of a scan of the pack. Names and data borrow the pack.
//!
//! A pack may be inconsistent in one way the format allows: `a` a file and
//! `a/b` an entry too. Then the directory wins (the file is unreachable),
//! so that every entry below it stays reachable.
//!
//! The root also holds the mount points: `tmp` and `dev` (whatever the
//! pack has at those paths is hidden beneath them), and never `proc` or
//! `sys`, which do not exist here.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use mayfly_proto::pack::{EntryKind, Pack};

/// The index of the root directory.
pub(crate) const ROOT: u32 = 0;

/// What a node of the tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PackKind {
    Dir,
    File,
    Symlink,
    /// `/tmp`: the tmpfs root.
    TmpMount,
    /// `/dev`: the device directory.
    DevMount,
}

/// One file, directory or symlink of the package.
#[derive(Debug)]
pub(crate) struct PackNode<'a> {
    pub kind: PackKind,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub parent: u32,
    /// A file's content or a symlink's target.
    pub data: &'a [u8],
    /// Where `data` starts in the pack.
    pub offset: u64,
    pub children: BTreeMap<&'a [u8], u32>,
    /// Child directories, for `st_nlink`.
    pub subdirs: u32,
}

/// The package's tree; node `i` is [`ROOT`] or a descendant of it.
#[derive(Debug)]
pub(crate) struct PackTree<'a> {
    nodes: Vec<PackNode<'a>>,
}

impl<'a> PackTree<'a> {
    /// Builds the tree of `pack` (checked by `Pack::parse`, so every entry
    /// is a clean relative path).
    pub fn build(pack: &Pack<'a>) -> Self {
        let mut tree = PackTree {
            nodes: Vec::with_capacity(pack.len().saturating_add(3)),
        };
        tree.push(ROOT, PackKind::Dir, 0o755, &[], 0);
        for entry in pack.entries() {
            let path = entry.path.as_bytes();
            let mut parts = path.split(|&b| b == b'/').peekable();
            let mut dir = ROOT;
            while let Some(name) = parts.next() {
                let last = parts.peek().is_none();
                let mode = entry.mode & 0o7777;
                if !last || entry.kind == EntryKind::Dir {
                    dir = tree.dir_at(dir, name);
                    if last {
                        if let Some(node) = tree.nodes.get_mut(dir as usize) {
                            node.mode = mode;
                        }
                    }
                } else if tree.child(dir, name).is_none() {
                    let kind = if entry.kind == EntryKind::Symlink {
                        PackKind::Symlink
                    } else {
                        PackKind::File
                    };
                    let node = tree.push(dir, kind, mode, entry.data, entry.offset);
                    tree.link(dir, name, node);
                }
            }
        }
        let tmp = tree.push(ROOT, PackKind::TmpMount, 0o777, &[], 0);
        let dev = tree.push(ROOT, PackKind::DevMount, 0o755, &[], 0);
        if let Some(root) = tree.nodes.get_mut(ROOT as usize) {
            root.children.remove(&b"proc"[..]);
            root.children.remove(&b"sys"[..]);
            root.children.insert(b"tmp", tmp);
            root.children.insert(b"dev", dev);
        }
        tree.count_subdirs();
        tree
    }

    fn push(&mut self, parent: u32, kind: PackKind, mode: u32, data: &'a [u8], offset: u64) -> u32 {
        let index = self.nodes.len() as u32;
        self.nodes.push(PackNode {
            kind,
            mode,
            parent,
            data,
            offset,
            children: BTreeMap::new(),
            subdirs: 0,
        });
        index
    }

    fn link(&mut self, dir: u32, name: &'a [u8], child: u32) {
        if let Some(node) = self.nodes.get_mut(dir as usize) {
            node.children.insert(name, child);
        }
    }

    /// The directory `name` in `dir`, made if missing; a file in its way
    /// becomes a directory.
    fn dir_at(&mut self, dir: u32, name: &'a [u8]) -> u32 {
        match self.child(dir, name) {
            Some(child) => {
                if let Some(node) = self.nodes.get_mut(child as usize) {
                    if node.kind != PackKind::Dir {
                        node.kind = PackKind::Dir;
                        node.mode = 0o755;
                        node.data = &[];
                        node.offset = 0;
                    }
                }
                child
            }
            None => {
                let child = self.push(dir, PackKind::Dir, 0o755, &[], 0);
                self.link(dir, name, child);
                child
            }
        }
    }

    fn count_subdirs(&mut self) {
        for i in 0..self.nodes.len() {
            let count = self.nodes[i]
                .children
                .values()
                .filter(|&&c| {
                    self.get(c)
                        .is_some_and(|n| !matches!(n.kind, PackKind::File | PackKind::Symlink))
                })
                .count();
            self.nodes[i].subdirs = u32::try_from(count).unwrap_or(u32::MAX);
        }
    }

    /// Node `index`.
    pub fn get(&self, index: u32) -> Option<&PackNode<'a>> {
        self.nodes.get(index as usize)
    }

    /// The child `name` of directory `dir`.
    pub fn child(&self, dir: u32, name: &[u8]) -> Option<u32> {
        self.get(dir)?.children.get(name).copied()
    }
}
