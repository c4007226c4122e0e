//! Storage behaviour, written once and run against both implementations; persistence and
//! corruption for redb.

use engine::block::{Block, BlockHeader, CommitCertificate, CommittedBlock};
use engine::codec::Digest;
use engine::crypto::{ChainId, SigningKey};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use engine::state::{Outcome, Receipt, TxError};
use engine::storage::{MemStorage, RedbStorage, Storage, StorageError, TxLocation};
use engine::tx::{Enroll, Payload, Role, Transaction, TxBody};
use std::path::Path;

fn genesis() -> Genesis {
    let ca = SigningKey::from_seed([200; 32]);
    GenesisBody {
        chain_id: ChainId::new("storage-test").unwrap(),
        created_at_ms: 1_000,
        ca_key: ca.public(),
        validators: vec![NodeInfo { name: "node0".into(), key: SigningKey::from_seed([1; 32]).public() }],
        auditors: vec![],
        params: ChainParams::default(),
    }
    .sign(&ca)
}

fn tx(n: u64) -> Transaction {
    let k = SigningKey::from_seed([1; 32]);
    let payload = Payload::Enroll(Enroll {
        key: SigningKey::from_seed([n as u8; 32]).public(),
        role: Role::Patient,
        name: format!("p{n}"),
    });
    TxBody { sender: k.public(), nonce: n, expiry_height: 100, payload }
        .sign(&ChainId::new("storage-test").unwrap(), &[&k])
}

/// Block `height` after `prev`, with `txs`, and a certificate for it (not signed: storage does
/// not check signatures).
fn committed(height: u64, prev: Digest, txs: Vec<Transaction>) -> (CommittedBlock, Vec<Receipt>) {
    let mut block = Block {
        header: BlockHeader {
            chain_id: ChainId::new("storage-test").unwrap(),
            height,
            view: 0,
            prev_hash: prev,
            timestamp_ms: 1_000 + height,
            tx_root: Digest::ZERO,
            tx_count: txs.len() as u32,
            proposer: 0,
        },
        txs,
    };
    block.header.tx_root = block.compute_tx_root();
    let receipts = block
        .txs
        .iter()
        .enumerate()
        .map(|(i, t)| Receipt {
            tx: t.id(),
            outcome: if i == 1 { Outcome::Rejected(TxError::Conflict("test".into())) } else { Outcome::Applied },
        })
        .collect();
    let certificate = CommitCertificate { view: 0, height, block_hash: block.hash(), votes: vec![] };
    (CommittedBlock { block, certificate }, receipts)
}

/// Stores the genesis and `n` blocks of two transactions each; returns them.
fn build(s: &mut dyn Storage, n: u64) -> Vec<(CommittedBlock, Vec<Receipt>)> {
    let g = genesis();
    s.put_genesis(&g).unwrap();
    let mut prev = g.hash();
    let mut out = Vec::new();
    for h in 1..=n {
        let (c, r) = committed(h, prev, vec![tx(2 * h - 1), tx(2 * h)]);
        s.commit_block(&c, &r).unwrap();
        prev = c.block.hash();
        out.push((c, r));
    }
    out
}

fn misuse<T: std::fmt::Debug>(r: Result<T, StorageError>) -> String {
    match r {
        Err(StorageError::Misuse(m)) => m,
        other => panic!("expected Misuse, got {other:?}"),
    }
}

/// The whole behaviour, for any implementation.
fn check_chain_behaviour(s: &mut dyn Storage) {
    assert!(s.genesis().unwrap().is_none());
    assert!(s.head().unwrap().is_none());
    let (early, early_r) = committed(1, Digest::ZERO, vec![]);
    assert!(misuse(s.commit_block(&early, &early_r)).contains("put_genesis"));

    let chain = build(s, 3);
    let g = genesis();
    assert_eq!(s.genesis().unwrap(), Some(g.clone()));
    assert!(misuse(s.put_genesis(&g)).contains("already"));
    check_contents(s, &chain);
}

fn check_contents(s: &dyn Storage, chain: &[(CommittedBlock, Vec<Receipt>)]) {
    let (last, _) = chain.last().unwrap();
    assert_eq!(s.head().unwrap(), Some((chain.len() as u64, last.block.hash())));
    for (c, r) in chain {
        let h = c.block.header.height;
        assert_eq!(s.block(h).unwrap().as_ref(), Some(c));
        assert_eq!(s.receipts(h).unwrap().as_ref(), Some(r));
        for (i, t) in c.block.txs.iter().enumerate() {
            assert_eq!(s.tx_location(&t.id()).unwrap(), Some(TxLocation { height: h, index: i as u32 }));
        }
    }
    assert!(s.block(0).unwrap().is_none());
    assert!(s.block(chain.len() as u64 + 1).unwrap().is_none());
    assert!(s.receipts(chain.len() as u64 + 1).unwrap().is_none());
    assert!(s.tx_location(&Digest([9; 32])).unwrap().is_none());
}

/// Refused commits leave nothing behind.
fn check_refusals(s: &mut dyn Storage) {
    let chain = build(s, 2);
    let head = s.head().unwrap().unwrap();
    let new_txs = || vec![tx(50), tx(51)];
    let new_ids: Vec<Digest> = new_txs().iter().map(Transaction::id).collect();

    let (skip, r) = committed(4, head.1, new_txs());
    assert!(misuse(s.commit_block(&skip, &r)).contains("does not extend"));
    let (again, r) = committed(2, chain[0].0.block.hash(), new_txs());
    assert!(misuse(s.commit_block(&again, &r)).contains("does not extend"));
    let (fork, r) = committed(3, Digest([7; 32]), new_txs());
    assert!(misuse(s.commit_block(&fork, &r)).contains("prev_hash"));
    let (mut wrong_cert, r) = committed(3, head.1, new_txs());
    wrong_cert.certificate.block_hash = Digest([8; 32]);
    assert!(misuse(s.commit_block(&wrong_cert, &r)).contains("certificate"));
    let (good, r) = committed(3, head.1, new_txs());
    assert!(misuse(s.commit_block(&good, &r[..1])).contains("receipts"));

    assert_eq!(s.head().unwrap(), Some(head));
    assert!(s.block(3).unwrap().is_none() && s.block(4).unwrap().is_none());
    assert!(s.receipts(3).unwrap().is_none());
    assert!(new_ids.iter().all(|id| s.tx_location(id).unwrap().is_none()));
    // The original block 2 is untouched.
    assert_eq!(s.block(2).unwrap().as_ref(), Some(&chain[1].0));

    // And the right block still goes in afterwards.
    s.commit_block(&good, &r).unwrap();
    assert_eq!(s.head().unwrap(), Some((3, good.block.hash())));
    assert_eq!(s.tx_location(&new_ids[1]).unwrap(), Some(TxLocation { height: 3, index: 1 }));
}

fn check_duplicate_tx_keeps_first_location(s: &mut dyn Storage) {
    let chain = build(s, 1);
    let first = chain[0].0.block.txs[0].clone();
    let (c, r) = committed(2, chain[0].0.block.hash(), vec![tx(9), first.clone()]);
    s.commit_block(&c, &r).unwrap();
    assert_eq!(s.tx_location(&first.id()).unwrap(), Some(TxLocation { height: 1, index: 0 }));
}

fn check_consensus_log(s: &mut dyn Storage) {
    assert!(s.consensus_entries().unwrap().is_empty());
    s.put_consensus(b"b/2", b"two").unwrap();
    s.put_consensus(b"a/1", b"one").unwrap();
    s.put_consensus(b"c/3", b"three").unwrap();
    s.put_consensus(b"b/2", b"TWO").unwrap();
    let entries = s.consensus_entries().unwrap();
    let expect = |items: &[(&[u8], &[u8])]| -> Vec<(Vec<u8>, Vec<u8>)> {
        items.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
    };
    assert_eq!(entries, expect(&[(b"a/1", b"one"), (b"b/2", b"TWO"), (b"c/3", b"three")]));
    // Prune keeps the bound itself.
    s.prune_consensus_below(b"b/2").unwrap();
    assert_eq!(s.consensus_entries().unwrap(), expect(&[(b"b/2", b"TWO"), (b"c/3", b"three")]));
    s.prune_consensus_below(b"b/3").unwrap();
    assert_eq!(s.consensus_entries().unwrap(), expect(&[(b"c/3", b"three")]));
    s.prune_consensus_below(b"").unwrap();
    assert_eq!(s.consensus_entries().unwrap().len(), 1);
    s.prune_consensus_below(&[0xff; 4]).unwrap();
    assert!(s.consensus_entries().unwrap().is_empty());
    // Empty key and empty value are fine.
    s.put_consensus(b"", b"").unwrap();
    assert_eq!(s.consensus_entries().unwrap(), expect(&[(b"", b"")]));
}

/// Runs `check` on a fresh storage of each kind.
fn for_each_storage(check: fn(&mut dyn Storage)) {
    check(&mut MemStorage::new());
    let dir = tempfile::tempdir().unwrap();
    check(&mut RedbStorage::open(&dir.path().join("chain.redb")).unwrap());
}

#[test]
fn chain_round_trips() {
    for_each_storage(check_chain_behaviour);
}

#[test]
fn refused_commit_leaves_nothing_behind() {
    for_each_storage(check_refusals);
}

#[test]
fn tx_index_keeps_the_first_occurrence() {
    for_each_storage(check_duplicate_tx_keeps_first_location);
}

#[test]
fn consensus_log_put_replace_prune() {
    for_each_storage(check_consensus_log);
}

#[test]
fn mem_storage_clones_share_data() {
    let mut a = MemStorage::new();
    let b = a.clone();
    let chain = build(&mut a, 2);
    a.put_consensus(b"k", b"v").unwrap();
    drop(a);
    check_contents(&b, &chain);
    assert_eq!(b.consensus_entries().unwrap().len(), 1);
}

#[test]
fn redb_persists_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let chain = {
        let mut s = RedbStorage::open(&path).unwrap();
        let chain = build(&mut s, 3);
        s.put_consensus(b"vote/1", b"x").unwrap();
        s.put_consensus(b"vote/2", b"y").unwrap();
        s.prune_consensus_below(b"vote/2").unwrap();
        chain
    };
    let mut s = RedbStorage::open(&path).unwrap();
    assert_eq!(s.genesis().unwrap(), Some(genesis()));
    check_contents(&s, &chain);
    assert_eq!(s.consensus_entries().unwrap(), vec![(b"vote/2".to_vec(), b"y".to_vec())]);
    // The chain goes on after a reopen.
    let (c, r) = committed(4, chain[2].0.block.hash(), vec![tx(40)]);
    s.commit_block(&c, &r).unwrap();
    drop(s);
    assert_eq!(RedbStorage::open(&path).unwrap().head().unwrap(), Some((4, c.block.hash())));
}

fn overwrite(path: &Path, table: redb::TableDefinition<u64, &[u8]>, key: u64, value: &[u8]) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn redb_reports_undecodable_bytes_as_corrupt_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    build(&mut RedbStorage::open(&path).unwrap(), 2);
    overwrite(&path, redb::TableDefinition::new("blocks"), 2, b"\x01garbage");
    overwrite(&path, redb::TableDefinition::new("receipts"), 1, b"");
    let s = RedbStorage::open(&path).unwrap();
    assert!(s.block(1).unwrap().is_some());
    match s.block(2) {
        Err(StorageError::Corrupt { what, .. }) => assert_eq!(what, "blocks/2"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match s.receipts(1) {
        Err(e @ StorageError::Corrupt { .. }) => assert!(e.to_string().contains("receipts/1"), "{e}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn redb_open_reports_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db");
    std::fs::write(&path, b"this is not a redb file, not at all, but long enough to look like one").unwrap();
    match RedbStorage::open(&path) {
        Err(e @ StorageError::Backend(_)) => assert!(e.to_string().contains("not-a-db"), "{e}"),
        other => panic!("expected a backend error, got {other:?}"),
    }
}
