//! UDP egress and the DNS over UDP, against a smoltcp guest over a real
//! socket pair and real UDP servers on the host's loopback.

use super::tests::{dns_message, parse_answer, pump, start, HOST};
use super::udp::MAX_FLOWS;
use super::*;
use crate::net::tests::Guest;
use smoltcp::socket::udp;
use smoltcp::wire::IpEndpoint;

/// A loopback UDP server answering each datagram with it in upper case;
/// its port.
async fn echo_server() -> u16 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = vec![0; 2048];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let _ = socket.send_to(&buf[..n].to_ascii_uppercase(), from).await;
        }
    });
    port
}

/// A UDP socket of the guest's on `port`.
fn bind(guest: &mut Guest, port: u16) -> SocketHandle {
    let mut socket = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8192]),
    );
    socket.bind(port).unwrap();
    guest.sockets.add(socket)
}

/// Sends `payload` from `handle` to `to`, then waits up to `wait` for an
/// answer: the first datagram back and who sent it.
async fn ask(
    guest: &mut Guest,
    handle: SocketHandle,
    to: (Ipv4Addr, u16),
    payload: &[u8],
    wait: Duration,
) -> Option<(Vec<u8>, IpEndpoint)> {
    let to = IpEndpoint::new(IpAddress::Ipv4(to.0), to.1);
    guest
        .sockets
        .get_mut::<udp::Socket>(handle)
        .send_slice(payload, to)
        .unwrap();
    let started = Instant::now();
    let mut answer = None;
    pump(guest, |g| {
        if let Ok((data, meta)) = g.sockets.get_mut::<udp::Socket>(handle).recv() {
            answer = Some((data.to_vec(), meta.endpoint));
        }
        answer.is_some() || started.elapsed() > wait
    })
    .await;
    answer
}

#[tokio::test]
async fn a_datagram_to_an_allowed_port_comes_back_from_a_loopback_server() {
    let port = echo_server().await;
    let (mut guest, mut notes, metered) = start(
        &[&format!("host.mayfly.internal:{port}")],
        vec![],
        EgressLimits::default(),
    );
    let socket = bind(&mut guest, 40000);
    let (answer, from) = ask(
        &mut guest,
        socket,
        (HOST, port),
        b"ping",
        Duration::from_secs(10),
    )
    .await
    .expect("an answer");
    assert_eq!(answer, b"PING");
    // From the address and port the guest sent to.
    assert_eq!(from, IpEndpoint::new(IpAddress::Ipv4(HOST), port));
    assert_eq!(metered.sent.load(Ordering::Relaxed), 4);
    assert_eq!(metered.received.load(Ordering::Relaxed), 4);
    assert!(notes.try_recv().is_err());
}

#[tokio::test]
async fn a_datagram_the_policy_does_not_allow_is_dropped_and_told_once() {
    let port = echo_server().await;
    let (mut guest, mut notes, metered) = start(&[], vec![], EgressLimits::default());
    let socket = bind(&mut guest, 40001);
    for _ in 0..3 {
        let answer = ask(
            &mut guest,
            socket,
            (HOST, port),
            b"ping",
            Duration::from_millis(300),
        )
        .await;
        assert!(answer.is_none());
    }
    assert_eq!(
        notes.recv().await.unwrap(),
        format!("egress to 10.0.2.2:{port} (UDP) refused by policy")
    );
    assert!(notes.try_recv().is_err(), "one line for the flow");
    assert_eq!(metered.sent.load(Ordering::Relaxed), 0);
    // Mayfly's own ports and the VMs' network, whatever the rules.
    let (mut guest, mut notes, _) = start(&["*"], vec![port], EgressLimits::default());
    let socket = bind(&mut guest, 40002);
    let to_api = ask(
        &mut guest,
        socket,
        (HOST, port),
        b"x",
        Duration::from_millis(300),
    );
    assert!(to_api.await.is_none());
    assert_eq!(
        notes.recv().await.unwrap(),
        format!("egress to 10.0.2.2:{port} (UDP) refused: the host's own Mayfly port")
    );
    let other_vm = (Ipv4Addr::new(10, 0, 2, 3), 53);
    let to_vm = ask(
        &mut guest,
        socket,
        other_vm,
        b"x",
        Duration::from_millis(300),
    );
    assert!(to_vm.await.is_none());
}

#[tokio::test]
async fn flows_beyond_the_cap_are_refused_and_the_host_keeps_answering() {
    let port = echo_server().await;
    let (mut guest, mut notes, _) = start(&["*"], vec![], EgressLimits::default());
    // MAX_FLOWS flows from as many ports, each answered.
    let sockets: Vec<_> = (0..MAX_FLOWS as u16 + 1)
        .map(|i| bind(&mut guest, 41000 + i))
        .collect();
    for &socket in &sockets[..MAX_FLOWS] {
        let answer = ask(
            &mut guest,
            socket,
            (HOST, port),
            b"a",
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(answer.unwrap().0, b"A");
    }
    let beyond = ask(
        &mut guest,
        sockets[MAX_FLOWS],
        (HOST, port),
        b"a",
        Duration::from_millis(500),
    );
    assert!(beyond.await.is_none());
    let mut told = Vec::new();
    while let Ok(line) = notes.try_recv() {
        told.push(line);
    }
    assert_eq!(
        told,
        [format!(
            "egress to 10.0.2.2:{port} (UDP) refused: the VM has {} UDP flows open, its limit",
            MAX_FLOWS
        )]
    );
    // An open flow still works.
    let again = ask(
        &mut guest,
        sockets[0],
        (HOST, port),
        b"b",
        Duration::from_secs(10),
    );
    assert_eq!(again.await.unwrap().0, b"B");
}

#[tokio::test]
async fn the_dns_over_udp_answers_as_over_tcp() {
    let (mut guest, _, _) = start(&["localhost:80"], vec![], EgressLimits::default());
    let socket = bind(&mut guest, 40053);
    let resolve = |name: &str| dns_message(name);
    for (name, expected) in [
        ("host.mayfly.internal", (0, vec![HOST])),
        // No rule names it: NXDOMAIN without a lookup.
        ("db.example.org", (3, vec![])),
        // Resolved by the host; loopback is never given.
        ("localhost", (0, vec![])),
    ] {
        let (answer, from) = ask(
            &mut guest,
            socket,
            (HOST, 53),
            &resolve(name),
            Duration::from_secs(10),
        )
        .await
        .expect("an answer");
        assert_eq!(from, IpEndpoint::new(IpAddress::Ipv4(HOST), 53));
        assert_eq!(parse_answer(&answer), expected, "{name}");
    }
    // Garbage gets no answer, and the server still answers after it.
    let garbage = ask(
        &mut guest,
        socket,
        (HOST, 53),
        b"\x01",
        Duration::from_millis(300),
    );
    assert!(garbage.await.is_none());
    let (answer, _) = ask(
        &mut guest,
        socket,
        (HOST, 53),
        &resolve("host.mayfly.internal"),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(parse_answer(&answer), (0, vec![HOST]));
}
