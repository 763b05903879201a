//! Configuration: loading the YAML file and turning it into each stage's settings.
//!
//! Two layers, as in linkerd2-proxy and youki: [`raw`] is what serde reads (every key
//! documented, unknown keys rejected), and [`Config`] is what the rest of ringtail uses: the
//! settings type of each stage, defined by the stage next to the code that uses it. The step
//! between them reports *every* problem at once — bad globs, bad regexes, unknown keys with
//! their line, missing sinks, an unwritable `data_dir` — so `ringtail validate` and
//! `ringtail run` print the same complete list.
//!
//! - [`problem`]: what is wrong, with where.
//! - [`raw`]: the serde layer (spans kept).
//! - [`scalar`]: choices, counts, sizes, durations.
//! - [`secrets`]: `${VAR}` and `${file:/path}` in values, expanded before validation.
//! - [`document`]: the top-level keys and the one-stage sections; builds the [`Config`].
//! - [`source`], [`processor`], [`sink`]: one source, processor, sink.
//! - [`http`]: what HTTP sinks share, and the OTLP sink.
//! - [`pipeline`]: the wiring's own section.
//! - [`limits`]: memory and CPU ceilings and the buffer arithmetic.
//! - [`dir`]: `--config-dir`, one pipeline per file.
//!
//! Configuration sits above the stages and imports their settings types; no stage imports
//! it. Only the wiring (`pipeline.rs`) and the binary read a [`Config`].
//!
//! Owns the YAML and its problems; it may not start anything — the wiring does.

pub mod dir;
pub mod document;
pub mod http;
pub mod limits;
pub mod pipeline;
pub mod problem;
pub mod processor;
pub mod raw;
pub mod scalar;
pub mod secrets;
pub mod sink;
pub mod source;

use std::path::Path;

pub use document::{Config, DEFAULT_DATA_DIR};
pub use limits::{LimitsConfig, MEMORY_OVERHEAD};
pub use problem::{ConfigError, Problem};

use crate::sink::SinkKind;

/// The configuration used by `ringtail run` without `--config`: tail the host's pod logs
/// (CRI) and plain `/var/log/*.log` files, and print records to stdout.
pub const BUILTIN_DEFAULT: &str = r#"# ringtail built-in default: pod logs and host logs to stdout.
data_dir: /var/lib/ringtail
api:
  listen: 127.0.0.1:9100
sources:
  - name: pods
    paths: ["/var/log/pods/**/*.log"]
    format: cri
  - name: host
    paths: ["/var/log/*.log"]
    format: raw
sinks:
  - name: out
    type: stdout
"#;

/// Loads and validates a configuration file, including the checks that look at this machine
/// (is `data_dir` writable?).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// Loads and validates the built-in default configuration.
pub fn load_builtin_default() -> Result<Config, ConfigError> {
    load_str(BUILTIN_DEFAULT, "built-in default configuration")
}

/// Validates configuration text (`origin` names it in errors), including machine checks.
pub fn load_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let (config, mut problems) = parse(text);
    if let Some(config) = &config {
        problems.extend(check_environment(config));
    }
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid {
            origin: origin.to_string(),
            problems,
        }),
    }
}

/// Parses and validates configuration text without touching the filesystem. Returns the
/// configuration when it could be built, and every problem found.
pub fn parse(text: &str) -> (Option<Config>, Vec<Problem>) {
    document::parse_with(text, false)
}

/// Like [`parse`], for the settings file beside a `--config-dir`: `sources` and `sinks` may be
/// left out (the directory's pipelines bring them).
pub fn parse_settings(text: &str) -> (Option<Config>, Vec<Problem>) {
    document::parse_with(text, true)
}

/// Checks that need the machine: `data_dir` and file-sink directories must be writable.
pub fn check_environment(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(e) = probe_writable(&config.data_dir) {
        problems.push(Problem::at(
            None,
            "data_dir",
            format!("{} is not writable: {e}", config.data_dir.display()),
        ));
    }
    for (i, sink) in config.sinks.iter().enumerate() {
        let (field, file) = match &sink.kind {
            SinkKind::File(file) => ("path", file.path.as_path()),
            kind => match kind.dead_letter() {
                Some(path) => ("dead_letter", path),
                None => continue,
            },
        };
        let dir = file.parent().unwrap_or(Path::new("/"));
        if let Err(e) = probe_writable(dir) {
            problems.push(Problem::at(
                None,
                format!("sinks[{i}].{field}"),
                format!(
                    "cannot write {}: directory {} is not writable: {e}",
                    file.display(),
                    dir.display()
                ),
            ));
        }
    }
    problems
}

/// Whether files can be created in `dir`, or in its nearest existing ancestor when `dir` does
/// not exist yet (it will be created at start-up). Creates and removes a probe file.
fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        existing = existing.parent().unwrap_or(Path::new("/"));
    }
    if !existing.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            existing.display()
        )));
    }
    let probe = existing.join(format!(".ringtail-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests;
