//! The `medchain` binary end to end: real processes, real QUIC on loopback, real redb.

use std::path::Path;
use std::process::{Command, Output};

fn medchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medchain")).args(args).output().expect("run medchain")
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        text.lines().last().unwrap_or_else(|| panic!("no output; stderr: {}", String::from_utf8_lossy(&out.stderr)));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn init_writes_the_layout_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let out = medchain(&["init", "--validators", "4", "--auditors", "1", "--out", d, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = json(&out);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 5);
    for f in ["consortium.toml", "genesis.bin", "genesis.json", "ca/ca.key", "ca/ca.pem"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    for i in 0..5 {
        for f in ["node.toml", "node.key", "node.pem"] {
            assert!(dir.join(format!("node{i}")).join(f).is_file(), "node{i}/{f} missing");
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("node0/node.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "node keys must not be readable by others");
    }
    let genesis = std::fs::read(dir.join("genesis.bin")).unwrap();
    let again = medchain(&["init", "--validators", "4", "--out", d]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(dir.join("genesis.bin")).unwrap(), genesis, "the failed init changed the genesis");
}

#[test]
fn bad_invocations_fail_with_a_clear_error() {
    let out = medchain(&["init", "--validators", "0", "--out", "/nonexistent/x"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--validators"));
    let out = medchain(&["ledger", "verify", "--data", "/nonexistent/data"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/data"));
    let out = medchain(&["node", "--config", "/nonexistent/node.toml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("node.toml"));
}

/// The demo in miniature: 4 validators and an auditor as processes; load; SIGKILL one validator;
/// the rest keep committing; restarted, it catches up to the same head; every stored chain
/// verifies offline. Then one stored block is tampered with and `ledger verify` names it.
#[test]
fn consortium_commits_survives_a_crash_and_detects_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let d = dir.to_str().unwrap();
    let out = medchain(&["demo", "--dir", d, "--rate", "100", "--duration", "3", "--patients", "4", "--json"]);
    let v = json(&out);
    assert!(out.status.success(), "demo failed: {v}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["heads_agree"], true);
    assert!(v["load_all_up"]["committed"].as_u64().unwrap() > 0);
    assert!(v["load_one_down"]["committed"].as_u64().unwrap() > 0, "the others stopped committing: {v}");
    assert!(v["caught_up_to"].as_u64().unwrap() >= v["height_at_restart"].as_u64().unwrap());
    let verified = v["verified"].as_array().unwrap();
    assert_eq!(verified.len(), 5);
    let heights: Vec<u64> = verified.iter().map(|x| x["height"].as_u64().unwrap()).collect();
    assert!(heights.iter().all(|h| *h >= 2), "{heights:?}");
    // The encrypted searches ran on the restarted validator and agreed with the plaintext
    // evaluation of the same queries over the records the demo wrote.
    let searches = v["search"]["searches"].as_array().unwrap();
    assert_eq!(searches.len(), 3, "{v}");
    for s in searches {
        assert_eq!(s["matches_plaintext"], true, "{s}");
        assert_eq!(s["verified"], true, "{s}");
        assert_eq!(s["count"], s["expected"], "{s}");
    }
    assert!(searches[0]["count"].as_u64().unwrap() > 0, "the demo's first query should find records: {v}");
    // The sharing session: the validators' key, a granted read whose plaintext is the writer's,
    // a refused read after the revocation, and the audit trail.
    assert_eq!(v["key_generation"]["threshold"], 3, "{v}");
    let sh = &v["sharing"];
    assert_eq!(sh["plaintext_matches"], true, "{sh}");
    assert_eq!(sh["refused_after_revoke"], true, "{sh}");
    assert!(sh["refusal"].as_str().unwrap().contains("revoked"), "{sh}");
    assert_eq!(sh["shares_from"].as_array().unwrap().len(), 3, "{sh}");
    let audit: Vec<&str> = sh["audit"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    for what in [" granted ", " read ", " revoked "] {
        assert!(audit.iter().any(|l| l.contains(what)), "no {what:?} in the audit trail: {audit:?}");
    }

    let data = dir.join("node0/data");
    let ok = medchain(&["ledger", "verify", "--data", data.to_str().unwrap(), "--json"]);
    assert!(ok.status.success());
    assert_eq!(json(&ok)["ok"], true);

    let tampered_height = tamper_with_a_transaction(&data);
    let bad = medchain(&["ledger", "verify", "--data", data.to_str().unwrap(), "--json"]);
    assert!(!bad.status.success(), "tampering went unnoticed");
    let r = json(&bad);
    assert_eq!(r["ok"], false);
    assert_eq!(r["height"].as_u64(), Some(tampered_height), "{r}");
}

/// Rewrites one transaction of a stored block through redb itself, as someone with write access
/// to the disk could: the block still decodes, but no longer matches its Merkle root, its
/// certificate or its signatures. Returns the height.
fn tamper_with_a_transaction(data: &Path) -> u64 {
    use engine::block::CommittedBlock;
    use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
    const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
    let db = redb::Database::open(data.join(net::core::CHAIN_DB_FILE)).expect("open the chain");
    let w = db.begin_write().unwrap();
    let height = {
        let mut t = w.open_table(BLOCKS).unwrap();
        let height = (1..=t.len().unwrap())
            .find(|h| {
                let bytes = t.get(h).unwrap().expect("block").value().to_vec();
                !engine::codec::decode::<CommittedBlock>(&bytes, usize::MAX).unwrap().block.txs.is_empty()
            })
            .expect("a block with transactions");
        let bytes = t.get(height).unwrap().unwrap().value().to_vec();
        let mut cb: CommittedBlock = engine::codec::decode(&bytes, usize::MAX).unwrap();
        cb.block.txs[0].body.expiry_height += 1;
        t.insert(height, engine::codec::encode(&cb).as_slice()).unwrap();
        height
    };
    w.commit().unwrap();
    height
}
