//! Durable storage of the chain and of the replica's consensus log.
//!
//! [`Storage`] is implemented in memory ([`MemStorage`], for tests and the simulator, where a
//! "crash" drops the replica and keeps the storage) and on redb ([`RedbStorage`], for nodes).
//! Committing a block is atomic and durable: after `commit_block` returns, the block, its
//! certificate and its receipts survive a crash together, or none of them do.

mod mem;
mod redb_store;

pub use mem::MemStorage;
pub use redb_store::RedbStorage;

use crate::block::CommittedBlock;
use crate::codec::Digest;
use crate::genesis::Genesis;
use crate::state::Receipt;
use crate::tx::TxId;

/// A storage failure (I/O, corruption). Nodes treat it as fatal for the operation and report it;
/// it never causes a wrong answer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The underlying database failed.
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored bytes do not decode: the data folder is corrupt or from another version.
    #[error("corrupt data at {what}: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// Why.
        reason: String,
    },
    /// An operation out of order (a block not extending the head, a second genesis).
    #[error("storage misuse: {0}")]
    Misuse(String),
}

/// Result alias for storage operations.
pub type StorageResult<T> = Result<T, StorageError>;

/// Where a committed transaction sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TxLocation {
    /// Block height.
    pub height: u64,
    /// Index in the block.
    pub index: u32,
}

/// The chain and the consensus log, durably.
pub trait Storage: Send {
    /// The genesis, once stored.
    fn genesis(&self) -> StorageResult<Option<Genesis>>;
    /// Stores the genesis of a new chain. Fails if a genesis is already stored.
    fn put_genesis(&mut self, genesis: &Genesis) -> StorageResult<()>;
    /// Height and hash of the last committed block (height 0 and the genesis hash if none).
    fn head(&self) -> StorageResult<Option<(u64, Digest)>>;
    /// Atomically and durably appends a block with its certificate and per-transaction receipts,
    /// and indexes its transactions (a transaction included twice keeps its first location).
    /// The block must be at head height + 1 and link to the head hash, its certificate must name
    /// this block, and there must be one receipt per transaction; otherwise the call fails with
    /// [`StorageError::Misuse`] and writes nothing. Signatures are not checked here.
    fn commit_block(&mut self, committed: &CommittedBlock, receipts: &[Receipt]) -> StorageResult<()>;
    /// The committed block at `height` (1-based), with its certificate.
    fn block(&self, height: u64) -> StorageResult<Option<CommittedBlock>>;
    /// The receipts of the block at `height`.
    fn receipts(&self, height: u64) -> StorageResult<Option<Vec<Receipt>>>;
    /// Where a committed transaction is.
    fn tx_location(&self, id: &TxId) -> StorageResult<Option<TxLocation>>;
    /// Durably records a consensus-log entry (a vote, a proposal, a view change) under `key`,
    /// replacing any entry with that key. Returns only once the entry is durable: a replica
    /// persists each vote through this before sending it.
    fn put_consensus(&mut self, key: &[u8], value: &[u8]) -> StorageResult<()>;
    /// Every consensus-log entry, in key order.
    fn consensus_entries(&self) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Removes consensus-log entries whose key is below `key` (log truncation at a checkpoint).
    fn prune_consensus_below(&mut self, key: &[u8]) -> StorageResult<()>;
}

/// Checks that `committed` may be appended to a chain whose head is `head`: a genesis is stored,
/// the block is at head height + 1 and links to the head hash, its certificate is for this block,
/// and there is one receipt per transaction. Shared by every implementation so they refuse the
/// same things.
pub(crate) fn check_extends(
    head: Option<(u64, Digest)>,
    committed: &CommittedBlock,
    receipts: &[Receipt],
) -> StorageResult<()> {
    let Some((height, hash)) = head else {
        return Err(StorageError::Misuse("commit_block before put_genesis".into()));
    };
    let header = &committed.block.header;
    if header.height != height + 1 {
        return Err(StorageError::Misuse(format!(
            "block at height {} does not extend the head at height {height}",
            header.height
        )));
    }
    if header.prev_hash != hash {
        return Err(StorageError::Misuse(format!(
            "block {}'s prev_hash {} is not the head hash {hash}",
            header.height, header.prev_hash
        )));
    }
    let cert = &committed.certificate;
    if cert.height != header.height || cert.block_hash != committed.block.hash() {
        return Err(StorageError::Misuse(format!(
            "the certificate is for height {} block {}, not for block {} at height {}",
            cert.height,
            cert.block_hash,
            committed.block.hash(),
            header.height
        )));
    }
    if receipts.len() != committed.block.txs.len() {
        return Err(StorageError::Misuse(format!(
            "{} receipts for {} transactions at height {}",
            receipts.len(),
            committed.block.txs.len(),
            header.height
        )));
    }
    Ok(())
}
