//! The pure rules of the protocol, apart from the replica's mutable state: which signatures a
//! message needs, the shape of proofs, block validation, and the NEW-VIEW computation that the
//! new primary performs and every backup repeats to check it.

use super::error::MessageError;
use super::message::{
    Checkpoint, Message, NodeId, PrePrepare, PreparedProof, ReplicaId, SignatureCheck, SignedMessage, ViewChange,
};
use crate::block::{Block, CommittedBlock};
use crate::codec::Digest;
use crate::genesis::Genesis;
use crate::state;

/// How far ahead of the validating replica's clock a block timestamp may be.
pub const TIMESTAMP_AHEAD_MS_MAX: u64 = 30_000;

/// Every signature the driver must verify before handing `msg` to a replica as
/// `Event::Message`: the envelope, every nested signed message (view-change proofs, new-view
/// contents), every transaction signature in carried blocks and forwards, and the COMMIT votes
/// of certificates in a state response.
///
/// Refuses (without any signature work) a sender that is not in the genesis, consensus messages
/// from non-validators (auditors may only send state requests), and nested messages of a kind
/// their container does not allow.
pub fn signature_checks(msg: &SignedMessage, genesis: &Genesis) -> Result<Vec<SignatureCheck>, MessageError> {
    let mut out = Vec::new();
    envelope_checks(msg, genesis, &mut out)?;
    let chain = genesis.chain_id();
    match &msg.message {
        Message::PrePrepare(pp) => block_tx_checks(&pp.block, genesis, &mut out),
        Message::Forward(txs) => {
            for tx in txs {
                out.extend(state::signature_checks(tx, chain));
            }
        }
        Message::ViewChange(vc) => view_change_checks(vc, genesis, &mut out)?,
        Message::NewView(nv) => {
            for m in &nv.view_changes {
                let Message::ViewChange(vc) = &m.message else {
                    return Err(unexpected(m, "view_change"));
                };
                envelope_checks(m, genesis, &mut out)?;
                view_change_checks(vc, genesis, &mut out)?;
            }
            for m in &nv.pre_prepares {
                let Message::PrePrepare(pp) = &m.message else {
                    return Err(unexpected(m, "pre_prepare"));
                };
                envelope_checks(m, genesis, &mut out)?;
                block_tx_checks(&pp.block, genesis, &mut out);
            }
        }
        Message::StateResponse(resp) => {
            let validators = genesis.validator_set();
            for cb in &resp.blocks {
                for (replica, sig) in &cb.certificate.votes {
                    let key = validators.key(*replica).ok_or(MessageError::NotValidator(*replica))?;
                    out.push(SignatureCheck {
                        msg: cb.certificate.vote_signing_bytes(chain, *replica),
                        key: *key,
                        sig: *sig,
                    });
                }
                block_tx_checks(&cb.block, genesis, &mut out);
            }
        }
        Message::Prepare(_) | Message::Commit(_) | Message::Checkpoint(_) | Message::StateRequest(_) => {}
    }
    Ok(out)
}

fn unexpected(m: &SignedMessage, expected: &'static str) -> MessageError {
    MessageError::UnexpectedNested { got: m.message.kind(), expected }
}

fn envelope_checks(msg: &SignedMessage, genesis: &Genesis, out: &mut Vec<SignatureCheck>) -> Result<(), MessageError> {
    let node = genesis.nodes().nth(msg.from as usize).map(|(_, n)| n).ok_or(MessageError::UnknownSender(msg.from))?;
    let is_validator = (msg.from as usize) < genesis.body.validators.len();
    if !is_validator && !matches!(msg.message, Message::StateRequest(_)) {
        return Err(MessageError::NotValidator(msg.from));
    }
    out.push(SignatureCheck {
        msg: super::message::signing_bytes(genesis.chain_id(), msg.from, &msg.message),
        key: node.key,
        sig: msg.signature,
    });
    Ok(())
}

fn block_tx_checks(block: &Block, genesis: &Genesis, out: &mut Vec<SignatureCheck>) {
    for tx in &block.txs {
        out.extend(state::signature_checks(tx, genesis.chain_id()));
    }
}

fn view_change_checks(vc: &ViewChange, genesis: &Genesis, out: &mut Vec<SignatureCheck>) -> Result<(), MessageError> {
    for m in &vc.checkpoint_proof {
        if !matches!(m.message, Message::Checkpoint(_)) {
            return Err(unexpected(m, "checkpoint"));
        }
        envelope_checks(m, genesis, out)?;
    }
    for proof in &vc.prepared {
        let Message::PrePrepare(pp) = &proof.pre_prepare.message else {
            return Err(unexpected(&proof.pre_prepare, "pre_prepare"));
        };
        envelope_checks(&proof.pre_prepare, genesis, out)?;
        block_tx_checks(&pp.block, genesis, out);
        for m in &proof.prepares {
            if !matches!(m.message, Message::Prepare(_)) {
                return Err(unexpected(m, "prepare"));
            }
            envelope_checks(m, genesis, out)?;
        }
    }
    Ok(())
}

/// Checks a block's own consistency against the position it claims: chain id, height, tx count
/// and Merkle root, the block size limit of the genesis, and every transaction's stateless
/// validity. Linkage and timestamps are checked by the caller, who knows the previous block.
pub fn check_block_body(block: &Block, genesis: &Genesis, height: u64) -> Result<(), MessageError> {
    let h = &block.header;
    if h.chain_id != *genesis.chain_id() {
        return Err(MessageError::BadHeader(format!("chain id {} is not ours", h.chain_id)));
    }
    if h.height != height {
        return Err(MessageError::BadHeader(format!("height {} at sequence number {height}", h.height)));
    }
    if block.txs.len() > genesis.body.params.block_txs_max as usize {
        return Err(MessageError::BadHeader(format!(
            "{} transactions, the limit is {}",
            block.txs.len(),
            genesis.body.params.block_txs_max
        )));
    }
    if h.tx_count as usize != block.txs.len() {
        return Err(MessageError::BadHeader(format!("tx_count {} but {} transactions", h.tx_count, block.txs.len())));
    }
    if (h.proposer as usize) >= genesis.body.validators.len() {
        return Err(MessageError::BadHeader(format!("proposer {} is not a validator", h.proposer)));
    }
    if block.compute_tx_root() != h.tx_root {
        return Err(MessageError::BadHeader("tx_root does not match the transactions".into()));
    }
    for (index, tx) in block.txs.iter().enumerate() {
        state::check_stateless(tx).map_err(|error| MessageError::BadTransaction { index, error })?;
    }
    Ok(())
}

/// Checks that `cb` extends a chain whose head is at `height` with hash `head` and timestamp
/// `head_ts`: body, linkage, timestamp order, and the certificate's shape (its signatures were
/// batch-verified by the driver through [`signature_checks`]).
pub fn check_committed_block(
    cb: &CommittedBlock,
    genesis: &Genesis,
    height: u64,
    head: &Digest,
    head_ts: u64,
) -> Result<(), MessageError> {
    let h = &cb.block.header;
    if h.height != height + 1 || h.prev_hash != *head {
        return Err(MessageError::Unlinked { height: h.height });
    }
    if h.timestamp_ms < head_ts {
        return Err(MessageError::BadHeader(format!("timestamp {} below the previous {head_ts}", h.timestamp_ms)));
    }
    check_block_body(&cb.block, genesis, height + 1)?;
    cb.certificate.check_shape(&genesis.validator_set(), height + 1, &cb.block.hash())?;
    Ok(())
}

/// A checkpoint with its proof (2f+1 signed CHECKPOINT messages; empty for the genesis).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StableCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Its proof.
    pub proof: Vec<SignedMessage>,
}

impl StableCheckpoint {
    /// The genesis checkpoint: seq 0, the genesis hash, no proof needed.
    pub fn genesis(genesis: &Genesis) -> Self {
        StableCheckpoint { checkpoint: Checkpoint { seq: 0, digest: genesis.hash() }, proof: Vec::new() }
    }
}

/// Checks a checkpoint proof: the genesis checkpoint with no proof, or a multiple of the
/// checkpoint interval with CHECKPOINT messages from a quorum of distinct validators.
pub fn check_checkpoint_proof(cp: &Checkpoint, proof: &[SignedMessage], genesis: &Genesis) -> Result<(), MessageError> {
    if cp.seq == 0 {
        if cp.digest != genesis.hash() || !proof.is_empty() {
            return Err(MessageError::BadCheckpoint("the seq 0 checkpoint is the genesis, with no proof".into()));
        }
        return Ok(());
    }
    if !cp.seq.is_multiple_of(genesis.body.params.checkpoint_interval) {
        return Err(MessageError::BadCheckpoint(format!("seq {} is not a checkpoint", cp.seq)));
    }
    let n = genesis.body.validators.len();
    let mut signers = std::collections::BTreeSet::new();
    for m in proof {
        let Message::Checkpoint(c) = &m.message else {
            return Err(unexpected(m, "checkpoint"));
        };
        if c != cp || (m.from as usize) >= n || !signers.insert(m.from) {
            return Err(MessageError::BadCheckpoint(
                "proof messages must match and come from distinct validators".into(),
            ));
        }
    }
    let quorum = genesis.validator_set().quorum();
    if signers.len() < quorum {
        return Err(MessageError::BadCheckpoint(format!("{} signers, a quorum is {quorum}", signers.len())));
    }
    Ok(())
}

/// A prepared proof, checked: (view, seq, digest) and the block.
pub struct CheckedPrepared<'a> {
    /// The view it prepared in.
    pub view: u64,
    /// The sequence number.
    pub seq: u64,
    /// The block's hash.
    pub digest: Digest,
    /// The block.
    pub block: &'a Block,
}

/// Checks a prepared proof's shape: a PRE-PREPARE from the primary of its view and 2f PREPAREs
/// for the same (view, seq, digest) from distinct backups.
pub fn check_prepared_proof<'a>(
    proof: &'a PreparedProof,
    genesis: &Genesis,
) -> Result<CheckedPrepared<'a>, MessageError> {
    let bad = |s: &str| MessageError::BadViewChange(s.to_string());
    let Message::PrePrepare(PrePrepare { view, seq, block }) = &proof.pre_prepare.message else {
        return Err(unexpected(&proof.pre_prepare, "pre_prepare"));
    };
    let validators = genesis.validator_set();
    let primary = validators.primary(*view);
    if proof.pre_prepare.from != primary {
        return Err(bad("prepared proof's pre-prepare is not from the primary of its view"));
    }
    if block.header.height != *seq {
        return Err(bad("prepared block height differs from its sequence number"));
    }
    let digest = block.hash();
    let mut signers = std::collections::BTreeSet::new();
    for m in &proof.prepares {
        let Message::Prepare(v) = &m.message else {
            return Err(unexpected(m, "prepare"));
        };
        if v.view != *view || v.seq != *seq || v.digest != digest {
            return Err(bad("prepare does not match the pre-prepare"));
        }
        if m.from == primary || (m.from as usize) >= validators.len() || !signers.insert(m.from) {
            return Err(bad("prepares must come from distinct backups"));
        }
    }
    if signers.len() < 2 * validators.f() {
        return Err(bad("fewer than 2f prepares"));
    }
    Ok(CheckedPrepared { view: *view, seq: *seq, digest, block })
}

/// Checks a VIEW-CHANGE's shape: its checkpoint proof, and prepared proofs from earlier views
/// for distinct sequence numbers inside the window above the checkpoint.
pub fn check_view_change(vc: &ViewChange, genesis: &Genesis) -> Result<(), MessageError> {
    check_checkpoint_proof(&vc.checkpoint, &vc.checkpoint_proof, genesis)?;
    let window = genesis.body.params.watermark_window;
    let mut seqs = std::collections::BTreeSet::new();
    for proof in &vc.prepared {
        let p = check_prepared_proof(proof, genesis)?;
        if p.view >= vc.new_view {
            return Err(MessageError::BadViewChange("prepared proof from a view not below the new view".into()));
        }
        if p.seq <= vc.checkpoint.seq || p.seq > vc.checkpoint.seq + window || !seqs.insert(p.seq) {
            return Err(MessageError::BadViewChange(format!(
                "prepared proof at seq {} out of window or repeated",
                p.seq
            )));
        }
    }
    Ok(())
}

/// What a NEW-VIEW must contain, computed from its view changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewViewPlan {
    /// The highest stable checkpoint among the view changes, with its proof.
    pub stable: StableCheckpoint,
    /// The blocks re-proposed above it, at consecutive sequence numbers from `stable.seq + 1`.
    pub blocks: Vec<Block>,
}

/// The NEW-VIEW computation (Castro–Liskov §4.4, adapted to chained blocks).
///
/// `min_s` is the highest checkpoint among the view changes. For each seq above it, the
/// prepared proof from the highest view is chosen. Because a block names its predecessor's hash,
/// the re-proposed blocks must form a chain from the checkpoint: the computation stops at the
/// first seq with no prepared proof or whose chosen block does not link. This is safe because a
/// replica sends COMMIT for seq s only after sending COMMIT for s-1 in the same view (or having
/// executed s-1): so a block committed anywhere has every block below it down to the
/// checkpoint prepared by a quorum in the same view, and each of them is chosen and links. What
/// is cut off was committed nowhere; the new primary proposes afresh from there. (Castro–Liskov
/// fill such gaps with null requests; with hash-chained blocks an empty block at a gap could
/// never be followed by the prepared block above it, so cutting is equivalent and simpler.)
///
/// `view_changes` must already be checked ([`check_view_change`]); the order is the caller's
/// (sorted by sender), which makes ties deterministic.
pub fn compute_new_view(view_changes: &[&ViewChange], genesis: &Genesis) -> Result<NewViewPlan, MessageError> {
    let best_cp = view_changes
        .iter()
        .max_by(|a, b| a.checkpoint.seq.cmp(&b.checkpoint.seq).then(std::cmp::Ordering::Greater))
        .ok_or_else(|| MessageError::BadNewView("no view changes".into()))?;
    let stable = StableCheckpoint { checkpoint: best_cp.checkpoint, proof: best_cp.checkpoint_proof.clone() };
    // The prepared proof from the highest view at each seq (the first one on ties).
    let mut best: std::collections::BTreeMap<u64, CheckedPrepared<'_>> = std::collections::BTreeMap::new();
    for vc in view_changes {
        for proof in &vc.prepared {
            let p = check_prepared_proof(proof, genesis)?;
            if p.seq > stable.checkpoint.seq && best.get(&p.seq).is_none_or(|b| p.view > b.view) {
                best.insert(p.seq, p);
            }
        }
    }
    let mut blocks = Vec::new();
    let mut tip = stable.checkpoint.digest;
    for seq in stable.checkpoint.seq + 1.. {
        let Some(p) = best.get(&seq) else { break };
        if p.block.header.prev_hash != tip {
            break;
        }
        tip = p.digest;
        blocks.push(p.block.clone());
    }
    Ok(NewViewPlan { stable, blocks })
}

/// Sender checks common to consensus messages: a validator other than `me`.
pub fn validator_sender(from: NodeId, n: usize, me: ReplicaId) -> Result<ReplicaId, MessageError> {
    if from as usize >= n {
        return Err(MessageError::NotValidator(from));
    }
    if from == me {
        return Err(MessageError::FromSelf);
    }
    Ok(from)
}
