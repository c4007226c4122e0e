//! Keys and labels: what the writer, the token service and a searching node each derive.
//!
//! Encodings (all integers big-endian, `lp(x)` = `u64 length ‖ x`):
//!
//! - term key: `k = HMAC-SHA256(K, lp("medchain/index/term/v1") ‖ lp(field) ‖ lp(value) ‖ u64 epoch)`;
//! - label: `HMAC-SHA256(k, h ‖ u64 c)[..16]`, where `h` is the writing hospital's Ed25519 public
//!   key (32 bytes; `AnchorRecord::hospital`) and `c` its counter for that term in that epoch,
//!   from 0;
//! - counter slot (the writer's store key, never revealed):
//!   `HMAC-SHA256(K, lp("medchain/index/counter/v1") ‖ h ‖ lp(field) ‖ lp(value) ‖ u64 epoch)`.
//!
//! Every variable-length part is length-prefixed, so no two distinct (field, value, epoch) inputs
//! encode to the same bytes; the two tags differ, so a slot id is independent of every term key
//! (a party holding term keys learns nothing about the writer's counter store). The writer is
//! the hospital, named by its public key rather than a node id: every anchor carries it
//! (`AnchorRecord::hospital`; the doctor who signs is enrolled by that hospital), so a node
//! expanding labels already knows it for every record without a lookup.

use super::Label;
use engine::crypto::PublicKey;
use hmac::{Hmac, Mac};
use rand_core::{CryptoRng, RngCore};
use sha2::Sha256;
use std::fmt;

/// Domain tag of term keys.
const TERM_KEY_TAG: &[u8] = b"medchain/index/term/v1";
/// Domain tag of counter slot ids.
const COUNTER_SLOT_TAG: &[u8] = b"medchain/index/counter/v1";

/// A search domain's (hospital's) index key K. Only the writer and its token service hold it.
/// `Debug` never prints it.
#[derive(Clone)]
pub struct IndexKey([u8; 32]);

/// A per-(field, value, epoch) key k: what the token service hands to an authorised researcher
/// and what a node expands into labels. It reveals the records with that term in that epoch and
/// nothing else. `Debug` never prints it.
#[derive(Clone)]
pub struct TermKey([u8; 32]);

/// The store key under which the writer keeps its next counter for one (writer, field, value,
/// epoch). A keyed hash: the store never holds a plaintext term.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CounterSlot(pub [u8; 32]);

impl IndexKey {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        IndexKey(bytes)
    }
    /// A fresh key from the caller's cryptographic rng.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        IndexKey(bytes)
    }
    /// The secret bytes, for the caller to persist. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl TermKey {
    /// Wraps 32 bytes received from a token service.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TermKey(bytes)
    }
    /// The key bytes, for the token service to send. Handle with care.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IndexKey(<redacted>)")
    }
}

impl fmt::Debug for TermKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TermKey(<redacted>)")
    }
}

impl fmt::Debug for CounterSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CounterSlot({:02x}{:02x}{:02x}{:02x}..)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length (RFC 2104 §2): `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// `u64` big-endian length of `bytes`; `usize` fits in `u64` on every supported target.
fn len_prefix(bytes: &[u8]) -> [u8; 8] {
    (bytes.len() as u64).to_be_bytes()
}

/// The term key k for (field, value) in `epoch` under K.
pub fn term_key(key: &IndexKey, field: &str, value: &str, epoch: u64) -> TermKey {
    let (field, value) = (field.as_bytes(), value.as_bytes());
    TermKey(hmac_sha256(
        &key.0,
        &[
            &len_prefix(TERM_KEY_TAG),
            TERM_KEY_TAG,
            &len_prefix(field),
            field,
            &len_prefix(value),
            value,
            &epoch.to_be_bytes(),
        ],
    ))
}

/// The label of the `counter`-th record that `writer` wrote with the term of `key` in its epoch.
/// A node holding only k expands `counter = 0, 1, ...` until a miss.
pub fn label_for(key: &TermKey, writer: &PublicKey, counter: u64) -> Label {
    let full = hmac_sha256(&key.0, &[&writer.0, &counter.to_be_bytes()]);
    let mut label = [0u8; 16];
    label.copy_from_slice(&full[..16]);
    label
}

/// The slot under which `writer` keeps its counter for (field, value) in `epoch`.
pub fn counter_slot(key: &IndexKey, writer: &PublicKey, field: &str, value: &str, epoch: u64) -> CounterSlot {
    let (field, value) = (field.as_bytes(), value.as_bytes());
    CounterSlot(hmac_sha256(
        &key.0,
        &[
            &len_prefix(COUNTER_SLOT_TAG),
            COUNTER_SLOT_TAG,
            &writer.0,
            &len_prefix(field),
            field,
            &len_prefix(value),
            value,
            &epoch.to_be_bytes(),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 4231 §4.2, test case 1.
    #[test]
    fn hmac_sha256_rfc4231_case_1() {
        let key = [0x0b; 20];
        let tag = hmac_sha256(&key, &[b"Hi There"]);
        assert_eq!(tag.to_vec(), unhex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));
    }

    /// RFC 4231 §4.3, test case 2, with the message split across parts.
    #[test]
    fn hmac_sha256_rfc4231_case_2_split() {
        let tag = hmac_sha256(b"Jefe", &[b"what do ya ", b"", b"want for nothing?"]);
        assert_eq!(tag.to_vec(), unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
    }

    /// RFC 4231 §4.7, test case 6: a key longer than the block size is hashed first.
    #[test]
    fn hmac_sha256_rfc4231_case_6() {
        let key = [0xaa; 131];
        let tag = hmac_sha256(&key, &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(tag.to_vec(), unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"));
    }

    #[test]
    fn length_prefixes_separate_field_from_value() {
        let key = IndexKey::from_bytes([7; 32]);
        let a = term_key(&key, "ab", "c", 1);
        let b = term_key(&key, "a", "bc", 1);
        assert_ne!(a.0, b.0);
        let writer = PublicKey([1; 32]);
        assert_ne!(counter_slot(&key, &writer, "ab", "c", 1), counter_slot(&key, &writer, "a", "bc", 1));
    }

    #[test]
    fn slot_differs_from_term_key_and_by_writer() {
        let key = IndexKey::from_bytes([7; 32]);
        let k = term_key(&key, "icd10", "E11.9", 5);
        let slot_a = counter_slot(&key, &PublicKey([1; 32]), "icd10", "E11.9", 5);
        let slot_b = counter_slot(&key, &PublicKey([2; 32]), "icd10", "E11.9", 5);
        assert_ne!(k.0, slot_a.0);
        assert_ne!(slot_a, slot_b);
    }

    #[test]
    fn debug_redacts_keys() {
        let key = IndexKey::from_bytes([0xab; 32]);
        let k = term_key(&key, "f", "v", 0);
        assert_eq!(format!("{key:?} {k:?}"), "IndexKey(<redacted>) TermKey(<redacted>)");
    }
}
