//! `medchain load`: enrols synthetic doctors and patients, then submits pre-signed
//! `AnchorRecord` transactions (about 550 bytes, two signatures each) at a fixed rate spread over
//! all validators, and reports committed tx/s and submit→commit latency.

use crate::client::Client;
use crate::consortium::Consortium;
use crate::output::report;
use anyhow::{bail, Context, Result};
use engine::codec::sha256;
use engine::crypto::{ChainId, PublicKey, SigningKey};
use engine::tx::{AnchorRecord, Enroll, Payload, Role, Transaction, TxBody, TxId};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `medchain load`.
#[derive(clap::Args, Debug, Clone)]
pub struct LoadArgs {
    /// The consortium folder made by `medchain init`.
    #[arg(long)]
    pub consortium: PathBuf,
    /// Transactions submitted per second, spread over all validators.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds of submission.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Synthetic doctors enrolled per hospital.
    #[arg(long, default_value_t = 50)]
    pub doctors: usize,
    /// Synthetic patients enrolled per hospital.
    #[arg(long, default_value_t = 200)]
    pub patients: usize,
    /// Seconds to wait for the last submissions to commit.
    #[arg(long, default_value_t = 20)]
    pub drain: u64,
    /// Print one JSON object instead of text (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// What a load run measured.
#[derive(Serialize, Debug, Clone)]
pub struct LoadReport {
    /// Committed (applied) transactions per second over the run.
    pub committed_tps: f64,
    /// Median submit→commit latency.
    pub p50_ms: f64,
    /// 99th percentile submit→commit latency.
    pub p99_ms: f64,
    /// Transactions submitted.
    pub submitted: u64,
    /// Transactions committed and applied.
    pub committed: u64,
    /// Transactions refused at submission or rejected at execution.
    pub refused: u64,
    /// Seconds from the first submission to the last commit counted.
    pub elapsed_s: f64,
}

/// Runs `medchain load`.
pub fn run(args: LoadArgs) -> Result<ExitCode> {
    let consortium = Consortium::load(&args.consortium)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rep = rt.block_on(run_load(&consortium, &args))?;
    report(args.json, &rep, || {
        format!(
            "submitted {} committed {} refused {} in {:.1} s: {:.0} committed tx/s, latency p50 {:.0} ms p99 {:.0} ms",
            rep.submitted, rep.committed, rep.refused, rep.elapsed_s, rep.committed_tps, rep.p50_ms, rep.p99_ms
        )
    });
    Ok(ExitCode::SUCCESS)
}

/// A progress bar, hidden for JSON output or when stderr is not a terminal.
pub fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

struct Hospital {
    key: SigningKey,
    node: usize,
    doctors: Vec<SigningKey>,
    patients: Vec<SigningKey>,
}

/// Enrols the synthetic participants, then runs the timed load. Used by `load` and `demo`.
pub async fn run_load(consortium: &Consortium, args: &LoadArgs) -> Result<LoadReport> {
    if args.rate == 0 || args.duration == 0 {
        bail!("--rate and --duration must be positive");
    }
    if args.doctors == 0 || args.patients == 0 {
        bail!("--doctors and --patients must be positive");
    }
    let genesis = consortium.genesis()?;
    let chain = genesis.chain_id().clone();
    let clients: Vec<Arc<Client>> =
        consortium.validators().map(|n| Client::new(n.http).map(Arc::new)).collect::<Result<_>>()?;
    for c in &clients {
        c.wait_ready(Duration::from_secs(30)).await?;
    }

    // 1. Enrol doctors and patients, each hospital through its own node.
    let mut hospitals = Vec::new();
    let mut enrol_ids = Vec::new();
    for (i, v) in consortium.validators().enumerate() {
        let key = consortium.node_key(&v.name)?;
        let start_nonce = clients[i].nonce(&key.public()).await?;
        let doctors: Vec<SigningKey> = (0..args.doctors).map(|_| crate::consortium::random_key()).collect();
        let patients: Vec<SigningKey> = (0..args.patients).map(|_| crate::consortium::random_key()).collect();
        let height = clients[i].status().await?.height;
        let txs: Vec<Transaction> = doctors
            .iter()
            .map(|d| (d, Role::Doctor))
            .chain(patients.iter().map(|p| (p, Role::Patient)))
            .enumerate()
            .map(|(j, (k, role))| {
                TxBody {
                    sender: key.public(),
                    nonce: start_nonce + 1 + j as u64,
                    expiry_height: height + 10_000,
                    payload: Payload::Enroll(Enroll {
                        key: k.public(),
                        role,
                        name: format!("synthetic-{}", k.public().short()),
                    }),
                }
                .sign(&chain, &[&key])
            })
            .collect();
        enrol_ids.extend(txs.iter().map(|t| t.id()));
        let refused = clients[i].submit_batch(&txs).await?;
        if let Some((id, why)) = refused.into_iter().next() {
            bail!("enrolment {id} refused by {}: {why}", v.name);
        }
        hospitals.push(Hospital { key, node: i, doctors, patients });
    }
    wait_committed(&clients[0], &enrol_ids, Duration::from_secs(60))
        .await
        .context("enrolling synthetic participants")?;

    // 2. Pre-sign every transaction before the clock starts.
    let total = args.rate * args.duration;
    let height = clients[0].status().await?.height;
    let plan: Vec<(usize, usize, u64)> = (0..total)
        .map(|i| {
            let h = (i as usize) % hospitals.len();
            let d = (i as usize / hospitals.len()) % args.doctors;
            let nonce = 1 + i / (hospitals.len() * args.doctors) as u64;
            (h, d, nonce)
        })
        .collect();
    let bar = progress_bar(total, "signing", args.json);
    let signed: Vec<(usize, Transaction)> = plan
        .par_iter()
        .enumerate()
        .map(|(i, &(h, d, nonce))| {
            let hosp = &hospitals[h];
            let patient = &hosp.patients[i % hosp.patients.len()];
            let tx =
                anchor_tx(&chain, &hosp.key.public(), &hosp.doctors[d], patient, nonce, height + 1_000_000, i as u64);
            bar.inc(1);
            (hosp.node, tx)
        })
        .collect();
    bar.finish_and_clear();

    // 3. Submit on schedule; track commits from one node's commit feed.
    let submitted_at: Arc<parking_lot::Mutex<HashMap<TxId, Instant>>> = Default::default();
    let start = Instant::now();
    let stats: Arc<parking_lot::Mutex<CommitStats>> = Default::default();
    let mut tracker =
        tokio::spawn(track_commits(clients[0].clone(), submitted_at.clone(), total, start, stats.clone()));
    let bar = progress_bar(total, "submitting", args.json);
    let tick = Duration::from_millis(10);
    let per_tick = (args.rate as f64 * tick.as_secs_f64()).max(1.0);
    let mut queues: Vec<Vec<Transaction>> = vec![Vec::new(); clients.len()];
    let slots: Vec<Arc<tokio::sync::Semaphore>> =
        clients.iter().map(|_| Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_PER_NODE_MAX))).collect();
    let mut sent = 0u64;
    let mut refused_total = 0u64;
    let mut inflight = tokio::task::JoinSet::new();
    let mut next = signed.into_iter();
    let mut due = 0.0f64;
    while sent < total || queues.iter().any(|q| !q.is_empty()) {
        due += per_tick;
        while (sent as f64) < due && sent < total {
            let Some((node, tx)) = next.next() else { break };
            // Latency is measured from when a transaction was due, so client-side backlog counts.
            submitted_at.lock().insert(tx.id(), Instant::now());
            queues[node].push(tx);
            sent += 1;
        }
        for (i, q) in queues.iter_mut().enumerate() {
            if q.is_empty() {
                continue;
            }
            // At most a few requests in flight per node: a saturated node builds its backlog
            // here, in the client, where it is measured as latency, not inside the node.
            let Ok(slot) = slots[i].clone().try_acquire_owned() else { continue };
            let batch = std::mem::take(q);
            let client = clients[i].clone();
            inflight.spawn(async move {
                let r = client.submit_batch(&batch).await.map(|r| r.len() as u64);
                drop(slot);
                r
            });
        }
        while let Some(done) = inflight.try_join_next() {
            refused_total += done.context("submission task")??;
        }
        bar.set_position(sent);
        let target = (start + tick.mul_f64(sent as f64 / per_tick)).max(Instant::now() + tick / 2);
        tokio::time::sleep_until(tokio::time::Instant::from_std(target)).await;
    }
    while let Some(done) = inflight.join_next().await {
        refused_total += done.context("submission task")??;
    }
    bar.finish_and_clear();
    // Whatever has not committed by the end of the drain counts as not committed: an overloaded
    // consortium gets a report of what it did, not an error.
    let drained = tokio::time::timeout(Duration::from_secs(args.drain), &mut tracker).await;
    let stats = match drained {
        Ok(joined) => joined.context("commit tracker")??,
        Err(_) => {
            tracker.abort();
            std::mem::take(&mut *stats.lock())
        }
    };
    Ok(stats.report(sent, refused_total))
}

/// Requests in flight per node.
const IN_FLIGHT_PER_NODE_MAX: usize = 4;

/// One `AnchorRecord` of about 550 bytes with its signatures, signed by the doctor and co-signed by the patient. It
/// carries no encrypted data key (a record no one reads through the validators), so the load
/// measures ordering and signatures; a key's proof would add one check per anchor on every
/// validator (`bench ops`, the anchor-write row).
fn anchor_tx(
    chain: &ChainId,
    hospital: &PublicKey,
    doctor: &SigningKey,
    patient: &SigningKey,
    nonce: u64,
    expiry_height: u64,
    i: u64,
) -> Transaction {
    let record_id = sha256(&[doctor.public().0.as_slice(), &nonce.to_le_bytes(), &i.to_le_bytes()].concat());
    let anchor = AnchorRecord {
        record_id,
        owner: patient.public(),
        author: doctor.public(),
        hospital: *hospital,
        data_type: "Observation".into(),
        created_at_ms: 1_700_000_000_000 + i,
        ciphertext_digest: sha256(&record_id.0),
        ciphertext_len: 4096,
        blob_locator: format!("blob://{}/{}", hospital.short(), record_id.to_hex()),
        encrypted_data_key: vec![],
        index_labels: (0..8u8).map(|j| [j; 16]).collect(),
        epoch: 0,
    };
    TxBody { sender: doctor.public(), nonce, expiry_height, payload: Payload::AnchorRecord(anchor) }
        .sign(chain, &[doctor, patient])
}

async fn wait_committed(client: &Client, ids: &[TxId], timeout: Duration) -> Result<()> {
    client.wait_committed(ids, timeout).await
}

#[derive(Default)]
struct CommitStats {
    latencies_ms: Vec<f64>,
    rejected: u64,
    first_submit: Option<Instant>,
    last_commit: Option<Instant>,
}

impl CommitStats {
    fn report(mut self, submitted: u64, refused_at_submit: u64) -> LoadReport {
        self.latencies_ms.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| {
            if self.latencies_ms.is_empty() {
                return 0.0;
            }
            let i = ((self.latencies_ms.len() as f64 - 1.0) * p).round() as usize;
            self.latencies_ms[i]
        };
        let elapsed_s = match (self.first_submit, self.last_commit) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let committed = self.latencies_ms.len() as u64;
        LoadReport {
            committed_tps: if elapsed_s > 0.0 { committed as f64 / elapsed_s } else { 0.0 },
            p50_ms: pct(0.50),
            p99_ms: pct(0.99),
            submitted,
            committed,
            refused: refused_at_submit + self.rejected,
            elapsed_s,
        }
    }
}

/// Follows the commit feed until every submitted transaction is accounted for (the caller
/// bounds the wait).
async fn track_commits(
    client: Arc<Client>,
    submitted_at: Arc<parking_lot::Mutex<HashMap<TxId, Instant>>>,
    total: u64,
    start: Instant,
    shared: Arc<parking_lot::Mutex<CommitStats>>,
) -> Result<CommitStats> {
    let mut from = client.status().await?.height + 1;
    shared.lock().first_submit = Some(start);
    let mut seen = 0u64;
    while seen < total {
        let feed = client.commits(from).await?;
        let now = Instant::now();
        if feed.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        for c in feed {
            from = c.height + 1;
            let mut map = submitted_at.lock();
            let mut stats = shared.lock();
            for id in c.applied {
                if let Some(t) = map.remove(&id) {
                    stats.latencies_ms.push(now.duration_since(t).as_secs_f64() * 1e3);
                    stats.last_commit = Some(now);
                    seen += 1;
                }
            }
            for id in c.rejected {
                if map.remove(&id).is_some() {
                    stats.rejected += 1;
                    seen += 1;
                }
            }
        }
    }
    Ok(std::mem::take(&mut *shared.lock()))
}
