//! A small HTTP client for a node's /v1 API, used by `load`, `demo` and the tests.

use anyhow::{bail, Context, Result};
use engine::crypto::PublicKey;
use engine::tx::{Transaction, TxId};
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A node's HTTP API.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// `GET /v1/status`.
#[derive(Deserialize, Debug, Clone)]
pub struct Status {
    /// Node name.
    pub name: String,
    /// Committed height.
    pub height: u64,
}

/// One committed block in the commit feed.
#[derive(Deserialize, Debug, Clone)]
pub struct CommitEntry {
    /// Height.
    pub height: u64,
    /// Ids of applied transactions.
    pub applied: Vec<TxId>,
    /// Ids of transactions included but rejected at execution.
    pub rejected: Vec<TxId>,
}

#[derive(Deserialize)]
struct CommitFeed {
    commits: Vec<CommitEntry>,
}

#[derive(Deserialize)]
struct BatchResult {
    results: Vec<BatchItem>,
}

#[derive(Deserialize)]
struct BatchItem {
    id: Option<String>,
    error: Option<ApiError>,
}

#[derive(Deserialize, Debug)]
struct ApiError {
    message: String,
}

#[derive(Deserialize)]
struct TxStatus {
    status: String,
}

#[derive(Deserialize)]
struct Participant {
    nonce: u64,
}

impl Client {
    /// A client for the node listening at `addr`.
    pub fn new(addr: SocketAddr) -> Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).pool_max_idle_per_host(16).build()?;
        Ok(Client { base: format!("http://{addr}"), http })
    }

    /// Waits until the node answers `/v1/status`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Status> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.status().await {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() > deadline => {
                    return Err(e).with_context(|| format!("node at {} did not answer within {timeout:?}", self.base))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<Status> {
        Ok(self.http.get(format!("{}/v1/status", self.base)).send().await?.error_for_status()?.json().await?)
    }

    /// The last committed nonce of `key` (0 if it never sent a transaction).
    pub async fn nonce(&self, key: &PublicKey) -> Result<u64> {
        let r = self.http.get(format!("{}/v1/participants/{}", self.base, key.to_hex())).send().await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(0);
        }
        Ok(r.error_for_status()?.json::<Participant>().await?.nonce)
    }

    /// Submits transactions in one request; returns the refused ones with the reason.
    pub async fn submit_batch(&self, txs: &[Transaction]) -> Result<Vec<(String, String)>> {
        let body = serde_json::json!({ "txs": txs.iter().map(|t| hex::encode(t.encode())).collect::<Vec<_>>() });
        let r = self.http.post(format!("{}/v1/transactions/batch", self.base)).json(&body).send().await?;
        if !r.status().is_success() {
            let status = r.status();
            bail!("batch submission refused ({status}): {}", r.text().await.unwrap_or_default());
        }
        let res: BatchResult = r.json().await?;
        Ok(res.results.into_iter().filter_map(|i| i.error.map(|e| (i.id.unwrap_or_default(), e.message))).collect())
    }

    /// `pending`, `committed`, `rejected` or `unknown`.
    pub async fn tx_status(&self, id: &TxId) -> Result<String> {
        let r = self.http.get(format!("{}/v1/transactions/{}", self.base, id.to_hex())).send().await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok("unknown".into());
        }
        Ok(r.error_for_status()?.json::<TxStatus>().await?.status)
    }

    /// Committed blocks from `from` on (a bounded page).
    pub async fn commits(&self, from: u64) -> Result<Vec<CommitEntry>> {
        let r = self.http.get(format!("{}/v1/commits?from={from}", self.base)).send().await?;
        Ok(r.error_for_status()?.json::<CommitFeed>().await?.commits)
    }
}

#[derive(Deserialize)]
struct BlockView {
    hash: String,
}

impl Client {
    /// The hash of the committed block at `height` (hex).
    pub async fn block_hash(&self, height: u64) -> Result<String> {
        let r = self.http.get(format!("{}/v1/blocks/{height}", self.base)).send().await?;
        Ok(r.error_for_status()?.json::<BlockView>().await?.hash)
    }
}
