//! GPU offload for medchain (WGSL compute shaders through wgpu): batch SHA-256, Merkle roots and
//! Ed25519 verification, behind engine's `BatchVerifier`. The only crate that will touch wgpu.
//!
//! Not built yet: this crate is the home of the GPU issue. Until then nodes use
//! `engine::verifier::CpuVerifier`, the reference every GPU verdict must equal.
#![forbid(unsafe_code)]
