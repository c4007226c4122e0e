//! The genesis: the consortium's founding document, signed by the CA. It fixes the chain id,
//! the CA key, the validators (which are also the founding hospitals), the auditor nodes and
//! the consensus parameters.

use crate::codec::{self, sha256, Digest};
use crate::crypto::{self, ChainId, Domain, PublicKey, Signature, SigningKey};
use crate::limits::{AUDITORS_MAX, NAME_BYTES_MAX, VALIDATORS_MAX};
use crate::pbft::message::ReplicaId;
use serde::{Deserialize, Serialize};

/// A node named in the genesis: its name and Ed25519 key. A validator's key signs its PBFT
/// messages, its TLS certificate, and (as a hospital) the enrolment of its doctors and patients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// A unique name such as `node0` or `st-mary`.
    pub name: String,
    /// The node's public key.
    pub key: PublicKey,
}

/// Consensus parameters fixed for the life of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainParams {
    /// A checkpoint every this many blocks.
    pub checkpoint_interval: u64,
    /// Sequence numbers accepted above the low watermark (L in Castro–Liskov).
    pub watermark_window: u64,
    /// Most transactions a proposal may carry.
    pub block_txs_max: u32,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams { checkpoint_interval: 16, watermark_window: 64, block_txs_max: 2048 }
    }
}

/// What the CA signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisBody {
    /// The consortium's chain id.
    pub chain_id: ChainId,
    /// When the consortium was created, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The consortium CA's key (signs genesis, enrols hospitals, auditors and researchers).
    pub ca_key: PublicKey,
    /// The validators, in replica order: replica i is `validators[i]`.
    pub validators: Vec<NodeInfo>,
    /// Auditor nodes: follow the chain, never vote. Node ids continue after the validators.
    pub auditors: Vec<NodeInfo>,
    /// Consensus parameters.
    pub params: ChainParams,
}

/// The signed genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Genesis {
    /// The content.
    pub body: GenesisBody,
    /// The CA's signature over the body.
    pub signature: Signature,
}

/// Why a genesis is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// The CA signature does not verify.
    #[error("the genesis is not signed by its CA key")]
    BadSignature,
    /// Validator count out of range.
    #[error("{0} validators: need 1 to {VALIDATORS_MAX}")]
    ValidatorCount(usize),
    /// Too many auditors.
    #[error("{0} auditors: at most {AUDITORS_MAX}")]
    AuditorCount(usize),
    /// A name or key appears twice, or a name is empty or too long.
    #[error("node {0:?}: names must be unique, 1 to {NAME_BYTES_MAX} bytes, and keys unique")]
    BadNode(String),
    /// Parameters out of range.
    #[error("bad chain parameters: {0}")]
    BadParams(String),
}

impl GenesisBody {
    /// Signs the body with the CA key.
    pub fn sign(self, ca: &SigningKey) -> Genesis {
        let signature = ca.sign(Domain::Genesis, &self.chain_id, &codec::encode(&self));
        Genesis { body: self, signature }
    }
}

impl Genesis {
    /// The genesis hash: the `prev_hash` of block 1.
    pub fn hash(&self) -> Digest {
        sha256(&codec::encode(self))
    }

    /// The chain id.
    pub fn chain_id(&self) -> &ChainId {
        &self.body.chain_id
    }

    /// Checks the signature and the shape.
    pub fn verify(&self) -> Result<(), GenesisError> {
        let b = &self.body;
        if !crypto::verify(&b.ca_key, &self.signature, Domain::Genesis, &b.chain_id, &codec::encode(b)) {
            return Err(GenesisError::BadSignature);
        }
        if b.validators.is_empty() || b.validators.len() > VALIDATORS_MAX {
            return Err(GenesisError::ValidatorCount(b.validators.len()));
        }
        if b.auditors.len() > AUDITORS_MAX {
            return Err(GenesisError::AuditorCount(b.auditors.len()));
        }
        let mut names = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        for n in b.validators.iter().chain(&b.auditors) {
            let ok_name = !n.name.is_empty() && n.name.len() <= NAME_BYTES_MAX;
            if !ok_name || !names.insert(n.name.clone()) || !keys.insert(n.key) || n.key == b.ca_key {
                return Err(GenesisError::BadNode(n.name.clone()));
            }
        }
        let p = &b.params;
        if p.checkpoint_interval == 0 || p.watermark_window < 2 * p.checkpoint_interval {
            return Err(GenesisError::BadParams(
                "checkpoint_interval must be > 0 and watermark_window >= 2 * checkpoint_interval".into(),
            ));
        }
        if p.block_txs_max == 0 || p.block_txs_max as usize > crate::limits::BLOCK_TXS_MAX {
            return Err(GenesisError::BadParams(format!("block_txs_max must be 1..={}", crate::limits::BLOCK_TXS_MAX)));
        }
        Ok(())
    }

    /// The validator set.
    pub fn validator_set(&self) -> ValidatorSet {
        ValidatorSet { keys: self.body.validators.iter().map(|v| v.key).collect() }
    }

    /// Every node (validators, then auditors) with its node id (its index in this list).
    pub fn nodes(&self) -> impl Iterator<Item = (u16, &NodeInfo)> {
        self.body.validators.iter().chain(&self.body.auditors).enumerate().map(|(i, n)| (i as u16, n))
    }

    /// The node id of `key`, if it is a validator or an auditor.
    pub fn node_id(&self, key: &PublicKey) -> Option<u16> {
        self.nodes().find(|(_, n)| n.key == *key).map(|(i, _)| i)
    }
}

/// The validators: n = 3f+1 (or any n ≥ 1; f = ⌊(n-1)/3⌋), quorum 2f+1, primary of view v is
/// replica v mod n.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSet {
    keys: Vec<PublicKey>,
}

impl ValidatorSet {
    /// A set from keys in replica order.
    pub fn new(keys: Vec<PublicKey>) -> Self {
        assert!(!keys.is_empty() && keys.len() <= VALIDATORS_MAX, "validator count out of range");
        ValidatorSet { keys }
    }
    /// n.
    pub fn len(&self) -> usize {
        self.keys.len()
    }
    /// Never true: a set has at least one validator.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
    /// f: how many faulty replicas are tolerated.
    pub fn f(&self) -> usize {
        (self.keys.len() - 1) / 3
    }
    /// 2f+1 (for n = 3f+1; in general n - f, so any two quorums share an honest replica).
    pub fn quorum(&self) -> usize {
        self.keys.len() - self.f()
    }
    /// The key of replica `r`.
    pub fn key(&self, r: ReplicaId) -> Option<&PublicKey> {
        self.keys.get(r as usize)
    }
    /// The replica id of `key`.
    pub fn replica_of(&self, key: &PublicKey) -> Option<ReplicaId> {
        self.keys.iter().position(|k| k == key).map(|i| i as ReplicaId)
    }
    /// The primary of `view`.
    pub fn primary(&self, view: u64) -> ReplicaId {
        (view % self.keys.len() as u64) as ReplicaId
    }
    /// All keys in replica order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }
}
