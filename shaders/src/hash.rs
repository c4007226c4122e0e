//! Batch SHA-256 and RFC 6962 Merkle roots on the GPU (`wgsl/sha256.wgsl`).
//!
//! **SHA-256.** One invocation per message. The host packs the messages into a word buffer,
//! each from a word boundary with its last word zero-filled, plus one (first word, length) span
//! per message; the shader pads and runs as many blocks as each message needs. A batch is cut
//! into chunks (at most [`HasherLimits::chunk_messages`] messages and about
//! [`HasherLimits::chunk_bytes`] of data, never more than the device's largest storage binding)
//! and the chunks are submitted back to back without waiting: while the GPU hashes chunk i the
//! host packs chunk i + 1 into a staging buffer (`Queue::write_buffer_with`), whose copy runs
//! at the start of the next submission, ordered after chunk i. Each chunk's digests are copied
//! into one read-back buffer, mapped once at the end (or when it is full).
//!
//! **Merkle roots.** Leaves are hashed by the same kernel with the RFC 6962 0x00 prefix set by a
//! uniform, straight into a level buffer; a node kernel then builds the tree level by level
//! (ping-pong between two buffers, an odd last node promoted unchanged), every level encoded in
//! the same submission as the last leaf chunk, and only the 32-byte root is read back. Trees
//! wider than a level buffer ([`HasherLimits::level_digests`], a power of two) are built as
//! subtrees of that many leaves whose roots are then reduced the same way; since the subtree
//! size is a power of two, pairs never straddle two subtrees, so the root is the same as the
//! level-by-level root of `engine::merkle`.
//!
//! Digests live in GPU buffers as their 32 bytes in order, so a level feeds the next one and
//! read-back is a plain copy.
//!
//! **Limits.** One message must fit one storage binding ([`HasherLimits::max_binding_bytes`]:
//! the device's largest, at most 2 GiB); a larger
//! one is refused with [`GpuError::Validation`] before anything is submitted, and the caller
//! hashes that batch on the CPU. One invocation hashes a whole message, so a very long message
//! runs at the speed of one GPU thread.
//!
//! Pipelines and the round-constant buffer are built once; the other buffers live in a pool
//! (one set per concurrent call, grown on demand and kept for the next call). Every wgpu call
//! runs inside [`GpuContext::scoped`], so a validation or out-of-memory error, a lost device, a
//! timeout or a failed mapping is returned as [`GpuError`]; a set that saw an error is dropped,
//! not reused.

use crate::gpu::{GpuContext, GpuError, PassTimer};
use crate::wgsl;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Invocations per workgroup of both kernels (`@workgroup_size(64)` in the shader).
const WORKGROUP: u32 = 64;
/// Distance between two parameter blocks in the uniform buffer (a multiple of every allowed
/// `min_uniform_buffer_offset_alignment`, which is at most 256).
const PARAM_STRIDE: u64 = 256;
/// Bytes per digest.
const DIGEST: u64 = 32;
/// Pooled buffer sets kept for later calls (one per call running at the same time).
const POOLED_SETS: usize = 4;
/// Largest storage binding the host uses, whatever the device allows, so that every byte
/// length and word offset fits the shader's u32 arithmetic with room for the padding.
const MAX_BINDING: u64 = 1 << 31;

/// SHA-256 round constants (FIPS 180-4 §4.2.2), uploaded once into a storage buffer.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

/// The shader's `Params` (one block per dispatch, selected by a dynamic offset).
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    count: u32,
    leaf: u32,
    out_base: u32,
    row_stride: u32,
    n_in: u32,
    pad: [u32; 3],
}

/// How a batch is cut into chunks and a tree into subtrees. [`HasherLimits::for_device`] gives
/// the defaults; smaller values (tests) force the chunked paths. Every value is clamped to what
/// the device allows when the hasher is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HasherLimits {
    /// Most messages in one chunk (one dispatch, one submission).
    pub chunk_messages: usize,
    /// Message bytes one chunk aims at; a single larger message still goes alone, up to the
    /// device's largest storage binding.
    pub chunk_bytes: u64,
    /// Digests in one Merkle level buffer, rounded down to a power of two (at least 2): wider
    /// trees are built as subtrees of this many leaves.
    pub level_digests: usize,
    /// Bytes of digests gathered on the GPU before they are mapped and copied out.
    pub readback_bytes: u64,
    /// Workgroups along x, and at most along y, of one dispatch (2-D beyond x); at most the
    /// device's `max_compute_workgroups_per_dimension` and 65,535.
    pub workgroups_per_dimension: u32,
    /// Largest storage buffer bound, in bytes: at most the device's largest binding and 2 GiB,
    /// rounded down to a multiple of 256. Bounds a chunk's data, spans and digests, a level
    /// buffer, and the longest message accepted.
    pub max_binding_bytes: u64,
}

impl HasherLimits {
    /// The defaults for `ctx`: chunks of up to 2^18 messages and 32 MiB, level buffers of up
    /// to 2^22 digests, 64 MiB of read-back, all within the device's limits.
    pub fn for_device(ctx: &GpuContext) -> Self {
        Self {
            chunk_messages: 1 << 18,
            chunk_bytes: 32 << 20,
            level_digests: 1 << 22,
            readback_bytes: 64 << 20,
            workgroups_per_dimension: u32::MAX,
            max_binding_bytes: u64::MAX,
        }
        .clamped(ctx)
    }

    /// The largest storage binding the device allows that the host uses (a multiple of 256).
    fn device_binding(ctx: &GpuContext) -> u64 {
        ctx.max_binding_bytes().min(MAX_BINDING) / 256 * 256
    }

    fn clamped(self, ctx: &GpuContext) -> Self {
        let binding = (self.max_binding_bytes.min(Self::device_binding(ctx)) / 256 * 256).max(256);
        let workgroups_per_dimension = self.workgroups_per_dimension.min(ctx.max_workgroups_x()).clamp(1, 65535);
        let wg = u64::from(workgroups_per_dimension);
        let dispatch = wg * wg * u64::from(WORKGROUP);
        let items = (binding / DIGEST).min(dispatch).min(u64::from(u32::MAX)) as usize;
        let chunk_messages = self.chunk_messages.clamp(1, items.max(1));
        let chunk_bytes = self.chunk_bytes.clamp(4, binding.max(4));
        let level = self.level_digests.clamp(2, items.max(2));
        let level_digests = 1usize << (usize::BITS - 1 - level.leading_zeros());
        let max_buffer = ctx.limits.max_buffer_size;
        let readback_bytes = self.readback_bytes.min(max_buffer).max(chunk_messages as u64 * DIGEST);
        Self {
            chunk_messages,
            chunk_bytes,
            level_digests,
            readback_bytes,
            workgroups_per_dimension,
            max_binding_bytes: binding,
        }
    }
}

/// SHA-256 and RFC 6962 Merkle roots on the GPU.
pub struct GpuHasher {
    ctx: Arc<GpuContext>,
    limits: HasherLimits,
    binding: u64,
    sha: wgpu::ComputePipeline,
    node: wgpu::ComputePipeline,
    sha_layout: wgpu::BindGroupLayout,
    node_layout: wgpu::BindGroupLayout,
    k: wgpu::Buffer,
    pool: Mutex<Vec<Buffers>>,
}

impl std::fmt::Debug for GpuHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuHasher").field("adapter", &self.ctx.info.name).field("limits", &self.limits).finish()
    }
}

/// One buffer and its size.
struct Buf {
    buffer: wgpu::Buffer,
    size: u64,
}

/// The bind groups over one set's current buffers.
struct BindGroups {
    /// sha256_batch: messages → level A.
    sha: wgpu::BindGroup,
    /// merkle_node: A → B.
    a_to_b: wgpu::BindGroup,
    /// merkle_node: B → A.
    b_to_a: wgpu::BindGroup,
}

/// The buffers one call works in; pooled and grown on demand.
#[derive(Default)]
struct Buffers {
    /// Parameter blocks, [`PARAM_STRIDE`] apart.
    params: Option<Buf>,
    /// Packed message words.
    data: Option<Buf>,
    /// (first word, length) per message.
    spans: Option<Buf>,
    /// Digests: the hash kernel's output, and one Merkle level.
    level_a: Option<Buf>,
    /// The other Merkle level.
    level_b: Option<Buf>,
    /// Subtree roots of a wide tree (copies only, never bound).
    roots: Option<Buf>,
    /// Mapped to read results.
    readback: Option<Buf>,
    groups: Option<BindGroups>,
}

/// What one call needs, in bytes.
#[derive(Default)]
struct Needs {
    params: u64,
    data: u64,
    spans: u64,
    level_a: u64,
    level_b: u64,
    roots: u64,
    readback: u64,
}

/// Messages `start..end` of a batch, whose packed words number `words`.
struct Chunk {
    start: usize,
    end: usize,
    words: u64,
}

/// Which level buffer holds a result.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    A,
    B,
}

/// Kernel timing across the passes of one call.
struct Timing {
    timer: Option<PassTimer>,
    complete: bool,
}

impl Timing {
    fn new(ctx: &GpuContext) -> Self {
        Self { timer: ctx.pass_timer(), complete: true }
    }

    /// A compute pass descriptor, timed while the timer has room.
    fn pass<'a>(&'a mut self, label: &'a str) -> wgpu::ComputePassDescriptor<'a> {
        let timestamp_writes = match self.timer.as_mut() {
            Some(t) => {
                let w = t.next_writes();
                if w.is_none() {
                    self.complete = false;
                }
                w
            }
            None => None,
        };
        wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes }
    }

    /// Submits the resolve of the used queries (before the final read-back).
    fn resolve(&self, ctx: &GpuContext) -> Result<(), GpuError> {
        if let Some(t) = &self.timer {
            ctx.scoped("sha256 timer resolve", || {
                let mut encoder =
                    ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("sha256 timer") });
                t.resolve(&mut encoder);
                ctx.queue.submit([encoder.finish()]);
            })?;
        }
        Ok(())
    }

    /// The summed kernel time, or `None` without timestamps or when some pass went untimed.
    fn total(&self, ctx: &GpuContext) -> Result<Option<Duration>, GpuError> {
        match &self.timer {
            Some(t) if self.complete => Ok(Some(t.total(ctx)?)),
            _ => Ok(None),
        }
    }
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType, dynamic: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: dynamic, min_binding_size: None },
        count: None,
    }
}

fn entry(binding: u32, resource: wgpu::BindingResource<'_>) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry { binding, resource }
}

/// Node passes to bring a level of `k` nodes down to one.
fn levels(mut k: usize) -> usize {
    let mut n = 0;
    while k > 1 {
        k = k.div_ceil(2);
        n += 1;
    }
    n
}

fn failed(label: &str, reason: impl Into<String>) -> GpuError {
    GpuError::Validation { label: label.to_string(), reason: reason.into() }
}

impl GpuHasher {
    /// Creates the pipelines once, with [`HasherLimits::for_device`].
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let limits = HasherLimits::for_device(&ctx);
        Self::with_limits(ctx, limits)
    }

    /// Creates the pipelines once, with `limits` (clamped to the device's).
    pub fn with_limits(ctx: Arc<GpuContext>, limits: HasherLimits) -> Result<Self, GpuError> {
        ctx.check_health()?;
        let device_binding = HasherLimits::device_binding(&ctx);
        if device_binding < 256 {
            return Err(failed("sha256", format!("storage bindings of {device_binding} bytes are too small")));
        }
        let limits = limits.clamped(&ctx);
        let binding = limits.max_binding_bytes;
        let built = ctx.scoped("sha256 pipelines", || {
            use wgpu::BufferBindingType::{Storage, Uniform};
            let device = &ctx.device;
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some("sha256.wgsl"),
                source: wgpu::ShaderSource::Wgsl(wgsl::SHA256.into()),
            });
            let sha_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("sha256_batch"),
                entries: &[
                    layout_entry(0, Uniform, true),
                    layout_entry(1, Storage { read_only: true }, false),
                    layout_entry(2, Storage { read_only: true }, false),
                    layout_entry(3, Storage { read_only: true }, false),
                    layout_entry(4, Storage { read_only: false }, false),
                ],
            });
            let node_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("merkle_node"),
                entries: &[
                    layout_entry(0, Uniform, true),
                    layout_entry(1, Storage { read_only: true }, false),
                    layout_entry(4, Storage { read_only: false }, false),
                    layout_entry(5, Storage { read_only: true }, false),
                ],
            });
            let pipeline = |layout: &wgpu::BindGroupLayout, entry: &str| {
                let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                    label: Some(entry),
                    bind_group_layouts: &[Some(layout)],
                    immediate_size: 0,
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: Some(&pl),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            };
            let sha = pipeline(&sha_layout, "sha256_batch");
            let node = pipeline(&node_layout, "merkle_node");
            let k = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("sha256 K"),
                size: std::mem::size_of_val(&K) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&k, 0, bytemuck::cast_slice(&K));
            (sha, node, sha_layout, node_layout, k)
        })?;
        let (sha, node, sha_layout, node_layout, k) = built;
        Ok(Self { ctx, limits, binding, sha, node, sha_layout, node_layout, k, pool: Mutex::new(Vec::new()) })
    }

    /// The limits in force (after clamping to the device).
    pub fn limits(&self) -> HasherLimits {
        self.limits
    }

    /// SHA-256 of each message, in order, with the kernel time when timestamps are available.
    pub fn sha256_batch_timed(&self, msgs: &[&[u8]]) -> Result<(Vec<[u8; 32]>, Option<Duration>), GpuError> {
        self.ctx.check_health()?;
        if msgs.is_empty() {
            return Ok((Vec::new(), self.ctx.has_timestamps().then_some(Duration::ZERO)));
        }
        self.with_buffers(|set| self.hash_batch(set, msgs))
    }

    /// SHA-256 of each message, in order.
    pub fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<Vec<[u8; 32]>, GpuError> {
        self.sha256_batch_timed(msgs).map(|r| r.0)
    }

    /// The RFC 6962 root over `leaves` (byte-identical to `engine::merkle::root`), with the
    /// kernel time when timestamps are available.
    pub fn merkle_root_timed(&self, leaves: &[&[u8]]) -> Result<([u8; 32], Option<Duration>), GpuError> {
        self.ctx.check_health()?;
        if leaves.is_empty() {
            // The empty tree hashes to SHA-256 of the empty string.
            let (digests, time) = self.sha256_batch_timed(&[&[]])?;
            let root = digests.first().copied().ok_or_else(|| failed("merkle", "no digest for the empty tree"))?;
            return Ok((root, time));
        }
        self.with_buffers(|set| self.tree_root(set, leaves))
    }

    /// The RFC 6962 root over `leaves`.
    pub fn merkle_root(&self, leaves: &[&[u8]]) -> Result<[u8; 32], GpuError> {
        self.merkle_root_timed(leaves).map(|r| r.0)
    }

    /// Runs `f` on a pooled buffer set, returned to the pool only when `f` succeeded.
    fn with_buffers<T>(&self, f: impl FnOnce(&mut Buffers) -> Result<T, GpuError>) -> Result<T, GpuError> {
        let mut set = self.pool.lock().pop().unwrap_or_default();
        let out = f(&mut set)?;
        let mut pool = self.pool.lock();
        if pool.len() < POOLED_SETS {
            pool.push(set);
        }
        Ok(out)
    }

    /// Cuts `msgs` into chunks; fails for a message no storage binding can hold.
    fn plan(&self, msgs: &[&[u8]]) -> Result<Vec<Chunk>, GpuError> {
        let mut chunks = Vec::new();
        let (mut start, mut words) = (0usize, 0u64);
        for (i, m) in msgs.iter().enumerate() {
            let w = (m.len() as u64).div_ceil(4);
            if w * 4 > self.binding {
                return Err(failed(
                    "sha256",
                    format!("message {i} has {} bytes; the largest storage binding holds {}", m.len(), self.binding),
                ));
            }
            let count = i - start;
            if count > 0 && (count >= self.limits.chunk_messages || (words + w) * 4 > self.limits.chunk_bytes) {
                chunks.push(Chunk { start, end: i, words });
                (start, words) = (i, 0);
            }
            words += w;
        }
        if start < msgs.len() {
            chunks.push(Chunk { start, end: msgs.len(), words });
        }
        Ok(chunks)
    }

    /// Workgroups along x and y, and invocations per row, for `items` invocations.
    fn dispatch_dims(&self, items: usize) -> (u32, u32, u32) {
        let groups = (items as u64).div_ceil(u64::from(WORKGROUP)).max(1);
        let x = groups.min(u64::from(self.limits.workgroups_per_dimension));
        let y = groups.div_ceil(x);
        (x as u32, y as u32, x as u32 * WORKGROUP)
    }

    /// Grows the set's buffers to `needs` (inside an error scope) and rebuilds its bind groups
    /// when a bound buffer changed.
    fn ensure(&self, set: &mut Buffers, needs: &Needs) -> Result<(), GpuError> {
        use wgpu::BufferUsages as U;
        let binding = self.binding;
        let max_buffer = self.ctx.limits.max_buffer_size;
        let device = &self.ctx.device;
        self.ctx.scoped("sha256 buffers", || {
            let grow = |slot: &mut Option<Buf>, need: u64, usage: U, limit: u64, label: &str| -> bool {
                let need = need.max(256).div_ceil(256) * 256;
                let have = slot.as_ref().map_or(0, |s| s.size);
                if have >= need {
                    return false;
                }
                let size = need.max((have * 2).min(limit / 256 * 256));
                let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                });
                *slot = Some(Buf { buffer, size });
                true
            };
            let mut bound = false;
            bound |= grow(&mut set.params, needs.params, U::UNIFORM | U::COPY_DST, max_buffer, "sha256 params");
            bound |= grow(&mut set.data, needs.data, U::STORAGE | U::COPY_DST, binding, "sha256 data");
            bound |= grow(&mut set.spans, needs.spans, U::STORAGE | U::COPY_DST, binding, "sha256 spans");
            bound |= grow(&mut set.level_a, needs.level_a, U::STORAGE | U::COPY_SRC | U::COPY_DST, binding, "level A");
            bound |= grow(&mut set.level_b, needs.level_b, U::STORAGE | U::COPY_SRC, binding, "level B");
            if needs.roots > 0 {
                grow(&mut set.roots, needs.roots, U::COPY_SRC | U::COPY_DST, max_buffer, "merkle roots");
            }
            let readback_limit = self.limits.readback_bytes.max(needs.readback);
            grow(&mut set.readback, needs.readback, U::MAP_READ | U::COPY_DST, readback_limit, "sha256 readback");
            if bound || set.groups.is_none() {
                set.groups = self.bind_groups(set);
            }
            set.groups.as_ref().map(|_| ()).ok_or_else(|| failed("sha256 buffers", "a bound buffer is missing"))
        })?
    }

    /// The bind groups over the set's buffers; `None` if one is missing.
    fn bind_groups(&self, set: &Buffers) -> Option<BindGroups> {
        let (params, data, spans, a, b) = match (&set.params, &set.data, &set.spans, &set.level_a, &set.level_b) {
            (Some(p), Some(d), Some(s), Some(a), Some(b)) => (&p.buffer, &d.buffer, &s.buffer, &a.buffer, &b.buffer),
            _ => return None,
        };
        let params = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: params,
            offset: 0,
            size: wgpu::BufferSize::new(std::mem::size_of::<Params>() as u64),
        });
        let device = &self.ctx.device;
        let sha = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("sha256_batch"),
            layout: &self.sha_layout,
            entries: &[
                entry(0, params.clone()),
                entry(1, self.k.as_entire_binding()),
                entry(2, data.as_entire_binding()),
                entry(3, spans.as_entire_binding()),
                entry(4, a.as_entire_binding()),
            ],
        });
        let node = |input: &wgpu::Buffer, output: &wgpu::Buffer, label: &str| {
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &self.node_layout,
                entries: &[
                    entry(0, params.clone()),
                    entry(1, self.k.as_entire_binding()),
                    entry(4, output.as_entire_binding()),
                    entry(5, input.as_entire_binding()),
                ],
            })
        };
        let a_to_b = node(a, b, "merkle_node A→B");
        let b_to_a = node(b, a, "merkle_node B→A");
        Some(BindGroups { sha, a_to_b, b_to_a })
    }

    /// Queues the upload of `msgs` (one chunk): packed words and spans.
    fn upload(&self, set: &Buffers, msgs: &[&[u8]], words: u64) -> Result<(), GpuError> {
        let (data, spans_buf) = match (&set.data, &set.spans) {
            (Some(d), Some(s)) => (&d.buffer, &s.buffer),
            _ => return Err(failed("sha256 upload", "buffers missing")),
        };
        let mut spans = Vec::with_capacity(msgs.len() * 2);
        if let Some(size) = wgpu::BufferSize::new(words * 4) {
            let mut view = self
                .ctx
                .queue
                .write_buffer_with(data, 0, size)
                .ok_or_else(|| failed("sha256 upload", "could not stage the message data"))?;
            let mut dst = view.slice(..);
            let mut at = 0usize;
            for m in msgs {
                let padded = m.len().next_multiple_of(4);
                dst.slice(at..at + m.len()).copy_from_slice(m);
                dst.slice(at + m.len()..at + padded).fill(0);
                spans.extend_from_slice(&[(at / 4) as u32, m.len() as u32]);
                at += padded;
            }
        } else {
            spans.extend(msgs.iter().flat_map(|_| [0u32, 0u32]));
        }
        self.ctx.queue.write_buffer(spans_buf, 0, bytemuck::cast_slice(&spans));
        Ok(())
    }

    fn write_params(&self, set: &Buffers, params: &[Params]) -> Result<(), GpuError> {
        let buffer = set.params.as_ref().ok_or_else(|| failed("sha256 params", "buffer missing"))?;
        let mut bytes = vec![0u8; params.len() * PARAM_STRIDE as usize];
        for (slot, p) in bytes.chunks_exact_mut(PARAM_STRIDE as usize).zip(params) {
            slot[..std::mem::size_of::<Params>()].copy_from_slice(bytemuck::bytes_of(p));
        }
        self.ctx.queue.write_buffer(&buffer.buffer, 0, &bytes);
        Ok(())
    }

    /// Records the hash dispatch of `count` messages into `pass`, parameters in a new slot.
    fn dispatch_sha(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        groups: &BindGroups,
        params: &mut Vec<Params>,
        count: usize,
        leaf: bool,
        out_base: usize,
    ) {
        let (x, y, row_stride) = self.dispatch_dims(count);
        let slot = params.len() as u64 * PARAM_STRIDE;
        params.push(Params {
            count: count as u32,
            leaf: u32::from(leaf),
            out_base: out_base as u32,
            row_stride,
            ..Default::default()
        });
        pass.set_pipeline(&self.sha);
        pass.set_bind_group(0, &groups.sha, &[slot as u32]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Records the node levels bringing `k` digests in level A down to one; returns the level
    /// buffer holding the root.
    fn dispatch_levels(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        groups: &BindGroups,
        params: &mut Vec<Params>,
        mut k: usize,
    ) -> Level {
        let mut at = Level::A;
        if k > 1 {
            pass.set_pipeline(&self.node);
        }
        while k > 1 {
            let out = k.div_ceil(2);
            let (x, y, row_stride) = self.dispatch_dims(out);
            let slot = params.len() as u64 * PARAM_STRIDE;
            params.push(Params { count: out as u32, n_in: k as u32, row_stride, ..Default::default() });
            let (group, next) = match at {
                Level::A => (&groups.a_to_b, Level::B),
                Level::B => (&groups.b_to_a, Level::A),
            };
            pass.set_bind_group(0, group, &[slot as u32]);
            pass.dispatch_workgroups(x, y, 1);
            (at, k) = (next, out);
        }
        at
    }

    /// Maps the first `used` bytes of the read-back buffer and appends the digests to `out`.
    fn drain(&self, set: &Buffers, used: u64, out: &mut Vec<[u8; 32]>) -> Result<(), GpuError> {
        let rb = set.readback.as_ref().ok_or_else(|| failed("sha256 readback", "buffer missing"))?;
        let bytes = self.ctx.read_back(&rb.buffer, used)?;
        let digests: &[[u8; 32]] =
            bytemuck::try_cast_slice(&bytes).map_err(|e| failed("sha256 readback", e.to_string()))?;
        out.extend_from_slice(digests);
        Ok(())
    }

    /// SHA-256 of every message, chunk after chunk without waiting in between.
    fn hash_batch(&self, set: &mut Buffers, msgs: &[&[u8]]) -> Result<(Vec<[u8; 32]>, Option<Duration>), GpuError> {
        let chunks = self.plan(msgs)?;
        let max_count = chunks.iter().map(|c| c.end - c.start).max().unwrap_or(0) as u64;
        let max_words = chunks.iter().map(|c| c.words).max().unwrap_or(0);
        let readback = (msgs.len() as u64 * DIGEST).min(self.limits.readback_bytes);
        self.ensure(
            set,
            &Needs {
                params: PARAM_STRIDE,
                data: max_words * 4,
                spans: max_count * 8,
                level_a: max_count * DIGEST,
                readback,
                ..Default::default()
            },
        )?;
        let readback_size = set.readback.as_ref().map_or(0, |r| r.size);
        let mut timing = Timing::new(&self.ctx);
        let mut out = Vec::with_capacity(msgs.len());
        let mut used = 0u64;
        for chunk in &chunks {
            let count = chunk.end - chunk.start;
            let bytes = count as u64 * DIGEST;
            if used + bytes > readback_size {
                self.drain(set, used, &mut out)?;
                used = 0;
            }
            let set_ref = &*set;
            self.ctx.scoped("sha256 chunk", || -> Result<(), GpuError> {
                self.upload(set_ref, &msgs[chunk.start..chunk.end], chunk.words)?;
                let groups = set_ref.groups.as_ref().ok_or_else(|| failed("sha256", "bind groups missing"))?;
                let mut params = Vec::with_capacity(1);
                let mut encoder = self
                    .ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("sha256 chunk") });
                {
                    let mut pass = encoder.begin_compute_pass(&timing.pass("sha256_batch"));
                    self.dispatch_sha(&mut pass, groups, &mut params, count, false, 0);
                }
                let (a, rb) = match (&set_ref.level_a, &set_ref.readback) {
                    (Some(a), Some(rb)) => (&a.buffer, &rb.buffer),
                    _ => return Err(failed("sha256", "buffers missing")),
                };
                encoder.copy_buffer_to_buffer(a, 0, rb, used, bytes);
                self.write_params(set_ref, &params)?;
                self.ctx.queue.submit([encoder.finish()]);
                Ok(())
            })??;
            used += bytes;
        }
        timing.resolve(&self.ctx)?;
        self.drain(set, used, &mut out)?;
        if out.len() != msgs.len() {
            return Err(failed("sha256", format!("{} digests for {} messages", out.len(), msgs.len())));
        }
        Ok((out, timing.total(&self.ctx)?))
    }

    /// The RFC 6962 root of a non-empty list of leaves.
    fn tree_root(&self, set: &mut Buffers, leaves: &[&[u8]]) -> Result<([u8; 32], Option<Duration>), GpuError> {
        let n = leaves.len();
        let width = self.limits.level_digests;
        let subtrees = n.div_ceil(width);
        let first = n.min(width);
        let mut plans = Vec::with_capacity(subtrees);
        for s in 0..subtrees {
            plans.push(self.plan(&leaves[s * width..n.min((s + 1) * width)])?);
        }
        let max_count = plans.iter().flatten().map(|c| c.end - c.start).max().unwrap_or(0) as u64;
        let max_words = plans.iter().flatten().map(|c| c.words).max().unwrap_or(0);
        // Parameter slots: a leaf chunk and its subtree's levels; then the reduction of the
        // subtree roots, in subtrees of `width` again until one is left.
        let mut slots = 1 + levels(first);
        let mut m = subtrees;
        let mut reduce_slots = 0;
        while m > 1 {
            reduce_slots += (0..m.div_ceil(width)).map(|h| levels(width.min(m - h * width))).sum::<usize>();
            m = m.div_ceil(width);
        }
        slots = slots.max(reduce_slots).max(1);
        self.ensure(
            set,
            &Needs {
                params: slots as u64 * PARAM_STRIDE,
                data: max_words * 4,
                spans: max_count * 8,
                level_a: first as u64 * DIGEST,
                level_b: first.div_ceil(2) as u64 * DIGEST,
                roots: if subtrees > 1 { subtrees as u64 * DIGEST } else { 0 },
                readback: DIGEST,
            },
        )?;
        let set = &*set;
        let (groups, a, b, rb) = match (&set.groups, &set.level_a, &set.level_b, &set.readback) {
            (Some(g), Some(a), Some(b), Some(rb)) => (g, &a.buffer, &b.buffer, &rb.buffer),
            _ => return Err(failed("merkle", "buffers missing")),
        };
        let level_buffer = |l: Level| if l == Level::A { a } else { b };
        let roots = set.roots.as_ref().map(|r| &r.buffer);
        let mut timing = Timing::new(&self.ctx);

        // Leaves: each subtree's leaves hashed in chunks into level A (0x00 prefix), then its
        // levels in the last chunk's submission; its root goes to roots[s], or to the read-back
        // buffer when the tree is a single subtree.
        for (s, plan) in plans.iter().enumerate() {
            let base = s * width;
            let k = width.min(n - base);
            for (ci, chunk) in plan.iter().enumerate() {
                let last = ci + 1 == plan.len();
                self.ctx.scoped("merkle leaves", || -> Result<(), GpuError> {
                    let msgs = &leaves[base + chunk.start..base + chunk.end];
                    self.upload(set, msgs, chunk.words)?;
                    let mut params = Vec::with_capacity(slots);
                    let mut encoder = self
                        .ctx
                        .device
                        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("merkle leaves") });
                    let at = {
                        let mut pass = encoder.begin_compute_pass(&timing.pass("merkle leaves"));
                        self.dispatch_sha(&mut pass, groups, &mut params, msgs.len(), true, chunk.start);
                        last.then(|| self.dispatch_levels(&mut pass, groups, &mut params, k))
                    };
                    if let Some(at) = at {
                        match roots {
                            Some(r) if subtrees > 1 => {
                                encoder.copy_buffer_to_buffer(level_buffer(at), 0, r, s as u64 * DIGEST, DIGEST)
                            }
                            _ => encoder.copy_buffer_to_buffer(level_buffer(at), 0, rb, 0, DIGEST),
                        }
                    }
                    self.write_params(set, &params)?;
                    self.ctx.queue.submit([encoder.finish()]);
                    Ok(())
                })??;
            }
        }

        // Subtree roots: reduced in place, `width` at a time (each copied into level A first),
        // until one is left; all in one submission.
        if subtrees > 1 {
            let r = roots.ok_or_else(|| failed("merkle", "roots buffer missing"))?;
            self.ctx.scoped("merkle roots", || -> Result<(), GpuError> {
                let mut params = Vec::with_capacity(slots);
                let mut encoder = self
                    .ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("merkle roots") });
                let mut m = subtrees;
                while m > 1 {
                    for h in 0..m.div_ceil(width) {
                        let k = width.min(m - h * width);
                        encoder.copy_buffer_to_buffer(r, (h * width) as u64 * DIGEST, a, 0, k as u64 * DIGEST);
                        let at = if k > 1 {
                            let mut pass = encoder.begin_compute_pass(&timing.pass("merkle roots"));
                            self.dispatch_levels(&mut pass, groups, &mut params, k)
                        } else {
                            Level::A
                        };
                        encoder.copy_buffer_to_buffer(level_buffer(at), 0, r, h as u64 * DIGEST, DIGEST);
                    }
                    m = m.div_ceil(width);
                }
                encoder.copy_buffer_to_buffer(r, 0, rb, 0, DIGEST);
                self.write_params(set, &params)?;
                self.ctx.queue.submit([encoder.finish()]);
                Ok(())
            })??;
        }

        timing.resolve(&self.ctx)?;
        let mut out = Vec::with_capacity(1);
        self.drain(set, DIGEST, &mut out)?;
        let root = out.pop().ok_or_else(|| failed("merkle", "no root read back"))?;
        Ok((root, timing.total(&self.ctx)?))
    }
}
