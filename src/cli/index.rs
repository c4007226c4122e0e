//! `medchain index rebuild`: throws a node's search index away and rebuilds it from its chain.

use crate::output::report;
use anyhow::{Context, Result};
use clap::Subcommand;
use engine::storage::{RedbStorage, Storage};
use index::view::IndexView;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// `medchain index …`.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Rebuild the node's search index from its stored chain (the node must be stopped).
    Rebuild {
        /// The node's data folder (its `data_dir`).
        #[arg(long)]
        data: PathBuf,
        /// Print one JSON object instead of text (and no progress bar).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Rebuilt {
    height: u64,
    records: u64,
    seconds: f64,
    index: String,
}

/// Runs an index subcommand.
pub fn run(cmd: IndexCommand) -> Result<ExitCode> {
    let IndexCommand::Rebuild { data, json } = cmd;
    let chain = data.join(net::core::CHAIN_DB_FILE);
    if !chain.is_file() {
        anyhow::bail!("{} holds no chain ({} is missing); give the node's data_dir", data.display(), chain.display());
    }
    let storage = RedbStorage::open(&chain).with_context(|| {
        format!("cannot open the chain in {} (is the node still running? stop it first)", data.display())
    })?;
    let head = storage.head()?.map_or(0, |(h, _)| h);
    let dir = data.join(net::search::INDEX_DIR);
    let bar = crate::cli::load::progress_bar(head, "indexing", json);
    let started = std::time::Instant::now();
    let view = IndexView::rebuild(&storage, &dir, |done, _| bar.set_position(done))
        .with_context(|| format!("rebuilding the index in {}", dir.display()))?;
    bar.finish_and_clear();
    let r = Rebuilt {
        height: view.indexed_height(),
        records: view.num_records(),
        seconds: started.elapsed().as_secs_f64(),
        index: dir.display().to_string(),
    };
    report(json, &r, || {
        format!("index rebuilt: {} records up to height {} in {:.1} s ({})", r.records, r.height, r.seconds, r.index)
    });
    Ok(ExitCode::SUCCESS)
}
