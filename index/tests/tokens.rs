//! The token service against a real ledger state: a CA enrols hospitals A and B and researchers,
//! A and B authorise, researchers log searches in signed transactions applied in blocks; then
//! the keys A's service issues, every refusal in its order, and the invariant that every key
//! handed out has its `SearchLog` on chain.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::num::NonZeroU64;

use engine::block::{Block, BlockHeader};
use engine::codec::Digest;
use engine::crypto::{ChainId, PublicKey, Signature, SigningKey};
use engine::genesis::{ChainParams, GenesisBody, NodeInfo};
use engine::state::{verify_signatures, Outcome, State};
use engine::tx::{Enroll, Payload, Role, SearchAuthorization, SearchLog, Transaction, TxBody, TxId};
use index::labels::{label_for, term_key, IndexKey, LabelPolicy, LabelWriter, MemoryCounterStore, Overflow};
use index::term::Term;
use index::tokens::{SearchLogMismatch, TermRef, TokenError, TokenLimits, TokenQuery, TokenRequest, TokenService};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T0: u64 = 1_700_000_000_000;
const HOUR_MS: u64 = 3_600_000;
const EPOCH_LEN: NonZeroU64 = match NonZeroU64::new(HOUR_MS) {
    Some(n) => n,
    None => panic!("an hour is not zero"),
};
/// When A's authorization of the researcher ends.
const EXPIRES_MS: u64 = T0 + 30 * HOUR_MS;
/// The token service's time in most tests: five hours after genesis.
const NOW_MS: u64 = T0 + 5 * HOUR_MS;

fn key(n: u8) -> SigningKey {
    SigningKey::from_seed([n; 32])
}

fn index_key(hospital: &SigningKey) -> IndexKey {
    IndexKey::from_bytes(hospital.public().0.map(|b| b ^ 0x5a))
}

/// A chain where the CA enrolled hospitals A and B and researchers R and R2; A authorised R
/// (twice) and R2, B authorised R.
struct World {
    chain_id: ChainId,
    state: State,
    a: SigningKey,
    b: SigningKey,
    r: SigningKey,
    r2: SigningKey,
    nonces: std::collections::HashMap<PublicKey, u64>,
    time_ms: u64,
    /// A → R.
    auth_a: TxId,
    /// A → R, a second one.
    auth_a_again: TxId,
    /// A → R2.
    auth_a_r2: TxId,
    /// B → R.
    auth_b: TxId,
}

impl World {
    fn new() -> World {
        let ca = key(200);
        let validator = key(1);
        let genesis = GenesisBody {
            chain_id: ChainId::new("tokens-test").unwrap(),
            created_at_ms: T0,
            ca_key: ca.public(),
            validators: vec![NodeInfo { name: "validator".into(), key: validator.public() }],
            auditors: vec![],
            params: ChainParams::default(),
        }
        .sign(&ca);
        genesis.verify().unwrap();
        let mut w = World {
            chain_id: genesis.chain_id().clone(),
            state: State::from_genesis(&genesis),
            a: key(2),
            b: key(3),
            r: key(30),
            r2: key(31),
            nonces: Default::default(),
            time_ms: T0,
            auth_a: Digest::ZERO,
            auth_a_again: Digest::ZERO,
            auth_a_r2: Digest::ZERO,
            auth_b: Digest::ZERO,
        };
        let enrolments = [(w.a.public(), Role::Hospital), (w.b.public(), Role::Hospital)]
            .into_iter()
            .chain([(w.r.public(), Role::Researcher), (w.r2.public(), Role::Researcher)])
            .map(|(who, role)| w.tx(&ca, Payload::Enroll(Enroll { key: who, role, name: format!("{role:?}") })))
            .collect();
        w.commit(enrolments);
        let (a, b, r, r2) = (w.a.clone(), w.b.clone(), w.r.clone(), w.r2.clone());
        let auths = vec![
            w.tx(&a, authorize(&r, EXPIRES_MS)),
            w.tx(&a, authorize(&r, EXPIRES_MS)),
            w.tx(&a, authorize(&r2, EXPIRES_MS)),
            w.tx(&b, authorize(&r, EXPIRES_MS)),
        ];
        let ids: Vec<TxId> = auths.iter().map(Transaction::id).collect();
        w.commit(auths);
        (w.auth_a, w.auth_a_again, w.auth_a_r2, w.auth_b) = (ids[0], ids[1], ids[2], ids[3]);
        w
    }

    /// A transaction from `sender` with its next nonce.
    fn tx(&mut self, sender: &SigningKey, payload: Payload) -> Transaction {
        let n = self.nonces.entry(sender.public()).or_insert(0);
        *n += 1;
        let body = TxBody { sender: sender.public(), nonce: *n, expiry_height: self.state.height() + 10, payload };
        body.sign(&self.chain_id, &[sender])
    }

    /// Commits a block of `txs` one second after the last; every one must apply.
    fn commit(&mut self, txs: Vec<Transaction>) {
        self.time_ms += 1000;
        let mut block = Block {
            header: BlockHeader {
                chain_id: self.chain_id.clone(),
                height: self.state.height() + 1,
                view: 0,
                prev_hash: self.state.head(),
                timestamp_ms: self.time_ms,
                tx_root: Digest::ZERO,
                tx_count: txs.len() as u32,
                proposer: 0,
            },
            txs,
        };
        block.header.tx_root = block.compute_tx_root();
        for tx in &block.txs {
            verify_signatures(tx, &self.chain_id).unwrap();
        }
        for receipt in self.state.apply_block(&block) {
            assert_eq!(receipt.outcome, Outcome::Applied, "setup transaction {} refused", receipt.tx);
        }
    }

    /// The SearchLog `researcher` would send for `query` with `term_count`, not committed.
    fn search_log_tx(&mut self, researcher: &SigningKey, query: &TokenQuery, term_count: u32) -> Transaction {
        let log = SearchLog {
            hospital: query.hospital,
            authorization: query.authorization,
            query_digest: query.digest(),
            term_count,
        };
        self.tx(researcher, Payload::SearchLog(log))
    }

    /// Commits the SearchLog of `query` by `researcher` and returns its tx id.
    fn log(&mut self, researcher: &SigningKey, query: &TokenQuery) -> TxId {
        let tx = self.search_log_tx(researcher, query, query.terms.len() as u32);
        let id = tx.id();
        self.commit(vec![tx]);
        id
    }

    fn service(&self, hospital: &SigningKey) -> TokenService {
        TokenService::new(hospital.public(), index_key(hospital), EPOCH_LEN, TokenLimits::default())
    }

    /// R's query to A's domain under `auth_a` for `terms` over the last `epochs` closed epochs at
    /// [`NOW_MS`].
    fn query_a(&self, terms: &[(&str, &str)], epochs: u64, nonce: u8) -> TokenQuery {
        let first_open = NOW_MS / HOUR_MS;
        query(&self.a, self.auth_a, terms, first_open - epochs, first_open, nonce)
    }

    fn request(&self, researcher: &SigningKey, search_log: TxId, query: TokenQuery) -> TokenRequest {
        TokenRequest::sign(researcher, &self.chain_id, search_log, query)
    }

    fn issue_a(&self, request: &TokenRequest, now_ms: u64) -> Result<index::tokens::TokenResponse, TokenError> {
        self.service(&self.a).issue(&self.state, &self.chain_id, request, now_ms)
    }
}

fn authorize(researcher: &SigningKey, expires_at_ms: u64) -> Payload {
    Payload::SearchAuthorization(SearchAuthorization {
        researcher: researcher.public(),
        purpose: "diabetes cohort study".into(),
        expires_at_ms,
    })
}

fn query(
    hospital: &SigningKey,
    authorization: TxId,
    terms: &[(&str, &str)],
    epoch_from: u64,
    epoch_to: u64,
    nonce: u8,
) -> TokenQuery {
    TokenQuery {
        hospital: hospital.public(),
        authorization,
        terms: terms.iter().map(|(f, v)| TermRef::new(*f, *v)).collect(),
        epoch_from,
        epoch_to,
        nonce: [nonce; 16],
    }
}

const TERMS: [(&str, &str); 3] = [("icd10", "E11"), ("loinc", "4548-4"), ("year", "2024")];

/// The error of a refused request, after checking its code, status, and that its message
/// contains every one of `names`.
fn refused<T: std::fmt::Debug>(
    result: Result<T, TokenError>,
    code: &str,
    status: u16,
    field: &str,
    names: &[&str],
) -> TokenError {
    let e = match result {
        Ok(v) => panic!("expected refusal {code}, got {v:?}"),
        Err(e) => e,
    };
    assert_eq!((e.code(), e.http_status(), e.field()), (code, status, Some(field)), "{e}");
    let message = e.to_string();
    for name in names {
        assert!(message.contains(name), "message {message:?} does not name {name:?}");
    }
    e
}

#[test]
fn keys_are_term_keys_of_exactly_the_closed_epochs_asked_for() {
    let mut w = World::new();
    let q = w.query_a(&TERMS, 3, 1);
    let log = w.log(&w.r.clone(), &q);
    let response = w.issue_a(&w.request(&w.r, log, q.clone()), NOW_MS).unwrap();

    assert_eq!((response.hospital, response.search_log), (w.a.public(), log));
    let k_a = index_key(&w.a);
    let mut expected = Vec::new();
    for (field, value) in TERMS {
        for epoch in q.epoch_from..q.epoch_to {
            expected.push((field.to_string(), value.to_string(), epoch, term_key(&k_a, field, value, epoch)));
        }
    }
    assert_eq!(response.keys.len(), 9);
    assert_eq!(q.key_count(), 9);
    for (issued, (field, value, epoch, k)) in response.keys.iter().zip(&expected) {
        assert_eq!((&issued.field, &issued.value, issued.epoch), (field, value, *epoch));
        assert_eq!(issued.term_key().unwrap().expose_bytes(), k.expose_bytes());
        let domain = issued.to_domain_key(w.a.public()).unwrap();
        assert_eq!((domain.hospital, &domain.field, &domain.value, domain.epoch), (w.a.public(), field, value, *epoch));
        assert_eq!(domain.key.expose_bytes(), k.expose_bytes());
    }
    // The last epoch asked for is the one before the open one, and B's key differs from A's.
    assert_eq!(q.epoch_to, w.service(&w.a).first_open_epoch(NOW_MS));
    let k_b = term_key(&index_key(&w.b), "icd10", "E11", q.epoch_from);
    assert_ne!(response.keys[0].term_key().unwrap().expose_bytes(), k_b.expose_bytes());
    // Keys never show in Debug.
    let debug = format!("{response:?}");
    assert!(!debug.contains(&response.keys[0].key), "{debug}");
}

#[test]
fn the_same_log_gets_the_same_keys_and_another_nonce_other_keys_none() {
    let mut w = World::new();
    let q1 = w.query_a(&TERMS[..1], 1, 1);
    let q2 = w.query_a(&TERMS[..1], 1, 2);
    assert_ne!(q1.digest(), q2.digest(), "the nonce makes identical searches log distinct digests");
    let (r, log1) = (w.r.clone(), w.log(&w.r.clone(), &q1));
    let log2 = w.log(&r, &q2);
    let k1 = w.issue_a(&w.request(&r, log1, q1.clone()), NOW_MS).unwrap().keys;
    let k1_again = w.issue_a(&w.request(&r, log1, q1), NOW_MS).unwrap().keys;
    let k2 = w.issue_a(&w.request(&r, log2, q2), NOW_MS).unwrap().keys;
    assert_eq!(k1[0].key, k1_again[0].key);
    assert_eq!(k1[0].key, k2[0].key, "keys depend on the term and epoch, not on the search");
}

#[test]
fn query_digest_is_pinned() {
    let q = query(&key(2), Digest([7; 32]), &TERMS, 10, 12, 0xab);
    // Pins the canonical encoding and the domain tag: a change here breaks every logged search.
    // Computed independently (Python): SHA-256 of "medchain/index/token-query/v1" ‖ hospital key
    // ‖ authorization ‖ 0x03 ‖ each term as (len ‖ field ‖ len ‖ value) ‖ 0x0a ‖ 0x0c ‖ nonce.
    assert_eq!(q.digest().to_hex(), "122934c19346df9d407a8e040b0364337a5f965b3ba3123ab8db9c64feb4eb8e");
}

#[test]
fn token_request_json_round_trips_with_hex_nonce() {
    let mut w = World::new();
    let q = w.query_a(&TERMS, 2, 0xab);
    let log = w.log(&w.r.clone(), &q);
    let request = w.request(&w.r, log, q);
    let json = serde_json::to_string(&request).unwrap();
    assert!(json.contains(&format!("\"nonce\":\"{}\"", "ab".repeat(16))), "{json}");
    let back: TokenRequest = serde_json::from_str(&json).unwrap();
    assert_eq!(back, request);
    let response = w.issue_a(&back, NOW_MS).unwrap();
    let json = serde_json::to_string(&response).unwrap();
    let back: index::tokens::TokenResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(back.keys.len(), 6);
    assert_eq!(back.keys[5].key, response.keys[5].key);
    assert_eq!(back.keys[5].key.len(), 64);

    let bad_nonce = json_with_nonce(&serde_json::to_string(&request).unwrap(), "abc");
    let e = serde_json::from_str::<TokenRequest>(&bad_nonce).unwrap_err().to_string();
    assert!(e.contains("nonce: 3 hex characters, expected 32"), "{e}");
}

fn json_with_nonce(json: &str, nonce: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
    value["query"]["nonce"] = serde_json::Value::String(nonce.into());
    value.to_string()
}

#[test]
fn malformed_issued_keys_are_refused_with_their_term() {
    let mut w = World::new();
    let q = w.query_a(&TERMS[..1], 1, 1);
    let log = w.log(&w.r.clone(), &q);
    let mut issued = w.issue_a(&w.request(&w.r, log, q), NOW_MS).unwrap().keys.remove(0);
    issued.key.pop();
    refused(issued.term_key(), "malformed_key", 400, "key", &["icd10", "63 hex characters, expected 64"]);
    issued.key.push('z');
    refused(issued.to_domain_key(w.a.public()), "malformed_key", 400, "key", &["not a hex digit at position 63"]);
}

#[test]
fn refuses_without_a_committed_authorization() {
    let mut w = World::new();
    let mut q = w.query_a(&TERMS, 1, 1);
    q.authorization = Digest([9; 32]);
    // The chain refuses such a SearchLog, so whatever log the researcher names does not help.
    let tx = w.search_log_tx(&w.r.clone(), &q, 3);
    let request = w.request(&w.r, tx.id(), q);
    let height = format!("height {}", w.state.height());
    refused(
        w.issue_a(&request, NOW_MS),
        "unknown_authorization",
        403,
        "query.authorization",
        &[&Digest([9; 32]).to_hex(), "not committed", &height],
    );
}

#[test]
fn refuses_an_expired_authorization_and_says_when_it_expired() {
    let mut w = World::new();
    let first_open = EXPIRES_MS / HOUR_MS;
    let q = query(&w.a, w.auth_a, &TERMS, first_open - 2, first_open, 1);
    let log = w.log(&w.r.clone(), &q);
    let request = w.request(&w.r, log, q);
    // The last moment before expiry works; from expiry on it does not.
    assert!(w.issue_a(&request, EXPIRES_MS - 1).is_ok());
    for now in [EXPIRES_MS, EXPIRES_MS + 1] {
        let e = refused(
            w.issue_a(&request, now),
            "authorization_expired",
            403,
            "query.authorization",
            &[&w.auth_a.to_hex(), &format!("expired at {EXPIRES_MS} ms"), "new authorization"],
        );
        assert!(
            matches!(e, TokenError::AuthorizationExpired { expired_at_ms: EXPIRES_MS, now_ms, .. } if now_ms == now)
        );
    }
}

#[test]
fn refuses_an_authorization_from_another_hospital() {
    let mut w = World::new();
    // B's authorization presented for A's domain: the chain would refuse to log it, so the
    // researcher names the log of a real search of A.
    let real = w.query_a(&TERMS, 1, 1);
    let log = w.log(&w.r.clone(), &real);
    let mut q = real;
    q.authorization = w.auth_b;
    refused(
        w.issue_a(&w.request(&w.r, log, q), NOW_MS),
        "authorization_other_hospital",
        403,
        "query.authorization",
        &[&w.auth_b.to_hex(), &w.a.public().to_hex(), &w.b.public().to_hex()],
    );
}

#[test]
fn refuses_a_query_for_another_domain_which_that_domain_serves() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let q = query(&w.b, w.auth_b, &TERMS, first_open - 1, first_open, 1);
    let log = w.log(&w.r.clone(), &q);
    let request = w.request(&w.r, log, q);
    refused(
        w.issue_a(&request, NOW_MS),
        "wrong_domain",
        403,
        "query.hospital",
        &[&w.a.public().to_hex(), &w.b.public().to_hex()],
    );
    // The same request at B's service is fine, with B's keys.
    let keys = w.service(&w.b).issue(&w.state, &w.chain_id, &request, NOW_MS).unwrap().keys;
    let k_b = term_key(&index_key(&w.b), "icd10", "E11", first_open - 1);
    assert_eq!(keys[0].term_key().unwrap().expose_bytes(), k_b.expose_bytes());
}

#[test]
fn refuses_an_authorization_given_to_another_researcher() {
    let mut w = World::new();
    let q = w.query_a(&TERMS, 1, 1);
    let log = w.log(&w.r.clone(), &q);
    // R2 presents R's authorization and R's log, signed by R2.
    refused(
        w.issue_a(&w.request(&w.r2, log, q), NOW_MS),
        "authorization_other_researcher",
        403,
        "query.authorization",
        &[&w.r.public().to_hex(), &w.r2.public().to_hex()],
    );
}

#[test]
fn refuses_a_search_log_not_committed() {
    let mut w = World::new();
    let q = w.query_a(&TERMS, 1, 1);
    // Built and signed, never committed.
    let tx = w.search_log_tx(&w.r.clone(), &q, 3);
    let e = refused(
        w.issue_a(&w.request(&w.r, tx.id(), q.clone()), NOW_MS),
        "search_log_not_committed",
        409,
        "search_log",
        &[&tx.id().to_hex(), "commit the SearchLog first"],
    );
    assert!(matches!(e, TokenError::SearchLogNotCommitted { search_log, .. } if search_log == tx.id()));
    // Once committed, the same request succeeds.
    w.commit(vec![tx.clone()]);
    assert!(w.issue_a(&w.request(&w.r, tx.id(), q), NOW_MS).is_ok());
}

fn mismatch(e: &TokenError) -> SearchLogMismatch {
    match e {
        TokenError::SearchLogMismatch { what, .. } => *what,
        other => panic!("expected a search log mismatch, got {other}"),
    }
}

#[test]
fn refuses_a_search_log_for_another_query() {
    let mut w = World::new();
    let logged = w.query_a(&TERMS, 1, 1);
    let log = w.log(&w.r.clone(), &logged);
    // Same terms and count, another nonce; then other terms of the same count.
    let mut other_nonce = logged.clone();
    other_nonce.nonce = [2; 16];
    let mut other_terms = logged.clone();
    other_terms.terms[2] = TermRef::new("year", "2023");
    let mut other_epochs = logged.clone();
    other_epochs.epoch_from -= 1;
    for q in [other_nonce, other_terms, other_epochs] {
        let digest = q.digest().to_hex();
        let e = refused(
            w.issue_a(&w.request(&w.r, log, q), NOW_MS),
            "search_log_mismatch",
            403,
            "search_log",
            &["query_digest", &digest, &logged.digest().to_hex(), &log.to_hex()],
        );
        assert_eq!(mismatch(&e), SearchLogMismatch::QueryDigest);
    }
}

#[test]
fn refuses_a_search_log_with_another_term_count() {
    let mut w = World::new();
    let q = w.query_a(&TERMS, 1, 1);
    let tx = w.search_log_tx(&w.r.clone(), &q, 4);
    w.commit(vec![tx.clone()]);
    let e = refused(
        w.issue_a(&w.request(&w.r, tx.id(), q), NOW_MS),
        "search_log_mismatch",
        403,
        "search_log",
        &["term_count 4", "request's 3"],
    );
    assert_eq!(mismatch(&e), SearchLogMismatch::TermCount);
}

#[test]
fn refuses_a_search_log_of_another_researcher() {
    let mut w = World::new();
    // R2 logs a search under its own authorization from A; R presents that log.
    let theirs = query(&w.a, w.auth_a_r2, &TERMS, NOW_MS / HOUR_MS - 1, NOW_MS / HOUR_MS, 1);
    let log = w.log(&w.r2.clone(), &theirs);
    let mine = w.query_a(&TERMS, 1, 1);
    let e = refused(
        w.issue_a(&w.request(&w.r, log, mine), NOW_MS),
        "search_log_mismatch",
        403,
        "search_log",
        &["sender", &w.r.public().to_hex(), &w.r2.public().to_hex()],
    );
    assert_eq!(mismatch(&e), SearchLogMismatch::Researcher);
}

#[test]
fn refuses_a_search_log_under_another_authorization() {
    let mut w = World::new();
    let mut logged = w.query_a(&TERMS, 1, 1);
    logged.authorization = w.auth_a_again;
    let log = w.log(&w.r.clone(), &logged);
    let mut q = logged;
    q.authorization = w.auth_a;
    let e = refused(
        w.issue_a(&w.request(&w.r, log, q), NOW_MS),
        "search_log_mismatch",
        403,
        "search_log",
        &["its authorization", &w.auth_a_again.to_hex(), &w.auth_a.to_hex()],
    );
    assert_eq!(mismatch(&e), SearchLogMismatch::Authorization);
}

#[test]
fn refuses_an_open_epoch_and_says_when_it_closes() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let q = query(&w.a, w.auth_a, &TERMS, first_open - 2, first_open + 1, 1);
    let log = w.log(&w.r.clone(), &q);
    let request = w.request(&w.r, log, q);
    let closes = (first_open + 1) * HOUR_MS;
    refused(
        w.issue_a(&request, NOW_MS),
        "epoch_not_closed",
        409,
        "query.epoch_to",
        &[&format!("epoch {first_open} is not closed"), &format!("closes at {closes} ms")],
    );
    // One millisecond before the close it is still refused; at the close it is issued.
    assert_eq!(w.issue_a(&request, closes - 1).unwrap_err().code(), "epoch_not_closed");
    assert_eq!(w.issue_a(&request, closes).unwrap().keys.len(), 9);
    let service = w.service(&w.a);
    assert_eq!((service.first_open_epoch(closes - 1), service.first_open_epoch(closes)), (first_open, first_open + 1));
}

#[test]
fn refuses_a_bad_signature_and_one_for_another_chain() {
    let mut w = World::new();
    let q = w.query_a(&TERMS, 1, 1);
    let log = w.log(&w.r.clone(), &q);
    let good = w.request(&w.r, log, q.clone());
    assert!(w.issue_a(&good, NOW_MS).is_ok());

    let mut tampered = good.clone();
    tampered.query.epoch_from -= 1;
    let mut zeroed = good.clone();
    zeroed.signature = Signature([0; 64]);
    let mut claimed = good.clone();
    claimed.researcher = w.r2.public();
    let other_chain = TokenRequest::sign(&w.r, &ChainId::new("another-consortium").unwrap(), log, q);
    for (request, who) in
        [(tampered, w.r.public()), (zeroed, w.r.public()), (claimed, w.r2.public()), (other_chain, w.r.public())]
    {
        refused(
            w.issue_a(&request, NOW_MS),
            "bad_signature",
            401,
            "signature",
            &[&who.to_hex(), "tokens-test", "sign the request"],
        );
    }
}

#[test]
fn refuses_too_many_keys_and_misshapen_queries() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let r = w.r.clone();
    let check = |w: &mut World, q: TokenQuery, code: &str, field: &str, names: &[&str]| {
        let log = w.log(&r, &q);
        refused(w.issue_a(&w.request(&r, log, q), NOW_MS), code, 400, field, names);
    };
    // One term over every epoch since 0: 472 227 keys.
    let all_time = query(&w.a, w.auth_a, &TERMS[..1], 0, first_open, 1);
    let count = first_open.to_string();
    check(&mut w, all_time, "too_many_keys", "query", &[&count, "100000", "shorter epoch range"]);

    let q = query(&w.a, w.auth_a, &[], first_open - 1, first_open, 1);
    check(&mut w, q, "no_terms", "query.terms", &["no term"]);
    let q = query(&w.a, w.auth_a, &[TERMS[1], TERMS[0]], first_open - 1, first_open, 1);
    check(&mut w, q, "terms_not_sorted", "query.terms[1]", &["term 1 sorts before term 0"]);
    let q = query(&w.a, w.auth_a, &[TERMS[0], TERMS[1], TERMS[1]], first_open - 1, first_open, 1);
    check(&mut w, q, "terms_not_sorted", "query.terms[2]", &["term 2 repeats term 1"]);
    let long = "x".repeat(1025);
    let q = query(&w.a, w.auth_a, &[TERMS[0], ("text", &long)], first_open - 1, first_open, 1);
    check(&mut w, q, "term_too_long", "query.terms[1].value", &["term 1", "1025 bytes", "1024"]);
    let q = query(&w.a, w.auth_a, &TERMS, first_open - 1, first_open - 1, 1);
    check(&mut w, q, "empty_epoch_range", "query.epoch_to", &["is empty"]);
    let many: Vec<String> = (0..257).map(|i| format!("{i:04}")).collect();
    let pairs: Vec<(&str, &str)> = many.iter().map(|v| ("year", v.as_str())).collect();
    let q = query(&w.a, w.auth_a, &pairs, first_open - 1, first_open, 1);
    check(&mut w, q, "too_many_terms", "query.terms", &["257 terms", "256"]);

    // A service with a lower limit refuses what the default accepts.
    let q = w.query_a(&TERMS, 3, 1);
    let log = w.log(&r, &q);
    let limits = TokenLimits { keys_max: 8, ..TokenLimits::default() };
    let small = TokenService::new(w.a.public(), index_key(&w.a), EPOCH_LEN, limits);
    let request = w.request(&r, log, q);
    refused(small.issue(&w.state, &w.chain_id, &request, NOW_MS), "too_many_keys", 400, "query", &["9 keys"]);
    assert!(w.issue_a(&request, NOW_MS).is_ok());
}

#[test]
fn error_messages_never_echo_term_values() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let secret = "rare-disease-marker";
    let long = format!("{secret}{}", "y".repeat(1100));
    for terms in [vec![("text", secret), ("icd10", "E11")], vec![("text", long.as_str())]] {
        let q = query(&w.a, w.auth_a, &terms, first_open - 1, first_open, 1);
        let log = w.log(&w.r.clone(), &q);
        let e = w.issue_a(&w.request(&w.r, log, q), NOW_MS).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
    }
}

/// A change to a query that removes one fault.
type Fix = fn(&World, &mut TokenQuery);

#[test]
fn checks_run_in_the_documented_order() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let r = w.r.clone();
    // Wrong in every way: a bad signature, B's domain, unsorted terms, an open epoch, an unknown
    // authorization, no log. Each fix, in order, reveals the next check.
    let mut q = query(&w.b, Digest([9; 32]), &[TERMS[1], TERMS[0]], first_open, first_open + 1, 1);
    let mut request = w.request(&r, Digest([8; 32]), q.clone());
    request.signature = Signature([0; 64]);
    assert_eq!(w.issue_a(&request, NOW_MS).unwrap_err().code(), "bad_signature");
    let steps: [(&str, Fix); 5] = [
        ("wrong_domain", |w, q| q.hospital = w.a.public()),
        ("terms_not_sorted", |_, q| q.terms.sort()),
        ("epoch_not_closed", |_, q| (q.epoch_from, q.epoch_to) = (q.epoch_from - 1, q.epoch_to - 1)),
        ("unknown_authorization", |w, q| q.authorization = w.auth_a),
        ("search_log_not_committed", |_, _| {}),
    ];
    for (code, fix) in steps {
        request = w.request(&r, Digest([8; 32]), q.clone());
        assert_eq!(w.issue_a(&request, NOW_MS).unwrap_err().code(), code);
        fix(&w, &mut q);
    }
    let log = w.log(&r, &q);
    assert!(w.issue_a(&w.request(&r, log, q), NOW_MS).is_ok());
}

#[test]
fn keys_of_an_epoch_match_nothing_written_in_the_next() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let e = first_open - 2;
    let policy = LabelPolicy { labels_per_record: 8, overflow: Overflow::Refuse, epoch_len_ms: HOUR_MS };
    let writer = LabelWriter::new(index_key(&w.a), w.a.public(), policy, MemoryCounterStore::new()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let terms = [Term::new("icd10", "E11", 200), Term::new("year", "2024", 70)];
    let in_e: Vec<_> = (0..3).map(|i| writer.labels_for_record(&terms, e * HOUR_MS + i, &mut rng).unwrap()).collect();
    let in_next: Vec<_> =
        (0..3).map(|i| writer.labels_for_record(&terms, (e + 1) * HOUR_MS + i, &mut rng).unwrap()).collect();
    assert!(in_e.iter().all(|r| r.epoch == e) && in_next.iter().all(|r| r.epoch == e + 1));

    let issue = |w: &mut World, from: u64, to: u64| {
        let q = query(&w.a, w.auth_a, &[("icd10", "E11")], from, to, from as u8);
        let log = w.log(&w.r.clone(), &q);
        w.issue_a(&w.request(&w.r, log, q), NOW_MS).unwrap().keys.remove(0)
    };
    let a = w.a.public();
    let expand = |issued: &index::tokens::IssuedKey| -> BTreeSet<[u8; 16]> {
        let k = issued.term_key().unwrap();
        (0..16).map(|c| label_for(&k, &a, c)).collect()
    };
    let hits = |labels: &BTreeSet<[u8; 16]>, records: &[index::labels::RecordLabels]| {
        records.iter().filter(|r| r.labels.iter().any(|l| labels.contains(l))).count()
    };
    let key_e = expand(&issue(&mut w, e, e + 1));
    assert_eq!(hits(&key_e, &in_e), 3, "the key of epoch e finds every record of e");
    assert_eq!(hits(&key_e, &in_next), 0, "the key of epoch e finds nothing of e + 1");
    // The test can fail: the key of e + 1 does find the records of e + 1.
    let key_next = expand(&issue(&mut w, e + 1, e + 2));
    assert_eq!((hits(&key_next, &in_next), hits(&key_next, &in_e)), (3, 0));
}

/// Whenever `issue` returns keys, the request's SearchLog is on chain, sent by the researcher,
/// and commits to exactly the request's query.
#[test]
fn every_key_handed_out_has_its_search_log_on_chain() {
    let mut w = World::new();
    let first_open = NOW_MS / HOUR_MS;
    let pool: Vec<(&str, &str)> =
        vec![("icd10", "E11"), ("icd10", "E11.9"), ("loinc", "4548-4"), ("text", "metformin"), ("year", "2024")];
    // A few logged searches, by R and R2, under several authorizations.
    let (r, r2) = (w.r.clone(), w.r2.clone());
    let mut logged = Vec::new();
    for (i, (who, auth)) in
        [(&r, w.auth_a), (&r, w.auth_a_again), (&r2, w.auth_a_r2), (&r, w.auth_b)].into_iter().enumerate()
    {
        let hospital = if auth == w.auth_b { w.b.clone() } else { w.a.clone() };
        let terms: Vec<(&str, &str)> = pool.iter().copied().skip(i % 2).step_by(1 + i % 2).collect();
        let q = query(&hospital, auth, &terms, first_open - 3, first_open - (i as u64 % 2), i as u8);
        let log = w.log(who, &q);
        logged.push((who.clone(), log, q));
    }
    let service = w.service(&w.a);
    let (oks, errs) = (Cell::new(0u32), Cell::new(0u32));

    // Mostly a logged request as it was logged, sometimes changed in one or more ways: another
    // log (or one never committed), the other researcher signing, a term dropped, another nonce,
    // another epoch range.
    let strategy = (
        0..logged.len(),
        proptest::option::weighted(0.25, 0..=logged.len()),
        proptest::bool::weighted(0.2),
        proptest::option::weighted(0.15, 0..pool.len()),
        proptest::option::weighted(0.15, any::<[u8; 16]>()),
        proptest::option::weighted(0.25, -2i64..2),
        0u64..3 * HOUR_MS,
    );
    let mut runner = TestRunner::new(Config { cases: 128, ..Config::default() });
    runner
        .run(&strategy, |(base, other_log, other_signer, drop_term, nonce, shift, later_ms)| {
            let (researcher, log, q) = &logged[base];
            let mut q = q.clone();
            if let Some(t) = drop_term {
                if q.terms.len() > 1 {
                    q.terms.remove(t % q.terms.len());
                }
            }
            if let Some(n) = nonce {
                q.nonce = n;
            }
            if let Some(shift) = shift {
                q.epoch_to = q.epoch_to.saturating_add_signed(shift).max(q.epoch_from + 1);
            }
            let search_log = match other_log {
                None => *log,
                Some(i) => logged.get(i).map_or(Digest([0xee; 32]), |l| l.1),
            };
            let signer = match (other_signer, researcher.public() == r.public()) {
                (false, _) => researcher,
                (true, true) => &r2,
                (true, false) => &r,
            };
            let request = TokenRequest::sign(signer, &w.chain_id, search_log, q);
            match service.issue(&w.state, &w.chain_id, &request, NOW_MS + later_ms) {
                Ok(response) => {
                    oks.set(oks.get() + 1);
                    let entry = w.state.search_log(&request.search_log);
                    prop_assert!(entry.is_some(), "keys issued for a search log not on chain");
                    let entry = entry.unwrap();
                    prop_assert_eq!(entry.log.query_digest, request.query.digest());
                    prop_assert_eq!(entry.researcher, request.researcher);
                    prop_assert_eq!(entry.log.hospital, w.a.public());
                    prop_assert_eq!(u64::from(entry.log.term_count), request.query.terms.len() as u64);
                    prop_assert_eq!(response.keys.len() as u64, request.query.key_count());
                    prop_assert!(request.query.epoch_to <= service.first_open_epoch(NOW_MS + later_ms));
                }
                Err(_) => errs.set(errs.get() + 1),
            }
            Ok(())
        })
        .unwrap();
    // Both branches ran, so the property was exercised on issued keys.
    assert!(oks.get() > 0 && errs.get() > 0, "{} issued, {} refused", oks.get(), errs.get());
}

#[test]
fn state_finds_search_logs_by_id_and_only_committed_ones() {
    let mut w = World::new();
    let first = w.log(&w.r.clone(), &w.query_a(&TERMS, 1, 2));
    let q = w.query_a(&TERMS, 1, 1);
    let pending = w.search_log_tx(&w.r.clone(), &q, 3);
    assert!(w.state.search_log(&pending.id()).is_none());
    w.commit(vec![pending.clone()]);
    let (a, b) = (w.state.search_log(&first).unwrap(), w.state.search_log(&pending.id()).unwrap());
    assert_eq!((a.tx, b.tx), (first, pending.id()));
    assert_eq!(b.log.query_digest, q.digest());
    assert_eq!(w.state.search_logs().len(), 2);
    assert!(w.state.search_log(&w.auth_a).is_none(), "an authorization is no search log");
}
