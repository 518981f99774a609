//! UDP sockets over the kernel's smoltcp, as Linux has them for a client:
//! bound to an ephemeral port on first use (or by `bind`), optionally
//! connected to one peer (whose datagrams are then the only ones taken),
//! each datagram whole or not at all. What the program sends beyond the
//! VM's own network goes through the host, which relays it under the
//! function's egress policy; the host's DNS answers on port 53.
//!
//! One datagram fits one Ethernet frame ([`MAX_PAYLOAD`]): the kernel does
//! not fragment, and a larger send fails with EMSGSIZE, as on Linux with
//! `IP_PMTUDISC_DO`.

use alloc::vec;

use mayfly_linux::errno::Errno;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

use super::net::{events, Network};

/// The largest payload of one datagram: a 1500-byte MTU less the IPv4 and
/// UDP headers.
pub const MAX_PAYLOAD: usize = 1500 - 20 - 8;
/// Datagrams (and bytes) a socket holds before newer ones are dropped, as
/// a full receive buffer does on Linux.
const RX_DATAGRAMS: usize = 32;
const RX_BYTES: usize = 64 * 1024;
/// Datagrams (and bytes) queued to send before `send` waits.
const TX_DATAGRAMS: usize = 16;
const TX_BYTES: usize = 32 * 1024;

/// A UDP socket as the program sees it.
pub struct Datagram {
    /// smoltcp's socket, once bound.
    handle: Option<SocketHandle>,
    /// O_NONBLOCK.
    pub nonblocking: bool,
    local_port: u16,
    /// The peer `connect` named: the default destination, and the only
    /// source taken.
    peer: Option<IpEndpoint>,
    /// Operations that found the socket empty or full (edges for epoll,
    /// as [`super::net::Socket::wouldblock`]).
    pub wouldblock: u64,
}

/// One datagram received.
pub struct Received {
    /// Bytes copied to the program.
    pub copied: usize,
    /// The datagram's whole length (more than `copied` if truncated).
    pub length: usize,
    /// Who sent it.
    pub from: IpEndpoint,
}

impl Datagram {
    /// A new, unbound socket.
    pub fn new(nonblocking: bool) -> Datagram {
        Datagram {
            handle: None,
            nonblocking,
            local_port: 0,
            peer: None,
            wouldblock: 0,
        }
    }
}

impl Network {
    fn udp(&mut self, handle: SocketHandle) -> &mut udp::Socket<'static> {
        self.sockets.get_mut::<udp::Socket>(handle)
    }

    /// Binds `socket` to `port` (0: an ephemeral one); EINVAL if it is
    /// bound already, EADDRINUSE if another socket has the port.
    pub fn udp_bind(&mut self, socket: &mut Datagram, port: u16) -> Result<(), Errno> {
        if socket.handle.is_some() {
            return Err(Errno::EINVAL);
        }
        let port = if port == 0 {
            self.free_udp_port()?
        } else {
            port
        };
        if self.udp_port_taken(port) {
            return Err(Errno::EADDRINUSE);
        }
        let mut udp = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; RX_DATAGRAMS],
                vec![0; RX_BYTES],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; TX_DATAGRAMS],
                vec![0; TX_BYTES],
            ),
        );
        udp.bind(port).map_err(|_| Errno::EINVAL)?;
        socket.handle = Some(self.sockets.add(udp));
        socket.local_port = port;
        Ok(())
    }

    fn udp_port_taken(&self, port: u16) -> bool {
        self.sockets.iter().any(|(_, s)| match s {
            smoltcp::socket::Socket::Udp(u) => u.endpoint().port == port,
            #[allow(unreachable_patterns)]
            _ => false,
        })
    }

    fn free_udp_port(&mut self) -> Result<u16, Errno> {
        for _ in 0..64 {
            let port = self.port();
            if !self.udp_port_taken(port) {
                return Ok(port);
            }
        }
        Err(Errno::EADDRINUSE)
    }

    fn udp_bound(&mut self, socket: &mut Datagram) -> Result<SocketHandle, Errno> {
        if socket.handle.is_none() {
            self.udp_bind(socket, 0)?;
        }
        socket.handle.ok_or(Errno::EINVAL)
    }

    /// `connect`: `Some` names the peer (binding the socket if it is not),
    /// `None` (AF_UNSPEC) forgets it.
    pub fn udp_connect(
        &mut self,
        socket: &mut Datagram,
        peer: Option<IpEndpoint>,
    ) -> Result<(), Errno> {
        match peer {
            None => socket.peer = None,
            Some(peer) => {
                if peer.port == 0 {
                    return Err(Errno::EINVAL);
                }
                self.udp_bound(socket)?;
                socket.peer = Some(peer);
            }
        }
        Ok(())
    }

    /// Queues one datagram of `data` to `to`, or to the peer: its length,
    /// or `Err(EAGAIN)` while the queue is full.
    pub fn udp_send(
        &mut self,
        socket: &mut Datagram,
        data: &[u8],
        to: Option<IpEndpoint>,
    ) -> Result<usize, Errno> {
        let to = to.or(socket.peer).ok_or(Errno::EDESTADDRREQ)?;
        if to.port == 0 {
            return Err(Errno::EINVAL);
        }
        if data.len() > MAX_PAYLOAD {
            return Err(Errno::EMSGSIZE);
        }
        let handle = self.udp_bound(socket)?;
        let udp = self.udp(handle);
        if !udp.can_send() {
            self.poll();
        }
        match self.udp(handle).send_slice(data, to) {
            Ok(()) => {}
            Err(udp::SendError::BufferFull) => {
                socket.wouldblock += 1;
                return Err(Errno::EAGAIN);
            }
            Err(udp::SendError::Unaddressable) => return Err(Errno::ENETUNREACH),
        }
        self.poll();
        Ok(data.len())
    }

    /// Takes the next datagram (from the peer, if connected) into `out`,
    /// the rest of it dropped if `out` is short; `peek` leaves it queued.
    /// `Err(EAGAIN)` while none is there.
    pub fn udp_recv(
        &mut self,
        socket: &mut Datagram,
        out: &mut [u8],
        peek: bool,
    ) -> Result<Received, Errno> {
        let Some(handle) = socket.handle else {
            // Never bound: nothing can arrive (Linux waits forever too).
            socket.wouldblock += 1;
            return Err(Errno::EAGAIN);
        };
        let peer = socket.peer;
        let udp = self.udp(handle);
        loop {
            let next = if peek {
                udp.peek().map(|(data, meta)| (data, meta.endpoint))
            } else {
                udp.recv().map(|(data, meta)| (data, meta.endpoint))
            };
            let Ok((data, from)) = next else {
                socket.wouldblock += 1;
                return Err(Errno::EAGAIN);
            };
            if peer.is_some_and(|peer| peer != from) {
                if peek {
                    // Drop it, then look at the next.
                    let _ = udp.recv();
                }
                continue;
            }
            let copied = data.len().min(out.len());
            out[..copied].copy_from_slice(&data[..copied]);
            return Ok(Received {
                copied,
                length: data.len(),
                from,
            });
        }
    }

    /// Readiness (epoll bits): readable with a datagram queued, writable
    /// while the send queue has room.
    pub fn udp_events(&mut self, socket: &mut Datagram) -> u32 {
        let Some(handle) = socket.handle else {
            return events::OUT;
        };
        let udp = self.udp(handle);
        let mut ready = 0;
        if udp.can_recv() {
            ready |= events::IN;
        }
        if udp.can_send() {
            ready |= events::OUT;
        }
        ready
    }

    /// The program closed its last descriptor: what is queued leaves, then
    /// the socket goes.
    pub fn udp_release(&mut self, socket: &mut Datagram) {
        if let Some(handle) = socket.handle.take() {
            self.poll();
            self.sockets.remove(handle);
        }
    }

    /// Local and remote endpoints (getsockname, getpeername).
    pub fn udp_endpoints(&mut self, socket: &Datagram) -> (IpEndpoint, Option<IpEndpoint>) {
        (self.local_endpoint(socket.local_port), socket.peer)
    }
}
