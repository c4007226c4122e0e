//! medchain's domain, pure: types, canonical encoding, validation, ledger state, Merkle trees,
//! the PBFT replica as a sans-IO state machine, Ed25519 (ZIP-215), batch verification, storage,
//! record envelopes (AES-SIV) and threshold encryption of their data keys (ristretto255).
//!
//! Never here: tokio, sockets, wgpu, tantivy, clocks, OS randomness. Time and randomness enter
//! as inputs, so a whole cluster runs in one thread under the seeded simulator.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod block;
pub mod codec;
pub mod crypto;
pub mod dkg;
pub mod envelope;
pub mod genesis;
pub mod limits;
pub mod merkle;
pub mod pbft;
pub mod state;
pub mod storage;
pub mod threshold;
pub mod tx;
pub mod validation;
pub mod verifier;
