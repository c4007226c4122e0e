//! `medchain ledger verify`: re-checks a node's stored chain offline.

use crate::output::report;
use anyhow::{Context, Result};
use clap::Subcommand;
use engine::storage::{RedbStorage, Storage};
use engine::verifier::CpuVerifier;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Re-check hash links, Merkle roots, certificates, every signature and the replayed state.
    Verify {
        /// The node's data folder (its `data_dir`).
        #[arg(long)]
        data: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct VerifyOk {
    ok: bool,
    height: u64,
    head: String,
}

#[derive(Serialize)]
struct VerifyFault {
    ok: bool,
    height: u64,
    error: String,
}

/// Runs a ledger subcommand.
pub fn run(cmd: LedgerCommand) -> Result<ExitCode> {
    let LedgerCommand::Verify { data, json } = cmd;
    let storage = RedbStorage::open(&data.join(net::core::CHAIN_DB_FILE))
        .with_context(|| format!("cannot open the chain in {}", data.display()))?;
    let total = storage.head()?.map(|(h, _)| h).unwrap_or(0);
    let bar = crate::cli::load::progress_bar(total, "verifying", json);
    let result = engine::audit::verify_chain(&storage, &CpuVerifier::new(), &mut |done, _| bar.set_position(done));
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            let r = VerifyOk { ok: true, height: summary.height, head: summary.head.to_hex() };
            report(json, &r, || format!("chain OK: height {} head {}", r.height, r.head));
            Ok(ExitCode::SUCCESS)
        }
        Err(fault) => {
            let r = VerifyFault { ok: false, height: fault.height, error: fault.to_string() };
            report(json, &r, || format!("chain INVALID: {}", r.error));
            Ok(ExitCode::from(1))
        }
    }
}
