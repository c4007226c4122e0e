//! Re-verification of a whole stored chain (`medchain ledger verify`, auditor nodes).
//!
//! [`verify_chain`] trusts nothing in storage but the genesis it checks against its CA
//! signature: every block must link, carry a valid commit certificate from the genesis
//! validators, contain only well-formed transactions with valid signatures, and replaying the
//! state from the genesis must reproduce the stored receipts exactly. Signatures (transactions
//! and COMMIT votes) are checked in large batches across blocks through a [`BatchVerifier`], so
//! a GPU can do the heavy part; the first fault, at the lowest height, is reported.

use crate::block::{CertificateError, CommittedBlock};
use crate::codec::Digest;
use crate::genesis::{Genesis, ValidatorSet};
use crate::pbft::message::SignatureCheck;
use crate::state::{check_stateless, signature_checks, Receipt, State};
use crate::storage::Storage;
use crate::verifier::{BatchVerifier, CpuVerifier, VerifyItem};
use std::fmt;

/// Signatures gathered before a batch is verified.
const AUDIT_BATCH_SIGNATURES_MAX: usize = 16 * 1024;
/// Signed bytes gathered before a batch is verified (bounds memory on large blocks).
const AUDIT_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A chain that verified: its height and head hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainSummary {
    /// Height of the last block (0 for a chain with only its genesis).
    pub height: u64,
    /// Hash of the last block (the genesis hash at height 0).
    pub head: Digest,
}

/// The first thing found wrong with a stored chain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ChainFault {
    /// The height at fault (0 for the genesis or the stored metadata).
    pub height: u64,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ChainFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chain fault at height {}: {}", self.height, self.problem)
    }
}

fn fault(height: u64, problem: impl Into<String>) -> ChainFault {
    ChainFault { height, problem: problem.into() }
}

/// Verifies the whole chain in `storage`, calling `progress(height, head_height)` as each block
/// is verified (and once with height 0 before the first).
///
/// Checks, in order: the genesis is stored, well formed and signed by its CA; for every height
/// `1..=head`: the block is stored and decodes, its header names that height and the genesis
/// chain id, `prev_hash` is the previous block's hash, `tx_count` and `tx_root` match the
/// transactions, the timestamp does not go back (nor before the genesis time), the proposer is a
/// validator, the block holds at most `block_txs_max` transactions, the commit certificate is
/// for this block with a quorum of distinct validators and valid COMMIT signatures, every
/// transaction passes [`check_stateless`] with valid signatures, and replaying it on the state
/// reproduces the stored receipts exactly; finally, nothing is stored above the head and the
/// stored head is the last block's hash.
pub fn verify_chain(
    storage: &dyn Storage,
    verifier: &dyn BatchVerifier,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ChainSummary, ChainFault> {
    let genesis = storage
        .genesis()
        .map_err(|e| fault(0, format!("the genesis cannot be read: {e}")))?
        .ok_or_else(|| fault(0, "no genesis is stored"))?;
    genesis.verify().map_err(|e| fault(0, format!("genesis: {e}")))?;
    let (head_height, head_hash) = storage
        .head()
        .map_err(|e| fault(0, format!("the head cannot be read: {e}")))?
        .ok_or_else(|| fault(0, "no head is stored"))?;

    let mut audit = Audit {
        validators: genesis.validator_set(),
        state: State::from_genesis(&genesis),
        prev_hash: genesis.hash(),
        prev_timestamp_ms: genesis.body.created_at_ms,
        genesis,
    };
    progress(0, head_height);
    let mut next = 1;
    while next <= head_height {
        let window = audit.read_window(storage, next, head_height)?;
        // Faults are reported lowest height first: a bad signature at height h is reported
        // after replaying (and possibly faulting) the blocks below h.
        let signature_fault = audit.verify_signatures(&window, verifier).err();
        let replay_below = signature_fault.as_ref().map_or(u64::MAX, |f| f.height);
        for block in window.blocks.iter().take_while(|b| b.block.header.height < replay_below) {
            audit.replay(storage, block)?;
            progress(block.block.header.height, head_height);
        }
        if let Some(f) = signature_fault.or(window.fault) {
            return Err(f);
        }
        next += window.blocks.len() as u64;
    }

    if matches!(storage.block(head_height + 1), Ok(Some(_))) {
        return Err(fault(head_height + 1, format!("a block is stored above the head at height {head_height}")));
    }
    if head_hash != audit.prev_hash {
        return Err(fault(
            head_height,
            format!("the stored head hash {head_hash} is not the hash {} of the last block", audit.prev_hash),
        ));
    }
    Ok(ChainSummary { height: head_height, head: head_hash })
}

struct Audit {
    genesis: Genesis,
    validators: ValidatorSet,
    state: State,
    /// Hash and timestamp of the last block read (not necessarily replayed yet).
    prev_hash: Digest,
    prev_timestamp_ms: u64,
}

/// Consecutive blocks whose structure checked out, their signatures to verify, and the fault
/// that ended the window early, if any (reported after everything below it).
struct Window {
    blocks: Vec<CommittedBlock>,
    checks: Vec<SignatureCheck>,
    /// For each check: the height and what it is, for the fault message.
    labels: Vec<(u64, String)>,
    fault: Option<ChainFault>,
}

impl Audit {
    /// Reads blocks from `from` until the batch is full, the head is reached or a block is
    /// faulty, checking everything but signatures and state.
    fn read_window(&mut self, storage: &dyn Storage, from: u64, head: u64) -> Result<Window, ChainFault> {
        let mut w = Window { blocks: Vec::new(), checks: Vec::new(), labels: Vec::new(), fault: None };
        let mut bytes = 0usize;
        let mut height = from;
        while height <= head && w.checks.len() < AUDIT_BATCH_SIGNATURES_MAX && bytes < AUDIT_BATCH_BYTES_MAX {
            let block = match self.check_block(storage, height) {
                Ok(block) => block,
                Err(f) if w.blocks.is_empty() => return Err(f),
                Err(f) => {
                    w.fault = Some(f);
                    break;
                }
            };
            let chain_id = &self.genesis.body.chain_id;
            let first_check = w.checks.len();
            for (replica, sig) in &block.certificate.votes {
                // check_shape made sure every voter is a validator.
                if let Some(key) = self.validators.key(*replica) {
                    let msg = block.certificate.vote_signing_bytes(chain_id, *replica);
                    w.checks.push(SignatureCheck { msg, key: *key, sig: *sig });
                    w.labels.push((height, format!("the COMMIT signature of replica {replica} does not verify")));
                }
            }
            for (i, tx) in block.block.txs.iter().enumerate() {
                for (j, check) in signature_checks(tx, chain_id).into_iter().enumerate() {
                    w.checks.push(check);
                    w.labels.push((height, format!("signature {j} of transaction {i} ({}) does not verify", tx.id())));
                }
            }
            bytes += w.checks[first_check..].iter().map(|c| c.msg.len()).sum::<usize>();
            w.blocks.push(block);
            height += 1;
        }
        Ok(w)
    }

    /// Everything about the block at `height` that needs neither signatures nor state.
    fn check_block(&mut self, storage: &dyn Storage, height: u64) -> Result<CommittedBlock, ChainFault> {
        let committed = storage
            .block(height)
            .map_err(|e| fault(height, format!("the block cannot be read: {e}")))?
            .ok_or_else(|| fault(height, "the block is missing from storage"))?;
        let block = &committed.block;
        let h = &block.header;
        let params = &self.genesis.body.params;
        if h.height != height {
            return Err(fault(height, format!("the block's header says height {}", h.height)));
        }
        if h.chain_id != self.genesis.body.chain_id {
            return Err(fault(
                height,
                format!("chain id {} is not the genesis chain id {}", h.chain_id, self.genesis.body.chain_id),
            ));
        }
        if h.prev_hash != self.prev_hash {
            return Err(fault(
                height,
                format!("prev_hash {} is not the previous block's hash {}", h.prev_hash, self.prev_hash),
            ));
        }
        if h.tx_count as usize != block.txs.len() {
            return Err(fault(
                height,
                format!("tx_count is {} but the block has {} transactions", h.tx_count, block.txs.len()),
            ));
        }
        if block.txs.len() > params.block_txs_max as usize {
            return Err(fault(
                height,
                format!("{} transactions, more than block_txs_max {}", block.txs.len(), params.block_txs_max),
            ));
        }
        let root = block.compute_tx_root();
        if h.tx_root != root {
            return Err(fault(height, format!("tx_root {} is not the transactions' Merkle root {root}", h.tx_root)));
        }
        if h.timestamp_ms < self.prev_timestamp_ms {
            return Err(fault(
                height,
                format!("timestamp {} ms is before the previous block's {} ms", h.timestamp_ms, self.prev_timestamp_ms),
            ));
        }
        if self.validators.key(h.proposer).is_none() {
            return Err(fault(height, format!("proposer {} is not a validator", h.proposer)));
        }
        let hash = block.hash();
        committed
            .certificate
            .check_shape(&self.validators, height, &hash)
            .map_err(|e: CertificateError| fault(height, format!("commit certificate: {e}")))?;
        for (i, tx) in block.txs.iter().enumerate() {
            check_stateless(tx).map_err(|e| fault(height, format!("transaction {i} ({}): {e}", tx.id())))?;
        }
        self.prev_hash = hash;
        self.prev_timestamp_ms = h.timestamp_ms;
        Ok(committed)
    }

    /// Verifies every signature of the window in one batch; reports the lowest failing one.
    fn verify_signatures(&self, w: &Window, verifier: &dyn BatchVerifier) -> Result<(), ChainFault> {
        let items: Vec<VerifyItem<'_>> =
            w.checks.iter().map(|c| VerifyItem { msg: &c.msg, key: &c.key, sig: &c.sig }).collect();
        // A verifier that fails as a whole (a lost GPU) is retried on the CPU reference.
        let verdicts = verifier
            .verify_batch(&items)
            .or_else(|_| CpuVerifier::new().verify_batch(&items))
            .map_err(|e| fault(w.blocks.first().map_or(0, |b| b.block.header.height), e.to_string()))?;
        if verdicts.len() != items.len() {
            return Err(fault(
                w.blocks.first().map_or(0, |b| b.block.header.height),
                format!("verifier {} gave {} verdicts for {} signatures", verifier.name(), verdicts.len(), items.len()),
            ));
        }
        match verdicts.iter().position(|ok| !ok) {
            Some(i) => Err(fault(w.labels[i].0, w.labels[i].1.clone())),
            None => Ok(()),
        }
    }

    /// Applies the block to the state and compares the receipts with the stored ones.
    fn replay(&mut self, storage: &dyn Storage, committed: &CommittedBlock) -> Result<(), ChainFault> {
        let height = committed.block.header.height;
        let stored = storage
            .receipts(height)
            .map_err(|e| fault(height, format!("the receipts cannot be read: {e}")))?
            .ok_or_else(|| fault(height, "the receipts are missing from storage"))?;
        let replayed = self.state.apply_block(&committed.block);
        if stored.len() != replayed.len() {
            return Err(fault(
                height,
                format!("{} receipts are stored for {} transactions", stored.len(), replayed.len()),
            ));
        }
        if let Some((i, (s, r))) = stored.iter().zip(&replayed).enumerate().find(|(_, (s, r))| s != r) {
            return Err(fault(
                height,
                format!("receipt {i} differs from the replay: stored {}, replay gives {}", describe(s), describe(r)),
            ));
        }
        Ok(())
    }
}

fn describe(r: &Receipt) -> String {
    match &r.outcome {
        crate::state::Outcome::Applied => format!("tx {} applied", r.tx),
        crate::state::Outcome::Rejected(e) => format!("tx {} rejected ({e})", r.tx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{Block, BlockHeader, CommitCertificate};
    use crate::crypto::{ChainId, SigningKey};
    use crate::genesis::{ChainParams, GenesisBody, NodeInfo};
    use crate::state::{Outcome, TxError};
    use crate::storage::{MemStorage, StorageResult, TxLocation};
    use crate::tx::{AnchorRecord, Enroll, Grant, GrantScope, Payload, Role, Transaction, TxBody, TxId};
    use std::collections::BTreeMap;

    const T0: u64 = 1_700_000_000_000;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_seed([n; 32])
    }

    struct Builder {
        genesis: Genesis,
        validators: Vec<SigningKey>,
        storage: MemStorage,
        state: State,
        nonces: BTreeMap<u8, u64>,
    }

    impl Builder {
        fn new() -> Builder {
            let ca = key(200);
            let validators: Vec<SigningKey> = (1..=4).map(key).collect();
            let genesis = GenesisBody {
                chain_id: ChainId::new("audit-test").unwrap(),
                created_at_ms: T0,
                ca_key: ca.public(),
                validators: validators
                    .iter()
                    .enumerate()
                    .map(|(i, k)| NodeInfo { name: format!("node{i}"), key: k.public() })
                    .collect(),
                auditors: vec![],
                params: ChainParams::default(),
            }
            .sign(&ca);
            let mut storage = MemStorage::new();
            storage.put_genesis(&genesis).unwrap();
            let state = State::from_genesis(&genesis);
            Builder { genesis, validators, storage, state, nonces: BTreeMap::new() }
        }

        fn tx(&mut self, signers: &[u8], payload: Payload) -> Transaction {
            let keys: Vec<SigningKey> = signers.iter().map(|s| key(*s)).collect();
            let nonce = self.nonces.entry(signers[0]).or_insert(0);
            *nonce += 1;
            let body = TxBody { sender: keys[0].public(), nonce: *nonce, expiry_height: 1000, payload };
            body.sign(self.genesis.chain_id(), &keys.iter().collect::<Vec<_>>())
        }

        /// A block of `txs`, applied and committed with a certificate signed by replicas 0, 1, 3.
        fn commit(&mut self, txs: Vec<Transaction>) {
            let height = self.state.height() + 1;
            let mut block = Block {
                header: BlockHeader {
                    chain_id: self.genesis.chain_id().clone(),
                    height,
                    view: 0,
                    prev_hash: self.state.head(),
                    timestamp_ms: T0 + height * 1000,
                    tx_root: Digest::ZERO,
                    tx_count: txs.len() as u32,
                    proposer: (height % 4) as u16,
                },
                txs,
            };
            block.header.tx_root = block.compute_tx_root();
            let receipts = self.state.apply_block(&block);
            let certificate = certify(&self.genesis, &self.validators, &block);
            self.storage.commit_block(&CommittedBlock { block, certificate }, &receipts).unwrap();
        }
    }

    fn certify(genesis: &Genesis, validators: &[SigningKey], block: &Block) -> CommitCertificate {
        let mut cert =
            CommitCertificate { view: 0, height: block.header.height, block_hash: block.hash(), votes: vec![] };
        for r in [0u16, 1, 3] {
            let sig = validators[r as usize].sign_raw(&cert.vote_signing_bytes(genesis.chain_id(), r));
            cert.votes.push((r, sig));
        }
        cert
    }

    /// Five blocks: enrolments, records, a grant, a rejected transaction, an empty block.
    fn good_chain() -> Builder {
        let mut b = Builder::new();
        // Hospital = validator key 1; doctor 10, patient 20, second doctor 11.
        let enroll = |k: u8, role| Payload::Enroll(Enroll { key: key(k).public(), role, name: format!("k{k}") });
        let txs = vec![b.tx(&[1], enroll(10, Role::Doctor)), b.tx(&[1], enroll(20, Role::Patient))];
        b.commit(txs);
        let txs = vec![b.tx(&[1], enroll(11, Role::Doctor))];
        b.commit(txs);
        let anchor = |id: u8| {
            Payload::AnchorRecord(AnchorRecord {
                record_id: Digest([id; 32]),
                owner: key(20).public(),
                author: key(10).public(),
                hospital: key(1).public(),
                data_type: "Condition".into(),
                created_at_ms: T0,
                ciphertext_digest: Digest([id; 32]),
                ciphertext_len: 10,
                blob_locator: format!("b/{id}"),
                encrypted_data_key: vec![],
                index_labels: vec![[id; 16]],
                epoch: 0,
            })
        };
        let txs = vec![b.tx(&[10, 20], anchor(1)), b.tx(&[10, 20], anchor(2)), b.tx(&[10, 20], anchor(1))];
        b.commit(txs);
        let grant = Payload::Grant(Grant {
            grantee: key(11).public(),
            scope: GrantScope::Records(vec![Digest([1; 32])]),
            purpose: "care".into(),
            expires_at_ms: u64::MAX,
        });
        let txs = vec![b.tx(&[20], grant)];
        b.commit(txs);
        b.commit(vec![]);
        b
    }

    /// The stored chain with some blocks or receipts replaced, bypassing the storage's checks.
    struct Tampered {
        base: MemStorage,
        blocks: BTreeMap<u64, CommittedBlock>,
        receipts: BTreeMap<u64, Vec<Receipt>>,
    }

    impl Tampered {
        fn new(base: &MemStorage) -> Self {
            Tampered { base: base.clone(), blocks: BTreeMap::new(), receipts: BTreeMap::new() }
        }
        fn edit_block(&mut self, height: u64, f: impl FnOnce(&mut CommittedBlock)) {
            let mut b = self.base.block(height).unwrap().unwrap();
            f(&mut b);
            self.blocks.insert(height, b);
        }
    }

    impl Storage for Tampered {
        fn genesis(&self) -> StorageResult<Option<Genesis>> {
            self.base.genesis()
        }
        fn put_genesis(&mut self, genesis: &Genesis) -> StorageResult<()> {
            self.base.put_genesis(genesis)
        }
        fn head(&self) -> StorageResult<Option<(u64, Digest)>> {
            self.base.head()
        }
        fn commit_block(&mut self, committed: &CommittedBlock, receipts: &[Receipt]) -> StorageResult<()> {
            self.base.commit_block(committed, receipts)
        }
        fn block(&self, height: u64) -> StorageResult<Option<CommittedBlock>> {
            match self.blocks.get(&height) {
                Some(b) => Ok(Some(b.clone())),
                None => self.base.block(height),
            }
        }
        fn receipts(&self, height: u64) -> StorageResult<Option<Vec<Receipt>>> {
            match self.receipts.get(&height) {
                Some(r) => Ok(Some(r.clone())),
                None => self.base.receipts(height),
            }
        }
        fn tx_location(&self, id: &TxId) -> StorageResult<Option<TxLocation>> {
            self.base.tx_location(id)
        }
        fn put_consensus(&mut self, key: &[u8], value: &[u8]) -> StorageResult<()> {
            self.base.put_consensus(key, value)
        }
        fn consensus_entries(&self) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>> {
            self.base.consensus_entries()
        }
        fn prune_consensus_below(&mut self, key: &[u8]) -> StorageResult<()> {
            self.base.prune_consensus_below(key)
        }
    }

    fn verify(s: &dyn Storage) -> Result<ChainSummary, ChainFault> {
        verify_chain(s, &CpuVerifier::new(), &mut |_, _| {})
    }

    fn fault_at(s: &dyn Storage, height: u64, needle: &str) {
        let f = verify(s).expect_err("the tampered chain verified");
        assert_eq!(f.height, height, "{f}");
        assert!(f.problem.contains(needle), "{f} (expected to mention {needle:?})");
        assert!(f.to_string().contains(&format!("height {height}")), "{f}");
    }

    #[test]
    fn a_good_chain_verifies_with_progress() {
        let b = good_chain();
        let receipts = b.storage.receipts(3).unwrap().unwrap();
        assert!(matches!(receipts[2].outcome, Outcome::Rejected(TxError::Conflict(_))), "{receipts:?}");
        let mut seen = Vec::new();
        let summary = verify_chain(&b.storage, &CpuVerifier::new(), &mut |h, of| seen.push((h, of))).unwrap();
        assert_eq!(summary, ChainSummary { height: 5, head: b.state.head() });
        assert_eq!(seen, (0..=5).map(|h| (h, 5)).collect::<Vec<_>>());
    }

    #[test]
    fn a_genesis_only_chain_verifies() {
        let b = Builder::new();
        assert_eq!(verify(&b.storage).unwrap(), ChainSummary { height: 0, head: b.genesis.hash() });
        assert_eq!(verify(&MemStorage::new()).unwrap_err().height, 0);
    }

    #[test]
    fn a_tampered_transaction_byte_is_found() {
        let b = good_chain();
        let mut t = Tampered::new(&b.storage);
        t.edit_block(3, |c| c.block.txs[1].signatures[1].0[5] ^= 0x10);
        fault_at(&t, 3, "tx_root");
    }

    #[test]
    fn a_bad_transaction_signature_under_a_valid_certificate_is_found() {
        // What a colluding quorum could commit: the block is consistent and certified, but a
        // signature in it is forged.
        let b = good_chain();
        let mut t = Tampered::new(&b.storage);
        t.edit_block(4, |c| {
            c.block.txs[0].signatures[0].0[40] ^= 1;
            c.block.header.tx_root = c.block.compute_tx_root();
            c.certificate = certify(&b.genesis, &b.validators, &c.block);
        });
        // Block 5's prev_hash now breaks, but block 4 is reported first.
        fault_at(&t, 4, "signature 0 of transaction 0");
    }

    #[test]
    fn a_tampered_certificate_signature_is_found() {
        let b = good_chain();
        let mut t = Tampered::new(&b.storage);
        t.edit_block(2, |c| c.certificate.votes[1].1 .0[3] ^= 1);
        fault_at(&t, 2, "COMMIT signature of replica 1");
    }

    #[test]
    fn a_certificate_without_quorum_is_found() {
        let b = good_chain();
        let mut t = Tampered::new(&b.storage);
        t.edit_block(5, |c| {
            c.certificate.votes.pop();
        });
        fault_at(&t, 5, "quorum");
    }

    #[test]
    fn a_tampered_receipt_is_found() {
        let b = good_chain();
        let mut t = Tampered::new(&b.storage);
        let mut r = b.storage.receipts(3).unwrap().unwrap();
        r[2].outcome = Outcome::Applied;
        t.receipts.insert(3, r);
        fault_at(&t, 3, "receipt 2 differs");
        let mut t = Tampered::new(&b.storage);
        t.receipts.insert(4, vec![]);
        fault_at(&t, 4, "receipts");
    }

    #[test]
    fn a_tampered_prev_hash_is_found() {
        let b = good_chain();
        let mut t = Tampered::new(&b.storage);
        t.edit_block(4, |c| c.block.header.prev_hash.0[0] ^= 1);
        fault_at(&t, 4, "prev_hash");
    }

    #[test]
    fn header_faults_are_found() {
        let b = good_chain();
        type Edit = Box<dyn Fn(&mut CommittedBlock)>;
        let cases: Vec<(u64, &str, Edit)> = vec![
            (2, "timestamp", Box::new(|c| c.block.header.timestamp_ms = T0 - 1)),
            (3, "tx_count", Box::new(|c| c.block.header.tx_count += 1)),
            (1, "proposer", Box::new(|c| c.block.header.proposer = 9)),
            (2, "header says height", Box::new(|c| c.block.header.height = 7)),
            (5, "chain id", Box::new(|c| c.block.header.chain_id = ChainId::new("other").unwrap())),
        ];
        for (height, needle, f) in cases {
            let mut t = Tampered::new(&b.storage);
            // Re-certify the changed header, so only the named fault remains.
            t.edit_block(height, |c| {
                f(c);
                c.certificate = certify(&b.genesis, &b.validators, &c.block);
                c.certificate.height = height;
            });
            fault_at(&t, height, needle);
        }
    }

    #[test]
    fn a_missing_block_or_a_wrong_head_is_found() {
        let b = good_chain();
        let mut base = MemStorage::new();
        base.put_genesis(&b.genesis).unwrap();
        for h in 1..=3 {
            let c = b.storage.block(h).unwrap().unwrap();
            base.commit_block(&c, &b.storage.receipts(h).unwrap().unwrap()).unwrap();
        }
        assert_eq!(verify(&base).unwrap().height, 3);
        // Head says 3 but block 3 is replaced by block 2's copy.
        let mut t = Tampered::new(&base);
        t.blocks.insert(3, b.storage.block(2).unwrap().unwrap());
        fault_at(&t, 3, "header says height 2");
    }

    /// A verifier that always fails: the audit falls back to the CPU.
    struct Broken;
    impl BatchVerifier for Broken {
        fn name(&self) -> String {
            "broken".into()
        }
        fn verify_batch(&self, _: &[VerifyItem<'_>]) -> Result<Vec<bool>, crate::verifier::VerifierError> {
            Err(crate::verifier::VerifierError { backend: "broken".into(), reason: "device lost".into() })
        }
        fn sha256_batch(&self, _: &[&[u8]]) -> Result<Vec<Digest>, crate::verifier::VerifierError> {
            unreachable!("not used by the audit")
        }
        fn merkle_root(&self, _: &[&[u8]]) -> Result<Digest, crate::verifier::VerifierError> {
            unreachable!("not used by the audit")
        }
    }

    #[test]
    fn a_failing_verifier_falls_back_to_the_cpu() {
        let b = good_chain();
        assert_eq!(verify_chain(&b.storage, &Broken, &mut |_, _| {}).unwrap().height, 5);
    }
}
