//! Every bound of the network layer, in one place. Units come last in names.

use engine::limits::MESSAGE_BYTES_MAX;

/// Messages waiting to be sent to one peer; more are dropped (and counted), never waited for.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 1024;
/// Bytes waiting to be sent to one peer; more are dropped (and counted).
pub const PEER_QUEUE_BYTES_MAX: usize = 128 * 1024 * 1024;
/// Bytes of received messages waiting for signature checks, all peers together.
pub const INBOUND_QUEUE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Messages received from all peers and not yet signature-checked.
pub const INBOUND_QUEUE_MESSAGES_MAX: usize = 4096;
/// Most messages whose signatures are checked in one `verify_batch` call.
pub const VERIFY_BATCH_MESSAGES_MAX: usize = 512;
/// Valid signatures remembered so they are not verified again (32 bytes each, plus overhead).
pub const VERIFIED_SIGNATURES_CACHED_MAX: usize = 1 << 18;
/// Inputs (verified messages, client transactions, ticks, queries) waiting for the driver.
pub const DRIVER_QUEUE_INPUTS_MAX: usize = 1024;
/// Malformed or oversize messages tolerated on one connection before it is closed.
pub const CONNECTION_MALFORMED_MESSAGES_MAX: u32 = 16;
/// Unidirectional streams a peer may have open towards us at once.
pub const CONNECTION_UNI_STREAMS_MAX: u32 = 256;
/// First delay before redialing a peer.
pub const RECONNECT_BACKOFF_MS_MIN: u64 = 50;
/// Longest delay between redials of a peer.
pub const RECONNECT_BACKOFF_MS_MAX: u64 = 2_000;
/// Incoming handshakes in progress at once; more are refused.
pub const HANDSHAKES_CONCURRENT_MAX: usize = 64;
/// A QUIC handshake that takes longer than this is abandoned.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// A connection with no traffic (keep-alives included) for this long is considered dead.
pub const CONNECTION_IDLE_TIMEOUT_MS: u64 = 3_000;
/// Keep-alive interval on peer connections.
pub const CONNECTION_KEEP_ALIVE_MS: u64 = 500;
/// How often the driver ticks the replica.
pub const TICK_INTERVAL_MS: u64 = 10;
/// Largest HTTP request body.
pub const HTTP_BODY_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Submissions (single or batch) being decoded and verified at once; more wait for a slot.
/// Without this bound an overloaded node queues every request with its body and its own
/// verification task, and memory grows with the overload.
pub const HTTP_SUBMISSIONS_CONCURRENT_MAX: usize = 4;
/// How long a submission waits for a slot before the node answers 503 `busy`.
pub const HTTP_SUBMISSION_WAIT_MS: u64 = 1_000;
/// Most transactions in one `POST /v1/transactions/batch`.
pub const HTTP_BATCH_TXS_MAX: usize = 4096;
/// Refused transactions remembered for status queries (oldest forgotten first).
pub const REFUSED_TXS_REMEMBERED_MAX: usize = 100_000;
/// Accepted transactions tracked as pending (beyond this, new submissions are refused).
pub const PENDING_TXS_TRACKED_MAX: usize = 200_000;
/// Most blocks sent in one state-transfer response.
pub const STATE_RESPONSE_BLOCKS_MAX: u64 = 32;
/// Decryption shares a validator keeps, by read, to answer a repeated request without making the
/// share again (about 200 bytes each).
pub const READ_SHARES_CACHED_MAX: usize = 16_384;

const _: () = assert!(HTTP_BODY_BYTES_MAX <= MESSAGE_BYTES_MAX);
// One message of the largest size always fits, so a reader never waits forever.
const _: () = assert!(MESSAGE_BYTES_MAX <= PEER_QUEUE_BYTES_MAX);
const _: () = assert!(MESSAGE_BYTES_MAX <= INBOUND_QUEUE_BYTES_MAX);
const _: () = assert!(MESSAGE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(RECONNECT_BACKOFF_MS_MIN <= RECONNECT_BACKOFF_MS_MAX);
const _: () = assert!(CONNECTION_KEEP_ALIVE_MS < CONNECTION_IDLE_TIMEOUT_MS);
