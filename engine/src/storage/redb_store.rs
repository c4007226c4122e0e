//! Durable storage on redb: one database file per node.
//!
//! Tables: `meta` (the genesis and the head), `blocks` (height → canonical bytes of the
//! [`CommittedBlock`]), `receipts` (height → canonical bytes of the receipts), `txs` (tx id →
//! [`TxLocation`]) and `consensus` (the replica's log, key → value). Every write is one redb
//! write transaction with [`redb::Durability::Immediate`]: once a call returns, its writes
//! survive a crash, and a call that fails leaves nothing behind.

use super::{check_extends, Storage, StorageError, StorageResult, TxLocation};
use crate::block::CommittedBlock;
use crate::codec::{self, Digest};
use crate::genesis::Genesis;
use crate::limits::{BLOCK_TXS_MAX, MESSAGE_BYTES_MAX};
use crate::state::Receipt;
use crate::tx::TxId;
use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const RECEIPTS: TableDefinition<u64, &[u8]> = TableDefinition::new("receipts");
const TXS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("txs");
const CONSENSUS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("consensus");

const GENESIS_KEY: &str = "genesis";
const HEAD_KEY: &str = "head";

/// Largest stored block with its certificate: a block plus a certificate fits in a message.
const STORED_BLOCK_BYTES_MAX: usize = MESSAGE_BYTES_MAX;
/// Largest stored receipt list: a generous bound per receipt times the most transactions.
const STORED_RECEIPTS_BYTES_MAX: usize = BLOCK_TXS_MAX * 4096;
/// Largest stored genesis.
const STORED_GENESIS_BYTES_MAX: usize = 1024 * 1024;

/// [`Storage`] on a redb database file.
#[derive(Debug)]
pub struct RedbStorage {
    db: Database,
}

fn backend(e: impl Into<redb::Error>) -> StorageError {
    StorageError::Backend(e.into().to_string())
}

fn decode_stored<T: Serialize + DeserializeOwned>(
    bytes: &[u8],
    max: usize,
    what: impl Fn() -> String,
) -> StorageResult<T> {
    codec::decode(bytes, max).map_err(|e| StorageError::Corrupt { what: what(), reason: e.to_string() })
}

impl RedbStorage {
    /// Opens the database at `path`, creating an empty one if the file does not exist, and
    /// makes sure every table exists.
    pub fn open(path: &Path) -> StorageResult<Self> {
        let db = Database::create(path).map_err(|e| StorageError::Backend(format!("{}: {e}", path.display())))?;
        let storage = RedbStorage { db };
        storage.write(|txn| {
            txn.open_table(META)?;
            txn.open_table(BLOCKS)?;
            txn.open_table(RECEIPTS)?;
            txn.open_table(TXS)?;
            txn.open_table(CONSENSUS)?;
            Ok(())
        })?;
        Ok(storage)
    }

    /// Runs `f` in one durable write transaction; commits only if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&WriteTransaction) -> StorageResult<T>) -> StorageResult<T> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        txn.set_durability(Durability::Immediate);
        match f(&txn) {
            Ok(value) => {
                txn.commit().map_err(backend)?;
                Ok(value)
            }
            Err(e) => {
                txn.abort().map_err(backend)?;
                Err(e)
            }
        }
    }

    fn read_head(table: &impl ReadableTable<&'static str, &'static [u8]>) -> StorageResult<Option<(u64, Digest)>> {
        match table.get(HEAD_KEY).map_err(backend)? {
            None => Ok(None),
            Some(v) => decode_stored(v.value(), 64, || "meta/head".into()).map(Some),
        }
    }

    fn get_u64(&self, table: TableDefinition<u64, &[u8]>, key: u64) -> StorageResult<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let t = txn.open_table(table).map_err(|e| StorageError::Backend(format!("table {}: {e}", table.name())))?;
        let value = t.get(key).map_err(backend)?.map(|v| v.value().to_vec());
        Ok(value)
    }
}

impl From<redb::StorageError> for StorageError {
    fn from(e: redb::StorageError) -> Self {
        backend(e)
    }
}

impl From<redb::TableError> for StorageError {
    fn from(e: redb::TableError) -> Self {
        backend(e)
    }
}

impl Storage for RedbStorage {
    fn genesis(&self) -> StorageResult<Option<Genesis>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META)?;
        let value = meta.get(GENESIS_KEY)?;
        match value {
            None => Ok(None),
            Some(v) => decode_stored(v.value(), STORED_GENESIS_BYTES_MAX, || "meta/genesis".into()).map(Some),
        }
    }

    fn put_genesis(&mut self, genesis: &Genesis) -> StorageResult<()> {
        self.write(|txn| {
            let mut meta = txn.open_table(META)?;
            if meta.get(GENESIS_KEY)?.is_some() {
                return Err(StorageError::Misuse("a genesis is already stored".into()));
            }
            meta.insert(GENESIS_KEY, codec::encode(genesis).as_slice())?;
            meta.insert(HEAD_KEY, codec::encode(&(0u64, genesis.hash())).as_slice())?;
            Ok(())
        })
    }

    fn head(&self) -> StorageResult<Option<(u64, Digest)>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let meta = txn.open_table(META)?;
        Self::read_head(&meta)
    }

    fn commit_block(&mut self, committed: &CommittedBlock, receipts: &[Receipt]) -> StorageResult<()> {
        let height = committed.block.header.height;
        self.write(|txn| {
            let mut meta = txn.open_table(META)?;
            check_extends(Self::read_head(&meta)?, committed, receipts)?;
            txn.open_table(BLOCKS)?.insert(height, codec::encode(committed).as_slice())?;
            txn.open_table(RECEIPTS)?.insert(height, codec::encode(receipts).as_slice())?;
            let mut txs = txn.open_table(TXS)?;
            for (index, tx) in committed.block.txs.iter().enumerate() {
                let id = tx.id();
                // A transaction included again later is rejected as a duplicate there; the
                // index keeps the first (applied) occurrence.
                if txs.get(id.0.as_slice())?.is_none() {
                    let location = TxLocation { height, index: index as u32 };
                    txs.insert(id.0.as_slice(), codec::encode(&location).as_slice())?;
                }
            }
            meta.insert(HEAD_KEY, codec::encode(&(height, committed.block.hash())).as_slice())?;
            Ok(())
        })
    }

    fn block(&self, height: u64) -> StorageResult<Option<CommittedBlock>> {
        match self.get_u64(BLOCKS, height)? {
            None => Ok(None),
            Some(bytes) => decode_stored(&bytes, STORED_BLOCK_BYTES_MAX, || format!("blocks/{height}")).map(Some),
        }
    }

    fn receipts(&self, height: u64) -> StorageResult<Option<Vec<Receipt>>> {
        match self.get_u64(RECEIPTS, height)? {
            None => Ok(None),
            Some(bytes) => decode_stored(&bytes, STORED_RECEIPTS_BYTES_MAX, || format!("receipts/{height}")).map(Some),
        }
    }

    fn tx_location(&self, id: &TxId) -> StorageResult<Option<TxLocation>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let txs = txn.open_table(TXS)?;
        let value = txs.get(id.0.as_slice())?;
        match value {
            None => Ok(None),
            Some(v) => decode_stored(v.value(), 32, || format!("txs/{id}")).map(Some),
        }
    }

    fn put_consensus(&mut self, key: &[u8], value: &[u8]) -> StorageResult<()> {
        self.write(|txn| {
            txn.open_table(CONSENSUS)?.insert(key, value)?;
            Ok(())
        })
    }

    fn consensus_entries(&self) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let log = txn.open_table(CONSENSUS)?;
        let mut out = Vec::new();
        for entry in log.iter()? {
            let (k, v) = entry?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    fn prune_consensus_below(&mut self, key: &[u8]) -> StorageResult<()> {
        self.write(|txn| {
            txn.open_table(CONSENSUS)?.retain_in::<&[u8], _>(..key, |_, _| false)?;
            Ok(())
        })
    }
}
