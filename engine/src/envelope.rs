//! Envelope encryption of record bodies (DESIGN.md §7).
//!
//! A record body is encrypted once, under a data key of its own, with AES-256-SIV (RFC 5297) and
//! a random 16-byte nonce; the record id is the associated data, so a body sealed for one record
//! does not open as another's. The sealed body (the *blob*) goes to the blob store, off chain; the
//! anchor carries its SHA-256 digest and length. Reading checks the digest first: a tampered or
//! swapped blob is refused with an error that names the record, before any decryption.
//!
//! ```text
//! blob = "mcb1" ‖ nonce (16 bytes) ‖ AES-256-SIV(key, nonce, ad = record id, body)
//!                                    (16-byte synthetic IV ‖ ciphertext, as long as the body)
//! ```
//!
//! SIV is misuse-resistant: a repeated nonce under the same key reveals only whether two bodies
//! are equal, never the key stream. Each record has its own key anyway, so the nonce is defence
//! in depth. Randomness (key and nonce) is an input, as everywhere in the engine.

use aes_siv::aead::{Aead, KeyInit, Payload};
use aes_siv::Aes256SivAead;
use zeroize::Zeroize;

use crate::codec::{sha256, Digest};
use crate::tx::RecordId;

/// The blob format's leading bytes.
pub const MAGIC: &[u8; 4] = b"mcb1";
/// Bytes of the nonce.
pub const NONCE_LEN: usize = 16;
/// Bytes of the synthetic IV (the authentication tag) in front of the ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes a blob adds to its body.
pub const OVERHEAD: usize = MAGIC.len() + NONCE_LEN + TAG_LEN;
/// Bytes of a data key (AES-256-SIV takes two 256-bit keys).
pub const DATA_KEY_LEN: usize = 64;

/// A record's data key. Its bytes are wiped when it is dropped and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey([u8; DATA_KEY_LEN]);

impl DataKey {
    /// The key with these bytes (fresh random bytes for a new record).
    pub fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKey(bytes)
    }

    /// The key's bytes, to be encrypted to the consortium key.
    pub fn expose_bytes(&self) -> &[u8; DATA_KEY_LEN] {
        &self.0
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(…)")
    }
}

/// Why a blob does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// The blob's digest is not the anchor's: it was tampered with, or it is another record's.
    #[error(
        "record {record}: the blob's SHA-256 is {actual}, the anchor says {expected}: the blob was altered \
         or belongs to another record; fetch it again from another replica of the blob store"
    )]
    DigestMismatch {
        /// The record read.
        record: RecordId,
        /// The anchor's digest.
        expected: Digest,
        /// The blob's.
        actual: Digest,
    },
    /// The blob's length is not the anchor's.
    #[error("record {record}: the blob is {actual} bytes, the anchor says {expected}")]
    LengthMismatch {
        /// The record read.
        record: RecordId,
        /// The anchor's length.
        expected: u64,
        /// The blob's.
        actual: u64,
    },
    /// The blob does not start with the format's magic or is shorter than its overhead.
    #[error("record {record}: not a medchain blob (no `mcb1` header or shorter than {OVERHEAD} bytes)")]
    Malformed {
        /// The record read.
        record: RecordId,
    },
    /// Decryption failed: the data key is not this record's (the digest matched, so the blob is
    /// the one anchored).
    #[error("record {record}: the data key does not open the blob (wrong key for this record)")]
    WrongKey {
        /// The record read.
        record: RecordId,
    },
    /// The body is too large for AES-SIV.
    #[error("record {record}: the body is too large to encrypt")]
    TooLarge {
        /// The record written.
        record: RecordId,
    },
}

/// Seals `body` for `record` under `key` with `nonce`: the blob to store.
pub fn seal(key: &DataKey, nonce: &[u8; NONCE_LEN], record: &RecordId, body: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    let cipher = Aes256SivAead::new(key.0.as_slice().into());
    let sealed = cipher
        .encrypt(nonce.into(), Payload { msg: body, aad: &record.0 })
        .map_err(|_| EnvelopeError::TooLarge { record: *record })?;
    let mut blob = Vec::with_capacity(OVERHEAD + body.len());
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(nonce);
    blob.extend_from_slice(&sealed);
    Ok(blob)
}

/// What the anchor says of a blob: its digest and length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef {
    /// SHA-256 of the blob.
    pub digest: Digest,
    /// Length of the blob in bytes.
    pub len: u64,
}

impl BlobRef {
    /// The reference of `blob`.
    pub fn of(blob: &[u8]) -> Self {
        BlobRef { digest: sha256(blob), len: blob.len() as u64 }
    }
}

/// Checks `blob` against the anchor's reference, before anything else is done with it.
pub fn check(record: &RecordId, anchored: &BlobRef, blob: &[u8]) -> Result<(), EnvelopeError> {
    if blob.len() as u64 != anchored.len {
        return Err(EnvelopeError::LengthMismatch {
            record: *record,
            expected: anchored.len,
            actual: blob.len() as u64,
        });
    }
    let actual = sha256(blob);
    if actual != anchored.digest {
        return Err(EnvelopeError::DigestMismatch { record: *record, expected: anchored.digest, actual });
    }
    Ok(())
}

/// Opens the blob of `record`: checks it against the anchor's reference, then decrypts it with
/// `key`. Never returns bytes that are not the body the writer sealed for this record.
pub fn open(key: &DataKey, record: &RecordId, anchored: &BlobRef, blob: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    check(record, anchored, blob)?;
    if blob.len() < OVERHEAD || &blob[..MAGIC.len()] != MAGIC {
        return Err(EnvelopeError::Malformed { record: *record });
    }
    let (nonce, sealed) = blob[MAGIC.len()..].split_at(NONCE_LEN);
    let cipher = Aes256SivAead::new(key.0.as_slice().into());
    cipher
        .decrypt(nonce.into(), Payload { msg: sealed, aad: &record.0 })
        .map_err(|_| EnvelopeError::WrongKey { record: *record })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DataKey {
        DataKey::from_bytes([b; DATA_KEY_LEN])
    }

    #[test]
    fn round_trip_and_overhead() {
        let record = Digest([7; 32]);
        for len in [0usize, 1, 15, 16, 17, 4096] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let blob = seal(&key(1), &[9; NONCE_LEN], &record, &body).unwrap();
            assert_eq!(blob.len(), body.len() + OVERHEAD);
            assert_eq!(open(&key(1), &record, &BlobRef::of(&blob), &blob).unwrap(), body);
        }
    }

    #[test]
    fn ciphertext_hides_the_body_and_depends_on_the_nonce() {
        let record = Digest([7; 32]);
        let body = b"Condition icd10|E11.9 type 2 diabetes mellitus".repeat(4);
        let a = seal(&key(1), &[1; NONCE_LEN], &record, &body).unwrap();
        let b = seal(&key(1), &[2; NONCE_LEN], &record, &body).unwrap();
        assert_ne!(a, b);
        assert!(!a.windows(8).any(|w| body.windows(8).any(|x| x == w)), "plaintext bytes in the blob");
    }

    #[test]
    fn every_refusal_names_the_record() {
        let record = Digest([7; 32]);
        let other = Digest([8; 32]);
        let body = b"body".to_vec();
        let blob = seal(&key(1), &[3; NONCE_LEN], &record, &body).unwrap();
        let anchored = BlobRef::of(&blob);

        let mut tampered = blob.clone();
        tampered[OVERHEAD] ^= 1;
        let e = open(&key(1), &record, &anchored, &tampered).unwrap_err();
        assert!(matches!(e, EnvelopeError::DigestMismatch { .. }), "{e}");
        assert!(e.to_string().contains(&record.to_string()), "{e}");

        let e = open(&key(1), &record, &anchored, &blob[..blob.len() - 1]).unwrap_err();
        assert!(matches!(e, EnvelopeError::LengthMismatch { .. }), "{e}");

        // Another record's blob under this record's reference: refused by the digest.
        let swapped = seal(&key(1), &[3; NONCE_LEN], &other, &body).unwrap();
        assert!(matches!(open(&key(1), &record, &anchored, &swapped), Err(EnvelopeError::DigestMismatch { .. })));
        // Even with a matching reference, the associated data binds it to its record.
        let e = open(&key(1), &record, &BlobRef::of(&swapped), &swapped).unwrap_err();
        assert_eq!(e, EnvelopeError::WrongKey { record });

        assert_eq!(open(&key(2), &record, &anchored, &blob), Err(EnvelopeError::WrongKey { record }));
        let junk = vec![0u8; 10];
        assert_eq!(open(&key(1), &record, &BlobRef::of(&junk), &junk), Err(EnvelopeError::Malformed { record }));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        assert_eq!(format!("{:?}", key(0xab)), "DataKey(…)");
    }
}
