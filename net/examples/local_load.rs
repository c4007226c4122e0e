//! A local consortium in one process under load: N validators over real QUIC on loopback, each
//! with a redb chain in a temp folder; transactions submitted over HTTP in batches; prints the
//! commit throughput and each node's status. Exits with 1 if the load does not commit in time.
//!
//! `cargo run --release -p medchain-net --example local_load -- [TXS_PER_SENDER] [VIEW_CHANGE_TIMEOUT_MS]`

use engine::crypto::{ChainId, SigningKey};
use engine::genesis::{ChainParams, GenesisBody, NodeInfo};
use engine::tx::{Enroll, Payload, Role, Transaction, TxBody};
use net::{Node, NodeConfig, NodeHandle, PeerConfig};
use std::time::{Duration, Instant};

const VALIDATORS: usize = 4;
const HTTP_BATCH_TXS: usize = 500;
const COMMIT_DEADLINE: Duration = Duration::from_secs(90);

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let per_sender: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let view_change_timeout_ms: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);

    let dir = tempfile::tempdir().expect("temp folder");
    let chain_id = ChainId::new("local-load").expect("chain id");
    let ca = SigningKey::from_seed([200; 32]);
    let ca_pem = net::tls::ca_certificate(&ca, &chain_id).expect("CA certificate");
    let keys: Vec<SigningKey> = (0..VALIDATORS).map(|i| SigningKey::from_seed([i as u8 + 1; 32])).collect();
    let names: Vec<String> = (0..VALIDATORS).map(|i| format!("node{i}")).collect();
    let genesis = GenesisBody {
        chain_id: chain_id.clone(),
        created_at_ms: 1_700_000_000_000,
        ca_key: ca.public(),
        validators: keys.iter().zip(&names).map(|(k, n)| NodeInfo { name: n.clone(), key: k.public() }).collect(),
        auditors: vec![],
        params: ChainParams::default(),
    }
    .sign(&ca);
    let path = |f: &str| dir.path().join(f);
    std::fs::write(path("genesis.bin"), engine::codec::encode(&genesis)).expect("write genesis");
    std::fs::write(path("ca.pem"), &ca_pem).expect("write CA");

    // Start from the highest node id: each node dials the ones after it.
    let mut nodes: Vec<NodeHandle> = Vec::new();
    for i in (0..VALIDATORS).rev() {
        let name = &names[i];
        std::fs::write(path(&format!("{name}.key")), hex::encode(keys[i].seed())).expect("write key");
        let cert = net::tls::node_certificate(&ca, &ca_pem, &keys[i], name).expect("node certificate");
        std::fs::write(path(&format!("{name}.pem")), cert).expect("write certificate");
        let peers = nodes
            .iter()
            .map(|n| PeerConfig { name: names[n.node_id() as usize].clone(), addr: n.p2p_addr() })
            .collect();
        let config = NodeConfig {
            name: name.clone(),
            data_dir: path(&format!("{name}-data")),
            p2p_listen: "127.0.0.1:0".parse().expect("address"),
            http_listen: "127.0.0.1:0".parse().expect("address"),
            peers,
            genesis: path("genesis.bin"),
            node_key: path(&format!("{name}.key")),
            ca_cert: path("ca.pem"),
            node_cert: path(&format!("{name}.pem")),
            batch_txs: 1024,
            batch_delay_ms: 20,
            view_change_timeout_ms,
            pending_txs_max: 50_000,
            gpu: Default::default(),
            index: Default::default(),
        };
        nodes.push(Node::start(config).await.expect("node starts"));
    }
    nodes.sort_by_key(|n| n.node_id());

    // Each hospital (validator) enrols `per_sender` patients, submitted to its own node.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut lasts = Vec::new();
    for (s, key) in keys.iter().enumerate() {
        let txs: Vec<Transaction> = (0..per_sender).map(|k| enroll(&chain_id, key, s as u8, k)).collect();
        for chunk in txs.chunks(HTTP_BATCH_TXS) {
            let body = serde_json::json!({ "txs": chunk.iter().map(|t| hex::encode(t.encode())).collect::<Vec<_>>() });
            let url = format!("http://{}/v1/transactions/batch", nodes[s].http_addr());
            let reply: serde_json::Value =
                http.post(url).json(&body).send().await.expect("submit").json().await.expect("JSON reply");
            if reply["accepted"] != chunk.len() {
                eprintln!("some transactions were refused: {}", reply["results"]);
            }
        }
        lasts.push(txs.last().expect("at least one").id());
    }
    println!("submitted {} transactions in {:?}", per_sender * VALIDATORS as u64, started.elapsed());

    let deadline = Instant::now() + COMMIT_DEADLINE;
    for id in &lasts {
        let url = format!("http://{}/v1/transactions/{}", nodes[0].http_addr(), id.to_hex());
        loop {
            let status: serde_json::Value =
                http.get(&url).send().await.expect("status").json().await.unwrap_or_default();
            if status["status"] == "committed" {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("not committed within {COMMIT_DEADLINE:?}");
                for n in &nodes {
                    eprintln!("node{}: {:?}", n.node_id(), n.status());
                    let text = n.metrics().render();
                    let lines = text.lines().filter(|l| {
                        !l.starts_with('#')
                            && (l.contains("dropped")
                                || l.contains("refused")
                                || l.contains("step")
                                || l.contains("received"))
                    });
                    eprintln!("  {}", lines.collect::<Vec<_>>().join("\n  "));
                }
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let elapsed = started.elapsed();
    let total = per_sender * VALIDATORS as u64;
    println!("committed {total} in {elapsed:?}: {:.0} tx/s", total as f64 / elapsed.as_secs_f64());
    for n in nodes {
        println!("node{}: {:?}", n.node_id(), n.status());
        n.shutdown().await;
    }
}

/// Hospital `key` enrols patient number `k` of sender `s`.
fn enroll(chain_id: &ChainId, key: &SigningKey, s: u8, k: u64) -> Transaction {
    let mut seed = [0u8; 32];
    seed[0] = s;
    seed[1..9].copy_from_slice(&k.to_le_bytes());
    seed[31] = 0xa5;
    let body = TxBody {
        sender: key.public(),
        nonce: k + 1,
        expiry_height: u64::MAX,
        payload: Payload::Enroll(Enroll {
            key: SigningKey::from_seed(seed).public(),
            role: Role::Patient,
            name: format!("patient-{s}-{k}"),
        }),
    };
    body.sign(chain_id, &[key])
}
