//! `medchain node`: runs one node until SIGINT or SIGTERM.

use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `medchain node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The node's node.toml.
    #[arg(long)]
    pub config: PathBuf,
    /// Log as JSON lines instead of text.
    #[arg(long)]
    pub log_json: bool,
}

/// Runs `medchain node`.
pub fn run(args: NodeArgs) -> Result<ExitCode> {
    crate::cli::init_tracing(args.log_json);
    let config = net::NodeConfig::load(&args.config)
        .with_context(|| format!("cannot load the node configuration {}", args.config.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(async move {
        let verifier = tokio::task::spawn_blocking({
            let gpu = config.gpu.clone();
            move || verifier_for(&gpu)
        })
        .await
        .context("choosing the signature verifier")??;
        let options = net::NodeOptions { verifier: std::sync::Arc::new(verifier) };
        let handle = net::Node::start_with(config, options).await.context("the node failed to start")?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        handle.shutdown().await;
        Ok(ExitCode::SUCCESS)
    });
    // The chain is durable at every commit; a blocking task still verifying a submission must
    // not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    result
}

/// The node's verifier from `[gpu]`; `MEDCHAIN_GPU`, when set, overrides the mode.
pub fn verifier_for(gpu: &net::GpuConfig) -> Result<shaders::RoutedVerifier> {
    let policy = match std::env::var("MEDCHAIN_GPU") {
        Ok(_) => shaders::AdapterPolicy::from_env()?,
        Err(_) => match gpu.mode {
            net::GpuMode::Auto => shaders::AdapterPolicy::Auto,
            net::GpuMode::Force => shaders::AdapterPolicy::Force,
            net::GpuMode::Off => shaders::AdapterPolicy::Off,
        },
    };
    Ok(shaders::RoutedVerifier::for_node(policy, gpu.crossover))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
