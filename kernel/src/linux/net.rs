//! The program's network: TCP client sockets over the kernel's smoltcp,
//! epoll and eventfd, and the readiness they share with poll.
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
    iface: Interface,
    sockets: SocketSet<'static>,
    next_port: u16,
    /// Sockets the program closed, kept until their data is sent.
    closing: Vec<SocketHandle>,
}

impl Network {
    /// Brings the card up with the boot configuration's address.
    pub fn new(nic: MmioTransport<'static>, config: &BootConfig) -> Network {
        let (phy, iface) = match bring_up(nic, config.guest_mac, config.guest_ip, config.prefix_len)
        {
            Ok(up) => up,
            Err(e) => fatal(format_args!("{e}")),
        };
        Network {
            phy,
            iface,
            sockets: SocketSet::new(Vec::new()),
            next_port: EPHEMERAL.start + (arch::rdtsc() % 8192) as u16,
            closing: Vec::new(),
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

    fn port(&mut self) -> u16 {
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
}

impl Socket {
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
        }
    }
}

/// An eventfd counter.
pub struct EventFd {
    /// The count.
    pub counter: u64,
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
    /// are reported again).
    pub reported: u32,
    /// Disabled by EPOLLONESHOT after firing.
    pub disabled: bool,
}

/// An epoll instance.
#[derive(Default)]
pub struct Epoll {
    /// Watched descriptors, by number.
    pub interests: BTreeMap<i32, Interest>,
}

/// Why an operation on a socket cannot go on now.
pub enum Wait {
    /// Try again after the stack turned (blocking sockets).
    Again,
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
            return tcp.recv_slice(out).map_err(|_| Errno::ECONNRESET);
        }
        if !tcp.may_recv() {
            return Ok(0);
        }
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
        let n = tcp.send_slice(data).map_err(|_| Errno::EPIPE)?;
        if n == 0 {
            return Err(Errno::EAGAIN);
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
        let local_ip = self
            .iface
            .ipv4_addr()
            .map(IpAddress::Ipv4)
            .unwrap_or(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED));
        (IpEndpoint::new(local_ip, socket.local_port), socket.remote)
    }

    /// Sets the local port (bind).
    pub fn bind(&mut self, socket: &mut Socket, port: u16) -> Result<(), Errno> {
        if socket.handle.is_some() {
            return Err(Errno::EINVAL);
        }
        socket.local_port = port;
        Ok(())
    }

    /// TCP_NODELAY.
    pub fn set_nodelay(&mut self, socket: &mut Socket, on: bool) {
        // Nagle stays off either way (see `connect`): the flag is only
        // remembered, for getsockopt.
        socket.nodelay = on;
    }

    /// Whether TCP_NODELAY is on.
    pub fn nodelay(socket: &Socket) -> bool {
        socket.nodelay
    }
}
