//! The GPU context: adapter choice, the device and queue, pipeline creation inside error scopes,
//! and blocking submit-and-read-back with a timeout. Every kernel module builds on this.
//!
//! Adapter policy (`MEDCHAIN_GPU`):
//! - unset or `auto`: a real GPU (discrete, integrated or virtual) when one exists, none otherwise;
//! - `force`: a software adapter (llvmpipe/lavapipe) is accepted when no real GPU exists;
//! - `off`: no GPU at all.
//!
//! wgpu's default handler for uncaptured errors panics; a node must never panic because of its
//! GPU, so the context installs handlers that record the error and the device loss instead, and
//! every operation checks them and returns [`GpuError`].

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long one submission may take before the batch is abandoned (and re-done on the CPU).
pub const SUBMISSION_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the GPU could not be used or a GPU operation failed. Callers fall back to the CPU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    /// `MEDCHAIN_GPU=off`.
    #[error("the GPU is disabled (MEDCHAIN_GPU=off)")]
    Disabled,
    /// No adapter acceptable under the policy.
    #[error("no usable GPU adapter: {0}")]
    NoAdapter(String),
    /// `MEDCHAIN_GPU` holds something other than auto, force or off.
    #[error("MEDCHAIN_GPU={0:?} is not understood; use auto, force or off")]
    BadPolicy(String),
    /// The adapter refused to open a device.
    #[error("could not open the GPU device: {0}")]
    RequestDevice(String),
    /// A shader or pipeline failed validation (caught by an error scope).
    #[error("GPU validation error in {label}: {reason}")]
    Validation {
        /// The pipeline or operation.
        label: String,
        /// wgpu's message.
        reason: String,
    },
    /// The device was lost; the context is unusable from now on.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// A submission did not finish within [`SUBMISSION_TIMEOUT`].
    #[error("a GPU submission did not finish within {0:?}")]
    Timeout(Duration),
    /// Mapping a result buffer failed.
    #[error("could not read back GPU results: {0}")]
    Map(String),
    /// An error outside any scope (recorded by the uncaptured-error handler).
    #[error("GPU error: {0}")]
    Uncaptured(String),
}

/// Which adapters are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Real GPUs only.
    Auto,
    /// Real GPUs, else a software adapter.
    Force,
    /// None.
    Off,
}

impl AdapterPolicy {
    /// The policy from `MEDCHAIN_GPU`.
    pub fn from_env() -> Result<Self, GpuError> {
        match std::env::var("MEDCHAIN_GPU") {
            Err(_) => Ok(Self::Auto),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "auto" => Ok(Self::Auto),
                "force" => Ok(Self::Force),
                "off" | "0" | "no" => Ok(Self::Off),
                _ => Err(GpuError::BadPolicy(v)),
            },
        }
    }
}

/// One adapter as found, for `medchain gpu info`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AdapterSummary {
    /// The adapter's name (e.g. "NVIDIA H100 80GB HBM3", "llvmpipe (LLVM 15.0.6, 256 bits)").
    pub name: String,
    /// Vulkan, Metal, Dx12, ...
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Whether the policy accepts it.
    pub acceptable: bool,
}

fn summary(info: &wgpu::AdapterInfo, acceptable: bool) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        acceptable,
    }
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn acceptable(t: wgpu::DeviceType, policy: AdapterPolicy) -> bool {
    match policy {
        AdapterPolicy::Off => false,
        AdapterPolicy::Force => true,
        AdapterPolicy::Auto => !matches!(t, wgpu::DeviceType::Cpu | wgpu::DeviceType::Other),
    }
}

/// Every adapter the instance finds, with whether `policy` accepts it.
pub fn list_adapters(policy: AdapterPolicy) -> Vec<AdapterSummary> {
    let instance = new_instance();
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
    adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            summary(&info, acceptable(info.device_type, policy))
        })
        .collect()
}

fn new_instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = wgpu::Backends::PRIMARY;
    wgpu::Instance::new(desc)
}

/// An open device with its queue, shared by every kernel.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter says of itself.
    pub info: wgpu::AdapterInfo,
    /// The limits the device was opened with (the adapter's own).
    pub limits: wgpu::Limits,
    /// The features the device was opened with.
    pub features: wgpu::Features,
    lost: Arc<Mutex<Option<String>>>,
    is_lost: Arc<AtomicBool>,
    uncaptured: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.info.name).field("backend", &self.info.backend).finish()
    }
}

impl GpuContext {
    /// Opens the best adapter that `MEDCHAIN_GPU` allows; `None` (quickly) when there is none.
    pub fn try_new() -> Option<Arc<Self>> {
        let policy = AdapterPolicy::from_env().ok()?;
        Self::new(policy).ok()
    }

    /// Opens the best adapter that `policy` allows.
    pub fn new(policy: AdapterPolicy) -> Result<Arc<Self>, GpuError> {
        if policy == AdapterPolicy::Off {
            return Err(GpuError::Disabled);
        }
        let instance = new_instance();
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY));
        let found: Vec<String> =
            adapters.iter().map(|a| format!("{} ({:?})", a.get_info().name, a.get_info().device_type)).collect();
        adapters.retain(|a| acceptable(a.get_info().device_type, policy));
        adapters.sort_by_key(|a| rank(a.get_info().device_type));
        let Some(adapter) = adapters.into_iter().next() else {
            let hint = if policy == AdapterPolicy::Auto && !found.is_empty() {
                "; only software adapters, which need MEDCHAIN_GPU=force"
            } else if found.is_empty() {
                "; install a Vulkan driver (mesa-vulkan-drivers for the software one)"
            } else {
                ""
            };
            return Err(GpuError::NoAdapter(format!("found [{}]{hint}", found.join(", "))));
        };
        Self::open(adapter)
    }

    /// For tests: any adapter, software included. `None` with a printed reason when there is
    /// none; panics instead when `MEDCHAIN_REQUIRE_GPU=1` (CI), so a missing driver fails CI.
    pub fn for_tests() -> Option<Arc<Self>> {
        match Self::new(AdapterPolicy::Force) {
            Ok(ctx) => Some(ctx),
            Err(e) => {
                if std::env::var("MEDCHAIN_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                    panic!("MEDCHAIN_REQUIRE_GPU=1 but no GPU adapter: {e}");
                }
                eprintln!("skipping GPU test: {e}");
                None
            }
        }
    }

    fn open(adapter: wgpu::Adapter) -> Result<Arc<Self>, GpuError> {
        let info = adapter.get_info();
        let limits = adapter.limits();
        let offered = adapter.features();
        let wanted = wgpu::Features::SHADER_INT64 | wgpu::Features::TIMESTAMP_QUERY;
        let features = offered & wanted;
        let desc = wgpu::DeviceDescriptor {
            label: Some("medchain"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&desc)).map_err(|e| GpuError::RequestDevice(e.to_string()))?;
        let lost = Arc::new(Mutex::new(None));
        let is_lost = Arc::new(AtomicBool::new(false));
        {
            let lost = lost.clone();
            let is_lost = is_lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                *lost.lock() = Some(format!("{reason:?}: {msg}"));
                is_lost.store(true, Ordering::SeqCst);
            });
        }
        let uncaptured = Arc::new(Mutex::new(None));
        {
            let uncaptured = uncaptured.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                tracing::error!(error = %e, "uncaptured GPU error");
                uncaptured.lock().get_or_insert_with(|| e.to_string());
            }));
        }
        tracing::info!(adapter = %info.name, backend = ?info.backend, kind = ?info.device_type, "GPU adapter opened");
        Ok(Arc::new(Self { device, queue, info, limits, features, lost, is_lost, uncaptured }))
    }

    /// True for a software adapter (llvmpipe): correct, but no faster than the CPU.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A one-line description for logs.
    pub fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.info.name, self.info.backend, self.info.device_type)
    }

    /// The adapter as `medchain gpu info` shows it.
    pub fn summary(&self) -> AdapterSummary {
        summary(&self.info, true)
    }

    /// Whether the device was opened with native 64-bit integers in shaders.
    pub fn has_int64(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_INT64)
    }

    /// Whether timestamp queries (kernel-only timings) are available.
    pub fn has_timestamps(&self) -> bool {
        self.features.contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Fails if the device was lost or an uncaptured error was recorded; the error is taken,
    /// so the next operation may try again (a lost device stays lost).
    pub fn check_health(&self) -> Result<(), GpuError> {
        if self.is_lost.load(Ordering::SeqCst) {
            return Err(GpuError::DeviceLost(self.lost.lock().clone().unwrap_or_default()));
        }
        if let Some(e) = self.uncaptured.lock().take() {
            return Err(GpuError::Uncaptured(e));
        }
        Ok(())
    }

    /// Compiles `source` and creates a compute pipeline for `entry` (layout derived from the
    /// shader), inside validation and out-of-memory error scopes.
    pub fn compute_pipeline(&self, label: &str, source: &str, entry: &str) -> Result<wgpu::ComputePipeline, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        });
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(GpuError::Validation { label: label.to_string(), reason: e.to_string() });
        }
        self.check_health()?;
        Ok(pipeline)
    }

    /// Runs `f` (which creates buffers, bind groups, encodes and submits) inside error scopes;
    /// any validation or out-of-memory error becomes a [`GpuError`].
    pub fn scoped<T>(&self, label: &str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(GpuError::Validation { label: label.to_string(), reason: e.to_string() });
        }
        self.check_health()?;
        Ok(out)
    }

    /// Blocks until `submission` has finished, or fails after [`SUBMISSION_TIMEOUT`].
    pub fn wait(&self, submission: wgpu::SubmissionIndex) -> Result<(), GpuError> {
        self.device
            .poll(wgpu::PollType::Wait { submission_index: Some(submission), timeout: Some(SUBMISSION_TIMEOUT) })
            .map_err(|e| match e {
                wgpu::PollError::Timeout => GpuError::Timeout(SUBMISSION_TIMEOUT),
                other => GpuError::Map(other.to_string()),
            })?;
        self.check_health()
    }

    /// Maps `buffer` (MAP_READ) over `0..len` after the last submission, copies it out and
    /// unmaps it.
    pub fn read_back(&self, buffer: &wgpu::Buffer, len: u64) -> Result<Vec<u8>, GpuError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let slice = buffer.slice(0..len);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::Wait { submission_index: None, timeout: Some(SUBMISSION_TIMEOUT) }).map_err(
            |e| match e {
                wgpu::PollError::Timeout => GpuError::Timeout(SUBMISSION_TIMEOUT),
                other => GpuError::Map(other.to_string()),
            },
        )?;
        let mapped = rx.recv_timeout(Duration::from_secs(1)).map_err(|e| GpuError::Map(e.to_string()))?;
        mapped.map_err(|e| GpuError::Map(e.to_string()))?;
        let out = slice.get_mapped_range().map_err(|e| GpuError::Map(e.to_string()))?.to_vec();
        buffer.unmap();
        self.check_health()?;
        Ok(out)
    }

    /// The largest storage buffer a single binding may cover, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size)
    }

    /// The most workgroups one dispatch may have along x.
    pub fn max_workgroups_x(&self) -> u32 {
        self.limits.max_compute_workgroups_per_dimension
    }
}

/// Kernel-only timing with timestamp queries: each timed compute pass takes one pair of
/// queries; [`PassTimer::total`] sums the pairs used. Only where the adapter offers
/// `TIMESTAMP_QUERY` ([`GpuContext::pass_timer`] returns `None` otherwise).
pub struct PassTimer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    pairs: u32,
    used: u32,
    period_ns: f64,
}

/// Pairs one timer holds; a batch with more timed passes than this stops timing the rest.
pub const PASS_TIMER_PAIRS: u32 = 1024;

impl GpuContext {
    /// A timer for up to [`PASS_TIMER_PAIRS`] passes, or `None` without timestamp queries.
    pub fn pass_timer(&self) -> Option<PassTimer> {
        if !self.has_timestamps() {
            return None;
        }
        let pairs = PASS_TIMER_PAIRS;
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pass-timer"),
            ty: wgpu::QueryType::Timestamp,
            count: pairs * 2,
        });
        let bytes = u64::from(pairs) * 2 * 8;
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pass-timer-resolve"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let read = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pass-timer-read"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Some(PassTimer { set, resolve, read, pairs, used: 0, period_ns: f64::from(self.queue.get_timestamp_period()) })
    }
}

impl PassTimer {
    /// Timestamp writes for the next compute pass, or `None` once the timer is full.
    pub fn next_writes(&mut self) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        if self.used >= self.pairs {
            return None;
        }
        let i = self.used;
        self.used += 1;
        Some(wgpu::ComputePassTimestampWrites {
            query_set: &self.set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        })
    }

    /// Records the resolve of every used query into `encoder`; call once, after the last pass,
    /// in the last encoder submitted.
    pub fn resolve(&self, encoder: &mut wgpu::CommandEncoder) {
        if self.used == 0 {
            return;
        }
        encoder.resolve_query_set(&self.set, 0..self.used * 2, &self.resolve, 0);
        encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.read, 0, u64::from(self.used) * 16);
    }

    /// The summed duration of the timed passes (after the submission with [`Self::resolve`]).
    pub fn total(&self, ctx: &GpuContext) -> Result<Duration, GpuError> {
        if self.used == 0 {
            return Ok(Duration::ZERO);
        }
        let bytes = ctx.read_back(&self.read, u64::from(self.used) * 16)?;
        let stamps: &[u64] = bytemuck::cast_slice(&bytes);
        let ticks: u64 = stamps.chunks_exact(2).map(|p| p[1].saturating_sub(p[0])).sum();
        Ok(Duration::from_nanos((ticks as f64 * self.period_ns) as u64))
    }
}
