//! Validating what HTTP sinks share — endpoints, headers, TLS, timeout, concurrency,
//! retries, compression, dead letter — into [`HttpSettings`], and the `otlp` sink on top.
//!
//! Owns the HTTP sinks' configuration rules; what the sinks do is [`crate::sink::http`]'s.

use std::path::{Path, PathBuf};

use marked_yaml::{Node, Spanned};

use crate::config::problem::Problem;
use crate::config::raw::{RawAuth, RawSink, RawTls};
use crate::config::scalar::{choice, count, duration};
use crate::sink::elasticsearch::{ElasticsearchSinkSettings, OpType};
use crate::sink::http::{
    DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_IN_FLIGHT, DEFAULT_RETRY_MAX, HttpCompression, HttpSettings,
    TlsSettings,
};
use crate::sink::otlp::{LOGS_PATH, OtlpSinkSettings};
use crate::sink::template::Template;

/// The fields every HTTP sink has; `compressions` are the ones its protocol allows, the
/// first the default.
pub(super) fn http_settings(
    raw: &RawSink,
    node: &Node,
    path: &str,
    kind: &str,
    compressions: &[(&str, HttpCompression)],
    problems: &mut Vec<Problem>,
) -> Option<HttpSettings> {
    let before = problems.len();
    let mut endpoints = Vec::new();
    let mut check = |value: &Spanned<String>, field: String, problems: &mut Vec<Problem>| {
        let url = value.trim();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        match rest {
            Some(rest) if !rest.is_empty() && !rest.starts_with('/') => {
                endpoints.push(url.trim_end_matches('/').to_string())
            }
            _ => problems.push(Problem::spanned(
                value,
                field,
                "must be an `http://` or `https://` URL with a host, e.g. `http://127.0.0.1:4318`",
            )),
        }
    };
    match (&raw.endpoint, &raw.endpoints) {
        (Some(one), None) => check(one, format!("{path}.endpoint"), problems),
        (None, Some(list)) if !list.is_empty() => {
            for (i, value) in list.iter().enumerate() {
                check(value, format!("{path}.endpoints[{i}]"), problems);
            }
        }
        (Some(_), Some(_)) => problems.push(Problem::node(
            node,
            format!("{path}.endpoints"),
            "give `endpoint` or `endpoints`, not both",
        )),
        _ => problems.push(Problem::node(
            node,
            format!("{path}.endpoint"),
            format!("an {kind} sink needs `endpoint` (or `endpoints`, used in turn)"),
        )),
    }
    let mut headers = Vec::new();
    for (key, value) in raw.headers.iter().flatten() {
        let valid_key = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !valid_key {
            problems.push(Problem::spanned(
                value,
                format!("{path}.headers"),
                format!("`{key}` is not a header name"),
            ));
        } else if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            // The value is not quoted: it may be a secret.
            problems.push(Problem::spanned(
                value,
                format!("{path}.headers.{key}"),
                "a header value cannot hold a line break or NUL",
            ));
        } else {
            headers.push((key.clone(), value.to_string()));
        }
    }
    let tls = raw
        .tls
        .as_ref()
        .map(|t| tls(t, node, path, problems))
        .unwrap_or(TlsSettings {
            verify: true,
            ..TlsSettings::default()
        });
    let compression = choice(
        raw.compression.as_ref(),
        &format!("{path}.compression"),
        compressions,
        compressions.first().map_or(HttpCompression::None, |c| c.1),
        problems,
    );
    let timeout = duration(
        raw.timeout.as_ref(),
        &format!("{path}.timeout"),
        DEFAULT_HTTP_TIMEOUT,
        problems,
    );
    let max_in_flight = count(
        raw.max_in_flight.as_ref(),
        &format!("{path}.max_in_flight"),
        DEFAULT_MAX_IN_FLIGHT,
        1..=64,
        problems,
    );
    let retry_max = duration(
        raw.retry_max.as_ref(),
        &format!("{path}.retry_max"),
        DEFAULT_RETRY_MAX,
        problems,
    );
    let dead_letter = absolute(
        raw.dead_letter.as_ref(),
        &format!("{path}.dead_letter"),
        problems,
    );
    if problems.len() != before {
        return None;
    }
    Some(HttpSettings {
        endpoints,
        headers,
        compression,
        tls,
        timeout,
        max_in_flight,
        retry_max: retry_max.max(std::time::Duration::from_millis(100)),
        dead_letter,
    })
}

/// A `tls` block (of the sink at `path`).
pub(super) fn tls(
    raw: &RawTls,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> TlsSettings {
    let file = |value: &Option<Spanned<String>>, field: &str, problems: &mut Vec<Problem>| {
        absolute(value.as_ref(), &format!("{path}.tls.{field}"), problems)
    };
    let tls = TlsSettings {
        ca_file: file(&raw.ca_file, "ca_file", problems),
        cert_file: file(&raw.cert_file, "cert_file", problems),
        key_file: file(&raw.key_file, "key_file", problems),
        verify: choice(
            raw.verify.as_ref(),
            &format!("{path}.tls.verify"),
            &[("true", true), ("false", false)],
            true,
            problems,
        ),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        problems.push(Problem::node(
            node,
            format!("{path}.tls"),
            "a client certificate needs both `cert_file` and `key_file`",
        ));
    }
    tls
}

/// An absolute path, or a problem at `field`.
fn absolute(
    value: Option<&Spanned<String>>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<PathBuf> {
    let value = value?;
    if Path::new(value.as_str()).is_absolute() {
        Some(PathBuf::from(value.as_str()))
    } else {
        problems.push(Problem::spanned(value, field, "must be an absolute path"));
        None
    }
}

/// An OTLP sink's fields. An endpoint given with `/v1/logs` is taken without it (the path is
/// added to every request).
pub(super) fn otlp_sink(
    raw: &RawSink,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<OtlpSinkSettings> {
    let json = choice(
        raw.encoding.as_ref(),
        &format!("{path}.encoding"),
        &[("protobuf", false), ("json", true)],
        false,
        problems,
    );
    let mut http = http_settings(
        raw,
        node,
        path,
        "otlp",
        &[
            ("gzip", HttpCompression::Gzip),
            ("zstd", HttpCompression::Zstd),
            ("none", HttpCompression::None),
        ],
        problems,
    )?;
    for endpoint in &mut http.endpoints {
        if let Some(base) = endpoint.strip_suffix(LOGS_PATH) {
            *endpoint = base.to_string();
        }
    }
    Some(OtlpSinkSettings { http, json })
}

/// An Elasticsearch sink's fields.
pub(super) fn elasticsearch_sink(
    raw: &RawSink,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<ElasticsearchSinkSettings> {
    let before = problems.len();
    if let Some(encoding) = raw.encoding.as_ref().filter(|e| e.as_str() != "json") {
        problems.push(Problem::spanned(
            encoding,
            format!("{path}.encoding"),
            "an elasticsearch sink indexes JSON documents; `encoding` can only be `json`",
        ));
    }
    let http = http_settings(
        raw,
        node,
        path,
        "elasticsearch",
        &[
            ("none", HttpCompression::None),
            ("gzip", HttpCompression::Gzip),
        ],
        problems,
    );
    let index = match &raw.index {
        Some(value) => {
            let template = Template::parse(value)
                .map_err(|e| e.to_string())
                .and_then(|t| match crate::timestamp::unknown_directive(value) {
                    Some(d) => Err(format!(
                        "unknown date directive `{d}`, expected `%Y`, `%m`, `%d`, `%H` or `%%`"
                    )),
                    None => Ok(t),
                });
            match template {
                Ok(t) => Some(t),
                Err(message) => {
                    problems.push(Problem::spanned(value, format!("{path}.index"), message));
                    None
                }
            }
        }
        None => {
            problems.push(Problem::node(
                node,
                format!("{path}.index"),
                "an elasticsearch sink needs `index`, e.g. `logs-{k8s.namespace}-%Y.%m.%d`",
            ));
            None
        }
    };
    let op_type = choice(
        raw.op_type.as_ref(),
        &format!("{path}.op_type"),
        &[("index", OpType::Index), ("create", OpType::Create)],
        OpType::Index,
        problems,
    );
    let pipeline = raw.pipeline.as_ref().map(|p| p.to_string());
    let authorization = raw
        .auth
        .as_ref()
        .and_then(|auth| authorization(auth, node, path, problems));
    if problems.len() != before {
        return None;
    }
    let mut http = http?;
    if let Some(value) = authorization {
        if http
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            problems.push(Problem::node(
                node,
                format!("{path}.auth"),
                "`auth` and `headers.Authorization` both set; keep one",
            ));
            return None;
        }
        http.headers.push(("Authorization".to_string(), value));
    }
    Some(ElasticsearchSinkSettings {
        http,
        index: index?,
        op_type,
        pipeline,
    })
}

/// The `Authorization` header an `auth` block asks for.
fn authorization(
    auth: &RawAuth,
    node: &Node,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    use base64::Engine;
    let given = [
        auth.username.is_some() || auth.password.is_some(),
        auth.api_key.is_some(),
        auth.bearer.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        problems.push(Problem::node(
            node,
            format!("{path}.auth"),
            "give one of `username` + `password`, `api_key` or `bearer`",
        ));
        return None;
    }
    match (&auth.username, &auth.password, &auth.api_key, &auth.bearer) {
        (Some(user), Some(password), _, _) => {
            let pair = format!("{}:{}", user.as_str(), password.as_str());
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        }
        (_, _, Some(key), _) => Some(format!("ApiKey {}", key.as_str())),
        (_, _, _, Some(token)) => Some(format!("Bearer {}", token.as_str())),
        _ => {
            problems.push(Problem::node(
                node,
                format!("{path}.auth"),
                "basic authentication needs both `username` and `password`",
            ));
            None
        }
    }
}
