//! The API under hostile clients, against the real binary: a client that pipelines requests
//! and never reads, and 2,000 slowloris connections (a header line a second), while lines flow,
//! through a reload and a SIGTERM. `/healthz` answers within a second throughout, delivery goes
//! on, threads and memory stay bounded, and shutdown completes.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Collector, count_lines, wait_for_lines};

/// Slow connections opened against the API.
const SLOW: usize = 2_000;

fn config(dir: &Path, tag: &str) -> String {
    format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
sources:
  - name: app
    paths: ["{dir}/logs/*.log"]
    tags: {{run: "{tag}"}}
sinks:
  - name: out
    type: file
    path: {dir}/out/out.ndjson
    sync_interval: 50ms
"#,
        dir = dir.display()
    )
}

/// Lets this process hold thousands of sockets.
fn raise_open_files() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let want = 16_384;
    let maximum = limit.maximum.map_or(want, |m| m.max(want));
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        },
    )
    .unwrap();
}

/// `/healthz`, with how long it took; `None` when it did not answer within two seconds.
fn health(port: u16) -> Option<(String, Duration)> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some((response, started.elapsed()))
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn hostile_clients_hold_neither_health_nor_delivery_nor_shutdown() {
    raise_open_files();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let collector = Collector::start(dir, &config(dir, "one"));
    let port = collector.port;
    let pid = collector.child.id();
    let threads_at_start = threads(pid);

    // Lines flow the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_writing = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written) = (Arc::clone(&stop_writing), Arc::clone(&written));
        let path = dir.join("logs/app.log");
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                let n = written.load(Ordering::Relaxed);
                writeln!(file, "line {n}").unwrap();
                written.store(n + 1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    // A client that pipelines /metrics requests and never reads.
    let greedy = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            let requests = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&requests).is_err() {
                    // The server stopped reading (or closed us): hold on, then try again.
                    std::thread::sleep(Duration::from_millis(100));
                    if let Ok(again) = TcpStream::connect(("127.0.0.1", port)) {
                        let _ = again.set_write_timeout(Some(Duration::from_millis(100)));
                        stream = again;
                    }
                }
            }
        })
    };

    // 2,000 slowloris connections: a request line, then a header line a second, forever.
    let slow = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut conns: Vec<TcpStream> = Vec::new();
            for _ in 0..SLOW {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_nonblocking(true);
                    let _ = s.write(b"GET /healthz HTTP/1.1\r\n");
                    conns.push(s);
                }
            }
            let opened = conns.len();
            while !stop.load(Ordering::Relaxed) {
                for s in &mut conns {
                    let _ = s.write(b"X-Slow: yes\r\n");
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            opened
        })
    };

    // Health answers within a second, and lines keep arriving, for ten seconds.
    let out = dir.join("out/out.ndjson");
    let mut max_threads = 0;
    let mut max_rss = 0;
    let check = |what: &str, max_threads: &mut usize, max_rss: &mut u64| {
        let (response, took) =
            health(port).unwrap_or_else(|| panic!("/healthz did not answer {what}"));
        assert!(
            response.starts_with("HTTP/1.0 200"),
            "/healthz {what}: {response}"
        );
        assert!(
            took < Duration::from_secs(1),
            "/healthz took {took:?} {what}"
        );
        *max_threads = (*max_threads).max(threads(pid));
        *max_rss = (*max_rss).max(collector.rss());
    };
    let until = Instant::now() + Duration::from_secs(10);
    let mut delivered_before = 0;
    while Instant::now() < until {
        check("under attack", &mut max_threads, &mut max_rss);
        std::thread::sleep(Duration::from_millis(200));
    }
    let delivered = count_lines(&out);
    assert!(
        delivered > delivered_before + 1_000,
        "delivery went on under attack ({delivered} lines)"
    );
    delivered_before = delivered;

    // A reload while the clients hold on: it applies, and health and delivery go on.
    std::fs::write(
        dir.join("ringtail.yaml"),
        config(dir, "two").replace("{port}", &port.to_string()),
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(15);
    let applied = loop {
        check("during a reload", &mut max_threads, &mut max_rss);
        let applied = collector
            .metric("ringtail_config_reloads_total{result=\"applied\"}")
            .max(0.0);
        if applied >= 1.0 || Instant::now() > until {
            break applied;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(applied, 1.0, "the reload applied:\n{}", collector.stderr());
    let later = written.load(Ordering::Relaxed) as usize;
    assert!(
        wait_for_lines(&out, later, Duration::from_secs(20)) >= later,
        "delivery went on after the reload"
    );
    assert!(count_lines(&out) > delivered_before);

    // io_uring may add a few kernel worker threads; a thread per connection would add
    // hundreds.
    assert!(
        max_threads <= threads_at_start + 16,
        "threads stay bounded: {max_threads} (started with {threads_at_start})"
    );
    assert!(
        max_rss < 256 << 20,
        "memory stays bounded: {} MiB",
        max_rss >> 20
    );

    // SIGTERM with the clients still connected: shutdown completes, nothing is lost.
    stop_writing.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed) as usize;
    assert_eq!(
        wait_for_lines(&out, total, Duration::from_secs(20)),
        total,
        "every line delivered before stopping"
    );
    let stopping = Instant::now();
    let (status, log) = collector.stop();
    assert!(status.success(), "clean exit:\n{log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    greedy.join().unwrap();
    let opened = slow.join().unwrap();
    assert!(opened >= SLOW / 2, "the slow clients connected ({opened})");
    assert_eq!(count_lines(&out), total, "every line delivered once");
}

/// What the collector costs the node, on `/metrics` under the names every client library
/// uses, and the build it runs.
#[test]
fn metrics_show_the_process_cost_and_the_build() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let collector = Collector::start(dir.path(), &config(dir.path(), "cost"));
    let body = collector.get("/metrics").unwrap();
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing:\n{body}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("process_cpu_seconds_total") > 0.0);
    assert!(value("process_resident_memory_bytes") > f64::from(1 << 20));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", collector.child.id()))
        .unwrap()
        .count() as f64;
    let open = value("process_open_fds");
    assert!(open > 3.0 && (open - fds).abs() < 10.0, "{open} vs {fds}");
    assert!(value("process_max_fds") >= open);
    assert!(value("process_start_time_seconds") > 1.7e9);
    assert!(
        body.contains(&format!(
            "ringtail_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{body}"
    );
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");
}
