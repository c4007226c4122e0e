//! Distributed key generation of the validators' collective key (DESIGN.md §7), on frost's DKG
//! for ristretto255 (`frost-ristretto255`, the Komlo–Goldberg protocol: Pedersen's DKG with a
//! proof of knowledge of each participant's constant term, which stops rogue-key attacks).
//!
//! Validator `i` of `n` (its index is its position in the genesis validator set plus one) runs:
//! 1. [`round1`]: a random polynomial of degree `t − 1`; it broadcasts the *public* package
//!    (commitments to the coefficients and the proof) and keeps the secret one;
//! 2. [`round2`]: with every other validator's round-1 package it checks their proofs and makes
//!    one *secret* package per other validator (that validator's evaluation of its polynomial),
//!    which must reach only that validator (encrypted to it);
//! 3. [`finish`]: with every round-2 package addressed to it, it checks each against the sender's
//!    commitments and sums them into its share `x_i`. Every validator derives the same public
//!    key set (`Y` and every `Y_j`) from the round-1 packages.
//!
//! No process ever holds `x`: each knows its polynomial and the evaluations sent to it. A
//! participant whose proof or share does not check is named by its index. The protocol, like
//! frost's, needs authenticated channels (which package came from which validator); the node
//! provides them by carrying the packages in signed transactions. Round-2 packages are secret,
//! so each travels sealed for its recipient's transport key ([`seal_package`], published with
//! the round-1 package), and a validator keeps its final share sealed on disk ([`seal_share`]).
//! Randomness is an input.

use std::collections::BTreeMap;

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use frost_ristretto255 as frost;
use frost_ristretto255::keys::dkg;
use rand_core::{CryptoRng, RngCore};
use sha2::{Digest as _, Sha512};
use zeroize::Zeroize;

use crate::crypto::ChainId;

use crate::threshold::{DhSecret, KeyShare, PublicKeySet, ShareIndex};

/// Why a DKG step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgError {
    /// Parameters frost refuses (threshold 0 or above n, n below 2).
    #[error("invalid key generation parameters: threshold {threshold} of {n}: {reason}")]
    Parameters {
        /// The threshold.
        threshold: u16,
        /// Participants.
        n: u16,
        /// frost's reason.
        reason: String,
    },
    /// A package that does not decode.
    #[error("validator {from}: its round-{round} package does not decode: {reason}")]
    Malformed {
        /// The sender.
        from: ShareIndex,
        /// 1 or 2.
        round: u8,
        /// Why.
        reason: String,
    },
    /// A participant's proof of knowledge or secret share does not check.
    #[error("validator {culprit}: its round-{round} package fails verification ({reason})")]
    Culprit {
        /// The participant at fault.
        culprit: ShareIndex,
        /// The round of the failing package.
        round: u8,
        /// frost's reason.
        reason: String,
    },
    /// Packages missing, extra or from unknown indices.
    #[error("round {round}: {reason}")]
    Packages {
        /// The round.
        round: u8,
        /// Which.
        reason: String,
    },
}

/// What a participant keeps between round 1 and round 2 (secret, in memory).
pub struct Round1Secret {
    index: ShareIndex,
    n: u16,
    threshold: u16,
    inner: dkg::round1::SecretPackage,
}

/// What a participant keeps between round 2 and the end (secret, in memory).
pub struct Round2Secret {
    index: ShareIndex,
    n: u16,
    threshold: u16,
    inner: dkg::round2::SecretPackage,
}

impl std::fmt::Debug for Round1Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Round1Secret({} of {}, t = {})", self.index, self.n, self.threshold)
    }
}

impl std::fmt::Debug for Round2Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Round2Secret({} of {}, t = {})", self.index, self.n, self.threshold)
    }
}

fn identifier(index: ShareIndex) -> Result<frost::Identifier, DkgError> {
    frost::Identifier::try_from(index)
        .map_err(|e| DkgError::Packages { round: 1, reason: format!("index {index} is not a participant: {e}") })
}

/// Round 1 for validator `index` (1..=n): the secret to keep and the public package to broadcast.
pub fn round1(
    index: ShareIndex,
    n: u16,
    threshold: u16,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<(Round1Secret, Vec<u8>), DkgError> {
    if index == 0 || index > n {
        return Err(DkgError::Parameters { threshold, n, reason: format!("index {index} is not in 1..={n}") });
    }
    let (inner, package) = dkg::part1(identifier(index)?, n, threshold, rng).map_err(|e| DkgError::Parameters {
        threshold,
        n,
        reason: e.to_string(),
    })?;
    let bytes =
        package.serialize().map_err(|e| DkgError::Malformed { from: index, round: 1, reason: e.to_string() })?;
    Ok((Round1Secret { index, n, threshold, inner }, bytes))
}

/// Decodes the other participants' round-1 packages; exactly one from each other index.
fn round1_packages(
    me: ShareIndex,
    n: u16,
    received: &BTreeMap<ShareIndex, Vec<u8>>,
) -> Result<BTreeMap<frost::Identifier, dkg::round1::Package>, DkgError> {
    expect_all_others(me, n, received, 1)?;
    received
        .iter()
        .map(|(from, bytes)| {
            let package = dkg::round1::Package::deserialize(bytes).map_err(|e| DkgError::Malformed {
                from: *from,
                round: 1,
                reason: e.to_string(),
            })?;
            Ok((identifier(*from)?, package))
        })
        .collect()
}

fn expect_all_others(
    me: ShareIndex,
    n: u16,
    received: &BTreeMap<ShareIndex, Vec<u8>>,
    round: u8,
) -> Result<(), DkgError> {
    let missing: Vec<ShareIndex> = (1..=n).filter(|i| *i != me && !received.contains_key(i)).collect();
    let extra: Vec<ShareIndex> = received.keys().copied().filter(|i| *i == me || *i == 0 || *i > n).collect();
    if missing.is_empty() && extra.is_empty() {
        Ok(())
    } else {
        Err(DkgError::Packages {
            round,
            reason: format!("missing packages from {missing:?}, unexpected from {extra:?}"),
        })
    }
}

/// Maps a frost error to the participant it blames, if any.
fn blame(err: frost::Error, round: u8, n: u16) -> DkgError {
    let reason = err.to_string();
    let culprit = err.culprits().into_iter().next().and_then(|c| (1..=n).find(|i| identifier(*i).ok() == Some(c)));
    match culprit {
        Some(culprit) => DkgError::Culprit { culprit, round, reason },
        None => DkgError::Packages { round, reason },
    }
}

/// Round 2: checks the others' round-1 packages; returns the secret to keep and, for each other
/// validator, the secret package to send to it alone.
pub fn round2(
    secret: Round1Secret,
    round1: &BTreeMap<ShareIndex, Vec<u8>>,
) -> Result<(Round2Secret, BTreeMap<ShareIndex, Vec<u8>>), DkgError> {
    let Round1Secret { index, n, threshold, inner } = secret;
    let packages = round1_packages(index, n, round1)?;
    let (inner, outgoing) = dkg::part2(inner, &packages).map_err(|e| blame(e, 1, n))?;
    let mut out = BTreeMap::new();
    for to in (1..=n).filter(|i| *i != index) {
        let package = outgoing.get(&identifier(to)?).ok_or_else(|| DkgError::Packages {
            round: 2,
            reason: format!("frost made no package for validator {to}"),
        })?;
        let bytes =
            package.serialize().map_err(|e| DkgError::Malformed { from: index, round: 2, reason: e.to_string() })?;
        out.insert(to, bytes);
    }
    Ok((Round2Secret { index, n, threshold, inner }, out))
}

/// The end: checks the round-2 packages addressed to this validator against their senders'
/// commitments; returns its key share and the consortium's public key set (the same at every
/// validator).
pub fn finish(
    secret: &Round2Secret,
    round1: &BTreeMap<ShareIndex, Vec<u8>>,
    round2: &BTreeMap<ShareIndex, Vec<u8>>,
) -> Result<(KeyShare, PublicKeySet), DkgError> {
    let (index, n) = (secret.index, secret.n);
    let packages1 = round1_packages(index, n, round1)?;
    expect_all_others(index, n, round2, 2)?;
    let packages2 = round2
        .iter()
        .map(|(from, bytes)| {
            let package = dkg::round2::Package::deserialize(bytes).map_err(|e| DkgError::Malformed {
                from: *from,
                round: 2,
                reason: e.to_string(),
            })?;
            Ok((identifier(*from)?, package))
        })
        .collect::<Result<BTreeMap<_, _>, DkgError>>()?;
    let (key_package, public) = dkg::part3(&secret.inner, &packages1, &packages2).map_err(|e| blame(e, 2, n))?;

    let share_bytes: [u8; 32] = key_package
        .signing_share()
        .serialize()
        .try_into()
        .map_err(|_| DkgError::Packages { round: 2, reason: "the signing share is not 32 bytes".into() })?;
    let share = KeyShare::new(index, share_bytes)
        .map_err(|e| DkgError::Packages { round: 2, reason: format!("the signing share: {e}") })?;
    let set = public_key_set_of(&public, n, secret.threshold)?;
    if set.shares[usize::from(index) - 1] != share.public() {
        return Err(DkgError::Packages {
            round: 2,
            reason: "this validator's share does not match its public share".into(),
        });
    }
    Ok((share, set))
}

/// The threshold the consortium uses for `n` validators: `n − f` with `f = ⌊(n − 1)/3⌋`, so the
/// key survives `f` validators down (`n − f` remain) and `f + 1` withholding validators stop
/// every read (`n − f − 1` remain). frost needs at least two participants.
pub fn consortium_threshold(n: u16) -> u16 {
    n - (n.saturating_sub(1)) / 3
}

/// Checks a round-1 package on its own: it decodes, commits to a polynomial of degree
/// `threshold − 1`, and carries a valid proof of knowledge of its constant term for participant
/// `from`. The ledger runs it on every `DkgRound1`, so what it holds cannot break an honest
/// validator's [`round2`] (which checks the proofs again): a package with a bad proof, or one
/// copied from another validator (the proof binds the index), is refused when it is submitted,
/// naming its sender, and the key set the ledger records has no rogue-key contribution.
pub fn check_round1(from: ShareIndex, threshold: u16, bytes: &[u8]) -> Result<(), DkgError> {
    let package = dkg::round1::Package::deserialize(bytes).map_err(|e| DkgError::Malformed {
        from,
        round: 1,
        reason: e.to_string(),
    })?;
    let coefficients = package
        .commitment()
        .serialize()
        .map_err(|e| DkgError::Malformed { from, round: 1, reason: e.to_string() })?
        .len();
    if coefficients != usize::from(threshold) {
        return Err(DkgError::Malformed {
            from,
            round: 1,
            reason: format!("{coefficients} commitments, the threshold is {threshold}"),
        });
    }
    frost_core::keys::dkg::verify_proof_of_knowledge(
        identifier(from)?,
        package.commitment(),
        package.proof_of_knowledge(),
    )
    .map_err(|e| DkgError::Culprit { culprit: from, round: 1, reason: e.to_string() })
}

/// The public key set that every validator's [`finish`] will return, computed from the round-1
/// packages of all `n` participants alone (the sum of their commitments). The ledger records it
/// when the last round-1 package commits, so a client can encrypt to the collective key without
/// trusting any one validator. Each package's proof of knowledge was checked when the ledger took
/// it ([`check_round1`]); the ledger activates the set only when every validator has sent its
/// round-2 packages.
pub fn public_key_set(
    n: u16,
    threshold: u16,
    round1: &BTreeMap<ShareIndex, Vec<u8>>,
) -> Result<PublicKeySet, DkgError> {
    if n < 2 || threshold < 2 || threshold > n {
        return Err(DkgError::Parameters { threshold, n, reason: "need 2 ≤ threshold ≤ n".into() });
    }
    let expected: Vec<ShareIndex> = (1..=n).collect();
    if round1.keys().copied().collect::<Vec<_>>() != expected {
        return Err(DkgError::Packages { round: 1, reason: format!("need one package from each of 1..={n}") });
    }
    let mut packages = BTreeMap::new();
    for (from, bytes) in round1 {
        check_round1(*from, threshold, bytes)?;
        let package = dkg::round1::Package::deserialize(bytes).map_err(|e| DkgError::Malformed {
            from: *from,
            round: 1,
            reason: e.to_string(),
        })?;
        packages.insert(identifier(*from)?, package);
    }
    let commitments: BTreeMap<_, _> = packages.iter().map(|(id, p)| (*id, p.commitment())).collect();
    let public = frost::keys::PublicKeyPackage::from_dkg_commitments(&commitments).map_err(|e| blame(e, 1, n))?;
    let set = public_key_set_of(&public, n, threshold)?;
    Ok(set)
}

fn public_key_set_of(public: &frost::keys::PublicKeyPackage, n: u16, threshold: u16) -> Result<PublicKeySet, DkgError> {
    let bytes32 = |v: Vec<u8>, what: &str| -> Result<[u8; 32], DkgError> {
        v.try_into().map_err(|_| DkgError::Packages { round: 2, reason: format!("{what} is not 32 bytes") })
    };
    let collective = bytes32(
        public.verifying_key().serialize().map_err(|e| DkgError::Packages { round: 2, reason: e.to_string() })?,
        "the group key",
    )?;
    let mut shares = Vec::with_capacity(usize::from(n));
    for i in 1..=n {
        let v = public
            .verifying_shares()
            .get(&identifier(i)?)
            .ok_or_else(|| DkgError::Packages { round: 2, reason: format!("no public share for validator {i}") })?;
        shares.push(bytes32(
            v.serialize().map_err(|e| DkgError::Packages { round: 2, reason: e.to_string() })?,
            "a public share",
        )?);
    }
    let set = PublicKeySet { threshold, collective, shares };
    set.check().map_err(|e| DkgError::Packages { round: 2, reason: e.to_string() })?;
    Ok(set)
}

/// A validator's key for receiving round-2 packages, published with its round-1 package; fresh
/// for each key generation.
pub type TransportSecret = DhSecret;

const TAG_TRANSPORT: &[u8] = b"medchain/dkg/v1/round2-transport";
const TAG_AT_REST: &[u8] = b"medchain/dkg/v1/share-at-rest";

/// Why a sealed package or share does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Not a point, or too short.
    #[error("{what} is malformed")]
    Malformed {
        /// What.
        what: &'static str,
    },
    /// Authentication failed: wrong key, wrong sender or recipient, another chain, or altered.
    #[error("{what} does not open with this key for this chain (altered, or meant for another)")]
    Authentication {
        /// What.
        what: &'static str,
    },
}

fn siv_key(tag: &[u8], parts: &[&[u8]]) -> [u8; 64] {
    let mut h = Sha512::new();
    for part in [tag].iter().chain(parts) {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Seals validator `from`'s round-2 package for validator `to`, whose transport key is
/// `recipient`: an ephemeral Diffie–Hellman on ristretto255 and AES-256-SIV, with the chain and
/// both indices bound in. The transaction carrying it is signed by `from`, which authenticates it.
pub fn seal_package(
    chain: &ChainId,
    from: ShareIndex,
    to: ShareIndex,
    recipient: &[u8; 32],
    package: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<Vec<u8>, SealError> {
    let d = CompressedRistretto(*recipient).decompress().ok_or(SealError::Malformed { what: "a transport key" })?;
    let ephemeral = TransportSecret::random(rng);
    let e = ephemeral.public();
    let shared = ephemeral.dh(&d).compress().to_bytes();
    let mut key = siv_key(
        TAG_TRANSPORT,
        &[chain.as_str().as_bytes(), &from.to_be_bytes(), &to.to_be_bytes(), &e, recipient, &shared],
    );
    let mut cipher = Aes256Siv::new(key.as_slice().into());
    key.zeroize();
    let ad = [chain.as_str().as_bytes(), &from.to_be_bytes()[..], &to.to_be_bytes()[..]];
    let sealed = cipher.encrypt(ad, package).map_err(|_| SealError::Malformed { what: "a round-2 package" })?;
    let mut out = e.to_vec();
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens a round-2 package sealed by [`seal_package`] for this validator (`to`).
pub fn open_package(
    chain: &ChainId,
    from: ShareIndex,
    to: ShareIndex,
    secret: &TransportSecret,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let what = "a sealed round-2 package";
    let e: [u8; 32] = sealed.get(..32).and_then(|e| e.try_into().ok()).ok_or(SealError::Malformed { what })?;
    let point = CompressedRistretto(e).decompress().ok_or(SealError::Malformed { what })?;
    let shared = secret.dh(&point).compress().to_bytes();
    open_with(chain, from, to, &secret.public(), &shared, sealed)
}

/// Opens a sealed round-2 package with its Diffie–Hellman point (the recipient's, or one revealed
/// in a complaint).
fn open_with(
    chain: &ChainId,
    from: ShareIndex,
    to: ShareIndex,
    recipient: &[u8; 32],
    shared: &[u8; 32],
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let what = "a sealed round-2 package";
    if sealed.len() < 32 + 16 {
        return Err(SealError::Malformed { what });
    }
    let (e, body) = sealed.split_at(32);
    let mut key = siv_key(
        TAG_TRANSPORT,
        &[chain.as_str().as_bytes(), &from.to_be_bytes(), &to.to_be_bytes(), e, recipient, shared],
    );
    let mut cipher = Aes256Siv::new(key.as_slice().into());
    key.zeroize();
    let ad = [chain.as_str().as_bytes(), &from.to_be_bytes()[..], &to.to_be_bytes()[..]];
    cipher.decrypt(ad, body).map_err(|_| SealError::Authentication { what })
}

const TAG_COMPLAINT: &[u8] = b"medchain/dkg/v1/complaint";

fn complaint_challenge(
    chain: &ChainId,
    against: ShareIndex,
    by: ShareIndex,
    points: [&RistrettoPoint; 5],
) -> curve25519_dalek::scalar::Scalar {
    let mut h = Sha512::new();
    let compressed: Vec<[u8; 32]> = points.iter().map(|p| p.compress().to_bytes()).collect();
    let (against, by) = (against.to_be_bytes(), by.to_be_bytes());
    let parts: Vec<&[u8]> = [TAG_COMPLAINT, chain.as_str().as_bytes(), &against, &by]
        .into_iter()
        .chain(compressed.iter().map(|c| &c[..]))
        .collect();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    curve25519_dalek::scalar::Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}

/// Validator `by` accuses validator `against` of the round-2 package `sealed` it sent it: reveals
/// the point that opens it, `x·E` (its transport secret `x`, the package's ephemeral key `E`),
/// with a proof of equal discrete logs (`X = x·G`, `S = x·E`). The point opens only that
/// package; the dealer it accuses is excluded from nothing else by it.
pub fn complain(
    chain: &ChainId,
    against: ShareIndex,
    by: ShareIndex,
    secret: &TransportSecret,
    sealed: &[u8],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<crate::tx::DkgComplaint, SealError> {
    let what = "a sealed round-2 package";
    let e: [u8; 32] = sealed.get(..32).and_then(|e| e.try_into().ok()).ok_or(SealError::Malformed { what })?;
    let e = CompressedRistretto(e).decompress().ok_or(SealError::Malformed { what })?;
    let x =
        CompressedRistretto(secret.public()).decompress().ok_or(SealError::Malformed { what: "a transport key" })?;
    let (shared, c, s) =
        secret.prove_dh(&e, |shared, a1, a2| complaint_challenge(chain, against, by, [&x, &e, shared, a1, a2]), rng);
    Ok(crate::tx::DkgComplaint { against, shared: shared.compress().to_bytes(), c: c.to_bytes(), s: s.to_bytes() })
}

/// Validator `me`'s complaint against the first dealer whose round-2 package to it is wrong (does
/// not open, does not decode, or fails the dealer's commitments), made and checked exactly as the
/// ledger will check it; `None` when every package addressed to `me` is sound. `rng_for` gives
/// the proof's randomness for a dealer (a fresh stream per dealer: one nonce must never serve two
/// proofs).
pub fn find_complaint<R: RngCore + CryptoRng>(
    chain: &ChainId,
    me: ShareIndex,
    secret: &TransportSecret,
    round1: &BTreeMap<ShareIndex, crate::tx::DkgRound1>,
    round2: &BTreeMap<ShareIndex, crate::tx::DkgRound2>,
    mut rng_for: impl FnMut(ShareIndex) -> R,
) -> Option<crate::tx::DkgComplaint> {
    let transport = secret.public();
    round2.iter().filter(|(from, _)| **from != me).find_map(|(from, dealt)| {
        let sealed = dealt.packages.iter().find(|p| p.to == me).map(|p| p.sealed.as_slice()).unwrap_or_default();
        // A package with no valid ephemeral key opens for no one, as anyone can see on chain: its
        // complaint needs no proof (`check_complaint` upholds it on the bytes alone).
        let complaint = complain(chain, *from, me, secret, sealed, &mut rng_for(*from))
            .unwrap_or(crate::tx::DkgComplaint { against: *from, shared: transport, c: [0; 32], s: [0; 32] });
        let dealer = round1.get(from)?;
        check_complaint(chain, me, &transport, sealed, &dealer.package, &complaint).ok().map(|_| complaint)
    })
}

/// Why a complaint is not upheld.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplaintError {
    /// The revealed point or its proof does not check: nothing is shown.
    #[error("the revealed point's proof does not check against validator {by}'s transport key")]
    BadProof {
        /// The complainer.
        by: ShareIndex,
    },
    /// The package opens and its share matches the dealer's commitments: the complaint is false.
    #[error("validator {against}'s round-2 package for validator {by} opens and checks against its round-1 commitments; the complaint is false")]
    PackageChecks {
        /// The dealer.
        against: ShareIndex,
        /// The complainer.
        by: ShareIndex,
    },
}

/// Checks a complaint by validator `by` (transport key `transport`) against the round-2 package
/// `sealed` that validator `against` sent it, given `against`'s round-1 package. `Ok(why)` when
/// the dealer is at fault (the package does not open with the proven point, does not decode, or
/// its share fails the dealer's commitments); an error when the complaint shows nothing.
pub fn check_complaint(
    chain: &ChainId,
    by: ShareIndex,
    transport: &[u8; 32],
    sealed: &[u8],
    dealer_round1: &[u8],
    complaint: &crate::tx::DkgComplaint,
) -> Result<String, ComplaintError> {
    use curve25519_dalek::scalar::Scalar;
    let against = complaint.against;
    let bad = ComplaintError::BadProof { by };
    let point = |b: &[u8; 32]| CompressedRistretto(*b).decompress();
    let scalar = |b: &[u8; 32]| Option::<Scalar>::from(Scalar::from_canonical_bytes(*b));
    let e: Option<[u8; 32]> = sealed.get(..32).and_then(|e| e.try_into().ok());
    let (Some(x), Some(e), Some(shared), Some(c), Some(s)) = (
        point(transport),
        e.as_ref().and_then(point),
        point(&complaint.shared),
        scalar(&complaint.c),
        scalar(&complaint.s),
    ) else {
        // A package whose ephemeral key is no point opens for no one: the dealer's fault, if the
        // rest of the complaint is well formed.
        if e.as_ref().and_then(point).is_none() && point(&complaint.shared).is_some() {
            return Ok("its sealed package carries no valid ephemeral key".into());
        }
        return Err(bad);
    };
    let a1 = &s * curve25519_dalek::constants::RISTRETTO_BASEPOINT_TABLE - c * x;
    let a2 = s * e - c * shared;
    if complaint_challenge(chain, against, by, [&x, &e, &shared, &a1, &a2]) != c {
        return Err(bad);
    }
    let Ok(bytes) = open_with(chain, against, by, transport, &complaint.shared, sealed) else {
        return Ok("its sealed package does not open for its recipient".into());
    };
    let Ok(package) = dkg::round2::Package::deserialize(&bytes) else {
        return Ok("its round-2 package does not decode".into());
    };
    // The dealer's round-1 package is on the ledger, so it decodes (`check_round1`).
    let Ok(round1) = dkg::round1::Package::deserialize(dealer_round1) else {
        return Ok("its round-1 package does not decode".into());
    };
    let Ok(id) = identifier(by) else { return Err(bad) };
    let share = frost::keys::SecretShare::new(id, *package.signing_share(), round1.commitment().clone());
    match share.verify() {
        Ok(_) => Err(ComplaintError::PackageChecks { against, by }),
        Err(e) => Ok(format!("the share it sent validator {by} fails its round-1 commitments ({e})")),
    }
}

/// Seals a validator's key share for its disk under `at_rest` (64 bytes the node derives from a
/// secret it keeps apart from its data folder, e.g. its node key), bound to the chain and index.
pub fn seal_share(chain: &ChainId, share: &KeyShare, at_rest: &[u8; 64]) -> Vec<u8> {
    let mut key = siv_key(TAG_AT_REST, &[chain.as_str().as_bytes(), at_rest]);
    let mut cipher = Aes256Siv::new(key.as_slice().into());
    key.zeroize();
    let index = share.index().to_be_bytes();
    let mut bytes = share.expose_bytes();
    let sealed = cipher.encrypt([chain.as_str().as_bytes(), &index[..]], &bytes).expect("32 bytes always encrypt");
    bytes.zeroize();
    let mut out = index.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// Opens a share sealed by [`seal_share`].
pub fn open_share(chain: &ChainId, sealed: &[u8], at_rest: &[u8; 64]) -> Result<KeyShare, SealError> {
    let what = "the sealed key share";
    if sealed.len() != 2 + 16 + 32 {
        return Err(SealError::Malformed { what });
    }
    let index = [sealed[0], sealed[1]];
    let mut key = siv_key(TAG_AT_REST, &[chain.as_str().as_bytes(), at_rest]);
    let mut cipher = Aes256Siv::new(key.as_slice().into());
    key.zeroize();
    let mut bytes = cipher
        .decrypt([chain.as_str().as_bytes(), &index[..]], &sealed[2..])
        .map_err(|_| SealError::Authentication { what })?;
    let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SealError::Malformed { what })?;
    bytes.zeroize();
    KeyShare::new(u16::from_be_bytes(index), secret).map_err(|_| SealError::Malformed { what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Digest;
    use crate::crypto::ChainId;
    use crate::envelope::DataKey;
    use crate::threshold::{combine, decryption_share, encrypt_key, ReaderSecret, ShareContext};
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// Runs the whole protocol for n participants in memory; `tamper` may alter each round-2
    /// package (from, to, bytes) before delivery.
    fn run(
        n: u16,
        t: u16,
        seed: u64,
        tamper: impl Fn(ShareIndex, ShareIndex, &mut Vec<u8>),
    ) -> Vec<Result<(KeyShare, PublicKeySet), DkgError>> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut secrets1 = Vec::new();
        let mut public1 = BTreeMap::new();
        for i in 1..=n {
            let (s, p) = round1(i, n, t, &mut rng).unwrap();
            secrets1.push(s);
            public1.insert(i, p);
        }
        let others = |me: ShareIndex| -> BTreeMap<ShareIndex, Vec<u8>> {
            public1.iter().filter(|(i, _)| **i != me).map(|(i, p)| (*i, p.clone())).collect()
        };
        let mut secrets2 = Vec::new();
        let mut inbox: BTreeMap<ShareIndex, BTreeMap<ShareIndex, Vec<u8>>> = BTreeMap::new();
        for s in secrets1 {
            let me = s.index;
            let (s2, out) = round2(s, &others(me)).unwrap();
            for (to, mut bytes) in out {
                tamper(me, to, &mut bytes);
                inbox.entry(to).or_default().insert(me, bytes);
            }
            secrets2.push(s2);
        }
        secrets2.iter().map(|s| finish(s, &others(s.index), &inbox[&s.index])).collect()
    }

    #[test]
    fn every_validator_gets_the_same_key_set_and_any_t_shares_decrypt() {
        let (n, t) = (4u16, 2u16);
        let results = run(n, t, 1, |_, _, _| {});
        let (shares, sets): (Vec<KeyShare>, Vec<PublicKeySet>) = results.into_iter().map(Result::unwrap).unzip();
        assert!(sets.windows(2).all(|w| w[0] == w[1]), "one public key set");
        let set = &sets[0];
        assert_eq!(set.threshold, t);
        for (i, share) in shares.iter().enumerate() {
            assert_eq!(share.index(), i as u16 + 1);
            assert_eq!(set.shares[i], share.public());
        }

        // The DKG's shares work with the threshold encryption.
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let chain = ChainId::new("dkg-test").unwrap();
        let record = Digest([5; 32]);
        let key = DataKey::from_bytes([0x42; 64]);
        let enc = encrypt_key(set, &chain, &record, &key, &mut rng).unwrap();
        let reader = ReaderSecret::random(&mut rng);
        let reader_pub = reader.public();
        let ctx =
            ShareContext { chain: &chain, record: &record, request: &Digest([6; 32]), reader: &reader_pub, key: &enc };
        for pair in [[0usize, 1], [1, 3], [2, 0]] {
            let got: Vec<_> = pair.iter().map(|&i| decryption_share(&shares[i], &ctx, &mut rng).unwrap()).collect();
            assert_eq!(combine(set, &ctx, &reader, &got).unwrap(), key, "shares {pair:?}");
        }
        let one = vec![decryption_share(&shares[3], &ctx, &mut rng).unwrap()];
        assert!(combine(set, &ctx, &reader, &one).is_err(), "one share is not enough");
    }

    #[test]
    fn a_wrong_secret_share_names_its_sender() {
        // Validator 3 sends validator 1 a wrong share: the scalar (the package's last 32 bytes,
        // little-endian) with its lowest bit flipped, still canonical, so only the commitment
        // check fails.
        let results = run(4, 2, 3, |from, to, bytes| {
            if from == 3 && to == 1 {
                let first = bytes.len() - 32;
                bytes[first] ^= 0x01;
            }
        });
        match &results[0] {
            Err(e @ DkgError::Culprit { culprit: 3, round: 2, .. }) => {
                assert!(e.to_string().starts_with("validator 3:"), "{e}")
            }
            other => panic!("validator 1 should blame validator 3: {other:?}"),
        }
        assert!(results[1].is_ok() && results[2].is_ok() && results[3].is_ok(), "the others finish");
    }

    #[test]
    fn a_round1_package_is_checked_alone_proof_included() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let (_, p2) = round1(2, 4, 3, &mut rng).unwrap();
        assert_eq!(check_round1(2, 3, &p2), Ok(()));
        // The same package under another index: its proof of knowledge binds index 2, so a
        // validator that copies another's package (a rogue-key attempt) is named.
        let e = check_round1(1, 3, &p2).unwrap_err();
        assert!(matches!(e, DkgError::Culprit { culprit: 1, round: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("validator 1: its round-1 package fails verification"), "{e}");
        // A proof whose response is altered (the package's last 32 bytes, little-endian: the
        // lowest bit flipped keeps it canonical) fails too.
        let mut bad = p2.clone();
        let last = bad.len() - 32;
        bad[last] ^= 0x01;
        assert!(matches!(check_round1(2, 3, &bad), Err(DkgError::Culprit { culprit: 2, round: 1, .. })));
        // The wrong degree, and bytes that are no package.
        assert!(matches!(check_round1(2, 2, &p2), Err(DkgError::Malformed { from: 2, round: 1, .. })));
        assert!(matches!(check_round1(2, 3, &p2[..10]), Err(DkgError::Malformed { from: 2, round: 1, .. })));
    }

    #[test]
    fn missing_or_bad_parameters_are_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        assert!(matches!(round1(0, 4, 2, &mut rng), Err(DkgError::Parameters { .. })));
        assert!(matches!(round1(5, 4, 2, &mut rng), Err(DkgError::Parameters { .. })));
        assert!(matches!(round1(1, 4, 5, &mut rng), Err(DkgError::Parameters { .. })));
        let (s, _) = round1(1, 4, 2, &mut rng).unwrap();
        let e = round2(s, &BTreeMap::new()).unwrap_err();
        assert!(matches!(e, DkgError::Packages { round: 1, .. }), "{e}");
        assert!(e.to_string().contains("[2, 3, 4]"), "{e}");
    }

    #[test]
    fn round2_packages_open_only_for_their_recipient_and_shares_only_with_their_key() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let chain = ChainId::new("dkg-test").unwrap();
        let other_chain = ChainId::new("other").unwrap();
        let (bob, carol) = (TransportSecret::random(&mut rng), TransportSecret::random(&mut rng));
        let package = b"a round-2 package".to_vec();
        let sealed = seal_package(&chain, 1, 2, &bob.public(), &package, &mut rng).unwrap();
        assert!(!sealed.windows(package.len()).any(|w| w == package.as_slice()));
        assert_eq!(open_package(&chain, 1, 2, &bob, &sealed).unwrap(), package);
        let auth = SealError::Authentication { what: "a sealed round-2 package" };
        assert_eq!(open_package(&chain, 1, 2, &carol, &sealed), Err(auth.clone()), "another validator");
        assert_eq!(open_package(&chain, 3, 2, &bob, &sealed), Err(auth.clone()), "another sender");
        assert_eq!(open_package(&other_chain, 1, 2, &bob, &sealed), Err(auth.clone()), "another chain");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(open_package(&chain, 1, 2, &bob, &altered), Err(auth));
        assert!(matches!(open_package(&chain, 1, 2, &bob, &sealed[..40]), Err(SealError::Malformed { .. })));

        let share = KeyShare::new(3, curve25519_dalek::scalar::Scalar::from(12345u64).to_bytes()).unwrap();
        let at_rest = [7u8; 64];
        let on_disk = seal_share(&chain, &share, &at_rest);
        assert!(!on_disk.windows(32).any(|w| w == share.expose_bytes()), "the share is not on disk in clear");
        let back = open_share(&chain, &on_disk, &at_rest).unwrap();
        assert_eq!((back.index(), back.expose_bytes()), (3, share.expose_bytes()));
        assert!(matches!(open_share(&chain, &on_disk, &[8u8; 64]), Err(SealError::Authentication { .. })));
        assert!(matches!(open_share(&other_chain, &on_disk, &at_rest), Err(SealError::Authentication { .. })));
        let mut moved = on_disk.clone();
        moved[1] = 4; // claims another index
        assert!(matches!(open_share(&chain, &moved, &at_rest), Err(SealError::Authentication { .. })));
    }
}
