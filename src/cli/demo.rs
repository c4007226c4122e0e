//! `medchain demo`: a local consortium in a few processes, end to end.
//!
//! Starts 4 validators and 1 auditor as child processes of this binary, runs a short load,
//! kills one validator (SIGKILL, no clean shutdown), keeps loading, restarts it and shows it
//! catching up to the same head, then stops every node and re-verifies each stored chain offline.

use crate::cli::load::{run_load, LoadArgs, LoadReport};
use crate::client::Client;
use crate::consortium::Consortium;
use crate::output::report;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Arguments of `medchain demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Keep the consortium in this folder (init's layout) instead of a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Transactions per second during the load phases.
    #[arg(long, default_value_t = 400)]
    pub rate: u64,
    /// Seconds of each load phase.
    #[arg(long, default_value_t = 5)]
    pub duration: u64,
    /// Length of the search index's epochs in milliseconds (short, so that the demo's records
    /// become searchable within seconds).
    #[arg(long, default_value_t = 2_000)]
    pub epoch_len_ms: u64,
    /// Synthetic patients whose FHIR bundles the hospitals import for the search session.
    #[arg(long, default_value_t = 8)]
    pub patients: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct DemoReport {
    dir: String,
    chain_id: String,
    load_all_up: LoadReport,
    load_one_down: LoadReport,
    killed: String,
    height_at_restart: u64,
    caught_up_to: u64,
    catch_up_ms: u64,
    heads_agree: bool,
    search: SearchDemo,
    key_generation: KeyGenDemo,
    sharing: SharingDemo,
    verified: Vec<VerifiedChain>,
}

#[derive(Serialize)]
struct KeyGenDemo {
    collective_key: String,
    threshold: u16,
    validators: usize,
    ms: u64,
}

#[derive(Serialize)]
struct SharingDemo {
    record: String,
    data_type: String,
    patient: String,
    owner_read_ms: f64,
    grant: String,
    reader: String,
    read_ms: f64,
    shares_from: Vec<String>,
    plaintext_matches: bool,
    revoked: String,
    refused_after_revoke: bool,
    refusal: String,
    audit: Vec<String>,
}

#[derive(Serialize)]
struct SearchDemo {
    records_written: usize,
    researcher: String,
    authorizations: Vec<String>,
    searches: Vec<DemoSearch>,
}

#[derive(Serialize)]
struct DemoSearch {
    query: String,
    node: String,
    count: usize,
    expected: usize,
    matches_plaintext: bool,
    verified: bool,
}

#[derive(Serialize)]
struct VerifiedChain {
    node: String,
    height: u64,
    head: String,
}

/// Runs `medchain demo`.
pub fn run(args: DemoArgs) -> Result<ExitCode> {
    let (_tmp, dir) = match &args.dir {
        Some(d) => (None, d.clone()),
        None => {
            let t = tempfile::Builder::new().prefix("medchain-demo-").tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rep = rt.block_on(demo(&dir, &args))?;
    report(args.json, &rep, || human(&rep));
    let searches_ok = rep.search.searches.iter().all(|s| s.matches_plaintext && s.verified);
    let sharing_ok = rep.sharing.plaintext_matches && rep.sharing.refused_after_revoke;
    Ok(if rep.heads_agree && searches_ok && sharing_ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn say(json: bool, msg: impl AsRef<str>) {
    if !json {
        eprintln!("==> {}", msg.as_ref());
    }
}

async fn demo(dir: &Path, args: &DemoArgs) -> Result<DemoReport> {
    let validators = 4;
    let auditors = 1;
    let addrs = free_addrs(validators + auditors)?;
    say(
        args.json,
        format!("creating a consortium of {validators} validators and {auditors} auditor in {}", dir.display()),
    );
    let c = crate::cli::init::create(dir, validators, auditors, None, &addrs, args.epoch_len_ms)?;
    let exe = std::env::current_exe().context("cannot find this program's path to start the nodes")?;
    let mut nodes = Nodes { exe, children: c.nodes.iter().map(|_| None).collect(), consortium: c.clone() };
    for i in 0..c.nodes.len() {
        nodes.start(i)?;
    }
    let clients: Vec<Client> = c.nodes.iter().map(|n| Client::new(n.http)).collect::<Result<_>>()?;
    for cl in &clients {
        cl.wait_ready(Duration::from_secs(60)).await?;
    }
    say(args.json, "all nodes are up");
    let keygen_start = Instant::now();
    let key_set = crate::cli::share::wait_key_set(&clients[0], Duration::from_secs(120)).await?;
    let key_generation = KeyGenDemo {
        collective_key: hex::encode(key_set.collective),
        threshold: key_set.threshold,
        validators,
        ms: keygen_start.elapsed().as_millis() as u64,
    };
    say(
        args.json,
        format!(
            "the validators ran their distributed key generation on chain: consortium key {}…, any {} of {} decrypt, none alone",
            &key_generation.collective_key[..16],
            key_set.threshold,
            validators
        ),
    );

    let load = |dur| LoadArgs {
        consortium: dir.to_path_buf(),
        rate: args.rate,
        duration: dur,
        doctors: 10,
        patients: 40,
        drain: 30,
        json: args.json,
    };
    say(args.json, format!("load: {} tx/s for {} s over all validators", args.rate, args.duration));
    let load_all_up = run_load(&c, &load(args.duration)).await?;
    say(
        args.json,
        format!(
            "  committed {} tx, {:.0} tx/s, p50 {:.0} ms",
            load_all_up.committed, load_all_up.committed_tps, load_all_up.p50_ms
        ),
    );

    say(
        args.json,
        format!("search session: {} synthetic patients' FHIR bundles written by node0 and node1", args.patients),
    );
    let session = prepare_search(&c, dir, args).await?;

    let victim = validators - 1;
    let victim_name = c.nodes[victim].name.clone();
    say(args.json, format!("killing {victim_name} (SIGKILL)"));
    nodes.kill(victim)?;
    let mut rest = c.clone();
    rest.nodes.retain(|n| n.name != victim_name);
    say(args.json, format!("load with {victim_name} down"));
    let load_one_down = run_load(&rest, &load(args.duration)).await?;
    say(args.json, format!("  committed {} tx while {victim_name} was down", load_one_down.committed));

    let target = clients[0].status().await?.height;
    say(args.json, format!("restarting {victim_name}; the others are at height {target}"));
    nodes.start(victim)?;
    let restarted_at = Instant::now();
    let first = clients[victim].wait_ready(Duration::from_secs(60)).await?;
    let caught_up = wait_height(&clients[victim], target, Duration::from_secs(120)).await?;
    let catch_up_ms = restarted_at.elapsed().as_millis() as u64;
    say(
        args.json,
        format!(
            "  {victim_name} restarted at height {} and caught up to {caught_up} in {catch_up_ms} ms",
            first.height
        ),
    );

    // Let the auditor reach the same height, then compare heads at the lowest common height.
    let _ = wait_height(&clients[validators], target, Duration::from_secs(60)).await?;
    let heads_agree = heads_agree(&clients, target).await?;

    say(args.json, format!("encrypted searches on {victim_name} (its index caught up after the crash)"));
    let search = run_searches(&c, &session, &victim_name, args).await?;
    for s in &search.searches {
        say(
            args.json,
            format!("  {:<40} {} records (plaintext reference {}), proofs checked", s.query, s.count, s.expected),
        );
    }

    say(args.json, "record sharing: a patient's record, granted, read, revoked, refused, audited");
    let sharing = run_sharing(&c, &session, &clients[0], args).await?;

    say(args.json, "stopping every node (SIGTERM) and verifying each stored chain offline");
    nodes.stop_all()?;
    let mut verified = Vec::new();
    for n in &c.nodes {
        let data = c.node_dir(&n.name).join("data");
        let storage = engine::storage::RedbStorage::open(&data.join(net::core::CHAIN_DB_FILE))?;
        let s = engine::audit::verify_chain(&storage, &engine::verifier::CpuVerifier::new(), &mut |_, _| {})
            .map_err(|f| anyhow::anyhow!("{}: {f}", n.name))?;
        verified.push(VerifiedChain { node: n.name.clone(), height: s.height, head: s.head.to_hex() });
    }
    Ok(DemoReport {
        dir: dir.display().to_string(),
        chain_id: c.chain_id.clone(),
        load_all_up,
        load_one_down,
        killed: victim_name,
        height_at_restart: first.height,
        caught_up_to: caught_up,
        catch_up_ms,
        heads_agree,
        search,
        key_generation,
        sharing,
        verified,
    })
}

/// The key file among `folder`'s `*.key` whose public key is `key`.
fn key_file_of(folder: &Path, key: &engine::crypto::PublicKey) -> Result<PathBuf> {
    for entry in std::fs::read_dir(folder).with_context(|| format!("cannot read {}", folder.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "key") && crate::consortium::read_key(&path)?.public() == *key {
            return Ok(path);
        }
    }
    bail!("no key file for {key} in {}", folder.display())
}

/// The sharing session: the owner reads their record; grants the researcher; the researcher
/// reads it (through t validators' shares); the owner revokes; the researcher's next read is
/// refused by the chain; the audit trail shows it all.
async fn run_sharing(c: &Consortium, s: &Session, via: &Client, args: &DemoArgs) -> Result<SharingDemo> {
    use crate::cli::share;
    let record = s.written.first().context("the demo wrote no record")?;
    let patient_file = key_file_of(&c.dir.join("clients").join("node0").join("patients"), &record.owner)?;
    let patient = crate::consortium::read_key(&patient_file)?;
    let store = share::blob_store(c, None)?;

    let own = share::read_record(c, via, &patient, record.record_id, None, &store).await.context("the owner's read")?;
    say(
        args.json,
        format!(
            "  patient {} read their own {} record {} in {:.0} ms (shares from {})",
            patient.public().short(),
            record.data_type,
            &record.record_id.to_hex()[..12],
            own.total_ms,
            own.shares_from.join(", ")
        ),
    );
    let grant = engine::tx::Grant {
        grantee: s.researcher.public(),
        scope: engine::tx::GrantScope::Records(vec![record.record_id]),
        purpose: "demo: cohort study follow-up".into(),
        expires_at_ms: net::driver::now_ms() + 86_400_000,
    };
    let grant_id = share::grant(c, via, &patient, grant).await?;
    say(args.json, format!("  the patient granted the researcher this record (grant {})", &grant_id.to_hex()[..12]));
    let read = share::read_record(c, via, &s.researcher, record.record_id, Some(grant_id), &store)
        .await
        .context("the researcher's read")?;
    let plaintext_matches = engine::codec::sha256(&read.plaintext) == record.body_digest;
    let resource: serde_json::Value = serde_json::from_slice(&read.plaintext).unwrap_or_default();
    say(
        args.json,
        format!(
            "  the researcher read it in {:.0} ms: a FHIR {} of {} bytes, digest {} (shares from {})",
            read.total_ms,
            resource["resourceType"].as_str().unwrap_or("?"),
            read.plaintext_len,
            if plaintext_matches { "matches the writer's" } else { "DIFFERS from the writer's" },
            read.shares_from.join(", ")
        ),
    );
    let revoked = share::revoke(c, via, &patient, grant_id).await?;
    say(args.json, format!("  the patient revoked the grant (tx {})", &revoked.to_hex()[..12]));
    let again = share::read_record(c, via, &s.researcher, record.record_id, Some(grant_id), &store).await;
    let (refused_after_revoke, refusal) = match &again {
        Err(e) if share::is_refusal(e) => (true, format!("{e:#}")),
        Err(e) => (false, format!("failed for another reason: {e:#}")),
        Ok(_) => (false, "the read succeeded after the revocation".into()),
    };
    say(
        args.json,
        format!(
            "  the researcher's second read: {}",
            if refused_after_revoke { "refused by the chain" } else { "NOT refused" }
        ),
    );
    say(args.json, format!("    {refusal}"));
    let trail = share::audit(via, &patient.public()).await?;
    let audit = share::audit_lines(&trail);
    let anchored = audit.iter().filter(|l| l.contains(" anchored ")).count();
    say(args.json, format!("  the patient's audit trail ({} events; {anchored} records anchored, then):", audit.len()));
    for line in audit.iter().filter(|l| !l.contains(" anchored ")) {
        say(args.json, line);
    }
    Ok(SharingDemo {
        record: record.record_id.to_hex(),
        data_type: record.data_type.clone(),
        patient: patient.public().to_hex(),
        owner_read_ms: own.total_ms,
        grant: grant_id.to_hex(),
        reader: s.researcher.public().to_hex(),
        read_ms: read.total_ms,
        shares_from: read.shares_from,
        plaintext_matches,
        revoked: revoked.to_hex(),
        refused_after_revoke,
        refusal,
        audit,
    })
}

/// What the search part of the demo prepared: the researcher and the records with their
/// plaintext terms (known to the demo as their writer, never to the nodes).
struct Session {
    researcher: engine::crypto::SigningKey,
    authorizations: Vec<String>,
    written: Vec<crate::cli::import::WrittenRecord>,
}

/// Writes synthetic bundles, imports them through node0 and node1 (labels from each hospital's
/// node), enrols a researcher and has both hospitals authorise it.
async fn prepare_search(c: &Consortium, dir: &Path, args: &DemoArgs) -> Result<Session> {
    let bundles = dir.join("bundles");
    let opts = index::synth::SynthOptions { seed: 2026, patients: args.patients, start_year: 2019, end_year: 2025 };
    let mut written = Vec::new();
    for (h, hospital) in ["node0", "node1"].iter().enumerate() {
        let folder = bundles.join(hospital);
        std::fs::create_dir_all(&folder)?;
        for i in (0..args.patients).filter(|i| i % 2 == h) {
            let b = index::synth::patient(opts.seed, i as u64, &opts);
            std::fs::write(folder.join(format!("patient-{i:06}.json")), serde_json::to_vec_pretty(&b.bundle)?)?;
        }
        let store = crate::cli::share::blob_store(c, None)?;
        let (rep, records) = crate::cli::import::import(c, hospital, &folder, &store, true).await?;
        say(
            args.json,
            format!("  {hospital} wrote {} records (P = {} labels each)", rep.records, rep.labels_per_record),
        );
        written.extend(records);
    }
    let researcher = crate::consortium::random_key();
    let genesis = c.genesis()?;
    let chain = genesis.chain_id().clone();
    let ca = crate::consortium::read_key(&c.dir.join("ca").join("ca.key"))?;
    let client = Client::new(c.nodes[0].http)?;
    let timeout = Duration::from_secs(60);
    let enrol = engine::tx::Payload::Enroll(engine::tx::Enroll {
        key: researcher.public(),
        role: engine::tx::Role::Researcher,
        name: "demo researcher".into(),
    });
    client.commit_payload(&chain, &ca, &[], enrol, timeout).await.context("enrolling the researcher")?;
    let mut authorizations = Vec::new();
    for hospital in ["node0", "node1"] {
        let key = c.node_key(hospital)?;
        let auth = engine::tx::Payload::SearchAuthorization(engine::tx::SearchAuthorization {
            researcher: researcher.public(),
            purpose: "demo: diabetes and hypertension cohort".into(),
            expires_at_ms: net::driver::now_ms() + 86_400_000,
        });
        let id = client.commit_payload(&chain, &key, &[], auth, timeout).await?;
        authorizations.push(id.to_hex());
    }
    say(args.json, format!("  researcher {} enrolled and authorised by node0 and node1", researcher.public().short()));
    Ok(Session { researcher, authorizations, written })
}

/// Waits for the records' epochs to close, then searches on `node` and compares each answer
/// with the plaintext evaluation of the same query over the records the demo wrote.
async fn run_searches(c: &Consortium, s: &Session, node: &str, args: &DemoArgs) -> Result<SearchDemo> {
    let last_epoch = s.written.iter().map(|r| r.epoch).max().unwrap_or(0);
    let client = Client::new(c.nodes[0].http)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = client.get_json("/v1/status").await?;
        let open = status["index"]["domain"]["first_open_epoch"].as_u64().unwrap_or(0);
        if open > last_epoch {
            break;
        }
        if Instant::now() > deadline {
            bail!("epoch {last_epoch} did not close within a minute (epochs are {} ms)", args.epoch_len_ms);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hospitals = vec!["node0".to_string(), "node1".to_string()];
    let plain: Vec<index::query::PlainRecord<engine::codec::Digest>> = s
        .written
        .iter()
        .map(|r| index::query::PlainRecord {
            id: r.record_id,
            terms: r.terms.clone(),
            meta: index::query::PublicMeta {
                hospital: r.hospital,
                resource_type: r.data_type.clone(),
                created_at_ms: r.created_at_ms,
            },
        })
        .collect();
    let mut searches = Vec::new();
    for q in DEMO_QUERIES {
        let out = crate::cli::search::search(c, &s.researcher, &hospitals, Some(node), q, None).await?;
        let parsed = index::query::parse(q).map_err(|e| anyhow::anyhow!("demo query {q:?}: {e}"))?;
        let mut expected: Vec<String> =
            index::query::evaluate(&parsed, &plain).into_iter().map(|d| d.to_hex()).collect();
        expected.sort();
        let mut got: Vec<String> = out.records.iter().map(|r| r.record_id.clone()).collect();
        got.sort();
        searches.push(DemoSearch {
            query: q.to_string(),
            node: out.node,
            count: out.count,
            expected: expected.len(),
            matches_plaintext: got == expected && !out.truncated,
            verified: out.verified,
        });
    }
    Ok(SearchDemo {
        records_written: s.written.len(),
        researcher: s.researcher.public().to_hex(),
        authorizations: s.authorizations.clone(),
        searches,
    })
}

/// The demo's searches: a category with its codes, a lab value range in a year, a boolean mix.
const DEMO_QUERIES: [&str; 3] =
    ["icd10:E11", "loinc:4548-4>7 AND year:2024", "(icd10:I10 OR icd10:E78) AND NOT icd10:E11"];

fn human(r: &DemoReport) -> String {
    let mut s = String::from("\nmedchain demo summary\n");
    s += &format!("  consortium        {} in {}\n", r.chain_id, r.dir);
    s += &format!(
        "  all up            {} committed, {:.0} tx/s, p50 {:.0} ms, p99 {:.0} ms\n",
        r.load_all_up.committed, r.load_all_up.committed_tps, r.load_all_up.p50_ms, r.load_all_up.p99_ms
    );
    s += &format!(
        "  {} down        {} committed, {:.0} tx/s, p50 {:.0} ms\n",
        r.killed, r.load_one_down.committed, r.load_one_down.committed_tps, r.load_one_down.p50_ms
    );
    s += &format!(
        "  restart           {} came back at height {} and caught up to {} in {} ms\n",
        r.killed, r.height_at_restart, r.caught_up_to, r.catch_up_ms
    );
    s += &format!("  heads agree       {}\n", r.heads_agree);
    for q in &r.search.searches {
        s += &format!(
            "  search            {:<44} {} found on {}, plaintext {}, {}\n",
            q.query,
            q.count,
            q.node,
            q.expected,
            if q.matches_plaintext { "identical" } else { "DIFFERENT" }
        );
    }
    s += &format!(
        "  key generation    consortium key {}… ({} of {} validators) in {} ms\n",
        &r.key_generation.collective_key[..16],
        r.key_generation.threshold,
        r.key_generation.validators,
        r.key_generation.ms
    );
    let sh = &r.sharing;
    s += &format!(
        "  sharing           owner read {:.0} ms; granted read {:.0} ms, plaintext {}; after revoke {}\n",
        sh.owner_read_ms,
        sh.read_ms,
        if sh.plaintext_matches { "matches" } else { "DIFFERS" },
        if sh.refused_after_revoke { "refused" } else { "NOT REFUSED" }
    );
    for v in &r.verified {
        s += &format!("  ledger verify     {:<6} OK at height {} head {}\n", v.node, v.height, &v.head[..16]);
    }
    s
}

async fn wait_height(client: &Client, height: u64, timeout: Duration) -> Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = client.status().await?;
        if s.height >= height {
            return Ok(s.height);
        }
        if Instant::now() > deadline {
            bail!("{} stayed at height {} (wanted {height}) for {timeout:?}", s.name, s.height);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every node has the same block hash at `height`.
async fn heads_agree(clients: &[Client], height: u64) -> Result<bool> {
    let mut hashes = Vec::new();
    for c in clients {
        hashes.push(c.block_hash(height).await?);
    }
    Ok(hashes.windows(2).all(|w| w[0] == w[1]))
}

/// Loopback addresses that were free a moment ago: (QUIC, HTTP) per node.
pub(crate) fn free_addrs(n: usize) -> Result<Vec<(SocketAddr, SocketAddr)>> {
    let mut out = Vec::new();
    let mut keep = Vec::new();
    for _ in 0..n {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        out.push((udp.local_addr()?, tcp.local_addr()?));
        keep.push((udp, tcp));
    }
    Ok(out)
}

/// Child node processes; killed when dropped so a failed demo leaves nothing running.
pub(crate) struct Nodes {
    /// Resolved once: if the binary is rebuilt while the demo runs, restarts use the same path.
    pub(crate) exe: PathBuf,
    pub(crate) consortium: Consortium,
    pub(crate) children: Vec<Option<Child>>,
}

impl Nodes {
    pub(crate) fn start(&mut self, i: usize) -> Result<()> {
        let n = &self.consortium.nodes[i];
        let nd = self.consortium.node_dir(&n.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(nd.join("node.log"))?;
        let child = Command::new(&self.exe)
            .args(["node", "--config"])
            .arg(nd.join("node.toml"))
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", n.name))?;
        self.children[i] = Some(child);
        Ok(())
    }

    fn kill(&mut self, i: usize) -> Result<()> {
        if let Some(mut c) = self.children[i].take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    pub(crate) fn stop_all(&mut self) -> Result<()> {
        for slot in &mut self.children {
            if let Some(mut c) = slot.take() {
                terminate(&c);
                let deadline = Instant::now() + Duration::from_secs(20);
                loop {
                    if c.try_wait()?.is_some() {
                        break;
                    }
                    if Instant::now() > deadline {
                        c.kill()?;
                        c.wait()?;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends SIGTERM so the node shuts down cleanly.
fn terminate(child: &Child) {
    #[cfg(unix)]
    {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    #[cfg(not(unix))]
    {
        let _ = child;
    }
}
