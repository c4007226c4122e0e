//! The node's counters and gauges, rendered in the Prometheus text format at `/metrics`.
//!
//! A small registry of atomics: every metric is a field, labelled counters keep one slot per
//! `&'static str` label (reasons and kinds are fixed strings, so their number is bounded).

use engine::verifier::BatchVerifier;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A counter with one label whose values are fixed strings.
#[derive(Debug, Default)]
pub struct LabeledCounter(Mutex<BTreeMap<&'static str, u64>>);

impl LabeledCounter {
    /// Adds `n` to the counter for `label`.
    pub fn add(&self, label: &'static str, n: u64) {
        *self.0.lock().entry(label).or_insert(0) += n;
    }

    /// Adds one.
    pub fn inc(&self, label: &'static str) {
        self.add(label, 1);
    }

    /// The current value for `label`.
    pub fn get(&self, label: &str) -> u64 {
        self.0.lock().get(label).copied().unwrap_or(0)
    }

    /// The sum over all labels.
    pub fn total(&self) -> u64 {
        self.0.lock().values().sum()
    }

    fn snapshot(&self) -> Vec<(&'static str, u64)> {
        self.0.lock().iter().map(|(k, v)| (*k, *v)).collect()
    }
}

/// Upper bounds of the verify-batch-size histogram buckets.
const VERIFY_BATCH_BUCKETS: [u64; 8] = [1, 4, 16, 64, 256, 1024, 4096, 16384];

/// Every metric of a node.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Height of the last committed block.
    pub committed_height: AtomicU64,
    /// Transactions committed in blocks and applied.
    pub txs_committed: AtomicU64,
    /// Transactions included in blocks but refused by the state machine.
    pub txs_rejected: AtomicU64,
    /// Transactions accepted by the API for inclusion.
    pub txs_accepted: AtomicU64,
    /// Transactions refused before inclusion, by error code.
    pub txs_refused: LabeledCounter,
    /// Peer messages received, by kind.
    pub messages_received: LabeledCounter,
    /// Peer messages dropped, by reason.
    pub messages_dropped: LabeledCounter,
    /// Peer messages handed to QUIC.
    pub messages_sent: AtomicU64,
    /// Peer messages not sent, by reason.
    pub messages_send_dropped: LabeledCounter,
    /// Handshakes or connections refused, by reason.
    pub connections_refused: LabeledCounter,
    /// Connections established (both directions).
    pub connections_established: AtomicU64,
    /// Peers currently connected.
    pub peers_connected: AtomicU64,
    /// Signature checks answered from the cache of valid signatures.
    pub verify_cache_hits: AtomicU64,
    /// Longest single replica step (one event handled), in milliseconds.
    pub driver_step_ms_max: AtomicU64,
    /// Replica steps that took longer than the slow-step threshold.
    pub driver_slow_steps: LabeledCounter,
    /// Height the search index has applied.
    pub index_height: AtomicU64,
    /// Search index failures, by stage.
    pub index_errors: LabeledCounter,
    /// Records labelled for this hospital's doctors.
    pub index_labelled: AtomicU64,
    /// Term keys handed out by this hospital's token service.
    pub index_keys_issued: AtomicU64,
    /// Token requests refused, by code.
    pub index_token_refusals: LabeledCounter,
    /// Searches answered, by outcome.
    pub searches: LabeledCounter,
    /// Decryption shares this validator returned for committed reads.
    pub read_shares: AtomicU64,
    verify_batch_buckets: [AtomicU64; VERIFY_BATCH_BUCKETS.len()],
    verify_batch_count: AtomicU64,
    verify_batch_items: AtomicU64,
    verifier: VerifierSource,
}

/// The verifier whose own counters (GPU and CPU batches, fallbacks) `/metrics` shows.
#[derive(Default)]
struct VerifierSource(Mutex<Option<Arc<dyn BatchVerifier>>>);

impl std::fmt::Debug for VerifierSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.lock().as_ref().map_or("none".to_string(), |v| v.name()))
    }
}

impl Metrics {
    /// Shows `verifier`'s counters as `medchain_verifier_<name>_total`.
    pub fn set_verifier(&self, verifier: Arc<dyn BatchVerifier>) {
        *self.verifier.0.lock() = Some(verifier);
    }

    /// Records one `verify_batch` call over `items` signatures.
    pub fn observe_verify_batch(&self, items: usize) {
        let items = items as u64;
        for (bound, bucket) in VERIFY_BATCH_BUCKETS.iter().zip(&self.verify_batch_buckets) {
            if items <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.verify_batch_count.fetch_add(1, Ordering::Relaxed);
        self.verify_batch_items.fetch_add(items, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "medchain_committed_height",
            "Height of the last committed block.",
            get(&self.committed_height),
        );
        counter(
            &mut out,
            "medchain_txs_committed_total",
            "Transactions committed and applied.",
            get(&self.txs_committed),
        );
        counter(
            &mut out,
            "medchain_txs_rejected_total",
            "Transactions included in a block but refused by the state machine.",
            get(&self.txs_rejected),
        );
        counter(
            &mut out,
            "medchain_txs_accepted_total",
            "Transactions accepted for inclusion.",
            get(&self.txs_accepted),
        );
        counter(
            &mut out,
            "medchain_read_shares_total",
            "Decryption shares returned for committed reads.",
            get(&self.read_shares),
        );
        labeled(
            &mut out,
            "medchain_txs_refused_total",
            "Transactions refused before inclusion.",
            "code",
            &self.txs_refused,
        );
        labeled(
            &mut out,
            "medchain_messages_received_total",
            "Peer messages received.",
            "kind",
            &self.messages_received,
        );
        labeled(
            &mut out,
            "medchain_messages_dropped_total",
            "Peer messages dropped.",
            "reason",
            &self.messages_dropped,
        );
        counter(&mut out, "medchain_messages_sent_total", "Peer messages sent.", get(&self.messages_sent));
        labeled(
            &mut out,
            "medchain_messages_send_dropped_total",
            "Peer messages not sent.",
            "reason",
            &self.messages_send_dropped,
        );
        labeled(
            &mut out,
            "medchain_connections_refused_total",
            "Peer connections refused.",
            "reason",
            &self.connections_refused,
        );
        counter(
            &mut out,
            "medchain_connections_established_total",
            "Peer connections established.",
            get(&self.connections_established),
        );
        gauge(&mut out, "medchain_peers_connected", "Peers currently connected.", get(&self.peers_connected));
        counter(
            &mut out,
            "medchain_verify_cache_hits_total",
            "Signature checks answered from the cache of valid signatures.",
            get(&self.verify_cache_hits),
        );
        gauge(
            &mut out,
            "medchain_driver_step_ms_max",
            "Longest replica step, in milliseconds.",
            get(&self.driver_step_ms_max),
        );
        labeled(
            &mut out,
            "medchain_driver_slow_steps_total",
            "Replica steps slower than the threshold, by event.",
            "event",
            &self.driver_slow_steps,
        );
        gauge(&mut out, "medchain_index_height", "Height the search index has applied.", get(&self.index_height));
        labeled(&mut out, "medchain_index_errors_total", "Search index failures.", "stage", &self.index_errors);
        counter(
            &mut out,
            "medchain_index_labelled_total",
            "Records labelled for this hospital's doctors.",
            get(&self.index_labelled),
        );
        counter(
            &mut out,
            "medchain_index_keys_issued_total",
            "Term keys handed out by this hospital's token service.",
            get(&self.index_keys_issued),
        );
        labeled(
            &mut out,
            "medchain_index_token_refusals_total",
            "Token requests refused.",
            "code",
            &self.index_token_refusals,
        );
        labeled(&mut out, "medchain_searches_total", "Searches answered.", "outcome", &self.searches);
        let _ = writeln!(out, "# HELP medchain_verify_batch_size Signatures per batch verification call.");
        let _ = writeln!(out, "# TYPE medchain_verify_batch_size histogram");
        for (bound, bucket) in VERIFY_BATCH_BUCKETS.iter().zip(&self.verify_batch_buckets) {
            let _ = writeln!(out, "medchain_verify_batch_size_bucket{{le=\"{bound}\"}} {}", get(bucket));
        }
        let count = get(&self.verify_batch_count);
        let _ = writeln!(out, "medchain_verify_batch_size_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "medchain_verify_batch_size_sum {}", get(&self.verify_batch_items));
        let _ = writeln!(out, "medchain_verify_batch_size_count {count}");
        let verifier = self.verifier.0.lock().clone();
        if let Some(v) = verifier {
            for c in v.counters() {
                counter(&mut out, &format!("medchain_verifier_{}_total", c.name), c.help, c.value);
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "counter");
    let _ = writeln!(out, "{name} {value}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, help, "gauge");
    let _ = writeln!(out, "{name} {value}");
}

fn labeled(out: &mut String, name: &str, help: &str, label: &str, c: &LabeledCounter) {
    header(out, name, help, "counter");
    for (value, n) in c.snapshot() {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labels_and_histogram() {
        let m = Metrics::default();
        m.messages_dropped.inc("malformed");
        m.messages_dropped.add("oversize", 2);
        m.observe_verify_batch(3);
        m.observe_verify_batch(100);
        let text = m.render();
        assert!(text.contains("medchain_messages_dropped_total{reason=\"oversize\"} 2"), "{text}");
        assert!(text.contains("medchain_verify_batch_size_bucket{le=\"4\"} 1"), "{text}");
        assert!(text.contains("medchain_verify_batch_size_bucket{le=\"256\"} 2"), "{text}");
        assert!(text.contains("medchain_verify_batch_size_sum 103"), "{text}");
        assert_eq!(m.messages_dropped.total(), 3);
    }
}
