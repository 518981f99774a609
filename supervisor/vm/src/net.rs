//! The host side of a VM's private network.
//!
//! The VM's NIC backend is one end of an `AF_UNIX`/`SOCK_DGRAM` socket pair
//! (each datagram one Ethernet frame); this module runs a smoltcp stack on
//! the other end with the host's address and one service: the runtime API on
//! TCP port 9001. Without egress there is no routing and no other listener,
//! so the VM can reach nothing else: ARP for other addresses goes
//! unanswered, other TCP ports get a reset, everything else is dropped.
//! With egress ([`HostStack::with_egress`]), the stack takes TCP for any
//! address and [`crate::egress`] relays what the function's policy allows.
//!
//! What one VM can cost the host here is bounded: [`MAX_CONNECTIONS`]
//! sockets with fixed buffers, at most [`NetLimits::max_connections`]
//! connections and [`NetLimits::max_frames`] frames per VM (beyond them
//! the invocation ends with [`ERROR_LIMIT`](crate::runtime_api::ERROR_LIMIT)),
//! and a connection is not read while its answer is unsent.

use std::collections::VecDeque;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

use smoltcp::iface::{Config, Interface, PollResult, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration as NetDuration, Instant as NetInstant};
use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};
use thiserror::Error;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::mpsc::UnboundedSender;

use crate::egress::{Egress, EgressConfig, FrameKind, Metered};
use crate::runtime_api::{ApiEvent, Connection, Now, RuntimeApi, Violation};
use crate::sys;

/// The host side's MAC address on every VM's private network.
pub const HOST_MAC: [u8; 6] = mayfly_proto::net::HOST_MAC;
/// Receive and send buffer of each TCP socket: large enough for a 6 MB
/// payload to stream at full speed.
pub const TCP_BUFFER_BYTES: usize = 256 * 1024;
/// Listening sockets: the guest needs one connection; a second lets it
/// reconnect while the first is still closing.
pub const MAX_CONNECTIONS: usize = 2;
/// Connections a VM may open to the runtime API in its life: a runtime needs
/// one, or one per request if it does not keep connections alive.
pub const MAX_ACCEPTED_CONNECTIONS: u32 = 64;
/// Frames a VM may send in its life. A 6 MB event and a 6 MB response take
/// about 10,000 (data one way, acknowledgements the other); anything far
/// beyond is a flood, which costs the host a read and a parse per frame.
pub const MAX_GUEST_FRAMES: u64 = 32_768;
/// Socket buffer sizes of the socket pair: enough frames in flight for a
/// 6 MB payload to stream without drops.
pub const PAIR_SOCKET_BUFFER: usize = 1024 * 1024;
/// An Ethernet frame for a 1500-byte MTU, without the FCS.
const MAX_FRAME: usize = 1514;

/// Why the network could not be set up or failed.
#[derive(Debug, Error)]
pub enum NetError {
    /// Creating or configuring the socket pair failed.
    #[error("cannot create the VM's network socket pair: {0}")]
    SocketPair(io::Error),
    /// Registering the socket with the async runtime failed.
    #[error("cannot register the VM's network socket: {0}")]
    Register(io::Error),
    /// Waiting for frames failed.
    #[error("the VM's network socket failed: {0}")]
    Io(io::Error),
}

/// Creates the frame socket pair: (the supervisor's end, nonblocking; the
/// VM's end, blocking, close-on-exec).
pub fn socket_pair() -> Result<(OwnedFd, OwnedFd), NetError> {
    let (host, guest) = sys::datagram_socket_pair().map_err(NetError::SocketPair)?;
    for fd in [&host, &guest] {
        sys::set_socket_buffers(fd.as_fd(), PAIR_SOCKET_BUFFER).map_err(NetError::SocketPair)?;
    }
    sys::set_nonblocking(host.as_fd(), true).map_err(NetError::SocketPair)?;
    Ok((host, guest))
}

/// What one VM may use of its network in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetLimits {
    /// Connections accepted.
    pub max_connections: u32,
    /// Frames received from the VM.
    pub max_frames: u64,
}

impl Default for NetLimits {
    fn default() -> Self {
        NetLimits {
            max_connections: MAX_ACCEPTED_CONNECTIONS,
            max_frames: MAX_GUEST_FRAMES,
        }
    }
}

/// A smoltcp device over a nonblocking datagram socket: one datagram, one
/// Ethernet frame.
#[derive(Debug)]
pub struct FrameSocket {
    fd: AsyncFd<OwnedFd>,
    rx: Box<[u8; MAX_FRAME]>,
    /// Frames received so far (with egress, those for the runtime API and
    /// ARP: relayed traffic is bounded by TCP and the connection cap).
    frames: u64,
    /// Beyond it frames are read and dropped unseen.
    max_frames: u64,
    /// With egress: the runtime API's address and port, whose SYNs are not
    /// held.
    egress_from: Option<(Ipv4Addr, u16)>,
    /// SYNs for egress, held from the stack until the egress decides.
    held: Vec<Vec<u8>>,
    /// UDP datagrams, set aside for the egress.
    datagrams: Vec<Vec<u8>>,
    /// Frames the egress gives back, taken before the socket's.
    inject: VecDeque<Vec<u8>>,
}

impl FrameSocket {
    /// Wraps a nonblocking datagram socket. Must be called inside a tokio
    /// runtime.
    pub fn new(fd: OwnedFd) -> Result<FrameSocket, NetError> {
        let fd = sys::register(fd, Interest::READABLE)
            .map_err(|e| NetError::Register(e.into_parts().1))?;
        Ok(FrameSocket {
            fd,
            rx: Box::new([0; MAX_FRAME]),
            frames: 0,
            max_frames: u64::MAX,
            egress_from: None,
            held: Vec::new(),
            datagrams: Vec::new(),
            inject: VecDeque::new(),
        })
    }

    /// Sends one frame to the VM as it is; a full socket drops it, as a
    /// link would.
    fn send_frame(&self, frame: &[u8]) {
        if let Err(error) = sys::send_datagram(self.fd.get_ref().as_fd(), frame) {
            tracing::trace!(%error, "frame to the VM dropped");
        }
    }

    /// Waits until a frame may be readable.
    async fn readable(&self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        // Every wake-up is followed by draining the socket until EAGAIN
        // (Interface::poll reads until the device has nothing), so no
        // readiness is lost by clearing it first.
        guard.clear_ready();
        Ok(())
    }
}

/// A received frame.
pub struct RxToken<'a>(&'a [u8]);

/// Permission to send one frame.
pub struct TxToken<'a>(BorrowedFd<'a>);

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = [0u8; MAX_FRAME];
        let mut large = Vec::new();
        let buf = if len <= MAX_FRAME {
            &mut frame[..len]
        } else {
            large.resize(len, 0);
            &mut large[..]
        };
        let result = f(buf);
        tracing::trace!(len = buf.len(), "frame to the VM");
        if let Err(error) = sys::send_datagram(self.0, buf) {
            // EAGAIN: the VM is not keeping up; dropping the frame is what a
            // real link does, and TCP retransmits. ECONNREFUSED: QEMU is gone.
            tracing::trace!(%error, "frame to the VM dropped");
        }
        result
    }
}

impl phy::Device for FrameSocket {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: NetInstant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        let fd = self.fd.get_ref().as_fd();
        if let Some(frame) = self.inject.pop_front() {
            let n = frame.len().min(MAX_FRAME);
            self.rx[..n].copy_from_slice(&frame[..n]);
            return Some((RxToken(&self.rx[..n]), TxToken(fd)));
        }
        loop {
            let n = match sys::recv_datagram(fd, &mut self.rx[..]) {
                Ok(n) => n,
                Err(error) => {
                    if error.kind() != io::ErrorKind::WouldBlock {
                        tracing::debug!(%error, "receiving a frame from the VM failed");
                    }
                    return None;
                }
            };
            tracing::trace!(len = n, "frame from the VM");
            if let Some((host, api_port)) = self.egress_from {
                let frame = &self.rx[..n.min(MAX_FRAME)];
                match crate::egress::classify(frame, host, api_port) {
                    FrameKind::EgressSyn => {
                        self.frames += 1;
                        if self.frames <= self.max_frames {
                            self.held.push(frame.to_vec());
                        }
                        continue;
                    }
                    FrameKind::Datagram => {
                        self.frames += 1;
                        if self.frames <= self.max_frames
                            && self.datagrams.len() < crate::egress::udp::MAX_HELD
                        {
                            self.datagrams.push(frame.to_vec());
                        }
                        continue;
                    }
                    FrameKind::Relayed => {
                        return Some((RxToken(&self.rx[..n.min(MAX_FRAME)]), TxToken(fd)));
                    }
                    FrameKind::Counted => {}
                }
            }
            self.frames += 1;
            if self.frames > self.max_frames {
                // Still read, so that the socket does not stay readable and
                // wake the stack for nothing; the invocation is ending.
                continue;
            }
            if n > MAX_FRAME {
                tracing::debug!(len = n, "oversized frame from the VM dropped");
                continue;
            }
            return Some((RxToken(&self.rx[..n]), TxToken(fd)));
        }
    }

    fn transmit(&mut self, _now: NetInstant) -> Option<TxToken<'_>> {
        Some(TxToken(self.fd.get_ref().as_fd()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps
    }
}

/// Addresses of the host side.
#[derive(Debug, Clone, Copy)]
pub struct HostAddress {
    /// The host's IPv4 address on the private network.
    pub ip: [u8; 4],
    /// The network's prefix length.
    pub prefix_len: u8,
    /// The runtime API's TCP port.
    pub port: u16,
}

/// A listening socket of the runtime API and the connection it carries.
struct ApiSocket {
    handle: SocketHandle,
    connection: Option<Connection>,
    /// Whether the socket has listened since it was last reset.
    listening: bool,
}

/// The host's TCP/IP stack for one VM, serving the runtime API.
pub struct HostStack {
    device: FrameSocket,
    iface: Interface,
    sockets: SocketSet<'static>,
    listeners: Vec<ApiSocket>,
    port: u16,
    epoch: Instant,
    limits: NetLimits,
    /// Connections accepted so far.
    accepted: u32,
    /// What the guest may reach beyond the runtime API, if anything.
    egress: Option<Egress>,
}

impl HostStack {
    /// A stack on `fd` (the supervisor's end of the socket pair) listening
    /// on `address`.
    pub fn new(fd: OwnedFd, address: HostAddress) -> Result<HostStack, NetError> {
        HostStack::with_limits(fd, address, NetLimits::default())
    }

    /// A stack as [`new`](Self::new) makes, with other limits.
    pub fn with_limits(
        fd: OwnedFd,
        address: HostAddress,
        limits: NetLimits,
    ) -> Result<HostStack, NetError> {
        let mut device = FrameSocket::new(fd)?;
        device.max_frames = limits.max_frames;
        let epoch = Instant::now();
        let mut config = Config::new(EthernetAddress(HOST_MAC).into());
        config.random_seed = rand_u64();
        let mut iface = Interface::new(config, &mut device, NetInstant::from_micros(0));
        let [a, b, c, d] = address.ip;
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddress::v4(a, b, c, d), address.prefix_len));
        });
        let mut sockets = SocketSet::new(Vec::new());
        let listeners = (0..MAX_CONNECTIONS)
            .map(|_| {
                let socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; TCP_BUFFER_BYTES]),
                    tcp::SocketBuffer::new(vec![0; TCP_BUFFER_BYTES]),
                );
                ApiSocket {
                    handle: sockets.add(socket),
                    connection: None,
                    listening: false,
                }
            })
            .collect();
        Ok(HostStack {
            device,
            iface,
            sockets,
            listeners,
            port: address.port,
            epoch,
            limits,
            accepted: 0,
            egress: None,
        })
    }

    /// Lets the guest open TCP connections beyond the runtime API, relayed
    /// under `config`'s policy (see [`crate::egress`]). Returns the counts
    /// of bytes relayed.
    pub fn with_egress(&mut self, config: EgressConfig) -> Arc<Metered> {
        let host = self.iface.ipv4_addr().unwrap_or(Ipv4Addr::UNSPECIFIED);
        // TCP to any address: the stack takes packets for every
        // destination routed through its own address.
        self.iface.set_any_ip(true);
        let _ = self.iface.routes_mut().add_default_ipv4_route(host);
        self.device.egress_from = Some((host, self.port));
        let egress = Egress::new(config, host, &mut self.sockets);
        let metered = egress.metered();
        self.egress = Some(egress);
        metered
    }

    fn now(&self) -> NetInstant {
        NetInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    /// Serves the runtime API until an I/O error, which it returns; it never
    /// returns otherwise: drop the future to stop it. Every [`ApiEvent`] is
    /// sent to `events` as soon as it happens.
    pub async fn run(
        &mut self,
        api: &mut RuntimeApi,
        events: &UnboundedSender<ApiEvent>,
    ) -> NetError {
        loop {
            let mut budget = 32u32;
            loop {
                if !self.turn(api, events) {
                    break;
                }
                budget -= 1;
                if budget == 0 {
                    budget = 32;
                    // A big transfer keeps this loop busy; let the console
                    // drain and the invocation's timers run.
                    tokio::task::yield_now().await;
                }
            }
            let delay = self.iface.poll_delay(self.now(), &self.sockets);
            if delay == Some(NetDuration::ZERO) {
                tokio::task::yield_now().await;
                continue;
            }
            let delay = delay
                .map(|d| std::time::Duration::from_micros(d.total_micros()))
                .unwrap_or(std::time::Duration::from_secs(3600));
            let wake = self.egress.as_ref().map(Egress::wake);
            let relayed = async {
                match &wake {
                    Some(wake) => wake.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ready = self.device.readable() => {
                    if let Err(e) = ready {
                        return NetError::Io(e);
                    }
                }
                () = relayed => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// One turn of the stack, without waiting: the frames that arrived are
    /// taken in, the runtime API is served, what it answers goes out, the
    /// VM's frame limit is checked and every [`ApiEvent`] goes to `events`.
    /// Whether anything happened (if not, wait for a frame or a timer).
    pub fn turn(&mut self, api: &mut RuntimeApi, events: &UnboundedSender<ApiEvent>) -> bool {
        let now = self.now();
        let polled = self.iface.poll(now, &mut self.device, &mut self.sockets);
        let mut served = self.serve(api);
        if let Some(egress) = &mut self.egress {
            let held = std::mem::take(&mut self.device.held);
            let inject = egress.process(held, &mut self.sockets, self.port);
            served |= !inject.is_empty();
            self.device.inject.extend(inject);
            let datagrams = std::mem::take(&mut self.device.datagrams);
            served |= !datagrams.is_empty();
            egress.take_datagrams(datagrams);
            served |= egress.serve(&mut self.sockets);
            for frame in egress.frames_to_guest() {
                self.device.send_frame(&frame);
            }
        }
        if self.device.frames > self.limits.max_frames {
            api.violate(Violation::limit(format!(
                "the guest sent more than {} network frames",
                self.limits.max_frames
            )));
        }
        for event in api.take_events() {
            let _ = events.send(event);
        }
        polled != PollResult::None || served
    }

    /// Moves bytes between the TCP sockets and the runtime API; whether
    /// anything happened.
    fn serve(&mut self, api: &mut RuntimeApi) -> bool {
        let mut progressed = false;
        for slot in &mut self.listeners {
            let socket = self.sockets.get_mut::<tcp::Socket>(slot.handle);
            match socket.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    // TimeWait guards against stray segments of an old
                    // connection; on a private link to one peer there are
                    // none worth a listening socket.
                    socket.abort();
                    // A connection closed between two turns (opened and
                    // reset in one batch of frames) was never seen open:
                    // it counts all the same.
                    match slot.connection.take() {
                        Some(mut connection) => connection.release(api),
                        None if slot.listening => {
                            count_connection(&mut self.accepted, self.limits, api)
                        }
                        None => {}
                    }
                    slot.listening = true;
                    socket.set_nagle_enabled(false);
                    // The default 10 ms delayed ACK would add latency to
                    // every request; the link is free.
                    socket.set_ack_delay(None);
                    if let Err(e) = socket.listen(self.port) {
                        tracing::warn!(error = ?e, "cannot listen for the runtime API");
                    }
                    progressed = true;
                    continue;
                }
                tcp::State::Listen | tcp::State::SynReceived => continue,
                _ => {}
            }
            let connection = match &mut slot.connection {
                Some(connection) => connection,
                None => {
                    tracing::debug!(remote = ?socket.remote_endpoint(), "runtime API connection");
                    count_connection(&mut self.accepted, self.limits, api);
                    slot.connection.insert(Connection::new())
                }
            };
            // Answers go out before more requests come in: a connection
            // whose answers are unsent is not read (see Connection).
            loop {
                // A warm VM's held `next` once its event arrived, or the
                // next request buffered behind an answer now sent.
                let mut moved = connection.resume(api, Now::current());
                while !connection.pending_output().is_empty() && socket.can_send() {
                    match socket.send_slice(connection.pending_output()) {
                        Ok(n) if n > 0 => {
                            connection.consume_output(n);
                            moved = true;
                        }
                        _ => break,
                    }
                }
                if connection.wants_input() && socket.can_recv() {
                    let received = socket.recv(|data| {
                        connection.receive(api, data, Now::current());
                        (data.len(), data.len())
                    });
                    if matches!(received, Ok(n) if n > 0) {
                        moved = true;
                    }
                }
                if !moved {
                    break;
                }
                progressed = true;
            }
            let peer_done = !socket.may_recv() && connection.pending_output().is_empty();
            if (connection.should_close() || peer_done) && socket.may_send() {
                socket.close();
                progressed = true;
            }
        }
        progressed
    }
}

/// Counts one more connection of the VM's, and ends the invocation beyond
/// the limit.
fn count_connection(accepted: &mut u32, limits: NetLimits, api: &mut RuntimeApi) {
    *accepted += 1;
    if *accepted > limits.max_connections {
        api.violate(Violation::limit(format!(
            "the guest opened more than {} connections to the runtime API",
            limits.max_connections
        )));
    }
}

fn rand_u64() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
#[path = "net_tests.rs"]
pub(crate) mod tests;
