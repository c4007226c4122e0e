//! Batch SHA-256 and Merkle roots on the GPU. (Being written.)

use crate::gpu::{GpuContext, GpuError};
use std::sync::Arc;
use std::time::Duration;

/// SHA-256 and RFC 6962 Merkle roots on the GPU.
pub struct GpuHasher {
    ctx: Arc<GpuContext>,
}

impl GpuHasher {
    /// Creates the pipelines once.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        Ok(Self { ctx })
    }

    /// SHA-256 of each message, in order, with the kernel time when timestamps are available.
    pub fn sha256_batch_timed(&self, msgs: &[&[u8]]) -> Result<(Vec<[u8; 32]>, Option<Duration>), GpuError> {
        let _ = (&self.ctx, msgs);
        Err(GpuError::Uncaptured("not built yet".into()))
    }

    /// SHA-256 of each message, in order.
    pub fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<Vec<[u8; 32]>, GpuError> {
        self.sha256_batch_timed(msgs).map(|r| r.0)
    }

    /// The RFC 6962 root over `leaves` (byte-identical to `engine::merkle::root`), with the
    /// kernel time when timestamps are available.
    pub fn merkle_root_timed(&self, leaves: &[&[u8]]) -> Result<([u8; 32], Option<Duration>), GpuError> {
        let _ = leaves;
        Err(GpuError::Uncaptured("not built yet".into()))
    }

    /// The RFC 6962 root over `leaves`.
    pub fn merkle_root(&self, leaves: &[&[u8]]) -> Result<[u8; 32], GpuError> {
        self.merkle_root_timed(leaves).map(|r| r.0)
    }
}
