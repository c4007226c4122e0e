//! An encrypted search session through the `medchain` binary, as the README shows it: real node
//! processes on loopback QUIC, real redb and tantivy in a temporary folder.
//!
//! A consortium of 4 hospitals and an auditor; node0 and node1 import synthetic FHIR bundles
//! (labels from their own nodes); a researcher is enrolled and authorised; searches on the
//! auditor return exactly what a plaintext evaluation of the same queries over the same records
//! returns, with every proof checked; the token service refuses requests without a committed
//! authorization and for another hospital's domain; every key handed out has its SearchLog on
//! chain; `index rebuild` rebuilds the auditor's index; and no keyword of the corpus appears as
//! bytes anywhere in any node's folder.

use engine::codec::Digest;
use engine::crypto::SigningKey;
use index::keywords::{extract_value, ExtractContext, FhirDate};
use index::query::{evaluate, parse, term_set, PlainRecord, PublicMeta};
use index::tokens::{TermRef, TokenQuery, TokenRequest};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const EPOCH_LEN_MS: u64 = 1_500;
const PATIENTS: u64 = 4;

fn medchain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medchain")).args(args).output().expect("run medchain")
}

fn json_ok(out: &Output, what: &str) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{what} failed: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().last().unwrap_or_else(|| panic!("{what}: no output"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {stdout}"))
}

/// A plain HTTP/1.1 request on loopback; returns (status, JSON body).
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> std::io::Result<(u16, Value)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let payload = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, serde_json::from_str(payload).unwrap_or(Value::Null)))
}

/// Node processes, killed when dropped.
struct Nodes(Vec<Option<Child>>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.0.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(dir: &Path, name: &str) -> Child {
    let nd = dir.join(name);
    let log = std::fs::File::create(nd.join("node.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["node", "--config"])
        .arg(nd.join("node.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn stop(child: &mut Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A base port with 10 free ports above it (QUIC and HTTP for 5 nodes), probed just before use.
fn free_base_port() -> u16 {
    let seed = std::process::id() as u16;
    for attempt in 0..200u16 {
        let base = 20_000 + (seed.wrapping_mul(31).wrapping_add(attempt.wrapping_mul(97)) % 40_000);
        let free = (0..10).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", base + i)).is_ok()
        });
        if free {
            return base;
        }
    }
    panic!("no free port range found");
}

/// Writes the bundles of patients `ids` into `folder`; returns the records they make, in
/// plaintext, as `client import` derives them (one per indexed resource).
fn write_bundles(folder: &Path, ids: impl Iterator<Item = u64>) -> Vec<(BTreeSet<(String, String)>, String)> {
    std::fs::create_dir_all(folder).unwrap();
    let opts = index::synth::SynthOptions { seed: 7, patients: PATIENTS as usize, start_year: 2019, end_year: 2025 };
    let mut records = Vec::new();
    for i in ids {
        let b = index::synth::patient(opts.seed, i, &opts);
        std::fs::write(folder.join(format!("p{i}.json")), serde_json::to_vec(&b.bundle).unwrap()).unwrap();
        let entries = b.bundle["entry"].as_array().unwrap();
        let birth = entries
            .iter()
            .find(|e| e["resource"]["resourceType"] == "Patient")
            .and_then(|e| e["resource"]["birthDate"].as_str())
            .and_then(|d| FhirDate::parse(d).ok());
        for e in entries {
            let r = &e["resource"];
            if !index::keywords::RESOURCE_TYPES.contains(&r["resourceType"].as_str().unwrap_or("")) {
                continue;
            }
            let x = extract_value(r, &ExtractContext { birth_date: birth }).unwrap();
            records.push((term_set(&x.terms), x.resource_type));
        }
    }
    records
}

#[test]
fn a_researcher_searches_encrypted_indexes_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let base = free_base_port().to_string();
    let epoch = EPOCH_LEN_MS.to_string();
    json_ok(
        &medchain(&[
            "init",
            "--validators",
            "4",
            "--auditors",
            "1",
            "--out",
            d,
            "--base-port",
            &base,
            "--epoch-len-ms",
            &epoch,
            "--json",
        ]),
        "init",
    );
    let names = ["node0", "node1", "node2", "node3", "node4"];
    let mut nodes = Nodes(names.iter().map(|n| Some(start(&dir, n))).collect());
    let base: u16 = base.parse().unwrap();
    let http_of = |i: u16| -> SocketAddr { ([127, 0, 0, 1], base + 2 * i + 1).into() };
    for i in 0..5 {
        wait_until("the nodes to answer", Duration::from_secs(60), || {
            http(http_of(i), "GET", "/v1/status", None).is_ok_and(|(s, _)| s == 200)
        });
    }

    // Two hospitals write records.
    let plain0 = write_bundles(&dir.join("b0"), (0..PATIENTS).filter(|i| i % 2 == 0));
    let plain1 = write_bundles(&dir.join("b1"), (0..PATIENTS).filter(|i| i % 2 == 1));
    let mut max_epoch = 0;
    for (hospital, folder, plain) in [("node0", "b0", &plain0), ("node1", "b1", &plain1)] {
        let f = dir.join(folder);
        let rep = json_ok(
            &medchain(&[
                "client",
                "import",
                "--consortium",
                d,
                "--hospital",
                hospital,
                "--fhir",
                f.to_str().unwrap(),
                "--json",
            ]),
            "client import",
        );
        assert_eq!(rep["records"].as_u64().unwrap() as usize, plain.len(), "{rep}");
        assert_eq!(rep["labels_per_record"], 32);
        max_epoch = max_epoch.max(rep["epochs"].as_array().unwrap().iter().map(|e| e.as_u64().unwrap()).max().unwrap());
    }

    // The researcher: enrolled by the CA; not yet authorised.
    let key_file = dir.join("alice.key");
    let alice = json_ok(
        &medchain(&[
            "researcher",
            "enroll",
            "--consortium",
            d,
            "--name",
            "alice",
            "--out",
            key_file.to_str().unwrap(),
            "--json",
        ]),
        "researcher enroll",
    );
    let k = key_file.to_str().unwrap();
    let refused = medchain(&["search", "--consortium", d, "--key", k, "--hospital", "node0", "icd10:E11", "--json"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has not authorised"), "{refused:?}");

    // The token service itself refuses without a committed authorization, and for another
    // hospital's domain.
    let researcher = read_seed(&key_file);
    let genesis: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("genesis.json")).unwrap()).unwrap();
    let chain = engine::crypto::ChainId::new(genesis["body"]["chain_id"].as_str().unwrap()).unwrap();
    let hospital_key = |i: usize| {
        engine::crypto::PublicKey::from_hex(genesis["body"]["validators"][i]["key"].as_str().unwrap()).unwrap()
    };
    let token_request = |hospital, authorization| {
        let q = TokenQuery {
            hospital,
            authorization,
            terms: vec![TermRef { field: "icd10".into(), value: "E11".into() }],
            epoch_from: 0,
            epoch_to: 1,
            nonce: [7; 16],
        };
        serde_json::to_value(TokenRequest::sign(&researcher, &chain, Digest([9; 32]), q)).unwrap()
    };
    let (status, body) =
        http(http_of(0), "POST", "/v1/index/tokens", Some(&token_request(hospital_key(0), Digest([1; 32])))).unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "unknown_authorization", "{body}");
    let (status, body) =
        http(http_of(0), "POST", "/v1/index/tokens", Some(&token_request(hospital_key(1), Digest([1; 32])))).unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "wrong_domain", "{body}");

    // Authorised by both hospitals.
    for h in ["node0", "node1"] {
        json_ok(
            &medchain(&[
                "researcher",
                "authorize",
                "--consortium",
                d,
                "--hospital",
                h,
                "--researcher-key",
                k,
                "--purpose",
                "test cohort",
                "--json",
            ]),
            "researcher authorize",
        );
    }
    // Records become searchable once their epoch has closed.
    wait_until("the records' epochs to close", Duration::from_secs(30), || {
        http(http_of(0), "GET", "/v1/status", None)
            .is_ok_and(|(_, v)| v["index"]["domain"]["first_open_epoch"].as_u64().unwrap_or(0) > max_epoch)
    });
    // The auditor indexes what the validators committed.
    let head = http(http_of(0), "GET", "/v1/status", None).unwrap().1["height"].as_u64().unwrap();
    wait_until("the auditor's index to catch up", Duration::from_secs(30), || {
        http(http_of(4), "GET", "/v1/status", None)
            .is_ok_and(|(_, v)| v["index"]["indexed_height"].as_u64().unwrap_or(0) >= head)
    });

    let h0 = hospital_key(0);
    let h1 = hospital_key(1);
    let plain: Vec<PlainRecord<usize>> = plain0
        .iter()
        .map(|r| (r, h0))
        .chain(plain1.iter().map(|r| (r, h1)))
        .enumerate()
        .map(|(i, ((terms, t), h))| PlainRecord {
            id: i,
            terms: terms.clone(),
            // Created-at plays no part in these queries.
            meta: PublicMeta { hospital: h, resource_type: t.clone(), created_at_ms: 0 },
        })
        .collect();
    let mut logs = Vec::new();
    let queries =
        ["icd10:E11", "icd10:I10 OR icd10:E78", "loinc:4548-4>7 AND NOT icd10:E11", "type:Observation AND year:2024"];
    let mut found_any = false;
    for q in queries {
        let out =
            json_ok(&medchain(&["search", "--consortium", d, "--key", k, "--node", "node4", q, "--json"]), "search");
        let expected = evaluate(&parse(q).unwrap(), &plain).len();
        assert_eq!(out["count"].as_u64().unwrap() as usize, expected, "{q}: {out}");
        assert_eq!(out["records"].as_array().unwrap().len(), expected, "{q}");
        assert_eq!(out["verified"], true);
        found_any |= expected > 0;
        logs.extend(out["search_logs"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()));
    }
    assert!(found_any, "the corpus should match some query");
    // Every key handed out has its SearchLog on chain (the token service checked it; the chain
    // shows it to anyone).
    assert_eq!(logs.len(), 2 * queries.len());
    for id in &logs {
        let (_, v) = http(http_of(2), "GET", &format!("/v1/transactions/{id}"), None).unwrap();
        assert_eq!(v["status"], "committed", "SearchLog {id}: {v}");
    }
    let _ = alice;

    // Record sharing, command by command as the README shows it: the patient grants alice one
    // record; alice reads it through the validators' shares; the patient revokes; alice's next
    // read is refused; the patient rotates their key; the audit trail shows it all.
    let patients_dir = dir.join("clients/node0/patients");
    let patient_file = files_under(&patients_dir).into_iter().next().expect("a patient key");
    let p = patient_file.to_str().unwrap();
    let client = |args: &[&str]| {
        let mut all = vec!["client", args[0], "--consortium", d];
        all.extend_from_slice(&args[1..]);
        all.push("--json");
        medchain(&all)
    };
    let trail = json_ok(&client(&["audit", "--patient", p]), "client audit");
    let records: Vec<String> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"]["anchored"]["record"].as_str().map(str::to_owned))
        .collect();
    assert!(records.len() >= 2, "{trail}");
    let (r0, r1) = (records[0].as_str(), records[1].as_str());
    let grant = json_ok(
        &client(&["grant", "--patient-key", p, "--grantee", k, "--records", r0, "--purpose", "follow-up"]),
        "client grant",
    );
    let g = grant["grant"].as_str().unwrap().to_string();
    let read = json_ok(&client(&["read", "--key", k, "--record", r0, "--grant", &g]), "client read");
    let body: Value = serde_json::from_str(read["plaintext"].as_str().unwrap()).expect("the body is the FHIR resource");
    let (_, anchor) = http(http_of(0), "GET", &format!("/v1/records/{r0}"), None).unwrap();
    assert_eq!(body["resourceType"], anchor["data_type"], "{body}");
    assert_eq!(read["shares_from"].as_array().unwrap().len(), 3, "t = 3 of 4: {read}");
    assert!(read["bad_shares"].as_array().unwrap().is_empty(), "{read}");
    // Outside the grant: another record of the same patient.
    let outside = client(&["read", "--key", k, "--record", r1, "--grant", &g]);
    assert!(!outside.status.success());
    assert!(String::from_utf8_lossy(&outside.stderr).contains("does not cover"), "{outside:?}");
    // The owner reads without a grant, to a file.
    let out_file = dir.join("r0.json");
    let own = json_ok(
        &client(&["read", "--key", p, "--record", r0, "--out", out_file.to_str().unwrap()]),
        "client read (owner)",
    );
    assert_eq!(own["plaintext_len"].as_u64().unwrap() as usize, std::fs::read(&out_file).unwrap().len());
    json_ok(&client(&["revoke", "--patient-key", p, "--grant", &g]), "client revoke");
    let refused = client(&["read", "--key", k, "--record", r0, "--grant", &g]);
    assert!(!refused.status.success(), "a read after the revocation succeeded");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"), "{refused:?}");
    // Key rotation: the old key is done, the new one owns the records.
    let new_key = dir.join("patient-new.key");
    let nk = new_key.to_str().unwrap();
    json_ok(&client(&["rotate-key", "--patient-key", p, "--new-key-out", nk]), "client rotate-key");
    let old = client(&["read", "--key", p, "--record", r0]);
    assert!(String::from_utf8_lossy(&old.stderr).contains("rotated"), "{old:?}");
    json_ok(&client(&["read", "--key", nk, "--record", r0]), "client read (new key)");
    let trail = json_ok(&client(&["audit", "--patient", nk]), "client audit (new key)");
    let kinds: Vec<String> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_object().and_then(|o| o.keys().next().cloned()))
        .filter(|k| k != "anchored")
        .collect();
    assert_eq!(kinds, ["granted", "read", "read", "revoked", "key_rotated", "read"], "{trail}");
    let alice_key = read_seed(&key_file).public().to_hex();
    assert_eq!(trail["events"].as_array().unwrap().iter().filter(|e| e["actor"] == alice_key.as_str()).count(), 1);

    // The auditor's index, rebuilt from its chain, holds every record.
    stop(nodes.0[4].as_mut().unwrap());
    nodes.0[4] = None;
    let data4 = dir.join("node4/data");
    let rebuilt =
        json_ok(&medchain(&["index", "rebuild", "--data", data4.to_str().unwrap(), "--json"]), "index rebuild");
    assert_eq!(rebuilt["records"].as_u64().unwrap() as usize, plain.len(), "{rebuilt}");

    // Nothing plaintext in any node's folder: no code, text term or date of the corpus.
    for c in nodes.0.iter_mut().flatten() {
        stop(c);
    }
    let mut needles: BTreeSet<String> = BTreeSet::new();
    for (terms, _) in plain0.iter().chain(&plain1) {
        for (_, value) in terms {
            // Codes, dates and value bands (anything with a digit) of 5 bytes or more, and words of
            // 8 letters or more: shorter ones occur by chance in binary data, and short English
            // words ("count", "change") in file formats' own metadata.
            let has_digit = value.bytes().any(|b| b.is_ascii_digit());
            if (has_digit && value.len() >= 5) || value.len() >= 8 {
                needles.insert(value.clone());
            }
        }
    }
    assert!(needles.len() > 20, "{needles:?}");
    // Every folder and file a node writes: its data folder (chain, index, counters, index key)
    // and its log. (node.toml and the certificates are written by `init` before any record.)
    // The sealed bodies in the blob store hold no plaintext either.
    let blobs = files_under(&dir.join("blobs"));
    assert!(blobs.len() >= plain.len(), "{} blobs", blobs.len());
    for file in blobs {
        let bytes = std::fs::read(&file).unwrap();
        for n in &needles {
            assert!(!contains(&bytes, n.as_bytes()), "plaintext term {n:?} found in blob {}", file.display());
        }
    }
    for name in names {
        let mut files = files_under(&dir.join(name).join("data"));
        files.push(dir.join(name).join("node.log"));
        assert!(files.iter().any(|f| f.ends_with("chain.redb")), "{files:?}");
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            for n in &needles {
                assert!(!contains(&bytes, n.as_bytes()), "plaintext term {n:?} found in {}", file.display());
            }
        }
    }
}

fn read_seed(path: &Path) -> SigningKey {
    let mut seed = [0u8; 32];
    hex::decode_to_slice(std::fs::read_to_string(path).unwrap().trim(), &mut seed).unwrap();
    SigningKey::from_seed(seed)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}
