//! The descriptor table: small integers naming open files, each with its
//! close-on-exec flag. It is generic so that the kernel can store its own
//! file type; storing `Rc<RefCell<_>>` makes a `dup` share the open file
//! description (and so its offset), as Linux does.
//!
//! ```
//! use mayfly_linux::fd::FdTable;
//! let mut table = FdTable::new();
//! assert_eq!(table.insert("stdin", false), Ok(0));
//! assert_eq!(table.insert("stdout", false), Ok(1));
//! assert_eq!(table.insert_from(10, "log", true), Ok(10));
//! table.remove(0).unwrap();
//! assert_eq!(table.insert("new", false), Ok(0), "the lowest free number");
//! assert_eq!(table.cloexec(10), Ok(true));
//! ```

use alloc::vec::Vec;

use crate::errno::{Errno, SysResult};

/// The most descriptors a process may hold (Lambda's `RLIMIT_NOFILE`).
pub const MAX_FDS: usize = 1024;

#[derive(Debug, Clone)]
struct Slot<T> {
    file: T,
    cloexec: bool,
}

/// A process's descriptors.
#[derive(Debug, Clone)]
pub struct FdTable<T> {
    // Index = descriptor; grown only as far as the highest one in use has
    // ever been, never past `MAX_FDS`.
    slots: Vec<Option<Slot<T>>>,
}

impl<T> Default for FdTable<T> {
    fn default() -> Self {
        FdTable { slots: Vec::new() }
    }
}

fn index(fd: i32) -> Option<usize> {
    usize::try_from(fd).ok().filter(|&i| i < MAX_FDS)
}

impl<T> FdTable<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Puts `file` at the lowest free descriptor (`EMFILE` when all
    /// [`MAX_FDS`] are taken).
    pub fn insert(&mut self, file: T, cloexec: bool) -> SysResult<i32> {
        self.insert_from(0, file, cloexec).map_err(|e| match e {
            Errno::EINVAL => Errno::EMFILE,
            e => e,
        })
    }

    /// Puts `file` at the lowest free descriptor ≥ `min`, as `F_DUPFD`
    /// does: `EINVAL` if `min` is negative or not below [`MAX_FDS`],
    /// `EMFILE` if none is free from there.
    pub fn insert_from(&mut self, min: i32, file: T, cloexec: bool) -> SysResult<i32> {
        let min = index(min).ok_or(Errno::EINVAL)?;
        let free = (min..MAX_FDS)
            .find(|&i| !matches!(self.slots.get(i), Some(Some(_))))
            .ok_or(Errno::EMFILE)?;
        self.put(free, file, cloexec)?;
        Ok(free as i32)
    }

    /// Puts `file` at `fd`, as `dup2` and `dup3` do, returning the file it
    /// replaces (the caller closes it); `EBADF` if `fd` is out of range.
    pub fn insert_at(&mut self, fd: i32, file: T, cloexec: bool) -> SysResult<Option<T>> {
        let i = index(fd).ok_or(Errno::EBADF)?;
        self.put(i, file, cloexec)
    }

    fn put(&mut self, i: usize, file: T, cloexec: bool) -> SysResult<Option<T>> {
        if i >= self.slots.len() {
            let more = i + 1 - self.slots.len();
            self.slots.try_reserve(more).map_err(|_| Errno::ENOMEM)?;
            self.slots.resize_with(i + 1, || None);
        }
        let slot = self.slots.get_mut(i).ok_or(Errno::EBADF)?;
        Ok(slot.replace(Slot { file, cloexec }).map(|s| s.file))
    }

    fn slot(&self, fd: i32) -> SysResult<&Slot<T>> {
        index(fd)
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
            .ok_or(Errno::EBADF)
    }

    fn slot_mut(&mut self, fd: i32) -> SysResult<&mut Slot<T>> {
        index(fd)
            .and_then(|i| self.slots.get_mut(i))
            .and_then(Option::as_mut)
            .ok_or(Errno::EBADF)
    }

    /// The file at `fd` (`EBADF` if none).
    pub fn get(&self, fd: i32) -> SysResult<&T> {
        self.slot(fd).map(|s| &s.file)
    }

    /// The file at `fd`, to change (`EBADF` if none).
    pub fn get_mut(&mut self, fd: i32) -> SysResult<&mut T> {
        self.slot_mut(fd).map(|s| &mut s.file)
    }

    /// Takes the file out of `fd`, as `close` does (`EBADF` if none).
    pub fn remove(&mut self, fd: i32) -> SysResult<T> {
        let i = index(fd).ok_or(Errno::EBADF)?;
        let slot = self.slots.get_mut(i).and_then(Option::take);
        let file = slot.ok_or(Errno::EBADF)?.file;
        // Keep the table no longer than its highest descriptor in use.
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(file)
    }

    /// Whether `fd` closes on `execve` (`EBADF` if none).
    pub fn cloexec(&self, fd: i32) -> SysResult<bool> {
        self.slot(fd).map(|s| s.cloexec)
    }

    /// Sets whether `fd` closes on `execve` (`EBADF` if none).
    pub fn set_cloexec(&mut self, fd: i32, on: bool) -> SysResult<()> {
        self.slot_mut(fd).map(|s| s.cloexec = on)
    }

    /// Every descriptor in use, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as i32, &s.file)))
    }

    /// How many descriptors are in use.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// Whether no descriptor is in use.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Removes every close-on-exec descriptor, as `execve` does, and
    /// returns their files for the caller to close.
    pub fn take_cloexec(&mut self) -> Vec<T> {
        let mut closed = Vec::new();
        for slot in self.slots.iter_mut() {
            if slot.as_ref().is_some_and(|s| s.cloexec) {
                if let Some(s) = slot.take() {
                    closed.push(s.file);
                }
            }
        }
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::Cell;

    #[test]
    fn the_lowest_free_descriptor_is_used() {
        let mut t = FdTable::new();
        for i in 0..5 {
            assert_eq!(t.insert(i, false), Ok(i));
        }
        t.remove(1).unwrap();
        t.remove(3).unwrap();
        assert_eq!(t.insert(10, false), Ok(1));
        assert_eq!(t.insert(11, false), Ok(3));
        assert_eq!(t.insert(12, false), Ok(5));
        assert_eq!(t.len(), 6);
        assert_eq!(t.get(3), Ok(&11));
    }

    #[test]
    fn bad_descriptors_are_ebadf() {
        let mut t: FdTable<u8> = FdTable::new();
        for fd in [-1, 0, 5, 1024, i32::MAX, i32::MIN] {
            assert_eq!(t.get(fd), Err(Errno::EBADF));
            assert_eq!(t.get_mut(fd).err(), Some(Errno::EBADF));
            assert_eq!(t.remove(fd), Err(Errno::EBADF));
            assert_eq!(t.cloexec(fd), Err(Errno::EBADF));
            assert_eq!(t.set_cloexec(fd, true), Err(Errno::EBADF));
        }
        assert_eq!(t.insert_at(-1, 1, false), Err(Errno::EBADF));
        assert_eq!(t.insert_at(1024, 1, false), Err(Errno::EBADF));
        assert_eq!(t.insert_from(-1, 1, false), Err(Errno::EINVAL));
        assert_eq!(t.insert_from(1024, 1, false), Err(Errno::EINVAL));
        t.insert(1, false).unwrap();
        assert_eq!(t.remove(0), Ok(1));
        assert_eq!(t.remove(0), Err(Errno::EBADF), "closed twice");
        assert!(t.is_empty());
    }

    #[test]
    fn emfile_at_the_limit() {
        let mut t = FdTable::new();
        for i in 0..MAX_FDS {
            assert_eq!(t.insert((), false), Ok(i as i32));
        }
        assert_eq!(t.insert((), false), Err(Errno::EMFILE));
        assert_eq!(t.insert_from(5, (), false), Err(Errno::EMFILE));
        // dup2 onto a used descriptor still works at the limit.
        assert_eq!(t.insert_at(1023, (), false), Ok(Some(())));
        t.remove(700).unwrap();
        assert_eq!(t.insert_from(701, (), false), Err(Errno::EMFILE));
        assert_eq!(t.insert_from(3, (), false), Ok(700));
    }

    #[test]
    fn dup_shares_the_file_and_dup2_replaces() {
        let shared = Rc::new(Cell::new(0u64));
        let mut t = FdTable::new();
        let fd = t.insert(shared.clone(), false).unwrap();
        let copy = t.get(fd).unwrap().clone();
        let dup = t.insert_from(3, copy, true).unwrap();
        assert_eq!(dup, 3);
        t.get(fd).unwrap().set(42);
        assert_eq!(t.get(dup).unwrap().get(), 42, "a dup shares the offset");
        assert_eq!((t.cloexec(fd), t.cloexec(dup)), (Ok(false), Ok(true)));

        let other = Rc::new(Cell::new(7));
        let old = t.insert_at(dup, other, false).unwrap();
        assert!(old.is_some_and(|o| Rc::ptr_eq(&o, &shared)));
        assert_eq!(t.get(dup).unwrap().get(), 7);
        assert_eq!(t.cloexec(dup), Ok(false), "dup2 sets the new flag");
        assert_eq!(t.insert_at(9, shared.clone(), true), Ok(None));
        let fds: Vec<i32> = t.iter().map(|(fd, _)| fd).collect();
        assert_eq!(fds, vec![0, 3, 9]);
    }

    #[test]
    fn cloexec_is_per_descriptor_and_exec_closes_them() {
        let mut t = FdTable::new();
        t.insert('a', false).unwrap();
        t.insert('b', true).unwrap();
        t.insert('c', false).unwrap();
        t.set_cloexec(2, true).unwrap();
        t.set_cloexec(1, false).unwrap();
        assert_eq!(t.cloexec(1), Ok(false));
        assert_eq!(t.take_cloexec(), vec!['c']);
        assert_eq!(t.get(2), Err(Errno::EBADF));
        assert_eq!(t.insert('d', true), Ok(2));
        assert_eq!(t.get_mut(0).map(|c| *c), Ok('a'));
    }
}
