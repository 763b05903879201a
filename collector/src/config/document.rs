//! The document: its top-level keys and the sections that are one stage's settings each
//! (`api`, `discovery`, `reader`, `checkpoints`, `kubernetes`), then the sources, sinks and
//! limits, each validated by its own module, into a [`Config`].
//!
//! Owns the document's shape; it may not touch the machine (that is `check_environment`) or
//! start anything.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use marked_yaml::{Node, Spanned};

use crate::api::{ApiSettings, DEFAULT_API_LISTEN};
use crate::config::limits::{self, LimitsConfig};
use crate::config::pipeline::{self, PipelineSettings};
use crate::config::problem::{Problem, yaml_syntax_problem};
use crate::config::raw::{
    RawApi, RawCheckpoints, RawKubernetes, RawLimits, RawMetrics, RawPipeline, RawReader,
    RawSidecar, RawSink, RawSource, deserialize_collecting,
};
use crate::config::scalar::{
    choice, count, duration, duration_within, list, quoted, read_from, size,
};
use crate::config::{secrets, sink, source};
use crate::container::resolver::{CriSocket, KubernetesSettings};
use crate::deliver::checkpoint::{
    CheckpointSettings, DEFAULT_CHECKPOINT_FORGET_AFTER, DEFAULT_CHECKPOINT_INTERVAL,
};
use crate::deliver::drain::{DEFAULT_DRAIN_MAX, DEFAULT_DRAIN_QUIET, SidecarSettings};
use crate::discover::kernel::DiscoveryMode;
use crate::liveness::DEFAULT_STALL_TIMEOUT;
use crate::metrics::{DEFAULT_CONTAINER_TTL, MetricsSettings};
use crate::read::backend::BackendKind;
use crate::read::{
    DEFAULT_BUFFER_MEMORY, DEFAULT_CHUNK_BYTES, DEFAULT_CLOSE_IDLE, DEFAULT_LINGER,
    DEFAULT_MAX_DELETED_BYTES, DEFAULT_MAX_OPEN_DELETED, MAX_LINGER, ReaderSettings, WakeSource,
};
use crate::sink::SinkSettings;
use crate::source::{ReadFrom, Source};

/// Where ringtail keeps its own state when the configuration does not say.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/ringtail";

/// The validated configuration: each stage's settings, built from the YAML.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for ringtail's own state.
    pub data_dir: PathBuf,
    /// Where kernel events come from.
    pub discovery: DiscoveryMode,
    /// The HTTP API.
    pub api: ApiSettings,
    /// How files are read.
    pub reader: ReaderSettings,
    /// Workers and queues.
    pub pipeline: PipelineSettings,
    /// Checkpoints.
    pub checkpoints: CheckpointSettings,
    /// Sources, in configuration order; a file belongs to the first source that matches it.
    pub sources: Vec<Arc<Source>>,
    /// Sinks, in configuration order.
    pub sinks: Vec<SinkSettings>,
    /// The node and the container runtime's state.
    pub kubernetes: KubernetesSettings,
    /// Resource ceilings.
    pub limits: LimitsConfig,
    /// What `/metrics` keeps.
    pub metrics: MetricsSettings,
    /// Sidecar mode: how a SIGTERM is met (`None`: as a DaemonSet).
    pub sidecar: Option<SidecarSettings>,
}

/// Parses and validates configuration text without touching the filesystem. `settings_only`:
/// the settings file beside a `--config-dir`, where `sources` and `sinks` may be left out.
/// Returns the configuration when it could be built, and every problem found.
pub fn parse_with(text: &str, settings_only: bool) -> (Option<Config>, Vec<Problem>) {
    let mut validator = Validator {
        settings_only,
        ..Validator::default()
    };
    let mut problems = Vec::new();
    let mut root = match marked_yaml::parse_yaml(0, text) {
        Ok(root) => root,
        Err(error) => {
            problems.push(yaml_syntax_problem(&error));
            return (None, problems);
        }
    };
    let redactions = secrets::expand(&mut root, &secrets::System, &mut problems);
    let config = validator.document(&root, &mut problems);
    // A value a reference expanded to is never shown, even where a problem quotes it.
    redactions.scrub_problems(&mut problems);
    // Document order; problems without a position (none so far from parsing) go last.
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    (config, problems)
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "discovery",
    "api",
    "reader",
    "pipeline",
    "checkpoints",
    "sources",
    "sinks",
    "kubernetes",
    "limits",
    "metrics",
    "sidecar",
];

/// What validation knows across sections.
#[derive(Default)]
struct Validator {
    source_names: HashMap<String, usize>,
    /// Settings only (the main file beside a `--config-dir`): sources and sinks may be
    /// absent.
    settings_only: bool,
}

impl Validator {
    fn document(&mut self, root: &Node, problems: &mut Vec<Problem>) -> Option<Config> {
        let Some(map) = root.as_mapping() else {
            problems.push(Problem::node(
                root,
                "",
                "the configuration must be a mapping",
            ));
            return None;
        };
        let mut data_dir = None;
        let mut discovery = None;
        let mut api = RawApi::default();
        let mut reader = RawReader::default();
        let mut pipeline = RawPipeline::default();
        let mut checkpoints = RawCheckpoints::default();
        let mut kubernetes = RawKubernetes::default();
        let mut limits = RawLimits::default();
        let mut metrics = RawMetrics::default();
        let mut sidecar: Option<RawSidecar> = None;
        let mut raw_sources: Option<Vec<Option<RawSource>>> = None;
        let mut raw_sinks: Option<Vec<Option<RawSink>>> = None;
        let mut sources_node = None;
        let mut sinks_node = None;
        for (key, value) in map.iter() {
            match key.as_str() {
                "data_dir" => {
                    data_dir =
                        deserialize_collecting::<Spanned<String>>(value, "data_dir", problems)
                }
                "discovery" => {
                    discovery =
                        deserialize_collecting::<Spanned<String>>(value, "discovery", problems)
                }
                "api" => {
                    api = deserialize_collecting(value, "api", problems).unwrap_or_default();
                }
                "reader" => {
                    reader = deserialize_collecting(value, "reader", problems).unwrap_or_default();
                }
                "pipeline" => {
                    pipeline =
                        deserialize_collecting(value, "pipeline", problems).unwrap_or_default();
                }
                "checkpoints" => {
                    checkpoints =
                        deserialize_collecting(value, "checkpoints", problems).unwrap_or_default();
                }
                "limits" => {
                    limits = deserialize_collecting(value, "limits", problems).unwrap_or_default();
                }
                "metrics" => {
                    metrics =
                        deserialize_collecting(value, "metrics", problems).unwrap_or_default();
                }
                "sidecar" => {
                    sidecar = Some(
                        deserialize_collecting(value, "sidecar", problems).unwrap_or_default(),
                    );
                }
                "kubernetes" => {
                    kubernetes =
                        deserialize_collecting(value, "kubernetes", problems).unwrap_or_default();
                }
                "sources" => {
                    sources_node = Some(value);
                    raw_sources = Some(list(value, "sources", problems));
                }
                "sinks" => {
                    sinks_node = Some(value);
                    raw_sinks = Some(list(value, "sinks", problems));
                }
                other => problems.push(Problem::at(
                    key.span().start(),
                    other,
                    format!(
                        "unknown field `{other}`, expected one of {}",
                        quoted(TOP_LEVEL_KEYS)
                    ),
                )),
            }
        }

        let data_dir = match data_dir {
            Some(dir) if Path::new(dir.as_str()).is_absolute() => PathBuf::from(dir.as_str()),
            Some(dir) => {
                problems.push(Problem::spanned(
                    &dir,
                    "data_dir",
                    "must be an absolute path",
                ));
                PathBuf::from(DEFAULT_DATA_DIR)
            }
            None => PathBuf::from(DEFAULT_DATA_DIR),
        };
        let discovery = choice(
            discovery.as_ref(),
            "discovery",
            &[
                ("auto", DiscoveryMode::Auto),
                ("ebpf", DiscoveryMode::Ebpf),
                ("inotify", DiscoveryMode::Inotify),
            ],
            DiscoveryMode::Auto,
            problems,
        );
        let api = self.api(api, problems);
        let metrics = MetricsSettings {
            container_ttl: duration(
                metrics.container_ttl.as_ref(),
                "metrics.container_ttl",
                DEFAULT_CONTAINER_TTL,
                problems,
            ),
        };
        let sidecar = sidecar.map(|raw| SidecarSettings {
            drain_quiet: duration(
                raw.drain_quiet.as_ref(),
                "sidecar.drain_quiet",
                DEFAULT_DRAIN_QUIET,
                problems,
            ),
            drain_max: duration(
                raw.drain_max.as_ref(),
                "sidecar.drain_max",
                DEFAULT_DRAIN_MAX,
                problems,
            ),
        });
        let wake_node = reader.wake.clone();
        let explicit = limits::Explicit {
            threads: reader.threads.is_some(),
            buffer_memory: reader.buffer_memory.is_some(),
            workers: pipeline.workers.is_some(),
            queue_batches: pipeline.queue_batches.is_some(),
        };
        let mut reader = self.reader(reader, problems);
        if reader.wake == WakeSource::WriteHook && discovery == DiscoveryMode::Inotify {
            problems.push(Problem::at(
                wake_node.as_ref().and_then(|s| s.span().start()),
                "reader.wake",
                "`write_hook` needs the eBPF programs: set `discovery: ebpf` (or `auto`)",
            ));
        }
        let mut pipeline = pipeline::pipeline(pipeline, problems);
        let checkpoints = CheckpointSettings {
            interval: duration(
                checkpoints.interval.as_ref(),
                "checkpoints.interval",
                DEFAULT_CHECKPOINT_INTERVAL,
                problems,
            ),
            forget_after: duration(
                checkpoints.forget_after.as_ref(),
                "checkpoints.forget_after",
                DEFAULT_CHECKPOINT_FORGET_AFTER,
                problems,
            ),
        };

        let mut sources = Vec::new();
        match raw_sources {
            None if self.settings_only => {}
            None => problems.push(Problem::at(
                None,
                "sources",
                "at least one source is required",
            )),
            Some(list) if list.is_empty() => problems.push(Problem::node(
                sources_node.unwrap_or(root),
                "sources",
                "at least one source is required",
            )),
            Some(list) => {
                for (i, raw) in list.into_iter().enumerate() {
                    let node = sources_node
                        .and_then(|n| n.as_sequence())
                        .and_then(|s| s.get(i));
                    if let (Some(raw), Some(node)) = (raw, node)
                        && let Some(source) = source::source(
                            raw,
                            node,
                            i,
                            sources.len(),
                            reader.read_from,
                            &mut self.source_names,
                            problems,
                        )
                    {
                        sources.push(Arc::new(source));
                    }
                }
            }
        }

        let mut sinks = Vec::new();
        match raw_sinks {
            None if self.settings_only => {}
            None => problems.push(Problem::at(None, "sinks", "at least one sink is required")),
            Some(list) if list.is_empty() => problems.push(Problem::node(
                sinks_node.unwrap_or(root),
                "sinks",
                "at least one sink is required",
            )),
            Some(list) => {
                let mut names = HashMap::new();
                for (i, raw) in list.into_iter().enumerate() {
                    let node = sinks_node
                        .and_then(|n| n.as_sequence())
                        .and_then(|s| s.get(i));
                    if let (Some(raw), Some(node)) = (raw, node)
                        && let Some(sink) =
                            sink::sink(raw, node, i, &self.source_names, &mut names, problems)
                    {
                        sink::read_back(&sink, &sources, node, i, problems);
                        sinks.push(sink);
                    }
                }
            }
        }
        for source in &sources {
            if !sinks.is_empty() && !sinks.iter().any(|s| s.receives(source.index)) {
                let node = sources_node
                    .and_then(|n| n.as_sequence())
                    .and_then(|s| s.get(source.index));
                problems.push(Problem::at(
                    node.and_then(|n| n.span().start()),
                    format!("sources[{}]", source.index),
                    format!("source `{}` is not an input of any sink", source.name),
                ));
            }
        }

        let kubernetes = kubernetes_settings(kubernetes, problems);
        let limits = limits::apply_limits(
            &limits,
            explicit,
            &mut reader,
            &mut pipeline,
            &sources,
            &mut sinks,
            problems,
        );
        if !problems.is_empty() {
            return None;
        }
        Some(Config {
            kubernetes,
            limits,
            metrics,
            sidecar,
            data_dir,
            discovery,
            api: api?,
            reader,
            pipeline,
            checkpoints,
            sources,
            sinks,
        })
    }

    fn api(&self, raw: RawApi, problems: &mut Vec<Problem>) -> Option<ApiSettings> {
        let listen = match raw.listen {
            Some(listen) => match listen.parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(e) => {
                    problems.push(Problem::spanned(
                        &listen,
                        "api.listen",
                        format!(
                            "`{}` is not a socket address (e.g. 127.0.0.1:9100): {e}",
                            *listen
                        ),
                    ));
                    return None;
                }
            },
            None => DEFAULT_API_LISTEN.parse().ok()?,
        };
        let stall_timeout = duration(
            raw.stall_timeout.as_ref(),
            "api.stall_timeout",
            DEFAULT_STALL_TIMEOUT,
            problems,
        );
        Some(ApiSettings {
            listen,
            stall_timeout,
        })
    }

    fn reader(&self, raw: RawReader, problems: &mut Vec<Problem>) -> ReaderSettings {
        let backend = choice(
            raw.backend.as_ref(),
            "reader.backend",
            &[
                ("io_uring", BackendKind::IoUring),
                ("pread", BackendKind::Pread),
            ],
            BackendKind::IoUring,
            problems,
        );
        let threads = count(raw.threads.as_ref(), "reader.threads", 1, 1..=64, problems);
        let chunk_bytes = size(
            raw.chunk_size.as_ref(),
            "reader.chunk_size",
            DEFAULT_CHUNK_BYTES,
            4096..=64 << 20,
            problems,
        );
        let buffer_memory = size(
            raw.buffer_memory.as_ref(),
            "reader.buffer_memory",
            DEFAULT_BUFFER_MEMORY,
            1 << 20..=1 << 40,
            problems,
        );
        if buffer_memory < 2 * chunk_bytes {
            let at = raw.buffer_memory.as_ref().or(raw.chunk_size.as_ref());
            problems.push(Problem::at(
                at.and_then(|s| s.span().start()),
                "reader.buffer_memory",
                format!("must hold at least two chunks ({} bytes)", 2 * chunk_bytes),
            ));
        }
        let read_from = read_from(
            raw.read_from.as_ref(),
            "reader.read_from",
            ReadFrom::Beginning,
            problems,
        );
        let max_open_deleted = count(
            raw.max_open_deleted.as_ref(),
            "reader.max_open_deleted",
            DEFAULT_MAX_OPEN_DELETED,
            1..=1 << 20,
            problems,
        );
        let max_deleted_bytes = size(
            raw.max_deleted_bytes.as_ref(),
            "reader.max_deleted_bytes",
            DEFAULT_MAX_DELETED_BYTES as usize,
            4096..=1 << 50,
            problems,
        ) as u64;
        let wake = choice(
            raw.wake.as_ref(),
            "reader.wake",
            &[
                ("inotify", WakeSource::Inotify),
                ("write_hook", WakeSource::WriteHook),
            ],
            WakeSource::Inotify,
            problems,
        );
        let max_open_files = raw.max_open_files.as_ref().map(|value| {
            count(
                Some(value),
                "reader.max_open_files",
                DEFAULT_MAX_OPEN_DELETED,
                16..=1 << 24,
                problems,
            )
        });
        let close_idle = duration(
            raw.close_idle.as_ref(),
            "reader.close_idle",
            DEFAULT_CLOSE_IDLE,
            problems,
        );
        let linger = duration_within(
            raw.linger.as_ref(),
            "reader.linger",
            DEFAULT_LINGER,
            std::time::Duration::ZERO..=MAX_LINGER,
            problems,
        );
        ReaderSettings {
            backend,
            threads,
            chunk_bytes,
            buffer_memory,
            read_from,
            max_open_deleted,
            max_deleted_bytes,
            max_open_files,
            close_idle,
            wake,
            linger,
        }
    }
}

/// The `kubernetes` section; the node name defaults to `NODE_NAME` (the downward API).
fn kubernetes_settings(raw: RawKubernetes, problems: &mut Vec<Problem>) -> KubernetesSettings {
    let node_name = match raw.node_name {
        Some(name) if name.trim().is_empty() => {
            problems.push(Problem::spanned(
                &name,
                "kubernetes.node_name",
                "must not be empty (leave it out to use $NODE_NAME)",
            ));
            None
        }
        Some(name) => Some(name.to_string()),
        None => std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()),
    };
    let runtime_dirs = match raw.runtime_dirs {
        None => KubernetesSettings::default().runtime_dirs,
        Some(dirs) => dirs
            .iter()
            .enumerate()
            .filter_map(|(i, dir)| {
                if Path::new(dir.as_str()).is_absolute() {
                    Some(PathBuf::from(dir.as_str()))
                } else {
                    problems.push(Problem::spanned(
                        dir,
                        format!("kubernetes.runtime_dirs[{i}]"),
                        "must be an absolute path",
                    ));
                    None
                }
            })
            .collect(),
    };
    let cri_socket = match raw.cri_socket {
        None => CriSocket::Auto,
        Some(socket) if socket.as_str() == "none" => CriSocket::Off,
        Some(socket) if Path::new(socket.as_str()).is_absolute() => {
            CriSocket::At(PathBuf::from(socket.as_str()))
        }
        Some(socket) => {
            problems.push(Problem::spanned(
                &socket,
                "kubernetes.cri_socket",
                "must be an absolute path, or `none` to ask no runtime",
            ));
            CriSocket::Off
        }
    };
    KubernetesSettings {
        node_name,
        runtime_dirs,
        cri_socket,
    }
}
