//! GPU offload for medchain: WGSL compute shaders through wgpu for batch SHA-256, RFC 6962
//! Merkle roots and Ed25519 (ZIP-215) verification, behind engine's `BatchVerifier`. The only
//! crate that touches wgpu.
//!
//! - [`gpu`]: adapter choice (`MEDCHAIN_GPU`), the device, pipelines inside error scopes,
//!   submit-and-read-back with a timeout, kernel timers;
//! - [`hash`]: batch SHA-256 of messages of any length and Merkle roots built level by level;
//! - [`ed25519`]: batch ZIP-215 verification entirely on the GPU;
//! - [`verifier`]: [`GpuVerifier`], the kernels behind engine's `BatchVerifier`;
//! - [`routing`]: [`RoutedVerifier`], what a node runs: CPU below the measured crossover, GPU
//!   above it, CPU again when the GPU fails;
//! - [`wgsl`]: the shader sources.
//!
//! Every verdict equals `engine::verifier::CpuVerifier`'s; a GPU failure is an error the caller
//! answers by using the CPU, never a wrong verdict.
#![forbid(unsafe_code)]

pub mod ed25519;
pub mod gpu;
pub mod hash;
pub mod routing;
pub mod verifier;
pub mod wgsl;

pub use gpu::{AdapterPolicy, GpuContext, GpuError};
pub use routing::{Crossover, RoutedVerifier};
pub use verifier::GpuVerifier;
