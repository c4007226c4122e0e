//! `medchain bench index`: the encrypted keyword index of DESIGN.md §6 at scale, against a
//! plaintext tantivy index of the same corpus built and queried in the same run.
//!
//! One run:
//! 1. **corpus**: synthetic FHIR R4 resources, one record each, through the real keyword
//!    extractor ([`corpus`]); records spread over several hospitals (each its own [`IndexKey`])
//!    and over `epochs` index epochs in chain order;
//! 2. **writer side**: every record's P labels from [`LabelWriter`] (counters in
//!    [`MemoryCounterStore`]), one writer per hospital, hospitals in parallel: in production each
//!    hospital's own machine does this, so it is reported apart from the index build;
//! 3. **encrypted build**: the records as committed blocks through [`IndexView::apply_blocks`],
//!    [`REBUILD_BATCH_BLOCKS`] blocks per call (one commit each), as a node's rebuild does; then
//!    the writer's merges are waited for;
//! 4. **plaintext build**: the same blocks into the [`plain`] baseline, committed per the same
//!    batches; then the same labels into a bare tantivy index of labels alone ([`labels_only`]),
//!    the rate tantivy itself reaches with P random terms per record on this machine;
//! 5. **queries**: a single predicate matching about one record in a thousand and a selective
//!    three-predicate conjunction, chosen from the corpus's term counts, parsed with
//!    [`query::parse`] and run through the node's search path ([`index::search::search`]) with
//!    every hospital's term keys for every epoch, and on the plaintext index; every run of both
//!    is checked against the corpus's ground truth, a disagreement is an error (figures withheld).
//!
//! Time is read here (this is a measurement); the library logic measured takes none.

pub mod corpus;
pub mod labels_only;
pub mod plain;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use engine::codec::{sha256_parts, Digest};
use engine::crypto::PublicKey;
use index::labels::{term_key, IndexKey, LabelPolicy, LabelWriter, MemoryCounterStore, Overflow};
use index::query::{self, Query};
use index::search::{search, DomainKey, SearchLimits};
use index::term::Term;
use index::view::{BlockRecords, Hit, IndexView, IndexedRecord, REBUILD_BATCH_BLOCKS};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::gpu::{cpu_model, host_name, human_time, si, thousands, utc_now};
use corpus::Corpus;
use plain::PlainIndex;

/// Writer threads of the encrypted view (`index::view`), which the plaintext baseline copies.
pub const VIEW_WRITER_THREADS: usize = index::view::WRITER_THREADS;
/// Writer memory budget of the encrypted view (all threads), which the plaintext baseline copies.
pub const VIEW_WRITER_MEMORY_BYTES: usize = index::view::WRITER_MEMORY_BYTES;

/// Records per block: anchors of several hospitals, in chain order.
pub const RECORDS_PER_BLOCK: usize = 1000;
/// Length of an index epoch: the label policy's default, one hour.
pub const EPOCH_LEN_MS: u64 = index::labels::EPOCH_LEN_MS_DEFAULT;
/// When the first record is written: 2026-01-01T00:00:00Z, the start of an epoch.
pub const START_MS: u64 = 1_767_225_600_000;
/// Warm-up runs of each query on each index before the timed ones.
pub const WARMUP_RUNS: usize = 2;
/// The single predicate should match about one record in this many.
pub const SINGLE_SELECTIVITY: usize = 1000;

const _: () = assert!(START_MS.is_multiple_of(EPOCH_LEN_MS));

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Records in the corpus.
    pub records: usize,
    /// Labels per record, P.
    pub labels_per_record: usize,
    /// Index epochs the records are spread over (in chain order).
    pub epochs: u64,
    /// Hospitals (search domains), each with its own index key, writing in turn.
    pub hospitals: usize,
    /// Timed runs per query and index (after [`WARMUP_RUNS`] warm-up runs).
    pub repeats: usize,
    /// The corpus seed.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            records: 1_000_000,
            labels_per_record: index::labels::LABELS_PER_RECORD_DEFAULT,
            epochs: 24,
            hospitals: 4,
            repeats: 25,
            seed: 4,
        }
    }
}

/// The phases of a run, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Generating resources and extracting their terms (unit: records).
    Corpus,
    /// Deriving labels (unit: records).
    Labels,
    /// Building the encrypted index (unit: records).
    EncryptedBuild,
    /// Waiting for the encrypted index's merges (no unit).
    EncryptedMerge,
    /// Building the plaintext index (unit: records).
    PlaintextBuild,
    /// Waiting for the plaintext index's merges (no unit).
    PlaintextMerge,
    /// Building the labels-only index (unit: records).
    LabelsOnlyBuild,
    /// Waiting for the labels-only index's merges (no unit).
    LabelsOnlyMerge,
    /// Running the queries (unit: query runs).
    Queries,
}

impl Phase {
    /// A short name for progress bars.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Corpus => "corpus",
            Phase::Labels => "labels",
            Phase::EncryptedBuild => "encrypted",
            Phase::EncryptedMerge => "merging",
            Phase::PlaintextBuild => "plaintext",
            Phase::PlaintextMerge => "merging",
            Phase::LabelsOnlyBuild => "labels only",
            Phase::LabelsOnlyMerge => "merging",
            Phase::Queries => "queries",
        }
    }
}

/// Progress of a run.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// A phase starts; `total` units of work (0 when it has no unit).
    Start {
        /// The phase.
        phase: Phase,
        /// Its units of work.
        total: u64,
    },
    /// `done` units of the current phase are done.
    Progress {
        /// Units done so far.
        done: u64,
    },
    /// The current phase ended.
    Finish,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The configuration cannot be run.
    #[error("{0}")]
    Config(String),
    /// An index folder is already there.
    #[error("{}: already exists and is not empty; remove it or pick another --dir", .0.display())]
    FolderInUse(PathBuf),
    /// Generating the corpus failed (the generator produced a resource the extractor refused).
    #[error("corpus: {0}")]
    Corpus(#[from] corpus::CorpusError),
    /// Label derivation failed.
    #[error("labels: {0}")]
    Labels(#[from] index::labels::LabelError),
    /// The encrypted view failed.
    #[error("encrypted index: {0}")]
    View(#[from] index::view::ViewError),
    /// The encrypted search failed.
    #[error("encrypted search of {query:?}: {reason}")]
    Search {
        /// The query.
        query: String,
        /// What failed.
        reason: String,
    },
    /// The plaintext index failed.
    #[error("{0}")]
    Plain(#[from] plain::PlainError),
    /// The labels-only index failed.
    #[error("{0}")]
    LabelsOnly(#[from] labels_only::LabelsOnlyError),
    /// A benchmark query did not parse (a bug of the query choice).
    #[error("query {query:?} does not parse: {reason}")]
    Query {
        /// The query.
        query: String,
        /// The parser's message.
        reason: String,
    },
    /// File-system trouble.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The machine the figures were taken on.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPU cores.
    pub cpu_cores: usize,
    /// The CPU model, where the OS says.
    pub cpu_model: Option<String>,
    /// Total memory in bytes, where the OS says.
    pub memory_bytes: Option<u64>,
    /// The host name.
    pub host: String,
    /// OS and architecture.
    pub os: String,
}

impl Machine {
    /// Describes this host.
    pub fn probe() -> Self {
        Machine {
            cpu_cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            cpu_model: cpu_model(),
            memory_bytes: memory_bytes(),
            host: host_name(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The settings of a run.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Records.
    pub records: usize,
    /// Labels per record, P.
    pub labels_per_record: usize,
    /// Index epochs.
    pub epochs: u64,
    /// Epoch length, ms.
    pub epoch_len_ms: u64,
    /// Hospitals.
    pub hospitals: usize,
    /// Timed runs per query and index.
    pub repeats: usize,
    /// Warm-up runs per query and index.
    pub warmup: usize,
    /// Records per block.
    pub records_per_block: usize,
    /// Blocks per `apply_blocks` call (one commit each).
    pub blocks_per_commit: u64,
    /// The corpus seed.
    pub seed: u64,
    /// Where the indexes were built.
    pub dir: String,
}

/// The corpus.
#[derive(Clone, Debug, Serialize)]
pub struct CorpusReport {
    /// How it was generated.
    pub source: String,
    /// Records.
    pub records: usize,
    /// Patients.
    pub patients: usize,
    /// Records per data type.
    pub data_types: Vec<(String, usize)>,
    /// Distinct (field, value) terms.
    pub distinct_terms: usize,
    /// Mean terms per record (after the cut to P).
    pub terms_per_record_mean: f64,
    /// Most distinct terms a record had before the cut.
    pub terms_per_record_max: usize,
    /// Records that had more terms than P (their lowest-priority terms are left out, in both
    /// indexes alike).
    pub records_truncated: usize,
    /// Terms left out by the cut.
    pub terms_dropped: usize,
    /// Seconds to generate and extract (every core).
    pub generate_s: f64,
}

/// The writer side: label derivation.
#[derive(Clone, Debug, Serialize)]
pub struct WriterReport {
    /// Seconds for every record, every core (hospitals in parallel).
    pub seconds: f64,
    /// Records labelled per second, every core.
    pub records_per_s: f64,
    /// Real (non-padding) labels derived.
    pub real_labels: u64,
    /// Threads used.
    pub threads: usize,
}

/// One index: build and size.
#[derive(Clone, Debug, Serialize)]
pub struct IndexReport {
    /// Records indexed.
    pub records: u64,
    /// Seconds from the first document to the last commit.
    pub build_s: f64,
    /// Records per second over `build_s`.
    pub records_per_s: f64,
    /// Commits.
    pub commits: usize,
    /// Seconds then spent waiting for the writer's merges.
    pub merge_wait_s: f64,
    /// Searchable segments when queried.
    pub segments: usize,
    /// Bytes on disk when queried.
    pub size_bytes: u64,
}

/// Latencies of one query on one index.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile (nearest rank), ms.
    pub p90_ms: f64,
    /// Fastest, ms.
    pub min_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Timed runs.
    pub runs: usize,
}

impl Latency {
    fn from_runs(mut runs: Vec<Duration>) -> Option<Self> {
        if runs.is_empty() {
            return None;
        }
        runs.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let n = runs.len();
        let p50 = if n % 2 == 1 { ms(runs[n / 2]) } else { (ms(runs[n / 2 - 1]) + ms(runs[n / 2])) / 2.0 };
        let p90 = ms(runs[(n * 9).div_ceil(10).clamp(1, n) - 1]);
        Some(Latency { p50_ms: p50, p90_ms: p90, min_ms: ms(runs[0]), max_ms: ms(runs[n - 1]), runs: n })
    }
}

/// One benchmark query.
#[derive(Clone, Debug, Serialize)]
pub struct QueryReport {
    /// `single` or `and3`.
    pub name: String,
    /// The query as parsed and displayed.
    pub query: String,
    /// Why this query.
    pub chosen_as: String,
    /// Records holding each predicate (the labels a node must find for it).
    pub predicate_matches: Vec<usize>,
    /// Term keys handed to the search (terms × hospitals × epochs).
    pub keys: usize,
    /// Records matching (ground truth from the corpus).
    pub matches: usize,
    /// Label lookups the encrypted search made (from its outcome).
    pub lookups: u64,
    /// Labels it found.
    pub labels_found: u64,
    /// Encrypted search latency; withheld (`None`) when the results disagreed.
    pub encrypted: Option<Latency>,
    /// Plaintext search latency; withheld when the results disagreed.
    pub plaintext: Option<Latency>,
    /// Encrypted p50 over plaintext p50.
    pub overhead_p50: Option<f64>,
    /// Encrypted p90 over plaintext p90.
    pub overhead_p90: Option<f64>,
    /// Whether every run of both indexes returned exactly the ground truth's record ids.
    pub agreed: bool,
    /// What disagreed, if anything.
    pub mismatch: Option<String>,
}

/// A target of issue 4 and whether it was met.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// What is measured.
    pub what: String,
    /// The target, in words.
    pub target: String,
    /// The measured figure, in words; `None` when withheld.
    pub measured: Option<String>,
    /// Whether it was met; `None` when withheld.
    pub met: Option<bool>,
}

/// A whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The host.
    pub machine: Machine,
    /// When the run started (UTC).
    pub date: String,
    /// How it was run.
    pub settings: Settings,
    /// The corpus.
    pub corpus: CorpusReport,
    /// Label derivation (the hospitals' machines in production).
    pub writer: WriterReport,
    /// The encrypted index (a node's view).
    pub encrypted: IndexReport,
    /// The plaintext baseline.
    pub plaintext: IndexReport,
    /// The labels alone in a bare tantivy index: the floor under the encrypted build.
    pub labels_only: IndexReport,
    /// Encrypted over plaintext bytes on disk.
    pub size_ratio: f64,
    /// Encrypted over plaintext build time.
    pub build_time_ratio: f64,
    /// The queries.
    pub queries: Vec<QueryReport>,
    /// Issue 4's targets.
    pub targets: Vec<Target>,
    /// Whether both indexes agreed with the ground truth on every query.
    pub agreed: bool,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
}

impl Report {
    /// Every disagreement, as `query: detail`.
    pub fn mismatches(&self) -> Vec<String> {
        self.queries.iter().filter_map(|q| q.mismatch.as_ref().map(|m| format!("{}: {m}", q.name))).collect()
    }
}

/// A hospital: its index key and the public key its records are written under.
struct Hospital {
    key: IndexKey,
    public: PublicKey,
}

fn hospitals(n: usize, seed: u64) -> Vec<Hospital> {
    (0..n as u64)
        .map(|h| {
            let key = sha256_parts(&[b"medchain/bench/index/key", &seed.to_be_bytes(), &h.to_be_bytes()]);
            let public = sha256_parts(&[b"medchain/bench/index/hospital", &seed.to_be_bytes(), &h.to_be_bytes()]);
            Hospital { key: IndexKey::from_bytes(key.0), public: PublicKey(public.0) }
        })
        .collect()
}

/// Record `i`'s epoch index (0-based) and creation time: records are spread evenly over the
/// epochs in chain order, and evenly within their epoch.
fn record_time(i: usize, records: usize, epochs: u64) -> (u64, u64) {
    let (i, n) = (i as u128, records as u128);
    let e = (i * u128::from(epochs) / n) as u64;
    // The records of epoch e are those with ceil(e·n/E) <= i < ceil((e+1)·n/E).
    let first = (u128::from(e) * n).div_ceil(u128::from(epochs));
    let next = ((u128::from(e) + 1) * n).div_ceil(u128::from(epochs));
    let offset = ((i - first) * u128::from(EPOCH_LEN_MS) / (next - first).max(1)) as u64;
    (e, START_MS + e * EPOCH_LEN_MS + offset)
}

fn record_id(seed: u64, i: usize) -> Digest {
    sha256_parts(&[b"medchain/bench/index/record", &seed.to_be_bytes(), &(i as u64).to_be_bytes()])
}

fn block_hash(seed: u64, height: u64) -> Digest {
    sha256_parts(&[b"medchain/bench/index/block", &seed.to_be_bytes(), &height.to_be_bytes()])
}

fn check(cfg: &Config) -> Result<(), BenchError> {
    let bad = |m: String| Err(BenchError::Config(m));
    if cfg.records == 0 || cfg.records > 20_000_000 {
        return bad(format!("--records {} must be between 1 and 20,000,000", cfg.records));
    }
    if !(1..=engine::limits::INDEX_LABELS_MAX).contains(&cfg.labels_per_record) {
        return bad(format!(
            "--labels-per-record {} must be between 1 and {}",
            cfg.labels_per_record,
            engine::limits::INDEX_LABELS_MAX
        ));
    }
    if cfg.epochs == 0 || cfg.epochs > 100_000 || cfg.epochs as usize > cfg.records {
        return bad(format!(
            "--epochs {} must be between 1 and the number of records (and at most 100,000)",
            cfg.epochs
        ));
    }
    if cfg.hospitals == 0 || cfg.hospitals > 64 {
        return bad(format!("--hospitals {} must be between 1 and 64", cfg.hospitals));
    }
    if cfg.repeats == 0 {
        return bad("--repeats must be at least 1".into());
    }
    Ok(())
}

/// A folder the run may build an index in: absent or empty.
fn fresh_folder(path: PathBuf) -> Result<PathBuf, BenchError> {
    match std::fs::read_dir(&path) {
        Ok(mut entries) => match entries.next() {
            Some(_) => Err(BenchError::FolderInUse(path)),
            None => Ok(path),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(path),
        Err(source) => Err(BenchError::Io { path, source }),
    }
}

/// Searchable segments of a committed index.
fn segments(index: &tantivy::Index, dir: &Path) -> Result<usize, BenchError> {
    let ids = index.searchable_segment_ids().map_err(|source| {
        BenchError::Plain(plain::PlainError { dir: dir.to_path_buf(), operation: "listing segments", source })
    })?;
    Ok(ids.len())
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> Result<u64, BenchError> {
    let mut total = 0;
    let entries = std::fs::read_dir(dir).map_err(|source| BenchError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| BenchError::Io { path: dir.to_path_buf(), source })?;
        let meta = entry.metadata().map_err(|source| BenchError::Io { path: entry.path(), source })?;
        total += if meta.is_dir() { folder_bytes(&entry.path())? } else { meta.len() };
    }
    Ok(total)
}

/// Runs the benchmark, building the indexes in `dir/encrypted` and `dir/plaintext` (both must be
/// absent or empty; they are left there).
pub fn run(cfg: &Config, dir: &Path, events: &mut dyn FnMut(Event)) -> Result<Report, BenchError> {
    check(cfg)?;
    let started = Instant::now();
    let date = utc_now();
    let encrypted_dir = fresh_folder(dir.join("encrypted"))?;
    let plaintext_dir = fresh_folder(dir.join("plaintext"))?;
    let labels_only_dir = fresh_folder(dir.join("labels-only"))?;
    let n = cfg.records;
    let p = cfg.labels_per_record;

    // 1. Corpus.
    events(Event::Start { phase: Phase::Corpus, total: n as u64 });
    let t = Instant::now();
    let corpus = corpus::generate(n, p, cfg.seed, &mut |done| events(Event::Progress { done: done as u64 }))?;
    let generate_s = t.elapsed().as_secs_f64();
    events(Event::Finish);
    let mut per_type = vec![0usize; corpus.data_types.len()];
    for &t in &corpus.data_type {
        per_type[t as usize] += 1;
    }
    let corpus_report = CorpusReport {
        source: corpus::SOURCE.to_owned(),
        records: n,
        patients: corpus.patient.last().map_or(0, |p| *p as usize + 1),
        data_types: corpus.data_types.iter().cloned().zip(per_type).collect(),
        distinct_terms: corpus.vocab.len(),
        terms_per_record_mean: corpus.terms.len() as f64 / n as f64,
        terms_per_record_max: corpus.terms_max,
        records_truncated: corpus.records_truncated,
        terms_dropped: corpus.terms_dropped,
        generate_s,
    };

    // 2. Writer side.
    let hospitals = hospitals(cfg.hospitals, cfg.seed);
    let hospital_of = |i: usize| corpus.patient[i] as usize % cfg.hospitals;
    let (records, writer) = label_records(cfg, &corpus, &hospitals, &hospital_of, events)?;

    // Blocks, in chain order.
    let mut blocks: Vec<BlockRecords> = Vec::with_capacity(n.div_ceil(RECORDS_PER_BLOCK));
    let mut prev_hash = block_hash(cfg.seed, 0);
    let mut records = records.into_iter();
    loop {
        let chunk: Vec<IndexedRecord> = records.by_ref().take(RECORDS_PER_BLOCK).collect();
        if chunk.is_empty() {
            break;
        }
        let height = blocks.len() as u64 + 1;
        let hash = block_hash(cfg.seed, height);
        blocks.push(BlockRecords { height, hash, prev_hash, records: chunk });
        prev_hash = hash;
    }

    // 3. Encrypted build.
    let batch = REBUILD_BATCH_BLOCKS as usize;
    events(Event::Start { phase: Phase::EncryptedBuild, total: n as u64 });
    let mut view = IndexView::open(&encrypted_dir)?;
    let t = Instant::now();
    let mut done = 0;
    for chunk in blocks.chunks(batch) {
        done += view.apply_blocks(chunk)?;
        events(Event::Progress { done: done as u64 });
    }
    let encrypted_build_s = t.elapsed().as_secs_f64();
    events(Event::Finish);
    events(Event::Start { phase: Phase::EncryptedMerge, total: 0 });
    let t = Instant::now();
    view.close()?;
    let encrypted_merge_s = t.elapsed().as_secs_f64();
    let view = IndexView::open(&encrypted_dir)?;
    events(Event::Finish);
    let encrypted = IndexReport {
        records: view.num_records(),
        build_s: encrypted_build_s,
        records_per_s: n as f64 / encrypted_build_s,
        commits: blocks.len().div_ceil(batch),
        merge_wait_s: encrypted_merge_s,
        segments: segments(view.tantivy_index(), &encrypted_dir)?,
        size_bytes: folder_bytes(&encrypted_dir)?,
    };

    // 4. Plaintext build.
    events(Event::Start { phase: Phase::PlaintextBuild, total: n as u64 });
    let mut plain = PlainIndex::create(&plaintext_dir)?;
    let t = Instant::now();
    let mut first = 0;
    for chunk in blocks.chunks(batch) {
        plain.add_blocks(chunk, first, &corpus)?;
        first += chunk.iter().map(|b| b.records.len()).sum::<usize>();
        events(Event::Progress { done: first as u64 });
    }
    let plaintext_build_s = t.elapsed().as_secs_f64();
    events(Event::Finish);
    events(Event::Start { phase: Phase::PlaintextMerge, total: 0 });
    let t = Instant::now();
    let plain = plain.finish()?;
    let plaintext_merge_s = t.elapsed().as_secs_f64();
    events(Event::Finish);
    let plaintext = IndexReport {
        records: plain.num_records(),
        build_s: plaintext_build_s,
        records_per_s: n as f64 / plaintext_build_s,
        commits: blocks.len().div_ceil(batch),
        merge_wait_s: plaintext_merge_s,
        segments: segments(plain.tantivy_index(), &plaintext_dir)?,
        size_bytes: folder_bytes(&plaintext_dir)?,
    };

    // 4b. Labels only.
    events(Event::Start { phase: Phase::LabelsOnlyBuild, total: n as u64 });
    let mut bare = labels_only::LabelsOnlyIndex::create(&labels_only_dir)?;
    let t = Instant::now();
    let mut done = 0;
    for chunk in blocks.chunks(batch) {
        bare.add_blocks(chunk)?;
        done += chunk.iter().map(|b| b.records.len()).sum::<usize>();
        events(Event::Progress { done: done as u64 });
    }
    let labels_only_build_s = t.elapsed().as_secs_f64();
    events(Event::Finish);
    events(Event::Start { phase: Phase::LabelsOnlyMerge, total: 0 });
    let t = Instant::now();
    let (bare_index, bare_records) = bare.finish()?;
    let labels_only_merge_s = t.elapsed().as_secs_f64();
    events(Event::Finish);
    let labels_only = IndexReport {
        records: bare_records,
        build_s: labels_only_build_s,
        records_per_s: n as f64 / labels_only_build_s,
        commits: blocks.len().div_ceil(batch),
        merge_wait_s: labels_only_merge_s,
        segments: segments(&bare_index, &labels_only_dir)?,
        size_bytes: folder_bytes(&labels_only_dir)?,
    };
    drop(bare_index);

    // 5. Queries.
    let ids: Vec<Digest> = blocks.iter().flat_map(|b| b.records.iter().map(|r| r.record_id)).collect();
    drop(blocks);
    let epochs: Vec<u64> = (0..cfg.epochs).map(|e| START_MS / EPOCH_LEN_MS + e).collect();
    let postings = corpus.postings();
    let plans = choose_queries(&corpus, &postings);
    let term_ids: HashMap<&str, u32> = corpus.tokens.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
    events(Event::Start { phase: Phase::Queries, total: (plans.len() * 2 * (cfg.repeats + WARMUP_RUNS)) as u64 });
    let mut queries = Vec::new();
    let mut runs_done = 0u64;
    for plan in plans {
        let parsed = query::parse(&plan.text)
            .map_err(|e| BenchError::Query { query: plan.text.clone(), reason: e.render(&plan.text) })?;
        let keys = domain_keys(&parsed, &hospitals, &epochs);
        let truth = ground_truth(&parsed, &postings, &term_ids, &ids);
        let predicate_matches = parsed
            .expr
            .predicates()
            .iter()
            .map(|p| {
                let mut set = BTreeSet::new();
                for t in &p.terms {
                    if let Some(&id) = term_ids.get(format!("{}={}", t.field, t.value).as_str()) {
                        set.extend(postings[id as usize].iter().copied());
                    }
                }
                set.len()
            })
            .collect();
        let mut enc_runs = Vec::with_capacity(cfg.repeats);
        let mut plain_runs = Vec::with_capacity(cfg.repeats);
        let mut mismatch = None;
        let mut lookups = 0;
        let mut labels_found = 0;
        for run in 0..cfg.repeats + WARMUP_RUNS {
            // Alternate which index goes first, so neither always finds the caches warm.
            let order = if run % 2 == 0 { [true, false] } else { [false, true] };
            for encrypted_first in order {
                if encrypted_first {
                    let t = Instant::now();
                    let outcome = search(&view, &parsed, &keys, &SearchLimits::default())
                        .map_err(|e| BenchError::Search { query: plan.text.clone(), reason: e.to_string() })?;
                    let elapsed = t.elapsed();
                    lookups = outcome.lookups as u64;
                    labels_found = outcome.labels_found as u64;
                    if mismatch.is_none() {
                        mismatch = compare("encrypted", &outcome.hits, &truth);
                    }
                    if run >= WARMUP_RUNS {
                        enc_runs.push(elapsed);
                    }
                } else {
                    let t = Instant::now();
                    let hits = plain.search(&parsed)?;
                    let elapsed = t.elapsed();
                    if mismatch.is_none() {
                        mismatch = compare("plaintext", &hits, &truth);
                    }
                    if run >= WARMUP_RUNS {
                        plain_runs.push(elapsed);
                    }
                }
                runs_done += 1;
                events(Event::Progress { done: runs_done });
            }
        }
        let agreed = mismatch.is_none();
        let (encrypted, plaintext) =
            if agreed { (Latency::from_runs(enc_runs), Latency::from_runs(plain_runs)) } else { (None, None) };
        let ratio = |f: fn(&Latency) -> f64| match (&encrypted, &plaintext) {
            (Some(e), Some(p)) if f(p) > 0.0 => Some(f(e) / f(p)),
            _ => None,
        };
        queries.push(QueryReport {
            name: plan.name.to_owned(),
            query: parsed.to_string(),
            chosen_as: plan.why,
            predicate_matches,
            keys: keys.len(),
            matches: truth.len(),
            lookups,
            labels_found,
            overhead_p50: ratio(|l| l.p50_ms),
            overhead_p90: ratio(|l| l.p90_ms),
            encrypted,
            plaintext,
            agreed,
            mismatch,
        });
    }
    events(Event::Finish);

    let agreed = queries.iter().all(|q| q.agreed);
    let targets = targets(&encrypted, &queries);
    Ok(Report {
        machine: Machine::probe(),
        date,
        settings: Settings {
            records: n,
            labels_per_record: p,
            epochs: cfg.epochs,
            epoch_len_ms: EPOCH_LEN_MS,
            hospitals: cfg.hospitals,
            repeats: cfg.repeats,
            warmup: WARMUP_RUNS,
            records_per_block: RECORDS_PER_BLOCK,
            blocks_per_commit: REBUILD_BATCH_BLOCKS,
            seed: cfg.seed,
            dir: dir.display().to_string(),
        },
        corpus: corpus_report,
        writer,
        size_ratio: encrypted.size_bytes as f64 / plaintext.size_bytes.max(1) as f64,
        build_time_ratio: encrypted.build_s / plaintext.build_s.max(1e-9),
        encrypted,
        plaintext,
        labels_only,
        queries,
        targets,
        agreed,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// Derives every record's labels, one [`LabelWriter`] per hospital, hospitals in parallel,
/// each hospital's records in chain order; returns the records as the chain carries them.
fn label_records(
    cfg: &Config,
    corpus: &Corpus,
    hospitals: &[Hospital],
    hospital_of: &(dyn Fn(usize) -> usize + Sync),
    events: &mut dyn FnMut(Event),
) -> Result<(Vec<IndexedRecord>, WriterReport), BenchError> {
    let n = corpus.len();
    let policy = LabelPolicy {
        labels_per_record: cfg.labels_per_record,
        overflow: Overflow::Refuse,
        epoch_len_ms: EPOCH_LEN_MS,
    };
    let writers: Vec<LabelWriter<MemoryCounterStore>> = hospitals
        .iter()
        .map(|h| LabelWriter::new(h.key.clone(), h.public, policy, MemoryCounterStore::new()))
        .collect::<Result<_, _>>()?;
    let mut rngs: Vec<ChaCha20Rng> =
        (0..hospitals.len() as u64).map(|h| ChaCha20Rng::seed_from_u64(cfg.seed ^ (h << 32) ^ 0x7061_6464)).collect();
    let mut out: Vec<Option<IndexedRecord>> = Vec::with_capacity(n);
    out.resize_with(n, || None);
    events(Event::Start { phase: Phase::Labels, total: n as u64 });
    const CHUNK: usize = 20_000;
    let t = Instant::now();
    let mut real_labels = 0u64;
    for start in (0..n).step_by(CHUNK) {
        let end = n.min(start + CHUNK);
        let labelled: Vec<Vec<(usize, IndexedRecord, usize)>> = writers
            .par_iter()
            .zip(rngs.par_iter_mut())
            .enumerate()
            .map(|(h, (writer, rng))| {
                let mut mine = Vec::new();
                for i in (start..end).filter(|&i| hospital_of(i) == h) {
                    let terms: Vec<Term> =
                        corpus.record_terms(i).iter().map(|&t| corpus.vocab[t as usize].clone()).collect();
                    let (_, created_at_ms) = record_time(i, n, cfg.epochs);
                    let labels = writer.labels_for_record(&terms, created_at_ms, rng)?;
                    mine.push((
                        i,
                        IndexedRecord {
                            record_id: record_id(cfg.seed, i),
                            tx_index: 0,
                            hospital: hospitals[h].public,
                            data_type: corpus.data_types[corpus.data_type[i] as usize].clone(),
                            created_at_ms,
                            epoch: labels.epoch,
                            labels: labels.labels,
                        },
                        terms.len(),
                    ));
                }
                Ok(mine)
            })
            .collect::<Result<_, index::labels::LabelError>>()?;
        for (i, mut record, real) in labelled.into_iter().flatten() {
            record.tx_index = (i % RECORDS_PER_BLOCK) as u32;
            real_labels += real as u64;
            out[i] = Some(record);
        }
        events(Event::Progress { done: end as u64 });
    }
    let seconds = t.elapsed().as_secs_f64();
    events(Event::Finish);
    let records: Vec<IndexedRecord> = out.into_iter().flatten().collect();
    assert_eq!(records.len(), n, "every record was labelled by its hospital");
    let report = WriterReport {
        seconds,
        records_per_s: n as f64 / seconds.max(1e-9),
        real_labels,
        threads: rayon::current_num_threads().min(hospitals.len()),
    };
    Ok((records, report))
}

/// The term keys a researcher would hold for `query`: every term, every hospital, every epoch.
fn domain_keys(query: &Query, hospitals: &[Hospital], epochs: &[u64]) -> Vec<DomainKey> {
    let mut keys = Vec::new();
    for term in query.terms() {
        for h in hospitals {
            for &epoch in epochs {
                keys.push(DomainKey {
                    hospital: h.public,
                    field: term.field.clone(),
                    value: term.value.clone(),
                    epoch,
                    key: term_key(&h.key, &term.field, &term.value, epoch),
                });
            }
        }
    }
    keys
}

/// The record ids matching `query` according to the corpus itself.
fn ground_truth(query: &Query, postings: &[Vec<u32>], term_ids: &HashMap<&str, u32>, ids: &[Digest]) -> Vec<Digest> {
    assert!(query.filter.is_empty(), "the benchmark queries have no public filter");
    let universe: BTreeSet<u32> = (0..ids.len() as u32).collect();
    let mut lookup = |terms: &[Term]| -> BTreeSet<u32> {
        let mut set = BTreeSet::new();
        for t in terms {
            if let Some(&id) = term_ids.get(format!("{}={}", t.field, t.value).as_str()) {
                set.extend(postings[id as usize].iter().copied());
            }
        }
        set
    };
    let matching = query.expr.eval_sets(&mut lookup, &universe);
    let mut out: Vec<Digest> = matching.into_iter().map(|i| ids[i as usize]).collect();
    out.sort_unstable();
    out
}

/// `None` when `hits` are exactly `truth` (sorted record ids), else what differs.
fn compare(which: &str, hits: &[Hit], truth: &[Digest]) -> Option<String> {
    let mut got: Vec<Digest> = hits.iter().map(|h| h.record_id).collect();
    got.sort_unstable();
    if got == truth {
        return None;
    }
    let got_set: BTreeSet<&Digest> = got.iter().collect();
    let truth_set: BTreeSet<&Digest> = truth.iter().collect();
    let missing = truth_set.difference(&got_set).count();
    let extra = got_set.difference(&truth_set).count();
    Some(format!(
        "the {which} index returned {} records, the corpus says {}: {missing} missing, {extra} extra{}",
        got.len(),
        truth.len(),
        if got.len() != got_set.len() { ", with duplicates" } else { "" }
    ))
}

/// A query to run, and why it was chosen.
struct Plan {
    name: &'static str,
    text: String,
    why: String,
}

/// The benchmark queries, from the corpus (deterministic for a corpus). `want` is
/// N / [`SINGLE_SELECTIVITY`]; ICD-10 candidates are the `icd10` codes and categories (not blocks
/// or chapters) by distance of their record count to `want`, then by value.
/// - `single`: the first candidate: one predicate matching about one record in a thousand;
/// - `and3`: the first candidate whose records include some with an `rxnorm` term, AND the
///   `rxnorm` code most common among them, AND the `day` most common among the records of both
///   (a prescription for that condition on that day): three selective predicates of different
///   fields, a few records in common;
/// - `broad3`: the single code's ICD-10 category, AND the `year` most common among its records,
///   AND the `age20` band most common among the records of both: what a researcher often writes,
///   with two predicates matching a large share of all records (no target; it shows how the
///   cost grows with the predicates' volumes).
fn choose_queries(corpus: &Corpus, postings: &[Vec<u32>]) -> Vec<Plan> {
    let n = corpus.len();
    let want = (n / SINGLE_SELECTIVITY).max(1) as i64;
    let value = |t: u32| corpus.vocab[t as usize].value.as_str();
    let mut candidates: Vec<(i64, &str, u32)> = corpus
        .vocab
        .iter()
        .enumerate()
        .filter(|(_, t)| t.field == "icd10" && !t.value.contains('-'))
        .map(|(id, t)| ((postings[id].len() as i64 - want).abs(), t.value.as_str(), id as u32))
        .collect();
    candidates.sort_unstable();
    // The term of `field` held by most of `records`; ties to the smallest value.
    let most_common = |records: &[u32], field: &str| -> Option<u32> {
        let mut counts: HashMap<u32, usize> = HashMap::new();
        for &i in records {
            for &t in corpus.record_terms(i as usize) {
                if corpus.vocab[t as usize].field == field {
                    *counts.entry(t).or_default() += 1;
                }
            }
        }
        counts.into_iter().max_by(|a, b| a.1.cmp(&b.1).then_with(|| value(b.0).cmp(value(a.0)))).map(|(t, _)| t)
    };
    let both = |a: &[u32], b: &[u32]| -> Vec<u32> {
        let set: std::collections::HashSet<u32> = b.iter().copied().collect();
        a.iter().copied().filter(|i| set.contains(i)).collect()
    };
    let mut plans = Vec::new();
    let Some(&(_, code, code_id)) = candidates.first() else { return plans };
    let code_records = postings[code_id as usize].len();
    plans.push(Plan {
        name: "single",
        text: format!("icd10:{code}"),
        why: format!("the ICD-10 code whose record count ({code_records}) is nearest N/{SINGLE_SELECTIVITY} = {want}"),
    });
    for &(_, code, code_id) in &candidates {
        let records = &postings[code_id as usize];
        let Some(rx) = most_common(records, "rxnorm") else { continue };
        let with_rx = both(records, &postings[rx as usize]);
        let Some(day) = most_common(&with_rx, "day") else { continue };
        plans.push(Plan {
            name: "and3",
            text: format!("icd10:{code} AND rxnorm:{} AND day:{}", value(rx), value(day)),
            why: format!(
                "the ICD-10 code nearest N/{SINGLE_SELECTIVITY} prescribed for, the RxNorm code most prescribed for \
                 it, the day most common among those prescriptions"
            ),
        });
        break;
    }
    let category = &code[..code.len().min(3)];
    if let Some(cat) = corpus.vocab.iter().position(|t| t.field == "icd10" && t.value == category) {
        let records = &postings[cat];
        if let Some(year) = most_common(records, "year") {
            let with_year = both(records, &postings[year as usize]);
            if let Some(age) = most_common(&with_year, "age20") {
                plans.push(Plan {
                    name: "broad3",
                    text: format!("icd10:{category} AND year:{} AND age20:{}", value(year), value(age)),
                    why: "the single code's category, the year most common among its records, the age band most \
                          common among those (no target: two broad predicates)"
                        .into(),
                });
            }
        }
    }
    plans
}

fn targets(encrypted: &IndexReport, queries: &[QueryReport]) -> Vec<Target> {
    let mut out = vec![Target {
        what: "index build (IndexView::apply_blocks, commits included)".into(),
        target: "≥ 20,000 records/s".into(),
        measured: Some(format!("{:.0} records/s", encrypted.records_per_s)),
        met: Some(encrypted.records_per_s >= 20_000.0),
    }];
    for q in queries {
        let limit = match q.name.as_str() {
            "single" => 20.0,
            "and3" => 50.0,
            _ => continue,
        };
        out.push(Target {
            what: format!("{} query p50 ({})", q.name, q.query),
            target: format!("≤ {limit:.0} ms"),
            measured: q.encrypted.as_ref().map(|l| format!("{:.2} ms", l.p50_ms)),
            met: q.encrypted.as_ref().map(|l| l.p50_ms <= limit),
        });
    }
    out
}

fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} kB", n / 1e3)
    }
}

fn opt_ms(l: &Option<Latency>, f: fn(&Latency) -> f64) -> String {
    l.as_ref().map_or("withheld".into(), |l| format!("{:.2} ms", f(l)))
}

fn opt_ratio(r: Option<f64>) -> String {
    r.map_or("—".into(), |r| format!("{r:.2}×"))
}

/// The report as Markdown tables.
pub fn render_tables(r: &Report) -> String {
    let m = &r.machine;
    let s = &r.settings;
    let c = &r.corpus;
    let mut out = String::new();
    out.push_str(&format!(
        "Encrypted index benchmark, {}: {} records, P = {}, {} epochs, {} hospitals, {} runs per query (+{} warm-up)\n",
        r.date,
        thousands(s.records),
        s.labels_per_record,
        s.epochs,
        s.hospitals,
        s.repeats,
        s.warmup
    ));
    out.push_str(&format!(
        "Host {} ({}): {} cores, {}{}\n",
        m.host,
        m.os,
        m.cpu_cores,
        m.cpu_model.as_deref().unwrap_or("CPU model unknown"),
        m.memory_bytes.map(|b| format!(", {} RAM", bytes(b))).unwrap_or_default()
    ));
    out.push_str(&format!(
        "Corpus: {} records of {} patients, {} distinct terms, {:.1} terms/record (max {} before the cut to P; {} records cut), generated in {}\n",
        thousands(c.records),
        thousands(c.patients),
        thousands(c.distinct_terms),
        c.terms_per_record_mean,
        c.terms_per_record_max,
        thousands(c.records_truncated),
        human_time(c.generate_s)
    ));
    out.push_str(&format!(
        "Writer side (LabelWriter, {} hospitals on {} threads): {} records in {}: {} records/s ({} real labels)\n\n",
        s.hospitals,
        r.writer.threads,
        thousands(s.records),
        human_time(r.writer.seconds),
        si(r.writer.records_per_s),
        thousands(r.writer.real_labels as usize)
    ));
    out.push_str("| index | build | records/s | commits | merge wait | segments | size on disk |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for (name, i) in
        [("encrypted", &r.encrypted), ("plaintext", &r.plaintext), ("labels only (bare tantivy)", &r.labels_only)]
    {
        if name.starts_with("labels") {
            out.push_str(&format!(
                "| encrypted / plaintext | {:.2}× | | | | | {:.2}× |\n",
                r.build_time_ratio, r.size_ratio
            ));
        }
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            human_time(i.build_s),
            si(i.records_per_s),
            i.commits,
            human_time(i.merge_wait_s),
            i.segments,
            bytes(i.size_bytes)
        ));
    }
    out.push('\n');
    out.push_str("| query | matches | keys | lookups | encrypted p50 | p90 | plaintext p50 | p90 | overhead p50 | p90 | agreed |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for q in &r.queries {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            q.query,
            thousands(q.matches),
            thousands(q.keys),
            thousands(q.lookups as usize),
            opt_ms(&q.encrypted, |l| l.p50_ms),
            opt_ms(&q.encrypted, |l| l.p90_ms),
            opt_ms(&q.plaintext, |l| l.p50_ms),
            opt_ms(&q.plaintext, |l| l.p90_ms),
            opt_ratio(q.overhead_p50),
            opt_ratio(q.overhead_p90),
            if q.agreed { "yes" } else { "NO" }
        ));
    }
    out.push('\n');
    for q in &r.queries {
        out.push_str(&format!(
            "- `{}` ({}): {}; records per predicate: {:?}\n",
            q.query, q.name, q.chosen_as, q.predicate_matches
        ));
    }
    out.push_str("\n| target | wanted | measured | met |\n|---|---|---|---|\n");
    for t in &r.targets {
        out.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            t.what,
            t.target,
            t.measured.as_deref().unwrap_or("withheld"),
            match t.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        ));
    }
    out.push_str(&format!("\nWhole run: {}\n", human_time(r.elapsed_s)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_spread_evenly_over_the_epochs_in_order() {
        for (n, epochs) in [(10usize, 3u64), (1000, 24), (7, 7), (5, 1)] {
            let times: Vec<(u64, u64)> = (0..n).map(|i| record_time(i, n, epochs)).collect();
            let mut per_epoch = vec![0usize; epochs as usize];
            for w in times.windows(2) {
                assert!(w[0] <= w[1], "chain order is time order");
            }
            for &(e, t) in &times {
                per_epoch[e as usize] += 1;
                assert_eq!(t / EPOCH_LEN_MS, START_MS / EPOCH_LEN_MS + e, "the time falls in its epoch");
            }
            let (lo, hi) = (per_epoch.iter().min().unwrap(), per_epoch.iter().max().unwrap());
            assert!(hi - lo <= 1, "{n} records over {epochs} epochs: {per_epoch:?}");
        }
    }

    #[test]
    fn latency_takes_median_and_nearest_rank_p90() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        let l = Latency::from_runs(ms(&[5, 1, 4, 2, 3])).unwrap();
        assert_eq!((l.p50_ms, l.p90_ms, l.min_ms, l.max_ms, l.runs), (3.0, 5.0, 1.0, 5.0, 5));
        let l = Latency::from_runs(ms(&[10, 1, 2, 3, 4, 5, 6, 7, 8, 9])).unwrap();
        assert_eq!((l.p50_ms, l.p90_ms), (5.5, 9.0));
        assert!(Latency::from_runs(Vec::new()).is_none());
    }

    #[test]
    fn a_disagreement_is_reported_with_what_differs() {
        let id = |b: u8| Digest([b; 32]);
        let hit = |b: u8| Hit {
            height: 1,
            tx_index: u32::from(b),
            record_id: id(b),
            hospital: PublicKey([0; 32]),
            data_type: "Condition".into(),
            created_at_ms: 0,
            epoch: 0,
        };
        let truth = vec![id(1), id(2)];
        assert_eq!(compare("encrypted", &[hit(2), hit(1)], &truth), None, "order does not matter");
        let m = compare("encrypted", &[hit(1), hit(3)], &truth).unwrap();
        assert!(m.contains("1 missing, 1 extra"), "{m}");
        let m = compare("plaintext", &[hit(1), hit(2), hit(2)], &truth).unwrap();
        assert!(m.contains("duplicates") && m.starts_with("the plaintext index"), "{m}");
    }

    #[test]
    fn configurations_out_of_range_are_refused_with_the_flag() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            check(&c).unwrap_err().to_string()
        };
        assert!(bad(|c| c.records = 0).contains("--records 0"));
        assert!(bad(|c| c.labels_per_record = 0).contains("--labels-per-record 0"));
        assert!(bad(|c| c.epochs = 0).contains("--epochs 0"));
        assert!(bad(|c| {
            c.records = 5;
            c.epochs = 6
        })
        .contains("--epochs 6"));
        assert!(bad(|c| c.repeats = 0).contains("--repeats"));
        assert!(check(&Config::default()).is_ok());
    }

    #[test]
    fn a_small_run_agrees_and_chooses_its_queries_deterministically() {
        let cfg = Config { records: 1500, repeats: 1, epochs: 3, hospitals: 2, ..Config::default() };
        let run_once = || {
            let dir = tempfile::tempdir().unwrap();
            run(&cfg, dir.path(), &mut |_| {}).unwrap()
        };
        let (a, b) = (run_once(), run_once());
        assert!(a.agreed, "{:?}", a.mismatches());
        assert_eq!(a.encrypted.records, 1500);
        let queries = |r: &Report| r.queries.iter().map(|q| (q.query.clone(), q.matches)).collect::<Vec<_>>();
        assert_eq!(queries(&a), queries(&b), "same seed, same corpus, same queries and matches");
        assert_eq!(a.queries[0].keys, 2 * 3, "one term, two hospitals, three epochs");
    }
}
