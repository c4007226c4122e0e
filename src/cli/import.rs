//! `medchain client import`: FHIR R4 bundles in, labelled record anchors on chain.
//!
//! For each bundle: the patient is enrolled by the hospital under a pseudonymous key (kept in
//! the writer's folder), and each indexed resource becomes one record:
//! 1. its terms are extracted here (`index::keywords`), on the writer's machine;
//! 2. the hospital's node derives its P labels (`POST /v1/index/labels`, signed by the doctor);
//!    the terms go to no other node;
//! 3. its body is sealed by `engine::envelope` (AES-256-SIV under a fresh data key, random nonce,
//!    the record id as associated data) and stored in the consortium's blob store (`net::blobs`:
//!    `CONSORTIUM/blobs/` by default, or `--blob-store`, e.g. S3); the chain gets the blob's
//!    digest, length and locator;
//! 4. the data key is encrypted to the validators' collective key (`engine::threshold`: hashed
//!    ElGamal with a proof bound to the record and chain) and dropped: no one keeps it, and a
//!    reader gets it back only through a committed `ReadRequest` and t validators' shares;
//! 5. the doctor signs the `AnchorRecord` and the patient co-signs it (consent).
//!
//! The import waits for the consortium key (`GET /v1/keys`) before it writes anything.

use crate::client::Client;
use crate::consortium::{random_key, read_key, write_key, Consortium};
use crate::output::report;
use anyhow::{bail, Context, Result};
use engine::codec::Digest;
use engine::crypto::{ChainId, PublicKey, SigningKey};
use engine::envelope::{self, BlobRef, DataKey, DATA_KEY_LEN, NONCE_LEN};
use engine::tx::{AnchorRecord, Enroll, Payload, Role, Transaction, TxBody, TxId};
use index::keywords::{extract_value, ExtractContext, FhirDate};
use index::query::CreatedRange;
use net::blobs::BlobStore;
use net::search::{LabelRequest, LabelResponse, LabelTerm};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Anchors submitted per request.
const SUBMIT_BATCH: usize = 256;
/// How long the import waits for the validators' key generation.
const KEY_SET_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the import waits for its transactions to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(120);

/// `medchain client …`.
#[derive(clap::Subcommand, Debug)]
pub enum ClientCommand {
    /// Turn FHIR R4 bundles into labelled, consented records of a hospital (one per resource).
    Import(ImportArgs),
    /// A patient grants a reader access to records, or to data types over a time range.
    Grant(crate::cli::share::GrantArgs),
    /// A patient revokes a grant.
    Revoke(crate::cli::share::RevokeArgs),
    /// Read a record: commit a ReadRequest, combine the validators' shares, fetch, check, decrypt.
    Read(crate::cli::share::ReadArgs),
    /// A patient's audit trail: every grant, revocation, key rotation and read of their records.
    Audit(crate::cli::share::AuditArgs),
    /// A patient replaces their key; records, grants and audit trail follow.
    RotateKey(crate::cli::share::RotateArgs),
}

/// `medchain client import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The consortium folder.
    #[arg(long)]
    pub consortium: PathBuf,
    /// The writing hospital (validator name), e.g. `node0`.
    #[arg(long)]
    pub hospital: String,
    /// A bundle file, or a folder of `*.json` bundles (e.g. from `medchain synth`).
    #[arg(long)]
    pub fhir: PathBuf,
    /// The blob store for sealed bodies: a folder, `file:///path`, or
    /// `s3://bucket[/prefix]?endpoint=URL&region=NAME` (credentials from `AWS_*`). Default:
    /// `CONSORTIUM/blobs`.
    #[arg(long)]
    pub blob_store: Option<String>,
    /// Print one JSON object (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// One record written, with its plaintext terms (known to the writer only).
#[derive(Clone, Debug)]
pub struct WrittenRecord {
    /// The record id.
    pub record_id: Digest,
    /// Its terms as (field, value).
    pub terms: BTreeSet<(String, String)>,
    /// Its data type.
    pub data_type: String,
    /// Its creation time.
    pub created_at_ms: u64,
    /// The writing hospital.
    pub hospital: PublicKey,
    /// The epoch of its labels.
    pub epoch: u64,
    /// The patient who owns it.
    pub owner: PublicKey,
    /// SHA-256 of its plaintext body (for the writer's own checks, e.g. the demo's read-back).
    pub body_digest: Digest,
}

/// What `client import` reports.
#[derive(Serialize, Debug, Clone)]
pub struct ImportReport {
    /// Bundles read.
    pub bundles: usize,
    /// Records anchored and committed.
    pub records: usize,
    /// Patients enrolled by this run.
    pub patients_enrolled: usize,
    /// Labels per record.
    pub labels_per_record: usize,
    /// Terms dropped under the drop-lowest-priority policy, in all.
    pub terms_dropped: usize,
    /// Epochs the labels were derived in.
    pub epochs: Vec<u64>,
    /// Resources left out (types that are not indexed).
    pub skipped: usize,
    /// The blob store the sealed bodies went to.
    pub blobs: String,
    /// The hospital.
    pub hospital: String,
}

/// Runs `medchain client …`.
pub fn run(command: ClientCommand) -> Result<ExitCode> {
    let args = match command {
        ClientCommand::Import(args) => args,
        other => return crate::cli::share::run(other),
    };
    let c = Consortium::load(&args.consortium)?;
    let store = crate::cli::share::blob_store(&c, args.blob_store.as_deref())?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (rep, _) = rt.block_on(import(&c, &args.hospital, &args.fhir, &store, args.json))?;
    report(args.json, &rep, || {
        format!(
            "{} records from {} bundles committed for {} ({} patients enrolled, {} labels each, epochs {:?}, {} resources skipped); bodies encrypted in {}",
            rep.records, rep.bundles, rep.hospital, rep.patients_enrolled, rep.labels_per_record, rep.epochs, rep.skipped, rep.blobs
        )
    });
    Ok(ExitCode::SUCCESS)
}

fn bundle_files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}: give a bundle file or a folder of them", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no *.json bundle", path.display());
    }
    Ok(files)
}

/// A file-name-safe form of a FHIR id.
fn safe_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(80).collect()
}

/// A key kept in `path`, created when missing; true when created.
fn key_at(path: &Path) -> Result<(SigningKey, bool)> {
    if path.exists() {
        return Ok((read_key(path)?, false));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key = random_key();
    write_key(path, &key)?;
    Ok((key, true))
}

struct Prepared {
    patient: SigningKey,
    resource: Value,
    extracted: index::keywords::Extracted,
}

/// Imports the bundles at `fhir` for hospital `name`; returns the report and the records with
/// their plaintext terms (for the caller's own checks, e.g. the demo's plaintext reference).
pub async fn import(
    c: &Consortium,
    name: &str,
    fhir: &Path,
    store: &BlobStore,
    quiet: bool,
) -> Result<(ImportReport, Vec<WrittenRecord>)> {
    let entry = c
        .validators()
        .find(|v| v.name == name)
        .with_context(|| format!("{name:?} is not a hospital (validator) of this consortium"))?;
    let hospital = c.node_key(name)?;
    let genesis = c.genesis()?;
    let chain = genesis.chain_id().clone();
    let client = Client::new(entry.http)?;
    client.wait_ready(Duration::from_secs(30)).await?;
    let key_set = crate::cli::share::wait_key_set(&client, KEY_SET_TIMEOUT).await?;
    let home = c.dir.join("clients").join(name);

    // Read every bundle and extract every resource before anything is written, so that a
    // malformed bundle changes nothing.
    let (doctor, doctor_new) = key_at(&home.join("doctor.key"))?;
    let mut enrol: Vec<(PublicKey, Role, String)> = Vec::new();
    if doctor_new {
        enrol.push((doctor.public(), Role::Doctor, format!("doctor-{}", doctor.public().short())));
    }
    let files = bundle_files(fhir)?;
    let mut prepared = Vec::new();
    let mut skipped = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
        let bundle: Value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
        if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            bail!("{}: resourceType must be \"Bundle\"", file.display());
        }
        let entries = bundle.get("entry").and_then(Value::as_array).cloned().unwrap_or_default();
        let resources: Vec<Value> = entries.iter().filter_map(|e| e.get("resource").cloned()).collect();
        let patient_res =
            resources.iter().find(|r| r.get("resourceType").and_then(Value::as_str) == Some("Patient")).with_context(
                || format!("{}: the bundle holds no Patient resource; every record needs its owner", file.display()),
            )?;
        let patient_id = patient_res.get("id").and_then(Value::as_str).unwrap_or("unnamed");
        let birth = patient_res.get("birthDate").and_then(Value::as_str).and_then(|d| FhirDate::parse(d).ok());
        let ctx = ExtractContext { birth_date: birth };
        let (patient, created) = key_at(&home.join("patients").join(format!("{}.key", safe_name(patient_id))))?;
        if created {
            enrol.push((patient.public(), Role::Patient, format!("patient-{}", patient.public().short())));
        }
        for (i, resource) in resources.into_iter().enumerate() {
            let t = resource.get("resourceType").and_then(Value::as_str).unwrap_or("");
            if !index::keywords::RESOURCE_TYPES.contains(&t) {
                skipped += 1;
                continue;
            }
            let extracted = extract_value(&resource, &ctx).with_context(|| format!("{}: entry {i}", file.display()))?;
            prepared.push(Prepared { patient: patient.clone(), resource, extracted });
        }
    }

    // Enrol the doctor and the new patients (the hospital signs).
    let patients_enrolled = enrol.iter().filter(|(_, r, _)| *r == Role::Patient).count();
    if !enrol.is_empty() {
        let nonce = client.nonce(&hospital.public()).await?;
        let height = client.status().await?.height;
        let txs: Vec<Transaction> = enrol
            .iter()
            .enumerate()
            .map(|(j, (key, role, name))| {
                TxBody {
                    sender: hospital.public(),
                    nonce: nonce + 1 + j as u64,
                    expiry_height: height + crate::client::TX_VALID_BLOCKS,
                    payload: Payload::Enroll(Enroll { key: *key, role: *role, name: name.clone() }),
                }
                .sign(&chain, &[&hospital])
            })
            .collect();
        let ids = submit_all(&client, &txs).await.context("enrolling the doctor and patients")?;
        client.wait_committed(&ids, COMMIT_TIMEOUT).await.context("enrolling the doctor and patients")?;
    }

    // Label, encrypt, sign.
    let bar = crate::cli::load::progress_bar(prepared.len() as u64, "records", quiet);
    let mut nonce = client.nonce(&doctor.public()).await?;
    let height = client.status().await?.height;
    let mut txs = Vec::with_capacity(prepared.len());
    let mut written = Vec::with_capacity(prepared.len());
    let mut epochs = BTreeSet::new();
    let mut dropped = 0;
    let mut labels_per_record = 0;
    for p in &prepared {
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
        let record_id = Digest(id);
        let terms: Vec<LabelTerm> = p
            .extracted
            .terms
            .iter()
            .map(|t| LabelTerm { field: t.field.clone(), value: t.value.clone(), priority: t.priority })
            .collect();
        let request = LabelRequest::sign(&doctor, &chain, record_id, terms);
        let labels: LabelResponse = client.post_json("/v1/index/labels", &request).await?;
        let index_labels = labels
            .labels
            .iter()
            .map(|h| {
                let mut l = [0u8; 16];
                hex::decode_to_slice(h, &mut l).map(|()| l)
            })
            .collect::<Result<Vec<_>, _>>()
            .context("the node sent a label that is not 16 bytes of hex")?;
        labels_per_record = index_labels.len();
        dropped += labels.dropped;
        epochs.insert(labels.epoch);
        let body = serde_json::to_vec(&p.resource)?;
        let (blob, locator, encrypted_data_key) = seal_body(store, &key_set, &chain, &record_id, &body).await?;
        let created_at_ms = p
            .extracted
            .clinical_date
            .and_then(|d| CreatedRange { first: Some(d), last: Some(d) }.start_ms())
            .unwrap_or_else(net::driver::now_ms);
        let anchor = AnchorRecord {
            record_id,
            owner: p.patient.public(),
            author: doctor.public(),
            hospital: hospital.public(),
            data_type: p.extracted.resource_type.clone(),
            created_at_ms,
            ciphertext_digest: blob.digest,
            ciphertext_len: blob.len,
            blob_locator: locator,
            encrypted_data_key,
            index_labels,
            epoch: labels.epoch,
        };
        nonce += 1;
        txs.push(anchor_tx(&chain, &doctor, &p.patient, nonce, height, anchor));
        written.push(WrittenRecord {
            record_id,
            terms: index::query::term_set(&p.extracted.terms),
            data_type: p.extracted.resource_type.clone(),
            created_at_ms,
            hospital: hospital.public(),
            epoch: labels.epoch,
            owner: p.patient.public(),
            body_digest: engine::codec::sha256(&body),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    // In waves that each commit before the next is sent: a writer never holds more than one
    // wave pending in the consortium.
    let bar = crate::cli::load::progress_bar(txs.len() as u64, "committing", quiet);
    for wave in txs.chunks(SUBMIT_BATCH) {
        let ids = submit_all(&client, wave).await?;
        client.wait_committed(&ids, COMMIT_TIMEOUT).await.context("committing the records")?;
        bar.inc(wave.len() as u64);
    }
    bar.finish_and_clear();
    Ok((
        ImportReport {
            bundles: files.len(),
            records: written.len(),
            patients_enrolled,
            labels_per_record,
            terms_dropped: dropped,
            epochs: epochs.into_iter().collect(),
            skipped,
            blobs: store.describe().to_string(),
            hospital: name.to_string(),
        },
        written,
    ))
}

fn anchor_tx(
    chain: &ChainId,
    doctor: &SigningKey,
    patient: &SigningKey,
    nonce: u64,
    height: u64,
    anchor: AnchorRecord,
) -> Transaction {
    TxBody {
        sender: doctor.public(),
        nonce,
        expiry_height: height + crate::client::TX_VALID_BLOCKS,
        payload: Payload::AnchorRecord(anchor),
    }
    .sign(chain, &[doctor, patient])
}

async fn submit_all(client: &Client, txs: &[Transaction]) -> Result<Vec<TxId>> {
    for chunk in txs.chunks(SUBMIT_BATCH) {
        if let Some((id, why)) = client.submit_batch(chunk).await?.into_iter().next() {
            bail!("transaction {id} refused: {why}");
        }
    }
    Ok(txs.iter().map(Transaction::id).collect())
}

/// Seals `body` under a fresh data key (`engine::envelope`) into the blob store and encrypts the
/// data key to the consortium key; returns the blob's reference, its locator and the encrypted
/// key. The data key itself is dropped (and wiped).
pub async fn seal_body(
    store: &BlobStore,
    key_set: &engine::threshold::PublicKeySet,
    chain: &ChainId,
    record_id: &Digest,
    body: &[u8],
) -> Result<(BlobRef, String, Vec<u8>)> {
    let mut key = [0u8; DATA_KEY_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let key = DataKey::from_bytes(key);
    let blob = envelope::seal(&key, &nonce, record_id, body)?;
    let encrypted = engine::threshold::encrypt_key(key_set, chain, record_id, &key, &mut rand::rngs::OsRng)
        .context("encrypting the data key to the consortium key")?;
    let locator = store.put(record_id, &blob).await?;
    Ok((BlobRef::of(&blob), locator, encrypted.to_bytes()))
}
