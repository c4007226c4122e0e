//! `medchain bench gpu`: the GPU against all CPU cores over batch sizes, in one run; tables,
//! one JSON object, or an SVG plot. The measurement itself is `bench::gpu`; `bench index` and
//! `bench ops` are `bench::index` and `bench::ops`.

use ::bench::gpu::{self, Config, Event, Kernels, Op};
use ::bench::index as index_bench;
use ::bench::ops as ops_bench;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use shaders::{AdapterPolicy, GpuContext, GpuError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// SHA-256, Merkle roots and Ed25519 on the GPU and on all CPU cores, batch 1 … 1,048,576.
    Gpu(GpuBenchArgs),
    /// The encrypted keyword index: label derivation, index build, size and query latency,
    /// against a plaintext tantivy index of the same corpus.
    Index(IndexBenchArgs),
    /// Seed 001's table of operations on a record (encrypt, digest, sign, anchor, grant keys,
    /// re-encryption, read log, blobs) for 64 KiB, 256 KiB and 1 MiB bodies: mean, p50, p99.
    Ops(OpsBenchArgs),
    /// End-to-end read latency on 4 local validators: ReadRequest submitted → plaintext in hand.
    Reads(crate::cli::bench_reads::ReadsArgs),
}

/// Arguments of `medchain bench ops`. Exit status: 0 when every run gave the right answers (the
/// reader opened the body sealed), 2 for any error, a wrong answer included.
#[derive(clap::Args, Debug)]
pub struct OpsBenchArgs {
    /// Timed runs per body size (after the warm-up runs).
    #[arg(long, default_value_t = ops_bench::RUNS_DEFAULT)]
    pub runs: usize,
    /// Untimed runs per body size before the timed ones.
    #[arg(long, default_value_t = ops_bench::WARMUP_DEFAULT)]
    pub warmup: usize,
    /// Body sizes in bytes, comma-separated (default: 64 KiB, 256 KiB, 1 MiB).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Where to write the ledger (redb) and the blob store; must not exist or be empty, and is
    /// kept. Default: a temporary folder, removed at the end. Put it on the disk to measure.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seed of the keys, bodies and record ids.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `medchain bench index`. Exit status: 0 when both indexes returned exactly the
/// corpus's matches for every query, 3 when they did not (the query figures are withheld), 2 for
/// any other error.
#[derive(clap::Args, Debug)]
pub struct IndexBenchArgs {
    /// Records in the synthetic corpus.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Labels per record, P.
    #[arg(long, default_value_t = index::labels::LABELS_PER_RECORD_DEFAULT)]
    pub labels_per_record: usize,
    /// Index epochs the records are spread over (a search needs terms × hospitals × epochs keys).
    #[arg(long, default_value_t = 24)]
    pub epochs: u64,
    /// Hospitals (search domains), each with its own index key.
    #[arg(long, default_value_t = 4)]
    pub hospitals: usize,
    /// Timed runs per query and index (after 2 warm-up runs); p50 and p90 are reported.
    #[arg(long, default_value_t = 25)]
    pub repeats: usize,
    /// Where to build the two indexes (in `encrypted/` and `plaintext/`, which must not exist
    /// or be empty; they are kept). Default: a temporary folder, removed at the end.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The corpus seed.
    #[arg(long, default_value_t = 4)]
    pub seed: u64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `medchain bench gpu`. Exit status: 0 when every GPU output equalled the CPU's
/// (GPU errors such as a missing kernel or a timeout are reported, not fatal), 3 when some
/// operation returned wrong results (its figures are withheld), 2 for any other error.
#[derive(clap::Args, Debug)]
pub struct GpuBenchArgs {
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Write a plot of throughput against batch size (SVG) to this file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Operations to measure, comma-separated: sha256-64, sha256-512, merkle, ed25519.
    #[arg(long, value_delimiter = ',', default_value = "sha256-64,sha256-512,merkle,ed25519")]
    pub ops: Vec<String>,
    /// The largest batch for every operation (the grid is 1, 4, 16, … 1,048,576).
    #[arg(long, default_value_t = gpu::MAX_BATCH)]
    pub max_batch: usize,
    /// The largest batch for one operation, as OP=N (repeatable), e.g. --op-max ed25519=4096.
    #[arg(long = "op-max", value_name = "OP=N")]
    pub op_max: Vec<String>,
    /// Exactly these batch sizes (comma-separated) instead of the powers of four, for every
    /// operation (Merkle included) up to its cap.
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Timed runs per backend and point after one warm-up; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Seconds per backend and point: fewer timed runs are taken where REPEATS would not fit.
    #[arg(long, default_value_t = 10.0)]
    pub point_budget: f64,
    /// A few minutes' run: batches up to 65,536 (Ed25519 up to 4,096), 3 runs per point.
    /// Explicit --max-batch, --op-max and --repeats still apply on top.
    #[arg(long)]
    pub quick: bool,
}

/// Batches above this would not fit in memory with their fixtures.
const LARGEST_ALLOWED: usize = 1 << 24;

fn config(a: &GpuBenchArgs) -> Result<Config> {
    let mut cfg = Config::default();
    let mut ops = Vec::new();
    for name in &a.ops {
        let op = Op::parse(name).with_context(|| {
            let known: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
            format!("--ops: unknown operation {name:?} (known: {})", known.join(", "))
        })?;
        if !ops.contains(&op) {
            ops.push(op);
        }
    }
    cfg.ops = ops;
    let explicit_max = a.max_batch != gpu::MAX_BATCH;
    let explicit_repeats = a.repeats != 5;
    if a.quick {
        cfg.max_batch = 1 << 16;
        cfg.op_max.insert(Op::Ed25519Verify, 1 << 12);
        cfg.repeats = 3;
    }
    if explicit_max || !a.quick {
        cfg.max_batch = a.max_batch;
        if explicit_max {
            cfg.op_max.clear();
        }
    }
    if explicit_repeats || !a.quick {
        cfg.repeats = a.repeats;
    }
    for spec in &a.op_max {
        let (name, n) = spec.split_once('=').with_context(|| format!("--op-max {spec:?}: expected OP=N"))?;
        let op = Op::parse(name).with_context(|| format!("--op-max {spec:?}: unknown operation {name:?}"))?;
        let n: usize = n.trim().parse().with_context(|| format!("--op-max {spec:?}: {n:?} is not a count"))?;
        cfg.op_max.insert(op, n);
    }
    if let Some(sizes) = &a.sizes {
        if sizes.is_empty() || sizes.contains(&0) {
            bail!("--sizes: every batch size must be at least 1");
        }
        cfg.sizes = sizes.clone();
        cfg.sizes.sort_unstable();
        cfg.sizes.dedup();
        cfg.merkle_min_leaves = 1;
    }
    let caps: HashMap<Op, usize> = cfg.ops.iter().map(|&op| (op, cfg.cap(op))).collect();
    for (op, cap) in caps {
        if cap == 0 {
            bail!("the batch cap for {op} must be at least 1");
        }
        if cap > LARGEST_ALLOWED || cfg.sizes.iter().any(|n| *n > LARGEST_ALLOWED) {
            bail!("batches above {LARGEST_ALLOWED} are not supported (fixtures would not fit in memory)");
        }
    }
    if cfg.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    if !(a.point_budget.is_finite() && a.point_budget > 0.0) {
        bail!("--point-budget must be a positive number of seconds");
    }
    cfg.point_budget = Duration::from_secs_f64(a.point_budget);
    if cfg.plan().is_empty() {
        bail!("no batch size to measure: check --sizes against --max-batch / --op-max");
    }
    Ok(cfg)
}

fn open_gpu() -> Result<std::sync::Arc<GpuContext>> {
    let policy = AdapterPolicy::from_env().map_err(anyhow::Error::new)?;
    GpuContext::new(policy).map_err(|e| match e {
        GpuError::Disabled => anyhow::anyhow!(
            "MEDCHAIN_GPU=off: nothing to benchmark; unset it (real GPUs) or set MEDCHAIN_GPU=force \
             (also the llvmpipe software adapter)"
        ),
        GpuError::NoAdapter(found) => anyhow::anyhow!(
            "no GPU adapter is usable under MEDCHAIN_GPU={} ({found}). A real GPU needs its Vulkan \
             driver; MEDCHAIN_GPU=force also accepts the llvmpipe/lavapipe software adapter \
             (mesa-vulkan-drivers), which checks correctness but does not measure GPU speed",
            std::env::var("MEDCHAIN_GPU").unwrap_or_else(|_| "auto".into())
        ),
        other => anyhow::Error::new(other).context("opening the GPU"),
    })
}

/// Runs `medchain bench`.
pub fn run(command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Gpu(a) => run_gpu(a),
        BenchCommand::Index(a) => run_index(a),
        BenchCommand::Ops(a) => run_ops(a),
        BenchCommand::Reads(a) => crate::cli::bench_reads::run(a),
    }
}

fn run_ops(a: OpsBenchArgs) -> Result<ExitCode> {
    let cfg = ops_bench::Config {
        sizes: a.sizes.clone().unwrap_or_else(|| ops_bench::SIZES.to_vec()),
        runs: a.runs,
        warmup: a.warmup,
        seed: a.seed,
    };
    let temp;
    let dir = match &a.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("medchain-bench-ops-")
                .tempdir()
                .context("creating a temporary folder")?;
            temp.path().join("ops")
        }
    };
    // The bar goes to stderr and only to a terminal, so `--json > file` still shows it.
    let mut bar: Option<ProgressBar> = None;
    let mut on_event = |ev: ops_bench::Event| match ev {
        ops_bench::Event::Setup => {
            let b = crate::cli::load::progress_bar(1, "key gen", false);
            b.enable_steady_tick(Duration::from_millis(200));
            bar = Some(b);
        }
        ops_bench::Event::Start { body_bytes, total } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            bar = Some(crate::cli::load::progress_bar(total, &ops_bench::size_label(body_bytes), false));
        }
        ops_bench::Event::Progress { done } => {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        }
        ops_bench::Event::Finish => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
    };
    let result = ops_bench::run(&cfg, &dir, &mut on_event);
    if let Some(b) = bar.take() {
        b.finish_and_clear();
    }
    let report = result?;
    crate::output::report(a.json, &report, || ops_bench::render_tables(&report));
    Ok(ExitCode::SUCCESS)
}

fn run_index(a: IndexBenchArgs) -> Result<ExitCode> {
    let cfg = ::bench::index::Config {
        records: a.records,
        labels_per_record: a.labels_per_record,
        epochs: a.epochs,
        hospitals: a.hospitals,
        repeats: a.repeats,
        seed: a.seed,
    };
    let temp;
    let dir = match &a.dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("medchain-bench-index-")
                .tempdir()
                .context("creating a temporary folder")?;
            temp.path().to_path_buf()
        }
    };
    let mut bar: Option<ProgressBar> = None;
    let mut on_event = |ev: index_bench::Event| match ev {
        index_bench::Event::Start { phase, total } => {
            let b = crate::cli::load::progress_bar(total.max(1), phase.name(), a.json);
            if total == 0 {
                b.enable_steady_tick(Duration::from_millis(200));
            }
            bar = Some(b);
        }
        index_bench::Event::Progress { done } => {
            if let Some(b) = &bar {
                b.set_position(done);
            }
        }
        index_bench::Event::Finish => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
        }
    };
    let report = index_bench::run(&cfg, &dir, &mut on_event)?;
    crate::output::report(a.json, &report, || index_bench::render_tables(&report));
    let mismatches = report.mismatches();
    if !mismatches.is_empty() {
        for m in &mismatches {
            eprintln!("error: the indexes disagree with the corpus, query figures are withheld: {m}");
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_gpu(a: GpuBenchArgs) -> Result<ExitCode> {
    let cfg = config(&a)?;
    let ctx = open_gpu()?;
    if ctx.is_software() {
        eprintln!("WARNING: {} ({}): {}", ctx.info.name, ctx.describe(), gpu::SOFTWARE_WARNING);
    }
    if !ctx.has_timestamps() {
        eprintln!("note: {} has no timestamp queries: GPU kernel-only times will not be shown", ctx.info.name);
    }
    let plan = cfg.plan();
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new(plan.len() as u64);
        let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] [{bar:30}] {pos}/{len} points  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        ProgressBar::hidden()
    };
    let kernels = Kernels::new(ctx);
    let mut on_event = |ev: Event| match ev {
        Event::Compiling { op } => bar.set_message(format!("{op}: building GPU pipelines")),
        Event::Preparing { op, n } => bar.set_message(format!("{op}: building {} fixtures", gpu::thousands(n))),
        Event::Measuring { op, n } => bar.set_message(format!("{op}: batch {}", gpu::thousands(n))),
        Event::Done { .. } => bar.inc(1),
        Event::Skipped { op, points } => {
            bar.println(format!("{op}: GPU failed; skipping its {points} larger batch(es)"));
            bar.inc(points as u64);
        }
    };
    let result = gpu::run(&kernels, &cfg, &mut on_event);
    bar.finish_and_clear();
    let report = result?;
    for op in &report.ops {
        if let Some(err) = &op.error {
            eprintln!("GPU error in {}: {err}", op.op);
        }
    }
    if let Some(path) = &a.plot {
        gpu::plot_svg(&report, path)
            .map_err(|e| anyhow::anyhow!(e))
            .with_context(|| format!("writing the plot to {}", path.display()))?;
        if !a.json {
            eprintln!("plot written to {}", path.display());
        }
    }
    crate::output::report(a.json, &report, || gpu::render_tables(&report));
    // A submission that timed out may still be running on the device, and dropping the device
    // waits for it (minutes on a software adapter): leave the context to process exit.
    std::mem::forget(kernels);
    let mismatches = report.mismatches();
    if !mismatches.is_empty() {
        for m in &mismatches {
            eprintln!("error: the GPU returned WRONG RESULTS, its figures are not reported: {m}");
        }
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: BenchCommand,
    }

    fn cfg(args: &[&str]) -> Result<Config> {
        let mut argv = vec!["t", "gpu"];
        argv.extend_from_slice(args);
        let BenchCommand::Gpu(a) = T::try_parse_from(argv)?.c else {
            anyhow::bail!("not a gpu command");
        };
        config(&a)
    }

    #[test]
    fn flags_shape_the_plan() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.plan().len(), 11 + 11 + 6 + 11);
        let c = cfg(&["--quick"]).unwrap();
        assert_eq!(c.sizes_for(Op::Ed25519Verify).last(), Some(&4096));
        assert_eq!(c.sizes_for(Op::Sha256Short).last(), Some(&65536));
        assert_eq!(c.repeats, 3);
        let c = cfg(&["--max-batch", "16", "--ops", "ed25519,sha256-64", "--op-max", "ed25519=4"]).unwrap();
        assert_eq!(c.ops, vec![Op::Ed25519Verify, Op::Sha256Short]);
        assert_eq!(c.plan().len(), 2 + 3);
        let c = cfg(&["--sizes", "1000,10", "--max-batch", "5000"]).unwrap();
        assert_eq!(c.sizes_for(Op::MerkleRoot), vec![10, 1000]);
        assert!(cfg(&["--ops", "md5"]).is_err());
        assert!(cfg(&["--op-max", "ed25519"]).is_err());
        assert!(cfg(&["--repeats", "0"]).is_err());
        assert!(cfg(&["--max-batch", "0"]).is_err());
        assert!(cfg(&["--sizes", "0"]).is_err());
        assert!(cfg(&["--point-budget", "-1"]).is_err());
    }
}
