//! The program's network: TCP client sockets over the kernel's smoltcp
//! (UDP sockets are in [`super::datagram`]), epoll and eventfd, and the readiness they share with poll.
//!
//! Everything is polled: a blocking call turns the stack until its socket
//! is ready (the guest has nothing else to do meanwhile), a non-blocking
//! one turns it once and answers.

use alloc::collections::BTreeMap;
use alloc::rc::Weak;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use mayfly_linux::errno::Errno;
use mayfly_proto::boot::BootConfig;
use mayfly_proto::runtime::HEADER_MAX_MEMORY_BYTES;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};
use virtio_drivers::transport::mmio::MmioTransport;

use super::fatal;
use super::process::File;
use crate::net::{bring_up, now, VirtioPhy, TCP_BUFFER_BYTES};
use crate::{arch, clock};

/// epoll and poll event bits (Linux's values).
pub mod events {
    /// Readable.
    pub const IN: u32 = 0x001;
    /// Urgent data.
    pub const PRI: u32 = 0x002;
    /// Writable.
    pub const OUT: u32 = 0x004;
    /// An error.
    pub const ERR: u32 = 0x008;
    /// Hung up.
    pub const HUP: u32 = 0x010;
    /// The peer shut down its writing half.
    pub const RDHUP: u32 = 0x2000;
    /// Report once per readiness change.
    pub const ET: u32 = 1 << 31;
    /// Report once, then disable.
    pub const ONESHOT: u32 = 1 << 30;
}

/// The first local port; the rest follow, wrapping within the ephemeral
/// range.
const EPHEMERAL: core::ops::Range<u16> = 49152..65535;
/// How long, at most, [`Network::flush`] waits for sent data to be
/// acknowledged before the VM powers off.
const FLUSH_MICROS: u64 = 2_000_000;

/// The VM's network card under smoltcp, and every socket.
pub struct Network {
    phy: VirtioPhy,
    pub(super) iface: Interface,
    pub(super) sockets: SocketSet<'static>,
    next_port: u16,
    /// Sockets the program closed, kept until their data is sent.
    closing: Vec<SocketHandle>,
    /// The runtime API's endpoint.
    runtime_api: IpEndpoint,
}

impl Network {
    /// Brings the card up with the boot configuration's address.
    pub fn new(nic: MmioTransport<'static>, config: &BootConfig) -> Network {
        let (phy, mut iface) =
            match bring_up(nic, config.guest_mac, config.guest_ip, config.prefix_len) {
                Ok(up) => up,
                Err(e) => fatal(format_args!("{e}")),
            };
        // Every other network is through the host, which relays what the
        // function's egress policy allows and refuses the rest.
        let _ = iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Address::from(config.host_ip));
        Network {
            phy,
            iface,
            sockets: SocketSet::new(Vec::new()),
            next_port: EPHEMERAL.start + (arch::rdtsc() % 8192) as u16,
            closing: Vec::new(),
            runtime_api: IpEndpoint::new(
                IpAddress::Ipv4(Ipv4Address::from(config.host_ip)),
                config.api_port,
            ),
        }
    }

    /// Turns the stack once: frames in and out, timers; forgets closed
    /// sockets whose data is gone.
    pub fn poll(&mut self) {
        self.iface.poll(now(), &mut self.phy, &mut self.sockets);
        let sockets = &mut self.sockets;
        self.closing.retain(|&h| {
            let done = !sockets.get::<tcp::Socket>(h).is_open();
            if done {
                sockets.remove(h);
            }
            !done
        });
    }

    /// Waits (boundedly) until everything the program sent has been
    /// acknowledged, so that powering off loses nothing.
    pub fn flush(&mut self) {
        let start = clock::micros();
        loop {
            self.poll();
            let pending = self.sockets.iter().any(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => t.send_queue() > 0 && t.may_send(),
                #[allow(unreachable_patterns)]
                _ => false,
            });
            if !pending || clock::micros() - start > FLUSH_MICROS {
                return;
            }
            arch::pause();
        }
    }

    fn tcp(&mut self, handle: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(handle)
    }

    pub(super) fn port(&mut self) -> u16 {
        let port = self.next_port;
        self.next_port = if port >= EPHEMERAL.end - 1 {
            EPHEMERAL.start
        } else {
            port + 1
        };
        port
    }
}

/// A TCP socket as the program sees it.
pub struct Socket {
    handle: Option<SocketHandle>,
    /// O_NONBLOCK.
    pub nonblocking: bool,
    /// An error not yet read with SO_ERROR.
    pending_error: Option<Errno>,
    /// Whether connect was called and the result not yet seen.
    connecting: bool,
    local_port: u16,
    remote: Option<IpEndpoint>,
    nodelay: bool,
    /// Counts the operations that drained the socket or filled it (EAGAIN,
    /// or a short read or write): an edge-triggered epoll reports the
    /// socket again once it is ready after one, as Linux does when new data
    /// or room arrives.
    pub wouldblock: u64,
    /// On a connection to the runtime API: where the next request starts.
    tap: Option<ApiTap>,
    /// Bytes the kernel adds to the stream, sent before the program's next.
    injected: Vec<u8>,
}

/// The kernel's view of the program's HTTP requests to the runtime API: a
/// request begins with the first byte written after a response arrived
/// (HTTP/1.1 clients do not pipeline), and the kernel adds one header after
/// its request line, the VM's peak memory use
/// ([`HEADER_MAX_MEMORY_BYTES`]), which is how the host reports
/// `Max Memory Used` for a program that does not know it runs in Mayfly.
struct ApiTap {
    /// The next byte written starts a request.
    at_start: bool,
    /// The request line has begun but not ended.
    in_request_line: bool,
}

impl Socket {
    /// TCP_NODELAY. Nagle stays off either way (see [`Network::connect`]):
    /// the flag is only remembered, for getsockopt.
    pub fn set_nodelay(&mut self, on: bool) {
        self.nodelay = on;
    }

    /// Whether TCP_NODELAY is on.
    pub fn nodelay(&self) -> bool {
        self.nodelay
    }

    /// Whether a connection attempt is under way.
    pub fn connecting(&self) -> bool {
        self.connecting && self.handle.is_some()
    }

    /// A new, unconnected socket.
    pub fn new(nonblocking: bool) -> Socket {
        Socket {
            handle: None,
            nonblocking,
            pending_error: None,
            connecting: false,
            local_port: 0,
            remote: None,
            nodelay: false,
            wouldblock: 0,
            tap: None,
            injected: Vec::new(),
        }
    }
}

/// An eventfd counter.
pub struct EventFd {
    /// The count.
    pub counter: u64,
    /// Reads that found it empty and writes (each an edge for epoll, see
    /// [`Socket::wouldblock`]).
    pub wouldblock: u64,
    /// O_NONBLOCK.
    pub nonblocking: bool,
    /// EFD_SEMAPHORE: reads take one.
    pub semaphore: bool,
}

/// One descriptor an epoll instance watches.
pub struct Interest {
    /// The file (weak: closing the last descriptor removes it, as Linux).
    pub file: Weak<RefCell<File>>,
    /// The events asked for, with EPOLLET/EPOLLONESHOT.
    pub events: u32,
    /// What the program gets back.
    pub data: u64,
    /// What was ready when last reported (edge-triggered: only new bits
    /// are reported again, or all of them after the file was found not
    /// ready).
    pub reported: u32,
    /// The file's not-ready count when last reported.
    pub wouldblock: u64,
    /// Disabled by EPOLLONESHOT after firing.
    pub disabled: bool,
}

/// An epoll instance.
#[derive(Default)]
pub struct Epoll {
    /// Watched descriptors, by number.
    pub interests: BTreeMap<i32, Interest>,
}

/// The sockaddr_in for an endpoint.
pub fn sockaddr(endpoint: IpEndpoint) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..2].copy_from_slice(&2u16.to_le_bytes());
    out[2..4].copy_from_slice(&endpoint.port.to_be_bytes());
    let IpAddress::Ipv4(v4) = endpoint.addr;
    out[4..8].copy_from_slice(&v4.octets());
    out
}

/// Parses a sockaddr_in.
pub fn parse_sockaddr(bytes: &[u8]) -> Result<IpEndpoint, Errno> {
    if bytes.len() < 2 {
        return Err(Errno::EINVAL);
    }
    match u16::from_le_bytes([bytes[0], bytes[1]]) {
        2 if bytes.len() >= 8 => {
            let port = u16::from_be_bytes([bytes[2], bytes[3]]);
            let addr = Ipv4Address::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            Ok(IpEndpoint::new(IpAddress::Ipv4(addr), port))
        }
        2 => Err(Errno::EINVAL),
        _ => Err(Errno::EAFNOSUPPORT),
    }
}

impl Network {
    /// Starts connecting `socket` to `remote`.
    pub fn connect(&mut self, socket: &mut Socket, remote: IpEndpoint) -> Result<(), Errno> {
        if socket.handle.is_some() {
            return Err(if socket.connecting {
                Errno::EALREADY
            } else {
                Errno::EISCONN
            });
        }
        if remote.port == 0 {
            return Err(Errno::ECONNREFUSED);
        }
        let mut tcp = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER_BYTES]),
            tcp::SocketBuffer::new(vec![0; TCP_BUFFER_BYTES]),
        );
        // Request/response traffic: no delayed ACKs, and Nagle only if the
        // program asks for it (Linux's default is on, but every runtime
        // client sets TCP_NODELAY or writes whole messages).
        tcp.set_ack_delay(None);
        tcp.set_nagle_enabled(false);
        let port = if socket.local_port != 0 {
            socket.local_port
        } else {
            self.port()
        };
        tcp.connect(self.iface.context(), remote, port)
            .map_err(|_| Errno::EADDRNOTAVAIL)?;
        socket.handle = Some(self.sockets.add(tcp));
        socket.local_port = port;
        socket.remote = Some(remote);
        socket.connecting = true;
        if remote == self.runtime_api {
            socket.tap = Some(ApiTap {
                at_start: true,
                in_request_line: false,
            });
        }
        self.poll();
        Ok(())
    }

    /// Whether `socket`'s connection attempt has settled: `Ok(true)` once
    /// established, an error if refused or reset, `Ok(false)` still going.
    pub fn connect_done(&mut self, socket: &mut Socket) -> Result<bool, Errno> {
        let Some(h) = socket.handle else {
            return Err(Errno::ENOTCONN);
        };
        let tcp = self.tcp(h);
        match tcp.state() {
            tcp::State::SynSent | tcp::State::SynReceived => Ok(false),
            tcp::State::Closed | tcp::State::TimeWait if socket.connecting => {
                socket.connecting = false;
                Err(Errno::ECONNREFUSED)
            }
            _ => {
                socket.connecting = false;
                Ok(true)
            }
        }
    }

    /// Readiness of a socket (epoll bits).
    pub fn socket_events(&mut self, socket: &mut Socket) -> u32 {
        let Some(h) = socket.handle else {
            return events::OUT | events::HUP;
        };
        if socket.connecting {
            match self.connect_done(socket) {
                Ok(false) => return 0,
                Ok(true) => {}
                Err(e) => {
                    socket.pending_error = Some(e);
                    return events::ERR | events::HUP;
                }
            }
        }
        let tcp = self.tcp(h);
        let mut ready = 0;
        if tcp.can_recv() {
            ready |= events::IN;
        }
        if !tcp.may_recv() {
            ready |= events::IN | events::RDHUP;
        }
        if tcp.can_send() {
            ready |= events::OUT;
        }
        if !tcp.is_open() {
            ready |= events::HUP;
        }
        ready
    }

    /// Receives what has arrived into `out`: `Ok(0)` at the end of the
    /// stream, `Err(EAGAIN)` when nothing is there yet.
    pub fn recv(&mut self, socket: &mut Socket, out: &mut [u8]) -> Result<usize, Errno> {
        let Some(h) = socket.handle else {
            return Err(Errno::ENOTCONN);
        };
        if socket.connecting && !self.connect_done(socket)? {
            return Err(Errno::EAGAIN);
        }
        let tcp = self.tcp(h);
        if tcp.can_recv() {
            // The receive buffer is a ring: take both of its pieces, so that
            // a short read means the buffer is empty, as on Linux (tokio
            // relies on it: after a short read it waits for the next edge).
            let mut n = 0;
            while n < out.len() && tcp.can_recv() {
                let got = tcp
                    .recv_slice(&mut out[n..])
                    .map_err(|_| Errno::ECONNRESET)?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            if n < out.len() {
                socket.wouldblock += 1;
            }
            if let Some(tap) = &mut socket.tap {
                tap.at_start = n > 0 || tap.at_start;
            }
            return Ok(n);
        }
        if !tcp.may_recv() {
            return Ok(0);
        }
        socket.wouldblock += 1;
        Err(Errno::EAGAIN)
    }

    /// Queues what fits of `data`: `Err(EAGAIN)` when nothing fits now.
    pub fn send(&mut self, socket: &mut Socket, data: &[u8]) -> Result<usize, Errno> {
        let Some(h) = socket.handle else {
            return Err(Errno::ENOTCONN);
        };
        if socket.connecting && !self.connect_done(socket)? {
            return Err(Errno::EAGAIN);
        }
        let tcp = self.tcp(h);
        if !tcp.may_send() {
            return Err(if tcp.is_open() {
                Errno::EPIPE
            } else {
                Errno::ECONNRESET
            });
        }
        if !socket.injected.is_empty() {
            let n = tcp.send_slice(&socket.injected).map_err(|_| Errno::EPIPE)?;
            socket.injected.drain(..n);
            if !socket.injected.is_empty() {
                socket.wouldblock += 1;
                return Err(Errno::EAGAIN);
            }
        }
        // On the runtime API's connection, a request's line is sent up to
        // its end first, so that the header can follow it.
        let mut take = data.len();
        if let Some(tap) = &mut socket.tap {
            if tap.at_start && !data.is_empty() {
                tap.at_start = false;
                tap.in_request_line = true;
            }
            if tap.in_request_line {
                if let Some(end) = data.iter().position(|&b| b == b'\n') {
                    take = end + 1;
                }
            }
        }
        let n = tcp.send_slice(&data[..take]).map_err(|_| Errno::EPIPE)?;
        if n == 0 {
            socket.wouldblock += 1;
            return Err(Errno::EAGAIN);
        }
        if let Some(tap) = &mut socket.tap {
            if tap.in_request_line && n == take && data[take - 1] == b'\n' {
                tap.in_request_line = false;
                socket.injected = alloc::format!(
                    "{HEADER_MAX_MEMORY_BYTES}: {}\r\n",
                    crate::heap::max_used_bytes()
                )
                .into_bytes();
                let n = tcp.send_slice(&socket.injected).unwrap_or(0);
                socket.injected.drain(..n);
            }
        }
        if n < data.len() {
            // A short write: the program waits for room, the next edge.
            socket.wouldblock += 1;
        }
        self.poll();
        Ok(n)
    }

    /// Half-closes the sending side (FIN after the queued data).
    pub fn shutdown_write(&mut self, socket: &mut Socket) -> Result<(), Errno> {
        let h = socket.handle.ok_or(Errno::ENOTCONN)?;
        self.tcp(h).close();
        self.poll();
        Ok(())
    }

    /// The program closed its last descriptor of `socket`: its data still
    /// leaves, then the connection closes.
    pub fn release(&mut self, socket: &mut Socket) {
        if let Some(h) = socket.handle.take() {
            self.tcp(h).close();
            self.closing.push(h);
            self.poll();
        }
    }

    /// The socket's pending error (SO_ERROR), cleared by reading it.
    pub fn take_error(&mut self, socket: &mut Socket) -> Option<Errno> {
        if socket.connecting {
            if let Err(e) = self.connect_done(socket) {
                return Some(e);
            }
        }
        socket.pending_error.take()
    }

    /// Local and remote endpoints.
    pub fn endpoints(&mut self, socket: &Socket) -> (IpEndpoint, Option<IpEndpoint>) {
        (self.local_endpoint(socket.local_port), socket.remote)
    }

    /// The VM's address with `port`.
    pub(super) fn local_endpoint(&self, port: u16) -> IpEndpoint {
        let local_ip = self
            .iface
            .ipv4_addr()
            .map(IpAddress::Ipv4)
            .unwrap_or(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED));
        IpEndpoint::new(local_ip, port)
    }

    /// Sets the local port (bind).
    pub fn bind(&mut self, socket: &mut Socket, port: u16) -> Result<(), Errno> {
        if socket.handle.is_some() {
            return Err(Errno::EINVAL);
        }
        socket.local_port = port;
        Ok(())
    }
}
