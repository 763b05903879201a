//! Liveness against readiness on the real binary: a frozen Kafka broker makes ringtail
//! unready for as long as it lasts but never dead (a restart would fix nothing), while a
//! reader wedged inside its work (a test-only hook) makes `/livez` fail and name it.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Collector, append_lines};

/// `(status code, body)` of a GET.
fn get(collector: &Collector, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", collector.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
    (status, body)
}

fn config(dir: &Path, sink: &str, stall: &str) -> String {
    format!(
        "data_dir: {d}/data\napi:\n  listen: 127.0.0.1:{{port}}\n  stall_timeout: {stall}\nsources:\n  - name: app\n    paths: [\"{d}/logs/*.log\"]\nsinks:\n  - name: out\n{sink}",
        d = dir.display()
    )
}

#[test]
fn a_frozen_broker_makes_ringtail_unready_for_90_seconds_but_never_dead() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let broker = common::kafka::broker();
    let sink = format!(
        "    type: kafka\n    brokers: {}\n    topic: live\n",
        broker.address
    );
    let collector = Collector::start(dir.path(), &config(dir.path(), &sink, "30s"));
    let log = dir.path().join("logs/a.log");
    append_lines(&log, "a", 0..1_000, 50);
    collector.wait_until(Duration::from_secs(30), "delivered", || {
        collector.metric("ringtail_kafka_delivered_total{sink=\"out\"}") >= 1_000.0
    });
    common::kafka::signal(&broker, rustix::process::Signal::STOP);
    let frozen = Instant::now();
    let mut unready = None;
    let mut round = 0u64;
    while frozen.elapsed() < Duration::from_secs(90) {
        // Lines keep coming while the broker is frozen: the pipeline fills and waits.
        append_lines(&log, "a", 1_000 + round * 200..1_200 + round * 200, 50);
        round += 1;
        let (live, body) = get(&collector, "/livez");
        assert_eq!(
            live,
            200,
            "/livez failed after {:?} of a frozen broker: {body}",
            frozen.elapsed()
        );
        let (ready, body) = get(&collector, "/readyz");
        if ready == 503 && unready.is_none() {
            assert!(body.contains("\"degraded\""), "{body}");
            unready = Some(frozen.elapsed());
        }
        let (alias, _) = get(&collector, "/healthz");
        assert_eq!(alias, ready, "/healthz is /readyz");
        std::thread::sleep(Duration::from_secs(1));
    }
    let unready = unready.expect("/readyz never answered 503 while the broker was frozen");
    println!("unready after {unready:?} of a frozen broker; live for 90 s");
    common::kafka::signal(&broker, rustix::process::Signal::CONT);
    collector.wait_until(Duration::from_secs(120), "ready again", || {
        get(&collector, "/readyz").0 == 200
    });
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}

#[test]
fn a_wedged_reader_makes_livez_fail_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let out = dir.path().join("out.ndjson");
    let sink = format!("    type: file\n    path: {}\n", out.display());
    let collector =
        Collector::start_wrapped(dir.path(), &config(dir.path(), &sink, "2s"), |binary| {
            let mut command = Command::new(binary);
            command.env("RINGTAIL_TEST_STALL_READER", "1");
            command
        });
    assert_eq!(
        get(&collector, "/livez").0,
        200,
        "live until the reader wedges"
    );
    append_lines(&dir.path().join("logs/a.log"), "a", 0..10, 10);
    collector.wait_until(Duration::from_secs(20), "/livez names the reader", || {
        let (status, body) = get(&collector, "/livez");
        status == 503 && body.contains("reader-0") && body.contains("without progress")
    });
    collector.kill();
}
