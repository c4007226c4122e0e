//! The deterministic cluster simulator: every validator of a consortium in one thread, over
//! engine's sans-IO [`Replica`] with in-memory storage, a seeded network that drops, duplicates,
//! delays, reorders and partitions messages, crashes and restarts from storage, and an optional
//! Byzantine primary that equivocates. Checkers assert agreement (no two honest replicas commit
//! different blocks at a height; stored chains link; certificates verify) and liveness (after the
//! faults heal, every honest replica reaches a common height beyond a target in bounded time).
//!
//! Everything is decided by a ChaCha PRNG seeded from the seed and by simulated time: a failing
//! seed replays exactly (`medchain sim --seed N --validators n`). Never here: clocks, threads,
//! OS randomness, iteration over hash maps.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use engine::block::{Block, CommittedBlock};
use engine::codec::{self, Digest};
use engine::crypto::{self, ChainId, PublicKey, SigningKey};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use engine::pbft::message::{Message, NodeId, PrePrepare, SignatureCheck, SignedMessage};
use engine::pbft::{signature_checks, Action, Event, Replica, ReplicaConfig};
use engine::storage::{MemStorage, Storage};
use engine::tx::{Enroll, Payload, Role, Transaction, TxBody};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

/// Simulated time starts here (milliseconds since the Unix epoch), the genesis creation time.
pub const START_MS: u64 = 1_700_000_000_000;

/// One simulation's setup. [`Config::for_seed`] derives a fault mix from the seed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The seed of every random decision.
    pub seed: u64,
    /// Number of validators (4 and 7 are the usual; any n ≥ 1 works).
    pub validators: usize,
    /// Faults (drops, partitions, crashes) happen during the first this many ms.
    pub fault_ms: u64,
    /// After the faults heal, every honest replica must reach the target within this many ms.
    pub liveness_ms: u64,
    /// Blocks the honest replicas must commit after healing (above the highest height then).
    pub liveness_blocks: u64,
    /// Simulated time between ticks.
    pub tick_ms: u64,
    /// Chance per message of being dropped while faults are active, in per mille.
    pub drop_per_mille: u32,
    /// Chance per message of being delivered twice, in per mille.
    pub duplicate_per_mille: u32,
    /// Largest network delay while faults are active (reordering follows from random delays).
    pub delay_ms_max: u64,
    /// Whether a network partition happens during the fault phase.
    pub partition: bool,
    /// How many (honest) replicas crash and restart from storage during the fault phase.
    pub crashes: usize,
    /// Whether replica 0 (primary of view 0) equivocates whenever it is primary.
    pub byzantine: bool,
    /// Mean time between client transactions.
    pub tx_interval_ms: u64,
    /// Consensus parameters of the simulated chain.
    pub params: ChainParams,
    /// The replicas' view-change timeout.
    pub view_change_timeout_ms: u64,
    /// Whether every NEW-VIEW message is lost while faults are active (backups then keep asking
    /// a primary that installed the view for it).
    pub lose_new_views: bool,
}

impl Config {
    /// A fault mix drawn from the seed: drops, duplicates, delays, and per seed a partition,
    /// crashes, or a Byzantine primary (never more than f Byzantine).
    /// One seed in eight gets the harsher mix of [`Config::stress`].
    pub fn for_seed(seed: u64, validators: usize) -> Config {
        let mut c = Config::mild(seed, validators);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57e5_5000);
        if rng.gen_ratio(1, 8) {
            c.harshen(&mut rng);
        }
        c
    }

    /// A harsher mix for soak runs: a longer fault phase, up to 30 % loss, long delays, and
    /// every kind of fault at once.
    pub fn stress(seed: u64, validators: usize) -> Config {
        let mut c = Config::mild(seed, validators);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57e5_5000);
        let _ = rng.gen_ratio(1, 8);
        c.harshen(&mut rng);
        c
    }

    /// A view-change storm: message delays up to twice the view-change timeout (as when replica
    /// steps are slower than the timeout) and every NEW-VIEW lost while faults last, on top of
    /// the seed's own mix, with at least one crash (a restarted backup forgets the view changes
    /// that armed its timer). After healing the cluster must commit again.
    pub fn view_change_storm(seed: u64, validators: usize) -> Config {
        let mut c = Config::for_seed(seed, validators);
        c.crashes = c.crashes.max(1);
        c.fault_ms = c.fault_ms.max(6_000);
        c.liveness_ms = c.liveness_ms.max(30_000);
        c.delay_ms_max = c.delay_ms_max.max(2 * c.view_change_timeout_ms);
        c.lose_new_views = true;
        c
    }

    fn harshen(&mut self, rng: &mut ChaCha8Rng) {
        self.fault_ms = 8_000;
        self.liveness_ms = 30_000;
        self.drop_per_mille = rng.gen_range(0..=300);
        self.duplicate_per_mille = rng.gen_range(0..=100);
        self.delay_ms_max = rng.gen_range(2..=300);
        self.partition = true;
        self.crashes = rng.gen_range(0..=self.validators.saturating_sub(1) / 3 + 1);
    }

    fn mild(seed: u64, validators: usize) -> Config {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_c0f1_9000_0000);
        let f = validators.saturating_sub(1) / 3;
        let byzantine = f >= 1 && rng.gen_ratio(1, 3);
        Config {
            seed,
            validators,
            fault_ms: 3_000,
            liveness_ms: 12_000,
            liveness_blocks: 3,
            tick_ms: 10,
            drop_per_mille: rng.gen_range(0..=100),
            duplicate_per_mille: rng.gen_range(0..=50),
            delay_ms_max: rng.gen_range(2..=60),
            partition: rng.gen_ratio(1, 2),
            crashes: if validators > 1 { rng.gen_range(0..=f.max(1)) } else { 0 },
            byzantine,
            tx_interval_ms: rng.gen_range(15..=40),
            params: ChainParams { checkpoint_interval: 4, watermark_window: 8, block_txs_max: 32 },
            view_change_timeout_ms: 400,
            lose_new_views: false,
        }
    }
}

/// What a successful run saw.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// The height every honest replica reached.
    pub common_height: u64,
    /// The target that liveness required.
    pub target_height: u64,
    /// Highest view any honest replica reached.
    pub max_view: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Messages lost to drops, partitions and crashes.
    pub lost: u64,
    /// Messages replicas refused (with a typed reason).
    pub refused_messages: u64,
    /// Refused messages by reason (the `MessageError` variant).
    pub refused_by_reason: BTreeMap<String, u64>,
    /// Transactions submitted by clients.
    pub submitted_txs: u64,
    /// Crashes (each followed by a restart from storage).
    pub crashes: usize,
    /// Whether every honest replica ended in one view, not changing views. Not required: a
    /// replica that timed out alone waits one view ahead (Castro–Liskov) and keeps its height
    /// by state transfer until the others next change views.
    pub views_agree: bool,
    /// Whether a Byzantine primary equivocated.
    pub byzantine: bool,
    /// Simulated time the run took, in ms.
    pub sim_ms: u64,
}

/// A failed run: the seed, what went wrong, and how to replay it.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// Number of validators.
    pub validators: usize,
    /// Simulated ms since the start when the failure was seen.
    pub at_ms: u64,
    /// What went wrong.
    pub reason: String,
    /// How to replay the run.
    pub replay: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation with seed {} and {} validators failed at t = {} ms: {}\n  replay: {}",
            self.seed, self.validators, self.at_ms, self.reason, self.replay
        )
    }
}

impl std::error::Error for Failure {}

/// Runs the simulation for `seed` with `validators` replicas and the seed's fault mix.
pub fn run(seed: u64, validators: usize) -> Result<Summary, Failure> {
    run_with(&Config::for_seed(seed, validators))
}

/// Runs the simulation described by `config`. A panic inside the engine becomes a [`Failure`].
pub fn run_with(config: &Config) -> Result<Summary, Failure> {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Sim::new(config.clone())?.run()));
    match outcome {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure {
                seed: config.seed,
                validators: config.validators,
                at_ms: 0,
                reason: format!("panic: {msg}"),
                replay: replay_command(config),
            })
        }
    }
}

/// The command that replays `config`: the CLI for the seed's own mix, else the config itself.
pub fn replay_command(config: &Config) -> String {
    if *config == Config::for_seed(config.seed, config.validators) {
        format!("medchain sim --seed {} --validators {}", config.seed, config.validators)
    } else {
        format!("sim::run_with(&{config:?})")
    }
}

/// The deterministic keys and genesis of a simulated consortium.
pub fn consortium(validators: usize, params: ChainParams) -> (Genesis, SigningKey, Vec<SigningKey>) {
    let ca = SigningKey::from_seed([0xCA; 32]);
    let keys: Vec<SigningKey> = (0..validators)
        .map(|i| {
            let mut seed = [0x11; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            SigningKey::from_seed(seed)
        })
        .collect();
    let genesis = GenesisBody {
        chain_id: ChainId::new("medchain-sim").expect("valid chain id"),
        created_at_ms: START_MS,
        ca_key: ca.public(),
        validators: keys
            .iter()
            .enumerate()
            .map(|(i, k)| NodeInfo { name: format!("hospital-{i}"), key: k.public() })
            .collect(),
        auditors: Vec::new(),
        params,
    }
    .sign(&ca);
    (genesis, ca, keys)
}

struct Node {
    replica: Option<Replica<MemStorage>>,
    parked: Option<MemStorage>,
    config: ReplicaConfig,
}

struct Client {
    key: SigningKey,
    nonce: u64,
    role: Role,
}

struct Sim {
    cfg: Config,
    rng: ChaCha8Rng,
    genesis: Genesis,
    nodes: Vec<Node>,
    /// (delivery time, send order) -> (destination, message).
    queue: BTreeMap<(u64, u64), (NodeId, SignedMessage)>,
    sent: u64,
    now: u64,
    heal_at: u64,
    partition: Option<(u64, u64, Vec<bool>)>,
    /// (node, crash at, restart at).
    crash_plan: Vec<(usize, u64, u64)>,
    byzantine: Option<usize>,
    verified: HashSet<Digest>,
    committed: BTreeMap<u64, Digest>,
    /// What each honest replica signed: (replica, kind, view, seq) -> digest.
    signed: BTreeMap<(usize, u8, u64, u64), Digest>,
    clients: Vec<Client>,
    next_tx_at: u64,
    delivered: u64,
    lost: u64,
    refused_messages: u64,
    refused_by_reason: BTreeMap<String, u64>,
    submitted_txs: u64,
}

impl Sim {
    fn new(cfg: Config) -> Result<Sim, Failure> {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let n = cfg.validators;
        let (genesis, ca, keys) = consortium(n, cfg.params.clone());
        let byzantine = cfg.byzantine.then_some(0usize);
        let heal_at = START_MS + cfg.fault_ms;
        let partition = cfg.partition.then(|| {
            let start = START_MS + rng.gen_range(0..cfg.fault_ms / 2);
            let end = start + rng.gen_range(cfg.fault_ms / 6..=cfg.fault_ms / 2);
            let side: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
            (start, end.min(heal_at), side)
        });
        let honest: Vec<usize> = (0..n).filter(|i| Some(*i) != byzantine).collect();
        let mut crash_plan = Vec::new();
        for _ in 0..cfg.crashes.min(honest.len()) {
            // Half the crashes hit the first primary, whose restart must not re-propose.
            let node =
                if byzantine.is_none() && rng.gen_bool(0.5) { 0 } else { honest[rng.gen_range(0..honest.len())] };
            let at = START_MS + rng.gen_range(0..cfg.fault_ms * 2 / 3);
            let back = (at + rng.gen_range(100..=1_500)).min(heal_at);
            crash_plan.push((node, at, back));
        }
        let mut nodes = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let config = ReplicaConfig {
                genesis: genesis.clone(),
                me: i as u16,
                key: key.clone(),
                batch_txs: 8,
                batch_delay_ms: 20,
                view_change_timeout_ms: cfg.view_change_timeout_ms,
                pending_txs_max: 512,
            };
            let replica = Replica::open(config.clone(), MemStorage::new()).map_err(|e| Failure {
                seed: cfg.seed,
                validators: n,
                at_ms: 0,
                reason: format!("replica {i} does not open: {e}"),
                replay: replay_command(&cfg),
            })?;
            nodes.push(Node { replica: Some(replica), parked: None, config });
        }
        let mut clients = vec![Client { key: ca, nonce: 0, role: Role::Researcher }];
        clients.extend(keys.iter().map(|k| Client { key: k.clone(), nonce: 0, role: Role::Patient }));
        Ok(Sim {
            cfg,
            rng,
            genesis,
            nodes,
            queue: BTreeMap::new(),
            sent: 0,
            now: START_MS,
            heal_at,
            partition,
            crash_plan,
            byzantine,
            verified: HashSet::new(),
            committed: BTreeMap::new(),
            signed: BTreeMap::new(),
            clients,
            next_tx_at: START_MS,
            delivered: 0,
            lost: 0,
            refused_messages: 0,
            refused_by_reason: BTreeMap::new(),
            submitted_txs: 0,
        })
    }

    fn fail(&self, reason: impl Into<String>) -> Failure {
        Failure {
            seed: self.cfg.seed,
            validators: self.cfg.validators,
            at_ms: self.now - START_MS,
            reason: reason.into(),
            replay: replay_command(&self.cfg),
        }
    }

    fn honest(&self, i: usize) -> bool {
        Some(i) != self.byzantine
    }

    fn run(mut self) -> Result<Summary, Failure> {
        let end = self.heal_at + self.cfg.liveness_ms;
        let mut target = None;
        while self.now <= end {
            self.crashes_and_restarts()?;
            self.deliver_due()?;
            self.submit_txs()?;
            for i in 0..self.nodes.len() {
                self.step(i, Event::Tick { now_ms: self.now })?;
            }
            if self.now >= self.heal_at {
                let t = *target.get_or_insert_with(|| self.max_honest_height() + self.cfg.liveness_blocks);
                if self.min_honest_height() >= t {
                    break;
                }
            }
            self.now += self.cfg.tick_ms;
        }
        let target = target.unwrap_or(0);
        let common = self.min_honest_height();
        if common < target {
            let heights: Vec<String> =
                self.nodes.iter().filter_map(|n| n.replica.as_ref().map(|r| format!("{:?}", r.status()))).collect();
            return Err(self.fail(format!(
                "liveness: honest replicas reached only height {common} (target {target}) {} ms after healing; {}",
                self.cfg.liveness_ms,
                heights.join("; ")
            )));
        }
        self.check_chains()?;
        let views_agree = self.views_agree();
        let max_view = (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .filter_map(|i| self.nodes[i].replica.as_ref().map(|r| r.status().view))
            .max()
            .unwrap_or(0);
        Ok(Summary {
            seed: self.cfg.seed,
            validators: self.cfg.validators,
            common_height: common,
            target_height: target,
            max_view,
            delivered: self.delivered,
            lost: self.lost,
            refused_messages: self.refused_messages,
            refused_by_reason: self.refused_by_reason,
            submitted_txs: self.submitted_txs,
            crashes: self.crash_plan.len(),
            views_agree,
            byzantine: self.byzantine.is_some(),
            sim_ms: self.now - START_MS,
        })
    }

    fn heights(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.nodes.len()).filter(|i| self.honest(*i)).map(|i| {
            match (&self.nodes[i].replica, &self.nodes[i].parked) {
                (Some(r), _) => r.status().height,
                (None, Some(s)) => s.head().ok().flatten().map(|(h, _)| h).unwrap_or(0),
                (None, None) => 0,
            }
        })
    }
    /// Every honest replica is up, in the same view, and not changing views: all take part.
    fn views_agree(&self) -> bool {
        let views: BTreeSet<(u64, bool)> = (0..self.nodes.len())
            .filter(|i| self.honest(*i))
            .map(|i| {
                self.nodes[i].replica.as_ref().map(|r| (r.status().view, r.status().view_changing)).unwrap_or((0, true))
            })
            .collect();
        views.len() == 1 && views.iter().all(|(_, changing)| !changing)
    }

    fn max_honest_height(&self) -> u64 {
        self.heights().max().unwrap_or(0)
    }
    fn min_honest_height(&self) -> u64 {
        self.heights().min().unwrap_or(0)
    }

    fn crashes_and_restarts(&mut self) -> Result<(), Failure> {
        for k in 0..self.crash_plan.len() {
            let (node, at, back) = self.crash_plan[k];
            if self.now >= at && self.now < back && self.nodes[node].replica.is_some() {
                let replica = self.nodes[node].replica.take().expect("checked");
                self.nodes[node].parked = Some(replica.into_storage());
            }
            if self.now >= back && self.nodes[node].replica.is_none() {
                let storage = self.nodes[node].parked.take().expect("a crashed node keeps its storage");
                let replica = Replica::open(self.nodes[node].config.clone(), storage)
                    .map_err(|e| self.fail(format!("replica {node} does not reopen: {e}")))?;
                self.nodes[node].replica = Some(replica);
            }
        }
        Ok(())
    }

    fn faults_active(&self) -> bool {
        self.now < self.heal_at
    }

    fn partitioned(&self, a: usize, b: usize) -> bool {
        match &self.partition {
            Some((start, end, side)) => self.now >= *start && self.now < *end && side[a] != side[b],
            None => false,
        }
    }

    fn transmit(&mut self, from: usize, to: usize, msg: SignedMessage) {
        let faults = self.faults_active();
        let lost_new_view = self.cfg.lose_new_views && matches!(msg.message, Message::NewView(_));
        if faults && (lost_new_view || self.partitioned(from, to) || self.rng.gen_ratio(self.cfg.drop_per_mille, 1000))
        {
            self.lost += 1;
            return;
        }
        let copies = if faults && self.rng.gen_ratio(self.cfg.duplicate_per_mille, 1000) { 2 } else { 1 };
        let max_delay = if faults { self.cfg.delay_ms_max } else { 10 };
        for _ in 0..copies {
            let delay = self.rng.gen_range(1..=max_delay.max(1));
            self.sent += 1;
            self.queue.insert((self.now + delay, self.sent), (to as NodeId, msg.clone()));
        }
    }

    fn deliver_due(&mut self) -> Result<(), Failure> {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (to, msg) = entry.remove();
            let to = to as usize;
            if self.nodes[to].replica.is_none() {
                self.lost += 1;
                continue;
            }
            self.verify(&msg)?;
            self.delivered += 1;
            self.step(to, Event::Message(msg))?;
        }
        Ok(())
    }

    /// What the driver does before `Event::Message`: every signature `signature_checks` names.
    fn verify(&mut self, msg: &SignedMessage) -> Result<(), Failure> {
        let checks = signature_checks(msg, &self.genesis).map_err(|e| {
            self.fail(format!("signature_checks refused a {} from {}: {e}", msg.message.kind(), msg.from))
        })?;
        for c in checks {
            if !self.check_signature(&c) {
                return Err(self.fail(format!("a {} from {} carries a bad signature", msg.message.kind(), msg.from)));
            }
        }
        Ok(())
    }

    fn check_signature(&mut self, c: &SignatureCheck) -> bool {
        let id = codec::sha256_parts(&[&c.key.0, &c.sig.0, &c.msg]);
        if self.verified.contains(&id) {
            return true;
        }
        let ok = crypto::verify_raw(&c.key, &c.sig, &c.msg);
        if ok {
            self.verified.insert(id);
        }
        ok
    }

    fn submit_txs(&mut self) -> Result<(), Failure> {
        while self.next_tx_at <= self.now {
            self.next_tx_at += self.rng.gen_range(1..=2 * self.cfg.tx_interval_ms);
            let c = self.rng.gen_range(0..self.clients.len());
            let mut new_key = [0u8; 32];
            self.rng.fill(&mut new_key);
            let client = &mut self.clients[c];
            client.nonce += 1;
            let body = TxBody {
                sender: client.key.public(),
                nonce: client.nonce,
                expiry_height: 1_000_000,
                payload: Payload::Enroll(Enroll {
                    key: PublicKey(new_key),
                    role: client.role,
                    name: format!("{:?}-{}", client.role, hex_short(&new_key)),
                }),
            };
            let tx: Transaction = body.sign(self.genesis.chain_id(), &[&client.key]);
            let to = self.rng.gen_range(0..self.nodes.len());
            self.submitted_txs += 1;
            if self.nodes[to].replica.is_some() {
                self.step(to, Event::Transactions(vec![tx]))?;
            }
        }
        Ok(())
    }

    /// Feeds `event` to node `i` and carries out its actions.
    fn step(&mut self, i: usize, event: Event) -> Result<(), Failure> {
        let Some(replica) = self.nodes[i].replica.as_mut() else {
            return Ok(());
        };
        let actions = replica.handle(event);
        for action in actions {
            match action {
                Action::Send { to, message } => {
                    self.check_equivocation(i, &message)?;
                    if (to as usize) < self.nodes.len() && to as usize != i {
                        self.transmit(i, to as usize, message);
                    }
                }
                Action::Broadcast { message } => {
                    self.check_equivocation(i, &message)?;
                    self.broadcast(i, message)
                }
                Action::Committed { block, .. } => self.on_committed(i, &block)?,
                Action::Refused { .. } => {}
                Action::Dropped { reason, .. } => {
                    self.refused_messages += 1;
                    let name = format!("{reason:?}");
                    let name = name.split(|c: char| !c.is_alphanumeric()).next().unwrap_or_default().to_string();
                    *self.refused_by_reason.entry(name).or_insert(0) += 1;
                }
                Action::Halted { reason } => return Err(self.fail(format!("replica {i} halted: {reason}"))),
            }
        }
        Ok(())
    }

    /// No honest replica signs two different things for one (kind, view, seq), across crashes.
    fn check_equivocation(&mut self, i: usize, m: &SignedMessage) -> Result<(), Failure> {
        if !self.honest(i) {
            return Ok(());
        }
        let (kind, view, seq, digest) = match &m.message {
            Message::PrePrepare(pp) => (0u8, pp.view, pp.seq, pp.block.hash()),
            Message::Prepare(v) => (1, v.view, v.seq, v.digest),
            Message::Commit(v) => (2, v.view, v.seq, v.digest),
            _ => return Ok(()),
        };
        match self.signed.insert((i, kind, view, seq), digest) {
            Some(old) if old != digest => Err(self.fail(format!(
                "equivocation: replica {i} signed two different {} for view {view} seq {seq}",
                m.message.kind()
            ))),
            _ => Ok(()),
        }
    }

    fn broadcast(&mut self, i: usize, message: SignedMessage) {
        let n = self.nodes.len();
        if Some(i) == self.byzantine {
            if let Message::PrePrepare(pp) = &message.message {
                // Equivocate: a second block for the same seq, sent to the other half.
                let mut twin: Block = pp.block.clone();
                twin.header.timestamp_ms += 1;
                let key = self.nodes[i].config.key.clone();
                let other = SignedMessage::sign(
                    self.genesis.chain_id(),
                    i as NodeId,
                    Message::PrePrepare(PrePrepare { view: pp.view, seq: pp.seq, block: twin }),
                    &key,
                );
                for j in (0..n).filter(|j| *j != i) {
                    let m = if j <= n / 2 { message.clone() } else { other.clone() };
                    self.transmit(i, j, m);
                }
                return;
            }
        }
        for j in (0..n).filter(|j| *j != i) {
            self.transmit(i, j, message.clone());
        }
    }

    fn on_committed(&mut self, i: usize, cb: &CommittedBlock) -> Result<(), Failure> {
        if !self.honest(i) {
            return Ok(());
        }
        let h = cb.block.header.height;
        let hash = cb.block.hash();
        match self.committed.get(&h) {
            Some(other) if *other != hash => Err(self.fail(format!(
                "agreement: replica {i} committed {hash} at height {h}, another honest replica committed {other}"
            ))),
            Some(_) => Ok(()),
            None => {
                self.committed.insert(h, hash);
                Ok(())
            }
        }
    }

    /// Every honest stored chain links, agrees with the others, and has valid certificates.
    fn check_chains(&mut self) -> Result<(), Failure> {
        let validators = self.genesis.validator_set();
        let chain_id = self.genesis.chain_id().clone();
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|i| self.honest(*i)).collect();
        for i in honest {
            let storage: &MemStorage = match (&self.nodes[i].replica, &self.nodes[i].parked) {
                (Some(r), _) => r.storage(),
                (None, Some(s)) => s,
                (None, None) => continue,
            };
            let head = storage.head().map_err(|e| self.fail(format!("storage: {e}")))?.map(|(h, _)| h).unwrap_or(0);
            let mut prev = self.genesis.hash();
            let mut checks = Vec::new();
            for h in 1..=head {
                let cb = storage
                    .block(h)
                    .map_err(|e| self.fail(format!("storage: {e}")))?
                    .ok_or_else(|| self.fail(format!("replica {i} lacks block {h} below its head")))?;
                let hash = cb.block.hash();
                if cb.block.header.prev_hash != prev {
                    return Err(self.fail(format!("replica {i}: block {h} does not link to block {}", h - 1)));
                }
                if self.committed.get(&h).is_some_and(|c| *c != hash) {
                    return Err(self.fail(format!("agreement: replica {i} stores another block at height {h}")));
                }
                cb.certificate
                    .check_shape(&validators, h, &hash)
                    .map_err(|e| self.fail(format!("replica {i}: certificate of block {h}: {e}")))?;
                for (r, sig) in &cb.certificate.votes {
                    let key = *validators.key(*r).expect("check_shape checked the voters");
                    checks.push((
                        h,
                        SignatureCheck { msg: cb.certificate.vote_signing_bytes(&chain_id, *r), key, sig: *sig },
                    ));
                }
                prev = hash;
            }
            for (h, c) in checks {
                if !self.check_signature(&c) {
                    return Err(self.fail(format!("replica {i}: a COMMIT signature of block {h}'s certificate is bad")));
                }
            }
        }
        Ok(())
    }
}

fn hex_short(b: &[u8]) -> String {
    b[..4].iter().map(|x| format!("{x:02x}")).collect()
}
