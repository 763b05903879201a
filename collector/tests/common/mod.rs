//! Running the real `ringtail` binary in tests: start it on a config, wait until it serves
//! `/healthz`, read its metrics, stop it with SIGTERM.
#![allow(dead_code, reason = "each test binary uses a different subset")]
#![allow(unreachable_pub, reason = "a helper module of integration tests")]

pub mod cri;
pub mod elasticsearch;
pub mod kafka;
pub mod otlp;
pub mod tls;

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
        Self::start_with_stdout(dir, config, Stdio::null)
    }

    /// Like [`start`](Self::start), with the collector's stdout connected to what `stdout`
    /// makes (`Stdio::piped`, say).
    pub fn start_with_stdout(dir: &Path, config: &str, stdout: fn() -> Stdio) -> Collector {
        Self::start_within(dir, config, stdout, Duration::from_secs(20))
    }

    /// Like [`start_with_stdout`](Self::start_with_stdout), waiting up to `startup` for
    /// `/healthz` (the API answers once the start-up scan is done).
    pub fn start_within(
        dir: &Path,
        config: &str,
        stdout: fn() -> Stdio,
        startup: Duration,
    ) -> Collector {
        Self::start_command(dir, config, stdout, startup, |binary| Command::new(binary))
    }

    /// Like [`start`](Self::start), with the command that runs the binary (given its path)
    /// made by `command` — a wrapper such as `unshare` — to which `run --config <file>` is
    /// added.
    pub fn start_wrapped(dir: &Path, config: &str, command: impl Fn(&str) -> Command) -> Collector {
        Self::start_command(dir, config, Stdio::null, Duration::from_secs(20), command)
    }

    fn start_command(
        dir: &Path,
        config: &str,
        stdout: fn() -> Stdio,
        startup: Duration,
        command: impl Fn(&str) -> Command,
    ) -> Collector {
        // The port free_port found may be taken before the collector binds it (another
        // process's outgoing connection, containerd's streaming server): then another.
        for _ in 0..5 {
            if let Some(collector) = Self::try_start(dir, config, stdout(), startup, &command) {
                return collector;
            }
        }
        panic!("the API port was taken five times in a row");
    }

    /// One start; `None` when the API's port was taken before the collector bound it.
    fn try_start(
        dir: &Path,
        config: &str,
        stdout: Stdio,
        startup: Duration,
        command: &impl Fn(&str) -> Command,
    ) -> Option<Collector> {
        let port = free_port();
        let path = dir.join("ringtail.yaml");
        std::fs::write(&path, config.replace("{port}", &port.to_string())).unwrap();
        let stderr_path = dir.join("ringtail.stderr");
        // Appended to, so the logs of every run of a restarted collector are kept.
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .unwrap();
        let child = command(binary())
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
        let deadline = Instant::now() + startup;
        loop {
            if collector.get("/healthz").is_some() {
                return Some(collector);
            }
            if let Ok(Some(status)) = collector.child.try_wait() {
                let stderr = collector.stderr();
                if stderr.contains(&format!("cannot listen on 127.0.0.1:{port}"))
                    && stderr.contains("Address already in use")
                {
                    return None;
                }
                panic!("ringtail exited during start-up with {status}:\n{stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "ringtail did not serve /healthz:\n{}",
                collector.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `done` holds, failing with the collector's log after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "gave up waiting for {what}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The exit status, if the collector has exited.
    pub fn child_status(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
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

    /// The sum of every series of metric `name` whose labels include `label` (e.g.
    /// `source="logs"`), whatever its other labels.
    pub fn metric_sum(&self, name: &str, label: &str) -> f64 {
        let text = self.get("/metrics").unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix('{')?;
                let (labels, value) = rest.split_once("} ")?;
                labels
                    .split(',')
                    .any(|l| l == label)
                    .then(|| value.trim().parse::<f64>().ok())
                    .flatten()
            })
            .sum()
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

    /// Waits until the collector exits by itself (a pipeline that stopped), within
    /// `timeout`; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "ringtail kept running:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `/readyz` shows a sink degraded with `reason` in its error.
    pub fn wait_degraded(&self, timeout: Duration, reason: &str) {
        self.wait_until(timeout, &format!("a sink degraded by {reason}"), || {
            self.get("/readyz")
                .is_some_and(|h| h.contains("\"degraded\"") && h.contains(reason))
        });
    }

    /// Kills the collector with SIGKILL and reaps it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
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

/// What a file sink's NDJSON output holds: for each stream, the line numbers in output order.
/// Lines written by the tests look like `<stream> <number> <padding>`.
#[derive(Debug, Default)]
pub struct Delivered {
    pub streams: std::collections::HashMap<String, Vec<u64>>,
    /// Output lines that are not whole records (a run killed mid-write leaves at most one).
    pub fragments: usize,
}

impl Delivered {
    /// Reads every `*.ndjson*` file in `dir` (rotated outputs included).
    pub fn read(dir: &Path) -> Delivered {
        let mut delivered = Delivered::default();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return delivered;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                match message(line) {
                    Some((stream, n)) => delivered
                        .streams
                        .entry(stream.to_string())
                        .or_default()
                        .push(n),
                    None => delivered.fragments += 1,
                }
            }
        }
        delivered
    }

    /// Lines of `expected` (stream → count, numbered from 0) that are not in the output.
    pub fn missing(
        &self,
        expected: &std::collections::BTreeMap<String, u64>,
    ) -> Vec<(String, u64)> {
        let mut missing = Vec::new();
        for (stream, &count) in expected {
            let mut seen = vec![false; count as usize];
            for &n in self.streams.get(stream).map_or(&[][..], Vec::as_slice) {
                if let Some(s) = seen.get_mut(n as usize) {
                    *s = true;
                }
            }
            missing.extend(
                seen.iter()
                    .enumerate()
                    .filter(|(_, s)| !**s)
                    .map(|(n, _)| (stream.clone(), n as u64)),
            );
        }
        missing
    }

    /// Records delivered more than once.
    pub fn duplicates(&self) -> usize {
        self.streams
            .values()
            .map(|ns| {
                let mut sorted = ns.clone();
                sorted.sort_unstable();
                let len = sorted.len();
                sorted.dedup();
                len - sorted.len()
            })
            .sum()
    }

    /// Streams whose first deliveries are not in increasing order.
    pub fn out_of_order(&self) -> Vec<String> {
        let mut bad = Vec::new();
        for (stream, ns) in &self.streams {
            let mut seen = std::collections::HashSet::new();
            let firsts: Vec<u64> = ns.iter().copied().filter(|n| seen.insert(*n)).collect();
            if firsts.windows(2).any(|w| w[0] > w[1]) {
                bad.push(stream.clone());
            }
        }
        bad.sort();
        bad
    }
}

/// `(stream, number)` of a record line, from its `"message"` (test messages need no escapes).
fn message(line: &[u8]) -> Option<(&str, u64)> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.starts_with('{') || !text.ends_with('}') {
        return None;
    }
    let start = text.find("\"message\":\"")? + "\"message\":\"".len();
    let rest = &text[start..];
    let message = &rest[..rest.find('"')?];
    let mut words = message.split(' ');
    let stream = words.next()?;
    let n = words.next()?.parse().ok()?;
    Some((stream, n))
}

/// Waits until `dir`'s output holds every line of `expected` (or `timeout` passes) and
/// returns what it holds.
pub fn wait_delivered(
    dir: &Path,
    expected: &std::collections::BTreeMap<String, u64>,
    timeout: Duration,
) -> Delivered {
    let deadline = Instant::now() + timeout;
    loop {
        let delivered = Delivered::read(dir);
        if delivered.missing(expected).is_empty() || Instant::now() > deadline {
            return delivered;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A configuration for `dir`: state in `data/`, the API on `{port}`, one source `source`
/// reading `glob` (under `dir`), records as text to `out/out.ndjson` synced every 50 ms;
/// `extra` (top-level YAML, e.g. a `reader:` section) goes before the sources.
pub fn text_sink_config(dir: &Path, extra: &str, source: &str, glob: &str) -> String {
    file_sink_config(dir, extra, source, glob, "text")
}

/// Like [`text_sink_config`], with records in `encoding` (`json` or `text`).
pub fn file_sink_config(
    dir: &Path,
    extra: &str,
    source: &str,
    glob: &str,
    encoding: &str,
) -> String {
    format!(
        r#"data_dir: {dir}/data
api:
  listen: 127.0.0.1:{{port}}
{extra}sources:
  - name: {source}
    paths: ["{dir}/{glob}"]
sinks:
  - name: out
    type: file
    path: {dir}/out/out.ndjson
    encoding: {encoding}
    sync_interval: 50ms
"#,
        dir = dir.display()
    )
}

/// Appends numbered lines `<stream> <n> <padding>` to `path` in one write.
pub fn append_lines(path: &Path, stream: &str, numbers: std::ops::Range<u64>, pad: usize) {
    let mut text = String::new();
    for n in numbers {
        text.push_str(&format!("{stream} {n:08} {}\n", "x".repeat(pad)));
    }
    append(path, &text);
}

/// Appends `text` to `path` (created if missing) in one write.
pub fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Whether the tests run as root (mounts for disk-full and read-only cases need it; CI is root).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A tmpfs mounted for a test, unmounted (lazily) when dropped.
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `2m`) at `path` (created).
    pub fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path.to_str().unwrap(),
            ],
        );
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    /// Remounts with other options (e.g. `size=64m`, `ro`, `rw`).
    pub fn remount(&self, options: &str) {
        run(
            "mount",
            &[
                "-o",
                &format!("remount,{options}"),
                self.path.to_str().unwrap(),
            ],
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}
