//! HTTP delivery shared by the HTTP sinks (OTLP, Elasticsearch): the settings every one of
//! them has, the client built from them, and [`sender`], the threads that send requests and
//! decide when a batch is delivered.
//!
//! The client is `ureq` (blocking): each request in flight is one sender thread, so
//! `max_in_flight` bounds both concurrency and memory, and no async runtime has to be fed.
//! It keeps connections alive between requests (one idle connection per sender and host),
//! speaks TLS with rustls (Mozilla's roots built in, or only the `ca_file` given; client
//! certificates; verification off only when `tls.verify: false` is written), and times out
//! every request as a whole.
//!
//! Owns the HTTP settings and the client; what a request carries and what a response means
//! belong to each protocol ([`sender::Protocol`]).

pub mod sender;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

pub use crate::sink::tls::TlsSettings;

/// Default request timeout (connect, send, receive: the whole request).
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default requests in flight per sink.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// Default longest wait between retries of one request.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(30);

/// What every HTTP sink has.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Base URLs (`http://host:port`, `https://…`, with a path prefix if any), used in turn.
    pub endpoints: Vec<String>,
    /// Extra request headers (values may come from secrets: never logged).
    pub headers: Vec<(String, String)>,
    /// Request body compression.
    pub compression: HttpCompression,
    /// TLS client settings.
    pub tls: TlsSettings,
    /// Timeout of one request, whole.
    pub timeout: Duration,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Longest wait between retries (backoff doubles from 100 ms up to it).
    pub retry_max: Duration,
    /// Where records the destination refuses for good go; `None`: such a record stops the
    /// pipeline.
    pub dead_letter: Option<PathBuf>,
}

/// Compression of request bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpCompression {
    /// None.
    None,
    /// gzip (`Content-Encoding: gzip`), at level 1: most of the gain for little CPU.
    Gzip,
    /// zstd (`Content-Encoding: zstd`), level 1; OTLP receivers built on the OpenTelemetry
    /// Collector accept it, Elasticsearch does not.
    Zstd,
}

impl HttpCompression {
    /// The `Content-Encoding` header value.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            HttpCompression::None => None,
            HttpCompression::Gzip => Some("gzip"),
            HttpCompression::Zstd => Some("zstd"),
        }
    }

    /// Compresses `body` into `out` (cleared first).
    pub fn compress(self, body: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        use std::io::Write;
        out.clear();
        match self {
            HttpCompression::None => out.extend_from_slice(body),
            HttpCompression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(std::mem::take(out), flate2::Compression::new(1));
                encoder.write_all(body)?;
                *out = encoder.finish()?;
            }
            HttpCompression::Zstd => {
                *out = zstd::bulk::compress(body, 1)?;
            }
        }
        Ok(())
    }
}

/// Why an HTTP client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A PEM file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file (`tls.ca_file`, …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{what} {path}: {problem}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// An HTTP client for `settings`: connection reuse for `max_in_flight` senders, TLS, the
/// timeout; non-2xx responses are answers, not errors (each protocol judges them).
pub fn client(settings: &HttpSettings) -> Result<ureq::Agent, HttpError> {
    let mut tls = TlsConfig::builder().disable_verification(!settings.tls.verify);
    if let Some(path) = &settings.tls.ca_file {
        let certs = certificates(path, "tls.ca_file")?;
        tls = tls.root_certs(RootCerts::Specific(Arc::new(certs)));
    }
    if let (Some(cert), Some(key)) = (&settings.tls.cert_file, &settings.tls.key_file) {
        let chain = certificates(cert, "tls.cert_file")?;
        let text = read(key, "tls.key_file")?;
        let key = PrivateKey::from_pem(&text).map_err(|e| HttpError::Pem {
            what: "tls.key_file",
            path: key.clone(),
            problem: format!("no private key: {e}"),
        })?;
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    let connect = settings.timeout.min(Duration::from_secs(10));
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(settings.timeout))
        .timeout_connect(Some(connect))
        .user_agent(format!("ringtail/{}", env!("CARGO_PKG_VERSION")))
        .max_idle_connections_per_host(settings.max_in_flight.max(1))
        .max_idle_connections(settings.max_in_flight.max(1) * settings.endpoints.len().max(1))
        .tls_config(tls.build())
        .build();
    Ok(ureq::Agent::new_with_config(config))
}

fn read(path: &PathBuf, what: &'static str) -> Result<Vec<u8>, HttpError> {
    std::fs::read(path).map_err(|source| HttpError::Read {
        what,
        path: path.clone(),
        source,
    })
}

/// Every certificate in the PEM file at `path`.
fn certificates(
    path: &PathBuf,
    what: &'static str,
) -> Result<Vec<Certificate<'static>>, HttpError> {
    let text = read(path, what)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&text) {
        match item {
            Ok(PemItem::Certificate(cert)) => certs.push(cert),
            Ok(_) => {}
            Err(e) => {
                return Err(HttpError::Pem {
                    what,
                    path: path.clone(),
                    problem: e.to_string(),
                });
            }
        }
    }
    if certs.is_empty() {
        return Err(HttpError::Pem {
            what,
            path: path.clone(),
            problem: "no certificate in the file".to_string(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn bodies_compress_and_decompress_back() {
        let body = b"{\"message\":\"hello\"}\n".repeat(100);
        let mut out = Vec::new();
        HttpCompression::Gzip.compress(&body, &mut out).unwrap();
        assert!(out.len() < body.len() / 4);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&out[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, body);
        HttpCompression::Zstd.compress(&body, &mut out).unwrap();
        assert_eq!(zstd::decode_all(&out[..]).unwrap(), body);
        HttpCompression::None.compress(&body, &mut out).unwrap();
        assert_eq!(out, body);
    }
}
