//! Blocks, their headers, and commit certificates (2f+1 signed COMMITs).

use crate::codec::{self, sha256, DecodeError, Digest};
use crate::crypto::{self, ChainId, Signature};
use crate::genesis::ValidatorSet;
use crate::limits::BLOCK_BYTES_MAX;
use crate::merkle;
use crate::pbft::message::{Message, ReplicaId, Vote};
use crate::tx::Transaction;
use serde::{Deserialize, Serialize};

/// A block header. Its SHA-256 (of the canonical encoding) is the block hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// The consortium.
    pub chain_id: ChainId,
    /// Height; the genesis is height 0, the first block height 1.
    pub height: u64,
    /// The PBFT view the block was proposed in.
    pub view: u64,
    /// Hash of the block at `height - 1` (the genesis hash for height 1).
    pub prev_hash: Digest,
    /// The proposer's clock, milliseconds since the Unix epoch; never decreases along the chain.
    pub timestamp_ms: u64,
    /// RFC 6962 Merkle root over the canonical encodings of the transactions.
    pub tx_root: Digest,
    /// Number of transactions.
    pub tx_count: u32,
    /// The replica that proposed the block.
    pub proposer: ReplicaId,
}

impl BlockHeader {
    /// The block hash.
    pub fn hash(&self) -> Digest {
        sha256(&codec::encode(self))
    }
}

/// A block: header and transactions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// The header.
    pub header: BlockHeader,
    /// The transactions, in execution order.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// The block hash (of the header).
    pub fn hash(&self) -> Digest {
        self.header.hash()
    }

    /// The Merkle root the header should carry.
    pub fn compute_tx_root(&self) -> Digest {
        let leaves: Vec<Vec<u8>> = self.txs.iter().map(|t| t.encode()).collect();
        merkle::root(&leaves)
    }

    /// Decodes a block strictly.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, BLOCK_BYTES_MAX)
    }
}

/// Proof that a block was committed: COMMIT signatures of a quorum (2f+1) of validators for
/// the block hash at this height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitCertificate {
    /// The view of the COMMITs.
    pub view: u64,
    /// The height (PBFT sequence number).
    pub height: u64,
    /// The committed block's hash.
    pub block_hash: Digest,
    /// (replica, signature over its COMMIT message), sorted by replica, no duplicates.
    pub votes: Vec<(ReplicaId, Signature)>,
}

/// Why a commit certificate is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The certificate is for another height or block.
    #[error("certificate is for height {cert_height} block {cert_hash}, expected height {height} block {hash}")]
    WrongBlock {
        /// Height in the certificate.
        cert_height: u64,
        /// Hash in the certificate.
        cert_hash: Digest,
        /// Expected height.
        height: u64,
        /// Expected hash.
        hash: Digest,
    },
    /// Fewer distinct valid votes than a quorum.
    #[error("only {got} distinct valid COMMIT signatures, a quorum is {quorum}")]
    NoQuorum {
        /// Distinct valid votes.
        got: usize,
        /// Quorum size (2f+1).
        quorum: usize,
    },
    /// Votes are not sorted by replica or repeat one.
    #[error("votes are not strictly sorted by replica")]
    Unsorted,
    /// A vote names a replica outside the validator set.
    #[error("vote from replica {0}, which is not a validator")]
    UnknownReplica(ReplicaId),
    /// A vote's signature does not verify.
    #[error("COMMIT signature of replica {0} does not verify")]
    BadSignature(ReplicaId),
}

impl CommitCertificate {
    /// The exact bytes replica `replica` signed for its COMMIT of this certificate's block.
    pub fn vote_signing_bytes(&self, chain_id: &ChainId, replica: ReplicaId) -> Vec<u8> {
        let vote = Vote { view: self.view, seq: self.height, digest: self.block_hash };
        crate::pbft::message::signing_bytes(chain_id, replica, &Message::Commit(vote))
    }

    /// Checks the certificate for `(height, hash)` against the validator set, verifying each
    /// signature with the reference verifier. Nodes that batch-verify use
    /// [`CommitCertificate::check_shape`] and [`CommitCertificate::vote_signing_bytes`] instead.
    pub fn verify(
        &self,
        chain_id: &ChainId,
        validators: &ValidatorSet,
        height: u64,
        hash: &Digest,
    ) -> Result<(), CertificateError> {
        self.check_shape(validators, height, hash)?;
        for (replica, sig) in &self.votes {
            let key = validators.key(*replica).ok_or(CertificateError::UnknownReplica(*replica))?;
            if !crypto::verify_raw(key, sig, &self.vote_signing_bytes(chain_id, *replica)) {
                return Err(CertificateError::BadSignature(*replica));
            }
        }
        Ok(())
    }

    /// Everything but the signatures: right block, sorted distinct known voters, a quorum.
    pub fn check_shape(&self, validators: &ValidatorSet, height: u64, hash: &Digest) -> Result<(), CertificateError> {
        if self.height != height || self.block_hash != *hash {
            return Err(CertificateError::WrongBlock {
                cert_height: self.height,
                cert_hash: self.block_hash,
                height,
                hash: *hash,
            });
        }
        if !self.votes.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(CertificateError::Unsorted);
        }
        if let Some((r, _)) = self.votes.iter().find(|(r, _)| validators.key(*r).is_none()) {
            return Err(CertificateError::UnknownReplica(*r));
        }
        if self.votes.len() < validators.quorum() {
            return Err(CertificateError::NoQuorum { got: self.votes.len(), quorum: validators.quorum() });
        }
        Ok(())
    }
}

/// A block with the certificate that committed it: what storage keeps, state transfer sends,
/// and auditors receive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedBlock {
    /// The block.
    pub block: Block,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
}
