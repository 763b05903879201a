//! A hostile node, several things at once while a steady writer's lines flow: a client that
//! pipelines `/metrics` requests and never reads plus slow connections, a pod directory
//! swapped for a symlink to a host directory, a file replaced by a rename while its writer
//! goes on, a file name that is not UTF-8, the open-file limit lowered to 256 under 300 new
//! files, and a sparse file. Every line written is delivered once, nothing of the host
//! directory and no NUL byte is, `/healthz` keeps answering, and shutdown completes. Real
//! binary, real files.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

mod common;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Collector, append_lines, wait_for_lines};
use rustix::process::{Pid, Resource, Rlimit, prlimit};

const STEADY: u64 = 2_000;
const MANY: u64 = 300;

fn config(dir: &Path) -> String {
    common::text_sink_config(dir, "", "pods", "logs/*/*.log")
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_hostile_node_loses_nothing_and_leaks_nothing() {
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dir = tmp.path();
    let logs = dir.join("logs");
    for pod in ["app", "evil", "many"] {
        std::fs::create_dir_all(logs.join(pod)).unwrap();
    }
    let host = dir.join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("0.log"), "SECRET 0\n").unwrap();
    append(&logs.join("evil/0.log"), "evil 0\n");
    let out = dir.join("out/out.ndjson");
    let collector = Collector::start(dir, &config(dir));
    let mut want: Vec<String> = vec!["evil 0".to_string()];

    // The steady writer.
    let steady = logs.join("app/steady.log");
    let writer = {
        let steady = steady.clone();
        std::thread::spawn(move || {
            for n in 0..STEADY {
                append(&steady, &format!("steady {n:06}\n"));
                if n % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    want.extend((0..STEADY).map(|n| format!("steady {n:06}")));

    // The API: a pipelining client that never reads, and 200 slow connections.
    let mut hogs = Vec::new();
    let mut pipelined = TcpStream::connect(("127.0.0.1", collector.port)).unwrap();
    pipelined.set_nonblocking(true).unwrap();
    for _ in 0..2_000 {
        if pipelined
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .is_err()
        {
            break;
        }
    }
    hogs.push(pipelined);
    for _ in 0..200 {
        if let Ok(mut slow) = TcpStream::connect(("127.0.0.1", collector.port)) {
            let _ = slow.write_all(b"GET /healthz HTTP/1.1\r\n");
            hogs.push(slow);
        }
    }

    // A pod directory swapped for a symlink to the host's.
    std::fs::rename(logs.join("evil"), dir.join("evil.away")).unwrap();
    symlink(&host, logs.join("evil")).unwrap();
    append(&host.join("1.log"), "SECRET 1\n");

    // A file replaced by a rename while its writer goes on.
    let replaced = logs.join("app/replaced.log");
    let mut old = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&replaced)
        .unwrap();
    old.write_all(b"replaced old 0\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(logs.join("app/new.tmp"), "replaced new 0\n").unwrap();
    std::fs::rename(logs.join("app/new.tmp"), &replaced).unwrap();
    for n in 1..50 {
        writeln!(old, "replaced old {n}").unwrap();
    }
    want.extend((0..50).map(|n| format!("replaced old {n}")));
    want.push("replaced new 0".to_string());

    // A name that is not UTF-8.
    let odd = logs.join("app").join(OsStr::from_bytes(b"odd-\xff.log"));
    append(&odd, "odd 0\nodd 1\n");
    want.extend(["odd 0".to_string(), "odd 1".to_string()]);

    // A sparse file: lines, a 1 GiB hole, lines.
    let mut sparse = std::fs::File::create(logs.join("app/sparse.log")).unwrap();
    sparse.write_all(b"sparse 0\n").unwrap();
    sparse.seek(SeekFrom::Current(1 << 30)).unwrap();
    sparse.write_all(b"sparse 1\n").unwrap();
    want.extend(["sparse 0".to_string(), "sparse 1".to_string()]);

    // The open-file limit lowered under 300 new files.
    let pid = Pid::from_raw(collector.child.id() as i32).unwrap();
    let limit = Rlimit {
        current: Some(256),
        maximum: Some(256),
    };
    prlimit(Some(pid), Resource::Nofile, limit).unwrap();
    for f in 0..MANY {
        append_lines(
            &logs.join(format!("many/{f:03}.log")),
            &format!("m{f}"),
            0..2,
            0,
        );
        want.extend((0..2).map(|n| format!("m{f} {n:08} ")));
    }

    // Health answers throughout.
    let mut slowest = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(20);
    while wait_for_lines(&out, want.len(), Duration::from_millis(200)) < want.len() {
        let asked = Instant::now();
        assert!(collector.get("/healthz").is_some(), "/healthz answers");
        slowest = slowest.max(asked.elapsed());
        if Instant::now() > deadline {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            let got: HashSet<&str> = text.lines().collect();
            let missing: Vec<&String> = want.iter().filter(|w| !got.contains(w.as_str())).collect();
            panic!(
                "{} of {} lines, missing {missing:?}: {}",
                got.len(),
                want.len(),
                collector.stderr()
            );
        }
    }
    writer.join().unwrap();
    assert_eq!(
        wait_for_lines(&out, want.len(), Duration::from_secs(30)),
        want.len()
    );
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
    drop(hogs);
    std::thread::sleep(Duration::from_millis(300));
    let (status, log) = collector.stop();
    assert!(status.success(), "{log}");

    let bytes = std::fs::read(&out).unwrap();
    assert!(!bytes.contains(&0), "no NUL byte delivered");
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("SECRET"), "no host file delivered");
    let got: Vec<&str> = text.lines().collect();
    let unique: HashSet<&str> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no line twice");
    let missing: Vec<&String> = want
        .iter()
        .filter(|w| !unique.contains(w.as_str()))
        .collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    assert_eq!(got.len(), want.len(), "nothing else");
}
