//! Command-line definitions and dispatch.

mod bench;
mod bench_reads;
mod demo;
mod gpu;
mod import;
mod index;
mod init;
mod ledger;
mod load;
mod node;
mod researcher;
mod search;
mod share;
mod sim;
mod synth;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// medchain: a consortium blockchain through which hospitals share medical records.
#[derive(Parser, Debug)]
#[command(name = "medchain", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a consortium folder: CA, node keys and certificates, genesis, node configs.
    Init(init::InitArgs),
    /// Run a node from its node.toml.
    Node(node::NodeArgs),
    /// Offline checks of a node's stored chain.
    Ledger {
        #[command(subcommand)]
        command: ledger::LedgerCommand,
    },
    /// Submit synthetic signed records at a fixed rate and report throughput and latency.
    Load(load::LoadArgs),
    /// Start a local 4-validator consortium, load it, crash and restart a validator, report.
    Demo(demo::DemoArgs),
    /// Run the deterministic cluster simulator over one or many seeds.
    Sim(sim::SimArgs),
    /// Generate synthetic, realistic FHIR R4 patient bundles (deterministic from a seed).
    Synth(synth::SynthArgs),
    /// GPU offload: adapters, crossover, and verification of a file of signatures.
    Gpu {
        #[command(subcommand)]
        command: gpu::GpuCommand,
    },
    /// Benchmarks for operators (GPU against all CPU cores).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
    /// Researchers: enrolment by the CA, search authorization by a hospital.
    Researcher {
        #[command(subcommand)]
        command: researcher::ResearcherCommand,
    },
    /// Search hospitals' encrypted indexes (trapdoors from their token services, proofs checked).
    Search(search::SearchArgs),
    /// The node's search index: rebuild it from the chain.
    Index {
        #[command(subcommand)]
        command: index::IndexCommand,
    },
    /// Writers' tools: import FHIR R4 bundles as labelled, consented records.
    Client {
        #[command(subcommand)]
        command: import::ClientCommand,
    },
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Node(a) => node::run(a),
        Command::Ledger { command } => ledger::run(command),
        Command::Load(a) => load::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Sim(a) => sim::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Gpu { command } => gpu::run(command),
        Command::Bench { command } => bench::run(command),
        Command::Researcher { command } => researcher::run(command),
        Command::Search(a) => search::run(a),
        Command::Index { command } => index::run(command),
        Command::Client { command } => import::run(command),
    }
}

/// Logging for long-running commands: `RUST_LOG` filters, default `info`.
pub fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}

/// The folder argument shared by commands that act on a node's data.
#[derive(clap::Args, Debug)]
pub struct DataArg {
    /// The node's data folder (the `data_dir` of its node.toml).
    #[arg(long)]
    pub data: PathBuf,
}
