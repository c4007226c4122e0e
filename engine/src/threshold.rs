//! Threshold encryption of record data keys to the validators' collective key, and decryption
//! shares re-encrypted to a reader (DESIGN.md §7; CALYPSO's on-chain secrets).
//!
//! The group is ristretto255. The validators hold Shamir shares `x_i` of a secret `x` that no
//! process ever holds whole (a distributed key generation makes them); the chain holds the
//! collective key `Y = x·G`, the threshold `t` and each validator's public share `Y_i = x_i·G`.
//!
//! **Writing.** The writer encrypts a record's 64-byte data key `k` with hashed ElGamal:
//! `U = r·G`, `c = k ⊕ H_pad(chain, record, U, r·Y)`, and proves knowledge of `r` with a Schnorr
//! proof whose challenge covers the chain id, the record id, `U` and `c`. The proof binds the
//! ciphertext to its record: copying another record's encrypted key into a record one is allowed
//! to read fails, because the copier cannot prove knowledge of that `r` for the new record.
//!
//! **Reading.** For a committed `ReadRequest` that a grant covers, validator `i` returns its
//! decryption share `x_i·U` ElGamal-encrypted to the reader's key `B`: `V = v·G`,
//! `E = x_i·U + v·B`, with a proof that the same `x_i` is behind `Y_i` and `E` (a
//! Chaum–Pedersen-style proof of the linear relations `Y_i = x_i·G`, `V = v·G`,
//! `E = x_i·U + v·B`), bound to the chain, the record and the request. Anyone can check it; a
//! validator whose share fails is named by its index. The reader removes `v·B` with its secret,
//! combines any `t` shares by Lagrange interpolation at 0 into `x·U = r·Y`, and unmasks `k`.
//!
//! One share alone is `x_i·U`, a point unrelated to the pad (which needs `x·U`); fewer than `t`
//! shares determine nothing about it. Randomness enters as an RNG the caller supplies.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroize;

use crate::codec::Digest;
use crate::crypto::ChainId;
use crate::envelope::{DataKey, DATA_KEY_LEN};

/// A validator's position in the key set: 1 to n (0 is the secret's own point).
pub type ShareIndex = u16;

const TAG_PAD: &[u8] = b"medchain/threshold/v1/pad";
const TAG_KEY_PROOF: &[u8] = b"medchain/threshold/v1/key-proof";
const TAG_SHARE_PROOF: &[u8] = b"medchain/threshold/v1/share-proof";

/// Why a threshold operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    /// Bytes that are not a valid point or scalar.
    #[error("{what} is not a valid encoding")]
    BadEncoding {
        /// What was being decoded.
        what: &'static str,
    },
    /// The encrypted data key's proof does not hold for this record.
    #[error("record {record}: the encrypted data key's proof fails: it was not made for this record on this chain")]
    BadKeyProof {
        /// The record.
        record: Digest,
    },
    /// A validator's decryption share fails its proof.
    #[error("validator share {index}: its decryption share fails its proof (wrong or forged share)")]
    BadShareProof {
        /// The validator's index.
        index: ShareIndex,
    },
    /// A share from an index the key set does not have.
    #[error("share index {index} is not in the key set (1 to {n})")]
    UnknownShare {
        /// The index.
        index: ShareIndex,
        /// Validators in the set.
        n: usize,
    },
    /// Fewer valid shares than the threshold.
    #[error(
        "{valid} valid decryption shares, {needed} needed; shares that failed their proof: {bad:?}; \
         ask more validators"
    )]
    NotEnoughShares {
        /// Distinct valid shares received.
        valid: usize,
        /// The threshold.
        needed: usize,
        /// Indices whose share failed its proof.
        bad: Vec<ShareIndex>,
    },
    /// A key set that cannot be used (threshold 0 or above n, no shares).
    #[error("invalid key set: threshold {threshold} of {n} shares")]
    BadKeySet {
        /// The threshold.
        threshold: u16,
        /// Shares.
        n: usize,
    },
}

/// The consortium's public key material, as the chain records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeySet {
    /// Shares needed to decrypt.
    pub threshold: u16,
    /// The collective key `Y`, compressed.
    pub collective: [u8; 32],
    /// `Y_i` for i = 1..=n, compressed, in index order.
    pub shares: Vec<[u8; 32]>,
}

impl PublicKeySet {
    /// Checks the set's shape and that every point decodes.
    pub fn check(&self) -> Result<(), ThresholdError> {
        let n = self.shares.len();
        if self.threshold == 0 || usize::from(self.threshold) > n || n > usize::from(ShareIndex::MAX) {
            return Err(ThresholdError::BadKeySet { threshold: self.threshold, n });
        }
        point(&self.collective, "the collective key")?;
        for s in &self.shares {
            point(s, "a public key share")?;
        }
        Ok(())
    }

    fn share(&self, index: ShareIndex) -> Result<RistrettoPoint, ThresholdError> {
        let n = self.shares.len();
        let at =
            usize::from(index).checked_sub(1).filter(|i| *i < n).ok_or(ThresholdError::UnknownShare { index, n })?;
        point(&self.shares[at], "a public key share")
    }
}

/// A validator's secret share. Wiped on drop, never printed.
#[derive(Clone)]
pub struct KeyShare {
    index: ShareIndex,
    secret: Scalar,
}

impl KeyShare {
    /// The share `secret` at `index` (as the key generation produced it).
    pub fn new(index: ShareIndex, secret: [u8; 32]) -> Result<Self, ThresholdError> {
        let secret = Option::from(Scalar::from_canonical_bytes(secret))
            .ok_or(ThresholdError::BadEncoding { what: "a key share" })?;
        Ok(KeyShare { index, secret })
    }

    /// The share's index.
    pub fn index(&self) -> ShareIndex {
        self.index
    }

    /// The share's bytes, to be stored encrypted at rest.
    pub fn expose_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// `Y_i`, the share's public point.
    pub fn public(&self) -> [u8; 32] {
        (&self.secret * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes()
    }
}

impl Drop for KeyShare {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyShare({}, …)", self.index)
    }
}

/// A ristretto255 secret key for receiving encrypted material: a reader's decryption key
/// (shares are re-encrypted to it; kept apart from its signing key) and a validator's DKG
/// transport key ([`crate::dkg::TransportSecret`]). Wiped on drop, never printed.
#[derive(Clone)]
pub struct DhSecret(Scalar);

/// A reader's decryption key: what a `ReadRequest` names by its public key `B`.
pub type ReaderSecret = DhSecret;

impl DhSecret {
    /// A key from 64 uniformly random bytes.
    pub fn from_wide(bytes: &[u8; 64]) -> Self {
        DhSecret(Scalar::from_bytes_mod_order_wide(bytes))
    }

    /// A fresh key.
    pub fn random(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        DhSecret(random_scalar(rng))
    }

    /// The public key, compressed.
    pub fn public(&self) -> [u8; 32] {
        (&self.0 * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes()
    }

    /// The Diffie–Hellman product of this secret and `point`.
    /// A proof that `self·base` is the point returned with it (Chaum–Pedersen, under a challenge
    /// the caller derives from the two commitments): `(x·base, c, s)` with `s = k + c·x`.
    pub(crate) fn prove_dh(
        &self,
        base: &RistrettoPoint,
        challenge: impl FnOnce(&RistrettoPoint, &RistrettoPoint, &RistrettoPoint) -> Scalar,
        rng: &mut (impl RngCore + CryptoRng),
    ) -> (RistrettoPoint, Scalar, Scalar) {
        let shared = self.0 * base;
        let mut k = random_scalar(rng);
        let c = challenge(&shared, &(&k * RISTRETTO_BASEPOINT_TABLE), &(k * base));
        let s = k + c * self.0;
        k.zeroize();
        (shared, c, s)
    }

    pub(crate) fn dh(&self, point: &RistrettoPoint) -> RistrettoPoint {
        self.0 * point
    }
}

impl Drop for DhSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for DhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DhSecret(…)")
    }
}

/// A data key encrypted to the collective key, bound to its record: 160 bytes on chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedKey {
    /// `U = r·G`.
    pub u: [u8; 32],
    /// `k ⊕ pad`.
    pub sealed: [u8; DATA_KEY_LEN],
    /// The proof's challenge.
    pub e: [u8; 32],
    /// The proof's response.
    pub z: [u8; 32],
}

/// Bytes of an encoded [`EncryptedKey`].
pub const ENCRYPTED_KEY_LEN: usize = 32 + DATA_KEY_LEN + 32 + 32;

impl EncryptedKey {
    /// The encoding stored in `AnchorRecord::encrypted_data_key`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ENCRYPTED_KEY_LEN);
        out.extend_from_slice(&self.u);
        out.extend_from_slice(&self.sealed);
        out.extend_from_slice(&self.e);
        out.extend_from_slice(&self.z);
        out
    }

    /// Decodes [`EncryptedKey::to_bytes`]; the length must be exact.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ThresholdError> {
        if bytes.len() != ENCRYPTED_KEY_LEN {
            return Err(ThresholdError::BadEncoding { what: "an encrypted data key" });
        }
        let take = |from: usize| -> [u8; 32] { bytes[from..from + 32].try_into().expect("32 bytes") };
        let mut sealed = [0u8; DATA_KEY_LEN];
        sealed.copy_from_slice(&bytes[32..32 + DATA_KEY_LEN]);
        Ok(EncryptedKey { u: take(0), sealed, e: take(32 + DATA_KEY_LEN), z: take(64 + DATA_KEY_LEN) })
    }

    /// Checks the proof: the ciphertext was made for `record` on `chain` by someone who knows `r`.
    pub fn verify(&self, chain: &ChainId, record: &Digest) -> Result<(), ThresholdError> {
        let bad = || ThresholdError::BadKeyProof { record: *record };
        let u = point(&self.u, "an encrypted key's U").map_err(|_| bad())?;
        let e = scalar(&self.e).map_err(|_| bad())?;
        let z = scalar(&self.z).map_err(|_| bad())?;
        let w = &z * RISTRETTO_BASEPOINT_TABLE - e * u;
        if key_challenge(chain, record, &self.u, &self.sealed, &w) == e {
            Ok(())
        } else {
            Err(bad())
        }
    }
}

/// Encrypts `key` for `record` to the set's collective key.
pub fn encrypt_key(
    set: &PublicKeySet,
    chain: &ChainId,
    record: &Digest,
    key: &DataKey,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<EncryptedKey, ThresholdError> {
    set.check()?;
    let y = point(&set.collective, "the collective key")?;
    let mut r = random_scalar(rng);
    let u = (&r * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes();
    let mut pad = pad(chain, record, &u, &(r * y));
    let mut sealed = [0u8; DATA_KEY_LEN];
    for (s, (k, p)) in sealed.iter_mut().zip(key.expose_bytes().iter().zip(pad.iter())) {
        *s = k ^ p;
    }
    pad.zeroize();
    let mut w = random_scalar(rng);
    let e = key_challenge(chain, record, &u, &sealed, &(&w * RISTRETTO_BASEPOINT_TABLE));
    let z = w + e * r;
    r.zeroize();
    w.zeroize();
    Ok(EncryptedKey { u, sealed, e: e.to_bytes(), z: z.to_bytes() })
}

/// A validator's decryption share, encrypted to the reader, with its proof.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReencryptedShare {
    /// The validator's index.
    pub index: ShareIndex,
    /// `V = v·G`.
    pub v: [u8; 32],
    /// `E = x_i·U + v·B`.
    pub e: [u8; 32],
    /// The proof's challenge.
    pub c: [u8; 32],
    /// The proof's responses for `x_i` and `v`.
    pub s: [[u8; 32]; 2],
}

/// What a share is for: the record's ciphertext, the reader, and the committed request.
#[derive(Clone, Copy, Debug)]
pub struct ShareContext<'a> {
    /// The chain.
    pub chain: &'a ChainId,
    /// The record.
    pub record: &'a Digest,
    /// The committed `ReadRequest`'s id.
    pub request: &'a Digest,
    /// The reader's decryption key `B`, compressed.
    pub reader: &'a [u8; 32],
    /// The record's encrypted data key.
    pub key: &'a EncryptedKey,
}

/// Validator side: `share`'s decryption share of `ctx.key`, re-encrypted to `ctx.reader`. The
/// caller has checked, as of the request's block, that a grant covers the read; this checks the
/// encrypted key's own proof, so a share is never produced for a key copied from another record.
pub fn decryption_share(
    share: &KeyShare,
    ctx: &ShareContext<'_>,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<ReencryptedShare, ThresholdError> {
    ctx.key.verify(ctx.chain, ctx.record)?;
    let u = point(&ctx.key.u, "an encrypted key's U")?;
    let b = point(ctx.reader, "the reader's key")?;
    let mut v = random_scalar(rng);
    let yi = &share.secret * RISTRETTO_BASEPOINT_TABLE;
    let vv = &v * RISTRETTO_BASEPOINT_TABLE;
    let e = share.secret * u + v * b;
    let (mut k1, mut k2) = (random_scalar(rng), random_scalar(rng));
    let a = [&k1 * RISTRETTO_BASEPOINT_TABLE, &k2 * RISTRETTO_BASEPOINT_TABLE, k1 * u + k2 * b];
    let c = share_challenge(ctx, share.index, &yi, &vv, &e, &a);
    let s = [(k1 + c * share.secret).to_bytes(), (k2 + c * v).to_bytes()];
    v.zeroize();
    k1.zeroize();
    k2.zeroize();
    Ok(ReencryptedShare {
        index: share.index,
        v: vv.compress().to_bytes(),
        e: e.compress().to_bytes(),
        c: c.to_bytes(),
        s,
    })
}

impl ReencryptedShare {
    /// Checks the share's proof against the validator's public share in `set`.
    pub fn verify(&self, set: &PublicKeySet, ctx: &ShareContext<'_>) -> Result<(), ThresholdError> {
        let yi = set.share(self.index)?;
        let bad = || ThresholdError::BadShareProof { index: self.index };
        let u = point(&ctx.key.u, "an encrypted key's U")?;
        let b = point(ctx.reader, "the reader's key")?;
        let v = point(&self.v, "a share's V").map_err(|_| bad())?;
        let e = point(&self.e, "a share's E").map_err(|_| bad())?;
        let c = scalar(&self.c).map_err(|_| bad())?;
        let s1 = scalar(&self.s[0]).map_err(|_| bad())?;
        let s2 = scalar(&self.s[1]).map_err(|_| bad())?;
        let a = [
            &s1 * RISTRETTO_BASEPOINT_TABLE - c * yi,
            &s2 * RISTRETTO_BASEPOINT_TABLE - c * v,
            s1 * u + s2 * b - c * e,
        ];
        if share_challenge(ctx, self.index, &yi, &v, &e, &a) == c {
            Ok(())
        } else {
            Err(bad())
        }
    }
}

/// Reader side: checks the encrypted key and every share, then recovers the data key from any
/// `threshold` valid shares. Shares that fail their proof are skipped and named if too few
/// remain; a duplicate index counts once.
pub fn combine(
    set: &PublicKeySet,
    ctx: &ShareContext<'_>,
    reader: &ReaderSecret,
    shares: &[ReencryptedShare],
) -> Result<DataKey, ThresholdError> {
    set.check()?;
    ctx.key.verify(ctx.chain, ctx.record)?;
    let needed = usize::from(set.threshold);
    let mut valid: Vec<(ShareIndex, RistrettoPoint)> = Vec::with_capacity(needed);
    let mut bad = Vec::new();
    for share in shares {
        if valid.len() == needed {
            break;
        }
        if valid.iter().any(|(i, _)| *i == share.index) {
            continue;
        }
        match share.verify(set, ctx) {
            Ok(()) => {
                let v = point(&share.v, "a share's V")?;
                let e = point(&share.e, "a share's E")?;
                valid.push((share.index, e - reader.dh(&v)));
            }
            Err(ThresholdError::BadShareProof { index } | ThresholdError::UnknownShare { index, .. }) => {
                bad.push(index)
            }
            Err(other) => return Err(other),
        }
    }
    if valid.len() < needed {
        return Err(ThresholdError::NotEnoughShares { valid: valid.len(), needed, bad });
    }
    let mut xu = RistrettoPoint::identity();
    for (i, d) in &valid {
        xu += lagrange_at_zero(*i, valid.iter().map(|(j, _)| *j)) * d;
    }
    let mut pad = pad(ctx.chain, ctx.record, &ctx.key.u, &xu);
    let mut key = [0u8; DATA_KEY_LEN];
    for (k, (s, p)) in key.iter_mut().zip(ctx.key.sealed.iter().zip(pad.iter())) {
        *k = s ^ p;
    }
    pad.zeroize();
    let out = DataKey::from_bytes(key);
    key.zeroize();
    Ok(out)
}

/// λ_i = Π_{j ≠ i} j / (j − i), over the indices of the shares combined.
fn lagrange_at_zero(i: ShareIndex, indices: impl Iterator<Item = ShareIndex>) -> Scalar {
    let xi = Scalar::from(u64::from(i));
    let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
    for j in indices.filter(|j| *j != i) {
        let xj = Scalar::from(u64::from(j));
        num *= xj;
        den *= xj - xi;
    }
    num * den.invert()
}

fn random_scalar(rng: &mut (impl RngCore + CryptoRng)) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    wide.zeroize();
    s
}

/// Whether `bytes` is a usable public key: a canonical ristretto255 encoding of a point other
/// than the identity.
pub fn is_public_key(bytes: &[u8; 32]) -> bool {
    CompressedRistretto(*bytes).decompress().is_some_and(|p| p != RistrettoPoint::identity())
}

fn point(bytes: &[u8; 32], what: &'static str) -> Result<RistrettoPoint, ThresholdError> {
    CompressedRistretto(*bytes).decompress().ok_or(ThresholdError::BadEncoding { what })
}

fn scalar(bytes: &[u8; 32]) -> Result<Scalar, ThresholdError> {
    Option::from(Scalar::from_canonical_bytes(*bytes)).ok_or(ThresholdError::BadEncoding { what: "a scalar" })
}

/// SHA-512 over length-prefixed parts, the first being the tag and the chain id.
fn hash(tag: &[u8], chain: &ChainId, parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in [tag, chain.as_str().as_bytes()].iter().chain(parts) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

fn pad(chain: &ChainId, record: &Digest, u: &[u8; 32], shared: &RistrettoPoint) -> [u8; DATA_KEY_LEN] {
    hash(TAG_PAD, chain, &[&record.0, u, shared.compress().as_bytes()])
}

fn key_challenge(
    chain: &ChainId,
    record: &Digest,
    u: &[u8; 32],
    sealed: &[u8; DATA_KEY_LEN],
    w: &RistrettoPoint,
) -> Scalar {
    Scalar::from_bytes_mod_order_wide(&hash(TAG_KEY_PROOF, chain, &[&record.0, u, sealed, w.compress().as_bytes()]))
}

fn share_challenge(
    ctx: &ShareContext<'_>,
    index: ShareIndex,
    yi: &RistrettoPoint,
    v: &RistrettoPoint,
    e: &RistrettoPoint,
    a: &[RistrettoPoint; 3],
) -> Scalar {
    let p = |x: &RistrettoPoint| x.compress().to_bytes();
    Scalar::from_bytes_mod_order_wide(&hash(
        TAG_SHARE_PROOF,
        ctx.chain,
        &[
            &ctx.record.0,
            &ctx.request.0,
            &index.to_be_bytes(),
            ctx.reader,
            &ctx.key.to_bytes(),
            &p(yi),
            &p(v),
            &p(e),
            &p(&a[0]),
            &p(&a[1]),
            &p(&a[2]),
        ],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// Shamir shares of a random secret, made by one dealer: for these tests only (the node uses
    /// a distributed key generation, in which no process holds the secret).
    fn deal(t: u16, n: u16, rng: &mut ChaCha20Rng) -> (PublicKeySet, Vec<KeyShare>, Scalar) {
        let coeffs: Vec<Scalar> = (0..t).map(|_| random_scalar(rng)).collect();
        let eval = |x: u16| {
            let x = Scalar::from(u64::from(x));
            coeffs.iter().rev().fold(Scalar::ZERO, |acc, c| acc * x + c)
        };
        let shares: Vec<KeyShare> = (1..=n).map(|i| KeyShare { index: i, secret: eval(i) }).collect();
        let set = PublicKeySet {
            threshold: t,
            collective: (&coeffs[0] * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes(),
            shares: shares.iter().map(KeyShare::public).collect(),
        };
        (set, shares, coeffs[0])
    }

    struct Fixture {
        rng: ChaCha20Rng,
        chain: ChainId,
        record: Digest,
        request: Digest,
        set: PublicKeySet,
        shares: Vec<KeyShare>,
        reader: ReaderSecret,
        reader_pub: [u8; 32],
        key: DataKey,
        enc: EncryptedKey,
    }

    fn fixture(t: u16, n: u16, seed: u64) -> Fixture {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let chain = ChainId::new("test-chain").unwrap();
        let (set, shares, _) = deal(t, n, &mut rng);
        let mut k = [0u8; DATA_KEY_LEN];
        rng.fill_bytes(&mut k);
        let key = DataKey::from_bytes(k);
        let record = Digest([3; 32]);
        let enc = encrypt_key(&set, &chain, &record, &key, &mut rng).unwrap();
        let reader = ReaderSecret::random(&mut rng);
        let reader_pub = reader.public();
        Fixture { rng, chain, record, request: Digest([9; 32]), set, shares, reader, reader_pub, key, enc }
    }

    impl Fixture {
        fn ctx(&self) -> ShareContext<'_> {
            ShareContext {
                chain: &self.chain,
                record: &self.record,
                request: &self.request,
                reader: &self.reader_pub,
                key: &self.enc,
            }
        }

        fn shares_from(&mut self, indices: &[usize]) -> Vec<ReencryptedShare> {
            let ctx = ShareContext {
                chain: &self.chain,
                record: &self.record,
                request: &self.request,
                reader: &self.reader_pub,
                key: &self.enc,
            };
            indices.iter().map(|&i| decryption_share(&self.shares[i], &ctx, &mut self.rng).unwrap()).collect()
        }
    }

    #[test]
    fn any_t_shares_recover_the_key_and_fewer_do_not() {
        // n = 4, f = 1: t = f + 1 = 2 (any 2 of 4 decrypt; 1 alone does not).
        let mut fx = fixture(2, 4, 1);
        for pair in [[0, 1], [0, 3], [2, 3], [3, 1]] {
            let shares = fx.shares_from(&pair);
            let key = combine(&fx.set, &fx.ctx(), &fx.reader, &shares).unwrap();
            assert_eq!(key, fx.key, "shares {pair:?}");
        }
        let one = fx.shares_from(&[2]);
        assert_eq!(
            combine(&fx.set, &fx.ctx(), &fx.reader, &one).unwrap_err(),
            ThresholdError::NotEnoughShares { valid: 1, needed: 2, bad: vec![] }
        );
        // A duplicate share counts once.
        let twice = fx.shares_from(&[2, 2]);
        assert!(matches!(combine(&fx.set, &fx.ctx(), &fx.reader, &twice), Err(ThresholdError::NotEnoughShares { .. })));

        // n = 7, t = 3.
        let mut fx = fixture(3, 7, 2);
        let shares = fx.shares_from(&[6, 0, 4]);
        assert_eq!(combine(&fx.set, &fx.ctx(), &fx.reader, &shares).unwrap(), fx.key);
    }

    #[test]
    fn one_share_alone_yields_nothing_usable() {
        let mut fx = fixture(2, 4, 3);
        // Even a party holding a validator's secret share and the reader's secret, treating its
        // own share as if it were the whole secret (λ = 1), gets a key that is not the data key.
        let share = fx.shares_from(&[1]).remove(0);
        let d = point(&share.e, "E").unwrap() - fx.reader.0 * point(&share.v, "V").unwrap();
        let mut pad = pad(&fx.chain, &fx.record, &fx.enc.u, &d);
        for (p, s) in pad.iter_mut().zip(fx.enc.sealed.iter()) {
            *p ^= s;
        }
        assert_ne!(&pad, fx.key.expose_bytes());
    }

    #[test]
    fn a_bad_share_is_named_and_skipped() {
        let mut fx = fixture(2, 4, 4);
        let mut shares = fx.shares_from(&[0, 1, 2]);
        // Validator 1 returns garbage E (a valid point, the wrong one).
        shares[0].e = (&Scalar::from(7u64) * RISTRETTO_BASEPOINT_TABLE).compress().to_bytes();
        assert_eq!(shares[0].verify(&fx.set, &fx.ctx()), Err(ThresholdError::BadShareProof { index: 1 }));
        // The two good ones still decrypt.
        assert_eq!(combine(&fx.set, &fx.ctx(), &fx.reader, &shares).unwrap(), fx.key);
        // With only one good one left, the bad one is named.
        let e = combine(&fx.set, &fx.ctx(), &fx.reader, &shares[..2]).unwrap_err();
        assert_eq!(e, ThresholdError::NotEnoughShares { valid: 1, needed: 2, bad: vec![1] });
        assert!(e.to_string().contains("[1]"), "{e}");

        // A share claiming another validator's index fails against that validator's public share.
        let mut forged = fx.shares_from(&[3]).remove(0);
        forged.index = 1;
        assert_eq!(forged.verify(&fx.set, &fx.ctx()), Err(ThresholdError::BadShareProof { index: 1 }));
        let mut unknown = forged.clone();
        unknown.index = 9;
        assert!(matches!(unknown.verify(&fx.set, &fx.ctx()), Err(ThresholdError::UnknownShare { index: 9, .. })));
    }

    #[test]
    fn shares_are_bound_to_reader_request_record_and_chain() {
        let mut fx = fixture(2, 4, 5);
        let share = fx.shares_from(&[0]).remove(0);
        let other_reader = ReaderSecret::random(&mut fx.rng).public();
        let other_request = Digest([10; 32]);
        let other_chain = ChainId::new("other-chain").unwrap();
        let base = fx.ctx();
        for ctx in [
            ShareContext { reader: &other_reader, ..base },
            ShareContext { request: &other_request, ..base },
            ShareContext { chain: &other_chain, ..base },
        ] {
            assert_eq!(share.verify(&fx.set, &ctx), Err(ThresholdError::BadShareProof { index: 1 }));
        }
    }

    #[test]
    fn an_encrypted_key_is_bound_to_its_record_and_chain() {
        let fx = fixture(2, 4, 6);
        assert_eq!(fx.enc.verify(&fx.chain, &fx.record), Ok(()));
        let other = Digest([4; 32]);
        assert_eq!(fx.enc.verify(&fx.chain, &other), Err(ThresholdError::BadKeyProof { record: other }));
        assert!(fx.enc.verify(&ChainId::new("other-chain").unwrap(), &fx.record).is_err());
        // A validator refuses to produce a share for a key copied onto another record.
        let mut rng = ChaCha20Rng::seed_from_u64(60);
        let copied = ShareContext { record: &other, ..fx.ctx() };
        let e = decryption_share(&fx.shares[0], &copied, &mut rng).unwrap_err();
        assert_eq!(e, ThresholdError::BadKeyProof { record: other });
        // Tampering with the sealed bytes breaks the proof.
        let mut tampered = fx.enc.clone();
        tampered.sealed[0] ^= 1;
        assert!(tampered.verify(&fx.chain, &fx.record).is_err());
        // Encoding round trip, exact length.
        let bytes = fx.enc.to_bytes();
        assert_eq!(bytes.len(), ENCRYPTED_KEY_LEN);
        assert_eq!(EncryptedKey::from_bytes(&bytes).unwrap(), fx.enc);
        assert!(EncryptedKey::from_bytes(&bytes[1..]).is_err());
    }

    #[test]
    fn key_sets_and_encodings_are_checked() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let (set, _, _) = deal(2, 4, &mut rng);
        assert!(set.check().is_ok());
        assert!(PublicKeySet { threshold: 0, ..set.clone() }.check().is_err());
        assert!(PublicKeySet { threshold: 5, ..set.clone() }.check().is_err());
        let mut bad_point = set.clone();
        bad_point.shares[2] = [0xff; 32];
        assert!(matches!(bad_point.check(), Err(ThresholdError::BadEncoding { .. })));
        assert!(KeyShare::new(1, [0xff; 32]).is_err(), "a non-canonical scalar is refused");
    }
}
