//! Egress through the host stack, against a smoltcp guest over a real
//! socket pair and real servers on the host's loopback: the whole relay
//! path without QEMU.

use super::*;
use crate::net::tests::Guest;
use crate::net::{socket_pair, HostAddress, HostStack};
use crate::runtime_api::{Invocation, RuntimeApi};
use mayfly_egress::Rules;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

pub(super) const HOST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// A host stack with egress under `rules`, serving in a task; the guest,
/// the refusal notes and the byte counts.
pub(super) fn start(
    rules: &[&str],
    mayfly_ports: Vec<u16>,
    limits: EgressLimits,
) -> (Guest, UnboundedReceiver<String>, Arc<Metered>) {
    let (host_fd, guest_fd) = socket_pair().unwrap();
    let mut stack = HostStack::new(
        host_fd,
        HostAddress {
            ip: HOST.octets(),
            prefix_len: 24,
            port: 9001,
        },
    )
    .unwrap();
    let (notes, notes_rx) = unbounded_channel();
    let policy = Policy::new(
        Rules::parse_each(rules.iter().copied()).unwrap(),
        None,
        mayfly_ports,
        Vec::new(),
    );
    let metered = stack.with_egress(EgressConfig {
        policy,
        notes,
        limits,
    });
    let mut api = RuntimeApi::new(Invocation {
        request_id: "11111111-2222-4333-8444-555555555555".into(),
        event: bytes::Bytes::from_static(b"{}"),
        timeout: Duration::from_secs(3),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
        trace_id: "Root=1-00000001-000000000000000000000000".into(),
    });
    let (tx, _rx) = unbounded_channel();
    tokio::spawn(async move {
        let error = stack.run(&mut api, &tx).await;
        panic!("the host stack failed: {error}");
    });
    (Guest::new(guest_fd), notes_rx, metered)
}

/// A loopback server that answers each connection with `reply(request)`
/// once the client has sent `expect` bytes, then closes.
async fn server(expect: usize, reply: fn(&[u8]) -> Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = vec![0; expect];
                if stream.read_exact(&mut request).await.is_ok() {
                    let _ = stream.write_all(&reply(&request)).await;
                }
            });
        }
    });
    port
}

/// Runs the guest until `done` holds, for at most 20 s.
pub(super) async fn pump(guest: &mut Guest, mut done: impl FnMut(&mut Guest) -> bool) {
    let started = Instant::now();
    while !done(guest) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the guest stalled"
        );
        if !guest.poll() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

/// Sends `request` on `handle`, then reads until the host closes; the
/// bytes read, or `None` if the connection was reset or refused.
async fn exchange(guest: &mut Guest, handle: SocketHandle, request: &[u8]) -> Option<Vec<u8>> {
    let mut sent = 0;
    let mut received = Vec::new();
    let mut refused = false;
    pump(guest, |g| {
        g.move_bytes(handle, request, &mut sent, &mut received);
        let socket = g.sockets.get_mut::<tcp::Socket>(handle);
        match socket.state() {
            tcp::State::Closed => {
                refused = sent == 0;
                true
            }
            tcp::State::CloseWait => {
                socket.close();
                false
            }
            tcp::State::TimeWait => true,
            _ => false,
        }
    })
    .await;
    (!refused).then_some(received)
}

fn upper(request: &[u8]) -> Vec<u8> {
    request.to_ascii_uppercase()
}

#[tokio::test]
async fn the_hosts_address_reaches_a_loopback_server_on_an_allowed_port() {
    let port = server(5, upper).await;
    let (mut guest, mut notes, metered) = start(
        &[&format!("host.mayfly.internal:{port}")],
        vec![9000],
        EgressLimits::default(),
    );
    let conn = guest.connect_to(HOST, port, 50000);
    let answer = exchange(&mut guest, conn, b"hello").await;
    assert_eq!(answer.as_deref(), Some(&b"HELLO"[..]));
    assert_eq!(metered.sent.load(Ordering::Relaxed), 5);
    assert_eq!(metered.received.load(Ordering::Relaxed), 5);
    assert!(notes.try_recv().is_err());
}

#[tokio::test]
async fn a_port_the_policy_does_not_name_is_refused_and_the_log_says_so() {
    let port = server(5, upper).await;
    let (mut guest, mut notes, _) = start(
        &[&format!(
            "host.mayfly.internal:{}",
            port.wrapping_add(1).max(1)
        )],
        vec![9000],
        EgressLimits::default(),
    );
    let conn = guest.connect_to(HOST, port, 50001);
    assert_eq!(exchange(&mut guest, conn, b"hello").await, None);
    assert_eq!(
        notes.recv().await.unwrap(),
        format!("egress to 10.0.2.2:{port} refused by policy")
    );
}

#[tokio::test]
async fn mayflys_own_ports_are_refused_whatever_the_rules() {
    let port = server(5, upper).await;
    let (mut guest, mut notes, _) = start(&["*"], vec![port], EgressLimits::default());
    let conn = guest.connect_to(HOST, port, 50002);
    assert_eq!(exchange(&mut guest, conn, b"hello").await, None);
    assert_eq!(
        notes.recv().await.unwrap(),
        format!("egress to 10.0.2.2:{port} refused: the host's own Mayfly port")
    );
    // The VMs' own network is never reached either.
    let conn = guest.connect_to(Ipv4Addr::new(10, 0, 2, 3), 80, 50003);
    assert_eq!(exchange(&mut guest, conn, b"hello").await, None);
}

#[tokio::test]
async fn megabytes_come_through_intact_with_bounded_buffers() {
    const SIZE: usize = 8 << 20;
    fn pattern(_: &[u8]) -> Vec<u8> {
        (0..SIZE).map(|i| (i * 7 % 251) as u8).collect()
    }
    let port = server(3, pattern).await;
    let (mut guest, _, metered) = start(
        &[&format!("host.mayfly.internal:{port}")],
        vec![],
        EgressLimits::default(),
    );
    let conn = guest.connect_to(HOST, port, 50004);
    let answer = exchange(&mut guest, conn, b"get").await.unwrap();
    assert_eq!(answer.len(), SIZE);
    assert!(answer == pattern(b""), "the bytes differ");
    assert_eq!(metered.received.load(Ordering::Relaxed), SIZE as u64);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    // A server that never answers keeps the first two open.
    let port = server(1 << 20, upper).await;
    let (mut guest, mut notes, _) = start(
        &[&format!("host.mayfly.internal:{port}")],
        vec![],
        EgressLimits { max_connections: 2 },
    );
    let open: Vec<_> = (0..2)
        .map(|i| guest.connect_to(HOST, port, 50010 + i))
        .collect();
    pump(&mut guest, |g| {
        open.iter()
            .all(|h| g.sockets.get::<tcp::Socket>(*h).state() == tcp::State::Established)
    })
    .await;
    let third = guest.connect_to(HOST, port, 50020);
    assert_eq!(exchange(&mut guest, third, b"x").await, None);
    assert_eq!(
        notes.recv().await.unwrap(),
        format!("egress to 10.0.2.2:{port} refused: the VM has 2 connections open, its limit")
    );
}

/// A DNS query for `name`, type A.
pub(super) fn dns_message(name: &str) -> Vec<u8> {
    let mut q = vec![0x42, 0x24, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// [`dns_message`], length-prefixed for TCP.
fn dns_query(name: &str) -> Vec<u8> {
    let q = dns_message(name);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    framed
}

/// An answer's response code and its IPv4 addresses.
pub(super) fn parse_answer(message: &[u8]) -> (u8, Vec<Ipv4Addr>) {
    assert_eq!(&message[..2], &[0x42, 0x24], "the query's id");
    let rcode = message[3] & 0xf;
    let count = usize::from(u16::from_be_bytes([message[6], message[7]]));
    let addresses = (0..count)
        .map(|i| {
            let at = message.len() - (count - i) * 16 + 12;
            Ipv4Addr::new(
                message[at],
                message[at + 1],
                message[at + 2],
                message[at + 3],
            )
        })
        .collect();
    (rcode, addresses)
}

/// Asks the host's DNS (10.0.2.2:53 over TCP) about `name`: the answer's
/// response code and its IPv4 addresses.
async fn resolve(guest: &mut Guest, name: &str, local_port: u16) -> (u8, Vec<Ipv4Addr>) {
    let conn = guest.connect_to(HOST, 53, local_port);
    let query = dns_query(name);
    let mut sent = 0;
    let mut received = Vec::new();
    pump(guest, |g| {
        g.move_bytes(conn, &query, &mut sent, &mut received);
        let socket = g.sockets.get_mut::<tcp::Socket>(conn);
        let whole = received.len() >= 2
            && received.len() >= 2 + usize::from(u16::from_be_bytes([received[0], received[1]]));
        if whole && socket.is_open() {
            // As a stub resolver does: one question, then the connection
            // goes (the host's server has two).
            socket.close();
        }
        whole && matches!(socket.state(), tcp::State::TimeWait | tcp::State::Closed)
    })
    .await;
    parse_answer(&received[2..])
}

#[tokio::test]
async fn the_guests_dns_answers_only_what_the_policy_lets_it_reach() {
    let (mut guest, _, _) = start(
        &["localhost:80", "*.example.com:443"],
        vec![],
        EgressLimits::default(),
    );
    // The host's own name is its address on the private network.
    assert_eq!(
        resolve(&mut guest, "host.mayfly.internal", 50100).await,
        (0, vec![HOST])
    );
    // A name no rule names: NXDOMAIN, without a lookup.
    assert_eq!(
        resolve(&mut guest, "db.example.org", 50101).await,
        (3, vec![])
    );
    // A name the rules name, resolved by the host: loopback is never given.
    assert_eq!(resolve(&mut guest, "localhost", 50102).await, (0, vec![]));
}
