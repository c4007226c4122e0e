//! Four validators over real QUIC on loopback, each with a redb chain in a temp folder: they
//! commit submitted transactions; with one stopped the other three keep committing; restarted,
//! it catches up to the same chain.

mod common;

use common::{base, enroll, eventually, get_json, node_files, post_json, Consortium};
use net::{Node, NodeConfig, NodeHandle, PeerConfig};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Starts node `i` knowing the QUIC addresses of the nodes after it (the ones it dials).
async fn start(c: &Consortium, dir: &std::path::Path, i: usize, port: u16, nodes: &[Option<NodeHandle>]) -> NodeHandle {
    let mut config: NodeConfig = node_files(c, dir, i, port);
    for (j, n) in nodes.iter().enumerate().skip(i + 1) {
        if let Some(n) = n {
            config.peers.push(PeerConfig { name: c.names[j].clone(), addr: n.p2p_addr() });
        }
    }
    Node::start(config).await.unwrap()
}

async fn submit(http: &reqwest::Client, node: &NodeHandle, txs: &[engine::tx::Transaction]) {
    let body = json!({ "txs": txs.iter().map(|t| hex::encode(t.encode())).collect::<Vec<_>>() });
    let (status, body) = post_json(http, &format!("{}/v1/transactions/batch", base(node.http_addr())), &body).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], txs.len(), "{body}");
}

async fn committed_height(http: &reqwest::Client, node: &NodeHandle, tx: &engine::tx::Transaction) -> Option<u64> {
    let url = format!("{}/v1/transactions/{}", base(node.http_addr()), tx.id().to_hex());
    let (_, body) = get_json(http, &url).await;
    (body["status"] == "committed").then(|| body["height"].as_u64()).flatten()
}

fn node(nodes: &[Option<NodeHandle>], i: usize) -> &NodeHandle {
    nodes[i].as_ref().unwrap()
}

async fn block_hash(http: &reqwest::Client, node: &NodeHandle, height: u64) -> Option<String> {
    let (status, body) = get_json(http, &format!("{}/v1/blocks/{height}", base(node.http_addr()))).await;
    (status == 200).then(|| body["hash"].as_str().map(String::from)).flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_validators_commit_keep_going_without_one_and_it_catches_up() {
    let c = Consortium::new(4, 0);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut nodes: Vec<Option<NodeHandle>> = (0..4).map(|_| None).collect();
    for i in (0..4).rev() {
        nodes[i] = Some(start(&c, dir.path(), i, 0, &nodes).await);
    }
    eventually(WAIT, "all validators to connect", || {
        let ok =
            nodes.iter().flatten().all(|n| n.metrics().peers_connected.load(std::sync::atomic::Ordering::Relaxed) == 3);
        async move { ok }
    })
    .await;

    // Submitted to a backup: forwarded to the primary, committed everywhere.
    let first: Vec<_> = (0..5).map(|k| enroll(&c, 1, k + 1, 10 + k as u8)).collect();
    submit(&http, node(&nodes, 1), &first).await;
    let last = first.last().unwrap().clone();
    for i in 0..4 {
        let (http, n) = (http.clone(), node(&nodes, i));
        eventually(WAIT, &format!("node{i} to commit the first batch"), || {
            let (http, last) = (http.clone(), last.clone());
            async move { committed_height(&http, n, &last).await.is_some() }
        })
        .await;
    }

    // Node 3 stops; three of four are a quorum and keep committing.
    let stopped = nodes[3].take().unwrap();
    let port3 = stopped.p2p_addr().port();
    stopped.shutdown().await;
    let second: Vec<_> = (0..5).map(|k| enroll(&c, 2, k + 1, 20 + k as u8)).collect();
    submit(&http, node(&nodes, 0), &second).await;
    let last = second.last().unwrap().clone();
    for i in 0..3 {
        let (http, n) = (http.clone(), node(&nodes, i));
        eventually(WAIT, &format!("node{i} to commit without node3"), || {
            let (http, last) = (http.clone(), last.clone());
            async move { committed_height(&http, n, &last).await.is_some() }
        })
        .await;
    }

    // Node 3 restarts from its data folder, on its old address, and catches up.
    nodes[3] = Some(start(&c, dir.path(), 3, port3, &nodes).await);
    let third: Vec<_> = (0..3).map(|k| enroll(&c, 0, k + 1, 30 + k as u8)).collect();
    submit(&http, node(&nodes, 2), &third).await;
    let last = third.last().unwrap().clone();
    let (http0, n0) = (http.clone(), node(&nodes, 0));
    eventually(WAIT, "node0 to commit the third batch", || {
        let (http, last) = (http0.clone(), last.clone());
        async move { committed_height(&http, n0, &last).await.is_some() }
    })
    .await;
    let target = committed_height(&http, n0, &last).await.unwrap();
    let n3 = node(&nodes, 3);
    eventually(WAIT, "node3 to catch up", || {
        let http = http.clone();
        async move {
            let (a, b) = (block_hash(&http, n0, target).await, block_hash(&http, n3, target).await);
            a.is_some() && a == b
        }
    })
    .await;
    // The same chain all the way down.
    for h in 1..=target {
        assert_eq!(block_hash(&http, n0, h).await, block_hash(&http, n3, h).await, "block {h}");
    }
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_auditor_follows_the_chain_and_accepts_no_transactions() {
    let c = Consortium::new(4, 1);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut nodes: Vec<Option<NodeHandle>> = (0..4).map(|_| None).collect();
    for i in (0..4).rev() {
        nodes[i] = Some(start(&c, dir.path(), i, 0, &nodes).await);
    }
    // The auditor dials the validators; they need not know its address.
    let mut config = node_files(&c, dir.path(), 4, 0);
    for (j, n) in nodes.iter().enumerate() {
        config.peers.push(PeerConfig { name: c.names[j].clone(), addr: n.as_ref().unwrap().p2p_addr() });
    }
    let auditor = Node::start(config).await.unwrap();

    let txs: Vec<_> = (0..4).map(|k| enroll(&c, 3, k + 1, 40 + k as u8)).collect();
    submit(&http, node(&nodes, 2), &txs).await;
    let last = txs.last().unwrap().clone();
    let n0 = node(&nodes, 0);
    eventually(WAIT, "node0 to commit", || {
        let (http, last) = (http.clone(), last.clone());
        async move { committed_height(&http, n0, &last).await.is_some() }
    })
    .await;
    let target = committed_height(&http, n0, &last).await.unwrap();
    eventually(WAIT, "the auditor to follow", || {
        let http = http.clone();
        let auditor = &auditor;
        async move {
            let (a, b) = (block_hash(&http, n0, target).await, block_hash(&http, auditor, target).await);
            a.is_some() && a == b
        }
    })
    .await;
    assert_eq!(committed_height(&http, &auditor, &last).await, Some(target));

    let (_, status) = get_json(&http, &format!("{}/v1/status", base(auditor.http_addr()))).await;
    assert_eq!(status["role"], "auditor", "{status}");
    let body = json!({ "tx": hex::encode(enroll(&c, 3, 100, 99).encode()) });
    let (code, body) = post_json(&http, &format!("{}/v1/transactions", base(auditor.http_addr())), &body).await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"]["code"], "read_only_node", "{body}");

    auditor.shutdown().await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_primary_stops_the_others_change_view_and_it_catches_up_on_return() {
    let c = Consortium::new(4, 0);
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut nodes: Vec<Option<NodeHandle>> = (0..4).map(|_| None).collect();
    for i in (0..4).rev() {
        nodes[i] = Some(start(&c, dir.path(), i, 0, &nodes).await);
    }
    let first = enroll(&c, 1, 1, 60);
    submit(&http, node(&nodes, 1), std::slice::from_ref(&first)).await;
    let n1 = node(&nodes, 1);
    eventually(WAIT, "node1 to commit in view 0", || {
        let (http, first) = (http.clone(), first.clone());
        async move { committed_height(&http, n1, &first).await.is_some() }
    })
    .await;
    assert_eq!(node(&nodes, 1).status().view, Some(0));

    nodes[0].take().unwrap().shutdown().await;
    let second: Vec<_> = (0..3).map(|k| enroll(&c, 2, k + 1, 61 + k as u8)).collect();
    submit(&http, node(&nodes, 1), &second).await;
    let last = second.last().unwrap().clone();
    for i in 1..4 {
        let (http, n) = (http.clone(), node(&nodes, i));
        eventually(WAIT, &format!("node{i} to commit after a view change"), || {
            let (http, last) = (http.clone(), last.clone());
            async move { committed_height(&http, n, &last).await.is_some() }
        })
        .await;
    }
    let view = node(&nodes, 1).status().view.unwrap();
    assert!(view >= 1, "no view change happened");

    // The old primary returns (it dials the others) and catches up.
    nodes[0] = Some(start(&c, dir.path(), 0, 0, &nodes).await);
    let third = enroll(&c, 3, 1, 70);
    submit(&http, node(&nodes, 2), std::slice::from_ref(&third)).await;
    let n2 = node(&nodes, 2);
    eventually(WAIT, "node2 to commit the third transaction", || {
        let (http, third) = (http.clone(), third.clone());
        async move { committed_height(&http, n2, &third).await.is_some() }
    })
    .await;
    let target = committed_height(&http, n2, &third).await.unwrap();
    let n0 = node(&nodes, 0);
    eventually(WAIT, "node0 to catch up", || {
        let http = http.clone();
        async move {
            let (a, b) = (block_hash(&http, n2, target).await, block_hash(&http, n0, target).await);
            a.is_some() && a == b
        }
    })
    .await;
    for n in nodes.into_iter().flatten() {
        n.shutdown().await;
    }
}
