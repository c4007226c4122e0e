//! Record sharing on a node (DESIGN §7): a validator's part of the consortium key, made by the
//! distributed key generation through the chain, and its decryption shares for committed reads;
//! and the read-only views every node serves (the key set, records, a patient's audit trail).
//!
//! **Key generation.** When a consortium first starts, each validator's [`run_key_generation`]
//! task watches the ledger and sends, once each, its `DkgRound1` (frost's round-1 package and a
//! transport key) and, when every round-1 package is in, its `DkgRound2` (a round-2 package for
//! each other validator, sealed to that validator's transport key). When the ledger activates
//! the key set (every round-2 package in), the validator opens the packages addressed to it,
//! finishes, checks that its result is the ledger's set, and keeps its share sealed at rest in
//! `DATA_DIR/keyshare.sealed`. No process ever sees the collective secret.
//!
//! The validator's DKG randomness, transport key and at-rest key are derived from its node key
//! and the chain id (SHA-512 under distinct labels), so a validator that restarts in the middle
//! of the protocol, or loses its sealed share, redoes its part from the chain and reaches the same
//! packages and the same share; nothing secret besides the node key needs to survive a restart.
//! The at-rest seal keeps the share off the data folder in clear; it is as safe as the node key.
//!
//! **Reads.** A validator returns a decryption share only for a `ReadRequest` its ledger
//! applied: the state machine checked, as of that request's block, that the reader is the owner
//! or holds a grant that covers the record and is neither revoked nor expired. The share is
//! re-encrypted to the request's reader key with a proof (`engine::threshold`), so only that
//! reader can use it, and a wrong share is named by its failed proof.

use crate::api::ApiError;
use crate::node::{NodeShared, Role};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use engine::codec::{self, Digest};
use engine::crypto::{ChainId, PublicKey, SigningKey};
use engine::dkg::{self, Round2Secret, TransportSecret};
use engine::state::DkgLedger;
use engine::threshold::{self, EncryptedKey, KeyShare, PublicKeySet, ReencryptedShare, ShareContext, ShareIndex};
use engine::tx::{DkgRound1, DkgRound2, Payload, SealedPackage, TxBody, TxId, NONCE_OUTSIDE_SEQUENCE};
use parking_lot::{Mutex, RwLock};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::json;
use sha2::{Digest as _, Sha512};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// File name of the sealed key share in the data folder.
pub const SHARE_FILE: &str = "keyshare.sealed";
/// How often the key-generation task looks at the ledger.
const POLL: Duration = Duration::from_millis(200);
/// How long a sent key-generation transaction may stay out of the ledger before it is re-sent.
const RESEND_AFTER: Duration = Duration::from_secs(5);
/// Blocks a key-generation transaction stays valid.
const DKG_TX_VALID_BLOCKS: u64 = 256;

/// Where a validator's part of the key generation stands.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Sending or waiting for round-1 packages.
    Round1,
    /// Sending or waiting for round-2 packages.
    Round2,
    /// The share is in hand and matches the ledger's key set.
    Ready,
    /// The protocol failed for this validator (the reason names a culprit where it can).
    Failed(String),
}

/// A validator's key service: its share index, derived secrets, and its share once made.
pub struct KeyService {
    chain: ChainId,
    key: SigningKey,
    index: ShareIndex,
    n: u16,
    threshold: u16,
    path: PathBuf,
    share: RwLock<Option<KeyShare>>,
    status: RwLock<KeyStatus>,
    /// Shares made for committed reads, so that a repeated request (a retrying client, or
    /// anyone replaying the request id) costs a lookup, not a scalar multiplication and a proof.
    made: Mutex<ShareCache>,
}

/// The shares made, by read, the oldest dropped first beyond `limits::READ_SHARES_CACHED_MAX`.
#[derive(Default)]
struct ShareCache {
    by_read: HashMap<TxId, ReencryptedShare>,
    order: VecDeque<TxId>,
}

impl ShareCache {
    fn get(&self, read: &TxId) -> Option<ReencryptedShare> {
        self.by_read.get(read).cloned()
    }

    fn insert(&mut self, read: TxId, share: ReencryptedShare) {
        if self.by_read.insert(read, share).is_none() {
            self.order.push_back(read);
        }
        while self.order.len() > crate::limits::READ_SHARES_CACHED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_read.remove(&old);
            }
        }
    }
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyService(validator {} of {}, t = {})", self.index, self.n, self.threshold)
    }
}

/// What the key-generation task sees of the ledger.
struct LedgerView {
    dkg: DkgLedger,
    active: Option<PublicKeySet>,
    height: u64,
}

/// What to do next.
enum Step {
    Done,
    Wait,
    Send(Box<Payload>),
}

impl KeyService {
    /// The service of validator `validator` (0-based position in the genesis) among `n`; `None`
    /// when the consortium has a single validator (no threshold key is possible).
    pub fn new(
        chain: ChainId,
        key: SigningKey,
        validator: usize,
        n: usize,
        data_dir: &std::path::Path,
    ) -> Option<KeyService> {
        let n = u16::try_from(n).ok().filter(|n| *n >= 2)?;
        let index = ShareIndex::try_from(validator + 1).ok().filter(|i| *i <= n)?;
        Some(KeyService {
            chain,
            key,
            index,
            n,
            threshold: dkg::consortium_threshold(n),
            path: data_dir.join(SHARE_FILE),
            share: RwLock::new(None),
            status: RwLock::new(KeyStatus::Round1),
            made: Mutex::new(ShareCache::default()),
        })
    }

    /// This validator's share index.
    pub fn index(&self) -> ShareIndex {
        self.index
    }

    /// Where the key generation stands here.
    pub fn status(&self) -> KeyStatus {
        self.status.read().clone()
    }

    /// The share, once made and checked against the ledger's key set.
    pub fn share(&self) -> Option<KeyShare> {
        self.share.read().clone()
    }

    /// 64 secret bytes for `label`, derived from the node key and the chain.
    fn derive(&self, label: &str) -> [u8; 64] {
        let mut h = Sha512::new();
        let mut seed = self.key.seed();
        for part in [format!("medchain/dkg/v1/{label}").as_bytes(), self.chain.as_str().as_bytes(), &seed[..]] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        zeroize::Zeroize::zeroize(&mut seed);
        h.finalize().into()
    }

    fn rng(&self, label: &str) -> ChaCha20Rng {
        let wide = self.derive(label);
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&wide[..32]);
        ChaCha20Rng::from_seed(seed)
    }

    fn transport(&self) -> TransportSecret {
        TransportSecret::from_wide(&self.derive("transport"))
    }

    /// Round 1, the same every time for this node key and chain.
    fn round1(&self) -> Result<(dkg::Round1Secret, Vec<u8>), dkg::DkgError> {
        dkg::round1(self.index, self.n, self.threshold, &mut self.rng("round1"))
    }

    fn others_round1(&self, ledger: &DkgLedger) -> BTreeMap<ShareIndex, Vec<u8>> {
        ledger.round1.iter().filter(|(i, _)| **i != self.index).map(|(i, r)| (*i, r.package.clone())).collect()
    }

    fn round2(&self, ledger: &DkgLedger) -> Result<(Round2Secret, BTreeMap<ShareIndex, Vec<u8>>), String> {
        let (secret, _) = self.round1().map_err(|e| e.to_string())?;
        dkg::round2(secret, &self.others_round1(ledger)).map_err(|e| e.to_string())
    }

    /// The next step, given the ledger.
    fn step(&self, view: &LedgerView) -> Result<Step, String> {
        if self.share.read().is_some() {
            return Ok(Step::Done);
        }
        if let Some(set) = &view.active {
            *self.status.write() = KeyStatus::Round2;
            let share = match self.load(set) {
                Some(share) => share,
                None => match self.finish(&view.dkg, set) {
                    Ok(share) => share,
                    Err(reason) => return self.complain_or_fail(&view.dkg, reason),
                },
            };
            *self.share.write() = Some(share);
            *self.status.write() = KeyStatus::Ready;
            info!(index = self.index, "key share ready; the consortium key is {}", hex::encode(set.collective));
            return Ok(Step::Done);
        }
        if !view.dkg.round1.contains_key(&self.index) {
            let (_, package) = self.round1().map_err(|e| e.to_string())?;
            return Ok(Step::Send(Box::new(Payload::DkgRound1(DkgRound1 {
                package,
                transport: self.transport().public(),
            }))));
        }
        if view.dkg.round1.len() < usize::from(self.n) {
            return Ok(Step::Wait);
        }
        *self.status.write() = KeyStatus::Round2;
        if view.dkg.round2.contains_key(&self.index) {
            return Ok(Step::Wait);
        }
        let (_, outgoing) = self.round2(&view.dkg)?;
        let mut rng = self.rng("round2-seal");
        let mut packages = Vec::with_capacity(outgoing.len());
        for (to, package) in &outgoing {
            let recipient = view.dkg.round1.get(to).map(|r| r.transport).ok_or("a recipient has no round-1 package")?;
            let sealed = dkg::seal_package(&self.chain, self.index, *to, &recipient, package, &mut rng)
                .map_err(|e| format!("sealing the package for validator {to}: {e}"))?;
            packages.push(SealedPackage { to: *to, sealed });
        }
        Ok(Step::Send(Box::new(Payload::DkgRound2(DkgRound2 { packages }))))
    }

    /// This validator could not finish: if a dealer's package to it is provably wrong, the next
    /// step is the complaint that proves it on chain (until the ledger records the culprit);
    /// otherwise, or once it is recorded, the protocol has failed here.
    fn complain_or_fail(&self, ledger: &DkgLedger, reason: String) -> Result<Step, String> {
        let transport = self.transport();
        let complaint =
            dkg::find_complaint(&self.chain, self.index, &transport, &ledger.round1, &ledger.round2, |from| {
                self.rng(&format!("complaint-against-{from}"))
            });
        match complaint {
            Some(c) => match ledger.culprits.get(&c.against) {
                None => Ok(Step::Send(Box::new(Payload::DkgComplaint(c)))),
                Some(p) => Err(format!(
                    "{reason}; validator {} is a proven culprit on chain (complaint by validator {} at height {}: {})",
                    c.against, p.by, p.height, p.reason
                )),
            },
            None => Err(reason),
        }
    }

    /// The sealed share on disk, if it opens and matches `set`.
    fn load(&self, set: &PublicKeySet) -> Option<KeyShare> {
        let sealed = std::fs::read(&self.path).ok()?;
        let mut at_rest = self.derive("at-rest");
        let opened = dkg::open_share(&self.chain, &sealed, &at_rest);
        zeroize::Zeroize::zeroize(&mut at_rest);
        match opened {
            Ok(share)
                if share.index() == self.index
                    && set.shares.get(usize::from(self.index) - 1) == Some(&share.public()) =>
            {
                Some(share)
            }
            Ok(_) => {
                warn!(path = %self.path.display(), "the sealed key share does not match the ledger's key set; remaking it from the chain");
                None
            }
            Err(e) => {
                warn!(path = %self.path.display(), error = %e, "the sealed key share does not open; remaking it from the chain");
                None
            }
        }
    }

    /// Finishes the protocol from the ledger, checks the result against it, and seals the share.
    fn finish(&self, ledger: &DkgLedger, set: &PublicKeySet) -> Result<KeyShare, String> {
        let (secret, _) = self.round2(ledger)?;
        let transport = self.transport();
        let mut mine = BTreeMap::new();
        for (from, r) in ledger.round2.iter().filter(|(from, _)| **from != self.index) {
            let sealed = r
                .packages
                .iter()
                .find(|p| p.to == self.index)
                .ok_or_else(|| format!("validator {from} sent no round-2 package to this one"))?;
            let package = dkg::open_package(&self.chain, *from, self.index, &transport, &sealed.sealed)
                .map_err(|e| format!("validator {from}: its round-2 package for this one: {e}"))?;
            mine.insert(*from, package);
        }
        let (share, ours) = dkg::finish(&secret, &self.others_round1(ledger), &mine).map_err(|e| e.to_string())?;
        if &ours != set {
            return Err("this validator's key set differs from the ledger's".into());
        }
        let mut at_rest = self.derive("at-rest");
        let sealed = dkg::seal_share(&self.chain, &share, &at_rest);
        zeroize::Zeroize::zeroize(&mut at_rest);
        write_atomically(&self.path, &sealed).map_err(|e| format!("cannot store {}: {e}", self.path.display()))?;
        Ok(share)
    }
}

/// Writes `bytes` to `path` through a temporary file, synced and renamed, mode 0600.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A validator's key-generation task: until its share is ready, looks at the ledger every
/// [`POLL`] and sends what its part of the protocol needs next. Returns when the share is ready,
/// when the protocol failed here (logged, and shown by `GET /v1/keys`), or when the node stops.
pub(crate) async fn run_key_generation(node: Arc<NodeShared>, service: Arc<KeyService>) {
    let mut interval = tokio::time::interval(POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_sent: Option<(&'static str, Instant)> = None;
    loop {
        interval.tick().await;
        let view = node
            .query(|core| {
                let s = core.state();
                LedgerView { dkg: s.dkg().clone(), active: s.key_set().cloned(), height: s.height() }
            })
            .await;
        let Some(view) = view else { return };
        let svc = service.clone();
        let step = match tokio::task::spawn_blocking(move || svc.step(&view).map(|s| (s, view.height))).await {
            Ok(step) => step,
            Err(_) => return,
        };
        match step {
            Ok((Step::Done, _)) => return,
            Ok((Step::Wait, _)) => {}
            Ok((Step::Send(payload), height)) => {
                let kind = payload.kind();
                if last_sent.is_some_and(|(k, at)| k == kind && at.elapsed() < RESEND_AFTER) {
                    continue;
                }
                let tx = TxBody {
                    sender: service.key.public(),
                    nonce: NONCE_OUTSIDE_SEQUENCE,
                    expiry_height: height + DKG_TX_VALID_BLOCKS,
                    payload: *payload,
                }
                .sign(node.genesis.chain_id(), &[&service.key]);
                let id = tx.id();
                match crate::api::submit(&node, vec![Ok(tx)]).await.pop() {
                    Some(Ok(_)) => debug!(%id, kind, "key generation: sent"),
                    Some(Err(e)) => {
                        debug!(%id, kind, error = %e.message, "key generation: not accepted now; will retry")
                    }
                    None => {}
                }
                last_sent = Some((kind, Instant::now()));
            }
            Err(reason) => {
                error!(
                    index = service.index,
                    %reason,
                    "key generation failed for this validator; the key set cannot be completed with its share: where \
                     the reason names a validator (a proven one is under `culprits` in GET /v1/keys), the consortium \
                     must start again from a new genesis without it"
                );
                *service.status.write() = KeyStatus::Failed(reason);
                return;
            }
        }
    }
}

fn key_set_json(set: &PublicKeySet) -> serde_json::Value {
    json!({
        "threshold": set.threshold,
        "collective": hex::encode(set.collective),
        "shares": set.shares.iter().map(hex::encode).collect::<Vec<_>>(),
    })
}

/// `GET /v1/keys`: the consortium key set (once active) and where the key generation stands.
pub(crate) async fn keys(State(node): State<Arc<NodeShared>>) -> Result<Response, ApiError> {
    let n = node.genesis.body.validators.len();
    let (round1, round2, active, culprits) = node
        .query(|core| {
            let s = core.state();
            (s.dkg().round1.len(), s.dkg().round2.len(), s.key_set().cloned(), s.dkg().culprits.clone())
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    let local = node.keys.as_ref().map(|k| json!({ "index": k.index(), "status": k.status() }));
    Ok(Json(json!({
        "validators": n,
        "threshold": dkg::consortium_threshold(n as u16),
        "round1": round1,
        "round2": round2,
        "active": active.is_some(),
        "key_set": active.as_ref().map(key_set_json),
        "culprits": culprits
            .iter()
            .map(|(index, p)| json!({ "index": index, "by": p.by, "height": p.height, "reason": p.reason }))
            .collect::<Vec<_>>(),
        "this_validator": local,
    }))
    .into_response())
}

fn bad_request(code: &'static str, message: String, field: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message, Some(field))
}

/// `POST /v1/reads/{id}/share`: this validator's decryption share for the committed
/// `ReadRequest` `id`, re-encrypted to its reader key, with its proof.
pub(crate) async fn read_share(
    State(node): State<Arc<NodeShared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: TxId = Digest::from_hex(&id)
        .map_err(|e| bad_request("malformed_id", format!("a ReadRequest id is 64 hex characters: {e}"), "id"))?;
    if node.role != Role::Validator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_a_validator",
            "this node is an auditor and holds no key share; ask the validators",
            None,
        ));
    }
    let keys = node.keys.clone();
    let share = keys.as_ref().and_then(|k| k.share()).ok_or_else(|| {
        let status = node.keys.as_ref().map(|k| k.status());
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "key_share_unavailable",
            format!("this validator's key share is not ready ({status:?}); see GET /v1/keys"),
            None,
        )
    })?;
    let found = node
        .query(move |core| {
            let s = core.state();
            let read = s.read_request(&id)?.clone();
            let record = s.record(&read.request.record)?.clone();
            Some((read, record, s.key_set().cloned(), s.height()))
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    let Some((read, record, Some(_set), _)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "read_not_committed",
            format!(
                "no applied ReadRequest {id} on this validator's chain: wait until it commits \
                 (GET /v1/transactions/{id}); a refused request is never served"
            ),
            Some("id"),
        ));
    };
    // Only a read committed on this chain is ever served, from the cache or not; a committed
    // read stays committed, so its share stays the right answer.
    if let Some(made) = keys.as_ref().and_then(|k| k.made.lock().get(&id)) {
        return Ok(share_response(&node, &made));
    }
    let key = EncryptedKey::from_bytes(&record.anchor.encrypted_data_key).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_encrypted_key",
            format!(
                "record {}: its encrypted data key is unusable ({e}); the writer must re-anchor it",
                record.anchor.record_id
            ),
            None,
        )
    })?;
    let chain = node.genesis.chain_id().clone();
    let made = tokio::task::spawn_blocking(move || {
        let ctx = ShareContext {
            chain: &chain,
            record: &record.anchor.record_id,
            request: &id,
            reader: &read.request.reader_key,
            key: &key,
        };
        threshold::decryption_share(&share, &ctx, &mut rand::rngs::OsRng)
    })
    .await
    .map_err(|_| ApiError::unavailable())?;
    let share = made.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_encrypted_key",
            format!("no share for this record's key: {e}"),
            None,
        )
    })?;
    if let Some(k) = &keys {
        k.made.lock().insert(id, share.clone());
    }
    Ok(share_response(&node, &share))
}

fn share_response(node: &NodeShared, share: &ReencryptedShare) -> Response {
    node.metrics.read_shares.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Json(json!({ "index": share.index, "share": hex::encode(codec::encode(share)) })).into_response()
}

fn parse_key(text: &str) -> Result<PublicKey, ApiError> {
    PublicKey::from_hex(text)
        .map_err(|e| bad_request("malformed_key", format!("a public key is 64 hex characters: {e}"), "key"))
}

/// `GET /v1/records/{id}`: an anchored record as committed.
pub(crate) async fn record(State(node): State<Arc<NodeShared>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = Digest::from_hex(&id)
        .map_err(|e| bad_request("malformed_id", format!("a record id is 64 hex characters: {e}"), "id"))?;
    let found = node
        .query(move |core| {
            let s = core.state();
            s.record(&id).map(|r| (r.clone(), s.current_owner(&r.anchor.owner)))
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    let Some((r, owner)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_record",
            format!("record {id} is not on this chain"),
            Some("id"),
        ));
    };
    let a = &r.anchor;
    Ok(Json(json!({
        "record_id": a.record_id, "owner": a.owner, "current_owner": owner, "author": a.author,
        "hospital": a.hospital, "data_type": a.data_type, "created_at_ms": a.created_at_ms,
        "ciphertext_digest": a.ciphertext_digest, "ciphertext_len": a.ciphertext_len,
        "blob_locator": a.blob_locator, "encrypted_data_key": hex::encode(&a.encrypted_data_key),
        "epoch": a.epoch, "labels": a.index_labels.len(), "tx": r.tx, "height": r.height,
    }))
    .into_response())
}

/// `GET /v1/patients/{key}/audit`: every anchoring, grant, revocation, key rotation and read
/// of a patient's records, oldest first, with the patient's grants and their state.
pub(crate) async fn audit(State(node): State<Arc<NodeShared>>, Path(key): Path<String>) -> Result<Response, ApiError> {
    let key = parse_key(&key)?;
    let found = node
        .query(move |core| {
            let s = core.state();
            let p = s.participant(&key)?;
            if p.role != engine::tx::Role::Patient {
                return Some(Err(p.role));
            }
            let current = s.current_owner(&key);
            let name = |k: &PublicKey| s.participant(k).map(|p| p.name.clone());
            let events: Vec<serde_json::Value> = s
                .audit_trail(&key)
                .iter()
                .map(|e| {
                    json!({
                        "height": e.height, "timestamp_ms": e.timestamp_ms, "tx": e.tx,
                        "actor": e.actor, "actor_name": name(&e.actor), "action": e.action,
                    })
                })
                .collect();
            let grants: Vec<serde_json::Value> = s
                .grants_of(&key)
                .into_iter()
                .map(|(id, g)| {
                    json!({
                        "grant": id, "grantee": g.grant.grantee, "grantee_name": name(&g.grant.grantee),
                        "scope": g.grant.scope, "purpose": g.grant.purpose, "expires_at_ms": g.grant.expires_at_ms,
                        "height": g.height, "revoked_at": g.revoked_at,
                        "expired": g.grant.expires_at_ms <= s.timestamp_ms(),
                    })
                })
                .collect();
            Some(Ok(json!({
                "patient": key, "current_key": current, "height": s.height(),
                "records": s.records_of(&key).len(), "grants": grants, "events": events,
            })))
        })
        .await
        .ok_or_else(ApiError::unavailable)?;
    match found {
        Some(Ok(v)) => Ok(Json(v).into_response()),
        Some(Err(role)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_a_patient",
            format!("{key} is enrolled as {role:?}; audit trails belong to patients"),
            Some("key"),
        )),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_participant",
            format!("{key} is not enrolled on this chain"),
            Some("key"),
        )),
    }
}
