//! Path resolution: a byte string and a working directory to a node.
//!
//! The walk is iterative (no recursion whatever the symlinks), keeps the
//! canonical path as a stack of (name, directory) so that `..` is the
//! parent of where the walk physically is (as Linux does: `link/..` is the
//! parent of the link's target), and expands a symlink by splicing its
//! target in front of what is left of the path, at most
//! [`MAX_SYMLINKS`] times.

use alloc::rc::Rc;
use alloc::vec::Vec;

use super::tmpfs::TmpNode;
use super::tree::{PackKind, ROOT};
use super::{DevName, Vfs};
use crate::errno::{Errno, SysResult};

/// The longest path a program may give, its NUL included, as Linux's
/// `PATH_MAX`: a path of 4096 bytes or more is `ENAMETOOLONG`.
pub const PATH_MAX: usize = 4096;
/// The longest name of one component.
pub const NAME_MAX: usize = 255;
/// The most symlinks one resolution follows (`ELOOP` beyond).
pub const MAX_SYMLINKS: u32 = 40;

/// A node of the whole file system.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A node of the package (never a mount point: those are resolved to
    /// the nodes below).
    Pack(u32),
    Tmp(Rc<TmpNode>),
    DevDir,
    Dev(DevName),
}

impl Node {
    pub fn same(&self, other: &Node) -> bool {
        match (self, other) {
            (Node::Pack(a), Node::Pack(b)) => a == b,
            (Node::Tmp(a), Node::Tmp(b)) => Rc::ptr_eq(a, b),
            (Node::DevDir, Node::DevDir) => true,
            (Node::Dev(a), Node::Dev(b)) => a == b,
            _ => false,
        }
    }
}

/// Where a walk ended.
#[derive(Debug)]
pub(crate) struct Walked {
    /// The canonical path from the root: each component's name and node.
    /// When `missing` is `None` the last is the node found (none: the
    /// root); otherwise the last is the directory it is missing from.
    pub stack: Vec<(Vec<u8>, Node)>,
    /// The last component, when it does not exist (its directory does).
    pub missing: Option<Vec<u8>>,
    /// The path ended with `/`: it must name a directory.
    pub must_dir: bool,
}

impl Walked {
    /// The node found, or the directory where the name is missing.
    pub fn node(&self) -> Node {
        self.stack
            .last()
            .map_or(Node::Pack(ROOT), |(_, n)| n.clone())
    }

    /// The directory holding the node found (the root for the root).
    pub fn parent(&self) -> Node {
        let len = self.stack.len();
        match len.checked_sub(2) {
            Some(i) => self
                .stack
                .get(i)
                .map_or(Node::Pack(ROOT), |(_, n)| n.clone()),
            None => Node::Pack(ROOT),
        }
    }

    /// The node's name in its parent (empty for the root).
    pub fn name(&self) -> &[u8] {
        self.stack.last().map_or(&[], |(n, _)| n.as_slice())
    }

    /// The canonical absolute path of the node (or of the directory where
    /// the name is missing).
    pub fn path(&self) -> SysResult<Vec<u8>> {
        let mut out = Vec::new();
        for (name, _) in &self.stack {
            out.try_reserve(name.len() + 1).map_err(|_| Errno::ENOMEM)?;
            out.push(b'/');
            out.extend_from_slice(name);
        }
        if out.is_empty() {
            out.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
            out.push(b'/');
        }
        Ok(out)
    }
}

/// Checks a path as the program gave it.
pub(crate) fn check_path(path: &[u8]) -> SysResult<()> {
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    // The kernel reads a path up to its NUL; one inside is a name no file
    // may have.
    if path.contains(&0) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The last component as the program wrote it (`.` and `..` matter to
/// `rmdir` and `rename`), ignoring trailing slashes.
pub(crate) fn last_component(path: &[u8]) -> &[u8] {
    let trimmed = match path.iter().rposition(|&b| b != b'/') {
        Some(end) => &path[..=end],
        None => return &[],
    };
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(slash) => &trimmed[slash + 1..],
        None => trimmed,
    }
}

fn owned(bytes: &[u8]) -> SysResult<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(bytes.len())
        .map_err(|_| Errno::ENOMEM)?;
    v.extend_from_slice(bytes);
    Ok(v)
}

impl Vfs<'_> {
    /// The child `name` of `dir` (`ENOTDIR` if `dir` is not a directory).
    pub(crate) fn lookup(&self, dir: &Node, name: &[u8]) -> SysResult<Option<Node>> {
        match dir {
            Node::Pack(i) => {
                let node = self.tree.get(*i).ok_or(Errno::ENOENT)?;
                if node.kind != PackKind::Dir {
                    return Err(Errno::ENOTDIR);
                }
                Ok(self.tree.child(*i, name).map(|c| self.pack_node(c)))
            }
            Node::Tmp(t) => match t.dir() {
                Some(d) => Ok(d.lookup(name).map(Node::Tmp)),
                None => Err(Errno::ENOTDIR),
            },
            Node::DevDir => Ok(DevName::from_name(name).map(Node::Dev)),
            Node::Dev(_) => Err(Errno::ENOTDIR),
        }
    }

    /// Node `index` of the tree, its mount points resolved.
    pub(crate) fn pack_node(&self, index: u32) -> Node {
        match self.tree.get(index).map(|n| n.kind) {
            Some(PackKind::TmpMount) => Node::Tmp(self.tmp.root.clone()),
            Some(PackKind::DevMount) => Node::DevDir,
            _ => Node::Pack(index),
        }
    }

    pub(crate) fn is_dir(&self, node: &Node) -> bool {
        match node {
            Node::Pack(i) => self.tree.get(*i).is_some_and(|n| n.kind == PackKind::Dir),
            Node::Tmp(t) => t.dir().is_some(),
            Node::DevDir => true,
            Node::Dev(_) => false,
        }
    }

    fn symlink_target(&self, node: &Node) -> Option<&[u8]> {
        match node {
            Node::Pack(i) => self
                .tree
                .get(*i)
                .filter(|n| n.kind == PackKind::Symlink)
                .map(|n| n.data),
            _ => None,
        }
    }

    /// Resolves `path` from `cwd` (an absolute, canonical path, as
    /// [`Vfs::canonical_dir`] gives). A final symlink is followed when
    /// `follow`; a missing final component is reported, not an error.
    pub(crate) fn walk(&self, cwd: &[u8], path: &[u8], follow: bool) -> SysResult<Walked> {
        check_path(path)?;
        let must_dir = path.last() == Some(&b'/');
        let follow = follow || must_dir;
        let mut rest: Vec<u8> = Vec::new();
        if path.first() != Some(&b'/') {
            rest.try_reserve(cwd.len() + 1 + path.len())
                .map_err(|_| Errno::ENOMEM)?;
            rest.extend_from_slice(cwd);
            rest.push(b'/');
        }
        rest.try_reserve(path.len()).map_err(|_| Errno::ENOMEM)?;
        rest.extend_from_slice(path);
        let mut pos = 0;
        let mut hops = 0;
        let mut stack: Vec<(Vec<u8>, Node)> = Vec::new();
        loop {
            while rest.get(pos) == Some(&b'/') {
                pos += 1;
            }
            if pos >= rest.len() {
                break;
            }
            let start = pos;
            while rest.get(pos).is_some_and(|&b| b != b'/') {
                pos += 1;
            }
            let comp = &rest[start..pos];
            let mut next = pos;
            while rest.get(next) == Some(&b'/') {
                next += 1;
            }
            let last = next >= rest.len();
            let dir = stack.last().map_or(Node::Pack(ROOT), |(_, n)| n.clone());
            if comp == b"." {
                continue;
            }
            if comp == b".." {
                stack.pop();
                continue;
            }
            if comp.len() > NAME_MAX {
                return Err(Errno::ENAMETOOLONG);
            }
            let Some(node) = self.lookup(&dir, comp)? else {
                if last {
                    let missing = owned(comp)?;
                    return Ok(Walked {
                        stack,
                        missing: Some(missing),
                        must_dir,
                    });
                }
                return Err(Errno::ENOENT);
            };
            if let Some(target) = self.symlink_target(&node) {
                if !last || follow {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    if target.is_empty() {
                        return Err(Errno::ENOENT);
                    }
                    if target.len() >= PATH_MAX {
                        return Err(Errno::ENAMETOOLONG);
                    }
                    let tail = rest.get(pos..).unwrap_or(&[]);
                    let mut spliced = Vec::new();
                    spliced
                        .try_reserve(target.len() + tail.len())
                        .map_err(|_| Errno::ENOMEM)?;
                    spliced.extend_from_slice(target);
                    spliced.extend_from_slice(tail);
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    rest = spliced;
                    pos = 0;
                    continue;
                }
            }
            if !last && !self.is_dir(&node) {
                return Err(Errno::ENOTDIR);
            }
            let name = owned(comp)?;
            stack.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
            stack.push((name, node));
        }
        let walked = Walked {
            stack,
            missing: None,
            must_dir,
        };
        if must_dir && !self.is_dir(&walked.node()) {
            return Err(Errno::ENOTDIR);
        }
        Ok(walked)
    }

    /// Resolves `path` to an existing node (`ENOENT` if missing).
    pub(crate) fn find(&self, cwd: &[u8], path: &[u8], follow: bool) -> SysResult<Walked> {
        let walked = self.walk(cwd, path, follow)?;
        if walked.missing.is_some() {
            return Err(Errno::ENOENT);
        }
        Ok(walked)
    }
}
