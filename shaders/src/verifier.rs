//! [`GpuVerifier`]: engine's `BatchVerifier` on the GPU kernels.

use crate::ed25519::GpuEd25519;
use crate::gpu::{GpuContext, GpuError};
use crate::hash::GpuHasher;
use engine::codec::Digest;
use engine::verifier::{BatchVerifier, VerifierError, VerifyItem};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Batch SHA-256, Merkle roots and Ed25519 verification on one GPU.
///
/// Kernels are built once; a call may run concurrently with others (wgpu queues are shared),
/// and each call's buffers are its own. Any GPU failure is returned as a [`VerifierError`],
/// which the caller answers by re-doing the batch on the CPU.
pub struct GpuVerifier {
    ctx: Arc<GpuContext>,
    hasher: GpuHasher,
    ed25519: GpuEd25519,
    injected_failures: AtomicU64,
}

impl std::fmt::Debug for GpuVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuVerifier").field("adapter", &self.ctx.describe()).finish()
    }
}

impl GpuVerifier {
    /// Builds every kernel on `ctx`.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let hasher = GpuHasher::new(ctx.clone())?;
        let ed25519 = GpuEd25519::new(ctx.clone())?;
        Ok(Self { ctx, hasher, ed25519, injected_failures: AtomicU64::new(0) })
    }

    /// The adapter `MEDCHAIN_GPU` allows, with its kernels; `None` quickly when there is none.
    pub fn try_new() -> Option<Self> {
        let ctx = GpuContext::try_new()?;
        match Self::new(ctx) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "GPU found but its kernels could not be built; using the CPU");
                None
            }
        }
    }

    /// The context (adapter, limits, features).
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// The hashing kernels.
    pub fn hasher(&self) -> &GpuHasher {
        &self.hasher
    }

    /// The signature kernel.
    pub fn ed25519(&self) -> &GpuEd25519 {
        &self.ed25519
    }

    /// Fault injection for operators' drills and tests: the next `n` calls fail as a lost
    /// device would, so the fallback to the CPU can be exercised on a healthy GPU.
    pub fn inject_failures(&self, n: u64) {
        self.injected_failures.store(n, Ordering::SeqCst);
    }

    fn injected(&self) -> Result<(), VerifierError> {
        let took = self.injected_failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match took {
            Ok(_) => Err(self.err(GpuError::DeviceLost("injected failure".into()))),
            Err(_) => Ok(()),
        }
    }

    fn err(&self, e: GpuError) -> VerifierError {
        VerifierError { backend: self.name(), reason: e.to_string() }
    }
}

impl BatchVerifier for GpuVerifier {
    fn name(&self) -> String {
        format!("gpu:{}", self.ctx.info.name)
    }

    fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<Vec<bool>, VerifierError> {
        self.injected()?;
        self.ed25519.verify_batch(items).map_err(|e| self.err(e))
    }

    fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<Vec<Digest>, VerifierError> {
        self.injected()?;
        let out = self.hasher.sha256_batch(msgs).map_err(|e| self.err(e))?;
        Ok(out.into_iter().map(Digest).collect())
    }

    fn merkle_root(&self, leaves: &[&[u8]]) -> Result<Digest, VerifierError> {
        self.injected()?;
        self.hasher.merkle_root(leaves).map(Digest).map_err(|e| self.err(e))
    }
}
