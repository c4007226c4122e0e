//! `medchain init`: a new consortium folder.

use crate::consortium::{self, Consortium, NodeEntry, NodeRole};
use crate::output::report;
use anyhow::{bail, Context, Result};
use engine::codec;
use engine::crypto::{ChainId, SigningKey};
use engine::genesis::{ChainParams, GenesisBody, NodeInfo};
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `medchain init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Number of validators (PBFT tolerates f faulty of n = 3f+1).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Number of auditor nodes (follow and re-verify, never vote).
    #[arg(long, default_value_t = 0)]
    pub auditors: usize,
    /// The folder to create; it must not already hold a consortium.
    #[arg(long)]
    pub out: PathBuf,
    /// The chain id (default: `medchain-` and 8 random hex digits).
    #[arg(long)]
    pub chain_id: Option<String>,
    /// Node i listens for peers on 127.0.0.1:(base_port + 2i) and for HTTP on the next port.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Length of the search index's epochs in milliseconds: records become searchable once
    /// their epoch has closed (one hour by default; short epochs suit demos).
    #[arg(long, default_value_t = index::labels::EPOCH_LEN_MS_DEFAULT)]
    pub epoch_len_ms: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct InitReport {
    dir: String,
    chain_id: String,
    genesis: String,
    nodes: Vec<NodeEntry>,
}

/// Runs `medchain init`.
pub fn run(args: InitArgs) -> Result<ExitCode> {
    let ports: Vec<(SocketAddr, SocketAddr)> = (0..args.validators + args.auditors)
        .map(|i| {
            let p2p = port(args.base_port, 2 * i)?;
            let http = port(args.base_port, 2 * i + 1)?;
            Ok((p2p, http))
        })
        .collect::<Result<_>>()?;
    let c = create(&args.out, args.validators, args.auditors, args.chain_id.clone(), &ports, args.epoch_len_ms)?;
    let rep = InitReport {
        dir: args.out.display().to_string(),
        chain_id: c.chain_id.clone(),
        genesis: c.genesis()?.hash().to_hex(),
        nodes: c.nodes.clone(),
    };
    report(args.json, &rep, || {
        let mut s = format!("created consortium {} in {}\n", rep.chain_id, rep.dir);
        for n in &rep.nodes {
            s += &format!(
                "  {:<8} {:<9} p2p {}  http {}  config {}/{}/node.toml\n",
                n.name,
                format!("{:?}", n.role).to_lowercase(),
                n.p2p,
                n.http,
                rep.dir,
                n.name
            );
        }
        s + &format!("start a node with: medchain node --config {}/node0/node.toml", rep.dir)
    });
    Ok(ExitCode::SUCCESS)
}

fn port(base: u16, offset: usize) -> Result<SocketAddr> {
    let p = u16::try_from(base as usize + offset).context("--base-port too high for this many nodes")?;
    Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
}

/// Creates a consortium folder with `validators + auditors` nodes at the given (p2p, http)
/// addresses. Used by `init`, `demo` and the tests.
pub fn create(
    dir: &Path,
    validators: usize,
    auditors: usize,
    chain_id: Option<String>,
    addrs: &[(SocketAddr, SocketAddr)],
    epoch_len_ms: u64,
) -> Result<Consortium> {
    if epoch_len_ms == 0 {
        bail!("--epoch-len-ms must be at least 1");
    }
    if validators == 0 || validators > engine::limits::VALIDATORS_MAX {
        bail!("--validators must be 1 to {}", engine::limits::VALIDATORS_MAX);
    }
    if addrs.len() != validators + auditors {
        bail!("need one address pair per node");
    }
    consortium::ensure_fresh(dir)?;
    let chain_id = match chain_id {
        Some(c) => ChainId::new(c)?,
        None => ChainId::new(format!("medchain-{}", hex::encode(&consortium::random_key().seed()[..4])))?,
    };
    std::fs::create_dir_all(dir.join("ca")).with_context(|| format!("cannot create {}", dir.display()))?;

    let ca = consortium::random_key();
    let names: Vec<String> = (0..validators + auditors).map(|i| format!("node{i}")).collect();
    let keys: Vec<SigningKey> = names.iter().map(|_| consortium::random_key()).collect();
    let info = |i: usize| NodeInfo { name: names[i].clone(), key: keys[i].public() };
    let genesis = GenesisBody {
        chain_id: chain_id.clone(),
        created_at_ms: now_ms(),
        ca_key: ca.public(),
        validators: (0..validators).map(info).collect(),
        auditors: (validators..validators + auditors).map(info).collect(),
        params: ChainParams::default(),
    }
    .sign(&ca);
    genesis.verify().context("the new genesis does not verify (a bug)")?;

    consortium::write_key(&dir.join("ca/ca.key"), &ca)?;
    let ca_pem = net::tls::ca_certificate(&ca, &chain_id).context("cannot issue the CA certificate")?;
    std::fs::write(dir.join("ca/ca.pem"), &ca_pem)?;
    std::fs::write(dir.join("genesis.bin"), codec::encode(&genesis))?;
    std::fs::write(dir.join("genesis.json"), serde_json::to_string_pretty(&genesis)?)?;

    let nodes: Vec<NodeEntry> = names
        .iter()
        .enumerate()
        .map(|(i, name)| NodeEntry {
            name: name.clone(),
            role: if i < validators { NodeRole::Validator } else { NodeRole::Auditor },
            p2p: addrs[i].0,
            http: addrs[i].1,
        })
        .collect();
    for (i, node) in nodes.iter().enumerate() {
        let nd = dir.join(&node.name);
        std::fs::create_dir_all(nd.join("data"))?;
        consortium::write_key(&nd.join("node.key"), &keys[i])?;
        let pem = net::tls::node_certificate(&ca, &ca_pem, &keys[i], &node.name)
            .with_context(|| format!("cannot issue the certificate of {}", node.name))?;
        std::fs::write(nd.join("node.pem"), pem)?;
        let config = node_config(dir, node, &nodes, epoch_len_ms)?;
        std::fs::write(nd.join("node.toml"), config.to_toml())?;
    }
    let c = Consortium { chain_id: chain_id.to_string(), nodes, dir: dir.to_path_buf() };
    c.save()?;
    Ok(c)
}

/// The node.toml of `node`, with the consensus settings at their defaults. Paths are absolute so
/// the node can be started from anywhere.
fn node_config(dir: &Path, node: &NodeEntry, all: &[NodeEntry], epoch_len_ms: u64) -> Result<net::NodeConfig> {
    let abs = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let nd = abs(dir.join(&node.name));
    let minimal = toml::toml! {
        name = (node.name.clone())
        data_dir = (nd.join("data").display().to_string())
        p2p_listen = (node.p2p.to_string())
        http_listen = (node.http.to_string())
        genesis = (abs(dir.join("genesis.bin")).display().to_string())
        node_key = (nd.join("node.key").display().to_string())
        ca_cert = (abs(dir.join("ca/ca.pem")).display().to_string())
        node_cert = (nd.join("node.pem").display().to_string())
    };
    let mut c = net::NodeConfig::from_toml(&minimal.to_string()).context("building node.toml")?;
    c.peers = all
        .iter()
        .filter(|p| p.name != node.name)
        .map(|p| net::PeerConfig { name: p.name.clone(), addr: p.p2p })
        .collect();
    c.index.epoch_len_ms = epoch_len_ms;
    c.index.index_key = Some(nd.join("index.key"));
    Ok(c)
}

/// Wall-clock milliseconds since the Unix epoch (the binary's edge reads the clock).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
