//! [`RoutedVerifier`]: the verifier a node runs. Small batches go to the CPU, batches at or above
//! the crossover to the GPU; a GPU failure re-does that batch on the CPU and is counted. The
//! verdicts are always the CPU reference's (the GPU kernels are tested to equal it item by item).

use crate::gpu::{AdapterPolicy, GpuContext};
use crate::verifier::GpuVerifier;
use engine::codec::Digest;
use engine::crypto::SigningKey;
use engine::verifier::{BatchVerifier, CpuVerifier, VerifierCounter, VerifierError, VerifyItem};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Batch sizes tried when measuring the crossover at start-up.
pub const CROSSOVER_SIZES: [usize; 6] = [64, 256, 1024, 4096, 16384, 65536];

/// The start-up measurement stops trying larger sizes after this much time.
pub const CROSSOVER_BUDGET: Duration = Duration::from_secs(4);

/// Where a batch went and what failed, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    gpu_batches: AtomicU64,
    gpu_items: AtomicU64,
    cpu_batches: AtomicU64,
    cpu_items: AtomicU64,
    gpu_fallbacks: AtomicU64,
}

/// The crossovers a node routes by: batches of at least this many items go to the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Crossover {
    /// Signatures per batch from which the GPU wins; `None`: never (the CPU always wins).
    pub verify: Option<usize>,
    /// Messages per batch from which GPU hashing wins; `None`: never.
    pub hash: Option<usize>,
}

/// CPU below the crossover, GPU at or above it, CPU again if the GPU fails.
pub struct RoutedVerifier {
    cpu: CpuVerifier,
    gpu: Option<GpuVerifier>,
    crossover: Crossover,
    counters: Counters,
}

impl std::fmt::Debug for RoutedVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutedVerifier").field("gpu", &self.gpu).field("crossover", &self.crossover).finish()
    }
}

impl RoutedVerifier {
    /// The CPU alone.
    pub fn cpu_only() -> Self {
        Self::new(None, Crossover { verify: None, hash: None })
    }

    /// Routes to `gpu` from `crossover` on.
    pub fn new(gpu: Option<GpuVerifier>, crossover: Crossover) -> Self {
        Self { cpu: CpuVerifier::new(), gpu, crossover, counters: Counters::default() }
    }

    /// What a node runs: the adapter `policy` allows, routed from `crossover` (both checks and
    /// hashing) or from the crossover measured now; the CPU alone when there is no adapter or
    /// its kernels cannot be built. Logs what it chose and why.
    pub fn for_node(policy: AdapterPolicy, crossover: Option<usize>) -> Self {
        let ctx = match GpuContext::new(policy) {
            Ok(ctx) => ctx,
            Err(e) => {
                tracing::info!(reason = %e, "no GPU offload; signatures are checked on the CPU");
                return Self::cpu_only();
            }
        };
        let gpu = match GpuVerifier::new(ctx) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(error = %e, "the GPU kernels could not be built; signatures are checked on the CPU");
                return Self::cpu_only();
            }
        };
        let (crossover, source) = match crossover {
            Some(c) => (Crossover { verify: Some(c), hash: Some(c) }, "node.toml"),
            None => (measure_crossover(&gpu), "measured"),
        };
        tracing::info!(
            adapter = %gpu.context().describe(),
            verify_crossover = ?crossover.verify,
            hash_crossover = ?crossover.hash,
            source,
            "GPU offload ready (None: the CPU is faster at every batch size)"
        );
        Self::new(Some(gpu), crossover)
    }

    /// The GPU, if any.
    pub fn gpu(&self) -> Option<&GpuVerifier> {
        self.gpu.as_ref()
    }

    /// The crossovers in use.
    pub fn crossover(&self) -> Crossover {
        self.crossover
    }

    fn gpu_for(&self, n: usize, at: Option<usize>) -> Option<&GpuVerifier> {
        match (self.gpu.as_ref(), at) {
            (Some(g), Some(c)) if n >= c && n > 0 => Some(g),
            _ => None,
        }
    }

    fn routed<T>(
        &self,
        n: usize,
        at: Option<usize>,
        gpu: impl FnOnce(&GpuVerifier) -> Result<T, VerifierError>,
        cpu: impl FnOnce(&CpuVerifier) -> Result<T, VerifierError>,
    ) -> Result<T, VerifierError> {
        if let Some(g) = self.gpu_for(n, at) {
            match gpu(g) {
                Ok(out) => {
                    self.counters.gpu_batches.fetch_add(1, Ordering::Relaxed);
                    self.counters.gpu_items.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(out);
                }
                Err(e) => {
                    self.counters.gpu_fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, items = n, "GPU batch failed; re-doing it on the CPU");
                }
            }
        }
        self.counters.cpu_batches.fetch_add(1, Ordering::Relaxed);
        self.counters.cpu_items.fetch_add(n as u64, Ordering::Relaxed);
        cpu(&self.cpu)
    }
}

impl BatchVerifier for RoutedVerifier {
    fn name(&self) -> String {
        match &self.gpu {
            Some(g) => format!("cpu+{}", g.name()),
            None => "cpu".into(),
        }
    }

    fn verify_batch(&self, items: &[VerifyItem<'_>]) -> Result<Vec<bool>, VerifierError> {
        self.routed(
            items.len(),
            self.crossover.verify,
            |g| {
                let v = g.verify_batch(items)?;
                if v.len() != items.len() {
                    return Err(VerifierError {
                        backend: g.name(),
                        reason: format!("{} verdicts for {} items", v.len(), items.len()),
                    });
                }
                Ok(v)
            },
            |c| c.verify_batch(items),
        )
    }

    fn sha256_batch(&self, msgs: &[&[u8]]) -> Result<Vec<Digest>, VerifierError> {
        self.routed(msgs.len(), self.crossover.hash, |g| g.sha256_batch(msgs), |c| c.sha256_batch(msgs))
    }

    fn merkle_root(&self, leaves: &[&[u8]]) -> Result<Digest, VerifierError> {
        self.routed(leaves.len(), self.crossover.hash, |g| g.merkle_root(leaves), |c| c.merkle_root(leaves))
    }

    fn counters(&self) -> Vec<VerifierCounter> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let c = &self.counters;
        vec![
            VerifierCounter { name: "gpu_batches", help: "Batches run on the GPU.", value: get(&c.gpu_batches) },
            VerifierCounter {
                name: "gpu_items",
                help: "Items checked or hashed on the GPU.",
                value: get(&c.gpu_items),
            },
            VerifierCounter { name: "cpu_batches", help: "Batches run on the CPU.", value: get(&c.cpu_batches) },
            VerifierCounter {
                name: "cpu_items",
                help: "Items checked or hashed on the CPU.",
                value: get(&c.cpu_items),
            },
            VerifierCounter {
                name: "gpu_fallbacks",
                help: "GPU batches that failed (validation error, device lost, timeout) and were re-done on the CPU.",
                value: get(&c.gpu_fallbacks),
            },
        ]
    }
}

/// Deterministic valid items for measurements: `n` signatures over `msg_len`-byte messages.
pub fn sample_items(n: usize, msg_len: usize) -> Vec<(Vec<u8>, engine::crypto::PublicKey, engine::crypto::Signature)> {
    (0..n)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let key = SigningKey::from_seed(seed);
            let msg: Vec<u8> = (0..msg_len).map(|j| (i.wrapping_mul(131) ^ j) as u8).collect();
            let sig = key.sign_raw(&msg);
            (msg, key.public(), sig)
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<T>(repeats: usize, mut f: impl FnMut() -> Result<T, VerifierError>) -> Result<Duration, VerifierError> {
    f()?; // warm-up: pipelines, buffer growth, rayon threads
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    Ok(median(times))
}

/// Measures where `gpu` starts to beat all CPU cores, for signature checks and for hashing:
/// the smallest tried size from which the GPU is faster at every larger size tried. Sizes are
/// tried in increasing order until [`CROSSOVER_BUDGET`] is spent. A GPU that fails gives `None`.
pub fn measure_crossover(gpu: &GpuVerifier) -> Crossover {
    let started = Instant::now();
    let cpu = CpuVerifier::new();
    let max = *CROSSOVER_SIZES.last().unwrap_or(&1);
    let pool = sample_items(1024.min(max), 256);
    let mut verify_wins = Vec::new();
    let mut hash_wins = Vec::new();
    let msgs: Vec<Vec<u8>> = (0..max).map(|i| (0..64).map(|j| (i ^ j) as u8).collect()).collect();
    for &n in &CROSSOVER_SIZES {
        if started.elapsed() > CROSSOVER_BUDGET {
            break;
        }
        // Signed items are reused cyclically: signing is not what is measured.
        let items: Vec<VerifyItem<'_>> =
            (0..n).map(|i| &pool[i % pool.len()]).map(|(m, k, s)| VerifyItem { msg: m, key: k, sig: s }).collect();
        let g = time(3, || gpu.verify_batch(&items));
        let c = time(3, || cpu.verify_batch(&items));
        match (g, c) {
            (Ok(g), Ok(c)) => verify_wins.push((n, g < c)),
            _ => return Crossover { verify: None, hash: None },
        }
        let refs: Vec<&[u8]> = msgs[..n].iter().map(|m| m.as_slice()).collect();
        let g = time(3, || gpu.sha256_batch(&refs));
        let c = time(3, || cpu.sha256_batch(&refs));
        match (g, c) {
            (Ok(g), Ok(c)) => hash_wins.push((n, g < c)),
            _ => return Crossover { verify: None, hash: None },
        }
    }
    Crossover { verify: crossover_of(&verify_wins), hash: crossover_of(&hash_wins) }
}

/// The smallest size from which every measured size is a win.
pub fn crossover_of(wins: &[(usize, bool)]) -> Option<usize> {
    let mut at = None;
    for &(n, win) in wins.iter().rev() {
        if !win {
            break;
        }
        at = Some(n);
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossover_is_the_start_of_the_winning_tail() {
        assert_eq!(crossover_of(&[(64, false), (256, true), (1024, true)]), Some(256));
        assert_eq!(crossover_of(&[(64, true), (256, false), (1024, true)]), Some(1024));
        assert_eq!(crossover_of(&[(64, true), (256, true), (1024, false)]), None);
        assert_eq!(crossover_of(&[]), None);
    }

    #[test]
    fn cpu_only_routes_everything_to_the_cpu_and_counts_it() {
        let v = RoutedVerifier::cpu_only();
        let items = sample_items(3, 10);
        let mut refs: Vec<VerifyItem<'_>> =
            items.iter().map(|(m, k, s)| VerifyItem { msg: m, key: k, sig: s }).collect();
        let mut bad = items[1].2;
        bad.0[5] ^= 1;
        refs[1].sig = &bad;
        assert_eq!(v.verify_batch(&refs).unwrap(), vec![true, false, true]);
        let counters = v.counters();
        let get = |n: &str| counters.iter().find(|c| c.name == n).unwrap().value;
        assert_eq!((get("cpu_batches"), get("cpu_items"), get("gpu_batches")), (1, 3, 0));
    }
}
