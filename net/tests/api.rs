//! The HTTP API of a one-validator chain on loopback: refusals are JSON naming the field,
//! accepted transactions commit, blocks and status are served.

mod common;

use common::{base, enroll, eventually, get_json, node_files, post_json, Consortium};
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_refuses_bad_input_with_json_and_serves_committed_transactions() {
    let c = Consortium::new(1, 0);
    let dir = tempfile::tempdir().unwrap();
    let node = net::Node::start(node_files(&c, dir.path(), 0, 0)).await.unwrap();
    let url = base(node.http_addr());
    let http = reqwest::Client::new();

    // Malformed hex.
    let (status, body) = post_json(&http, &format!("{url}/v1/transactions"), &json!({ "tx": "zz-not-hex" })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_hex", "{body}");
    assert_eq!(body["error"]["field"], "tx", "{body}");

    // Hex, but not a transaction.
    let (status, body) = post_json(&http, &format!("{url}/v1/transactions"), &json!({ "tx": "00ff" })).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "malformed_transaction", "{body}");

    // Not even the expected JSON.
    let r = http.post(format!("{url}/v1/transactions")).body("{\"tx\": 1").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_json", "{body}");

    // A bad signature: named, with the field to fix.
    let mut forged = enroll(&c, 0, 1, 50);
    forged.signatures[0].0[5] ^= 1;
    let (status, body) =
        post_json(&http, &format!("{url}/v1/transactions"), &json!({ "tx": hex::encode(forged.encode()) })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "bad_signature", "{body}");
    assert_eq!(body["error"]["field"], "signatures[0]", "{body}");

    // Unknown and malformed transaction ids.
    let unknown = engine::codec::sha256(b"nothing").to_hex();
    let (status, body) = get_json(&http, &format!("{url}/v1/transactions/{unknown}")).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "unknown_transaction", "{body}");
    let (status, _) = get_json(&http, &format!("{url}/v1/transactions/xyz")).await;
    assert_eq!(status, 400);

    // A good transaction is accepted and commits.
    let tx = enroll(&c, 0, 1, 51);
    let (status, body) =
        post_json(&http, &format!("{url}/v1/transactions"), &json!({ "tx": hex::encode(tx.encode()) })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], tx.id().to_hex());
    let status_url = format!("{url}/v1/transactions/{}", tx.id().to_hex());
    eventually(WAIT, "the transaction to commit", || {
        let (http, status_url) = (http.clone(), status_url.clone());
        async move { get_json(&http, &status_url).await.1["status"] == "committed" }
    })
    .await;
    let (_, body) = get_json(&http, &status_url).await;
    let height = body["height"].as_u64().unwrap();
    assert!(height >= 1, "{body}");

    // Its block, with the certificate.
    let (status, block) = get_json(&http, &format!("{url}/v1/blocks/{height}")).await;
    assert_eq!(status, 200, "{block}");
    assert_eq!(block["height"], height);
    assert!(block["certificate"]["votes"].as_array().is_some_and(|v| !v.is_empty()), "{block}");
    let (status, _) = get_json(&http, &format!("{url}/v1/blocks/{}", height + 1000)).await;
    assert_eq!(status, 404);
    let (status, _) = get_json(&http, &format!("{url}/v1/blocks/minus-one")).await;
    assert_eq!(status, 400);

    // The same nonce again: stale.
    let replay = enroll(&c, 0, 1, 52);
    let (status, body) =
        post_json(&http, &format!("{url}/v1/transactions"), &json!({ "tx": hex::encode(replay.encode()) })).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "stale_nonce", "{body}");
    assert_eq!(body["error"]["field"], "body.nonce", "{body}");

    // A batch: per-item results.
    let good = enroll(&c, 0, 2, 53);
    let txs = json!({ "txs": [hex::encode(good.encode()), "nope", hex::encode(forged.encode())] });
    let (status, body) = post_json(&http, &format!("{url}/v1/transactions/batch"), &txs).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 1, "{body}");
    assert_eq!(body["results"][0]["id"], good.id().to_hex(), "{body}");
    assert_eq!(body["results"][1]["error"]["code"], "malformed_hex", "{body}");
    assert_eq!(body["results"][1]["error"]["field"], "txs[1]", "{body}");
    assert_eq!(body["results"][2]["error"]["code"], "bad_signature", "{body}");

    // Status and metrics.
    let (status, s) = get_json(&http, &format!("{url}/v1/status")).await;
    assert_eq!(status, 200);
    assert_eq!(s["name"], "node0");
    assert_eq!(s["role"], "validator");
    assert!(s["height"].as_u64().unwrap() >= height, "{s}");
    assert_eq!(s["primary"], 0);
    assert!(s["peers"].as_array().unwrap().is_empty());
    let text = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("medchain_committed_height"), "{text}");
    assert!(text.contains("medchain_txs_refused_total{code=\"bad_signature\"}"), "{text}");

    // Too big a body: refused before it is parsed.
    // Only the headers are sent: a client streaming the whole body would race the server's early
    // answer (it may hit a broken pipe before it reads the 413).
    let (status, body) = oversize_request(node.http_addr(), net::limits::HTTP_BODY_BYTES_MAX + 1).await;
    assert_eq!(status, 413, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "body_too_large", "{body}");

    // Unknown routes are JSON too.
    let (status, body) = get_json(&http, &format!("{url}/v2/nothing")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "no_such_endpoint");

    node.shutdown().await;
}

/// POSTs headers announcing a `len`-byte body, sends none of it, and returns the status and body
/// of the answer.
async fn oversize_request(addr: std::net::SocketAddr, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/transactions HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the node waited for the body instead of refusing it by its announced length");
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}
