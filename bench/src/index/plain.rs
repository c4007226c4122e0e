//! The plaintext baseline: a tantivy index of the same records as the encrypted view, with the
//! same public fields under the same options (record id, created-at and the rest as `index::view`
//! has them), but each record's terms as `field=value` raw
//! tokens in one indexed field instead of its P labels. The cost of encryption is what the
//! encrypted index does beyond this one. Exists only in the benchmark: a node never holds
//! plaintext terms.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use engine::codec::Digest;
use engine::crypto::PublicKey;
use index::query::{Expr, PublicFilter, Query as ResearchQuery};
use index::view::{BlockRecords, Hit};
use tantivy::collector::DocSetCollector;
use tantivy::columnar::{BytesColumn, Column, StrColumn};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermSetQuery};
use tantivy::schema::{BytesOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, TantivyError, Term};

use super::corpus::Corpus;

/// The record id's fast fields, as the view has them (four big-endian words).
const RECORD_ID_WORDS: [&str; 4] = ["rid0", "rid1", "rid2", "rid3"];

/// Writer threads and memory budget: the encrypted view's (see `index::view`).
pub const WRITER_THREADS: usize = super::VIEW_WRITER_THREADS;
/// See [`WRITER_THREADS`].
pub const WRITER_MEMORY_BYTES: usize = super::VIEW_WRITER_MEMORY_BYTES;

/// Why the plaintext index failed.
#[derive(Debug, thiserror::Error)]
#[error("plaintext index {}: {operation}: {source}", dir.display())]
pub struct PlainError {
    /// The folder.
    pub dir: PathBuf,
    /// What it was doing.
    pub operation: &'static str,
    /// The tantivy error.
    #[source]
    pub source: TantivyError,
}

#[derive(Clone, Copy)]
struct Fields {
    record_id: Field,
    record_id_words: [Field; 4],
    terms: Field,
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
    let raw = |fast: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default().set_tokenizer("raw").set_index_option(IndexRecordOption::Basic),
        );
        if fast {
            o.set_fast("raw").set_stored()
        } else {
            o
        }
    };
    let fields = Fields {
        record_id: b.add_bytes_field("record_id", BytesOptions::default().set_stored()),
        record_id_words: RECORD_ID_WORDS.map(|name| b.add_u64_field(name, NumericOptions::default().set_fast())),
        terms: b.add_text_field("terms", raw(false)),
        height: b.add_u64_field("height", fast_u64.clone()),
        tx_index: b.add_u64_field("tx_index", NumericOptions::default().set_fast().set_stored()),
        hospital: b.add_bytes_field("hospital", BytesOptions::default().set_indexed().set_fast().set_stored()),
        data_type: b.add_text_field("data_type", raw(true)),
        created_at: b.add_u64_field("created_at", NumericOptions::default().set_fast().set_stored()),
        epoch: b.add_u64_field("epoch", fast_u64),
    };
    (b.build(), fields)
}

/// The plaintext index.
pub struct PlainIndex {
    dir: PathBuf,
    writer: IndexWriter<TantivyDocument>,
    reader: IndexReader,
    index: Index,
    f: Fields,
}

impl PlainIndex {
    /// Creates an empty index in `dir` (which must be empty or absent).
    pub fn create(dir: &Path) -> Result<Self, PlainError> {
        let err = |operation| {
            let dir = dir.to_path_buf();
            move |source| PlainError { dir, operation, source }
        };
        std::fs::create_dir_all(dir).map_err(|e| err("creating the folder")(e.into()))?;
        let (schema, f) = schema();
        let directory =
            tantivy::directory::MmapDirectory::open(dir).map_err(|e| err("opening the folder")(e.into()))?;
        let index = Index::create(directory, schema, Default::default()).map_err(err("creating the index"))?;
        let writer =
            index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES).map_err(err("opening the writer"))?;
        let reader =
            index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().map_err(err("opening a reader"))?;
        Ok(PlainIndex { dir: dir.to_path_buf(), writer, reader, index, f })
    }

    /// Adds the records of `blocks` (record `first + k` of the corpus is the `k`-th record of the
    /// batch) and commits once, as the view does per `apply_blocks`.
    pub fn add_blocks(&mut self, blocks: &[BlockRecords], first: usize, corpus: &Corpus) -> Result<(), PlainError> {
        let f = self.f;
        let mut i = first;
        for block in blocks {
            for record in &block.records {
                let mut doc = TantivyDocument::new();
                doc.add_bytes(f.record_id, &record.record_id.0);
                for (field, word) in f.record_id_words.iter().zip(record.record_id.0.chunks_exact(8)) {
                    doc.add_u64(*field, u64::from_be_bytes(word.try_into().unwrap_or_default()));
                }
                for &t in corpus.record_terms(i) {
                    doc.add_text(f.terms, &corpus.tokens[t as usize]);
                }
                doc.add_u64(f.height, block.height);
                doc.add_u64(f.tx_index, u64::from(record.tx_index));
                doc.add_bytes(f.hospital, &record.hospital.0);
                doc.add_text(f.data_type, &record.data_type);
                doc.add_u64(f.created_at, record.created_at_ms);
                doc.add_u64(f.epoch, record.epoch);
                self.writer.add_document(doc).map_err(|source| PlainError {
                    dir: self.dir.clone(),
                    operation: "adding a document",
                    source,
                })?;
                i += 1;
            }
        }
        self.writer.commit().map_err(|source| PlainError { dir: self.dir.clone(), operation: "committing", source })?;
        self.reader.reload().map_err(|source| PlainError { dir: self.dir.clone(), operation: "reloading", source })?;
        Ok(())
    }

    /// Waits for the writer's merges to end and releases it; the index stays searchable.
    pub fn finish(self) -> Result<FinishedPlainIndex, PlainError> {
        let PlainIndex { dir, writer, reader, index, f } = self;
        writer.wait_merging_threads().map_err(|source| PlainError {
            dir: dir.clone(),
            operation: "waiting for merges",
            source,
        })?;
        reader.reload().map_err(|source| PlainError { dir: dir.clone(), operation: "reloading", source })?;
        Ok(FinishedPlainIndex { dir, reader, index, f })
    }
}

/// The plaintext index once built: searchable, no writer.
pub struct FinishedPlainIndex {
    dir: PathBuf,
    reader: IndexReader,
    index: Index,
    f: Fields,
}

impl FinishedPlainIndex {
    /// Records held.
    pub fn num_records(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Searchable segments.
    pub fn segments(&self) -> usize {
        self.reader.searcher().segment_readers().len()
    }

    /// The tantivy index.
    pub fn tantivy_index(&self) -> &Index {
        &self.index
    }

    /// The records matching `query`: the query's predicates as term-set queries on the
    /// plaintext tokens, combined as the expression says (NOT as the complement within the
    /// records the public filter admits), each record once, ordered by (height, tx_index).
    pub fn search(&self, query: &ResearchQuery) -> Result<Vec<Hit>, PlainError> {
        let q = and(vec![self.expr_query(&query.expr), self.filter_query(&query.filter)]);
        let searcher = self.reader.searcher();
        let addresses = searcher.search(q.as_ref(), &DocSetCollector).map_err(|source| PlainError {
            dir: self.dir.clone(),
            operation: "searching",
            source,
        })?;
        let mut addresses: Vec<DocAddress> = addresses.into_iter().collect();
        addresses.sort_unstable();
        let mut hits = Vec::with_capacity(addresses.len());
        let mut seen = HashSet::with_capacity(addresses.len());
        let mut segment = None;
        let mut columns = None;
        for address in addresses {
            if segment != Some(address.segment_ord) {
                let reader = searcher.segment_reader(address.segment_ord);
                columns = Some(HitColumns::open(reader).map_err(|source| PlainError {
                    dir: self.dir.clone(),
                    operation: "opening fast fields",
                    source,
                })?);
                segment = Some(address.segment_ord);
            }
            let Some(cols) = &columns else { continue };
            let hit = cols.hit(address.doc_id).ok_or_else(|| PlainError {
                dir: self.dir.clone(),
                operation: "reading a hit",
                source: TantivyError::InternalError(format!("document {address:?} lacks a public field")),
            })?;
            if seen.insert(hit.record_id) {
                hits.push(hit);
            }
        }
        hits.sort_unstable();
        Ok(hits)
    }

    fn expr_query(&self, e: &Expr) -> Box<dyn Query> {
        match e {
            Expr::Pred(p) => Box::new(TermSetQuery::new(
                p.terms.iter().map(|t| Term::from_field_text(self.f.terms, &format!("{}={}", t.field, t.value))),
            )),
            Expr::And(xs) => {
                Box::new(BooleanQuery::new(xs.iter().map(|x| (Occur::Must, self.expr_query(x))).collect()))
            }
            Expr::Or(xs) => {
                Box::new(BooleanQuery::new(xs.iter().map(|x| (Occur::Should, self.expr_query(x))).collect()))
            }
            Expr::Not(x) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
                (Occur::MustNot, self.expr_query(x)),
            ])),
        }
    }

    fn filter_query(&self, filter: &PublicFilter) -> Box<dyn Query> {
        let f = &self.f;
        let mut must: Vec<Box<dyn Query>> = Vec::new();
        if let Some(h) = &filter.hospital {
            must.push(Box::new(TermSetQuery::new([Term::from_field_bytes(f.hospital, &h.0)])));
        }
        if let Some(t) = &filter.resource_type {
            must.push(Box::new(TermSetQuery::new([Term::from_field_text(f.data_type, t)])));
        }
        if let Some(range) = &filter.created {
            let lower =
                range.start_ms().map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_u64(f.created_at, t)));
            let upper =
                range.end_ms().map_or(Bound::Unbounded, |t| Bound::Excluded(Term::from_field_u64(f.created_at, t)));
            must.push(Box::new(RangeQuery::new(lower, upper)));
        }
        and(must)
    }
}

fn and(mut queries: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    match queries.len() {
        0 => Box::new(AllQuery),
        1 => queries.pop().unwrap_or_else(|| Box::new(AllQuery)),
        _ => Box::new(BooleanQuery::new(queries.into_iter().map(|q| (Occur::Must, q)).collect())),
    }
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
    fn open(reader: &tantivy::SegmentReader) -> tantivy::Result<Self> {
        let ff = reader.fast_fields();
        let missing = |name: &str| TantivyError::InternalError(format!("no fast field {name}"));
        Ok(HitColumns {
            record_id: [
                ff.u64(RECORD_ID_WORDS[0])?,
                ff.u64(RECORD_ID_WORDS[1])?,
                ff.u64(RECORD_ID_WORDS[2])?,
                ff.u64(RECORD_ID_WORDS[3])?,
            ],
            height: ff.u64("height")?,
            tx_index: ff.u64("tx_index")?,
            hospital: ff.bytes("hospital")?.ok_or_else(|| missing("hospital"))?,
            data_type: ff.str("data_type")?.ok_or_else(|| missing("data_type"))?,
            created_at: ff.u64("created_at")?,
            epoch: ff.u64("epoch")?,
        })
    }

    fn hit(&self, doc: u32) -> Option<Hit> {
        let bytes32 = |col: &BytesColumn| -> Option<[u8; 32]> {
            let ord = col.term_ords(doc).next()?;
            let mut buf = Vec::with_capacity(32);
            col.ord_to_bytes(ord, &mut buf).ok()?.then_some(())?;
            buf.try_into().ok()
        };
        let mut data_type = String::new();
        let ord = self.data_type.term_ords(doc).next()?;
        self.data_type.ord_to_str(ord, &mut data_type).ok()?.then_some(())?;
        let mut record_id = [0u8; 32];
        for (col, word) in self.record_id.iter().zip(record_id.chunks_exact_mut(8)) {
            word.copy_from_slice(&col.first(doc)?.to_be_bytes());
        }
        Some(Hit {
            height: self.height.first(doc)?,
            tx_index: u32::try_from(self.tx_index.first(doc)?).ok()?,
            record_id: Digest(record_id),
            hospital: PublicKey(bytes32(&self.hospital)?),
            data_type,
            created_at_ms: self.created_at.first(doc)?,
            epoch: self.epoch.first(doc)?,
        })
    }
}
