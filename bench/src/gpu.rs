//! GPU against all CPU cores, in the same run: batch SHA-256 (64- and 512-byte messages), RFC 6962
//! Merkle roots and Ed25519 (ZIP-215) verification, over batch sizes 1 … 1,048,576.
//!
//! For every (operation, batch size) the run warms both backends up, then takes the median of up
//! to `repeats` runs of each, interleaved:
//! - **GPU end to end**: wall time of one `shaders` call (upload, kernels, read-back);
//! - **GPU kernel only**: the time the `shaders` call reports from timestamp queries (only when
//!   the adapter has them);
//! - **CPU**: wall time of `engine::verifier::CpuVerifier` (rayon, every core).
//!
//! Every GPU output is compared with the CPU's; a difference stops that operation, drops all its
//! figures and sets [`OpReport::mismatch`] (a wrong answer is never reported as a speed; the CLI
//! exits with an error status). Ed25519 batches of up to
//! [`NEGATIVE_CHECK_MAX`] items are also checked with three corrupted items (signature, message,
//! key), so both backends must reject exactly those. A GPU error (a kernel that is missing, out
//! of memory, a timeout) is recorded for that operation, whose larger sizes are then skipped; the
//! other operations go on.
//!
//! Used by `medchain bench gpu` (tables, JSON, SVG plot) and by the `gpu` criterion bench.

use engine::crypto::{PublicKey, Signature};
use engine::verifier::{BatchVerifier, CpuVerifier, VerifyItem};
use serde::Serialize;
use shaders::ed25519::GpuEd25519;
use shaders::hash::GpuHasher;
use shaders::{GpuContext, GpuError};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Bytes per Ed25519-verified message: about one encoded `AnchorRecord` transaction.
pub const ED25519_MSG_LEN: usize = 600;
/// Bytes per Merkle leaf (the same fixture as the 512-byte SHA-256; an encoded transaction is
/// about this size).
pub const MERKLE_LEAF_LEN: usize = 512;
/// The largest default batch: 2^20.
pub const MAX_BATCH: usize = 1 << 20;
/// The smallest Merkle tree in the default grid (unless the batch cap is lower).
pub const MERKLE_MIN_LEAVES: usize = 1 << 10;
/// Ed25519 batches up to this size are also checked with corrupted items.
pub const NEGATIVE_CHECK_MAX: usize = 1024;

/// One measured operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// SHA-256 of 64-byte messages.
    Sha256Short,
    /// SHA-256 of 512-byte messages.
    Sha256Long,
    /// RFC 6962 Merkle root over 512-byte leaves (leaf hashes, then every level).
    MerkleRoot,
    /// Ed25519 (ZIP-215) verification of 600-byte messages, distinct keys.
    Ed25519Verify,
}

impl Op {
    /// Every operation, in report order.
    pub const ALL: [Op; 4] = [Op::Sha256Short, Op::Sha256Long, Op::MerkleRoot, Op::Ed25519Verify];

    /// The short name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Sha256Short => "sha256-64",
            Op::Sha256Long => "sha256-512",
            Op::MerkleRoot => "merkle",
            Op::Ed25519Verify => "ed25519",
        }
    }

    /// A one-line description.
    pub fn describe(self) -> &'static str {
        match self {
            Op::Sha256Short => "SHA-256 of 64-byte messages",
            Op::Sha256Long => "SHA-256 of 512-byte messages",
            Op::MerkleRoot => "RFC 6962 Merkle root over 512-byte leaves",
            Op::Ed25519Verify => "Ed25519 (ZIP-215) verification, 600-byte messages, distinct keys",
        }
    }

    /// What one item is.
    pub fn item(self) -> &'static str {
        match self {
            Op::Sha256Short | Op::Sha256Long => "messages",
            Op::MerkleRoot => "leaves",
            Op::Ed25519Verify => "signatures",
        }
    }

    /// Bytes per item.
    pub fn item_bytes(self) -> usize {
        match self {
            Op::Sha256Short => 64,
            Op::Sha256Long => 512,
            Op::MerkleRoot => MERKLE_LEAF_LEN,
            Op::Ed25519Verify => ED25519_MSG_LEN,
        }
    }

    /// Parses [`Op::name`] (and a few aliases).
    pub fn parse(s: &str) -> Option<Op> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sha256-64" | "sha256-64b" | "sha256_64" => Some(Op::Sha256Short),
            "sha256-512" | "sha256-512b" | "sha256_512" => Some(Op::Sha256Long),
            "merkle" | "merkle-root" | "merkle_root" => Some(Op::MerkleRoot),
            "ed25519" | "ed25519-verify" | "ed25519_verify" => Some(Op::Ed25519Verify),
            _ => None,
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What to measure.
#[derive(Clone, Debug)]
pub struct Config {
    /// The operations, measured in this order.
    pub ops: Vec<Op>,
    /// The batch-size grid (sorted, distinct, positive); each operation takes the sizes up to its
    /// cap (Merkle from [`Config::merkle_min_leaves`]).
    pub sizes: Vec<usize>,
    /// The cap for every operation.
    pub max_batch: usize,
    /// Caps for single operations, overriding `max_batch`.
    pub op_max: HashMap<Op, usize>,
    /// The smallest Merkle tree measured (lowered to the largest size under the cap when the cap
    /// is below it, so a quick run still measures one tree).
    pub merkle_min_leaves: usize,
    /// Timed runs per backend and point (after one warm-up); the median is reported.
    pub repeats: usize,
    /// Time allowed per backend and point: when the warm-up shows `repeats` runs would take
    /// longer, fewer are taken (at least one). Bounds the run at the largest sizes.
    pub point_budget: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ops: Op::ALL.to_vec(),
            sizes: Self::powers_of_four(MAX_BATCH),
            max_batch: MAX_BATCH,
            op_max: HashMap::new(),
            merkle_min_leaves: MERKLE_MIN_LEAVES,
            repeats: 5,
            point_budget: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// 1, 4, 16, … up to `max` (inclusive when a power of four).
    pub fn powers_of_four(max: usize) -> Vec<usize> {
        std::iter::successors(Some(1usize), |n| n.checked_mul(4)).take_while(|n| *n <= max).collect()
    }

    /// The cap for `op`.
    pub fn cap(&self, op: Op) -> usize {
        self.op_max.get(&op).copied().unwrap_or(self.max_batch)
    }

    /// The batch sizes measured for `op`, ascending.
    pub fn sizes_for(&self, op: Op) -> Vec<usize> {
        let cap = self.cap(op);
        let mut under: Vec<usize> = self.sizes.iter().copied().filter(|n| *n >= 1 && *n <= cap).collect();
        under.sort_unstable();
        under.dedup();
        if op == Op::MerkleRoot {
            let floor = match under.last() {
                Some(&largest) => self.merkle_min_leaves.min(largest),
                None => return under,
            };
            under.retain(|n| *n >= floor);
        }
        under
    }

    /// Every (operation, size) point, in measurement order.
    pub fn plan(&self) -> Vec<(Op, usize)> {
        self.ops.iter().flat_map(|&op| self.sizes_for(op).into_iter().map(move |n| (op, n))).collect()
    }
}

/// Why a run or an operation stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The GPU computed something other than the CPU: the kernel is wrong. [`run`] records it
    /// in [`OpReport::mismatch`] and reports no figure for that operation.
    #[error("GPU/CPU MISMATCH in {op} at batch {n}: {detail}")]
    Mismatch {
        /// The operation.
        op: Op,
        /// The batch size.
        n: usize,
        /// The first difference.
        detail: String,
    },
    /// The configuration measures nothing or is out of range.
    #[error("bad benchmark configuration: {0}")]
    Config(String),
}

/// Progress reports, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// Building the GPU pipelines for `op` (compiling shaders; slow on a software adapter).
    Compiling {
        /// The operation.
        op: Op,
    },
    /// Building fixtures (messages or signed items) for `op`, `n` items.
    Preparing {
        /// The operation.
        op: Op,
        /// Items.
        n: usize,
    },
    /// Measuring a point.
    Measuring {
        /// The operation.
        op: Op,
        /// The batch size.
        n: usize,
    },
    /// A point is finished (measured, or failed on the GPU).
    Done {
        /// The operation.
        op: Op,
        /// The batch size.
        n: usize,
    },
    /// Points of `op` left out after a GPU error (all of them when its pipelines failed).
    Skipped {
        /// The operation.
        op: Op,
        /// How many points.
        points: usize,
    },
}

/// One backend's timing at one point.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    /// The median, seconds.
    pub median_s: f64,
    /// The fastest run, seconds.
    pub min_s: f64,
    /// The slowest run, seconds.
    pub max_s: f64,
    /// Timed runs (after the warm-up).
    pub runs: usize,
    /// Items per second at the median.
    pub items_per_s: f64,
}

impl Timing {
    fn from_runs(n: usize, mut runs: Vec<Duration>) -> Option<Self> {
        if runs.is_empty() {
            return None;
        }
        runs.sort_unstable();
        let mid = runs.len() / 2;
        let median = if runs.len() % 2 == 1 { runs[mid] } else { (runs[mid - 1] + runs[mid]) / 2 };
        // A kernel timer may round a tiny kernel to zero; clamp to 1 ns so rates stay finite.
        let median_s = median.as_secs_f64().max(1e-9);
        Some(Self {
            median_s,
            min_s: runs[0].as_secs_f64(),
            max_s: runs[runs.len() - 1].as_secs_f64(),
            runs: runs.len(),
            items_per_s: n as f64 / median_s,
        })
    }
}

/// One (operation, batch size) point.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Items in the batch.
    pub n: usize,
    /// CPU, every core.
    pub cpu: Timing,
    /// GPU end to end (upload, kernels, read-back); `None` when the GPU failed here.
    pub gpu_e2e: Option<Timing>,
    /// GPU kernels only (timestamp queries); `None` without timestamps or after a failure.
    pub gpu_kernel: Option<Timing>,
    /// GPU end-to-end throughput over CPU throughput (above 1: the GPU is faster).
    pub ratio_e2e: Option<f64>,
    /// GPU kernel-only throughput over CPU throughput.
    pub ratio_kernel: Option<f64>,
    /// The GPU error at this point, if any (the larger sizes of this operation are skipped).
    pub gpu_error: Option<String>,
}

/// Everything about one operation.
#[derive(Clone, Debug, Serialize)]
pub struct OpReport {
    /// [`Op::name`].
    pub op: String,
    /// [`Op::describe`].
    pub description: String,
    /// What an item is.
    pub item: String,
    /// Bytes per item.
    pub item_bytes: usize,
    /// The sizes planned.
    pub sizes: Vec<usize>,
    /// The measured points, ascending.
    pub points: Vec<Point>,
    /// The smallest measured size from which the GPU (end to end) beats the CPU at every larger
    /// measured size; `None` if it never does.
    pub crossover: Option<usize>,
    /// The same for GPU kernel-only time; `None` if never or without timestamps.
    pub crossover_kernel: Option<usize>,
    /// The first GPU error (kernel not built, out of memory, timeout, …), with its batch size.
    pub error: Option<String>,
    /// Set when the GPU computed something other than the CPU: the kernel is wrong, and
    /// `points` is then empty (a wrong answer is never reported as a speed).
    pub mismatch: Option<String>,
    /// Batches checked with corrupted items on both backends (Ed25519 only).
    pub negative_checks: usize,
    /// Seconds spent building this operation's GPU pipelines (shader compilation), before any
    /// measurement; 0 when an earlier operation built them.
    pub gpu_setup_s: f64,
}

/// The machine the figures were taken on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// The adapter's name.
    pub adapter: String,
    /// Vulkan, Metal, Dx12, …
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu (software), Other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// True for a software adapter (llvmpipe/lavapipe).
    pub software_adapter: bool,
    /// Whether kernel-only timings (timestamp queries) are available.
    pub timestamps: bool,
    /// Logical CPU cores.
    pub cpu_cores: usize,
    /// rayon threads the CPU backend uses.
    pub cpu_threads: usize,
    /// The CPU model, where the OS says.
    pub cpu_model: Option<String>,
    /// The host name.
    pub host: String,
    /// OS and architecture.
    pub os: String,
}

impl Machine {
    /// Describes this host and `ctx`'s adapter.
    pub fn probe(ctx: &GpuContext) -> Self {
        let s = ctx.summary();
        Self {
            adapter: s.name,
            backend: s.backend,
            device_type: s.device_type,
            driver: s.driver,
            software_adapter: ctx.is_software(),
            timestamps: ctx.has_timestamps(),
            cpu_cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_threads: rayon::current_num_threads(),
            cpu_model: cpu_model(),
            host: host_name(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// The CPU's model name from /proc/cpuinfo, when there is one.
pub(crate) fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// The host's name, or "unknown".
pub(crate) fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The settings a report was taken with.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Timed runs per backend and point (fewer where the point budget ran out).
    pub repeats: usize,
    /// Seconds allowed per backend and point.
    pub point_budget_s: f64,
    /// Warm-up runs per backend and point.
    pub warmup: usize,
    /// Bytes per Ed25519 message.
    pub ed25519_msg_len: usize,
    /// Bytes per Merkle leaf.
    pub merkle_leaf_len: usize,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The adapter and host.
    pub machine: Machine,
    /// When the run started (UTC, RFC 3339).
    pub date: String,
    /// How it was measured.
    pub settings: Settings,
    /// Caveats (software adapter, no timestamps, GPU errors).
    pub warnings: Vec<String>,
    /// One entry per operation, in order.
    pub ops: Vec<OpReport>,
    /// Seconds the whole run took, fixtures included.
    pub elapsed_s: f64,
}

impl Report {
    /// Every GPU/CPU mismatch, as `op: detail`.
    pub fn mismatches(&self) -> Vec<String> {
        self.ops.iter().filter_map(|o| o.mismatch.as_ref().map(|m| format!("{}: {m}", o.op))).collect()
    }
}

/// The warning printed for a software adapter.
pub const SOFTWARE_WARNING: &str =
    "the adapter is a software rasteriser (llvmpipe/lavapipe) running on the CPU: these \
     figures test the GPU code path and its correctness, not GPU speed";

/// The GPU kernels, each built on first use (an Ed25519 pipeline takes long to compile on a
/// software adapter; a run without Ed25519 never builds it). A kernel whose pipelines fail to
/// build keeps its error, which every call then returns.
pub struct Kernels {
    /// The device.
    pub ctx: Arc<GpuContext>,
    hasher: OnceLock<Result<GpuHasher, GpuError>>,
    ed25519: OnceLock<Result<GpuEd25519, GpuError>>,
}

impl Kernels {
    /// Kernels on `ctx`, none built yet.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        Self { ctx, hasher: OnceLock::new(), ed25519: OnceLock::new() }
    }

    fn hasher(&self) -> Result<&GpuHasher, GpuError> {
        self.hasher.get_or_init(|| GpuHasher::new(self.ctx.clone())).as_ref().map_err(Clone::clone)
    }

    fn ed25519(&self) -> Result<&GpuEd25519, GpuError> {
        self.ed25519.get_or_init(|| GpuEd25519::new(self.ctx.clone())).as_ref().map_err(Clone::clone)
    }

    /// Builds the pipelines `op` needs: how long that took (`None` when they were already
    /// built), or the error.
    pub fn prepare(&self, op: Op) -> (Option<Duration>, Result<(), GpuError>) {
        let built = match op {
            Op::Ed25519Verify => self.ed25519.get().is_some(),
            _ => self.hasher.get().is_some(),
        };
        let start = Instant::now();
        let r = match op {
            Op::Ed25519Verify => self.ed25519().map(|_| ()),
            _ => self.hasher().map(|_| ()),
        };
        ((!built).then(|| start.elapsed()), r)
    }

    /// Runs `input` on the GPU: the output and the kernel-only time, when measured.
    pub fn run(&self, input: &Input<'_>) -> Result<(Output, Option<Duration>), GpuError> {
        match input {
            Input::Hash(msgs) => self.hasher()?.sha256_batch_timed(msgs).map(|(d, t)| (Output::Digests(d), t)),
            Input::Merkle(leaves) => self.hasher()?.merkle_root_timed(leaves).map(|(r, t)| (Output::Root(r), t)),
            Input::Verify(items) => self.ed25519()?.verify_batch_timed(items).map(|(v, t)| (Output::Verdicts(v), t)),
        }
    }
}

/// One batch, borrowed from the fixtures.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    /// Messages to hash one by one.
    Hash(&'a [&'a [u8]]),
    /// Leaves of one Merkle tree.
    Merkle(&'a [&'a [u8]]),
    /// Signatures to verify.
    Verify(&'a [VerifyItem<'a>]),
}

impl Input<'_> {
    /// Items in the batch.
    pub fn len(&self) -> usize {
        match self {
            Input::Hash(m) | Input::Merkle(m) => m.len(),
            Input::Verify(v) => v.len(),
        }
    }

    /// True for an empty batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a backend computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// One digest per message.
    Digests(Vec<[u8; 32]>),
    /// One Merkle root.
    Root([u8; 32]),
    /// One verdict per signature.
    Verdicts(Vec<bool>),
}

/// Runs `input` on the CPU reference (every core).
pub fn run_cpu(cpu: &CpuVerifier, input: &Input<'_>) -> Output {
    // CpuVerifier never fails; its Result exists for the trait's GPU implementations.
    fn fail<T>(e: engine::verifier::VerifierError) -> T {
        panic!("the CPU verifier failed: {e}")
    }
    match input {
        Input::Hash(m) => Output::Digests(cpu.sha256_batch(m).unwrap_or_else(fail).into_iter().map(|d| d.0).collect()),
        Input::Merkle(l) => Output::Root(cpu.merkle_root(l).unwrap_or_else(fail).0),
        Input::Verify(v) => Output::Verdicts(cpu.verify_batch(v).unwrap_or_else(fail)),
    }
}

/// Where `gpu` differs from `cpu`, if it does.
pub fn compare(gpu: &Output, cpu: &Output) -> Result<(), String> {
    fn hex(d: &[u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }
    match (gpu, cpu) {
        (Output::Digests(g), Output::Digests(c)) => {
            if g.len() != c.len() {
                return Err(format!("GPU returned {} digests for {} messages", g.len(), c.len()));
            }
            match g.iter().zip(c).position(|(a, b)| a != b) {
                None => Ok(()),
                Some(i) => {
                    let wrong = g.iter().zip(c).filter(|(a, b)| a != b).count();
                    Err(format!("{wrong} digests differ; first at {i}: GPU {} CPU {}", hex(&g[i]), hex(&c[i])))
                }
            }
        }
        (Output::Root(g), Output::Root(c)) if g == c => Ok(()),
        (Output::Root(g), Output::Root(c)) => Err(format!("root GPU {} CPU {}", hex(g), hex(c))),
        (Output::Verdicts(g), Output::Verdicts(c)) => {
            if g.len() != c.len() {
                return Err(format!("GPU returned {} verdicts for {} signatures", g.len(), c.len()));
            }
            match g.iter().zip(c).position(|(a, b)| a != b) {
                None => Ok(()),
                Some(i) => {
                    let wrong = g.iter().zip(c).filter(|(a, b)| a != b).count();
                    Err(format!("{wrong} verdicts differ; first at {i}: GPU {} CPU {}", g[i], c[i]))
                }
            }
        }
        _ => Err("the GPU returned a different kind of output".into()),
    }
}

/// Deterministic inputs, built once per run at the largest size needed and sliced per point
/// (fixture item `i` does not depend on the fixture's length).
#[derive(Default)]
pub struct Fixtures {
    messages: HashMap<usize, Vec<Vec<u8>>>,
    signed: Vec<(Vec<u8>, PublicKey, Signature)>,
}

impl Fixtures {
    /// Makes sure `op` has at least `n` items.
    pub fn prepare(&mut self, op: Op, n: usize) {
        match op {
            Op::Ed25519Verify => {
                if self.signed.len() < n {
                    self.signed = crate::signed_items(n, ED25519_MSG_LEN);
                }
            }
            _ => {
                let len = op.item_bytes();
                if self.messages.get(&len).is_none_or(|m| m.len() < n) {
                    self.messages.insert(len, crate::messages(n, len));
                }
            }
        }
    }

    /// The messages or leaves of `op` (after [`Fixtures::prepare`]), as borrowed slices.
    pub fn message_refs(&self, op: Op) -> Vec<&[u8]> {
        self.messages.get(&op.item_bytes()).map(|m| m.iter().map(Vec::as_slice).collect()).unwrap_or_default()
    }

    /// The signed items (after [`Fixtures::prepare`] for Ed25519).
    pub fn verify_items(&self) -> Vec<VerifyItem<'_>> {
        self.signed.iter().map(|(m, k, s)| VerifyItem { msg: m, key: k, sig: s }).collect()
    }
}

/// Times one call.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// How many timed runs fit in `budget` after a warm-up that took `warm`.
fn runs_within(repeats: usize, budget: Duration, warm: Duration) -> usize {
    if warm.is_zero() {
        return repeats.max(1);
    }
    let fit = (budget.as_secs_f64() / warm.as_secs_f64()).floor() as usize;
    fit.clamp(1, repeats.max(1))
}

/// The smallest size from which `faster` holds at every larger measured size.
fn crossover(points: &[(usize, Option<bool>)]) -> Option<usize> {
    let measured: Vec<(usize, bool)> = points.iter().filter_map(|(n, f)| f.map(|f| (*n, f))).collect();
    let mut from = None;
    for (n, faster) in measured.iter().rev() {
        if !faster {
            break;
        }
        from = Some(*n);
    }
    from
}

/// The outcome of one point.
enum PointResult {
    Measured(Point),
    GpuFailed(Point, String),
}

/// Measures one point: warm-ups, then interleaved timed runs; every GPU output is compared with
/// the CPU's.
fn measure_point(
    op: Op,
    kernels: &Kernels,
    cpu: &CpuVerifier,
    input: &Input<'_>,
    cfg: &Config,
) -> Result<PointResult, BenchError> {
    let n = input.len();
    let mismatch = |detail: String| BenchError::Mismatch { op, n, detail };
    let (reference, cpu_warm) = timed(|| run_cpu(cpu, input));
    let (first, gpu_warm) = timed(|| kernels.run(input));
    let cpu_runs = runs_within(cfg.repeats, cfg.point_budget, cpu_warm);
    let gpu_runs = match &first {
        Ok((out, _)) => {
            compare(out, &reference).map_err(mismatch)?;
            runs_within(cfg.repeats, cfg.point_budget, gpu_warm)
        }
        Err(_) => 0,
    };
    let mut cpu_times = Vec::with_capacity(cpu_runs);
    let mut gpu_times = Vec::with_capacity(gpu_runs);
    let mut kernel_times = Vec::with_capacity(gpu_runs);
    let mut kernel_missing = false;
    let mut gpu_error = first.as_ref().err().map(|e| e.to_string());
    for i in 0..cpu_runs.max(gpu_runs) {
        if i < gpu_runs && gpu_error.is_none() {
            match timed(|| kernels.run(input)) {
                (Ok((out, kernel)), t) => {
                    compare(&out, &reference).map_err(mismatch)?;
                    gpu_times.push(t);
                    match kernel {
                        Some(k) => kernel_times.push(k),
                        None => kernel_missing = true,
                    }
                }
                (Err(e), _) => gpu_error = Some(e.to_string()),
            }
        }
        if i < cpu_runs {
            let (out, t) = timed(|| run_cpu(cpu, input));
            if out != reference {
                return Err(mismatch("the CPU reference is not deterministic".into()));
            }
            cpu_times.push(t);
        }
    }
    let cpu_timing = Timing::from_runs(n, cpu_times).expect("at least one CPU run");
    if let Some(e) = gpu_error {
        let point = Point {
            n,
            cpu: cpu_timing,
            gpu_e2e: None,
            gpu_kernel: None,
            ratio_e2e: None,
            ratio_kernel: None,
            gpu_error: Some(e.clone()),
        };
        return Ok(PointResult::GpuFailed(point, e));
    }
    let gpu_e2e = Timing::from_runs(n, gpu_times);
    let gpu_kernel = if kernel_missing { None } else { Timing::from_runs(n, kernel_times) };
    let ratio = |t: &Option<Timing>| t.as_ref().map(|t| t.items_per_s / cpu_timing.items_per_s);
    let point = Point {
        n,
        ratio_e2e: ratio(&gpu_e2e),
        ratio_kernel: ratio(&gpu_kernel),
        cpu: cpu_timing,
        gpu_e2e,
        gpu_kernel,
        gpu_error: None,
    };
    Ok(PointResult::Measured(point))
}

/// Ed25519: the batch with three corrupted items (a signature bit, a message byte, a key byte)
/// must get the same verdicts from both backends, `false` exactly at those items.
fn negative_check(
    kernels: &Kernels,
    cpu: &CpuVerifier,
    items: &[VerifyItem<'_>],
) -> Result<Result<(), GpuError>, BenchError> {
    let n = items.len();
    let mismatch = |detail: String| BenchError::Mismatch { op: Op::Ed25519Verify, n, detail };
    let mut bad_at = vec![0, n / 2, n - 1];
    bad_at.dedup();
    let mut sigs: Vec<Signature> = Vec::new();
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    let mut keys: Vec<PublicKey> = Vec::new();
    for (k, &i) in bad_at.iter().enumerate() {
        let it = items[i];
        match k {
            0 => {
                let mut s = *it.sig;
                s.0[7] ^= 0x20;
                sigs.push(s);
            }
            1 => {
                let mut m = it.msg.to_vec();
                let mid = m.len() / 2;
                m[mid] ^= 1;
                msgs.push(m);
            }
            _ => {
                let mut key = *it.key;
                key.0[3] ^= 4;
                keys.push(key);
            }
        }
    }
    let mut corrupted = items.to_vec();
    for (k, &i) in bad_at.iter().enumerate() {
        match k {
            0 => corrupted[i].sig = &sigs[0],
            1 => corrupted[i].msg = &msgs[0],
            _ => corrupted[i].key = &keys[0],
        }
    }
    let input = Input::Verify(&corrupted);
    let reference = run_cpu(cpu, &input);
    let expected: Vec<bool> = (0..n).map(|i| !bad_at.contains(&i)).collect();
    if reference != Output::Verdicts(expected) {
        return Err(mismatch("the CPU accepted a corrupted item or rejected a valid one".into()));
    }
    match kernels.run(&input) {
        Ok((out, _)) => {
            compare(&out, &reference).map_err(|d| mismatch(format!("with corrupted items at {bad_at:?}: {d}")))?;
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Runs the whole benchmark on `kernels`. `events` gets progress reports.
pub fn run(kernels: &Kernels, cfg: &Config, events: &mut dyn FnMut(Event)) -> Result<Report, BenchError> {
    if cfg.ops.is_empty() {
        return Err(BenchError::Config("no operation selected".into()));
    }
    if cfg.repeats == 0 {
        return Err(BenchError::Config("repeats must be at least 1".into()));
    }
    if cfg.plan().is_empty() {
        return Err(BenchError::Config("no batch size within the caps".into()));
    }
    let started = Instant::now();
    let date = utc_now();
    let machine = Machine::probe(&kernels.ctx);
    let mut warnings = Vec::new();
    if machine.software_adapter {
        warnings.push(SOFTWARE_WARNING.to_string());
    }
    if !machine.timestamps {
        warnings.push(
            "the adapter has no timestamp queries: GPU kernel-only times are not available, only end to end"
                .to_string(),
        );
    }
    let cpu = CpuVerifier::new();
    let mut fixtures = Fixtures::default();
    let mut ops = Vec::new();
    for &op in &cfg.ops {
        let sizes = cfg.sizes_for(op);
        let mut rep = OpReport {
            op: op.name().into(),
            description: op.describe().into(),
            item: op.item().into(),
            item_bytes: op.item_bytes(),
            sizes: sizes.clone(),
            points: Vec::new(),
            crossover: None,
            crossover_kernel: None,
            error: None,
            mismatch: None,
            negative_checks: 0,
            gpu_setup_s: 0.0,
        };
        let Some(&largest) = sizes.last() else {
            ops.push(rep);
            continue;
        };
        events(Event::Compiling { op });
        let (setup, built) = kernels.prepare(op);
        rep.gpu_setup_s = setup.map_or(0.0, |d| d.as_secs_f64());
        if let Err(e) = built {
            let e = format!("building the GPU pipelines: {e}");
            warnings.push(format!("{op}: {e}; not measured"));
            rep.error = Some(e);
            events(Event::Skipped { op, points: sizes.len() });
            ops.push(rep);
            continue;
        }
        events(Event::Preparing { op, n: largest });
        fixtures.prepare(op, largest);
        let refs = fixtures.message_refs(op);
        let items = if op == Op::Ed25519Verify { fixtures.verify_items() } else { Vec::new() };
        for (idx, &n) in sizes.iter().enumerate() {
            events(Event::Measuring { op, n });
            let input = match op {
                Op::Sha256Short | Op::Sha256Long => Input::Hash(&refs[..n]),
                Op::MerkleRoot => Input::Merkle(&refs[..n]),
                Op::Ed25519Verify => Input::Verify(&items[..n]),
            };
            let outcome = measure_point(op, kernels, &cpu, &input, cfg).and_then(|r| match r {
                PointResult::Measured(p) => {
                    rep.points.push(p);
                    if op == Op::Ed25519Verify && n <= NEGATIVE_CHECK_MAX {
                        Ok(match negative_check(kernels, &cpu, &items[..n])? {
                            Ok(()) => {
                                rep.negative_checks += 1;
                                None
                            }
                            Err(e) => Some(format!("batch {n}, corrupted items: {e}")),
                        })
                    } else {
                        Ok(None)
                    }
                }
                PointResult::GpuFailed(p, e) => {
                    rep.points.push(p);
                    Ok(Some(format!("batch {n}: {e}")))
                }
            });
            events(Event::Done { op, n });
            let failed = match outcome {
                Ok(failed) => failed,
                Err(e) => {
                    // A wrong answer: no figure of this operation is reported.
                    warnings.push(format!("{op}: {e}; no figures reported for {op}"));
                    rep.mismatch = Some(e.to_string());
                    rep.points.clear();
                    let left = sizes.len() - idx - 1;
                    if left > 0 {
                        events(Event::Skipped { op, points: left });
                    }
                    break;
                }
            };
            if let Some(e) = failed {
                warnings.push(format!("{op}: GPU failed at {e}; larger batches skipped"));
                rep.error = Some(e);
                let left = sizes.len() - idx - 1;
                if left > 0 {
                    events(Event::Skipped { op, points: left });
                }
                break;
            }
        }
        let faster = |kernel: bool| -> Vec<(usize, Option<bool>)> {
            rep.points
                .iter()
                .map(|p| {
                    let t = if kernel { &p.gpu_kernel } else { &p.gpu_e2e };
                    (p.n, t.as_ref().map(|t| t.items_per_s > p.cpu.items_per_s))
                })
                .collect()
        };
        let odd: Vec<String> = rep
            .points
            .iter()
            .filter(|p| match (&p.gpu_kernel, &p.gpu_e2e) {
                (Some(k), Some(e)) => k.median_s > e.median_s * 1.05,
                _ => false,
            })
            .map(|p| thousands(p.n))
            .collect();
        if !odd.is_empty() {
            warnings.push(format!(
                "{op}: the kernel-only time exceeds the end-to-end time at batch {}: this adapter's timestamp \
                 queries do not time kernels alone, read the kernel-only figures with care",
                odd.join(", ")
            ));
        }
        rep.crossover = crossover(&faster(false));
        rep.crossover_kernel = crossover(&faster(true));
        ops.push(rep);
    }
    Ok(Report {
        machine,
        date,
        settings: Settings {
            repeats: cfg.repeats,
            point_budget_s: cfg.point_budget.as_secs_f64(),
            warmup: 1,
            ed25519_msg_len: ED25519_MSG_LEN,
            merkle_leaf_len: MERKLE_LEAF_LEN,
        },
        warnings,
        ops,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format_utc(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// `x` with an SI suffix and three significant digits: 1.23 k, 45.6 M.
pub fn si(x: f64) -> String {
    let (v, suffix) = match x.abs() {
        a if a >= 1e9 => (x / 1e9, " G"),
        a if a >= 1e6 => (x / 1e6, " M"),
        a if a >= 1e3 => (x / 1e3, " k"),
        _ => (x, " "),
    };
    let s = if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    format!("{s}{suffix}").trim_end().to_string()
}

/// A duration in seconds, readably: 812 ns, 3.4 µs, 12.3 ms, 1.52 s.
pub fn human_time(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.2} ms", s * 1e3)
    } else if s >= 1e-6 {
        format!("{:.1} µs", s * 1e6)
    } else {
        format!("{:.0} ns", s * 1e9)
    }
}

/// A GPU/CPU ratio with two significant digits below 1: 0.16×, 0.0013×, 2.50×.
pub fn ratio(x: f64) -> String {
    if !(x.is_finite() && x > 0.0) {
        return format!("{x}×");
    }
    let decimals = (1 - x.log10().floor() as i32).clamp(2, 9) as usize;
    format!("{x:.decimals$}×")
}

/// `n` with thousands separators.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report as Markdown tables, one per operation, with crossovers and warnings.
pub fn render_tables(r: &Report) -> String {
    use std::fmt::Write as _;
    let m = &r.machine;
    let mut s = String::new();
    let _ = writeln!(s, "GPU: {} ({}, {}, driver {})", m.adapter, m.backend, m.device_type, m.driver);
    let _ = writeln!(
        s,
        "CPU: {} cores ({} rayon threads){}; host {} ({}); {}",
        m.cpu_cores,
        m.cpu_threads,
        m.cpu_model.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        m.host,
        m.os,
        r.date
    );
    let _ = writeln!(
        s,
        "median of up to {} runs per backend and point after 1 warm-up (fewer where one run exceeds {} s / {}); \
         kernel-only times {}",
        r.settings.repeats,
        r.settings.point_budget_s,
        r.settings.repeats,
        if m.timestamps { "from timestamp queries" } else { "not available (no timestamp queries)" }
    );
    for w in &r.warnings {
        let _ = writeln!(s, "WARNING: {w}");
    }
    for op in &r.ops {
        let _ = writeln!(s);
        let _ = writeln!(s, "{}: {} ({} bytes per item)", op.op, op.description, op.item_bytes);
        if op.gpu_setup_s > 0.0 {
            let _ = writeln!(s, "GPU pipelines built in {} (not in any figure)", human_time(op.gpu_setup_s));
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "| batch | CPU time | CPU {item}/s | GPU e2e time | GPU e2e {item}/s | GPU kernel {item}/s | GPU/CPU e2e | GPU/CPU kernel |",
            item = op.item
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for p in &op.points {
            let dash = || "–".to_string();
            let (e2e_t, e2e_r) = match (&p.gpu_e2e, &p.gpu_error) {
                (Some(t), _) => (human_time(t.median_s), si(t.items_per_s)),
                (None, Some(_)) => ("failed".into(), "failed".into()),
                (None, None) => (dash(), dash()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(p.n),
                human_time(p.cpu.median_s),
                si(p.cpu.items_per_s),
                e2e_t,
                e2e_r,
                p.gpu_kernel.as_ref().map(|t| si(t.items_per_s)).unwrap_or_else(dash),
                p.ratio_e2e.map(ratio).unwrap_or_else(dash),
                p.ratio_kernel.map(ratio).unwrap_or_else(dash),
            );
        }
        if let Some(m) = &op.mismatch {
            let _ = writeln!(s, "| WRONG RESULTS, no figures | | | | | | | |");
            let _ = writeln!(s);
            let _ = writeln!(s, "ERROR: {m}");
            continue;
        }
        if op.points.is_empty() {
            let _ = writeln!(s, "| (none measured) | | | | | | | |");
        }
        let _ = writeln!(s);
        let cross = |c: Option<usize>| c.map(|n| format!("from {} {}", thousands(n), op.item));
        let _ = writeln!(
            s,
            "crossover (GPU end to end beats CPU at this size and every larger one measured): {}",
            cross(op.crossover).unwrap_or_else(|| "none measured".into())
        );
        if m.timestamps {
            let _ = writeln!(
                s,
                "crossover, kernel only: {}",
                cross(op.crossover_kernel).unwrap_or_else(|| "none measured".into())
            );
        }
        if op.negative_checks > 0 {
            let _ = writeln!(s, "corrupted-item checks passed: {} batches", op.negative_checks);
        }
        if let Some(e) = &op.error {
            let _ = writeln!(s, "GPU ERROR: {e}");
        }
    }
    let _ = writeln!(s);
    let _ = write!(s, "run took {:.1} s", r.elapsed_s);
    s
}

/// A batch size for an axis: 64, 1Ki, 256Ki, 1Mi.
fn batch_label(x: f64) -> String {
    let n = x.round() as u64;
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}Mi", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}Ki", n >> 10),
        n => n.to_string(),
    }
}

/// Writes an SVG of throughput (items/s, log scale) against batch size (log scale): one panel
/// per operation, with GPU end-to-end, GPU kernel-only and CPU lines.
pub fn plot_svg(r: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let cols = if r.ops.len() > 1 { 2 } else { 1 };
    let rows = r.ops.len().div_ceil(cols).max(1);
    let (w, h) = (560 * cols as u32, 420 * rows as u32 + 60);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| format!("plot: {e}");
    root.fill(&WHITE).map_err(e)?;
    let title = format!(
        "medchain bench gpu: {} vs {} CPU cores, {}{}",
        r.machine.adapter,
        r.machine.cpu_cores,
        &r.date[..r.date.len().min(10)],
        if r.machine.software_adapter { " (SOFTWARE ADAPTER: not GPU speed)" } else { "" }
    );
    let (top, body) = root.split_vertically(60);
    top.titled(&title, ("sans-serif", 20)).map_err(e)?;
    let panels = body.split_evenly((rows, cols));
    let cpu_color = RGBColor(31, 119, 180);
    let e2e_color = RGBColor(214, 39, 40);
    let kernel_color = RGBColor(255, 127, 14);
    for (op, area) in r.ops.iter().zip(panels.iter()) {
        type Series = (&'static str, RGBColor, Vec<(f64, f64)>);
        let series: Vec<Series> = vec![
            ("CPU (all cores)", cpu_color, op.points.iter().map(|p| (p.n as f64, p.cpu.items_per_s)).collect()),
            (
                "GPU end to end",
                e2e_color,
                op.points.iter().filter_map(|p| p.gpu_e2e.as_ref().map(|t| (p.n as f64, t.items_per_s))).collect(),
            ),
            (
                "GPU kernel only",
                kernel_color,
                op.points.iter().filter_map(|p| p.gpu_kernel.as_ref().map(|t| (p.n as f64, t.items_per_s))).collect(),
            ),
        ];
        let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.2.iter().copied()).collect();
        let caption = format!("{}: {}", op.op, op.description);
        if all.is_empty() {
            let area = area.titled(&caption, ("sans-serif", 14)).map_err(e)?;
            let why = match (&op.mismatch, &op.error) {
                (Some(_), _) => "GPU/CPU MISMATCH: wrong results, no figures",
                (None, Some(e)) => e.as_str(),
                (None, None) => "no batch size within the cap",
            };
            let why: String = why.chars().take(70).collect();
            area.draw(&Text::new(format!("no data: {why}"), (20, 40), ("sans-serif", 13).into_font().color(&RED)))
                .map_err(e)?;
            continue;
        }
        let (xmin, xmax) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
        let (ymin, ymax) = all.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
        let (xmin, xmax) = (xmin / 2.0, xmax * 2.0);
        let (ymin, ymax) = (ymin / 3.0, ymax * 3.0);
        // Ticks at the powers of four (the default grid) and of ten.
        let xticks: Vec<f64> = std::iter::successors(Some(1.0f64), |x| Some(x * 4.0))
            .skip_while(|x| *x < xmin)
            .take_while(|x| *x <= xmax)
            .collect();
        // Decades, with 2 and 5 in between when the range spans few of them.
        let steps: &[f64] = if ymax / ymin < 1e3 { &[1.0, 2.0, 5.0] } else { &[1.0] };
        let yticks: Vec<f64> = (-3..=12)
            .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
            .filter(|y| *y >= ymin && *y <= ymax)
            .collect();
        let xaxis = LogCoord::from((xmin..xmax).log_scale()).with_key_points(xticks);
        let yaxis = LogCoord::from((ymin..ymax).log_scale()).with_key_points(yticks);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 14))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(xaxis, yaxis)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(format!("batch size ({})", op.item))
            .y_desc(format!("{}/s (log)", op.item))
            .x_label_formatter(&|x| batch_label(*x))
            .y_label_formatter(&|y| si(*y))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(e)?;
        for (label, color, pts) in series {
            if pts.is_empty() {
                continue;
            }
            let style = color.stroke_width(2);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), style))
                .map_err(e)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(pts.iter().map(|&(x, y)| Circle::new((x, y), 3, color.filled()))).map_err(e)?;
        }
        let note = match (&op.mismatch, &op.error) {
            (Some(_), _) => Some("GPU/CPU MISMATCH: wrong results, no figures".to_string()),
            (None, Some(e)) => Some(format!("GPU failed at {e}")),
            (None, None) => None,
        };
        if let Some(note) = note {
            let note: String = note.chars().take(80).collect();
            area.draw(&Text::new(note, (80, 30), ("sans-serif", 12).into_font().color(&RED))).map_err(e)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_and_caps() {
        let cfg = Config::default();
        assert_eq!(cfg.sizes_for(Op::Sha256Short).len(), 11);
        assert_eq!(cfg.sizes_for(Op::Sha256Short).last(), Some(&MAX_BATCH));
        assert_eq!(cfg.sizes_for(Op::MerkleRoot), vec![1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20]);
        let mut quick = Config { max_batch: 16, ..Config::default() };
        assert_eq!(quick.sizes_for(Op::Ed25519Verify), vec![1, 4, 16]);
        assert_eq!(quick.sizes_for(Op::MerkleRoot), vec![16], "a low cap still measures one tree");
        quick.op_max.insert(Op::Ed25519Verify, 4);
        assert_eq!(quick.sizes_for(Op::Ed25519Verify), vec![1, 4]);
        assert_eq!(quick.plan().len(), 3 + 3 + 1 + 2);
    }

    #[test]
    fn crossover_needs_every_larger_size() {
        let pts = |v: &[bool]| -> Vec<(usize, Option<bool>)> {
            v.iter().enumerate().map(|(i, f)| (1usize << (2 * i), Some(*f))).collect()
        };
        assert_eq!(crossover(&pts(&[false, false, true, true])), Some(16));
        assert_eq!(crossover(&pts(&[false, true, false, true])), Some(64));
        assert_eq!(crossover(&pts(&[true, true, true])), Some(1));
        assert_eq!(crossover(&pts(&[true, true, false])), None);
        assert_eq!(crossover(&[]), None);
        assert_eq!(crossover(&[(1, Some(true)), (4, None)]), Some(1), "unmeasured points do not count");
    }

    #[test]
    fn medians_and_rates() {
        let ms = Duration::from_millis;
        let t = Timing::from_runs(1000, vec![ms(30), ms(10), ms(20)]).unwrap();
        assert_eq!(t.median_s, 0.02);
        assert_eq!((t.min_s, t.max_s, t.runs), (0.01, 0.03, 3));
        assert!((t.items_per_s - 50_000.0).abs() < 1e-6);
        let t = Timing::from_runs(10, vec![ms(10), ms(20), ms(40), ms(30)]).unwrap();
        assert!((t.median_s - 0.025).abs() < 1e-12);
        assert!(Timing::from_runs(1, vec![]).is_none());
        assert_eq!(runs_within(5, Duration::from_secs(10), Duration::from_secs(4)), 2);
        assert_eq!(runs_within(5, Duration::from_secs(10), Duration::from_secs(40)), 1);
        assert_eq!(runs_within(5, Duration::from_secs(10), Duration::from_millis(1)), 5);
    }

    #[test]
    fn compare_finds_differences() {
        let a = Output::Digests(vec![[1; 32], [2; 32]]);
        assert!(compare(&a, &a).is_ok());
        let err = compare(&Output::Digests(vec![[1; 32], [3; 32]]), &a).unwrap_err();
        assert!(err.contains("first at 1"), "{err}");
        assert!(compare(&Output::Digests(vec![[1; 32]]), &a).is_err());
        assert!(compare(&Output::Root([0; 32]), &Output::Root([1; 32])).is_err());
        assert!(compare(&Output::Verdicts(vec![true, false]), &Output::Verdicts(vec![true, true])).is_err());
        assert!(compare(&Output::Root([0; 32]), &Output::Verdicts(vec![])).is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(1_795_222_923), "2026-11-21T01:02:03Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(si(38_200.0), "38.2 k");
        assert_eq!(si(1_234_567.0), "1.23 M");
        assert_eq!(si(12.0), "12.0");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(thousands(64), "64");
        assert_eq!(human_time(0.0123), "12.30 ms");
        assert_eq!(ratio(0.1612), "0.16×");
        assert_eq!(ratio(0.000334), "0.00033×");
        assert_eq!(ratio(2.5), "2.50×");
        assert_eq!(ratio(31.4159), "31.42×");
    }

    #[test]
    fn parse_names() {
        for op in Op::ALL {
            assert_eq!(Op::parse(op.name()), Some(op));
        }
        assert_eq!(Op::parse("nope"), None);
    }
}
