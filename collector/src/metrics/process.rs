//! The process's own cost, read from `/proc/self` at each scrape, under the names every
//! Prometheus client library uses (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
//! `process_max_fds`, `process_start_time_seconds`): what a platform team pays for the
//! collector on each node, on the dashboards it already has.
//!
//! Owns reading those figures; it may not hold state between scrapes.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads the process's figures at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// The figures of one scrape; each is absent when `/proc` did not give it.
#[derive(Debug, Default, PartialEq)]
pub struct Figures {
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Resident set, bytes.
    pub resident_bytes: Option<i64>,
    /// Virtual memory, bytes.
    pub virtual_bytes: Option<i64>,
    /// Open file descriptors.
    pub open_fds: Option<i64>,
    /// The descriptor limit (soft).
    pub max_fds: Option<i64>,
    /// When the process started, seconds since the epoch.
    pub start_time: Option<f64>,
}

impl Figures {
    /// The figures of this process now.
    pub fn now() -> Self {
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // Fields after the command name (which is in parentheses and may hold spaces):
        // state is field 3, utime 14, stime 15, starttime 22, vsize 23, rss 24.
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        let page = rustix::param::page_size() as i64;
        let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as i64);
        let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        Self {
            cpu_seconds: field(14)
                .zip(field(15))
                .map(|(u, s)| (u + s) as f64 / ticks),
            resident_bytes: field(24).map(|pages| pages as i64 * page),
            virtual_bytes: field(23).map(|b| b as i64),
            open_fds,
            max_fds,
            start_time: boot
                .zip(field(22))
                .map(|(boot, start)| boot as f64 + start as f64 / ticks),
        }
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = Figures::now();
        if let Some(cpu) = f.cpu_seconds {
            let counter = ConstCounter::new(cpu);
            let metric = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                counter.metric_type(),
            )?;
            counter.encode(metric)?;
        }
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                f.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                f.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                f.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                f.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
                gauge.encode(metric)?;
            }
        }
        if let Some(start) = f.start_time {
            let gauge = ConstGauge::new(start);
            let metric = encoder.encode_descriptor(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                None,
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_figures() {
        let before = Figures::now();
        // Spend a little CPU and memory.
        let v: Vec<u64> = (0..2_000_000).collect();
        let sum: u64 = v.iter().sum();
        assert!(sum > 0);
        let after = Figures::now();
        assert!(after.cpu_seconds.unwrap() >= before.cpu_seconds.unwrap());
        assert!(after.resident_bytes.unwrap() > 1 << 20);
        assert!(after.open_fds.unwrap() >= 3);
        assert!(after.max_fds.unwrap() >= after.open_fds.unwrap());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = after.start_time.unwrap();
        assert!(start <= now + 1.0 && start > now - 24.0 * 3600.0, "{start}");
    }
}
