//! The encrypted keyword index of medchain on tantivy: label derivation, the index as a view of
//! committed blocks, trapdoor queries. The only crate that will touch tantivy.
//!
//! Not built yet: this crate is the home of the encrypted-search issue. Until then
//! `AnchorRecord::index_labels` is carried on chain as opaque bytes.
#![forbid(unsafe_code)]
