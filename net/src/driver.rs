//! The driver: checks peer messages' signatures in batches, feeds the replica, and carries out
//! its actions.
//!
//! Two stages. [`verify_inbound`] (a tokio task) collects messages from the transport into
//! batches and verifies every signature they carry in one [`BatchVerifier::verify_batch`] call
//! on a blocking thread; messages with a bad signature are dropped with a reason. [`run`] (a
//! thread of its own, because the replica writes storage synchronously) takes inputs from one
//! bounded channel and carries out the replica's actions over the transport.

use crate::core::Core;
pub use crate::core::CoreStatus;
use crate::limits::{PENDING_TXS_TRACKED_MAX, REFUSED_TXS_REMEMBERED_MAX, VERIFY_BATCH_MESSAGES_MAX};
use crate::metrics::Metrics;
use crate::transport::{Inbound, Transport};
use crate::verify::Verification;
use engine::crypto::SigningKey;
use engine::genesis::Genesis;
use engine::pbft::message::{Message, NodeId, SignedMessage, StateResponse};
use engine::pbft::{Action, Event, MessageError};
use engine::state::TxError;
use engine::tx::{Transaction, TxId};
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

/// A read run on the driver thread against the replica or follower.
pub(crate) type Query = Box<dyn FnOnce(&dyn Core) + Send>;

/// One input of the driver.
pub(crate) enum DriverInput {
    /// Peer messages whose signatures all verified.
    Messages(Vec<SignedMessage>),
    /// Client transactions (stateless checks and signatures passed); the reply lists those the
    /// replica refused at once.
    Transactions {
        /// The transactions.
        txs: Vec<Transaction>,
        /// Where to send the immediate refusals.
        reply: oneshot::Sender<Vec<(TxId, TxError)>>,
    },
    /// The system clock, in milliseconds since the Unix epoch.
    Tick(u64),
    /// A read.
    Query(Query),
    /// Stop: drop the replica (closing its storage) and return.
    Shutdown,
}

/// Milliseconds since the Unix epoch, from the system clock (the only clock the node reads).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What the API knows about transactions that are not (or not yet) in a block.
#[derive(Debug, Default)]
pub struct TxTracker {
    inner: Mutex<TrackerInner>,
}

#[derive(Debug, Default)]
struct TrackerInner {
    pending: HashSet<TxId>,
    refused: HashMap<TxId, TxError>,
    refused_order: VecDeque<TxId>,
}

/// A transaction's fate as far as the tracker knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tracked {
    /// Accepted, not yet committed.
    Pending,
    /// Refused before inclusion.
    Refused(TxError),
    /// Unknown to the tracker (maybe committed: ask the storage).
    Unknown,
}

impl TxTracker {
    /// Marks `ids` pending. False (and nothing marked) when that would track too many.
    pub fn add_pending(&self, ids: &[TxId]) -> bool {
        let mut t = self.inner.lock();
        if t.pending.len() + ids.len() > PENDING_TXS_TRACKED_MAX {
            return false;
        }
        t.pending.extend(ids.iter().copied());
        true
    }

    /// The transaction left the pending state by being committed.
    pub fn committed(&self, id: &TxId) {
        self.inner.lock().pending.remove(id);
    }

    /// The transaction was refused before inclusion.
    pub fn refused(&self, id: TxId, reason: TxError) {
        let mut t = self.inner.lock();
        t.pending.remove(&id);
        if t.refused.insert(id, reason).is_none() {
            t.refused_order.push_back(id);
        }
        while t.refused_order.len() > REFUSED_TXS_REMEMBERED_MAX {
            if let Some(old) = t.refused_order.pop_front() {
                t.refused.remove(&old);
            }
        }
    }

    /// Forgets a pending mark (the submission failed before reaching the replica).
    pub fn forget(&self, id: &TxId) {
        self.inner.lock().pending.remove(id);
    }

    /// What the tracker knows.
    pub fn get(&self, id: &TxId) -> Tracked {
        let t = self.inner.lock();
        if t.pending.contains(id) {
            return Tracked::Pending;
        }
        match t.refused.get(id) {
            Some(reason) => Tracked::Refused(reason.clone()),
            None => Tracked::Unknown,
        }
    }
}

/// The stable machine-readable name of a transaction refusal.
pub fn tx_error_code(e: &TxError) -> &'static str {
    match e {
        TxError::BadSignature { .. } => "bad_signature",
        TxError::WrongSignatureCount { .. } => "wrong_signature_count",
        TxError::StaleNonce { .. } => "stale_nonce",
        TxError::Expired { .. } => "expired",
        TxError::UnknownParticipant { .. } => "unknown_participant",
        TxError::RoleNotAllowed { .. } => "role_not_allowed",
        TxError::Malformed { .. } => "malformed",
        TxError::Oversize { .. } => "oversize",
        TxError::NotFound { .. } => "not_found",
        TxError::Conflict(_) => "conflict",
        TxError::Duplicate(_) => "duplicate",
    }
}

/// The metrics label of a dropped message's reason.
pub fn message_error_label(e: &MessageError) -> &'static str {
    match e {
        MessageError::UnknownSender(_) => "unknown_sender",
        MessageError::NotValidator(_) => "not_validator",
        MessageError::FromSelf => "from_self",
        MessageError::NotPrimary { .. } => "not_primary",
        MessageError::PrepareFromPrimary { .. } => "prepare_from_primary",
        MessageError::StaleView { .. } => "stale_view",
        MessageError::ViewAhead { .. } => "view_ahead",
        MessageError::ViewChanging(_) => "view_changing",
        MessageError::OutsideWindow { .. } => "outside_window",
        MessageError::ConflictingPrePrepare { .. } => "conflicting_pre_prepare",
        MessageError::Duplicate(_) => "duplicate",
        MessageError::WrongDigest { .. } => "wrong_digest",
        MessageError::BadHeader(_) => "bad_header",
        MessageError::BadTransaction { .. } => "bad_transaction",
        MessageError::ConflictsWithCommitted { .. } => "conflicts_with_committed",
        MessageError::BadCheckpoint(_) => "bad_checkpoint",
        MessageError::BadViewChange(_) => "bad_view_change",
        MessageError::BadNewView(_) => "bad_new_view",
        MessageError::UnexpectedNested { .. } => "unexpected_nested",
        MessageError::BadCertificate(_) => "bad_certificate",
        MessageError::Unlinked { .. } => "unlinked",
        MessageError::NothingToServe { .. } => "nothing_to_serve",
        MessageError::NotAccepted(_) => "not_accepted",
        MessageError::Halted => "halted",
    }
}

/// Splits a batch of peer messages into those whose every signature verifies and those to drop.
fn check_messages(
    batch: Vec<Inbound>,
    genesis: &Genesis,
    verification: &Verification,
    metrics: &Metrics,
) -> Vec<SignedMessage> {
    let mut checks = Vec::new();
    let mut spans = Vec::with_capacity(batch.len());
    let mut candidates = Vec::with_capacity(batch.len());
    for inbound in batch {
        match engine::pbft::signature_checks(&inbound.message, genesis) {
            Ok(c) => {
                spans.push(checks.len()..checks.len() + c.len());
                checks.extend(c);
                candidates.push(inbound.message);
            }
            Err(e) => {
                debug!(from = inbound.from, via = inbound.via, error = %e, "message refused before verification");
                metrics.messages_dropped.inc(message_error_label(&e));
            }
        }
    }
    let verdicts = verification.verify(&checks);
    let mut good = Vec::with_capacity(candidates.len());
    for (message, span) in candidates.into_iter().zip(spans) {
        if verdicts[span].iter().all(|ok| *ok) {
            good.push(message);
        } else {
            warn!(from = message.from, kind = message.message.kind(), "dropped a message with a bad signature");
            metrics.messages_dropped.inc("bad_signature");
        }
    }
    good
}

/// The signature-checking stage between the transport and the driver.
pub(crate) async fn verify_inbound(
    mut inbound: mpsc::Receiver<Inbound>,
    driver: mpsc::Sender<DriverInput>,
    genesis: Arc<Genesis>,
    verification: Arc<Verification>,
    metrics: Arc<Metrics>,
) {
    while let Some(first) = inbound.recv().await {
        let mut batch = vec![first];
        while batch.len() < VERIFY_BATCH_MESSAGES_MAX {
            match inbound.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let (g, v, m) = (genesis.clone(), verification.clone(), metrics.clone());
        let good = match tokio::task::spawn_blocking(move || check_messages(batch, &g, &v, &m)).await {
            Ok(good) => good,
            Err(e) => {
                error!(error = %e, "signature check task failed");
                continue;
            }
        };
        if !good.is_empty() && driver.send(DriverInput::Messages(good)).await.is_err() {
            return;
        }
    }
}

/// A replica step longer than this is logged and counted: consensus timers run meanwhile.
const SLOW_STEP_MS: u64 = 100;

/// Feeds `event` to the core, timing the step.
fn step(core: &mut dyn Core, event: Event, metrics: &Metrics) -> Vec<Action> {
    let label = match &event {
        Event::Message(m) => m.message.kind(),
        Event::Transactions(_) => "transactions",
        Event::Tick { .. } => "tick",
    };
    let started = std::time::Instant::now();
    let actions = core.handle(event);
    let ms = started.elapsed().as_millis() as u64;
    metrics.driver_step_ms_max.fetch_max(ms, Ordering::Relaxed);
    if ms > SLOW_STEP_MS {
        metrics.driver_slow_steps.inc(label);
        warn!(event = label, ms, "slow replica step");
    }
    actions
}

/// What the driver needs besides the core.
pub(crate) struct DriverContext {
    pub me: NodeId,
    pub key: SigningKey,
    pub genesis: Arc<Genesis>,
    pub transport: Arc<Transport>,
    pub metrics: Arc<Metrics>,
    pub tracker: Arc<TxTracker>,
    pub status: Arc<RwLock<CoreStatus>>,
    /// Committed blocks' anchors, for the index thread.
    pub index_feed: std::sync::mpsc::Sender<index::view::BlockRecords>,
}

impl DriverContext {
    fn execute(&self, actions: Vec<Action>) -> bool {
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    self.transport.send(to, &message);
                }
                Action::Broadcast { message } => self.transport.broadcast_validators(&message),
                Action::Committed { block, receipts } => self.on_committed(block, receipts),
                Action::Refused { tx, reason } => {
                    self.metrics.txs_refused.inc(tx_error_code(&reason));
                    self.tracker.refused(tx, reason);
                }
                Action::Dropped { from, reason } => {
                    debug!(from, error = %reason, "replica dropped a message");
                    self.metrics.messages_dropped.inc(message_error_label(&reason));
                }
                Action::Halted { reason } => {
                    error!(%reason, "the replica halted after a storage failure; the node stops");
                    return false;
                }
            }
        }
        true
    }

    fn on_committed(&self, block: engine::block::CommittedBlock, receipts: Vec<engine::state::Receipt>) {
        let height = block.block.header.height;
        let mut applied = 0u64;
        for r in &receipts {
            self.tracker.committed(&r.tx);
            if matches!(r.outcome, engine::state::Outcome::Applied) {
                applied += 1;
            }
        }
        self.metrics.committed_height.fetch_max(height, Ordering::Relaxed);
        self.metrics.txs_committed.fetch_add(applied, Ordering::Relaxed);
        self.metrics.txs_rejected.fetch_add(receipts.len() as u64 - applied, Ordering::Relaxed);
        info!(height, txs = receipts.len(), hash = %block.block.hash(), "committed");
        match index::view::BlockRecords::from_committed(&block, &receipts) {
            // A closed feed means the node is stopping.
            Ok(records) => drop(self.index_feed.send(records)),
            Err(e) => {
                self.metrics.index_errors.inc("extract");
                error!(height, error = %e, "cannot index a committed block");
            }
        }
        // Validators push each committed block to the auditors, which also poll for it.
        let validators = self.genesis.body.validators.len();
        if (self.me as usize) < validators && !self.genesis.body.auditors.is_empty() {
            let message = SignedMessage::sign(
                self.genesis.chain_id(),
                self.me,
                Message::StateResponse(StateResponse { blocks: vec![block] }),
                &self.key,
            );
            let bytes = bytes::Bytes::from(message.encode());
            for id in validators..validators + self.genesis.body.auditors.len() {
                self.transport.send_bytes(id as NodeId, bytes.clone());
            }
        }
    }
}

/// The driver loop: runs until [`DriverInput::Shutdown`], the channel closes, or the replica
/// halts. Owns the core; dropping it closes the storage.
pub(crate) fn run(mut core: Box<dyn Core>, mut inputs: mpsc::Receiver<DriverInput>, ctx: DriverContext) {
    let mut last_now_ms = 0u64;
    while let Some(input) = inputs.blocking_recv() {
        let running = match input {
            DriverInput::Messages(messages) => {
                let mut running = true;
                for m in messages {
                    running = ctx.execute(step(&mut *core, Event::Message(m), &ctx.metrics));
                    if !running {
                        break;
                    }
                }
                running
            }
            DriverInput::Transactions { txs, reply } => {
                let ids: HashSet<TxId> = txs.iter().map(|t| t.id()).collect();
                let actions = step(&mut *core, Event::Transactions(txs), &ctx.metrics);
                let refusals = actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::Refused { tx, reason } if ids.contains(tx) => Some((*tx, reason.clone())),
                        _ => None,
                    })
                    .collect();
                let running = ctx.execute(actions);
                let _ = reply.send(refusals);
                running
            }
            DriverInput::Tick(now) => {
                // The replica requires time never to go backwards; the system clock may.
                last_now_ms = last_now_ms.max(now);
                ctx.execute(step(&mut *core, Event::Tick { now_ms: last_now_ms }, &ctx.metrics))
            }
            DriverInput::Query(query) => {
                query(&*core);
                true
            }
            DriverInput::Shutdown => false,
        };
        *ctx.status.write() = core.status();
        if !running {
            break;
        }
    }
    info!("driver stopped");
}
