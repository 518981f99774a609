//! UDP egress: the guest's datagrams, taken from its frames before the host
//! stack sees them, relayed through real host sockets under the policy,
//! and its DNS queries over UDP answered (see [`super::dns`]).
//!
//! A flow is the guest's source port and one destination. Its first
//! datagram is checked against the policy as a TCP connection would be; an
//! allowed flow gets a host socket connected to the destination (the
//! host's 127.0.0.1 for `host.mayfly.internal`), and a task that hands
//! what comes back to the stack, which writes it to the guest as frames.
//! A refused flow's datagrams are dropped (UDP has no reset), and the
//! function's log says why once per flow.
//!
//! Bounded per VM: [`MAX_FLOWS`] flows at once (a flow idle for
//! [`FLOW_IDLE`] is closed), [`REPLY_QUEUE`] datagrams on their way to the
//! guest (more are dropped, as a full link drops them), each datagram at
//! most one frame ([`MAX_PAYLOAD`]), and [`MAX_LOOKUPS`] DNS lookups at
//! once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mayfly_egress::{Destination, Policy};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use super::dns::{self, Response};
use super::Metered;
use crate::net::HOST_MAC;

/// The largest payload of one datagram either way: a 1500-byte MTU less
/// the IPv4 and UDP headers (nothing is fragmented).
pub const MAX_PAYLOAD: usize = 1500 - 20 - 8;
/// Flows a VM may have at once.
pub const MAX_FLOWS: usize = 32;
/// A flow with no datagram either way for this long is closed.
pub const FLOW_IDLE: Duration = Duration::from_secs(30);
/// Datagrams from the world waiting to be written to the guest.
pub const REPLY_QUEUE: usize = 64;
/// DNS lookups over UDP under way at once (resolvers retry).
pub const MAX_LOOKUPS: usize = 8;
/// Datagrams from the guest taken in one turn of the stack; the rest of a
/// burst is dropped.
pub const MAX_HELD: usize = 256;

/// Where a guest datagram comes from and goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    guest: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
}

/// One datagram from the guest.
struct Outgoing<'a> {
    key: FlowKey,
    guest_mac: EthernetAddress,
    payload: &'a [u8],
}

/// The UDP datagram in `frame`, if it is a whole (unfragmented) IPv4 one.
fn outgoing(frame: &[u8]) -> Option<Outgoing<'_>> {
    let ethernet = EthernetFrame::new_checked(frame).ok()?;
    if ethernet.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(&frame[EthernetFrame::<&[u8]>::header_len()..]).ok()?;
    if ip.next_header() != IpProtocol::Udp || ip.more_frags() || ip.frag_offset() != 0 {
        return None;
    }
    let header = usize::from(ip.header_len());
    let total = usize::from(ip.total_len());
    let datagram = frame.get(EthernetFrame::<&[u8]>::header_len() + header..)?;
    let datagram = datagram.get(..total.checked_sub(header)?)?;
    let udp = UdpPacket::new_checked(datagram).ok()?;
    let payload = datagram.get(8..usize::from(udp.len()))?;
    Some(Outgoing {
        key: FlowKey {
            guest: (ip.src_addr(), udp.src_port()),
            to: (ip.dst_addr(), udp.dst_port()),
        },
        guest_mac: ethernet.src_addr(),
        payload,
    })
}

/// Whether `frame` is IPv4 UDP (the stack hands it to [`UdpEgress`]).
pub fn is_datagram(frame: &[u8]) -> bool {
    let Ok(ethernet) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    ethernet.ethertype() == EthernetProtocol::Ipv4
        && Ipv4Packet::new_checked(ethernet.payload())
            .is_ok_and(|ip| ip.next_header() == IpProtocol::Udp)
}

/// The frame carrying `payload` from `from` to the guest.
fn frame_to_guest(
    guest_mac: EthernetAddress,
    from: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: from.1,
        dst_port: to.1,
    };
    let ip = Ipv4Repr {
        src_addr: from.0,
        dst_addr: to.0,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + payload.len(),
        hop_limit: 64,
    };
    let ethernet = EthernetRepr {
        src_addr: EthernetAddress(HOST_MAC),
        dst_addr: guest_mac,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0; ethernet.buffer_len() + ip.buffer_len() + ip.payload_len];
    let checksums = ChecksumCapabilities::default();
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    ethernet.emit(&mut frame);
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &checksums);
    let mut datagram = UdpPacket::new_unchecked(packet.payload_mut());
    udp.emit(
        &mut datagram,
        &IpAddress::Ipv4(from.0),
        &IpAddress::Ipv4(to.0),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &checksums,
    );
    buf
}

/// A datagram from the world for the guest.
struct Reply {
    key: FlowKey,
    payload: Vec<u8>,
}

/// An allowed flow and its host socket.
struct Flow {
    key: FlowKey,
    guest_mac: EthernetAddress,
    /// Sends, without waiting (tokio's `try_send` answers WouldBlock until
    /// its reactor has seen the socket writable once).
    socket: std::net::UdpSocket,
    receiver: JoinHandle<()>,
    last: Instant,
}

/// A DNS question over UDP waiting for the host's resolver.
struct Lookup {
    key: FlowKey,
    guest_mac: EthernetAddress,
    query: mayfly_egress::dns::Query,
    pending: oneshot::Receiver<Option<Vec<IpAddr>>>,
}

/// The UDP side of one VM's egress.
pub struct UdpEgress {
    host: Ipv4Addr,
    flows: Vec<Flow>,
    /// Flows refused, so that each is told once; forgotten like flows.
    refused: Vec<(FlowKey, Instant)>,
    replies: mpsc::Receiver<Reply>,
    replies_tx: mpsc::Sender<Reply>,
    lookups: Vec<Lookup>,
    /// Frames for the guest, taken by the stack.
    outbox: Vec<Vec<u8>>,
}

impl Drop for UdpEgress {
    fn drop(&mut self) {
        for flow in &self.flows {
            flow.receiver.abort();
        }
    }
}

/// What [`UdpEgress::take`] needs of the egress around it.
pub struct Context<'a> {
    /// The function's policy.
    pub policy: &'a mut Policy,
    /// Woken when a datagram or a lookup's result arrives.
    pub wake: &'a Arc<Notify>,
    /// Bytes counted.
    pub metered: &'a Metered,
    /// Where refusals are told (once per flow).
    pub notes: &'a mut super::Notes,
}

impl UdpEgress {
    /// The UDP egress of a VM whose host side has address `host`.
    pub fn new(host: Ipv4Addr) -> UdpEgress {
        let (replies_tx, replies) = mpsc::channel(REPLY_QUEUE);
        UdpEgress {
            host,
            flows: Vec::new(),
            refused: Vec::new(),
            replies,
            replies_tx,
            lookups: Vec::new(),
            outbox: Vec::new(),
        }
    }

    /// Flows open now.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Takes the guest's datagrams (whole frames): DNS questions to the
    /// host are answered, others relayed or refused.
    pub fn take(&mut self, frames: Vec<Vec<u8>>, cx: &mut Context<'_>) {
        for frame in frames {
            let Some(datagram) = outgoing(&frame) else {
                continue;
            };
            if datagram.key.to == (self.host, dns::PORT) {
                self.ask(&datagram, cx);
            } else {
                self.relay(&datagram, cx);
            }
        }
    }

    fn ask(&mut self, datagram: &Outgoing<'_>, cx: &mut Context<'_>) {
        if datagram.payload.len() > dns::MAX_QUERY {
            return;
        }
        match dns::respond(self.host, datagram.payload, cx.policy, cx.wake) {
            Response::Malformed => {}
            Response::Now(answer) => self.answer(datagram.key, datagram.guest_mac, &answer),
            Response::Later(query, pending) => {
                if self.lookups.len() >= MAX_LOOKUPS {
                    tracing::debug!(name = %query.name, "too many DNS lookups at once: dropped");
                    return;
                }
                self.lookups.push(Lookup {
                    key: datagram.key,
                    guest_mac: datagram.guest_mac,
                    query,
                    pending,
                });
            }
        }
    }

    /// Queues the DNS `answer` back to the guest that asked along `key`.
    fn answer(&mut self, key: FlowKey, guest_mac: EthernetAddress, answer: &[u8]) {
        self.outbox
            .push(frame_to_guest(guest_mac, key.to, key.guest, answer));
    }

    fn relay(&mut self, datagram: &Outgoing<'_>, cx: &mut Context<'_>) {
        let key = datagram.key;
        if datagram.payload.len() > MAX_PAYLOAD {
            return;
        }
        if let Some(flow) = self.flows.iter_mut().find(|f| f.key == key) {
            flow.last = Instant::now();
            send(flow, datagram.payload, cx.metered);
            return;
        }
        if let Some((_, at)) = self.refused.iter_mut().find(|(k, _)| *k == key) {
            *at = Instant::now();
            return;
        }
        let (address, port) = key.to;
        let destination = if address == self.host {
            Destination::Host(port)
        } else {
            Destination::Address(IpAddr::V4(address), port)
        };
        let refusal = match cx.policy.check(destination) {
            Err(refusal) => Some(refusal.to_string()),
            Ok(()) if self.flows.len() >= MAX_FLOWS => Some(format!(
                "refused: the VM has {MAX_FLOWS} UDP flows open, its limit"
            )),
            Ok(()) => None,
        };
        if let Some(why) = refusal {
            cx.notes
                .note(format!("egress to {address}:{port} (UDP) {why}"));
            if self.refused.len() >= MAX_FLOWS {
                self.refused.remove(0);
            }
            self.refused.push((key, Instant::now()));
            return;
        }
        let target = match destination {
            Destination::Host(port) => SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            Destination::Address(ip, port) => SocketAddr::new(ip, port),
        };
        let (socket, receiving) = match open(target) {
            Ok(sockets) => sockets,
            Err(error) => {
                cx.notes
                    .note(format!("egress to {address}:{port} (UDP) failed: {error}"));
                return;
            }
        };
        let receiver = tokio::spawn(receive(
            receiving,
            key,
            self.replies_tx.clone(),
            cx.wake.clone(),
        ));
        let mut flow = Flow {
            key,
            guest_mac: datagram.guest_mac,
            socket,
            receiver,
            last: Instant::now(),
        };
        send(&mut flow, datagram.payload, cx.metered);
        self.flows.push(flow);
    }

    /// Writes what came back to the guest, answers finished lookups and
    /// closes idle flows; whether anything happened.
    pub fn serve(&mut self, policy: &mut Policy, metered: &Metered) -> bool {
        let mut progressed = false;
        while let Ok(reply) = self.replies.try_recv() {
            let Some(flow) = self.flows.iter_mut().find(|f| f.key == reply.key) else {
                continue;
            };
            flow.last = Instant::now();
            metered
                .received
                .fetch_add(reply.payload.len() as u64, Ordering::Relaxed);
            let frame = frame_to_guest(
                flow.guest_mac,
                reply.key.to,
                reply.key.guest,
                &reply.payload,
            );
            self.outbox.push(frame);
            progressed = true;
        }
        for mut lookup in std::mem::take(&mut self.lookups) {
            match lookup.pending.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => self.lookups.push(lookup),
                result => {
                    let found = result.ok().flatten();
                    let answer = dns::finish(&lookup.query, found, policy, dns::MAX_UDP_ANSWER);
                    self.answer(lookup.key, lookup.guest_mac, &answer);
                    progressed = true;
                }
            }
        }
        let before = self.flows.len();
        self.flows.retain(|flow| {
            let idle = flow.last.elapsed() > FLOW_IDLE;
            if idle {
                flow.receiver.abort();
            }
            !idle
        });
        self.refused.retain(|(_, at)| at.elapsed() <= FLOW_IDLE);
        progressed || self.flows.len() != before
    }

    /// The frames for the guest made since the last call.
    pub fn take_outbox(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.outbox)
    }
}

/// A host socket connected to `target`, on loopback for a loopback target:
/// one handle to send with, one for the receiving task.
fn open(target: SocketAddr) -> std::io::Result<(std::net::UdpSocket, UdpSocket)> {
    let local: SocketAddr = if target.ip().is_loopback() {
        (Ipv4Addr::LOCALHOST, 0).into()
    } else if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = std::net::UdpSocket::bind(local)?;
    socket.connect(target)?;
    socket.set_nonblocking(true)?;
    let receiving = UdpSocket::from_std(socket.try_clone()?)?;
    Ok((socket, receiving))
}

/// Sends one datagram on `flow`'s socket without waiting: a full socket
/// buffer drops it, as a full link would.
fn send(flow: &mut Flow, payload: &[u8], metered: &Metered) {
    match flow.socket.send(payload) {
        Ok(n) => {
            metered.sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(error) => tracing::debug!(%error, "a UDP datagram from the guest was dropped"),
    }
}

/// Hands what `socket` receives to the stack until the flow is closed.
async fn receive(socket: UdpSocket, key: FlowKey, replies: mpsc::Sender<Reply>, wake: Arc<Notify>) {
    // One byte more than a frame holds, to see what is too large.
    let mut buf = vec![0; MAX_PAYLOAD + 1];
    loop {
        let n = match socket.recv(&mut buf).await {
            Ok(n) => n,
            // An ICMP error from an earlier datagram (ECONNREFUSED) says
            // nothing about the next.
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(error) => {
                tracing::debug!(%error, "a UDP egress flow ended");
                return;
            }
        };
        if n > MAX_PAYLOAD {
            tracing::debug!("a UDP datagram too large for the guest's link was dropped");
            continue;
        }
        let reply = Reply {
            key,
            payload: buf[..n].to_vec(),
        };
        if replies.try_send(reply).is_ok() {
            wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_made_for_the_guest_parses_back_as_the_same_datagram() {
        let mac = EthernetAddress([2, 0, 0, 0, 0, 9]);
        let frame = frame_to_guest(
            mac,
            (Ipv4Addr::new(10, 0, 2, 2), 53),
            (Ipv4Addr::new(10, 0, 2, 15), 40000),
            b"answer",
        );
        assert!(is_datagram(&frame));
        let parsed = outgoing(&frame).unwrap();
        assert_eq!(parsed.payload, b"answer");
        assert_eq!(parsed.key.guest, (Ipv4Addr::new(10, 0, 2, 2), 53));
        assert_eq!(parsed.key.to, (Ipv4Addr::new(10, 0, 2, 15), 40000));
        // The checksums are right: smoltcp's checked parse verifies them.
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(
            &IpAddress::Ipv4(ip.src_addr()),
            &IpAddress::Ipv4(ip.dst_addr())
        ));
    }

    #[test]
    fn fragments_and_truncated_frames_are_not_datagrams_to_relay() {
        let mut frame = frame_to_guest(
            EthernetAddress([2, 0, 0, 0, 0, 9]),
            (Ipv4Addr::new(10, 0, 2, 15), 40000),
            (Ipv4Addr::new(203, 0, 113, 5), 123),
            &[7; 100],
        );
        assert!(outgoing(&frame[..frame.len() - 10]).is_none());
        // More fragments follow.
        frame[14 + 6] |= 0x20;
        assert!(outgoing(&frame).is_none());
    }
}
