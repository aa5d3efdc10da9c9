//! The `flashcore` binary: read config, set up telemetry, serve until signalled
//! (or run a `keys` subcommand).

use clap::Parser;
use flashcore_http::cli::{Cli, Command};
use flashcore_http::{Application, Config, telemetry};

/// mimalloc, because every request allocates (messages, reply channels, JSON),
/// so the allocator sits on the hot path.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::from_env()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Some(Command::Keys { action }) => {
            telemetry::init_for_cli();
            runtime.block_on(flashcore_http::cli::keys(&config, action))
        }
        None | Some(Command::Serve) => {
            // Outside the runtime: the trace exporter's client blocks, and
            // must be made and dropped where blocking is allowed.
            let telemetry = telemetry::init(&config.log_format);
            let served = runtime.block_on(async {
                let app = Application::build(config).await?;
                app.run_until_stopped(shutdown_signal()).await
            });
            drop(runtime);
            // Spans still queued go out before the process ends.
            telemetry.shutdown();
            served
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
