//! The host side of a VM's private network: Ethernet frames from a hostile
//! guest, raw or as TCP segments to the runtime API that follow the
//! host's sequence numbers (so that connections really open and carry
//! requests), never panic the stack and never make it exceed its limits.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use mayfly_proto::net::{API_PORT, GUEST_IP, GUEST_MAC, HOST_IP, HOST_MAC, PREFIX_LEN};
use mayfly_vm::net::{socket_pair, HostAddress, HostStack, NetLimits};
use mayfly_vm::runtime_api::ApiEvent;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket,
    TcpRepr, TcpSeqNumber,
};

const ETHERNET_HEADER: usize = 14;
const IPV4_HEADER: usize = 20;
/// Frames a run may send: a few hundred steps already reach every state.
const MAX_STEPS: usize = 256;

fn guest_ip() -> Ipv4Address {
    Ipv4Address::from(GUEST_IP)
}

fn host_ip() -> Ipv4Address {
    Ipv4Address::from(HOST_IP)
}

fn ethernet(ethertype: EthernetProtocol, payload_len: usize) -> (Vec<u8>, EthernetRepr) {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(GUEST_MAC),
        dst_addr: EthernetAddress(HOST_MAC),
        ethertype,
    };
    (vec![0; ETHERNET_HEADER + payload_len], repr)
}

/// The ARP reply that tells the host where the guest is.
fn arp_reply() -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(GUEST_MAC),
        source_protocol_addr: guest_ip(),
        target_hardware_addr: EthernetAddress(HOST_MAC),
        target_protocol_addr: host_ip(),
    };
    let (mut buf, repr) = ethernet(EthernetProtocol::Arp, arp.buffer_len());
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut frame);
    arp.emit(&mut ArpPacket::new_unchecked(frame.payload_mut()));
    buf
}

/// A TCP segment from the guest to the runtime API.
fn segment(
    src_port: u16,
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let tcp = TcpRepr {
        src_port,
        dst_port: API_PORT,
        control,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: window,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    let ip = Ipv4Repr {
        src_addr: guest_ip(),
        dst_addr: host_ip(),
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let (mut buf, repr) = ethernet(EthernetProtocol::Ipv4, IPV4_HEADER + tcp.buffer_len());
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut frame);
    let caps = ChecksumCapabilities::default();
    let mut packet = Ipv4Packet::new_unchecked(frame.payload_mut());
    ip.emit(&mut packet, &caps);
    tcp.emit(
        &mut TcpPacket::new_unchecked(packet.payload_mut()),
        &IpAddress::Ipv4(guest_ip()),
        &IpAddress::Ipv4(host_ip()),
        &caps,
    );
    buf
}

/// Makes a raw frame's IPv4 and TCP checksums right, so that the fuzzer's
/// mutations reach past the checksum checks.
fn fix_checksums(buf: &mut [u8]) {
    let Ok(mut frame) = EthernetFrame::new_checked(&mut *buf) else {
        return;
    };
    if frame.ethertype() != EthernetProtocol::Ipv4 {
        return;
    }
    let Ok(mut ip) = Ipv4Packet::new_checked(frame.payload_mut()) else {
        return;
    };
    ip.fill_checksum();
    let (src, dst) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    if ip.next_header() == IpProtocol::Tcp {
        if let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) {
            tcp.fill_checksum(&src, &dst);
        }
    }
}

/// What the guest knows of each of its connections: the next sequence
/// number it sends and the host's next one (from the host's segments).
#[derive(Default, Clone, Copy)]
struct Flow {
    next_seq: u32,
    host_next: Option<u32>,
}

/// Reads everything the host sent, learns the host's sequence numbers and
/// keeps what the runtime API answered.
fn read_replies(guest: &UnixDatagram, flows: &mut HashMap<u16, Flow>, answers: &mut Vec<u8>) {
    let mut buf = [0u8; 2048];
    loop {
        match guest.recv(&mut buf) {
            Ok(n) => {
                let Ok(frame) = EthernetFrame::new_checked(&buf[..n]) else {
                    continue;
                };
                if frame.ethertype() != EthernetProtocol::Ipv4 {
                    continue;
                }
                let Ok(ip) = Ipv4Packet::new_checked(frame.payload()) else {
                    continue;
                };
                let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
                    continue;
                };
                answers.extend_from_slice(tcp.payload());
                let len = tcp.payload().len() as u32 + u32::from(tcp.syn()) + u32::from(tcp.fin());
                let flow = flows.entry(tcp.dst_port()).or_default();
                flow.host_next = Some((tcp.seq_number().0 as u32).wrapping_add(len));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("reading the host's frames: {e}"),
        }
    }
}

/// Runs a script of frames (see [`vm_network_frames`]) against a fresh
/// stack; returns the bytes the runtime API sent back.
fn run_script(input: &[u8]) -> Vec<u8> {
    let (host, guest) = socket_pair().expect("socket pair");
    let guest = UnixDatagram::from(guest);
    guest.set_nonblocking(true).expect("nonblocking");
    let limits = NetLimits {
        max_connections: 8,
        max_frames: 200,
    };
    let address = HostAddress {
        ip: HOST_IP,
        prefix_len: PREFIX_LEN,
        port: API_PORT,
    };
    let mut stack = HostStack::with_limits(host, address, limits).expect("stack");
    let (events, mut events_rx) = tokio::sync::mpsc::unbounded_channel::<ApiEvent>();
    let mut api = crate::guest::runtime_api(b"{}");
    let mut flows: HashMap<u16, Flow> = HashMap::new();
    let mut answers = Vec::new();
    // The first turn opens the listeners, as a VM's boot gives it time to.
    for _ in 0..16 {
        if !stack.turn(&mut api, &events) {
            break;
        }
    }
    let _ = guest.send(&arp_reply());
    let mut rest = input;
    let mut steps = 0;
    let started = Instant::now();
    while let [kind, port, flags, window, lo, hi, tail @ ..] = rest {
        steps += 1;
        if steps > MAX_STEPS {
            break;
        }
        let len = usize::from(u16::from_le_bytes([*lo, *hi]))
            .min(tail.len())
            .min(1400);
        let (data, after) = tail.split_at(len);
        rest = after;
        let frame = if kind % 2 == 1 {
            let mut frame = data.to_vec();
            fix_checksums(&mut frame);
            frame
        } else {
            let src_port = 49152 + u16::from(port % 4);
            let flow = flows.entry(src_port).or_insert(Flow {
                next_seq: 1000,
                host_next: None,
            });
            let control = match flags % 4 {
                0 => TcpControl::None,
                1 => TcpControl::Syn,
                2 => TcpControl::Fin,
                _ => TcpControl::Rst,
            };
            let seq = flow.next_seq;
            let advance =
                data.len() as u32 + u32::from(matches!(control, TcpControl::Syn | TcpControl::Fin));
            flow.next_seq = flow.next_seq.wrapping_add(advance);
            segment(
                src_port,
                control,
                seq,
                flow.host_next,
                u16::from(*window) << 6,
                data,
            )
        };
        if frame.is_empty() {
            continue;
        }
        let _ = guest.send(&frame);
        for _ in 0..16 {
            if !stack.turn(&mut api, &events) {
                break;
            }
        }
        read_replies(&guest, &mut flows, &mut answers);
        while events_rx.try_recv().is_ok() {}
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a script of {steps} frames took {:?}",
        started.elapsed()
    );
    answers
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The input is a script of frames: `[kind, port, flags, window, len_lo,
/// len_hi, bytes...]`. Odd `kind`s are raw frames (checksums fixed); even
/// ones are segments to the runtime API on one of a few guest ports, with
/// the flags given (none, SYN, FIN, RST), the guest's own sequence number
/// and, once the host has answered, its acknowledgement.
#[test]
fn vm_network_frames() {
    let runtime = runtime();
    let _entered = runtime.enter();
    bolero::check!().for_each(|input: &[u8]| {
        let _ = run_script(input);
    });
}

/// The harness reaches the runtime API through a real TCP handshake (or
/// the fuzz target would only ever test the checksum checks).
#[test]
fn a_scripted_guest_gets_its_event() {
    let runtime = runtime();
    let _entered = runtime.enter();
    let next = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut script = vec![0, 0, 1, 0xff, 0, 0];
    script.extend([0, 0, 0, 0xff]);
    script.extend((next.len() as u16).to_le_bytes());
    script.extend(next);
    let answers = run_script(&script);
    let text = String::from_utf8_lossy(&answers);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
