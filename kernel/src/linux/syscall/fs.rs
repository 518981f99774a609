//! Files and descriptors: the package at `/` (read-only), `/tmp`, `/dev`,
//! standard input (empty) and output (the function's log), and the
//! descriptor operations shared by sockets, epoll and eventfd.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use mayfly_linux::abi::{self, AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW};
use mayfly_linux::errno::{Errno, SysResult};
use mayfly_linux::vfs::{Device, NodeKind, Stat};

use super::time::realtime_ns;
use super::Args;
use crate::console;
use crate::linux::process::{File, FileRef, Process};

/// The longest path read from the program.
const PATH_MAX: usize = 4096;
/// Bytes moved per step between the program and a file.
const CHUNK: usize = 64 * 1024;

fn path(p: &mut Process, addr: u64) -> SysResult<Vec<u8>> {
    p.read_cstr(addr, PATH_MAX)
}

/// The directory a `*at` path is relative to.
fn base(p: &mut Process, dirfd: i32, path: &[u8]) -> SysResult<Vec<u8>> {
    if path.first() == Some(&b'/') || dirfd == AT_FDCWD {
        return Ok(p.cwd.clone());
    }
    let file = p.fds.get(dirfd)?.clone();
    let file = file.borrow();
    match &*file {
        File::Node(open) if open.kind() == NodeKind::Directory => Ok(open.path().to_vec()),
        File::Node(_) => Err(Errno::ENOTDIR),
        _ => Err(Errno::ENOTDIR),
    }
}

/// The file behind descriptor `fd`.
pub fn file(p: &Process, fd: i32) -> SysResult<FileRef> {
    Ok(p.fds.get(fd)?.clone())
}

/// The stat of something that is not a node of the file system.
fn special_stat(kind: u32, ino: u64) -> Stat {
    Stat {
        ino,
        mode: kind,
        nlink: 1,
        uid: 993,
        gid: 990,
        size: 0,
        blksize: 4096,
        blocks: 0,
        rdev: 0,
        mtime_ns: 0,
    }
}

fn file_stat(p: &Process, file: &File) -> Stat {
    match file {
        File::Node(open) => open.stat(&p.vfs),
        File::Stdin | File::Console => special_stat(abi::S_IFCHR | 0o620, 3),
        File::Socket(_) | File::Datagram(_) => special_stat(abi::S_IFSOCK | 0o777, 4),
        File::Epoll(_) | File::EventFd(_) => special_stat(0o600, 5),
        File::Pipe(_) => special_stat(abi::S_IFIFO | 0o600, 6),
    }
}

/// Reads from a descriptor into the program's buffer, a chunk at a time.
fn read_into(p: &mut Process, fd: i32, addr: u64, len: usize, at: Option<u64>) -> SysResult {
    let file = file(p, fd)?;
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut done = 0usize;
    while done < len {
        let want = (len - done).min(buf.len());
        let got = {
            let mut f = file.borrow_mut();
            match &mut *f {
                File::Node(open) => match open.kind() {
                    NodeKind::CharDevice(Device::Random) => {
                        p.random.fill(&mut buf[..want]);
                        want
                    }
                    _ => match at {
                        Some(offset) => {
                            open.pread(&p.vfs, &mut buf[..want], offset + done as u64)?
                        }
                        None => open.read(&p.vfs, &mut buf[..want])?,
                    },
                },
                File::Stdin => 0,
                File::Console => return Err(Errno::EBADF),
                File::Socket(_) | File::Datagram(_) | File::EventFd(_) | File::Pipe(_) => {
                    if at.is_some() {
                        return Err(Errno::ESPIPE);
                    }
                    drop(f);
                    return super::net::read_stream(p, &file, addr, len);
                }
                File::Epoll(_) => return Err(Errno::EINVAL),
            }
        };
        if got == 0 {
            break;
        }
        p.write_user(addr + done as u64, &buf[..got])?;
        done += got;
        if got < want {
            break;
        }
    }
    Ok(done as u64)
}

/// Writes the program's buffer to a descriptor, a chunk at a time.
fn write_from(p: &mut Process, fd: i32, addr: u64, len: usize, at: Option<u64>) -> SysResult {
    let file = file(p, fd)?;
    {
        let f = file.borrow();
        if matches!(
            &*f,
            File::Socket(_) | File::Datagram(_) | File::EventFd(_) | File::Pipe(_)
        ) {
            drop(f);
            if at.is_some() {
                return Err(Errno::ESPIPE);
            }
            return super::net::write_stream(p, &file, addr, len);
        }
    }
    let mut buf = vec![0u8; len.min(CHUNK)];
    let mut done = 0usize;
    while done < len {
        let n = (len - done).min(buf.len());
        p.read_user(addr + done as u64, &mut buf[..n])?;
        let wrote = {
            let mut f = file.borrow_mut();
            match &mut *f {
                File::Console => {
                    console::write_bytes(&buf[..n]);
                    n
                }
                File::Node(open) => {
                    let now = realtime_ns();
                    let result = match at {
                        Some(offset) => {
                            open.pwrite(&mut p.vfs, &buf[..n], offset + done as u64, now)
                        }
                        None => open.write(&mut p.vfs, &buf[..n], now),
                    };
                    match result {
                        Ok(w) => w,
                        Err(e) if done == 0 => return Err(e),
                        Err(_) => break,
                    }
                }
                File::Stdin => return Err(Errno::EBADF),
                File::Epoll(_) => return Err(Errno::EINVAL),
                File::Socket(_) | File::Datagram(_) | File::EventFd(_) | File::Pipe(_) => {
                    unreachable!("handled above")
                }
            }
        };
        done += wrote;
        if wrote < n {
            break;
        }
    }
    Ok(done as u64)
}

/// read.
pub fn read(p: &mut Process, a: &Args) -> SysResult {
    read_into(p, a[0] as i32, a[1], a[2] as usize, None)
}

/// write.
pub fn write(p: &mut Process, a: &Args) -> SysResult {
    write_from(p, a[0] as i32, a[1], a[2] as usize, None)
}

/// pread64.
pub fn pread64(p: &mut Process, a: &Args) -> SysResult {
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    read_into(p, a[0] as i32, a[1], a[2] as usize, Some(a[3]))
}

/// pwrite64.
pub fn pwrite64(p: &mut Process, a: &Args) -> SysResult {
    if (a[3] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    write_from(p, a[0] as i32, a[1], a[2] as usize, Some(a[3]))
}

/// The (base, len) pairs of an iovec array.
pub fn iovecs(p: &mut Process, addr: u64, count: u64) -> SysResult<Vec<(u64, usize)>> {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let raw = p.read_vec(addr, count as usize * 16)?;
    Ok(raw
        .chunks_exact(16)
        .map(|c| {
            let base = u64::from_le_bytes(c[..8].try_into().unwrap_or([0; 8]));
            let len = u64::from_le_bytes(c[8..].try_into().unwrap_or([0; 8]));
            (base, len as usize)
        })
        .collect())
}

/// readv.
pub fn readv(p: &mut Process, a: &Args) -> SysResult {
    let mut total = 0u64;
    for (base, len) in iovecs(p, a[1], a[2])? {
        let got = read_into(p, a[0] as i32, base, len, None)?;
        total += got;
        if (got as usize) < len {
            break;
        }
    }
    Ok(total)
}

/// writev: one write per buffer, except for sockets, which get the whole
/// vector at once (an HTTP head and body leave in one segment).
pub fn writev(p: &mut Process, a: &Args) -> SysResult {
    let vecs = iovecs(p, a[1], a[2])?;
    if matches!(
        &*file(p, a[0] as i32)?.borrow(),
        File::Socket(_) | File::Datagram(_)
    ) {
        return super::net::write_vectored(p, a[0] as i32, &vecs);
    }
    let mut total = 0u64;
    for (base, len) in vecs {
        let wrote = write_from(p, a[0] as i32, base, len, None)?;
        total += wrote;
        if (wrote as usize) < len {
            break;
        }
    }
    Ok(total)
}

fn open_at(p: &mut Process, dirfd: i32, path_addr: u64, flags: u32, mode: u32) -> SysResult {
    let path = path(p, path_addr)?;
    let cwd = base(p, dirfd, &path)?;
    let open = p
        .vfs
        .open(&cwd, &path, flags, mode & !p.umask, realtime_ns())?;
    let cloexec = flags & abi::O_CLOEXEC != 0;
    let fd = p
        .fds
        .insert(Rc::new(RefCell::new(File::Node(open))), cloexec)?;
    Ok(fd as u64)
}

/// open.
pub fn open(p: &mut Process, a: &Args) -> SysResult {
    open_at(p, AT_FDCWD, a[0], a[1] as u32, a[2] as u32)
}

/// openat.
pub fn openat(p: &mut Process, a: &Args) -> SysResult {
    open_at(p, a[0] as i32, a[1], a[2] as u32, a[3] as u32)
}

fn write_stat(p: &mut Process, addr: u64, stat: &Stat) -> SysResult {
    p.write_user(addr, &abi::stat_bytes(stat))?;
    Ok(0)
}

/// stat.
pub fn stat(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    let st = p.vfs.stat(&p.cwd, &path, true)?;
    write_stat(p, a[1], &st)
}

/// lstat.
pub fn lstat(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    let st = p.vfs.stat(&p.cwd, &path, false)?;
    write_stat(p, a[1], &st)
}

/// fstat.
pub fn fstat(p: &mut Process, a: &Args) -> SysResult {
    let file = file(p, a[0] as i32)?;
    let st = file_stat(p, &file.borrow());
    write_stat(p, a[1], &st)
}

fn stat_at(p: &mut Process, dirfd: i32, path_addr: u64, flags: u32) -> SysResult<Stat> {
    let path = path(p, path_addr)?;
    if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        let file = if dirfd == AT_FDCWD {
            return p.vfs.stat(&p.cwd, b".", true);
        } else {
            file(p, dirfd)?
        };
        let st = file_stat(p, &file.borrow());
        return Ok(st);
    }
    let cwd = base(p, dirfd, &path)?;
    p.vfs.stat(&cwd, &path, flags & AT_SYMLINK_NOFOLLOW == 0)
}

/// newfstatat (what glibc's fstat and stat become).
pub fn newfstatat(p: &mut Process, a: &Args) -> SysResult {
    let st = stat_at(p, a[0] as i32, a[1], a[3] as u32)?;
    write_stat(p, a[2], &st)
}

/// statx (what Rust's `metadata` asks first).
pub fn statx(p: &mut Process, a: &Args) -> SysResult {
    let st = stat_at(p, a[0] as i32, a[1], a[2] as u32)?;
    p.write_user(a[4], &abi::statx_bytes(&st, a[3] as u32))?;
    Ok(0)
}

/// lseek.
pub fn lseek(p: &mut Process, a: &Args) -> SysResult {
    let file = file(p, a[0] as i32)?;
    let mut f = file.borrow_mut();
    match &mut *f {
        File::Node(open) => open.seek(&p.vfs, a[1] as i64, a[2] as u32),
        _ => Err(Errno::ESPIPE),
    }
}

/// getdents64.
pub fn getdents64(p: &mut Process, a: &Args) -> SysResult {
    let file = file(p, a[0] as i32)?;
    let mut buf = vec![0u8; (a[2] as usize).min(CHUNK)];
    let n = {
        let mut f = file.borrow_mut();
        match &mut *f {
            File::Node(open) => open.getdents64(&p.vfs, &mut buf)?,
            _ => return Err(Errno::ENOTDIR),
        }
    };
    p.write_user(a[1], &buf[..n])?;
    Ok(n as u64)
}

/// fsync and fdatasync: nothing outlives the VM.
pub fn fsync(p: &mut Process, a: &Args) -> SysResult {
    file(p, a[0] as i32)?;
    Ok(0)
}

/// ftruncate.
pub fn ftruncate(p: &mut Process, a: &Args) -> SysResult {
    if (a[1] as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let file = file(p, a[0] as i32)?;
    let mut f = file.borrow_mut();
    match &mut *f {
        File::Node(open) => {
            open.truncate(&mut p.vfs, a[1], realtime_ns())?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// getcwd.
pub fn getcwd(p: &mut Process, a: &Args) -> SysResult {
    let mut out = p.cwd.clone();
    out.push(0);
    if out.len() > a[1] as usize {
        return Err(Errno::ERANGE);
    }
    p.write_user(a[0], &out)?;
    Ok(out.len() as u64)
}

/// chdir.
pub fn chdir(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    p.cwd = p.vfs.canonical_dir(&p.cwd, &path)?;
    Ok(0)
}

/// mkdir.
pub fn mkdir(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    let mode = a[1] as u32 & !p.umask;
    p.vfs.mkdir(&p.cwd.clone(), &path, mode, realtime_ns())?;
    Ok(0)
}

/// mkdirat.
pub fn mkdirat(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[1])?;
    let cwd = base(p, a[0] as i32, &path)?;
    let mode = a[2] as u32 & !p.umask;
    p.vfs.mkdir(&cwd, &path, mode, realtime_ns())?;
    Ok(0)
}

/// rmdir.
pub fn rmdir(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    p.vfs.rmdir(&p.cwd.clone(), &path)?;
    Ok(0)
}

/// unlink.
pub fn unlink(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    p.vfs.unlink(&p.cwd.clone(), &path)?;
    Ok(0)
}

/// unlinkat.
pub fn unlinkat(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[1])?;
    let cwd = base(p, a[0] as i32, &path)?;
    if a[2] as u32 & AT_REMOVEDIR != 0 {
        p.vfs.rmdir(&cwd, &path)?;
    } else {
        p.vfs.unlink(&cwd, &path)?;
    }
    Ok(0)
}

fn rename_at(p: &mut Process, old_fd: i32, old: u64, new_fd: i32, new: u64) -> SysResult {
    let from = path(p, old)?;
    let to = path(p, new)?;
    let from_base = base(p, old_fd, &from)?;
    let to_base = base(p, new_fd, &to)?;
    if from_base != to_base && from.first() != Some(&b'/') && to.first() != Some(&b'/') {
        // Resolve both against their own bases: make them absolute.
        let mut abs_from = from_base.clone();
        abs_from.push(b'/');
        abs_from.extend_from_slice(&from);
        let mut abs_to = to_base;
        abs_to.push(b'/');
        abs_to.extend_from_slice(&to);
        p.vfs.rename(b"/", &abs_from, &abs_to)?;
    } else {
        p.vfs.rename(&from_base, &from, &to)?;
    }
    Ok(0)
}

/// rename.
pub fn rename(p: &mut Process, a: &Args) -> SysResult {
    rename_at(p, AT_FDCWD, a[0], AT_FDCWD, a[1])
}

/// renameat.
pub fn renameat(p: &mut Process, a: &Args) -> SysResult {
    rename_at(p, a[0] as i32, a[1], a[2] as i32, a[3])
}

/// renameat2 (no flags but 0 and RENAME_NOREPLACE's absence).
pub fn renameat2(p: &mut Process, a: &Args) -> SysResult {
    if a[4] != 0 {
        return Err(Errno::EINVAL);
    }
    rename_at(p, a[0] as i32, a[1], a[2] as i32, a[3])
}

fn readlink_into(p: &mut Process, cwd: Vec<u8>, path: &[u8], buf: u64, len: u64) -> SysResult {
    if len == 0 || (len as i64) < 0 {
        return Err(Errno::EINVAL);
    }
    let target = p.vfs.readlink(&cwd, path)?;
    let n = target.len().min(len as usize);
    p.write_user(buf, &target[..n])?;
    Ok(n as u64)
}

/// readlink.
pub fn readlink(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    let cwd = p.cwd.clone();
    readlink_into(p, cwd, &path, a[1], a[2])
}

/// readlinkat.
pub fn readlinkat(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[1])?;
    let cwd = base(p, a[0] as i32, &path)?;
    readlink_into(p, cwd, &path, a[2], a[3])
}

/// access.
pub fn access(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[0])?;
    p.vfs.access(&p.cwd, &path, a[1] as u32)?;
    Ok(0)
}

/// faccessat.
pub fn faccessat(p: &mut Process, a: &Args) -> SysResult {
    let path = path(p, a[1])?;
    let cwd = base(p, a[0] as i32, &path)?;
    p.vfs.access(&cwd, &path, a[2] as u32)?;
    Ok(0)
}

/// faccessat2.
pub fn faccessat2(p: &mut Process, a: &Args) -> SysResult {
    faccessat(p, a)
}
