//! Running the real `ringtail` binary in tests: start it on a config, wait until it serves
//! `/healthz`, read its metrics, stop it with SIGTERM.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a helper module of integration tests")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_ringtail")
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running collector.
pub struct Collector {
    pub child: Child,
    pub port: u16,
    pub stderr_path: PathBuf,
}

impl Collector {
    /// Writes `config` (with `{port}` replaced) into `dir/ringtail.yaml` and starts the
    /// collector; returns once `/healthz` answers.
    pub fn start(dir: &Path, config: &str) -> Collector {
        Self::start_with_stdout(dir, config, Stdio::null())
    }

    /// Like [`start`](Self::start), with the collector's stdout connected to `stdout`.
    pub fn start_with_stdout(dir: &Path, config: &str, stdout: Stdio) -> Collector {
        let port = free_port();
        let path = dir.join("ringtail.yaml");
        std::fs::write(&path, config.replace("{port}", &port.to_string())).unwrap();
        let stderr_path = dir.join("ringtail.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = Command::new(binary())
            .args(["run", "--config"])
            .arg(&path)
            .env("RINGTAIL_LOG", "info")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut collector = Collector {
            child,
            port,
            stderr_path,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if collector.get("/healthz").is_some() {
                return collector;
            }
            if let Ok(Some(status)) = collector.child.try_wait() {
                panic!(
                    "ringtail exited during start-up with {status}:\n{}",
                    collector.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ringtail did not serve /healthz:\n{}",
                collector.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A GET request to the API; `None` when it cannot connect.
    pub fn get(&self, path: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let body = response.split_once("\r\n\r\n")?.1;
        Some(body.to_string())
    }

    /// The value of a metric line (`name{labels}` exactly as rendered), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.get("/metrics").unwrap_or_default();
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.strip_prefix(' '))
            })
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// Peak resident memory of the collector, in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    /// Current resident memory of the collector, in bytes.
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kb * 1024
    }

    /// What the collector logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most 60 s) for the exit.
    pub fn stop(mut self) -> (ExitStatus, String) {
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(self.child.id() as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.stderr());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "ringtail did not stop within 60 s of SIGTERM:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Number of complete lines in `path` (0 when it does not exist).
pub fn count_lines(path: &Path) -> usize {
    match std::fs::File::open(path) {
        Ok(f) => BufReader::new(f).split(b'\n').count(),
        Err(_) => 0,
    }
}

/// Waits until `path` holds at least `n` lines; returns the count reached.
pub fn wait_for_lines(path: &Path, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let count = count_lines(path);
        if count >= n || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every output record as JSON.
pub fn records(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
