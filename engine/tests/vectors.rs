//! Public Ed25519 test vectors (../shared/vectors/ed25519/, see its README): the ZIP-215 verdict
//! on every vector, identical for the reference single verifier (`crypto::verify_raw`) and the
//! CPU batch verifier, whether the vectors come in one mixed batch or shuffled in chunks.
//!
//! The folder is `CARGO_MANIFEST_DIR/../../shared/vectors` unless `MEDCHAIN_VECTORS` names
//! another. A missing file fails the test: these vectors are the evidence that every verifier
//! agrees, so they are never silently skipped.

use engine::crypto::{verify_raw, PublicKey, Signature};
use engine::verifier::{BatchVerifier, CpuVerifier, VerifyItem};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde_json::Value;
use std::path::PathBuf;

/// One vector with the verdict ZIP-215 must give.
#[derive(Clone, Debug)]
struct Case {
    name: String,
    key: PublicKey,
    sig: Signature,
    msg: Vec<u8>,
    accept: bool,
}

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

/// C2SP CCTV: ZIP-215 accepts everything but the `reencoded_k` vectors whose A is not of low
/// order (their hash input re-encodes a non-canonical A, which ZIP-215 does not do).
fn cctv() -> Vec<Case> {
    let all = load("cctv-ed25519vectors.json");
    let list = all.as_array().expect("CCTV vectors are a JSON array");
    assert_eq!(list.len(), 914, "the CCTV suite has 914 vectors");
    let cases: Vec<Case> = list
        .iter()
        .map(|v| {
            let flags: Vec<&str> =
                v["flags"].as_array().map_or(vec![], |f| f.iter().filter_map(Value::as_str).collect());
            let accept = !flags.contains(&"reencoded_k") || flags.contains(&"low_order_A");
            Case {
                name: format!("cctv #{}", v["number"]),
                key: PublicKey(array(&hex_field(v, "key"), "key")),
                sig: Signature(array(&hex_field(v, "sig"), "sig")),
                msg: str_field(v, "msg").as_bytes().to_vec(),
                accept,
            }
        })
        .collect();
    assert_eq!(cases.iter().filter(|c| c.accept).count(), 826, "ZIP-215 accepts 826 of the 914 CCTV vectors");
    cases
}

/// "Taming the many EdDSAs", cases 0–11: ZIP-215 verdicts V V V V V V X X X V V V.
fn speccheck() -> Vec<Case> {
    const VERDICTS: [bool; 12] = [true, true, true, true, true, true, false, false, false, true, true, true];
    let all = load("speccheck-cases.json");
    let list = all.as_array().expect("speccheck cases are a JSON array");
    assert_eq!(list.len(), VERDICTS.len(), "the speccheck suite has 12 cases");
    list.iter()
        .zip(VERDICTS)
        .enumerate()
        .map(|(i, (v, accept))| Case {
            name: format!("speccheck case {i}"),
            key: PublicKey(array(&hex_field(v, "pub_key"), "pub_key")),
            sig: Signature(array(&hex_field(v, "signature"), "signature")),
            msg: hex_field(v, "message"),
            accept,
        })
        .collect()
}

/// Wycheproof: the expected result on every test but tcId 151, whose R has y = 1 with the sign
/// bit set — a non-canonical encoding of the identity point. Wycheproof calls it invalid;
/// ZIP-215 accepts non-canonical point encodings (so that batch and single verification agree),
/// and the cofactored equation holds, so medchain accepts it. A signature of the wrong length
/// is simply invalid, and is checked here without a verifier (it cannot be represented).
fn wycheproof() -> Vec<Case> {
    let all = load("wycheproof-ed25519_test.json");
    let groups = all["testGroups"].as_array().expect("Wycheproof testGroups");
    let mut cases = Vec::new();
    let mut wrong_length = 0;
    let mut seen_151 = false;
    for g in groups {
        let key = PublicKey(array(&hex::decode(str_field(&g["publicKey"], "pk")).expect("pk hex"), "publicKey.pk"));
        for t in g["tests"].as_array().expect("Wycheproof tests") {
            let id = t["tcId"].as_u64().expect("tcId");
            let result = str_field(t, "result");
            let expected = match result {
                "valid" => true,
                "invalid" => false,
                other => panic!("tcId {id}: unexpected result {other:?}"),
            };
            let sig = hex_field(t, "sig");
            if sig.len() != 64 {
                assert!(!expected, "tcId {id}: a {}-byte signature is expected valid", sig.len());
                wrong_length += 1;
                continue;
            }
            let accept = if id == 151 {
                assert!(!expected, "tcId 151 is the documented exception: Wycheproof says invalid");
                seen_151 = true;
                true
            } else {
                expected
            };
            cases.push(Case {
                name: format!("wycheproof tcId {id} ({})", str_field(t, "comment")),
                key,
                sig: Signature(array(&sig, "sig")),
                msg: hex_field(t, "msg"),
                accept,
            });
        }
    }
    assert!(seen_151, "tcId 151 (the documented exception) is missing from the suite");
    assert_eq!(cases.len() + wrong_length, 151, "the Wycheproof suite has 151 tests");
    cases
}

fn all_cases() -> Vec<Case> {
    let mut all = cctv();
    all.extend(speccheck());
    all.extend(wycheproof());
    all
}

fn check_single(cases: &[Case]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter(|c| verify_raw(&c.key, &c.sig, &c.msg) != c.accept)
        .map(|c| format!("{} (expected {})", c.name, if c.accept { "accept" } else { "reject" }))
        .collect();
    assert!(wrong.is_empty(), "verify_raw disagrees with ZIP-215 on {} vectors: {wrong:#?}", wrong.len());
}

fn check_batch(cases: &[&Case], what: &str) {
    let items: Vec<VerifyItem<'_>> =
        cases.iter().map(|c| VerifyItem { msg: &c.msg, key: &c.key, sig: &c.sig }).collect();
    let verdicts = CpuVerifier::new().verify_batch(&items).expect("the CPU verifier does not fail");
    assert_eq!(verdicts.len(), cases.len());
    let wrong: Vec<&str> =
        cases.iter().zip(&verdicts).filter(|(c, v)| **v != c.accept).map(|(c, _)| c.name.as_str()).collect();
    assert!(wrong.is_empty(), "{what}: the batch verifier disagrees on {} vectors: {wrong:#?}", wrong.len());
}

#[test]
fn cctv_single_verifier() {
    check_single(&cctv());
}

#[test]
fn speccheck_single_verifier() {
    check_single(&speccheck());
}

#[test]
fn wycheproof_single_verifier() {
    check_single(&wycheproof());
}

#[test]
fn batch_verifier_agrees_on_every_vector() {
    let cases = all_cases();
    let refs: Vec<&Case> = cases.iter().collect();
    check_batch(&refs, "one mixed batch");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for chunk in [1usize, 2, 7, 63, 64, 65, 300] {
        let mut shuffled = refs.clone();
        shuffled.shuffle(&mut rng);
        for (i, part) in shuffled.chunks(chunk).enumerate() {
            check_batch(part, &format!("shuffled, chunks of {chunk}, chunk {i}"));
        }
    }
}

#[test]
fn the_batch_equation_accepts_exactly_the_accepted_vectors() {
    // The CPU verifier re-checks a failing chunk item by item, which would hide a batch
    // equation that disagrees with the single one. Check the equation itself: all accepted
    // vectors pass as one batch (low-order and non-canonical ones included), and adding any
    // single rejected vector with a well-formed encoding makes the batch fail.
    fn batch_ok(cases: &[&Case], seed: u64) -> bool {
        let mut batch = ed25519_consensus::batch::Verifier::new();
        for c in cases {
            let vk = ed25519_consensus::VerificationKeyBytes::from(c.key.0);
            batch.queue((vk, ed25519_consensus::Signature::from(c.sig.0), &c.msg));
        }
        batch.verify(rand::rngs::StdRng::seed_from_u64(seed)).is_ok()
    }
    let cases = all_cases();
    let accepted: Vec<&Case> = cases.iter().filter(|c| c.accept).collect();
    assert!(batch_ok(&accepted, 1), "the batch of all accepted vectors fails");
    for (i, bad) in cases.iter().filter(|c| !c.accept).enumerate() {
        let mut with_bad = accepted.clone();
        with_bad.insert(i % with_bad.len(), bad);
        assert!(!batch_ok(&with_bad, i as u64), "{} passes inside a batch", bad.name);
    }
}
