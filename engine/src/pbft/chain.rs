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
        let receipts = state.apply_block(&cb.block);
        if let Some(stored) = storage.receipts(height)? {
            check_replay(height, &stored, &receipts)?;
        }
    }
    Ok(state)
}

/// The receipts of a replayed block must say what the stored ones say: which transactions
/// applied, and of the others, which rule refused them (the wording of a reason may change
/// between versions, the rule may not). Anything else means the ledger was written under other
/// rules, and going on would serve a state no other node has.
fn check_replay(height: u64, stored: &[Receipt], replayed: &[Receipt]) -> Result<(), ReplicaError> {
    use crate::state::Outcome;
    let kind = |o: &Outcome| match o {
        Outcome::Applied => None,
        Outcome::Rejected(e) => Some(std::mem::discriminant(e)),
    };
    let differs = stored.len() != replayed.len()
        || stored.iter().zip(replayed).any(|(a, b)| a.tx != b.tx || kind(&a.outcome) != kind(&b.outcome));
    if !differs {
        return Ok(());
    }
    let show = |o: &Outcome| match o {
        Outcome::Applied => "applied".to_string(),
        Outcome::Rejected(e) => format!("rejected ({e})"),
    };
    let first = stored
        .iter()
        .zip(replayed)
        .find(|(a, b)| a.tx != b.tx || kind(&a.outcome) != kind(&b.outcome))
        .map(|(a, b)| format!("transaction {}: stored {}, replayed {}", a.tx, show(&a.outcome), show(&b.outcome)))
        .unwrap_or_else(|| format!("{} receipts stored, {} replayed", stored.len(), replayed.len()));
    Err(ReplicaError::Corrupt(format!(
        "block {height}: replaying it gives other receipts than the stored ones ({first}); the ledger \
         was written under other rules: run the medchain version that wrote it, or start from a fresh \
         data folder"
    )))
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
