//! A real Kafka-protocol broker for tests (Tansu, one per test, on a free loopback port, from
//! [`bench::kafka`]) and an independent consumer (Python's `confluent_kafka`, librdkafka 2.16
//! — not ringtail's code) that reads topics from the beginning. Both are installed by
//! `cargo xtask setup` (`cargo xtask test` passes their paths in `RINGTAIL_TANSU` and
//! `RINGTAIL_TEST_PYTHON`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub use bench::kafka::Broker;

const SETUP: &str =
    "the Kafka test tools are missing: run `cargo xtask setup` (or `cargo xtask test`)";

/// Python with `confluent_kafka`: `RINGTAIL_TEST_PYTHON`, else where `cargo xtask setup`
/// puts it.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGTAIL_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/kafka/bin/python");
    assert!(path.is_file(), "{SETUP}");
    path
}

/// A broker (Tansu on a free loopback port, memory storage, killed when dropped), as the
/// bench starts it.
pub fn broker() -> Broker {
    assert!(bench::kafka::tansu().is_some(), "{SETUP}");
    Broker::start().expect("start the Tansu broker")
}

/// Sends `signal` to the broker.
pub fn signal(broker: &Broker, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(broker.pid() as i32).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("signal the broker");
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Its topic.
    pub topic: String,
    /// Its key (UTF-8 here).
    pub key: String,
    /// Its value: one NDJSON record.
    pub value: String,
}

const CONSUMER: &str = r#"
import sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
import json
broker, topics, expected, idle, out = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
extra = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
c = Consumer({'bootstrap.servers': broker, 'group.id': 'ringtail-tests', 'enable.auto.commit': False,
              'auto.offset.reset': 'earliest', 'enable.partition.eof': False, **extra})
deadline = time.time() + 30
parts = []
while not parts and time.time() < deadline:
    md = c.list_topics(timeout=10)
    parts = [TopicPartition(t, p, OFFSET_BEGINNING) for t in topics if t in md.topics
             for p in md.topics[t].partitions]
    if not parts:
        time.sleep(0.2)
c.assign(parts)
n, last = 0, time.time()
with open(out, 'w') as f:
    while n < expected and time.time() - last < idle:
        for m in c.consume(10000, timeout=0.5):
            if m.error():
                print('consumer error:', m.error(), file=sys.stderr)
                continue
            key = (m.key() or b'').decode()
            f.write('%s\t%s\t%s\n' % (m.topic(), key, m.value().decode()))
            n += 1
            last = time.time()
c.close()
print(n)
"#;

/// Reads `topics` from the beginning until `expected` messages came or none came for `idle`.
pub fn consume(broker: &Broker, topics: &[&str], expected: usize, idle: Duration) -> Vec<Consumed> {
    consume_from(&broker.address, "{}", topics, expected, idle)
}

/// [`consume`] from the broker at `address` with extra librdkafka properties (a JSON object:
/// TLS settings).
pub fn consume_from(
    address: &str,
    properties: &str,
    topics: &[&str],
    expected: usize,
    idle: Duration,
) -> Vec<Consumed> {
    let python = python();
    let out = tempfile::NamedTempFile::new().expect("a temp file");
    let status = Command::new(python)
        .arg("-c")
        .arg(CONSUMER)
        .arg(address)
        .arg(topics.join(","))
        .arg(expected.to_string())
        .arg(idle.as_secs_f64().to_string())
        .arg(out.path())
        .arg(properties)
        .stdout(Stdio::null())
        .status()
        .expect("run the consumer");
    assert!(status.success(), "the consumer failed");
    let text = std::fs::read_to_string(out.path()).expect("the consumer's output");
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            Some(Consumed {
                topic: parts.next()?.to_string(),
                key: parts.next()?.to_string(),
                value: parts.next()?.to_string(),
            })
        })
        .collect()
}

/// Writes the values of `messages` as an NDJSON file in `dir`, for [`super::Delivered`].
pub fn write_values(dir: &Path, messages: &[Consumed]) {
    std::fs::create_dir_all(dir).expect("create the output directory");
    let mut text = String::new();
    for m in messages {
        text.push_str(&m.value);
        text.push('\n');
    }
    std::fs::write(dir.join("kafka.ndjson"), text).expect("write the consumed values");
}

/// A broker reached only over TLS: Tansu on a loopback port advertising the port of a TLS
/// terminator in front of it ([`super::tls::Terminator`]; Tansu 0.6 has no TLS listener of
/// its own) that requires a client certificate (mutual TLS). Killed when dropped.
pub struct TlsBroker {
    /// The broker behind the terminator.
    pub broker: Broker,
    /// The terminator and its certificates.
    pub tls: super::tls::Terminator,
    /// `127.0.0.1:<TLS port>`.
    pub address: String,
}

impl TlsBroker {
    /// Makes the certificates in `dir` and starts the broker and its terminator.
    pub fn start(dir: &Path) -> TlsBroker {
        let port = super::free_port();
        let broker = Broker::start_advertising(Some(port)).expect("start the Tansu broker");
        let tls = super::tls::Terminator::start_on(dir, port, &broker.address, true);
        TlsBroker {
            broker,
            address: format!("127.0.0.1:{port}"),
            tls,
        }
    }

    /// The consumer's TLS properties (JSON).
    pub fn consumer_properties(&self) -> String {
        serde_json::json!({
            "security.protocol": "ssl",
            "ssl.ca.location": self.tls.ca,
            "ssl.certificate.location": self.tls.client_cert,
            "ssl.key.location": self.tls.client_key,
        })
        .to_string()
    }
}
