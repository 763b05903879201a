//! What is measured about a running collector: CPU time and peak memory from `/proc`, and
//! its output as it grows — lines delivered, and when latency-marked records arrive.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::workload::LATENCY_MARK;

/// CPU time a process has used: in its own code, and in the kernel on its behalf.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// User seconds.
    pub user: f64,
    /// System seconds: the kernel's work for the process (its reads, writes, page faults).
    pub system: f64,
}

impl CpuTime {
    /// User + system seconds.
    pub fn total(self) -> f64 {
        self.user + self.system
    }

    /// The time used since `before`.
    pub fn since(self, before: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }
}

/// CPU time used so far by `pid`, including its waited-for children.
pub fn cpu_time(pid: u32) -> Option<CpuTime> {
    let [user, system, children_user, children_system] = stat_times(&format!("/proc/{pid}/stat"))?;
    Some(CpuTime {
        user: user + children_user,
        system: system + children_system,
    })
}

/// The `utime`, `stime`, `cutime` and `cstime` fields (14–17) of a `stat` file, in seconds.
fn stat_times(path: &str) -> Option<[f64; 4]> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let per_second = rustix::param::clock_ticks_per_second() as f64;
    // `rest` starts at field 3.
    let seconds = |field: usize| -> Option<f64> {
        Some(fields.get(field - 3)?.parse::<u64>().ok()? as f64 / per_second)
    };
    Some([seconds(14)?, seconds(15)?, seconds(16)?, seconds(17)?])
}

/// CPU seconds (user + system, including waited-for children) used so far by `pid`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_time(pid).map(CpuTime::total)
}

/// Peak resident memory of `pid` in bytes (`VmHWM`).
pub fn peak_rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Resident memory of `pid` now, in bytes (`VmRSS`).
pub fn rss(pid: u32) -> Option<u64> {
    status_bytes(pid, "VmRSS:")
}

/// A `kB` field of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Follows a collector's output (a file, or every file in a directory) while it is written.
#[derive(Debug)]
pub struct Tailer {
    lines: Arc<AtomicU64>,
    seen_nonce: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<HashMap<(u32, u64), Instant>>>,
}

/// How often the output is looked at: the resolution of latency and completion times.
const POLL: Duration = Duration::from_millis(2);

impl Tailer {
    /// Starts following `output`. `nonce` is a string whose appearance means the collector is
    /// delivering (the readiness probe).
    pub fn start(output: PathBuf, nonce: String) -> Tailer {
        let lines = Arc::new(AtomicU64::new(0));
        let seen_nonce = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, st) = (
            Arc::clone(&lines),
            Arc::clone(&seen_nonce),
            Arc::clone(&stop),
        );
        let thread = std::thread::spawn(move || follow(&output, nonce.as_bytes(), &l, &s, &st));
        Tailer {
            lines,
            seen_nonce,
            stop,
            thread: Some(thread),
        }
    }

    /// Newlines seen so far.
    pub fn lines(&self) -> u64 {
        self.lines.load(Ordering::Relaxed)
    }

    /// Whether the readiness nonce has appeared.
    pub fn ready(&self) -> bool {
        self.seen_nonce.load(Ordering::Relaxed)
    }

    /// Stops following; returns when each latency-marked record (stream, seq) was first seen.
    pub fn finish(mut self) -> HashMap<(u32, u64), Instant> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Tailer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Followed {
    file: File,
    offset: u64,
    /// Unfinished last line, kept so that a marker cut by a read is still found.
    tail: Vec<u8>,
}

fn follow(
    output: &Path,
    nonce: &[u8],
    lines: &AtomicU64,
    seen_nonce: &AtomicBool,
    stop: &AtomicBool,
) -> HashMap<(u32, u64), Instant> {
    let mut files: HashMap<PathBuf, Followed> = HashMap::new();
    let mut arrivals = HashMap::new();
    // Small enough to stay in the L2 cache: reading the output costs the harness CPU that the
    // collector on the same cores would otherwise have (a 4 MiB buffer took twice as long).
    let mut buf = vec![0u8; 256 << 10];
    let marker = memchr::memmem::Finder::new(LATENCY_MARK);
    let nonce_finder = memchr::memmem::Finder::new(nonce);
    // Looks at complete lines: the readiness nonce and the latency markers.
    let mut scan = |lines: &[u8], now: Instant| {
        if !seen_nonce.load(Ordering::Relaxed) && nonce_finder.find(lines).is_some() {
            seen_nonce.store(true, Ordering::Relaxed);
        }
        for at in marker.find_iter(lines) {
            if let Some(key) = seq_before(&lines[..at]) {
                arrivals.entry(key).or_insert(now);
            }
        }
    };
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let paths: Vec<PathBuf> = if output.is_dir() {
            std::fs::read_dir(output)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default()
        } else {
            vec![output.to_path_buf()]
        };
        let mut progressed = false;
        for path in paths {
            if !files.contains_key(&path) {
                match File::open(&path) {
                    Ok(file) => {
                        files.insert(
                            path.clone(),
                            Followed {
                                file,
                                offset: 0,
                                tail: Vec::new(),
                            },
                        );
                    }
                    Err(_) => continue,
                }
            }
            let Some(f) = files.get_mut(&path) else {
                continue;
            };
            loop {
                let n = match f.file.read_at(&mut buf, f.offset) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = Instant::now();
                progressed = true;
                f.offset += n as u64;
                let chunk = &buf[..n];
                lines.fetch_add(
                    memchr::memchr_iter(b'\n', chunk).count() as u64,
                    Ordering::Relaxed,
                );
                // Complete lines are scanned where they lie; only a line cut by the read is
                // copied, joined with its start from the previous read.
                match (memchr::memchr(b'\n', chunk), memchr::memrchr(b'\n', chunk)) {
                    (Some(first), Some(last)) => {
                        if f.tail.is_empty() {
                            scan(&chunk[..=last], now);
                        } else {
                            f.tail.extend_from_slice(&chunk[..=first]);
                            scan(&f.tail, now);
                            f.tail.clear();
                            scan(&chunk[first + 1..=last], now);
                        }
                        f.tail.extend_from_slice(&chunk[last + 1..]);
                    }
                    _ => f.tail.extend_from_slice(chunk),
                }
                if n < buf.len() {
                    break;
                }
            }
        }
        if stopping {
            return arrivals;
        }
        if !progressed {
            std::thread::sleep(POLL);
        }
    }
}

/// The `seq=s<stream>:<n>` token just before a latency marker.
fn seq_before(before: &[u8]) -> Option<(u32, u64)> {
    let window = &before[before.len().saturating_sub(48)..];
    let at = memchr::memmem::rfind(window, b"seq=s")?;
    let token = &window[at + 5..];
    let colon = memchr::memchr(b':', token)?;
    let stream = std::str::from_utf8(&token[..colon]).ok()?.parse().ok()?;
    let digits = token[colon + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let seq = std::str::from_utf8(&token[colon + 1..colon + 1 + digits])
        .ok()?
        .parse()
        .ok()?;
    Some((stream, seq))
}

/// The `p`-th percentile (0–100) of sorted values.
pub fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    Some(sorted[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_this_process_cpu_and_memory() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(peak_rss(pid).unwrap() > 1 << 20);
        assert!(rss(pid).unwrap() > 1 << 20);
    }

    /// Work in this process's own code shows as user time, the kernel's work for it (here:
    /// filling a buffer from `/dev/zero`) as system time.
    #[test]
    fn tells_user_time_from_the_kernels() {
        // This thread's own times: tests running beside it do not count.
        let now = || {
            let [user, system, ..] = stat_times("/proc/thread-self/stat").unwrap();
            CpuTime { user, system }
        };
        let spent = |work: &mut dyn FnMut()| {
            let before = now();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                work();
                let used = now().since(before);
                if used.total() >= 0.2 || Instant::now() > deadline {
                    return used;
                }
            }
        };
        let mut x = 1u64;
        let user = spent(&mut || {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
        assert!(user.user > user.system, "spinning: {user:?}");
        let mut zero = File::open("/dev/zero").unwrap();
        let mut buf = vec![0u8; 4 << 20];
        let system = spent(&mut || {
            for _ in 0..8 {
                std::io::Read::read_exact(&mut zero, &mut buf).unwrap();
            }
        });
        assert!(system.system > system.user, "reading /dev/zero: {system:?}");
    }

    /// A tailer following a new output file, the file to write, and its directory.
    fn followed(nonce: &str) -> (Tailer, File, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.ndjson");
        let f = File::create(&out).unwrap();
        (Tailer::start(out, nonce.to_string()), f, dir)
    }

    /// Waits until `tailer` counted `n` lines, and returns the latency markers it found.
    fn markers_after(tailer: Tailer, n: u64) -> Vec<(u32, u64)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tailer.lines() < n {
            assert!(Instant::now() < deadline, "{} lines", tailer.lines());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(tailer.lines(), n);
        let mut keys: Vec<_> = tailer.finish().into_keys().collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_tailer_counts_lines_finds_markers_and_the_nonce() {
        let (tailer, mut f, _dir) = followed("ready-42");
        writeln!(f, "{{\"message\":\"ready-42\"}}").unwrap();
        f.write_all(b"{\"message\":\"seq=s3:17 lat! x\"}\nseq=s0:5 ")
            .unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        f.write_all(b"lat! split across writes\n").unwrap();
        f.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !tailer.ready() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(markers_after(tailer, 3), vec![(0, 5), (3, 17)]);
    }

    /// Written in pieces that end anywhere in a read, a long output is counted line by line,
    /// and a marker in a line cut between two reads is found.
    #[test]
    fn the_tailer_follows_an_output_written_in_odd_pieces() {
        let (tailer, mut f, _dir) = followed("ready-7");
        let mut all = Vec::new();
        for n in 0..50_000 {
            if n % 10_000 == 9_999 {
                writeln!(all, "seq=s1:{n} lat! marked").unwrap();
            } else {
                writeln!(all, "line {n} of a long output").unwrap();
            }
        }
        for piece in all.chunks(7_777) {
            f.write_all(piece).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        assert_eq!(
            markers_after(tailer, 50_000),
            (1..=5).map(|k| (1, k * 10_000 - 1)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50), Some(Duration::from_millis(51)));
        assert_eq!(percentile(&v, 99), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&[], 50), None);
    }
}
