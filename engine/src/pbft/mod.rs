//! The PBFT replica as a sans-IO state machine: `handle(event) -> actions`.
//!
//! No sockets, no clock, no threads: time arrives as `Event::Tick { now_ms }`, messages arrive
//! already signature-checked (the driver batch-verifies them through a `BatchVerifier`), and the
//! replica answers with actions for the driver to carry out. Storage is the one side effect it
//! performs itself, synchronously, so that a vote is durable before the action that sends it is
//! returned, and a committed block is durable before `Action::Committed` is returned.

pub mod message;
