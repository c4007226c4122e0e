//! GPU against all CPU cores, in the same criterion run: batch SHA-256 (64- and 512-byte
//! messages), Merkle roots and Ed25519 verification, at a few batch sizes each. Per group
//! `gpu_vs_cpu/<op>`: `gpu_e2e/<n>` (one `shaders` call: upload, kernels, read-back),
//! `gpu_kernel/<n>` (kernel-only time from timestamp queries, where the adapter has them) and
//! `cpu/<n>` (`CpuVerifier`, rayon over every core).
//!
//! The adapter: `MEDCHAIN_GPU` when it is set (`auto`: real GPUs only, `force`: the software
//! adapter too, `off`); when it is unset, `force`, so the bench also runs (slowly, as a check of
//! the plumbing) on a machine with only llvmpipe/lavapipe. Without any adapter it prints why and
//! measures nothing. An operation whose GPU kernel fails is skipped with a printed reason; a GPU
//! result that differs from the CPU's panics.
//!
//! `MEDCHAIN_GPU_BENCH_MAX=N` caps the batch sizes and `MEDCHAIN_GPU_BENCH_OPS=sha256-64,merkle`
//! picks operations (`sha256-64`, `sha256-512`, `merkle`, `ed25519`); both help on a software
//! adapter, where the Ed25519 pipeline alone takes minutes to compile. (A criterion filter after
//! `--` only selects what is timed: fixtures and the checked first run of every operation
//! still happen.)
//!
//! ```sh
//! cargo bench -p medchain-bench --bench gpu
//! MEDCHAIN_GPU_BENCH_MAX=1024 MEDCHAIN_GPU_BENCH_OPS=sha256-64,sha256-512,merkle \
//!     cargo bench -p medchain-bench --bench gpu
//! ```

use bench::gpu::{compare, run_cpu, Fixtures, Input, Kernels, Op};
use criterion::{BenchmarkId, Criterion, Throughput};
use engine::verifier::CpuVerifier;
use shaders::{AdapterPolicy, GpuContext};
use std::time::Duration;

fn sizes(op: Op) -> &'static [usize] {
    match op {
        Op::Sha256Short => &[1024, 65536],
        Op::Sha256Long => &[1024, 16384],
        Op::MerkleRoot => &[1024, 65536],
        Op::Ed25519Verify => &[64, 1024],
    }
}

fn open() -> Option<Kernels> {
    let policy = match std::env::var("MEDCHAIN_GPU") {
        Err(_) => AdapterPolicy::Force,
        Ok(_) => match AdapterPolicy::from_env() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("gpu bench: {e}");
                return None;
            }
        },
    };
    match GpuContext::new(policy) {
        Ok(ctx) => {
            eprintln!("gpu bench: adapter {}", ctx.describe());
            if ctx.is_software() {
                eprintln!("gpu bench: WARNING: {}", bench::gpu::SOFTWARE_WARNING);
            }
            if !ctx.has_timestamps() {
                eprintln!("gpu bench: no timestamp queries on this adapter: no gpu_kernel figures");
            }
            Some(Kernels::new(ctx))
        }
        Err(e) => {
            eprintln!("gpu bench: skipped, no GPU adapter under {policy:?}: {e}");
            None
        }
    }
}

fn bench_op(c: &mut Criterion, kernels: &Kernels, op: Op, cap: usize) {
    let cpu = CpuVerifier::new();
    let sizes: Vec<usize> = sizes(op).iter().copied().filter(|n| *n <= cap).collect();
    let Some(&largest) = sizes.last() else {
        eprintln!("gpu bench: {op}: no size under MEDCHAIN_GPU_BENCH_MAX={cap}");
        return;
    };
    let mut fixtures = Fixtures::default();
    fixtures.prepare(op, largest);
    let refs = fixtures.message_refs(op);
    let items = if op == Op::Ed25519Verify { fixtures.verify_items() } else { Vec::new() };
    let mut g = c.benchmark_group(format!("gpu_vs_cpu/{op}"));
    for n in sizes {
        let input = match op {
            Op::Sha256Short | Op::Sha256Long => Input::Hash(&refs[..n]),
            Op::MerkleRoot => Input::Merkle(&refs[..n]),
            Op::Ed25519Verify => Input::Verify(&items[..n]),
        };
        // One checked run first: a failing kernel skips the operation, a wrong one panics.
        let reference = run_cpu(&cpu, &input);
        let timed_kernel = match kernels.run(&input) {
            Ok((out, kernel)) => {
                if let Err(d) = compare(&out, &reference) {
                    panic!("GPU/CPU MISMATCH in {op} at batch {n}: {d}");
                }
                kernel.is_some()
            }
            Err(e) => {
                eprintln!("gpu bench: {op} skipped, the GPU failed at batch {n}: {e}");
                break;
            }
        };
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("gpu_e2e", n), &input, |b, input| {
            b.iter(|| kernels.run(input).expect("the GPU failed during the benchmark"))
        });
        if timed_kernel {
            g.bench_with_input(BenchmarkId::new("gpu_kernel", n), &input, |b, input| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| kernels.run(input).expect("the GPU failed").1.unwrap_or_default())
                        .sum::<Duration>()
                })
            });
        }
        g.bench_with_input(BenchmarkId::new("cpu", n), &input, |b, input| b.iter(|| run_cpu(&cpu, input)));
    }
    g.finish();
}

fn main() {
    let Some(kernels) = open() else {
        return;
    };
    let cap = match std::env::var("MEDCHAIN_GPU_BENCH_MAX") {
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("MEDCHAIN_GPU_BENCH_MAX={v:?} is not a count")),
        Err(_) => usize::MAX,
    };
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let ops: Vec<Op> = match std::env::var("MEDCHAIN_GPU_BENCH_OPS") {
        Ok(v) => v
            .split(',')
            .map(|name| Op::parse(name).unwrap_or_else(|| panic!("MEDCHAIN_GPU_BENCH_OPS: unknown operation {name:?}")))
            .collect(),
        Err(_) => Op::ALL.to_vec(),
    };
    for op in ops {
        bench_op(&mut c, &kernels, op, cap);
    }
    c.final_summary();
}
