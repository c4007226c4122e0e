//! The PBFT replica as a sans-IO state machine: `handle(event) -> actions`.
//!
//! No sockets, no clock, no threads: time arrives as `Event::Tick { now_ms }`, messages arrive
//! already signature-checked (the driver batch-verifies them through a `BatchVerifier`), and the
//! replica answers with actions for the driver to carry out. Storage is the one side effect it
//! performs itself, synchronously, so that a vote is durable before the action that sends it is
//! returned, and a committed block is durable before `Action::Committed` is returned.
//!
//! - [`Replica`]: the state machine (normal case, checkpoints, view change, state transfer).
//! - [`rules`]: the pure rules: [`signature_checks`] for the driver, block and proof shapes, and
//!   the NEW-VIEW computation that the new primary makes and every backup repeats.
//! - [`Follower`]: what an auditor node runs: pulls certified blocks, never votes.
//! - [`MessageError`]: why a message was dropped (`Action::Dropped`), one variant per cause.

mod chain;
mod error;
mod follower;
pub mod message;
mod replica;
pub mod rules;
#[cfg(test)]
mod tests;

pub use error::{MessageError, ReplicaError};
pub use follower::{Follower, FollowerConfig, FollowerStatus};
pub use replica::{Replica, STATE_CHUNK_BLOCKS_MAX};
pub use rules::signature_checks;

use crate::block::CommittedBlock;
use crate::codec::Digest;
use crate::crypto::SigningKey;
use crate::genesis::Genesis;
use crate::state::{Receipt, TxError};
use crate::tx::{Transaction, TxId};
use message::{NodeId, ReplicaId, SignedMessage};

/// How a replica is set up. Timeouts are in milliseconds of the `now_ms` that ticks carry.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// The chain's genesis (validator set, chain id, parameters).
    pub genesis: Genesis,
    /// This replica's id (its index among the validators).
    pub me: ReplicaId,
    /// This replica's signing key; its public key must be validator `me`'s key.
    pub key: SigningKey,
    /// The primary proposes once this many transactions are pending, or `batch_delay_ms` after
    /// the oldest pending one arrived.
    pub batch_txs: usize,
    /// See `batch_txs`.
    pub batch_delay_ms: u64,
    /// A backup that has seen a request pending this long without progress starts a view change
    /// (doubling for each consecutive view change, as in Castro–Liskov).
    pub view_change_timeout_ms: u64,
    /// At most this many client transactions wait in the pending pool; more are refused.
    pub pending_txs_max: usize,
}

/// What the driver feeds the replica.
// Events are handled one at a time and most are messages: boxing the large variant would add an
// allocation per message to save stack space nobody holds on to.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Event {
    /// A message from a peer whose signatures (its own, nested ones, and those of any
    /// transactions it carries) the driver has already verified.
    Message(SignedMessage),
    /// Transactions from clients of this node, signatures verified.
    Transactions(Vec<Transaction>),
    /// Time passes. `now_ms` never decreases.
    Tick {
        /// Milliseconds since the Unix epoch (or since the simulation started).
        now_ms: u64,
    },
}

/// What the replica asks the driver to do, in order.
#[derive(Clone, Debug)]
pub enum Action {
    /// Send to one node.
    Send {
        /// Destination node id.
        to: NodeId,
        /// The message.
        message: SignedMessage,
    },
    /// Send to every other validator.
    Broadcast {
        /// The message.
        message: SignedMessage,
    },
    /// A block was committed and is already durable in storage.
    Committed {
        /// The block and its certificate (auditors are sent this).
        block: CommittedBlock,
        /// One receipt per transaction.
        receipts: Vec<Receipt>,
    },
    /// A transaction will not be included: refused on arrival from a client, or dropped from
    /// the pool once a committed block made it stale (its nonce taken) or expired.
    Refused {
        /// The transaction.
        tx: TxId,
        /// Why.
        reason: TxError,
    },
    /// A message was refused; for logs and metrics (and for scoring the peer down).
    Dropped {
        /// The sender named in the message.
        from: NodeId,
        /// Why.
        reason: MessageError,
    },
    /// Storage failed: the replica takes no more input. The driver reports and stops the node.
    Halted {
        /// The storage error.
        reason: String,
    },
}

/// A snapshot for status endpoints and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// Current view.
    pub view: u64,
    /// Primary of the current view.
    pub primary: ReplicaId,
    /// Height of the last committed block.
    pub height: u64,
    /// Hash of the last committed block (the genesis hash at height 0).
    pub head: Digest,
    /// Last stable checkpoint.
    pub stable_checkpoint: u64,
    /// True while a view change is in progress.
    pub view_changing: bool,
    /// Client transactions waiting to be proposed.
    pub pending_txs: usize,
}
