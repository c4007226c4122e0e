//! A running node: its configuration, and the assembly of storage, replica (or follower),
//! transport, driver and HTTP API.
//!
//! The driver owns the replica on a thread of its own (the replica writes storage
//! synchronously), and takes its inputs from one bounded channel: signature-checked peer
//! messages, client transactions, ticks of the system clock, and read queries from the API.

use crate::driver::{self, CoreStatus, DriverInput, Query};
use crate::limits::{DRIVER_QUEUE_INPUTS_MAX, INBOUND_QUEUE_MESSAGES_MAX, TICK_INTERVAL_MS};
use crate::metrics::Metrics;
use crate::tls::{AllowedKeys, TlsError, TlsIdentity};
use crate::transport::{Transport, TransportConfig, TransportError};
use crate::{api, core::Core};
use engine::codec;
use engine::crypto::SigningKey;
use engine::genesis::Genesis;
use engine::pbft::message::NodeId;
use engine::verifier::{BatchVerifier, CpuVerifier};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, Instrument};

/// How long in-flight HTTP requests get to finish at shutdown.
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A peer as named in the configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's name in the genesis.
    pub name: String,
    /// Its QUIC address.
    pub addr: SocketAddr,
}

/// One node's configuration (`node.toml`). Relative paths are relative to the file's folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name in the genesis.
    pub name: String,
    /// Where the chain database lives (created if missing).
    pub data_dir: PathBuf,
    /// UDP address for QUIC peers.
    pub p2p_listen: SocketAddr,
    /// TCP address for the HTTP API.
    pub http_listen: SocketAddr,
    /// Other nodes and their QUIC addresses. An auditor dials the validators; between two
    /// nodes of the same role the lower node id dials, so a validator needs the addresses of
    /// the validators after it, and an auditor those of the validators.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// The CA-signed genesis: canonical encoding (`genesis.bin`) or JSON (`*.json`).
    pub genesis: PathBuf,
    /// This node's Ed25519 seed, 64 hex characters; also its TLS key.
    pub node_key: PathBuf,
    /// The consortium CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// This node's certificate (PEM), issued by the CA for `node_key`.
    pub node_cert: PathBuf,
    /// The primary proposes once this many transactions are pending...
    #[serde(default = "defaults::batch_txs")]
    pub batch_txs: usize,
    /// ...or this long after the oldest pending one arrived.
    #[serde(default = "defaults::batch_delay_ms")]
    pub batch_delay_ms: u64,
    /// A backup starts a view change after a request waits this long without progress.
    #[serde(default = "defaults::view_change_timeout_ms")]
    pub view_change_timeout_ms: u64,
    /// Most client transactions waiting to be proposed; more are refused.
    #[serde(default = "defaults::pending_txs_max")]
    pub pending_txs_max: usize,
    /// GPU offload of signature checks (`[gpu]`); the CPU alone when absent.
    #[serde(default)]
    pub gpu: GpuConfig,
    /// The encrypted index (`[index]`): epochs, labels per record, the hospital's index key.
    #[serde(default)]
    pub index: crate::search::IndexConfig,
}

/// Where signature checks run (`[gpu]` in node.toml). The binary turns it into a verifier; the
/// `MEDCHAIN_GPU` environment variable, when set, overrides `mode`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuConfig {
    /// `auto` (a real GPU when present), `force` (a software adapter too), or `off`.
    #[serde(default)]
    pub mode: GpuMode,
    /// Batches of at least this many signatures go to the GPU; measured at start-up when absent.
    #[serde(default)]
    pub crossover: Option<usize>,
}

/// See [`GpuConfig::mode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuMode {
    /// A real GPU when present.
    #[default]
    Auto,
    /// Any adapter, the software one included.
    Force,
    /// The CPU only.
    Off,
}

mod defaults {
    pub fn batch_txs() -> usize {
        1024
    }
    pub fn batch_delay_ms() -> u64 {
        20
    }
    pub fn view_change_timeout_ms() -> u64 {
        2_000
    }
    pub fn pending_txs_max() -> usize {
        50_000
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration file is unreadable or invalid.
    #[error("configuration {path}: {reason}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file named by the configuration could not be read or is malformed.
    #[error("{what} {path}: {reason}")]
    File {
        /// What the file should hold.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The genesis does not verify.
    #[error("genesis {path}: {source}")]
    Genesis {
        /// The file.
        path: PathBuf,
        /// Why.
        source: engine::genesis::GenesisError,
    },
    /// The node's key, name or peers do not match the genesis.
    #[error("{0}")]
    Identity(String),
    /// Certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The QUIC endpoint could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The chain database could not be opened.
    #[error("chain database in {path}: {source}")]
    Storage {
        /// The data folder.
        path: PathBuf,
        /// Why.
        source: engine::storage::StorageError,
    },
    /// The replica or follower could not open its chain.
    #[error("opening the chain: {0}")]
    Replica(#[from] engine::pbft::ReplicaError),
    /// The HTTP listener could not be bound.
    #[error("binding the HTTP API on {addr}: {source}")]
    Http {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The driver thread could not be started.
    #[error("starting the driver thread: {0}")]
    Thread(std::io::Error),
}

impl NodeConfig {
    /// Parses TOML text. Relative paths stay relative (see [`NodeConfig::load`]).
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        // Serialising plain strings, numbers and tables into TOML cannot fail.
        toml::to_string_pretty(self).expect("a NodeConfig always serialises to TOML")
    }

    /// Reads a configuration file and resolves its relative paths against the file's folder.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let config_error = |reason: String| NodeError::Config { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| config_error(e.to_string()))?;
        let mut config = Self::from_toml(&text).map_err(|e| config_error(e.to_string()))?;
        if let Some(base) = path.parent() {
            config.resolve_paths(base);
        }
        Ok(config)
    }

    /// Checks the numbers: batch and pool sizes within the engine's limits, timeouts long
    /// enough for the tick interval.
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad =
            |reason: String| Err(NodeError::Config { path: PathBuf::from(format!("node {:?}", self.name)), reason });
        if self.batch_txs == 0 || self.batch_txs > engine::limits::BLOCK_TXS_MAX {
            return bad(format!("batch_txs must be 1 to {}", engine::limits::BLOCK_TXS_MAX));
        }
        if self.pending_txs_max == 0 || self.pending_txs_max > crate::limits::PENDING_TXS_TRACKED_MAX {
            return bad(format!("pending_txs_max must be 1 to {}", crate::limits::PENDING_TXS_TRACKED_MAX));
        }
        if self.view_change_timeout_ms < 10 * TICK_INTERVAL_MS {
            return bad(format!("view_change_timeout_ms must be at least {}", 10 * TICK_INTERVAL_MS));
        }
        if self.batch_delay_ms > self.view_change_timeout_ms {
            return bad("batch_delay_ms must not exceed view_change_timeout_ms".into());
        }
        Ok(())
    }

    /// Makes every relative path relative to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.data_dir, &mut self.genesis, &mut self.node_key, &mut self.ca_cert, &mut self.node_cert] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(p) = self.index.index_key.as_mut().filter(|p| p.is_relative()) {
            *p = base.join(&*p);
        }
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|e| NodeError::File { what, path: path.to_path_buf(), reason: e.to_string() })
}

fn read_text(what: &'static str, path: &Path) -> Result<String, NodeError> {
    String::from_utf8(read_file(what, path)?).map_err(|_| NodeError::File {
        what,
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// Reads a genesis file (canonical encoding, or JSON when the name ends in `.json`) and verifies it.
pub fn read_genesis(path: &Path) -> Result<Genesis, NodeError> {
    let bytes = read_file("genesis", path)?;
    let bad = |reason: String| NodeError::File { what: "genesis", path: path.to_path_buf(), reason };
    let genesis: Genesis = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?
    } else {
        codec::decode(&bytes, engine::limits::MESSAGE_BYTES_MAX).map_err(|e| bad(e.to_string()))?
    };
    genesis.verify().map_err(|source| NodeError::Genesis { path: path.to_path_buf(), source })?;
    Ok(genesis)
}

/// Reads a key file holding a 64-hex-character Ed25519 seed.
pub fn read_key(path: &Path) -> Result<SigningKey, NodeError> {
    let text = read_text("node key", path)?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed).map_err(|e| NodeError::File {
        what: "node key",
        path: path.to_path_buf(),
        reason: format!("expected 64 hex characters (an Ed25519 seed): {e}"),
    })?;
    Ok(SigningKey::from_seed(seed))
}

/// Whether a node votes or follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Votes in PBFT.
    Validator,
    /// Follows and re-verifies the chain.
    Auditor,
}

/// What the API and the driver share.
pub(crate) struct NodeShared {
    pub name: String,
    pub role: Role,
    pub me: NodeId,
    pub genesis: Arc<Genesis>,
    pub driver: mpsc::Sender<DriverInput>,
    pub transport: Arc<Transport>,
    pub metrics: Arc<Metrics>,
    pub tracker: Arc<driver::TxTracker>,
    pub status: Arc<RwLock<CoreStatus>>,
    pub verification: Arc<crate::verify::Verification>,
    /// Slots for submissions in decoding and verification (see `HTTP_SUBMISSIONS_CONCURRENT_MAX`).
    pub submissions: Arc<tokio::sync::Semaphore>,
    /// The search index, and on validators the hospital's label and token services.
    pub index: Arc<crate::search::NodeIndex>,
    /// On validators of a consortium of two or more: its part of the consortium key.
    pub keys: Option<Arc<crate::sharing::KeyService>>,
}

impl NodeShared {
    /// Runs `f` on the driver thread, against the replica or follower, and returns its answer.
    /// `None` when the driver has stopped.
    pub async fn query<T: Send + 'static>(&self, f: impl FnOnce(&dyn Core) -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let query: Query = Box::new(move |core: &dyn Core| {
            let _ = tx.send(f(core));
        });
        self.driver.send(DriverInput::Query(query)).await.ok()?;
        rx.await.ok()
    }
}

/// A running node.
pub struct NodeHandle {
    shared: Arc<NodeShared>,
    http_addr: SocketAddr,
    p2p_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    http_stop: Option<oneshot::Sender<()>>,
    http_task: Option<JoinHandle<()>>,
    driver_thread: Option<std::thread::JoinHandle<()>>,
    index_thread: Option<std::thread::JoinHandle<()>>,
}

/// The entry point: [`Node::start`].
pub struct Node;

/// Everything a node needs besides its configuration, with defaults.
#[derive(Clone)]
pub struct NodeOptions {
    /// The batch signature verifier (the CPU reference unless a GPU verifier is plugged in).
    pub verifier: Arc<dyn BatchVerifier>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions { verifier: Arc::new(CpuVerifier::new()) }
    }
}

impl Node {
    /// Starts a node with the CPU verifier. See [`Node::start_with`].
    pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
        Self::start_with(config, NodeOptions::default()).await
    }

    /// Opens the chain in `data_dir`, starts the replica (validator) or follower (auditor), the
    /// QUIC transport, the driver and the HTTP API. Must run inside a tokio runtime.
    pub async fn start_with(config: NodeConfig, options: NodeOptions) -> Result<NodeHandle, NodeError> {
        let genesis = Arc::new(read_genesis(&config.genesis)?);
        let key = read_key(&config.node_key)?;
        let me = genesis.node_id(&key.public()).ok_or_else(|| {
            NodeError::Identity(format!(
                "the key in {} (public {}) is not a node of the genesis",
                config.node_key.display(),
                key.public()
            ))
        })?;
        let (_, info) = genesis.nodes().nth(me as usize).ok_or_else(|| NodeError::Identity("no such node".into()))?;
        if info.name != config.name {
            return Err(NodeError::Identity(format!(
                "the configuration names this node {:?}, but its key belongs to {:?} in the genesis",
                config.name, info.name
            )));
        }
        let role = if (me as usize) < genesis.body.validators.len() { Role::Validator } else { Role::Auditor };
        let mut peer_addrs = HashMap::new();
        for p in &config.peers {
            let id = genesis.nodes().find(|(_, n)| n.name == p.name).map(|(id, _)| id).ok_or_else(|| {
                NodeError::Identity(format!("peer {:?} in the configuration is not a node of the genesis", p.name))
            })?;
            peer_addrs.insert(id, p.addr);
        }
        let allowed = AllowedKeys::new(genesis.nodes().map(|(_, n)| n.key));
        let identity = TlsIdentity::from_pem(
            &read_text("CA certificate", &config.ca_cert)?,
            &read_text("node certificate", &config.node_cert)?,
            key.clone(),
            allowed,
        )?;

        let listener = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .map_err(|source| NodeError::Http { addr: config.http_listen, source })?;
        let http_addr = listener.local_addr().map_err(|source| NodeError::Http { addr: config.http_listen, source })?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| NodeError::File {
            what: "data folder",
            path: config.data_dir.clone(),
            reason: e.to_string(),
        })?;
        let core = crate::core::open(&config, &genesis, me, key.clone())?;
        let status = Arc::new(RwLock::new(core.status()));

        let metrics = Arc::new(Metrics::default());
        // The index catches up before the driver runs, so every later block reaches it by feed.
        let hospital_key = (role == Role::Validator).then(|| key.public());
        let index =
            Arc::new(crate::search::NodeIndex::open(&config.data_dir, &config.index, hospital_key, core.storage())?);
        metrics.index_height.store(index.indexed_height().unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        let (index_feed, index_blocks) = std::sync::mpsc::channel();
        let index_thread = {
            let (index, metrics) = (index.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("index-{}", config.name))
                .spawn(move || crate::search::run_index_thread(index, index_blocks, metrics))
                .map_err(NodeError::Thread)?
        };
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE_MESSAGES_MAX);
        let span = tracing::info_span!("node", name = %config.name);
        let transport = Arc::new(span.in_scope(|| {
            Transport::start(
                TransportConfig { genesis: genesis.clone(), identity, listen: config.p2p_listen, peer_addrs },
                inbound_tx,
                metrics.clone(),
            )
        })?);
        let p2p_addr =
            transport.local_addr().map_err(|source| TransportError::Bind { addr: config.p2p_listen, source })?;

        metrics.set_verifier(options.verifier.clone());
        let verification = Arc::new(crate::verify::Verification::new(options.verifier.clone(), metrics.clone()));
        let (driver_tx, driver_rx) = mpsc::channel(DRIVER_QUEUE_INPUTS_MAX);
        let shared = Arc::new(NodeShared {
            name: config.name.clone(),
            role,
            me,
            genesis: genesis.clone(),
            driver: driver_tx.clone(),
            transport: transport.clone(),
            metrics: metrics.clone(),
            tracker: Arc::new(driver::TxTracker::default()),
            status: status.clone(),
            verification: verification.clone(),
            submissions: Arc::new(tokio::sync::Semaphore::new(crate::limits::HTTP_SUBMISSIONS_CONCURRENT_MAX)),
            index,
            keys: (role == Role::Validator)
                .then(|| {
                    crate::sharing::KeyService::new(
                        genesis.chain_id().clone(),
                        key.clone(),
                        me as usize,
                        genesis.body.validators.len(),
                        &config.data_dir,
                    )
                })
                .flatten()
                .map(Arc::new),
        });

        let driver_ctx = driver::DriverContext {
            me,
            key,
            genesis: genesis.clone(),
            transport: transport.clone(),
            metrics: metrics.clone(),
            tracker: shared.tracker.clone(),
            status,
            index_feed,
        };
        let driver_span = span.clone();
        let driver_thread = std::thread::Builder::new()
            .name(format!("driver-{}", config.name))
            .spawn(move || {
                let _enter = driver_span.enter();
                driver::run(core, driver_rx, driver_ctx)
            })
            .map_err(NodeError::Thread)?;

        let mut tasks = vec![
            tokio::spawn(
                driver::verify_inbound(inbound_rx, driver_tx.clone(), genesis, verification, metrics)
                    .instrument(span.clone()),
            ),
            tokio::spawn(tick(driver_tx).instrument(span.clone())),
        ];
        if let Some(keys) = shared.keys.clone() {
            tasks.push(tokio::spawn(crate::sharing::run_key_generation(shared.clone(), keys).instrument(span.clone())));
        }

        let (http_stop, stop_rx) = oneshot::channel::<()>();
        let router = api::router(shared.clone());
        let http_task = tokio::spawn(
            async move {
                let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                    let _ = stop_rx.await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            }
            .instrument(span.clone()),
        );
        info!(parent: &span, node_id = me, ?role, %p2p_addr, %http_addr, "node started");
        Ok(NodeHandle {
            shared,
            http_addr,
            p2p_addr,
            tasks,
            http_stop: Some(http_stop),
            http_task: Some(http_task),
            driver_thread: Some(driver_thread),
            index_thread: Some(index_thread),
        })
    }
}

/// Feeds the driver the system clock every [`TICK_INTERVAL_MS`]. A tick that finds the driver's
/// queue full is skipped: the next one carries the time anyway.
async fn tick(driver: mpsc::Sender<DriverInput>) {
    let mut interval = tokio::time::interval(Duration::from_millis(TICK_INTERVAL_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        match driver.try_send(DriverInput::Tick(driver::now_ms())) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

impl NodeHandle {
    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound QUIC address.
    pub fn p2p_addr(&self) -> SocketAddr {
        self.p2p_addr
    }

    /// This node's id in the genesis.
    pub fn node_id(&self) -> NodeId {
        self.shared.me
    }

    /// The latest status of the replica or follower.
    pub fn status(&self) -> CoreStatus {
        self.shared.status.read().clone()
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stops the API, the driver (dropping the replica and closing the database) and the
    /// transport. Returns once the data folder can be opened again.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.http_task.take() {
            // Open keep-alive connections could hold a graceful shutdown forever.
            if tokio::time::timeout(HTTP_SHUTDOWN_GRACE, &mut task).await.is_err() {
                tracing::warn!("HTTP server did not stop in time; closing its connections");
                task.abort();
            }
        }
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shared.driver.send(DriverInput::Shutdown).await;
        if let Some(thread) = self.driver_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        // The driver owned the index feed: with it gone the index thread applies what is queued
        // and stops, so the index folder is closed before this returns.
        if let Some(thread) = self.index_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.shared.transport.shutdown().await;
        info!(name = %self.shared.name, "node stopped");
    }
}

impl Drop for NodeHandle {
    /// A handle dropped without [`NodeHandle::shutdown`] still stops the node's tasks and asks
    /// the driver to stop; it just does not wait for them.
    fn drop(&mut self) {
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = &self.http_task {
            task.abort();
        }
        for t in &self.tasks {
            t.abort();
        }
        let _ = self.shared.driver.try_send(DriverInput::Shutdown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "node0"
data_dir = "data"
p2p_listen = "127.0.0.1:7000"
http_listen = "127.0.0.1:8000"
genesis = "../genesis.bin"
node_key = "node.key"
ca_cert = "/etc/medchain/ca.pem"
node_cert = "node.pem"

[[peers]]
name = "node1"
addr = "127.0.0.1:7001"
"#;

    #[test]
    fn config_has_defaults_round_trips_and_resolves_relative_paths() {
        let mut c = NodeConfig::from_toml(MINIMAL).unwrap();
        assert_eq!(c.batch_txs, defaults::batch_txs());
        assert_eq!(c.peers, vec![PeerConfig { name: "node1".into(), addr: "127.0.0.1:7001".parse().unwrap() }]);
        assert_eq!(NodeConfig::from_toml(&c.to_toml()).unwrap(), c);
        c.validate().unwrap();
        c.resolve_paths(Path::new("/srv/node0"));
        assert_eq!(c.data_dir, Path::new("/srv/node0/data"));
        assert_eq!(c.genesis, Path::new("/srv/node0/../genesis.bin"));
        assert_eq!(c.ca_cert, Path::new("/etc/medchain/ca.pem"));
    }

    #[test]
    fn config_refuses_unknown_fields_and_bad_numbers() {
        assert!(NodeConfig::from_toml(&format!("{MINIMAL}\nbatch_tx = 5\n")).is_err());
        let mut c = NodeConfig::from_toml(MINIMAL).unwrap();
        c.batch_txs = 0;
        assert!(matches!(c.validate(), Err(NodeError::Config { .. })));
        let mut c = NodeConfig::from_toml(MINIMAL).unwrap();
        c.view_change_timeout_ms = 1;
        assert!(c.validate().is_err());
    }
}
