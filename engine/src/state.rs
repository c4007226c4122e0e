//! The ledger state machine: participants and roles, nonces, records by id and by owner,
//! grants, revocations, the read log. Applying a block is deterministic: every node that applies
//! the same blocks to the same genesis reaches the same state and the same receipts.

use crate::block::Block;
use crate::codec::Digest;
use crate::crypto::{ChainId, PublicKey};
use crate::genesis::Genesis;
use crate::threshold::{EncryptedKey, PublicKeySet, ShareIndex};
use crate::tx::{
    AnchorRecord, DkgComplaint, DkgRound1, DkgRound2, Enroll, Grant, GrantScope, Payload, ReadRequest, RecordId,
    Revoke, Role, RotateKey, SearchAuthorization, SearchLog, Transaction, TxId,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a transaction is refused. Grouped as rustls does: what the sender got wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TxError {
    /// A signature does not verify for the signer it belongs to.
    #[error("signature {index} (signer {signer}) does not verify")]
    BadSignature {
        /// Position in `signatures`.
        index: usize,
        /// The key it should verify under.
        signer: PublicKey,
    },
    /// The number of signatures differs from the number of required signers.
    #[error("{got} signatures, but this transaction needs {expected} (sender first, then co-signers)")]
    WrongSignatureCount {
        /// Required signers.
        expected: usize,
        /// Signatures present.
        got: usize,
    },
    /// The nonce does not advance the sender's last committed nonce (a replay or a stale copy).
    #[error("nonce {got} of sender {sender} does not advance its last nonce {last}")]
    StaleNonce {
        /// The sender.
        sender: PublicKey,
        /// The last committed nonce.
        last: u64,
        /// The nonce given.
        got: u64,
    },
    /// The transaction's expiry height has passed.
    #[error("expired at height {expiry_height}, the chain is at height {height}")]
    Expired {
        /// The transaction's expiry height.
        expiry_height: u64,
        /// The height it would have been included at.
        height: u64,
    },
    /// A signer or named participant is not enrolled.
    #[error("participant {key} is not enrolled")]
    UnknownParticipant {
        /// The key.
        key: PublicKey,
    },
    /// The participant's role may not do this.
    #[error("{key} (role {role:?}) may not {action}")]
    RoleNotAllowed {
        /// The key.
        key: PublicKey,
        /// Its role, if enrolled (the CA has none).
        role: Option<Role>,
        /// What was attempted.
        action: String,
    },
    /// A field has an invalid value.
    #[error("field `{field}`: {reason}")]
    Malformed {
        /// The field, as a path (`payload.record_id`).
        field: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// A field or the whole transaction is larger than allowed.
    #[error("`{field}` is {size} long, the limit is {max}")]
    Oversize {
        /// The field (`transaction` for the whole encoding).
        field: String,
        /// Its size (bytes or items).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The transaction refers to something that does not exist (a record, a grant).
    #[error("{what} {id} does not exist")]
    NotFound {
        /// What kind of thing.
        what: String,
        /// Its id (hex).
        id: String,
    },
    /// The transaction conflicts with the state (a duplicate record id, a key enrolled twice,
    /// a grant already revoked, a read not covered by the grant).
    #[error("{0}")]
    Conflict(String),
    /// The same transaction is already committed or pending.
    #[error("transaction {0} is already known")]
    Duplicate(TxId),
}

impl TxError {
    /// The field a client should fix, when there is one.
    pub fn field(&self) -> Option<String> {
        match self {
            TxError::BadSignature { index, .. } => Some(format!("signatures[{index}]")),
            TxError::WrongSignatureCount { .. } => Some("signatures".into()),
            TxError::StaleNonce { .. } => Some("body.nonce".into()),
            TxError::Expired { .. } => Some("body.expiry_height".into()),
            TxError::UnknownParticipant { .. } | TxError::RoleNotAllowed { .. } => Some("body.sender".into()),
            TxError::Malformed { field, .. } | TxError::Oversize { field, .. } => Some(field.clone()),
            TxError::NotFound { .. } | TxError::Conflict(_) => Some("body.payload".into()),
            TxError::Duplicate(_) => None,
        }
    }
}

/// What happened to a transaction in a committed block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied to the state.
    Applied,
    /// Included but refused by the state machine (e.g. a nonce that a transaction earlier in the
    /// pipeline already used); it changed nothing but the record of its refusal.
    Rejected(TxError),
}

/// The outcome of one transaction of a committed block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The transaction.
    pub tx: TxId,
    /// What happened.
    pub outcome: Outcome,
}

pub use crate::validation::{check_stateless, signature_checks, verify_signatures};

/// An enrolled participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Its role.
    pub role: Role,
    /// Its display name (a pseudonym for patients).
    pub name: String,
    /// Who enrolled it: the CA for hospitals, auditors and researchers (and for everyone named
    /// in the genesis), the enrolling hospital for doctors and patients.
    pub enrolled_by: PublicKey,
    /// The height it was enrolled at (0 for the genesis).
    pub height: u64,
}

/// An anchored record, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// The anchor as committed.
    pub anchor: AnchorRecord,
    /// The transaction that anchored it.
    pub tx: TxId,
    /// The height it was committed at.
    pub height: u64,
}

/// A grant, as committed, and whether it has been revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// The patient who granted it (the sender of the grant).
    pub owner: PublicKey,
    /// The grant.
    pub grant: Grant,
    /// The height it was committed at.
    pub height: u64,
    /// The height of the `Revoke` that ended it, if any.
    pub revoked_at: Option<u64>,
}

/// A search authorization, as committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchAuthorizationEntry {
    /// The hospital that authorised the search (the sender).
    pub hospital: PublicKey,
    /// The authorization.
    pub authorization: SearchAuthorization,
    /// The height it was committed at.
    pub height: u64,
}

/// A committed search log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchLogEntry {
    /// The transaction.
    pub tx: TxId,
    /// The researcher who searched (the sender).
    pub researcher: PublicKey,
    /// The log.
    pub log: SearchLog,
    /// The height it was committed at.
    pub height: u64,
    /// The block timestamp (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
}

/// A committed `ReadRequest`: what validators serve decryption shares for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadEntry {
    /// The reader (the sender).
    pub reader: PublicKey,
    /// The request as committed.
    pub request: ReadRequest,
    /// The height it was committed at.
    pub height: u64,
    /// The block timestamp (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
}

/// The distributed key generation as the ledger has seen it (DESIGN §7, `engine::dkg`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkgLedger {
    /// Round-1 packages and transport keys by share index.
    pub round1: BTreeMap<ShareIndex, DkgRound1>,
    /// Round-2 packages (sealed) by sender index.
    pub round2: BTreeMap<ShareIndex, DkgRound2>,
    /// The public key set, computed from every round-1 package when the last one committed.
    pub key_set: Option<PublicKeySet>,
    /// Dealers proven, by an upheld `DkgComplaint`, to have sent a wrong round-2 package: by
    /// index, the complainer, the block height and why. The key generation cannot complete for
    /// the complainer; the consortium needs a new genesis without the culprit.
    #[serde(default)]
    pub culprits: BTreeMap<ShareIndex, ProvenCulprit>,
}

/// A dealer proven at fault in the key generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenCulprit {
    /// The validator whose complaint proved it.
    pub by: ShareIndex,
    /// The height of the complaint's block.
    pub height: u64,
    /// What the complaint showed.
    pub reason: String,
}

impl DkgLedger {
    /// The set, once every validator has sent its round-2 packages (each thereby confirmed every
    /// round-1 proof): the key to encrypt data keys to.
    pub fn active(&self, n: usize) -> Option<&PublicKeySet> {
        self.key_set.as_ref().filter(|_| self.round2.len() == n)
    }
}

/// What happened to a patient's records, as the audit trail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A record of the patient was anchored (by `actor`, its author).
    Anchored {
        /// The record.
        record: RecordId,
    },
    /// The patient granted access (`actor` is the patient).
    Granted {
        /// The grant's tx id.
        grant: TxId,
        /// Who may read.
        grantee: PublicKey,
    },
    /// The patient revoked a grant (`actor` is the patient).
    Revoked {
        /// The grant's tx id.
        grant: TxId,
    },
    /// The patient replaced their key (`actor` is the old key).
    KeyRotated {
        /// The new key.
        new_key: PublicKey,
    },
    /// `actor` read a record of the patient.
    Read {
        /// The record.
        record: RecordId,
        /// The grant relied on; `None` when the patient read their own record.
        grant: Option<TxId>,
    },
}

/// One entry of a patient's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// The height of the block.
    pub height: u64,
    /// The block timestamp (milliseconds since the Unix epoch).
    pub timestamp_ms: u64,
    /// The transaction.
    pub tx: TxId,
    /// Who did it (the transaction's sender: the reader for reads).
    pub actor: PublicKey,
    /// What happened.
    pub action: AuditAction,
}

/// The ledger state after some prefix of the chain.
///
/// Built with [`State::from_genesis`] and advanced with [`State::apply_block`]. Everything that
/// is iterated is kept in ordered maps or append-only lists, so two nodes that apply the same
/// blocks hold equal states (`==`) and produce the same receipts.
///
/// # Rules
///
/// Every transaction (after [`check_stateless`]):
/// - its id is not already committed ([`TxError::Duplicate`]);
/// - `expiry_height ≥` the block height ([`TxError::Expired`]);
/// - the sender is enrolled or is the CA ([`TxError::UnknownParticipant`]);
/// - its nonce is above the sender's last committed nonce ([`TxError::StaleNonce`]); gaps are
///   allowed. A rejected transaction does not advance the nonce. Key-generation transactions
///   stand outside the sequence (`tx::NONCE_OUTSIDE_SEQUENCE`): each is accepted once per
///   validator and round, and leaves the nonce alone.
///
/// Per payload:
/// - `Enroll`: hospitals, auditors and researchers only by the CA; doctors and patients only by
///   an enrolled hospital, which is recorded as `enrolled_by` (their hospital). A key is enrolled
///   once, and the CA key never. The CA may send nothing but `Enroll`.
/// - `AnchorRecord`: the sender is the author (stateless) and a doctor; the owner is an enrolled
///   patient; `hospital` is the hospital that enrolled the author; the record id is unused; the
///   encrypted data key is empty or a `threshold::EncryptedKey` whose proof holds for this record
///   and chain.
/// - `Grant`: the sender is a patient and becomes the owner; the grantee is enrolled and is not
///   the sender; every record of a `Records` scope exists and is the sender's;
///   `expires_at_ms >` the block timestamp.
/// - `Revoke`: the grant exists, is the sender's, and is not already revoked.
/// - `ReadRequest`: the record exists. With no grant, only its owner may read. With a grant: it
///   exists, names the sender as grantee, is not revoked, has not expired (block timestamp
///   `< expires_at_ms`), was given by the record's owner, and covers the record (listed, or of
///   one of its data types with `from_ms ≤ created_at_ms < to_ms`). The read is appended to the
///   read log and to the owner's audit trail.
/// - `SearchAuthorization`: the sender is a hospital; the researcher is enrolled as a
///   researcher; `expires_at_ms >` the block timestamp.
/// - `SearchLog`: the sender is a researcher; the authorization exists, names the sender, was
///   given by `hospital`, and has not expired at the block timestamp.
/// - `DkgRound1`: the sender is a genesis validator (share index = its position + 1) that has
///   not sent one, there are at least two validators, and the package decodes with
///   `threshold = dkg::consortium_threshold(n)` commitments and a proof of knowledge that holds
///   for the sender's index (`dkg::check_round1`). The last one fixes the key set
///   (`dkg::public_key_set`).
/// - `DkgRound2`: every round-1 package is in; the sender is a validator that has not sent one;
///   it holds exactly one package for each other validator. When all `n` are in, the key set is
///   active ([`State::key_set`]).
/// - `DkgComplaint`: the sender is a genesis validator; `against` is another one, not already a
///   proven culprit, that has sent its round-2 packages; the complaint proves that the package
///   `against` sealed for the sender is wrong (`dkg::check_complaint`: the revealed point's proof
///   holds for the sender's transport key, and the package then fails to open, to decode, or to
///   match `against`'s commitments). `against` is recorded in `DkgLedger::culprits`.
/// - `RotateKey`: the sender is a patient; the new key is not enrolled (nor the CA). The new key
///   takes over the patient's records, grants and audit trail; the old key may send nothing more
///   and is refused as a new record's owner.
///
/// A rotated key sends nothing (every payload). Records keep the key they were anchored under;
/// ownership follows rotations ([`State::current_owner`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    chain_id: ChainId,
    ca_key: PublicKey,
    height: u64,
    head: Digest,
    timestamp_ms: u64,
    participants: BTreeMap<PublicKey, Participant>,
    nonces: BTreeMap<PublicKey, u64>,
    committed_txs: BTreeSet<TxId>,
    records: BTreeMap<RecordId, RecordEntry>,
    records_by_owner: BTreeMap<PublicKey, BTreeSet<(u64, RecordId)>>,
    grants: BTreeMap<TxId, GrantEntry>,
    reads: Vec<AuditEvent>,
    audit: BTreeMap<PublicKey, Vec<AuditEvent>>,
    search_authorizations: BTreeMap<TxId, SearchAuthorizationEntry>,
    search_logs: Vec<SearchLogEntry>,
    /// Position in `search_logs` of each log by its tx id; a function of `search_logs`, so it
    /// adds nothing to equality.
    search_log_index: BTreeMap<TxId, usize>,
    validators: Vec<PublicKey>,
    dkg: DkgLedger,
    read_requests: BTreeMap<TxId, ReadEntry>,
    rotated: BTreeMap<PublicKey, (PublicKey, u64)>,
}

/// Where a transaction would be applied: the block's height and timestamp.
#[derive(Clone, Copy)]
struct At {
    height: u64,
    timestamp_ms: u64,
}

impl State {
    /// The state at height 0: the CA key has authority but no role; every genesis validator is
    /// enrolled as a [`Role::Hospital`] and every auditor as a [`Role::Auditor`], enrolled by the
    /// CA at height 0. The genesis signature is not checked here (see [`Genesis::verify`]).
    pub fn from_genesis(genesis: &Genesis) -> State {
        let body = &genesis.body;
        let mut participants = BTreeMap::new();
        let founders = body.validators.iter().map(|n| (n, Role::Hospital));
        for (node, role) in founders.chain(body.auditors.iter().map(|n| (n, Role::Auditor))) {
            participants
                .insert(node.key, Participant { role, name: node.name.clone(), enrolled_by: body.ca_key, height: 0 });
        }
        State {
            chain_id: body.chain_id.clone(),
            ca_key: body.ca_key,
            height: 0,
            head: genesis.hash(),
            timestamp_ms: body.created_at_ms,
            participants,
            nonces: BTreeMap::new(),
            committed_txs: BTreeSet::new(),
            records: BTreeMap::new(),
            records_by_owner: BTreeMap::new(),
            grants: BTreeMap::new(),
            reads: Vec::new(),
            audit: BTreeMap::new(),
            search_authorizations: BTreeMap::new(),
            search_logs: Vec::new(),
            search_log_index: BTreeMap::new(),
            validators: body.validators.iter().map(|v| v.key).collect(),
            dkg: DkgLedger::default(),
            read_requests: BTreeMap::new(),
            rotated: BTreeMap::new(),
        }
    }

    /// The height of the last applied block (0 at genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The hash of the last applied block (the genesis hash at height 0).
    pub fn head(&self) -> Digest {
        self.head
    }

    /// The timestamp of the last applied block (the genesis creation time at height 0).
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The chain id.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The consortium CA's key.
    pub fn ca_key(&self) -> &PublicKey {
        &self.ca_key
    }

    /// The last committed nonce of `key` (0 if it never sent a transaction that was applied).
    pub fn nonce(&self, key: &PublicKey) -> u64 {
        self.nonces.get(key).copied().unwrap_or(0)
    }

    /// Whether a transaction with this id was applied.
    pub fn is_committed(&self, tx: &TxId) -> bool {
        self.committed_txs.contains(tx)
    }

    /// An enrolled participant (the CA is not one).
    pub fn participant(&self, key: &PublicKey) -> Option<&Participant> {
        self.participants.get(key)
    }

    /// Every enrolled participant, in key order.
    pub fn participants(&self) -> impl Iterator<Item = (&PublicKey, &Participant)> {
        self.participants.iter()
    }

    /// An anchored record.
    pub fn record(&self, id: &RecordId) -> Option<&RecordEntry> {
        self.records.get(id)
    }

    /// The records owned by `owner`, in commit order (height, then record id).
    pub fn records_of(&self, owner: &PublicKey) -> Vec<&RecordEntry> {
        let Some(ids) = self.records_by_owner.get(&self.current_owner(owner)) else {
            return Vec::new();
        };
        ids.iter().filter_map(|(_, id)| self.records.get(id)).collect()
    }

    /// A grant by its tx id.
    pub fn grant(&self, id: &TxId) -> Option<&GrantEntry> {
        self.grants.get(id)
    }

    /// Every grant given by `owner`, in tx id order.
    pub fn grants_of(&self, owner: &PublicKey) -> Vec<(&TxId, &GrantEntry)> {
        let owner = self.current_owner(owner);
        self.grants.iter().filter(|(_, g)| g.owner == owner).collect()
    }

    /// The audit trail of a patient, oldest first: every anchoring of their records, every grant
    /// and revocation they made, and every read of their records, with height, block time and
    /// actor (the reader for reads).
    pub fn audit_trail(&self, patient: &PublicKey) -> &[AuditEvent] {
        self.audit.get(&self.current_owner(patient)).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The read log of the whole chain, oldest first (every entry's action is
    /// [`AuditAction::Read`]).
    pub fn reads(&self) -> &[AuditEvent] {
        &self.reads
    }

    /// A committed `ReadRequest` by its tx id (only applied ones: a refused request is not here).
    pub fn read_request(&self, tx: &TxId) -> Option<&ReadEntry> {
        self.read_requests.get(tx)
    }

    /// The key generation as far as it has gone.
    pub fn dkg(&self) -> &DkgLedger {
        &self.dkg
    }

    /// The consortium's active public key set (data keys are encrypted to its collective key),
    /// once the key generation has finished on chain.
    pub fn key_set(&self) -> Option<&PublicKeySet> {
        self.dkg.active(self.validators.len())
    }

    /// The genesis validators in share-index order (share index = position + 1).
    pub fn validators(&self) -> &[PublicKey] {
        &self.validators
    }

    /// The key `key` was rotated to and the height, if it was.
    pub fn rotated_to(&self, key: &PublicKey) -> Option<(PublicKey, u64)> {
        self.rotated.get(key).copied()
    }

    /// The patient's current key: `key` after every rotation.
    pub fn current_owner(&self, key: &PublicKey) -> PublicKey {
        let mut k = *key;
        // Each rotation goes to a key never enrolled before, so the chain has no cycle; the bound
        // is only a guard.
        for _ in 0..=self.rotated.len() {
            match self.rotated.get(&k) {
                Some((next, _)) => k = *next,
                None => break,
            }
        }
        k
    }

    fn share_index(&self, key: &PublicKey) -> Option<ShareIndex> {
        self.validators.iter().position(|v| v == key).and_then(|i| ShareIndex::try_from(i + 1).ok())
    }

    /// A search authorization by its tx id.
    pub fn search_authorization(&self, id: &TxId) -> Option<&SearchAuthorizationEntry> {
        self.search_authorizations.get(id)
    }

    /// Every search authorization, in tx id order.
    pub fn search_authorizations(&self) -> impl Iterator<Item = (&TxId, &SearchAuthorizationEntry)> {
        self.search_authorizations.iter()
    }

    /// Every search log, oldest first.
    pub fn search_logs(&self) -> &[SearchLogEntry] {
        &self.search_logs
    }

    /// A committed search log by its tx id.
    pub fn search_log(&self, tx: &TxId) -> Option<&SearchLogEntry> {
        self.search_log_index.get(tx).and_then(|&i| self.search_logs.get(i))
    }

    /// Checks `tx` against every rule (see [`State`]) as if it were applied in a block at
    /// `height` with `timestamp_ms`, after the blocks applied so far. Runs [`check_stateless`]
    /// too; signatures are NOT checked (callers verify them in batches first).
    pub fn check(&self, tx: &Transaction, height: u64, timestamp_ms: u64) -> Result<(), TxError> {
        check_stateless(tx)?;
        self.check_stateful(tx, tx.id(), At { height, timestamp_ms })
    }

    /// Applies a block whose signatures the caller has already verified: each transaction is
    /// checked ([`State::check`]) then applied, or gets [`Outcome::Rejected`] and changes
    /// nothing. Then the state's height, head and timestamp become the block's.
    ///
    /// # Panics
    ///
    /// If the block does not extend this state (height + 1, `prev_hash` = head): the caller
    /// checks the chain link before applying, so a mismatch is a bug.
    pub fn apply_block(&mut self, block: &Block) -> Vec<Receipt> {
        let header = &block.header;
        assert_eq!(header.height, self.height + 1, "apply_block: block does not follow the state's height");
        assert_eq!(header.prev_hash, self.head, "apply_block: block does not extend the state's head");
        let at = At { height: header.height, timestamp_ms: header.timestamp_ms };
        let receipts = block
            .txs
            .iter()
            .map(|tx| {
                let id = tx.id();
                let outcome = match check_stateless(tx).and_then(|()| self.check_stateful(tx, id, at)) {
                    Ok(()) => {
                        self.apply(tx, id, at);
                        Outcome::Applied
                    }
                    Err(e) => Outcome::Rejected(e),
                };
                Receipt { tx: id, outcome }
            })
            .collect();
        self.height = header.height;
        self.head = block.hash();
        self.timestamp_ms = header.timestamp_ms;
        receipts
    }

    fn check_stateful(&self, tx: &Transaction, id: TxId, at: At) -> Result<(), TxError> {
        let body = &tx.body;
        if self.committed_txs.contains(&id) {
            return Err(TxError::Duplicate(id));
        }
        if body.expiry_height < at.height {
            return Err(TxError::Expired { expiry_height: body.expiry_height, height: at.height });
        }
        let sender = body.sender;
        let role = if sender == self.ca_key {
            None
        } else {
            match self.participants.get(&sender) {
                Some(p) => Some(p.role),
                None => return Err(TxError::UnknownParticipant { key: sender }),
            }
        };
        if let Some((new_key, h)) = self.rotated.get(&sender) {
            return Err(TxError::Conflict(format!(
                "key {sender} was rotated to {new_key} at height {h}; sign with the new key"
            )));
        }
        let last = self.nonce(&sender);
        if body.nonce <= last && !body.payload.outside_nonce_sequence() {
            return Err(TxError::StaleNonce { sender, last, got: body.nonce });
        }
        let sender = Sender { key: sender, role };
        match &body.payload {
            Payload::Enroll(e) => self.check_enroll(sender, e),
            Payload::AnchorRecord(a) => self.check_anchor(sender, a),
            Payload::Grant(g) => self.check_grant(sender, g, at),
            Payload::Revoke(r) => self.check_revoke(sender, r),
            Payload::ReadRequest(r) => self.check_read(sender, r, at),
            Payload::SearchAuthorization(s) => self.check_search_authorization(sender, s, at),
            Payload::SearchLog(l) => self.check_search_log(sender, l, at),
            Payload::DkgRound1(r) => self.check_dkg_round1(sender, r),
            Payload::DkgRound2(r) => self.check_dkg_round2(sender, r),
            Payload::RotateKey(r) => self.check_rotate(sender, r),
            Payload::DkgComplaint(c) => self.check_dkg_complaint(sender, c).map(|_| ()),
        }
    }

    fn dkg_participant(&self, sender: Sender) -> Result<ShareIndex, TxError> {
        let index = self
            .share_index(&sender.key)
            .ok_or_else(|| sender.not_allowed("take part in key generation (only genesis validators do)"))?;
        if self.validators.len() < 2 {
            return Err(TxError::Conflict("a consortium of one validator has no threshold key".into()));
        }
        Ok(index)
    }

    fn check_dkg_round1(&self, sender: Sender, r: &DkgRound1) -> Result<(), TxError> {
        let index = self.dkg_participant(sender)?;
        if self.dkg.round1.contains_key(&index) {
            return Err(TxError::Conflict(format!("validator {index} already sent its round-1 package")));
        }
        let n = self.validators.len() as u16;
        let threshold = crate::dkg::consortium_threshold(n);
        crate::dkg::check_round1(index, threshold, &r.package)
            .map_err(|e| TxError::Malformed { field: "payload.DkgRound1.package".into(), reason: e.to_string() })?;
        if self.dkg.round1.len() + 1 == usize::from(n) {
            self.key_set_with(index, r).map_err(|e| TxError::Conflict(format!("the key set does not form: {e}")))?;
        }
        Ok(())
    }

    fn key_set_with(&self, index: ShareIndex, r: &DkgRound1) -> Result<PublicKeySet, crate::dkg::DkgError> {
        let n = self.validators.len() as u16;
        let mut packages: BTreeMap<ShareIndex, Vec<u8>> =
            self.dkg.round1.iter().map(|(i, p)| (*i, p.package.clone())).collect();
        packages.insert(index, r.package.clone());
        crate::dkg::public_key_set(n, crate::dkg::consortium_threshold(n), &packages)
    }

    fn check_dkg_round2(&self, sender: Sender, r: &DkgRound2) -> Result<(), TxError> {
        let index = self.dkg_participant(sender)?;
        let n = self.validators.len();
        if self.dkg.round1.len() != n || self.dkg.key_set.is_none() {
            return Err(TxError::Conflict(format!(
                "round 1 of key generation is not complete ({} of {n} packages)",
                self.dkg.round1.len()
            )));
        }
        if self.dkg.round2.contains_key(&index) {
            return Err(TxError::Conflict(format!("validator {index} already sent its round-2 packages")));
        }
        let expected: Vec<ShareIndex> = (1..=n as ShareIndex).filter(|i| *i != index).collect();
        let got: Vec<ShareIndex> = r.packages.iter().map(|p| p.to).collect();
        if got != expected {
            return Err(TxError::Malformed {
                field: "payload.DkgRound2.packages".into(),
                reason: format!("recipients {got:?}; expected every other validator, {expected:?}"),
            });
        }
        Ok(())
    }

    /// A complaint is upheld only if it proves the dealer wrong ([`crate::dkg::check_complaint`]);
    /// returns what it showed.
    fn check_dkg_complaint(&self, sender: Sender, c: &DkgComplaint) -> Result<String, TxError> {
        let by = self.dkg_participant(sender)?;
        let field = "payload.DkgComplaint.against";
        if c.against == by || usize::from(c.against) > self.validators.len() {
            return Err(TxError::Malformed {
                field: field.into(),
                reason: format!("{} is not another validator's share index", c.against),
            });
        }
        if self.dkg.culprits.contains_key(&c.against) {
            return Err(TxError::Conflict(format!("validator {} is already a proven culprit", c.against)));
        }
        let (Some(mine), Some(theirs), Some(dealt)) =
            (self.dkg.round1.get(&by), self.dkg.round1.get(&c.against), self.dkg.round2.get(&c.against))
        else {
            return Err(TxError::Conflict(format!(
                "validator {} has sent no round-2 package to complain of",
                c.against
            )));
        };
        let sealed = dealt.packages.iter().find(|p| p.to == by).map(|p| p.sealed.as_slice()).unwrap_or_default();
        crate::dkg::check_complaint(&self.chain_id, by, &mine.transport, sealed, &theirs.package, c)
            .map_err(|e| TxError::Conflict(format!("the complaint against validator {} is not upheld: {e}", c.against)))
    }

    fn check_rotate(&self, sender: Sender, r: &RotateKey) -> Result<(), TxError> {
        if sender.role != Some(Role::Patient) {
            return Err(sender.not_allowed("rotate its key (only patients do, on chain)"));
        }
        if r.new_key == self.ca_key
            || self.participants.contains_key(&r.new_key)
            || self.rotated.contains_key(&r.new_key)
        {
            return Err(TxError::Conflict(format!("{} is already in use; rotate to a fresh key", r.new_key)));
        }
        Ok(())
    }

    fn check_enroll(&self, sender: Sender, e: &Enroll) -> Result<(), TxError> {
        let allowed = matches!(
            (sender.role, e.role),
            (None, Role::Hospital | Role::Auditor | Role::Researcher)
                | (Some(Role::Hospital), Role::Doctor | Role::Patient)
        );
        if !allowed {
            return Err(sender.not_allowed(&format!("enrol a participant as {:?}", e.role)));
        }
        if e.key == self.ca_key {
            return Err(TxError::Conflict("the CA key cannot be enrolled".into()));
        }
        if let Some(p) = self.participants.get(&e.key) {
            return Err(TxError::Conflict(format!("{} is already enrolled as {:?}", e.key, p.role)));
        }
        Ok(())
    }

    fn check_anchor(&self, sender: Sender, a: &AnchorRecord) -> Result<(), TxError> {
        if sender.role != Some(Role::Doctor) {
            return Err(sender.not_allowed("anchor a record (only doctors may)"));
        }
        self.require_role(&a.owner, Role::Patient, "payload.AnchorRecord.owner")?;
        if let Some((new_key, _)) = self.rotated.get(&a.owner) {
            return Err(TxError::Malformed {
                field: "payload.AnchorRecord.owner".into(),
                reason: format!("the patient's key was rotated to {new_key}; the new key must consent"),
            });
        }
        let hospital = self.participants.get(&sender.key).map(|p| p.enrolled_by);
        if hospital != Some(a.hospital) {
            return Err(TxError::Malformed {
                field: "payload.AnchorRecord.hospital".into(),
                reason: "must be the hospital that enrolled the author".into(),
            });
        }
        if self.records.contains_key(&a.record_id) {
            return Err(TxError::Conflict(format!("record {} already exists", a.record_id)));
        }
        // The data key's proof binds its ciphertext to this record on this chain, so a key
        // copied from another record (whose reader might then be served shares for it under this
        // record's grants) never reaches the ledger. Empty: a record no one can read through
        // the validators.
        if !a.encrypted_data_key.is_empty() {
            let malformed = |e: crate::threshold::ThresholdError| TxError::Malformed {
                field: "payload.AnchorRecord.encrypted_data_key".into(),
                reason: format!("{e}; encrypt the data key to the consortium key for this record"),
            };
            EncryptedKey::from_bytes(&a.encrypted_data_key)
                .and_then(|key| key.verify(&self.chain_id, &a.record_id))
                .map_err(malformed)?;
        }
        Ok(())
    }

    fn check_grant(&self, sender: Sender, g: &Grant, at: At) -> Result<(), TxError> {
        if sender.role != Some(Role::Patient) {
            return Err(sender.not_allowed("grant access (only patients may, to their own records)"));
        }
        if !self.participants.contains_key(&g.grantee) {
            return Err(TxError::UnknownParticipant { key: g.grantee });
        }
        if g.grantee == sender.key {
            return Err(TxError::Malformed {
                field: "payload.Grant.grantee".into(),
                reason: "a patient needs no grant to read their own records".into(),
            });
        }
        if let GrantScope::Records(ids) = &g.scope {
            for id in ids {
                let record = self.records.get(id).ok_or_else(|| not_found("record", id))?;
                if self.current_owner(&record.anchor.owner) != sender.key {
                    return Err(TxError::Conflict(format!("record {id} is not owned by the sender")));
                }
            }
        }
        if g.expires_at_ms <= at.timestamp_ms {
            return Err(expiry_passed("payload.Grant.expires_at_ms", g.expires_at_ms, at));
        }
        Ok(())
    }

    fn check_revoke(&self, sender: Sender, r: &Revoke) -> Result<(), TxError> {
        let grant = self.grants.get(&r.grant).ok_or_else(|| not_found("grant", &r.grant))?;
        if grant.owner != sender.key {
            return Err(sender.not_allowed("revoke a grant it did not give"));
        }
        if let Some(h) = grant.revoked_at {
            return Err(TxError::Conflict(format!("grant {} was already revoked at height {h}", r.grant)));
        }
        Ok(())
    }

    fn check_read(&self, sender: Sender, r: &ReadRequest, at: At) -> Result<(), TxError> {
        let record = self.records.get(&r.record).ok_or_else(|| not_found("record", &r.record))?;
        let anchor = &record.anchor;
        let owner = self.current_owner(&anchor.owner);
        let Some(grant_id) = r.grant else {
            if owner != sender.key {
                return Err(TxError::Malformed {
                    field: "payload.ReadRequest.grant".into(),
                    reason: "only the record's owner may read without a grant".into(),
                });
            }
            return Ok(());
        };
        let entry = self.grants.get(&grant_id).ok_or_else(|| not_found("grant", &grant_id))?;
        let grant = &entry.grant;
        if grant.grantee != sender.key {
            return Err(TxError::Conflict(format!("grant {grant_id} is not given to the sender")));
        }
        if let Some(h) = entry.revoked_at {
            return Err(TxError::Conflict(format!("grant {grant_id} was revoked at height {h}")));
        }
        if grant.expires_at_ms <= at.timestamp_ms {
            return Err(TxError::Conflict(format!(
                "grant {grant_id} expired at {} ms, the block time is {} ms",
                grant.expires_at_ms, at.timestamp_ms
            )));
        }
        let covered = entry.owner == owner
            && match &grant.scope {
                GrantScope::Records(ids) => ids.contains(&r.record),
                GrantScope::DataTypes { data_types, from_ms, to_ms } => {
                    data_types.contains(&anchor.data_type) && (*from_ms..*to_ms).contains(&anchor.created_at_ms)
                }
            };
        if !covered {
            return Err(TxError::Conflict(format!("grant {grant_id} does not cover record {}", r.record)));
        }
        Ok(())
    }

    fn check_search_authorization(&self, sender: Sender, s: &SearchAuthorization, at: At) -> Result<(), TxError> {
        if sender.role != Some(Role::Hospital) {
            return Err(sender.not_allowed("authorise a search (only hospitals may)"));
        }
        self.require_role(&s.researcher, Role::Researcher, "payload.SearchAuthorization.researcher")?;
        if s.expires_at_ms <= at.timestamp_ms {
            return Err(expiry_passed("payload.SearchAuthorization.expires_at_ms", s.expires_at_ms, at));
        }
        Ok(())
    }

    fn check_search_log(&self, sender: Sender, l: &SearchLog, at: At) -> Result<(), TxError> {
        if sender.role != Some(Role::Researcher) {
            return Err(sender.not_allowed("log a search (only researchers may)"));
        }
        let auth = self
            .search_authorizations
            .get(&l.authorization)
            .ok_or_else(|| not_found("search authorization", &l.authorization))?;
        if auth.authorization.researcher != sender.key {
            return Err(TxError::Conflict(format!(
                "search authorization {} is not given to the sender",
                l.authorization
            )));
        }
        if auth.hospital != l.hospital {
            return Err(TxError::Malformed {
                field: "payload.SearchLog.hospital".into(),
                reason: format!("must be the hospital that gave authorization {}", l.authorization),
            });
        }
        if auth.authorization.expires_at_ms <= at.timestamp_ms {
            return Err(TxError::Conflict(format!(
                "search authorization {} expired at {} ms, the block time is {} ms",
                l.authorization, auth.authorization.expires_at_ms, at.timestamp_ms
            )));
        }
        Ok(())
    }

    /// `key` is enrolled with `role`; else UnknownParticipant, or Malformed naming `field`.
    fn require_role(&self, key: &PublicKey, role: Role, field: &str) -> Result<(), TxError> {
        let p = self.participants.get(key).ok_or(TxError::UnknownParticipant { key: *key })?;
        if p.role != role {
            return Err(TxError::Malformed {
                field: field.into(),
                reason: format!("{key} is enrolled as {:?}, not as {role:?}", p.role),
            });
        }
        Ok(())
    }

    /// Applies a transaction that passed every check.
    fn apply(&mut self, tx: &Transaction, id: TxId, at: At) {
        let sender = tx.body.sender;
        if !tx.body.payload.outside_nonce_sequence() {
            self.nonces.insert(sender, tx.body.nonce);
        }
        self.committed_txs.insert(id);
        let event =
            |action| AuditEvent { height: at.height, timestamp_ms: at.timestamp_ms, tx: id, actor: sender, action };
        match &tx.body.payload {
            Payload::Enroll(e) => {
                let p = Participant { role: e.role, name: e.name.clone(), enrolled_by: sender, height: at.height };
                self.participants.insert(e.key, p);
            }
            Payload::AnchorRecord(a) => {
                self.records.insert(a.record_id, RecordEntry { anchor: a.clone(), tx: id, height: at.height });
                self.records_by_owner.entry(a.owner).or_default().insert((at.height, a.record_id));
                self.audit.entry(a.owner).or_default().push(event(AuditAction::Anchored { record: a.record_id }));
            }
            Payload::Grant(g) => {
                let entry = GrantEntry { owner: sender, grant: g.clone(), height: at.height, revoked_at: None };
                self.grants.insert(id, entry);
                let action = AuditAction::Granted { grant: id, grantee: g.grantee };
                self.audit.entry(sender).or_default().push(event(action));
            }
            Payload::Revoke(r) => {
                if let Some(g) = self.grants.get_mut(&r.grant) {
                    g.revoked_at = Some(at.height);
                }
                self.audit.entry(sender).or_default().push(event(AuditAction::Revoked { grant: r.grant }));
            }
            Payload::ReadRequest(r) => {
                let owner = self.records.get(&r.record).map(|rec| self.current_owner(&rec.anchor.owner));
                let e = event(AuditAction::Read { record: r.record, grant: r.grant });
                if let Some(owner) = owner {
                    self.audit.entry(owner).or_default().push(e.clone());
                }
                self.reads.push(e);
                let entry =
                    ReadEntry { reader: sender, request: r.clone(), height: at.height, timestamp_ms: at.timestamp_ms };
                self.read_requests.insert(id, entry);
            }
            Payload::DkgRound1(r) => {
                if let Some(index) = self.share_index(&sender) {
                    if self.dkg.round1.len() + 1 == self.validators.len() {
                        self.dkg.key_set = self.key_set_with(index, r).ok();
                    }
                    self.dkg.round1.insert(index, r.clone());
                }
            }
            Payload::DkgRound2(r) => {
                if let Some(index) = self.share_index(&sender) {
                    self.dkg.round2.insert(index, r.clone());
                }
            }
            Payload::DkgComplaint(c) => {
                // The check passed before apply; it is run again for what the complaint showed.
                let checked = self.check_dkg_complaint(Sender { key: sender, role: None }, c);
                if let (Some(by), Ok(reason)) = (self.share_index(&sender), checked) {
                    self.dkg.culprits.insert(c.against, ProvenCulprit { by, height: at.height, reason });
                }
            }
            Payload::RotateKey(r) => {
                if let Some(p) = self.participants.get(&sender).cloned() {
                    self.participants.insert(r.new_key, Participant { height: at.height, ..p });
                }
                self.rotated.insert(sender, (r.new_key, at.height));
                if let Some(records) = self.records_by_owner.remove(&sender) {
                    self.records_by_owner.insert(r.new_key, records);
                }
                for g in self.grants.values_mut().filter(|g| g.owner == sender) {
                    g.owner = r.new_key;
                }
                let mut trail = self.audit.remove(&sender).unwrap_or_default();
                trail.push(event(AuditAction::KeyRotated { new_key: r.new_key }));
                self.audit.insert(r.new_key, trail);
            }
            Payload::SearchAuthorization(s) => {
                let entry = SearchAuthorizationEntry { hospital: sender, authorization: s.clone(), height: at.height };
                self.search_authorizations.insert(id, entry);
            }
            Payload::SearchLog(l) => {
                self.search_log_index.insert(id, self.search_logs.len());
                self.search_logs.push(SearchLogEntry {
                    tx: id,
                    researcher: sender,
                    log: l.clone(),
                    height: at.height,
                    timestamp_ms: at.timestamp_ms,
                });
            }
        }
    }
}

/// The sender of a transaction being checked: its key and role (`None` for the CA).
#[derive(Clone, Copy)]
struct Sender {
    key: PublicKey,
    role: Option<Role>,
}

impl Sender {
    fn not_allowed(&self, action: &str) -> TxError {
        TxError::RoleNotAllowed { key: self.key, role: self.role, action: action.into() }
    }
}

fn not_found(what: &str, id: &Digest) -> TxError {
    TxError::NotFound { what: what.into(), id: id.to_hex() }
}

fn expiry_passed(field: &str, expires_at_ms: u64, at: At) -> TxError {
    TxError::Malformed {
        field: field.into(),
        reason: format!("{expires_at_ms} ms is not after the block time {} ms", at.timestamp_ms),
    }
}
