//! The WGSL sources, embedded at build time. Each is one self-contained module (no
//! preprocessor), validated by naga in this crate's tests.

/// Batch SHA-256 over messages of any length, and the RFC 6962 Merkle leaf and node levels.
pub const SHA256: &str = include_str!("../wgsl/sha256.wgsl");

/// Batch Ed25519 verification with ZIP-215 rules: SHA-512, scalars mod ℓ, field arithmetic
/// mod 2^255 - 19 on u32 limbs, point decompression and the cofactored check.
pub const ED25519: &str = include_str!("../wgsl/ed25519.wgsl");

/// Every source with its file name, for validation.
pub const ALL: &[(&str, &str)] = &[("sha256.wgsl", SHA256), ("ed25519.wgsl", ED25519)];
