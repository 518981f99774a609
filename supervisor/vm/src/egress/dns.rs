//! The guest's DNS: the host's address on the private network, port 53,
//! over UDP (see [`super::udp`]) and over TCP (served here, for resolvers
//! told `options use-vc`). A name the policy lets the function reach is
//! resolved with the host's resolver, and the addresses it may use are
//! remembered so that connections to them are allowed on the name's ports
//! ([`Policy::resolved`]); any other name is NXDOMAIN without a lookup.
//! `host.mayfly.internal` is the host's own address.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mayfly_egress::dns::{answer, refusal, Query, QueryError, Rcode};
use mayfly_egress::{Policy, HOST_NAME};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use tokio::sync::oneshot;

/// The DNS port.
pub const PORT: u16 = 53;
/// Connections the guest's resolver may hold at once (each asks one
/// question at a time, so also the lookups at once).
const LISTENERS: usize = 2;
/// The largest query taken (a stub resolver's are far smaller).
pub(super) const MAX_QUERY: usize = 512;
/// The largest answer over UDP without EDNS (RFC 1035), which is all a
/// stub resolver is sure to take.
pub(super) const MAX_UDP_ANSWER: usize = 512;
/// The largest answer over TCP.
const MAX_TCP_ANSWER: usize = 8192;
/// How long the host's resolver may take.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The answers' time to live: short, since the grant lasts the VM's life
/// anyway.
const TTL: u32 = 60;

/// One listening socket and its connection's state.
struct Listener {
    handle: SocketHandle,
    /// Bytes received, not yet a whole message.
    input: Vec<u8>,
    /// An answer, partly sent.
    output: Vec<u8>,
    /// The lookup under way: the query and its result to come.
    lookup: Option<(Query, oneshot::Receiver<Option<Vec<IpAddr>>>)>,
}

/// The DNS server of one VM's host stack.
pub struct DnsServer {
    host: Ipv4Addr,
    listeners: Vec<Listener>,
}

impl DnsServer {
    /// A server for a host stack whose address is `host`, its sockets
    /// added to `sockets`.
    pub fn new(host: Ipv4Addr, sockets: &mut SocketSet<'static>) -> DnsServer {
        let listeners = (0..LISTENERS)
            .map(|_| {
                let socket = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 4096]),
                    tcp::SocketBuffer::new(vec![0; 4096]),
                );
                Listener {
                    handle: sockets.add(socket),
                    input: Vec::new(),
                    output: Vec::new(),
                    lookup: None,
                }
            })
            .collect();
        DnsServer { host, listeners }
    }

    /// Serves the resolver's connections; whether anything happened.
    pub fn serve(
        &mut self,
        sockets: &mut SocketSet<'static>,
        policy: &mut Policy,
        wake: &std::sync::Arc<tokio::sync::Notify>,
    ) -> bool {
        let mut progressed = false;
        for listener in &mut self.listeners {
            let socket = sockets.get_mut::<tcp::Socket>(listener.handle);
            match socket.state() {
                tcp::State::Closed | tcp::State::TimeWait => {
                    socket.abort();
                    listener.input.clear();
                    listener.output.clear();
                    listener.lookup = None;
                    let endpoint = smoltcp::wire::IpListenEndpoint {
                        addr: Some(smoltcp::wire::IpAddress::Ipv4(self.host)),
                        port: PORT,
                    };
                    if let Err(error) = socket.listen(endpoint) {
                        tracing::warn!(?error, "cannot listen for the guest's DNS");
                    }
                    progressed = true;
                    continue;
                }
                tcp::State::Listen | tcp::State::SynReceived => continue,
                _ => {}
            }
            // A lookup that finished gives its answer.
            if let Some((query, pending)) = &mut listener.lookup {
                match pending.try_recv() {
                    Err(oneshot::error::TryRecvError::Empty) => {}
                    result => {
                        let message = finish(query, result.ok().flatten(), policy, MAX_TCP_ANSWER);
                        frame(&mut listener.output, &message);
                        listener.lookup = None;
                        progressed = true;
                    }
                }
            }
            while !listener.output.is_empty() && socket.can_send() {
                match socket.send_slice(&listener.output) {
                    Ok(n) if n > 0 => {
                        listener.output.drain(..n);
                        progressed = true;
                    }
                    _ => break,
                }
            }
            // The next question, once the last is answered.
            if listener.lookup.is_none() && listener.output.is_empty() {
                while socket.can_recv() && listener.input.len() < 2 + MAX_QUERY {
                    let mut chunk = [0u8; 512];
                    let room = (2 + MAX_QUERY - listener.input.len()).min(chunk.len());
                    match socket.recv_slice(&mut chunk[..room]) {
                        Ok(n) if n > 0 => listener.input.extend_from_slice(&chunk[..n]),
                        _ => break,
                    }
                }
                if let Some(message) = take_message(&mut listener.input) {
                    progressed = true;
                    match message {
                        Err(()) => socket.abort(),
                        Ok(message) => match respond(self.host, &message, policy, wake) {
                            Response::Malformed => socket.abort(),
                            Response::Now(reply) => frame(&mut listener.output, &reply),
                            Response::Later(query, pending) => {
                                listener.lookup = Some((query, pending));
                            }
                        },
                    }
                }
            }
            if !socket.may_recv() && listener.output.is_empty() && listener.lookup.is_none() {
                socket.close();
            }
        }
        progressed
    }
}

/// What the server does with one message from the guest's resolver.
pub(super) enum Response {
    /// Answers it at once.
    Now(Vec<u8>),
    /// Answers it when the host's resolver has ([`finish`]).
    Later(Query, oneshot::Receiver<Option<Vec<IpAddr>>>),
    /// Not a DNS message: no answer (over TCP, the connection is reset).
    Malformed,
}

/// Decides how to answer `message` for a VM whose host side is `host`:
/// the host's own name at once, a name the policy does not cover with
/// NXDOMAIN without a lookup, any other with the host's resolver.
pub(super) fn respond(
    host: Ipv4Addr,
    message: &[u8],
    policy: &Policy,
    wake: &std::sync::Arc<tokio::sync::Notify>,
) -> Response {
    match Query::parse(message) {
        Err(QueryError::Malformed) => Response::Malformed,
        Err(QueryError::Unsupported { id }) => Response::Now(refusal(id)),
        Ok(query) if query.name == HOST_NAME => {
            Response::Now(answer(&query, Rcode::NoError, &[host], TTL))
        }
        Ok(query) if !policy.may_resolve(&query.name) => {
            tracing::debug!(name = %query.name, "DNS refused by policy");
            Response::Now(answer(&query, Rcode::NxDomain, &[], TTL))
        }
        Ok(query) => {
            let pending = lookup(query.name.clone(), wake);
            Response::Later(query, pending)
        }
    }
}

/// The answer to `query` once the host's resolver found `found` (`None`:
/// nothing): the addresses the policy lets the function use (remembered
/// in it, see [`Policy::resolved`]), as many as fit `max_len` bytes.
pub(super) fn finish(
    query: &Query,
    found: Option<Vec<IpAddr>>,
    policy: &mut Policy,
    max_len: usize,
) -> Vec<u8> {
    let Some(addresses) = found else {
        return answer(query, Rcode::NxDomain, &[], TTL);
    };
    let usable = policy.resolved(&query.name, &addresses);
    let v4: Vec<Ipv4Addr> = usable
        .into_iter()
        .filter_map(|a| match a {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => None,
        })
        .collect();
    // Header, question (name, its length octets, type and class), and 16
    // bytes a record.
    let room = max_len.saturating_sub(12 + query.name.len() + 2 + 4) / 16;
    answer(query, Rcode::NoError, &v4[..v4.len().min(room)], TTL)
}

/// A whole length-prefixed message from the front of `input`, if one is
/// there; `Err` for one longer than a query may be.
fn take_message(input: &mut Vec<u8>) -> Option<Result<Vec<u8>, ()>> {
    if input.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
    if len > MAX_QUERY {
        return Some(Err(()));
    }
    if input.len() < 2 + len {
        return None;
    }
    let message = input[2..2 + len].to_vec();
    input.drain(..2 + len);
    Some(Ok(message))
}

/// Appends `message` to `output` with DNS-over-TCP's length prefix.
fn frame(output: &mut Vec<u8>, message: &[u8]) {
    output.extend_from_slice(&(message.len() as u16).to_be_bytes());
    output.extend_from_slice(message);
}

/// Resolves `name` with the host's resolver, off the stack's task; `None`
/// if it does not resolve (or takes too long).
fn lookup(
    name: String,
    wake: &std::sync::Arc<tokio::sync::Notify>,
) -> oneshot::Receiver<Option<Vec<IpAddr>>> {
    let (tx, rx) = oneshot::channel();
    let wake = wake.clone();
    tokio::spawn(async move {
        let found =
            match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host((name.as_str(), 0)))
                .await
            {
                Ok(Ok(addresses)) => Some(addresses.map(|a| a.ip()).collect()),
                Ok(Err(error)) => {
                    tracing::debug!(%name, %error, "the host's resolver found nothing");
                    None
                }
                Err(_) => {
                    tracing::debug!(%name, "the host's resolver took too long");
                    None
                }
            };
        let _ = tx.send(found);
        wake.notify_one();
    });
    rx
}
