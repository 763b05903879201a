//! A test server for the Elasticsearch `_bulk` API. No Elasticsearch or OpenSearch server
//! installs from the registries this project reaches (Debian, PyPI, npm, crates), so this
//! one stands in for it, answering as the bulk API documentation describes
//! (<https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-bulk>):
//!
//! - `POST /_bulk` with `Content-Type: application/x-ndjson` (406 otherwise), optionally
//!   gzip (`Content-Encoding: gzip`), ending with a newline (400 otherwise); a body larger
//!   than `http.max_content_length` is answered 413; `?pipeline=` is recorded.
//! - HTTP 200 with `"errors": true|false` and one item per action, in order, under the
//!   action's name (`index`/`create`), each with `_index`, `_id`, `result`, `status` (201),
//!   or `status` and `error: {type, reason}`: 429 `es_rejected_execution_exception`, 400
//!   `mapper_parsing_exception`.
//! - Whole-request failures: 401 without the expected `Authorization`, 503
//!   `cluster_block_exception` while the plan says so.
//!
//! The plan (JSON): `{"auth": "Basic …", "max_content_length": bytes, "unavailable_first":
//! n requests, "reject_marker": "RETRY" (429 the first time a document with it arrives),
//! "mapping_marker": "BADMAP" (400 always)}`. What it accepted is appended to `accepted`
//! (`{"index", "doc", "port"}` per line); every document it read, accepted or not, to
//! `arrivals`; every request's outcome to `requests`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;
use super::otlp::python;

const SERVER: &str = r#"
import http.server, socketserver, sys, json, gzip, threading, itertools
ports, plan_file, out_dir = [int(p) for p in sys.argv[1].split(',')], sys.argv[2], sys.argv[3]
plan = json.load(open(plan_file))
lock = threading.Lock()
state = {"requests": 0, "seen_reject": set(), "seq": itertools.count()}
def append(name, obj):
    with lock:
        with open(out_dir + "/" + name, "a") as f:
            f.write(json.dumps(obj) + "\n")
def error_body(status, kind, reason):
    return json.dumps({"error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason}, "status": status}).encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, status, body, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_POST(self):
        port = self.server.server_address[1]
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            state["requests"] += 1
            n = state["requests"]
        def record(outcome):
            append("requests", {"n": n, "port": port, "path": self.path, "outcome": outcome, "bytes": len(raw)})
        path, _, query = self.path.partition("?")
        if not path.endswith("/_bulk"):
            record(404)
            return self.reply(404, error_body(404, "illegal_argument_exception", "no handler for " + path))
        if "auth" in plan and self.headers.get("Authorization") != plan["auth"]:
            record(401)
            return self.reply(401, error_body(401, "security_exception", "missing authentication credentials"), headers=[("WWW-Authenticate", 'Basic realm="security"')])
        if n <= plan.get("unavailable_first", 0):
            record(503)
            return self.reply(503, error_body(503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"))
        if len(raw) > plan.get("max_content_length", 100 << 20):
            record(413)
            return self.reply(413, b"", "text/plain")
        if not (self.headers.get("Content-Type") or "").startswith("application/x-ndjson"):
            record(406)
            return self.reply(406, error_body(406, "media_type_header_exception", "Content-Type header is not supported"))
        body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
        if not body.endswith(b"\n"):
            record(400)
            return self.reply(400, error_body(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"))
        lines = body.split(b"\n")[:-1]
        items, errors = [], False
        for action_line, doc_line in zip(lines[0::2], lines[1::2]):
            action = json.loads(action_line)
            (op, meta), = action.items()
            index = meta["_index"]
            doc = json.loads(doc_line)
            message = doc.get("message", "")
            append("arrivals", {"index": index, "message": message})
            item = {"_index": index}
            if plan.get("mapping_marker") and plan["mapping_marker"] in message:
                item.update(status=400, error={"type": "mapper_parsing_exception", "reason": "failed to parse field [message] of type [long] in document"})
            elif plan.get("reject_marker") and plan["reject_marker"] in message and message not in state["seen_reject"]:
                with lock: state["seen_reject"].add(message)
                item.update(status=429, error={"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation [shard_detail=[%s][0]]" % index})
            else:
                seq = next(state["seq"])
                item.update(_id="id-%d" % seq, _version=1, result="created", _shards={"total": 2, "successful": 1, "failed": 0}, _seq_no=seq, _primary_term=1, status=201)
                append("accepted", {"index": index, "doc": doc, "port": port, "op": op, "query": query})
            errors = errors or item["status"] >= 300
            items.append({op: item})
        record(200)
        self.reply(200, json.dumps({"took": 3, "errors": errors, "items": items}).encode())
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
servers = [S(("127.0.0.1", p), H) for p in ports]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"#;

/// The test server on `ports` (killed when dropped).
pub struct BulkServer {
    child: Child,
    /// The ports it listens on.
    pub ports: Vec<u16>,
    dir: PathBuf,
}

impl BulkServer {
    /// Starts the server with `plan` on `count` ports; its files are in `dir`.
    pub fn start(dir: &Path, count: usize, plan: &serde_json::Value) -> BulkServer {
        std::fs::create_dir_all(dir).unwrap();
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let plan_file = dir.join("plan.json");
        std::fs::write(&plan_file, plan.to_string()).unwrap();
        let list = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut child = Command::new(python())
            .args(["-c", SERVER, &list])
            .arg(&plan_file)
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("server.err")).unwrap())
            .spawn()
            .expect("start the bulk test server");
        let deadline = Instant::now() + Duration::from_secs(20);
        for port in &ports {
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(child.try_wait().unwrap().is_none(), "the server exited");
                assert!(Instant::now() < deadline, "the server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        BulkServer {
            child,
            ports,
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self, name: &str) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join(name))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// What it accepted: `{"index", "doc", "port", "op", "query"}`.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        self.read("accepted")
    }

    /// Every document it read: `{"index", "message"}`.
    pub fn arrivals(&self) -> Vec<serde_json::Value> {
        self.read("arrivals")
    }

    /// Every request: `{"n", "port", "path", "outcome", "bytes"}`.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.read("requests")
    }

    /// Waits until `n` documents were accepted (or `timeout`); returns how many were.
    pub fn wait_accepted(&self, n: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let count = std::fs::read_to_string(self.dir.join("accepted"))
                .unwrap_or_default()
                .lines()
                .count();
            if count >= n || Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for BulkServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
