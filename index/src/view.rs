//! The tantivy index as a view of committed blocks (DESIGN.md §6).
//!
//! Each node keeps, in a folder of its own, a tantivy index with one document per
//! [`AnchorRecord`](engine::tx::AnchorRecord) whose transaction was *applied* (a transaction that a block includes but the
//! state machine rejected is never indexed). The index is derived from the chain only: it is
//! filled block by block in height order ([`IndexView::apply_blocks`]), committed once per batch
//! with the height and hash of the batch's last block as the tantivy commit payload, so that a
//! restarted node resumes from [`IndexView::indexed`], and it can be thrown away and rebuilt from
//! storage at any time ([`IndexView::rebuild`]).
//!
//! # What the index holds
//!
//! | field        | type   | options                 | content                                          |
//! |--------------|--------|-------------------------|--------------------------------------------------|
//! | `record_id`  | bytes  | stored                  | the record id (32 bytes)                         |
//! | `rid0`…`rid3`| u64    | fast                    | the record id as four big-endian words           |
//! | `label`      | bytes  | indexed, multi-valued   | the record's P search labels (16 bytes each)     |
//! | `height`     | u64    | indexed, fast, stored   | the height of the block holding the anchor       |
//! | `tx_index`   | u64    | fast, stored            | the anchor's position in its block (for proofs)  |
//! | `hospital`   | bytes  | indexed, fast, stored   | the writing hospital's public key (32 bytes)     |
//! | `data_type`  | string | raw, indexed, fast, stored | the public data type tag                      |
//! | `created_at` | u64    | fast, stored            | the writer's creation time, ms since Unix epoch  |
//! | `epoch`      | u64    | indexed, fast, stored   | the index epoch the labels were derived in       |
//!
//! Hits are read from the fast fields (column stores), not from the stored documents: a stored
//! document sits in a compressed block that must be decompressed whole, a cost paid per hit on
//! scattered results; the stored copies are there for inspection and future use. Public filters
//! are ranges over the fast fields too. `record_id` and `created_at` are not in the inverted
//! index: nearly every value is distinct, so indexing them would add a term per record to the
//! term dictionary (whose construction is most of the cost of indexing) for no query.
//!
//! # Invariant: no plaintext keywords
//!
//! The view only ever sees what the chain carries: the labels are the opaque 16-byte values of
//! [`AnchorRecord::index_labels`](engine::tx::AnchorRecord::index_labels), keyed HMACs that the writer derived; keywords, keys and
//! trapdoors never reach this module, and nothing here derives or stores them. What a copy of the
//! folder leaks is what the chain already leaks (record count, writer, block, P, public metadata).
//! Searching takes labels that the caller expanded from trapdoors ([`IndexView::find_labels`],
//! [`IndexView::has_label`]).
//!
//! # Consistency
//!
//! Blocks are applied contiguously: a block at or below the indexed height is skipped (so that a
//! replay after a crash is harmless), a gap is refused, and a batch is checked whole before any
//! document is added, so that a refused batch changes nothing. A record is therefore never
//! indexed twice. A batch is one tantivy commit: after a crash the index is at the end of some
//! batch, never in the middle of one. The searcher is reloaded after each commit and only then.

use std::collections::HashSet;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::block::CommittedBlock;
use engine::codec::Digest;
use engine::crypto::PublicKey;
use engine::state::{Outcome, Receipt};
use engine::storage::{Storage, StorageError};
use engine::tx::{Payload, RecordId};
use serde::{Deserialize, Serialize};
use tantivy::collector::DocSetCollector;
use tantivy::columnar::{BytesColumn, Column, StrColumn};
use tantivy::query::{
    AllQuery, BitSetDocSet, BooleanQuery, ConstScorer, EnableScoring, Explanation, Occur, Query, RangeQuery, Scorer,
    Weight,
};
use tantivy::schema::{BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::{
    BitSet, DocAddress, DocId, DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, Score, SegmentReader,
    TantivyDocument, TantivyError, Term, TERMINATED,
};

/// The length of a search label in bytes.
pub const LABEL_BYTES: usize = 16;

/// A search label as carried by an [`AnchorRecord`](engine::tx::AnchorRecord).
pub type Label = [u8; LABEL_BYTES];

/// How many blocks [`IndexView::rebuild`] and [`IndexView::catch_up`] index per commit.
pub const REBUILD_BATCH_BLOCKS: u64 = 256;

/// Indexing threads of the writer. Each builds its own segments, so a large batch (a rebuild,
/// a catch-up) is indexed on two cores; a node's steady trickle of blocks keeps one busy at most.
pub const WRITER_THREADS: usize = 2;

/// The indexing memory budget of the writer, shared by its threads (tantivy's minimum is 15 MB
/// per thread). Every label is a distinct term, so a record costs the indexer kilobytes, and a
/// larger budget means fewer, larger segments from a big batch (fewer merges, fewer segments for
/// each label lookup to probe). Memory is taken as documents come, so a node indexing one block at
/// a time uses a small part of it.
pub const WRITER_MEMORY_BYTES: usize = 1024 * 1024 * 1024;

/// The version of the commit payload format and of the schema below; bumping it makes older
/// folders refuse to open (with advice to rebuild). Version 2 made `record_id` and `tx_index`
/// fast fields and took `record_id` and `created_at` out of the inverted index; version 3 reads
/// the record id from four u64 columns instead of a bytes column.
const FORMAT_VERSION: u32 = 3;

/// The fast fields holding the record id, most significant word first (a u64 column reads in
/// constant time; a bytes column goes through its dictionary, about 3 µs per hit at 1M records).
const RECORD_ID_WORDS: [&str; 4] = ["rid0", "rid1", "rid2", "rid3"];

/// What to tell the operator when the folder cannot be used as it is.
const REBUILD_ADVICE: &str = "stop the node and run `medchain index rebuild` to rebuild it from the chain";

/// Why the view failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// tantivy failed (I/O, a locked or unreadable folder, a schema mismatch).
    #[error("index folder {}: {operation}: {source}", dir.display())]
    Tantivy {
        /// The index folder.
        dir: PathBuf,
        /// What the view was doing.
        operation: &'static str,
        /// The tantivy error.
        #[source]
        source: TantivyError,
    },
    /// A file-system operation on the folder failed.
    #[error("index folder {}: {operation}: {source}", dir.display())]
    Io {
        /// The index folder.
        dir: PathBuf,
        /// What the view was doing.
        operation: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The folder holds an index this code cannot trust: a commit payload that does not parse,
    /// another schema or format version, documents without a payload.
    #[error("index folder {} is not a usable medchain index: {reason}; {REBUILD_ADVICE}", dir.display())]
    Corrupt {
        /// The index folder.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A block does not follow the indexed height (a gap, or blocks out of order in a batch).
    #[error("block at height {got} does not follow the indexed height {indexed}: expected height {expected}")]
    Gap {
        /// The indexed height (0 when nothing is indexed).
        indexed: u64,
        /// The height that was expected next.
        expected: u64,
        /// The height that was given.
        got: u64,
    },
    /// A block does not belong to the chain the index was built from (its hash, or the hash it
    /// links to, differs from what the index recorded).
    #[error("block at height {height} is {got}, but the index recorded {expected} there; {REBUILD_ADVICE}")]
    ChainMismatch {
        /// The height.
        height: u64,
        /// The hash the index recorded.
        expected: Digest,
        /// The hash found.
        got: Digest,
    },
    /// A committed block and its receipts do not match (count or transaction ids).
    #[error("block at height {height}: {reason}")]
    BadReceipts {
        /// The block's height.
        height: u64,
        /// What is wrong.
        reason: String,
    },
    /// Reading the chain failed.
    #[error("reading the chain: {0}")]
    Storage(#[from] StorageError),
    /// The chain's storage lacks a block (or its receipts) below its own head.
    #[error("the chain's storage has no {what} at height {height} (head {head})")]
    MissingBlock {
        /// `"block"` or `"receipts"`.
        what: &'static str,
        /// The height.
        height: u64,
        /// The storage's head height.
        head: u64,
    },
    /// [`IndexView::rebuild`] was pointed at a non-empty folder that is not a tantivy index: it
    /// refuses to delete it.
    #[error("refusing to rebuild into {}: the folder is not empty and holds no index (no meta.json)", dir.display())]
    NotAnIndex {
        /// The folder.
        dir: PathBuf,
    },
}

/// One anchored record, as the view indexes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedRecord {
    /// The record id.
    pub record_id: RecordId,
    /// The anchor transaction's position in its block.
    pub tx_index: u32,
    /// The writing hospital.
    pub hospital: PublicKey,
    /// The public data type tag.
    pub data_type: String,
    /// The writer's creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The index epoch of the labels.
    pub epoch: u64,
    /// The search labels (P of them on a valid chain).
    pub labels: Vec<Label>,
}

/// What the view needs of one committed block: its place in the chain and its applied anchors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRecords {
    /// The block's height.
    pub height: u64,
    /// The block's hash.
    pub hash: Digest,
    /// The hash of the block before it (the genesis hash for block 1).
    pub prev_hash: Digest,
    /// The anchors whose transactions were applied, in block order.
    pub records: Vec<IndexedRecord>,
}

impl BlockRecords {
    /// Extracts the applied [`AnchorRecord`](engine::tx::AnchorRecord)s of a committed block.
    /// `receipts` must be the block's receipts: one per transaction, and each anchor's receipt must
    /// name it; a mismatch is an error rather than a guess about which transactions were applied.
    pub fn from_committed(committed: &CommittedBlock, receipts: &[Receipt]) -> Result<Self, ViewError> {
        let block = &committed.block;
        let height = block.header.height;
        if receipts.len() != block.txs.len() {
            return Err(ViewError::BadReceipts {
                height,
                reason: format!("{} receipts for {} transactions", receipts.len(), block.txs.len()),
            });
        }
        let mut records = Vec::new();
        for (index, (tx, receipt)) in block.txs.iter().zip(receipts).enumerate() {
            let Payload::AnchorRecord(anchor) = &tx.body.payload else { continue };
            if receipt.tx != tx.id() {
                return Err(ViewError::BadReceipts {
                    height,
                    reason: format!("receipt {index} is for transaction {}, not {}", receipt.tx, tx.id()),
                });
            }
            if !matches!(receipt.outcome, Outcome::Applied) {
                continue;
            }
            let tx_index = u32::try_from(index).map_err(|_| ViewError::BadReceipts {
                height,
                reason: format!("transaction index {index} does not fit in 32 bits"),
            })?;
            records.push(IndexedRecord {
                record_id: anchor.record_id,
                tx_index,
                hospital: anchor.hospital,
                data_type: anchor.data_type.clone(),
                created_at_ms: anchor.created_at_ms,
                epoch: anchor.epoch,
                labels: anchor.index_labels.clone(),
            });
        }
        Ok(BlockRecords { height, hash: block.hash(), prev_hash: block.header.prev_hash, records })
    }
}

/// One matching record.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// The height of the block holding the anchor.
    pub height: u64,
    /// The anchor's position in its block.
    pub tx_index: u32,
    /// The record id.
    pub record_id: RecordId,
    /// The writing hospital.
    pub hospital: PublicKey,
    /// The public data type tag.
    pub data_type: String,
    /// The writer's creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The index epoch of the labels.
    pub epoch: u64,
}

/// Public filters on a search; every set condition must hold. The default filters nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only records written by one of these hospitals; empty means any hospital.
    pub hospitals: Vec<PublicKey>,
    /// Only records with one of these data types (exact, case-sensitive); empty means any.
    pub data_types: Vec<String>,
    /// Only records created at or after this time (ms since the Unix epoch).
    pub created_from_ms: Option<u64>,
    /// Only records created strictly before this time (ms since the Unix epoch).
    pub created_before_ms: Option<u64>,
    /// Only records whose labels were derived in one of these epochs; empty means any.
    pub epochs: Vec<u64>,
}

impl Filter {
    /// Whether the filter lets everything through.
    pub fn is_empty(&self) -> bool {
        self == &Filter::default()
    }
}

/// The commit payload: where the index is in the chain.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct CommitPayload {
    version: u32,
    height: u64,
    hash: String,
}

/// The schema's fields.
#[derive(Clone, Copy, Debug)]
struct Fields {
    record_id: Field,
    record_id_words: [Field; 4],
    label: Field,
    height: Field,
    tx_index: Field,
    hospital: Field,
    data_type: Field,
    created_at: Field,
    epoch: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fast_u64 = NumericOptions::default().set_indexed().set_fast().set_stored();
    let fields = Fields {
        record_id: b.add_bytes_field("record_id", BytesOptions::default().set_stored()),
        record_id_words: RECORD_ID_WORDS.map(|name| b.add_u64_field(name, NumericOptions::default().set_fast())),
        label: b.add_bytes_field("label", BytesOptions::default().set_indexed()),
        height: b.add_u64_field("height", fast_u64.clone()),
        tx_index: b.add_u64_field("tx_index", NumericOptions::default().set_fast().set_stored()),
        hospital: b.add_bytes_field("hospital", BytesOptions::default().set_indexed().set_fast().set_stored()),
        data_type: b.add_text_field(
            "data_type",
            TextOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default().set_tokenizer("raw").set_index_option(IndexRecordOption::Basic),
                )
                .set_fast("raw")
                .set_stored(),
        ),
        created_at: b.add_u64_field("created_at", NumericOptions::default().set_fast().set_stored()),
        epoch: b.add_u64_field("epoch", fast_u64),
    };
    (b.build(), fields)
}

/// The tantivy index of one node, as a view of the committed blocks.
pub struct IndexView {
    dir: PathBuf,
    index: Index,
    writer: IndexWriter<TantivyDocument>,
    reader: IndexReader,
    fields: Fields,
    indexed: Option<(u64, Digest)>,
}

impl fmt::Debug for IndexView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexView").field("dir", &self.dir).field("indexed", &self.indexed).finish_non_exhaustive()
    }
}

impl IndexView {
    /// Opens the index in `dir`, creating the folder and an empty index if there is none.
    ///
    /// Fails if the folder holds an index of another schema, a commit payload that does not parse,
    /// or documents without a payload (the error says to rebuild), or if another writer holds the
    /// folder's lock.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, ViewError> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| ViewError::Io {
            dir: dir.clone(),
            operation: "creating the folder",
            source,
        })?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(&dir).map_err(|e| ViewError::Tantivy {
            dir: dir.clone(),
            operation: "opening the folder",
            source: e.into(),
        })?;
        let index = Index::open_or_create(directory, schema).map_err(|source| match source {
            TantivyError::SchemaError(reason) => ViewError::Corrupt {
                dir: dir.clone(),
                reason: format!("it was written with another schema ({reason})"),
            },
            source => ViewError::Tantivy { dir: dir.clone(), operation: "opening the index", source },
        })?;
        let tantivy_err = |operation| {
            let dir = dir.clone();
            move |source| ViewError::Tantivy { dir, operation, source }
        };
        let metas = index.load_metas().map_err(tantivy_err("reading the index metadata"))?;
        let indexed = match metas.payload.as_deref() {
            Some(payload) => Some(parse_payload(payload).map_err(|reason| ViewError::Corrupt {
                dir: dir.clone(),
                reason: format!("its last commit payload {payload:?} does not parse: {reason}"),
            })?),
            None => {
                let docs: u64 = metas.segments.iter().map(|s| u64::from(s.num_docs())).sum();
                if docs > 0 {
                    return Err(ViewError::Corrupt {
                        dir,
                        reason: format!("it holds {docs} documents but no commit payload"),
                    });
                }
                None
            }
        };
        let writer = index
            .writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES)
            .map_err(tantivy_err("taking the writer lock (is another node using this folder?)"))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tantivy_err("opening a reader"))?;
        Ok(IndexView { dir, index, writer, reader, fields, indexed })
    }

    /// The index folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The height and hash of the last indexed block, from the last commit; `None` if nothing
    /// was indexed yet. A node resumes indexing at the next height.
    pub fn indexed(&self) -> Option<(u64, Digest)> {
        self.indexed
    }

    /// The last indexed height (0 when nothing is indexed).
    pub fn indexed_height(&self) -> u64 {
        self.indexed.map_or(0, |(h, _)| h)
    }

    /// How many records the index holds (as of the last commit).
    pub fn num_records(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Indexes `blocks` and commits once, with the last block's height and hash as the payload.
    ///
    /// Blocks at or below the indexed height are skipped (a block at the indexed height must
    /// have the indexed hash); the others must follow on contiguously, the first linking to the
    /// indexed hash. The whole batch is checked before anything is written: a refused batch
    /// changes nothing. Returns the number of records indexed.
    pub fn apply_blocks(&mut self, blocks: &[BlockRecords]) -> Result<usize, ViewError> {
        let (indexed, indexed_hash) = match self.indexed {
            Some((h, hash)) => (h, Some(hash)),
            None => (0, None),
        };
        let mut expected = indexed + 1;
        let mut prev_hash = indexed_hash;
        let mut fresh = Vec::new();
        for block in blocks {
            if block.height < expected && fresh.is_empty() {
                if block.height == indexed {
                    if let Some(hash) = indexed_hash.filter(|h| *h != block.hash) {
                        return Err(ViewError::ChainMismatch { height: indexed, expected: hash, got: block.hash });
                    }
                }
                continue;
            }
            if block.height != expected {
                return Err(ViewError::Gap { indexed, expected, got: block.height });
            }
            if let Some(prev) = prev_hash.filter(|p| *p != block.prev_hash) {
                return Err(ViewError::ChainMismatch { height: expected - 1, expected: prev, got: block.prev_hash });
            }
            fresh.push(block);
            prev_hash = Some(block.hash);
            expected += 1;
        }
        let Some(last) = fresh.last() else { return Ok(0) };
        let last = (last.height, last.hash);
        let mut count = 0;
        for block in &fresh {
            for record in &block.records {
                if let Err(source) = self.writer.add_document(self.document(block.height, record)) {
                    return Err(self.abandon("adding a document", source));
                }
                count += 1;
            }
        }
        let payload =
            serde_json::to_string(&CommitPayload { version: FORMAT_VERSION, height: last.0, hash: last.1.to_hex() })
                .expect("a struct of integers and a string serialises");
        let mut prepared = match self.writer.prepare_commit() {
            Ok(prepared) => prepared,
            Err(source) => return Err(self.abandon("preparing a commit", source)),
        };
        prepared.set_payload(&payload);
        if let Err(source) = prepared.commit() {
            return Err(self.abandon("committing", source));
        }
        self.indexed = Some(last);
        self.reader.reload().map_err(|source| self.err("reloading the reader", source))?;
        Ok(count)
    }

    /// Brings the index up to the storage's head, [`REBUILD_BATCH_BLOCKS`] blocks per commit,
    /// calling `progress(done, total)` after each commit (blocks of this run, of those missing).
    /// Checks first that the storage holds the indexed block under the indexed hash.
    pub fn catch_up(&mut self, storage: &dyn Storage, mut progress: impl FnMut(u64, u64)) -> Result<u64, ViewError> {
        let head = storage.head()?.map_or(0, |(h, _)| h);
        if let Some((height, hash)) = self.indexed {
            if height > head {
                return Err(ViewError::Corrupt {
                    dir: self.dir.clone(),
                    reason: format!("it is indexed up to height {height}, beyond the chain's head {head}"),
                });
            }
            let block = storage.block(height)?.ok_or(ViewError::MissingBlock { what: "block", height, head })?;
            let got = block.block.hash();
            if got != hash {
                return Err(ViewError::ChainMismatch { height, expected: hash, got });
            }
        }
        let start = self.indexed_height() + 1;
        let total = head.saturating_sub(start - 1);
        let mut done = 0;
        progress(0, total);
        let mut height = start;
        while height <= head {
            let end = head.min(height + REBUILD_BATCH_BLOCKS - 1);
            let mut batch = Vec::with_capacity((end - height + 1) as usize);
            for h in height..=end {
                let block = storage.block(h)?.ok_or(ViewError::MissingBlock { what: "block", height: h, head })?;
                let receipts =
                    storage.receipts(h)?.ok_or(ViewError::MissingBlock { what: "receipts", height: h, head })?;
                batch.push(BlockRecords::from_committed(&block, &receipts)?);
            }
            self.apply_blocks(&batch)?;
            done += end - height + 1;
            progress(done, total);
            height = end + 1;
        }
        Ok(done)
    }

    /// Deletes the index in `dir` and indexes the whole chain from `storage` again,
    /// [`REBUILD_BATCH_BLOCKS`] per commit, calling `progress(done, total)` in blocks.
    ///
    /// No view may be open on `dir` (the writer lock would refuse). Refuses to delete a non-empty
    /// folder that holds no tantivy index. An interrupted rebuild leaves a consistent index at the
    /// end of some batch, which [`IndexView::catch_up`] completes.
    pub fn rebuild(
        storage: &dyn Storage,
        dir: impl AsRef<Path>,
        progress: impl FnMut(u64, u64),
    ) -> Result<Self, ViewError> {
        let dir = dir.as_ref();
        let io = |operation| {
            let dir = dir.to_path_buf();
            move |source| ViewError::Io { dir, operation, source }
        };
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                let empty = entries.next().is_none();
                if !empty && !dir.join("meta.json").is_file() {
                    return Err(ViewError::NotAnIndex { dir: dir.to_path_buf() });
                }
                std::fs::remove_dir_all(dir).map_err(io("deleting the old index"))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("listing the folder")(e)),
        }
        let mut view = IndexView::open(dir)?;
        view.catch_up(storage, progress)?;
        Ok(view)
    }

    /// Whether any record carries `label`: one term-dictionary lookup per segment until one
    /// holds it, no posting list read.
    pub fn has_label(&self, label: &Label) -> Result<bool, ViewError> {
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let inverted =
                segment.inverted_index(self.fields.label).map_err(|source| self.err("looking up a label", source))?;
            // A term is in a segment's dictionary only if some document of it carried the term.
            let found = inverted.terms().term_ord(label).map_err(|e| self.err("looking up a label", e.into()))?;
            if found.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The records carrying any of `labels`, each once, ordered by (height, tx_index).
    pub fn find_labels(&self, labels: &[Label]) -> Result<Vec<Hit>, ViewError> {
        self.find_labels_filtered(labels, &Filter::default())
    }

    /// The records carrying any of `labels` and passing `filter`, each once, ordered by
    /// (height, tx_index).
    pub fn find_labels_filtered(&self, labels: &[Label], filter: &Filter) -> Result<Vec<Hit>, ViewError> {
        if labels.is_empty() {
            return Ok(Vec::new());
        }
        let query = self.and(vec![self.label_query(labels), self.filter_query(filter)]);
        self.search(query.as_ref())
    }

    /// The records passing `filter` (all records for the default filter), ordered by
    /// (height, tx_index).
    pub fn find_filtered(&self, filter: &Filter) -> Result<Vec<Hit>, ViewError> {
        self.search(self.filter_query(filter).as_ref())
    }

    /// A query matching the records carrying any of `labels` (none if `labels` is empty), for
    /// callers composing boolean queries; run it with [`IndexView::search`].
    pub fn label_query(&self, labels: &[Label]) -> Box<dyn Query> {
        Box::new(LabelSetQuery { field: self.fields.label, labels: Arc::new(labels.to_vec()) })
    }

    /// A query matching the records passing `filter` (every record for the default filter).
    ///
    /// Every condition is a range over a fast field (a value set is a union of ranges, runs of
    /// consecutive epochs one range), which tantivy evaluates lazily from the column, block by
    /// block and seeking where it is intersected with a sparse query: a label search touches the
    /// columns near its hits only, instead of reading every posting of every public value.
    pub fn filter_query(&self, filter: &Filter) -> Box<dyn Query> {
        let f = &self.fields;
        let mut must: Vec<Box<dyn Query>> = Vec::new();
        let equal = |term: Term| -> Box<dyn Query> {
            Box::new(RangeQuery::new(Bound::Included(term.clone()), Bound::Included(term)))
        };
        if !filter.hospitals.is_empty() {
            must.push(any_of(
                filter.hospitals.iter().map(|h| equal(Term::from_field_bytes(f.hospital, &h.0))).collect(),
            ));
        }
        if !filter.data_types.is_empty() {
            must.push(any_of(filter.data_types.iter().map(|t| equal(Term::from_field_text(f.data_type, t))).collect()));
        }
        if !filter.epochs.is_empty() {
            let mut epochs = filter.epochs.clone();
            epochs.sort_unstable();
            epochs.dedup();
            let mut ranges: Vec<Box<dyn Query>> = Vec::new();
            let mut start = 0;
            for i in 1..=epochs.len() {
                if i == epochs.len() || epochs[i] != epochs[i - 1] + 1 {
                    ranges.push(Box::new(RangeQuery::new(
                        Bound::Included(Term::from_field_u64(f.epoch, epochs[start])),
                        Bound::Included(Term::from_field_u64(f.epoch, epochs[i - 1])),
                    )));
                    start = i;
                }
            }
            must.push(any_of(ranges));
        }
        if filter.created_from_ms.is_some() || filter.created_before_ms.is_some() {
            let lower = filter
                .created_from_ms
                .map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_u64(f.created_at, t)));
            let upper = filter
                .created_before_ms
                .map_or(Bound::Unbounded, |t| Bound::Excluded(Term::from_field_u64(f.created_at, t)));
            must.push(Box::new(RangeQuery::new(lower, upper)));
        }
        self.and(must)
    }

    /// Runs `query` on the last committed state; the matching records, each once, ordered by
    /// (height, tx_index).
    pub fn search(&self, query: &dyn Query) -> Result<Vec<Hit>, ViewError> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(query, &DocSetCollector).map_err(|source| self.err("searching", source))?;
        let mut addresses: Vec<DocAddress> = addresses.into_iter().collect();
        addresses.sort_unstable();
        let mut hits = Vec::with_capacity(addresses.len());
        let mut seen = HashSet::with_capacity(addresses.len());
        let mut columns: Option<(u32, HitColumns)> = None;
        for address in addresses {
            if columns.as_ref().is_none_or(|(segment, _)| *segment != address.segment_ord) {
                let segment = searcher.segment_reader(address.segment_ord);
                let opened = HitColumns::open(segment).map_err(|e| self.column_err(e))?;
                columns = Some((address.segment_ord, opened));
            }
            let Some((_, cols)) = &columns else { continue };
            let hit = cols.hit(address.doc_id).map_err(|e| self.column_err(e))?;
            if seen.insert(hit.record_id) {
                hits.push(hit);
            }
        }
        hits.sort_unstable();
        Ok(hits)
    }

    /// Waits for the writer's background merges to finish and releases the folder, so that the
    /// merges' work is kept (dropping the view abandons merges in progress; they are redone
    /// after the next commit). A node calls it on an orderly shutdown; the index is as committed.
    pub fn close(self) -> Result<(), ViewError> {
        let IndexView { dir, writer, .. } = self;
        writer.wait_merging_threads().map_err(|source| ViewError::Tantivy {
            dir,
            operation: "waiting for the writer's merges",
            source,
        })
    }

    fn column_err(&self, e: ColumnError) -> ViewError {
        match e {
            ColumnError::Tantivy(source) => self.err("reading fast fields", source),
            ColumnError::Missing(what) => {
                ViewError::Corrupt { dir: self.dir.clone(), reason: format!("a document has no valid {what}") }
            }
        }
    }

    fn and(&self, mut queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
        match queries.len() {
            0 => Box::new(AllQuery),
            1 => queries.pop().expect("one query"),
            _ => Box::new(BooleanQuery::new(queries.into_iter().map(|q| (Occur::Must, q)).collect())),
        }
    }

    fn document(&self, height: u64, record: &IndexedRecord) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_bytes(f.record_id, &record.record_id.0);
        for (field, word) in f.record_id_words.iter().zip(record.record_id.0.chunks_exact(8)) {
            doc.add_u64(*field, u64::from_be_bytes(word.try_into().expect("8-byte chunk")));
        }
        for label in &record.labels {
            doc.add_bytes(f.label, label);
        }
        doc.add_u64(f.height, height);
        doc.add_u64(f.tx_index, u64::from(record.tx_index));
        doc.add_bytes(f.hospital, &record.hospital.0);
        doc.add_text(f.data_type, &record.data_type);
        doc.add_u64(f.created_at, record.created_at_ms);
        doc.add_u64(f.epoch, record.epoch);
        doc
    }

    fn err(&self, operation: &'static str, source: TantivyError) -> ViewError {
        ViewError::Tantivy { dir: self.dir.clone(), operation, source }
    }

    /// Drops the uncommitted documents after a failure, so the next batch starts clean, and
    /// returns the error.
    fn abandon(&mut self, operation: &'static str, source: TantivyError) -> ViewError {
        // A failed rollback leaves the writer unusable; the original error is the one to report,
        // and the next call will report the writer's state.
        let _ = self.writer.rollback();
        self.err(operation, source)
    }

    /// The tantivy index, for diagnostics.
    pub fn tantivy_index(&self) -> &Index {
        &self.index
    }
}

/// The union of `queries` (the query itself when there is one).
fn any_of(mut queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    if queries.len() == 1 {
        if let Some(q) = queries.pop() {
            return q;
        }
    }
    Box::new(BooleanQuery::new(queries.into_iter().map(|q| (Occur::Should, q)).collect()))
}

/// The records carrying any of a set of labels. Each label is looked up in each segment's term
/// dictionary and its posting list (one record, on a valid chain) read into a bit set: a cost
/// per label. tantivy's `TermSetQuery` instead walks the dictionary with an automaton of the
/// set, which on millions of random 16-byte terms costs tens of milliseconds for a thousand.
#[derive(Clone, Debug)]
struct LabelSetQuery {
    field: Field,
    labels: Arc<Vec<Label>>,
}

impl Query for LabelSetQuery {
    fn weight(&self, _scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(LabelSetWeight { field: self.field, labels: self.labels.clone() }))
    }
}

struct LabelSetWeight {
    field: Field,
    labels: Arc<Vec<Label>>,
}

impl LabelSetWeight {
    /// The segment's documents carrying any of the labels (deleted ones included, as for every
    /// tantivy scorer: collectors skip them).
    fn docs(&self, segment: &SegmentReader) -> tantivy::Result<BitSet> {
        let inverted = segment.inverted_index(self.field)?;
        let mut docs = BitSet::with_max_value(segment.max_doc());
        for label in self.labels.iter() {
            let Some(info) = inverted.terms().get(label)? else { continue };
            let mut postings = inverted.read_postings_from_terminfo(&info, IndexRecordOption::Basic)?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                docs.insert(doc);
                doc = postings.advance();
            }
        }
        Ok(docs)
    }
}

impl Weight for LabelSetWeight {
    fn scorer(&self, segment: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(self.docs(segment)?), boost)))
    }

    fn explain(&self, segment: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if doc < segment.max_doc() && self.docs(segment)?.contains(doc) {
            Ok(Explanation::new("carries one of the labels", 1.0))
        } else {
            Err(TantivyError::InvalidArgument(format!("document {doc} carries none of the labels")))
        }
    }
}

/// Why a hit could not be read from the fast fields.
enum ColumnError {
    /// tantivy failed to open a column.
    Tantivy(TantivyError),
    /// A column lacks a value for a document (or the value has the wrong shape).
    Missing(&'static str),
}

/// The fast-field columns a hit is read from, in one segment.
struct HitColumns {
    record_id: [Column<u64>; 4],
    height: Column<u64>,
    tx_index: Column<u64>,
    hospital: BytesColumn,
    data_type: StrColumn,
    created_at: Column<u64>,
    epoch: Column<u64>,
}

impl HitColumns {
    fn open(segment: &SegmentReader) -> Result<Self, ColumnError> {
        let ff = segment.fast_fields();
        let t = ColumnError::Tantivy;
        Ok(HitColumns {
            record_id: [
                ff.u64(RECORD_ID_WORDS[0]).map_err(t)?,
                ff.u64(RECORD_ID_WORDS[1]).map_err(t)?,
                ff.u64(RECORD_ID_WORDS[2]).map_err(t)?,
                ff.u64(RECORD_ID_WORDS[3]).map_err(t)?,
            ],
            height: ff.u64("height").map_err(t)?,
            tx_index: ff.u64("tx_index").map_err(t)?,
            hospital: ff.bytes("hospital").map_err(t)?.ok_or(ColumnError::Missing("hospital"))?,
            data_type: ff.str("data_type").map_err(t)?.ok_or(ColumnError::Missing("data_type"))?,
            created_at: ff.u64("created_at").map_err(t)?,
            epoch: ff.u64("epoch").map_err(t)?,
        })
    }

    fn hit(&self, doc: u32) -> Result<Hit, ColumnError> {
        let bytes32 = |column: &BytesColumn, what| -> Result<[u8; 32], ColumnError> {
            let ord = column.term_ords(doc).next().ok_or(ColumnError::Missing(what))?;
            let mut bytes = Vec::with_capacity(32);
            match column.ord_to_bytes(ord, &mut bytes) {
                Ok(true) => bytes.try_into().map_err(|_| ColumnError::Missing(what)),
                Ok(false) => Err(ColumnError::Missing(what)),
                Err(e) => Err(ColumnError::Tantivy(e.into())),
            }
        };
        let u64_of = |column: &Column<u64>, what| column.first(doc).ok_or(ColumnError::Missing(what));
        let ord = self.data_type.term_ords(doc).next().ok_or(ColumnError::Missing("data_type"))?;
        let mut data_type = String::new();
        match self.data_type.ord_to_str(ord, &mut data_type) {
            Ok(true) => {}
            Ok(false) => return Err(ColumnError::Missing("data_type")),
            Err(e) => return Err(ColumnError::Tantivy(e.into())),
        }
        let mut record_id = [0u8; 32];
        for (column, word) in self.record_id.iter().zip(record_id.chunks_exact_mut(8)) {
            word.copy_from_slice(&u64_of(column, "record_id")?.to_be_bytes());
        }
        Ok(Hit {
            height: u64_of(&self.height, "height")?,
            tx_index: u32::try_from(u64_of(&self.tx_index, "tx_index")?)
                .map_err(|_| ColumnError::Missing("tx_index"))?,
            record_id: Digest(record_id),
            hospital: PublicKey(bytes32(&self.hospital, "hospital")?),
            data_type,
            created_at_ms: u64_of(&self.created_at, "created_at")?,
            epoch: u64_of(&self.epoch, "epoch")?,
        })
    }
}

fn parse_payload(payload: &str) -> Result<(u64, Digest), String> {
    let p: CommitPayload = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    if p.version != FORMAT_VERSION {
        return Err(format!("format version {} (this node reads version {FORMAT_VERSION})", p.version));
    }
    if p.height == 0 {
        return Err("height 0".into());
    }
    let hash = Digest::from_hex(&p.hash).map_err(|e| format!("hash: {e}"))?;
    Ok((p.height, hash))
}
