//! Real QUIC on loopback: who is admitted at the handshake, and what happens to messages.

mod common;

use common::{eventually, Consortium};
use engine::crypto::{ChainId, SigningKey};
use engine::pbft::message::{Message, SignedMessage, StateRequest};
use net::metrics::Metrics;
use net::tls::{ca_certificate, node_certificate, TlsIdentity};
use net::transport::{quic_configs, Inbound, Transport, TransportConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn start(
    c: &Consortium,
    i: usize,
    peers: HashMap<u16, SocketAddr>,
) -> (Transport, mpsc::Receiver<Inbound>, Arc<Metrics>) {
    let (tx, rx) = mpsc::channel(64);
    let metrics = Arc::new(Metrics::default());
    let config =
        TransportConfig { genesis: c.genesis.clone(), identity: c.identity(i), listen: loopback(), peer_addrs: peers };
    (Transport::start(config, tx, metrics.clone()).unwrap(), rx, metrics)
}

/// Dials `addr` as `identity` with a bare quinn endpoint and returns why the connection failed
/// (at the handshake, or right after it when the server refused our certificate).
async fn dial_refusal(identity: &TlsIdentity, addr: SocketAddr, server_name: &str) -> String {
    let (_, client) = quic_configs(identity).unwrap();
    let endpoint = quinn::Endpoint::client(loopback()).unwrap();
    let connecting = endpoint.connect_with(client, addr, server_name).unwrap();
    let reason = match tokio::time::timeout(WAIT, connecting).await.expect("handshake hung") {
        Err(e) => e.to_string(),
        Ok(conn) => {
            // In TLS 1.3 the client finishes before the server has checked the client's
            // certificate: the refusal arrives as the connection closing.
            let e = tokio::time::timeout(WAIT, conn.closed()).await.expect("connection was not refused");
            e.to_string()
        }
    };
    endpoint.close(0u32.into(), b"");
    reason
}

fn outsider_identity(c: &Consortium, ca: &SigningKey, ca_pem: &str, key: SigningKey, name: &str) -> TlsIdentity {
    let cert = node_certificate(ca, ca_pem, &key, name).unwrap();
    // Trusts the real consortium CA, so only the other side's verdict is tested.
    TlsIdentity::from_pem(&c.ca_pem, &cert, key, c.allowed()).unwrap()
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused_at_the_handshake() {
    let c = Consortium::new(2, 0);
    let (a, mut inbound, metrics) = start(&c, 0, HashMap::new());
    let addr = a.local_addr().unwrap();

    // Node 1's own key, but certified by a CA that is not the consortium's.
    let rogue_ca = SigningKey::from_seed([99; 32]);
    let rogue_ca_pem = ca_certificate(&rogue_ca, &ChainId::new("net-test").unwrap()).unwrap();
    let rogue = outsider_identity(&c, &rogue_ca, &rogue_ca_pem, c.keys[1].clone(), "node1");
    let reason = dial_refusal(&rogue, addr, "node0").await;
    assert!(reason.to_lowercase().contains("certificate"), "unexpected refusal: {reason}");

    eventually(WAIT, "the refusal to be counted", || async { metrics.connections_refused.get("handshake") >= 1 }).await;
    assert!(!a.is_connected(1));
    assert!(inbound.try_recv().is_err());

    // The dialing side refuses a server certified by another CA, too.
    let (server, _) = quic_configs(&rogue).unwrap();
    let rogue_server = quinn::Endpoint::server(server, loopback()).unwrap();
    let rogue_addr = rogue_server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = rogue_server.accept().await {
            let _ = incoming.await;
        }
    });
    let reason = dial_refusal(&c.identity(0), rogue_addr, "node1").await;
    // Same CA name, other key: the chain does not verify to the consortium CA.
    assert!(reason.contains("invalid peer certificate: BadSignature"), "unexpected refusal: {reason}");
    a.shutdown().await;
}

#[tokio::test]
async fn consortium_certificate_for_a_key_outside_the_genesis_is_refused() {
    let c = Consortium::new(2, 0);
    let (a, mut inbound, metrics) = start(&c, 0, HashMap::new());
    let addr = a.local_addr().unwrap();

    let outsider = outsider_identity(&c, &c.ca, &c.ca_pem, SigningKey::from_seed([77; 32]), "node9");
    let reason = dial_refusal(&outsider, addr, "node0").await;
    assert!(reason.to_lowercase().contains("certificate"), "unexpected refusal: {reason}");
    eventually(WAIT, "the refusal to be counted", || async { metrics.connections_refused.get("handshake") >= 1 }).await;
    assert!(inbound.try_recv().is_err());

    // Dialing a server that presents such a certificate fails on our side, naming why.
    let (server, _) = quic_configs(&outsider).unwrap();
    let outsider_server = quinn::Endpoint::server(server, loopback()).unwrap();
    let outsider_addr = outsider_server.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = outsider_server.accept().await {
            let _ = incoming.await;
        }
    });
    let reason = dial_refusal(&c.identity(0), outsider_addr, "node9").await;
    assert!(reason.contains("not the key of any node in the genesis"), "unexpected refusal: {reason}");
    a.shutdown().await;
}

#[tokio::test]
async fn messages_arrive_with_the_authenticated_sender_and_forgeries_are_dropped() {
    let c = Consortium::new(2, 0);
    let (b, mut b_inbound, b_metrics) = start(&c, 1, HashMap::new());
    let peers = HashMap::from([(1u16, b.local_addr().unwrap())]);
    let (a, _a_inbound, _a_metrics) = start(&c, 0, peers);

    eventually(WAIT, "node0 and node1 to connect", || async { a.is_connected(1) && b.is_connected(0) }).await;
    assert_eq!(a.peers().len(), 1);

    let request = Message::StateRequest(StateRequest { from: 1, to: 4 });
    let good = SignedMessage::sign(&c.chain_id, 0, request.clone(), &c.keys[0]);
    assert!(a.send(1, &good));
    let got = tokio::time::timeout(WAIT, b_inbound.recv()).await.unwrap().unwrap();
    assert_eq!(got.from, 0);
    assert_eq!(got.message, good);

    // Node 0 claims to be node 1: dropped by the receiver, whatever the signature says.
    let forged = SignedMessage::sign(&c.chain_id, 1, request, &c.keys[1]);
    assert!(a.send(1, &forged));
    assert!(a.send_bytes(1, bytes::Bytes::from_static(b"not a message")));
    eventually(WAIT, "the forgery and the garbage to be dropped", || async {
        b_metrics.messages_dropped.get("from_mismatch") == 1 && b_metrics.messages_dropped.get("malformed") == 1
    })
    .await;
    assert!(b_inbound.try_recv().is_err());
    // A NEW-VIEW is the one message a node relays for another: it arrives naming its signer.
    let new_view =
        Message::NewView(engine::pbft::message::NewView { view: 1, view_changes: vec![], pre_prepares: vec![] });
    let relayed = SignedMessage::sign(&c.chain_id, 1, new_view, &c.keys[1]);
    assert!(a.send(1, &relayed));
    let got = tokio::time::timeout(WAIT, b_inbound.recv()).await.unwrap().unwrap();
    assert_eq!((got.from, got.via), (1, 0));
    assert_eq!(got.message, relayed);
    // One bad message does not cost the connection.
    assert!(a.send(1, &good));
    let got = tokio::time::timeout(WAIT, b_inbound.recv()).await.unwrap().unwrap();
    assert_eq!(got.message, good);

    a.shutdown().await;
    eventually(WAIT, "node1 to notice node0 is gone", || async { !b.is_connected(0) }).await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_peer_sending_garbage_is_disconnected_and_the_link_recovers() {
    let c = Consortium::new(2, 0);
    let (b, mut b_inbound, b_metrics) = start(&c, 1, HashMap::new());
    let peers = HashMap::from([(1u16, b.local_addr().unwrap())]);
    let (a, _a_inbound, a_metrics) = start(&c, 0, peers);
    eventually(WAIT, "node0 and node1 to connect", || async { a.is_connected(1) && b.is_connected(0) }).await;

    let strikes = net::limits::CONNECTION_MALFORMED_MESSAGES_MAX as usize + 1;
    for i in 0..strikes {
        // Distinct garbage: identical messages waiting in a queue are sent once.
        assert!(a.send_bytes(1, bytes::Bytes::from(vec![0xff, 0xff, 0xff, i as u8])));
    }
    eventually(WAIT, "node1 to cut the misbehaving link", || async {
        b_metrics.connections_refused.get("misbehaving") == 1
    })
    .await;
    assert_eq!(b_metrics.messages_dropped.get("malformed"), strikes as u64);

    // Node 0 redials, and good messages flow again.
    eventually(WAIT, "node0 to reconnect", || async {
        a_metrics.connections_established.load(std::sync::atomic::Ordering::Relaxed) >= 2 && a.is_connected(1)
    })
    .await;
    let good = SignedMessage::sign(&c.chain_id, 0, Message::StateRequest(StateRequest { from: 1, to: 1 }), &c.keys[0]);
    eventually(WAIT, "a message over the new connection", || {
        a.send(1, &good);
        let got = b_inbound.try_recv().is_ok();
        async move { got }
    })
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_message_is_dropped_and_the_connection_kept() {
    let c = Consortium::new(2, 0);
    let (b, mut b_inbound, b_metrics) = start(&c, 1, HashMap::new());
    let peers = HashMap::from([(1u16, b.local_addr().unwrap())]);
    let (a, _a_inbound, a_metrics) = start(&c, 0, peers);
    eventually(WAIT, "node0 and node1 to connect", || async { a.is_connected(1) && b.is_connected(0) }).await;

    let huge = bytes::Bytes::from(vec![0u8; engine::limits::MESSAGE_BYTES_MAX + 1]);
    assert!(a.send_bytes(1, huge));
    eventually(WAIT, "the oversize message to be dropped", || async {
        b_metrics.messages_dropped.get("oversize") == 1
    })
    .await;
    let good = SignedMessage::sign(&c.chain_id, 0, Message::StateRequest(StateRequest { from: 1, to: 1 }), &c.keys[0]);
    assert!(a.send(1, &good));
    let got = tokio::time::timeout(WAIT, b_inbound.recv()).await.unwrap().unwrap();
    assert_eq!(got.message, good);
    assert_eq!(a_metrics.connections_established.load(std::sync::atomic::Ordering::Relaxed), 1);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_message_already_waiting_for_a_peer_is_not_queued_twice() {
    let c = Consortium::new(2, 0);
    // Node 1 is not running: everything for it waits in the queue.
    let peers = HashMap::from([(1u16, "127.0.0.1:9".parse().unwrap())]);
    let (a, _inbound, metrics) = start(&c, 0, peers);
    let m = SignedMessage::sign(&c.chain_id, 0, Message::StateRequest(StateRequest { from: 1, to: 2 }), &c.keys[0]);
    for _ in 0..5 {
        assert!(a.send(1, &m));
    }
    assert_eq!(metrics.messages_send_dropped.get("already_queued"), 4);
    let other = SignedMessage::sign(&c.chain_id, 0, Message::StateRequest(StateRequest { from: 2, to: 3 }), &c.keys[0]);
    assert!(a.send(1, &other));
    assert_eq!(metrics.messages_send_dropped.get("already_queued"), 4);
    a.shutdown().await;
}
