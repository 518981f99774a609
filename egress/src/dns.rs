//! The DNS the host answers for a guest, with no I/O: a query parsed into
//! a checked [`Query`], and the answer built as bytes ([`answer`]). Only
//! what a stub resolver asks is understood: one question, class IN; an A
//! question gets the IPv4 addresses the policy let through, any other type
//! an empty answer (the guest's network is IPv4), a name the policy does
//! not allow NXDOMAIN, and a message that is not such a query FORMERR or
//! nothing at all.
//!
//! ```
//! use mayfly_egress::dns::{answer, Query, Rcode};
//! // A query for `db.example.com`, type A, id 0x1234, recursion desired.
//! let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
//! for label in ["db", "example", "com"] {
//!     q.push(label.len() as u8);
//!     q.extend_from_slice(label.as_bytes());
//! }
//! q.extend_from_slice(&[0, 0, 1, 0, 1]);
//! let query = Query::parse(&q).unwrap();
//! assert_eq!(query.name, "db.example.com");
//! let reply = answer(&query, Rcode::NoError, &[[203, 0, 113, 5].into()], 60);
//! assert_eq!(&reply[..2], &[0x12, 0x34]);
//! assert_eq!(&reply[reply.len() - 4..], &[203, 0, 113, 5]);
//! ```

use std::net::Ipv4Addr;

/// The A record type.
pub const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// Bytes of a DNS header.
const HEADER: usize = 12;
/// The longest name, in presentation form.
const MAX_NAME: usize = 253;

/// Why a message is not a query this server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Shorter than its header says, or malformed: no answer at all.
    #[error("a truncated or malformed DNS message")]
    Malformed,
    /// A response, or not a standard query, or not one question of class
    /// IN: answered FORMERR (or NOTIMP) with the id.
    #[error("not a standard query of one question")]
    Unsupported {
        /// The message's id.
        id: u16,
    },
}

/// A standard query of one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Its id.
    pub id: u16,
    /// Whether the client asked for recursion.
    pub recursion_desired: bool,
    /// The name asked for, lower case, without the trailing dot.
    pub name: String,
    /// The type asked for.
    pub qtype: u16,
    /// The question as it came (name, type, class), echoed in the answer.
    question: Vec<u8>,
}

impl Query {
    /// Parses `message`.
    pub fn parse(message: &[u8]) -> Result<Query, QueryError> {
        if message.len() < HEADER {
            return Err(QueryError::Malformed);
        }
        let id = u16::from_be_bytes([message[0], message[1]]);
        let flags = u16::from_be_bytes([message[2], message[3]]);
        let count = |at: usize| u16::from_be_bytes([message[at], message[at + 1]]);
        let is_response = flags & 0x8000 != 0;
        let opcode = (flags >> 11) & 0xf;
        if is_response || opcode != 0 || count(4) != 1 {
            return Err(QueryError::Unsupported { id });
        }
        let mut at = HEADER;
        let mut labels: Vec<String> = Vec::new();
        loop {
            let len = *message.get(at).ok_or(QueryError::Malformed)? as usize;
            at += 1;
            if len == 0 {
                break;
            }
            // No compression in a question, and labels are at most 63.
            if len > 63 {
                return Err(QueryError::Unsupported { id });
            }
            let label = message.get(at..at + len).ok_or(QueryError::Malformed)?;
            if !label
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            {
                return Err(QueryError::Unsupported { id });
            }
            labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
            at += len;
        }
        let name = labels.join(".");
        if name.len() > MAX_NAME {
            return Err(QueryError::Unsupported { id });
        }
        let tail = message.get(at..at + 4).ok_or(QueryError::Malformed)?;
        let qtype = u16::from_be_bytes([tail[0], tail[1]]);
        let qclass = u16::from_be_bytes([tail[2], tail[3]]);
        if qclass != CLASS_IN {
            return Err(QueryError::Unsupported { id });
        }
        Ok(Query {
            id,
            recursion_desired: flags & 0x0100 != 0,
            name,
            qtype,
            question: message[HEADER..at + 4].to_vec(),
        })
    }
}

/// An answer's response code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    /// The name exists (its addresses, if any, follow).
    NoError = 0,
    /// The query was not understood.
    FormErr = 1,
    /// The host could not resolve it.
    ServFail = 2,
    /// No such name (or one the policy does not allow).
    NxDomain = 3,
}

/// The answer to `query`: `rcode`, and for an A question the `addresses`
/// as records with `ttl` seconds.
pub fn answer(query: &Query, rcode: Rcode, addresses: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let records: &[Ipv4Addr] = if query.qtype == TYPE_A && rcode == Rcode::NoError {
        addresses
    } else {
        &[]
    };
    let mut out = Vec::with_capacity(HEADER + query.question.len() + 16 * records.len());
    out.extend_from_slice(&query.id.to_be_bytes());
    // QR, the client's RD, RA, and the code.
    let flags = 0x8000 | (u16::from(query.recursion_desired) << 8) | 0x0080 | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(records.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&query.question);
    for address in records {
        // The name as a pointer to the question's (offset 12).
        out.extend_from_slice(&[0xc0, HEADER as u8]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&address.octets());
    }
    out
}

/// The answer to a message that is not a query this server takes but has
/// an id: FORMERR with no question.
pub fn refusal(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(0x8000u16 | 0x0080 | Rcode::FormErr as u16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&1u16.to_be_bytes());
        q
    }

    #[test]
    fn a_query_parses_lower_cased() {
        let q = Query::parse(&query("API.Example.com", TYPE_A)).unwrap();
        assert_eq!(
            (q.id, q.name.as_str(), q.qtype),
            (0xabcd, "api.example.com", 1)
        );
        assert!(q.recursion_desired);
    }

    #[test]
    fn an_answer_carries_the_question_and_its_records() {
        let q = Query::parse(&query("a.example.com", TYPE_A)).unwrap();
        let addresses = [
            Ipv4Addr::new(198, 51, 100, 7),
            Ipv4Addr::new(198, 51, 100, 8),
        ];
        let reply = answer(&q, Rcode::NoError, &addresses, 30);
        assert_eq!(&reply[2..4], &[0x81, 0x80]);
        assert_eq!(&reply[6..8], &[0, 2]);
        let question = query("a.example.com", TYPE_A)[12..].to_vec();
        assert_eq!(&reply[12..12 + question.len()], &question[..]);
        let first = 12 + question.len();
        assert_eq!(
            &reply[first..first + 16],
            &[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 198, 51, 100, 7]
        );
        assert_eq!(reply.len(), first + 32);
    }

    #[test]
    fn nxdomain_and_other_types_have_no_records() {
        let q = Query::parse(&query("a.example.com", TYPE_A)).unwrap();
        let reply = answer(&q, Rcode::NxDomain, &[Ipv4Addr::LOCALHOST], 30);
        assert_eq!(&reply[2..4], &[0x81, 0x83]);
        assert_eq!(&reply[6..8], &[0, 0]);
        let aaaa = Query::parse(&query("a.example.com", 28)).unwrap();
        let reply = answer(&aaaa, Rcode::NoError, &[Ipv4Addr::LOCALHOST], 30);
        assert_eq!(&reply[6..8], &[0, 0]);
    }

    #[test]
    fn what_is_not_a_simple_query_is_refused_or_dropped() {
        assert_eq!(Query::parse(&[0; 5]), Err(QueryError::Malformed));
        let mut response = query("a.b", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(
            Query::parse(&response),
            Err(QueryError::Unsupported { id: 0xabcd })
        );
        let mut two = query("a.b", TYPE_A);
        two[5] = 2;
        assert_eq!(
            Query::parse(&two),
            Err(QueryError::Unsupported { id: 0xabcd })
        );
        let mut pointer = query("a.b", TYPE_A);
        pointer[12] = 0xc0;
        assert_eq!(
            Query::parse(&pointer),
            Err(QueryError::Unsupported { id: 0xabcd })
        );
        let truncated = &query("a.example.com", TYPE_A)[..20];
        assert_eq!(Query::parse(truncated), Err(QueryError::Malformed));
        let mut chaos = query("a.b", TYPE_A);
        let n = chaos.len();
        chaos[n - 1] = 3;
        assert_eq!(
            Query::parse(&chaos),
            Err(QueryError::Unsupported { id: 0xabcd })
        );
        assert_eq!(&refusal(0x0102)[..4], &[0x01, 0x02, 0x80, 0x81]);
    }
}
