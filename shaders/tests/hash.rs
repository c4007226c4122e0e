//! The SHA-256 and Merkle kernels against the CPU (`sha2`, `engine::merkle`), on whatever
//! adapter `GpuContext::for_tests` finds (llvmpipe included). Without one the tests print a
//! reason and pass, unless `MEDCHAIN_REQUIRE_GPU=1`, where they fail.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest as _, Sha256};
use shaders::hash::{GpuHasher, HasherLimits};
use shaders::GpuContext;
use std::sync::OnceLock;
use std::time::Instant;

/// One context and hasher for the whole file (pipelines built once, buffers reused).
fn hasher() -> Option<&'static GpuHasher> {
    static HASHER: OnceLock<Option<GpuHasher>> = OnceLock::new();
    HASHER
        .get_or_init(|| {
            let ctx = GpuContext::for_tests()?;
            eprintln!("adapter: {}", ctx.describe());
            Some(GpuHasher::new(ctx).expect("the SHA-256 kernels build"))
        })
        .as_ref()
}

/// A hasher whose limits force every chunked path: a few messages and bytes per chunk, level
/// buffers of 16 digests (so trees beyond 16 leaves are built as subtrees, and beyond 256 the
/// subtree roots are reduced twice), a read-back buffer filled several times per batch, and
/// storage bindings of 4 KiB (the longest message it accepts).
fn small_chunk_hasher() -> Option<&'static GpuHasher> {
    static HASHER: OnceLock<Option<GpuHasher>> = OnceLock::new();
    HASHER
        .get_or_init(|| {
            let ctx = GpuContext::for_tests()?;
            let limits = HasherLimits {
                chunk_messages: 7,
                chunk_bytes: 300,
                level_digests: 16,
                readback_bytes: 32 * 20,
                workgroups_per_dimension: 65535,
                max_binding_bytes: 4096,
            };
            let h = GpuHasher::with_limits(ctx, limits).expect("the SHA-256 kernels build");
            assert_eq!(h.limits(), limits, "the small limits were clamped away; the test would not split");
            Some(h)
        })
        .as_ref()
}

/// A hasher allowed 3 workgroups per dimension, so dispatches go 2-D (x = 3, y = rows) with a
/// partly idle last row.
fn narrow_dispatch_hasher() -> Option<&'static GpuHasher> {
    static HASHER: OnceLock<Option<GpuHasher>> = OnceLock::new();
    HASHER
        .get_or_init(|| {
            let ctx = GpuContext::for_tests()?;
            let limits = HasherLimits { workgroups_per_dimension: 3, ..HasherLimits::for_device(&ctx) };
            let h = GpuHasher::with_limits(ctx, limits).expect("the SHA-256 kernels build");
            assert_eq!(h.limits().workgroups_per_dimension, 3);
            Some(h)
        })
        .as_ref()
}

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A message of random bytes with a random length in `lens`.
fn random_msg(rng: &mut ChaCha20Rng, lens: std::ops::Range<usize>) -> Vec<u8> {
    let len = rng.gen_range(lens);
    random_bytes(rng, len)
}

fn cpu_sha256(msgs: &[Vec<u8>]) -> Vec<[u8; 32]> {
    msgs.iter().map(|m| Sha256::digest(m).into()).collect()
}

fn refs(msgs: &[Vec<u8>]) -> Vec<&[u8]> {
    msgs.iter().map(Vec::as_slice).collect()
}

fn assert_hashes(h: &GpuHasher, msgs: &[Vec<u8>]) {
    let gpu = h.sha256_batch(&refs(msgs)).expect("GPU SHA-256");
    let cpu = cpu_sha256(msgs);
    assert_eq!(gpu.len(), cpu.len());
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert_eq!(hex::encode(g), hex::encode(c), "message {i} ({} bytes)", msgs[i].len());
    }
}

fn leaves(rng: &mut ChaCha20Rng, n: usize, max_len: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| random_msg(rng, 0..max_len + 1)).collect()
}

fn assert_root(h: &GpuHasher, leaves: &[Vec<u8>]) {
    let gpu = h.merkle_root(&refs(leaves)).expect("GPU Merkle root");
    let cpu = engine::merkle::root(leaves);
    assert_eq!(hex::encode(gpu), hex::encode(cpu.0), "tree of {} leaves", leaves.len());
}

const EDGES: [usize; 11] = [0, 1, 55, 56, 63, 64, 65, 119, 120, 127, 128];

#[test]
fn sha256_padding_edges() {
    let Some(h) = hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    // Each edge alone (one message per batch, so nothing around it can mask a bad read) ...
    for len in EDGES {
        assert_hashes(h, &[random_bytes(&mut rng, len)]);
    }
    // ... together with every length up to three blocks, and the standard vectors.
    let mut msgs: Vec<Vec<u8>> = EDGES.iter().map(|&l| random_bytes(&mut rng, l)).collect();
    msgs.extend((0..=192).map(|l| random_bytes(&mut rng, l)));
    msgs.push(b"abc".to_vec());
    msgs.push(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".to_vec());
    msgs.push(vec![0xff; 64]);
    assert_hashes(h, &msgs);
    let abc = h.sha256_batch(&[b"abc"]).unwrap();
    assert_eq!(hex::encode(abc[0]), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn sha256_random_lengths() {
    let Some(h) = hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let msgs: Vec<Vec<u8>> = (0..600).map(|_| random_msg(&mut rng, 0..2000)).collect();
    assert_hashes(h, &msgs);
    // The same buffers again with a smaller and then a larger batch (pool reuse and growth).
    assert_hashes(h, &msgs[..3]);
    let more: Vec<Vec<u8>> = (0..3000).map(|_| random_msg(&mut rng, 0..300)).collect();
    assert_hashes(h, &more);
}

#[test]
fn empty_batch() {
    let Some(h) = hasher() else { return };
    let (digests, _) = h.sha256_batch_timed(&[]).unwrap();
    assert!(digests.is_empty());
    let empty: Vec<Vec<u8>> = Vec::new();
    assert_root(h, &empty);
    let Some(s) = small_chunk_hasher() else { return };
    assert!(s.sha256_batch(&[]).unwrap().is_empty());
}

#[test]
fn merkle_every_size_up_to_300() {
    let Some(h) = hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // One pool of leaves; tree n is its first n (each root a separate GPU call).
    let pool = leaves(&mut rng, 300, 80);
    for n in 0..=300 {
        assert_root(h, &pool[..n]);
    }
}

#[test]
fn merkle_large_trees() {
    let Some(h) = hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    for n in [1024, 4097, 65537] {
        assert_root(h, &leaves(&mut rng, n, 48));
    }
}

#[test]
fn leaves_that_are_not_word_aligned_or_empty() {
    let Some(h) = hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    // Leaf hashing shifts each message by the 0x00 prefix; cover every length mod 4 and the
    // lengths whose prefixed stream sits on a padding edge (54, 55, 62, 63, 118, 119, ...).
    for n in [2usize, 3, 5] {
        for base in [0usize, 1, 2, 3, 4, 54, 55, 56, 62, 63, 64, 118, 119, 126, 127] {
            let tree: Vec<Vec<u8>> = (0..n).map(|i| random_bytes(&mut rng, base + i)).collect();
            assert_root(h, &tree);
        }
    }
    assert_root(h, &vec![Vec::new(); 7]);
}

#[test]
fn small_chunks_give_the_same_results() {
    let Some(s) = small_chunk_hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    // Many chunks (7 messages, ~300 bytes each; messages over 300 bytes go alone) and several
    // read-back drains per batch.
    let msgs: Vec<Vec<u8>> = (0..500).map(|_| random_msg(&mut rng, 0..700)).collect();
    assert_hashes(s, &msgs);
    assert_hashes(s, &msgs[..1]);
    // Trees: one subtree, several, and more than 16 subtrees (roots reduced twice).
    let pool = leaves(&mut rng, 4097, 90);
    for n in [1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 100, 255, 256, 257, 300, 1000, 4096, 4097] {
        assert_root(s, &pool[..n]);
    }
}

#[test]
fn two_dimensional_dispatch_gives_the_same_results() {
    let Some(h) = narrow_dispatch_hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(8);
    // 1000 messages: 16 workgroups as 3 x 6; a tree of 4097 leaves: node levels of up to 2049
    // outputs, 33 workgroups as 3 x 11.
    let msgs: Vec<Vec<u8>> = (0..1000).map(|_| random_msg(&mut rng, 0..150)).collect();
    assert_hashes(h, &msgs);
    assert_root(h, &msgs);
    assert_root(h, &leaves(&mut rng, 4097, 40));
    // 12,289 messages: 193 workgroups as 3 x 65.
    let many: Vec<Vec<u8>> = (0..12289).map(|_| random_msg(&mut rng, 0..20)).collect();
    assert_hashes(h, &many);
}

#[test]
fn a_message_longer_than_a_binding_is_an_error_and_the_hasher_goes_on() {
    let Some(s) = small_chunk_hasher() else { return };
    let fits = vec![0x5au8; 4096];
    let too_long = vec![0x5au8; 4097];
    assert_hashes(s, std::slice::from_ref(&fits));
    let err = s.sha256_batch(&[&fits, &too_long]).unwrap_err();
    assert!(matches!(err, shaders::GpuError::Validation { .. }), "{err}");
    assert!(err.to_string().contains("4097"), "{err}");
    assert!(s.merkle_root(&[b"a".as_slice(), &too_long]).is_err());
    // Nothing was submitted; the next calls are unaffected.
    assert_hashes(s, &[fits.clone(), b"abc".to_vec()]);
    assert_root(s, &[fits, b"abc".to_vec()]);
}

#[test]
fn kernel_time_is_reported_with_timestamps() {
    let Some(h) = hasher() else { return };
    let msgs = vec![vec![7u8; 64]; 100];
    let (_, time) = h.sha256_batch_timed(&refs(&msgs)).unwrap();
    let (_, tree_time) = h.merkle_root_timed(&refs(&msgs)).unwrap();
    let expected = h.limits().chunk_messages > 0 && timestamps();
    assert_eq!(time.is_some(), expected);
    assert_eq!(tree_time.is_some(), expected);
}

fn timestamps() -> bool {
    GpuContext::for_tests().is_some_and(|c| c.has_timestamps())
}

/// Correctness at the sizes of the throughput figures, with the figures printed
/// (`--nocapture`): 65,536 64-byte messages, and a tree of 2^16 leaves.
#[test]
fn batch_of_65536_and_tree_of_65536() {
    let Some(h) = hasher() else { return };
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let msgs: Vec<Vec<u8>> = (0..65536).map(|_| random_bytes(&mut rng, 64)).collect();
    let r = refs(&msgs);
    h.sha256_batch(&r[..64]).unwrap(); // warm the buffers
    let t = Instant::now();
    let (gpu, kernel) = h.sha256_batch_timed(&r).unwrap();
    let wall = t.elapsed();
    assert_eq!(gpu, cpu_sha256(&msgs));
    eprintln!(
        "sha256 x65536 (64 B): {:.3} s wall, {:.0} hashes/s; kernel {:?}",
        wall.as_secs_f64(),
        65536.0 / wall.as_secs_f64(),
        kernel
    );
    let t = Instant::now();
    let (root, kernel) = h.merkle_root_timed(&r).unwrap();
    let wall = t.elapsed();
    assert_eq!(root, engine::merkle::root(&msgs).0);
    eprintln!("merkle root of 2^16 leaves: {:.3} s wall; kernel {:?}", wall.as_secs_f64(), kernel);
}
