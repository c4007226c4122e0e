//! Shared fixtures for medchain's criterion benches and `medchain bench`: deterministic signed
//! items, messages and leaves, so every run measures the same work.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use engine::crypto::{PublicKey, Signature, SigningKey};

/// `n` (message, key, signature) triples over `msg_len`-byte messages, all valid, from fixed seeds.
pub fn signed_items(n: usize, msg_len: usize) -> Vec<(Vec<u8>, PublicKey, Signature)> {
    (0..n)
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

/// `n` messages of `len` bytes.
pub fn messages(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| (0..len).map(|j| (i + j) as u8).collect()).collect()
}
