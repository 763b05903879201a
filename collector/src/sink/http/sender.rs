//! The sender threads of an HTTP sink, and the rules that decide when a batch is delivered.
//!
//! [`HttpSink`] is the [`Sink`] of every HTTP protocol: `write` turns a batch into one
//! request's payload ([`Protocol::payload`]) and hands it to the first free sender thread —
//! there are `max_in_flight` of them, so a full set of requests in flight is backpressure.
//! A sender owns its request until every record in it is settled, then acknowledges the batch:
//!
//! - **2xx**: the protocol reads the response ([`Protocol::accepted`]): an Elasticsearch bulk
//!   response can accept some items, refuse some for good and ask for others again; an OTLP
//!   partial success names a number of refused records. What must go again is sent again.
//! - **408, 429, 5xx, connection errors, timeouts**: sent again after a backoff (100 ms
//!   doubling to `retry_max`, with jitter so that a fleet of collectors does not come back in
//!   step), or after `Retry-After` seconds when the server says so (at most 5 minutes).
//!   Never given up: the sink shows as degraded on `/healthz` meanwhile and takes no more
//!   batches than the senders hold.
//! - **413**: the request is split in two and each half sent; a single record too large is
//!   refused for good.
//! - **401, 403, 404, 405, 407**: no record is at fault but the endpoint or the credentials;
//!   retried like a 503 (at `retry_max` pace once backed off), logged, degraded, until the
//!   configuration is fixed — never a dead letter for every record.
//! - **Other 4xx** (400, 422, …): refused for good. Refused records go to the
//!   `dead_letter` file with the reason (then count as delivered); without one, the pipeline
//!   stops, so a restart resumes from the last acknowledged offsets — exactly as the Kafka
//!   sink does.
//!
//! Endpoints are used in turn, one request each.
//!
//! Owns the senders, retry and the HTTP metrics; it may not know any protocol's format.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError, SendTimeoutError, Sender, bounded};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::deliver::ack::AckHandle;
use crate::deliver::batch::Batch;
use crate::encode::Encoding;
use crate::file::OwnFiles;
use crate::metrics::{HttpLabel, Metrics};
use crate::sink::dead_letter::DeadLetter;
use crate::sink::driver::{Sink, SinkError};
use crate::sink::http::{HttpSettings, client};

/// A protocol spoken over the HTTP delivery: what a request carries and what a response
/// means.
pub trait Protocol: Send + Sync + 'static {
    /// The records of one request still to be delivered.
    type Payload: Send + 'static;

    /// The path added to each endpoint (`/v1/logs`, `/_bulk`).
    fn path(&self) -> &str;

    /// The request's `Content-Type`.
    fn content_type(&self) -> &'static str;

    /// The payload of a batch, or why the batch cannot be sent (an internal error).
    fn payload(&self, batch: &Batch) -> Result<Self::Payload, String>;

    /// Records in `payload`.
    fn records(&self, payload: &Self::Payload) -> u64;

    /// Writes the request body (uncompressed) of `payload` into `out`.
    fn body(&self, payload: &Self::Payload, out: &mut Vec<u8>);

    /// Reads a 2xx response to `payload`'s request: what was refused for good, and whether
    /// some records must be sent again (`payload` is then narrowed to them).
    fn accepted(&self, payload: &mut Self::Payload, response: &[u8]) -> Verdict;

    /// `payload` in two halves, or itself back when it holds one record.
    fn split(
        &self,
        payload: Self::Payload,
    ) -> Result<(Self::Payload, Self::Payload), Self::Payload>;

    /// Every record of `payload` refused for good with `reason` (a whole request refused).
    fn refuse_all(&self, payload: &Self::Payload, reason: &str) -> Vec<Refusal>;
}

/// What a 2xx response says.
#[derive(Debug)]
pub enum Verdict {
    /// Every record is settled: accepted, or refused for good (listed).
    Done(Vec<Refusal>),
    /// The listed records are refused for good, the others accepted, except those the payload
    /// now holds, which must be sent again for the given reason.
    Again(Vec<Refusal>, String),
}

/// Records the destination refused for good.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Where they were going, for the dead letter: (`index`, `logs-2026.12.06`).
    pub destination: (&'static str, String),
    /// The destination's reason.
    pub reason: String,
    /// The record, in the sink's encoding; `None` when the destination did not say which.
    pub record: Option<Vec<u8>>,
    /// How many records this is.
    pub count: u64,
}

/// First retry delay.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest `Retry-After` honoured.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(300);
/// How long `write` waits for a free sender before it looks at the sink's health.
const SEND_PATIENCE: Duration = Duration::from_secs(1);
/// How often the sink thread looks at the senders while requests are in flight.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// Most bytes read of a response.
const RESPONSE_LIMIT: u64 = 64 << 20;

/// One request's worth of a batch.
struct Job<T> {
    payload: T,
    ack: AckHandle,
}

/// What the sink thread and its senders share.
struct Shared<P: Protocol> {
    name: String,
    protocol: P,
    agent: ureq::Agent,
    urls: Vec<String>,
    next_url: AtomicUsize,
    settings: HttpSettings,
    encoding: Encoding,
    dead_letter: Option<Mutex<DeadLetter>>,
    /// The last failure while a request is being retried; cleared by a success.
    failing: Mutex<Option<String>>,
    /// A refusal that cannot be dead-lettered: the pipeline must stop.
    fatal: Mutex<Option<String>>,
    /// Requests handed to senders and not yet settled.
    in_flight: AtomicUsize,
    requests: Family<HttpLabel, Counter>,
    in_flight_gauge: Gauge,
    bytes: Counter,
    retries: Counter,
    refused: Counter,
    dead_lettered: Counter,
    latency: Histogram,
}

/// An HTTP sink speaking protocol `P`.
pub struct HttpSink<P: Protocol> {
    shared: Arc<Shared<P>>,
    jobs: Option<Sender<Job<P::Payload>>>,
    /// Dropped at close: wakes senders sleeping between retries so they end.
    stop: Option<Sender<()>>,
    senders: Vec<JoinHandle<()>>,
    /// A job `write` could not hand over yet, with the address of its batch's data, so that
    /// `write` called again with the same batch sends it instead of making another.
    waiting: Option<(usize, Job<P::Payload>)>,
}

impl<P: Protocol> std::fmt::Debug for HttpSink<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("name", &self.shared.name)
            .field("endpoints", &self.shared.urls)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> HttpSink<P> {
    /// Starts `settings.max_in_flight` senders for `protocol`; records are in `encoding`
    /// (for dead letters). The dead-letter file is announced in `own`.
    pub fn new(
        name: &str,
        protocol: P,
        settings: HttpSettings,
        encoding: Encoding,
        metrics: &Metrics,
        own: &OwnFiles,
    ) -> Result<Self, SinkError> {
        let agent = client(&settings).map_err(|e| SinkError::Io {
            sink: name.to_string(),
            action: "set up the HTTP client of",
            target: settings.endpoints.join(","),
            fatal: true,
            source: std::io::Error::other(e.to_string()),
        })?;
        let dead_letter = match &settings.dead_letter {
            Some(path) => Some(Mutex::new(DeadLetter::open(name, path, own)?)),
            None => None,
        };
        let urls = settings
            .endpoints
            .iter()
            .map(|e| format!("{}{}", e.trim_end_matches('/'), protocol.path()))
            .collect();
        let label = Metrics::sink(name);
        let shared = Arc::new(Shared {
            name: name.to_string(),
            protocol,
            agent,
            urls,
            next_url: AtomicUsize::new(0),
            encoding,
            dead_letter,
            failing: Mutex::new(None),
            fatal: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            in_flight_gauge: metrics.http_in_flight.get_or_create_owned(&label),
            bytes: metrics.http_request_bytes.get_or_create_owned(&label),
            retries: metrics.http_retries.get_or_create_owned(&label),
            refused: metrics.sink_refused.get_or_create_owned(&label),
            dead_lettered: metrics.sink_dead_lettered.get_or_create_owned(&label),
            latency: metrics.http_request_seconds.get_or_create(&label).clone(),
            requests: metrics.http_requests.clone(),
            settings,
        });
        let (jobs, inbox) = bounded(0);
        let (stop, stopped) = bounded::<()>(0);
        let senders = (0..shared.settings.max_in_flight.max(1))
            .map(|i| {
                let own = Arc::clone(&shared);
                let inbox = inbox.clone();
                let stopped = stopped.clone();
                std::thread::Builder::new()
                    .name(format!("http-{i}-{name}"))
                    .spawn(move || sender(&own, &inbox, &stopped, i as u64))
                    .map_err(|source| SinkError::Io {
                        sink: name.to_string(),
                        action: "start a sender thread of",
                        target: shared.urls.join(","),
                        fatal: true,
                        source,
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            shared,
            jobs: Some(jobs),
            stop: Some(stop),
            senders,
            waiting: None,
        })
    }

    fn error(&self, action: &'static str, fatal: bool, message: String) -> SinkError {
        SinkError::Io {
            sink: self.shared.name.clone(),
            action,
            target: self.shared.urls.join(","),
            fatal,
            source: std::io::Error::other(message),
        }
    }

    /// Fails when the pipeline must stop, or (not fatally) while a request is being retried,
    /// so that `/healthz` shows the sink as degraded.
    fn check(&self) -> Result<(), SinkError> {
        if let Some(text) = lock(&self.shared.fatal).clone() {
            return Err(self.error("deliver to", true, text));
        }
        if let Some(reason) = lock(&self.shared.failing).clone() {
            let waiting = self.shared.in_flight.load(Ordering::Acquire);
            return Err(self.error(
                "deliver to",
                false,
                format!("{reason}; {waiting} request(s) being retried, nothing is dropped"),
            ));
        }
        Ok(())
    }
}

impl<P: Protocol> Sink for HttpSink<P> {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        if let Some(text) = lock(&self.shared.fatal).clone() {
            return Err(self.error("deliver to", true, text));
        }
        let address = batch.data.as_ptr() as usize;
        let mut job = match self.waiting.take() {
            Some((at, job)) if at == address => job,
            _ => {
                let payload = self
                    .shared
                    .protocol
                    .payload(batch)
                    .map_err(|e| self.error("send to", true, e))?;
                self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
                Job {
                    payload,
                    ack: batch.ack.clone(),
                }
            }
        };
        let Some(jobs) = &self.jobs else {
            return Err(self.error("send to", true, "the sink is closed".to_string()));
        };
        loop {
            match jobs.send_timeout(job, SEND_PATIENCE) {
                Ok(()) => break,
                Err(SendTimeoutError::Timeout(back)) => {
                    job = back;
                    if let Err(e) = self.check() {
                        self.waiting = Some((address, job));
                        return Err(e);
                    }
                }
                Err(SendTimeoutError::Disconnected(_)) => {
                    return Err(self.error("send to", true, "the senders ended".to_string()));
                }
            }
        }
        self.shared
            .in_flight_gauge
            .set(self.shared.in_flight.load(Ordering::Acquire) as i64);
        Ok(())
    }

    fn deadline(&self) -> Option<Instant> {
        (self.shared.in_flight.load(Ordering::Acquire) > 0
            || lock(&self.shared.fatal).is_some()
            || lock(&self.shared.failing).is_some())
        .then(|| Instant::now() + CHECK_EVERY)
    }

    fn on_deadline(&mut self) -> Result<(), SinkError> {
        self.shared
            .in_flight_gauge
            .set(self.shared.in_flight.load(Ordering::Acquire) as i64);
        self.check()
    }

    fn close(&mut self) -> Result<(), SinkError> {
        let until = Instant::now() + Duration::from_secs(1);
        while self.shared.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < until {
            if lock(&self.shared.fatal).is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.check()?;
        let waiting = self.shared.in_flight.load(Ordering::Acquire);
        if waiting > 0 {
            return Err(self.error(
                "flush",
                false,
                format!("{waiting} request(s) not yet acknowledged"),
            ));
        }
        Ok(())
    }
}

impl<P: Protocol> Drop for HttpSink<P> {
    fn drop(&mut self) {
        self.jobs = None;
        self.stop = None;
        // Senders retrying at shutdown end at their next wait; their batches stay
        // unacknowledged and are read again after a restart.
        for handle in self.senders.drain(..) {
            if handle.is_finished() {
                let _ = handle.join();
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One sender thread: takes jobs until the sink is closed.
fn sender<P: Protocol>(
    shared: &Shared<P>,
    inbox: &Receiver<Job<P::Payload>>,
    stopped: &Receiver<()>,
    seed: u64,
) {
    let mut jitter = Jitter::new(seed);
    let mut body = Vec::new();
    let mut wire = Vec::new();
    while let Ok(job) = inbox.recv() {
        let settled = deliver(
            shared,
            job.payload,
            stopped,
            &mut jitter,
            &mut body,
            &mut wire,
        );
        if settled {
            job.ack.ack();
        }
        shared.in_flight.fetch_sub(1, Ordering::AcqRel);
        if !settled {
            // Stopping (shutdown or a refusal without a dead letter): the batch stays
            // unacknowledged.
            return;
        }
    }
}

/// What one attempt at a request came to.
enum Attempt {
    /// Every record accepted.
    Settled,
    /// The listed records refused for good, the others accepted.
    Refused(Vec<Refusal>),
    /// The listed records refused for good (possibly none); what the payload still holds
    /// must be sent again after a wait (`Retry-After` when the server gave one).
    Again(Vec<Refusal>, String, Option<Duration>),
    /// Too large: split it.
    Split,
}

/// Sends `payload` until every record in it is settled; `false` when the sender must stop
/// (the sink is closing, or a refusal could not be dead-lettered).
fn deliver<P: Protocol>(
    shared: &Shared<P>,
    payload: P::Payload,
    stopped: &Receiver<()>,
    jitter: &mut Jitter,
    body: &mut Vec<u8>,
    wire: &mut Vec<u8>,
) -> bool {
    let mut parts = vec![payload];
    let mut delay = RETRY_MIN;
    while let Some(mut payload) = parts.pop() {
        loop {
            let refusals = match attempt(shared, &mut payload, body, wire) {
                Attempt::Settled => Vec::new(),
                Attempt::Refused(refusals) => refusals,
                Attempt::Split => match shared.protocol.split(payload) {
                    Ok((first, second)) => {
                        parts.push(second);
                        parts.push(first);
                        break;
                    }
                    Err(one) => {
                        let refusals = shared.protocol.refuse_all(
                            &one,
                            "HTTP 413: a single record is larger than the destination takes",
                        );
                        if !settle(shared, refusals) {
                            return false;
                        }
                        break;
                    }
                },
                Attempt::Again(refusals, reason, after) => {
                    if !settle(shared, refusals) {
                        return false;
                    }
                    shared.retries.inc();
                    let first = lock(&shared.failing).replace(reason.clone()).is_none();
                    let wait = match after {
                        Some(after) => after.min(RETRY_AFTER_MAX),
                        None => jitter.spread(delay),
                    };
                    if first {
                        tracing::warn!(sink = %shared.name, reason = %reason, retry_in = ?wait, "HTTP request failed; retrying (nothing is dropped)");
                    } else {
                        tracing::debug!(sink = %shared.name, reason = %reason, retry_in = ?wait, "HTTP request failed again");
                    }
                    delay = (delay * 2).min(shared.settings.retry_max);
                    match stopped.recv_timeout(wait) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => return false,
                    }
                }
            };
            if !settle(shared, refusals) {
                return false;
            }
            if lock(&shared.failing).take().is_some() {
                tracing::info!(sink = %shared.name, "HTTP destination accepting again");
            }
            delay = RETRY_MIN;
            break;
        }
    }
    true
}

/// One request for `payload`, which may be narrowed to what must be sent again.
fn attempt<P: Protocol>(
    shared: &Shared<P>,
    payload: &mut P::Payload,
    body: &mut Vec<u8>,
    wire: &mut Vec<u8>,
) -> Attempt {
    body.clear();
    shared.protocol.body(payload, body);
    if let Err(e) = shared.settings.compression.compress(body, wire) {
        return Attempt::Again(
            Vec::new(),
            format!("cannot compress the request: {e}"),
            None,
        );
    }
    let url = &shared.urls[shared.next_url.fetch_add(1, Ordering::Relaxed) % shared.urls.len()];
    let mut request = shared
        .agent
        .post(url)
        .header("Content-Type", shared.protocol.content_type());
    if let Some(encoding) = shared.settings.compression.content_encoding() {
        request = request.header("Content-Encoding", encoding);
    }
    for (key, value) in &shared.settings.headers {
        request = request.header(key, value);
    }
    let started = Instant::now();
    shared.bytes.inc_by(wire.len() as u64);
    let result = request.send(&wire[..]);
    shared.latency.observe(started.elapsed().as_secs_f64());
    let mut response = match result {
        Ok(response) => response,
        Err(e) => {
            count(shared, "error");
            return Attempt::Again(Vec::new(), format!("{url}: {e}"), None);
        }
    };
    let status = response.status().as_u16();
    count(shared, status_label(status));
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text = match response
        .body_mut()
        .with_config()
        .limit(RESPONSE_LIMIT)
        .read_to_vec()
    {
        Ok(text) => text,
        Err(e) => {
            return Attempt::Again(
                Vec::new(),
                format!("{url}: HTTP {status}, then reading the response failed: {e}"),
                None,
            );
        }
    };
    match status {
        200..=299 => match shared.protocol.accepted(payload, &text) {
            Verdict::Done(refusals) if refusals.is_empty() => Attempt::Settled,
            Verdict::Done(refusals) => Attempt::Refused(refusals),
            Verdict::Again(refusals, reason) => {
                Attempt::Again(refusals, format!("{url}: {reason}"), None)
            }
        },
        413 => Attempt::Split,
        // No record is at fault: the endpoint or the credentials are. Refusing would send
        // every record to the dead letter; waiting keeps them until the configuration (or a
        // rotated Secret, on reload) is fixed.
        401 | 403 | 404 | 405 | 407 => Attempt::Again(
            Vec::new(),
            format!(
                "{url}: HTTP {status} (check the endpoint and the credentials): {}",
                snippet(&text)
            ),
            None,
        ),
        408 | 429 | 500..=599 => Attempt::Again(
            Vec::new(),
            format!("{url}: HTTP {status}: {}", snippet(&text)),
            retry_after,
        ),
        _ => Attempt::Refused(
            shared
                .protocol
                .refuse_all(payload, &format!("HTTP {status}: {}", snippet(&text))),
        ),
    }
}

/// Counts one response (or `error` for none) by status.
fn count<P: Protocol>(shared: &Shared<P>, status: &str) {
    shared
        .requests
        .get_or_create(&HttpLabel {
            sink: shared.name.clone(),
            status: status.to_string(),
        })
        .inc();
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 | 403 => "401/403",
        404 => "404",
        408 => "408",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match status / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

/// The start of a response body, for messages.
fn snippet(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(&text[..text.len().min(300)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Records refused for good: counted, logged, dead-lettered; `false` when there is no
/// dead-letter file (or it cannot be written): the pipeline must stop.
fn settle<P: Protocol>(shared: &Shared<P>, refusals: Vec<Refusal>) -> bool {
    for refusal in refusals {
        shared.refused.inc_by(refusal.count);
        tracing::error!(
            sink = %shared.name,
            destination = %refusal.destination.1,
            records = refusal.count,
            reason = %refusal.reason,
            dead_letter = ?shared.settings.dead_letter,
            "the destination refused records for good"
        );
        let Some(dead) = &shared.dead_letter else {
            *lock(&shared.fatal) = Some(format!(
                "{} record(s) refused for good ({}); no dead_letter file is configured, so the pipeline stops and they are read again after a restart",
                refusal.count, refusal.reason
            ));
            return false;
        };
        let mut dead = lock(dead);
        let record = refusal.record.as_deref().map(|r| (r, shared.encoding));
        let written = dead.write(
            (refusal.destination.0, &refusal.destination.1),
            &refusal.reason,
            record,
            refusal.count,
        );
        if let Err(e) = written {
            *lock(&shared.fatal) = Some(format!(
                "cannot write dead-letter file {}: {e}",
                dead.path().display()
            ));
            return false;
        }
        shared.dead_lettered.inc_by(refusal.count);
    }
    true
}

/// Spreads retry delays (xorshift64*, seeded per sender): a delay becomes a random point
/// between half of it and all of it.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Self {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
        Self((seed.wrapping_add(1)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ time | 1)
    }

    fn spread(&mut self, delay: Duration) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        let fraction = 0.5 + (r as f64 / (1u64 << 53) as f64) / 2.0;
        delay.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_delay() {
        let mut jitter = Jitter::new(3);
        let delay = Duration::from_secs(2);
        let spread: Vec<_> = (0..1000).map(|_| jitter.spread(delay)).collect();
        assert!(spread.iter().all(|d| *d >= delay / 2 && *d <= delay));
        let distinct: std::collections::BTreeSet<_> = spread.iter().collect();
        assert!(distinct.len() > 900, "spread, not constant");
    }

    #[test]
    fn snippets_are_short_and_on_one_line() {
        assert_eq!(
            snippet(b"{\n  \"error\": \"bad\"\n}"),
            "{ \"error\": \"bad\" }"
        );
        assert_eq!(snippet(&[b'x'; 1000]).len(), 300);
    }
}
