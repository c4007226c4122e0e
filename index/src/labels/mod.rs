//! The writer side of the index (DESIGN.md §6): keys, counters kept durably without plaintext,
//! and exactly P labels per record; plus the two derivations the query side needs
//! ([`term_key`] for the token service, [`label_for`] for a node).
//!
//! A record's terms are deduplicated by (field, value); for each, the writer reserves its next
//! counter c for that term in the current epoch and emits `label_for(term_key(K, term, epoch),
//! writer, c)`. The record then gets random labels up to exactly P, and the P labels are sorted
//! bytewise: real labels and padding are both uniform 16-byte strings, so neither the count nor
//! the positions of the real ones show.
//!
//! What this gives, and what it does not:
//! - at rest, two records with the same term share no label (distinct counters), and the number
//!   of terms per record does not show (always P labels);
//! - forward privacy per epoch: keys are per epoch, so keys handed out for closed epochs match
//!   nothing written later. The writer does not know which epochs the token service considers
//!   closed; it writes in the epoch of the `now_ms` it is given;
//! - a counter reserved for a record that is then never published (crash before submission, a
//!   rejected transaction) leaves a gap: a node that stops expanding at the first miss will not
//!   find that term's later records in that epoch. A writer must publish every record it took
//!   labels for (keep them with the record in its outbox and resubmit), or the query side must
//!   tolerate some misses before stopping.
//!
//! No clock reads and no OS randomness here: time comes in as `now_ms`, randomness as a
//! caller-supplied `RngCore + CryptoRng`.

mod counters;
mod keys;

pub use counters::{CounterStore, CounterStoreError, MemoryCounterStore, RedbCounterStore};
pub use keys::{counter_slot, label_for, term_key, CounterSlot, IndexKey, TermKey};

use crate::term::Term;
use engine::crypto::PublicKey;
use engine::limits::INDEX_LABELS_MAX;
use rand_core::{CryptoRng, RngCore};
use std::collections::BTreeMap;
use std::fmt;

/// A label: 16 bytes, indistinguishable from random without the term key.
pub type Label = [u8; 16];

/// Labels per record unless configured otherwise.
pub const LABELS_PER_RECORD_DEFAULT: usize = 32;
/// Epoch length unless configured otherwise: one hour.
pub const EPOCH_LEN_MS_DEFAULT: u64 = 60 * 60 * 1000;
/// Most terms (before deduplication) accepted for one record: bounds the work per call.
pub const RECORD_TERMS_MAX: usize = 64 * INDEX_LABELS_MAX;

const _: () = assert!(LABELS_PER_RECORD_DEFAULT >= 1 && LABELS_PER_RECORD_DEFAULT <= INDEX_LABELS_MAX);
const _: () = assert!(RECORD_TERMS_MAX >= INDEX_LABELS_MAX);

/// The epoch that `now_ms` (unix milliseconds) falls in.
pub fn epoch_at(now_ms: u64, epoch_len_ms: std::num::NonZeroU64) -> u64 {
    now_ms / epoch_len_ms.get()
}

/// What to do with a record that has more distinct terms than labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Refuse the record with [`LabelError::TooManyTerms`].
    #[default]
    Refuse,
    /// Keep the P terms of highest [`Term::priority`]; among equal priorities, the smallest
    /// (field, value) in byte order first. The count dropped is reported in
    /// [`RecordLabels::dropped`].
    DropLowestPriority,
}

/// How a [`LabelWriter`] labels records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelPolicy {
    /// Labels per record, P: 1 ..= [`INDEX_LABELS_MAX`]. Every writer of a consortium should use
    /// the same P, or P itself tells writers apart.
    pub labels_per_record: usize,
    /// What to do with more distinct terms than P.
    pub overflow: Overflow,
    /// Epoch length in milliseconds, at least 1. The token service must use the same.
    pub epoch_len_ms: u64,
}

impl Default for LabelPolicy {
    fn default() -> Self {
        LabelPolicy {
            labels_per_record: LABELS_PER_RECORD_DEFAULT,
            overflow: Overflow::Refuse,
            epoch_len_ms: EPOCH_LEN_MS_DEFAULT,
        }
    }
}

/// Labelling failed; no counter was reserved unless the error says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The policy asks for a P outside 1 ..= [`INDEX_LABELS_MAX`]: a programming error.
    #[error("labels per record is {p}, must be between 1 and {INDEX_LABELS_MAX} (engine::limits::INDEX_LABELS_MAX); fix the index configuration")]
    InvalidLabelsPerRecord {
        /// The P asked for.
        p: usize,
    },
    /// The policy asks for epochs of 0 ms: a programming error.
    #[error(
        "epoch length is 0 ms, must be at least 1 (default {EPOCH_LEN_MS_DEFAULT} ms); fix the index configuration"
    )]
    InvalidEpochLength,
    /// The record has more distinct terms than labels and the policy is [`Overflow::Refuse`].
    #[error("record has {terms} distinct terms but only {p} labels per record; extract fewer terms, raise P (at most {INDEX_LABELS_MAX}), or configure Overflow::DropLowestPriority")]
    TooManyTerms {
        /// Distinct (field, value) pairs in the record.
        terms: usize,
        /// Labels per record.
        p: usize,
    },
    /// More terms were passed than any record may have, before deduplication.
    #[error("record has {terms} terms before deduplication, more than the {RECORD_TERMS_MAX} accepted; the keyword extractor is producing far too many terms")]
    TermsOverLimit {
        /// Terms passed.
        terms: usize,
    },
    /// The counter store failed; nothing was reserved, the record can be retried.
    #[error("cannot reserve counters: {0}")]
    Counters(#[from] CounterStoreError),
}

/// The labels of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLabels {
    /// The epoch the labels were derived in.
    pub epoch: u64,
    /// Exactly P labels, sorted bytewise.
    pub labels: Vec<Label>,
    /// Distinct terms left out under [`Overflow::DropLowestPriority`]; 0 otherwise.
    pub dropped: usize,
}

/// Labels records for one writer (a hospital's node) under its index key.
pub struct LabelWriter<S> {
    key: IndexKey,
    writer: PublicKey,
    policy: LabelPolicy,
    store: S,
}

impl<S> fmt::Debug for LabelWriter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabelWriter")
            .field("key", &self.key)
            .field("writer", &self.writer)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S: CounterStore> LabelWriter<S> {
    /// A writer labelling as `writer` (its Ed25519 public key, the one that signs its records)
    /// under `key`, counting in `store`. Refuses an invalid policy.
    pub fn new(key: IndexKey, writer: PublicKey, policy: LabelPolicy, store: S) -> Result<Self, LabelError> {
        if !(1..=INDEX_LABELS_MAX).contains(&policy.labels_per_record) {
            return Err(LabelError::InvalidLabelsPerRecord { p: policy.labels_per_record });
        }
        if policy.epoch_len_ms == 0 {
            return Err(LabelError::InvalidEpochLength);
        }
        Ok(LabelWriter { key, writer, policy, store })
    }

    /// The policy.
    pub fn policy(&self) -> &LabelPolicy {
        &self.policy
    }

    /// The writer's public key, the `h` of every label.
    pub fn writer(&self) -> &PublicKey {
        &self.writer
    }

    /// The counter store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The epoch that `now_ms` falls in under this writer's policy.
    pub fn epoch_at(&self, now_ms: u64) -> u64 {
        // `new` refused a zero length.
        now_ms / self.policy.epoch_len_ms
    }

    /// Exactly P labels for a record with `terms`, written at `now_ms` (unix milliseconds).
    ///
    /// Reserves one counter per distinct term durably before returning, so a counter is never
    /// reused; on error nothing was reserved. Padding is drawn from `rng`; with the same inputs,
    /// store state and rng state, the output is the same.
    pub fn labels_for_record<R: RngCore + CryptoRng>(
        &self,
        terms: &[Term],
        now_ms: u64,
        rng: &mut R,
    ) -> Result<RecordLabels, LabelError> {
        let p = self.policy.labels_per_record;
        let (kept, dropped) = select_terms(terms, p, self.policy.overflow)?;
        let epoch = self.epoch_at(now_ms);

        let slots: Vec<CounterSlot> =
            kept.iter().map(|(field, value)| counter_slot(&self.key, &self.writer, field, value, epoch)).collect();
        let counters = self.store.reserve(epoch, &slots)?;
        assert_eq!(counters.len(), kept.len(), "a counter store returns one counter per slot");

        let mut labels: Vec<Label> = Vec::with_capacity(p);
        for ((field, value), counter) in kept.iter().zip(counters) {
            labels.push(label_for(&term_key(&self.key, field, value, epoch), &self.writer, counter));
        }
        while labels.len() < p {
            let mut padding = [0u8; 16];
            rng.fill_bytes(&mut padding);
            labels.push(padding);
        }
        // Sorting a mix of uniform strings reveals nothing about which are padding.
        labels.sort_unstable();
        assert_eq!(labels.len(), p);
        Ok(RecordLabels { epoch, labels, dropped })
    }
}

/// A distinct (field, value) pair of a record.
type TermPair<'a> = (&'a str, &'a str);

/// The distinct (field, value) pairs of `terms` to label, at most `p`, in a deterministic
/// order, and how many were dropped. A pair listed with several priorities counts once, at its
/// highest.
fn select_terms(terms: &[Term], p: usize, overflow: Overflow) -> Result<(Vec<TermPair<'_>>, usize), LabelError> {
    if terms.len() > RECORD_TERMS_MAX {
        return Err(LabelError::TermsOverLimit { terms: terms.len() });
    }
    let mut distinct: BTreeMap<TermPair<'_>, u8> = BTreeMap::new();
    for term in terms {
        let priority = distinct.entry((term.field.as_str(), term.value.as_str())).or_insert(term.priority);
        *priority = (*priority).max(term.priority);
    }
    if distinct.len() <= p {
        return Ok((distinct.into_keys().collect(), 0));
    }
    match overflow {
        Overflow::Refuse => Err(LabelError::TooManyTerms { terms: distinct.len(), p }),
        Overflow::DropLowestPriority => {
            let total = distinct.len();
            let mut ranked: Vec<(TermPair<'_>, u8)> = distinct.into_iter().collect();
            // Highest priority first; ties by (field, value) ascending: the BTreeMap order,
            // kept by the stable sort.
            ranked.sort_by_key(|&(_, priority)| std::cmp::Reverse(priority));
            ranked.truncate(p);
            Ok((ranked.into_iter().map(|(pair, _)| pair).collect(), total - p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_dedupes_at_highest_priority() {
        let terms = [Term::new("a", "1", 1), Term::new("a", "1", 9), Term::new("b", "2", 5)];
        let (kept, dropped) = select_terms(&terms, 1, Overflow::DropLowestPriority).unwrap();
        assert_eq!((kept, dropped), (vec![("a", "1")], 1));
    }

    #[test]
    fn select_breaks_ties_by_field_then_value() {
        let terms = [Term::new("b", "1", 3), Term::new("a", "2", 3), Term::new("a", "1", 3), Term::new("c", "0", 4)];
        let (kept, dropped) = select_terms(&terms, 3, Overflow::DropLowestPriority).unwrap();
        assert_eq!((kept, dropped), (vec![("c", "0"), ("a", "1"), ("a", "2")], 1));
    }

    #[test]
    fn select_refuses_over_limit() {
        let terms = vec![Term::new("a", "1", 0); RECORD_TERMS_MAX + 1];
        assert!(matches!(
            select_terms(&terms, 32, Overflow::DropLowestPriority),
            Err(LabelError::TermsOverLimit { terms }) if terms == RECORD_TERMS_MAX + 1
        ));
    }

    #[test]
    fn policy_is_checked() {
        let new = |labels_per_record, epoch_len_ms| {
            let policy = LabelPolicy { labels_per_record, epoch_len_ms, ..LabelPolicy::default() };
            LabelWriter::new(IndexKey::from_bytes([0; 32]), PublicKey([0; 32]), policy, MemoryCounterStore::new())
        };
        assert!(matches!(new(0, 1), Err(LabelError::InvalidLabelsPerRecord { p: 0 })));
        assert!(matches!(new(INDEX_LABELS_MAX + 1, 1), Err(LabelError::InvalidLabelsPerRecord { .. })));
        assert!(matches!(new(1, 0), Err(LabelError::InvalidEpochLength)));
        assert!(new(INDEX_LABELS_MAX, 1).is_ok());
    }
}
