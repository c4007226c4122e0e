//! `medchain bench reads`: end-to-end read latency on a local consortium of 4 validators.
//!
//! Starts 4 validator processes of this binary (real QUIC, real redb, the validators' key
//! generation), imports synthetic FHIR bundles through node0, then times `--reads` reads of
//! distinct records, each from `ReadRequest` submitted to plaintext in hand: commit, t shares
//! from the validators (proofs checked), combine, blob fetch, digest check, decryption. Half the
//! reads are the owner's, half a researcher's under a grant. Reports p50, p99 and mean, with the
//! split into commit, shares and fetch-and-decrypt.

use crate::cli::demo::{free_addrs, Nodes};
use crate::cli::share;
use crate::client::Client;
use crate::output::report;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// `medchain bench reads`.
#[derive(clap::Args, Debug)]
pub struct ReadsArgs {
    /// Reads to time (each of a distinct record).
    #[arg(long, default_value_t = 200)]
    pub reads: usize,
    /// Synthetic patients imported first (their records are read).
    #[arg(long, default_value_t = 8)]
    pub patients: usize,
    /// Keep the consortium in this folder instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Percentiles of one phase, in milliseconds.
#[derive(Serialize, Debug, Clone)]
pub struct Phase {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

fn phase(mut v: Vec<f64>) -> Phase {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Phase { p50_ms: at(0.5), p99_ms: at(0.99), mean_ms: v.iter().sum::<f64>() / v.len() as f64 }
}

/// What `bench reads` reports.
#[derive(Serialize, Debug)]
pub struct ReadsReport {
    /// Validators.
    pub validators: usize,
    /// Shares needed.
    pub threshold: u16,
    /// Reads timed.
    pub reads: usize,
    /// Mean plaintext size, bytes.
    pub mean_body_bytes: f64,
    /// `ReadRequest` submitted → plaintext in hand.
    pub total: Phase,
    /// Submitted → committed.
    pub commit: Phase,
    /// Committed → t valid shares.
    pub shares: Phase,
    /// Fetch, digest check, decryption.
    pub fetch_decrypt: Phase,
    /// The target of issue 5 (p50 ≤ 500 ms) and whether it holds.
    pub target_p50_ms: f64,
    /// Whether p50 ≤ the target.
    pub met: bool,
    /// Every plaintext's digest matched what the writer wrote.
    pub all_plaintexts_match: bool,
}

/// Runs `medchain bench reads`.
pub fn run(args: ReadsArgs) -> Result<ExitCode> {
    if args.reads == 0 {
        bail!("--reads must be at least 1");
    }
    let (_tmp, dir) = match &args.dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new().prefix("medchain-bench-reads-").tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rep = rt.block_on(bench(&dir, &args))?;
    report(args.json, &rep, || {
        format!(
            "end-to-end read on {} validators (t = {}), {} reads of ~{:.0}-byte bodies:\n  \
             total          p50 {:>7.1} ms  p99 {:>7.1} ms  mean {:>7.1} ms   (target p50 ≤ {:.0} ms: {})\n  \
             commit         p50 {:>7.1} ms  p99 {:>7.1} ms\n  \
             shares         p50 {:>7.1} ms  p99 {:>7.1} ms\n  \
             fetch+decrypt  p50 {:>7.1} ms  p99 {:>7.1} ms",
            rep.validators,
            rep.threshold,
            rep.reads,
            rep.mean_body_bytes,
            rep.total.p50_ms,
            rep.total.p99_ms,
            rep.total.mean_ms,
            rep.target_p50_ms,
            if rep.met { "met" } else { "MISSED" },
            rep.commit.p50_ms,
            rep.commit.p99_ms,
            rep.shares.p50_ms,
            rep.shares.p99_ms,
            rep.fetch_decrypt.p50_ms,
            rep.fetch_decrypt.p99_ms,
        )
    });
    Ok(if rep.all_plaintexts_match { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn bench(dir: &std::path::Path, args: &ReadsArgs) -> Result<ReadsReport> {
    let validators = 4;
    let addrs = free_addrs(validators)?;
    let c = crate::cli::init::create(dir, validators, 0, None, &addrs, 60_000)?;
    let exe = std::env::current_exe().context("cannot find this program's path to start the nodes")?;
    let mut nodes = Nodes { exe, children: c.nodes.iter().map(|_| None).collect(), consortium: c.clone() };
    for i in 0..c.nodes.len() {
        nodes.start(i)?;
    }
    let via = Client::new(c.nodes[0].http)?;
    for n in &c.nodes {
        Client::new(n.http)?.wait_ready(Duration::from_secs(60)).await?;
    }
    let set = share::wait_key_set(&via, Duration::from_secs(120)).await?;
    let quiet = args.json;
    if !quiet {
        eprintln!("==> 4 validators up, key generation done; importing {} synthetic patients", args.patients);
    }
    let folder = dir.join("bundles");
    std::fs::create_dir_all(&folder)?;
    let opts = index::synth::SynthOptions { seed: 7, patients: args.patients, start_year: 2019, end_year: 2025 };
    for i in 0..args.patients {
        let b = index::synth::patient(opts.seed, i as u64, &opts);
        std::fs::write(folder.join(format!("patient-{i:06}.json")), serde_json::to_vec(&b.bundle)?)?;
    }
    let store = share::blob_store(&c, None)?;
    let (_, written) = crate::cli::import::import(&c, "node0", &folder, &store, true).await?;
    if written.len() < args.reads {
        bail!("only {} records were written; raise --patients or lower --reads", written.len());
    }
    // A researcher, granted each patient's records by data type over all time.
    let chain = c.genesis()?.chain_id().clone();
    let ca = crate::consortium::read_key(&c.dir.join("ca").join("ca.key"))?;
    let researcher = crate::consortium::random_key();
    let enrol = engine::tx::Payload::Enroll(engine::tx::Enroll {
        key: researcher.public(),
        role: engine::tx::Role::Researcher,
        name: "bench researcher".into(),
    });
    via.commit_payload(&chain, &ca, &[], enrol, Duration::from_secs(60)).await?;
    let patients_dir = c.dir.join("clients").join("node0").join("patients");
    let mut keys = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(&patients_dir)? {
        let k = crate::consortium::read_key(&entry?.path())?;
        keys.insert(k.public(), k);
    }
    let mut grants = std::collections::BTreeMap::new();
    for (public, key) in &keys {
        let data_types: std::collections::BTreeSet<String> =
            written.iter().filter(|r| r.owner == *public).map(|r| r.data_type.clone()).collect();
        let g = engine::tx::Grant {
            grantee: researcher.public(),
            scope: engine::tx::GrantScope::DataTypes {
                data_types: data_types.into_iter().collect(),
                from_ms: 0,
                to_ms: u64::MAX,
            },
            purpose: "bench".into(),
            expires_at_ms: net::driver::now_ms() + 86_400_000,
        };
        grants.insert(*public, share::grant(&c, &via, key, g).await?);
    }
    let bar = crate::cli::load::progress_bar(args.reads as u64, "reads", quiet);
    let (mut total, mut commit, mut shares, mut fetch) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut all_match = true;
    let mut bytes = 0usize;
    // One warm-up read, not timed.
    let w = &written[0];
    share::read_record(&c, &via, &keys[&w.owner], w.record_id, None, &store).await?;
    for (i, r) in written.iter().take(args.reads).enumerate() {
        let out = if i % 2 == 0 {
            share::read_record(&c, &via, &keys[&r.owner], r.record_id, None, &store).await?
        } else {
            share::read_record(&c, &via, &researcher, r.record_id, Some(grants[&r.owner]), &store).await?
        };
        all_match &= engine::codec::sha256(&out.plaintext) == r.body_digest;
        bytes += out.plaintext_len;
        total.push(out.total_ms);
        commit.push(out.commit_ms);
        shares.push(out.shares_ms);
        fetch.push(out.fetch_decrypt_ms);
        bar.inc(1);
    }
    bar.finish_and_clear();
    nodes.stop_all()?;
    let total = phase(total);
    let target = 500.0;
    Ok(ReadsReport {
        validators,
        threshold: set.threshold,
        reads: args.reads,
        mean_body_bytes: bytes as f64 / args.reads as f64,
        met: total.p50_ms <= target,
        total,
        commit: phase(commit),
        shares: phase(shares),
        fetch_decrypt: phase(fetch),
        target_p50_ms: target,
        all_plaintexts_match: all_match,
    })
}
