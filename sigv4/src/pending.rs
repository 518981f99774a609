//! The second step of verification: a request whose headers passed, and
//! the checks that need its body.

use subtle::ConstantTimeEq;

use crate::canonical::{sha256_hex, signature, string_to_sign, CanonicalRequest, UNSIGNED_PAYLOAD};
use crate::error::VerifyError;
use crate::verify::VerifiedIdentity;

/// A request whose headers passed every check that does not need the body;
/// [`PendingSignature::verify_body`] finishes the verification.
///
/// A server checks the headers first so that it reads the body of an
/// authenticated request only: a client without the key cannot make it
/// buffer anything.
#[derive(Clone)]
pub struct PendingSignature {
    pub(crate) identity: VerifiedIdentity,
    pub(crate) canonical: CanonicalRequest,
    /// `x-amz-content-sha256` as sent, when it is a hash.
    pub(crate) declared_hash: Option<String>,
    pub(crate) amz_date: String,
    pub(crate) scope: String,
    pub(crate) signing_key: [u8; 32],
    pub(crate) signature: String,
}

impl std::fmt::Debug for PendingSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The signing key is a secret: never in logs.
        f.debug_struct("PendingSignature")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl PendingSignature {
    /// Who the request says signed it (not yet proven).
    pub fn claimed_identity(&self) -> &VerifiedIdentity {
        &self.identity
    }

    /// Checks `body` (complete) against the payload hash and the signature.
    pub fn verify_body(self, body: &[u8]) -> Result<VerifiedIdentity, VerifyError> {
        let body_hash = sha256_hex(body);
        match &self.declared_hash {
            // The signature was checked over the declared hash already.
            Some(declared) if declared.eq_ignore_ascii_case(&body_hash) => Ok(self.identity),
            Some(_) => Err(VerifyError::ContentSha256Mismatch),
            None if self.identity.payload_signed => {
                self.check_signature(body_hash)?;
                Ok(self.identity)
            }
            None => {
                self.check_signature(UNSIGNED_PAYLOAD.to_owned())?;
                Ok(self.identity)
            }
        }
    }

    pub(crate) fn check_signature(&self, payload_hash: String) -> Result<(), VerifyError> {
        let mut canonical = self.canonical.clone();
        canonical.payload_hash = payload_hash;
        let canonical_request = canonical.render();
        let sts = string_to_sign(&self.amz_date, &self.scope, &canonical_request);
        let expected = signature(&self.signing_key, &sts);
        if !bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes())) {
            return Err(VerifyError::SignatureMismatch {
                canonical_request,
                string_to_sign: sts,
            });
        }
        Ok(())
    }
}
