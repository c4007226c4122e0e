//! Shared fixtures for medchain's criterion benches and `medchain bench`: deterministic signed
//! items, messages and leaves, so every run measures the same work.
//!
//! [`gpu`] is the measurement behind `medchain bench gpu` and the `gpu` criterion bench;
//! [`index`] the one behind `medchain bench index` (the encrypted keyword index against a
//! plaintext baseline); [`ops`] the one behind `medchain bench ops` (seed 001's table of
//! operations on a record, each through medchain's own code).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod gpu;
pub mod index;
pub mod ops;

use engine::crypto::{PublicKey, Signature, SigningKey};
use rayon::prelude::*;

/// `n` (message, key, signature) triples over `msg_len`-byte messages, all valid, from fixed seeds.
/// Item `i` depends only on `i`, so a shorter call gives a prefix of a longer one. Signed on
/// every core (rayon); the output does not depend on the thread count.
pub fn signed_items(n: usize, msg_len: usize) -> Vec<(Vec<u8>, PublicKey, Signature)> {
    (0..n)
        .into_par_iter()
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = SigningKey::from_seed(seed);
            let msg: Vec<u8> = (0..msg_len).map(|j| (i.wrapping_mul(31) + j) as u8).collect();
            let sig = key.sign_raw(&msg);
            (msg, key.public(), sig)
        })
        .collect()
}

/// `n` messages of `len` bytes (message `i` depends only on `i`), built on every core.
pub fn messages(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n).into_par_iter().map(|i| (0..len).map(|j| (i + j) as u8).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_deterministic_prefixes() {
        let a = signed_items(40, 600);
        let b = signed_items(7, 600);
        assert_eq!(&a[..7], &b[..], "a shorter call is a prefix of a longer one");
        for (m, k, s) in &a {
            assert!(engine::crypto::verify_raw(k, s, m));
        }
        assert_eq!(messages(3, 4), vec![vec![0, 1, 2, 3], vec![1, 2, 3, 4], vec![2, 3, 4, 5]]);
    }
}
