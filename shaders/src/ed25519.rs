//! Batch Ed25519 verification with ZIP-215 rules on the GPU (`wgsl/ed25519.wgsl`).
//!
//! Each signature is checked by one shader lane from start to end: S < ℓ, SHA-512 of R ‖ A ‖ M
//! reduced mod ℓ, decompression of A and R accepting non-canonical encodings, and the cofactored
//! equation `[8]([S]B − [k]A − R) = 0`, exactly as `ed25519-consensus` 2.x
//! `VerificationKey::verify` decides. The verdicts are the single-item verdicts.
//!
//! Design (details in the shader's comments):
//! - field elements mod 2^255 − 19 are 20 limbs of 13 bits in u32 (products and their column
//!   sums fit in 32 bits; the bounds are written out in the shader); SHA-512 uses (lo, hi) u32
//!   pairs; scalars are reduced mod ℓ bit by bit;
//! - `[k](−A) + [S]B` is one left-to-right pass with shared doublings over signed digits: k in
//!   radix 16 against a per-lane table of `[0..=8](−A)`, S in radix 256 against a host-computed
//!   table of `[0..=128]B` in affine Niels form; −R is added last, then three doublings;
//! - all curve arithmetic (decompression, the table, the scalar multiplication, the final check)
//!   is one straight-line program of field operations generated here (`curve_program`,
//!   following curve25519-dalek's formulas) and run by a small interpreter loop in the shader.
//!   Every lane runs the same instruction sequence (no divergence), and the shader has a single
//!   call site for each field operation, so it compiles in seconds even on llvmpipe (written
//!   out as code, the ~2,000 field products per signature took minutes). The interpreter's
//!   registers live in a lane-interleaved storage buffer;
//! - the work is cut into steps, one dispatch each (hashing, finishing the scalars, then 512
//!   instructions at a time), with the state in that buffer. Steps keep each dispatch short, and
//!   are needed on llvmpipe, which gives an invocation 65,535 loop iterations in all and then
//!   silently leaves loops; each step checks afterwards that its budget held, and a lane whose
//!   step overran gives no verdict (the call fails; it never answers wrongly).
//!
//! Host side:
//! - the pipeline and a read-only buffer of constants (SHA-512 round constants, ℓ, d, 2d, √−1,
//!   the basepoint table and the curve program) are created once in [`GpuEd25519::new`]; the
//!   constants are computed here with exact integers ([`num_bigint`]), not copied from elsewhere;
//! - a batch is packed into records S ‖ R ‖ A ‖ M (word aligned) plus one (offset, length) span
//!   per item, and split into chunks that respect the adapter's binding-size and dispatch
//!   limits; up to [`IN_FLIGHT`] chunks are queued at once, each in its own set of buffers, so
//!   packing and uploading one chunk overlaps the kernel of the previous one; buffer sets are
//!   kept in a pool and reused (grown when too small) by later calls;
//! - the kernel writes 1 (valid) or 2 (invalid) per item into a buffer cleared to 0 first; any
//!   other value read back is a [`GpuError`], never a verdict.

use crate::gpu::{GpuContext, GpuError};
use engine::verifier::VerifyItem;
use num_bigint::BigUint;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// Invocations per workgroup (`@workgroup_size` in the shader).
pub const WORKGROUP_SIZE: u32 = 64;

/// Chunks queued on the GPU at once by one call, each with its own buffers.
pub const IN_FLIGHT: usize = 2;

/// Buffer sets kept for later calls (two calls' worth).
const MAX_POOLED: usize = 2 * IN_FLIGHT;

/// Default cap on the items of one chunk (one series of dispatches). Each item needs
/// [`SCRATCH_BYTES_PER_ITEM`] of scratch, so a full chunk's buffers take about 50 MiB.
pub const DEFAULT_CHUNK_ITEMS: usize = 1 << 14;

/// Scratch bytes per item: the interpreter's registers (10 words each) and the state kept
/// between steps (`SCRATCH_WORDS` in the shader).
pub const SCRATCH_BYTES_PER_ITEM: u64 = SCRATCH_WORDS * 4;

/// Per-lane scratch words and the word of the step state (must match ed25519.wgsl).
const SCRATCH_WORDS: u64 = 800;
const SW_STATE: u64 = 792;

/// SHA-512 blocks one step hashes, and curve-program instructions one step runs. Each step stays
/// far below llvmpipe's budget of 65,535 loop iterations per invocation (see the shader), which
/// the shader also checks; on a GPU they only set how many dispatches a chunk takes.
const BLOCKS_PER_STEP: u32 = 64;
const INSTRS_PER_STEP: u32 = 512;

/// Iterations of the shader's end-of-step check loop.
const SENTINEL: u32 = 3;

/// Default cap on the packed bytes of one chunk (further capped by the adapter's binding limit).
pub const DEFAULT_CHUNK_BYTES: u64 = 64 << 20;

/// Entry point in the shader.
const ENTRY: &str = "verify";

// Layout of the constants buffer, in u32 words; must match the offsets in ed25519.wgsl.
const K512_OFF: usize = 0;
const ELL_OFF: usize = 160;
const D_OFF: usize = 168;
const D2_OFF: usize = 188;
const SQRTM1_OFF: usize = 208;
const BTABLE_OFF: usize = 228;
const BTABLE_ENTRIES: usize = 129;
const BTABLE_STRIDE: usize = 60;
const PROGRAM_OFF: usize = BTABLE_OFF + BTABLE_ENTRIES * BTABLE_STRIDE;

/// Words of a record before the message: S, R, A.
const RECORD_HEADER_WORDS: usize = 24;

/// Ed25519 verification with ZIP-215 rules, one verdict per item, entirely on the GPU.
pub struct GpuEd25519 {
    ctx: Arc<GpuContext>,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
    consts: wgpu::Buffer,
    pool: Mutex<Vec<Slot>>,
    /// Instructions of the curve program (in the constants buffer).
    program_len: u32,
    /// Curve-program instructions per step (dispatch).
    instrs_per_step: u32,
    chunk_items: usize,
    chunk_bytes: u64,
}

impl std::fmt::Debug for GpuEd25519 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuEd25519")
            .field("adapter", &self.ctx.describe())
            .field("chunk_items", &self.chunk_items)
            .field("chunk_bytes", &self.chunk_bytes)
            .finish()
    }
}

/// One chunk's buffers: what the kernel reads and writes, and where its verdicts are read back.
struct Slot {
    spans: wgpu::Buffer,
    data: wgpu::Buffer,
    verdicts: wgpu::Buffer,
    readback: wgpu::Buffer,
    params: wgpu::Buffer,
    /// The per-lane registers and step state, which only the kernel reads.
    scratch: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    /// Items (lanes) the span, verdict, readback and scratch buffers hold; a multiple of the
    /// workgroup size.
    items: usize,
    /// Bytes the data buffer holds.
    data_bytes: u64,
}

/// The shader's `Params` uniform.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    items: u32,
    lanes: u32,
    sentinel: u32,
    blocks_per_step: u32,
    instrs_per_step: u32,
    pad: [u32; 3],
}

/// SHA-512 blocks of R ‖ A ‖ M for a `msg_len`-byte message (as `sha512_block_count`).
fn sha512_blocks(msg_len: u32) -> u32 {
    (64 + msg_len + 144) / 128
}

/// A chunk of the batch: items `start..end`, packed.
struct Packed {
    start: usize,
    end: usize,
    spans: Vec<u32>,
    data: Vec<u8>,
}

impl GpuEd25519 {
    /// Creates the pipeline and the constants buffer once, with the default chunk caps.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuError> {
        let pipeline = ctx.compute_pipeline("ed25519-verify", crate::wgsl::ED25519, ENTRY)?;
        let consts_words = constants_table();
        let program_len = consts_words[PROGRAM_OFF];
        let (layout, consts) = ctx.scoped("ed25519-constants", || {
            let layout = pipeline.get_bind_group_layout(0);
            let consts = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("ed25519-constants"),
                size: (consts_words.len() * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&consts, 0, bytemuck::cast_slice(&consts_words));
            (layout, consts)
        })?;
        let mut out = Self {
            ctx,
            pipeline,
            layout,
            consts,
            pool: Mutex::new(Vec::new()),
            program_len,
            instrs_per_step: INSTRS_PER_STEP,
            chunk_items: DEFAULT_CHUNK_ITEMS,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
        };
        (out.chunk_items, out.chunk_bytes) = out.clamp_limits(DEFAULT_CHUNK_ITEMS, DEFAULT_CHUNK_BYTES);
        Ok(out)
    }

    /// The same kernel (pipeline and constants shared, nothing recompiled) with at most
    /// `max_items` items and `max_bytes` packed bytes per chunk, both further capped by the
    /// adapter's limits, and a buffer pool of its own. Small caps force a batch to be split
    /// into many chunks, which tests use to exercise chunking.
    pub fn with_chunk_limits(&self, max_items: usize, max_bytes: u64) -> Self {
        let (chunk_items, chunk_bytes) = self.clamp_limits(max_items, max_bytes);
        Self {
            ctx: self.ctx.clone(),
            pipeline: self.pipeline.clone(),
            layout: self.layout.clone(),
            consts: self.consts.clone(),
            pool: Mutex::new(Vec::new()),
            program_len: self.program_len,
            instrs_per_step: self.instrs_per_step,
            chunk_items,
            chunk_bytes,
        }
    }

    /// The same kernel with `instrs` curve-program instructions per step instead of the default
    /// (which stays well inside llvmpipe's loop budget). Too many per step on llvmpipe exhaust
    /// the budget: the shader detects it and the call fails rather than give a verdict, which
    /// tests use to check that safeguard.
    pub fn with_instructions_per_step(&self, instrs: u32) -> Self {
        let mut out = self.with_chunk_limits(self.chunk_items, self.chunk_bytes);
        out.instrs_per_step = instrs.max(1);
        out
    }

    fn clamp_limits(&self, max_items: usize, max_bytes: u64) -> (usize, u64) {
        // One dispatch covers at most max_workgroups_x workgroups; the spans (8 bytes per item),
        // verdicts and scratch registers bind as whole buffers, so they stay under the binding
        // limit too (rounded to whole workgroups).
        let binding = self.ctx.max_binding_bytes();
        let by_scratch =
            (binding / SCRATCH_BYTES_PER_ITEM) as usize / WORKGROUP_SIZE as usize * WORKGROUP_SIZE as usize;
        let limit_items = (self.ctx.max_workgroups_x() as usize * WORKGROUP_SIZE as usize)
            .min((binding / 8) as usize)
            .min(by_scratch);
        (max_items.clamp(1, limit_items.max(1)), max_bytes.clamp(4 * RECORD_HEADER_WORDS as u64, binding))
    }

    /// One verdict per item, in order, with the kernel time when timestamps are available.
    pub fn verify_batch_timed(&self, items: &[VerifyItem<'_>]) -> Result<(Vec<bool>, Option<Duration>), GpuError> {
        if items.is_empty() {
            return Ok((Vec::new(), None));
        }
        self.ctx.check_health()?;
        let mut slots: Vec<Slot> = {
            let mut pool = self.pool.lock();
            let keep = pool.len().saturating_sub(IN_FLIGHT);
            pool.split_off(keep)
        };
        let result = self.run(items, &mut slots);
        if result.is_ok() {
            // Buffers of a failed call may be mapped or half-written: only clean ones go back,
            // and no more than concurrent calls are likely to need.
            let mut pool = self.pool.lock();
            pool.extend(slots);
            pool.truncate(MAX_POOLED);
        }
        result
    }

    /// One verdict per item, in order.
    pub fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<Vec<bool>, GpuError> {
        self.verify_batch_timed(items).map(|r| r.0)
    }

    /// The chunk caps in force (items, packed bytes).
    pub fn chunk_limits(&self) -> (usize, u64) {
        (self.chunk_items, self.chunk_bytes)
    }

    /// Test support: runs the shader's `field_ops` entry point (see the end of ed25519.wgsl) on
    /// `(a, b, c)` cases — a and b as 20 limbs of 13 bits (limbs 0..18 ≤ 8447, limb 19 ≤ 255),
    /// c as 32 bytes — and returns 128 words per case: a·b, a², a + b, a − b, canon(a) and
    /// from_bytes(c) as 20 limbs each, then a ≡ 0, a ≡ b and the sign of a. Builds its own
    /// pipeline on each call; not used for verification.
    #[doc(hidden)]
    pub fn field_ops(&self, cases: &[([u32; 20], [u32; 20], [u8; 32])]) -> Result<Vec<[u32; 128]>, GpuError> {
        if cases.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.ctx.compute_pipeline("ed25519-field-ops", crate::wgsl::ED25519, "field_ops")?;
        let mut input: Vec<u32> = Vec::with_capacity(cases.len() * 48);
        for (a, b, c) in cases {
            input.extend_from_slice(a);
            input.extend_from_slice(b);
            input.extend(c.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
        }
        let n = cases.len() as u32;
        let out_bytes = u64::from(n) * 128 * 4;
        let params = Params { items: n, lanes: n, sentinel: 0, blocks_per_step: 0, instrs_per_step: 0, pad: [0; 3] };
        let device = &self.ctx.device;
        let readback = self.ctx.scoped("ed25519-field-ops", || {
            use wgpu::BufferUsages as U;
            let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                })
            };
            let data = buffer("field-ops-in", input.len() as u64 * 4, U::STORAGE | U::COPY_DST);
            let uniform = buffer("field-ops-params", std::mem::size_of::<Params>() as u64, U::UNIFORM | U::COPY_DST);
            let out = buffer("field-ops-out", out_bytes, U::STORAGE | U::COPY_SRC);
            let readback = buffer("field-ops-read", out_bytes, U::MAP_READ | U::COPY_DST);
            self.ctx.queue.write_buffer(&data, 0, bytemuck::cast_slice(&input));
            self.ctx.queue.write_buffer(&uniform, 0, bytemuck::bytes_of(&params));
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("field-ops"),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry { binding: 2, resource: data.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: uniform.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 5, resource: out.as_entire_binding() },
                ],
            });
            let mut encoder =
                device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("field-ops") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(n.div_ceil(WORKGROUP_SIZE), 1, 1);
            }
            encoder.copy_buffer_to_buffer(&out, 0, &readback, 0, out_bytes);
            self.ctx.queue.submit([encoder.finish()]);
            readback
        })?;
        let bytes = self.ctx.read_back(&readback, out_bytes)?;
        let words: Vec<u32> = bytes.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        Ok(words.chunks_exact(128).map(|c| c.try_into().expect("128 words")).collect())
    }

    fn run(&self, items: &[VerifyItem<'_>], slots: &mut Vec<Slot>) -> Result<(Vec<bool>, Option<Duration>), GpuError> {
        let mut timer = self.ctx.pass_timer();
        let mut verdicts = vec![false; items.len()];
        // Chunks queued and not yet read back: (slot index, chunk range, submission).
        let mut queued: std::collections::VecDeque<(usize, usize, usize, wgpu::SubmissionIndex)> =
            std::collections::VecDeque::new();
        let mut next = 0;
        let mut round = 0usize;
        while next < items.len() {
            let packed = self.pack(items, next)?;
            next = packed.end;
            let slot_index = round % IN_FLIGHT;
            round += 1;
            // The slot's previous chunk must be read back before its buffers are reused.
            if queued.len() == IN_FLIGHT {
                let (si, start, end, submission) = queued.pop_front().expect("queue is full");
                self.read_verdicts(&slots[si], start, end, submission, &mut verdicts)?;
            }
            if slots.len() <= slot_index {
                slots.push(self.new_slot(packed.end - packed.start, packed.data.len() as u64)?);
            } else if slots[slot_index].items < packed.end - packed.start
                || slots[slot_index].data_bytes < packed.data.len() as u64
            {
                let items = slots[slot_index].items.max(packed.end - packed.start);
                let bytes = slots[slot_index].data_bytes.max(packed.data.len() as u64);
                slots[slot_index] = self.new_slot(items, bytes)?;
            }
            let submission = self.submit(&slots[slot_index], &packed, timer.as_mut())?;
            queued.push_back((slot_index, packed.start, packed.end, submission));
        }
        while let Some((si, start, end, submission)) = queued.pop_front() {
            self.read_verdicts(&slots[si], start, end, submission, &mut verdicts)?;
        }
        let kernel_time = match timer {
            Some(t) => {
                let mut encoder = self
                    .ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ed25519-timer") });
                t.resolve(&mut encoder);
                self.ctx.scoped("ed25519-timer", || self.ctx.queue.submit([encoder.finish()]))?;
                Some(t.total(&self.ctx)?)
            }
            None => None,
        };
        Ok((verdicts, kernel_time))
    }

    /// Packs items from `start` on until a cap is reached (at least one item).
    fn pack(&self, items: &[VerifyItem<'_>], start: usize) -> Result<Packed, GpuError> {
        let mut spans = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        let mut end = start;
        while end < items.len() && end - start < self.chunk_items {
            let item = &items[end];
            let record = 4 * RECORD_HEADER_WORDS as u64 + (item.msg.len() as u64).div_ceil(4) * 4;
            if data.len() as u64 + record > self.chunk_bytes {
                if end == start {
                    return Err(GpuError::Validation {
                        label: "ed25519-pack".into(),
                        reason: format!(
                            "a {}-byte message does not fit one {}-byte binding",
                            item.msg.len(),
                            self.chunk_bytes
                        ),
                    });
                }
                break;
            }
            // u32 offsets and lengths: guaranteed by the binding limit (< 4 GiB), checked anyway.
            let offset = u32::try_from(data.len() / 4).ok();
            // (The shader keeps block and instruction counters in 24 bits: messages stay below 1 GiB.)
            let len = u32::try_from(item.msg.len()).ok().filter(|l| *l < 1 << 30);
            let (Some(offset), Some(len)) = (offset, len) else {
                return Err(GpuError::Validation { label: "ed25519-pack".into(), reason: "message too long".into() });
            };
            spans.extend_from_slice(&[offset, len]);
            data.extend_from_slice(&item.sig.0[32..]);
            data.extend_from_slice(&item.sig.0[..32]);
            data.extend_from_slice(&item.key.0);
            data.extend_from_slice(item.msg);
            data.resize(data.len().div_ceil(4) * 4, 0);
            end += 1;
        }
        Ok(Packed { start, end, spans, data })
    }

    fn new_slot(&self, items: usize, data_bytes: u64) -> Result<Slot, GpuError> {
        // Round up (to whole workgroups, and to powers of two within the caps) so that a pool
        // settles after a few calls of varying size.
        let wg = WORKGROUP_SIZE as usize;
        let items = items.next_power_of_two().max(wg).min(self.chunk_items.div_ceil(wg) * wg);
        let data_bytes = data_bytes.next_power_of_two().max(256).min(self.chunk_bytes.max(data_bytes)).div_ceil(4) * 4;
        let device = &self.ctx.device;
        self.ctx.scoped("ed25519-buffers", || {
            let buffer = |label: &str, size: u64, usage: wgpu::BufferUsages| {
                device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size,
                    usage,
                    mapped_at_creation: false,
                })
            };
            use wgpu::BufferUsages as U;
            let spans = buffer("ed25519-spans", items as u64 * 8, U::STORAGE | U::COPY_DST);
            let data = buffer("ed25519-data", data_bytes, U::STORAGE | U::COPY_DST);
            let verdicts = buffer("ed25519-verdicts", items as u64 * 4, U::STORAGE | U::COPY_SRC | U::COPY_DST);
            let readback = buffer("ed25519-readback", items as u64 * 4, U::MAP_READ | U::COPY_DST);
            let params = buffer("ed25519-params", std::mem::size_of::<Params>() as u64, U::UNIFORM | U::COPY_DST);
            let scratch = buffer("ed25519-scratch", items as u64 * SCRATCH_BYTES_PER_ITEM, U::STORAGE | U::COPY_DST);
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("ed25519"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: self.consts.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: spans.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: data.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: verdicts.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 4, resource: params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 5, resource: scratch.as_entire_binding() },
                ],
            });
            Slot { spans, data, verdicts, readback, params, scratch, bind_group, items, data_bytes }
        })
    }

    fn submit(
        &self,
        slot: &Slot,
        packed: &Packed,
        timer: Option<&mut crate::gpu::PassTimer>,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        let n = (packed.end - packed.start) as u32;
        let groups = n.div_ceil(WORKGROUP_SIZE);
        let params = Params {
            items: n,
            lanes: slot.items as u32,
            sentinel: SENTINEL,
            blocks_per_step: BLOCKS_PER_STEP,
            instrs_per_step: self.instrs_per_step,
            pad: [0; 3],
        };
        // Every item needs its hashing steps (the first also checks S), one step to finish the
        // scalars and the program's steps; the chunk takes as many as its longest message needs.
        let max_blocks = packed.spans.chunks_exact(2).map(|s| sha512_blocks(s[1])).max().unwrap_or(1);
        let steps = max_blocks.div_ceil(BLOCKS_PER_STEP) + 1 + self.program_len.div_ceil(self.instrs_per_step);
        let lanes = slot.items as u64;
        self.ctx.scoped("ed25519-dispatch", || {
            let queue = &self.ctx.queue;
            queue.write_buffer(&slot.spans, 0, bytemuck::cast_slice(&packed.spans));
            queue.write_buffer(&slot.data, 0, &packed.data);
            queue.write_buffer(&slot.params, 0, bytemuck::bytes_of(&params));
            let mut encoder =
                self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("ed25519") });
            encoder.clear_buffer(&slot.verdicts, 0, Some(u64::from(n) * 4));
            // Every lane starts from the START phase.
            encoder.clear_buffer(&slot.scratch, SW_STATE * lanes * 4, Some(lanes * 4));
            {
                let timestamp_writes = timer.and_then(|t| t.next_writes());
                let mut pass = encoder
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("ed25519"), timestamp_writes });
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &slot.bind_group, &[]);
                // Each dispatch is one step for every item; a dispatch sees the previous one's
                // writes to `scratch` (dispatches in a pass are ordered for storage accesses).
                for _ in 0..steps {
                    pass.dispatch_workgroups(groups, 1, 1);
                }
            }
            encoder.copy_buffer_to_buffer(&slot.verdicts, 0, &slot.readback, 0, u64::from(n) * 4);
            queue.submit([encoder.finish()])
        })
    }

    /// Waits for `submission`, maps the slot's read-back buffer and stores verdicts start..end.
    fn read_verdicts(
        &self,
        slot: &Slot,
        start: usize,
        end: usize,
        submission: wgpu::SubmissionIndex,
        out: &mut [bool],
    ) -> Result<(), GpuError> {
        let bytes = ((end - start) * 4) as u64;
        let slice = slot.readback.slice(0..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx.wait(submission)?;
        // The map callback fires during the poll that sees its submission done; should it not
        // have yet, one more (blocking) poll delivers it.
        let mapped = match rx.try_recv() {
            Ok(r) => r,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                self.ctx
                    .device
                    .poll(wgpu::PollType::Wait {
                        submission_index: None,
                        timeout: Some(crate::gpu::SUBMISSION_TIMEOUT),
                    })
                    .map_err(|e| match e {
                        wgpu::PollError::Timeout => GpuError::Timeout(crate::gpu::SUBMISSION_TIMEOUT),
                        other => GpuError::Map(other.to_string()),
                    })?;
                rx.recv_timeout(Duration::from_secs(1)).map_err(|e| GpuError::Map(e.to_string()))?
            }
            Err(e) => return Err(GpuError::Map(e.to_string())),
        };
        mapped.map_err(|e| GpuError::Map(e.to_string()))?;
        let view = slice.get_mapped_range().map_err(|e| GpuError::Map(e.to_string()))?;
        let words: &[u32] = bytemuck::cast_slice(&view);
        let mut bad = None;
        for (i, w) in words.iter().enumerate() {
            match w {
                1 => out[start + i] = true,
                2 => out[start + i] = false,
                other => {
                    bad = Some((start + i, *other));
                    break;
                }
            }
        }
        drop(view);
        slot.readback.unmap();
        self.ctx.check_health()?;
        match bad {
            None => Ok(()),
            Some((i, w)) => Err(GpuError::Map(format!("item {i}: the kernel left {w} instead of a verdict"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The constants table, computed with exact integers.
// ---------------------------------------------------------------------------------------------

/// p = 2^255 − 19.
fn field_p() -> BigUint {
    (BigUint::from(1u8) << 255u32) - 19u32
}

/// ℓ = 2^252 + 27742317777372353535851937790883648493.
fn group_order() -> BigUint {
    (BigUint::from(1u8) << 252u32) + "27742317777372353535851937790883648493".parse::<BigUint>().expect("decimal")
}

/// Arithmetic mod p on `BigUint`s, for the table only (speed is irrelevant here).
struct Field {
    p: BigUint,
}

impl Field {
    fn new() -> Self {
        Self { p: field_p() }
    }
    fn n(&self, v: u64) -> BigUint {
        BigUint::from(v) % &self.p
    }
    fn add(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a + b) % &self.p
    }
    fn sub(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a + &self.p - (b % &self.p)) % &self.p
    }
    fn mul(&self, a: &BigUint, b: &BigUint) -> BigUint {
        (a * b) % &self.p
    }
    fn inv(&self, a: &BigUint) -> BigUint {
        a.modpow(&(&self.p - 2u32), &self.p)
    }
    /// d = −121665 / 121666.
    fn d(&self) -> BigUint {
        self.sub(&BigUint::default(), &self.mul(&self.n(121665), &self.inv(&self.n(121666))))
    }
    /// √−1 = 2^((p−1)/4).
    fn sqrt_m1(&self) -> BigUint {
        self.n(2).modpow(&((&self.p - 1u32) >> 2u32), &self.p)
    }
    /// A square root of `a` (which must be a square).
    fn sqrt(&self, a: &BigUint) -> BigUint {
        let r = a.modpow(&((&self.p + 3u32) >> 3u32), &self.p);
        if self.mul(&r, &r) == *a {
            r
        } else {
            self.mul(&r, &self.sqrt_m1())
        }
    }
    /// The basepoint (x, 4/5) with x even (non-negative).
    fn basepoint(&self) -> (BigUint, BigUint) {
        let y = self.mul(&self.n(4), &self.inv(&self.n(5)));
        let yy = self.mul(&y, &y);
        let u = self.sub(&yy, &self.n(1));
        let v = self.add(&self.mul(&self.d(), &yy), &self.n(1));
        let mut x = self.sqrt(&self.mul(&u, &self.inv(&v)));
        if x.bit(0) {
            x = self.sub(&BigUint::default(), &x);
        }
        (x, y)
    }
    /// Affine addition on −x² + y² = 1 + d·x²·y² (complete: the denominators never vanish).
    fn add_points(&self, p: &(BigUint, BigUint), q: &(BigUint, BigUint)) -> (BigUint, BigUint) {
        let (x1, y1) = p;
        let (x2, y2) = q;
        let t = self.mul(&self.d(), &self.mul(&self.mul(x1, x2), &self.mul(y1, y2)));
        let one = self.n(1);
        let x3 = self.mul(&self.add(&self.mul(x1, y2), &self.mul(y1, x2)), &self.inv(&self.add(&one, &t)));
        let y3 = self.mul(&self.add(&self.mul(y1, y2), &self.mul(x1, x2)), &self.inv(&self.sub(&one, &t)));
        (x3, y3)
    }
}

/// A field element (< 2^255) as the shader's 20 limbs of 13 bits (limb 19: 8 bits).
fn limbs13(v: &BigUint) -> [u32; 20] {
    let mut out = [0u32; 20];
    for (i, limb) in out.iter_mut().enumerate() {
        let chunk: BigUint = (v >> (13 * i)) & BigUint::from(0x1fffu32);
        *limb = chunk.to_u32_digits().first().copied().unwrap_or(0);
    }
    out
}

/// The 80 SHA-512 round constants: the first 64 bits of the fractional parts of the cube roots
/// of the first 80 primes (FIPS 180-4 §4.2.3), computed as ⌊∛(q·2^192)⌋ mod 2^64.
fn sha512_round_constants() -> [u64; 80] {
    let mut primes = Vec::with_capacity(80);
    let mut q = 2u32;
    while primes.len() < 80 {
        if (2..q).take_while(|f| f * f <= q).all(|f| !q.is_multiple_of(f)) {
            primes.push(q);
        }
        q += 1;
    }
    let mut out = [0u64; 80];
    for (k, q) in out.iter_mut().zip(primes) {
        let root = (BigUint::from(q) << 192u32).cbrt();
        let digits = root.to_u64_digits();
        *k = digits.first().copied().unwrap_or(0);
    }
    out
}

/// [j]B for j = 0..=128 as affine points.
fn basepoint_multiples(f: &Field) -> Vec<(BigUint, BigUint)> {
    let b = f.basepoint();
    let mut out = vec![(BigUint::default(), f.n(1))];
    for j in 1..BTABLE_ENTRIES {
        let next = f.add_points(&out[j - 1], &b);
        out.push(next);
    }
    out
}

/// The constants buffer in the layout the shader reads (offsets at the top of this file).
fn constants_table() -> Vec<u32> {
    let f = Field::new();
    let program = curve_program();
    let mut t = vec![0u32; PROGRAM_OFF + 1 + program.len()];
    for (i, k) in sha512_round_constants().iter().enumerate() {
        t[K512_OFF + 2 * i] = *k as u32;
        t[K512_OFF + 2 * i + 1] = (*k >> 32) as u32;
    }
    let ell = group_order().to_u32_digits();
    t[ELL_OFF..ELL_OFF + ell.len()].copy_from_slice(&ell);
    let d = f.d();
    t[D_OFF..D_OFF + 20].copy_from_slice(&limbs13(&d));
    t[D2_OFF..D2_OFF + 20].copy_from_slice(&limbs13(&f.add(&d, &d)));
    t[SQRTM1_OFF..SQRTM1_OFF + 20].copy_from_slice(&limbs13(&f.sqrt_m1()));
    for (j, (x, y)) in basepoint_multiples(&f).iter().enumerate() {
        let off = BTABLE_OFF + j * BTABLE_STRIDE;
        let xy2d = f.mul(&f.mul(x, y), &f.add(&d, &d));
        t[off..off + 20].copy_from_slice(&limbs13(&f.add(y, x)));
        t[off + 20..off + 40].copy_from_slice(&limbs13(&f.sub(y, x)));
        t[off + 40..off + 60].copy_from_slice(&limbs13(&xy2d));
    }
    t[PROGRAM_OFF] = program.len() as u32;
    t[PROGRAM_OFF + 1..].copy_from_slice(&program);
    t
}

// ---------------------------------------------------------------------------------------------
// The curve program: everything after the scalars, as field operations for the shader's
// interpreter (see "The curve part" in ed25519.wgsl for the instruction set).
// ---------------------------------------------------------------------------------------------

/// Interpreter operations (must match the `OP_*` constants in ed25519.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum Op {
    Mul = 1,
    Sqr = 2,
    Add = 3,
    Sub = 4,
    Copy = 5,
    Sel = 6,
    Sqrt = 7,
    Sign = 8,
    Ident = 9,
}

/// A register (a field element) of the interpreter.
type Reg = u32;

// Registers the shader fills before running the program (must match the `REG_*` constants).
const ZERO: Reg = 0;
const ONE: Reg = 1;
const D: Reg = 2;
const D2: Reg = 3;
const SQRT_M1: Reg = 4;
const Y_A: Reg = 5;
const Y_R: Reg = 6;
/// −A in extended coordinates (X, Y, Z, T).
const NEG_A: Reg = 7;
/// −R as a Niels point (Y+X, Y−X, Z, 2dT).
const NEG_R: Reg = 11;
/// The accumulator, a completed point.
const ACC: Reg = 15;
/// An extended (or, with T unset, projective) point.
const EXT: Reg = 19;
/// The Niels point selected by a digit.
const Q: Reg = 23;
/// Scratch registers 27..=39.
const TMP: Reg = 27;
/// [j](−A) for j = 0..=8 as Niels points, four registers each (must match `TABLE_REG`).
const TABLE: Reg = 40;
/// Registers in all (must match `NREGS`).
const NREGS: Reg = 76;
// The table is the last thing in the register file, which comes first in a lane's scratch words.
const _: () = assert!(TABLE + 4 * 9 == NREGS && 10 * NREGS as u64 <= SW_STATE);

/// Builds a program one instruction at a time.
struct Asm {
    code: Vec<u32>,
}

impl Asm {
    fn emit(&mut self, op: Op, d: u32, a: u32, b: u32, e: u32) {
        assert!(d < 128 && a < 128 && b < 128 && e < 128, "operand out of range");
        self.code.push(op as u32 | d << 4 | a << 11 | b << 18 | e << 25);
    }
    fn mul(&mut self, d: Reg, a: Reg, b: Reg) {
        self.emit(Op::Mul, d, a, b, 0);
    }
    /// d ← a^(2^n): n instructions.
    fn sqr(&mut self, d: Reg, a: Reg, n: u32) {
        assert!(n >= 1);
        self.emit(Op::Sqr, d, a, 0, 0);
        for _ in 1..n {
            self.emit(Op::Sqr, d, d, 0, 0);
        }
    }
    fn add(&mut self, d: Reg, a: Reg, b: Reg) {
        self.emit(Op::Add, d, a, b, 0);
    }
    fn sub(&mut self, d: Reg, a: Reg, b: Reg) {
        self.emit(Op::Sub, d, a, b, 0);
    }
    fn copy(&mut self, d: Reg, a: Reg) {
        self.emit(Op::Copy, d, a, 0, 0);
    }

    /// x^((p−5)/8) = x^(2^252 − 3) into `out`, the usual chain (11 multiplications, 251
    /// squarings); uses TMP+9..=TMP+12.
    fn pow_p58(&mut self, out: Reg, x: Reg) {
        let (p0, p1, k4, k7) = (TMP + 9, TMP + 10, TMP + 11, TMP + 12);
        self.sqr(p0, x, 1); // x^2
        self.sqr(p1, p0, 2); // x^8
        self.mul(p1, p1, x); // x^9
        self.mul(p0, p0, p1); // x^11
        self.sqr(p0, p0, 1); // x^22
        self.mul(p0, p0, p1); // x^31 = x^(2^5 − 1)
        self.sqr(k4, p0, 5);
        self.mul(k4, k4, p0); // 2^10 − 1
        self.sqr(p0, k4, 10);
        self.mul(p0, p0, k4); // 2^20 − 1
        self.sqr(p1, p0, 20);
        self.mul(p0, p1, p0); // 2^40 − 1
        self.sqr(p0, p0, 10);
        self.mul(k7, p0, k4); // 2^50 − 1
        self.sqr(p0, k7, 50);
        self.mul(p0, p0, k7); // 2^100 − 1
        self.sqr(p1, p0, 100);
        self.mul(p0, p1, p0); // 2^200 − 1
        self.sqr(p0, p0, 50);
        self.mul(p0, p0, k7); // 2^250 − 1
        self.sqr(p0, p0, 2); // 2^252 − 4
        self.mul(out, p0, x); // 2^252 − 3
    }

    /// The negation of the point encoded with y in register `y` (sign bit of encoding `which`:
    /// 0 for A, 1 for R) into `out` (extended), as `CompressedEdwardsY::decompress` computes the
    /// point: u = y² − 1, v = d·y² + 1, (is_square, r) = sqrt_ratio_i(u, v), x = ±r by the sign
    /// bit. Clears `ok` when u/v is not a square.
    fn decompress_neg(&mut self, which: u32, y: Reg, out: Reg) {
        let (u, v, v3, v7, uv3, uv7, r, ri, chk) =
            (TMP, TMP + 1, TMP + 2, TMP + 3, TMP + 4, TMP + 5, TMP + 6, TMP + 7, TMP + 8);
        self.sqr(u, y, 1); // y²
        self.mul(v, u, D);
        self.add(v, v, ONE); // v = d·y² + 1
        self.sub(u, u, ONE); // u = y² − 1
        self.sqr(v3, v, 1);
        self.mul(v3, v3, v); // v³
        self.sqr(v7, v3, 1);
        self.mul(v7, v7, v); // v⁷
        self.mul(uv3, u, v3);
        self.mul(uv7, u, v7);
        self.pow_p58(r, uv7);
        self.mul(r, uv3, r); // r = u·v³·(u·v⁷)^((p−5)/8)
        self.sqr(chk, r, 1);
        self.mul(chk, chk, v); // v·r²
        self.mul(ri, r, SQRT_M1);
        self.emit(Op::Sqrt, ri, r, chk, u);
        self.emit(Op::Sign, out, r, which, 0); // X = −x
        self.copy(out + 1, y);
        self.copy(out + 2, ONE);
        self.mul(out + 3, out, out + 1); // T = X·Y
    }

    /// Completed → extended (`with_t`) or projective: (X·T, Y·Z, Z·T, X·Y).
    fn completed_to_ext(&mut self, e: Reg, c: Reg, with_t: bool) {
        self.mul(e, c, c + 3);
        self.mul(e + 1, c + 1, c + 2);
        self.mul(e + 2, c + 2, c + 3);
        if with_t {
            self.mul(e + 3, c, c + 1);
        }
    }

    /// c ← 2·e (e projective), dalek's `ProjectivePoint::double`.
    fn dbl(&mut self, c: Reg, e: Reg) {
        let (xx, yy, zz2, xy2) = (TMP, TMP + 1, TMP + 2, TMP + 3);
        self.sqr(xx, e, 1);
        self.sqr(yy, e + 1, 1);
        self.sqr(zz2, e + 2, 1);
        self.add(zz2, zz2, zz2);
        self.add(xy2, e, e + 1);
        self.sqr(xy2, xy2, 1);
        self.add(c + 1, yy, xx); // YY + XX
        self.sub(c + 2, yy, xx); // YY − XX
        self.sub(c, xy2, c + 1); // (X + Y)² − YY − XX
        self.sub(c + 3, zz2, c + 2); // 2Z² − (YY − XX)
    }

    /// c ← e + q (e extended, q Niels), dalek's `EdwardsPoint + ProjectiveNielsPoint`; with
    /// `affine`, q's Z is 1 and is not multiplied (`EdwardsPoint + AffineNielsPoint`).
    fn add_niels(&mut self, c: Reg, e: Reg, q: Reg, affine: bool) {
        let (pp, mm, tt2d, zz2) = (TMP, TMP + 1, TMP + 2, TMP + 3);
        self.add(pp, e + 1, e);
        self.sub(mm, e + 1, e);
        self.mul(pp, pp, q); // (Y + X)(Y2 + X2)
        self.mul(mm, mm, q + 1); // (Y − X)(Y2 − X2)
        self.mul(tt2d, e + 3, q + 3); // T·2d·T2
        if affine {
            self.add(zz2, e + 2, e + 2);
        } else {
            self.mul(zz2, e + 2, q + 2);
            self.add(zz2, zz2, zz2);
        }
        self.sub(c, pp, mm);
        self.add(c + 1, pp, mm);
        self.add(c + 2, zz2, tt2d);
        self.sub(c + 3, zz2, tt2d);
    }

    /// n ← e as a Niels point (Y + X, Y − X, Z, 2d·T).
    fn ext_to_niels(&mut self, n: Reg, e: Reg) {
        self.add(n, e + 1, e);
        self.sub(n + 1, e + 1, e);
        self.copy(n + 2, e + 2);
        self.mul(n + 3, e + 3, D2);
    }
}

/// The program: decompress −A and −R, tabulate [j](−A) for j = 0..=8, compute
/// [8]([k](−A) + [S]B − R) by one left-to-right pass over the signed digits of k (radix 16, 64
/// digits) and S (radix 256, 32 digits, at every other radix-16 position) sharing the
/// doublings, and check that it is the identity.
fn curve_program() -> Vec<u32> {
    let mut asm = Asm { code: Vec::new() };
    asm.decompress_neg(0, Y_A, NEG_A);
    asm.decompress_neg(1, Y_R, EXT);
    asm.ext_to_niels(NEG_R, EXT);
    // [0](−A) = the identity (Y+X = 1, Y−X = 1, Z = 1, 2dT = 0), [1](−A), then [j] = [j−1] + [1].
    asm.copy(TABLE, ONE);
    asm.copy(TABLE + 1, ONE);
    asm.copy(TABLE + 2, ONE);
    asm.copy(TABLE + 3, ZERO);
    asm.ext_to_niels(TABLE + 4, NEG_A);
    for i in 0..4 {
        asm.copy(EXT + i, NEG_A + i);
    }
    for j in 2..9 {
        asm.add_niels(ACC, EXT, TABLE + 4, false);
        asm.completed_to_ext(EXT, ACC, true);
        asm.ext_to_niels(TABLE + 4 * j, EXT);
    }
    // The accumulator starts as the identity, as a completed point ((0 : 1), (1 : 1)).
    asm.copy(ACC, ZERO);
    asm.copy(ACC + 1, ONE);
    asm.copy(ACC + 2, ONE);
    asm.copy(ACC + 3, ONE);
    for i in (0..64u32).rev() {
        if i != 63 {
            for _ in 0..4 {
                asm.completed_to_ext(EXT, ACC, false);
                asm.dbl(ACC, EXT);
            }
        }
        asm.emit(Op::Sel, Q, i, 0, 0);
        asm.completed_to_ext(EXT, ACC, true);
        asm.add_niels(ACC, EXT, Q, false);
        if i.is_multiple_of(2) {
            asm.emit(Op::Sel, Q, i / 2, 1, 0);
            asm.completed_to_ext(EXT, ACC, true);
            asm.add_niels(ACC, EXT, Q, true);
        }
    }
    asm.completed_to_ext(EXT, ACC, true);
    asm.add_niels(ACC, EXT, NEG_R, false);
    for _ in 0..3 {
        asm.completed_to_ext(EXT, ACC, false);
        asm.dbl(ACC, EXT);
    }
    asm.completed_to_ext(EXT, ACC, false);
    asm.emit(Op::Ident, EXT, EXT + 1, EXT + 2, 0);
    asm.code
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek_ng::constants::ED25519_BASEPOINT_POINT;
    use curve25519_dalek_ng::scalar::Scalar;

    fn to_bytes(v: &BigUint) -> [u8; 32] {
        let mut out = [0u8; 32];
        let b = v.to_bytes_le();
        out[..b.len()].copy_from_slice(&b);
        out
    }

    #[test]
    fn round_constants_match_fips_180_4() {
        let k = sha512_round_constants();
        assert_eq!(k[0], 0x428a2f98d728ae22);
        assert_eq!(k[1], 0x7137449123ef65cd);
        assert_eq!(k[40], 0xa2bfe8a14cf10364);
        assert_eq!(k[64], 0xca273eceea26619c);
        assert_eq!(k[79], 0x6c44198c4a475817);
    }

    #[test]
    fn basepoint_table_matches_curve25519_dalek() {
        let f = Field::new();
        for (j, (x, y)) in basepoint_multiples(&f).iter().enumerate() {
            let mut enc = to_bytes(y);
            enc[31] |= (x.bit(0) as u8) << 7;
            let expected = (Scalar::from(j as u64) * ED25519_BASEPOINT_POINT).compress();
            assert_eq!(enc, expected.to_bytes(), "[{j}]B");
        }
    }

    #[test]
    fn curve_constants_are_right() {
        let f = Field::new();
        let i = f.sqrt_m1();
        assert_eq!(f.mul(&i, &i), f.sub(&BigUint::default(), &f.n(1)));
        // d·121666 = −121665
        assert_eq!(f.mul(&f.d(), &f.n(121666)), f.sub(&BigUint::default(), &f.n(121665)));
        // ℓ is the smallest non-canonical scalar.
        let ell = group_order();
        assert!(Scalar::from_canonical_bytes(to_bytes(&(&ell - 1u32))).is_some());
        assert!(Scalar::from_canonical_bytes(to_bytes(&ell)).is_none());
        assert_eq!(Scalar::from_bytes_mod_order(to_bytes(&ell)), Scalar::zero());
    }

    fn from_limbs(l: &[u32]) -> BigUint {
        l.iter().enumerate().fold(BigUint::default(), |acc, (i, x)| acc + (BigUint::from(*x) << (13 * i)))
    }

    /// Runs a signature through the scalar steps and the curve program on the host, with exact
    /// integers, the way the shader does (same constants buffer, same instruction semantics).
    /// This checks the program — formulas, register use, digit selection — apart from the
    /// shader's limb arithmetic.
    fn emulate(key: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> bool {
        use sha2::Digest;
        let f = Field::new();
        let p = field_p();
        let consts = constants_table();
        let ell = group_order();
        let s = BigUint::from_bytes_le(&sig[32..]);
        if s >= ell {
            return false;
        }
        let digest = sha2::Sha512::new().chain_update(&sig[..32]).chain_update(key).chain_update(msg).finalize();
        let k = BigUint::from_bytes_le(&digest) % &ell;
        let bias16 = BigUint::from_bytes_le(&[0x88u8; 32]);
        let bias256 = BigUint::from_bytes_le(&[0x80u8; 32]);
        let kd = (&k + bias16).to_bytes_le();
        let sd = (&s + bias256).to_bytes_le();
        let byte = |v: &[u8], i: usize| u32::from(v.get(i).copied().unwrap_or(0));
        let y_of = |enc: &[u8]| {
            let mut e = enc.to_vec();
            e[31] &= 0x7f;
            BigUint::from_bytes_le(&e)
        };
        let mut regs = vec![BigUint::default(); NREGS as usize];
        regs[ONE as usize] = f.n(1);
        regs[D as usize] = f.d();
        regs[D2 as usize] = f.add(&f.d(), &f.d());
        regs[SQRT_M1 as usize] = f.sqrt_m1();
        regs[Y_A as usize] = y_of(key);
        regs[Y_R as usize] = y_of(&sig[..32]);
        let signs = [key[31] >> 7 == 1, sig[31] >> 7 == 1];
        let mut ok = true;
        let program = &consts[PROGRAM_OFF + 1..];
        assert_eq!(program.len(), consts[PROGRAM_OFF] as usize);
        for ins in program {
            let (op, d, a, b, e) =
                (ins & 15, (ins >> 4 & 127) as usize, (ins >> 11 & 127) as usize, ins >> 18 & 127, ins >> 25 & 127);
            let (rb, re) = (b as usize, e as usize);
            match op {
                1 => regs[d] = f.mul(&regs[a], &regs[rb]),
                2 => regs[d] = f.mul(&regs[a], &regs[a]),
                3 => regs[d] = f.add(&regs[a], &regs[rb]),
                4 => regs[d] = f.sub(&regs[a], &regs[rb]),
                5 => regs[d] = regs[a].clone(),
                6 => {
                    let (negative, entry) = if b == 0 {
                        let nib = (byte(&kd, a / 2) >> (4 * (a % 2))) & 15;
                        let j = (nib as i32 - 8).unsigned_abs() as usize;
                        let r = TABLE as usize + 4 * j;
                        (nib < 8, [0, 1, 2, 3].map(|i| regs[r + i].clone()))
                    } else {
                        let v = byte(&sd, a);
                        let j = (v as i32 - 128).unsigned_abs() as usize;
                        let off = BTABLE_OFF + j * BTABLE_STRIDE;
                        let l = |o: usize| from_limbs(&consts[off + o..off + o + 20]);
                        (v < 128, [l(0), l(20), f.n(1), l(40)])
                    };
                    let [ypx, ymx, z, t2d] = entry;
                    let (ypx, ymx, t2d) =
                        if negative { (ymx, ypx, f.sub(&BigUint::default(), &t2d)) } else { (ypx, ymx, t2d) };
                    regs[d] = ypx;
                    regs[d + 1] = ymx;
                    regs[d + 2] = z;
                    regs[d + 3] = t2d;
                }
                7 => {
                    let correct = f.sub(&regs[rb], &regs[re]) == BigUint::default();
                    let flipped = f.add(&regs[rb], &regs[re]) == BigUint::default();
                    ok &= correct || flipped;
                    if flipped {
                        regs[a] = regs[d].clone();
                    }
                }
                8 => {
                    let x = &regs[a] % &p;
                    regs[d] = if x.bit(0) == signs[rb] { f.sub(&BigUint::default(), &x) } else { x };
                }
                9 => {
                    ok &= &regs[d] % &p == BigUint::default() && f.sub(&regs[a], &regs[rb]) == BigUint::default();
                }
                other => panic!("unknown op {other}"),
            }
        }
        ok
    }

    fn reference(key: &[u8; 32], sig: &[u8; 64], msg: &[u8]) -> bool {
        let Ok(vk) = ed25519_consensus::VerificationKey::try_from(*key) else { return false };
        vk.verify(&ed25519_consensus::Signature::from(*sig), msg).is_ok()
    }

    #[test]
    fn the_curve_program_decides_as_ed25519_consensus() {
        use curve25519_dalek_ng::constants::EIGHT_TORSION;
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let mut cases: Vec<([u8; 32], [u8; 64], Vec<u8>)> = Vec::new();
        for len in [0usize, 5, 200] {
            let mut msg = vec![0u8; len];
            rng.fill_bytes(&mut msg);
            let sk = ed25519_consensus::SigningKey::new(&mut rng);
            let key = ed25519_consensus::VerificationKey::from(&sk).to_bytes();
            let sig = sk.sign(&msg).to_bytes();
            cases.push((key, sig, msg.clone()));
            let mut bad = sig;
            bad[40] ^= 4;
            cases.push((key, bad, msg.clone()));
            let mut bad_key = key;
            bad_key[3] ^= 1;
            cases.push((bad_key, sig, msg.clone()));
        }
        // Small-order A and R with S = 0 (valid under the cofactored equation), non-canonical
        // encodings among them, and a random 32-byte string as R.
        let mut small: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect();
        let mut y_is_p_plus_1 = [0xffu8; 32];
        y_is_p_plus_1[0] = 0xee;
        y_is_p_plus_1[31] = 0x7f;
        small.push(y_is_p_plus_1);
        let mut one_with_sign = [0u8; 32];
        one_with_sign[0] = 1;
        one_with_sign[31] = 0x80;
        small.push(one_with_sign);
        for (i, a) in small.iter().enumerate() {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&small[(i * 5 + 1) % small.len()]);
            cases.push((*a, sig, vec![i as u8]));
        }
        let mut junk = [0u8; 64];
        rng.fill_bytes(&mut junk[..32]);
        cases.push((cases[0].0, junk, vec![]));
        let mut accepted = 0;
        for (key, sig, msg) in &cases {
            let expected = reference(key, sig, msg);
            accepted += usize::from(expected);
            assert_eq!(emulate(key, sig, msg), expected, "key {} sig {}", hex::encode(key), hex::encode(sig));
        }
        assert!(accepted >= 10 && accepted < cases.len(), "both verdicts exercised");
    }

    #[test]
    fn program_registers_are_in_range() {
        let program = curve_program();
        for ins in &program {
            let op = ins & 15;
            assert!((1..=9).contains(&op));
            let regs: Vec<u32> = match op {
                2 => vec![ins >> 4 & 127, ins >> 11 & 127],
                6 => vec![(ins >> 4 & 127) + 3],
                7 => vec![ins >> 4 & 127, ins >> 11 & 127, ins >> 18 & 127, ins >> 25 & 127],
                8 => vec![ins >> 4 & 127, ins >> 11 & 127],
                _ => vec![ins >> 4 & 127, ins >> 11 & 127, ins >> 18 & 127],
            };
            assert!(regs.iter().all(|r| *r < NREGS), "{ins:#x}");
        }
        assert!(program.len() < 7000, "{} instructions", program.len());
    }

    #[test]
    fn limbs_round_trip() {
        let f = Field::new();
        let v = f.sub(&BigUint::default(), &f.n(1)); // p − 1
        let l = limbs13(&v);
        assert!(l[..19].iter().all(|x| *x < 1 << 13) && l[19] < 1 << 8);
        assert_eq!(from_limbs(&l), v);
        let table = constants_table();
        assert_eq!(table[PROGRAM_OFF] as usize, table.len() - PROGRAM_OFF - 1);
    }
}
