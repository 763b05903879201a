//! Running a case against collectors and measuring each run.
//!
//! One measurement:
//! 1. fresh directories; the collector is started on `<logs>/*.log`;
//! 2. readiness: a one-line file with a unique nonce is written, and the run waits until the
//!    nonce appears in the output (or, for ringtail's blackhole, until a record is counted);
//! 3. the case's pre-generated workload is written; the clock starts at its first byte;
//! 4. the clock stops when the output holds every record (file sinks: newline count; the
//!    blackhole: ringtail's `sink_records` metric), or at the case's timeout, or when delivery
//!    has not moved for [`STALL`] after the writer finished (the run is then incomplete);
//! 5. CPU seconds (user + system) between first byte and last record, peak RSS, and write →
//!    output latency of the marked records (file sinks only) are taken;
//! 6. the collector gets SIGTERM; its output is checked sequence number by sequence number.
//!
//! Every (collector, sink) pair gets a warm-up run that is not reported, then `runs` runs;
//! reports give the median and the spread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::case::{Case, SinkKind};
use crate::collectors::{Collector, Launched, RunDirs, ringtail_metric};
use crate::measure::{Tailer, cpu_seconds, cpu_time, peak_rss, percentile, rss};
use crate::verify::{SeqCheck, SeqReport};
use crate::workload::{self, Format, Plan};

/// How a case is run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Measured runs per (collector, sink), after one warm-up run.
    pub runs: usize,
    /// Skip the warm-up run.
    pub no_warmup: bool,
    /// Where run directories are made.
    pub work_dir: PathBuf,
    /// Keep run directories (logs and outputs) after each run.
    pub keep: bool,
    /// Print a progress line while a case runs.
    pub progress: bool,
}

/// Where run directories go when none is given: a tmpfs (`/dev/shm`) with room for `need`
/// bytes, otherwise `fallback`; with the kind of filesystem, for the report.
///
/// On tmpfs the machine's disk does not set the pace: a collector that syncs its output (as
/// ringtail's file sink does before it acknowledges) would otherwise be measured against
/// the disk, and the peers, which do not sync, against the page cache.
pub fn default_work_dir(fallback: &Path, need: u64) -> (PathBuf, String) {
    let shm = Path::new("/dev/shm");
    match rustix::fs::statfs(shm) {
        Ok(fs)
            if fs.f_type == libc::TMPFS_MAGIC
                && fs.f_bavail.saturating_mul(fs.f_bsize as u64) >= need =>
        {
            (shm.join("ringtail-bench-runs"), "tmpfs".to_string())
        }
        _ => (fallback.to_path_buf(), filesystem_kind(fallback)),
    }
}

/// The kind of filesystem holding `path` (or its nearest existing parent), for the report.
///
/// A tmpfs mounted with `huge=` other than `never` is named with it: it caches file data in
/// large folios instead of 4 KiB pages, which on this kind of VM cuts what writing a gigabyte
/// costs every writer — the collector's sink, the workload, the output's follower — from
/// 0.50 s of CPU to 0.09 (`dd`): figures measured on the two are not comparable.
pub fn filesystem_kind(path: &Path) -> String {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(path);
    match rustix::fs::statfs(existing) {
        Ok(fs) if fs.f_type == libc::TMPFS_MAGIC => {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let canonical = existing
                .canonicalize()
                .unwrap_or_else(|_| existing.to_path_buf());
            match tmpfs_huge(&mountinfo, &canonical) {
                Some(huge) => format!("tmpfs (huge={huge}: large folios)"),
                None => "tmpfs".to_string(),
            }
        }
        Ok(fs) => format!("disk (filesystem type {:#x})", fs.f_type),
        Err(e) => format!("unknown filesystem ({e})"),
    }
}

/// The `huge=` option of the mount holding `path` (the longest mount point above it in
/// `mountinfo`, the text of `/proc/self/mountinfo`), unless it is `never` or absent.
fn tmpfs_huge(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, &str)> = None;
    for line in mountinfo.lines() {
        // "id parent major:minor root mount-point options [optional...] - type source super-options"
        let mut fields = line.split(' ');
        let Some(point) = fields.nth(4) else { continue };
        let Some((_, after)) = line.split_once(" - ") else {
            continue;
        };
        let point = unescape_mount_path(point);
        if !path.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        if best.is_none_or(|(d, _)| depth >= d) {
            best = Some((depth, after));
        }
    }
    let (_, after) = best?;
    let super_options = after.split(' ').nth(2)?;
    super_options
        .split(',')
        .find_map(|o| o.strip_prefix("huge="))
        .filter(|huge| *huge != "never")
        .map(str::to_string)
}

/// A mount point as `/proc/self/mountinfo` writes it: space, tab, newline and backslash as
/// three octal digits after a backslash.
fn unescape_mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            let text = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Makes the memory a run's files will take resident before the run, when `dir` is on tmpfs:
/// writes `bytes` (at most half of what the tmpfs has free) to a file there and deletes it.
///
/// A VM may give the memory its guest frees back to the host (virtio-balloon free page
/// reporting, as on the VMs this runs on), and the host then populates each page again at
/// the guest's next touch: measured here, a 2 GB file written to tmpfs at 2.0 GB/s into
/// memory just freed and at 0.32 GB/s into memory the guest had not touched. Without this,
/// a case whose output is gigabytes measures the host's page faults, not the collector
/// (ringtail's file sink spent 72 % of its time in the copy into new tmpfs pages); every
/// collector's run gets the same treatment.
fn populate_tmpfs(dir: &Path, bytes: u64) -> std::io::Result<()> {
    use std::io::Write;
    let fs = rustix::fs::statfs(dir)?;
    if fs.f_type != libc::TMPFS_MAGIC {
        return Ok(());
    }
    let free = fs.f_bavail.saturating_mul(fs.f_bsize as u64);
    let bytes = bytes.min(free / 2);
    let path = dir.join("populate-memory");
    let mut file = std::fs::File::create(&path)?;
    let chunk = vec![0x5a_u8; 1 << 20];
    let mut written = 0;
    while written < bytes {
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    drop(file);
    std::fs::remove_file(&path)
}

/// One measured run.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Input bytes.
    pub bytes: u64,
    /// Seconds from the first byte written to the last record at the sink.
    pub seconds: f64,
    /// Seconds the writer took (a ceiling on what can be measured).
    pub write_seconds: f64,
    /// CPU seconds of the collector over the same interval.
    pub cpu_seconds: f64,
    /// Of those, the kernel's (system time): its reads, its writes into the output's pages.
    pub system_seconds: f64,
    /// CPU seconds of the harness over the same interval: the workload's writer and the
    /// output's follower (and a receiver's, for the HTTP sinks), on the same cores.
    pub harness_cpu_seconds: f64,
    /// Peak resident memory of the collector.
    pub peak_rss: u64,
    /// Resident memory of the collector when the last record arrived (its steady state in
    /// a rate-limited case).
    pub rss: u64,
    /// Median write → output latency of marked records.
    pub p50: Option<Duration>,
    /// 99th percentile of the same.
    pub p99: Option<Duration>,
    /// Delivery check of the output (file sinks).
    pub check: Option<SeqReport>,
    /// Records delivered, when only a count is available (the blackhole).
    pub delivered: u64,
    /// Records expected.
    pub expected: u64,
    /// Everything arrived before the timeout.
    pub complete: bool,
}

impl Measurement {
    /// Input megabytes (10^6) per second.
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(1e-9)
    }

    /// Share of one core the collector used over the run, in percent (the node cost of a
    /// rate-limited case).
    pub fn cpu_percent(&self) -> f64 {
        self.cpu_seconds / self.seconds.max(1e-9) * 100.0
    }

    /// CPU seconds per gigabyte (10^9) of input.
    pub fn cpu_per_gb(&self) -> f64 {
        self.cpu_seconds / (self.bytes as f64 / 1e9)
    }

    /// The kernel's part of [`cpu_per_gb`](Self::cpu_per_gb).
    pub fn system_per_gb(&self) -> f64 {
        self.system_seconds / (self.bytes as f64 / 1e9)
    }

    /// Share of one core the harness used beside the collector, in percent: with the
    /// collector's, how close the run came to using every core.
    pub fn harness_cpu_percent(&self) -> f64 {
        self.harness_cpu_seconds / self.seconds.max(1e-9) * 100.0
    }

    /// Records lost.
    pub fn lost(&self) -> u64 {
        match &self.check {
            Some(r) => r.lost,
            None => self.expected.saturating_sub(self.delivered),
        }
    }

    /// Records delivered twice or more (known only when the output is checked).
    pub fn duplicated(&self) -> Option<u64> {
        self.check.as_ref().map(|r| r.duplicated)
    }
}

/// The runs of one (collector, sink) pair, or why there are none.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Measured runs.
    Measured(Vec<Measurement>),
    /// Not run, and why (not installed, unsupported, needs a missing feature).
    Skipped(String),
    /// Runs failed, and how.
    Failed(String),
}

/// One row of a case's results.
#[derive(Debug, Clone)]
pub struct Row {
    /// Collector name.
    pub collector: String,
    /// Sink.
    pub sink: SinkKind,
    /// Runs.
    pub outcome: Outcome,
}

/// The results of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// Input bytes.
    pub bytes: u64,
    /// Input records.
    pub records: u64,
    /// Input lines.
    pub lines: u64,
    /// One row per (collector, sink).
    pub rows: Vec<Row>,
}

/// Runs `case` against every collector.
pub fn run_case(
    case: &Case,
    collectors: &[Box<dyn Collector>],
    opts: &Options,
    ringtail_features: &[&str],
) -> CaseResult {
    let plan = workload::plan(&case.spec);
    let mut rows = Vec::new();
    for collector in collectors {
        let name = collector.name();
        let is_ringtail = collector.is_ringtail();
        // Peers write files (the OpenTelemetry Collector sends OTLP); a case without a file
        // sink (e.g. Kafka) is ringtail's alone.
        let sinks: Vec<SinkKind> = if is_ringtail {
            case.sinks.clone()
        } else {
            vec![collector.peer_sink()]
        };
        for sink in sinks {
            let peer_without_case = !is_ringtail && !case.sinks.contains(&SinkKind::File);
            let skip = if peer_without_case {
                Some("the case has no file sink; only ringtail writes to its sinks".to_string())
            } else if let Some(feature) = case
                .requires
                .as_deref()
                .filter(|f| !ringtail_features.contains(f))
            {
                Some(format!(
                    "needs ringtail's `{feature}` support, not built yet"
                ))
            } else {
                collector
                    .unavailable()
                    .or_else(|| collector.unsupported(case, sink))
            };
            let outcome = match skip {
                Some(reason) => Outcome::Skipped(reason),
                None => run_pair(case, &plan, collector.as_ref(), sink, opts),
            };
            if opts.progress {
                progress_done(&format!(
                    "{}: {name} → {}: {}",
                    case.name,
                    sink.name(),
                    summary(&outcome)
                ));
            }
            rows.push(Row {
                collector: name.clone(),
                sink,
                outcome,
            });
        }
    }
    CaseResult {
        case: case.clone(),
        bytes: plan.bytes(),
        records: plan.records(),
        lines: plan.lines(),
        rows,
    }
}

fn summary(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Skipped(reason) => format!("skipped ({reason})"),
        Outcome::Failed(reason) => format!("FAILED ({reason})"),
        Outcome::Measured(runs) => {
            // As in the report: throughput only from complete runs.
            let mut mbs: Vec<f64> = runs
                .iter()
                .filter(|m| m.complete)
                .map(Measurement::mb_per_s)
                .collect();
            mbs.sort_by(f64::total_cmp);
            let lost: u64 = runs.iter().map(Measurement::lost).sum();
            let incomplete = runs.len() - mbs.len();
            match mbs.get(mbs.len() / 2) {
                Some(median) => format!(
                    "median {median:.0} MB/s over {} complete run(s), {incomplete} incomplete, {lost} lost",
                    mbs.len()
                ),
                None => format!("no run complete ({} run(s)), {lost} lost", runs.len()),
            }
        }
    }
}

fn run_pair(
    case: &Case,
    plan: &Plan,
    collector: &dyn Collector,
    sink: SinkKind,
    opts: &Options,
) -> Outcome {
    let total = opts.runs + usize::from(!opts.no_warmup);
    let mut runs = Vec::new();
    for i in 0..total {
        let warmup = !opts.no_warmup && i == 0;
        let label = if warmup {
            "warm-up".to_string()
        } else {
            format!("run {}/{}", runs.len() + 1, opts.runs)
        };
        let dir = opts.work_dir.join(&case.name).join(format!(
            "{}-{}-{i}",
            collector.name(),
            sink.name()
        ));
        let result = measure_once(case, plan, collector, sink, &dir, &label, opts);
        if !opts.keep {
            let _ = std::fs::remove_dir_all(&dir);
        }
        match result {
            Ok(m) if !warmup => runs.push(m),
            Ok(_) => {}
            Err(e) => return Outcome::Failed(format!("{label}: {e}")),
        }
    }
    Outcome::Measured(runs)
}

/// Stops the collector when dropped, whatever happens.
struct Running {
    launched: Launched,
}

impl Running {
    fn pid(&self) -> u32 {
        self.launched.child.id()
    }

    /// SIGTERM, then SIGKILL after `grace`.
    fn stop(&mut self, grace: Duration) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.pid() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.launched.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.launched.child.kill();
        let _ = self.launched.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.launched.child.try_wait() {
            let _ = self.launched.child.kill();
            let _ = self.launched.child.wait();
        }
    }
}

fn measure_once(
    case: &Case,
    plan: &Plan,
    collector: &dyn Collector,
    sink: SinkKind,
    dir: &Path,
    label: &str,
    opts: &Options,
) -> Result<Measurement, String> {
    let dirs = RunDirs::create(dir, case.pod_labels)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    populate_tmpfs(dir, case.spec.total_bytes.saturating_mul(3))
        .map_err(|e| format!("cannot populate memory in {}: {e}", dir.display()))?;
    let launched = collector
        .launch(case, sink, &dirs)
        .map_err(|e| format!("cannot start {}: {e}", collector.name()))?;
    let mut running = Running { launched };
    let pid = running.pid();
    let expected_records = plan.records();
    let expected_lines = collector.expected_lines(case, sink, plan) + 1;
    let nonce = format!(
        "ready-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    );
    let tailer = running
        .launched
        .output
        .clone()
        .map(|out| Tailer::start(out, nonce.clone()));
    let port = running.launched.api_port;
    let receiver = running.launched.receiver.as_ref();
    let delivered = || -> u64 {
        if let Some(receiver) = receiver {
            // What reached the receiver, not what the sink handed to its senders.
            return receiver.delivered();
        }
        match (&tailer, port) {
            (Some(t), _) => t.lines(),
            // Kafka: what the broker acknowledged, not what was queued.
            (None, Some(port)) if sink.is_kafka() => {
                ringtail_metric(port, "ringtail_kafka_delivered_total{sink=\"out\"}").unwrap_or(0.0)
                    as u64
            }
            (None, Some(port)) => {
                ringtail_metric(port, "ringtail_sink_records_total{sink=\"out\"}").unwrap_or(0.0)
                    as u64
            }
            (None, None) => 0,
        }
    };

    // Readiness: the collector must deliver one record before the clock starts.
    let mut ready = Vec::new();
    workload::encode_record(
        &mut ready,
        case.spec.format,
        std::slice::from_ref(&nonce),
        if case.spec.format == Format::Raw {
            ""
        } else {
            "stdout"
        },
    );
    std::fs::write(dirs.logs.join("ready.log"), &ready).map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        let is_ready = match &tailer {
            Some(t) => t.ready(),
            None => delivered() >= 1,
        };
        if is_ready {
            break;
        }
        if let Ok(Some(status)) = running.launched.child.try_wait() {
            return Err(format!(
                "exited with {status} before it was ready: {}",
                log_tail(&dirs.log_file())
            ));
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "not ready after 60 s: {}",
                log_tail(&dirs.log_file())
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    if let Some(receiver) = &running.launched.receiver {
        receiver.expect(&plan.records_per_stream());
    }
    workload::prepare(plan, &dirs.logs)
        .map_err(|e| format!("cannot create the workload's files: {e}"))?;
    // The collector finds the created files (empty) before the clock starts.
    std::thread::sleep(Duration::from_millis(200));

    // The measured part.
    let written = AtomicU64::new(0);
    let cpu_before = cpu_time(pid).unwrap_or_default();
    let harness_before = cpu_seconds(std::process::id()).unwrap_or(0.0);
    let (played, (finished_at, complete)) = std::thread::scope(|scope| {
        let handle = scope.spawn(|| workload::play(plan, &dirs.logs, &written));
        let outcome = wait_for_delivery(
            case,
            label,
            collector,
            sink,
            plan,
            &written,
            expected_lines,
            &delivered,
            opts,
        );
        (handle.join(), outcome)
    });
    let played = match played {
        Ok(Ok(played)) => played,
        Ok(Err(e)) => return Err(format!("writing the workload failed: {e}")),
        Err(_) => return Err("the workload writer panicked".to_string()),
    };
    let cpu = cpu_time(pid).unwrap_or(cpu_before).since(cpu_before);
    let harness_cpu = cpu_seconds(std::process::id()).unwrap_or(harness_before) - harness_before;
    let peak = peak_rss(pid).unwrap_or(0);
    let resident = rss(pid).unwrap_or(0);
    let delivered_now = delivered();
    running.stop(Duration::from_secs(60));

    let arrivals = tailer.map(Tailer::finish).unwrap_or_default();
    let mut latencies: Vec<Duration> = played
        .sample_times
        .iter()
        .filter_map(|(stream, seq, at)| {
            arrivals
                .get(&(*stream, *seq))
                .map(|arrived| arrived.saturating_duration_since(*at))
        })
        .collect();
    latencies.sort();

    let check = match (&running.launched.output, &running.launched.broker) {
        _ if running.launched.receiver.is_some() => {
            running.launched.receiver.as_ref().and_then(|r| r.report())
        }
        (Some(out), _) => {
            let mut check = SeqCheck::new(&plan.records_per_stream());
            for path in output_files(out) {
                check
                    .scan_file(&path)
                    .map_err(|e| format!("cannot read output {}: {e}", path.display()))?;
            }
            Some(check.report())
        }
        // Everything the topic holds, read back (the readiness record included).
        (None, Some(broker)) => {
            let mut check = SeqCheck::new(&plan.records_per_stream());
            broker.consume_into(&mut check, expected_records + 1, Duration::from_secs(10))?;
            Some(check.report())
        }
        (None, None) => None,
    };
    let seconds = finished_at
        .saturating_duration_since(played.started)
        .as_secs_f64();
    Ok(Measurement {
        bytes: played.bytes,
        seconds,
        write_seconds: played
            .finished
            .saturating_duration_since(played.started)
            .as_secs_f64(),
        cpu_seconds: cpu.total(),
        system_seconds: cpu.system,
        harness_cpu_seconds: harness_cpu,
        peak_rss: peak,
        rss: resident,
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
        check,
        // The readiness record is not part of the workload.
        delivered: delivered_now.saturating_sub(1).min(expected_records),
        expected: expected_records,
        complete,
    })
}

/// How long delivery may stand still after the workload is written before a run is declared
/// incomplete: 15 times the slowest flush or scan interval of any collector measured (1 s).
pub const STALL: Duration = Duration::from_secs(15);

/// Waits until the output holds `expected_lines`, the case times out, or delivery stalls for
/// [`STALL`] after the writer finished. Returns when it stopped waiting and whether it was
/// complete.
#[allow(
    clippy::too_many_arguments,
    reason = "the state of one measurement, used once"
)]
fn wait_for_delivery(
    case: &Case,
    label: &str,
    collector: &dyn Collector,
    sink: SinkKind,
    plan: &Plan,
    written: &AtomicU64,
    expected_lines: u64,
    delivered: &dyn Fn() -> u64,
    opts: &Options,
) -> (Instant, bool) {
    let start = Instant::now();
    let total = plan.bytes();
    // When delivery last moved; an incomplete run reports this as its end.
    let mut last = (0, start);
    let mut last_progress = Instant::now();
    let poll = if sink.is_file() {
        Duration::from_millis(2)
    } else {
        Duration::from_millis(20)
    };
    loop {
        let now = Instant::now();
        let got = delivered();
        if got >= expected_lines {
            return (now, true);
        }
        if got != last.0 {
            last = (got, now);
        }
        let writing_done = written.load(Ordering::Relaxed) >= total;
        if now.duration_since(start) > case.timeout
            || (writing_done && now.duration_since(last.1) > STALL)
        {
            return (last.1, false);
        }
        if opts.progress && now.duration_since(last_progress) > progress_every() {
            last_progress = now;
            progress_running(&format!(
                "{}: {} → {} {label}: written {} / {} MiB, delivered {} / {} lines, {:.1} s",
                case.name,
                collector.name(),
                sink.name(),
                written.load(Ordering::Relaxed) >> 20,
                total >> 20,
                got,
                expected_lines,
                now.duration_since(start).as_secs_f64()
            ));
        }
        std::thread::sleep(poll);
    }
}

/// The output files: the file itself, or every file in the directory.
fn output_files(out: &Path) -> Vec<PathBuf> {
    if out.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(out)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files
    } else if out.exists() {
        vec![out.to_path_buf()]
    } else {
        Vec::new()
    }
}

/// The last lines of a collector's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Whether progress goes to a terminal: then one line is rewritten in place; otherwise (a CI
/// log, a file) each progress line is a plain line, fewer of them.
fn progress_on_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// How often a running pair's progress is shown.
fn progress_every() -> Duration {
    if progress_on_terminal() {
        Duration::from_millis(500)
    } else {
        Duration::from_secs(10)
    }
}

/// A running pair's progress: rewritten in place on a terminal, a line of its own elsewhere.
fn progress_running(line: &str) {
    if progress_on_terminal() {
        eprint!("\r\x1b[K{line}");
    } else {
        eprintln!("{line}");
    }
}

/// A finished pair's summary, replacing the progress line on a terminal.
fn progress_done(line: &str) {
    if progress_on_terminal() {
        eprintln!("\r\x1b[K{line}");
    } else {
        eprintln!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_directories_go_to_tmpfs_only_when_it_has_the_room() {
        let fallback = Path::new("/nonexistent/bench-runs");
        let (dir, kind) = default_work_dir(fallback, u64::MAX);
        assert_eq!(dir, fallback);
        assert!(!kind.is_empty());
        let shm_is_tmpfs = filesystem_kind(Path::new("/dev/shm")) == "tmpfs";
        let (dir, kind) = default_work_dir(fallback, 0);
        if shm_is_tmpfs {
            assert_eq!(
                (dir.as_path(), kind.as_str()),
                (Path::new("/dev/shm/ringtail-bench-runs"), "tmpfs")
            );
        } else {
            assert_eq!(dir, fallback);
        }
    }

    #[test]
    fn a_tmpfs_with_large_folios_is_named_by_its_mount() {
        let mountinfo = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:25 / /dev/shm rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,inode64
41 22 0:40 / /mnt/big\\040folios rw,relatime shared:20 - tmpfs tmpfs rw,size=12582912k,huge=within_size,inode64
42 41 0:41 / /mnt/big\\040folios/small rw,relatime shared:21 - tmpfs tmpfs rw,huge=never
";
        let huge = |p: &str| tmpfs_huge(mountinfo, Path::new(p));
        assert_eq!(
            huge("/mnt/big folios/runs/a.log").as_deref(),
            Some("within_size")
        );
        assert_eq!(huge("/mnt/big folios"), Some("within_size".to_string()));
        assert_eq!(
            huge("/mnt/big folios/small/x"),
            None,
            "the deeper mount decides"
        );
        assert_eq!(
            huge("/mnt/big foliosX/x"),
            None,
            "a path, not a string prefix"
        );
        assert_eq!(huge("/dev/shm/runs"), None);
        assert_eq!(huge("/work/x"), None);
    }
}
