//! CPU reference throughput: Ed25519 batch verification across all cores, batch SHA-256 and
//! Merkle roots. These bound how many transactions a validator can check per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::verifier::{BatchVerifier, CpuVerifier, VerifyItem};

fn ed25519(c: &mut Criterion) {
    let v = CpuVerifier::new();
    let mut g = c.benchmark_group("ed25519_verify_cpu");
    for n in [1usize, 64, 1024, 8192] {
        let items = bench::signed_items(n, 600);
        let refs: Vec<VerifyItem<'_>> = items.iter().map(|(m, k, s)| VerifyItem { msg: m, key: k, sig: s }).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &refs, |b, refs| {
            b.iter(|| {
                let out = v.verify_batch(refs).expect("cpu verifier does not fail");
                assert!(out.iter().all(|ok| *ok));
            })
        });
    }
    g.finish();
}

fn sha256(c: &mut Criterion) {
    let v = CpuVerifier::new();
    let mut g = c.benchmark_group("sha256_cpu");
    for (n, len) in [(65536usize, 64usize), (16384, 512)] {
        let msgs = bench::messages(n, len);
        let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new(format!("{len}B"), n), &refs, |b, refs| {
            b.iter(|| v.sha256_batch(refs).expect("cpu"))
        });
    }
    g.finish();
}

fn merkle(c: &mut Criterion) {
    let v = CpuVerifier::new();
    let mut g = c.benchmark_group("merkle_root_cpu");
    for log in [10u32, 16] {
        let leaves = bench::messages(1 << log, 512);
        let refs: Vec<&[u8]> = leaves.iter().map(|m| m.as_slice()).collect();
        g.throughput(Throughput::Elements(1 << log));
        g.bench_with_input(BenchmarkId::from_parameter(format!("2^{log}")), &refs, |b, refs| {
            b.iter(|| v.merkle_root(refs).expect("cpu"))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = ed25519, sha256, merkle
}
criterion_main!(benches);
