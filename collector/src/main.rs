//! The `ringtail` binary: `run`, `validate` and `default-config`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crossbeam::channel::select;
use ringtail::config::{self, ConfigError};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ringtail: a node-level log collector.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector (with the built-in default configuration when no --config is given).
    Run {
        /// Configuration file (YAML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a configuration file and list every problem in it.
    Validate {
        /// Configuration file (YAML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print the built-in default configuration.
    DefaultConfig,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RINGTAIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let result = match cli.command {
        Command::Run { config } => run(config),
        Command::Validate { config } => validate(&config),
        Command::DefaultConfig => {
            print!("{}", config::BUILTIN_DEFAULT);
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&PathBuf>) -> Result<config::Config, ConfigError> {
    match path {
        Some(path) => config::load(path),
        None => config::load_builtin_default(),
    }
}

fn validate(path: &PathBuf) -> anyhow::Result<ExitCode> {
    let config = load(Some(path))?;
    println!(
        "{}: configuration is valid ({} source{}, {} sink{})",
        path.display(),
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        config.sinks.len(),
        if config.sinks.len() == 1 { "" } else { "s" },
    );
    Ok(ExitCode::SUCCESS)
}

fn run(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = load(path.as_ref())?;
    if path.is_none() {
        tracing::info!(
            "no --config given: running the built-in default (see `ringtail default-config`)"
        );
    }
    // Registered before the pipeline starts so that an early SIGTERM is not lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("cannot install signal handlers")?;
    let (signal_tx, signal_rx) = crossbeam::channel::bounded(1);
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = signal_tx.send(signal);
            }
        })
        .context("cannot start the signal thread")?;

    raise_open_file_limit();
    let running = ringtail::pipeline::start(&config).context("cannot start the pipeline")?;
    tracing::info!(
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        workers = config.pipeline.workers,
        api = ?running.api_addr(),
        "ringtail is running"
    );
    let failed = select! {
        recv(signal_rx) -> signal => {
            tracing::info!(signal = ?signal.ok(), "stopping: finishing pending records and waiting for acknowledgements");
            None
        }
        recv(running.failures()) -> failure => {
            let reason = failure.unwrap_or_else(|_| "a pipeline thread stopped".to_string());
            running.mark_failed(&reason);
            tracing::error!(%reason, "stopping because a pipeline stage failed");
            Some(reason)
        }
    };
    running.shutdown().context("shutdown")?;
    match failed {
        None => {
            tracing::info!("stopped cleanly");
            Ok(ExitCode::SUCCESS)
        }
        Some(reason) => Err(anyhow::anyhow!("pipeline failed: {reason}")),
    }
}

/// Every file read holds a descriptor while it is read (and deleted files until drained), so
/// the soft open-file limit (often 1024) is raised to the hard limit, as Go programs do.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) if current < maximum => {
            let raised = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => {
                    tracing::info!(from = current, to = maximum, "raised the open-file limit")
                }
                Err(e) => {
                    tracing::warn!(limit = current, error = %e, "cannot raise the open-file limit")
                }
            }
        }
        (Some(current), _) => tracing::debug!(limit = current, "open-file limit"),
        (None, _) => {}
    }
}
