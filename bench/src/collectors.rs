//! The collectors the harness can run: ringtail, and peers (see [`crate::peers`]).
//!
//! Each adapter knows how to configure its collector for a case (read `<logs>/*.log`, write
//! one output), how many output lines a complete delivery makes, and whether it can run here.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::case::{Case, SinkKind};
use crate::workload::{Format, Plan, Trace};

/// The directories of one measurement.
#[derive(Debug, Clone)]
pub struct RunDirs {
    /// Parent of the others.
    pub root: PathBuf,
    /// Where the workload writes (`*.log`).
    pub logs: PathBuf,
    /// Where the collector writes its output.
    pub out: PathBuf,
    /// The collector's own state (checkpoints, registries, pid files) and its log.
    pub state: PathBuf,
}

impl RunDirs {
    /// Creates fresh directories under `root` (removing what was there); with `pod`, the
    /// logs are one container's in the kubelet's layout ([`crate::cri::POD_DIR`]).
    pub fn create(root: &Path, pod: bool) -> std::io::Result<RunDirs> {
        if root.exists() {
            std::fs::remove_dir_all(root)?;
        }
        let dirs = RunDirs {
            root: root.to_path_buf(),
            logs: if pod {
                root.join(crate::cri::POD_DIR)
            } else {
                root.join("logs")
            },
            out: root.join("out"),
            state: root.join("state"),
        };
        for d in [&dirs.logs, &dirs.out, &dirs.state] {
            std::fs::create_dir_all(d)?;
        }
        Ok(dirs)
    }

    /// The glob collectors read.
    pub fn glob(&self) -> String {
        format!("{}/*.log", self.logs.display())
    }

    /// Where a collector's stderr goes.
    pub fn log_file(&self) -> PathBuf {
        self.state.join("collector.log")
    }
}

/// A collector that was started.
#[derive(Debug)]
pub struct Launched {
    /// The collector process (not a wrapper shell): CPU and memory are read from its pid.
    pub child: Child,
    /// The output file, or a directory of output files; `None` for a blackhole.
    pub output: Option<PathBuf>,
    /// ringtail's API port, to read delivered records when there is no output file.
    pub api_port: Option<u16>,
    /// The broker of a Kafka case (stopped with the run).
    pub broker: Option<crate::kafka::Broker>,
    /// The receiver of an OTLP or Elasticsearch case.
    pub receiver: Option<crate::receiver::Receiver>,
    /// The CRI socket's server of `ringtail-labels` (stopped with the run).
    pub runtime: Option<crate::cri::FakeRuntime>,
}

/// A collector the harness can measure.
pub trait Collector {
    /// Name in reports.
    fn name(&self) -> String;

    /// Why it cannot run on this machine (not installed), if so.
    fn unavailable(&self) -> Option<String>;

    /// Why it cannot run `case` with `sink`, if so.
    fn unsupported(&self, case: &Case, sink: SinkKind) -> Option<String>;

    /// Newlines in its output to `sink` once every record of `plan` is delivered.
    fn expected_lines(&self, case: &Case, sink: SinkKind, plan: &Plan) -> u64;

    /// Starts it for `case`, reading `dirs.glob()` and writing into `dirs.out`.
    fn launch(&self, case: &Case, sink: SinkKind, dirs: &RunDirs) -> std::io::Result<Launched>;

    /// The one output a peer is measured with (a file, unless it cannot write one).
    fn peer_sink(&self) -> SinkKind {
        SinkKind::File
    }

    /// Whether it is ringtail (in some configuration): measured with every sink of a case;
    /// peers with their [`peer_sink`](Self::peer_sink) only.
    fn is_ringtail(&self) -> bool {
        false
    }
}

/// ringtail itself.
#[derive(Debug, Clone)]
pub struct Ringtail {
    /// The binary.
    pub binary: PathBuf,
    /// `ringtail-labels`: the Python (with grpcio) that serves the pod's labels on a CRI
    /// socket, in cases with `pod_labels`.
    pub labels: Option<PathBuf>,
    /// A variant's own multiline rules in cases with traces (`ringtail-auto`,
    /// `ringtail-regex`), in place of the trace's preset.
    pub multiline: Option<MultilineVariant>,
}

/// Multiline rules ringtail is measured with beside its preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultilineVariant {
    /// `mode: auto`.
    Auto,
    /// A `start:` regex on the records' first lines.
    Regex,
}

impl MultilineVariant {
    /// The collector's name and its variant, for the names it goes by.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "ringtail-auto" => Some(Self::Auto),
            "ringtail-regex" => Some(Self::Regex),
            _ => None,
        }
    }
}

impl Ringtail {
    /// The output file of a file sink.
    fn output(sink: SinkKind, dirs: &RunDirs) -> PathBuf {
        match sink {
            SinkKind::FileJson => dirs.out.join("ringtail.ndjson"),
            _ => dirs.out.join("ringtail.txt"),
        }
    }

    fn config(
        &self,
        case: &Case,
        sink: SinkKind,
        dirs: &RunDirs,
        port: u16,
        broker: Option<&crate::kafka::Broker>,
        receiver: Option<&crate::receiver::Receiver>,
    ) -> String {
        let receiver_port = receiver.map_or(4318, |r| r.port);
        let format = match case.spec.format {
            Format::Raw => "raw",
            Format::Cri => "cri",
            Format::Docker => "docker",
        };
        let multiline = match (case.multiline, self.multiline) {
            (None, _) => String::new(),
            (Some(_), Some(MultilineVariant::Auto)) => {
                "    multiline: {mode: auto, timeout: 200ms}\n".to_string()
            }
            (Some(_), Some(MultilineVariant::Regex)) => format!(
                "    multiline: {{start: '{}', timeout: 200ms}}\n",
                crate::workload::RECORD_START
            ),
            (Some(Trace::Java), None) => {
                "    multiline: {preset: java, timeout: 200ms}\n".to_string()
            }
            (Some(Trace::Python), None) => {
                "    multiline: {preset: python, timeout: 200ms}\n".to_string()
            }
        };
        let sink = match sink {
            SinkKind::File => format!(
                "    type: file\n    encoding: text\n    path: {}\n",
                Self::output(sink, dirs).display()
            ),
            SinkKind::FileJson => format!(
                "    type: file\n    path: {}\n",
                Self::output(sink, dirs).display()
            ),
            SinkKind::Kafka | SinkKind::KafkaText => format!(
                "    type: kafka\n    brokers: {}\n    topic: {}\n    compression: zstd\n    acks: all\n{}",
                broker.map_or("127.0.0.1:9092", |b| b.address.as_str()),
                crate::kafka::TOPIC,
                if sink == SinkKind::KafkaText {
                    "    encoding: text\n"
                } else {
                    ""
                }
            ),
            SinkKind::Otlp => format!(
                "    type: otlp\n    endpoint: http://127.0.0.1:{receiver_port}\n    compression: none\n"
            ),
            SinkKind::Elasticsearch => format!(
                "    type: elasticsearch\n    endpoint: http://127.0.0.1:{receiver_port}\n    index: \"bench-%Y.%m.%d\"\n"
            ),
            SinkKind::Blackhole => "    type: blackhole\n".to_string(),
        };
        // Which discovery ringtail runs with (`auto` when unset), to compare the modes;
        // `ebpf+write_hook` also lets the eBPF write hook wake the readers.
        // `RINGTAIL_BENCH_LINGER` sets `reader.linger`, to measure it against node cost.
        let (mode, wake) = match std::env::var("RINGTAIL_BENCH_DISCOVERY") {
            Ok(mode) => match mode.split_once('+') {
                Some((mode, wake)) => (Some(mode.to_string()), Some(wake.to_string())),
                None => (Some(mode), None),
            },
            Err(_) => (None, None),
        };
        let linger = std::env::var("RINGTAIL_BENCH_LINGER").ok();
        let mut discovery = mode.map_or_else(String::new, |m| format!("discovery: {m}\n"));
        if wake.is_some() || linger.is_some() {
            discovery.push_str("reader:\n");
        }
        if let Some(wake) = wake {
            discovery.push_str(&format!("  wake: {wake}\n"));
        }
        if let Some(linger) = linger {
            discovery.push_str(&format!("  linger: {linger}\n"));
        }
        // In a kubelet-layout case both read the same paths; only `ringtail-labels` is given
        // the runtime's socket.
        let kubernetes = match (&self.labels, case.pod_labels) {
            (Some(_), _) => format!(
                "kubernetes:\n  cri_socket: {}\n",
                crate::cri::socket(dirs).display()
            ),
            (None, true) => "kubernetes:\n  cri_socket: none\n".to_string(),
            (None, false) => String::new(),
        };
        format!(
            "{discovery}{kubernetes}data_dir: {state}/data\napi:\n  listen: 127.0.0.1:{port}\nsources:\n  - name: bench\n    paths: [\"{glob}\"]\n    format: {format}\n{multiline}sinks:\n  - name: out\n{sink}",
            state = dirs.state.display(),
            glob = dirs.glob(),
        )
    }
}

impl Collector for Ringtail {
    fn name(&self) -> String {
        match (&self.labels, self.multiline) {
            (Some(_), _) => "ringtail-labels".to_string(),
            (None, Some(MultilineVariant::Auto)) => "ringtail-auto".to_string(),
            (None, Some(MultilineVariant::Regex)) => "ringtail-regex".to_string(),
            (None, None) => "ringtail".to_string(),
        }
    }

    fn unavailable(&self) -> Option<String> {
        (!self.binary.is_file()).then(|| {
            format!(
                "{} not found (build it with cargo build --release -p ringtail)",
                self.binary.display()
            )
        })
    }

    fn is_ringtail(&self) -> bool {
        true
    }

    fn unsupported(&self, case: &Case, sink: SinkKind) -> Option<String> {
        if self.labels.is_some() && !case.pod_labels {
            return Some("pod labels are measured in cases with `pod_labels`".to_string());
        }
        if self.multiline.is_some() && case.multiline.is_none() {
            return Some("multiline variants are measured in cases with stack traces".to_string());
        }
        (sink.is_kafka() && crate::kafka::tansu().is_none()).then(|| {
            "no Kafka broker: Tansu is not installed (cargo xtask setup installs it)".to_string()
        })
    }

    fn expected_lines(&self, _case: &Case, sink: SinkKind, plan: &Plan) -> u64 {
        match sink {
            // Text: each decoded message; CRI/docker splits are joined, a multi-line record
            // keeps its lines.
            SinkKind::File => plan.message_lines(),
            // NDJSON: one line per record.
            _ => plan.records(),
        }
    }

    fn launch(&self, case: &Case, sink: SinkKind, dirs: &RunDirs) -> std::io::Result<Launched> {
        let port = free_port()?;
        let broker = sink
            .is_kafka()
            .then(crate::kafka::Broker::start)
            .transpose()?;
        let receiver = sink
            .receiver()
            .map(crate::receiver::Receiver::start)
            .transpose()?;
        let runtime = self
            .labels
            .as_deref()
            .map(|python| crate::cri::FakeRuntime::start(python, &crate::cri::socket(dirs)))
            .transpose()?;
        let config = dirs.state.join("ringtail.yaml");
        std::fs::write(
            &config,
            self.config(case, sink, dirs, port, broker.as_ref(), receiver.as_ref()),
        )?;
        let log = std::fs::File::create(dirs.log_file())?;
        let child = Command::new(&self.binary)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("RINGTAIL_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Launched {
            child,
            output: sink.is_file().then(|| Self::output(sink, dirs)),
            api_port: Some(port),
            broker,
            receiver,
            runtime,
        })
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A metric's value from ringtail's `/metrics` (`None` when unreachable).
pub fn ringtail_metric(port: u16, series: &str) -> Option<f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;

    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map_or(Some(0.0), |v| v.trim().parse().ok())
}
