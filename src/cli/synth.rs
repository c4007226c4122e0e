//! `medchain synth`: synthetic, realistic FHIR R4 patient bundles, one pretty-printed JSON file per
//! patient (`patient-000000.json`, ...), deterministic from a seed (see `index::synth`).

use crate::output::report;
use anyhow::{bail, Context, Result};
use index::synth::{patient, SynthOptions};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `medchain synth`.
#[derive(clap::Args, Debug)]
pub struct SynthArgs {
    /// How many patients to generate (one bundle file each).
    #[arg(long)]
    pub patients: usize,
    /// The folder to write `patient-000000.json`, ... into; created if missing.
    #[arg(long)]
    pub out: PathBuf,
    /// The seed: the same seed and years give the same files.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// First year of clinical activity.
    #[arg(long, default_value_t = 2019)]
    pub start_year: i32,
    /// Last year of clinical activity (inclusive); ages are counted at its end.
    #[arg(long, default_value_t = 2025)]
    pub end_year: i32,
    /// Replace bundle files that already exist instead of refusing.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object instead of text (and no progress bar).
    #[arg(long)]
    pub json: bool,
}

/// What `medchain synth` wrote.
#[derive(Serialize, Debug)]
struct SynthReport {
    out: String,
    seed: u64,
    start_year: i32,
    end_year: i32,
    patients: usize,
    resources: usize,
    resources_by_type: BTreeMap<String, usize>,
    bytes: u64,
    elapsed_s: f64,
}

/// The file of patient `i` in `dir`.
fn bundle_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("patient-{i:06}.json"))
}

/// Runs `medchain synth`.
pub fn run(args: SynthArgs) -> Result<ExitCode> {
    let opts =
        SynthOptions { seed: args.seed, patients: args.patients, start_year: args.start_year, end_year: args.end_year };
    opts.validate().context("--start-year/--end-year")?;
    if args.patients == 0 {
        bail!("--patients must be at least 1");
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create the folder {}", args.out.display()))?;
    if !args.force {
        // Refuse before writing anything, so a refused run leaves the folder as it was.
        if let Some(existing) = (0..args.patients).map(|i| bundle_path(&args.out, i)).find(|p| p.exists()) {
            bail!(
                "{} already exists: refusing to overwrite it; pass --force to replace the bundles, or choose another --out",
                existing.display()
            );
        }
    }
    let started = Instant::now();
    let bar = crate::cli::load::progress_bar(args.patients as u64, "bundles", args.json);
    let totals: Result<(BTreeMap<String, usize>, u64)> = (0..args.patients)
        .into_par_iter()
        .map(|i| {
            let bundle = patient(opts.seed, i as u64, &opts);
            let mut text = serde_json::to_vec_pretty(&bundle.bundle).context("encoding a bundle as JSON")?;
            text.push(b'\n');
            let path = bundle_path(&args.out, i);
            write_bundle(&path, &text, args.force)?;
            bar.inc(1);
            Ok((bundle.resource_counts(), text.len() as u64))
        })
        .try_reduce(
            || (BTreeMap::new(), 0u64),
            |(mut counts, bytes), (more, more_bytes)| {
                for (t, n) in more {
                    *counts.entry(t).or_insert(0) += n;
                }
                Ok((counts, bytes + more_bytes))
            },
        );
    bar.finish_and_clear();
    let (resources_by_type, bytes) = totals?;
    let rep = SynthReport {
        out: args.out.display().to_string(),
        seed: opts.seed,
        start_year: opts.start_year,
        end_year: opts.end_year,
        patients: args.patients,
        resources: resources_by_type.values().sum(),
        resources_by_type,
        bytes,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    report(args.json, &rep, || human(&rep));
    Ok(ExitCode::SUCCESS)
}

fn write_bundle(path: &Path, text: &[u8], force: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // Checked above too; create_new also refuses a file that appeared since.
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} already exists: refusing to overwrite it; pass --force to replace it", path.display())
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    file.write_all(text).with_context(|| format!("cannot write {}", path.display()))
}

fn human(rep: &SynthReport) -> String {
    let by_type: Vec<String> = rep.resources_by_type.iter().map(|(t, n)| format!("{n} {t}")).collect();
    format!(
        "wrote {} bundles ({} to {}, seed {}) to {} in {:.1} s: {} resources ({}), {:.1} MB",
        rep.patients,
        rep.start_year,
        rep.end_year,
        rep.seed,
        rep.out,
        rep.elapsed_s,
        rep.resources,
        by_type.join(", "),
        rep.bytes as f64 / 1e6
    )
}
