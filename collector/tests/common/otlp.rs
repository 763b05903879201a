//! Real OTLP receivers for tests, installed by `cargo xtask setup` into the tests' Python:
//!
//! - [`Oteltap`]: PyPI `oteltap` 1.0.0 (OTLP/HTTP protobuf, a Rust core), which prints every
//!   log record it accepts as one JSON line (body and attributes; not the resource). It takes
//!   uncompressed bodies only.
//! - [`Rotel`]: PyPI `rotel` 0.0.1a15, an OpenTelemetry agent in Rust (OTLP/HTTP, gzip),
//!   whose detailed debug log shows each `ResourceLogs` with its resource attributes.
//! - [`FaultProxy`]: a small HTTP/1.1 proxy in front of a receiver that answers chosen
//!   statuses for a while (503 with `Retry-After`, 429, 400, a partial success) and checks
//!   request headers, so retries and refusals are tested against the real receiver behind it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// Python with the test tools (as for the Kafka tests).
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("RINGTAIL_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/kafka/bin/python");
    assert!(
        path.is_file(),
        "the OTLP test receivers are missing: run `cargo xtask setup` (or `cargo xtask test`)"
    );
    path
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what} exited before listening"
        );
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One record as oteltap printed it.
#[derive(Debug, Clone)]
pub struct TapRecord {
    /// The body's string value.
    pub body: String,
    /// String and integer attributes, as text.
    pub attributes: BTreeMap<String, String>,
    /// `timeUnixNano`.
    pub time: u64,
    /// `severityText`.
    pub severity: String,
}

/// oteltap on a free port, printing into a file; killed when dropped.
pub struct Oteltap {
    child: Child,
    /// Its port.
    pub port: u16,
    out: PathBuf,
}

impl Oteltap {
    /// Starts oteltap, printing into `out` (appending).
    pub fn start(out: &Path) -> Oteltap {
        Self::start_on(free_port(), out)
    }

    /// Starts oteltap on `port`.
    pub fn start_on(port: u16, out: &Path) -> Oteltap {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .unwrap();
        let mut child = Command::new(python())
            .args(["-m", "oteltap", "--port", &port.to_string()])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("start oteltap");
        wait_listening(port, &mut child, "oteltap");
        Oteltap {
            child,
            port,
            out: out.to_path_buf(),
        }
    }

    /// Sends `signal` to it (SIGSTOP freezes it: connections are accepted by the kernel,
    /// nothing is answered).
    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, signal).unwrap();
    }

    /// Kills it (an outage).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The records printed so far.
    pub fn records(&self) -> Vec<TapRecord> {
        read_tap(&self.out)
    }
}

impl Drop for Oteltap {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The records oteltap printed into `out`.
pub fn read_tap(out: &Path) -> Vec<TapRecord> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let mut attributes = BTreeMap::new();
            for a in v["attributes"].as_array().into_iter().flatten() {
                let value = &a["value"];
                let text = value["stringValue"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| value["intValue"].as_str().map(str::to_string))
                    .or_else(|| value["boolValue"].as_bool().map(|b| b.to_string()))
                    .unwrap_or_default();
                attributes.insert(a["key"].as_str().unwrap_or_default().to_string(), text);
            }
            TapRecord {
                body: v["body"]["stringValue"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                attributes,
                time: v["timeUnixNano"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0),
                severity: v["severityText"].as_str().unwrap_or_default().to_string(),
            }
        })
        .collect()
}

/// Waits until oteltap has printed `n` records (or `timeout`); returns how many it has.
pub fn wait_tap(out: &Path, n: usize, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let count = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .count();
        if count >= n || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One `ResourceLogs` as rotel's debug log showed it.
#[derive(Debug, Clone, Default)]
pub struct RotelResource {
    /// Resource attributes, as text (`Str(x)` → `x`, `Int(3)` → `3`).
    pub attributes: BTreeMap<String, String>,
    /// The bodies of its records, in order.
    pub bodies: Vec<String>,
}

/// rotel on a free port with a blackhole exporter and the detailed debug log of every
/// `ResourceLogs` it receives, into a file; killed when dropped.
pub struct Rotel {
    child: Child,
    /// Its OTLP/HTTP port.
    pub port: u16,
    out: PathBuf,
}

impl Rotel {
    /// Starts rotel, logging into `out`.
    pub fn start(out: &Path) -> Rotel {
        let agent = Command::new(python())
            .args([
                "-c",
                "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
            ])
            .output()
            .unwrap();
        let agent = String::from_utf8(agent.stdout).unwrap().trim().to_string();
        let port = free_port();
        let grpc = free_port();
        let file = std::fs::File::create(out).unwrap();
        let mut child = Command::new(agent)
            .args([
                "start",
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{port}"),
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
                "--exporter",
                "blackhole",
                "--debug-log",
                "logs",
                "--debug-log-verbosity",
                "detailed",
            ])
            .env("NO_COLOR", "1")
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("start rotel");
        wait_listening(port, &mut child, "rotel");
        Rotel {
            child,
            port,
            out: out.to_path_buf(),
        }
    }

    /// Every `ResourceLogs` logged so far.
    pub fn resources(&self) -> Vec<RotelResource> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let mut resources: Vec<RotelResource> = Vec::new();
        let mut in_resource = false;
        for line in text.lines() {
            if line.starts_with("ResourceLog #") {
                resources.push(RotelResource::default());
                in_resource = false;
            } else if line.starts_with("Resource attributes:") {
                in_resource = true;
            } else if line.starts_with("ScopeLogs #") {
                in_resource = false;
            } else if let Some(kv) = line.trim_start().strip_prefix("-> ") {
                if let (true, Some(r), Some((k, v))) =
                    (in_resource, resources.last_mut(), kv.split_once(": "))
                {
                    r.attributes.insert(k.to_string(), unwrap_value(v));
                }
            } else if let (Some(body), Some(r)) =
                (line.strip_prefix("Body: "), resources.last_mut())
            {
                r.bodies.push(unwrap_value(body));
            }
        }
        resources
    }

    /// Waits until `n` record bodies were logged (or `timeout`); returns how many.
    pub fn wait_records(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count: usize = self.resources().iter().map(|r| r.bodies.len()).sum();
            if count >= n || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Str(abc)` → `abc`, `Int(3)` → `3`.
fn unwrap_value(v: &str) -> String {
    match v.split_once('(') {
        Some((_, rest)) => rest.strip_suffix(')').unwrap_or(rest).to_string(),
        None => v.to_string(),
    }
}

const PROXY: &str = r#"
import http.server, socketserver, sys, time, json, urllib.request, threading
port, upstream, plan_file, log_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
plan = json.load(open(plan_file))
lock = threading.Lock()
state = {"n": 0, "start": None}
def log(line):
    with lock:
        with open(log_file, "a") as f:
            f.write(line + "\n")
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with lock:
            state["n"] += 1
            n = state["n"]
            if state["start"] is None: state["start"] = time.time()
            elapsed = time.time() - state["start"]
        for name, value in plan.get("headers", {}).items():
            if self.headers.get(name) != value:
                log("%d 401 header %s" % (n, name))
                return self.reply(401, b"bad credentials")
        for rule in plan.get("rules", []):
            if rule.get("from", 0) <= elapsed < rule.get("until", 1e9) and rule.get("first", 0) < n <= rule.get("last", 1e9):
                log("%d %d" % (n, rule["status"]))
                if rule["status"] == 200:
                    # forward, then answer with the rule's body (a partial success)
                    break
                hdrs = [("Retry-After", str(rule["retry_after"]))] if "retry_after" in rule else []
                return self.reply(rule["status"], rule.get("text", "").encode(), hdrs)
        else:
            rule = None
        req = urllib.request.Request(upstream + self.path, data=body, method="POST")
        for k in ("Content-Type", "Content-Encoding"):
            if self.headers.get(k): req.add_header(k, self.headers[k])
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, answer = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, answer = e.code, e.read()
        except Exception as e:
            log("%d upstream-error %s" % (n, e))
            return self.reply(502, b"upstream down")
        if rule is not None and "partial" in rule:
            rejected, message = rule["partial"]
            inner = b"\x08" + bytes([rejected]) + b"\x12" + bytes([len(message)]) + message.encode()
            answer = b"\x0a" + bytes([len(inner)]) + inner
        log("%d forwarded %d" % (n, status))
        self.reply(status, answer, [("Content-Type", "application/x-protobuf")])
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever()
"#;

/// An HTTP proxy in front of `upstream` following a plan: `{"headers": {name: value}, "rules":
/// [{"from": s, "until": s, "first": n, "last": n, "status": 503, "retry_after": 1,
/// "text": "…"}]}` — times from the first request, `first < n <= last` counts requests; a
/// rule with status 200 and `"partial": [rejected, "message"]` forwards and answers a
/// partial success. A request without the plan's headers gets 401.
pub struct FaultProxy {
    child: Child,
    /// Its port.
    pub port: u16,
    log: PathBuf,
}

impl FaultProxy {
    /// Starts the proxy with `plan` (JSON), in front of `upstream_port`; its log is in `dir`.
    pub fn start(dir: &Path, upstream_port: u16, plan: &serde_json::Value) -> FaultProxy {
        let port = free_port();
        let plan_file = dir.join("proxy-plan.json");
        std::fs::write(&plan_file, plan.to_string()).unwrap();
        let log = dir.join("proxy.log");
        let mut child = Command::new(python())
            .args(["-c", PROXY, &port.to_string()])
            .arg(format!("http://127.0.0.1:{upstream_port}"))
            .arg(&plan_file)
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy");
        wait_listening(port, &mut child, "the fault proxy");
        FaultProxy { child, port, log }
    }

    /// What it answered, one line per request: `<n> <status>` or `<n> forwarded <status>`.
    pub fn log(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
