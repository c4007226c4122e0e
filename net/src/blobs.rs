//! The blob store: sealed record bodies, off chain (DESIGN.md §7).
//!
//! Bodies are sealed by [`engine::envelope`] on the writer's side; this store only ever holds
//! their ciphertexts, so a copy of it reveals sizes and nothing else. It sits behind
//! [`object_store`], a local folder by default, S3-compatible storage by configuration
//! ([`BlobStoreConfig`], [`BlobStore::open`]); every replica of a store uses the same object
//! paths, so a record's locator on chain names its blob in any of them.
//!
//! A locator is the object path `records/<first byte of the id, hex>/<record id, hex>.mcb`. Reads
//! go through [`engine::envelope::check`] against the anchor's digest and length before the bytes
//! are returned: a tampered blob, or a locator swapped for another record's, is an error naming
//! the record, never bytes that are not the anchored ones.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use engine::envelope::{self, BlobRef, EnvelopeError};
use engine::tx::RecordId;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
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
    /// The store's bucket does not exist (S3 answered `NoSuchBucket`).
    #[error(
        "blob store {store}: the bucket does not exist; create it (e.g. `aws s3 mb s3://BUCKET`) or \
         fix the blob store spec"
    )]
    NoBucket {
        /// The store, as configured.
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
    /// A blob store spec that cannot be used (see [`BlobStoreConfig`]).
    #[error(
        "blob store {spec:?}: {problem}; a blob store is a folder path, file:///absolute/path, or \
         s3://bucket[/prefix][?endpoint=URL&region=NAME] with credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    )]
    Spec {
        /// The spec as given, credentials and unknown parameter values masked.
        spec: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The S3 client cannot be set up from the spec and the `AWS_*` environment.
    #[error("blob store {store}: cannot set up the S3 client: {source}; check the spec and the AWS_* environment")]
    S3Setup {
        /// The store, as configured.
        store: String,
        /// The cause.
        #[source]
        source: Box<object_store::Error>,
    },
}

/// Where a blob store lives, parsed from a spec string ([`FromStr`]); [`BlobStore::open`] opens it.
///
/// The spec is one of:
/// - a folder path (`blobs`, `/srv/medchain/blobs`) or a `file:///absolute/path` URL: a local
///   folder, created if absent;
/// - `s3://BUCKET[/PREFIX]`, optionally with `?endpoint=URL&region=NAME` (values may be
///   percent-encoded): a bucket of Amazon S3 or any S3-compatible server, objects at the
///   bucket's root or under `PREFIX/` (segments of letters, digits, `.`, `_` and `-`; one bucket
///   can then hold several consortia's stores). Locators on chain are relative to the store, so
///   a store can move to another bucket or prefix. What the
///   spec leaves out comes from the usual environment: `AWS_ENDPOINT_URL` (or
///   `AWS_ENDPOINT_URL_S3`), `AWS_REGION` (or `AWS_DEFAULT_REGION`; `us-east-1` if neither) and
///   the credentials, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. The
///   spec's `endpoint` and `region` override the environment. Plain `http://` endpoints are
///   allowed (a server on the same host or network); anything else is `https://`. Requests use
///   path-style addressing (`ENDPOINT/BUCKET/KEY`) unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`.
///
/// Credentials are never part of a spec (they would show in process lists, shell history and
/// logs): a spec carrying `user:secret@` or a credential parameter is refused, and neither the
/// spec's [`Display`](fmt::Display) nor any error ever prints a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobStoreConfig {
    /// A local folder.
    Local(PathBuf),
    /// An S3 bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix inside the bucket (no leading or trailing `/`), if any.
        prefix: Option<String>,
        /// The endpoint given in the spec, overriding `AWS_ENDPOINT_URL`.
        endpoint: Option<String>,
        /// The region given in the spec, overriding `AWS_REGION`.
        region: Option<String>,
    },
}

impl FromStr for BlobStoreConfig {
    type Err = BlobError;

    fn from_str(spec: &str) -> Result<Self, BlobError> {
        let bad = |problem: String| BlobError::Spec { spec: mask(spec), problem };
        if spec.trim().is_empty() {
            return Err(bad("the spec is empty".into()));
        }
        let Some((scheme, rest)) = split_scheme(spec) else {
            // `s3:bucket`, `s3:/bucket` are typos, not folders named `s3:...`.
            let lower = spec.to_ascii_lowercase();
            if lower.starts_with("s3:") || lower.starts_with("file:") {
                return Err(bad("a URL needs `://` after its scheme (s3://bucket, file:///path)".into()));
            }
            return Ok(BlobStoreConfig::Local(PathBuf::from(spec)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = match rest.strip_prefix("localhost") {
                    Some(p) if p.starts_with('/') => p,
                    _ => rest,
                };
                if !path.starts_with('/') {
                    return Err(bad("a file:// URL needs an absolute path, as in file:///srv/medchain/blobs \
                                    (or give the folder path alone)"
                        .into()));
                }
                if path.contains(['?', '#']) {
                    return Err(bad("a file:// URL takes no query or fragment".into()));
                }
                let path = percent_decode(path).map_err(bad)?;
                Ok(BlobStoreConfig::Local(PathBuf::from(path)))
            }
            "s3" => {
                let (authority, query) = match rest.split_once('?') {
                    Some((a, q)) => (a, Some(q)),
                    None => (rest, None),
                };
                if authority.contains('#') || query.is_some_and(|q| q.contains('#')) {
                    return Err(bad("an s3:// spec takes no fragment (#...)".into()));
                }
                if authority.contains('@') {
                    return Err(bad(CREDENTIALS_NOT_IN_SPEC.into()));
                }
                let (bucket, key_prefix) = authority.split_once('/').unwrap_or((authority, ""));
                check_bucket(bucket).map_err(bad)?;
                let prefix = check_prefix(key_prefix).map_err(bad)?;
                let (mut endpoint, mut region) = (None, None);
                for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    let key = percent_decode(key).map_err(bad)?;
                    let slot = match key.as_str() {
                        "endpoint" => &mut endpoint,
                        "region" => &mut region,
                        k if looks_like_credential(k) => return Err(bad(CREDENTIALS_NOT_IN_SPEC.into())),
                        k => {
                            return Err(bad(format!(
                                "unknown parameter {k:?}; an s3:// spec takes endpoint and region"
                            )))
                        }
                    };
                    if slot.is_some() {
                        return Err(bad(format!("parameter {key} is given twice")));
                    }
                    let value = percent_decode(value).map_err(bad)?;
                    if value.is_empty() {
                        return Err(bad(format!("parameter {key} has no value")));
                    }
                    *slot = Some(value);
                }
                if let Some(e) = &endpoint {
                    check_endpoint(e).map_err(bad)?;
                }
                if let Some(r) = &region {
                    if !r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                        return Err(bad(format!("region {r:?} is not a region name (like us-east-1)")));
                    }
                }
                Ok(BlobStoreConfig::S3 { bucket: bucket.to_owned(), prefix, endpoint, region })
            }
            other => Err(bad(format!("unsupported scheme {other}://"))),
        }
    }
}

impl fmt::Display for BlobStoreConfig {
    /// The spec, normalised; it holds no credentials, so it is safe to log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobStoreConfig::Local(dir) => write!(f, "{}", dir.display()),
            BlobStoreConfig::S3 { bucket, prefix, endpoint, region } => {
                write!(f, "s3://{bucket}")?;
                if let Some(prefix) = prefix {
                    write!(f, "/{prefix}")?;
                }
                let mut sep = '?';
                for (key, value) in [("endpoint", endpoint), ("region", region)] {
                    if let Some(value) = value {
                        write!(f, "{sep}{key}={value}")?;
                        sep = '&';
                    }
                }
                Ok(())
            }
        }
    }
}

impl BlobStoreConfig {
    /// Opens the store: creates a local folder if absent; sets up an S3 client from the spec and
    /// the `AWS_*` environment (no request is made: a wrong bucket or credentials show on the
    /// first `put` or `get`).
    pub fn open(&self) -> Result<BlobStore, BlobError> {
        match self {
            BlobStoreConfig::Local(dir) => BlobStore::local(dir),
            BlobStoreConfig::S3 { bucket, prefix, endpoint, region } => {
                // reqwest's rustls is built without a bundled crypto provider (so that aws-lc-rs
                // stays out of the build); ring is the one the rest of medchain uses. Already
                // installed (by us or by the program) is fine.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_config(AmazonS3ConfigKey::Endpoint, endpoint)
                        .with_config(AmazonS3ConfigKey::S3Endpoint, endpoint);
                }
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                let endpoint = builder
                    .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
                    .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
                let region = builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
                let path = match prefix {
                    Some(prefix) => format!("{bucket}/{prefix}"),
                    None => bucket.clone(),
                };
                let name = match &endpoint {
                    Some(e) => format!("s3://{path}?endpoint={}&region={region}", mask_endpoint(e)),
                    None => format!("s3://{path}?region={region}"),
                };
                if let Some(e) = &endpoint {
                    check_endpoint(e).map_err(|problem| BlobError::Spec {
                        spec: name.clone(),
                        problem: format!("the endpoint (from the spec or AWS_ENDPOINT_URL): {problem}"),
                    })?;
                    if e.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("http://")) {
                        builder = builder.with_allow_http(true);
                    }
                }
                let store =
                    builder.build().map_err(|e| BlobError::S3Setup { store: name.clone(), source: Box::new(e) })?;
                let store: Arc<dyn ObjectStore> = match prefix {
                    Some(prefix) => Arc::new(PrefixStore::new(store, prefix.as_str())),
                    None => Arc::new(store),
                };
                Ok(BlobStore { store, name })
            }
        }
    }
}

const CREDENTIALS_NOT_IN_SPEC: &str = "credentials do not belong in the spec (it shows in process lists and logs); \
     set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in the environment instead";

/// `scheme` and the rest of `scheme://rest`, if `spec` is a URL.
fn split_scheme(spec: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = spec.split_once("://")?;
    let mut chars = scheme.chars();
    let url_like = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    url_like.then_some((scheme, rest))
}

fn looks_like_credential(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["key", "secret", "token", "password", "credential", "session"].iter().any(|w| key.contains(w))
}

/// S3's bucket naming rules: 3 to 63 of `a-z 0-9 . -`, a letter or digit at each end.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let edge_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge_ok(bucket.bytes().next())
        && edge_ok(bucket.bytes().last())
        && !bucket.contains("..");
    if ok {
        Ok(())
    } else if bucket.is_empty() {
        Err("no bucket named (s3://BUCKET)".into())
    } else {
        Err(format!(
            "{bucket:?} is not an S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens, \
             starting and ending with a letter or digit)"
        ))
    }
}

/// A key prefix inside a bucket: `/`-separated segments of `A-Z a-z 0-9 . _ -`, none empty, `.`
/// or `..`; one trailing `/` is allowed and dropped. `Ok(None)` for no prefix.
fn check_prefix(prefix: &str) -> Result<Option<String>, String> {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.is_empty() {
        return Ok(None);
    }
    let segment_ok = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    if prefix.len() > 512 || !prefix.split('/').all(segment_ok) {
        return Err(format!(
            "the path inside the bucket {prefix:?} is not a key prefix (segments of letters, digits, \
             '.', '_' and '-', separated by single '/', none '.' or '..')"
        ));
    }
    Ok(Some(prefix.to_owned()))
}

/// An endpoint is `http://` or `https://`, a host, optionally a port and path; no credentials.
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let lower = endpoint.to_ascii_lowercase();
    let Some(rest) = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://")) else {
        return Err(format!(
            "endpoint {:?} is not an http:// or https:// URL (like http://127.0.0.1:9000)",
            mask_endpoint(endpoint)
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(CREDENTIALS_NOT_IN_SPEC.into());
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("endpoint {endpoint:?} names no host"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("endpoint {endpoint:?} has a query or fragment; give scheme, host, port"));
    }
    Ok(())
}

/// `url` with any `user:secret@` replaced by `***@`. Conservative: everything from `://` to the
/// last `@` before any `?` or `#` is masked, since a secret key may hold a `/`.
fn mask_endpoint(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `spec` as it may appear in an error: userinfo masked, and in an s3:// query every value but
/// the endpoint's (itself masked) and the region's replaced by `***`.
fn mask(spec: &str) -> String {
    let Some((scheme, _)) = split_scheme(spec) else { return spec.to_owned() };
    let masked = mask_endpoint(spec);
    if !scheme.eq_ignore_ascii_case("s3") {
        return masked;
    }
    let Some((head, query)) = masked.split_once('?') else { return masked };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("endpoint", v)) => format!("endpoint={}", mask_endpoint(&percent_decode(v).unwrap_or_default())),
            Some(("region", v)) => format!("region={v}"),
            Some((k, _)) => format!("{k}=***"),
            None if looks_like_credential(pair) || pair.len() > 24 => "***".to_owned(),
            None => pair.to_owned(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// `%XX` escapes decoded; the result must be UTF-8.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                return Err("a % in the spec is not followed by two hex digits (write %25 for a literal %)".into());
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-encoded value is not UTF-8".into())
}

/// A blob store.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    name: String,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobStore").field("name", &self.name).finish_non_exhaustive()
    }
}

impl fmt::Display for BlobStore {
    /// What [`BlobStore::describe`] says.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl BlobStore {
    /// Opens the store that `spec` names (see [`BlobStoreConfig`] for the format): a folder path
    /// or `file:///path`, or `s3://bucket[/prefix][?endpoint=URL&region=NAME]` with the rest from the
    /// `AWS_*` environment.
    pub fn open(spec: &str) -> Result<Self, BlobError> {
        spec.parse::<BlobStoreConfig>()?.open()
    }

    /// Where the store is, for logs: `file:///abs/path` or `s3://bucket?endpoint=...&region=...`
    /// with the endpoint and region in effect. Never a credential.
    pub fn describe(&self) -> &str {
        &self.name
    }

    /// The store in the local folder `dir`, created if absent. An upload is durable when it
    /// returns: the file and its folder are fsynced before the rename that publishes it.
    pub fn local(dir: &Path) -> Result<Self, BlobError> {
        let folder = |source| BlobError::Folder { dir: dir.to_path_buf(), source };
        std::fs::create_dir_all(dir).map_err(folder)?;
        let dir = std::fs::canonicalize(dir).map_err(folder)?;
        // fsync on: the anchor naming a blob is committed durably (redb, fsync), so the blob
        // must be on disk before its upload returns, or a power cut could leave a committed
        // anchor naming a blob that never reached the disk.
        let store = LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| BlobError::Folder { dir: dir.clone(), source: std::io::Error::other(e) })?
            .with_fsync(true);
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
            Err(source) if no_such_bucket(&source) => Err(BlobError::NoBucket { store: self.name.clone() }),
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
            Err(source) if no_such_bucket(&source) => return Err(BlobError::NoBucket { store: self.name.clone() }),
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

/// Whether `e` is S3's `NoSuchBucket`: a 404 like a missing object, told apart by the error code
/// in the response body, which object_store keeps in the error's source chain.
fn no_such_bucket(e: &object_store::Error) -> bool {
    if !matches!(e, object_store::Error::NotFound { .. }) {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.to_string().contains("<Code>NoSuchBucket</Code>") {
            return true;
        }
        cause = c.source();
    }
    false
}
