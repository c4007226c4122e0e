//! The writer side of the encrypted index: encodings pinned, exactly P labels, unlinkability at
//! rest, forward privacy per epoch, expansion by counter, durable counters without plaintext.

use engine::crypto::PublicKey;
use engine::limits::INDEX_LABELS_MAX;
use index::labels::{
    counter_slot, label_for, term_key, CounterSlot, CounterStore, CounterStoreError, IndexKey, Label, LabelError,
    LabelPolicy, LabelWriter, MemoryCounterStore, Overflow, RecordLabels, RedbCounterStore, EPOCH_LEN_MS_DEFAULT,
    LABELS_PER_RECORD_DEFAULT,
};
use index::term::Term;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::collections::HashSet;

const HOUR_MS: u64 = 60 * 60 * 1000;
/// Some instant in 2025, in unix milliseconds.
const NOW_MS: u64 = 1_750_000_000_000;

fn index_key() -> IndexKey {
    IndexKey::from_bytes(std::array::from_fn(|i| i as u8))
}

fn hospital() -> PublicKey {
    PublicKey([0x42; 32])
}

fn writer_with<S: CounterStore>(policy: LabelPolicy, store: S) -> LabelWriter<S> {
    LabelWriter::new(index_key(), hospital(), policy, store).unwrap()
}

fn writer() -> LabelWriter<MemoryCounterStore> {
    writer_with(LabelPolicy::default(), MemoryCounterStore::new())
}

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn terms(n: usize) -> Vec<Term> {
    (0..n).map(|i| Term::new("icd10", format!("E{i:02}"), 1)).collect()
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
}

/// The c-th label of `term` by the test hospital in `epoch`, as a node would expand it.
fn expand(term: &Term, epoch: u64, counter: u64) -> Label {
    label_for(&term_key(&index_key(), &term.field, &term.value, epoch), &hospital(), counter)
}

/// Changing an encoding is a deliberate commit: these vectors were computed independently
/// (Python's `hmac`) from the encodings in the `labels` module docs.
#[test]
fn golden_vectors_pin_the_encodings() {
    let k = term_key(&index_key(), "icd10", "E11.9", 482_000);
    assert_eq!(*k.expose_bytes(), unhex::<32>("1cf5adc70318ad95d176adfff2e00d8f8ccc89f344c7f7017a003b154b8a5a29"));
    assert_eq!(label_for(&k, &hospital(), 0), unhex::<16>("f3439007b06d7603a9f944cbae593d57"));
    assert_eq!(label_for(&k, &hospital(), 1), unhex::<16>("f1e0f93272c3e2eb698155e8c4b011a1"));
    assert_eq!(label_for(&k, &hospital(), 1 << 40), unhex::<16>("c7ac5bf378b7f3327772347c57f40b95"));
    let slot = counter_slot(&index_key(), &hospital(), "icd10", "E11.9", 482_000);
    assert_eq!(slot, CounterSlot(unhex("b589849a78a93b578ed5b62f0a7477db4ba9548ee6bf4f2768fc011d2f173968")));
}

#[test]
fn a_node_needs_only_the_term_key() {
    let k = term_key(&index_key(), "icd10", "E11.9", 7);
    let received = index::labels::TermKey::from_bytes(*k.expose_bytes());
    assert_eq!(label_for(&received, &hospital(), 3), label_for(&k, &hospital(), 3));
}

#[test]
fn defaults_match_the_design() {
    let policy = LabelPolicy::default();
    assert_eq!((policy.labels_per_record, policy.overflow, policy.epoch_len_ms), (32, Overflow::Refuse, HOUR_MS));
    assert_eq!((LABELS_PER_RECORD_DEFAULT, EPOCH_LEN_MS_DEFAULT), (32, HOUR_MS));
}

#[test]
fn epoch_is_now_over_epoch_length() {
    let w = writer();
    let record = w.labels_for_record(&terms(1), 5 * HOUR_MS - 1, &mut rng(0)).unwrap();
    assert_eq!(record.epoch, 4);
    let record = w.labels_for_record(&terms(1), 5 * HOUR_MS, &mut rng(0)).unwrap();
    assert_eq!(record.epoch, 5);
    let minutes =
        writer_with(LabelPolicy { epoch_len_ms: 60_000, ..LabelPolicy::default() }, MemoryCounterStore::new());
    assert_eq!(minutes.labels_for_record(&terms(1), 5 * HOUR_MS, &mut rng(0)).unwrap().epoch, 300);
}

proptest! {
    /// Any number of terms up to P, any P: exactly P labels, sorted, holding every real label.
    #[test]
    fn exactly_p_labels(p in 1usize..=INDEX_LABELS_MAX, n in 0usize..=64, dup in 0usize..4, seed in any::<u64>()) {
        let n = n.min(p);
        let w = writer_with(LabelPolicy { labels_per_record: p, ..LabelPolicy::default() }, MemoryCounterStore::new());
        let mut record_terms = terms(n);
        // Duplicates (even with another priority) count once.
        for i in 0..dup.min(n) {
            record_terms.push(Term::new("icd10", format!("E{i:02}"), 9));
        }
        let record = w.labels_for_record(&record_terms, NOW_MS, &mut rng(seed)).unwrap();
        prop_assert_eq!(record.labels.len(), p);
        prop_assert_eq!(record.dropped, 0);
        prop_assert!(record.labels.windows(2).all(|pair| pair[0] <= pair[1]), "sorted");
        for term in &terms(n) {
            prop_assert!(record.labels.contains(&expand(term, record.epoch, 0)), "{} missing", term);
        }
    }
}

/// The one real label of each record lands anywhere among the P, not in a fixed place.
#[test]
fn padding_does_not_show_by_position() {
    let w = writer();
    let term = Term::new("icd10", "E11.9", 1);
    let mut positions = HashSet::new();
    let mut r = rng(1);
    for c in 0..400 {
        let record = w.labels_for_record(std::slice::from_ref(&term), NOW_MS, &mut r).unwrap();
        let real = expand(&term, record.epoch, c);
        positions.insert(record.labels.iter().position(|l| *l == real).unwrap());
    }
    // 400 draws of a uniform position among 32 miss some position with probability < 32·(31/32)^400 ≈ 1e-4;
    // a fixed place would give 1 position.
    assert!(positions.len() >= 28, "real label took only {} positions", positions.len());
}

#[test]
fn more_terms_than_p_is_refused_with_the_counts() {
    let w = writer();
    let err = w.labels_for_record(&terms(33), NOW_MS, &mut rng(0)).unwrap_err();
    assert!(matches!(err, LabelError::TooManyTerms { terms: 33, p: 32 }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("33 distinct terms") && message.contains("32 labels"), "{message}");
    assert!(message.contains("DropLowestPriority"), "says what to do: {message}");
    // Nothing was reserved: the next record with those terms still gets counter 0.
    let record = w.labels_for_record(&terms(32), NOW_MS, &mut rng(0)).unwrap();
    assert!(record.labels.contains(&expand(&terms(1)[0], record.epoch, 0)));
}

#[test]
fn duplicates_do_not_count_against_p() {
    let w = writer();
    let mut record_terms = terms(32);
    record_terms.extend(terms(32));
    let record = w.labels_for_record(&record_terms, NOW_MS, &mut rng(0)).unwrap();
    assert_eq!((record.labels.len(), record.dropped), (32, 0));
    for term in terms(32) {
        assert!(record.labels.contains(&expand(&term, record.epoch, 0)));
        assert!(!record.labels.contains(&expand(&term, record.epoch, 1)), "a duplicate took a second counter");
    }
}

#[test]
fn drop_lowest_priority_keeps_the_highest() {
    let policy = LabelPolicy { labels_per_record: 4, overflow: Overflow::DropLowestPriority, ..LabelPolicy::default() };
    let w = writer_with(policy, MemoryCounterStore::new());
    let record_terms = vec![
        Term::new("text", "metformin", 1),
        Term::new("icd10", "E11.9", 9),
        Term::new("year", "2024", 3),
        Term::new("icd10", "E11", 7),
        Term::new("text", "diabetes", 1),
        Term::new("age10", "60", 3),
    ];
    let record = w.labels_for_record(&record_terms, NOW_MS, &mut rng(0)).unwrap();
    assert_eq!((record.labels.len(), record.dropped), (4, 2));
    let found =
        |field: &str, value: &str| record.labels.contains(&expand(&Term::new(field, value, 0), record.epoch, 0));
    assert!(found("icd10", "E11.9") && found("icd10", "E11") && found("year", "2024") && found("age10", "60"));
    assert!(!found("text", "metformin") && !found("text", "diabetes"));
}

#[test]
fn drop_lowest_priority_breaks_ties_deterministically() {
    let policy = LabelPolicy { labels_per_record: 2, overflow: Overflow::DropLowestPriority, ..LabelPolicy::default() };
    let ordered = vec![Term::new("text", "a", 1), Term::new("text", "b", 1), Term::new("text", "c", 1)];
    let reversed: Vec<Term> = ordered.iter().rev().cloned().collect();
    let one = writer_with(policy, MemoryCounterStore::new()).labels_for_record(&ordered, NOW_MS, &mut rng(0)).unwrap();
    let two = writer_with(policy, MemoryCounterStore::new()).labels_for_record(&reversed, NOW_MS, &mut rng(0)).unwrap();
    assert_eq!(one, two, "the input order does not decide which terms are kept");
    assert!(
        one.labels.contains(&expand(&ordered[0], one.epoch, 0))
            && one.labels.contains(&expand(&ordered[1], one.epoch, 0))
    );
}

/// Many records with the same terms: no label appears twice anywhere.
#[test]
fn records_with_the_same_terms_share_no_label() {
    let w = writer();
    let mut r = rng(2);
    let mut seen = HashSet::new();
    for _ in 0..300 {
        for label in w.labels_for_record(&terms(10), NOW_MS, &mut r).unwrap().labels {
            assert!(seen.insert(label), "a label repeated");
        }
    }
    assert_eq!(seen.len(), 300 * 32);
}

#[test]
fn writers_sharing_a_key_share_no_label() {
    let other = LabelWriter::new(index_key(), PublicKey([0x43; 32]), LabelPolicy::default(), MemoryCounterStore::new())
        .unwrap();
    let a = writer().labels_for_record(&terms(32), NOW_MS, &mut rng(0)).unwrap();
    let b = other.labels_for_record(&terms(32), NOW_MS, &mut rng(0)).unwrap();
    assert!(a.labels.iter().all(|label| !b.labels.contains(label)));
}

/// Keys of epoch e match nothing written in epoch e + 1, however far a node expands.
#[test]
fn forward_privacy_across_epochs() {
    let w = writer();
    let mut r = rng(3);
    let before: Vec<RecordLabels> = (0..20).map(|_| w.labels_for_record(&terms(8), NOW_MS, &mut r).unwrap()).collect();
    let next_epoch_ms = (NOW_MS / HOUR_MS + 1) * HOUR_MS;
    let after: HashSet<Label> =
        (0..20).flat_map(|_| w.labels_for_record(&terms(8), next_epoch_ms, &mut r).unwrap().labels).collect();
    let epoch = before[0].epoch;
    assert_eq!(epoch + 1, next_epoch_ms / HOUR_MS);
    for term in terms(8) {
        let k = term_key(&index_key(), &term.field, &term.value, epoch);
        for c in 0..2_000 {
            assert!(!after.contains(&label_for(&k, &hospital(), c)), "epoch {epoch} key matched a later label");
        }
        // The same keys do find the epoch's own records: the check above is not vacuous.
        assert!(before[19].labels.contains(&label_for(&k, &hospital(), 19)));
    }
}

/// A term written n times: counters 0..n give exactly those records' labels, counter n misses.
#[test]
fn expansion_finds_every_record_then_misses() {
    let w = writer();
    let term = Term::new("loinc", "4548-4", 5);
    let mut r = rng(4);
    let mut records = Vec::new();
    for i in 0..25 {
        // Other terms vary from record to record; only `term` is in all of them.
        let mut record_terms = terms(i % 7);
        record_terms.push(term.clone());
        records.push(w.labels_for_record(&record_terms, NOW_MS, &mut r).unwrap());
    }
    let epoch = records[0].epoch;
    let k = term_key(&index_key(), &term.field, &term.value, epoch);
    for (c, record) in records.iter().enumerate() {
        let label = label_for(&k, &hospital(), c as u64);
        let holders: Vec<usize> = (0..records.len()).filter(|&i| records[i].labels.contains(&label)).collect();
        assert_eq!(holders, vec![c], "counter {c} names exactly record {c}");
        assert_eq!(record.epoch, epoch);
    }
    let miss = label_for(&k, &hospital(), records.len() as u64);
    assert!(records.iter().all(|record| !record.labels.contains(&miss)));
}

#[test]
fn counters_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counters.redb");
    let term = Term::new("snomed", "44054006", 5);
    let mut record_terms = terms(5);
    record_terms.push(term.clone());
    let mut all = HashSet::new();
    let mut r = rng(5);
    for _round in 0..3 {
        let w = writer_with(LabelPolicy::default(), RedbCounterStore::open(&path).unwrap());
        for _ in 0..10 {
            for label in w.labels_for_record(&record_terms, NOW_MS, &mut r).unwrap().labels {
                assert!(all.insert(label), "a label repeated after reopening: a counter was reused");
            }
        }
    }
    // Counters went on from where they stopped: 0..30 all found, 30 missing.
    let epoch = NOW_MS / HOUR_MS;
    assert!((0..30).all(|c| all.contains(&expand(&term, epoch, c))));
    assert!(!all.contains(&expand(&term, epoch, 30)));
}

#[test]
fn the_counter_file_holds_no_plaintext_term() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counters.redb");
    let record_terms = vec![Term::new("giraffefield", "zebrafishmarker", 5), Term::new("icd10", "Q87.40", 3)];
    {
        let w = writer_with(LabelPolicy::default(), RedbCounterStore::open(&path).unwrap());
        let mut r = rng(6);
        for _ in 0..5 {
            w.labels_for_record(&record_terms, NOW_MS, &mut r).unwrap();
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    // The search does find what is there: the keyed slot id.
    let slot = counter_slot(&index_key(), &hospital(), "giraffefield", "zebrafishmarker", NOW_MS / HOUR_MS);
    assert!(contains(&slot.0), "the slot id should be in the file");
    for needle in ["giraffefield", "zebrafishmarker", "zebrafish", "Q87.40", "icd10"] {
        assert!(!contains(needle.as_bytes()), "{needle:?} is in the counter file");
    }
}

#[test]
fn same_inputs_and_seed_give_the_same_labels() {
    let run = |seed| {
        let w = writer();
        let mut r = rng(seed);
        (0..5).map(|_| w.labels_for_record(&terms(3), NOW_MS, &mut r).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8), "padding comes from the rng");
}

#[test]
fn debug_never_prints_the_key() {
    let shown = format!("{:?}", writer());
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("0, 1, 2, 3") && !shown.contains("000102030405"), "{shown}");
}

struct BrokenStore;

impl CounterStore for BrokenStore {
    fn reserve(&self, _epoch: u64, _slots: &[CounterSlot]) -> Result<Vec<u64>, CounterStoreError> {
        Err(CounterStoreError::Backend { path: "/var/medchain/counters.redb".into(), reason: "disk full".into() })
    }
}

#[test]
fn a_failing_store_is_a_typed_error() {
    let w = writer_with(LabelPolicy::default(), BrokenStore);
    let err = w.labels_for_record(&terms(3), NOW_MS, &mut rng(0)).unwrap_err();
    assert!(matches!(err, LabelError::Counters(CounterStoreError::Backend { .. })));
    let message = err.to_string();
    assert!(message.contains("/var/medchain/counters.redb") && message.contains("disk full"), "{message}");
}

#[test]
fn opening_an_unusable_path_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    // A directory is not a database file.
    let err = RedbCounterStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, CounterStoreError::Backend { ref path, .. } if path.contains(&*dir.path().to_string_lossy()))
    );
}
