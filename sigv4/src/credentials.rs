//! Access key pairs: generating them and looking them up.

use std::collections::HashMap;
use std::fmt;

use crate::error::RandomError;

/// An access key id and its secret access key.
///
/// `Debug` shows the id and hides the secret, so a `Credentials` can be
/// logged safely.
///
/// ```
/// use mayfly_sigv4::Credentials;
/// let c = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
/// assert_eq!(format!("{c:?}"), r#"Credentials { access_key_id: "AKIDEXAMPLE", secret_access_key: "<redacted>" }"#);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The public half, e.g. `AKIA...` (20 characters).
    pub access_key_id: String,
    /// The secret half (40 characters for generated keys).
    pub secret_access_key: String,
}

impl Credentials {
    /// A key pair from its two halves.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Where the verifier finds the secret of an access key id.
///
/// Implemented for a single [`Credentials`], for `HashMap<String, String>`
/// (id → secret), for slices of `Credentials`, and for closures
/// `Fn(&str) -> Option<String>`.
pub trait CredentialLookup {
    /// The secret access key of `access_key_id`, or `None` if the id is unknown.
    fn secret_access_key(&self, access_key_id: &str) -> Option<String>;
}

impl CredentialLookup for Credentials {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        (self.access_key_id == access_key_id).then(|| self.secret_access_key.clone())
    }
}

impl CredentialLookup for [Credentials] {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self.iter()
            .find(|c| c.access_key_id == access_key_id)
            .map(|c| c.secret_access_key.clone())
    }
}

impl<S: std::hash::BuildHasher> CredentialLookup for HashMap<String, String, S> {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self.get(access_key_id).cloned()
    }
}

impl<F: Fn(&str) -> Option<String>> CredentialLookup for F {
    fn secret_access_key(&self, access_key_id: &str) -> Option<String> {
        self(access_key_id)
    }
}

/// The prefix of generated access key ids (AWS uses `AKIA` for long-term
/// IAM user keys).
pub const ACCESS_KEY_PREFIX: &str = "AKIA";

const ID_ALPHABET: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `n` characters drawn uniformly from `alphabet` using the OS RNG
/// (rejection sampling, so there is no modulo bias).
fn random_string(alphabet: &[u8], n: usize) -> Result<String, RandomError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < n {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    Ok(out)
}

/// A fresh key pair from the operating system's RNG, shaped like AWS's:
/// an access key id of `AKIA` and 16 uppercase letters or digits (20
/// characters), and a 40-character secret over `A-Z a-z 0-9 + /`
/// (240 bits).
///
/// ```
/// let c = mayfly_sigv4::generate_credentials().unwrap();
/// assert_eq!(c.access_key_id.len(), 20);
/// assert!(c.access_key_id.starts_with("AKIA"));
/// assert!(c.access_key_id.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
/// assert_eq!(c.secret_access_key.len(), 40);
/// ```
pub fn generate_credentials() -> Result<Credentials, RandomError> {
    let id = format!("{ACCESS_KEY_PREFIX}{}", random_string(ID_ALPHABET, 16)?);
    let secret = random_string(SECRET_ALPHABET, 40)?;
    Ok(Credentials::new(id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_use_their_alphabets() {
        let a = generate_credentials().unwrap();
        let b = generate_credentials().unwrap();
        assert_ne!(a.access_key_id, b.access_key_id);
        assert_ne!(a.secret_access_key, b.secret_access_key);
        assert!(a
            .secret_access_key
            .bytes()
            .all(|c| SECRET_ALPHABET.contains(&c)));
    }

    #[test]
    fn lookups() {
        let one = Credentials::new("A", "s");
        assert_eq!(one.secret_access_key("A").as_deref(), Some("s"));
        assert_eq!(one.secret_access_key("B"), None);
        let map: HashMap<String, String> = [("B".to_owned(), "t".to_owned())].into();
        assert_eq!(map.secret_access_key("B").as_deref(), Some("t"));
        let list = [one.clone(), Credentials::new("C", "u")];
        assert_eq!(list[..].secret_access_key("C").as_deref(), Some("u"));
        let f = |id: &str| (id == "D").then(|| "v".to_owned());
        assert_eq!(f.secret_access_key("D").as_deref(), Some("v"));
    }
}
