//! A function's egress policy: the host's rules (`mayfly serve --egress`),
//! narrowed by the function's own (the `mayfly:egress` tag), never widened;
//! and the decisions made with it, for a name the guest asks the host's
//! DNS to resolve and for a connection the guest opens.

use std::fmt;
use std::net::IpAddr;

use crate::rule::{Rule, RuleError};

/// The name under which functions reach the host's own loopback services.
pub const HOST_NAME: &str = "host.mayfly.internal";
/// The tag whose value (rules separated by spaces) narrows a function's
/// egress.
pub const FUNCTION_TAG: &str = "mayfly:egress";

/// A list of rules: a connection is allowed if any rule allows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Rules from `--egress` arguments, one rule each.
    pub fn parse_each<'a>(rules: impl IntoIterator<Item = &'a str>) -> Result<Rules, RuleError> {
        rules
            .into_iter()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Rules)
    }

    /// Rules from a `mayfly:egress` tag: rules separated by spaces.
    pub fn parse_tag(tag: &str) -> Result<Rules, RuleError> {
        Rules::parse_each(tag.split_ascii_whitespace())
    }

    /// Whether there are none (nothing is allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn allows_address(&self, ip: IpAddr, port: u16) -> bool {
        self.0.iter().any(|r| r.allows_address(ip, port))
    }

    fn allows_name(&self, name: &str, port: u16) -> bool {
        self.0.iter().any(|r| r.allows_name(name, port))
    }

    fn covers_name(&self, name: &str) -> bool {
        self.0.iter().any(|r| r.covers_name(name))
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

/// Where the guest asked to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The host's loopback, through [`HOST_NAME`]'s address on the VM's
    /// network: `port` on the host's 127.0.0.1.
    Host(u16),
    /// Any other address.
    Address(IpAddr, u16),
}

/// Why a connection or a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No rule of the host's (or of the function's) allows it.
    #[error("refused by policy")]
    NotAllowed,
    /// The host's own Mayfly API or metrics port: never reachable.
    #[error("refused: the host's own Mayfly port")]
    MayflyPort,
    /// An address no rule can open: loopback (except through
    /// [`HOST_NAME`]), unspecified, link-local, multicast, broadcast, the
    /// VMs' private networks, the host's own addresses.
    #[error("refused: an address functions never reach")]
    Reserved,
}

/// A name the guest resolved through the host, and the addresses it got:
/// a connection to one of them is allowed on the ports the name's rules
/// allow (the guest cannot claim a name it did not resolve).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Grant {
    name: String,
    address: IpAddr,
}

/// The most names a VM keeps resolved: later ones replace the oldest.
const MAX_GRANTS: usize = 256;

/// A function's policy in one VM: the host's rules, the function's, the
/// ports and addresses never reachable, and the names resolved so far.
#[derive(Debug, Clone)]
pub struct Policy {
    host: Rules,
    function: Option<Rules>,
    mayfly_ports: Vec<u16>,
    reserved: Vec<IpAddr>,
    grants: Vec<Grant>,
}

impl Policy {
    /// The host's rules, narrowed by the function's if it has any (a tag
    /// with no rules allows nothing); `mayfly_ports` are the host's API and
    /// metrics ports (on loopback or any address of the host), and
    /// `host_addresses` the host's own addresses, neither ever reachable.
    pub fn new(
        host: Rules,
        function: Option<Rules>,
        mayfly_ports: Vec<u16>,
        host_addresses: Vec<IpAddr>,
    ) -> Policy {
        Policy {
            host,
            function,
            mayfly_ports,
            reserved: host_addresses,
            grants: Vec::new(),
        }
    }

    fn allows_name(&self, name: &str, port: u16) -> bool {
        self.host.allows_name(name, port)
            && self
                .function
                .as_ref()
                .is_none_or(|f| f.allows_name(name, port))
    }

    fn allows_address(&self, ip: IpAddr, port: u16) -> bool {
        self.host.allows_address(ip, port)
            && self
                .function
                .as_ref()
                .is_none_or(|f| f.allows_address(ip, port))
    }

    /// Whether the host's DNS answers `name` for the guest (NXDOMAIN
    /// otherwise): some port of it must be allowed by both rule lists.
    pub fn may_resolve(&self, name: &str) -> bool {
        self.host.covers_name(name) && self.function.as_ref().is_none_or(|f| f.covers_name(name))
    }

    /// Records that `name` resolved to `addresses` for the guest: of them,
    /// those a function may ever reach (see [`Refusal::Reserved`]), which
    /// the guest is given; connections to them are then allowed on the
    /// name's ports.
    pub fn resolved(&mut self, name: &str, addresses: &[IpAddr]) -> Vec<IpAddr> {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let usable: Vec<IpAddr> = addresses
            .iter()
            .copied()
            .filter(|a| !self.is_reserved(*a))
            .collect();
        for &address in &usable {
            self.grants
                .retain(|g| !(g.address == address && g.name == name));
            if self.grants.len() == MAX_GRANTS {
                self.grants.remove(0);
            }
            self.grants.push(Grant {
                name: name.clone(),
                address,
            });
        }
        usable
    }

    fn is_reserved(&self, ip: IpAddr) -> bool {
        if self.reserved.contains(&ip) {
            return true;
        }
        match ip {
            IpAddr::V4(a) => {
                let o = a.octets();
                a.is_loopback()
                    || a.is_unspecified()
                    || a.is_link_local()
                    || a.is_multicast()
                    || a.is_broadcast()
                    || o[0] == 0
                    || o[0] >= 240
                    // The VMs' private network (mayfly_proto::net).
                    || (o[0] == 10 && o[1] == 0 && o[2] == 2)
            }
            IpAddr::V6(a) => {
                let s = a.segments();
                a.is_loopback()
                    || a.is_unspecified()
                    || a.is_multicast()
                    || (s[0] & 0xffc0) == 0xfe80
                    || a.to_ipv4_mapped().is_some()
            }
        }
    }

    /// Whether the guest may open a connection to `destination`.
    pub fn check(&self, destination: Destination) -> Result<(), Refusal> {
        match destination {
            Destination::Host(port) => {
                if self.mayfly_ports.contains(&port) {
                    return Err(Refusal::MayflyPort);
                }
                if self.allows_name(HOST_NAME, port) {
                    Ok(())
                } else {
                    Err(Refusal::NotAllowed)
                }
            }
            Destination::Address(ip, port) => {
                if self.is_reserved(ip) {
                    return Err(Refusal::Reserved);
                }
                let by_name = self
                    .grants
                    .iter()
                    .any(|g| g.address == ip && self.allows_name(&g.name, port));
                if by_name || self.allows_address(ip, port) {
                    Ok(())
                } else {
                    Err(Refusal::NotAllowed)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Rules {
        Rules::parse_each(list.iter().copied()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(host: &[&str], tag: Option<&str>) -> Policy {
        Policy::new(
            rules(host),
            tag.map(|t| Rules::parse_tag(t).unwrap()),
            vec![9000, 9464],
            vec![ip("192.0.2.10")],
        )
    }

    #[test]
    fn no_rule_no_egress() {
        let p = policy(&[], None);
        assert_eq!(
            p.check(Destination::Address(ip("8.8.8.8"), 53)),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(p.check(Destination::Host(5432)), Err(Refusal::NotAllowed));
        assert!(!p.may_resolve("example.com"));
    }

    #[test]
    fn the_host_name_reaches_loopback_ports_it_names_and_never_mayflys_own() {
        let p = policy(
            &["host.mayfly.internal:5432", "host.mayfly.internal:9000"],
            None,
        );
        assert_eq!(p.check(Destination::Host(5432)), Ok(()));
        assert_eq!(p.check(Destination::Host(5433)), Err(Refusal::NotAllowed));
        assert_eq!(p.check(Destination::Host(9000)), Err(Refusal::MayflyPort));
        let everything = policy(&["*"], None);
        assert_eq!(
            everything.check(Destination::Host(9464)),
            Err(Refusal::MayflyPort)
        );
        assert!(p.may_resolve("host.mayfly.internal"));
    }

    #[test]
    fn a_tag_narrows_the_hosts_rules_and_never_widens_them() {
        let host = &["host.mayfly.internal:5432", "10.0.0.0/8"];
        let narrowed = policy(host, Some("host.mayfly.internal:8080"));
        assert_eq!(
            narrowed.check(Destination::Host(5432)),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            narrowed.check(Destination::Host(8080)),
            Err(Refusal::NotAllowed)
        );
        let kept = policy(host, Some("host.mayfly.internal:5000-6000 10.1.0.0/16:443"));
        assert_eq!(kept.check(Destination::Host(5432)), Ok(()));
        assert_eq!(
            kept.check(Destination::Address(ip("10.1.2.3"), 443)),
            Ok(())
        );
        assert_eq!(
            kept.check(Destination::Address(ip("10.2.2.3"), 443)),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            kept.check(Destination::Address(ip("10.1.2.3"), 80)),
            Err(Refusal::NotAllowed)
        );
        let empty_tag = policy(host, Some(""));
        assert_eq!(
            empty_tag.check(Destination::Host(5432)),
            Err(Refusal::NotAllowed)
        );
    }

    #[test]
    fn a_name_opens_the_addresses_it_resolved_to_on_its_ports_only() {
        let mut p = policy(&["*.example.com:443"], None);
        assert!(p.may_resolve("api.example.com"));
        assert!(!p.may_resolve("example.org"));
        let a = ip("198.51.100.7");
        assert_eq!(
            p.check(Destination::Address(a, 443)),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(p.resolved("API.example.com.", &[a]), vec![a]);
        assert_eq!(p.check(Destination::Address(a, 443)), Ok(()));
        assert_eq!(
            p.check(Destination::Address(a, 80)),
            Err(Refusal::NotAllowed)
        );
    }

    #[test]
    fn a_name_cannot_reach_loopback_the_host_or_the_vms_network() {
        let mut p = policy(&["*.example.com", "*"], None);
        let answers = [
            ip("127.0.0.1"),
            ip("10.0.2.2"),
            ip("192.0.2.10"),
            ip("169.254.169.254"),
            ip("::1"),
            ip("::ffff:127.0.0.1"),
            ip("0.0.0.0"),
            ip("224.0.0.1"),
            ip("203.0.113.9"),
        ];
        assert_eq!(
            p.resolved("evil.example.com", &answers),
            vec![ip("203.0.113.9")]
        );
        for a in &answers[..8] {
            assert_eq!(
                p.check(Destination::Address(*a, 80)),
                Err(Refusal::Reserved),
                "{a}"
            );
        }
        assert_eq!(p.check(Destination::Address(ip("203.0.113.9"), 80)), Ok(()));
    }

    #[test]
    fn resolved_names_are_bounded() {
        let mut p = policy(&["*.example.com"], None);
        for i in 0..(MAX_GRANTS + 10) {
            let a = IpAddr::from([198, 51, (i / 250) as u8, (i % 250) as u8 + 1]);
            p.resolved(&format!("n{i}.example.com"), &[a]);
        }
        assert_eq!(p.grants.len(), MAX_GRANTS);
    }

    #[test]
    fn rules_print_as_they_were_given() {
        let r = Rules::parse_tag("  db.example.com:5432   10.0.0.0/8 ").unwrap();
        assert_eq!(r.to_string(), "db.example.com:5432 10.0.0.0/8");
        assert!(Rules::parse_tag("db:0").is_err());
    }
}
