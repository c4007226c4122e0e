//! The Ed25519 (ZIP-215) kernel on a real adapter (llvmpipe included): every verdict equals
//! `ed25519-consensus`'s (`engine::crypto::verify_raw`), item by item — the public vectors, random
//! signatures over messages of every SHA-512 block edge, corruptions of each part, small-order
//! and mixed-order points, non-canonical encodings, shuffled mixed batches and batches split into
//! many chunks.
//!
//! Without an adapter the tests print why and pass, unless `MEDCHAIN_REQUIRE_GPU=1` (CI), where
//! a missing adapter fails them. The vectors live in `../shared/vectors/ed25519/` next to the
//! workspace (or where `MEDCHAIN_VECTORS` says); a missing file fails the test.

use curve25519_dalek_ng::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek_ng::edwards::EdwardsPoint;
use curve25519_dalek_ng::scalar::Scalar;
use engine::crypto::{verify_raw, PublicKey, Signature};
use engine::verifier::VerifyItem;
use num_bigint::BigUint;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde_json::Value;
use sha2::{Digest, Sha512};
use shaders::ed25519::GpuEd25519;
use shaders::GpuContext;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// One case: a key, a signature, a message and the ZIP-215 verdict when a suite states one.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    key: PublicKey,
    sig: Signature,
    msg: Vec<u8>,
    expected: Option<bool>,
}

impl Case {
    fn new(name: impl Into<String>, key: [u8; 32], sig: [u8; 64], msg: Vec<u8>) -> Self {
        Self { name: name.into(), key: PublicKey(key), sig: Signature(sig), msg, expected: None }
    }

    fn item(&self) -> VerifyItem<'_> {
        VerifyItem { msg: &self.msg, key: &self.key, sig: &self.sig }
    }

    fn reference(&self) -> bool {
        verify_raw(&self.key, &self.sig, &self.msg)
    }
}

/// The kernel, built once for the whole test binary (compiling it is the slow part on llvmpipe).
fn kernel() -> Option<&'static GpuEd25519> {
    static KERNEL: OnceLock<Option<GpuEd25519>> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let ctx: Arc<GpuContext> = GpuContext::for_tests()?;
            let start = std::time::Instant::now();
            let kernel = GpuEd25519::new(ctx.clone()).expect("the Ed25519 kernel builds");
            eprintln!("ed25519 kernel built on {} in {:?}", ctx.describe(), start.elapsed());
            Some(kernel)
        })
        .as_ref()
}

/// Runs `cases` through `kernel` as one batch and checks every verdict against
/// `ed25519-consensus` and, where given, against the suite's ZIP-215 verdict.
fn check(kernel: &GpuEd25519, cases: &[&Case], what: &str) {
    let items: Vec<VerifyItem<'_>> = cases.iter().map(|c| c.item()).collect();
    let start = std::time::Instant::now();
    let (verdicts, kernel_time) = kernel.verify_batch_timed(&items).expect("the GPU batch runs");
    eprintln!("{what}: {} items in {:?} (kernel {:?})", items.len(), start.elapsed(), kernel_time);
    assert_eq!(verdicts.len(), cases.len(), "{what}: one verdict per item");
    let mut wrong = Vec::new();
    for (c, gpu) in cases.iter().zip(&verdicts) {
        let cpu = c.reference();
        if let Some(expected) = c.expected {
            assert_eq!(cpu, expected, "{what}: ed25519-consensus disagrees with the suite on {}", c.name);
        }
        if *gpu != cpu {
            wrong.push(format!("{} (GPU {gpu}, ed25519-consensus {cpu})", c.name));
        }
    }
    assert!(wrong.is_empty(), "{what}: the GPU disagrees on {} of {} items: {wrong:#?}", wrong.len(), cases.len());
}

// ---------------------------------------------------------------------------------------------
// The public vectors (loading as in engine/tests/vectors.rs).
// ---------------------------------------------------------------------------------------------

fn vectors_dir() -> PathBuf {
    match std::env::var_os("MEDCHAIN_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors"),
    }
}

fn load(file: &str) -> Value {
    let path = vectors_dir().join("ed25519").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the test vectors at {}: {e}. They live in shared/vectors/ed25519/ next to the \
             workspace; set MEDCHAIN_VECTORS to the vectors folder if it is elsewhere.",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

fn str_field<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or_else(|| panic!("vector without a string `{field}`: {v}"))
}

fn hex_field(v: &Value, field: &str) -> Vec<u8> {
    hex::decode(str_field(v, field)).unwrap_or_else(|e| panic!("`{field}` is not hex ({e}): {v}"))
}

fn array<const N: usize>(bytes: &[u8], what: &str) -> [u8; N] {
    bytes.try_into().unwrap_or_else(|_| panic!("{what} has {} bytes, expected {N}", bytes.len()))
}

/// C2SP CCTV: ZIP-215 accepts all but the `reencoded_k` vectors whose A is not of low order.
fn cctv() -> Vec<Case> {
    let all = load("cctv-ed25519vectors.json");
    let list = all.as_array().expect("CCTV vectors are a JSON array");
    assert_eq!(list.len(), 914, "the CCTV suite has 914 vectors");
    let cases: Vec<Case> = list
        .iter()
        .map(|v| {
            let flags: Vec<&str> =
                v["flags"].as_array().map_or(vec![], |f| f.iter().filter_map(Value::as_str).collect());
            let mut c = Case::new(
                format!("cctv #{}", v["number"]),
                array(&hex_field(v, "key"), "key"),
                array(&hex_field(v, "sig"), "sig"),
                str_field(v, "msg").as_bytes().to_vec(),
            );
            c.expected = Some(!flags.contains(&"reencoded_k") || flags.contains(&"low_order_A"));
            c
        })
        .collect();
    assert_eq!(cases.iter().filter(|c| c.expected == Some(true)).count(), 826);
    cases
}

/// "Taming the many EdDSAs", cases 0–11: V V V V V V X X X V V V.
fn speccheck() -> Vec<Case> {
    const VERDICTS: [bool; 12] = [true, true, true, true, true, true, false, false, false, true, true, true];
    let all = load("speccheck-cases.json");
    let list = all.as_array().expect("speccheck cases are a JSON array");
    assert_eq!(list.len(), VERDICTS.len());
    list.iter()
        .zip(VERDICTS)
        .enumerate()
        .map(|(i, (v, accept))| {
            let mut c = Case::new(
                format!("speccheck case {i}"),
                array(&hex_field(v, "pub_key"), "pub_key"),
                array(&hex_field(v, "signature"), "signature"),
                hex_field(v, "message"),
            );
            c.expected = Some(accept);
            c
        })
        .collect()
}

/// Wycheproof: the expected result on every test but tcId 151 (R = a non-canonical encoding of
/// the identity, y = 1 with the sign bit set), which ZIP-215 accepts. Signatures of the wrong
/// length cannot be represented and are left out (they are simply invalid).
fn wycheproof() -> Vec<Case> {
    let all = load("wycheproof-ed25519_test.json");
    let mut cases = Vec::new();
    let mut wrong_length = 0;
    for g in all["testGroups"].as_array().expect("Wycheproof testGroups") {
        let key = array(&hex::decode(str_field(&g["publicKey"], "pk")).expect("pk hex"), "publicKey.pk");
        for t in g["tests"].as_array().expect("Wycheproof tests") {
            let id = t["tcId"].as_u64().expect("tcId");
            let valid = match str_field(t, "result") {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {id}: unexpected result {other:?}"),
            };
            let sig = hex_field(t, "sig");
            if sig.len() != 64 {
                assert!(!valid);
                wrong_length += 1;
                continue;
            }
            let mut c = Case::new(format!("wycheproof tcId {id}"), key, array(&sig, "sig"), hex_field(t, "msg"));
            c.expected = Some(if id == 151 {
                assert!(!valid, "tcId 151 is the documented exception");
                true
            } else {
                valid
            });
            cases.push(c);
        }
    }
    assert_eq!(cases.len() + wrong_length, 151);
    cases
}

#[test]
fn public_vectors_get_the_zip215_verdicts() {
    let Some(kernel) = kernel() else { return };
    let mut all = cctv();
    all.extend(speccheck());
    all.extend(wycheproof());
    let refs: Vec<&Case> = all.iter().collect();
    check(kernel, &refs, "all vectors, one batch");
}

// ---------------------------------------------------------------------------------------------
// Generated cases.
// ---------------------------------------------------------------------------------------------

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn random_bytes(rng: &mut ChaCha20Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

fn sign(rng: &mut ChaCha20Rng, msg: &[u8]) -> ([u8; 32], [u8; 64]) {
    let sk = ed25519_consensus::SigningKey::new(&mut *rng);
    let key = ed25519_consensus::VerificationKey::from(&sk).to_bytes();
    (key, sk.sign(msg).to_bytes())
}

/// Message lengths around every SHA-512 block edge of R ‖ A ‖ M (64 + len + 17 bytes of
/// padding against multiples of 128) and around the edges of M itself, plus random ones.
fn message_lengths(rng: &mut ChaCha20Rng) -> Vec<usize> {
    let mut lens = vec![0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33];
    for edge in [47usize, 48, 111, 112, 127, 128, 175, 176, 239, 240, 255, 256, 303, 304, 431, 432, 559, 560] {
        lens.extend([edge - 1, edge, edge + 1]);
    }
    lens.extend((0..24).map(|_| rng.gen_range(0..=600)));
    lens.sort_unstable();
    lens.dedup();
    lens
}

fn random_valid(rng: &mut ChaCha20Rng) -> Vec<Case> {
    message_lengths(rng)
        .into_iter()
        .map(|len| {
            let msg = random_bytes(rng, len);
            let (key, sig) = sign(rng, &msg);
            let mut c = Case::new(format!("valid, {len}-byte message"), key, sig, msg);
            c.expected = Some(true);
            c
        })
        .collect()
}

#[test]
fn random_valid_signatures_over_every_block_edge() {
    let Some(kernel) = kernel() else { return };
    let cases = random_valid(&mut rng(1));
    let refs: Vec<&Case> = cases.iter().collect();
    check(kernel, &refs, "random valid signatures");
}

/// ℓ as little-endian bytes.
fn ell_bytes() -> [u8; 32] {
    let mut l = [0u8; 32];
    l[..16].copy_from_slice(&0x14def9dea2f79cd65812631a5cf5d3edu128.to_le_bytes());
    l[31] = 0x10;
    l
}

fn add_le(a: &[u8], b: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    out
}

/// Every single-part corruption of valid signatures: a bit flipped in R, in S, in A or in the
/// message, S replaced by S + ℓ (the same scalar, non-canonical), R and A swapped, the message
/// truncated or extended by one byte.
fn corruptions(rng: &mut ChaCha20Rng) -> Vec<Case> {
    let mut out = Vec::new();
    for len in [0usize, 1, 47, 48, 111, 112, 200] {
        let msg = random_bytes(rng, len);
        let (key, sig) = sign(rng, &msg);
        let base = Case::new(format!("{len}-byte message"), key, sig, msg.clone());
        for part in ["R", "S", "A"] {
            for _ in 0..3 {
                let mut c = base.clone();
                let bit = rng.gen_range(0..256);
                match part {
                    "R" => c.sig.0[bit / 8] ^= 1 << (bit % 8),
                    "S" => c.sig.0[32 + bit / 8] ^= 1 << (bit % 8),
                    _ => c.key.0[bit / 8] ^= 1 << (bit % 8),
                }
                c.name = format!("{}: bit {bit} of {part} flipped", base.name);
                out.push(c);
            }
        }
        if len > 0 {
            let mut c = base.clone();
            let bit = rng.gen_range(0..8 * len);
            c.msg[bit / 8] ^= 1 << (bit % 8);
            c.name = format!("{}: bit {bit} of the message flipped", base.name);
            out.push(c);
            let mut c = base.clone();
            c.msg.pop();
            c.name = format!("{}: last byte dropped", base.name);
            out.push(c);
        }
        let mut c = base.clone();
        c.msg.push(0);
        c.name = format!("{}: a zero byte appended", base.name);
        out.push(c);
        let mut c = base.clone();
        let s_plus_l = add_le(&sig[32..], &ell_bytes());
        c.sig.0[32..].copy_from_slice(&s_plus_l);
        c.name = format!("{}: S + ℓ", base.name);
        c.expected = Some(false);
        out.push(c);
        let mut c = base.clone();
        c.sig.0[..32].copy_from_slice(&key);
        c.key.0.copy_from_slice(&sig[..32]);
        c.name = format!("{}: R and A swapped", base.name);
        out.push(c);
        let mut good = base.clone();
        good.name = format!("{}: untouched", base.name);
        good.expected = Some(true);
        out.push(good);
    }
    out
}

#[test]
fn corrupted_signatures_are_judged_as_ed25519_consensus_judges_them() {
    let Some(kernel) = kernel() else { return };
    let cases = corruptions(&mut rng(2));
    assert!(cases.iter().filter(|c| c.reference()).count() < cases.len() / 4, "most corruptions are invalid");
    let refs: Vec<&Case> = cases.iter().collect();
    check(kernel, &refs, "corruptions");
}

/// k = SHA-512(R ‖ A ‖ M) mod ℓ, as the verifier computes it.
fn challenge(r: &[u8; 32], a: &[u8; 32], msg: &[u8]) -> Scalar {
    let digest: [u8; 64] = Sha512::new().chain_update(r).chain_update(a).chain_update(msg).finalize().into();
    Scalar::from_bytes_mod_order_wide(&digest)
}

/// The encodings of y = value mod 2^255 with the sign bit `sign`.
fn encode_y(y: &[u8; 32], sign: bool) -> [u8; 32] {
    let mut e = *y;
    e[31] = (e[31] & 0x7f) | (u8::from(sign) << 7);
    e
}

/// p + t as 32 little-endian bytes (t < 19): a non-canonical encoding of y = t.
fn p_plus(t: u8) -> [u8; 32] {
    let mut e = [0xffu8; 32];
    e[0] = 0xed + t;
    e[31] = 0x7f;
    e
}

/// Encodings of small-order points: canonical ones of the eight torsion points, their
/// non-canonical twins (y ≥ p for y ∈ {0, 1}: p and p + 1; the sign bit set on x = 0: y = ±1),
/// and every y < 19 with both signs reduced mod p.
fn small_order_encodings() -> Vec<[u8; 32]> {
    let mut out: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|p| p.compress().to_bytes()).collect();
    let mut one = [0u8; 32];
    one[0] = 1;
    let minus_one = {
        let mut m = p_plus(0);
        m[0] -= 1;
        m
    };
    out.push(encode_y(&one, true)); // identity, x = 0 with the sign bit
    out.push(encode_y(&minus_one, true)); // order 2, x = 0 with the sign bit
    out.push(p_plus(0)); // y = p ≡ 0: order 4, non-canonical
    out.push(encode_y(&p_plus(0), true));
    out.push(p_plus(1)); // y = p + 1 ≡ 1: the identity, non-canonical
    out.push(encode_y(&p_plus(1), true));
    out
}

/// Signatures built directly from scalars and points: small-order A and R, mixed-order keys
/// (a·B + T for a torsion point T), non-canonical encodings of both, random 32-byte strings
/// (about half not on the curve), and S = 0. The cofactored equation accepts many of these
/// where a cofactorless one would not.
fn special_points(rng: &mut ChaCha20Rng) -> Vec<Case> {
    let mut out = Vec::new();
    let small = small_order_encodings();
    let msg_for = |rng: &mut ChaCha20Rng| {
        let len = rng.gen_range(0..150);
        random_bytes(rng, len)
    };
    // Small-order A and R with S = 0: [8](−[k]A − R) = 0 always, so ZIP-215 accepts.
    for (i, a) in small.iter().enumerate() {
        for (j, r) in small.iter().enumerate() {
            if (i + j) % 3 != 0 {
                continue;
            }
            let msg = msg_for(rng);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(r);
            out.push(Case::new(format!("small-order A #{i}, R #{j}, S = 0"), *a, sig, msg));
        }
    }
    // Mixed-order keys A = [a]B + T and R = [r]B + T', S = r + k·a: valid under ZIP-215 (not
    // under a cofactorless check). Plus the same with S off by one, and S = 0.
    for (i, t) in EIGHT_TORSION.iter().enumerate() {
        let a = Scalar::from_bytes_mod_order(array(&random_bytes(rng, 32), "a"));
        let r = Scalar::from_bytes_mod_order(array(&random_bytes(rng, 32), "r"));
        let t2 = EIGHT_TORSION[(i * 3 + 1) % 8];
        let big_a: EdwardsPoint = a * ED25519_BASEPOINT_POINT + t;
        let big_r: EdwardsPoint = r * ED25519_BASEPOINT_POINT + t2;
        let a_enc = big_a.compress().to_bytes();
        let r_enc = big_r.compress().to_bytes();
        let msg = msg_for(rng);
        let k = challenge(&r_enc, &a_enc, &msg);
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_enc);
        sig[32..].copy_from_slice(s.as_bytes());
        let mut c = Case::new(format!("mixed-order A (torsion {i}), mixed-order R"), a_enc, sig, msg.clone());
        c.expected = Some(true);
        out.push(c);
        let mut bad = sig;
        bad[32..].copy_from_slice((s + Scalar::one()).as_bytes());
        let mut c = Case::new(format!("mixed-order A (torsion {i}), S + 1"), a_enc, bad, msg.clone());
        c.expected = Some(false);
        out.push(c);
        // The same key with a small-order R and a matching S = k·a: [8](−T'') = 0.
        let r_small = small[i];
        let k = challenge(&r_small, &a_enc, &msg);
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_small);
        sig[32..].copy_from_slice((k * a).as_bytes());
        let mut c = Case::new(format!("mixed-order A (torsion {i}), small-order R"), a_enc, sig, msg);
        c.expected = Some(true);
        out.push(c);
    }
    // A genuine key and S with every small-order R (canonical and non-canonical encodings).
    for (i, e) in small.iter().enumerate() {
        let msg = msg_for(rng);
        let (key, mut sig) = sign(rng, &msg);
        sig[..32].copy_from_slice(e);
        out.push(Case::new(format!("valid key, small-order R #{i}, its S"), key, sig, msg));
    }
    // Random 32-byte strings as A or R: some decompress, some do not.
    for i in 0..24 {
        let msg = msg_for(rng);
        let (mut key, mut sig) = sign(rng, &msg);
        let junk = array(&random_bytes(rng, 32), "junk");
        if i % 2 == 0 {
            key = junk;
        } else {
            sig[..32].copy_from_slice(&junk);
        }
        out.push(Case::new(format!("random 32 bytes as {} #{i}", if i % 2 == 0 { "A" } else { "R" }), key, sig, msg));
    }
    // y ≥ p for every small y (p..p+18) and both signs, as A with S = 0 and a small-order R.
    for t in 0..19u8 {
        for sign_bit in [false, true] {
            let a = encode_y(&p_plus(t), sign_bit);
            let msg = msg_for(rng);
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&small[usize::from(t) % 8]);
            out.push(Case::new(format!("A = p + {t} (sign {sign_bit}), S = 0"), a, sig, msg));
        }
    }
    out
}

#[test]
fn small_order_mixed_order_and_non_canonical_points() {
    let Some(kernel) = kernel() else { return };
    let cases = special_points(&mut rng(3));
    let accepted = cases.iter().filter(|c| c.reference()).count();
    assert!(
        accepted > 20 && accepted < cases.len() - 20,
        "both verdicts are exercised ({accepted} of {})",
        cases.len()
    );
    let refs: Vec<&Case> = cases.iter().collect();
    check(kernel, &refs, "special points");
}

#[test]
fn mixed_batches_in_shuffled_order_and_split_into_chunks() {
    let Some(kernel) = kernel() else { return };
    let mut r = rng(4);
    let mut cases = random_valid(&mut r);
    cases.extend(corruptions(&mut r));
    cases.extend(special_points(&mut r));
    let mut refs: Vec<&Case> = cases.iter().collect();
    refs.shuffle(&mut r);
    // Default limits: one chunk.
    check(kernel, &refs, "mixed, one chunk");
    // Chunks of 7 items (many more chunks than buffer sets in flight, so sets are reused), then
    // chunks capped by bytes (a few records each), then a second call on the same pools.
    let by_items = kernel.with_chunk_limits(7, 1 << 20);
    assert_eq!(by_items.chunk_limits().0, 7);
    check(&by_items, &refs[..120], "mixed, chunks of 7 items");
    let by_bytes = kernel.with_chunk_limits(1 << 20, 1024);
    check(&by_bytes, &refs, "mixed, chunks of at most 1 KiB");
    refs.shuffle(&mut r);
    check(&by_items, &refs[..50], "mixed, chunks of 7 items, second call");
    // A message larger than a chunk's byte cap is an error, never a verdict.
    let big = Case::new("big", cases[0].key.0, cases[0].sig.0, vec![0u8; 4096]);
    assert!(by_bytes.verify_batch(&[big.item()]).is_err());
    assert_eq!(kernel.verify_batch(&[]).expect("an empty batch"), Vec::<bool>::new());
}

#[test]
fn messages_longer_than_one_hashing_step() {
    // A step hashes 64 blocks: R ‖ A ‖ M of up to 8,175 bytes, i.e. M up to 8,111 bytes.
    let Some(kernel) = kernel() else { return };
    let mut r = rng(5);
    let mut cases = Vec::new();
    for len in [8111usize, 8112, 20_000] {
        let msg = random_bytes(&mut r, len);
        let (key, sig) = sign(&mut r, &msg);
        let mut c = Case::new(format!("valid, {len}-byte message"), key, sig, msg);
        c.expected = Some(true);
        let mut bad = c.clone();
        bad.msg[len - 1] ^= 0x80;
        bad.name = format!("{len}-byte message, last byte changed");
        bad.expected = Some(false);
        cases.push(c);
        cases.push(bad);
    }
    let refs: Vec<&Case> = cases.iter().collect();
    check(kernel, &refs, "long messages");
}

#[test]
fn a_step_that_overruns_llvmpipes_loop_budget_fails_instead_of_answering() {
    // The whole program in one step: on llvmpipe this exhausts the 65,535 loop iterations an
    // invocation may run; the end-of-step check must catch it and the call must fail. Where
    // there is no such budget (a real GPU), the verdicts must simply be right.
    let Some(kernel) = kernel() else { return };
    let mut r = rng(6);
    let mut cases = random_valid(&mut r);
    cases.truncate(8);
    cases.extend(corruptions(&mut r).into_iter().take(8));
    let items: Vec<VerifyItem<'_>> = cases.iter().map(|c| c.item()).collect();
    match kernel.with_instructions_per_step(100_000).verify_batch(&items) {
        Err(e) => eprintln!("one step for the whole program: refused ({e})"),
        Ok(verdicts) => {
            let expected: Vec<bool> = cases.iter().map(Case::reference).collect();
            assert_eq!(verdicts, expected, "one step for the whole program");
        }
    }
    // The default steps give the right verdicts on the same items.
    let expected: Vec<bool> = cases.iter().map(Case::reference).collect();
    assert_eq!(kernel.verify_batch(&items).expect("the GPU batch runs"), expected);
}

// ---------------------------------------------------------------------------------------------
// The limb arithmetic, directly.
// ---------------------------------------------------------------------------------------------

fn p() -> BigUint {
    (BigUint::from(1u8) << 255u32) - 19u32
}

fn value(limbs: &[u32]) -> BigUint {
    limbs.iter().enumerate().fold(BigUint::default(), |acc, (i, l)| acc + (BigUint::from(*l) << (13 * i)))
}

/// The shader's invariant W: limbs 0..18 ≤ 8447, limb 19 ≤ 255.
fn is_w(limbs: &[u32]) -> bool {
    limbs[..19].iter().all(|l| *l <= 8447) && limbs[19] <= 255
}

/// Limbs of v (< 2^255) in canonical 13-bit form.
fn limbs_of(v: &BigUint) -> [u32; 20] {
    let mut out = [0u32; 20];
    for (i, l) in out.iter_mut().enumerate() {
        let chunk: BigUint = (v >> (13 * i)) & BigUint::from(0x1fffu32);
        *l = chunk.to_u32_digits().first().copied().unwrap_or(0);
    }
    out
}

/// Field elements in W form that stress the bounds: every limb at its maximum, the same with one
/// limb zero, p, p − 1, p + 1, p + 18 and 2^255 − 1 (the last four non-canonical), zero, small
/// values, and random W limbs (many at the extremes).
fn field_inputs(rng: &mut ChaCha20Rng) -> Vec<[u32; 20]> {
    let mut v: Vec<[u32; 20]> = Vec::new();
    let mut max = [8447u32; 20];
    max[19] = 255;
    v.push(max);
    for i in [0usize, 1, 10, 18, 19] {
        let mut m = max;
        m[i] = 0;
        v.push(m);
    }
    let p = p();
    for x in [p.clone(), &p - 1u32, &p + 1u32, &p + 18u32, (BigUint::from(1u8) << 255u32) - 1u32] {
        v.push(limbs_of(&x));
    }
    v.push([0; 20]);
    for small in [1u32, 2, 19, 8191, 8192] {
        let mut s = [0u32; 20];
        s[0] = small.min(8447);
        v.push(s);
    }
    while v.len() < 256 {
        let mut x = [0u32; 20];
        for (i, l) in x.iter_mut().enumerate() {
            let top = if i == 19 { 256 } else { 8448 };
            *l = match rng.gen_range(0..8) {
                0 => top - 1,
                1 => 0,
                _ => rng.gen_range(0..top),
            };
        }
        v.push(x);
    }
    v
}

#[test]
fn field_arithmetic_matches_exact_integers() {
    let Some(kernel) = kernel() else { return };
    let mut r = rng(7);
    let inputs = field_inputs(&mut r);
    let p = p();
    let mut cases = Vec::new();
    for (i, a) in inputs.iter().enumerate() {
        for j in [i, (i + 1) % inputs.len(), (i * 7 + 3) % inputs.len(), r.gen_range(0..inputs.len())] {
            let mut c = [0u8; 32];
            match cases.len() % 4 {
                0 => r.fill_bytes(&mut c),
                1 => c = [0xff; 32],
                2 => c.copy_from_slice(&(&p + BigUint::from(cases.len() as u32 % 19)).to_bytes_le()),
                _ => c[0] = cases.len() as u8,
            }
            cases.push((*a, inputs[j], c));
        }
    }
    let out = kernel.field_ops(&cases).expect("the field-ops kernel runs");
    assert_eq!(out.len(), cases.len());
    let mut wrong = Vec::new();
    for ((a, b, c), o) in cases.iter().zip(&out) {
        let (va, vb) = (value(a), value(b));
        let mut c_masked = *c;
        c_masked[31] &= 0x7f;
        let checks = [
            ("a·b", value(&o[0..20]) % &p == (&va * &vb) % &p && is_w(&o[0..20])),
            ("a²", value(&o[20..40]) % &p == (&va * &va) % &p && is_w(&o[20..40])),
            ("a + b", value(&o[40..60]) % &p == (&va + &vb) % &p && is_w(&o[40..60])),
            ("a − b", value(&o[60..80]) % &p == (&va + &p * 2u32 - &vb) % &p && is_w(&o[60..80])),
            ("canon(a)", o[80..100] == limbs_of(&(&va % &p))),
            ("from_bytes(c)", o[100..120] == limbs_of(&BigUint::from_bytes_le(&c_masked))),
            ("a ≡ 0", (o[120] == 1) == (&va % &p == BigUint::default())),
            ("a ≡ b", (o[121] == 1) == (&va % &p == &vb % &p)),
            ("sign of a", (o[122] == 1) == (&va % &p).bit(0)),
        ];
        for (what, good) in checks {
            if !good {
                wrong.push(format!("{what} for a = {a:?}, b = {b:?}, c = {}", hex::encode(c)));
            }
        }
    }
    assert!(wrong.is_empty(), "{} wrong field results: {:#?}", wrong.len(), &wrong[..wrong.len().min(10)]);
}
