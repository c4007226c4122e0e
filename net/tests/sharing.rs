//! Record sharing on four validators over real QUIC on loopback, each with a redb chain in a temp
//! folder (DESIGN §7): the distributed key generation runs through the chain at start; a record
//! whose data key is encrypted to the collective key is read by a grantee who collects decryption
//! shares from the validators; fewer than t shares, a wrong share, a replayed or uncovered read, a
//! revoked or expired grant are all refused and never served; the patient's audit trail shows it
//! all in order; and with f = 1 validator stopped a read still commits and decrypts.
//!
//! One cluster for the whole file (CI has two cores): the phases run in order in one test, the
//! stopped validator last, so every other phase runs with all four up.

mod common;

use common::{base, get_json, node_files, post_json, Consortium};
use engine::codec::{self, Digest};
use engine::crypto::{ChainId, SigningKey};
use engine::dkg::{self, SealError};
use engine::envelope::{self, BlobRef, DataKey, DATA_KEY_LEN, NONCE_LEN};
use engine::threshold::{
    combine, encrypt_key, DhSecret, EncryptedKey, PublicKeySet, ReencryptedShare, ShareContext, ThresholdError,
};
use engine::tx::{
    AnchorRecord, Enroll, Grant, GrantScope, Payload, ReadRequest, Revoke, Role, Transaction, TxBody, TxId,
};
use net::blobs::BlobStore;
use net::driver::now_ms;
use net::{Node, NodeConfig, NodeHandle, PeerConfig};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);
const VALIDATORS: usize = 4;
/// n = 4, f = 1: the consortium threshold is t = 2f + 1 = 3, so f validators down do not stop a
/// read and f + 1 withholding their shares do.
const THRESHOLD: usize = 3;

/// Polls `check` until it gives `Some`, or fails naming `what` after [`WAIT`].
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {WAIT:?} waiting for: {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The people of the scenario.
struct People {
    /// Validator 0, as the hospital that enrols the doctors and the patient.
    hospital: SigningKey,
    doctor: SigningKey,
    patient: SigningKey,
    /// The grantee, a researcher enrolled by the CA.
    researcher: SigningKey,
    /// A doctor of another hospital, outside every grant.
    outsider: SigningKey,
}

/// A record as its writer made it: the body stays here, only the sealed blob leaves.
struct Written {
    id: Digest,
    body: Vec<u8>,
}

struct Cluster {
    c: Consortium,
    dir: tempfile::TempDir,
    http: reqwest::Client,
    nodes: Vec<Option<NodeHandle>>,
    nonces: HashMap<engine::crypto::PublicKey, u64>,
    fillers: u32,
}

impl Cluster {
    /// Starts four validators (each dials the ones after it) and waits until they are connected.
    async fn start() -> Cluster {
        let c = Consortium::new(VALIDATORS, 0);
        let dir = tempfile::tempdir().unwrap();
        let mut nodes: Vec<Option<NodeHandle>> = (0..VALIDATORS).map(|_| None).collect();
        for i in (0..VALIDATORS).rev() {
            let mut config: NodeConfig = node_files(&c, dir.path(), i, 0);
            for (j, n) in nodes.iter().enumerate().skip(i + 1) {
                if let Some(n) = n {
                    config.peers.push(PeerConfig { name: c.names[j].clone(), addr: n.p2p_addr() });
                }
            }
            nodes[i] = Some(Node::start(config).await.unwrap());
        }
        let cluster = Cluster { c, dir, http: reqwest::Client::new(), nodes, nonces: HashMap::new(), fillers: 0 };
        let nodes = &cluster.nodes;
        poll("all validators to connect", || async move {
            nodes
                .iter()
                .flatten()
                .all(|n| n.metrics().peers_connected.load(Ordering::Relaxed) == VALIDATORS as u64 - 1)
                .then_some(())
        })
        .await;
        cluster
    }

    fn node(&self, i: usize) -> &NodeHandle {
        self.nodes[i].as_ref().unwrap_or_else(|| panic!("node{i} is stopped"))
    }

    fn url(&self, i: usize, path: &str) -> String {
        format!("{}{path}", base(self.node(i).http_addr()))
    }

    fn live(&self) -> Vec<usize> {
        (0..VALIDATORS).filter(|i| self.nodes[*i].is_some()).collect()
    }

    fn data_dir(&self, i: usize) -> std::path::PathBuf {
        self.dir.path().join(format!("{}-data", self.c.names[i]))
    }

    fn chain(&self) -> &ChainId {
        &self.c.chain_id
    }

    /// Signs `payload` from `sender` (co-signed by `cosigners`) with the sender's next nonce.
    fn sign(&mut self, sender: &SigningKey, cosigners: &[&SigningKey], payload: Payload) -> Transaction {
        let nonce = self.nonces.entry(sender.public()).or_insert(0);
        *nonce += 1;
        let body = TxBody { sender: sender.public(), nonce: *nonce, expiry_height: 1_000_000, payload };
        let keys: Vec<&SigningKey> = std::iter::once(sender).chain(cosigners.iter().copied()).collect();
        body.sign(self.chain(), &keys)
    }

    /// `POST /v1/transactions` to node `i`.
    async fn post_tx(&self, i: usize, tx: &Transaction) -> (u16, Value) {
        post_json(&self.http, &self.url(i, "/v1/transactions"), &json!({ "tx": hex::encode(tx.encode()) })).await
    }

    /// `GET /v1/transactions/{id}` on node `i`.
    async fn tx_status(&self, i: usize, id: &TxId) -> Value {
        get_json(&self.http, &self.url(i, &format!("/v1/transactions/{}", id.to_hex()))).await.1
    }

    /// Waits until node `i` knows the fate of `id` (committed or rejected) and returns it.
    /// On a timeout, says where every live node stands and what each knows of `id`.
    async fn outcome(&self, i: usize, id: &TxId) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.tx_status(i, id).await;
            if s["status"] == "committed" || s["status"] == "rejected" {
                return s;
            }
            if Instant::now() >= deadline {
                let mut seen = Vec::new();
                for j in self.live() {
                    let (_, st) = get_json(&self.http, &self.url(j, "/v1/status")).await;
                    let tx = self.tx_status(j, id).await;
                    seen.push(format!(
                        "node{j}: height {} view {} primary {} view_changing {} pending {}; tx: {tx}",
                        st["height"], st["view"], st["primary"], st["view_changing"], st["pending_txs"]
                    ));
                }
                panic!("timed out after {WAIT:?} waiting for node{i} to decide {}:\n{}", id.to_hex(), seen.join("\n"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The node that is primary now, as node 0 sees it (any live node when it says nothing).
    async fn primary(&self) -> usize {
        let i = self.live()[0];
        let (_, s) = get_json(&self.http, &self.url(i, "/v1/status")).await;
        s["primary"].as_u64().map(|p| p as usize).filter(|p| self.nodes[*p].is_some()).unwrap_or(i)
    }

    /// Submits `txs` in one batch to the primary, and waits until every live validator has
    /// applied each of them; returns their heights.
    async fn commit_all(&self, txs: &[Transaction]) -> Vec<u64> {
        let to = self.primary().await;
        let body = json!({ "txs": txs.iter().map(|t| hex::encode(t.encode())).collect::<Vec<_>>() });
        let (code, body) = post_json(&self.http, &self.url(to, "/v1/transactions/batch"), &body).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["accepted"], txs.len(), "{body}");
        let mut heights = Vec::new();
        for tx in txs {
            let mut height = None;
            for i in self.live() {
                let s = self.outcome(i, &tx.id()).await;
                assert_eq!(s["status"], "committed", "{:?} on node{i}: {s}", tx.body.payload.kind());
                height = s["height"].as_u64();
            }
            heights.push(height.unwrap());
        }
        heights
    }

    async fn commit(&self, tx: &Transaction) -> u64 {
        self.commit_all(std::slice::from_ref(tx)).await[0]
    }

    /// The timestamp of the block at `height` on node `i`.
    async fn block_timestamp(&self, i: usize, height: u64) -> u64 {
        let (code, b) = get_json(&self.http, &self.url(i, &format!("/v1/blocks/{height}"))).await;
        assert_eq!(code, 200, "{b}");
        b["block"]["header"]["timestamp_ms"].as_u64().unwrap_or_else(|| panic!("no timestamp in {b}"))
    }

    async fn keys(&self, i: usize) -> Value {
        let (code, k) = get_json(&self.http, &self.url(i, "/v1/keys")).await;
        assert_eq!(code, 200, "{k}");
        k
    }

    /// `POST /v1/reads/{id}/share` on node `i`.
    async fn share(&self, i: usize, read: &TxId) -> (u16, Value) {
        post_json(&self.http, &self.url(i, &format!("/v1/reads/{}/share", read.to_hex())), &json!({})).await
    }

    /// The shares of validators `from` for the committed read `read`; each is checked to come
    /// from the validator asked.
    async fn shares(&self, from: &[usize], read: &TxId) -> Vec<ReencryptedShare> {
        let mut out = Vec::new();
        for &i in from {
            let (code, body) = self.share(i, read).await;
            assert_eq!(code, 200, "node{i}: {body}");
            let bytes = hex::decode(body["share"].as_str().unwrap()).unwrap();
            let share: ReencryptedShare = codec::decode(&bytes, 1024).unwrap();
            assert_eq!(usize::from(share.index), i + 1, "node{i} answered with another index: {body}");
            assert_eq!(body["index"], i + 1, "{body}");
            out.push(share);
        }
        out
    }

    /// Every live validator refuses a share for `read` with 404 `read_not_committed`.
    async fn no_share_anywhere(&self, read: &TxId, why: &str) {
        for i in self.live() {
            let (code, body) = self.share(i, read).await;
            assert_eq!(code, 404, "{why}: node{i} served a share: {body}");
            assert_eq!(body["error"]["code"], "read_not_committed", "{why}: node{i}: {body}");
        }
    }

    /// Submits a transaction that must be refused, at submission or in its block, with a reason
    /// containing `needle`; a read's id then gets no share from any validator. Returns the
    /// outcome (with a `height` when it was refused in a block).
    async fn expect_rejected(&self, tx: &Transaction, needle: &str) -> Value {
        let to = self.primary().await;
        let (code, posted) = self.post_tx(to, tx).await;
        assert!(code == 202 || code == 422, "{:?}: {code} {posted}", tx.body.payload.kind());
        if code == 422 {
            assert!(posted["error"]["message"].as_str().unwrap().contains(needle), "{posted}");
        }
        let s = self.outcome(to, &tx.id()).await;
        assert_eq!(s["status"], "rejected", "{s}");
        assert!(s["reason"].as_str().unwrap().contains(needle), "expected a reason with {needle:?}: {s}");
        if s["height"].is_u64() {
            // Refused in a block: every validator has the block before it is asked.
            for i in self.live() {
                assert_eq!(self.outcome(i, &tx.id()).await["status"], "rejected");
            }
        }
        if matches!(tx.body.payload, Payload::ReadRequest(_)) {
            self.no_share_anywhere(&tx.id(), needle).await;
        }
        s
    }

    /// Enrols a fresh patient from the hospital: a transaction that commits, to make blocks.
    fn filler(&mut self, hospital: &SigningKey) -> Transaction {
        self.fillers += 1;
        let mut seed = [0xf1; 32];
        seed[..4].copy_from_slice(&self.fillers.to_be_bytes());
        let key = SigningKey::from_seed(seed).public();
        let name = format!("filler-{}", self.fillers);
        self.sign(hospital, &[], Payload::Enroll(Enroll { key, role: Role::Patient, name }))
    }
}

fn key_set_of(keys: &Value) -> PublicKeySet {
    let set = &keys["key_set"];
    let arr = |v: &Value| -> [u8; 32] { hex::decode(v.as_str().unwrap()).unwrap().try_into().unwrap() };
    PublicKeySet {
        threshold: set["threshold"].as_u64().unwrap() as u16,
        collective: arr(&set["collective"]),
        shares: set["shares"].as_array().unwrap().iter().map(arr).collect(),
    }
}

/// A reader's request and its fresh decryption key.
struct Read {
    tx: Transaction,
    secret: DhSecret,
}

impl Read {
    fn id(&self) -> TxId {
        self.tx.id()
    }
}

fn read_request(cl: &mut Cluster, reader: &SigningKey, record: &Digest, grant: Option<TxId>) -> Read {
    let secret = DhSecret::random(&mut OsRng);
    let request = ReadRequest { record: *record, grant, reader_key: secret.public() };
    Read { tx: cl.sign(reader, &[], Payload::ReadRequest(request)), secret }
}

/// What the chain says of a record: its encrypted data key and where and what its blob is.
async fn anchored(cl: &Cluster, record: &Digest) -> (EncryptedKey, BlobRef, String) {
    let (code, r) = get_json(&cl.http, &cl.url(cl.live()[0], &format!("/v1/records/{}", record.to_hex()))).await;
    assert_eq!(code, 200, "{r}");
    let key = EncryptedKey::from_bytes(&hex::decode(r["encrypted_data_key"].as_str().unwrap()).unwrap()).unwrap();
    let blob = BlobRef {
        digest: Digest::from_hex(r["ciphertext_digest"].as_str().unwrap()).unwrap(),
        len: r["ciphertext_len"].as_u64().unwrap(),
    };
    (key, blob, r["blob_locator"].as_str().unwrap().to_owned())
}

/// The reader's side: combines `shares` for `read` of `record` into the data key.
async fn combine_for(
    cl: &Cluster,
    set: &PublicKeySet,
    record: &Digest,
    read: &Read,
    shares: &[ReencryptedShare],
) -> Result<DataKey, ThresholdError> {
    let (key, _, _) = anchored(cl, record).await;
    let (request, reader) = (read.id(), read.secret.public());
    let ctx = ShareContext { chain: cl.chain(), record, request: &request, reader: &reader, key: &key };
    combine(set, &ctx, &read.secret, shares)
}

/// The reader's side, all of it: shares from `from`, combined, the blob fetched and opened.
async fn read_body(
    cl: &Cluster,
    set: &PublicKeySet,
    store: &BlobStore,
    record: &Digest,
    read: &Read,
    from: &[usize],
) -> Vec<u8> {
    let shares = cl.shares(from, &read.id()).await;
    let key = combine_for(cl, set, record, read, &shares).await.unwrap();
    let (_, blob_ref, locator) = anchored(cl, record).await;
    let blob = store.get(record, &locator, &blob_ref).await.unwrap();
    envelope::open(&key, record, &blob_ref, &blob).unwrap()
}

/// 1. Every validator finishes the key generation with the same key set, and keeps its share
///    sealed in its data folder.
async fn key_generation_completes_with_one_key_set(cl: &Cluster) -> PublicKeySet {
    let mut sets = Vec::new();
    for i in 0..VALIDATORS {
        let keys = poll(&format!("node{i} to finish the key generation"), || async move {
            let k = cl.keys(i).await;
            let status = &k["this_validator"]["status"];
            assert!(status.get("failed").is_none(), "node{i}: key generation failed: {k}");
            (k["active"] == true && status == "ready").then_some(k)
        })
        .await;
        assert_eq!(keys["this_validator"]["index"], i + 1, "{keys}");
        assert_eq!(keys["validators"], VALIDATORS, "{keys}");
        assert_eq!(keys["round1"], VALIDATORS, "{keys}");
        assert_eq!(keys["round2"], VALIDATORS, "{keys}");
        sets.push(key_set_of(&keys));
    }
    let set = sets[0].clone();
    assert!(sets.iter().all(|s| *s == set), "validators disagree on the key set: {sets:?}");
    assert_eq!(usize::from(set.threshold), THRESHOLD);
    assert_eq!(dkg::consortium_threshold(VALIDATORS as u16), set.threshold);
    assert_eq!(set.shares.len(), VALIDATORS);
    set.check().unwrap();
    let mut distinct = set.shares.clone();
    distinct.push(set.collective);
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), VALIDATORS + 1, "public shares and collective key must all differ");

    let mut files = Vec::new();
    for i in 0..VALIDATORS {
        let path = cl.data_dir(i).join(net::sharing::SHARE_FILE);
        let sealed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // index (2) ‖ SIV tag (16) ‖ the 32-byte share, encrypted.
        assert_eq!(sealed.len(), 50, "{}", path.display());
        assert_eq!(u16::from_be_bytes([sealed[0], sealed[1]]), i as u16 + 1);
        for wrong in [[0u8; 64], [0xa5; 64]] {
            assert!(
                matches!(dkg::open_share(cl.chain(), &sealed, &wrong), Err(SealError::Authentication { .. })),
                "{}: the sealed share opens with a wrong at-rest key",
                path.display()
            );
        }
        assert!(!path.with_extension("tmp").exists(), "a temporary share file was left behind");
        files.push(sealed);
    }
    files.sort();
    files.dedup();
    assert_eq!(files.len(), VALIDATORS, "two validators stored the same sealed bytes");
    set
}

/// Enrols the people: doctor, patient and outsider by hospitals, the researcher by the CA.
async fn enrol_people(cl: &mut Cluster) -> People {
    let people = People {
        hospital: cl.c.keys[0].clone(),
        doctor: SigningKey::from_seed([101; 32]),
        patient: SigningKey::from_seed([102; 32]),
        researcher: SigningKey::from_seed([103; 32]),
        outsider: SigningKey::from_seed([104; 32]),
    };
    let enroll =
        |key: &SigningKey, role, name: &str| Payload::Enroll(Enroll { key: key.public(), role, name: name.to_owned() });
    let (h0, h1, ca) = (cl.c.keys[0].clone(), cl.c.keys[1].clone(), cl.c.ca.clone());
    let txs = vec![
        cl.sign(&h0, &[], enroll(&people.doctor, Role::Doctor, "dr-house")),
        cl.sign(&h0, &[], enroll(&people.patient, Role::Patient, "patient-p")),
        cl.sign(&h1, &[], enroll(&people.outsider, Role::Doctor, "dr-outsider")),
        cl.sign(&ca, &[], enroll(&people.researcher, Role::Researcher, "researcher-r")),
    ];
    cl.commit_all(&txs).await;
    people
}

/// The doctor writes a record: body sealed under a fresh data key, the blob stored, the data key
/// encrypted to the collective key, the anchor co-signed by the patient.
async fn write_record(cl: &mut Cluster, set: &PublicKeySet, store: &BlobStore, p: &People) -> Written {
    let mut id = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    let id = Digest(id);
    let mut key = [0u8; DATA_KEY_LEN];
    OsRng.fill_bytes(&mut key);
    let key = DataKey::from_bytes(key);
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let body = br#"{"resourceType":"Condition","code":"E11.9","note":"type 2 diabetes"}"#.to_vec();
    let blob = envelope::seal(&key, &nonce, &id, &body).unwrap();
    let blob_ref = BlobRef::of(&blob);
    let locator = store.put(&id, &blob).await.unwrap();
    let encrypted = encrypt_key(set, cl.chain(), &id, &key, &mut OsRng).unwrap();
    let anchor = AnchorRecord {
        record_id: id,
        owner: p.patient.public(),
        author: p.doctor.public(),
        hospital: p.hospital.public(),
        data_type: "Condition".into(),
        created_at_ms: now_ms(),
        ciphertext_digest: blob_ref.digest,
        ciphertext_len: blob_ref.len,
        blob_locator: locator,
        encrypted_data_key: encrypted.to_bytes(),
        index_labels: vec![],
        epoch: 0,
    };
    let (doctor, patient) = (p.doctor.clone(), p.patient.clone());
    let tx = cl.sign(&doctor, &[&patient], Payload::AnchorRecord(anchor));
    cl.commit(&tx).await;
    assert!(!blob.windows(body.len()).any(|w| w == body.as_slice()), "the blob holds the body in clear");
    Written { id, body }
}

fn grant(cl: &mut Cluster, p: &People, record: &Digest, expires_at_ms: u64) -> Transaction {
    let g = Grant {
        grantee: p.researcher.public(),
        scope: GrantScope::Records(vec![*record]),
        purpose: "diabetes cohort study".into(),
        expires_at_ms,
    };
    let patient = p.patient.clone();
    cl.sign(&patient, &[], Payload::Grant(g))
}

const AN_HOUR_MS: u64 = 3_600_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn record_sharing_refusals_and_availability_on_four_validators() {
    let started = Instant::now();
    let mut cl = Cluster::start().await;
    let blobs = tempfile::tempdir().unwrap();
    let store = BlobStore::local(blobs.path()).unwrap();

    // 1. Key generation.
    let set = key_generation_completes_with_one_key_set(&cl).await;

    // 2. A full read by a grantee.
    let p = enrol_people(&mut cl).await;
    let record = write_record(&mut cl, &set, &store, &p).await;
    let grant1 = grant(&mut cl, &p, &record.id, now_ms() + AN_HOUR_MS);
    cl.commit(&grant1).await;
    let researcher = p.researcher.clone();
    let read1 = read_request(&mut cl, &researcher, &record.id, Some(grant1.id()));
    cl.commit(&read1.tx).await;
    let all: Vec<usize> = (0..VALIDATORS).collect();
    let shares = cl.shares(&all, &read1.id()).await;
    {
        let (key, _, _) = anchored(&cl, &record.id).await;
        let (request, reader) = (read1.id(), read1.secret.public());
        let ctx = ShareContext { chain: cl.chain(), record: &record.id, request: &request, reader: &reader, key: &key };
        for s in &shares {
            s.verify(&set, &ctx).unwrap_or_else(|e| panic!("validator {}'s share: {e}", s.index));
        }
    }
    assert_eq!(read_body(&cl, &set, &store, &record.id, &read1, &all).await, record.body);
    // Any t of the four shares give the same key.
    let mut keys = Vec::new();
    for skip in 0..VALIDATORS {
        let three: Vec<ReencryptedShare> =
            shares.iter().filter(|s| usize::from(s.index) != skip + 1).cloned().collect();
        keys.push(combine_for(&cl, &set, &record.id, &read1, &three).await.unwrap());
    }
    assert!(keys.windows(2).all(|w| w[0] == w[1]), "different subsets of shares gave different keys");
    // The shares are the reader's: another reader key cannot use them.
    let stranger = Read { tx: read1.tx.clone(), secret: DhSecret::random(&mut OsRng) };
    assert!(matches!(
        combine_for(&cl, &set, &record.id, &stranger, &shares).await,
        Err(ThresholdError::NotEnoughShares { valid: 0, .. })
    ));

    // The owner reads their own record the same way, with no grant.
    let patient = p.patient.clone();
    let own = read_request(&mut cl, &patient, &record.id, None);
    cl.commit(&own.tx).await;
    assert_eq!(read_body(&cl, &set, &store, &record.id, &own, &[3, 1, 2]).await, record.body);

    // 4. f + 1 = 2 validators withhold: the two that answer are not enough; one alone gives nothing.
    let two = cl.shares(&[0, 2], &read1.id()).await;
    // A validator asked again serves the share it made, not a new one.
    assert_eq!((&two[0], &two[1]), (&shares[0], &shares[2]), "a repeated request gets the same share");
    assert_eq!(
        combine_for(&cl, &set, &record.id, &read1, &two).await.unwrap_err(),
        ThresholdError::NotEnoughShares { valid: 2, needed: THRESHOLD, bad: vec![] }
    );
    assert_eq!(
        combine_for(&cl, &set, &record.id, &read1, &two[..1]).await.unwrap_err(),
        ThresholdError::NotEnoughShares { valid: 1, needed: THRESHOLD, bad: vec![] }
    );
    // Asking one validator twice does not make two shares.
    let twice = vec![two[0].clone(), two[0].clone(), two[1].clone()];
    assert!(matches!(
        combine_for(&cl, &set, &record.id, &read1, &twice).await,
        Err(ThresholdError::NotEnoughShares { valid: 2, .. })
    ));

    // 5. A wrong share is named by its index: a flipped byte of E, or of a proof response.
    {
        let (key, _, _) = anchored(&cl, &record.id).await;
        let (request, reader) = (read1.id(), read1.secret.public());
        let ctx = ShareContext { chain: cl.chain(), record: &record.id, request: &request, reader: &reader, key: &key };
        for (which, flip) in [("E", 0usize), ("s", 1)] {
            let mut bad = shares.clone();
            let named = bad[1].index;
            if flip == 0 {
                bad[1].e[7] ^= 0x10;
            } else {
                bad[1].s[0][3] ^= 0x01;
            }
            assert_eq!(bad[1].verify(&set, &ctx), Err(ThresholdError::BadShareProof { index: named }), "{which}");
            // With only t shares, one of them wrong: refused, naming it.
            let e = combine(&set, &ctx, &read1.secret, &bad[..THRESHOLD]).unwrap_err();
            assert_eq!(e, ThresholdError::NotEnoughShares { valid: 2, needed: THRESHOLD, bad: vec![named] }, "{which}");
            assert!(e.to_string().contains(&format!("[{named}]")), "{e}");
            // With a fourth, good one: the wrong one is skipped and the key recovered.
            assert_eq!(combine(&set, &ctx, &read1.secret, &bad).unwrap(), keys[0], "{which}");
        }
    }

    // 6a. A replayed ReadRequest is refused: the same signed transaction, and a re-signed copy
    // with the same nonce and a new reader key.
    for i in [0, 2] {
        let (code, body) = cl.post_tx(i, &read1.tx).await;
        assert_eq!(code, 409, "node{i}: {body}");
        assert_eq!(body["error"]["code"], "duplicate", "{body}");
    }
    let stale = {
        let mut body = read1.tx.body.clone();
        let secret = DhSecret::random(&mut OsRng);
        if let Payload::ReadRequest(r) = &mut body.payload {
            r.reader_key = secret.public();
        }
        Read { tx: body.sign(cl.chain(), &[&researcher]), secret }
    };
    let s = cl.expect_rejected(&stale.tx, "does not advance").await;
    assert_eq!(s["code"], "stale_nonce", "{s}");

    // 6b. Someone outside the grant, using its id, is refused and served nothing.
    let outsider = p.outsider.clone();
    let uncovered = read_request(&mut cl, &outsider, &record.id, Some(grant1.id()));
    cl.expect_rejected(&uncovered.tx, "not given to the sender").await;
    let ownerless = read_request(&mut cl, &outsider, &record.id, None);
    cl.expect_rejected(&ownerless.tx, "only the record's owner").await;

    // 6c. Revocation. A read admitted together with the revocation, but ordered after it in the
    // chain, is included and refused in its block: no validator serves it.
    let revoke = cl.sign(&patient, &[], Payload::Revoke(Revoke { grant: grant1.id() }));
    let racing = read_request(&mut cl, &researcher, &record.id, Some(grant1.id()));
    {
        let to = cl.primary().await;
        let body = json!({ "txs": [hex::encode(revoke.encode()), hex::encode(racing.tx.encode())] });
        let (code, body) = post_json(&cl.http, &cl.url(to, "/v1/transactions/batch"), &body).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["accepted"], 2, "both are valid before the revocation commits: {body}");
    }
    for i in cl.live() {
        assert_eq!(cl.outcome(i, &revoke.id()).await["status"], "committed");
    }
    let s = cl.expect_rejected(&racing.tx, "revoked").await;
    assert!(s["height"].is_u64(), "the racing read was to be refused in a block: {s}");
    // After the revocation the next read is refused outright.
    let after = read_request(&mut cl, &researcher, &record.id, Some(grant1.id()));
    cl.expect_rejected(&after.tx, "revoked").await;
    // The read made before the revocation is still served (it was covered when it committed).
    assert_eq!(cl.shares(&[1], &read1.id()).await.len(), 1);

    // 6d. Expiry: a grant that ends shortly; once a block's time is past it, reads are refused.
    // A block's time moves only when a block commits, so the chain is kept busy with blocks of
    // enrolments until one is stamped past the expiry; the test waits on committed blocks, not
    // on the clock.
    let expires = now_ms() + 1_500;
    let grant2 = grant(&mut cl, &p, &record.id, expires);
    cl.commit(&grant2).await;
    let hospital = p.hospital.clone();
    let deadline = Instant::now() + WAIT;
    loop {
        let filler = cl.filler(&hospital);
        let height = cl.commit(&filler).await;
        if cl.block_timestamp(cl.live()[0], height).await > expires {
            break;
        }
        assert!(Instant::now() < deadline, "no block past the grant's expiry after {WAIT:?}");
    }
    let late = read_request(&mut cl, &researcher, &record.id, Some(grant2.id()));
    cl.expect_rejected(&late.tx, "expired").await;

    // 7. The audit trail: the anchoring, the grant, the grantee's read (naming its reader), the
    // owner's own read, the revocation, the second grant, in order; none of the refused reads;
    // the same on every validator.
    let patient_hex = p.patient.public().to_hex();
    let (code, audit) = get_json(&cl.http, &cl.url(0, &format!("/v1/patients/{patient_hex}/audit"))).await;
    assert_eq!(code, 200, "{audit}");
    let events = audit["events"].as_array().unwrap().clone();
    let kinds: Vec<&str> =
        events.iter().map(|e| e["action"].as_object().unwrap().keys().next().unwrap().as_str()).collect();
    assert_eq!(kinds, ["anchored", "granted", "read", "read", "revoked", "granted"], "{audit}");
    let (anchor_ev, granted, read, own_read, revoked, granted2) =
        (&events[0], &events[1], &events[2], &events[3], &events[4], &events[5]);
    assert_eq!(anchor_ev["action"]["anchored"]["record"], record.id.to_hex());
    assert_eq!(anchor_ev["actor"], p.doctor.public().to_hex());
    assert_eq!(granted["tx"], grant1.id().to_hex());
    assert_eq!(granted["actor"], patient_hex);
    assert_eq!(granted["action"]["granted"]["grantee"], researcher.public().to_hex());
    assert_eq!(read["tx"], read1.id().to_hex());
    assert_eq!(read["actor"], researcher.public().to_hex(), "the read names its reader");
    assert_eq!(read["actor_name"], "researcher-r");
    assert_eq!(read["action"]["read"]["record"], record.id.to_hex());
    assert_eq!(read["action"]["read"]["grant"], grant1.id().to_hex());
    assert_eq!(own_read["tx"], own.id().to_hex());
    assert_eq!(own_read["actor"], patient_hex);
    assert!(own_read["action"]["read"]["grant"].is_null(), "{audit}");
    assert_eq!(revoked["tx"], revoke.id().to_hex());
    assert_eq!(revoked["action"]["revoked"]["grant"], grant1.id().to_hex());
    assert_eq!(granted2["tx"], grant2.id().to_hex());
    let heights: Vec<u64> = events.iter().map(|e| e["height"].as_u64().unwrap()).collect();
    assert!(heights.windows(2).all(|w| w[0] <= w[1]), "events out of order: {heights:?}");
    let grants = audit["grants"].as_array().unwrap();
    let state_of = |id: &TxId| grants.iter().find(|g| g["grant"] == id.to_hex()).unwrap_or_else(|| panic!("{audit}"));
    assert!(state_of(&grant1.id())["revoked_at"].is_u64(), "{audit}");
    assert_eq!(state_of(&grant2.id())["expired"], true, "{audit}");
    assert!(state_of(&grant2.id())["revoked_at"].is_null(), "{audit}");
    for i in 1..VALIDATORS {
        let (_, other) = get_json(&cl.http, &cl.url(i, &format!("/v1/patients/{patient_hex}/audit"))).await;
        assert_eq!(other["events"], audit["events"], "node{i}'s audit trail differs from node0's");
    }

    // 3. Availability: with f = 1 validator stopped (one that is not the primary, so no view
    // change is needed), a new grant and read commit, and the three remaining shares decrypt.
    let primary = cl.primary().await;
    let down = (0..VALIDATORS).rev().find(|i| *i != primary).unwrap();
    cl.nodes[down].take().unwrap().shutdown().await;
    let grant3 = grant(&mut cl, &p, &record.id, now_ms() + AN_HOUR_MS);
    cl.commit(&grant3).await;
    let read3 = read_request(&mut cl, &researcher, &record.id, Some(grant3.id()));
    cl.commit(&read3.tx).await;
    let up = cl.live();
    assert_eq!(up.len(), THRESHOLD);
    assert_eq!(read_body(&cl, &set, &store, &record.id, &read3, &up).await, record.body);
    let (_, audit) = get_json(&cl.http, &cl.url(up[0], &format!("/v1/patients/{patient_hex}/audit"))).await;
    let last = audit["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["tx"], read3.id().to_hex(), "{audit}");
    assert_eq!(last["action"]["read"]["grant"], grant3.id().to_hex(), "{audit}");

    for n in cl.nodes.drain(..).flatten() {
        n.shutdown().await;
    }
    eprintln!("record sharing scenario took {:?}", started.elapsed());
}
