//! Unit tests of the replica through its public contract: a tiny in-order network that verifies
//! every signature `signature_checks` names before delivering, as a driver would.

use super::message::{Message, PrePrepare, SignedMessage, StateRequest, Vote};
use super::rules::{self, StableCheckpoint};
use super::*;
use crate::block::{Block, BlockHeader, CommitCertificate};
use crate::crypto::{self, ChainId, PublicKey};
use crate::genesis::{ChainParams, GenesisBody, NodeInfo};
use crate::state::{Outcome, State, TxError};
use crate::storage::{MemStorage, Storage};
use crate::tx::{Enroll, Payload, Role, TxBody, TxId};
use std::collections::{BTreeSet, VecDeque};

const T0: u64 = 1_700_000_000_000;
const TIMEOUT_MS: u64 = 1_000;

fn key(i: u8) -> SigningKey {
    SigningKey::from_seed([i + 1; 32])
}

fn genesis(n: usize, auditors: usize) -> (Genesis, SigningKey) {
    let ca = SigningKey::from_seed([0xCA; 32]);
    let g = GenesisBody {
        chain_id: ChainId::new("pbft-test").unwrap(),
        created_at_ms: T0,
        ca_key: ca.public(),
        validators: (0..n).map(|i| NodeInfo { name: format!("v{i}"), key: key(i as u8).public() }).collect(),
        auditors: (0..auditors).map(|i| NodeInfo { name: format!("a{i}"), key: key(100 + i as u8).public() }).collect(),
        params: ChainParams { checkpoint_interval: 2, watermark_window: 4, block_txs_max: 16 },
    }
    .sign(&ca);
    (g, ca)
}

fn config(g: &Genesis, me: u16) -> ReplicaConfig {
    ReplicaConfig {
        genesis: g.clone(),
        me,
        key: key(me as u8),
        batch_txs: 1,
        batch_delay_ms: 0,
        view_change_timeout_ms: TIMEOUT_MS,
        pending_txs_max: 100,
    }
}

/// The CA enrols researcher number `nonce`.
fn enroll(g: &Genesis, ca: &SigningKey, nonce: u64) -> Transaction {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&nonce.to_le_bytes());
    TxBody {
        sender: ca.public(),
        nonce,
        expiry_height: 1_000,
        payload: Payload::Enroll(Enroll { key: PublicKey(k), role: Role::Researcher, name: format!("r{nonce}") }),
    }
    .sign(g.chain_id(), &[ca])
}

struct Net {
    g: Genesis,
    ca: SigningKey,
    reps: Vec<Option<Replica<MemStorage>>>,
    queue: VecDeque<(usize, usize, SignedMessage)>,
    /// Nodes whose traffic (in and out) is lost.
    cut: BTreeSet<usize>,
    /// Message kinds that are lost.
    lost_kinds: BTreeSet<&'static str>,
    now: u64,
    dropped: Vec<(usize, MessageError)>,
    refused: Vec<(usize, TxId, TxError)>,
}

impl Net {
    fn new(n: usize) -> Net {
        let (g, ca) = genesis(n, 0);
        let reps = (0..n).map(|i| Some(Replica::open(config(&g, i as u16), MemStorage::new()).unwrap())).collect();
        Net {
            g,
            ca,
            reps,
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            lost_kinds: BTreeSet::new(),
            now: T0,
            dropped: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn rep(&self, i: usize) -> &Replica<MemStorage> {
        self.reps[i].as_ref().unwrap()
    }

    fn handle(&mut self, i: usize, ev: Event) -> Vec<Action> {
        let acts = self.reps[i].as_mut().unwrap().handle(ev);
        for a in &acts {
            match a {
                Action::Send { to, message } => self.queue.push_back((i, *to as usize, message.clone())),
                Action::Broadcast { message } => {
                    for j in (0..self.reps.len()).filter(|j| *j != i) {
                        self.queue.push_back((i, j, message.clone()));
                    }
                }
                Action::Dropped { reason, .. } => self.dropped.push((i, reason.clone())),
                Action::Refused { tx, reason } => self.refused.push((i, *tx, reason.clone())),
                Action::Halted { reason } => panic!("replica {i} halted: {reason}"),
                _ => {}
            }
        }
        acts
    }

    fn deliver_all(&mut self) {
        let mut budget = 100_000;
        while let Some((from, to, m)) = self.queue.pop_front() {
            budget -= 1;
            assert!(budget > 0, "the network does not quiesce");
            let lost = self.lost_kinds.contains(m.message.kind());
            if lost || self.cut.contains(&from) || self.cut.contains(&to) || self.reps[to].is_none() {
                continue;
            }
            for c in signature_checks(&m, &self.g).unwrap() {
                assert!(crypto::verify_raw(&c.key, &c.sig, &c.msg), "bad signature in a {}", m.message.kind());
            }
            self.handle(to, Event::Message(m));
        }
    }

    fn tick(&mut self, ms: u64) {
        self.now += ms;
        for i in 0..self.reps.len() {
            if self.reps[i].is_some() {
                self.handle(i, Event::Tick { now_ms: self.now });
            }
        }
        self.deliver_all();
    }

    fn submit(&mut self, to: usize, nonce: u64) -> Vec<Action> {
        let tx = enroll(&self.g, &self.ca, nonce);
        let acts = self.handle(to, Event::Transactions(vec![tx]));
        self.deliver_all();
        acts
    }

    /// Crashes replica `i` and restarts it from its storage.
    fn restart(&mut self, i: usize) {
        let storage = self.reps[i].take().unwrap().into_storage();
        self.reps[i] = Some(Replica::open(config(&self.g, i as u16), storage).unwrap());
    }

    fn heights(&self) -> Vec<u64> {
        self.reps.iter().map(|r| r.as_ref().map(|r| r.status().height).unwrap_or(0)).collect()
    }
}

fn signed(g: &Genesis, from: u16, m: Message) -> SignedMessage {
    SignedMessage::sign(g.chain_id(), from, m, &key(from as u8))
}

/// A valid block at `seq` after `prev` proposed by replica `proposer` in `view`.
fn block(g: &Genesis, seq: u64, view: u64, prev: Digest, proposer: u16, txs: Vec<Transaction>) -> Block {
    let mut b = Block {
        header: BlockHeader {
            chain_id: g.chain_id().clone(),
            height: seq,
            view,
            prev_hash: prev,
            timestamp_ms: T0 + 1,
            tx_root: Digest::ZERO,
            tx_count: txs.len() as u32,
            proposer,
        },
        txs,
    };
    b.header.tx_root = b.compute_tx_root();
    b
}

fn pre_prepare(g: &Genesis, view: u64, seq: u64, b: Block) -> SignedMessage {
    let primary = (view % g.body.validators.len() as u64) as u16;
    signed(g, primary, Message::PrePrepare(PrePrepare { view, seq, block: b }))
}

fn entries_contain(storage: &MemStorage, m: &SignedMessage) -> bool {
    let bytes = crate::codec::encode(m);
    storage.consensus_entries().unwrap().iter().any(|(_, v)| *v == bytes)
}

#[test]
fn normal_case_commits_with_a_valid_certificate() {
    let mut net = Net::new(4);
    net.tick(1);
    let acts = net.submit(2, 1); // a backup forwards to the primary
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Send { to: 0, message } if matches!(message.message, Message::Forward(_)))));
    net.tick(1);
    assert_eq!(net.heights(), vec![1, 1, 1, 1]);
    let validators = net.g.validator_set();
    for i in 0..4 {
        let cb = net.rep(i).storage().block(1).unwrap().unwrap();
        assert_eq!(cb.block.txs.len(), 1);
        cb.certificate.verify(net.g.chain_id(), &validators, 1, &cb.block.hash()).unwrap();
        assert_eq!(net.rep(i).status().pending_txs, 0);
    }
    // Several blocks in flight, checkpoints, truncation.
    for nonce in 2..=7 {
        net.submit(0, nonce);
    }
    net.tick(1);
    let h = net.heights();
    assert!(h.iter().all(|x| *x == h[0]) && h[0] >= 3, "{h:?}");
    assert!(net.rep(1).status().stable_checkpoint >= 2);
    assert!(net.dropped.iter().all(|(_, e)| !matches!(e, MessageError::BadHeader(_))));
}

#[test]
fn votes_are_durable_before_the_action_that_sends_them() {
    let mut net = Net::new(4);
    net.tick(1);
    let b = block(&net.g, 1, 0, net.g.hash(), 0, vec![enroll(&net.g, &net.ca, 1)]);
    let digest = b.hash();
    let acts = net.reps[1].as_mut().unwrap().handle(Event::Message(pre_prepare(&net.g, 0, 1, b)));
    let prepare = acts
        .iter()
        .find_map(|a| match a {
            Action::Broadcast { message } if matches!(message.message, Message::Prepare(_)) => Some(message.clone()),
            _ => None,
        })
        .expect("a backup prepares a valid proposal");
    assert!(entries_contain(net.rep(1).storage(), &prepare), "PREPARE sent before it was stored");
    // Two more prepares make it prepared: the COMMIT is stored before it is returned.
    let mut commit = None;
    for r in [2u16, 3] {
        let p = signed(&net.g, r, Message::Prepare(Vote { view: 0, seq: 1, digest }));
        for a in net.reps[1].as_mut().unwrap().handle(Event::Message(p)) {
            if let Action::Broadcast { message } = a {
                if matches!(message.message, Message::Commit(_)) {
                    commit = Some(message);
                }
            }
        }
    }
    let commit = commit.expect("prepared after 2f prepares");
    assert!(entries_contain(net.rep(1).storage(), &commit), "COMMIT sent before it was stored");
}

#[test]
fn refuses_bad_proposals_and_votes_with_typed_reasons() {
    let mut net = Net::new(4);
    net.tick(1);
    let g = net.g.clone();
    let b = block(&g, 1, 0, g.hash(), 0, vec![]);
    let digest = b.hash();
    let r1 = net.reps[1].as_mut().unwrap();
    // A proposal from a replica that is not the primary.
    let fake =
        signed(&g, 2, Message::PrePrepare(PrePrepare { view: 0, seq: 1, block: block(&g, 1, 0, g.hash(), 2, vec![]) }));
    let acts = r1.handle(Event::Message(fake));
    assert!(
        matches!(acts.as_slice(), [Action::Dropped { from: 2, reason: MessageError::NotPrimary { .. } }]),
        "{acts:?}"
    );
    // A block whose tx_root lies.
    let mut bad = b.clone();
    bad.header.tx_count = 3;
    let acts = r1.handle(Event::Message(pre_prepare(&g, 0, 1, bad)));
    assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::BadHeader(_), .. }]), "{acts:?}");
    // The real proposal, then a vote for another block.
    r1.handle(Event::Message(pre_prepare(&g, 0, 1, b)));
    let wrong = signed(&g, 2, Message::Prepare(Vote { view: 0, seq: 1, digest: Digest([9; 32]) }));
    let acts = r1.handle(Event::Message(wrong));
    assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::WrongDigest { .. }, .. }]), "{acts:?}");
    // A second, different proposal for the same (view, seq).
    let other = block(&g, 1, 0, g.hash(), 0, vec![enroll(&g, &net.ca, 1)]);
    let acts = r1.handle(Event::Message(pre_prepare(&g, 0, 1, other)));
    assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::ConflictingPrePrepare { .. }, .. }]));
    // The same vote twice.
    let v = signed(&g, 3, Message::Prepare(Vote { view: 0, seq: 1, digest }));
    r1.handle(Event::Message(v.clone()));
    let acts = r1.handle(Event::Message(v));
    assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::Duplicate(_), .. }]), "{acts:?}");
    // A flood of votes for far-future seqs and views: all refused, memory stays bounded.
    let slots_before = r1.slot_count();
    for seq in 5..2_005u64 {
        let m = signed(&g, 2, Message::Commit(Vote { view: 0, seq: seq * 1_000, digest }));
        let acts = r1.handle(Event::Message(m));
        assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::OutsideWindow { .. }, .. }]));
        let m = signed(&g, 2, Message::Prepare(Vote { view: seq, seq: 2, digest }));
        let acts = r1.handle(Event::Message(m));
        assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::ViewAhead { .. }, .. }]));
    }
    assert_eq!(r1.slot_count(), slots_before);
    // Consensus messages from an auditor or an unknown node are refused before any signature work.
    let (ga, _) = genesis(4, 1);
    let from_auditor =
        SignedMessage::sign(ga.chain_id(), 4, Message::Prepare(Vote { view: 0, seq: 1, digest }), &key(100));
    assert_eq!(signature_checks(&from_auditor, &ga), Err(MessageError::NotValidator(4)));
    let req = SignedMessage::sign(ga.chain_id(), 4, Message::StateRequest(StateRequest { from: 1, to: 2 }), &key(100));
    assert_eq!(signature_checks(&req, &ga).unwrap().len(), 1);
    let unknown =
        SignedMessage::sign(ga.chain_id(), 9, Message::StateRequest(StateRequest { from: 1, to: 2 }), &key(9));
    assert_eq!(signature_checks(&unknown, &ga), Err(MessageError::UnknownSender(9)));
}

#[test]
fn a_silent_primary_is_replaced_by_a_view_change() {
    let mut net = Net::new(4);
    net.tick(1);
    net.submit(1, 1);
    net.tick(1);
    assert_eq!(net.heights(), vec![1; 4]);
    net.cut.insert(0);
    net.submit(2, 2);
    for _ in 0..12 {
        net.tick(TIMEOUT_MS / 4);
    }
    for i in 1..4 {
        let s = net.rep(i).status();
        assert_eq!((s.view, s.primary, s.view_changing), (1, 1, false), "replica {i}: {s:?}");
        assert_eq!(s.height, 2, "replica {i} commits the pending tx in the new view");
    }
    // The old primary comes back and catches up (new view, then blocks).
    net.cut.clear();
    net.submit(3, 3);
    for _ in 0..8 {
        net.tick(TIMEOUT_MS / 4);
    }
    assert_eq!(net.heights(), vec![3; 4]);
    assert_eq!(net.rep(0).status().view, 1);
}

#[test]
fn a_restarted_replica_does_not_equivocate() {
    let (g, ca) = genesis(4, 0);
    let mut r = Replica::open(config(&g, 1), MemStorage::new()).unwrap();
    r.handle(Event::Tick { now_ms: T0 });
    let a = block(&g, 1, 0, g.hash(), 0, vec![enroll(&g, &ca, 1)]);
    let acts = r.handle(Event::Message(pre_prepare(&g, 0, 1, a.clone())));
    assert!(acts
        .iter()
        .any(|x| matches!(x, Action::Broadcast { message } if matches!(message.message, Message::Prepare(_)))));
    // Crash and reopen from storage.
    let storage = r.into_storage();
    let mut r = Replica::open(config(&g, 1), storage).unwrap();
    r.handle(Event::Tick { now_ms: T0 + 5 });
    // A different block for the same (view, seq) is refused: no second PREPARE.
    let b = block(&g, 1, 0, g.hash(), 0, vec![]);
    let acts = r.handle(Event::Message(pre_prepare(&g, 0, 1, b)));
    assert!(
        matches!(
            acts.as_slice(),
            [Action::Dropped { reason: MessageError::ConflictingPrePrepare { view: 0, seq: 1 }, .. }]
        ),
        "{acts:?}"
    );
    // The first block still gathers votes and commits after the restart.
    let digest = a.hash();
    let mut committed = false;
    for m in [
        signed(&g, 2, Message::Prepare(Vote { view: 0, seq: 1, digest })),
        signed(&g, 0, Message::Commit(Vote { view: 0, seq: 1, digest })),
        signed(&g, 2, Message::Commit(Vote { view: 0, seq: 1, digest })),
    ] {
        committed |= r.handle(Event::Message(m)).iter().any(|x| matches!(x, Action::Committed { .. }));
    }
    assert!(committed);
    assert_eq!(r.status().height, 1);
    // Reopening after the commit rebuilds the state and keeps the block.
    let r = Replica::open(config(&g, 1), r.into_storage()).unwrap();
    assert_eq!((r.status().height, r.status().head), (1, digest));
    // Another chain's genesis is refused on the same storage.
    let (other, _) = genesis(7, 0);
    assert!(matches!(
        Replica::open(config(&other, 1), r.into_storage()),
        Err(ReplicaError::GenesisMismatch { .. } | ReplicaError::BadIdentity { .. })
    ));
}

#[test]
fn a_lagging_replica_catches_up_by_state_transfer() {
    let mut net = Net::new(4);
    net.tick(1);
    net.cut.insert(3);
    for nonce in 1..=12 {
        net.submit(0, nonce);
        net.tick(1);
    }
    let h = net.rep(0).status().height;
    assert!(h >= 8, "the others go on without replica 3 (height {h})");
    assert_eq!(net.rep(3).status().height, 0);
    assert!(net.rep(0).status().stable_checkpoint > net.g.body.params.watermark_window);
    net.cut.clear();
    for _ in 0..6 {
        net.tick(TIMEOUT_MS / 4);
    }
    assert_eq!(net.rep(3).status().height, h);
    assert_eq!(net.rep(3).status().head, net.rep(0).status().head);
    // And it takes part again.
    net.submit(3, 13);
    net.tick(1);
    assert_eq!(net.heights(), vec![h + 1; 4]);
}

#[test]
fn state_transfer_blocks_need_linkage_and_a_quorum_certificate() {
    let mut net = Net::new(4);
    net.tick(1);
    for nonce in 1..=3 {
        net.submit(0, nonce);
        net.tick(1);
    }
    let mut resp = Vec::new();
    for h in 1..=3 {
        resp.push(net.rep(0).storage().block(h).unwrap().unwrap());
    }
    let head = net.g.hash();
    rules::check_committed_block(&resp[0], &net.g, 0, &head, T0).unwrap();
    let mut tampered = resp[0].clone();
    tampered.certificate.votes.truncate(2);
    assert!(matches!(
        rules::check_committed_block(&tampered, &net.g, 0, &head, T0),
        Err(MessageError::BadCertificate(_))
    ));
    assert!(matches!(rules::check_committed_block(&resp[1], &net.g, 0, &head, T0), Err(MessageError::Unlinked { .. })));
}

#[test]
fn a_follower_follows_a_cluster_with_an_auditor() {
    let (g, ca) = genesis(4, 1);
    let mut reps: Vec<Replica<MemStorage>> =
        (0..4).map(|i| Replica::open(config(&g, i), MemStorage::new()).unwrap()).collect();
    let fcfg = FollowerConfig { genesis: g.clone(), me: 4, key: key(100), poll_interval_ms: 10 };
    let mut follower = Follower::open(fcfg, MemStorage::new()).unwrap();
    let mut queue: VecDeque<(usize, SignedMessage)> = VecDeque::new();
    let push = |q: &mut VecDeque<(usize, SignedMessage)>, from: usize, acts: Vec<Action>| {
        for a in acts {
            match a {
                Action::Send { to, message } => q.push_back((to as usize, message)),
                Action::Broadcast { message } => {
                    (0..4).filter(|j| *j != from).for_each(|j| q.push_back((j, message.clone())))
                }
                _ => {}
            }
        }
    };
    let mut now = T0;
    for nonce in 1..=5u64 {
        now += 1;
        for (i, r) in reps.iter_mut().enumerate() {
            let acts = r.handle(Event::Tick { now_ms: now });
            push(&mut queue, i, acts);
        }
        let acts = reps[0].handle(Event::Transactions(vec![enroll(&g, &ca, nonce)]));
        push(&mut queue, 0, acts);
        let acts = follower.handle(Event::Tick { now_ms: now * 100 });
        push(&mut queue, 4, acts);
        while let Some((to, m)) = queue.pop_front() {
            signature_checks(&m, &g).unwrap();
            if to == 4 {
                let acts = follower.handle(Event::Message(m));
                assert!(acts.iter().all(|a| !matches!(a, Action::Dropped { .. })), "{acts:?}");
            } else {
                let acts = reps[to].handle(Event::Message(m));
                push(&mut queue, to, acts);
            }
        }
    }
    let acts = follower.handle(Event::Tick { now_ms: u64::MAX / 2 });
    push(&mut queue, 4, acts);
    while let Some((to, m)) = queue.pop_front() {
        if to == 4 {
            follower.handle(Event::Message(m));
        } else {
            let acts = reps[to].handle(Event::Message(m));
            push(&mut queue, to, acts);
        }
    }
    assert_eq!(reps[0].status().height, 5);
    assert_eq!(follower.status().height, 5);
    assert_eq!(follower.status().head, reps[0].status().head);
    // It never votes: a proposal sent to it is refused.
    let pp = pre_prepare(&g, 0, 6, block(&g, 6, 0, reps[0].status().head, 0, vec![]));
    let acts = follower.handle(Event::Message(pp));
    assert!(matches!(acts.as_slice(), [Action::Dropped { reason: MessageError::NotAccepted(_), .. }]));
}

#[test]
fn new_view_re_proposes_the_prepared_chain_and_cuts_at_a_gap() {
    let (g, _) = genesis(4, 0);
    let b1 = block(&g, 1, 0, g.hash(), 0, vec![]);
    let b2 = block(&g, 2, 0, b1.hash(), 0, vec![]);
    let b4 = block(&g, 4, 0, Digest([4; 32]), 0, vec![]);
    let proof = |b: &Block| {
        let seq = b.header.height;
        let digest = b.hash();
        super::message::PreparedProof {
            pre_prepare: pre_prepare(&g, 0, seq, b.clone()),
            prepares: [1u16, 2]
                .iter()
                .map(|r| signed(&g, *r, Message::Prepare(Vote { view: 0, seq, digest })))
                .collect(),
        }
    };
    let genesis_cp = StableCheckpoint::genesis(&g);
    let vc = |prepared: Vec<super::message::PreparedProof>| super::message::ViewChange {
        new_view: 1,
        checkpoint: genesis_cp.checkpoint,
        checkpoint_proof: vec![],
        prepared,
    };
    let a = vc(vec![proof(&b1), proof(&b2)]);
    let b = vc(vec![proof(&b1), proof(&b4)]);
    let c = vc(vec![]);
    for v in [&a, &b, &c] {
        rules::check_view_change(v, &g).unwrap();
    }
    let plan = rules::compute_new_view(&[&a, &b, &c], &g).unwrap();
    assert_eq!(plan.blocks, vec![b1.clone(), b2]);
    let plan = rules::compute_new_view(&[&c], &g).unwrap();
    assert!(plan.blocks.is_empty());
    // A prepared proof with too few prepares is refused.
    let mut weak = proof(&b1);
    weak.prepares.pop();
    assert!(rules::check_view_change(&vc(vec![weak]), &g).is_err());
}

#[test]
fn signature_checks_cover_nested_messages_and_refuse_wrong_kinds() {
    let (g, ca) = genesis(4, 0);
    let b1 = block(&g, 1, 0, g.hash(), 0, vec![enroll(&g, &ca, 1)]);
    let digest = b1.hash();
    let prepare = |r: u16| signed(&g, r, Message::Prepare(Vote { view: 0, seq: 1, digest }));
    let proof = super::message::PreparedProof {
        pre_prepare: pre_prepare(&g, 0, 1, b1),
        prepares: vec![prepare(1), prepare(2)],
    };
    let vc = super::message::ViewChange {
        new_view: 1,
        checkpoint: StableCheckpoint::genesis(&g).checkpoint,
        checkpoint_proof: vec![],
        prepared: vec![proof],
    };
    let m = signed(&g, 3, Message::ViewChange(vc.clone()));
    let checks = signature_checks(&m, &g).unwrap();
    // The envelope, the nested pre-prepare, the transaction it carries, two prepares.
    assert_eq!(checks.len(), 5);
    assert!(checks.iter().all(|c| crypto::verify_raw(&c.key, &c.sig, &c.msg)));
    // A tampered nested prepare is among the checks and fails.
    let mut forged = vc.clone();
    forged.prepared[0].prepares[1].signature = forged.prepared[0].prepares[0].signature;
    let checks = signature_checks(&signed(&g, 3, Message::ViewChange(forged)), &g).unwrap();
    assert_eq!(checks.iter().filter(|c| !crypto::verify_raw(&c.key, &c.sig, &c.msg)).count(), 1);
    // A prepare where a checkpoint belongs is refused outright.
    let mut wrong = vc.clone();
    wrong.checkpoint_proof = vec![prepare(1)];
    assert_eq!(
        signature_checks(&signed(&g, 3, Message::ViewChange(wrong)), &g),
        Err(MessageError::UnexpectedNested { got: "prepare", expected: "checkpoint" })
    );
    // A NEW-VIEW's view changes are checked recursively.
    let nv = super::message::NewView { view: 1, view_changes: vec![m.clone(), m], pre_prepares: vec![] };
    assert_eq!(signature_checks(&signed(&g, 1, Message::NewView(nv)), &g).unwrap().len(), 1 + 2 * 5);
}

/// `count` CA enrolments with nonces from 1, sharing one signature: the replica trusts its
/// driver to have checked signatures, and signing thousands would only slow the test.
fn enrolments(g: &Genesis, ca: &SigningKey, count: u64) -> Vec<Transaction> {
    let template = enroll(g, ca, 1);
    (1..=count)
        .map(|nonce| {
            let mut body = enroll_body(ca, nonce);
            body.expiry_height = template.body.expiry_height;
            Transaction { body, signatures: template.signatures.clone() }
        })
        .collect()
}

fn enroll_body(ca: &SigningKey, nonce: u64) -> TxBody {
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&nonce.to_le_bytes());
    TxBody {
        sender: ca.public(),
        nonce,
        expiry_height: 1_000_000,
        payload: Payload::Enroll(Enroll { key: PublicKey(k), role: Role::Researcher, name: format!("r{nonce}") }),
    }
}

#[test]
fn proposing_from_a_deep_pool_looks_at_each_transaction_once() {
    // A single validator commits alone, so one event proposes and commits the whole pool:
    // each transaction must be looked at once, not once per proposal (that was O(pool) each).
    let (g, ca) = genesis(1, 0);
    let mut cfg = config(&g, 0);
    cfg.pending_txs_max = 20_000;
    cfg.batch_txs = 16;
    let mut r = Replica::open(cfg, MemStorage::new()).unwrap();
    r.handle(Event::Tick { now_ms: T0 });
    let txs = enrolments(&g, &ca, 10_000);
    let acts = r.handle(Event::Transactions(txs));
    assert!(!acts.iter().any(|a| matches!(a, Action::Refused { .. } | Action::Halted { .. })));
    let st = r.status();
    assert_eq!((st.height, st.pending_txs), (10_000 / 16, 0));
    assert_eq!(r.pool_visits(), 10_000);
}

#[test]
fn a_backup_with_a_deep_pool_forwards_a_batch_per_retransmit_without_scanning_the_pool() {
    let (g, ca) = genesis(4, 0);
    let mut cfg = config(&g, 1);
    cfg.pending_txs_max = 20_000;
    let mut r = Replica::open(cfg, MemStorage::new()).unwrap();
    r.handle(Event::Tick { now_ms: T0 });
    r.handle(Event::Transactions(enrolments(&g, &ca, 10_000)));
    let before = r.pool_visits();
    let block_txs_max = u64::from(g.body.params.block_txs_max);
    let mut forwarded = 0;
    for i in 1..=3 {
        let acts = r.handle(Event::Tick { now_ms: T0 + i * TIMEOUT_MS / 4 });
        for a in acts {
            if let Action::Broadcast { message: SignedMessage { message: Message::Forward(txs), .. } } = a {
                forwarded += txs.len() as u64;
            }
        }
    }
    assert!(!r.status().view_changing);
    assert_eq!(forwarded, 3 * block_txs_max, "each retransmit forwards one full batch");
    assert_eq!(r.pool_visits() - before, 3 * block_txs_max, "and stops there");
}

#[test]
fn a_replica_behind_by_less_than_a_checkpoint_catches_up_in_an_idle_cluster() {
    let mut net = Net::new(4);
    net.tick(1);
    net.cut.insert(3);
    let interval = net.g.body.params.checkpoint_interval;
    // The others commit past a checkpoint, then one block more, and fall idle.
    for nonce in 1..=2 * interval + 1 {
        net.submit(0, nonce);
        net.tick(1);
    }
    let h = net.rep(0).status().height;
    assert_eq!(h, 2 * interval + 1);
    assert_eq!(net.rep(0).status().stable_checkpoint, 2 * interval);
    net.cut.clear();
    // Checkpoint heartbeats show replica 3 how far the others are; state transfer must then
    // bring it to their head, not stop at the checkpoint.
    for _ in 0..4 {
        net.tick(TIMEOUT_MS / 4);
    }
    assert_eq!(net.heights(), vec![h; 4]);
    assert_eq!(net.rep(3).status().head, net.rep(0).status().head);
}

#[test]
fn backups_still_asking_for_an_installed_view_get_its_new_view() {
    // Replica 0 (primary of view 0) is cut off; the others move to view 1, whose primary
    // (replica 1) installs it, but its NEW-VIEW is lost. Backups 2 and 3 restart, forgetting the
    // view changes that armed their timers, and keep asking for view 1. Replica 1 times out in
    // view 1 and asks for view 2 alone. Replica 1 must still answer them with the NEW-VIEW of
    // view 1 (which it installed), or the three wait for each other forever.
    let mut net = Net::new(4);
    net.tick(1);
    net.cut.insert(0);
    net.lost_kinds.insert("new_view");
    for (i, nonce) in [(1, 1), (2, 2), (3, 3)] {
        net.submit(i, nonce);
    }
    for _ in 0..6 {
        net.tick(TIMEOUT_MS / 4);
    }
    let s1 = net.rep(1).status();
    assert_eq!((s1.view, s1.view_changing), (1, false), "replica 1 installed view 1");
    for i in [2, 3] {
        let s = net.rep(i).status();
        assert_eq!((s.view, s.view_changing), (1, true), "replica {i} missed the NEW-VIEW");
        net.restart(i);
    }
    for _ in 0..8 {
        net.tick(TIMEOUT_MS / 4);
    }
    let s1 = net.rep(1).status();
    assert_eq!((s1.view, s1.view_changing), (2, true), "replica 1 timed out in view 1, alone");
    net.lost_kinds.clear();
    for _ in 0..4 {
        net.tick(TIMEOUT_MS / 4);
    }
    for i in [2, 3] {
        assert!(!net.rep(i).status().view_changing, "replica {i} got the NEW-VIEW of view 1");
    }
    // And the cluster is live again: a new transaction commits.
    net.submit(2, 4);
    for _ in 0..40 {
        net.tick(TIMEOUT_MS / 4);
    }
    let heights = net.heights();
    assert!(heights[1..].iter().all(|h| *h >= 1), "heights {heights:?}");
}

#[test]
fn a_deep_but_moving_backlog_starts_no_view_change() {
    // Replica 1 holds 10,000 transactions the primary has not seen (their forwards are lost),
    // while the primary commits a full block of other transactions every half timeout. The
    // backlog moves, so replica 1 must not start a view change.
    let mut net = Net::new(4);
    net.tick(1);
    net.lost_kinds.insert("forward");
    let deep: Vec<Transaction> = enrolments(&net.g, &net.ca, 10_000)
        .into_iter()
        .map(|mut tx| {
            tx.body.nonce += 1_000_000;
            tx
        })
        .collect();
    let mut cfg = config(&net.g, 1);
    cfg.pending_txs_max = 20_000;
    let storage = net.reps[1].take().unwrap().into_storage();
    net.reps[1] = Some(Replica::open(cfg, storage).unwrap());
    net.tick(1);
    net.handle(1, Event::Transactions(deep));
    net.deliver_all();
    assert_eq!(net.rep(1).status().pending_txs, 10_000);
    let full = u64::from(net.g.body.params.block_txs_max);
    let mut nonce = 0;
    for round in 0..12 {
        let txs: Vec<Transaction> = (0..full)
            .map(|_| {
                nonce += 1;
                enroll(&net.g, &net.ca, nonce)
            })
            .collect();
        net.handle(0, Event::Transactions(txs));
        net.deliver_all();
        assert_eq!(net.heights(), vec![round + 1; 4]);
        net.tick(TIMEOUT_MS / 4);
        net.tick(TIMEOUT_MS / 4);
        let s = net.rep(1).status();
        assert!(!s.view_changing && s.view == 0, "round {round}: replica 1 started a view change: {s:?}");
    }
    assert_eq!(net.rep(1).status().pending_txs, 10_000);
}

/// After an idle spell longer than the view-change timeout, the first new proposal must not find
/// its timer already run out: a backup that accepted it waits a full timeout for the votes
/// (it used to time the slot from the last execution, start a view change on the next tick,
/// drop the block's votes as stale and fall behind alone).
#[test]
fn a_proposal_after_an_idle_spell_gets_a_full_timeout() {
    let mut net = Net::new(4);
    net.tick(1);
    net.submit(0, 1);
    net.tick(1);
    assert_eq!(net.heights(), vec![1, 1, 1, 1]);
    net.tick(3 * TIMEOUT_MS);
    assert!(!net.rep(1).status().view_changing);
    let head = net.rep(1).status().head;
    let b = block(&net.g, 2, 0, head, 0, vec![enroll(&net.g, &net.ca, 2)]);
    let pp = pre_prepare(&net.g, 0, 2, b);
    net.handle(1, Event::Message(pp));
    // The other replicas' votes are still on their way: a tick now is not a timeout.
    let now = net.now + 10;
    net.handle(1, Event::Tick { now_ms: now });
    assert!(!net.rep(1).status().view_changing, "a backup gave up on a proposal it received 10 ms ago");
    // A full timeout later with no votes, it does start a view change.
    net.handle(1, Event::Tick { now_ms: now + 2 * TIMEOUT_MS });
    assert!(net.rep(1).status().view_changing);
}

#[test]
fn a_replica_changing_views_alone_still_fetches_the_blocks_it_missed() {
    // Replica 3 is cut off with a transaction in its pool; its timer runs out and it asks for
    // view 1 alone. The others, in view 0, commit a few blocks (fewer than a checkpoint interval,
    // so no checkpoint will show them) and fall idle. Once the cut heals, replica 3 is still
    // changing views (one VIEW-CHANGE is not enough to move the others), and nothing the others
    // send shows it their blocks: it must ask for them itself, or it stays behind until the next
    // checkpoint, which an idle cluster never reaches.
    let mut net = Net::new(4);
    net.tick(1);
    net.cut.insert(3);
    net.submit(3, 1);
    for _ in 0..6 {
        net.tick(TIMEOUT_MS / 4);
    }
    let s3 = net.rep(3).status();
    assert!(s3.view_changing && s3.view >= 1, "replica 3 asks for a new view alone: {s3:?}");
    net.submit(0, 1);
    net.tick(1);
    let h = net.rep(0).status().height;
    assert_eq!(h, 1);
    assert!(h < net.g.body.params.checkpoint_interval);
    assert_eq!(net.rep(0).status().view, 0, "the others stay in view 0");
    net.cut.clear();
    for _ in 0..4 {
        net.tick(TIMEOUT_MS / 4);
    }
    assert_eq!(net.heights(), vec![h; 4]);
    assert_eq!(net.rep(3).status().head, net.rep(0).status().head);
}

#[test]
fn a_pooled_transaction_that_can_no_longer_commit_is_reported_refused() {
    // Replica 1 holds two transactions its cut-off forwards never delivered: another CA
    // transaction with nonce 1, and one with nonce 2 that expires at height 1. The others commit
    // nonce 1 at height 1. When replica 1 gets that block, both leave its pool, and it must say
    // so (whoever submitted them would otherwise see them pending forever).
    let mut net = Net::new(4);
    net.tick(1);
    net.cut.insert(1);
    let mut rival = enroll_body(&net.ca, 1);
    rival.payload = Payload::Enroll(Enroll { key: PublicKey([9; 32]), role: Role::Researcher, name: "rival".into() });
    let rival = rival.sign(net.g.chain_id(), &[&net.ca]);
    let mut short = enroll_body(&net.ca, 2);
    short.expiry_height = 1;
    let short = short.sign(net.g.chain_id(), &[&net.ca]);
    let (rival_id, short_id) = (rival.id(), short.id());
    net.handle(1, Event::Transactions(vec![rival, short]));
    assert!(net.refused.is_empty(), "both are admitted: {:?}", net.refused);
    net.submit(0, 1);
    net.tick(1);
    assert_eq!(net.rep(0).status().height, 1);
    net.cut.clear();
    for _ in 0..4 {
        net.tick(TIMEOUT_MS / 4);
    }
    assert_eq!(net.heights(), vec![1; 4]);
    let mut at_1: Vec<(TxId, TxError)> =
        net.refused.iter().filter(|(i, _, _)| *i == 1).map(|(_, id, e)| (*id, e.clone())).collect();
    at_1.sort_by_key(|(id, _)| *id == short_id);
    assert!(
        matches!(&at_1[..], [(a, TxError::StaleNonce { last: 1, got: 1, .. }), (b, TxError::Expired { expiry_height: 1, height: 2 })]
            if *a == rival_id && *b == short_id),
        "{at_1:?}"
    );
    assert_eq!(net.rep(1).status().pending_txs, 0);
}

#[test]
fn a_ledger_whose_replay_disagrees_with_its_receipts_is_refused_at_open() {
    // A block stored with a receipt saying its transaction applied, which today's rules reject
    // (a stale nonce: the same enrolment twice). Opening must refuse, naming the block and the
    // transaction, rather than serve a state no other node has.
    let (g, ca) = genesis(1, 0);
    let mut storage = MemStorage::new();
    storage.put_genesis(&g).unwrap();
    let tx = enroll(&g, &ca, 1);
    let b1 = block(&g, 1, 0, g.hash(), 0, vec![tx.clone()]);
    let b2 = block(&g, 2, 0, b1.hash(), 0, vec![tx.clone()]);
    let cert = |b: &Block| CommitCertificate { view: 0, height: b.header.height, block_hash: b.hash(), votes: vec![] };
    let applied = vec![Receipt { tx: tx.id(), outcome: Outcome::Applied }];
    for b in [&b1, &b2] {
        storage.commit_block(&CommittedBlock { block: b.clone(), certificate: cert(b) }, &applied).unwrap();
    }
    let e = Replica::open(config(&g, 0), storage).err().expect("refused");
    let shown = e.to_string();
    assert!(matches!(e, ReplicaError::Corrupt(_)), "{shown}");
    assert!(shown.contains("block 2") && shown.contains(&tx.id().to_string()), "{shown}");
    assert!(shown.contains("stored applied, replayed rejected"), "{shown}");

    // The same blocks stored with the receipts they replay to open fine.
    let mut storage = MemStorage::new();
    storage.put_genesis(&g).unwrap();
    let mut state = State::from_genesis(&g);
    for b in [&b1, &b2] {
        let receipts = state.apply_block(b);
        storage.commit_block(&CommittedBlock { block: b.clone(), certificate: cert(b) }, &receipts).unwrap();
    }
    assert_eq!(Replica::open(config(&g, 0), storage).unwrap().status().height, 2);
}
