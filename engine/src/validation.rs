//! Stateless transaction checks: size limits, field forms, signature count, and the signatures
//! themselves.
//!
//! These need no ledger state, so a node runs them once when a transaction arrives (before it
//! enters the pending pool) and an auditor runs them when it re-verifies the chain. Signatures
//! are checked in batches by the caller ([`signature_checks`] through a `BatchVerifier`) or one by
//! one ([`verify_signatures`], the reference). The stateful rules live in
//! [`crate::state::State::check`].

use crate::crypto::{self, ChainId};
use crate::limits::{
    DATA_TYPE_BYTES_MAX, DKG_PACKAGE_BYTES_MAX, DKG_SEALED_BYTES_MAX, ENCRYPTED_KEY_BYTES_MAX, GRANT_DATA_TYPES_MAX,
    GRANT_RECORDS_MAX, INDEX_LABELS_MAX, LOCATOR_BYTES_MAX, NAME_BYTES_MAX, PURPOSE_BYTES_MAX, TX_BYTES_MAX,
    TX_SIGNATURES_MAX, VALIDATORS_MAX,
};
use crate::pbft::message::SignatureCheck;
use crate::state::TxError;
use crate::threshold::is_public_key;
use crate::tx::{
    AnchorRecord, DkgRound1, DkgRound2, Enroll, Grant, GrantScope, Payload, SearchAuthorization, Transaction,
    NONCE_OUTSIDE_SEQUENCE,
};
use std::collections::BTreeSet;

/// Checks everything about `tx` that needs no state and no signature verification:
///
/// - the canonical encoding is at most [`TX_BYTES_MAX`] (`transaction`);
/// - there is exactly one signature per key of [`crate::tx::TxBody::signers`];
/// - `body.nonce ≥ 1` (nonces start at 1; 0 means "never used"), and `u64::MAX` exactly for
///   the key-generation payloads, which stand outside the nonce sequence;
/// - every length limit of [`crate::limits`], and the forms of the payload's fields (non-empty
///   names, tags and locators, a positive ciphertext length, the author is the sender, a
///   non-empty grant scope without repeats, `from_ms < to_ms`).
///
/// Errors name the field as a path such as `payload.AnchorRecord.blob_locator`.
pub fn check_stateless(tx: &Transaction) -> Result<(), TxError> {
    let size = tx.encode().len();
    if size > TX_BYTES_MAX {
        return Err(TxError::Oversize { field: "transaction".into(), size, max: TX_BYTES_MAX });
    }
    let expected = tx.body.signers().len();
    debug_assert!(expected <= TX_SIGNATURES_MAX);
    if tx.signatures.len() != expected {
        return Err(TxError::WrongSignatureCount { expected, got: tx.signatures.len() });
    }
    if tx.body.nonce == 0 {
        return Err(malformed("body.nonce", "nonces start at 1"));
    }
    match (tx.body.payload.outside_nonce_sequence(), tx.body.nonce == NONCE_OUTSIDE_SEQUENCE) {
        (true, false) => {
            return Err(malformed("body.nonce", "key-generation transactions carry NONCE_OUTSIDE_SEQUENCE (u64::MAX)"))
        }
        (false, true) => return Err(malformed("body.nonce", "u64::MAX is reserved for key-generation transactions")),
        _ => {}
    }
    match &tx.body.payload {
        Payload::Enroll(e) => check_enroll(e),
        Payload::AnchorRecord(a) => check_anchor(a, tx),
        Payload::Grant(g) => check_grant(g),
        Payload::Revoke(_) | Payload::SearchLog(_) => Ok(()),
        Payload::ReadRequest(r) => {
            if !is_public_key(&r.reader_key) {
                return Err(malformed(
                    "payload.ReadRequest.reader_key",
                    "must be a ristretto255 public key (canonical, not the identity); make a fresh one per request",
                ));
            }
            Ok(())
        }
        Payload::SearchAuthorization(s) => check_search_authorization(s),
        Payload::DkgRound1(r) => check_dkg_round1(r),
        Payload::DkgRound2(r) => check_dkg_round2(r),
        Payload::DkgComplaint(c) => {
            if c.against == 0 {
                return Err(malformed("payload.DkgComplaint.against", "share indices start at 1"));
            }
            if !is_public_key(&c.shared) {
                return Err(malformed(
                    "payload.DkgComplaint.shared",
                    "must be a ristretto255 point (not the identity)",
                ));
            }
            Ok(())
        }
        Payload::RotateKey(r) => {
            if r.new_key == tx.body.sender {
                return Err(malformed("payload.RotateKey.new_key", "the new key must differ from the current one"));
            }
            Ok(())
        }
    }
}

/// One [`SignatureCheck`] per required signer, in the order of [`crate::tx::TxBody::signers`],
/// for batch verification by the caller. All of them verify exactly when
/// [`verify_signatures`] accepts the transaction.
///
/// A transaction with the wrong number of signatures yields one check per signature that has a
/// signer (the shorter of the two lists); [`check_stateless`] refuses such a transaction, so call
/// it first.
pub fn signature_checks(tx: &Transaction, chain_id: &ChainId) -> Vec<SignatureCheck> {
    let msg = tx.body.signing_bytes(chain_id);
    tx.body
        .signers()
        .into_iter()
        .zip(&tx.signatures)
        .map(|(key, sig)| SignatureCheck { msg: msg.clone(), key, sig: *sig })
        .collect()
}

/// Verifies every signature of `tx` one by one with the reference verifier
/// ([`crypto::verify_raw`]): the right number of signatures, each valid for its signer.
pub fn verify_signatures(tx: &Transaction, chain_id: &ChainId) -> Result<(), TxError> {
    let signers = tx.body.signers();
    if tx.signatures.len() != signers.len() {
        return Err(TxError::WrongSignatureCount { expected: signers.len(), got: tx.signatures.len() });
    }
    let msg = tx.body.signing_bytes(chain_id);
    for (index, (signer, sig)) in signers.iter().zip(&tx.signatures).enumerate() {
        if !crypto::verify_raw(signer, sig, &msg) {
            return Err(TxError::BadSignature { index, signer: *signer });
        }
    }
    Ok(())
}

fn malformed(field: &str, reason: impl Into<String>) -> TxError {
    TxError::Malformed { field: field.into(), reason: reason.into() }
}

/// A string of 1 to `max` bytes.
fn text(field: &str, value: &str, max: usize) -> Result<(), TxError> {
    if value.is_empty() {
        return Err(malformed(field, "must not be empty"));
    }
    at_most(field, value.len(), max)
}

fn at_most(field: &str, size: usize, max: usize) -> Result<(), TxError> {
    if size > max {
        return Err(TxError::Oversize { field: field.into(), size, max });
    }
    Ok(())
}

fn check_enroll(e: &Enroll) -> Result<(), TxError> {
    text("payload.Enroll.name", &e.name, NAME_BYTES_MAX)
}

fn check_anchor(a: &AnchorRecord, tx: &Transaction) -> Result<(), TxError> {
    if a.author != tx.body.sender {
        return Err(malformed("payload.AnchorRecord.author", "the author must be the sender"));
    }
    text("payload.AnchorRecord.data_type", &a.data_type, DATA_TYPE_BYTES_MAX)?;
    if a.ciphertext_len == 0 {
        return Err(malformed("payload.AnchorRecord.ciphertext_len", "must be positive"));
    }
    text("payload.AnchorRecord.blob_locator", &a.blob_locator, LOCATOR_BYTES_MAX)?;
    at_most("payload.AnchorRecord.encrypted_data_key", a.encrypted_data_key.len(), ENCRYPTED_KEY_BYTES_MAX)?;
    at_most("payload.AnchorRecord.index_labels", a.index_labels.len(), INDEX_LABELS_MAX)
}

fn check_grant(g: &Grant) -> Result<(), TxError> {
    at_most("payload.Grant.purpose", g.purpose.len(), PURPOSE_BYTES_MAX)?;
    match &g.scope {
        GrantScope::Records(records) => {
            const FIELD: &str = "payload.Grant.scope.Records";
            if records.is_empty() {
                return Err(malformed(FIELD, "name at least one record"));
            }
            at_most(FIELD, records.len(), GRANT_RECORDS_MAX)?;
            if records.iter().collect::<BTreeSet<_>>().len() != records.len() {
                return Err(malformed(FIELD, "a record is named twice"));
            }
        }
        GrantScope::DataTypes { data_types, from_ms, to_ms } => {
            const FIELD: &str = "payload.Grant.scope.DataTypes.data_types";
            if data_types.is_empty() {
                return Err(malformed(FIELD, "name at least one data type"));
            }
            at_most(FIELD, data_types.len(), GRANT_DATA_TYPES_MAX)?;
            for (i, t) in data_types.iter().enumerate() {
                text(&format!("{FIELD}[{i}]"), t, DATA_TYPE_BYTES_MAX)?;
            }
            if data_types.iter().collect::<BTreeSet<_>>().len() != data_types.len() {
                return Err(malformed(FIELD, "a data type is named twice"));
            }
            if from_ms >= to_ms {
                return Err(malformed(
                    "payload.Grant.scope.DataTypes.from_ms",
                    format!("the range [{from_ms}, {to_ms}) is empty: from_ms must be below to_ms"),
                ));
            }
        }
    }
    Ok(())
}

fn check_search_authorization(s: &SearchAuthorization) -> Result<(), TxError> {
    at_most("payload.SearchAuthorization.purpose", s.purpose.len(), PURPOSE_BYTES_MAX)
}

fn check_dkg_round1(r: &DkgRound1) -> Result<(), TxError> {
    if r.package.is_empty() {
        return Err(malformed("payload.DkgRound1.package", "must not be empty"));
    }
    at_most("payload.DkgRound1.package", r.package.len(), DKG_PACKAGE_BYTES_MAX)?;
    if !is_public_key(&r.transport) {
        return Err(malformed("payload.DkgRound1.transport", "must be a ristretto255 public key"));
    }
    Ok(())
}

fn check_dkg_round2(r: &DkgRound2) -> Result<(), TxError> {
    const FIELD: &str = "payload.DkgRound2.packages";
    if r.packages.is_empty() {
        return Err(malformed(FIELD, "must hold one package per other validator"));
    }
    at_most(FIELD, r.packages.len(), VALIDATORS_MAX)?;
    for (i, p) in r.packages.iter().enumerate() {
        at_most(&format!("{FIELD}[{i}].sealed"), p.sealed.len(), DKG_SEALED_BYTES_MAX)?;
    }
    if r.packages.windows(2).any(|w| w[0].to >= w[1].to) {
        return Err(malformed(FIELD, "recipients must be in increasing order, each once"));
    }
    Ok(())
}
