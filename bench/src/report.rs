//! Reports: a Markdown table per case (medians with the spread of throughput, CPU per GB,
//! peak RSS, latency, delivery check, and the ratio ringtail ÷ peer), a JSON file with every
//! run, and a PNG chart of throughput and CPU per case per collector.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::case::SinkKind;
use crate::harness::{CaseResult, Measurement, Outcome};
use crate::workload::{Churn, Format};

/// The machine a report was made on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Logical CPUs.
    pub cpus: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads this machine's description from `/proc`.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kb: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        Machine {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: kb / (1024.0 * 1024.0),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_string(),
        }
    }

    /// One line for reports.
    pub fn describe(&self) -> String {
        format!(
            "{}, {} vCPU, {:.0} GiB RAM, Linux {}",
            self.cpu, self.cpus, self.memory_gib, self.kernel
        )
    }
}

/// Median, minimum and maximum.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Of `values` (not empty).
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

fn median_duration(values: impl IntoIterator<Item = Option<Duration>>) -> Option<Duration> {
    let mut v: Vec<Duration> = values.into_iter().flatten().collect();
    v.sort();
    v.get(v.len() / 2).copied()
}

/// Throughput of the complete runs: an incomplete run has no end to measure to.
fn throughput(runs: &[Measurement]) -> Option<Spread> {
    Spread::of(
        runs.iter()
            .filter(|m| m.complete)
            .map(Measurement::mb_per_s),
    )
}

/// ringtail's file-sink median throughput in a case, the baseline of peer ratios.
fn ringtail_file_mbs(result: &CaseResult) -> Option<f64> {
    result
        .rows
        .iter()
        .find_map(|r| match (&r.outcome, r.collector.as_str(), r.sink) {
            (Outcome::Measured(runs), "ringtail", SinkKind::File) => {
                throughput(runs).map(|s| s.median)
            }
            _ => None,
        })
}

fn fmt_count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn fmt_ms(d: Option<Duration>) -> String {
    d.map_or("–".to_string(), |d| {
        format!("{:.0}", d.as_secs_f64() * 1000.0)
    })
}

/// The workload of a case, in one line.
fn describe_workload(result: &CaseResult) -> String {
    let spec = &result.case.spec;
    let format = match spec.format {
        Format::Raw => "raw",
        Format::Cri => "CRI",
        Format::Docker => "docker",
    };
    let mut s = format!(
        "{} MiB, {} records ({} lines) in {} file{}, {format}, lines of {}–{} bytes",
        result.bytes >> 20,
        result.records,
        result.lines,
        spec.files,
        if spec.files == 1 { "" } else { "s" },
        spec.shape.line_min,
        spec.shape.line_max
    );
    if spec.shape.multiline_fraction > 0.0 {
        let _ = write!(
            s,
            ", {:.0}% {:?} stack traces",
            spec.shape.multiline_fraction * 100.0,
            spec.shape.trace
        );
    }
    match spec.rate {
        Some(rate) => {
            let _ = write!(s, ", written at {} MB/s", rate / 1_000_000);
        }
        None => s.push_str(", written as fast as possible"),
    }
    match spec.churn {
        Churn::None => {}
        Churn::Rotate { bytes, keep } => {
            let _ = write!(s, ", rotated every {} KiB (keep {keep})", bytes >> 10);
        }
        Churn::ShortLived {
            bytes,
            delete_after,
        } => {
            let _ = write!(
                s,
                ", short-lived files of {} KiB deleted {:?} after close",
                bytes >> 10,
                delete_after
            );
        }
    }
    s
}

/// The Markdown report.
pub fn markdown(
    results: &[CaseResult],
    machine: &Machine,
    runs: usize,
    title_note: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# ringtail benchmark\n");
    let _ = writeln!(out, "- Machine: {}", machine.describe());
    let _ = writeln!(out, "- {title_note}");
    let _ = writeln!(
        out,
        "- Each (collector, sink) gets a warm-up run (unless the command says otherwise), then {runs} measured run(s); figures are medians, throughput with [min–max]. \
Throughput is input bytes from the first byte written to the last record at the sink; CPU is the collector's user+system time over that interval, with the kernel's (system) part in parentheses; harness CPU is the workload's writer and the output's follower on the same cores. \
Latency (file sinks) is from `write()` of a marked record to its appearance in the output, sampled every 997 records. \
Lost/duplicated come from checking every sequence number in the output; the blackhole can only be counted.\n"
    );
    // Summary.
    let collectors = series(results);
    let _ = writeln!(out, "## Summary (MB/s, median)\n");
    let _ = write!(out, "| case |");
    for (c, s) in &collectors {
        let _ = write!(out, " {c} → {} |", s.name());
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "|---|{}", "---|".repeat(collectors.len()));
    for result in results {
        let _ = write!(out, "| {} |", result.case.name);
        for (c, s) in &collectors {
            let cell = result
                .rows
                .iter()
                .find(|r| &r.collector == c && r.sink == *s)
                .map_or("–".to_string(), |r| match &r.outcome {
                    Outcome::Measured(runs) => {
                        let lost: u64 = runs.iter().map(Measurement::lost).sum();
                        let lost = if lost > 0 {
                            format!(" (lost {lost})")
                        } else {
                            String::new()
                        };
                        match throughput(runs) {
                            Some(t) => format!("{:.0}{lost}", t.median),
                            None => format!("incomplete{lost}"),
                        }
                    }
                    Outcome::Skipped(_) => "skipped".to_string(),
                    Outcome::Failed(_) => "failed".to_string(),
                });
            let _ = write!(out, " {cell} |");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out);
    // Details per case.
    for result in results {
        let _ = writeln!(out, "## {}\n", result.case.name);
        let _ = writeln!(
            out,
            "{}. {}.\n",
            result.case.description,
            describe_workload(result)
        );
        let _ = writeln!(
            out,
            "| collector | sink | MB/s [min–max] | lines/s | CPU s/GB (kernel) | CPU % of a core | harness CPU % | RSS at end / peak MiB | latency p50 / p99 ms | lost | duplicated | ringtail file ÷ this |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        let baseline = ringtail_file_mbs(result);
        for row in &result.rows {
            match &row.outcome {
                Outcome::Skipped(reason) => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | skipped: {reason} | | | | | | | | | |",
                        row.collector,
                        row.sink.name()
                    );
                }
                Outcome::Failed(reason) => {
                    let _ = writeln!(
                        out,
                        "| {} | {} | **failed**: {reason} | | | | | | | | | |",
                        row.collector,
                        row.sink.name()
                    );
                }
                Outcome::Measured(runs) => {
                    let complete: Vec<&Measurement> = runs.iter().filter(|m| m.complete).collect();
                    let incomplete = runs.len() - complete.len();
                    let t = throughput(runs);
                    let mbs = match t {
                        Some(t) => format!("{:.0} [{:.0}–{:.0}]", t.median, t.min, t.max),
                        None => "no run complete".to_string(),
                    };
                    let median = |f: &dyn Fn(&Measurement) -> f64| {
                        Spread::of(complete.iter().map(|m| f(m))).map(|s| s.median)
                    };
                    let lines_per_s = median(&|m| result.lines as f64 / m.seconds.max(1e-9));
                    let cpu = median(&Measurement::cpu_per_gb);
                    let system = median(&Measurement::system_per_gb);
                    let mib = |f: &dyn Fn(&Measurement) -> u64| {
                        Spread::of(runs.iter().map(|m| f(m) as f64 / (1 << 20) as f64))
                            .map_or(0.0, |s| s.median)
                    };
                    let (rss, peak) = (mib(&|m| m.rss), mib(&|m| m.peak_rss));
                    let cpu_percent = median(&Measurement::cpu_percent);
                    let harness_percent = median(&Measurement::harness_cpu_percent);
                    let lost: u64 = runs.iter().map(Measurement::lost).sum();
                    let dup = runs
                        .iter()
                        .map(Measurement::duplicated)
                        .try_fold(0u64, |acc, d| d.map(|d| acc + d));
                    let ratio = match (baseline, t, row.collector.as_str()) {
                        (Some(b), Some(t), c) if c != "ringtail" => {
                            format!("{:.1}×", b / t.median.max(1e-9))
                        }
                        _ => "–".to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "| {} | {} | {mbs}{} | {} | {} | {} | {} | {rss:.0} / {peak:.0} | {} / {} | {lost} | {} | {ratio} |",
                        row.collector,
                        row.sink.name(),
                        if incomplete > 0 {
                            format!(" ({incomplete} of {} incomplete)", runs.len())
                        } else {
                            String::new()
                        },
                        lines_per_s.map_or("–".to_string(), fmt_count),
                        match (cpu, system) {
                            (Some(c), Some(k)) => format!("{c:.2} ({k:.2})"),
                            _ => "–".to_string(),
                        },
                        cpu_percent.map_or("–".to_string(), |c| format!("{c:.1}")),
                        harness_percent.map_or("–".to_string(), |c| format!("{c:.1}")),
                        fmt_ms(median_duration(complete.iter().map(|m| m.p50))),
                        fmt_ms(median_duration(complete.iter().map(|m| m.p99))),
                        dup.map_or("– (count only)".to_string(), |d| d.to_string()),
                    );
                }
            }
        }
        let _ = writeln!(out);
    }
    out
}

/// Every run, as JSON, for later comparison.
pub fn json(results: &[CaseResult], machine: &Machine) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            let rows: Vec<serde_json::Value> = r
                .rows
                .iter()
                .map(|row| {
                    let outcome = match &row.outcome {
                        Outcome::Skipped(reason) => serde_json::json!({"skipped": reason}),
                        Outcome::Failed(reason) => serde_json::json!({"failed": reason}),
                        Outcome::Measured(runs) => serde_json::json!({"runs": runs.iter().map(|m| serde_json::json!({
                            "bytes": m.bytes,
                            "seconds": m.seconds,
                            "write_seconds": m.write_seconds,
                            "mb_per_s": m.mb_per_s(),
                            "cpu_seconds": m.cpu_seconds,
                            "system_seconds": m.system_seconds,
                            "harness_cpu_seconds": m.harness_cpu_seconds,
                            "peak_rss": m.peak_rss,
                            "rss": m.rss,
                            "cpu_percent": m.cpu_percent(),
                            "p50_ms": m.p50.map(|d| d.as_secs_f64() * 1000.0),
                            "p99_ms": m.p99.map(|d| d.as_secs_f64() * 1000.0),
                            "expected": m.expected,
                            "lost": m.lost(),
                            "duplicated": m.duplicated(),
                            "complete": m.complete,
                        })).collect::<Vec<_>>()}),
                    };
                    serde_json::json!({"collector": row.collector, "sink": row.sink.name(), "outcome": outcome})
                })
                .collect();
            serde_json::json!({"case": r.case.name, "bytes": r.bytes, "records": r.records, "lines": r.lines, "rows": rows})
        })
        .collect();
    serde_json::json!({"machine": machine.describe(), "cases": cases})
}

/// (collector, sink) pairs in the order they first appear.
fn series(results: &[CaseResult]) -> Vec<(String, SinkKind)> {
    let mut out: Vec<(String, SinkKind)> = Vec::new();
    for r in results {
        for row in &r.rows {
            let key = (row.collector.clone(), row.sink);
            if !out.contains(&key) {
                out.push(key);
            }
        }
    }
    out
}

/// Fonts the chart can use, in order of preference.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// No usable font on this machine.
    #[error("no font found for the chart (looked for {})", FONTS.join(", "))]
    NoFont,
    /// Drawing failed.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
}

fn register_font() -> Result<(), ChartError> {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(ChartError::NoFont)
}

/// How a bar's runs went, when not cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Every run delivered everything.
    Clean,
    /// A run lost records.
    Lossy,
    /// A run did not deliver everything before its timeout (its figures are left out).
    Incomplete,
}

impl Mark {
    fn of(runs: &[Measurement]) -> Self {
        if runs.iter().any(|m| m.lost() > 0) {
            Mark::Lossy
        } else if runs.iter().any(|m| !m.complete) {
            Mark::Incomplete
        } else {
            Mark::Clean
        }
    }

    fn label(self) -> Option<&'static str> {
        match self {
            Mark::Clean => None,
            Mark::Lossy => Some("lossy"),
            Mark::Incomplete => Some("incomplete"),
        }
    }
}

/// Draws throughput and CPU per GB (both on log scales), per case and collector, into a
/// PNG. Bars of runs that lost records or did not finish are drawn pale and labelled.
pub fn chart(results: &[CaseResult], machine: &Machine, path: &Path) -> Result<(), ChartError> {
    register_font()?;
    let series = series(results);
    let measured: Vec<&CaseResult> = results.iter().collect();
    let value = |r: &CaseResult,
                 (c, s): &(String, SinkKind),
                 f: &dyn Fn(&[Measurement]) -> f64|
     -> Option<(f64, Mark)> {
        r.rows
            .iter()
            .find(|row| &row.collector == c && row.sink == *s)
            .and_then(|row| match &row.outcome {
                Outcome::Measured(runs) if !runs.is_empty() => Some((f(runs), Mark::of(runs))),
                _ => None,
            })
    };
    let mbs = |runs: &[Measurement]| throughput(runs).map_or(0.0, |t| t.median);
    let cpu = |runs: &[Measurement]| {
        Spread::of(
            runs.iter()
                .filter(|m| m.complete)
                .map(Measurement::cpu_per_gb),
        )
        .map_or(0.0, |s| s.median)
    };
    let width = 1400u32;
    let root = BitMapBackend::new(path, (width, 1000)).into_drawing_area();
    let draw = |e: &dyn std::fmt::Display| ChartError::Draw(e.to_string());
    root.fill(&WHITE).map_err(|e| draw(&e))?;
    let (top, bottom) = root.split_vertically(500);
    let groups = measured.len().max(1) as f64;
    let per_group = series.len().max(1) as f64 + 1.0;
    let colors = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK, &YELLOW];
    for (area, title, floor, legend, f) in [
        (
            &top,
            format!("Throughput, MB/s (log scale) — {}", machine.describe()),
            1.0,
            true,
            &mbs as &dyn Fn(&[Measurement]) -> f64,
        ),
        (
            &bottom,
            "CPU seconds per GB of input (log scale)".to_string(),
            0.1,
            false,
            &cpu as &dyn Fn(&[Measurement]) -> f64,
        ),
    ] {
        let max = measured
            .iter()
            .flat_map(|r| series.iter().filter_map(|s| value(r, s, f)))
            .map(|(v, _)| v)
            .fold(floor * 10.0, f64::max);
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(60);
        let x_range = 0.0..groups * per_group;
        let labels: Vec<String> = measured.iter().map(|r| r.case.name.clone()).collect();
        let centres: Vec<f64> = (0..labels.len())
            .map(|g| g as f64 * per_group + per_group / 2.0)
            .collect();
        let label_style = ("sans-serif", 16)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Top));
        let mark_style = ("sans-serif", 12)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        let mut chart = builder
            // A decade of headroom above the tallest bar holds the legend.
            .build_cartesian_2d(x_range, (floor..max * 20.0).log_scale())
            .map_err(|e| draw(&e))?;
        chart
            .configure_mesh()
            .x_labels(0)
            .disable_x_mesh()
            .draw()
            .map_err(|e| draw(&e))?;
        for (label, &x) in labels.iter().zip(&centres) {
            let (px, py) = chart.backend_coord(&(x, floor));
            root.draw(&Text::new(label.clone(), (px, py + 8), label_style.clone()))
                .map_err(|e| draw(&e))?;
        }
        let mut rects = Vec::new();
        for (g, r) in measured.iter().enumerate() {
            for (i, s) in series.iter().enumerate() {
                if let Some((v, mark)) = value(r, s, f) {
                    let x0 = g as f64 * per_group + 0.5 + i as f64;
                    rects.push((i, x0, x0 + 0.9, v.max(floor), mark));
                }
            }
        }
        for (i, (name, sink)) in series.iter().enumerate() {
            let color = colors[i % colors.len()];
            let drawn = chart
                .draw_series(
                    rects
                        .iter()
                        .filter(|r| r.0 == i)
                        .map(|&(_, x0, x1, v, mark)| {
                            let style = if mark == Mark::Clean {
                                color.filled()
                            } else {
                                color.mix(0.3).filled()
                            };
                            Rectangle::new([(x0, floor), (x1, v)], style)
                        }),
                )
                .map_err(|e| draw(&e))?;
            if legend {
                drawn
                    .label(format!("{name} → {}", sink.name()))
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                    });
            }
        }
        for &(_, x0, x1, v, mark) in &rects {
            if let Some(label) = mark.label() {
                let (px, py) = chart.backend_coord(&((x0 + x1) / 2.0, v));
                root.draw(&Text::new(label, (px, py - 2), mark_style.clone()))
                    .map_err(|e| draw(&e))?;
            }
        }
        if legend {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw(&e))?;
        }
    }
    root.present().map_err(|e| draw(&e))?;
    Ok(())
}

/// Writes `<stem>.md`, `<stem>.json` and `<stem>.png` into `dir`, and copies them to
/// `latest.*`. Returns the Markdown path.
pub fn write_all(
    results: &[CaseResult],
    machine: &Machine,
    runs: usize,
    note: &str,
    dir: &Path,
    stem: &str,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let md = markdown(results, machine, runs, note);
    let md_path = dir.join(format!("{stem}.md"));
    std::fs::write(&md_path, &md)?;
    std::fs::write(dir.join("latest.md"), &md)?;
    let json_text = serde_json::to_string_pretty(&json(results, machine)).unwrap_or_default();
    std::fs::write(dir.join(format!("{stem}.json")), &json_text)?;
    std::fs::write(dir.join("latest.json"), &json_text)?;
    let png = dir.join(format!("{stem}.png"));
    match chart(results, machine, &png) {
        Ok(()) => {
            std::fs::copy(&png, dir.join("latest.png"))?;
        }
        Err(e) => eprintln!("ringtail-bench: no chart: {e}"),
    }
    Ok(md_path)
}
