//! medchain's async shell: everything that talks to the outside world.
//!
//! Owns the consortium PKI ([`tls`]), QUIC peer links ([`transport`]), the PBFT driver
//! ([`driver`]) and node assembly ([`node`]), the HTTP API ([`api`]), the node's encrypted
//! index ([`search`]), the blob store of sealed record bodies ([`blobs`]) and a validator's part
//! of the consortium key with its decryption shares ([`sharing`]). It never decides
//! anything about the chain: validation and consensus live in `engine`, which this crate feeds
//! and obeys. This is the only crate that spawns tasks or reads the system clock.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod blobs;
pub mod core;
pub mod driver;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod search;
pub mod sharing;
pub mod tls;
pub mod transport;
pub mod verify;

pub use node::{GpuConfig, GpuMode, Node, NodeConfig, NodeError, NodeHandle, NodeOptions, PeerConfig};
