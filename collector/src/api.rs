//! The local HTTP API: `/metrics` (OpenMetrics text) and `/healthz` (JSON; 200 when every
//! sink is healthy and the pipeline runs, 503 otherwise, with the reason).
//!
//! Owns the HTTP listener and what `/healthz` says; it may not touch the pipeline beyond
//! reading its metrics and health.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::metrics::Metrics;
use crate::sink::driver::SinkHealth;

/// Loopback only: metrics are scraped node-locally; exposing them is a deliberate choice.
pub const DEFAULT_API_LISTEN: &str = "127.0.0.1:9100";

/// The HTTP API's settings (`api`).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Address to listen on.
    pub listen: SocketAddr,
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The address could not be bound.
    #[error("cannot listen on {addr} for /metrics and /healthz: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What tiny_http said.
        reason: String,
    },
    /// The server thread could not be started.
    #[error("cannot start the API thread: {source}")]
    Thread {
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// What `/healthz` reports.
#[derive(Debug, Default)]
pub struct Health {
    /// Health of each sink.
    pub sinks: Vec<Arc<SinkHealth>>,
    /// Set when the pipeline has failed and is stopping.
    pub failure: Mutex<Option<String>>,
}

impl Health {
    /// The status code and JSON body of `/healthz`.
    pub fn report(&self) -> (u16, String) {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut sinks = serde_json::Map::new();
        let mut healthy = failure.is_none();
        for sink in &self.sinks {
            let status = match sink.last_error() {
                Some(error) if !sink.is_healthy() => {
                    healthy = false;
                    serde_json::json!({"status": "degraded", "error": error})
                }
                _ => serde_json::json!({"status": "ok"}),
            };
            sinks.insert(sink.name.clone(), status);
        }
        let mut body = serde_json::json!({
            "status": if healthy { "ok" } else { "degraded" },
            "sinks": sinks,
        });
        if let Some(failure) = failure {
            body["error"] = serde_json::Value::String(failure);
        }
        (if healthy { 200 } else { 503 }, body.to_string())
    }
}

/// A running API server.
pub struct Api {
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Binds `listen` and serves on a thread of its own.
    pub fn start(
        listen: SocketAddr,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Result<Self, ApiError> {
        let server = tiny_http::Server::http(listen).map_err(|e| ApiError::Bind {
            addr: listen,
            reason: e.to_string(),
        })?;
        let addr = server.server_addr().to_ip().unwrap_or(listen);
        let server = Arc::new(server);
        let serving = Arc::clone(&server);
        let thread = std::thread::Builder::new()
            .name("api".to_string())
            .spawn(move || {
                for request in serving.incoming_requests() {
                    respond(request, &metrics, &health);
                }
            })
            .map_err(|source| ApiError::Thread { source })?;
        tracing::info!(%addr, "serving /metrics and /healthz");
        Ok(Self {
            server,
            thread: Some(thread),
            addr,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn respond(request: tiny_http::Request, metrics: &Metrics, health: &Health) {
    let (status, body, content_type) = match request.url() {
        "/metrics" => (
            200,
            metrics.render(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        "/healthz" => {
            let (status, body) = health.report();
            (status, body, "application/json")
        }
        _ => (
            404,
            "not found: try /metrics or /healthz\n".to_string(),
            "text/plain",
        ),
    };
    let mut response = tiny_http::Response::from_string(body).with_status_code(status);
    if let Ok(header) = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
    {
        response.add_header(header);
    }
    if let Err(e) = request.respond(response) {
        tracing::debug!(error = %e, "API client went away");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthz_reports_degraded_sinks_and_failures() {
        let sink = Arc::new(SinkHealth::new("out"));
        let health = Health {
            sinks: vec![Arc::clone(&sink)],
            failure: Mutex::new(None),
        };
        assert_eq!(
            health.report(),
            (
                200,
                r#"{"sinks":{"out":{"status":"ok"}},"status":"ok"}"#.to_string()
            )
        );
        sink.set(Some(
            "sink `out`: write to /x: No space left on device".to_string(),
        ));
        let (status, body) = health.report();
        assert_eq!(status, 503);
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["status"], "degraded");
        assert_eq!(
            body["sinks"]["out"]["error"],
            "sink `out`: write to /x: No space left on device"
        );
        sink.set(None);
        *health.failure.lock().unwrap() = Some("worker-0: stopped".to_string());
        let (status, body) = health.report();
        assert_eq!(status, 503);
        assert!(body.contains("worker-0: stopped"));
    }
}
