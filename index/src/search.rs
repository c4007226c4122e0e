//! A node's side of an encrypted search (DESIGN.md §6 "Search"): term keys from hospitals' token
//! services are expanded into labels, and the researcher's boolean query runs on the
//! [`IndexView`] as one tantivy query, restricted to the records the keys can search.
//!
//! # What the node learns
//!
//! A [`TermKey`] does not reveal its (field, value) to the node: the `field`/`value` of a
//! [`DomainKey`] are the researcher's claims, used only to match keys to the query's terms (the
//! node cannot check them; the token service's `SearchLog` is the check). But the node running
//! the search learns the *search pattern* (the same key twice is the same term) and, for each
//! predicate, which records it matches and how many (the *access pattern* and volume), as well as
//! the result of the whole query and its public filters. Keys of an epoch match nothing written in
//! later epochs (forward privacy per epoch); nothing hides earlier epochs (no backward privacy).
//!
//! # Universe
//!
//! `NOT e` is the complement of `e` within the *universe*: the records whose whole query the keys
//! can decide. A record of hospital H in epoch e is in the universe when every term of the query
//! has a key for (H, e) (a cell where only some terms have keys would answer `NOT`, `AND` and
//! `OR` wrongly, so it is left out whole), and its public metadata passes the query's
//! [`PublicFilter`](crate::query::PublicFilter). Keys for terms the query does not use are
//! ignored.
//!
//! # Expansion
//!
//! For each key of a universe cell, labels `label_for(k, H, c)` for `c = 0, 1, …` are looked up
//! until [`SearchLimits::miss_run`] consecutive misses (so a gap left by a counter reserved for a
//! record that never committed is skipped when shorter than that, and hides the later records
//! when it is not) or [`SearchLimits::labels_per_key_max`] labels found. Every key is expanded
//! whatever the others found: the lookups do not depend on the data beyond each key's own labels.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use engine::codec::Digest;
use engine::crypto::PublicKey;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query as TantivyQuery};

use crate::labels::{label_for, TermKey};
use crate::query::{Expr, Query};
use crate::view::{Filter, Hit, IndexView, Label, ViewError};

/// Consecutive misses after which expansion of one key stops, unless configured otherwise.
pub const MISS_RUN_DEFAULT: u64 = 16;
/// Most labels found per key, unless configured otherwise.
pub const LABELS_PER_KEY_MAX_DEFAULT: u64 = 1 << 20;
/// Most keys per search, unless configured otherwise.
pub const KEYS_MAX_DEFAULT: usize = 100_000;
/// Most records returned, unless configured otherwise.
pub const HITS_MAX_DEFAULT: usize = 10_000;

/// A term key as a token service hands it out: for (field, value) in `epoch` of `hospital`'s
/// search domain.
#[derive(Clone, Debug)]
pub struct DomainKey {
    /// The hospital whose token service issued the key; it is also the writer of every record
    /// the key can find (a domain's records are written by its hospital).
    pub hospital: PublicKey,
    /// The term's field, as the query names it (`icd10`, `text`, ...).
    pub field: String,
    /// The term's normalised value.
    pub value: String,
    /// The index epoch the key is for.
    pub epoch: u64,
    /// The key.
    pub key: TermKey,
}

/// Bounds on the work one search may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SearchLimits {
    /// Consecutive label misses after which expansion of one key stops (default 16): a counter
    /// reserved for a record that never committed leaves a gap, and a gap shorter than this does
    /// not hide later records. 0 counts as 1 (expansion always makes at least one lookup).
    pub miss_run: u64,
    /// Most labels expanded (hits) per key (default 1 << 20).
    pub labels_per_key_max: u64,
    /// Most keys per search (default 100_000).
    pub keys_max: usize,
    /// Most records returned (default 10_000); beyond it the result is truncated (ordered by
    /// (height, tx_index), the first `hits_max`) and says so.
    pub hits_max: usize,
}

impl Default for SearchLimits {
    fn default() -> Self {
        SearchLimits {
            miss_run: MISS_RUN_DEFAULT,
            labels_per_key_max: LABELS_PER_KEY_MAX_DEFAULT,
            keys_max: KEYS_MAX_DEFAULT,
            hits_max: HITS_MAX_DEFAULT,
        }
    }
}

/// What a search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchOutcome {
    /// The matching records, each once, ordered by (height, tx_index); at most `hits_max`.
    pub hits: Vec<Hit>,
    /// How many records matched in all (≥ hits.len()).
    pub total: usize,
    /// Whether `hits` was cut at `hits_max`.
    pub truncated: bool,
    /// Labels found by expansion (each distinct key counted once), for metrics.
    pub labels_found: u64,
    /// Label lookups made (hits + misses), for metrics.
    pub lookups: u64,
    /// The indexed (height, hash) the search ran at.
    pub indexed: Option<(u64, Digest)>,
}

/// Why a search was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A term of the query has no key at all: the researcher must ask for it.
    #[error("the query term {field}:{value} (of the predicate `{predicate}`) has no key; ask the hospitals' token services for a key of {field}:{value} in each epoch to search, and send it with the query")]
    MissingKey {
        /// The term's field.
        field: String,
        /// The term's value.
        value: String,
        /// The first predicate needing the term, as the query language writes it.
        predicate: String,
    },
    /// More keys than `keys_max`.
    #[error(
        "the search carries {keys} keys, more than the {max} a node accepts; split the search by hospital or epoch"
    )]
    TooManyKeys {
        /// Keys sent.
        keys: usize,
        /// The limit.
        max: usize,
    },
    /// No keys at all: nothing to search.
    #[error("the search carries no keys, so nothing can be searched; get term keys from the hospitals' token services first")]
    NoKeys,
    /// The view failed.
    #[error("the node's index failed: {0}")]
    View(#[from] ViewError),
}

impl SearchError {
    /// A stable machine code: `missing_key`, `too_many_keys`, `no_keys` or `index_error`.
    pub fn code(&self) -> &'static str {
        match self {
            SearchError::MissingKey { .. } => "missing_key",
            SearchError::TooManyKeys { .. } => "too_many_keys",
            SearchError::NoKeys => "no_keys",
            SearchError::View(_) => "index_error",
        }
    }
}

/// A (field, value) term, borrowed.
type TermRef<'a> = (&'a str, &'a str);

/// A universe cell: a hospital's records of one epoch.
type Cell = (PublicKey, u64);

/// Runs `query` on `view` with `keys`: exactly the records of the universe (see the module docs)
/// that the query matches, ordered by (height, tx_index), at most `limits.hits_max` of them.
///
/// The whole search, label lookups included, runs within this one borrow of `view`, hence on one
/// committed state (the view only moves on a commit, which needs `&mut`).
pub fn search(
    view: &IndexView,
    query: &Query,
    keys: &[DomainKey],
    limits: &SearchLimits,
) -> Result<SearchOutcome, SearchError> {
    if keys.len() > limits.keys_max {
        return Err(SearchError::TooManyKeys { keys: keys.len(), max: limits.keys_max });
    }
    if keys.is_empty() {
        return Err(SearchError::NoKeys);
    }
    let by_term = keys_by_term(query, keys)?;
    let cells = universe_cells(query, &by_term);
    let mut outcome = SearchOutcome {
        hits: Vec::new(),
        total: 0,
        truncated: false,
        labels_found: 0,
        lookups: 0,
        indexed: view.indexed(),
    };
    if cells.is_empty() {
        return Ok(outcome);
    }

    let mut expansion = Expansion::new(view, limits);
    let mut term_labels: BTreeMap<TermRef<'_>, Vec<Label>> = BTreeMap::new();
    for (term, term_keys) in &by_term {
        let mut labels = Vec::new();
        for key in term_keys.iter().filter(|k| cells.contains(&(k.hospital, k.epoch))) {
            labels.extend_from_slice(expansion.expand(key)?);
        }
        term_labels.insert(*term, labels);
    }
    outcome.labels_found = expansion.labels_found;
    outcome.lookups = expansion.lookups;

    let matching = expr_query(view, &query.expr, &term_labels);
    let mut must = vec![(Occur::Must, matching), (Occur::Must, view.filter_query(&public_filter(query)))];
    // Without a `NOT` every match holds a label of a key the expansion kept, all of which belong
    // to universe cells, so restricting the hits afterwards (a set lookup per hit) gives the same
    // records as intersecting with the cells' range queries, which cost a scan of the epoch
    // column per cell. A `NOT` complements over everything, so it needs the cells in the query.
    let monotone = !has_not(&query.expr);
    if !monotone {
        must.push((Occur::Must, cells_query(view, &cells)));
    }
    let mut hits = view.search(&BooleanQuery::new(must))?;
    if monotone {
        hits.retain(|hit| cells.contains(&(hit.hospital, hit.epoch)));
    }
    outcome.total = hits.len();
    outcome.truncated = hits.len() > limits.hits_max;
    hits.truncate(limits.hits_max);
    outcome.hits = hits;
    Ok(outcome)
}

/// The keys of each term the query uses; `MissingKey` for the first term (in the query's order)
/// without any.
fn keys_by_term<'a>(
    query: &'a Query,
    keys: &'a [DomainKey],
) -> Result<BTreeMap<TermRef<'a>, Vec<&'a DomainKey>>, SearchError> {
    let mut by_term: BTreeMap<TermRef<'a>, Vec<&'a DomainKey>> = BTreeMap::new();
    for p in query.expr.predicates() {
        for t in &p.terms {
            by_term.entry((t.field.as_str(), t.value.as_str())).or_default();
        }
    }
    for key in keys {
        if let Some(list) = by_term.get_mut(&(key.field.as_str(), key.value.as_str())) {
            list.push(key);
        }
    }
    for p in query.expr.predicates() {
        for t in &p.terms {
            if by_term.get(&(t.field.as_str(), t.value.as_str())).is_none_or(|list| list.is_empty()) {
                return Err(SearchError::MissingKey {
                    field: t.field.clone(),
                    value: t.value.clone(),
                    predicate: p.to_string(),
                });
            }
        }
    }
    Ok(by_term)
}

/// The cells where every term of the query has a key, within the query's hospital filter.
fn universe_cells(query: &Query, by_term: &BTreeMap<TermRef<'_>, Vec<&DomainKey>>) -> BTreeSet<Cell> {
    let mut cells: Option<BTreeSet<Cell>> = None;
    for term_keys in by_term.values() {
        let here: BTreeSet<Cell> = term_keys.iter().map(|k| (k.hospital, k.epoch)).collect();
        cells = Some(match cells {
            None => here,
            Some(acc) => acc.intersection(&here).copied().collect(),
        });
    }
    let mut cells = cells.unwrap_or_default();
    if let Some(h) = query.filter.hospital {
        cells.retain(|(hospital, _)| *hospital == h);
    }
    cells
}

/// Label expansion, once per distinct (hospital, key).
struct Expansion<'v> {
    view: &'v IndexView,
    miss_run: u64,
    labels_per_key_max: u64,
    done: HashMap<(PublicKey, [u8; 32]), Vec<Label>>,
    labels_found: u64,
    lookups: u64,
}

impl<'v> Expansion<'v> {
    fn new(view: &'v IndexView, limits: &SearchLimits) -> Self {
        Expansion {
            view,
            miss_run: limits.miss_run.max(1),
            labels_per_key_max: limits.labels_per_key_max,
            done: HashMap::new(),
            labels_found: 0,
            lookups: 0,
        }
    }

    /// The labels of `key` present in the view.
    fn expand(&mut self, key: &DomainKey) -> Result<&[Label], ViewError> {
        let id = (key.hospital, *key.key.expose_bytes());
        if !self.done.contains_key(&id) {
            let mut found = Vec::new();
            let mut misses = 0u64;
            let mut counter = 0u64;
            while misses < self.miss_run && (found.len() as u64) < self.labels_per_key_max {
                let label = label_for(&key.key, &key.hospital, counter);
                self.lookups += 1;
                if self.view.has_label(&label)? {
                    found.push(label);
                    misses = 0;
                } else {
                    misses += 1;
                }
                // 2^64 lookups cannot happen; stop rather than wrap if they did.
                let Some(next) = counter.checked_add(1) else { break };
                counter = next;
            }
            self.labels_found += found.len() as u64;
            self.done.insert(id, found);
        }
        Ok(self.done.get(&id).map_or(&[], Vec::as_slice))
    }
}

/// The tantivy query of an expression: a predicate is the records holding any of its terms'
/// labels; `Not` is the complement of its operand among all records (the caller intersects with
/// the universe).
fn expr_query(view: &IndexView, expr: &Expr, term_labels: &BTreeMap<TermRef<'_>, Vec<Label>>) -> Box<dyn TantivyQuery> {
    match expr {
        Expr::Pred(p) => {
            let labels: Vec<Label> = p
                .terms
                .iter()
                .filter_map(|t| term_labels.get(&(t.field.as_str(), t.value.as_str())))
                .flatten()
                .copied()
                .collect();
            view.label_query(&labels)
        }
        Expr::And(xs) => boolean(view, Occur::Must, xs, term_labels),
        Expr::Or(xs) => boolean(view, Occur::Should, xs, term_labels),
        Expr::Not(x) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery)),
            (Occur::MustNot, expr_query(view, x, term_labels)),
        ])),
    }
}

fn boolean(
    view: &IndexView,
    occur: Occur,
    operands: &[Expr],
    term_labels: &BTreeMap<TermRef<'_>, Vec<Label>>,
) -> Box<dyn TantivyQuery> {
    // Parsed expressions never have an empty `And`/`Or`; a built one follows `Expr::matches`:
    // an empty AND is everything, an empty OR nothing.
    if operands.is_empty() {
        return match occur {
            Occur::Must => Box::new(AllQuery),
            _ => view.label_query(&[]),
        };
    }
    Box::new(BooleanQuery::new(operands.iter().map(|x| (occur, expr_query(view, x, term_labels))).collect()))
}

/// Whether `expr` has a `NOT` anywhere.
fn has_not(expr: &Expr) -> bool {
    match expr {
        Expr::Pred(_) => false,
        Expr::And(xs) | Expr::Or(xs) => xs.iter().any(has_not),
        Expr::Not(_) => true,
    }
}

/// The records of any universe cell.
fn cells_query(view: &IndexView, cells: &BTreeSet<Cell>) -> Box<dyn TantivyQuery> {
    let mut epochs: BTreeMap<PublicKey, Vec<u64>> = BTreeMap::new();
    for (hospital, epoch) in cells {
        epochs.entry(*hospital).or_default().push(*epoch);
    }
    Box::new(BooleanQuery::new(
        epochs
            .into_iter()
            .map(|(hospital, epochs)| {
                let filter = Filter { hospitals: vec![hospital], epochs, ..Filter::default() };
                (Occur::Should, view.filter_query(&filter))
            })
            .collect(),
    ))
}

/// The query's public filter as the view's filter: `created` is inclusive of its first period's
/// start and exclusive of the end of its last period, as
/// [`CreatedRange::contains`](crate::query::CreatedRange::contains) has it.
fn public_filter(query: &Query) -> Filter {
    let f = &query.filter;
    Filter {
        hospitals: f.hospital.into_iter().collect(),
        data_types: f.resource_type.iter().cloned().collect(),
        created_from_ms: f.created.and_then(|c| c.start_ms()),
        created_before_ms: f.created.and_then(|c| c.end_ms()),
        epochs: Vec::new(),
    }
}
