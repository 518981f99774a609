//! The host stack against a second smoltcp interface playing the guest, over
//! a real socket pair: the whole network path without QEMU.

use super::*;
use crate::runtime_api::{GuestResult, Invocation};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const ID: &str = "11111111-2222-4333-8444-555555555555";
const GUEST_MAC: [u8; 6] = [0x02, 0x4d, 0x46, 0x00, 0x00, 0x02];
const TRACE: &str = "Root=1-00000001-000000000000000000000000;Parent=0000000000000000;Sampled=0";

/// A smoltcp interface with the guest's address on the other end of the
/// socket pair.
pub(crate) struct Guest {
    device: FrameSocket,
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    epoch: Instant,
}

impl Guest {
    pub(crate) fn new(fd: OwnedFd) -> Guest {
        crate::sys::set_nonblocking(fd.as_fd(), true).unwrap();
        let mut device = FrameSocket::new(fd).unwrap();
        let config = Config::new(EthernetAddress(GUEST_MAC).into());
        let mut iface = Interface::new(config, &mut device, NetInstant::from_micros(0));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(10, 0, 2, 15), 24))
                .unwrap();
        });
        // Other addresses through the host, as the guest kernel routes.
        let _ = iface
            .routes_mut()
            .add_default_ipv4_route(Ipv4Addr::new(10, 0, 2, 2));
        Guest {
            device,
            iface,
            sockets: SocketSet::new(Vec::new()),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> NetInstant {
        NetInstant::from_micros(self.epoch.elapsed().as_micros() as i64)
    }

    fn connect(&mut self, port: u16, local_port: u16) -> SocketHandle {
        self.connect_to(Ipv4Addr::new(10, 0, 2, 2), port, local_port)
    }

    /// A connection from `local_port` to `address`:`port`, being opened.
    pub(crate) fn connect_to(
        &mut self,
        address: Ipv4Addr,
        port: u16,
        local_port: u16,
    ) -> SocketHandle {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        socket.set_nagle_enabled(false);
        socket.set_ack_delay(None);
        socket
            .connect(
                self.iface.context(),
                (IpAddress::Ipv4(address), port),
                local_port,
            )
            .unwrap();
        self.sockets.add(socket)
    }

    /// Sends what is left of `request` (from `*sent`) and takes what
    /// arrived on `handle` into `received`; whether any byte moved.
    pub(crate) fn move_bytes(
        &mut self,
        handle: SocketHandle,
        request: &[u8],
        sent: &mut usize,
        received: &mut Vec<u8>,
    ) -> bool {
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        let mut moved = false;
        if *sent < request.len() && socket.can_send() {
            *sent += socket.send_slice(&request[*sent..]).unwrap();
            moved = true;
        }
        while socket.can_recv() {
            socket
                .recv(|data| {
                    received.extend_from_slice(data);
                    (data.len(), ())
                })
                .unwrap();
            moved = true;
        }
        moved
    }

    /// Polls the interface once; whether anything happened.
    pub(crate) fn poll(&mut self) -> bool {
        let now = self.now();
        self.iface.poll(now, &mut self.device, &mut self.sockets) != PollResult::None
    }

    /// Sends `request`, returns the complete HTTP response.
    async fn exchange(&mut self, handle: SocketHandle, request: &[u8]) -> Vec<u8> {
        let mut sent = 0;
        let mut received = Vec::new();
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "exchange stalled"
            );
            let now = self.now();
            let polled = self.iface.poll(now, &mut self.device, &mut self.sockets);
            let moved = self.move_bytes(handle, request, &mut sent, &mut received);
            let progressed = polled == PollResult::SocketStateChanged || moved;
            if let Some(len) = complete_response_len(&received) {
                assert_eq!(len, received.len(), "more than one response");
                return received;
            }
            if progressed {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
    }
}

fn complete_response_len(data: &[u8]) -> Option<usize> {
    let head_end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&data[..head_end]).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    (data.len() >= head_end + length).then_some(head_end + length)
}

fn start_host(
    event: &[u8],
) -> (
    Guest,
    UnboundedReceiver<ApiEvent>,
    tokio::task::JoinHandle<()>,
) {
    start_host_with(event, NetLimits::default())
}

fn start_host_with(
    event: &[u8],
    limits: NetLimits,
) -> (
    Guest,
    UnboundedReceiver<ApiEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (host_fd, guest_fd) = socket_pair().unwrap();
    let mut stack = HostStack::with_limits(
        host_fd,
        HostAddress {
            ip: [10, 0, 2, 2],
            prefix_len: 24,
            port: 9001,
        },
        limits,
    )
    .unwrap();
    let mut api = RuntimeApi::new(Invocation {
        request_id: ID.into(),
        event: bytes::Bytes::copy_from_slice(event),
        timeout: Duration::from_secs(3),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:echo".into(),
        trace_id: TRACE.into(),
    });
    let (tx, rx) = unbounded_channel();
    let task = tokio::spawn(async move {
        let error = stack.run(&mut api, &tx).await;
        panic!("the host stack failed: {error}");
    });
    (Guest::new(guest_fd), rx, task)
}

#[tokio::test]
async fn guest_gets_its_event_and_posts_its_response() {
    let (mut guest, mut events, host) = start_host(br#"{"a":1}"#);
    let conn = guest.connect(9001, 49152);

    let next = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 10.0.2.2:9001\r\nMayfly-Max-Memory-Bytes: 3145728\r\n\r\n";
    let answer = String::from_utf8(guest.exchange(conn, next).await).unwrap();
    let clock: u64 = answer
        .lines()
        .find_map(|l| l.strip_prefix("Mayfly-Host-Clock-Ms: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        answer,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\
             Lambda-Runtime-Aws-Request-Id: {ID}\r\n\
             Lambda-Runtime-Deadline-Ms: {}\r\n\
             Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:echo\r\n\
             Lambda-Runtime-Trace-Id: {TRACE}\r\n\
             Mayfly-Host-Clock-Ms: {clock}\r\n\r\n{{\"a\":1}}",
            clock + 3000
        )
    );

    let post = format!(
        "POST /2018-06-01/runtime/invocation/{ID}/response HTTP/1.1\r\nHost: 10.0.2.2:9001\r\nMayfly-Max-Memory-Bytes: 4194304\r\nContent-Length: 7\r\n\r\n{{\"a\":1}}"
    );
    let answer = guest.exchange(conn, post.as_bytes()).await;
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
    );

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], ApiEvent::MaxMemory(3 << 20));
    assert!(
        matches!(seen[1], ApiEvent::Delivered { deadline_ms, .. } if deadline_ms == clock + 3000)
    );
    assert_eq!(seen[2], ApiEvent::MaxMemory(4 << 20));
    assert!(matches!(
        &seen[3],
        ApiEvent::Finished { result: GuestResult::Response(body), .. } if body[..] == br#"{"a":1}"#[..]
    ));
    host.abort();
}

#[tokio::test]
async fn large_payloads_stream_both_ways() {
    let event: Vec<u8> = std::iter::repeat(b"0123456789abcdef".iter().copied())
        .flatten()
        .take(6 * 1024 * 1024)
        .collect();
    let (mut guest, mut events, host) = start_host(&event);
    let conn = guest.connect(9001, 49153);
    let next = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n";
    let answer = guest.exchange(conn, next).await;
    assert!(answer.ends_with(&event));

    let mut post = format!(
        "POST /2018-06-01/runtime/invocation/{ID}/response HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        event.len()
    )
    .into_bytes();
    post.extend_from_slice(&event);
    let answer = guest.exchange(conn, &post).await;
    assert!(answer.starts_with(b"HTTP/1.1 202 Accepted\r\n"));
    let mut response = None;
    while let Ok(e) = events.try_recv() {
        if let ApiEvent::Finished {
            result: GuestResult::Response(body),
            ..
        } = e
        {
            response = Some(body);
        }
    }
    assert!(
        response.as_deref() == Some(&event[..]),
        "the response body differs"
    );
    host.abort();
}

#[tokio::test]
async fn other_ports_are_refused() {
    let (mut guest, _events, host) = start_host(b"{}");
    let handle = guest.connect(80, 49154);
    let started = Instant::now();
    loop {
        let now = guest.now();
        guest.iface.poll(now, &mut guest.device, &mut guest.sockets);
        let socket = guest.sockets.get_mut::<tcp::Socket>(handle);
        if socket.state() == tcp::State::Closed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "connection to port 80 was not refused: {}",
            socket.state()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    host.abort();
}

/// Waits up to 10 s for the host to report a violation.
async fn violation(events: &mut UnboundedReceiver<ApiEvent>) -> crate::runtime_api::Violation {
    let wait = async {
        loop {
            match events.recv().await {
                Some(ApiEvent::Violated(v)) => return v,
                Some(_) => continue,
                None => panic!("the host stack ended"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .expect("no violation reported within 10 s")
}

#[tokio::test]
async fn a_frame_flood_ends_the_invocation() {
    let limits = NetLimits {
        max_frames: 200,
        ..NetLimits::default()
    };
    let (guest, mut events, host) = start_host_with(b"{}", limits);
    let fd = guest.device.fd.get_ref().as_fd();
    // Frames for nobody (a made-up EtherType): each costs the host a read
    // and a parse, and none is answered.
    let mut frame = [0u8; 60];
    frame[..6].copy_from_slice(&HOST_MAC);
    frame[6..12].copy_from_slice(&GUEST_MAC);
    frame[12..14].copy_from_slice(&[0x88, 0xb5]);
    for _ in 0..300 {
        while sys::send_datagram(fd, &frame).is_err() {
            tokio::task::yield_now().await;
        }
    }
    let v = violation(&mut events).await;
    assert_eq!(v.error_type, crate::runtime_api::ERROR_LIMIT);
    assert!(v.message.contains("200 network frames"), "{}", v.message);
    host.abort();
}

#[tokio::test]
async fn a_connection_flood_ends_the_invocation() {
    let limits = NetLimits {
        max_connections: 3,
        ..NetLimits::default()
    };
    let (mut guest, mut events, host) = start_host_with(b"{}", limits);
    let flood = async {
        for port in 50000..50010u16 {
            let handle = guest.connect(9001, port);
            // Connected, then dropped at once: a slot frees up for the next.
            loop {
                let now = guest.now();
                guest.iface.poll(now, &mut guest.device, &mut guest.sockets);
                let socket = guest.sockets.get_mut::<tcp::Socket>(handle);
                if socket.may_send() {
                    socket.abort();
                    let now = guest.now();
                    guest.iface.poll(now, &mut guest.device, &mut guest.sockets);
                    break;
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        std::future::pending::<()>().await;
    };
    let v = tokio::select! {
        v = violation(&mut events) => v,
        () = flood => unreachable!(),
    };
    assert_eq!(v.error_type, crate::runtime_api::ERROR_LIMIT);
    assert!(
        v.message.contains("more than 3 connections"),
        "{}",
        v.message
    );
    host.abort();
}

#[tokio::test]
async fn a_guest_that_pipelines_without_reading_is_stopped_by_the_window() {
    let (mut guest, _events, host) = start_host(b"{}");
    let handle = guest.connect(9001, 49155);
    let request = b"GET /2018-06-01/runtime/nothing HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut sent = 0usize;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        let now = guest.now();
        guest.iface.poll(now, &mut guest.device, &mut guest.sockets);
        let socket = guest.sockets.get_mut::<tcp::Socket>(handle);
        while socket.can_send() {
            let n = socket.send_slice(&request[sent % request.len()..]).unwrap();
            if n == 0 {
                break;
            }
            sent += n;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    // What the host took is at most one read into its input, its socket's
    // receive buffer and the guest's send buffer: it stopped reading once
    // its answers were unsent, instead of answering into memory.
    let bound = 2 * TCP_BUFFER_BYTES + 64 * 1024;
    assert!(
        sent <= bound,
        "the guest pushed {sent} bytes (bound {bound})"
    );
    assert!(sent > request.len(), "nothing was sent at all");
    host.abort();
}
