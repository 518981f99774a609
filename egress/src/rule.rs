//! One egress rule: `CIDR[:PORTS]`, `NAME[:PORTS]` or `*[:PORTS]`, parsed
//! into a checked representation.
//!
//! - `CIDR`: an IPv4 address or network (`203.0.113.5`, `10.0.0.0/8`), or
//!   an IPv6 one in brackets (`[2001:db8::/32]`; the brackets may be left
//!   out when no ports follow);
//! - `NAME`: a DNS name (`db.example.com`), or `*.` and a name for every
//!   name below it (`*.example.com` covers `a.example.com` and
//!   `a.b.example.com`, not `example.com` itself);
//! - `*`: every address and every name;
//! - `PORTS`: a port (`443`) or an inclusive range (`8000-8100`); without
//!   them, every port.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Nothing to parse.
    #[error("an empty egress rule")]
    Empty,
    /// The port part is not a port or a range of ports.
    #[error("{0:?} is not a port (1-65535) or a range of them (8000-8100)")]
    Ports(String),
    /// The address or prefix length does not parse.
    #[error("{0:?} is not an IP address or network (203.0.113.5, 10.0.0.0/8, [2001:db8::/32])")]
    Network(String),
    /// Bits set below the prefix (`10.0.0.1/8`): almost always a mistake.
    #[error("{0:?} has bits set below its prefix length (did you mean {1}?)")]
    HostBits(String, String),
    /// Not a DNS name.
    #[error("{0:?} is not a DNS name (letters, digits and hyphens, dot-separated; *.name for every name below it)")]
    Name(String),
}

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    low: u16,
    high: u16,
}

impl Ports {
    /// Every port, 1 to 65535.
    pub const ALL: Ports = Ports {
        low: 1,
        high: 65535,
    };

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port)
    }
}

impl FromStr for Ports {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || RuleError::Ports(s.to_string());
        let port = |p: &str| -> Result<u16, RuleError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad()),
                Ok(n) => Ok(n),
            }
        };
        let (low, high) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if low > high {
            return Err(bad());
        }
        Ok(Ports { low, high })
    }
}

impl fmt::Display for Ports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high {
            write!(f, "{}", self.low)
        } else {
            write!(f, "{}-{}", self.low, self.high)
        }
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` lies in the network (an IPv4 network never holds an
    /// IPv6 address, and the reverse, mapped addresses included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(ip) & mask == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(ip) & mask == u128::from(net)
            }
            _ => false,
        }
    }

    fn parse(s: &str) -> Result<Network, RuleError> {
        let bad = || RuleError::Network(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let address: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        let masked = match address {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask_v4(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask_v6(prefix))),
        };
        if masked != address {
            return Err(RuleError::HostBits(
                s.to_string(),
                format!("{masked}/{prefix}"),
            ));
        }
        Ok(Network { address, prefix })
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = if self.address.is_ipv4() { 32 } else { 128 };
        match (self.address, self.prefix == max) {
            (IpAddr::V4(a), true) => write!(f, "{a}"),
            (IpAddr::V4(a), false) => write!(f, "{a}/{}", self.prefix),
            (IpAddr::V6(a), true) => write!(f, "[{a}]"),
            (IpAddr::V6(a), false) => write!(f, "[{a}/{}]", self.prefix),
        }
    }
}

/// A DNS name, or every name below one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    /// Lower case, without a trailing dot.
    name: String,
    /// `*.name`: the names below `name`, not `name` itself.
    below: bool,
}

impl NamePattern {
    /// Whether `name` (any case, a trailing dot allowed) matches.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if self.below {
            name.len() > self.name.len() + 1
                && name.ends_with(&self.name)
                && name.as_bytes()[name.len() - self.name.len() - 1] == b'.'
        } else {
            name == self.name
        }
    }

    fn parse(s: &str) -> Result<NamePattern, RuleError> {
        let bad = || RuleError::Name(s.to_string());
        let (below, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let name = rest.strip_suffix('.').unwrap_or(rest).to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return Err(bad());
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !name.split('.').all(label_ok) {
            return Err(bad());
        }
        // A name must not read as an address: `10.0.0.1` is a network rule.
        if name.parse::<IpAddr>().is_ok()
            || name
                .split('.')
                .all(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        Ok(NamePattern { name, below })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.below {
            write!(f, "*.{}", self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

/// What a rule lets a function reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every address and name.
    Any,
    /// The addresses of a network.
    Network(Network),
    /// A name (or the names below one), and the addresses it resolves to.
    Name(NamePattern),
}

/// One rule: a target and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What may be reached.
    pub target: Target,
    /// On which ports.
    pub ports: Ports,
}

impl Rule {
    /// Whether the rule lets a connection to `ip` on `port` through by its
    /// address.
    pub fn allows_address(&self, ip: IpAddr, port: u16) -> bool {
        self.ports.contains(port)
            && match &self.target {
                Target::Any => true,
                Target::Network(net) => net.contains(ip),
                Target::Name(_) => false,
            }
    }

    /// Whether the rule lets a connection to `name` on `port` through (so
    /// also to the addresses `name` resolved to).
    pub fn allows_name(&self, name: &str, port: u16) -> bool {
        self.ports.contains(port)
            && match &self.target {
                Target::Any => true,
                Target::Network(_) => false,
                Target::Name(pattern) => pattern.matches(name),
            }
    }

    /// Whether the rule lets `name` be resolved at all (on some port).
    pub fn covers_name(&self, name: &str) -> bool {
        match &self.target {
            Target::Any => true,
            Target::Network(_) => false,
            Target::Name(pattern) => pattern.matches(name),
        }
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(RuleError::Empty);
        }
        // [IPv6 network] with or without ports.
        if let Some(rest) = s.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| RuleError::Network(s.to_string()))?;
            let ports = match after {
                "" => Ports::ALL,
                _ => after
                    .strip_prefix(':')
                    .ok_or_else(|| RuleError::Network(s.to_string()))?
                    .parse()?,
            };
            if !inside.contains(':') {
                return Err(RuleError::Network(s.to_string()));
            }
            return Ok(Rule {
                target: Target::Network(Network::parse(inside)?),
                ports,
            });
        }
        // A bare IPv6 network: every port.
        if s.matches(':').count() > 1 {
            return Ok(Rule {
                target: Target::Network(Network::parse(s)?),
                ports: Ports::ALL,
            });
        }
        let (target, ports) = match s.split_once(':') {
            Some((t, p)) => (t, p.parse()?),
            None => (s, Ports::ALL),
        };
        let target = if target == "*" {
            Target::Any
        } else if target.starts_with(|c: char| c.is_ascii_digit())
            && target
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'/')
        {
            Target::Network(Network::parse(target)?)
        } else {
            Target::Name(NamePattern::parse(target)?)
        };
        Ok(Rule { target, ports })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Any => f.write_str("*")?,
            Target::Network(n) => write!(f, "{n}")?,
            Target::Name(n) => write!(f, "{n}")?,
        }
        if self.ports != Ports::ALL {
            write!(f, ":{}", self.ports)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str) -> Rule {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn rules_parse_and_print_back() {
        for s in [
            "203.0.113.5",
            "203.0.113.5:443",
            "10.0.0.0/8:8000-8100",
            "[2001:db8::/32]:443",
            "[::1]",
            "db.example.com:5432",
            "*.example.com",
            "host.mayfly.internal:5432",
            "*",
            "*:443",
        ] {
            assert_eq!(rule(s).to_string(), s);
        }
        assert_eq!(rule("2001:db8::/32").to_string(), "[2001:db8::/32]");
        assert_eq!(rule("DB.Example.COM.").to_string(), "db.example.com");
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!("".parse::<Rule>(), Err(RuleError::Empty));
        for s in [
            "db:0", "db:70000", "db:9-8", "db:", "db:a", "db:1-", "db:+5",
        ] {
            assert!(matches!(s.parse::<Rule>(), Err(RuleError::Ports(_))), "{s}");
        }
        for s in [
            "10.0.0.0/33",
            "300.1.1.1",
            "10.0.0/8",
            "[db.example.com]",
            "[::1",
            "10.0.0.0/",
        ] {
            assert!(
                matches!(s.parse::<Rule>(), Err(RuleError::Network(_))),
                "{s}"
            );
        }
        assert_eq!(
            "10.0.0.1/8".parse::<Rule>(),
            Err(RuleError::HostBits(
                "10.0.0.1/8".into(),
                "10.0.0.0/8".into()
            ))
        );
        for s in [
            "-bad.com",
            "a..b",
            "exa mple.com",
            "*.*.com",
            "*",
            "x.*.com",
            "é.com",
        ] {
            if s == "*" {
                continue;
            }
            assert!(matches!(s.parse::<Rule>(), Err(RuleError::Name(_))), "{s}");
        }
        assert!(RuleError::Ports("db:0".into())
            .to_string()
            .contains("1-65535"));
    }

    #[test]
    fn networks_hold_their_addresses_only() {
        let r = rule("10.0.0.0/8:443");
        assert!(r.allows_address("10.200.3.4".parse().unwrap(), 443));
        assert!(!r.allows_address("10.200.3.4".parse().unwrap(), 80));
        assert!(!r.allows_address("11.0.0.1".parse().unwrap(), 443));
        assert!(!r.allows_address("::ffff:10.0.0.1".parse().unwrap(), 443));
        assert!(!r.allows_name("10.0.0.1", 443));
        let v6 = rule("[2001:db8::/32]");
        assert!(v6.allows_address("2001:db8:1::5".parse().unwrap(), 1));
        assert!(!v6.allows_address("2001:db9::5".parse().unwrap(), 1));
        let all = rule("0.0.0.0/0");
        assert!(all.allows_address("8.8.8.8".parse().unwrap(), 53));
    }

    #[test]
    fn a_wildcard_covers_the_names_below_not_the_name_itself() {
        let r = rule("*.example.com:443");
        assert!(r.allows_name("a.example.com", 443));
        assert!(r.allows_name("A.B.Example.com.", 443));
        assert!(!r.allows_name("example.com", 443));
        assert!(!r.allows_name("badexample.com", 443));
        assert!(!r.allows_name("a.example.com", 80));
        assert!(r.covers_name("a.example.com"));
        let exact = rule("example.com");
        assert!(exact.allows_name("example.com", 1));
        assert!(!exact.allows_name("a.example.com", 1));
    }
}
