//! The blob store: sealed record bodies, off chain (DESIGN.md §7).
//!
//! Bodies are sealed by [`engine::envelope`] on the writer's side; this store only ever holds
//! their ciphertexts, so a copy of it reveals sizes and nothing else. It sits behind
//! [`object_store`], a local folder by default; every replica of a store uses the same object
//! paths, so a record's locator on chain names its blob in any of them.
//!
//! A locator is the object path `records/<first byte of the id, hex>/<record id, hex>.mcb`. Reads
//! go through [`engine::envelope::check`] against the anchor's digest and length before the bytes
//! are returned: a tampered blob, or a locator swapped for another record's, is an error naming
//! the record, never bytes that are not the anchored ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine::envelope::{self, BlobRef, EnvelopeError};
use engine::tx::RecordId;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// The largest blob the store takes: 256 MiB (a record body is a document, not a data set).
pub const BLOB_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The folder of a local store cannot be created or opened.
    #[error("blob store folder {}: {source}; check that it exists and is writable", dir.display())]
    Folder {
        /// The folder.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store refused or failed an operation.
    #[error("blob store {store}: {operation} {locator}: {source}")]
    Store {
        /// The store, as configured.
        store: String,
        /// What was being done.
        operation: &'static str,
        /// The object.
        locator: String,
        /// The cause (boxed: `object_store::Error` is large).
        #[source]
        source: Box<object_store::Error>,
    },
    /// No blob at the locator.
    #[error("record {record}: no blob at {locator} in blob store {store}; the writer may not have uploaded it yet")]
    NotFound {
        /// The record.
        record: RecordId,
        /// Where it was looked for.
        locator: String,
        /// The store.
        store: String,
    },
    /// A locator that is not one this store issues.
    #[error("record {record}: locator {locator:?} is not a blob locator (expected {expected})")]
    BadLocator {
        /// The record.
        record: RecordId,
        /// What the anchor holds.
        locator: String,
        /// The record's own locator.
        expected: String,
    },
    /// A blob already stored under the record's path differs from the one being stored.
    #[error(
        "record {record}: another blob is already stored at {locator}; a record's body is written once \
         (a record id is never reused)"
    )]
    Conflict {
        /// The record.
        record: RecordId,
        /// Where.
        locator: String,
    },
    /// The blob is larger than [`BLOB_MAX_BYTES`].
    #[error("record {record}: the blob is {len} bytes, above the store's limit of {BLOB_MAX_BYTES}")]
    TooLarge {
        /// The record.
        record: RecordId,
        /// Its length.
        len: u64,
    },
    /// The blob is not the anchored one.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// A blob store.
#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    name: String,
}

impl BlobStore {
    /// The store in the local folder `dir`, created if absent.
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        let folder = |source| BlobError::Folder { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(folder)?;
        let dir = std::fs::canonicalize(dir).map_err(folder)?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| BlobError::Folder { dir: dir.clone(), source: std::io::Error::other(e) })?;
        Ok(BlobStore { store: Arc::new(store), name: format!("file://{}", dir.display()) })
    }

    /// A store over any `object_store` implementation, named `name` in errors.
    pub fn new(store: Arc<dyn ObjectStore>, name: impl Into<String>) -> Self {
        BlobStore { store, name: name.into() }
    }

    /// The store's name, as errors show it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The locator of `record`'s blob.
    pub fn locator(record: &RecordId) -> String {
        let hex = record.to_hex();
        format!("records/{}/{hex}.mcb", &hex[..2])
    }

    /// Stores `blob` for `record`; returns its locator. Idempotent: storing the same blob again
    /// succeeds; a different blob under the same record is refused and the stored one kept.
    pub async fn put(&self, record: &RecordId, blob: &[u8]) -> Result<String, BlobError> {
        if blob.len() as u64 > BLOB_MAX_BYTES {
            return Err(BlobError::TooLarge { record: *record, len: blob.len() as u64 });
        }
        let locator = Self::locator(record);
        let path = ObjectPath::from(locator.as_str());
        let payload = PutPayload::from(bytes::Bytes::copy_from_slice(blob));
        let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        match self.store.put_opts(&path, payload, opts).await {
            Ok(_) => Ok(locator),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let stored = self.fetch(record, &locator).await?;
                if stored == blob {
                    Ok(locator)
                } else {
                    Err(BlobError::Conflict { record: *record, locator })
                }
            }
            Err(source) => Err(self.store_err("storing", &locator, source)),
        }
    }

    /// The blob of `record` at `locator`, checked against the anchor's digest and length.
    pub async fn get(&self, record: &RecordId, locator: &str, anchored: &BlobRef) -> Result<Vec<u8>, BlobError> {
        let expected = Self::locator(record);
        // A locator for another record would be caught by the digest; one outside the store's
        // layout (`..`, absolute paths, URLs) is refused before the store is asked anything.
        if ObjectPath::parse(locator).map(|p| p.as_ref() != locator).unwrap_or(true) || !locator.starts_with("records/")
        {
            return Err(BlobError::BadLocator { record: *record, locator: locator.to_owned(), expected });
        }
        if anchored.len > BLOB_MAX_BYTES {
            return Err(BlobError::TooLarge { record: *record, len: anchored.len });
        }
        let blob = self.fetch(record, locator).await?;
        envelope::check(record, anchored, &blob)?;
        Ok(blob)
    }

    async fn fetch(&self, record: &RecordId, locator: &str) -> Result<Vec<u8>, BlobError> {
        let path = ObjectPath::from(locator);
        let result = match self.store.get(&path).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(BlobError::NotFound {
                    record: *record,
                    locator: locator.to_owned(),
                    store: self.name.clone(),
                })
            }
            Err(source) => return Err(self.store_err("reading", locator, source)),
        };
        if result.meta.size > BLOB_MAX_BYTES {
            return Err(BlobError::TooLarge { record: *record, len: result.meta.size });
        }
        let bytes = result.bytes().await.map_err(|source| self.store_err("reading", locator, source))?;
        Ok(bytes.to_vec())
    }

    fn store_err(&self, operation: &'static str, locator: &str, source: object_store::Error) -> BlobError {
        BlobError::Store { store: self.name.clone(), operation, locator: locator.to_owned(), source: Box::new(source) }
    }
}
