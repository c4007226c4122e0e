//! What the driver drives: a validator's [`Replica`] or an auditor's [`Follower`], behind one
//! small trait so the driver, the API and the tests treat both alike.

use crate::node::{NodeConfig, NodeError};
use engine::codec::Digest;
use engine::crypto::SigningKey;
use engine::genesis::Genesis;
use engine::pbft::message::{NodeId, ReplicaId};
use engine::pbft::{Action, Event, Follower, FollowerConfig, Replica, ReplicaConfig};
use engine::state::State;
use engine::storage::{RedbStorage, Storage};

/// How often an auditor asks a validator for new blocks (besides the blocks pushed to it).
pub const FOLLOWER_POLL_INTERVAL_MS: u64 = 500;

/// The chain database's file name inside the data folder.
pub const CHAIN_DB_FILE: &str = "chain.redb";

/// A snapshot of the consensus core for the status endpoint and tests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CoreStatus {
    /// Height of the last committed block.
    pub height: u64,
    /// Its hash (the genesis hash at height 0).
    pub head: Digest,
    /// The current view (validators only).
    pub view: Option<u64>,
    /// The primary of the current view (validators only).
    pub primary: Option<ReplicaId>,
    /// A view change is in progress.
    pub view_changing: bool,
    /// Client transactions waiting to be proposed.
    pub pending_txs: usize,
}

/// A replica or a follower, as the driver sees it.
pub trait Core: Send + 'static {
    /// Feeds one event; returns what to do.
    fn handle(&mut self, event: Event) -> Vec<Action>;
    /// A status snapshot.
    fn status(&self) -> CoreStatus;
    /// The ledger state at the head.
    fn state(&self) -> &State;
    /// The chain storage, for reads.
    fn storage(&self) -> &dyn Storage;
}

impl<S: Storage + 'static> Core for Replica<S> {
    fn handle(&mut self, event: Event) -> Vec<Action> {
        Replica::handle(self, event)
    }
    fn status(&self) -> CoreStatus {
        let s = Replica::status(self);
        CoreStatus {
            height: s.height,
            head: s.head,
            view: Some(s.view),
            primary: Some(s.primary),
            view_changing: s.view_changing,
            pending_txs: s.pending_txs,
        }
    }
    fn state(&self) -> &State {
        Replica::state(self)
    }
    fn storage(&self) -> &dyn Storage {
        Replica::<S>::storage(self)
    }
}

impl<S: Storage + 'static> Core for Follower<S> {
    fn handle(&mut self, event: Event) -> Vec<Action> {
        Follower::handle(self, event)
    }
    fn status(&self) -> CoreStatus {
        let s = Follower::status(self);
        CoreStatus { height: s.height, head: s.head, view: None, primary: None, view_changing: false, pending_txs: 0 }
    }
    fn state(&self) -> &State {
        Follower::state(self)
    }
    fn storage(&self) -> &dyn Storage {
        Follower::<S>::storage(self)
    }
}

/// Opens the chain database in the data folder and the replica (validator) or follower
/// (auditor) on it.
pub(crate) fn open(
    config: &NodeConfig,
    genesis: &Genesis,
    me: NodeId,
    key: SigningKey,
) -> Result<Box<dyn Core>, NodeError> {
    let path = config.data_dir.join(CHAIN_DB_FILE);
    let storage =
        RedbStorage::open(&path).map_err(|source| NodeError::Storage { path: config.data_dir.clone(), source })?;
    open_on(config, genesis, me, key, storage)
}

/// Opens the replica or follower on the given storage.
pub(crate) fn open_on<S: Storage + 'static>(
    config: &NodeConfig,
    genesis: &Genesis,
    me: NodeId,
    key: SigningKey,
    storage: S,
) -> Result<Box<dyn Core>, NodeError> {
    if (me as usize) < genesis.body.validators.len() {
        let replica = Replica::open(
            ReplicaConfig {
                genesis: genesis.clone(),
                me,
                key,
                batch_txs: config.batch_txs,
                batch_delay_ms: config.batch_delay_ms,
                view_change_timeout_ms: config.view_change_timeout_ms,
                pending_txs_max: config.pending_txs_max,
            },
            storage,
        )?;
        Ok(Box::new(replica))
    } else {
        let follower = Follower::open(
            FollowerConfig { genesis: genesis.clone(), me, key, poll_interval_ms: FOLLOWER_POLL_INTERVAL_MS },
            storage,
        )?;
        Ok(Box::new(follower))
    }
}
