//! `medchain bench gpu` end to end on a tiny configuration: one JSON object with the machine, a
//! figure per operation and size, crossovers, and a well-formed SVG plot. Runs on any adapter,
//! the llvmpipe/lavapipe software one included (`MEDCHAIN_GPU=force`). Without an adapter it is
//! skipped with a printed reason, unless `MEDCHAIN_REQUIRE_GPU=1`, when it fails.
//!
//! `medchain bench index` end to end on a small corpus: the JSON report's shape, and the
//! encrypted and plaintext indexes agreeing with the corpus on every query (no timing checked).
//!
//! `medchain bench ops` end to end with a few runs: seed 001's operation table as JSON, every
//! operation at every default body size, figures positive and ordered.
//!
//! `medchain bench reads` end to end with a few reads on 4 validator processes.

use std::process::Command;

fn positive(v: &serde_json::Value, what: &str) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x} is not a positive figure");
    x
}

/// Checks that `svg` is one well-formed element tree rooted at `<svg>`: every tag closed in
/// order, attributes quoted, nothing after the root. Enough for what plotters writes.
fn assert_well_formed_svg(svg: &str) {
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg.trim_start();
    if let Some(after) = rest.strip_prefix("<?xml") {
        rest = after.split_once("?>").expect("unterminated XML declaration").1.trim_start();
    }
    assert!(rest.starts_with("<svg"), "the document does not start with <svg");
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert!(!text.contains('>'), "stray '>' in text: {text:?}");
        if stack.is_empty() {
            assert!(text.trim().is_empty(), "text outside the root element: {text:?}");
        }
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.split_once("-->").expect("unterminated comment").1;
            continue;
        }
        let close = rest.find('>').expect("unterminated tag");
        let tag = &rest[1..close];
        rest = &rest[close + 1..];
        assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name.trim(), "</{name}> closes <{open}>");
            continue;
        }
        let name: String = tag.chars().take_while(|c| !c.is_whitespace() && *c != '/').collect();
        assert!(!name.is_empty(), "empty tag name");
        if stack.is_empty() {
            roots += 1;
            assert_eq!(name, "svg", "the root element is <{name}>");
        }
        if !tag.ends_with('/') {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root element");
    assert_eq!(roots, 1, "exactly one root element");
}

#[test]
fn bench_gpu_quick_run_reports_json_and_plots() {
    let Some(ctx) = shaders::GpuContext::for_tests() else {
        return; // for_tests printed why (and panics instead under MEDCHAIN_REQUIRE_GPU=1)
    };
    // Every operation at batches 1, 4 and 16 (Merkle: one tree of 16 leaves); on a software
    // adapter, where an Ed25519 batch of 16 takes a while, Ed25519 stops at 4.
    let ed25519_max = if ctx.is_software() { "ed25519=4" } else { "ed25519=16" };
    drop(ctx);
    let tmp = tempfile::tempdir().unwrap();
    let svg = tmp.path().join("plot.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "gpu", "--json", "--max-batch", "16", "--op-max", ed25519_max, "--repeats", "2", "--plot"])
        .arg(&svg)
        .env("MEDCHAIN_GPU", "force")
        .output()
        .expect("run medchain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "medchain bench gpu failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "--json prints exactly one line: {stdout}");
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));

    let m = &v["machine"];
    assert!(!m["adapter"].as_str().unwrap().is_empty());
    assert!(!m["backend"].as_str().unwrap().is_empty());
    assert!(!m["device_type"].as_str().unwrap().is_empty());
    assert!(m["driver"].is_string());
    assert!(m["cpu_cores"].as_u64().unwrap() >= 1);
    assert!(!m["host"].as_str().unwrap().is_empty());
    let software = m["software_adapter"].as_bool().unwrap();
    let timestamps = m["timestamps"].as_bool().unwrap();
    if software {
        assert!(stderr.contains("WARNING") && stderr.contains("not GPU speed"), "no software warning: {stderr}");
        assert!(v["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("not GPU speed")));
    }
    let date = v["date"].as_str().unwrap();
    assert!(date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T', "date {date}");
    assert_eq!(v["settings"]["repeats"], 2);

    let ops = v["ops"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
    let expected_ops = ["sha256-64", "sha256-512", "merkle", "ed25519"];
    assert_eq!(names, expected_ops);
    let mut gpu_points = 0;
    for op in ops {
        let name = op["op"].as_str().unwrap();
        let sizes: Vec<u64> = op["sizes"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
        let expect: &[u64] = match name {
            "merkle" => &[16],
            "ed25519" if ed25519_max.ends_with("=4") => &[1, 4],
            _ => &[1, 4, 16],
        };
        assert_eq!(sizes, expect, "{name}: sizes under --max-batch 16");
        assert!(op["mismatch"].is_null(), "{name}: the GPU returned wrong results: {}", op["mismatch"]);
        let points = op["points"].as_array().unwrap();
        let error = op["error"].as_str();
        match error {
            // A kernel that failed stops its operation at that size, with the error on the point.
            // (or, when its pipelines did not build, the operation has no point at all).
            Some(e) => {
                assert!(!e.is_empty());
                if let Some(last) = points.last() {
                    assert!(last["gpu_error"].is_string(), "{name}: the failing point carries its error");
                    assert!(last["gpu_e2e"].is_null());
                } else {
                    assert!(e.contains("pipelines"), "{name}: no point, yet not a pipeline error: {e}");
                }
                assert!(stderr.contains(&format!("GPU error in {name}")), "{name}'s error not on stderr");
                eprintln!("note: {name} failed on the GPU: {e}");
            }
            None => assert_eq!(points.len(), sizes.len(), "{name}: every size measured"),
        }
        for (p, n) in points.iter().zip(&sizes) {
            assert_eq!(p["n"].as_u64(), Some(*n));
            let cpu = positive(&p["cpu"]["items_per_s"], "cpu items/s");
            let median = positive(&p["cpu"]["median_s"], "cpu median");
            assert!((cpu * median - *n as f64).abs() < 1e-6 * *n as f64, "items/s = n / median");
            assert!(p["cpu"]["runs"].as_u64().unwrap() >= 1);
            if p["gpu_error"].is_string() {
                continue;
            }
            gpu_points += 1;
            let gpu = positive(&p["gpu_e2e"]["items_per_s"], "gpu e2e items/s");
            let ratio = positive(&p["ratio_e2e"], "ratio");
            assert!((ratio - gpu / cpu).abs() < 1e-9 * ratio.max(1.0), "ratio = gpu / cpu");
            if timestamps {
                positive(&p["gpu_kernel"]["items_per_s"], "gpu kernel items/s");
            }
        }
        if let Some(c) = op["crossover"].as_u64() {
            assert!(sizes.contains(&c), "{name}: crossover {c} is a measured size");
        } else {
            assert!(op["crossover"].is_null());
        }
        if name == "ed25519" && error.is_none() {
            assert_eq!(
                op["negative_checks"].as_u64(),
                Some(sizes.len() as u64),
                "every Ed25519 batch is also checked with corrupted items"
            );
        }
    }
    if std::env::var("MEDCHAIN_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        assert!(gpu_points > 0, "MEDCHAIN_REQUIRE_GPU=1 but no operation ran on the GPU: {stderr}");
    }

    let text = std::fs::read_to_string(&svg).expect("the plot was written");
    assert_well_formed_svg(&text);
    assert!(text.contains("xmlns=\"http://www.w3.org/2000/svg\""));
    for name in expected_ops {
        assert!(text.contains(&format!("{name}: ")), "the plot has no panel for {name}");
    }
    if gpu_points > 0 {
        assert!(text.contains("GPU end to end") && text.contains("CPU (all cores)"), "legend missing");
        assert!(text.contains("<polyline"), "no lines drawn");
    }
}

#[test]
fn bench_gpu_refuses_bad_flags_and_off() {
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "gpu", "--ops", "md5"])
        .output()
        .expect("run medchain");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown operation \"md5\""));
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "gpu", "--max-batch", "4"])
        .env("MEDCHAIN_GPU", "off")
        .output()
        .expect("run medchain");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MEDCHAIN_GPU=force"));
}

/// `medchain bench index` end to end on a small corpus: one JSON object with the machine, the
/// corpus, the writer side, both indexes and their ratios, every query measured on both indexes
/// with both agreeing with the corpus, and the targets. Figures are checked for shape, not speed.
#[test]
fn bench_index_small_run_reports_json_and_both_indexes_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "index", "--records", "3000", "--repeats", "3", "--json", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("run medchain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "medchain bench index failed ({:?}): {stderr}", out.status.code());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "--json prints exactly one line: {stdout}");
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));

    assert!(v["machine"]["cpu_cores"].as_u64().unwrap() >= 1);
    assert!(!v["machine"]["host"].as_str().unwrap().is_empty());
    let date = v["date"].as_str().unwrap();
    assert!(date.len() == 20 && date.ends_with('Z'), "date {date}");
    let s = &v["settings"];
    assert_eq!((s["records"].as_u64(), s["labels_per_record"].as_u64()), (Some(3000), Some(32)));
    assert_eq!((s["epochs"].as_u64(), s["hospitals"].as_u64(), s["repeats"].as_u64()), (Some(24), Some(4), Some(3)));

    let c = &v["corpus"];
    assert_eq!(c["records"], 3000);
    assert!(c["distinct_terms"].as_u64().unwrap() > 100);
    let mean = c["terms_per_record_mean"].as_f64().unwrap();
    assert!(mean > 1.0 && mean <= 32.0, "terms per record {mean}");
    let per_type: u64 = c["data_types"].as_array().unwrap().iter().map(|t| t[1].as_u64().unwrap()).sum();
    assert_eq!(per_type, 3000, "every record has a data type");

    let w = &v["writer"];
    positive(&w["records_per_s"], "writer records/s");
    let real = w["real_labels"].as_u64().unwrap();
    assert!(real > 3000 && real <= 3000 * 32, "real labels {real}");

    let mut sizes = Vec::new();
    for name in ["encrypted", "plaintext"] {
        let i = &v[name];
        assert_eq!(i["records"], 3000, "{name} holds every record");
        positive(&i["records_per_s"], "build records/s");
        assert!(i["commits"].as_u64().unwrap() >= 1 && i["segments"].as_u64().unwrap() >= 1);
        sizes.push(positive(&i["size_bytes"], "size"));
        assert!(tmp.path().join(name).join("meta.json").is_file(), "{name} index kept in --dir");
    }
    let bare = &v["labels_only"];
    assert_eq!(bare["records"], 3000, "the labels-only index holds every record");
    positive(&bare["records_per_s"], "labels-only build records/s");
    positive(&bare["size_bytes"], "labels-only size");
    assert!(tmp.path().join("labels-only").join("meta.json").is_file(), "labels-only index kept in --dir");
    let ratio = positive(&v["size_ratio"], "size ratio");
    assert!((ratio - sizes[0] / sizes[1]).abs() < 1e-9 * ratio, "size ratio = encrypted / plaintext");
    assert!(sizes[0] > sizes[1], "32 random labels per record take more room than the plaintext terms");

    assert_eq!(v["agreed"], true, "the indexes agreed with the corpus");
    let queries = v["queries"].as_array().unwrap();
    let names: Vec<&str> = queries.iter().map(|q| q["name"].as_str().unwrap()).collect();
    assert!(names.starts_with(&["single", "and3"]), "queries {names:?}");
    for q in queries {
        let name = q["name"].as_str().unwrap();
        assert_eq!(q["agreed"], true, "{name}: {}", q["mismatch"]);
        assert!(q["mismatch"].is_null());
        let text = q["query"].as_str().unwrap();
        let predicates = q["predicate_matches"].as_array().unwrap().len() as u64;
        assert_eq!(predicates, if name == "single" { 1 } else { 3 }, "{text}");
        assert_eq!(q["keys"].as_u64(), Some(predicates * 4 * 24), "{text}: one key per term, hospital and epoch");
        assert!(q["matches"].as_u64().unwrap() >= 1, "{text}: the query was chosen to match something");
        assert!(q["lookups"].as_u64().unwrap() >= q["labels_found"].as_u64().unwrap());
        for index in ["encrypted", "plaintext"] {
            assert_eq!(q[index]["runs"], 3, "{text}: {index} runs");
            let p50 = positive(&q[index]["p50_ms"], "p50");
            assert!(q[index]["p90_ms"].as_f64().unwrap() >= p50);
        }
        let overhead = positive(&q["overhead_p50"], "overhead");
        let expect = q["encrypted"]["p50_ms"].as_f64().unwrap() / q["plaintext"]["p50_ms"].as_f64().unwrap();
        assert!((overhead - expect).abs() < 1e-9 * expect, "{text}: overhead = encrypted / plaintext");
    }
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 3, "build, single and and3");
    assert!(targets.iter().all(|t| t["met"].is_boolean() && t["measured"].is_string()));
}

#[test]
fn bench_index_refuses_bad_flags_and_a_used_folder() {
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "index", "--records", "0"])
        .output()
        .expect("run medchain");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--records 0"));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("encrypted")).unwrap();
    std::fs::write(tmp.path().join("encrypted").join("keep.txt"), "mine").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "index", "--records", "100", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("run medchain");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
    assert_eq!(std::fs::read_to_string(tmp.path().join("encrypted").join("keep.txt")).unwrap(), "mine");
}

/// `medchain bench ops --runs 5 --json`: one JSON object with the machine, the settings and one
/// row per operation, each with mean ≤ max and p50 ≤ p99 at 64 KiB, 256 KiB and 1 MiB; a ledger
/// and blob store kept in --dir. (Every run also checked that the reader opened the body the
/// writer sealed, or the command would have failed.)
#[test]
fn bench_ops_reports_every_operation_at_every_size() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ops");
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "ops", "--runs", "5", "--warmup", "1", "--json", "--dir"])
        .arg(&dir)
        .output()
        .expect("run medchain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "medchain bench ops failed ({:?}): {stderr}", out.status.code());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim().lines().count(), 1, "--json prints exactly one line: {stdout}");
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));

    assert_eq!(v["schema"], "medchain-bench-ops/1");
    assert!(v["machine"]["cpu_cores"].as_u64().unwrap() >= 1);
    assert!(!v["machine"]["host"].as_str().unwrap().is_empty());
    let date = v["date"].as_str().unwrap();
    assert!(date.len() == 20 && date.ends_with('Z'), "date {date}");
    let s = &v["settings"];
    assert_eq!((s["runs"].as_u64(), s["warmup"].as_u64()), (Some(5), Some(1)));
    assert_eq!((s["validators"].as_u64(), s["threshold"].as_u64()), (Some(4), Some(3)));
    let sizes: Vec<u64> = s["sizes"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    assert_eq!(sizes, [65536, 262144, 1048576]);
    // The enrolment block, then three blocks (anchor, grant, read) per record.
    assert_eq!(v["blocks"].as_u64(), Some(1 + 3 * 3 * 6));
    assert!(dir.join("ledger.redb").is_file() && dir.join("blobs").is_dir(), "ledger and blobs kept in --dir");

    let rows = v["rows"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "encrypt",
            "digest",
            "blob-upload",
            "grant-key",
            "sign",
            "verify",
            "anchor-write",
            "anchor-query",
            "anchor-read-back",
            "read-log-write",
            "read-log-query",
            "share",
            "combine",
            "blob-download",
            "decrypt"
        ]
    );
    let mut experiments: Vec<u64> = Vec::new();
    for row in rows {
        let op = row["op"].as_str().unwrap();
        assert!(!row["measures"].as_str().unwrap().is_empty(), "{op}: says what it measures");
        experiments.extend(row["seed_experiments"].as_array().unwrap().iter().map(|e| e.as_u64().unwrap()));
        let per_size = row["sizes"].as_array().unwrap();
        assert_eq!(per_size.len(), 3, "{op}: one entry per size");
        for (st, size) in per_size.iter().zip(&sizes) {
            assert_eq!(st["body_bytes"].as_u64(), Some(*size), "{op}");
            assert_eq!(st["runs"].as_u64(), Some(5), "{op}");
            let mean = positive(&st["mean_us"], "mean");
            let p50 = positive(&st["p50_us"], "p50");
            let p99 = positive(&st["p99_us"], "p99");
            let max = positive(&st["max_us"], "max");
            assert!(p50 <= p99 && p99 <= max && mean <= max, "{op} at {size}: p50 {p50} p99 {p99} max {max}");
        }
    }
    experiments.sort_unstable();
    experiments.dedup();
    assert_eq!(experiments, (1..=15).collect::<Vec<u64>>(), "every experiment of seed 001's Table 1 is covered");
}

#[test]
fn bench_ops_refuses_zero_runs_and_a_used_folder() {
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "ops", "--runs", "0"])
        .output()
        .expect("run medchain");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runs must be at least 1"));
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "ops", "--runs", "1", "--dir"])
        .arg(tmp.path())
        .output()
        .expect("run medchain");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists and is not empty"));
    assert_eq!(std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(), "mine");
}

/// `medchain bench reads` end to end with a few reads on 4 validator processes: every read
/// returned the writer's plaintext, and every phase has a positive figure (none is checked
/// against a target: timings belong to the benchmark, not to the tests).
#[test]
fn bench_reads_times_real_reads_on_four_validators() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("reads");
    let out = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["bench", "reads", "--reads", "4", "--patients", "1", "--json", "--dir"])
        .arg(&dir)
        .output()
        .expect("run medchain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "medchain bench reads failed ({:?}): {stderr}", out.status.code());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\nstderr: {stderr}"));
    assert_eq!(v["validators"], 4);
    assert_eq!(v["threshold"], 3);
    assert_eq!(v["reads"], 4);
    assert_eq!(v["all_plaintexts_match"], true, "{v}");
    positive(&v["mean_body_bytes"], "mean_body_bytes");
    for phase in ["total", "commit", "shares", "fetch_decrypt"] {
        let p50 = positive(&v[phase]["p50_ms"], &format!("{phase}.p50_ms"));
        assert!(positive(&v[phase]["p99_ms"], &format!("{phase}.p99_ms")) >= p50, "{v}");
    }
    let refused =
        Command::new(env!("CARGO_BIN_EXE_medchain")).args(["bench", "reads", "--reads", "0"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--reads"), "{refused:?}");
}
