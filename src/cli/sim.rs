//! `medchain sim`: the deterministic cluster simulator from the command line.

use crate::output::report;
use anyhow::Result;
use serde::Serialize;
use std::process::ExitCode;

/// Arguments of `medchain sim`.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// Replay exactly this seed.
    #[arg(long, conflicts_with_all = ["seeds", "start"])]
    pub seed: Option<u64>,
    /// How many seeds to run.
    #[arg(long, default_value_t = 1000)]
    pub seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    pub start: u64,
    /// Validators in the simulated cluster (4 or 7 are the tested sizes).
    #[arg(long, default_value_t = 4)]
    pub validators: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct SimReport {
    validators: usize,
    seeds_run: u64,
    failures: Vec<String>,
}

/// Runs `medchain sim`.
pub fn run(args: SimArgs) -> Result<ExitCode> {
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.start..args.start.saturating_add(args.seeds)).collect(),
    };
    let bar = crate::cli::load::progress_bar(seeds.len() as u64, "seeds", args.json);
    let mut failures = Vec::new();
    for seed in &seeds {
        if let Err(f) = sim::run(*seed, args.validators) {
            bar.println(format!("FAILED: {f}"));
            failures.push(f.to_string());
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rep = SimReport { validators: args.validators, seeds_run: seeds.len() as u64, failures };
    report(args.json, &rep, || {
        format!(
            "{} seeds with {} validators: {} passed, {} failed",
            rep.seeds_run,
            rep.validators,
            rep.seeds_run - rep.failures.len() as u64,
            rep.failures.len()
        )
    });
    Ok(if rep.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
