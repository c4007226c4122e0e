//! Signature verification for the node: batches through a [`BatchVerifier`] (CPU now, GPU
//! later), with a cache of signatures already found valid.
//!
//! The same transaction signatures come back many times: in the client's submission or a
//! forward, then in the PRE-PREPARE, in VIEW-CHANGE proofs (retransmitted while a view change
//! lasts), in the NEW-VIEW, and in state transfer. A valid verdict is a pure function of
//! (key, signature, message), so it is cached under the SHA-256 of the three and never checked
//! twice while it stays in the cache. Only valid verdicts are cached; the cache is bounded and
//! forgets the oldest entries first.

use crate::limits::VERIFIED_SIGNATURES_CACHED_MAX;
use crate::metrics::Metrics;
use engine::codec::{sha256_parts, Digest};
use engine::pbft::message::SignatureCheck;
use engine::verifier::{BatchVerifier, CpuVerifier, VerifyItem};
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{error, warn};

/// Batch verification with a cache of valid signatures.
pub struct Verification {
    verifier: Arc<dyn BatchVerifier>,
    cache: Mutex<Cache>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Cache {
    valid: HashSet<Digest>,
    order: VecDeque<Digest>,
}

fn cache_key(c: &SignatureCheck) -> Digest {
    sha256_parts(&[b"medchain/verified/v1", &c.key.0, &c.sig.0, &c.msg])
}

impl Verification {
    /// Verification through `verifier`, counting into `metrics`.
    pub fn new(verifier: Arc<dyn BatchVerifier>, metrics: Arc<Metrics>) -> Self {
        Verification { verifier, cache: Mutex::new(Cache::default()), metrics }
    }

    /// One verdict per check, in order: `true` exactly when the signature is valid. Blocks (call
    /// it from a blocking thread).
    pub fn verify(&self, checks: &[SignatureCheck]) -> Vec<bool> {
        if checks.is_empty() {
            return Vec::new();
        }
        let keys: Vec<Digest> = checks.iter().map(cache_key).collect();
        let mut verdicts = vec![true; checks.len()];
        let misses: Vec<usize> = {
            let cache = self.cache.lock();
            (0..checks.len()).filter(|i| !cache.valid.contains(&keys[*i])).collect()
        };
        self.metrics.verify_cache_hits.fetch_add((checks.len() - misses.len()) as u64, Ordering::Relaxed);
        if misses.is_empty() {
            return verdicts;
        }
        let items: Vec<VerifyItem<'_>> = misses
            .iter()
            .map(|i| VerifyItem { msg: &checks[*i].msg, key: &checks[*i].key, sig: &checks[*i].sig })
            .collect();
        let fresh = self.batch(&items);
        let mut cache = self.cache.lock();
        for (i, ok) in misses.into_iter().zip(fresh) {
            verdicts[i] = ok;
            if ok && cache.valid.insert(keys[i]) {
                cache.order.push_back(keys[i]);
            }
        }
        while cache.order.len() > VERIFIED_SIGNATURES_CACHED_MAX {
            if let Some(old) = cache.order.pop_front() {
                cache.valid.remove(&old);
            }
        }
        verdicts
    }

    /// The configured verifier, falling back to the CPU reference if it fails as a whole.
    fn batch(&self, items: &[VerifyItem<'_>]) -> Vec<bool> {
        self.metrics.observe_verify_batch(items.len());
        match self.verifier.verify_batch(items) {
            Ok(v) if v.len() == items.len() => v,
            Ok(v) => {
                error!(verifier = %self.verifier.name(), got = v.len(), want = items.len(), "verifier returned the wrong number of verdicts; using the CPU");
                cpu_verdicts(items)
            }
            Err(e) => {
                warn!(error = %e, "batch verifier failed; using the CPU");
                cpu_verdicts(items)
            }
        }
    }
}

fn cpu_verdicts(items: &[VerifyItem<'_>]) -> Vec<bool> {
    // The CPU verifier never fails as a whole; if it did, refusing everything is the safe side.
    CpuVerifier::new().verify_batch(items).unwrap_or_else(|_| vec![false; items.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::crypto::SigningKey;

    fn check(seed: u8, msg: &[u8]) -> SignatureCheck {
        let k = SigningKey::from_seed([seed; 32]);
        SignatureCheck { msg: msg.to_vec(), key: k.public(), sig: k.sign_raw(msg) }
    }

    #[test]
    fn valid_signatures_are_cached_and_invalid_ones_never() {
        let metrics = Arc::new(Metrics::default());
        let v = Verification::new(Arc::new(CpuVerifier::new()), metrics.clone());
        let good = check(1, b"hello");
        let mut bad = check(2, b"world");
        bad.sig.0[0] ^= 1;
        assert_eq!(v.verify(&[good.clone(), bad.clone()]), vec![true, false]);
        assert_eq!(metrics.verify_cache_hits.load(Ordering::Relaxed), 0);
        assert_eq!(v.verify(&[good.clone(), bad.clone()]), vec![true, false]);
        assert_eq!(metrics.verify_cache_hits.load(Ordering::Relaxed), 1);
        // The same key and signature over another message is not a hit.
        let moved = SignatureCheck { msg: b"hellp".to_vec(), ..good };
        assert_eq!(v.verify(&[moved]), vec![false]);
        assert_eq!(metrics.verify_cache_hits.load(Ordering::Relaxed), 1);
    }
}
