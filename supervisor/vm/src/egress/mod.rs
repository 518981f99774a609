//! Egress: the guest's TCP connections beyond the runtime API, relayed
//! through real host sockets under the function's policy
//! ([`mayfly_egress::Policy`]); its UDP datagrams likewise (see [`udp`]).
//!
//! The host stack holds every SYN the guest sends to another address or
//! port ([`is_egress_syn`]). A refused one (by the policy, or beyond the
//! VM's connection cap) goes back into the stack with no socket to take
//! it, so smoltcp answers it with a reset: the program's `connect` fails
//! with ECONNREFUSED, and the function's log says why. An allowed one
//! waits while the host connects (to the host's 127.0.0.1 for the host's
//! own address on the private network, `host.mayfly.internal`); then a
//! socket listening on exactly that destination takes the SYN, and a task
//! moves bytes between it and the host connection through two bounded
//! channels, so a side that does not read stops the other (TCP's window
//! does the rest). A failed host connection is answered with a reset too.
//!
//! The guest's DNS is served here too (see [`dns`]).
//!
//! What a VM can hold here is bounded: [`EgressLimits::max_connections`]
//! connections at once, each with two [`SOCKET_BUFFER_BYTES`] socket
//! buffers and [`CHANNEL_CHUNKS`] chunks of at most [`CHUNK_BYTES`] each
//! way.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_egress::{Destination, Policy};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpAddress, IpListenEndpoint, IpProtocol, Ipv4Packet, TcpPacket,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

/// Each egress socket's receive and send buffer in the host stack.
pub const SOCKET_BUFFER_BYTES: usize = 64 * 1024;
/// The largest piece moved through a relay's channel at once.
pub const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks a relay's channel holds each way.
pub const CHANNEL_CHUNKS: usize = 4;
/// How long the host tries to connect before the guest's SYN is reset.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a listening socket waits for the SYN it was made for.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines a VM's egress writes in its function's log at most (a guest that
/// tries thousands of destinations gets a line for the first ones).
pub const MAX_NOTES: usize = 64;

/// What one VM may hold of egress at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressLimits {
    /// Connections open or being opened.
    pub max_connections: usize,
}

impl Default for EgressLimits {
    fn default() -> Self {
        EgressLimits {
            max_connections: 32,
        }
    }
}

/// Bytes the guest sent and received through egress.
#[derive(Debug, Default)]
pub struct Metered {
    /// From the guest to the world.
    pub sent: AtomicU64,
    /// From the world to the guest.
    pub received: AtomicU64,
}

/// A VM's egress: its policy, where refusals are told, and its limits.
#[derive(Debug)]
pub struct EgressConfig {
    /// What the function may reach.
    pub policy: Policy,
    /// Lines for the function's log (`mayfly: egress to … refused by
    /// policy`).
    pub notes: mpsc::UnboundedSender<String>,
    /// Caps.
    pub limits: EgressLimits,
}

/// One guest connection: its source port and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Flow {
    guest_port: u16,
    address: Ipv4Addr,
    port: u16,
}

/// The TCP segment a frame carries: where it goes, and its header.
struct Segment {
    address: Ipv4Addr,
    src_port: u16,
    dst_port: u16,
    /// A SYN without ACK: a new connection.
    opens: bool,
}

/// The TCP segment in `frame`, if it is IPv4 TCP (parsed once, for both
/// questions below).
fn segment(frame: &[u8]) -> Option<Segment> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(ethernet.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some(Segment {
        address: ip.dst_addr(),
        src_port: tcp.src_port(),
        dst_port: tcp.dst_port(),
        opens: tcp.syn() && !tcp.ack(),
    })
}

/// What the host stack does with a frame from the guest when egress is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A SYN to anything but the host stack's own services: held for the
    /// egress to decide; it counts toward the VM's frame limit (a flood of
    /// them is work, not relaying).
    EgressSyn,
    /// More of a relayed connection: not counted (relayed traffic is
    /// bounded by TCP's windows and the connection cap instead; a 100 MB
    /// download is some 70,000 frames).
    Relayed,
    /// A UDP datagram (to the host's DNS or beyond): taken from the stack
    /// for [`udp`]; counted (UDP has no window to bound it).
    Datagram,
    /// Anything else (the runtime API, DNS over TCP, ARP): counted.
    Counted,
}

/// Sorts a frame from the guest, whose host side is `host` with the
/// runtime API on `api_port`.
pub fn classify(frame: &[u8], host: Ipv4Addr, api_port: u16) -> FrameKind {
    match segment(frame) {
        None if udp::is_datagram(frame) => FrameKind::Datagram,
        None => FrameKind::Counted,
        Some(s) if s.address == host && (s.dst_port == api_port || s.dst_port == dns::PORT) => {
            // The runtime API and the guest's DNS: the host stack's own.
            FrameKind::Counted
        }
        Some(s) if s.opens => FrameKind::EgressSyn,
        Some(_) => FrameKind::Relayed,
    }
}

/// The flow a SYN that [`classify`] held opens.
fn egress_syn(frame: &[u8], host: Ipv4Addr, api_port: u16) -> Option<Flow> {
    if classify(frame, host, api_port) != FrameKind::EgressSyn {
        return None;
    }
    let s = segment(frame)?;
    Some(Flow {
        guest_port: s.src_port,
        address: s.address,
        port: s.dst_port,
    })
}

/// A SYN held while the host connects.
struct Pending {
    flow: Flow,
    frame: Vec<u8>,
    connected: oneshot::Receiver<std::io::Result<TcpStream>>,
}

/// An open relay.
struct Relay {
    flow: Flow,
    handle: SocketHandle,
    to_host: Option<mpsc::Sender<Vec<u8>>>,
    from_host: mpsc::Receiver<Vec<u8>>,
    /// A chunk from the host, partly sent to the guest.
    partial: Vec<u8>,
    host_done: bool,
    made_at: Instant,
}

/// Where refusals are told: the function's log, up to [`MAX_NOTES`]
/// lines.
pub struct Notes {
    sender: mpsc::UnboundedSender<String>,
    /// Lines written so far.
    written: usize,
}

impl Notes {
    /// Writes `line` (past the limit, nothing).
    pub fn note(&mut self, line: String) {
        tracing::debug!(%line, "egress");
        self.written += 1;
        if self.written < MAX_NOTES {
            let _ = self.sender.send(line);
        } else if self.written == MAX_NOTES {
            let _ = self
                .sender
                .send(format!("{line} (further egress refusals are not logged)"));
        }
    }
}

/// The egress side of one VM's host stack.
pub struct Egress {
    policy: Policy,
    limits: EgressLimits,
    notes: Notes,
    host: Ipv4Addr,
    pending: Vec<Pending>,
    relays: Vec<Relay>,
    wake: Arc<Notify>,
    metered: Arc<Metered>,
    /// The guest's DNS over TCP.
    dns: dns::DnsServer,
    /// Datagrams, and the DNS over UDP.
    udp: udp::UdpEgress,
}

impl Egress {
    /// Egress for a VM whose host side has address `host`, its DNS
    /// server's sockets added to `sockets`.
    pub fn new(config: EgressConfig, host: Ipv4Addr, sockets: &mut SocketSet<'static>) -> Egress {
        Egress {
            dns: dns::DnsServer::new(host, sockets),
            udp: udp::UdpEgress::new(host),
            policy: config.policy,
            limits: config.limits,
            notes: Notes {
                sender: config.notes,
                written: 0,
            },
            host,
            pending: Vec::new(),
            relays: Vec::new(),
            wake: Arc::new(Notify::new()),
            metered: Arc::new(Metered::default()),
        }
    }

    /// Notified whenever a relay has something for the stack to do.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The bytes moved so far.
    pub fn metered(&self) -> Arc<Metered> {
        self.metered.clone()
    }

    fn note(&mut self, line: String) {
        self.notes.note(line);
    }

    /// Takes the guest's UDP datagrams (whole frames) that the stack
    /// set aside.
    pub fn take_datagrams(&mut self, frames: Vec<Vec<u8>>) {
        let mut cx = udp::Context {
            policy: &mut self.policy,
            wake: &self.wake,
            metered: &self.metered,
            notes: &mut self.notes,
        };
        self.udp.take(frames, &mut cx);
    }

    /// Frames made for the guest (UDP datagrams and DNS answers) since the
    /// last call, for the stack to send.
    pub fn frames_to_guest(&mut self) -> Vec<Vec<u8>> {
        self.udp.take_outbox()
    }

    fn open(&self) -> usize {
        self.pending.len() + self.relays.len()
    }

    /// Takes SYNs the stack held (`held`); returns the frames to give back
    /// to the stack now (refused SYNs, to be reset; SYNs whose host
    /// connection is up, to be accepted by the socket made for them).
    pub fn process(
        &mut self,
        held: Vec<Vec<u8>>,
        sockets: &mut SocketSet<'static>,
        api_port: u16,
    ) -> Vec<Vec<u8>> {
        let mut inject = Vec::new();
        for frame in held {
            let Some(flow) = egress_syn(&frame, self.host, api_port) else {
                inject.push(frame);
                continue;
            };
            if self.pending.iter().any(|p| p.flow == flow) {
                // A retransmitted SYN while the host connects: the first
                // is answered when the connection is up.
                continue;
            }
            if self.relays.iter().any(|r| r.flow == flow) {
                inject.push(frame);
                continue;
            }
            let destination = if flow.address == self.host {
                Destination::Host(flow.port)
            } else {
                Destination::Address(IpAddr::V4(flow.address), flow.port)
            };
            if let Err(refusal) = self.policy.check(destination) {
                self.note(format!(
                    "egress to {}:{} {refusal}",
                    flow.address, flow.port
                ));
                inject.push(frame);
                continue;
            }
            if self.open() >= self.limits.max_connections {
                self.note(format!(
                    "egress to {}:{} refused: the VM has {} connections open, its limit",
                    flow.address, flow.port, self.limits.max_connections
                ));
                inject.push(frame);
                continue;
            }
            let target = match destination {
                Destination::Host(port) => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                Destination::Address(ip, port) => SocketAddr::new(ip, port),
            };
            let (tx, connected) = oneshot::channel();
            let wake = self.wake.clone();
            tokio::spawn(async move {
                let result =
                    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
                        Ok(result) => result,
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "connection timed out",
                        )),
                    };
                let _ = tx.send(result);
                wake.notify_one();
            });
            self.pending.push(Pending {
                flow,
                frame,
                connected,
            });
        }
        let mut still = Vec::new();
        for mut pending in std::mem::take(&mut self.pending) {
            match pending.connected.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => still.push(pending),
                Err(oneshot::error::TryRecvError::Closed) => inject.push(pending.frame),
                Ok(Err(error)) => {
                    let flow = pending.flow;
                    self.note(format!(
                        "egress to {}:{} failed: {error}",
                        flow.address, flow.port
                    ));
                    inject.push(pending.frame);
                }
                Ok(Ok(stream)) => {
                    self.start_relay(pending.flow, stream, sockets);
                    inject.push(pending.frame);
                }
            }
        }
        self.pending = still;
        inject
    }

    fn start_relay(&mut self, flow: Flow, stream: TcpStream, sockets: &mut SocketSet<'static>) {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER_BYTES]),
            tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER_BYTES]),
        );
        socket.set_nagle_enabled(false);
        socket.set_ack_delay(None);
        let endpoint = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(flow.address)),
            port: flow.port,
        };
        if let Err(error) = socket.listen(endpoint) {
            tracing::warn!(?error, "cannot listen for an egress connection");
            return;
        }
        let handle = sockets.add(socket);
        let (to_host, from_guest) = mpsc::channel(CHANNEL_CHUNKS);
        let (to_guest, from_host) = mpsc::channel(CHANNEL_CHUNKS);
        tokio::spawn(relay(stream, from_guest, to_guest, self.wake.clone()));
        self.relays.push(Relay {
            flow,
            handle,
            to_host: Some(to_host),
            from_host,
            partial: Vec::new(),
            host_done: false,
            made_at: Instant::now(),
        });
    }

    /// Moves bytes between the relays' sockets and their host connections,
    /// closes what either side closed and drops what is over; whether
    /// anything happened.
    pub fn serve(&mut self, sockets: &mut SocketSet<'static>) -> bool {
        let mut progressed = self.dns.serve(sockets, &mut self.policy, &self.wake);
        progressed |= self.udp.serve(&mut self.policy, &self.metered);
        let metered = self.metered.clone();
        self.relays.retain_mut(|relay| {
            let socket = sockets.get_mut::<tcp::Socket>(relay.handle);
            match socket.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    sockets.remove(relay.handle);
                    progressed = true;
                    return false;
                }
                tcp::State::Listen if relay.made_at.elapsed() > LISTEN_TIMEOUT => {
                    sockets.remove(relay.handle);
                    progressed = true;
                    return false;
                }
                tcp::State::Listen | tcp::State::SynReceived => return true,
                _ => {}
            }
            // Guest to host, while the channel has room.
            while socket.can_recv() {
                let Some(to_host) = &relay.to_host else { break };
                let Ok(permit) = to_host.try_reserve() else {
                    break;
                };
                let mut chunk = vec![0; CHUNK_BYTES];
                match socket.recv_slice(&mut chunk) {
                    Ok(n) if n > 0 => {
                        chunk.truncate(n);
                        metered.sent.fetch_add(n as u64, Ordering::Relaxed);
                        permit.send(chunk);
                        progressed = true;
                    }
                    _ => break,
                }
            }
            if !socket.may_recv() && relay.to_host.take().is_some() {
                // The guest closed its side: the host's write side closes.
                progressed = true;
            }
            // Host to guest, while the socket has room.
            loop {
                if relay.partial.is_empty() {
                    match relay.from_host.try_recv() {
                        Ok(chunk) => relay.partial = chunk,
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            relay.host_done = true;
                            break;
                        }
                    }
                }
                match socket.send_slice(&relay.partial) {
                    Ok(n) if n > 0 => {
                        metered.received.fetch_add(n as u64, Ordering::Relaxed);
                        relay.partial.drain(..n);
                        progressed = true;
                    }
                    _ => break,
                }
            }
            if relay.host_done && relay.partial.is_empty() && socket.may_send() {
                socket.close();
                progressed = true;
            }
            true
        });
        progressed
    }
}

/// Moves bytes between `stream` and the stack's socket, through the two
/// channels, until both directions are closed (or one fails: then both
/// end, and the stack resets the guest's side when the channels close).
async fn relay(
    stream: TcpStream,
    mut from_guest: mpsc::Receiver<Vec<u8>>,
    to_guest: mpsc::Sender<Vec<u8>>,
    wake: Arc<Notify>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let wake_up = wake.clone();
    let up = async move {
        while let Some(chunk) = from_guest.recv().await {
            // The channel has room again: the stack may read the guest.
            wake_up.notify_one();
            writer.write_all(&chunk).await?;
        }
        writer.shutdown().await
    };
    let down = async move {
        let mut buf = vec![0; CHUNK_BYTES];
        loop {
            let n = reader.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if to_guest.send(buf[..n].to_vec()).await.is_err() {
                break;
            }
            wake.notify_one();
        }
        drop(to_guest);
        wake.notify_one();
        Ok::<(), std::io::Error>(())
    };
    let (up, down) = tokio::join!(up, down);
    if let Err(error) = up.and(down) {
        tracing::debug!(%error, "egress relay ended");
    }
}

mod dns;
pub mod udp;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod udp_tests;
