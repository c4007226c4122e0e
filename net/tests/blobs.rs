//! The blob store on a real local folder, with bodies sealed by `engine::envelope`: round trips
//! of 1 B to 64 MB, and every way a read can go wrong refused with an error naming the record.

use engine::codec::Digest;
use engine::envelope::{self, BlobRef, DataKey, EnvelopeError, DATA_KEY_LEN, NONCE_LEN};
use net::blobs::{BlobError, BlobStore};
use rand::{RngCore, SeedableRng};

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(5)
}

fn fresh_key(rng: &mut impl RngCore) -> (DataKey, [u8; NONCE_LEN]) {
    let mut key = [0u8; DATA_KEY_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut nonce);
    (DataKey::from_bytes(key), nonce)
}

#[tokio::test]
async fn bodies_of_1_byte_to_64_mb_round_trip_through_a_local_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(&tmp.path().join("blobs")).unwrap();
    let mut rng = rng();
    for (i, len) in [1usize, 64 * 1024, 1024 * 1024, 64 * 1024 * 1024].into_iter().enumerate() {
        let record = Digest([i as u8 + 1; 32]);
        let mut body = vec![0u8; len];
        rng.fill_bytes(&mut body);
        let (key, nonce) = fresh_key(&mut rng);
        let blob = envelope::seal(&key, &nonce, &record, &body).unwrap();
        let anchored = BlobRef::of(&blob);
        let locator = store.put(&record, &blob).await.unwrap();
        assert_eq!(locator, BlobStore::locator(&record));
        let fetched = store.get(&record, &locator, &anchored).await.unwrap();
        assert_eq!(envelope::open(&key, &record, &anchored, &fetched).unwrap(), body, "{len} bytes");
        // The folder holds the ciphertext, not the body.
        let on_disk = std::fs::read(tmp.path().join("blobs").join(&locator)).unwrap();
        assert_eq!(on_disk, blob);
        if len >= 64 {
            assert!(!on_disk.windows(64).any(|w| w == &body[..64]), "plaintext on disk ({len} bytes)");
        }
    }
}

#[tokio::test]
async fn a_tampered_blob_a_swapped_locator_and_a_foreign_path_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("blobs");
    let store = BlobStore::local(&dir).unwrap();
    let mut rng = rng();
    let (a, b) = (Digest([0xaa; 32]), Digest([0xbb; 32]));
    let (key, nonce) = fresh_key(&mut rng);
    let blob_a = envelope::seal(&key, &nonce, &a, b"record a").unwrap();
    let blob_b = envelope::seal(&key, &nonce, &b, b"record b").unwrap();
    let (ref_a, ref_b) = (BlobRef::of(&blob_a), BlobRef::of(&blob_b));
    let loc_a = store.put(&a, &blob_a).await.unwrap();
    let loc_b = store.put(&b, &blob_b).await.unwrap();

    // Swapped locator: the anchor of `a` pointing at `b`'s blob.
    let e = store.get(&a, &loc_b, &ref_a).await.unwrap_err();
    assert!(matches!(e, BlobError::Envelope(EnvelopeError::DigestMismatch { .. })), "{e}");
    assert!(e.to_string().contains(&a.to_string()), "names the record: {e}");

    // Tampered in place (same length): refused by the digest, before decryption.
    let path = dir.join(&loc_a);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = store.get(&a, &loc_a, &ref_a).await.unwrap_err();
    assert!(matches!(e, BlobError::Envelope(EnvelopeError::DigestMismatch { .. })), "{e}");

    // Paths outside the store's layout are refused before the store is asked.
    for bad in ["../../etc/passwd", "/etc/passwd", "records/../x", "s3://bucket/x", ""] {
        let e = store.get(&b, bad, &ref_b).await.unwrap_err();
        assert!(matches!(e, BlobError::BadLocator { .. }), "{bad}: {e}");
    }

    // Missing.
    let c = Digest([0xcc; 32]);
    let e = store.get(&c, &BlobStore::locator(&c), &ref_b).await.unwrap_err();
    assert!(matches!(e, BlobError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains(&c.to_string()), "{e}");

    // The untouched blob still opens.
    let fetched = store.get(&b, &loc_b, &ref_b).await.unwrap();
    assert_eq!(envelope::open(&key, &b, &ref_b, &fetched).unwrap(), b"record b");
}

#[tokio::test]
async fn storing_is_idempotent_and_never_replaces_a_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::local(&tmp.path().join("blobs")).unwrap();
    let mut rng = rng();
    let record = Digest([1; 32]);
    let (key, nonce) = fresh_key(&mut rng);
    let blob = envelope::seal(&key, &nonce, &record, b"first").unwrap();
    let locator = store.put(&record, &blob).await.unwrap();
    assert_eq!(store.put(&record, &blob).await.unwrap(), locator, "a retry succeeds");

    let other = envelope::seal(&key, &nonce, &record, b"second").unwrap();
    let e = store.put(&record, &other).await.unwrap_err();
    assert!(matches!(e, BlobError::Conflict { .. }), "{e}");
    let kept = store.get(&record, &locator, &BlobRef::of(&blob)).await.unwrap();
    assert_eq!(kept, blob, "the first blob is kept");
}
