//! TLS client settings, shared by the sinks that speak TLS (HTTP sinks through rustls, the
//! Kafka sink through librdkafka's OpenSSL).
//!
//! Owns the settings only; each client applies them its own way.

use std::path::PathBuf;

/// TLS settings of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the certificate authorities to trust (instead of the default roots).
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate chain (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client's private key.
    pub key_file: Option<PathBuf>,
    /// Whether the server's certificate is checked (`false` only when written so).
    pub verify: bool,
}
