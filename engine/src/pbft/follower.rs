//! The follower: what an auditor node runs. It opens its chain like a replica, pulls committed
//! blocks with their certificates from validators (StateRequest / StateResponse), checks their
//! shape and linkage (signatures were batch-verified by the driver), applies and stores them.
//! It never votes and never signs anything but its state requests.

use super::chain;
use super::error::{MessageError, ReplicaError};
use super::message::{Message, NodeId, SignedMessage, StateRequest};
use super::replica::STATE_CHUNK_BLOCKS_MAX;
use super::rules;
use super::{Action, Event};
use crate::codec::Digest;
use crate::crypto::SigningKey;
use crate::genesis::Genesis;
use crate::state::{State, TxError};
use crate::storage::Storage;

/// How a follower is set up.
#[derive(Clone, Debug)]
pub struct FollowerConfig {
    /// The chain's genesis.
    pub genesis: Genesis,
    /// This node's id: an auditor's (validators come first in node ids).
    pub me: NodeId,
    /// This node's key; must be auditor `me`'s key in the genesis.
    pub key: SigningKey,
    /// How often (in the ticks' milliseconds) to ask a validator for new blocks.
    pub poll_interval_ms: u64,
}

/// A snapshot of a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerStatus {
    /// Height of the last applied block.
    pub height: u64,
    /// Its hash (the genesis hash at height 0).
    pub head: Digest,
}

/// An auditor node's chain follower over storage `S`.
pub struct Follower<S: Storage> {
    cfg: FollowerConfig,
    storage: S,
    state: State,
    last_poll_ms: Option<u64>,
    peer: usize,
    halted: bool,
}

impl<S: Storage> Follower<S> {
    /// Opens a follower: stores or checks the genesis and replays stored blocks.
    pub fn open(config: FollowerConfig, mut storage: S) -> Result<Self, ReplicaError> {
        let genesis = &config.genesis;
        genesis.verify()?;
        let validators = genesis.body.validators.len();
        let me = config.me;
        let node = genesis.nodes().nth(me as usize).map(|(_, n)| n.key);
        if (me as usize) < validators || node.is_none() {
            return Err(ReplicaError::BadIdentity { me, reason: "not an auditor of the genesis".into() });
        }
        if node != Some(config.key.public()) {
            return Err(ReplicaError::BadIdentity { me, reason: "the signing key is not this auditor's key".into() });
        }
        let state = chain::open_chain(genesis, &mut storage)?;
        Ok(Follower { cfg: config, storage, state, last_poll_ms: None, peer: 0, halted: false })
    }

    /// Feeds one event. Only state responses from validators and ticks do anything.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Message(m) => {
                let from = m.from;
                if let Err(reason) = self.on_message(m, &mut out) {
                    out.push(Action::Dropped { from, reason });
                }
            }
            Event::Transactions(txs) => {
                for tx in txs {
                    let reason =
                        TxError::Conflict("auditor nodes do not accept transactions; send it to a validator".into());
                    out.push(Action::Refused { tx: tx.id(), reason });
                }
            }
            Event::Tick { now_ms } => self.on_tick(now_ms, &mut out),
        }
        out
    }

    fn on_message(&mut self, m: SignedMessage, out: &mut Vec<Action>) -> Result<(), MessageError> {
        if self.halted {
            return Err(MessageError::Halted);
        }
        let validators = self.cfg.genesis.body.validators.len();
        if m.from as usize >= validators {
            return Err(MessageError::NotValidator(m.from));
        }
        let Message::StateResponse(resp) = m.message else {
            return Err(MessageError::NotAccepted(m.message.kind()));
        };
        let mut applied = 0;
        for cb in resp.blocks.into_iter().take(STATE_CHUNK_BLOCKS_MAX as usize) {
            let height = self.state.height();
            if cb.block.header.height <= height {
                continue;
            }
            rules::check_committed_block(
                &cb,
                &self.cfg.genesis,
                height,
                &self.state.head(),
                self.state.timestamp_ms(),
            )?;
            match chain::append(&mut self.state, &mut self.storage, &cb) {
                Ok(receipts) => out.push(Action::Committed { block: cb, receipts }),
                Err(e) => {
                    self.halted = true;
                    out.push(Action::Halted { reason: e.to_string() });
                    return Ok(());
                }
            }
            applied += 1;
        }
        // A full chunk means there is probably more: ask again at once.
        if applied as u64 == STATE_CHUNK_BLOCKS_MAX {
            self.request(out);
        }
        Ok(())
    }

    fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        if self.halted || self.last_poll_ms.is_some_and(|t| now_ms < t + self.cfg.poll_interval_ms) {
            return;
        }
        self.last_poll_ms = Some(now_ms);
        self.request(out);
    }

    fn request(&mut self, out: &mut Vec<Action>) {
        let validators = self.cfg.genesis.body.validators.len();
        self.peer = (self.peer + 1) % validators;
        let h = self.state.height();
        let req = StateRequest { from: h + 1, to: h + STATE_CHUNK_BLOCKS_MAX };
        let message =
            SignedMessage::sign(self.cfg.genesis.chain_id(), self.cfg.me, Message::StateRequest(req), &self.cfg.key);
        out.push(Action::Send { to: self.peer as NodeId, message });
    }

    /// Height and head.
    pub fn status(&self) -> FollowerStatus {
        FollowerStatus { height: self.state.height(), head: self.state.head() }
    }

    /// The ledger state at the head.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Gives the storage back.
    pub fn into_storage(self) -> S {
        self.storage
    }
}
