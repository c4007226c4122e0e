//! A node's side of an encrypted search, on real tantivy indexes in temporary folders, with labels
//! made by the real `LabelWriter`: agreement with the plaintext evaluator on random corpora and
//! queries, gaps in the counters, forward privacy, unlinkability at rest, refusals, truncation.

use std::collections::{BTreeSet, HashSet};

use engine::codec::{sha256, Digest};
use engine::crypto::{PublicKey, SigningKey};
use index::labels::{label_for, term_key, IndexKey, LabelPolicy, LabelWriter, MemoryCounterStore, Overflow};
use index::query::{evaluate, parse, PlainRecord, PublicMeta, Query};
use index::search::{search, DomainKey, SearchError, SearchLimits, SearchOutcome};
use index::term::Term;
use index::view::{BlockRecords, Hit, IndexView, IndexedRecord, Label};
use proptest::prelude::*;
use proptest::sample::Index as Pick;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Labels per record.
const P: usize = 12;
/// Epoch length of the test writers.
const EPOCH_MS: u64 = 1_000;
/// 2024-01-01T00:00:00Z in ms.
const JAN_1_2024_MS: u64 = 1_704_067_200_000;
const DAY_MS: u64 = 86_400_000;
/// Hospitals writing in the corpora; hospital `HOSPITALS` exists but writes nothing.
const HOSPITALS: usize = 3;
const EPOCHS: u64 = 3;
const DATA_TYPES: [&str; 2] = ["Condition", "Observation"];

/// Predicates the random queries are made of; a record holds one term of some of them. The last
/// one is an OR of several value bands.
const VOCAB: [&str; 8] = [
    "gender:female",
    "gender:male",
    "year:2024",
    "icd10:E11.9",
    "icd10:E11",
    "text:metformin",
    "rxnorm:860975",
    "loinc:4548-4:6.5..8",
];

// A record holds at most one term per VOCAB predicate and the noise term: all get a label.
const _: () = assert!(VOCAB.len() < P);

/// A term that records carry and no query of the property test uses.
const NOISE: (&str, &str) = ("text", "aspirin");

fn hospital(h: usize) -> PublicKey {
    SigningKey::from_seed([100 + h as u8; 32]).public()
}

fn index_key(h: usize) -> IndexKey {
    IndexKey::from_bytes([10 + h as u8; 32])
}

/// The key hospital `h`'s token service hands out for (field, value) in `epoch`.
fn key(h: usize, field: &str, value: &str, epoch: u64) -> DomainKey {
    DomainKey {
        hospital: hospital(h),
        field: field.to_owned(),
        value: value.to_owned(),
        epoch,
        key: term_key(&index_key(h), field, value, epoch),
    }
}

/// Keys of every term of `query` in each (hospital, epoch) cell.
fn keys_for(query: &Query, cells: &[(usize, u64)]) -> Vec<DomainKey> {
    let terms = query.terms();
    cells.iter().flat_map(|&(h, e)| terms.iter().map(move |t| key(h, &t.field, &t.value, e))).collect()
}

fn block_hash(height: u64) -> Digest {
    sha256(&[b"block".as_slice(), &height.to_be_bytes()].concat())
}

fn terms_of(pairs: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    pairs.iter().map(|(f, v)| (f.to_string(), v.to_string())).collect()
}

/// A committed record and what the test knows of it in plaintext.
#[derive(Clone, Debug)]
struct Written {
    hospital: usize,
    record: IndexedRecord,
    height: u64,
    terms: BTreeSet<(String, String)>,
}

impl Written {
    fn plain(&self) -> PlainRecord<Digest> {
        PlainRecord {
            id: self.record.record_id,
            terms: self.terms.clone(),
            meta: PublicMeta {
                hospital: self.record.hospital,
                resource_type: self.record.data_type.clone(),
                created_at_ms: self.record.created_at_ms,
            },
        }
    }
}

/// A chain of fake blocks written by real label writers, one per hospital, and its view.
struct Corpus {
    view: IndexView,
    _dir: tempfile::TempDir,
    writers: Vec<LabelWriter<MemoryCounterStore>>,
    rng: ChaCha20Rng,
    pending: Vec<Written>,
    written: Vec<Written>,
    height: u64,
    records: u64,
}

impl Corpus {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let policy = LabelPolicy { labels_per_record: P, overflow: Overflow::Refuse, epoch_len_ms: EPOCH_MS };
        let writers = (0..=HOSPITALS)
            .map(|h| LabelWriter::new(index_key(h), hospital(h), policy, MemoryCounterStore::new()).unwrap())
            .collect();
        Corpus {
            view: IndexView::open(dir.path()).unwrap(),
            _dir: dir,
            writers,
            rng: ChaCha20Rng::seed_from_u64(7),
            pending: Vec::new(),
            written: Vec::new(),
            height: 0,
            records: 0,
        }
    }

    /// The labels hospital `h` gives a record with `terms` in `epoch` (counters reserved).
    fn labels(&mut self, h: usize, epoch: u64, terms: &BTreeSet<(String, String)>) -> Vec<Label> {
        let terms: Vec<Term> = terms.iter().map(|(f, v)| Term::new(f.as_str(), v.as_str(), 0)).collect();
        let labelled = self.writers[h].labels_for_record(&terms, epoch * EPOCH_MS + 7, &mut self.rng).unwrap();
        assert_eq!(labelled.epoch, epoch);
        labelled.labels
    }

    /// A record of hospital `h` in `epoch`, to be committed with the next block.
    fn write(
        &mut self,
        h: usize,
        epoch: u64,
        data_type: &str,
        created_at_ms: u64,
        terms: BTreeSet<(String, String)>,
    ) -> Digest {
        let labels = self.labels(h, epoch, &terms);
        self.records += 1;
        let record = IndexedRecord {
            record_id: sha256(&self.records.to_be_bytes()),
            tx_index: self.pending.len() as u32,
            hospital: hospital(h),
            data_type: data_type.to_owned(),
            created_at_ms,
            epoch,
            labels,
        };
        let id = record.record_id;
        self.pending.push(Written { hospital: h, record, height: self.height + 1, terms });
        id
    }

    /// Counters reserved for a record that never commits: a gap in each of its terms.
    fn lose(&mut self, h: usize, epoch: u64, terms: &BTreeSet<(String, String)>) {
        self.labels(h, epoch, terms);
    }

    /// Commits the pending records as the next block (an empty block if none).
    fn commit(&mut self) {
        self.height += 1;
        let block = BlockRecords {
            height: self.height,
            hash: block_hash(self.height),
            prev_hash: block_hash(self.height - 1),
            records: self.pending.iter().map(|w| w.record.clone()).collect(),
        };
        self.view.apply_blocks(&[block]).unwrap();
        self.written.append(&mut self.pending);
    }

    fn search(&self, query: &Query, keys: &[DomainKey], limits: &SearchLimits) -> Result<SearchOutcome, SearchError> {
        search(&self.view, query, keys, limits)
    }
}

fn ids(hits: &[Hit]) -> Vec<Digest> {
    hits.iter().map(|h| h.record_id).collect()
}

fn q(text: &str) -> Query {
    parse(text).unwrap_or_else(|e| panic!("{}", e.render(text)))
}

// ---------------------------------------------------------------------------------------------
// Property: the encrypted search agrees with the plaintext evaluator

/// A record of a random corpus.
#[derive(Clone, Debug)]
struct RecordSpec {
    hospital: usize,
    epoch: u64,
    data_type: usize,
    day: u64,
    /// Index into [`OFFSETS_MS`]: the time of day, including both ends of the day.
    offset: usize,
    /// For each VOCAB predicate, a term of it (picked among its terms) or none.
    picks: Vec<Option<Pick>>,
    noise: bool,
    /// Whether the block ends after this record.
    ends_block: bool,
}

const OFFSETS_MS: [u64; 4] = [0, 1, DAY_MS / 2, DAY_MS - 1];

/// A random boolean query over VOCAB.
#[derive(Clone, Debug)]
enum Q {
    Pred(usize),
    And(Vec<Q>),
    Or(Vec<Q>),
    Not(Box<Q>),
}

fn render(q: &Q) -> String {
    let join = |xs: &[Q], op: &str| xs.iter().map(|x| format!("({})", render(x))).collect::<Vec<_>>().join(op);
    match q {
        Q::Pred(i) => VOCAB[*i].to_owned(),
        Q::And(xs) => join(xs, " AND "),
        Q::Or(xs) => join(xs, " OR "),
        Q::Not(x) => format!("NOT ({})", render(x)),
    }
}

const CREATED: [&str; 5] = [
    "created:2024-01-02",
    "created:2024-01-02..2024-01-03",
    "created:..2024-01-02",
    "created:2024-01-04..",
    "created:2024-01",
];

/// Public filters: a hospital (the last one writes nothing), a data type, a created range.
#[derive(Clone, Debug)]
struct Filters {
    hospital: Option<usize>,
    data_type: Option<usize>,
    created: Option<usize>,
}

impl Filters {
    fn clauses(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = self.hospital {
            out.push(format!("hospital:{}", hospital(h).to_hex()));
        }
        if let Some(t) = self.data_type {
            out.push(format!("type:{}", DATA_TYPES[t]));
        }
        if let Some(c) = self.created {
            out.push(CREATED[c].to_owned());
        }
        out
    }
}

#[derive(Clone, Debug)]
struct Case {
    records: Vec<RecordSpec>,
    query: Q,
    filters: Filters,
    /// Cells with keys for every term of the query.
    universe: BTreeSet<(usize, u64)>,
    /// Cells with keys for only some terms (left out of the universe), each with a term choice.
    partial: Vec<((usize, u64), u64)>,
    duplicate_keys: bool,
}

fn record_spec() -> impl Strategy<Value = RecordSpec> {
    (
        0..HOSPITALS,
        0..EPOCHS,
        0..DATA_TYPES.len(),
        0..5u64,
        0..OFFSETS_MS.len(),
        prop::collection::vec(prop::option::weighted(0.4, any::<Pick>()), VOCAB.len()),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(hospital, epoch, data_type, day, offset, picks, noise, ends_block)| RecordSpec {
            hospital,
            epoch,
            data_type,
            day,
            offset,
            picks,
            noise,
            ends_block,
        })
}

fn query_ast() -> impl Strategy<Value = Q> {
    (0..VOCAB.len()).prop_map(Q::Pred).prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Q::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Q::Or),
            inner.prop_map(|x| Q::Not(Box::new(x))),
        ]
    })
}

fn filters() -> impl Strategy<Value = Filters> {
    (
        prop::option::weighted(0.2, 0..=HOSPITALS),
        prop::option::weighted(0.2, 0..DATA_TYPES.len()),
        prop::option::weighted(0.3, 0..CREATED.len()),
    )
        .prop_map(|(hospital, data_type, created)| Filters { hospital, data_type, created })
}

fn cell() -> impl Strategy<Value = (usize, u64)> {
    (0..=HOSPITALS, 0..EPOCHS)
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(record_spec(), 0..40),
        query_ast(),
        filters(),
        prop::collection::btree_set(cell(), 1..=8),
        prop::collection::vec((cell(), any::<u64>()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(records, query, filters, universe, partial, duplicate_keys)| Case {
            records,
            query,
            filters,
            universe,
            partial,
            duplicate_keys,
        })
}

/// The terms of each VOCAB predicate.
fn vocab_terms() -> Vec<Vec<(String, String)>> {
    VOCAB.iter().map(|p| q(p).terms().into_iter().map(|t| (t.field, t.value)).collect()).collect()
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let vocab = vocab_terms();
    let mut corpus = Corpus::new();
    for r in &case.records {
        let mut terms: BTreeSet<(String, String)> =
            r.picks.iter().zip(&vocab).filter_map(|(pick, ts)| pick.map(|p| p.get(ts).clone())).collect();
        if r.noise {
            terms.insert((NOISE.0.to_owned(), NOISE.1.to_owned()));
        }
        let created = JAN_1_2024_MS + r.day * DAY_MS + OFFSETS_MS[r.offset];
        corpus.write(r.hospital, r.epoch, DATA_TYPES[r.data_type], created, terms);
        if r.ends_block {
            corpus.commit();
        }
    }
    corpus.commit();

    let mut clauses = case.filters.clauses();
    clauses.push(format!("({})", render(&case.query)));
    let text = clauses.join(" AND ");
    let query = parse(&text).map_err(|e| TestCaseError::fail(e.render(&text)))?;
    let terms = query.terms();

    let universe: Vec<(usize, u64)> = case.universe.iter().copied().collect();
    let mut keys = keys_for(&query, &universe);
    // One partial key set per cell: two of them could together key the cell fully.
    let mut partial_cells = BTreeSet::new();
    for &((h, e), choice) in &case.partial {
        if case.universe.contains(&(h, e)) || !partial_cells.insert((h, e)) {
            continue;
        }
        // A strict subset of the terms: every term but one, or only one.
        if terms.len() < 2 {
            continue;
        }
        let pick = (choice as usize) % terms.len();
        let only_one = choice & (1 << 40) != 0;
        for (i, t) in terms.iter().enumerate() {
            if (i == pick) == only_one {
                keys.push(key(h, &t.field, &t.value, e));
            }
        }
    }
    keys.push(key(0, NOISE.0, NOISE.1, 0));
    if case.duplicate_keys {
        let copies: Vec<DomainKey> = keys.iter().take(3).cloned().collect();
        keys.extend(copies);
    }

    let out = corpus.search(&query, &keys, &SearchLimits::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;

    let in_universe: Vec<&Written> =
        corpus.written.iter().filter(|w| case.universe.contains(&(w.hospital, w.record.epoch))).collect();
    let plain: Vec<PlainRecord<Digest>> = in_universe.iter().map(|w| w.plain()).collect();
    let expected = evaluate(&query, &plain);
    prop_assert_eq!(ids(&out.hits), expected.clone(), "query {}", text);
    prop_assert_eq!(out.total, expected.len());
    prop_assert!(!out.truncated);
    prop_assert_eq!(out.indexed, corpus.view.indexed());
    for hit in &out.hits {
        let w = corpus.written.iter().find(|w| w.record.record_id == hit.record_id).unwrap();
        prop_assert_eq!((hit.height, hit.tx_index), (w.height, w.record.tx_index));
    }

    // Every key of a searched cell is expanded once, to its last label, then `miss_run` misses.
    let searched: Vec<(usize, u64)> =
        universe.iter().copied().filter(|&(h, _)| case.filters.hospital.is_none_or(|f| f == h)).collect();
    let labels_found: u64 = terms
        .iter()
        .map(|t| {
            let pair = (t.field.clone(), t.value.clone());
            in_universe
                .iter()
                .filter(|w| searched.contains(&(w.hospital, w.record.epoch)) && w.terms.contains(&pair))
                .count() as u64
        })
        .sum();
    prop_assert_eq!(out.labels_found, labels_found);
    let expanded = (terms.len() * searched.len()) as u64;
    prop_assert_eq!(out.lookups, labels_found + expanded * SearchLimits::default().miss_run);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn search_agrees_with_the_plaintext_evaluator_on_the_universe(case in case()) {
        check(&case)?;
    }
}

#[test]
fn the_vocabulary_has_a_predicate_of_several_terms() {
    let terms = vocab_terms();
    assert!(terms.iter().all(|t| !t.is_empty()));
    assert!(terms.last().unwrap().len() >= 3, "{:?}", terms.last());
    assert!(terms.iter().flatten().all(|t| *t != (NOISE.0.to_owned(), NOISE.1.to_owned())));
}

// ---------------------------------------------------------------------------------------------
// Expansion

fn female() -> BTreeSet<(String, String)> {
    terms_of(&[("gender", "female")])
}

/// Hospital 0, epoch 0: counter 0 committed, 1..=3 lost, 4 committed, 5..=8 lost, 9 committed.
fn gapped() -> (Corpus, [Digest; 3]) {
    let mut c = Corpus::new();
    let first = c.write(0, 0, "Condition", JAN_1_2024_MS, female());
    (0..3).for_each(|_| c.lose(0, 0, &female()));
    let second = c.write(0, 0, "Condition", JAN_1_2024_MS, female());
    (0..4).for_each(|_| c.lose(0, 0, &female()));
    let third = c.write(0, 0, "Condition", JAN_1_2024_MS, female());
    c.commit();
    (c, [first, second, third])
}

#[test]
fn gaps_shorter_than_miss_run_hide_nothing_and_longer_ones_hide_later_records() {
    let (c, [first, second, third]) = gapped();
    let query = q("gender:female");
    let keys = [key(0, "gender", "female", 0)];
    let with = |miss_run| c.search(&query, &keys, &SearchLimits { miss_run, ..SearchLimits::default() }).unwrap();

    // miss_run 5: the gaps of 3 and 4 are crossed; 3 hits, 3 + 4 misses, then 5 misses.
    let out = with(5);
    assert_eq!(ids(&out.hits), vec![first, second, third]);
    assert_eq!((out.labels_found, out.lookups), (3, 3 + 3 + 4 + 5));
    // miss_run 4: the gap of 4 ends expansion; the record after it is not found.
    let out = with(4);
    assert_eq!(ids(&out.hits), vec![first, second]);
    assert_eq!((out.labels_found, out.lookups), (2, 2 + 3 + 4));
    // miss_run 1 (and 0, which counts as 1): stop at the first miss.
    for miss_run in [0, 1] {
        let out = with(miss_run);
        assert_eq!(ids(&out.hits), vec![first]);
        assert_eq!((out.labels_found, out.lookups), (1, 2));
    }
    // The default crosses both.
    assert_eq!(ids(&c.search(&query, &keys, &SearchLimits::default()).unwrap().hits), vec![first, second, third]);
}

#[test]
fn expansion_stops_at_labels_per_key_max() {
    let (c, [first, second, _]) = gapped();
    let limits = SearchLimits { labels_per_key_max: 2, ..SearchLimits::default() };
    let out = c.search(&q("gender:female"), &[key(0, "gender", "female", 0)], &limits).unwrap();
    assert_eq!(ids(&out.hits), vec![first, second]);
    assert_eq!((out.labels_found, out.lookups), (2, 2 + 3));
    let none = SearchLimits { labels_per_key_max: 0, ..SearchLimits::default() };
    let out = c.search(&q("gender:female"), &[key(0, "gender", "female", 0)], &none).unwrap();
    assert_eq!((out.hits.len(), out.labels_found, out.lookups), (0, 0, 0));
}

#[test]
fn duplicate_keys_are_expanded_once_and_unused_keys_ignored() {
    let mut c = Corpus::new();
    for _ in 0..3 {
        c.write(0, 0, "Condition", JAN_1_2024_MS, terms_of(&[("gender", "female"), ("year", "2024")]));
    }
    c.commit();
    let query = q("gender:female");
    let one = c.search(&query, &[key(0, "gender", "female", 0)], &SearchLimits::default()).unwrap();
    let keys = [
        key(0, "gender", "female", 0),
        key(0, "year", "2024", 0),
        key(0, "gender", "female", 0),
        key(1, "year", "2024", 2),
        key(0, "gender", "female", 0),
    ];
    let many = c.search(&query, &keys, &SearchLimits::default()).unwrap();
    assert_eq!(one, many);
    assert_eq!((one.hits.len(), one.labels_found, one.lookups), (3, 3, 3 + 16));
}

// ---------------------------------------------------------------------------------------------
// Universe

#[test]
fn not_is_the_complement_within_the_cells_of_the_keys() {
    let mut c = Corpus::new();
    let female_0 = c.write(0, 0, "Condition", JAN_1_2024_MS, female());
    let male_0 = c.write(0, 0, "Condition", JAN_1_2024_MS, terms_of(&[("gender", "male")]));
    let empty_0 = c.write(0, 0, "Condition", JAN_1_2024_MS, BTreeSet::new());
    let _male_0_later = c.write(0, 1, "Condition", JAN_1_2024_MS, terms_of(&[("gender", "male")]));
    let _male_1 = c.write(1, 0, "Condition", JAN_1_2024_MS, terms_of(&[("gender", "male")]));
    c.commit();
    let out = c.search(&q("NOT gender:female"), &[key(0, "gender", "female", 0)], &SearchLimits::default()).unwrap();
    assert_eq!(ids(&out.hits), vec![male_0, empty_0], "hospital 1 and epoch 1 are outside the universe");
    let out = c.search(&q("gender:female OR NOT gender:female"), &[key(0, "gender", "female", 0)], &Default::default());
    assert_eq!(ids(&out.unwrap().hits), vec![female_0, male_0, empty_0]);
}

#[test]
fn a_cell_where_some_terms_have_no_key_is_left_out_whole() {
    let mut c = Corpus::new();
    let both = terms_of(&[("gender", "female"), ("year", "2024")]);
    let only_female = c.write(0, 0, "Condition", JAN_1_2024_MS, female());
    let _both_0 = c.write(0, 0, "Condition", JAN_1_2024_MS, both.clone());
    // Epoch 1 has a key for gender only: `NOT year:2024` cannot be decided there.
    let _both_1 = c.write(0, 1, "Condition", JAN_1_2024_MS, both);
    let _female_1 = c.write(0, 1, "Condition", JAN_1_2024_MS, female());
    c.commit();
    let keys = [key(0, "gender", "female", 0), key(0, "gender", "female", 1), key(0, "year", "2024", 0)];
    let out = c.search(&q("gender:female AND NOT year:2024"), &keys, &SearchLimits::default()).unwrap();
    assert_eq!(ids(&out.hits), vec![only_female]);
    assert_eq!(out.labels_found, 3, "the key of the partial cell is not expanded");
}

#[test]
fn created_filter_includes_its_last_day_and_excludes_the_next() {
    let mut c = Corpus::new();
    let jan_2 = JAN_1_2024_MS + DAY_MS;
    let before = c.write(0, 0, "Condition", jan_2 - 1, female());
    let start = c.write(0, 0, "Condition", jan_2, female());
    let end = c.write(0, 0, "Condition", jan_2 + DAY_MS - 1, female());
    let after = c.write(0, 0, "Observation", jan_2 + DAY_MS, female());
    c.commit();
    let keys = [key(0, "gender", "female", 0)];
    let run = |text: &str| ids(&c.search(&q(text), &keys, &SearchLimits::default()).unwrap().hits);
    assert_eq!(run("created:2024-01-02 AND gender:female"), vec![start, end]);
    assert_eq!(run("created:..2024-01-02 AND gender:female"), vec![before, start, end]);
    assert_eq!(run("created:2024-01-03.. AND gender:female"), vec![after]);
    assert_eq!(run("type:Observation AND gender:female"), vec![after]);
    assert_eq!(run(&format!("hospital:{} AND gender:female", hospital(1).to_hex())), Vec::<Digest>::new());
}

// ---------------------------------------------------------------------------------------------
// Privacy

#[test]
fn keys_of_an_epoch_match_nothing_written_in_the_next() {
    let mut c = Corpus::new();
    let epoch_0: Vec<Digest> = (0..3).map(|_| c.write(0, 0, "Condition", JAN_1_2024_MS, female())).collect();
    let epoch_1: Vec<Digest> = (0..2).map(|_| c.write(0, 1, "Condition", JAN_1_2024_MS, female())).collect();
    c.commit();

    let out = c.search(&q("gender:female"), &[key(0, "gender", "female", 0)], &SearchLimits::default()).unwrap();
    assert_eq!(ids(&out.hits), epoch_0);
    assert_eq!(out.labels_found, 3);

    // However far a node expands, and without the universe filter, a key finds its epoch only.
    for (epoch, expected) in [(0, &epoch_0), (1, &epoch_1)] {
        let k = term_key(&index_key(0), "gender", "female", epoch);
        let labels: Vec<Label> = (0..256).map(|c| label_for(&k, &hospital(0), c)).collect();
        assert_eq!(&ids(&c.view.find_labels(&labels).unwrap()), expected, "epoch {epoch}");
    }
}

#[test]
fn records_with_the_same_terms_share_no_label_in_the_view() {
    let mut c = Corpus::new();
    let same = terms_of(&[("gender", "female"), ("year", "2024"), ("icd10", "E11.9")]);
    for i in 0..10 {
        c.write(i % 2, 0, "Condition", JAN_1_2024_MS, same.clone());
    }
    c.commit();
    let mut seen = HashSet::new();
    for w in &c.written {
        assert_eq!(w.record.labels.len(), P);
        for label in &w.record.labels {
            assert!(seen.insert(*label), "a label is shared");
            assert_eq!(ids(&c.view.find_labels(&[*label]).unwrap()), vec![w.record.record_id]);
        }
    }
    let keys = [key(0, "year", "2024", 0), key(1, "year", "2024", 0)];
    assert_eq!(c.search(&q("year:2024"), &keys, &SearchLimits::default()).unwrap().hits.len(), 10);
}

// ---------------------------------------------------------------------------------------------
// Refusals and truncation

#[test]
fn a_term_without_any_key_is_named() {
    let c = Corpus::new();
    let err = c
        .search(&q("gender:female AND year:2024"), &[key(0, "gender", "female", 0)], &SearchLimits::default())
        .unwrap_err();
    match &err {
        SearchError::MissingKey { field, value, predicate } => {
            assert_eq!((field.as_str(), value.as_str(), predicate.as_str()), ("year", "2024", "year:2024"))
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.code(), "missing_key");
    assert!(err.to_string().contains("year:2024"), "{err}");

    // One band of a value range without a key: the predicate is named as written.
    let query = q("loinc:4548-4:6.5..8");
    let mut keys = keys_for(&query, &[(0, 0)]);
    let dropped = keys.pop().unwrap();
    let err = c.search(&query, &keys, &SearchLimits::default()).unwrap_err();
    let SearchError::MissingKey { field, value, predicate } = err else { panic!("{err}") };
    assert_eq!((field, value, predicate), (dropped.field, dropped.value, "loinc:4548-4:6.5..8".to_owned()));
}

#[test]
fn too_many_keys_and_no_keys_are_refused() {
    let c = Corpus::new();
    let query = q("gender:female");
    let keys: Vec<DomainKey> = (0..3).map(|e| key(0, "gender", "female", e)).collect();
    let err = c.search(&query, &keys, &SearchLimits { keys_max: 2, ..SearchLimits::default() }).unwrap_err();
    assert!(matches!(err, SearchError::TooManyKeys { keys: 3, max: 2 }), "{err}");
    assert_eq!(err.code(), "too_many_keys");
    assert!(c.search(&query, &keys, &SearchLimits { keys_max: 3, ..SearchLimits::default() }).is_ok());

    let err = c.search(&query, &[], &SearchLimits::default()).unwrap_err();
    assert!(matches!(err, SearchError::NoKeys), "{err}");
    assert_eq!(err.code(), "no_keys");
}

#[test]
fn results_beyond_hits_max_are_cut_in_chain_order_and_counted() {
    let mut c = Corpus::new();
    let mut all = Vec::new();
    for block in 0..3 {
        for h in 0..3 {
            if (block + h) % 4 != 3 {
                all.push(c.write(h, 0, "Condition", JAN_1_2024_MS, female()));
            }
        }
        c.commit();
    }
    let query = q("gender:female");
    let keys: Vec<DomainKey> = (0..3).map(|h| key(h, "gender", "female", 0)).collect();
    let run = |hits_max| c.search(&query, &keys, &SearchLimits { hits_max, ..SearchLimits::default() }).unwrap();

    let full = run(all.len());
    assert_eq!(ids(&full.hits), all);
    assert_eq!((full.total, full.truncated), (all.len(), false));
    let cut = run(3);
    assert_eq!(ids(&cut.hits), all[..3].to_vec());
    assert_eq!((cut.total, cut.truncated), (all.len(), true));
    assert!(cut.hits.windows(2).all(|w| (w[0].height, w[0].tx_index) < (w[1].height, w[1].tx_index)));
    let none = run(0);
    assert_eq!((none.hits.len(), none.total, none.truncated), (0, all.len(), true));
    assert_eq!(none.indexed, Some((3, block_hash(3))));
}

#[test]
fn an_empty_index_finds_nothing() {
    let c = Corpus::new();
    let out = c.search(&q("NOT gender:female"), &[key(0, "gender", "female", 0)], &SearchLimits::default()).unwrap();
    assert_eq!((out.hits.len(), out.total, out.labels_found, out.lookups, out.indexed), (0, 0, 0, 16, None));
}
