//! `medchain client grant|revoke|read|audit|rotate-key`: record sharing from the command line
//! (DESIGN §7).
//!
//! A read is: commit a `ReadRequest` naming a fresh reader key → ask every validator for its
//! decryption share of that committed request → check each share's proof (a bad one is named by
//! its validator) → combine any t of them into the data key → fetch the blob → check its digest
//! against the anchor → decrypt. Each validator serves a share only for a request its ledger
//! applied, so a read that the chain refused (no grant, revoked, expired, replayed) yields nothing.

use crate::client::Client;
use crate::consortium::{read_key, write_key, Consortium};
use crate::output::report;
use anyhow::{bail, Context, Result};
use engine::codec::{self, Digest};
use engine::crypto::{PublicKey, SigningKey};
use engine::envelope::{self, BlobRef};
use engine::threshold::{self, EncryptedKey, PublicKeySet, ReaderSecret, ReencryptedShare, ShareContext};
use engine::tx::{Grant, GrantScope, Payload, ReadRequest, Revoke, RotateKey, TxBody, TxId};
use net::blobs::BlobStore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::import::ClientCommand;

/// How long a command waits for its transaction to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a read waits for enough shares once its request committed.
const SHARES_TIMEOUT: Duration = Duration::from_secs(30);

/// Where to reach the consortium, shared by the sharing commands.
#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The consortium folder.
    #[arg(long)]
    pub consortium: PathBuf,
    /// The validator to submit through (default: the first).
    #[arg(long)]
    pub node: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `medchain client grant`.
#[derive(clap::Args, Debug)]
pub struct GrantArgs {
    #[command(flatten)]
    target: Target,
    /// The patient's key file (64 hex characters), e.g. `CONSORTIUM/clients/node0/patients/ID.key`.
    #[arg(long)]
    patient_key: PathBuf,
    /// Who may read: a public key (64 hex) or a key file.
    #[arg(long)]
    grantee: String,
    /// Records covered (record ids, comma-separated). Either this or `--data-types`.
    #[arg(long, value_delimiter = ',')]
    records: Vec<String>,
    /// Data types covered (e.g. `Condition,Observation`), with `--from` and `--to`.
    #[arg(long, value_delimiter = ',')]
    data_types: Vec<String>,
    /// Start of the creation-time range, inclusive (`YYYY-MM-DD`).
    #[arg(long)]
    from: Option<String>,
    /// End of the creation-time range, exclusive (`YYYY-MM-DD`).
    #[arg(long)]
    to: Option<String>,
    /// Why (shown in the audit trail).
    #[arg(long, default_value = "")]
    purpose: String,
    /// How long the grant lasts, in seconds from now.
    #[arg(long, default_value_t = 30 * 24 * 3600)]
    expires_in_s: u64,
}

/// `medchain client revoke`.
#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    #[command(flatten)]
    target: Target,
    /// The patient's key file.
    #[arg(long)]
    patient_key: PathBuf,
    /// The grant's id (the tx id `client grant` printed).
    #[arg(long)]
    grant: String,
}

/// `medchain client read`.
#[derive(clap::Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    target: Target,
    /// The reader's key file (the owner, or a grantee).
    #[arg(long)]
    key: PathBuf,
    /// The record id.
    #[arg(long)]
    record: String,
    /// The grant relied on (omit when the reader owns the record).
    #[arg(long)]
    grant: Option<String>,
    /// Write the plaintext body here (default: standard output, or into the JSON).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The blob store (default `CONSORTIUM/blobs`; see `client import --blob-store`).
    #[arg(long)]
    blob_store: Option<String>,
}

/// `medchain client audit`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    target: Target,
    /// The patient: a public key (64 hex) or a key file.
    #[arg(long)]
    patient: String,
}

/// `medchain client rotate-key`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    target: Target,
    /// The patient's current key file.
    #[arg(long)]
    patient_key: PathBuf,
    /// Where to write the new key (must not exist).
    #[arg(long)]
    new_key_out: PathBuf,
}

/// The consortium's blob store: `spec`, or `CONSORTIUM/blobs`.
pub fn blob_store(c: &Consortium, spec: Option<&str>) -> Result<BlobStore> {
    match spec {
        Some(spec) => Ok(BlobStore::open(spec)?),
        None => Ok(BlobStore::local(&c.dir.join("blobs"))?),
    }
}

#[derive(Deserialize)]
struct KeysReply {
    active: bool,
    round1: usize,
    round2: usize,
    validators: usize,
    key_set: Option<KeySetJson>,
}

#[derive(Deserialize)]
struct KeySetJson {
    threshold: u16,
    collective: String,
    shares: Vec<String>,
}

fn hex32(text: &str, what: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).with_context(|| format!("{what} is not 32 bytes of hex"))?;
    Ok(out)
}

/// Waits until the validators' key generation is done and returns the consortium key set.
pub async fn wait_key_set(client: &Client, timeout: Duration) -> Result<PublicKeySet> {
    let deadline = Instant::now() + timeout;
    loop {
        let k: KeysReply = client.get_json("/v1/keys").await?;
        if let (true, Some(set)) = (k.active, k.key_set) {
            let set = PublicKeySet {
                threshold: set.threshold,
                collective: hex32(&set.collective, "the collective key")?,
                shares: set.shares.iter().map(|s| hex32(s, "a public share")).collect::<Result<_>>()?,
            };
            set.check().context("the node's key set")?;
            return Ok(set);
        }
        if Instant::now() > deadline {
            bail!(
                "the validators' key generation is not done after {timeout:?} (round 1: {} of {}, round 2: {} of {}); \
                 every validator must be up for it; see GET /v1/keys on each",
                k.round1,
                k.validators,
                k.round2,
                k.validators
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A key given as 64 hex characters or as a key file.
fn public_key_arg(text: &str) -> Result<PublicKey> {
    if let Ok(k) = PublicKey::from_hex(text) {
        return Ok(k);
    }
    let path = Path::new(text);
    if path.exists() {
        return Ok(read_key(path)?.public());
    }
    bail!("{text:?} is neither a public key (64 hex characters) nor a key file")
}

fn digest_arg(text: &str, what: &str) -> Result<Digest> {
    Digest::from_hex(text).map_err(|e| anyhow::anyhow!("{what} {text:?} is not 64 hex characters: {e}"))
}

fn node_client(c: &Consortium, node: Option<&str>) -> Result<Client> {
    let entry = match node {
        Some(name) => {
            c.validators().find(|v| v.name == name).with_context(|| format!("no validator named {name:?}"))?
        }
        None => c.validators().next().context("the consortium has no validator")?,
    };
    Client::new(entry.http)
}

#[derive(Deserialize)]
struct TxStatusJson {
    status: String,
    #[serde(default)]
    height: Option<u64>,
    #[serde(default)]
    reason: Option<String>,
}

/// Signs `payload` from `key` (with `cosigners`) at its next nonce, submits it and waits until it
/// commits; a rejection is an error with the chain's reason. Returns the id and height.
pub async fn commit(
    client: &Client,
    c: &Consortium,
    key: &SigningKey,
    cosigners: &[&SigningKey],
    payload: Payload,
) -> Result<(TxId, u64)> {
    let chain = c.genesis()?.chain_id().clone();
    let nonce = client.nonce(&key.public()).await? + 1;
    let height = client.status().await?.height;
    let mut keys = vec![key];
    keys.extend_from_slice(cosigners);
    let tx = TxBody { sender: key.public(), nonce, expiry_height: height + crate::client::TX_VALID_BLOCKS, payload }
        .sign(&chain, &keys);
    let id = client.submit(&tx).await?;
    let deadline = Instant::now() + COMMIT_TIMEOUT;
    loop {
        let s: TxStatusJson = client.get_json(&format!("/v1/transactions/{id}")).await?;
        match s.status.as_str() {
            "committed" => return Ok((id, s.height.unwrap_or(0))),
            "rejected" => bail!("transaction {id} was rejected: {}", s.reason.unwrap_or_default()),
            _ if Instant::now() > deadline => bail!("transaction {id} was not committed within {COMMIT_TIMEOUT:?}"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[derive(Deserialize)]
struct RecordJson {
    ciphertext_digest: Digest,
    ciphertext_len: u64,
    blob_locator: String,
    encrypted_data_key: String,
}

#[derive(Deserialize)]
struct ShareJson {
    share: String,
}

/// What a read did, with its timings.
#[derive(Serialize, Debug, Clone)]
pub struct ReadOutcome {
    /// The record.
    pub record: Digest,
    /// The committed `ReadRequest`.
    pub request: TxId,
    /// Its height.
    pub height: u64,
    /// Validators whose share was used, by name.
    pub shares_from: Vec<String>,
    /// Validators that answered with a share whose proof failed, by name (with the reason).
    pub bad_shares: Vec<String>,
    /// Size of the plaintext.
    pub plaintext_len: usize,
    /// `ReadRequest` submitted → committed, ms.
    pub commit_ms: f64,
    /// Committed → t valid shares in hand, ms.
    pub shares_ms: f64,
    /// Blob fetched, digest checked and body decrypted, ms.
    pub fetch_decrypt_ms: f64,
    /// The whole read, ms.
    pub total_ms: f64,
    /// The plaintext (not serialised).
    #[serde(skip)]
    pub plaintext: Vec<u8>,
}

/// Reads `record` as `reader` (the owner when `grant` is `None`).
pub async fn read_record(
    c: &Consortium,
    via: &Client,
    reader: &SigningKey,
    record: Digest,
    grant: Option<TxId>,
    store: &BlobStore,
) -> Result<ReadOutcome> {
    let start = Instant::now();
    let chain = c.genesis()?.chain_id().clone();
    let anchor: RecordJson = via.get_json(&format!("/v1/records/{record}")).await?;
    let key = EncryptedKey::from_bytes(&hex::decode(&anchor.encrypted_data_key).context("encrypted key hex")?)
        .with_context(|| format!("record {record}: its encrypted data key is unusable"))?;
    let set = wait_key_set(via, Duration::from_secs(5)).await?;
    let secret = ReaderSecret::random(&mut rand::rngs::OsRng);
    let reader_key = secret.public();
    let payload = Payload::ReadRequest(ReadRequest { record, grant, reader_key });
    let (request, height) = commit(via, c, reader, &[], payload).await.context("the read request")?;
    let committed = Instant::now();

    // Ask every validator at once; take the first t valid shares.
    let mut tasks = tokio::task::JoinSet::new();
    for (index, v) in c.validators().enumerate() {
        let (name, client) = (v.name.clone(), Client::new(v.http)?);
        tasks.spawn(async move {
            let path = format!("/v1/reads/{request}/share");
            let deadline = Instant::now() + SHARES_TIMEOUT;
            loop {
                match client.post_json::<_, ShareJson>(&path, &serde_json::json!({})).await {
                    Ok(s) => return (index, name, Ok(s.share)),
                    // The validator has not applied the request's block yet, or is still
                    // finishing its key share: ask again.
                    Err(e)
                        if Instant::now() < deadline
                            && ["read_not_committed", "key_share_unavailable"]
                                .iter()
                                .any(|c| e.to_string().contains(c)) =>
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    Err(e) => return (index, name, Err(e.to_string())),
                }
            }
        });
    }
    let ctx = ShareContext { chain: &chain, record: &record, request: &request, reader: &reader_key, key: &key };
    let needed = usize::from(set.threshold);
    let (mut good, mut shares_from, mut bad_shares, mut unavailable) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        let Ok((_, name, answer)) = joined else { continue };
        let share = answer.and_then(|hex_text| {
            let bytes = hex::decode(hex_text).map_err(|e| format!("share is not hex: {e}"))?;
            codec::decode::<ReencryptedShare>(&bytes, 1024).map_err(|e| format!("share does not decode: {e}"))
        });
        match share {
            Ok(share) => match share.verify(&set, &ctx) {
                Ok(()) => {
                    good.push(share);
                    shares_from.push(name);
                }
                Err(e) => bad_shares.push(format!("{name}: {e}")),
            },
            Err(e) => unavailable.push(format!("{name}: {e}")),
        }
        if good.len() == needed {
            tasks.abort_all();
            break;
        }
    }
    if good.len() < needed {
        bail!(
            "only {} valid shares of the {needed} needed for record {record} (bad: {bad_shares:?}; no share: {unavailable:?})",
            good.len()
        );
    }
    let data_key = threshold::combine(&set, &ctx, &secret, &good).context("combining the shares")?;
    let shares_done = Instant::now();
    let anchored = BlobRef { digest: anchor.ciphertext_digest, len: anchor.ciphertext_len };
    let blob = store.get(&record, &anchor.blob_locator, &anchored).await?;
    let plaintext = envelope::open(&data_key, &record, &anchored, &blob)?;
    let done = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    Ok(ReadOutcome {
        record,
        request,
        height,
        shares_from,
        bad_shares,
        plaintext_len: plaintext.len(),
        commit_ms: ms(start, committed),
        shares_ms: ms(committed, shares_done),
        fetch_decrypt_ms: ms(shares_done, done),
        total_ms: ms(start, done),
        plaintext,
    })
}

/// Commits a grant from `patient` to `grantee`; returns its id.
pub async fn grant(c: &Consortium, via: &Client, patient: &SigningKey, grant: Grant) -> Result<TxId> {
    Ok(commit(via, c, patient, &[], Payload::Grant(grant)).await.context("the grant")?.0)
}

/// Commits the revocation of `grant`.
pub async fn revoke(c: &Consortium, via: &Client, patient: &SigningKey, grant: TxId) -> Result<TxId> {
    Ok(commit(via, c, patient, &[], Payload::Revoke(Revoke { grant })).await.context("the revocation")?.0)
}

/// A patient's audit trail as the node serves it.
pub async fn audit(via: &Client, patient: &PublicKey) -> Result<serde_json::Value> {
    via.get_json(&format!("/v1/patients/{patient}/audit")).await
}

/// One line per audit event, for people.
pub fn audit_lines(trail: &serde_json::Value) -> Vec<String> {
    let short = |v: &serde_json::Value| v.as_str().map(|s| s.chars().take(12).collect::<String>()).unwrap_or_default();
    trail["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    let who = e["actor_name"].as_str().map(str::to_owned).unwrap_or_else(|| short(&e["actor"]));
                    let (what, detail) = match e["action"].as_object().and_then(|o| o.iter().next()) {
                        Some((k, v)) => (k.clone(), v.clone()),
                        None => (e["action"].to_string(), serde_json::Value::Null),
                    };
                    let detail = match what.as_str() {
                        "anchored" | "read" => format!("record {}", short(&detail["record"])),
                        "granted" => format!("grant {} to {}", short(&detail["grant"]), short(&detail["grantee"])),
                        "revoked" => format!("grant {}", short(&detail["grant"])),
                        "key_rotated" => format!("to {}", short(&detail["new_key"])),
                        _ => String::new(),
                    };
                    format!(
                        "  height {:>5}  {}  {:<11} by {:<24} {detail}",
                        e["height"],
                        fmt_time(e["timestamp_ms"].as_u64().unwrap_or(0)),
                        what,
                        who
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fmt_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn date_ms(text: &str, flag: &str) -> Result<u64> {
    let d = index::keywords::FhirDate::parse(text)
        .map_err(|e| anyhow::anyhow!("{flag} {text:?} is not a date (YYYY-MM-DD): {e:?}"))?;
    index::query::CreatedRange { first: Some(d), last: Some(d) }
        .start_ms()
        .with_context(|| format!("{flag} {text:?} is before 1970"))
}

/// Runs the sharing subcommands of `medchain client`.
pub fn run(command: ClientCommand) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(command))
}

async fn run_async(command: ClientCommand) -> Result<ExitCode> {
    match command {
        ClientCommand::Import(_) => unreachable!("client import is run by cli::import"),
        ClientCommand::Grant(a) => {
            let c = Consortium::load(&a.target.consortium)?;
            let via = node_client(&c, a.target.node.as_deref())?;
            let patient = read_key(&a.patient_key)?;
            let grantee = public_key_arg(&a.grantee)?;
            let scope = match (a.records.is_empty(), a.data_types.is_empty()) {
                (false, true) => {
                    GrantScope::Records(a.records.iter().map(|r| digest_arg(r, "record")).collect::<Result<Vec<_>>>()?)
                }
                (true, false) => {
                    let (Some(from), Some(to)) = (&a.from, &a.to) else {
                        bail!("--data-types needs --from and --to (YYYY-MM-DD)");
                    };
                    GrantScope::DataTypes {
                        data_types: a.data_types.clone(),
                        from_ms: date_ms(from, "--from")?,
                        to_ms: date_ms(to, "--to")?,
                    }
                }
                _ => bail!("give either --records or --data-types (with --from and --to)"),
            };
            let expires_at_ms = net::driver::now_ms() + a.expires_in_s.saturating_mul(1000);
            let g = Grant { grantee, scope, purpose: a.purpose.clone(), expires_at_ms };
            let id = grant(&c, &via, &patient, g).await?;
            let rep = serde_json::json!({ "grant": id, "grantee": grantee, "expires_at_ms": expires_at_ms });
            report(a.target.json, &rep, || {
                format!("grant {id} committed: {grantee} may read until {}", fmt_time(expires_at_ms))
            });
        }
        ClientCommand::Revoke(a) => {
            let c = Consortium::load(&a.target.consortium)?;
            let via = node_client(&c, a.target.node.as_deref())?;
            let patient = read_key(&a.patient_key)?;
            let g = digest_arg(&a.grant, "grant")?;
            let id = revoke(&c, &via, &patient, g).await?;
            report(a.target.json, &serde_json::json!({ "revoked": g, "tx": id }), || {
                format!("grant {g} revoked (tx {id}); validators refuse every later read under it")
            });
        }
        ClientCommand::Read(a) => {
            let c = Consortium::load(&a.target.consortium)?;
            let via = node_client(&c, a.target.node.as_deref())?;
            let reader = read_key(&a.key)?;
            let record = digest_arg(&a.record, "record")?;
            let g = a.grant.as_deref().map(|g| digest_arg(g, "grant")).transpose()?;
            let store = blob_store(&c, a.blob_store.as_deref())?;
            let out = read_record(&c, &via, &reader, record, g, &store).await?;
            if let Some(path) = &a.out {
                std::fs::write(path, &out.plaintext).with_context(|| format!("cannot write {}", path.display()))?;
            }
            if a.target.json {
                let mut v = serde_json::to_value(&out)?;
                if a.out.is_none() {
                    v["plaintext"] = serde_json::Value::String(String::from_utf8_lossy(&out.plaintext).into_owned());
                }
                println!("{v}");
            } else {
                eprintln!(
                    "record {record}: read request {} committed at height {}; shares from {}; {} bytes in {:.0} ms",
                    out.request,
                    out.height,
                    out.shares_from.join(", "),
                    out.plaintext_len,
                    out.total_ms
                );
                if a.out.is_none() {
                    use std::io::Write;
                    std::io::stdout().write_all(&out.plaintext)?;
                    println!();
                }
            }
        }
        ClientCommand::Audit(a) => {
            let c = Consortium::load(&a.target.consortium)?;
            let via = node_client(&c, a.target.node.as_deref())?;
            let patient = public_key_arg(&a.patient)?;
            let trail = audit(&via, &patient).await?;
            report(a.target.json, &trail, || {
                let mut lines = vec![format!("audit trail of patient {patient} (height {})", trail["height"])];
                lines.extend(audit_lines(&trail));
                lines.join("\n")
            });
        }
        ClientCommand::RotateKey(a) => {
            let c = Consortium::load(&a.target.consortium)?;
            let via = node_client(&c, a.target.node.as_deref())?;
            let old = read_key(&a.patient_key)?;
            if a.new_key_out.exists() {
                bail!("{} exists; give a new path for the new key", a.new_key_out.display());
            }
            let new = crate::consortium::random_key();
            // Written first: a key the chain knows must never be lost.
            write_key(&a.new_key_out, &new)?;
            let payload = Payload::RotateKey(RotateKey { new_key: new.public() });
            let (id, height) = commit(&via, &c, &old, &[&new], payload).await?;
            report(
                a.target.json,
                &serde_json::json!({ "old": old.public(), "new": new.public(), "tx": id, "height": height }),
                || {
                    format!(
                        "key {} rotated to {} at height {height}; use {} from now on",
                        old.public(),
                        new.public(),
                        a.new_key_out.display()
                    )
                },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether `e` is the chain refusing a transaction: at submission (the node checks it against
/// its state) or in its block (for the demo's refused-read step).
pub fn is_refusal(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let text = c.to_string();
        text.contains("was rejected:") || (text.starts_with("transaction ") && text.contains(" refused: "))
    })
}
