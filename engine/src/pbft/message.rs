//! PBFT messages (Castro–Liskov) as they travel between nodes, and how they are signed.
//!
//! Every message is wrapped in a [`SignedMessage`]: the sender's node id, the message, and the
//! sender's signature over `Domain::Consensus ‖ chain id ‖ encode((from, message))`. Nested
//! messages (the prepared certificates inside a VIEW-CHANGE, the VIEW-CHANGEs inside a NEW-VIEW)
//! keep their own signatures, so a replica can check them without trusting the carrier.

use crate::block::{Block, CommittedBlock};
use crate::codec::{self, DecodeError, Digest};
use crate::crypto::{signing_bytes as domain_bytes, ChainId, Domain, PublicKey, Signature, SigningKey};
use crate::limits::MESSAGE_BYTES_MAX;
use crate::tx::Transaction;
use serde::{Deserialize, Serialize};

/// A validator's index in the genesis validator list.
pub type ReplicaId = u16;
/// Any node's index in the genesis: validators first, then auditors.
pub type NodeId = u16;

/// A PREPARE or COMMIT: a vote for `digest` at (`view`, `seq`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// View.
    pub view: u64,
    /// Sequence number (= block height).
    pub seq: u64,
    /// The block hash voted for.
    pub digest: Digest,
}

/// The primary's proposal of `block` at (`view`, `seq`); the digest is `block.hash()`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrePrepare {
    /// View.
    pub view: u64,
    /// Sequence number (= block height).
    pub seq: u64,
    /// The proposed block. In a NEW-VIEW that re-proposes "no block" for a gap, this is an
    /// empty block.
    pub block: Block,
}

/// A checkpoint: the replica has executed up to `seq`, whose block hash is `digest`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number.
    pub seq: u64,
    /// The block hash at `seq` (it commits to the whole chain before it).
    pub digest: Digest,
}

/// A request prepared at the sender: its PRE-PREPARE and 2f matching PREPAREs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedProof {
    /// The signed PRE-PREPARE.
    pub pre_prepare: SignedMessage,
    /// 2f signed PREPAREs from distinct replicas other than the primary.
    pub prepares: Vec<SignedMessage>,
}

/// A replica asks to move to `new_view`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view the sender moves to.
    pub new_view: u64,
    /// The sender's last stable checkpoint.
    pub checkpoint: Checkpoint,
    /// 2f+1 signed CHECKPOINT messages proving it (empty for the genesis checkpoint, seq 0).
    pub checkpoint_proof: Vec<SignedMessage>,
    /// Everything prepared above the checkpoint.
    pub prepared: Vec<PreparedProof>,
}

/// The new primary starts `view`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: u64,
    /// 2f+1 signed VIEW-CHANGE messages for `view`.
    pub view_changes: Vec<SignedMessage>,
    /// The re-issued PRE-PREPAREs (signed by the new primary) for every sequence number between
    /// the highest stable checkpoint and the highest prepared request.
    pub pre_prepares: Vec<SignedMessage>,
}

/// Asks for committed blocks `from..=to` with their certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateRequest {
    /// First height wanted.
    pub from: u64,
    /// Last height wanted.
    pub to: u64,
}

/// Committed blocks with certificates, in height order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateResponse {
    /// The blocks.
    pub blocks: Vec<CommittedBlock>,
}

/// Everything nodes send each other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Phase 1: the primary proposes.
    PrePrepare(PrePrepare),
    /// Phase 2.
    Prepare(Vote),
    /// Phase 3.
    Commit(Vote),
    /// Periodic checkpoint.
    Checkpoint(Checkpoint),
    /// View change.
    ViewChange(ViewChange),
    /// New view.
    NewView(NewView),
    /// State transfer: request.
    StateRequest(StateRequest),
    /// State transfer: response; also pushed to auditors as blocks commit.
    StateResponse(StateResponse),
    /// Client transactions forwarded to the primary.
    Forward(Vec<Transaction>),
}

impl Message {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PrePrepare(_) => "pre_prepare",
            Message::Prepare(_) => "prepare",
            Message::Commit(_) => "commit",
            Message::Checkpoint(_) => "checkpoint",
            Message::ViewChange(_) => "view_change",
            Message::NewView(_) => "new_view",
            Message::StateRequest(_) => "state_request",
            Message::StateResponse(_) => "state_response",
            Message::Forward(_) => "forward",
        }
    }
}

/// A message with its sender and the sender's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMessage {
    /// The sender's node id.
    pub from: NodeId,
    /// The message.
    pub message: Message,
    /// Signature over [`signing_bytes`]`(chain, from, message)`.
    pub signature: Signature,
}

/// The exact bytes node `from` signs for `message`.
pub fn signing_bytes(chain_id: &ChainId, from: NodeId, message: &Message) -> Vec<u8> {
    domain_bytes(Domain::Consensus, chain_id, &codec::encode(&(from, message)))
}

impl SignedMessage {
    /// Signs `message` as node `from`.
    pub fn sign(chain_id: &ChainId, from: NodeId, message: Message, key: &SigningKey) -> Self {
        let signature = key.sign_raw(&signing_bytes(chain_id, from, &message));
        SignedMessage { from, message, signature }
    }

    /// The canonical wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes strictly (size limit, canonical form).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, MESSAGE_BYTES_MAX)
    }
}

/// One signature to check, with owned bytes: what a driver hands to a `BatchVerifier`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The exact signed bytes.
    pub msg: Vec<u8>,
    /// The claimed signer.
    pub key: PublicKey,
    /// The signature.
    pub sig: Signature,
}
