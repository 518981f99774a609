//! Sockets: TCP clients over the kernel's smoltcp ([`crate::linux::net`]),
//! and UDP sockets ([`super::datagram`], where each entry point below goes
//! for a `SOCK_DGRAM` descriptor). Other families and types answer as a
//! kernel without them would.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use mayfly_linux::errno::{Errno, SysResult};

use super::{datagram, Args};
use crate::arch;
use crate::linux::datagram::Datagram;
use crate::linux::net::{parse_sockaddr, sockaddr, Network, Socket};
use crate::linux::process::{File, FileRef, Process};

const AF_INET: u64 = 2;
const SOCK_STREAM: u64 = 1;
const SOCK_DGRAM: u64 = 2;
const SOCK_NONBLOCK: u64 = 0o4000;
const SOCK_CLOEXEC: u64 = 0o2000000;
const IPPROTO_TCP: u64 = 6;
const IPPROTO_UDP: u64 = 17;
const SOL_SOCKET: u64 = 1;
const SO_TYPE: u64 = 3;
const SO_ERROR: u64 = 4;
const SO_SNDBUF: u64 = 7;
const SO_RCVBUF: u64 = 8;
const TCP_NODELAY: u64 = 1;
const MSG_DONTWAIT: u64 = 0x40;
const MSG_PEEK: u64 = 0x2;
/// Bytes moved per step between the program and a socket.
const CHUNK: usize = 64 * 1024;

/// The socket behind `fd` (TCP or UDP).
fn socket_file(p: &Process, fd: i32) -> SysResult<FileRef> {
    let file = p.fds.get(fd)?.clone();
    if !matches!(&*file.borrow(), File::Socket(_) | File::Datagram(_)) {
        return Err(Errno::ENOTSOCK);
    }
    Ok(file)
}

/// Whether `file` is a UDP socket.
fn is_datagram(file: &FileRef) -> bool {
    matches!(&*file.borrow(), File::Datagram(_))
}

/// Runs `f` on the socket behind `file` with the network.
fn with_socket<R>(
    p: &mut Process,
    file: &FileRef,
    f: impl FnOnce(&mut Network, &mut Socket) -> R,
) -> R {
    let mut borrowed = file.borrow_mut();
    let File::Socket(socket) = &mut *borrowed else {
        unreachable!("datagram sockets are sent to super::datagram first")
    };
    f(&mut p.net, socket)
}

fn nonblocking(file: &FileRef) -> bool {
    match &*file.borrow() {
        File::Socket(s) => s.nonblocking,
        File::Datagram(d) => d.nonblocking,
        File::EventFd(e) => e.nonblocking,
        File::Pipe(end) => end.nonblocking,
        _ => false,
    }
}

/// Makes `attempt`; EAGAIN on a blocking descriptor makes the syscall wait
/// (it is made again once other threads had their turn), and stays EAGAIN
/// on a non-blocking one.
pub(super) fn blocking<T>(
    p: &mut Process,
    file: &FileRef,
    dontwait: bool,
    attempt: impl FnOnce(&mut Process) -> SysResult<T>,
) -> SysResult<T> {
    let nonblocking = dontwait || nonblocking(file);
    match attempt(p) {
        Err(Errno::EAGAIN) if !nonblocking => {
            p.net.poll();
            Err(Errno::ERESTARTNOINTR)
        }
        other => other,
    }
}

/// socket: AF_INET stream (TCP) and datagram (UDP) sockets.
pub fn socket(p: &mut Process, a: &Args) -> SysResult {
    let kind = a[1] & !(SOCK_NONBLOCK | SOCK_CLOEXEC);
    if a[0] != AF_INET {
        return Err(Errno::EAFNOSUPPORT);
    }
    let nonblocking = a[1] & SOCK_NONBLOCK != 0;
    let file = match (kind, a[2]) {
        (SOCK_STREAM, 0 | IPPROTO_TCP) => File::Socket(Socket::new(nonblocking)),
        (SOCK_DGRAM, 0 | IPPROTO_UDP) => File::Datagram(Datagram::new(nonblocking)),
        _ => return Err(Errno::EPROTONOSUPPORT),
    };
    let fd = p
        .fds
        .insert(Rc::new(RefCell::new(file)), a[1] & SOCK_CLOEXEC != 0)?;
    Ok(fd as u64)
}

/// connect: blocking waits until established or refused; non-blocking
/// answers EINPROGRESS.
pub fn connect(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    let addr = p.read_vec(a[1], (a[2] as usize).min(128))?;
    if is_datagram(&file) {
        return datagram::connect(p, &file, &addr);
    }
    let remote = parse_sockaddr(&addr)?;
    // A blocking connect that waits is made again: the second time, the
    // connection is already on its way.
    let waiting = !nonblocking(&file) && with_socket(p, &file, |_, s| s.connecting());
    if !waiting {
        with_socket(p, &file, |net, s| net.connect(s, remote))?;
        if nonblocking(&file) {
            return Err(Errno::EINPROGRESS);
        }
    }
    blocking(p, &file, false, |p| {
        match with_socket(p, &file, |net, s| net.connect_done(s)) {
            Ok(true) => Ok(0),
            Ok(false) => Err(Errno::EAGAIN),
            Err(e) => Err(e),
        }
    })
}

/// bind: a local port (the address is the VM's only one).
pub fn bind(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    let addr = p.read_vec(a[1], (a[2] as usize).min(128))?;
    if is_datagram(&file) {
        return datagram::bind(p, &file, &addr);
    }
    let local = parse_sockaddr(&addr)?;
    with_socket(p, &file, |net, s| net.bind(s, local.port))?;
    Ok(0)
}

/// Receives into the program's buffer.
fn recv_into(p: &mut Process, file: &FileRef, addr: u64, len: usize, flags: u64) -> SysResult {
    if flags & MSG_PEEK != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let mut buf = vec![0u8; len.min(CHUNK)];
    let n = blocking(p, file, flags & MSG_DONTWAIT != 0, |p| {
        with_socket(p, file, |net, s| net.recv(s, &mut buf))
    })?;
    p.write_user(addr, &buf[..n])?;
    Ok(n as u64)
}

/// Sends the program's bytes, all of them for a blocking socket. Until the
/// first byte is queued the syscall may wait like any other; once some are
/// queued the rest follow here, turning the network (the host drains it),
/// so that a restart never sends a byte twice.
fn send_from(p: &mut Process, file: &FileRef, data: &[u8], flags: u64) -> SysResult {
    let dontwait = flags & MSG_DONTWAIT != 0;
    let first = blocking(p, file, dontwait, |p| {
        with_socket(p, file, |net, s| net.send(s, data))
    })?;
    let mut sent = first;
    if dontwait || nonblocking(file) {
        return Ok(sent as u64);
    }
    while sent < data.len() {
        match with_socket(p, file, |net, s| net.send(s, &data[sent..])) {
            Ok(n) => sent += n,
            Err(Errno::EAGAIN) => {
                p.net.poll();
                arch::pause();
            }
            Err(_) => break,
        }
    }
    Ok(sent as u64)
}

/// read on a socket, an eventfd or a pipe (what waits like a stream).
pub fn read_stream(p: &mut Process, file: &FileRef, addr: u64, len: usize) -> SysResult {
    if matches!(&*file.borrow(), File::EventFd(_)) {
        return super::poll::eventfd_read(p, file, addr, len);
    }
    if matches!(&*file.borrow(), File::Pipe(_)) {
        let mut buf = vec![0u8; len.min(CHUNK)];
        let n = blocking(p, file, false, |_| match &*file.borrow() {
            File::Pipe(end) => end.read(&mut buf),
            _ => Err(Errno::EBADF),
        })?;
        p.write_user(addr, &buf[..n])?;
        return Ok(n as u64);
    }
    if is_datagram(file) {
        let received = datagram::recv(p, file, &[(addr, len)], 0, false)?;
        return Ok(received.copied as u64);
    }
    recv_into(p, file, addr, len, 0)
}

/// write on a socket, an eventfd or a pipe.
pub fn write_stream(p: &mut Process, file: &FileRef, addr: u64, len: usize) -> SysResult {
    if matches!(&*file.borrow(), File::EventFd(_)) {
        return super::poll::eventfd_write(p, file, addr, len);
    }
    if matches!(&*file.borrow(), File::Pipe(_)) {
        let data = p.read_vec(addr, len.min(crate::linux::pipe::CAPACITY))?;
        let n = blocking(p, file, false, |_| match &*file.borrow() {
            File::Pipe(end) => end.write(&data),
            _ => Err(Errno::EBADF),
        })?;
        return Ok(n as u64);
    }
    if is_datagram(file) {
        let data = datagram::gather(p, &[(addr, len)])?;
        return datagram::send(p, file, &data, None, false);
    }
    let data = p.read_vec(addr, len.min(1 << 24))?;
    send_from(p, file, &data, 0)
}

/// writev on a socket: the buffers are gathered and sent as one.
pub fn write_vectored(p: &mut Process, fd: i32, vecs: &[(u64, usize)]) -> SysResult {
    let file = socket_file(p, fd)?;
    if is_datagram(&file) {
        let data = datagram::gather(p, vecs)?;
        return datagram::send(p, &file, &data, None, false);
    }
    let data = gather(p, vecs)?;
    send_from(p, &file, &data, 0)
}

fn gather(p: &mut Process, vecs: &[(u64, usize)]) -> SysResult<Vec<u8>> {
    let total: usize = vecs.iter().map(|(_, len)| *len).sum();
    if total > 1 << 24 {
        return Err(Errno::EINVAL);
    }
    let mut data = Vec::new();
    data.try_reserve_exact(total).map_err(|_| Errno::ENOMEM)?;
    for &(base, len) in vecs {
        let start = data.len();
        data.resize(start + len, 0);
        p.read_user(base, &mut data[start..])?;
    }
    Ok(data)
}

/// The program closed the last descriptor of `file`.
pub fn closed(p: &mut Process, file: &FileRef) {
    if let File::Socket(s) = &mut *file.borrow_mut() {
        p.net.release(s);
    }
    datagram::closed(p, file);
}

/// sendto (the address is ignored on a connected stream, as on Linux).
pub fn sendto(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    if is_datagram(&file) {
        let data = datagram::gather(p, &[(a[1], a[2] as usize)])?;
        let to = datagram::destination(p, a[4], a[5])?;
        return datagram::send(p, &file, &data, to, a[3] & MSG_DONTWAIT != 0);
    }
    let data = p.read_vec(a[1], (a[2] as usize).min(1 << 24))?;
    send_from(p, &file, &data, a[3])
}

/// recvfrom.
pub fn recvfrom(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    if is_datagram(&file) {
        let dontwait = a[3] & MSG_DONTWAIT != 0;
        let received = datagram::recv(p, &file, &[(a[1], a[2] as usize)], a[3], dontwait)?;
        datagram::write_sockaddr(p, received.from, a[4], a[5])?;
        return Ok(datagram::received_length(&received, a[3]));
    }
    let n = recv_into(p, &file, a[1], a[2] as usize, a[3])?;
    if a[4] != 0 && a[5] != 0 {
        write_address(p, &file, a[4], a[5], true)?;
    }
    Ok(n)
}

/// A msghdr: its name (address and length) and its iovecs.
struct Message {
    name: u64,
    name_len: u64,
    vecs: Vec<(u64, usize)>,
}

fn message(p: &mut Process, msg: u64) -> SysResult<Message> {
    let header = p.read_array::<56>(msg)?;
    let word = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    Ok(Message {
        name: word(0),
        name_len: word(8) & 0xffff_ffff,
        vecs: super::fs::iovecs(p, word(16), word(24))?,
    })
}

/// sendmsg: no ancillary data.
pub fn sendmsg(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    let message = message(p, a[1])?;
    if is_datagram(&file) {
        let data = datagram::gather(p, &message.vecs)?;
        let to = datagram::destination(p, message.name, message.name_len)?;
        return datagram::send(p, &file, &data, to, a[2] & MSG_DONTWAIT != 0);
    }
    let data = gather(p, &message.vecs)?;
    send_from(p, &file, &data, a[2])
}

/// sendmmsg: each message as sendmsg sends it, each one's length in its
/// msg_len; how many were sent (an error only if the first failed).
pub fn sendmmsg(p: &mut Process, a: &Args) -> SysResult {
    /// struct mmsghdr: a msghdr and the length sent.
    const MMSGHDR: u64 = 64;
    let count = a[2].min(1024);
    let mut sent = 0u64;
    while sent < count {
        let header = a[1] + sent * MMSGHDR;
        let flags = if sent == 0 { a[3] } else { a[3] | MSG_DONTWAIT };
        match sendmsg(p, &[a[0], header, flags, 0, 0, 0]) {
            Ok(n) => p.write_user(header + 56, &(n as u32).to_le_bytes())?,
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        sent += 1;
    }
    Ok(sent)
}

/// recvmsg: into the first buffers, no ancillary data.
pub fn recvmsg(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    let Message {
        name,
        name_len,
        vecs,
    } = message(p, a[1])?;
    if is_datagram(&file) {
        let dontwait = a[2] & MSG_DONTWAIT != 0;
        let received = datagram::recv(p, &file, &vecs, a[2], dontwait)?;
        if name != 0 {
            let bytes = sockaddr(received.from);
            p.write_user(name, &bytes[..(name_len as usize).min(bytes.len())])?;
            p.write_user(a[1] + 8, &(bytes.len() as u32).to_le_bytes())?;
        }
        p.write_user(a[1] + 40, &[0u8; 8])?;
        let flags = datagram::message_flags(&received) as u32;
        p.write_user(a[1] + 48, &flags.to_le_bytes())?;
        return Ok(datagram::received_length(&received, a[2]));
    }
    let mut total = 0u64;
    for (i, (base, len)) in vecs.into_iter().enumerate() {
        let flags = if i == 0 { a[2] } else { a[2] | MSG_DONTWAIT };
        match recv_into(p, &file, base, len, flags) {
            Ok(n) => {
                total += n;
                if (n as usize) < len {
                    break;
                }
            }
            Err(e) if total == 0 => return Err(e),
            Err(_) => break,
        }
    }
    // msg_controllen = 0, msg_flags = 0.
    p.write_user(a[1] + 40, &[0u8; 8])?;
    p.write_user(a[1] + 48, &[0u8; 4])?;
    Ok(total)
}

/// shutdown: SHUT_WR and SHUT_RDWR send FIN; SHUT_RD is accepted.
pub fn shutdown(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    if is_datagram(&file) {
        return Ok(0);
    }
    match a[1] {
        0 => Ok(0),
        1 | 2 => {
            with_socket(p, &file, |net, s| net.shutdown_write(s))?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn write_address(
    p: &mut Process,
    file: &FileRef,
    addr: u64,
    len_addr: u64,
    peer: bool,
) -> SysResult {
    let (local, remote) = if is_datagram(file) {
        datagram::endpoints(p, file)?
    } else {
        with_socket(p, file, |net, s| net.endpoints(s))
    };
    let endpoint = if peer {
        remote.ok_or(Errno::ENOTCONN)?
    } else {
        local
    };
    datagram::write_sockaddr(p, endpoint, addr, len_addr)?;
    Ok(0)
}

/// getsockname.
pub fn getsockname(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    write_address(p, &file, a[1], a[2], false)
}

/// getpeername.
pub fn getpeername(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    write_address(p, &file, a[1], a[2], true)
}

/// setsockopt: TCP_NODELAY is kept; the rest is accepted.
pub fn setsockopt(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    if a[1] == IPPROTO_TCP && a[2] == TCP_NODELAY && !is_datagram(&file) {
        let on = u32::from_le_bytes(p.read_array::<4>(a[3])?) != 0;
        with_socket(p, &file, |_, s| s.set_nodelay(on));
    }
    Ok(0)
}

/// getsockopt: SO_ERROR (and clears it), SO_TYPE, buffer sizes,
/// TCP_NODELAY; others read 0.
pub fn getsockopt(p: &mut Process, a: &Args) -> SysResult {
    let file = socket_file(p, a[0] as i32)?;
    let udp = is_datagram(&file);
    let value: u32 = match (a[1], a[2]) {
        (SOL_SOCKET, SO_ERROR) if udp => 0,
        (SOL_SOCKET, SO_ERROR) => {
            with_socket(p, &file, |net, s| net.take_error(s)).map_or(0, |e| e as i32 as u32)
        }
        (SOL_SOCKET, SO_TYPE) if udp => SOCK_DGRAM as u32,
        (SOL_SOCKET, SO_TYPE) => SOCK_STREAM as u32,
        (SOL_SOCKET, SO_SNDBUF | SO_RCVBUF) => crate::net::TCP_BUFFER_BYTES as u32,
        (IPPROTO_TCP, TCP_NODELAY) if udp => 0,
        (IPPROTO_TCP, TCP_NODELAY) => u32::from(with_socket(p, &file, |_, s| s.nodelay())),
        _ => 0,
    };
    let room = u32::from_le_bytes(p.read_array::<4>(a[4])?) as usize;
    p.write_user(a[3], &value.to_le_bytes()[..room.min(4)])?;
    p.write_user(a[4], &4u32.to_le_bytes())?;
    Ok(0)
}
