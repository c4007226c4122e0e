//! The writer's counters: one per (writer, field, value, epoch), kept so that a counter is never
//! handed out twice, across crashes and restarts, and so that the store holds no plaintext term.
//!
//! A counter is reserved (persisted as advanced) before the labels that use it are returned: a
//! crash after the reservation loses a counter (a gap, see the module docs of [`super`]) but
//! never reuses one, which would give two records the same label and link them at rest.
//!
//! What the store does hold, in the clear: the epoch of each slot and how many records each slot
//! counted, i.e. per-epoch term frequencies without the terms. It sits with the writer, who holds
//! K anyway; it is not part of the shared index.

use super::keys::CounterSlot;
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Table of next counters: key = `u64 epoch (big-endian) ‖ slot (32 bytes)`, value = next counter.
/// The epoch comes first so that counters of old epochs can be pruned by range.
const COUNTERS: TableDefinition<&[u8], u64> = TableDefinition::new("index_label_counters");

/// A counter store failed; nothing was reserved.
#[derive(Debug, thiserror::Error)]
pub enum CounterStoreError {
    /// The backing store failed (I/O, a corrupt file, a lock held by another process).
    #[error("counter store {path}: {reason}; nothing was reserved, the record can be retried once the store is fixed")]
    Backend {
        /// The store's file, or `memory`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A slot has handed out every `u64` counter; it cannot go on without reusing one.
    #[error("counter slot {slot:?} of epoch {epoch} is exhausted (2^64 records); nothing was reserved")]
    Exhausted {
        /// The epoch.
        epoch: u64,
        /// The slot.
        slot: CounterSlot,
    },
}

/// Where the writer keeps its counters. Implementations must make [`CounterStore::reserve`]
/// atomic and durable.
pub trait CounterStore {
    /// For each slot of `epoch`, in order, returns its next counter (0 for a slot never seen) and
    /// advances it by one, as one atomic step: when this returns `Ok`, every advance is durable;
    /// when it returns `Err`, none happened. A slot listed twice is advanced twice and gets two
    /// consecutive counters.
    fn reserve(&self, epoch: u64, slots: &[CounterSlot]) -> Result<Vec<u64>, CounterStoreError>;
}

fn store_key(epoch: u64, slot: &CounterSlot) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..8].copy_from_slice(&epoch.to_be_bytes());
    key[8..].copy_from_slice(&slot.0);
    key
}

/// Counters in memory, for tests and simulation: they do not survive the process.
#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    next: Mutex<BTreeMap<(u64, CounterSlot), u64>>,
}

impl MemoryCounterStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CounterStore for MemoryCounterStore {
    fn reserve(&self, epoch: u64, slots: &[CounterSlot]) -> Result<Vec<u64>, CounterStoreError> {
        // A panic while holding the lock cannot leave a counter lower than one handed out: the
        // map is only written after every counter of the call is known.
        let mut next = self.next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut staged: BTreeMap<(u64, CounterSlot), u64> = BTreeMap::new();
        let mut counters = Vec::with_capacity(slots.len());
        for slot in slots {
            let current = staged.get(&(epoch, *slot)).or_else(|| next.get(&(epoch, *slot))).copied().unwrap_or(0);
            let advanced = current.checked_add(1).ok_or(CounterStoreError::Exhausted { epoch, slot: *slot })?;
            staged.insert((epoch, *slot), advanced);
            counters.push(current);
        }
        next.extend(staged);
        Ok(counters)
    }
}

/// Counters in a redb database file named by the caller, one durable
/// ([`Durability::Immediate`]) write transaction per [`CounterStore::reserve`].
#[derive(Debug)]
pub struct RedbCounterStore {
    db: Database,
    path: PathBuf,
}

impl RedbCounterStore {
    /// Opens the store at `path`, creating the file and its table if absent. The file may hold
    /// other tables; this store touches only `index_label_counters`.
    pub fn open(path: &Path) -> Result<Self, CounterStoreError> {
        let backend = |reason: String| CounterStoreError::Backend { path: path.display().to_string(), reason };
        let db = Database::create(path).map_err(|e| backend(format!("cannot open: {e}")))?;
        let store = RedbCounterStore { db, path: path.to_path_buf() };
        store.write(|txn| {
            txn.open_table(COUNTERS).map_err(|e| store.backend(e))?;
            Ok(())
        })?;
        Ok(store)
    }

    fn backend(&self, e: impl Into<redb::Error>) -> CounterStoreError {
        CounterStoreError::Backend { path: self.path.display().to_string(), reason: e.into().to_string() }
    }

    /// Runs `f` in one durable write transaction; commits only if `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, CounterStoreError>,
    ) -> Result<T, CounterStoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.backend(e))?;
        txn.set_durability(Durability::Immediate);
        match f(&txn) {
            Ok(value) => {
                txn.commit().map_err(|e| self.backend(e))?;
                Ok(value)
            }
            Err(e) => {
                // The error of `f` is the one to report; an abort failure leaves nothing
                // committed either.
                let _ = txn.abort();
                Err(e)
            }
        }
    }
}

impl CounterStore for RedbCounterStore {
    fn reserve(&self, epoch: u64, slots: &[CounterSlot]) -> Result<Vec<u64>, CounterStoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(COUNTERS).map_err(|e| self.backend(e))?;
            let mut counters = Vec::with_capacity(slots.len());
            for slot in slots {
                let key = store_key(epoch, slot);
                let current = table.get(&key[..]).map_err(|e| self.backend(e))?.map(|v| v.value()).unwrap_or(0);
                let advanced = current.checked_add(1).ok_or(CounterStoreError::Exhausted { epoch, slot: *slot })?;
                table.insert(&key[..], advanced).map_err(|e| self.backend(e))?;
                counters.push(current);
            }
            Ok(counters)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_store(store: &impl CounterStore) {
        let (a, b) = (CounterSlot([1; 32]), CounterSlot([2; 32]));
        assert_eq!(store.reserve(7, &[a, b]).unwrap(), vec![0, 0]);
        assert_eq!(store.reserve(7, &[a]).unwrap(), vec![1]);
        assert_eq!(store.reserve(7, &[a, a, b]).unwrap(), vec![2, 3, 1]);
        assert_eq!(store.reserve(8, &[a]).unwrap(), vec![0], "epochs count separately");
        assert_eq!(store.reserve(7, &[]).unwrap(), Vec::<u64>::new());
    }

    #[test]
    fn memory_store_counts_per_epoch_and_slot() {
        check_store(&MemoryCounterStore::new());
    }

    #[test]
    fn redb_store_counts_per_epoch_and_slot() {
        let dir = tempfile::tempdir().unwrap();
        check_store(&RedbCounterStore::open(&dir.path().join("counters.redb")).unwrap());
    }

    #[test]
    fn exhausted_slot_reserves_nothing() {
        let store = MemoryCounterStore::new();
        let (a, b) = (CounterSlot([1; 32]), CounterSlot([2; 32]));
        store.next.lock().unwrap().insert((0, b), u64::MAX);
        let err = store.reserve(0, &[a, b]).unwrap_err();
        assert!(matches!(err, CounterStoreError::Exhausted { epoch: 0, slot } if slot == b), "{err}");
        assert_eq!(store.reserve(0, &[a]).unwrap(), vec![0], "the failed call advanced nothing");
    }

    #[test]
    fn redb_exhausted_slot_reserves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbCounterStore::open(&dir.path().join("counters.redb")).unwrap();
        let (a, b) = (CounterSlot([1; 32]), CounterSlot([2; 32]));
        store
            .write(|txn| {
                let mut t = txn.open_table(COUNTERS).unwrap();
                t.insert(&store_key(0, &b)[..], u64::MAX).unwrap();
                Ok(())
            })
            .unwrap();
        assert!(matches!(store.reserve(0, &[a, b]), Err(CounterStoreError::Exhausted { .. })));
        assert_eq!(store.reserve(0, &[a]).unwrap(), vec![0], "the failed transaction was aborted");
    }
}
