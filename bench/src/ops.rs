//! `medchain bench ops`: the cost of each operation on a record, the operation table of seed 001
//! (Wen et al. 2024, Table 1: encryption and decryption, digest, signing and verification, the
//! record anchor and the read log written and queried, key material for sharing, re-encryption,
//! blob upload and download), for bodies of 64 KiB, 256 KiB and 1 MiB.
//!
//! Every figure is medchain's own code doing its real work; nothing is mocked:
//! - a ledger: a 4-validator genesis, [`State`] and [`RedbStorage`] in a folder, blocks carrying
//!   commit certificates signed by a quorum of the validators (made outside the timed part: they
//!   are consensus, which this table leaves to an end-to-end measurement);
//! - the consortium key: `engine::dkg` run in process for n = 4, t = 3 once at the start, so the
//!   data keys are encrypted to a real collective key and read back through real shares;
//! - the blob store: [`BlobStore::local`] in the same folder. Each blob is deleted once the
//!   reader has it back (untimed), so a run needs room for one blob, not for every body.
//!
//! Each run takes one fresh random body through a record's whole life, timing each step apart
//! ([`Op`] says exactly what each covers): seal, digest, upload, the data key encrypted to the
//! consortium key and the patient's grant signed, the anchor signed by the doctor and co-signed
//! by the patient, verified, committed and queried; the grant committed (untimed); the reader's
//! `ReadRequest` committed and found in the patient's audit trail; one validator's re-encrypted
//! decryption share, the reader's combination of t shares; the blob downloaded and opened. The
//! opened body must equal the body sealed, and the combined data key the one sealed with, or the
//! run stops with an error: a wrong answer is never reported as a speed.
//!
//! Time is read here (this is a measurement); the library code measured reads none.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::block::{Block, BlockHeader, CommitCertificate, CommittedBlock};
use engine::codec::{sha256, Digest};
use engine::crypto::{ChainId, PublicKey, SigningKey};
use engine::envelope::{self, BlobRef, DataKey, EnvelopeError, DATA_KEY_LEN, NONCE_LEN};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use engine::state::{verify_signatures, AuditAction, Outcome, Receipt, State, TxError};
use engine::storage::{RedbStorage, Storage, StorageError};
use engine::threshold::{self, DhSecret, KeyShare, PublicKeySet, ShareContext, ShareIndex, ThresholdError};
use engine::tx::{AnchorRecord, Enroll, Grant, GrantScope, Payload, ReadRequest, RecordId, Role, Transaction, TxBody};
use net::blobs::{BlobError, BlobStore};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::Serialize;

use crate::gpu::{human_time, thousands, utc_now};
use crate::index::Machine;

/// The body sizes of seed 001's Table 1 (its 64 kB, 256 kB and 1 MB files), in bytes.
pub const SIZES: [usize; 3] = [64 * 1024, 256 * 1024, 1024 * 1024];
/// Timed runs per size, as in the seed.
pub const RUNS_DEFAULT: usize = 1000;
/// Untimed runs per size before the timed ones.
pub const WARMUP_DEFAULT: usize = 20;
/// Validators of the ledger and of the key generation.
pub const VALIDATORS: u16 = 4;
/// Patients the records are spread over, round robin (so an audit trail holds a few dozen
/// events, not thousands).
pub const PATIENTS: usize = 100;
/// The largest body accepted (the blob store's own limit, less the envelope).
pub const BODY_BYTES_MAX: usize = net::blobs::BLOB_MAX_BYTES as usize - envelope::OVERHEAD;
/// Blocks a transaction stays valid for.
const EXPIRY_BLOCKS: u64 = 16;
/// The first block's timestamp: 2026-01-01T00:00:00Z; each block is one second later.
const START_MS: u64 = 1_767_225_600_000;
/// The schema of the JSON report. Later sections are added as new optional fields.
pub const SCHEMA: &str = "medchain-bench-ops/1";

/// One measured operation on a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Sealing the body (writer).
    Encrypt,
    /// Opening the downloaded blob (reader).
    Decrypt,
    /// SHA-256 of the sealed blob (writer).
    Digest,
    /// Signing the `AnchorRecord` transaction, doctor and patient (writer).
    Sign,
    /// Verifying both signatures of the `AnchorRecord` transaction (every node).
    Verify,
    /// Applying and durably storing the anchor's block (every node).
    AnchorWrite,
    /// Looking the anchor up in the ledger state (a node).
    AnchorQuery,
    /// Reading the signed anchor transaction back from storage (a node).
    AnchorReadBack,
    /// The data key encrypted to the consortium key and the `Grant` signed (writer, patient).
    GrantKey,
    /// One validator's decryption share re-encrypted to the reader (validator).
    Share,
    /// Checking t shares and recovering the data key (reader).
    Combine,
    /// Applying and durably storing the `ReadRequest`'s block (every node).
    ReadLogWrite,
    /// Finding the read in the patient's audit trail (a node).
    ReadLogQuery,
    /// Storing the blob (writer).
    BlobUpload,
    /// Fetching the blob, checked against the anchor (reader).
    BlobDownload,
}

/// How many operations there are.
pub const OP_COUNT: usize = 15;

impl Op {
    /// Every operation, in report order (a record's life: write, then share, then read).
    pub const ALL: [Op; OP_COUNT] = [
        Op::Encrypt,
        Op::Digest,
        Op::BlobUpload,
        Op::GrantKey,
        Op::Sign,
        Op::Verify,
        Op::AnchorWrite,
        Op::AnchorQuery,
        Op::AnchorReadBack,
        Op::ReadLogWrite,
        Op::ReadLogQuery,
        Op::Share,
        Op::Combine,
        Op::BlobDownload,
        Op::Decrypt,
    ];

    /// The name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Op::Encrypt => "encrypt",
            Op::Decrypt => "decrypt",
            Op::Digest => "digest",
            Op::Sign => "sign",
            Op::Verify => "verify",
            Op::AnchorWrite => "anchor-write",
            Op::AnchorQuery => "anchor-query",
            Op::AnchorReadBack => "anchor-read-back",
            Op::GrantKey => "grant-key",
            Op::Share => "share",
            Op::Combine => "combine",
            Op::ReadLogWrite => "read-log-write",
            Op::ReadLogQuery => "read-log-query",
            Op::BlobUpload => "blob-upload",
            Op::BlobDownload => "blob-download",
        }
    }

    /// Exactly what the timer covers.
    pub fn measures(self) -> &'static str {
        match self {
            Op::Encrypt => "engine::envelope::seal: AES-256-SIV of the body under its own 64-byte data key, record id as associated data",
            Op::Decrypt => "engine::envelope::open of the downloaded blob with the recovered data key: SHA-256 and length checked against the anchor, then AES-256-SIV decryption",
            Op::Digest => "engine::codec::sha256 of the sealed blob (the anchor's ciphertext_digest)",
            Op::Sign => "TxBody::sign of the AnchorRecord (canonical encoding, Ed25519 by the doctor, co-signed by the patient)",
            Op::Verify => "engine::state::verify_signatures of the AnchorRecord: both Ed25519 signatures, one by one",
            Op::AnchorWrite => "State::apply_block of a block holding the AnchorRecord (every rule checked) + RedbStorage::commit_block (block, certificate, receipts; one durable redb transaction, fsync)",
            Op::AnchorQuery => "State::record(id): the anchor as committed, from the in-memory ledger state",
            Op::AnchorReadBack => "RedbStorage::tx_location + block(height): the signed AnchorRecord transaction read back and decoded from redb",
            Op::GrantKey => "engine::threshold::encrypt_key of the data key to the collective key (hashed ElGamal + Schnorr proof), then the patient's Grant transaction built and signed",
            Op::Share => "engine::threshold::decryption_share: one validator's share (checks the key's proof) re-encrypted to the reader, with its proof",
            Op::Combine => "engine::threshold::combine of t = 3 shares: the key's proof and each share's proof checked, Lagrange at 0, data key unmasked",
            Op::ReadLogWrite => "State::apply_block of a block holding the ReadRequest (grant checked, read logged) + RedbStorage::commit_block (durable, fsync)",
            Op::ReadLogQuery => "State::audit_trail(patient): the reads of this record picked out and copied (the trail holds a few dozen events)",
            Op::BlobUpload => "net::blobs::BlobStore::put to a local folder (object_store; written once; file and folder fsynced)",
            Op::BlobDownload => "net::blobs::BlobStore::get: read from the local folder, SHA-256 and length checked against the anchor",
        }
    }

    /// The experiments of seed 001's Table 1 this corresponds to.
    pub fn seed_experiments(self) -> &'static [u8] {
        match self {
            Op::Encrypt => &[1, 4],
            Op::Decrypt => &[2, 5],
            Op::Digest => &[3],
            Op::Sign => &[6],
            Op::Verify => &[15],
            Op::AnchorWrite => &[7],
            Op::AnchorQuery | Op::AnchorReadBack => &[8],
            Op::GrantKey => &[9],
            Op::Share | Op::Combine => &[10],
            Op::ReadLogWrite => &[11],
            Op::ReadLogQuery => &[12],
            Op::BlobUpload => &[13],
            Op::BlobDownload => &[14],
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// What seed 001's Table 1 lists, by experiment number (1-based), in English.
pub const SEED_TABLE_1: [&str; 15] = [
    "RSA encryption of the data",
    "RSA decryption of the data",
    "SHA-384 message digest",
    "AES encryption of the data",
    "AES decryption of the data",
    "user's signature of the data",
    "building and uploading the P_DE object (the record's index entry)",
    "querying P_DE",
    "generating the re-encryption key and the data-sharing key",
    "proxy re-encryption of the data-sharing key",
    "building and uploading the D_UE object (the data-usage record)",
    "querying D_UE",
    "uploading the encrypted file to cloud storage",
    "downloading the encrypted file from cloud storage",
    "verifying the digital signature",
];

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Body sizes in bytes, in report order.
    pub sizes: Vec<usize>,
    /// Timed runs per size.
    pub runs: usize,
    /// Untimed runs per size before the timed ones.
    pub warmup: usize,
    /// Seed of the keys, bodies and record ids.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config { sizes: SIZES.to_vec(), runs: RUNS_DEFAULT, warmup: WARMUP_DEFAULT, seed: 1 }
    }
}

/// Progress of a run.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// Setting up: key generation, ledger, blob store.
    Setup,
    /// A size starts: `total` runs (warm-up included).
    Start {
        /// Body bytes.
        body_bytes: usize,
        /// Runs, warm-up included.
        total: u64,
    },
    /// `done` runs of the current size are done.
    Progress {
        /// Runs done.
        done: u64,
    },
    /// The current size is done.
    Finish,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The configuration cannot be run.
    #[error("{0}")]
    Config(String),
    /// The folder is already in use.
    #[error("{}: already exists and is not empty; remove it or pick another --dir", .0.display())]
    FolderInUse(PathBuf),
    /// File-system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The in-process key generation failed.
    #[error("key generation: {0}")]
    Keys(String),
    /// The ledger's storage failed.
    #[error("ledger storage: {0}")]
    Storage(#[from] StorageError),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Blob(#[from] BlobError),
    /// Sealing or opening failed.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// Threshold encryption failed.
    #[error("threshold: {0}")]
    Threshold(#[from] ThresholdError),
    /// A transaction the run made was refused.
    #[error("{op}: the ledger refused the transaction: {error}")]
    Refused {
        /// The operation.
        op: &'static str,
        /// Why.
        error: TxError,
    },
    /// An operation returned a wrong answer (the figures are not reported).
    #[error("{op}: WRONG RESULT: {detail}")]
    Wrong {
        /// The operation.
        op: &'static str,
        /// What differed.
        detail: String,
    },
}

/// One operation's figures at one body size, in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// Body bytes (before sealing).
    pub body_bytes: usize,
    /// Timed runs.
    pub runs: usize,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile (nearest rank).
    pub p99_us: f64,
    /// Fastest run.
    pub min_us: f64,
    /// Slowest run.
    pub max_us: f64,
}

impl Stats {
    /// The figures of `samples_us` (not empty).
    pub fn of(body_bytes: usize, samples_us: &[f64]) -> Stats {
        assert!(!samples_us.is_empty(), "Stats::of needs at least one sample");
        let mut sorted = samples_us.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Stats {
            body_bytes,
            runs: sorted.len(),
            mean_us: sorted.iter().sum::<f64>() / sorted.len() as f64,
            p50_us: rank(0.50),
            p99_us: rank(0.99),
            min_us: sorted[0],
            max_us: sorted[sorted.len() - 1],
        }
    }
}

/// One operation across the sizes.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// [`Op::name`].
    pub op: &'static str,
    /// [`Op::measures`].
    pub measures: &'static str,
    /// [`Op::seed_experiments`].
    pub seed_experiments: &'static [u8],
    /// The figures, one per size, in [`Settings::sizes`] order.
    pub sizes: Vec<Stats>,
}

/// How the run was set up.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Body sizes, bytes.
    pub sizes: Vec<usize>,
    /// Timed runs per size.
    pub runs: usize,
    /// Warm-up runs per size.
    pub warmup: usize,
    /// Validators (genesis and key generation).
    pub validators: u16,
    /// Shares needed to recover a data key.
    pub threshold: u16,
    /// Patients the records are spread over.
    pub patients: usize,
    /// Index labels on each anchor.
    pub labels_per_record: usize,
    /// The seed.
    pub seed: u64,
    /// Where the ledger and the blobs were written.
    pub dir: String,
}

/// A whole run. Its JSON form is versioned by [`SCHEMA`]; sections measured elsewhere (such as
/// end-to-end read latency across nodes) join it as further optional fields.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The host.
    pub machine: Machine,
    /// When the run started (UTC).
    pub date: String,
    /// How it was run.
    pub settings: Settings,
    /// One row per operation, in [`Op::ALL`] order.
    pub rows: Vec<Row>,
    /// Blocks in the ledger at the end (three per record, plus set-up).
    pub blocks: u64,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
}

impl Report {
    /// The row of `op`.
    pub fn row(&self, op: Op) -> Option<&Row> {
        self.rows.iter().find(|r| r.op == op.name())
    }
}

/// The times of one record's run, and what the reader got back.
pub struct Sample {
    /// Per operation, indexed by [`Op`] as `usize`.
    pub times: [Duration; OP_COUNT],
    /// The body as the reader opened it.
    pub plaintext: Vec<u8>,
}

impl Sample {
    /// The time of `op`.
    pub fn time(&self, op: Op) -> Duration {
        self.times[op.slot()]
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

/// The ledger, the consortium key and the blob store one run writes to.
pub struct Bench {
    chain: ChainId,
    validators: Vec<SigningKey>,
    hospital: PublicKey,
    doctor: SigningKey,
    reader: SigningKey,
    patients: Vec<SigningKey>,
    state: State,
    storage: RedbStorage,
    blobs: BlobStore,
    blob_dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    key_set: PublicKeySet,
    shares: Vec<KeyShare>,
    rng: ChaCha20Rng,
    time_ms: u64,
    records: usize,
}

fn key(seed: u64, role: &[u8], i: u64) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(
        &engine::codec::sha256_parts(&[b"medchain/bench/ops", role, &seed.to_be_bytes(), &i.to_be_bytes()]).0,
    );
    SigningKey::from_seed(bytes)
}

/// Runs the three rounds of `engine::dkg` for every validator in this process; returns the
/// shares in index order and the public key set all of them agree on.
pub fn generate_keys(n: u16, rng: &mut ChaCha20Rng) -> Result<(Vec<KeyShare>, PublicKeySet), OpsError> {
    let keys = |e: engine::dkg::DkgError| OpsError::Keys(e.to_string());
    let t = engine::dkg::consortium_threshold(n);
    let mut secrets1 = Vec::new();
    let mut round1: BTreeMap<ShareIndex, Vec<u8>> = BTreeMap::new();
    for i in 1..=n {
        let (secret, package) = engine::dkg::round1(i, n, t, rng).map_err(keys)?;
        secrets1.push((i, secret));
        round1.insert(i, package);
    }
    let others = |me: ShareIndex| -> BTreeMap<ShareIndex, Vec<u8>> {
        round1.iter().filter(|(i, _)| **i != me).map(|(i, p)| (*i, p.clone())).collect()
    };
    let mut secrets2 = Vec::new();
    let mut inbox: BTreeMap<ShareIndex, BTreeMap<ShareIndex, Vec<u8>>> = BTreeMap::new();
    for (i, secret) in secrets1 {
        let (secret2, outgoing) = engine::dkg::round2(secret, &others(i)).map_err(keys)?;
        for (to, package) in outgoing {
            inbox.entry(to).or_default().insert(i, package);
        }
        secrets2.push((i, secret2));
    }
    let mut shares = Vec::new();
    let mut set: Option<PublicKeySet> = None;
    for (i, secret2) in &secrets2 {
        let received = inbox.remove(i).unwrap_or_default();
        let (share, s) = engine::dkg::finish(secret2, &others(*i), &received).map_err(keys)?;
        if set.as_ref().is_some_and(|set| *set != s) {
            return Err(OpsError::Keys(format!("validator {i} derived another public key set")));
        }
        set = Some(s);
        shares.push(share);
    }
    let set = set.ok_or_else(|| OpsError::Keys("no validator".into()))?;
    Ok((shares, set))
}

impl Bench {
    /// A new ledger (genesis with [`VALIDATORS`] validators, a doctor and [`PATIENTS`] patients
    /// of validator 0's hospital, a reader who is a doctor of validator 1's) in `dir/ledger.redb`,
    /// a blob store in `dir/blobs`, and the consortium key from an in-process key generation.
    pub fn open(dir: &Path, seed: u64) -> Result<Bench, OpsError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| OpsError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let (shares, key_set) = generate_keys(VALIDATORS, &mut rng)?;

        let chain = ChainId::new("medchain-bench-ops").map_err(|e| OpsError::Config(e.0))?;
        let ca = key(seed, b"ca", 0);
        let validators: Vec<SigningKey> = (0..u64::from(VALIDATORS)).map(|i| key(seed, b"validator", i)).collect();
        let genesis: Genesis = GenesisBody {
            chain_id: chain.clone(),
            created_at_ms: START_MS - 1000,
            ca_key: ca.public(),
            validators: validators
                .iter()
                .enumerate()
                .map(|(i, k)| NodeInfo { name: format!("hospital{i}"), key: k.public() })
                .collect(),
            auditors: vec![],
            params: ChainParams::default(),
        }
        .sign(&ca);
        let mut storage = RedbStorage::open(&dir.join("ledger.redb"))?;
        storage.put_genesis(&genesis)?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(io(dir))?;
        let blob_dir = dir.join("blobs");
        let blobs = BlobStore::local(&blob_dir)?;
        let mut bench = Bench {
            chain,
            hospital: validators[0].public(),
            doctor: key(seed, b"doctor", 0),
            reader: key(seed, b"reader", 0),
            patients: (0..PATIENTS as u64).map(|i| key(seed, b"patient", i)).collect(),
            validators,
            state: State::from_genesis(&genesis),
            storage,
            blobs,
            blob_dir,
            runtime,
            key_set,
            shares,
            rng,
            time_ms: START_MS,
            records: 0,
        };
        bench.enroll()?;
        Ok(bench)
    }

    /// Enrols the doctor and the patients (by hospital 0) and the reader (by hospital 1).
    fn enroll(&mut self) -> Result<(), OpsError> {
        let (h0, h1) = (self.validators[0].clone(), self.validators[1].clone());
        let mut txs = Vec::new();
        let mut nonce = 0;
        let mut enroll = |by: &SigningKey, who: &SigningKey, role: Role, name: String, nonce: u64| {
            let body = TxBody {
                sender: by.public(),
                nonce,
                expiry_height: EXPIRY_BLOCKS,
                payload: Payload::Enroll(Enroll { key: who.public(), role, name }),
            };
            txs.push(body.sign(&self.chain, &[by]));
        };
        nonce += 1;
        enroll(&h0, &self.doctor, Role::Doctor, "doctor".into(), nonce);
        for (i, p) in self.patients.iter().enumerate() {
            nonce += 1;
            enroll(&h0, p, Role::Patient, format!("patient{i}"), nonce);
        }
        enroll(&h1, &self.reader, Role::Doctor, "reader".into(), 1);
        let block = self.certified(txs);
        let receipts = self.append(&block)?;
        applied("enrolment", &receipts)
    }

    /// The next block holding `txs`, with a commit certificate signed by a quorum of the
    /// validators (what consensus produces; not timed).
    fn certified(&mut self, txs: Vec<Transaction>) -> CommittedBlock {
        self.time_ms += 1000;
        let mut block = Block {
            header: BlockHeader {
                chain_id: self.chain.clone(),
                height: self.state.height() + 1,
                view: 0,
                prev_hash: self.state.head(),
                timestamp_ms: self.time_ms,
                tx_root: Digest::ZERO,
                tx_count: txs.len() as u32,
                proposer: 0,
            },
            txs,
        };
        block.header.tx_root = block.compute_tx_root();
        let mut certificate =
            CommitCertificate { view: 0, height: block.header.height, block_hash: block.hash(), votes: Vec::new() };
        let quorum =
            engine::genesis::ValidatorSet::new(self.validators.iter().map(SigningKey::public).collect()).quorum();
        for (r, v) in self.validators.iter().enumerate().take(quorum) {
            let r = r as u16;
            certificate.votes.push((r, v.sign_raw(&certificate.vote_signing_bytes(&self.chain, r))));
        }
        CommittedBlock { block, certificate }
    }

    /// What a node does with a committed block: apply it, then store it durably with its
    /// receipts (`engine::pbft`'s chain append).
    fn append(&mut self, block: &CommittedBlock) -> Result<Vec<Receipt>, OpsError> {
        let receipts = self.state.apply_block(&block.block);
        self.storage.commit_block(block, &receipts)?;
        Ok(receipts)
    }

    /// `signers[0]`'s next transaction with `payload`, signed by every signer.
    fn transaction(&self, signers: &[&SigningKey], payload: Payload) -> Transaction {
        let sender = signers[0].public();
        let body = TxBody {
            sender,
            nonce: self.state.nonce(&sender) + 1,
            expiry_height: self.state.height() + EXPIRY_BLOCKS,
            payload,
        };
        body.sign(&self.chain, signers)
    }

    fn random<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.rng.fill_bytes(&mut out);
        out
    }

    /// Blocks in the ledger.
    pub fn height(&self) -> u64 {
        self.state.height()
    }

    /// The commit certificate of the block at `height` checks against the validators.
    pub fn certificate_checks(&self, height: u64) -> Result<bool, OpsError> {
        let Some(cb) = self.storage.block(height)? else {
            return Ok(false);
        };
        let set = engine::genesis::ValidatorSet::new(self.validators.iter().map(SigningKey::public).collect());
        Ok(cb.certificate.verify(&self.chain, &set, height, &cb.block.hash()).is_ok())
    }

    /// Takes `body` through one record's life, timing each [`Op`]; returns the times and the
    /// body as the reader opened it. Fails if any step fails or returns a wrong answer (the data
    /// key recovered from the shares must be the one sealed with).
    pub fn record(&mut self, body: &[u8]) -> Result<Sample, OpsError> {
        let mut times = [Duration::ZERO; OP_COUNT];
        let patient = self.patients[self.records % self.patients.len()].clone();
        let withheld = self.records % self.shares.len();
        self.records += 1;
        let record: RecordId = Digest(self.random::<32>());
        let data_key = DataKey::from_bytes(self.random::<DATA_KEY_LEN>());
        let nonce = self.random::<NONCE_LEN>();

        // Writer: seal, digest, upload.
        let (blob, t) = timed(|| envelope::seal(&data_key, &nonce, &record, body));
        let blob = blob?;
        times[Op::Encrypt.slot()] = t;
        let (digest, t) = timed(|| sha256(&blob));
        times[Op::Digest.slot()] = t;
        let anchored = BlobRef { digest, len: blob.len() as u64 };
        let (locator, t) = timed(|| self.runtime.block_on(self.blobs.put(&record, &blob)));
        let locator = locator?;
        times[Op::BlobUpload.slot()] = t;

        // Key material for sharing: the data key to the consortium key, the patient's grant.
        let start = Instant::now();
        let encrypted = threshold::encrypt_key(&self.key_set, &self.chain, &record, &data_key, &mut self.rng)?;
        let grant = self.transaction(
            &[&patient],
            Payload::Grant(Grant {
                grantee: self.reader.public(),
                scope: GrantScope::Records(vec![record]),
                purpose: "consultation".into(),
                expires_at_ms: self.time_ms + 365 * 24 * 3600 * 1000,
            }),
        );
        times[Op::GrantKey.slot()] = start.elapsed();

        // The anchor: signed by the doctor, co-signed by the patient, verified, committed.
        let labels = (0..index::labels::LABELS_PER_RECORD_DEFAULT).map(|_| self.random::<16>()).collect();
        let anchor = AnchorRecord {
            record_id: record,
            owner: patient.public(),
            author: self.doctor.public(),
            hospital: self.hospital,
            data_type: "Observation".into(),
            created_at_ms: self.time_ms,
            ciphertext_digest: digest,
            ciphertext_len: anchored.len,
            blob_locator: locator.clone(),
            encrypted_data_key: encrypted.to_bytes(),
            index_labels: labels,
            epoch: 0,
        };
        let sender = self.doctor.public();
        let anchor_body = TxBody {
            sender,
            nonce: self.state.nonce(&sender) + 1,
            expiry_height: self.state.height() + EXPIRY_BLOCKS,
            payload: Payload::AnchorRecord(anchor),
        };
        let (anchor_tx, t) = timed(|| anchor_body.sign(&self.chain, &[&self.doctor, &patient]));
        times[Op::Sign.slot()] = t;
        let (verdict, t) = timed(|| verify_signatures(&anchor_tx, &self.chain));
        verdict.map_err(|error| OpsError::Wrong { op: Op::Verify.name(), detail: error.to_string() })?;
        times[Op::Verify.slot()] = t;
        let anchor_id = anchor_tx.id();
        let block = self.certified(vec![anchor_tx]);
        let (receipts, t) = timed(|| self.append(&block));
        applied(Op::AnchorWrite.name(), &receipts?)?;
        times[Op::AnchorWrite.slot()] = t;

        // Querying the anchor: the ledger state, then the signed transaction from storage.
        let (found, t) = timed(|| self.state.record(&record).map(|e| black_box(e).anchor.ciphertext_digest));
        times[Op::AnchorQuery.slot()] = t;
        if found != Some(digest) {
            return Err(wrong(Op::AnchorQuery, format!("record {record}: the state gave {found:?}")));
        }
        let start = Instant::now();
        let location = self.storage.tx_location(&anchor_id)?;
        let stored = match location {
            Some(at) => self.storage.block(at.height)?.and_then(|cb| cb.block.txs.into_iter().nth(at.index as usize)),
            None => None,
        };
        times[Op::AnchorReadBack.slot()] = start.elapsed();
        if stored.as_ref().map(Transaction::id) != Some(anchor_id) {
            return Err(wrong(Op::AnchorReadBack, format!("transaction {anchor_id} is not where storage says")));
        }

        // The grant (untimed: its cost is the same block write as the others).
        let grant_id = grant.id();
        let block = self.certified(vec![grant]);
        let receipts = self.append(&block)?;
        applied("grant", &receipts)?;

        // The read log: the reader's request, committed, then found in the patient's trail.
        let reader_secret = DhSecret::random(&mut self.rng);
        let reader_key = reader_secret.public();
        let request = self.transaction(
            &[&self.reader],
            Payload::ReadRequest(ReadRequest { record, grant: Some(grant_id), reader_key }),
        );
        let request_id = request.id();
        let block = self.certified(vec![request]);
        let (receipts, t) = timed(|| self.append(&block));
        applied(Op::ReadLogWrite.name(), &receipts?)?;
        times[Op::ReadLogWrite.slot()] = t;
        let (reads, t) = timed(|| {
            self.state
                .audit_trail(&patient.public())
                .iter()
                .filter(|e| matches!(&e.action, AuditAction::Read { record: r, .. } if *r == record))
                .cloned()
                .collect::<Vec<_>>()
        });
        times[Op::ReadLogQuery.slot()] = t;
        if reads.len() != 1 || reads[0].tx != request_id || reads[0].actor != self.reader.public() {
            return Err(wrong(
                Op::ReadLogQuery,
                format!("record {record}: the audit trail holds {} reads", reads.len()),
            ));
        }

        // Re-encryption: t validators' shares (one timed: they run on separate machines), then
        // the reader's combination.
        let ctx = ShareContext {
            chain: &self.chain,
            record: &record,
            request: &request_id,
            reader: &reader_key,
            key: &encrypted,
        };
        let needed = usize::from(self.key_set.threshold);
        let chosen: Vec<&KeyShare> =
            self.shares.iter().enumerate().filter(|(i, _)| *i != withheld).map(|(_, s)| s).take(needed).collect();
        let mut shares = Vec::with_capacity(needed);
        for (i, share) in chosen.into_iter().enumerate() {
            let (made, t) = timed(|| threshold::decryption_share(share, &ctx, &mut self.rng));
            shares.push(made?);
            if i == 0 {
                times[Op::Share.slot()] = t;
            }
        }
        let (recovered, t) = timed(|| threshold::combine(&self.key_set, &ctx, &reader_secret, &shares));
        let recovered = recovered?;
        times[Op::Combine.slot()] = t;
        if recovered != data_key {
            return Err(wrong(Op::Combine, format!("record {record}: the shares recovered another data key")));
        }

        // The reader: download, open.
        let (downloaded, t) = timed(|| self.runtime.block_on(self.blobs.get(&record, &locator, &anchored)));
        let downloaded = downloaded?;
        times[Op::BlobDownload.slot()] = t;
        let (plaintext, t) = timed(|| envelope::open(&recovered, &record, &anchored, &downloaded));
        let plaintext = plaintext?;
        times[Op::Decrypt.slot()] = t;
        // The local store keeps an object at its locator under its folder (`net::blobs`).
        let path = self.blob_dir.join(&locator);
        std::fs::remove_file(&path).map_err(|source| OpsError::Io { path, source })?;
        Ok(Sample { times, plaintext })
    }
}

fn wrong(op: Op, detail: String) -> OpsError {
    OpsError::Wrong { op: op.name(), detail }
}

fn applied(op: &'static str, receipts: &[Receipt]) -> Result<(), OpsError> {
    for r in receipts {
        if let Outcome::Rejected(error) = &r.outcome {
            return Err(OpsError::Refused { op, error: error.clone() });
        }
    }
    Ok(())
}

fn check(cfg: &Config) -> Result<(), OpsError> {
    if cfg.runs == 0 {
        return Err(OpsError::Config("--runs must be at least 1".into()));
    }
    if cfg.sizes.is_empty() {
        return Err(OpsError::Config("no body size to measure".into()));
    }
    if let Some(s) = cfg.sizes.iter().find(|s| **s == 0 || **s > BODY_BYTES_MAX) {
        return Err(OpsError::Config(format!("body size {s}: must be 1 to {BODY_BYTES_MAX} bytes")));
    }
    Ok(())
}

/// Runs every size of `cfg` in a new ledger and blob store under `dir` (which must not exist or
/// be empty; it is left in place).
pub fn run(cfg: &Config, dir: &Path, events: &mut dyn FnMut(Event)) -> Result<Report, OpsError> {
    check(cfg)?;
    if std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(OpsError::FolderInUse(dir.to_path_buf()));
    }
    let started = Instant::now();
    let date = utc_now();
    events(Event::Setup);
    let mut bench = Bench::open(dir, cfg.seed)?;
    let mut bodies = ChaCha20Rng::seed_from_u64(cfg.seed ^ 0x626f_6479);
    let mut samples: Vec<[Vec<f64>; OP_COUNT]> = Vec::new();
    for &size in &cfg.sizes {
        let total = cfg.warmup + cfg.runs;
        events(Event::Start { body_bytes: size, total: total as u64 });
        let mut body = vec![0u8; size];
        let mut per_op: [Vec<f64>; OP_COUNT] = std::array::from_fn(|_| Vec::with_capacity(cfg.runs));
        for i in 0..total {
            bodies.fill_bytes(&mut body);
            let sample = bench.record(&body)?;
            if sample.plaintext != body {
                return Err(wrong(Op::Decrypt, format!("a {size}-byte body did not open to the body sealed")));
            }
            if i >= cfg.warmup {
                for op in Op::ALL {
                    per_op[op.slot()].push(sample.time(op).as_secs_f64() * 1e6);
                }
            }
            events(Event::Progress { done: i as u64 + 1 });
        }
        events(Event::Finish);
        samples.push(per_op);
    }
    let rows = Op::ALL
        .iter()
        .map(|&op| Row {
            op: op.name(),
            measures: op.measures(),
            seed_experiments: op.seed_experiments(),
            sizes: cfg.sizes.iter().zip(&samples).map(|(&size, s)| Stats::of(size, &s[op.slot()])).collect(),
        })
        .collect();
    Ok(Report {
        schema: SCHEMA,
        machine: Machine::probe(),
        date,
        settings: Settings {
            sizes: cfg.sizes.clone(),
            runs: cfg.runs,
            warmup: cfg.warmup,
            validators: VALIDATORS,
            threshold: bench.key_set.threshold,
            patients: PATIENTS,
            labels_per_record: index::labels::LABELS_PER_RECORD_DEFAULT,
            seed: cfg.seed,
            dir: dir.display().to_string(),
        },
        rows,
        blocks: bench.height(),
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// A body size as the tables show it: 64 KiB, 1 MiB, 1,500 B.
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{} B", thousands(bytes))
    }
}

/// The report as a Markdown table (mean, p50 and p99 per size) and a key to the operations.
pub fn render_tables(r: &Report) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let mut out = format!(
        "Record operations, {}: {} timed runs per size (+{} warm-up), {} validators, t = {}\n\
         Host {} ({}): {} cores, {}\n\n",
        r.date,
        thousands(s.runs),
        s.warmup,
        s.validators,
        s.threshold,
        m.host,
        m.os,
        m.cpu_cores,
        m.cpu_model.as_deref().unwrap_or("CPU model unknown"),
    );
    out.push_str("| operation | seed exp. |");
    for size in &s.sizes {
        let l = size_label(*size);
        out.push_str(&format!(" {l} mean | {l} p50 | {l} p99 |"));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(3 * s.sizes.len()));
    out.push('\n');
    let us = |x: f64| human_time(x / 1e6);
    for row in &r.rows {
        let exps: Vec<String> = row.seed_experiments.iter().map(u8::to_string).collect();
        out.push_str(&format!("| {} | {} |", row.op, exps.join(", ")));
        for st in &row.sizes {
            out.push_str(&format!(" {} | {} | {} |", us(st.mean_us), us(st.p50_us), us(st.p99_us)));
        }
        out.push('\n');
    }
    out.push_str("\nWhat each timer covers:\n");
    for row in &r.rows {
        out.push_str(&format!("- {}: {}\n", row.op, row.measures));
    }
    out.push_str(&format!(
        "\n{} blocks written; {} in all. Seed 001's experiments: see bench/RESULTS.md.\n",
        thousands(r.blocks as usize),
        human_time(r.elapsed_s)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_measured_and_the_reader_gets_the_body_back() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config { sizes: vec![4096, 20_000], runs: 3, warmup: 1, seed: 7 };
        let mut events = Vec::new();
        let report = run(&cfg, &dir.path().join("ops"), &mut |e| events.push(e)).unwrap();
        assert_eq!(report.rows.len(), OP_COUNT);
        let names: Vec<&str> = report.rows.iter().map(|r| r.op).collect();
        let expected: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
        assert_eq!(names, expected);
        for row in &report.rows {
            assert_eq!(row.sizes.len(), 2, "{}", row.op);
            for (st, size) in row.sizes.iter().zip(&cfg.sizes) {
                assert_eq!((st.body_bytes, st.runs), (*size, 3), "{}", row.op);
                for x in [st.mean_us, st.p50_us, st.p99_us, st.max_us] {
                    assert!(x.is_finite() && x > 0.0, "{} at {size}: {x}", row.op);
                }
                assert!(st.min_us <= st.p50_us && st.p50_us <= st.p99_us && st.p99_us <= st.max_us, "{}", row.op);
            }
        }
        // Genesis + enrolment, then three blocks per record.
        assert_eq!(report.blocks, 1 + 3 * 2 * 4);
        assert!(matches!(events.first(), Some(Event::Setup)));
        assert_eq!(events.iter().filter(|e| matches!(e, Event::Finish)).count(), 2);
        let table = render_tables(&report);
        assert!(table.contains("| anchor-write |") && table.contains("20,000 B mean"), "{table}");
    }

    #[test]
    fn decrypt_returns_the_plaintext_and_the_blocks_are_certified() {
        let dir = tempfile::tempdir().unwrap();
        let mut bench = Bench::open(dir.path(), 3).unwrap();
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let sample = bench.record(&body).unwrap();
        assert_eq!(sample.plaintext, body, "the reader opens exactly the body the writer sealed");
        let files = |dir: &Path| walk(dir).into_iter().filter(|p| p.is_file()).count();
        assert_eq!(files(&dir.path().join("blobs")), 0, "the blob was deleted once read back");
        assert_eq!(bench.height(), 4);
        for h in 1..=bench.height() {
            assert!(bench.certificate_checks(h).unwrap(), "block {h}'s certificate");
        }
        // Another body, another record: still its own plaintext.
        let other = vec![0xabu8; 777];
        assert_eq!(bench.record(&other).unwrap().plaintext, other);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk(&path));
            }
            out.push(path);
        }
        out
    }

    #[test]
    fn stats_use_nearest_rank() {
        let samples: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = Stats::of(1, &samples);
        assert_eq!((s.p50_us, s.p99_us, s.min_us, s.max_us), (100.0, 198.0, 1.0, 200.0));
        assert!((s.mean_us - 100.5).abs() < 1e-9);
        assert_eq!(Stats::of(1, &[5.0]).p99_us, 5.0);
    }

    #[test]
    fn a_bad_configuration_or_a_used_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = |sizes: Vec<usize>, runs| Config { sizes, runs, warmup: 0, seed: 1 };
        let mut none = |_| {};
        assert!(matches!(run(&cfg(vec![1024], 0), dir.path(), &mut none), Err(OpsError::Config(_))));
        assert!(matches!(run(&cfg(vec![0], 1), dir.path(), &mut none), Err(OpsError::Config(_))));
        assert!(matches!(run(&cfg(vec![], 1), dir.path(), &mut none), Err(OpsError::Config(_))));
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        assert!(matches!(run(&cfg(vec![1024], 1), dir.path(), &mut none), Err(OpsError::FolderInUse(_))));
        assert_eq!(size_label(65536), "64 KiB");
        assert_eq!(size_label(1 << 20), "1 MiB");
        assert_eq!(size_label(1500), "1,500 B");
    }
}
