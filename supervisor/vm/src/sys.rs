//! Every raw system call of the VM layer, each behind a safe function.
//!
//! The rest of the crate denies `unsafe`: what it needs from the kernel
//! beyond `std` (socket pairs, pipe flags, signals, the KVM probe, the
//! child's set-up between fork and exec) is here, where each call's
//! soundness is argued once.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub mod child;

/// A signal the VM layer sends to QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `SIGKILL`.
    Kill,
    /// `SIGSTOP`: pauses a warm VM.
    Stop,
    /// `SIGCONT`: resumes it.
    Continue,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Stop => libc::SIGSTOP,
            Signal::Continue => libc::SIGCONT,
        }
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn check_size(n: libc::ssize_t) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: i32, signal: Signal) -> io::Result<()> {
    // SAFETY: kill(2) has no memory effects; at worst the pid names no
    // process and the call fails.
    check(unsafe { libc::kill(pid, signal.number()) }).map(|_| ())
}

/// `KVM_GET_API_VERSION` on an open `/dev/kvm`; `None` if the ioctl fails.
pub fn kvm_api_version(kvm: BorrowedFd<'_>) -> Option<i32> {
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    // SAFETY: KVM_GET_API_VERSION takes no argument and only returns an
    // integer; the descriptor is borrowed, so open, for the call.
    let version = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    (version >= 0).then_some(version)
}

/// One `read(2)` into `buf`; `Ok(0)` at the end.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes and the
    // descriptor is borrowed, so open, for the call.
    check_size(unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) })
}

/// Two connected `AF_UNIX` datagram sockets, close-on-exec.
pub fn datagram_socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two descriptors for the kernel to
    // fill.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded: both descriptors are open and owned by
    // nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Two connected `AF_UNIX` sequenced-packet sockets, close-on-exec.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid array of two descriptors for the kernel to
    // fill.
    check(unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    })?;
    // SAFETY: socketpair succeeded: both descriptors are open and owned by
    // nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends `bytes` as one message with `fds` attached (`SCM_RIGHTS`).
pub fn send_with_fds(
    socket: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let payload = std::mem::size_of_val(raw.as_slice()) as u32;
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(payload) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: the msghdr points at the live iovec (read only by sendmsg)
    // and at `control`, which is CMSG_SPACE bytes for the one header the
    // CMSG_* macros fill within it; the descriptors are borrowed, so open.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(payload) as _;
        std::ptr::copy_nonoverlapping(
            raw.as_ptr(),
            libc::CMSG_DATA(cmsg).cast::<RawFd>(),
            raw.len(),
        );
        let sent = check_size(libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_NOSIGNAL))?;
        if sent != bytes.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "a short message"));
        }
    }
    Ok(())
}

/// Sets a socket's send and receive buffers to `bytes` each.
pub fn set_socket_buffers(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: the value is a live c_int whose size is passed alongside;
        // the descriptor is borrowed, so open.
        check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

/// Sets or clears `O_NONBLOCK` on an open file (shared with every
/// descriptor of that open file, other processes' included).
pub fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL only read and set the flags of a descriptor
    // that is borrowed, so open.
    unsafe {
        let flags = check(libc::fcntl(fd.as_raw_fd(), libc::F_GETFL))?;
        let flags = if nonblocking {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        check(libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags)).map(|_| ())
    }
}

/// Sends one datagram without blocking and without `SIGPIPE`.
pub fn send_datagram(fd: BorrowedFd<'_>, datagram: &[u8]) -> io::Result<usize> {
    // SAFETY: `datagram` is valid for reads of its length; the descriptor
    // is borrowed, so open.
    check_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            datagram.as_ptr().cast(),
            datagram.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    })
}

/// Receives one datagram without blocking; returns its real length, which
/// is more than `buf.len()` when it was truncated.
pub fn recv_datagram(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length; MSG_TRUNC makes the
    // kernel report the datagram's real length without writing past it.
    check_size(unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    })
}

/// A pipe, both ends close-on-exec: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Resizes a pipe's buffer (best effort: over the system's
/// `pipe-max-size` it stays as it was).
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ only resizes the buffer of a pipe that is
    // borrowed, so open.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) }).map(|_| ())
}

/// A close-on-exec duplicate of `fd` numbered `lowest` or above.
pub fn duplicate_at_or_above(fd: BorrowedFd<'_>, lowest: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a borrowed (open) descriptor returns a new
    // one.
    let new = check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, lowest) })?;
    // SAFETY: `new` is a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// This process's effective gid.
pub fn egid() -> u32 {
    // SAFETY: getegid cannot fail and touches no memory.
    unsafe { libc::getegid() }
}

/// Whether a process `pid` exists (signal 0 probes without sending).
pub fn is_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 sends nothing.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A close-on-exec memfd holding `bytes`, at offset 0 when reopened
/// through `/dev/fd`.
pub fn memfd_with(bytes: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: the name is a NUL-terminated literal; memfd_create returns a
    // new descriptor.
    let fd = check(unsafe { libc::memfd_create(c"mayfly-env".as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: fresh descriptor, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(fd);
    std::io::Write::write_all(&mut file, bytes)?;
    Ok(OwnedFd::from(file))
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
}

/// The `MS_NOSUID`, `MS_NODEV` and `MS_NOEXEC` flags of the mount that
/// holds `path`: a read-only remount of a bind of it in a user namespace
/// must keep them.
pub fn mount_flags(path: &Path) -> io::Result<libc::c_ulong> {
    let path = c_path(path)?;
    // SAFETY: statvfs fills a zeroed struct from a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    check(unsafe { libc::statvfs(path.as_ptr(), &mut stat) })?;
    let mut flags = 0;
    for (st, ms) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
    ] {
        if stat.f_flag & st != 0 {
            flags |= ms;
        }
    }
    Ok(flags)
}

/// The group a process needs for read-write access to `device`, when the
/// device is not read-write for everyone (`/dev/kvm` is usually
/// `root:kvm 0660`).
pub fn group_needed(device: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(device).ok()?;
    (meta.mode() & 0o006 != 0o006).then_some(meta.gid())
}

/// Registers `fd` with the tokio reactor for `interest`. Must be called
/// inside a tokio runtime.
pub fn register(
    fd: OwnedFd,
    interest: tokio::io::Interest,
) -> Result<tokio::io::unix::AsyncFd<OwnedFd>, tokio::io::unix::AsyncFdRegisterError<OwnedFd>> {
    // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open
    // and names the same file for the AsyncFd's whole life.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }
}

/// The host's own addresses (every interface's, loopback included), which
/// egress never opens to a guest.
pub fn host_addresses() -> io::Result<Vec<std::net::IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list it allocated into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs gave, not freed yet.
        let ifa = unsafe { &*entry };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: a non-null ifa_addr points at a sockaddr whose family
            // says which structure it is.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                addresses.push(std::net::IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                addresses.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        entry = ifa.ifa_next;
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hosts_addresses_include_loopback() {
        let addresses = super::host_addresses().unwrap();
        assert!(
            addresses.contains(&std::net::IpAddr::from([127, 0, 0, 1])),
            "{addresses:?}"
        );
    }

    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn datagrams_keep_their_boundaries_and_report_truncation() {
        let (a, b) = datagram_socket_pair().unwrap();
        set_nonblocking(b.as_fd(), true).unwrap();
        assert_eq!(send_datagram(a.as_fd(), b"hello").unwrap(), 5);
        assert_eq!(send_datagram(a.as_fd(), b"hi").unwrap(), 2);
        let mut buf = [0u8; 3];
        assert_eq!(recv_datagram(b.as_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"hel");
        assert_eq!(recv_datagram(b.as_fd(), &mut buf).unwrap(), 2);
        let empty = recv_datagram(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn pipes_read_what_was_written() {
        let (r, w) = pipe().unwrap();
        set_pipe_size(r.as_fd(), 1 << 16).unwrap();
        let mut file = std::fs::File::from(w);
        std::io::Write::write_all(&mut file, b"log").unwrap();
        drop(file);
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 3);
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn duplicates_land_at_or_above() {
        let (r, _w) = pipe().unwrap();
        let dup = duplicate_at_or_above(r.as_fd(), 100).unwrap();
        assert!(dup.as_raw_fd() >= 100);
    }

    #[test]
    fn signalling_no_process_fails() {
        // Pid i32::MAX is above any pid_max.
        assert!(kill(i32::MAX, Signal::Continue).is_err());
    }
}
