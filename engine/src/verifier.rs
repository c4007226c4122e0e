//! Batch hashing and signature verification behind one trait, so the node can route a batch to
//! the CPU or to a GPU (the `shaders` crate) and get exactly the same verdicts.

use crate::codec::{sha256, Digest};
use crate::crypto::{PublicKey, Signature};
use crate::merkle;
use rayon::prelude::*;

/// One signature to check: raw message bytes (already domain-separated), key, signature.
#[derive(Clone, Copy, Debug)]
pub struct VerifyItem<'a> {
    /// The exact signed bytes.
    pub msg: &'a [u8],
    /// The claimed signer.
    pub key: &'a PublicKey,
    /// The signature.
    pub sig: &'a Signature,
}

/// A verifier that failed as a whole (a GPU device lost, a timeout). The caller retries the
/// batch on the CPU; a verifier never returns a wrong verdict instead of an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{backend} verifier failed: {reason}")]
pub struct VerifierError {
    /// Which backend failed.
    pub backend: String,
    /// What went wrong.
    pub reason: String,
}

/// Batch SHA-256, Merkle roots and Ed25519 (ZIP-215) verification with one verdict per item.
pub trait BatchVerifier: Send + Sync {
    /// A short name for logs and metrics (`cpu`, `gpu:<adapter>`).
    fn name(&self) -> String;
    /// One verdict per item, in order; `true` exactly when ZIP-215 verification accepts it.
    fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<Vec<bool>, VerifierError>;
    /// SHA-256 of each message, in order.
    fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<Vec<Digest>, VerifierError>;
    /// The RFC 6962 Merkle root over `leaves`.
    fn merkle_root(&self, leaves: &[&[u8]]) -> Result<Digest, VerifierError>;
    /// Counters for `/metrics` (batches per backend, fallbacks); none by default.
    fn counters(&self) -> Vec<VerifierCounter> {
        Vec::new()
    }
}

/// One counter a verifier exposes: rendered as `medchain_verifier_<name>_total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierCounter {
    /// Snake-case name, without prefix or `_total`.
    pub name: &'static str,
    /// One line of help text.
    pub help: &'static str,
    /// The value.
    pub value: u64,
}

/// The CPU reference: `ed25519-consensus` batch verification across all cores.
///
/// Items are split into chunks; each chunk is checked with one batch equation, and only a chunk
/// that fails is re-checked item by item. Under ZIP-215 the batch and single equations agree, so
/// the verdicts are exactly the single-item verdicts.
#[derive(Clone, Debug, Default)]
pub struct CpuVerifier {
    _private: (),
}

/// Items per batch equation. Large enough to amortise the multiscalar multiplication, small
/// enough that one bad signature costs little re-checking.
const CPU_CHUNK_ITEMS: usize = 64;

impl CpuVerifier {
    /// A verifier on rayon's global pool (all cores).
    pub fn new() -> Self {
        Self::default()
    }

    fn verify_chunk(items: &[VerifyItem<'_>]) -> Vec<bool> {
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for it in items {
            let vk = ed25519_consensus::VerificationKeyBytes::from(it.key.0);
            batch.queue((vk, ed25519_consensus::Signature::from(it.sig.0), &it.msg));
        }
        // The batch equation's random coefficients come from a ChaCha stream seeded with a hash
        // of every item (Fiat-Shamir style): deterministic, and a forger would have to grind
        // that hash to make a bad batch pass. The engine never reads OS randomness.
        if items.len() > 1 && batch.verify(batch_rng(items)).is_ok() {
            return vec![true; items.len()];
        }
        items.iter().map(|it| crate::crypto::verify_raw(it.key, it.sig, it.msg)).collect()
    }
}

fn batch_rng(items: &[VerifyItem<'_>]) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    h.update(b"medchain/batch-coefficients/v1");
    for it in items {
        h.update(it.key.0);
        h.update(it.sig.0);
        h.update((it.msg.len() as u64).to_le_bytes());
        h.update(it.msg);
    }
    rand_chacha::ChaCha20Rng::from_seed(h.finalize().into())
}

impl BatchVerifier for CpuVerifier {
    fn name(&self) -> String {
        "cpu".into()
    }

    fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<Vec<bool>, VerifierError> {
        let verdicts: Vec<Vec<bool>> = items.par_chunks(CPU_CHUNK_ITEMS).map(Self::verify_chunk).collect();
        Ok(verdicts.into_iter().flatten().collect())
    }

    fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<Vec<Digest>, VerifierError> {
        Ok(msgs.par_iter().map(|m| sha256(m)).collect())
    }

    fn merkle_root(&self, leaves: &[&[u8]]) -> Result<Digest, VerifierError> {
        let hashes: Vec<Digest> = leaves.par_iter().map(|l| merkle::leaf_hash(l)).collect();
        Ok(merkle::root_from_leaf_hashes(hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SigningKey;

    #[test]
    fn mixed_batch_gets_per_item_verdicts() {
        let keys: Vec<SigningKey> = (0..200u8).map(|i| SigningKey::from_seed([i; 32])).collect();
        let msgs: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_le_bytes().to_vec()).collect();
        let pubs: Vec<PublicKey> = keys.iter().map(|k| k.public()).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign_raw(m)).collect();
        for i in [3usize, 64, 65, 199] {
            sigs[i].0[10] ^= 1;
        }
        let items: Vec<VerifyItem<'_>> =
            (0..200).map(|i| VerifyItem { msg: &msgs[i], key: &pubs[i], sig: &sigs[i] }).collect();
        let v = CpuVerifier::new().verify_batch(&items).unwrap();
        for (i, ok) in v.iter().enumerate() {
            assert_eq!(*ok, ![3, 64, 65, 199].contains(&i), "item {i}");
        }
    }

    #[test]
    fn merkle_root_matches_engine() {
        let leaves: Vec<Vec<u8>> = (0..100u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let refs: Vec<&[u8]> = leaves.iter().map(|l| l.as_slice()).collect();
        assert_eq!(CpuVerifier::new().merkle_root(&refs).unwrap(), merkle::root(&leaves));
    }
}
