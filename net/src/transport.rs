//! QUIC links between consortium nodes.
//!
//! One quinn endpoint per node (server and client), one connection per peer pair: an auditor
//! dials the validators, and between two nodes of the same role the lower node id dials. Each
//! message is one canonical [`SignedMessage`] on its own unidirectional stream, read with a cap
//! of [`MESSAGE_BYTES_MAX`]. The peer's identity is the genesis node whose key its certificate
//! carries (checked during the handshake by [`crate::tls`]); a message whose `from` is not that
//! node is dropped, except a NEW-VIEW: replicas relay the new primary's NEW-VIEW to laggards,
//! and it proves itself (the primary's signature and a quorum of signed VIEW-CHANGEs, all
//! checked before the replica sees it). [`Inbound::from`] is always the signer, and
//! [`Inbound::via`] the authenticated connection it came over. Outbound queues are bounded and never block the caller: when a peer's queue
//! is full the message is dropped and counted, and PBFT's own retransmission and view changes
//! recover.

use crate::limits::{
    CONNECTION_IDLE_TIMEOUT_MS, CONNECTION_KEEP_ALIVE_MS, CONNECTION_MALFORMED_MESSAGES_MAX,
    CONNECTION_UNI_STREAMS_MAX, HANDSHAKES_CONCURRENT_MAX, HANDSHAKE_TIMEOUT_MS, INBOUND_QUEUE_BYTES_MAX,
    PEER_QUEUE_BYTES_MAX, PEER_QUEUE_MESSAGES_MAX, RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN,
};
use crate::metrics::Metrics;
use crate::tls::{ed25519_key_of, TlsError, TlsIdentity};
use bytes::Bytes;
use engine::codec::{sha256, Digest};
use engine::genesis::Genesis;
use engine::limits::MESSAGE_BYTES_MAX;
use engine::pbft::message::{NodeId, SignedMessage};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, VarInt};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn, Instrument};

/// QUIC application close codes.
mod close_code {
    /// The node is shutting down.
    pub const SHUTDOWN: u32 = 0;
    /// A newer connection with the same peer replaced this one.
    pub const REPLACED: u32 = 1;
    /// The peer sent too many malformed messages.
    pub const MISBEHAVING: u32 = 2;
    /// The certificate's key is not the node this connection was meant for.
    pub const WRONG_PEER: u32 = 3;
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// rustls settings not usable for QUIC (e.g. no TLS 1.3 suite).
    #[error("QUIC crypto configuration: {0}")]
    Crypto(String),
    /// The UDP socket could not be bound.
    #[error("binding the peer-to-peer socket {addr}: {source}")]
    Bind {
        /// The listen address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// This node's key is not a node of the genesis.
    #[error("this node's key is not a node of the genesis")]
    NotInGenesis,
}

/// How to set up a node's transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The chain's genesis: who may connect, and node ids.
    pub genesis: Arc<Genesis>,
    /// Certificates and key.
    pub identity: TlsIdentity,
    /// UDP address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// Known addresses of other nodes, by node id.
    pub peer_addrs: HashMap<NodeId, SocketAddr>,
}

/// A message from a peer, its sender authenticated by the connection.
#[derive(Debug)]
pub struct Inbound {
    /// The signer the message names (`message.from`); its signature is checked next.
    pub from: NodeId,
    /// The authenticated peer it arrived from: `from` itself, or a relay of a NEW-VIEW.
    pub via: NodeId,
    /// The message, decoded strictly; its signatures are not yet checked.
    pub message: SignedMessage,
    /// This message's share of the inbound byte budget, returned when it is dropped.
    pub(crate) _budget: Option<OwnedSemaphorePermit>,
}

/// A peer's name and whether a connection to it is up.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PeerStatus {
    /// Node id.
    #[serde(skip)]
    pub id: NodeId,
    /// Node name from the genesis.
    pub name: String,
    /// Whether a connection is established.
    pub connected: bool,
}

struct Peer {
    id: NodeId,
    name: String,
    addr: Option<SocketAddr>,
    /// Whether this side dials (otherwise it waits to be dialed).
    dials: bool,
    queue: mpsc::Sender<(Digest, Bytes)>,
    /// What waits in `queue`.
    queued: parking_lot::Mutex<Queued>,
    conn: watch::Sender<Option<Connection>>,
    connected: AtomicBool,
}

/// The messages waiting for one peer: their total size, and their digests so that a message
/// already waiting (a retransmission the peer has not even received the first copy of) is not
/// queued twice.
#[derive(Default)]
struct Queued {
    bytes: usize,
    digests: HashSet<Digest>,
}

struct Shared {
    me: NodeId,
    endpoint: Endpoint,
    client_config: quinn::ClientConfig,
    genesis: Arc<Genesis>,
    peers: HashMap<NodeId, Arc<Peer>>,
    inbound: mpsc::Sender<Inbound>,
    /// Bytes of received messages not yet taken by the signature checker.
    inbound_budget: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

/// A node's QUIC endpoint and its links to every other genesis node.
pub struct Transport {
    shared: Arc<Shared>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_uni_streams(VarInt::from_u32(CONNECTION_UNI_STREAMS_MAX));
    t.max_concurrent_bidi_streams(VarInt::from_u32(0));
    t.keep_alive_interval(Some(Duration::from_millis(CONNECTION_KEEP_ALIVE_MS)));
    // Cannot fail: the timeout is far below QUIC's 2^62 ms limit.
    t.max_idle_timeout(quinn::IdleTimeout::try_from(Duration::from_millis(CONNECTION_IDLE_TIMEOUT_MS)).ok());
    Arc::new(t)
}

/// The server and client QUIC configurations for `identity`.
pub fn quic_configs(identity: &TlsIdentity) -> Result<(quinn::ServerConfig, quinn::ClientConfig), TransportError> {
    let server_tls =
        QuicServerConfig::try_from(identity.server_config()?).map_err(|e| TransportError::Crypto(e.to_string()))?;
    let client_tls =
        QuicClientConfig::try_from(identity.client_config()?).map_err(|e| TransportError::Crypto(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server_tls));
    server.transport_config(transport_config());
    let mut client = quinn::ClientConfig::new(Arc::new(client_tls));
    client.transport_config(transport_config());
    Ok((server, client))
}

/// The genesis node id proven by a connection's certificate.
fn peer_node_id(conn: &Connection, genesis: &Genesis) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()?;
    let key = ed25519_key_of(certs.first()?).ok()?;
    genesis.node_id(&key)
}

fn is_validator(genesis: &Genesis, id: NodeId) -> bool {
    (id as usize) < genesis.body.validators.len()
}

impl Transport {
    /// Binds the endpoint and starts accepting and dialing. Messages from peers go to `inbound`
    /// (a bounded channel: when it is full, reading from peers waits, and QUIC flow control
    /// slows them down).
    pub fn start(
        config: TransportConfig,
        inbound: mpsc::Sender<Inbound>,
        metrics: Arc<Metrics>,
    ) -> Result<Transport, TransportError> {
        let genesis = config.genesis;
        let me = genesis.node_id(&config.identity.key.public()).ok_or(TransportError::NotInGenesis)?;
        let (server_config, client_config) = quic_configs(&config.identity)?;
        let endpoint = Endpoint::server(server_config, config.listen)
            .map_err(|source| TransportError::Bind { addr: config.listen, source })?;
        let mut peers = HashMap::new();
        let mut receivers = Vec::new();
        for (id, info) in genesis.nodes().filter(|(id, _)| *id != me) {
            let (queue, rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
            let addr = config.peer_addrs.get(&id).copied();
            let same_role = is_validator(&genesis, me) == is_validator(&genesis, id);
            let dials = addr.is_some() && if same_role { me < id } else { !is_validator(&genesis, me) };
            let peer = Arc::new(Peer {
                id,
                name: info.name.clone(),
                addr,
                dials,
                queue,
                queued: parking_lot::Mutex::new(Queued::default()),
                conn: watch::channel(None).0,
                connected: AtomicBool::new(false),
            });
            receivers.push((peer.clone(), rx));
            peers.insert(id, peer);
        }
        let inbound_budget = Arc::new(Semaphore::new(INBOUND_QUEUE_BYTES_MAX));
        let shared = Arc::new(Shared { me, endpoint, client_config, genesis, peers, inbound, inbound_budget, metrics });
        let mut tasks = vec![tokio::spawn(accept_loop(shared.clone()).in_current_span())];
        for (peer, rx) in receivers {
            tasks.push(tokio::spawn(peer_writer(shared.clone(), peer, rx).in_current_span()));
        }
        info!(me, addr = ?shared.endpoint.local_addr().ok(), "transport started");
        Ok(Transport { shared, tasks: parking_lot::Mutex::new(tasks) })
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.shared.me
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.endpoint.local_addr()
    }

    /// Queues `bytes` (a canonical [`SignedMessage`]) for node `to`. Never waits: returns false
    /// (and counts the drop) when the node is unknown or its queue is full.
    pub fn send_bytes(&self, to: NodeId, bytes: Bytes) -> bool {
        let digest = sha256(&bytes);
        self.enqueue(to, digest, bytes)
    }

    fn enqueue(&self, to: NodeId, digest: Digest, bytes: Bytes) -> bool {
        let metrics = &self.shared.metrics;
        let Some(peer) = self.shared.peers.get(&to) else {
            metrics.messages_send_dropped.inc("unknown_peer");
            return false;
        };
        let len = bytes.len();
        let mut queued = peer.queued.lock();
        if queued.digests.contains(&digest) {
            metrics.messages_send_dropped.inc("already_queued");
            return true;
        }
        if queued.bytes + len > PEER_QUEUE_BYTES_MAX {
            metrics.messages_send_dropped.inc("queue_full");
            return false;
        }
        match peer.queue.try_send((digest, bytes)) {
            Ok(()) => {
                queued.bytes += len;
                queued.digests.insert(digest);
                true
            }
            Err(e) => {
                metrics.messages_send_dropped.inc(match e {
                    mpsc::error::TrySendError::Full(_) => "queue_full",
                    mpsc::error::TrySendError::Closed(_) => "shutdown",
                });
                false
            }
        }
    }

    /// Queues `message` for node `to`.
    pub fn send(&self, to: NodeId, message: &SignedMessage) -> bool {
        self.send_bytes(to, Bytes::from(message.encode()))
    }

    /// Queues `message` for every other validator.
    pub fn broadcast_validators(&self, message: &SignedMessage) {
        let bytes = Bytes::from(message.encode());
        let digest = sha256(&bytes);
        for id in 0..self.shared.genesis.body.validators.len() as NodeId {
            if id != self.shared.me {
                self.enqueue(id, digest, bytes.clone());
            }
        }
    }

    /// Every other genesis node, in node id order, with its connection state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        let mut out: Vec<PeerStatus> = self
            .shared
            .peers
            .values()
            .map(|p| PeerStatus { id: p.id, name: p.name.clone(), connected: p.connected.load(Ordering::Relaxed) })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }

    /// Whether node `id` is connected.
    pub fn is_connected(&self, id: NodeId) -> bool {
        self.shared.peers.get(&id).is_some_and(|p| p.connected.load(Ordering::Relaxed))
    }

    /// Closes every connection and stops all tasks.
    pub async fn shutdown(&self) {
        self.shared.endpoint.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock());
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        for p in self.shared.peers.values() {
            set_connected(&self.shared, p, false);
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), self.shared.endpoint.wait_idle()).await;
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for t in self.tasks.lock().iter() {
            t.abort();
        }
        self.shared.endpoint.close(VarInt::from_u32(close_code::SHUTDOWN), b"shutdown");
    }
}

async fn accept_loop(shared: Arc<Shared>) {
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_CONCURRENT_MAX));
    while let Some(incoming) = shared.endpoint.accept().await {
        // Handshakes run concurrently so a slow or hostile dialer cannot hold up the others,
        // but only so many at once.
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            shared.metrics.connections_refused.inc("too_many_handshakes");
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        let task = async move {
            let _permit = permit;
            let remote = incoming.remote_address();
            let conn = match tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), incoming).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => {
                    shared.metrics.connections_refused.inc("handshake");
                    warn!(%remote, error = %e, "incoming peer handshake failed");
                    return;
                }
                Err(_) => {
                    shared.metrics.connections_refused.inc("handshake_timeout");
                    return;
                }
            };
            let Some(id) = peer_node_id(&conn, &shared.genesis) else {
                shared.metrics.connections_refused.inc("unknown_identity");
                conn.close(VarInt::from_u32(close_code::WRONG_PEER), b"certificate is not a genesis node");
                return;
            };
            let Some(peer) = shared.peers.get(&id).cloned() else {
                // Our own key on another endpoint.
                shared.metrics.connections_refused.inc("own_identity");
                conn.close(VarInt::from_u32(close_code::WRONG_PEER), b"this is my own identity");
                return;
            };
            info!(peer = %peer.name, %remote, "peer connected (incoming)");
            install(&shared, &peer, conn);
        };
        tokio::spawn(task.in_current_span());
    }
}

/// Makes `conn` the connection of `peer` (closing any previous one) and starts reading from it.
fn install(shared: &Arc<Shared>, peer: &Arc<Peer>, conn: Connection) {
    shared.metrics.connections_established.fetch_add(1, Ordering::Relaxed);
    let old = peer.conn.send_replace(Some(conn.clone()));
    if let Some(old) = old {
        if old.stable_id() != conn.stable_id() {
            old.close(VarInt::from_u32(close_code::REPLACED), b"replaced by a newer connection");
        }
    }
    tokio::spawn(peer_reader(shared.clone(), peer.clone(), conn).in_current_span());
}

async fn dial(shared: &Shared, peer: &Peer, addr: SocketAddr) -> Result<Connection, String> {
    // The certificate carries the node's name as a DNS name; a name that is not a valid DNS name
    // is reached as `localhost` (also in every node certificate): the key check decides anyway.
    let connecting = match shared.endpoint.connect_with(shared.client_config.clone(), addr, &peer.name) {
        Ok(c) => c,
        Err(quinn::ConnectError::InvalidServerName(_)) => {
            shared.endpoint.connect_with(shared.client_config.clone(), addr, "localhost").map_err(|e| e.to_string())?
        }
        Err(e) => return Err(e.to_string()),
    };
    let conn = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if peer_node_id(&conn, &shared.genesis) != Some(peer.id) {
        conn.close(VarInt::from_u32(close_code::WRONG_PEER), b"not the node I dialed");
        return Err(format!("the node at {addr} is not {}", peer.name));
    }
    Ok(conn)
}

/// Waits for a live connection to `peer`: dials it (with capped exponential backoff) when this
/// side dials, otherwise waits for the peer to dial in.
async fn connection_for(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    conn_rx: &mut watch::Receiver<Option<Connection>>,
) -> Connection {
    let mut backoff_ms = RECONNECT_BACKOFF_MS_MIN;
    loop {
        if let Some(conn) = conn_rx.borrow_and_update().clone() {
            if conn.close_reason().is_none() {
                return conn;
            }
        }
        match (peer.dials, peer.addr) {
            (true, Some(addr)) => match dial(shared, peer, addr).await {
                Ok(conn) => {
                    info!(peer = %peer.name, %addr, "peer connected (outgoing)");
                    install(shared, peer, conn.clone());
                    conn_rx.borrow_and_update();
                    return conn;
                }
                Err(e) => {
                    debug!(peer = %peer.name, %addr, error = %e, backoff_ms, "dial failed");
                    shared.metrics.connections_refused.inc("dial_failed");
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(RECONNECT_BACKOFF_MS_MAX);
                }
            },
            _ => {
                // The sender lives in `peer`, which outlives this task: `changed` cannot fail.
                let _ = conn_rx.changed().await;
            }
        }
    }
}

async fn send_one(conn: &Connection, bytes: &[u8]) -> Result<(), String> {
    let mut stream = conn.open_uni().await.map_err(|e| e.to_string())?;
    stream.write_all(bytes).await.map_err(|e| e.to_string())?;
    stream.finish().map_err(|e| e.to_string())?;
    Ok(())
}

fn set_connected(shared: &Shared, peer: &Peer, up: bool) {
    if peer.connected.swap(up, Ordering::Relaxed) != up {
        if up {
            shared.metrics.peers_connected.fetch_add(1, Ordering::Relaxed);
        } else {
            shared.metrics.peers_connected.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Carries a peer's outbound queue to whatever connection it currently has.
async fn peer_writer(shared: Arc<Shared>, peer: Arc<Peer>, mut queue: mpsc::Receiver<(Digest, Bytes)>) {
    let mut conn_rx = peer.conn.subscribe();
    loop {
        let conn = connection_for(&shared, &peer, &mut conn_rx).await;
        set_connected(&shared, &peer, true);
        loop {
            tokio::select! {
                next = queue.recv() => {
                    let Some((digest, bytes)) = next else { return };
                    {
                        let mut queued = peer.queued.lock();
                        queued.bytes -= bytes.len();
                        queued.digests.remove(&digest);
                    }
                    match send_one(&conn, &bytes).await {
                        Ok(()) => { shared.metrics.messages_sent.fetch_add(1, Ordering::Relaxed); }
                        Err(e) if conn.close_reason().is_some() => {
                            debug!(peer = %peer.name, error = %e, "send failed: connection lost");
                            shared.metrics.messages_send_dropped.inc("connection_lost");
                            break;
                        }
                        Err(e) => {
                            // The peer stopped this one stream (e.g. the message was too big
                            // for it); the connection is fine.
                            debug!(peer = %peer.name, error = %e, "send failed: stream stopped");
                            shared.metrics.messages_send_dropped.inc("stream_stopped");
                        }
                    }
                }
                reason = conn.closed() => {
                    debug!(peer = %peer.name, %reason, "connection closed");
                    break;
                }
                _ = conn_rx.changed() => {
                    // A newer connection replaced this one.
                    break;
                }
            }
        }
        set_connected(&shared, &peer, false);
    }
}

/// Whether a message signed by one node may arrive over another node's connection.
fn is_relayable(message: &engine::pbft::message::Message) -> bool {
    matches!(message, engine::pbft::message::Message::NewView(_))
}

/// Reads messages from one connection until it closes.
async fn peer_reader(shared: Arc<Shared>, peer: Arc<Peer>, conn: Connection) {
    let mut strikes = 0u32;
    loop {
        let mut stream = match conn.accept_uni().await {
            Ok(s) => s,
            Err(_) => return,
        };
        let reason = match stream.read_to_end(MESSAGE_BYTES_MAX).await {
            Ok(bytes) => match SignedMessage::decode(&bytes) {
                Ok(message) if message.from == peer.id || is_relayable(&message.message) => {
                    shared.metrics.messages_received.inc(message.message.kind());
                    // Waits while too many bytes are queued for signature checks: QUIC flow
                    // control then slows the peer down. The cap keeps `len` within u32.
                    let len = bytes.len().min(MESSAGE_BYTES_MAX) as u32;
                    let Ok(budget) = shared.inbound_budget.clone().acquire_many_owned(len).await else {
                        return;
                    };
                    let inbound = Inbound { from: message.from, via: peer.id, message, _budget: Some(budget) };
                    if shared.inbound.send(inbound).await.is_err() {
                        return;
                    }
                    continue;
                }
                Ok(_) => "from_mismatch",
                Err(_) => "malformed",
            },
            Err(quinn::ReadToEndError::TooLong) => "oversize",
            Err(quinn::ReadToEndError::Read(_)) => {
                shared.metrics.messages_dropped.inc("stream_reset");
                continue;
            }
        };
        shared.metrics.messages_dropped.inc(reason);
        strikes += 1;
        warn!(peer = %peer.name, reason, strikes, "dropped a message from a peer");
        if strikes > CONNECTION_MALFORMED_MESSAGES_MAX {
            shared.metrics.connections_refused.inc("misbehaving");
            conn.close(VarInt::from_u32(close_code::MISBEHAVING), b"too many malformed messages");
            return;
        }
    }
}
