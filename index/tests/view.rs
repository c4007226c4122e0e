//! The tantivy view of committed blocks, on real tantivy indexes in temporary folders: what is
//! indexed (applied anchors only), label search and filters, the commit payload and resuming,
//! refusals (gaps, other chains, corrupt folders), and rebuilding from storage.

use engine::block::{Block, BlockHeader, CommitCertificate, CommittedBlock};
use engine::codec::Digest;
use engine::crypto::{ChainId, PublicKey, SigningKey};
use engine::genesis::{ChainParams, Genesis, GenesisBody, NodeInfo};
use engine::state::{Outcome, Receipt, TxError};
use engine::storage::{MemStorage, Storage};
use engine::tx::{AnchorRecord, Enroll, Payload, Role, Transaction, TxBody};
use index::view::{BlockRecords, Filter, Hit, IndexView, IndexedRecord, Label, ViewError, REBUILD_BATCH_BLOCKS};

const P: usize = 4;

fn chain_id() -> ChainId {
    ChainId::new("view-test").unwrap()
}

fn genesis() -> Genesis {
    let ca = SigningKey::from_seed([200; 32]);
    GenesisBody {
        chain_id: chain_id(),
        created_at_ms: 1_000,
        ca_key: ca.public(),
        validators: vec![NodeInfo { name: "node0".into(), key: SigningKey::from_seed([1; 32]).public() }],
        auditors: vec![],
        params: ChainParams::default(),
    }
    .sign(&ca)
}

/// The i-th label of record `n`: distinct across records, as on a real chain.
fn label(n: u64, i: usize) -> Label {
    let mut l = [0u8; 16];
    l[..8].copy_from_slice(&n.to_be_bytes());
    l[8] = i as u8;
    l[15] = 0xAB;
    l
}

fn hospital(h: u8) -> PublicKey {
    SigningKey::from_seed([100 + h; 32]).public()
}

fn record_id(n: u64) -> Digest {
    engine::codec::sha256(&n.to_be_bytes())
}

const DATA_TYPES: [&str; 3] = ["Condition", "Observation", "condition"];

/// What record `n` looks like: hospital n % 3, data type n % 3 (the third differs only in
/// case), created at 10_000 + n, epoch n % 2.
fn anchor(n: u64) -> Transaction {
    let doctor = SigningKey::from_seed([50; 32]);
    let payload = Payload::AnchorRecord(AnchorRecord {
        record_id: record_id(n),
        owner: doctor.public(),
        author: doctor.public(),
        hospital: hospital((n % 3) as u8),
        data_type: DATA_TYPES[(n % 3) as usize].into(),
        created_at_ms: 10_000 + n,
        ciphertext_digest: Digest([7; 32]),
        ciphertext_len: 100,
        blob_locator: format!("blob/{n}"),
        encrypted_data_key: vec![1, 2, 3],
        index_labels: (0..P).map(|i| label(n, i)).collect(),
        epoch: n % 2,
    });
    TxBody { sender: doctor.public(), nonce: n, expiry_height: 1_000_000, payload }.sign(&chain_id(), &[&doctor])
}

fn enroll(n: u64) -> Transaction {
    let ca = SigningKey::from_seed([200; 32]);
    let payload = Payload::Enroll(Enroll {
        key: SigningKey::from_seed([(n % 250) as u8; 32]).public(),
        role: Role::Patient,
        name: format!("p{n}"),
    });
    TxBody { sender: ca.public(), nonce: n, expiry_height: 1_000_000, payload }.sign(&chain_id(), &[&ca])
}

fn rejected() -> Outcome {
    Outcome::Rejected(TxError::Conflict("test".into()))
}

/// A committed block at `height` after `prev` with `txs` and their outcomes (certificate
/// unsigned: nothing here checks it).
fn committed(height: u64, prev: Digest, txs: Vec<(Transaction, Outcome)>) -> (CommittedBlock, Vec<Receipt>) {
    let receipts = txs.iter().map(|(t, o)| Receipt { tx: t.id(), outcome: o.clone() }).collect();
    let txs: Vec<Transaction> = txs.into_iter().map(|(t, _)| t).collect();
    let mut block = Block {
        header: BlockHeader {
            chain_id: chain_id(),
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
    let certificate = CommitCertificate { view: 0, height, block_hash: block.hash(), votes: vec![] };
    (CommittedBlock { block, certificate }, receipts)
}

/// Block `h` of the test chain: anchors 3h (applied), 3h+1 (rejected), an enrolment, 3h+2
/// (applied).
fn block_txs(h: u64) -> Vec<(Transaction, Outcome)> {
    vec![
        (anchor(3 * h), Outcome::Applied),
        (anchor(3 * h + 1), rejected()),
        (enroll(h), Outcome::Applied),
        (anchor(3 * h + 2), Outcome::Applied),
    ]
}

/// The record numbers that block `h` indexes.
fn applied_in(h: u64) -> [u64; 2] {
    [3 * h, 3 * h + 2]
}

/// A storage holding the genesis and blocks 1..=n of the test chain.
fn chain(n: u64) -> (MemStorage, Vec<(CommittedBlock, Vec<Receipt>)>) {
    let mut s = MemStorage::new();
    let g = genesis();
    s.put_genesis(&g).unwrap();
    let mut prev = g.hash();
    let mut out = Vec::new();
    for h in 1..=n {
        let (c, r) = committed(h, prev, block_txs(h));
        s.commit_block(&c, &r).unwrap();
        prev = c.block.hash();
        out.push((c, r));
    }
    (s, out)
}

fn records(chain: &[(CommittedBlock, Vec<Receipt>)]) -> Vec<BlockRecords> {
    chain.iter().map(|(c, r)| BlockRecords::from_committed(c, r).unwrap()).collect()
}

fn ids(hits: &[Hit]) -> Vec<Digest> {
    hits.iter().map(|h| h.record_id).collect()
}

fn hit_of(n: u64, height: u64, tx_index: u32) -> Hit {
    Hit {
        height,
        tx_index,
        record_id: record_id(n),
        hospital: hospital((n % 3) as u8),
        data_type: DATA_TYPES[(n % 3) as usize].into(),
        created_at_ms: 10_000 + n,
        epoch: n % 2,
    }
}

#[test]
fn from_committed_keeps_applied_anchors_with_their_positions() {
    let (c, r) = committed(1, Digest([3; 32]), block_txs(1));
    let b = BlockRecords::from_committed(&c, &r).unwrap();
    assert_eq!(b.height, 1);
    assert_eq!(b.hash, c.block.hash());
    assert_eq!(b.prev_hash, Digest([3; 32]));
    let got: Vec<(Digest, u32)> = b.records.iter().map(|r| (r.record_id, r.tx_index)).collect();
    assert_eq!(got, vec![(record_id(3), 0), (record_id(5), 3)]);
    let first = &b.records[0];
    assert_eq!(
        first,
        &IndexedRecord {
            record_id: record_id(3),
            tx_index: 0,
            hospital: hospital(0),
            data_type: "Condition".into(),
            created_at_ms: 10_003,
            epoch: 1,
            labels: (0..P).map(|i| label(3, i)).collect(),
        }
    );
}

#[test]
fn from_committed_refuses_receipts_that_do_not_match() {
    let (c, mut r) = committed(2, Digest::ZERO, block_txs(2));
    let short = BlockRecords::from_committed(&c, &r[..3]).unwrap_err();
    assert!(matches!(short, ViewError::BadReceipts { height: 2, .. }), "{short}");
    r.swap(0, 1);
    let swapped = BlockRecords::from_committed(&c, &r).unwrap_err();
    assert!(matches!(swapped, ViewError::BadReceipts { height: 2, .. }), "{swapped}");
}

#[test]
fn searches_find_exactly_the_applied_records_carrying_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain) = chain(3);
    let mut view = IndexView::open(dir.path()).unwrap();
    assert_eq!(view.indexed(), None);
    assert_eq!(view.apply_blocks(&records(&chain)).unwrap(), 6);
    assert_eq!(view.num_records(), 6);

    // Any one label of a record finds it, with its position and public metadata.
    for h in 1..=3 {
        for (n, tx_index) in applied_in(h).into_iter().zip([0, 3]) {
            for i in 0..P {
                assert_eq!(view.find_labels(&[label(n, i)]).unwrap(), vec![hit_of(n, h, tx_index)]);
                assert!(view.has_label(&label(n, i)).unwrap());
            }
        }
    }
    // Several labels: the union, each record once, in chain order.
    let hits = view.find_labels(&[label(11, 2), label(3, 0), label(3, 1), label(8, 3)]).unwrap();
    assert_eq!(ids(&hits), vec![record_id(3), record_id(8), record_id(11)]);
    // Rejected anchors are not indexed.
    for h in 1..=3 {
        let n = 3 * h + 1;
        assert!(view.find_labels(&[label(n, 0), label(n, 3)]).unwrap().is_empty());
        assert!(!view.has_label(&label(n, 0)).unwrap());
        assert!(view.find_filtered(&Filter::default()).unwrap().iter().all(|hit| hit.record_id != record_id(n)));
    }
    // Unknown labels, a prefix of a label, no labels.
    assert!(view.find_labels(&[[0xEE; 16]]).unwrap().is_empty());
    assert!(!view.has_label(&[0xEE; 16]).unwrap());
    assert!(view.find_labels(&[]).unwrap().is_empty());
    assert_eq!(view.find_filtered(&Filter::default()).unwrap().len(), 6);
}

#[test]
fn the_commit_payload_lets_a_reopened_view_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain) = chain(5);
    let all = records(&chain);
    {
        let mut view = IndexView::open(dir.path()).unwrap();
        view.apply_blocks(&all[..2]).unwrap();
        view.apply_blocks(&all[2..3]).unwrap();
        assert_eq!(view.indexed(), Some((3, all[2].hash)));
    }
    let mut view = IndexView::open(dir.path()).unwrap();
    assert_eq!(view.indexed(), Some((3, all[2].hash)));
    assert_eq!(view.indexed_height(), 3);
    assert_eq!(view.num_records(), 6);

    // A replay of indexed heights is skipped; the rest is indexed once.
    assert_eq!(view.apply_blocks(&all[1..4]).unwrap(), 2);
    assert_eq!(view.indexed(), Some((4, all[3].hash)));
    assert_eq!(view.num_records(), 8);
    assert_eq!(view.apply_blocks(&all[..4]).unwrap(), 0);
    assert_eq!(view.apply_blocks(&[]).unwrap(), 0);
    assert_eq!(view.num_records(), 8);
    assert_eq!(view.find_labels(&[label(9, 0)]).unwrap().len(), 1);

    // A block without records still advances the indexed height.
    let (empty, empty_r) = committed(5, all[3].hash, vec![(enroll(99), Outcome::Applied)]);
    let empty = BlockRecords::from_committed(&empty, &empty_r).unwrap();
    assert!(empty.records.is_empty());
    assert_eq!(view.apply_blocks(std::slice::from_ref(&empty)).unwrap(), 0);
    drop(view);
    let view = IndexView::open(dir.path()).unwrap();
    assert_eq!(view.indexed(), Some((5, empty.hash)));
    assert_eq!(view.num_records(), 8);
}

#[test]
fn gaps_disorder_and_other_chains_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain) = chain(6);
    let all = records(&chain);
    let mut view = IndexView::open(dir.path()).unwrap();

    // Nothing indexed: the first block must be height 1.
    let err = view.apply_blocks(&all[1..3]).unwrap_err();
    assert!(matches!(err, ViewError::Gap { indexed: 0, expected: 1, got: 2 }), "{err}");
    assert_eq!(view.indexed(), None);
    assert_eq!(view.num_records(), 0);

    view.apply_blocks(&all[..2]).unwrap();
    let before = view.find_filtered(&Filter::default()).unwrap();

    // A gap, even after a good block in the same batch: the whole batch is refused.
    let err = view.apply_blocks(&[all[2].clone(), all[4].clone()]).unwrap_err();
    assert!(matches!(err, ViewError::Gap { indexed: 2, expected: 4, got: 5 }), "{err}");
    // Out of order within a batch.
    let err = view.apply_blocks(&[all[3].clone(), all[2].clone()]).unwrap_err();
    assert!(matches!(err, ViewError::Gap { expected: 3, got: 4, .. }), "{err}");
    let err = view.apply_blocks(&[all[2].clone(), all[3].clone(), all[2].clone()]).unwrap_err();
    assert!(matches!(err, ViewError::Gap { expected: 5, got: 3, .. }), "{err}");
    // A block at the indexed height with another hash, or a next block linking elsewhere.
    let mut forked = all[1].clone();
    forked.hash = Digest([9; 32]);
    let err = view.apply_blocks(&[forked, all[2].clone()]).unwrap_err();
    assert!(matches!(err, ViewError::ChainMismatch { height: 2, .. }), "{err}");
    let mut unlinked = all[2].clone();
    unlinked.prev_hash = Digest([9; 32]);
    let err = view.apply_blocks(&[unlinked]).unwrap_err();
    assert!(matches!(err, ViewError::ChainMismatch { height: 2, .. }), "{err}");
    let mut broken = all[3].clone();
    broken.prev_hash = Digest([9; 32]);
    let err = view.apply_blocks(&[all[2].clone(), broken]).unwrap_err();
    assert!(matches!(err, ViewError::ChainMismatch { height: 3, .. }), "{err}");

    assert_eq!(view.indexed(), Some((2, all[1].hash)));
    assert_eq!(view.find_filtered(&Filter::default()).unwrap(), before);
    assert!(!view.has_label(&label(9, 0)).unwrap());
    drop(view);
    let mut view = IndexView::open(dir.path()).unwrap();
    assert_eq!(view.indexed(), Some((2, all[1].hash)));
    assert_eq!(view.find_filtered(&Filter::default()).unwrap(), before);
    // And the good continuation still applies.
    view.apply_blocks(&all[2..]).unwrap();
    assert_eq!(view.indexed(), Some((6, all[5].hash)));
    assert_eq!(view.num_records(), 12);
}

#[test]
fn filters_restrict_by_hospital_data_type_creation_time_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain) = chain(4);
    let mut view = IndexView::open(dir.path()).unwrap();
    view.apply_blocks(&records(&chain)).unwrap();
    // Applied records: 3, 5, 6, 8, 9, 11, 12, 14.
    let applied: Vec<u64> = (1..=4).flat_map(applied_in).collect();
    let labels: Vec<Label> = applied.iter().map(|&n| label(n, 1)).collect();
    let expect = |keep: &dyn Fn(u64) -> bool| -> Vec<Digest> {
        applied.iter().copied().filter(|&n| keep(n)).map(record_id).collect()
    };
    let check = |filter: Filter, keep: &dyn Fn(u64) -> bool| {
        assert_eq!(ids(&view.find_labels_filtered(&labels, &filter).unwrap()), expect(keep), "{filter:?}");
        assert_eq!(ids(&view.find_filtered(&filter).unwrap()), expect(keep), "{filter:?}");
    };

    check(Filter::default(), &|_| true);
    check(Filter { hospitals: vec![hospital(1)], ..Filter::default() }, &|n| n % 3 == 1);
    check(Filter { hospitals: vec![hospital(0), hospital(2)], ..Filter::default() }, &|n| n % 3 != 1);
    check(Filter { hospitals: vec![hospital(7)], ..Filter::default() }, &|_| false);
    // Data types are exact: "Condition" does not match "condition".
    check(Filter { data_types: vec!["Condition".into()], ..Filter::default() }, &|n| n % 3 == 0);
    check(Filter { data_types: vec!["condition".into(), "Observation".into()], ..Filter::default() }, &|n| n % 3 != 0);
    check(Filter { data_types: vec!["Cond".into()], ..Filter::default() }, &|_| false);
    check(Filter { created_from_ms: Some(10_006), ..Filter::default() }, &|n| n >= 6);
    check(Filter { created_before_ms: Some(10_009), ..Filter::default() }, &|n| n < 9);
    check(Filter { created_from_ms: Some(10_005), created_before_ms: Some(10_012), ..Filter::default() }, &|n| {
        (5..12).contains(&n)
    });
    check(Filter { created_from_ms: Some(10_012), created_before_ms: Some(10_012), ..Filter::default() }, &|_| false);
    check(Filter { epochs: vec![0], ..Filter::default() }, &|n| n % 2 == 0);
    check(
        Filter {
            hospitals: vec![hospital(0), hospital(2)],
            data_types: vec!["Condition".into()],
            created_from_ms: Some(10_004),
            created_before_ms: None,
            epochs: vec![0, 1],
        },
        &|n| n % 3 == 0 && n >= 4,
    );
    // The filter narrows the label search, it does not widen it.
    let filter = Filter { hospitals: vec![hospital(0)], ..Filter::default() };
    assert_eq!(ids(&view.find_labels_filtered(&[label(3, 0), label(5, 0)], &filter).unwrap()), vec![record_id(3)]);
    assert!(view.find_labels_filtered(&[], &filter).unwrap().is_empty());
}

#[test]
fn rebuild_from_storage_matches_incremental_indexing_and_reports_progress() {
    let blocks = 2 * REBUILD_BATCH_BLOCKS + 10;
    let (storage, chain) = chain(blocks);
    let all = records(&chain);

    let incremental_dir = tempfile::tempdir().unwrap();
    let mut incremental = IndexView::open(incremental_dir.path()).unwrap();
    for batch in all.chunks(37) {
        incremental.apply_blocks(batch).unwrap();
    }

    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("index");
    // Rebuild over an existing, partial index (which also holds a stale record count).
    {
        let mut stale = IndexView::open(&dir).unwrap();
        stale.apply_blocks(&all[..3]).unwrap();
    }
    let mut calls = Vec::new();
    let rebuilt = IndexView::rebuild(&storage, &dir, |done, total| calls.push((done, total))).unwrap();
    assert_eq!(calls, vec![(0, blocks), (256, blocks), (512, blocks), (blocks, blocks)]);
    assert_eq!(rebuilt.indexed(), incremental.indexed());
    assert_eq!(rebuilt.indexed(), Some((blocks, all.last().unwrap().hash)));
    assert_eq!(rebuilt.num_records(), 2 * blocks);
    assert_eq!(
        rebuilt.find_filtered(&Filter::default()).unwrap(),
        incremental.find_filtered(&Filter::default()).unwrap()
    );
    for n in [3, 4, 100, 3 * blocks + 2, 3 * blocks + 3] {
        let labels = [label(n, 0), label(n + 1, 3)];
        assert_eq!(rebuilt.find_labels(&labels).unwrap(), incremental.find_labels(&labels).unwrap());
    }
    let filter = Filter { hospitals: vec![hospital(2)], created_before_ms: Some(10_500), ..Filter::default() };
    assert_eq!(rebuilt.find_filtered(&filter).unwrap(), incremental.find_filtered(&filter).unwrap());
    drop(rebuilt);
    assert_eq!(IndexView::open(&dir).unwrap().indexed(), Some((blocks, all.last().unwrap().hash)));
}

#[test]
fn catch_up_resumes_from_the_indexed_height_and_checks_the_chain() {
    let (storage, chain) = chain(5);
    let all = records(&chain);
    let dir = tempfile::tempdir().unwrap();
    let mut view = IndexView::open(dir.path()).unwrap();
    view.apply_blocks(&all[..2]).unwrap();
    let mut calls = Vec::new();
    assert_eq!(view.catch_up(&storage, |d, t| calls.push((d, t))).unwrap(), 3);
    assert_eq!(calls, vec![(0, 3), (3, 3)]);
    assert_eq!(view.indexed(), Some((5, all[4].hash)));
    assert_eq!(view.num_records(), 10);
    // Up to date: nothing to do.
    assert_eq!(view.catch_up(&storage, |_, _| {}).unwrap(), 0);

    // Another chain whose block 5 differs.
    let mut other = MemStorage::new();
    let g = genesis();
    other.put_genesis(&g).unwrap();
    let mut prev = g.hash();
    for h in 1..=6 {
        let (c, r) = committed(h, prev, vec![(anchor(1000 + h), Outcome::Applied)]);
        other.commit_block(&c, &r).unwrap();
        prev = c.block.hash();
    }
    let err = view.catch_up(&other, |_, _| {}).unwrap_err();
    assert!(matches!(err, ViewError::ChainMismatch { height: 5, .. }), "{err}");
    assert!(err.to_string().contains("medchain index rebuild"), "{err}");
    // A shorter chain than the index.
    let (short, _) = self::chain(3);
    let err = view.catch_up(&short, |_, _| {}).unwrap_err();
    assert!(matches!(err, ViewError::Corrupt { .. }), "{err}");
    assert_eq!(view.indexed(), Some((5, all[4].hash)));
    assert_eq!(view.num_records(), 10);
}

#[test]
fn rebuild_of_an_empty_chain_and_refusal_to_delete_foreign_folders() {
    let root = tempfile::tempdir().unwrap();
    let mut calls = Vec::new();
    let view = IndexView::rebuild(&MemStorage::new(), root.path().join("fresh"), |d, t| calls.push((d, t))).unwrap();
    assert_eq!(view.indexed(), None);
    assert_eq!(view.num_records(), 0);
    assert_eq!(calls, vec![(0, 0)]);

    let foreign = root.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("precious.txt"), b"keep me").unwrap();
    let (storage, _) = chain(1);
    let err = IndexView::rebuild(&storage, &foreign, |_, _| {}).unwrap_err();
    assert!(matches!(err, ViewError::NotAnIndex { .. }), "{err}");
    assert_eq!(std::fs::read(foreign.join("precious.txt")).unwrap(), b"keep me");
}

#[test]
fn a_corrupt_commit_payload_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let (_, chain) = chain(2);
    IndexView::open(dir.path()).unwrap().apply_blocks(&records(&chain)).unwrap();

    let meta_path = dir.path().join("meta.json");
    let original = std::fs::read_to_string(&meta_path).unwrap();
    for payload in [
        serde_json::json!("not json"),
        serde_json::json!(r#"{"version":1,"height":2,"hash":"zz"}"#),
        serde_json::json!(r#"{"version":99,"height":2,"hash":"00"}"#),
        serde_json::json!(null),
    ] {
        let mut meta: serde_json::Value = serde_json::from_str(&original).unwrap();
        meta["payload"] = payload.clone();
        std::fs::write(&meta_path, serde_json::to_string(&meta).unwrap()).unwrap();
        let err = IndexView::open(dir.path()).unwrap_err();
        assert!(matches!(err, ViewError::Corrupt { .. }), "{payload}: {err}");
        let message = err.to_string();
        assert!(message.contains(&dir.path().display().to_string()), "{message}");
        assert!(message.contains("medchain index rebuild"), "{message}");
    }
    std::fs::write(&meta_path, original).unwrap();
    assert_eq!(IndexView::open(dir.path()).unwrap().indexed_height(), 2);
}

#[test]
fn a_folder_has_one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = IndexView::open(dir.path()).unwrap();
    let err = IndexView::open(dir.path()).unwrap_err();
    assert!(matches!(err, ViewError::Tantivy { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
}
