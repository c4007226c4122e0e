//! The node's encrypted index (DESIGN.md §6): the tantivy view of committed blocks kept up to
//! date, the hospital's label service and token service, the search endpoint, and the proofs a
//! client checks before it shows a result.
//!
//! Every node (validator or auditor) keeps the view in `DATA/index/` and answers searches. A
//! validator is a hospital: it also holds its search domain's index key `K` (`[index] index_key`,
//! by default `DATA/index.key`; created on first start, mode 0600) and its label counters
//! (`DATA/index-counters.redb`, keyed HMACs, no plaintext), labels the records its doctors write
//! (`POST /v1/index/labels`) and hands out term keys of closed epochs to researchers it has
//! authorised (`POST /v1/index/tokens`).
//!
//! What reaches this module in plaintext: the terms of a label request, from a doctor of this
//! hospital (the writer's own node, as DESIGN §6 allows). They are used in memory to derive
//! labels and are never logged or written. A search carries term keys, not terms; its
//! predicates' fields and values are present in the query text, which is not logged either.
//!
//! The view is fed by the driver thread: every committed block's applied anchors are sent to
//! the index thread, which applies what has queued up as one tantivy commit. At start-up the
//! view catches up from the chain before the driver starts, so no block is missed; a view that
//! cannot be opened or applied is reported (`medchain_index_errors_total`) and searches answer
//! 503 with advice to rebuild, while consensus carries on.

use crate::api::ApiError;
use crate::driver::now_ms;
use crate::node::{NodeError, NodeShared};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use engine::block::{BlockHeader, CommitCertificate, CommittedBlock};
use engine::codec;
use engine::crypto::{self, ChainId, Domain, PublicKey, Signature, SigningKey};
use engine::genesis::Genesis;
use engine::merkle::{self, InclusionProof};
use engine::storage::Storage;
use engine::tx::{Payload, RecordId, Role, Transaction};
use index::labels::{IndexKey, LabelPolicy, LabelWriter, Overflow, RedbCounterStore};
use index::search::{DomainKey, SearchLimits};
use index::term::Term;
use index::tokens::{TokenLimits, TokenRequest, TokenService};
use index::view::{BlockRecords, Hit, IndexView};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::num::NonZeroU64;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{error, info};

/// The view's folder inside the data folder.
pub const INDEX_DIR: &str = "index";
/// The label counters' database inside the data folder.
pub const COUNTERS_FILE: &str = "index-counters.redb";
/// Label responses remembered per (doctor, record), so that a retried request gets the same
/// labels instead of burning counters.
const LABEL_RESPONSES_REMEMBERED_MAX: usize = 16_384;
/// Blocks whose proofs one driver query reads; the driver runs consensus between queries.
const PROOF_BLOCKS_PER_QUERY: usize = 32;

/// `[index]` in node.toml: how this hospital labels its records and serves keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {
    /// Epoch length in milliseconds (default one hour). Keys are handed out for closed epochs
    /// only, so a record becomes findable once its epoch has closed.
    #[serde(default = "defaults::epoch_len_ms")]
    pub epoch_len_ms: u64,
    /// Labels per record, P (default 32). Every hospital of a consortium should use the same P.
    #[serde(default = "defaults::labels_per_record")]
    pub labels_per_record: usize,
    /// What to do with a record that has more distinct terms than P.
    #[serde(default)]
    pub overflow: OverflowMode,
    /// The hospital's index key K (32 bytes, hex); created on first start when missing.
    /// Default: `index.key` in the data folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_key: Option<PathBuf>,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            epoch_len_ms: defaults::epoch_len_ms(),
            labels_per_record: defaults::labels_per_record(),
            overflow: OverflowMode::default(),
            index_key: None,
        }
    }
}

/// See [`IndexConfig::overflow`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowMode {
    /// Refuse the record with a clear error.
    #[default]
    Refuse,
    /// Keep the P terms of highest priority.
    DropLowestPriority,
}

mod defaults {
    pub fn epoch_len_ms() -> u64 {
        index::labels::EPOCH_LEN_MS_DEFAULT
    }
    pub fn labels_per_record() -> usize {
        index::labels::LABELS_PER_RECORD_DEFAULT
    }
}

impl IndexConfig {
    /// The label policy this configuration stands for.
    pub fn policy(&self) -> LabelPolicy {
        LabelPolicy {
            labels_per_record: self.labels_per_record,
            overflow: match self.overflow {
                OverflowMode::Refuse => Overflow::Refuse,
                OverflowMode::DropLowestPriority => Overflow::DropLowestPriority,
            },
            epoch_len_ms: self.epoch_len_ms,
        }
    }
}

/// Reads the hospital's index key, or creates it (32 random bytes, hex, mode 0600) when the
/// file does not exist.
pub fn load_or_create_index_key(path: &FsPath) -> Result<IndexKey, NodeError> {
    let bad = |reason: String| NodeError::File { what: "index key", path: path.to_path_buf(), reason };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(text.trim(), &mut bytes)
                .map_err(|e| bad(format!("expected 64 hex characters: {e}")))?;
            Ok(IndexKey::from_bytes(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = IndexKey::generate(&mut rand::rngs::OsRng);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(path).map_err(|e| bad(format!("cannot create it: {e}")))?;
            use std::io::Write;
            file.write_all(hex::encode(key.expose_bytes()).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| bad(format!("cannot write it: {e}")))?;
            info!(path = %path.display(), "created this hospital's index key; back it up with the node key");
            Ok(key)
        }
        Err(e) => Err(bad(e.to_string())),
    }
}

/// The hospital side of a validator: labels and keys of its search domain.
pub(crate) struct Hospital {
    epoch_len_ms: u64,
    writer: LabelWriter<RedbCounterStore>,
    tokens: TokenService,
    recent: Mutex<LabelCache>,
}

/// The node's index state, shared by the API and the index thread.
pub(crate) struct NodeIndex {
    /// The view, or why it is unusable.
    view: RwLock<Result<IndexView, String>>,
    /// Present on validators.
    hospital: Option<Hospital>,
}

impl NodeIndex {
    /// Opens the view in `data_dir/index` and catches it up with `storage`; on a validator also
    /// the hospital's key, counters and token service. A view that cannot be opened is kept as
    /// an error (searches answer 503, consensus carries on); the hospital side must open.
    pub(crate) fn open(
        data_dir: &FsPath,
        config: &IndexConfig,
        hospital_key: Option<PublicKey>,
        storage: &dyn Storage,
    ) -> Result<Self, NodeError> {
        let view = open_view(&data_dir.join(INDEX_DIR), storage);
        let hospital = match hospital_key {
            None => None,
            Some(me) => {
                let key_path = config.index_key.clone().unwrap_or_else(|| data_dir.join("index.key"));
                let bad = |reason: String| NodeError::Config { path: key_path.clone(), reason };
                let epoch_len = NonZeroU64::new(config.epoch_len_ms)
                    .ok_or_else(|| bad("[index] epoch_len_ms must be at least 1".into()))?;
                let key = load_or_create_index_key(&key_path)?;
                let counters_path = data_dir.join(COUNTERS_FILE);
                let store = RedbCounterStore::open(&counters_path).map_err(|e| NodeError::File {
                    what: "index counters",
                    path: counters_path.clone(),
                    reason: e.to_string(),
                })?;
                let writer = LabelWriter::new(key.clone(), me, config.policy(), store)
                    .map_err(|e| bad(format!("[index]: {e}")))?;
                let tokens = TokenService::new(me, key, epoch_len, TokenLimits::default());
                Some(Hospital {
                    epoch_len_ms: config.epoch_len_ms,
                    writer,
                    tokens,
                    recent: Mutex::new(LabelCache::default()),
                })
            }
        };
        Ok(NodeIndex { view: RwLock::new(view), hospital })
    }

    /// What `/v1/status` shows of the index.
    pub(crate) fn status_json(&self) -> serde_json::Value {
        let now = now_ms();
        let (usable, height, records, problem) = match &*self.view.read() {
            Ok(v) => (true, v.indexed_height(), v.num_records(), None),
            Err(e) => (false, 0, 0, Some(e.clone())),
        };
        let domain = self.hospital.as_ref().map(|h| {
            json!({
                "hospital": h.writer.writer(),
                "epoch_len_ms": h.epoch_len_ms,
                "labels_per_record": h.writer.policy().labels_per_record,
                "first_open_epoch": h.tokens.first_open_epoch(now),
            })
        });
        json!({ "usable": usable, "indexed_height": height, "records": records, "problem": problem, "domain": domain })
    }

    /// The indexed height, when the view is usable.
    pub(crate) fn indexed_height(&self) -> Option<u64> {
        self.view.read().as_ref().ok().map(IndexView::indexed_height)
    }
}

fn open_view(dir: &FsPath, storage: &dyn Storage) -> Result<IndexView, String> {
    let started = std::time::Instant::now();
    let mut view = IndexView::open(dir).map_err(|e| {
        error!(error = %e, "the search index cannot be opened; searches are refused until it is rebuilt");
        e.to_string()
    })?;
    let from = view.indexed_height();
    let mut last_logged = std::time::Instant::now();
    let done = view.catch_up(storage, |height, head| {
        if last_logged.elapsed().as_secs() >= 5 {
            info!(height, head, "indexing the chain");
            last_logged = std::time::Instant::now();
        }
    });
    match done {
        Ok(to) => {
            if to > from {
                info!(from, to, ms = started.elapsed().as_millis() as u64, "search index caught up");
            }
            Ok(view)
        }
        Err(e) => {
            error!(error = %e, "the search index cannot catch up; searches are refused until it is rebuilt");
            Err(e.to_string())
        }
    }
}

/// Feeds committed blocks to the view: what queued up is applied as one commit.
pub(crate) fn run_index_thread(
    index: Arc<NodeIndex>,
    blocks: std::sync::mpsc::Receiver<BlockRecords>,
    metrics: Arc<crate::metrics::Metrics>,
) {
    while let Ok(first) = blocks.recv() {
        let mut batch = vec![first];
        while let Ok(more) = blocks.try_recv() {
            batch.push(more);
        }
        let mut guard = index.view.write();
        let Ok(view) = guard.as_mut() else {
            continue;
        };
        match view.apply_blocks(&batch) {
            Ok(_) => metrics.index_height.store(view.indexed_height(), Ordering::Relaxed),
            Err(e) => {
                metrics.index_errors.inc("apply");
                error!(error = %e, "the search index could not apply committed blocks; searches are refused until the node restarts (it catches up from the chain) or the index is rebuilt");
                *guard = Err(e.to_string());
            }
        }
    }
}

/// The routes of the index under `/v1`.
pub(crate) fn routes() -> Router<Arc<NodeShared>> {
    Router::new()
        .route("/v1/index/labels", post(labels))
        .route("/v1/index/tokens", post(tokens))
        .route("/v1/search", post(search))
        .route("/v1/researchers/{key}/search-authorizations", get(authorizations))
}

type Shared = State<Arc<NodeShared>>;

fn bad_request(code: &'static str, message: impl Into<String>, field: Option<&str>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message, field)
}

fn parse_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = crate::api::body_bytes(body)?;
    crate::api::parse_json(&bytes)
}

fn hospital_of(node: &NodeShared) -> Result<&Hospital, ApiError> {
    node.index.hospital.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_hospital",
            format!("{} is an auditor, not a hospital: it has no search domain; ask a hospital's node", node.name),
            None,
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Labels

/// One term of a label request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelTerm {
    /// The term's field (`icd10`, `loinc`, `year`, ...).
    pub field: String,
    /// Its normalised value.
    pub value: String,
    /// Its priority (higher is kept first when terms overflow).
    pub priority: u8,
}

/// A doctor asks its hospital's node for the labels of one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRequest {
    /// The doctor (enrolled by this hospital).
    pub doctor: PublicKey,
    /// The record the labels are for.
    pub record_id: RecordId,
    /// The record's terms, as the keyword extractor gave them.
    pub terms: Vec<LabelTerm>,
    /// The doctor's signature over [`LabelRequest::signing_payload`] under
    /// [`Domain::LabelRequest`] and the chain id.
    pub signature: Signature,
}

impl LabelRequest {
    /// A signed request.
    pub fn sign(doctor: &SigningKey, chain_id: &ChainId, record_id: RecordId, terms: Vec<LabelTerm>) -> Self {
        let mut request = LabelRequest { doctor: doctor.public(), record_id, terms, signature: Signature([0; 64]) };
        request.signature = doctor.sign(Domain::LabelRequest, chain_id, &request.signing_payload());
        request
    }

    /// The canonical bytes the doctor signs.
    pub fn signing_payload(&self) -> Vec<u8> {
        let terms: Vec<(&str, &str, u8)> =
            self.terms.iter().map(|t| (t.field.as_str(), t.value.as_str(), t.priority)).collect();
        codec::encode(&(&self.doctor, &self.record_id, terms))
    }
}

/// The labels of one record, to put in its `AnchorRecord`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelResponse {
    /// The hospital (the anchor's `hospital`).
    pub hospital: PublicKey,
    /// The epoch (the anchor's `epoch`).
    pub epoch: u64,
    /// Exactly P labels, hex (the anchor's `index_labels`).
    pub labels: Vec<String>,
    /// Terms left out under the drop-lowest-priority policy.
    pub dropped: usize,
}

/// Remembered label responses, oldest forgotten first.
#[derive(Default)]
struct LabelCache {
    map: HashMap<(PublicKey, RecordId), LabelResponse>,
    order: VecDeque<(PublicKey, RecordId)>,
}

impl LabelCache {
    fn insert(&mut self, key: (PublicKey, RecordId), value: LabelResponse) {
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > LABEL_RESPONSES_REMEMBERED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

async fn labels(State(node): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let hospital = hospital_of(&node)?;
    let request: LabelRequest = parse_body(body)?;
    if request.terms.len() > index::labels::RECORD_TERMS_MAX {
        return Err(bad_request(
            "too_many_terms",
            format!(
                "{} terms; a record may carry at most {} before deduplication",
                request.terms.len(),
                index::labels::RECORD_TERMS_MAX
            ),
            Some("terms"),
        ));
    }
    let chain_id = node.genesis.chain_id().clone();
    if !crypto::verify(&request.doctor, &request.signature, Domain::LabelRequest, &chain_id, &request.signing_payload())
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the signature does not verify for this doctor, this request and this chain; sign the request with the doctor's key",
            Some("signature"),
        ));
    }
    let me = *hospital.writer.writer();
    let doctor = request.doctor;
    let enrolled = node
        .query(move |core| core.state().participant(&doctor).map(|p| (p.role, p.enrolled_by)))
        .await
        .ok_or_else(ApiError::unavailable)?;
    match enrolled {
        Some((Role::Doctor, by)) if by == me => {}
        Some((Role::Doctor, by)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "other_hospital",
                format!(
                    "doctor {doctor} was enrolled by hospital {by}, not by this one ({me}); ask that hospital's node"
                ),
                Some("doctor"),
            ))
        }
        Some((role, _)) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_a_doctor",
                format!("{doctor} is enrolled as {role:?}; only doctors write records"),
                Some("doctor"),
            ))
        }
        None => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "unknown_participant",
                format!("{doctor} is not enrolled on this chain; the hospital must enrol the doctor first"),
                Some("doctor"),
            ))
        }
    }
    let cache_key = (request.doctor, request.record_id);
    if let Some(done) = hospital.recent.lock().map.get(&cache_key) {
        return Ok(Json(done.clone()).into_response());
    }
    let node2 = node.clone();
    let response = tokio::task::spawn_blocking(move || -> Result<LabelResponse, ApiError> {
        let Some(hospital) = node2.index.hospital.as_ref() else {
            return Err(ApiError::unavailable());
        };
        let terms: Vec<Term> = request.terms.iter().map(|t| Term::new(&t.field, &t.value, t.priority)).collect();
        let labelled = hospital.writer.labels_for_record(&terms, now_ms(), &mut rand::rngs::OsRng).map_err(|e| {
            use index::labels::LabelError;
            match e {
                LabelError::TooManyTerms { .. } | LabelError::TermsOverLimit { .. } => {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "too_many_terms", e.to_string(), Some("terms"))
                }
                other => {
                    error!(error = %other, "labelling failed");
                    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "labels_failed", other.to_string(), None)
                }
            }
        })?;
        let response = LabelResponse {
            hospital: *hospital.writer.writer(),
            epoch: labelled.epoch,
            labels: labelled.labels.iter().map(hex::encode).collect(),
            dropped: labelled.dropped,
        };
        hospital.recent.lock().insert(cache_key, response.clone());
        node2.metrics.index_labelled.fetch_add(1, Ordering::Relaxed);
        Ok(response)
    })
    .await
    .map_err(|_| ApiError::unavailable())??;
    Ok(Json(response).into_response())
}

// ---------------------------------------------------------------------------------------------
// Tokens

async fn tokens(State(node): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    hospital_of(&node)?;
    let request: TokenRequest = parse_body(body)?;
    let chain_id = node.genesis.chain_id().clone();
    let node2 = node.clone();
    let now = now_ms();
    // The checks read the committed state, so they run on the driver thread; the key count is
    // bounded by the service's limits.
    let issued = node
        .query(move |core| {
            let hospital = node2.index.hospital.as_ref().expect("checked above: this node is a hospital");
            hospital.tokens.issue(core.state(), &chain_id, &request, now)
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    match issued {
        Ok(response) => {
            node.metrics.index_keys_issued.fetch_add(response.keys.len() as u64, Ordering::Relaxed);
            info!(search_log = %response.search_log, keys = response.keys.len(), "term keys issued");
            Ok(Json(response).into_response())
        }
        Err(e) => {
            node.metrics.index_token_refusals.inc(e.code());
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN);
            Err(ApiError::new(status, e.code(), e.to_string(), e.field()))
        }
    }
}

/// The search authorizations given to a researcher, for clients that need the id.
async fn authorizations(State(node): Shared, Path(key): Path<String>) -> Result<Response, ApiError> {
    let key = PublicKey::from_hex(&key)
        .map_err(|e| bad_request("malformed_key", format!("a public key is 64 hex characters: {e}"), Some("key")))?;
    let list = node
        .query(move |core| {
            core.state()
                .search_authorizations()
                .filter(|(_, a)| a.authorization.researcher == key)
                .map(|(id, a)| {
                    json!({
                        "id": id, "hospital": a.hospital, "purpose": a.authorization.purpose,
                        "expires_at_ms": a.authorization.expires_at_ms, "height": a.height,
                    })
                })
                .collect::<Vec<_>>()
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    Ok(Json(json!({ "researcher": key, "authorizations": list })).into_response())
}

// ---------------------------------------------------------------------------------------------
// Search

/// One term key sent with a search, as a token service handed it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchKey {
    /// The hospital whose domain the key is for.
    pub hospital: PublicKey,
    /// The term's field.
    pub field: String,
    /// The term's value.
    pub value: String,
    /// The epoch.
    pub epoch: u64,
    /// The key, 64 hex characters.
    pub key: String,
}

/// `POST /v1/search`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The query text (see `index::query`).
    pub query: String,
    /// The term keys.
    pub keys: Vec<SearchKey>,
}

/// One matching record with the proof of its anchor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchRecord {
    /// The record id.
    pub record_id: RecordId,
    /// The writing hospital.
    pub hospital: PublicKey,
    /// The public data type.
    pub data_type: String,
    /// The writer's creation time.
    pub created_at_ms: u64,
    /// The labels' epoch.
    pub epoch: u64,
    /// The block holding the anchor.
    pub height: u64,
    /// The anchor transaction, canonical encoding in hex.
    pub tx: String,
    /// Its inclusion proof against the block's `tx_root`.
    pub proof: InclusionProof,
}

/// A block header with the certificate that committed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenHeader {
    /// The header.
    pub header: BlockHeader,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
}

/// The answer to a search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// Records matching in all.
    pub count: usize,
    /// Whether `records` was cut short.
    pub truncated: bool,
    /// The height the index was at.
    pub indexed_height: u64,
    /// The records (ordered by height and position), each with its proof.
    pub records: Vec<SearchRecord>,
    /// The headers the proofs refer to, with their certificates.
    pub headers: Vec<ProvenHeader>,
}

async fn search(State(node): Shared, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    let request: SearchRequest = parse_body(body)?;
    let query = index::query::parse(&request.query)
        .map_err(|e| bad_request("malformed_query", format!("{}\n{}", e, e.render(&request.query)), Some("query")))?;
    let limits = SearchLimits::default();
    if request.keys.len() > limits.keys_max {
        return Err(bad_request(
            "too_many_keys",
            format!("{} keys; one search takes at most {}", request.keys.len(), limits.keys_max),
            Some("keys"),
        ));
    }
    let mut keys = Vec::with_capacity(request.keys.len());
    for (i, k) in request.keys.iter().enumerate() {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&k.key, &mut bytes).map_err(|e| {
            bad_request(
                "malformed_key",
                format!("a term key is 64 hex characters: {e}"),
                Some(&format!("keys[{i}].key")),
            )
        })?;
        keys.push(DomainKey {
            hospital: k.hospital,
            field: k.field.clone(),
            value: k.value.clone(),
            epoch: k.epoch,
            key: index::labels::TermKey::from_bytes(bytes),
        });
    }
    let node2 = node.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let guard = node2.index.view.read();
        let view = guard.as_ref().map_err(|reason| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "index_unavailable",
                format!("this node's search index is unusable ({reason}); stop the node and run `medchain index rebuild --data DIR`, or ask another node"),
                None,
            )
        })?;
        index::search::search(view, &query, &keys, &limits).map_err(|e| {
            let status = match e {
                index::search::SearchError::View(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            ApiError::new(status, e.code(), e.to_string(), Some("keys"))
        })
    })
    .await
    .map_err(|_| ApiError::unavailable())??;
    node.metrics.searches.inc("ok");
    let indexed_height = outcome.indexed.map_or(0, |(h, _)| h);
    let (records, headers) = prove_hits(&node, &outcome.hits).await?;
    Ok(Json(SearchResponse { count: outcome.total, truncated: outcome.truncated, indexed_height, records, headers })
        .into_response())
}

/// Reads the blocks of `hits` from the chain (a bounded number per driver query) and builds each
/// anchor's inclusion proof off the driver thread.
async fn prove_hits(node: &Arc<NodeShared>, hits: &[Hit]) -> Result<(Vec<SearchRecord>, Vec<ProvenHeader>), ApiError> {
    let mut heights: Vec<u64> = hits.iter().map(|h| h.height).collect();
    heights.dedup();
    let mut blocks: BTreeMap<u64, CommittedBlock> = BTreeMap::new();
    for chunk in heights.chunks(PROOF_BLOCKS_PER_QUERY) {
        let chunk = chunk.to_vec();
        let read = node
            .query(move |core| -> Result<Vec<(u64, Option<CommittedBlock>)>, String> {
                chunk.iter().map(|h| Ok((*h, core.storage().block(*h).map_err(|e| e.to_string())?))).collect()
            })
            .await
            .ok_or_else(ApiError::unavailable)?
            .map_err(crate::api::storage_error)?;
        for (h, block) in read {
            let block = block.ok_or_else(|| {
                crate::api::storage_error(format!("the index names block {h}, which the chain does not hold"))
            })?;
            blocks.insert(h, block);
        }
    }
    let hits = hits.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut records = Vec::with_capacity(hits.len());
        let mut leaves_of: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
        for hit in &hits {
            let block = &blocks[&hit.height];
            let leaves = leaves_of
                .entry(hit.height)
                .or_insert_with(|| block.block.txs.iter().map(Transaction::encode).collect());
            let index = hit.tx_index as usize;
            let proof = merkle::prove(leaves, index).ok_or_else(|| {
                crate::api::storage_error(format!(
                    "the index places record {} at position {index} of block {}, which has {} transactions",
                    hit.record_id,
                    hit.height,
                    leaves.len()
                ))
            })?;
            records.push(SearchRecord {
                record_id: hit.record_id,
                hospital: hit.hospital,
                data_type: hit.data_type.clone(),
                created_at_ms: hit.created_at_ms,
                epoch: hit.epoch,
                height: hit.height,
                tx: hex::encode(&leaves[index]),
                proof,
            });
        }
        let headers =
            blocks.into_values().map(|b| ProvenHeader { header: b.block.header, certificate: b.certificate }).collect();
        Ok((records, headers))
    })
    .await
    .map_err(|_| ApiError::unavailable())?
}

// ---------------------------------------------------------------------------------------------
// What the client checks

/// A search result that failed its check: the client shows nothing of it.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// A record refers to a block whose header was not sent.
    #[error("record {record} is in block {height}, whose header the node did not send")]
    MissingHeader {
        /// The record.
        record: RecordId,
        /// The block.
        height: u64,
    },
    /// A header is not of this chain or its certificate does not verify against the genesis
    /// validators.
    #[error("the header of block {height} is not certified by this consortium's validators: {reason}")]
    BadHeader {
        /// The block.
        height: u64,
        /// Why.
        reason: String,
    },
    /// The anchor is not in the block.
    #[error("the inclusion proof of record {record} does not lead to the tx root of block {height}")]
    BadProof {
        /// The record.
        record: RecordId,
        /// The block.
        height: u64,
    },
    /// The transaction is not an anchor of the record the node claims, or its metadata differ.
    #[error("record {record}: {reason}")]
    WrongAnchor {
        /// The record.
        record: RecordId,
        /// What differs.
        reason: String,
    },
    /// More records than the count the node claims.
    #[error("the node claims {count} matches but sent {sent} records")]
    BadCount {
        /// The claimed count.
        count: usize,
        /// Records sent.
        sent: usize,
    },
}

/// Checks every record of a search response against the consortium's genesis: each header is
/// certified by a quorum of the genesis validators, each anchor is in its block by its inclusion
/// proof, and the anchor says what the node claims. Returns the anchors, in the response's
/// order. A single failure fails the whole response: a node that lies about one record is not
/// trusted with the others.
pub fn verify_search_response(
    genesis: &Genesis,
    response: &SearchResponse,
) -> Result<Vec<engine::tx::AnchorRecord>, ProofError> {
    if response.records.len() > response.count {
        return Err(ProofError::BadCount { count: response.count, sent: response.records.len() });
    }
    let validators = genesis.validator_set();
    let mut headers: BTreeMap<u64, &BlockHeader> = BTreeMap::new();
    for proven in &response.headers {
        let h = &proven.header;
        let bad = |reason: String| ProofError::BadHeader { height: h.height, reason };
        if h.chain_id != *genesis.chain_id() {
            return Err(bad(format!("it is of chain {:?}", h.chain_id.as_str())));
        }
        proven
            .certificate
            .verify(genesis.chain_id(), &validators, h.height, &h.hash())
            .map_err(|e| bad(e.to_string()))?;
        headers.insert(h.height, h);
    }
    let mut anchors = Vec::with_capacity(response.records.len());
    for r in &response.records {
        let header =
            headers.get(&r.height).ok_or(ProofError::MissingHeader { record: r.record_id, height: r.height })?;
        let wrong = |reason: String| ProofError::WrongAnchor { record: r.record_id, reason };
        let bytes = hex::decode(&r.tx).map_err(|e| wrong(format!("the transaction is not hex: {e}")))?;
        if !r.proof.verify(&bytes, &header.tx_root) || r.proof.tree_size != u64::from(header.tx_count) {
            return Err(ProofError::BadProof { record: r.record_id, height: r.height });
        }
        let tx = Transaction::decode(&bytes).map_err(|e| wrong(format!("the transaction does not decode: {e}")))?;
        let signers = tx.body.signers();
        let signed = tx.body.signing_bytes(genesis.chain_id());
        if signers.len() != tx.signatures.len()
            || !signers.iter().zip(&tx.signatures).all(|(k, s)| crypto::verify_raw(k, s, &signed))
        {
            return Err(wrong("the anchor's author and patient signatures do not verify".into()));
        }
        let Payload::AnchorRecord(anchor) = tx.body.payload else {
            return Err(wrong(format!("the proven transaction is a {}, not an AnchorRecord", tx.body.payload.kind())));
        };
        if anchor.record_id != r.record_id
            || anchor.hospital != r.hospital
            || anchor.data_type != r.data_type
            || anchor.created_at_ms != r.created_at_ms
            || anchor.epoch != r.epoch
        {
            return Err(wrong("the anchor on chain differs from what the node reported".into()));
        }
        anchors.push(anchor);
    }
    Ok(anchors)
}
