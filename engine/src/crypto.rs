//! Ed25519 keys and signatures under ZIP-215 rules, and domain separation.
//!
//! Every signature in medchain covers `domain tag ‖ chain id ‖ canonical bytes`
//! ([`signing_bytes`]): a signature made for one purpose or one consortium is never valid for
//! another. Verification follows ZIP-215 (cofactored equation, non-canonical point encodings
//! accepted, `S < ℓ` required) through `ed25519-consensus`, the reference every other verifier
//! (batch, GPU) must agree with.

use crate::codec::{bytes_newtype_serde, parse_hex_array, DecodeError};
use crate::limits::CHAIN_ID_BYTES_MAX;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An Ed25519 public key as 32 bytes. Not validated on construction: a key that does not decode
/// to a curve point simply never verifies.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);
bytes_newtype_serde!(PublicKey, 32);

/// An Ed25519 signature as 64 bytes (R ‖ S).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);
bytes_newtype_serde!(Signature, 64);

impl PublicKey {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
        parse_hex_array(s).map(PublicKey)
    }
    /// A short form for logs: the first 8 hex characters.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl Signature {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// Parses 128 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
        parse_hex_array(s).map(Signature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.short())
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..6]))
    }
}

/// What a signature is for. The tag is the first thing signed, so signatures cannot be moved
/// between purposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A transaction body, signed by each of its signers.
    Transaction,
    /// A PBFT message signed by a replica.
    Consensus,
    /// The genesis, signed by the consortium CA.
    Genesis,
    /// A researcher's request to a hospital's token service for term keys.
    TokenRequest,
    /// A doctor's request to its hospital's node for a record's index labels.
    LabelRequest,
}

impl Domain {
    /// The tag bytes, versioned.
    pub const fn tag(self) -> &'static [u8] {
        match self {
            Domain::Transaction => b"medchain/tx/v1",
            Domain::Consensus => b"medchain/pbft/v1",
            Domain::Genesis => b"medchain/genesis/v1",
            Domain::TokenRequest => b"medchain/index/token-request/v1",
            Domain::LabelRequest => b"medchain/index/label-request/v1",
        }
    }
}

/// The identity of one consortium: lowercase letters, digits and `-`, 1 to 64 bytes.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainId(String);

impl ChainId {
    /// Checks the form and builds a chain id.
    pub fn new(s: impl Into<String>) -> Result<Self, ChainIdError> {
        let s = s.into();
        if s.is_empty() || s.len() > CHAIN_ID_BYTES_MAX {
            return Err(ChainIdError(s));
        }
        if !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(ChainIdError(s));
        }
        Ok(ChainId(s))
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A chain id of the wrong form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid chain id {0:?}: use 1 to 64 characters from a-z, 0-9 and '-'")]
pub struct ChainIdError(pub String);

impl TryFrom<String> for ChainId {
    type Error = ChainIdError;
    fn try_from(s: String) -> Result<Self, ChainIdError> {
        ChainId::new(s)
    }
}
impl From<ChainId> for String {
    fn from(c: ChainId) -> String {
        c.0
    }
}
impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({})", self.0)
    }
}
impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The exact bytes a signature covers: `tag ‖ len(chain id) ‖ chain id ‖ payload`.
pub fn signing_bytes(domain: Domain, chain_id: &ChainId, payload: &[u8]) -> Vec<u8> {
    let tag = domain.tag();
    let chain = chain_id.as_str().as_bytes();
    let mut out = Vec::with_capacity(tag.len() + 1 + chain.len() + payload.len());
    out.extend_from_slice(tag);
    // The chain id is at most 64 bytes (checked at construction), so its length fits one byte.
    out.push(chain.len() as u8);
    out.extend_from_slice(chain);
    out.extend_from_slice(payload);
    out
}

/// An Ed25519 signing key. Created from 32 secret bytes that the caller supplies: the engine
/// takes randomness as an input and never draws it itself.
#[derive(Clone)]
pub struct SigningKey(ed25519_consensus::SigningKey);

impl SigningKey {
    /// The key for this 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SigningKey(ed25519_consensus::SigningKey::from(seed))
    }
    /// The secret seed, for storing the key.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verification_key().to_bytes())
    }
    /// Signs `payload` for `domain` on `chain_id`.
    pub fn sign(&self, domain: Domain, chain_id: &ChainId, payload: &[u8]) -> Signature {
        Signature(self.0.sign(&signing_bytes(domain, chain_id, payload)).to_bytes())
    }
    /// Signs raw bytes, without domain separation. Only for test vectors and benchmarks.
    pub fn sign_raw(&self, msg: &[u8]) -> Signature {
        Signature(self.0.sign(msg).to_bytes())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public().short())
    }
}

/// Verifies one signature over raw bytes with ZIP-215 rules. This is the reference verdict.
pub fn verify_raw(key: &PublicKey, sig: &Signature, msg: &[u8]) -> bool {
    let Ok(vk) = ed25519_consensus::VerificationKey::try_from(key.0) else {
        return false;
    };
    vk.verify(&ed25519_consensus::Signature::from(sig.0), msg).is_ok()
}

/// Verifies a domain-separated signature.
pub fn verify(key: &PublicKey, sig: &Signature, domain: Domain, chain_id: &ChainId, payload: &[u8]) -> bool {
    verify_raw(key, sig, &signing_bytes(domain, chain_id, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_bound_to_domain_and_chain() {
        let k = SigningKey::from_seed([1; 32]);
        let a = ChainId::new("hospital-net").unwrap();
        let b = ChainId::new("hospital-net-2").unwrap();
        let sig = k.sign(Domain::Transaction, &a, b"payload");
        assert!(verify(&k.public(), &sig, Domain::Transaction, &a, b"payload"));
        assert!(!verify(&k.public(), &sig, Domain::Consensus, &a, b"payload"));
        assert!(!verify(&k.public(), &sig, Domain::Transaction, &b, b"payload"));
        assert!(!verify(&k.public(), &sig, Domain::Transaction, &a, b"payload!"));
    }

    #[test]
    fn chain_id_form_is_checked() {
        assert!(ChainId::new("medchain-local-1").is_ok());
        assert!(ChainId::new("").is_err());
        assert!(ChainId::new("Upper").is_err());
        assert!(ChainId::new("a".repeat(65)).is_err());
        assert!(serde_json::from_str::<ChainId>("\"bad id\"").is_err());
    }

    #[test]
    fn keys_round_trip_through_hex() {
        let k = SigningKey::from_seed([9; 32]).public();
        assert_eq!(PublicKey::from_hex(&k.to_hex()).unwrap(), k);
        assert!(PublicKey::from_hex("zz").is_err());
    }
}
