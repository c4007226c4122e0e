//! The floor under the encrypted build: a bare tantivy index holding only each record's P labels,
//! in one bytes field with the view's options, written with the view's writer threads and memory
//! budget and committed per the same batches. No medchain code runs while it builds, so its rate
//! is what tantivy itself can do with P distinct random 16-byte terms per record on this machine:
//! the encrypted view cannot index faster than this, whatever its own code does.

use std::path::{Path, PathBuf};

use index::view::BlockRecords;
use tantivy::schema::{BytesOptions, Field, Schema};
use tantivy::{Index, IndexWriter, TantivyDocument, TantivyError};

use super::plain::{WRITER_MEMORY_BYTES, WRITER_THREADS};

/// Why the labels-only index failed.
#[derive(Debug, thiserror::Error)]
#[error("labels-only index {}: {operation}: {source}", dir.display())]
pub struct LabelsOnlyError {
    /// The folder.
    pub dir: PathBuf,
    /// What it was doing.
    pub operation: &'static str,
    /// The tantivy error.
    #[source]
    pub source: TantivyError,
}

/// The labels-only index while it is built.
pub struct LabelsOnlyIndex {
    dir: PathBuf,
    writer: IndexWriter<TantivyDocument>,
    index: Index,
    label: Field,
}

impl LabelsOnlyIndex {
    /// Creates an empty index in `dir` (which must be empty or absent).
    pub fn create(dir: &Path) -> Result<Self, LabelsOnlyError> {
        let err = |operation| {
            let dir = dir.to_path_buf();
            move |source| LabelsOnlyError { dir, operation, source }
        };
        std::fs::create_dir_all(dir).map_err(|e| err("creating the folder")(e.into()))?;
        let mut b = Schema::builder();
        let label = b.add_bytes_field("label", BytesOptions::default().set_indexed());
        let directory =
            tantivy::directory::MmapDirectory::open(dir).map_err(|e| err("opening the folder")(e.into()))?;
        let index = Index::create(directory, b.build(), Default::default()).map_err(err("creating the index"))?;
        let writer =
            index.writer_with_num_threads(WRITER_THREADS, WRITER_MEMORY_BYTES).map_err(err("opening the writer"))?;
        Ok(LabelsOnlyIndex { dir: dir.to_path_buf(), writer, index, label })
    }

    /// Adds the labels of every record of `blocks` and commits once, as the view does per
    /// `apply_blocks`.
    pub fn add_blocks(&mut self, blocks: &[BlockRecords]) -> Result<(), LabelsOnlyError> {
        for record in blocks.iter().flat_map(|b| &b.records) {
            let mut doc = TantivyDocument::new();
            for label in &record.labels {
                doc.add_bytes(self.label, label);
            }
            self.writer.add_document(doc).map_err(|source| self.err("adding a document", source))?;
        }
        self.writer.commit().map_err(|source| self.err("committing", source))?;
        Ok(())
    }

    /// Waits for the writer's merges to end; the records held.
    pub fn finish(self) -> Result<(Index, u64), LabelsOnlyError> {
        let LabelsOnlyIndex { dir, writer, index, .. } = self;
        writer.wait_merging_threads().map_err(|source| LabelsOnlyError {
            dir: dir.clone(),
            operation: "waiting for merges",
            source,
        })?;
        let reader = index.reader().map_err(|source| LabelsOnlyError {
            dir: dir.clone(),
            operation: "opening a reader",
            source,
        })?;
        let records = reader.searcher().num_docs();
        Ok((index, records))
    }

    fn err(&self, operation: &'static str, source: TantivyError) -> LabelsOnlyError {
        LabelsOnlyError { dir: self.dir.clone(), operation, source }
    }
}
