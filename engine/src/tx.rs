//! Transactions: what participants sign and submit (DESIGN §3).
//!
//! A transaction is a [`TxBody`] plus one signature per required signer, in the order
//! [`TxBody::signers`] gives. The sender's nonce must advance with each transaction and the
//! transaction expires after `expiry_height`. The transaction id is the SHA-256 of the body's
//! canonical encoding; signatures are not part of the id, so re-encoding a signature cannot make
//! a second id for the same transaction.

use crate::codec::{self, sha256, DecodeError, Digest};
use crate::crypto::{signing_bytes, ChainId, Domain, PublicKey, Signature, SigningKey};
use crate::limits::TX_BYTES_MAX;
use serde::{Deserialize, Serialize};

/// The nonce of key-generation transactions (`DkgRound1`, `DkgRound2`, `DkgComplaint`), which stand outside
/// their sender's nonce sequence: a validator sends each round once, and that rule, not a nonce,
/// stops a replay. So a validator's key generation never races its hospital's own transactions.
/// No other transaction may use it.
pub const NONCE_OUTSIDE_SEQUENCE: u64 = u64::MAX;

/// A record's id, chosen by its writer (random 32 bytes).
pub type RecordId = Digest;
/// A transaction's id: SHA-256 of its body's canonical encoding.
pub type TxId = Digest;

/// The role of an enrolled participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A hospital data center (validators are hospitals enrolled in the genesis).
    Hospital,
    /// A non-voting node that follows and re-verifies the chain.
    Auditor,
    /// A researcher or insurer who may search and ask for access.
    Researcher,
    /// A doctor, enrolled by a hospital; writes records.
    Doctor,
    /// A patient, enrolled by a hospital under a pseudonymous key; owns records.
    Patient,
}

/// Enrols a participant. Hospitals, auditors and researchers are enrolled by the consortium CA;
/// doctors and patients by a hospital, which becomes their `hospital`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enroll {
    /// The participant's public key.
    pub key: PublicKey,
    /// The role granted.
    pub role: Role,
    /// A display name (a pseudonym for patients).
    pub name: String,
}

/// Anchors an encrypted record on chain (the seeds' P_DE record). Signed by the author (the
/// sender) and co-signed by the owner: a record without the patient's consent is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// The record's id; unique on the chain.
    pub record_id: RecordId,
    /// The patient who owns the record.
    pub owner: PublicKey,
    /// The doctor who wrote it (must be the sender).
    pub author: PublicKey,
    /// The hospital that enrolled the author.
    pub hospital: PublicKey,
    /// A public data type tag such as `Condition` or `Observation`.
    pub data_type: String,
    /// When the record was created, in milliseconds since the Unix epoch (writer's claim).
    pub created_at_ms: u64,
    /// SHA-256 of the encrypted body.
    pub ciphertext_digest: Digest,
    /// Length of the encrypted body in bytes.
    pub ciphertext_len: u64,
    /// Where the encrypted body is stored (blob store locator).
    pub blob_locator: String,
    /// The record's data key encrypted to the consortium key (opaque until issue 5).
    pub encrypted_data_key: Vec<u8>,
    /// Search index labels, 16 bytes each (opaque until issue 4).
    pub index_labels: Vec<[u8; 16]>,
    /// The index epoch the labels were derived in.
    pub epoch: u64,
}

/// What a grant covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantScope {
    /// These records (all owned by the granting patient).
    Records(Vec<RecordId>),
    /// Every record of the owner with one of these data types created in `[from_ms, to_ms)`.
    DataTypes {
        /// The data type tags covered.
        data_types: Vec<String>,
        /// Start of the creation-time range, inclusive.
        from_ms: u64,
        /// End of the creation-time range, exclusive.
        to_ms: u64,
    },
}

/// A patient grants a reader access to some of their records. The grant's id is its tx id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Who may read.
    pub grantee: PublicKey,
    /// What may be read.
    pub scope: GrantScope,
    /// Why (free text, shown in the audit trail).
    pub purpose: String,
    /// The grant ends at this block timestamp (milliseconds since the Unix epoch).
    pub expires_at_ms: u64,
}

/// A patient revokes a grant of theirs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoke {
    /// The tx id of the grant.
    pub grant: TxId,
}

/// A reader asks to read a record (the seeds' D_UE usage record). Access happens only after this
/// is committed, so the audit trail is complete by construction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    /// The record to read.
    pub record: RecordId,
    /// The grant that covers it; `None` when the reader is the owner.
    pub grant: Option<TxId>,
    /// The reader's ristretto255 decryption key `B` (compressed), fresh for each request: the
    /// validators' decryption shares are re-encrypted to it (`engine::threshold`).
    pub reader_key: [u8; 32],
}

/// A genesis validator's round-1 package of the distributed key generation (`engine::dkg`),
/// published with the key its round-2 packages must be sealed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkgRound1 {
    /// frost's round-1 package (commitments to its polynomial and a proof of knowledge).
    pub package: Vec<u8>,
    /// The validator's transport key (ristretto255, compressed) for round-2 packages.
    pub transport: [u8; 32],
}

/// One round-2 package, sealed for the validator it is addressed to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPackage {
    /// The recipient's share index (its position in the genesis validators, plus one).
    pub to: u16,
    /// `engine::dkg::seal_package` of the package.
    pub sealed: Vec<u8>,
}

/// A genesis validator's round-2 packages: one for each other validator, each sealed for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkgRound2 {
    /// In recipient order, every other validator exactly once.
    pub packages: Vec<SealedPackage>,
}

/// A validator shows that the round-2 package another validator sealed for it is wrong: it
/// reveals the Diffie–Hellman point that opens that one package, with a proof that the point is
/// its transport secret times the package's ephemeral key (`engine::dkg::complain`). Anyone can
/// then open the package and check it against the dealer's round-1 commitments; the ledger takes
/// the complaint only if the package fails, and records the dealer as a proven culprit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkgComplaint {
    /// The dealer's share index.
    pub against: u16,
    /// The revealed point `x·E` (ristretto255, compressed).
    pub shared: [u8; 32],
    /// The proof's challenge.
    pub c: [u8; 32],
    /// The proof's response.
    pub s: [u8; 32],
}

/// A patient replaces their key (seed 004: a lost or exposed device). Signed by the old key (the
/// sender) and the new one (proof of possession). Records, grants and the audit trail follow the
/// patient to the new key; the old key can send nothing more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateKey {
    /// The patient's new key.
    pub new_key: PublicKey,
}

/// A hospital authorises a researcher to search its search domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchAuthorization {
    /// The researcher.
    pub researcher: PublicKey,
    /// Why (free text).
    pub purpose: String,
    /// The authorization ends at this block timestamp (milliseconds since the Unix epoch).
    pub expires_at_ms: u64,
}

/// A researcher logs a search before the token service hands out any key for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchLog {
    /// The hospital whose search domain is queried.
    pub hospital: PublicKey,
    /// The tx id of the `SearchAuthorization` relied on.
    pub authorization: TxId,
    /// SHA-256 of the query as sent to the token service.
    pub query_digest: Digest,
    /// Number of (field, value) terms asked for.
    pub term_count: u32,
}

/// What a transaction does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// See [`Enroll`].
    Enroll(Enroll),
    /// See [`AnchorRecord`].
    AnchorRecord(AnchorRecord),
    /// See [`Grant`].
    Grant(Grant),
    /// See [`Revoke`].
    Revoke(Revoke),
    /// See [`ReadRequest`].
    ReadRequest(ReadRequest),
    /// See [`SearchAuthorization`].
    SearchAuthorization(SearchAuthorization),
    /// See [`SearchLog`].
    SearchLog(SearchLog),
    /// See [`DkgRound1`].
    DkgRound1(DkgRound1),
    /// See [`DkgRound2`].
    DkgRound2(DkgRound2),
    /// See [`RotateKey`].
    RotateKey(RotateKey),
    /// See [`DkgComplaint`].
    DkgComplaint(DkgComplaint),
}

impl Payload {
    /// Whether this payload stands outside its sender's nonce sequence
    /// ([`NONCE_OUTSIDE_SEQUENCE`]).
    pub fn outside_nonce_sequence(&self) -> bool {
        matches!(self, Payload::DkgRound1(_) | Payload::DkgRound2(_) | Payload::DkgComplaint(_))
    }

    /// A short name for logs, metrics and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Enroll(_) => "Enroll",
            Payload::AnchorRecord(_) => "AnchorRecord",
            Payload::Grant(_) => "Grant",
            Payload::Revoke(_) => "Revoke",
            Payload::ReadRequest(_) => "ReadRequest",
            Payload::SearchAuthorization(_) => "SearchAuthorization",
            Payload::SearchLog(_) => "SearchLog",
            Payload::DkgRound1(_) => "DkgRound1",
            Payload::DkgRound2(_) => "DkgRound2",
            Payload::RotateKey(_) => "RotateKey",
            Payload::DkgComplaint(_) => "DkgComplaint",
        }
    }
}

/// The signed part of a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxBody {
    /// The participant who sends the transaction; its nonce advances.
    pub sender: PublicKey,
    /// Must be greater than the sender's last committed nonce.
    pub nonce: u64,
    /// The transaction is refused in any block above this height.
    pub expiry_height: u64,
    /// What it does.
    pub payload: Payload,
}

impl TxBody {
    /// Every key that must sign, sender first. An `AnchorRecord` also needs its owner
    /// (the patient's consent), unless the owner is the sender; a `RotateKey` needs the new key.
    pub fn signers(&self) -> Vec<PublicKey> {
        let mut out = vec![self.sender];
        match &self.payload {
            Payload::AnchorRecord(a) if a.owner != self.sender => out.push(a.owner),
            Payload::RotateKey(r) if r.new_key != self.sender => out.push(r.new_key),
            _ => {}
        }
        out
    }

    /// The canonical encoding of the body.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// The transaction id.
    pub fn id(&self) -> TxId {
        sha256(&self.encode())
    }

    /// The exact bytes every signer signs.
    pub fn signing_bytes(&self, chain_id: &ChainId) -> Vec<u8> {
        signing_bytes(Domain::Transaction, chain_id, &self.encode())
    }

    /// Signs the body with every key in `keys` (sender first, as [`TxBody::signers`] orders them).
    pub fn sign(self, chain_id: &ChainId, keys: &[&SigningKey]) -> Transaction {
        let bytes = self.signing_bytes(chain_id);
        let signatures = keys.iter().map(|k| crate::crypto::Signature(k.sign_raw(&bytes).0)).collect();
        Transaction { body: self, signatures }
    }
}

/// A transaction as submitted and as stored in blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The signed body.
    pub body: TxBody,
    /// One signature per key of `body.signers()`, in that order.
    pub signatures: Vec<Signature>,
}

impl Transaction {
    /// The transaction id (of the body).
    pub fn id(&self) -> TxId {
        self.body.id()
    }

    /// The canonical encoding of the whole transaction (a Merkle leaf of its block).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a transaction strictly (size limit, canonical form).
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(bytes, TX_BYTES_MAX)
    }
}
