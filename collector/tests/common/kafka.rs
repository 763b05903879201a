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

/// A broker reached only over TLS: Tansu on a loopback port advertising the port of a
/// `stunnel4` in front of it (Debian's TLS terminator; Tansu 0.6 has no TLS listener of its
/// own), with a test CA, a server certificate for `127.0.0.1`, and a client certificate the
/// terminator requires (mutual TLS). Everything is killed when dropped.
pub struct TlsBroker {
    /// The broker behind the terminator.
    pub broker: Broker,
    stunnel: std::process::Child,
    /// `127.0.0.1:<TLS port>`.
    pub address: String,
    /// The CA's certificate (PEM).
    pub ca: PathBuf,
    /// The client's certificate and key (PEM).
    pub client_cert: PathBuf,
    /// The client's key.
    pub client_key: PathBuf,
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

impl TlsBroker {
    /// Makes the certificates in `dir` and starts the broker and its terminator.
    pub fn start(dir: &Path) -> TlsBroker {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=ringtail-test-ca",
            ],
        );
        std::fs::write(
            dir.join("ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        for name in ["server", "client"] {
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                    "-subj",
                    &format!("/CN={name}"),
                ],
            );
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    "ext",
                ],
            );
        }
        let tls_port = super::free_port();
        let broker = Broker::start_advertising(Some(tls_port)).expect("start the Tansu broker");
        let config = format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = {}\ncert = {d}/server.pem\nkey = {d}/server.key\nCAfile = {d}/ca.pem\nverifyChain = yes\n",
            broker.address,
            d = dir.display()
        );
        std::fs::write(dir.join("stunnel.conf"), config).unwrap();
        let stunnel = Command::new("stunnel4")
            .arg(dir.join("stunnel.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stunnel.log")).unwrap())
            .spawn()
            .expect("start stunnel4 (Debian package stunnel4)");
        let address = format!("127.0.0.1:{tls_port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "stunnel4 did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsBroker {
            broker,
            stunnel,
            address,
            ca: dir.join("ca.pem"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }

    /// The consumer's TLS properties (JSON).
    pub fn consumer_properties(&self) -> String {
        serde_json::json!({
            "security.protocol": "ssl",
            "ssl.ca.location": self.ca,
            "ssl.certificate.location": self.client_cert,
            "ssl.key.location": self.client_key,
        })
        .to_string()
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        let _ = self.stunnel.kill();
        let _ = self.stunnel.wait();
    }
}
