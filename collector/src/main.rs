//! The `ringtail` binary: `run`, `validate` and `default-config`.
//!
//! Owns the command line, logging and the run loop (failures, signals, reloads); it may not
//! reach into a stage: it starts and stops a [`ringtail::pipeline`].

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crossbeam::channel::select;
use ringtail::api::{Api, HealthSlot};
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
    /// Run the collector (with the built-in default configuration when neither --config nor
    /// --config-dir is given).
    Run {
        /// Configuration file (YAML); with --config-dir, the settings beside its pipelines.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Directory whose every `*.yaml` is a pipeline (sources, processors, sinks).
        #[arg(long)]
        config_dir: Option<PathBuf>,
    },
    /// Check a configuration file (or a pipeline directory) and list every problem in it.
    Validate {
        /// Configuration file (YAML); with --config-dir, the settings beside its pipelines.
        #[arg(long, short, required_unless_present = "config_dir")]
        config: Option<PathBuf>,
        /// Directory whose every `*.yaml` is a pipeline: each file is checked.
        #[arg(long)]
        config_dir: Option<PathBuf>,
    },
    /// Print the built-in default configuration.
    DefaultConfig,
}

fn main() -> ExitCode {
    ringtail::memory::keep_the_heap_small();
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
        Command::Run { config, config_dir } => run(Origin {
            file: config,
            dir: config_dir,
        }),
        Command::Validate { config, config_dir } => validate(&Origin {
            file: config,
            dir: config_dir,
        }),
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

/// Where the configuration comes from: a file, a pipeline directory (with an optional
/// settings file), or neither (the built-in default).
struct Origin {
    file: Option<PathBuf>,
    dir: Option<PathBuf>,
}

/// A configuration as loaded: the files it could not use (pipeline directories only) and
/// the text of each pipeline file it did.
struct Loaded {
    config: config::Config,
    rejected: Vec<ConfigError>,
    used: BTreeMap<PathBuf, String>,
}

impl Origin {
    fn load(&self, last_good: &BTreeMap<PathBuf, String>) -> Result<Loaded, ConfigError> {
        let single = |config| Loaded {
            config,
            rejected: Vec::new(),
            used: BTreeMap::new(),
        };
        match (&self.file, &self.dir) {
            (settings, Some(dir)) => {
                let loaded = config::dir::load(settings.as_deref(), dir, last_good)?;
                Ok(Loaded {
                    config: loaded.config,
                    rejected: loaded.rejected,
                    used: loaded.used,
                })
            }
            (Some(path), None) => config::load(path).map(single),
            (None, None) => config::load_builtin_default().map(single),
        }
    }

    /// The contents that make up the configuration now (to tell whether a reload changes
    /// anything); empty for the built-in default.
    fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>)> {
        match (&self.file, &self.dir) {
            (settings, Some(dir)) => config::dir::snapshot(settings.as_deref(), dir),
            (Some(path), None) => vec![(path.clone(), std::fs::read(path).unwrap_or_default())],
            (None, None) => Vec::new(),
        }
    }

    /// The directories to watch for changes: the settings file's (and its link target's),
    /// and the pipeline directory (and its link target).
    fn watched(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(file) = &self.file {
            dirs.extend(file.parent().map(std::path::Path::to_path_buf));
            if let Ok(target) = std::fs::canonicalize(file) {
                dirs.extend(target.parent().map(std::path::Path::to_path_buf));
            }
        }
        if let Some(dir) = &self.dir {
            dirs.push(dir.clone());
            dirs.extend(std::fs::canonicalize(dir).ok());
        }
        for dir in &mut dirs {
            if dir.as_os_str().is_empty() {
                *dir = PathBuf::from(".");
            }
        }
        dirs.sort();
        dirs.dedup();
        dirs
    }

    fn reloadable(&self) -> bool {
        self.file.is_some() || self.dir.is_some()
    }
}

fn validate(origin: &Origin) -> anyhow::Result<ExitCode> {
    let loaded = origin.load(&BTreeMap::new())?;
    for rejected in &loaded.rejected {
        eprintln!("error: {rejected}");
    }
    let config = &loaded.config;
    let what = match (&origin.dir, &origin.file) {
        (Some(dir), _) => dir.display().to_string(),
        (None, Some(file)) => file.display().to_string(),
        (None, None) => "built-in default".to_string(),
    };
    let counts = format!(
        "{} source{}, {} sink{}",
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" },
        config.sinks.len(),
        if config.sinks.len() == 1 { "" } else { "s" },
    );
    if !loaded.rejected.is_empty() {
        println!(
            "{what}: {} file(s) rejected; the others are valid ({counts})",
            loaded.rejected.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("{what}: configuration is valid ({counts})");
    Ok(ExitCode::SUCCESS)
}

/// Logs the pipeline files a load could not use.
fn log_rejected(rejected: &[ConfigError]) {
    for error in rejected {
        tracing::error!("pipeline file not used (the others run):\n{error}");
    }
}

/// What the main thread waits for besides pipeline failures.
enum Event {
    /// SIGTERM or SIGINT.
    Stop(i32),
    /// SIGHUP, or the configuration file (or the directory a ConfigMap swaps) changed.
    Reload(&'static str),
}

fn run(origin: Origin) -> anyhow::Result<ExitCode> {
    let mut snapshot = origin.snapshot();
    let loaded = origin.load(&BTreeMap::new())?;
    log_rejected(&loaded.rejected);
    let mut config = loaded.config;
    let mut last_good = loaded.used;
    if !origin.reloadable() {
        tracing::info!(
            "no --config given: running the built-in default (see `ringtail default-config`)"
        );
    }
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
    if origin.reloadable() {
        reload::watch(&origin.watched(), events_tx).context("cannot watch the configuration")?;
    }

    raise_open_file_limit();
    let metrics = std::sync::Arc::new(ringtail::metrics::Metrics::new());
    let mut running = ringtail::pipeline::start_with_metrics(&config, metrics.clone())
        .context("cannot start the pipeline")?;
    // The API answers once the first pipeline runs (its start-up scan has handed every
    // existing file on), and outlives every pipeline: it answers during reloads and while
    // stopping.
    let health = std::sync::Arc::new(HealthSlot::default());
    health.set(running.health());
    let mut api = match Api::start(config.api.listen, metrics.clone(), health.clone()) {
        Ok(api) => api,
        Err(e) => {
            running.shutdown().context("shutdown")?;
            return Err(anyhow::Error::new(e).context("cannot start the pipeline"));
        }
    };
    ringtail::memory::release_start_up_memory();
    log_running(&config, &api);
    let count = |result| {
        metrics
            .config_reloads
            .get_or_create(&ringtail::metrics::ReloadLabel { result })
            .inc();
    };
    loop {
        let event = select! {
            recv(events) -> event => event.ok(),
            recv(running.failures()) -> failure => {
                let reason = failure.unwrap_or_else(|_| "a pipeline thread stopped".to_string());
                running.mark_failed(&reason);
                tracing::error!(%reason, "stopping because a pipeline stage failed");
                running.shutdown().context("shutdown")?;
                api.stop();
                return Err(anyhow::anyhow!("pipeline failed: {reason}"));
            }
        };
        let why = match event {
            Some(Event::Reload(why)) => why,
            Some(Event::Stop(signal)) => {
                if let Some(sidecar) = &config.sidecar {
                    tracing::info!(
                        signal,
                        "sidecar: reading until every file is delivered and quiet before stopping"
                    );
                    running.drain(sidecar);
                }
                tracing::info!(
                    signal,
                    "stopping: finishing pending records and waiting for acknowledgements"
                );
                break;
            }
            None => break,
        };
        if !origin.reloadable() {
            tracing::info!(why, "running the built-in default: nothing to reload");
            continue;
        }
        let now = origin.snapshot();
        if now == snapshot {
            tracing::debug!(why, "configuration unchanged");
            count("unchanged");
            continue;
        }
        // Not tried again until something changes again.
        snapshot = now;
        let loaded = match origin.load(&last_good) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::error!(
                    why,
                    "configuration not reloaded, the running one stays:\n{e}"
                );
                count("rejected");
                continue;
            }
        };
        log_rejected(&loaded.rejected);
        if !loaded.rejected.is_empty() {
            count("rejected");
        }
        if origin.dir.is_some() && loaded.used == last_good && !loaded.rejected.is_empty() {
            // Only files that are rejected changed: what runs stays as it is.
            continue;
        }
        let new_config = match reload::check(&config, loaded.config) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    why,
                    "configuration not reloaded, the running one stays:\n{e}"
                );
                count("rejected");
                continue;
            }
        };
        // A new API address is bound before anything stops: if it cannot be, nothing changes.
        let new_api = if new_config.api.listen == config.api.listen {
            None
        } else {
            match Api::start(new_config.api.listen, metrics.clone(), health.clone()) {
                Ok(new_api) => Some(new_api),
                Err(e) => {
                    tracing::error!(
                        why,
                        error = %e,
                        "configuration not reloaded, the running one stays"
                    );
                    count("rejected");
                    continue;
                }
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
                let previous = ringtail::pipeline::start_with_metrics(&config, metrics.clone())
                    .context("cannot restart the previous configuration either")?;
                (previous, false)
            }
        };
        running = next;
        health.set(running.health());
        ringtail::memory::release_start_up_memory();
        if applied {
            config = new_config;
            last_good = loaded.used;
            if let Some(new_api) = new_api {
                std::mem::replace(&mut api, new_api).stop();
            }
            count("applied");
        } else {
            if let Some(new_api) = new_api {
                new_api.stop();
            }
            count("rejected");
        }
        log_running(&config, &api);
    }
    running.shutdown().context("shutdown")?;
    api.stop();
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

fn log_running(config: &config::Config, api: &Api) {
    tracing::info!(
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        workers = config.pipeline.workers,
        api = ?Some(api.addr()),
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
