//! Golden tests: the canonical bytes and SHA-256 of every signed or hashed format, checked in
//! under `tests/golden/*.hex`. A change to any of these formats changes what signatures and
//! hashes cover, so it breaks every existing chain: it must be deliberate. To accept a change,
//! run `UPDATE_GOLDEN=1 cargo test -p medchain-engine --test golden` and commit the files.

use engine::block::{BlockHeader, CommitCertificate};
use engine::codec::{self, sha256, Digest};
use engine::crypto::{ChainId, SigningKey};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use engine::pbft::message::{Message, SignedMessage, Vote};
use engine::tx::{
    AnchorRecord, DkgRound1, DkgRound2, Enroll, Grant, GrantScope, Payload, ReadRequest, Revoke, Role, RotateKey,
    SealedPackage, SearchAuthorization, SearchLog, Transaction, TxBody,
};
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;
use std::path::PathBuf;

fn golden_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.hex"))
}

fn render(name: &str, bytes: &[u8], extra: &[(&str, String)]) -> String {
    let mut out = format!(
        "# medchain golden value `{name}`: canonical bytes and their SHA-256.\n\
         # Regenerate only for a deliberate format change: UPDATE_GOLDEN=1 cargo test -p medchain-engine --test golden\n\
         bytes {}\nsha256 {}\n",
        hex::encode(bytes),
        sha256(bytes).to_hex()
    );
    for (label, value) in extra {
        out.push_str(&format!("{label} {value}\n"));
    }
    out
}

/// Pins `value`'s canonical encoding (and `extra` labelled values) in `tests/golden/{name}.hex`.
fn golden<T: Serialize + DeserializeOwned + PartialEq + Debug>(name: &str, value: &T, extra: &[(&str, String)]) {
    let bytes = codec::encode(value);
    let decoded: T = codec::decode(&bytes, usize::MAX).expect("a canonical encoding decodes");
    assert_eq!(&decoded, value, "{name}: decoding the canonical bytes gives another value");
    let expected = render(name, &bytes, extra);
    let path = golden_path(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("golden folder")).expect("create tests/golden");
        std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("cannot read {} ({e}); create it with UPDATE_GOLDEN=1 and commit it", path.display())
    });
    if stored != expected {
        panic!(
            "a signed format changed: the canonical encoding of `{name}` differs from {}.\n\
             This breaks every signature and hash made with the old format, so it must be deliberate: \
             if it is, run UPDATE_GOLDEN=1 cargo test -p medchain-engine --test golden and commit the files.\n\
             --- stored\n{stored}--- now\n{expected}",
            path.display()
        );
    }
}

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn chain_id() -> ChainId {
    ChainId::new("golden-chain").expect("valid chain id")
}

fn tx(signers: &[u8], nonce: u64, payload: Payload) -> Transaction {
    let keys: Vec<SigningKey> = signers.iter().map(|s| key(*s)).collect();
    let body = TxBody { sender: keys[0].public(), nonce, expiry_height: 1_000, payload };
    body.sign(&chain_id(), &keys.iter().collect::<Vec<_>>())
}

fn golden_tx(name: &str, tx: &Transaction) {
    golden(name, tx, &[("tx_id", tx.id().to_hex())]);
}

#[test]
fn tx_enroll() {
    let p = Payload::Enroll(Enroll { key: key(10).public(), role: Role::Doctor, name: "Dr. Ana Ruiz".into() });
    golden_tx("tx_enroll", &tx(&[1], 1, p));
}

#[test]
fn tx_anchor_record() {
    let p = Payload::AnchorRecord(AnchorRecord {
        record_id: Digest([0x11; 32]),
        owner: key(20).public(),
        author: key(10).public(),
        hospital: key(1).public(),
        data_type: "Condition".into(),
        created_at_ms: 1_700_000_000_123,
        ciphertext_digest: sha256(b"ciphertext"),
        ciphertext_len: 4096,
        blob_locator: "blobs/11/11".into(),
        encrypted_data_key: vec![0xde, 0xad, 0xbe, 0xef],
        index_labels: vec![[0xa1; 16], [0xb2; 16]],
        epoch: 7,
    });
    golden_tx("tx_anchor_record", &tx(&[10, 20], 3, p));
}

#[test]
fn tx_grant_records() {
    let p = Payload::Grant(Grant {
        grantee: key(11).public(),
        scope: GrantScope::Records(vec![Digest([0x11; 32]), Digest([0x12; 32])]),
        purpose: "second opinion".into(),
        expires_at_ms: 1_800_000_000_000,
    });
    golden_tx("tx_grant_records", &tx(&[20], 1, p));
}

#[test]
fn tx_grant_data_types() {
    let p = Payload::Grant(Grant {
        grantee: key(60).public(),
        scope: GrantScope::DataTypes {
            data_types: vec!["Condition".into(), "Observation".into()],
            from_ms: 1_600_000_000_000,
            to_ms: 1_700_000_000_000,
        },
        purpose: "study".into(),
        expires_at_ms: 1_800_000_000_000,
    });
    golden_tx("tx_grant_data_types", &tx(&[20], 2, p));
}

#[test]
fn tx_revoke() {
    golden_tx("tx_revoke", &tx(&[20], 3, Payload::Revoke(Revoke { grant: Digest([0x22; 32]) })));
}

#[test]
fn tx_read_request() {
    let p = Payload::ReadRequest(ReadRequest {
        record: Digest([0x11; 32]),
        grant: Some(Digest([0x22; 32])),
        reader_key: engine::threshold::DhSecret::from_wide(&[0x44; 64]).public(),
    });
    golden_tx("tx_read_request", &tx(&[11], 1, p));
}

#[test]
fn tx_dkg_round1() {
    let p = Payload::DkgRound1(DkgRound1 {
        package: vec![0x01; 40],
        transport: engine::threshold::DhSecret::from_wide(&[0x55; 64]).public(),
    });
    golden_tx("tx_dkg_round1", &tx(&[1], engine::tx::NONCE_OUTSIDE_SEQUENCE, p));
}

#[test]
fn tx_dkg_round2() {
    let packages =
        vec![SealedPackage { to: 1, sealed: vec![0x02; 20] }, SealedPackage { to: 3, sealed: vec![0x03; 20] }];
    golden_tx(
        "tx_dkg_round2",
        &tx(&[2], engine::tx::NONCE_OUTSIDE_SEQUENCE, Payload::DkgRound2(DkgRound2 { packages })),
    );
}

#[test]
fn tx_rotate_key() {
    golden_tx("tx_rotate_key", &tx(&[20, 21], 4, Payload::RotateKey(RotateKey { new_key: key(21).public() })));
}

#[test]
fn tx_search_authorization() {
    let p = Payload::SearchAuthorization(SearchAuthorization {
        researcher: key(60).public(),
        purpose: "diabetes cohort".into(),
        expires_at_ms: 1_800_000_000_000,
    });
    golden_tx("tx_search_authorization", &tx(&[1], 4, p));
}

#[test]
fn tx_search_log() {
    let p = Payload::SearchLog(SearchLog {
        hospital: key(1).public(),
        authorization: Digest([0x33; 32]),
        query_digest: sha256(b"E11 AND year:2024"),
        term_count: 3,
    });
    golden_tx("tx_search_log", &tx(&[60], 1, p));
}

fn header() -> BlockHeader {
    BlockHeader {
        chain_id: chain_id(),
        height: 42,
        view: 3,
        prev_hash: Digest([0x44; 32]),
        timestamp_ms: 1_700_000_042_000,
        tx_root: Digest([0x55; 32]),
        tx_count: 17,
        proposer: 2,
    }
}

#[test]
fn block_header() {
    let h = header();
    golden("block_header", &h, &[("block_hash", h.hash().to_hex())]);
}

fn genesis() -> Genesis {
    GenesisBody {
        chain_id: chain_id(),
        created_at_ms: 1_700_000_000_000,
        ca_key: key(200).public(),
        validators: (1..=4).map(|i| NodeInfo { name: format!("node{}", i - 1), key: key(i).public() }).collect(),
        auditors: vec![NodeInfo { name: "regulator".into(), key: key(100).public() }],
        params: ChainParams::default(),
    }
    .sign(&key(200))
}

#[test]
fn genesis_document() {
    let g = genesis();
    g.verify().expect("the golden genesis verifies");
    golden("genesis", &g, &[("genesis_hash", g.hash().to_hex())]);
}

#[test]
fn signed_commit_vote() {
    let vote = Vote { view: 3, seq: 42, digest: header().hash() };
    let m = SignedMessage::sign(&chain_id(), 2, Message::Commit(vote), &key(3));
    golden("signed_commit", &m, &[]);
}

#[test]
fn commit_certificate() {
    let h = header();
    let mut cert = CommitCertificate { view: 3, height: 42, block_hash: h.hash(), votes: vec![] };
    for r in [0u16, 1, 3] {
        let sig = key(r as u8 + 1).sign_raw(&cert.vote_signing_bytes(&chain_id(), r));
        cert.votes.push((r, sig));
    }
    let validators = genesis().validator_set();
    cert.verify(&chain_id(), &validators, 42, &h.hash()).expect("the golden certificate verifies");
    golden("commit_certificate", &cert, &[]);
}
