//! The local HTTP API: `/metrics` (OpenMetrics text); `/livez` (JSON; 200 unless the
//! pipeline failed or one of its threads is stalled — working for longer than
//! `api.stall_timeout` without making progress, see [`crate::liveness`]); `/readyz` (JSON;
//! 200 unless a sink is degraded — a destination down or refusing — or a condition keeps
//! ringtail from doing all of its job — checkpoints that cannot be written, files waiting for
//! descriptors, directories not watched — or the pipeline failed; each with its reason); and
//! `/healthz`, the same as `/readyz`. A backend outage makes a collector unready, never dead:
//! restarting it would fix nothing and re-send what was in flight.
//!
//! Anyone who can reach the port can talk to it (the DaemonSet listens on all interfaces), so
//! no client may hold it: it is served by hyper on one thread with its own single-threaded
//! tokio runtime, and every connection is bounded —
//! - at most [`MAX_CONNECTIONS`] at once; a new one past that closes the oldest (a request
//!   takes milliseconds, so only connections that hold on without asking are closed);
//! - a request head must arrive within [`HEAD_TIMEOUT`] of the connection (or the last
//!   response) being ready for it: slow headers and idle keep-alive connections are closed;
//! - a write that makes no progress for [`WRITE_TIMEOUT`] closes the connection: a client that
//!   pipelines requests and never reads holds only its own connection, and only for that long;
//! - buffers are [`MAX_BUFFER`] per connection, and `/metrics` is rendered at most once per
//!   [`RENDER_REUSE`] (one shared buffer whatever the number of clients asking).
//!
//! [`Api::stop`] never waits on a client: it drops every connection and the runtime.
//!
//! The API lives as long as the process; `/healthz` reports on the pipeline that runs now
//! ([`HealthSlot`], set at every start and reload).
//!
//! Owns the listener and what `/healthz` says; it may not touch the pipeline beyond reading
//! its metrics and health.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::{AbortHandle, JoinSet};

use crate::liveness::Liveness;
use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::sink::driver::SinkHealth;

/// Loopback only: metrics are scraped node-locally; exposing them is a deliberate choice.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9100";

/// Connections served at once. Far more than a node's scrapers and probes need, and few
/// enough that their buffers stay small (each holds at most two [`MAX_BUFFER`]s).
pub const MAX_CONNECTIONS: usize = 256;
/// Longest wait for a request head, from when the connection is ready for one: a probe or a
/// scrape sends it at once; keep-alive connections idle longer than this are closed (scrapers
/// reconnect).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a response write may make no progress before the connection is closed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read and write buffer of one connection (hyper's smallest is 8 KiB; request heads are a few
/// hundred bytes).
pub const MAX_BUFFER: usize = 16 * 1024;
/// A `/metrics` body younger than this is served again instead of rendered again.
pub const RENDER_REUSE: Duration = Duration::from_millis(200);

/// The HTTP API's settings (`api`).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// A thread working this long without progress makes `/livez` fail.
    pub stall_timeout: Duration,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address could not be bound.
    #[error("cannot listen on {addr} for /metrics and /healthz: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        reason: String,
    },
    /// The server thread or its runtime could not be started.
    #[error("cannot start the API thread: {source}")]
    Thread {
        /// What the OS said.
        #[source]
        source: io::Error,
    },
}

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Default)]
pub struct Health {
    /// Health of each sink.
    pub sinks: Vec<Arc<SinkHealth>>,
    /// Set when the pipeline has failed and is stopping.
    pub failure: Mutex<Option<String>>,
    /// The conditions that keep the pipeline from doing all of its job.
    pub readiness: Arc<Readiness>,
    /// Whether the pipeline's threads make progress.
    pub liveness: Arc<Liveness>,
}

impl Health {
    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The status code and JSON body of `/readyz` (and `/healthz`): the conditions that hold,
    /// each sink's health, the pipeline's failure.
    pub fn ready_report(&self) -> (u16, String) {
        let mut conditions: serde_json::Map<String, serde_json::Value> = self
            .readiness
            .conditions()
            .into_iter()
            .map(|(name, why)| (name.to_string(), serde_json::Value::String(why)))
            .collect();
        if let Some(failure) = self.failure() {
            conditions.insert("pipeline".to_string(), serde_json::Value::String(failure));
        }
        let mut sinks = serde_json::Map::new();
        let mut degraded = false;
        for sink in &self.sinks {
            let status = match sink.last_error() {
                Some(error) if !sink.is_healthy() => {
                    degraded = true;
                    serde_json::json!({"status": "degraded", "error": error})
                }
                _ => serde_json::json!({"status": "ok"}),
            };
            sinks.insert(sink.name.clone(), status);
        }
        let ready = conditions.is_empty() && !degraded;
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not ready" },
            "conditions": conditions,
            "sinks": sinks,
        });
        (if ready { 200 } else { 503 }, body.to_string())
    }

    /// The status code and JSON body of `/livez`: 503 when the pipeline failed or a thread
    /// is stalled.
    pub fn live_report(&self) -> (u16, String) {
        if let Some(failure) = self.failure() {
            let body = serde_json::json!({"status": "failed", "error": failure});
            return (503, body.to_string());
        }
        let timeout = self.liveness.stall_timeout().as_secs();
        let stalled: serde_json::Map<String, serde_json::Value> = self
            .liveness
            .stalled()
            .into_iter()
            .map(|(name, working)| {
                let why = format!(
                    "working for {} s without progress (api.stall_timeout: {timeout} s)",
                    working.as_secs()
                );
                (name, serde_json::Value::String(why))
            })
            .collect();
        if stalled.is_empty() {
            return (200, serde_json::json!({"status": "live"}).to_string());
        }
        let body = serde_json::json!({"status": "stalled", "stalled": stalled});
        (503, body.to_string())
    }
}

/// The health of the pipeline that runs now: replaced when a pipeline starts (also on a
/// reload), so the API outlives every pipeline.
#[derive(Debug, Default)]
pub struct HealthSlot {
    current: RwLock<Arc<Health>>,
}

impl HealthSlot {
    /// Reports on `health` from now on.
    pub fn set(&self, health: Arc<Health>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = health;
    }

    /// The status code and JSON body of `/livez`.
    pub fn live_report(&self) -> (u16, String) {
        self.current().live_report()
    }

    /// The status code and JSON body of `/readyz` and `/healthz`.
    pub fn ready_report(&self) -> (u16, String) {
        self.current().ready_report()
    }

    fn current(&self) -> Arc<Health> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A running API server.
pub struct Api {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// What the server needs to answer.
struct Answers {
    metrics: Arc<Metrics>,
    health: Arc<HealthSlot>,
    rendered: Mutex<Option<(Instant, Bytes)>>,
}

impl Answers {
    /// The `/metrics` body: rendered at most once per [`RENDER_REUSE`].
    fn metrics(&self) -> Bytes {
        let mut cached = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, body)) = cached.as_ref()
            && at.elapsed() < RENDER_REUSE
        {
            return body.clone();
        }
        let body = Bytes::from(self.metrics.render());
        *cached = Some((Instant::now(), body.clone()));
        body
    }

    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let (status, body, content_type) = match request.uri().path() {
            "/metrics" => (
                200,
                self.metrics(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            "/livez" => {
                let (status, body) = self.health.live_report();
                (status, Bytes::from(body), "application/json")
            }
            "/readyz" | "/healthz" => {
                let (status, body) = self.health.ready_report();
                (status, Bytes::from(body), "application/json")
            }
            _ => (
                404,
                Bytes::from_static(b"not found: try /metrics, /livez, /readyz or /healthz\n"),
                "text/plain",
            ),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}

impl Api {
    /// Binds `listen` and serves on a thread of its own.
    pub fn start(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<HealthSlot>,
    ) -> Result<Self, ApiError> {
        let listener = std::net::TcpListener::bind(listen).map_err(|e| ApiError::Bind {
            addr: listen,
            reason: e.to_string(),
        })?;
        let addr = listener.local_addr().unwrap_or(listen);
        listener
            .set_nonblocking(true)
            .map_err(|source| ApiError::Thread { source })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| ApiError::Thread { source })?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let answers = Arc::new(Answers {
            metrics,
            health,
            rendered: Mutex::new(None),
        });
        let thread = std::thread::Builder::new()
            .name("api".to_string())
            .spawn(move || {
                runtime.block_on(serve(listener, answers, stopped));
                // Connections still open are dropped with the runtime, without waiting.
                runtime.shutdown_background();
            })
            .map_err(|source| ApiError::Thread { source })?;
        tracing::info!(%addr, "serving /metrics and /healthz");
        Ok(Self {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving: closes the listener and every connection, whatever the clients do.
    pub fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accepts connections until `stopped`, each served by a task of its own.
async fn serve(
    listener: std::net::TcpListener,
    answers: Arc<Answers>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve /metrics and /healthz");
            return;
        }
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_BUFFER);
    let mut connections = JoinSet::new();
    let mut oldest: VecDeque<AbortHandle> = VecDeque::new();
    // A descriptor held in reserve: when the process is out of descriptors, it is given up so
    // that a probe can still connect (and learn why from /readyz), and taken again when a
    // connection ends.
    let mut spare = spare_descriptor();
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if spare.is_none() => {
                spare = spare_descriptor();
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                if out_of_descriptors(&e) && spare.take().is_some() {
                    tracing::warn!(error = %e, "out of descriptors: the API's spare one serves the next connection");
                    continue;
                }
                // The connection waiting is lost, not the API.
                tracing::warn!(error = %e, "cannot accept an API connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        oldest.retain(|c| !c.is_finished());
        while oldest.len() >= MAX_CONNECTIONS {
            if let Some(connection) = oldest.pop_front() {
                connection.abort();
            }
        }
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(WriteDeadline::new(stream, WRITE_TIMEOUT));
        let answers = Arc::clone(&answers);
        let connection = http.serve_connection(
            io,
            hyper::service::service_fn(move |request| {
                let response = answers.respond(&request);
                async move { Ok::<_, std::convert::Infallible>(response) }
            }),
        );
        oldest.push_back(connections.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API connection closed");
            }
        }));
    }
    connections.abort_all();
}

/// A descriptor to give up when the process runs out of them (`/dev/null`, opened read-only).
fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Whether `e` is the process or the system out of descriptors.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
    )
}

/// A stream whose writes fail with `TimedOut` when one makes no progress for `limit`.
struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write attempt: progress clears the clock, waiting starts it (or checks it).
    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match result {
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client does not read its responses",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_reports_degraded_sinks_and_liveness_does_not() {
        let sink = Arc::new(SinkHealth::new("out"));
        let health = Health {
            sinks: vec![Arc::clone(&sink)],
            ..Health::default()
        };
        assert_eq!(
            health.ready_report(),
            (
                200,
                r#"{"conditions":{},"sinks":{"out":{"status":"ok"}},"status":"ready"}"#.to_string()
            )
        );
        sink.set(Some(
            "sink `out`: write to /x: No space left on device".to_string(),
        ));
        let (status, body) = health.ready_report();
        assert_eq!(status, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "not ready");
        assert_eq!(body["sinks"]["out"]["status"], "degraded");
        assert_eq!(
            body["sinks"]["out"]["error"],
            "sink `out`: write to /x: No space left on device"
        );
        // A degraded destination is no reason to restart the collector.
        assert_eq!(
            health.live_report(),
            (200, r#"{"status":"live"}"#.to_string())
        );
        sink.set(None);
        *health.failure.lock().unwrap() = Some("worker-0: stopped".to_string());
        for (status, body) in [health.ready_report(), health.live_report()] {
            assert_eq!(status, 503);
            assert!(body.contains("worker-0: stopped"));
        }
    }

    #[test]
    fn liveness_names_the_stalled_threads() {
        let health = Health {
            liveness: Arc::new(Liveness::new(Duration::from_millis(20))),
            ..Health::default()
        };
        let reader = health.liveness.heart("reader-0");
        reader.work();
        std::thread::sleep(Duration::from_millis(40));
        let (status, body) = health.live_report();
        assert_eq!(status, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "stalled");
        assert!(
            body["stalled"]["reader-0"]
                .as_str()
                .unwrap()
                .contains("without progress")
        );
        reader.wait();
        assert_eq!(health.live_report().0, 200);
    }

    #[test]
    fn readyz_lists_the_conditions_that_hold() {
        let health = Health::default();
        assert_eq!(
            health.ready_report(),
            (
                200,
                r#"{"conditions":{},"sinks":{},"status":"ready"}"#.to_string()
            )
        );
        health
            .readiness
            .set("checkpoints", Some("No space left on device".to_string()));
        let (status, body) = health.ready_report();
        assert_eq!(status, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["conditions"]["checkpoints"], "No space left on device");
        health.readiness.set("checkpoints", None);
        assert_eq!(health.ready_report().0, 200);
    }

    #[test]
    fn a_client_that_does_not_read_holds_neither_the_server_nor_its_stop() {
        use std::io::{Read, Write};
        let metrics = Arc::new(Metrics::new());
        let slot = Arc::new(HealthSlot::default());
        let api = Api::start("127.0.0.1:0".parse().unwrap(), metrics, slot).unwrap();
        // Pipelines thousands of requests and never reads a response.
        let mut greedy = std::net::TcpStream::connect(api.addr()).unwrap();
        greedy
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(100);
        for _ in 0..200 {
            if greedy.write_all(&request).is_err() {
                break;
            }
        }
        let ask = || {
            let mut s = std::net::TcpStream::connect(api.addr()).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        let started = Instant::now();
        assert!(ask().starts_with("HTTP/1.0 200"), "health answers");
        assert!(started.elapsed() < Duration::from_secs(1));
        let started = Instant::now();
        api.stop();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "stop does not wait for the client"
        );
        drop(greedy);
    }
}
