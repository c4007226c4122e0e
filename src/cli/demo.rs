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
    verified: Vec<VerifiedChain>,
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
    Ok(if rep.heads_agree { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
    let c = crate::cli::init::create(dir, validators, auditors, None, &addrs)?;
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
        verified,
    })
}

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
fn free_addrs(n: usize) -> Result<Vec<(SocketAddr, SocketAddr)>> {
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
struct Nodes {
    /// Resolved once: if the binary is rebuilt while the demo runs, restarts use the same path.
    exe: PathBuf,
    consortium: Consortium,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn start(&mut self, i: usize) -> Result<()> {
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

    fn stop_all(&mut self) -> Result<()> {
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
