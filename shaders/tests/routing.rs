//! The node's verifier: routing by crossover, and the CPU fallback when the GPU fails, on the
//! real shaders (lavapipe in CI).

use engine::verifier::{BatchVerifier, CpuVerifier, VerifyItem};
use shaders::routing::sample_items;
use shaders::{Crossover, GpuContext, GpuVerifier, RoutedVerifier};

fn counter(v: &RoutedVerifier, name: &str) -> u64 {
    v.counters().iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no counter {name}")).value
}

#[test]
fn gpu_failures_fall_back_to_the_cpu_with_the_same_verdicts_and_are_counted() {
    let Some(ctx) = GpuContext::for_tests() else { return };
    let gpu = GpuVerifier::new(ctx).expect("kernels build");
    let v = RoutedVerifier::new(Some(gpu), Crossover { verify: Some(4), hash: Some(4) });
    let items = sample_items(6, 100);
    let mut bad = items[2].2;
    bad.0[40] ^= 0x10;
    let mut refs: Vec<VerifyItem<'_>> = items.iter().map(|(m, k, s)| VerifyItem { msg: m, key: k, sig: s }).collect();
    refs[2].sig = &bad;
    let want = CpuVerifier::new().verify_batch(&refs).unwrap();
    assert_eq!(want, vec![true, true, false, true, true, true]);

    // Below the crossover: the CPU.
    assert_eq!(v.verify_batch(&refs[..3]).unwrap(), want[..3]);
    assert_eq!((counter(&v, "cpu_batches"), counter(&v, "gpu_batches")), (1, 0));
    // At or above it: the GPU.
    assert_eq!(v.verify_batch(&refs).unwrap(), want);
    assert_eq!((counter(&v, "gpu_batches"), counter(&v, "gpu_items")), (1, 6));
    // A failing GPU: the same verdicts, from the CPU, counted as a fallback.
    v.gpu().unwrap().inject_failures(2);
    assert_eq!(v.verify_batch(&refs).unwrap(), want);
    let msgs: Vec<&[u8]> = items.iter().map(|(m, _, _)| m.as_slice()).collect();
    assert_eq!(v.sha256_batch(&msgs).unwrap(), CpuVerifier::new().sha256_batch(&msgs).unwrap());
    assert_eq!(counter(&v, "gpu_fallbacks"), 2);
    assert_eq!(counter(&v, "gpu_batches"), 1);
    // Healthy again: back on the GPU.
    assert_eq!(v.merkle_root(&msgs).unwrap(), CpuVerifier::new().merkle_root(&msgs).unwrap());
    assert_eq!(counter(&v, "gpu_batches"), 2);
}

#[test]
fn no_crossover_means_the_cpu_only() {
    let Some(ctx) = GpuContext::for_tests() else { return };
    let gpu = GpuVerifier::new(ctx).expect("kernels build");
    let v = RoutedVerifier::new(Some(gpu), Crossover { verify: None, hash: None });
    let items = sample_items(8, 10);
    let refs: Vec<VerifyItem<'_>> = items.iter().map(|(m, k, s)| VerifyItem { msg: m, key: k, sig: s }).collect();
    assert_eq!(v.verify_batch(&refs).unwrap(), vec![true; 8]);
    assert_eq!(counter(&v, "gpu_batches"), 0);
    assert_eq!(counter(&v, "cpu_items"), 8);
}
