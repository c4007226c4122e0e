//! The ledger state machine: participants and roles, nonces, records by id and by owner,
//! grants, revocations, the read log. Applying a block is deterministic: every node that applies
//! the same blocks to the same genesis reaches the same state and the same receipts.

use crate::crypto::PublicKey;
use crate::tx::{Role, TxId};
use serde::{Deserialize, Serialize};

/// Why a transaction is refused. Grouped as rustls does: what the sender got wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxError {
    /// A signature does not verify for the signer it belongs to.
    #[error("signature {index} (signer {signer}) does not verify")]
    BadSignature {
        /// Position in `signatures`.
        index: usize,
        /// The key it should verify under.
        signer: PublicKey,
    },
    /// The number of signatures differs from the number of required signers.
    #[error("{got} signatures, but this transaction needs {expected} (sender first, then co-signers)")]
    WrongSignatureCount {
        /// Required signers.
        expected: usize,
        /// Signatures present.
        got: usize,
    },
    /// The nonce does not advance the sender's last committed nonce (a replay or a stale copy).
    #[error("nonce {got} of sender {sender} does not advance its last nonce {last}")]
    StaleNonce {
        /// The sender.
        sender: PublicKey,
        /// The last committed nonce.
        last: u64,
        /// The nonce given.
        got: u64,
    },
    /// The transaction's expiry height has passed.
    #[error("expired at height {expiry_height}, the chain is at height {height}")]
    Expired {
        /// The transaction's expiry height.
        expiry_height: u64,
        /// The height it would have been included at.
        height: u64,
    },
    /// A signer or named participant is not enrolled.
    #[error("participant {key} is not enrolled")]
    UnknownParticipant {
        /// The key.
        key: PublicKey,
    },
    /// The participant's role may not do this.
    #[error("{key} (role {role:?}) may not {action}")]
    RoleNotAllowed {
        /// The key.
        key: PublicKey,
        /// Its role, if enrolled (the CA has none).
        role: Option<Role>,
        /// What was attempted.
        action: String,
    },
    /// A field has an invalid value.
    #[error("field `{field}`: {reason}")]
    Malformed {
        /// The field, as a path (`payload.record_id`).
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A field or the whole transaction is larger than allowed.
    #[error("`{field}` is {size} long, the limit is {max}")]
    Oversize {
        /// The field (`transaction` for the whole encoding).
        field: String,
        /// Its size (bytes or items).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction refers to something that does not exist (a record, a grant).
    #[error("{what} {id} does not exist")]
    NotFound {
        /// What kind of thing.
        what: String,
        /// Its id (hex).
        id: String,
    },
    /// The transaction conflicts with the state (a duplicate record id, a key enrolled twice,
    /// a grant already revoked, a read not covered by the grant).
    #[error("{0}")]
    Conflict(String),
    /// The same transaction is already committed or pending.
    #[error("transaction {0} is already known")]
    Duplicate(TxId),
}

impl TxError {
    /// The field a client should fix, when there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            TxError::BadSignature { index, .. } => Some(format!("signatures[{index}]")),
            TxError::WrongSignatureCount { .. } => Some("signatures".into()),
            TxError::StaleNonce { .. } => Some("body.nonce".into()),
            TxError::Expired { .. } => Some("body.expiry_height".into()),
            TxError::UnknownParticipant { .. } | TxError::RoleNotAllowed { .. } => Some("body.sender".into()),
            TxError::Malformed { field, .. } | TxError::Oversize { field, .. } => Some(field.clone()),
            TxError::NotFound { .. } | TxError::Conflict(_) => Some("body.payload".into()),
            TxError::Duplicate(_) => None,
        }
    }
}

/// What happened to a transaction in a committed block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied to the state.
    Applied,
    /// Included but refused by the state machine (e.g. a nonce that a transaction earlier in the
    /// pipeline already used); it changed nothing but the record of its refusal.
    Rejected(TxError),
}

/// The outcome of one transaction of a committed block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction.
    pub tx: TxId,
    /// What happened.
    pub outcome: Outcome,
}
