//! Descriptor operations that do not care what a descriptor refers to:
//! close, dup, fcntl, ioctl.

use mayfly_linux::abi;
use mayfly_linux::errno::{Errno, SysResult};

use super::Args;
use crate::linux::process::{File, Process};

/// close.
pub fn close(p: &mut Process, a: &Args) -> SysResult {
    let file = p.fds.remove(a[0] as i32)?;
    if alloc::rc::Rc::strong_count(&file) == 1 {
        super::net::closed(p, &file);
    }
    Ok(0)
}

/// dup.
pub fn dup(p: &mut Process, a: &Args) -> SysResult {
    let file = super::fs::file(p, a[0] as i32)?;
    Ok(p.fds.insert(file, false)? as u64)
}

/// dup2.
pub fn dup2(p: &mut Process, a: &Args) -> SysResult {
    let file = super::fs::file(p, a[0] as i32)?;
    if a[0] == a[1] {
        return Ok(a[1]);
    }
    p.fds.insert_at(a[1] as i32, file, false)?;
    Ok(a[1])
}

/// dup3.
pub fn dup3(p: &mut Process, a: &Args) -> SysResult {
    if a[0] == a[1] || a[2] as u32 & !abi::O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let file = super::fs::file(p, a[0] as i32)?;
    p.fds
        .insert_at(a[1] as i32, file, a[2] as u32 & abi::O_CLOEXEC != 0)?;
    Ok(a[1])
}

/// fcntl.
pub fn fcntl(p: &mut Process, a: &Args) -> SysResult {
    let fd = a[0] as i32;
    let file = super::fs::file(p, fd)?;
    match a[1] as u32 {
        abi::F_DUPFD => Ok(p.fds.insert_from(a[2] as i32, file, false)? as u64),
        abi::F_DUPFD_CLOEXEC => Ok(p.fds.insert_from(a[2] as i32, file, true)? as u64),
        abi::F_GETFD => Ok(u64::from(p.fds.cloexec(fd)?)),
        abi::F_SETFD => {
            p.fds.set_cloexec(fd, a[2] & 1 != 0)?;
            Ok(0)
        }
        abi::F_GETFL => Ok(u64::from(match &*file.borrow() {
            File::Node(open) => open.status_flags(),
            File::Stdin => abi::O_RDONLY,
            File::Console => abi::O_WRONLY,
            File::Socket(s) => abi::O_RDWR | if s.nonblocking { abi::O_NONBLOCK } else { 0 },
            File::Datagram(d) => abi::O_RDWR | if d.nonblocking { abi::O_NONBLOCK } else { 0 },
            File::EventFd(e) => abi::O_RDWR | if e.nonblocking { abi::O_NONBLOCK } else { 0 },
            File::Pipe(end) => {
                (if end.read {
                    abi::O_RDONLY
                } else {
                    abi::O_WRONLY
                }) | if end.nonblocking { abi::O_NONBLOCK } else { 0 }
            }
            File::Epoll(_) => abi::O_RDWR,
        })),
        abi::F_SETFL => {
            let nonblocking = a[2] as u32 & abi::O_NONBLOCK != 0;
            match &mut *file.borrow_mut() {
                File::Node(open) => open.set_status_flags(a[2] as u32),
                File::Socket(s) => s.nonblocking = nonblocking,
                File::Datagram(d) => d.nonblocking = nonblocking,
                File::EventFd(e) => e.nonblocking = nonblocking,
                File::Pipe(end) => end.nonblocking = nonblocking,
                _ => {}
            }
            Ok(0)
        }
        // F_GETLK, F_SETLK, F_SETLKW: one process holds every lock.
        5..=7 => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// ioctl: no terminal; FIONBIO and FIOCLEX for sockets and descriptors.
pub fn ioctl(p: &mut Process, a: &Args) -> SysResult {
    const FIONBIO: u64 = 0x5421;
    const FIONCLEX: u64 = 0x5450;
    const FIOCLEX: u64 = 0x5451;
    let fd = a[0] as i32;
    let file = super::fs::file(p, fd)?;
    match a[1] {
        FIONBIO => {
            let on = u32::from_le_bytes(p.read_array::<4>(a[2])?) != 0;
            match &mut *file.borrow_mut() {
                File::Socket(s) => s.nonblocking = on,
                File::Datagram(d) => d.nonblocking = on,
                File::EventFd(e) => e.nonblocking = on,
                File::Pipe(end) => end.nonblocking = on,
                File::Node(open) => {
                    let flags = open.flags() & !abi::O_NONBLOCK;
                    open.set_status_flags(if on { flags | abi::O_NONBLOCK } else { flags });
                }
                _ => {}
            }
            Ok(0)
        }
        FIOCLEX | FIONCLEX => {
            p.fds.set_cloexec(fd, a[1] == FIOCLEX)?;
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// pipe2: O_NONBLOCK and O_CLOEXEC.
pub fn pipe2(p: &mut Process, a: &Args) -> SysResult {
    let flags = a[1] as u32;
    if flags & !(abi::O_NONBLOCK | abi::O_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (read, write) = crate::linux::pipe::new(flags & abi::O_NONBLOCK != 0);
    let cloexec = flags & abi::O_CLOEXEC != 0;
    let r = p.fds.insert(
        alloc::rc::Rc::new(core::cell::RefCell::new(File::Pipe(read))),
        cloexec,
    )?;
    let w = match p.fds.insert(
        alloc::rc::Rc::new(core::cell::RefCell::new(File::Pipe(write))),
        cloexec,
    ) {
        Ok(w) => w,
        Err(e) => {
            let _ = p.fds.remove(r);
            return Err(e);
        }
    };
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&r.to_le_bytes());
    out[4..].copy_from_slice(&w.to_le_bytes());
    if let Err(e) = p.write_user(a[0], &out) {
        let _ = p.fds.remove(r);
        let _ = p.fds.remove(w);
        return Err(e);
    }
    Ok(0)
}

/// pipe.
pub fn pipe(p: &mut Process, a: &Args) -> SysResult {
    pipe2(p, &[a[0], 0, 0, 0, 0, 0])
}
