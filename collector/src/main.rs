//! The `ringtail` binary: `run`, `validate` and `default-config`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crossbeam::channel::select;
use ringtail::config::{self, ConfigError};

mod reload;

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

/// What the main thread waits for besides pipeline failures.
enum Event {
    /// SIGTERM or SIGINT.
    Stop(i32),
    /// SIGHUP, or the configuration file (or the directory a ConfigMap swaps) changed.
    Reload(&'static str),
}

fn run(path: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let mut config = load(path.as_ref())?;
    let mut text = match &path {
        Some(path) => Some(std::fs::read(path).context("cannot read the configuration")?),
        None => {
            tracing::info!(
                "no --config given: running the built-in default (see `ringtail default-config`)"
            );
            None
        }
    };
    // Registered before the pipeline starts so that an early SIGTERM is not lost.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ])
    .context("cannot install signal handlers")?;
    let (events_tx, events) = crossbeam::channel::bounded(16);
    let signal_tx = events_tx.clone();
    std::thread::Builder::new()
        .name("signals".to_string())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == signal_hook::consts::SIGHUP {
                    Event::Reload("SIGHUP")
                } else {
                    Event::Stop(signal)
                };
                // A full queue already holds a reload or a stop.
                let _ = signal_tx.try_send(event);
            }
        })
        .context("cannot start the signal thread")?;
    if let Some(path) = &path {
        reload::watch(path, events_tx).context("cannot watch the configuration file")?;
    }

    raise_open_file_limit();
    let metrics = std::sync::Arc::new(ringtail::metrics::Metrics::new());
    let mut running = ringtail::pipeline::start_with_metrics(&config, metrics.clone())
        .context("cannot start the pipeline")?;
    log_running(&config, &running);
    loop {
        let event = select! {
            recv(events) -> event => event.ok(),
            recv(running.failures()) -> failure => {
                let reason = failure.unwrap_or_else(|_| "a pipeline thread stopped".to_string());
                running.mark_failed(&reason);
                tracing::error!(%reason, "stopping because a pipeline stage failed");
                running.shutdown().context("shutdown")?;
                return Err(anyhow::anyhow!("pipeline failed: {reason}"));
            }
        };
        match event {
            Some(Event::Stop(signal)) => {
                tracing::info!(
                    signal,
                    "stopping: finishing pending records and waiting for acknowledgements"
                );
                break;
            }
            None => break,
            Some(Event::Reload(why)) => {
                let Some(path) = &path else {
                    tracing::info!(why, "running the built-in default: nothing to reload");
                    continue;
                };
                let label = |result| ringtail::metrics::ReloadLabel { result };
                let new_text = match std::fs::read(path) {
                    Ok(t) => t,
                    Err(e) => {
                        tracing::error!(why, error = %e, file = %path.display(), "configuration not reloaded: cannot read it; the running one stays");
                        metrics
                            .config_reloads
                            .get_or_create(&label("rejected"))
                            .inc();
                        continue;
                    }
                };
                if text.as_deref() == Some(new_text.as_slice()) {
                    tracing::debug!(why, "configuration unchanged");
                    metrics
                        .config_reloads
                        .get_or_create(&label("unchanged"))
                        .inc();
                    continue;
                }
                let new_config = match reload::check(&config, config::load(path)) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(
                            why,
                            "configuration not reloaded, the running one stays:\n{e}"
                        );
                        metrics
                            .config_reloads
                            .get_or_create(&label("rejected"))
                            .inc();
                        // Not tried again until the file changes again.
                        text = Some(new_text);
                        continue;
                    }
                };
                tracing::info!(
                    why,
                    "applying the new configuration: draining, then restarting the pipeline on its checkpoints"
                );
                reload::drain_deleted(&metrics, config.pipeline.shutdown_timeout);
                running.shutdown().context("shutdown for a reload")?;
                let (next, applied) = match ringtail::pipeline::start_with_metrics(
                    &new_config,
                    metrics.clone(),
                ) {
                    Ok(r) => (r, true),
                    Err(e) => {
                        tracing::error!(error = %e, "the new configuration does not start; going back to the previous one");
                        let previous =
                            ringtail::pipeline::start_with_metrics(&config, metrics.clone())
                                .context("cannot restart the previous configuration either")?;
                        (previous, false)
                    }
                };
                running = next;
                // Not tried again until the file changes again.
                text = Some(new_text);
                let result = if applied {
                    config = new_config;
                    "applied"
                } else {
                    "rejected"
                };
                metrics.config_reloads.get_or_create(&label(result)).inc();
                log_running(&config, &running);
            }
        }
    }
    running.shutdown().context("shutdown")?;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

fn log_running(config: &config::Config, running: &ringtail::pipeline::Running) {
    tracing::info!(
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        workers = config.pipeline.workers,
        api = ?running.api_addr(),
        "ringtail is running"
    );
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
