//! Why a replica refuses a message, and why it cannot open.
//!
//! Grouped as rustls groups its errors: [`MessageError`] is what a peer got wrong (the driver
//! logs it, counts it, and may score the peer down); [`ReplicaError`] is what is wrong locally
//! (the operator must act).

use super::message::{NodeId, ReplicaId};
use crate::block::CertificateError;
use crate::codec::Digest;
use crate::state::TxError;
use crate::storage::StorageError;

/// Why a message was dropped. Every refused message yields an `Action::Dropped` with one of
/// these; none of them panics the replica or grows its memory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The sender is not a node of the genesis.
    #[error("node {0} is not in the genesis")]
    UnknownSender(NodeId),
    /// An auditor (or a nested message from one) tried to take part in consensus.
    #[error("node {0} is not a validator and may only send state requests")]
    NotValidator(NodeId),
    /// A message from this replica itself came back.
    #[error("message from this replica itself")]
    FromSelf,
    /// A proposal or new view from a replica that is not the primary of its view.
    #[error("replica {from} is not the primary of view {view}")]
    NotPrimary {
        /// The sender.
        from: ReplicaId,
        /// The view of the message.
        view: u64,
    },
    /// The primary sent a PREPARE (it only pre-prepares).
    #[error("the primary of view {view} sent a PREPARE")]
    PrepareFromPrimary {
        /// The view.
        view: u64,
    },
    /// A message for a view older than ours.
    #[error("message for view {view}, this replica is in view {current}")]
    StaleView {
        /// The message's view.
        view: u64,
        /// Ours.
        current: u64,
    },
    /// A message for a view newer than ours (we learn of new views through NEW-VIEW).
    #[error("message for view {view}, this replica is in view {current}")]
    ViewAhead {
        /// The message's view.
        view: u64,
        /// Ours.
        current: u64,
    },
    /// A normal-case message while this replica is changing views.
    #[error("normal-case message during a view change to view {0}")]
    ViewChanging(u64),
    /// The sequence number is outside the watermarks.
    #[error("sequence number {seq} outside the window ({low}, {high}]")]
    OutsideWindow {
        /// The message's sequence number.
        seq: u64,
        /// Low watermark (the stable checkpoint).
        low: u64,
        /// High watermark.
        high: u64,
    },
    /// A second, different PRE-PREPARE for a (view, seq) that already has one.
    #[error("a different pre-prepare for view {view} seq {seq} is already accepted")]
    ConflictingPrePrepare {
        /// The view.
        view: u64,
        /// The sequence number.
        seq: u64,
    },
    /// The same message (or vote from the same replica) again.
    #[error("duplicate {0}")]
    Duplicate(&'static str),
    /// A vote for another block than the accepted pre-prepare.
    #[error("vote for {got} at seq {seq}, the accepted pre-prepare is {expected}")]
    WrongDigest {
        /// The sequence number.
        seq: u64,
        /// The vote's digest.
        got: Digest,
        /// The accepted block's hash.
        expected: Digest,
    },
    /// A proposed block's header is inconsistent.
    #[error("bad block header: {0}")]
    BadHeader(String),
    /// A proposed block carries a transaction that fails stateless validation.
    #[error("transaction {index} of the block is invalid: {error}")]
    BadTransaction {
        /// Index in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// A block conflicts with one this replica already committed.
    #[error("block at height {height} conflicts with the committed one")]
    ConflictsWithCommitted {
        /// The height.
        height: u64,
    },
    /// A checkpoint message or proof is malformed.
    #[error("bad checkpoint: {0}")]
    BadCheckpoint(String),
    /// A VIEW-CHANGE is malformed (proofs of the wrong shape, wrong seqs).
    #[error("bad view change: {0}")]
    BadViewChange(String),
    /// A NEW-VIEW does not match what its view changes imply.
    #[error("bad new view: {0}")]
    BadNewView(String),
    /// A nested message is not of the kind its container requires.
    #[error("nested message of kind {got} where {expected} is required")]
    UnexpectedNested {
        /// What was found.
        got: &'static str,
        /// What is allowed there.
        expected: &'static str,
    },
    /// A state response block's certificate is malformed.
    #[error("bad commit certificate: {0}")]
    BadCertificate(#[from] CertificateError),
    /// A state response block does not extend the chain.
    #[error("state response block {height} does not extend the chain")]
    Unlinked {
        /// Its height.
        height: u64,
    },
    /// A state request that names no block this replica has.
    #[error("state request {from}..={to} names no block this node has (height {height})")]
    NothingToServe {
        /// First height asked for.
        from: u64,
        /// Last height asked for.
        to: u64,
        /// Our height.
        height: u64,
    },
    /// The message kind is not accepted by this kind of node.
    #[error("{0} messages are not accepted here")]
    NotAccepted(&'static str),
    /// The replica has halted after a storage failure and takes no more input.
    #[error("the replica has halted")]
    Halted,
}

/// Why a replica (or follower) could not open.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The genesis does not verify or is malformed.
    #[error("invalid genesis: {0}")]
    Genesis(#[from] crate::genesis::GenesisError),
    /// The data folder belongs to another chain.
    #[error("the stored genesis ({stored}) differs from the configured one ({configured}): wrong data folder?")]
    GenesisMismatch {
        /// Hash of the stored genesis.
        stored: Digest,
        /// Hash of the configured genesis.
        configured: Digest,
    },
    /// The configured replica id or key does not match the genesis.
    #[error("replica {me}: {reason}")]
    BadIdentity {
        /// The configured id.
        me: NodeId,
        /// What is wrong.
        reason: String,
    },
    /// Stored blocks or consensus log entries are inconsistent.
    #[error("corrupt store: {0}")]
    Corrupt(String),
}
