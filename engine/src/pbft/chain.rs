//! Opening a node's chain from storage and appending committed blocks: shared by the replica
//! and the follower, so both rebuild and extend their state the same way.

use super::error::ReplicaError;
use crate::block::CommittedBlock;
use crate::genesis::Genesis;
use crate::state::{Receipt, State};
use crate::storage::{Storage, StorageError};

/// Stores the genesis if the storage is new, refuses a different stored genesis, and rebuilds
/// the state by replaying every stored block (checking each links to the one before).
pub fn open_chain<S: Storage>(genesis: &Genesis, storage: &mut S) -> Result<State, ReplicaError> {
    genesis.verify()?;
    match storage.genesis()? {
        Some(stored) if stored != *genesis => {
            return Err(ReplicaError::GenesisMismatch { stored: stored.hash(), configured: genesis.hash() })
        }
        Some(_) => {}
        None => storage.put_genesis(genesis)?,
    }
    let mut state = State::from_genesis(genesis);
    let head = storage.head()?.map(|(h, _)| h).unwrap_or(0);
    for height in 1..=head {
        let cb = storage.block(height)?.ok_or_else(|| ReplicaError::Corrupt(format!("block {height} is missing")))?;
        let h = &cb.block.header;
        if h.height != height || h.prev_hash != state.head() {
            return Err(ReplicaError::Corrupt(format!("stored block {height} does not extend block {}", height - 1)));
        }
        state.apply_block(&cb.block);
    }
    Ok(state)
}

/// Applies a block that the caller has checked to extend `state`, then stores it durably with
/// its receipts. The state advances before storage is written; a storage failure leaves the
/// node unable to continue (the caller halts), never with a wrong answer.
pub fn append<S: Storage>(
    state: &mut State,
    storage: &mut S,
    cb: &CommittedBlock,
) -> Result<Vec<Receipt>, StorageError> {
    assert_eq!(cb.block.header.height, state.height() + 1, "append: block does not follow the head");
    assert_eq!(cb.block.header.prev_hash, state.head(), "append: block does not link to the head");
    let receipts = state.apply_block(&cb.block);
    storage.commit_block(cb, &receipts)?;
    Ok(receipts)
}
