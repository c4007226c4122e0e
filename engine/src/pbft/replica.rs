//! The replica: Castro–Liskov PBFT over hash-chained blocks, as a sans-IO state machine.
//!
//! Invariants (asserted where cheap):
//! - every vote, accepted pre-prepare, view change and new view is in storage before the action
//!   that sends it is returned (a restarted replica never signs two things for one slot);
//! - blocks execute in sequence order, each linking to the last; committed blocks never roll back;
//! - memory is bounded: slots only inside the watermarks, one vote per replica per slot, one
//!   view change and one checkpoint per replica kept, a bounded pending pool.
//!
//! One rule differs from the paper, for hash-chained blocks: a replica sends COMMIT for seq s
//! only once it sent COMMIT for s-1 in the same view or executed s-1 (see
//! [`super::rules::compute_new_view`] for why this keeps view changes safe).

use super::chain;
use super::error::{MessageError, ReplicaError};
use super::message::{
    Checkpoint, Message, NewView, NodeId, PrePrepare, PreparedProof, ReplicaId, SignedMessage, StateRequest,
    StateResponse, ViewChange, Vote,
};
use super::rules::{self, NewViewPlan, StableCheckpoint, TIMESTAMP_AHEAD_MS_MAX};
use super::{Action, Event, ReplicaConfig, ReplicaStatus};
use crate::block::{Block, BlockHeader, CommitCertificate, CommittedBlock};
use crate::codec::{self, Digest};
use crate::crypto::PublicKey;
use crate::limits::MESSAGE_BYTES_MAX;
use crate::state::{State, TxError};
use crate::storage::{Storage, StorageError};
use crate::tx::{Transaction, TxId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Most blocks served in one state response.
pub const STATE_CHUNK_BLOCKS_MAX: u64 = 64;
/// The view-change timeout doubles at most this many times.
const TIMEOUT_DOUBLINGS_MAX: u32 = 6;

/// Consensus-log keys. Slot entries sort by sequence number, so `prune_consensus_below` of a
/// slot floor removes exactly the slots below it; the metadata sorts after every slot.
mod keys {
    pub const SLOT: u8 = 0x01;
    pub const META: u8 = 0xFF;
    pub const META_VIEW: [u8; 2] = [META, 0x01];
    pub const META_STABLE: [u8; 2] = [META, 0x02];
    pub const PRE_PREPARE: u8 = 1;
    pub const PREPARE: u8 = 2;
    pub const COMMIT: u8 = 3;
    pub const PREPARED: u8 = 4;

    pub fn slot(seq: u64, kind: u8) -> Vec<u8> {
        let mut k = slot_floor(seq);
        k.push(kind);
        k
    }

    /// Every key of slot `seq` and above sorts at or after this.
    pub fn slot_floor(seq: u64) -> Vec<u8> {
        let mut k = vec![SLOT];
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }
}

/// The view the replica is in, persisted before it announces anything about it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ViewMeta {
    view: u64,
    view_changing: bool,
    view_change: Option<SignedMessage>,
    new_view: Option<SignedMessage>,
}

/// The accepted PRE-PREPARE of a slot.
#[derive(Clone, Debug)]
struct Accepted {
    msg: SignedMessage,
    view: u64,
    digest: Digest,
}

impl Accepted {
    fn new(msg: SignedMessage) -> Self {
        let Message::PrePrepare(pp) = &msg.message else {
            panic!("Accepted::new: not a pre-prepare");
        };
        let (view, digest) = (pp.view, pp.block.hash());
        Accepted { msg, view, digest }
    }

    fn block(&self) -> &Block {
        match &self.msg.message {
            Message::PrePrepare(pp) => &pp.block,
            _ => unreachable!("Accepted holds a pre-prepare"),
        }
    }
}

/// What the replica knows about one sequence number inside the watermarks.
#[derive(Clone, Debug, Default)]
struct Slot {
    /// The accepted pre-prepare (of the current view, or of an earlier one until a new view
    /// re-proposes the seq).
    accepted: Option<Accepted>,
    /// A pre-prepare of the current view waiting for its predecessor before it can be checked.
    waiting: Option<SignedMessage>,
    /// PREPAREs and COMMITs of the current view, one per replica (own COMMIT included).
    prepares: BTreeMap<ReplicaId, SignedMessage>,
    commits: BTreeMap<ReplicaId, SignedMessage>,
    my_prepare: Option<SignedMessage>,
    my_commit: Option<SignedMessage>,
    /// The prepared proof from the highest view this replica prepared the seq in.
    prepared: Option<(u64, PreparedProof)>,
    /// When this replica first had a pre-prepare for the seq (accepted or waiting): the view
    /// timer of an in-flight seq never starts before it.
    since_ms: Option<u64>,
}

fn vote_of(m: &SignedMessage) -> Option<Vote> {
    match &m.message {
        Message::Prepare(v) | Message::Commit(v) => Some(*v),
        _ => None,
    }
}

/// A client transaction waiting to be committed.
#[derive(Clone, Debug)]
struct PoolTx {
    tx: Transaction,
    arrival: u64,
    arrived_ms: u64,
    /// In a block this (primary) replica proposed in the current view.
    proposed: bool,
    /// When this (backup) replica last forwarded it to the primary.
    forwarded_ms: Option<u64>,
}

/// The bounded pool of client transactions, in arrival order, deduplicated by id.
///
/// Every operation the replica does per event costs O(batch + log n), never O(pool): the
/// unproposed transactions have their own arrival-order index (the primary takes its next batch
/// from its front), and committed, superseded or expired transactions leave by id, by sender or by
/// expiry height. Only a view change (when `proposed` resets) walks the whole pool.
#[derive(Clone, Debug, Default)]
struct Pool {
    by_id: BTreeMap<TxId, PoolTx>,
    /// Every pooled transaction, by arrival.
    order: BTreeMap<u64, TxId>,
    /// The pooled transactions not `proposed`, by arrival.
    unproposed: BTreeMap<u64, TxId>,
    /// By (sender, nonce): those a committed nonce supersedes leave in one range.
    by_sender: BTreeSet<(PublicKey, u64, TxId)>,
    /// By expiry height: those that expire leave from the front.
    by_expiry: BTreeSet<(u64, TxId)>,
    next_arrival: u64,
    /// Pool entries the replica has looked at (tests check the cost of proposing).
    #[cfg(test)]
    visits: u64,
}

impl Pool {
    fn insert(&mut self, id: TxId, tx: Transaction, now_ms: u64) {
        assert!(!self.by_id.contains_key(&id), "the pool is deduplicated by id");
        let arrival = self.next_arrival;
        self.next_arrival += 1;
        self.order.insert(arrival, id);
        self.unproposed.insert(arrival, id);
        self.by_sender.insert((tx.body.sender, tx.body.nonce, id));
        self.by_expiry.insert((tx.body.expiry_height, id));
        self.by_id.insert(id, PoolTx { tx, arrival, arrived_ms: now_ms, proposed: false, forwarded_ms: None });
    }
    fn remove(&mut self, id: &TxId) {
        if let Some(p) = self.by_id.remove(id) {
            self.order.remove(&p.arrival);
            self.unproposed.remove(&p.arrival);
            self.by_sender.remove(&(p.tx.body.sender, p.tx.body.nonce, *id));
            self.by_expiry.remove(&(p.tx.body.expiry_height, *id));
        }
    }
    fn len(&self) -> usize {
        self.by_id.len()
    }
    fn unproposed_len(&self) -> usize {
        self.unproposed.len()
    }
    /// The oldest pooled transaction.
    fn oldest(&self) -> Option<&PoolTx> {
        self.order.values().next().and_then(|id| self.by_id.get(id))
    }
    /// The oldest unproposed transaction.
    fn oldest_unproposed(&self) -> Option<&PoolTx> {
        self.unproposed.values().next().and_then(|id| self.by_id.get(id))
    }
    /// Takes up to `limit` unproposed transactions, oldest first, and marks them proposed.
    fn take_unproposed(&mut self, limit: usize) -> Vec<Transaction> {
        let mut txs = Vec::with_capacity(limit.min(self.unproposed.len()));
        while txs.len() < limit {
            let Some((_, id)) = self.unproposed.pop_first() else { break };
            #[cfg(test)]
            {
                self.visits += 1;
            }
            if let Some(p) = self.by_id.get_mut(&id) {
                p.proposed = true;
                txs.push(p.tx.clone());
            }
        }
        txs
    }
    /// After a view change: only the transactions in `in_plan` count as proposed.
    fn reset_proposed(&mut self, in_plan: &BTreeSet<TxId>) {
        self.unproposed.clear();
        for (id, p) in self.by_id.iter_mut() {
            p.proposed = in_plan.contains(id);
            p.forwarded_ms = None;
            if !p.proposed {
                self.unproposed.insert(p.arrival, *id);
            }
        }
    }
    /// Up to `limit` transactions not forwarded in the last `every_ms`, oldest first, marked as
    /// forwarded now. Stops at a full batch.
    fn take_forwardable(&mut self, limit: usize, now_ms: u64, every_ms: u64) -> Vec<Transaction> {
        let mut batch = Vec::new();
        for id in self.order.values() {
            if batch.len() >= limit {
                break;
            }
            #[cfg(test)]
            {
                self.visits += 1;
            }
            if let Some(p) = self.by_id.get_mut(id) {
                if p.forwarded_ms.is_none_or(|t| now_ms >= t + every_ms) {
                    p.forwarded_ms = Some(now_ms);
                    batch.push(p.tx.clone());
                }
            }
        }
        batch
    }
    /// Removes the transactions of `sender` whose nonce is at most `nonce` (the sender's last
    /// committed nonce), reporting each as refused.
    fn remove_superseded(&mut self, sender: PublicKey, nonce: u64, refused: &mut Vec<(TxId, TxError)>) {
        let lo = (sender, 0, Digest::ZERO);
        let gone: Vec<(u64, TxId)> = self
            .by_sender
            .range(lo..)
            .take_while(|(s, n, _)| *s == sender && *n <= nonce)
            .map(|(_, n, id)| (*n, *id))
            .collect();
        for (got, id) in gone {
            self.remove(&id);
            refused.push((id, TxError::StaleNonce { sender, last: nonce, got }));
        }
    }
    /// Removes the transactions that expire at or below `height`, reporting each as refused.
    fn remove_expired(&mut self, height: u64, refused: &mut Vec<(TxId, TxError)>) {
        while let Some(&(expiry_height, id)) = self.by_expiry.first() {
            if expiry_height > height {
                return;
            }
            self.remove(&id);
            refused.push((id, TxError::Expired { expiry_height, height: height + 1 }));
        }
    }
}

/// Why handling stopped early: a message to drop, or a storage failure (fatal).
enum Stop {
    Drop(MessageError),
    Storage(StorageError),
}
impl From<MessageError> for Stop {
    fn from(e: MessageError) -> Self {
        Stop::Drop(e)
    }
}
impl From<StorageError> for Stop {
    fn from(e: StorageError) -> Self {
        Stop::Storage(e)
    }
}
type Step = Result<(), Stop>;

/// A PBFT replica over storage `S`. See the module docs.
pub struct Replica<S: Storage> {
    cfg: ReplicaConfig,
    n: usize,
    f: usize,
    quorum: usize,
    interval: u64,
    window: u64,
    storage: S,
    state: State,
    view: u64,
    view_changing: bool,
    my_view_change: Option<SignedMessage>,
    new_view_msg: Option<SignedMessage>,
    /// The NEW-VIEW of the last view this replica installed, kept while it changes views again:
    /// backups still asking for that view get it even when every replica that installed it has
    /// moved on (else they wait for it, and the others for them, forever).
    installed_new_view: Option<SignedMessage>,
    stable: StableCheckpoint,
    slots: BTreeMap<u64, Slot>,
    /// The primary's next sequence number to propose.
    next_seq: u64,
    /// CHECKPOINT messages for seqs inside the window.
    checkpoint_votes: BTreeMap<u64, BTreeMap<ReplicaId, SignedMessage>>,
    /// Each replica's highest CHECKPOINT (also above the window: that is how lag shows).
    latest_checkpoint: BTreeMap<ReplicaId, SignedMessage>,
    my_checkpoint: Option<SignedMessage>,
    /// Each replica's highest VIEW-CHANGE.
    view_changes: BTreeMap<ReplicaId, SignedMessage>,
    /// Highest seq each replica sent a message for above our window.
    seen_above: BTreeMap<ReplicaId, u64>,
    /// When each recent seq was executed (for answering laggards), pruned at checkpoints.
    executed_at_ms: BTreeMap<u64, u64>,
    pool: Pool,
    now_ms: u64,
    started: bool,
    vc_deadline_ms: Option<u64>,
    consecutive_view_changes: u32,
    last_progress_ms: u64,
    /// When a transaction of this replica's pool last committed (or the view began).
    pool_progress_ms: u64,
    last_retransmit_ms: u64,
    state_target: u64,
    state_peer: usize,
    last_state_request_ms: Option<u64>,
    helped_ms: BTreeMap<ReplicaId, u64>,
    /// Highest view each replica sent a message in, when above ours.
    views_ahead: BTreeMap<ReplicaId, u64>,
    halted: bool,
}

impl<S: Storage> Replica<S> {
    /// Opens a replica: stores the genesis if `storage` is new (refusing a different stored one),
    /// rebuilds the state from stored blocks, and reloads the consensus log (view, accepted
    /// pre-prepares, own votes, prepared proofs, stable checkpoint) so that it never equivocates.
    pub fn open(config: ReplicaConfig, mut storage: S) -> Result<Self, ReplicaError> {
        let genesis = &config.genesis;
        genesis.verify()?;
        let validators = genesis.validator_set();
        let me = config.me;
        match validators.key(me) {
            None => return Err(ReplicaError::BadIdentity { me, reason: "not a validator of the genesis".into() }),
            Some(k) if *k != config.key.public() => {
                return Err(ReplicaError::BadIdentity {
                    me,
                    reason: "the signing key is not this validator's key".into(),
                })
            }
            Some(_) => {}
        }
        let state = chain::open_chain(genesis, &mut storage)?;
        let params = genesis.body.params.clone();
        let mut r = Replica {
            n: validators.len(),
            f: validators.f(),
            quorum: validators.quorum(),
            interval: params.checkpoint_interval,
            window: params.watermark_window,
            stable: StableCheckpoint::genesis(genesis),
            cfg: config,
            storage,
            state,
            view: 0,
            view_changing: false,
            my_view_change: None,
            new_view_msg: None,
            installed_new_view: None,
            slots: BTreeMap::new(),
            next_seq: 1,
            checkpoint_votes: BTreeMap::new(),
            latest_checkpoint: BTreeMap::new(),
            my_checkpoint: None,
            view_changes: BTreeMap::new(),
            seen_above: BTreeMap::new(),
            executed_at_ms: BTreeMap::new(),
            pool: Pool::default(),
            now_ms: 0,
            started: false,
            vc_deadline_ms: None,
            consecutive_view_changes: 0,
            last_progress_ms: 0,
            pool_progress_ms: 0,
            last_retransmit_ms: 0,
            state_target: 0,
            state_peer: 0,
            last_state_request_ms: None,
            helped_ms: BTreeMap::new(),
            views_ahead: BTreeMap::new(),
            halted: false,
        };
        r.reload_log()?;
        Ok(r)
    }

    fn reload_log(&mut self) -> Result<(), ReplicaError> {
        let corrupt = |what: &str, e: codec::DecodeError| ReplicaError::Corrupt(format!("consensus log {what}: {e}"));
        let entries = self.storage.consensus_entries()?;
        let mut slot_entries = Vec::new();
        for (k, v) in entries {
            if k.as_slice() == keys::META_VIEW {
                let meta: ViewMeta = codec::decode(&v, MESSAGE_BYTES_MAX).map_err(|e| corrupt("view", e))?;
                self.view = meta.view;
                self.view_changing = meta.view_changing;
                self.installed_new_view = meta.new_view.clone();
                self.new_view_msg = meta.new_view;
                if let Some(vc) = meta.view_change {
                    self.view_changes.insert(self.cfg.me, vc.clone());
                    self.my_view_change = Some(vc);
                }
            } else if k.as_slice() == keys::META_STABLE {
                self.stable = codec::decode(&v, MESSAGE_BYTES_MAX).map_err(|e| corrupt("stable checkpoint", e))?;
            } else if k.len() == 10 && k[0] == keys::SLOT {
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&k[1..9]);
                slot_entries.push((u64::from_be_bytes(seq), k[9], v));
            } else {
                return Err(ReplicaError::Corrupt(format!("unknown consensus log key {}", hex::encode(&k))));
            }
        }
        for (seq, kind, v) in slot_entries {
            if seq <= self.stable.checkpoint.seq {
                continue;
            }
            let slot = self.slots.entry(seq).or_default();
            match kind {
                keys::PRE_PREPARE => {
                    let m: SignedMessage =
                        codec::decode(&v, MESSAGE_BYTES_MAX).map_err(|e| corrupt("pre-prepare", e))?;
                    if !matches!(m.message, Message::PrePrepare(_)) {
                        return Err(ReplicaError::Corrupt(format!("slot {seq}: not a pre-prepare")));
                    }
                    slot.accepted = Some(Accepted::new(m));
                    slot.since_ms.get_or_insert(self.now_ms);
                }
                keys::PREPARE => {
                    slot.my_prepare = Some(codec::decode(&v, MESSAGE_BYTES_MAX).map_err(|e| corrupt("prepare", e))?)
                }
                keys::COMMIT => {
                    slot.my_commit = Some(codec::decode(&v, MESSAGE_BYTES_MAX).map_err(|e| corrupt("commit", e))?)
                }
                keys::PREPARED => {
                    let p: PreparedProof =
                        codec::decode(&v, MESSAGE_BYTES_MAX).map_err(|e| corrupt("prepared proof", e))?;
                    let view = match &p.pre_prepare.message {
                        Message::PrePrepare(pp) => pp.view,
                        _ => return Err(ReplicaError::Corrupt(format!("slot {seq}: bad prepared proof"))),
                    };
                    slot.prepared = Some((view, p));
                }
                other => return Err(ReplicaError::Corrupt(format!("slot {seq}: unknown entry kind {other}"))),
            }
        }
        // Own votes count only in the view they were cast in.
        let (view, me) = (self.view, self.cfg.me);
        for slot in self.slots.values_mut() {
            if let Some(p) = slot.my_prepare.as_ref().filter(|p| vote_of(p).map(|v| v.view) == Some(view)) {
                slot.prepares.insert(me, p.clone());
            }
            if let Some(c) = slot.my_commit.as_ref().filter(|c| vote_of(c).map(|v| v.view) == Some(view)) {
                slot.commits.insert(me, c.clone());
            }
        }
        let last_accepted = self
            .slots
            .iter()
            .filter(|(_, s)| s.accepted.as_ref().is_some_and(|a| a.view == view))
            .map(|(k, _)| *k)
            .max();
        self.next_seq = last_accepted.unwrap_or(0).max(self.state.height()).max(self.stable.checkpoint.seq) + 1;
        Ok(())
    }

    /// Feeds one event; returns what the driver must do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        if self.halted {
            if let Event::Message(m) = event {
                out.push(Action::Dropped { from: m.from, reason: MessageError::Halted });
            }
            return out;
        }
        let result = match event {
            Event::Message(m) => {
                let from = m.from;
                // A stale NEW-VIEW is not answered with one: two replicas could trade them.
                let is_new_view = matches!(m.message, Message::NewView(_));
                match self.on_message(m, &mut out) {
                    Err(Stop::Drop(reason)) => {
                        let joined = match reason {
                            MessageError::StaleView { view, .. } if !is_new_view => {
                                self.help_stale_peer(from, view, &mut out);
                                Ok(())
                            }
                            MessageError::ViewAhead { view, .. } => self.note_view_ahead(from, view, &mut out),
                            _ => Ok(()),
                        };
                        out.push(Action::Dropped { from, reason });
                        joined
                    }
                    other => other,
                }
            }
            Event::Transactions(txs) => self.on_client_txs(txs, &mut out),
            Event::Tick { now_ms } => self.on_tick(now_ms, &mut out),
        };
        let result = result.and_then(|()| self.propose(&mut out));
        match result {
            Ok(()) | Err(Stop::Drop(_)) => {}
            Err(Stop::Storage(e)) => {
                self.halted = true;
                out.push(Action::Halted { reason: e.to_string() });
            }
        }
        out
    }

    /// A snapshot for status endpoints and tests.
    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            view: self.view,
            primary: self.primary(self.view),
            height: self.state.height(),
            head: self.state.head(),
            stable_checkpoint: self.stable.checkpoint.seq,
            view_changing: self.view_changing,
            pending_txs: self.pool.len(),
        }
    }

    /// The ledger state at the committed head.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back (a simulated crash keeps it and reopens a replica on it).
    pub fn into_storage(self) -> S {
        self.storage
    }

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.cfg.me
    }

    /// Slots held in memory (for tests of the memory bound).
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Pool entries looked at so far (for tests of the cost of proposing and forwarding).
    #[cfg(test)]
    pub(crate) fn pool_visits(&self) -> u64 {
        self.pool.visits
    }

    // ---- helpers ----

    fn primary(&self, view: u64) -> ReplicaId {
        (view % self.n as u64) as ReplicaId
    }
    fn is_primary(&self) -> bool {
        self.primary(self.view) == self.cfg.me
    }
    fn low(&self) -> u64 {
        self.stable.checkpoint.seq
    }
    fn high(&self) -> u64 {
        self.low() + self.window
    }
    fn height(&self) -> u64 {
        self.state.height()
    }
    fn sign(&self, message: Message) -> SignedMessage {
        SignedMessage::sign(self.cfg.genesis.chain_id(), self.cfg.me, message, &self.cfg.key)
    }
    fn put<T: Serialize>(&mut self, key: &[u8], value: &T) -> Result<(), StorageError> {
        self.storage.put_consensus(key, &codec::encode(value))
    }
    fn timeout_ms(&self) -> u64 {
        self.cfg.view_change_timeout_ms.max(1) << self.consecutive_view_changes.min(TIMEOUT_DOUBLINGS_MAX)
    }
    fn retransmit_ms(&self) -> u64 {
        (self.cfg.view_change_timeout_ms / 4).max(1)
    }
    fn persist_meta(&mut self) -> Result<(), StorageError> {
        let meta = ViewMeta {
            view: self.view,
            view_changing: self.view_changing,
            view_change: self.my_view_change.clone(),
            new_view: self.new_view_msg.clone(),
        };
        self.put(&keys::META_VIEW, &meta)
    }

    /// Hash and timestamp of the block at `seq` in the chain of the current view: committed, or
    /// accepted in this view.
    fn link_at(&self, seq: u64) -> Option<(Digest, u64)> {
        let height = self.height();
        if seq == height {
            return Some((self.state.head(), self.state.timestamp_ms()));
        }
        if seq < height {
            let cb = self.storage.block(seq).ok().flatten()?;
            return Some((cb.block.hash(), cb.block.header.timestamp_ms));
        }
        let acc = self.slots.get(&seq)?.accepted.as_ref()?;
        (acc.view == self.view).then(|| (acc.digest, acc.block().header.timestamp_ms))
    }

    fn committed_hash(&self, seq: u64) -> Option<Digest> {
        if seq == self.height() {
            return Some(self.state.head());
        }
        if seq > self.height() {
            return None;
        }
        self.storage.block(seq).ok().flatten().map(|cb| cb.block.hash())
    }

    fn check_view(&self, view: u64) -> Result<(), MessageError> {
        let current = self.view;
        if view < current {
            return Err(MessageError::StaleView { view, current });
        }
        if view > current {
            return Err(MessageError::ViewAhead { view, current });
        }
        if self.view_changing {
            return Err(MessageError::ViewChanging(current));
        }
        Ok(())
    }

    fn check_window(&mut self, seq: u64, from: ReplicaId) -> Result<(), MessageError> {
        let (low, high) = (self.low(), self.high());
        if seq > high {
            let seen = self.seen_above.entry(from).or_insert(0);
            *seen = (*seen).max(seq);
            self.update_state_target();
        }
        if seq <= low || seq > high {
            return Err(MessageError::OutsideWindow { seq, low, high });
        }
        Ok(())
    }

    /// Since when this replica has been waiting without progress (Castro–Liskov's request
    /// timer): for proposals in flight, since the last executed block; for its own client
    /// transactions, since the oldest arrived, a transaction of its pool or a full block last
    /// committed, or the view began, whichever is latest. A primary that ignores some
    /// transactions while committing others below capacity is thus replaced too.
    fn waiting_since(&self) -> Option<u64> {
        let height = self.height();
        // An in-flight seq is timed from the later of the last progress and the moment its
        // pre-prepare arrived: after an idle spell, the first block must not find its timer
        // already run out (which made a backup start a view change alone and fall behind).
        let slots = self
            .slots
            .range(height + 1..)
            .filter(|(_, s)| s.accepted.is_some() || s.waiting.is_some())
            .map(|(_, s)| s.since_ms.unwrap_or(self.last_progress_ms).max(self.last_progress_ms))
            .min();
        let oldest = self.pool.oldest().map(|p| p.arrived_ms);
        let pool = oldest.map(|t| t.max(self.pool_progress_ms));
        match (slots, pool) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_outstanding(&self) -> bool {
        let height = self.height();
        self.pool.len() > 0 || self.slots.range(height + 1..).any(|(_, s)| s.accepted.is_some() || s.waiting.is_some())
    }

    // ---- events ----

    fn on_message(&mut self, m: SignedMessage, out: &mut Vec<Action>) -> Step {
        let nodes = self.cfg.genesis.body.validators.len() + self.cfg.genesis.body.auditors.len();
        if m.from as usize >= nodes {
            return Err(MessageError::UnknownSender(m.from).into());
        }
        if let Message::StateRequest(r) = &m.message {
            if m.from == self.cfg.me {
                return Err(MessageError::FromSelf.into());
            }
            return self.on_state_request(m.from, *r, out);
        }
        let from = rules::validator_sender(m.from, self.n, self.cfg.me)?;
        match &m.message {
            Message::PrePrepare(_) => self.on_pre_prepare(from, m, out),
            Message::Prepare(_) | Message::Commit(_) => self.on_vote(from, m, out),
            Message::Checkpoint(_) => self.on_checkpoint(from, m, out),
            Message::ViewChange(_) => self.on_view_change(from, m, out),
            Message::NewView(_) => self.on_new_view(from, m, out),
            Message::StateResponse(resp) => {
                let resp = resp.clone();
                self.on_state_response(m.from, resp, out)
            }
            Message::Forward(txs) => {
                let txs = txs.clone();
                self.admit(txs, false, out);
                Ok(())
            }
            Message::StateRequest(_) => unreachable!("handled above"),
        }
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) -> Step {
        if now_ms < self.now_ms {
            return Ok(());
        }
        self.now_ms = now_ms;
        if !self.started {
            // After a (re)start, ask every peer for blocks we may have missed.
            self.started = true;
            self.last_progress_ms = now_ms;
            self.pool_progress_ms = now_ms;
            self.last_retransmit_ms = now_ms;
            if self.n > 1 {
                let h = self.height();
                let req =
                    self.sign(Message::StateRequest(StateRequest { from: h + 1, to: h + STATE_CHUNK_BLOCKS_MAX }));
                out.push(Action::Broadcast { message: req });
            }
        }
        if self.view_changing {
            if self.vc_deadline_ms.is_some_and(|d| now_ms >= d) {
                self.start_view_change(self.view + 1, out)?;
            }
        } else if self.waiting_since().is_some_and(|t| now_ms >= t + self.timeout_ms()) {
            self.start_view_change(self.view + 1, out)?;
        }
        if now_ms >= self.last_retransmit_ms + self.retransmit_ms() {
            self.last_retransmit_ms = now_ms;
            let stuck = self.has_outstanding() && now_ms >= self.last_progress_ms + self.retransmit_ms();
            if self.view_changing || stuck {
                self.retransmit(out);
            } else {
                // Client transactions whose forward was lost go again.
                self.forward_pool(false, out);
                if let Some(c) = &self.my_checkpoint {
                    // A heartbeat: an idle cluster still shows a lagging replica how far it is.
                    out.push(Action::Broadcast { message: c.clone() });
                }
            }
        }
        self.maybe_request_state(out);
        Ok(())
    }

    fn retransmit(&mut self, out: &mut Vec<Action>) {
        if self.view_changing {
            if let Some(vc) = &self.my_view_change {
                out.push(Action::Broadcast { message: vc.clone() });
            }
            // A replica changing views alone ignores the others' votes in their (lower) view,
            // and an idle cluster reaches no checkpoint that would show it their blocks.
            self.ask_a_peer_for_blocks(out);
            return;
        }
        let (view, me, primary) = (self.view, self.cfg.me, self.is_primary());
        for slot in self.slots.values() {
            if let Some(acc) = &slot.accepted {
                if primary && acc.view == view && acc.msg.from == me {
                    out.push(Action::Broadcast { message: acc.msg.clone() });
                }
            }
            for m in [&slot.my_prepare, &slot.my_commit].into_iter().flatten() {
                if vote_of(m).map(|v| v.view) == Some(view) {
                    out.push(Action::Broadcast { message: m.clone() });
                }
            }
        }
        if let Some(c) = &self.my_checkpoint {
            out.push(Action::Broadcast { message: c.clone() });
        }
        // Stuck transactions go to every validator (as a PBFT client would re-broadcast them):
        // if the primary ignores them, enough backups time out to change the view.
        self.forward_pool(true, out);
        // Votes may be lost for good once peers moved on: ask one peer for blocks.
        self.ask_a_peer_for_blocks(out);
    }

    /// Asks the next peer in turn for the blocks above our head (a peer with none answers
    /// nothing).
    fn ask_a_peer_for_blocks(&mut self, out: &mut Vec<Action>) {
        if self.n > 1 {
            let h = self.height();
            let peer = self.next_peer();
            let req = self.sign(Message::StateRequest(StateRequest { from: h + 1, to: h + STATE_CHUNK_BLOCKS_MAX }));
            out.push(Action::Send { to: peer, message: req });
        }
    }

    fn next_peer(&mut self) -> NodeId {
        debug_assert!(self.n > 1);
        self.state_peer = (self.state_peer + 1) % self.n;
        if self.state_peer == self.cfg.me as usize {
            self.state_peer = (self.state_peer + 1) % self.n;
        }
        self.state_peer as NodeId
    }

    /// f+1 replicas work in a view above ours: at least one honest replica installed it, so
    /// this replica missed its NEW-VIEW. It asks to move there; the peers answer its VIEW-CHANGE
    /// (stale to them) with their NEW-VIEW.
    fn note_view_ahead(&mut self, from: NodeId, view: u64, out: &mut Vec<Action>) -> Step {
        if (from as usize) >= self.n || from == self.cfg.me {
            return Ok(());
        }
        let seen = self.views_ahead.entry(from).or_insert(0);
        *seen = (*seen).max(view);
        let mut ahead: Vec<u64> = self.views_ahead.values().copied().filter(|v| *v > self.view).collect();
        ahead.sort_unstable_by(|a, b| b.cmp(a));
        match ahead.get(self.f) {
            Some(&v) => {
                self.views_ahead.clear();
                self.start_view_change(v, out)
            }
            None => Ok(()),
        }
    }

    /// A peer sent a message for view `view`, older than ours (or a VIEW-CHANGE for the view
    /// we installed): send it the NEW-VIEW of the last view we installed if that is at least
    /// `view` (rate-limited). Also while we change views again: the peer may be waiting for that
    /// NEW-VIEW alone, and its timer to move on may never start (see `arm_view_change_timer`).
    fn help_stale_peer(&mut self, from: NodeId, view: u64, out: &mut Vec<Action>) {
        if (from as usize) >= self.n || from == self.cfg.me {
            return;
        }
        let Some(nv) = &self.installed_new_view else { return };
        if !matches!(&nv.message, Message::NewView(b) if b.view >= view) {
            return;
        }
        let last = self.helped_ms.get(&from).copied();
        if last.is_some_and(|t| self.now_ms < t + self.retransmit_ms()) {
            return;
        }
        out.push(Action::Send { to: from, message: nv.clone() });
        self.helped_ms.insert(from, self.now_ms);
    }

    fn help_with_commit(&mut self, from: ReplicaId, seq: u64, out: &mut Vec<Action>) {
        let executed = self.executed_at_ms.get(&seq).copied().unwrap_or(0);
        let last = self.helped_ms.get(&from).copied();
        let every = self.retransmit_ms();
        if self.now_ms < executed + every || last.is_some_and(|t| self.now_ms < t + every) {
            return;
        }
        let Some(c) = self.slots.get(&seq).and_then(|s| s.my_commit.clone()) else { return };
        if vote_of(&c).map(|v| v.view) == Some(self.view) {
            out.push(Action::Send { to: from, message: c });
            self.helped_ms.insert(from, self.now_ms);
        }
    }

    // ---- client transactions ----

    fn on_client_txs(&mut self, txs: Vec<Transaction>, out: &mut Vec<Action>) -> Step {
        self.admit(txs, true, out);
        Ok(())
    }

    /// Admits transactions to the pool (client ones report refusals); a backup forwards the
    /// new ones to the primary.
    fn admit(&mut self, txs: Vec<Transaction>, from_client: bool, out: &mut Vec<Action>) {
        let height = self.height();
        let mut fresh = Vec::new();
        for tx in txs {
            let id = tx.id();
            let verdict = if self.pool.by_id.contains_key(&id) || self.state.is_committed(&id) {
                Err(TxError::Duplicate(id))
            } else if self.pool.len() >= self.cfg.pending_txs_max {
                Err(TxError::Conflict(format!(
                    "the pending pool is full ({} transactions); retry later",
                    self.cfg.pending_txs_max
                )))
            } else {
                self.state.check(&tx, height + 1, self.now_ms.max(self.state.timestamp_ms()))
            };
            match verdict {
                Ok(()) => {
                    self.pool.insert(id, tx.clone(), self.now_ms);
                    fresh.push(id);
                }
                Err(reason) if from_client => out.push(Action::Refused { tx: id, reason }),
                Err(_) => {}
            }
        }
        if !self.is_primary() && !self.view_changing && !fresh.is_empty() {
            let primary = self.primary(self.view);
            let now = self.now_ms;
            let mut batch = Vec::new();
            for id in fresh {
                if let Some(p) = self.pool.by_id.get_mut(&id) {
                    p.forwarded_ms = Some(now);
                    batch.push(p.tx.clone());
                }
            }
            out.push(Action::Send { to: primary, message: self.sign(Message::Forward(batch)) });
        }
    }

    /// A backup forwards pool transactions it has not forwarded recently to the primary (or to
    /// every validator).
    fn forward_pool(&mut self, to_all: bool, out: &mut Vec<Action>) {
        if self.is_primary() || self.view_changing || self.pool.len() == 0 {
            return;
        }
        let (now, every) = (self.now_ms, self.retransmit_ms());
        let limit = self.cfg.genesis.body.params.block_txs_max as usize;
        let batch = self.pool.take_forwardable(limit, now, every);
        if batch.is_empty() {
            return;
        }
        let message = self.sign(Message::Forward(batch));
        if to_all {
            out.push(Action::Broadcast { message });
        } else {
            out.push(Action::Send { to: self.primary(self.view), message });
        }
    }

    // ---- normal case ----

    fn propose(&mut self, out: &mut Vec<Action>) -> Step {
        if self.view_changing || !self.is_primary() {
            return Ok(());
        }
        let limit = self.cfg.genesis.body.params.block_txs_max as usize;
        loop {
            let seq = self.next_seq;
            if seq > self.high() {
                return Ok(());
            }
            let Some((prev_hash, prev_ts)) = self.link_at(seq - 1) else {
                return Ok(());
            };
            let Some(oldest_ms) = self.pool.oldest_unproposed().map(|p| p.arrived_ms) else {
                return Ok(());
            };
            let ready = self.pool.unproposed_len() >= self.cfg.batch_txs.max(1)
                || self.now_ms >= oldest_ms + self.cfg.batch_delay_ms;
            if !ready {
                return Ok(());
            }
            // Committed transactions leave the pool as their block executes, so none is taken.
            let txs = self.pool.take_unproposed(limit);
            debug_assert!(txs.iter().all(|tx| !self.state.is_committed(&tx.id())));
            let mut block = Block {
                header: BlockHeader {
                    chain_id: self.cfg.genesis.chain_id().clone(),
                    height: seq,
                    view: self.view,
                    prev_hash,
                    timestamp_ms: self.now_ms.max(prev_ts),
                    tx_root: Digest::ZERO,
                    tx_count: txs.len() as u32,
                    proposer: self.cfg.me,
                },
                txs,
            };
            block.header.tx_root = block.compute_tx_root();
            let msg = self.sign(Message::PrePrepare(PrePrepare { view: self.view, seq, block }));
            self.next_seq = seq + 1;
            self.accept(seq, msg, true, out)?;
        }
    }

    fn on_pre_prepare(&mut self, from: ReplicaId, m: SignedMessage, out: &mut Vec<Action>) -> Step {
        let Message::PrePrepare(pp) = &m.message else { unreachable!() };
        let (view, seq) = (pp.view, pp.seq);
        self.check_view(view)?;
        if from != self.primary(view) {
            return Err(MessageError::NotPrimary { from, view }.into());
        }
        self.check_window(seq, from)?;
        let digest = pp.block.hash();
        if let Some(slot) = self.slots.get(&seq) {
            if let Some(acc) = slot.accepted.as_ref().filter(|a| a.view == view) {
                return Err(if acc.digest == digest {
                    MessageError::Duplicate("pre-prepare")
                } else {
                    MessageError::ConflictingPrePrepare { view, seq }
                }
                .into());
            }
            if let Some(w) = &slot.waiting {
                return Err(if *w == m {
                    MessageError::Duplicate("pre-prepare")
                } else {
                    MessageError::ConflictingPrePrepare { view, seq }
                }
                .into());
            }
        }
        rules::check_block_body(&pp.block, &self.cfg.genesis, seq)?;
        let h = &pp.block.header;
        if h.view != view || h.proposer != from {
            return Err(MessageError::BadHeader("header view or proposer differs from the pre-prepare".into()).into());
        }
        if h.timestamp_ms > self.now_ms.saturating_add(TIMESTAMP_AHEAD_MS_MAX) {
            return Err(MessageError::BadHeader(format!(
                "timestamp {} is more than {TIMESTAMP_AHEAD_MS_MAX} ms ahead of {}",
                h.timestamp_ms, self.now_ms
            ))
            .into());
        }
        if seq <= self.height() && self.committed_hash(seq) != Some(digest) {
            return Err(MessageError::ConflictsWithCommitted { height: seq }.into());
        }
        let now_ms = self.now_ms;
        let slot = self.slots.entry(seq).or_default();
        slot.waiting = Some(m);
        slot.since_ms.get_or_insert(now_ms);
        self.link_waiting(seq, out)
    }

    /// Accepts waiting pre-prepares from `seq` upward whose predecessor is now known.
    fn link_waiting(&mut self, mut seq: u64, out: &mut Vec<Action>) -> Step {
        loop {
            let Some(w) = self.slots.get(&seq).and_then(|s| s.waiting.clone()) else {
                return Ok(());
            };
            let Some((prev_hash, prev_ts)) = self.link_at(seq - 1) else {
                return Ok(());
            };
            let Message::PrePrepare(pp) = &w.message else { unreachable!() };
            let h = &pp.block.header;
            if h.prev_hash != prev_hash || h.timestamp_ms < prev_ts {
                if let Some(s) = self.slots.get_mut(&seq) {
                    s.waiting = None;
                }
                let reason = if h.prev_hash != prev_hash {
                    format!("prev_hash does not link to block {}", seq - 1)
                } else {
                    format!("timestamp {} below the previous block's {prev_ts}", h.timestamp_ms)
                };
                out.push(Action::Dropped { from: w.from, reason: MessageError::BadHeader(reason) });
                return Ok(());
            }
            self.accept(seq, w, false, out)?;
            seq += 1;
        }
    }

    /// Accepts a pre-prepare at `seq` (persisting it first), sends this replica's PREPARE if it
    /// is a backup (or broadcasts the proposal if it is the primary), then advances.
    fn accept(&mut self, seq: u64, msg: SignedMessage, broadcast: bool, out: &mut Vec<Action>) -> Step {
        let acc = Accepted::new(msg);
        self.put(&keys::slot(seq, keys::PRE_PREPARE), &acc.msg)?;
        let (view, digest) = (acc.view, acc.digest);
        let is_backup = self.primary(view) != self.cfg.me;
        if broadcast {
            out.push(Action::Broadcast { message: acc.msg.clone() });
        }
        let now_ms = self.now_ms;
        let slot = self.slots.entry(seq).or_default();
        slot.accepted = Some(acc);
        slot.since_ms.get_or_insert(now_ms);
        slot.waiting = None;
        slot.prepares.retain(|_, m| vote_of(m).is_some_and(|v| v.digest == digest));
        slot.commits.retain(|_, m| vote_of(m).is_some_and(|v| v.digest == digest));
        if is_backup {
            let prepare = self.sign(Message::Prepare(Vote { view, seq, digest }));
            self.put(&keys::slot(seq, keys::PREPARE), &prepare)?;
            let slot = self.slots.entry(seq).or_default();
            slot.my_prepare = Some(prepare.clone());
            slot.prepares.insert(self.cfg.me, prepare.clone());
            out.push(Action::Broadcast { message: prepare });
        }
        self.advance(out)
    }

    fn on_vote(&mut self, from: ReplicaId, m: SignedMessage, out: &mut Vec<Action>) -> Step {
        let is_commit = matches!(m.message, Message::Commit(_));
        let vote = vote_of(&m).expect("on_vote is called with votes");
        self.check_view(vote.view)?;
        if !is_commit && from == self.primary(vote.view) {
            return Err(MessageError::PrepareFromPrimary { view: vote.view }.into());
        }
        self.check_window(vote.seq, from)?;
        if !is_commit && vote.seq <= self.height() {
            // Already executed here: a laggard retransmitting its PREPARE may be missing our
            // COMMIT. Only PREPAREs are answered (never COMMITs), so answers cannot ping-pong.
            self.help_with_commit(from, vote.seq, out);
        }
        let slot = self.slots.entry(vote.seq).or_default();
        let votes = if is_commit { &slot.commits } else { &slot.prepares };
        if votes.contains_key(&from) {
            return Err(MessageError::Duplicate(if is_commit { "commit" } else { "prepare" }).into());
        }
        if let Some(acc) = slot.accepted.as_ref().filter(|a| a.view == vote.view) {
            if acc.digest != vote.digest {
                return Err(MessageError::WrongDigest { seq: vote.seq, got: vote.digest, expected: acc.digest }.into());
            }
        }
        if is_commit {
            slot.commits.insert(from, m);
        } else {
            slot.prepares.insert(from, m);
        }
        self.advance(out)
    }

    /// Sends COMMITs for newly prepared slots (in order, see the module docs) and executes
    /// committed slots in sequence order.
    fn advance(&mut self, out: &mut Vec<Action>) -> Step {
        if self.view_changing {
            return Ok(());
        }
        loop {
            self.send_commits(out)?;
            if !self.execute_ready(out)? {
                return Ok(());
            }
        }
    }

    fn send_commits(&mut self, out: &mut Vec<Action>) -> Step {
        let (view, me) = (self.view, self.cfg.me);
        let primary = self.primary(view);
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for seq in seqs {
            let slot = &self.slots[&seq];
            let Some(acc) = slot.accepted.as_ref().filter(|a| a.view == view) else {
                continue;
            };
            if slot.my_commit.as_ref().and_then(vote_of).is_some_and(|v| v.view == view) {
                continue;
            }
            let digest = acc.digest;
            let matching: Vec<&SignedMessage> = slot
                .prepares
                .iter()
                .filter(|(r, m)| **r != primary && vote_of(m).is_some_and(|v| v.digest == digest))
                .map(|(_, m)| m)
                .collect();
            if matching.len() < 2 * self.f {
                continue;
            }
            if slot.prepared.as_ref().is_none_or(|(v, _)| *v < view) {
                let proof = PreparedProof {
                    pre_prepare: acc.msg.clone(),
                    prepares: matching.into_iter().take(2 * self.f).cloned().collect(),
                };
                self.put(&keys::slot(seq, keys::PREPARED), &proof)?;
                self.slots.get_mut(&seq).expect("slot exists").prepared = Some((view, proof));
            }
            let prev_committed = seq - 1 <= self.height()
                || self
                    .slots
                    .get(&(seq - 1))
                    .and_then(|s| s.my_commit.as_ref())
                    .and_then(vote_of)
                    .is_some_and(|v| v.view == view);
            if !prev_committed {
                continue;
            }
            let commit = self.sign(Message::Commit(Vote { view, seq, digest }));
            self.put(&keys::slot(seq, keys::COMMIT), &commit)?;
            let slot = self.slots.get_mut(&seq).expect("slot exists");
            slot.my_commit = Some(commit.clone());
            slot.commits.insert(me, commit.clone());
            out.push(Action::Broadcast { message: commit });
        }
        Ok(())
    }

    /// Executes the next slot if it is committed locally; returns whether it did.
    fn execute_ready(&mut self, out: &mut Vec<Action>) -> Result<bool, Stop> {
        let seq = self.height() + 1;
        let view = self.view;
        let Some(slot) = self.slots.get(&seq) else {
            return Ok(false);
        };
        let Some(acc) = slot.accepted.as_ref().filter(|a| a.view == view) else {
            return Ok(false);
        };
        if slot.my_commit.as_ref().and_then(vote_of).is_none_or(|v| v.view != view) {
            return Ok(false);
        }
        let votes: Vec<(ReplicaId, crate::crypto::Signature)> = slot
            .commits
            .iter()
            .filter(|(_, m)| vote_of(m).is_some_and(|v| v.digest == acc.digest && v.view == view))
            .map(|(r, m)| (*r, m.signature))
            .collect();
        if votes.len() < self.quorum {
            return Ok(false);
        }
        let certificate = CommitCertificate { view, height: seq, block_hash: acc.digest, votes };
        let block = acc.block().clone();
        assert_eq!(block.header.prev_hash, self.state.head(), "an accepted block must link to the committed head");
        self.execute(CommittedBlock { block, certificate }, out)?;
        Ok(true)
    }

    /// Applies and stores a committed block, then does the bookkeeping that follows.
    fn execute(&mut self, cb: CommittedBlock, out: &mut Vec<Action>) -> Step {
        let receipts = chain::append(&mut self.state, &mut self.storage, &cb)?;
        let height = self.height();
        // Committed transactions leave by id; those the block's nonces supersede by sender;
        // expired ones by height: O(block + removed), never a scan of the pool.
        for tx in &cb.block.txs {
            let id = tx.id();
            if self.pool.by_id.contains_key(&id) {
                self.pool_progress_ms = self.now_ms;
                self.pool.remove(&id);
            }
        }
        // A full block is progress on the backlog too (Castro–Liskov restart the timer whenever a
        // request executes while others wait): the primary works at capacity, so a deep backlog,
        // not the primary, explains why this replica's transactions still wait.
        if cb.block.txs.len() >= self.cfg.genesis.body.params.block_txs_max as usize {
            self.pool_progress_ms = self.now_ms;
        }
        // The others leave as refused, so that whoever submitted them here (a client of this
        // node, or a peer that forwarded them) learns they will never commit: a copy of a nonce
        // another transaction took, or past its expiry.
        let senders: BTreeSet<PublicKey> = cb.block.txs.iter().map(|tx| tx.body.sender).collect();
        let mut refused = Vec::new();
        for sender in senders {
            self.pool.remove_superseded(sender, self.state.nonce(&sender), &mut refused);
        }
        self.pool.remove_expired(height, &mut refused);
        self.executed_at_ms.insert(height, self.now_ms);
        self.last_progress_ms = self.now_ms;
        if !self.view_changing {
            self.consecutive_view_changes = 0;
        }
        self.next_seq = self.next_seq.max(height + 1);
        let digest = cb.block.hash();
        out.push(Action::Committed { block: cb, receipts });
        out.extend(refused.into_iter().map(|(tx, reason)| Action::Refused { tx, reason }));
        if height.is_multiple_of(self.interval) {
            let cp = self.sign(Message::Checkpoint(Checkpoint { seq: height, digest }));
            self.my_checkpoint = Some(cp.clone());
            self.record_checkpoint(self.cfg.me, cp.clone());
            out.push(Action::Broadcast { message: cp });
            self.try_stabilize()?;
        }
        Ok(())
    }

    // ---- checkpoints ----

    fn record_checkpoint(&mut self, from: ReplicaId, m: SignedMessage) {
        let Message::Checkpoint(cp) = &m.message else {
            return;
        };
        let seq = cp.seq;
        let newer = self
            .latest_checkpoint
            .get(&from)
            .is_none_or(|old| matches!(&old.message, Message::Checkpoint(o) if o.seq < seq));
        if newer {
            self.latest_checkpoint.insert(from, m.clone());
        }
        if seq > self.low() && seq <= self.high() {
            self.checkpoint_votes.entry(seq).or_default().entry(from).or_insert(m);
        }
    }

    fn on_checkpoint(&mut self, from: ReplicaId, m: SignedMessage, _out: &mut Vec<Action>) -> Step {
        let Message::Checkpoint(cp) = &m.message else { unreachable!() };
        if cp.seq == 0 || cp.seq % self.interval != 0 {
            return Err(MessageError::BadCheckpoint(format!("seq {} is not a checkpoint", cp.seq)).into());
        }
        if cp.seq <= self.low() {
            return Err(MessageError::OutsideWindow { seq: cp.seq, low: self.low(), high: self.high() }.into());
        }
        self.record_checkpoint(from, m);
        self.update_state_target();
        self.try_stabilize()?;
        Ok(())
    }

    /// The highest checkpoint a quorum agrees on and we executed becomes stable.
    fn try_stabilize(&mut self) -> Step {
        let height = self.height();
        let mut candidates: BTreeMap<(u64, Digest), BTreeMap<ReplicaId, SignedMessage>> = BTreeMap::new();
        let all = self.checkpoint_votes.values().flat_map(|m| m.iter()).chain(self.latest_checkpoint.iter());
        for (r, m) in all {
            if let Message::Checkpoint(cp) = &m.message {
                if cp.seq > self.low() && cp.seq <= height {
                    candidates.entry((cp.seq, cp.digest)).or_default().insert(*r, m.clone());
                }
            }
        }
        let best = candidates
            .into_iter()
            .rev()
            .filter(|(_, v)| v.len() >= self.quorum)
            .find(|((seq, digest), _)| self.committed_hash(*seq) == Some(*digest));
        let Some(((seq, digest), proof)) = best else {
            return Ok(());
        };
        self.set_stable(StableCheckpoint {
            checkpoint: Checkpoint { seq, digest },
            proof: proof.into_values().collect(),
        })
    }

    /// Makes `stable` the stable checkpoint and truncates the log below it.
    fn set_stable(&mut self, stable: StableCheckpoint) -> Step {
        let seq = stable.checkpoint.seq;
        assert!(seq > self.low(), "stable checkpoints only advance");
        self.put(&keys::META_STABLE, &stable)?;
        self.storage.prune_consensus_below(&keys::slot_floor(seq + 1))?;
        self.stable = stable;
        self.slots = self.slots.split_off(&(seq + 1));
        self.checkpoint_votes = self.checkpoint_votes.split_off(&(seq + 1));
        self.executed_at_ms = self.executed_at_ms.split_off(&(seq + 1));
        self.next_seq = self.next_seq.max(seq + 1);
        self.seen_above.retain(|_, s| *s > seq + self.window);
        if self.height() < seq {
            self.state_target = self.state_target.max(seq);
        }
        Ok(())
    }

    // ---- state transfer ----

    /// The height f+1 replicas show they have reached (so at least one honest one has).
    fn update_state_target(&mut self) {
        // A replica with a message at seq s has a stable checkpoint of at least s - window.
        let mut per_replica: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        for (r, m) in &self.latest_checkpoint {
            if let Message::Checkpoint(c) = &m.message {
                per_replica.insert(*r, c.seq);
            }
        }
        for (r, s) in &self.seen_above {
            let e = per_replica.entry(*r).or_insert(0);
            *e = (*e).max(s.saturating_sub(self.window));
        }
        per_replica.remove(&self.cfg.me);
        let mut v: Vec<u64> = per_replica.into_values().collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&target) = v.get(self.f) {
            self.state_target = self.state_target.max(target);
        }
    }

    fn maybe_request_state(&mut self, out: &mut Vec<Action>) {
        let height = self.height();
        if self.state_target <= height || self.n < 2 {
            return;
        }
        let due = self.last_state_request_ms.is_none_or(|t| self.now_ms >= t + self.retransmit_ms());
        if !due {
            return;
        }
        self.last_state_request_ms = Some(self.now_ms);
        // Up to a full chunk, past the target: the peer serves up to its committed head.
        let to = height + STATE_CHUNK_BLOCKS_MAX;
        let peer = self.next_peer();
        let req = self.sign(Message::StateRequest(StateRequest { from: height + 1, to }));
        out.push(Action::Send { to: peer, message: req });
    }

    fn on_state_request(&mut self, from: NodeId, r: StateRequest, out: &mut Vec<Action>) -> Step {
        let height = self.height();
        if r.from == 0 || r.from > r.to || r.from > height {
            return Err(MessageError::NothingToServe { from: r.from, to: r.to, height }.into());
        }
        let to = r.to.min(height).min(r.from + STATE_CHUNK_BLOCKS_MAX - 1);
        let mut blocks = Vec::new();
        for h in r.from..=to {
            let cb = self.storage.block(h)?.ok_or_else(|| StorageError::Corrupt {
                what: format!("block {h}"),
                reason: "missing below the head".into(),
            })?;
            blocks.push(cb);
        }
        out.push(Action::Send { to: from, message: self.sign(Message::StateResponse(StateResponse { blocks })) });
        Ok(())
    }

    /// Applies the blocks of a state response. One that brought blocks is followed at once by a
    /// request for the next chunk to the same peer, until a response brings none: the target
    /// (a stable checkpoint) is only a floor, and an idle cluster sends nothing else that would
    /// show a replica the blocks committed after it.
    fn on_state_response(&mut self, from: NodeId, resp: StateResponse, out: &mut Vec<Action>) -> Step {
        let mut applied = 0usize;
        for cb in resp.blocks.into_iter().take(STATE_CHUNK_BLOCKS_MAX as usize) {
            let height = self.height();
            let h = cb.block.header.height;
            if h <= height {
                if self.committed_hash(h) != Some(cb.block.hash()) {
                    return Err(MessageError::ConflictsWithCommitted { height: h }.into());
                }
                continue;
            }
            rules::check_committed_block(
                &cb,
                &self.cfg.genesis,
                height,
                &self.state.head(),
                self.state.timestamp_ms(),
            )?;
            self.execute(cb, out)?;
            applied += 1;
        }
        if applied > 0 {
            let h = self.height();
            if !self.view_changing {
                self.link_waiting(h + 1, out)?;
                self.advance(out)?;
            }
            self.try_stabilize()?;
            if from != self.cfg.me && (from as usize) < self.n {
                self.last_state_request_ms = Some(self.now_ms);
                let h = self.height();
                let req =
                    self.sign(Message::StateRequest(StateRequest { from: h + 1, to: h + STATE_CHUNK_BLOCKS_MAX }));
                out.push(Action::Send { to: from, message: req });
            }
        }
        Ok(())
    }

    // ---- view change ----

    fn start_view_change(&mut self, target: u64, out: &mut Vec<Action>) -> Step {
        assert!(target > self.view || (target == self.view && !self.view_changing));
        self.view = target;
        self.view_changing = true;
        self.new_view_msg = None;
        for slot in self.slots.values_mut() {
            slot.prepares.clear();
            slot.commits.clear();
            slot.waiting = None;
        }
        let prepared: Vec<PreparedProof> = self
            .slots
            .range(self.low() + 1..)
            .filter_map(|(_, s)| s.prepared.as_ref().map(|(_, p)| p.clone()))
            .collect();
        let vc = ViewChange {
            new_view: target,
            checkpoint: self.stable.checkpoint,
            checkpoint_proof: self.stable.proof.clone(),
            prepared,
        };
        let msg = self.sign(Message::ViewChange(vc));
        self.my_view_change = Some(msg.clone());
        self.persist_meta()?;
        self.view_changes.insert(self.cfg.me, msg.clone());
        self.consecutive_view_changes = self.consecutive_view_changes.saturating_add(1);
        self.vc_deadline_ms = None;
        self.arm_view_change_timer();
        out.push(Action::Broadcast { message: msg });
        self.try_new_view(out)
    }

    fn on_view_change(&mut self, from: ReplicaId, m: SignedMessage, out: &mut Vec<Action>) -> Step {
        let Message::ViewChange(vc) = &m.message else { unreachable!() };
        let new_view = vc.new_view;
        let current = self.view;
        if new_view < current || (new_view == current && !self.view_changing) {
            return Err(MessageError::StaleView { view: new_view, current }.into());
        }
        let known = self.view_changes.get(&from).and_then(|old| match &old.message {
            Message::ViewChange(o) => Some(o.new_view),
            _ => None,
        });
        if known.is_some_and(|v| v >= new_view) {
            return Err(MessageError::Duplicate("view change").into());
        }
        rules::check_view_change(vc, &self.cfg.genesis)?;
        self.view_changes.insert(from, m);
        // f+1 replicas want a higher view: at least one honest one timed out, so join.
        let mut higher: Vec<u64> = self
            .view_changes
            .iter()
            .filter(|(r, _)| **r != self.cfg.me)
            .filter_map(|(_, m)| match &m.message {
                Message::ViewChange(v) if v.new_view > self.view => Some(v.new_view),
                _ => None,
            })
            .collect();
        higher.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&v) = higher.get(self.f) {
            self.start_view_change(v, out)?;
        }
        self.arm_view_change_timer();
        self.try_new_view(out)
    }

    /// Castro–Liskov §4.5.2: the timer that moves on to the next view starts only once a quorum
    /// asks for this one. A replica that timed out alone waits one view ahead instead of
    /// escalating alone, and rejoins when the others move.
    fn arm_view_change_timer(&mut self) {
        if self.view_changing && self.vc_deadline_ms.is_none() && self.view_changes_for(self.view).len() >= self.quorum
        {
            self.vc_deadline_ms = Some(self.now_ms + self.timeout_ms());
        }
    }

    fn view_changes_for(&self, view: u64) -> Vec<SignedMessage> {
        self.view_changes
            .values()
            .filter(|m| matches!(&m.message, Message::ViewChange(v) if v.new_view == view))
            .cloned()
            .collect()
    }

    fn try_new_view(&mut self, out: &mut Vec<Action>) -> Step {
        if !self.view_changing || !self.is_primary() {
            return Ok(());
        }
        let vcs = self.view_changes_for(self.view);
        if vcs.len() < self.quorum {
            return Ok(());
        }
        let refs: Vec<&ViewChange> = vcs
            .iter()
            .filter_map(|m| match &m.message {
                Message::ViewChange(v) => Some(v),
                _ => None,
            })
            .collect();
        let plan = rules::compute_new_view(&refs, &self.cfg.genesis)?;
        let view = self.view;
        let pre_prepares = plan
            .blocks
            .iter()
            .map(|b| self.sign(Message::PrePrepare(PrePrepare { view, seq: b.header.height, block: b.clone() })))
            .collect();
        let nv = self.sign(Message::NewView(NewView { view, view_changes: vcs, pre_prepares }));
        self.install_new_view(nv, plan, out)
    }

    fn on_new_view(&mut self, from: ReplicaId, m: SignedMessage, out: &mut Vec<Action>) -> Step {
        let Message::NewView(nv) = &m.message else { unreachable!() };
        let current = self.view;
        if nv.view < current || (nv.view == current && !self.view_changing) {
            return Err(MessageError::StaleView { view: nv.view, current }.into());
        }
        if from != self.primary(nv.view) {
            return Err(MessageError::NotPrimary { from, view: nv.view }.into());
        }
        let mut refs = Vec::new();
        let mut last: Option<NodeId> = None;
        for vm in &nv.view_changes {
            let Message::ViewChange(vc) = &vm.message else {
                return Err(MessageError::UnexpectedNested { got: vm.message.kind(), expected: "view_change" }.into());
            };
            if vc.new_view != nv.view || (vm.from as usize) >= self.n || last.is_some_and(|l| l >= vm.from) {
                return Err(MessageError::BadNewView(
                    "view changes must be for this view, from distinct validators, sorted".into(),
                )
                .into());
            }
            last = Some(vm.from);
            rules::check_view_change(vc, &self.cfg.genesis)?;
            refs.push(vc);
        }
        if refs.len() < self.quorum {
            return Err(
                MessageError::BadNewView(format!("{} view changes, a quorum is {}", refs.len(), self.quorum)).into()
            );
        }
        let plan = rules::compute_new_view(&refs, &self.cfg.genesis)?;
        if nv.pre_prepares.len() != plan.blocks.len() {
            return Err(MessageError::BadNewView("re-proposals differ from what the view changes imply".into()).into());
        }
        for (pm, block) in nv.pre_prepares.iter().zip(&plan.blocks) {
            let ok = pm.from == from
                && matches!(&pm.message, Message::PrePrepare(pp)
                    if pp.view == nv.view && pp.seq == block.header.height && pp.block == *block);
            if !ok {
                return Err(
                    MessageError::BadNewView("re-proposals differ from what the view changes imply".into()).into()
                );
            }
        }
        for block in &plan.blocks {
            let h = block.header.height;
            if h <= self.height() && self.committed_hash(h) != Some(block.hash()) {
                return Err(MessageError::ConflictsWithCommitted { height: h }.into());
            }
        }
        self.install_new_view(m, plan, out)
    }

    /// Enters the view of `nv` (persisting it first), re-accepts its re-proposals, and resumes.
    fn install_new_view(&mut self, nv: SignedMessage, plan: NewViewPlan, out: &mut Vec<Action>) -> Step {
        let Message::NewView(body) = &nv.message else { unreachable!() };
        let view = body.view;
        let pre_prepares = body.pre_prepares.clone();
        self.view = view;
        self.view_changing = false;
        self.my_view_change = None;
        self.new_view_msg = Some(nv.clone());
        self.installed_new_view = Some(nv.clone());
        self.persist_meta()?;
        if self.is_primary() {
            out.push(Action::Broadcast { message: nv });
        }
        self.view_changes.retain(|_, m| matches!(&m.message, Message::ViewChange(v) if v.new_view > view));
        self.vc_deadline_ms = None;
        self.last_progress_ms = self.now_ms;
        self.pool_progress_ms = self.now_ms;
        for slot in self.slots.values_mut() {
            slot.prepares.clear();
            slot.commits.clear();
            slot.waiting = None;
        }
        if plan.stable.checkpoint.seq > self.low() {
            self.set_stable(plan.stable.clone())?;
        }
        for pm in pre_prepares {
            let Message::PrePrepare(pp) = &pm.message else {
                continue;
            };
            if pp.seq <= self.low() {
                continue;
            }
            let seq = pp.seq;
            self.accept(seq, pm, false, out)?;
        }
        let end = plan.stable.checkpoint.seq + plan.blocks.len() as u64;
        self.next_seq = end.max(self.height()).max(self.low()) + 1;
        let in_plan: BTreeSet<TxId> = plan.blocks.iter().flat_map(|b| b.txs.iter().map(|t| t.id())).collect();
        self.pool.reset_proposed(&in_plan);
        self.forward_pool(false, out);
        if !self.is_primary() {
            // Blocks committed while this replica was changing views are not re-proposed: ask
            // the new primary for any (it answers only if it has some).
            let h = self.height();
            let req = self.sign(Message::StateRequest(StateRequest { from: h + 1, to: h + STATE_CHUNK_BLOCKS_MAX }));
            out.push(Action::Send { to: self.primary(view), message: req });
        }
        self.advance(out)
    }
}
