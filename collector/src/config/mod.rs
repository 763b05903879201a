//! Configuration: loading the YAML file and turning it into a validated [`Config`].
//!
//! Two layers, as in linkerd2-proxy and youki: [`raw`] is what serde reads (every key
//! documented, unknown keys rejected), and [`Config`] is what the rest of ringtail uses. The
//! step between them reports *every* problem at once — bad globs, bad regexes, unknown keys
//! with their line, missing sinks, an unwritable `data_dir` — so `ringtail validate` and
//! `ringtail run` print the same complete list.

pub mod dir;
pub mod pattern;
pub mod raw;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use marked_yaml::{Marker, Node, Spanned};
use regex::bytes::Regex;

use crate::multiline::{self, MultilineMode, MultilineRules};
pub use pattern::{ExcludePattern, PathPattern};
use raw::{
    RawApi, RawCheckpoints, RawContainerMatcher, RawContainers, RawKubernetes, RawLimits,
    RawMultiline, RawPipeline, RawProcessor, RawReader, RawRotate, RawSink, RawSource,
    deserialize_collecting,
};

use crate::container::{ContainerFilter, ContainerMatcher};
use crate::process::Processor;

/// Where ringtail keeps its own state when the configuration does not say.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/ringtail";
/// Loopback only: metrics are scraped node-locally; exposing them is a deliberate choice.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9100";
/// 16× the kubelet's 16 KiB CRI split, so big JSON log lines survive joining, while one
/// stream's partial-line state stays bounded.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024;
/// Per-file, per-round read budget. At 1 GB/s this is ~2,000 rounds a second (syscall and
/// queue costs well under 1%), and 100 busy files each get a turn within ~50 ms.
pub const DEFAULT_CHUNK_BYTES: usize = 512 * 1024;
/// Read buffers in flight between readers and workers; fits a 512 MiB DaemonSet limit.
pub const DEFAULT_BUFFER_MEMORY: usize = 64 * 1024 * 1024;
/// Encoded bytes per batch: large enough to amortise a write or a queue hop, small enough to
/// keep latency to the sink in the low milliseconds at full speed.
pub const DEFAULT_BATCH_BYTES: usize = 1024 * 1024;
/// Batches per queue: with 1 MiB batches, at most tens of MiB wait between two stages.
pub const DEFAULT_QUEUE_BATCHES: usize = 16;
/// Kubernetes sends SIGKILL 30 s after SIGTERM by default; finish before that.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a file sink lets written data wait before fsync and acknowledgement.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Most lines in one multi-line record (a deep Java trace is a few hundred lines).
pub const DEFAULT_MULTILINE_MAX_LINES: usize = 1000;
/// Most bytes in one multi-line record.
pub const DEFAULT_MULTILINE_MAX_BYTES: usize = 1024 * 1024;
/// A pending multi-line record is emitted after this long without a new line.
pub const DEFAULT_MULTILINE_TIMEOUT: Duration = Duration::from_secs(1);
/// An unfinished line waits this long for more data: a container's last output without a
/// newline (its runtime writes a CRI `P` record) appears seconds after it exits, not never;
/// a line written in pieces slower than this is cut in two (counted).
pub const DEFAULT_PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// zstd level of the file sink: level 3 compresses logs ~8× at several hundred MB/s per core.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
/// Deleted files held open until drained: each pins its disk space and a descriptor, and a
/// node rarely has more than a few hundred containers exiting at once.
pub const DEFAULT_MAX_OPEN_DELETED: usize = 1024;
/// Checkpoint interval: at most a second of acknowledged records is re-read after a crash.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// A checkpoint whose file is not seen for a day is dropped: long enough for a node that was
/// down overnight, short enough that the file stays small.
pub const DEFAULT_CHECKPOINT_FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Rotated files kept by a file sink when `rotate.max_files` is not given.
pub const DEFAULT_ROTATE_MAX_FILES: usize = 5;

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

/// One thing wrong with a configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// 1-based column in the file, when known.
    pub column: Option<usize>,
    /// Where in the document, e.g. `sources[1].multiline.start`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem at a position given by a YAML marker.
    pub fn at(mark: Option<&Marker>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line: mark.map(|m| m.line()),
            column: mark.map(|m| m.column()),
            path: path.into(),
            message: message.into(),
        }
    }

    fn spanned<T>(value: &Spanned<T>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::at(value.span().start(), path, message)
    }

    fn node(node: &Node, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::at(node.span().start(), path, message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read and has problems; all of them are listed.
    #[error("{origin}: {} problem{} found:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, ProblemList(problems))]
    Invalid {
        /// The file (or `built-in default`).
        origin: String,
        /// Every problem, in document order.
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for ringtail's own state.
    pub data_dir: PathBuf,
    /// Where kernel events come from.
    pub discovery: DiscoveryMode,
    /// The HTTP API.
    pub api: ApiConfig,
    /// How files are read.
    pub reader: ReaderConfig,
    /// Workers and queues.
    pub pipeline: PipelineConfig,
    /// Checkpoints.
    pub checkpoints: CheckpointConfig,
    /// Sources, in configuration order; a file belongs to the first source that matches it.
    pub sources: Vec<Arc<SourceConfig>>,
    /// Sinks, in configuration order.
    pub sinks: Vec<SinkConfig>,
    /// The node and the container runtime's state.
    pub kubernetes: KubernetesConfig,
    /// Resource ceilings.
    pub limits: LimitsConfig,
}

/// Resource ceilings (`limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Memory ceiling of the process, in bytes.
    pub memory: usize,
    /// Reader plus worker threads, when limited.
    pub cpu: Option<usize>,
    /// Bytes of buffered data the configuration allows: read buffers, sink queues, workers'
    /// open batches, Kafka producer queues (≤ `memory` − [`MEMORY_OVERHEAD`]).
    pub buffered: usize,
}

/// Memory the process needs besides buffered data, kept out of the `limits.memory` budget:
/// code and libraries (~12 MiB), eBPF maps and the allocator's own state (~30 MiB at rest),
/// per-file state (~20 KiB per busy file: a thousand files take ~20 MiB) and what the
/// allocator keeps of freed batches under churn (measured: up to ~25 MiB), with some margin.
pub const MEMORY_OVERHEAD: usize = 104 << 20;
/// The default memory ceiling: a DaemonSet's usual 512 MiB limit.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 << 20;
/// Kafka producer queue per sink, at most.
pub const DEFAULT_KAFKA_QUEUE_BYTES: usize = 64 << 20;

/// The node and where the container runtime keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubernetesConfig {
    /// The node's name, put into every record.
    pub node_name: Option<String>,
    /// Directories of the runtimes' OCI bundles.
    pub runtime_dirs: Vec<PathBuf>,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            node_name: None,
            runtime_dirs: crate::runtime::DEFAULT_RUNTIME_DIRS
                .iter()
                .map(PathBuf::from)
                .collect(),
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
}

/// Where kernel events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscoveryMode {
    /// eBPF when it loads (privileges, tracefs), inotify otherwise; the log says which and why.
    Auto,
    /// eBPF or refuse to start.
    Ebpf,
    /// inotify only; the eBPF programs are not loaded.
    Inotify,
}

/// How acknowledged offsets are saved.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// How often the checkpoint file is written.
    pub interval: Duration,
    /// Checkpoints of files unseen for this long are dropped.
    pub forget_after: Duration,
}

/// Which read backend reader threads use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// io_uring via tokio-uring; many reads per submission.
    IoUring,
    /// One `pread(2)` per read; the fallback.
    Pread,
}

/// Where reading starts in a file that exists when ringtail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// From offset 0: nothing already in the file is missed.
    Beginning,
    /// From the current end: only new lines.
    End,
}

/// How files are read.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// The read backend.
    pub backend: BackendKind,
    /// Reader threads.
    pub threads: usize,
    /// Bytes per read, and per file per round.
    pub chunk_bytes: usize,
    /// Upper bound on read buffers in flight.
    pub buffer_memory: usize,
    /// Default start position for files present at start-up.
    pub read_from: ReadFrom,
    /// Most deleted files held open until drained.
    pub max_open_deleted: usize,
    /// What wakes a reader when a file has new data.
    pub wake: WakeSource,
}

/// What tells a reader that a file it has caught up with has new data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeSource {
    /// inotify's modify events on the watched directories (every write path, including
    /// io_uring and `splice`; one event per write, coalesced while unread).
    Inotify,
    /// The eBPF write hook: one event per file per idle→dirty transition, re-armed by the
    /// reader when it catches up; inotify's modify events are not asked for. Sees `write`,
    /// `pwrite64` and the vectored writes of the processes it follows, not `mmap`, io_uring
    /// or `splice` writes. Needs eBPF; with `discovery: auto` falling back to inotify, inotify
    /// wakes readers.
    WriteHook,
}

/// Workers and queues.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Worker threads.
    pub workers: usize,
    /// Capacity of each queue, in batches.
    pub queue_batches: usize,
    /// Encoded bytes per batch.
    pub batch_bytes: usize,
    /// Bound on the wait for sink acknowledgements at shutdown.
    pub shutdown_timeout: Duration,
}

/// The line format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One record per line, as is.
    Raw,
    /// Kubernetes CRI: `<time> <stream> <P|F> <message>`.
    Cri,
    /// Docker json-file: `{"log":…,"stream":…,"time":…}`.
    Docker,
}

/// A validated source.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Index in [`Config::sources`].
    pub index: usize,
    /// Unique name.
    pub name: String,
    /// Globs of the files to read.
    pub paths: Vec<PathPattern>,
    /// Globs of files to skip.
    pub exclude: Vec<ExcludePattern>,
    /// Line format.
    pub format: Format,
    /// Multi-line joining, if configured.
    pub multiline: Option<Arc<MultilineRules>>,
    /// Longest line kept.
    pub max_line_bytes: usize,
    /// Static tags.
    pub tags: BTreeMap<String, String>,
    /// Start position for files present at start-up.
    pub read_from: ReadFrom,
    /// Which containers' files this source reads.
    pub containers: ContainerFilter,
    /// Whether this source reads what containers declare (`RINGTAIL_LOGS_*`, see
    /// [`crate::declare`]) instead of globs of its own.
    pub declared: bool,
    /// For a source made from one container's declaration: which one.
    pub origin: Option<Arc<crate::declare::Origin>>,
    /// How long an unfinished line (no newline yet, or a CRI/docker partial without its
    /// end) may wait for more data before it is emitted as it is.
    pub partial_timeout: Duration,
    /// Processors applied to each record, in order, after multiline.
    pub processors: Arc<[Processor]>,
}

impl SourceConfig {
    /// A source named `name` reading `format`, every other setting at its default (no globs:
    /// tests and tools that build sources in code add what they need).
    pub fn new(index: usize, name: &str, format: Format) -> Self {
        Self {
            index,
            name: name.to_string(),
            paths: Vec::new(),
            exclude: Vec::new(),
            format,
            multiline: None,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            tags: BTreeMap::new(),
            read_from: ReadFrom::Beginning,
            containers: ContainerFilter::default(),
            declared: false,
            origin: None,
            partial_timeout: DEFAULT_PARTIAL_TIMEOUT,
            processors: Arc::from(Vec::new()),
        }
    }

    /// Whether this source reads the file at `path` (its globs; see also
    /// [`containers`](Self::containers)).
    pub fn matches(&self, path: &Path) -> bool {
        self.paths.iter().any(|p| p.is_match(path))
            && !self.exclude.iter().any(|e| e.is_match(path))
    }

    /// Whether files of this source can exist under directory `dir`.
    pub fn may_contain(&self, dir: &Path) -> bool {
        self.paths.iter().any(|p| p.may_contain(dir))
    }
}

/// Compression of a file sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain NDJSON.
    None,
    /// A zstd stream at the given level.
    Zstd {
        /// zstd level.
        level: i32,
    },
}

/// Size-based rotation of a file sink.
#[derive(Debug, Clone, Copy)]
pub struct Rotate {
    /// Rotate when the active file reaches this many bytes on disk.
    pub max_bytes: u64,
    /// Rotated files kept.
    pub max_files: usize,
}

/// A file sink.
#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    /// Output path.
    pub path: PathBuf,
    /// Compression.
    pub compression: Compression,
    /// Rotation, if any.
    pub rotate: Option<Rotate>,
    /// fsync-and-acknowledge interval.
    pub sync_interval: Duration,
}

/// Compression of Kafka messages (done by librdkafka, per produce batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaCompression {
    /// zstd.
    Zstd,
    /// lz4.
    Lz4,
    /// snappy.
    Snappy,
    /// gzip.
    Gzip,
    /// None.
    None,
}

impl KafkaCompression {
    /// The librdkafka `compression.codec` value.
    pub fn codec(self) -> &'static str {
        match self {
            KafkaCompression::Zstd => "zstd",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::None => "none",
        }
    }
}

/// A Kafka sink.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    pub brokers: String,
    /// The topic of each record.
    pub topic: crate::template::Template,
    /// The key of each record; `None`: the file's identity.
    pub key: Option<crate::template::Template>,
    /// Compression.
    pub compression: KafkaCompression,
    /// `all`, `1` or `0`; `all` turns the idempotent producer on.
    pub acks: String,
    /// librdkafka's `linger.ms`.
    pub linger: Duration,
    /// librdkafka's `batch.size`.
    pub batch_bytes: usize,
    /// Where refused records go; `None`: a refused record stops the pipeline.
    pub dead_letter: Option<PathBuf>,
    /// librdkafka properties passed through, applied last.
    pub properties: std::collections::BTreeMap<String, String>,
    /// librdkafka's queue of messages waiting for delivery, in bytes
    /// (`queue.buffering.max.kbytes`), sized from `limits.memory`.
    pub queue_bytes: usize,
}

/// What kind of sink.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// NDJSON to standard output.
    Stdout,
    /// NDJSON to a file.
    File(FileSinkConfig),
    /// Counts and discards (benchmarks).
    Blackhole,
    /// Records to Kafka topics.
    Kafka(KafkaSinkConfig),
}

/// A validated sink.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Unique name.
    pub name: String,
    /// Indices of the sources it receives.
    pub inputs: Vec<usize>,
    /// How records are written.
    pub encoding: Encoding,
    /// Kind and settings.
    pub kind: SinkKind,
}

/// How a sink's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Encoding {
    /// One JSON object per record with its metadata (NDJSON; see [`crate::encode`]).
    #[default]
    Json,
    /// The message alone, byte for byte, followed by a newline: no metadata, no escaping,
    /// invalid UTF-8 passed through unchanged; a multi-line record stays several lines.
    Text,
}

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
    parse_with(text, Validator::default())
}

/// Like [`parse`], for the settings file beside a `--config-dir`: `sources` and `sinks` may be
/// left out (the directory's pipelines bring them).
pub fn parse_settings(text: &str) -> (Option<Config>, Vec<Problem>) {
    parse_with(
        text,
        Validator {
            settings_only: true,
            ..Validator::default()
        },
    )
}

fn parse_with(text: &str, mut validator: Validator) -> (Option<Config>, Vec<Problem>) {
    let mut problems = Vec::new();
    let root = match marked_yaml::parse_yaml(0, text) {
        Ok(root) => root,
        Err(error) => {
            problems.push(yaml_syntax_problem(&error));
            return (None, problems);
        }
    };
    let config = validator.document(&root, &mut problems);
    // Document order; problems without a position (none so far from parsing) go last.
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    (config, problems)
}

fn yaml_syntax_problem(error: &marked_yaml::LoadError) -> Problem {
    use marked_yaml::LoadError as E;
    let mark = match error {
        E::TopLevelMustBeMapping(m)
        | E::TopLevelMustBeSequence(m)
        | E::UnexpectedAnchor(m)
        | E::MappingKeyMustBeScalar(m)
        | E::UnexpectedTag(m)
        | E::ScanError(m, _) => Some(*m),
        E::DuplicateKey(inner) => inner.key.span().start().copied(),
    };
    Problem::at(mark.as_ref(), "", format!("invalid YAML: {error}"))
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
];

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
        let wake_node = reader.wake.clone();
        let explicit = Explicit {
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
        let mut pipeline = self.pipeline(pipeline, problems);
        let checkpoints = CheckpointConfig {
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
                        && let Some(source) =
                            self.source(raw, node, i, sources.len(), &reader, problems)
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
                        && let Some(sink) = self.sink(raw, node, i, &mut names, problems)
                    {
                        sinks.push(sink);
                    }
                }
            }
        }
        for source in &sources {
            if !sinks.is_empty() && !sinks.iter().any(|s| s.inputs.contains(&source.index)) {
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

        let kubernetes = kubernetes_config(kubernetes, problems);
        let limits = apply_limits(
            &limits,
            explicit,
            &mut reader,
            &mut pipeline,
            &mut sinks,
            problems,
        );
        if !problems.is_empty() {
            return None;
        }
        Some(Config {
            kubernetes,
            limits,
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

    fn api(&self, raw: RawApi, problems: &mut Vec<Problem>) -> Option<ApiConfig> {
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
        Some(ApiConfig { listen })
    }

    fn reader(&self, raw: RawReader, problems: &mut Vec<Problem>) -> ReaderConfig {
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
        ReaderConfig {
            backend,
            threads,
            chunk_bytes,
            buffer_memory,
            read_from,
            max_open_deleted,
            wake,
        }
    }

    fn pipeline(&self, raw: RawPipeline, problems: &mut Vec<Problem>) -> PipelineConfig {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        PipelineConfig {
            workers: count(
                raw.workers.as_ref(),
                "pipeline.workers",
                cpus,
                1..=256,
                problems,
            ),
            queue_batches: count(
                raw.queue_batches.as_ref(),
                "pipeline.queue_batches",
                DEFAULT_QUEUE_BATCHES,
                1..=4096,
                problems,
            ),
            batch_bytes: size(
                raw.batch_size.as_ref(),
                "pipeline.batch_size",
                DEFAULT_BATCH_BYTES,
                1024..=256 << 20,
                problems,
            ),
            shutdown_timeout: duration(
                raw.shutdown_timeout.as_ref(),
                "pipeline.shutdown_timeout",
                DEFAULT_SHUTDOWN_TIMEOUT,
                problems,
            ),
        }
    }

    fn source(
        &mut self,
        raw: RawSource,
        node: &Node,
        i: usize,
        index: usize,
        reader: &ReaderConfig,
        problems: &mut Vec<Problem>,
    ) -> Option<SourceConfig> {
        let path = format!("sources[{i}]");
        let before = problems.len();
        let name = match raw.name {
            Some(name) if name.is_empty() => {
                problems.push(Problem::spanned(
                    &name,
                    format!("{path}.name"),
                    "must not be empty",
                ));
                None
            }
            Some(name) => {
                if self.source_names.contains_key(name.as_str()) {
                    problems.push(Problem::spanned(
                        &name,
                        format!("{path}.name"),
                        format!("duplicate source name `{}`", *name),
                    ));
                }
                self.source_names.insert(name.to_string(), index);
                Some(name.to_string())
            }
            None => {
                problems.push(Problem::node(
                    node,
                    format!("{path}.name"),
                    "missing field `name`",
                ));
                None
            }
        };
        let declared = match &raw.declared {
            Some(flag) => match flag.as_str() {
                "true" => true,
                "false" => false,
                other => {
                    problems.push(Problem::spanned(
                        flag,
                        format!("{path}.declared"),
                        format!("expected `true` or `false`, got `{other}`"),
                    ));
                    false
                }
            },
            None => false,
        };
        if declared && !raw.paths.is_empty() {
            problems.push(Problem::spanned(
                &raw.paths[0],
                format!("{path}.paths"),
                "a `declared: true` source reads the files containers declare; it takes no paths",
            ));
        } else if !declared && raw.paths.is_empty() {
            problems.push(Problem::node(
                node,
                format!("{path}.paths"),
                "at least one path glob is required (or `declared: true`)",
            ));
        }
        let mut paths = Vec::new();
        for (j, glob) in raw.paths.iter().enumerate() {
            match PathPattern::new(glob) {
                Ok(p) => paths.push(p),
                Err(e) => problems.push(Problem::spanned(
                    glob,
                    format!("{path}.paths[{j}]"),
                    e.to_string(),
                )),
            }
        }
        let mut exclude = Vec::new();
        for (j, glob) in raw.exclude.iter().enumerate() {
            match ExcludePattern::new(glob) {
                Ok(p) => exclude.push(p),
                Err(e) => problems.push(Problem::spanned(
                    glob,
                    format!("{path}.exclude[{j}]"),
                    e.to_string(),
                )),
            }
        }
        let format = choice(
            raw.format.as_ref(),
            &format!("{path}.format"),
            &[
                ("raw", Format::Raw),
                ("cri", Format::Cri),
                ("docker", Format::Docker),
            ],
            Format::Raw,
            problems,
        );
        let max_line_bytes = size(
            raw.max_line_bytes.as_ref(),
            &format!("{path}.max_line_bytes"),
            DEFAULT_MAX_LINE_BYTES,
            16..=1 << 30,
            problems,
        );
        let multiline = raw
            .multiline
            .and_then(|m| multiline_rules(m, node, &format!("{path}.multiline"), problems))
            .map(Arc::new);
        let read_from = read_from(
            raw.read_from.as_ref(),
            &format!("{path}.read_from"),
            reader.read_from,
            problems,
        );
        let partial_timeout = duration(
            raw.partial_timeout.as_ref(),
            &format!("{path}.partial_timeout"),
            DEFAULT_PARTIAL_TIMEOUT,
            problems,
        );
        let processors: Arc<[Processor]> = raw
            .processors
            .into_iter()
            .enumerate()
            .filter_map(|(j, p)| {
                let own = node
                    .as_mapping()
                    .and_then(|m| m.get_node("processors"))
                    .and_then(|n| n.as_sequence())
                    .and_then(|s| s.get(j))
                    .unwrap_or(node);
                processor(p, own, &format!("{path}.processors[{j}]"), problems)
            })
            .collect();
        let containers = raw
            .containers
            .map(|c| container_filter(c, &format!("{path}.containers"), problems))
            .unwrap_or_default();
        if problems.len() != before {
            return None;
        }
        Some(SourceConfig {
            index,
            name: name?,
            paths,
            exclude,
            format,
            multiline,
            max_line_bytes,
            tags: raw.tags,
            read_from,
            containers,
            declared,
            origin: None,
            partial_timeout,
            processors,
        })
    }

    fn sink(
        &self,
        raw: RawSink,
        node: &Node,
        i: usize,
        names: &mut HashMap<String, usize>,
        problems: &mut Vec<Problem>,
    ) -> Option<SinkConfig> {
        let path = format!("sinks[{i}]");
        let before = problems.len();
        let name = match &raw.name {
            Some(name) if name.is_empty() => {
                problems.push(Problem::spanned(
                    name,
                    format!("{path}.name"),
                    "must not be empty",
                ));
                None
            }
            Some(name) => {
                if names.insert(name.to_string(), i).is_some() {
                    problems.push(Problem::spanned(
                        name,
                        format!("{path}.name"),
                        format!("duplicate sink name `{}`", **name),
                    ));
                }
                Some(name.to_string())
            }
            None => {
                problems.push(Problem::node(
                    node,
                    format!("{path}.name"),
                    "missing field `name`",
                ));
                None
            }
        };
        let inputs = match &raw.inputs {
            None => self.source_names.values().copied().collect::<Vec<_>>(),
            Some(list) => {
                if list.is_empty() {
                    problems.push(Problem::node(
                        node,
                        format!("{path}.inputs"),
                        "must name at least one source",
                    ));
                }
                let mut inputs = Vec::new();
                for (j, input) in list.iter().enumerate() {
                    match self.source_names.get(input.as_str()) {
                        Some(&index) => inputs.push(index),
                        None => problems.push(Problem::spanned(
                            input,
                            format!("{path}.inputs[{j}]"),
                            format!("no source is named `{}`", **input),
                        )),
                    }
                }
                inputs
            }
        };
        let kind = match &raw.kind {
            None => {
                problems.push(Problem::node(
                    node,
                    format!("{path}.type"),
                    "missing field `type`",
                ));
                None
            }
            Some(kind) => match kind.as_str() {
                "stdout" => {
                    fields_for(&raw, &path, "stdout", problems);
                    Some(SinkKind::Stdout)
                }
                "blackhole" => {
                    fields_for(&raw, &path, "blackhole", problems);
                    Some(SinkKind::Blackhole)
                }
                "file" => {
                    fields_for(&raw, &path, "file", problems);
                    file_sink(&raw, node, &path, problems).map(SinkKind::File)
                }
                "kafka" => {
                    fields_for(&raw, &path, "kafka", problems);
                    kafka_sink(&raw, node, &path, problems).map(SinkKind::Kafka)
                }
                other => {
                    problems.push(Problem::spanned(
                        kind,
                        format!("{path}.type"),
                        format!("unknown sink type `{other}`, expected one of `stdout`, `file`, `kafka`, `blackhole`"),
                    ));
                    None
                }
            },
        };
        let encoding = match raw.encoding.as_ref().map(|e| (e, e.as_str())) {
            None | Some((_, "json")) => Encoding::Json,
            Some((_, "text")) => Encoding::Text,
            Some((e, other)) => {
                problems.push(Problem::spanned(
                    e,
                    format!("{path}.encoding"),
                    format!("unknown encoding `{other}`, expected `json` or `text`"),
                ));
                Encoding::Json
            }
        };
        if problems.len() != before {
            return None;
        }
        let mut inputs = inputs;
        inputs.sort_unstable();
        Some(SinkConfig {
            name: name?,
            inputs,
            encoding,
            kind: kind?,
        })
    }
}

/// Reports every field set on a sink of `kind` that belongs to other kinds of sink.
fn fields_for(raw: &RawSink, path: &str, kind: &str, problems: &mut Vec<Problem>) {
    fn mark(s: &Option<Spanned<String>>) -> Option<Option<&marked_yaml::Marker>> {
        s.as_ref().map(|s| s.span().start())
    }
    const FILE: &[&str] = &["file"];
    const KAFKA: &[&str] = &["kafka"];
    const FILE_OR_KAFKA: &[&str] = &["file", "kafka"];
    let fields = [
        ("path", mark(&raw.path), FILE),
        ("compression", mark(&raw.compression), FILE_OR_KAFKA),
        ("zstd_level", mark(&raw.zstd_level), FILE),
        ("sync_interval", mark(&raw.sync_interval), FILE),
        ("rotate", raw.rotate.as_ref().map(|_| None), FILE),
        ("brokers", mark(&raw.brokers), KAFKA),
        ("topic", mark(&raw.topic), KAFKA),
        ("key", mark(&raw.key), KAFKA),
        ("acks", mark(&raw.acks), KAFKA),
        ("linger", mark(&raw.linger), KAFKA),
        ("batch_size", mark(&raw.batch_size), KAFKA),
        ("dead_letter", mark(&raw.dead_letter), KAFKA),
        ("properties", raw.properties.as_ref().map(|_| None), KAFKA),
    ];
    for (field, mark, kinds) in fields {
        if let Some(mark) = mark
            && !kinds.contains(&kind)
        {
            let owners = kinds
                .iter()
                .map(|k| format!("{k} sinks"))
                .collect::<Vec<_>>()
                .join(" and ");
            problems.push(Problem::at(
                mark,
                format!("{path}.{field}"),
                format!("`{field}` applies to {owners} only, not to `{kind}`"),
            ));
        }
    }
}

/// Default librdkafka `linger.ms` of a Kafka sink.
const DEFAULT_KAFKA_LINGER: Duration = Duration::from_millis(5);
/// Default librdkafka `batch.size` of a Kafka sink.
const DEFAULT_KAFKA_BATCH_BYTES: usize = 1 << 20;

fn kafka_sink(
    raw: &RawSink,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<KafkaSinkConfig> {
    let before = problems.len();
    let brokers = match &raw.brokers {
        Some(b)
            if b.split(',').all(|one| {
                one.trim()
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            }) =>
        {
            Some(b.split(',').map(str::trim).collect::<Vec<_>>().join(","))
        }
        Some(b) => {
            problems.push(Problem::spanned(
                b,
                format!("{path}.brokers"),
                "must be `host:port`, or several separated by commas",
            ));
            None
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.brokers"),
                "a kafka sink needs `brokers`",
            ));
            None
        }
    };
    let template = |value: &Spanned<String>, field: &str, problems: &mut Vec<Problem>| {
        match crate::template::Template::parse(value) {
            Ok(t) => Some(t),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    format!("{path}.{field}"),
                    e.to_string(),
                ));
                None
            }
        }
    };
    let topic = match &raw.topic {
        Some(t) => {
            let topic = template(t, "topic", problems);
            if let Some(literal) = topic.as_ref().and_then(|t| t.as_literal())
                && !valid_topic(literal)
            {
                problems.push(Problem::spanned(
                    t,
                    format!("{path}.topic"),
                    "a topic is 1 to 249 characters from `a-z A-Z 0-9 . _ -`",
                ));
            }
            topic
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.topic"),
                "a kafka sink needs `topic`",
            ));
            None
        }
    };
    let key = raw.key.as_ref().and_then(|k| template(k, "key", problems));
    let compression = choice(
        raw.compression.as_ref(),
        &format!("{path}.compression"),
        &[
            ("zstd", KafkaCompression::Zstd),
            ("lz4", KafkaCompression::Lz4),
            ("snappy", KafkaCompression::Snappy),
            ("gzip", KafkaCompression::Gzip),
            ("none", KafkaCompression::None),
        ],
        KafkaCompression::Zstd,
        problems,
    );
    let acks = choice(
        raw.acks.as_ref(),
        &format!("{path}.acks"),
        &[("all", "all"), ("1", "1"), ("0", "0")],
        "all",
        problems,
    )
    .to_string();
    let linger = duration(
        raw.linger.as_ref(),
        &format!("{path}.linger"),
        DEFAULT_KAFKA_LINGER,
        problems,
    );
    let batch_bytes = size(
        raw.batch_size.as_ref(),
        &format!("{path}.batch_size"),
        DEFAULT_KAFKA_BATCH_BYTES,
        1..=(1 << 31) - 1,
        problems,
    );
    let dead_letter = match &raw.dead_letter {
        Some(p) if Path::new(p.as_str()).is_absolute() => Some(PathBuf::from(p.as_str())),
        Some(p) => {
            problems.push(Problem::spanned(
                p,
                format!("{path}.dead_letter"),
                "must be an absolute path",
            ));
            None
        }
        None => None,
    };
    let properties = raw
        .properties
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect();
    if problems.len() != before {
        return None;
    }
    Some(KafkaSinkConfig {
        brokers: brokers?,
        topic: topic?,
        key,
        compression,
        acks,
        linger,
        batch_bytes,
        dead_letter,
        properties,
        queue_bytes: DEFAULT_KAFKA_QUEUE_BYTES,
    })
}

/// Whether `topic` is a legal Kafka topic name.
pub fn valid_topic(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn file_sink(
    raw: &RawSink,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<FileSinkConfig> {
    let before = problems.len();
    let out = match &raw.path {
        Some(p) if Path::new(p.as_str()).is_absolute() => Some(PathBuf::from(p.as_str())),
        Some(p) => {
            problems.push(Problem::spanned(
                p,
                format!("{path}.path"),
                "must be an absolute path",
            ));
            None
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.path"),
                "a file sink needs `path`",
            ));
            None
        }
    };
    let level = match &raw.zstd_level {
        Some(level) => match level.parse::<i32>() {
            Ok(l) if (1..=19).contains(&l) => l,
            _ => {
                problems.push(Problem::spanned(
                    level,
                    format!("{path}.zstd_level"),
                    "must be a whole number from 1 to 19",
                ));
                DEFAULT_ZSTD_LEVEL
            }
        },
        None => DEFAULT_ZSTD_LEVEL,
    };
    let compression = choice(
        raw.compression.as_ref(),
        &format!("{path}.compression"),
        &[
            ("none", Compression::None),
            ("zstd", Compression::Zstd { level }),
        ],
        Compression::None,
        problems,
    );
    if raw.zstd_level.is_some() && compression == Compression::None {
        problems.push(Problem::at(
            raw.zstd_level.as_ref().and_then(|s| s.span().start()),
            format!("{path}.zstd_level"),
            "`zstd_level` needs `compression: zstd`",
        ));
    }
    let rotate = raw.rotate.as_ref().map(|r: &RawRotate| Rotate {
        max_bytes: size(
            r.max_bytes.as_ref(),
            &format!("{path}.rotate.max_bytes"),
            100 << 20,
            4096..=1 << 50,
            problems,
        ) as u64,
        max_files: count(
            r.max_files.as_ref(),
            &format!("{path}.rotate.max_files"),
            DEFAULT_ROTATE_MAX_FILES,
            1..=10_000,
            problems,
        ),
    });
    if let Some(r) = &raw.rotate
        && r.max_bytes.is_none()
    {
        problems.push(Problem::node(
            node,
            format!("{path}.rotate.max_bytes"),
            "rotation needs `max_bytes`",
        ));
    }
    let sync_interval = duration(
        raw.sync_interval.as_ref(),
        &format!("{path}.sync_interval"),
        DEFAULT_SYNC_INTERVAL,
        problems,
    );
    if problems.len() != before {
        return None;
    }
    Some(FileSinkConfig {
        path: out?,
        compression,
        rotate,
        sync_interval,
    })
}

/// Which sizing settings the file gives explicitly (the others are derived from `limits`).
#[derive(Debug, Clone, Copy)]
struct Explicit {
    threads: bool,
    buffer_memory: bool,
    workers: bool,
    queue_batches: bool,
}

/// Applies `limits`: sizes what is not explicit from the memory and CPU ceilings, and checks
/// that everything fits. Buffered data = read buffers + each sink's queue + each worker's
/// open batch per sink + each Kafka sink's producer queue; it must stay within
/// `limits.memory` − [`MEMORY_OVERHEAD`].
fn apply_limits(
    raw: &RawLimits,
    explicit: Explicit,
    reader: &mut ReaderConfig,
    pipeline: &mut PipelineConfig,
    sinks: &mut [SinkConfig],
    problems: &mut Vec<Problem>,
) -> LimitsConfig {
    let memory = size(
        raw.memory.as_ref(),
        "limits.memory",
        DEFAULT_MEMORY_LIMIT,
        (MEMORY_OVERHEAD + (16 << 20))..=1 << 44,
        problems,
    );
    let cpu = raw
        .cpu
        .as_ref()
        .map(|c| count(Some(c), "limits.cpu", 1, 1..=1024, problems));
    let at = |s: &Option<Spanned<String>>| s.as_ref().and_then(|s| s.span().start()).copied();
    if let Some(cpu) = cpu {
        if !explicit.threads {
            reader.threads = 1;
        }
        if !explicit.workers {
            pipeline.workers = cpu.saturating_sub(reader.threads).max(1);
        }
        if reader.threads + pipeline.workers > cpu.max(2) {
            problems.push(Problem::at(
                at(&raw.cpu).as_ref(),
                "limits.cpu",
                format!(
                    "reader.threads ({}) + pipeline.workers ({}) exceed limits.cpu ({cpu})",
                    reader.threads, pipeline.workers
                ),
            ));
        }
    }
    let budget = memory.saturating_sub(MEMORY_OVERHEAD);
    let kafka_sinks = sinks
        .iter()
        .filter(|s| matches!(s.kind, SinkKind::Kafka(_)))
        .count();
    // Shares of what the workers' open batches leave: 40% read buffers, 25% sink queues,
    // 25% Kafka producer queues, 10% slack.
    let open_batches = pipeline.workers * sinks.len() * pipeline.batch_bytes;
    let rest = budget.saturating_sub(open_batches);
    if !explicit.buffer_memory {
        let chunks = (rest * 2 / 5 / reader.chunk_bytes).max(2);
        reader.buffer_memory =
            (chunks * reader.chunk_bytes).min(DEFAULT_BUFFER_MEMORY.max(2 * reader.chunk_bytes));
    }
    let kafka_queue = (rest / 4)
        .checked_div(kafka_sinks)
        .map_or(0, |q| q.clamp(4 << 20, DEFAULT_KAFKA_QUEUE_BYTES));
    for sink in sinks.iter_mut() {
        if let SinkKind::Kafka(k) = &mut sink.kind {
            k.queue_bytes = kafka_queue;
        }
    }
    if !explicit.queue_batches && !sinks.is_empty() {
        let per_queue = rest / 4 / sinks.len();
        pipeline.queue_batches = (per_queue / pipeline.batch_bytes).clamp(2, DEFAULT_QUEUE_BATCHES);
    }
    let queues = sinks.len() * pipeline.queue_batches * pipeline.batch_bytes;
    let buffered = reader.buffer_memory + queues + open_batches + kafka_sinks * kafka_queue;
    if buffered > budget {
        problems.push(Problem::at(
            at(&raw.memory).as_ref(),
            "limits.memory",
            format!(
                "the buffers add up to {} MiB (read buffers {} MiB, sink queues {} MiB, open batches {} MiB, Kafka queues {} MiB), over limits.memory ({} MiB) minus {} MiB for the process itself; lower reader.buffer_memory, pipeline.queue_batches or pipeline.batch_size, or raise limits.memory",
                buffered >> 20,
                reader.buffer_memory >> 20,
                queues >> 20,
                open_batches >> 20,
                (kafka_sinks * kafka_queue) >> 20,
                memory >> 20,
                MEMORY_OVERHEAD >> 20
            ),
        ));
    }
    LimitsConfig {
        memory,
        cpu,
        buffered,
    }
}

/// The `kubernetes` section; the node name defaults to `NODE_NAME` (the downward API).
fn kubernetes_config(raw: RawKubernetes, problems: &mut Vec<Problem>) -> KubernetesConfig {
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
        None => KubernetesConfig::default().runtime_dirs,
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
    KubernetesConfig {
        node_name,
        runtime_dirs,
    }
}

/// One processor, every field checked against its type.
fn processor(
    raw: RawProcessor,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<Processor> {
    let Some(kind) = raw.kind.as_ref() else {
        problems.push(Problem::node(
            node,
            format!("{path}.type"),
            "missing field `type` (json, regex, nginx, apache, csv, add_fields, drop, keep)",
        ));
        return None;
    };
    let before = problems.len();
    let given: [(&str, bool); 9] = [
        ("depth", raw.depth.is_some()),
        ("keep_source", raw.keep_source.is_some()),
        ("pattern", raw.pattern.is_some()),
        ("keys", raw.keys.is_some()),
        ("columns", raw.columns.is_some()),
        ("delimiter", raw.delimiter.is_some()),
        ("fields", raw.fields.is_some()),
        ("field", raw.field.is_some()),
        ("type", true),
    ];
    let allowed: &[&str] = match kind.as_str() {
        "json" => &["depth", "keep_source"],
        "regex" => &["pattern", "keys"],
        "nginx" | "apache" => &[],
        "csv" => &["columns", "delimiter"],
        "add_fields" => &["fields"],
        "drop" | "keep" => &["field", "pattern"],
        other => {
            problems.push(Problem::spanned(
                kind,
                format!("{path}.type"),
                format!("unknown processor `{other}`, expected one of json, regex, nginx, apache, csv, add_fields, drop, keep"),
            ));
            return None;
        }
    };
    for (name, set) in given {
        if set && name != "type" && !allowed.contains(&name) {
            problems.push(Problem::spanned(
                kind,
                format!("{path}.{name}"),
                format!("`{name}` does not apply to a `{}` processor", kind.as_str()),
            ));
        }
    }
    let regex = |value: Option<&Spanned<String>>, problems: &mut Vec<Problem>| {
        let Some(value) = value else {
            problems.push(Problem::spanned(
                kind,
                format!("{path}.pattern"),
                format!("a `{}` processor needs a `pattern`", kind.as_str()),
            ));
            return None;
        };
        match Regex::new(value) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    format!("{path}.pattern"),
                    format!("invalid regex `{}`: {}", **value, one_line(&e.to_string())),
                ));
                None
            }
        }
    };
    let names = |list: &Option<Vec<Spanned<String>>>| -> Vec<String> {
        list.iter().flatten().map(|s| s.to_string()).collect()
    };
    let processor = match kind.as_str() {
        "json" => {
            let depth = match &raw.depth {
                Some(d) => match d.parse::<usize>() {
                    Ok(n) if (1..=16).contains(&n) => n,
                    _ => {
                        problems.push(Problem::spanned(
                            d,
                            format!("{path}.depth"),
                            "must be a whole number from 1 to 16",
                        ));
                        1
                    }
                },
                None => 1,
            };
            let keep_source = match raw.keep_source.as_ref().map(|k| k.as_str()) {
                None | Some("true") => true,
                Some("false") => false,
                Some(other) => {
                    problems.push(Problem::spanned(
                        raw.keep_source.as_ref().unwrap_or(kind),
                        format!("{path}.keep_source"),
                        format!("expected `true` or `false`, got `{other}`"),
                    ));
                    true
                }
            };
            Processor::Json { depth, keep_source }
        }
        "regex" => {
            let pattern = regex(raw.pattern.as_ref(), problems)?;
            let groups = pattern.captures_len() - 1;
            let keys = if raw.keys.is_some() {
                names(&raw.keys)
            } else {
                pattern
                    .capture_names()
                    .skip(1)
                    .map(|n| n.unwrap_or_default().to_string())
                    .collect()
            };
            if groups == 0 || keys.len() != groups || keys.iter().any(String::is_empty) {
                problems.push(Problem::spanned(
                    raw.pattern.as_ref().unwrap_or(kind),
                    format!("{path}.keys"),
                    format!("the pattern has {groups} capture group(s): name each one (`(?P<name>…)`) or list as many `keys`"),
                ));
            }
            Processor::Regex { pattern, keys }
        }
        "nginx" => Processor::Nginx,
        "apache" => Processor::Apache,
        "csv" => {
            let columns = names(&raw.columns);
            if columns.is_empty() {
                problems.push(Problem::spanned(
                    kind,
                    format!("{path}.columns"),
                    "a `csv` processor needs `columns`",
                ));
            }
            let delimiter = match &raw.delimiter {
                None => b',',
                Some(d) if d.len() == 1 && d.as_bytes()[0] != b'"' => d.as_bytes()[0],
                Some(d) => {
                    problems.push(Problem::spanned(
                        d,
                        format!("{path}.delimiter"),
                        "must be one ASCII character other than `\"`",
                    ));
                    b','
                }
            };
            Processor::Csv { columns, delimiter }
        }
        "add_fields" => {
            let fields: Vec<(String, String)> = raw
                .fields
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect();
            if fields.is_empty() {
                problems.push(Problem::spanned(
                    kind,
                    format!("{path}.fields"),
                    "an `add_fields` processor needs `fields`",
                ));
            }
            Processor::AddFields { fields }
        }
        _ => {
            let pattern = regex(raw.pattern.as_ref(), problems)?;
            let field = raw
                .field
                .as_ref()
                .map_or_else(|| "message".to_string(), |f| f.to_string());
            if kind.as_str() == "drop" {
                Processor::Drop { field, pattern }
            } else {
                Processor::Keep { field, pattern }
            }
        }
    };
    (problems.len() == before).then_some(processor)
}

/// A source's `containers` filter, every regex checked.
fn container_filter(
    raw: RawContainers,
    path: &str,
    problems: &mut Vec<Problem>,
) -> ContainerFilter {
    let matcher = |raw: RawContainerMatcher, path: String, problems: &mut Vec<Problem>| {
        let mut regex = |value: &Spanned<String>, field: String| match regex::Regex::new(value) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    field,
                    format!("invalid regex `{}`: {}", **value, one_line(&e.to_string())),
                ));
                None
            }
        };
        let mut one = |value: Option<Spanned<String>>, field: &str| {
            value.and_then(|v| regex(&v, format!("{path}.{field}")))
        };
        let namespace = one(raw.namespace, "namespace");
        let pod = one(raw.pod, "pod");
        let container = one(raw.container, "container");
        let mut map = |values: BTreeMap<String, Spanned<String>>, field: &str| {
            values
                .into_iter()
                .filter_map(|(k, v)| {
                    let re = regex(&v, format!("{path}.{field}.{k}"))?;
                    Some((k, re))
                })
                .collect()
        };
        let env = map(raw.env, "env");
        let annotations = map(raw.annotations, "annotations");
        ContainerMatcher {
            namespace,
            pod,
            container,
            env,
            annotations,
        }
    };
    let include = raw
        .include
        .into_iter()
        .enumerate()
        .map(|(i, m)| matcher(m, format!("{path}.include[{i}]"), problems))
        .collect();
    let exclude = raw
        .exclude
        .into_iter()
        .enumerate()
        .map(|(i, m)| matcher(m, format!("{path}.exclude[{i}]"), problems))
        .collect();
    ContainerFilter { include, exclude }
}

fn multiline_rules(
    raw: RawMultiline,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<MultilineRules> {
    let before = problems.len();
    let regex = |value: &Option<Spanned<String>>,
                 field: &str,
                 problems: &mut Vec<Problem>|
     -> Option<Regex> {
        let value = value.as_ref()?;
        match Regex::new(value) {
            Ok(re) => Some(re),
            Err(e) => {
                problems.push(Problem::spanned(
                    value,
                    format!("{path}.{field}"),
                    format!("invalid regex `{}`: {}", **value, one_line(&e.to_string())),
                ));
                None
            }
        }
    };
    let start = regex(&raw.start, "start", problems);
    let continue_ = regex(&raw.continue_, "continue", problems);
    let end = regex(&raw.end, "end", problems);
    let given = [
        raw.preset.is_some(),
        raw.start.is_some(),
        raw.continue_.is_some(),
    ]
    .iter()
    .filter(|&&b| b)
    .count();
    let mode = match (&raw.preset, start, continue_) {
        _ if given > 1 => {
            problems.push(Problem::node(
                node,
                path,
                "give exactly one of `preset`, `start` or `continue`",
            ));
            None
        }
        (Some(preset), _, _) => {
            if raw.end.is_some() {
                problems.push(Problem::spanned(
                    preset,
                    format!("{path}.end"),
                    "`end` cannot be combined with a preset",
                ));
            }
            match multiline::preset(preset) {
                Some(mode) => Some(mode),
                None => {
                    problems.push(Problem::spanned(
                        preset,
                        format!("{path}.preset"),
                        format!(
                            "unknown preset `{}`, expected one of {}",
                            **preset,
                            quoted(multiline::PRESETS)
                        ),
                    ));
                    None
                }
            }
        }
        (None, Some(start), None) => Some(MultilineMode::Start(start)),
        (None, None, Some(continue_)) => Some(MultilineMode::Continue(continue_)),
        (None, None, None) if given == 0 => {
            problems.push(Problem::node(
                node,
                path,
                "give one of `preset`, `start` or `continue`",
            ));
            None
        }
        _ => None,
    };
    let max_lines = count(
        raw.max_lines.as_ref(),
        &format!("{path}.max_lines"),
        DEFAULT_MULTILINE_MAX_LINES,
        1..=1_000_000,
        problems,
    );
    let max_bytes = size(
        raw.max_bytes.as_ref(),
        &format!("{path}.max_bytes"),
        DEFAULT_MULTILINE_MAX_BYTES,
        16..=1 << 30,
        problems,
    );
    let timeout = duration(
        raw.timeout.as_ref(),
        &format!("{path}.timeout"),
        DEFAULT_MULTILINE_TIMEOUT,
        problems,
    );
    if problems.len() != before {
        return None;
    }
    Some(MultilineRules {
        mode: mode?,
        end,
        max_lines,
        max_bytes,
        timeout,
    })
}

fn list<T: serde::de::DeserializeOwned>(
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Vec<Option<T>> {
    match node.as_sequence() {
        Some(seq) => seq
            .iter()
            .enumerate()
            .map(|(i, item)| deserialize_collecting(item, &format!("{path}[{i}]"), problems))
            .collect(),
        None => {
            problems.push(Problem::node(node, path, "must be a list"));
            Vec::new()
        }
    }
}

fn choice<T: Copy>(
    value: Option<&Spanned<String>>,
    path: &str,
    options: &[(&str, T)],
    default: T,
    problems: &mut Vec<Problem>,
) -> T {
    let Some(value) = value else { return default };
    match options.iter().find(|(name, _)| *name == value.as_str()) {
        Some((_, v)) => *v,
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "unknown value `{}`, expected one of {}",
                    **value,
                    quoted(&names)
                ),
            ));
            default
        }
    }
}

fn read_from(
    value: Option<&Spanned<String>>,
    path: &str,
    default: ReadFrom,
    problems: &mut Vec<Problem>,
) -> ReadFrom {
    choice(
        value,
        path,
        &[("beginning", ReadFrom::Beginning), ("end", ReadFrom::End)],
        default,
        problems,
    )
}

fn count(
    value: Option<&Spanned<String>>,
    path: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    problems: &mut Vec<Problem>,
) -> usize {
    let Some(value) = value else { return default };
    match value.trim().parse::<usize>() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "`{}` is not a whole number from {} to {}",
                    **value,
                    range.start(),
                    range.end()
                ),
            ));
            default
        }
    }
}

fn size(
    value: Option<&Spanned<String>>,
    path: &str,
    default: usize,
    range: std::ops::RangeInclusive<usize>,
    problems: &mut Vec<Problem>,
) -> usize {
    let Some(value) = value else { return default };
    let parsed = value
        .trim()
        .parse::<bytesize::ByteSize>()
        .ok()
        .and_then(|b| usize::try_from(b.as_u64()).ok());
    match parsed {
        Some(n) if range.contains(&n) => n,
        Some(_) => {
            problems.push(Problem::spanned(
                value,
                path,
                format!(
                    "`{}` is out of range: from {} to {}",
                    **value,
                    bytesize::ByteSize(*range.start() as u64).display().iec(),
                    bytesize::ByteSize(*range.end() as u64).display().iec()
                ),
            ));
            default
        }
        None => {
            problems.push(Problem::spanned(
                value,
                path,
                format!("`{}` is not a size (e.g. 4096, 256KiB, 1MiB)", **value),
            ));
            default
        }
    }
}

fn duration(
    value: Option<&Spanned<String>>,
    path: &str,
    default: Duration,
    problems: &mut Vec<Problem>,
) -> Duration {
    let Some(value) = value else { return default };
    match humantime::parse_duration(value.trim()) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            problems.push(Problem::spanned(value, path, "must be longer than zero"));
            default
        }
        Err(e) => {
            problems.push(Problem::spanned(
                value,
                path,
                format!("`{}` is not a duration (e.g. 500ms, 2s, 1m): {e}", **value),
            ));
            default
        }
    }
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
            SinkKind::File(file) => ("path", &file.path),
            SinkKind::Kafka(KafkaSinkConfig {
                dead_letter: Some(path),
                ..
            }) => ("dead_letter", path),
            _ => continue,
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
