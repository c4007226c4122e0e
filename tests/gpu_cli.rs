//! `medchain gpu info|verify` and a node with GPU offload, end to end on the real shaders (the
//! software adapter, lavapipe, in CI). Tests that need an adapter skip with a printed reason when
//! there is none, and fail instead when MEDCHAIN_REQUIRE_GPU=1.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn medchain(args: &[&str], gpu: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(args)
        .env("MEDCHAIN_GPU", gpu)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run medchain")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether a (software) adapter exists; panics under MEDCHAIN_REQUIRE_GPU=1 when none does.
fn adapter_available() -> bool {
    let out = medchain(&["gpu", "info", "--json", "--no-crossover"], "force");
    assert!(out.status.success(), "gpu info failed: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("gpu info --json prints JSON");
    if v["chosen"].get("error").is_none() {
        return true;
    }
    if std::env::var("MEDCHAIN_REQUIRE_GPU").is_ok_and(|v| v == "1") {
        panic!("MEDCHAIN_REQUIRE_GPU=1 but no adapter: {v}");
    }
    eprintln!("skipping: no GPU adapter ({})", v["chosen"]["error"]);
    false
}

fn vectors_dir() -> PathBuf {
    match std::env::var_os("MEDCHAIN_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors"),
    }
}

/// The speccheck suite as `gpu verify` input, with its ZIP-215 verdicts.
fn speccheck_input(dir: &Path) -> (PathBuf, Vec<bool>) {
    let path = vectors_dir().join("ed25519/speccheck-cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let input = dir.join("speccheck.jsonl");
    let mut f = std::fs::File::create(&input).unwrap();
    for c in &cases {
        let line = serde_json::json!({
            "msg": c["message"], "key": c["pub_key"], "sig": c["signature"], "note": "ignored"
        });
        writeln!(f, "{line}").unwrap();
    }
    // A signature of the wrong length is simply invalid.
    writeln!(f, r#"{{"msg":"00","key":"{}","sig":"abcd"}}"#, cases[0]["pub_key"].as_str().unwrap()).unwrap();
    let mut want = vec![true, true, true, true, true, true, false, false, false, true, true, true];
    want.push(false);
    (input, want)
}

fn verdicts(out: &Output) -> Vec<bool> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            v["valid"].as_bool().expect("{\"valid\":bool}")
        })
        .collect()
}

#[test]
fn verify_cpu_gives_the_zip215_verdicts_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, want) = speccheck_input(tmp.path());
    let out = medchain(&["gpu", "verify", "--input", input.to_str().unwrap(), "--backend", "cpu"], "off");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(verdicts(&out), want);
}

#[test]
fn verify_gpu_equals_cpu_on_the_speccheck_suite() {
    if !adapter_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (input, want) = speccheck_input(tmp.path());
    let out = medchain(&["gpu", "verify", "--input", input.to_str().unwrap(), "--backend", "gpu"], "force");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(verdicts(&out), want);
}

#[test]
fn verify_gpu_without_an_adapter_fails_instead_of_using_the_cpu() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, _) = speccheck_input(tmp.path());
    let out = medchain(&["gpu", "verify", "--input", input.to_str().unwrap(), "--backend", "gpu"], "off");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "verdicts printed without a GPU");
    let err = stderr(&out);
    assert!(err.contains("--backend gpu") && err.contains("MEDCHAIN_GPU"), "{err}");
}

#[test]
fn verify_names_the_bad_line() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bad.jsonl");
    std::fs::write(
        &input,
        "{\"msg\":\"00\",\"key\":\"00\",\"sig\":\"00\"}\n{\"msg\":\"zz\",\"key\":\"00\",\"sig\":\"00\"}\n",
    )
    .unwrap();
    let out = medchain(&["gpu", "verify", "--input", input.to_str().unwrap(), "--backend", "cpu"], "off");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 2") && err.contains("\"msg\""), "{err}");
    std::fs::write(&input, "{\"key\":\"00\",\"sig\":\"00\"}\n").unwrap();
    let out = medchain(&["gpu", "verify", "--input", input.to_str().unwrap(), "--backend", "cpu"], "off");
    assert!(stderr(&out).contains("missing field \"msg\""), "{}", stderr(&out));
}

#[test]
fn info_lists_the_adapter_and_refuses_software_under_auto() {
    if !adapter_available() {
        return;
    }
    let out = medchain(&["gpu", "info", "--json", "--no-crossover"], "force");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["chosen"]["limits"]["max_storage_buffer_binding_size"].as_u64().unwrap() > 0, "{v}");
    assert!(!v["adapters"].as_array().unwrap().is_empty());
    let software = v["chosen"]["software"] == true;
    let auto = medchain(&["gpu", "info", "--json", "--no-crossover"], "auto");
    let a: serde_json::Value = serde_json::from_slice(&auto.stdout).unwrap();
    if software {
        // Only the software adapter exists: `auto` must not pick it.
        assert!(a["chosen"]["error"].as_str().unwrap().contains("MEDCHAIN_GPU=force"), "{a}");
    }
    let off = medchain(&["gpu", "info", "--json"], "off");
    let o: serde_json::Value = serde_json::from_slice(&off.stdout).unwrap();
    assert!(o["chosen"]["error"].as_str().unwrap().contains("disabled"), "{o}");
}

/// A one-validator consortium whose node routes every batch to the GPU (crossover 1): it
/// commits, and /metrics shows the GPU batches and no fallback.
#[test]
fn node_with_gpu_offload_commits_and_counts_gpu_batches() {
    if !adapter_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let d = dir.to_str().unwrap();
    let base = free_base_port().to_string();
    let out = medchain(&["init", "--validators", "1", "--out", d, "--base-port", &base, "--json"], "off");
    assert!(out.status.success(), "{}", stderr(&out));
    let toml_path = dir.join("node0/node.toml");
    let mut text = std::fs::read_to_string(&toml_path).unwrap();
    let start = text.find("[gpu]").expect("init writes a [gpu] section");
    text.truncate(start);
    text.push_str("[gpu]\nmode = \"force\"\ncrossover = 1\n");
    std::fs::write(&toml_path, text).unwrap();
    let mut node = Command::new(env!("CARGO_BIN_EXE_medchain"))
        .args(["node", "--config", toml_path.to_str().unwrap()])
        .env_remove("MEDCHAIN_GPU")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let load = medchain(
        &["load", "--consortium", d, "--rate", "40", "--duration", "2", "--doctors", "2", "--patients", "4", "--json"],
        "off",
    );
    let metrics = fetch_metrics(&dir);
    let _ = node.kill();
    let node_out = node.wait_with_output().unwrap();
    assert!(
        load.status.success(),
        "load failed: {}\nnode: {}",
        stderr(&load),
        String::from_utf8_lossy(&node_out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&load.stdout).lines().last().unwrap()).unwrap();
    assert!(report["committed"].as_u64().unwrap() > 0, "{report}");
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("medchain_verifier_gpu_batches_total") > 0, "{metrics}");
    assert!(value("medchain_verifier_gpu_items_total") >= report["committed"].as_u64().unwrap());
    assert_eq!(value("medchain_verifier_gpu_fallbacks_total"), 0, "{metrics}");
    assert!(String::from_utf8_lossy(&node_out.stderr).contains("GPU offload ready"));
}

fn fetch_metrics(dir: &Path) -> String {
    let toml: toml::Value = toml::from_str(&std::fs::read_to_string(dir.join("node0/node.toml")).unwrap()).unwrap();
    let addr = toml["http_listen"].as_str().unwrap().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async { reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap() })
}

/// A port P with UDP P (QUIC) and TCP P+1 (HTTP) free right now on loopback.
fn free_base_port() -> u16 {
    for _ in 0..100 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let http = tcp.local_addr().unwrap().port();
        let Some(p2p) = http.checked_sub(1) else { continue };
        if std::net::UdpSocket::bind(("127.0.0.1", p2p)).is_ok() {
            return p2p;
        }
    }
    panic!("no free pair of loopback ports");
}
