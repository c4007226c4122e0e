//! The ledger state machine: genesis roles, every transaction rule, receipts, queries, the audit
//! trail, and determinism.

use engine::block::{Block, BlockHeader};
use engine::codec::Digest;
use engine::crypto::{ChainId, PublicKey, SigningKey};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use engine::limits::LOCATOR_BYTES_MAX;
use engine::state::{check_stateless, signature_checks, verify_signatures, AuditAction, Outcome, State, TxError};
use engine::tx::{
    AnchorRecord, DkgRound1, DkgRound2, Enroll, Grant, GrantScope, Payload, ReadRequest, Revoke, Role, RotateKey,
    SealedPackage, SearchAuthorization, SearchLog, Transaction, TxBody, TxId,
};

/// A valid reader key for `ReadRequest`s.
fn reader_key() -> [u8; 32] {
    engine::threshold::DhSecret::from_wide(&[9; 64]).public()
}

const T0: u64 = 1_700_000_000_000;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

struct Chain {
    genesis: Genesis,
    state: State,
    ca: SigningKey,
    /// Validator (hospital) keys.
    hospitals: Vec<SigningKey>,
    nonces: std::collections::HashMap<PublicKey, u64>,
    time_ms: u64,
}

impl Chain {
    fn new() -> Chain {
        let ca = key(200);
        let hospitals: Vec<SigningKey> = (1..=4).map(key).collect();
        let genesis = GenesisBody {
            chain_id: ChainId::new("test-chain").unwrap(),
            created_at_ms: T0,
            ca_key: ca.public(),
            validators: hospitals
                .iter()
                .enumerate()
                .map(|(i, k)| NodeInfo { name: format!("node{i}"), key: k.public() })
                .collect(),
            auditors: vec![NodeInfo { name: "regulator".into(), key: key(100).public() }],
            params: ChainParams::default(),
        }
        .sign(&ca);
        genesis.verify().unwrap();
        let state = State::from_genesis(&genesis);
        Chain { genesis, state, ca, hospitals, nonces: Default::default(), time_ms: T0 }
    }

    fn chain_id(&self) -> ChainId {
        self.genesis.chain_id().clone()
    }

    /// A transaction from `signers[0]` with its next nonce, signed by all `signers`.
    fn tx(&mut self, signers: &[&SigningKey], payload: Payload) -> Transaction {
        let sender = signers[0].public();
        let n = self.nonces.entry(sender).or_insert(0);
        *n += 1;
        let body = TxBody { sender, nonce: *n, expiry_height: self.state.height() + 10, payload };
        body.sign(&self.chain_id(), signers)
    }

    /// Commits a block of `txs` one second after the last and returns the outcomes.
    fn block(&mut self, txs: Vec<Transaction>) -> Vec<Outcome> {
        self.time_ms += 1000;
        let block = make_block(&self.state, self.time_ms, txs);
        for tx in &block.txs {
            verify_signatures(tx, &self.chain_id()).unwrap();
        }
        let receipts = self.state.apply_block(&block);
        assert_eq!(receipts.len(), block.txs.len());
        for (r, tx) in receipts.iter().zip(&block.txs) {
            assert_eq!(r.tx, tx.id());
        }
        receipts.into_iter().map(|r| r.outcome).collect()
    }

    /// Commits one transaction and returns its outcome.
    fn one(&mut self, signers: &[&SigningKey], payload: Payload) -> Outcome {
        let tx = self.tx(signers, payload);
        self.block(vec![tx]).remove(0)
    }

    fn enroll(&mut self, by: &SigningKey, who: &SigningKey, role: Role) {
        let out = self.one(&[by], Payload::Enroll(Enroll { key: who.public(), role, name: format!("{role:?}") }));
        assert_eq!(out, Outcome::Applied);
    }
}

fn make_block(state: &State, timestamp_ms: u64, txs: Vec<Transaction>) -> Block {
    let mut block = Block {
        header: BlockHeader {
            chain_id: state.chain_id().clone(),
            height: state.height() + 1,
            view: 0,
            prev_hash: state.head(),
            timestamp_ms,
            tx_root: Digest::ZERO,
            tx_count: txs.len() as u32,
            proposer: 0,
        },
        txs,
    };
    block.header.tx_root = block.compute_tx_root();
    block
}

fn rejected(out: Outcome) -> TxError {
    match out {
        Outcome::Rejected(e) => e,
        Outcome::Applied => panic!("expected a rejection, the transaction was applied"),
    }
}

fn anchor(id: u8, doctor: &SigningKey, patient: &SigningKey, hospital: &SigningKey, data_type: &str) -> AnchorRecord {
    AnchorRecord {
        record_id: Digest([id; 32]),
        owner: patient.public(),
        author: doctor.public(),
        hospital: hospital.public(),
        data_type: data_type.into(),
        created_at_ms: T0 + u64::from(id) * 1000,
        ciphertext_digest: Digest([0xcc; 32]),
        ciphertext_len: 1234,
        blob_locator: format!("blobs/{id}"),
        encrypted_data_key: vec![],
        index_labels: vec![[7; 16]; 4],
        epoch: 1,
    }
}

/// A chain with hospital 0's doctor (10) and patient (20), and a second doctor (11) at hospital 1.
fn populated() -> (Chain, SigningKey, SigningKey, SigningKey) {
    let mut c = Chain::new();
    let (h0, h1) = (c.hospitals[0].clone(), c.hospitals[1].clone());
    let (doctor, patient, doctor2) = (key(10), key(20), key(11));
    c.enroll(&h0, &doctor, Role::Doctor);
    c.enroll(&h0, &patient, Role::Patient);
    c.enroll(&h1, &doctor2, Role::Doctor);
    (c, doctor, patient, doctor2)
}

#[test]
fn genesis_state_enrols_founders_and_not_the_ca() {
    let c = Chain::new();
    let s = &c.state;
    assert_eq!(s.height(), 0);
    assert_eq!(s.head(), c.genesis.hash());
    assert_eq!(s.nonce(&c.ca.public()), 0);
    assert!(s.participant(&c.ca.public()).is_none());
    for (i, h) in c.hospitals.iter().enumerate() {
        let p = s.participant(&h.public()).unwrap();
        assert_eq!(
            (p.role, p.name.as_str(), p.enrolled_by, p.height),
            (Role::Hospital, &*format!("node{i}"), c.ca.public(), 0)
        );
    }
    assert_eq!(s.participant(&key(100).public()).unwrap().role, Role::Auditor);
}

#[test]
fn record_sharing_lifecycle_and_audit_trail() {
    let (mut c, doctor, patient, doctor2) = populated();
    let h0 = c.hospitals[0].clone();
    let rec = anchor(1, &doctor, &patient, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(rec.clone())), Outcome::Applied);
    let entry = c.state.record(&rec.record_id).unwrap();
    assert_eq!((entry.anchor.clone(), entry.height), (rec.clone(), c.state.height()));
    assert_eq!(c.state.records_of(&patient.public()).len(), 1);

    // The second doctor may not read yet.
    let read = Payload::ReadRequest(ReadRequest { record: rec.record_id, grant: None, reader_key: reader_key() });
    assert!(
        matches!(rejected(c.one(&[&doctor2], read.clone())), TxError::Malformed { field, .. } if field == "payload.ReadRequest.grant")
    );

    // Grant, read, revoke, read again.
    let grant = Grant {
        grantee: doctor2.public(),
        scope: GrantScope::Records(vec![rec.record_id]),
        purpose: "second opinion".into(),
        expires_at_ms: T0 + 1_000_000,
    };
    let grant_tx = c.tx(&[&patient], Payload::Grant(grant.clone()));
    let grant_id = grant_tx.id();
    assert_eq!(c.block(vec![grant_tx]), vec![Outcome::Applied]);
    let g = c.state.grant(&grant_id).unwrap();
    assert_eq!((g.owner, g.grant.clone(), g.revoked_at), (patient.public(), grant, None));

    let read_granted =
        Payload::ReadRequest(ReadRequest { record: rec.record_id, grant: Some(grant_id), reader_key: reader_key() });
    assert_eq!(c.one(&[&doctor2], read_granted.clone()), Outcome::Applied);
    // The owner reads without a grant.
    assert_eq!(c.one(&[&patient], read.clone()), Outcome::Applied);
    // Someone else may not use the grant.
    assert!(matches!(rejected(c.one(&[&doctor], read_granted.clone())), TxError::Conflict(_)));

    assert_eq!(c.one(&[&patient], Payload::Revoke(Revoke { grant: grant_id })), Outcome::Applied);
    let revoked_at = c.state.height();
    assert_eq!(c.state.grant(&grant_id).unwrap().revoked_at, Some(revoked_at));
    assert!(matches!(rejected(c.one(&[&doctor2], read_granted)), TxError::Conflict(m) if m.contains("revoked")));
    assert!(matches!(
        rejected(c.one(&[&patient], Payload::Revoke(Revoke { grant: grant_id }))),
        TxError::Conflict(m) if m.contains("already revoked")
    ));

    let trail = c.state.audit_trail(&patient.public());
    let actions: Vec<(&AuditAction, PublicKey)> = trail.iter().map(|e| (&e.action, e.actor)).collect();
    assert_eq!(
        actions,
        vec![
            (&AuditAction::Anchored { record: rec.record_id }, doctor.public()),
            (&AuditAction::Granted { grant: grant_id, grantee: doctor2.public() }, patient.public()),
            (&AuditAction::Read { record: rec.record_id, grant: Some(grant_id) }, doctor2.public()),
            (&AuditAction::Read { record: rec.record_id, grant: None }, patient.public()),
            (&AuditAction::Revoked { grant: grant_id }, patient.public()),
        ]
    );
    assert!(trail.windows(2).all(|w| w[0].height < w[1].height && w[0].timestamp_ms < w[1].timestamp_ms));
    assert_eq!(c.state.reads().len(), 2);
}

#[test]
fn data_type_grants_cover_by_type_and_half_open_time_range() {
    let (mut c, doctor, patient, doctor2) = populated();
    let h0 = c.hospitals[0].clone();
    // Records 1..=4 are created at T0 + id seconds.
    for (id, ty) in [(1, "Condition"), (2, "Condition"), (3, "Observation"), (4, "Condition")] {
        let a = anchor(id, &doctor, &patient, &h0, ty);
        assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)), Outcome::Applied);
    }
    let grant = Grant {
        grantee: doctor2.public(),
        scope: GrantScope::DataTypes { data_types: vec!["Condition".into()], from_ms: T0 + 2000, to_ms: T0 + 4000 },
        purpose: String::new(),
        expires_at_ms: T0 + 1_000_000,
    };
    let gtx = c.tx(&[&patient], Payload::Grant(grant));
    let gid = gtx.id();
    assert_eq!(c.block(vec![gtx]), vec![Outcome::Applied]);
    let read = |id: u8| {
        Payload::ReadRequest(ReadRequest { record: Digest([id; 32]), grant: Some(gid), reader_key: reader_key() })
    };
    assert!(matches!(rejected(c.one(&[&doctor2], read(1))), TxError::Conflict(_)), "before from_ms");
    assert_eq!(c.one(&[&doctor2], read(2)), Outcome::Applied, "at from_ms");
    assert!(matches!(rejected(c.one(&[&doctor2], read(3))), TxError::Conflict(_)), "other data type");
    assert!(matches!(rejected(c.one(&[&doctor2], read(4))), TxError::Conflict(_)), "at to_ms (exclusive)");

    // A data-type grant never covers another patient's record.
    let patient2 = key(21);
    c.enroll(&h0, &patient2, Role::Patient);
    let mut other = anchor(9, &doctor, &patient2, &h0, "Condition");
    other.created_at_ms = T0 + 2500;
    assert_eq!(c.one(&[&doctor, &patient2], Payload::AnchorRecord(other)), Outcome::Applied);
    assert!(matches!(rejected(c.one(&[&doctor2], read(9))), TxError::Conflict(_)));
}

#[test]
fn grants_expire_at_the_block_timestamp() {
    let (mut c, doctor, patient, doctor2) = populated();
    let h0 = c.hospitals[0].clone();
    let a = anchor(1, &doctor, &patient, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)), Outcome::Applied);
    let mk = |expires_at_ms| Grant {
        grantee: doctor2.public(),
        scope: GrantScope::Records(vec![Digest([1; 32])]),
        purpose: "x".into(),
        expires_at_ms,
    };
    // Already past at the next block (which is 1 s later).
    let past = c.time_ms + 1000;
    assert!(
        matches!(rejected(c.one(&[&patient], Payload::Grant(mk(past)))), TxError::Malformed { field, .. } if field == "payload.Grant.expires_at_ms")
    );
    let gtx = c.tx(&[&patient], Payload::Grant(mk(c.time_ms + 2000)));
    let gid = gtx.id();
    assert_eq!(c.block(vec![gtx]), vec![Outcome::Applied]);
    // The next block's timestamp equals expires_at_ms: expired.
    let read =
        Payload::ReadRequest(ReadRequest { record: Digest([1; 32]), grant: Some(gid), reader_key: reader_key() });
    assert!(matches!(rejected(c.one(&[&doctor2], read)), TxError::Conflict(m) if m.contains("expired")));
}

#[test]
fn grant_rules() {
    let (mut c, doctor, patient, doctor2) = populated();
    let h0 = c.hospitals[0].clone();
    let patient2 = key(21);
    c.enroll(&h0, &patient2, Role::Patient);
    let a = anchor(1, &doctor, &patient2, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &patient2], Payload::AnchorRecord(a)), Outcome::Applied);
    let g = |grantee: PublicKey, records: Vec<Digest>| {
        Payload::Grant(Grant {
            grantee,
            scope: GrantScope::Records(records),
            purpose: "p".into(),
            expires_at_ms: u64::MAX,
        })
    };
    // Not the owner of record 1.
    assert!(matches!(rejected(c.one(&[&patient], g(doctor2.public(), vec![Digest([1; 32])]))), TxError::Conflict(_)));
    // A record that does not exist.
    assert!(matches!(
        rejected(c.one(&[&patient], g(doctor2.public(), vec![Digest([5; 32])]))),
        TxError::NotFound { .. }
    ));
    // A grantee that is not enrolled.
    let stranger = key(99).public();
    assert_eq!(
        rejected(c.one(&[&patient2], g(stranger, vec![Digest([1; 32])]))),
        TxError::UnknownParticipant { key: stranger }
    );
    // Only patients grant.
    assert!(matches!(
        rejected(c.one(&[&doctor], g(doctor2.public(), vec![Digest([1; 32])]))),
        TxError::RoleNotAllowed { .. }
    ));
    // Only the owner revokes.
    let gtx = c.tx(&[&patient2], g(doctor2.public(), vec![Digest([1; 32])]));
    let gid = gtx.id();
    assert_eq!(c.block(vec![gtx]), vec![Outcome::Applied]);
    assert!(matches!(
        rejected(c.one(&[&patient], Payload::Revoke(Revoke { grant: gid }))),
        TxError::RoleNotAllowed { .. }
    ));
    assert!(matches!(
        rejected(c.one(&[&patient], Payload::Revoke(Revoke { grant: TxId::default() }))),
        TxError::NotFound { .. }
    ));
}

#[test]
fn enrolment_rules() {
    let (mut c, doctor, patient, _) = populated();
    let (ca, h0) = (c.ca.clone(), c.hospitals[0].clone());
    let e = |k: &SigningKey, role| Payload::Enroll(Enroll { key: k.public(), role, name: "n".into() });
    let fresh = key(50);
    // The CA enrols hospitals, auditors and researchers, not doctors or patients.
    assert!(matches!(rejected(c.one(&[&ca], e(&fresh, Role::Doctor))), TxError::RoleNotAllowed { role: None, .. }));
    // Hospitals enrol doctors and patients, not hospitals or researchers.
    assert!(matches!(rejected(c.one(&[&h0], e(&fresh, Role::Hospital))), TxError::RoleNotAllowed { .. }));
    assert!(matches!(rejected(c.one(&[&h0], e(&fresh, Role::Researcher))), TxError::RoleNotAllowed { .. }));
    // Doctors and patients enrol nobody.
    assert!(matches!(rejected(c.one(&[&doctor], e(&fresh, Role::Patient))), TxError::RoleNotAllowed { .. }));
    assert!(matches!(rejected(c.one(&[&patient], e(&fresh, Role::Patient))), TxError::RoleNotAllowed { .. }));
    // Once only; never the CA.
    assert!(matches!(rejected(c.one(&[&h0], e(&patient, Role::Patient))), TxError::Conflict(_)));
    assert!(matches!(rejected(c.one(&[&ca], e(&ca, Role::Hospital))), TxError::Conflict(_)));
    assert!(matches!(rejected(c.one(&[&ca], e(&h0, Role::Hospital))), TxError::Conflict(_)));
    // A new hospital enrolled by the CA can enrol in turn.
    c.enroll(&ca, &fresh, Role::Hospital);
    let p = c.state.participant(&fresh.public()).unwrap();
    assert_eq!((p.role, p.enrolled_by, p.height), (Role::Hospital, ca.public(), c.state.height()));
    c.enroll(&fresh, &key(51), Role::Patient);
    assert_eq!(c.state.participant(&key(51).public()).unwrap().enrolled_by, fresh.public());
    // The CA may do nothing but enrol.
    let sa = Payload::SearchAuthorization(SearchAuthorization {
        researcher: key(52).public(),
        purpose: String::new(),
        expires_at_ms: u64::MAX,
    });
    assert!(matches!(rejected(c.one(&[&ca], sa)), TxError::RoleNotAllowed { role: None, .. }));
    // An unknown sender is refused.
    let stranger = key(98);
    assert_eq!(
        rejected(c.one(&[&stranger], e(&key(97), Role::Patient))),
        TxError::UnknownParticipant { key: stranger.public() }
    );
}

#[test]
fn anchor_rules() {
    let (mut c, doctor, patient, doctor2) = populated();
    let (h0, h1) = (c.hospitals[0].clone(), c.hospitals[1].clone());
    // Wrong hospital: doctor was enrolled by hospital 0.
    let a = anchor(1, &doctor, &patient, &h1, "Condition");
    assert!(
        matches!(rejected(c.one(&[&doctor, &patient], Payload::AnchorRecord(a))), TxError::Malformed { field, .. } if field == "payload.AnchorRecord.hospital")
    );
    // A doctor of another hospital may write for any patient, naming their own hospital.
    let a = anchor(2, &doctor2, &patient, &h1, "Condition");
    assert_eq!(c.one(&[&doctor2, &patient], Payload::AnchorRecord(a)), Outcome::Applied);
    // The owner must be a patient.
    let a = anchor(3, &doctor, &doctor2, &h0, "Condition");
    assert!(
        matches!(rejected(c.one(&[&doctor, &doctor2], Payload::AnchorRecord(a))), TxError::Malformed { field, .. } if field == "payload.AnchorRecord.owner")
    );
    // Only doctors write records.
    let a = anchor(4, &h0, &patient, &h0, "Condition");
    assert!(matches!(rejected(c.one(&[&h0, &patient], Payload::AnchorRecord(a))), TxError::RoleNotAllowed { .. }));
    // A record id is used once.
    let a = anchor(2, &doctor, &patient, &h0, "Condition");
    assert!(matches!(rejected(c.one(&[&doctor, &patient], Payload::AnchorRecord(a))), TxError::Conflict(_)));
}

#[test]
fn an_anchor_s_encrypted_key_must_prove_it_was_made_for_that_record() {
    use rand::SeedableRng;
    let (mut c, doctor, patient, _) = populated();
    let h0 = c.hospitals[0].clone();
    let chain = c.genesis.chain_id().clone();
    // Any well-formed key set will do: the proof binds the ciphertext to record and chain.
    let y = engine::threshold::DhSecret::from_wide(&[3; 64]).public();
    let set = engine::threshold::PublicKeySet { threshold: 1, collective: y, shares: vec![y] };
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let data_key = engine::envelope::DataKey::from_bytes([5; engine::envelope::DATA_KEY_LEN]);
    let encrypt = |record: u8, rng: &mut rand_chacha::ChaCha20Rng| {
        engine::threshold::encrypt_key(&set, &chain, &Digest([record; 32]), &data_key, rng).unwrap().to_bytes()
    };
    let key_field = |e: TxError| matches!(&e, TxError::Malformed { field, .. } if field == "payload.AnchorRecord.encrypted_data_key");
    // Bytes that are no encrypted key.
    let mut a = anchor(1, &doctor, &patient, &h0, "Condition");
    a.encrypted_data_key = vec![1, 2, 3];
    assert!(key_field(rejected(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)))));
    // A key encrypted for record 9, copied into record 1's anchor.
    let mut a = anchor(1, &doctor, &patient, &h0, "Condition");
    a.encrypted_data_key = encrypt(9, &mut rng);
    let e = rejected(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)));
    assert!(key_field(e.clone()) && e.to_string().contains("not made for this record"), "{e}");
    // One tampered byte of a key made for record 1.
    let mut a = anchor(1, &doctor, &patient, &h0, "Condition");
    a.encrypted_data_key = encrypt(1, &mut rng);
    a.encrypted_data_key[40] ^= 1;
    assert!(key_field(rejected(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)))));
    // The key made for record 1; and an anchor with no key at all (not readable through the
    // validators, but not malformed).
    let mut a = anchor(1, &doctor, &patient, &h0, "Condition");
    a.encrypted_data_key = encrypt(1, &mut rng);
    assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)), Outcome::Applied);
    let a = anchor(2, &doctor, &patient, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(a)), Outcome::Applied);
}

#[test]
fn search_authorization_and_log_rules() {
    let (mut c, doctor, _, _) = populated();
    let (ca, h0, h1) = (c.ca.clone(), c.hospitals[0].clone(), c.hospitals[1].clone());
    let researcher = key(60);
    c.enroll(&ca, &researcher, Role::Researcher);
    let sa = |r: &SigningKey, expires_at_ms| {
        Payload::SearchAuthorization(SearchAuthorization {
            researcher: r.public(),
            purpose: "study".into(),
            expires_at_ms,
        })
    };
    assert!(matches!(rejected(c.one(&[&doctor], sa(&researcher, u64::MAX))), TxError::RoleNotAllowed { .. }));
    assert!(matches!(rejected(c.one(&[&h0], sa(&doctor, u64::MAX))), TxError::Malformed { .. }));
    let expires = c.time_ms + 3000;
    let atx = c.tx(&[&h0], sa(&researcher, expires));
    let aid = atx.id();
    assert_eq!(c.block(vec![atx]), vec![Outcome::Applied]);
    assert_eq!(c.state.search_authorization(&aid).unwrap().hospital, h0.public());

    let log = |hospital: &SigningKey, authorization| {
        Payload::SearchLog(SearchLog {
            hospital: hospital.public(),
            authorization,
            query_digest: Digest([3; 32]),
            term_count: 2,
        })
    };
    assert!(
        matches!(rejected(c.one(&[&researcher], log(&h1, aid))), TxError::Malformed { field, .. } if field == "payload.SearchLog.hospital")
    );
    assert!(matches!(rejected(c.one(&[&researcher], log(&h0, TxId::default()))), TxError::NotFound { .. }));
    assert!(matches!(rejected(c.one(&[&doctor], log(&h0, aid))), TxError::RoleNotAllowed { .. }));
    // Three blocks have passed since: the authorization expired exactly now.
    assert!(matches!(rejected(c.one(&[&researcher], log(&h0, aid))), TxError::Conflict(m) if m.contains("expired")));
    assert!(c.state.search_logs().is_empty());

    let atx = c.tx(&[&h0], sa(&researcher, u64::MAX));
    let aid = atx.id();
    assert_eq!(c.block(vec![atx]), vec![Outcome::Applied]);
    assert_eq!(c.one(&[&researcher], log(&h0, aid)), Outcome::Applied);
    let logs = c.state.search_logs();
    assert_eq!((logs.len(), logs[0].researcher, logs[0].height), (1, researcher.public(), c.state.height()));
    assert_eq!(c.state.search_authorizations().count(), 2, "the expired one is still listed");
}

#[test]
fn nonces_duplicates_and_expiry() {
    let mut c = populated().0;
    let h0 = c.hospitals[0].clone();
    let chain_id = c.chain_id();
    assert_eq!(c.state.nonce(&h0.public()), 2);
    let e = |n: u8| Payload::Enroll(Enroll { key: key(n).public(), role: Role::Patient, name: "p".into() });
    let mk = |nonce, expiry_height, payload| {
        TxBody { sender: h0.public(), nonce, expiry_height, payload }.sign(&chain_id, &[&h0])
    };

    // A nonce that does not advance.
    let stale = mk(2, 100, e(70));
    assert_eq!(rejected(c.block(vec![stale]).remove(0)), TxError::StaleNonce { sender: h0.public(), last: 2, got: 2 });
    // Gaps are allowed; the same transaction twice in one block is a duplicate; a rejected
    // transaction does not advance the nonce.
    let t = mk(5, 100, e(71));
    let dup = t.clone();
    let behind = mk(4, 100, e(72));
    let out = c.block(vec![t.clone(), dup, behind]);
    assert_eq!(out[0], Outcome::Applied);
    assert_eq!(rejected(out[1].clone()), TxError::Duplicate(t.id()));
    assert!(matches!(rejected(out[2].clone()), TxError::StaleNonce { last: 5, .. }));
    assert_eq!(c.state.nonce(&h0.public()), 5);
    assert!(c.state.is_committed(&t.id()));
    let rejected_bad = mk(9, 100, e(20));
    assert!(matches!(rejected(c.block(vec![rejected_bad]).remove(0)), TxError::Conflict(_)));
    assert_eq!(c.state.nonce(&h0.public()), 5);

    // Expiry height: valid at exactly the expiry height, not after.
    let h = c.state.height() + 1;
    assert_eq!(c.block(vec![mk(6, h, e(73))]), vec![Outcome::Applied]);
    let h = c.state.height() + 1;
    assert_eq!(
        rejected(c.block(vec![mk(7, h - 1, e(74))]).remove(0)),
        TxError::Expired { expiry_height: h - 1, height: h }
    );
    // check() sees the same.
    assert_eq!(
        c.state.check(&mk(8, h, e(75)), h + 1, c.time_ms),
        Err(TxError::Expired { expiry_height: h, height: h + 1 })
    );
    assert_eq!(c.state.check(&mk(8, h, e(75)), h, c.time_ms), Ok(()));
}

#[test]
fn stateless_checks_name_the_field() {
    let (c, doctor, patient, _) = populated();
    let h0 = c.hospitals[0].clone();
    let chain_id = c.chain_id();
    let sign = |payload: Payload, keys: &[&SigningKey]| {
        TxBody { sender: keys[0].public(), nonce: 1, expiry_height: 10, payload }.sign(&chain_id, keys)
    };
    let field = |tx: &Transaction| check_stateless(tx).unwrap_err().field().unwrap();

    let mut a = anchor(1, &doctor, &patient, &h0, "Condition");
    a.blob_locator = "x".repeat(LOCATOR_BYTES_MAX + 1);
    let tx = sign(Payload::AnchorRecord(a.clone()), &[&doctor, &patient]);
    assert_eq!(
        check_stateless(&tx),
        Err(TxError::Oversize {
            field: "payload.AnchorRecord.blob_locator".into(),
            size: LOCATOR_BYTES_MAX + 1,
            max: LOCATOR_BYTES_MAX
        })
    );
    a.blob_locator = "ok".into();
    a.ciphertext_len = 0;
    assert_eq!(
        field(&sign(Payload::AnchorRecord(a.clone()), &[&doctor, &patient])),
        "payload.AnchorRecord.ciphertext_len"
    );
    a.ciphertext_len = 1;
    a.data_type = String::new();
    assert_eq!(field(&sign(Payload::AnchorRecord(a.clone()), &[&doctor, &patient])), "payload.AnchorRecord.data_type");
    a.data_type = "Condition".into();
    a.index_labels = vec![[0; 16]; 257];
    assert_eq!(
        field(&sign(Payload::AnchorRecord(a.clone()), &[&doctor, &patient])),
        "payload.AnchorRecord.index_labels"
    );
    a.index_labels = vec![];
    a.encrypted_data_key = vec![0; 1025];
    assert_eq!(
        field(&sign(Payload::AnchorRecord(a.clone()), &[&doctor, &patient])),
        "payload.AnchorRecord.encrypted_data_key"
    );
    a.encrypted_data_key = vec![];
    // The author must be the sender.
    assert_eq!(field(&sign(Payload::AnchorRecord(a.clone()), &[&h0, &patient])), "payload.AnchorRecord.author");
    // Missing the owner's co-signature.
    let tx = sign(Payload::AnchorRecord(a.clone()), &[&doctor]);
    assert_eq!(check_stateless(&tx), Err(TxError::WrongSignatureCount { expected: 2, got: 1 }));
    assert_eq!(verify_signatures(&tx, &chain_id), Err(TxError::WrongSignatureCount { expected: 2, got: 1 }));
    // Nonce 0.
    let mut tx = sign(Payload::AnchorRecord(a.clone()), &[&doctor, &patient]);
    check_stateless(&tx).unwrap();
    tx.body.nonce = 0;
    assert_eq!(field(&tx), "body.nonce");

    let grant = |scope, purpose: usize| {
        sign(
            Payload::Grant(Grant { grantee: doctor.public(), scope, purpose: "p".repeat(purpose), expires_at_ms: 1 }),
            &[&patient],
        )
    };
    assert_eq!(field(&grant(GrantScope::Records(vec![]), 1)), "payload.Grant.scope.Records");
    assert_eq!(field(&grant(GrantScope::Records(vec![Digest([1; 32]); 2]), 1)), "payload.Grant.scope.Records");
    assert_eq!(field(&grant(GrantScope::Records(vec![Digest([1; 32])]), 257)), "payload.Grant.purpose");
    let dt = |types: Vec<&str>, from_ms, to_ms| GrantScope::DataTypes {
        data_types: types.into_iter().map(String::from).collect(),
        from_ms,
        to_ms,
    };
    assert_eq!(field(&grant(dt(vec!["A"], 5, 5), 1)), "payload.Grant.scope.DataTypes.from_ms");
    assert_eq!(field(&grant(dt(vec![], 1, 5), 1)), "payload.Grant.scope.DataTypes.data_types");
    assert_eq!(field(&grant(dt(vec!["A"; 33], 1, 5), 1)), "payload.Grant.scope.DataTypes.data_types");
    let long = "t".repeat(65);
    assert_eq!(field(&grant(dt(vec!["A", &long], 1, 5), 1)), "payload.Grant.scope.DataTypes.data_types[1]");
    check_stateless(&grant(dt(vec!["A", "B"], 1, 5), 256)).unwrap();

    let enroll =
        |name: String| sign(Payload::Enroll(Enroll { key: doctor.public(), role: Role::Doctor, name }), &[&h0]);
    assert_eq!(field(&enroll(String::new())), "payload.Enroll.name");
    assert_eq!(field(&enroll("n".repeat(129))), "payload.Enroll.name");
    let sa = sign(
        Payload::SearchAuthorization(SearchAuthorization {
            researcher: doctor.public(),
            purpose: "p".repeat(257),
            expires_at_ms: 1,
        }),
        &[&h0],
    );
    assert_eq!(field(&sa), "payload.SearchAuthorization.purpose");

    // The whole transaction over TX_BYTES_MAX (enough labels and key, each within its own limit).
    a.index_labels = vec![[0; 16]; 256];
    a.encrypted_data_key = vec![0; 1024];
    a.blob_locator = "l".repeat(512);
    let mut big = sign(Payload::AnchorRecord(a), &[&doctor, &patient]);
    check_stateless(&big).unwrap();
    if let Payload::AnchorRecord(a) = &mut big.body.payload {
        a.index_labels = vec![[0; 16]; 256];
    }
    // 200 signatures push it over the size limit, which is checked before their count.
    big.signatures = vec![big.signatures[0]; 200];
    assert!(matches!(check_stateless(&big), Err(TxError::Oversize { field, .. }) if field == "transaction"));
    // The state refuses what check_stateless refuses.
    assert!(matches!(c.state.check(&big, 1, 0), Err(TxError::Oversize { .. })));
}

#[test]
fn signature_checks_match_verify_signatures() {
    let (c, doctor, patient, _) = populated();
    let h0 = c.hospitals[0].clone();
    let chain_id = c.chain_id();
    let a = anchor(1, &doctor, &patient, &h0, "Condition");
    let body = TxBody { sender: doctor.public(), nonce: 1, expiry_height: 10, payload: Payload::AnchorRecord(a) };
    let tx = body.clone().sign(&chain_id, &[&doctor, &patient]);
    let checks = signature_checks(&tx, &chain_id);
    assert_eq!(checks.len(), 2);
    assert_eq!((checks[0].key, checks[1].key), (doctor.public(), patient.public()));
    assert!(checks.iter().all(|k| engine::crypto::verify_raw(&k.key, &k.sig, &k.msg)));
    verify_signatures(&tx, &chain_id).unwrap();

    // Owner's signature by the wrong key: index 1 is named.
    let forged = body.clone().sign(&chain_id, &[&doctor, &doctor]);
    assert_eq!(
        verify_signatures(&forged, &chain_id),
        Err(TxError::BadSignature { index: 1, signer: patient.public() })
    );
    let checks = signature_checks(&forged, &chain_id);
    assert!(!engine::crypto::verify_raw(&checks[1].key, &checks[1].sig, &checks[1].msg));
    // Signed for another chain.
    let other = ChainId::new("other-chain").unwrap();
    let wrong_chain = body.sign(&other, &[&doctor, &patient]);
    assert_eq!(
        verify_signatures(&wrong_chain, &chain_id),
        Err(TxError::BadSignature { index: 0, signer: doctor.public() })
    );
}

#[test]
fn applying_the_same_blocks_gives_equal_states_and_receipts() {
    let (mut c, doctor, patient, doctor2) = populated();
    let h0 = c.hospitals[0].clone();
    let mut blocks = Vec::new();
    let mut all_receipts = Vec::new();
    for i in 0..5u8 {
        let a = anchor(i + 1, &doctor, &patient, &h0, "Condition");
        let t1 = c.tx(&[&doctor, &patient], Payload::AnchorRecord(a));
        let g = Grant {
            grantee: doctor2.public(),
            scope: GrantScope::Records(vec![Digest([i + 1; 32])]),
            purpose: "x".into(),
            expires_at_ms: u64::MAX,
        };
        let t2 = c.tx(&[&patient], Payload::Grant(g));
        c.time_ms += 1000;
        let block = make_block(&c.state, c.time_ms, vec![t1, t2]);
        all_receipts.push(c.state.apply_block(&block));
        blocks.push(block);
    }
    // Replay from a fresh genesis state, after the enrolment blocks that `populated` made.
    let mut c2 = populated().0;
    for (b, r) in blocks.iter().zip(&all_receipts) {
        assert_eq!(&c2.state.apply_block(b), r);
        assert!(r.iter().all(|r| r.outcome == Outcome::Applied));
    }
    assert_eq!(c2.state, c.state);
    assert_eq!(c.state.records_of(&patient.public()).len(), 5);
    assert_ne!(State::from_genesis(&c.genesis), c.state);
}

#[test]
#[should_panic(expected = "does not extend")]
fn apply_block_refuses_a_block_that_does_not_extend_the_head() {
    let mut c = Chain::new();
    let mut block = make_block(&c.state, T0, vec![]);
    block.header.prev_hash = Digest([1; 32]);
    c.state.apply_block(&block);
}

/// Random transactions over a small universe of keys, records and grants, mostly from senders
/// with the right role, so that every rule fires both ways. Each goes in its own block, whose
/// outcome must be what `State::check` said on the state before it; a rejected one must change
/// nothing (compared with an empty block under the same header).
#[test]
fn random_transactions_check_agrees_with_apply_and_rejections_change_nothing() {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    let roles = [Role::Hospital, Role::Auditor, Role::Researcher, Role::Doctor, Role::Patient];
    let doctors = [10u8, 11, 12];
    let patients = [14u8, 15, 16];
    let researchers = [18u8, 19];
    let mut counts: BTreeMap<(&str, bool), u32> = BTreeMap::new();
    for seed in 0..6u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut c = Chain::new();
        let (ca, h1, h2) = (c.ca.clone(), c.hospitals[0].clone(), c.hospitals[1].clone());
        for (by, k, role) in [
            (&h1, 10, Role::Doctor),
            (&h1, 11, Role::Doctor),
            (&h2, 12, Role::Doctor),
            (&h1, 14, Role::Patient),
            (&h1, 15, Role::Patient),
            (&h2, 16, Role::Patient),
            (&ca, 18, Role::Researcher),
            (&ca, 19, Role::Researcher),
        ] {
            c.enroll(by, &key(k), role);
        }
        let mut grant_ids = vec![TxId::default()];
        let mut auth_ids = vec![TxId::default()];
        for _ in 0..200 {
            let any = |rng: &mut rand::rngs::StdRng| -> u8 {
                *[1u8, 2, 3, 10, 11, 12, 14, 15, 16, 18, 19, 30, 200].get(rng.gen_range(0..13)).unwrap_or(&1)
            };
            let one_of = |rng: &mut rand::rngs::StdRng, set: &[u8]| -> u8 {
                if rng.gen_bool(0.15) {
                    any(rng)
                } else {
                    set[rng.gen_range(0..set.len())]
                }
            };
            let record = Digest([rng.gen_range(1..=6u8); 32]);
            let (sender, other, payload) = match rng.gen_range(0..7) {
                0 => {
                    let sender = one_of(&mut rng, &[200, 1, 2]);
                    let other = rng.gen_range(20..=40);
                    let role = roles[rng.gen_range(0..roles.len())];
                    (sender, other, Payload::Enroll(Enroll { key: key(other).public(), role, name: "n".into() }))
                }
                1 => {
                    let (doctor, owner) = (one_of(&mut rng, &doctors), one_of(&mut rng, &patients));
                    let hospital = if doctor == 12 { 2 } else { one_of(&mut rng, &[1]) };
                    let mut a = anchor(record.0[0], &key(doctor), &key(owner), &key(hospital), "Condition");
                    a.created_at_ms = T0 + rng.gen_range(0..4) * 1000;
                    (doctor, owner, Payload::AnchorRecord(a))
                }
                2 => {
                    let (owner, grantee) = (one_of(&mut rng, &patients), one_of(&mut rng, &[10, 11, 12, 18, 19]));
                    let scope = if rng.gen() {
                        GrantScope::Records(vec![record])
                    } else {
                        GrantScope::DataTypes { data_types: vec!["Condition".into()], from_ms: T0, to_ms: T0 + 2000 }
                    };
                    let expires_at_ms = c.time_ms + rng.gen_range(0..30_000);
                    (
                        owner,
                        grantee,
                        Payload::Grant(Grant {
                            grantee: key(grantee).public(),
                            scope,
                            purpose: String::new(),
                            expires_at_ms,
                        }),
                    )
                }
                3 => {
                    let grant = grant_ids[rng.gen_range(0..grant_ids.len())];
                    let owner = c
                        .state
                        .grant(&grant)
                        .map_or(14, |g| patients.iter().copied().find(|p| key(*p).public() == g.owner).unwrap_or(14));
                    let sender = if rng.gen_bool(0.8) { owner } else { any(&mut rng) };
                    (sender, sender, Payload::Revoke(Revoke { grant }))
                }
                4 => {
                    let all = [10u8, 11, 12, 14, 15, 16, 18, 19];
                    let who = |k: &PublicKey| all.iter().copied().find(|a| key(*a).public() == *k).unwrap_or(30);
                    let grant = grant_ids[rng.gen_range(0..grant_ids.len())];
                    let (reader, record, grant) = match (rng.gen_range(0..3), c.state.grant(&grant)) {
                        // The owner reads one of their records.
                        (0, _) => {
                            let owner = one_of(&mut rng, &patients);
                            let mine = c.state.records_of(&key(owner).public());
                            let record = mine.first().map_or(record, |r| r.anchor.record_id);
                            (owner, record, None)
                        }
                        // The grantee reads a record the grant may cover.
                        (1, Some(g)) => {
                            let record = match &g.grant.scope {
                                GrantScope::Records(ids) => ids[0],
                                GrantScope::DataTypes { .. } => {
                                    let theirs = c.state.records_of(&g.owner);
                                    theirs
                                        .get(rng.gen_range(0..theirs.len().max(1)))
                                        .map_or(record, |r| r.anchor.record_id)
                                }
                            };
                            (who(&g.grant.grantee), record, Some(grant))
                        }
                        _ => (one_of(&mut rng, &all), record, if rng.gen() { None } else { Some(grant) }),
                    };
                    (reader, reader, Payload::ReadRequest(ReadRequest { record, grant, reader_key: reader_key() }))
                }
                5 => {
                    let (hospital, researcher) = (one_of(&mut rng, &[1, 2, 3]), one_of(&mut rng, &researchers));
                    let expires_at_ms = c.time_ms + rng.gen_range(0..30_000);
                    let p = SearchAuthorization {
                        researcher: key(researcher).public(),
                        purpose: String::new(),
                        expires_at_ms,
                    };
                    (hospital, researcher, Payload::SearchAuthorization(p))
                }
                _ => {
                    let authorization = auth_ids[rng.gen_range(0..auth_ids.len())];
                    let (researcher, hospital) = match c.state.search_authorization(&authorization) {
                        Some(a) if rng.gen_bool(0.8) => (
                            researchers
                                .iter()
                                .copied()
                                .find(|r| key(*r).public() == a.authorization.researcher)
                                .unwrap_or(18),
                            [1u8, 2, 3].iter().copied().find(|h| key(*h).public() == a.hospital).unwrap_or(1),
                        ),
                        _ => (one_of(&mut rng, &researchers), one_of(&mut rng, &[1, 2, 3])),
                    };
                    let log = SearchLog {
                        hospital: key(hospital).public(),
                        authorization,
                        query_digest: Digest::ZERO,
                        term_count: 1,
                    };
                    (researcher, researcher, Payload::SearchLog(log))
                }
            };
            let kind = payload.kind();
            let signers: Vec<SigningKey> = match &payload {
                Payload::AnchorRecord(a) if a.owner != key(sender).public() => vec![key(sender), key(other)],
                _ => vec![key(sender)],
            };
            if rng.gen_bool(0.03) {
                // Now and then, reuse a nonce.
                c.nonces.insert(key(sender).public(), 0);
            }
            let tx = c.tx(&signers.iter().collect::<Vec<_>>(), payload);
            let before = c.state.clone();
            c.time_ms += 1000;
            let block = make_block(&c.state, c.time_ms, vec![tx.clone()]);
            let expected = before.check(&tx, block.header.height, block.header.timestamp_ms);
            let outcome = c.state.apply_block(&block).remove(0).outcome;
            match (expected, outcome) {
                (Ok(()), Outcome::Applied) => {
                    *counts.entry((kind, true)).or_default() += 1;
                    match kind {
                        "Grant" => grant_ids.push(tx.id()),
                        "SearchAuthorization" => auth_ids.push(tx.id()),
                        _ => {}
                    }
                }
                (Err(e), Outcome::Rejected(r)) => {
                    assert_eq!(e, r);
                    *counts.entry((kind, false)).or_default() += 1;
                    let mut empty = block.clone();
                    empty.txs.clear();
                    let mut unchanged = before.clone();
                    unchanged.apply_block(&empty);
                    assert_eq!(unchanged, c.state, "a rejected {kind} changed the state: {r}");
                }
                (e, o) => panic!("check says {e:?} but apply gives {o:?} for {kind}"),
            }
            c.nonces.insert(key(sender).public(), c.state.nonce(&key(sender).public()));
        }
    }
    // Every kind both applied and rejected, several times.
    for kind in ["Enroll", "AnchorRecord", "Grant", "Revoke", "ReadRequest", "SearchAuthorization", "SearchLog"] {
        for ok in [true, false] {
            let n = counts.get(&(kind, ok)).copied().unwrap_or(0);
            assert!(n >= 5, "{kind} {} only {n} times: {counts:?}", if ok { "applied" } else { "rejected" });
        }
    }
}

#[test]
fn committed_read_requests_keep_the_reader_key_and_bad_keys_are_refused() {
    let (mut c, doctor, patient, _) = populated();
    let h0 = c.hospitals[0].clone();
    let rec = anchor(1, &doctor, &patient, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(rec.clone())), Outcome::Applied);
    let read = ReadRequest { record: rec.record_id, grant: None, reader_key: reader_key() };
    let tx = c.tx(&[&patient], Payload::ReadRequest(read.clone()));
    let id = tx.id();
    assert_eq!(c.block(vec![tx]), vec![Outcome::Applied]);
    let entry = c.state.read_request(&id).expect("the committed read is kept by its id");
    assert_eq!((entry.reader, &entry.request, entry.height), (patient.public(), &read, c.state.height()));

    // A replay of the same transaction is refused, and a refused read is not served.
    let tx = c.tx(&[&patient], Payload::ReadRequest(read.clone()));
    let again = TxBody { nonce: 1, ..tx.body.clone() }.sign(&c.chain_id(), &[&patient]);
    assert!(matches!(rejected(c.block(vec![again.clone()]).remove(0)), TxError::StaleNonce { .. }));
    assert!(c.state.read_request(&again.id()).is_none());

    for bad in [[0u8; 32], [0xff; 32]] {
        let tx = c.tx(&[&patient], Payload::ReadRequest(ReadRequest { reader_key: bad, ..read.clone() }));
        assert!(
            matches!(check_stateless(&tx), Err(TxError::Malformed { field, .. }) if field == "payload.ReadRequest.reader_key")
        );
    }
}

/// Commits a key-generation transaction (outside the sender's nonce sequence).
fn dkg_tx(c: &mut Chain, signer: &SigningKey, payload: Payload) -> Outcome {
    let body = TxBody {
        sender: signer.public(),
        nonce: engine::tx::NONCE_OUTSIDE_SEQUENCE,
        expiry_height: c.state.height() + 10,
        payload,
    };
    let tx = body.sign(&c.chain_id(), &[signer]);
    c.block(vec![tx]).remove(0)
}

/// Runs the key generation through transactions: every validator's packages ride on chain, and
/// each validator finishes from what the ledger holds.
#[test]
fn key_generation_on_chain_yields_the_set_every_validator_finishes_with() {
    use engine::dkg;
    use rand_chacha::rand_core::SeedableRng;
    let mut c = Chain::new();
    let n = c.hospitals.len() as u16;
    let t = dkg::consortium_threshold(n);
    assert_eq!(t, 3, "4 validators: f = 1, t = n - f");
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
    let chain = c.chain_id();
    let hospitals = c.hospitals.clone();
    let mut secrets = Vec::new();
    let mut transports = Vec::new();
    let mut round1 = std::collections::BTreeMap::new();
    for i in 1..=n {
        let (secret, package) = dkg::round1(i, n, t, &mut rng).unwrap();
        let transport = dkg::TransportSecret::random(&mut rng);
        round1.insert(i, package.clone());
        secrets.push(secret);
        transports.push(transport);
    }
    // Round 2 before round 1 is complete is refused; so is a non-validator, and a repeat.
    let r1 = |i: u16| DkgRound1 { package: round1[&i].clone(), transport: transports[usize::from(i) - 1].public() };
    assert_eq!(dkg_tx(&mut c, &hospitals[0], Payload::DkgRound1(r1(1))), Outcome::Applied);
    assert!(
        matches!(rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgRound1(r1(1)))), TxError::Conflict(m) if m.contains("already"))
    );
    let early = DkgRound2 { packages: vec![SealedPackage { to: 2, sealed: vec![1; 60] }] };
    assert!(
        matches!(rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgRound2(early))), TxError::Conflict(m) if m.contains("not complete"))
    );
    let doctor = key(10);
    c.enroll(&hospitals[0], &doctor, Role::Doctor);
    assert!(matches!(rejected(dkg_tx(&mut c, &doctor, Payload::DkgRound1(r1(2)))), TxError::RoleNotAllowed { .. }));
    // A package with the wrong degree is refused with its field.
    let (_, wrong_degree) = dkg::round1(2, n, 2, &mut rng).unwrap();
    let bad = DkgRound1 { package: wrong_degree, transport: transports[1].public() };
    assert!(
        matches!(rejected(dkg_tx(&mut c, &hospitals[1], Payload::DkgRound1(bad))), TxError::Malformed { field, .. } if field == "payload.DkgRound1.package")
    );
    // Validator 2 copying validator 1's package (a rogue-key attempt) is refused: the proof of
    // knowledge binds the index, and the ledger checks it, naming the sender.
    let copied = DkgRound1 { package: round1[&1].clone(), transport: transports[1].public() };
    match rejected(dkg_tx(&mut c, &hospitals[1], Payload::DkgRound1(copied))) {
        TxError::Malformed { field, reason } => {
            assert_eq!(field, "payload.DkgRound1.package");
            assert!(reason.starts_with("validator 2: its round-1 package fails verification"), "{reason}");
        }
        other => panic!("a copied round-1 package must be refused as malformed: {other:?}"),
    }
    assert_eq!(c.state.dkg().round1.len(), 1, "nothing refused reaches the ledger");
    for i in 2..=n {
        assert_eq!(dkg_tx(&mut c, &hospitals[usize::from(i) - 1], Payload::DkgRound1(r1(i))), Outcome::Applied);
    }
    assert!(c.state.dkg().key_set.is_some(), "the last round-1 package fixes the set");
    assert!(c.state.key_set().is_none(), "but it is active only after round 2");

    // Round 2: each validator reads the others' round-1 packages from the ledger.
    let mut round2_secrets = Vec::new();
    for (k, secret) in secrets.into_iter().enumerate() {
        let me = k as u16 + 1;
        let others: std::collections::BTreeMap<u16, Vec<u8>> =
            c.state.dkg().round1.iter().filter(|(i, _)| **i != me).map(|(i, r)| (*i, r.package.clone())).collect();
        let (r2secret, outgoing) = dkg::round2(secret, &others).unwrap();
        round2_secrets.push(r2secret);
        let packages: Vec<SealedPackage> = outgoing
            .iter()
            .map(|(to, p)| {
                let recipient = c.state.dkg().round1[to].transport;
                SealedPackage { to: *to, sealed: dkg::seal_package(&chain, me, *to, &recipient, p, &mut rng).unwrap() }
            })
            .collect();
        if me == 1 {
            let missing = DkgRound2 { packages: packages[1..].to_vec() };
            assert!(
                matches!(rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgRound2(missing))), TxError::Malformed { field, .. } if field == "payload.DkgRound2.packages")
            );
        }
        assert_eq!(dkg_tx(&mut c, &hospitals[k], Payload::DkgRound2(DkgRound2 { packages })), Outcome::Applied);
    }
    let set = c.state.key_set().expect("active after every round-2 package").clone();
    assert_eq!(set.threshold, t);

    // Every validator finishes from the ledger alone and gets the ledger's set.
    for (k, secret) in round2_secrets.iter().enumerate() {
        let me = k as u16 + 1;
        let others1: std::collections::BTreeMap<u16, Vec<u8>> =
            c.state.dkg().round1.iter().filter(|(i, _)| **i != me).map(|(i, r)| (*i, r.package.clone())).collect();
        let mine2: std::collections::BTreeMap<u16, Vec<u8>> = c
            .state
            .dkg()
            .round2
            .iter()
            .filter(|(from, _)| **from != me)
            .map(|(from, r)| {
                let sealed = &r.packages.iter().find(|p| p.to == me).unwrap().sealed;
                (*from, dkg::open_package(&chain, *from, me, &transports[k], sealed).unwrap())
            })
            .collect();
        let (share, theirs) = dkg::finish(secret, &others1, &mine2).unwrap();
        assert_eq!(theirs, set);
        assert_eq!(share.public(), set.shares[k]);
    }
    // The key generation left the hospitals' nonce sequences alone.
    assert_eq!(c.state.nonce(&hospitals[1].public()), 0);
    // A sequence nonce on a key-generation transaction, or the reserved one elsewhere, is refused.
    let wrong =
        TxBody { sender: hospitals[1].public(), nonce: 1, expiry_height: 100, payload: Payload::DkgRound1(r1(2)) }
            .sign(&chain, &[&hospitals[1]]);
    assert!(matches!(check_stateless(&wrong), Err(TxError::Malformed { field, .. }) if field == "body.nonce"));
    let wrong = TxBody {
        sender: hospitals[1].public(),
        nonce: engine::tx::NONCE_OUTSIDE_SEQUENCE,
        expiry_height: 100,
        payload: Payload::Revoke(Revoke { grant: Digest([1; 32]) }),
    }
    .sign(&chain, &[&hospitals[1]]);
    assert!(matches!(check_stateless(&wrong), Err(TxError::Malformed { field, .. }) if field == "body.nonce"));
    // A late round-1 or a second round-2 is refused.
    assert!(matches!(rejected(dkg_tx(&mut c, &hospitals[3], Payload::DkgRound1(r1(4)))), TxError::Conflict(_)));
}

/// Validator 4 seals a wrong share for validator 1. Validator 1 finishes with an error naming 4,
/// reveals the point that opens that one package, and the ledger, which can now open it, checks
/// it against 4's commitments and records 4 as a proven culprit. A complaint about a good package,
/// or with a forged proof, is refused and records nothing.
#[test]
fn a_complaint_proves_a_wrong_round2_package_and_a_false_one_is_refused() {
    use engine::dkg;
    use rand_chacha::rand_core::SeedableRng;
    let mut c = Chain::new();
    let n = c.hospitals.len() as u16;
    let t = dkg::consortium_threshold(n);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(11);
    let chain = c.chain_id();
    let hospitals = c.hospitals.clone();
    let mut secrets = Vec::new();
    let mut transports = Vec::new();
    for i in 1..=n {
        let (secret, package) = dkg::round1(i, n, t, &mut rng).unwrap();
        let transport = dkg::TransportSecret::random(&mut rng);
        let r1 = DkgRound1 { package, transport: transport.public() };
        assert_eq!(dkg_tx(&mut c, &hospitals[usize::from(i) - 1], Payload::DkgRound1(r1)), Outcome::Applied);
        secrets.push(secret);
        transports.push(transport);
    }
    let mut round2_secrets = Vec::new();
    for (k, secret) in secrets.into_iter().enumerate() {
        let me = k as u16 + 1;
        let others: std::collections::BTreeMap<u16, Vec<u8>> =
            c.state.dkg().round1.iter().filter(|(i, _)| **i != me).map(|(i, r)| (*i, r.package.clone())).collect();
        let (r2secret, outgoing) = dkg::round2(secret, &others).unwrap();
        round2_secrets.push(r2secret);
        let packages: Vec<SealedPackage> = outgoing
            .into_iter()
            .map(|(to, mut p)| {
                if me == 4 && to == 1 {
                    // The share is the package's last 32 bytes (little-endian); flipping the lowest
                    // bit keeps it canonical, so only the commitment check can tell.
                    let first = p.len() - 32;
                    p[first] ^= 0x01;
                }
                let recipient = c.state.dkg().round1[&to].transport;
                SealedPackage { to, sealed: dkg::seal_package(&chain, me, to, &recipient, &p, &mut rng).unwrap() }
            })
            .collect();
        assert_eq!(dkg_tx(&mut c, &hospitals[k], Payload::DkgRound2(DkgRound2 { packages })), Outcome::Applied);
    }
    let dealt = c.state.dkg().round2.clone();
    let sealed =
        |from: u16, to: u16| -> Vec<u8> { dealt[&from].packages.iter().find(|p| p.to == to).unwrap().sealed.clone() };
    // Validator 1 cannot finish, and names 4.
    let others1: std::collections::BTreeMap<u16, Vec<u8>> =
        c.state.dkg().round1.iter().filter(|(i, _)| **i != 1).map(|(i, r)| (*i, r.package.clone())).collect();
    let mine: std::collections::BTreeMap<u16, Vec<u8>> = (2..=n)
        .map(|from| (from, dkg::open_package(&chain, from, 1, &transports[0], &sealed(from, 1)).unwrap()))
        .collect();
    assert!(matches!(
        dkg::finish(&round2_secrets[0], &others1, &mine),
        Err(dkg::DkgError::Culprit { culprit: 4, round: 2, .. })
    ));

    // A complaint about validator 2's good package is refused: it shows the package checks.
    let false_one = dkg::complain(&chain, 2, 1, &transports[0], &sealed(2, 1), &mut rng).unwrap();
    match rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgComplaint(false_one))) {
        TxError::Conflict(m) => assert!(m.contains("the complaint is false"), "{m}"),
        other => panic!("a false complaint must be refused: {other:?}"),
    }
    // A proof made with another validator's transport key is refused.
    let forged = dkg::complain(&chain, 4, 1, &transports[1], &sealed(4, 1), &mut rng).unwrap();
    match rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgComplaint(forged))) {
        TxError::Conflict(m) => assert!(m.contains("proof does not check"), "{m}"),
        other => panic!("a forged complaint must be refused: {other:?}"),
    }
    // A complaint about oneself, or about no validator, is malformed.
    let about_self = dkg::complain(&chain, 1, 1, &transports[0], &sealed(2, 1), &mut rng).unwrap();
    assert!(matches!(
        rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgComplaint(about_self))),
        TxError::Malformed { .. }
    ));
    assert!(c.state.dkg().culprits.is_empty(), "nothing refused is recorded");

    // Validators 2 and 3 find nothing to complain of; validator 1 finds 4.
    let seeded = |i: u16| rand_chacha::ChaCha20Rng::seed_from_u64(u64::from(i));
    for me in [2u16, 3] {
        let found =
            dkg::find_complaint(&chain, me, &transports[usize::from(me) - 1], &c.state.dkg().round1, &dealt, seeded);
        assert_eq!(found, None, "validator {me}");
    }
    let complaint = dkg::find_complaint(&chain, 1, &transports[0], &c.state.dkg().round1, &dealt, seeded)
        .expect("validator 1 finds the wrong package");
    assert_eq!(complaint.against, 4);
    // A package whose ephemeral key is no point (here, from validator 2 to 3) is found too, and
    // its complaint is upheld on the bytes alone.
    let mut garbled = dealt.clone();
    garbled.get_mut(&2).unwrap().packages.iter_mut().find(|p| p.to == 3).unwrap().sealed = vec![0xff; 64];
    let on_bytes = dkg::find_complaint(&chain, 3, &transports[2], &c.state.dkg().round1, &garbled, seeded)
        .expect("validator 3 finds the garbled package");
    assert_eq!(on_bytes.against, 2);
    let dealer2 = &c.state.dkg().round1[&2].package;
    let why = dkg::check_complaint(&chain, 3, &transports[2].public(), &[0xff; 64], dealer2, &on_bytes).unwrap();
    assert!(why.contains("no valid ephemeral key"), "{why}");
    // The true complaint is upheld: validator 4 is a proven culprit, once.
    let height = c.state.height() + 1;
    assert_eq!(dkg_tx(&mut c, &hospitals[0], Payload::DkgComplaint(complaint.clone())), Outcome::Applied);
    let culprit = &c.state.dkg().culprits[&4];
    assert_eq!((culprit.by, culprit.height), (1, height));
    assert!(culprit.reason.contains("fails its round-1 commitments"), "{}", culprit.reason);
    assert!(
        matches!(rejected(dkg_tx(&mut c, &hospitals[0], Payload::DkgComplaint(complaint))), TxError::Conflict(m) if m.contains("already"))
    );
    // Key-generation transactions stay outside the nonce sequence.
    assert_eq!(c.state.nonce(&hospitals[0].public()), 0);
}

#[test]
fn a_rotated_patient_key_hands_over_records_grants_and_trail() {
    let (mut c, doctor, patient, doctor2) = populated();
    let h0 = c.hospitals[0].clone();
    let rec = anchor(1, &doctor, &patient, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &patient], Payload::AnchorRecord(rec.clone())), Outcome::Applied);
    let grant = Grant {
        grantee: doctor2.public(),
        scope: GrantScope::Records(vec![rec.record_id]),
        purpose: "care".into(),
        expires_at_ms: T0 + 1_000_000,
    };
    let grant_tx = c.tx(&[&patient], Payload::Grant(grant));
    let grant_id = grant_tx.id();
    assert_eq!(c.block(vec![grant_tx]), vec![Outcome::Applied]);

    let fresh = key(21);
    // The new key must sign too (proof of possession).
    let body = TxBody {
        sender: patient.public(),
        nonce: 99,
        expiry_height: c.state.height() + 5,
        payload: Payload::RotateKey(RotateKey { new_key: fresh.public() }),
    };
    assert_eq!(body.signers(), vec![patient.public(), fresh.public()]);
    // Rotating to a key in use is refused.
    assert!(matches!(
        rejected(c.one(&[&patient, &doctor], Payload::RotateKey(RotateKey { new_key: doctor.public() }))),
        TxError::Conflict(m) if m.contains("already in use")
    ));
    // Only patients rotate on chain.
    assert!(matches!(
        rejected(c.one(&[&doctor, &fresh], Payload::RotateKey(RotateKey { new_key: fresh.public() }))),
        TxError::RoleNotAllowed { .. }
    ));
    assert_eq!(c.one(&[&patient, &fresh], Payload::RotateKey(RotateKey { new_key: fresh.public() })), Outcome::Applied);
    let at = c.state.height();
    assert_eq!(c.state.rotated_to(&patient.public()), Some((fresh.public(), at)));
    assert_eq!(c.state.current_owner(&patient.public()), fresh.public());
    assert_eq!(c.state.participant(&fresh.public()).unwrap().role, Role::Patient);

    // The old key sends nothing more, and cannot consent to new records.
    assert!(matches!(
        rejected(c.one(&[&patient], Payload::Revoke(Revoke { grant: grant_id }))),
        TxError::Conflict(m) if m.contains("rotated")
    ));
    let rec2 = anchor(2, &doctor, &patient, &h0, "Condition");
    assert!(
        matches!(rejected(c.one(&[&doctor, &patient], Payload::AnchorRecord(rec2))), TxError::Malformed { field, .. } if field == "payload.AnchorRecord.owner")
    );
    // The new key owns the records and the grants: it reads, grants and revokes.
    assert_eq!(c.state.records_of(&fresh.public()).len(), 1);
    let own = ReadRequest { record: rec.record_id, grant: None, reader_key: reader_key() };
    assert_eq!(c.one(&[&fresh], Payload::ReadRequest(own)), Outcome::Applied);
    let granted = ReadRequest { record: rec.record_id, grant: Some(grant_id), reader_key: reader_key() };
    assert_eq!(c.one(&[&doctor2], Payload::ReadRequest(granted.clone())), Outcome::Applied);
    assert_eq!(c.one(&[&fresh], Payload::Revoke(Revoke { grant: grant_id })), Outcome::Applied);
    assert!(
        matches!(rejected(c.one(&[&doctor2], Payload::ReadRequest(granted))), TxError::Conflict(m) if m.contains("revoked"))
    );
    let rec3 = anchor(3, &doctor, &fresh, &h0, "Condition");
    assert_eq!(c.one(&[&doctor, &fresh], Payload::AnchorRecord(rec3)), Outcome::Applied);

    // One trail, reachable from either key, with the rotation in it.
    let trail = c.state.audit_trail(&fresh.public());
    assert_eq!(trail, c.state.audit_trail(&patient.public()));
    let kinds: Vec<&str> = trail
        .iter()
        .map(|e| match e.action {
            AuditAction::Anchored { .. } => "anchored",
            AuditAction::Granted { .. } => "granted",
            AuditAction::Revoked { .. } => "revoked",
            AuditAction::KeyRotated { .. } => "rotated",
            AuditAction::Read { .. } => "read",
        })
        .collect();
    assert_eq!(kinds, ["anchored", "granted", "rotated", "read", "read", "revoked", "anchored"]);
}
