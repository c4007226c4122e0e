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

/// A refusal as a node's API reports it: `{"error":{"code","message","field"}}`.
#[derive(Deserialize, Debug, Clone)]
pub struct Refusal {
    /// Stable machine-readable code.
    pub code: String,
    /// What is wrong and what to do.
    pub message: String,
    /// The input to fix, when there is one.
    #[serde(default)]
    pub field: Option<String>,
}

#[derive(Deserialize)]
struct RefusalBody {
    error: Refusal,
}

impl Client {
    /// POSTs `body` as JSON to `path`; a refusal becomes an error naming its code, message and
    /// field, so the caller can show it as it is.
    pub async fn post_json<B: serde::Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let r = self.http.post(&url).json(body).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = r.status();
        let bytes = r.bytes().await.with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            if let Ok(RefusalBody { error }) = serde_json::from_slice::<RefusalBody>(&bytes) {
                let field = error.field.as_deref().map(|f| format!(" (field {f})")).unwrap_or_default();
                bail!("{url} refused ({status}, {}){field}: {}", error.code, error.message);
            }
            bail!("{url} answered {status}: {}", String::from_utf8_lossy(&bytes));
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{url} answered with unexpected JSON"))
    }

    /// GETs JSON from `path`.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let url = format!("{}{path}", self.base);
        let r = self.http.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = r.status();
        if !status.is_success() {
            bail!("{url} answered {status}: {}", r.text().await.unwrap_or_default());
        }
        r.json().await.with_context(|| format!("{url} answered with unexpected JSON"))
    }

    /// Submits one transaction; an immediate refusal is an error with the node's reason.
    pub async fn submit(&self, tx: &Transaction) -> Result<TxId> {
        let refused = self.submit_batch(std::slice::from_ref(tx)).await?;
        if let Some((_, why)) = refused.into_iter().next() {
            bail!("transaction {} refused: {why}", tx.id());
        }
        Ok(tx.id())
    }

    /// Waits until every transaction of `ids` is committed and applied; a rejection or the
    /// timeout is an error naming the transaction.
    pub async fn wait_committed(&self, ids: &[TxId], timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for id in ids {
            loop {
                match self.tx_status(id).await?.as_str() {
                    "committed" => break,
                    "rejected" => bail!("transaction {id} was rejected; see GET /v1/transactions/{id} for the reason"),
                    _ if Instant::now() > deadline => bail!("transaction {id} was not committed within {timeout:?}"),
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
        Ok(())
    }
}

/// How many blocks a transaction built by [`Client::commit_payload`] stays valid for.
pub const TX_VALID_BLOCKS: u64 = 10_000;

impl Client {
    /// Builds a transaction of `payload` from `key` with its next nonce, signs it (with `cosigners`
    /// after the sender, as `TxBody::signers` orders them), submits it and waits until it is
    /// committed. Returns its id.
    pub async fn commit_payload(
        &self,
        chain: &engine::crypto::ChainId,
        key: &engine::crypto::SigningKey,
        cosigners: &[&engine::crypto::SigningKey],
        payload: engine::tx::Payload,
        timeout: Duration,
    ) -> Result<TxId> {
        let nonce = self.nonce(&key.public()).await? + 1;
        self.commit_payload_at(chain, key, cosigners, payload, nonce, timeout).await
    }

    /// [`Client::commit_payload`] with the nonce chosen by the caller: a sender that commits
    /// through several nodes in a row must count its nonces itself, since a node may not have
    /// applied the sender's previous transaction yet when it is asked.
    pub async fn commit_payload_at(
        &self,
        chain: &engine::crypto::ChainId,
        key: &engine::crypto::SigningKey,
        cosigners: &[&engine::crypto::SigningKey],
        payload: engine::tx::Payload,
        nonce: u64,
        timeout: Duration,
    ) -> Result<TxId> {
        let height = self.status().await?.height;
        let mut keys = vec![key];
        keys.extend_from_slice(cosigners);
        let tx = engine::tx::TxBody { sender: key.public(), nonce, expiry_height: height + TX_VALID_BLOCKS, payload }
            .sign(chain, &keys);
        let id = self.submit(&tx).await?;
        self.wait_committed(&[id], timeout).await?;
        Ok(id)
    }
}
