//! Mayfly's egress policy, with no I/O: what a function may reach outside
//! its VM.
//!
//! The host's operator opens destinations with `mayfly serve --egress
//! RULE` (none by default: no egress); a function's `mayfly:egress` tag
//! narrows them (never widens). The host's relay asks [`Policy::check`]
//! before it opens a connection for the guest, and its DNS asks
//! [`Policy::may_resolve`] before it resolves a name, then records the
//! answer with [`Policy::resolved`] so that connections to those addresses
//! are allowed on the name's ports.
//!
//! ```
//! use mayfly_egress::{Destination, Policy, Refusal, Rules};
//!
//! let host = Rules::parse_each(["host.mayfly.internal:5432", "*.example.com:443"]).unwrap();
//! let tag = Rules::parse_tag("host.mayfly.internal:5432").unwrap();
//! let mayfly_ports = vec![9000];
//! let policy = Policy::new(host, Some(tag), mayfly_ports, vec![]);
//! assert_eq!(policy.check(Destination::Host(5432)), Ok(()));
//! // The tag left the names out.
//! assert!(!policy.may_resolve("api.example.com"));
//! assert_eq!(policy.check(Destination::Host(9000)), Err(Refusal::MayflyPort));
//! ```
#![deny(missing_docs)]

pub mod dns;
mod policy;
mod rule;

pub use policy::{Destination, Policy, Refusal, Rules, FUNCTION_TAG, HOST_NAME};
pub use rule::{NamePattern, Network, Ports, Rule, RuleError, Target};
