//! `medchain synth` end to end: one pretty JSON bundle per patient, exactly the library's
//! patients, the same bytes on a second run, a summary as one JSON object, refusal to overwrite
//! without `--force` (naming the file, leaving the folder as it was), and checked options.

use std::path::Path;
use std::process::{Command, Output};

use index::synth::{patient, SynthOptions};

fn synth(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medchain")).arg("synth").args(args).output().expect("run medchain synth")
}

fn run_ok(args: &[&str]) -> serde_json::Value {
    let out = synth(args);
    assert!(out.status.success(), "medchain synth {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "--json prints one line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn writes_deterministic_bundles_and_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("nested/a");
    let a_str = a.to_str().unwrap();
    let report = run_ok(&["--patients", "4", "--out", a_str, "--seed", "7", "--json"]);

    let written = files(&a);
    let names: Vec<&str> = written.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["patient-000000.json", "patient-000001.json", "patient-000002.json", "patient-000003.json"]);
    // Each file is the library's patient, pretty-printed.
    let opts = SynthOptions { seed: 7, patients: 4, start_year: 2019, end_year: 2025 };
    let mut resources = 0;
    for (i, (_, bytes)) in written.iter().enumerate() {
        let expected = patient(7, i as u64, &opts);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            serde_json::to_string_pretty(&expected.bundle).unwrap() + "\n"
        );
        resources += expected.resource_counts().values().sum::<usize>();
    }
    assert_eq!(report["patients"], 4);
    assert_eq!(report["seed"], 7);
    assert_eq!(report["resources"], resources);
    assert_eq!(report["resources_by_type"]["Patient"], 4);
    assert!(report["resources_by_type"]["Observation"].as_u64().unwrap() > 0);
    assert_eq!(report["bytes"], written.iter().map(|(_, b)| b.len()).sum::<usize>());

    // A second run gives the same bytes; another seed other bytes.
    let b = tmp.path().join("b");
    run_ok(&["--patients", "4", "--out", b.to_str().unwrap(), "--seed", "7", "--json"]);
    assert_eq!(files(&b), written);
    let c = tmp.path().join("c");
    run_ok(&["--patients", "4", "--out", c.to_str().unwrap(), "--seed", "8", "--json"]);
    for ((_, x), (_, y)) in files(&c).iter().zip(&written) {
        assert_ne!(x, y);
    }

    // The human summary names the counts.
    let d = tmp.path().join("d");
    let out = synth(&["--patients", "2", "--out", d.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("wrote 2 bundles") && text.contains("Patient"), "{text}");
}

#[test]
fn refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let dir_str = dir.to_str().unwrap();
    run_ok(&["--patients", "2", "--out", dir_str, "--seed", "1", "--json"]);
    let before = files(&dir);

    // More patients than before, another seed: nothing is written, the first clash is named.
    let out = synth(&["--patients", "3", "--out", dir_str, "--seed", "2", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("patient-000000.json") && err.contains("--force"), "{err}");
    assert_eq!(files(&dir), before, "a refused run changed the folder");

    // With --force the files are replaced.
    run_ok(&["--patients", "3", "--out", dir_str, "--seed", "2", "--force", "--json"]);
    let after = files(&dir);
    assert_eq!(after.len(), 3);
    assert_ne!(after[0], before[0]);
}

#[test]
fn bad_options_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let dir_str = dir.to_str().unwrap();
    for (args, expect) in [
        (
            vec!["--patients", "2", "--start-year", "2025", "--end-year", "2019"],
            "start year 2025 is after end year 2019",
        ),
        (vec!["--patients", "2", "--start-year", "1200"], "year 1200 is outside"),
        (vec!["--patients", "0"], "--patients must be at least 1"),
    ] {
        let mut args = args;
        args.extend(["--out", dir_str]);
        let out = synth(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    assert!(!dir.exists() || files(&dir).is_empty());
}
