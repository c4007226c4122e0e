//! `medchain gpu`: the adapters and the crossover (`info`), and verification of a file of
//! signatures on a chosen backend (`verify`).

use anyhow::{bail, Context, Result};
use engine::crypto::{PublicKey, Signature};
use engine::verifier::{BatchVerifier, CpuVerifier, VerifyItem};
use shaders::{AdapterPolicy, GpuContext, GpuVerifier};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// GPU commands.
#[derive(clap::Subcommand, Debug)]
pub enum GpuCommand {
    /// Adapters found, the chosen one, its limits and features, the measured crossover.
    Info {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Skip the crossover measurement (a few seconds on a real GPU).
        #[arg(long)]
        no_crossover: bool,
    },
    /// Verify a file of signatures: one JSON object per line, {"msg":HEX,"key":HEX,"sig":HEX}
    /// (other fields ignored); prints {"valid":true|false} per line, in order.
    Verify {
        /// The input file (`-` for standard input).
        #[arg(long)]
        input: PathBuf,
        /// Where to verify. `gpu` fails when no adapter is usable (MEDCHAIN_GPU=force admits
        /// the software one); it never falls back to the CPU silently.
        #[arg(long, value_enum)]
        backend: Backend,
    },
}

/// `medchain gpu verify --backend`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// ed25519-consensus across all cores: the reference.
    Cpu,
    /// The WGSL kernel.
    Gpu,
}

/// Runs `medchain gpu`.
pub fn run(command: GpuCommand) -> Result<ExitCode> {
    match command {
        GpuCommand::Info { json, no_crossover } => info(json, no_crossover),
        GpuCommand::Verify { input, backend } => verify(&input, backend),
    }
}

fn info(json: bool, no_crossover: bool) -> Result<ExitCode> {
    let policy = AdapterPolicy::from_env()?;
    let adapters = shaders::gpu::list_adapters(policy);
    let chosen = GpuContext::new(policy);
    let mut report = serde_json::json!({
        "policy": format!("{policy:?}").to_lowercase(),
        "adapters": adapters,
    });
    match &chosen {
        Err(e) => report["chosen"] = serde_json::json!({ "error": e.to_string() }),
        Ok(ctx) => {
            let l = &ctx.limits;
            report["chosen"] = serde_json::json!({
                "adapter": ctx.summary(),
                "software": ctx.is_software(),
                "limits": {
                    "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
                    "max_buffer_size": l.max_buffer_size,
                    "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension,
                    "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
                    "max_compute_workgroup_size_x": l.max_compute_workgroup_size_x,
                    "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
                    "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage,
                },
                "features": {
                    "shader_int64": ctx.has_int64(),
                    "timestamp_query": ctx.has_timestamps(),
                },
            });
            if !no_crossover {
                let gpu = GpuVerifier::new(ctx.clone()).context("building the GPU kernels")?;
                let c = shaders::routing::measure_crossover(&gpu);
                report["crossover"] = serde_json::to_value(c)?;
            }
        }
    }
    if json {
        println!("{report}");
    } else {
        print_info(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_info(r: &serde_json::Value) {
    println!("policy (MEDCHAIN_GPU): {}", r["policy"].as_str().unwrap_or("?"));
    println!("adapters found:");
    let adapters = r["adapters"].as_array().cloned().unwrap_or_default();
    if adapters.is_empty() {
        println!("  none (install a Vulkan driver; mesa-vulkan-drivers gives the software one)");
    }
    for a in adapters {
        println!(
            "  {} [{} {}] driver {}{}",
            a["name"].as_str().unwrap_or("?"),
            a["backend"].as_str().unwrap_or("?"),
            a["device_type"].as_str().unwrap_or("?"),
            a["driver"].as_str().unwrap_or("?"),
            if a["acceptable"].as_bool() == Some(true) { "" } else { "  (not used under this policy)" }
        );
    }
    let c = &r["chosen"];
    if let Some(e) = c["error"].as_str() {
        println!("chosen: none: {e}");
        return;
    }
    println!(
        "chosen: {}{}",
        c["adapter"]["name"].as_str().unwrap_or("?"),
        if c["software"] == true { " (software: correct, not fast)" } else { "" }
    );
    if let Some(limits) = c["limits"].as_object() {
        println!("limits:");
        for (k, v) in limits {
            println!("  {k}: {v}");
        }
    }
    println!(
        "features: SHADER_INT64 {}, TIMESTAMP_QUERY {}",
        c["features"]["shader_int64"], c["features"]["timestamp_query"]
    );
    if let Some(x) = r.get("crossover") {
        let show = |v: &serde_json::Value| {
            v.as_u64().map_or("never (the CPU wins at every size tried)".to_string(), |n| format!("{n} items"))
        };
        println!("crossover: signatures {}, hashing {}", show(&x["verify"]), show(&x["hash"]));
    }
}

/// One parsed input line.
struct Item {
    msg: Vec<u8>,
    key: Option<PublicKey>,
    sig: Option<Signature>,
}

fn field(v: &serde_json::Value, name: &str, line: usize) -> Result<Vec<u8>> {
    let s = v
        .get(name)
        .with_context(|| {
            format!("line {line}: missing field \"{name}\" (want {{\"msg\":HEX,\"key\":HEX,\"sig\":HEX}})")
        })?
        .as_str()
        .with_context(|| format!("line {line}: field \"{name}\" must be a hex string"))?;
    hex::decode(s).with_context(|| format!("line {line}: field \"{name}\" is not valid hex"))
}

fn parse(input: &PathBuf) -> Result<Vec<Item>> {
    let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut items = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("{}: cannot read line {n}", input.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(&line).with_context(|| format!("{}: line {n} is not JSON", input.display()))?;
        let msg = field(&v, "msg", n)?;
        // A key or signature of the wrong length is a signature that does not verify.
        let key = <[u8; 32]>::try_from(field(&v, "key", n)?).ok().map(PublicKey);
        let sig = <[u8; 64]>::try_from(field(&v, "sig", n)?).ok().map(Signature);
        items.push(Item { msg, key, sig });
    }
    Ok(items)
}

fn verify(input: &PathBuf, backend: Backend) -> Result<ExitCode> {
    let items = parse(input)?;
    let verifier: Box<dyn BatchVerifier> = match backend {
        Backend::Cpu => Box::new(CpuVerifier::new()),
        Backend::Gpu => {
            let policy = AdapterPolicy::from_env()?;
            let ctx = match GpuContext::new(policy) {
                Ok(ctx) => ctx,
                Err(e) => bail!(
                    "--backend gpu: {e} (MEDCHAIN_GPU=force admits a software adapter; --backend cpu uses the CPU)"
                ),
            };
            Box::new(GpuVerifier::new(ctx).context("building the GPU kernels")?)
        }
    };
    let well_formed: Vec<(usize, VerifyItem<'_>)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| match (&it.key, &it.sig) {
            (Some(key), Some(sig)) => Some((i, VerifyItem { msg: &it.msg, key, sig })),
            _ => None,
        })
        .collect();
    let batch: Vec<VerifyItem<'_>> = well_formed.iter().map(|(_, it)| *it).collect();
    let verdicts = verifier.verify_batch(&batch).with_context(|| format!("{} failed", verifier.name()))?;
    if verdicts.len() != batch.len() {
        bail!("{} returned {} verdicts for {} items", verifier.name(), verdicts.len(), batch.len());
    }
    let mut valid = vec![false; items.len()];
    for ((i, _), ok) in well_formed.iter().zip(verdicts) {
        valid[*i] = ok;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for v in valid {
        writeln!(out, "{}", serde_json::json!({ "valid": v }))?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
