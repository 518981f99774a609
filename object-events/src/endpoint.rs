//! The push endpoint: `/s3-events/<function>[:<qualifier>]/<token>`.
//!
//! A store's push carries no signature, so the path is the credential: its
//! token is an HMAC-SHA256 of the function and qualifier under the host's
//! secret key, truncated to 128 bits. It lets a store invoke that one
//! function (and only under the function's own policy, checked by the
//! host), never another, and needs no state: every host with the same
//! secret makes and checks the same tokens.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The path under which pushes are received.
pub const PREFIX: &str = "/s3-events/";

/// Bytes of the HMAC kept in the token (hex, twice as many characters).
const TOKEN_BYTES: usize = 16;

/// Separates the parts of what is signed, so that no two functions sign
/// the same bytes.
const DOMAIN: &str = "mayfly-object-events";

fn mac(secret: &str, function: &str, qualifier: Option<&str>) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    for part in [DOMAIN, function, qualifier.unwrap_or("")] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac
}

/// The token for `function` (and `qualifier`) under `secret`.
pub fn token(secret: &str, function: &str, qualifier: Option<&str>) -> String {
    let full = mac(secret, function, qualifier).finalize().into_bytes();
    hex::encode(&full[..TOKEN_BYTES])
}

/// The endpoint's path for `function` with `token`.
pub fn path(function: &str, qualifier: Option<&str>, token: &str) -> String {
    match qualifier {
        Some(q) => format!("{PREFIX}{function}:{q}/{token}"),
        None => format!("{PREFIX}{function}/{token}"),
    }
}

/// What a push's path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The function's name.
    pub function: &'a str,
    /// Its version or alias, if named.
    pub qualifier: Option<&'a str>,
    /// The token as given (not yet checked).
    pub token: &'a str,
}

impl<'a> Target<'a> {
    /// The target of `path` (query already removed), or `None` when the
    /// path is not a push endpoint's.
    pub fn parse(path: &'a str) -> Option<Target<'a>> {
        let rest = path.strip_prefix(PREFIX)?;
        let (function, token) = rest.split_once('/')?;
        let token = token.strip_suffix('/').unwrap_or(token);
        if token.is_empty() || token.contains('/') || function.is_empty() {
            return None;
        }
        let (function, qualifier) = match function.split_once(':') {
            Some((name, q)) if !name.is_empty() && !q.is_empty() => (name, Some(q)),
            Some(_) => return None,
            None => (function, None),
        };
        Some(Target {
            function,
            qualifier,
            token,
        })
    }

    /// Whether the token is the one `secret` makes for this function,
    /// compared in constant time.
    pub fn token_is_valid(&self, secret: &str) -> bool {
        let Ok(given) = hex::decode(self.token) else {
            return false;
        };
        given.len() == TOKEN_BYTES
            && mac(secret, self.function, self.qualifier)
                .verify_truncated_left(&given)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_its_own_function_and_qualifier() {
        let t = token("s3cret", "f", None);
        assert_eq!(t.len(), 32);
        let p = path("f", None, &t);
        let ok = Target::parse(&p).unwrap();
        assert_eq!((ok.function, ok.qualifier), ("f", None));
        assert!(ok.token_is_valid("s3cret"));
        assert!(!ok.token_is_valid("other secret"));
        for wrong in [path("g", None, &t), path("f", Some("live"), &t)] {
            assert!(!Target::parse(&wrong).unwrap().token_is_valid("s3cret"));
        }
        let live = token("s3cret", "f", Some("live"));
        assert_ne!(live, t);
        let p = path("f", Some("live"), &live);
        let target = Target::parse(&p).unwrap();
        assert_eq!(target.qualifier, Some("live"));
        assert!(target.token_is_valid("s3cret"));
    }

    #[test]
    fn malformed_paths_and_tokens_are_refused() {
        for bad in [
            "/s3-events/",
            "/s3-events/f",
            "/s3-events/f/",
            "/s3-events//abc",
            "/s3-events/f:/abc",
            "/s3-events/:q/abc",
            "/s3-events/f/a/b",
            "/lambda-url/f/abc",
        ] {
            assert_eq!(Target::parse(bad), None, "{bad}");
        }
        let t = token("k", "f", None);
        for token in ["zz", &t[..30], &format!("{t}00"), &t.to_uppercase()[..31]] {
            let p = path("f", None, token);
            assert!(!Target::parse(&p).unwrap().token_is_valid("k"), "{token}");
        }
        // A trailing slash is the same endpoint.
        let p = format!("{}/", path("f", None, &t));
        assert!(Target::parse(&p).unwrap().token_is_valid("k"));
    }
}
