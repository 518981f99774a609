//! The socket syscalls on UDP sockets ([`crate::linux::datagram`]); the
//! entry points in [`super::net`] come here for a `SOCK_DGRAM` descriptor.
//! A datagram is sent or received whole in one call, gathered from or
//! scattered over the program's buffers.

use alloc::vec;
use alloc::vec::Vec;

use mayfly_linux::errno::{Errno, SysResult};
use smoltcp::wire::IpEndpoint;

use crate::linux::datagram::{Datagram, Received, MAX_PAYLOAD};
use crate::linux::net::{parse_sockaddr, sockaddr, Network};
use crate::linux::process::{File, FileRef, Process};

/// recvmsg's msg_flags: the datagram was longer than the buffers.
const MSG_TRUNC: u64 = 0x20;
const MSG_PEEK: u64 = 0x2;
const AF_UNSPEC: u16 = 0;

/// Runs `f` on the UDP socket behind `file` with the network.
fn with_datagram<R>(
    p: &mut Process,
    file: &FileRef,
    f: impl FnOnce(&mut Network, &mut Datagram) -> R,
) -> SysResult<R> {
    let mut borrowed = file.borrow_mut();
    let File::Datagram(socket) = &mut *borrowed else {
        return Err(Errno::ENOTSOCK);
    };
    Ok(f(&mut p.net, socket))
}

/// connect: names the peer; AF_UNSPEC forgets it.
pub fn connect(p: &mut Process, file: &FileRef, addr: &[u8]) -> SysResult {
    let peer = if addr.len() >= 2 && u16::from_le_bytes([addr[0], addr[1]]) == AF_UNSPEC {
        None
    } else {
        Some(parse_sockaddr(addr)?)
    };
    with_datagram(p, file, |net, s| net.udp_connect(s, peer))??;
    Ok(0)
}

/// bind: the local port.
pub fn bind(p: &mut Process, file: &FileRef, addr: &[u8]) -> SysResult {
    let local = parse_sockaddr(addr)?;
    with_datagram(p, file, |net, s| net.udp_bind(s, local.port))??;
    Ok(0)
}

/// Sends `data` as one datagram to `to` (or the peer); waits for room on a
/// blocking socket.
pub fn send(
    p: &mut Process,
    file: &FileRef,
    data: &[u8],
    to: Option<IpEndpoint>,
    dontwait: bool,
) -> SysResult {
    let n = super::net::blocking(p, file, dontwait, |p| {
        with_datagram(p, file, |net, s| net.udp_send(s, data, to))?
    })?;
    Ok(n as u64)
}

/// The destination in a sendto/sendmsg address, if one is given.
pub fn destination(p: &mut Process, addr: u64, len: u64) -> SysResult<Option<IpEndpoint>> {
    if addr == 0 || len == 0 {
        return Ok(None);
    }
    let bytes = p.read_vec(addr, (len as usize).min(128))?;
    Ok(Some(parse_sockaddr(&bytes)?))
}

/// Receives one datagram, scattered over `vecs`; waits for one on a
/// blocking socket.
pub fn recv(
    p: &mut Process,
    file: &FileRef,
    vecs: &[(u64, usize)],
    flags: u64,
    dontwait: bool,
) -> SysResult<Received> {
    let room: usize = vecs.iter().map(|(_, len)| *len).sum();
    let mut buf = vec![0u8; room.min(MAX_PAYLOAD)];
    let peek = flags & MSG_PEEK != 0;
    let received = super::net::blocking(p, file, dontwait, |p| {
        with_datagram(p, file, |net, s| net.udp_recv(s, &mut buf, peek))?
    })?;
    let mut at = 0;
    for &(base, len) in vecs {
        if at == received.copied {
            break;
        }
        let n = len.min(received.copied - at);
        p.write_user(base, &buf[at..at + n])?;
        at += n;
    }
    Ok(received)
}

/// Writes `endpoint` as a sockaddr_in at `addr`, its length at `len_addr`
/// (both program pointers; nothing when `addr` is null).
pub fn write_sockaddr(
    p: &mut Process,
    endpoint: IpEndpoint,
    addr: u64,
    len_addr: u64,
) -> SysResult<()> {
    if addr == 0 || len_addr == 0 {
        return Ok(());
    }
    let room = u32::from_le_bytes(p.read_array::<4>(len_addr)?) as usize;
    let bytes = sockaddr(endpoint);
    p.write_user(addr, &bytes[..room.min(bytes.len())])?;
    p.write_user(len_addr, &(bytes.len() as u32).to_le_bytes())?;
    Ok(())
}

/// recvfrom's answer: the bytes copied, or with MSG_TRUNC the datagram's
/// length, as Linux.
pub fn received_length(received: &Received, flags: u64) -> u64 {
    if flags & MSG_TRUNC != 0 {
        received.length as u64
    } else {
        received.copied as u64
    }
}

/// recvmsg's msg_flags for a datagram.
pub fn message_flags(received: &Received) -> u64 {
    if received.copied < received.length {
        MSG_TRUNC
    } else {
        0
    }
}

/// The local and peer endpoints.
pub fn endpoints(p: &mut Process, file: &FileRef) -> SysResult<(IpEndpoint, Option<IpEndpoint>)> {
    with_datagram(p, file, |net, s| net.udp_endpoints(s))
}

/// The program closed the last descriptor of `file`.
pub fn closed(p: &mut Process, file: &FileRef) {
    let _ = with_datagram(p, file, |net, s| net.udp_release(s));
}

/// Gathers the program's buffers into one datagram (at most one frame's
/// worth: a larger one is EMSGSIZE when sent).
pub fn gather(p: &mut Process, vecs: &[(u64, usize)]) -> SysResult<Vec<u8>> {
    let total: usize = vecs.iter().map(|(_, len)| *len).sum();
    if total > MAX_PAYLOAD {
        return Err(Errno::EMSGSIZE);
    }
    let mut data = vec![0u8; total];
    let mut at = 0;
    for &(base, len) in vecs {
        p.read_user(base, &mut data[at..at + len])?;
        at += len;
    }
    Ok(data)
}
