//! In-memory storage, for tests and the simulator.

use super::{check_extends, Storage, StorageError, StorageResult, TxLocation};
use crate::block::CommittedBlock;
use crate::codec::Digest;
use crate::genesis::Genesis;
use crate::state::Receipt;
use crate::tx::TxId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// [`Storage`] in memory.
///
/// Clones share the same data: the simulator keeps a clone while a replica owns another, and
/// when it "crashes" the replica, a new one is started on the surviving clone, as a restarted
/// node reopens its data folder. Every operation is all-or-nothing, like [`super::RedbStorage`].
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    genesis: Option<Genesis>,
    head: Option<(u64, Digest)>,
    blocks: BTreeMap<u64, CommittedBlock>,
    receipts: BTreeMap<u64, Vec<Receipt>>,
    txs: BTreeMap<TxId, TxLocation>,
    consensus: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemStorage {
    /// Empty storage (no genesis yet).
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // No operation panics while holding the lock after changing anything, so the data
        // behind a poisoned lock is consistent.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Storage for MemStorage {
    fn genesis(&self) -> StorageResult<Option<Genesis>> {
        Ok(self.lock().genesis.clone())
    }

    fn put_genesis(&mut self, genesis: &Genesis) -> StorageResult<()> {
        let mut inner = self.lock();
        if inner.genesis.is_some() {
            return Err(StorageError::Misuse("a genesis is already stored".into()));
        }
        inner.genesis = Some(genesis.clone());
        inner.head = Some((0, genesis.hash()));
        Ok(())
    }

    fn head(&self) -> StorageResult<Option<(u64, Digest)>> {
        Ok(self.lock().head)
    }

    fn commit_block(&mut self, committed: &CommittedBlock, receipts: &[Receipt]) -> StorageResult<()> {
        let mut inner = self.lock();
        check_extends(inner.head, committed, receipts)?;
        let height = committed.block.header.height;
        for (index, tx) in committed.block.txs.iter().enumerate() {
            inner.txs.entry(tx.id()).or_insert(TxLocation { height, index: index as u32 });
        }
        inner.blocks.insert(height, committed.clone());
        inner.receipts.insert(height, receipts.to_vec());
        inner.head = Some((height, committed.block.hash()));
        Ok(())
    }

    fn block(&self, height: u64) -> StorageResult<Option<CommittedBlock>> {
        Ok(self.lock().blocks.get(&height).cloned())
    }

    fn receipts(&self, height: u64) -> StorageResult<Option<Vec<Receipt>>> {
        Ok(self.lock().receipts.get(&height).cloned())
    }

    fn tx_location(&self, id: &TxId) -> StorageResult<Option<TxLocation>> {
        Ok(self.lock().txs.get(id).copied())
    }

    fn put_consensus(&mut self, key: &[u8], value: &[u8]) -> StorageResult<()> {
        self.lock().consensus.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn consensus_entries(&self) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self.lock().consensus.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    fn prune_consensus_below(&mut self, key: &[u8]) -> StorageResult<()> {
        let mut inner = self.lock();
        let kept = inner.consensus.split_off(key);
        inner.consensus = kept;
        Ok(())
    }
}
