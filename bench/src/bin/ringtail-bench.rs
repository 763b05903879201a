//! `ringtail-bench`: runs benchmark cases against ringtail and peer collectors and writes a
//! report to `bench/results/`.
//!
//! ```text
//! cargo run --release -p bench -- run                      # every case, every collector
//! cargo run --release -p bench -- run cri-200b-100-files --runs 5
//! cargo run --release -p bench -- run --collectors ringtail --scale 0.1
//! cargo run --release -p bench -- run --peer fluent-bit=/opt/fluent-bit/bin/fluent-bit
//! cargo run --release -p bench -- setup-peers              # install rsyslog, syslog-ng, filebeat
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use bench::case::{self, Case};
use bench::collectors::{Collector, MultilineVariant, Ringtail};
use bench::harness::{self, Options};
use bench::peers;
use bench::report::{self, Machine};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "ringtail's throughput harness: ringtail and peer collectors, side by side")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run cases (all of them when none is named) and write a report.
    Run {
        /// Case names (files in bench/cases without `.toml`).
        cases: Vec<String>,
        /// Measured runs per collector and sink, after one warm-up run.
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// No warm-up run.
        #[arg(long)]
        no_warmup: bool,
        /// Collectors to run: ringtail, ringtail-labels (ringtail given pod labels by a CRI
        /// socket, in `pod_labels` cases), ringtail-auto and ringtail-regex (multiline
        /// `mode: auto` and a `start:` regex in place of the preset, in cases with stack
        /// traces) and any of the peers (rsyslog, syslog-ng, filebeat, fluent-bit,
        /// fluent-bit-cri: Fluent Bit with its CRI parser, and otel-collector: the
        /// OpenTelemetry Collector's filelog receiver sending OTLP/HTTP to the harness).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = DEFAULT_COLLECTORS
        )]
        collectors: Vec<String>,
        /// A peer binary to run too, as NAME=PATH (fluent-bit, rsyslog, syslog-ng, filebeat).
        #[arg(long = "peer", value_name = "NAME=PATH")]
        peers: Vec<String>,
        /// Scale every case's size by this factor (e.g. 0.1 for a quick look).
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// The ringtail binary (default: build and use target/release/ringtail).
        #[arg(long)]
        ringtail: Option<PathBuf>,
        /// Where reports go.
        #[arg(long)]
        results: Option<PathBuf>,
        /// Where run directories go (room for four times the largest case). Default: a
        /// directory in /dev/shm when that tmpfs has the room, so that the disk does not set
        /// the pace of file outputs; otherwise target/bench-runs.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// Keep each run's logs and outputs.
        #[arg(long)]
        keep: bool,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
    },
    /// List the cases.
    List,
    /// The Kafka broker's ceiling: a plain rdkafka producer with the Kafka sink's settings
    /// sends pre-built messages as fast as it can to a Tansu broker.
    KafkaCeiling {
        /// Bytes to send, e.g. `1GiB`.
        #[arg(long, default_value = "1GiB")]
        total: bytesize::ByteSize,
        /// Bytes per message.
        #[arg(long, default_value_t = 200)]
        size: usize,
        /// Distinct message keys, shaped like the Kafka sink's default (a file's
        /// `device:inode`): 100 is what ringtail sends for `kafka-zstd`'s 100 files; 0 sends
        /// no key.
        #[arg(long, default_value_t = 100)]
        keys: usize,
    },
    /// Install the peer collectors into target/peers (needs root and the package registries).
    SetupPeers,
}

/// The collectors a run measures unless `--collectors` names others.
const DEFAULT_COLLECTORS: &str = "ringtail,ringtail-auto,ringtail-regex,rsyslog,syslog-ng,filebeat,fluent-bit,fluent-bit-cri,otel-collector";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = workspace();
    match cli.command {
        Cmd::List => {
            for case in case::load_all(&case::default_dir())? {
                println!("{:<22} {}", case.name, case.description);
            }
            Ok(())
        }
        Cmd::KafkaCeiling { total, size, keys } => {
            let broker = bench::kafka::Broker::start().context("starting the Tansu broker")?;
            let ceiling = bench::ceiling::measure(&broker, total.as_u64(), size, keys)?;
            println!(
                "Kafka ceiling ({} messages of {size} B, {keys} keys, {} partition(s), zstd, acks=all, idempotent, linger 5 ms, batch 1 MiB; Tansu on loopback, memory storage): {:.0} MB/s, {:.0} messages/s, producer CPU {:.2} s/GB",
                ceiling.messages,
                ceiling.partitions,
                ceiling.mb_per_s(),
                ceiling.messages_per_s(),
                ceiling.cpu_seconds / (ceiling.bytes as f64 / 1e9),
            );
            Ok(())
        }
        Cmd::SetupPeers => peers::setup(&root.join("target/peers")).context("installing the peers"),
        Cmd::Run {
            cases,
            runs,
            no_warmup,
            collectors,
            peers: extra,
            scale,
            ringtail,
            results: results_dir,
            work_dir,
            keep,
            quiet,
        } => {
            let all = case::load_all(&case::default_dir())?;
            let selected: Vec<Case> = if cases.is_empty() {
                all
            } else {
                cases
                    .iter()
                    .map(|name| {
                        all.iter()
                            .find(|c| &c.name == name)
                            .cloned()
                            .with_context(|| {
                                format!("no case named {name} (see `ringtail-bench list`)")
                            })
                    })
                    .collect::<anyhow::Result<_>>()?
            };
            let selected: Vec<Case> = selected
                .iter()
                .map(|c| {
                    if scale == 1.0 {
                        c.clone()
                    } else {
                        c.scaled(scale)
                    }
                })
                .collect();
            let ringtail = match ringtail {
                Some(path) => path,
                None => {
                    let status =
                        Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                            .args(["build", "--release", "-p", "ringtail"])
                            .current_dir(&root)
                            .status()
                            .context("cannot run cargo to build ringtail")?;
                    if !status.success() {
                        bail!("building ringtail failed");
                    }
                    root.join("target/release/ringtail")
                }
            };
            let mut list: Vec<Box<dyn Collector>> = Vec::new();
            for name in &collectors {
                if name == "ringtail" {
                    list.push(Box::new(Ringtail {
                        binary: ringtail.clone(),
                        labels: None,
                        multiline: None,
                    }));
                } else if name == "ringtail-labels" {
                    let python = bench::cri::python(&root)
                        .context("ringtail-labels needs grpcio for its CRI socket")?;
                    list.push(Box::new(Ringtail {
                        binary: ringtail.clone(),
                        labels: Some(python),
                        multiline: None,
                    }));
                } else if let Some(variant) = MultilineVariant::named(name) {
                    list.push(Box::new(Ringtail {
                        binary: ringtail.clone(),
                        labels: None,
                        multiline: Some(variant),
                    }));
                } else {
                    list.push(peers::by_name(name, &root.join("target/peers"), None)?);
                }
            }
            for spec in &extra {
                let (name, path) = spec
                    .split_once('=')
                    .with_context(|| format!("--peer wants NAME=PATH, got {spec}"))?;
                list.push(peers::by_name(
                    name,
                    &root.join("target/peers"),
                    Some(PathBuf::from(path)),
                )?);
            }
            // Input, plus a JSON output of up to 1.7 times it, plus slack.
            let need = selected
                .iter()
                .map(|c| c.spec.total_bytes)
                .max()
                .unwrap_or(0)
                .saturating_mul(4);
            let chosen_dir = work_dir.is_some();
            let (work_dir, work_fs) = match work_dir {
                Some(dir) => {
                    // Collectors run in their own directories and want absolute paths.
                    let dir = std::path::absolute(&dir)
                        .with_context(|| format!("--work-dir {}", dir.display()))?;
                    let kind = harness::filesystem_kind(&dir);
                    (dir, kind)
                }
                None => harness::default_work_dir(&root.join("target/bench-runs"), need),
            };
            let opts = Options {
                runs: runs.max(1),
                no_warmup,
                work_dir,
                keep,
                progress: !quiet,
            };
            let machine = Machine::this();
            eprintln!(
                "ringtail-bench: {} case(s), {} collector(s) on {}",
                selected.len(),
                list.len(),
                machine.describe()
            );
            // Taken before the runs, which last long enough for the tree to change under them.
            let revision = Command::new("git")
                .args(["describe", "--always", "--dirty"])
                .current_dir(&root)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default();
            let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string()
                .replace(':', "");
            let note = format!(
                "ringtail {revision}; command: `cargo run --release -p bench -- run{}{}{}` (scale {scale}); input and output files on {work_fs}",
                if cases.is_empty() {
                    String::new()
                } else {
                    format!(" {}", cases.join(" "))
                },
                if collectors.join(",") != DEFAULT_COLLECTORS {
                    format!(" --collectors {}", collectors.join(","))
                } else {
                    String::new()
                },
                if runs == 3 {
                    String::new()
                } else {
                    format!(" --runs {runs}")
                },
            ) + if chosen_dir { " (`--work-dir`)" } else { "" }
                + if no_warmup {
                    "; no warm-up runs (`--no-warmup`)"
                } else {
                    ""
                };
            let dir = results_dir.unwrap_or_else(|| root.join("bench/results"));
            // The report is written again as each case ends: an interrupted run keeps what
            // it measured.
            let mut results = Vec::new();
            let mut md = dir.join(format!("{stamp}.md"));
            for case in &selected {
                results.push(harness::run_case(case, &list, &opts, &ringtail_features()));
                md = report::write_all(&results, &machine, opts.runs, &note, &dir, &stamp)?;
            }
            println!("{}", std::fs::read_to_string(&md)?);
            eprintln!("ringtail-bench: report in {}", md.display());
            Ok(())
        }
    }
}

/// ringtail features cases may require; a case needing one not listed is skipped.
fn ringtail_features() -> Vec<&'static str> {
    vec!["kafka"]
}
